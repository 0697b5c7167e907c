/* kd_accept: the acceptor side of SPNEGO. One kd_acceptor per keytab per
 * process holds acceptor credentials pinned to each service principal
 * (acquired from a credential store naming the keytab, never from the
 * process environment), re-acquired when the keytab file changes, shared
 * safely by all threads of the process. */
#ifndef KD_ACCEPT_H
#define KD_ACCEPT_H

#include <apr_pools.h>
#include <apr_tables.h>

#include "kd_pac.h"
#include "kd_result.h"
#include "kd_s4u.h"
#include "kd_spn.h"
#include "kd_token.h"

typedef struct kd_acceptor kd_acceptor;

/* The client's name as the GSS library accepted it, kept (with what the
 * library knows about it: the PAC) until the pool given to
 * kd_acceptor_accept is cleared. For one request's thread. */
typedef struct kd_accepted_name kd_accepted_name;
typedef struct kd_acceptors kd_acceptors;

/* KdelegServiceAccount [SPN] PRINCIPAL: who the front end is when it asks
 * the KDC for tickets itself, for tickets to spn (NULL: any SPN). */
typedef struct {
    const char *spn;
    const char *principal;
} kd_service_account;

/* The configured account for spn ("HTTP/host@REALM"): an entry naming it
 * (with or without realm, case-insensitive host), else one naming no SPN,
 * else NULL (the keytab decides). */
const char *kd_service_account_for(const kd_service_account *list, int n, const char *spn);

typedef struct {
    const kd_spn *spns;        /* service principals this vhost answers for */
    int n_spns;
    int want_local_name;       /* run auth_to_local on the client name */
    int want_delegation;       /* keep an S4U2Proxy evidence credential */
    int replay_checked;        /* the node's replay table handles replays: no MIT rcache */
    const kd_service_account *accounts; /* KdelegServiceAccount */
    int n_accounts;
    /* KdelegChannelBinding: the channel bindings' application data (RFC
     * 5929, kd_chanbind), NULL for none. A token bound to other data is
     * refused (channel-binding-mismatch); an unbound one is accepted
     * unless cb_required (channel-binding-missing). */
    const unsigned char *cb_data;
    size_t cb_len;
    int cb_required;
} kd_accept_params;

typedef struct {
    const char *client_principal;  /* "alice@EXAMPLE.TEST" */
    const char *local_name;        /* auth_to_local mapping, NULL if none */
    const char *spn;               /* principal the ticket was for, with realm */
    const char *mutual_token;      /* base64 reply token, NULL when empty */
    long ticket_seconds_left;      /* the client's service ticket remains valid this long */
    /* With want_delegation: the evidence credential (released with the
     * pool), or NULL and why not in delegation_failure. */
    kd_delegation *delegation;
    kd_result delegation_failure;
    int channel_bound;             /* the token carried the bindings given in cb_data */
    /* On success: the accepted name, for kd_accept_logon_info. */
    kd_accepted_name *name;
} kd_accept_out;

/* Per-process registry: one acceptor per keytab path. */
kd_acceptors *kd_acceptors_create(apr_pool_t *p);
kd_acceptor *kd_acceptors_get(kd_acceptors *reg, const char *keytab);

/* Accept the Kerberos token kd_token_sniff found. Thread safe. */
kd_cause kd_acceptor_accept(kd_acceptor *a, apr_pool_t *p, const kd_token_info *info,
                            const kd_accept_params *params,
                            kd_accept_out *out, kd_result *res);

/* The user's logon-info (groups, extra SIDs, resource groups) from the
 * PAC of the accepted ticket: the name attribute "urn:mspac:logon-info",
 * used only when the library says it is authenticated (MIT: the PAC's
 * server checksum verified under our key) and complete, and decoded with
 * kd_pac_logon_info. Read on the first call, kept for the next ones:
 * an exchange whose groups nobody asks for pays nothing but keeping the
 * name until the pool goes. NULL (name NULL, or the ticket carries no
 * verified PAC: an MIT KDC's, or a PAC the KDC stripped; or it does not
 * decode) with *why (when why is not NULL) saying which, for the log. */
const kd_logon_info *kd_accept_logon_info(kd_accepted_name *name, const char **why);

/* The authentication indicators of the accepted ticket (const char *,
 * e.g. "otp", "spake", "pkinit"): the name attribute "auth-indicators"
 * that MIT (1.16+) fills from the ticket's CAMMAC, only the values the
 * library marks authenticated. Read on the first call, kept for the next
 * ones. NULL when there is none (name NULL; a ticket without indicators:
 * every Active Directory ticket, and an MIT login the KDC set none for)
 * with *why (when why is not NULL) saying which. */
const apr_array_header_t *kd_accept_indicators(kd_accepted_name *name, const char **why);

/* The element of have (const char *, may be NULL) equal to name (byte for
 * byte: indicators are case-sensitive, as the KDC's require_auth compares
 * them), or NULL. */
const char *kd_indicator_find(const apr_array_header_t *have, const char *name);

/* The front end's own identity for spn, borrowed until p is cleared: its
 * TGT from this keytab, taken as account when given, else as the keytab's
 * account entry holding spn's key (AD), else as spn itself (MIT). */
kd_cause kd_acceptor_impersonator(kd_acceptor *a, apr_pool_t *p, const char *spn,
                                  const char *account, kd_impersonator *out, kd_result *res);

/* Protocol transition: S4U2Self for user as spn's identity (above);
 * *impersonator (may be NULL) names it, also when the KDC refuses. */
kd_cause kd_acceptor_s4u2self(kd_acceptor *a, apr_pool_t *p, const char *spn,
                              const char *account, const kd_user_name *user,
                              kd_ticket_cache *cache, kd_delegation **out,
                              const char **impersonator, kd_result *res);

/* The health check (SetHandler kdeleg-health). Is the keytab usable for
 * every one of spns: there, readable, holding a key (or its host alias)
 * for each, in the SPN's realm or, for an SPN without one, in any? Cheap
 * enough for every request: a stat, and the acceptor's index of the
 * keytab's names, re-read only when the file changed. KD_CAUSE_NONE, or
 * keytab-unusable with the detail in res. */
kd_cause kd_acceptor_keytab_ready(kd_acceptor *a, apr_pool_t *p, const kd_spn *spns, int n_spns,
                                  kd_result *res);

/* The health check's KDC probe: ask the KDC now for spn's service TGT,
 * exactly as kd_acceptor_impersonator would take it (account, keytab,
 * forwardable), whatever is cached or held, and install the TGT it gets
 * (a renewal for the requests that follow). A KDC that does not answer is
 * held for them as any fetch's failure; an answer clears that. Waits for
 * a fetch in progress: callers rate-limit the probe. KD_CAUSE_NONE, or the
 * cause (kdc-unreachable: no KDC answered; anything else: the KDC or the
 * keytab refused) with the detail in res. */
kd_cause kd_acceptor_probe_kdc(kd_acceptor *a, apr_pool_t *p, const char *spn,
                               const char *account, kd_result *res);

/* How often acceptor credentials were acquired (for tests and the status page). */
unsigned long kd_acceptor_acquisitions(const kd_acceptor *a);

#endif
