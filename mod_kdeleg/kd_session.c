#include "kd_session.h"
#include "kd_store.h"

#include <ctype.h>
#include <string.h>
#include <apr_strings.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>

#include "kd_base64.h"
#include "kd_seal.h"

#define COOKIE_VERSION 2
#define MAX_FIELD 1024 /* longest principal, SPN or origin a value carries */
#define AAD_PREFIX "mod_kdeleg v2 "

/* Field tags of the sealed plaintext. Numbers are forever: a new field
 * gets a new tag, and an old node skips tags it does not know. */
enum {
    F_METHOD = 1,    /* 1 byte: kd_session_method */
    F_ISSUED = 2,    /* 8 bytes: milliseconds */
    F_EXPIRES = 3,   /* 8 bytes: seconds */
    F_PRINCIPAL = 4, /* unmapped client principal */
    F_SPN = 5,       /* acceptor principal */
    F_ORIGIN = 6,    /* transfer: scheme://host:port */
    F_STATE = 7,     /* transfer: SHA-256 of the state cookie */
    F_ID = 8,        /* transfer: random id */
    F_SESSION_END = 9, /* transfer: 8 bytes, seconds: the user's ticket ends */
    F_GROUPS = 10,   /* optional: kd_groups_encode */
    F_MAX_KNOWN = 10,
};

#define MAX_FIELD_BYTES 0xffff /* a field's 2-byte length */

/* The longest cookie name with '=' and the longest value. */
_Static_assert(sizeof(KD_HOST_PREFIX KD_SESSION_COOKIE "_") - 1 + KD_SCOPE_NAME_MAX + 1
                   + KD_SESSION_MAX_COOKIE <= KD_SESSION_MAX_NAME_VALUE,
               "a session cookie's name=value may exceed KD_SESSION_MAX_NAME_VALUE");

typedef struct {
    unsigned char key[KD_SEAL_KEY_BYTES];
    unsigned char id[KD_SESSION_KEY_ID_BYTES];
} session_key;

struct kd_session_keys {
    int n;
    session_key *keys; /* keys[0] seals */
};

/* ------------------------------------------------------------ key file */

/* The id names a key without revealing it: the start of an HMAC made with
 * the key over a fixed label. */
static void key_id(const unsigned char key[KD_SEAL_KEY_BYTES],
                   unsigned char id[KD_SESSION_KEY_ID_BYTES])
{
    static const char label[] = "mod_kdeleg session key id v1";
    unsigned char mac[32];

    kd_mac(key, (const unsigned char *)label, sizeof(label) - 1, mac);
    memcpy(id, mac, KD_SESSION_KEY_ID_BYTES);
    OPENSSL_cleanse(mac, sizeof(mac));
}

static const char *trim(apr_pool_t *p, const char *start, size_t n)
{
    while (n > 0 && isspace((unsigned char)*start)) {
        start++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)start[n - 1]))
        n--;
    return apr_pstrmemdup(p, start, n);
}

static const char *add_key(apr_pool_t *p, kd_session_keys *keys, const char *line, int lineno)
{
    unsigned char *raw;
    size_t raw_len;
    session_key k;
    int i;

    if (kd_b64_decode(p, line, strlen(line), 64, &raw, &raw_len) != KD_B64_OK
        || raw_len != KD_SEAL_KEY_BYTES)
        return apr_psprintf(p, "line %d is not a base64-encoded 32-byte key (make one with "
                            "'openssl rand -base64 32')", lineno);
    memcpy(k.key, raw, KD_SEAL_KEY_BYTES);
    OPENSSL_cleanse(raw, raw_len);
    key_id(k.key, k.id);
    for (i = 0; i < keys->n; i++)
        if (memcmp(keys->keys[i].id, k.id, sizeof(k.id)) == 0) {
            OPENSSL_cleanse(&k, sizeof(k));
            return apr_psprintf(p, "line %d repeats the key of an earlier line", lineno);
        }
    keys->keys[keys->n++] = k;
    OPENSSL_cleanse(&k, sizeof(k));
    return NULL;
}

/* Wipe the keys when the configuration pool goes. */
static apr_status_t keys_cleanse(void *data)
{
    kd_session_keys *keys = data;

    OPENSSL_cleanse(keys->keys, sizeof(session_key) * (size_t)keys->n);
    return APR_SUCCESS;
}

kd_session_keys *kd_session_keys_parse(apr_pool_t *p, const char *text, size_t len,
                                       const char **err)
{
    kd_session_keys *keys = apr_pcalloc(p, sizeof(*keys));
    const char *pos = text, *end = text + len;
    int lineno = 0, lines = 1;
    size_t i;

    *err = NULL;
    for (i = 0; i < len; i++)
        lines += text[i] == '\n';
    keys->keys = apr_pcalloc(p, sizeof(session_key) * (size_t)lines);
    apr_pool_cleanup_register(p, keys, keys_cleanse, apr_pool_cleanup_null);
    while (pos < end) {
        const char *nl = memchr(pos, '\n', (size_t)(end - pos));
        const char *line = trim(p, pos, (size_t)((nl ? nl : end) - pos));
        lineno++;
        pos = nl ? nl + 1 : end;
        if (*line == '\0' || *line == '#')
            continue;
        if ((*err = add_key(p, keys, line, lineno)) != NULL)
            return NULL;
    }
    if (keys->n == 0) {
        *err = "no key in the file (one 'openssl rand -base64 32' per line)";
        return NULL;
    }
    return keys;
}

int kd_session_keys_derive(const kd_session_keys *keys, int i, const char *label,
                           unsigned char out[32])
{
    if (i < 0 || i >= keys->n)
        return -1;
    return kd_store_derive(keys->keys[i].key, label, out);
}

int kd_session_keys_count(const kd_session_keys *keys)
{
    return keys ? keys->n : 0;
}

const char *kd_session_key_id(apr_pool_t *p, const kd_session_keys *keys, int i)
{
    static const char hex[] = "0123456789abcdef";
    char *out = apr_palloc(p, 2 * KD_SESSION_KEY_ID_BYTES + 1);
    int j;

    for (j = 0; j < KD_SESSION_KEY_ID_BYTES; j++) {
        out[2 * j] = hex[keys->keys[i].id[j] >> 4];
        out[2 * j + 1] = hex[keys->keys[i].id[j] & 15];
    }
    out[2 * KD_SESSION_KEY_ID_BYTES] = '\0';
    return out;
}

/* ------------------------------------------------------------ encoding */

static char *b64url_encode(apr_pool_t *p, const unsigned char *in, size_t len)
{
    char *s = kd_b64_encode(p, in, len), *c;

    for (c = s; *c; c++) {
        if (*c == '+')
            *c = '-';
        else if (*c == '/')
            *c = '_';
        else if (*c == '=') {
            *c = '\0';
            break;
        }
    }
    return s;
}

static int b64url_decode(apr_pool_t *p, const char *in, size_t len, unsigned char **out,
                         size_t *out_len)
{
    char *std = apr_pstrmemdup(p, in, len);
    const char *canonical;
    size_t i;

    for (i = 0; i < len; i++) {
        if (std[i] == '-')
            std[i] = '+';
        else if (std[i] == '_')
            std[i] = '/';
        else if (std[i] == '+' || std[i] == '/' || std[i] == '=')
            return -1; /* only the URL alphabet, unpadded */
    }
    if (kd_b64_decode(p, std, len, len, out, out_len) != KD_B64_OK)
        return -1;
    /* one value, one spelling: the unused low bits of the last character
     * must be zero, or 16 strings would open as the same cookie */
    canonical = b64url_encode(p, *out, *out_len);
    return strlen(canonical) == len && memcmp(canonical, in, len) == 0 ? 0 : -1;
}

static const unsigned char *aad_for(apr_pool_t *p, const char *kind, const char *scope,
                                    size_t *len)
{
    char *aad = apr_pstrcat(p, AAD_PREFIX, kind, "\n", scope, NULL);

    *len = strlen(aad);
    return (const unsigned char *)aad;
}

static void put_u64(unsigned char *b, long long v)
{
    int i;

    for (i = 7; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)(v & 0xff);
}

static long long get_u64(const unsigned char *b)
{
    unsigned long long v = 0;
    int i;

    for (i = 0; i < 8; i++)
        v = (v << 8) | b[i];
    return (long long)v;
}

/* The one rule for string fields, on both sides: seal writes only what
 * open accepts (fuzz_session found a name with a control byte that
 * sealed fine and then never opened). */
static int printable(const unsigned char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (b[i] < 0x20 || b[i] == 0x7f)
            return 0;
    return 1;
}

static int str_ok(const char *s)
{
    return s && *s && strlen(s) <= MAX_FIELD && printable((const unsigned char *)s, strlen(s));
}

/* ------------------------------------------------------------ scope */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *kd_session_scope(apr_pool_t *p, const char *scheme, const char *host, int port,
                             const char *name, const apr_array_header_t *spns)
{
    const char **sorted;
    char *lower = apr_pstrdup(p, host ? host : ""), *c;
    const char *scope;
    int i, n = spns ? spns->nelts : 0;

    for (c = lower; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    scope = apr_psprintf(p, "%s://%s:%d\nscope=%s\n", scheme ? scheme : "http", lower, port,
                         name ? name : "");
    sorted = apr_pmemdup(p, n ? spns->elts : "", sizeof(const char *) * (size_t)n);
    if (n > 1)
        qsort(sorted, (size_t)n, sizeof(const char *), cmp_str);
    for (i = 0; i < n; i++)
        scope = apr_pstrcat(p, scope, "spn=", sorted[i], "\n", NULL);
    return scope;
}

int kd_session_scope_name_ok(const char *name)
{
    size_t i, n = name ? strlen(name) : 0;

    if (n == 0 || n > KD_SCOPE_NAME_MAX)
        return 0;
    for (i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '-')
            return 0;
    return 1;
}

/* ------------------------------------------------------------ fields */

typedef struct {
    unsigned char *buf;
    size_t len, cap;
} writer;

static void put_field(writer *w, int tag, const void *data, size_t n)
{
    if (w->len + 3 + n > w->cap)
        return; /* sized beforehand: cannot happen */
    w->buf[w->len] = (unsigned char)tag;
    w->buf[w->len + 1] = (unsigned char)(n >> 8);
    w->buf[w->len + 2] = (unsigned char)(n & 0xff);
    memcpy(w->buf + w->len + 3, data, n);
    w->len += 3 + n;
}

static void put_str_field(writer *w, int tag, const char *s)
{
    put_field(w, tag, s, strlen(s));
}

static void put_time_field(writer *w, int tag, long long v)
{
    unsigned char b[8];

    put_u64(b, v);
    put_field(w, tag, b, 8);
}

/* The plaintext's length (fields_ok must hold). */
static size_t plain_size(const kd_session *s, int transfer)
{
    return 3 * 5 + 1 + 8 + 8 + strlen(s->principal) + strlen(s->spn)
           + (s->groups ? 3 + kd_groups_encoded_size(s->groups) : 0)
           + (transfer ? 3 * 4 + strlen(s->origin) + KD_STATE_HASH_BYTES + KD_TRANSFER_ID_BYTES
                             + 8 : 0);
}

/* The groups' field: encoded straight into the plaintext. */
static void put_groups_field(writer *w, const kd_groups *g)
{
    size_t n = kd_groups_encoded_size(g);

    if (w->len + 3 + n > w->cap)
        return; /* sized beforehand: cannot happen */
    w->buf[w->len] = F_GROUPS;
    w->buf[w->len + 1] = (unsigned char)(n >> 8);
    w->buf[w->len + 2] = (unsigned char)(n & 0xff);
    w->len += 3 + kd_groups_encode(g, w->buf + w->len + 3, n);
}

/* The plaintext of s; transfer adds the token's own fields. */
static unsigned char *encode(apr_pool_t *p, const kd_session *s, int transfer, size_t *len)
{
    unsigned char method = (unsigned char)s->method;
    writer w;

    w.cap = plain_size(s, transfer);
    w.buf = apr_palloc(p, w.cap);
    w.len = 0;
    put_field(&w, F_METHOD, &method, 1);
    put_time_field(&w, F_ISSUED, s->issued_ms);
    put_time_field(&w, F_EXPIRES, s->expires);
    put_str_field(&w, F_PRINCIPAL, s->principal);
    put_str_field(&w, F_SPN, s->spn);
    if (s->groups)
        put_groups_field(&w, s->groups);
    if (transfer) {
        put_str_field(&w, F_ORIGIN, s->origin);
        put_field(&w, F_STATE, s->state_hash, KD_STATE_HASH_BYTES);
        put_field(&w, F_ID, s->id, KD_TRANSFER_ID_BYTES);
        put_time_field(&w, F_SESSION_END, s->session_end);
    }
    *len = w.len;
    return w.buf;
}

static const char *field_str(apr_pool_t *p, const unsigned char *b, size_t n)
{
    if (n == 0 || n > MAX_FIELD || !printable(b, n))
        return NULL;
    return apr_pstrmemdup(p, (const char *)b, n);
}

/* One known field into out; 0, or -1 when its length or content is wrong. */
static int decode_field(apr_pool_t *p, int tag, const unsigned char *b, size_t n,
                        kd_session *out)
{
    switch (tag) {
    case F_METHOD:
        if (n != 1 || (b[0] != KD_SESSION_KERBEROS && b[0] != KD_SESSION_PROTOCOL_TRANSITION))
            return -1;
        out->method = (kd_session_method)b[0];
        return 0;
    case F_ISSUED:
    case F_EXPIRES:
    case F_SESSION_END:
        if (n != 8)
            return -1;
        *(tag == F_ISSUED ? &out->issued_ms
                          : tag == F_EXPIRES ? &out->expires : &out->session_end) = get_u64(b);
        return 0;
    case F_PRINCIPAL:
        return (out->principal = field_str(p, b, n)) ? 0 : -1;
    case F_SPN:
        return (out->spn = field_str(p, b, n)) ? 0 : -1;
    case F_ORIGIN:
        return (out->origin = field_str(p, b, n)) ? 0 : -1;
    case F_STATE:
        if (n != KD_STATE_HASH_BYTES)
            return -1;
        memcpy(out->state_hash, b, n);
        return 0;
    case F_ID:
        if (n != KD_TRANSFER_ID_BYTES)
            return -1;
        memcpy(out->id, b, n);
        return 0;
    case F_GROUPS:
        return (out->groups = kd_groups_decode(p, b, n)) ? 0 : -1;
    }
    return 0; /* a field from a newer version: skipped */
}

static kd_session_status decode(apr_pool_t *p, const unsigned char *b, size_t len, int transfer,
                                kd_session *out)
{
    const unsigned char *end = b + len;
    unsigned seen = 0, need = (1u << F_METHOD) | (1u << F_ISSUED) | (1u << F_EXPIRES)
                              | (1u << F_PRINCIPAL) | (1u << F_SPN);

    if (transfer)
        need |= (1u << F_ORIGIN) | (1u << F_STATE) | (1u << F_ID) | (1u << F_SESSION_END);
    while (b < end) {
        int tag;
        size_t n;

        if (end - b < 3)
            return KD_SESSION_MALFORMED;
        tag = b[0];
        n = ((size_t)b[1] << 8) | b[2];
        if ((size_t)(end - b - 3) < n)
            return KD_SESSION_MALFORMED;
        if (tag == 0)
            return KD_SESSION_MALFORMED; /* reserved: never written */
        if (tag <= F_MAX_KNOWN && (seen & (1u << tag)))
            return KD_SESSION_MALFORMED; /* a known field twice */
        if (decode_field(p, tag, b + 3, n, out) != 0)
            return KD_SESSION_MALFORMED;
        if (tag <= F_MAX_KNOWN)
            seen |= 1u << tag;
        b += 3 + n;
    }
    return (seen & need) == need ? KD_SESSION_OK : KD_SESSION_MALFORMED;
}

/* ------------------------------------------------------------ seal/open */

/* Times a cookie may carry: positive, and small enough that milliseconds
 * never overflow (2^40 s is some 35,000 years). */
#define MAX_SECONDS (1LL << 40)

static int times_ok(const kd_session *s, int transfer)
{
    return s->issued_ms > 0 && s->issued_ms < MAX_SECONDS * 1000 && s->expires > 0
           && s->expires < MAX_SECONDS
           && (!transfer || (s->session_end > 0 && s->session_end < MAX_SECONDS));
}

static int fields_ok(const kd_session *s, int transfer)
{
    if (!str_ok(s->principal) || !str_ok(s->spn) || !times_ok(s, transfer))
        return 0;
    if (s->groups && kd_groups_encoded_size(s->groups) > MAX_FIELD_BYTES)
        return 0;
    if (s->method != KD_SESSION_KERBEROS && s->method != KD_SESSION_PROTOCOL_TRANSITION)
        return 0;
    if (transfer && (!str_ok(s->origin)
                     || s->expires * 1000 > s->issued_ms + KD_TRANSFER_MAX_SECONDS * 1000LL))
        return 0;
    return 1;
}

static const char *seal_as(apr_pool_t *p, const kd_session_keys *keys, const char *kind,
                           const char *scope, const kd_session *s, int transfer)
{
    unsigned char *plain, *blob, *raw;
    size_t plain_len, blob_len, aad_len, raw_len;
    const unsigned char *aad;
    const char *value;

    if (keys == NULL || keys->n == 0 || scope == NULL || !fields_ok(s, transfer))
        return NULL;
    plain = encode(p, s, transfer, &plain_len);
    aad = aad_for(p, kind, scope, &aad_len);
    if (kd_seal(p, keys->keys[0].key, aad, aad_len, plain, plain_len, &blob, &blob_len) != 0) {
        OPENSSL_cleanse(plain, plain_len);
        return NULL;
    }
    OPENSSL_cleanse(plain, plain_len);
    raw_len = 1 + KD_SESSION_KEY_ID_BYTES + blob_len;
    raw = apr_palloc(p, raw_len);
    raw[0] = COOKIE_VERSION;
    memcpy(raw + 1, keys->keys[0].id, KD_SESSION_KEY_ID_BYTES);
    memcpy(raw + 1 + KD_SESSION_KEY_ID_BYTES, blob, blob_len);
    value = b64url_encode(p, raw, raw_len);
    return strlen(value) <= KD_SESSION_MAX_COOKIE ? value : NULL;
}

/* Unpadded base64url of the version, key id and sealed plaintext. */
static size_t sealed_size(const kd_session *s, int transfer)
{
    size_t raw;

    if (!fields_ok(s, transfer))
        return 0;
    raw = 1 + KD_SESSION_KEY_ID_BYTES + KD_SEAL_OVERHEAD + plain_size(s, transfer);
    return (raw * 4 + 2) / 3;
}

size_t kd_session_encoded_size(const kd_session *s)
{
    return sealed_size(s, 0);
}

size_t kd_transfer_encoded_size(const kd_session *s)
{
    return sealed_size(s, 1);
}

static const session_key *find_key(const kd_session_keys *keys, const unsigned char *id)
{
    int i;

    for (i = 0; i < keys->n; i++)
        if (CRYPTO_memcmp(keys->keys[i].id, id, KD_SESSION_KEY_ID_BYTES) == 0)
            return &keys->keys[i];
    return NULL;
}

static kd_session_status open_as(apr_pool_t *p, const kd_session_keys *keys, const char *kind,
                                 const char *scope, const char *value, long long now_ms,
                                 int transfer, kd_session *out)
{
    unsigned char *raw, *plain;
    size_t raw_len, plain_len, aad_len, value_len;
    const unsigned char *aad;
    const session_key *key;
    kd_session_status st;

    memset(out, 0, sizeof(*out));
    if (keys == NULL || value == NULL || scope == NULL)
        return KD_SESSION_MALFORMED;
    value_len = strlen(value);
    if (value_len == 0 || value_len > KD_SESSION_MAX_COOKIE
        || b64url_decode(p, value, value_len, &raw, &raw_len) != 0
        || raw_len < 1 + KD_SESSION_KEY_ID_BYTES + KD_SEAL_OVERHEAD || raw[0] != COOKIE_VERSION)
        return KD_SESSION_MALFORMED;
    if ((key = find_key(keys, raw + 1)) == NULL)
        return KD_SESSION_UNKNOWN_KEY;
    aad = aad_for(p, kind, scope, &aad_len);
    if (kd_open(p, key->key, aad, aad_len, raw + 1 + KD_SESSION_KEY_ID_BYTES,
                raw_len - 1 - KD_SESSION_KEY_ID_BYTES, &plain, &plain_len) != 0)
        return KD_SESSION_BAD_SEAL;
    st = decode(p, plain, plain_len, transfer, out);
    OPENSSL_cleanse(plain, plain_len);
    if (st == KD_SESSION_OK && !times_ok(out, transfer))
        st = KD_SESSION_MALFORMED;
    if (st != KD_SESSION_OK) {
        memset(out, 0, sizeof(*out));
        return st;
    }
    /* issued in the future beyond clock skew: not ours to trust */
    if (now_ms >= out->expires * 1000 || out->issued_ms > now_ms + 300 * 1000LL)
        return KD_SESSION_EXPIRED;
    return KD_SESSION_OK;
}

const char *kd_session_seal(apr_pool_t *p, const kd_session_keys *keys, const char *scope,
                            const kd_session *s)
{
    return seal_as(p, keys, "session", scope, s, 0);
}

kd_session_status kd_session_open(apr_pool_t *p, const kd_session_keys *keys, const char *scope,
                                  const char *value, long long now_ms, kd_session *out)
{
    return open_as(p, keys, "session", scope, value, now_ms, 0, out);
}

/* A transfer token's scope is the fixed word "transfer": its origin is
 * inside, and the redeeming node compares it with its own. */
const char *kd_transfer_seal(apr_pool_t *p, const kd_session_keys *keys, const kd_session *s)
{
    return seal_as(p, keys, "transfer", "transfer", s, 1);
}

kd_session_status kd_transfer_open(apr_pool_t *p, const kd_session_keys *keys,
                                   const char *value, long long now_ms, kd_session *out)
{
    kd_session_status st = open_as(p, keys, "transfer", "transfer", value, now_ms, 1, out);

    /* a token that claims a long life was not made by us */
    if (st == KD_SESSION_OK && out->expires * 1000 > out->issued_ms + KD_TRANSFER_MAX_SECONDS * 1000LL) {
        memset(out, 0, sizeof(*out));
        return KD_SESSION_MALFORMED;
    }
    return st;
}

/* ------------------------------------------------------------ state cookie */

void kd_state_hash(const char *state, unsigned char out[KD_STATE_HASH_BYTES])
{
    unsigned int n = KD_STATE_HASH_BYTES;

    if (EVP_Digest(state, strlen(state), out, &n, EVP_sha256(), NULL) != 1)
        memset(out, 0, KD_STATE_HASH_BYTES); /* never matches a real hash */
}

const char *kd_state_hash_encode(apr_pool_t *p, const unsigned char h[KD_STATE_HASH_BYTES])
{
    return b64url_encode(p, h, KD_STATE_HASH_BYTES);
}

int kd_state_hash_decode(apr_pool_t *p, const char *text, unsigned char out[KD_STATE_HASH_BYTES])
{
    unsigned char *raw;
    size_t len;

    if (text == NULL || strlen(text) != 43 /* 32 bytes, unpadded */
        || b64url_decode(p, text, 43, &raw, &len) != 0 || len != KD_STATE_HASH_BYTES)
        return -1;
    memcpy(out, raw, KD_STATE_HASH_BYTES);
    return 0;
}

const char *kd_state_new(apr_pool_t *p)
{
    unsigned char r[32];

    if (kd_random(r, sizeof(r)) != 0)
        return NULL;
    return b64url_encode(p, r, sizeof(r));
}

const char *kd_session_status_str(kd_session_status st)
{
    switch (st) {
    case KD_SESSION_OK:
        return "valid";
    case KD_SESSION_MALFORMED:
        return "malformed, truncated or of an older format";
    case KD_SESSION_UNKNOWN_KEY:
        return "sealed with a key not in KdelegSessionKeyFile";
    case KD_SESSION_BAD_SEAL:
        return "does not open: tampered with, or made for another scope (scheme, host, port, "
               "SPNs or KdelegSessionScope)";
    case KD_SESSION_EXPIRED:
        return "expired";
    }
    return "unknown";
}

const char *kd_session_method_name(kd_session_method m)
{
    return m == KD_SESSION_PROTOCOL_TRANSITION ? "protocol-transition" : "kerberos";
}
