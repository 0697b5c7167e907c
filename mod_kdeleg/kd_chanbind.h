/* kd_chanbind: TLS channel binding, RFC 5929 "tls-server-end-point".
 * The binding is a hash of the server certificate the client saw: a
 * Negotiate token made for one TLS server cannot be relayed by a
 * man-in-the-middle that terminates TLS with another certificate. Only
 * certificate parsing and hashing here (libcrypto); the glue finds the
 * certificate (mod_ssl, or KdelegChannelBindingCert behind a balancer)
 * and kd_accept passes the result to gss_accept_sec_context. */
#ifndef KD_CHANBIND_H
#define KD_CHANBIND_H

#include <stddef.h>
#include <apr_pools.h>

#define KD_CHANBIND_PREFIX "tls-server-end-point:"

typedef struct {
    /* The channel bindings' application data: KD_CHANBIND_PREFIX followed
     * by the certificate hash (raw octets, not hex), as MIT, Windows
     * (SEC_CHANNEL_BINDINGS) and python-gssapi clients build it. */
    const unsigned char *data;
    size_t len;
    const char *hash_name;   /* "SHA256", "SHA384", ...: the hash used */
} kd_chanbind;

/* The binding for the first certificate in pem (len bytes, need not be
 * NUL-terminated), allocated in p. The hash is the certificate signature's
 * digest, except SHA-256 when that is MD5 or SHA-1 (RFC 5929 section 4.1)
 * or when the signature names no separate digest (Ed25519, Ed448: RFC
 * 5929 leaves them undefined; SHA-256 is what other implementations use).
 * 0, or -1 with a reason in *err (static or in p). */
int kd_chanbind_from_pem(apr_pool_t *p, const char *pem, size_t len, kd_chanbind *out,
                         const char **err);

/* The same for a DER certificate. */
int kd_chanbind_from_der(apr_pool_t *p, const unsigned char *der, size_t len, kd_chanbind *out,
                         const char **err);

#endif
