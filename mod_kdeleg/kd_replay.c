#include "kd_replay.h"

#include <pthread.h>
#include <string.h>
#include <krb5.h>
#include <openssl/evp.h>
#include <profile.h>
#include <openssl/sha.h>

#define SLOTS_PER_BUCKET 16
#define MAGIC 0x6b647270u /* "kdrp" */

#define TAG_WORDS (KD_REPLAY_TAG_BYTES / 4)

/* Every field is read and written with atomics, so a lookup may run
 * without the lock (kd_replay_lookup): a slot is written only under the
 * lock and only once expired, its tag first and its expiry last. */
typedef struct {
    uint32_t tag[TAG_WORDS];
    uint32_t expires; /* unix seconds; 0 = never used */
} slot;

typedef struct {
    uint32_t magic;
    uint32_t buckets;
} header;

size_t kd_replay_bytes_for(size_t slots)
{
    size_t buckets = (slots + SLOTS_PER_BUCKET - 1) / SLOTS_PER_BUCKET;

    return sizeof(header) + buckets * SLOTS_PER_BUCKET * sizeof(slot);
}

size_t kd_replay_slots_in(size_t bytes)
{
    if (bytes < sizeof(header) + SLOTS_PER_BUCKET * sizeof(slot))
        return 0;
    return (bytes - sizeof(header)) / (SLOTS_PER_BUCKET * sizeof(slot)) * SLOTS_PER_BUCKET;
}

void kd_replay_init(void *mem, size_t bytes)
{
    header *h = mem;
    size_t slots = kd_replay_slots_in(bytes);

    memset(mem, 0, sizeof(header) + slots * sizeof(slot));
    h->buckets = (uint32_t)(slots / SLOTS_PER_BUCKET);
    h->magic = MAGIC;
}

/* SHA-256 fetched from the provider once per process: SHA256() fetches
 * it (under a lock) on every call. */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void kd_replay_tag(const unsigned char *authenticator, size_t len,
                   unsigned char tag[KD_REPLAY_TAG_BYTES])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];

    pthread_once(&sha256_once, fetch_sha256);
    if (sha256 == NULL || EVP_Digest(authenticator, len, digest, NULL, sha256, NULL) != 1)
        SHA256(authenticator, len, digest);
    memcpy(tag, digest, KD_REPLAY_TAG_BYTES);
}

/* Each tag has two candidate buckets (from two independent parts of the
 * hash) and goes into the emptier one: the table then fills to about 88 %
 * before any bucket overflows, against about 25 % with one choice. */
static slot *bucket_at(const void *mem, const unsigned char *tag, int which)
{
    const header *h = mem;
    uint32_t index;

    memcpy(&index, tag + (which ? 4 : 0), sizeof(index)); /* the tag is a hash */
    return (slot *)((char *)mem + sizeof(header)) + (size_t)(index % h->buckets) * SLOTS_PER_BUCKET;
}

static int holds(const slot *b, const uint32_t *w, uint32_t now)
{
    int i, k;

    for (i = 0; i < SLOTS_PER_BUCKET; i++) {
        if (__atomic_load_n(&b[i].expires, __ATOMIC_ACQUIRE) <= now)
            continue;
        for (k = 0; k < TAG_WORDS && __atomic_load_n(&b[i].tag[k], __ATOMIC_RELAXED) == w[k];
             k++)
            ;
        if (k == TAG_WORDS)
            return 1;
    }
    return 0;
}

static slot *free_slot(slot *b, uint32_t now, int *used)
{
    slot *found = NULL;
    int i;

    *used = 0;
    for (i = 0; i < SLOTS_PER_BUCKET; i++) {
        if (__atomic_load_n(&b[i].expires, __ATOMIC_RELAXED) > now)
            (*used)++;
        else if (found == NULL)
            found = &b[i];
    }
    return found;
}

/* Without the lock: a concurrent claim can at worst make a tag being
 * written now look absent, and the claim under the lock decides. */
kd_replay_result kd_replay_lookup(const void *mem, const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                  uint32_t now)
{
    uint32_t w[TAG_WORDS];

    memcpy(w, tag, sizeof(w));
    return holds(bucket_at(mem, tag, 0), w, now) || holds(bucket_at(mem, tag, 1), w, now)
               ? KD_REPLAY_SEEN : KD_REPLAY_FRESH;
}

kd_replay_result kd_replay_claim(void *mem, const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                 uint32_t now, uint32_t lifetime)
{
    slot *a = bucket_at(mem, tag, 0), *b = bucket_at(mem, tag, 1), *fa, *fb, *target;
    uint32_t w[TAG_WORDS];
    int used_a, used_b, k;

    memcpy(w, tag, sizeof(w));
    if (holds(a, w, now) || holds(b, w, now))
        return KD_REPLAY_SEEN;
    fa = free_slot(a, now, &used_a);
    fb = free_slot(b, now, &used_b);
    target = fa && (!fb || used_a <= used_b) ? fa : fb; /* the emptier bucket */
    if (target == NULL)
        return KD_REPLAY_FULL;
    /* Expired (or never used): no lookup matches it while it changes. */
    __atomic_store_n(&target->expires, 0, __ATOMIC_RELAXED);
    for (k = 0; k < TAG_WORDS; k++)
        __atomic_store_n(&target->tag[k], w[k], __ATOMIC_RELAXED);
    __atomic_store_n(&target->expires, now + lifetime, __ATOMIC_RELEASE);
    return KD_REPLAY_FRESH;
}

uint32_t kd_replay_lifetime(void)
{
    krb5_context ctx;
    profile_t profile;
    int skew = 300;

    if (krb5_init_context(&ctx) == 0) {
        if (krb5_get_profile(ctx, &profile) == 0) {
            profile_get_integer(profile, "libdefaults", "clockskew", NULL, 300, &skew);
            profile_release(profile);
        }
        krb5_free_context(ctx);
    }
    return (uint32_t)(2 * (skew > 0 ? skew : 300) + 60);
}
