/* kd_accept: the acceptor side of SPNEGO. One kd_acceptor per keytab per
 * process holds acceptor credentials pinned to each service principal
 * (acquired from a credential store naming the keytab, never from the
 * process environment), re-acquired when the keytab file changes, shared
 * safely by all threads of the process. */
#ifndef KD_ACCEPT_H
#define KD_ACCEPT_H

#include <apr_pools.h>

#include "kd_result.h"
#include "kd_s4u.h"
#include "kd_spn.h"
#include "kd_token.h"

typedef struct kd_acceptor kd_acceptor;
typedef struct kd_acceptors kd_acceptors;

typedef struct {
    const kd_spn *spns;        /* service principals this vhost answers for */
    int n_spns;
    int want_local_name;       /* run auth_to_local on the client name */
    int want_delegation;       /* keep an S4U2Proxy evidence credential */
    int replay_checked;        /* the node's replay table handles replays: no MIT rcache */
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
} kd_accept_out;

/* Per-process registry: one acceptor per keytab path. */
kd_acceptors *kd_acceptors_create(apr_pool_t *p);
kd_acceptor *kd_acceptors_get(kd_acceptors *reg, const char *keytab);

/* Accept the Kerberos token kd_token_sniff found. Thread safe. */
kd_cause kd_acceptor_accept(kd_acceptor *a, apr_pool_t *p, const kd_token_info *info,
                            const kd_accept_params *params,
                            kd_accept_out *out, kd_result *res);

/* Protocol transition: S4U2Self for user with the impersonator credentials
 * of principal (the service identity, TGT from this acceptor's keytab). */
kd_cause kd_acceptor_s4u2self(kd_acceptor *a, apr_pool_t *p, const char *principal,
                              const char *user, kd_ticket_cache *cache, kd_delegation **out,
                              kd_result *res);

/* How often acceptor credentials were acquired (for tests and the status page). */
unsigned long kd_acceptor_acquisitions(const kd_acceptor *a);

#endif
