#include "kd_unit.h"

#include <stdio.h>
#include <string.h>
#include <apr_strings.h>
#include <apr_tables.h>
#include "kd_base64.h"
#include "kd_groups.h"
#include "kd_seal.h"
#include "kd_session.h"

/* Two keys as a key file holds them (openssl rand -base64 32). */
#define KEY_A "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8M="
#define KEY_B "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define NOW 1800000000LL           /* seconds */
#define NOW_MS (NOW * 1000 + 250)  /* issued_ms is not a whole second */
#define SPN_FQDN "HTTP/vip.example.test@EXAMPLE.TEST"
#define SPN_SHORT "HTTP/vip@EXAMPLE.TEST"

static const kd_session_keys *keys(const char *text)
{
    const char *err = NULL;
    const kd_session_keys *k = kd_session_keys_parse(kd_test_pool, text, strlen(text), &err);

    ck_assert_msg(k != NULL, "key file refused: %s", err ? err : "?");
    return k;
}

static apr_array_header_t *spn_list(const char *a, const char *b)
{
    apr_array_header_t *spns = apr_array_make(kd_test_pool, 2, sizeof(const char *));

    if (a)
        APR_ARRAY_PUSH(spns, const char *) = a;
    if (b)
        APR_ARRAY_PUSH(spns, const char *) = b;
    return spns;
}

/* The site every test mints for unless it says otherwise. */
static const char *site(void)
{
    return kd_session_scope(kd_test_pool, "https", "vip.example.test", 443, "",
                            spn_list(SPN_FQDN, SPN_SHORT));
}

static kd_session alice(void)
{
    kd_session s;

    memset(&s, 0, sizeof(s));
    s.method = KD_SESSION_KERBEROS;
    s.issued_ms = NOW_MS;
    s.expires = NOW + 600;
    s.principal = "alice@EXAMPLE.TEST";
    s.spn = "HTTP/node1.example.test@EXAMPLE.TEST";
    return s;
}

static kd_session transfer(void)
{
    kd_session t = alice();
    int i;

    t.expires = NOW + KD_TRANSFER_MAX_SECONDS;
    t.origin = "https://node1.example.test:443";
    kd_state_hash("the state cookie", t.state_hash);
    for (i = 0; i < KD_TRANSFER_ID_BYTES; i++)
        t.id[i] = (unsigned char)(0xa0 + i);
    t.session_end = NOW + 36000;
    return t;
}

static char *repeat(char c, size_t n)
{
    char *s = apr_palloc(kd_test_pool, n + 1);

    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static kd_session_status open_at(const kd_session_keys *k, const char *scope, const char *value,
                                 long long now_ms)
{
    kd_session out;

    return kd_session_open(kd_test_pool, k, scope, value, now_ms, &out);
}

/* ------------------------------------------------------------ by hand */

/* base64url, unpadded, as the module writes it. */
static const char *b64url(const unsigned char *raw, size_t len)
{
    char *s = kd_b64_encode(kd_test_pool, raw, len), *c;

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

static unsigned char *unb64url(const char *value, size_t *len)
{
    char *std = apr_pstrdup(kd_test_pool, value), *c;
    unsigned char *raw;

    for (c = std; *c; c++)
        *c = *c == '-' ? '+' : *c == '_' ? '/' : *c;
    ck_assert_int_eq(kd_b64_decode(kd_test_pool, std, strlen(std), 8192, &raw, len), KD_B64_OK);
    return raw;
}

/* A value sealed by hand with KEY_A, exactly as the header describes the
 * format: version | key_id(8) | kd_seal(aad = "mod_kdeleg v2 " kind "\n" scope). */
static const char *hand_seal(int version, const char *kind, const char *scope,
                             const unsigned char *plain, size_t plain_len)
{
    const kd_session_keys *k = keys(KEY_A);
    const char *id_hex = kd_session_key_id(kd_test_pool, k, 0);
    const char *aad = apr_pstrcat(kd_test_pool, "mod_kdeleg v2 ", kind, "\n", scope, NULL);
    unsigned char *key, *blob, *raw;
    size_t key_len, blob_len, i;

    ck_assert_int_eq(kd_b64_decode(kd_test_pool, KEY_A, strlen(KEY_A), 64, &key, &key_len),
                     KD_B64_OK);
    ck_assert_uint_eq(key_len, KD_SEAL_KEY_BYTES);
    ck_assert_int_eq(kd_seal(kd_test_pool, key, (const unsigned char *)aad, strlen(aad), plain,
                             plain_len, &blob, &blob_len), 0);
    raw = apr_palloc(kd_test_pool, 1 + KD_SESSION_KEY_ID_BYTES + blob_len);
    raw[0] = (unsigned char)version;
    for (i = 0; i < KD_SESSION_KEY_ID_BYTES; i++) {
        unsigned hi, lo;
        ck_assert_int_eq(sscanf(id_hex + 2 * i, "%1x%1x", &hi, &lo), 2);
        raw[1 + i] = (unsigned char)(hi << 4 | lo);
    }
    memcpy(raw + 1 + KD_SESSION_KEY_ID_BYTES, blob, blob_len);
    return b64url(raw, 1 + KD_SESSION_KEY_ID_BYTES + blob_len);
}

typedef struct {
    unsigned char b[4096];
    size_t n;
} plain;

static void tlv(plain *w, int tag, const void *data, size_t n)
{
    ck_assert_uint_le(w->n + 3 + n, sizeof(w->b));
    w->b[w->n] = (unsigned char)tag;
    w->b[w->n + 1] = (unsigned char)(n >> 8);
    w->b[w->n + 2] = (unsigned char)n;
    memcpy(w->b + w->n + 3, data, n);
    w->n += 3 + n;
}

static void tlv_time(plain *w, int tag, long long v)
{
    unsigned char b[8];
    int i;

    for (i = 7; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)(v & 0xff);
    tlv(w, tag, b, 8);
}

static void tlv_str(plain *w, int tag, const char *s)
{
    tlv(w, tag, s, strlen(s));
}

/* The session fields of alice() in tag order (1 method .. 5 spn). */
static void session_fields(plain *w)
{
    unsigned char method = KD_SESSION_KERBEROS;

    tlv(w, 1, &method, 1);
    tlv_time(w, 2, NOW_MS);
    tlv_time(w, 3, NOW + 600);
    tlv_str(w, 4, "alice@EXAMPLE.TEST");
    tlv_str(w, 5, "HTTP/node1.example.test@EXAMPLE.TEST");
}

/* A user in n groups, RIDs 1105 on, step apart, with two extra SIDs and
 * (with_res) two resource groups. */
static const kd_groups *groups_of(int n, uint32_t step, int with_res)
{
    static const char *extra[] = {"S-1-18-1", "S-1-5-21-7-8-9-1000"};
    static kd_pac_group res[] = {{2001, 0x20000007}, {2002, 0x20000007}};
    kd_pac_group *g = apr_palloc(kd_test_pool, sizeof(*g) * (size_t)(n + 1));
    kd_logon_info li;
    int i;

    memset(&li, 0, sizeof(li));
    li.domain_sid = "S-1-5-21-1000-2000-3000";
    li.primary_group_rid = 513;
    for (i = 0; i < n; i++) {
        g[i].rid = 1105 + (uint32_t)i * step;
        g[i].attributes = 7;
    }
    li.groups = g;
    li.n_groups = n;
    li.extra_sids = extra;
    li.n_extra_sids = 2;
    if (with_res) {
        li.resource_domain_sid = "S-1-5-21-4-5-6";
        li.resource_groups = res;
        li.n_resource_groups = 2;
    }
    return kd_groups_from_logon_info(kd_test_pool, &li);
}

/* ------------------------------------------------------------ sessions */

START_TEST(roundtrip_keeps_every_field)
{
    const kd_session_keys *k = keys(KEY_A "\n");
    kd_session in = alice(), out;
    const char *cookie;

    in.method = KD_SESSION_PROTOCOL_TRANSITION;
    cookie = kd_session_seal(kd_test_pool, k, site(), &in);
    ck_assert_ptr_nonnull(cookie);
    ck_assert_uint_le(strlen(cookie), KD_SESSION_MAX_COOKIE);
    ck_assert_int_eq(strspn(cookie, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789-_"), strlen(cookie)); /* cookie-safe */
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, site(), cookie, NOW_MS + 1, &out),
                     KD_SESSION_OK);
    ck_assert_int_eq(out.method, KD_SESSION_PROTOCOL_TRANSITION);
    ck_assert(out.issued_ms == NOW_MS);
    ck_assert(out.expires == NOW + 600);
    ck_assert_str_eq(out.principal, "alice@EXAMPLE.TEST");
    ck_assert_str_eq(out.spn, "HTTP/node1.example.test@EXAMPLE.TEST");
    ck_assert_ptr_null(out.origin); /* transfer fields stay empty */
    ck_assert(out.session_end == 0);
    /* Nothing of the principal shows through, and two seals differ (nonce). */
    ck_assert_ptr_null(strstr(cookie, "alice"));
    ck_assert_str_ne(cookie, kd_session_seal(kd_test_pool, k, site(), &in));
    in.method = KD_SESSION_KERBEROS;
    cookie = kd_session_seal(kd_test_pool, k, site(), &in);
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, site(), cookie, NOW_MS, &out),
                     KD_SESSION_OK);
    ck_assert_int_eq(out.method, KD_SESSION_KERBEROS);
}
END_TEST

START_TEST(scope_string_is_stable)
{
    /* The scope is associated data: changing its layout logs everyone out. */
    ck_assert_str_eq(site(), "https://vip.example.test:443\nscope=\n"
                             "spn=" SPN_FQDN "\nspn=" SPN_SHORT "\n");
    ck_assert_str_eq(kd_session_scope(kd_test_pool, "http", "VIP.Example.Test", 80, "app", NULL),
                     "http://vip.example.test:80\nscope=app\n");
    ck_assert_str_eq(kd_session_scope(kd_test_pool, "http", "h", 80, NULL, spn_list(NULL, NULL)),
                     kd_session_scope(kd_test_pool, "http", "h", 80, "", NULL));
}
END_TEST

START_TEST(scope_binds_scheme_host_port_name_and_spns)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = alice(), out;
    const char *cookie = kd_session_seal(kd_test_pool, k, site(), &in);
    struct {
        const char *scheme, *host;
        int port;
        const char *name, *spn1, *spn2;
        kd_session_status want;
    } cases[] = {
        {"https", "vip.example.test", 443, "", SPN_FQDN, SPN_SHORT, KD_SESSION_OK},
        /* SPN order and host case do not matter */
        {"https", "vip.example.test", 443, "", SPN_SHORT, SPN_FQDN, KD_SESSION_OK},
        {"https", "VIP.Example.TEST", 443, NULL, SPN_SHORT, SPN_FQDN, KD_SESSION_OK},
        /* everything else does */
        {"http", "vip.example.test", 443, "", SPN_FQDN, SPN_SHORT, KD_SESSION_BAD_SEAL},
        {"https", "vip2.example.test", 443, "", SPN_FQDN, SPN_SHORT, KD_SESSION_BAD_SEAL},
        {"https", "vip.example.test.", 443, "", SPN_FQDN, SPN_SHORT, KD_SESSION_BAD_SEAL},
        {"https", "vip.example.test", 8443, "", SPN_FQDN, SPN_SHORT, KD_SESSION_BAD_SEAL},
        {"https", "vip.example.test", 443, "app", SPN_FQDN, SPN_SHORT, KD_SESSION_BAD_SEAL},
        {"https", "vip.example.test", 443, "", SPN_FQDN, NULL, KD_SESSION_BAD_SEAL},
        {"https", "vip.example.test", 443, "", NULL, NULL, KD_SESSION_BAD_SEAL},
        {"https", "vip.example.test", 443, "", SPN_FQDN, "HTTP/other@EXAMPLE.TEST",
         KD_SESSION_BAD_SEAL},
        /* SPNs are principals: case matters there */
        {"https", "vip.example.test", 443, "", "http/vip.example.test@EXAMPLE.TEST", SPN_SHORT,
         KD_SESSION_BAD_SEAL},
    };
    size_t i;

    ck_assert_ptr_nonnull(cookie);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *scope = kd_session_scope(kd_test_pool, cases[i].scheme, cases[i].host,
                                             cases[i].port, cases[i].name,
                                             spn_list(cases[i].spn1, cases[i].spn2));
        kd_session_status st = kd_session_open(kd_test_pool, k, scope, cookie, NOW_MS, &out);

        ck_assert_msg(st == cases[i].want, "case %zu: %s", i, kd_session_status_str(st));
        if (st != KD_SESSION_OK)
            ck_assert_ptr_null(out.principal); /* nothing leaks from a refused value */
    }
    /* A cookie of a named scope opens only there. */
    cookie = kd_session_seal(kd_test_pool, k,
                             kd_session_scope(kd_test_pool, "https", "vip.example.test", 443,
                                              "app", spn_list(SPN_FQDN, SPN_SHORT)), &in);
    ck_assert_int_eq(open_at(k, site(), cookie, NOW_MS), KD_SESSION_BAD_SEAL);
    ck_assert_int_eq(open_at(k, kd_session_scope(kd_test_pool, "https", "vip.example.test", 443,
                                                 "app", spn_list(SPN_SHORT, SPN_FQDN)),
                             cookie, NOW_MS), KD_SESSION_OK);
}
END_TEST

START_TEST(expiry_and_clock_skew)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = alice(), out;
    const char *cookie = kd_session_seal(kd_test_pool, k, site(), &in);

    ck_assert_int_eq(open_at(k, site(), cookie, (NOW + 600) * 1000 - 1), KD_SESSION_OK);
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, site(), cookie, (NOW + 600) * 1000, &out),
                     KD_SESSION_EXPIRED);
    ck_assert_str_eq(out.principal, "alice@EXAMPLE.TEST"); /* named in the log */
    /* Issued in the future: up to 300 s of skew between nodes is fine. */
    ck_assert_int_eq(open_at(k, site(), cookie, NOW_MS - 300 * 1000), KD_SESSION_OK);
    ck_assert_int_eq(open_at(k, site(), cookie, NOW_MS - 300 * 1000 - 1), KD_SESSION_EXPIRED);
    ck_assert_int_eq(open_at(k, site(), cookie, NOW_MS - 3600 * 1000), KD_SESSION_EXPIRED);
    /* Sealed already expired: seals, never opens. */
    in.expires = NOW - 1;
    cookie = kd_session_seal(kd_test_pool, k, site(), &in);
    if (cookie != NULL)
        ck_assert_int_eq(open_at(k, site(), cookie, NOW_MS), KD_SESSION_EXPIRED);
}
END_TEST

START_TEST(tampered_truncated_garbage)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = alice(), out;
    const char *cookie = kd_session_seal(kd_test_pool, k, site(), &in);
    char *bad = apr_pstrdup(kd_test_pool, cookie);
    size_t n = strlen(cookie), i;

    /* Every single-character change is detected, the last one too: its
     * unused low bits must be zero (one value, one spelling). */
    for (i = 0; i < n; i++) {
        char keep = bad[i];
        bad[i] = keep == 'A' ? 'B' : 'A';
        ck_assert_msg(kd_session_open(kd_test_pool, k, site(), bad, NOW_MS, &out)
                      != KD_SESSION_OK, "character %zu", i);
        ck_assert_ptr_null(out.principal);
        bad[i] = keep;
    }
    ck_assert_int_eq(open_at(k, site(), bad, NOW_MS), KD_SESSION_OK);
    for (i = 0; i < n; i++)
        ck_assert_int_ne(open_at(k, site(), apr_pstrmemdup(kd_test_pool, cookie, i), NOW_MS),
                         KD_SESSION_OK);
    ck_assert_int_ne(open_at(k, site(), apr_pstrcat(kd_test_pool, cookie, "AAAA", NULL), NOW_MS),
                     KD_SESSION_OK);
    ck_assert_int_eq(open_at(k, site(), "", NOW_MS), KD_SESSION_MALFORMED);
    ck_assert_int_eq(open_at(k, site(), NULL, NOW_MS), KD_SESSION_MALFORMED);
    ck_assert_int_eq(open_at(k, NULL, cookie, NOW_MS), KD_SESSION_MALFORMED);
    ck_assert_int_eq(open_at(k, site(), "a+b/c=", NOW_MS), KD_SESSION_MALFORMED);
    ck_assert_int_eq(open_at(k, site(), "!!!!", NOW_MS), KD_SESSION_MALFORMED);
    ck_assert_int_eq(open_at(k, site(), "AgAAAAAAAAAA", NOW_MS), KD_SESSION_MALFORMED);
    /* Standard base64 of the same bytes is not the cookie alphabet. */
    {
        size_t raw_len;
        unsigned char *raw = unb64url(cookie, &raw_len);
        const char *std = kd_b64_encode(kd_test_pool, raw, raw_len);

        if (strpbrk(std, "+/="))
            ck_assert_int_eq(open_at(k, site(), std, NOW_MS), KD_SESSION_MALFORMED);
    }
    /* Longer than any cookie we make: not even decoded. */
    ck_assert_int_eq(open_at(k, site(), repeat('A', KD_SESSION_MAX_COOKIE + 1), NOW_MS),
                     KD_SESSION_MALFORMED);
}
END_TEST

START_TEST(version_1_no_longer_opens)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = alice();
    const char *cookie = kd_session_seal(kd_test_pool, k, site(), &in);
    size_t raw_len;
    unsigned char *raw = unb64url(cookie, &raw_len);
    plain w = {{0}, 0};

    ck_assert_uint_eq(raw[0], 2);
    raw[0] = 1;
    ck_assert_int_eq(open_at(k, site(), b64url(raw, raw_len), NOW_MS), KD_SESSION_MALFORMED);
    raw[0] = 3;
    ck_assert_int_eq(open_at(k, site(), b64url(raw, raw_len), NOW_MS), KD_SESSION_MALFORMED);
    /* Even one properly sealed with a valid key. */
    session_fields(&w);
    ck_assert_int_eq(open_at(k, site(), hand_seal(1, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_OK);
}
END_TEST

START_TEST(unknown_fields_skipped_known_fields_once)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session out;
    unsigned char method = KD_SESSION_KERBEROS, two[2] = {1, 1};
    plain w;

    /* A later version's field, anywhere, empty or long, is skipped. */
    memset(&w, 0, sizeof(w));
    tlv_str(&w, 200, "from the future");
    session_fields(&w);
    tlv(&w, 255, "", 0);
    tlv_str(&w, 11, repeat('x', 2000)); /* 10 is the groups' */
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, site(),
                                     hand_seal(2, "session", site(), w.b, w.n), NOW_MS, &out),
                     KD_SESSION_OK);
    ck_assert_str_eq(out.principal, "alice@EXAMPLE.TEST");
    ck_assert_str_eq(out.spn, "HTTP/node1.example.test@EXAMPLE.TEST");
    ck_assert(out.issued_ms == NOW_MS && out.expires == NOW + 600);
    /* The same unknown tag twice is still skipped. */
    memset(&w, 0, sizeof(w));
    session_fields(&w);
    tlv_str(&w, 200, "a");
    tlv_str(&w, 200, "b");
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_OK);
    /* A known field twice: refused, whichever value would win. */
    memset(&w, 0, sizeof(w));
    session_fields(&w);
    tlv_str(&w, 4, "mallory@EXAMPLE.TEST");
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, site(),
                                     hand_seal(2, "session", site(), w.b, w.n), NOW_MS, &out),
                     KD_SESSION_MALFORMED);
    ck_assert_ptr_null(out.principal);
    memset(&w, 0, sizeof(w));
    session_fields(&w);
    tlv_time(&w, 3, NOW + 99999);
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
    /* A required field missing. */
    memset(&w, 0, sizeof(w));
    tlv(&w, 1, &method, 1);
    tlv_time(&w, 2, NOW_MS);
    tlv_time(&w, 3, NOW + 600);
    tlv_str(&w, 4, "alice@EXAMPLE.TEST");
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, 0), NOW_MS),
                     KD_SESSION_MALFORMED);
    /* A known field of the wrong size or content. */
    memset(&w, 0, sizeof(w));
    tlv(&w, 1, two, 2);
    tlv_time(&w, 2, NOW_MS);
    tlv_time(&w, 3, NOW + 600);
    tlv_str(&w, 4, "alice@EXAMPLE.TEST");
    tlv_str(&w, 5, "HTTP/node1.example.test@EXAMPLE.TEST");
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
    memset(&w, 0, sizeof(w));
    method = 3; /* no such method */
    tlv(&w, 1, &method, 1);
    tlv_time(&w, 2, NOW_MS);
    tlv_time(&w, 3, NOW + 600);
    tlv_str(&w, 4, "alice@EXAMPLE.TEST");
    tlv_str(&w, 5, "HTTP/node1.example.test@EXAMPLE.TEST");
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
    memset(&w, 0, sizeof(w));
    session_fields(&w);
    tlv_str(&w, 6, "ali\nce"); /* a control byte, even in a field a session ignores */
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
    /* A field running past the end, and a stray byte after the last one. */
    memset(&w, 0, sizeof(w));
    session_fields(&w);
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n - 1), NOW_MS),
                     KD_SESSION_MALFORMED);
    w.b[w.n++] = 200;
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
    /* Tag 0 is reserved: never written, never skipped. */
    memset(&w, 0, sizeof(w));
    session_fields(&w);
    tlv_str(&w, 0, "x");
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
    /* Times beyond 2^40 s would overflow in milliseconds: refused. */
    memset(&w, 0, sizeof(w));
    method = KD_SESSION_KERBEROS;
    tlv(&w, 1, &method, 1);
    tlv_time(&w, 2, NOW_MS);
    tlv_time(&w, 3, 1LL << 62);
    tlv_str(&w, 4, "alice@EXAMPLE.TEST");
    tlv_str(&w, 5, "HTTP/node1.example.test@EXAMPLE.TEST");
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
}
END_TEST

START_TEST(refuses_to_seal_unusable_fields)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = alice();

    ck_assert_ptr_nonnull(kd_session_seal(kd_test_pool, k, site(), &in));
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, NULL, site(), &in));
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, NULL, &in));
    in.expires = 1LL << 62; /* would overflow in milliseconds */
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    in = alice();
    in.issued_ms = 0;
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    in = alice();
    in.principal = "";
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    in.principal = NULL;
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    in = alice();
    in.spn = "";
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    in = alice();
    in.principal = repeat('a', 3000);
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    in.principal = repeat('a', 1025);
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    in = alice();
    in.method = 0;
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    in.method = 3;
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    /* fuzz_session found it: a control byte sealed, then the cookie never
     * opened; seal refuses what open would refuse */
    in = alice();
    in.principal = "\n";
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    in = alice();
    in.spn = "HTTP/x\x7f";
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    /* Bytes above 0x7f (UTF-8) are not control characters. */
    in = alice();
    in.principal = "\xc3\xa9lodie@EXAMPLE.TEST";
    ck_assert_ptr_nonnull(kd_session_seal(kd_test_pool, k, site(), &in));
}
END_TEST

START_TEST(size_cap)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = alice(), out;
    const char *cookie;
    size_t origin;

    /* The longest fields a session carries still make a cookie a browser keeps. */
    in.principal = repeat('p', 1024);
    in.spn = repeat('s', 1024);
    cookie = kd_session_seal(kd_test_pool, k, site(), &in);
    ck_assert_ptr_nonnull(cookie);
    ck_assert_uint_le(strlen(cookie), KD_SESSION_MAX_COOKIE);
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, site(), cookie, NOW_MS, &out),
                     KD_SESSION_OK);
    ck_assert_str_eq(out.principal, in.principal);
    ck_assert_str_eq(out.spn, in.spn);
    /* A transfer token has one more string: it can go over the cap, and
     * then it is not sealed. Up to the cap exactly, it is. */
    in = transfer();
    in.principal = repeat('p', 1024);
    in.spn = repeat('s', 1024);
    in.origin = repeat('o', 1024);
    ck_assert_ptr_null(kd_transfer_seal(kd_test_pool, k, &in));
    for (origin = 1024; origin > 0; origin--) {
        in.origin = repeat('o', origin);
        if ((cookie = kd_transfer_seal(kd_test_pool, k, &in)) != NULL)
            break;
    }
    ck_assert_ptr_nonnull(cookie);
    ck_assert_uint_eq(strlen(cookie), KD_SESSION_MAX_COOKIE); /* exactly the longest */
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k, cookie, NOW_MS, &out), KD_SESSION_OK);
    ck_assert_uint_eq(strlen(out.origin), origin);
}
END_TEST

START_TEST(groups_roundtrip)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = alice(), out;
    const char *cookie;

    /* without groups: none come back (no group information) */
    cookie = kd_session_seal(kd_test_pool, k, site(), &in);
    ck_assert_uint_eq(strlen(cookie), kd_session_encoded_size(&in));
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, site(), cookie, NOW_MS, &out),
                     KD_SESSION_OK);
    ck_assert_ptr_null(out.groups);
    /* with them */
    in.groups = groups_of(20, 1, 1);
    cookie = kd_session_seal(kd_test_pool, k, site(), &in);
    ck_assert_ptr_nonnull(cookie);
    ck_assert_uint_eq(strlen(cookie), kd_session_encoded_size(&in));
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, site(), cookie, NOW_MS, &out),
                     KD_SESSION_OK);
    ck_assert_str_eq(out.principal, "alice@EXAMPLE.TEST");
    ck_assert(kd_groups_equal(out.groups, in.groups));
    ck_assert(kd_groups_has_sid(out.groups, "S-1-5-21-4-5-6-2002"));
    ck_assert(kd_groups_has_sid(out.groups, "S-1-5-21-1000-2000-3000-1124"));
    ck_assert(!kd_groups_has_sid(out.groups, "S-1-5-21-1000-2000-3000-1125"));
    /* every cut of that cookie fails */
    {
        size_t i, n = strlen(cookie);

        for (i = 0; i < n; i++)
            ck_assert_int_ne(open_at(k, site(), apr_pstrmemdup(kd_test_pool, cookie, i), NOW_MS),
                             KD_SESSION_OK);
    }
    /* a transfer token carries them to the virtual name */
    in = transfer();
    in.groups = groups_of(20, 1, 1);
    cookie = kd_transfer_seal(kd_test_pool, k, &in);
    ck_assert_ptr_nonnull(cookie);
    ck_assert_uint_eq(strlen(cookie), kd_transfer_encoded_size(&in));
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k, cookie, NOW_MS, &out), KD_SESSION_OK);
    ck_assert(kd_groups_equal(out.groups, in.groups));
    /* unusable fields: no size */
    in = alice();
    in.principal = "";
    ck_assert_uint_eq(kd_session_encoded_size(&in), 0);
    ck_assert_uint_eq(kd_transfer_encoded_size(&in), 0);
}
END_TEST

START_TEST(groups_size_limit)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = alice();
    const char *cookie;
    int n, lo = 700, hi = 4000;

    /* 700 groups: consecutive RIDs, and RIDs a thousand apart */
    in.groups = groups_of(700, 1, 1);
    ck_assert_uint_le(kd_session_encoded_size(&in), 1300);
    ck_assert_ptr_nonnull(kd_session_seal(kd_test_pool, k, site(), &in));
    in.groups = groups_of(700, 1000, 1);
    ck_assert_uint_le(kd_session_encoded_size(&in), 2300);
    ck_assert_ptr_nonnull(kd_session_seal(kd_test_pool, k, site(), &in));
    /* find the most groups that fit: up to there a cookie, then none */
    in.groups = groups_of(hi, 1, 1);
    ck_assert_uint_gt(kd_session_encoded_size(&in), KD_SESSION_MAX_COOKIE);
    ck_assert_ptr_null(kd_session_seal(kd_test_pool, k, site(), &in));
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;

        in.groups = groups_of(mid, 1, 1);
        if (kd_session_encoded_size(&in) <= KD_SESSION_MAX_COOKIE)
            lo = mid;
        else
            hi = mid;
    }
    for (n = lo - 2; n <= hi + 2; n++) {
        in.groups = groups_of(n, 1, 1);
        cookie = kd_session_seal(kd_test_pool, k, site(), &in);
        ck_assert_msg((cookie != NULL) == (n <= lo), "%d groups", n);
        if (cookie)
            ck_assert_uint_eq(strlen(cookie), kd_session_encoded_size(&in));
    }
    ck_assert_int_gt(lo, 2000); /* consecutive RIDs: a byte each */
}
END_TEST

/* The groups' field by hand: refused when it is not exactly one set. */
START_TEST(groups_field_hostile)
{
    const kd_session_keys *k = keys(KEY_A);
    const kd_groups *g = groups_of(5, 3, 1);
    size_t len = kd_groups_encoded_size(g), i;
    unsigned char *enc = apr_palloc(kd_test_pool, len);
    kd_session out;
    plain w;

    ck_assert_uint_eq(kd_groups_encode(g, enc, len), len);
    memset(&w, 0, sizeof(w));
    session_fields(&w);
    tlv(&w, 10, enc, len);
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, site(),
                                     hand_seal(2, "session", site(), w.b, w.n), NOW_MS, &out),
                     KD_SESSION_OK);
    ck_assert(kd_groups_equal(out.groups, g));
    /* cut anywhere */
    for (i = 0; i < len; i++) {
        memset(&w, 0, sizeof(w));
        session_fields(&w);
        tlv(&w, 10, enc, i);
        ck_assert_msg(kd_session_open(kd_test_pool, k, site(),
                                      hand_seal(2, "session", site(), w.b, w.n), NOW_MS, &out)
                          == KD_SESSION_MALFORMED, "cut at %zu", i);
        ck_assert_ptr_null(out.groups);
    }
    /* twice */
    memset(&w, 0, sizeof(w));
    session_fields(&w);
    tlv(&w, 10, enc, len);
    tlv(&w, 10, enc, len);
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
    /* garbage, or one byte more */
    memset(&w, 0, sizeof(w));
    session_fields(&w);
    tlv_str(&w, 10, repeat('x', 200));
    ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                     KD_SESSION_MALFORMED);
    {
        unsigned char more[512];

        ck_assert_uint_lt(len + 1, sizeof(more));
        ck_assert_uint_eq(kd_groups_encode(g, more, len), len);
        more[len] = 0;
        memset(&w, 0, sizeof(w));
        session_fields(&w);
        tlv(&w, 10, more, len + 1);
        ck_assert_int_eq(open_at(k, site(), hand_seal(2, "session", site(), w.b, w.n), NOW_MS),
                         KD_SESSION_MALFORMED);
    }
}
END_TEST

START_TEST(rotation_old_key_opens_new_key_seals)
{
    const kd_session_keys *old = keys(KEY_A "\n");
    const kd_session_keys *rotated = keys("# new key first\n" KEY_B "\n\n" KEY_A "\n");
    const kd_session_keys *only_new = keys(KEY_B);
    kd_session in = alice(), t = transfer(), out;
    const char *by_old = kd_session_seal(kd_test_pool, old, site(), &in);
    const char *by_rotated = kd_session_seal(kd_test_pool, rotated, site(), &in);

    ck_assert_int_eq(kd_session_keys_count(rotated), 2);
    ck_assert_int_eq(kd_session_keys_count(NULL), 0);
    ck_assert_str_eq(kd_session_key_id(kd_test_pool, rotated, 1),
                     kd_session_key_id(kd_test_pool, old, 0));
    ck_assert_str_ne(kd_session_key_id(kd_test_pool, rotated, 0),
                     kd_session_key_id(kd_test_pool, rotated, 1));
    ck_assert_uint_eq(strlen(kd_session_key_id(kd_test_pool, old, 0)),
                      2 * KD_SESSION_KEY_ID_BYTES);
    ck_assert_int_eq(open_at(rotated, site(), by_old, NOW_MS), KD_SESSION_OK);
    ck_assert_int_eq(open_at(only_new, site(), by_rotated, NOW_MS), KD_SESSION_OK);
    /* The old key alone does not know the new one. */
    ck_assert_int_eq(open_at(old, site(), by_rotated, NOW_MS), KD_SESSION_UNKNOWN_KEY);
    /* Same for transfer tokens. */
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, rotated,
                                      kd_transfer_seal(kd_test_pool, old, &t), NOW_MS, &out),
                     KD_SESSION_OK);
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, old,
                                      kd_transfer_seal(kd_test_pool, only_new, &t), NOW_MS, &out),
                     KD_SESSION_UNKNOWN_KEY);
}
END_TEST

START_TEST(key_file_errors_name_the_line)
{
    const char *err = NULL;

    ck_assert_ptr_null(kd_session_keys_parse(kd_test_pool, "", 0, &err));
    ck_assert_ptr_nonnull(strstr(err, "no key"));
    ck_assert_ptr_null(kd_session_keys_parse(kd_test_pool, "# only\n\n  \n", 11, &err));
    ck_assert_ptr_nonnull(strstr(err, "no key"));
    ck_assert_ptr_null(kd_session_keys_parse(kd_test_pool, KEY_A "\nc2hvcnQ=\n", 54, &err));
    ck_assert_ptr_nonnull(strstr(err, "line 2"));
    ck_assert_ptr_null(kd_session_keys_parse(kd_test_pool, "#x\n" KEY_A "\n" KEY_A, 92, &err));
    ck_assert_ptr_nonnull(strstr(err, "line 3 repeats"));
    ck_assert_ptr_null(kd_session_keys_parse(kd_test_pool, "not base64 at all!", 18, &err));
    ck_assert_ptr_nonnull(strstr(err, "line 1"));
    /* Windows line ends and surrounding blanks are fine. */
    ck_assert_ptr_nonnull(kd_session_keys_parse(kd_test_pool, "  " KEY_A " \r\n", 49, &err));
    ck_assert_ptr_null(err);
}
END_TEST

/* ------------------------------------------------------------ transfer */

START_TEST(transfer_roundtrip)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = transfer(), out;
    const char *token = kd_transfer_seal(kd_test_pool, k, &in);

    ck_assert_ptr_nonnull(token);
    ck_assert_int_eq(strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-_"), strlen(token)); /* URL-safe */
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k, token, NOW_MS + 1000, &out),
                     KD_SESSION_OK);
    ck_assert_int_eq(out.method, KD_SESSION_KERBEROS);
    ck_assert(out.issued_ms == NOW_MS);
    ck_assert(out.expires == NOW + KD_TRANSFER_MAX_SECONDS);
    ck_assert(out.session_end == NOW + 36000);
    ck_assert_str_eq(out.principal, "alice@EXAMPLE.TEST");
    ck_assert_str_eq(out.spn, "HTTP/node1.example.test@EXAMPLE.TEST");
    ck_assert_str_eq(out.origin, "https://node1.example.test:443");
    ck_assert_mem_eq(out.state_hash, in.state_hash, KD_STATE_HASH_BYTES);
    ck_assert_mem_eq(out.id, in.id, KD_TRANSFER_ID_BYTES);
    ck_assert_ptr_null(strstr(token, "node1"));
}
END_TEST

START_TEST(transfer_lives_at_most_a_minute)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = transfer(), out;
    const char *token = kd_transfer_seal(kd_test_pool, k, &in);
    unsigned char method = KD_SESSION_KERBEROS;
    plain w;

    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k, token, NOW * 1000 + 59999, &out),
                     KD_SESSION_OK);
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k, token, (NOW + 60) * 1000, &out),
                     KD_SESSION_EXPIRED);
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k, token, (NOW + 3600) * 1000, &out),
                     KD_SESSION_EXPIRED);
    /* The seal refuses a longer life. */
    in.expires = NOW + KD_TRANSFER_MAX_SECONDS + 1;
    ck_assert_ptr_null(kd_transfer_seal(kd_test_pool, k, &in));
    in.expires = NOW + 3600;
    ck_assert_ptr_null(kd_transfer_seal(kd_test_pool, k, &in));
    /* A token that claims one (sealed with our key, but not by us) does not open. */
    memset(&w, 0, sizeof(w));
    tlv(&w, 1, &method, 1);
    tlv_time(&w, 2, NOW_MS);
    tlv_time(&w, 3, NOW + 3600);
    tlv_str(&w, 4, "alice@EXAMPLE.TEST");
    tlv_str(&w, 5, "HTTP/node1.example.test@EXAMPLE.TEST");
    tlv_str(&w, 6, "https://node1.example.test:443");
    tlv(&w, 7, in.state_hash, KD_STATE_HASH_BYTES);
    tlv(&w, 8, in.id, KD_TRANSFER_ID_BYTES);
    tlv_time(&w, 9, NOW + 36000);
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k,
                                      hand_seal(2, "transfer", "transfer", w.b, w.n),
                                      NOW_MS, &out), KD_SESSION_MALFORMED);
    ck_assert_ptr_null(out.principal);
    /* The same by hand with 60 s opens: the hand-built layout is right. */
    memset(&w, 0, sizeof(w));
    tlv(&w, 1, &method, 1);
    tlv_time(&w, 2, NOW_MS);
    tlv_time(&w, 3, NOW + 60);
    tlv_str(&w, 4, "alice@EXAMPLE.TEST");
    tlv_str(&w, 5, "HTTP/node1.example.test@EXAMPLE.TEST");
    tlv_str(&w, 6, "https://node1.example.test:443");
    tlv(&w, 7, in.state_hash, KD_STATE_HASH_BYTES);
    tlv(&w, 8, in.id, KD_TRANSFER_ID_BYTES);
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k,
                                      hand_seal(2, "transfer", "transfer", w.b, w.n),
                                      NOW_MS, &out), KD_SESSION_MALFORMED); /* no session_end */
    tlv_time(&w, 9, NOW + 36000);
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k,
                                      hand_seal(2, "transfer", "transfer", w.b, w.n),
                                      NOW_MS, &out), KD_SESSION_OK);
}
END_TEST

START_TEST(transfer_requires_its_fields)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session in = transfer();

    in.origin = NULL;
    ck_assert_ptr_null(kd_transfer_seal(kd_test_pool, k, &in));
    in.origin = "";
    ck_assert_ptr_null(kd_transfer_seal(kd_test_pool, k, &in));
    in.origin = "https://node1\r\n.example.test";
    ck_assert_ptr_null(kd_transfer_seal(kd_test_pool, k, &in));
    in.origin = repeat('o', 1025);
    ck_assert_ptr_null(kd_transfer_seal(kd_test_pool, k, &in));
    in = transfer();
    in.principal = "";
    ck_assert_ptr_null(kd_transfer_seal(kd_test_pool, k, &in));
    ck_assert_ptr_null(kd_transfer_seal(kd_test_pool, NULL, &in));
}
END_TEST

START_TEST(session_and_transfer_never_cross)
{
    const kd_session_keys *k = keys(KEY_A);
    kd_session s = alice(), t = transfer(), out;
    const char *cookie = kd_session_seal(kd_test_pool, k, site(), &s);
    /* even a session cookie whose scope is the transfer tokens' word */
    const char *cookie_t = kd_session_seal(kd_test_pool, k, "transfer", &t);
    const char *token = kd_transfer_seal(kd_test_pool, k, &t);

    ck_assert_ptr_nonnull(cookie);
    ck_assert_ptr_nonnull(cookie_t);
    ck_assert_ptr_nonnull(token);
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k, cookie, NOW_MS, &out),
                     KD_SESSION_BAD_SEAL);
    ck_assert_int_eq(kd_transfer_open(kd_test_pool, k, cookie_t, NOW_MS, &out),
                     KD_SESSION_BAD_SEAL);
    ck_assert_int_eq(open_at(k, site(), token, NOW_MS), KD_SESSION_BAD_SEAL);
    ck_assert_int_eq(open_at(k, "transfer", token, NOW_MS), KD_SESSION_BAD_SEAL);
    ck_assert_int_eq(open_at(k, "", token, NOW_MS), KD_SESSION_BAD_SEAL);
    /* a session cookie carries no transfer fields */
    ck_assert_int_eq(kd_session_open(kd_test_pool, k, "transfer", cookie_t, NOW_MS, &out),
                     KD_SESSION_OK);
    ck_assert_ptr_null(out.origin);
}
END_TEST

/* ------------------------------------------------------------ state, names */

START_TEST(state_cookie_and_hash)
{
    const char *a = kd_state_new(kd_test_pool), *b = kd_state_new(kd_test_pool);
    unsigned char h[KD_STATE_HASH_BYTES], h2[KD_STATE_HASH_BYTES], back[KD_STATE_HASH_BYTES];
    const char *text;
    char *bad;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(strlen(a), 43);
    ck_assert_uint_eq(strlen(b), 43);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789-_"), 43);
    kd_state_hash(a, h);
    kd_state_hash(a, h2);
    ck_assert_mem_eq(h, h2, KD_STATE_HASH_BYTES);
    kd_state_hash(b, h2);
    ck_assert_int_ne(memcmp(h, h2, KD_STATE_HASH_BYTES), 0);
    /* SHA-256("abc") */
    kd_state_hash("abc", h);
    text = kd_state_hash_encode(kd_test_pool, h);
    ck_assert_str_eq(text, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    ck_assert_int_eq(kd_state_hash_decode(kd_test_pool, text, back), 0);
    ck_assert_mem_eq(back, h, KD_STATE_HASH_BYTES);
    /* wrong length, alphabet or padding */
    ck_assert_int_ne(kd_state_hash_decode(kd_test_pool, NULL, back), 0);
    ck_assert_int_ne(kd_state_hash_decode(kd_test_pool, "", back), 0);
    ck_assert_int_ne(kd_state_hash_decode(kd_test_pool, apr_pstrndup(kd_test_pool, text, 42),
                                          back), 0);
    ck_assert_int_ne(kd_state_hash_decode(kd_test_pool, apr_pstrcat(kd_test_pool, text, "A",
                                                                    NULL), back), 0);
    ck_assert_int_ne(kd_state_hash_decode(kd_test_pool, apr_pstrcat(kd_test_pool, text, "=",
                                                                    NULL), back), 0);
    bad = apr_pstrdup(kd_test_pool, text);
    bad[10] = '+';
    ck_assert_int_ne(kd_state_hash_decode(kd_test_pool, bad, back), 0);
    bad[10] = '/';
    ck_assert_int_ne(kd_state_hash_decode(kd_test_pool, bad, back), 0);
    bad[10] = '.';
    ck_assert_int_ne(kd_state_hash_decode(kd_test_pool, bad, back), 0);
    bad[10] = ' ';
    ck_assert_int_ne(kd_state_hash_decode(kd_test_pool, bad, back), 0);
    /* a state value is itself 32 bytes in the same form */
    ck_assert_int_eq(kd_state_hash_decode(kd_test_pool, a, back), 0);
    ck_assert_str_eq(kd_state_hash_encode(kd_test_pool, back), a);
}
END_TEST

START_TEST(scope_names)
{
    ck_assert(kd_session_scope_name_ok("app-1_x"));
    ck_assert(kd_session_scope_name_ok("A"));
    ck_assert(kd_session_scope_name_ok(repeat('n', KD_SCOPE_NAME_MAX)));
    ck_assert(!kd_session_scope_name_ok(repeat('n', KD_SCOPE_NAME_MAX + 1)));
    ck_assert(!kd_session_scope_name_ok(repeat('n', 33)));
    ck_assert(!kd_session_scope_name_ok(""));
    ck_assert(!kd_session_scope_name_ok(NULL));
    ck_assert(!kd_session_scope_name_ok("a b"));
    ck_assert(!kd_session_scope_name_ok("\xc3\xa9"));
    ck_assert(!kd_session_scope_name_ok("a\nspn=x"));
    ck_assert(!kd_session_scope_name_ok("a.b"));
    ck_assert(!kd_session_scope_name_ok("a/b"));
}
END_TEST

START_TEST(names_for_logs)
{
    kd_session_status st;

    for (st = KD_SESSION_OK; st <= KD_SESSION_EXPIRED; st++)
        ck_assert_str_ne(kd_session_status_str(st), "unknown");
    ck_assert_str_eq(kd_session_status_str((kd_session_status)99), "unknown");
    ck_assert_str_eq(kd_session_method_name(KD_SESSION_KERBEROS), "kerberos");
    ck_assert_str_eq(kd_session_method_name(KD_SESSION_PROTOCOL_TRANSITION),
                     "protocol-transition");
}
END_TEST

Suite *kd_session_suite(void)
{
    Suite *s = suite_create("kd_session");
    TCase *tc = tcase_create("session");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, roundtrip_keeps_every_field);
    tcase_add_test(tc, scope_string_is_stable);
    tcase_add_test(tc, scope_binds_scheme_host_port_name_and_spns);
    tcase_add_test(tc, expiry_and_clock_skew);
    tcase_add_test(tc, tampered_truncated_garbage);
    tcase_add_test(tc, version_1_no_longer_opens);
    tcase_add_test(tc, unknown_fields_skipped_known_fields_once);
    tcase_add_test(tc, refuses_to_seal_unusable_fields);
    tcase_add_test(tc, size_cap);
    tcase_add_test(tc, groups_roundtrip);
    tcase_add_test(tc, groups_size_limit);
    tcase_add_test(tc, groups_field_hostile);
    tcase_add_test(tc, rotation_old_key_opens_new_key_seals);
    tcase_add_test(tc, key_file_errors_name_the_line);
    tcase_add_test(tc, transfer_roundtrip);
    tcase_add_test(tc, transfer_lives_at_most_a_minute);
    tcase_add_test(tc, transfer_requires_its_fields);
    tcase_add_test(tc, session_and_transfer_never_cross);
    tcase_add_test(tc, state_cookie_and_hash);
    tcase_add_test(tc, scope_names);
    tcase_add_test(tc, names_for_logs);
    suite_add_tcase(s, tc);
    return s;
}
