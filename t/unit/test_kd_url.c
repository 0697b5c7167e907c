#include "kd_unit.h"

#include <string.h>
#include "kd_url.h"

START_TEST(origins_from_configuration)
{
    kd_origin o;

    ck_assert_ptr_null(kd_origin_parse(kd_test_pool, "Node1.Example.TEST", &o));
    ck_assert_ptr_null(o.scheme);
    ck_assert_str_eq(o.host, "node1.example.test");
    ck_assert_int_eq(o.port, 0);
    ck_assert_str_eq(kd_origin_unparse(kd_test_pool, &o, "http"), "http://node1.example.test");
    ck_assert_ptr_null(kd_origin_parse(kd_test_pool, "https://node1.example.test:8443/", &o));
    ck_assert_str_eq(o.scheme, "https");
    ck_assert_int_eq(o.port, 8443);
    ck_assert_str_eq(kd_origin_unparse(kd_test_pool, &o, "http"),
                     "https://node1.example.test:8443");
    ck_assert_ptr_null(kd_origin_parse(kd_test_pool, "https://node1.example.test:443", &o));
    ck_assert_str_eq(kd_origin_unparse(kd_test_pool, &o, "http"), "https://node1.example.test");
    /* Anything but scheme://host[:port] is refused. */
    ck_assert_ptr_nonnull(kd_origin_parse(kd_test_pool, "ftp://node1.example.test", &o));
    ck_assert_ptr_nonnull(kd_origin_parse(kd_test_pool, "http://node1.example.test/path", &o));
    ck_assert_ptr_nonnull(kd_origin_parse(kd_test_pool, "http://evil@node1.example.test", &o));
    ck_assert_ptr_nonnull(kd_origin_parse(kd_test_pool, "http://node1.example.test:0", &o));
    ck_assert_ptr_nonnull(kd_origin_parse(kd_test_pool, "http://node1.example.test:70000", &o));
    ck_assert_ptr_nonnull(kd_origin_parse(kd_test_pool, "http://node1.example.test:+80", &o));
    ck_assert_ptr_nonnull(kd_origin_parse(kd_test_pool, "//node1.example.test", &o));
    ck_assert_ptr_nonnull(kd_origin_parse(kd_test_pool, "http://node1..example.test", &o));
    ck_assert_ptr_nonnull(kd_origin_parse(kd_test_pool, "http://[::1]:80", &o));
    ck_assert_ptr_nonnull(kd_origin_parse(kd_test_pool, "", &o));
}
END_TEST

START_TEST(host_headers)
{
    const char *host;
    int port;

    ck_assert_int_eq(kd_host_header_split(kd_test_pool, "VIP.example.test:8080", &host, &port), 0);
    ck_assert_str_eq(host, "vip.example.test");
    ck_assert_int_eq(port, 8080);
    ck_assert_int_eq(kd_host_header_split(kd_test_pool, "vip.example.test", &host, &port), 0);
    ck_assert_int_eq(port, 0);
    ck_assert_int_eq(kd_host_header_split(kd_test_pool, "vip.example.test\r\nX: y", &host, &port),
                     -1);
    ck_assert_int_eq(kd_host_header_split(kd_test_pool, "evil.test/x", &host, &port), -1);
    ck_assert_int_eq(kd_host_header_split(kd_test_pool, "vip.example.test:80:80", &host, &port),
                     -1);
    ck_assert_int_eq(kd_host_header_split(kd_test_pool, "", &host, &port), -1);
    ck_assert_int_eq(kd_host_header_split(kd_test_pool, NULL, &host, &port), -1);
}
END_TEST

START_TEST(escaping_keeps_the_target_and_headers_intact)
{
    const char *u;

    ck_assert_str_eq(kd_url_escape_path(kd_test_pool, "/a b/%41/%zz/\"<>\\\x7f\xc3\xa9"),
                     "/a%20b/%41/%25zz/%22%3C%3E%5C%7F%C3%A9");
    ck_assert_str_eq(kd_url_escape_query(kd_test_pool, "x=1&y=a?b\r\nSet-Cookie:z"),
                     "x=1&y=a?b%0D%0ASet-Cookie:z");
    ck_assert_str_eq(kd_url_escape_path(kd_test_pool, "/p?q#f"), "/p%3Fq%23f");
    ck_assert_str_eq(kd_url_escape_component(kd_test_pool, "http://vip.example.test:80"),
                     "http%3A%2F%2Fvip.example.test%3A80");
    u = kd_url_build(kd_test_pool, "http://node1.example.test", "//evil.test/x", "a=1");
    ck_assert_str_eq(u, "http://node1.example.test//evil.test/x?a=1"); /* authority unchanged */
    ck_assert_str_eq(kd_url_build(kd_test_pool, "http://n.test", NULL, NULL), "http://n.test/");
    ck_assert_str_eq(kd_url_build(kd_test_pool, "http://n.test", "*", ""), "http://n.test/");
    ck_assert_ptr_null(strpbrk(kd_url_build(kd_test_pool, "http://n.test", "/\r\n", "\r\n"),
                               "\r\n"));
}
END_TEST

START_TEST(unescape_refuses_controls)
{
    ck_assert_str_eq(kd_url_unescape(kd_test_pool, "http%3A%2F%2Fvip"), "http://vip");
    ck_assert_ptr_null(kd_url_unescape(kd_test_pool, "a%0d%0ab"));
    ck_assert_ptr_null(kd_url_unescape(kd_test_pool, "a%00b"));
    ck_assert_ptr_null(kd_url_unescape(kd_test_pool, "a%4"));
    ck_assert_ptr_null(kd_url_unescape(kd_test_pool, "a%g1"));
}
END_TEST

START_TEST(query_take)
{
    const char *v;

    ck_assert_str_eq(kd_query_take(kd_test_pool, "a=1&kdeleg-return=x&b=2", KD_RETURN_PARAM, &v),
                     "a=1&b=2");
    ck_assert_str_eq(v, "x");
    ck_assert_ptr_null(kd_query_take(kd_test_pool, "kdeleg-return=y", KD_RETURN_PARAM, &v));
    ck_assert_str_eq(v, "y");
    ck_assert_str_eq(kd_query_take(kd_test_pool, "kdeleg-returnx=1&a", KD_RETURN_PARAM, &v),
                     "kdeleg-returnx=1&a");
    ck_assert_ptr_null(v);
    /* The last occurrence names the way back; all are removed. */
    ck_assert_str_eq(kd_query_take(kd_test_pool, "kdeleg-return=1&c&kdeleg-return=2",
                                   KD_RETURN_PARAM, &v), "c");
    ck_assert_str_eq(v, "2");
    ck_assert_ptr_null(kd_query_take(kd_test_pool, NULL, KD_RETURN_PARAM, &v));
    ck_assert_ptr_null(v);
}
END_TEST

Suite *kd_url_suite(void)
{
    Suite *s = suite_create("kd_url");
    TCase *tc = tcase_create("url");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, origins_from_configuration);
    tcase_add_test(tc, host_headers);
    tcase_add_test(tc, escaping_keeps_the_target_and_headers_intact);
    tcase_add_test(tc, unescape_refuses_controls);
    tcase_add_test(tc, query_take);
    suite_add_tcase(s, tc);
    return s;
}
