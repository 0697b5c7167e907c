/* mod_kdeleg_replay: the node's replay cache in shared memory
 * (KdelegReplayCache, default 16M). Instead of MIT's file replay cache,
 * which opens, locks and rewrites a file on every request and serialises
 * every worker of the host on that lock, a fixed table shared by all
 * children, checked before the exchange and filled after it succeeds. */
#include "mod_kdeleg.h"

#include <stdlib.h>
#include <string.h>

#include <http_core.h>
#include <http_log.h>
#include <util_mutex.h>
#include <apr_global_mutex.h>
#include <apr_strings.h>

#include "kd_replay.h"

APLOG_USE_MODULE(kdeleg);

#define KD_REPLAY_MUTEX "kdeleg-replay"
#define KD_REPLAY_DEFAULT_BYTES (16 * 1024 * 1024)

static struct {
    apr_size_t bytes;       /* the table's size in effect (KdelegReplayCache or the default) */
    void *table;            /* this generation's view of the table, NULL = off */
    apr_global_mutex_t *mutex;
    uint32_t lifetime;      /* seconds an authenticator stays replayable */
} replay;

/* The table outlives configuration generations (kdeleg_kept_table): a
 * graceful restart (daily, with Debian's logrotate) must not forget which
 * authenticators were accepted, or a captured token could be replayed just
 * after it. Kept while the size stays the same, with its one mutex. */
#define KD_REPLAY_KEPT "mod_kdeleg-replay-table"

static kdeleg_kept_table *kept; /* this generation's, set in post_config */

const char *kdeleg_replay_set(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    kdeleg_mod_conf *mc = kdeleg_srv_conf_of(cmd->server)->mc;
    char *end;
    apr_int64_t n;

    if (err)
        return err;
    mc->replay_configured = 1;
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
        return "KdelegReplayCache: a size between 1K and 4G (e.g. 16M), or off";
    mc->replay_bytes = (apr_size_t)n;
    return NULL;
}

int kdeleg_replay_pre_config(apr_pool_t *pconf)
{
    memset(&replay, 0, sizeof(replay));
    return ap_mutex_register(pconf, KD_REPLAY_MUTEX, NULL, APR_LOCK_DEFAULT, 0);
}

static apr_status_t replay_cleanup(void *data)
{
    replay.table = NULL;
    return APR_SUCCESS;
}

int kdeleg_replay_post_config(apr_pool_t *pconf, server_rec *s)
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
                 "%u s", kd_replay_slots_in(kdeleg_kept_table_size(kept)),
                 (unsigned)replay.lifetime);
    return OK;
}

void kdeleg_replay_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (replay.table == NULL)
        return;
    if ((replay.mutex = kdeleg_kept_table_child_mutex(kept, pchild)) == NULL) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, KDLOGNO(00603)
                     "replay cache: cannot attach the mutex; this child uses MIT's replay cache");
        replay.table = NULL;
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

static kd_replay_result locked(const unsigned char *tag, int claim, apr_status_t *lock_rv)
{
    uint32_t now = (uint32_t)apr_time_sec(apr_time_now());
    kd_replay_result rv;

    /* Without the lock the table cannot be read or written safely: the
     * caller refuses the token rather than accept it unchecked. */
    if ((*lock_rv = apr_global_mutex_lock(replay.mutex)) != APR_SUCCESS)
        return KD_REPLAY_UNAVAILABLE;
    rv = claim ? kd_replay_claim(replay.table, tag, now, replay.lifetime)
               : kd_replay_lookup(replay.table, tag, now);
    apr_global_mutex_unlock(replay.mutex);
    return rv;
}

kd_replay_result kdeleg_replay_seen(const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                    apr_status_t *lock_rv)
{
    return locked(tag, 0, lock_rv);
}

/* Two copies of one token racing through different workers: only the
 * first claims it. */
kd_replay_result kdeleg_replay_record(const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                      apr_status_t *lock_rv)
{
    return locked(tag, 1, lock_rv);
}
