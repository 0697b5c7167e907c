#include "kd_s4u.h"

#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
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
    apr_hash_t *ready;          /* target -> ready_cred borrowed for this request */
};

/* ------------------------------------------------------------ ready credentials
 *
 * Per process: GSS initiator credentials over one cached ticket each, keyed
 * by (user, impersonator, target), kept until shortly before the ticket
 * expires. A request that finds one needs nothing but gss_init_sec_context
 * (the fresh authenticator). Reference-counted: never freed while a request
 * uses it. Bounded: when full, everything is dropped and rebuilt from the
 * node's shared cache on demand. */

#define KD_READY_MAX 1024

typedef struct {
    char *key;
    gss_cred_id_t cred;
    char *ccache;            /* the MEMORY ccache holding the ticket */
    apr_time_t expires;
    unsigned refs;
    int stale;
} ready_cred;

static struct {
    apr_thread_mutex_t *lock;
    apr_hash_t *creds;       /* key -> ready_cred*, guarded by lock */
    unsigned count;
} ready_store;

void kd_s4u_child_init(apr_pool_t *p)
{
    if (apr_thread_mutex_create(&ready_store.lock, APR_THREAD_MUTEX_DEFAULT, p) == APR_SUCCESS)
        ready_store.creds = apr_hash_make(p);
}

static void ready_free(ready_cred *c)
{
    OM_uint32 minor;
    krb5_context ctx;
    krb5_ccache cc;

    gss_release_cred(&minor, &c->cred);
    if (c->ccache && krb5_init_context(&ctx) == 0) {
        if (krb5_cc_resolve(ctx, c->ccache, &cc) == 0)
            krb5_cc_destroy(ctx, cc);
        krb5_free_context(ctx);
    }
    free(c->ccache);
    free(c->key);
    free(c);
}

/* Under lock: drop an entry from the table, free it now or on last release. */
static void ready_retire(ready_cred *c)
{
    apr_hash_set(ready_store.creds, c->key, APR_HASH_KEY_STRING, NULL);
    ready_store.count--;
    c->stale = 1;
    if (c->refs == 0)
        ready_free(c);
}

static apr_status_t ready_release(void *data)
{
    ready_cred *c = data;

    apr_thread_mutex_lock(ready_store.lock);
    if (--c->refs == 0 && c->stale)
        ready_free(c);
    apr_thread_mutex_unlock(ready_store.lock);
    return APR_SUCCESS;
}

/* Borrow the ready credential for key until pool p is cleared. */
static ready_cred *ready_borrow(apr_pool_t *p, const char *key)
{
    ready_cred *c;

    if (ready_store.creds == NULL)
        return NULL;
    apr_thread_mutex_lock(ready_store.lock);
    c = apr_hash_get(ready_store.creds, key, APR_HASH_KEY_STRING);
    if (c && c->expires <= apr_time_now()) {
        ready_retire(c);
        c = NULL;
    }
    if (c)
        c->refs++;
    apr_thread_mutex_unlock(ready_store.lock);
    if (c)
        apr_pool_cleanup_register(p, c, ready_release, apr_pool_cleanup_null);
    return c;
}

/* Publish a new ready credential (taking ownership) and borrow it. */
static ready_cred *ready_publish(apr_pool_t *p, ready_cred *c)
{
    ready_cred *old;

    if (ready_store.creds == NULL) { /* no table (unit tests): the request owns it */
        c->stale = 1;
        c->refs = 1;
        apr_pool_cleanup_register(p, c, ready_release, apr_pool_cleanup_null);
        return c;
    }
    apr_thread_mutex_lock(ready_store.lock);
    if ((old = apr_hash_get(ready_store.creds, c->key, APR_HASH_KEY_STRING)) != NULL)
        ready_retire(old);
    if (ready_store.count >= KD_READY_MAX) {
        apr_hash_index_t *hi;
        for (hi = apr_hash_first(NULL, ready_store.creds); hi; hi = apr_hash_next(hi))
            ready_retire(apr_hash_this_val(hi));
    }
    apr_hash_set(ready_store.creds, c->key, APR_HASH_KEY_STRING, c);
    ready_store.count++;
    c->refs = 1;
    apr_thread_mutex_unlock(ready_store.lock);
    apr_pool_cleanup_register(p, c, ready_release, apr_pool_cleanup_null);
    return c;
}

static apr_status_t delegation_cleanup(void *data)
{
    kd_delegation *d = data;
    OM_uint32 minor;

    gss_release_cred(&minor, &d->cred);
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
    d->ready = apr_hash_make(p);
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

/* A new MEMORY ccache owned by owner holding a copy of cred's tickets. */
static krb5_error_code cred_to_memory(krb5_context ctx, gss_cred_id_t cred, krb5_principal owner,
                                      krb5_ccache *out)
{
    krb5_error_code code;
    OM_uint32 major, minor;

    *out = NULL;
    if ((code = krb5_cc_new_unique(ctx, "MEMORY", NULL, out)) != 0)
        return code;
    if ((code = krb5_cc_initialize(ctx, *out, owner)) == 0) {
        major = gss_krb5_copy_ccache(&minor, cred, *out);
        code = GSS_ERROR(major) ? (krb5_error_code)minor : 0;
    }
    if (code != 0) {
        krb5_cc_destroy(ctx, *out);
        *out = NULL;
    }
    return code;
}

/* The flags of the evidence ticket and the service TGT inside cred. */
static void cred_flags(gss_cred_id_t cred, const char *user, const char *impersonator,
                       ticket_flags *tf)
{
    krb5_context ctx;
    krb5_ccache mem = NULL;
    krb5_principal u = NULL, imp = NULL;

    if (krb5_init_context(&ctx) != 0)
        return;
    if (krb5_parse_name(ctx, user, &u) == 0 && krb5_parse_name(ctx, impersonator, &imp) == 0
        && cred_to_memory(ctx, cred, u, &mem) == 0) {
        inspect_flags(ctx, mem, u, imp, tf);
        krb5_cc_destroy(ctx, mem);
    }
    krb5_free_principal(ctx, u);
    krb5_free_principal(ctx, imp);
    krb5_free_context(ctx);
}

static void explain_badoption(apr_pool_t *p, kd_delegation *d, const char *target,
                              kd_result *res)
{
    ticket_flags tf = {0, 0, 0, 0};

    cred_flags(d->cred, d->user, d->impersonator, &tf);
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
}

/* The realm a target lives in: its own, or what [domain_realm] maps its
 * host to (how the library will route the request). NULL if unknown. */
static const char *target_realm(apr_pool_t *p, krb5_context ctx, const char *target)
{
    const char *at = strrchr(target, '@'), *slash = strchr(target, '/');
    char **realms = NULL;
    const char *realm = NULL;

    if (at)
        return at + 1;
    if (slash == NULL || ctx == NULL)
        return NULL;
    if (krb5_get_host_realm(ctx, slash + 1, &realms) == 0 && realms && realms[0]
        && realms[0][0] != '\0')
        realm = apr_pstrdup(p, realms[0]);
    if (realms)
        krb5_free_host_realm(ctx, realms);
    return realm;
}

/* Classic constrained delegation (msDS-AllowedToDelegateTo,
 * krbAllowedToDelegateTo) stays inside one realm: a refusal for a target
 * in another realm is that, whatever the KDC called it. */
static kd_cause explain_cross_realm(apr_pool_t *p, kd_delegation *d, const char *target,
                                    kd_result *res)
{
    const char *ours = strrchr(d->impersonator, '@'), *theirs;
    krb5_context ctx = NULL;

    if (ours == NULL || krb5_init_context(&ctx) != 0)
        return res->cause;
    theirs = target_realm(p, ctx, target);
    krb5_free_context(ctx);
    if (theirs == NULL || strcmp(theirs, ours + 1) == 0)
        return res->cause;
    return kd_result_fail(res, p, KD_CAUSE_CROSS_REALM_DELEGATION, "s4u2proxy",
                          "%s (realm %s) for %s to %s (realm %s): constrained delegation "
                          "crosses realms (SEC_E_CROSSREALM_DELEGATION_FAILURE 0x80090357); "
                          "the KDC said: %s", d->impersonator, ours + 1, d->user, target,
                          theirs, res->detail ? res->detail : kd_cause_name(res->cause));
}

/* ------------------------------------------------------------ ticket cache */

static krb5_context delegation_ctx(kd_delegation *d)
{
    if (d->ctx == NULL && krb5_init_context(&d->ctx) != 0)
        d->ctx = NULL;
    return d->ctx;
}

static const char *ready_key(apr_pool_t *p, const kd_delegation *d, const char *target)
{
    return apr_pstrcat(p, d->user, "\n", d->impersonator, "\n", target, NULL);
}

/* An initiator credential over one cached ticket: MIT uses the matching
 * service ticket from the ccache without asking the KDC. */
static ready_cred *build_ready(apr_pool_t *p, kd_delegation *d, const char *key,
                               krb5_creds *creds)
{
    OM_uint32 major, minor, ignored;
    gss_buffer_desc namebuf;
    gss_name_t name = GSS_C_NO_NAME;
    gss_OID_set_desc krb5_only = {1, (gss_OID)gss_mech_krb5};
    krb5_ccache cc = NULL;
    char *full_name = NULL;
    ready_cred *c = calloc(1, sizeof(*c));

    if (c == NULL || (c->key = strdup(key)) == NULL
        || krb5_cc_new_unique(d->ctx, "MEMORY", NULL, &cc) != 0
        || krb5_cc_initialize(d->ctx, cc, creds->client) != 0
        || krb5_cc_store_cred(d->ctx, cc, creds) != 0
        || krb5_cc_get_full_name(d->ctx, cc, &full_name) != 0
        || (c->ccache = strdup(full_name)) == NULL)
        goto fail;
    namebuf.value = (void *)d->user;
    namebuf.length = strlen(d->user);
    if (GSS_ERROR(gss_import_name(&minor, &namebuf, GSS_KRB5_NT_PRINCIPAL_NAME, &name)))
        goto fail;
    gss_key_value_element_desc element = {"ccache", c->ccache};
    gss_key_value_set_desc store = {1, &element};
    major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &krb5_only, GSS_C_INITIATE,
                                  &store, &c->cred, NULL, NULL);
    gss_release_name(&ignored, &name);
    if (GSS_ERROR(major))
        goto fail;
    c->expires = apr_time_from_sec(creds->times.endtime - KD_TICKET_MARGIN_SEC);
    krb5_free_string(d->ctx, full_name);
    krb5_cc_close(d->ctx, cc); /* the MEMORY ccache lives on until destroyed */
    return c;
fail:
    if (full_name)
        krb5_free_string(d->ctx, full_name);
    if (cc)
        krb5_cc_destroy(d->ctx, cc);
    if (c) {
        free(c->ccache);
        c->ccache = NULL;
        ready_free(c);
    }
    return NULL;
}

/* target's ticket from this process's ready credentials, else from the
 * node's shared cache (made ready for the next requests). */
static ready_cred *load_cached(apr_pool_t *p, kd_delegation *d, const char *target)
{
    const char *key = ready_key(p, d, target);
    krb5_creds *creds = NULL;
    ready_cred *c = ready_borrow(p, key);

    if (c == NULL && delegation_ctx(d) != NULL
        && kd_ticket_cache_get(d->cache, p, d->ctx, d->user, d->impersonator, target, &creds)) {
        if ((c = build_ready(p, d, key, creds)) != NULL)
            c = ready_publish(p, c);
        krb5_free_creds(d->ctx, creds);
    }
    if (c)
        apr_hash_set(d->ready, apr_pstrdup(p, target), APR_HASH_KEY_STRING, c);
    return c;
}

/* Find the S4U2Proxy ticket for target in the evidence credential and
 * offer it to the node's cache. */
static void remember(apr_pool_t *p, kd_delegation *d, const char *target)
{
    krb5_ccache mem = NULL;
    krb5_principal user = NULL, server = NULL;
    krb5_cc_cursor cur;
    krb5_creds c;

    if (delegation_ctx(d) == NULL || krb5_parse_name(d->ctx, d->user, &user) != 0
        || krb5_parse_name(d->ctx, target, &server) != 0
        || cred_to_memory(d->ctx, d->cred, user, &mem) != 0
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

/* The credential to make target's token with: a ready one when the node
 * has the ticket, else the evidence credential (one S4U2Proxy request). */
static gss_cred_id_t cred_for(apr_pool_t *p, kd_delegation *d, const char *target)
{
    ready_cred *c;

    if (d->cache == NULL)
        return d->cred;
    if ((c = apr_hash_get(d->ready, target, APR_HASH_KEY_STRING)) != NULL
        || (c = load_cached(p, d, target)) != NULL)
        return c->cred;
    return d->cred;
}

kd_cause kd_s4u2proxy_ensure(apr_pool_t *p, kd_delegation *d, const char *target,
                             kd_result *res)
{
    unsigned char *token;
    size_t len;

    if (d->cache && cred_for(p, d, target) != d->cred)
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
        kd_result_fail(res, p, kd_cause_from_kdc_error((krb5_error_code)minor), "s4u2proxy",
                       "%s for %s to %s: %s", d->impersonator, d->user, target,
                       kd_gss_error(p, major, minor));
        if ((krb5_error_code)minor == KRB5KDC_ERR_BADOPTION)
            explain_badoption(p, d, target, res);
        cause = explain_cross_realm(p, d, target, res);
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
    ticket_flags tf = {0, 0, 0, 0};

    cred_flags(cred, user, impersonator, &tf);
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

/* Index of the target server names, or -1. */
static int target_index(krb5_context ctx, krb5_const_principal server, krb5_principal *targets,
                        int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (krb5_principal_compare(ctx, server, targets[i]))
            return i;
    }
    return -1;
}

/* Copy only the user's tickets for the targets: never the service's own
 * TGT or the evidence ticket, which also live in the delegation's cache. */
/* Copy only the user's tickets for the targets out of one source
 * credential: never the service's own TGT or the evidence ticket, which
 * live there too. stored[] marks targets already written (sources overlap). */
static krb5_error_code copy_target_tickets(krb5_context ctx, gss_cred_id_t source,
                                           krb5_ccache to, krb5_principal user,
                                           krb5_principal *targets, int n, int *stored,
                                           int *copied)
{
    krb5_ccache from;
    krb5_cc_cursor cur;
    krb5_creds creds;
    krb5_error_code code;

    if ((code = cred_to_memory(ctx, source, user, &from)) != 0)
        return code;
    if ((code = krb5_cc_start_seq_get(ctx, from, &cur)) == 0) {
        while ((code = krb5_cc_next_cred(ctx, from, &cur, &creds)) == 0) {
            int t = krb5_is_config_principal(ctx, creds.server) ? -1
                    : target_index(ctx, creds.server, targets, n);
            if (t >= 0 && !stored[t] && krb5_principal_compare(ctx, creds.client, user)) {
                code = krb5_cc_store_cred(ctx, to, &creds);
                stored[t] = 1;
                (*copied)++;
            }
            krb5_free_cred_contents(ctx, &creds);
            if (code != 0)
                break;
        }
        krb5_cc_end_seq_get(ctx, from, &cur);
    }
    krb5_cc_destroy(ctx, from);
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

/* krb5 reports any failed write as "Credentials cache I/O operation
 * failed"; the commonest reason deserves its own words. */
static const char *space_note(apr_pool_t *p, const char *dir)
{
    struct statvfs sv;
    unsigned long long free_bytes;

    if (statvfs(dir, &sv) != 0)
        return "";
    free_bytes = (unsigned long long)sv.f_bavail * sv.f_frsize;
    if (free_bytes >= 65536)
        return "";
    return apr_psprintf(p, "; No space left on device: %llu bytes free in %s", free_bytes, dir);
}

kd_cause kd_delegation_write_ccache(apr_pool_t *p, kd_delegation *d, const char *dir,
                                    const char *const *targets, int n_targets,
                                    const char **path, kd_result *res)
{
    krb5_context ctx;
    krb5_ccache file = NULL;
    krb5_principal user = NULL, *target_princs;
    krb5_error_code code;
    apr_hash_index_t *hi;
    int i, copied = 0, *stored;
    kd_cause cause = KD_CAUSE_NONE;

    if ((cause = new_ccache_file(p, dir, path, res)) != KD_CAUSE_NONE)
        return cause;
    if ((ctx = delegation_ctx(d)) == NULL)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "ccache", "cannot initialise krb5");
    target_princs = apr_pcalloc(p, sizeof(*target_princs) * (n_targets + 1));
    stored = apr_pcalloc(p, sizeof(*stored) * (n_targets + 1));
    if ((code = krb5_parse_name(ctx, d->user, &user)) != 0)
        goto done;
    for (i = 0; i < n_targets; i++) {
        if ((code = krb5_parse_name(ctx, targets[i], &target_princs[i])) != 0)
            goto done;
    }
    if ((code = krb5_cc_resolve(ctx, apr_pstrcat(p, "FILE:", *path, NULL), &file)) != 0
        || (code = krb5_cc_initialize(ctx, file, user)) != 0)
        goto done;
    /* sources: the tickets this request got from the KDC, then the ready ones */
    if (d->cred != GSS_C_NO_CREDENTIAL)
        code = copy_target_tickets(ctx, d->cred, file, user, target_princs, n_targets, stored,
                                   &copied);
    for (hi = apr_hash_first(p, d->ready); hi && code == 0; hi = apr_hash_next(hi))
        code = copy_target_tickets(ctx, ((const ready_cred *)apr_hash_this_val(hi))->cred, file,
                                   user, target_princs, n_targets, stored, &copied);

done:
    if (code != 0) {
        const char *msg = krb5_get_error_message(ctx, code);
        cause = kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "ccache",
                               "writing the credential cache for %s: %s%s", d->user, msg,
                               space_note(p, dir));
        krb5_free_error_message(ctx, msg);
    }
    else if (copied < n_targets)
        cause = kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "ccache",
                               "only %d of %d delegated tickets for %s were found", copied,
                               n_targets, d->user);
    if (file)
        krb5_cc_close(ctx, file);
    for (i = 0; i < n_targets; i++)
        krb5_free_principal(ctx, target_princs[i]);
    krb5_free_principal(ctx, user);
    return cause;
}
