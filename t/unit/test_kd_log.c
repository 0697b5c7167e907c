#include "kd_unit.h"

#include <stdio.h>
#include <string.h>
#include "kd_log.h"

static char last_line[256];
static kd_log_level last_level;
static int calls;

static void capture(void *baton, kd_log_level level, const char *fmt, va_list ap)
{
    ck_assert_ptr_eq(baton, &calls);
    vsnprintf(last_line, sizeof(last_line), fmt, ap);
    last_level = level;
    calls++;
}

START_TEST(callback_gets_formatted_line)
{
    calls = 0;
    kd_log_set_callback(capture, &calls);
    kd_log(KD_LOG_WARN, "keytab %s changed (%d)", "/k", 7);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(last_level, KD_LOG_WARN);
    ck_assert_str_eq(last_line, "keytab /k changed (7)");
    kd_log_set_callback(NULL, NULL);
    kd_log(KD_LOG_ERR, "dropped");
    ck_assert_int_eq(calls, 1);
}
END_TEST

Suite *kd_log_suite(void)
{
    Suite *s = suite_create("kd_log");
    TCase *tc = tcase_create("log");

    tcase_add_test(tc, callback_gets_formatted_line);
    suite_add_tcase(s, tc);
    return s;
}
