#include "kd_unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_general.h>
#include <apr_strings.h>

apr_pool_t *kd_test_pool;

void kd_test_setup(void)
{
    ck_assert_int_eq(apr_pool_create(&kd_test_pool, NULL), APR_SUCCESS);
}

void kd_test_teardown(void)
{
    apr_pool_destroy(kd_test_pool);
    kd_test_pool = NULL;
}

const char *kd_test_vector(const char *name)
{
    const char *srcdir = getenv("srcdir");
    char *path = apr_psprintf(kd_test_pool, "%s/t/unit/vectors/%s", srcdir ? srcdir : ".", name);
    FILE *f = fopen(path, "rb");
    char buf[70000];
    size_t n;

    ck_assert_msg(f != NULL, "cannot open test vector %s", path);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    return apr_pstrmemdup(kd_test_pool, buf, n);
}

const unsigned char *kd_test_file(const char *name, size_t *len)
{
    const char *srcdir = getenv("srcdir");
    char *path = apr_psprintf(kd_test_pool, "%s/%s", srcdir ? srcdir : ".", name);
    FILE *f = fopen(path, "rb");
    unsigned char *buf = apr_palloc(kd_test_pool, 1 << 20);

    ck_assert_msg(f != NULL, "cannot open %s", path);
    *len = fread(buf, 1, 1 << 20, f);
    ck_assert_msg(feof(f), "%s is larger than 1 MiB", path);
    fclose(f);
    return buf;
}

int main(void)
{
    SRunner *sr;
    int failed;

    apr_initialize();
    sr = srunner_create(kd_accept_suite());
    srunner_add_suite(sr, kd_apreq_suite());
    srunner_add_suite(sr, kd_base64_suite());
    srunner_add_suite(sr, kd_causes_suite());
    srunner_add_suite(sr, kd_chanbind_suite());
    srunner_add_suite(sr, kd_der_suite());
    srunner_add_suite(sr, kd_groups_suite());
    srunner_add_suite(sr, kd_gss_suite());
    srunner_add_suite(sr, kd_identity_suite());
    srunner_add_suite(sr, kd_log_suite());
    srunner_add_suite(sr, kd_pac_suite());
    srunner_add_suite(sr, kd_password_suite());
    srunner_add_suite(sr, kd_replay_suite());
    srunner_add_suite(sr, kd_store_suite());
    srunner_add_suite(sr, kd_s4u_suite());
    srunner_add_suite(sr, kd_result_suite());
    srunner_add_suite(sr, kd_revoke_suite());
    srunner_add_suite(sr, kd_credtab_suite());
    srunner_add_suite(sr, kd_seal_suite());
    srunner_add_suite(sr, kd_spn_suite());
    srunner_add_suite(sr, kd_ticket_cache_suite());
    srunner_add_suite(sr, kd_token_suite());
    srunner_add_suite(sr, kd_session_suite());
    srunner_add_suite(sr, kd_url_suite());
    srunner_add_suite(sr, kd_stats_suite());
    srunner_add_suite(sr, kd_status_suite());
    srunner_add_suite(sr, kd_escape_suite());
    srunner_add_suite(sr, kd_keytab_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    apr_terminate();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
