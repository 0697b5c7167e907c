#include "kd_unit.h"

#include "kd_identity.h"

static apr_array_header_t *list(const char *a, const char *b)
{
    apr_array_header_t *arr = apr_array_make(kd_test_pool, 2, sizeof(const char *));

    if (a)
        APR_ARRAY_PUSH(arr, const char *) = a;
    if (b)
        APR_ARRAY_PUSH(arr, const char *) = b;
    return arr;
}

START_TEST(anonymous_principals)
{
    ck_assert(kd_principal_is_anonymous("WELLKNOWN/ANONYMOUS@WELLKNOWN:ANONYMOUS"));
    ck_assert(kd_principal_is_anonymous("WELLKNOWN/ANONYMOUS@EXAMPLE.TEST"));
    ck_assert(kd_principal_is_anonymous("wellknown/anonymous@example.test"));
    ck_assert(kd_principal_is_anonymous("anyone@WELLKNOWN:ANONYMOUS"));
    ck_assert(!kd_principal_is_anonymous("alice@EXAMPLE.TEST"));
    ck_assert(!kd_principal_is_anonymous("WELLKNOWN/ANONYMOUSX@EXAMPLE.TEST"));
    ck_assert(!kd_principal_is_anonymous("WELLKNOWN@EXAMPLE.TEST"));
    ck_assert(!kd_principal_is_anonymous("anonymous@EXAMPLE.TEST"));
    ck_assert(!kd_principal_is_anonymous(NULL));
}
END_TEST

START_TEST(realms)
{
    ck_assert_str_eq(kd_principal_realm("alice@EXAMPLE.TEST"), "EXAMPLE.TEST");
    ck_assert_str_eq(kd_principal_realm("erin.x@corp.example@AD.EXAMPLE.TEST"), "AD.EXAMPLE.TEST");
    ck_assert_ptr_null(kd_principal_realm("alice"));
    ck_assert(kd_realm_allowed("CORP.TEST", NULL));          /* no policy */
    ck_assert(kd_realm_allowed("EXAMPLE.TEST", list("EXAMPLE.TEST", "AD.EXAMPLE.TEST")));
    ck_assert(kd_realm_allowed("AD.EXAMPLE.TEST", list("EXAMPLE.TEST", "AD.EXAMPLE.TEST")));
    ck_assert(!kd_realm_allowed("CORP.TEST", list("EXAMPLE.TEST", NULL)));
    ck_assert(!kd_realm_allowed("example.test", list("EXAMPLE.TEST", NULL))); /* case matters */
    ck_assert(!kd_realm_allowed(NULL, list("EXAMPLE.TEST", NULL)));
    ck_assert(!kd_realm_allowed("EXAMPLE.TEST", list(NULL, NULL)));       /* empty list */
    ck_assert(kd_realm_allowed("CORP.TEST", list("*", NULL)));            /* lifts a list */
    ck_assert(kd_realm_allowed(NULL, list("*", NULL)));
}
END_TEST

START_TEST(trusted_auth_types)
{
    ck_assert(kd_auth_type_trusted("Basic", NULL));
    ck_assert(kd_auth_type_trusted("form", NULL));
    ck_assert(!kd_auth_type_trusted("Digest", NULL));
    ck_assert(!kd_auth_type_trusted(NULL, NULL));
    ck_assert(!kd_auth_type_trusted("", NULL));
    ck_assert(kd_auth_type_trusted("digest", list("Digest", "Cert")));
    ck_assert(!kd_auth_type_trusted("BasicX", list("Digest", NULL)));
}
END_TEST

Suite *kd_identity_suite(void)
{
    Suite *s = suite_create("identity");
    TCase *tc = tcase_create("identity");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);

    tcase_add_test(tc, anonymous_principals);
    tcase_add_test(tc, realms);
    tcase_add_test(tc, trusted_auth_types);
    suite_add_tcase(s, tc);
    return s;
}
