#include "kd_unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kd_password.h"

/* e-data as Samba's KDC sends it with KDC_ERR_CLIENT_REVOKED for a locked
 * account: one PA-DATA, type 3 (PA-PW-SALT), value = NTSTATUS (little
 * endian), 0, 1 (KERB-EXT-ERROR). */
static const unsigned char locked_padata[] = {
    0x30, 0x15,
    0xa1, 0x03, 0x02, 0x01, 0x03,
    0xa2, 0x0e, 0x04, 0x0c, 0x34, 0x02, 0x00, 0xc0, 0, 0, 0, 0, 1, 0, 0, 0};

START_TEST(ntstatus_from_one_padata)
{
    ck_assert_uint_eq(kd_password_ntstatus(locked_padata, sizeof(locked_padata)),
                      KD_NT_ACCOUNT_LOCKED_OUT);
}
END_TEST

/* METHOD-DATA: the status element after another PA-DATA. */
START_TEST(ntstatus_from_method_data)
{
    static const unsigned char md[] = {
        0x30, 0x22,
        0x30, 0x0b, 0xa1, 0x03, 0x02, 0x01, 0x13, 0xa2, 0x04, 0x04, 0x02, 0x30, 0x00,
        0x30, 0x13, 0xa1, 0x03, 0x02, 0x01, 0x03, 0xa2, 0x0c, 0x04, 0x0a,
        0x24, 0x02, 0x00, 0xc0, 0, 0, 0, 0, 1, 0};

    ck_assert_uint_eq(kd_password_ntstatus(md, sizeof(md)), KD_NT_PASSWORD_MUST_CHANGE);
}
END_TEST

/* TYPED-DATA (MS-KILE KERB-ERROR-DATA inside): [0] type, [1] value. */
START_TEST(ntstatus_from_typed_data)
{
    static const unsigned char td[] = {
        0x30, 0x13, 0x30, 0x11,
        0xa0, 0x03, 0x02, 0x01, 0x03,
        0xa1, 0x0a, 0x04, 0x08, 0x72, 0x00, 0x00, 0xc0, 0, 0, 0, 0};

    ck_assert_uint_eq(kd_password_ntstatus(td, sizeof(td)), KD_NT_ACCOUNT_DISABLED);
}
END_TEST

/* Malformed or irrelevant e-data gives 0, never a read past the end. */
START_TEST(ntstatus_bounded)
{
    unsigned char buf[sizeof(locked_padata)];
    size_t n;

    ck_assert_uint_eq(kd_password_ntstatus(NULL, 0), 0);
    for (n = 0; n < sizeof(locked_padata); n++) /* every truncation */
        ck_assert_uint_eq(kd_password_ntstatus(locked_padata, n), 0);
    memcpy(buf, locked_padata, sizeof(buf));
    buf[6] = 0x13; /* type 19, not 3 */
    ck_assert_uint_eq(kd_password_ntstatus(buf, sizeof(buf)), 0);
    memcpy(buf, locked_padata, sizeof(buf));
    buf[9] = 0x05; /* value not an OCTET STRING */
    ck_assert_uint_eq(kd_password_ntstatus(buf, sizeof(buf)), 0);
    memcpy(buf, locked_padata, sizeof(buf));
    buf[1] = 0x7f; /* length past the end */
    ck_assert_uint_eq(kd_password_ntstatus(buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(causes_from_ntstatus_first)
{
    /* AD: CLIENT_REVOKED says little, the status says which */
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_CLIENT_REVOKED,
                                                  KD_NT_ACCOUNT_LOCKED_OUT), KD_CAUSE_ACCOUNT_LOCKED);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_CLIENT_REVOKED,
                                                  KD_NT_ACCOUNT_DISABLED), KD_CAUSE_USER_DISABLED);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_CLIENT_REVOKED,
                                                  KD_NT_ACCOUNT_EXPIRED), KD_CAUSE_ACCOUNT_EXPIRED);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_KEY_EXP, KD_NT_PASSWORD_EXPIRED),
                     KD_CAUSE_PASSWORD_EXPIRED);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_KEY_EXP, KD_NT_PASSWORD_MUST_CHANGE),
                     KD_CAUSE_PASSWORD_MUST_CHANGE);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_PREAUTH_FAILED,
                                                  KD_NT_WRONG_PASSWORD), KD_CAUSE_WRONG_PASSWORD);
    /* MIT: the code alone */
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_PREAUTH_FAILED, 0),
                     KD_CAUSE_WRONG_PASSWORD);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KRB_AP_ERR_BAD_INTEGRITY, 0),
                     KD_CAUSE_WRONG_PASSWORD);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN, 0),
                     KD_CAUSE_WRONG_PASSWORD);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_KEY_EXP, 0),
                     KD_CAUSE_PASSWORD_EXPIRED);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_NAME_EXP, 0),
                     KD_CAUSE_ACCOUNT_EXPIRED);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5KDC_ERR_CLIENT_REVOKED, 0),
                     KD_CAUSE_USER_DISABLED);
    ck_assert_int_eq(kd_cause_from_password_error(KRB5_KDC_UNREACH, 0), KD_CAUSE_KDC_UNREACHABLE);
}
END_TEST

START_TEST(cache_keys_bind_user_and_password)
{
    kd_password_cache *c = kd_password_cache_create(kd_test_pool, 64);
    kd_password_cache *other = kd_password_cache_create(kd_test_pool, 64);
    unsigned char a[32], b[32], d[32], e[32];

    ck_assert_ptr_nonnull(c);
    kd_password_cache_key(c, "alice", "pw", a);
    kd_password_cache_key(c, "alice", "pw", b);
    ck_assert(memcmp(a, b, 32) == 0);
    kd_password_cache_key(c, "alice", "pw2", d);
    ck_assert(memcmp(a, d, 32) != 0);
    /* the separator: ("ab", "c") is not ("a", "bc") */
    kd_password_cache_key(c, "ab", "c", d);
    kd_password_cache_key(c, "a", "bc", e);
    ck_assert(memcmp(d, e, 32) != 0);
    /* another process's secret gives other keys */
    kd_password_cache_key(other, "alice", "pw", e);
    ck_assert(memcmp(a, e, 32) != 0);
}
END_TEST

START_TEST(cache_put_get_expire_drop)
{
    kd_password_cache *c = kd_password_cache_create(kd_test_pool, 8);
    unsigned char k[32], k2[32];
    void *v;
    size_t len;
    apr_time_t now = apr_time_from_sec(1000);

    kd_password_cache_key(c, "alice", "pw", k);
    kd_password_cache_key(c, "bob", "pw", k2);
    ck_assert_int_eq(kd_password_cache_get(c, kd_test_pool, k, now, &v, &len), 0);
    kd_password_cache_put(c, k, "groups", 6, now, apr_time_from_sec(60));
    ck_assert_int_eq(kd_password_cache_get(c, kd_test_pool, k, now + apr_time_from_sec(59), &v,
                                           &len), 1);
    ck_assert_uint_eq(len, 6);
    ck_assert(memcmp(v, "groups", 6) == 0);
    ck_assert_int_eq(kd_password_cache_get(c, kd_test_pool, k2, now, &v, &len), 0);
    ck_assert_int_eq(kd_password_cache_get(c, kd_test_pool, k, now + apr_time_from_sec(60), &v,
                                           &len), 0);
    kd_password_cache_put(c, k, NULL, 0, now, apr_time_from_sec(60));
    ck_assert_int_eq(kd_password_cache_get(c, kd_test_pool, k, now, &v, &len), 1);
    ck_assert_uint_eq(len, 0);
    kd_password_cache_drop(c, k);
    ck_assert_int_eq(kd_password_cache_get(c, kd_test_pool, k, now, &v, &len), 0);
    /* lifetime 0: the cache is off */
    kd_password_cache_put(c, k, "x", 1, now, 0);
    ck_assert_int_eq(kd_password_cache_get(c, kd_test_pool, k, now, &v, &len), 0);
}
END_TEST

/* A full cache pushes entries out, never grows. */
START_TEST(cache_is_bounded)
{
    kd_password_cache *c = kd_password_cache_create(kd_test_pool, 4);
    unsigned char k[32];
    char user[16];
    void *v;
    size_t len;
    int i, found = 0;
    apr_time_t now = apr_time_from_sec(1000);

    for (i = 0; i < 100; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        kd_password_cache_key(c, user, "pw", k);
        kd_password_cache_put(c, k, "v", 1, now, apr_time_from_sec(60));
    }
    for (i = 0; i < 100; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        kd_password_cache_key(c, user, "pw", k);
        found += kd_password_cache_get(c, kd_test_pool, k, now, &v, &len);
    }
    ck_assert_int_le(found, 4);
    ck_assert_int_ge(found, 1);
}
END_TEST

/* A name that cannot be a principal fails before any KDC traffic. */
START_TEST(token_refuses_unusable_name)
{
    kd_user_name name = {"alice", 0, "DOMAIN\\alice: no such NetBIOS domain"};
    kd_password_request req = {&name, "pw", "HTTP/www.example.test"};
    unsigned char *tok;
    size_t len;
    uint32_t nt;
    kd_result res;

    kd_result_init(&res);
    ck_assert_int_eq(kd_password_token(kd_test_pool, &req, &tok, &len, &nt, &res),
                     KD_CAUSE_WRONG_PASSWORD);
    ck_assert_ptr_null(tok);
    ck_assert_uint_eq(nt, 0);
}
END_TEST

/* A KDC that refuses connections: kdc-unreachable, said as such (not as
 * a refused password), and the password is in no message. */
START_TEST(token_kdc_down_is_unreachable)
{
    char dir[] = "/tmp/kd-unit-pw-XXXXXX", path[64];
    const char *saved = getenv("KRB5_CONFIG");
    char *keep = saved ? strdup(saved) : NULL;
    kd_user_name name = {"alice@DOWN.TEST", 0, NULL};
    kd_password_request req = {&name, "Unit-secret-pw", "HTTP/www.down.test"};
    unsigned char *tok;
    size_t len;
    uint32_t nt;
    kd_result res;
    FILE *f;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/krb5.conf", dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    /* port 1 on loopback: nothing listens, TCP and UDP are refused at once */
    fputs("[libdefaults]\n default_realm = DOWN.TEST\n dns_lookup_kdc = false\n"
          " udp_preference_limit = 1\n"
          "[realms]\n DOWN.TEST = {\n  kdc = 127.0.0.1:1\n }\n", f);
    fclose(f);
    setenv("KRB5_CONFIG", path, 1);
    kd_result_init(&res);
    ck_assert_int_eq(kd_password_token(kd_test_pool, &req, &tok, &len, &nt, &res),
                     KD_CAUSE_KDC_UNREACHABLE);
    if (keep) {
        setenv("KRB5_CONFIG", keep, 1);
        free(keep);
    }
    else
        unsetenv("KRB5_CONFIG");
    unlink(path);
    rmdir(dir);
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(res.cause, KD_CAUSE_KDC_UNREACHABLE);
    ck_assert_ptr_nonnull(res.detail);
    ck_assert_ptr_nonnull(strstr(res.detail, "no KDC answered"));
    ck_assert_ptr_null(strstr(res.detail, "refused the password"));
    ck_assert_ptr_null(strstr(res.detail, "Unit-secret-pw"));
}
END_TEST

Suite *kd_password_suite(void)
{
    Suite *s = suite_create("kd_password");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);

    tcase_add_test(tc, ntstatus_from_one_padata);
    tcase_add_test(tc, ntstatus_from_method_data);
    tcase_add_test(tc, ntstatus_from_typed_data);
    tcase_add_test(tc, ntstatus_bounded);
    tcase_add_test(tc, causes_from_ntstatus_first);
    tcase_add_test(tc, cache_keys_bind_user_and_password);
    tcase_add_test(tc, cache_put_get_expire_drop);
    tcase_add_test(tc, cache_is_bounded);
    tcase_add_test(tc, token_refuses_unusable_name);
    tcase_add_test(tc, token_kdc_down_is_unreachable);
    suite_add_tcase(s, tc);
    return s;
}
