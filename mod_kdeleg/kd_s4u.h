/* kd_s4u: constrained delegation. A kd_delegation holds the user's S4U2Proxy
 * evidence for one request: the service ticket the client sent us (or the
 * one S4U2Self got for a user who logged in another way), still encrypted
 * in our own key. From it we obtain service tickets for the configured back
 * ends *as the user*, asking the KDC as the front end's own identity (its
 * TGT, taken as the service account Active Directory knows), and deliver
 * them as a fresh Negotiate token or a per-request FILE credential cache
 * holding only those tickets. Never a forwarded TGT: that would be
 * unconstrained delegation, which this module does not offer; a client that
 * forwards one anyway is served from its service ticket like any other. */
#ifndef KD_S4U_H
#define KD_S4U_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <gssapi/gssapi.h>
#include <krb5.h>

#include "kd_pac.h"
#include "kd_result.h"
#include "kd_ticket_cache.h"

typedef struct kd_delegation kd_delegation;

/* The front end acting for itself: the principal its TGT was taken as
 * (websvc@REALM or WEB1$@REALM on AD, the SPN on MIT), the MEMORY ccache
 * holding that TGT, whether the TGT is forwardable (S4U2Proxy needs it),
 * and a MEMORY keytab with the keys that decrypt tickets issued to it
 * (evidence tickets, S4U2Self tickets). Borrowed for a pool's lifetime. */
typedef struct {
    const char *account;
    const char *ccache;
    const char *keytab;
    int tgt_forwardable;
} kd_impersonator;

/* How a delegation gets its impersonator when it first needs the KDC:
 * never before, so requests served from the node's cache need no TGT. */
typedef kd_cause (*kd_impersonator_fn)(void *baton, apr_pool_t *p, kd_impersonator *out,
                                       kd_result *res);

/* Per-process state (ready credentials); call once per child process. */
void kd_s4u_child_init(apr_pool_t *p);

/* Evidence from a client's AP-REQ: the DER ticket (copied), the client's
 * principal, and the SPN the ticket was for (the identity in cache keys
 * and logs). */
kd_delegation *kd_delegation_from_ticket(apr_pool_t *p, const unsigned char *ticket,
                                         size_t ticket_len, const char *user, const char *spn,
                                         kd_impersonator_fn get_impersonator, void *baton);

/* A delegation without evidence: only tickets already in the node's cache
 * can be used (KDC down, or no ticket from the client to act on). */
kd_delegation *kd_delegation_cache_only(apr_pool_t *p, const char *user, const char *spn,
                                        kd_ticket_cache *cache);

/* Share tickets through the node's cache: looked up before asking the
 * KDC, stored after. NULL: no cache. */
void kd_delegation_set_cache(kd_delegation *d, kd_ticket_cache *cache);

/* The account configured to act for the delegation's SPN
 * (KdelegServiceAccount), or NULL: part of every cache key, so a ticket
 * obtained as WEB1$ never serves a request that acts as websvc, on this
 * node or another. Set before the first lookup. */
void kd_delegation_set_acting_as(kd_delegation *d, const char *account);

const char *kd_delegation_user(const kd_delegation *d);
/* The principal the KDC was asked as, once it was ("" before). */
const char *kd_delegation_impersonator(const kd_delegation *d);
/* Where the last kd_s4u2proxy_ensure/kd_s4u2proxy found the ticket:
 * "cache" (this process or the node's cache) or "kdc". */
const char *kd_delegation_source(const kd_delegation *d);

/* How protocol transition names a user. A name with '@' whose suffix is
 * not the realm (an alternative UPN suffix) is an enterprise name for the
 * KDC to resolve; "DOMAIN\\user" is mapped through netbios (NETBIOS ->
 * REALM, case-insensitive keys) since no KDC understands it; a bare name
 * gets default_realm (or the library's default realm when NULL). */
typedef struct {
    const char *principal;  /* what to parse */
    int enterprise;         /* parse as an enterprise name */
    const char *error;      /* why the name cannot be used, or NULL */
} kd_user_name;

kd_user_name kd_s4u_user_name(apr_pool_t *p, const char *user, const char *default_realm,
                              const char *impersonator_realm, const apr_table_t *netbios);

/* S4U2Self: an evidence ticket for user obtained as imp, for users who
 * authenticated another way. A non-forwardable evidence ticket fails here,
 * with the reason read from the ticket's PAC where there is one (AD):
 * the user is sensitive / in Protected Users, or the front end may not use
 * protocol transition; without a PAC (MIT) *transition_seen (kept per
 * impersonator by the caller, shared through the cache) tells the two
 * apart: an impersonator that has had forwardable tickets before may
 * transition, so the user is the problem. */
kd_cause kd_s4u2self(apr_pool_t *p, const kd_impersonator *imp, const char *spn,
                     const kd_user_name *user, volatile int *transition_seen,
                     kd_ticket_cache *cache, kd_delegation **out, kd_result *res);

/* The user's logon-info from the PAC of a S4U2Self ticket (kd_s4u2self's
 * delegation): the ticket is decrypted with the impersonator's keytab, the
 * PAC's server checksum must verify under one of its keys, then the
 * logon-info buffer is decoded (kd_pac_logon_info). Its extra SIDs carry
 * S-1-18-2, "service asserted identity", which AD adds to S4U2Self
 * tickets. Read on the first call, kept for the next ones (allocated from
 * p: the pool the delegation lives in). NULL with *why (when why is not
 * NULL) when the delegation has no S4U2Self ticket (a Kerberos user's
 * evidence: kd_accept_logon_info has its groups; a delegation served from
 * the node's cache), the ticket has no PAC (MIT) or one that does not
 * verify or decode. */
const kd_logon_info *kd_delegation_logon_info(apr_pool_t *p, kd_delegation *d, const char **why);

/* Make sure a ticket for target is at hand: from the node's cache (no
 * KDC, no token made) or by S4U2Proxy. */
kd_cause kd_s4u2proxy_ensure(apr_pool_t *p, kd_delegation *d, const char *target,
                             kd_result *res);

/* S4U2Proxy to target ("service/host[@REALM]"; without a realm, the
 * front end's own: classic constrained delegation never leaves it): the
 * KDC is asked once per delegation and target, then the ticket is reused.
 * Returns a fresh SPNEGO token for the target (new authenticator every call). */
kd_cause kd_s4u2proxy(apr_pool_t *p, kd_delegation *d, const char *target,
                      unsigned char **token, size_t *token_len, kd_result *res);

/* Per-request credential caches are named KD_CCACHE_PREFIX[TAG_]XXXXXX. */
#define KD_CCACHE_PREFIX "krb5cc_kdeleg_"

/* Write the tickets already obtained for targets into a new FILE ccache
 * (mode 0600, unguessable name, tag in it when not NULL) in dir; the file
 * is removed when pool is cleared or destroyed, whatever happens in
 * between. */
kd_cause kd_delegation_write_ccache(apr_pool_t *p, kd_delegation *d, const char *dir,
                                    const char *tag,
                                    const char *const *targets, int n_targets,
                                    const char **path, kd_result *res);

#endif
