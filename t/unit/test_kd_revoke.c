#include "kd_unit.h"

#include <stdio.h>
#include <string.h>
#include "kd_revoke.h"

#define T0 1800000000u /* now, seconds */

static void *table(size_t slots)
{
    size_t bytes = kd_revoke_bytes_for(slots);
    void *mem = apr_palloc(kd_test_pool, bytes);

    memset(mem, 0xa5, bytes); /* shared memory need not start zeroed */
    kd_revoke_init(mem, bytes);
    return mem;
}

static const unsigned char *key_of(const char *principal)
{
    unsigned char *key = apr_palloc(kd_test_pool, KD_REVOKE_KEY_BYTES);

    kd_revoke_key(principal, key);
    return key;
}

static const unsigned char *key_n(int n)
{
    char name[64];

    snprintf(name, sizeof(name), "user%d@EXAMPLE.TEST", n);
    return key_of(name);
}

START_TEST(sizes)
{
    ck_assert_uint_eq(kd_revoke_slots_in(kd_revoke_bytes_for(8)), 8);
    ck_assert_uint_eq(kd_revoke_slots_in(kd_revoke_bytes_for(1)), 8); /* whole buckets */
    ck_assert_uint_eq(kd_revoke_slots_in(kd_revoke_bytes_for(9)), 16);
    ck_assert_uint_ge(kd_revoke_slots_in(kd_revoke_bytes_for(10000)), 10000);
    ck_assert_uint_eq(kd_revoke_slots_in(kd_revoke_bytes_for(8) - 1), 0);
    ck_assert_uint_eq(kd_revoke_slots_in(0), 0);
    ck_assert_uint_lt(kd_revoke_bytes_for(8), kd_revoke_bytes_for(16));
}
END_TEST

START_TEST(keys_are_per_principal)
{
    unsigned char a[KD_REVOKE_KEY_BYTES], b[KD_REVOKE_KEY_BYTES];

    kd_revoke_key("alice@EXAMPLE.TEST", a);
    kd_revoke_key("alice@EXAMPLE.TEST", b);
    ck_assert_mem_eq(a, b, KD_REVOKE_KEY_BYTES);
    kd_revoke_key("alice@EXAMPLE.TEST2", b);
    ck_assert_int_ne(memcmp(a, b, KD_REVOKE_KEY_BYTES), 0);
    kd_revoke_key("Alice@EXAMPLE.TEST", b); /* principals have case */
    ck_assert_int_ne(memcmp(a, b, KD_REVOKE_KEY_BYTES), 0);
}
END_TEST

START_TEST(revoke_then_check)
{
    void *mem = table(1024);
    const unsigned char *alice = key_of("alice@EXAMPLE.TEST");
    const unsigned char *bob = key_of("bob@EXAMPLE.TEST");
    long long logout = 1800000000123LL;

    ck_assert(kd_revoke_empty(mem));
    ck_assert_int_eq(kd_revoke_check(mem, alice, logout - 1, T0), 0);
    ck_assert_int_eq(kd_revoke_add(mem, alice, logout, T0 + 3600, T0), 0);
    ck_assert(!kd_revoke_empty(mem));
    /* issued before or at the logout: out; after it (a new login): in */
    ck_assert_int_eq(kd_revoke_check(mem, alice, logout - 60000, T0), 1);
    ck_assert_int_eq(kd_revoke_check(mem, alice, logout - 1, T0), 1);
    ck_assert_int_eq(kd_revoke_check(mem, alice, logout, T0), 1);
    ck_assert_int_eq(kd_revoke_check(mem, alice, logout + 1, T0), 0);
    /* nobody else is affected */
    ck_assert_int_eq(kd_revoke_check(mem, bob, logout - 1, T0), 0);
    ck_assert_int_eq(kd_revoke_check(mem, key_of("Alice@EXAMPLE.TEST"), logout - 1, T0), 0);
    ck_assert(kd_revoke_floor(mem) == 0);
}
END_TEST

START_TEST(forgotten_after_until)
{
    void *mem = table(64);
    const unsigned char *alice = key_of("alice@EXAMPLE.TEST");

    ck_assert_int_eq(kd_revoke_add(mem, alice, 5000, T0 + 600, T0), 0);
    ck_assert_int_eq(kd_revoke_check(mem, alice, 4000, T0 + 599), 1);
    /* by then every session it covered has expired anyway */
    ck_assert_int_eq(kd_revoke_check(mem, alice, 4000, T0 + 600), 0);
    ck_assert_int_eq(kd_revoke_check(mem, alice, 4000, T0 + 10000), 0);
    /* an `until` already past still revokes for now */
    ck_assert_int_eq(kd_revoke_add(mem, alice, 7000, T0 - 1, T0), 0);
    ck_assert_int_eq(kd_revoke_check(mem, alice, 6000, T0), 1);
}
END_TEST

START_TEST(widening_an_entry)
{
    void *mem = table(64);
    const unsigned char *alice = key_of("alice@EXAMPLE.TEST");

    ck_assert_int_eq(kd_revoke_add(mem, alice, 5000, T0 + 600, T0), 0);
    /* a second logout, later: more sessions out, and for longer */
    ck_assert_int_eq(kd_revoke_add(mem, alice, 9000, T0 + 1200, T0 + 10), 0);
    ck_assert_int_eq(kd_revoke_check(mem, alice, 8000, T0 + 10), 1);
    ck_assert_int_eq(kd_revoke_check(mem, alice, 9000, T0 + 10), 1);
    ck_assert_int_eq(kd_revoke_check(mem, alice, 9001, T0 + 10), 0);
    ck_assert_int_eq(kd_revoke_check(mem, alice, 4000, T0 + 900), 1);
    /* a narrower one (an older logout seen late) narrows nothing */
    ck_assert_int_eq(kd_revoke_add(mem, alice, 3000, T0 + 700, T0 + 20), 0);
    ck_assert_int_eq(kd_revoke_check(mem, alice, 8000, T0 + 20), 1);
    ck_assert_int_eq(kd_revoke_check(mem, alice, 8000, T0 + 1199), 1);
    ck_assert_int_eq(kd_revoke_check(mem, alice, 8000, T0 + 1200), 0);
    ck_assert(kd_revoke_floor(mem) == 0);
}
END_TEST

/* The key property: a full table evicts, and eviction never un-revokes. */
START_TEST(eviction_raises_the_floor_never_unrevokes)
{
    void *mem = table(8); /* one bucket: every principal shares it */
    const unsigned char *outsider = key_of("carol@EXAMPLE.TEST");
    int i;

    ck_assert_uint_eq(kd_revoke_slots_in(kd_revoke_bytes_for(8)), 8);
    /* user0 logs out first (before_ms 1000), user7 last (8000) */
    for (i = 0; i < 8; i++)
        ck_assert_int_eq(kd_revoke_add(mem, key_n(i), 1000LL * (i + 1), T0 + 3600, T0), 0);
    ck_assert(kd_revoke_floor(mem) == 0);
    /* an existing entry is widened in place: no eviction */
    ck_assert_int_eq(kd_revoke_add(mem, key_n(7), 8500, T0 + 3600, T0), 0);
    ck_assert(kd_revoke_floor(mem) == 0);
    /* a ninth principal evicts the oldest (user0) */
    ck_assert_int_eq(kd_revoke_add(mem, key_n(8), 9000, T0 + 3600, T0), 1);
    ck_assert(kd_revoke_floor(mem) == 1000);
    /* user0's old sessions are still out (by the floor) ... */
    ck_assert_int_eq(kd_revoke_check(mem, key_n(0), 1000, T0), 1);
    ck_assert_int_eq(kd_revoke_check(mem, key_n(0), 500, T0), 1);
    /* ... and a session issued after its logout is fine */
    ck_assert_int_eq(kd_revoke_check(mem, key_n(0), 1001, T0), 0);
    /* the others keep their own entries */
    for (i = 1; i <= 8; i++) {
        long long before = i == 7 ? 8500 : 1000LL * (i + 1);
        ck_assert_int_eq(kd_revoke_check(mem, key_n(i), before, T0), 1);
        ck_assert_int_eq(kd_revoke_check(mem, key_n(i), before + 1, T0), 0);
    }
    /* someone never revoked: only what the floor covers */
    ck_assert_int_eq(kd_revoke_check(mem, outsider, 1000, T0), 1);
    ck_assert_int_eq(kd_revoke_check(mem, outsider, 1001, T0), 0);
    ck_assert_int_eq(kd_revoke_check(mem, outsider, 1800000000000LL, T0), 0);
    /* the next eviction takes user1 (2000) */
    ck_assert_int_eq(kd_revoke_add(mem, key_n(9), 9500, T0 + 3600, T0), 1);
    ck_assert(kd_revoke_floor(mem) == 2000);
    ck_assert_int_eq(kd_revoke_check(mem, key_n(1), 2000, T0), 1);
    ck_assert_int_eq(kd_revoke_check(mem, key_n(0), 1000, T0), 1);
    /* an entry older than the floor evicted later does not lower it */
    ck_assert_int_eq(kd_revoke_add(mem, key_n(10), 100, T0 + 3600, T0), 1);
    ck_assert(kd_revoke_floor(mem) == 3000); /* user2 went */
    ck_assert_int_eq(kd_revoke_add(mem, key_n(11), 9900, T0 + 3600, T0), 1);
    ck_assert(kd_revoke_floor(mem) == 3000); /* user10 (100) went */
    ck_assert_int_eq(kd_revoke_check(mem, key_n(2), 3000, T0), 1);
    ck_assert_int_eq(kd_revoke_check(mem, key_n(10), 100, T0), 1);
}
END_TEST

START_TEST(expired_entries_make_room)
{
    void *mem = table(8);
    int i;

    for (i = 0; i < 8; i++)
        ck_assert_int_eq(kd_revoke_add(mem, key_n(i), 1000LL * (i + 1), T0 + 60 * (i + 1), T0),
                         0);
    /* user0's entry ran out at T0 + 60: its slot is free, nothing is evicted */
    ck_assert_int_eq(kd_revoke_add(mem, key_n(8), 9000, T0 + 3600, T0 + 60), 0);
    ck_assert(kd_revoke_floor(mem) == 0);
    for (i = 1; i <= 8; i++)
        ck_assert_int_eq(kd_revoke_check(mem, key_n(i), 1000LL * (i + 1), T0 + 60), 1);
    /* a principal whose own entry ran out gets a fresh one */
    ck_assert_int_eq(kd_revoke_add(mem, key_n(1), 20000, T0 + 3600, T0 + 120), 0);
    ck_assert_int_eq(kd_revoke_check(mem, key_n(1), 19000, T0 + 120), 1);
    ck_assert(kd_revoke_floor(mem) == 0);
}
END_TEST

START_TEST(many_principals)
{
    void *mem = table(4096);
    int i, evictions = 0;

    for (i = 0; i < 500; i++)
        evictions += kd_revoke_add(mem, key_n(i), 1000000LL + i, T0 + 3600, T0);
    /* every revoked session stays revoked, however the buckets filled */
    for (i = 0; i < 500; i++)
        ck_assert_int_eq(kd_revoke_check(mem, key_n(i), 1000000LL + i, T0), 1);
    for (i = 500; i < 1000; i++)
        ck_assert_int_eq(kd_revoke_check(mem, key_n(i), 2000000LL, T0), 0);
    ck_assert_int_eq(evictions > 0, kd_revoke_floor(mem) > 0);
}
END_TEST

START_TEST(uninitialised_memory_is_empty)
{
    size_t bytes = kd_revoke_bytes_for(64);
    void *mem = apr_pcalloc(kd_test_pool, bytes);
    const unsigned char *alice = key_of("alice@EXAMPLE.TEST");

    ck_assert(kd_revoke_empty(mem));
    ck_assert_int_eq(kd_revoke_check(mem, alice, 0, T0), 0);
    ck_assert(kd_revoke_floor(mem) == 0);
    ck_assert_int_eq(kd_revoke_add(mem, alice, 5000, T0 + 60, T0), -1); /* says so */
    ck_assert_int_eq(kd_revoke_check(mem, alice, 4000, T0), 0);
    ck_assert(kd_revoke_empty(mem));
    ck_assert(kd_revoke_empty(NULL));
    ck_assert_int_eq(kd_revoke_check(NULL, alice, 0, T0), 0);
    ck_assert(kd_revoke_floor(NULL) == 0);
    /* memory too small for one bucket stays unusable after init */
    kd_revoke_init(mem, kd_revoke_bytes_for(8) - 1);
    ck_assert(kd_revoke_empty(mem));
    ck_assert_int_eq(kd_revoke_add(mem, alice, 5000, T0 + 60, T0), -1); /* says so */
    ck_assert_int_eq(kd_revoke_check(mem, alice, 4000, T0), 0);
}
END_TEST

Suite *kd_revoke_suite(void)
{
    Suite *s = suite_create("kd_revoke");
    TCase *tc = tcase_create("revoke");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, sizes);
    tcase_add_test(tc, keys_are_per_principal);
    tcase_add_test(tc, revoke_then_check);
    tcase_add_test(tc, forgotten_after_until);
    tcase_add_test(tc, widening_an_entry);
    tcase_add_test(tc, eviction_raises_the_floor_never_unrevokes);
    tcase_add_test(tc, expired_entries_make_room);
    tcase_add_test(tc, many_principals);
    tcase_add_test(tc, uninitialised_memory_is_empty);
    suite_add_tcase(s, tc);
    return s;
}
