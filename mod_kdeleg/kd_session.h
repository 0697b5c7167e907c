/* kd_session: session cookies shared by every node of a load-balanced
 * site. A cookie is sealed with AES-256-GCM (kd_seal) under one of the
 * keys of KdelegSessionKeyFile and names that key by an id derived from
 * the key itself, so keys can rotate: the first key seals, every key
 * opens. The site name (the virtual name the nodes share) is associated
 * data: a cookie made for one site never opens on another.
 *
 *   cookie = base64url( version(1) | key_id(8) | kd_seal blob )
 *   plain  = method(1) | issued(8) | expires(8) | principal | user | spn
 *            (big-endian integers; strings as 16-bit length + bytes)
 */
#ifndef KD_SESSION_H
#define KD_SESSION_H

#include <stddef.h>
#include <apr_pools.h>

#define KD_SESSION_COOKIE "kdeleg_session"
#define KD_SESSION_KEY_ID_BYTES 8
#define KD_SESSION_MAX_COOKIE 4096 /* characters; longer values are not ours */

typedef struct kd_session_keys kd_session_keys; /* immutable once parsed */

typedef enum {
    KD_SESSION_KERBEROS = 1,
    KD_SESSION_PROTOCOL_TRANSITION = 2,
} kd_session_method;

typedef struct {
    kd_session_method method; /* how the user authenticated when it was issued */
    long long issued;         /* seconds since the epoch */
    long long expires;
    const char *principal;    /* GSS_NAME: alice@EXAMPLE.TEST */
    const char *user;         /* REMOTE_USER as the issuing node mapped it */
    const char *spn;          /* acceptor principal: the impersonator for delegation */
} kd_session;

typedef enum {
    KD_SESSION_OK = 0,
    KD_SESSION_MALFORMED,   /* not base64url, truncated, wrong version, bad fields */
    KD_SESSION_UNKNOWN_KEY, /* sealed with a key this node does not have (any more) */
    KD_SESSION_BAD_SEAL,    /* tampered, or sealed for another site */
    KD_SESSION_EXPIRED,
} kd_session_status;

/* Parse the text of a key file: one base64 32-byte key per line, blank
 * lines and '#' comments ignored. NULL and *err (naming the line) when a
 * line is not 32 bytes of base64, a key repeats, or there is no key. */
kd_session_keys *kd_session_keys_parse(apr_pool_t *p, const char *text, size_t len,
                                       const char **err);
int kd_session_keys_count(const kd_session_keys *keys);
/* Hex id of key i (for logs and the status page; never the key). */
const char *kd_session_key_id(apr_pool_t *p, const kd_session_keys *keys, int i);

/* The cookie value for s, sealed with the first key; NULL on failure. */
const char *kd_session_seal(apr_pool_t *p, const kd_session_keys *keys, const char *site,
                            const kd_session *s);

/* Open a cookie value for site at time now (seconds). out is filled on
 * KD_SESSION_OK, and on KD_SESSION_EXPIRED so the log can name the user. */
kd_session_status kd_session_open(apr_pool_t *p, const kd_session_keys *keys, const char *site,
                                  const char *value, long long now, kd_session *out);

const char *kd_session_status_str(kd_session_status st);
const char *kd_session_method_name(kd_session_method m);

#endif
