#include "kd_s4u.h"

#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

#include "kd_credtab.h"
#include "kd_gss.h"
#include "kd_pac.h"
#include "kd_token.h"

struct kd_delegation {
    const char *user;           /* the user's principal, as the KDC names it */
    const char *key_user;       /* the name the user is cached under (as asked for) */
    const char *spn;            /* the identity the client named: cache keys, logs */
    const char *acting_as;      /* the account configured for spn, or NULL (the keytab's) */
    krb5_data evidence;         /* DER ticket for us; length 0: cache only */
    int evidence_forwardable;   /* 1, 0, or -1 until the ticket is read */
    kd_impersonator_fn get_impersonator;
    void *impersonator_baton;
    kd_impersonator imp;        /* valid once imp.account is set */
    const char *source;         /* "cache" or "kdc": where the last ticket came from */
    kd_ticket_cache *cache;     /* NULL: every target goes to the KDC */
    krb5_context ctx;           /* lazily, for krb5 work */
    apr_hash_t *ready;          /* target -> ready_cred borrowed for this request */
    int s4u2self;               /* the evidence came from S4U2Self (imp is set) */
    int logon_info_read;        /* kd_delegation_logon_info was asked */
    const kd_logon_info *logon_info;
    const char *logon_info_why;
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
    kd_credtab_entry base;   /* key: user, SPN and target */
    gss_cred_id_t cred;
    char *ccache;            /* the MEMORY ccache holding the ticket */
    apr_time_t expires;
} ready_cred;

static struct {
    kd_credtab *table;       /* key -> ready_cred*; its lock also guards: */
    /* Target without a realm -> its [domain_realm] realm ("" for none),
     * so requests do not ask the library each time. Bounded, since
     * targets come from the configuration. */
    apr_pool_t *pool;
    apr_hash_t *target_realms;
} ready_store;

#define KD_TARGET_REALMS_MAX 256

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
    free(c->base.key);
    free(c);
}

static void ready_free_cb(kd_credtab_entry *e, void *baton)
{
    (void)baton;
    ready_free((ready_cred *)e);
}

void kd_s4u_child_init(apr_pool_t *p)
{
    /* The tables grow at run time, from worker threads under lock: in a
     * pool of their own, which nothing else allocates from. */
    if (apr_pool_create(&ready_store.pool, p) == APR_SUCCESS
        && (ready_store.table = kd_credtab_create(ready_store.pool, KD_READY_MAX, ready_free_cb,
                                                  NULL)) != NULL)
        ready_store.target_realms = apr_hash_make(ready_store.pool);
}

/* Borrow the ready credential for key until pool p is cleared. */
static ready_cred *ready_borrow(apr_pool_t *p, const char *key)
{
    ready_cred *c;

    if (ready_store.table == NULL)
        return NULL;
    kd_credtab_lock(ready_store.table);
    c = (ready_cred *)kd_credtab_get(ready_store.table, key);
    if (c && c->expires <= apr_time_now()) {
        kd_credtab_retire(ready_store.table, &c->base);
        c = NULL;
    }
    if (c)
        kd_credtab_borrow(&c->base);
    kd_credtab_unlock(ready_store.table);
    if (c)
        kd_credtab_release_with(ready_store.table, &c->base, p);
    return c;
}

static apr_status_t ready_free_now(void *data)
{
    ready_free(data);
    return APR_SUCCESS;
}

/* Publish a new ready credential (taking ownership) and borrow it. */
static ready_cred *ready_publish(apr_pool_t *p, ready_cred *c)
{
    if (ready_store.table == NULL) { /* no table (unit tests): the request owns it */
        apr_pool_cleanup_register(p, c, ready_free_now, apr_pool_cleanup_null);
        return c;
    }
    kd_credtab_lock(ready_store.table);
    kd_credtab_install(ready_store.table, &c->base);
    kd_credtab_unlock(ready_store.table);
    kd_credtab_release_with(ready_store.table, &c->base, p);
    return c;
}

static apr_status_t delegation_cleanup(void *data)
{
    kd_delegation *d = data;

    if (d->ctx)
        krb5_free_context(d->ctx);
    return APR_SUCCESS;
}

static kd_delegation *delegation_new(apr_pool_t *p, const char *user, const char *spn)
{
    kd_delegation *d = apr_pcalloc(p, sizeof(*d));

    d->user = user;
    d->key_user = user;
    d->spn = spn;
    d->evidence_forwardable = -1;
    d->source = "cache";
    d->imp.account = "";
    d->ready = apr_hash_make(p);
    apr_pool_cleanup_register(p, d, delegation_cleanup, apr_pool_cleanup_null);
    return d;
}

kd_delegation *kd_delegation_from_ticket(apr_pool_t *p, const unsigned char *ticket,
                                         size_t ticket_len, const char *user, const char *spn,
                                         kd_impersonator_fn get_impersonator, void *baton)
{
    kd_delegation *d = delegation_new(p, user, spn);

    d->evidence.data = apr_pmemdup(p, ticket, ticket_len);
    d->evidence.length = (unsigned int)ticket_len;
    d->get_impersonator = get_impersonator;
    d->impersonator_baton = baton;
    return d;
}

kd_delegation *kd_delegation_cache_only(apr_pool_t *p, const char *user, const char *spn,
                                        kd_ticket_cache *cache)
{
    kd_delegation *d = delegation_new(p, user, spn);

    d->cache = cache;
    return d;
}

void kd_delegation_set_cache(kd_delegation *d, kd_ticket_cache *cache)
{
    d->cache = cache;
}

void kd_delegation_set_acting_as(kd_delegation *d, const char *account)
{
    d->acting_as = account;
}

/* The impersonator in cache keys: the SPN, and the account configured to
 * act for it. Without a configured account the SPN's own account acts
 * (the keytab's, which the directory fixes: an SPN has one account), so
 * the SPN alone names it on every node. */
static const char *impersonator_key(apr_pool_t *p, const kd_delegation *d)
{
    return d->acting_as ? apr_pstrcat(p, d->spn, " as ", d->acting_as, NULL) : d->spn;
}

const char *kd_delegation_user(const kd_delegation *d)
{
    return d->user;
}

const char *kd_delegation_impersonator(const kd_delegation *d)
{
    return d->imp.account;
}

const char *kd_delegation_source(const kd_delegation *d)
{
    return d->source;
}

static krb5_context delegation_ctx(kd_delegation *d)
{
    if (d->ctx == NULL && krb5_init_context(&d->ctx) != 0)
        d->ctx = NULL;
    return d->ctx;
}

static const char *krb5_text(apr_pool_t *p, krb5_context ctx, krb5_error_code code)
{
    const char *msg = krb5_get_error_message(ctx, code);
    const char *copy = apr_psprintf(p, "%s (%d)", msg, (int)code);

    krb5_free_error_message(ctx, msg);
    return copy;
}

static const char *target_realm(apr_pool_t *p, krb5_context ctx, const char *target);

/* A target written without a realm is in the realm its host maps to
 * ([domain_realm], as for any host-based name), else in the front end's
 * own: never in whatever default_realm says, which may be another realm. */
/* target_realm, remembered per process ("" when the host maps to none). */
static const char *mapped_realm(apr_pool_t *p, kd_delegation *d, const char *target)
{
    const char *realm = NULL;

    if (ready_store.target_realms == NULL) /* unit tests: no per-process state */
        return target_realm(p, delegation_ctx(d), target);
    kd_credtab_lock(ready_store.table);
    realm = apr_hash_get(ready_store.target_realms, target, APR_HASH_KEY_STRING);
    kd_credtab_unlock(ready_store.table);
    if (realm != NULL)
        return realm[0] ? realm : NULL;
    realm = target_realm(p, delegation_ctx(d), target);
    kd_credtab_lock(ready_store.table);
    if (apr_hash_count(ready_store.target_realms) < KD_TARGET_REALMS_MAX)
        apr_hash_set(ready_store.target_realms, apr_pstrdup(ready_store.pool, target),
                     APR_HASH_KEY_STRING, apr_pstrdup(ready_store.pool, realm ? realm : ""));
    kd_credtab_unlock(ready_store.table);
    return realm;
}

static const char *full_target(apr_pool_t *p, kd_delegation *d, const char *target)
{
    const char *realm;

    if (strchr(target, '@'))
        return target;
    if ((realm = mapped_realm(p, d, target)) == NULL && (realm = strrchr(d->spn, '@')) != NULL)
        realm++;
    return realm ? apr_pstrcat(p, target, "@", realm, NULL) : target;
}

/* ------------------------------------------------------------ reading our own tickets */

/* What a ticket issued to us says about delegating its client: the
 * forwardable flag, and from the PAC's logon-info (AD only) whether the
 * account is sensitive or in Protected Users. */
typedef struct {
    int decrypted;
    int forwardable;
    int has_logon_info;
    int not_delegable;
} ticket_facts;

static void read_logon_info(apr_pool_t *p, krb5_context ctx, const krb5_enc_tkt_part *enc,
                            ticket_facts *tf)
{
    krb5_authdata **pacs = NULL;
    const unsigned char *buf;
    size_t len;
    kd_logon_info li;
    const char *why;

    if (krb5_find_authdata(ctx, enc->authorization_data, NULL, KRB5_AUTHDATA_WIN2K_PAC, &pacs)
            != 0 || pacs == NULL || pacs[0] == NULL)
        goto done;
    if (kd_pac_buffer(pacs[0]->contents, pacs[0]->length, KD_PAC_LOGON_INFO, &buf, &len) == 0
        && kd_pac_logon_info(p, buf, len, &li, &why) == 0) {
        tf->has_logon_info = 1;
        tf->not_delegable = kd_logon_info_not_delegable(&li);
    }
done:
    krb5_free_authdata(ctx, pacs);
}

/* Decrypt a ticket issued to the impersonator (it is for our own key). */
static void read_ticket(apr_pool_t *p, krb5_context ctx, const krb5_data *der,
                        const char *keytab, ticket_facts *tf)
{
    krb5_ticket *tkt = NULL;
    krb5_keytab kt = NULL;

    memset(tf, 0, sizeof(*tf));
    if (keytab == NULL || krb5_decode_ticket(der, &tkt) != 0)
        return;
    if (krb5_kt_resolve(ctx, keytab, &kt) == 0
        && krb5_server_decrypt_ticket_keytab(ctx, kt, tkt) == 0) {
        tf->decrypted = 1;
        tf->forwardable = (tkt->enc_part2->flags & TKT_FLG_FORWARDABLE) != 0;
        read_logon_info(p, ctx, tkt->enc_part2, tf);
    }
    if (kt)
        krb5_kt_close(ctx, kt);
    krb5_free_ticket(ctx, tkt);
}

/* Does the PAC's server checksum verify under one of the keytab's keys of
 * the ticket's enctype? Only the KDC and we hold them. */
static int pac_verifies(krb5_context ctx, krb5_keytab kt, krb5_enctype etype, krb5_pac pac)
{
    krb5_kt_cursor cur;
    krb5_keytab_entry ent;
    int ok = 0;

    if (krb5_kt_start_seq_get(ctx, kt, &cur) != 0)
        return 0;
    while (!ok && krb5_kt_next_entry(ctx, kt, &ent, &cur) == 0) {
        /* no principal or authtime to compare: the KDC named the client
         * itself (enterprise names are spelled otherwise in the PAC) */
        ok = ent.key.enctype == etype && krb5_pac_verify(ctx, pac, 0, NULL, &ent.key, NULL) == 0;
        krb5_free_keytab_entry_contents(ctx, &ent);
    }
    krb5_kt_end_seq_get(ctx, kt, &cur);
    return ok;
}

/* The logon-info of a decrypted ticket's PAC, verified; NULL and *why. */
static const kd_logon_info *verified_logon_info(apr_pool_t *p, krb5_context ctx,
                                                krb5_keytab kt, const krb5_ticket *tkt,
                                                const char **why)
{
    krb5_authdata **pacs = NULL;
    krb5_pac pac = NULL;
    const unsigned char *buf;
    size_t len;
    kd_logon_info *li = NULL;
    const char *bad;

    if (krb5_find_authdata(ctx, tkt->enc_part2->authorization_data, NULL,
                           KRB5_AUTHDATA_WIN2K_PAC, &pacs) != 0 || pacs == NULL || pacs[0] == NULL)
        *why = "the S4U2Self ticket has no PAC (a KDC that is not Active Directory)";
    else if (pacs[1] != NULL)
        *why = "the S4U2Self ticket has two PACs";
    else if (krb5_pac_parse(ctx, pacs[0]->contents, pacs[0]->length, &pac) != 0
             || !pac_verifies(ctx, kt, tkt->enc_part.enctype, pac))
        *why = "the S4U2Self ticket's PAC does not verify under the keytab's keys";
    else if (kd_pac_buffer(pacs[0]->contents, pacs[0]->length, KD_PAC_LOGON_INFO, &buf, &len)
             != 0)
        *why = "the S4U2Self ticket's PAC has no single logon-info buffer";
    else {
        li = apr_palloc(p, sizeof(*li));
        if (kd_pac_logon_info(p, buf, len, li, &bad) != 0) {
            *why = apr_psprintf(p, "the S4U2Self ticket's PAC logon-info does not decode: %s",
                                bad);
            li = NULL;
        }
    }
    if (pac)
        krb5_pac_free(ctx, pac);
    krb5_free_authdata(ctx, pacs);
    return li;
}

static const kd_logon_info *s4u2self_logon_info(apr_pool_t *p, kd_delegation *d,
                                                const char **why)
{
    krb5_context ctx = delegation_ctx(d);
    krb5_ticket *tkt = NULL;
    krb5_keytab kt = NULL;
    const kd_logon_info *li = NULL;

    if (!d->s4u2self || d->evidence.length == 0 || d->imp.keytab == NULL) {
        *why = "no S4U2Self ticket in this delegation (a Kerberos user's groups come from the "
               "accepted ticket; tickets from the node's cache carry none)";
        return NULL;
    }
    if (ctx == NULL) {
        *why = "cannot initialise krb5";
        return NULL;
    }
    if (krb5_decode_ticket(&d->evidence, &tkt) != 0 || krb5_kt_resolve(ctx, d->imp.keytab, &kt) != 0
        || krb5_server_decrypt_ticket_keytab(ctx, kt, tkt) != 0)
        *why = "cannot decrypt the S4U2Self ticket with the impersonator's keytab";
    else
        li = verified_logon_info(p, ctx, kt, tkt, why);
    if (kt)
        krb5_kt_close(ctx, kt);
    krb5_free_ticket(ctx, tkt);
    return li;
}

const kd_logon_info *kd_delegation_logon_info(apr_pool_t *p, kd_delegation *d, const char **why)
{
    if (d == NULL) {
        if (why)
            *why = "no delegation";
        return NULL;
    }
    if (!d->logon_info_read) {
        d->logon_info_read = 1;
        d->logon_info = s4u2self_logon_info(p, d, &d->logon_info_why);
    }
    if (why)
        *why = d->logon_info ? NULL : d->logon_info_why;
    return d->logon_info;
}

/* ------------------------------------------------------------ S4U2Proxy */

static kd_cause need_impersonator(apr_pool_t *p, kd_delegation *d, kd_result *res)
{
    if (d->imp.account[0] != '\0')
        return KD_CAUSE_NONE;
    if (d->get_impersonator == NULL)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "s4u2proxy",
                              "no ticket for %s in the cache and no evidence to ask the KDC "
                              "with", d->user);
    return d->get_impersonator(d->impersonator_baton, p, &d->imp, res);
}

/* A refusal we can predict without the KDC: evidence it will not accept. */
static kd_cause check_evidence(apr_pool_t *p, kd_delegation *d, const char *target,
                               kd_result *res)
{
    ticket_facts tf;

    if (!d->imp.tgt_forwardable)
        return kd_result_fail(res, p, KD_CAUSE_SERVICE_TGT_NOT_FORWARDABLE, "s4u2proxy",
                              "the TGT of %s is not forwardable, so the KDC refuses every "
                              "S4U2Proxy request (for %s to %s)", d->imp.account, d->user,
                              target);
    if (d->evidence_forwardable < 0) {
        read_ticket(p, delegation_ctx(d), &d->evidence, d->imp.keytab, &tf);
        d->evidence_forwardable = tf.decrypted ? tf.forwardable : 1; /* let the KDC judge */
        if (!d->evidence_forwardable)
            return kd_result_fail(res, p, KD_CAUSE_USER_NOT_DELEGABLE, "s4u2proxy",
                                  "the ticket of %s for %s is not forwardable: %s",
                                  d->user, d->spn,
                                  tf.not_delegable
                                      ? "the account is sensitive and cannot be delegated, "
                                        "or is in Protected Users (its PAC says so)"
                                      : "the account is sensitive (-allow_forwardable / "
                                        "Protected Users) or the client's TGT is not "
                                        "forwardable (forwardable = true, kinit -f)");
    }
    return KD_CAUSE_NONE;
}

/* The KDC answers BADOPTION both for a target outside the allowed list
 * and for evidence it will not use; the evidence was checked before we
 * asked, so here it is the list. */
static void explain_refusal(apr_pool_t *p, kd_delegation *d, const char *target,
                            krb5_error_code code, kd_result *res)
{
    const char *text = krb5_text(p, d->ctx, code);

    res->krb5_code = code;
    if (code == KRB5KDC_ERR_BADOPTION)
        kd_result_fail(res, p, KD_CAUSE_DELEGATION_NOT_ALLOWED, "s4u2proxy",
                       "%s may not delegate %s to %s (msDS-AllowedToDelegateTo / "
                       "krbAllowedToDelegateTo): %s", d->imp.account, d->user, target, text);
    else
        kd_result_fail(res, p, kd_cause_from_kdc_error(code), "s4u2proxy",
                       "%s for %s to %s: %s", d->imp.account, d->user, target, text);
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
    const char *ours = strrchr(d->spn, '@'), *theirs;

    if (ours == NULL)
        return res->cause;
    theirs = target_realm(p, d->ctx, target);
    if (theirs == NULL || strcmp(theirs, ours + 1) == 0)
        return res->cause;
    return kd_result_fail(res, p, KD_CAUSE_CROSS_REALM_DELEGATION, "s4u2proxy",
                          "%s (realm %s) for %s to %s (realm %s): constrained delegation "
                          "crosses realms (SEC_E_CROSSREALM_DELEGATION_FAILURE 0x80090357); "
                          "the KDC said: %s", d->imp.account, ours + 1, d->user, target,
                          theirs, res->detail ? res->detail : kd_cause_name(res->cause));
}

/* One S4U2Proxy exchange: the impersonator's TGT, the evidence ticket as
 * the additional ticket, cname-in-addl-tkt. The library takes the client
 * (the impersonator) from in.client; the user is named only by the
 * evidence, so a TGT the client forwarded plays no part. */
static kd_cause proxy_from_kdc(apr_pool_t *p, kd_delegation *d, const char *target,
                               krb5_creds **out, kd_result *res)
{
    krb5_creds in;
    krb5_ccache cc = NULL;
    krb5_error_code code;

    *out = NULL;
    memset(&in, 0, sizeof(in));
    if (need_impersonator(p, d, res) != KD_CAUSE_NONE
        || check_evidence(p, d, target, res) != KD_CAUSE_NONE)
        return res->cause;
    if ((code = krb5_cc_resolve(d->ctx, d->imp.ccache, &cc)) != 0
        || (code = krb5_parse_name(d->ctx, d->imp.account, &in.client)) != 0
        || (code = krb5_parse_name(d->ctx, target, &in.server)) != 0) {
        kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "s4u2proxy", "%s to %s: %s",
                       d->imp.account, target, krb5_text(p, d->ctx, code));
        goto done;
    }
    in.second_ticket = d->evidence;
    code = krb5_get_credentials(d->ctx, KRB5_GC_CONSTRAINED_DELEGATION | KRB5_GC_NO_STORE, cc,
                                &in, out);
    if (code != 0) {
        explain_refusal(p, d, target, code, res);
        explain_cross_realm(p, d, target, res);
    }
done:
    in.second_ticket.data = NULL;
    in.second_ticket.length = 0;
    krb5_free_cred_contents(d->ctx, &in);
    if (cc)
        krb5_cc_close(d->ctx, cc);
    return res->cause;
}

/* ------------------------------------------------------------ ticket cache */

static const char *ready_key(apr_pool_t *p, const kd_delegation *d, const char *target)
{
    return apr_pstrcat(p, d->key_user, "\n", impersonator_key(p, d), "\n", target, NULL);
}

/* An initiator credential over one ticket: MIT uses the matching service
 * ticket from the ccache without asking the KDC. */
static ready_cred *build_ready(kd_delegation *d, const char *key, krb5_creds *creds)
{
    OM_uint32 major, minor, ignored;
    gss_buffer_desc namebuf;
    gss_name_t name = GSS_C_NO_NAME;
    gss_OID_set_desc krb5_only = {1, (gss_OID)gss_mech_krb5};
    krb5_ccache cc = NULL;
    char *full_name = NULL, *client = NULL;
    ready_cred *c = calloc(1, sizeof(*c));

    if (c == NULL || (c->base.key = strdup(key)) == NULL
        || krb5_cc_new_unique(d->ctx, "MEMORY", NULL, &cc) != 0
        || krb5_cc_initialize(d->ctx, cc, creds->client) != 0
        || krb5_cc_store_cred(d->ctx, cc, creds) != 0
        || krb5_cc_get_full_name(d->ctx, cc, &full_name) != 0
        || (c->ccache = strdup(full_name)) == NULL
        || krb5_unparse_name(d->ctx, creds->client, &client) != 0)
        goto fail;
    namebuf.value = client;
    namebuf.length = strlen(client);
    major = gss_import_name(&minor, &namebuf, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    if (GSS_ERROR(major))
        goto fail;
    gss_key_value_element_desc element = {"ccache", c->ccache};
    gss_key_value_set_desc store = {1, &element};
    major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &krb5_only, GSS_C_INITIATE,
                                  &store, &c->cred, NULL, NULL);
    gss_release_name(&ignored, &name);
    if (GSS_ERROR(major))
        goto fail;
    c->expires = apr_time_from_sec(kd_ticket_cache_usable_until(d->cache, creds));
    krb5_free_unparsed_name(d->ctx, client);
    krb5_free_string(d->ctx, full_name);
    krb5_cc_close(d->ctx, cc); /* the MEMORY ccache lives on until destroyed */
    return c;
fail:
    if (client)
        krb5_free_unparsed_name(d->ctx, client);
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

static ready_cred *make_ready(apr_pool_t *p, kd_delegation *d, const char *target,
                              krb5_creds *creds)
{
    ready_cred *c = build_ready(d, ready_key(p, d, target), creds);

    if (c != NULL) {
        c = ready_publish(p, c);
        apr_hash_set(d->ready, apr_pstrdup(p, target), APR_HASH_KEY_STRING, c);
    }
    return c;
}

/* target's ticket from this request, this process's ready credentials or
 * the node's shared cache (made ready for the next requests). */
static ready_cred *load_cached(apr_pool_t *p, kd_delegation *d, const char *target)
{
    krb5_creds *creds = NULL;
    ready_cred *c = apr_hash_get(d->ready, target, APR_HASH_KEY_STRING);

    if (c != NULL || d->cache == NULL)
        return c;
    if ((c = ready_borrow(p, ready_key(p, d, target))) != NULL) {
        apr_hash_set(d->ready, apr_pstrdup(p, target), APR_HASH_KEY_STRING, c);
        return c;
    }
    if (delegation_ctx(d) != NULL
        && kd_ticket_cache_get(d->cache, p, d->ctx, d->key_user, impersonator_key(p, d), target,
                               &creds)) {
        c = make_ready(p, d, target, creds);
        krb5_free_creds(d->ctx, creds);
    }
    return c;
}

/* The credential to make target's token with: from a cache, else from
 * one S4U2Proxy request (then offered to the node's cache). */
static kd_cause ready_for(apr_pool_t *p, kd_delegation *d, const char *target, ready_cred **out,
                          kd_result *res)
{
    krb5_creds *creds = NULL;

    if ((*out = load_cached(p, d, target)) != NULL) {
        d->source = "cache";
        return KD_CAUSE_NONE;
    }
    if (d->evidence.length == 0)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "s4u2proxy",
                              "no ticket for %s to %s in the cache and no evidence to ask the "
                              "KDC with", d->user, target);
    if (delegation_ctx(d) == NULL)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "s4u2proxy",
                              "cannot initialise krb5");
    d->source = "kdc";
    if (proxy_from_kdc(p, d, target, &creds, res) != KD_CAUSE_NONE)
        return res->cause;
    kd_ticket_cache_put(d->cache, p, d->ctx, d->key_user, impersonator_key(p, d), target, creds);
    *out = make_ready(p, d, target, creds);
    krb5_free_creds(d->ctx, creds);
    if (*out == NULL)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "s4u2proxy",
                              "cannot hold the ticket of %s for %s", d->user, target);
    return KD_CAUSE_NONE;
}

kd_cause kd_s4u2proxy_ensure(apr_pool_t *p, kd_delegation *d, const char *target,
                             kd_result *res)
{
    ready_cred *c;

    return ready_for(p, d, full_target(p, d, target), &c, res);
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

kd_cause kd_s4u2proxy(apr_pool_t *p, kd_delegation *d, const char *target,
                      unsigned char **token, size_t *token_len, kd_result *res)
{
    OM_uint32 major, minor, ignored;
    gss_name_t name = GSS_C_NO_NAME;
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
    ready_cred *c;

    target = full_target(p, d, target);
    if (ready_for(p, d, target, &c, res) != KD_CAUSE_NONE
        || import_target(p, target, &name, res) != KD_CAUSE_NONE)
        return res->cause;
    /* The Kerberos mechanism directly: its minor codes stay krb5's. */
    major = gss_init_sec_context(&minor, c->cred, &ctx, name, (gss_OID)gss_mech_krb5, 0,
                                 GSS_C_INDEFINITE, GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER,
                                 NULL, &out, NULL, NULL);
    if (GSS_ERROR(major)) {
        res->gss_major = major;
        res->krb5_code = (krb5_error_code)minor;
        kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "s4u2proxy",
                       "a token for %s to %s from its ticket: %s", d->user, target,
                       kd_gss_error(p, major, minor));
    }
    else
        kd_token_spnego_wrap(p, out.value, out.length, token, token_len);
    gss_release_buffer(&ignored, &out);
    if (ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&ignored, &ctx, GSS_C_NO_BUFFER);
    gss_release_name(&ignored, &name);
    return res->cause;
}

/* ------------------------------------------------------------ S4U2Self */

kd_user_name kd_s4u_user_name(apr_pool_t *p, const char *user, const char *default_realm,
                              const char *impersonator_realm, const apr_table_t *netbios)
{
    kd_user_name out = {user, 0, NULL};
    const char *backslash = strchr(user, '\\'), *at = strrchr(user, '@');

    if (user[0] == '\0')
        out.error = "an empty user name";
    else if (backslash) {
        const char *domain = apr_pstrndup(p, user, (apr_size_t)(backslash - user));
        const char *realm = netbios ? apr_table_get(netbios, domain) : NULL;
        if (realm == NULL || backslash[1] == '\0' || strchr(backslash + 1, '\\') || at)
            out.error = apr_psprintf(p, "the NetBIOS domain %s is not mapped to a realm "
                                     "(KdelegNetbiosDomain %s REALM)", domain, domain);
        else
            out.principal = apr_pstrcat(p, backslash + 1, "@", realm, NULL);
    }
    else if (at && (impersonator_realm || default_realm)
             && (impersonator_realm == NULL || strcasecmp(at + 1, impersonator_realm) != 0)
             && (default_realm == NULL || strcasecmp(at + 1, default_realm) != 0))
        out.enterprise = 1; /* alice@corp.example: the KDC maps the UPN suffix */
    else if (at && (impersonator_realm || default_realm)) /* alice@ad.example.test */
        out.principal = apr_pstrcat(p, apr_pstrndup(p, user, (apr_size_t)(at - user)), "@",
                                    impersonator_realm && strcasecmp(at + 1, impersonator_realm)
                                        == 0 ? impersonator_realm : default_realm, NULL);
    else if (default_realm)
        out.principal = apr_pstrcat(p, user, "@", default_realm, NULL);
    return out;
}

/* S4U2Self by the library's own routine: exported by libkrb5 (version
 * krb5_3_MIT, since 1.8; kvno -U uses it) but declared only in MIT's
 * private k5-int.h. It resolves enterprise names by referral and returns
 * the KDC's error codes unchanged, which the GSS wrapper does not. */
krb5_error_code KRB5_CALLCONV krb5_get_credentials_for_user(krb5_context context,
                                                            krb5_flags options,
                                                            krb5_ccache ccache,
                                                            krb5_creds *in_creds,
                                                            krb5_data *subject_cert,
                                                            krb5_creds **out_creds);

static kd_cause s4u2self_request(apr_pool_t *p, krb5_context ctx, const kd_impersonator *imp,
                                 const kd_user_name *user, krb5_creds **out, kd_result *res)
{
    krb5_creds in;
    krb5_ccache cc = NULL;
    krb5_error_code code;
    kd_cause cause;

    *out = NULL;
    memset(&in, 0, sizeof(in));
    if ((code = krb5_cc_resolve(ctx, imp->ccache, &cc)) != 0
        || (code = krb5_parse_name_flags(ctx, user->principal,
                                         user->enterprise ? KRB5_PRINCIPAL_PARSE_ENTERPRISE : 0,
                                         &in.client)) != 0
        || (code = krb5_parse_name(ctx, imp->account, &in.server)) != 0) {
        cause = kd_result_fail(res, p, KD_CAUSE_USER_UNKNOWN, "s4u2self", "S4U2Self for %s: %s",
                               user->principal, krb5_text(p, ctx, code));
        goto done;
    }
    code = krb5_get_credentials_for_user(ctx, KRB5_GC_NO_STORE | KRB5_GC_CANONICALIZE, cc, &in,
                                         NULL, out);
    res->krb5_code = code;
    cause = code == 0 ? KD_CAUSE_NONE
                      : kd_result_fail(res, p, kd_cause_from_s4u2self_error(code), "s4u2self",
                                       "S4U2Self as %s for %s%s: %s", imp->account,
                                       user->principal, user->enterprise ? " (enterprise name)"
                                                                         : "",
                                       krb5_text(p, ctx, code));
done:
    krb5_free_cred_contents(ctx, &in);
    if (cc)
        krb5_cc_close(ctx, cc);
    return cause;
}

/* A day: long enough to outlive any ticket, short enough to notice when
 * an administrator withdraws protocol transition. */
#define KD_TRANSITION_FACT_SEC 86400

/* Why a S4U2Self ticket came back without the forwardable flag. */
static kd_cause explain_not_forwardable(apr_pool_t *p, krb5_context ctx,
                                        const kd_impersonator *imp, const char *user,
                                        const krb5_data *ticket, int seen, kd_result *res)
{
    ticket_facts tf;

    if (!imp->tgt_forwardable)
        return kd_result_fail(res, p, KD_CAUSE_SERVICE_TGT_NOT_FORWARDABLE, "s4u2self",
                              "the S4U2Self ticket of %s for %s is not forwardable because "
                              "the TGT of %s is not", user, imp->account, imp->account);
    read_ticket(p, ctx, ticket, imp->keytab, &tf);
    if (tf.has_logon_info ? tf.not_delegable : seen)
        return kd_result_fail(res, p, KD_CAUSE_USER_NOT_DELEGABLE, "s4u2self",
                              "the S4U2Self ticket of %s for %s is not forwardable: %s", user,
                              imp->account,
                              tf.has_logon_info
                                  ? "the account is sensitive and cannot be delegated, or is "
                                    "in Protected Users (its PAC says so)"
                                  : "the account is not delegable (others get forwardable "
                                    "tickets)");
    return kd_result_fail(res, p, KD_CAUSE_PROTOCOL_TRANSITION_NOT_ALLOWED, "s4u2self",
                          "the S4U2Self ticket of %s for %s is not forwardable: %s may not use "
                          "protocol transition%s", user, imp->account, imp->account,
                          tf.has_logon_info ? " (the user's PAC allows delegation)"
                                            : " (a sensitive user gets the same answer: if "
                                              "others work, this account is not delegable)");
}

kd_cause kd_s4u2self(apr_pool_t *p, const kd_impersonator *imp, const char *spn,
                     const kd_user_name *user, volatile int *transition_seen,
                     kd_ticket_cache *cache, kd_delegation **out, kd_result *res)
{
    const char *fact = apr_pstrcat(p, "protocol-transition ", imp->account, NULL);
    krb5_context ctx;
    krb5_creds *creds = NULL;
    char *canonical = NULL;
    kd_cause cause;

    *out = NULL;
    if (user->error)
        return kd_result_fail(res, p, KD_CAUSE_USER_UNKNOWN, "s4u2self", "%s: %s",
                              user->principal, user->error);
    if (krb5_init_context(&ctx) != 0)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "s4u2self",
                              "cannot initialise krb5");
    if ((cause = s4u2self_request(p, ctx, imp, user, &creds, res)) != KD_CAUSE_NONE)
        goto done;
    if (krb5_unparse_name(ctx, creds->client, &canonical) != 0) {
        cause = kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "s4u2self", "out of memory");
        goto done;
    }
    if (creds->ticket_flags & TKT_FLG_FORWARDABLE) {
        if (!*transition_seen && cache)
            kd_ticket_cache_note(cache, p, fact, KD_TRANSITION_FACT_SEC);
        *transition_seen = 1;
        *out = kd_delegation_from_ticket(p, (const unsigned char *)creds->ticket.data,
                                         creds->ticket.length, apr_pstrdup(p, canonical), spn,
                                         NULL, NULL);
        (*out)->key_user = user->principal; /* erin.x@corp.example stays cached as asked */
        (*out)->imp = *imp;
        (*out)->evidence_forwardable = 1;
        (*out)->s4u2self = 1;
    }
    else
        cause = explain_not_forwardable(p, ctx, imp, canonical, &creds->ticket,
                                        *transition_seen
                                            || (cache && kd_ticket_cache_noted(cache, p, fact)),
                                        res);
done:
    if (canonical)
        krb5_free_unparsed_name(ctx, canonical);
    krb5_free_creds(ctx, creds);
    krb5_free_context(ctx);
    return cause;
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

/* Copy the user's tickets for the targets out of one ready credential's
 * MEMORY ccache. stored[] marks targets already written (sources overlap). */
static krb5_error_code copy_target_tickets(krb5_context ctx, const char *source,
                                           krb5_ccache to, krb5_principal *targets, int n,
                                           int *stored, int *copied)
{
    krb5_ccache from;
    krb5_cc_cursor cur;
    krb5_creds creds;
    krb5_error_code code;

    if ((code = krb5_cc_resolve(ctx, source, &from)) != 0)
        return code;
    if ((code = krb5_cc_start_seq_get(ctx, from, &cur)) == 0) {
        while ((code = krb5_cc_next_cred(ctx, from, &cur, &creds)) == 0) {
            int t = krb5_is_config_principal(ctx, creds.server) ? -1
                    : target_index(ctx, creds.server, targets, n);
            if (t >= 0 && !stored[t]) {
                /* the cache belongs to the user the KDC named (canonical) */
                if (*copied == 0)
                    code = krb5_cc_initialize(ctx, to, creds.client);
                if (code == 0)
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
    krb5_cc_close(ctx, from);
    return code == KRB5_CC_END ? 0 : code;
}

static kd_cause new_ccache_file(apr_pool_t *p, const char *dir, const char *tag,
                                const char **path, kd_result *res)
{
    apr_file_t *f;
    char *tmpl = apr_pstrcat(p, dir, "/" KD_CCACHE_PREFIX, tag ? tag : "", tag ? "_" : "",
                             "XXXXXX", NULL);
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
    apr_uint64_t free_bytes;

    if (statvfs(dir, &sv) != 0)
        return "";
    free_bytes = (apr_uint64_t)sv.f_bavail * sv.f_frsize;
    if (free_bytes >= 65536)
        return "";
    /* APR's formatter has no %llu: its own 64-bit format */
    return apr_psprintf(p, "; No space left on device: %" APR_UINT64_T_FMT " bytes free in %s",
                        free_bytes, dir);
}

kd_cause kd_delegation_write_ccache(apr_pool_t *p, kd_delegation *d, const char *dir,
                                    const char *tag, const char *const *targets, int n_targets,
                                    const char **path, kd_result *res)
{
    krb5_context ctx;
    krb5_ccache file = NULL;
    krb5_principal *target_princs;
    krb5_error_code code = 0;
    apr_hash_index_t *hi;
    int i, copied = 0, *stored;
    kd_cause cause = KD_CAUSE_NONE;

    if ((cause = new_ccache_file(p, dir, tag, path, res)) != KD_CAUSE_NONE)
        return cause;
    if ((ctx = delegation_ctx(d)) == NULL)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "ccache", "cannot initialise krb5");
    target_princs = apr_pcalloc(p, sizeof(*target_princs) * (n_targets + 1));
    stored = apr_pcalloc(p, sizeof(*stored) * (n_targets + 1));
    for (i = 0; i < n_targets; i++) {
        if ((code = krb5_parse_name(ctx, full_target(p, d, targets[i]), &target_princs[i])) != 0)
            goto done;
    }
    if ((code = krb5_cc_resolve(ctx, apr_pstrcat(p, "FILE:", *path, NULL), &file)) != 0)
        goto done;
    /* every ticket this request uses is a ready credential by now */
    for (hi = apr_hash_first(p, d->ready); hi && code == 0; hi = apr_hash_next(hi))
        code = copy_target_tickets(ctx, ((const ready_cred *)apr_hash_this_val(hi))->ccache, file,
                                   target_princs, n_targets, stored, &copied);

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
    return cause;
}
