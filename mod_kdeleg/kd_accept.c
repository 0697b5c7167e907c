#include "kd_accept.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_atomic.h>
#include <apr_file_info.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <profile.h>

#include "kd_apreq.h"
#include "kd_base64.h"
#include "kd_credtab.h"
#include "kd_gss.h"
#include "kd_keytab.h"
#include "kd_log.h"

/* Acceptor credentials for one principal, valid for one state of the
 * keytab file. Reference-counted so a keytab change never releases a
 * credential another thread is still accepting with. */
typedef struct {
    kd_credtab_entry base; /* key: principal ignoring case, plus what makes it
                            * another credential */
    gss_cred_id_t cred;
    apr_time_t mtime;
    apr_time_t ctime;   /* chmod/chown too: every child then judges the same file */
    apr_ino_t inode;
    apr_off_t size;
    char *principal;    /* the SPN as the keytab spells it */
    char *ccache;       /* impersonator: MEMORY ccache with the service's TGT */
    char *account;      /* impersonator: the principal that TGT was taken as */
    int tgt_forwardable; /* impersonator: S4U2Proxy needs a forwardable TGT */
    char *memkt;        /* MEMORY keytab: the file's keys, loaded when it changes */
    krb5_keytab memkt_handle; /* keeps that keytab alive while the entry is */
    apr_time_t expires; /* impersonator: when that TGT expires */
    volatile int transition_seen; /* impersonator: had a forwardable S4U2Self ticket */
    int no_rcache;      /* replays are checked by the caller, not by MIT's rcache */
} cred_entry;

/* Re-acquire the service's TGT this long before it expires, so no request
 * starts S4U2Proxy with a ticket about to lapse. */
#define KD_TGT_RENEW_BEFORE apr_time_from_sec(300)

/* More than the threads of a child (ThreadsPerChild 25 by default): a
 * context beyond this is freed after its request. */
#define KD_SPARE_CONTEXTS 64

struct kd_acceptor {
    krb5_context ctx;           /* this acceptor's own, used under its lock only */
    const char *keytab;
    kd_credtab *table;          /* its lock guards what follows; never held across KDC I/O */
    apr_hash_t *held;           /* key -> held_failure*, guarded by lock */
    /* The keytab's names, re-read when the file changes; guarded by lock.
     * Its pool has an allocator of its own, cleared under lock. */
    apr_pool_t *index_pool;
    kd_keytab_index *index;
    const char *index_error;    /* why index is NULL (in index_pool or static) */
    apr_finfo_t index_stamp;
    unsigned long acquisitions; /* guarded by lock */
    /* Fetching the service's own TGT (KDC I/O): one at a time per keytab,
     * with a context of its own used under fetch_lock only. */
    apr_thread_mutex_t *fetch_lock;
    krb5_context fetch_ctx;
    volatile apr_uint32_t generation; /* names MEMORY ccaches/keytabs */
    int clockskew;              /* libdefaults clockskew, seconds */
    /* Contexts for accepting with libkrb5 directly (kd_apreq), lent to one
     * thread at a time: a context is not safe for concurrent use, and
     * making one per request is what this saves. Guarded by lock. */
    krb5_context spare[KD_SPARE_CONTEXTS];
    int n_spare;
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
    free(e->account);
    free(e->base.key);
    free(e->principal);
    free(e);
}

static void entry_free_cb(kd_credtab_entry *e, void *baton)
{
    entry_free(baton, (cred_entry *)e);
}

static void held_clear(kd_acceptor *a);

static apr_status_t acceptor_cleanup(void *data)
{
    kd_acceptor *a = data;

    if (a->table)
        kd_credtab_clear(a->table);
    held_clear(a);
    while (a->n_spare > 0)
        krb5_free_context(a->spare[--a->n_spare]);
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

static void index_pool_create(kd_acceptor *a, apr_pool_t *parent)
{
    apr_allocator_t *allocator;

    if (apr_allocator_create(&allocator) != APR_SUCCESS)
        return;
    if (apr_pool_create_ex(&a->index_pool, parent, NULL, allocator) != APR_SUCCESS) {
        apr_allocator_destroy(allocator);
        a->index_pool = NULL;
        return;
    }
    apr_allocator_owner_set(allocator, a->index_pool);
}

kd_acceptor *kd_acceptors_get(kd_acceptors *reg, const char *keytab)
{
    kd_acceptor *a;

    apr_thread_mutex_lock(reg->lock);
    a = apr_hash_get(reg->by_keytab, keytab, APR_HASH_KEY_STRING);
    if (a == NULL) {
        a = apr_pcalloc(reg->pool, sizeof(*a));
        /* Its own context: contexts are not safe for concurrent use, and
         * acceptors of different keytabs work under different locks. */
        if (krb5_init_context(&a->ctx) == 0)
            apr_pool_cleanup_register(reg->pool, a->ctx, free_context, apr_pool_cleanup_null);
        else
            a->ctx = NULL;
        if (krb5_init_context(&a->fetch_ctx) == 0)
            apr_pool_cleanup_register(reg->pool, a->fetch_ctx, free_context,
                                      apr_pool_cleanup_null);
        else
            a->fetch_ctx = NULL;
        a->clockskew = reg->clockskew;
        a->keytab = apr_pstrdup(reg->pool, keytab);
        a->table = kd_credtab_create(reg->pool, 0, entry_free_cb, a);
        a->held = apr_hash_make(reg->pool);
        apr_thread_mutex_create(&a->fetch_lock, APR_THREAD_MUTEX_DEFAULT, reg->pool);
        index_pool_create(a, reg->pool);
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

/* Copy the keytab file into a MEMORY keytab: krb5_rd_req then finds keys
 * without opening, locking and parsing the file on every request. The
 * file's changes are still noticed (by stat) and reload the copy. When the
 * file has no entry for principal but one for host/<its host>, those keys
 * are added under principal too: a computer account's keytab (WEB2$,
 * host/web2) serves HTTP/web2 as Active Directory maps HTTP to HOST. */
static krb5_error_code load_memory_keytab(kd_acceptor *a, krb5_context ctx, apr_pool_t *p,
                                          cred_entry *e)
{
    krb5_keytab file = NULL, mem = NULL;
    krb5_principal spn = NULL, host = NULL;
    kd_keytab_identity id = {NULL, 0, 0};
    krb5_error_code code;
    char name[96];

    snprintf(name, sizeof(name), "MEMORY:kdeleg-kt-%p-%u", (void *)a,
             (unsigned)apr_atomic_inc32(&a->generation));
    if ((code = krb5_kt_resolve(ctx, apr_pstrcat(p, "FILE:", a->keytab, NULL), &file)) != 0)
        return code;
    if ((code = krb5_kt_resolve(ctx, name, &mem)) != 0)
        goto done;
    if (krb5_parse_name(ctx, e->principal, &spn) == 0
        && kd_keytab_identify(ctx, file, spn, &id) == 0 && id.host_alias)
        kd_keytab_host_principal(ctx, spn, &host);
    code = kd_keytab_copy(ctx, file, mem, host, spn);
done:
    kd_keytab_identity_free(ctx, &id);
    krb5_free_principal(ctx, spn);
    krb5_free_principal(ctx, host);
    krb5_kt_close(ctx, file);
    if (code == 0 && (e->memkt = strdup(name)) != NULL) {
        e->memkt_handle = mem;
        return 0;
    }
    if (mem)
        krb5_kt_close(ctx, mem);
    return code ? code : ENOMEM;
}

static void add_element(gss_key_value_set_desc *store, const char *key, const char *value)
{
    gss_key_value_element_desc *el = (gss_key_value_element_desc *)&store->elements[store->count++];

    el->key = key;
    el->value = value;
}

/* Acceptor credentials pinned to the entry's principal, from the MEMORY keytab. */
static kd_cause acquire_acceptor(kd_acceptor *a, apr_pool_t *p, const char *keytab,
                                 cred_entry *e, kd_result *res)
{
    OM_uint32 major, minor, ignored;
    gss_buffer_desc namebuf;
    gss_name_t name = GSS_C_NO_NAME;
    gss_OID_set_desc krb5_only = {1, (gss_OID)gss_mech_krb5};
    gss_key_value_element_desc elements[2];
    gss_key_value_set_desc store = {0, elements};

    add_element(&store, "keytab", keytab);
    if (e->no_rcache)
        add_element(&store, "rcache", "none:");
    namebuf.value = (void *)e->principal;
    namebuf.length = strlen(e->principal);
    major = gss_import_name(&minor, &namebuf, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    if (GSS_ERROR(major))
        return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "acquire",
                              "cannot parse principal %s: %s", e->principal,
                              kd_gss_error(p, major, minor));
    major = gss_acquire_cred_from(&minor, name, GSS_C_INDEFINITE, &krb5_only, GSS_C_ACCEPT,
                                  &store, &e->cred, NULL, NULL);
    gss_release_name(&ignored, &name);
    if (GSS_ERROR(major)) {
        res->gss_major = major;
        res->krb5_code = (krb5_error_code)minor;
        return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "acquire",
                              "no acceptor key for %s in keytab %s: %s", e->principal, a->keytab,
                              kd_gss_error(p, major, minor));
    }
    return KD_CAUSE_NONE;
}

/* Who asks the KDC for spn's S4U tickets: the configured account, the
 * keytab's account entry with spn's key, or spn itself. */
static char *impersonator_name(kd_acceptor *a, krb5_context ctx, apr_pool_t *p, const char *spn,
                               const char *account)
{
    krb5_keytab kt = NULL;
    krb5_principal princ = NULL;
    kd_keytab_identity id = {NULL, 0, 0};
    char *name = NULL, *full = NULL;

    if (krb5_parse_name(ctx, account ? account : spn, &princ) != 0)
        return strdup(account ? account : spn);
    if (!account && krb5_kt_resolve(ctx, apr_pstrcat(p, "FILE:", a->keytab, NULL), &kt) == 0
        && kd_keytab_identify(ctx, kt, princ, &id) == 0 && id.account)
        name = strdup(id.account);
    /* else the name as configured, with the realm it gets (for the logs) */
    if (name == NULL && krb5_unparse_name(ctx, princ, &full) == 0) {
        name = strdup(full);
        krb5_free_unparsed_name(ctx, full);
    }
    kd_keytab_identity_free(ctx, &id);
    krb5_free_principal(ctx, princ);
    if (kt)
        krb5_kt_close(ctx, kt);
    return name ? name : strdup(account ? account : spn);
}

static kd_cause tgt_failure(kd_acceptor *a, krb5_context ctx, apr_pool_t *p, const cred_entry *e,
                            krb5_error_code code, kd_result *res)
{
    const char *msg = krb5_get_error_message(ctx, code);
    const char *text = apr_psprintf(p, "%s (%d)", msg, (int)code);
    kd_cause cause = kd_cause_from_kdc_error(code);

    krb5_free_error_message(ctx, msg);
    res->krb5_code = code;
    if (code == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN)
        return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "impersonator",
                              "the KDC knows no client %s: Active Directory issues TGTs to the "
                              "service account (sAMAccountName, e.g. websvc or WEB1$), not to "
                              "an SPN; put the account's entry in keytab %s (ktpass -princ, "
                              "samba-tool domain exportkeytab --principal=ACCOUNT) or name it "
                              "with KdelegServiceAccount: %s", e->account, a->keytab, text);
    if (cause == KD_CAUSE_INTERNAL_ERROR)
        cause = KD_CAUSE_KEYTAB_UNUSABLE;
    return kd_result_fail(res, p, cause, "impersonator", "cannot get a TGT for %s from keytab %s: %s",
                          e->account, a->keytab, text);
}

/* The front end's own TGT, asked forwardable (S4U2Proxy needs it), into a
 * MEMORY ccache of this entry's own, so VIP and node identities never
 * share one. */
static kd_cause acquire_impersonator(kd_acceptor *a, krb5_context ctx, apr_pool_t *p,
                                     const char *keytab, cred_entry *e, kd_result *res)
{
    krb5_keytab kt = NULL;
    krb5_principal client = NULL;
    krb5_get_init_creds_opt *opt = NULL;
    krb5_ccache cc = NULL;
    krb5_creds creds;
    krb5_error_code code;

    memset(&creds, 0, sizeof(creds));
    if ((code = krb5_kt_resolve(ctx, keytab, &kt)) != 0
        || (code = krb5_parse_name(ctx, e->account, &client)) != 0
        || (code = krb5_get_init_creds_opt_alloc(ctx, &opt)) != 0)
        goto done;
    krb5_get_init_creds_opt_set_forwardable(opt, 1);
    if ((code = krb5_get_init_creds_keytab(ctx, &creds, client, kt, 0, NULL, opt)) != 0
        || (code = krb5_cc_resolve(ctx, e->ccache, &cc)) != 0
        || (code = krb5_cc_initialize(ctx, cc, client)) != 0
        || (code = krb5_cc_store_cred(ctx, cc, &creds)) != 0)
        goto done;
    e->tgt_forwardable = (creds.ticket_flags & TKT_FLG_FORWARDABLE) != 0;
    e->expires = apr_time_from_sec(creds.times.endtime);
done:
    if (cc)
        krb5_cc_close(ctx, cc);
    krb5_free_cred_contents(ctx, &creds);
    krb5_get_init_creds_opt_free(ctx, opt);
    krb5_free_principal(ctx, client);
    if (kt)
        krb5_kt_close(ctx, kt);
    return code == 0 ? KD_CAUSE_NONE : tgt_failure(a, ctx, p, e, code, res);
}

static kd_cause acquire(kd_acceptor *a, krb5_context ctx, apr_pool_t *p, cred_entry *e,
                        kd_result *res)
{
    const char *keytab = load_memory_keytab(a, ctx, p, e) == 0 ? e->memkt : a->keytab;
    kd_cause cause = e->ccache ? acquire_impersonator(a, ctx, p, keytab, e, res)
                               : acquire_acceptor(a, p, keytab, e, res);

    if (cause != KD_CAUSE_NONE)
        return cause;
    kd_log(KD_LOG_DEBUG, "acquired %s credentials for %s%s%s from %s",
           e->ccache ? "impersonator" : "acceptor", e->principal, e->ccache ? " as " : "",
           e->ccache ? e->account : "", a->keytab);
    return KD_CAUSE_NONE;
}

static int tgt_expiring(const cred_entry *e)
{
    return e->ccache && e->expires - apr_time_now() < KD_TGT_RENEW_BEFORE;
}

static int keytab_changed_since(const apr_finfo_t *then, const apr_finfo_t *now)
{
    return then->mtime != now->mtime || then->ctime != now->ctime || then->inode != now->inode
           || then->size != now->size;
}

static int keytab_changed(const cred_entry *e, const apr_finfo_t *fi)
{
    return e->mtime != fi->mtime || e->ctime != fi->ctime || e->inode != fi->inode
           || e->size != fi->size;
}

/* principal: as the keytab spells it (keytab_spelling) */
static cred_entry *new_entry(kd_acceptor *a, krb5_context ctx, apr_pool_t *p, const char *key,
                             const char *principal, int impersonator, const char *account,
                             int no_rcache)
{
    cred_entry *e = calloc(1, sizeof(*e));

    if (e == NULL || (e->base.key = strdup(key)) == NULL) {
        free(e);
        return NULL;
    }
    e->no_rcache = no_rcache;
    if ((e->principal = strdup(principal)) == NULL) {
        entry_free(a, e);
        return NULL;
    }
    if (impersonator) {
        char name[96];
        snprintf(name, sizeof(name), "MEMORY:kdeleg-%p-%u", (void *)a,
                 (unsigned)apr_atomic_inc32(&a->generation));
        e->ccache = strdup(name);
        e->account = impersonator_name(a, ctx, p, e->principal, account);
        if (e->ccache == NULL || e->account == NULL) {
            entry_free(a, e);
            return NULL;
        }
    }
    return e;
}

/* Table key: the principal ignoring case (a client may spell its ticket's
 * sname as it likes; one entry serves every spelling), plus what makes
 * another credential of it. */
static const char *entry_key(apr_pool_t *p, const char *principal, int impersonator,
                             const char *account, int no_rcache)
{
    char *lower = apr_pstrdup(p, principal), *c;

    for (c = lower; *c; c++)
        *c = (char)apr_tolower(*c);
    return apr_pstrcat(p, lower, impersonator ? " +impersonator" : "", account ? " as " : "",
                       account ? account : "", no_rcache ? " +no-rcache" : "", NULL);
}

static void put_cred_locked(kd_acceptor *a, cred_entry *e)
{
    kd_credtab_release_locked(a->table, &e->base);
}

static void put_cred(kd_acceptor *a, cred_entry *e)
{
    kd_credtab_release(a->table, &e->base);
}

/* Under lock: key's entry if it still serves, with a reference taken. An
 * impersonator whose TGT is close to expiry comes back as *expiring
 * instead (also referenced): usable while a new TGT is fetched. */
static cred_entry *take_current(kd_acceptor *a, const char *key, const apr_finfo_t *fi,
                                cred_entry **expiring)
{
    cred_entry *e = (cred_entry *)kd_credtab_get(a->table, key);

    *expiring = NULL;
    if (e != NULL && keytab_changed(e, fi)) {
        kd_log(KD_LOG_INFO, "keytab %s changed: re-acquiring credentials for %s", a->keytab, key);
        kd_credtab_retire(a->table, &e->base);
        return NULL;
    }
    if (e != NULL && tgt_expiring(e)) {
        if (e->expires > apr_time_now()) {
            kd_credtab_borrow(&e->base);
            *expiring = e;
        }
        else
            kd_credtab_retire(a->table, &e->base);
        return NULL;
    }
    if (e != NULL)
        kd_credtab_borrow(&e->base);
    return e;
}

/* Under lock: e becomes key's entry, replacing (retiring) any other. */
static void install(kd_acceptor *a, cred_entry *e, const apr_finfo_t *fi)
{
    const cred_entry *old = (const cred_entry *)kd_credtab_get(a->table, e->base.key);

    /* a new TGT (renewal, the health check's probe) of the same account
     * keeps what its predecessor learnt about that account's rights */
    if (old != NULL && e->account != NULL && old->account != NULL
        && strcmp(old->account, e->account) == 0)
        e->transition_seen = old->transition_seen;
    e->mtime = fi->mtime;
    e->ctime = fi->ctime;
    e->inode = fi->inode;
    e->size = fi->size;
    a->acquisitions++;
    kd_credtab_install(a->table, &e->base);
}

/* Under lock: the index of the keytab's names as of fi, re-read only
 * when the file changed; NULL and *err when it cannot be read. */
static const kd_keytab_index *index_current(kd_acceptor *a, const apr_finfo_t *fi,
                                            const char **err)
{
    *err = NULL;
    if (a->index_pool == NULL) {
        *err = "out of memory";
        return NULL;
    }
    /* a file that did not read is not read again until it changes */
    if ((a->index == NULL && a->index_error == NULL)
        || keytab_changed_since(&a->index_stamp, fi)) {
        apr_pool_clear(a->index_pool);
        a->index_error = NULL;
        a->index = kd_keytab_index_read(a->index_pool, a->ctx, a->keytab, &a->index_error);
        if (a->index == NULL && a->index_error == NULL)
            a->index_error = "unreadable";
        a->index_stamp = *fi;
    }
    *err = a->index_error;
    return a->index;
}

/* Under lock: the keytab's spelling of principal ("svc/host@realm"),
 * from the index, which is re-read only when the file changed. NULL when
 * the keytab lacks it; *elsewhere then says it has it in another realm,
 * *err that it could not be read. */
static const char *keytab_spelling(kd_acceptor *a, apr_pool_t *p, const char *principal,
                                   const apr_finfo_t *fi, int *elsewhere, const char **err)
{
    const char *slash = strchr(principal, '/'), *at = strrchr(principal, '@');

    *elsewhere = 0;
    if (index_current(a, fi, err) == NULL)
        return NULL;
    if (slash == NULL || at == NULL || at < slash)
        return NULL;
    return kd_keytab_index_spelling(a->index, p, apr_pstrmemdup(p, principal,
                                                                (apr_size_t)(slash - principal)),
                                    apr_pstrmemdup(p, slash + 1, (apr_size_t)(at - slash - 1)),
                                    at + 1, elsewhere);
}

/* Why the keytab cannot serve principal: the client's ticket names a realm
 * the keytab has no key of it in, or the keytab lacks it altogether. */
static kd_cause not_in_keytab(kd_acceptor *a, apr_pool_t *p, const char *principal,
                              int elsewhere, const char *err, kd_result *res)
{
    if (err != NULL)
        return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "acquire", "keytab %s: %s",
                              a->keytab, err);
    if (elsewhere)
        return kd_result_fail(res, p, KD_CAUSE_WRONG_SPN, "accept",
                              "ticket is for %s; keytab %s has that service only in another "
                              "realm", principal, a->keytab);
    return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "acquire",
                          "keytab %s has no key for %s (nor for its host/ alias)", a->keytab,
                          principal);
}

/* Under lock: acceptor credentials come from the keytab alone, no KDC.
 * Failures are not cached: a fixed keytab must work on the next request. */
static kd_cause add_acceptor(kd_acceptor *a, apr_pool_t *p, const char *key,
                             const char *principal, int no_rcache, const apr_finfo_t *fi,
                             cred_entry **out, kd_result *res)
{
    const char *spelling, *err;
    int elsewhere;
    cred_entry *e;

    if ((spelling = keytab_spelling(a, p, principal, fi, &elsewhere, &err)) == NULL)
        return not_in_keytab(a, p, principal, elsewhere, err, res);
    if ((e = new_entry(a, a->ctx, p, key, spelling, 0, NULL, no_rcache)) == NULL)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "acquire", "out of memory");
    if (acquire(a, a->ctx, p, e, res) != KD_CAUSE_NONE) {
        entry_free(a, e);
        return res->cause;
    }
    install(a, e, fi);
    *out = e;
    return KD_CAUSE_NONE;
}

/* ---------------------------------------------- the service's own TGT */

/* A KDC that did not answer for the service's own TGT is not asked again
 * for this long, so requests fail at once instead of each waiting out the
 * library's timeouts. Only "unreachable" after a wait is held: a refusal
 * is the KDC's answer, and a fix there must work on the next request; a
 * KDC that is down refuses connections at once, and asking it again costs
 * nothing, so it is asked again on the next request. */
#define KD_TGT_FAILURE_HOLD apr_time_from_sec(30)
#define KD_TGT_WAIT_WORTH_HOLDING apr_time_from_sec(1)

typedef struct {
    char *key;          /* also the table's key */
    apr_time_t since;
    kd_cause cause;
    krb5_error_code code;
    char *detail;
} held_failure;

static void held_free(held_failure *h)
{
    if (h != NULL) {
        free(h->key);
        free(h->detail);
    }
    free(h);
}

static void held_clear(kd_acceptor *a)
{
    apr_hash_index_t *hi;

    for (hi = apr_hash_first(NULL, a->held); hi; hi = apr_hash_next(hi))
        held_free(apr_hash_this_val(hi));
    apr_hash_clear(a->held);
}

/* Under lock: the failure held for key, as this request's result. */
static kd_cause held_result(kd_acceptor *a, apr_pool_t *p, const char *key, kd_result *res)
{
    held_failure *h = apr_hash_get(a->held, key, APR_HASH_KEY_STRING);
    apr_time_t age;

    if (h == NULL || (age = apr_time_now() - h->since) >= KD_TGT_FAILURE_HOLD || age < 0)
        return KD_CAUSE_NONE;
    res->krb5_code = h->code;
    return kd_result_fail(res, p, h->cause, "impersonator",
                          "%s (held: not asking the KDC again for %" APR_TIME_T_FMT " s)",
                          h->detail, apr_time_sec(KD_TGT_FAILURE_HOLD - age) + 1);
}

/* Under lock: remember a KDC that did not answer for key (res, after
 * waiting that long); forget it on success or any other outcome. */
static void hold_failure(kd_acceptor *a, const char *key, const kd_result *res,
                         apr_interval_time_t waited)
{
    held_failure *h = apr_hash_get(a->held, key, APR_HASH_KEY_STRING);

    if (res == NULL || res->cause != KD_CAUSE_KDC_UNREACHABLE
        || waited < KD_TGT_WAIT_WORTH_HOLDING) {
        if (h != NULL) {
            apr_hash_set(a->held, key, APR_HASH_KEY_STRING, NULL);
            held_free(h);
        }
        return;
    }
    if (h == NULL) {
        if ((h = calloc(1, sizeof(*h))) == NULL || (h->key = strdup(key)) == NULL) {
            free(h);
            return;
        }
        apr_hash_set(a->held, h->key, APR_HASH_KEY_STRING, h);
    }
    free(h->detail);
    h->detail = strdup(res->detail ? res->detail : "");
    h->since = apr_time_now();
    h->cause = res->cause;
    h->code = res->krb5_code;
}

/* Under the fetch lock: ask the KDC, outside the table lock. */
static cred_entry *fetch_tgt(kd_acceptor *a, apr_pool_t *p, const char *key,
                             const char *principal, const char *account, const apr_finfo_t *fi,
                             kd_result *res)
{
    cred_entry *e = new_entry(a, a->fetch_ctx, p, key, principal, 1, account, 0);
    apr_time_t started = apr_time_now();
    kd_cause cause;

    if (e == NULL)
        cause = kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "acquire", "out of memory");
    else
        cause = acquire(a, a->fetch_ctx, p, e, res);
    kd_credtab_lock(a->table);
    hold_failure(a, key, cause == KD_CAUSE_NONE ? NULL : res, apr_time_now() - started);
    if (cause == KD_CAUSE_NONE)
        install(a, e, fi);
    else if (e != NULL) {
        entry_free(a, e);
        e = NULL;
    }
    kd_credtab_unlock(a->table);
    return e;
}

/* The service's own TGT. Getting one is KDC I/O, so it happens outside
 * the table lock every login takes, and one request per keytab at a time
 * does it: a KDC that does not answer is waited for once, and the others
 * find its failure held. A TGT about to expire serves while it lasts. */
static kd_cause fetch_impersonator(kd_acceptor *a, apr_pool_t *p, const char *key,
                                   const char *principal, const char *account,
                                   const apr_finfo_t *fi, cred_entry *old, cred_entry **out,
                                   kd_result *res)
{
    cred_entry *e = NULL, *ignored;
    kd_cause held = KD_CAUSE_NONE;
    const char *spelling = NULL, *err;
    int elsewhere;

    /* renewing is best effort while the old TGT lasts: never wait for it */
    if ((old ? apr_thread_mutex_trylock(a->fetch_lock)
             : apr_thread_mutex_lock(a->fetch_lock)) != APR_SUCCESS) {
        *out = old;
        return old ? KD_CAUSE_NONE
                   : kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "acquire", "lock failed");
    }
    kd_credtab_lock(a->table);
    /* another request may have fetched it while this one waited */
    if ((e = take_current(a, key, fi, &ignored)) == NULL && ignored != NULL)
        put_cred_locked(a, ignored);
    if (e == NULL)
        held = held_result(a, p, key, res);
    if (e == NULL && held == KD_CAUSE_NONE)
        spelling = keytab_spelling(a, p, principal, fi, &elsewhere, &err);
    kd_credtab_unlock(a->table);
    if (spelling == NULL)
        spelling = principal; /* MIT: the SPN itself, as configured */
    if (e == NULL && held == KD_CAUSE_NONE)
        e = fetch_tgt(a, p, key, spelling, account, fi, res);
    apr_thread_mutex_unlock(a->fetch_lock);
    if (e != NULL) {
        if (old != NULL)
            put_cred(a, old);
        *out = e;
        return KD_CAUSE_NONE;
    }
    if (old != NULL && old->expires > apr_time_now()) {
        kd_log(KD_LOG_INFO, "cannot renew the service TGT of %s (%s); the current one serves "
               "until it expires", old->principal, res->detail ? res->detail : "");
        kd_result_init(res);
        *out = old;
        return KD_CAUSE_NONE;
    }
    if (old != NULL)
        put_cred(a, old);
    return res->cause;
}

/* The keytab file's identity now (what tells a change), or keytab-unusable. */
static kd_cause stat_keytab(kd_acceptor *a, apr_pool_t *p, apr_finfo_t *fi, kd_result *res)
{
    apr_status_t rv = apr_stat(fi, a->keytab, APR_FINFO_MTIME | APR_FINFO_CTIME
                                              | APR_FINFO_INODE | APR_FINFO_SIZE, p);
    char errbuf[128];

    if (rv == APR_SUCCESS)
        return KD_CAUSE_NONE;
    return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "acquire", "keytab %s: %s",
                          a->keytab, apr_strerror(rv, errbuf, sizeof(errbuf)));
}

static kd_cause get_cred(kd_acceptor *a, apr_pool_t *p, const char *principal, int impersonator,
                         const char *account, int no_rcache, cred_entry **out, kd_result *res)
{
    apr_finfo_t fi;
    cred_entry *e, *expiring;
    const char *key = entry_key(p, principal, impersonator, account, no_rcache);
    kd_cause cause = KD_CAUSE_NONE;

    if (a->ctx == NULL || a->fetch_ctx == NULL || a->table == NULL)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "acquire",
                              "no Kerberos context (krb5.conf unreadable?)");
    if (stat_keytab(a, p, &fi, res) != KD_CAUSE_NONE)
        return res->cause;
    kd_credtab_lock(a->table);
    e = take_current(a, key, &fi, &expiring);
    if (e == NULL && !impersonator)
        cause = add_acceptor(a, p, key, principal, no_rcache, &fi, &e, res);
    kd_credtab_unlock(a->table);
    if (e == NULL && impersonator)
        cause = fetch_impersonator(a, p, key, principal, account, &fi, expiring, &e, res);
    *out = e;
    return e != NULL ? KD_CAUSE_NONE : cause;
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

/* The configured SPN the ticket's sname and realm name, compared ignoring
 * case; NULL when none does. */
static const kd_spn *spn_allowed(const kd_token_info *info, const kd_accept_params *params)
{
    int i;

    for (i = 0; i < params->n_spns; i++) {
        if (kd_spn_matches(&params->spns[i], info->ticket_sname, info->ticket_realm))
            return &params->spns[i];
    }
    return NULL;
}

/* ------------------------------------------------------------ the PAC */

#define KD_ATTR_LOGON_INFO "urn:mspac:logon-info"
#define KD_NO_PAC_WHY "the ticket has no PAC logon-info the library could verify (a KDC that " \
    "is not Active Directory, such as MIT's, or a PAC stripped by the KDC or failing its server " \
    "checksum)"


struct kd_accepted_name {
    apr_pool_t *pool;
    gss_name_t name;           /* accepted through GSS-API; or made lazily, below */
    /* Accepted with libkrb5 directly (kd_apreq): the PAC was verified
     * then; indicators are read through GSS-API from the same token, only
     * when asked for (none of AD's tickets has any). */
    int direct;
    kd_apreq_pac pac;
    const char *client;
    kd_acceptor *acceptor;
    /* The credential that accepted, held until the pool goes: its MEMORY
     * keytab has the key that decrypted the ticket (the PAC's checksum is
     * made with it), its GSS credential can accept the token again. */
    cred_entry *entry;
    const unsigned char *token;  /* the Kerberos mechanism token (a copy) */
    size_t token_len;
    const unsigned char *cb_data;
    size_t cb_len;
    int read;                  /* the attribute was asked for */
    const kd_logon_info *logon_info;
    const char *why;
    int indicators_read;       /* "auth-indicators" was asked for */
    const apr_array_header_t *indicators; /* const char *; NULL: none */
    const char *indicators_why;
};

static apr_status_t release_name(void *data)
{
    kd_accepted_name *n = data;
    OM_uint32 ignored;

    if (n->name != GSS_C_NO_NAME)
        gss_release_name(&ignored, &n->name);
    return APR_SUCCESS;
}

/* Keep *src (now ours) until p is cleared: a cleanup instead of a
 * release, nothing asked of the library yet. */
static kd_accepted_name *keep_name(apr_pool_t *p, gss_name_t *src)
{
    kd_accepted_name *n = apr_pcalloc(p, sizeof(*n));

    n->pool = p;
    n->name = *src;
    *src = GSS_C_NO_NAME;
    apr_pool_cleanup_register(p, n, release_name, apr_pool_cleanup_null);
    return n;
}

static void read_logon_info(kd_accepted_name *n)
{
    OM_uint32 major, minor, ignored;
    gss_buffer_desc attr, value = GSS_C_EMPTY_BUFFER;
    int authenticated = 0, complete = 0, more = -1;
    kd_logon_info *li;
    const char *why = NULL;

    attr.value = (void *)KD_ATTR_LOGON_INFO;
    attr.length = sizeof(KD_ATTR_LOGON_INFO) - 1;
    major = gss_get_name_attribute(&minor, n->name, &attr, &authenticated, &complete, &value,
                                   GSS_C_NO_BUFFER, &more);
    if (major == GSS_S_UNAVAILABLE)
        n->why = KD_NO_PAC_WHY;
    else if (GSS_ERROR(major))
        n->why = apr_psprintf(n->pool, "cannot read " KD_ATTR_LOGON_INFO ": %s",
                              kd_gss_error(n->pool, major, minor));
    else if (!authenticated)
        n->why = "the PAC logon-info is not authenticated";
    else if (!complete)
        n->why = "the PAC logon-info is incomplete";
    else {
        li = apr_palloc(n->pool, sizeof(*li));
        if (kd_pac_logon_info(n->pool, value.value, value.length, li, &why) == 0)
            n->logon_info = li;
        else
            n->why = apr_psprintf(n->pool, "the PAC logon-info does not decode: %s", why);
    }
    gss_release_buffer(&ignored, &value);
}

static krb5_context take_context(kd_acceptor *a);
static void put_context(kd_acceptor *a, krb5_context ctx);

/* The same answers as read_logon_info, for a ticket kd_apreq accepted: its
 * PAC verified now, with the key the credential's keytab holds now. */
static void read_direct_logon_info(kd_accepted_name *n)
{
    kd_logon_info *li;
    const char *why = NULL;
    krb5_context ctx;
    unsigned char *buf = NULL;
    size_t len = 0;
    kd_pac_state state = KD_APREQ_PAC_UNVERIFIED;

    if (n->pac.data != NULL && (ctx = take_context(n->acceptor)) != NULL) {
        state = kd_apreq_pac_logon_info(ctx, n->pool, n->entry->memkt, n->entry->principal,
                                        n->client, &n->pac, &buf, &len);
        put_context(n->acceptor, ctx);
    }
    if (state != KD_APREQ_PAC_VERIFIED || buf == NULL) {
        n->why = KD_NO_PAC_WHY;
        return;
    }
    li = apr_palloc(n->pool, sizeof(*li));
    if (kd_pac_logon_info(n->pool, buf, len, li, &why) == 0)
        n->logon_info = li;
    else
        n->why = apr_psprintf(n->pool, "the PAC logon-info does not decode: %s", why);
}

const kd_logon_info *kd_accept_logon_info(kd_accepted_name *name, const char **why)
{
    if (name == NULL) {
        if (why)
            *why = "no accepted Kerberos ticket";
        return NULL;
    }
    if (!name->read) {
        name->read = 1;
        if (name->direct)
            read_direct_logon_info(name);
        else
            read_logon_info(name);
    }
    if (why)
        *why = name->logon_info ? NULL : name->why;
    return name->logon_info;
}

/* ------------------------------------------------------------ authentication indicators */

#define KD_ATTR_AUTH_INDICATORS "auth-indicators"
/* More than any KDC sets (one per preauth mechanism, plus policy ones):
 * a bound on the loop, not a limit anyone should meet. */
#define KD_MAX_INDICATORS 64

/* One value of the attribute, kept when the library vouches for it and it
 * is a usable word (not empty, no NUL: it must be able to equal a word of
 * the configuration). */
static void keep_indicator(apr_array_header_t *list, const gss_buffer_desc *value,
                           int authenticated)
{
    if (!authenticated || value->length == 0 || memchr(value->value, '\0', value->length))
        return;
    APR_ARRAY_PUSH(list, const char *) = kd_gss_buffer_str(list->pool, value);
}

static void read_indicators(kd_accepted_name *n)
{
    OM_uint32 major = GSS_S_COMPLETE, minor, ignored;
    gss_buffer_desc attr, value;
    apr_array_header_t *list = apr_array_make(n->pool, 2, sizeof(const char *));
    int authenticated, complete, more = -1, i;

    attr.value = (void *)KD_ATTR_AUTH_INDICATORS;
    attr.length = sizeof(KD_ATTR_AUTH_INDICATORS) - 1;
    /* more: -1 asks for the first value; the library sets 0 after the last. */
    for (i = 0; more != 0 && i < KD_MAX_INDICATORS; i++) {
        authenticated = complete = 0;
        value.length = 0;
        value.value = NULL;
        major = gss_get_name_attribute(&minor, n->name, &attr, &authenticated, &complete,
                                       &value, GSS_C_NO_BUFFER, &more);
        if (major == GSS_S_UNAVAILABLE)
            break;
        if (GSS_ERROR(major)) {
            n->indicators_why = apr_psprintf(n->pool, "cannot read " KD_ATTR_AUTH_INDICATORS
                                             ": %s", kd_gss_error(n->pool, major, minor));
            return;
        }
        keep_indicator(list, &value, authenticated);
        gss_release_buffer(&ignored, &value);
    }
    if (list->nelts > 0)
        n->indicators = list;
    else if (i > 0 && major != GSS_S_UNAVAILABLE)
        n->indicators_why = "none of the ticket's authentication indicators is marked "
                            "authenticated by the library";
    else
        n->indicators_why = "the ticket carries no authentication indicator (the KDC set "
                            "none for this login; Active Directory never does)";
}

static int reaccept(kd_accepted_name *n);

const apr_array_header_t *kd_accept_indicators(kd_accepted_name *name, const char **why)
{
    if (name == NULL) {
        if (why)
            *why = "no accepted Kerberos ticket";
        return NULL;
    }
    if (!name->indicators_read) {
        name->indicators_read = 1;
        if (name->name != GSS_C_NO_NAME || reaccept(name) == 0)
            read_indicators(name);
    }
    if (why)
        *why = name->indicators ? NULL : name->indicators_why;
    return name->indicators;
}

const char *kd_indicator_find(const apr_array_header_t *have, const char *name)
{
    int i;

    if (have == NULL || name == NULL)
        return NULL;
    for (i = 0; i < have->nelts; i++) {
        const char *one = APR_ARRAY_IDX(have, i, const char *);
        if (strcmp(one, name) == 0)
            return one;
    }
    return NULL;
}

/* ------------------------------------------------------------ accepting */

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

/* ------------------------------------------------ the health check */

/* Under lock: is spn in the index (its realm, or any realm without one)? */
static int spn_in_index(const kd_keytab_index *ix, apr_pool_t *p, const kd_spn *spn)
{
    int elsewhere;

    if (kd_keytab_index_spelling(ix, p, spn->service, spn->host, spn->realm ? spn->realm : "",
                                 &elsewhere) != NULL)
        return 1;
    return spn->realm == NULL && elsewhere;
}

/* Under lock: the first of spns the index lacks, or NULL. */
static const char *first_missing(const kd_keytab_index *ix, apr_pool_t *p, const kd_spn *spns,
                                 int n_spns)
{
    int i;

    for (i = 0; i < n_spns; i++)
        if (!spn_in_index(ix, p, &spns[i]))
            return kd_spn_unparse(p, &spns[i]);
    return NULL;
}

kd_cause kd_acceptor_keytab_ready(kd_acceptor *a, apr_pool_t *p, const kd_spn *spns, int n_spns,
                                  kd_result *res)
{
    const kd_keytab_index *ix;
    const char *err, *missing = NULL;
    apr_finfo_t fi;

    if (a->ctx == NULL || a->table == NULL)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "health",
                              "no Kerberos context (krb5.conf unreadable?)");
    if (stat_keytab(a, p, &fi, res) != KD_CAUSE_NONE)
        return res->cause;
    kd_credtab_lock(a->table);
    if ((ix = index_current(a, &fi, &err)) != NULL)
        missing = first_missing(ix, p, spns, n_spns);
    kd_credtab_unlock(a->table);
    if (ix == NULL)
        return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "health", "keytab %s: %s",
                              a->keytab, err ? err : "unreadable");
    if (missing != NULL)
        return kd_result_fail(res, p, KD_CAUSE_KEYTAB_UNUSABLE, "health",
                              "keytab %s has no key for %s (nor for its host/ alias)",
                              a->keytab, missing);
    return KD_CAUSE_NONE;
}

/* Like fetch_impersonator, but the KDC is asked whatever is cached or
 * held: the probe is there to learn whether it answers now. */
kd_cause kd_acceptor_probe_kdc(kd_acceptor *a, apr_pool_t *p, const char *spn,
                               const char *account, kd_result *res)
{
    const char *key = entry_key(p, spn, 1, account, 0), *spelling, *err;
    apr_finfo_t fi;
    cred_entry *e;
    int elsewhere;

    if (a->ctx == NULL || a->fetch_ctx == NULL || a->table == NULL)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "health",
                              "no Kerberos context (krb5.conf unreadable?)");
    if (stat_keytab(a, p, &fi, res) != KD_CAUSE_NONE)
        return res->cause;
    if (apr_thread_mutex_lock(a->fetch_lock) != APR_SUCCESS)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "health", "lock failed");
    kd_credtab_lock(a->table);
    spelling = keytab_spelling(a, p, spn, &fi, &elsewhere, &err);
    kd_credtab_unlock(a->table);
    e = fetch_tgt(a, p, key, spelling ? spelling : spn, account, &fi, res);
    apr_thread_mutex_unlock(a->fetch_lock);
    if (e == NULL)
        return res->cause;
    put_cred(a, e); /* installed: the table keeps it for the requests */
    return KD_CAUSE_NONE;
}

kd_cause kd_acceptor_impersonator(kd_acceptor *a, apr_pool_t *p, const char *spn,
                                  const char *account, kd_impersonator *out, kd_result *res)
{
    cred_entry *e;

    if (get_cred(a, p, spn, 1, account, 0, &e, res) != KD_CAUSE_NONE)
        return res->cause;
    /* borrowed until the request's pool goes */
    kd_credtab_release_with(a->table, &e->base, p);
    out->account = e->account;
    out->ccache = e->ccache;
    out->keytab = e->memkt;
    out->tgt_forwardable = e->tgt_forwardable;
    return KD_CAUSE_NONE;
}

/* What a delegation made at accept time needs to find its impersonator
 * later, if it ever asks the KDC. */
typedef struct {
    kd_acceptor *a;
    const char *spn;
    const char *account;
} impersonator_ref;

static kd_cause impersonator_of(void *baton, apr_pool_t *p, kd_impersonator *out,
                                kd_result *res)
{
    const impersonator_ref *ref = baton;

    return kd_acceptor_impersonator(ref->a, p, ref->spn, ref->account, out, res);
}

/* The client's ticket is the evidence: nothing the client forwarded (a
 * TGT in the authenticator) is ever asked for or used. */
static void keep_evidence(kd_acceptor *a, apr_pool_t *p, const kd_token_info *info,
                          const kd_accept_params *params, kd_accept_out *out)
{
    impersonator_ref *ref = apr_palloc(p, sizeof(*ref));

    ref->a = a;
    ref->spn = out->spn;
    ref->account = kd_service_account_for(params->accounts, params->n_accounts, out->spn);
    out->delegation = kd_delegation_from_ticket(p, info->ticket, info->ticket_len,
                                                out->client_principal, out->spn,
                                                impersonator_of, ref);
}

/* "HTTP/host" and "HTTP/host@REALM" name the same SPN when one side has no
 * realm (it then means "the realm in use"); host names are case-insensitive. */
static int same_spn(const char *a, const char *b)
{
    const char *at_a = strrchr(a, '@'), *at_b = strrchr(b, '@');
    size_t la = at_a ? (size_t)(at_a - a) : strlen(a), lb = at_b ? (size_t)(at_b - b) : strlen(b);

    if (at_a && at_b)
        return strcasecmp(a, b) == 0;
    return la == lb && strncasecmp(a, b, la) == 0;
}

const char *kd_service_account_for(const kd_service_account *list, int n, const char *spn)
{
    const char *any = NULL;
    int i;

    for (i = 0; i < n; i++) {
        if (list[i].spn == NULL) {
            if (any == NULL)
                any = list[i].principal;
        }
        else if (spn && same_spn(list[i].spn, spn))
            return list[i].principal;
    }
    return any;
}

/* A ticket in an enctype the keytab has no key of is that, not an
 * unusable keytab: AD issues RC4 tickets to accounts without
 * msDS-SupportedEncryptionTypes. */
static kd_cause check_enctype(apr_pool_t *p, const cred_entry *e, const kd_token_info *info,
                              const char *spn, kd_result *res)
{
    krb5_context ctx;
    krb5_keytab kt = NULL;
    krb5_principal princ = NULL;
    krb5_keytab_entry ent;
    int has_principal = 0, has_etype = 0;
    krb5_kt_cursor cur;

    if (e->memkt == NULL || krb5_init_context(&ctx) != 0)
        return res->cause;
    if (krb5_kt_resolve(ctx, e->memkt, &kt) == 0 && krb5_parse_name(ctx, spn, &princ) == 0
        && krb5_kt_start_seq_get(ctx, kt, &cur) == 0) {
        while (krb5_kt_next_entry(ctx, kt, &ent, &cur) == 0) {
            if (krb5_principal_compare(ctx, ent.principal, princ)) {
                has_principal = 1;
                has_etype |= ent.key.enctype == info->ticket_etype;
            }
            krb5_free_keytab_entry_contents(ctx, &ent);
        }
        krb5_kt_end_seq_get(ctx, kt, &cur);
    }
    krb5_free_principal(ctx, princ);
    if (kt)
        krb5_kt_close(ctx, kt);
    krb5_free_context(ctx);
    if (!has_principal || has_etype)
        return res->cause;
    return kd_result_fail(res, p, KD_CAUSE_ETYPE_UNSUPPORTED, "accept",
                          "the ticket for %s is encrypted with enctype %d, for which the keytab "
                          "has no key (the KDC chose it from the account's "
                          "msDS-SupportedEncryptionTypes; re-export the keytab with that "
                          "enctype, or enable AES on the account)", spn,
                          (int)info->ticket_etype);
}

/* The bindings a client makes for TLS (RFC 5929 with GSS-API, as
 * Windows' SEC_CHANNEL_BINDINGS and MIT clients fill them): no addresses,
 * address types GSS_C_AF_UNSPEC, the application data only. MIT checks
 * the whole structure's checksum, so every field matters. */
static gss_channel_bindings_t channel_bindings(const kd_accept_params *params,
                                               struct gss_channel_bindings_struct *cb)
{
    if (params->cb_data == NULL)
        return GSS_C_NO_CHANNEL_BINDINGS;
    memset(cb, 0, sizeof(*cb));
    cb->initiator_addrtype = GSS_C_AF_UNSPEC;
    cb->acceptor_addrtype = GSS_C_AF_UNSPEC;
    cb->application_data.value = (void *)params->cb_data;
    cb->application_data.length = params->cb_len;
    return cb;
}

/* ------------------------------------------------------------ accepting with libkrb5 directly */

/* After an accept, either way: the reply token (the AP-REP when mutual
 * authentication was asked for; for SPNEGO a NegTokenResp even without
 * one) and the evidence ticket. */
static void reply_and_evidence(kd_acceptor *a, apr_pool_t *p, const kd_token_info *info,
                               const kd_accept_params *params, const void *reply,
                               size_t reply_len, kd_accept_out *out)
{
    unsigned char *wire;
    size_t wire_len;

    kd_token_reply(p, info, reply, reply_len, &wire, &wire_len);
    if (wire_len > 0)
        out->mutual_token = kd_b64_encode(p, wire, wire_len);
    if (params->want_delegation)
        keep_evidence(a, p, info, params, out);
}

static krb5_context take_context(kd_acceptor *a)
{
    krb5_context ctx = NULL;

    kd_credtab_lock(a->table);
    if (a->n_spare > 0)
        ctx = a->spare[--a->n_spare];
    kd_credtab_unlock(a->table);
    if (ctx == NULL && krb5_init_context(&ctx) != 0)
        ctx = NULL;
    return ctx;
}

static void put_context(kd_acceptor *a, krb5_context ctx)
{
    kd_credtab_lock(a->table);
    if (a->n_spare < KD_SPARE_CONTEXTS) {
        a->spare[a->n_spare++] = ctx;
        ctx = NULL;
    }
    kd_credtab_unlock(a->table);
    if (ctx != NULL)
        krb5_free_context(ctx);
}

/* What kd_accept_logon_info and kd_accept_indicators need later. */
static kd_accepted_name *direct_name(apr_pool_t *p, kd_acceptor *a, cred_entry *entry,
                                     const kd_token_info *info, const kd_accept_params *params,
                                     const kd_apreq_out *r)
{
    kd_accepted_name *n = apr_pcalloc(p, sizeof(*n));

    n->pool = p;
    n->direct = 1;
    n->pac = r->pac;
    n->client = r->client;
    n->acceptor = a;
    n->entry = entry;
    n->token = apr_pmemdup(p, info->krb5_token, info->krb5_token_len);
    n->token_len = info->krb5_token_len;
    n->cb_data = params->cb_data ? apr_pmemdup(p, params->cb_data, params->cb_len) : NULL;
    n->cb_len = params->cb_len;
    return n;
}

/* On success the entry is held by out->name until p is cleared; else it
 * is still the caller's. */
static kd_cause accept_direct(kd_acceptor *a, apr_pool_t *p, cred_entry *entry,
                              const kd_token_info *info, const kd_accept_params *params,
                              kd_accept_out *out, kd_result *res)
{
    krb5_context ctx = take_context(a);
    kd_apreq_in in;
    kd_apreq_out r;
    unsigned char *reply = NULL;
    size_t reply_len = 0;

    if (ctx == NULL)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "accept",
                              "no Kerberos context (krb5.conf unreadable?)");
    memset(&in, 0, sizeof(in));
    in.ap_req = info->ap_req;
    in.ap_req_len = info->ap_req_len;
    in.keytab = entry->memkt;
    in.server = entry->principal;
    in.cb_data = params->cb_data;
    in.cb_len = params->cb_len;
    in.want_local_name = params->want_local_name;
    kd_apreq_accept(ctx, p, &in, &r);
    put_context(a, ctx);
    if (r.code != 0 || r.bad_bindings || r.defective) {
        kd_cause cause;
        res->gss_major = r.bad_bindings ? GSS_S_BAD_BINDINGS
                         : r.defective ? GSS_S_DEFECTIVE_TOKEN : GSS_S_FAILURE;
        res->krb5_code = r.code;
        cause = kd_result_fail(res, p, kd_cause_from_accept_error(res->gss_major, r.code),
                               "accept", "ticket for %s (kvno %d, enctype %d): %s", out->spn,
                               (int)info->ticket_kvno, (int)info->ticket_etype, r.error);
        if (cause == KD_CAUSE_KEYTAB_UNUSABLE || cause == KD_CAUSE_KEY_VERSION_MISMATCH)
            cause = check_enctype(p, entry, info, out->spn, res);
        return cause;
    }
    out->channel_bound = params->cb_data != NULL && r.channel_bound;
    if (params->cb_required && !out->channel_bound)
        return kd_result_fail(res, p, KD_CAUSE_CHANNEL_BINDING_MISSING, "accept",
                              "ticket for %s: %s", out->spn,
                              params->cb_data ? "the token carries no channel bindings"
                                              : "there is no TLS certificate to bind to");
    out->client_principal = r.client;
    out->local_name = r.local_name;
    out->ticket_seconds_left = r.seconds_left;
    if (r.ap_rep != NULL
        && kd_token_frame_ap_rep(p, info, r.ap_rep, r.ap_rep_len, &reply, &reply_len) != 0)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "accept",
                              "the AP-REP for %s cannot be framed", out->spn);
    reply_and_evidence(a, p, info, params, reply, reply_len, out);
    out->name = direct_name(p, a, entry, info, params, &r);
    kd_credtab_release_with(a->table, &entry->base, p);
    return KD_CAUSE_NONE;
}

/* The token accepted again, through GSS-API, for what only MIT's
 * authorization-data plugins verify (authentication indicators). The
 * node's replay table already holds this authenticator, so the credential
 * has no MIT rcache either. 0 when n->name is set. */
static int reaccept(kd_accepted_name *n)
{
    struct gss_channel_bindings_struct cb;
    OM_uint32 major, minor, ignored;
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc in, reply = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;

    if (!n->direct || n->token == NULL)
        return -1;
    memset(&cb, 0, sizeof(cb));
    cb.initiator_addrtype = GSS_C_AF_UNSPEC;
    cb.acceptor_addrtype = GSS_C_AF_UNSPEC;
    cb.application_data.value = (void *)n->cb_data;
    cb.application_data.length = n->cb_len;
    in.value = (void *)n->token;
    in.length = n->token_len;
    major = gss_accept_sec_context(&minor, &ctx, n->entry->cred, &in,
                                   n->cb_data ? &cb : GSS_C_NO_CHANNEL_BINDINGS, &src, NULL,
                                   &reply, NULL, NULL, NULL);
    gss_release_buffer(&ignored, &reply);
    if (ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&ignored, &ctx, GSS_C_NO_BUFFER);
    if (GSS_ERROR(major) || (major & GSS_S_CONTINUE_NEEDED)) {
        gss_release_name(&ignored, &src);
        n->indicators_why = apr_psprintf(n->pool, "cannot read " KD_ATTR_AUTH_INDICATORS
                                         ": %s", kd_gss_error(n->pool, major, minor));
        return -1;
    }
    n->name = src;
    apr_pool_cleanup_register(n->pool, n, release_name, apr_pool_cleanup_null);
    return 0;
}

kd_cause kd_acceptor_accept(kd_acceptor *a, apr_pool_t *p, const kd_token_info *info,
                            const kd_accept_params *params, kd_accept_out *out, kd_result *res)
{
    struct gss_channel_bindings_struct cb;
    OM_uint32 major, minor, ignored, flags = 0, lifetime = 0;
    gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
    gss_buffer_desc in, reply = GSS_C_EMPTY_BUFFER;
    gss_name_t src = GSS_C_NO_NAME;
    gss_OID mech = GSS_C_NO_OID;
    cred_entry *entry = NULL;
    const kd_spn *allowed;
    const char *cred_principal;
    kd_cause cause = KD_CAUSE_NONE;

    memset(out, 0, sizeof(*out));
    kd_result_init(&out->delegation_failure);
    if (!info->has_ap_req)
        return kd_result_fail(res, p, KD_CAUSE_MALFORMED_TOKEN, "accept", "no Kerberos AP-REQ");
    out->spn = kd_token_ticket_principal(p, info);
    if ((allowed = spn_allowed(info, params)) == NULL)
        return kd_result_fail(res, p, KD_CAUSE_WRONG_SPN, "accept",
                              "ticket is for %s; this host answers for %s", out->spn,
                              configured_spns(p, params));
    /* The sname is outside the ticket's encrypted part: the client spells
     * it. The credential is the configured SPN's, as the keytab spells it. */
    cred_principal = apr_pstrcat(p, allowed->service, "/", allowed->host, "@",
                                 allowed->realm ? allowed->realm : info->ticket_realm, NULL);
    if (get_cred(a, p, cred_principal, 0, NULL, params->replay_checked, &entry, res)
        != KD_CAUSE_NONE)
        return res->cause;
    out->spn = apr_pstrdup(p, entry->principal);
    /* With the node's replay table, libkrb5 directly (kd_apreq); without
     * it, GSS-API and MIT's replay cache. */
    if (params->replay_checked && info->ap_req != NULL) {
        if ((cause = accept_direct(a, p, entry, info, params, out, res)) != KD_CAUSE_NONE)
            put_cred(a, entry);
        return cause;
    }

    /* The Kerberos token itself, not its SPNEGO wrapper: through SPNEGO the
     * mechglue renumbers krb5 minor codes and causes could not be told apart. */
    in.value = (void *)info->krb5_token;
    in.length = info->krb5_token_len;
    major = gss_accept_sec_context(&minor, &ctx, entry->cred, &in,
                                   channel_bindings(params, &cb), &src, &mech, &reply, &flags,
                                   &lifetime, NULL);
    if (GSS_ERROR(major)) {
        res->gss_major = major;
        res->krb5_code = (krb5_error_code)minor;
        cause = kd_result_fail(res, p, kd_cause_from_accept_error(major, (krb5_error_code)minor),
                               "accept", "ticket for %s (kvno %d, enctype %d): %s", out->spn,
                               (int)info->ticket_kvno, (int)info->ticket_etype,
                               kd_gss_error(p, major, minor));
        if (cause == KD_CAUSE_KEYTAB_UNUSABLE || cause == KD_CAUSE_KEY_VERSION_MISMATCH)
            cause = check_enctype(p, entry, info, out->spn, res);
        goto done;
    }
    if (major & GSS_S_CONTINUE_NEEDED) {
        cause = kd_result_fail(res, p, KD_CAUSE_MALFORMED_TOKEN, "accept",
                               "the client started a multi-round exchange, which HTTP "
                               "Negotiate with Kerberos never needs");
        goto done;
    }
    /* MIT (1.19+) accepts a token without bindings even when we pass
     * some, and says so only by leaving GSS_C_CHANNEL_BOUND_FLAG out. */
    out->channel_bound = params->cb_data != NULL && (flags & GSS_C_CHANNEL_BOUND_FLAG) != 0;
    if (params->cb_required && !out->channel_bound) {
        cause = kd_result_fail(res, p, KD_CAUSE_CHANNEL_BINDING_MISSING, "accept",
                               "ticket for %s: %s", out->spn,
                               params->cb_data ? "the token carries no channel bindings"
                                               : "there is no TLS certificate to bind to");
        goto done;
    }
    cause = describe_client(p, src, mech, params, out, res);
    /* A session made from this exchange must not outlive the client's
     * ticket. MIT reports the ticket's remaining time plus the clock skew
     * allowance as the context lifetime: take the allowance off. */
    out->ticket_seconds_left = (lifetime == GSS_C_INDEFINITE || lifetime <= (OM_uint32)a->clockskew)
                                   ? 0 : (long)lifetime - a->clockskew;
    if (cause == KD_CAUSE_NONE) {
        reply_and_evidence(a, p, info, params, reply.value, reply.length, out);
        out->name = keep_name(p, &src);
    }

done:
    gss_release_buffer(&ignored, &reply);
    gss_release_name(&ignored, &src);
    if (ctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&ignored, &ctx, GSS_C_NO_BUFFER);
    put_cred(a, entry);
    return cause;
}

kd_cause kd_acceptor_s4u2self(kd_acceptor *a, apr_pool_t *p, const char *spn,
                              const char *account, const kd_user_name *user,
                              kd_ticket_cache *cache, kd_delegation **out,
                              const char **impersonator, kd_result *res)
{
    cred_entry *entry;
    kd_impersonator imp;
    kd_cause cause;

    *out = NULL;
    if (get_cred(a, p, spn, 1, account, 0, &entry, res) != KD_CAUSE_NONE)
        return res->cause;
    if (impersonator)
        *impersonator = apr_pstrdup(p, entry->account);
    imp.account = entry->account;
    imp.ccache = entry->ccache;
    imp.keytab = entry->memkt;
    imp.tgt_forwardable = entry->tgt_forwardable;
    cause = kd_s4u2self(p, &imp, spn, user, &entry->transition_seen, cache, out, res);
    if (*out != NULL) /* the delegation borrows this TGT for its S4U2Proxy requests */
        kd_credtab_release_with(a->table, &entry->base, p);
    else
        put_cred(a, entry);
    return cause;
}
