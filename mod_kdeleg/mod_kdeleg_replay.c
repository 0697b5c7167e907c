/* mod_kdeleg_replay: the node's replay cache in shared memory
 * (KdelegReplayCache, default 16M). Instead of MIT's file replay cache,
 * which opens, locks and rewrites a file on every request and serialises
 * every worker of the host on that lock, a fixed table shared by all
 * children, checked before the exchange and filled after it succeeds.
 *
 * With KdelegReplayCache memcache:/redis: the farm shares the check: once
 * the node's table has claimed an authenticator (it stays in front: a
 * copy replayed to the same node never reaches the store), the store
 * claims it for the farm, atomically. A store that does not confirm the
 * claim fails the login closed (shared-store-down). */
#include "mod_kdeleg.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unixd.h>

#include <http_core.h>
#include <http_log.h>
#include <util_mutex.h>
#include <apr_global_mutex.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "kd_replay.h"
#include "kd_store.h"

APLOG_USE_MODULE(kdeleg);

#define KD_REPLAY_MUTEX "kdeleg-replay"
#define KD_REPLAY_DEFAULT_BYTES (16 * 1024 * 1024)

static struct {
    apr_size_t bytes;       /* the table's size in effect (KdelegReplayCache or the default) */
    void *table;            /* this generation's view of the table, NULL = off */
    apr_global_mutex_t *mutex;
    uint32_t lifetime;      /* seconds an authenticator stays replayable */
    kdeleg_store *store;    /* the farm's shared store, NULL = node only */
    int n_keys;             /* farm keys (one per line of KdelegCacheKeyFile) */
    unsigned char (*keys)[32]; /* derived for replay claims, in pconf */
    const char *fingerprints;  /* of those keys, space-separated: they reveal nothing */
} replay;

/* Do the nodes share a key? One entry of the store holds the fingerprints
 * of the keys of the node that wrote it first; every node reads it at
 * most every KD_FARM_KEYS_EVERY per child. Nodes whose files share no key
 * would claim tokens under names that never meet, which silently ends the
 * farm-wide replay check: a node that shares no key with the entry's
 * owner refuses logins with farm-key-mismatch. */
#define KD_FARM_KEYS_ENTRY "kdeleg:farm-keys"
#define KD_FARM_KEYS_EVERY apr_time_from_sec(10)
#define KD_FARM_KEYS_TTL 60 /* seconds; refreshed every KD_FARM_KEYS_EVERY by its owner */

static struct {
    apr_thread_mutex_t *lock;  /* per child */
    apr_time_t checked;
    int mismatch;
    char theirs[256];          /* the fingerprints found, when they mismatch */
} keycheck;

/* The table outlives configuration generations (kdeleg_kept_table): a
 * graceful restart (daily, with Debian's logrotate) must not forget which
 * authenticators were accepted, or a captured token could be replayed just
 * after it. Kept while the size stays the same, with its one mutex. */
#define KD_REPLAY_KEPT "mod_kdeleg-replay-table"

static kdeleg_kept_table *kept; /* this generation's, set in post_config */

static const char *replay_size(kdeleg_mod_conf *mc, const char *arg)
{
    char *end;
    apr_int64_t n;

    if (strcasecmp(arg, "off") == 0) {
        mc->replay_bytes = 0;
        return NULL;
    }
    n = apr_strtoi64(arg, &end, 10);
    if (*end == 'K' || *end == 'k')
        n *= 1024, end++;
    else if (*end == 'M' || *end == 'm')
        n *= 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g')
        n *= 1024 * 1024 * 1024, end++;
    if (*end != '\0' || n < 1024 || n > (apr_int64_t)4096 * 1024 * 1024)
        return "KdelegReplayCache: a size between 1K and 4G (e.g. 16M), or off, and optionally "
               "a shared store (memcache:HOST:PORT or redis:HOST:PORT)";
    mc->replay_bytes = (apr_size_t)n;
    return NULL;
}

static int is_store(const char *arg)
{
    return strncmp(arg, "memcache:", 9) == 0 || strncmp(arg, "redis:", 6) == 0;
}

/* KdelegReplayCache SIZE|off, STORE, or SIZE STORE (either order). */
const char *kdeleg_replay_set(cmd_parms *cmd, void *dconf, const char *arg1, const char *arg2)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    kdeleg_mod_conf *mc = kdeleg_srv_conf_of(cmd->server)->mc;
    const char *args[2] = {arg1, arg2};
    int i, sized = 0;

    if (err)
        return err;
    mc->replay_configured = 1;
    mc->replay_bytes = KD_REPLAY_DEFAULT_BYTES;
    mc->replay_store = NULL;
    for (i = 0; i < 2 && args[i] != NULL; i++) {
        if (is_store(args[i])) {
            if (mc->replay_store != NULL)
                return "KdelegReplayCache: one shared store";
            if ((err = kdeleg_store_create(cmd->pool, args[i], &mc->replay_store)) != NULL)
                return apr_psprintf(cmd->pool, "KdelegReplayCache %s: %s", args[i], err);
        }
        else if (sized++ || (err = replay_size(mc, args[i])) != NULL)
            return err ? err : "KdelegReplayCache: one size";
    }
    /* The node's table stands in front of the store, and MIT's file cache
     * cannot: a shared store without it is refused, not half-used. */
    if (mc->replay_store != NULL && mc->replay_bytes == 0)
        return "KdelegReplayCache: a shared store needs the node's table in front of it "
               "(a size, not off)";
    return NULL;
}

const char *kdeleg_cache_key_file_set(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    kdeleg_mod_conf *mc = kdeleg_srv_conf_of(cmd->server)->mc;

    if (err)
        return err;
    return kdeleg_read_key_file(cmd, "KdelegCacheKeyFile", arg, &mc->cache_key_file,
                                &mc->cache_keys, &mc->cache_key_uid);
}

int kdeleg_replay_pre_config(apr_pool_t *pconf)
{
    memset(&replay, 0, sizeof(replay));
    return ap_mutex_register(pconf, KD_REPLAY_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t replay_cleanup(void *data)
{
    replay.table = NULL;
    replay.store = NULL;
    return APR_SUCCESS;
}

/* The farm's replay keys: one per key of KdelegCacheKeyFile, derived so
 * that the same file gives every node the same keys and nothing else
 * (sessions, cache entries) shares them. */
static int derive_farm_keys(apr_pool_t *pconf, server_rec *s, const kdeleg_mod_conf *mc)
{
    int i;

    if (mc->cache_keys == NULL) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00607)
                     "KdelegReplayCache %s needs KdelegCacheKeyFile: the farm's keys, the same "
                     "file on every node, name the claims in the store (without them nodes "
                     "cannot agree, and whoever writes to the store could plant claims)",
                     kdeleg_store_name(mc->replay_store));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    replay.n_keys = kd_session_keys_count(mc->cache_keys);
    replay.keys = apr_pcalloc(pconf, sizeof(*replay.keys) * (apr_size_t)replay.n_keys);
    for (i = 0; i < replay.n_keys; i++)
        if (kd_session_keys_derive(mc->cache_keys, i, "replay claim v1", replay.keys[i]) != 0) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00608)
                         "KdelegCacheKeyFile %s: cannot derive the replay keys (OpenSSL HKDF)",
                         mc->cache_key_file);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
    replay.fingerprints = "";
    for (i = 0; i < replay.n_keys; i++) {
        char id[KD_STORE_KEY_MAX];
        kd_store_key(replay.keys[i], "id", (const unsigned char *)"", 0, id);
        replay.fingerprints = apr_pstrcat(pconf, replay.fingerprints, i ? " " : "",
                                          strrchr(id, ':') + 1, NULL);
    }
    return OK;
}

static int shared_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s,
                              const kdeleg_mod_conf *mc)
{
    int status;

    if (mc->cache_key_file && mc->cache_key_uid != 0
        && mc->cache_key_uid != (long)ap_unixd_config.user_id
        && mc->cache_key_uid != (long)getuid()) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_EMERG, 0, s, KDLOGNO(00609)
                     "KdelegCacheKeyFile %s: owned by uid %ld, neither root nor the user httpd "
                     "runs as (chown root %s)", mc->cache_key_file, mc->cache_key_uid,
                     mc->cache_key_file);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (mc->replay_store == NULL)
        return OK;
    if ((status = derive_farm_keys(pconf, s, mc)) != OK)
        return status;
    replay.store = mc->replay_store;
    /* Asked once, when httpd really starts (not in its configuration
     * check, which also runs post_config). */
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG)
        kdeleg_store_check_eviction(replay.store, s, ptemp);
    return OK;
}

int kdeleg_replay_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s)
{
    const kdeleg_mod_conf *mc = kdeleg_srv_conf_of(s)->mc;
    apr_status_t rv;
    int fresh;

    replay.bytes = mc->replay_configured ? mc->replay_bytes : KD_REPLAY_DEFAULT_BYTES;
    if (replay.bytes == 0)
        return OK;
    rv = kdeleg_kept_table_get(s, KD_REPLAY_KEPT, KD_REPLAY_MUTEX, replay.bytes, &kept, &fresh);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, KDLOGNO(00601)
                     "cannot create the replay cache (%" APR_SIZE_T_FMT " bytes)", replay.bytes);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (fresh)
        kd_replay_init(kdeleg_kept_table_base(kept), kdeleg_kept_table_size(kept));
    replay.table = kdeleg_kept_table_base(kept);
    replay.lifetime = kd_replay_lifetime();
    apr_pool_cleanup_register(pconf, NULL, replay_cleanup, apr_pool_cleanup_null);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, KDLOGNO(00602)
                 "replay cache: %" APR_SIZE_T_FMT " entries shared by all children, each kept "
                 "%u s%s%s", kd_replay_slots_in(kdeleg_kept_table_size(kept)),
                 (unsigned)replay.lifetime, mc->replay_store ? ", then claimed in " : "",
                 mc->replay_store ? kdeleg_store_name(mc->replay_store) : "");
    return shared_post_config(pconf, ptemp, s, mc);
}

/* Map every page of the table into this child now. A shared mapping's
 * pages are not copied into a child's page tables at fork: each one would
 * otherwise fault on its first lookup, under the table's lock, and every
 * other worker would wait for it. 64M is 16,384 pages: a few milliseconds
 * once per child. */
static void map_every_page(const void *table, apr_size_t bytes)
{
    const volatile unsigned char *b = table;
    apr_size_t at;
    unsigned sum = 0;

    for (at = 0; at < bytes; at += 4096)
        sum += b[at];
    (void)sum;
}

void kdeleg_replay_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (replay.table == NULL)
        return;
    map_every_page(replay.table, kdeleg_kept_table_size(kept));
    if ((replay.mutex = kdeleg_kept_table_child_mutex(kept, pchild)) == NULL) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, KDLOGNO(00603)
                     "replay cache: cannot attach the mutex; this child uses MIT's replay cache");
        replay.table = NULL;
    }
    if (replay.store != NULL) {
        kdeleg_store_child_init(replay.store, pchild);
        memset(&keycheck, 0, sizeof(keycheck));
        if (apr_thread_mutex_create(&keycheck.lock, APR_THREAD_MUTEX_DEFAULT, pchild)
            != APR_SUCCESS)
            keycheck.lock = NULL; /* then every claim reads the entry */
    }
}

int kdeleg_replay_off(const kdeleg_mod_conf *mc)
{
    return mc->replay_configured && mc->replay_bytes == 0;
}

int kdeleg_replay_active(void)
{
    return replay.table != NULL;
}

static kd_replay_result claim_locked(const unsigned char *tag, kdeleg_replay_why *why)
{
    uint32_t now = (uint32_t)apr_time_sec(apr_time_now());
    kd_replay_result rv;

    /* Without the lock the table cannot be written safely: the caller
     * refuses the token rather than accept it unchecked. */
    if ((why->lock_rv = apr_global_mutex_lock(replay.mutex)) != APR_SUCCESS)
        return KD_REPLAY_UNAVAILABLE;
    rv = kd_replay_claim(replay.table, tag, now, replay.lifetime);
    apr_global_mutex_unlock(replay.mutex);
    return rv;
}

static void why_init(kdeleg_replay_why *why)
{
    why->lock_rv = APR_SUCCESS;
    why->detail = NULL;
    why->elsewhere = 0;
    why->key_mismatch = 0;
}

/* A look before any cryptography, without the lock: two per login made
 * every worker queue on it (the lock is the claim's, after the accept). */
kd_replay_result kdeleg_replay_seen(const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                    kdeleg_replay_why *why)
{
    why_init(why);
    return kd_replay_lookup(replay.table, tag, (uint32_t)apr_time_sec(apr_time_now()));
}

/* Whether the fingerprints in `theirs` share one with ours. */
static int share_a_key(const char *theirs, apr_size_t len)
{
    const char *ours = replay.fingerprints, *end;

    for (; *ours; ours = *end ? end + 1 : end) {
        apr_size_t n, i;
        end = strchr(ours, ' ');
        if (end == NULL)
            end = ours + strlen(ours);
        n = (apr_size_t)(end - ours);
        for (i = 0; i + n <= len; i++)
            if (memcmp(theirs + i, ours, n) == 0 && (i == 0 || theirs[i - 1] == ' ')
                && (i + n == len || theirs[i + n] == ' '))
                return 1;
    }
    return 0;
}

/* Read the farm's entry: 1 when its writer shares no key with this node
 * (its fingerprints in theirs), 0 otherwise, including when the store
 * cannot be reached (the claim then says so). The entry belongs to the
 * node that wrote it first and keeps it fresh: a node that disagrees never
 * overwrites it, so all its children see the same mismatch and it leaves
 * the balancer's pool (the health check fails), while the farm it
 * disagrees with goes on. Once the owner is gone the entry expires within
 * KD_FARM_KEYS_TTL and the next node to look writes its own. */
static int read_farm_keys(apr_pool_t *p, char *theirs, apr_size_t cap)
{
    const unsigned char *value;
    apr_size_t len, ours = strlen(replay.fingerprints);
    const char *why;
    kd_store_answer a = kdeleg_store_get(replay.store, p, KD_FARM_KEYS_ENTRY, &value, &len, &why);

    if (a == KD_STORE_FAILED)
        return 0;
    if (a == KD_STORE_FOUND && !(len == ours && memcmp(value, replay.fingerprints, len) == 0)) {
        if (share_a_key((const char *)value, len))
            return 0; /* a rotation in progress: the owner keeps the entry */
        apr_cpystrn(theirs, apr_pstrmemdup(p, (const char *)value, len < cap ? len : cap - 1),
                    cap);
        return 1;
    }
    /* absent, or ours: write it (again), which keeps it from expiring */
    kdeleg_store_set(replay.store, p, KD_FARM_KEYS_ENTRY,
                     (const unsigned char *)replay.fingerprints, ours, KD_FARM_KEYS_TTL, &why);
    return 0;
}

/* 1 (and *why) when the farm's nodes do not share a key, from this
 * child's last look, renewed when it is older than KD_FARM_KEYS_EVERY. */
static int farm_keys_mismatch(apr_pool_t *p, const char **why)
{
    char theirs[sizeof(keycheck.theirs)] = "";
    apr_time_t now = apr_time_now();
    int mismatch, fresh = 0;

    if (keycheck.lock != NULL && apr_thread_mutex_lock(keycheck.lock) == APR_SUCCESS) {
        fresh = keycheck.checked && now - keycheck.checked < KD_FARM_KEYS_EVERY;
        mismatch = keycheck.mismatch;
        apr_cpystrn(theirs, keycheck.theirs, sizeof(theirs));
        apr_thread_mutex_unlock(keycheck.lock);
    }
    if (!fresh) {
        mismatch = read_farm_keys(p, theirs, sizeof(theirs));
        if (keycheck.lock != NULL && apr_thread_mutex_lock(keycheck.lock) == APR_SUCCESS) {
            keycheck.checked = now;
            keycheck.mismatch = mismatch;
            apr_cpystrn(keycheck.theirs, theirs, sizeof(keycheck.theirs));
            apr_thread_mutex_unlock(keycheck.lock);
        }
    }
    if (mismatch)
        *why = apr_psprintf(p, "another node of the farm writes to %s with keys this node does "
                            "not have (its key fingerprints: %s; this node's: %s): give every "
                            "node the same KdelegCacheKeyFile",
                            kdeleg_store_name(replay.store), theirs, replay.fingerprints);
    return mismatch;
}

/* The farm's claim, under every farm key at once (during a rotation the
 * nodes share at least one of them). */
static kd_replay_result claim_in_farm(apr_pool_t *p, const unsigned char *tag,
                                      kdeleg_replay_why *why)
{
    const char **keys = apr_palloc(p, sizeof(*keys) * (apr_size_t)replay.n_keys);
    int i;

    if (farm_keys_mismatch(p, &why->detail)) {
        why->key_mismatch = 1;
        return KD_REPLAY_SHARED_DOWN;
    }
    for (i = 0; i < replay.n_keys; i++) {
        char *key = apr_palloc(p, KD_STORE_KEY_MAX);
        kd_store_key(replay.keys[i], "r", tag, KD_REPLAY_TAG_BYTES, key);
        keys[i] = key;
    }
    switch (kdeleg_store_claim(replay.store, p, keys, replay.n_keys, replay.lifetime,
                               &why->detail)) {
    case KD_STORE_CLAIMED:
        return KD_REPLAY_FRESH;
    case KD_STORE_TAKEN:
        why->elsewhere = 1;
        return KD_REPLAY_SEEN;
    default:
        return KD_REPLAY_SHARED_DOWN;
    }
}

/* Two copies of one token racing through different workers, or through
 * different nodes of a farm with a shared store: only the first claims
 * it. */
kd_replay_result kdeleg_replay_record(apr_pool_t *p, const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                      kdeleg_replay_why *why)
{
    kd_replay_result rv;

    why_init(why);
    if ((rv = claim_locked(tag, why)) != KD_REPLAY_FRESH || replay.store == NULL)
        return rv;
    return claim_in_farm(p, tag, why);
}

kdeleg_store *kdeleg_replay_store(void)
{
    return replay.store;
}

/* For the health endpoint: a node whose logins would all be refused with
 * shared-store-down should leave the balancer's pool. */
int kdeleg_store_healthy(apr_pool_t *p, const char **why)
{
    *why = NULL;
    if (replay.store == NULL)
        return 1;
    if (!kdeleg_store_ping(replay.store, p, why))
        return 0;
    return !farm_keys_mismatch(p, why);
}
