#include "kd_status.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <apr_strings.h>

#include "kd_escape.h"

/* ------------------------------------------------------------ the model */

kd_status *kd_status_make(apr_pool_t *p)
{
    kd_status *m = apr_pcalloc(p, sizeof(*m));

    m->vhosts = apr_array_make(p, 4, sizeof(kd_status_vhost));
    return m;
}

kd_status_vhost *kd_status_add_vhost(kd_status *m, const char *name)
{
    apr_pool_t *p = m->vhosts->pool;
    kd_status_vhost *v = apr_array_push(m->vhosts);

    memset(v, 0, sizeof(*v));
    v->name = name;
    v->names = apr_array_make(p, 4, sizeof(const char *));
    v->spns = apr_array_make(p, 2, sizeof(kd_status_spn));
    v->targets = apr_array_make(p, 1, sizeof(const char *));
    return v;
}

void kd_status_add_name(apr_array_header_t *names, const char *name)
{
    int i;

    if (name == NULL || *name == '\0')
        return;
    for (i = 0; i < names->nelts; i++)
        if (strcasecmp(APR_ARRAY_IDX(names, i, const char *), name) == 0)
            return;
    APR_ARRAY_PUSH(names, const char *) = name;
}

void kd_status_take_stats(kd_status *m, const kd_stats *st)
{
    int i;

    for (i = 0; i < KD_STAT__COUNT; i++)
        m->counters[i] = kd_stats_get(st, (kd_stat)i);
    for (i = 0; i < KD_CAUSE__COUNT; i++)
        m->failures[i] = kd_stats_failures(st, (kd_cause)i);
    m->n_recent = kd_stats_recent(st, m->recent, KD_STATS_RECENT);
    m->n_targets = kd_stats_targets(st, m->targets, KD_STATS_TARGETS);
}

int kd_status_missing(const kd_status_vhost *v)
{
    int i, n = 0;

    for (i = 0; i < v->spns->nelts; i++)
        n += APR_ARRAY_IDX(v->spns, i, kd_status_spn).kvno < 0;
    return n;
}

const kd_target_record *kd_status_target(const kd_status *m, const char *target)
{
    int i;

    for (i = 0; i < m->n_targets; i++)
        if (strcmp(m->targets[i].target, target) == 0)
            return &m->targets[i];
    return NULL;
}

int kd_status_vhost_failures(const kd_status *m, const kd_status_vhost *v)
{
    int i, n = 0;

    for (i = 0; i < m->n_recent; i++)
        n += strcmp(m->recent[i].vhost, v->name) == 0;
    return n;
}

const char *kd_status_time(apr_pool_t *p, long long t)
{
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;

    if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
        return NULL;
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return apr_pstrdup(p, buf);
}

/* ------------------------------------------------------------ output buffer */

/* The text grows in one pool buffer, doubled when full. apr_pvsprintf
 * formats as ap_rprintf does (both are apr_vformatter). */
typedef struct {
    apr_pool_t *p;
    char *text;
    size_t len, cap;
} out_buf;

static void out_put(out_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *grown;

        while (cap < b->len + n + 1)
            cap *= 2;
        grown = apr_palloc(b->p, cap);
        if (b->len)
            memcpy(grown, b->text, b->len);
        b->text = grown;
        b->cap = cap;
    }
    memcpy(b->text + b->len, s, n);
    b->len += n;
    b->text[b->len] = '\0';
}

static void out_puts(out_buf *b, const char *s)
{
    out_put(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void out_printf(out_buf *b, const char *fmt, ...)
{
    va_list ap;
    const char *s;

    va_start(ap, fmt);
    s = apr_pvsprintf(b->p, fmt, ap);
    va_end(ap);
    out_puts(b, s);
}

static char *out_text(out_buf *b)
{
    if (b->text == NULL)
        out_put(b, "", 0);
    return b->text;
}

/* ------------------------------------------------------------ JSON */

#define J(s) kd_json_string(b->p, (s))
#define BOOL(x) ((x) ? "true" : "false")

static void json_missing(out_buf *b, const kd_status_vhost *v)
{
    int i, first;

    out_puts(b, "],\n     \"missing_spns\": [");
    for (i = 0, first = 1; i < v->spns->nelts; i++) {
        const kd_status_spn *c = &APR_ARRAY_IDX(v->spns, i, kd_status_spn);
        if (c->kvno < 0) {
            out_printf(b, "%s%s", first ? "" : ", ", J(c->spn));
            first = 0;
        }
    }
}

static void json_targets_of(out_buf *b, const kd_status *m, const kd_status_vhost *v)
{
    int i;

    out_puts(b, "],\n     \"delegation_targets\": [");
    for (i = 0; i < v->targets->nelts; i++) {
        const char *t = APR_ARRAY_IDX(v->targets, i, const char *);
        const kd_target_record *tr = kd_status_target(m, t);
        out_printf(b, "%s\n       {\"target\": %s, \"last_ok\": %s, \"last_failure\": %s, "
                   "\"last_cause\": %s, \"ok\": %lu, \"failed\": %lu}", i ? "," : "", J(t),
                   J(tr ? kd_status_time(b->p, tr->last_ok) : NULL),
                   J(tr ? kd_status_time(b->p, tr->last_failure) : NULL),
                   J(tr && tr->last_failure ? kd_cause_name(tr->last_cause) : NULL),
                   tr ? tr->ok : 0, tr ? tr->failed : 0);
    }
}

static void json_vhost(out_buf *b, const kd_status *m, const kd_status_vhost *v, int last)
{
    int i;

    out_printf(b, "    {\"name\": %s, \"names\": [", J(v->name));
    for (i = 0; i < v->names->nelts; i++)
        out_printf(b, "%s%s", i ? ", " : "", J(APR_ARRAY_IDX(v->names, i, const char *)));
    out_printf(b, "],\n     \"keytab\": %s, \"keytab_error\": %s,\n     \"spns\": [",
               J(v->keytab), J(v->keytab_error));
    for (i = 0; i < v->spns->nelts; i++)
        out_printf(b, "%s%s", i ? ", " : "", J(APR_ARRAY_IDX(v->spns, i, kd_status_spn).spn));
    json_missing(b, v);
    out_puts(b, "],\n     \"identities\": [");
    for (i = 0; i < v->spns->nelts; i++) {
        const kd_status_spn *c = &APR_ARRAY_IDX(v->spns, i, kd_status_spn);
        out_printf(b, "%s\n       {\"spn\": %s, \"key_owner\": %s, \"host_mapping\": %s, "
                   "\"tgt_as\": %s}", i ? "," : "", J(c->spn), J(c->key_owner),
                   BOOL(c->host_alias), J(c->tgt_as));
    }
    out_puts(b, "],\n     \"keytab_entries\": [");
    for (i = 0; v->entries && i < v->entries->nelts; i++) {
        const kd_keytab_entry *e = &APR_ARRAY_IDX(v->entries, i, kd_keytab_entry);
        out_printf(b, "%s\n       {\"principal\": %s, \"kvno\": %d, \"enctype\": %s}",
                   i ? "," : "", J(e->principal), e->kvno, J(e->enctype));
    }
    json_targets_of(b, m, v);
    out_printf(b, "],\n     \"virtual_names\": %s, \"fqdn_redirect\": %s, \"sessions\": %s}%s\n",
               BOOL(v->virtual_names), BOOL(v->fqdn_redirect), BOOL(v->sessions),
               last ? "" : ",");
}

static void json_selftest(out_buf *b, const kd_status *m)
{
    int i, j;

    out_puts(b, ",\n  \"selftest\": [");
    for (i = 0; i < m->selftest->nelts; i++) {
        const kd_status_selftest *res = &APR_ARRAY_IDX(m->selftest, i, kd_status_selftest);
        out_printf(b, "%s\n    {\"vhost\": %s, \"steps\": [", i ? "," : "", J(res->vhost));
        for (j = 0; j < res->steps->nelts; j++) {
            const kd_selftest_step *st = &APR_ARRAY_IDX(res->steps, j, kd_selftest_step);
            const kd_cause_info *info = kd_cause_get(st->cause);
            int ok = st->cause == KD_CAUSE_NONE;
            out_printf(b, "%s\n      {\"step\": %s, \"subject\": %s, \"ok\": %s, "
                       "\"skipped\": %s, \"cause\": %s, \"detail\": %s, \"hint\": %s, "
                       "\"fix_ad\": %s, \"fix_mit\": %s}", j ? "," : "", J(st->step),
                       J(st->subject), BOOL(ok), BOOL(st->skipped),
                       J(ok ? NULL : info->name), J(st->detail), J(ok ? NULL : info->summary),
                       J(ok ? NULL : info->ad_fix), J(ok ? NULL : info->mit_fix));
        }
        out_puts(b, "]}");
    }
    out_puts(b, "]");
}

static void json_counters(out_buf *b, const kd_status *m)
{
    int i;

    out_puts(b, "  ],\n  \"counters\": {");
    for (i = 0; i < KD_STAT__COUNT; i++)
        out_printf(b, "%s\"%s\": %lu", i ? ", " : "", kd_stat_name((kd_stat)i), m->counters[i]);
    for (i = KD_CAUSE_NONE + 1; i < KD_CAUSE__COUNT; i++)
        out_printf(b, ", \"failures_%s\": %lu", kd_cause_name((kd_cause)i), m->failures[i]);
    out_puts(b, "},\n  \"recent_failures\": [");
    for (i = 0; i < m->n_recent; i++) {
        const kd_failure_record *f = &m->recent[i];
        const kd_cause_info *info = kd_cause_get(f->cause);
        out_printf(b, "%s\n    {\"time\": %s, \"vhost\": %s, \"client\": %s, \"spn\": %s, "
                   "\"cause\": %s, \"hint\": %s, \"fix_ad\": %s, \"fix_mit\": %s}",
                   i ? "," : "", J(kd_status_time(b->p, f->time)), J(f->vhost), J(f->client),
                   J(f->spn[0] ? f->spn : NULL), J(info->name), J(info->summary),
                   J(info->ad_fix), J(info->mit_fix));
    }
    out_puts(b, "],\n  \"delegation_targets\": [");
    for (i = 0; i < m->n_targets; i++) {
        const kd_target_record *t = &m->targets[i];
        out_printf(b, "%s\n    {\"target\": %s, \"last_ok\": %s, \"last_failure\": %s, "
                   "\"last_cause\": %s, \"ok\": %lu, \"failed\": %lu}", i ? "," : "",
                   J(t->target), J(kd_status_time(b->p, t->last_ok)),
                   J(kd_status_time(b->p, t->last_failure)),
                   J(t->last_failure ? kd_cause_name(t->last_cause) : NULL), t->ok, t->failed);
    }
    out_puts(b, "]");
}

char *kd_status_json(const kd_status *m, apr_pool_t *p)
{
    out_buf buf = {p, NULL, 0, 0}, *b = &buf;
    int i;

    /* below ServerTokens Full the versions are null, httpd as its Server header says */
    out_printf(b, "{\n  \"version\": %s,\n  \"libraries\": {\"krb5\": %s, \"openssl\": %s, "
               "\"httpd\": %s, \"mpm\": %s},\n  \"vhosts\": [\n", J(m->version), J(m->krb5),
               J(m->openssl), J(m->httpd), J(m->mpm));
    for (i = 0; i < m->vhosts->nelts; i++)
        json_vhost(b, m, &APR_ARRAY_IDX(m->vhosts, i, kd_status_vhost),
                   i == m->vhosts->nelts - 1);
    json_counters(b, m);
    if (m->selftest)
        json_selftest(b, m);
    out_printf(b, ",\n  \"you\": {\"host\": %s, \"scheme\": %s, \"token\": %s, "
               "\"user\": %s, \"method\": %s}\n}\n", J(m->you.host), J(m->you.scheme),
               J(m->you.token), J(m->you.user), J(m->you.method));
    return out_text(b);
}

#undef J

/* ------------------------------------------------------------ Prometheus */

#define L(s) kd_prom_label(b->p, (s))

char *kd_status_prometheus(const kd_status *m, apr_pool_t *p)
{
    out_buf buf = {p, NULL, 0, 0}, *b = &buf;
    int i;

    out_printf(b, "# HELP kdeleg_info mod_kdeleg and library versions (empty below "
               "ServerTokens Full).\n"
               "# TYPE kdeleg_info gauge\n"
               "kdeleg_info{version=\"%s\",krb5=\"%s\"} 1\n", L(m->version), L(m->krb5));
    out_puts(b, "# HELP kdeleg_events_total Events on this node since start (all children).\n"
             "# TYPE kdeleg_events_total counter\n");
    for (i = 0; i < KD_STAT__COUNT; i++)
        out_printf(b, "kdeleg_events_total{event=\"%s\"} %lu\n", kd_stat_name((kd_stat)i),
                   m->counters[i]);
    out_puts(b, "# HELP kdeleg_failures_total Failures by cause (all children).\n"
             "# TYPE kdeleg_failures_total counter\n");
    for (i = KD_CAUSE_NONE + 1; i < KD_CAUSE__COUNT; i++)
        out_printf(b, "kdeleg_failures_total{cause=\"%s\"} %lu\n", kd_cause_name((kd_cause)i),
                   m->failures[i]);
    out_puts(b, "# HELP kdeleg_missing_spns Configured SPNs without a key in the keytab.\n"
             "# TYPE kdeleg_missing_spns gauge\n");
    for (i = 0; i < m->vhosts->nelts; i++) {
        const kd_status_vhost *v = &APR_ARRAY_IDX(m->vhosts, i, kd_status_vhost);
        int missing = kd_status_missing(v);
        /* an unreadable keytab serves none of them */
        out_printf(b, "kdeleg_missing_spns{vhost=\"%s\"} %d\n", L(v->name),
                   v->keytab_error ? v->spns->nelts : missing);
    }
    out_puts(b, "# HELP kdeleg_delegations_total Back-end tickets by target and result.\n"
             "# TYPE kdeleg_delegations_total counter\n");
    for (i = 0; i < m->n_targets; i++) {
        const char *t = L(m->targets[i].target);
        out_printf(b, "kdeleg_delegations_total{target=\"%s\",result=\"ok\"} %lu\n"
                   "kdeleg_delegations_total{target=\"%s\",result=\"failed\"} %lu\n", t,
                   m->targets[i].ok, t, m->targets[i].failed);
    }
    return out_text(b);
}

#undef L

/* ------------------------------------------------------------ mod_status */

/* The names on /server-status?auto, one per counter (docs/status-page.md). */
static const char *const auto_names[KD_STAT__COUNT] = {
    [KD_STAT_AUTH_OK] = "KdelegAuthenticated",
    [KD_STAT_AUTH_FAILED] = "KdelegAuthFailed",
    [KD_STAT_SESSION_OK] = "KdelegSessionAuthenticated",
    [KD_STAT_S4U2SELF_OK] = "KdelegS4U2Self",
    [KD_STAT_S4U2PROXY_OK] = "KdelegS4U2Proxy",
    [KD_STAT_FQDN_REDIRECTS] = "KdelegFQDNRedirects",
    [KD_STAT_TICKET_CACHE_HITS] = "KdelegTicketCacheHits",
    [KD_STAT_TICKET_CACHE_MISSES] = "KdelegTicketCacheMisses",
    [KD_STAT_TRANSFERS_REDEEMED] = "KdelegTransfersRedeemed",
    [KD_STAT_SESSION_LOGOUTS] = "KdelegSessionLogouts",
    [KD_STAT_SESSIONS_TOO_LARGE] = "KdelegSessionsTooLarge",
    [KD_STAT_HEALTH_OK] = "KdelegHealthOk",
    [KD_STAT_HEALTH_UNAVAILABLE] = "KdelegHealthUnavailable",
    [KD_STAT_CHANNEL_BOUND] = "KdelegChannelBoundLogins",
    [KD_STAT_CHANNEL_UNBOUND] = "KdelegChannelUnboundLogins",
};

const char *kd_status_auto_name(kd_stat s)
{
    return (unsigned)s < KD_STAT__COUNT && auto_names[s] ? auto_names[s] : "KdelegUnknown";
}

char *kd_status_auto(const kd_status *m, apr_pool_t *p)
{
    out_buf buf = {p, NULL, 0, 0}, *b = &buf;
    int i;

    for (i = 0; i < KD_STAT__COUNT; i++)
        out_printf(b, "%s: %lu\n", kd_status_auto_name((kd_stat)i), m->counters[i]);
    return out_text(b);
}
