#include "kd_unit.h"

#include <string.h>

#include "kd_apreq.h"

/* An RFC 4121 4.1.1 checksum: Lgth 16, Bnd, Flags, then extra bytes. */
static size_t checksum(unsigned char *b, const unsigned char *bnd, uint32_t flags,
                       const unsigned char *extra, size_t extra_len)
{
    memset(b, 0, 24);
    b[0] = 16;
    if (bnd)
        memcpy(b + 4, bnd, 16);
    b[20] = (unsigned char)flags;
    b[21] = (unsigned char)(flags >> 8);
    b[22] = (unsigned char)(flags >> 16);
    b[23] = (unsigned char)(flags >> 24);
    if (extra_len)
        memcpy(b + 24, extra, extra_len);
    return 24 + extra_len;
}

static const unsigned char ours[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const unsigned char theirs[16] = {16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};

START_TEST(flags_are_read)
{
    unsigned char b[64];
    unsigned flags;
    int bound;
    size_t n = checksum(b, NULL, KD_GSS_MUTUAL_FLAG | KD_GSS_INTEG_FLAG | 0x80000u, NULL, 0);

    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, NULL, &flags, &bound), 0);
    /* only what an initiator may ask for */
    ck_assert_uint_eq(flags, KD_GSS_MUTUAL_FLAG | KD_GSS_INTEG_FLAG);
    ck_assert_int_eq(bound, 0);
}
END_TEST

START_TEST(bindings_match_differ_or_are_absent)
{
    unsigned char b[64];
    unsigned flags;
    int bound;
    size_t n;

    n = checksum(b, ours, KD_GSS_MUTUAL_FLAG, NULL, 0);
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, ours, &flags, &bound), 0);
    ck_assert_int_eq(bound, 1);
    n = checksum(b, theirs, KD_GSS_MUTUAL_FLAG, NULL, 0);
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, ours, &flags, &bound), -2);
    /* an unbound token (all zero): accepted, not bound */
    n = checksum(b, NULL, KD_GSS_MUTUAL_FLAG, NULL, 0);
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, ours, &flags, &bound), 0);
    ck_assert_int_eq(bound, 0);
    /* bindings in the token, none here: as MIT, not checked, not bound */
    n = checksum(b, theirs, 0, NULL, 0);
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, NULL, &flags, &bound), 0);
    ck_assert_int_eq(bound, 0);
}
END_TEST

START_TEST(malformed_checksums_are_refused)
{
    unsigned char b[64];
    unsigned flags;
    int bound;
    size_t n = checksum(b, NULL, 0, NULL, 0);

    ck_assert_int_eq(kd_apreq_gss_checksum(b, 23, NULL, &flags, &bound), -1);
    b[0] = 15; /* Lgth must be 16 */
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, NULL, &flags, &bound), -1);
    n = checksum(b, NULL, KD_GSS_DCE_STYLE, NULL, 0);
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, NULL, &flags, &bound), -1);
}
END_TEST

START_TEST(delegation_and_extensions_are_skipped)
{
    static const unsigned char deleg[] = {1, 0, 3, 0, 0xaa, 0xbb, 0xcc};
    static const unsigned char deleg_ext[] = {1, 0, 1, 0, 0xaa, 0, 0, 0, 9, 0, 0, 0, 2, 7, 7};
    static const unsigned char deleg_short[] = {1, 0, 9, 0, 0xaa};
    static const unsigned char wrong_option[] = {2, 0, 1, 0, 0xaa};
    static const unsigned char ext_short[] = {0, 0, 0, 9, 0, 0, 0, 5, 1};
    unsigned char b[64];
    unsigned flags;
    int bound;
    size_t n;

    n = checksum(b, NULL, KD_GSS_DELEG_FLAG | KD_GSS_MUTUAL_FLAG, deleg, sizeof(deleg));
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, NULL, &flags, &bound), 0);
    ck_assert_uint_eq(flags, KD_GSS_DELEG_FLAG | KD_GSS_MUTUAL_FLAG);
    n = checksum(b, NULL, KD_GSS_DELEG_FLAG, deleg_ext, sizeof(deleg_ext));
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, NULL, &flags, &bound), 0);
    n = checksum(b, NULL, KD_GSS_DELEG_FLAG, deleg_short, sizeof(deleg_short));
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, NULL, &flags, &bound), -1);
    n = checksum(b, NULL, KD_GSS_DELEG_FLAG, wrong_option, sizeof(wrong_option));
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, NULL, &flags, &bound), -1);
    /* without the flag, the same bytes are a (short) extension */
    n = checksum(b, NULL, 0, ext_short, sizeof(ext_short));
    ck_assert_int_eq(kd_apreq_gss_checksum(b, n, NULL, &flags, &bound), -1);
}
END_TEST

START_TEST(truncations_never_read_outside)
{
    static const unsigned char deleg_ext[] = {1, 0, 1, 0, 0xaa, 0, 0, 0, 9, 0, 0, 0, 2, 7, 7};
    unsigned char b[64];
    unsigned flags;
    int bound;
    size_t n = checksum(b, ours, KD_GSS_DELEG_FLAG, deleg_ext, sizeof(deleg_ext)), i;

    for (i = 0; i < n; i++) {
        /* each prefix is checked in a buffer of exactly its size (ASan) */
        unsigned char *copy = malloc(i ? i : 1);
        memcpy(copy, b, i);
        ck_assert_int_le(kd_apreq_gss_checksum(copy, i, ours, &flags, &bound), 0);
        free(copy);
    }
}
END_TEST

Suite *kd_apreq_suite(void)
{
    Suite *s = suite_create("kd_apreq");
    TCase *tc = tcase_create("apreq");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, flags_are_read);
    tcase_add_test(tc, bindings_match_differ_or_are_absent);
    tcase_add_test(tc, malformed_checksums_are_refused);
    tcase_add_test(tc, delegation_and_extensions_are_skipped);
    tcase_add_test(tc, truncations_never_read_outside);
    suite_add_tcase(s, tc);
    return s;
}
