/* kd_selftest: the walk an administrator does by hand with setspn, the
 * delegation tab and w32tm, done against the KDC by the service itself:
 * its own TGT from the keytab (and the clock offset to the KDC), a ticket
 * for each configured SPN checked against the keytab (kvno, enctype, and
 * that the keytab's key really opens it: the duplicate-SPN check),
 * S4U2Self for a test user and S4U2Proxy to each delegation target. Each
 * step reports a cause from the catalogue. Uses a private MEMORY ccache;
 * nothing is written to disk. */
#ifndef KD_SELFTEST_H
#define KD_SELFTEST_H

#include <apr_pools.h>
#include <apr_tables.h>

#include "kd_accept.h"
#include "kd_causes.h"

typedef struct {
    const char *step;    /* "credentials", "spn", "s4u2self", "s4u2proxy", "clock" */
    const char *subject; /* the principal or target the step is about */
    kd_cause cause;      /* KD_CAUSE_NONE when it worked */
    const char *detail;  /* what was found (kvno, enctype, offset, error text) */
    int skipped;         /* not run (no test user, no evidence) */
} kd_selftest_step;

typedef struct {
    kd_acceptor *acceptor;           /* the keytab's acceptor (impersonator credentials) */
    const char *keytab;
    const char *service;             /* SPN to act for (first configured SPN) */
    const char *account;             /* KdelegServiceAccount for it, or NULL (the keytab's
                                        account entry, else the SPN: as requests do) */
    const char *const *spns;         /* configured SPNs to check */
    int n_spns;
    const char *test_user;           /* for S4U2Self/S4U2Proxy; NULL skips them */
    const char *const *targets;      /* delegation targets */
    int n_targets;
    int max_clock_offset;            /* seconds; beyond this the clock step fails */
} kd_selftest_params;

/* Runs the steps in order; returns kd_selftest_step records. */
apr_array_header_t *kd_selftest_run(apr_pool_t *p, const kd_selftest_params *params);

#endif
