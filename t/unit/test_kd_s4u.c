#include "kd_unit.h"

#include <string.h>
#include <apr_tables.h>
#include "kd_accept.h"
#include "kd_s4u.h"

static apr_table_t *netbios(void)
{
    apr_table_t *t = apr_table_make(kd_test_pool, 2);

    apr_table_set(t, "ADEX", "AD.EXAMPLE.TEST");
    return t;
}

static kd_user_name name_of(const char *user)
{
    return kd_s4u_user_name(kd_test_pool, user, NULL, "AD.EXAMPLE.TEST", netbios());
}

/* The names AD users type, as the KDC must be asked for them. */
START_TEST(sam_account_name_and_realm)
{
    kd_user_name n = kd_s4u_user_name(kd_test_pool, "alice", "AD.EXAMPLE.TEST",
                                      "AD.EXAMPLE.TEST", NULL);

    ck_assert_str_eq(n.principal, "alice@AD.EXAMPLE.TEST");
    ck_assert_int_eq(n.enterprise, 0);
    ck_assert_ptr_null(n.error);
    /* no KdelegUserRealm: the library adds its default realm */
    n = name_of("alice");
    ck_assert_str_eq(n.principal, "alice");
    ck_assert_int_eq(n.enterprise, 0);
    /* user@REALM, in any letter case, is a plain principal of our realm */
    n = name_of("alice@ad.example.test");
    ck_assert_str_eq(n.principal, "alice@AD.EXAMPLE.TEST");
    ck_assert_int_eq(n.enterprise, 0);
}
END_TEST

START_TEST(alternative_upn_suffix_is_an_enterprise_name)
{
    kd_user_name n = name_of("erin.x@corp.example");

    ck_assert_str_eq(n.principal, "erin.x@corp.example");
    ck_assert_int_eq(n.enterprise, 1);
    ck_assert_ptr_null(n.error);
    /* mapping a mapped name changes nothing */
    n = kd_s4u_user_name(kd_test_pool, n.principal, NULL, "AD.EXAMPLE.TEST", netbios());
    ck_assert_int_eq(n.enterprise, 1);
}
END_TEST

START_TEST(netbios_domain_maps_to_the_realm)
{
    kd_user_name n = name_of("ADEX\\alice");

    ck_assert_str_eq(n.principal, "alice@AD.EXAMPLE.TEST");
    ck_assert_int_eq(n.enterprise, 0);
    ck_assert_ptr_null(n.error);
    n = name_of("adex\\bob"); /* NetBIOS names are case-insensitive */
    ck_assert_str_eq(n.principal, "bob@AD.EXAMPLE.TEST");
    n = name_of("OTHER\\alice");
    ck_assert_ptr_nonnull(n.error);
    ck_assert_ptr_nonnull(strstr(n.error, "KdelegNetbiosDomain OTHER"));
    ck_assert_ptr_nonnull(name_of("ADEX\\").error);
    ck_assert_ptr_nonnull(name_of("ADEX\\a\\b").error);
    ck_assert_ptr_nonnull(name_of("ADEX\\a@b").error);
    ck_assert_ptr_nonnull(kd_s4u_user_name(kd_test_pool, "ADEX\\alice", NULL, NULL, NULL).error);
    ck_assert_ptr_nonnull(name_of("").error);
}
END_TEST

/* KdelegServiceAccount: an entry for the SPN wins over one for any SPN. */
START_TEST(service_account_for_an_spn)
{
    const kd_service_account list[] = {
        {NULL, "websvc@AD.EXAMPLE.TEST"},
        {"HTTP/node1.ad.example.test", "NODE1$@AD.EXAMPLE.TEST"},
        {"HTTP/vip.ad.example.test@AD.EXAMPLE.TEST", "vipsvc@AD.EXAMPLE.TEST"},
    };

    ck_assert_str_eq(kd_service_account_for(list, 3, "HTTP/node1.ad.example.test@AD.EXAMPLE.TEST"),
                     "NODE1$@AD.EXAMPLE.TEST");
    ck_assert_str_eq(kd_service_account_for(list, 3, "HTTP/NODE1.ad.example.test@AD.EXAMPLE.TEST"),
                     "NODE1$@AD.EXAMPLE.TEST");
    ck_assert_str_eq(kd_service_account_for(list, 3, "HTTP/vip.ad.example.test@AD.EXAMPLE.TEST"),
                     "vipsvc@AD.EXAMPLE.TEST");
    ck_assert_str_eq(kd_service_account_for(list, 3, "HTTP/other.ad.example.test@AD.EXAMPLE.TEST"),
                     "websvc@AD.EXAMPLE.TEST");
    /* a prefix of a configured SPN is not that SPN */
    ck_assert_ptr_null(kd_service_account_for(list + 1, 2, "HTTP/node1.ad.example@X"));
    /* an SPN configured without a realm (protocol transition) matches too */
    ck_assert_str_eq(kd_service_account_for(list, 3, "HTTP/vip.ad.example.test"),
                     "vipsvc@AD.EXAMPLE.TEST");
    ck_assert_str_eq(kd_service_account_for(list, 3, "HTTP/node1.ad.example.test"),
                     "NODE1$@AD.EXAMPLE.TEST");
    /* two realms that differ are two SPNs */
    ck_assert_str_eq(kd_service_account_for(list, 3, "HTTP/vip.ad.example.test@OTHER.TEST"),
                     "websvc@AD.EXAMPLE.TEST");
    ck_assert_ptr_null(kd_service_account_for(NULL, 0, "HTTP/x@Y"));
}
END_TEST

/* Only a S4U2Self ticket's PAC is read here: a Kerberos user's evidence
 * (the client's ticket) and a cache-only delegation have none to give,
 * and the reason says where the groups are. */
START_TEST(logon_info_only_from_s4u2self)
{
    static const unsigned char not_a_ticket[] = {0x61, 0x03, 0x02, 0x01, 0x05};
    kd_delegation *d = kd_delegation_from_ticket(kd_test_pool, not_a_ticket,
                                                 sizeof(not_a_ticket), "alice@EXAMPLE.TEST",
                                                 "HTTP/node1.example.test@EXAMPLE.TEST", NULL,
                                                 NULL);
    const char *why = NULL;

    ck_assert_ptr_null(kd_delegation_logon_info(kd_test_pool, d, &why));
    ck_assert_ptr_nonnull(strstr(why, "S4U2Self"));
    why = NULL;
    ck_assert_ptr_null(kd_delegation_logon_info(kd_test_pool, d, &why)); /* kept */
    ck_assert_ptr_nonnull(strstr(why, "S4U2Self"));
    d = kd_delegation_cache_only(kd_test_pool, "alice@EXAMPLE.TEST",
                                 "HTTP/node1.example.test@EXAMPLE.TEST", NULL);
    ck_assert_ptr_null(kd_delegation_logon_info(kd_test_pool, d, NULL));
    ck_assert_ptr_null(kd_delegation_logon_info(kd_test_pool, NULL, &why));
    ck_assert_str_eq(why, "no delegation");
}
END_TEST

Suite *kd_s4u_suite(void)
{
    Suite *s = suite_create("kd_s4u");
    TCase *tc = tcase_create("names");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, sam_account_name_and_realm);
    tcase_add_test(tc, alternative_upn_suffix_is_an_enterprise_name);
    tcase_add_test(tc, netbios_domain_maps_to_the_realm);
    tcase_add_test(tc, service_account_for_an_spn);
    tcase_add_test(tc, logon_info_only_from_s4u2self);
    suite_add_tcase(s, tc);
    return s;
}
