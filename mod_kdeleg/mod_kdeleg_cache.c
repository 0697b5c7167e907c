/* mod_kdeleg_cache: the ticket cache (KdelegCache), holding only values
 * sealed by kd_ticket_cache:
 * - on an Apache socache provider (default shmcb): bounded, shared by the
 *   node's children;
 * - on memcached or redis (memcache:/redis:HOST:PORT), shared by the farm
 *   through our own client (mod_kdeleg_store.c: every I/O has a timeout,
 *   which mod_socache_memcache's apr_memcache lacks).
 * The sealing keys come from KdelegCacheKeyFile (HKDF), so every node
 * opens what another wrote and entries survive restarts; without the file
 * the key is made at start-up in the parent and a restart empties the
 * cache. A store that is down is a miss, never a refusal: the KDC is
 * asked, as without a cache. */
#include "mod_kdeleg.h"

#include <string.h>

#include <ap_provider.h>
#include <ap_socache.h>
#include <http_core.h>
#include <http_log.h>
#include <util_mutex.h>
#include <apr_global_mutex.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include <stdlib.h>

#include "kd_seal.h"
#include "kd_store.h"
#include "kd_ticket_cache.h"

APLOG_USE_MODULE(kdeleg);

#define KD_CACHE_MUTEX "kdeleg-cache"
/* Large enough for tickets with big PACs (Active Directory) plus sealing. */
#define KD_CACHE_MAX_VALUE 65536
#define KD_CACHE_DEFAULT_MAX_LIFETIME 3600
#define KD_CACHE_WARN_EVERY 60 /* seconds between "store down" lines, per child */

/* This generation's cache, from kdeleg_mod_conf's KdelegCache settings. */
static struct {
    const ap_socache_provider_t *provider; /* NULL until configured or defaulted */
    const char *provider_name;
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;             /* when the provider is not MT/MP safe */
    kdeleg_store *store;                   /* memcache:/redis: instead of a provider */
    kd_ticket_cache *tickets;              /* NULL: no cache */
    server_rec *server;
    apr_uint32_t warned_at;                /* apr_time_sec of the last KD00506, atomic */
} cache;

static void lock(void)
{
    if (cache.mutex)
        apr_global_mutex_lock(cache.mutex);
}

static void unlock(void)
{
    if (cache.mutex)
        apr_global_mutex_unlock(cache.mutex);
}

static int store_get(void *baton, apr_pool_t *p, const unsigned char *id, unsigned id_len,
                     unsigned char **value, unsigned *value_len)
{
    unsigned char *buf = apr_palloc(p, KD_CACHE_MAX_VALUE);
    unsigned int len = KD_CACHE_MAX_VALUE;
    apr_status_t rv;

    lock();
    rv = cache.provider->retrieve(cache.instance, cache.server, id, id_len, buf, &len, p);
    unlock();
    if (rv != APR_SUCCESS)
        return 0;
    *value = buf;
    *value_len = len;
    return 1;
}

static void store_put(void *baton, apr_pool_t *p, const unsigned char *id, unsigned id_len,
                      apr_time_t expiry, const unsigned char *value, unsigned value_len)
{
    apr_status_t rv;

    if (value_len > KD_CACHE_MAX_VALUE)
        return;
    lock();
    rv = cache.provider->store(cache.instance, cache.server, id, id_len, expiry,
                               (unsigned char *)value, value_len, p);
    unlock();
    if (rv != APR_SUCCESS) /* full or failing: the next request asks the KDC again */
        ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, cache.server, KDLOGNO(00501)
                     "ticket cache (%s): store failed", cache.provider_name);
}

/* ------------------------------------------------------------ the farm's store */

/* The store's key for a slot id (already an HMAC under the farm key). */
static const char *farm_key(apr_pool_t *p, const unsigned char *id, unsigned id_len)
{
    static const char hex[] = "0123456789abcdef";
    char *key = apr_palloc(p, 10 + 2 * KD_STORE_MAC_BYTES + 1), *at = key;
    unsigned i;

    memcpy(at, "kdeleg:t:", 9);
    at += 9;
    for (i = 0; i < id_len && i < KD_STORE_MAC_BYTES; i++) {
        *at++ = hex[id[i] >> 4];
        *at++ = hex[id[i] & 15];
    }
    *at = '\0';
    return key;
}

/* A store that does not answer costs a KDC request, not a refusal; it is
 * said at most once a minute per child. */
static void warn_down(const char *why)
{
    apr_uint32_t now = (apr_uint32_t)apr_time_sec(apr_time_now()), last;

    last = apr_atomic_read32(&cache.warned_at);
    if (now - last < KD_CACHE_WARN_EVERY
        || apr_atomic_cas32(&cache.warned_at, now, last) != last)
        return;
    ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cache.server, KDLOGNO(00506)
                 "ticket cache %s: %s; delegated requests ask the KDC until it answers",
                 kdeleg_store_name(cache.store), why);
}

static int farm_get(void *baton, apr_pool_t *p, const unsigned char *id, unsigned id_len,
                    unsigned char **value, unsigned *value_len)
{
    const unsigned char *v;
    apr_size_t len;
    const char *why;
    kd_store_answer a = kdeleg_store_get(cache.store, p, farm_key(p, id, id_len), &v, &len, &why);

    (void)baton;
    if (a == KD_STORE_FAILED)
        warn_down(why);
    if (a != KD_STORE_FOUND)
        return 0;
    *value = (unsigned char *)v;
    *value_len = (unsigned)len;
    return 1;
}

static void farm_put(void *baton, apr_pool_t *p, const unsigned char *id, unsigned id_len,
                     apr_time_t expiry, const unsigned char *value, unsigned value_len)
{
    apr_time_t left = expiry - apr_time_now();
    unsigned ttl = left > apr_time_from_sec(1) ? (unsigned)apr_time_sec(left) : 1;
    const char *why;

    (void)baton;
    if (kdeleg_store_set(cache.store, p, farm_key(p, id, id_len), value, value_len, ttl, &why)
        != 0)
        warn_down(why);
}

/* ------------------------------------------------------------ configuration */

static int is_farm_store(const char *arg)
{
    return strncmp(arg, "memcache:", 9) == 0 || strncmp(arg, "redis:", 6) == 0;
}

const char *kdeleg_cache_max_lifetime_set(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_mod_conf *mc = kdeleg_srv_conf_of(cmd->server)->mc;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err == NULL)
        err = kdeleg_parse_seconds(cmd, arg, 0, 7 * 24 * 3600, &mc->cache_max_lifetime);
    mc->cache_max_lifetime_set = err == NULL;
    return err;
}

kd_ticket_cache *kdeleg_cache_tickets(void)
{
    return cache.tickets;
}

const char *kdeleg_cache_set(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *sep = ap_strchr_c(arg, ':'), *args = NULL, *err;
    const char *name = arg;
    kdeleg_mod_conf *mc = kdeleg_srv_conf_of(cmd->server)->mc;

    if ((err = ap_check_cmd_context(cmd, GLOBAL_ONLY)) != NULL)
        return err;
    if (strcasecmp(arg, "none") == 0) {
        mc->cache_disabled = 1;
        return NULL;
    }
    if (is_farm_store(arg)) {
        if ((err = kdeleg_store_create(cmd->pool, arg, &mc->cache_store)) != NULL)
            return apr_psprintf(cmd->pool, "KdelegCache %s: %s", arg, err);
        mc->cache_provider = NULL;
        return NULL;
    }
    mc->cache_store = NULL;
    if (sep) {
        name = apr_pstrmemdup(cmd->pool, arg, (apr_size_t)(sep - arg));
        args = sep + 1;
    }
    mc->cache_provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, name,
                                            AP_SOCACHE_PROVIDER_VERSION);
    if (mc->cache_provider == NULL)
        return apr_psprintf(cmd->pool, "KdelegCache: no socache provider '%s' (load "
                            "mod_socache_%s, or use none)", name, name);
    mc->cache_provider_name = name;
    err = mc->cache_provider->create(&mc->cache_instance, args, cmd->temp_pool, cmd->pool);
    return err ? apr_pstrcat(cmd->pool, "KdelegCache: ", err, NULL) : NULL;
}

int kdeleg_cache_pre_config(apr_pool_t *pconf)
{
    memset(&cache, 0, sizeof(cache));
    return ap_mutex_register(pconf, KD_CACHE_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t cache_destroy(void *data)
{
    if (cache.provider && cache.instance)
        cache.provider->destroy(cache.instance, cache.server);
    cache.instance = NULL;
    cache.tickets = NULL;
    return APR_SUCCESS;
}

/* Without KdelegCache: shmcb when mod_socache_shmcb is loaded, else none. */
static int default_provider(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    const char *err;

    cache.provider = ap_lookup_provider(AP_SOCACHE_PROVIDER_GROUP, "shmcb",
                                        AP_SOCACHE_PROVIDER_VERSION);
    if (cache.provider == NULL) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, KDLOGNO(00502)
                     "no ticket cache: mod_socache_shmcb is not loaded and KdelegCache is not "
                     "set; every delegated request asks the KDC");
        return 0;
    }
    cache.provider_name = "shmcb";
    if ((err = cache.provider->create(&cache.instance, NULL, ptemp, pconf)) != NULL) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, KDLOGNO(00503) "ticket cache: %s", err);
        return -1;
    }
    return 0;
}

/* The sealing keys: from KdelegCacheKeyFile when there is one (the same
 * on every node, and across restarts), else one made now. */
static int sealing_keys(apr_pool_t *pconf, server_rec *s, const kdeleg_mod_conf *mc,
                        unsigned char (**keys)[KD_SEAL_KEY_BYTES], int *n)
{
    int i;

    *n = mc->cache_keys ? kd_session_keys_count(mc->cache_keys) : 1;
    if (*n > KD_TICKET_CACHE_KEYS_MAX)
        *n = KD_TICKET_CACHE_KEYS_MAX;
    *keys = apr_pcalloc(pconf, sizeof(**keys) * (apr_size_t)*n);
    if (mc->cache_keys == NULL)
        return kd_random((*keys)[0], KD_SEAL_KEY_BYTES) == 0 ? OK : HTTP_INTERNAL_SERVER_ERROR;
    for (i = 0; i < *n; i++)
        if (kd_session_keys_derive(mc->cache_keys, i, "ticket cache v1", (*keys)[i]) != 0) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00507)
                         "KdelegCacheKeyFile %s: cannot derive the ticket cache's keys "
                         "(OpenSSL HKDF)", mc->cache_key_file);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    return OK;
}

/* The socache provider's instance, initialised (not for the farm store). */
static int provider_init(apr_pool_t *pconf, server_rec *s)
{
    struct ap_socache_hints hints = {32, 2048, apr_time_from_sec(30)};
    apr_status_t rv;

    if ((cache.provider->flags & AP_SOCACHE_FLAG_NOTMPSAFE)
        && (rv = ap_global_mutex_create(&cache.mutex, NULL, KD_CACHE_MUTEX, NULL, s, pconf, 0))
               != APR_SUCCESS)
        return HTTP_INTERNAL_SERVER_ERROR;
    rv = cache.provider->init(cache.instance, "kdeleg-tickets", &hints, s, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, KDLOGNO(00504)
                     "cannot initialise the ticket cache (%s)", cache.provider_name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_pool_cleanup_register(pconf, NULL, cache_destroy, apr_pool_cleanup_null);
    return OK;
}

int kdeleg_cache_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    const kdeleg_mod_conf *mc = kdeleg_srv_conf_of(s)->mc;
    kd_store store = {NULL, store_get, store_put};
    unsigned char (*keys)[KD_SEAL_KEY_BYTES];
    int n_keys, status;

    cache.server = s;
    cache.store = mc->cache_store;
    cache.provider = mc->cache_provider;
    cache.provider_name = mc->cache_provider_name;
    cache.instance = mc->cache_instance;
    if (cache.store != NULL && mc->cache_keys == NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00508)
                     "KdelegCache %s needs KdelegCacheKeyFile: the farm's keys, the same file "
                     "on every node, seal its entries (without them no node could open "
                     "another's, and whoever reads the store would read the tickets)",
                     kdeleg_store_name(cache.store));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (cache.store == NULL) {
        if (mc->cache_disabled
            || (cache.provider == NULL && default_provider(pconf, ptemp, s) != 0))
            return mc->cache_disabled ? OK : HTTP_INTERNAL_SERVER_ERROR;
        if (cache.provider == NULL)
            return OK;
        if ((status = provider_init(pconf, s)) != OK)
            return status;
    }
    else
        store = (kd_store){NULL, farm_get, farm_put};
    if ((status = sealing_keys(pconf, s, mc, &keys, &n_keys)) != OK)
        return status;
    cache.tickets = kd_ticket_cache_create(pconf, keys, n_keys, store);
    memset(keys, 0, sizeof(*keys) * (apr_size_t)n_keys);
    kd_ticket_cache_set_max_lifetime(cache.tickets, mc->cache_max_lifetime_set
                                                        ? mc->cache_max_lifetime
                                                        : KD_CACHE_DEFAULT_MAX_LIFETIME);
    return OK;
}

void kdeleg_cache_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (cache.store != NULL && cache.tickets != NULL)
        kdeleg_store_child_init(cache.store, pchild);
    if (cache.mutex
        && apr_global_mutex_child_init(&cache.mutex, apr_global_mutex_lockfile(cache.mutex),
                                       pchild) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, KDLOGNO(00505)
                     "ticket cache: cannot attach the mutex in this child; caching off here");
        cache.tickets = NULL;
    }
}
