#include "kd_keytab.h"

#include <string.h>
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
