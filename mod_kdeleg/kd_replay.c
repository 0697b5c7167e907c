#include "kd_replay.h"

#include <string.h>
#include <krb5.h>
#include <profile.h>
#include <openssl/sha.h>

#define SLOTS_PER_BUCKET 16
#define MAGIC 0x6b647270u /* "kdrp" */

typedef struct {
    unsigned char tag[KD_REPLAY_TAG_BYTES];
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

void kd_replay_tag(const unsigned char *authenticator, size_t len,
                   unsigned char tag[KD_REPLAY_TAG_BYTES])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];

    SHA256(authenticator, len, digest);
    memcpy(tag, digest, KD_REPLAY_TAG_BYTES);
}

static slot *bucket_of(const void *mem, const unsigned char *tag)
{
    const header *h = mem;
    uint32_t index;

    memcpy(&index, tag, sizeof(index)); /* the tag is a hash: any bytes index well */
    return (slot *)((char *)mem + sizeof(header)) + (size_t)(index % h->buckets) * SLOTS_PER_BUCKET;
}

kd_replay_result kd_replay_lookup(const void *mem, const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                  uint32_t now)
{
    const slot *b = bucket_of(mem, tag);
    int i;

    for (i = 0; i < SLOTS_PER_BUCKET; i++) {
        if (b[i].expires > now && memcmp(b[i].tag, tag, KD_REPLAY_TAG_BYTES) == 0)
            return KD_REPLAY_SEEN;
    }
    return KD_REPLAY_FRESH;
}

kd_replay_result kd_replay_claim(void *mem, const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                 uint32_t now, uint32_t lifetime)
{
    slot *b = bucket_of(mem, tag), *free_slot = NULL;
    int i;

    for (i = 0; i < SLOTS_PER_BUCKET; i++) {
        if (b[i].expires > now) {
            if (memcmp(b[i].tag, tag, KD_REPLAY_TAG_BYTES) == 0)
                return KD_REPLAY_SEEN;
        }
        else if (free_slot == NULL)
            free_slot = &b[i];
    }
    if (free_slot == NULL)
        return KD_REPLAY_FULL;
    memcpy(free_slot->tag, tag, KD_REPLAY_TAG_BYTES);
    free_slot->expires = now + lifetime;
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
