/* kd_token: read a client's Authorization header and tell, before any GSS
 * call, what the token is: SPNEGO or a raw Kerberos token, which mechanisms
 * it offers, whether it is really NTLM, and which service principal the
 * Kerberos ticket inside was issued for (the unencrypted part of the
 * ticket in the AP-REQ). Nothing here trusts the token: it only decides
 * where to route it and what to report. */
#ifndef KD_TOKEN_H
#define KD_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <apr_pools.h>

#include "kd_result.h"

/* Largest decoded token accepted. Active Directory's MaxTokenSize can be
 * raised to 65535 at most, so anything larger is not a Negotiate token. */
#define KD_TOKEN_MAX_BYTES 65535

typedef enum {
    KD_FRAME_UNKNOWN = 0,
    KD_FRAME_SPNEGO_INIT,   /* GSS framing + SPNEGO NegTokenInit */
    KD_FRAME_SPNEGO_RESP,   /* bare NegTokenResp (a continuation leg) */
    KD_FRAME_KRB5,          /* GSS framing + Kerberos mechanism token */
    KD_FRAME_NTLMSSP,       /* raw NTLMSSP message */
} kd_frame;

typedef enum {
    KD_MECH_NONE = 0,
    KD_MECH_KRB5,
    KD_MECH_NTLM,
    KD_MECH_OTHER,
} kd_mech;

#define KD_OFFER_KRB5 0x1u
#define KD_OFFER_NTLM 0x2u
#define KD_OFFER_OTHER 0x4u

typedef struct {
    kd_frame frame;
    unsigned offered;        /* SPNEGO mechTypes, KD_OFFER_* bits */
    kd_mech preferred;       /* first mechType offered (SPNEGO) */
    kd_mech inner;           /* what the mechanism token actually is */
    int ntlm_message_type;   /* 1, 2 or 3 when inner == KD_MECH_NTLM */
    int has_ap_req;          /* Kerberos AP-REQ found and parsed */
    const char *ticket_realm;   /* realm of the ticket's server */
    const char *ticket_sname;   /* server name components joined by '/' */
    int32_t ticket_etype;    /* encryption type of the ticket */
    int32_t ticket_kvno;     /* key version, -1 when the ticket has none */
    /* The client's service ticket as it came (DER of the Ticket): the
     * evidence for S4U2Proxy, still encrypted in our own key. */
    const unsigned char *ticket;
    size_t ticket_len;
    int mutual_required;     /* AP-REQ asks for mutual authentication */
    /* The authenticator's ciphertext: unique per authenticator, the basis
     * of the replay check. */
    const unsigned char *authenticator;
    size_t authenticator_len;
    /* The Kerberos mechanism token (GSS-framed AP-REQ) inside the wrapper,
     * accepted with the krb5 mechanism directly so error codes stay exact. */
    const unsigned char *krb5_token;
    size_t krb5_token_len;
    /* Inside it: the OID of its framing (DER contents; the reply is framed
     * alike) and the AP-REQ after the TOK_ID, for libkrb5 directly. */
    const unsigned char *krb5_token_oid;
    size_t krb5_token_oid_len;
    const unsigned char *ap_req;
    size_t ap_req_len;
    /* DER contents of the Kerberos OID the client offered in SPNEGO (the
     * standard or Microsoft's variant); the reply must name the same one. */
    const unsigned char *krb5_oid;
    size_t krb5_oid_len;
} kd_token_info;

/* Parse an Authorization header value ("Negotiate <base64>"). Returns
 * KD_CAUSE_NONE with the decoded token, KD_CAUSE_NO_TOKEN for a missing
 * header or another scheme, KD_CAUSE_NTLM_OFFERED for the "NTLM" scheme,
 * KD_CAUSE_MALFORMED_TOKEN for bad base64 or oversize. */
kd_cause kd_token_from_header(apr_pool_t *p, const char *value, unsigned char **tok,
                              size_t *len, kd_result *res);

/* Look inside a decoded token. Returns KD_CAUSE_NONE for a Kerberos AP-REQ
 * (raw or SPNEGO-wrapped) with info filled in, KD_CAUSE_NTLM_OFFERED when
 * the client offers or sends NTLM instead, KD_CAUSE_MALFORMED_TOKEN for
 * anything else. Never reads outside [tok, tok+len). */
kd_cause kd_token_sniff(apr_pool_t *p, const unsigned char *tok, size_t len,
                        kd_token_info *info, kd_result *res);

/* An AP-REP (DER) as a Kerberos mechanism token: RFC 2743 3.1 framing
 * under the OID the client's token was framed with, TOK_ID 02 00 (RFC
 * 4121 4.1). 0, or -1 without that OID or for an oversized AP-REP. */
int kd_token_frame_ap_rep(apr_pool_t *p, const kd_token_info *info, const unsigned char *ap_rep,
                          size_t len, unsigned char **out, size_t *out_len);

/* The reply to a client whose Kerberos token was accepted: for a raw
 * Kerberos token the AP-REP itself, for SPNEGO a NegTokenResp with
 * negState accept-completed, the client's Kerberos OID and the AP-REP
 * (RFC 4178 4.2.2; no mechListMIC: the optimistic token was for the
 * initiator's preferred mechanism). NULL/0 when there is nothing to send. */
void kd_token_reply(apr_pool_t *p, const kd_token_info *info, const unsigned char *ap_rep,
                    size_t ap_rep_len, unsigned char **out, size_t *out_len);

/* Wrap a Kerberos mechanism token in an SPNEGO NegTokenInit offering only
 * Kerberos: what browsers send, accepted by every Negotiate server. */
void kd_token_spnego_wrap(apr_pool_t *p, const unsigned char *krb5_token, size_t len,
                          unsigned char **out, size_t *out_len);

/* "HTTP/host@REALM" for the ticket's server, or NULL without an AP-REQ. */
const char *kd_token_ticket_principal(apr_pool_t *p, const kd_token_info *info);

const char *kd_frame_name(kd_frame frame);

#endif
