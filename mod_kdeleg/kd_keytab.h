/* kd_keytab: what a keytab holds, for the status page and the self-test:
 * principal, key version and encryption type of each entry. Keys are
 * never read out of the library's structures. */
#ifndef KD_KEYTAB_H
#define KD_KEYTAB_H

#include <apr_pools.h>
#include <apr_tables.h>

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

#endif
