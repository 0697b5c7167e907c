#include "kd_unit.h"

#include <string.h>
#include "kd_base64.h"

static kd_b64_status dec(const char *in, size_t max, unsigned char **out, size_t *len)
{
    return kd_b64_decode(kd_test_pool, in, strlen(in), max, out, len);
}

START_TEST(roundtrip_all_lengths)
{
    unsigned char in[64], *out;
    size_t i, len;

    for (i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (i = 0; i <= sizeof(in); i++) {
        char *enc = kd_b64_encode(kd_test_pool, in, i);
        ck_assert_uint_eq(strlen(enc), ((i + 2) / 3) * 4);
        ck_assert_int_eq(dec(enc, 64, &out, &len), i == 0 ? KD_B64_EMPTY : KD_B64_OK);
        if (i > 0) {
            ck_assert_uint_eq(len, i);
            ck_assert_mem_eq(out, in, i);
        }
    }
}
END_TEST

START_TEST(known_vectors)
{
    unsigned char *out;
    size_t len;

    ck_assert_str_eq(kd_b64_encode(kd_test_pool, (const unsigned char *)"foobar", 6), "Zm9vYmFy");
    ck_assert_str_eq(kd_b64_encode(kd_test_pool, (const unsigned char *)"fo", 2), "Zm8=");
    ck_assert_int_eq(dec("Zm9vYg==", 10, &out, &len), KD_B64_OK);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(out, "foob", 4);
    /* padding is optional */
    ck_assert_int_eq(dec("Zm9vYg", 10, &out, &len), KD_B64_OK);
    ck_assert_uint_eq(len, 4);
}
END_TEST

START_TEST(rejects_bad_input)
{
    unsigned char *out;
    size_t len;

    ck_assert_int_eq(dec("Zm9v YmFy", 10, &out, &len), KD_B64_INVALID);
    ck_assert_int_eq(dec("Zm9v\nYmFy", 10, &out, &len), KD_B64_INVALID);
    ck_assert_int_eq(dec("Zm9v-_", 10, &out, &len), KD_B64_INVALID);   /* url-safe alphabet */
    ck_assert_int_eq(dec("Zm=vYmFy", 10, &out, &len), KD_B64_INVALID); /* '=' inside */
    ck_assert_int_eq(dec("Zm9vY===", 10, &out, &len), KD_B64_INVALID); /* three pads */
    ck_assert_int_eq(dec("Zm9vY", 10, &out, &len), KD_B64_INVALID);    /* 6 dangling bits */
    ck_assert_int_eq(dec("Zm8==", 10, &out, &len), KD_B64_INVALID);    /* pad, bad length */
    ck_assert_int_eq(dec("====", 10, &out, &len), KD_B64_INVALID);
    ck_assert_int_eq(dec("", 10, &out, &len), KD_B64_EMPTY);
    ck_assert_ptr_null(out);
}
END_TEST

/* Every byte outside the alphabet, in each position of a whole quantum and
 * of an unpadded tail, is refused (the decoder reads quanta by table). */
START_TEST(rejects_every_foreign_byte_everywhere)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char *out;
    size_t len, pos;
    unsigned b;

    for (b = 1; b < 256; b++) {
        char in[8];
        if (memchr(alphabet, (int)b, sizeof(alphabet) - 1) || b == '=')
            continue;
        for (pos = 0; pos < 7; pos++) {
            memcpy(in, "QUJDRUZ", 7); /* a quantum and a 3-character tail */
            in[pos] = (char)b;
            ck_assert_int_eq(kd_b64_decode(kd_test_pool, in, 7, 64, &out, &len), KD_B64_INVALID);
            ck_assert_ptr_null(out);
        }
    }
    ck_assert_int_eq(kd_b64_decode(kd_test_pool, "QU\0JD", 5, 64, &out, &len), KD_B64_INVALID);
    ck_assert_int_eq(dec("QUJDRUZ", 64, &out, &len), KD_B64_OK);
    ck_assert_mem_eq(out, "ABCEF", 5);
}
END_TEST

START_TEST(enforces_limit_before_allocating)
{
    unsigned char *out;
    size_t len;

    ck_assert_int_eq(dec("Zm9vYmFy", 6, &out, &len), KD_B64_OK);
    ck_assert_int_eq(dec("Zm9vYmFy", 5, &out, &len), KD_B64_TOO_LONG);
    ck_assert_int_eq(dec("Zm9vYmE", 5, &out, &len), KD_B64_OK);
    {
        size_t n = 200000;
        char *big = apr_palloc(kd_test_pool, n + 1);
        memset(big, 'A', n);
        big[n] = '\0';
        ck_assert_int_eq(dec(big, 65535, &out, &len), KD_B64_TOO_LONG);
    }
}
END_TEST

Suite *kd_base64_suite(void)
{
    Suite *s = suite_create("kd_base64");
    TCase *tc = tcase_create("base64");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, roundtrip_all_lengths);
    tcase_add_test(tc, known_vectors);
    tcase_add_test(tc, rejects_bad_input);
    tcase_add_test(tc, rejects_every_foreign_byte_everywhere);
    tcase_add_test(tc, enforces_limit_before_allocating);
    suite_add_tcase(s, tc);
    return s;
}
