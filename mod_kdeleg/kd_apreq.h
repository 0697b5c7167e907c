/* kd_apreq: accept a Kerberos AP-REQ with libkrb5 directly, as the GSS-API
 * krb5 mechanism would (RFC 4121 4.1), without the mechanism's per-call
 * costs.
 *
 * Why: every call into MIT's GSS-API krb5 mechanism makes and frees a krb5
 * context of its own (krb5.conf checked, plugin directories scanned),
 * derives the keys a security context needs for wrap and MIC tokens, and
 * copies names and authorization data. HTTP Negotiate uses none of that:
 * one token in, at most an AP-REP out. Profiled, those costs were about a
 * fifth of a Negotiate request's CPU time. Here one long-lived context per
 * thread does the work (the caller lends it), and only what GSS-API checks
 * is checked:
 *   - the ticket and authenticator (krb5_rd_req: keys, times, clock skew,
 *     the client named alike in both, libkrb5's authorization-data
 *     verification);
 *   - the authenticator checksum of type 0x8003 (RFC 4121 4.1.1): its
 *     length, the channel bindings' MD5, the context flags; a delegated
 *     credential is skipped, never read or used;
 *   - MS-KILE's KERB_AP_OPTIONS_CBT: a client that says it bound its token
 *     to the channel must match our bindings;
 *   - the PAC's server checksum (krb5_pac_verify), as MIT's mspac plugin
 *     does: an unverifiable PAC is reported, never trusted.
 * Replays are the caller's business (the node's table): no MIT rcache.
 * Nothing here needs httpd. */
#ifndef KD_APREQ_H
#define KD_APREQ_H

#include <stddef.h>
#include <stdint.h>
#include <apr_pools.h>
#include <krb5.h>

/* GSS-API context flags of RFC 2744, as carried in the 0x8003 checksum. */
#define KD_GSS_DELEG_FLAG 1u
#define KD_GSS_MUTUAL_FLAG 2u
#define KD_GSS_REPLAY_FLAG 4u
#define KD_GSS_SEQUENCE_FLAG 8u
#define KD_GSS_CONF_FLAG 16u
#define KD_GSS_INTEG_FLAG 32u
#define KD_GSS_DCE_STYLE 0x1000u

typedef struct {
    const unsigned char *ap_req;    /* DER AP-REQ (after the GSS framing and TOK_ID) */
    size_t ap_req_len;
    const char *keytab;             /* keytab name (a MEMORY keytab) */
    const char *server;             /* acceptor principal, as the keytab spells it */
    /* TLS channel bindings' application data (kd_chanbind), NULL for none */
    const unsigned char *cb_data;
    size_t cb_len;
    int want_local_name;            /* run auth_to_local on the client */
} kd_apreq_in;


typedef enum {
    KD_APREQ_PAC_ABSENT = 0,  /* the ticket carries no PAC (an MIT KDC, or stripped) */
    KD_APREQ_PAC_VERIFIED,    /* its server checksum verified with our key */
    KD_APREQ_PAC_UNVERIFIED,  /* present, but it does not verify or parse */
} kd_pac_state;

/* A ticket's PAC as it came, and what verifying it needs besides the key.
 * Verified only when asked for (a group check): most requests never need
 * it, and libkrb5 has already looked at it once while accepting. */
typedef struct {
    const unsigned char *data;   /* AD-WIN2K-PAC contents, NULL when the ticket has none */
    size_t len;
    int several;                 /* more than one PAC: never trusted */
    krb5_kvno kvno;              /* of the key that decrypted the ticket */
    krb5_enctype enctype;
    krb5_timestamp authtime;
} kd_apreq_pac;

typedef struct {
    krb5_error_code code;        /* 0: accepted */
    int bad_bindings;            /* refused: the token is bound to other data */
    int defective;               /* refused: the token's GSS checksum is malformed */
    const char *error;           /* why, when code or a refusal is set (in the pool) */
    const char *client;          /* "alice@EXAMPLE.TEST" */
    const char *local_name;      /* auth_to_local, NULL when none */
    long seconds_left;           /* until the ticket ends */
    unsigned flags;              /* KD_GSS_* the client asked for */
    int channel_bound;           /* the token carried our bindings */
    unsigned char *ap_rep;       /* DER AP-REP (mutual authentication), else NULL */
    size_t ap_rep_len;
    kd_apreq_pac pac;            /* the ticket's PAC, not yet verified (data NULL: none) */
} kd_apreq_out;

/* Accept in->ap_req with ctx (used by this thread only for the call). The
 * result in *out, allocated in p; out->code (a krb5 error) or a refusal
 * flag says it failed. */
void kd_apreq_accept(krb5_context ctx, apr_pool_t *p, const kd_apreq_in *in,
                     kd_apreq_out *out);

/* Verify pac as MIT's mspac plugin does (server checksum with the key of
 * server in keytab that decrypted the ticket; client name and logon time)
 * and copy its LOGON_INFO buffer into p (*li NULL when it has none). A PAC
 * that does not verify is reported, never trusted. */
kd_pac_state kd_apreq_pac_logon_info(krb5_context ctx, apr_pool_t *p, const char *keytab,
                                     const char *server, const char *client,
                                     const kd_apreq_pac *pac, unsigned char **li,
                                     size_t *li_len);

/* Read the 0x8003 authenticator checksum (RFC 4121 4.1.1): flags and
 * whether the bindings in it are cb_md5 (16 bytes; NULL: we have none).
 * Returns 0; -1 when malformed; -2 when bound to other bindings. Pure,
 * for unit tests and fuzzing. */
int kd_apreq_gss_checksum(const unsigned char *c, size_t len, const unsigned char *cb_md5,
                          unsigned *flags, int *bound);

#endif
