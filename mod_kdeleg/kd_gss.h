/* kd_gss: small helpers around GSS-API status reporting. */
#ifndef KD_GSS_H
#define KD_GSS_H

#include <apr_pools.h>
#include <gssapi/gssapi.h>

/* "major message; minor message" built with gss_display_status. GSS
 * buffers are not NUL-terminated: always copied by length. */
const char *kd_gss_error(apr_pool_t *p, OM_uint32 major, OM_uint32 minor);

/* Copy a GSS buffer into the pool as a C string (length-bounded). */
const char *kd_gss_buffer_str(apr_pool_t *p, const gss_buffer_desc *buf);

/* krb5 auth_to_local for a principal name (gss_localname), or NULL when
 * no rule maps it. */
const char *kd_gss_local_name(apr_pool_t *p, const char *principal);

#endif
