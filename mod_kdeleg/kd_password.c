#include "kd_password.h"

#include <string.h>
#include <stdlib.h>

#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <gssapi/gssapi_krb5.h>

#include "kd_der.h"
#include "kd_seal.h"

/* ------------------------------------------------------------ e-data */

/* One PA-DATA {[1] type, [2] value} or KERB-ERROR-DATA (same shape), or a
 * TYPED-DATA element {[0] type, [1] value}: the status when its type is 3
 * (PA-PW-SALT / KERB_ERR_TYPE_EXTENDED) and its value holds one. */
static uint32_t status_of(const kd_der *seq)
{
    kd_der type, value;
    int32_t t;

    if (!kd_der_is(seq, KD_DER_UNIVERSAL, 16) || !seq->constructed)
        return 0;
    if (kd_der_field(seq, 1, &type) == 0 && kd_der_int32(&type, &t) == 0) {
        if (kd_der_field(seq, 2, &value) != 0)
            return 0;
    }
    else if (kd_der_field(seq, 0, &type) == 0 && kd_der_int32(&type, &t) == 0) {
        if (kd_der_field(seq, 1, &value) != 0)
            return 0;
    }
    else
        return 0;
    if (t != 3 || !kd_der_is(&value, KD_DER_UNIVERSAL, 4) || value.len < 4)
        return 0;
    return (uint32_t)value.val[0] | (uint32_t)value.val[1] << 8 | (uint32_t)value.val[2] << 16
           | (uint32_t)value.val[3] << 24;
}

uint32_t kd_password_ntstatus(const unsigned char *edata, size_t len)
{
    const unsigned char *p, *end;
    kd_der outer, el;
    uint32_t status;

    if (edata == NULL || len == 0 || kd_der_whole(edata, len, &outer) != 0)
        return 0;
    if ((status = status_of(&outer)) != 0)
        return status;
    /* METHOD-DATA / TYPED-DATA: a SEQUENCE OF such elements */
    if (!kd_der_is(&outer, KD_DER_UNIVERSAL, 16) || !outer.constructed)
        return 0;
    p = outer.val;
    end = outer.val + outer.len;
    while (p < end) {
        if (kd_der_next(&p, end, &el) != 0)
            return 0;
        if ((status = status_of(&el)) != 0)
            return status;
    }
    return 0;
}

kd_cause kd_cause_from_password_error(krb5_error_code code, uint32_t ntstatus)
{
    switch (ntstatus) {
    case KD_NT_WRONG_PASSWORD:
    case KD_NT_NO_SUCH_USER:
        return KD_CAUSE_WRONG_PASSWORD;
    case KD_NT_ACCOUNT_LOCKED_OUT:
        return KD_CAUSE_ACCOUNT_LOCKED;
    case KD_NT_ACCOUNT_DISABLED:
        return KD_CAUSE_USER_DISABLED;
    case KD_NT_ACCOUNT_EXPIRED:
        return KD_CAUSE_ACCOUNT_EXPIRED;
    case KD_NT_PASSWORD_EXPIRED:
        return KD_CAUSE_PASSWORD_EXPIRED;
    case KD_NT_PASSWORD_MUST_CHANGE:
        return KD_CAUSE_PASSWORD_MUST_CHANGE;
    case KD_NT_INVALID_LOGON_HOURS:
    case KD_NT_INVALID_WORKSTATION:
    case KD_NT_ACCOUNT_RESTRICTION:
        return KD_CAUSE_USER_DISABLED;
    default:
        break;
    }
    switch (code) {
    case KRB5KDC_ERR_PREAUTH_FAILED:   /* the KDC checked the encrypted timestamp */
    case KRB5KRB_AP_ERR_BAD_INTEGRITY: /* no preauthentication: the reply did not decrypt */
    case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
        return KD_CAUSE_WRONG_PASSWORD;
    case KRB5KDC_ERR_KEY_EXP:          /* MIT: expired, or +needchange */
        return KD_CAUSE_PASSWORD_EXPIRED;
    case KRB5KDC_ERR_NAME_EXP:
        return KD_CAUSE_ACCOUNT_EXPIRED;
    case KRB5KDC_ERR_CLIENT_REVOKED:   /* MIT: -allow_tix or locked out, one code */
    case KRB5KDC_ERR_POLICY:
        return KD_CAUSE_USER_DISABLED;
    default:
        return kd_cause_from_kdc_error(code);
    }
}

/* ------------------------------------------------------------ the check */

typedef struct {
    krb5_context ctx;
    krb5_principal client;
    krb5_get_init_creds_opt *opt;
    krb5_init_creds_context icc;
    krb5_creds tgt;
    int have_tgt;
    krb5_ccache cc;
    gss_cred_id_t cred;
    gss_name_t target;
    gss_ctx_id_t gctx;
} check_state;

/* Everything the check made, the TGT first of all, gone. */
static void check_release(check_state *s)
{
    OM_uint32 minor;

    if (s->gctx != GSS_C_NO_CONTEXT)
        gss_delete_sec_context(&minor, &s->gctx, GSS_C_NO_BUFFER);
    if (s->target != GSS_C_NO_NAME)
        gss_release_name(&minor, &s->target);
    if (s->cred != GSS_C_NO_CREDENTIAL)
        gss_release_cred(&minor, &s->cred);
    if (s->cc)
        krb5_cc_destroy(s->ctx, s->cc);
    if (s->have_tgt)
        krb5_free_cred_contents(s->ctx, &s->tgt);
    if (s->icc)
        krb5_init_creds_free(s->ctx, s->icc);
    if (s->opt)
        krb5_get_init_creds_opt_free(s->ctx, s->opt);
    if (s->client)
        krb5_free_principal(s->ctx, s->client);
    if (s->ctx)
        krb5_free_context(s->ctx);
}

static const char *krb5_text(apr_pool_t *p, krb5_context ctx, krb5_error_code code)
{
    const char *msg = krb5_get_error_message(ctx, code);
    const char *copy = apr_pstrdup(p, msg);

    krb5_free_error_message(ctx, msg);
    return copy;
}

/* The AS exchange. The TGT is forwardable (the service ticket made from it
 * must be, to serve as S4U2Proxy evidence) and canonicalized (enterprise
 * names, the KDC's spelling of the user). */
static kd_cause get_tgt(apr_pool_t *p, check_state *s, const kd_password_request *req,
                        uint32_t *ntstatus, kd_result *res)
{
    krb5_error_code code;
    krb5_error *kerr = NULL;
    kd_cause cause;
    const char *nt = "";

    if ((code = krb5_get_init_creds_opt_alloc(s->ctx, &s->opt)) != 0)
        goto internal;
    krb5_get_init_creds_opt_set_forwardable(s->opt, 1);
    krb5_get_init_creds_opt_set_canonicalize(s->opt, 1);
    if ((code = krb5_init_creds_init(s->ctx, s->client, NULL, NULL, 0, s->opt, &s->icc)) != 0
        || (code = krb5_init_creds_set_password(s->ctx, s->icc, req->password)) != 0)
        goto internal;
    if ((code = krb5_init_creds_get(s->ctx, s->icc)) != 0) {
        if (krb5_init_creds_get_error(s->ctx, s->icc, &kerr) == 0 && kerr != NULL) {
            *ntstatus = kd_password_ntstatus((const unsigned char *)kerr->e_data.data,
                                             kerr->e_data.length);
            krb5_free_error(s->ctx, kerr);
        }
        if (*ntstatus != 0)
            nt = apr_psprintf(p, " (NTSTATUS 0x%08x)", (unsigned)*ntstatus);
        cause = kd_cause_from_password_error(code, *ntstatus);
        /* No KDC answered: nothing was said about the password. */
        kd_result_fail(res, p, cause, "password",
                       cause == KD_CAUSE_KDC_UNREACHABLE
                           ? "no KDC answered to check the password of %s: %s%s"
                           : "the KDC refused the password of %s: %s%s",
                       req->user->principal, krb5_text(p, s->ctx, code), nt);
        res->krb5_code = code;
        return cause;
    }
    if ((code = krb5_init_creds_get_creds(s->ctx, s->icc, &s->tgt)) != 0)
        goto internal;
    s->have_tgt = 1;
    return KD_CAUSE_NONE;
internal:
    kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "password", "preparing the AS exchange for %s: %s",
                   req->user->principal, krb5_text(p, s->ctx, code));
    res->krb5_code = code;
    return KD_CAUSE_INTERNAL_ERROR;
}

/* The service's name as a Kerberos principal: its own realm when the
 * configuration gives one, else the user's (the TGT's) realm. */
static const char *service_principal(apr_pool_t *p, const char *service, const krb5_data *realm)
{
    if (strchr(service, '@') != NULL)
        return service;
    return apr_psprintf(p, "%s@%.*s", service, (int)realm->length, realm->data);
}

/* The TGT in a private MEMORY cache, then the GSS-API token for the
 * service: the library fetches the service ticket with the TGT. */
static kd_cause make_token(apr_pool_t *p, check_state *s, const kd_password_request *req,
                           unsigned char **token, size_t *len, kd_result *res)
{
    krb5_error_code code;
    OM_uint32 major, minor;
    gss_buffer_desc name, out = GSS_C_EMPTY_BUFFER;
    const char *spn = service_principal(p, req->service, &s->tgt.client->realm);

    if ((code = krb5_cc_new_unique(s->ctx, "MEMORY", NULL, &s->cc)) != 0
        || (code = krb5_cc_initialize(s->ctx, s->cc, s->tgt.client)) != 0
        || (code = krb5_cc_store_cred(s->ctx, s->cc, &s->tgt)) != 0) {
        kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "password", "a memory ccache: %s",
                       krb5_text(p, s->ctx, code));
        return KD_CAUSE_INTERNAL_ERROR;
    }
    name.value = (void *)spn;
    name.length = strlen(spn);
    major = gss_krb5_import_cred(&minor, s->cc, NULL, NULL, &s->cred);
    if (!GSS_ERROR(major))
        major = gss_import_name(&minor, &name, (gss_OID)GSS_KRB5_NT_PRINCIPAL_NAME, &s->target);
    if (GSS_ERROR(major)) {
        kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "password", "GSS-API setup for %s failed",
                       spn);
        return KD_CAUSE_INTERNAL_ERROR;
    }
    major = gss_init_sec_context(&minor, s->cred, &s->gctx, s->target, (gss_OID)gss_mech_krb5, 0,
                                 0, GSS_C_NO_CHANNEL_BINDINGS, GSS_C_NO_BUFFER, NULL, &out, NULL,
                                 NULL);
    if (GSS_ERROR(major) || out.length == 0) {
        /* the TGS exchange for our own SPN: unknown to this KDC, ... */
        kd_cause cause = kd_cause_from_kdc_error((krb5_error_code)minor);
        if (cause == KD_CAUSE_KDC_ERROR || cause == KD_CAUSE_INTERNAL_ERROR)
            cause = KD_CAUSE_KDC_ERROR;
        kd_result_fail(res, p, cause, "password", "no ticket for %s with the TGT of %s: %s", spn,
                       req->user->principal, krb5_text(p, s->ctx, (krb5_error_code)minor));
        res->krb5_code = (krb5_error_code)minor;
        gss_release_buffer(&minor, &out);
        return cause;
    }
    *token = apr_pmemdup(p, out.value, out.length);
    *len = out.length;
    gss_release_buffer(&minor, &out);
    return KD_CAUSE_NONE;
}

kd_cause kd_password_token(apr_pool_t *p, const kd_password_request *req, unsigned char **token,
                           size_t *len, uint32_t *ntstatus, kd_result *res)
{
    check_state s;
    krb5_error_code code;
    kd_cause cause = KD_CAUSE_NONE;

    memset(&s, 0, sizeof(s));
    s.cred = GSS_C_NO_CREDENTIAL;
    s.target = GSS_C_NO_NAME;
    s.gctx = GSS_C_NO_CONTEXT;
    *ntstatus = 0;
    *token = NULL;
    *len = 0;
    if (req->user->error != NULL)
        return kd_result_fail(res, p, KD_CAUSE_WRONG_PASSWORD, "password", "%s", req->user->error);
    if ((code = krb5_init_context(&s.ctx)) != 0)
        return kd_result_fail(res, p, KD_CAUSE_INTERNAL_ERROR, "password",
                              "krb5_init_context failed (%d)", (int)code);
    code = krb5_parse_name_flags(s.ctx, req->user->principal,
                                 req->user->enterprise ? KRB5_PRINCIPAL_PARSE_ENTERPRISE : 0,
                                 &s.client);
    if (code != 0)
        cause = kd_result_fail(res, p, KD_CAUSE_WRONG_PASSWORD, "password",
                               "%s is not a principal name: %s", req->user->principal,
                               krb5_text(p, s.ctx, code));
    else if ((cause = get_tgt(p, &s, req, ntstatus, res)) == KD_CAUSE_NONE)
        cause = make_token(p, &s, req, token, len, res);
    check_release(&s);
    return cause;
}

/* ------------------------------------------------------------ caches */

typedef struct {
    unsigned char key[KD_PASSWORD_KEY_BYTES];
    apr_time_t expires;  /* 0: empty */
    void *value;         /* malloc'd, len bytes */
    size_t len;
} cache_entry;

struct kd_password_cache {
    unsigned char secret[KD_SEAL_KEY_BYTES];
    apr_thread_mutex_t *lock;
    cache_entry *slots;
    int capacity;
};

static apr_status_t cache_cleanup(void *data)
{
    kd_password_cache *c = data;
    int i;

    for (i = 0; i < c->capacity; i++) {
        free(c->slots[i].value);
        c->slots[i].value = NULL;
    }
    memset(c->secret, 0, sizeof(c->secret));
    return APR_SUCCESS;
}

kd_password_cache *kd_password_cache_create(apr_pool_t *p, int capacity)
{
    kd_password_cache *c = apr_pcalloc(p, sizeof(*c));

    if (capacity < 1 || kd_random(c->secret, sizeof(c->secret)) != 0
        || apr_thread_mutex_create(&c->lock, APR_THREAD_MUTEX_DEFAULT, p) != APR_SUCCESS)
        return NULL;
    c->capacity = capacity;
    c->slots = apr_pcalloc(p, sizeof(cache_entry) * (apr_size_t)capacity);
    apr_pool_cleanup_register(p, c, cache_cleanup, apr_pool_cleanup_null);
    return c;
}

void kd_password_cache_key(const kd_password_cache *c, const char *user, const char *password,
                           unsigned char key[KD_PASSWORD_KEY_BYTES])
{
    size_t ul = strlen(user), pl = strlen(password);
    unsigned char *buf = malloc(ul + 1 + pl);

    if (buf == NULL) {
        memset(key, 0, KD_PASSWORD_KEY_BYTES); /* all-zero never matches a stored key */
        return;
    }
    memcpy(buf, user, ul);
    buf[ul] = 0;
    memcpy(buf + ul + 1, password, pl);
    kd_mac(c->secret, buf, ul + 1 + pl, key);
    memset(buf, 0, ul + 1 + pl);
    free(buf);
}

static cache_entry *slot_of(kd_password_cache *c, const unsigned char *key)
{
    uint32_t h = (uint32_t)key[0] | (uint32_t)key[1] << 8 | (uint32_t)key[2] << 16
                 | (uint32_t)key[3] << 24;

    return &c->slots[h % (uint32_t)c->capacity];
}

static int is_zero(const unsigned char *key)
{
    unsigned char acc = 0;
    int i;

    for (i = 0; i < KD_PASSWORD_KEY_BYTES; i++)
        acc |= key[i];
    return acc == 0;
}

void kd_password_cache_put(kd_password_cache *c, const unsigned char key[KD_PASSWORD_KEY_BYTES],
                           const void *value, size_t len, apr_time_t now, apr_interval_time_t lifetime)
{
    cache_entry *e;
    void *copy = NULL;

    if (c == NULL || lifetime <= 0 || is_zero(key))
        return;
    if (len > 0 && (copy = malloc(len)) == NULL)
        return;
    if (len > 0)
        memcpy(copy, value, len);
    if (apr_thread_mutex_lock(c->lock) != APR_SUCCESS) {
        free(copy);
        return;
    }
    e = slot_of(c, key);
    free(e->value);
    memcpy(e->key, key, KD_PASSWORD_KEY_BYTES);
    e->value = copy;
    e->len = len;
    e->expires = now + lifetime;
    apr_thread_mutex_unlock(c->lock);
}

int kd_password_cache_get(kd_password_cache *c, apr_pool_t *p,
                          const unsigned char key[KD_PASSWORD_KEY_BYTES], apr_time_t now,
                          void **value, size_t *len)
{
    cache_entry *e;
    int found = 0;

    *value = NULL;
    *len = 0;
    if (c == NULL || is_zero(key) || apr_thread_mutex_lock(c->lock) != APR_SUCCESS)
        return 0;
    e = slot_of(c, key);
    if (e->expires > now && memcmp(e->key, key, KD_PASSWORD_KEY_BYTES) == 0) {
        found = 1;
        *len = e->len;
        *value = e->len ? apr_pmemdup(p, e->value, e->len) : NULL;
    }
    apr_thread_mutex_unlock(c->lock);
    return found;
}

void kd_password_cache_drop(kd_password_cache *c, const unsigned char key[KD_PASSWORD_KEY_BYTES])
{
    cache_entry *e;

    if (c == NULL || apr_thread_mutex_lock(c->lock) != APR_SUCCESS)
        return;
    e = slot_of(c, key);
    if (memcmp(e->key, key, KD_PASSWORD_KEY_BYTES) == 0) {
        free(e->value);
        e->value = NULL;
        e->len = 0;
        e->expires = 0;
    }
    apr_thread_mutex_unlock(c->lock);
}
