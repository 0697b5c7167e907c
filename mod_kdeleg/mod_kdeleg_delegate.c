/* mod_kdeleg_delegate: constrained delegation after authentication.
 * Obtains the back-end tickets the configuration asks for (S4U2Proxy, with
 * the client's service ticket as evidence), hands them to applications as
 * a per-request KRB5CCNAME and to mod_proxy back ends as a fresh
 * Authorization: Negotiate header, and turns failures into one numbered
 * log line, KDELEG_ERROR and the status KdelegDelegationFailure asks for. */
#include "mod_kdeleg.h"

#include <string.h>

#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_proxy.h>
#include <mod_ssl.h>
#include <apr_strings.h>

#include "kd_base64.h"
#include "kd_identity.h"
#include "kd_s4u.h"

APLOG_USE_MODULE(kdeleg);

/* Proxied requests fail with 502: the gateway could not act for the user. */
static int is_proxied(request_rec *r, const kdeleg_dir_conf *conf)
{
    return r->proxyreq != PROXYREQ_NONE || kdeleg_conf_proxy_spn(conf) != NULL;
}

static int delegation_failed(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st,
                             const kd_result *res, const char *target)
{
    const kd_cause_info *info = kd_cause_get(res->cause);
    int deny = kdeleg_conf_delegation_failure(conf) == KD_DELEGATION_DENY;
    const kdeleg_failure what = {st->principal, target, !deny};

    kdeleg_report_failure(r, info->server_fault ? APLOG_ERR : APLOG_INFO, res, st->spn, &what);
    if (deny)
        return is_proxied(r, conf) ? HTTP_BAD_GATEWAY : HTTP_INTERNAL_SERVER_ERROR;
    st->delegation_error = info->name;
    return OK;
}

/* Only the KdelegDelegateTo tickets go into the application's cache. */
static int write_ccache(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st,
                        kd_delegation *delegation)
{
    kd_result res;
    const char *path;

    kd_result_init(&res);
    if (kdeleg_conf_ccache_dir(conf) == NULL)
        kd_result_fail(&res, r->pool, KD_CAUSE_INTERNAL_ERROR, "ccache",
                       "no KdelegCcacheDir and no runtime directory");
    else if (kd_delegation_write_ccache(r->pool, delegation, kdeleg_conf_ccache_dir(conf),
                                        kdeleg_ccache_tag(r->pool),
                                        (const char *const *)conf->delegate_to->elts,
                                        conf->delegate_to->nelts, &path, &res)
             == KD_CAUSE_NONE) {
        st->ccache = apr_pstrcat(r->pool, "FILE:", path, NULL);
        apr_table_set(r->subprocess_env, "KRB5CCNAME", st->ccache);
        return OK;
    }
    return delegation_failed(r, conf, st, &res, NULL);
}

/* The application's ticket cache when KdelegDelegateTo asks for one. */
static int deliver(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st)
{
    if (conf->delegate_to && conf->delegate_to->nelts > 0)
        return write_ccache(r, conf, st, st->delegation);
    return OK;
}

/* Security teams ask who acted as whom: one line per S4U exchange, with
 * the user, the front end's identity, the target, the outcome and whether
 * the KDC was asked or a cached ticket served. */
static void audit(request_rec *r, const char *step, const char *spn, const char *user,
                  const char *impersonator, const char *target, kd_cause result,
                  const char *source)
{
    kdeleg_log_request(r, APLOG_NOTICE, 0, KDLOGNO(00410), spn,
                       "audit %s user=%s impersonator=%s target=%s result=%s via=%s",
                       step, ap_escape_logitem(r->pool, user),
                       impersonator && *impersonator ? impersonator : "-", target ? target : "-",
                       result == KD_CAUSE_NONE ? "ok" : kd_cause_name(result), source);
}

/* Make sure every target's ticket is at hand before anything runs, so a
 * refusal decides the request; tokens are made only where they are sent.
 * A cache-only pass (quiet) is not audited: it asks nobody. */
static int ensure_all(request_rec *r, const kdeleg_auth_state *st, kd_delegation *delegation,
                      const apr_array_header_t *targets, int quiet, kd_result *res,
                      const char **failed)
{
    int i;

    for (i = 0; i < targets->nelts; i++) {
        const char *target = APR_ARRAY_IDX(targets, i, const char *);
        kd_cause cause;
        kd_result_init(res);
        cause = kd_s4u2proxy_ensure(r->pool, delegation, target, res);
        if (!quiet || cause == KD_CAUSE_NONE)
            audit(r, "S4U2Proxy", st->spn, st->principal,
                  kd_delegation_impersonator(delegation), target, cause,
                  kd_delegation_source(delegation));
        if (cause != KD_CAUSE_NONE) {
            *failed = target;
            return -1;
        }
    }
    return 0;
}

static void note_targets(const apr_array_header_t *targets)
{
    int i;

    for (i = 0; i < targets->nelts; i++)
        kdeleg_note_target(APR_ARRAY_IDX(targets, i, const char *), KD_CAUSE_NONE);
}

/* The node's cache first: when it holds every target's ticket for this
 * user, no evidence and no KDC are needed. NULL when it does not. */
static kd_delegation *from_cache(request_rec *r, const kdeleg_dir_conf *conf,
                                 kdeleg_auth_state *st, const apr_array_header_t *targets,
                                 kd_ticket_cache *cache)
{
    kd_delegation *cached;
    kd_result res;
    const char *failed;

    if (cache == NULL)
        return NULL;
    cached = kd_delegation_cache_only(r->pool, st->principal, st->spn, cache);
    kd_delegation_set_acting_as(cached, kdeleg_conf_service_account(conf, st->spn));
    if (ensure_all(r, st, cached, targets, 1, &res, &failed) != 0) {
        kdeleg_note(KD_STAT_TICKET_CACHE_MISSES);
        return NULL;
    }
    kdeleg_note(KD_STAT_TICKET_CACHE_HITS);
    note_targets(targets);
    return cached;
}

int kdeleg_delegate(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st,
                    kd_delegation *delegation, const kd_result *why_not,
                    const kdeleg_evidence_source *source)
{
    const apr_array_header_t *targets = kdeleg_conf_delegation_targets(r->pool, conf);
    kd_ticket_cache *cache = kdeleg_cache_tickets();
    kd_result res, internal;
    const char *failed = NULL;

    if (targets->nelts == 0)
        return OK;
    if (why_not == NULL || why_not->cause == KD_CAUSE_NONE) {
        kd_result_init(&internal);
        kd_result_fail(&internal, r->pool, KD_CAUSE_INTERNAL_ERROR, "delegate",
                       "no evidence credential");
        why_not = &internal;
    }
    if (delegation == NULL && (st->delegation = from_cache(r, conf, st, targets, cache)) != NULL)
        goto deliver;
    if (delegation == NULL && source != NULL) {
        kd_result_init(&res);
        if ((delegation = source->get(r, source->baton, &res)) == NULL)
            return delegation_failed(r, conf, st, res.cause != KD_CAUSE_NONE ? &res : why_not,
                                     NULL);
    }
    if (delegation == NULL)
        return delegation_failed(r, conf, st, why_not, NULL);
    kd_delegation_set_acting_as(delegation, kdeleg_conf_service_account(conf, st->spn));
    kd_delegation_set_cache(delegation, cache);
    if (ensure_all(r, st, delegation, targets, 0, &res, &failed) != 0)
        return delegation_failed(r, conf, st, &res, failed);
    kdeleg_note(KD_STAT_S4U2PROXY_OK);
    note_targets(targets);
    st->delegation = delegation;
deliver:
    return deliver(r, conf, st);
}

int kdeleg_delegate_again(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st,
                          kd_delegation *evidence)
{
    kd_result why;

    if (kdeleg_conf_delegation_targets(r->pool, conf)->nelts == 0)
        return OK;
    kd_result_init(&why);
    kd_result_fail(&why, r->pool, KD_CAUSE_INTERNAL_ERROR, "delegate",
                   "the request this one derives from kept no evidence ticket (its location "
                   "does not delegate) and the node's cache lacks these tickets: let that "
                   "location delegate too");
    return kdeleg_delegate(r, conf, st, evidence, &why, NULL);
}

/* Authentication by password ran inside mod_auth_basic or mod_auth_form,
 * which end a failed request their own way: the delegation the check made
 * possible happens here, with its ticket as evidence (or the node's
 * cache, after a cached success). */
int kdeleg_delegate_pending(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st)
{
    st->delegation_pending = 0;
    return kdeleg_delegate(r, conf, st, st->evidence, &st->evidence_failure, NULL);
}

int kdeleg_delegate_cached(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st)
{
    const apr_array_header_t *targets = kdeleg_conf_delegation_targets(r->pool, conf);

    if (targets->nelts == 0)
        return OK;
    if ((st->delegation = from_cache(r, conf, st, targets, kdeleg_cache_tickets())) == NULL)
        return DECLINED;
    return deliver(r, conf, st);
}

/* mod_proxy runs this on the copy of the headers it is about to send, once
 * per attempt, after the balancer chose a worker: every attempt gets its
 * own fresh authenticator. */
static int proxy_fixups(request_rec *r)
{
    const kdeleg_dir_conf *conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    const char *spn = kdeleg_conf_proxy_spn(conf);
    const kdeleg_auth_state *st;
    unsigned char *token;
    size_t len;
    kd_result res;

    if (spn == NULL)
        return OK;
    /* The client's own credentials are for us, never for the back end. */
    apr_table_unset(r->headers_in, "Authorization");
    st = kdeleg_auth_state_of(r);
    if (st == NULL || st->delegation == NULL)
        return OK; /* not authenticated by us, or continuing without credentials */
    kd_result_init(&res);
    if (kd_s4u2proxy(r->pool, st->delegation, spn, &token, &len, &res) != KD_CAUSE_NONE) {
        kdeleg_log_request(r, APLOG_ERR, 0, KDLOGNO(00402), st->spn,
                           "no back-end token for %s: cause %s: %s",
                           spn, kd_cause_name(res.cause), ap_escape_logitem(r->pool, res.detail));
        return OK;
    }
    apr_table_setn(r->headers_in, "Authorization",
                   apr_pstrcat(r->pool, "Negotiate ", kd_b64_encode(r->pool, token, len), NULL));
    return OK;
}

/* ------------------------------------------------------------ S4U2Self */

/* The service identity to transition as: the configured principal for the
 * host name the client used (VIP requests act as the VIP account, with its
 * own delegation rights), else the first configured one. */
const char *kdeleg_pick_impersonator(request_rec *r, const kdeleg_dir_conf *conf)
{
    const apr_array_header_t *spns = kdeleg_conf_spns(r, conf);
    const kd_spn *chosen = NULL;
    int i;

    for (i = 0; i < spns->nelts; i++) {
        const kd_spn *spn = &APR_ARRAY_IDX(spns, i, kd_spn);
        if (chosen == NULL || (r->hostname && strcasecmp(spn->host, r->hostname) == 0))
            chosen = spn;
        if (r->hostname && strcasecmp(spn->host, r->hostname) == 0)
            break;
    }
    return chosen ? kd_spn_unparse(r->pool, chosen) : NULL;
}

/* The name protocol transition asks the KDC for: alice@REALM with
 * KdelegUserRealm (else the library's default realm), DOMAIN\\alice
 * through KdelegNetbiosDomain, an alternative UPN suffix as an enterprise
 * name. */
kd_user_name kdeleg_user_name(request_rec *r, const kdeleg_dir_conf *conf, const char *user,
                              const char *spn)
{
    const char *realm = spn ? strrchr(spn, '@') : NULL;

    /* mapping a mapped name changes nothing, so sessions can pass theirs;
     * a bare name gets a realm here, so alice and alice@REALM are one user
     * (one entry in the node's cache) */
    return kd_s4u_user_name(r->pool, user,
                            conf->user_realm ? conf->user_realm : kdeleg_default_realm(),
                            realm ? realm + 1 : kdeleg_default_realm(),
                            kdeleg_srv_conf_of(r->server)->netbios_domains);
}

/* Evidence for a transitioned user, only when the node's cache cannot
 * serve: S4U2Self as the impersonator. */
static kd_delegation *s4u2self_evidence(request_rec *r, void *baton, kd_result *res)
{
    const kdeleg_dir_conf *conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    const kdeleg_auth_state *st = baton;
    kd_delegation *delegation = NULL;
    kd_user_name name = kdeleg_user_name(r, conf, st->principal, st->spn);
    const char *impersonator = NULL;
    kd_cause cause;

    cause = kd_acceptor_s4u2self(kdeleg_acceptor_for(conf), r->pool, st->spn,
                                 kdeleg_conf_service_account(conf, st->spn), &name,
                                 kdeleg_cache_tickets(), &delegation, &impersonator, res);
    audit(r, "S4U2Self", st->spn, st->principal, impersonator, NULL, cause, "kdc");
    if (delegation)
        kdeleg_note(KD_STAT_S4U2SELF_OK);
    return delegation;
}

/* A user name taken from a client certificate mod_ssl verified
 * (SSLVerifyClient require + SSLUserName): r->user is one of the
 * certificate's names that SSLUserName is commonly set to. */
static int from_verified_certificate(request_rec *r)
{
    static const char *const names[] = {"SSL_CLIENT_S_DN_CN", "SSL_CLIENT_S_DN_Email",
                                        "SSL_CLIENT_SAN_Email_0", "SSL_CLIENT_SAN_OTHER_msUPN_0",
                                        "SSL_CLIENT_S_DN"};
    APR_OPTIONAL_FN_TYPE(ssl_var_lookup) *lookup = APR_RETRIEVE_OPTIONAL_FN(ssl_var_lookup);
    const char *verify;
    size_t i;

    if (lookup == NULL)
        return 0;
    verify = lookup(r->pool, r->server, r->connection, r, (char *)"SSL_CLIENT_VERIFY");
    if (verify == NULL || strcmp(verify, "SUCCESS") != 0)
        return 0;
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const char *v = lookup(r->pool, r->server, r->connection, r, (char *)names[i]);
        if (v && *v && strcmp(v, r->user) == 0)
            return 1;
    }
    return 0;
}

/* Protocol transition acts on r->user with the front end's full power:
 * only for users a module checked (Basic, Form, a verified certificate,
 * or an AuthType the administrator named), never for a name any module
 * or header could have set. */
static const char *untrusted_identity(request_rec *r, const kdeleg_dir_conf *conf)
{
    if (kd_auth_type_trusted(r->ap_auth_type, conf->trusted_auth_types)
        || from_verified_certificate(r))
        return NULL;
    return apr_psprintf(r->pool, "%s was set by AuthType %s, which is not Basic, Form, a "
                        "verified client certificate or in KdelegTrustedAuthTypes",
                        r->user, r->ap_auth_type ? r->ap_auth_type : "(none)");
}

/* KdelegUserPrincipal: the name to act as, from an expression evaluated
 * only now that a trusted module has authenticated the request (an
 * expression over request headers would let the client choose). NULL on
 * success (st->principal set), else why; empty fails closed. */
static const char *expression_principal(request_rec *r, const kdeleg_dir_conf *conf,
                                        kdeleg_auth_state *st)
{
    const char *err = NULL;
    const char *name = ap_expr_str_exec(r, conf->user_principal, &err);

    if (err != NULL)
        return apr_psprintf(r->pool, "KdelegUserPrincipal failed for %s: %s", r->user, err);
    if (name == NULL || *name == '\0')
        return apr_psprintf(r->pool, "KdelegUserPrincipal gave an empty name for %s", r->user);
    st->principal = kdeleg_user_name(r, conf, name, st->spn).principal;
    kdeleg_set_identity(r, st);
    return NULL;
}

/* The state of a user another module authenticated, as protocol
 * transition acts on it. */
static kdeleg_auth_state *transition_state(request_rec *r, const kdeleg_dir_conf *conf)
{
    kdeleg_auth_state *st = apr_pcalloc(r->pool, sizeof(*st));

    st->user = r->user;
    st->spn = kdeleg_pick_impersonator(r, conf);
    st->principal = kdeleg_user_name(r, conf, r->user, st->spn).principal;
    st->method = "protocol-transition";
    kd_result_init(&st->evidence_failure);
    return st;
}

/* May protocol transition act on r->user here? 0, or 1 with res saying
 * why not (nothing asked of the KDC). */
static int transition_refused(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st,
                              kd_result *res)
{
    kd_cause refusal = KD_CAUSE_UNTRUSTED_IDENTITY;
    const char *why;

    if (!kdeleg_conf_protocol_transition(conf)) {
        kd_result_fail(res, r->pool, KD_CAUSE_PROTOCOL_TRANSITION_NOT_ALLOWED, "s4u2self",
                       "%s authenticated with AuthType %s and KdelegProtocolTransition is Off "
                       "here", r->user, r->ap_auth_type ? r->ap_auth_type : "(none)");
        return 1;
    }
    if ((why = untrusted_identity(r, conf)) == NULL && conf->user_principal != NULL)
        why = expression_principal(r, conf, st);
    if (why != NULL
        || (refusal = kdeleg_identity_refusal(r, conf, st->principal, &why)) != KD_CAUSE_NONE) {
        kd_result_fail(res, r->pool, refusal, "s4u2self", "%s", why);
        return 1;
    }
    return 0;
}

/* Users authenticated by another module (Basic, form, client certificate)
 * on a location that delegates: S4U2Self, then the same S4U2Proxy path as
 * Kerberos users. Runs in fixups: after authentication and authorization,
 * before the handler (CGI environment, mod_proxy). A transition that
 * already happened for Require kdeleg-group (kdeleg_transition_early)
 * only delegates here, with the ticket it got. */
static int protocol_transition(request_rec *r)
{
    const kdeleg_dir_conf *conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    const kdeleg_auth_state *earlier = kdeleg_auth_state_of(r);
    kdeleg_auth_state *st;
    kdeleg_evidence_source source = {s4u2self_evidence, NULL};
    kd_result res;

    if (earlier != NULL) {
        if (r->main || r->prev)
            kdeleg_set_identity(r, earlier); /* subrequest of a transitioned request */
        else if (earlier->delegation_pending)
            return kdeleg_delegate_pending(r, conf, (kdeleg_auth_state *)earlier);
        return DECLINED;
    }
    if (r->user == NULL || !kdeleg_conf_delegates(conf))
        return DECLINED;
    st = transition_state(r, conf);
    source.baton = st;
    ap_set_module_config(r->request_config, &kdeleg_module, st);
    kdeleg_set_identity(r, st);
    kd_result_init(&res);
    if (transition_refused(r, conf, st, &res))
        return delegation_failed(r, conf, st, &res, NULL);
    return kdeleg_delegate(r, conf, st, NULL, NULL, &source);
}

/* Require kdeleg-group for a user another module authenticated runs
 * before fixups: the S4U2Self ticket whose PAC holds the user's groups is
 * fetched now, under the same rules as in fixups, and kept as the
 * evidence the fixups' delegation then uses (one S4U2Self either way).
 * NULL with *why when there is no transition here. */
kdeleg_auth_state *kdeleg_transition_early(request_rec *r, const kdeleg_dir_conf *conf,
                                           const char **why)
{
    kdeleg_auth_state *st;
    kd_result res;

    if (r->user == NULL) {
        *why = "no user";
        return NULL;
    }
    st = transition_state(r, conf);
    kd_result_init(&res);
    if (transition_refused(r, conf, st, &res)) {
        *why = apr_psprintf(r->pool, "%s was authenticated by AuthType %s, not by mod_kdeleg, "
                            "and protocol transition cannot act on it here (%s: %s)",
                            r->user, r->ap_auth_type ? r->ap_auth_type : "(none)",
                            kd_cause_name(res.cause), res.detail ? res.detail : "");
        return NULL;
    }
    ap_set_module_config(r->request_config, &kdeleg_module, st);
    kdeleg_set_identity(r, st);
    st->evidence = s4u2self_evidence(r, st, &res);
    st->evidence_failure = res;
    st->delegation_pending = 1;
    if (st->evidence == NULL)
        *why = apr_psprintf(r->pool, "S4U2Self for %s failed (%s: %s)", st->principal,
                            kd_cause_name(res.cause), res.detail ? res.detail : "");
    return st;
}

/* A session user this node has no cached tickets for: S4U2Self as this
 * node's identity for the host name (the session's acceptor may be another
 * node's), then S4U2Proxy. */
int kdeleg_delegate_transition(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st)
{
    kdeleg_evidence_source source = {s4u2self_evidence, NULL};

    st->spn = kdeleg_pick_impersonator(r, conf);
    apr_table_set(r->subprocess_env, "KDELEG_SPN", st->spn);
    source.baton = st;
    return kdeleg_delegate(r, conf, st, NULL, NULL, &source);
}

void kdeleg_delegate_register_hooks(apr_pool_t *p)
{
    ap_hook_fixups(protocol_transition, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(proxy, fixups, proxy_fixups, NULL, NULL, APR_HOOK_MIDDLE);
}
