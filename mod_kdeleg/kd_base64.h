/* kd_base64: strict, bounded base64 for Negotiate tokens (RFC 4559 uses the
 * standard alphabet). apr_base64_decode is lenient (it silently skips bad
 * characters), which hides tampering and makes fuzzing useless, so the core
 * has its own. */
#ifndef KD_BASE64_H
#define KD_BASE64_H

#include <stddef.h>
#include <apr_pools.h>

typedef enum {
    KD_B64_OK = 0,
    KD_B64_EMPTY,
    KD_B64_TOO_LONG,
    KD_B64_INVALID,
} kd_b64_status;

/* Decode in[0..in_len). Padding is optional but, when present, must be
 * correct. At most max_out bytes are produced; a longer input is refused
 * before anything is allocated. *out is NUL-terminated for convenience. */
kd_b64_status kd_b64_decode(apr_pool_t *p, const char *in, size_t in_len, size_t max_out,
                            unsigned char **out, size_t *out_len);

/* Encode with padding; the result is NUL-terminated. */
char *kd_b64_encode(apr_pool_t *p, const unsigned char *in, size_t len);

const char *kd_b64_status_str(kd_b64_status st);

#endif
