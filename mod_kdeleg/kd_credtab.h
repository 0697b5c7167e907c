/* kd_credtab: credentials shared by the threads of one process, keyed by
 * text and reference-counted. An entry that is replaced or retired stays
 * alive until its last borrower is done, so no thread ever loses the
 * credential it is using. The acceptor's credentials (kd_accept) and the
 * delegated tickets ready for use (kd_s4u) are kept this way.
 *
 * Every call but kd_credtab_release and kd_credtab_release_with is made
 * under the table's lock (kd_credtab_lock). */
#ifndef KD_CREDTAB_H
#define KD_CREDTAB_H

#include <apr_pools.h>

/* The first member of every entry. */
typedef struct {
    char *key;       /* malloc'd, freed with the entry by the free function */
    unsigned refs;   /* borrowers (the table itself holds none) */
    int stale;       /* out of the table: freed when refs reaches zero */
} kd_credtab_entry;

typedef void (*kd_credtab_free_fn)(kd_credtab_entry *e, void *baton);
typedef struct kd_credtab kd_credtab;

/* A table of at most max entries (0: no bound); free_fn frees an entry. */
kd_credtab *kd_credtab_create(apr_pool_t *p, unsigned max, kd_credtab_free_fn free_fn,
                              void *baton);
void kd_credtab_lock(kd_credtab *t);
void kd_credtab_unlock(kd_credtab *t);

/* Under lock. get: the entry for key, no reference taken. borrow: take a
 * reference. install: e becomes key's entry (retiring any other; a full
 * table is emptied first) and the caller holds a reference to it. retire:
 * out of the table. release_locked: give a reference back. */
kd_credtab_entry *kd_credtab_get(kd_credtab *t, const char *key);
void kd_credtab_borrow(kd_credtab_entry *e);
void kd_credtab_install(kd_credtab *t, kd_credtab_entry *e);
void kd_credtab_retire(kd_credtab *t, kd_credtab_entry *e);
void kd_credtab_release_locked(kd_credtab *t, kd_credtab_entry *e);

/* Without the lock: give a reference back now, or when p is cleared. */
void kd_credtab_release(kd_credtab *t, kd_credtab_entry *e);
void kd_credtab_release_with(kd_credtab *t, kd_credtab_entry *e, apr_pool_t *p);

/* Free every entry in the table (the process is ending). */
void kd_credtab_clear(kd_credtab *t);

#endif
