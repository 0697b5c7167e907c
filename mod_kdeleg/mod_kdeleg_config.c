/* mod_kdeleg_config: directives, merging, and start-up checks. */
#include "mod_kdeleg.h"

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <http_log.h>
#include <unixd.h>
#include <signal.h>
#include <stdlib.h>
#include <http_core.h>
#include <http_main.h>
#include <util_cfgtree.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_md5.h>
#include <apr_strings.h>

APLOG_USE_MODULE(kdeleg);

/* One merge rule for every field of both merges: the inner scope's value
 * when it has one, else the outer one's. */
#define KD_MERGE(field, unset) \
    conf->field = (add->field != (unset)) ? add->field : base->field

/* The module-wide settings, made with the main server's config and
 * forgotten with the configuration pool, so a restart starts afresh. */
static kdeleg_mod_conf *mod_conf;

static apr_status_t forget_mod_conf(void *data)
{
    mod_conf = NULL;
    return APR_SUCCESS;
}

static kdeleg_mod_conf *mod_conf_make(apr_pool_t *p)
{
    if (mod_conf == NULL) {
        mod_conf = apr_pcalloc(p, sizeof(*mod_conf));
        mod_conf->default_keytab = "/etc/krb5.keytab";
        mod_conf->ccache_dirs = apr_array_make(p, 4, sizeof(const char *));
        apr_pool_cleanup_register(p, NULL, forget_mod_conf, apr_pool_cleanup_null);
    }
    return mod_conf;
}

void *kdeleg_srv_conf_create(apr_pool_t *p, server_rec *s)
{
    kdeleg_srv_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->mc = mod_conf_make(p);
    conf->fqdn_redirect = KD_UNSET;
    conf->session = KD_UNSET;
    conf->session_lifetime = KD_UNSET;
    conf->password_without_tls = KD_UNSET;
    conf->health_interval = KD_UNSET;
    return conf;
}

void *kdeleg_srv_conf_merge(apr_pool_t *p, void *basev, void *addv)
{
    const kdeleg_srv_conf *base = basev, *add = addv;
    kdeleg_srv_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->mc = base->mc;
    conf->netbios_domains = !add->netbios_domains ? base->netbios_domains
                            : !base->netbios_domains ? add->netbios_domains
                            : apr_table_overlay(p, add->netbios_domains, base->netbios_domains);
    KD_MERGE(virtual_names, NULL);
    KD_MERGE(node_name, NULL);
    KD_MERGE(fqdn_redirect, KD_UNSET);
    KD_MERGE(session, KD_UNSET);
    KD_MERGE(session_key_file, NULL);
    KD_MERGE(session_keys, NULL);
    /* the owner of the file in effect, whichever scope named it */
    conf->session_key_uid = add->session_key_file ? add->session_key_uid : base->session_key_uid;
    KD_MERGE(session_lifetime, KD_UNSET);
    KD_MERGE(cookie_domain, NULL);
    KD_MERGE(password_without_tls, KD_UNSET);
    KD_MERGE(health_interval, KD_UNSET);
    KD_MERGE(chanbind_cert, NULL);
    return conf;
}

const kdeleg_srv_conf *kdeleg_srv_conf_of(const server_rec *s)
{
    return ap_get_module_config(s->module_config, &kdeleg_module);
}

const kdeleg_dir_conf *kdeleg_server_dir_conf(const server_rec *s)
{
    return ap_get_module_config(s->lookup_defaults, &kdeleg_module);
}

void *kdeleg_dir_conf_create(apr_pool_t *p, char *dir)
{
    kdeleg_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->remote_user = KD_UNSET;
    conf->delegation_failure = KD_UNSET;
    conf->protocol_transition = KD_UNSET;
    conf->selftest = KD_UNSET;
    conf->allow_anonymous = KD_UNSET;
    conf->negotiate_once = KD_UNSET;
    conf->auth_optional = KD_UNSET;
    conf->channel_binding = KD_UNSET;
    conf->publish_groups = KD_UNSET;
    conf->password_cache = KD_UNSET;
    conf->password_failure_cache = KD_UNSET;
    return conf;
}

/* The inner scope's accounts are looked at first, the outer ones still apply. */
static apr_array_header_t *merge_accounts(apr_pool_t *p, apr_array_header_t *base,
                                          apr_array_header_t *add)
{
    if (add == NULL || base == NULL)
        return add ? add : base;
    return apr_array_append(p, add, base);
}

void *kdeleg_dir_conf_merge(apr_pool_t *p, void *basev, void *addv)
{
    const kdeleg_dir_conf *base = basev, *add = addv;
    kdeleg_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    KD_MERGE(keytab, NULL);
    KD_MERGE(spns, NULL);
    KD_MERGE(remote_user, KD_UNSET);
    KD_MERGE(delegate_to, NULL);
    KD_MERGE(ccache_dir, NULL);
    KD_MERGE(proxy_spn, NULL);
    KD_MERGE(delegation_failure, KD_UNSET);
    KD_MERGE(protocol_transition, KD_UNSET);
    KD_MERGE(user_realm, NULL);
    conf->service_accounts = merge_accounts(p, base->service_accounts, add->service_accounts);
    KD_MERGE(allow_anonymous, KD_UNSET);
    KD_MERGE(realms, NULL);
    KD_MERGE(trusted_auth_types, NULL);
    KD_MERGE(user_principal, NULL);
    KD_MERGE(session_scope, NULL);
    KD_MERGE(session_logout, NULL);
    KD_MERGE(negotiate_once, KD_UNSET);
    KD_MERGE(auth_optional, KD_UNSET);
    KD_MERGE(channel_binding, KD_UNSET);
    KD_MERGE(selftest, KD_UNSET);
    KD_MERGE(selftest_user, NULL);
    conf->group_map = (base->group_map && add->group_map)
                          ? kd_group_map_merge(p, base->group_map, add->group_map)
                          : (add->group_map ? add->group_map : base->group_map);
    KD_MERGE(publish_groups, KD_UNSET);
    KD_MERGE(password_cache, KD_UNSET);
    KD_MERGE(password_failure_cache, KD_UNSET);
    return conf;
}

const char *kdeleg_conf_keytab(const kdeleg_dir_conf *conf)
{
    return conf->keytab ? conf->keytab : mod_conf->default_keytab;
}

int kdeleg_conf_remote_user(const kdeleg_dir_conf *conf)
{
    return conf->remote_user != KD_UNSET ? conf->remote_user : KD_REMOTE_USER_FULL;
}

const char *kdeleg_conf_ccache_dir(const kdeleg_dir_conf *conf)
{
    return conf->ccache_dir ? conf->ccache_dir : mod_conf->default_ccache_dir;
}

const char *kdeleg_conf_proxy_spn(const kdeleg_dir_conf *conf)
{
    return conf->proxy_spn && *conf->proxy_spn ? conf->proxy_spn : NULL;
}

int kdeleg_conf_delegation_failure(const kdeleg_dir_conf *conf)
{
    return conf->delegation_failure != KD_UNSET ? conf->delegation_failure : KD_DELEGATION_DENY;
}

int kdeleg_conf_protocol_transition(const kdeleg_dir_conf *conf)
{
    return conf->protocol_transition == 1;
}

int kdeleg_conf_delegates(const kdeleg_dir_conf *conf)
{
    return (conf->delegate_to && conf->delegate_to->nelts > 0)
           || kdeleg_conf_proxy_spn(conf) != NULL;
}

const apr_array_header_t *kdeleg_conf_delegation_targets(apr_pool_t *p, const kdeleg_dir_conf *conf)
{
    apr_array_header_t *all = apr_array_make(p, 4, sizeof(const char *));

    if (conf->delegate_to)
        apr_array_cat(all, conf->delegate_to);
    if (kdeleg_conf_proxy_spn(conf))
        APR_ARRAY_PUSH(all, const char *) = conf->proxy_spn;
    return all;
}

static void push_host_spn(apr_array_header_t *spns, const char *host)
{
    kd_spn *spn;

    if (host == NULL || *host == '\0' || strpbrk(host, "*?") != NULL)
        return; /* wildcard aliases name no principal */
    spn = apr_array_push(spns);
    spn->service = "HTTP";
    spn->host = host;
    spn->realm = NULL;
}

const apr_array_header_t *kdeleg_conf_spns(request_rec *r, const kdeleg_dir_conf *conf)
{
    return kdeleg_conf_server_spns(r->pool, r->server, conf);
}

const apr_array_header_t *kdeleg_conf_server_spns(apr_pool_t *p, server_rec *s,
                                                  const kdeleg_dir_conf *conf)
{
    apr_array_header_t *spns;
    int i;

    if (conf->spns)
        return conf->spns;
    spns = apr_array_make(p, 4, sizeof(kd_spn));
    push_host_spn(spns, s->server_hostname);
    for (i = 0; s->names && i < s->names->nelts; i++)
        push_host_spn(spns, APR_ARRAY_IDX(s->names, i, const char *));
    return spns;
}

/* ------------------------------------------------------------ directives */

static const char *set_keytab(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;

    if (strncmp(arg, "FILE:", 5) == 0)
        arg += 5;
    if (*arg == '\0')
        return "KdelegKeytab: needs a file name";
    conf->keytab = ap_server_root_relative(cmd->pool, arg);
    if (conf->keytab == NULL)
        return apr_pstrcat(cmd->pool, "KdelegKeytab: invalid path '", arg, "'", NULL);
    return NULL;
}

static const char *add_service_name(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;
    kd_spn spn;
    const char *err = kd_spn_parse(cmd->pool, arg, &spn);

    if (err)
        return apr_pstrcat(cmd->pool, "KdelegServiceNames: ", err,
                           " (expected e.g. HTTP/www.example.com or HTTP/www.example.com@REALM)",
                           NULL);
    if (conf->spns == NULL)
        conf->spns = apr_array_make(cmd->pool, 4, sizeof(kd_spn));
    *(kd_spn *)apr_array_push(conf->spns) = spn;
    return NULL;
}

static const char *set_remote_user(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;

    if (strcasecmp(arg, "full") == 0)
        conf->remote_user = KD_REMOTE_USER_FULL;
    else if (strcasecmp(arg, "short") == 0)
        conf->remote_user = KD_REMOTE_USER_SHORT;
    else if (strcasecmp(arg, "local") == 0)
        conf->remote_user = KD_REMOTE_USER_LOCAL;
    else
        return apr_pstrcat(cmd->pool, "KdelegRemoteUser: '", arg,
                           "' is not one of full, short, local", NULL);
    return NULL;
}

/* A back-end principal as written by the administrator, checked now. */
static const char *target_principal(cmd_parms *cmd, const char *directive, const char *arg,
                                    const char **out)
{
    kd_spn spn;
    const char *err = kd_spn_parse(cmd->pool, arg, &spn);

    if (err)
        return apr_pstrcat(cmd->pool, directive, ": ", err,
                           " (expected e.g. HTTP/backend.example.com or "
                           "postgres/db.example.com@EXAMPLE.COM)", NULL);
    *out = kd_spn_unparse(cmd->pool, &spn);
    return NULL;
}

static const char *add_delegate_to(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;
    const char *principal, *err;

    if (conf->delegate_to == NULL)
        conf->delegate_to = apr_array_make(cmd->pool, 4, sizeof(const char *));
    if (strcasecmp(arg, "none") == 0) {
        apr_array_clear(conf->delegate_to); /* an inner scope switches delegation off */
        return NULL;
    }
    if ((err = target_principal(cmd, "KdelegDelegateTo", arg, &principal)) != NULL)
        return err;
    APR_ARRAY_PUSH(conf->delegate_to, const char *) = principal;
    return NULL;
}

static const char *set_allow_anonymous(cmd_parms *cmd, void *dconf, int on)
{
    ((kdeleg_dir_conf *)dconf)->allow_anonymous = on ? 1 : 0;
    return NULL;
}

/* "*" (alone) lifts an outer scope's list: every realm again. */
static const char *add_realm(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;
    const char *c;

    if (conf->realms == NULL)
        conf->realms = apr_array_make(cmd->pool, 2, sizeof(const char *));
    if (strcmp(arg, "*") == 0) {
        /* an explicit "every realm", so an inner scope overrides an outer list */
        apr_array_clear(conf->realms);
        APR_ARRAY_PUSH(conf->realms, const char *) = "*";
        return NULL;
    }
    for (c = arg; *c; c++)
        if (*c == '@' || *c == '/' || *c <= ' ' || *c == 0x7f)
            return apr_pstrcat(cmd->pool, "KdelegRealms: '", arg, "' is not a realm name "
                               "(e.g. EXAMPLE.COM, as the KDC spells it), or *", NULL);
    APR_ARRAY_PUSH(conf->realms, const char *) = arg;
    return NULL;
}

static const char *add_trusted_auth_type(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;

    if (conf->trusted_auth_types == NULL)
        conf->trusted_auth_types = apr_array_make(cmd->pool, 2, sizeof(const char *));
    if (strcasecmp(arg, "none") == 0) {
        apr_array_clear(conf->trusted_auth_types); /* Basic and Form only */
        return NULL;
    }
    APR_ARRAY_PUSH(conf->trusted_auth_types, const char *) = arg;
    return NULL;
}

static const char *set_proxy_negotiate(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;

    if (strcasecmp(arg, "off") == 0) {
        conf->proxy_spn = "";
        return NULL;
    }
    return target_principal(cmd, "KdelegProxyNegotiate", arg, &conf->proxy_spn);
}

static const char *set_ccache_dir(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;

    conf->ccache_dir = ap_server_root_relative(cmd->pool, arg);
    if (conf->ccache_dir == NULL || *arg == '\0')
        return apr_pstrcat(cmd->pool, "KdelegCcacheDir: invalid path '", arg, "'", NULL);
    APR_ARRAY_PUSH(mod_conf->ccache_dirs, const char *) = conf->ccache_dir;
    return NULL;
}

static const char *set_delegation_failure(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;

    if (strcasecmp(arg, "deny") == 0)
        conf->delegation_failure = KD_DELEGATION_DENY;
    else if (strcasecmp(arg, "continue") == 0)
        conf->delegation_failure = KD_DELEGATION_CONTINUE;
    else
        return apr_pstrcat(cmd->pool, "KdelegDelegationFailure: '", arg,
                           "' is not one of deny, continue", NULL);
    return NULL;
}

static const char *set_protocol_transition(cmd_parms *cmd, void *dconf, int on)
{
    ((kdeleg_dir_conf *)dconf)->protocol_transition = on ? 1 : 0;
    return NULL;
}

static const char *set_user_realm(cmd_parms *cmd, void *dconf, const char *arg)
{
    kdeleg_dir_conf *conf = dconf;
    const char *c;

    for (c = arg; *c; c++) {
        if ((unsigned char)*c <= 0x20 || *c == '@' || *c == '/' || *c == 0x7f)
            return apr_pstrcat(cmd->pool, "KdelegUserRealm: '", arg,
                               "' is not a realm name (e.g. EXAMPLE.COM)", NULL);
    }
    if (*arg == '\0')
        return "KdelegUserRealm: needs a realm name";
    conf->user_realm = arg;
    return NULL;
}

const char *kdeleg_parse_seconds(cmd_parms *cmd, const char *arg, int min, int max, int *out)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (*arg == '\0' || *end != '\0' || v < min || v > max)
        return apr_psprintf(cmd->pool, "%s: seconds between %d and %d", cmd->cmd->name, min,
                            max);
    *out = (int)v;
    return NULL;
}

const char *kdeleg_conf_service_account(const kdeleg_dir_conf *conf, const char *spn)
{
    if (conf->service_accounts == NULL)
        return NULL;
    return kd_service_account_for((const kd_service_account *)conf->service_accounts->elts,
                                  conf->service_accounts->nelts, spn);
}

static int is_principal_text(const char *s)
{
    const char *c;

    for (c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return 0;
    return *s != '\0' && *s != '@';
}

/* KdelegServiceAccount [SPN] PRINCIPAL */
static const char *add_service_account(cmd_parms *cmd, void *dconf, const char *a1,
                                       const char *a2)
{
    kdeleg_dir_conf *conf = dconf;
    kd_service_account *sa;
    const char *spn = NULL, *err;

    if (a2 && (err = target_principal(cmd, "KdelegServiceAccount", a1, &spn)) != NULL)
        return err;
    if (!is_principal_text(a2 ? a2 : a1))
        return apr_pstrcat(cmd->pool, "KdelegServiceAccount: '", a2 ? a2 : a1,
                           "' is not a principal (e.g. websvc@EXAMPLE.COM or "
                           "WEB1$@EXAMPLE.COM)", NULL);
    if (conf->service_accounts == NULL)
        conf->service_accounts = apr_array_make(cmd->pool, 2, sizeof(kd_service_account));
    sa = apr_array_push(conf->service_accounts);
    sa->spn = spn;
    sa->principal = a2 ? a2 : a1;
    return NULL;
}

/* KdelegNetbiosDomain NETBIOS REALM */
static const char *add_netbios_domain(cmd_parms *cmd, void *dconf, const char *netbios,
                                      const char *realm)
{
    kdeleg_srv_conf *conf = ap_get_module_config(cmd->server->module_config, &kdeleg_module);
    const char *c;

    for (c = netbios; *c; c++)
        if ((unsigned char)*c <= 0x20 || strchr("\\/:*?\"<>|@.", *c))
            return apr_pstrcat(cmd->pool, "KdelegNetbiosDomain: '", netbios,
                               "' is not a NetBIOS domain name (e.g. EXAMPLE)", NULL);
    if (*netbios == '\0' || strlen(netbios) > 15)
        return "KdelegNetbiosDomain: a NetBIOS domain name has 1 to 15 characters";
    if (!is_principal_text(realm) || strchr(realm, '@') || strchr(realm, '/'))
        return apr_pstrcat(cmd->pool, "KdelegNetbiosDomain: '", realm,
                           "' is not a realm name (e.g. EXAMPLE.COM)", NULL);
    if (conf->netbios_domains == NULL)
        conf->netbios_domains = apr_table_make(cmd->pool, 2);
    apr_table_set(conf->netbios_domains, netbios, realm);
    return NULL;
}

static const char *set_user_principal(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *err = NULL;
    ap_expr_info_t *expr = ap_expr_parse_cmd(cmd, arg, AP_EXPR_FLAG_STRING_RESULT, &err, NULL);

    if (err != NULL)
        return apr_pstrcat(cmd->pool, "KdelegUserPrincipal: cannot parse '", arg, "': ", err,
                           NULL);
    ((kdeleg_dir_conf *)dconf)->user_principal = expr;
    return NULL;
}

static const char *set_negotiate_once(cmd_parms *cmd, void *dconf, int on)
{
    (void)cmd;
    ((kdeleg_dir_conf *)dconf)->negotiate_once = on ? 1 : 0;
    return NULL;
}

static const char *set_auth_optional(cmd_parms *cmd, void *dconf, int on)
{
    (void)cmd;
    ((kdeleg_dir_conf *)dconf)->auth_optional = on ? 1 : 0;
    return NULL;
}

static const char *set_publish_groups(cmd_parms *cmd, void *dconf, int on)
{
    (void)cmd;
    ((kdeleg_dir_conf *)dconf)->publish_groups = on ? 1 : 0;
    return NULL;
}

static const char *set_selftest(cmd_parms *cmd, void *dconf, int on)
{
    ((kdeleg_dir_conf *)dconf)->selftest = on;
    return NULL;
}

static const char *set_selftest_user(cmd_parms *cmd, void *dconf, const char *arg)
{
    const char *c;

    for (c = arg; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return "KdelegSelfTestUser: a user principal, e.g. selftest@EXAMPLE.COM";
    if (*arg == '\0')
        return "KdelegSelfTestUser: a user principal, e.g. selftest@EXAMPLE.COM";
    ((kdeleg_dir_conf *)dconf)->selftest_user = arg;
    return NULL;
}

const command_rec kdeleg_directives[] = {
    AP_INIT_TAKE1("KdelegKeytab", set_keytab, NULL, RSRC_CONF | ACCESS_CONF,
                  "keytab holding this host's acceptor keys"),
    AP_INIT_ITERATE("KdelegServiceNames", add_service_name, NULL, RSRC_CONF | ACCESS_CONF,
                    "service principals this host answers for, e.g. HTTP/www.example.com"),
    /* Allowed in .htaccess (AuthConfig): it only shapes this directory's REMOTE_USER. */
    AP_INIT_TAKE1("KdelegRemoteUser", set_remote_user, NULL,
                  RSRC_CONF | ACCESS_CONF | OR_AUTHCFG,
                  "REMOTE_USER as the full principal (full), without realm (short) or "
                  "mapped by auth_to_local (local)"),
    AP_INIT_ITERATE("KdelegDelegateTo", add_delegate_to, NULL, RSRC_CONF | ACCESS_CONF,
                    "back-end principals to obtain tickets for by constrained delegation "
                    "(S4U2Proxy), or none"),
    AP_INIT_TAKE1("KdelegCcacheDir", set_ccache_dir, NULL, RSRC_CONF | ACCESS_CONF,
                  "directory for per-request credential caches exported as KRB5CCNAME"),
    AP_INIT_TAKE1("KdelegProxyNegotiate", set_proxy_negotiate, NULL, RSRC_CONF | ACCESS_CONF,
                  "back-end principal for a fresh Authorization: Negotiate on proxied "
                  "requests, or off"),
    AP_INIT_TAKE1("KdelegDelegationFailure", set_delegation_failure, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "deny (default: 500, or 502 when proxied) or continue without credentials"),
    AP_INIT_FLAG("KdelegProtocolTransition", set_protocol_transition, NULL,
                 RSRC_CONF | ACCESS_CONF,
                 "On: users authenticated by another module get an evidence ticket by "
                 "S4U2Self before delegation"),
    AP_INIT_TAKE1("KdelegUserRealm", set_user_realm, NULL, RSRC_CONF | ACCESS_CONF,
                  "realm added to user names without one, for S4U2Self"),
    AP_INIT_TAKE12("KdelegServiceAccount", add_service_account, NULL, RSRC_CONF | ACCESS_CONF,
                   "[SPN] PRINCIPAL: the account the front end's own TGT is taken as (for "
                   "tickets to SPN), e.g. websvc@EXAMPLE.COM"),
    AP_INIT_TAKE2("KdelegNetbiosDomain", add_netbios_domain, NULL, RSRC_CONF,
                  "NETBIOS REALM: protocol transition maps NETBIOS\\user to user@REALM"),
    AP_INIT_TAKE12("KdelegReplayCache", kdeleg_replay_set, NULL, RSRC_CONF,
                   "size of the replay cache shared by all children (default 16M), or off "
                   "for MIT's file replay cache; and memcache:HOST:PORT or redis:HOST:PORT to "
                   "share the check with every node of the farm"),
    AP_INIT_TAKE1("KdelegCacheKeyFile", kdeleg_cache_key_file_set, NULL, RSRC_CONF,
                  "the farm's keys (one base64 32-byte key per line, the same file on every "
                  "node), from which the shared store's keys are derived"),
    AP_INIT_TAKE1("KdelegCache", kdeleg_cache_set, NULL, RSRC_CONF,
                  "where delegated tickets are kept: a socache provider shared by the node's "
                  "children (default shmcb), memcache:HOST:PORT or redis:HOST:PORT shared by "
                  "the farm, or none"),
    AP_INIT_TAKE1("KdelegRevocationCheckInterval", kdeleg_revocation_interval_set, NULL,
                  RSRC_CONF,
                  "seconds a child trusts what it last read of a principal's logout in the "
                  "farm's store (default 10; 0 = every request)"),
    AP_INIT_TAKE1("KdelegCacheMaxLifetime", kdeleg_cache_max_lifetime_set, NULL, RSRC_CONF,
                  "seconds a cached delegated ticket is used at most, from its start "
                  "(default 3600; 0 = the ticket's own lifetime)"),
    AP_INIT_FLAG("KdelegAllowAnonymous", set_allow_anonymous, NULL, RSRC_CONF | ACCESS_CONF,
                 "On: accept anonymous tickets (WELLKNOWN/ANONYMOUS); refused by default"),
    AP_INIT_ITERATE("KdelegRealms", add_realm, NULL, RSRC_CONF | ACCESS_CONF,
                    "client realms accepted here (default: every realm the KDC trusts); "
                    "* for every realm"),
    AP_INIT_ITERATE("KdelegTrustedAuthTypes", add_trusted_auth_type, NULL,
                    RSRC_CONF | ACCESS_CONF,
                    "AuthTypes besides Basic and Form whose REMOTE_USER protocol transition "
                    "may act on (none: Basic and Form only)"),
    AP_INIT_ITERATE("KdelegVirtualName", kdeleg_set_virtual_name, NULL, RSRC_CONF,
                    "host names several nodes serve behind a load balancer"),
    AP_INIT_TAKE1("KdelegNodeName", kdeleg_set_node_name, NULL, RSRC_CONF,
                  "this node's own name: FQDN or scheme://FQDN[:port]"),
    AP_INIT_FLAG("KdelegFQDNRedirect", kdeleg_set_fqdn_redirect, NULL, RSRC_CONF,
                 "On: send clients that cannot use Kerberos on a virtual name to the node "
                 "name and back"),
    AP_INIT_FLAG("KdelegSession", kdeleg_set_session, NULL, RSRC_CONF,
                 "On: issue an encrypted session cookie after Kerberos authentication"),
    AP_INIT_TAKE1("KdelegSessionKeyFile", kdeleg_set_session_key_file, NULL, RSRC_CONF,
                  "file of base64 32-byte keys shared by all nodes; the first seals"),
    AP_INIT_TAKE1("KdelegSessionLifetime", kdeleg_set_session_lifetime, NULL, RSRC_CONF,
                  "session cookie lifetime in seconds (never beyond the user's ticket)"),
    AP_INIT_TAKE1("KdelegCookieDomain", kdeleg_set_cookie_domain, NULL, RSRC_CONF,
                  "opt-in cookie domain for session cookies (default: host-only)"),
    AP_INIT_TAKE1("KdelegSessionScope", kdeleg_set_session_scope, NULL, RSRC_CONF | ACCESS_CONF,
                  "name of the session scope several locations share ([A-Za-z0-9_-], or "
                  "'default')"),
    AP_INIT_TAKE1("KdelegSessionLogout", kdeleg_set_session_logout, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "URL path whose GET ends the session: cookie cleared, session revoked on "
                  "this node ('none' to switch off)"),
    AP_INIT_TAKE1("KdelegUserPrincipal", set_user_principal, NULL, RSRC_CONF | ACCESS_CONF,
                  "an expression (ap_expr string) giving the principal protocol transition "
                  "acts as, e.g. %{SSL_CLIENT_SAN_Email_0}; default the authenticated user"),
    /* Harmless in .htaccess: it only withholds a challenge. */
    AP_INIT_FLAG("KdelegNegotiateOnce", set_negotiate_once, NULL,
                 RSRC_CONF | ACCESS_CONF | OR_AUTHCFG,
                 "On: after a refused token, answer 401 without a new Negotiate challenge"),
    AP_INIT_FLAG("KdelegAuthOptional", set_auth_optional, NULL, RSRC_CONF | ACCESS_CONF,
                 "On: use a token or session when the client sends one, else go on "
                 "anonymously; never challenge (for Require all granted)"),
    AP_INIT_FLAG("KdelegSelfTest", set_selftest, NULL, RSRC_CONF | ACCESS_CONF,
                 "On: the status page runs the self-test for ?selftest=1 (protect the "
                 "location with Require)"),
    AP_INIT_TAKE1("KdelegSelfTestUser", set_selftest_user, NULL, RSRC_CONF | ACCESS_CONF,
                  "user principal the self-test impersonates (S4U2Self, S4U2Proxy)"),
    AP_INIT_TAKE2("KdelegGroupMap", kdeleg_add_group_map, NULL, RSRC_CONF | ACCESS_CONF,
                  "ALIAS SID: a readable name for a group SID, for Require kdeleg-group"),
    AP_INIT_FLAG("KdelegPublishGroups", set_publish_groups, NULL, RSRC_CONF | ACCESS_CONF,
                 "On: export the user's group SIDs as KDELEG_GROUP_SIDS (space-separated)"),
    AP_INIT_FLAG("KdelegPasswordWithoutTLS", kdeleg_set_password_without_tls, NULL, RSRC_CONF,
                 "On: AuthBasicProvider/AuthFormProvider kdeleg also over plain http (TLS "
                 "ends in front of httpd)"),
    AP_INIT_TAKE1("KdelegPasswordCache", kdeleg_set_password_cache, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "seconds a password the KDC accepted is trusted without asking it again "
                  "(default 60, 0 = off)"),
    AP_INIT_TAKE1("KdelegPasswordFailureCache", kdeleg_set_password_failure_cache, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "seconds a refused (user, password) is refused without asking the KDC "
                  "(default 30, 0 = off)"),
    AP_INIT_TAKE1("KdelegChannelBinding", kdeleg_set_channel_binding, NULL,
                  RSRC_CONF | ACCESS_CONF,
                  "TLS channel binding (RFC 5929 tls-server-end-point): off (default), allow "
                  "(wrong bindings refused, none accepted) or require"),
    AP_INIT_TAKE1("KdelegChannelBindingCert", kdeleg_set_channel_binding_cert, NULL, RSRC_CONF,
                  "PEM file of the certificate clients see, when a balancer in front "
                  "terminates TLS"),
    AP_INIT_TAKE1("KdelegHealthInterval", kdeleg_set_health_interval, NULL, RSRC_CONF,
                  "seconds between the health check's KDC probes in each child process "
                  "(default 10); the last answer serves in between"),
    {NULL},
};

/* ------------------------------------------------------------ start-up checks */

/* Start-up checks read the configuration tree: which keytab is in effect
 * where AuthType Negotiate is used is a question about scopes, and the
 * tree still knows the file and line an administrator must fix. */

static int is_directive(const ap_directive_t *node, const char *name)
{
    return strcasecmp(node->directive, name) == 0;
}

/* The first argument of a node as httpd's own parser reads it: quotes
 * removed, backslash escapes resolved (the tree keeps the raw line). */
static const char *first_arg(apr_pool_t *p, const ap_directive_t *node)
{
    const char *args = node->args ? node->args : "";

    return ap_getword_conf(p, &args);
}

static int is_negotiate(apr_pool_t *p, const ap_directive_t *node)
{
    return is_directive(node, "AuthType")
        && strncasecmp(first_arg(p, node), KD_AUTH_TYPE, sizeof(KD_AUTH_TYPE) - 1) == 0;
}

/* Does this list of nodes, or any section inside it, use AuthType
 * Negotiate? With skip_vhosts, only the main server's own scopes count. */
static int scope_authenticates(apr_pool_t *p, const ap_directive_t *node, int skip_vhosts)
{
    for (; node; node = node->next) {
        if (is_negotiate(p, node))
            return 1;
        if (skip_vhosts && is_directive(node, "<VirtualHost"))
            continue;
        if (scope_authenticates(p, node->first_child, skip_vhosts))
            return 1;
    }
    return 0;
}

/* The KdelegKeytab that applies where node stands: the last one in its own
 * section, else in each enclosing section, else at the top level. */
static const ap_directive_t *keytab_in_scope(const ap_directive_t *node)
{
    for (; node; node = node->parent) {
        const ap_directive_t *n, *found = NULL;
        for (n = node->parent ? node->parent->first_child : ap_conftree; n; n = n->next) {
            if (is_directive(n, "KdelegKeytab"))
                found = n;
        }
        if (found)
            return found;
    }
    return NULL;
}

/* With no vhosts, the main server itself serves the requests. */
static int every_vhost_has_keytab(void)
{
    const ap_directive_t *n, *c;
    int vhosts = 0;

    for (n = ap_conftree; n; n = n->next) {
        int has = 0;
        if (!is_directive(n, "<VirtualHost"))
            continue;
        vhosts++;
        for (c = n->first_child; c; c = c->next)
            has |= is_directive(c, "KdelegKeytab");
        if (!has)
            return 0;
    }
    return vhosts > 0;
}

/* Could the user httpd's children run as read this file? */
static int readable_by_run_user(const struct stat *st)
{
    uid_t uid = ap_unixd_config.user_id;
    gid_t groups[64];
    int n = 64;

    if (geteuid() != 0 || uid == 0)
        return 1; /* children keep our identity: fopen() below tells */
    if (st->st_uid == uid)
        return (st->st_mode & S_IRUSR) != 0;
    if (ap_unixd_config.user_name
        && getgrouplist(ap_unixd_config.user_name, ap_unixd_config.group_id, groups, &n) >= 0) {
        for (int i = 0; i < n; i++) {
            if (groups[i] == st->st_gid)
                return (st->st_mode & S_IRGRP) != 0;
        }
    }
    else if (st->st_gid == ap_unixd_config.group_id)
        return (st->st_mode & S_IRGRP) != 0;
    return (st->st_mode & S_IROTH) != 0;
}

/* NULL if the keytab is usable, else why not. */
static const char *keytab_problem(apr_pool_t *p, const char *path)
{
    struct stat st;
    unsigned char magic[2];
    FILE *f;
    size_t got;

    if (stat(path, &st) != 0)
        return apr_psprintf(p, "cannot stat: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return "not a regular file";
    if (!readable_by_run_user(&st))
        return apr_psprintf(p, "not readable by user %s (mode %04o, owner uid %ld gid %ld)",
                            ap_unixd_config.user_name ? ap_unixd_config.user_name : "?",
                            (unsigned)(st.st_mode & 07777), (long)st.st_uid, (long)st.st_gid);
    if ((f = fopen(path, "rb")) == NULL)
        return apr_psprintf(p, "cannot open: %s", strerror(errno));
    got = fread(magic, 1, 2, f);
    fclose(f);
    if (got != 2 || magic[0] != 5 || (magic[1] != 1 && magic[1] != 2))
        return "not a keytab (bad file format version)";
    return NULL;
}

typedef struct {
    apr_pool_t *p;
    server_rec *s;
    apr_hash_t *checked; /* path -> "" : one report per file */
    int failed;
} keytab_check;

/* Check one keytab; `origin` says which configuration line made it apply. */
static void check_keytab(keytab_check *kc, const char *path, const ap_directive_t *origin,
                         const char *how)
{
    const char *why;

    if (path == NULL || apr_hash_get(kc->checked, path, APR_HASH_KEY_STRING))
        return;
    apr_hash_set(kc->checked, path, APR_HASH_KEY_STRING, "");
    if ((why = keytab_problem(kc->p, path)) == NULL)
        return;
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, kc->s, KDLOGNO(00201)
                 "%s %s (%s:%d): %s; cause keytab-unusable: fix the path or permissions "
                 "(the keytab must be readable by the httpd user)",
                 how, path, origin->filename, origin->line_num, why);
    kc->failed = 1;
}

static const char *directive_path(apr_pool_t *p, const ap_directive_t *node)
{
    const char *arg = first_arg(p, node);

    if (strncmp(arg, "FILE:", 5) == 0)
        arg += 5;
    return ap_server_root_relative(p, arg);
}

static void walk(keytab_check *kc, const ap_directive_t *node, const ap_directive_t *scope)
{
    for (; node; node = node->next) {
        if (is_directive(node, "KdelegKeytab")) {
            /* A vhost also inherits the main server's <Location>s. */
            int vhost_level = node->parent && is_directive(node->parent, "<VirtualHost");
            if (scope_authenticates(kc->p, scope, 0)
                || (vhost_level && scope_authenticates(kc->p, ap_conftree, 1)))
                check_keytab(kc, directive_path(kc->p, node), node, "KdelegKeytab");
        }
        else if (is_negotiate(kc->p, node) && keytab_in_scope(node) == NULL) {
            int in_vhost = 0;
            const ap_directive_t *up;
            for (up = node->parent; up; up = up->parent)
                in_vhost |= is_directive(up, "<VirtualHost");
            if (in_vhost || !every_vhost_has_keytab())
                check_keytab(kc, mod_conf->default_keytab, node,
                             "AuthType Negotiate without KdelegKeytab uses the default keytab");
        }
        if (node->first_child)
            walk(kc, node->first_child, node->first_child);
    }
}

/* Every keytab that a scope using AuthType Negotiate relies on must be a
 * keytab readable by the httpd user at start-up; the error names the file
 * and the configuration line. (.htaccess files cannot be seen here.) */
int kdeleg_check_keytabs(apr_pool_t *p, server_rec *s)
{
    keytab_check kc = {p, s, apr_hash_make(p), 0};

    walk(&kc, ap_conftree, ap_conftree);
    return kc.failed ? HTTP_INTERNAL_SERVER_ERROR : OK;
}

/* This instance's mark in its credential cache names (ccache_instance). */
static const char *instance_mark(apr_pool_t *p)
{
    unsigned char digest[APR_MD5_DIGESTSIZE];
    const char *who = apr_pstrcat(p, ap_server_root, "\n",
                                  ap_conftree && ap_conftree->filename ? ap_conftree->filename
                                                                       : "", NULL);

    apr_md5(digest, who, strlen(who));
    return apr_psprintf(p, "%02x%02x%02x%02x", digest[0], digest[1], digest[2], digest[3]);
}

const char *kdeleg_ccache_tag(apr_pool_t *p)
{
    const char *instance = mod_conf ? mod_conf->ccache_instance : NULL;

    return apr_psprintf(p, "%s_%ld", instance ? instance : "0", (long)getpid());
}

/* The longest Timeout of any virtual host: no request holds its cache
 * longer without I/O. */
static apr_interval_time_t longest_timeout(server_rec *s)
{
    apr_interval_time_t longest = 0;

    for (; s; s = s->next)
        longest = s->timeout > longest ? s->timeout : longest;
    return longest;
}

/* Is the process that wrote a cache still running? */
static int writer_alive(long pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* A child killed mid-request never removes its credential cache. Remove
 * only this instance's, older than the longest Timeout, whose writer is
 * gone: post_config also runs on a graceful restart, while children of the
 * old generation still use theirs. */
static void sweep_ccaches(apr_pool_t *p, server_rec *s, const char *dir)
{
    const char *prefix = apr_pstrcat(p, KD_CCACHE_PREFIX, mod_conf->ccache_instance, "_", NULL);
    apr_time_t oldest = apr_time_now() - longest_timeout(s);
    size_t plen = strlen(prefix);
    apr_finfo_t fi;
    apr_dir_t *d;
    int removed = 0;

    if (apr_dir_open(&d, dir, p) != APR_SUCCESS)
        return;
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_MTIME | APR_FINFO_TYPE, d) == APR_SUCCESS) {
        char *end;
        long pid;
        if (fi.filetype != APR_REG || strncmp(fi.name, prefix, plen) != 0)
            continue;
        pid = strtol(fi.name + plen, &end, 10);
        if (end == fi.name + plen || *end != '_' || fi.mtime > oldest || writer_alive(pid))
            continue;
        if (apr_file_remove(apr_pstrcat(p, dir, "/", fi.name, NULL), p) == APR_SUCCESS)
            removed++;
    }
    apr_dir_close(d);
    if (removed)
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, KDLOGNO(00204)
                     "removed %d credential cache(s) left in %s by children that died "
                     "mid-request", removed, dir);
}

static void sweep_all(apr_pool_t *p, server_rec *s)
{
    apr_hash_t *seen = apr_hash_make(p);
    int i;

    if (mod_conf->default_ccache_dir)
        apr_hash_set(seen, mod_conf->default_ccache_dir, APR_HASH_KEY_STRING, "");
    for (i = 0; i < mod_conf->ccache_dirs->nelts; i++)
        apr_hash_set(seen, APR_ARRAY_IDX(mod_conf->ccache_dirs, i, const char *),
                     APR_HASH_KEY_STRING, "");
    for (apr_hash_index_t *hi = apr_hash_first(p, seen); hi; hi = apr_hash_next(hi))
        sweep_ccaches(p, s, apr_hash_this_key(hi));
}

/* The default ccache directory: httpd's runtime dir + "/kdeleg", owned by
 * the user the children run as, 0700 (delegated tickets are the user's
 * credentials: nobody else may list or open them). */
int kdeleg_prepare_ccache_dir(apr_pool_t *p, server_rec *s)
{
    const char *dir = ap_runtime_dir_relative(p, "kdeleg");
    struct stat st;

    mod_conf->ccache_instance = instance_mark(s->process->pool);
    if (dir == NULL)
        return OK;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s, KDLOGNO(00202)
                     "cannot create the credential cache directory %s", dir);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (geteuid() == 0 && chown(dir, ap_unixd_config.user_id, ap_unixd_config.group_id) != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, errno, s, KDLOGNO(00203)
                     "cannot give %s to user %s", dir, ap_unixd_config.user_name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (stat(dir, &st) == 0 && (st.st_mode & 077) != 0)
        chmod(dir, 0700);
    mod_conf->default_ccache_dir = apr_pstrdup(s->process->pool, dir);
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG)
        sweep_all(p, s);
    return OK;
}
