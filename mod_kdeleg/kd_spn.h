/* kd_spn: service principal names as administrators write them
 * ("HTTP/vip.example.test", optionally "@REALM") and as tickets carry them. */
#ifndef KD_SPN_H
#define KD_SPN_H

#include <apr_pools.h>

typedef struct {
    const char *service;  /* "HTTP" */
    const char *host;     /* "vip.example.test" */
    const char *realm;    /* NULL: any realm the keytab holds */
} kd_spn;

/* Parse "service/host[@REALM]". Returns NULL on success, else an error
 * message naming what is wrong (for directive errors). */
const char *kd_spn_parse(apr_pool_t *p, const char *text, kd_spn *out);

/* "service/host" or "service/host@REALM". */
const char *kd_spn_unparse(apr_pool_t *p, const kd_spn *spn);

/* Does a ticket for sname ("HTTP/host") in realm match this configured SPN?
 * Compared case-insensitively: Active Directory treats SPNs that way, and a
 * configured name is an allow-list entry, not a key. */
int kd_spn_matches(const kd_spn *spn, const char *sname, const char *realm);

#endif
