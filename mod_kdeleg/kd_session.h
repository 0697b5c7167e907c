/* kd_session: session cookies shared by every node of a load-balanced
 * site, and the one-time transfer tokens that carry a session from a
 * node's own name back to the virtual name (the FQDN fallback).
 *
 * Both are sealed with AES-256-GCM (kd_seal) under one of the keys of
 * KdelegSessionKeyFile and name that key by an id derived from the key
 * itself, so keys can rotate: the first key seals, every key opens.
 *
 *   value = base64url( version 2 | key_id(8) | kd_seal blob )
 *   aad   = "mod_kdeleg v2 " kind "\n" scope      kind: "session"|"transfer"
 *   plain = fields, each tag(1) | length(2, big-endian) | bytes;
 *           unknown tags are skipped (later versions add fields), known
 *           tags appear once, the required ones must be there.
 *
 * The user's groups (tag 10, optional: kd_groups' wire form, RIDs relative
 * to the logon domain as varints plus the extra SIDs and resource groups)
 * were added without a new version: a node that predates them skips the
 * field, and a cookie without it opens with groups NULL, "no group
 * information", which a group check refuses.
 *
 * The scope is associated data: a cookie opens only where it was minted
 * (scheme, host, port, the virtual name's SPNs, KdelegSessionScope), and a
 * transfer token never opens as a cookie or the other way round. The
 * principal is kept unmapped; REMOTE_USER is derived where it is used.
 * A version 1 cookie (it has no scope) does not open: session-invalid. */
#ifndef KD_SESSION_H
#define KD_SESSION_H

#include <stddef.h>
#include <apr_pools.h>
#include <apr_tables.h>

#include "kd_groups.h"

#define KD_SESSION_COOKIE "kdeleg_session"   /* + "_" NAME for a named scope */
#define KD_STATE_COOKIE "kdeleg_state"       /* the fallback's login-CSRF guard */
#define KD_HOST_PREFIX "__Host-"             /* https, host-only, Path=/ */
#define KD_SECURE_PREFIX "__Secure-"         /* https with KdelegCookieDomain */
#define KD_SESSION_KEY_ID_BYTES 8
/* Characters. Browsers keep about 4096 bytes per cookie, name and
 * attributes included: a value that would not fit is never sealed, and a
 * longer one is not ours. With the longest name (KD_HOST_PREFIX
 * KD_SESSION_COOKIE "_" and a KD_SCOPE_NAME_MAX name) "name=value" stays
 * within KD_SESSION_MAX_NAME_VALUE bytes (checked in kd_session.c). */
#define KD_SESSION_MAX_COOKIE 3800
#define KD_SESSION_MAX_NAME_VALUE 4000
#define KD_TRANSFER_MAX_SECONDS 60
#define KD_STATE_HASH_BYTES 32
#define KD_TRANSFER_ID_BYTES 16
#define KD_SCOPE_NAME_MAX 32

typedef struct kd_session_keys kd_session_keys; /* immutable once parsed */

typedef enum {
    KD_SESSION_KERBEROS = 1,
    KD_SESSION_PROTOCOL_TRANSITION = 2,
} kd_session_method;

typedef struct {
    kd_session_method method; /* how the user authenticated when it was issued */
    long long issued_ms;      /* milliseconds since the epoch (revocation compares these) */
    long long expires;        /* seconds since the epoch */
    const char *principal;    /* unmapped: alice@EXAMPLE.TEST */
    const char *spn;          /* the acceptor principal the ticket was for */
    const kd_groups *groups;  /* the user's groups; NULL: no group information */
    /* transfer tokens only */
    const char *origin;       /* scheme://host:port the token may be redeemed at */
    unsigned char state_hash[KD_STATE_HASH_BYTES]; /* SHA-256 of the state cookie */
    unsigned char id[KD_TRANSFER_ID_BYTES];        /* random: spent once per node */
    long long session_end;    /* seconds: the session it carries ends by then (the ticket) */
} kd_session;

typedef enum {
    KD_SESSION_OK = 0,
    KD_SESSION_MALFORMED,   /* not base64url, truncated, old version, bad fields */
    KD_SESSION_UNKNOWN_KEY, /* sealed with a key this node does not have (any more) */
    KD_SESSION_BAD_SEAL,    /* tampered, or sealed for another scope */
    KD_SESSION_EXPIRED,
} kd_session_status;

/* Parse the text of a key file: one base64 32-byte key per line, blank
 * lines and '#' comments ignored. NULL and *err (naming the line) when a
 * line is not 32 bytes of base64, a key repeats, or there is no key. */
kd_session_keys *kd_session_keys_parse(apr_pool_t *p, const char *text, size_t len,
                                       const char **err);
int kd_session_keys_count(const kd_session_keys *keys);
/* A 32-byte key derived (HKDF-SHA256) from key i under a label, for
 * another use of the same file (the farm's shared-store keys). 0 on
 * success. */
int kd_session_keys_derive(const kd_session_keys *keys, int i, const char *label,
                           unsigned char out[32]);
/* Hex id of key i (for logs and the status page; never the key). */
const char *kd_session_key_id(apr_pool_t *p, const kd_session_keys *keys, int i);

/* The scope string a cookie is bound to: scheme://host:port, the scope
 * name ("" by default) and the site's SPNs (sorted, so every node's order
 * of configuration gives the same scope). Host names without case. */
const char *kd_session_scope(apr_pool_t *p, const char *scheme, const char *host, int port,
                             const char *name, const apr_array_header_t *spns);

/* A session cookie value for scope, sealed with the first key; NULL on
 * failure or when it would exceed KD_SESSION_MAX_COOKIE. */
const char *kd_session_seal(apr_pool_t *p, const kd_session_keys *keys, const char *scope,
                            const kd_session *s);

/* The length of the value kd_session_seal would make for s (exactly: no
 * key is needed to know it), or 0 when s has fields seal refuses. A value
 * above KD_SESSION_MAX_COOKIE is never sealed: the glue checks this first
 * to count and log a session it does not issue (too many groups). */
size_t kd_session_encoded_size(const kd_session *s);

/* Open a cookie value at time now_ms. out is filled on KD_SESSION_OK, and
 * on KD_SESSION_EXPIRED so the log can name the user. */
kd_session_status kd_session_open(apr_pool_t *p, const kd_session_keys *keys, const char *scope,
                                  const char *value, long long now_ms, kd_session *out);

/* Transfer tokens: s->origin, state_hash and id are required, and
 * s->expires is at most KD_TRANSFER_MAX_SECONDS after issued_ms. */
const char *kd_transfer_seal(apr_pool_t *p, const kd_session_keys *keys, const kd_session *s);
/* The same for a transfer token (it carries the session's groups too). */
size_t kd_transfer_encoded_size(const kd_session *s);
kd_session_status kd_transfer_open(apr_pool_t *p, const kd_session_keys *keys,
                                   const char *value, long long now_ms, kd_session *out);

/* SHA-256 of a state cookie value, and the value's base64url form of a
 * hash (as it travels in the node's URL); decode returns 0 on success. */
void kd_state_hash(const char *state, unsigned char out[KD_STATE_HASH_BYTES]);
const char *kd_state_hash_encode(apr_pool_t *p, const unsigned char h[KD_STATE_HASH_BYTES]);
int kd_state_hash_decode(apr_pool_t *p, const char *text, unsigned char out[KD_STATE_HASH_BYTES]);

/* A fresh random state cookie value (base64url of 32 bytes), NULL if the
 * random source fails. */
const char *kd_state_new(apr_pool_t *p);

/* A KdelegSessionScope name: 1..KD_SCOPE_NAME_MAX of [A-Za-z0-9_-]. */
int kd_session_scope_name_ok(const char *name);

const char *kd_session_status_str(kd_session_status st);
const char *kd_session_method_name(kd_session_method m);

#endif
