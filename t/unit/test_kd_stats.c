#include "kd_unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kd_stats.h"

static kd_stats *fresh(void)
{
    void *mem = apr_pcalloc(kd_test_pool, kd_stats_size());
    return kd_stats_init(mem, kd_stats_size());
}

START_TEST(counts_and_names)
{
    kd_stats *st = fresh();

    ck_assert_ptr_nonnull(st);
    ck_assert_ptr_null(kd_stats_init(apr_pcalloc(kd_test_pool, 8), 8)); /* too small */
    kd_stats_count(st, KD_STAT_AUTH_OK);
    kd_stats_count(st, KD_STAT_AUTH_OK);
    kd_stats_count(st, KD_STAT__COUNT); /* out of range: ignored */
    kd_stats_count(NULL, KD_STAT_AUTH_OK);
    ck_assert_uint_eq(kd_stats_get(st, KD_STAT_AUTH_OK), 2);
    ck_assert_uint_eq(kd_stats_get(st, KD_STAT_SESSION_OK), 0);
    ck_assert_str_eq(kd_stat_name(KD_STAT_TICKET_CACHE_MISSES), "ticket_cache_misses");
    ck_assert_str_eq(kd_stat_name(KD_STAT_TRANSFERS_REDEEMED), "transfers_redeemed");
    ck_assert_str_eq(kd_stat_name(KD_STAT_SESSION_LOGOUTS), "session_logouts");
    ck_assert_str_eq(kd_stat_name(KD_STAT_FQDN_REDIRECTS), "fqdn_redirects");
    /* another process sees the same block */
    ck_assert_ptr_eq(kd_stats_attach(st), st);
    ck_assert_ptr_null(kd_stats_attach(apr_pcalloc(kd_test_pool, kd_stats_size())));
}
END_TEST

START_TEST(recent_failures_newest_first_and_bounded)
{
    kd_stats *st = fresh();
    kd_failure_record out[KD_STATS_RECENT];
    char long_name[400];
    int i, n;

    ck_assert_int_eq(kd_stats_recent(st, out, KD_STATS_RECENT), 0);
    for (i = 0; i < KD_STATS_RECENT + 5; i++)
        kd_stats_failure(st, i % 2 ? KD_CAUSE_WRONG_SPN : KD_CAUSE_NTLM_OFFERED, 1000 + i,
                         "node1.example.test", "127.0.0.1", "HTTP/x@EXAMPLE.TEST");
    n = kd_stats_recent(st, out, KD_STATS_RECENT);
    ck_assert_int_eq(n, KD_STATS_RECENT);
    ck_assert(out[0].time == 1000 + KD_STATS_RECENT + 4); /* newest first */
    ck_assert(out[n - 1].time == 1000 + 5);               /* the oldest kept */
    ck_assert_int_eq(out[0].cause, KD_CAUSE_NTLM_OFFERED);
    ck_assert_uint_eq(kd_stats_failures(st, KD_CAUSE_WRONG_SPN), (KD_STATS_RECENT + 5) / 2);
    /* long names are cut, always terminated */
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    kd_stats_failure(st, KD_CAUSE_REPLAY, 5000, long_name, NULL, long_name);
    ck_assert_int_eq(kd_stats_recent(st, out, 1), 1);
    ck_assert_uint_eq(strlen(out[0].vhost), KD_STATS_NAME - 2);
    ck_assert_str_eq(out[0].client, "");
    /* asking for fewer gives fewer */
    ck_assert_int_eq(kd_stats_recent(st, out, 3), 3);
    kd_stats_failure(st, KD_CAUSE__COUNT, 1, "x", "y", "z"); /* bad cause: ignored */
    ck_assert_int_eq(kd_stats_recent(st, out, 1), 1);
    ck_assert_int_eq(out[0].cause, KD_CAUSE_REPLAY);
}
END_TEST

START_TEST(targets_keep_last_results)
{
    kd_stats *st = fresh();
    kd_target_record out[KD_STATS_TARGETS];
    char name[32];
    int i, n;

    kd_stats_target(st, "HTTP/backend.example.test", KD_CAUSE_NONE, 100);
    kd_stats_target(st, "HTTP/backend.example.test", KD_CAUSE_DELEGATION_NOT_ALLOWED, 200);
    kd_stats_target(st, "postgres/db.example.test", KD_CAUSE_NONE, 300);
    n = kd_stats_targets(st, out, KD_STATS_TARGETS);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(out[0].target, "HTTP/backend.example.test");
    ck_assert(out[0].last_ok == 100 && out[0].last_failure == 200);
    ck_assert_int_eq(out[0].last_cause, KD_CAUSE_DELEGATION_NOT_ALLOWED);
    ck_assert_uint_eq(out[0].ok, 1);
    ck_assert_uint_eq(out[0].failed, 1);
    ck_assert(out[1].last_failure == 0);
    /* a full table drops new targets, keeps the old ones */
    for (i = 0; i < KD_STATS_TARGETS + 3; i++) {
        snprintf(name, sizeof(name), "HTTP/t%d", i);
        kd_stats_target(st, name, KD_CAUSE_NONE, 400);
    }
    ck_assert_int_eq(kd_stats_targets(st, out, KD_STATS_TARGETS), KD_STATS_TARGETS);
    ck_assert_str_eq(out[0].target, "HTTP/backend.example.test");
}
END_TEST

Suite *kd_stats_suite(void)
{
    Suite *s = suite_create("kd_stats");
    TCase *tc = tcase_create("stats");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, counts_and_names);
    tcase_add_test(tc, recent_failures_newest_first_and_bounded);
    tcase_add_test(tc, targets_keep_last_results);
    suite_add_tcase(s, tc);
    return s;
}
