#include "kd_unit.h"

#include <stdlib.h>
#include <string.h>
#include "kd_credtab.h"

/* An entry that records its own release. */
typedef struct {
    kd_credtab_entry base;
    int *freed;
} probe;

static void probe_free(kd_credtab_entry *e, void *baton)
{
    probe *p = (probe *)e;

    (*(int *)baton)++;
    (*p->freed)++;
    free(p->base.key);
    free(p);
}

static probe *probe_new(const char *key, int *freed)
{
    probe *p = calloc(1, sizeof(*p));

    ck_assert_ptr_nonnull(p);
    p->base.key = strdup(key);
    p->freed = freed;
    return p;
}

/* A replaced entry lives until its last borrower gives it back. */
START_TEST(replaced_entry_outlives_its_borrowers)
{
    int total = 0, freed_a = 0, freed_b = 0;
    kd_credtab *t = kd_credtab_create(kd_test_pool, 0, probe_free, &total);
    probe *a = probe_new("HTTP/vip", &freed_a), *b = probe_new("HTTP/vip", &freed_b);

    ck_assert_ptr_nonnull(t);
    kd_credtab_lock(t);
    kd_credtab_install(t, &a->base);          /* the installer holds a */
    ck_assert_ptr_eq(kd_credtab_get(t, "HTTP/vip"), &a->base);
    kd_credtab_install(t, &b->base);          /* a retired, still held */
    ck_assert_ptr_eq(kd_credtab_get(t, "HTTP/vip"), &b->base);
    kd_credtab_unlock(t);
    ck_assert_int_eq(freed_a, 0);
    kd_credtab_release(t, &a->base);          /* last borrower of a */
    ck_assert_int_eq(freed_a, 1);
    kd_credtab_release(t, &b->base);          /* b stays: it is in the table */
    ck_assert_int_eq(freed_b, 0);
    kd_credtab_lock(t);
    kd_credtab_retire(t, &b->base);           /* nobody holds it: freed now */
    ck_assert_ptr_null(kd_credtab_get(t, "HTTP/vip"));
    kd_credtab_unlock(t);
    ck_assert_int_eq(freed_b, 1);
    ck_assert_int_eq(total, 2);
}
END_TEST

/* A borrow given back with a pool ends when the pool is cleared. */
START_TEST(release_with_pool)
{
    int total = 0, freed = 0;
    kd_credtab *t = kd_credtab_create(kd_test_pool, 0, probe_free, &total);
    probe *a = probe_new("k", &freed);
    apr_pool_t *req;

    ck_assert_int_eq(apr_pool_create(&req, kd_test_pool), APR_SUCCESS);
    kd_credtab_lock(t);
    kd_credtab_install(t, &a->base);
    kd_credtab_retire(t, &a->base);           /* held: not freed yet */
    kd_credtab_unlock(t);
    kd_credtab_release_with(t, &a->base, req);
    ck_assert_int_eq(freed, 0);
    apr_pool_destroy(req);
    ck_assert_int_eq(freed, 1);
}
END_TEST

/* A full table is emptied before a new entry goes in (bounded memory). */
START_TEST(full_table_starts_afresh)
{
    int total = 0, freed[3] = {0, 0, 0};
    kd_credtab *t = kd_credtab_create(kd_test_pool, 2, probe_free, &total);
    probe *p[3] = {probe_new("a", &freed[0]), probe_new("b", &freed[1]),
                   probe_new("c", &freed[2])};
    int i;

    kd_credtab_lock(t);
    for (i = 0; i < 3; i++) {
        kd_credtab_install(t, &p[i]->base);
        kd_credtab_release_locked(t, &p[i]->base);
    }
    ck_assert_ptr_null(kd_credtab_get(t, "a"));
    ck_assert_ptr_null(kd_credtab_get(t, "b"));
    ck_assert_ptr_eq(kd_credtab_get(t, "c"), &p[2]->base);
    kd_credtab_unlock(t);
    ck_assert_int_eq(freed[0] + freed[1], 2);
    kd_credtab_clear(t);
    ck_assert_int_eq(freed[2], 1);
}
END_TEST

Suite *kd_credtab_suite(void)
{
    Suite *s = suite_create("kd_credtab");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, replaced_entry_outlives_its_borrowers);
    tcase_add_test(tc, release_with_pool);
    tcase_add_test(tc, full_table_starts_afresh);
    suite_add_tcase(s, tc);
    return s;
}
