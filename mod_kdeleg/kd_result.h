/* kd_result: what a core operation reports instead of logging ad hoc. The
 * glue turns one result into the HTTP status, one log line, a counter and
 * (later) a status-page entry. Details never contain tokens, keys or
 * cookies: they are built from error codes and principal names only. */
#ifndef KD_RESULT_H
#define KD_RESULT_H

#include <apr_pools.h>
#include <apr_time.h>

#include "kd_causes.h"

typedef struct {
    kd_cause cause;          /* KD_CAUSE_NONE on success */
    const char *op;          /* operation that failed, e.g. "accept" */
    const char *detail;      /* human readable, safe to log; may be NULL */
    OM_uint32 gss_major;     /* 0 when not a GSS failure */
    krb5_error_code krb5_code; /* 0 when unknown */
    apr_time_t when;
} kd_result;

void kd_result_init(kd_result *res);

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
/* Record a failure; returns the cause so callers can `return kd_result_fail(...)`. */
kd_cause kd_result_fail(kd_result *res, apr_pool_t *p, kd_cause cause, const char *op,
                        const char *fmt, ...);

int kd_result_ok(const kd_result *res);

#endif
