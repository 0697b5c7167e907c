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

/* The index answers by name ignoring case, with the keytab's spelling: a
 * ticket's sname and realm are the client's to spell. */
START_TEST(index_spells_names_as_the_keytab_does)
{
    const char *path = make_keytab(), *err = NULL;
    krb5_context ctx;
    kd_keytab_index *ix;
    int elsewhere = -1;

    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    ix = kd_keytab_index_read(kd_test_pool, ctx, path, &err);
    ck_assert_ptr_nonnull(ix);
    ck_assert_str_eq(kd_keytab_index_spelling(ix, kd_test_pool, "hTtP", "A.Example.TEST",
                                              "example.test", &elsewhere),
                     "HTTP/a.example.test@EXAMPLE.TEST");
    ck_assert_int_eq(elsewhere, 0);
    /* the service in another realm: the client's realm, not our keytab */
    ck_assert_ptr_null(kd_keytab_index_spelling(ix, kd_test_pool, "HTTP", "a.example.test",
                                                "OTHER.TEST", &elsewhere));
    ck_assert_int_eq(elsewhere, 1);
    /* not there at all */
    ck_assert_ptr_null(kd_keytab_index_spelling(ix, kd_test_pool, "HTTP", "c.example.test",
                                                "EXAMPLE.TEST", &elsewhere));
    ck_assert_int_eq(elsewhere, 0);
    /* the same name with another service is another principal */
    ck_assert_ptr_null(kd_keytab_index_spelling(ix, kd_test_pool, "HTTPS", "a.example.test",
                                                "EXAMPLE.TEST", &elsewhere));
    ck_assert_ptr_null(kd_keytab_index_read(kd_test_pool, ctx, "/nonexistent/kd.keytab", &err));
    ck_assert_ptr_nonnull(err);
    krb5_free_context(ctx);
    unlink(path);
}
END_TEST

/* An AD keytab as ktpass/exportkeytab make it, in a MEMORY keytab:
 * (principal, kvno, key byte) rows. */
static krb5_keytab ad_keytab(krb5_context ctx, const char *const *names, const int *keys, int n)
{
    static int serial;
    krb5_keytab kt;
    int i;

    ck_assert_int_eq(krb5_kt_resolve(ctx, apr_psprintf(kd_test_pool, "MEMORY:kd-unit-%d",
                                                       ++serial), &kt), 0);
    for (i = 0; i < n; i++) {
        unsigned char keybytes[32];
        krb5_keytab_entry e;
        memset(&e, 0, sizeof(e));
        memset(keybytes, keys[i], sizeof(keybytes));
        ck_assert_int_eq(krb5_parse_name(ctx, names[i], &e.principal), 0);
        e.vno = 2;
        e.key.enctype = ENCTYPE_AES256_CTS_HMAC_SHA1_96;
        e.key.length = sizeof(keybytes);
        e.key.contents = keybytes;
        ck_assert_int_eq(krb5_kt_add_entry(ctx, kt, &e), 0);
        krb5_free_principal(ctx, e.principal);
    }
    return kt;
}

static kd_keytab_identity identify(krb5_context ctx, krb5_keytab kt, const char *spn)
{
    krb5_principal princ;
    kd_keytab_identity id;

    ck_assert_int_eq(krb5_parse_name(ctx, spn, &princ), 0);
    ck_assert_int_eq(kd_keytab_identify(ctx, kt, princ, &id), 0);
    krb5_free_principal(ctx, princ);
    return id;
}

/* The account entry is the one without an instance holding the SPN's
 * key: websvc for HTTP/vip, not the other account in the same keytab. */
START_TEST(account_entry_shares_the_spn_key)
{
    static const char *const names[] = {
        "othersvc@AD.TEST", "HTTP/other.ad.test@AD.TEST", "websvc@AD.TEST",
        "HTTP/vip.ad.test@AD.TEST", "HTTP/node1.ad.test@AD.TEST", "HTTP/mit.ad.test@AD.TEST"};
    static const int keys[] = {7, 7, 9, 9, 9, 5};
    krb5_context ctx;
    krb5_keytab kt;
    kd_keytab_identity id;

    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    kt = ad_keytab(ctx, names, keys, 6);
    id = identify(ctx, kt, "HTTP/vip.ad.test@AD.TEST");
    ck_assert_str_eq(id.account, "websvc@AD.TEST");
    ck_assert_int_eq(id.spn_found, 1);
    ck_assert_int_eq(id.host_alias, 0);
    kd_keytab_identity_free(ctx, &id);
    id = identify(ctx, kt, "HTTP/other.ad.test@AD.TEST");
    ck_assert_str_eq(id.account, "othersvc@AD.TEST");
    kd_keytab_identity_free(ctx, &id);
    /* MIT keytabs: no entry shares the key; the SPN acts for itself */
    id = identify(ctx, kt, "HTTP/mit.ad.test@AD.TEST");
    ck_assert_ptr_null(id.account);
    ck_assert_int_eq(id.spn_found, 1);
    /* nothing at all for an unknown SPN */
    id = identify(ctx, kt, "HTTP/none.ad.test@AD.TEST");
    ck_assert_ptr_null(id.account);
    ck_assert_int_eq(id.spn_found, 0);
    krb5_kt_close(ctx, kt);
    krb5_free_context(ctx);
}
END_TEST

/* A computer account holds host/ only: HTTP/web2 is served by its key
 * (AD's sPNMappings), and the alias copy makes the acceptor find it. */
START_TEST(computer_account_serves_http_through_host)
{
    static const char *const names[] = {"WEB2$@AD.TEST", "host/web2.ad.test@AD.TEST",
                                        "websvc@AD.TEST", "HTTP/vip.ad.test@AD.TEST"};
    static const int keys[] = {4, 4, 9, 9};
    krb5_context ctx;
    krb5_keytab kt, copy;
    krb5_principal http, host;
    krb5_keytab_entry e;
    kd_keytab_identity id;

    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    kt = ad_keytab(ctx, names, keys, 4);
    id = identify(ctx, kt, "HTTP/WEB2.ad.test@AD.TEST");
    ck_assert_int_eq(id.host_alias, 1);
    ck_assert_str_eq(id.account, "WEB2$@AD.TEST");
    kd_keytab_identity_free(ctx, &id);

    ck_assert_int_eq(krb5_parse_name(ctx, "HTTP/web2.ad.test@AD.TEST", &http), 0);
    ck_assert_int_eq(kd_keytab_host_principal(ctx, http, &host), 0);
    ck_assert_ptr_nonnull(host);
    ck_assert_int_ne(krb5_kt_get_entry(ctx, kt, http, 2, 0, &e), 0);
    ck_assert_int_eq(krb5_kt_resolve(ctx, "MEMORY:kd-unit-copy", &copy), 0);
    ck_assert_int_eq(kd_keytab_copy(ctx, kt, copy, host, http), 0);
    ck_assert_int_eq(krb5_kt_get_entry(ctx, copy, http, 2, 0, &e), 0);
    ck_assert_uint_eq(e.key.contents[0], 4);
    krb5_free_keytab_entry_contents(ctx, &e);
    /* host/ itself has no alias of its own */
    krb5_free_principal(ctx, http);
    http = NULL;
    ck_assert_int_eq(kd_keytab_host_principal(ctx, host, &http), 0);
    ck_assert_ptr_null(http);
    krb5_free_principal(ctx, host);
    krb5_kt_close(ctx, copy);
    krb5_kt_close(ctx, kt);
    krb5_free_context(ctx);
}
END_TEST

Suite *kd_keytab_suite(void)
{
    Suite *s = suite_create("kd_keytab");
    TCase *tc = tcase_create("keytab");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, lists_entries_without_keys);
    tcase_add_test(tc, unreadable_keytab_says_why);
    tcase_add_test(tc, index_spells_names_as_the_keytab_does);
    tcase_add_test(tc, account_entry_shares_the_spn_key);
    tcase_add_test(tc, computer_account_serves_http_through_host);
    suite_add_tcase(s, tc);
    return s;
}
