/* mod_kdeleg_chanbind: TLS channel binding (KdelegChannelBinding,
 * KdelegChannelBindingCert). Finds the certificate the client saw (the
 * configured one behind a balancer, else mod_ssl's), has the core hash it
 * once per connection, and counts bound and unbound logins so an
 * administrator can measure before requiring bindings. */
#include "mod_kdeleg.h"

#include <string.h>

#include <http_log.h>
#include <http_ssl.h>
#include <apr_atomic.h>
#include <apr_file_io.h>
#include <apr_strings.h>

APLOG_USE_MODULE(kdeleg);

/* The largest certificate file read: a chain of a few certificates. */
#define KD_CHANBIND_FILE_MAX (256 * 1024)

/* Per-connection cache key (pool userdata). */
#define KD_CHANBIND_CONN "kdeleg-chanbind"

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

/* mod_ssl's certificate for c, hashed; NULL on plain http. Cached on c's
 * pool: one hash per connection, not per request. Under HTTP/2 the TLS
 * state is on the master connection, so that is where it is looked up;
 * the cache stays on c, the connection this thread owns (the master's
 * pool is not ours to allocate from while its streams run in parallel). */
static const kd_chanbind *connection_binding(request_rec *r)
{
    conn_rec *c = r->connection, *tls = c->master ? c->master : c;
    void *cached = NULL;
    kd_chanbind *cb;
    const char *err = NULL;

    apr_pool_userdata_get(&cached, KD_CHANBIND_CONN, c->pool);
    if (cached != NULL)
        return ((kd_chanbind *)cached)->data ? cached : NULL;
    cb = apr_pcalloc(c->pool, sizeof(*cb));
    if (ap_ssl_conn_is_ssl(tls)) {
        const char *pem = ap_ssl_var_lookup(r->pool, r->server, tls, r, "SSL_SERVER_CERT");

        if (pem == NULL || *pem == '\0')
            err = "mod_ssl gave no SSL_SERVER_CERT";
        else
            kd_chanbind_from_pem(c->pool, pem, strlen(pem), cb, &err);
        if (cb->data == NULL)
            kdeleg_log_request(r, APLOG_ERR, 0, KDLOGNO(00311), "-",
                               "channel binding: no binding for this TLS connection (%s); "
                               "no bindings are passed", err ? err : "unknown");
        else
            kdeleg_log_request(r, APLOG_DEBUG, 0, KDLOGNO(00314), "-",
                               "channel binding: hashed mod_ssl's certificate for this "
                               "connection (%s)", cb->hash_name);
    }
    apr_pool_userdata_setn(cb, KD_CHANBIND_CONN, NULL, c->pool);
    return cb->data ? cb : NULL;
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
