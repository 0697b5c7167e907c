#include "kd_unit.h"

#include <stdlib.h>
#include <string.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include "kd_ticket_cache.h"

/* An in-memory store standing in for the socache. */
typedef struct {
    apr_hash_t *entries;
    int puts;
} mem_store;

static int mem_get(void *baton, apr_pool_t *p, const unsigned char *id, unsigned id_len,
                   unsigned char **value, unsigned *value_len)
{
    mem_store *m = baton;
    const char *v = apr_hash_get(m->entries, id, id_len);

    if (v == NULL)
        return 0;
    memcpy(value_len, v, sizeof(unsigned));
    *value = apr_pmemdup(p, v + sizeof(unsigned), *value_len);
    return 1;
}

static void mem_put(void *baton, apr_pool_t *p, const unsigned char *id, unsigned id_len,
                    apr_time_t expiry, const unsigned char *value, unsigned value_len)
{
    mem_store *m = baton;
    char *v = apr_palloc(kd_test_pool, sizeof(unsigned) + value_len);

    memcpy(v, &value_len, sizeof(unsigned));
    memcpy(v + sizeof(unsigned), value, value_len);
    apr_hash_set(m->entries, apr_pmemdup(kd_test_pool, id, id_len), id_len, v);
    m->puts++;
}

static krb5_creds *make_creds(krb5_context ctx, const char *client, const char *server,
                              int lifetime)
{
    static char ticket[] = "opaque-ticket-bytes";
    static unsigned char session[16] = "sixteen-byte-key";
    krb5_creds *c = calloc(1, sizeof(*c));
    krb5_timestamp now;

    krb5_timeofday(ctx, &now);
    ck_assert_int_eq(krb5_parse_name(ctx, client, &c->client), 0);
    ck_assert_int_eq(krb5_parse_name(ctx, server, &c->server), 0);
    c->times.authtime = c->times.starttime = now;
    c->times.endtime = now + lifetime;
    c->keyblock.enctype = 18;
    c->keyblock.length = sizeof(session);
    c->keyblock.contents = malloc(sizeof(session));
    memcpy(c->keyblock.contents, session, sizeof(session));
    c->ticket.length = sizeof(ticket) - 1;
    c->ticket.data = malloc(sizeof(ticket));
    memcpy(c->ticket.data, ticket, sizeof(ticket));
    return c;
}

START_TEST(hit_miss_and_isolation)
{
    unsigned char key[1][KD_SEAL_KEY_BYTES] = {{1, 2, 3}};
    mem_store m = {apr_hash_make(kd_test_pool), 0};
    kd_store store = {&m, mem_get, mem_put};
    kd_ticket_cache *c = kd_ticket_cache_create(kd_test_pool, key, 1, store);
    krb5_context ctx;
    krb5_creds *in, *out = NULL;
    apr_hash_index_t *hi;
    unsigned long hits, misses;

    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    in = make_creds(ctx, "alice@EXAMPLE.TEST", "HTTP/backend.example.test@EXAMPLE.TEST", 3600);
    ck_assert(!kd_ticket_cache_get(c, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "HTTP/node1",
                                   "HTTP/backend", &out));
    kd_ticket_cache_put(c, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "HTTP/node1",
                        "HTTP/backend", in);
    ck_assert_int_eq(m.puts, 1);
    ck_assert(kd_ticket_cache_get(c, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "HTTP/node1",
                                  "HTTP/backend", &out));
    ck_assert(krb5_principal_compare(ctx, out->client, in->client));
    ck_assert_uint_eq(out->ticket.length, in->ticket.length);
    ck_assert_mem_eq(out->ticket.data, in->ticket.data, in->ticket.length);
    krb5_free_creds(ctx, out);
    /* another user, impersonator or target is another slot */
    ck_assert(!kd_ticket_cache_get(c, kd_test_pool, ctx, "bob@EXAMPLE.TEST", "HTTP/node1",
                                   "HTTP/backend", &out));
    ck_assert(!kd_ticket_cache_get(c, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "HTTP/vip",
                                   "HTTP/backend", &out));
    ck_assert(!kd_ticket_cache_get(c, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "HTTP/node1",
                                   "HTTP/other", &out));
    /* the store holds neither names nor ticket bytes in clear */
    for (hi = apr_hash_first(kd_test_pool, m.entries); hi; hi = apr_hash_next(hi)) {
        const char *v = apr_hash_this_val(hi);
        unsigned len;
        memcpy(&len, v, sizeof(len));
        ck_assert_ptr_null(memmem(v, len + sizeof(len), "alice", 5));
        ck_assert_ptr_null(memmem(v, len + sizeof(len), "opaque-ticket", 13));
    }
    kd_ticket_cache_stats(c, &hits, &misses);
    ck_assert_uint_eq(hits, 1);
    ck_assert_uint_eq(misses, 4);
    krb5_free_creds(ctx, in);
    krb5_free_context(ctx);
}
END_TEST

START_TEST(nearly_expired_tickets_are_not_cached)
{
    unsigned char key[1][KD_SEAL_KEY_BYTES] = {{9}};
    mem_store m = {apr_hash_make(kd_test_pool), 0};
    kd_store store = {&m, mem_get, mem_put};
    kd_ticket_cache *c = kd_ticket_cache_create(kd_test_pool, key, 1, store);
    krb5_context ctx;
    krb5_creds *in;

    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    in = make_creds(ctx, "alice@EXAMPLE.TEST", "HTTP/b@EXAMPLE.TEST", KD_TICKET_MARGIN_SEC / 2);
    kd_ticket_cache_put(c, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "i", "t", in);
    ck_assert_int_eq(m.puts, 0);
    krb5_free_creds(ctx, in);
    krb5_free_context(ctx);
}
END_TEST

/* Two nodes in the middle of a key rotation: the one with [new, old]
 * reads what the one with [old] wrote, and the other way round only once
 * both have the new key; a node with an unrelated key sees nothing. */
START_TEST(rotation_and_foreign_keys)
{
    unsigned char old_only[1][KD_SEAL_KEY_BYTES] = {{7}};
    unsigned char new_old[2][KD_SEAL_KEY_BYTES] = {{8}, {7}};
    unsigned char foreign[1][KD_SEAL_KEY_BYTES] = {{5}};
    mem_store m = {apr_hash_make(kd_test_pool), 0};
    kd_store store = {&m, mem_get, mem_put};
    kd_ticket_cache *a = kd_ticket_cache_create(kd_test_pool, old_only, 1, store);
    kd_ticket_cache *b = kd_ticket_cache_create(kd_test_pool, new_old, 2, store);
    kd_ticket_cache *x = kd_ticket_cache_create(kd_test_pool, foreign, 1, store);
    krb5_context ctx;
    krb5_creds *in, *out = NULL;

    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    in = make_creds(ctx, "alice@EXAMPLE.TEST", "HTTP/b@EXAMPLE.TEST", 3600);
    kd_ticket_cache_put(a, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "i", "t", in);
    ck_assert(kd_ticket_cache_get(b, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "i", "t", &out));
    krb5_free_creds(ctx, out);
    ck_assert(!kd_ticket_cache_get(x, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "i", "t", &out));
    kd_ticket_cache_put(b, kd_test_pool, ctx, "bob@EXAMPLE.TEST", "i", "t", in);
    ck_assert(!kd_ticket_cache_get(a, kd_test_pool, ctx, "bob@EXAMPLE.TEST", "i", "t", &out));
    krb5_free_creds(ctx, in);
    krb5_free_context(ctx);
}
END_TEST

/* A ticket older than the cache's maximum is neither kept nor served,
 * however long it lives: removed delegation rights take effect. */
START_TEST(max_lifetime_bounds_old_tickets)
{
    unsigned char key[1][KD_SEAL_KEY_BYTES] = {{3}};
    mem_store m = {apr_hash_make(kd_test_pool), 0};
    kd_store store = {&m, mem_get, mem_put};
    kd_ticket_cache *c = kd_ticket_cache_create(kd_test_pool, key, 1, store);
    krb5_context ctx;
    krb5_creds *in, *out = NULL;

    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    in = make_creds(ctx, "alice@EXAMPLE.TEST", "HTTP/b@EXAMPLE.TEST", 36000);
    kd_ticket_cache_put(c, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "i", "t", in);
    kd_ticket_cache_set_max_lifetime(c, 600);
    ck_assert(kd_ticket_cache_get(c, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "i", "t", &out));
    krb5_free_creds(ctx, out);
    /* the same entry, its ticket now 700 s old */
    in->times.starttime -= 700;
    kd_ticket_cache_put(c, kd_test_pool, ctx, "bob@EXAMPLE.TEST", "i", "t", in);
    ck_assert_int_eq(m.puts, 1); /* not kept */
    /* kept while there was no maximum, then read under one */
    in->times.starttime += 695;
    kd_ticket_cache_set_max_lifetime(c, 0);
    kd_ticket_cache_put(c, kd_test_pool, ctx, "carol@EXAMPLE.TEST", "i", "t", in);
    ck_assert_int_eq(m.puts, 2);
    kd_ticket_cache_set_max_lifetime(c, 1);
    ck_assert(!kd_ticket_cache_get(c, kd_test_pool, ctx, "carol@EXAMPLE.TEST", "i", "t", &out));
    krb5_free_creds(ctx, in);
    krb5_free_context(ctx);
}
END_TEST

/* Without a configured cache (the self-test, no mod_socache_shmcb) the
 * delegation code still calls get and put: nothing found, nothing kept. */
START_TEST(no_cache_is_no_op)
{
    krb5_context ctx;
    krb5_creds *in, *out = (krb5_creds *)&out;

    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    in = make_creds(ctx, "alice@EXAMPLE.TEST", "HTTP/b@EXAMPLE.TEST", 3600);
    kd_ticket_cache_put(NULL, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "i", "t", in);
    ck_assert_int_eq(kd_ticket_cache_get(NULL, kd_test_pool, ctx, "alice@EXAMPLE.TEST", "i", "t",
                                         &out), 0);
    ck_assert_ptr_null(out);
    krb5_free_creds(ctx, in);
    krb5_free_context(ctx);
}
END_TEST

Suite *kd_ticket_cache_suite(void)
{
    Suite *s = suite_create("kd_ticket_cache");
    TCase *tc = tcase_create("ticket_cache");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, hit_miss_and_isolation);
    tcase_add_test(tc, nearly_expired_tickets_are_not_cached);
    tcase_add_test(tc, no_cache_is_no_op);
    tcase_add_test(tc, rotation_and_foreign_keys);
    tcase_add_test(tc, max_lifetime_bounds_old_tickets);
    suite_add_tcase(s, tc);
    return s;
}
