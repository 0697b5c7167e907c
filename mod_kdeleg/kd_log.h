/* kd_log: the core's only way to log. The httpd glue installs a callback
 * (turning lines into ap_log_error); unit tests install their own or none.
 * The callback is set once at start-up, before threads exist, and read-only
 * afterwards, so no locking is needed. */
#ifndef KD_LOG_H
#define KD_LOG_H

#include <stdarg.h>

typedef enum {
    KD_LOG_ERR = 3,
    KD_LOG_WARN = 4,
    KD_LOG_NOTICE = 5,
    KD_LOG_INFO = 6,
    KD_LOG_DEBUG = 7,
} kd_log_level;

typedef void kd_log_fn(void *baton, kd_log_level level, const char *fmt, va_list ap);

void kd_log_set_callback(kd_log_fn *fn, void *baton);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void kd_log(kd_log_level level, const char *fmt, ...);

#endif
