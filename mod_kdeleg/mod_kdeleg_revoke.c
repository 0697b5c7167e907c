/* mod_kdeleg_revoke: sessions revoked by KdelegSessionLogout, node-wide,
 * in a fixed table in shared memory (kd_revoke) shared by all children.
 * Like the replay table it survives graceful restarts: a restart must not
 * bring a logged-out session back. A logout holds on the node that served
 * it (the docs say so): other nodes cannot see this table. */
#include "mod_kdeleg.h"

#include <string.h>

#include <http_core.h>
#include <http_log.h>
#include <util_mutex.h>
#include <apr_global_mutex.h>

#include "kd_revoke.h"

APLOG_USE_MODULE(kdeleg);

#define KD_REVOKE_MUTEX "kdeleg-revoke"
#define KD_REVOKE_SLOTS 8192          /* principals logged out at once, per node */
#define KD_REVOKE_KEPT "mod_kdeleg-revoke-table"

static struct {
    void *table;                      /* NULL until post_config (or on failure) */
    apr_global_mutex_t *mutex;        /* this child's handle on the table's mutex */
    kdeleg_kept_table *kept;
    server_rec *s;                    /* for lines with no request */
} revoked;

int kdeleg_revoke_pre_config(apr_pool_t *pconf)
{
    memset(&revoked, 0, sizeof(revoked));
    return ap_mutex_register(pconf, KD_REVOKE_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t revoke_cleanup(void *data)
{
    revoked.table = NULL;
    return APR_SUCCESS;
}

int kdeleg_revoke_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_status_t rv;
    int fresh;

    rv = kdeleg_kept_table_get(s, KD_REVOKE_KEPT, KD_REVOKE_MUTEX,
                               kd_revoke_bytes_for(KD_REVOKE_SLOTS), &revoked.kept, &fresh);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, KDLOGNO(00720)
                     "cannot create the session revocation table");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (fresh)
        kd_revoke_init(kdeleg_kept_table_base(revoked.kept), kdeleg_kept_table_size(revoked.kept));
    revoked.table = kdeleg_kept_table_base(revoked.kept);
    revoked.s = s;
    apr_pool_cleanup_register(pconf, NULL, revoke_cleanup, apr_pool_cleanup_null);
    return OK;
}

void kdeleg_revoke_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (revoked.table == NULL)
        return;
    if ((revoked.mutex = kdeleg_kept_table_child_mutex(revoked.kept, pchild)) == NULL)
        /* Without the lock this child cannot read the table safely: it
         * refuses every session instead (fail closed), see kdeleg_is_revoked. */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, KDLOGNO(00721)
                     "session revocation table: cannot attach the mutex; this child refuses "
                     "session cookies");
}

int kdeleg_is_revoked(const char *principal, long long issued_ms)
{
    unsigned char key[KD_REVOKE_KEY_BYTES];
    apr_status_t rv;
    int out;

    if (revoked.table == NULL || revoked.mutex == NULL)
        return 1; /* cannot tell: fail closed */
    if (kd_revoke_empty(revoked.table))
        return 0; /* nobody ever logged out here: no lock on the hot path */
    kd_revoke_key(principal, key);
    if ((rv = apr_global_mutex_lock(revoked.mutex)) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, revoked.s, KDLOGNO(00725)
                     "session revocation table: cannot lock it; refusing the session "
                     "(fail closed): the user re-authenticates");
        return 1;
    }
    out = kd_revoke_check(revoked.table, key, issued_ms, (uint32_t)apr_time_sec(apr_time_now()));
    apr_global_mutex_unlock(revoked.mutex);
    return out;
}

int kdeleg_revoke_principal(request_rec *r, const char *principal, long long before_ms,
                            long long until)
{
    unsigned char key[KD_REVOKE_KEY_BYTES];
    long long floor_ms = 0;
    int raised;

    if (revoked.table == NULL || revoked.mutex == NULL)
        return -1;
    kd_revoke_key(principal, key);
    if (apr_global_mutex_lock(revoked.mutex) != APR_SUCCESS)
        raised = -1; /* logged below: the cookie is cleared, nothing revoked */
    else {
        raised = kd_revoke_add(revoked.table, key, before_ms, (uint32_t)until,
                               (uint32_t)apr_time_sec(apr_time_now()));
        floor_ms = kd_revoke_floor(revoked.table);
        apr_global_mutex_unlock(revoked.mutex);
    }
    if (raised < 0)
        kdeleg_log_request(r, APLOG_ERR, 0, KDLOGNO(00724), "-",
                           "session revocation table unusable (missing or its lock failed): the "
                           "logout of %s cleared the cookie but revoked nothing",
                           ap_escape_logitem(r->pool, principal));
    if (raised > 0)
        kdeleg_log_request(r, APLOG_WARNING, 0, KDLOGNO(00722), "-",
                           "session revocation table full (%d principals): every session issued "
                           "here before %" APR_INT64_T_FMT " ms is now refused, so that no "
                           "revoked session comes back; those users re-authenticate",
                           KD_REVOKE_SLOTS, (apr_int64_t)floor_ms);
    return raised;
}
