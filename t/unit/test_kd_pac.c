#include "kd_unit.h"

#include <stdlib.h>
#include <string.h>

#include "kd_pac.h"

/* The PAC of MS-PAC section 3 ("Structure Examples"), without the
 * AD-IF-RELEVANT wrapper: four buffers, the logon info (type 1, 0x4b0
 * bytes at 0x48) for "lzhu" in NTDEV with 26 groups and 13 extra SIDs. */
static const unsigned char ms_pac[] = {
    0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
    0xb0, 0x04, 0x00, 0x00, 0x48, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, 0xf8, 0x04, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
    0x10, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x14, 0x00, 0x00, 0x00, 0x28, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x10, 0x08, 0x00, 0xcc, 0xcc, 0xcc, 0xcc, 0xa0, 0x04, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0xd1, 0x86, 0x66, 0x0f,
    0x65, 0x6a, 0xc6, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x17, 0xd4, 0x39, 0xfe,
    0x78, 0x4a, 0xc6, 0x01, 0x17, 0x94, 0xa3, 0x28, 0x42, 0x4b, 0xc6, 0x01,
    0x17, 0x54, 0x24, 0x97, 0x7a, 0x81, 0xc6, 0x01, 0x08, 0x00, 0x08, 0x00,
    0x04, 0x00, 0x02, 0x00, 0x24, 0x00, 0x24, 0x00, 0x08, 0x00, 0x02, 0x00,
    0x12, 0x00, 0x12, 0x00, 0x0c, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x10, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x02, 0x00, 0x54, 0x10, 0x00, 0x00,
    0x97, 0x79, 0x2c, 0x00, 0x01, 0x02, 0x00, 0x00, 0x1a, 0x00, 0x00, 0x00,
    0x1c, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x16, 0x00, 0x18, 0x00, 0x20, 0x00, 0x02, 0x00, 0x0a, 0x00, 0x0c, 0x00,
    0x24, 0x00, 0x02, 0x00, 0x28, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x0d, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x6c, 0x00, 0x7a, 0x00,
    0x68, 0x00, 0x75, 0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x12, 0x00, 0x00, 0x00, 0x4c, 0x00, 0x69, 0x00, 0x71, 0x00, 0x69, 0x00,
    0x61, 0x00, 0x6e, 0x00, 0x67, 0x00, 0x28, 0x00, 0x4c, 0x00, 0x61, 0x00,
    0x72, 0x00, 0x72, 0x00, 0x79, 0x00, 0x29, 0x00, 0x20, 0x00, 0x5a, 0x00,
    0x68, 0x00, 0x75, 0x00, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x09, 0x00, 0x00, 0x00, 0x6e, 0x00, 0x74, 0x00, 0x64, 0x00, 0x73, 0x00,
    0x32, 0x00, 0x2e, 0x00, 0x62, 0x00, 0x61, 0x00, 0x74, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x1a, 0x00, 0x00, 0x00, 0x61, 0xc4, 0x33, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x09, 0xc3, 0x2d, 0x00, 0x07, 0x00, 0x00, 0x00, 0x5e, 0xb4, 0x32, 0x00,
    0x07, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x97, 0xb9, 0x2c, 0x00, 0x07, 0x00, 0x00, 0x00, 0x2b, 0xf1, 0x32, 0x00,
    0x07, 0x00, 0x00, 0x00, 0xce, 0x30, 0x33, 0x00, 0x07, 0x00, 0x00, 0x00,
    0xa7, 0x2e, 0x2e, 0x00, 0x07, 0x00, 0x00, 0x00, 0x2a, 0xf1, 0x32, 0x00,
    0x07, 0x00, 0x00, 0x00, 0x98, 0xb9, 0x2c, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x62, 0xc4, 0x33, 0x00, 0x07, 0x00, 0x00, 0x00, 0x94, 0x01, 0x33, 0x00,
    0x07, 0x00, 0x00, 0x00, 0x76, 0xc4, 0x33, 0x00, 0x07, 0x00, 0x00, 0x00,
    0xae, 0xfe, 0x2d, 0x00, 0x07, 0x00, 0x00, 0x00, 0x32, 0xd2, 0x2c, 0x00,
    0x07, 0x00, 0x00, 0x00, 0x16, 0x08, 0x32, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x42, 0x5b, 0x2e, 0x00, 0x07, 0x00, 0x00, 0x00, 0x5f, 0xb4, 0x32, 0x00,
    0x07, 0x00, 0x00, 0x00, 0xca, 0x9c, 0x35, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x85, 0x44, 0x2d, 0x00, 0x07, 0x00, 0x00, 0x00, 0xc2, 0xf0, 0x32, 0x00,
    0x07, 0x00, 0x00, 0x00, 0xe9, 0xea, 0x31, 0x00, 0x07, 0x00, 0x00, 0x00,
    0xed, 0x8e, 0x2e, 0x00, 0x07, 0x00, 0x00, 0x00, 0xb6, 0xeb, 0x31, 0x00,
    0x07, 0x00, 0x00, 0x00, 0xab, 0x2e, 0x2e, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x72, 0x0e, 0x2e, 0x00, 0x07, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x4e, 0x00, 0x54, 0x00,
    0x44, 0x00, 0x45, 0x00, 0x56, 0x00, 0x2d, 0x00, 0x44, 0x00, 0x43, 0x00,
    0x2d, 0x00, 0x30, 0x00, 0x35, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x4e, 0x00, 0x54, 0x00,
    0x44, 0x00, 0x45, 0x00, 0x56, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    0x01, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00,
    0x59, 0x51, 0xb8, 0x17, 0x66, 0x72, 0x5d, 0x25, 0x64, 0x63, 0x3b, 0x0b,
    0x0d, 0x00, 0x00, 0x00, 0x30, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x00,
    0x34, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x20, 0x38, 0x00, 0x02, 0x00,
    0x07, 0x00, 0x00, 0x20, 0x3c, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x20,
    0x40, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x20, 0x44, 0x00, 0x02, 0x00,
    0x07, 0x00, 0x00, 0x20, 0x48, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x20,
    0x4c, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x20, 0x50, 0x00, 0x02, 0x00,
    0x07, 0x00, 0x00, 0x20, 0x54, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x20,
    0x58, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x20, 0x5c, 0x00, 0x02, 0x00,
    0x07, 0x00, 0x00, 0x20, 0x60, 0x00, 0x02, 0x00, 0x07, 0x00, 0x00, 0x20,
    0x05, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
    0x15, 0x00, 0x00, 0x00, 0xb9, 0x30, 0x1b, 0x2e, 0xb7, 0x41, 0x4c, 0x6c,
    0x8c, 0x3b, 0x35, 0x15, 0x01, 0x02, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00,
    0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00,
    0x59, 0x51, 0xb8, 0x17, 0x66, 0x72, 0x5d, 0x25, 0x64, 0x63, 0x3b, 0x0b,
    0x74, 0x54, 0x2f, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0x59, 0x51, 0xb8, 0x17,
    0x66, 0x72, 0x5d, 0x25, 0x64, 0x63, 0x3b, 0x0b, 0xe8, 0x38, 0x32, 0x00,
    0x05, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
    0x15, 0x00, 0x00, 0x00, 0x59, 0x51, 0xb8, 0x17, 0x66, 0x72, 0x5d, 0x25,
    0x64, 0x63, 0x3b, 0x0b, 0xcd, 0x38, 0x32, 0x00, 0x05, 0x00, 0x00, 0x00,
    0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00,
    0x59, 0x51, 0xb8, 0x17, 0x66, 0x72, 0x5d, 0x25, 0x64, 0x63, 0x3b, 0x0b,
    0x5d, 0xb4, 0x32, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0x59, 0x51, 0xb8, 0x17,
    0x66, 0x72, 0x5d, 0x25, 0x64, 0x63, 0x3b, 0x0b, 0x41, 0x16, 0x35, 0x00,
    0x05, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
    0x15, 0x00, 0x00, 0x00, 0x59, 0x51, 0xb8, 0x17, 0x66, 0x72, 0x5d, 0x25,
    0x64, 0x63, 0x3b, 0x0b, 0xe8, 0xea, 0x31, 0x00, 0x05, 0x00, 0x00, 0x00,
    0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00,
    0x59, 0x51, 0xb8, 0x17, 0x66, 0x72, 0x5d, 0x25, 0x64, 0x63, 0x3b, 0x0b,
    0xc1, 0x19, 0x32, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0x59, 0x51, 0xb8, 0x17,
    0x66, 0x72, 0x5d, 0x25, 0x64, 0x63, 0x3b, 0x0b, 0x29, 0xf1, 0x32, 0x00,
    0x05, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
    0x15, 0x00, 0x00, 0x00, 0x59, 0x51, 0xb8, 0x17, 0x66, 0x72, 0x5d, 0x25,
    0x64, 0x63, 0x3b, 0x0b, 0x0f, 0x5f, 0x2e, 0x00, 0x05, 0x00, 0x00, 0x00,
    0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00,
    0x59, 0x51, 0xb8, 0x17, 0x66, 0x72, 0x5d, 0x25, 0x64, 0x63, 0x3b, 0x0b,
    0x2f, 0x5b, 0x2e, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x05, 0x15, 0x00, 0x00, 0x00, 0x59, 0x51, 0xb8, 0x17,
    0x66, 0x72, 0x5d, 0x25, 0x64, 0x63, 0x3b, 0x0b, 0xef, 0x8f, 0x31, 0x00,
    0x05, 0x00, 0x00, 0x00, 0x01, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
    0x15, 0x00, 0x00, 0x00, 0x59, 0x51, 0xb8, 0x17, 0x66, 0x72, 0x5d, 0x25,
    0x64, 0x63, 0x3b, 0x0b, 0x07, 0x5f, 0x2e, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x49, 0xd9, 0x0e, 0x65, 0x6a, 0xc6, 0x01, 0x08, 0x00, 0x6c, 0x00,
    0x7a, 0x00, 0x68, 0x00, 0x75, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x76, 0xff, 0xff, 0xff, 0x41, 0xed, 0xce, 0x9a, 0x34, 0x81, 0x5d, 0x3a,
    0xef, 0x7b, 0xc9, 0x88, 0x74, 0x80, 0x5d, 0x25, 0x00, 0x00, 0x00, 0x00,
    0x76, 0xff, 0xff, 0xff, 0xf7, 0xa5, 0x34, 0xda, 0xb2, 0xc0, 0x29, 0x86,
    0xef, 0xe0, 0xfb, 0xe5, 0x11, 0x0a, 0x4f, 0x32, 0x00, 0x00, 0x00, 0x00,
};

#define MS_DOMAIN "S-1-5-21-397955417-626881126-188441444"

/* ------------------------------------------------------------ an NDR writer */

/* Offsets in a logon-info buffer: 16 bytes of headers, the top-level
 * referent, then KERB_VALIDATION_INFO's fixed part (MS-PAC 2.5). */
#define FIXED 20
#define OFF_NAME (FIXED + 48)
#define OFF_GROUP_COUNT (FIXED + 108)
#define OFF_GROUP_IDS (FIXED + 112)
#define OFF_DOMAIN_ID (FIXED + 152)
#define OFF_UAC (FIXED + 164)
#define OFF_SID_COUNT (FIXED + 196)
#define OFF_EXTRA_SIDS (FIXED + 200)
#define OFF_RES_COUNT (FIXED + 208)
#define FIXED_END (FIXED + 216)

typedef struct {
    unsigned char *b;
    size_t len, cap;
    uint32_t ref; /* the last referent handed out */
} wr;

static void w_bytes(wr *w, const void *d, size_t n)
{
    if (n == 0)
        return;
    if (w->len + n > w->cap) {
        unsigned char *nb;

        w->cap = (w->len + n) * 2 + 64;
        nb = apr_palloc(kd_test_pool, w->cap);
        if (w->len)
            memcpy(nb, w->b, w->len);
        w->b = nb;
    }
    memcpy(w->b + w->len, d, n);
    w->len += n;
}

static void w_zero(wr *w, size_t n)
{
    static const unsigned char z[64];

    ck_assert_uint_le(n, sizeof(z));
    w_bytes(w, z, n);
}

static void w_u16(wr *w, uint16_t v)
{
    unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)};

    w_zero(w, w->len & 1);
    w_bytes(w, b, 2);
}

/* NDR aligns every 32-bit value on 4 (counted from the stream start). */
static void w_u32(wr *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};

    w_zero(w, (4 - (w->len & 3)) & 3);
    w_bytes(w, b, 4);
}

static size_t w_align4(wr *w)
{
    w_zero(w, (4 - (w->len & 3)) & 3);
    return w->len;
}

static void put32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
    b[2] = (unsigned char)(v >> 16);
    b[3] = (unsigned char)(v >> 24);
}

/* A unique pointer: a fresh referent, or 0. */
static void w_ptr(wr *w, int present)
{
    w_u32(w, present ? (w->ref += 4) : 0);
}

/* RPC_UNICODE_STRING in the structure, for n UTF-16 units. */
static void w_ustr(wr *w, size_t n, int present)
{
    w_u16(w, (uint16_t)(2 * n));
    w_u16(w, (uint16_t)(2 * n));
    w_ptr(w, present);
}

/* Its deferred buffer: max count, offset, actual count, characters. */
static void w_ustr_body(wr *w, const uint16_t *u, size_t n)
{
    size_t i;

    w_u32(w, (uint32_t)n);
    w_u32(w, 0);
    w_u32(w, (uint32_t)n);
    for (i = 0; i < n; i++)
        w_u16(w, u[i]);
}

static void w_ascii_body(wr *w, const char *s)
{
    uint16_t u[64];
    size_t i, n = strlen(s);

    ck_assert_uint_lt(n, 64);
    for (i = 0; i < n; i++)
        u[i] = (uint16_t)s[i];
    w_ustr_body(w, u, n);
}

/* An RPC_SID from "S-1-<auth>-<sub>...": max count, then the SID. */
static void w_sid(wr *w, const char *sid)
{
    unsigned long auth, sub[16];
    unsigned char head[8];
    char *end;
    int n = 0, i;

    ck_assert(strncmp(sid, "S-1-", 4) == 0);
    auth = strtoul(sid + 4, &end, 10);
    while (*end == '-' && n < 16)
        sub[n++] = strtoul(end + 1, &end, 10);
    w_u32(w, (uint32_t)n);
    head[0] = 1;
    head[1] = (unsigned char)n;
    for (i = 0; i < 6; i++)
        head[2 + i] = (unsigned char)((unsigned long long)auth >> (8 * (5 - i)));
    w_bytes(w, head, 8);
    for (i = 0; i < n; i++)
        w_u32(w, (uint32_t)sub[i]);
}

static void w_groups(wr *w, const uint32_t *rids, int n)
{
    int i;

    w_u32(w, (uint32_t)n);
    for (i = 0; i < n; i++) {
        w_u32(w, rids[i]);
        w_u32(w, 7); /* mandatory, enabled by default, enabled */
    }
}

/* What a hand-made logon info holds. */
typedef struct {
    const char *name;       /* EffectiveName; NULL: see name16, else a null pointer */
    const uint16_t *name16; /* ... as UTF-16 units */
    size_t name16_len;
    const char *domain;     /* LogonDomainName */
    const char *domain_sid; /* NULL: a null pointer */
    uint32_t user_rid, primary_rid, uac;
    int n_groups;
    const uint32_t *groups;
    int n_extra;
    const char *const *extra;
    const char *res_sid;
    int n_res;
    const uint32_t *res;
} li_spec;

/* The encoding, padded to 8 as in a PAC, and where its parts landed. */
typedef struct {
    unsigned char *b;
    size_t len;
    size_t used; /* end of the NDR data, before the padding */
    size_t name_at, groups_at, sid_at, extra_at; /* deferred parts (max counts) */
} built;

static void w_fixed(wr *w, const li_spec *s, size_t name_len)
{
    int i;

    w_zero(w, 48); /* six FILETIMEs */
    w_ustr(w, name_len, s->name != NULL || s->name16 != NULL);
    for (i = 1; i < 6; i++)
        w_ustr(w, 0, 0);
    w_zero(w, 4); /* LogonCount, BadPasswordCount */
    w_u32(w, s->user_rid);
    w_u32(w, s->primary_rid);
    w_u32(w, (uint32_t)s->n_groups);
    w_ptr(w, s->n_groups > 0);
    w_u32(w, (s->n_extra ? 0x20u : 0) | (s->res_sid ? 0x200u : 0)); /* UserFlags */
    w_zero(w, 16);                                                   /* UserSessionKey */
    w_ustr(w, 3, 1);                                                 /* LogonServer "DC1" */
    w_ustr(w, s->domain ? strlen(s->domain) : 0, s->domain != NULL);
    w_ptr(w, s->domain_sid != NULL);
    w_zero(w, 8); /* Reserved1 */
    w_u32(w, s->uac);
    w_zero(w, 4 + 8 + 8 + 4 + 4);
    w_u32(w, (uint32_t)s->n_extra);
    w_ptr(w, s->n_extra > 0);
    w_ptr(w, s->res_sid != NULL);
    w_u32(w, (uint32_t)s->n_res);
    w_ptr(w, s->n_res > 0);
}

/* KERB_SID_AND_ATTRIBUTES array, then the SIDs it points to. */
static void w_extra_sids(wr *w, const char *const *sids, int n)
{
    int i;

    w_u32(w, (uint32_t)n);
    for (i = 0; i < n; i++) {
        w_ptr(w, 1);
        w_u32(w, 7);
    }
    for (i = 0; i < n; i++)
        w_sid(w, sids[i]);
}

static built build(const li_spec *s)
{
    static const unsigned char headers[16] = {1, 0x10, 8, 0, 0xcc, 0xcc, 0xcc, 0xcc};
    size_t name_len = s->name ? strlen(s->name) : s->name16_len;
    wr w = {NULL, 0, 0, 0x00020000};
    built out;

    w_bytes(&w, headers, sizeof(headers));
    w_u32(&w, w.ref); /* the top-level pointer */
    w_fixed(&w, s, name_len);
    ck_assert_uint_eq(w.len, FIXED_END);
    out.name_at = w_align4(&w);
    if (s->name)
        w_ascii_body(&w, s->name);
    else if (s->name16)
        w_ustr_body(&w, s->name16, s->name16_len);
    out.groups_at = w_align4(&w);
    if (s->n_groups > 0)
        w_groups(&w, s->groups, s->n_groups);
    w_ascii_body(&w, "DC1");
    if (s->domain)
        w_ascii_body(&w, s->domain);
    out.sid_at = w_align4(&w);
    if (s->domain_sid)
        w_sid(&w, s->domain_sid);
    out.extra_at = w_align4(&w);
    if (s->n_extra > 0)
        w_extra_sids(&w, s->extra, s->n_extra);
    if (s->res_sid)
        w_sid(&w, s->res_sid);
    if (s->n_res > 0)
        w_groups(&w, s->res, s->n_res);
    out.used = w.len;
    w_zero(&w, (8 - (w.len & 7)) & 7);
    put32(w.b + 8, (uint32_t)(w.len - 16)); /* object buffer length */
    out.b = w.b;
    out.len = w.len;
    return out;
}

/* A PACTYPE holding the given buffers, each on an 8-byte boundary. */
static built build_pac(int n, const uint32_t *types, const built *bufs)
{
    wr w = {NULL, 0, 0, 0};
    size_t off;
    int i;
    built out;

    w_u32(&w, (uint32_t)n);
    w_u32(&w, 0);
    off = 8 + 16 * (size_t)n;
    for (i = 0; i < n; i++) {
        w_u32(&w, types[i]);
        w_u32(&w, (uint32_t)bufs[i].len);
        w_u32(&w, (uint32_t)off);
        w_u32(&w, 0);
        off += (bufs[i].len + 7) & ~(size_t)7;
    }
    for (i = 0; i < n; i++) {
        w_bytes(&w, bufs[i].b, bufs[i].len);
        w_zero(&w, (8 - (w.len & 7)) & 7);
    }
    memset(&out, 0, sizeof(out));
    out.b = w.b;
    out.len = out.used = w.len;
    return out;
}

static const uint32_t rich_groups[] = {513, 1104, 1105};
static const char *const rich_extra[] = {"S-1-18-1", "S-1-5-21-7-8-9-1000"};
static const uint32_t rich_res[] = {2001, 2002};

/* No groups beyond the primary one, no extra SIDs, no resource groups. */
static const li_spec minimal = {
    .name = "alice", .domain = "EXAMPLE", .domain_sid = "S-1-5-21-1-2-3",
    .user_rid = 1103, .primary_rid = 513, .uac = 0x210,
};

/* A bit of everything. */
static const li_spec rich = {
    .name = "bob", .domain = "EXAMPLE", .domain_sid = "S-1-5-21-1-2-3",
    .user_rid = 1200, .primary_rid = 513, .uac = 0x10,
    .n_groups = 3, .groups = rich_groups,
    .n_extra = 2, .extra = rich_extra,
    .res_sid = "S-1-5-21-4-5-6", .n_res = 2, .res = rich_res,
};

static int decode(const built *v, kd_logon_info *li, const char **why)
{
    return kd_pac_logon_info(kd_test_pool, v->b, v->len, li, why);
}

/* Decoding a copy with one byte changed must fail. */
static void rejects_patch(const li_spec *s, size_t at, unsigned char value, const char *want)
{
    built v = build(s);
    kd_logon_info li;
    const char *why = NULL;

    ck_assert_uint_lt(at, v.len);
    v.b[at] = value;
    ck_assert_int_ne(decode(&v, &li, &why), 0);
    ck_assert_ptr_nonnull(why);
    if (want)
        ck_assert_msg(strstr(why, want) != NULL, "at %zu: \"%s\", expected \"%s\"", at, why, want);
    ck_assert_ptr_null(li.domain_sid);
}

static void rejects_patch32(const li_spec *s, size_t at, uint32_t value, const char *want)
{
    built v = build(s);
    kd_logon_info li;
    const char *why = NULL;

    put32(v.b + at, value);
    ck_assert_int_ne(decode(&v, &li, &why), 0);
    ck_assert_ptr_nonnull(why);
    if (want)
        ck_assert_msg(strstr(why, want) != NULL, "at %zu: \"%s\", expected \"%s\"", at, why, want);
}

/* ------------------------------------------------------------ the MS-PAC example */

START_TEST(ms_pac_buffers)
{
    const unsigned char *buf;
    size_t len;

    ck_assert_int_eq(kd_pac_buffer(ms_pac, sizeof(ms_pac), KD_PAC_LOGON_INFO, &buf, &len), 0);
    ck_assert_ptr_eq(buf, ms_pac + 0x48);
    ck_assert_uint_eq(len, 0x4b0);
    ck_assert_int_eq(kd_pac_buffer(ms_pac, sizeof(ms_pac), KD_PAC_CLIENT_INFO, &buf, &len), 0);
    ck_assert_ptr_eq(buf, ms_pac + 0x4f8);
    ck_assert_uint_eq(len, 0x12);
    ck_assert_int_eq(kd_pac_buffer(ms_pac, sizeof(ms_pac), 7, &buf, &len), 0);
    ck_assert_ptr_eq(buf, ms_pac + 0x528);
    ck_assert_int_eq(kd_pac_buffer(ms_pac, sizeof(ms_pac), 12, &buf, &len), KD_PAC_ABSENT);
}
END_TEST

START_TEST(ms_pac_logon_info)
{
    const unsigned char *buf;
    size_t len;
    kd_logon_info li;
    const char *why = "unset";

    ck_assert_int_eq(kd_pac_buffer(ms_pac, sizeof(ms_pac), KD_PAC_LOGON_INFO, &buf, &len), 0);
    /* the writer's offsets agree with the example */
    ck_assert_uint_eq(buf[OFF_GROUP_COUNT], 26);
    ck_assert_uint_eq(buf[OFF_UAC], 0x10);
    ck_assert_uint_eq(buf[OFF_SID_COUNT], 13);
    ck_assert_uint_eq(buf[OFF_EXTRA_SIDS + 2], 0x02); /* referent 0x0002002c */
    ck_assert_int_eq(kd_pac_logon_info(kd_test_pool, buf, len, &li, &why), 0);
    ck_assert_ptr_null(why);
    ck_assert_str_eq(li.effective_name, "lzhu");
    ck_assert_str_eq(li.logon_domain_name, "NTDEV");
    ck_assert_uint_eq(li.user_rid, 2914711);
    ck_assert_uint_eq(li.primary_group_rid, 513);
    ck_assert_uint_eq(li.user_flags, 0x20);
    ck_assert_uint_eq(li.user_account_control, 0x10);
    ck_assert_str_eq(li.domain_sid, MS_DOMAIN);
    ck_assert_int_eq(li.n_groups, 26);
    ck_assert_uint_eq(li.groups[0].rid, 0x33c461);
    ck_assert_uint_eq(li.groups[0].attributes, 7);
    ck_assert_uint_eq(li.groups[3].rid, 513);
    ck_assert_uint_eq(li.groups[25].rid, 3018354);
    ck_assert_int_eq(li.n_extra_sids, 13);
    ck_assert_str_eq(li.extra_sids[0], "S-1-5-21-773533881-1816936887-355810188-513");
    ck_assert_str_eq(li.extra_sids[12], MS_DOMAIN "-3038983");
    ck_assert_ptr_null(li.resource_domain_sid);
    ck_assert_int_eq(li.n_resource_groups, 0);
    /* the example in the text: the first group's SID */
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, MS_DOMAIN "-3392609"));
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, MS_DOMAIN "-2914711"));
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li,
                                    "S-1-5-21-773533881-1816936887-355810188-513"));
    ck_assert(!kd_logon_info_has_sid(kd_test_pool, &li, MS_DOMAIN "-500"));
    ck_assert(!kd_logon_info_not_delegable(&li));
}
END_TEST

/* Cut anywhere, the PAC is refused or the buffer found still lies inside
 * the cut; the logon info is refused at every length short of its own,
 * whether or not its header still claims the full length. The copies are
 * malloc'd to the byte so that ASan/valgrind see any read past the end. */
static void every_cut(const unsigned char *b, size_t len, size_t used)
{
    size_t n;

    for (n = 0; n < len; n++) {
        unsigned char *c = malloc(n ? n : 1);
        kd_logon_info li;
        const char *why = NULL;

        memcpy(c, b, n);
        ck_assert_int_ne(kd_pac_logon_info(kd_test_pool, c, n, &li, &why), 0);
        ck_assert_ptr_nonnull(why);
        if (n >= 16) {
            int rc;

            put32(c + 8, (uint32_t)(n - 16)); /* the header agrees with the cut */
            rc = kd_pac_logon_info(kd_test_pool, c, n, &li, &why);
            if (n < used)
                ck_assert_msg(rc != 0 && why != NULL, "cut at %zu of %zu accepted", n, used);
            else
                ck_assert_msg(rc == 0, "cut at %zu (padding) refused: %s", n, why);
        }
        free(c);
    }
}

START_TEST(ms_pac_every_cut)
{
    const unsigned char *buf;
    size_t n, len;

    ck_assert_int_eq(kd_pac_buffer(ms_pac, sizeof(ms_pac), KD_PAC_LOGON_INFO, &buf, &len), 0);
    every_cut(buf, len, 0x4ac);
    for (n = 0; n < sizeof(ms_pac); n++) {
        unsigned char *c = malloc(n ? n : 1);
        int rc;

        memcpy(c, ms_pac, n);
        rc = kd_pac_buffer(c, n, KD_PAC_LOGON_INFO, &buf, &len);
        /* the last buffer (a signature) ends at 0x53c */
        ck_assert_int_eq(rc, n < 0x53c ? KD_PAC_MALFORMED : 0);
        free(c);
    }
}
END_TEST

/* ------------------------------------------------------------ hand-made vectors */

START_TEST(minimal_logon_info)
{
    built v = build(&minimal);
    kd_logon_info li;
    const char *why;

    ck_assert_int_eq(decode(&v, &li, &why), 0);
    ck_assert_str_eq(li.effective_name, "alice");
    ck_assert_str_eq(li.logon_domain_name, "EXAMPLE");
    ck_assert_str_eq(li.domain_sid, "S-1-5-21-1-2-3");
    ck_assert_uint_eq(li.user_rid, 1103);
    ck_assert_uint_eq(li.user_account_control, 0x210);
    ck_assert_int_eq(li.n_groups, 0);
    ck_assert_ptr_null(li.groups);
    ck_assert_int_eq(li.n_extra_sids, 0);
    ck_assert_ptr_null(li.resource_domain_sid);
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-1-2-3-1103"));
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-1-2-3-513"));
    ck_assert(!kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-1-2-3-1104"));
    ck_assert(!kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-1-2-4-1103"));
    ck_assert(!kd_logon_info_not_delegable(&li));
    every_cut(v.b, v.len, v.used);
}
END_TEST

START_TEST(rich_logon_info)
{
    built v = build(&rich);
    kd_logon_info li;
    const char *why;

    ck_assert_int_eq(decode(&v, &li, &why), 0);
    ck_assert_str_eq(li.effective_name, "bob");
    ck_assert_uint_eq(li.user_flags, 0x220);
    ck_assert_int_eq(li.n_groups, 3);
    ck_assert_uint_eq(li.groups[1].rid, 1104);
    ck_assert_uint_eq(li.groups[1].attributes, 7);
    ck_assert_int_eq(li.n_extra_sids, 2);
    ck_assert_str_eq(li.extra_sids[0], "S-1-18-1");
    ck_assert_str_eq(li.extra_sids[1], "S-1-5-21-7-8-9-1000");
    ck_assert_str_eq(li.resource_domain_sid, "S-1-5-21-4-5-6");
    ck_assert_int_eq(li.n_resource_groups, 2);
    ck_assert_uint_eq(li.resource_groups[1].rid, 2002);
    /* every way of holding a SID, and ways of not holding one */
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-1-2-3-1200"));
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-1-2-3-1105"));
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, "S-1-18-1"));
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-7-8-9-1000"));
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-4-5-6-2001"));
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, "s-1-5-21-01-2-3-01105"));
    ck_assert(!kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-4-5-6-1105"));
    ck_assert(!kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-1-2-3-2001"));
    ck_assert(!kd_logon_info_has_sid(kd_test_pool, &li, "S-1-5-21-7-8-9"));
    ck_assert(!kd_logon_info_has_sid(kd_test_pool, &li, "S-1-18"));
    ck_assert(!kd_logon_info_not_delegable(&li));
    every_cut(v.b, v.len, v.used);
}
END_TEST

START_TEST(sid_strings_refused)
{
    built v = build(&rich);
    kd_logon_info li;
    static const char *const bad[] = {
        "", "S", "S-1", "S-1-", "S-2-5-21-1-2-3-1200", "S-1-5-21-1-2-3-1200-", "S-1-5--21",
        "S-1-5-21-1-2-3-4294967296", "S-1-281474976710656-1", "S-1-5-21-1-2-3-+1200",
        "S-1-5-21-1-2-3-1200 ", "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16", "X-1-5-21",
    };
    size_t i;

    ck_assert_int_eq(decode(&v, &li, NULL), 0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!kd_logon_info_has_sid(kd_test_pool, &li, bad[i]), "%s", bad[i]);
    ck_assert(!kd_logon_info_has_sid(kd_test_pool, &li, NULL));
    ck_assert(!kd_logon_info_has_sid(kd_test_pool, NULL, "S-1-18-1"));
    /* the authority in hex is the same SID */
    ck_assert(kd_logon_info_has_sid(kd_test_pool, &li, "S-1-0x000000000012-1"));
}
END_TEST

START_TEST(not_delegable)
{
    static const uint32_t protected_users[] = {513, 525};
    static const char *const extra_525[] = {"S-1-5-21-1-2-3-525"};
    static const char *const other_525[] = {"S-1-5-21-9-9-9-525"};
    static const uint32_t res_525[] = {525};
    li_spec s = minimal;
    kd_logon_info li;

    s.uac = 0x210 | KD_ACB_NOT_DELEGATED;
    {
        built v = build(&s);

        ck_assert_int_eq(decode(&v, &li, NULL), 0);
        ck_assert_uint_eq(li.user_account_control & KD_ACB_NOT_DELEGATED, KD_ACB_NOT_DELEGATED);
        ck_assert(kd_logon_info_not_delegable(&li));
    }
    s = minimal;
    s.n_groups = 2;
    s.groups = protected_users;
    {
        built v = build(&s);

        ck_assert_int_eq(decode(&v, &li, NULL), 0);
        ck_assert(kd_logon_info_not_delegable(&li));
    }
    s = minimal;
    s.n_extra = 1;
    s.extra = extra_525;
    {
        built v = build(&s);

        ck_assert_int_eq(decode(&v, &li, NULL), 0);
        ck_assert(kd_logon_info_not_delegable(&li));
    }
    /* 525 of another domain is not this domain's Protected Users */
    s.extra = other_525;
    s.res_sid = "S-1-5-21-4-5-6";
    s.n_res = 1;
    s.res = res_525;
    {
        built v = build(&s);

        ck_assert_int_eq(decode(&v, &li, NULL), 0);
        ck_assert(!kd_logon_info_not_delegable(&li));
    }
    ck_assert(!kd_logon_info_not_delegable(NULL));
}
END_TEST

START_TEST(names_in_utf16)
{
    /* e-acute, a CJK character, U+1F600 as a surrogate pair, a lone low
     * surrogate, a NUL, and a lone high surrogate at the very end */
    static const uint16_t name[] = {'j', 0xe9, 0x4e2d, 0xd83d, 0xde00, 0xdc00, 0, 'x', 0xd800};
    li_spec s = minimal;
    kd_logon_info li;
    built v;

    s.name = NULL;
    s.name16 = name;
    s.name16_len = sizeof(name) / sizeof(name[0]);
    v = build(&s);
    ck_assert_int_eq(decode(&v, &li, NULL), 0);
    ck_assert_str_eq(li.effective_name, "j\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\xef\xbf\xbd"
                                        "\xef\xbf\xbdx\xef\xbf\xbd");
    /* an empty name with a buffer, and no name at all */
    s.name16_len = 0;
    v = build(&s);
    ck_assert_int_eq(decode(&v, &li, NULL), 0);
    ck_assert_str_eq(li.effective_name, "");
    s.name16 = NULL;
    s.domain = NULL;
    v = build(&s);
    ck_assert_int_eq(decode(&v, &li, NULL), 0);
    ck_assert_ptr_null(li.effective_name);
    ck_assert_ptr_null(li.logon_domain_name);
}
END_TEST

/* ------------------------------------------------------------ malformed */

START_TEST(bad_headers)
{
    built v = build(&minimal);
    kd_logon_info li;
    const char *why;

    rejects_patch(&minimal, 0, 2, "version 1");
    rejects_patch(&minimal, 1, 0x00, "little-endian"); /* big-endian NDR */
    rejects_patch(&minimal, 2, 16, "header length");
    rejects_patch32(&minimal, 8, (uint32_t)v.len - 15, "object buffer");
    rejects_patch32(&minimal, 8, 0xffffffffu, "object buffer");
    rejects_patch32(&minimal, 16, 0, "null logon info");
    /* the fillers are ignored (MS-RPCE 2.2.6.1: "SHOULD be ignored") */
    put32(v.b + 4, 0);
    put32(v.b + 12, 0x12345678);
    ck_assert_int_eq(decode(&v, &li, &why), 0);
    ck_assert_int_ne(kd_pac_logon_info(kd_test_pool, NULL, 0, &li, &why), 0);
    ck_assert_ptr_nonnull(why);
}
END_TEST

START_TEST(bad_counts)
{
    /* counts that disagree with their arrays, or exceed the data */
    rejects_patch32(&rich, OFF_GROUP_COUNT, 4, "group array size");
    rejects_patch32(&rich, OFF_GROUP_COUNT, 0xffffffffu, "group array size");
    rejects_patch32(&rich, OFF_GROUP_IDS, 0, "without a group array");
    rejects_patch32(&rich, OFF_SID_COUNT, 0x20000000u, "SID array size");
    rejects_patch32(&rich, OFF_EXTRA_SIDS, 0, "without a SID array");
    rejects_patch32(&rich, OFF_RES_COUNT, 1, "group array size");
    rejects_patch32(&rich, OFF_DOMAIN_ID, 0, "no logon domain SID");
}
END_TEST

START_TEST(huge_counts)
{
    /* both the count in the structure and the array's own max count say
     * 2^32-1 (or 2^29): refused before any allocation or multiplication */
    built v = build(&rich);
    kd_logon_info li;
    const char *why;

    put32(v.b + OFF_GROUP_COUNT, 0xffffffffu);
    put32(v.b + v.groups_at, 0xffffffffu);
    ck_assert_int_ne(decode(&v, &li, &why), 0);
    ck_assert_str_eq(why, "group count exceeds the data");
    put32(v.b + OFF_GROUP_COUNT, 0x20000000u);
    put32(v.b + v.groups_at, 0x20000000u);
    ck_assert_int_ne(decode(&v, &li, &why), 0);
    ck_assert_str_eq(why, "group count exceeds the data");

    v = build(&rich);
    put32(v.b + OFF_SID_COUNT, 0xffffffffu);
    put32(v.b + v.extra_at, 0xffffffffu);
    ck_assert_int_ne(decode(&v, &li, &why), 0);
    ck_assert_str_eq(why, "SID count exceeds the data");
}
END_TEST

START_TEST(bad_strings)
{
    built v;
    kd_logon_info li;
    const char *why;

    /* Length > MaximumLength in the structure */
    rejects_patch(&minimal, OFF_NAME, 12, "exceeds its maximum");
    /* a length with a null buffer */
    rejects_patch32(&minimal, OFF_NAME + 4, 0, "without a buffer");
    /* the deferred counts: max, offset, actual */
    rejects_patch32(&minimal, build(&minimal).name_at, 6, "counts disagree");
    rejects_patch32(&minimal, build(&minimal).name_at + 4, 1, "counts disagree");
    rejects_patch32(&minimal, build(&minimal).name_at + 8, 6, "counts disagree");
    rejects_patch32(&minimal, build(&minimal).name_at + 8, 0x7fffffffu, "counts disagree");
    /* both lengths and counts agree but claim more than there is */
    v = build(&minimal);
    v.b[OFF_NAME] = v.b[OFF_NAME + 2] = 0xfe;
    v.b[OFF_NAME + 1] = v.b[OFF_NAME + 3] = 0xff;
    put32(v.b + v.name_at, 0x7fff);
    put32(v.b + v.name_at + 8, 0x7fff);
    ck_assert_int_ne(decode(&v, &li, &why), 0);
    ck_assert_str_eq(why, "truncated");
}
END_TEST

START_TEST(bad_sids)
{
    size_t at = build(&minimal).sid_at;

    rejects_patch32(&minimal, at, 16, "more than 15");
    rejects_patch32(&minimal, at, 0xffffffffu, "more than 15");
    rejects_patch32(&minimal, at, 3, "disagrees");
    rejects_patch(&minimal, at + 5, 5, "disagrees");
    rejects_patch(&minimal, at + 4, 2, "revision");
    /* extra SIDs: the array (max count, 2 x (referent, attributes)) and
     * then the SIDs; the first, S-1-18-1, takes 4 + 12 bytes */
    at = build(&rich).extra_at;
    rejects_patch32(&rich, at + 20, 15, NULL);
    rejects_patch32(&rich, at + 20, 0, "disagrees");
    {
        built v = build(&rich);
        kd_logon_info li;

        /* the first SID pointer NULL: that SID is not marshalled, the
         * second follows the array directly */
        put32(v.b + at + 4, 0);
        memmove(v.b + at + 20, v.b + at + 36, v.used - (at + 36));
        put32(v.b + 8, (uint32_t)(v.len - 16 - 16));
        ck_assert_int_eq(kd_pac_logon_info(kd_test_pool, v.b, v.len - 16, &li, NULL), 0);
        ck_assert_int_eq(li.n_extra_sids, 1);
        ck_assert_str_eq(li.extra_sids[0], "S-1-5-21-7-8-9-1000");
    }
}
END_TEST

START_TEST(sid_string)
{
    static const unsigned char everyone[] = {1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    static const unsigned char big_auth[] = {1, 1, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 1, 0, 0, 0};
    static const unsigned char no_subs[] = {1, 0, 0, 0, 0, 0, 0, 5};
    static const unsigned char rev2[] = {2, 0, 0, 0, 0, 0, 0, 5};
    unsigned char sixteen[8 + 64] = {1, 16, 0, 0, 0, 0, 0, 5};
    unsigned char max[8 + 60] = {1, 15, 0, 0, 0, 0, 0, 5};

    memset(max + 8, 0xff, 60);
    ck_assert_str_eq(kd_sid_string(kd_test_pool, everyone, sizeof(everyone)), "S-1-1-0");
    ck_assert_str_eq(kd_sid_string(kd_test_pool, big_auth, sizeof(big_auth)),
                     "S-1-0x123456789ABC-1");
    ck_assert_str_eq(kd_sid_string(kd_test_pool, no_subs, sizeof(no_subs)), "S-1-5");
    ck_assert_str_eq(kd_sid_string(kd_test_pool, max, sizeof(max)),
                     "S-1-5-4294967295-4294967295-4294967295-4294967295-4294967295-4294967295"
                     "-4294967295-4294967295-4294967295-4294967295-4294967295-4294967295"
                     "-4294967295-4294967295-4294967295");
    ck_assert_ptr_null(kd_sid_string(kd_test_pool, everyone, sizeof(everyone) - 1));
    ck_assert_ptr_null(kd_sid_string(kd_test_pool, everyone, 0));
    ck_assert_ptr_null(kd_sid_string(kd_test_pool, no_subs, 7));
    ck_assert_ptr_null(kd_sid_string(kd_test_pool, rev2, sizeof(rev2)));
    ck_assert_ptr_null(kd_sid_string(kd_test_pool, sixteen, sizeof(sixteen)));
    ck_assert_ptr_null(kd_sid_string(kd_test_pool, NULL, 8));
}
END_TEST

START_TEST(pac_buffers)
{
    static const uint32_t types[] = {KD_PAC_CLIENT_INFO, KD_PAC_LOGON_INFO};
    static const uint32_t twice[] = {KD_PAC_LOGON_INFO, KD_PAC_LOGON_INFO};
    built parts[2], pac;
    const unsigned char *buf;
    size_t len;
    kd_logon_info li;

    parts[0] = build_pac(0, NULL, NULL); /* any 8 bytes will do as a client info */
    parts[1] = build(&rich);
    pac = build_pac(2, types, parts);
    ck_assert_int_eq(kd_pac_buffer(pac.b, pac.len, KD_PAC_LOGON_INFO, &buf, &len), 0);
    ck_assert_uint_eq(len, parts[1].len);
    ck_assert_int_eq(kd_pac_logon_info(kd_test_pool, buf, len, &li, NULL), 0);
    ck_assert_str_eq(li.effective_name, "bob");
    ck_assert_int_eq(kd_pac_buffer(pac.b, pac.len, 6, &buf, &len), KD_PAC_ABSENT);

    ck_assert_int_eq(kd_pac_buffer(NULL, 0, 1, &buf, &len), KD_PAC_MALFORMED);
    ck_assert_int_eq(kd_pac_buffer(pac.b, 7, 1, &buf, &len), KD_PAC_MALFORMED);
    pac = build_pac(2, twice, parts);
    ck_assert_int_eq(kd_pac_buffer(pac.b, pac.len, KD_PAC_LOGON_INFO, &buf, &len),
                     KD_PAC_MALFORMED);
}
END_TEST

/* One field of the MS example's PACTYPE changed; the lookup must fail. */
static void pac_patch(size_t at, uint32_t value)
{
    unsigned char c[sizeof(ms_pac)];
    const unsigned char *buf;
    size_t len;

    memcpy(c, ms_pac, sizeof(c));
    put32(c + at, value);
    ck_assert_msg(kd_pac_buffer(c, sizeof(c), KD_PAC_LOGON_INFO, &buf, &len) == KD_PAC_MALFORMED,
                  "patch at %zu to 0x%x accepted", at, value);
}

START_TEST(bad_pactype)
{
    pac_patch(0, 0);           /* no buffers */
    pac_patch(0, 0xffffffffu); /* cBuffers * 16 far beyond the data */
    pac_patch(0, 84);          /* (0x540 - 8) / 16 + 1 */
    pac_patch(4, 1);           /* Version */
    pac_patch(12, 0x541);      /* cbBufferSize beyond the end */
    pac_patch(12, 0xffffffffu);
    pac_patch(16, 0x540);    /* Offset at the very end, size 0x4b0 */
    pac_patch(16, 0x49);     /* not on an 8-byte boundary */
    pac_patch(16, 0x40);     /* inside the PAC_INFO_BUFFER array */
    pac_patch(20, 1);        /* Offset >= 2^32 */
    pac_patch(20, 0xffffffffu);
    pac_patch(16 + 16 + 16 + 16 + 4, 0x19); /* another entry, not the one we want */
}
END_TEST

Suite *kd_pac_suite(void)
{
    Suite *s = suite_create("kd_pac");
    TCase *tc = tcase_create("pac");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, ms_pac_buffers);
    tcase_add_test(tc, ms_pac_logon_info);
    tcase_add_test(tc, ms_pac_every_cut);
    tcase_add_test(tc, minimal_logon_info);
    tcase_add_test(tc, rich_logon_info);
    tcase_add_test(tc, sid_strings_refused);
    tcase_add_test(tc, not_delegable);
    tcase_add_test(tc, names_in_utf16);
    tcase_add_test(tc, bad_headers);
    tcase_add_test(tc, bad_counts);
    tcase_add_test(tc, huge_counts);
    tcase_add_test(tc, bad_strings);
    tcase_add_test(tc, bad_sids);
    tcase_add_test(tc, sid_string);
    tcase_add_test(tc, pac_buffers);
    tcase_add_test(tc, bad_pactype);
    suite_add_tcase(s, tc);
    return s;
}
