#include "kd_unit.h"

#include "kd_der.h"

START_TEST(short_and_long_lengths)
{
    static const unsigned char short_form[] = {0x04, 0x02, 0xaa, 0xbb};
    static const unsigned char long_form[] = {0x30, 0x81, 0x80};
    unsigned char buf[3 + 128] = {0x04, 0x81, 0x80};
    kd_der el;

    ck_assert_int_eq(kd_der_whole(short_form, sizeof(short_form), &el), 0);
    ck_assert_uint_eq(el.tag, 4);
    ck_assert_uint_eq(el.len, 2);
    ck_assert_int_eq(kd_der_whole(buf, sizeof(buf), &el), 0);
    ck_assert_uint_eq(el.len, 128);
    /* length says 128 but nothing follows */
    ck_assert_int_eq(kd_der_whole(long_form, sizeof(long_form), &el), -1);
}
END_TEST

START_TEST(rejects_non_der)
{
    static const unsigned char indefinite[] = {0x30, 0x80, 0x00, 0x00};
    static const unsigned char long_for_short[] = {0x04, 0x81, 0x01, 0xaa};
    static const unsigned char five_byte_len[] = {0x04, 0x85, 0, 0, 0, 0, 1, 0xaa};
    static const unsigned char high_tag[] = {0x1f, 0x81, 0x01, 0x00};
    static const unsigned char trailing[] = {0x04, 0x01, 0xaa, 0x00};
    static const unsigned char huge_len[] = {0x04, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00};
    kd_der el;

    ck_assert_int_eq(kd_der_whole(indefinite, sizeof(indefinite), &el), -1);
    ck_assert_int_eq(kd_der_whole(long_for_short, sizeof(long_for_short), &el), -1);
    ck_assert_int_eq(kd_der_whole(five_byte_len, sizeof(five_byte_len), &el), -1);
    ck_assert_int_eq(kd_der_whole(high_tag, sizeof(high_tag), &el), -1);
    ck_assert_int_eq(kd_der_whole(trailing, sizeof(trailing), &el), -1);
    ck_assert_int_eq(kd_der_whole(huge_len, sizeof(huge_len), &el), -1);
    ck_assert_int_eq(kd_der_whole(trailing, 0, &el), -1);
}
END_TEST

START_TEST(fields_and_integers)
{
    /* SEQUENCE { [0] INTEGER 5, [2] INTEGER -2, [1] INTEGER 0x01020304 } */
    static const unsigned char seq[] = {0x30, 0x12, 0xa0, 0x03, 0x02, 0x01, 0x05,
                                        0xa2, 0x03, 0x02, 0x01, 0xfe,
                                        0xa1, 0x06, 0x02, 0x04, 0x01, 0x02, 0x03, 0x04};
    static const unsigned char too_big[] = {0x02, 0x05, 0x01, 0, 0, 0, 0};
    kd_der s, f;
    int32_t v;

    ck_assert_int_eq(kd_der_whole(seq, sizeof(seq), &s), 0);
    ck_assert_int_eq(kd_der_field(&s, 0, &f), 0);
    ck_assert_int_eq(kd_der_int32(&f, &v), 0);
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(kd_der_field(&s, 2, &f), 0);
    ck_assert_int_eq(kd_der_int32(&f, &v), 0);
    ck_assert_int_eq(v, -2);
    ck_assert_int_eq(kd_der_field(&s, 1, &f), 0);
    ck_assert_int_eq(kd_der_int32(&f, &v), 0);
    ck_assert_int_eq(v, 0x01020304);
    ck_assert_int_eq(kd_der_field(&s, 3, &f), -1);
    ck_assert_int_eq(kd_der_whole(too_big, sizeof(too_big), &f), 0);
    ck_assert_int_eq(kd_der_int32(&f, &v), -1);
}
END_TEST

Suite *kd_der_suite(void)
{
    Suite *s = suite_create("kd_der");
    TCase *tc = tcase_create("der");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, short_and_long_lengths);
    tcase_add_test(tc, rejects_non_der);
    tcase_add_test(tc, fields_and_integers);
    suite_add_tcase(s, tc);
    return s;
}
