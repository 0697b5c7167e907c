/* kd_seal: authenticated encryption for data the module keeps outside
 * its own memory (the shared ticket cache; session cookies later).
 * AES-256-GCM with a random 96-bit nonce per message; associated data
 * binds a sealed blob to its context (e.g. the cache slot it belongs to)
 * so blobs cannot be moved between contexts. */
#ifndef KD_SEAL_H
#define KD_SEAL_H

#include <stddef.h>
#include <apr_pools.h>

#define KD_SEAL_KEY_BYTES 32
#define KD_SEAL_OVERHEAD (1 + 12 + 16) /* version, nonce, tag */

/* Returns 0 and a pool-allocated blob of len + KD_SEAL_OVERHEAD bytes. */
int kd_seal(apr_pool_t *p, const unsigned char key[KD_SEAL_KEY_BYTES], const unsigned char *aad,
            size_t aad_len, const unsigned char *plain, size_t len, unsigned char **out,
            size_t *out_len);

/* Returns 0 and the plaintext only if the blob is intact, sealed with
 * this key and the same associated data; -1 otherwise. */
int kd_open(apr_pool_t *p, const unsigned char key[KD_SEAL_KEY_BYTES], const unsigned char *aad,
            size_t aad_len, const unsigned char *blob, size_t len, unsigned char **out,
            size_t *out_len);

/* HMAC-SHA256(key, data): 32 bytes into out. */
void kd_mac(const unsigned char key[KD_SEAL_KEY_BYTES], const unsigned char *data, size_t len,
            unsigned char out[32]);

/* Fill buf with cryptographically random bytes; 0 on success. */
int kd_random(unsigned char *buf, size_t len);

#endif
