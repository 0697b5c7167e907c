#include "kd_unit.h"

#include "kd_result.h"

START_TEST(init_is_success)
{
    kd_result res;

    kd_result_init(&res);
    ck_assert(kd_result_ok(&res));
    ck_assert_ptr_null(res.detail);
}
END_TEST

START_TEST(fail_records_cause_and_detail)
{
    kd_result res;
    kd_cause c;

    kd_result_init(&res);
    c = kd_result_fail(&res, kd_test_pool, KD_CAUSE_REPLAY, "accept", "seen %d times", 2);
    ck_assert_int_eq(c, KD_CAUSE_REPLAY);
    ck_assert(!kd_result_ok(&res));
    ck_assert_str_eq(res.op, "accept");
    ck_assert_str_eq(res.detail, "seen 2 times");
    ck_assert(res.when > 0);
}
END_TEST

Suite *kd_result_suite(void)
{
    Suite *s = suite_create("kd_result");
    TCase *tc = tcase_create("result");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, init_is_success);
    tcase_add_test(tc, fail_records_cause_and_detail);
    suite_add_tcase(s, tc);
    return s;
}
