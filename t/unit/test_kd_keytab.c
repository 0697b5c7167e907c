#include "kd_unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <apr_strings.h>
#include <krb5.h>
#include "kd_keytab.h"

/* A keytab written with the library, two principals, one of them twice. */
static const char *make_keytab(void)
{
    char *path = apr_pstrdup(kd_test_pool, "/tmp/kd_unit_keytab_XXXXXX");
    int fd = mkstemp(path);
    krb5_context ctx;
    krb5_keytab kt;
    const char *names[3] = {"HTTP/a.example.test@EXAMPLE.TEST", "HTTP/a.example.test@EXAMPLE.TEST",
                            "HTTP/b.example.test@EXAMPLE.TEST"};
    int kvnos[3] = {3, 4, 1}, i;
    unsigned char keybytes[32] = {1, 2, 3};

    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(path); /* krb5 creates it in its own format */
    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    ck_assert_int_eq(krb5_kt_resolve(ctx, apr_pstrcat(kd_test_pool, "FILE:", path, NULL), &kt), 0);
    for (i = 0; i < 3; i++) {
        krb5_keytab_entry e;
        memset(&e, 0, sizeof(e));
        ck_assert_int_eq(krb5_parse_name(ctx, names[i], &e.principal), 0);
        e.vno = (krb5_kvno)kvnos[i];
        e.key.enctype = ENCTYPE_AES256_CTS_HMAC_SHA1_96;
        e.key.length = sizeof(keybytes);
        e.key.contents = keybytes;
        ck_assert_int_eq(krb5_kt_add_entry(ctx, kt, &e), 0);
        krb5_free_principal(ctx, e.principal);
    }
    krb5_kt_close(ctx, kt);
    krb5_free_context(ctx);
    return path;
}

START_TEST(lists_entries_without_keys)
{
    const char *path = make_keytab(), *err = NULL;
    apr_array_header_t *list = kd_keytab_list(kd_test_pool, path, &err);
    const kd_keytab_entry *e;

    ck_assert_ptr_nonnull(list);
    ck_assert_int_eq(list->nelts, 3);
    e = &APR_ARRAY_IDX(list, 2, kd_keytab_entry);
    ck_assert_str_eq(e->principal, "HTTP/b.example.test@EXAMPLE.TEST");
    ck_assert_int_eq(e->kvno, 1);
    ck_assert_str_eq(e->enctype, "aes256-cts-hmac-sha1-96");
    ck_assert_int_eq(kd_keytab_kvno(list, "HTTP/a.example.test@EXAMPLE.TEST"), 4);
    ck_assert_int_eq(kd_keytab_kvno(list, "HTTP/a.example.test"), 4); /* any realm */
    ck_assert_int_eq(kd_keytab_kvno(list, "HTTP/a.example"), -1);     /* no prefix match */
    ck_assert_int_eq(kd_keytab_kvno(list, "HTTP/c.example.test"), -1);
    ck_assert_int_eq(kd_keytab_kvno(list, "HTTP/a.example.test@OTHER.TEST"), -1);
    unlink(path);
}
END_TEST

START_TEST(unreadable_keytab_says_why)
{
    const char *err = NULL;

    ck_assert_ptr_null(kd_keytab_list(kd_test_pool, "/nonexistent/kd.keytab", &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_int_eq(kd_keytab_kvno(NULL, "HTTP/a"), -1);
}
END_TEST

Suite *kd_keytab_suite(void)
{
    Suite *s = suite_create("kd_keytab");
    TCase *tc = tcase_create("keytab");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, lists_entries_without_keys);
    tcase_add_test(tc, unreadable_keytab_says_why);
    suite_add_tcase(s, tc);
    return s;
}
