#include "kd_unit.h"

#include <string.h>
#include <krb5.h>
#include "kd_gss.h"

START_TEST(error_text_has_major_and_minor)
{
    const char *text = kd_gss_error(kd_test_pool, GSS_S_BAD_NAME, 0);

    ck_assert_ptr_nonnull(strstr(text, "name"));
    text = kd_gss_error(kd_test_pool, GSS_S_FAILURE, (OM_uint32)KRB5KRB_AP_ERR_SKEW);
    ck_assert_ptr_nonnull(strstr(text, "; "));
}
END_TEST

START_TEST(buffers_are_copied_by_length)
{
    char raw[] = {'a', 'b', 'c', 'X'}; /* not NUL-terminated at 3 */
    gss_buffer_desc buf = {3, raw};

    ck_assert_str_eq(kd_gss_buffer_str(kd_test_pool, &buf), "abc");
    ck_assert_str_eq(kd_gss_buffer_str(kd_test_pool, NULL), "");
}
END_TEST

Suite *kd_gss_suite(void)
{
    Suite *s = suite_create("kd_gss");
    TCase *tc = tcase_create("gss");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, error_text_has_major_and_minor);
    tcase_add_test(tc, buffers_are_copied_by_length);
    suite_add_tcase(s, tc);
    return s;
}
