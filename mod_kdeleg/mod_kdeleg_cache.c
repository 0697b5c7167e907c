/* mod_kdeleg_cache: the node's shared ticket cache on an Apache socache
 * provider (KdelegCache, default shmcb): bounded, shared by all children,
 * holding only values sealed by kd_ticket_cache. The sealing key is made
 * at start-up in the parent and inherited by the children; a restart
 * makes a new one, which simply empties the cache. */
#include "mod_kdeleg.h"

#include <string.h>

#include <ap_provider.h>
#include <ap_socache.h>
#include <http_core.h>
#include <http_log.h>
#include <util_mutex.h>
#include <apr_global_mutex.h>
#include <apr_strings.h>

#include "kd_seal.h"
#include "kd_ticket_cache.h"

APLOG_USE_MODULE(kdeleg);

#define KD_CACHE_MUTEX "kdeleg-cache"
/* Large enough for tickets with big PACs (Active Directory) plus sealing. */
#define KD_CACHE_MAX_VALUE 65536

/* This generation's cache, from kdeleg_mod_conf's KdelegCache settings. */
static struct {
    const ap_socache_provider_t *provider; /* NULL until configured or defaulted */
    const char *provider_name;
    ap_socache_instance_t *instance;
    apr_global_mutex_t *mutex;             /* when the provider is not MT/MP safe */
    kd_ticket_cache *tickets;              /* NULL: no cache */
    server_rec *server;
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

int kdeleg_cache_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    const kdeleg_mod_conf *mc = kdeleg_srv_conf_of(s)->mc;
    struct ap_socache_hints hints = {32, 2048, apr_time_from_sec(30)};
    unsigned char key[KD_SEAL_KEY_BYTES];
    kd_store store = {NULL, store_get, store_put};
    apr_status_t rv;

    cache.server = s;
    cache.provider = mc->cache_provider;
    cache.provider_name = mc->cache_provider_name;
    cache.instance = mc->cache_instance;
    if (mc->cache_disabled || (cache.provider == NULL && default_provider(pconf, ptemp, s) != 0))
        return mc->cache_disabled ? OK : HTTP_INTERNAL_SERVER_ERROR;
    if (cache.provider == NULL)
        return OK;
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
    if (kd_random(key, sizeof(key)) != 0)
        return HTTP_INTERNAL_SERVER_ERROR;
    cache.tickets = kd_ticket_cache_create(pconf, key, store);
    memset(key, 0, sizeof(key));
    return OK;
}

void kdeleg_cache_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (cache.mutex
        && apr_global_mutex_child_init(&cache.mutex, apr_global_mutex_lockfile(cache.mutex),
                                       pchild) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, KDLOGNO(00505)
                     "ticket cache: cannot attach the mutex in this child; caching off here");
        cache.tickets = NULL;
    }
}
