/* kd_ticket_cache: delegated service tickets shared by all children of a
 * node, so the KDC sees one S4U2Proxy request per (user, impersonator,
 * target) per ticket lifetime. Storage is the glue's (an Apache socache,
 * reached through callbacks); what is stored is sealed here: the slot id
 * is an HMAC of (user, impersonator, target) and the value is the
 * marshalled ticket sealed with AES-256-GCM bound to that slot, so neither
 * names nor tickets are readable in the store and entries cannot be
 * swapped between users. */
#ifndef KD_TICKET_CACHE_H
#define KD_TICKET_CACHE_H

#include <apr_pools.h>
#include <apr_time.h>
#include <krb5.h>

#include "kd_seal.h"

/* Entries are dropped this long before the ticket expires: a request must
 * never start with a ticket about to lapse. */
#define KD_TICKET_MARGIN_SEC 60

typedef struct {
    void *baton;
    /* 1 and a pool-allocated value when found, else 0 */
    int (*get)(void *baton, apr_pool_t *p, const unsigned char *id, unsigned id_len,
               unsigned char **value, unsigned *value_len);
    void (*put)(void *baton, apr_pool_t *p, const unsigned char *id, unsigned id_len,
                apr_time_t expiry, const unsigned char *value, unsigned value_len);
} kd_store;

typedef struct kd_ticket_cache kd_ticket_cache;

/* keys[0] seals what is written; every key opens what is read, so the
 * nodes of a farm keep sharing entries while a new key file is rolled out
 * (the keys of KdelegCacheKeyFile, newest first). n_keys >= 1. */
#define KD_TICKET_CACHE_KEYS_MAX 8
kd_ticket_cache *kd_ticket_cache_create(apr_pool_t *p,
                                        const unsigned char (*keys)[KD_SEAL_KEY_BYTES],
                                        int n_keys, kd_store store);

/* The longest an entry is used, counted from the ticket's start, however
 * long the ticket itself lives: delegation rights removed at the KDC take
 * effect within it. 0: the ticket's own lifetime. */
void kd_ticket_cache_set_max_lifetime(kd_ticket_cache *c, int seconds);

/* When a ticket stops being used (unix seconds): the margin before its end,
 * or the cache's maximum from its start if that comes first. The same
 * bound for the process's ready credentials as for the cache. c may be
 * NULL (no maximum). */
krb5_timestamp kd_ticket_cache_usable_until(const kd_ticket_cache *c, const krb5_creds *creds);

/* A cached ticket for target valid for at least the margin: 1 and *creds
 * (free with krb5_free_creds), else 0. Here and in put, c may be NULL (no
 * cache configured): nothing is found and nothing is stored. */
int kd_ticket_cache_get(kd_ticket_cache *c, apr_pool_t *p, krb5_context ctx, const char *user,
                        const char *impersonator, const char *target, krb5_creds **creds);

/* Remember a freshly obtained ticket (ignored when it is about to expire). */
void kd_ticket_cache_put(kd_ticket_cache *c, apr_pool_t *p, krb5_context ctx, const char *user,
                         const char *impersonator, const char *target, krb5_creds *creds);

/* Node-wide facts worth sharing between children, by name, for lifetime
 * seconds (e.g. "this impersonator has had forwardable S4U2Self tickets"). */
void kd_ticket_cache_note(kd_ticket_cache *c, apr_pool_t *p, const char *fact, int lifetime);
int kd_ticket_cache_noted(kd_ticket_cache *c, apr_pool_t *p, const char *fact);

/* Lookups answered and missed by this process (statistics). */
void kd_ticket_cache_stats(const kd_ticket_cache *c, unsigned long *hits, unsigned long *misses);

#endif
