#include "kd_chanbind.h"

#include <string.h>
#include <apr_strings.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* RFC 5929 4.1: the signature's own digest, upgraded to SHA-256 when it
 * is MD5 or SHA-1 (or absent). */
static const EVP_MD *binding_digest(const X509 *x)
{
    int md_nid = NID_undef, pk_nid = NID_undef;
    const EVP_MD *md;

    if (!OBJ_find_sigid_algs(X509_get_signature_nid(x), &md_nid, &pk_nid)
        || md_nid == NID_undef || md_nid == NID_md5 || md_nid == NID_sha1
        || (md = EVP_get_digestbynid(md_nid)) == NULL)
        return EVP_sha256();
    return md;
}

static int from_x509(apr_pool_t *p, X509 *x, kd_chanbind *out, const char **err)
{
    const EVP_MD *md = binding_digest(x);
    unsigned char *der = NULL, *data;
    unsigned int hlen = 0;
    size_t plen = sizeof(KD_CHANBIND_PREFIX) - 1;
    int dlen, ok;

    if ((dlen = i2d_X509(x, &der)) <= 0) {
        *err = "cannot encode the certificate as DER";
        return -1;
    }
    data = apr_palloc(p, plen + EVP_MAX_MD_SIZE);
    memcpy(data, KD_CHANBIND_PREFIX, plen);
    ok = EVP_Digest(der, (size_t)dlen, data + plen, &hlen, md, NULL);
    OPENSSL_free(der);
    if (!ok) {
        *err = "cannot hash the certificate";
        return -1;
    }
    out->data = data;
    out->len = plen + hlen;
    out->hash_name = apr_pstrdup(p, OBJ_nid2sn(EVP_MD_get_type(md)));
    return 0;
}

int kd_chanbind_from_pem(apr_pool_t *p, const char *pem, size_t len, kd_chanbind *out,
                         const char **err)
{
    BIO *bio;
    X509 *x;
    int rc;

    memset(out, 0, sizeof(*out));
    if (pem == NULL || len == 0 || len > 1024 * 1024) {
        *err = "no PEM certificate";
        return -1;
    }
    if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
        *err = "out of memory";
        return -1;
    }
    x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (x == NULL) {
        *err = "no PEM certificate (-----BEGIN CERTIFICATE-----) could be read";
        return -1;
    }
    rc = from_x509(p, x, out, err);
    X509_free(x);
    return rc;
}

int kd_chanbind_from_der(apr_pool_t *p, const unsigned char *der, size_t len, kd_chanbind *out,
                         const char **err)
{
    const unsigned char *q = der;
    X509 *x;
    int rc;

    memset(out, 0, sizeof(*out));
    if (der == NULL || len == 0 || len > 1024 * 1024
        || (x = d2i_X509(NULL, &q, (long)len)) == NULL) {
        *err = "not a DER certificate";
        return -1;
    }
    if (q != der + len) {
        X509_free(x);
        *err = "bytes follow the DER certificate";
        return -1;
    }
    rc = from_x509(p, x, out, err);
    X509_free(x);
    return rc;
}
