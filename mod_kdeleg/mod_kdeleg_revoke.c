/* mod_kdeleg_revoke: sessions revoked by KdelegSessionLogout.
 * - On the node: a fixed table in shared memory (kd_revoke) shared by all
 *   children. Like the replay table it survives graceful restarts: a
 *   restart must not bring a logged-out session back.
 * - In the farm, when KdelegReplayCache names a shared store: each logout
 *   is also written there (name: HMAC of the principal under the farm key;
 *   value: the logout time, sealed), and every node reads it back, at most
 *   once per KdelegRevocationCheckInterval per principal per child. The
 *   replay store is the one that must never evict, which a revocation
 *   needs too. Store down: a session whose principal was not checked
 *   within the interval is refused (fail closed), its cookie kept. */
#include "mod_kdeleg.h"

#include <string.h>

#include <http_core.h>
#include <http_log.h>
#include <util_mutex.h>
#include <apr_global_mutex.h>

#include "kd_revoke.h"
#include "kd_seal.h"
#include "kd_session.h"
#include "kd_store.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

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

#define KD_REVOKE_SEEN_MAX 4096        /* principals remembered per child */
#define KD_REVOKE_DEFAULT_INTERVAL 10

/* The farm's list: the store and keys from post_config (immutable after),
 * what this child last read, per principal, under `lock`. */
typedef struct {
    apr_time_t checked;
    long long before_ms;              /* 0: no logout in the farm */
} farm_seen;

static struct {
    kdeleg_store *store;              /* NULL: the node's table only */
    int n_keys;
    unsigned char (*name_keys)[32];   /* per key of KdelegCacheKeyFile, newest first */
    unsigned char (*seal_keys)[KD_SEAL_KEY_BYTES];
    apr_time_t interval;
    apr_thread_mutex_t *lock;
    apr_pool_t *seen_pool;            /* recreated when seen grows too large */
    apr_hash_t *seen;
} farm;

int kdeleg_revoke_pre_config(apr_pool_t *pconf)
{
    memset(&revoked, 0, sizeof(revoked));
    memset(&farm, 0, sizeof(farm));
    return ap_mutex_register(pconf, KD_REVOKE_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t revoke_cleanup(void *data)
{
    revoked.table = NULL;
    return APR_SUCCESS;
}

const char *kdeleg_revocation_interval_set(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_mod_conf *mc = kdeleg_srv_conf_of(cmd->server)->mc;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err == NULL)
        err = kdeleg_parse_seconds(cmd, arg, 0, 3600, &mc->revocation_interval);
    mc->revocation_interval_set = err == NULL;
    return err;
}

/* Two keys per key of the farm's file: one names the entries, one seals
 * them; neither is shared with any other use of the file. */
static int farm_post_config(apr_pool_t *pconf, server_rec *s, const kdeleg_mod_conf *mc)
{
    int i;

    if (mc->replay_store == NULL || mc->cache_keys == NULL)
        return OK; /* without keys the replay check already refused to start */
    farm.store = mc->replay_store;
    farm.n_keys = kd_session_keys_count(mc->cache_keys);
    farm.name_keys = apr_pcalloc(pconf, sizeof(*farm.name_keys) * (apr_size_t)farm.n_keys);
    farm.seal_keys = apr_pcalloc(pconf, sizeof(*farm.seal_keys) * (apr_size_t)farm.n_keys);
    for (i = 0; i < farm.n_keys; i++)
        if (kd_session_keys_derive(mc->cache_keys, i, "revocation name v1", farm.name_keys[i])
                != 0
            || kd_session_keys_derive(mc->cache_keys, i, "revocation seal v1",
                                      farm.seal_keys[i]) != 0) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00727)
                         "KdelegCacheKeyFile %s: cannot derive the revocation keys (OpenSSL "
                         "HKDF)", mc->cache_key_file);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    farm.interval = apr_time_from_sec(mc->revocation_interval_set ? mc->revocation_interval
                                                                  : KD_REVOKE_DEFAULT_INTERVAL);
    return OK;
}

int kdeleg_revoke_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_status_t rv;
    int fresh;

    if ((rv = farm_post_config(pconf, s, kdeleg_srv_conf_of(s)->mc)) != OK)
        return rv;

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
    if (farm.store != NULL
        && (apr_thread_mutex_create(&farm.lock, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS
            || apr_pool_create(&farm.seen_pool, pchild) != APR_SUCCESS))
        farm.lock = NULL; /* then every check asks the store */
    if (farm.lock != NULL)
        farm.seen = apr_hash_make(farm.seen_pool);
    if (revoked.table == NULL)
        return;
    if ((revoked.mutex = kdeleg_kept_table_child_mutex(revoked.kept, pchild)) == NULL)
        /* Without the lock this child cannot read the table safely: it
         * refuses every session instead (fail closed), see kdeleg_is_revoked. */
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, KDLOGNO(00721)
                     "session revocation table: cannot attach the mutex; this child refuses "
                     "session cookies");
}

/* ------------------------------------------------------------ the farm's list */

static void entry_name(int i, const char *principal, char name[KD_STORE_KEY_MAX])
{
    kd_store_key(farm.name_keys[i], "v", (const unsigned char *)principal, strlen(principal),
                 name);
}

/* The farm's logout time for principal (0: none), read from the store
 * under every key; -1 when the store cannot be read. An entry that does
 * not open is ignored: only a node with the farm's key can write one. */
static int farm_read(apr_pool_t *p, const char *principal, long long *before_ms,
                     const char **why)
{
    int i, j;

    *before_ms = 0;
    for (i = 0; i < farm.n_keys; i++) {
        char name[KD_STORE_KEY_MAX];
        const unsigned char *value;
        unsigned char *plain;
        apr_size_t len;
        size_t plain_len;
        long long t = 0;
        kd_store_answer a;

        entry_name(i, principal, name);
        a = kdeleg_store_get(farm.store, p, name, &value, &len, why);
        if (a == KD_STORE_FAILED)
            return -1;
        if (a != KD_STORE_FOUND
            || kd_open(p, farm.seal_keys[i], (const unsigned char *)name, strlen(name), value,
                       len, &plain, &plain_len) != 0
            || plain_len != 8)
            continue;
        for (j = 0; j < 8; j++)
            t = (long long)((unsigned long long)t << 8 | plain[j]);
        if (t > *before_ms)
            *before_ms = t;
    }
    return 0;
}

/* What this child last read for principal, if within the interval. */
static int seen_recently(const char *principal, long long *before_ms)
{
    farm_seen *seen;
    int found = 0;

    if (farm.lock == NULL || apr_thread_mutex_lock(farm.lock) != APR_SUCCESS)
        return 0;
    seen = apr_hash_get(farm.seen, principal, APR_HASH_KEY_STRING);
    if (seen && apr_time_now() - seen->checked < farm.interval) {
        *before_ms = seen->before_ms;
        found = 1;
    }
    apr_thread_mutex_unlock(farm.lock);
    return found;
}

static void remember(const char *principal, long long before_ms)
{
    farm_seen *seen;

    if (farm.lock == NULL || apr_thread_mutex_lock(farm.lock) != APR_SUCCESS)
        return;
    if (apr_hash_count(farm.seen) >= KD_REVOKE_SEEN_MAX) {
        apr_pool_clear(farm.seen_pool); /* forget all: the next checks ask the store */
        farm.seen = apr_hash_make(farm.seen_pool);
    }
    seen = apr_hash_get(farm.seen, principal, APR_HASH_KEY_STRING);
    if (seen == NULL) {
        seen = apr_palloc(farm.seen_pool, sizeof(*seen));
        apr_hash_set(farm.seen, apr_pstrdup(farm.seen_pool, principal), APR_HASH_KEY_STRING,
                     seen);
    }
    seen->checked = apr_time_now();
    seen->before_ms = before_ms;
    apr_thread_mutex_unlock(farm.lock);
}

static int farm_revoked(apr_pool_t *p, const char *principal, long long issued_ms,
                        const char **why)
{
    long long before_ms;

    if (farm.store == NULL)
        return KDELEG_NOT_REVOKED;
    if (!seen_recently(principal, &before_ms)) {
        if (farm_read(p, principal, &before_ms, why) != 0)
            return KDELEG_REVOCATION_UNKNOWN;
        remember(principal, before_ms);
    }
    return issued_ms <= before_ms ? KDELEG_REVOKED : KDELEG_NOT_REVOKED;
}

/* The logout, written under every key so that nodes in the middle of a key
 * rotation all read it; kept as long as the node's own entry. */
static int farm_write(apr_pool_t *p, const char *principal, long long before_ms,
                      long long until, const char **why)
{
    unsigned char plain[8], *sealed;
    size_t sealed_len;
    long long left = until - (long long)apr_time_sec(apr_time_now());
    int i, j;

    for (j = 0; j < 8; j++)
        plain[j] = (unsigned char)((unsigned long long)before_ms >> (56 - 8 * j));
    for (i = 0; i < farm.n_keys; i++) {
        char name[KD_STORE_KEY_MAX];
        entry_name(i, principal, name);
        if (kd_seal(p, farm.seal_keys[i], (const unsigned char *)name, strlen(name), plain,
                    sizeof(plain), &sealed, &sealed_len) != 0) {
            *why = "cannot seal the entry";
            return -1;
        }
        if (kdeleg_store_set(farm.store, p, name, sealed, sealed_len,
                             left > 1 ? (unsigned)left : 1, why) != 0)
            return -1;
    }
    remember(principal, before_ms);
    return 0;
}

int kdeleg_revoke_shared(void)
{
    return farm.store != NULL;
}

/* ------------------------------------------------------------ checks */

int kdeleg_session_revoked(apr_pool_t *p, const char *principal, long long issued_ms,
                           const char **why)
{
    *why = "revoked (KdelegSessionLogout on this node)";
    if (kdeleg_is_revoked(principal, issued_ms))
        return KDELEG_REVOKED;
    switch (farm_revoked(p, principal, issued_ms, why)) {
    case KDELEG_REVOKED:
        *why = "revoked (KdelegSessionLogout on a node of the farm)";
        return KDELEG_REVOKED;
    case KDELEG_REVOCATION_UNKNOWN:
        *why = apr_psprintf(p, "the farm's revocations cannot be read (%s): refused until the "
                            "shared store answers", *why);
        return KDELEG_REVOCATION_UNKNOWN;
    default:
        return KDELEG_NOT_REVOKED;
    }
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
    if (farm.store != NULL) {
        const char *why;
        if (farm_write(r->pool, principal, before_ms, until, &why) != 0) {
            kdeleg_log_request(r, APLOG_ERR, 0, KDLOGNO(00728), "-",
                               "the logout of %s is not shared with the farm (%s): other nodes "
                               "accept its sessions until the cookie expires; log out again "
                               "once the store answers",
                               ap_escape_logitem(r->pool, principal), why);
            raised = raised < 0 ? raised : -2;
        }
    }
    if (raised > 0)
        kdeleg_log_request(r, APLOG_WARNING, 0, KDLOGNO(00722), "-",
                           "session revocation table full (%d principals): every session issued "
                           "here before %" APR_INT64_T_FMT " ms is now refused, so that no "
                           "revoked session comes back; those users re-authenticate",
                           KD_REVOKE_SLOTS, (apr_int64_t)floor_ms);
    return raised;
}
