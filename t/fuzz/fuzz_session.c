/* Session cookies and transfer tokens: whatever a client sends as
 * kdeleg_session, or as a transfer token in a URL, must be refused cleanly
 * unless we sealed it, and a value sealed from any field values opens to
 * the same values, for its own scope and kind only. */
#include "fuzz_common.h"
#include "kd_session.h"

#define KEYS "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8M=\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
#define NOW_MS 1800000000123LL
#define MAX_FIELD 1024 /* kd_session.c */

/* What seal must accept: 1..MAX_FIELD bytes, no control characters. */
static int field_ok(const char *s)
{
    size_t i, n = strlen(s);

    if (n == 0 || n > MAX_FIELD)
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static void session_roundtrip(apr_pool_t *p, const kd_session_keys *keys, const char *scope,
                              const char *other_scope, const char *text)
{
    size_t len = strlen(text);
    kd_session s, out;
    const char *cookie;

    memset(&s, 0, sizeof(s));
    s.method = len % 2 ? KD_SESSION_KERBEROS : KD_SESSION_PROTOCOL_TRANSITION;
    s.issued_ms = NOW_MS;
    s.expires = NOW_MS / 1000 + 600;
    s.principal = apr_pstrndup(p, text, len / 2);
    s.spn = text + len / 2;
    cookie = kd_session_seal(p, keys, scope, &s);
    /* a session cookie is never too long: only unusable fields are refused */
    FUZZ_ASSERT((cookie != NULL) == (field_ok(s.principal) && field_ok(s.spn)));
    if (cookie == NULL)
        return;
    FUZZ_ASSERT(strlen(cookie) <= KD_SESSION_MAX_COOKIE);
    FUZZ_ASSERT(kd_session_open(p, keys, scope, cookie, NOW_MS, &out) == KD_SESSION_OK);
    FUZZ_ASSERT(strcmp(out.principal, s.principal) == 0 && strcmp(out.spn, s.spn) == 0);
    FUZZ_ASSERT(out.method == s.method && out.issued_ms == s.issued_ms
                && out.expires == s.expires);
    FUZZ_ASSERT(kd_session_open(p, keys, other_scope, cookie, NOW_MS, &out)
                == KD_SESSION_BAD_SEAL);
    FUZZ_ASSERT(kd_transfer_open(p, keys, cookie, NOW_MS, &out) == KD_SESSION_BAD_SEAL);
    FUZZ_ASSERT(kd_session_open(p, keys, scope, cookie, s.expires * 1000, &out)
                == KD_SESSION_EXPIRED);
}

static void transfer_roundtrip(apr_pool_t *p, const kd_session_keys *keys, const char *scope,
                               const uint8_t *data, size_t size, const char *text)
{
    size_t len = strlen(text), i;
    kd_session t, out;
    const char *token;

    memset(&t, 0, sizeof(t));
    t.method = KD_SESSION_KERBEROS;
    t.issued_ms = NOW_MS;
    t.expires = NOW_MS / 1000 + KD_TRANSFER_MAX_SECONDS;
    t.session_end = NOW_MS / 1000 + 36000;
    t.principal = apr_pstrndup(p, text, len / 3);
    t.spn = apr_pstrndup(p, text + len / 3, len / 3);
    t.origin = text + 2 * (len / 3);
    kd_state_hash(text, t.state_hash);
    for (i = 0; i < KD_TRANSFER_ID_BYTES; i++)
        t.id[i] = i < size ? data[size - 1 - i] : 0;
    token = kd_transfer_seal(p, keys, &t);
    if (!field_ok(t.principal) || !field_ok(t.spn) || !field_ok(t.origin)) {
        FUZZ_ASSERT(token == NULL);
        return;
    }
    /* beyond these lengths the token would exceed KD_SESSION_MAX_COOKIE */
    if (strlen(t.principal) + strlen(t.spn) + strlen(t.origin) <= 2700)
        FUZZ_ASSERT(token != NULL);
    if (token == NULL)
        return;
    FUZZ_ASSERT(strlen(token) <= KD_SESSION_MAX_COOKIE);
    FUZZ_ASSERT(kd_transfer_open(p, keys, token, NOW_MS, &out) == KD_SESSION_OK);
    FUZZ_ASSERT(strcmp(out.principal, t.principal) == 0 && strcmp(out.spn, t.spn) == 0
                && strcmp(out.origin, t.origin) == 0);
    FUZZ_ASSERT(memcmp(out.state_hash, t.state_hash, KD_STATE_HASH_BYTES) == 0
                && memcmp(out.id, t.id, KD_TRANSFER_ID_BYTES) == 0);
    FUZZ_ASSERT(out.issued_ms == t.issued_ms && out.expires == t.expires
                && out.session_end == t.session_end);
    FUZZ_ASSERT(kd_transfer_open(p, keys, token, t.expires * 1000, &out) == KD_SESSION_EXPIRED);
    FUZZ_ASSERT(kd_session_open(p, keys, scope, token, NOW_MS, &out) == KD_SESSION_BAD_SEAL);
    FUZZ_ASSERT(kd_session_open(p, keys, "transfer", token, NOW_MS, &out)
                == KD_SESSION_BAD_SEAL);
    /* a longer life is refused */
    t.expires++;
    FUZZ_ASSERT(kd_transfer_seal(p, keys, &t) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *err;
    const kd_session_keys *keys = kd_session_keys_parse(p, KEYS, sizeof(KEYS) - 1, &err);
    char *text = fuzz_string(p, data, size);
    apr_array_header_t *spns = apr_array_make(p, 2, sizeof(const char *));
    const char *scope, *other_scope;
    unsigned char h[KD_STATE_HASH_BYTES];
    kd_session out;
    kd_session_status st;

    FUZZ_ASSERT(keys != NULL);
    APR_ARRAY_PUSH(spns, const char *) = "HTTP/vip.example.test@EXAMPLE.TEST";
    APR_ARRAY_PUSH(spns, const char *) = "HTTP/vip@EXAMPLE.TEST";
    scope = kd_session_scope(p, "https", "vip.example.test", 443, "", spns);
    other_scope = kd_session_scope(p, "https", "vip.example.test", 443, "app", spns);

    /* forging either would be a finding */
    st = kd_session_open(p, keys, scope, text, NOW_MS, &out);
    FUZZ_ASSERT(st != KD_SESSION_OK);
    FUZZ_ASSERT(st == KD_SESSION_EXPIRED || out.principal == NULL);
    st = kd_transfer_open(p, keys, text, NOW_MS, &out);
    FUZZ_ASSERT(st != KD_SESSION_OK);
    FUZZ_ASSERT(st == KD_SESSION_EXPIRED || out.principal == NULL);

    /* the input as a state hash in a URL, and as a state cookie */
    if (kd_state_hash_decode(p, text, h) == 0) {
        unsigned char again[KD_STATE_HASH_BYTES];
        FUZZ_ASSERT(kd_state_hash_decode(p, kd_state_hash_encode(p, h), again) == 0);
        FUZZ_ASSERT(memcmp(h, again, KD_STATE_HASH_BYTES) == 0);
    }
    kd_state_hash(text, h);
    FUZZ_ASSERT(strlen(kd_state_hash_encode(p, h)) == 43);

    /* the input as a scope name and as a host */
    if (kd_session_scope_name_ok(text))
        FUZZ_ASSERT(strlen(text) <= KD_SCOPE_NAME_MAX);
    kd_session_scope(p, "https", text, 443, text, spns);

    session_roundtrip(p, keys, scope, other_scope, text);
    transfer_roundtrip(p, keys, scope, data, size, text);

    /* the input as a key file */
    kd_session_keys_parse(p, (const char *)data, size, &err);
    apr_pool_destroy(p);
    return 0;
}
