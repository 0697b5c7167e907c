/* kd_store: what the nodes of a farm say to a shared store (memcached or
 * redis) to claim a key once for the whole farm, and what they read back.
 * The glue (mod_kdeleg_store.c) owns the sockets; this part builds the
 * requests, parses the replies and derives the keys, so it can be unit
 * tested and fuzzed without a server.
 *
 * A claim is atomic in the store, never a read-then-write, because two
 * nodes that both read "absent" would both accept a token a
 * man-in-the-middle raced to them:
 *   memcached: add KEY 0 TTL 1     STORED = ours, NOT_STORED = taken
 *   redis:     SET KEY 1 NX EX TTL +OK = ours, null = taken
 * (SET NX EX is redis's INCR-then-EXPIRE in one command: no window in which
 * a claimed key lives without its expiry.)
 *
 * Keys name nothing in clear: "kdeleg:" KIND ":" hex(HMAC-SHA256(farm key,
 * data)), the farm key derived (HKDF) from KdelegCacheKeyFile, so whoever
 * can write to the store can neither read which tokens were seen nor
 * plant an entry that refuses a token to come. */
#ifndef KD_STORE_H
#define KD_STORE_H

#include <stddef.h>
#include <apr_pools.h>

typedef enum {
    KD_STORE_MEMCACHE = 1,
    KD_STORE_REDIS,
} kd_store_kind;

typedef enum {
    KD_STORE_CLAIMED = 0, /* the key was free: it is ours until it expires */
    KD_STORE_TAKEN,       /* somebody claimed it first */
    KD_STORE_FAILED,      /* the store answered with an error (out of memory, ...) */
    KD_STORE_INCOMPLETE,  /* the reply has not arrived whole yet */
    KD_STORE_FOUND,       /* a get: the value is there */
    KD_STORE_ABSENT,      /* a get: no such key (or it expired) */
} kd_store_answer;

/* The largest value a node writes or reads back: a sealed ticket with a
 * big Active Directory PAC fits. */
#define KD_STORE_VALUE_MAX 65536

#define KD_STORE_MAC_BYTES 16                         /* of the HMAC, in the key */
#define KD_STORE_KEY_MAX (7 + 8 + 1 + 2 * KD_STORE_MAC_BYTES + 1)
#define KD_STORE_REPLY_MAX 512 /* a longer line is not a claim's reply */

/* "memcache:HOST:PORT" or "redis:HOST:PORT" (HOST may be [v6]). NULL on
 * success, else why the spec is wrong. */
const char *kd_store_parse(apr_pool_t *p, const char *spec, kd_store_kind *kind, char **host,
                           int *port);
const char *kd_store_kind_name(kd_store_kind kind);

/* The store key for `data` (a replay tag, a transfer token's id) under a
 * 32-byte derived key; `kind` is a short label (e.g. "r" for replay) so
 * uses never collide. */
void kd_store_key(const unsigned char key[32], const char *kind, const unsigned char *data,
                  size_t len, char out[KD_STORE_KEY_MAX]);

/* The request claiming `key` for `ttl` seconds, appended at buf + *len
 * (cap bytes in all). -1 if it does not fit. */
int kd_store_claim_request(kd_store_kind kind, const char *key, unsigned ttl, char *buf,
                           size_t cap, size_t *len);

/* The reply to one claim at the start of buf (len bytes received so far).
 * *used is how many bytes it took (for the next reply of a pipeline);
 * *detail points into buf at the store's own error line on FAILED (its
 * length in *detail_len). */
kd_store_answer kd_store_claim_reply(kd_store_kind kind, const char *buf, size_t len,
                                     size_t *used, const char **detail, size_t *detail_len);

/* Entries that are written whole and read back (the farm's ticket cache,
 * revocations): a plain set with an expiry, last writer wins (the values
 * are sealed, so a writer without the farm key cannot forge one), and a
 * get. The request is allocated in p. The reply to a set is read with
 * kd_store_claim_reply (CLAIMED means stored). */
int kd_store_set_request(apr_pool_t *p, kd_store_kind kind, const char *key,
                         const unsigned char *value, size_t len, unsigned ttl, char **req,
                         size_t *req_len);
int kd_store_get_request(apr_pool_t *p, kd_store_kind kind, const char *key, char **req,
                         size_t *req_len);
/* The reply to a get at the start of buf: FOUND with *value and *value_len
 * pointing into buf, ABSENT, FAILED (*detail as for a claim), or
 * INCOMPLETE. A value over KD_STORE_VALUE_MAX is FAILED. */
kd_store_answer kd_store_get_reply(kd_store_kind kind, const char *buf, size_t len,
                                   size_t *used, const unsigned char **value,
                                   size_t *value_len, const char **detail, size_t *detail_len);

/* What the store says of its eviction policy, from its reply to the
 * question the glue asks at start-up (memcached "stats settings", redis
 * "CONFIG GET maxmemory-policy"): 1 if it never evicts live entries, 0 if
 * it may, -1 if the reply does not say, -2 if it has not arrived whole.
 * The question itself: */
const char *kd_store_eviction_question(kd_store_kind kind);
int kd_store_never_evicts(kd_store_kind kind, const char *reply, size_t len);

/* HKDF-SHA256 of a 32-byte key under a label ("mod_kdeleg " label). 0 on
 * success. */
int kd_store_derive(const unsigned char ikm[32], const char *label, unsigned char out[32]);

#endif
