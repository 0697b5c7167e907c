#include "kd_der.h"

static int read_length(const unsigned char **pos, const unsigned char *end, size_t *len)
{
    const unsigned char *p = *pos;
    size_t n, i, v = 0;

    if (p >= end)
        return -1;
    if ((*p & 0x80) == 0) {
        *len = *p;
        *pos = p + 1;
        return 0;
    }
    n = *p & 0x7f;
    p++;
    if (n == 0 || n > 4 || (size_t)(end - p) < n)
        return -1; /* indefinite length or absurdly long */
    for (i = 0; i < n; i++)
        v = (v << 8) | p[i];
    if (v < 0x80)
        return -1; /* DER requires the short form here */
    *len = v;
    *pos = p + n;
    return 0;
}

int kd_der_next(const unsigned char **pos, const unsigned char *end, kd_der *out)
{
    const unsigned char *p = *pos;
    size_t len;

    if (p == NULL || p >= end)
        return -1;
    out->cls = (*p >> 6) & 3;
    out->constructed = (*p & 0x20) != 0;
    out->tag = *p & 0x1f;
    if (out->tag == 0x1f)
        return -1; /* high tag numbers do not occur in Kerberos/SPNEGO */
    p++;
    if (read_length(&p, end, &len) != 0)
        return -1;
    if ((size_t)(end - p) < len)
        return -1;
    out->val = p;
    out->len = len;
    out->raw = *pos;
    out->raw_len = (size_t)(p + len - *pos);
    *pos = p + len;
    return 0;
}

int kd_der_whole(const unsigned char *buf, size_t len, kd_der *out)
{
    const unsigned char *p = buf;

    if (kd_der_next(&p, buf + len, out) != 0)
        return -1;
    return p == buf + len ? 0 : -1;
}

int kd_der_field(const kd_der *seq, unsigned tag, kd_der *out)
{
    const unsigned char *p = seq->val, *end = seq->val + seq->len;
    kd_der el;

    while (p < end) {
        if (kd_der_next(&p, end, &el) != 0)
            return -1;
        if (el.cls == KD_DER_CONTEXT && el.tag == tag && el.constructed)
            return kd_der_whole(el.val, el.len, out);
    }
    return -1;
}

int kd_der_int32(const kd_der *el, int32_t *out)
{
    uint32_t v;
    size_t i;

    if (!kd_der_is(el, KD_DER_UNIVERSAL, 2) || el->len == 0 || el->len > 4)
        return -1;
    v = (el->val[0] & 0x80) ? 0xffffffffu : 0;
    for (i = 0; i < el->len; i++)
        v = (v << 8) | el->val[i];
    *out = (int32_t)v;
    return 0;
}

int kd_der_is(const kd_der *el, unsigned cls, unsigned tag)
{
    return el->cls == cls && el->tag == tag;
}
