#include "kd_session.h"

#include <ctype.h>
#include <string.h>
#include <apr_strings.h>
#include <openssl/crypto.h>

#include "kd_base64.h"
#include "kd_seal.h"

#define COOKIE_VERSION 1
#define MAX_FIELD 1024 /* longest principal, user or SPN a cookie carries */
#define AAD_PREFIX "mod_kdeleg session v1\n"

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
    size_t i;

    for (i = 0; i < len; i++) {
        if (std[i] == '-')
            std[i] = '+';
        else if (std[i] == '_')
            std[i] = '/';
        else if (std[i] == '+' || std[i] == '/' || std[i] == '=')
            return -1; /* only the URL alphabet, unpadded */
    }
    return kd_b64_decode(p, std, len, len, out, out_len) == KD_B64_OK ? 0 : -1;
}

static const unsigned char *aad_for(apr_pool_t *p, const char *site, size_t *len)
{
    char *aad = apr_pstrcat(p, AAD_PREFIX, site, NULL), *c;

    for (c = aad; *c; c++) /* host names compare without case */
        *c = (char)tolower((unsigned char)*c);
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

static size_t put_str(unsigned char *b, const char *s)
{
    size_t n = strlen(s);

    b[0] = (unsigned char)(n >> 8);
    b[1] = (unsigned char)(n & 0xff);
    memcpy(b + 2, s, n);
    return n + 2;
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

/* A string field: 16-bit length, then printable bytes only. */
static const char *get_str(apr_pool_t *p, const unsigned char **pos, const unsigned char *end)
{
    size_t n;
    const unsigned char *b = *pos;

    if (end - b < 2)
        return NULL;
    n = ((size_t)b[0] << 8) | b[1];
    if (n == 0 || n > MAX_FIELD || (size_t)(end - b - 2) < n || !printable(b + 2, n))
        return NULL;
    *pos = b + 2 + n;
    return apr_pstrmemdup(p, (const char *)b + 2, n);
}

/* ------------------------------------------------------------ seal/open */

const char *kd_session_seal(apr_pool_t *p, const kd_session_keys *keys, const char *site,
                            const kd_session *s)
{
    const char *fields[3] = {s->principal, s->user, s->spn};
    unsigned char *plain, *blob, *cookie;
    size_t plain_len = 17, blob_len, aad_len, pos;
    const unsigned char *aad;
    int i;

    if (keys == NULL || keys->n == 0 || site == NULL)
        return NULL;
    for (i = 0; i < 3; i++) {
        if (fields[i] == NULL || *fields[i] == '\0' || strlen(fields[i]) > MAX_FIELD
            || !printable((const unsigned char *)fields[i], strlen(fields[i])))
            return NULL;
        plain_len += 2 + strlen(fields[i]);
    }
    plain = apr_palloc(p, plain_len);
    plain[0] = (unsigned char)s->method;
    put_u64(plain + 1, s->issued);
    put_u64(plain + 9, s->expires);
    for (pos = 17, i = 0; i < 3; i++)
        pos += put_str(plain + pos, fields[i]);
    aad = aad_for(p, site, &aad_len);
    if (kd_seal(p, keys->keys[0].key, aad, aad_len, plain, plain_len, &blob, &blob_len) != 0)
        return NULL;
    OPENSSL_cleanse(plain, plain_len);
    cookie = apr_palloc(p, 1 + KD_SESSION_KEY_ID_BYTES + blob_len);
    cookie[0] = COOKIE_VERSION;
    memcpy(cookie + 1, keys->keys[0].id, KD_SESSION_KEY_ID_BYTES);
    memcpy(cookie + 1 + KD_SESSION_KEY_ID_BYTES, blob, blob_len);
    return b64url_encode(p, cookie, 1 + KD_SESSION_KEY_ID_BYTES + blob_len);
}

static const session_key *find_key(const kd_session_keys *keys, const unsigned char *id)
{
    int i;

    for (i = 0; i < keys->n; i++)
        if (CRYPTO_memcmp(keys->keys[i].id, id, KD_SESSION_KEY_ID_BYTES) == 0)
            return &keys->keys[i];
    return NULL;
}

static kd_session_status parse_plain(apr_pool_t *p, const unsigned char *plain, size_t len,
                                     kd_session *out)
{
    const unsigned char *pos = plain + 17, *end = plain + len;

    if (len < 17 || (plain[0] != KD_SESSION_KERBEROS && plain[0] != KD_SESSION_PROTOCOL_TRANSITION))
        return KD_SESSION_MALFORMED;
    out->method = (kd_session_method)plain[0];
    out->issued = get_u64(plain + 1);
    out->expires = get_u64(plain + 9);
    if ((out->principal = get_str(p, &pos, end)) == NULL
        || (out->user = get_str(p, &pos, end)) == NULL
        || (out->spn = get_str(p, &pos, end)) == NULL || pos != end)
        return KD_SESSION_MALFORMED;
    return KD_SESSION_OK;
}

kd_session_status kd_session_open(apr_pool_t *p, const kd_session_keys *keys, const char *site,
                                  const char *value, long long now, kd_session *out)
{
    unsigned char *raw, *plain;
    size_t raw_len, plain_len, aad_len, value_len;
    const unsigned char *aad;
    const session_key *key;
    kd_session_status st;

    memset(out, 0, sizeof(*out));
    if (keys == NULL || value == NULL || site == NULL)
        return KD_SESSION_MALFORMED;
    value_len = strlen(value);
    if (value_len == 0 || value_len > KD_SESSION_MAX_COOKIE
        || b64url_decode(p, value, value_len, &raw, &raw_len) != 0
        || raw_len < 1 + KD_SESSION_KEY_ID_BYTES + KD_SEAL_OVERHEAD || raw[0] != COOKIE_VERSION)
        return KD_SESSION_MALFORMED;
    if ((key = find_key(keys, raw + 1)) == NULL)
        return KD_SESSION_UNKNOWN_KEY;
    aad = aad_for(p, site, &aad_len);
    if (kd_open(p, key->key, aad, aad_len, raw + 1 + KD_SESSION_KEY_ID_BYTES,
                raw_len - 1 - KD_SESSION_KEY_ID_BYTES, &plain, &plain_len) != 0)
        return KD_SESSION_BAD_SEAL;
    st = parse_plain(p, plain, plain_len, out);
    OPENSSL_cleanse(plain, plain_len);
    if (st != KD_SESSION_OK) {
        memset(out, 0, sizeof(*out));
        return st;
    }
    if (now >= out->expires || out->issued > now + 300) /* issued in the future: clock skew */
        return KD_SESSION_EXPIRED;
    return KD_SESSION_OK;
}

const char *kd_session_status_str(kd_session_status st)
{
    switch (st) {
    case KD_SESSION_OK:
        return "valid";
    case KD_SESSION_MALFORMED:
        return "malformed or truncated";
    case KD_SESSION_UNKNOWN_KEY:
        return "sealed with a key not in KdelegSessionKeyFile";
    case KD_SESSION_BAD_SEAL:
        return "does not open: tampered with, or made for another site";
    case KD_SESSION_EXPIRED:
        return "expired";
    }
    return "unknown";
}

const char *kd_session_method_name(kd_session_method m)
{
    return m == KD_SESSION_PROTOCOL_TRANSITION ? "protocol-transition" : "kerberos";
}
