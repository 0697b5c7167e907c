/* kd_identity: the identity policy's questions about a client, asked
 * after its token (or session) has been verified: is it the anonymous
 * principal, is its realm one the location accepts, and did a module we
 * trust establish a user that protocol transition may act on. */
#ifndef KD_IDENTITY_H
#define KD_IDENTITY_H

#include <apr_tables.h>

/* WELLKNOWN/ANONYMOUS in any realm, or any name in the anonymous realm
 * WELLKNOWN:ANONYMOUS (RFC 8062). MIT's acceptor does not set
 * GSS_C_ANON_FLAG, so the name is what tells. */
int kd_principal_is_anonymous(const char *principal);

/* The realm after the last '@', or NULL. */
const char *kd_principal_realm(const char *principal);

/* 1 when realms is NULL (no policy), lists "*" (every realm: an inner
 * scope lifting an outer list), or lists realm exactly (realms are
 * case-sensitive in Kerberos). */
int kd_realm_allowed(const char *realm, const apr_array_header_t *realms);

/* 1 when auth_type names a module that checked the user's password
 * (Basic, Form), or one of extra (KdelegTrustedAuthTypes), case-insensitive. */
int kd_auth_type_trusted(const char *auth_type, const apr_array_header_t *extra);

#endif
