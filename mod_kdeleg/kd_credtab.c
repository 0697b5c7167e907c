#include "kd_credtab.h"

#include <apr_hash.h>
#include <apr_thread_mutex.h>

struct kd_credtab {
    apr_thread_mutex_t *lock;
    apr_hash_t *entries;     /* key -> kd_credtab_entry*, guarded by lock */
    unsigned count, max;
    kd_credtab_free_fn free_fn;
    void *baton;
};

kd_credtab *kd_credtab_create(apr_pool_t *p, unsigned max, kd_credtab_free_fn free_fn,
                              void *baton)
{
    kd_credtab *t = apr_pcalloc(p, sizeof(*t));

    if (apr_thread_mutex_create(&t->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS)
        return NULL;
    t->entries = apr_hash_make(p);
    t->max = max;
    t->free_fn = free_fn;
    t->baton = baton;
    return t;
}

void kd_credtab_lock(kd_credtab *t)
{
    apr_thread_mutex_lock(t->lock);
}

void kd_credtab_unlock(kd_credtab *t)
{
    apr_thread_mutex_unlock(t->lock);
}

kd_credtab_entry *kd_credtab_get(kd_credtab *t, const char *key)
{
    return apr_hash_get(t->entries, key, APR_HASH_KEY_STRING);
}

void kd_credtab_borrow(kd_credtab_entry *e)
{
    e->refs++;
}

void kd_credtab_retire(kd_credtab *t, kd_credtab_entry *e)
{
    if (apr_hash_get(t->entries, e->key, APR_HASH_KEY_STRING) == e) {
        apr_hash_set(t->entries, e->key, APR_HASH_KEY_STRING, NULL);
        t->count--;
    }
    e->stale = 1;
    if (e->refs == 0)
        t->free_fn(e, t->baton);
}

void kd_credtab_install(kd_credtab *t, kd_credtab_entry *e)
{
    kd_credtab_entry *prev = apr_hash_get(t->entries, e->key, APR_HASH_KEY_STRING);

    if (prev != NULL && prev != e)
        kd_credtab_retire(t, prev);
    if (t->max && t->count >= t->max) {
        apr_hash_index_t *hi;
        for (hi = apr_hash_first(NULL, t->entries); hi; hi = apr_hash_next(hi))
            kd_credtab_retire(t, apr_hash_this_val(hi));
    }
    apr_hash_set(t->entries, e->key, APR_HASH_KEY_STRING, e);
    t->count++;
    e->stale = 0;
    e->refs++;
}

void kd_credtab_release_locked(kd_credtab *t, kd_credtab_entry *e)
{
    if (--e->refs == 0 && e->stale)
        t->free_fn(e, t->baton);
}

void kd_credtab_release(kd_credtab *t, kd_credtab_entry *e)
{
    kd_credtab_lock(t);
    kd_credtab_release_locked(t, e);
    kd_credtab_unlock(t);
}

typedef struct {
    kd_credtab *t;
    kd_credtab_entry *e;
} loan;

static apr_status_t give_back(void *data)
{
    loan *l = data;

    kd_credtab_release(l->t, l->e);
    return APR_SUCCESS;
}

void kd_credtab_release_with(kd_credtab *t, kd_credtab_entry *e, apr_pool_t *p)
{
    loan *l = apr_palloc(p, sizeof(*l));

    l->t = t;
    l->e = e;
    apr_pool_cleanup_register(p, l, give_back, apr_pool_cleanup_null);
}

void kd_credtab_clear(kd_credtab *t)
{
    apr_hash_index_t *hi;

    /* The key lives inside the entry: unlink it before freeing it (APR
     * allows removing the entry the iterator just returned). */
    for (hi = apr_hash_first(NULL, t->entries); hi; hi = apr_hash_next(hi)) {
        kd_credtab_entry *e = apr_hash_this_val(hi);

        apr_hash_set(t->entries, e->key, APR_HASH_KEY_STRING, NULL);
        t->free_fn(e, t->baton);
    }
    t->count = 0;
}
