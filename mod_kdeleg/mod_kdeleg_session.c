/* mod_kdeleg_session: load-balanced names. Session cookies that every
 * node of a site opens (KdelegSession, KdelegSessionKeyFile), and the
 * FQDN fallback: a client that cannot use Kerberos on the virtual name
 * (NTLM, or a ticket this node has no key for) is sent to this node's own
 * name, authenticates there, and comes back to the virtual name with a
 * one-time transfer token, so bookmarks stay on the VIP and no cookie
 * ever needs a Domain.
 *
 *   client --GET vip/path--> node: NTLM or unusable ticket
 *          <-302 node1/path?kdeleg-return=<vip's configured origin>&kdeleg-state=<H(state)>
 *              + Set-Cookie kdeleg_state (host-only on vip, 120 s)
 *          --GET node1/path?...--> 401 Negotiate, then Kerberos on node1
 *          <-302 vip/path?kdeleg-transfer=<sealed token: user, origin, H, id; 60 s>
 *          --GET vip/path?kdeleg-transfer=..., kdeleg_state--> any node:
 *              the token is taken out of the request before any handler,
 *              opened, checked against the origin and the state cookie,
 *              spent (once per node), and exchanged for a host-only cookie
 *          <-302 /path + Set-Cookie kdeleg_session (__Host- on https),
 *              Referrer-Policy: no-referrer, Cache-Control: no-store
 *          --GET vip/path, cookie--> any node: 200 as the user
 *
 * A request that carried a token is never sent to the node again, so a
 * client that drops cookies cannot loop. The state cookie stops login
 * CSRF: a token minted for the attacker's own login opens only in the
 * browser that started that bounce. */
#include "mod_kdeleg.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unixd.h>

#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_file_io.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "kd_causes.h"
#include "kd_gss.h"
#include "kd_replay.h"
#include "kd_seal.h"
#include <openssl/crypto.h>

APLOG_USE_MODULE(kdeleg);

#define DEFAULT_LIFETIME 3600      /* KdelegSessionLifetime */
#define MIN_TICKET_LEFT 60         /* no session from a ticket about to expire */
#define MAX_KEY_FILE (64 * 1024)
#define MAX_COOKIES_TRIED 4        /* of our name, in one request */
#define STATE_SECONDS 120          /* the state cookie: one bounce, generously timed */

/* ------------------------------------------------------------ directives */

const char *kdeleg_set_virtual_name(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_srv_conf *conf = ap_get_module_config(cmd->server->module_config, &kdeleg_module);
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

const char *kdeleg_set_node_name(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_srv_conf *conf = ap_get_module_config(cmd->server->module_config, &kdeleg_module);
    kd_origin *o = apr_pcalloc(cmd->pool, sizeof(*o));
    const char *err = kd_origin_parse(cmd->pool, arg, o);

    if (err)
        return apr_pstrcat(cmd->pool, "KdelegNodeName: ", err, NULL);
    conf->node_name = o;
    return NULL;
}

const char *kdeleg_set_fqdn_redirect(cmd_parms *cmd, void *dconf, int on)
{
    kdeleg_srv_conf *conf = ap_get_module_config(cmd->server->module_config, &kdeleg_module);

    conf->fqdn_redirect = on;
    return NULL;
}

const char *kdeleg_set_session(cmd_parms *cmd, void *dconf, int on)
{
    kdeleg_srv_conf *conf = ap_get_module_config(cmd->server->module_config, &kdeleg_module);

    conf->session = on;
    return NULL;
}

/* Read at start-up, as root: the file must be private to the server,
 * since whoever reads it can mint sessions or open shared entries. */
const char *kdeleg_read_key_file(cmd_parms *cmd, const char *directive, const char *arg,
                                 const char **path_out, const kd_session_keys **keys,
                                 long *uid)
{
    const char *path = ap_server_root_relative(cmd->pool, arg), *err;
    apr_file_t *f;
    apr_finfo_t fi;
    char *text;
    apr_size_t got;
    apr_status_t rv;

    if (path == NULL)
        return apr_psprintf(cmd->pool, "%s: bad path '%s'", directive, arg);
    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, cmd->temp_pool)) != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "%s %s: cannot be read: %pm", directive, path, &rv);
    rv = apr_file_info_get(&fi, APR_FINFO_PROT | APR_FINFO_SIZE | APR_FINFO_TYPE | APR_FINFO_OWNER,
                           f);
    if (rv == APR_SUCCESS && fi.filetype != APR_REG)
        rv = APR_EBADF;
    if (rv == APR_SUCCESS && (fi.protection & (APR_FPROT_GWRITE | APR_FPROT_WWRITE))) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "%s %s: writable by its group or by everyone; whoever "
                            "can write it chooses the keys, and forges what they seal "
                            "(chmod 0600)", directive, path);
    }
    if (rv == APR_SUCCESS && (fi.protection & APR_FPROT_WREAD)) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "%s %s: readable by everyone; whoever reads the keys "
                            "forges what they seal (chmod 0600, or 0640 for the httpd group)",
                            directive, path);
    }
    if (rv == APR_SUCCESS && fi.size > MAX_KEY_FILE) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "%s %s: larger than %d bytes; not a key file",
                            directive, path, MAX_KEY_FILE);
    }
    text = apr_palloc(cmd->temp_pool, MAX_KEY_FILE + 1);
    if (rv == APR_SUCCESS)
        rv = apr_file_read_full(f, text, (apr_size_t)fi.size, &got);
    apr_file_close(f);
    if (rv != APR_SUCCESS && rv != APR_EOF)
        return apr_psprintf(cmd->pool, "%s %s: %pm", directive, path, &rv);
    *keys = kd_session_keys_parse(cmd->pool, text, (size_t)fi.size, &err);
    memset(text, 0, (size_t)fi.size); /* no key copy left in the temp pool */
    if (*keys == NULL)
        return apr_psprintf(cmd->pool, "%s %s: %s", directive, path, err);
    *path_out = path;
    *uid = (long)fi.user; /* checked once User is known (post_config) */
    return NULL;
}

const char *kdeleg_set_session_key_file(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_srv_conf *conf = ap_get_module_config(cmd->server->module_config, &kdeleg_module);

    return kdeleg_read_key_file(cmd, "KdelegSessionKeyFile", arg, &conf->session_key_file,
                                &conf->session_keys, &conf->session_key_uid);
}

const char *kdeleg_set_session_lifetime(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_srv_conf *conf = ap_get_module_config(cmd->server->module_config, &kdeleg_module);

    return kdeleg_parse_seconds(cmd, arg, 60, 7 * 24 * 3600, &conf->session_lifetime);
}

const char *kdeleg_set_cookie_domain(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_srv_conf *conf = ap_get_module_config(cmd->server->module_config, &kdeleg_module);
    const char *d = arg[0] == '.' ? arg + 1 : arg, *host;
    int port;

    if (kd_host_header_split(cmd->pool, d, &host, &port) != 0 || port != 0
        || strchr(host, '.') == NULL)
        return apr_pstrcat(cmd->pool, "KdelegCookieDomain: '", arg,
                           "' is not a domain name (e.g. example.com)", NULL);
    conf->cookie_domain = host;
    return NULL;
}

/* "default" (or "") is the vhost's own scope; another name is shared by
 * the locations that give it, and names the cookie. */
const char *kdeleg_set_session_scope(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;

    if (strcasecmp(arg, "default") == 0 || *arg == '\0') {
        conf->session_scope = "";
        return NULL;
    }
    if (!kd_session_scope_name_ok(arg))
        return apr_pstrcat(cmd->pool, "KdelegSessionScope: '", arg, "' is not a scope name "
                           "(1 to 32 of A-Z a-z 0-9 _ -, or 'default')", NULL);
    conf->session_scope = arg;
    return NULL;
}

const char *kdeleg_set_session_logout(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;

    if (strcasecmp(arg, "none") == 0) {
        conf->session_logout = "";
        return NULL;
    }
    if (arg[0] != '/' || strchr(arg, '?') || strchr(arg, '#'))
        return apr_pstrcat(cmd->pool, "KdelegSessionLogout: '", arg, "' is not a URL path "
                           "(e.g. /logout), or 'none'", NULL);
    conf->session_logout = arg;
    return NULL;
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

static int sessions_on(const kdeleg_srv_conf *conf)
{
    return conf->session == 1 && conf->session_keys != NULL;
}

static const char *fallback_problem(apr_pool_t *p, const kdeleg_srv_conf *conf)
{
    int i;

    if (conf->virtual_names == NULL)
        return "KdelegVirtualName is not set";
    if (conf->node_name == NULL)
        return "KdelegNodeName is not set";
    for (i = 0; i < conf->virtual_names->nelts; i++)
        if (strcasecmp(APR_ARRAY_IDX(conf->virtual_names, i, const char *),
                       conf->node_name->host) == 0)
            return apr_psprintf(p, "KdelegNodeName %s is also a KdelegVirtualName: the client "
                                "would be sent to the name that just failed, in a loop",
                                conf->node_name->host);
    if (!sessions_on(conf))
        return "the way back to the virtual name needs KdelegSession On and "
               "KdelegSessionKeyFile";
    if (kdeleg_replay_off(conf->mc))
        return "KdelegReplayCache is off: transfer tokens could not be held to one use";
    return NULL;
}

/* An opt-in cookie domain must at least cover the names it is for. */
static const char *domain_problem(apr_pool_t *p, const kdeleg_srv_conf *conf)
{
    int i;

    for (i = 0; conf->cookie_domain && conf->virtual_names && i < conf->virtual_names->nelts;
         i++) {
        const char *v = APR_ARRAY_IDX(conf->virtual_names, i, const char *);
        if (!domain_covers(conf->cookie_domain, v))
            return apr_psprintf(p, "KdelegCookieDomain %s does not cover the virtual name %s",
                                conf->cookie_domain, v);
    }
    return NULL;
}

static int config_error(server_rec *s, const char *what, const char *problem)
{
    ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00211)
                 "%s:%d: %s: %s", s->defn_name ? s->defn_name : "?", s->defn_line_number, what,
                 problem);
    return HTTP_INTERNAL_SERVER_ERROR;
}

int kdeleg_session_check_config(apr_pool_t *p, server_rec *s)
{
    int status = OK;

    for (; s; s = s->next) {
        const kdeleg_srv_conf *conf = kdeleg_srv_conf_of(s);
        const char *problem;

        if (conf == NULL)
            continue;
        if (conf->session_key_file && conf->session_key_uid != 0
            && conf->session_key_uid != (long)ap_unixd_config.user_id
            && conf->session_key_uid != (long)getuid()) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00212)
                         "KdelegSessionKeyFile %s: owned by uid %ld, neither root nor the user "
                         "httpd runs as (chown root %s)", conf->session_key_file,
                         conf->session_key_uid, conf->session_key_file);
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
        if (conf->session == 1 && conf->session_keys == NULL) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00210)
                         "%s:%d: KdelegSession On needs KdelegSessionKeyFile (the same file "
                         "on every node)", s->defn_name ? s->defn_name : "?", s->defn_line_number);
            status = HTTP_INTERNAL_SERVER_ERROR;
        }
        if (conf->fqdn_redirect == 1 && (problem = fallback_problem(p, conf)) != NULL)
            status = config_error(s, "KdelegFQDNRedirect On", problem);
        if ((problem = domain_problem(p, conf)) != NULL)
            status = config_error(s, "KdelegCookieDomain", problem);
    }
    return status;
}

/* ------------------------------------------------------------ the bearer cookie stays here
 *
 * Session and state cookies are credentials for this front end only, and
 * so is a transfer token. They are taken out of the request before
 * anything else sees it, on every request of every virtual host: mod_proxy
 * would forward them to back ends, CGIs would see them in HTTP_COOKIE or
 * QUERY_STRING, the access log would keep the token, and any of those could
 * replay them here. What was taken is kept on the request pool, which
 * internal redirects share, and found through r->main for subrequests. */

#define KD_TAKEN "kdeleg-taken"

typedef struct {
    apr_table_t *cookies;      /* our cookies by their full name */
    const char *transfer;      /* the kdeleg-transfer value, or NULL */
    int transfer_tried;        /* redeemed (or refused) once already */
} kdeleg_taken;

/* Names we own: [__Host-|__Secure-]kdeleg_session[_NAME] and
 * [__Host-|__Secure-]kdeleg_state. */
static int ours(const char *name, size_t n)
{
    static const char *const prefixes[] = {"", KD_HOST_PREFIX, KD_SECURE_PREFIX};
    size_t i, sl = strlen(KD_SESSION_COOKIE), tl = strlen(KD_STATE_COOKIE);

    for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        size_t pl = strlen(prefixes[i]);
        if (n < pl || strncmp(name, prefixes[i], pl) != 0)
            continue;
        if ((n - pl == sl || (n - pl > sl && name[pl + sl] == '_'))
            && strncmp(name + pl, KD_SESSION_COOKIE, sl) == 0)
            return 1;
        if (n - pl == tl && strncmp(name + pl, KD_STATE_COOKIE, tl) == 0)
            return 1;
    }
    return 0;
}

/* One Cookie header without our items (kept in taken); NULL when nothing
 * is left. */
static const char *split_cookie_header(apr_pool_t *p, const char *header, apr_table_t *taken)
{
    char *copy = apr_pstrdup(p, header), *state = NULL, *item;
    const char *kept = NULL;

    for (item = apr_strtok(copy, ";", &state); item; item = apr_strtok(NULL, ";", &state)) {
        char *eq;
        while (*item == ' ' || *item == '\t')
            item++;
        if (*item == '\0')
            continue;
        eq = strchr(item, '=');
        if (eq && ours(item, (size_t)(eq - item))) {
            char *end = eq + 1 + strlen(eq + 1);
            while (end > eq + 1 && (end[-1] == ' ' || end[-1] == '\t'))
                *--end = '\0';
            if (apr_table_elts(taken)->nelts < 4 * MAX_COOKIES_TRIED)
                apr_table_addn(taken, apr_pstrmemdup(p, item, (apr_size_t)(eq - item)), eq + 1);
            continue;
        }
        kept = kept ? apr_pstrcat(p, kept, "; ", item, NULL) : item;
    }
    return kept;
}

static int collect_header(void *baton, const char *key, const char *value)
{
    APR_ARRAY_PUSH((apr_array_header_t *)baton, const char *) = value;
    return 1;
}

static void take_cookies(request_rec *r, kdeleg_taken *t)
{
    apr_array_header_t *headers = apr_array_make(r->pool, 2, sizeof(const char *));
    apr_array_header_t *kept = apr_array_make(r->pool, 2, sizeof(const char *));
    int i;

    apr_table_do(collect_header, headers, r->headers_in, "Cookie", NULL);
    for (i = 0; i < headers->nelts; i++)
        APR_ARRAY_PUSH(kept, const char *) = split_cookie_header(
            r->pool, APR_ARRAY_IDX(headers, i, const char *), t->cookies);
    if (apr_is_empty_table(t->cookies))
        return; /* none of ours: the headers stay byte for byte */
    apr_table_unset(r->headers_in, "Cookie");
    for (i = 0; i < kept->nelts; i++)
        if (APR_ARRAY_IDX(kept, i, const char *))
            apr_table_addn(r->headers_in, "Cookie", APR_ARRAY_IDX(kept, i, const char *));
}

/* The token leaves r->args, the parsed and unparsed URI and the request
 * line (which the access log prints). */
static void take_transfer(request_rec *r, kdeleg_taken *t)
{
    const char *value, *rest;

    if (r->args == NULL || strstr(r->args, KD_TRANSFER_PARAM) == NULL)
        return;
    rest = kd_query_take(r->pool, r->args, KD_TRANSFER_PARAM, &value);
    if (value == NULL)
        return;
    t->transfer = value;
    r->args = (char *)rest;
    r->parsed_uri.query = (char *)rest;
    r->unparsed_uri = apr_pstrcat(r->pool, r->parsed_uri.path ? r->parsed_uri.path : "/",
                                  rest ? "?" : "", rest ? rest : "", NULL);
    r->the_request = apr_pstrcat(r->pool, r->method, " ", r->unparsed_uri,
                                 r->protocol ? " " : "", r->protocol ? r->protocol : "", NULL);
}

static int take_credentials(request_rec *r)
{
    kdeleg_taken *t = apr_pcalloc(r->pool, sizeof(*t));

    t->cookies = apr_table_make(r->pool, 2);
    take_cookies(r, t);
    take_transfer(r, t);
    if (!apr_is_empty_table(t->cookies) || t->transfer)
        apr_pool_userdata_setn(t, KD_TAKEN, NULL, r->pool);
    return DECLINED;
}

static kdeleg_taken *taken_of(request_rec *r)
{
    void *t = NULL;

    while (r->main)
        r = r->main;
    apr_pool_userdata_get(&t, KD_TAKEN, r->pool);
    return t;
}

int kdeleg_session_offered(request_rec *r)
{
    const kdeleg_taken *t = taken_of(r);

    return sessions_on(kdeleg_srv_conf_of(r->server)) && t != NULL
           && (!apr_is_empty_table(t->cookies) || t->transfer != NULL);
}

static int push_value(void *baton, const char *key, const char *value)
{
    apr_array_header_t *values = baton;

    if (values->nelts < MAX_COOKIES_TRIED)
        APR_ARRAY_PUSH(values, const char *) = value;
    return 1;
}

/* The values this request arrived with for cookie `name` (exact name). */
static apr_array_header_t *cookie_values(request_rec *r, const char *name)
{
    apr_array_header_t *values = apr_array_make(r->pool, 2, sizeof(const char *));
    kdeleg_taken *t = taken_of(r);

    if (t)
        apr_table_do(push_value, values, t->cookies, name, NULL);
    return values;
}

static void logout_register_hooks(apr_pool_t *p);

void kdeleg_session_register_hooks(apr_pool_t *p)
{
    /* first: before any module reads or copies the request headers */
    ap_hook_post_read_request(take_credentials, NULL, NULL, APR_HOOK_REALLY_FIRST);
    logout_register_hooks(p);
}

/* ------------------------------------------------------------ scope and cookies */

static int is_https(request_rec *r)
{
    return strcmp(ap_http_scheme(r), "https") == 0;
}

/* The host a cookie is minted for: the virtual name the client asked for,
 * in its configured spelling; else this virtual host's ServerName. */
static const char *scope_host(request_rec *r)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    int i;

    for (i = 0; sc->virtual_names && r->hostname && i < sc->virtual_names->nelts; i++) {
        const char *v = APR_ARRAY_IDX(sc->virtual_names, i, const char *);
        if (strcasecmp(v, r->hostname) == 0)
            return v;
    }
    return r->server->server_hostname;
}

/* The port a cookie and the way back are bound to: the one ServerName
 * pins (ServerName https://vip:443 behind a TLS-terminating balancer, or
 * a balancer on another port than the nodes), else the port the
 * connection arrived on. Never the Host header's: a client must not be
 * able to present a cookie minted on :8443 to the virtual host on :443,
 * nor have a transfer token made for another port. */
static int scope_port(request_rec *r)
{
    if (r->server->port)
        return r->server->port;
    if (r->connection->local_addr && r->connection->local_addr->port)
        return r->connection->local_addr->port;
    return is_https(r) ? 443 : 80;
}

/* The site's own SPNs: those for the scope's host. A node's own SPNs never
 * enter a virtual name's scope, so every node opens the VIP's cookies. */
static const apr_array_header_t *scope_spns(request_rec *r, const kdeleg_dir_conf *conf,
                                            const char *host)
{
    const apr_array_header_t *spns = kdeleg_conf_spns(r, conf);
    apr_array_header_t *out = apr_array_make(r->pool, 2, sizeof(const char *));
    int i;

    for (i = 0; i < spns->nelts; i++) {
        const kd_spn *spn = &APR_ARRAY_IDX(spns, i, kd_spn);
        if (strcasecmp(spn->host, host) == 0)
            APR_ARRAY_PUSH(out, const char *) = kd_spn_unparse(r->pool, spn);
    }
    return out;
}

static const char *scope_name(const kdeleg_dir_conf *conf)
{
    return conf->session_scope ? conf->session_scope : "";
}

static const char *scope_of(request_rec *r, const kdeleg_dir_conf *conf)
{
    const char *host = scope_host(r);

    return kd_session_scope(r->pool, ap_http_scheme(r), host, scope_port(r), scope_name(conf),
                            scope_spns(r, conf, host));
}

/* The configured origin of a name this virtual host serves: httpd's scheme
 * (TLS, or ServerName https://... behind a balancer that terminates it)
 * and scope_port, never the Host header's port, which the client chooses.
 * The way out (kdeleg-return), the node leg's check of the way back and
 * the redemption of a transfer token all use it, so they agree. */
static const char *site_origin(request_rec *r, const char *host)
{
    kd_origin o;

    o.scheme = ap_http_scheme(r);
    o.host = host;
    o.port = scope_port(r);
    return kd_origin_unparse(r->pool, &o, o.scheme);
}

/* __Host- on https (host-only, Path=/, Secure: no sibling host can set or
 * shadow it); __Secure- on https with an opt-in domain. */
static const char *cookie_name(request_rec *r, const char *base)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);

    if (!is_https(r))
        return base;
    return apr_pstrcat(r->pool, sc->cookie_domain ? KD_SECURE_PREFIX : KD_HOST_PREFIX, base,
                       NULL);
}

static const char *session_cookie_name(request_rec *r, const kdeleg_dir_conf *conf)
{
    const char *name = scope_name(conf);

    return cookie_name(r, *name ? apr_pstrcat(r->pool, KD_SESSION_COOKIE "_", name, NULL)
                                      : KD_SESSION_COOKIE);
}

static void set_cookie(request_rec *r, const char *name, const char *value, apr_time_t expires,
                       int with_domain)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    char date[APR_RFC822_DATE_LEN];
    int domain = with_domain && sc->cookie_domain && !is_https(r);

    /* a __Secure- name may carry the domain; a __Host- one never does */
    if (with_domain && sc->cookie_domain && is_https(r))
        domain = strncmp(name, KD_SECURE_PREFIX, strlen(KD_SECURE_PREFIX)) == 0;
    apr_rfc822_date(date, expires);
    apr_table_add(r->err_headers_out, "Set-Cookie",
                  apr_pstrcat(r->pool, name, "=", value, "; Path=/",
                              domain ? "; Domain=" : "", domain ? sc->cookie_domain : "",
                              "; Expires=", date, "; HttpOnly; SameSite=Lax",
                              is_https(r) ? "; Secure" : "", NULL));
    /* Responses that set a session must never be stored by a cache. */
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
}

static void clear_cookie(request_rec *r, const char *name)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);

    set_cookie(r, name, "", 0, 0);
    if (sc->cookie_domain)
        set_cookie(r, name, "", 0, 1);
}

/* ------------------------------------------------------------ sessions */

static void log_invalid(request_rec *r, const char *what, const char *why, const char *principal)
{
    const kd_cause_info *info = kd_cause_get(KD_CAUSE_SESSION_INVALID);

    /* why may quote what the client chose (a method, an origin): escaped.
     * The cookie or token itself is never passed here. */
    kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00703), "-",
                       "%s ignored: cause %s: %s%s%s; the client re-authenticates with Kerberos",
                       what, info->name, ap_escape_logitem(r->pool, why), principal ? " for " : "",
                       principal ? ap_escape_logitem(r->pool, principal) : "");
}

/* REMOTE_USER for a session, as KdelegRemoteUser says where it is used:
 * the cookie holds the principal only. */
static const char *session_user(request_rec *r, const kdeleg_dir_conf *conf, const char *principal)
{
    const char *at = strrchr(principal, '@'), *local;

    switch (kdeleg_conf_remote_user(conf)) {
    case KD_REMOTE_USER_SHORT:
        return at ? apr_pstrmemdup(r->pool, principal, (apr_size_t)(at - principal)) : principal;
    case KD_REMOTE_USER_LOCAL:
        if ((local = kd_gss_local_name(r->pool, principal)) != NULL)
            return local;
        kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00302), "-",
                           "no auth_to_local mapping for %s; using the full principal as "
                           "REMOTE_USER",
                           ap_escape_logitem(r->pool, principal));
        return principal;
    default:
        return principal;
    }
}

static kdeleg_auth_state *state_from(request_rec *r, const kdeleg_dir_conf *conf,
                                     const kd_session *s)
{
    kdeleg_auth_state *st = apr_pcalloc(r->pool, sizeof(*st));
    const char *at = strrchr(s->spn, '@');

    st->principal = s->principal;
    st->user = session_user(r, conf, s->principal);
    st->spn = s->spn;
    st->ticket_sname = at ? apr_pstrmemdup(r->pool, s->spn, (apr_size_t)(at - s->spn)) : s->spn;
    st->ticket_realm = at ? at + 1 : NULL;
    st->method = "session";
    st->expires = s->expires;
    st->groups = s->groups;
    st->groups_read = 1;
    return st;
}

/* No ticket in this node's cache and no way to get evidence: ask the
 * client for a Kerberos token; the session stays as it is. */
static int rechallenge(request_rec *r, const kdeleg_auth_state *st)
{
    kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00704), st->spn,
                       "session for %s: this node holds no delegated tickets for it; asking the "
                       "client for Kerberos",
                       ap_escape_logitem(r->pool, st->principal));
    r->user = NULL;
    if (kdeleg_may_challenge(r, ap_get_module_config(r->per_dir_config, &kdeleg_module), 0))
        apr_table_setn(r->err_headers_out, "WWW-Authenticate", KD_AUTH_TYPE);
    return HTTP_UNAUTHORIZED;
}

static int session_delegation(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st)
{
    if (!kdeleg_conf_delegates(conf) || kdeleg_delegate_cached(r, conf, st) == OK)
        return OK;
    if (kdeleg_conf_protocol_transition(conf))
        return kdeleg_delegate_transition(r, conf, st);
    return rechallenge(r, st);
}

static long long now_ms(void)
{
    return (long long)(apr_time_now() / 1000);
}

/* The first of the request's cookies for this scope that opens. */
static kd_session_status open_session(request_rec *r, const kdeleg_dir_conf *conf,
                                      apr_array_header_t *values, kd_session *s)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    const char *scope = scope_of(r, conf);
    kd_session_status st = KD_SESSION_MALFORMED;
    int i;

    for (i = 0; i < values->nelts; i++) {
        st = kd_session_open(r->pool, sc->session_keys, scope,
                             APR_ARRAY_IDX(values, i, const char *), now_ms(), s);
        if (st == KD_SESSION_OK)
            break;
    }
    return st;
}

static int return_to_site(request_rec *r, const kdeleg_dir_conf *conf, const kdeleg_auth_state *st,
                          long ticket_seconds_left);

/* The identity policy of this location, for a session made elsewhere (or
 * before the policy changed). */
static int session_refused(request_rec *r, kd_cause cause, const char *why)
{
    const kd_cause_info *info = kd_cause_get(cause);

    kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00711), "-",
                       "session refused here: cause %s: %s (%s)",
                       info->name, info->summary, ap_escape_logitem(r->pool, why));
    kdeleg_note_failure(r, cause, NULL);
    apr_table_setn(r->subprocess_env, "KDELEG_ERROR", info->name);
    return info->http_status;
}

static int use_session(request_rec *r, const kdeleg_dir_conf *conf, const kd_session *s)
{
    kdeleg_auth_state *state;
    const char *why;
    kd_cause refusal;
    int status;

    if ((refusal = kdeleg_identity_refusal(r, conf, s->principal, &why)) != KD_CAUSE_NONE)
        return session_refused(r, refusal, why);
    state = state_from(r, conf, s);

    kdeleg_note(KD_STAT_SESSION_OK);
    /* A shared cache never stores an answer to a request carrying
     * Authorization (RFC 9111 3.5), but nothing stops it storing one to a
     * request that carried only our cookie: this page is the user's. */
    apr_table_mergen(r->err_headers_out, "Cache-Control", "private");
    ap_set_module_config(r->request_config, &kdeleg_module, state);
    r->user = apr_pstrdup(r->pool, state->user);
    r->ap_auth_type = KD_AUTH_TYPE;
    kdeleg_set_identity(r, state);
    /* The node leg of the fallback, for a client that already holds a
     * session for the node's own name: it goes back with a token too. */
    if (r->main == NULL
        && (status = return_to_site(r, conf, state,
                                    (long)(s->expires - apr_time_sec(apr_time_now()))))
               != DECLINED)
        return status;
    return session_delegation(r, conf, state);
}

static int redeem_transfer(request_rec *r, const kdeleg_dir_conf *conf);

int kdeleg_session_redeem(request_rec *r, const kdeleg_dir_conf *conf)
{
    if (!sessions_on(kdeleg_srv_conf_of(r->server)))
        return DECLINED;
    return redeem_transfer(r, conf);
}

static int bounceable(kd_cause cause);

/* Clients that send Negotiate unasked (curl, .NET PreAuthenticate) send
 * it also beside the session the FQDN fallback gave them, for the
 * virtual name this node cannot serve with Kerberos: a token that always
 * wins would fail every request after the way back. The session serves
 * instead, as it would have without the token, when the cause is one the
 * fallback exists for. Not when the location needs the client's ticket
 * for delegation (a session cannot give it without protocol transition):
 * that stays the fallback's KD00710. */
int kdeleg_session_instead(request_rec *r, const kdeleg_dir_conf *conf, kd_cause cause,
                           const char *spn)
{
    apr_array_header_t *values;
    const char *why;
    kd_session s;

    if (!sessions_on(kdeleg_srv_conf_of(r->server)) || !bounceable(cause) || r->main != NULL
        || (kdeleg_conf_delegates(conf) && !kdeleg_conf_protocol_transition(conf)))
        return DECLINED;
    values = cookie_values(r, session_cookie_name(r, conf));
    if (values->nelts == 0 || open_session(r, conf, values, &s) != KD_SESSION_OK
        || kdeleg_session_revoked(r->pool, s.principal, s.issued_ms, &why)
               != KDELEG_NOT_REVOKED)
        return DECLINED;
    kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00712), spn ? spn : "-",
                       "the client's Negotiate token cannot be used here (cause %s); its "
                       "session for %s serves the request instead",
                       kd_cause_name(cause), ap_escape_logitem(r->pool, s.principal));
    /* counted as the fallback counts the failures it handles: a node whose
     * keytab lost the virtual name's key shows on the status page */
    kdeleg_note_failure(r, cause, spn);
    return use_session(r, conf, &s);
}

int kdeleg_session_authenticate(request_rec *r, const kdeleg_dir_conf *conf)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    const char *name;
    apr_array_header_t *values;
    kd_session s;
    kd_session_status st;
    const char *why;
    int status, revoked;

    if (!sessions_on(sc))
        return DECLINED;
    if ((status = redeem_transfer(r, conf)) != DECLINED)
        return status;
    name = session_cookie_name(r, conf);
    values = cookie_values(r, name);
    if (values->nelts == 0)
        return DECLINED;
    st = open_session(r, conf, values, &s);
    if (st == KD_SESSION_OK
        && (revoked = kdeleg_session_revoked(r->pool, s.principal, s.issued_ms, &why))
               != KDELEG_NOT_REVOKED) {
        log_invalid(r, "session cookie", why, s.principal);
        /* A store that is down says nothing of this session: it is
         * refused now and kept for when the store answers. */
        if (revoked == KDELEG_REVOKED)
            clear_cookie(r, name);
        return DECLINED;
    }
    if (st != KD_SESSION_OK) {
        log_invalid(r, "session cookie", kd_session_status_str(st), s.principal);
        /* Tell the browser to drop it, host-only and domain copies alike. */
        clear_cookie(r, name);
        return DECLINED;
    }
    return use_session(r, conf, &s);
}

static long session_lifetime(const kdeleg_srv_conf *sc, long ticket_seconds_left)
{
    long lifetime = sc->session_lifetime != KD_UNSET ? sc->session_lifetime
                                                       : DEFAULT_LIFETIME;

    if (ticket_seconds_left < MIN_TICKET_LEFT)
        return 0; /* unknown or about to end: no session to outlive it */
    return ticket_seconds_left < lifetime ? ticket_seconds_left : lifetime;
}

/* Too many groups for a cookie (or a transfer token): no session, the
 * user re-authenticates with Kerberos on every request. */
static void note_too_large(request_rec *r, const char *what, const char *principal,
                           const char *spn, size_t size)
{
    kdeleg_note(KD_STAT_SESSIONS_TOO_LARGE);
    kdeleg_log_request(r, APLOG_WARNING, 0, KDLOGNO(00726), spn,
                       "no %s for %s: with its groups it would take %lu characters, above "
                       "the %d a cookie may hold; the user authenticates with Kerberos on "
                       "every request instead",
                       what, ap_escape_logitem(r->pool, principal), (unsigned long)size,
                       KD_SESSION_MAX_COOKIE);
}

/* The groups an issued session carries: the user's, when known (a
 * session without them answers Require kdeleg-group with no-group-info). */
static const kd_groups *groups_to_carry(request_rec *r)
{
    const char *why;

    return kdeleg_groups_of(r, &why);
}

/* Seal and set the session cookie for this request's scope. */
static int issue_session(request_rec *r, const kdeleg_dir_conf *conf, const char *principal,
                         const char *spn, kd_session_method method, long lifetime,
                         const kd_groups *groups)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    kd_session s;
    const char *value;
    size_t size;

    memset(&s, 0, sizeof(s));
    s.method = method;
    s.issued_ms = now_ms();
    s.expires = s.issued_ms / 1000 + lifetime;
    s.principal = principal;
    s.spn = spn;
    s.groups = groups;
    if (lifetime <= 0)
        return -1;
    if ((size = kd_session_encoded_size(&s)) > KD_SESSION_MAX_COOKIE) {
        note_too_large(r, "session", principal, spn, size);
        return -1;
    }
    if ((value = kd_session_seal(r->pool, sc->session_keys, scope_of(r, conf), &s)) == NULL) {
        kdeleg_log_request(r, APLOG_ERR, 0, KDLOGNO(00706), spn,
                           "could not seal a session for %s (name too long for a cookie?)",
                           ap_escape_logitem(r->pool, principal));
        return -1;
    }
    set_cookie(r, session_cookie_name(r, conf), value, apr_time_from_sec(s.expires), 1);
    kdeleg_log_request(r, APLOG_DEBUG, 0, KDLOGNO(00707), spn,
                       "session issued for %s, %ld s, scope %s",
                       ap_escape_logitem(r->pool, principal), lifetime,
                       ap_escape_logitem(r->pool, site_origin(r, scope_host(r))));
    return 0;
}

int kdeleg_session_after_kerberos(request_rec *r, const kdeleg_dir_conf *conf,
                                  const kdeleg_auth_state *st,
                                  long ticket_seconds_left)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    int status;

    if (!sessions_on(sc) || r->main != NULL)
        return OK;
    /* The node leg of the fallback: no cookie here, a token for the VIP. */
    if ((status = return_to_site(r, conf, st, ticket_seconds_left)) != DECLINED)
        return status;
    issue_session(r, conf, st->principal, st->spn, KD_SESSION_KERBEROS,
                  session_lifetime(sc, ticket_seconds_left), groups_to_carry(r));
    return OK;
}

/* ------------------------------------------------------------ FQDN fallback */

static int is_virtual(const kdeleg_srv_conf *sc, const char *host, const char **configured)
{
    int i;

    for (i = 0; sc->virtual_names && host && i < sc->virtual_names->nelts; i++) {
        const char *v = APR_ARRAY_IDX(sc->virtual_names, i, const char *);
        if (strcasecmp(v, host) == 0) {
            *configured = v;
            return 1;
        }
    }
    return 0;
}

/* Redirects that carry or redeem a token: never cached, never a Referer. */
static int redirect(request_rec *r, const char *location)
{
    apr_table_set(r->headers_out, "Location", location);
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->err_headers_out, "Referrer-Policy", "no-referrer");
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

/* A session cookie of this scope that opens: the client already came
 * through the fallback (or Kerberos) here. */
static int holds_session(request_rec *r, const kdeleg_dir_conf *conf)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    apr_array_header_t *values;
    const char *why;
    kd_session s;

    if (!sessions_on(sc))
        return 0;
    values = cookie_values(r, session_cookie_name(r, conf));
    return values->nelts > 0 && open_session(r, conf, values, &s) == KD_SESSION_OK
           && kdeleg_session_revoked(r->pool, s.principal, s.issued_ms, &why)
                  == KDELEG_NOT_REVOKED;
}

int kdeleg_fqdn_bounce(request_rec *r, const kdeleg_dir_conf *conf, kd_cause cause)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    const char *host, *vip, *node, *back, *location, *args, *state;
    kdeleg_taken *t = taken_of(r);
    unsigned char hash[KD_STATE_HASH_BYTES];
    int port;

    if (sc->fqdn_redirect != 1 || sc->node_name == NULL || !bounceable(cause)
        || r->main != NULL || (r->method_number != M_GET) /* GET and HEAD */
        || kd_host_header_split(r->pool, apr_table_get(r->headers_in, "Host"), &host, &port) != 0
        || !is_virtual(sc, host, &vip))
        return DECLINED;
    if (holds_session(r, conf)) {
        /* The client has a session here but cannot do Kerberos on this name
         * (a page that needs its ticket for delegation): another bounce
         * would only bring it back to the same 401. */
        kdeleg_log_request(r, APLOG_WARNING, 0, KDLOGNO(00710), "-",
                           "cause %s on %s for a client that holds a session here: not "
                           "redirecting to %s again; delegation for it needs "
                           "KdelegProtocolTransition On (or a ticket for the virtual name)",
                           kd_cause_name(cause), vip, sc->node_name->host);
        return DECLINED;
    }
    if (t && t->transfer) {
        kdeleg_log_request(r, APLOG_WARNING, 0, KDLOGNO(00702), "-",
                           "cause %s on %s right after the client came back from %s with a "
                           "transfer token that did not give a session (see the line before): "
                           "not redirecting twice",
                           kd_cause_name(cause), vip, sc->node_name->host);
        return DECLINED;
    }
    if ((state = kd_state_new(r->pool)) == NULL)
        return DECLINED;
    kd_state_hash(state, hash);
    set_cookie(r, cookie_name(r, KD_STATE_COOKIE), state,
               apr_time_now() + apr_time_from_sec(STATE_SECONDS), 0);
    /* A way back or state the client wrote itself never travels on: ours
     * are the only ones the node sees. */
    args = kd_query_take(r->pool, r->args, KD_RETURN_PARAM, NULL);
    args = kd_query_take(r->pool, args, KD_STATE_PARAM, NULL);
    node = kd_origin_unparse(r->pool, sc->node_name, ap_http_scheme(r));
    /* the virtual name's configured origin, whatever port the Host header named */
    back = kd_url_escape_component(r->pool, site_origin(r, vip));
    location = kd_url_build(
        r->pool, node, r->parsed_uri.path,
        apr_pstrcat(r->pool, args ? args : "", args ? "&" : "", KD_RETURN_PARAM "=", back,
                    "&" KD_STATE_PARAM "=", kd_state_hash_encode(r->pool, hash), NULL));
    kdeleg_note(KD_STAT_FQDN_REDIRECTS);
    kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00701), "-",
                       "FQDN fallback: cause %s on virtual name %s; redirecting the client to "
                       "this node's name %s",
                       kd_cause_name(cause), vip, sc->node_name->host);
    return redirect(r, location);
}

static int node_leg_refused(request_rec *r, const char *raw, const char *why)
{
    kdeleg_log_request(r, APLOG_WARNING, 0, KDLOGNO(00708), "-",
                       "ignoring " KD_RETURN_PARAM " '%s': %s; serving the "
                       "page here",
                       ap_escape_logitem(r->pool, raw), why);
    return DECLINED;
}

/* Why raw (a kdeleg-return value) is not the way back; NULL when it is the
 * configured origin of one of our virtual names, given in *origin. The
 * scheme and port must be those the virtual name is served on here, not
 * whatever the client put in: http for an https site would carry the
 * token in clear, another port reaches another virtual host. */
static const char *way_back_problem(request_rec *r, const kdeleg_dir_conf *conf, const char *raw,
                                    const char **origin)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    const char *decoded = kd_url_unescape(r->pool, raw), *vip, *err;
    kd_origin back;

    err = decoded ? kd_origin_parse(r->pool, decoded, &back) : "broken escape";
    if (err == NULL && (back.scheme == NULL || !is_virtual(sc, back.host, &vip)))
        err = "not a configured KdelegVirtualName";
    if (err != NULL)
        return err;
    back.host = vip;
    *origin = site_origin(r, vip);
    if (strcmp(kd_origin_unparse(r->pool, &back, back.scheme), *origin) != 0)
        return apr_psprintf(r->pool, "not the configured origin of the virtual name, %s "
                            "(scheme and port of this virtual host's ServerName, else of the "
                            "connection)", *origin);
    return NULL;
}

/* The node leg, authenticated: send the client back to the virtual name it
 * came from with a transfer token for that origin only. Only a configured
 * virtual name, on its configured scheme and port, is a way back.
 * DECLINED when this is not the node leg. */
static int return_to_site(request_rec *r, const kdeleg_dir_conf *conf, const kdeleg_auth_state *st,
                          long ticket_seconds_left)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    const char *raw, *rest, *err, *state, *origin = NULL, *token;
    kd_session t;
    size_t size;

    if (r->prev != NULL || r->method_number != M_GET)
        return DECLINED;
    rest = kd_query_take(r->pool, r->args, KD_RETURN_PARAM, &raw);
    if (raw == NULL)
        return DECLINED;
    rest = kd_query_take(r->pool, rest, KD_STATE_PARAM, &state);
    err = way_back_problem(r, conf, raw, &origin);
    memset(&t, 0, sizeof(t));
    if (err == NULL && kd_state_hash_decode(r->pool, state, t.state_hash) != 0)
        err = "no " KD_STATE_PARAM " from the virtual name with it";
    if (err == NULL && session_lifetime(sc, ticket_seconds_left) <= 0)
        err = "the user's ticket ends too soon for a session";
    if (err != NULL)
        return node_leg_refused(r, raw, err);
    t.method = KD_SESSION_KERBEROS;
    t.issued_ms = now_ms();
    t.expires = t.issued_ms / 1000 + KD_TRANSFER_MAX_SECONDS;
    t.session_end = t.issued_ms / 1000 + session_lifetime(sc, ticket_seconds_left);
    t.principal = st->principal;
    t.spn = st->spn;
    t.origin = origin;
    t.groups = groups_to_carry(r);
    if ((size = kd_transfer_encoded_size(&t)) > KD_SESSION_MAX_COOKIE) {
        note_too_large(r, "transfer token", st->principal, st->spn, size);
        return node_leg_refused(r, raw, "too many groups for a transfer token");
    }
    if (kd_random(t.id, sizeof(t.id)) != 0
        || (token = kd_transfer_seal(r->pool, sc->session_keys, &t)) == NULL)
        return node_leg_refused(r, raw, "could not seal a transfer token");
    kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00705), "-",
                       "FQDN fallback: %s authenticated on the node name; sending it back to %s "
                       "with a one-time transfer token",
                       ap_escape_logitem(r->pool, st->principal), origin);
    return redirect(r, kd_url_build(r->pool, origin, r->parsed_uri.path,
                                    apr_pstrcat(r->pool, rest ? rest : "", rest ? "&" : "",
                                                KD_TRANSFER_PARAM "=", token, NULL)));
}

static int transfer_refused(request_rec *r, const kdeleg_dir_conf *conf, const char *why,
                            const char *principal)
{
    log_invalid(r, "transfer token", why, principal);
    kdeleg_note_failure(r, KD_CAUSE_SESSION_INVALID, NULL);
    clear_cookie(r, cookie_name(r, KD_STATE_COOKIE));
    return DECLINED;
}

/* Spent once: the token's id goes into the replay table, and with a
 * shared replay store (KdelegReplayCache memcache:/redis:) into the
 * farm's, so a token is good once per farm. */
static const char *spend(apr_pool_t *p, const kd_session *t)
{
    unsigned char tag[KD_REPLAY_TAG_BYTES];
    kdeleg_replay_why why;

    if (!kdeleg_replay_active())
        return "single use cannot be enforced: KdelegReplayCache is off";
    kd_replay_tag(t->id, sizeof(t->id), tag);
    switch (kdeleg_replay_record(p, tag, &why)) {
    case KD_REPLAY_FRESH:
        return NULL;
    case KD_REPLAY_SEEN:
        return why.elsewhere ? "used before on another node (a transfer token is good once)"
                             : "used before (a transfer token is good once)";
    case KD_REPLAY_FULL:
        return "the replay table is full";
    case KD_REPLAY_SHARED_DOWN:
        return apr_pstrcat(p, "single use cannot be checked: ", why.detail, NULL);
    default:
        return "the replay table cannot be locked";
    }
}

/* Why a token opened on this node must still be refused; NULL if none. */
static const char *transfer_problem(request_rec *r, const kdeleg_dir_conf *conf,
                                    const kd_session *t)
{
    apr_array_header_t *states = cookie_values(r, cookie_name(r, KD_STATE_COOKIE));
    unsigned char hash[KD_STATE_HASH_BYTES];
    const char *why;
    int i, match = 0;

    if (strcmp(t->origin, site_origin(r, scope_host(r))) != 0)
        return apr_psprintf(r->pool, "made for %s, not %s", t->origin,
                            site_origin(r, scope_host(r)));
    for (i = 0; i < states->nelts; i++) {
        kd_state_hash(APR_ARRAY_IDX(states, i, const char *), hash);
        match |= CRYPTO_memcmp(hash, t->state_hash, sizeof(hash)) == 0;
    }
    if (!match)
        return states->nelts ? "the state cookie does not match (login CSRF?)"
                             : "no state cookie: the bounce did not start in this browser";
    if (kdeleg_session_revoked(r->pool, t->principal, t->issued_ms, &why) != KDELEG_NOT_REVOKED)
        return why;
    return spend(r->pool, t);
}

/* Back on the virtual name with a token: exchange it for a host-only
 * session cookie, and send the client to the URL without the token. */
static int redeem_transfer(request_rec *r, const kdeleg_dir_conf *conf)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    kdeleg_taken *tk = taken_of(r);
    const char *why, *path;
    kd_session t;
    kd_session_status st;
    long lifetime;

    if (tk == NULL || tk->transfer == NULL || tk->transfer_tried || r->main)
        return DECLINED;
    tk->transfer_tried = 1;
    if (r->method_number != M_GET) /* our way back is a GET (or HEAD), nothing else */
        return transfer_refused(r, conf, apr_psprintf(r->pool, "arrived with %s", r->method),
                                NULL);
    st = kd_transfer_open(r->pool, sc->session_keys, tk->transfer, now_ms(), &t);
    if (st != KD_SESSION_OK)
        return transfer_refused(r, conf, kd_session_status_str(st), t.principal);
    if ((why = transfer_problem(r, conf, &t)) != NULL)
        return transfer_refused(r, conf, why, t.principal);
    lifetime = (long)(t.session_end - now_ms() / 1000);
    if (sc->session_lifetime != KD_UNSET && sc->session_lifetime < lifetime)
        lifetime = sc->session_lifetime;
    else if (sc->session_lifetime == KD_UNSET && DEFAULT_LIFETIME < lifetime)
        lifetime = DEFAULT_LIFETIME;
    if (issue_session(r, conf, t.principal, t.spn, t.method, lifetime, t.groups) != 0)
        return transfer_refused(r, conf, "no session could be issued from it", t.principal);
    clear_cookie(r, cookie_name(r, KD_STATE_COOKIE));
    kdeleg_note(KD_STAT_TRANSFERS_REDEEMED);
    kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00709), "-",
                       "FQDN fallback: transfer token for %s redeemed; session issued for %s",
                       ap_escape_logitem(r->pool, t.principal), t.origin);
    path = r->parsed_uri.path ? r->parsed_uri.path : "/";
    while (path[0] == '/' && path[1] == '/')
        path++; /* "//host" would name another host */
    return redirect(r, kd_url_build(r->pool, "", path, r->args));
}

/* ------------------------------------------------------------ logout */

#define KD_LOGOUT_HANDLER "kdeleg-logout"

static int logout_fixups(request_rec *r)
{
    const kdeleg_dir_conf *conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);

    if (conf && conf->session_logout && *conf->session_logout && r->main == NULL
        && strcmp(r->uri, conf->session_logout) == 0)
        r->handler = KD_LOGOUT_HANDLER;
    return DECLINED;
}

/* Revoke (principal, issued before now) for the session this request
 * carries in this scope; returns the principal, or NULL. *farm_failed:
 * the farm's store did not take the logout. */
static const char *revoke_session(request_rec *r, const kdeleg_dir_conf *conf, const char *name,
                                  int *farm_failed)
{
    apr_array_header_t *values = cookie_values(r, name);
    kd_session s;

    *farm_failed = 0;
    if (values->nelts == 0 || open_session(r, conf, values, &s) != KD_SESSION_OK)
        return NULL;
    /* until the longest session this node could have issued ends */
    *farm_failed = kdeleg_revoke_principal(r, s.principal, now_ms(),
                                           apr_time_sec(apr_time_now()) + 7 * 24 * 3600) == -2;
    kdeleg_note(KD_STAT_SESSION_LOGOUTS);
    kdeleg_log_request(r, APLOG_NOTICE, 0, KDLOGNO(00723), "-",
                       "logout: every session of %s issued until now (by any node, in any scope) "
                       "is refused on %s",
                       ap_escape_logitem(r->pool, s.principal),
                       kdeleg_revoke_shared() && !*farm_failed ? "every node of the farm"
                                                               : "this node");
    return s.principal;
}

static int logout_handler(request_rec *r)
{
    const kdeleg_srv_conf *sc = kdeleg_srv_conf_of(r->server);
    const kdeleg_dir_conf *conf;
    const char *name, *who = NULL;
    int farm_failed = 0;

    if (r->handler == NULL || strcmp(r->handler, KD_LOGOUT_HANDLER) != 0)
        return DECLINED;
    r->allowed = (AP_METHOD_BIT << M_GET);
    ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL); /* the 405's Allow header */
    if (r->method_number != M_GET)
        return HTTP_METHOD_NOT_ALLOWED;
    conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    name = session_cookie_name(r, conf);
    if (sessions_on(sc))
        who = revoke_session(r, conf, name, &farm_failed);
    clear_cookie(r, name);
    if (farm_failed) {
        /* The cookie is gone from this browser and the node refuses the
         * session, but copies could still open elsewhere: say so. */
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
        apr_table_setn(r->notes, "kdeleg-cause", "shared-store-down");
        r->status = HTTP_SERVICE_UNAVAILABLE;
    }
    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->err_headers_out, "Cache-Control", "no-store");
    if (!r->header_only)
        ap_rprintf(r, "<!DOCTYPE html>\n<html><head><title>Signed out</title></head><body>"
                      "<p>%s</p></body></html>\n",
                   farm_failed ? "Your session has ended here, but the other servers could not "
                                 "be told yet. Please sign out again in a moment."
                   : who       ? "Your session has ended."
                               : "You have no session here.");
    return OK;
}

static void logout_register_hooks(apr_pool_t *p)
{
    ap_hook_fixups(logout_fixups, NULL, NULL, APR_HOOK_LAST);
    ap_hook_handler(logout_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
