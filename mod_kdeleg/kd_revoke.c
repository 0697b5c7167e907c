#include "kd_revoke.h"

#include <string.h>
#include <openssl/sha.h>

#define SLOTS_PER_BUCKET 8
#define MAGIC 0x6b647276u /* "kdrv" */

typedef struct {
    unsigned char key[KD_REVOKE_KEY_BYTES];
    int64_t before_ms; /* sessions issued at or before this are out */
    uint32_t until;    /* unix seconds; 0 = free */
    uint32_t pad;
} slot;

typedef struct {
    uint32_t magic;
    uint32_t buckets;
    uint32_t used;     /* ever written: 0 lets readers skip the lock */
    uint32_t pad;
    int64_t floor_ms;  /* raised by eviction; never lowered */
} header;

size_t kd_revoke_bytes_for(size_t slots)
{
    size_t buckets = (slots + SLOTS_PER_BUCKET - 1) / SLOTS_PER_BUCKET;

    return sizeof(header) + buckets * SLOTS_PER_BUCKET * sizeof(slot);
}

size_t kd_revoke_slots_in(size_t bytes)
{
    if (bytes < sizeof(header) + SLOTS_PER_BUCKET * sizeof(slot))
        return 0;
    return (bytes - sizeof(header)) / (SLOTS_PER_BUCKET * sizeof(slot)) * SLOTS_PER_BUCKET;
}

void kd_revoke_init(void *mem, size_t bytes)
{
    header *h = mem;
    size_t slots = kd_revoke_slots_in(bytes);

    if (bytes < sizeof(header))
        return;
    memset(mem, 0, sizeof(header) + slots * sizeof(slot));
    h->buckets = (uint32_t)(slots / SLOTS_PER_BUCKET);
    h->magic = MAGIC;
}

void kd_revoke_key(const char *principal, unsigned char key[KD_REVOKE_KEY_BYTES])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)principal, strlen(principal), digest);
    memcpy(key, digest, KD_REVOKE_KEY_BYTES);
}

static slot *bucket_of(const void *mem, const unsigned char *key)
{
    const header *h = mem;
    uint32_t index;

    memcpy(&index, key, sizeof(index)); /* the key is a hash */
    return (slot *)((char *)mem + sizeof(header)) + (size_t)(index % h->buckets) * SLOTS_PER_BUCKET;
}

static int usable(const void *mem)
{
    const header *h = mem;

    return h && h->magic == MAGIC && h->buckets > 0;
}

int kd_revoke_add(void *mem, const unsigned char key[KD_REVOKE_KEY_BYTES], long long before_ms,
                  uint32_t until, uint32_t now)
{
    header *h = mem;
    slot *b, *target = NULL, *oldest = NULL;
    int i, evicted = 0;

    if (!usable(mem))
        return -1;
    b = bucket_of(mem, key);
    for (i = 0; i < SLOTS_PER_BUCKET; i++) {
        if (b[i].until > now && memcmp(b[i].key, key, KD_REVOKE_KEY_BYTES) == 0) {
            target = &b[i]; /* the principal's own entry: widen it */
            break;
        }
        if (target == NULL && b[i].until <= now)
            target = &b[i];
        if (oldest == NULL || b[i].before_ms < oldest->before_ms)
            oldest = &b[i];
    }
    if (target && target->until > now && memcmp(target->key, key, KD_REVOKE_KEY_BYTES) == 0) {
        if (before_ms > target->before_ms)
            target->before_ms = before_ms;
        if (until > target->until)
            target->until = until;
        return 0;
    }
    if (target == NULL) {
        /* Full of live entries: forget the oldest, but revoke everything
         * it covered (and whatever else was issued before it). */
        target = oldest;
        if (target->before_ms > h->floor_ms)
            h->floor_ms = target->before_ms;
        evicted = 1;
    }
    memcpy(target->key, key, KD_REVOKE_KEY_BYTES);
    target->before_ms = before_ms;
    target->until = until > now ? until : now + 1;
    /* readers test this without the lock (kd_revoke_empty) */
    __atomic_store_n(&h->used, 1, __ATOMIC_RELEASE);
    return evicted;
}

int kd_revoke_check(const void *mem, const unsigned char key[KD_REVOKE_KEY_BYTES],
                    long long issued_ms, uint32_t now)
{
    const header *h = mem;
    const slot *b;
    int i;

    if (!usable(mem))
        return 0;
    if (issued_ms <= h->floor_ms)
        return 1;
    b = bucket_of(mem, key);
    for (i = 0; i < SLOTS_PER_BUCKET; i++)
        if (b[i].until > now && memcmp(b[i].key, key, KD_REVOKE_KEY_BYTES) == 0)
            return issued_ms <= b[i].before_ms;
    return 0;
}

int kd_revoke_empty(const void *mem)
{
    const header *h = mem;

    return !usable(mem) || __atomic_load_n(&h->used, __ATOMIC_ACQUIRE) == 0;
}

long long kd_revoke_floor(const void *mem)
{
    return usable(mem) ? ((const header *)mem)->floor_ms : 0;
}
