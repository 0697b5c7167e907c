/* kd_der: just enough DER to look inside Negotiate tokens without trusting
 * them. Every read is bounds-checked against the end of its enclosing
 * element; indefinite lengths (BER, not DER) and high tag numbers are
 * refused. */
#ifndef KD_DER_H
#define KD_DER_H

#include <stddef.h>
#include <stdint.h>

enum { KD_DER_UNIVERSAL = 0, KD_DER_APPLICATION = 1, KD_DER_CONTEXT = 2, KD_DER_PRIVATE = 3 };

typedef struct {
    unsigned cls;              /* KD_DER_* class */
    int constructed;
    unsigned tag;              /* 0..30 */
    const unsigned char *val;  /* contents */
    size_t len;
    const unsigned char *raw;  /* the whole element: identifier, length, contents */
    size_t raw_len;
} kd_der;

/* Read the element at *pos (< end) and advance *pos past it. 0 on success. */
int kd_der_next(const unsigned char **pos, const unsigned char *end, kd_der *out);

/* Read exactly one element filling [buf, buf+len); trailing bytes are an error. */
int kd_der_whole(const unsigned char *buf, size_t len, kd_der *out);

/* Find the context-tagged field [tag] among a SEQUENCE's contents. 0 if found. */
int kd_der_field(const kd_der *seq, unsigned tag, kd_der *out);

/* INTEGER that fits in int32_t. 0 on success. */
int kd_der_int32(const kd_der *el, int32_t *out);

/* An element is a given universal/application/context tag. */
int kd_der_is(const kd_der *el, unsigned cls, unsigned tag);

#endif
