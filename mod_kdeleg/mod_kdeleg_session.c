/* mod_kdeleg_session: load-balanced names. Session cookies that every
 * node of a site opens (KdelegSession, KdelegSessionKeyFile), and the
 * FQDN fallback: a client that cannot use Kerberos on the virtual name
 * (NTLM, or a ticket this node has no key for) is sent to this node's own
 * name, authenticates there, gets a session for the site and is sent back
 * to the virtual name, so bookmarks stay on the VIP.
 *
 *   client --GET vip/path--> node: NTLM or unusable ticket
 *          <-302 node1/path?kdeleg-return=http%3A%2F%2Fvip
 *          --GET node1/path?kdeleg-return=...--> 401 Negotiate, then Kerberos
 *          <-302 vip/path?kdeleg-bounced=1 + Set-Cookie kdeleg_session
 *                                               (Domain=KdelegCookieDomain)
 *          --GET vip/path?kdeleg-bounced=1, cookie--> any node
 *          <-302 /path (the marker removed: bookmarks stay clean)
 *          --GET vip/path, cookie--> any node: 200 as the user
 *
 * The marker makes a loop impossible even for a client that drops
 * cookies: a request that carries it is never sent to the node again.
 */
#include "mod_kdeleg.h"

#include <string.h>
#include <sys/stat.h>

#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "kd_causes.h"

APLOG_USE_MODULE(kdeleg);

#define DEFAULT_LIFETIME 3600      /* KdelegSessionLifetime */
#define MIN_TICKET_LEFT 60         /* no session from a ticket about to expire */
#define MAX_KEY_FILE (64 * 1024)
#define MAX_COOKIES_TRIED 4        /* of our name, in one request */

/* ------------------------------------------------------------ directives */

const char *kd_set_virtual_name(cmd_parms *cmd, void *dconf, const char *arg)
{
    kd_dir_conf *conf = dconf;
    const char *host;
    int port;

    if (kd_host_header_split(cmd->pool, arg, &host, &port) != 0 || port != 0)
        return apr_pstrcat(cmd->pool, "KdelegVirtualName: '", arg,
                           "' is not a host name (e.g. vip.example.com)", NULL);
    if (conf->virtual_names == NULL)
        conf->virtual_names = apr_array_make(cmd->pool, 2, sizeof(const char *));
    APR_ARRAY_PUSH(conf->virtual_names, const char *) = host;
    return NULL;
}

const char *kd_set_node_name(cmd_parms *cmd, void *dconf, const char *arg)
{
    kd_dir_conf *conf = dconf;
    kd_origin *o = apr_pcalloc(cmd->pool, sizeof(*o));
    const char *err = kd_origin_parse(cmd->pool, arg, o);

    if (err)
        return apr_pstrcat(cmd->pool, "KdelegNodeName: ", err, NULL);
    conf->node_name = o;
    return NULL;
}

const char *kd_set_fqdn_redirect(cmd_parms *cmd, void *dconf, int on)
{
    ((kd_dir_conf *)dconf)->fqdn_redirect = on;
    return NULL;
}

const char *kd_set_session(cmd_parms *cmd, void *dconf, int on)
{
    ((kd_dir_conf *)dconf)->session = on;
    return NULL;
}

/* Read at start-up, as root: the file must be private to the server. */
const char *kd_set_session_key_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    kd_dir_conf *conf = dconf;
    const char *path = ap_server_root_relative(cmd->pool, arg), *err;
    apr_file_t *f;
    apr_finfo_t fi;
    char *text;
    apr_size_t got;
    apr_status_t rv;

    if (path == NULL)
        return apr_pstrcat(cmd->pool, "KdelegSessionKeyFile: bad path '", arg, "'", NULL);
    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, cmd->temp_pool)) != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "KdelegSessionKeyFile %s: cannot be read: %pm", path,
                            &rv);
    rv = apr_file_info_get(&fi, APR_FINFO_PROT | APR_FINFO_SIZE | APR_FINFO_TYPE, f);
    if (rv == APR_SUCCESS && fi.filetype != APR_REG)
        rv = APR_EBADF;
    if (rv == APR_SUCCESS && (fi.protection & APR_FPROT_WREAD)) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "KdelegSessionKeyFile %s: readable by everyone; the keys "
                            "seal every user's session (chmod 0600, or 0640 for the httpd "
                            "group)", path);
    }
    if (rv == APR_SUCCESS && fi.size > MAX_KEY_FILE) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "KdelegSessionKeyFile %s: larger than %d bytes; not a "
                            "key file", path, MAX_KEY_FILE);
    }
    text = apr_palloc(cmd->temp_pool, MAX_KEY_FILE + 1);
    if (rv == APR_SUCCESS)
        rv = apr_file_read_full(f, text, (apr_size_t)fi.size, &got);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF)
        return apr_psprintf(cmd->pool, "KdelegSessionKeyFile %s: %pm", path, &rv);
    conf->session_keys = kd_session_keys_parse(cmd->pool, text, (size_t)fi.size, &err);
    memset(text, 0, (size_t)fi.size); /* no key copy left in the temp pool */
    if (conf->session_keys == NULL)
        return apr_psprintf(cmd->pool, "KdelegSessionKeyFile %s: %s", path, err);
    conf->session_key_file = path;
    return NULL;
}

const char *kd_set_session_lifetime(cmd_parms *cmd, void *dconf, const char *arg)
{
    kd_dir_conf *conf = dconf;
    char *end;
    long v = strtol(arg, &end, 10);

    if (*arg == '\0' || *end != '\0' || v < 60 || v > 7 * 24 * 3600)
        return "KdelegSessionLifetime: seconds between 60 and 604800";
    conf->session_lifetime = (int)v;
    return NULL;
}

const char *kd_set_cookie_domain(cmd_parms *cmd, void *dconf, const char *arg)
{
    kd_dir_conf *conf = dconf;
    const char *d = arg[0] == '.' ? arg + 1 : arg, *host;
    int port;

    if (kd_host_header_split(cmd->pool, d, &host, &port) != 0 || port != 0
        || strchr(host, '.') == NULL)
        return apr_pstrcat(cmd->pool, "KdelegCookieDomain: '", arg,
                           "' is not a domain name (e.g. example.com)", NULL);
    conf->cookie_domain = host;
    return NULL;
}

void kd_session_conf_merge(kd_dir_conf *conf, const kd_dir_conf *base, const kd_dir_conf *add)
{
    conf->virtual_names = add->virtual_names ? add->virtual_names : base->virtual_names;
    conf->node_name = add->node_name ? add->node_name : base->node_name;
    conf->fqdn_redirect = add->fqdn_redirect != KD_UNSET ? add->fqdn_redirect
                                                         : base->fqdn_redirect;
    conf->session = add->session != KD_UNSET ? add->session : base->session;
    conf->session_key_file = add->session_key_file ? add->session_key_file
                                                   : base->session_key_file;
    conf->session_keys = add->session_keys ? add->session_keys : base->session_keys;
    conf->session_lifetime = add->session_lifetime != KD_UNSET ? add->session_lifetime
                                                               : base->session_lifetime;
    conf->cookie_domain = add->cookie_domain ? add->cookie_domain : base->cookie_domain;
}

/* ------------------------------------------------------------ start-up check */

/* host is inside domain, as a browser decides where a cookie goes. */
static int domain_covers(const char *domain, const char *host)
{
    size_t d = strlen(domain), h = strlen(host);

    if (h == d)
        return strcasecmp(host, domain) == 0;
    return h > d && host[h - d - 1] == '.' && strcasecmp(host + h - d, domain) == 0;
}

static const char *fallback_problem(apr_pool_t *p, const kd_dir_conf *conf)
{
    int i;

    if (conf->virtual_names == NULL)
        return "KdelegVirtualName is not set";
    if (conf->node_name == NULL)
        return "KdelegNodeName is not set";
    if (conf->session != 1 || conf->session_keys == NULL)
        return "the way back to the virtual name needs KdelegSession On and "
               "KdelegSessionKeyFile";
    if (conf->cookie_domain == NULL)
        return "KdelegCookieDomain is not set: a session made on the node name would not "
               "reach the virtual name";
    if (!domain_covers(conf->cookie_domain, conf->node_name->host))
        return apr_psprintf(p, "KdelegCookieDomain %s does not cover the node name %s",
                            conf->cookie_domain, conf->node_name->host);
    for (i = 0; i < conf->virtual_names->nelts; i++) {
        const char *v = APR_ARRAY_IDX(conf->virtual_names, i, const char *);
        if (!domain_covers(conf->cookie_domain, v))
            return apr_psprintf(p, "KdelegCookieDomain %s does not cover the virtual name %s",
                                conf->cookie_domain, v);
    }
    return NULL;
}

int kd_session_check_config(apr_pool_t *p, server_rec *s)
{
    int status = OK;

    for (; s; s = s->next) {
        const kd_dir_conf *conf = ap_get_module_config(s->lookup_defaults, &kdeleg_module);
        const char *problem;

        if (conf == NULL)
            continue;
        if (conf->session == 1 && conf->session_keys == NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00210)
                         "%s:%d: KdelegSession On needs KdelegSessionKeyFile (the same file "
                         "on every node)", s->defn_name ? s->defn_name : "?", s->defn_line_number);
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
        if (conf->fqdn_redirect == 1 && (problem = fallback_problem(p, conf)) != NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00211)
                         "%s:%d: KdelegFQDNRedirect On: %s", s->defn_name ? s->defn_name : "?",
                         s->defn_line_number, problem);
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    return status;
}

/* ------------------------------------------------------------ cookies */

/* The site a session belongs to: the virtual name every node serves, so
 * a cookie sealed on node1 opens on node2; else this server's name. */
static const char *site_of(request_rec *r, const kd_dir_conf *conf)
{
    if (conf->virtual_names && conf->virtual_names->nelts > 0)
        return APR_ARRAY_IDX(conf->virtual_names, 0, const char *);
    return r->server->server_hostname;
}

static int sessions_on(const kd_dir_conf *conf)
{
    return conf->session == 1 && conf->session_keys != NULL;
}

typedef struct {
    const char *name;
    apr_array_header_t *values;
} cookie_search;

static int collect_cookie(void *baton, const char *key, const char *header)
{
    cookie_search *cs = baton;
    size_t name_len = strlen(cs->name);
    char *copy = apr_pstrdup(cs->values->pool, header), *state = NULL, *item;

    for (item = apr_strtok(copy, ";", &state); item; item = apr_strtok(NULL, ";", &state)) {
        while (*item == ' ' || *item == '\t')
            item++;
        if (strncmp(item, cs->name, name_len) == 0 && item[name_len] == '=') {
            char *v = item + name_len + 1, *end = v + strlen(v);
            while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
                *--end = '\0';
            if (cs->values->nelts < MAX_COOKIES_TRIED)
                APR_ARRAY_PUSH(cs->values, const char *) = v;
        }
    }
    return 1;
}

static apr_array_header_t *cookies_named(request_rec *r, const char *name)
{
    cookie_search cs = {name, apr_array_make(r->pool, 2, sizeof(const char *))};

    apr_table_do(collect_cookie, &cs, r->headers_in, "Cookie", NULL);
    return cs.values;
}

/* ------------------------------------------------------------ the bearer cookie stays here
 *
 * The session cookie is a bearer credential for this front end only. It is
 * taken out of the request headers before anything else sees them, on every
 * request of every virtual host: mod_proxy would forward it to back ends,
 * CGIs would see it in HTTP_COOKIE, and any of them could replay it here.
 * Its values are kept on the connection's request pool, which internal
 * redirects share, and looked up through r->main for subrequests. */

#define KD_SESSION_VALUES "kdeleg-session-values"

/* One Cookie header without our cookie's items; NULL when nothing is left. */
static const char *without_session(apr_pool_t *p, const char *header)
{
    char *copy = apr_pstrdup(p, header), *state = NULL, *item;
    size_t n = strlen(KD_SESSION_COOKIE);
    const char *kept = NULL;

    for (item = apr_strtok(copy, ";", &state); item; item = apr_strtok(NULL, ";", &state)) {
        const char *name = item;
        while (*name == ' ' || *name == '\t')
            name++;
        if (strncmp(name, KD_SESSION_COOKIE, n) == 0 && name[n] == '=')
            continue;
        if (*name == '\0')
            continue;
        kept = kept ? apr_pstrcat(p, kept, "; ", name, NULL) : name;
    }
    return kept;
}

static int collect_header(void *baton, const char *key, const char *value)
{
    APR_ARRAY_PUSH((apr_array_header_t *)baton, const char *) = value;
    return 1;
}

static int strip_session_cookie(request_rec *r)
{
    apr_array_header_t *values = cookies_named(r, KD_SESSION_COOKIE), *headers;
    int i;

    if (values->nelts == 0)
        return DECLINED;
    apr_pool_userdata_setn(values, KD_SESSION_VALUES, NULL, r->pool);
    headers = apr_array_make(r->pool, 2, sizeof(const char *));
    apr_table_do(collect_header, headers, r->headers_in, "Cookie", NULL);
    apr_table_unset(r->headers_in, "Cookie");
    for (i = 0; i < headers->nelts; i++) {
        const char *kept = without_session(r->pool, APR_ARRAY_IDX(headers, i, const char *));
        if (kept)
            apr_table_addn(r->headers_in, "Cookie", kept);
    }
    return DECLINED;
}

/* The session cookie values this request arrived with. */
static apr_array_header_t *session_values(request_rec *r)
{
    void *values = NULL;

    while (r->main)
        r = r->main;
    apr_pool_userdata_get(&values, KD_SESSION_VALUES, r->pool);
    return values ? values : cookies_named(r, KD_SESSION_COOKIE);
}

void kd_session_register_hooks(apr_pool_t *p)
{
    /* first: before any module reads or copies the request headers */
    ap_hook_post_read_request(strip_session_cookie, NULL, NULL, APR_HOOK_REALLY_FIRST);
}

static int is_https(request_rec *r)
{
    return strcmp(ap_http_scheme(r), "https") == 0;
}

static void set_cookie(request_rec *r, const kd_dir_conf *conf, const char *name,
                       const char *value, apr_time_t expires, int with_domain)
{
    char date[APR_RFC822_DATE_LEN];

    apr_rfc822_date(date, expires);
    apr_table_add(r->err_headers_out, "Set-Cookie",
                  apr_pstrcat(r->pool, name, "=", value, "; Path=/",
                              with_domain && conf->cookie_domain ? "; Domain=" : "",
                              with_domain && conf->cookie_domain ? conf->cookie_domain : "",
                              "; Expires=", date, "; HttpOnly; SameSite=Lax",
                              is_https(r) ? "; Secure" : "", NULL));
    /* Responses that set a session must never be stored by a cache. */
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
}

/* ------------------------------------------------------------ sessions */

static void log_invalid(request_rec *r, kd_session_status st, const kd_session *s)
{
    const kd_cause_info *info = kd_cause_get(KD_CAUSE_SESSION_INVALID);

    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, KDLOGNO(00703)
                  "kdeleg(%s, %s, -): session cookie ignored: cause %s: %s%s%s; the client "
                  "re-authenticates with Kerberos",
                  r->server->server_hostname, r->useragent_ip, info->name,
                  kd_session_status_str(st), s->principal ? " for " : "",
                  s->principal ? ap_escape_logitem(r->pool, s->principal) : "");
}

/* REMOTE_USER for a session: as KdelegRemoteUser says here. auth_to_local
 * was applied by the node that issued the session. */
static const char *session_user(request_rec *r, const kd_dir_conf *conf, const kd_session *s)
{
    const char *at = strrchr(s->principal, '@');

    switch (kd_conf_remote_user(conf)) {
    case KD_REMOTE_USER_SHORT:
        return at ? apr_pstrmemdup(r->pool, s->principal, (apr_size_t)(at - s->principal))
                  : s->principal;
    case KD_REMOTE_USER_LOCAL:
        return s->user;
    default:
        return s->principal;
    }
}

static kd_auth_state *state_from(request_rec *r, const kd_dir_conf *conf, const kd_session *s)
{
    kd_auth_state *st = apr_pcalloc(r->pool, sizeof(*st));
    const char *at = strrchr(s->spn, '@');

    st->principal = s->principal;
    st->user = session_user(r, conf, s);
    st->spn = s->spn;
    st->ticket_sname = at ? apr_pstrmemdup(r->pool, s->spn, (apr_size_t)(at - s->spn)) : s->spn;
    st->ticket_realm = at ? at + 1 : NULL;
    st->method = "session";
    return st;
}

/* No ticket in this node's cache and no way to get evidence: ask the
 * client for a Kerberos token; the session stays as it is. */
static int rechallenge(request_rec *r, const kd_auth_state *st)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, KDLOGNO(00704)
                  "kdeleg(%s, %s, %s): session for %s: this node holds no delegated tickets "
                  "for it; asking the client for Kerberos",
                  r->server->server_hostname, r->useragent_ip, st->spn,
                  ap_escape_logitem(r->pool, st->principal));
    r->user = NULL;
    apr_table_setn(r->err_headers_out, "WWW-Authenticate", KD_AUTH_TYPE);
    return HTTP_UNAUTHORIZED;
}

static int session_delegation(request_rec *r, const kd_dir_conf *conf, kd_auth_state *st)
{
    if (!kd_conf_delegates(conf) || kd_delegate_cached(r, conf, st) == OK)
        return OK;
    if (kd_conf_protocol_transition(conf))
        return kd_delegate_transition(r, conf, st);
    return rechallenge(r, st);
}

static int fallback_step(request_rec *r, const kd_dir_conf *conf);

int kd_session_authenticate(request_rec *r, const kd_dir_conf *conf)
{
    apr_array_header_t *values;
    kd_session s;
    kd_session_status st = KD_SESSION_MALFORMED;
    kd_auth_state *state;
    int i, status;

    if (!sessions_on(conf))
        return DECLINED;
    values = session_values(r);
    for (i = 0; i < values->nelts; i++) {
        st = kd_session_open(r->pool, conf->session_keys, site_of(r, conf),
                             APR_ARRAY_IDX(values, i, const char *), apr_time_sec(apr_time_now()),
                             &s);
        if (st == KD_SESSION_OK)
            break;
    }
    if (values->nelts == 0)
        return DECLINED;
    if (st != KD_SESSION_OK) {
        log_invalid(r, st, &s);
        /* Tell the browser to drop it, host-only and domain copies alike. */
        set_cookie(r, conf, KD_SESSION_COOKIE, "", 0, 0);
        if (conf->cookie_domain)
            set_cookie(r, conf, KD_SESSION_COOKIE, "", 0, 1);
        return DECLINED;
    }
    state = state_from(r, conf, &s);
    kd_note(KD_STAT_SESSION_OK);
    /* A shared cache never stores an answer to a request carrying
     * Authorization (RFC 9111 3.5), but nothing stops it storing one to a
     * request that carried only our cookie: this page is the user's. */
    apr_table_mergen(r->err_headers_out, "Cache-Control", "private");
    ap_set_module_config(r->request_config, &kdeleg_module, state);
    r->user = apr_pstrdup(r->pool, state->user);
    r->ap_auth_type = KD_AUTH_TYPE;
    kd_set_identity(r, state);
    if ((status = session_delegation(r, conf, state)) != OK)
        return status;
    return fallback_step(r, conf);
}

static void issue(request_rec *r, const kd_dir_conf *conf, const kd_auth_state *st,
                  long ticket_seconds_left)
{
    long lifetime = conf->session_lifetime != KD_UNSET ? conf->session_lifetime
                                                       : DEFAULT_LIFETIME;
    kd_session s;
    const char *value;

    if (ticket_seconds_left < MIN_TICKET_LEFT)
        return; /* unknown or about to end: no session to outlive it */
    if (ticket_seconds_left < lifetime)
        lifetime = ticket_seconds_left;
    s.method = KD_SESSION_KERBEROS;
    s.issued = apr_time_sec(apr_time_now());
    s.expires = s.issued + lifetime;
    s.principal = st->principal;
    s.user = st->user;
    s.spn = st->spn;
    if ((value = kd_session_seal(r->pool, conf->session_keys, site_of(r, conf), &s)) == NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, KDLOGNO(00706)
                      "kdeleg(%s, %s, %s): could not seal a session for %s",
                      r->server->server_hostname, r->useragent_ip, st->spn,
                      ap_escape_logitem(r->pool, st->principal));
        return;
    }
    set_cookie(r, conf, KD_SESSION_COOKIE, value, apr_time_from_sec(s.expires), 1);
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, KDLOGNO(00707)
                  "kdeleg(%s, %s, %s): session issued for %s, %ld s, site %s",
                  r->server->server_hostname, r->useragent_ip, st->spn,
                  ap_escape_logitem(r->pool, st->principal), lifetime, site_of(r, conf));
}

int kd_session_after_kerberos(request_rec *r, const kd_dir_conf *conf, const kd_auth_state *st,
                              long ticket_seconds_left)
{
    if (!sessions_on(conf) || r->main != NULL)
        return OK;

    issue(r, conf, st, ticket_seconds_left);
    return fallback_step(r, conf);
}

/* ------------------------------------------------------------ FQDN fallback */

static int is_virtual(const kd_dir_conf *conf, const char *host, const char **configured)
{
    int i;

    for (i = 0; conf->virtual_names && host && i < conf->virtual_names->nelts; i++) {
        const char *v = APR_ARRAY_IDX(conf->virtual_names, i, const char *);
        if (strcasecmp(v, host) == 0) {
            *configured = v;
            return 1;
        }
    }
    return 0;
}

static int redirect(request_rec *r, const char *location)
{
    apr_table_set(r->headers_out, "Location", location);
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    return HTTP_MOVED_TEMPORARILY;
}

static int bounceable(kd_cause cause)
{
    switch (cause) {
    case KD_CAUSE_NTLM_OFFERED:       /* the browser had no ticket for the VIP */
    case KD_CAUSE_WRONG_SPN:          /* a ticket for a name this node does not serve */
    case KD_CAUSE_KEYTAB_UNUSABLE:    /* no key for the VIP's principal here */
    case KD_CAUSE_DECRYPT_FAILED:     /* the VIP's key here is not the KDC's */
    case KD_CAUSE_KEY_VERSION_MISMATCH:
        return 1;
    default:
        return 0; /* replay, skew, malformed: the node name would not help */
    }
}

int kd_fqdn_bounce(request_rec *r, const kd_dir_conf *conf, kd_cause cause)
{
    const char *host, *vip, *back, *node, *location, *marker, *args;
    kd_origin origin;
    int port;

    if (conf->fqdn_redirect != 1 || conf->node_name == NULL || !bounceable(cause)
        || r->main != NULL || (r->method_number != M_GET) /* GET and HEAD */
        || kd_host_header_split(r->pool, apr_table_get(r->headers_in, "Host"), &host, &port) != 0
        || !is_virtual(conf, host, &vip))
        return DECLINED;
    kd_query_take(r->pool, r->args, KD_BOUNCED_PARAM, &marker);
    if (marker != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, KDLOGNO(00702)
                      "kdeleg(%s, %s, -): cause %s on %s right after the client was sent to "
                      "%s and back: not redirecting twice (did the session cookie reach %s? "
                      "check KdelegCookieDomain and that the client keeps cookies)",
                      r->server->server_hostname, r->useragent_ip, kd_cause_name(cause), vip,
                      conf->node_name->host, vip);
        return DECLINED;
    }
    /* A way back the client wrote itself never travels on: ours is the
     * only one the node sees. */
    args = kd_query_take(r->pool, r->args, KD_RETURN_PARAM, NULL);
    origin.scheme = ap_http_scheme(r);
    origin.host = vip; /* the configured spelling, never the header's */
    origin.port = port;
    back = kd_origin_unparse(r->pool, &origin, ap_http_scheme(r));
    node = kd_origin_unparse(r->pool, conf->node_name, ap_http_scheme(r));
    location = kd_url_build(r->pool, node, r->parsed_uri.path,
                            apr_pstrcat(r->pool, args ? args : "", args ? "&" : "",
                                        KD_RETURN_PARAM "=",
                                        kd_url_escape_component(r->pool, back), NULL));
    kd_note(KD_STAT_FQDN_REDIRECTS);
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, KDLOGNO(00701)
                  "kdeleg(%s, %s, -): FQDN fallback: cause %s on virtual name %s; redirecting "
                  "the client to this node's name %s",
                  r->server->server_hostname, r->useragent_ip, kd_cause_name(cause), vip,
                  conf->node_name->host);
    return redirect(r, location);
}

/* The node leg, authenticated: the session is set; send the client back
 * to the virtual name it came from, with the marker. Only a configured
 * virtual name is a way back. DECLINED when this is not the node leg. */
static int return_to_site(request_rec *r, const kd_dir_conf *conf)
{
    const char *raw, *rest, *decoded, *vip, *err;
    kd_origin back;

    rest = kd_query_take(r->pool, r->args, KD_RETURN_PARAM, &raw);
    if (raw == NULL)
        return DECLINED;
    decoded = kd_url_unescape(r->pool, raw);
    err = decoded ? kd_origin_parse(r->pool, decoded, &back) : "broken escape";
    if (err == NULL && (back.scheme == NULL || !is_virtual(conf, back.host, &vip)))
        err = "not a configured KdelegVirtualName";
    if (err != NULL) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, KDLOGNO(00708)
                      "kdeleg(%s, %s, -): ignoring " KD_RETURN_PARAM " '%s': %s; serving the "
                      "page here", r->server->server_hostname, r->useragent_ip,
                      ap_escape_logitem(r->pool, raw), err);
        return DECLINED;
    }
    back.host = vip;
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, KDLOGNO(00705)
                  "kdeleg(%s, %s, -): FQDN fallback: %s authenticated on the node name; "
                  "sending it back to %s",
                  r->server->server_hostname, r->useragent_ip,
                  ap_escape_logitem(r->pool, r->user), vip);
    return redirect(r, kd_url_build(r->pool, kd_origin_unparse(r->pool, &back, back.scheme),
                                    r->parsed_uri.path,
                                    apr_pstrcat(r->pool, rest ? rest : "", rest ? "&" : "",
                                                KD_BOUNCED_PARAM "=1", NULL)));
}

/* Back on the virtual name and authenticated: drop the marker with a
 * redirect relative to this host, so the address bar (and bookmarks)
 * show the URL the user asked for. */
static int drop_marker(request_rec *r)
{
    const char *marker, *rest = kd_query_take(r->pool, r->args, KD_BOUNCED_PARAM, &marker);
    const char *path = r->parsed_uri.path ? r->parsed_uri.path : "/";

    if (marker == NULL)
        return DECLINED;
    while (path[0] == '/' && path[1] == '/')
        path++; /* "//host" would name another host */
    return redirect(r, kd_url_build(r->pool, "", path, rest));
}

/* After authentication on a GET: the node leg's way back, or the marker's
 * removal; OK when neither applies. */
static int fallback_step(request_rec *r, const kd_dir_conf *conf)
{
    int status;

    if (r->main != NULL || r->prev != NULL || r->method_number != M_GET || !sessions_on(conf))
        return OK;
    if ((status = return_to_site(r, conf)) != DECLINED)
        return status;
    return (status = drop_marker(r)) != DECLINED ? status : OK;
}
