#include "kd_base64.h"

#include <stdint.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strip correct padding; reject '=' anywhere else. */
static kd_b64_status strip_padding(const char *in, size_t *len)
{
    size_t n = *len, pad = 0;

    while (n > 0 && in[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if (pad > 0 && (*len % 4) != 0)
        return KD_B64_INVALID;
    if (n % 4 == 1)
        return KD_B64_INVALID; /* 6 bits cannot end a byte */
    *len = n;
    return KD_B64_OK;
}

kd_b64_status kd_b64_decode(apr_pool_t *p, const char *in, size_t in_len, size_t max_out,
                            unsigned char **out, size_t *out_len)
{
    size_t n = in_len, i, o = 0, need;
    uint32_t acc = 0;
    int bits = 0;
    unsigned char *buf;

    *out = NULL;
    *out_len = 0;
    if (in == NULL || in_len == 0)
        return KD_B64_EMPTY;
    if (in_len / 4 > max_out / 3 + 1)
        return KD_B64_TOO_LONG; /* cheap bound before any work */
    if (strip_padding(in, &n) != KD_B64_OK)
        return KD_B64_INVALID;
    if (n == 0)
        return KD_B64_EMPTY;
    need = (n / 4) * 3 + ((n % 4) ? (n % 4) - 1 : 0);
    if (need > max_out)
        return KD_B64_TOO_LONG;
    buf = apr_palloc(p, need + 1);
    for (i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0)
            return KD_B64_INVALID;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return KD_B64_OK;
}

char *kd_b64_encode(apr_pool_t *p, const unsigned char *in, size_t len)
{
    size_t i, o = 0;
    char *buf = apr_palloc(p, ((len + 2) / 3) * 4 + 1);

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        buf[o++] = alphabet[(v >> 18) & 63];
        buf[o++] = alphabet[(v >> 12) & 63];
        buf[o++] = alphabet[(v >> 6) & 63];
        buf[o++] = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        buf[o++] = alphabet[(v >> 18) & 63];
        buf[o++] = alphabet[(v >> 12) & 63];
        buf[o++] = (i + 1 < len) ? alphabet[(v >> 6) & 63] : '=';
        buf[o++] = '=';
    }
    buf[o] = '\0';
    return buf;
}

const char *kd_b64_status_str(kd_b64_status st)
{
    switch (st) {
    case KD_B64_OK:
        return "ok";
    case KD_B64_EMPTY:
        return "empty token";
    case KD_B64_TOO_LONG:
        return "token too long";
    case KD_B64_INVALID:
        return "invalid base64";
    }
    return "unknown";
}
