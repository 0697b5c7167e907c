/* mod_kdeleg_store: the connection to a store the farm shares (memcached
 * or redis), for claims every node must agree on (KdelegReplayCache
 * memcache:/redis:). What is said on the wire is kd_store's; this file
 * keeps the sockets.
 *
 * Not apr_memcache: it reads with no timeout once connected, so a store
 * that accepts and stalls would hold every login forever. Here every
 * connect, write and read has KD_STORE_TIMEOUT, and after a failure the
 * store is held as down for KD_STORE_DOWN_HOLD so that a dead store costs
 * one timeout per hold, not one per request. Connections are kept per
 * process (a few idle ones, under a mutex) and a reused connection that
 * fails before any reply (the store restarted) is retried once on a fresh
 * one, so a restarted store serves again without an httpd restart. */
#include "mod_kdeleg.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <http_log.h>
#include <apr_network_io.h>
#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "kd_store.h"

APLOG_USE_MODULE(kdeleg);

#define KD_STORE_TIMEOUT apr_time_from_sec(1)
#define KD_STORE_DOWN_HOLD apr_time_from_sec(1)
#define KD_STORE_IDLE_MAX 16
#define KD_STORE_BATCH_MAX 8 /* keys claimed in one round trip (one per farm key) */

typedef struct {
    apr_pool_t *pool;   /* unmanaged: the connection's own, destroyed with it */
    apr_socket_t *sock;
} store_conn;

struct kdeleg_store {
    kd_store_kind kind;
    const char *name;          /* the spec as configured, for logs and causes */
    apr_sockaddr_t *addr;      /* resolved at start-up */
    /* Per process, from child_init; guarded by lock. */
    apr_thread_mutex_t *lock;
    store_conn *idle[KD_STORE_IDLE_MAX];
    int n_idle;
    apr_time_t down_until;     /* fail at once until then */
    char down_text[160];       /* why it is held down */
};

const char *kdeleg_store_create(apr_pool_t *p, const char *spec, kdeleg_store **out)
{
    kdeleg_store *st = apr_pcalloc(p, sizeof(*st));
    const char *err;
    char *host;
    int port;
    apr_status_t rv;

    if ((err = kd_store_parse(p, spec, &st->kind, &host, &port)) != NULL)
        return err;
    /* Resolved once: a name is looked up at start-up, never per request. */
    rv = apr_sockaddr_info_get(&st->addr, host, APR_UNSPEC, (apr_port_t)port, 0, p);
    if (rv != APR_SUCCESS)
        return apr_psprintf(p, "cannot resolve %s: %pm", host, &rv);
    st->name = apr_pstrdup(p, spec);
    *out = st;
    return NULL;
}

const char *kdeleg_store_name(const kdeleg_store *st)
{
    return st->name;
}

static void conn_close(store_conn *c)
{
    if (c != NULL)
        apr_pool_destroy(c->pool); /* closes the socket */
}

static apr_status_t drop_idle(void *data)
{
    kdeleg_store *st = data;

    while (st->n_idle > 0)
        conn_close(st->idle[--st->n_idle]);
    return APR_SUCCESS;
}

void kdeleg_store_child_init(kdeleg_store *st, apr_pool_t *pchild)
{
    st->n_idle = 0;
    st->down_until = 0;
    if (apr_thread_mutex_create(&st->lock, APR_THREAD_MUTEX_DEFAULT, pchild) != APR_SUCCESS)
        st->lock = NULL; /* then no connection is kept: each request opens its own */
    apr_pool_cleanup_register(pchild, st, drop_idle, apr_pool_cleanup_null);
}

/* Once connected, reads and writes block, each bounded by KD_STORE_TIMEOUT
 * in the kernel (SO_RCVTIMEO, SO_SNDTIMEO): a claim's reply costs one
 * system call, where APR's timeout makes it read, poll and read again. */
static apr_status_t kernel_timeouts(apr_socket_t *sock)
{
    struct timeval tv;
    apr_os_sock_t fd;
    apr_status_t rv = apr_os_sock_get(&fd, sock);

    tv.tv_sec = (time_t)apr_time_sec(KD_STORE_TIMEOUT);
    tv.tv_usec = (suseconds_t)apr_time_usec(KD_STORE_TIMEOUT);
    if (rv == APR_SUCCESS
        && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0
            || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0))
        rv = APR_FROM_OS_ERROR(errno);
    if (rv == APR_SUCCESS)
        rv = apr_socket_timeout_set(sock, -1);
    return rv;
}

/* A kernel timeout (SO_RCVTIMEO) ends a blocking call with EAGAIN. */
static apr_status_t timed_out_as_timeup(apr_status_t rv)
{
    return APR_STATUS_IS_EAGAIN(rv) ? APR_TIMEUP : rv;
}

static apr_status_t conn_open(const kdeleg_store *st, store_conn **out)
{
    store_conn *c;
    apr_pool_t *p;
    apr_status_t rv;

    if ((rv = apr_pool_create_unmanaged_ex(&p, NULL, NULL)) != APR_SUCCESS)
        return rv;
    c = apr_pcalloc(p, sizeof(*c));
    c->pool = p;
    rv = apr_socket_create(&c->sock, st->addr->family, SOCK_STREAM, APR_PROTO_TCP, p);
    if (rv == APR_SUCCESS)
        rv = apr_socket_timeout_set(c->sock, KD_STORE_TIMEOUT);
    if (rv == APR_SUCCESS)
        rv = apr_socket_connect(c->sock, st->addr);
    if (rv == APR_SUCCESS)
        rv = kernel_timeouts(c->sock);
    if (rv == APR_SUCCESS)
        apr_socket_opt_set(c->sock, APR_TCP_NODELAY, 1);
    if (rv != APR_SUCCESS) {
        apr_pool_destroy(p);
        return rv;
    }
    *out = c;
    return APR_SUCCESS;
}

/* An idle connection, or NULL; and whether the store is held as down. */
static store_conn *take_idle(kdeleg_store *st, apr_pool_t *p, const char **down)
{
    store_conn *c = NULL;

    *down = NULL;
    if (st->lock == NULL || apr_thread_mutex_lock(st->lock) != APR_SUCCESS)
        return NULL;
    if (st->down_until > apr_time_now())
        *down = apr_pstrdup(p, st->down_text); /* copied: another thread may rewrite it */
    else if (st->n_idle > 0)
        c = st->idle[--st->n_idle];
    apr_thread_mutex_unlock(st->lock);
    return c;
}

static void give_back(kdeleg_store *st, store_conn *c)
{
    if (st->lock != NULL && apr_thread_mutex_lock(st->lock) == APR_SUCCESS) {
        if (st->n_idle < KD_STORE_IDLE_MAX) {
            st->idle[st->n_idle++] = c;
            c = NULL;
        }
        apr_thread_mutex_unlock(st->lock);
    }
    conn_close(c);
}

static void hold_down(kdeleg_store *st, const char *why)
{
    if (st->lock != NULL && apr_thread_mutex_lock(st->lock) == APR_SUCCESS) {
        apr_cpystrn(st->down_text, why, sizeof(st->down_text));
        st->down_until = apr_time_now() + KD_STORE_DOWN_HOLD;
        apr_thread_mutex_unlock(st->lock);
    }
}

static apr_status_t send_all(apr_socket_t *sock, const char *buf, apr_size_t len)
{
    apr_status_t rv = APR_SUCCESS;

    while (len > 0 && rv == APR_SUCCESS) {
        apr_size_t n = len;
        rv = timed_out_as_timeup(apr_socket_send(sock, buf, &n));
        buf += n;
        len -= n;
    }
    return rv;
}

/* One request, and replies read until `complete` says they are whole: it
 * returns 0 while more is needed, 1 when done, 2 when done but the
 * connection must not be reused (replies left unread). *got is what
 * arrived, even on failure: a retry is safe only when nothing did. */
typedef int (*reply_complete)(const kdeleg_store *st, const char *buf, apr_size_t len,
                              void *baton);

static apr_status_t exchange(const kdeleg_store *st, store_conn *c, const char *req,
                             apr_size_t req_len, char *reply, apr_size_t cap, apr_size_t *got,
                             reply_complete complete, void *baton, int *done)
{
    apr_status_t rv = send_all(c->sock, req, req_len);

    *got = 0;
    while (rv == APR_SUCCESS && (*done = complete(st, reply, *got, baton)) == 0) {
        apr_size_t n = cap - *got;
        if (n == 0)
            return APR_ENOSPC;
        rv = timed_out_as_timeup(apr_socket_recv(c->sock, reply + *got, &n));
        *got += n;
        if (rv == APR_EOF && n > 0)
            rv = APR_SUCCESS; /* the data first; EOF again on the next read */
    }
    return rv;
}

/* Talk to the store: an idle connection first, and one retry on a fresh
 * connection if the reused one failed before answering. NULL on success,
 * else why the store could not be used. */
static const char *talk(kdeleg_store *st, apr_pool_t *p, const char *req, apr_size_t req_len,
                        char *reply, apr_size_t cap, apr_size_t *got, reply_complete complete,
                        void *baton)
{
    const char *down, *why;
    store_conn *c = take_idle(st, p, &down);
    apr_status_t rv;
    int reused = c != NULL, done = 0;

    if (down != NULL)
        return down;
    for (;;) {
        if (c == NULL && (rv = conn_open(st, &c)) != APR_SUCCESS) {
            why = apr_psprintf(p, "%s does not answer: %pm", st->name, &rv);
            hold_down(st, why);
            return why;
        }
        rv = exchange(st, c, req, req_len, reply, cap, got, complete, baton, &done);
        if (rv == APR_SUCCESS) {
            if (done == 1)
                give_back(st, c);
            else
                conn_close(c);
            return NULL;
        }
        conn_close(c);
        c = NULL;
        if (!(reused && *got == 0))
            break;
        reused = 0;
    }
    why = apr_psprintf(p, "%s: %pm", st->name, &rv);
    hold_down(st, why);
    return why;
}

/* ------------------------------------------------------------ claims */

typedef struct {
    int n;                          /* claims sent */
    kd_store_answer answer[KD_STORE_BATCH_MAX];
    const char *detail;             /* the store's error line, in the reply */
    apr_size_t detail_len;
} claim_replies;

static int claims_complete(const kdeleg_store *st, const char *buf, apr_size_t len, void *baton)
{
    claim_replies *cr = baton;
    apr_size_t at = 0, used = 0;
    int i;

    for (i = 0; i < cr->n; i++) {
        const char *detail;
        size_t detail_len;
        cr->answer[i] = kd_store_claim_reply(st->kind, buf + at, len - at, &used, &detail,
                                             &detail_len);
        if (cr->answer[i] == KD_STORE_INCOMPLETE)
            return 0;
        if (cr->answer[i] == KD_STORE_FAILED) {
            cr->detail = detail;
            cr->detail_len = detail_len;
            return 2; /* the rest of the pipeline is not read: the connection is dropped */
        }
        at += used;
    }
    return 1;
}

kd_store_answer kdeleg_store_claim(kdeleg_store *st, apr_pool_t *p, const char *const *keys,
                                   int n, unsigned ttl, const char **why)
{
    char req[KD_STORE_BATCH_MAX * (KD_STORE_KEY_MAX + 64)], reply[KD_STORE_BATCH_MAX * 64];
    apr_size_t req_len = 0, got;
    claim_replies cr;
    int i, taken = 0;

    memset(&cr, 0, sizeof(cr));
    cr.n = n < KD_STORE_BATCH_MAX ? n : KD_STORE_BATCH_MAX;
    for (i = 0; i < cr.n; i++)
        if (kd_store_claim_request(st->kind, keys[i], ttl, req, sizeof(req), &req_len) != 0) {
            *why = "internal error: the claim does not fit its buffer";
            return KD_STORE_FAILED;
        }
    if ((*why = talk(st, p, req, req_len, reply, sizeof(reply), &got, claims_complete,
                     &cr)) != NULL)
        return KD_STORE_FAILED;
    for (i = 0; i < cr.n; i++) {
        if (cr.answer[i] == KD_STORE_FAILED) {
            *why = apr_psprintf(p, "%s refused the claim: %s", st->name,
                                ap_escape_logitem(p, apr_pstrmemdup(p, cr.detail,
                                                                    cr.detail_len)));
            return KD_STORE_FAILED;
        }
        taken |= cr.answer[i] == KD_STORE_TAKEN;
    }
    /* During a key rotation the nodes share at least one key: a claim that
     * any key finds taken is a token seen somewhere in the farm. */
    return taken ? KD_STORE_TAKEN : KD_STORE_CLAIMED;
}

/* ------------------------------------------------------------ start-up */

static int settings_complete(const kdeleg_store *st, const char *buf, apr_size_t len,
                             void *baton)
{
    *(int *)baton = kd_store_never_evicts(st->kind, buf, len);
    return *(int *)baton != -2;
}

/* Said once at start-up, in the parent: a store that may evict live
 * entries forgets claims under memory pressure, and a forgotten claim is
 * a replay let through. A store that is down now is not an error (the
 * policy applies per request); it is said so the administrator knows. */
void kdeleg_store_check_eviction(kdeleg_store *st, server_rec *s, apr_pool_t *ptemp)
{
    const char *question = kd_store_eviction_question(st->kind), *why;
    char reply[8192];
    apr_size_t got;
    int never = -2;
    apr_thread_mutex_t *lock = st->lock;

    st->lock = NULL; /* no connection is kept in the parent */
    why = talk(st, ptemp, question, strlen(question), reply, sizeof(reply), &got,
               settings_complete, &never);
    st->lock = lock;
    st->down_until = 0;
    if (why != NULL)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, KDLOGNO(00604)
                     "shared store %s: not reachable at start-up (%s); until it answers, "
                     "logins are refused with shared-store-down", st->name, why);
    else if (never == 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, KDLOGNO(00605)
                     "shared store %s may evict live entries under memory pressure, which "
                     "forgets claimed tokens and lets replays through: run memcached with -M, "
                     "redis with maxmemory-policy noeviction", st->name);
    else if (never < 0)
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, KDLOGNO(00606)
                     "shared store %s: cannot tell whether it evicts live entries (its "
                     "settings are not readable); make sure it does not (memcached -M, "
                     "redis maxmemory-policy noeviction)", st->name);
}

/* ------------------------------------------------------------ health */

static int pong_complete(const kdeleg_store *st, const char *buf, apr_size_t len, void *baton)
{
    (void)st;
    (void)baton;
    return memchr(buf, '\n', len) != NULL;
}

int kdeleg_store_ping(kdeleg_store *st, apr_pool_t *p, const char **why)
{
    const char *question = st->kind == KD_STORE_MEMCACHE ? "version\r\n" : "PING\r\n";
    const char *answer = st->kind == KD_STORE_MEMCACHE ? "VERSION " : "+PONG";
    char reply[256];
    apr_size_t got;

    if ((*why = talk(st, p, question, strlen(question), reply, sizeof(reply), &got,
                     pong_complete, NULL)) != NULL)
        return 0;
    if (got < strlen(answer) || memcmp(reply, answer, strlen(answer)) != 0) {
        *why = apr_psprintf(p, "%s answers in a protocol other than %s", st->name,
                            kd_store_kind_name(st->kind));
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ set, get */

typedef struct {
    kd_store_answer answer;
    const unsigned char *value;
    size_t value_len;
    const char *detail;
    size_t detail_len;
} get_reply;

static int get_complete(const kdeleg_store *st, const char *buf, apr_size_t len, void *baton)
{
    get_reply *gr = baton;
    size_t used = 0;

    gr->answer = kd_store_get_reply(st->kind, buf, len, &used, &gr->value, &gr->value_len,
                                    &gr->detail, &gr->detail_len);
    if (gr->answer == KD_STORE_INCOMPLETE)
        return 0;
    return gr->answer == KD_STORE_FAILED ? 2 : 1;
}

kd_store_answer kdeleg_store_get(kdeleg_store *st, apr_pool_t *p, const char *key,
                                 const unsigned char **value, apr_size_t *len, const char **why)
{
    apr_size_t cap = KD_STORE_VALUE_MAX + KD_STORE_REPLY_MAX + 16, got;
    char *reply = apr_palloc(p, cap), *req;
    size_t req_len;
    get_reply gr;

    memset(&gr, 0, sizeof(gr));
    kd_store_get_request(p, st->kind, key, &req, &req_len);
    if ((*why = talk(st, p, req, req_len, reply, cap, &got, get_complete, &gr)) != NULL)
        return KD_STORE_FAILED;
    if (gr.answer == KD_STORE_FAILED) {
        *why = apr_psprintf(p, "%s refused the read: %s", st->name,
                            ap_escape_logitem(p, apr_pstrmemdup(p, gr.detail, gr.detail_len)));
        return KD_STORE_FAILED;
    }
    *value = gr.value;
    *len = gr.value_len;
    return gr.answer;
}

int kdeleg_store_set(kdeleg_store *st, apr_pool_t *p, const char *key,
                     const unsigned char *value, apr_size_t len, unsigned ttl, const char **why)
{
    char reply[KD_STORE_REPLY_MAX + 16], *req;
    size_t req_len;
    apr_size_t got;
    claim_replies cr;

    if (kd_store_set_request(p, st->kind, key, value, len, ttl, &req, &req_len) != 0) {
        *why = "the value is larger than the store takes from us";
        return -1;
    }
    memset(&cr, 0, sizeof(cr));
    cr.n = 1;
    if ((*why = talk(st, p, req, req_len, reply, sizeof(reply), &got, claims_complete, &cr))
        != NULL)
        return -1;
    if (cr.answer[0] != KD_STORE_CLAIMED) {
        *why = apr_psprintf(p, "%s refused the write: %s", st->name,
                            cr.detail ? ap_escape_logitem(p, apr_pstrmemdup(p, cr.detail,
                                                                            cr.detail_len))
                                      : "not stored");
        return -1;
    }
    return 0;
}
