/* mod_kdeleg_config: directives, merging, and start-up checks. */
#include "mod_kdeleg.h"

#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <http_log.h>
#include <unixd.h>
#include <apr_strings.h>

APLOG_USE_MODULE(kdeleg);

/* The krb5 default keytab (KRB5_KTNAME or /etc/krb5.keytab), looked up
 * once at start-up, used when KdelegKeytab is not set. */
static const char *default_keytab = "/etc/krb5.keytab";

void kd_set_default_keytab(const char *path)
{
    default_keytab = path;
}

void *kd_dir_conf_create(apr_pool_t *p, char *dir)
{
    kd_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->keytab = NULL;
    conf->spns = NULL;
    conf->remote_user = KD_UNSET;
    return conf;
}

void *kd_dir_conf_merge(apr_pool_t *p, void *basev, void *addv)
{
    const kd_dir_conf *base = basev, *add = addv;
    kd_dir_conf *conf = apr_pcalloc(p, sizeof(*conf));

    conf->keytab = add->keytab ? add->keytab : base->keytab;
    conf->spns = add->spns ? add->spns : base->spns;
    conf->remote_user = add->remote_user != KD_UNSET ? add->remote_user : base->remote_user;
    return conf;
}

const char *kd_conf_keytab(const kd_dir_conf *conf)
{
    return conf->keytab ? conf->keytab : default_keytab;
}

int kd_conf_remote_user(const kd_dir_conf *conf)
{
    return conf->remote_user != KD_UNSET ? conf->remote_user : KD_REMOTE_USER_FULL;
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

const apr_array_header_t *kd_conf_spns(request_rec *r, const kd_dir_conf *conf)
{
    apr_array_header_t *spns;
    int i;

    if (conf->spns)
        return conf->spns;
    spns = apr_array_make(r->pool, 4, sizeof(kd_spn));
    push_host_spn(spns, r->server->server_hostname);
    for (i = 0; r->server->names && i < r->server->names->nelts; i++)
        push_host_spn(spns, APR_ARRAY_IDX(r->server->names, i, const char *));
    return spns;
}

/* ------------------------------------------------------------ directives */

static const char *set_keytab(cmd_parms *cmd, void *dconf, const char *arg)
{
    kd_dir_conf *conf = dconf;

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
    kd_dir_conf *conf = dconf;
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
    kd_dir_conf *conf = dconf;

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

const command_rec kd_directives[] = {
    AP_INIT_TAKE1("KdelegKeytab", set_keytab, NULL, RSRC_CONF | ACCESS_CONF,
                  "keytab holding this host's acceptor keys"),
    AP_INIT_ITERATE("KdelegServiceNames", add_service_name, NULL, RSRC_CONF | ACCESS_CONF,
                    "service principals this host answers for, e.g. HTTP/www.example.com"),
    AP_INIT_TAKE1("KdelegRemoteUser", set_remote_user, NULL, RSRC_CONF | ACCESS_CONF,
                  "REMOTE_USER as the full principal (full), without realm (short) or "
                  "mapped by auth_to_local (local)"),
    {NULL},
};

/* ------------------------------------------------------------ start-up checks */

/* Does the scope of a directive (its enclosing section, or the whole
 * configuration for the main server) ever use AuthType Negotiate? */
static int scope_authenticates(const ap_directive_t *node)
{
    for (; node; node = node->next) {
        if (strcasecmp(node->directive, "AuthType") == 0 && node->args
            && strncasecmp(node->args, KD_AUTH_TYPE, sizeof(KD_AUTH_TYPE) - 1) == 0)
            return 1;
        if (scope_authenticates(node->first_child))
            return 1;
    }
    return 0;
}

/* Could the user httpd's children run as read this file? */
static int readable_by_run_user(apr_pool_t *p, const struct stat *st)
{
    uid_t uid = ap_unixd_config.user_id;
    gid_t groups[64];
    int n = 64;

    if (geteuid() != 0 || uid == 0)
        return 1; /* children keep our identity: open() below tells */
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
    if (!readable_by_run_user(p, &st))
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

static int check_keytab_nodes(apr_pool_t *p, server_rec *s, const ap_directive_t *node,
                              const ap_directive_t *scope)
{
    int rv = OK;

    for (; node; node = node->next) {
        if (strcasecmp(node->directive, "KdelegKeytab") == 0
            && scope_authenticates(scope)) {
            const char *arg = node->args, *path, *why;
            if (strncmp(arg, "FILE:", 5) == 0)
                arg += 5;
            path = ap_server_root_relative(p, arg);
            if (path && (why = keytab_problem(p, path)) != NULL) {
                ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, KDLOGNO(00201)
                             "KdelegKeytab %s (%s:%d): %s; cause keytab-unusable: fix the path "
                             "or permissions (the keytab must be readable by the httpd user)",
                             path, node->filename, node->line_num, why);
                rv = HTTP_INTERNAL_SERVER_ERROR;
            }
        }
        if (node->first_child
            && check_keytab_nodes(p, s, node->first_child, node->first_child) != OK)
            rv = HTTP_INTERNAL_SERVER_ERROR;
    }
    return rv;
}

/* Every KdelegKeytab whose scope authenticates with Negotiate must be a
 * readable keytab at start-up; the error names the file and the line. */
int kd_check_keytabs(apr_pool_t *p, server_rec *s)
{
    return check_keytab_nodes(p, s, ap_conftree, ap_conftree);
}
