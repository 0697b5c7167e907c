#include "kd_result.h"

#include <apr_strings.h>

void kd_result_init(kd_result *res)
{
    res->cause = KD_CAUSE_NONE;
    res->op = NULL;
    res->detail = NULL;
    res->gss_major = 0;
    res->krb5_code = 0;
    res->when = 0;
}

kd_cause kd_result_fail(kd_result *res, apr_pool_t *p, kd_cause cause, const char *op,
                        const char *fmt, ...)
{
    va_list ap;

    res->cause = cause;
    res->op = op;
    res->when = apr_time_now();
    va_start(ap, fmt);
    res->detail = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
    return cause;
}

int kd_result_ok(const kd_result *res)
{
    return res->cause == KD_CAUSE_NONE;
}
