#include "kd_keytab.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <apr_hash.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <krb5.h>

static const char *enctype_name(apr_pool_t *p, krb5_enctype e)
{
    char name[64];

    if (krb5_enctype_to_name(e, FALSE, name, sizeof(name)) == 0)
        return apr_pstrdup(p, name);
    return apr_psprintf(p, "enctype-%d", (int)e);
}

apr_array_header_t *kd_keytab_list(apr_pool_t *p, const char *path, const char **err)
{
    krb5_context ctx;
    krb5_keytab kt = NULL;
    krb5_kt_cursor cur;
    krb5_keytab_entry entry;
    krb5_error_code code;
    apr_array_header_t *list = NULL;

    *err = NULL;
    if ((code = krb5_init_context(&ctx)) != 0) {
        *err = "cannot create a krb5 context";
        return NULL;
    }
    if ((code = krb5_kt_resolve(ctx, apr_pstrcat(p, "FILE:", path, NULL), &kt)) != 0
        || (code = krb5_kt_start_seq_get(ctx, kt, &cur)) != 0) {
        const char *msg = krb5_get_error_message(ctx, code);
        *err = apr_pstrdup(p, msg);
        krb5_free_error_message(ctx, msg);
        goto done;
    }
    list = apr_array_make(p, 8, sizeof(kd_keytab_entry));
    while (krb5_kt_next_entry(ctx, kt, &entry, &cur) == 0) {
        char *name = NULL;
        kd_keytab_entry *e = apr_array_push(list);
        if (krb5_unparse_name(ctx, entry.principal, &name) == 0) {
            e->principal = apr_pstrdup(p, name);
            krb5_free_unparsed_name(ctx, name);
        }
        else
            e->principal = "?";
        e->kvno = (int)entry.vno;
        e->enctype = enctype_name(p, entry.key.enctype);
        krb5_free_keytab_entry_contents(ctx, &entry);
    }
    krb5_kt_end_seq_get(ctx, kt, &cur);
done:
    if (kt)
        krb5_kt_close(ctx, kt);
    krb5_free_context(ctx);
    return list;
}

int kd_keytab_kvno(const apr_array_header_t *entries, const char *principal)
{
    int i, best = -1, has_realm = strchr(principal, '@') != NULL;
    size_t n = strlen(principal);

    for (i = 0; entries && i < entries->nelts; i++) {
        const kd_keytab_entry *e = &APR_ARRAY_IDX(entries, i, kd_keytab_entry);
        int match = has_realm ? strcmp(e->principal, principal) == 0
                              : strncmp(e->principal, principal, n) == 0 && e->principal[n] == '@';
        if (match && e->kvno > best)
            best = e->kvno;
    }
    return best;
}

/* ------------------------------------------------------------ identities */

krb5_error_code kd_keytab_host_principal(krb5_context ctx, krb5_const_principal spn,
                                         krb5_principal *host)
{
    const krb5_data *svc, *name;

    *host = NULL;
    if (spn->length != 2)
        return 0;
    svc = &spn->data[0];
    name = &spn->data[1];
    if (svc->length == 4 && strncasecmp(svc->data, "host", 4) == 0)
        return 0;
    return krb5_build_principal_ext(ctx, host, spn->realm.length, spn->realm.data, 4, "host",
                                    name->length, name->data, 0);
}

/* Host names are case-insensitive, and AD's keytabs say "host/" where a
 * ticket says "HOST/": compare the service and host that way. */
static int same_service(krb5_const_principal a, krb5_const_principal b)
{
    krb5_int32 i;

    if (a->length != b->length || a->realm.length != b->realm.length
        || memcmp(a->realm.data, b->realm.data, a->realm.length) != 0)
        return 0;
    for (i = 0; i < a->length; i++) {
        if (a->data[i].length != b->data[i].length
            || strncasecmp(a->data[i].data, b->data[i].data, a->data[i].length) != 0)
            return 0;
    }
    return 1;
}

static int is_account(krb5_const_principal p, krb5_const_principal spn)
{
    return p->length == 1 && p->realm.length == spn->realm.length
           && memcmp(p->realm.data, spn->realm.data, p->realm.length) == 0;
}

/* One key of the SPN (or its host alias) to compare account keys with. */
typedef struct {
    krb5_enctype enctype;
    krb5_kvno kvno;
    unsigned char *contents;
    unsigned int length;
} spn_key;

#define KD_SPN_KEYS 16

static int same_key(const spn_key *k, const krb5_keytab_entry *e)
{
    return k->enctype == e->key.enctype && k->length == e->key.length
           && memcmp(k->contents, e->key.contents, k->length) == 0;
}

/* Pass 1: the SPN's keys (or, without any, its host alias's). */
static krb5_error_code collect_spn_keys(krb5_context ctx, krb5_keytab kt,
                                        krb5_const_principal spn, krb5_const_principal host,
                                        spn_key *keys, int *n, kd_keytab_identity *out)
{
    krb5_kt_cursor cur;
    krb5_keytab_entry e;
    krb5_error_code code;
    int pass;

    for (pass = 0; pass < 2 && *n == 0; pass++) {
        krb5_const_principal want = pass == 0 ? spn : host;
        if (want == NULL || (code = krb5_kt_start_seq_get(ctx, kt, &cur)) != 0)
            continue;
        while (krb5_kt_next_entry(ctx, kt, &e, &cur) == 0) {
            if (same_service(e.principal, want) && *n < KD_SPN_KEYS
                && (keys[*n].contents = malloc(e.key.length ? e.key.length : 1)) != NULL) {
                memcpy(keys[*n].contents, e.key.contents, e.key.length);
                keys[*n].length = e.key.length;
                keys[*n].enctype = e.key.enctype;
                keys[*n].kvno = e.vno;
                (*n)++;
            }
            krb5_free_keytab_entry_contents(ctx, &e);
        }
        krb5_kt_end_seq_get(ctx, kt, &cur);
        out->host_alias = pass == 1 && *n > 0;
    }
    out->spn_found = *n > 0;
    return 0;
}

/* Pass 2: an entry without an instance holding one of those keys. */
static void find_account(krb5_context ctx, krb5_keytab kt, krb5_const_principal spn,
                         const spn_key *keys, int n, kd_keytab_identity *out)
{
    krb5_kt_cursor cur;
    krb5_keytab_entry e;
    int i;

    if (n == 0 || krb5_kt_start_seq_get(ctx, kt, &cur) != 0)
        return;
    while (out->account == NULL && krb5_kt_next_entry(ctx, kt, &e, &cur) == 0) {
        for (i = 0; i < n && is_account(e.principal, spn); i++) {
            if (same_key(&keys[i], &e)) {
                if (krb5_unparse_name(ctx, e.principal, &out->account) != 0)
                    out->account = NULL;
                break;
            }
        }
        krb5_free_keytab_entry_contents(ctx, &e);
    }
    krb5_kt_end_seq_get(ctx, kt, &cur);
}

krb5_error_code kd_keytab_identify(krb5_context ctx, krb5_keytab kt, krb5_const_principal spn,
                                   kd_keytab_identity *out)
{
    spn_key keys[KD_SPN_KEYS];
    krb5_principal host = NULL;
    krb5_error_code code;
    int n = 0, i;

    memset(out, 0, sizeof(*out));
    if ((code = kd_keytab_host_principal(ctx, spn, &host)) != 0)
        return code;
    collect_spn_keys(ctx, kt, spn, host, keys, &n, out);
    find_account(ctx, kt, spn, keys, n, out);
    for (i = 0; i < n; i++) {
        memset(keys[i].contents, 0, keys[i].length);
        free(keys[i].contents);
    }
    krb5_free_principal(ctx, host);
    return 0;
}

void kd_keytab_identity_free(krb5_context ctx, kd_keytab_identity *id)
{
    if (id->account)
        krb5_free_unparsed_name(ctx, id->account);
    id->account = NULL;
}

/* ------------------------------------------------------------ index */

struct kd_keytab_index {
    apr_hash_t *exact;    /* "svc/host@realm", lower case -> the keytab's spelling */
    apr_hash_t *anywhere; /* "svc/host", lower case -> "" */
};

static char *lower(apr_pool_t *p, const char *s)
{
    char *out = apr_pstrdup(p, s), *c;

    for (c = out; *c; c++)
        *c = (char)apr_tolower((unsigned char)*c);
    return out;
}

static void index_entry(apr_pool_t *p, kd_keytab_index *ix, krb5_context ctx,
                        krb5_const_principal princ)
{
    char *name = NULL;
    const char *at;

    if (krb5_unparse_name(ctx, princ, &name) != 0)
        return;
    apr_hash_set(ix->exact, lower(p, name), APR_HASH_KEY_STRING, apr_pstrdup(p, name));
    if ((at = strrchr(name, '@')) != NULL)
        apr_hash_set(ix->anywhere, lower(p, apr_pstrmemdup(p, name, (apr_size_t)(at - name))),
                     APR_HASH_KEY_STRING, "");
    krb5_free_unparsed_name(ctx, name);
}

kd_keytab_index *kd_keytab_index_read(apr_pool_t *p, krb5_context ctx, const char *path,
                                      const char **err)
{
    kd_keytab_index *ix = apr_pcalloc(p, sizeof(*ix));
    krb5_keytab kt = NULL;
    krb5_kt_cursor cur;
    krb5_keytab_entry e;
    krb5_error_code code;

    *err = NULL;
    ix->exact = apr_hash_make(p);
    ix->anywhere = apr_hash_make(p);
    if ((code = krb5_kt_resolve(ctx, apr_pstrcat(p, "FILE:", path, NULL), &kt)) != 0
        || (code = krb5_kt_start_seq_get(ctx, kt, &cur)) != 0) {
        const char *msg = krb5_get_error_message(ctx, code);
        *err = apr_pstrdup(p, msg);
        krb5_free_error_message(ctx, msg);
        if (kt)
            krb5_kt_close(ctx, kt);
        return NULL;
    }
    while (krb5_kt_next_entry(ctx, kt, &e, &cur) == 0) {
        index_entry(p, ix, ctx, e.principal);
        krb5_free_keytab_entry_contents(ctx, &e);
    }
    krb5_kt_end_seq_get(ctx, kt, &cur);
    krb5_kt_close(ctx, kt);
    return ix;
}

const char *kd_keytab_index_spelling(const kd_keytab_index *ix, apr_pool_t *p,
                                     const char *service, const char *host, const char *realm,
                                     int *elsewhere)
{
    const char *found, *at;

    *elsewhere = 0;
    found = apr_hash_get(ix->exact, lower(p, apr_pstrcat(p, service, "/", host, "@", realm, NULL)),
                         APR_HASH_KEY_STRING);
    if (found != NULL)
        return found;
    /* AD: HTTP/host is served by the computer account's host/host key */
    found = apr_hash_get(ix->exact, lower(p, apr_pstrcat(p, "host/", host, "@", realm, NULL)),
                         APR_HASH_KEY_STRING);
    if (found != NULL && (at = strrchr(found, '@')) != NULL)
        return apr_pstrcat(p, service, "/", host, at, NULL);
    *elsewhere = apr_hash_get(ix->anywhere, lower(p, apr_pstrcat(p, service, "/", host, NULL)),
                              APR_HASH_KEY_STRING) != NULL
                 || apr_hash_get(ix->anywhere, lower(p, apr_pstrcat(p, "host/", host, NULL)),
                                 APR_HASH_KEY_STRING) != NULL;
    return NULL;
}

krb5_error_code kd_keytab_copy(krb5_context ctx, krb5_keytab from, krb5_keytab to,
                               krb5_const_principal host_alias, krb5_const_principal alias)
{
    krb5_kt_cursor cur;
    krb5_keytab_entry e;
    krb5_error_code code;

    if ((code = krb5_kt_start_seq_get(ctx, from, &cur)) != 0)
        return code;
    while ((code = krb5_kt_next_entry(ctx, from, &e, &cur)) == 0) {
        code = krb5_kt_add_entry(ctx, to, &e);
        if (code == 0 && host_alias && alias && same_service(e.principal, host_alias)) {
            krb5_principal original = e.principal;
            e.principal = (krb5_principal)alias;
            code = krb5_kt_add_entry(ctx, to, &e);
            e.principal = original;
        }
        krb5_free_keytab_entry_contents(ctx, &e);
        if (code != 0)
            break;
    }
    krb5_kt_end_seq_get(ctx, from, &cur);
    return code == KRB5_KT_END ? 0 : code;
}

void kd_keytab_describe(apr_pool_t *p, const char *path, const char *spn, const char **account,
                        int *host_alias)
{
    krb5_context ctx;
    krb5_keytab kt = NULL;
    krb5_principal princ = NULL;
    kd_keytab_identity id;

    *account = NULL;
    *host_alias = 0;
    if (krb5_init_context(&ctx) != 0)
        return;
    if (krb5_kt_resolve(ctx, apr_pstrcat(p, "FILE:", path, NULL), &kt) == 0
        && krb5_parse_name(ctx, spn, &princ) == 0
        && kd_keytab_identify(ctx, kt, princ, &id) == 0) {
        *account = id.account ? apr_pstrdup(p, id.account) : NULL;
        *host_alias = id.host_alias;
        kd_keytab_identity_free(ctx, &id);
    }
    krb5_free_principal(ctx, princ);
    if (kt)
        krb5_kt_close(ctx, kt);
    krb5_free_context(ctx);
}
