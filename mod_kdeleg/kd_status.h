/* kd_status: the status page's model and its machine formats. The glue
 * fills one kd_status per request (versions as ServerTokens allows them,
 * the virtual hosts and their keytabs, a copy of the shared statistics,
 * the caller's request, self-test results); kd_status_json and
 * kd_status_prometheus write it out, and kd_status_auto gives the counters
 * as mod_status's ?auto lines. The HTML stays in the glue. The model holds
 * names, numbers and cause names only: never a key, ticket, token or
 * cookie. Every string a client or a keytab can influence is escaped
 * here (kd_escape). */
#ifndef KD_STATUS_H
#define KD_STATUS_H

#include <apr_pools.h>
#include <apr_tables.h>

#include "kd_causes.h"
#include "kd_keytab.h"
#include "kd_selftest.h"
#include "kd_stats.h"

/* One configured SPN of a virtual host, and whose key serves it. */
typedef struct {
    const char *spn;        /* as configured */
    int kvno;               /* highest in the keytab, -1 = missing */
    int host_alias;         /* served by host/<host>'s key (AD's HTTP-to-HOST mapping) */
    const char *key_owner;  /* the account entry holding that key, or NULL */
    const char *tgt_as;     /* who the front end's TGT is taken as for this SPN */
} kd_status_spn;

typedef struct {
    const char *name;              /* ServerName, or "(unnamed)" */
    int main_server;               /* 1: the main server, not a <VirtualHost> */
    apr_array_header_t *names;     /* const char *: ServerName, aliases, virtual names */
    const char *keytab;
    const char *keytab_error;      /* NULL when it could be read */
    apr_array_header_t *entries;   /* kd_keytab_entry; NULL when unreadable */
    apr_array_header_t *spns;      /* kd_status_spn */
    const apr_array_header_t *targets; /* const char *: delegation targets */
    int virtual_names;             /* KdelegVirtualName set */
    int fqdn_redirect;             /* KdelegFQDNRedirect On */
    int sessions;                  /* KdelegSession On */
} kd_status_vhost;

/* What the caller sent (the "you" section); NULL fields show as null. */
typedef struct {
    const char *host;    /* Host header */
    const char *scheme;  /* Authorization scheme, or "none" */
    const char *token;   /* "kerberos", "ntlm", "malformed", "none" */
    const char *user;    /* when this location authenticated the caller */
    const char *method;
} kd_status_caller;

/* The self-test's walk for one virtual host. */
typedef struct {
    const char *vhost;
    apr_array_header_t *steps;     /* kd_selftest_step */
} kd_status_selftest;

typedef struct {
    /* NULL below ServerTokens Full: the glue decides, the formats follow. */
    const char *version;           /* the module's */
    const char *krb5;
    const char *openssl;
    const char *httpd;             /* httpd's banner, as its Server header shows it */
    const char *mpm;               /* a name, no version */
    apr_array_header_t *vhosts;    /* kd_status_vhost */
    unsigned long counters[KD_STAT__COUNT];
    unsigned long failures[KD_CAUSE__COUNT];
    kd_failure_record recent[KD_STATS_RECENT]; /* newest first */
    int n_recent;
    kd_target_record targets[KD_STATS_TARGETS];
    int n_targets;
    kd_status_caller you;
    apr_array_header_t *selftest;  /* kd_status_selftest; NULL when not asked for */
} kd_status;

/* An empty model: no versions, no virtual hosts, counters at zero. */
kd_status *kd_status_make(apr_pool_t *p);

/* A new virtual host at the end of the model, its arrays empty. */
kd_status_vhost *kd_status_add_vhost(kd_status *m, const char *name);

/* Append name to a list of names unless it is empty or there already
 * (ignoring case). */
void kd_status_add_name(apr_array_header_t *names, const char *name);

/* Copy the counters, failures, recent failures and targets of the shared
 * statistics (NULL: all zero). */
void kd_status_take_stats(kd_status *m, const kd_stats *st);

/* Questions the renderers ask of the model. */
int kd_status_missing(const kd_status_vhost *v);  /* configured SPNs without a key */
const kd_target_record *kd_status_target(const kd_status *m, const char *target);
int kd_status_vhost_failures(const kd_status *m, const kd_status_vhost *v);
/* "2026-11-22T02:53:58Z", or NULL for t <= 0 (never). */
const char *kd_status_time(apr_pool_t *p, long long t);

/* The page as JSON and as Prometheus text (exposition format 0.0.4). */
char *kd_status_json(const kd_status *m, apr_pool_t *p);
char *kd_status_prometheus(const kd_status *m, apr_pool_t *p);

/* mod_status's /server-status?auto: one "Name: value" line per counter
 * (KdelegAuthenticated, ...). Counters only, never a name. */
const char *kd_status_auto_name(kd_stat s);
char *kd_status_auto(const kd_status *m, apr_pool_t *p);

#endif
