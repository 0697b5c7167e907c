/* kd_stats: what the status page reports for the whole node, kept in
 * memory every child process shares (the glue provides it). Counters are
 * lock-free atomics; recent failures are a ring of fixed-size records,
 * each guarded by a sequence number so a reader never shows a half-written
 * one. Only names, addresses and cause numbers are stored: never a token,
 * ticket, key or cookie. */
#ifndef KD_STATS_H
#define KD_STATS_H

#include <stddef.h>

#include "kd_causes.h"

typedef enum {
    KD_STAT_AUTH_OK = 0,       /* Kerberos exchanges accepted */
    KD_STAT_AUTH_FAILED,       /* failures, every cause but no-token */
    KD_STAT_SESSION_OK,        /* requests authenticated by a session cookie */
    KD_STAT_S4U2SELF_OK,
    KD_STAT_S4U2PROXY_OK,      /* back-end tickets obtained from the KDC */
    KD_STAT_FQDN_REDIRECTS,    /* clients sent to the node name */
    KD_STAT_TICKET_CACHE_HITS, /* delegations served from the node's cache */
    KD_STAT_TICKET_CACHE_MISSES,
    KD_STAT_TRANSFERS_REDEEMED, /* fallback transfer tokens exchanged for a session */
    KD_STAT_SESSION_LOGOUTS,   /* sessions revoked by KdelegSessionLogout */
    KD_STAT_SESSIONS_TOO_LARGE, /* sessions not issued: too many groups for a cookie */
    KD_STAT_HEALTH_OK,         /* kdeleg-health answered 200 */
    KD_STAT_HEALTH_UNAVAILABLE, /* kdeleg-health answered 503 */
    KD_STAT_CHANNEL_BOUND,     /* logins whose token was bound to the TLS channel */
    KD_STAT_CHANNEL_UNBOUND,   /* logins accepted unbound (KdelegChannelBinding allow) */
    KD_STAT__COUNT
} kd_stat;

#define KD_STATS_RECENT 32   /* recent failures kept */
#define KD_STATS_TARGETS 32  /* delegation targets tracked */
#define KD_STATS_NAME 128    /* longest vhost, client, SPN or target kept */

typedef struct kd_stats kd_stats;

typedef struct {
    long long time;                 /* seconds since the epoch */
    kd_cause cause;
    char vhost[KD_STATS_NAME];
    char client[KD_STATS_NAME];
    char spn[KD_STATS_NAME];        /* principal the ticket was for, or "" */
} kd_failure_record;

typedef struct {
    char target[KD_STATS_NAME];
    long long last_ok;              /* 0: never */
    long long last_failure;         /* 0: never */
    kd_cause last_cause;            /* of the last failure */
    unsigned long ok, failed;
} kd_target_record;

const char *kd_stat_name(kd_stat s);

/* Bytes the shared block needs; kd_stats_init formats mem (zeroed). */
size_t kd_stats_size(void);
kd_stats *kd_stats_init(void *mem, size_t size);
/* The block as another process sees it (NULL when it was never formatted). */
kd_stats *kd_stats_attach(void *mem);

/* All of these accept NULL stats (statistics off) and do nothing. */
void kd_stats_count(kd_stats *st, kd_stat which);
void kd_stats_failure(kd_stats *st, kd_cause cause, long long now, const char *vhost,
                      const char *client, const char *spn);
void kd_stats_target(kd_stats *st, const char *target, kd_cause cause, long long now);

/* At most one caller per interval seconds gets 1 (the self-test's rate
 * limit, node-wide); the others get 0. NULL stats: always 1. */
int kd_stats_take_turn(kd_stats *st, long long now, int interval);

unsigned long kd_stats_get(const kd_stats *st, kd_stat which);
unsigned long kd_stats_failures(const kd_stats *st, kd_cause cause);
/* Up to max records, newest first; returns how many. */
int kd_stats_recent(const kd_stats *st, kd_failure_record *out, int max);
/* The tracked targets; returns how many. */
int kd_stats_targets(const kd_stats *st, kd_target_record *out, int max);

#endif
