/* kd_s4u: constrained delegation. A kd_delegation is the user's S4U2Proxy
 * evidence credential for one request (made by the acceptor from the
 * client's service ticket, or later by S4U2Self); from it we obtain service
 * tickets for the configured back ends *as the user* and deliver them as a
 * fresh Negotiate token or a per-request FILE credential cache holding only
 * those tickets. Never a forwarded TGT: that would be unconstrained
 * delegation, which this module does not offer. */
#ifndef KD_S4U_H
#define KD_S4U_H

#include <apr_pools.h>
#include <gssapi/gssapi.h>

#include "kd_result.h"
#include "kd_ticket_cache.h"

typedef struct kd_delegation kd_delegation;

/* Per-process state (ready credentials); call once per child process. */
void kd_s4u_child_init(apr_pool_t *p);

/* Take ownership of an evidence credential; released with the pool. */
kd_delegation *kd_delegation_wrap(apr_pool_t *p, gss_cred_id_t cred, const char *user,
                                  const char *impersonator);

/* A delegation without evidence: only tickets already in the node's cache
 * can be used (KDC down, or no ticket from the client to act on). */
kd_delegation *kd_delegation_cache_only(apr_pool_t *p, const char *user,
                                        const char *impersonator, kd_ticket_cache *cache);

/* Share tickets through the node's cache: looked up before asking the
 * KDC, stored after. NULL: no cache. */
void kd_delegation_set_cache(kd_delegation *d, kd_ticket_cache *cache);

const char *kd_delegation_user(const kd_delegation *d);
const char *kd_delegation_impersonator(const kd_delegation *d);

/* Is this delegated credential an S4U2Proxy evidence credential composed
 * by our own acceptor (and not a TGT the client forwarded)? Sets
 * *impersonator to the impersonating principal when it is. */
int kd_is_evidence_credential(apr_pool_t *p, gss_cred_id_t cred, const char **impersonator);

/* S4U2Self: an evidence credential for user (a principal name) obtained
 * by the impersonator's credentials, for users who authenticated another
 * way. A non-forwardable evidence ticket fails here. The KDC gives the same
 * answer when the impersonator may not use protocol transition and when the
 * user is sensitive; *transition_seen (kept per impersonator identity by
 * the caller) records that this impersonator has had a forwardable
 * S4U2Self ticket before, which proves the second case; with a cache the
 * fact is shared by all children of the node. */
kd_cause kd_s4u2self(apr_pool_t *p, gss_cred_id_t impersonator_cred, const char *impersonator,
                     const char *user, volatile int *transition_seen, kd_ticket_cache *cache,
                     kd_delegation **out, kd_result *res);

/* Make sure a ticket for target is at hand: from the node's cache (no
 * KDC, no token made) or by S4U2Proxy. */
kd_cause kd_s4u2proxy_ensure(apr_pool_t *p, kd_delegation *d, const char *target,
                             kd_result *res);

/* S4U2Proxy to target ("service/host[@REALM]"): the KDC is asked once per
 * delegation and target, then the ticket is reused. Returns a fresh
 * SPNEGO token for the target (new authenticator every call). */
kd_cause kd_s4u2proxy(apr_pool_t *p, kd_delegation *d, const char *target,
                      unsigned char **token, size_t *token_len, kd_result *res);

/* Write the tickets already obtained for targets into a new FILE ccache
 * (mode 0600, unguessable name) in dir; the file is removed when pool is
 * cleared or destroyed, whatever happens in between. */
kd_cause kd_delegation_write_ccache(apr_pool_t *p, kd_delegation *d, const char *dir,
                                    const char *const *targets, int n_targets,
                                    const char **path, kd_result *res);

#endif
