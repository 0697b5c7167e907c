/* mod_kdeleg_status: node-wide statistics in shared memory, and the
 * `SetHandler kdeleg-status` page that explains this node to an
 * administrator: per virtual host its names, SPNs and keytab entries (never
 * keys), what is missing, delegation targets and their last result,
 * counters and recent failures with their remedies, and the caller's own
 * request. This file fills the core's model (kd_status) from the
 * configuration, the statistics and the request, runs the self-test,
 * serves the page and writes its HTML; the core writes JSON and Prometheus
 * text. The counters also go to mod_status's /server-status. */
#include "mod_kdeleg.h"

#include <string.h>
#include <time.h>

#include <ap_mpm.h>
#include <http_core.h>
#include <http_log.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_cfgtree.h>
#include <apr_optional_hooks.h>
#include <apr_strings.h>
#include <mod_status.h>
#include <openssl/crypto.h>

#include "kd_causes.h"
#include "kd_escape.h"
#include "kd_keytab.h"
#include "kd_selftest.h"
#include "kd_status.h"
#include "kd_token.h"

APLOG_USE_MODULE(kdeleg);

#define KD_STATUS_HANDLER "kdeleg-status"
#define KD_STATS_KEPT "mod_kdeleg-stats"
#define SELFTEST_INTERVAL 10  /* seconds between self-tests, node-wide */
#define SELFTEST_MAX_OFFSET 300 /* krb5's default clockskew */

static kd_stats *stats; /* set in post_config, inherited by every child */

/* ------------------------------------------------------------ counting */

void kdeleg_note(kd_stat which)
{
    kd_stats_count(stats, which);
}

void kdeleg_note_failure(request_rec *r, kd_cause cause, const char *spn)
{
    if (cause == KD_CAUSE_NO_TOKEN || cause == KD_CAUSE_NONE)
        return;
    kd_stats_count(stats, KD_STAT_AUTH_FAILED);
    kd_stats_failure(stats, cause, apr_time_sec(apr_time_now()), r->server->server_hostname,
                     r->useragent_ip, spn);
}

void kdeleg_note_target(const char *target, kd_cause cause)
{
    kd_stats_target(stats, target, cause, apr_time_sec(apr_time_now()));
}

void kdeleg_report_failure(request_rec *r, int level, const kd_result *res, const char *spn,
                           const kdeleg_failure *what)
{
    const kd_cause_info *info = kd_cause_get(res->cause);
    const char *shown = ap_escape_logitem(r->pool, spn ? spn : "-");
    const char *detail = ap_escape_logitem(r->pool, res->detail ? res->detail : "");

    if (what->user == NULL)
        kdeleg_log_request(r, level, 0, KDLOGNO(00301), shown,
                           "authentication failed: " KD_CAUSE_FMT,
                           info->name, info->summary, detail, info->ad_fix, info->mit_fix);
    else
        kdeleg_log_request(r, level, 0, KDLOGNO(00401), shown,
                           "delegation of %s to %s failed: " KD_CAUSE_FMT "%s",
                           ap_escape_logitem(r->pool, what->user),
                           what->target ? what->target : "-", info->name, info->summary,
                           detail, info->ad_fix, info->mit_fix,
                           what->continuing ? "; continuing without credentials" : "");
    kdeleg_note_failure(r, res->cause, spn);
    if (what->user && what->target)
        kdeleg_note_target(what->target, res->cause);
    /* Also when the request fails: an ErrorDocument sees REDIRECT_KDELEG_ERROR. */
    if (res->cause != KD_CAUSE_NO_TOKEN)
        apr_table_setn(r->subprocess_env, "KDELEG_ERROR", info->name);
}

/* Counters survive graceful restarts like the replay table (a kept
 * table); they are lock-free, so it has no mutex. */
int kdeleg_status_post_config(apr_pool_t *pconf, server_rec *s)
{
    kdeleg_kept_table *kept;
    apr_status_t rv;
    int fresh;

    rv = kdeleg_kept_table_get(s, KD_STATS_KEPT, NULL, kd_stats_size(), &kept, &fresh);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, s, KDLOGNO(00801)
                     "no shared memory for statistics: the status page shows no counters");
        return OK;
    }
    if (fresh)
        kd_stats_init(kdeleg_kept_table_base(kept), kdeleg_kept_table_size(kept));
    stats = kd_stats_attach(kdeleg_kept_table_base(kept));
    return OK;
}

/* ------------------------------------------------------------ the model */

typedef enum { FMT_HTML, FMT_JSON, FMT_PROM } status_format;

/* The core's model (kd_status) and what only the glue needs beside it. */
typedef struct {
    kd_status *m;
    apr_array_header_t *servers; /* server_rec *, one per m->vhosts entry */
} status_view;

static void view_vhost(apr_pool_t *p, server_rec *s, kd_status_vhost *v)
{
    const kdeleg_srv_conf *srv = kdeleg_srv_conf_of(s);     /* the virtual host's own */
    const kdeleg_dir_conf *conf = kdeleg_server_dir_conf(s); /* its server-level defaults */
    const apr_array_header_t *spns;
    int i;

    v->main_server = s == ap_server_conf;
    kd_status_add_name(v->names, s->server_hostname);
    for (i = 0; s->names && i < s->names->nelts; i++)
        kd_status_add_name(v->names, APR_ARRAY_IDX(s->names, i, const char *));
    for (i = 0; srv->virtual_names && i < srv->virtual_names->nelts; i++)
        kd_status_add_name(v->names, APR_ARRAY_IDX(srv->virtual_names, i, const char *));
    v->keytab = kdeleg_conf_keytab(conf);
    v->entries = kd_keytab_list(p, v->keytab, &v->keytab_error);
    spns = kdeleg_conf_server_spns(p, s, conf);
    for (i = 0; i < spns->nelts; i++) {
        kd_status_spn *c = apr_array_push(v->spns);
        const kd_spn *one = &APR_ARRAY_IDX(spns, i, kd_spn);
        c->spn = kd_spn_unparse(p, one);
        c->kvno = kd_keytab_kvno(v->entries, c->spn);
        kd_keytab_describe(p, v->keytab, c->spn, &c->key_owner, &c->host_alias);
        if (c->kvno < 0 && c->host_alias) { /* the same judgement the acceptor makes */
            const char *at = one->realm ? apr_pstrcat(p, "@", one->realm, NULL) : "";
            c->kvno = kd_keytab_kvno(v->entries, apr_pstrcat(p, "host/", one->host, at, NULL));
            if (c->kvno < 0)
                c->kvno = kd_keytab_kvno(v->entries, apr_pstrcat(p, "HOST/", one->host, at, NULL));
        }
        c->tgt_as = kdeleg_conf_service_account(conf, c->spn);
        if (c->tgt_as == NULL && c->key_owner)
            c->tgt_as = c->key_owner;
        else if (c->tgt_as == NULL) /* the SPN itself, with the realm it gets */
            c->tgt_as = one->realm || !kdeleg_default_realm()
                            ? c->spn : apr_pstrcat(p, c->spn, "@", kdeleg_default_realm(), NULL);
    }
    v->targets = kdeleg_conf_delegation_targets(p, conf);
    v->virtual_names = srv->virtual_names != NULL;
    v->fqdn_redirect = srv->fqdn_redirect == 1;
    v->sessions = srv->session == 1;
}

/* What the caller sent: the "you" section (Microsoft's WhoAmI page). */
static void view_caller(request_rec *r, kd_status_caller *you)
{
    const char *auth = apr_table_get(r->headers_in, "Authorization");
    const kdeleg_auth_state *st = kdeleg_auth_state_of(r);
    unsigned char *tok;
    size_t len;
    kd_token_info info;
    kd_result res;

    you->host = apr_table_get(r->headers_in, "Host");
    you->scheme = auth ? apr_pstrmemdup(r->pool, auth, strcspn(auth, " \t")) : "none";
    you->token = "none";
    kd_result_init(&res);
    if (auth) {
        kd_cause c = kd_token_from_header(r->pool, auth, &tok, &len, &res);
        if (c == KD_CAUSE_NONE)
            c = kd_token_sniff(r->pool, tok, len, &info, &res);
        you->token = c == KD_CAUSE_NONE ? "kerberos"
                     : c == KD_CAUSE_NTLM_OFFERED ? "ntlm"
                     : c == KD_CAUSE_NO_TOKEN ? "none" : "malformed";
    }
    you->user = r->user;
    you->method = st ? st->method : (r->user ? r->ap_auth_type : NULL);
}

/* Does one ServerTokens line say Full? httpd reads its first word so:
 * anything but these names is Full. */
static int tokens_full(apr_pool_t *p, const char *args)
{
    static const char *const less[] = {"OS", "Min", "Minimal", "Major", "Minor", "Prod",
                                       "ProductOnly"};
    const char *word = ap_getword_conf(p, &args);
    size_t i;

    for (i = 0; i < sizeof(less) / sizeof(less[0]); i++)
        if (strcasecmp(word, less[i]) == 0)
            return 0;
    return 1;
}

/* ServerTokens, which httpd keeps to itself (no getter). Below Full the
 * banner is locked, so it lacks what the description has: the components
 * modules add and, below OS, the platform or part of the version. OS with
 * no component gives the same banner as Full, so the configuration tree
 * decides (a true <IfModule> and an Include leave their directives in
 * line there; the last ServerTokens wins, as in httpd). */
static int versions_shown(apr_pool_t *p)
{
    const ap_directive_t *d;
    int full = 1;

    if (strcmp(ap_get_server_banner(), ap_get_server_description()) != 0)
        return 0;
    for (d = ap_conftree; d; d = d->next)
        if (d->directive && strcasecmp(d->directive, "ServerTokens") == 0)
            full = tokens_full(p, d->args ? d->args : "");
    return full;
}

/* The versions the page may show (NULL below ServerTokens Full) and the
 * ones it always shows: httpd's banner and the MPM's name. */
static void view_versions(apr_pool_t *p, kd_status *m)
{
    if (versions_shown(p)) {
        m->version = KD_PACKAGE_VERSION;
        m->krb5 = KD_KRB5_VERSION;
        m->openssl = OpenSSL_version(OPENSSL_VERSION);
    }
    m->httpd = ap_get_server_banner();
    m->mpm = ap_show_mpm();
}

static status_view *build_view(request_rec *r)
{
    status_view *sv = apr_pcalloc(r->pool, sizeof(*sv));
    server_rec *s;

    sv->m = kd_status_make(r->pool);
    sv->servers = apr_array_make(r->pool, 4, sizeof(server_rec *));
    for (s = ap_server_conf; s; s = s->next) {
        view_vhost(r->pool, s, kd_status_add_vhost(sv->m, s->server_hostname
                                                          ? s->server_hostname : "(unnamed)"));
        APR_ARRAY_PUSH(sv->servers, server_rec *) = s;
    }
    kd_status_take_stats(sv->m, stats);
    view_versions(r->pool, sv->m);
    view_caller(r, &sv->m->you);
    return sv;
}

/* ------------------------------------------------------------ self-test */

static const char **strings(apr_pool_t *p, const apr_array_header_t *a)
{
    return (const char **)apr_array_copy(p, a)->elts;
}

/* One run per distinct (keytab, service, SPNs, targets): the main server
 * and a virtual host inheriting everything are tested once. */
static void run_selftest(request_rec *r, status_view *sv)
{
    const kdeleg_dir_conf *here = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    apr_hash_t *done = apr_hash_make(r->pool);
    kd_status *m = sv->m;
    int i, j;

    m->selftest = apr_array_make(r->pool, 2, sizeof(kd_status_selftest));
    for (i = 0; i < m->vhosts->nelts; i++) {
        const kd_status_vhost *v = &APR_ARRAY_IDX(m->vhosts, i, kd_status_vhost);
        server_rec *s = APR_ARRAY_IDX(sv->servers, i, server_rec *);
        const kdeleg_dir_conf *conf = kdeleg_server_dir_conf(s);
        apr_array_header_t *spns = apr_array_make(r->pool, 4, sizeof(const char *));
        apr_array_header_t *targets = apr_array_copy(r->pool, v->targets);
        kd_selftest_params prm;
        const char *key;
        kd_status_selftest *res;

        if (conf->keytab == NULL || v->spns->nelts == 0)
            continue; /* no keytab of its own: nothing of this host to test */
        for (j = 0; j < v->spns->nelts; j++)
            APR_ARRAY_PUSH(spns, const char *) = APR_ARRAY_IDX(v->spns, j, kd_status_spn).spn;
        if (s == r->server)
            apr_array_cat(targets, kdeleg_conf_delegation_targets(r->pool, here));
        key = apr_pstrcat(r->pool, v->keytab, "|", apr_array_pstrcat(r->pool, spns, ','), "|",
                          apr_array_pstrcat(r->pool, targets, ','), NULL);
        if (apr_hash_get(done, key, APR_HASH_KEY_STRING))
            continue;
        apr_hash_set(done, key, APR_HASH_KEY_STRING, key);
        memset(&prm, 0, sizeof(prm));
        prm.acceptor = kdeleg_acceptor_for(conf);
        prm.keytab = v->keytab;
        prm.service = APR_ARRAY_IDX(spns, 0, const char *);
        prm.spns = strings(r->pool, spns);
        prm.n_spns = spns->nelts;
        prm.test_user = here->selftest_user ? here->selftest_user : conf->selftest_user;
        prm.account = kdeleg_conf_service_account(conf, prm.service);
        prm.targets = strings(r->pool, targets);
        prm.n_targets = targets->nelts;
        prm.max_clock_offset = SELFTEST_MAX_OFFSET;
        res = apr_array_push(m->selftest);
        res->vhost = v->name;
        res->steps = kd_selftest_run(r->pool, &prm);
        for (j = 0; j < res->steps->nelts; j++) {
            const kd_selftest_step *st = &APR_ARRAY_IDX(res->steps, j, kd_selftest_step);
            /* the virtual host under test, not the request's: kdeleg_log_request's
             * context would name the status page's */
            if (st->cause != KD_CAUSE_NONE)
                ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, KDLOGNO(00805)
                              "kdeleg(%s, %s, %s): self-test step %s for %s: cause %s: %s",
                              v->name, r->useragent_ip, prm.service, st->step, st->subject,
                              kd_cause_name(st->cause), ap_escape_logitem(r->pool, st->detail));
        }
    }
}

/* The self-test talks to the KDC and leaves tickets in the node's cache:
 * a state change, so POST only, and never from another site. A browser
 * says where a request comes from (Sec-Fetch-Site, Origin); a client
 * that says nothing (curl, monitoring) is not a browser being driven by a
 * foreign page. */
static const char *cross_site(request_rec *r)
{
    const char *site = apr_table_get(r->headers_in, "Sec-Fetch-Site");
    const char *origin = apr_table_get(r->headers_in, "Origin");
    const char *host = apr_table_get(r->headers_in, "Host");
    const char *authority;

    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return apr_pstrcat(r->pool, "Sec-Fetch-Site: ", site, NULL);
    if (origin == NULL)
        return NULL;
    authority = strstr(origin, "://");
    if (authority == NULL || host == NULL || strcasecmp(authority + 3, host) != 0)
        return apr_pstrcat(r->pool, "Origin ", origin, " is not this host", NULL);
    return NULL;
}

/* ?selftest=1: POST, same origin, only where KdelegSelfTest On, at most
 * once per interval. */
static int selftest_allowed(request_rec *r)
{
    const kdeleg_dir_conf *conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    const char *why;

    if (r->method_number != M_POST) {
        kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00806), "-",
                           "self-test refused: it runs on POST only");
        ap_allow_methods(r, REPLACE_ALLOW, "POST", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if ((why = cross_site(r)) != NULL) {
        kdeleg_log_request(r, APLOG_WARNING, 0, KDLOGNO(00807), "-",
                           "self-test refused: a cross-site request (%s)",
                           ap_escape_logitem(r->pool, why));
        return HTTP_FORBIDDEN;
    }

    if (conf->selftest != 1) {
        kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00803), "-",
                           "self-test refused: KdelegSelfTest is not On for this location");
        return HTTP_FORBIDDEN;
    }
    if (!kd_stats_take_turn(stats, apr_time_sec(apr_time_now()), SELFTEST_INTERVAL)) {
        kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00804), "-",
                           "self-test refused: one per %d s on this node", SELFTEST_INTERVAL);
        apr_table_setn(r->err_headers_out, "Retry-After",
                       apr_itoa(r->pool, SELFTEST_INTERVAL));
        return HTTP_TOO_MANY_REQUESTS;
    }
    return OK;
}

/* ------------------------------------------------------------ HTML */

#define H(s) kd_html(r->pool, (s))

/* One configured SPN on the HTML page: whose key serves it, and who the
 * front end is when it asks the KDC for tickets itself. */
static const char *spn_check_html(request_rec *r, const kd_status_spn *c)
{
    if (c->kvno < 0)
        return apr_psprintf(r->pool, "<code>%s</code> <b>missing from the keytab</b>. "
                            "Fix (AD): %s. Fix (MIT): %s.", H(c->spn),
                            H(kd_cause_get(KD_CAUSE_KEYTAB_UNUSABLE)->ad_fix),
                            H(kd_cause_get(KD_CAUSE_KEYTAB_UNUSABLE)->mit_fix));
    if (c->host_alias)
        return apr_psprintf(r->pool, "<code>%s</code> served by %s's key (HOST mapping, kvno "
                            "%d); TGT taken as <code>%s</code>", H(c->spn),
                            c->key_owner ? H(c->key_owner) : "host/", c->kvno, H(c->tgt_as));
    return apr_psprintf(r->pool, "<code>%s</code> in the keytab (kvno %d); TGT taken as "
                        "<code>%s</code>", H(c->spn), c->kvno, H(c->tgt_as));
}

static const char STYLE[] =
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:80em}"
    "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.3em .6em;"
    "text-align:left;vertical-align:top}th{background:#f4f4f4}"
    ".ok{color:#176b2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}"
    ".card{border:1px solid #ccc;border-radius:6px;padding:.5em 1em;margin:1em 0}"
    ".card.bad-card{border-color:#b00020}.small{color:#666;font-size:.9em}code{font-size:.95em}";

static void html_check(request_rec *r, int ok, const char *text)
{
    ap_rprintf(r, "<li><span class=\"%s\">%s</span> %s</li>\n", ok ? "ok" : "bad",
               ok ? "&#10004;" : "&#10008;", text);
}

/* A virtual host's card: a check per item, then its keytab's entries. */
static void html_vhost(request_rec *r, const kd_status *m, const kd_status_vhost *v)
{
    int i, problems = (v->keytab_error != NULL) + kd_status_missing(v);
    int failures = kd_status_vhost_failures(m, v);

    ap_rprintf(r, "<div class=\"card%s\"><h3>%s %s%s</h3>\n<p class=\"small\">%s"
               "recent failures: %d; names:", problems ? " bad-card" : "",
               problems ? "<span class=\"bad\">&#10008;</span>"
                        : "<span class=\"ok\">&#10004;</span>",
               H(v->name), v->main_server ? " <span class=\"small\">(main server)</span>" : "",
               problems ? apr_psprintf(r->pool, "<span class=\"bad\">%d problem%s</span>; ",
                                       problems, problems > 1 ? "s" : "") : "", failures);
    for (i = 0; i < v->names->nelts; i++)
        ap_rprintf(r, " <code>%s</code>", H(APR_ARRAY_IDX(v->names, i, const char *)));
    ap_rputs("</p>\n<ul>\n", r);
    html_check(r, v->keytab_error == NULL,
               apr_psprintf(r->pool, "keytab <code>%s</code>%s%s", H(v->keytab),
                            v->keytab_error ? ": " : " readable",
                            v->keytab_error ? H(v->keytab_error) : ""));
    for (i = 0; i < v->spns->nelts; i++) {
        const kd_status_spn *c = &APR_ARRAY_IDX(v->spns, i, kd_status_spn);
        html_check(r, c->kvno >= 0, spn_check_html(r, c));
    }
    for (i = 0; i < v->targets->nelts; i++) {
        const char *t = APR_ARRAY_IDX(v->targets, i, const char *);
        const kd_target_record *tr = kd_status_target(m, t);
        int failing = tr && tr->last_failure > tr->last_ok;
        html_check(r, !failing, apr_psprintf(r->pool, "delegation to <code>%s</code>: %s", H(t),
                   tr == NULL ? "not tried yet"
                   : failing ? apr_psprintf(r->pool, "last failed %s: %s", H(kd_status_time(r->pool,
                               tr->last_failure)), H(kd_cause_name(tr->last_cause)))
                   : apr_psprintf(r->pool, "last ok %s", H(kd_status_time(r->pool, tr->last_ok)))));
    }
    ap_rputs("</ul>\n<table><tr><th>principal</th><th>kvno</th><th>enctype</th></tr>\n", r);
    for (i = 0; v->entries && i < v->entries->nelts; i++) {
        const kd_keytab_entry *e = &APR_ARRAY_IDX(v->entries, i, kd_keytab_entry);
        ap_rprintf(r, "<tr><td><code>%s</code></td><td>%d</td><td>%s</td></tr>\n",
                   H(e->principal), e->kvno, H(e->enctype));
    }
    ap_rputs("</table></div>\n", r);
}

static void html_selftest(request_rec *r, const kd_status *m)
{
    int i, j;

    ap_rputs("<h2>Self-test</h2>\n", r);
    for (i = 0; i < m->selftest->nelts; i++) {
        const kd_status_selftest *res = &APR_ARRAY_IDX(m->selftest, i, kd_status_selftest);
        ap_rprintf(r, "<h3>%s</h3>\n<table><tr><th></th><th>step</th><th>for</th><th>result"
                   "</th><th>fix (AD)</th><th>fix (MIT)</th></tr>\n", H(res->vhost));
        for (j = 0; j < res->steps->nelts; j++) {
            const kd_selftest_step *st = &APR_ARRAY_IDX(res->steps, j, kd_selftest_step);
            const kd_cause_info *info = kd_cause_get(st->cause);
            int ok = st->cause == KD_CAUSE_NONE;
            ap_rprintf(r, "<tr><td><span class=\"%s\">%s</span></td><td>%s</td><td><code>%s"
                       "</code></td><td>%s%s%s</td><td>%s</td><td>%s</td></tr>\n",
                       ok ? "ok" : "bad", st->skipped ? "&#8211;" : ok ? "&#10004;" : "&#10008;",
                       H(st->step), H(st->subject), ok ? "" : "<b>",
                       ok ? "" : apr_pstrcat(r->pool, H(info->name), "</b>: ", NULL),
                       H(st->detail), ok ? "" : H(info->ad_fix), ok ? "" : H(info->mit_fix));
        }
        ap_rputs("</table>\n", r);
    }
}

static void html_output(request_rec *r, const kd_status *m)
{
    int i;

    ap_set_content_type(r, "text/html; charset=utf-8");
    ap_rprintf(r, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mod_kdeleg "
               "status</title><style>%s</style></head><body>\n<h1>mod_kdeleg%s%s</h1>\n"
               "<p class=\"small\">krb5%s%s, %s, %s, MPM %s%s. Counters cover all child "
               "processes since start. <a href=\"?format=json\">JSON</a> "
               "<a href=\"?format=prometheus\">Prometheus</a></p>\n", STYLE,
               m->version ? " " : "", m->version ? H(m->version) : "",
               m->krb5 ? " " : "", m->krb5 ? H(m->krb5) : "",
               m->openssl ? H(m->openssl) : "OpenSSL", H(m->httpd), H(m->mpm),
               m->version ? "" : " (version numbers hidden: ServerTokens is not Full)");
    ap_rputs("<h2>You</h2>\n<table>\n", r);
    ap_rprintf(r, "<tr><th>Host header</th><td><code>%s</code></td></tr>\n"
               "<tr><th>Authorization scheme</th><td>%s</td></tr>\n"
               "<tr><th>token</th><td>%s</td></tr>\n<tr><th>user</th><td>%s</td></tr>\n"
               "<tr><th>method</th><td>%s</td></tr>\n</table>\n", H(m->you.host),
               H(m->you.scheme), H(m->you.token),
               m->you.user ? H(m->you.user) : "(not authenticated here)",
               H(m->you.method ? m->you.method : "-"));
    if (m->selftest)
        html_selftest(r, m);
    ap_rputs("<h2>Virtual hosts</h2>\n", r);
    for (i = 0; i < m->vhosts->nelts; i++)
        html_vhost(r, m, &APR_ARRAY_IDX(m->vhosts, i, kd_status_vhost));
    ap_rputs("<h2>Recent failures</h2>\n", r);
    if (m->n_recent == 0)
        ap_rputs("<p class=\"ok\">&#10004; none since start</p>\n", r);
    else
        ap_rputs("<table><tr><th>time (UTC)</th><th>vhost</th><th>client</th><th>ticket for"
                 "</th><th>cause</th><th>what happened</th><th>fix (AD)</th><th>fix (MIT)</th>"
                 "</tr>\n", r);
    for (i = 0; i < m->n_recent; i++) {
        const kd_failure_record *f = &m->recent[i];
        const kd_cause_info *info = kd_cause_get(f->cause);
        ap_rprintf(r, "<tr><td>%s</td><td>%s</td><td>%s</td><td><code>%s</code></td>"
                   "<td class=\"bad\">%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
                   H(kd_status_time(r->pool, f->time)), H(f->vhost), H(f->client), H(f->spn),
                   H(info->name), H(info->summary), H(info->ad_fix), H(info->mit_fix));
    }
    if (m->n_recent)
        ap_rputs("</table>\n", r);
    ap_rputs("<h2>Counters</h2>\n<table>\n", r);
    for (i = 0; i < KD_STAT__COUNT; i++)
        ap_rprintf(r, "<tr><th>%s</th><td>%lu</td></tr>\n", kd_stat_name(i), m->counters[i]);
    for (i = KD_CAUSE_NONE + 1; i < KD_CAUSE__COUNT; i++)
        if (m->failures[i])
            ap_rprintf(r, "<tr><th>failures: %s</th><td class=\"bad\">%lu</td></tr>\n",
                       kd_cause_name(i), m->failures[i]);
    ap_rputs("</table>\n</body></html>\n", r);
}

/* ------------------------------------------------------------ handler */

static status_format wanted_format(request_rec *r)
{
    const char *format = NULL, *accept = apr_table_get(r->headers_in, "Accept");

    kd_query_take(r->pool, r->args, "format", &format);
    if (format && strcmp(format, "json") == 0)
        return FMT_JSON;
    if (format && strcmp(format, "prometheus") == 0)
        return FMT_PROM;
    if (format == NULL && accept && strstr(accept, "application/json") != NULL)
        return FMT_JSON;
    return FMT_HTML;
}

static int status_handler(request_rec *r)
{
    status_view *sv;
    const char *selftest = NULL;

    if (r->handler == NULL || strcmp(r->handler, KD_STATUS_HANDLER) != 0)
        return DECLINED;
    r->allowed = (AP_METHOD_BIT << M_GET);
    ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL); /* the 405's Allow header */
    kd_query_take(r->pool, r->args, "selftest", &selftest);
    if (selftest && strcmp(selftest, "1") == 0) {
        int rv = selftest_allowed(r);
        if (rv != OK)
            return rv;
        ap_discard_request_body(r);
    }
    else if (r->method_number != M_GET) {
        kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00802), "-",
                           "status page: method %s refused (GET and HEAD only)",
                           ap_escape_logitem(r->pool, r->method));
        return HTTP_METHOD_NOT_ALLOWED;
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    apr_table_setn(r->headers_out, "Content-Security-Policy",
                   "default-src 'none'; style-src 'unsafe-inline'");
    sv = build_view(r);
    if (selftest && strcmp(selftest, "1") == 0)
        run_selftest(r, sv);
    switch (wanted_format(r)) {
    case FMT_JSON:
        ap_set_content_type(r, "application/json");
        ap_rputs(kd_status_json(sv->m, r->pool), r);
        break;
    case FMT_PROM:
        ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
        ap_rputs(kd_status_prometheus(sv->m, r->pool), r);
        break;
    default:
        html_output(r, sv->m);
    }
    return OK;
}

/* ------------------------------------------------------------ mod_status */

/* The module's section of mod_status's /server-status: the counters and
 * nothing else (no principal, client or host name: that page is often
 * open to more people than ours). ?auto gets "Name: value" lines. */
static int server_status_hook(request_rec *r, int flags)
{
    kd_status *m = kd_status_make(r->pool);
    int i;

    for (i = 0; i < KD_STAT__COUNT; i++)
        m->counters[i] = kd_stats_get(stats, (kd_stat)i);
    if (flags & AP_STATUS_SHORT) {
        ap_rputs(kd_status_auto(m, r->pool), r);
        return OK;
    }
    ap_rputs("<hr />\n<h2>mod_kdeleg</h2>\n", r);
    if (flags & AP_STATUS_NOTABLE) {
        ap_rputs("<dl>\n", r);
        for (i = 0; i < KD_STAT__COUNT; i++)
            ap_rprintf(r, "<dt>%s: %lu</dt>\n", kd_status_auto_name((kd_stat)i),
                       m->counters[i]);
        ap_rputs("</dl>\n", r);
        return OK;
    }
    ap_rputs("<table border=\"0\">\n<tr><th>counter</th><th>value</th></tr>\n", r);
    for (i = 0; i < KD_STAT__COUNT; i++)
        ap_rprintf(r, "<tr><td>%s</td><td>%lu</td></tr>\n", kd_status_auto_name((kd_stat)i),
                   m->counters[i]);
    ap_rputs("</table>\n", r);
    return OK;
}

void kdeleg_status_register_hooks(apr_pool_t *p)
{
    ap_hook_handler(status_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* mod_status calls it when loaded; without it nothing does */
    APR_OPTIONAL_HOOK(ap, status_hook, server_status_hook, NULL, NULL, APR_HOOK_MIDDLE);
}
