/* kd_revoke: revoked sessions, node-wide, in a fixed-size table in shared
 * memory (the glue provides the memory and a lock). A logout revokes by
 * (principal, issued-before): every session of that principal issued at
 * or before the logout no longer opens on this node.
 *
 * The table is bounded. When a principal's bucket is full of live
 * entries, the oldest entry is evicted and its time raises the table's
 * floor: every session issued at or before the floor is refused, whoever
 * it belongs to. Eviction therefore never un-revokes a session; it can
 * only revoke more (those users re-authenticate silently with Kerberos).
 * The floor is per table, buckets are per principal: logging out more
 * principals than a bucket holds, all hashing to one bucket, raises the
 * floor for everyone. That costs re-authentication, never a revoked
 * session back, and the glue logs it as a warning. */
#ifndef KD_REVOKE_H
#define KD_REVOKE_H

#include <stddef.h>
#include <stdint.h>

#define KD_REVOKE_KEY_BYTES 16

size_t kd_revoke_bytes_for(size_t slots);
size_t kd_revoke_slots_in(size_t bytes);
void kd_revoke_init(void *mem, size_t bytes);

/* The table key of a principal (SHA-256, truncated). */
void kd_revoke_key(const char *principal, unsigned char key[KD_REVOKE_KEY_BYTES]);

/* Under the caller's lock. Sessions of key issued at or before before_ms
 * are revoked; the entry is kept until `until` (seconds: when the longest
 * session it covers expires). Returns 1 when an entry had to be evicted
 * and the floor rose (the caller logs it), 0 when the entry went in, -1
 * when mem is not a table (nothing was revoked). */
int kd_revoke_add(void *mem, const unsigned char key[KD_REVOKE_KEY_BYTES], long long before_ms,
                  uint32_t until, uint32_t now);

/* Under the caller's lock: 1 when a session of key issued at issued_ms is
 * revoked (by its own entry, or by the floor). */
int kd_revoke_check(const void *mem, const unsigned char key[KD_REVOKE_KEY_BYTES],
                    long long issued_ms, uint32_t now);

/* Nothing was ever revoked: the caller may skip the lock. A read without
 * the lock sees either the old or the new value of one aligned word. */
int kd_revoke_empty(const void *mem);

/* The floor in milliseconds (0 while nothing was evicted). */
long long kd_revoke_floor(const void *mem);

#endif
