/* mod_kdeleg_shm: shared tables that outlive configuration generations,
 * each with the one mutex that guards it.
 *
 * A graceful restart keeps the replay and revocation tables (forgetting
 * them would let a captured token or a logged-out session back in), while
 * children of the old generation finish their requests next to children
 * of the new one. Both generations must therefore lock the same mutex: it
 * is made with the table, in the process pool, and found again with it.
 * A mutex made per generation in pconf would be destroyed under the old
 * children, and two generations would each hold a lock of their own. */
#include "mod_kdeleg.h"

#include <util_mutex.h>

struct kdeleg_kept_table {
    apr_shm_t *shm;
    apr_size_t bytes;
    apr_global_mutex_t *mutex;
};

static kdeleg_kept_table *kept_of(apr_pool_t *process_pool, const char *key)
{
    void *data = NULL;

    apr_pool_userdata_get(&data, key, process_pool);
    if (data == NULL) {
        data = apr_pcalloc(process_pool, sizeof(kdeleg_kept_table));
        apr_pool_userdata_set(data, key, apr_pool_cleanup_null, process_pool);
    }
    return data;
}

apr_status_t kdeleg_kept_table_get(server_rec *s, const char *key, const char *mutex_type,
                                   apr_size_t bytes, kdeleg_kept_table **out, int *fresh)
{
    apr_pool_t *pp = s->process->pool;
    kdeleg_kept_table *t = kept_of(pp, key);
    apr_status_t rv;

    *out = NULL;
    *fresh = 0;
    if (t->shm != NULL && t->bytes == bytes) {
        *out = t;
        return APR_SUCCESS;
    }
    /* Resized: a new table and a new mutex. The old mutex is left alone:
     * old children still lock it around the old table they have mapped. */
    if (t->shm != NULL)
        apr_shm_destroy(t->shm);
    t->shm = NULL;
    t->mutex = NULL;
    if ((rv = apr_shm_create(&t->shm, bytes, NULL, pp)) != APR_SUCCESS) {
        t->shm = NULL;
        return rv;
    }
    if (mutex_type != NULL
        && (rv = ap_global_mutex_create(&t->mutex, NULL, mutex_type, NULL, s, pp, 0))
               != APR_SUCCESS) {
        apr_shm_destroy(t->shm);
        t->shm = NULL;
        t->mutex = NULL;
        return rv;
    }
    t->bytes = bytes;
    *fresh = 1;
    *out = t;
    return APR_SUCCESS;
}

void *kdeleg_kept_table_base(const kdeleg_kept_table *t)
{
    return apr_shm_baseaddr_get(t->shm);
}

apr_size_t kdeleg_kept_table_size(const kdeleg_kept_table *t)
{
    return apr_shm_size_get(t->shm);
}

apr_global_mutex_t *kdeleg_kept_table_child_mutex(const kdeleg_kept_table *t, apr_pool_t *pchild)
{
    apr_global_mutex_t *m = t->mutex;

    if (m == NULL
        || apr_global_mutex_child_init(&m, apr_global_mutex_lockfile(m), pchild) != APR_SUCCESS)
        return NULL;
    return m;
}
