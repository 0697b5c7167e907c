#include "kd_unit.h"

#include <string.h>
#include "kd_escape.h"

START_TEST(json_strings)
{
    ck_assert_str_eq(kd_json_string(kd_test_pool, NULL), "null");
    ck_assert_str_eq(kd_json_string(kd_test_pool, "alice@EXAMPLE.TEST"), "\"alice@EXAMPLE.TEST\"");
    ck_assert_str_eq(kd_json_string(kd_test_pool, "a\"b\\c\n\x01"),
                     "\"a\\\"b\\\\c\\u000a\\u0001\"");
    /* safe inside HTML too */
    ck_assert_str_eq(kd_json_string(kd_test_pool, "</script>&"),
                     "\"\\u003c/script\\u003e\\u0026\"");
    /* valid UTF-8 kept, invalid replaced */
    ck_assert_str_eq(kd_json_string(kd_test_pool, "caf\xc3\xa9"), "\"caf\xc3\xa9\"");
    ck_assert_str_eq(kd_json_string(kd_test_pool, "a\xff" "b"), "\"a\xef\xbf\xbd" "b\"");
    ck_assert_str_eq(kd_json_string(kd_test_pool, "\xc0\xaf"), /* overlong '/' */
                     "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    ck_assert_str_eq(kd_json_string(kd_test_pool, "\xed\xa0\x80"), /* a surrogate */
                     "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
}
END_TEST

START_TEST(html_text)
{
    ck_assert_str_eq(kd_html(kd_test_pool, NULL), "");
    ck_assert_str_eq(kd_html(kd_test_pool, "\"><script>alert('x')</script>&"),
                     "&quot;&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;");
    ck_assert_str_eq(kd_html(kd_test_pool, "a\r\nb\x1b[31m"), "ab[31m");
    ck_assert_str_eq(kd_html(kd_test_pool, "\xe2\x9c\x94 ok \xfe"), "\xe2\x9c\x94 ok \xef\xbf\xbd");
}
END_TEST

START_TEST(prometheus_labels)
{
    ck_assert_str_eq(kd_prom_label(kd_test_pool, "a\"b\\c\nd\re"), "a\\\"b\\\\c\\nde");
    ck_assert_str_eq(kd_prom_label(kd_test_pool, NULL), "");
}
END_TEST

Suite *kd_escape_suite(void)
{
    Suite *s = suite_create("kd_escape");
    TCase *tc = tcase_create("escape");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, json_strings);
    tcase_add_test(tc, html_text);
    tcase_add_test(tc, prometheus_labels);
    suite_add_tcase(s, tc);
    return s;
}
