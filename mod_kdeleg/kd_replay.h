/* kd_replay: the replay cache shared by all children of a node, in a
 * fixed-size table in shared memory (the glue provides the memory and a
 * lock). An entry is a 16-byte tag (SHA-256 of the authenticator's
 * ciphertext, as MIT's file2 replay cache keeps) and the time it may be
 * forgotten. Live entries are never evicted: when a bucket has no free
 * slot the caller must refuse the request, because a forgotten
 * authenticator could be replayed. */
#ifndef KD_REPLAY_H
#define KD_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#define KD_REPLAY_TAG_BYTES 16

typedef enum {
    KD_REPLAY_FRESH = 0, /* not seen: recorded now (claim) / absent (lookup) */
    KD_REPLAY_SEEN,      /* seen before and still inside the replay window */
    KD_REPLAY_FULL,      /* no room without forgetting a live entry */
    KD_REPLAY_UNAVAILABLE, /* the table could not be used (its lock failed) */
    KD_REPLAY_SHARED_DOWN, /* the farm's shared store did not confirm the claim */
} kd_replay_result;

/* Bytes needed for a table of at least `slots` entries, and the number of
 * slots a region of `bytes` holds. */
size_t kd_replay_bytes_for(size_t slots);
size_t kd_replay_slots_in(size_t bytes);

/* Initialise a zeroed or reused region as an empty table. */
void kd_replay_init(void *mem, size_t bytes);

/* Seconds an accepted authenticator must be remembered: it stays
 * acceptable while its time is within clockskew (krb5.conf, default 300 s)
 * of ours, so twice that plus a margin. */
uint32_t kd_replay_lifetime(void);

void kd_replay_tag(const unsigned char *authenticator, size_t len,
                   unsigned char tag[KD_REPLAY_TAG_BYTES]);

/* lookup: SEEN or FRESH, without a lock (a tag being claimed at this
 * moment may look FRESH; the claim decides). claim, under the caller's
 * lock: records the tag until now + lifetime, or says SEEN / FULL. */
kd_replay_result kd_replay_lookup(const void *mem, const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                  uint32_t now);
kd_replay_result kd_replay_claim(void *mem, const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                 uint32_t now, uint32_t lifetime);

#endif
