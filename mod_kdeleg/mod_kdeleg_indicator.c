/* mod_kdeleg_indicator: the "kdeleg-indicator" authorization provider
 * (Require kdeleg-indicator NAME...): grants when the Kerberos ticket the
 * user logged in with here carries one of the named authentication
 * indicators (MIT KDCs: "otp", "radius", "pkinit", "spake", or what
 * encrypted_challenge_indicator names). The indicators come from the core
 * (kd_accept_indicators); a login without a ticket here (session cookie,
 * protocol transition, another module) has none and is denied with the
 * cause no-indicator. */
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

APLOG_USE_MODULE(kdeleg);

#define KD_INDICATOR_PROVIDER "kdeleg-indicator"

/* The ticket's indicators, or NULL with *why. */
static const apr_array_header_t *indicators_of(request_rec *r, const char **why)
{
    const kdeleg_auth_state *st = kdeleg_auth_state_of(r);

    if (st == NULL) {
        *why = apr_psprintf(r->pool, "%s was authenticated by AuthType %s, not by a Kerberos "
                            "ticket here: no authentication indicators",
                            ap_escape_logitem(r->pool, r->user),
                            r->ap_auth_type ? r->ap_auth_type : "(none)");
        return NULL;
    }
    if (strcmp(st->method, "session") == 0) {
        /* The cookie does not carry them: a session opened after a login
         * with indicators must not pass for one elsewhere on the site. */
        *why = "a session cookie carries no authentication indicators: this location needs "
               "a fresh Kerberos login (the client answers the 401 challenge with a token)";
        return NULL;
    }
    if (strcmp(st->method, "protocol-transition") == 0) {
        *why = "protocol transition: the user did not log in with a Kerberos ticket here";
        return NULL;
    }
    return kd_accept_indicators(st->accepted, why);
}

/* Once per request, however many Require kdeleg-indicator lines ask. */
#define NOTE_NO_INDICATOR "kdeleg-no-indicator"

static void report_no_indicator(request_rec *r, const char *why)
{
    const kdeleg_auth_state *st = kdeleg_auth_state_of(r);
    const kdeleg_failure authentication = {NULL, NULL, 0};
    kd_result res;

    if (apr_table_get(r->notes, NOTE_NO_INDICATOR) != NULL)
        return;
    apr_table_setn(r->notes, NOTE_NO_INDICATOR, "1");

    kd_result_init(&res);
    kd_result_fail(&res, r->pool, KD_CAUSE_NO_INDICATOR, "authz", "%s (user %s)",
                   why ? why : "no authentication indicator", r->user);
    kdeleg_report_failure(r, APLOG_INFO, &res, st ? st->spn : NULL, &authentication);
}

static const char *indicator_parse(cmd_parms *cmd, const char *line_text, const void **parsed)
{
    apr_array_header_t *words = apr_array_make(cmd->pool, 2, sizeof(const char *));
    const char *line = line_text, *w;

    while (*(w = ap_getword_conf(cmd->pool, &line)) != '\0')
        APR_ARRAY_PUSH(words, const char *) = w;
    if (words->nelts == 0)
        return "Require " KD_INDICATOR_PROVIDER ": name at least one authentication indicator "
               "(e.g. otp, pkinit, spake, or what the KDC's kdc.conf sets)";
    *parsed = words;
    return NULL;
}

static const char *list_text(apr_pool_t *p, const apr_array_header_t *list)
{
    return apr_array_pstrcat(p, list, ' ');
}

static authz_status indicator_check(request_rec *r, const char *line_text, const void *parsed)
{
    const apr_array_header_t *words = parsed, *have;
    const char *why = NULL;
    int i;

    if (r->user == NULL)
        return AUTHZ_DENIED_NO_USER;
    if ((have = indicators_of(r, &why)) == NULL) {
        report_no_indicator(r, why);
        return AUTHZ_DENIED;
    }
    for (i = 0; i < words->nelts; i++) {
        const char *found;
        if ((found = kd_indicator_find(have, APR_ARRAY_IDX(words, i, const char *))) != NULL) {
            kdeleg_log_request(r, APLOG_DEBUG, 0, KDLOGNO(00308), "-",
                               "Require " KD_INDICATOR_PROVIDER ": %s logged in with %s",
                               ap_escape_logitem(r->pool, r->user),
                               ap_escape_logitem(r->pool, found));
            return AUTHZ_GRANTED;
        }
    }
    kdeleg_log_request(r, APLOG_DEBUG, 0, KDLOGNO(00309), "-",
                       "Require " KD_INDICATOR_PROVIDER ": %s logged in with %s, none of %s",
                       ap_escape_logitem(r->pool, r->user),
                       ap_escape_logitem(r->pool, list_text(r->pool, have)),
                       ap_escape_logitem(r->pool, line_text));
    return AUTHZ_DENIED;
}

static const authz_provider indicator_provider = {
    &indicator_check,
    &indicator_parse,
};

void kdeleg_indicator_register_hooks(apr_pool_t *p)
{
    ap_register_auth_provider(p, AUTHZ_PROVIDER_GROUP, KD_INDICATOR_PROVIDER,
                              AUTHZ_PROVIDER_VERSION, &indicator_provider,
                              AP_AUTH_INTERNAL_PER_CONF);
}
