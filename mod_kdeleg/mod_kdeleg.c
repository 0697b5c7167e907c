/* mod_kdeleg: module record, start-up and child initialisation. */
#include "mod_kdeleg.h"

#include <stdio.h>
#include <string.h>

#include <ap_mpm.h>
#include <http_core.h>
#include <http_log.h>
#include <openssl/crypto.h>
#include <krb5.h>
#include <apr_strings.h>

#include "kd_log.h"


#define KD_VERSION_STRING "mod_kdeleg/" KD_PACKAGE_VERSION

/* Core log lines arrive here; the callback is installed once in
 * post_config, before any threads exist. */
static void core_log(void *baton, kd_log_level level, const char *fmt, va_list ap)
{
    server_rec *s = baton;
    char line[1024];

    vsnprintf(line, sizeof(line), fmt, ap);
    ap_log_error(APLOG_MARK, (int)level, 0, s, KDLOGNO(00101) "%s", line);
}

/* The krb5 default keytab name, used when KdelegKeytab is not set. */
static void remember_default_keytab(apr_pool_t *p, kdeleg_mod_conf *mc)
{
    krb5_context ctx;
    char name[1024];

    if (krb5_init_context(&ctx) != 0)
        return;
    if (krb5_kt_default_name(ctx, name, sizeof(name)) == 0) {
        const char *path = name;
        if (strncmp(path, "FILE:", 5) == 0)
            path += 5;
        mc->default_keytab = apr_pstrdup(p, path);
    }
    krb5_free_context(ctx);
}

static int post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    int rv;

    kd_log_set_callback(core_log, s);
    remember_default_keytab(pconf, kdeleg_srv_conf_of(s)->mc);
    /* Checked on both passes so `apachectl start` prints the error itself. */
    if ((rv = kdeleg_check_keytabs(ptemp, s)) != OK
        || (rv = kdeleg_session_check_config(ptemp, s)) != OK
        || (rv = kdeleg_password_check_config(ptemp, s)) != OK
        || (rv = kdeleg_prepare_ccache_dir(pconf, s)) != OK)
        return rv;
    /* Shared memory and mutexes only for the server that will run. */
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG
        && ((rv = kdeleg_cache_post_config(pconf, ptemp, s)) != OK
            || (rv = kdeleg_replay_post_config(pconf, ptemp, s)) != OK
            || (rv = kdeleg_revoke_post_config(pconf, s)) != OK
            || (rv = kdeleg_status_post_config(pconf, s)) != OK))
        return rv;
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG)
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, KDLOGNO(00102)
                     "%s started (krb5 %s, %s, MPM %s)", KD_VERSION_STRING, KD_KRB5_VERSION,
                     OpenSSL_version(OPENSSL_VERSION), ap_show_mpm());
    return OK;
}

static int pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    return kdeleg_cache_pre_config(pconf) == APR_SUCCESS
                   && kdeleg_replay_pre_config(pconf) == APR_SUCCESS
                   && kdeleg_revoke_pre_config(pconf) == APR_SUCCESS
               ? OK : HTTP_INTERNAL_SERVER_ERROR;
}

static void child_init(apr_pool_t *pchild, server_rec *s)
{
    kdeleg_auth_child_init(pchild);
    kdeleg_password_child_init(pchild);
    kdeleg_cache_child_init(pchild, s);
    kdeleg_replay_child_init(pchild, s);
    kdeleg_revoke_child_init(pchild, s);
    kdeleg_health_child_init(pchild);
    kd_s4u_child_init(pchild);
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_pre_config(pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
    kdeleg_session_register_hooks(p);
    kdeleg_auth_register_hooks(p);
    kdeleg_delegate_register_hooks(p);
    kdeleg_groups_register_hooks(p);
    kdeleg_password_register_hooks(p);
    kdeleg_indicator_register_hooks(p);
    kdeleg_status_register_hooks(p);
    kdeleg_health_register_hooks(p);
    kdeleg_chanbind_register_hooks(p);
}

AP_DECLARE_MODULE(kdeleg) = {
    STANDARD20_MODULE_STUFF,
    kdeleg_dir_conf_create,
    kdeleg_dir_conf_merge,
    kdeleg_srv_conf_create,
    kdeleg_srv_conf_merge,
    kdeleg_directives,
    register_hooks,
#if defined(AP_MODULE_FLAG_ALWAYS_MERGE)
    AP_MODULE_FLAG_NONE
#endif
};
