#include "kd_s4u.h"

#include <string.h>
#include <unistd.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "kd_gss.h"
#include "kd_token.h"

struct kd_delegation {
    gss_cred_id_t cred;         /* evidence credential (S4U2Proxy) */
    const char *user;
    const char *impersonator;
    kd_ticket_cache *cache;     /* NULL: every target goes to the KDC */
    krb5_context ctx;           /* lazily, for cache work */
    krb5_ccache hits;           /* MEMORY: tickets found in the cache */
    gss_cred_id_t hit_cred;     /* initiator credential over hits */
    apr_hash_t *from_cache;     /* targets whose ticket came from the cache */
};

static apr_status_t delegation_cleanup(void *data)
{
    kd_delegation *d = data;
    OM_uint32 minor;

    gss_release_cred(&minor, &d->cred);
    gss_release_cred(&minor, &d->hit_cred);
    if (d->hits)
        krb5_cc_destroy(d->ctx, d->hits);
    if (d->ctx)
        krb5_free_context(d->ctx);
    return APR_SUCCESS;
}

kd_delegation *kd_delegation_wrap(apr_pool_t *p, gss_cred_id_t cred, const char *user,
                                  const char *impersonator)
{
    kd_delegation *d = apr_pcalloc(p, sizeof(*d));

    d->cred = cred;
    d->user = user;
    d->impersonator = impersonator;
    d->hit_cred = GSS_C_NO_CREDENTIAL;
    d->from_cache = apr_hash_make(p);
    apr_pool_cleanup_register(p, d, delegation_cleanup, apr_pool_cleanup_null);
    return d;
}

kd_delegation *kd_delegation_cache_only(apr_pool_t *p, const char *user,
                                        const char *impersonator, kd_ticket_cache *cache)
{
    kd_delegation *d = kd_delegation_wrap(p, GSS_C_NO_CREDENTIAL, user, impersonator);

    d->cache = cache;
    return d;
}

void kd_delegation_set_cache(kd_delegation *d, kd_ticket_cache *cache)
{
    d->cache = cache;
}

const char *kd_delegation_user(const kd_delegation *d)
{
    return d->user;
}

const char *kd_delegation_impersonator(const kd_delegation *d)
{
    return d->impersonator;
}

int kd_is_evidence_credential(apr_pool_t *p, gss_cred_id_t cred, const char **impersonator)
{
    OM_uint32 major, minor, ignored;
    gss_buffer_set_t data = GSS_C_NO_BUFFER_SET;
    int is_evidence = 0;

    /* MIT sets this only in kg_compose_deleg_cred, from our own acceptor's
     * name; a forwarded TGT never carries it. */
    major = gss_inquire_cred_by_oid(&minor, cred, GSS_KRB5_GET_CRED_IMPERSONATOR, &data);
    if (!GSS_ERROR(major) && data != GSS_C_NO_BUFFER_SET && data->count == 1
        && data->elements[0].length > 0) {
        *impersonator = kd_gss_buffer_str(p, &data->elements[0]);
        is_evidence = 1;
    }
    gss_release_buffer_set(&ignored, &data);
    return is_evidence;
}

static kd_cause import_target(apr_pool_t *p, const char *target, gss_name_t *name,
                              kd_result *res)
{
    OM_uint32 major, minor;
    gss_buffer_desc buf;

    buf.value = (void *)target;
    buf.length = strlen(target);
    major = gss_import_name(&minor, &buf, GSS_KRB5_NT_PRINCIPAL_NAME, name);
    if (GSS_ERROR(major))
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "s4u2proxy",
                              "cannot parse target %s: %s", target,
                              kd_gss_error(p, major, minor));
    return KD_CAUSE_NONE;
}

/* The KDC answers BADOPTION for three different problems (AD even uses
 * the same text): the target is not in the allowed list, the evidence
 * ticket is not forwardable (user sensitive / not delegable), or the
 * service's own TGT is not forwardable. The flags tell them apart. */
typedef struct {
    int evidence_seen, evidence_forwardable;
    int tgt_seen, tgt_forwardable;
} ticket_flags;

static int is_tgt(krb5_const_principal server)
{
    static const char tgs[] = KRB5_TGS_NAME;

    return server->length == 2 && server->data[0].length == sizeof(tgs) - 1
        && memcmp(server->data[0].data, tgs, sizeof(tgs) - 1) == 0;
}

static void inspect_flags(krb5_context ctx, krb5_ccache cc, krb5_principal user,
                          krb5_principal impersonator, ticket_flags *tf)
{
    krb5_cc_cursor cur;
    krb5_creds c;

    if (krb5_cc_start_seq_get(ctx, cc, &cur) != 0)
        return;
    while (krb5_cc_next_cred(ctx, cc, &cur, &c) == 0) {
        int forwardable = (c.ticket_flags & TKT_FLG_FORWARDABLE) != 0;
        if (krb5_principal_compare(ctx, c.client, user)
            && krb5_principal_compare(ctx, c.server, impersonator)) {
            tf->evidence_seen = 1;
            tf->evidence_forwardable = forwardable;
        }
        else if (krb5_principal_compare(ctx, c.client, impersonator) && is_tgt(c.server)) {
            tf->tgt_seen = 1;
            tf->tgt_forwardable = forwardable;
        }
        krb5_free_cred_contents(ctx, &c);
    }
    krb5_cc_end_seq_get(ctx, cc, &cur);
}

static void explain_badoption(apr_pool_t *p, kd_delegation *d, const char *target,
                              kd_result *res)
{
    krb5_context ctx;
    krb5_ccache mem = NULL;
    krb5_principal user = NULL, imp = NULL;
    ticket_flags tf = {0, 0, 0, 0};
    OM_uint32 minor;

    if (krb5_init_context(&ctx) != 0)
        return;
    if (krb5_parse_name(ctx, d->user, &user) == 0 && krb5_parse_name(ctx, d->impersonator, &imp) == 0
        && krb5_cc_new_unique(ctx, "MEMORY", NULL, &mem) == 0
        && krb5_cc_initialize(ctx, mem, user) == 0
        && !GSS_ERROR(gss_krb5_copy_ccache(&minor, d->cred, mem)))
        inspect_flags(ctx, mem, user, imp, &tf);
    if (tf.evidence_seen && !tf.evidence_forwardable)
        kd_result_fail(res, p, KD_CAUSE_USER_NOT_DELEGABLE, "s4u2proxy",
                       "the KDC refused %s for %s to %s (BADOPTION) and the evidence ticket is "
                       "not forwardable: the account is sensitive/not delegable (or its TGT "
                       "was not forwardable)", d->impersonator, d->user, target);
    else if (tf.tgt_seen && !tf.tgt_forwardable)
        kd_result_fail(res, p, KD_CAUSE_DELEGATION_NOT_ALLOWED, "s4u2proxy",
                       "the KDC refused %s for %s to %s (BADOPTION): the service's own TGT is "
                       "not forwardable: set forwardable = true in the krb5.conf httpd uses",
                       d->impersonator, d->user, target);
    if (mem)
        krb5_cc_destroy(ctx, mem);
    krb5_free_principal(ctx, user);
    krb5_free_principal(ctx, imp);
    krb5_free_context(ctx);
}

/* ------------------------------------------------------------ ticket cache */

static krb5_context delegation_ctx(kd_delegation *d)
{
    if (d->ctx == NULL && krb5_init_context(&d->ctx) != 0)
        d->ctx = NULL;
    return d->ctx;
}

/* An initiator credential over the tickets found in the cache: MIT uses a
 * matching service ticket from the ccache without asking the KDC. */
static int refresh_hit_cred(apr_pool_t *p, kd_delegation *d)
{
    OM_uint32 major, minor, ignored;
    gss_buffer_desc namebuf;
    gss_name_t name = GSS_C_NO_NAME;
    gss_OID_set_desc krb5_only = {1, (gss_OID)gss_mech_krb5};
    char *full_name = NULL;
    const char *ccache_name;

    if (krb5_cc_get_full_name(d->ctx, d->hits, &full_name) != 0)
        return -1;
    ccache_name = apr_pstrdup(p, full_name);
    krb5_free_string(d->ctx, full_name);
    namebuf.value = (void *)d->user;
    namebuf.length = strlen(d->user);
    if (GSS_ERROR(gss_import_name(&minor, &namebuf, GSS_KRB5_NT_PRINCIPAL_NAME, &name)))
        return -1;
    gss_key_value_element_desc element = {"ccache", ccache_name};
    gss_key_value_set_desc store = {1, &element};
    gss_release_cred(&ignored, &d->hit_cred);
    major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &krb5_only, GSS_C_INITIATE,
                                  &store, &d->hit_cred, NULL, NULL);
    gss_release_name(&ignored, &name);
    return GSS_ERROR(major) ? -1 : 0;
}

/* Is target's ticket in the node's cache? Then keep it in d->hits. */
static int load_cached(apr_pool_t *p, kd_delegation *d, const char *target)
{
    krb5_creds *creds = NULL;
    krb5_principal user = NULL;
    int ok = 0;

    if (delegation_ctx(d) == NULL
        || !kd_ticket_cache_get(d->cache, p, d->ctx, d->user, d->impersonator, target, &creds))
        return 0;
    if (d->hits == NULL && (krb5_parse_name(d->ctx, d->user, &user) != 0
                            || krb5_cc_new_unique(d->ctx, "MEMORY", NULL, &d->hits) != 0
                            || krb5_cc_initialize(d->ctx, d->hits, user) != 0))
        goto done;
    if (krb5_cc_store_cred(d->ctx, d->hits, creds) == 0 && refresh_hit_cred(p, d) == 0) {
        apr_hash_set(d->from_cache, apr_pstrdup(p, target), APR_HASH_KEY_STRING, "");
        ok = 1;
    }
done:
    krb5_free_principal(d->ctx, user);
    krb5_free_creds(d->ctx, creds);
    return ok;
}

/* Find the S4U2Proxy ticket for target in the evidence credential and
 * offer it to the node's cache. */
static void remember(apr_pool_t *p, kd_delegation *d, const char *target)
{
    krb5_ccache mem = NULL;
    krb5_principal user = NULL, server = NULL;
    krb5_cc_cursor cur;
    krb5_creds c;
    OM_uint32 minor;

    if (delegation_ctx(d) == NULL || krb5_parse_name(d->ctx, d->user, &user) != 0
        || krb5_parse_name(d->ctx, target, &server) != 0
        || krb5_cc_new_unique(d->ctx, "MEMORY", NULL, &mem) != 0
        || krb5_cc_initialize(d->ctx, mem, user) != 0
        || GSS_ERROR(gss_krb5_copy_ccache(&minor, d->cred, mem))
        || krb5_cc_start_seq_get(d->ctx, mem, &cur) != 0)
        goto done;
    while (krb5_cc_next_cred(d->ctx, mem, &cur, &c) == 0) {
        if (krb5_principal_compare(d->ctx, c.client, user)
            && krb5_principal_compare(d->ctx, c.server, server))
            kd_ticket_cache_put(d->cache, p, d->ctx, d->user, d->impersonator, target, &c);
        krb5_free_cred_contents(d->ctx, &c);
    }
    krb5_cc_end_seq_get(d->ctx, mem, &cur);
done:
    if (mem)
        krb5_cc_destroy(d->ctx, mem);
    krb5_free_principal(d->ctx, user);
    krb5_free_principal(d->ctx, server);
}

/* The credential to make target's token with: the cached ticket when the
 * node has one, else the evidence credential (one S4U2Proxy request). */
static gss_cred_id_t cred_for(apr_pool_t *p, kd_delegation *d, const char *target)
{
    if (d->cache == NULL)
        return d->cred;
    if (apr_hash_get(d->from_cache, target, APR_HASH_KEY_STRING) || load_cached(p, d, target))
        return d->hit_cred;
    return d->cred;
}

kd_cause kd_s4u2proxy_ensure(apr_pool_t *p, kd_delegation *d, const char *target,
                             kd_result *res)
{
    unsigned char *token;
    size_t len;

    if (d->cache && (apr_hash_get(d->from_cache, target, APR_HASH_KEY_STRING)
                     || load_cached(p, d, target)))
        return KD_CAUSE_NONE;
    return kd_s4u2proxy(p, d, target, &token, &len, res);
}

kd_cause kd_s4u2proxy(apr_pool_t *p, kd_delegation *d, const char *target,
                      unsigned char **token, size_t *token_len, kd_result *res)
{
    OM_uint32 major, minor, ignored;
    gss_name_t name = GSS_C_NO_NAME;
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    kd_cause cause;

    gss_cred_id_t cred;

    if ((cause = import_target(p, target, &name, res)) != KD_CAUSE_NONE)
        return cause;
    cred = cred_for(p, d, target);
    if (cred == GSS_C_NO_CREDENTIAL) {
        gss_release_name(&ignored, &name);
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "s4u2proxy",
                              "no ticket for %s to %s in the cache and no evidence to ask the "
                              "KDC with", d->user, target);
    }
    /* The Kerberos mechanism directly: its minor codes are the KDC's
     * answers (through SPNEGO the mechglue would renumber them). */
    major = gss_init_sec_context(&minor, cred, &ctx, name, (gss_OID)gss_mech_krb5, 0,
                                 GSS_C_INDEFINITE, GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER,
                                 NULL, &out, NULL, NULL);
    if (GSS_ERROR(major)) {
        res->gss_major = major;
        res->krb5_code = (krb5_error_code)minor;
        cause = kd_result_fail(res, p, kd_cause_from_kdc_error((krb5_error_code)minor),
                               "s4u2proxy", "%s for %s to %s: %s", d->impersonator, d->user,
                               target, kd_gss_error(p, major, minor));
        if ((krb5_error_code)minor == KRB5KDC_ERR_BADOPTION) {
            explain_badoption(p, d, target, res);
            cause = res->cause;
        }
    }
    else {
        kd_token_spnego_wrap(p, out.value, out.length, token, token_len);
        if (d->cache && cred == d->cred)
            remember(p, d, target);
    }
    gss_release_buffer(&ignored, &out);
    if (ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&ignored, &ctx, GSS_C_NO_BUFFER);
    gss_release_name(&ignored, &name);
    return cause;
}

/* ------------------------------------------------------------ S4U2Self */

/* Is the evidence ticket (client user, server impersonator) in this
 * credential forwardable? -1 when it cannot be found. */
static int evidence_forwardable(gss_cred_id_t cred, const char *user, const char *impersonator)
{
    krb5_context ctx;
    krb5_ccache mem = NULL;
    krb5_principal u = NULL, imp = NULL;
    ticket_flags tf = {0, 0, 0, 0};
    OM_uint32 minor;

    if (krb5_init_context(&ctx) != 0)
        return -1;
    if (krb5_parse_name(ctx, user, &u) == 0 && krb5_parse_name(ctx, impersonator, &imp) == 0
        && krb5_cc_new_unique(ctx, "MEMORY", NULL, &mem) == 0
        && krb5_cc_initialize(ctx, mem, u) == 0
        && !GSS_ERROR(gss_krb5_copy_ccache(&minor, cred, mem)))
        inspect_flags(ctx, mem, u, imp, &tf);
    if (mem)
        krb5_cc_destroy(ctx, mem);
    krb5_free_principal(ctx, u);
    krb5_free_principal(ctx, imp);
    krb5_free_context(ctx);
    return tf.evidence_seen ? tf.evidence_forwardable : -1;
}

static kd_cause impersonate(apr_pool_t *p, gss_cred_id_t impersonator_cred, const char *user,
                            gss_cred_id_t *cred, kd_result *res)
{
    OM_uint32 major, minor, ignored;
    gss_name_t name = GSS_C_NO_NAME;
    gss_OID_set_desc krb5_only = {1, (gss_OID)gss_mech_krb5};
    kd_cause cause;

    if ((cause = import_target(p, user, &name, res)) != KD_CAUSE_NONE)
        return cause;
    major = gss_acquire_cred_impersonate_name(&minor, impersonator_cred, name, GSS_C_INDEFINITE,
                                              &krb5_only, GSS_C_INITIATE, cred, NULL, NULL);
    gss_release_name(&ignored, &name);
    if (GSS_ERROR(major)) {
        res->gss_major = major;
        res->krb5_code = (krb5_error_code)minor;
        return kd_result_fail(res, p, kd_cause_from_kdc_error((krb5_error_code)minor),
                              "s4u2self", "S4U2Self for %s: %s", user,
                              kd_gss_error(p, major, minor));
    }
    return KD_CAUSE_NONE;
}

/* A day: long enough to outlive any ticket, short enough to notice when
 * an administrator withdraws protocol transition. */
#define KD_TRANSITION_FACT_SEC 86400

kd_cause kd_s4u2self(apr_pool_t *p, gss_cred_id_t impersonator_cred, const char *impersonator,
                     const char *user, volatile int *transition_seen, kd_ticket_cache *cache,
                     kd_delegation **out, kd_result *res)
{
    const char *fact = apr_pstrcat(p, "protocol-transition ", impersonator, NULL);

    gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
    OM_uint32 ignored;

    *out = NULL;
    if (impersonate(p, impersonator_cred, user, &cred, res) != KD_CAUSE_NONE)
        return res->cause;
    if (evidence_forwardable(cred, user, impersonator) != 0) {
        if (!*transition_seen && cache)
            kd_ticket_cache_note(cache, p, fact, KD_TRANSITION_FACT_SEC);
        *transition_seen = 1;
        *out = kd_delegation_wrap(p, cred, user, impersonator);
        return KD_CAUSE_NONE;
    }
    gss_release_cred(&ignored, &cred);
    if (*transition_seen || (cache && kd_ticket_cache_noted(cache, p, fact)))
        return kd_result_fail(res, p, KD_CAUSE_USER_NOT_DELEGABLE, "s4u2self",
                              "the S4U2Self ticket of %s for %s is not forwardable, while %s has "
                              "had forwardable ones for other users: the account is sensitive / "
                              "not delegable", user, impersonator, impersonator);
    return kd_result_fail(res, p, KD_CAUSE_PROTOCOL_TRANSITION_NOT_ALLOWED, "s4u2self",
                          "the S4U2Self ticket of %s for %s is not forwardable: %s may not use "
                          "protocol transition (a sensitive user gets the same answer: if "
                          "others work, this account is not delegable)", user, impersonator,
                          impersonator);
}

/* ------------------------------------------------------------ ccache */

static apr_status_t remove_ccache_file(void *path)
{
    unlink(path);
    return APR_SUCCESS;
}

static int is_target(krb5_context ctx, krb5_const_principal server, krb5_principal *targets,
                     int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (krb5_principal_compare(ctx, server, targets[i]))
            return 1;
    }
    return 0;
}

/* Copy only the user's tickets for the targets: never the service's own
 * TGT or the evidence ticket, which also live in the delegation's cache. */
static krb5_error_code copy_target_tickets(krb5_context ctx, krb5_ccache from, krb5_ccache to,
                                           krb5_principal user, krb5_principal *targets,
                                           int n, int *copied)
{
    krb5_cc_cursor cur;
    krb5_creds creds;
    krb5_error_code code;

    *copied = 0;
    if ((code = krb5_cc_start_seq_get(ctx, from, &cur)) != 0)
        return code;
    while ((code = krb5_cc_next_cred(ctx, from, &cur, &creds)) == 0) {
        if (!krb5_is_config_principal(ctx, creds.server)
            && krb5_principal_compare(ctx, creds.client, user)
            && is_target(ctx, creds.server, targets, n)) {
            code = krb5_cc_store_cred(ctx, to, &creds);
            (*copied)++;
        }
        krb5_free_cred_contents(ctx, &creds);
        if (code != 0)
            break;
    }
    krb5_cc_end_seq_get(ctx, from, &cur);
    return code == KRB5_CC_END ? 0 : code;
}

static kd_cause new_ccache_file(apr_pool_t *p, const char *dir, const char **path,
                                kd_result *res)
{
    apr_file_t *f;
    char *tmpl = apr_pstrcat(p, dir, "/krb5cc_kdeleg_XXXXXX", NULL);
    apr_status_t rv;

    /* mkstemp: unguessable name, created 0600 by us, never an existing file */
    rv = apr_file_mktemp(&f, tmpl, APR_FOPEN_CREATE | APR_FOPEN_READ | APR_FOPEN_WRITE
                                   | APR_FOPEN_EXCL, p);
    if (rv != APR_SUCCESS) {
        char err[128];
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "ccache",
                              "cannot create a credential cache in %s: %s", dir,
                              apr_strerror(rv, err, sizeof(err)));
    }
    apr_pool_cleanup_register(p, tmpl, remove_ccache_file, apr_pool_cleanup_null);
    apr_file_close(f);
    *path = tmpl;
    return KD_CAUSE_NONE;
}

kd_cause kd_delegation_write_ccache(apr_pool_t *p, kd_delegation *d, const char *dir,
                                    const char *const *targets, int n_targets,
                                    const char **path, kd_result *res)
{
    krb5_context ctx = NULL;
    krb5_ccache mem = NULL, file = NULL;
    krb5_principal user = NULL, *target_princs;
    krb5_error_code code;
    OM_uint32 major, minor = 0;
    int i, copied = 0;
    kd_cause cause = KD_CAUSE_NONE;

    if ((cause = new_ccache_file(p, dir, path, res)) != KD_CAUSE_NONE)
        return cause;
    target_princs = apr_pcalloc(p, sizeof(*target_princs) * (n_targets + 1));
    if ((code = krb5_init_context(&ctx)) != 0)
        goto done;
    if ((code = krb5_parse_name(ctx, d->user, &user)) != 0)
        goto done;
    for (i = 0; i < n_targets; i++) {
        if ((code = krb5_parse_name(ctx, targets[i], &target_princs[i])) != 0)
            goto done;
    }
    if ((code = krb5_cc_new_unique(ctx, "MEMORY", NULL, &mem)) != 0
        || (code = krb5_cc_initialize(ctx, mem, user)) != 0)
        goto done;
    major = d->cred ? gss_krb5_copy_ccache(&minor, d->cred, mem) : GSS_S_COMPLETE;
    if (GSS_ERROR(major)) {
        code = (krb5_error_code)minor;
        goto done;
    }
    if (d->hits && (code = krb5_cc_copy_creds(ctx, d->hits, mem)) != 0)
        goto done;
    if ((code = krb5_cc_resolve(ctx, apr_pstrcat(p, "FILE:", *path, NULL), &file)) != 0
        || (code = krb5_cc_initialize(ctx, file, user)) != 0)
        goto done;
    code = copy_target_tickets(ctx, mem, file, user, target_princs, n_targets, &copied);

done:
    if (code != 0) {
        const char *msg = ctx ? krb5_get_error_message(ctx, code) : NULL;
        cause = kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "ccache",
                               "writing the credential cache for %s: %s", d->user,
                               msg ? msg : "cannot initialise krb5");
        if (msg)
            krb5_free_error_message(ctx, msg);
    }
    else if (copied < n_targets)
        cause = kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "ccache",
                               "only %d of %d delegated tickets for %s were found", copied,
                               n_targets, d->user);
    if (file)
        krb5_cc_close(ctx, file);
    if (mem)
        krb5_cc_destroy(ctx, mem);
    for (i = 0; ctx && i < n_targets; i++)
        krb5_free_principal(ctx, target_princs[i]);
    if (ctx) {
        krb5_free_principal(ctx, user);
        krb5_free_context(ctx);
    }
    return cause;
}
