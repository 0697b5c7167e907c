/* What a shared store (memcached, redis) answers: a store is outside the
 * node, and may be compromised or speak another protocol. Whatever it
 * says, a pipeline of claim replies is read within the bytes received,
 * each reply consumes at least one line, and an answer of CLAIMED is
 * exactly the protocol's success line. Eviction replies and store specs
 * parse without reading past the input, and a get's value lies inside
 * the reply. */
#include "fuzz_common.h"
#include "kd_store.h"

static void claims(kd_store_kind kind, const char *buf, size_t len)
{
    size_t at = 0;
    int i;

    for (i = 0; i < 8 && at <= len; i++) {
        size_t used = 0, detail_len;
        const char *detail;
        kd_store_answer a = kd_store_claim_reply(kind, buf + at, len - at, &used, &detail,
                                                 &detail_len);
        if (a == KD_STORE_INCOMPLETE)
            break;
        if (a == KD_STORE_FAILED) {
            FUZZ_ASSERT(detail != NULL && detail_len <= KD_STORE_REPLY_MAX);
            break;
        }
        FUZZ_ASSERT(used >= 3 && used <= len - at);
        if (a == KD_STORE_CLAIMED)
            FUZZ_ASSERT(kind == KD_STORE_MEMCACHE ? used == 8 && memcmp(buf + at, "STORED", 6) == 0
                                                  : used == 5 && memcmp(buf + at, "+OK", 3) == 0);
        at += used;
    }
}

/* A get's reply: a value found lies inside the reply, within the limit. */
static void get_reply(kd_store_kind kind, const char *buf, size_t len)
{
    size_t used = 0, value_len, detail_len;
    const unsigned char *value;
    const char *detail;
    kd_store_answer a = kd_store_get_reply(kind, buf, len, &used, &value, &value_len, &detail,
                                           &detail_len);

    if (a == KD_STORE_FOUND) {
        FUZZ_ASSERT(value_len <= KD_STORE_VALUE_MAX && used <= len);
        FUZZ_ASSERT((const char *)value >= buf && (const char *)value + value_len <= buf + len);
    }
    if (a == KD_STORE_ABSENT)
        FUZZ_ASSERT(used >= 3 && used <= len);
    if (a == KD_STORE_FAILED)
        FUZZ_ASSERT(detail != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    /* a copy of exactly size bytes, so ASan sees any read past the reply */
    char *exact = malloc(size ? size : 1), *host;
    kd_store_kind kind;
    int port, never;

    if (exact == NULL)
        return 0;
    memcpy(exact, data, size);
    claims(KD_STORE_MEMCACHE, exact, size);
    claims(KD_STORE_REDIS, exact, size);
    get_reply(KD_STORE_MEMCACHE, exact, size);
    get_reply(KD_STORE_REDIS, exact, size);
    never = kd_store_never_evicts(KD_STORE_MEMCACHE, exact, size);
    FUZZ_ASSERT(never >= -2 && never <= 1);
    never = kd_store_never_evicts(KD_STORE_REDIS, exact, size);
    FUZZ_ASSERT(never >= -2 && never <= 1);
    if (kd_store_parse(p, fuzz_string(p, data, size), &kind, &host, &port) == NULL)
        FUZZ_ASSERT(port >= 1 && port <= 65535 && *host != '\0');
    free(exact);
    apr_pool_destroy(p);
    return 0;
}
