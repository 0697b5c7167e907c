#include "kd_log.h"

#include <stddef.h>

static kd_log_fn *log_callback;
static void *log_baton;

void kd_log_set_callback(kd_log_fn *fn, void *baton)
{
    log_callback = fn;
    log_baton = baton;
}

void kd_log(kd_log_level level, const char *fmt, ...)
{
    va_list ap;

    if (log_callback == NULL)
        return;
    va_start(ap, fmt);
    log_callback(log_baton, level, fmt, ap);
    va_end(ap);
}
