#include "kd_unit.h"

#include <string.h>
#include <apr_strings.h>

#include "kd_base64.h"
#include "kd_chanbind.h"

/* Hex of the binding's hash part, after the prefix. */
static const char *hash_hex(const kd_chanbind *cb)
{
    size_t plen = sizeof(KD_CHANBIND_PREFIX) - 1, i;
    char *hex;

    ck_assert_uint_gt(cb->len, plen);
    ck_assert_int_eq(memcmp(cb->data, KD_CHANBIND_PREFIX, plen), 0);
    hex = apr_palloc(kd_test_pool, 2 * (cb->len - plen) + 1);
    for (i = plen; i < cb->len; i++)
        apr_snprintf(hex + 2 * (i - plen), 3, "%02x", cb->data[i]);
    return hex;
}

static kd_chanbind binding_of(const char *name)
{
    size_t len;
    const unsigned char *pem = kd_test_file(apr_pstrcat(kd_test_pool, "t/unit/vectors/chanbind/",
                                                         name, NULL), &len);
    kd_chanbind cb;
    const char *err = NULL;

    ck_assert_ptr_nonnull(pem);
    ck_assert_int_eq(kd_chanbind_from_pem(kd_test_pool, (const char *)pem, len, &cb, &err), 0);
    return cb;
}

/* Expected values: openssl x509 -outform der | openssl dgst -<hash>, by
 * hand when the vectors were made (t/unit/vectors/chanbind). */
START_TEST(signature_hash_is_used)
{
    kd_chanbind cb = binding_of("ecdsa-sha256.pem");

    ck_assert_str_eq(cb.hash_name, "SHA256");
    ck_assert_str_eq(hash_hex(&cb),
                     "669754a7e4e50fd2a73cdf291b7ffe95844eed4918f5dfc268382858725c8de3");
    cb = binding_of("ecdsa-sha384.pem");
    ck_assert_str_eq(cb.hash_name, "SHA384");
    ck_assert_str_eq(hash_hex(&cb), "8a82238c83faccb97ba3b8d94679f9f5a5ebc7de50c670261c98bec1"
                                    "de23bf292e9b46d636f0f32bd44d38f763393be8");
    cb = binding_of("ecdsa-sha512.pem");
    ck_assert_str_eq(cb.hash_name, "SHA512");
    ck_assert_str_eq(hash_hex(&cb), "08bc0bbf77c64643789ff9dec1837554628a881fcbfb5c8e6be7909d"
                                    "bd84958aaf4260274871bf8726bd61e918ab89f510d7843156ab10b8"
                                    "0694dac66f5d7a78");
}
END_TEST

/* RFC 5929 4.1: MD5 and SHA-1 become SHA-256; a signature with no
 * separate digest (Ed25519) gets SHA-256 too. */
START_TEST(weak_or_no_digest_becomes_sha256)
{
    kd_chanbind cb = binding_of("ecdsa-sha1.pem");

    ck_assert_str_eq(cb.hash_name, "SHA256");
    ck_assert_str_eq(hash_hex(&cb),
                     "9a84e16f6615eabe6cbf651f56ad6ddf492baf79faf94b806afa90bce83abb8a");
    cb = binding_of("ed25519.pem");
    ck_assert_str_eq(cb.hash_name, "SHA256");
    ck_assert_str_eq(hash_hex(&cb),
                     "83f73d3d63ab6ea44991b10ccaddf660e08bb1fc381f94176d4c67e79e75654c");
}
END_TEST

START_TEST(der_and_pem_agree)
{
    static const char pem_head[] = "-----BEGIN CERTIFICATE-----";
    size_t len, i, j = 0;
    const char *pem = (const char *)kd_test_file("t/unit/vectors/chanbind/ecdsa-sha256.pem", &len);
    const char *body = strstr(pem, pem_head) + sizeof(pem_head) - 1;
    const char *end = strstr(body, "-----END");
    char *b64 = apr_palloc(kd_test_pool, (apr_size_t)(end - body) + 1);
    unsigned char *der = NULL;
    size_t der_len = 0;
    kd_chanbind from_pem = binding_of("ecdsa-sha256.pem"), from_der;
    const char *err = NULL;

    for (i = 0; body + i < end; i++)
        if (body[i] != '\n' && body[i] != '\r')
            b64[j++] = body[i];
    b64[j] = '\0';
    ck_assert_int_eq(kd_b64_decode(kd_test_pool, b64, j, 4096, &der, &der_len), KD_B64_OK);
    ck_assert_int_eq(kd_chanbind_from_der(kd_test_pool, der, der_len, &from_der, &err), 0);
    ck_assert_uint_eq(from_der.len, from_pem.len);
    ck_assert_int_eq(memcmp(from_der.data, from_pem.data, from_pem.len), 0);
    /* a truncated certificate */
    ck_assert_int_ne(kd_chanbind_from_der(kd_test_pool, der, der_len - 1, &from_der,
                                          &err), 0);
}
END_TEST

START_TEST(rejects_what_is_not_a_certificate)
{
    static const char junk[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    static const char key[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    kd_chanbind cb;
    const char *err = NULL;

    ck_assert_int_ne(kd_chanbind_from_pem(kd_test_pool, junk, strlen(junk), &cb, &err), 0);
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_null(cb.data);
    ck_assert_int_ne(kd_chanbind_from_pem(kd_test_pool, key, strlen(key), &cb, &err), 0);
    ck_assert_int_ne(kd_chanbind_from_pem(kd_test_pool, "", 0, &cb, &err), 0);
    ck_assert_int_ne(kd_chanbind_from_pem(kd_test_pool, NULL, 10, &cb, &err), 0);
    ck_assert_int_ne(kd_chanbind_from_der(kd_test_pool, (const unsigned char *)"\x30\x03", 2,
                                          &cb, &err), 0);
}
END_TEST

Suite *kd_chanbind_suite(void)
{
    Suite *s = suite_create("kd_chanbind");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, signature_hash_is_used);
    tcase_add_test(tc, weak_or_no_digest_becomes_sha256);
    tcase_add_test(tc, der_and_pem_agree);
    tcase_add_test(tc, rejects_what_is_not_a_certificate);
    suite_add_tcase(s, tc);
    return s;
}
