/* mod_kdeleg_groups: group authorization. KdelegGroupMap, KdelegPublishGroups
 * and the "kdeleg-group" authorization provider (Require kdeleg-group
 * SID|ALIAS...). The groups themselves come from the core (kd_groups): the
 * accepted ticket's PAC, the session cookie, or the S4U2Self ticket. */
#include "mod_kdeleg.h"

#include <string.h>

#include <http_core.h>
#include <http_log.h>
#include <http_request.h>
#include <mod_auth.h>
#include <ap_provider.h>
#include <apr_strings.h>

#include "kd_causes.h"
#include "kd_result.h"
#include "kd_s4u.h"

APLOG_USE_MODULE(kdeleg);

#define KD_GROUP_PROVIDER "kdeleg-group"

/* A SID no alias check can confuse with anything: used only to ask the
 * core whether a word has an alias's shape. */
#define KD_PROBE_SID "S-1-5-32-544"

const char *kdeleg_add_group_map(cmd_parms *cmd, void *dconf, const char *alias, const char *sid)
{
    kdeleg_dir_conf *conf = dconf;
    const char *err;

    if (conf->group_map == NULL)
        conf->group_map = kd_group_map_create(cmd->pool);
    if ((err = kd_group_map_add(conf->group_map, alias, sid)) != NULL)
        return apr_psprintf(cmd->pool, "KdelegGroupMap %s %s: %s (syntax: KdelegGroupMap ALIAS "
                            "S-1-5-21-...)", alias, sid, err);
    return NULL;
}

/* ------------------------------------------------------------ the groups */

static const kd_groups *read_groups(request_rec *r, const kdeleg_auth_state *st, const char **why)
{
    const kd_logon_info *li = NULL;
    const kd_groups *groups;

    if (strcmp(st->method, "session") == 0) {
        *why = "the session cookie carries no group information (issued from a ticket "
               "without a PAC logon-info)";
        return st->groups;
    }
    if (st->accepted != NULL)
        li = kd_accept_logon_info(st->accepted, why);
    else if (strcmp(st->method, "protocol-transition") == 0
             && (st->delegation != NULL || st->evidence != NULL))
        li = kd_delegation_logon_info(r->pool, st->delegation ? st->delegation : st->evidence,
                                      why);
    else if (strcmp(st->method, "protocol-transition") == 0)
        *why = st->evidence_failure.detail ? st->evidence_failure.detail
                                           : "no S4U2Self ticket (served from the node's cache)";
    else
        *why = "the accepted ticket was not kept";
    if (li == NULL)
        return NULL;
    if ((groups = kd_groups_from_logon_info(r->pool, li)) == NULL)
        *why = "the PAC logon-info names no domain";
    return groups;
}

const kd_groups *kdeleg_groups_of(request_rec *r, const char **why)
{
    /* The state is the request's own (allocated from its pool): the
     * answer is kept there so the PAC is decoded once per request. */
    kdeleg_auth_state *st = (kdeleg_auth_state *)kdeleg_auth_state_of(r);
    const char *reason = NULL;

    *why = NULL;
    if (st == NULL) {
        /* Another module's user: its groups are in the PAC of the S4U2Self
         * ticket, which fixups would fetch after authorization: fetch it
         * now (KdelegProtocolTransition On), for delegation too. */
        st = kdeleg_transition_early(r, ap_get_module_config(r->per_dir_config, &kdeleg_module),
                                     why);
        if (st == NULL)
            return NULL;
    }
    if (!st->groups_read) {
        st->groups = read_groups(r, st, &reason);
        st->groups_read = 1;
    }
    if (st->groups == NULL)
        *why = reason ? reason : "no group information";
    return st->groups;
}

void kdeleg_publish_groups(request_rec *r, const kdeleg_dir_conf *conf)
{
    const kd_groups *g;
    const char *why;

    if (conf->publish_groups != 1)
        return;
    apr_table_unset(r->subprocess_env, "KDELEG_GROUP_SIDS");
    if ((g = kdeleg_groups_of(r, &why)) != NULL)
        apr_table_set(r->subprocess_env, "KDELEG_GROUP_SIDS", kd_groups_sids_string(r->pool, g));
}

/* After authentication (fixups: Kerberos, session and protocol transition
 * alike; protocol transition's own fixup runs first, APR_HOOK_MIDDLE). */
static int publish_fixups(request_rec *r)
{
    const kdeleg_dir_conf *conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);

    if (r->user != NULL && kdeleg_auth_state_of(r) != NULL)
        kdeleg_publish_groups(r, conf);
    return DECLINED;
}

/* ------------------------------------------------------------ Require kdeleg-group */

/* One word of the Require line: its SID when known at parse time, else
 * the alias to look up in the request's merged configuration (an alias
 * given in an outer scope, or after the Require line). */
typedef struct {
    const char *word;
    const char *sid;
} group_word;

static const char *group_parse(cmd_parms *cmd, const char *line_text, const void **parsed)
{
    const kdeleg_dir_conf *here = cmd->context
        ? ap_get_module_config((ap_conf_vector_t *)cmd->context, &kdeleg_module) : NULL;
    apr_array_header_t *words = apr_array_make(cmd->pool, 4, sizeof(group_word));
    kd_group_map *probe = kd_group_map_create(cmd->temp_pool);
    const char *line = line_text, *w;

    while (*(w = ap_getword_conf(cmd->pool, &line)) != '\0') {
        group_word *gw = apr_array_push(words);
        gw->word = w;
        gw->sid = kd_group_map_resolve(cmd->pool, here ? here->group_map : NULL, w);
        /* Not known yet: it must at least be a SID or an alias's shape. */
        if (gw->sid == NULL && kd_group_map_add(probe, w, KD_PROBE_SID) != NULL)
            return apr_psprintf(cmd->pool, "Require " KD_GROUP_PROVIDER ": '%s' is neither a "
                                "SID (S-1-5-21-...) nor an alias (letters, digits, _ . -)", w);
    }
    if (words->nelts == 0)
        return "Require " KD_GROUP_PROVIDER ": name at least one group SID or alias";
    *parsed = words;
    return NULL;
}

/* Once per request, however many Require kdeleg-group lines ask. */
#define NOTE_NO_GROUPS "kdeleg-no-group-info"

static void report_no_groups(request_rec *r, const char *why)
{
    const kdeleg_auth_state *st = kdeleg_auth_state_of(r);
    const kdeleg_failure authentication = {NULL, NULL, 0};
    kd_result res;

    if (apr_table_get(r->notes, NOTE_NO_GROUPS) != NULL)
        return;
    apr_table_setn(r->notes, NOTE_NO_GROUPS, "1");

    kd_result_init(&res);
    kd_result_fail(&res, r->pool, KD_CAUSE_NO_GROUP_INFO, "authz", "%s (user %s)", why, r->user);
    kdeleg_report_failure(r, APLOG_INFO, &res, st ? st->spn : NULL, &authentication);
}

static authz_status group_check(request_rec *r, const char *line_text, const void *parsed)
{
    const kdeleg_dir_conf *conf = ap_get_module_config(r->per_dir_config, &kdeleg_module);
    const apr_array_header_t *words = parsed;
    const kd_groups *g;
    const char *why;
    int i;

    if (r->user == NULL)
        return AUTHZ_DENIED_NO_USER;
    if ((g = kdeleg_groups_of(r, &why)) == NULL) {
        report_no_groups(r, why);
        return AUTHZ_DENIED;
    }
    for (i = 0; i < words->nelts; i++) {
        const group_word *gw = &APR_ARRAY_IDX(words, i, group_word);
        const char *sid;
        if ((sid = gw->sid) == NULL
            && (sid = kd_group_map_resolve(r->pool, conf->group_map, gw->word)) == NULL) {
            /* Fails closed: an unknown alias never grants. */
            kdeleg_log_request(r, APLOG_ERR, 0, KDLOGNO(00305), "-",
                               "Require " KD_GROUP_PROVIDER ": unknown alias '%s' (no "
                               "KdelegGroupMap for it here); it grants nothing",
                               ap_escape_logitem(r->pool, gw->word));
            continue;
        }
        if (kd_groups_has_sid(g, sid)) {
            kdeleg_log_request(r, APLOG_DEBUG, 0, KDLOGNO(00306), "-",
                               "Require " KD_GROUP_PROVIDER ": %s is in %s (%s)",
                               ap_escape_logitem(r->pool, r->user),
                               ap_escape_logitem(r->pool, gw->word), sid);
            return AUTHZ_GRANTED;
        }
    }
    kdeleg_log_request(r, APLOG_DEBUG, 0, KDLOGNO(00307), "-",
                       "Require " KD_GROUP_PROVIDER ": %s is in none of %s",
                       ap_escape_logitem(r->pool, r->user),
                       ap_escape_logitem(r->pool, line_text));
    return AUTHZ_DENIED;
}

static const authz_provider group_provider = {
    &group_check,
    &group_parse,
};

void kdeleg_groups_register_hooks(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, KD_GROUP_PROVIDER, AUTHZ_PROVIDER_VERSION,
                              &group_provider, AP_AUTH_INTERNAL_PER_CONF);
    /* After protocol transition's fixup (APR_HOOK_MIDDLE). */
    ap_hook_fixups(publish_fixups, NULL, NULL, APR_HOOK_LAST);
}
