/* mod_kdeleg_auth: AuthType Negotiate. Reads the Authorization header,
 * lets the core decide, and turns the core's result into r->user, the
 * environment, the reply headers, one log line and the HTTP status. */
#include "mod_kdeleg.h"

#include <string.h>

#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <mod_auth.h>
#include <apr_strings.h>

#include "kd_causes.h"
#include "kd_identity.h"
#include "kd_result.h"
#include "kd_token.h"

APLOG_USE_MODULE(kdeleg);

/* Per-process acceptor registry and the library's default realm, made in
 * child_init and read-only afterwards. */
static kd_acceptors *acceptors;
static const char *default_realm;

void kdeleg_auth_child_init(apr_pool_t *pchild)
{
    krb5_context ctx;
    char *realm;

    acceptors = kd_acceptors_create(pchild);
    if (krb5_init_context(&ctx) == 0) {
        if (krb5_get_default_realm(ctx, &realm) == 0) {
            default_realm = apr_pstrdup(pchild, realm);
            krb5_free_default_realm(ctx, realm);
        }
        krb5_free_context(ctx);
    }
}

const char *kdeleg_default_realm(void)
{
    return default_realm;
}

static int is_negotiate(request_rec *r)
{
    const char *type = ap_auth_type(r);

    return type != NULL && strcasecmp(type, KD_AUTH_TYPE) == 0;
}

/* A failure the FQDN fallback takes care of is information, not an error. */
static int failure_level(const kd_result *res, int bounced)
{
    const kd_cause_info *info = kd_cause_get(res->cause);

    if (res->cause == KD_CAUSE_NO_TOKEN)
        return APLOG_DEBUG;
    if (bounced)
        return APLOG_INFO;
    if (info->server_fault)
        return info->http_status >= 500 ? APLOG_ERR : APLOG_WARNING;
    return APLOG_INFO;
}

/* Set on r->notes while KdelegAuthOptional tries the client's credentials
 * (and left there: authorization may still ask for a user afterwards). */
#define NOTE_OPTIONAL "kdeleg-optional-tried"

int kdeleg_may_challenge(request_rec *r, const kdeleg_dir_conf *conf, int token_refused)
{
    /* A location that never asks; clients SetEnvIf marks as unable to do
     * Kerberos (they would show a password dialog or fall back to NTLM);
     * and, under KdelegNegotiateOnce, a client whose token was just
     * refused, which would only send the same failing token again.
     * mod_auth_gssapi's name for the variable works too, so its
     * BrowserMatch lines carry over. */
    if (conf->auth_optional == 1 || apr_table_get(r->subprocess_env, "kdeleg-no-negotiate")
        || apr_table_get(r->subprocess_env, "gssapi-no-negotiate"))
        return 0;
    return !(token_refused && conf->negotiate_once == 1);
}

static int fail(request_rec *r, const kd_result *res, const char *spn)
{
    const kdeleg_dir_conf *conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    const kd_cause_info *info = kd_cause_get(res->cause);
    const kdeleg_failure authentication = {NULL, NULL, 0};
    int status = DECLINED;

    /* On a load-balanced name this node cannot serve with Kerberos, the
     * node's own name may work: the FQDN fallback (not for optional
     * authentication, which goes on anonymously instead). */
    if (apr_table_get(r->notes, NOTE_OPTIONAL) == NULL)
        status = kdeleg_fqdn_bounce(r, conf, res->cause);
    kdeleg_report_failure(r, failure_level(res, status != DECLINED), res, spn, &authentication);
    if (status != DECLINED)
        return status;
    if (info->http_status == HTTP_UNAUTHORIZED) {
        if (kdeleg_may_challenge(r, conf, res->cause != KD_CAUSE_NO_TOKEN))
            apr_table_setn(r->err_headers_out, "WWW-Authenticate", KD_AUTH_TYPE);
        return HTTP_UNAUTHORIZED;
    }
    return info->http_status;
}

const char *kdeleg_remote_user_of(request_rec *r, const kdeleg_dir_conf *conf, const char *principal,
                               const char *local_name, const char *spn)
{
    const char *at;

    switch (kdeleg_conf_remote_user(conf)) {
    case KD_REMOTE_USER_SHORT:
        /* The realm follows the last '@' (enterprise names contain one). */
        at = strrchr(principal, '@');
        return at ? apr_pstrmemdup(r->pool, principal, (apr_size_t)(at - principal)) : principal;
    case KD_REMOTE_USER_LOCAL:
        if (local_name)
            return local_name;
        kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00302), spn,
                           "no auth_to_local mapping for %s; using the full principal as "
                           "REMOTE_USER",
                           principal);
        return principal;
    default:
        return principal;
    }
}

kd_acceptor *kdeleg_acceptor_for(const kdeleg_dir_conf *conf)
{
    return kd_acceptors_get(acceptors, kdeleg_conf_keytab(conf));
}

/* The environment applications see for an established identity. */
void kdeleg_set_identity(request_rec *r, const kdeleg_auth_state *st)
{
    apr_table_set(r->subprocess_env, "GSS_NAME", st->principal);
    apr_table_set(r->subprocess_env, "KDELEG_AUTH_METHOD", st->method);
    apr_table_set(r->subprocess_env, "KDELEG_SPN", st->spn);
    /* mod_auth_gssapi's name and meaning, so applications carry over */
    if (st->expires > 0)
        apr_table_set(r->subprocess_env, "GSS_SESSION_EXPIRATION",
                      apr_psprintf(r->pool, "%" APR_INT64_T_FMT, (apr_int64_t)st->expires));
    if (st->ccache)
        apr_table_set(r->subprocess_env, "KRB5CCNAME", st->ccache);
    if (st->delegation_error)
        apr_table_set(r->subprocess_env, "KDELEG_ERROR", st->delegation_error);
}

static void set_identity(request_rec *r, const kdeleg_auth_state *st)
{
    r->user = apr_pstrdup(r->pool, st->user);
    r->ap_auth_type = KD_AUTH_TYPE;
    kdeleg_set_identity(r, st);
}

kd_cause kdeleg_identity_refusal(request_rec *r, const kdeleg_dir_conf *conf, const char *principal,
                                 const char **why)
{
    const char *realm = kd_principal_realm(principal);

    if (kd_principal_is_anonymous(principal) && conf->allow_anonymous != 1) {
        *why = apr_psprintf(r->pool, "%s is anonymous and KdelegAllowAnonymous is Off here",
                            principal);
        return KD_CAUSE_ANONYMOUS_TICKET;
    }
    if (!kd_realm_allowed(realm, conf->realms)) {
        *why = apr_psprintf(r->pool, "realm %s of %s is not in KdelegRealms %s",
                            realm ? realm : "(none)", principal,
                            apr_array_pstrcat(r->pool, conf->realms, ' '));
        return KD_CAUSE_REALM_NOT_ALLOWED;
    }
    return KD_CAUSE_NONE;
}

/* The identity policy for principal here: DECLINED when it may pass, else
 * the failure's status. */
static int policy_refusal(request_rec *r, const kdeleg_dir_conf *conf, const char *principal,
                          const char *spn)
{
    const char *why;
    kd_cause refusal;
    kd_result res;

    if ((refusal = kdeleg_identity_refusal(r, conf, principal, &why)) == KD_CAUSE_NONE)
        return DECLINED;
    kd_result_init(&res);
    kd_result_fail(&res, r->pool, refusal, "policy", "%s", why);
    return fail(r, &res, spn);
}

static int succeed(request_rec *r, const kdeleg_dir_conf *conf, const kd_token_info *info,
                   const kd_accept_out *out, const kdeleg_evidence_source *source)
{
    kdeleg_auth_state *st = apr_pcalloc(r->pool, sizeof(*st));
    int status;

    /* A verified ticket, but for whom: the policy before any identity is set. */
    if ((status = policy_refusal(r, conf, out->client_principal, out->spn)) != DECLINED)
        return status;

    st->principal = out->client_principal;
    st->user = kdeleg_remote_user_of(r, conf, out->client_principal, out->local_name, out->spn);
    st->spn = out->spn;
    st->ticket_sname = info->ticket_sname;
    st->ticket_realm = info->ticket_realm;
    st->method = "kerberos";
    st->expires = (long long)apr_time_sec(r->request_time) + out->ticket_seconds_left;
    st->accepted = out->name;
    kdeleg_note(KD_STAT_AUTH_OK);
    ap_set_module_config(r->request_config, &kdeleg_module, st);
    set_identity(r, st);
    status = kdeleg_delegate(r, conf, st, out->delegation, &out->delegation_failure, source);
    if (status != OK)
        return status;
    if (out->mutual_token)
        apr_table_set(r->err_headers_out, "WWW-Authenticate",
                      apr_pstrcat(r->pool, KD_AUTH_TYPE " ", out->mutual_token, NULL));
    kdeleg_log_request(r, APLOG_DEBUG, 0, KDLOGNO(00303), out->spn,
                       "authenticated %s as %s",
                       out->client_principal, st->user);
    return kdeleg_session_after_kerberos(r, conf, st, out->ticket_seconds_left);
}

static int offers_negotiate(const char *authorization)
{
    return authorization != NULL && strncasecmp(authorization, "Negotiate", 9) == 0
           && (authorization[9] == ' ' || authorization[9] == '\t');
}

const kdeleg_auth_state *kdeleg_auth_state_of(request_rec *r)
{
    const kdeleg_auth_state *st = ap_get_module_config(r->request_config, &kdeleg_module);
    request_rec *o = r;

    while (st == NULL && (o = o->prev ? o->prev : o->main) != NULL)
        st = ap_get_module_config(o->request_config, &kdeleg_module);
    return st;
}

/* A subrequest or internal redirect reuses the identity the exchange
 * established (the token is spent), never its credentials: its own
 * location decides, by its own policy and delegation settings, what it
 * gets. Subrequests copy the parent's environment, so the parent's
 * KRB5CCNAME is taken out first. */
static int adopt_identity(request_rec *r, const kdeleg_dir_conf *conf, const kdeleg_auth_state *st)
{
    kdeleg_auth_state *own;
    int status;

    if ((status = policy_refusal(r, conf, st->principal, st->spn)) != DECLINED)
        return status;
    own = apr_pmemdup(r->pool, st, sizeof(*st));
    own->delegation = NULL;
    own->ccache = NULL;
    own->delegation_error = NULL;
    apr_table_unset(r->subprocess_env, "KRB5CCNAME");
    apr_table_unset(r->subprocess_env, "REDIRECT_KRB5CCNAME");
    apr_table_unset(r->subprocess_env, "KDELEG_ERROR");
    ap_set_module_config(r->request_config, &kdeleg_module, own);
    set_identity(r, own);
    return kdeleg_delegate_again(r, conf, own, st->delegation);
}

static int reuse_exchange(request_rec *r, const kdeleg_dir_conf *conf, const kdeleg_auth_state *st)
{
    const apr_array_header_t *spns = kdeleg_conf_spns(r, conf);
    kd_result res;
    int i;

    /* A session was checked against the site when it was opened; its
     * acceptor may be another node's name. */
    if (strcmp(st->method, "session") == 0)
        return adopt_identity(r, conf, st);
    for (i = 0; i < spns->nelts; i++) {
        if (kd_spn_matches(&APR_ARRAY_IDX(spns, i, kd_spn), st->ticket_sname, st->ticket_realm))
            return adopt_identity(r, conf, st);
    }
    kd_result_init(&res);
    kd_result_fail(&res, r->pool, KD_CAUSE_WRONG_SPN, "accept",
                   "the parent request authenticated for %s, which this location does not "
                   "accept", st->spn);
    return fail(r, &res, st->spn);
}

/* The replay check refused the authenticator: seen before (a copy raced
 * in through another worker, or another node of the farm claimed it), or
 * the check cannot be made (the table is full, its lock failed, the
 * farm's store does not answer), where the token is refused rather than
 * let through unchecked. */
static int replay_refused(request_rec *r, const kd_token_info *info, kd_replay_result rc,
                          const kdeleg_replay_why *why)
{
    const char *spn = kd_token_ticket_principal(r->pool, info);
    kd_result res;
    int status;
    char errbuf[128];

    kd_result_init(&res);
    switch (rc) {
    case KD_REPLAY_SEEN:
        kd_result_fail(&res, r->pool, KD_CAUSE_REPLAY, "accept",
                       "authenticator for %s seen before %s", spn,
                       why->elsewhere ? "in the farm (the shared store had it)" : "on this node");
        return fail(r, &res, spn);
    case KD_REPLAY_FULL:
        kdeleg_log_request(r, APLOG_ERR, 0, KDLOGNO(00304), ap_escape_logitem(r->pool, spn),
                           "the replay cache is full: raise KdelegReplayCache (about 20 bytes x "
                           "requests per second x 11 minutes, x1.5), or set it off "
                           "to use MIT's file replay cache");
        kd_result_fail(&res, r->pool, KD_CAUSE_REPLAY_CACHE_UNAVAILABLE, "replay", "full");
        break;
    case KD_REPLAY_SHARED_DOWN:
        kd_result_fail(&res, r->pool,
                       why->key_mismatch ? KD_CAUSE_FARM_KEY_MISMATCH : KD_CAUSE_SHARED_STORE_DOWN,
                       "replay", "%s", why->detail);
        break;
    default:
        kd_result_fail(&res, r->pool, KD_CAUSE_REPLAY_CACHE_UNAVAILABLE, "replay",
                       "cannot lock the replay cache: %s",
                       apr_strerror(why->lock_rv, errbuf, sizeof(errbuf)));
    }
    status = fail(r, &res, spn);
    apr_table_setn(r->err_headers_out, "Retry-After", "5");
    return status;
}

/* The client's token failed: its session may serve instead (see
 * kdeleg_session_instead), else the failure as usual. */
static int token_failed(request_rec *r, const kdeleg_dir_conf *conf, const kd_result *res,
                        const char *spn)
{
    int status = kdeleg_session_instead(r, conf, res->cause, spn);

    return status != DECLINED ? status : fail(r, res, spn);
}

/* The exchange itself: a session cookie, else the Negotiate token. */
static int authenticate(request_rec *r, const kdeleg_dir_conf *conf)
{
    const apr_array_header_t *spns;
    kd_result res;
    kd_token_info info;
    kd_accept_params params;
    kd_accept_out out;
    unsigned char *tok;
    size_t len;
    kd_replay_result rc;
    kdeleg_replay_why why;
    unsigned char tag[KD_REPLAY_TAG_BYTES];
    int status;
    const char *authorization;

    /* A Negotiate token always wins over a session cookie: it is how a
     * client whose session cannot serve this node (delegation) answers
     * our re-challenge. Not over a transfer token: that is the way back
     * from the node leg of the FQDN fallback, and clients that send
     * Negotiate unasked (curl, .NET PreAuthenticate) send it again with
     * it, for the virtual name this node has just failed to serve; the
     * failure would end the way back. Redeemed once, it is spent. */
    authorization = apr_table_get(r->headers_in, "Authorization");
    if (offers_negotiate(authorization)) {
        if ((status = kdeleg_session_redeem(r, conf)) != DECLINED)
            return status;
    }
    else if ((status = kdeleg_session_authenticate(r, conf)) != DECLINED)
        return status;
    kd_result_init(&res);
    if (kd_token_from_header(r->pool, authorization, &tok, &len,
                             &res) != KD_CAUSE_NONE
        || kd_token_sniff(r->pool, tok, len, &info, &res) != KD_CAUSE_NONE)
        return token_failed(r, conf, &res, NULL);

    /* A known authenticator is refused before any cryptography. */
    if (kdeleg_replay_active()) {
        kd_replay_tag(info.authenticator, info.authenticator_len, tag);
        if ((rc = kdeleg_replay_seen(tag, &why)) != KD_REPLAY_FRESH)
            return replay_refused(r, &info, rc, &why);
    }
    spns = kdeleg_conf_spns(r, conf);
    params.replay_checked = kdeleg_replay_active();
    params.spns = (const kd_spn *)spns->elts;
    params.n_spns = spns->nelts;
    params.want_local_name = kdeleg_conf_remote_user(conf) == KD_REMOTE_USER_LOCAL;
    /* The evidence is the ticket itself: keeping it costs a copy, and the
     * KDC is asked only when the node's cache lacks a ticket. */
    params.want_delegation = kdeleg_conf_delegates(conf);
    params.accounts = conf->service_accounts
                          ? (const kd_service_account *)conf->service_accounts->elts : NULL;
    params.n_accounts = conf->service_accounts ? conf->service_accounts->nelts : 0;
    kdeleg_channel_binding_params(r, conf, &params);
    if (kd_acceptor_accept(kdeleg_acceptor_for(conf), r->pool, &info,
                           &params, &out, &res) != KD_CAUSE_NONE)
        return token_failed(r, conf, &res, kd_token_ticket_principal(r->pool, &info));
    if (params.replay_checked
        && (rc = kdeleg_replay_record(r->pool, tag, &why)) != KD_REPLAY_FRESH)
        return replay_refused(r, &info, rc, &why);
    kdeleg_channel_binding_note(r, conf, &out);
    return succeed(r, conf, &info, &out, NULL);
}

static int check_authn(request_rec *r)
{
    const kdeleg_dir_conf *conf;
    const kdeleg_auth_state *earlier;

    if (!is_negotiate(r))
        return DECLINED;
    conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    /* check_authn runs once per request, before r has state of its own:
     * any state found belongs to the request this one derives from. */
    if ((earlier = kdeleg_auth_state_of(r)) != NULL)
        return reuse_exchange(r, conf, earlier);
    /* KdelegAuthOptional already tried what the client sent and found no
     * user, and authorization wants one: refuse, without a challenge. */
    if (apr_table_get(r->notes, NOTE_OPTIONAL) != NULL)
        return HTTP_UNAUTHORIZED;
    return authenticate(r, conf);
}

/* Anonymous after all: nothing of a half-finished exchange (a session
 * that opened, then wanted Kerberos for delegation) may reach the
 * application or a later phase. */
static void forget_identity(request_rec *r)
{
    static const char *const vars[] = {"GSS_NAME", "KDELEG_AUTH_METHOD", "KDELEG_SPN",
                                       "KRB5CCNAME", "GSS_SESSION_EXPIRATION"};
    size_t i;

    r->user = NULL;
    r->ap_auth_type = NULL;
    ap_set_module_config(r->request_config, &kdeleg_module, NULL);
    for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        apr_table_unset(r->subprocess_env, vars[i]);
}

/* KdelegAuthOptional: before authorization decides, use the token or
 * session the client sent, if any; whatever is wrong with it, the request
 * goes on anonymously (never a challenge), so that "Require all granted"
 * pages see REMOTE_USER when there is one. Only a step after the user is
 * known (delegation, the session's redirects) keeps its own answer. */
static int optional_authn(request_rec *r)
{
    const kdeleg_dir_conf *conf;
    int status;

    if (!is_negotiate(r) || r->main != NULL || r->prev != NULL)
        return DECLINED;
    conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    if (conf->auth_optional != 1)
        return DECLINED;
    apr_table_setn(r->notes, NOTE_OPTIONAL, "1");
    if (!offers_negotiate(apr_table_get(r->headers_in, "Authorization"))
        && !kdeleg_session_offered(r))
        return DECLINED;
    status = authenticate(r, conf);
    if (status == OK || ap_is_HTTP_REDIRECT(status)
        || (r->user != NULL && kdeleg_auth_state_of(r) != NULL))
        return status == OK ? DECLINED : status;
    forget_identity(r);
    apr_table_unset(r->err_headers_out, "WWW-Authenticate");
    apr_table_unset(r->err_headers_out, "Retry-After");
    return DECLINED;
}

/* mod_authz_core calls this when Require fails after authentication: the
 * client must be invited to try again with Negotiate. */
static int note_auth_failure(request_rec *r, const char *auth_type)
{
    if (auth_type == NULL || strcasecmp(auth_type, KD_AUTH_TYPE) != 0)
        return DECLINED;
    if (kdeleg_may_challenge(r, ap_get_module_config(r->per_dir_config, &kdeleg_module), 0))
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", KD_AUTH_TYPE);
    return OK;
}

void kdeleg_auth_register_hooks(apr_pool_t *p)
{
    ap_hook_check_authn(check_authn, NULL, NULL, APR_HOOK_MIDDLE, AP_AUTH_INTERNAL_PER_CONF);
    /* Before mod_authz_core's access_checker_ex decides whether a user is needed. */
    ap_hook_access_checker(optional_authn, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_note_auth_failure(note_auth_failure, NULL, NULL, APR_HOOK_MIDDLE);
}
