/* kd_password: a user's password checked against the KDC in a way a fake
 * KDC cannot pass, for AuthBasicProvider/AuthFormProvider kdeleg.
 *
 * A bare AS exchange ("kinit") proves only that *some* KDC accepted the
 * password: an attacker who answers on the KDC's address with the same
 * realm name issues a TGT for any password. So the TGT is used at once to
 * get a ticket for the module's own service principal, and that ticket is
 * turned into a GSS-API token the acceptor verifies with the keytab: only
 * the real KDC knows the service key. The token's ticket is then the
 * user's S4U2Proxy evidence, as for a browser's Negotiate token, and the
 * TGT is destroyed before kd_password_token returns.
 *
 * The success and failure caches are per process: keys are
 * HMAC-SHA-256(random per-process secret, user NUL password), so neither a
 * password nor a plain hash of one is ever kept. */
#ifndef KD_PASSWORD_H
#define KD_PASSWORD_H

#include <stddef.h>
#include <stdint.h>
#include <apr_pools.h>
#include <apr_time.h>

#include "kd_causes.h"
#include "kd_result.h"
#include "kd_s4u.h"

/* AD's NTSTATUS values that tell refused logons apart (MS-ERREF). */
#define KD_NT_WRONG_PASSWORD 0xC000006AU
#define KD_NT_NO_SUCH_USER 0xC0000064U
#define KD_NT_ACCOUNT_DISABLED 0xC0000072U
#define KD_NT_ACCOUNT_EXPIRED 0xC0000193U
#define KD_NT_ACCOUNT_LOCKED_OUT 0xC0000234U
#define KD_NT_PASSWORD_EXPIRED 0xC0000071U
#define KD_NT_PASSWORD_MUST_CHANGE 0xC0000224U
#define KD_NT_INVALID_LOGON_HOURS 0xC000006FU
#define KD_NT_INVALID_WORKSTATION 0xC0000070U
#define KD_NT_ACCOUNT_RESTRICTION 0xC000006EU

typedef struct {
    const kd_user_name *user;  /* whose password (kd_s4u_user_name: realm, enterprise) */
    const char *password;
    const char *service;       /* the module's own SPN, "HTTP/host" or with "@REALM";
                                  without a realm, the user's realm */
} kd_password_request;

/* The AS exchange with the password, then a ticket for req->service, made
 * into a raw Kerberos GSS-API token (no mutual authentication) for
 * kd_acceptor_accept. On failure the cause says what the KDC answered,
 * using AD's NTSTATUS from the error's e-data where there is one
 * (*ntstatus, 0 when none). Thread safe (own krb5 context). */
kd_cause kd_password_token(apr_pool_t *p, const kd_password_request *req, unsigned char **token,
                           size_t *len, uint32_t *ntstatus, kd_result *res);

/* The NTSTATUS a KRB-ERROR's e-data carries (AD and Samba: a PA-DATA or
 * KERB-ERROR-DATA of type 3 whose value starts with the status, little
 * endian; also inside a SEQUENCE OF them); 0 when there is none. Bounded:
 * any malformed input gives 0. */
uint32_t kd_password_ntstatus(const unsigned char *edata, size_t len);

/* The cause for a refused AS exchange: the NTSTATUS decides when present
 * (AD), else the Kerberos code (MIT merges some: see kd_causes.c). */
kd_cause kd_cause_from_password_error(krb5_error_code code, uint32_t ntstatus);

/* ---------------------------------------------------------------- caches */

typedef struct kd_password_cache kd_password_cache;

#define KD_PASSWORD_KEY_BYTES 32

/* A cache of at most capacity entries (direct-mapped: a new entry may
 * push out an older one), guarded by its own mutex; NULL on failure. */
kd_password_cache *kd_password_cache_create(apr_pool_t *p, int capacity);

/* The entry key for (user, password) under this cache's secret. */
void kd_password_cache_key(const kd_password_cache *c, const char *user, const char *password,
                           unsigned char key[KD_PASSWORD_KEY_BYTES]);

/* Remember value (copied; may be empty) under key until now + lifetime. */
void kd_password_cache_put(kd_password_cache *c, const unsigned char key[KD_PASSWORD_KEY_BYTES],
                           const void *value, size_t len, apr_time_t now, apr_interval_time_t lifetime);

/* 1 and a pool copy of the value when key is present and not expired. */
int kd_password_cache_get(kd_password_cache *c, apr_pool_t *p,
                          const unsigned char key[KD_PASSWORD_KEY_BYTES], apr_time_t now,
                          void **value, size_t *len);

/* Forget key (a cached success whose evidence the location cannot do without). */
void kd_password_cache_drop(kd_password_cache *c, const unsigned char key[KD_PASSWORD_KEY_BYTES]);

#endif
