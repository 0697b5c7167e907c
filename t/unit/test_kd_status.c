#include "kd_unit.h"

#include <string.h>
#include <apr_strings.h>

#include "kd_escape.h"
#include "kd_status.h"

#define T0 1795000000LL /* 2026-11-18T11:06:40Z */

/* The "counters" object as the model holds them: every event, then a
 * failure count per cause (none excluded), in catalogue order. */
static const char *counters_json(const kd_status *m)
{
    const char *out = "";
    int i;

    for (i = 0; i < KD_STAT__COUNT; i++)
        out = apr_psprintf(kd_test_pool, "%s%s\"%s\": %lu", out, i ? ", " : "",
                           kd_stat_name((kd_stat)i), m->counters[i]);
    for (i = KD_CAUSE_NONE + 1; i < KD_CAUSE__COUNT; i++)
        out = apr_psprintf(kd_test_pool, "%s, \"failures_%s\": %lu", out,
                           kd_cause_name((kd_cause)i), m->failures[i]);
    return out;
}

/* The Prometheus events and failures, as the model holds them. */
static const char *counters_prom(const kd_status *m)
{
    const char *out = "# HELP kdeleg_events_total Events on this node since start (all "
                      "children).\n# TYPE kdeleg_events_total counter\n";
    int i;

    for (i = 0; i < KD_STAT__COUNT; i++)
        out = apr_psprintf(kd_test_pool, "%skdeleg_events_total{event=\"%s\"} %lu\n", out,
                           kd_stat_name((kd_stat)i), m->counters[i]);
    out = apr_pstrcat(kd_test_pool, out, "# HELP kdeleg_failures_total Failures by cause (all "
                      "children).\n# TYPE kdeleg_failures_total counter\n", NULL);
    for (i = KD_CAUSE_NONE + 1; i < KD_CAUSE__COUNT; i++)
        out = apr_psprintf(kd_test_pool, "%skdeleg_failures_total{cause=\"%s\"} %lu\n", out,
                           kd_cause_name((kd_cause)i), m->failures[i]);
    return out;
}

static const char *J(const char *s)
{
    return kd_json_string(kd_test_pool, s);
}

START_TEST(empty_model)
{
    static const char prefix[] =
        "\"auth_ok\": 0, \"auth_failed\": 0, \"session_ok\": 0, \"s4u2self_ok\": 0, "
        "\"s4u2proxy_ok\": 0, \"fqdn_redirects\": 0, \"ticket_cache_hits\": 0, "
        "\"ticket_cache_misses\": 0, \"transfers_redeemed\": 0, \"session_logouts\": 0, "
        "\"sessions_too_large\": 0, \"health_ok\": 0, \"health_unavailable\": 0, "
        "\"channel_bound_logins\": 0, \"channel_unbound_logins\": 0, "
        "\"failures_no-token\": 0, \"failures_malformed-token\": 0, ";
    kd_status *m = kd_status_make(kd_test_pool);

    ck_assert_str_eq(kd_status_json(m, kd_test_pool), apr_pstrcat(kd_test_pool,
        "{\n  \"version\": null,\n  \"libraries\": {\"krb5\": null, \"openssl\": null, "
        "\"httpd\": null, \"mpm\": null},\n  \"vhosts\": [\n  ],\n  \"counters\": {",
        counters_json(m), "},\n  \"recent_failures\": [],\n  \"delegation_targets\": [],\n"
        "  \"you\": {\"host\": null, \"scheme\": null, \"token\": null, \"user\": null, "
        "\"method\": null}\n}\n", NULL));
    ck_assert_str_eq(kd_status_prometheus(m, kd_test_pool), apr_pstrcat(kd_test_pool,
        "# HELP kdeleg_info mod_kdeleg and library versions (empty below ServerTokens Full).\n"
        "# TYPE kdeleg_info gauge\nkdeleg_info{version=\"\",krb5=\"\"} 1\n", counters_prom(m),
        "# HELP kdeleg_missing_spns Configured SPNs without a key in the keytab.\n"
        "# TYPE kdeleg_missing_spns gauge\n"
        "# HELP kdeleg_delegations_total Back-end tickets by target and result.\n"
        "# TYPE kdeleg_delegations_total counter\n", NULL));
    /* the helper above writes what the page has always had */
    ck_assert_int_eq(strncmp(counters_json(m), prefix, strlen(prefix)), 0);
}
END_TEST

static kd_status_spn *add_spn(kd_status_vhost *v, const char *spn, int kvno, int host_alias,
                              const char *owner, const char *tgt_as)
{
    kd_status_spn *c = apr_array_push(v->spns);

    c->spn = spn;
    c->kvno = kvno;
    c->host_alias = host_alias;
    c->key_owner = owner;
    c->tgt_as = tgt_as;
    return c;
}

/* node1 with a key for one of its two SPNs, two delegation targets (one
 * tried), two failures, and a caller who sent a Kerberos token. */
static kd_status *small_model(void)
{
    kd_status *m = kd_status_make(kd_test_pool);
    kd_status_vhost *v = kd_status_add_vhost(m, "node1.example.test");
    apr_array_header_t *targets = apr_array_make(kd_test_pool, 2, sizeof(const char *));
    kd_keytab_entry *e;

    m->version = "0.1.0";
    m->krb5 = "1.20.1";
    m->openssl = "OpenSSL 3.0.15 3 Sep 2024";
    m->httpd = "Apache/2.4.62 (Debian)";
    m->mpm = "event";
    v->main_server = 1;
    kd_status_add_name(v->names, "node1.example.test");
    kd_status_add_name(v->names, "NODE1.example.test"); /* the same name */
    kd_status_add_name(v->names, "");
    kd_status_add_name(v->names, NULL);
    kd_status_add_name(v->names, "vip.example.test");
    v->keytab = "/etc/node1.keytab";
    v->entries = apr_array_make(kd_test_pool, 1, sizeof(kd_keytab_entry));
    e = apr_array_push(v->entries);
    e->principal = "HTTP/node1.example.test@EXAMPLE.TEST";
    e->kvno = 3;
    e->enctype = "aes256-cts-hmac-sha1-96";
    add_spn(v, "HTTP/node1.example.test", 3, 0, NULL, "HTTP/node1.example.test@EXAMPLE.TEST");
    add_spn(v, "HTTP/vip.example.test", -1, 0, NULL, "HTTP/vip.example.test@EXAMPLE.TEST");
    APR_ARRAY_PUSH(targets, const char *) = "HTTP/backend.example.test";
    APR_ARRAY_PUSH(targets, const char *) = "HTTP/other.example.test";
    v->targets = targets;
    v->fqdn_redirect = 1;
    m->counters[KD_STAT_AUTH_OK] = 6;
    m->counters[KD_STAT_AUTH_FAILED] = 2;
    m->counters[KD_STAT_S4U2PROXY_OK] = 2;
    m->failures[KD_CAUSE_WRONG_SPN] = 1;
    m->failures[KD_CAUSE_NTLM_OFFERED] = 1;
    m->n_recent = 2;
    m->recent[0].time = T0 + 100;
    m->recent[0].cause = KD_CAUSE_WRONG_SPN;
    strcpy(m->recent[0].vhost, "node1.example.test");
    strcpy(m->recent[0].client, "127.0.0.1");
    strcpy(m->recent[0].spn, "HTTP/other.example.test@EXAMPLE.TEST");
    m->recent[1].time = T0;
    m->recent[1].cause = KD_CAUSE_NTLM_OFFERED;
    strcpy(m->recent[1].vhost, "node1.example.test");
    strcpy(m->recent[1].client, "127.0.0.1");
    m->n_targets = 1;
    strcpy(m->targets[0].target, "HTTP/backend.example.test");
    m->targets[0].last_ok = T0 + 100;
    m->targets[0].ok = 2;
    m->you.host = "node1.example.test:8080";
    m->you.scheme = "Negotiate";
    m->you.token = "kerberos";
    return m;
}

static const char *failure_json(kd_cause cause)
{
    const kd_cause_info *info = kd_cause_get(cause);

    return apr_pstrcat(kd_test_pool, "\"cause\": ", J(info->name), ", \"hint\": ",
                       J(info->summary), ", \"fix_ad\": ", J(info->ad_fix), ", \"fix_mit\": ",
                       J(info->mit_fix), "}", NULL);
}

START_TEST(small_model_json)
{
    kd_status *m = small_model();

    ck_assert_str_eq(kd_status_json(m, kd_test_pool), apr_pstrcat(kd_test_pool,
        "{\n  \"version\": \"0.1.0\",\n  \"libraries\": {\"krb5\": \"1.20.1\", "
        "\"openssl\": \"OpenSSL 3.0.15 3 Sep 2024\", \"httpd\": \"Apache/2.4.62 (Debian)\", "
        "\"mpm\": \"event\"},\n  \"vhosts\": [\n"
        "    {\"name\": \"node1.example.test\", \"names\": [\"node1.example.test\", "
        "\"vip.example.test\"],\n"
        "     \"keytab\": \"/etc/node1.keytab\", \"keytab_error\": null,\n"
        "     \"spns\": [\"HTTP/node1.example.test\", \"HTTP/vip.example.test\"],\n"
        "     \"missing_spns\": [\"HTTP/vip.example.test\"],\n"
        "     \"identities\": [\n"
        "       {\"spn\": \"HTTP/node1.example.test\", \"key_owner\": null, "
        "\"host_mapping\": false, \"tgt_as\": \"HTTP/node1.example.test@EXAMPLE.TEST\"},\n"
        "       {\"spn\": \"HTTP/vip.example.test\", \"key_owner\": null, "
        "\"host_mapping\": false, \"tgt_as\": \"HTTP/vip.example.test@EXAMPLE.TEST\"}],\n"
        "     \"keytab_entries\": [\n"
        "       {\"principal\": \"HTTP/node1.example.test@EXAMPLE.TEST\", \"kvno\": 3, "
        "\"enctype\": \"aes256-cts-hmac-sha1-96\"}],\n"
        "     \"delegation_targets\": [\n"
        "       {\"target\": \"HTTP/backend.example.test\", \"last_ok\": "
        "\"2026-11-18T11:08:20Z\", \"last_failure\": null, \"last_cause\": null, \"ok\": 2, "
        "\"failed\": 0},\n"
        "       {\"target\": \"HTTP/other.example.test\", \"last_ok\": null, "
        "\"last_failure\": null, \"last_cause\": null, \"ok\": 0, \"failed\": 0}],\n"
        "     \"virtual_names\": false, \"fqdn_redirect\": true, \"sessions\": false}\n"
        "  ],\n  \"counters\": {", counters_json(m), "},\n  \"recent_failures\": [\n"
        "    {\"time\": \"2026-11-18T11:08:20Z\", \"vhost\": \"node1.example.test\", "
        "\"client\": \"127.0.0.1\", \"spn\": \"HTTP/other.example.test@EXAMPLE.TEST\", ",
        failure_json(KD_CAUSE_WRONG_SPN), ",\n"
        "    {\"time\": \"2026-11-18T11:06:40Z\", \"vhost\": \"node1.example.test\", "
        "\"client\": \"127.0.0.1\", \"spn\": null, ", failure_json(KD_CAUSE_NTLM_OFFERED),
        "],\n  \"delegation_targets\": [\n"
        "    {\"target\": \"HTTP/backend.example.test\", \"last_ok\": \"2026-11-18T11:08:20Z\", "
        "\"last_failure\": null, \"last_cause\": null, \"ok\": 2, \"failed\": 0}],\n"
        "  \"you\": {\"host\": \"node1.example.test:8080\", \"scheme\": \"Negotiate\", "
        "\"token\": \"kerberos\", \"user\": null, \"method\": null}\n}\n", NULL));
    ck_assert_ptr_nonnull(strstr(counters_json(m), "\"auth_ok\": 6, \"auth_failed\": 2, "));
    ck_assert_ptr_nonnull(strstr(counters_json(m), "\"failures_wrong-spn\": 1"));
}
END_TEST

START_TEST(small_model_prometheus)
{
    kd_status *m = small_model();

    ck_assert_str_eq(kd_status_prometheus(m, kd_test_pool), apr_pstrcat(kd_test_pool,
        "# HELP kdeleg_info mod_kdeleg and library versions (empty below ServerTokens Full).\n"
        "# TYPE kdeleg_info gauge\nkdeleg_info{version=\"0.1.0\",krb5=\"1.20.1\"} 1\n",
        counters_prom(m),
        "# HELP kdeleg_missing_spns Configured SPNs without a key in the keytab.\n"
        "# TYPE kdeleg_missing_spns gauge\n"
        "kdeleg_missing_spns{vhost=\"node1.example.test\"} 1\n"
        "# HELP kdeleg_delegations_total Back-end tickets by target and result.\n"
        "# TYPE kdeleg_delegations_total counter\n"
        "kdeleg_delegations_total{target=\"HTTP/backend.example.test\",result=\"ok\"} 2\n"
        "kdeleg_delegations_total{target=\"HTTP/backend.example.test\",result=\"failed\"} 0\n",
        NULL));
    ck_assert_ptr_nonnull(strstr(counters_prom(m), "kdeleg_events_total{event=\"auth_ok\"} 6\n"
                                 "kdeleg_events_total{event=\"auth_failed\"} 2\n"));
    /* an unreadable keytab serves none of the SPNs */
    APR_ARRAY_IDX(m->vhosts, 0, kd_status_vhost).keytab_error = "No such file or directory";
    ck_assert_ptr_nonnull(strstr(kd_status_prometheus(m, kd_test_pool),
                                 "kdeleg_missing_spns{vhost=\"node1.example.test\"} 2\n"));
}
END_TEST

/* ServerTokens below Full: the glue leaves the versions NULL. */
START_TEST(versions_hidden)
{
    kd_status *m = small_model();
    const char *json, *prom;

    m->version = m->krb5 = m->openssl = NULL;
    m->httpd = "Apache";
    json = kd_status_json(m, kd_test_pool);
    prom = kd_status_prometheus(m, kd_test_pool);
    ck_assert_ptr_nonnull(strstr(json, "{\n  \"version\": null,\n  \"libraries\": {\"krb5\": "
                                 "null, \"openssl\": null, \"httpd\": \"Apache\", \"mpm\": "
                                 "\"event\"},\n"));
    ck_assert_ptr_nonnull(strstr(prom, "\nkdeleg_info{version=\"\",krb5=\"\"} 1\n"));
    ck_assert_ptr_null(strstr(json, "0.1.0"));
    ck_assert_ptr_null(strstr(json, "1.20.1"));
    ck_assert_ptr_null(strstr(json, "OpenSSL"));
    ck_assert_ptr_null(strstr(prom, "0.1.0"));
}
END_TEST

/* Whatever a client, keytab or configuration puts in a string: JSON stays
 * one string (safe inside HTML too), Prometheus one label on one line. */
START_TEST(hostile_strings)
{
    static const char evil[] = "x\"}, \"pwned\": true, \"y\": \"\n</script><script>alert(1)"
                               "</script>\\";
    kd_status *m = kd_status_make(kd_test_pool);
    kd_status_vhost *v = kd_status_add_vhost(m, evil);
    const char *json, *prom, *line;

    kd_status_add_name(v->names, evil);
    add_spn(v, evil, -1, 1, evil, evil);
    m->you.host = evil;
    m->you.scheme = "\"><script>alert(1)</script>";
    m->you.user = "alice\r\n@EXAMPLE.TEST";
    m->n_recent = 1;
    m->recent[0].time = T0;
    m->recent[0].cause = KD_CAUSE_WRONG_SPN;
    strcpy(m->recent[0].vhost, "\"</script>");
    strcpy(m->recent[0].client, "127.0.0.1\n");
    m->n_targets = 1;
    strcpy(m->targets[0].target, "HTTP/x\"} 1\nfake_metric 2");
    json = kd_status_json(m, kd_test_pool);
    ck_assert_ptr_null(strstr(json, "<"));
    ck_assert_ptr_null(strstr(json, ">"));
    ck_assert_ptr_null(strstr(json, "\"pwned\": true"));
    ck_assert_ptr_null(strstr(json, "\r"));
    ck_assert_ptr_nonnull(strstr(json, "\"you\": {\"host\": \"x\\\"}, \\\"pwned\\\": true, "
                                 "\\\"y\\\": \\\"\\u000a\\u003c/script\\u003e\\u003cscript"
                                 "\\u003ealert(1)\\u003c/script\\u003e\\\\\", \"scheme\": "
                                 "\"\\\"\\u003e\\u003cscript\\u003ealert(1)\\u003c/script"
                                 "\\u003e\", \"token\": null, \"user\": \"alice\\u000d\\u000a"
                                 "@EXAMPLE.TEST\", \"method\": null}\n}\n"));
    ck_assert_ptr_nonnull(strstr(json, "\"vhost\": \"\\\"\\u003c/script\\u003e\", "
                                 "\"client\": \"127.0.0.1\\u000a\""));
    /* every newline of the JSON is the emitter's own */
    for (line = json; (line = strchr(line, '\n')) != NULL; line++)
        ck_assert(line[1] == '\0' || line[1] == ' ' || line[1] == '}');
    prom = kd_status_prometheus(m, kd_test_pool);
    ck_assert_ptr_null(strstr(prom, "\nfake_metric"));
    ck_assert_ptr_nonnull(strstr(prom, "kdeleg_delegations_total{target=\"HTTP/x\\\"} 1\\n"
                                 "fake_metric 2\",result=\"ok\"} 0\n"));
    ck_assert_ptr_nonnull(strstr(prom, "kdeleg_missing_spns{vhost=\"x\\\"}, \\\"pwned\\\": "
                                 "true, \\\"y\\\": \\\"\\n</script><script>alert(1)</script>"
                                 "\\\\\"} 1\n"));
}
END_TEST

START_TEST(selftest_results)
{
    kd_status *m = kd_status_make(kd_test_pool);
    kd_status_selftest *res;
    kd_selftest_step *st;
    const kd_cause_info *info = kd_cause_get(KD_CAUSE_SPN_UNKNOWN);

    m->selftest = apr_array_make(kd_test_pool, 1, sizeof(kd_status_selftest));
    ck_assert_ptr_nonnull(strstr(kd_status_json(m, kd_test_pool),
                                 "\"delegation_targets\": [],\n  \"selftest\": [],\n  \"you\""));
    res = apr_array_push(m->selftest);
    res->vhost = "node1.example.test";
    res->steps = apr_array_make(kd_test_pool, 2, sizeof(kd_selftest_step));
    st = apr_array_push(res->steps);
    memset(st, 0, sizeof(*st));
    st->step = "credentials";
    st->subject = "HTTP/node1.example.test";
    st->detail = "TGT as HTTP/node1.example.test@EXAMPLE.TEST from the keytab, forwardable";
    st = apr_array_push(res->steps);
    memset(st, 0, sizeof(*st));
    st->step = "spn";
    st->subject = "HTTP/missing.example.test";
    st->cause = KD_CAUSE_SPN_UNKNOWN;
    st->detail = "the KDC does not know it";
    ck_assert_ptr_nonnull(strstr(kd_status_json(m, kd_test_pool), apr_pstrcat(kd_test_pool,
        "\"delegation_targets\": [],\n  \"selftest\": [\n"
        "    {\"vhost\": \"node1.example.test\", \"steps\": [\n"
        "      {\"step\": \"credentials\", \"subject\": \"HTTP/node1.example.test\", "
        "\"ok\": true, \"skipped\": false, \"cause\": null, \"detail\": \"TGT as "
        "HTTP/node1.example.test@EXAMPLE.TEST from the keytab, forwardable\", \"hint\": null, "
        "\"fix_ad\": null, \"fix_mit\": null},\n"
        "      {\"step\": \"spn\", \"subject\": \"HTTP/missing.example.test\", \"ok\": false, "
        "\"skipped\": false, \"cause\": \"spn-unknown\", \"detail\": \"the KDC does not know "
        "it\", \"hint\": ", J(info->summary), ", \"fix_ad\": ", J(info->ad_fix),
        ", \"fix_mit\": ", J(info->mit_fix), "}]}],\n  \"you\": {", NULL)));
}
END_TEST

START_TEST(statistics_copied)
{
    void *mem = apr_pcalloc(kd_test_pool, kd_stats_size());
    kd_stats *st = kd_stats_init(mem, kd_stats_size());
    kd_status *m = kd_status_make(kd_test_pool);
    kd_status_vhost *v = kd_status_add_vhost(m, "node1.example.test");
    kd_status_vhost *w = kd_status_add_vhost(m, "other.example.test");
    const kd_target_record *t;
    int i;

    kd_stats_count(st, KD_STAT_AUTH_OK);
    kd_stats_count(st, KD_STAT_AUTH_OK);
    kd_stats_count(st, KD_STAT_SESSION_LOGOUTS);
    kd_stats_failure(st, KD_CAUSE_REPLAY, T0, "node1.example.test", "10.0.0.1", NULL);
    kd_stats_failure(st, KD_CAUSE_CLOCK_SKEW, T0 + 1, "node1.example.test", "10.0.0.2", NULL);
    kd_stats_target(st, "HTTP/backend.example.test", KD_CAUSE_NONE, T0);
    kd_stats_target(st, "HTTP/other.example.test", KD_CAUSE_DELEGATION_NOT_ALLOWED, T0 + 2);
    kd_status_take_stats(m, st);
    ck_assert_uint_eq(m->counters[KD_STAT_AUTH_OK], 2);
    ck_assert_uint_eq(m->counters[KD_STAT_SESSION_LOGOUTS], 1);
    ck_assert_uint_eq(m->failures[KD_CAUSE_REPLAY], 1);
    ck_assert_int_eq(m->n_recent, 2);
    ck_assert_int_eq(m->recent[0].cause, KD_CAUSE_CLOCK_SKEW); /* newest first */
    ck_assert_int_eq(kd_status_vhost_failures(m, v), 2);
    ck_assert_int_eq(kd_status_vhost_failures(m, w), 0);
    ck_assert_int_eq(m->n_targets, 2);
    t = kd_status_target(m, "HTTP/other.example.test");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->last_cause, KD_CAUSE_DELEGATION_NOT_ALLOWED);
    ck_assert_uint_eq(t->failed, 1);
    ck_assert_ptr_null(kd_status_target(m, "HTTP/never.example.test"));
    /* no statistics (no shared memory): all zero */
    kd_status_take_stats(m, NULL);
    for (i = 0; i < KD_STAT__COUNT; i++)
        ck_assert_uint_eq(m->counters[i], 0);
    ck_assert_int_eq(m->n_recent, 0);
    ck_assert_int_eq(m->n_targets, 0);
}
END_TEST

START_TEST(model_helpers)
{
    kd_status *m = kd_status_make(kd_test_pool);
    kd_status_vhost *v = kd_status_add_vhost(m, "node1.example.test");

    ck_assert_int_eq(m->vhosts->nelts, 1);
    ck_assert_int_eq(kd_status_missing(v), 0);
    add_spn(v, "HTTP/a", -1, 0, NULL, "HTTP/a");
    add_spn(v, "HTTP/b", 2, 1, "WEB$@EXAMPLE.TEST", "WEB$@EXAMPLE.TEST");
    add_spn(v, "HTTP/c", -1, 0, NULL, "HTTP/c");
    ck_assert_int_eq(kd_status_missing(v), 2);
    kd_status_add_name(v->names, "a.example.test");
    kd_status_add_name(v->names, "A.EXAMPLE.TEST");
    kd_status_add_name(v->names, "b.example.test");
    ck_assert_int_eq(v->names->nelts, 2);
    ck_assert_ptr_null(kd_status_time(kd_test_pool, 0));
    ck_assert_ptr_null(kd_status_time(kd_test_pool, -5));
    ck_assert_str_eq(kd_status_time(kd_test_pool, T0), "2026-11-18T11:06:40Z");
    ck_assert_str_eq(kd_status_time(kd_test_pool, 1), "1970-01-01T00:00:01Z");
}
END_TEST

/* mod_status's ?auto: one line per counter, names documented in
 * docs/status-page.md. */
START_TEST(server_status_auto)
{
    kd_status *m = kd_status_make(kd_test_pool);
    int i, j;

    m->counters[KD_STAT_AUTH_OK] = 1;
    m->counters[KD_STAT_TICKET_CACHE_MISSES] = 42;
    ck_assert_str_eq(kd_status_auto(m, kd_test_pool),
                     "KdelegAuthenticated: 1\n"
                     "KdelegAuthFailed: 0\n"
                     "KdelegSessionAuthenticated: 0\n"
                     "KdelegS4U2Self: 0\n"
                     "KdelegS4U2Proxy: 0\n"
                     "KdelegFQDNRedirects: 0\n"
                     "KdelegTicketCacheHits: 0\n"
                     "KdelegTicketCacheMisses: 42\n"
                     "KdelegTransfersRedeemed: 0\n"
                     "KdelegSessionLogouts: 0\n"
                     "KdelegSessionsTooLarge: 0\n"
                     "KdelegHealthOk: 0\n"
                     "KdelegHealthUnavailable: 0\n"
                     "KdelegChannelBoundLogins: 0\n"
                     "KdelegChannelUnboundLogins: 0\n");
    for (i = 0; i < KD_STAT__COUNT; i++) {
        const char *name = kd_status_auto_name((kd_stat)i);
        ck_assert_int_eq(strncmp(name, "Kdeleg", 6), 0);
        ck_assert_uint_eq(strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789"), strlen(name));
        for (j = 0; j < i; j++)
            ck_assert_str_ne(name, kd_status_auto_name((kd_stat)j));
    }
    ck_assert_str_eq(kd_status_auto_name(KD_STAT__COUNT), "KdelegUnknown");
}
END_TEST

Suite *kd_status_suite(void)
{
    Suite *s = suite_create("kd_status");
    TCase *tc = tcase_create("status");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, empty_model);
    tcase_add_test(tc, small_model_json);
    tcase_add_test(tc, small_model_prometheus);
    tcase_add_test(tc, versions_hidden);
    tcase_add_test(tc, hostile_strings);
    tcase_add_test(tc, selftest_results);
    tcase_add_test(tc, statistics_copied);
    tcase_add_test(tc, model_helpers);
    tcase_add_test(tc, server_status_auto);
    suite_add_tcase(s, tc);
    return s;
}
