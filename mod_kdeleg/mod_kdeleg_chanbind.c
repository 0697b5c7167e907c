/* mod_kdeleg_chanbind: TLS channel binding (KdelegChannelBinding,
 * KdelegChannelBindingCert). Finds the certificate the client saw (the
 * configured one behind a balancer, else mod_ssl's), has the core hash it
 * once per connection, and counts bound and unbound logins so an
 * administrator can measure before requiring bindings. */
#include "mod_kdeleg.h"

#include <stdlib.h>
#include <string.h>

#include <http_connection.h>
#include <http_log.h>
#include <http_ssl.h>
#include <apr_atomic.h>
#include <apr_file_io.h>
#include <apr_strings.h>

APLOG_USE_MODULE(kdeleg);

/* The largest certificate file read: a chain of a few certificates. */
#define KD_CHANBIND_FILE_MAX (256 * 1024)

const char *kdeleg_set_channel_binding(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;

    (void)cmd;
    if (strcasecmp(arg, "off") == 0)
        conf->channel_binding = KD_CHANBIND_OFF;
    else if (strcasecmp(arg, "allow") == 0)
        conf->channel_binding = KD_CHANBIND_ALLOW;
    else if (strcasecmp(arg, "require") == 0)
        conf->channel_binding = KD_CHANBIND_REQUIRE;
    else
        return "KdelegChannelBinding: off, allow or require";
    return NULL;
}

/* Read and hash now: a missing or unreadable file fails the start-up (with
 * httpd naming the file and line), never the first login. */
const char *kdeleg_set_channel_binding_cert(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_srv_conf *conf = ap_get_module_config(cmd->server->module_config, &kdeleg_module);
    const char *path = ap_server_root_relative(cmd->pool, arg), *err = NULL;
    kd_chanbind *cb = apr_pcalloc(cmd->pool, sizeof(*cb));
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t len;
    apr_status_t rv;
    char *pem, errbuf[128];

    (void)dconf;
    if (path == NULL)
        return apr_psprintf(cmd->pool, "KdelegChannelBindingCert: invalid path %s", arg);
    if ((rv = apr_file_open(&f, path, APR_FOPEN_READ, 0, cmd->temp_pool)) != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "KdelegChannelBindingCert: cannot open %s: %s", path,
                            apr_strerror(rv, errbuf, sizeof(errbuf)));
    if ((rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f)) != APR_SUCCESS
        || fi.size <= 0 || fi.size > KD_CHANBIND_FILE_MAX) {
        apr_file_close(f);
        return apr_psprintf(cmd->pool, "KdelegChannelBindingCert: %s is empty, too large "
                            "or unreadable", path);
    }
    len = (apr_size_t)fi.size;
    pem = apr_palloc(cmd->temp_pool, len);
    rv = apr_file_read_full(f, pem, len, &len);
    apr_file_close(f);
    if (rv != APR_SUCCESS)
        return apr_psprintf(cmd->pool, "KdelegChannelBindingCert: cannot read %s: %s", path,
                            apr_strerror(rv, errbuf, sizeof(errbuf)));
    /* The first certificate is the server's (a chain file may follow it). */
    if (kd_chanbind_from_pem(cmd->pool, pem, len, cb, &err) != 0)
        return apr_psprintf(cmd->pool, "KdelegChannelBindingCert: %s: %s", path, err);
    conf->chanbind_cert = cb;
    return NULL;
}

int kdeleg_conf_channel_binding(const kdeleg_dir_conf *conf)
{
    return conf->channel_binding == KD_UNSET ? KD_CHANBIND_OFF : conf->channel_binding;
}

/* Where a connection keeps its certificate's hash: made in pre_connection
 * for every master connection, by the thread that owns it. Under HTTP/2
 * the streams of one connection run on several threads at once, and each
 * has a connection of its own (c->master is the TLS one) whose pool lives
 * no longer than the stream: so the hash is kept here, on the master,
 * published with one compare-and-swap, in malloc'ed memory the master's
 * pool frees (its pool is not safe to allocate from while streams run). */
typedef struct {
    volatile void *binding;        /* conn_binding *, NULL until the first login
                                      (apr_atomic_casptr's type) */
} conn_slot;

typedef struct {
    kd_chanbind cb;                /* cb.data NULL: this TLS connection has none */
    unsigned char data[];
} conn_binding;

static apr_status_t free_binding(void *data)
{
    conn_slot *slot = data;

    free((void *)slot->binding);
    slot->binding = NULL;
    return APR_SUCCESS;
}

static int make_slot(conn_rec *c, void *csd)
{
    conn_slot *slot;

    (void)csd;
    if (c->master != NULL)
        return DECLINED;
    slot = apr_pcalloc(c->pool, sizeof(*slot));
    apr_pool_cleanup_register(c->pool, slot, free_binding, apr_pool_cleanup_null);
    ap_set_module_config(c->conn_config, &kdeleg_module, slot);
    return DECLINED;
}

void kdeleg_chanbind_register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_connection(make_slot, NULL, NULL, APR_HOOK_MIDDLE);
}

/* mod_ssl's certificate for tls, hashed into malloc'ed memory (cb.data
 * NULL when there is none: logged, and kept so, for the connection). */
static conn_binding *hash_certificate(request_rec *r, conn_rec *tls)
{
    const char *pem = ap_ssl_var_lookup(r->pool, r->server, tls, r, "SSL_SERVER_CERT");
    const char *err = NULL;
    kd_chanbind cb;
    conn_binding *out;

    memset(&cb, 0, sizeof(cb));
    if (pem == NULL || *pem == '\0')
        err = "mod_ssl gave no SSL_SERVER_CERT";
    else
        kd_chanbind_from_pem(r->pool, pem, strlen(pem), &cb, &err);
    if ((out = calloc(1, sizeof(*out) + cb.len)) == NULL)
        return NULL;
    if (cb.data == NULL) {
        kdeleg_log_request(r, APLOG_ERR, 0, KDLOGNO(00311), "-",
                           "channel binding: no binding for this TLS connection (%s); "
                           "no bindings are passed", err ? err : "unknown");
        return out;
    }
    memcpy(out->data, cb.data, cb.len);
    out->cb.data = out->data;
    out->cb.len = cb.len;
    kdeleg_log_request(r, APLOG_DEBUG, 0, KDLOGNO(00314), "-",
                       "channel binding: hashed mod_ssl's certificate for this "
                       "connection (%s)", cb.hash_name);
    return out;
}

/* mod_ssl's certificate for r's connection, hashed on its first login and
 * kept for the connection's life; NULL on plain http or when there is none. */
static const kd_chanbind *connection_binding(request_rec *r)
{
    conn_rec *tls = r->connection->master ? r->connection->master : r->connection;
    conn_slot *slot = ap_get_module_config(tls->conn_config, &kdeleg_module);
    conn_binding *mine, *theirs;

    if (!ap_ssl_conn_is_ssl(tls))
        return NULL;
    if (slot == NULL) {
        /* A connection our pre_connection hook did not see: a slot for
         * this request only, freed with it. */
        slot = apr_pcalloc(r->pool, sizeof(*slot));
        apr_pool_cleanup_register(r->pool, slot, free_binding, apr_pool_cleanup_null);
    }
    if ((theirs = apr_atomic_casptr(&slot->binding, NULL, NULL)) != NULL)
        return theirs->cb.data ? &theirs->cb : NULL;
    if ((mine = hash_certificate(r, tls)) == NULL)
        return NULL;
    /* Two streams may race here: the first to publish wins, the other
     * frees its own copy of the same hash. */
    if ((theirs = apr_atomic_casptr(&slot->binding, mine, NULL)) != NULL) {
        free(mine);
        mine = theirs;
    }
    return mine->cb.data ? &mine->cb : NULL;
}

/* require on plain http (no TLS here, no KdelegChannelBindingCert) fails
 * every Kerberos login: say so once per child, at WARN, besides the
 * per-request channel-binding-missing. */
static void warn_nothing_to_bind(request_rec *r)
{
    static volatile apr_uint32_t warned;

    if (apr_atomic_cas32(&warned, 1, 0) == 0)
        kdeleg_log_request(r, APLOG_WARNING, 0, KDLOGNO(00312), "-",
                           "KdelegChannelBinding require on a connection without TLS and "
                           "without KdelegChannelBindingCert: every Negotiate login here fails "
                           "with channel-binding-missing (set KdelegChannelBindingCert to the "
                           "certificate of the balancer that terminates TLS)");
}

void kdeleg_channel_binding_params(request_rec *r, const kdeleg_dir_conf *conf,
                                   kd_accept_params *params)
{
    int mode = kdeleg_conf_channel_binding(conf);
    const kd_chanbind *cb;

    params->cb_data = NULL;
    params->cb_len = 0;
    params->cb_required = mode == KD_CHANBIND_REQUIRE;
    if (mode == KD_CHANBIND_OFF)
        return;
    /* Behind a balancer that terminates TLS, the client bound its token to
     * the balancer's certificate, whatever httpd's own connection is. */
    if ((cb = kdeleg_srv_conf_of(r->server)->chanbind_cert) == NULL)
        cb = connection_binding(r);
    if (cb == NULL) {
        if (params->cb_required)
            warn_nothing_to_bind(r);
        return;
    }
    params->cb_data = cb->data;
    params->cb_len = cb->len;
}

void kdeleg_channel_binding_note(request_rec *r, const kdeleg_dir_conf *conf,
                                 const kd_accept_out *out)
{
    if (kdeleg_conf_channel_binding(conf) == KD_CHANBIND_OFF)
        return;
    kdeleg_note(out->channel_bound ? KD_STAT_CHANNEL_BOUND : KD_STAT_CHANNEL_UNBOUND);
    kdeleg_log_request(r, APLOG_DEBUG, 0, KDLOGNO(00313), out->spn,
                       "channel binding: %s's token is %s", out->client_principal,
                       out->channel_bound ? "bound to this TLS channel"
                                          : "not channel-bound (accepted: "
                                            "KdelegChannelBinding allow)");
}
