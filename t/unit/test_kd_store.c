#include "kd_unit.h"

#include <string.h>
#include "kd_session.h"
#include "kd_store.h"

START_TEST(specs_parse_and_bad_ones_say_why)
{
    kd_store_kind kind;
    char *host;
    int port;

    ck_assert_ptr_null(kd_store_parse(kd_test_pool, "memcache:127.0.0.1:11211", &kind, &host,
                                      &port));
    ck_assert_int_eq(kind, KD_STORE_MEMCACHE);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(port, 11211);
    ck_assert_ptr_null(kd_store_parse(kd_test_pool, "redis:[::1]:6379", &kind, &host, &port));
    ck_assert_int_eq(kind, KD_STORE_REDIS);
    ck_assert_str_eq(host, "::1");
    ck_assert_int_eq(port, 6379);
    ck_assert_ptr_null(kd_store_parse(kd_test_pool, "redis:store.example.test:1", &kind, &host,
                                      &port));
    ck_assert_str_eq(host, "store.example.test");
    ck_assert_ptr_nonnull(kd_store_parse(kd_test_pool, "shmcb:1", &kind, &host, &port));
    ck_assert_ptr_nonnull(kd_store_parse(kd_test_pool, "redis:host", &kind, &host, &port));
    ck_assert_ptr_nonnull(kd_store_parse(kd_test_pool, "redis::6379", &kind, &host, &port));
    ck_assert_ptr_nonnull(kd_store_parse(kd_test_pool, "redis:h:0", &kind, &host, &port));
    ck_assert_ptr_nonnull(kd_store_parse(kd_test_pool, "redis:h:65536", &kind, &host, &port));
    ck_assert_ptr_nonnull(kd_store_parse(kd_test_pool, "redis:h:63x", &kind, &host, &port));
    ck_assert_ptr_nonnull(kd_store_parse(kd_test_pool, "redis:[::1]6379", &kind, &host, &port));
    ck_assert_ptr_nonnull(kd_store_parse(kd_test_pool, "memcache:a b:1", &kind, &host, &port));
}
END_TEST

/* Keys are HMACs under the farm key: the same data gives the same key on
 * every node with the same key, nothing of the data shows, and another
 * key or another use gives another key. */
START_TEST(keys_depend_on_key_kind_and_data_only)
{
    unsigned char k1[32], k2[32];
    char a[KD_STORE_KEY_MAX], b[KD_STORE_KEY_MAX];
    const unsigned char tag[] = "0123456789abcdef";

    memset(k1, 1, sizeof(k1));
    memset(k2, 2, sizeof(k2));
    kd_store_key(k1, "r", tag, 16, a);
    kd_store_key(k1, "r", tag, 16, b);
    ck_assert_str_eq(a, b);
    ck_assert_int_eq(strlen(a), strlen("kdeleg:r:") + 2 * KD_STORE_MAC_BYTES);
    ck_assert_int_eq(strncmp(a, "kdeleg:r:", 9), 0);
    ck_assert_ptr_null(strstr(a, "0123456789abcdef"));
    kd_store_key(k2, "r", tag, 16, b);
    ck_assert_str_ne(a, b);
    kd_store_key(k1, "t", tag, 16, b);
    ck_assert_int_eq(strncmp(b, "kdeleg:t:", 9), 0);
    ck_assert_str_ne(a + 9, b + 9); /* not the same MAC under another label */
    kd_store_key(k1, "r", tag, 15, b);
    ck_assert_str_ne(a, b);
}
END_TEST

/* The farm keys come from the key file by HKDF: deterministic, label
 * separated, and different from the key itself. */
START_TEST(farm_keys_are_derived_per_label)
{
    const char *err;
    const char file[] = "# farm\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    kd_session_keys *keys = kd_session_keys_parse(kd_test_pool, file, strlen(file), &err);
    unsigned char a[32], b[32], c[32], raw[32];
    int i;

    ck_assert_ptr_nonnull(keys);
    ck_assert_int_eq(kd_session_keys_derive(keys, 0, "replay claim v1", a), 0);
    ck_assert_int_eq(kd_session_keys_derive(keys, 0, "replay claim v1", b), 0);
    ck_assert_int_eq(kd_session_keys_derive(keys, 0, "ticket cache v1", c), 0);
    ck_assert_int_eq(memcmp(a, b, 32), 0);
    ck_assert_int_ne(memcmp(a, c, 32), 0);
    for (i = 0; i < 32; i++)
        raw[i] = (unsigned char)i;
    ck_assert_int_ne(memcmp(a, raw, 32), 0);
    ck_assert_int_eq(kd_session_keys_derive(keys, 1, "replay claim v1", a), -1);
}
END_TEST

START_TEST(claim_requests_are_atomic_commands)
{
    char buf[512];
    size_t len = 0;

    ck_assert_int_eq(kd_store_claim_request(KD_STORE_MEMCACHE, "kdeleg:r:ab", 660, buf,
                                            sizeof(buf), &len), 0);
    ck_assert_int_eq(kd_store_claim_request(KD_STORE_MEMCACHE, "kdeleg:r:cd", 660, buf,
                                            sizeof(buf), &len), 0);
    buf[len] = '\0';
    ck_assert_str_eq(buf, "add kdeleg:r:ab 0 660 1\r\n1\r\nadd kdeleg:r:cd 0 660 1\r\n1\r\n");
    len = 0;
    ck_assert_int_eq(kd_store_claim_request(KD_STORE_REDIS, "kdeleg:r:ab", 660, buf,
                                            sizeof(buf), &len), 0);
    buf[len] = '\0';
    ck_assert_str_eq(buf, "*6\r\n$3\r\nSET\r\n$11\r\nkdeleg:r:ab\r\n$1\r\n1\r\n$2\r\nNX\r\n"
                          "$2\r\nEX\r\n$3\r\n660\r\n");
    len = 0;
    ck_assert_int_eq(kd_store_claim_request(KD_STORE_REDIS, "kdeleg:r:ab", 660, buf, 20, &len),
                     -1);
}
END_TEST

static kd_store_answer reply(kd_store_kind kind, const char *text, size_t *used,
                             const char **detail)
{
    size_t detail_len;

    return kd_store_claim_reply(kind, text, strlen(text), used, detail, &detail_len);
}

START_TEST(claim_replies_parse)
{
    size_t used = 0;
    const char *detail;

    ck_assert_int_eq(reply(KD_STORE_MEMCACHE, "STORED\r\nNOT_", &used, &detail),
                     KD_STORE_CLAIMED);
    ck_assert_uint_eq(used, 8);
    ck_assert_int_eq(reply(KD_STORE_MEMCACHE, "NOT_STORED\r\n", &used, &detail),
                     KD_STORE_TAKEN);
    ck_assert_int_eq(reply(KD_STORE_MEMCACHE, "NOT_STO", &used, &detail), KD_STORE_INCOMPLETE);
    ck_assert_int_eq(reply(KD_STORE_MEMCACHE, "STORED\r", &used, &detail), KD_STORE_INCOMPLETE);
    ck_assert_int_eq(reply(KD_STORE_MEMCACHE, "SERVER_ERROR out of memory storing object\r\n",
                           &used, &detail), KD_STORE_FAILED);
    ck_assert_int_eq(strncmp(detail, "SERVER_ERROR out of memory", 26), 0);
    ck_assert_int_eq(reply(KD_STORE_MEMCACHE, "+OK\r\n", &used, &detail), KD_STORE_FAILED);
    ck_assert_int_eq(reply(KD_STORE_REDIS, "+OK\r\n", &used, &detail), KD_STORE_CLAIMED);
    ck_assert_int_eq(reply(KD_STORE_REDIS, "$-1\r\n", &used, &detail), KD_STORE_TAKEN);
    ck_assert_int_eq(reply(KD_STORE_REDIS, "_\r\n", &used, &detail), KD_STORE_TAKEN);
    ck_assert_int_eq(reply(KD_STORE_REDIS, "-OOM command not allowed\r\n", &used, &detail),
                     KD_STORE_FAILED);
    ck_assert_int_eq(reply(KD_STORE_REDIS, "STORED\r\n", &used, &detail), KD_STORE_FAILED);
    ck_assert_int_eq(reply(KD_STORE_REDIS, "", &used, &detail), KD_STORE_INCOMPLETE);
}
END_TEST

/* A store that talks without end is not waited for. */
START_TEST(overlong_reply_fails)
{
    char buf[KD_STORE_REPLY_MAX + 10];
    size_t used, detail_len;
    const char *detail;

    memset(buf, 'x', sizeof(buf));
    ck_assert_int_eq(kd_store_claim_reply(KD_STORE_REDIS, buf, sizeof(buf), &used, &detail,
                                          &detail_len), KD_STORE_FAILED);
    ck_assert_int_eq(kd_store_claim_reply(KD_STORE_REDIS, buf, 100, &used, &detail,
                                          &detail_len), KD_STORE_INCOMPLETE);
}
END_TEST

static int evicts(kd_store_kind kind, const char *text)
{
    return kd_store_never_evicts(kind, text, strlen(text));
}

/* A set carries the value with its length (binary-safe) and the expiry. */
START_TEST(set_requests_frame_binary_values)
{
    const unsigned char value[] = {'a', 0, '\r', '\n', 0xff};
    char *req;
    size_t len;

    ck_assert_int_eq(kd_store_set_request(kd_test_pool, KD_STORE_MEMCACHE, "kdeleg:t:ab", value,
                                          sizeof(value), 600, &req, &len), 0);
    ck_assert_uint_eq(len, strlen("set kdeleg:t:ab 0 600 5\r\n") + 5 + 2);
    ck_assert_mem_eq(req, "set kdeleg:t:ab 0 600 5\r\na\0\r\n\xff\r\n", len);
    ck_assert_int_eq(kd_store_set_request(kd_test_pool, KD_STORE_REDIS, "k", value,
                                          sizeof(value), 7, &req, &len), 0);
    ck_assert_mem_eq(req, "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\0\r\n\xff\r\n"
                          "$2\r\nEX\r\n$1\r\n7\r\n", len);
    ck_assert_int_ne(kd_store_set_request(kd_test_pool, KD_STORE_REDIS, "k", value,
                                          KD_STORE_VALUE_MAX + 1, 7, &req, &len), 0);
    ck_assert_int_eq(kd_store_get_request(kd_test_pool, KD_STORE_MEMCACHE, "k", &req, &len), 0);
    ck_assert_str_eq(req, "get k\r\n");
    ck_assert_int_eq(kd_store_get_request(kd_test_pool, KD_STORE_REDIS, "k", &req, &len), 0);
    ck_assert_str_eq(req, "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
}
END_TEST

static kd_store_answer get(kd_store_kind kind, const char *reply, size_t len,
                           const unsigned char **value, size_t *value_len, size_t *used)
{
    const char *detail;
    size_t detail_len;

    return kd_store_get_reply(kind, reply, len, used, value, value_len, &detail, &detail_len);
}

/* Found, absent, every truncation incomplete, and lies refused. */
START_TEST(get_replies_parse)
{
    static const char mc[] = "VALUE kdeleg:t:ab 0 5\r\na\0\r\n\xff\r\nEND\r\n";
    static const char rd[] = "$5\r\na\0\r\n\xff\r\n";
    const unsigned char *value;
    size_t value_len, used, i;

    ck_assert_int_eq(get(KD_STORE_MEMCACHE, mc, sizeof(mc) - 1, &value, &value_len, &used),
                     KD_STORE_FOUND);
    ck_assert_uint_eq(value_len, 5);
    ck_assert_mem_eq(value, "a\0\r\n\xff", 5);
    ck_assert_uint_eq(used, sizeof(mc) - 1);
    ck_assert_int_eq(get(KD_STORE_REDIS, rd, sizeof(rd) - 1, &value, &value_len, &used),
                     KD_STORE_FOUND);
    ck_assert_mem_eq(value, "a\0\r\n\xff", 5);
    for (i = 0; i < sizeof(mc) - 1; i++)
        ck_assert_int_eq(get(KD_STORE_MEMCACHE, mc, i, &value, &value_len, &used),
                         KD_STORE_INCOMPLETE);
    for (i = 0; i < sizeof(rd) - 1; i++)
        ck_assert_int_eq(get(KD_STORE_REDIS, rd, i, &value, &value_len, &used),
                         KD_STORE_INCOMPLETE);
    ck_assert_int_eq(get(KD_STORE_MEMCACHE, "END\r\n", 5, &value, &value_len, &used),
                     KD_STORE_ABSENT);
    ck_assert_int_eq(get(KD_STORE_REDIS, "$-1\r\n", 5, &value, &value_len, &used),
                     KD_STORE_ABSENT);
    ck_assert_int_eq(get(KD_STORE_REDIS, "_\r\n", 3, &value, &value_len, &used),
                     KD_STORE_ABSENT);
    /* errors, lies about the length, values over the limit */
    ck_assert_int_eq(get(KD_STORE_MEMCACHE, "SERVER_ERROR x\r\n", 16, &value, &value_len, &used),
                     KD_STORE_FAILED);
    ck_assert_int_eq(get(KD_STORE_MEMCACHE, "VALUE k 0 2\r\nabcdEND\r\n", 22, &value,
                         &value_len, &used), KD_STORE_FAILED);
    ck_assert_int_eq(get(KD_STORE_MEMCACHE, "VALUE k 0 99999999\r\n", 20, &value, &value_len,
                         &used), KD_STORE_FAILED);
    ck_assert_int_eq(get(KD_STORE_REDIS, "$70000\r\n", 8, &value, &value_len, &used),
                     KD_STORE_FAILED);
    ck_assert_int_eq(get(KD_STORE_REDIS, "$-5\r\n", 5, &value, &value_len, &used),
                     KD_STORE_FAILED);
    ck_assert_int_eq(get(KD_STORE_REDIS, "-ERR wrong\r\n", 12, &value, &value_len, &used),
                     KD_STORE_FAILED);
    ck_assert_int_eq(get(KD_STORE_REDIS, "$2\r\nabcd", 8, &value, &value_len, &used),
                     KD_STORE_FAILED);
}
END_TEST

START_TEST(eviction_policy_is_read)
{
    ck_assert_int_eq(evicts(KD_STORE_MEMCACHE, "STAT maxbytes 67108864\r\nSTAT evictions off\r\n"
                                               "STAT growth_factor 1.25\r\nEND\r\n"), 1);
    ck_assert_int_eq(evicts(KD_STORE_MEMCACHE, "STAT evictions on\r\nEND\r\n"), 0);
    ck_assert_int_eq(evicts(KD_STORE_MEMCACHE, "STAT evictions on\r\n"), -2);
    ck_assert_int_eq(evicts(KD_STORE_MEMCACHE, "STAT other 1\r\nEND\r\n"), -1);
    ck_assert_int_eq(evicts(KD_STORE_MEMCACHE, "ERROR\r\n"), -1);
    ck_assert_int_eq(evicts(KD_STORE_REDIS, "*2\r\n$16\r\nmaxmemory-policy\r\n$10\r\n"
                                            "noeviction\r\n"), 1);
    ck_assert_int_eq(evicts(KD_STORE_REDIS, "*2\r\n$16\r\nmaxmemory-policy\r\n$12\r\n"
                                            "volatile-lru\r\n"), 0);
    ck_assert_int_eq(evicts(KD_STORE_REDIS, "*2\r\n$16\r\nmaxmemory-policy\r\n$10\r\nnoev"), -2);
    ck_assert_int_eq(evicts(KD_STORE_REDIS, "*2\r\n$16\r\nmaxmemory-po"), -2);
    ck_assert_int_eq(evicts(KD_STORE_REDIS, "-ERR unknown command 'CONFIG'\r\n"), -1);
    ck_assert_int_eq(evicts(KD_STORE_REDIS, "*0\r\n"), -1);
}
END_TEST

Suite *kd_store_suite(void)
{
    Suite *s = suite_create("kd_store");
    TCase *tc = tcase_create("store");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);

    tcase_add_test(tc, specs_parse_and_bad_ones_say_why);
    tcase_add_test(tc, keys_depend_on_key_kind_and_data_only);
    tcase_add_test(tc, farm_keys_are_derived_per_label);
    tcase_add_test(tc, claim_requests_are_atomic_commands);
    tcase_add_test(tc, claim_replies_parse);
    tcase_add_test(tc, overlong_reply_fails);
    tcase_add_test(tc, eviction_policy_is_read);
    tcase_add_test(tc, set_requests_frame_binary_values);
    tcase_add_test(tc, get_replies_parse);
    suite_add_tcase(s, tc);
    return s;
}
