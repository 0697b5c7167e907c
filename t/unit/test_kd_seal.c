#include "kd_unit.h"

#include <string.h>
#include "kd_seal.h"

static const unsigned char KEY[KD_SEAL_KEY_BYTES] = "0123456789abcdef0123456789abcde";
static const unsigned char AAD[] = "slot-1";

static int open_blob(const unsigned char *key, const unsigned char *aad, size_t aad_len,
                     const unsigned char *blob, size_t len)
{
    unsigned char *out;
    size_t out_len;

    return kd_open(kd_test_pool, key, aad, aad_len, blob, len, &out, &out_len);
}

START_TEST(round_trip)
{
    unsigned char *blob, *plain;
    size_t blob_len, plain_len;
    const char msg[] = "service ticket bytes";

    ck_assert_int_eq(kd_seal(kd_test_pool, KEY, AAD, sizeof(AAD), (const unsigned char *)msg,
                             sizeof(msg), &blob, &blob_len), 0);
    ck_assert_uint_eq(blob_len, sizeof(msg) + KD_SEAL_OVERHEAD);
    ck_assert_ptr_null(memmem(blob, blob_len, "ticket", 6)); /* not in clear */
    ck_assert_int_eq(kd_open(kd_test_pool, KEY, AAD, sizeof(AAD), blob, blob_len, &plain,
                             &plain_len), 0);
    ck_assert_uint_eq(plain_len, sizeof(msg));
    ck_assert_mem_eq(plain, msg, sizeof(msg));
}
END_TEST

START_TEST(every_tampering_is_refused)
{
    unsigned char *blob, other_key[KD_SEAL_KEY_BYTES];
    size_t blob_len, i;

    ck_assert_int_eq(kd_seal(kd_test_pool, KEY, AAD, sizeof(AAD), (const unsigned char *)"x", 1,
                             &blob, &blob_len), 0);
    for (i = 0; i < blob_len; i++) {
        blob[i] ^= 0x01;
        ck_assert_msg(open_blob(KEY, AAD, sizeof(AAD), blob, blob_len) != 0, "byte %zu", i);
        blob[i] ^= 0x01;
    }
    for (i = 0; i < blob_len; i++)
        ck_assert(open_blob(KEY, AAD, sizeof(AAD), blob, i) != 0); /* truncated */
    ck_assert(open_blob(KEY, (const unsigned char *)"slot-2", 7, blob, blob_len) != 0);
    memcpy(other_key, KEY, sizeof(other_key));
    other_key[0] ^= 1;
    ck_assert(open_blob(other_key, AAD, sizeof(AAD), blob, blob_len) != 0);
    ck_assert(open_blob(KEY, AAD, sizeof(AAD), blob, blob_len) == 0);
}
END_TEST

START_TEST(nonces_differ)
{
    unsigned char *a, *b;
    size_t a_len, b_len;

    kd_seal(kd_test_pool, KEY, AAD, sizeof(AAD), (const unsigned char *)"same", 4, &a, &a_len);
    kd_seal(kd_test_pool, KEY, AAD, sizeof(AAD), (const unsigned char *)"same", 4, &b, &b_len);
    ck_assert(memcmp(a, b, a_len) != 0);
}
END_TEST

Suite *kd_seal_suite(void)
{
    Suite *s = suite_create("kd_seal");
    TCase *tc = tcase_create("seal");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, every_tampering_is_refused);
    tcase_add_test(tc, nonces_differ);
    suite_add_tcase(s, tc);
    return s;
}
