/* kd_keytab: what a keytab holds, for the status page and the self-test:
 * principal, key version and encryption type of each entry. Keys are
 * never read out of the library's structures. */
#ifndef KD_KEYTAB_H
#define KD_KEYTAB_H

#include <apr_pools.h>
#include <apr_tables.h>
#include <krb5.h>

typedef struct {
    const char *principal; /* with realm */
    int kvno;
    const char *enctype;   /* e.g. "aes256-cts-hmac-sha1-96" */
} kd_keytab_entry;

/* The entries of the keytab file at path (kd_keytab_entry); NULL and *err
 * when it cannot be read. */
apr_array_header_t *kd_keytab_list(apr_pool_t *p, const char *path, const char **err);

/* Does the list hold principal (compared as text, realm included, or
 * without realm when principal has none)? Highest kvno seen, or -1. */
int kd_keytab_kvno(const apr_array_header_t *entries, const char *principal);

/* Whose key serves an SPN, as Active Directory arranges keytabs.
 * host_alias: the keytab has no entry for svc/host but one for host/host,
 * whose key AD uses for svc/host on a computer account (sPNMappings).
 * account: the entry without an instance (websvc@REALM, WEB2$@REALM) that
 * holds the same key: AD issues TGTs to the account, never to an SPN, so
 * that is who the front end must be when it asks for tickets itself. NULL
 * when the keytab has none (MIT keytabs: the SPN itself then). */
typedef struct {
    char *account;       /* malloc'd by krb5 (krb5_free_unparsed_name), or NULL */
    int host_alias;      /* 1: served by host/<host>'s key */
    int spn_found;       /* the SPN or its host alias has at least one key */
} kd_keytab_identity;

krb5_error_code kd_keytab_identify(krb5_context ctx, krb5_keytab kt, krb5_const_principal spn,
                                   kd_keytab_identity *out);
void kd_keytab_identity_free(krb5_context ctx, kd_keytab_identity *id);

/* The host/<host>@REALM principal whose key AD uses for svc/<host>@REALM,
 * or NULL when spn is not of that form (or is itself host/). */
krb5_error_code kd_keytab_host_principal(krb5_context ctx, krb5_const_principal spn,
                                         krb5_principal *host);

/* The names a keytab file holds, compared ignoring case. A ticket's
 * sname and realm are outside its encrypted part, spelled as the client
 * likes (AD matches SPNs ignoring case), while MIT finds keys by exact
 * name: acceptors are pinned to the name as the keytab spells it, and a
 * name the keytab lacks is answered from the index without reading the
 * file again. */
typedef struct kd_keytab_index kd_keytab_index;

/* Read the keytab file at path; NULL and *err when it cannot be read. */
kd_keytab_index *kd_keytab_index_read(apr_pool_t *p, krb5_context ctx, const char *path,
                                      const char **err);

/* The keytab's spelling of service/host@realm, or, when only its host
 * alias (host/host@realm) is there, service/host@ALIAS-REALM as the alias
 * spells the realm. NULL when neither is; *elsewhere then says whether
 * service/host (or its alias) is there in another realm. */
const char *kd_keytab_index_spelling(const kd_keytab_index *ix, apr_pool_t *p,
                                     const char *service, const char *host, const char *realm,
                                     int *elsewhere);

/* Copy every entry of from into to; with alias set, entries of host_alias
 * are added a second time under alias (the HOST mapping). */
krb5_error_code kd_keytab_copy(krb5_context ctx, krb5_keytab from, krb5_keytab to,
                               krb5_const_principal host_alias, krb5_const_principal alias);

/* Status page: the same judgement for a keytab file and an SPN string.
 * *account is NULL (none), and *host_alias says whose key serves it. */
void kd_keytab_describe(apr_pool_t *p, const char *path, const char *spn, const char **account,
                        int *host_alias);

#endif
