/* The acceptor's decisions that need no KDC: the registry, the service
 * name allow-list (checked before any key is touched) and keytab failures.
 * Real exchanges are covered by the integration tests. */
#include "kd_unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <apr_strings.h>
#include <krb5.h>
#include "kd_accept.h"

static kd_token_info ticket_for(const char *sname)
{
    kd_token_info info;

    memset(&info, 0, sizeof(info));
    info.frame = KD_FRAME_KRB5;
    info.has_ap_req = 1;
    info.ticket_sname = sname;
    info.ticket_realm = "EXAMPLE.TEST";
    info.ticket_kvno = 1;
    info.ticket_etype = 18;
    return info;
}

static kd_accept_params params_for(const char *spn_text)
{
    kd_spn *spn = apr_palloc(kd_test_pool, sizeof(*spn));
    kd_accept_params params = {spn, 1, 0, 0, 0, NULL, 0, NULL, 0, 0};

    ck_assert_ptr_null(kd_spn_parse(kd_test_pool, spn_text, spn));
    return params;
}

START_TEST(registry_has_one_acceptor_per_keytab)
{
    kd_acceptors *reg = kd_acceptors_create(kd_test_pool);
    kd_acceptor *a = kd_acceptors_get(reg, "/k/one.keytab");

    ck_assert_ptr_eq(kd_acceptors_get(reg, "/k/one.keytab"), a);
    ck_assert_ptr_ne(kd_acceptors_get(reg, "/k/two.keytab"), a);
    ck_assert_uint_eq(kd_acceptor_acquisitions(a), 0);
}
END_TEST

/* Accept a made-up ticket for sname on an acceptor whose keytab is missing. */
static kd_cause accept_without_keytab(kd_token_info info, const char *configured_spn,
                                      kd_result *res, kd_acceptor **acceptor)
{
    kd_acceptor *a = kd_acceptors_get(kd_acceptors_create(kd_test_pool), "/nonexistent.keytab");
    kd_accept_params params = params_for(configured_spn);
    kd_accept_out out;

    kd_result_init(res);
    if (acceptor)
        *acceptor = a;
    return kd_acceptor_accept(a, kd_test_pool, &info, &params, &out, res);
}

START_TEST(wrong_spn_refused_before_keytab)
{
    kd_acceptor *a;
    kd_result res;

    ck_assert_int_eq(accept_without_keytab(ticket_for("HTTP/other.example.test"),
                                           "HTTP/node1.example.test", &res, &a),
                     KD_CAUSE_WRONG_SPN);
    ck_assert_ptr_nonnull(strstr(res.detail, "HTTP/other.example.test@EXAMPLE.TEST"));
    ck_assert_ptr_nonnull(strstr(res.detail, "HTTP/node1.example.test"));
    ck_assert_uint_eq(kd_acceptor_acquisitions(a), 0);
}
END_TEST

START_TEST(missing_keytab_is_unusable)
{
    kd_result res;

    ck_assert_int_eq(accept_without_keytab(ticket_for("HTTP/node1.example.test"),
                                           "HTTP/node1.example.test", &res, NULL),
                     KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_ptr_nonnull(strstr(res.detail, "/nonexistent.keytab"));
}
END_TEST

START_TEST(no_ap_req_is_malformed)
{
    kd_token_info info = ticket_for("HTTP/node1.example.test");
    kd_result res;

    info.has_ap_req = 0;
    ck_assert_int_eq(accept_without_keytab(info, "HTTP/node1.example.test", &res, NULL),
                     KD_CAUSE_MALFORMED_TOKEN);
}
END_TEST

/* A refused exchange leaves no name; without one there is no logon info,
 * and the reason says so. */
START_TEST(no_name_no_logon_info)
{
    kd_acceptor *a = kd_acceptors_get(kd_acceptors_create(kd_test_pool), "/nonexistent.keytab");
    kd_accept_params params = params_for("HTTP/node1.example.test");
    kd_token_info info = ticket_for("HTTP/node1.example.test");
    kd_accept_out out;
    kd_result res;
    const char *why = NULL;

    kd_result_init(&res);
    ck_assert_int_ne(kd_acceptor_accept(a, kd_test_pool, &info, &params, &out, &res),
                     KD_CAUSE_NONE);
    ck_assert_ptr_null(out.name);
    ck_assert_ptr_null(kd_accept_logon_info(out.name, &why));
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_null(kd_accept_logon_info(NULL, NULL));
}
END_TEST

/* Without an accepted name there are no indicators, and the reason says
 * so (a session or protocol-transition user reaches the check that way). */
START_TEST(no_name_no_indicators)
{
    const char *why = NULL;

    ck_assert_ptr_null(kd_accept_indicators(NULL, &why));
    ck_assert_str_eq(why, "no accepted Kerberos ticket");
    ck_assert_ptr_null(kd_accept_indicators(NULL, NULL));
}
END_TEST

/* Indicators match byte for byte: no case folding, no prefixes. */
START_TEST(indicator_find_is_exact)
{
    apr_array_header_t *have = apr_array_make(kd_test_pool, 2, sizeof(const char *));

    APR_ARRAY_PUSH(have, const char *) = "spake";
    APR_ARRAY_PUSH(have, const char *) = "fast";
    ck_assert_str_eq(kd_indicator_find(have, "fast"), "fast");
    ck_assert_str_eq(kd_indicator_find(have, "spake"), "spake");
    ck_assert_ptr_null(kd_indicator_find(have, "FAST"));
    ck_assert_ptr_null(kd_indicator_find(have, "fas"));
    ck_assert_ptr_null(kd_indicator_find(have, "fast2"));
    ck_assert_ptr_null(kd_indicator_find(have, ""));
    ck_assert_ptr_null(kd_indicator_find(have, NULL));
    ck_assert_ptr_null(kd_indicator_find(NULL, "fast"));
    ck_assert_ptr_null(kd_indicator_find(apr_array_make(kd_test_pool, 1, sizeof(const char *)),
                                         "fast"));
}
END_TEST

/* A keytab file holding one key for each of names. */
static const char *keytab_of(const char *const *names, int n)
{
    char *path = apr_pstrdup(kd_test_pool, "/tmp/kd_unit_health_XXXXXX");
    int fd = mkstemp(path), i;
    krb5_context ctx;
    krb5_keytab kt;
    unsigned char keybytes[32] = {7, 8, 9};

    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(path); /* krb5 creates it in its own format */
    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    ck_assert_int_eq(krb5_kt_resolve(ctx, apr_pstrcat(kd_test_pool, "FILE:", path, NULL), &kt), 0);
    for (i = 0; i < n; i++) {
        krb5_keytab_entry e;
        memset(&e, 0, sizeof(e));
        ck_assert_int_eq(krb5_parse_name(ctx, names[i], &e.principal), 0);
        e.vno = 2;
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

static kd_cause ready(kd_acceptor *a, const char *spn_text, kd_result *res)
{
    kd_spn spn;

    ck_assert_ptr_null(kd_spn_parse(kd_test_pool, spn_text, &spn));
    kd_result_init(res);
    return kd_acceptor_keytab_ready(a, kd_test_pool, &spn, 1, res);
}

/* The health check's keytab verdict: every SPN's key (or its host alias)
 * there, in its realm or, without one, in any; a file that goes missing,
 * turns to garbage or comes back is judged again at once. */
START_TEST(keytab_ready_judges_the_file)
{
    static const char *const names[] = {"HTTP/a.example.test@EXAMPLE.TEST",
                                        "host/b.example.test@EXAMPLE.TEST"};
    const char *path = keytab_of(names, 2), *saved = apr_pstrcat(kd_test_pool, path, ".saved",
                                                                 NULL);
    kd_acceptor *a = kd_acceptors_get(kd_acceptors_create(kd_test_pool), path);
    kd_result res;
    FILE *f;

    ck_assert_int_eq(ready(a, "HTTP/a.example.test", &res), KD_CAUSE_NONE);
    ck_assert_int_eq(ready(a, "HTTP/A.Example.Test@EXAMPLE.TEST", &res), KD_CAUSE_NONE);
    ck_assert_int_eq(ready(a, "HTTP/b.example.test", &res), KD_CAUSE_NONE); /* host alias */
    ck_assert_int_eq(ready(a, "HTTP/a.example.test@OTHER.TEST", &res), KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_ptr_nonnull(strstr(res.detail, "no key for HTTP/a.example.test@OTHER.TEST"));
    ck_assert_int_eq(ready(a, "HTTP/c.example.test", &res), KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_int_eq(rename(path, saved), 0);
    ck_assert_int_eq(ready(a, "HTTP/a.example.test", &res), KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_ptr_nonnull(strstr(res.detail, "No such file"));
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("not a keytab at all, not even its version number", f);
    fclose(f);
    ck_assert_int_eq(ready(a, "HTTP/a.example.test", &res), KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_int_eq(rename(saved, path), 0);
    ck_assert_int_eq(ready(a, "HTTP/a.example.test", &res), KD_CAUSE_NONE);
    unlink(path);
}
END_TEST

/* No keytab, no KDC exchange: the probe says keytab-unusable. */
START_TEST(probe_without_keytab_asks_no_kdc)
{
    kd_acceptor *a = kd_acceptors_get(kd_acceptors_create(kd_test_pool), "/nonexistent.keytab");
    kd_result res;

    kd_result_init(&res);
    ck_assert_int_eq(kd_acceptor_probe_kdc(a, kd_test_pool, "HTTP/a.example.test", NULL, &res),
                     KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_uint_eq(kd_acceptor_acquisitions(a), 0);
}
END_TEST

Suite *kd_accept_suite(void)
{
    Suite *s = suite_create("kd_accept");
    TCase *tc = tcase_create("accept");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, registry_has_one_acceptor_per_keytab);
    tcase_add_test(tc, wrong_spn_refused_before_keytab);
    tcase_add_test(tc, missing_keytab_is_unusable);
    tcase_add_test(tc, no_ap_req_is_malformed);
    tcase_add_test(tc, no_name_no_logon_info);
    tcase_add_test(tc, no_name_no_indicators);
    tcase_add_test(tc, indicator_find_is_exact);
    tcase_add_test(tc, keytab_ready_judges_the_file);
    tcase_add_test(tc, probe_without_keytab_asks_no_kdc);
    suite_add_tcase(s, tc);
    return s;
}
