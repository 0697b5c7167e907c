/* mod_kdeleg_password: AuthBasicProvider kdeleg and AuthFormProvider
 * kdeleg. A password is checked by getting the user's TGT, a ticket for
 * this server's own SPN with it, and accepting that ticket with the keytab
 * (kd_password.c says why a bare AS exchange is not enough). The user then
 * is what a Kerberos login makes: the PAC's groups for Require
 * kdeleg-group, and the ticket as S4U2Proxy evidence, so the front end
 * needs no protocol transition right. Delegation itself waits for fixups
 * (kdeleg_delegate_pending): a provider can only say granted or denied.
 *
 * The password never leaves this file except into the AS exchange: the
 * caches key on an HMAC under a per-process secret, and nothing logged
 * contains it. */
#include "mod_kdeleg.h"

#include <string.h>

#include <http_core.h>
#include <http_log.h>
#include <http_request.h>
#include <http_ssl.h>
#include <mod_auth.h>
#include <apr_strings.h>

#include "kd_groups.h"
#include "kd_password.h"
#include "kd_token.h"

APLOG_USE_MODULE(kdeleg);

#define KD_PASSWORD_PROVIDER "kdeleg"
#define DEFAULT_SUCCESS_SECONDS 60
#define DEFAULT_FAILURE_SECONDS 30
#define CACHE_ENTRIES 4096

/* Per process, made in child_init. */
static kd_password_cache *successes;
static kd_password_cache *failures;

void kdeleg_password_child_init(apr_pool_t *pchild)
{
    successes = kd_password_cache_create(pchild, CACHE_ENTRIES);
    failures = kd_password_cache_create(pchild, CACHE_ENTRIES);
}

/* ------------------------------------------------------------ directives */

const char *kdeleg_set_password_without_tls(cmd_parms *cmd, void *dconf, int on)
{
    kdeleg_srv_conf *sc = ap_get_module_config(cmd->server->module_config, &kdeleg_module);

    (void)dconf;
    sc->password_without_tls = on ? 1 : 0;
    return NULL;
}

static const char *seconds(cmd_parms *cmd, const char *arg, int *out)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (*arg == '\0' || *end != '\0' || v < 0 || v > 86400)
        return apr_pstrcat(cmd->pool, cmd->cmd->name, ": seconds from 0 (off) to 86400, not '",
                           arg, "'", NULL);
    *out = (int)v;
    return NULL;
}

const char *kdeleg_set_password_cache(cmd_parms *cmd, void *dconf, const char *arg)
{
    return seconds(cmd, arg, &((kdeleg_dir_conf *)dconf)->password_cache);
}

const char *kdeleg_set_password_failure_cache(cmd_parms *cmd, void *dconf, const char *arg)
{
    return seconds(cmd, arg, &((kdeleg_dir_conf *)dconf)->password_failure_cache);
}

static apr_interval_time_t success_lifetime(const kdeleg_dir_conf *conf)
{
    return apr_time_from_sec(conf->password_cache == KD_UNSET ? DEFAULT_SUCCESS_SECONDS
                                                              : conf->password_cache);
}

static apr_interval_time_t failure_lifetime(const kdeleg_dir_conf *conf)
{
    return apr_time_from_sec(conf->password_failure_cache == KD_UNSET
                                 ? DEFAULT_FAILURE_SECONDS : conf->password_failure_cache);
}

/* ------------------------------------------------------------ start-up: TLS */

static int is_directive(const ap_directive_t *node, const char *name)
{
    return strcasecmp(node->directive, name) == 0;
}

static int has_word(apr_pool_t *p, const ap_directive_t *node, const char *word)
{
    const char *args = node->args ? node->args : "";

    while (*args) {
        const char *w = ap_getword_conf(p, &args);
        if (strcasecmp(w, word) == 0)
            return 1;
    }
    return 0;
}

/* Among the nodes of one section (not inside nested ones): the directive
 * name with one of the on-words. */
static int section_says(apr_pool_t *p, const ap_directive_t *first, const char *name,
                        const char *on1, const char *on2)
{
    const ap_directive_t *n;

    for (n = first; n; n = n->next) {
        if (is_directive(n, name) && (has_word(p, n, on1) || (on2 && has_word(p, n, on2))))
            return 1;
    }
    return 0;
}

/* Where AuthBasicProvider or AuthFormProvider names kdeleg, the virtual
 * host (or the main server) must do TLS itself, or say that TLS ends in
 * front of it. Refusing the request later would be too late: the password
 * has crossed the wire by then. (.htaccess files cannot be seen here: the
 * request-time check covers them.) */
static int check_tree(apr_pool_t *p, server_rec *s, const ap_directive_t *node)
{
    for (; node; node = node->next) {
        if ((is_directive(node, "AuthBasicProvider") || is_directive(node, "AuthFormProvider"))
            && has_word(p, node, KD_PASSWORD_PROVIDER)) {
            const ap_directive_t *up = node->parent;
            while (up && !is_directive(up, "<VirtualHost"))
                up = up->parent;
            if (!section_says(p, up ? up->first_child : ap_conftree, "SSLEngine", "on",
                              "optional")
                && !section_says(p, up ? up->first_child : ap_conftree,
                                 "KdelegPasswordWithoutTLS", "on", NULL)
                && !section_says(p, ap_conftree, "KdelegPasswordWithoutTLS", "on", NULL)) {
                ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, KDLOGNO(00220)
                             "%s %s (%s:%d) in a %s without SSLEngine on: passwords would "
                             "cross the network in clear; enable TLS there, or set "
                             "KdelegPasswordWithoutTLS On if TLS ends in front of httpd",
                             node->directive, node->args, node->filename, node->line_num,
                             up ? "virtual host" : "main server");
                return HTTP_INTERNAL_SERVER_ERROR;
            }
        }
        if (node->first_child && check_tree(p, s, node->first_child) != OK)
            return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

int kdeleg_password_check_config(apr_pool_t *p, server_rec *s)
{
    return check_tree(p, s, ap_conftree);
}

/* ------------------------------------------------------------ the provider */

static int over_tls(request_rec *r)
{
    return ap_ssl_conn_is_ssl(r->connection)
           || kdeleg_srv_conf_of(r->server)->password_without_tls == 1;
}

static void report(request_rec *r, int level, const kd_result *res, const char *spn)
{
    const kdeleg_failure authentication = {NULL, NULL, 0};

    kdeleg_report_failure(r, level, res, spn, &authentication);
}

/* A refusal the KDC gave about the user (not about itself or us): worth
 * remembering, so that a browser resending a stale password for every
 * image does not lock the account. */
static int user_refusal(kd_cause cause)
{
    switch (cause) {
    case KD_CAUSE_WRONG_PASSWORD:
    case KD_CAUSE_ACCOUNT_LOCKED:
    case KD_CAUSE_ACCOUNT_EXPIRED:
    case KD_CAUSE_PASSWORD_EXPIRED:
    case KD_CAUSE_PASSWORD_MUST_CHANGE:
    case KD_CAUSE_USER_DISABLED:
        return 1;
    default:
        return 0;
    }
}

/* What a cached success keeps: the principal, its auth_to_local name, the
 * SPN, and the groups (present flag, then their compact form). */
typedef struct {
    const char *principal;
    const char *local_name;  /* NULL when none */
    const char *spn;
    const kd_groups *groups; /* NULL: no group information */
} remembered;

static void remember_success(request_rec *r, const kdeleg_dir_conf *conf,
                             const unsigned char *key, const remembered *m)
{
    size_t pl = strlen(m->principal) + 1, ll = strlen(m->local_name ? m->local_name : "") + 1;
    size_t sl = strlen(m->spn) + 1, gl = m->groups ? kd_groups_encoded_size(m->groups) : 0;
    unsigned char *buf = apr_palloc(r->pool, 1 + pl + ll + sl + gl), *at = buf;

    *at++ = m->groups ? 1 : 0;
    memcpy(at, m->principal, pl);
    at += pl;
    memcpy(at, m->local_name ? m->local_name : "", ll);
    at += ll;
    memcpy(at, m->spn, sl);
    at += sl;
    if (m->groups && kd_groups_encode(m->groups, at, gl) != gl)
        return;
    kd_password_cache_put(successes, key, buf, 1 + pl + ll + sl + gl, apr_time_now(),
                          success_lifetime(conf));
}

static const char *take_string(const unsigned char **at, const unsigned char *end)
{
    const unsigned char *nul = memchr(*at, 0, (size_t)(end - *at));
    const char *s = (const char *)*at;

    if (nul == NULL)
        return NULL;
    *at = nul + 1;
    return s;
}

static int recall_success(request_rec *r, const unsigned char *key, remembered *m)
{
    void *v;
    size_t len;
    const unsigned char *at, *end;

    if (!kd_password_cache_get(successes, r->pool, key, apr_time_now(), &v, &len) || len < 1)
        return 0;
    at = (const unsigned char *)v + 1;
    end = (const unsigned char *)v + len;
    if ((m->principal = take_string(&at, end)) == NULL
        || (m->local_name = take_string(&at, end)) == NULL
        || (m->spn = take_string(&at, end)) == NULL)
        return 0;
    if (*m->local_name == '\0')
        m->local_name = NULL;
    m->groups = NULL;
    if (((const unsigned char *)v)[0] == 1
        && (m->groups = kd_groups_decode(r->pool, at, (size_t)(end - at))) == NULL)
        return 0;
    return 1;
}

/* The user is who the ticket (or the cached success) says, as a Kerberos
 * login would make them: REMOTE_USER by KdelegRemoteUser, the identity's
 * environment, and the state later phases read. */
static kdeleg_auth_state *establish(request_rec *r, const kdeleg_dir_conf *conf,
                                    const remembered *m)
{
    kdeleg_auth_state *st = apr_pcalloc(r->pool, sizeof(*st));

    st->principal = m->principal;
    st->user = kdeleg_remote_user_of(r, conf, m->principal, m->local_name, m->spn);
    st->spn = m->spn;
    st->method = "password";
    kd_result_init(&st->evidence_failure);
    ap_set_module_config(r->request_config, &kdeleg_module, st);
    r->user = apr_pstrdup(r->pool, st->user);
    kdeleg_set_identity(r, st);
    kdeleg_note(KD_STAT_AUTH_OK);
    return st;
}

/* The identity policy for the verified principal; AUTH_GRANTED when it
 * may pass. */
static authn_status policy(request_rec *r, const kdeleg_dir_conf *conf, const char *principal,
                           const char *spn)
{
    const char *why;
    kd_cause refusal = kdeleg_identity_refusal(r, conf, principal, &why);
    kd_result res;

    if (refusal == KD_CAUSE_NONE)
        return AUTH_GRANTED;
    kd_result_init(&res);
    kd_result_fail(&res, r->pool, refusal, "policy", "%s", why);
    report(r, APLOG_INFO, &res, spn);
    return AUTH_DENIED;
}

/* A success this process remembers: no KDC traffic, unless the location
 * delegates and the node's cache cannot serve its tickets (a cached
 * success keeps no evidence ticket): then the KDC is asked again, which
 * gives one. DECLINED: ask the KDC. */
static int from_success_cache(request_rec *r, const kdeleg_dir_conf *conf, const unsigned char *key)
{
    remembered m;
    kdeleg_auth_state *st;
    authn_status verdict;

    if (!recall_success(r, key, &m))
        return DECLINED;
    if ((verdict = policy(r, conf, m.principal, m.spn)) != AUTH_GRANTED)
        return verdict;
    st = establish(r, conf, &m);
    st->groups = m.groups;
    st->groups_read = 1;
    if (!kdeleg_conf_delegates(conf))
        return AUTH_GRANTED;
    if (kdeleg_delegate_cached(r, conf, st) == OK)
        return AUTH_GRANTED;
    ap_set_module_config(r->request_config, &kdeleg_module, NULL);
    return DECLINED;
}

/* The KDC's answer was a ticket: the keytab must accept it. */
static authn_status accept_ticket(request_rec *r, const kdeleg_dir_conf *conf,
                                  const unsigned char *key, const char *spn,
                                  unsigned char *token, size_t len)
{
    const apr_array_header_t *spns = kdeleg_conf_spns(r, conf);
    kd_token_info info;
    kd_accept_params params;
    kd_accept_out out;
    kd_result res;
    remembered m;
    kdeleg_auth_state *st;
    const kd_logon_info *li;
    authn_status verdict;

    kd_result_init(&res);
    memset(&params, 0, sizeof(params));
    params.spns = (const kd_spn *)spns->elts;
    params.n_spns = spns->nelts;
    params.want_local_name = kdeleg_conf_remote_user(conf) == KD_REMOTE_USER_LOCAL;
    params.want_delegation = kdeleg_conf_delegates(conf);
    /* Made here a moment ago: it cannot be a replay. */
    params.replay_checked = 1;
    params.accounts = conf->service_accounts
                          ? (const kd_service_account *)conf->service_accounts->elts : NULL;
    params.n_accounts = conf->service_accounts ? conf->service_accounts->nelts : 0;
    if (kd_token_sniff(r->pool, token, len, &info, &res) != KD_CAUSE_NONE
        || kd_acceptor_accept(kdeleg_acceptor_for(conf), r->pool, &info, &params, &out, &res)
               != KD_CAUSE_NONE) {
        /* Only the real KDC can make a ticket our key opens: a fake KDC
         * with the realm's name, or a keytab older than the account. */
        res.detail = apr_psprintf(r->pool, "the KDC accepted the password, but its ticket for "
                                  "%s did not verify with the keytab (a KDC that does not know "
                                  "this service's key, or a stale keytab): %s", spn,
                                  res.detail ? res.detail : "");
        report(r, APLOG_ERR, &res, spn);
        return AUTH_DENIED;
    }
    if ((verdict = policy(r, conf, out.client_principal, out.spn)) != AUTH_GRANTED)
        return verdict;
    m.principal = out.client_principal;
    m.local_name = out.local_name;
    m.spn = out.spn;
    li = kd_accept_logon_info(out.name, NULL);
    m.groups = li ? kd_groups_from_logon_info(r->pool, li) : NULL;
    st = establish(r, conf, &m);
    st->accepted = out.name;
    st->groups = m.groups;
    st->groups_read = li != NULL;
    st->expires = (long long)apr_time_sec(r->request_time) + out.ticket_seconds_left;
    if (st->expires > 0)
        kdeleg_set_identity(r, st);
    st->evidence = out.delegation;
    st->evidence_failure = out.delegation_failure;
    st->delegation_pending = kdeleg_conf_delegates(conf);
    remember_success(r, conf, key, &m);
    kdeleg_log_request(r, APLOG_DEBUG, 0, KDLOGNO(00310), out.spn,
                       "password of %s verified by the KDC and the keytab", out.client_principal);
    return AUTH_GRANTED;
}

static authn_status check_password(request_rec *r, const char *user, const char *password)
{
    const kdeleg_dir_conf *conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    const char *spn = kdeleg_pick_impersonator(r, conf);
    kd_user_name name;
    kd_password_request req;
    unsigned char key[KD_PASSWORD_KEY_BYTES];
    unsigned char *token;
    size_t len;
    uint32_t nt;
    kd_result res;
    kd_cause cause;
    void *v;
    size_t vlen;
    int rv;

    kd_result_init(&res);
    if (!over_tls(r)) {
        kd_result_fail(&res, r->pool, KD_CAUSE_PASSWORD_WITHOUT_TLS, "password",
                       "the password of %s came over plain http; not checked",
                       ap_escape_logitem(r->pool, user));
        report(r, APLOG_ERR, &res, spn);
        return AUTH_GENERAL_ERROR;
    }
    if (spn == NULL || successes == NULL || failures == NULL) {
        kd_result_fail(&res, r->pool, KD_CAUSE_INTERNAL_ERROR, "password",
                       spn ? "no password caches in this process" : "no service name here");
        report(r, APLOG_ERR, &res, spn);
        return AUTH_GENERAL_ERROR;
    }
    name = kdeleg_user_name(r, conf, user, spn);
    kd_password_cache_key(successes, name.principal, password, key);
    if ((rv = from_success_cache(r, conf, key)) != DECLINED)
        return (authn_status)rv;
    if (kd_password_cache_get(failures, r->pool, key, apr_time_now(), &v, &vlen) && vlen > 0) {
        cause = kd_cause_by_name(apr_pstrmemdup(r->pool, v, vlen));
        kd_result_fail(&res, r->pool, cause == KD_CAUSE__COUNT ? KD_CAUSE_WRONG_PASSWORD : cause,
                       "password", "the same password of %s was refused less than %ds ago; "
                       "answered without asking the KDC (KdelegPasswordFailureCache)",
                       ap_escape_logitem(r->pool, name.principal),
                       (int)apr_time_sec(failure_lifetime(conf)));
        report(r, APLOG_INFO, &res, spn);
        return AUTH_DENIED;
    }
    req.user = &name;
    req.password = password;
    req.service = spn;
    if ((cause = kd_password_token(r->pool, &req, &token, &len, &nt, &res)) == KD_CAUSE_NONE)
        return accept_ticket(r, conf, key, spn, token, len);
    if (user_refusal(cause)) {
        const char *cname = kd_cause_name(cause);
        kd_password_cache_put(failures, key, cname, strlen(cname), apr_time_now(),
                              failure_lifetime(conf));
        report(r, APLOG_INFO, &res, spn);
        return AUTH_DENIED;
    }
    report(r, APLOG_ERR, &res, spn);
    return AUTH_GENERAL_ERROR;
}

static const authn_provider password_provider = {check_password, NULL};

void kdeleg_password_register_hooks(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHN_PROVIDER_GROUP, KD_PASSWORD_PROVIDER,
                              AUTHN_PROVIDER_VERSION, &password_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
}
