/* mod_kdeleg_health: `SetHandler kdeleg-health`, the node's answer to a
 * load balancer's health check: 200 "ok\n" when this node can serve, 503
 * "unavailable\n" when it cannot. The body is fixed and tells nothing
 * (no principal, path, cause or version); the reason for a 503 goes to
 * the error log, once per change of state in each child process, so a
 * balancer polling every second does not flood it.
 *
 * Three things decide, cheapest first:
 *   the keytab: the location's KdelegKeytab is there, readable and holds
 *     a key for every configured service name (a stat per request; the
 *     file is read again only when it changed: kd_acceptor_keytab_ready);
 *   the shared store (KdelegReplayCache memcache:/redis:) answers;
 *   the KDC answers: the service's own TGT is asked for, the exchange
 *     delegation needs (kd_acceptor_probe_kdc), at most once per
 *     KdelegHealthInterval seconds per child process and (vhost's keytab,
 *     SPN); in between the last answer is reused, and a probe under way
 *     never makes the others wait or ask too.
 * Only a KDC that does not answer (kdc-unreachable) takes the node out. A
 * KDC that answers and refuses (a stale key, a disabled or unknown
 * account) is reachable, and the refusal is about the account or its key:
 * nodes share that keytab, so it usually refuses every node alike, and
 * taking them all out would turn a delegation fault into an outage of
 * every page, even those served from sessions or by tickets issued before
 * a password change. That refusal is logged (KD00854) and the node stays
 * in service. */
#include "mod_kdeleg.h"

#include <string.h>

#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "kd_causes.h"

APLOG_USE_MODULE(kdeleg);

#define KD_HEALTH_HANDLER "kdeleg-health"
#define KD_HEALTH_INTERVAL_DEFAULT 10 /* seconds between KDC probes */
#define KD_HEALTH_INTERVAL_MAX 3600
#define KD_HEALTH_SLOTS_MAX 256       /* (keytab, SPN) pairs remembered per child */

typedef enum { STATE_UNKNOWN = 0, STATE_OK, STATE_DOWN } health_state;

/* What this child knows about one (keytab, SPN, account): the KDC's last
 * answer and the state last logged. Guarded by health_lock, except
 * probe_lock, which the one probing thread holds for the probe (KDC I/O
 * happens under no other lock). */
typedef struct {
    apr_thread_mutex_t *probe_lock;
    apr_time_t probed;          /* when the last probe ended; 0: never */
    int probing;                /* a probe is under way */
    kd_cause kdc_cause;         /* its result: KD_CAUSE_NONE when the TGT came */
    char kdc_detail[512];       /* why not, for the log only (a fixed buffer: a KDC down
                                   for days must not grow the child's memory) */
    health_state reported;      /* the state last logged */
    int refusal_logged;         /* the KDC's refusal was logged (KD00854) */
} health_slot;

static apr_pool_t *slot_pool;           /* the child's, for the slots */
static apr_thread_mutex_t *health_lock; /* guards slots and every slot's fields */
static apr_hash_t *slots;               /* key -> health_slot* */

const char *kdeleg_set_health_interval(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_srv_conf *conf = ap_get_module_config(cmd->server->module_config, &kdeleg_module);

    (void)dconf;
    return kdeleg_parse_seconds(cmd, arg, 1, KD_HEALTH_INTERVAL_MAX, &conf->health_interval);
}

static int health_interval(const server_rec *s)
{
    int v = kdeleg_srv_conf_of(s)->health_interval;

    return v == KD_UNSET ? KD_HEALTH_INTERVAL_DEFAULT : v;
}

void kdeleg_health_child_init(apr_pool_t *pchild)
{
    if (apr_pool_create(&slot_pool, pchild) != APR_SUCCESS
        || apr_thread_mutex_create(&health_lock, APR_THREAD_MUTEX_DEFAULT, pchild)
               != APR_SUCCESS) {
        health_lock = NULL; /* every health check answers 503 */
        return;
    }
    slots = apr_hash_make(slot_pool);
}

/* Under health_lock: the slot for key, made on first use (NULL when the
 * table is full or out of memory: the caller reports the node down). */
static health_slot *slot_of(const char *key)
{
    health_slot *h = apr_hash_get(slots, key, APR_HASH_KEY_STRING);

    if (h != NULL || apr_hash_count(slots) >= KD_HEALTH_SLOTS_MAX)
        return h;
    h = apr_pcalloc(slot_pool, sizeof(*h));
    if (apr_thread_mutex_create(&h->probe_lock, APR_THREAD_MUTEX_DEFAULT, slot_pool)
        != APR_SUCCESS)
        return NULL;
    apr_hash_set(slots, apr_pstrdup(slot_pool, key), APR_HASH_KEY_STRING, h);
    return h;
}

/* The probe itself, by the one thread whose turn it is (holding the
 * slot's probe_lock, not health_lock). */
static void probe(request_rec *r, health_slot *h, kd_acceptor *a, const char *spn,
                  const char *account)
{
    kd_result res;
    kd_cause cause;

    kd_result_init(&res);
    cause = kd_acceptor_probe_kdc(a, r->pool, spn, account, &res);
    apr_thread_mutex_lock(health_lock);
    h->kdc_cause = cause;
    apr_cpystrn(h->kdc_detail, cause == KD_CAUSE_NONE ? ""
                               : res.detail ? res.detail : kd_cause_name(cause),
                sizeof(h->kdc_detail));
    h->probed = apr_time_now();
    h->probing = 0;
    apr_thread_mutex_unlock(health_lock);
}

/* The KDC's last answer for h, asking it again when the interval has
 * passed and nobody else is. A slot that never had an answer waits for
 * the probe under way (the first answer must be a real one); the others
 * take the last answer without waiting. */
static kd_cause kdc_answer(request_rec *r, health_slot *h, kd_acceptor *a, const char *spn,
                           const char *account, const char **detail)
{
    apr_time_t now = apr_time_now(), every = apr_time_from_sec(health_interval(r->server));
    int mine = 0, never;
    kd_cause cause;

    apr_thread_mutex_lock(health_lock);
    never = h->probed == 0;
    if (!h->probing && (never || now - h->probed >= every || now < h->probed)) {
        h->probing = mine = 1;
        /* taken before health_lock is let go: a thread waiting for the
         * first answer can only get it once this probe ends */
        apr_thread_mutex_lock(h->probe_lock);
    }
    apr_thread_mutex_unlock(health_lock);
    if (mine) {
        probe(r, h, a, spn, account);
        apr_thread_mutex_unlock(h->probe_lock);
    }
    else if (never) {
        apr_thread_mutex_lock(h->probe_lock);
        apr_thread_mutex_unlock(h->probe_lock);
    }
    apr_thread_mutex_lock(health_lock);
    cause = h->probed == 0 ? KD_CAUSE_NONE : h->kdc_cause; /* no answer: nothing known */
    *detail = apr_pstrdup(r->pool, h->kdc_detail);
    apr_thread_mutex_unlock(health_lock);
    return cause;
}

/* A KDC that answered but refused: logged once until it stops refusing. */
static void note_refusal(request_rec *r, health_slot *h, kd_cause cause, const char *spn,
                         const char *detail)
{
    int log;

    apr_thread_mutex_lock(health_lock);
    log = cause != KD_CAUSE_NONE && !h->refusal_logged;
    h->refusal_logged = cause != KD_CAUSE_NONE;
    apr_thread_mutex_unlock(health_lock);
    if (log)
        kdeleg_log_request(r, APLOG_WARNING, 0, KDLOGNO(00854), spn,
                           "health check: the KDC answers but refuses the service TGT (cause "
                           "%s: %s); the node stays in service (taking it out cannot fix the "
                           "account or its key), but delegation fails until that is fixed",
                           kd_cause_name(cause), ap_escape_logitem(r->pool, detail ? detail : ""));
}

/* A change of state is logged once: down with its reason, up again. */
static void note_state(request_rec *r, health_slot *h, int ok, const char *spn, const char *why)
{
    health_state was;

    apr_thread_mutex_lock(health_lock);
    was = h->reported;
    h->reported = ok ? STATE_OK : STATE_DOWN;
    apr_thread_mutex_unlock(health_lock);
    if (!ok && was != STATE_DOWN)
        kdeleg_log_request(r, APLOG_ERR, 0, KDLOGNO(00852), spn,
                           "health check: this node is unavailable (503): %s",
                           ap_escape_logitem(r->pool, why));
    else if (ok && was == STATE_DOWN)
        kdeleg_log_request(r, APLOG_NOTICE, 0, KDLOGNO(00853), spn,
                           "health check: this node is available again (200)");
}

/* Can this node serve the location's virtual host? *why when not. */
static int node_healthy(request_rec *r, const char **why)
{
    const kdeleg_dir_conf *conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    const apr_array_header_t *spns = kdeleg_conf_spns(r, conf);
    const char *keytab = kdeleg_conf_keytab(conf);
    const char *spn, *account, *detail = NULL, *store_why = NULL;
    kd_acceptor *a;
    health_slot *h;
    kd_result res;
    kd_cause cause;

    if (health_lock == NULL || keytab == NULL || spns->nelts == 0
        || (a = kdeleg_acceptor_for(conf)) == NULL) {
        *why = "no keytab or no service name configured here, or out of memory";
        return 0;
    }
    spn = kd_spn_unparse(r->pool, &APR_ARRAY_IDX(spns, 0, kd_spn));
    account = kdeleg_conf_service_account(conf, spn);
    apr_thread_mutex_lock(health_lock);
    h = slot_of(apr_pstrcat(r->pool, keytab, "|", spn, "|", account ? account : "", NULL));
    apr_thread_mutex_unlock(health_lock);
    if (h == NULL) {
        *why = "too many keytab and service name pairs for the health check in this child";
        return 0;
    }
    kd_result_init(&res);
    if (kd_acceptor_keytab_ready(a, r->pool, (const kd_spn *)spns->elts, spns->nelts, &res)
        != KD_CAUSE_NONE)
        *why = apr_pstrcat(r->pool, "cause ", kd_cause_name(res.cause), ": ",
                           res.detail ? res.detail : "", NULL);
    else if (!kdeleg_store_healthy(r->pool, &store_why))
        *why = apr_pstrcat(r->pool, "cause shared-store-down: ", store_why ? store_why : "",
                           NULL);
    else if ((cause = kdc_answer(r, h, a, spn, account, &detail)) == KD_CAUSE_KDC_UNREACHABLE)
        *why = apr_pstrcat(r->pool, "cause kdc-unreachable: ", detail ? detail : "", NULL);
    else {
        note_refusal(r, h, cause, spn, detail);
        *why = NULL;
    }
    note_state(r, h, *why == NULL, spn, *why);
    return *why == NULL;
}

static int health_handler(request_rec *r)
{
    const char *why = NULL;
    int ok;

    if (r->handler == NULL || strcmp(r->handler, KD_HEALTH_HANDLER) != 0)
        return DECLINED;
    r->allowed = (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) { /* HEAD is a GET to httpd */
        kdeleg_log_request(r, APLOG_INFO, 0, KDLOGNO(00851), "-",
                           "health check: method %s refused (GET and HEAD only)",
                           ap_escape_logitem(r->pool, r->method));
        ap_allow_methods(r, REPLACE_ALLOW, "GET", NULL);
        return HTTP_METHOD_NOT_ALLOWED;
    }
    ok = node_healthy(r, &why);
    kdeleg_note(ok ? KD_STAT_HEALTH_OK : KD_STAT_HEALTH_UNAVAILABLE);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    apr_table_setn(r->headers_out, "X-Content-Type-Options", "nosniff");
    ap_set_content_type(r, "text/plain; charset=utf-8");
    r->status = ok ? HTTP_OK : HTTP_SERVICE_UNAVAILABLE;
    if (!r->header_only)
        ap_rputs(ok ? "ok\n" : "unavailable\n", r);
    return OK;
}

void kdeleg_health_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(health_handler, NULL, NULL, APR_HOOK_MIDDLE);
}
