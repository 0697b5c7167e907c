#include "kd_unit.h"

#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "kd_replay.h"

static void tag_of(int n, unsigned char tag[KD_REPLAY_TAG_BYTES])
{
    char text[32];

    snprintf(text, sizeof(text), "authenticator-%d", n);
    kd_replay_tag((const unsigned char *)text, strlen(text), tag);
}

START_TEST(first_use_then_replay_then_forgotten)
{
    size_t bytes = kd_replay_bytes_for(1024);
    void *mem = apr_pcalloc(kd_test_pool, bytes);
    unsigned char tag[KD_REPLAY_TAG_BYTES];

    kd_replay_init(mem, bytes);
    ck_assert_uint_ge(kd_replay_slots_in(bytes), 1024);
    tag_of(1, tag);
    ck_assert_int_eq(kd_replay_lookup(mem, tag, 1000), KD_REPLAY_FRESH);
    ck_assert_int_eq(kd_replay_claim(mem, tag, 1000, 660), KD_REPLAY_FRESH);
    ck_assert_int_eq(kd_replay_lookup(mem, tag, 1001), KD_REPLAY_SEEN);
    ck_assert_int_eq(kd_replay_claim(mem, tag, 1001, 660), KD_REPLAY_SEEN);
    ck_assert_int_eq(kd_replay_lookup(mem, tag, 1659), KD_REPLAY_SEEN);
    /* past the window the authenticator would fail the clock check anyway */
    ck_assert_int_eq(kd_replay_lookup(mem, tag, 1660), KD_REPLAY_FRESH);
    ck_assert_int_eq(kd_replay_claim(mem, tag, 1660, 660), KD_REPLAY_FRESH);
}
END_TEST

/* Fill a tiny table: live entries are never pushed out; a full bucket says
 * FULL (the caller refuses), and expired entries make room again. */
START_TEST(never_evicts_live_entries)
{
    size_t bytes = kd_replay_bytes_for(16); /* one bucket */
    void *mem = apr_pcalloc(kd_test_pool, bytes);
    unsigned char tag[KD_REPLAY_TAG_BYTES];
    int i, fresh = 0, full = 0;

    kd_replay_init(mem, bytes);
    for (i = 0; i < 40; i++) {
        tag_of(i, tag);
        kd_replay_result r = kd_replay_claim(mem, tag, 1000, 100);
        fresh += r == KD_REPLAY_FRESH;
        full += r == KD_REPLAY_FULL;
    }
    ck_assert_int_eq(fresh, (int)kd_replay_slots_in(bytes));
    ck_assert_int_eq(full, 40 - fresh);
    for (i = 0; i < fresh; i++) {
        tag_of(i, tag);
        ck_assert_int_eq(kd_replay_lookup(mem, tag, 1050), KD_REPLAY_SEEN);
    }
    tag_of(99, tag);
    ck_assert_int_eq(kd_replay_claim(mem, tag, 1100, 100), KD_REPLAY_FRESH);
}
END_TEST

/* Two choices per tag: a table fills to about 88 % before the first FULL
 * answer (with one bucket per tag the first overflow came at about 25 %). */
START_TEST(fills_to_most_of_its_slots)
{
    size_t slots = 16 * 4096, bytes = kd_replay_bytes_for(slots), n;
    void *mem = malloc(bytes);
    unsigned char tag[KD_REPLAY_TAG_BYTES];

    ck_assert_ptr_nonnull(mem);
    kd_replay_init(mem, bytes);
    for (n = 0; n < slots; n++) {
        tag_of((int)n, tag);
        if (kd_replay_claim(mem, tag, 1000, 600) == KD_REPLAY_FULL)
            break;
    }
    ck_assert_msg(n >= slots * 85 / 100, "first FULL after %zu of %zu slots", n, slots);
    free(mem);
}
END_TEST

START_TEST(lifetime_follows_clockskew)
{
    ck_assert_uint_ge(kd_replay_lifetime(), 2 * 300);
}
END_TEST

Suite *kd_replay_suite(void)
{
    Suite *s = suite_create("kd_replay");
    TCase *tc = tcase_create("replay");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, first_use_then_replay_then_forgotten);
    tcase_add_test(tc, never_evicts_live_entries);
    tcase_add_test(tc, fills_to_most_of_its_slots);
    tcase_add_test(tc, lifetime_follows_clockskew);
    suite_add_tcase(s, tc);
    return s;
}
