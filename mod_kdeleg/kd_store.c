#include "kd_store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include "kd_seal.h"

/* ------------------------------------------------------------ spec */

const char *kd_store_kind_name(kd_store_kind kind)
{
    return kind == KD_STORE_REDIS ? "redis" : "memcache";
}

static const char *parse_port(const char *text, int *port)
{
    char *end;
    long n;

    if (*text < '0' || *text > '9')
        return "the port is not a number";
    n = strtol(text, &end, 10);
    if (*end != '\0' || n < 1 || n > 65535)
        return "the port is not a number between 1 and 65535";
    *port = (int)n;
    return NULL;
}

const char *kd_store_parse(apr_pool_t *p, const char *spec, kd_store_kind *kind, char **host,
                           int *port)
{
    const char *rest, *colon;

    if (strncmp(spec, "memcache:", 9) == 0)
        *kind = KD_STORE_MEMCACHE, rest = spec + 9;
    else if (strncmp(spec, "redis:", 6) == 0)
        *kind = KD_STORE_REDIS, rest = spec + 6;
    else
        return "not memcache:HOST:PORT or redis:HOST:PORT";
    if (*rest == '[') { /* [IPv6]:PORT */
        const char *close = strchr(rest, ']');
        if (close == NULL || close == rest + 1 || close[1] != ':')
            return "an IPv6 address is written [ADDRESS]:PORT";
        *host = apr_pstrmemdup(p, rest + 1, (apr_size_t)(close - rest - 1));
        return parse_port(close + 2, port);
    }
    colon = strrchr(rest, ':');
    if (colon == NULL || colon == rest)
        return "HOST:PORT is missing (e.g. memcache:127.0.0.1:11211)";
    *host = apr_pstrmemdup(p, rest, (apr_size_t)(colon - rest));
    if (strpbrk(*host, ":/ ") != NULL)
        return "the host is not a name or an address";
    return parse_port(colon + 1, port);
}

/* ------------------------------------------------------------ keys */

void kd_store_key(const unsigned char key[32], const char *kind, const unsigned char *data,
                  size_t len, char out[KD_STORE_KEY_MAX])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char kind_key[32], mac[32];
    size_t at, i;

    /* A key per use first, so the same data under two uses gives two
     * unrelated names. */
    kd_mac(key, (const unsigned char *)kind, strlen(kind), kind_key);
    kd_mac(kind_key, data, len, mac);
    OPENSSL_cleanse(kind_key, sizeof(kind_key));
    at = (size_t)snprintf(out, KD_STORE_KEY_MAX, "kdeleg:%.8s:", kind);
    for (i = 0; i < KD_STORE_MAC_BYTES && at + 2 < KD_STORE_KEY_MAX; i++) {
        out[at++] = hex[mac[i] >> 4];
        out[at++] = hex[mac[i] & 15];
    }
    out[at] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
}

int kd_store_derive(const unsigned char ikm[32], const char *label, unsigned char out[32])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    char info[96];
    OSSL_PARAM params[4];
    int ok;

    snprintf(info, sizeof(info), "mod_kdeleg %s", label);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, 32);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, strlen(info));
    params[3] = OSSL_PARAM_construct_end();
    ok = ctx != NULL && EVP_KDF_derive(ctx, out, 32, params) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------ claims */

static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*len >= cap)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len)
        return -1;
    *len += (size_t)n;
    return 0;
}

int kd_store_claim_request(kd_store_kind kind, const char *key, unsigned ttl, char *buf,
                           size_t cap, size_t *len)
{
    char ttl_text[16];

    if (kind == KD_STORE_MEMCACHE)
        return append(buf, cap, len, "add %s 0 %u 1\r\n1\r\n", key, ttl);
    snprintf(ttl_text, sizeof(ttl_text), "%u", ttl);
    return append(buf, cap, len, "*6\r\n$3\r\nSET\r\n$%u\r\n%s\r\n$1\r\n1\r\n$2\r\nNX\r\n"
                  "$2\r\nEX\r\n$%u\r\n%s\r\n", (unsigned)strlen(key), key,
                  (unsigned)strlen(ttl_text), ttl_text);
}

/* The first line of buf, without its CRLF; -1 if it has not arrived. */
static long line_length(const char *buf, size_t len)
{
    size_t i;

    for (i = 0; i + 1 < len && i < KD_STORE_REPLY_MAX; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n')
            return (long)i;
    return -1;
}

static int line_is(const char *buf, long n, const char *text)
{
    return (size_t)n == strlen(text) && memcmp(buf, text, (size_t)n) == 0;
}

kd_store_answer kd_store_claim_reply(kd_store_kind kind, const char *buf, size_t len,
                                     size_t *used, const char **detail, size_t *detail_len)
{
    long n = line_length(buf, len);

    *detail = NULL;
    *detail_len = 0;
    if (n < 0) {
        if (len < KD_STORE_REPLY_MAX)
            return KD_STORE_INCOMPLETE;
        *detail = "(a reply line longer than the protocol allows)";
        *detail_len = strlen(*detail);
        return KD_STORE_FAILED;
    }
    *used = (size_t)n + 2;
    if (kind == KD_STORE_MEMCACHE ? line_is(buf, n, "STORED") : line_is(buf, n, "+OK"))
        return KD_STORE_CLAIMED;
    /* redis 2 answers a refused SET NX with a null bulk string, redis 3's
     * RESP3 with a null. */
    if (kind == KD_STORE_MEMCACHE ? line_is(buf, n, "NOT_STORED")
                                  : (line_is(buf, n, "$-1") || line_is(buf, n, "_")))
        return KD_STORE_TAKEN;
    /* Anything else is the store's error ("SERVER_ERROR out of memory
     * storing object" from memcached -M when full, "-OOM ..." from redis
     * noeviction), or a protocol we do not speak: both refuse the claim. */
    *detail = buf;
    *detail_len = (size_t)n;
    return KD_STORE_FAILED;
}

/* ------------------------------------------------------------ set, get */

int kd_store_set_request(apr_pool_t *p, kd_store_kind kind, const char *key,
                         const unsigned char *value, size_t len, unsigned ttl, char **req,
                         size_t *req_len)
{
    size_t cap = len + 2 * KD_STORE_KEY_MAX + 128, at = 0;
    char ttl_text[16];
    char *buf;
    int rc;

    if (len > KD_STORE_VALUE_MAX)
        return -1;
    buf = apr_palloc(p, cap);
    snprintf(ttl_text, sizeof(ttl_text), "%u", ttl);
    if (kind == KD_STORE_MEMCACHE)
        rc = append(buf, cap, &at, "set %s 0 %u %u\r\n", key, ttl, (unsigned)len);
    else
        rc = append(buf, cap, &at, "*5\r\n$3\r\nSET\r\n$%u\r\n%s\r\n$%u\r\n",
                    (unsigned)strlen(key), key, (unsigned)len);
    if (rc != 0 || cap - at < len + 2)
        return -1;
    memcpy(buf + at, value, len); /* binary: both protocols carry a length */
    at += len;
    if (kind == KD_STORE_MEMCACHE)
        rc = append(buf, cap, &at, "\r\n");
    else
        rc = append(buf, cap, &at, "\r\n$2\r\nEX\r\n$%u\r\n%s\r\n",
                    (unsigned)strlen(ttl_text), ttl_text);
    *req = buf;
    *req_len = at;
    return rc;
}

int kd_store_get_request(apr_pool_t *p, kd_store_kind kind, const char *key, char **req,
                         size_t *req_len)
{
    *req = kind == KD_STORE_MEMCACHE
               ? apr_psprintf(p, "get %s\r\n", key)
               : apr_psprintf(p, "*2\r\n$3\r\nGET\r\n$%u\r\n%s\r\n",
                              (unsigned)strlen(key), key);
    *req_len = strlen(*req);
    return 0;
}

/* A decimal length at text (n bytes), or -1. */
static long parse_length(const char *text, size_t n)
{
    long v = 0;
    size_t i;

    if (n == 0 || n > 7)
        return -1;
    for (i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        v = v * 10 + (text[i] - '0');
    }
    return v;
}

static kd_store_answer get_failed(const char *buf, size_t n, const char **detail,
                                  size_t *detail_len)
{
    *detail = buf;
    *detail_len = n;
    return KD_STORE_FAILED;
}

/* memcached: "VALUE KEY FLAGS BYTES\r\n" DATA "\r\nEND\r\n", or "END\r\n". */
static kd_store_answer memcache_get_reply(const char *buf, size_t len, size_t *used,
                                          const unsigned char **value, size_t *value_len,
                                          const char **detail, size_t *detail_len)
{
    long n = line_length(buf, len), bytes;
    const char *last;

    if (n < 0)
        return len < KD_STORE_REPLY_MAX ? KD_STORE_INCOMPLETE
                                        : get_failed("(reply line too long)", 21, detail,
                                                     detail_len);
    if (line_is(buf, n, "END")) {
        *used = (size_t)n + 2;
        return KD_STORE_ABSENT;
    }
    if (n < 6 || memcmp(buf, "VALUE ", 6) != 0)
        return get_failed(buf, (size_t)n, detail, detail_len);
    last = buf + n;
    while (last > buf && last[-1] != ' ')
        last--;
    if ((bytes = parse_length(last, (size_t)(buf + n - last))) < 0 || bytes > KD_STORE_VALUE_MAX)
        return get_failed(buf, (size_t)n, detail, detail_len);
    if (len < (size_t)n + 2 + (size_t)bytes + 7)
        return KD_STORE_INCOMPLETE;
    if (memcmp(buf + n + 2 + bytes, "\r\nEND\r\n", 7) != 0)
        return get_failed("(a value without its END)", 25, detail, detail_len);
    *value = (const unsigned char *)buf + n + 2;
    *value_len = (size_t)bytes;
    *used = (size_t)n + 2 + (size_t)bytes + 7;
    return KD_STORE_FOUND;
}

/* redis: "$N\r\n" DATA "\r\n", or "$-1\r\n" (RESP2) / "_\r\n" (RESP3). */
static kd_store_answer redis_get_reply(const char *buf, size_t len, size_t *used,
                                       const unsigned char **value, size_t *value_len,
                                       const char **detail, size_t *detail_len)
{
    long n = line_length(buf, len), bytes;

    if (n < 0)
        return len < KD_STORE_REPLY_MAX ? KD_STORE_INCOMPLETE
                                        : get_failed("(reply line too long)", 21, detail,
                                                     detail_len);
    if (line_is(buf, n, "$-1") || line_is(buf, n, "_")) {
        *used = (size_t)n + 2;
        return KD_STORE_ABSENT;
    }
    if (n < 2 || buf[0] != '$' || (bytes = parse_length(buf + 1, (size_t)n - 1)) < 0
        || bytes > KD_STORE_VALUE_MAX)
        return get_failed(buf, (size_t)n, detail, detail_len);
    if (len < (size_t)n + 2 + (size_t)bytes + 2)
        return KD_STORE_INCOMPLETE;
    if (memcmp(buf + n + 2 + bytes, "\r\n", 2) != 0)
        return get_failed("(a value without its end)", 25, detail, detail_len);
    *value = (const unsigned char *)buf + n + 2;
    *value_len = (size_t)bytes;
    *used = (size_t)n + 2 + (size_t)bytes + 2;
    return KD_STORE_FOUND;
}

kd_store_answer kd_store_get_reply(kd_store_kind kind, const char *buf, size_t len,
                                   size_t *used, const unsigned char **value,
                                   size_t *value_len, const char **detail, size_t *detail_len)
{
    *detail = NULL;
    *detail_len = 0;
    *value = NULL;
    *value_len = 0;
    return kind == KD_STORE_MEMCACHE
               ? memcache_get_reply(buf, len, used, value, value_len, detail, detail_len)
               : redis_get_reply(buf, len, used, value, value_len, detail, detail_len);
}

/* ------------------------------------------------------------ eviction */

const char *kd_store_eviction_question(kd_store_kind kind)
{
    return kind == KD_STORE_MEMCACHE
               ? "stats settings\r\n"
               : "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$16\r\nmaxmemory-policy\r\n";
}

static const char *find(const char *buf, size_t len, const char *text)
{
    size_t n = strlen(text), i;

    for (i = 0; n <= len && i <= len - n; i++)
        if (memcmp(buf + i, text, n) == 0)
            return buf + i;
    return NULL;
}

/* memcached lists its settings and ends with END; "evictions off" is -M. */
static int memcache_never_evicts(const char *buf, size_t len)
{
    if (find(buf, len, "END\r\n") == NULL)
        return find(buf, len, "ERROR") ? -1 : -2;
    if (find(buf, len, "STAT evictions off\r\n"))
        return 1;
    return find(buf, len, "STAT evictions on\r\n") ? 0 : -1;
}

/* redis: *2 $16 maxmemory-policy $N POLICY. Only noeviction keeps live
 * keys; the volatile-* policies evict exactly ours, which have a TTL. */
static int redis_never_evicts(const char *buf, size_t len)
{
    const char *name = find(buf, len, "maxmemory-policy\r\n"), *value;
    long n;

    if ((len > 0 && buf[0] == '-') || (len >= 4 && memcmp(buf, "*0\r\n", 4) == 0))
        return -1; /* CONFIG renamed or refused (ACL), or no such setting */
    if (name == NULL)
        return len < KD_STORE_REPLY_MAX ? -2 : -1;
    value = name + strlen("maxmemory-policy\r\n");
    n = line_length(value, len - (size_t)(value - buf));
    if (n < 0)
        return -2;
    value += n + 2; /* past "$N" */
    n = line_length(value, len - (size_t)(value - buf));
    if (n < 0)
        return -2;
    return line_is(value, n, "noeviction") ? 1 : 0;
}

int kd_store_never_evicts(kd_store_kind kind, const char *reply, size_t len)
{
    return kind == KD_STORE_MEMCACHE ? memcache_never_evicts(reply, len)
                                     : redis_never_evicts(reply, len);
}
