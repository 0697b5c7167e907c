#include "kd_seal.h"

#include <pthread.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define SEAL_VERSION 1
#define NONCE_BYTES 12
#define TAG_BYTES 16

/* The cipher is fetched from the provider once per process: the implicit
 * fetch behind EVP_aes_256_gcm() takes a lock on every call, which showed
 * in the profile of session-cookie requests. */
static EVP_CIPHER *aes_gcm;
static pthread_once_t aes_gcm_once = PTHREAD_ONCE_INIT;

static void fetch_aes_gcm(void)
{
    aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static const EVP_CIPHER *cipher(void)
{
    pthread_once(&aes_gcm_once, fetch_aes_gcm);
    return aes_gcm ? aes_gcm : EVP_aes_256_gcm();
}

int kd_random(unsigned char *buf, size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

void kd_mac(const unsigned char key[KD_SEAL_KEY_BYTES], const unsigned char *data, size_t len,
            unsigned char out[32])
{
    unsigned int out_len = 32;

    HMAC(EVP_sha256(), key, KD_SEAL_KEY_BYTES, data, len, out, &out_len);
}

int kd_seal(apr_pool_t *p, const unsigned char key[KD_SEAL_KEY_BYTES], const unsigned char *aad,
            size_t aad_len, const unsigned char *plain, size_t len, unsigned char **out,
            size_t *out_len)
{
    EVP_CIPHER_CTX *ctx;
    unsigned char *blob;
    int n, rv = -1;

    if (len > 1024 * 1024 || aad_len > 1024 * 1024)
        return -1;
    blob = apr_palloc(p, len + KD_SEAL_OVERHEAD);
    blob[0] = SEAL_VERSION;
    if (kd_random(blob + 1, NONCE_BYTES) != 0 || (ctx = EVP_CIPHER_CTX_new()) == NULL)
        return -1;
    if (EVP_EncryptInit_ex(ctx, cipher(), NULL, key, blob + 1) == 1
        && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1
        && EVP_EncryptUpdate(ctx, blob + 1 + NONCE_BYTES, &n, plain, (int)len) == 1
        && EVP_EncryptFinal_ex(ctx, blob + 1 + NONCE_BYTES + n, &n) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES,
                               blob + 1 + NONCE_BYTES + len) == 1) {
        *out = blob;
        *out_len = len + KD_SEAL_OVERHEAD;
        rv = 0;
    }
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}

int kd_open(apr_pool_t *p, const unsigned char key[KD_SEAL_KEY_BYTES], const unsigned char *aad,
            size_t aad_len, const unsigned char *blob, size_t len, unsigned char **out,
            size_t *out_len)
{
    EVP_CIPHER_CTX *ctx;
    unsigned char *plain, tag[TAG_BYTES];
    size_t plain_len;
    int n, rv = -1;

    if (len < KD_SEAL_OVERHEAD || blob[0] != SEAL_VERSION || len > 1024 * 1024 + KD_SEAL_OVERHEAD)
        return -1;
    plain_len = len - KD_SEAL_OVERHEAD;
    plain = apr_palloc(p, plain_len + 1);
    memcpy(tag, blob + 1 + NONCE_BYTES + plain_len, TAG_BYTES);
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
        return -1;
    if (EVP_DecryptInit_ex(ctx, cipher(), NULL, key, blob + 1) == 1
        && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1
        && EVP_DecryptUpdate(ctx, plain, &n, blob + 1 + NONCE_BYTES, (int)plain_len) == 1
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag) == 1
        && EVP_DecryptFinal_ex(ctx, plain + n, &n) == 1) {
        plain[plain_len] = '\0';
        *out = plain;
        *out_len = plain_len;
        rv = 0;
    }
    EVP_CIPHER_CTX_free(ctx);
    return rv;
}
