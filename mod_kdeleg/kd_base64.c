#include "kd_base64.h"

#include <stdint.h>

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of each input byte, XX (0xff) outside the alphabet: one lookup per
 * character keeps decoding off the profile (every Negotiate request decodes
 * a 1-2 KB token).  Constant, so threads share it without locking. */
#define XX 0xff
static const unsigned char decode_table[256] = {
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, 62, XX, XX, XX, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, XX, XX, XX, XX, XX, XX,
    XX,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, XX, XX, XX, XX, XX,
    XX, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
    XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX, XX,
};
#undef XX

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
    for (i = 0; i + 4 <= n; i += 4) { /* whole quanta: 4 characters, 3 bytes */
        const unsigned char *q = (const unsigned char *)in + i;
        unsigned char a = decode_table[q[0]], b = decode_table[q[1]];
        unsigned char c = decode_table[q[2]], d = decode_table[q[3]];
        if ((a | b | c | d) & 0xc0)
            return KD_B64_INVALID;
        acc = ((uint32_t)a << 18) | ((uint32_t)b << 12) | ((uint32_t)c << 6) | d;
        buf[o++] = (unsigned char)(acc >> 16);
        buf[o++] = (unsigned char)(acc >> 8);
        buf[o++] = (unsigned char)acc;
    }
    for (acc = 0; i < n; i++) { /* the unpadded tail: 2 or 3 characters */
        unsigned char v = decode_table[(unsigned char)in[i]];
        if (v & 0xc0)
            return KD_B64_INVALID;
        acc = (acc << 6) | v;
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
