#include "kd_accept.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_file_info.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <profile.h>

#include "kd_base64.h"
#include "kd_gss.h"
#include "kd_log.h"

/* Acceptor credentials for one principal, valid for one state of the
 * keytab file. Reference-counted so a keytab change never releases a
 * credential another thread is still accepting with. */
typedef struct {
    gss_cred_id_t cred;
    apr_time_t mtime;
    apr_time_t ctime;   /* chmod/chown too: every child then judges the same file */
    apr_ino_t inode;
    apr_off_t size;
    unsigned refs;
    int stale;
    char *key;          /* principal, plus a marker for impersonator entries */
    char *ccache;       /* impersonator: MEMORY ccache with the service's TGT */
    char *memkt;        /* MEMORY keytab: the file's keys, loaded when it changes */
    krb5_keytab memkt_handle; /* keeps that keytab alive while the entry is */
    apr_time_t expires; /* impersonator: when that TGT expires */
    volatile int transition_seen; /* impersonator: had a forwardable S4U2Self ticket */
    int no_rcache;      /* replays are checked by the caller, not by MIT's rcache */
} cred_entry;

/* Re-acquire the service's TGT this long before it expires, so no request
 * starts S4U2Proxy with a ticket about to lapse. */
#define KD_TGT_RENEW_BEFORE apr_time_from_sec(300)

struct kd_acceptor {
    krb5_context ctx;           /* the registry's, used under lock only */
    const char *keytab;
    apr_thread_mutex_t *lock;
    apr_hash_t *creds;          /* key -> cred_entry*, guarded by lock */
    unsigned long acquisitions; /* guarded by lock */
    unsigned generation;        /* names MEMORY ccaches/keytabs; guarded by lock */
    int clockskew;              /* libdefaults clockskew, seconds */
};

struct kd_acceptors {
    apr_pool_t *pool;
    /* Lives as long as the process: it keeps libkrb5's parsed krb5.conf
     * shared, so the contexts GSS makes per call do not re-read it. */
    krb5_context ctx;
    apr_thread_mutex_t *lock;
    apr_hash_t *by_keytab;      /* path -> kd_acceptor*, guarded by lock */
    int clockskew;
};

/* A MEMORY ccache lives until destroyed: drop the service's TGT with it. */
static void destroy_ccache(const char *name)
{
    krb5_context ctx;
    krb5_ccache cc;

    if (name == NULL || krb5_init_context(&ctx) != 0)
        return;
    if (krb5_cc_resolve(ctx, name, &cc) == 0)
        krb5_cc_destroy(ctx, cc);
    krb5_free_context(ctx);
}

static void entry_free(kd_acceptor *a, cred_entry *e)
{
    OM_uint32 min;

    gss_release_cred(&min, &e->cred);
    destroy_ccache(e->ccache);
    if (e->memkt_handle && a->ctx)
        krb5_kt_close(a->ctx, e->memkt_handle);
    free(e->memkt);
    free(e->ccache);
    free(e->key);
    free(e);
}

static apr_status_t acceptor_cleanup(void *data)
{
    kd_acceptor *a = data;
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, a->creds); hi; hi = apr_hash_next(hi))
        entry_free(a, apr_hash_this_val(hi));
    apr_hash_clear(a->creds);
    return APR_SUCCESS;
}

static apr_status_t free_context(void *ctx)
{
    krb5_free_context(ctx);
    return APR_SUCCESS;
}

kd_acceptors *kd_acceptors_create(apr_pool_t *p)
{
    kd_acceptors *reg = apr_pcalloc(p, sizeof(*reg));

    reg->pool = p;
    reg->by_keytab = apr_hash_make(p);
    apr_thread_mutex_create(&reg->lock, APR_THREAD_MUTEX_DEFAULT, p);
    reg->clockskew = 300;
    if (krb5_init_context(&reg->ctx) == 0) {
        profile_t profile;
        apr_pool_cleanup_register(p, reg->ctx, free_context, apr_pool_cleanup_null);
        if (krb5_get_profile(reg->ctx, &profile) == 0) {
            profile_get_integer(profile, "libdefaults", "clockskew", NULL, 300, &reg->clockskew);
            profile_release(profile);
        }
    }
    else
        reg->ctx = NULL;
    return reg;
}

kd_acceptor *kd_acceptors_get(kd_acceptors *reg, const char *keytab)
{
    kd_acceptor *a;

    apr_thread_mutex_lock(reg->lock);
    a = apr_hash_get(reg->by_keytab, keytab, APR_HASH_KEY_STRING);
    if (a == NULL) {
        a = apr_pcalloc(reg->pool, sizeof(*a));
        a->ctx = reg->ctx;
        a->clockskew = reg->clockskew;
        a->keytab = apr_pstrdup(reg->pool, keytab);
        a->creds = apr_hash_make(reg->pool);
        apr_thread_mutex_create(&a->lock, APR_THREAD_MUTEX_DEFAULT, reg->pool);
        apr_pool_cleanup_register(reg->pool, a, acceptor_cleanup, apr_pool_cleanup_null);
        apr_hash_set(reg->by_keytab, a->keytab, APR_HASH_KEY_STRING, a);
    }
    apr_thread_mutex_unlock(reg->lock);
    return a;
}

unsigned long kd_acceptor_acquisitions(const kd_acceptor *a)
{
    return a->acquisitions;
}

/* Acquire credentials for one principal from the keytab only: acceptor
 * credentials, or (impersonator) acceptor + initiator credentials whose
 * own TGT comes from the same keytab (client_keytab) into a MEMORY ccache
 * of their own, so VIP and node identities never share one. */
/* Copy the keytab file into a MEMORY keytab: krb5_rd_req then finds keys
 * without opening, locking and parsing the file on every request. The
 * file's changes are still noticed (by stat) and reload the copy. */
static krb5_error_code load_memory_keytab(kd_acceptor *a, apr_pool_t *p, cred_entry *e)
{
    krb5_keytab file = NULL, mem = NULL;
    krb5_kt_cursor cur;
    krb5_keytab_entry ent;
    krb5_error_code code;
    char name[96];

    if (a->ctx == NULL)
        return KRB5_CONFIG_BADFORMAT;
    snprintf(name, sizeof(name), "MEMORY:kdeleg-kt-%p-%u", (void *)a, ++a->generation);
    if ((code = krb5_kt_resolve(a->ctx, apr_pstrcat(p, "FILE:", a->keytab, NULL),
                                &file)) != 0)
        return code;
    if ((code = krb5_kt_resolve(a->ctx, name, &mem)) != 0
        || (code = krb5_kt_start_seq_get(a->ctx, file, &cur)) != 0)
        goto done;
    while ((code = krb5_kt_next_entry(a->ctx, file, &ent, &cur)) == 0) {
        code = krb5_kt_add_entry(a->ctx, mem, &ent);
        krb5_free_keytab_entry_contents(a->ctx, &ent);
        if (code != 0)
            break;
    }
    krb5_kt_end_seq_get(a->ctx, file, &cur);
    if (code == KRB5_KT_END)
        code = 0;
done:
    krb5_kt_close(a->ctx, file);
    if (code == 0 && (e->memkt = strdup(name)) != NULL) {
        e->memkt_handle = mem;
        return 0;
    }
    if (mem)
        krb5_kt_close(a->ctx, mem);
    return code ? code : ENOMEM;
}

static void add_element(gss_key_value_set_desc *store, const char *key, const char *value)
{
    gss_key_value_element_desc *el = (gss_key_value_element_desc *)&store->elements[store->count++];

    el->key = key;
    el->value = value;
}

static kd_cause acquire(kd_acceptor *a, apr_pool_t *p, const char *principal, cred_entry *e,
                        kd_result *res)
{
    OM_uint32 major, minor, ignored, lifetime = 0;
    gss_buffer_desc namebuf;
    gss_name_t name = GSS_C_NO_NAME;
    gss_OID_set_desc krb5_only = {1, (gss_OID)gss_mech_krb5};
    const char *keytab = load_memory_keytab(a, p, e) == 0 ? e->memkt : a->keytab;
    gss_key_value_element_desc elements[4];
    gss_key_value_set_desc store = {0, elements};

    add_element(&store, "keytab", keytab);
    if (e->no_rcache)
        add_element(&store, "rcache", "none:");
    if (e->ccache) {
        add_element(&store, "client_keytab", keytab);
        add_element(&store, "ccache", e->ccache);
    }
    namebuf.value = (void *)principal;
    namebuf.length = strlen(principal);
    major = gss_import_name(&minor, &namebuf, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    if (GSS_ERROR(major))
        return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "acquire",
                              "cannot parse principal %s: %s", principal,
                              kd_gss_error(p, major, minor));
    major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &krb5_only,
                                  e->ccache ? GSS_C_BOTH : GSS_C_ACCEPT, &store, &e->cred,
                                  NULL, NULL);
    gss_release_name(&ignored, &name);
    if (GSS_ERROR(major)) {
        res->gss_major = major;
        res->krb5_code = (krb5_error_code)minor;
        if (e->ccache) {
            kd_cause cause = kd_cause_from_kdc_error((krb5_error_code)minor);
            /* GSS_S_NO_CRED: the keytab has no key for the principal (the
             * minor code is then a GSS-krb5 one, not a krb5 one) */
            if (cause == KD_CAUSE_INTERNAL_ERROR && GSS_ROUTINE_ERROR(major) == GSS_S_NO_CRED)
                cause = KD_CAUSE_KEYTAB_UNUSABLE;
            /* The KDC refused the service itself as a client: not a user
             * problem. Active Directory does this for SPNs. */
            if ((krb5_error_code)minor == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN)
                return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "impersonator",
                                      "the KDC refuses a TGT to %s: Active Directory issues "
                                      "TGTs to the service account (sAMAccountName), not to an "
                                      "SPN: %s", principal, kd_gss_error(p, major, minor));
            return kd_result_fail(res, p, cause, "impersonator",
                                  "cannot get a TGT for %s from keytab %s: %s", principal,
                                  a->keytab, kd_gss_error(p, major, minor));
        }
        return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "acquire",
                              "no acceptor key for %s in keytab %s: %s", principal, a->keytab,
                              kd_gss_error(p, major, minor));
    }
    if (e->ccache) {
        gss_inquire_cred(&ignored, e->cred, NULL, &lifetime, NULL, NULL);
        e->expires = apr_time_now() + apr_time_from_sec(lifetime);
    }
    a->acquisitions++;
    kd_log(KD_LOG_DEBUG, "acquired %s credentials for %s from %s",
           e->ccache ? "impersonator" : "acceptor", principal, a->keytab);
    return KD_CAUSE_NONE;
}

static int tgt_expiring(const cred_entry *e)
{
    return e->ccache && e->expires - apr_time_now() < KD_TGT_RENEW_BEFORE;
}

static int keytab_changed(const cred_entry *e, const apr_finfo_t *fi)
{
    return e->mtime != fi->mtime || e->ctime != fi->ctime || e->inode != fi->inode
           || e->size != fi->size;
}

/* Drop an entry from the table; free it now or when its last user is done. */
static void retire(kd_acceptor *a, cred_entry *e)
{
    apr_hash_set(a->creds, e->key, APR_HASH_KEY_STRING, NULL);
    e->stale = 1;
    if (e->refs == 0)
        entry_free(a, e);
}

static cred_entry *new_entry(kd_acceptor *a, const char *key, int impersonator, int no_rcache)
{
    cred_entry *e = calloc(1, sizeof(*e));

    if (e == NULL || (e->key = strdup(key)) == NULL) {
        free(e);
        return NULL;
    }
    e->no_rcache = no_rcache;
    if (impersonator) {
        char name[96];
        snprintf(name, sizeof(name), "MEMORY:kdeleg-%p-%u", (void *)a, ++a->generation);
        if ((e->ccache = strdup(name)) == NULL) {
            free(e->key);
            free(e);
            return NULL;
        }
    }
    return e;
}

static kd_cause get_cred(kd_acceptor *a, apr_pool_t *p, const char *principal, int impersonator,
                         int no_rcache, cred_entry **out, kd_result *res)
{
    apr_finfo_t fi;
    apr_status_t rv;
    cred_entry *e;
    const char *key = apr_pstrcat(p, principal, impersonator ? " +impersonator" : "",
                                  no_rcache ? " +no-rcache" : "", NULL);

    rv = apr_stat(&fi, a->keytab,
                  APR_FINFO_MTIME | APR_FINFO_CTIME | APR_FINFO_INODE | APR_FINFO_SIZE, p);
    if (rv != APR_SUCCESS) {
        char errbuf[128];
        return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "acquire", "keytab %s: %s",
                              a->keytab, apr_strerror(rv, errbuf, sizeof(errbuf)));
    }
    apr_thread_mutex_lock(a->lock);
    e = apr_hash_get(a->creds, key, APR_HASH_KEY_STRING);
    if (e != NULL && keytab_changed(e, &fi)) {
        kd_log(KD_LOG_INFO, "keytab %s changed: re-acquiring credentials for %s", a->keytab, key);
        retire(a, e);
        e = NULL;
    }
    else if (e != NULL && tgt_expiring(e)) {
        kd_log(KD_LOG_INFO, "service TGT of %s expires soon: renewing it from %s", principal,
               a->keytab);
        retire(a, e);
        e = NULL;
    }
    if (e == NULL) {
        if ((e = new_entry(a, key, impersonator, no_rcache)) == NULL) {
            apr_thread_mutex_unlock(a->lock);
            return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "acquire", "out of memory");
        }
        /* Failures are not cached: a fixed keytab must work on the next request. */
        if (acquire(a, p, principal, e, res) != KD_CAUSE_NONE) {
            entry_free(a, e);
            apr_thread_mutex_unlock(a->lock);
            return res->cause;
        }
        e->mtime = fi.mtime;
        e->ctime = fi.ctime;
        e->inode = fi.inode;
        e->size = fi.size;
        apr_hash_set(a->creds, e->key, APR_HASH_KEY_STRING, e);
    }
    e->refs++;
    apr_thread_mutex_unlock(a->lock);
    *out = e;
    return KD_CAUSE_NONE;
}

static void put_cred(kd_acceptor *a, cred_entry *e)
{
    apr_thread_mutex_lock(a->lock);
    if (--e->refs == 0 && e->stale)
        entry_free(a, e);
    apr_thread_mutex_unlock(a->lock);
}

static const char *configured_spns(apr_pool_t *p, const kd_accept_params *params)
{
    const char *list = NULL;
    int i;

    for (i = 0; i < params->n_spns; i++) {
        const char *one = kd_spn_unparse(p, &params->spns[i]);
        list = list ? apr_pstrcat(p, list, " ", one, NULL) : one;
    }
    return list ? list : "(none)";
}

static int spn_allowed(const kd_token_info *info, const kd_accept_params *params)
{
    int i;

    for (i = 0; i < params->n_spns; i++) {
        if (kd_spn_matches(&params->spns[i], info->ticket_sname, info->ticket_realm))
            return 1;
    }
    return 0;
}

/* Fill the caller-visible results from an established context. */
static kd_cause describe_client(apr_pool_t *p, gss_name_t src, gss_OID mech,
                                const kd_accept_params *params, kd_accept_out *out,
                                kd_result *res)
{
    OM_uint32 major, minor, ignored;
    gss_buffer_desc buf = GSS_C_EMPTY_BUFFER;

    major = gss_display_name(&minor, src, &buf, NULL);
    if (GSS_ERROR(major))
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "accept",
                              "cannot display client name: %s", kd_gss_error(p, major, minor));
    out->client_principal = kd_gss_buffer_str(p, &buf);
    gss_release_buffer(&ignored, &buf);
    if (params->want_local_name) {
        major = gss_localname(&minor, src, mech, &buf);
        if (!GSS_ERROR(major)) {
            out->local_name = kd_gss_buffer_str(p, &buf);
            gss_release_buffer(&ignored, &buf);
        }
    }
    return KD_CAUSE_NONE;
}

/* With delegation wanted, accept with impersonator credentials so MIT
 * composes an S4U2Proxy evidence credential; if those cannot be had (KDC
 * down, no TGT), authentication still works and the reason is kept. */
static kd_cause get_accept_cred(kd_acceptor *a, apr_pool_t *p, const kd_accept_params *params,
                                kd_accept_out *out, cred_entry **entry, kd_result *res)
{
    if (params->want_delegation
        && get_cred(a, p, out->spn, 1, params->replay_checked, entry, &out->delegation_failure)
               == KD_CAUSE_NONE)
        return KD_CAUSE_NONE;
    return get_cred(a, p, out->spn, 0, params->replay_checked, entry, res);
}

/* Turn what accept delegated into an evidence credential, or say why not. */
static void keep_evidence(apr_pool_t *p, const cred_entry *entry, gss_cred_id_t deleg,
                          kd_accept_out *out)
{
    const char *impersonator = NULL;
    OM_uint32 ignored;

    if (!entry->ccache)
        return; /* the failure is already recorded */
    if (deleg == GSS_C_NO_CREDENTIAL) {
        kd_result_fail(&out->delegation_failure, p, KD_CAUSE_USER_NOT_DELEGABLE, "accept",
                       "the ticket of %s for %s is not forwardable: the account is sensitive "
                       "(-allow_forwardable / Protected Users) or the client's TGT is not "
                       "forwardable (forwardable = true in its krb5.conf, kinit -f)",
                       out->client_principal, out->spn);
        return;
    }
    if (!kd_is_evidence_credential(p, deleg, &impersonator)) {
        gss_release_cred(&ignored, &deleg);
        kd_result_fail(&out->delegation_failure, p, KD_CAUSE_USER_NOT_DELEGABLE, "accept",
                       "%s forwarded its TGT (unconstrained delegation), which mod_kdeleg never "
                       "uses; turn delegation off for this site in the client",
                       out->client_principal);
        return;
    }
    out->delegation = kd_delegation_wrap(p, deleg, out->client_principal, impersonator);
}

kd_cause kd_acceptor_accept(kd_acceptor *a, apr_pool_t *p, const kd_token_info *info,
                            const kd_accept_params *params, kd_accept_out *out, kd_result *res)
{
    OM_uint32 major, minor, ignored, flags = 0, lifetime = 0;
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc in, reply = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    gss_cred_id_t deleg = GSS_C_NO_CREDENTIAL;
    cred_entry *entry = NULL;
    kd_cause cause = KD_CAUSE_NONE;

    memset(out, 0, sizeof(*out));
    kd_result_init(&out->delegation_failure);
    if (!info->has_ap_req)
        return kd_result_fail(res, p, KD_CAUSE_MALFORMED_TOKEN, "accept", "no Kerberos AP-REQ");
    out->spn = kd_token_ticket_principal(p, info);
    if (!spn_allowed(info, params))
        return kd_result_fail(res, p, KD_CAUSE_WRONG_SPN, "accept",
                              "ticket is for %s; this host answers for %s", out->spn,
                              configured_spns(p, params));
    if (get_accept_cred(a, p, params, out, &entry, res) != KD_CAUSE_NONE)
        return res->cause;

    /* The Kerberos token itself, not its SPNEGO wrapper: through SPNEGO the
     * mechglue renumbers krb5 minor codes and causes could not be told apart. */
    in.value = (void *)info->krb5_token;
    in.length = info->krb5_token_len;
    major = gss_accept_sec_context(&minor, &ctx, entry->cred, &in, GSS_C_NO_CHANNEL_BINDINGS,
                                   &src, &mech, &reply, &flags, &lifetime,
                                   entry->ccache ? &deleg : NULL);
    if (GSS_ERROR(major)) {
        res->gss_major = major;
        res->krb5_code = (krb5_error_code)minor;
        cause = kd_result_fail(res, p, kd_cause_from_accept_error(major, (krb5_error_code)minor),
                               "accept", "ticket for %s (kvno %d, enctype %d): %s", out->spn,
                               (int)info->ticket_kvno, (int)info->ticket_etype,
                               kd_gss_error(p, major, minor));
        goto done;
    }
    if (major & GSS_S_CONTINUE_NEEDED) {
        cause = kd_result_fail(res, p, KD_CAUSE_MALFORMED_TOKEN, "accept",
                               "the client started a multi-round exchange, which HTTP "
                               "Negotiate with Kerberos never needs");
        goto done;
    }
    cause = describe_client(p, src, mech, params, out, res);
    /* A session made from this exchange must not outlive the client's
     * ticket. MIT reports the ticket's remaining time plus the clock skew
     * allowance as the context lifetime: take the allowance off. */
    out->ticket_seconds_left = (lifetime == GSS_C_INDEFINITE || lifetime <= (OM_uint32)a->clockskew)
                                   ? 0 : (long)lifetime - a->clockskew;
    if (cause == KD_CAUSE_NONE) {
        unsigned char *wire;
        size_t wire_len;
        kd_token_reply(p, info, reply.value, reply.length, &wire, &wire_len);
        if (wire_len > 0)
            out->mutual_token = kd_b64_encode(p, wire, wire_len);
        if (params->want_delegation) {
            keep_evidence(p, entry, deleg, out);
            deleg = GSS_C_NO_CREDENTIAL; /* owned by out->delegation or released */
        }
    }

done:
    gss_release_cred(&ignored, &deleg);
    gss_release_buffer(&ignored, &reply);
    gss_release_name(&ignored, &src);
    if (ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&ignored, &ctx, GSS_C_NO_BUFFER);
    put_cred(a, entry);
    return cause;
}

kd_cause kd_acceptor_s4u2self(kd_acceptor *a, apr_pool_t *p, const char *principal,
                              const char *user, kd_ticket_cache *cache, kd_delegation **out,
                              kd_result *res)
{
    cred_entry *entry;
    kd_cause cause;

    *out = NULL;
    if (get_cred(a, p, principal, 1, 0, &entry, res) != KD_CAUSE_NONE)
        return res->cause;
    cause = kd_s4u2self(p, entry->cred, principal, user, &entry->transition_seen, cache, out,
                        res);
    put_cred(a, entry);
    return cause;
}
