#include "kd_unit.h"

#include <string.h>
#include <apr_strings.h>
#include "kd_base64.h"
#include "kd_session.h"

/* Two keys as a key file holds them (openssl rand -base64 32). */
#define KEY_A "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8M="
#define KEY_B "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define NOW 1800000000LL

static const kd_session_keys *keys(const char *text)
{
    const char *err = NULL;
    const kd_session_keys *k = kd_session_keys_parse(kd_test_pool, text, strlen(text), &err);

    ck_assert_msg(k != NULL, "key file refused: %s", err ? err : "?");
    return k;
}

static kd_session alice(void)
{
    kd_session s = {KD_SESSION_KERBEROS, NOW, NOW + 600, "alice@EXAMPLE.TEST", "alice",
                    "HTTP/node1.example.test@EXAMPLE.TEST"};
    return s;
}

START_TEST(roundtrip_binds_every_field)
{
    const kd_session_keys *k = keys(KEY_A "\n");
    kd_session in = alice(), out;
    const char *cookie = kd_session_seal(kd_test_pool, k, "vip.example.test", &in);

    ck_assert_ptr_nonnull(cookie);
    ck_assert_int_eq(strspn(cookie, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789-_"), strlen(cookie)); /* cookie-safe */
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, "vip.example.test", cookie, NOW + 1, &out),
                     KD_SESSION_OK);
    ck_assert_str_eq(out.principal, in.principal);
    ck_assert_str_eq(out.user, "alice");
    ck_assert_str_eq(out.spn, in.spn);
    ck_assert_int_eq(out.method, KD_SESSION_KERBEROS);
    ck_assert(out.expires == NOW + 600 && out.issued == NOW);
    /* The site compares without case, like host names. */
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, "VIP.Example.TEST", cookie, NOW, &out),
                     KD_SESSION_OK);
    /* Nothing of the principal shows through. */
    ck_assert_ptr_null(strstr(cookie, "alice"));
}
END_TEST

START_TEST(other_site_expired_tampered_truncated)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = alice(), out;
    const char *cookie = kd_session_seal(kd_test_pool, k, "vip.example.test", &in);
    char *bad = apr_pstrdup(kd_test_pool, cookie);
    size_t n = strlen(cookie), i;

    ck_assert_int_eq(kd_session_open(kd_test_pool, k, "other.example.test", cookie, NOW, &out),
                     KD_SESSION_BAD_SEAL);
    ck_assert_ptr_null(out.principal);
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, "vip.example.test", cookie, NOW + 600,
                                     &out), KD_SESSION_EXPIRED);
    ck_assert_str_eq(out.principal, "alice@EXAMPLE.TEST"); /* named in the log */
    /* Issued more than the skew allowance in the future. */
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, "vip.example.test", cookie, NOW - 400,
                                     &out), KD_SESSION_EXPIRED);
    /* Every single-character change is detected. */
    for (i = 12; i < n; i++) {
        char keep = bad[i];
        bad[i] = keep == 'A' ? 'B' : 'A';
        ck_assert_int_ne(kd_session_open(kd_test_pool, k, "vip.example.test", bad, NOW, &out),
                         KD_SESSION_OK);
        bad[i] = keep;
    }
    for (i = 0; i < n; i += 7)
        ck_assert_int_ne(kd_session_open(kd_test_pool, k, "vip.example.test",
                                         apr_pstrmemdup(kd_test_pool, cookie, i), NOW, &out),
                         KD_SESSION_OK);
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, "vip.example.test", "", NOW, &out),
                     KD_SESSION_MALFORMED);
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, "vip.example.test", "a+b/c=", NOW, &out),
                     KD_SESSION_MALFORMED);
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, "vip.example.test", "!!!!", NOW, &out),
                     KD_SESSION_MALFORMED);
}
END_TEST

START_TEST(rotation_old_key_opens_new_key_seals)
{
    const kd_session_keys *old = keys(KEY_A "\n");
    const kd_session_keys *rotated = keys("# new key first\n" KEY_B "\n\n" KEY_A "\n");
    const kd_session_keys *only_new = keys(KEY_B);
    kd_session in = alice(), out;
    const char *by_old = kd_session_seal(kd_test_pool, old, "vip.example.test", &in);
    const char *by_rotated = kd_session_seal(kd_test_pool, rotated, "vip.example.test", &in);

    ck_assert_int_eq(kd_session_keys_count(rotated), 2);
    ck_assert_str_eq(kd_session_key_id(kd_test_pool, rotated, 1),
                     kd_session_key_id(kd_test_pool, old, 0));
    ck_assert_int_eq(kd_session_open(kd_test_pool, rotated, "vip.example.test", by_old, NOW,
                                     &out), KD_SESSION_OK);
    ck_assert_int_eq(kd_session_open(kd_test_pool, only_new, "vip.example.test", by_rotated, NOW,
                                     &out), KD_SESSION_OK);
    /* The old key alone does not know the new one. */
    ck_assert_int_eq(kd_session_open(kd_test_pool, old, "vip.example.test", by_rotated, NOW,
                                     &out), KD_SESSION_UNKNOWN_KEY);
}
END_TEST

START_TEST(key_file_errors_name_the_line)
{
    const char *err = NULL;

    ck_assert_ptr_null(kd_session_keys_parse(kd_test_pool, "", 0, &err));
    ck_assert_ptr_nonnull(strstr(err, "no key"));
    ck_assert_ptr_null(kd_session_keys_parse(kd_test_pool, KEY_A "\nc2hvcnQ=\n", 54, &err));
    ck_assert_ptr_nonnull(strstr(err, "line 2"));
    ck_assert_ptr_null(kd_session_keys_parse(kd_test_pool, "#x\n" KEY_A "\n" KEY_A, 92, &err));
    ck_assert_ptr_nonnull(strstr(err, "line 3 repeats"));
    ck_assert_ptr_null(kd_session_keys_parse(kd_test_pool, "not base64 at all!", 18, &err));
    ck_assert_ptr_nonnull(strstr(err, "line 1"));
    /* Windows line ends and surrounding blanks are fine. */
    ck_assert_ptr_nonnull(kd_session_keys_parse(kd_test_pool, "  " KEY_A " \r\n", 49, &err));
}
END_TEST

START_TEST(refuses_to_seal_unusable_fields)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = alice();
    char *long_name = apr_palloc(kd_test_pool, 1100);

    memset(long_name, 'a', 1099);
    long_name[1099] = '\0';
    in.user = "";
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, "vip.example.test", &in));
    in = alice();
    in.principal = long_name;
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, "vip.example.test", &in));
    in = alice();
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, NULL, "vip.example.test", &in));
    /* fuzz_session found it: a control byte sealed, then the cookie never
     * opened; seal now refuses what open would refuse */
    in.principal = "\n";
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, "vip.example.test", &in));
    in = alice();
    in.user = "ali\x7f" "ce";
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, "vip.example.test", &in));
}
END_TEST

Suite *kd_session_suite(void)
{
    Suite *s = suite_create("kd_session");
    TCase *tc = tcase_create("session");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, roundtrip_binds_every_field);
    tcase_add_test(tc, other_site_expired_tampered_truncated);
    tcase_add_test(tc, rotation_old_key_opens_new_key_seals);
    tcase_add_test(tc, key_file_errors_name_the_line);
    tcase_add_test(tc, refuses_to_seal_unusable_fields);
    suite_add_tcase(s, tc);
    return s;
}
