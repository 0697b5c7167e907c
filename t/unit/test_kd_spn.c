#include "kd_unit.h"

#include "kd_spn.h"

START_TEST(parses_service_host_realm)
{
    kd_spn spn;

    ck_assert_ptr_null(kd_spn_parse(kd_test_pool, "HTTP/vip.example.test", &spn));
    ck_assert_str_eq(spn.service, "HTTP");
    ck_assert_str_eq(spn.host, "vip.example.test");
    ck_assert_ptr_null(spn.realm);
    ck_assert_ptr_null(kd_spn_parse(kd_test_pool, "HTTP/vip.example.test@EXAMPLE.TEST", &spn));
    ck_assert_str_eq(spn.realm, "EXAMPLE.TEST");
    ck_assert_str_eq(kd_spn_unparse(kd_test_pool, &spn), "HTTP/vip.example.test@EXAMPLE.TEST");
}
END_TEST

START_TEST(rejects_bad_names)
{
    static const char *const bad[] = {
        "", "HTTP", "HTTP/", "/host", "HTTP/host@", "HTTP/a/b", "HTTP/ho st", "HT TP/host",
        "HTTP/host@RE@ALM", "HTTP/host\n", "HTTP/ho\\st", "@REALM",
    };
    kd_spn spn;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(kd_spn_parse(kd_test_pool, bad[i], &spn) != NULL, "accepted '%s'", bad[i]);
    ck_assert_ptr_nonnull(kd_spn_parse(kd_test_pool, NULL, &spn));
}
END_TEST

START_TEST(matches_ticket_names)
{
    kd_spn any_realm, one_realm;

    kd_spn_parse(kd_test_pool, "HTTP/vip.example.test", &any_realm);
    kd_spn_parse(kd_test_pool, "HTTP/vip.example.test@EXAMPLE.TEST", &one_realm);
    ck_assert(kd_spn_matches(&any_realm, "HTTP/vip.example.test", "EXAMPLE.TEST"));
    ck_assert(kd_spn_matches(&any_realm, "http/VIP.example.test", "OTHER.TEST"));
    ck_assert(kd_spn_matches(&one_realm, "HTTP/vip.example.test", "example.test"));
    ck_assert(!kd_spn_matches(&one_realm, "HTTP/vip.example.test", "OTHER.TEST"));
    ck_assert(!kd_spn_matches(&any_realm, "HTTP/vip.example.test.evil", "EXAMPLE.TEST"));
    ck_assert(!kd_spn_matches(&any_realm, "HTTPS/vip.example.test", "EXAMPLE.TEST"));
    ck_assert(!kd_spn_matches(&any_realm, "HTTP", "EXAMPLE.TEST"));
    ck_assert(!kd_spn_matches(&any_realm, "HTTP/vip.example.test/x", "EXAMPLE.TEST"));
    ck_assert(!kd_spn_matches(&any_realm, NULL, "EXAMPLE.TEST"));
}
END_TEST

Suite *kd_spn_suite(void)
{
    Suite *s = suite_create("kd_spn");
    TCase *tc = tcase_create("spn");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, parses_service_host_realm);
    tcase_add_test(tc, rejects_bad_names);
    tcase_add_test(tc, matches_ticket_names);
    suite_add_tcase(s, tc);
    return s;
}
