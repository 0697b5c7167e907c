#include "kd_pac.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <apr_strings.h>

/* ------------------------------------------------------------ bytes */

static uint16_t le16(const unsigned char *b)
{
    return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* ------------------------------------------------------------ PACTYPE */

#define PAC_HEADER 8 /* cBuffers, Version */
#define PAC_ENTRY 16 /* ulType, cbBufferSize, Offset (64 bits) */

int kd_pac_buffer(const unsigned char *pac, size_t len, uint32_t type,
                  const unsigned char **buf, size_t *buf_len)
{
    uint32_t n, i;
    size_t entries_end;
    int found = 0;

    if (pac == NULL || len < PAC_HEADER || le32(pac + 4) != 0)
        return KD_PAC_MALFORMED; /* Version 0 is the only one there is */
    n = le32(pac);
    /* the division keeps n * PAC_ENTRY from overflowing */
    if (n == 0 || n > (len - PAC_HEADER) / PAC_ENTRY)
        return KD_PAC_MALFORMED;
    entries_end = PAC_HEADER + (size_t)n * PAC_ENTRY;
    for (i = 0; i < n; i++) {
        const unsigned char *e = pac + PAC_HEADER + (size_t)i * PAC_ENTRY;
        uint32_t size = le32(e + 4);
        uint64_t off = (uint64_t)le32(e + 8) | (uint64_t)le32(e + 12) << 32;

        /* Every entry is checked, not only the wanted one: a PAC with one
         * entry pointing outside it is not a PAC we should believe. Data
         * starts after the entries, on an 8-byte boundary (MS-PAC 2.4). */
        if (off < entries_end || off % 8 != 0 || off > (uint64_t)len || size > len - (size_t)off)
            return KD_PAC_MALFORMED;
        if (le32(e) != type)
            continue;
        if (found)
            return KD_PAC_MALFORMED; /* two of a kind: which one is true? */
        found = 1;
        *buf = pac + off;
        *buf_len = size;
    }
    return found ? 0 : KD_PAC_ABSENT;
}

/* ------------------------------------------------------------ SIDs */

const char *kd_sid_string(apr_pool_t *p, const unsigned char *sid, size_t len)
{
    /* "S-1-0x" + 12 hex digits + 15 * "-4294967295" + NUL */
    char text[6 + 12 + 15 * 11 + 1];
    uint64_t auth = 0;
    size_t n, i, w;

    if (sid == NULL || len < 8 || sid[0] != 1)
        return NULL;
    n = sid[1];
    if (n > KD_SID_MAX_SUB_AUTHORITIES || len != 8 + 4 * n)
        return NULL;
    for (i = 0; i < 6; i++)
        auth = auth << 8 | sid[2 + i];
    /* MS-DTYP 2.4.2.1: the authority in decimal below 2^32, else in hex */
    if (auth < ((uint64_t)1 << 32))
        w = (size_t)snprintf(text, sizeof(text), "S-1-%" PRIu64, auth);
    else
        w = (size_t)snprintf(text, sizeof(text), "S-1-0x%012" PRIX64, auth);
    for (i = 0; i < n && w < sizeof(text); i++)
        w += (size_t)snprintf(text + w, sizeof(text) - w, "-%" PRIu32, le32(sid + 8 + 4 * i));
    return apr_pstrdup(p, text);
}

/* Digits of one SID component: at least one, value at most max. */
static int sid_number(const char **s, int base, uint64_t max, uint64_t *v)
{
    const char *c = *s;
    uint64_t d, x = 0;

    for (; *c != '\0'; c++) {
        if (*c >= '0' && *c <= '9')
            d = (uint64_t)(*c - '0');
        else if (base == 16 && *c >= 'a' && *c <= 'f')
            d = (uint64_t)(*c - 'a' + 10);
        else if (base == 16 && *c >= 'A' && *c <= 'F')
            d = (uint64_t)(*c - 'A' + 10);
        else
            break;
        if (x > (max - d) / (uint64_t)base)
            return -1;
        x = x * (uint64_t)base + d;
    }
    if (c == *s)
        return -1;
    *s = c;
    *v = x;
    return 0;
}

size_t kd_sid_binary(const char *s, unsigned char bin[KD_SID_MAX_BYTES])
{
    uint64_t auth, sub;
    size_t n = 0, i;

    if (s == NULL || (s[0] != 'S' && s[0] != 's') || strncmp(s + 1, "-1-", 3) != 0)
        return 0;
    s += 4;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        if (sid_number(&s, 16, 0xffffffffffffu, &auth) != 0)
            return 0;
    }
    else if (sid_number(&s, 10, 0xffffffffffffu, &auth) != 0)
        return 0;
    for (; *s == '-'; n++) {
        s++;
        if (n == KD_SID_MAX_SUB_AUTHORITIES || sid_number(&s, 10, 0xffffffffu, &sub) != 0)
            return 0;
        for (i = 0; i < 4; i++)
            bin[8 + 4 * n + i] = (unsigned char)(sub >> (8 * i));
    }
    if (*s != '\0')
        return 0;
    bin[0] = 1;
    bin[1] = (unsigned char)n;
    for (i = 0; i < 6; i++)
        bin[2 + i] = (unsigned char)(auth >> (8 * (5 - i)));
    return 8 + 4 * n;
}

const char *kd_sid_parse(apr_pool_t *p, const char *text)
{
    unsigned char bin[KD_SID_MAX_BYTES];
    size_t len = kd_sid_binary(text, bin);

    return len ? kd_sid_string(p, bin, len) : NULL;
}

/* ------------------------------------------------------------ NDR reader */

/* A cursor over one NDR stream. Alignment counts from b, the start of the
 * serialization headers, as MS-RPCE 2.2.6 does; pos <= end always. */
typedef struct {
    const unsigned char *b;
    size_t pos, end;
    const char *why;
} ndr_rd;

static int fail(ndr_rd *r, const char *why)
{
    if (r->why == NULL)
        r->why = why;
    return -1;
}

static int need(ndr_rd *r, size_t n)
{
    return n <= r->end - r->pos ? 0 : fail(r, "truncated");
}

static int skip(ndr_rd *r, size_t n)
{
    if (need(r, n) != 0)
        return -1;
    r->pos += n;
    return 0;
}

static int rd_u16(ndr_rd *r, uint16_t *v)
{
    if (skip(r, r->pos & 1) != 0 || need(r, 2) != 0)
        return -1;
    *v = le16(r->b + r->pos);
    r->pos += 2;
    return 0;
}

static int rd_u32(ndr_rd *r, uint32_t *v)
{
    if (skip(r, (4 - (r->pos & 3)) & 3) != 0 || need(r, 4) != 0)
        return -1;
    *v = le32(r->b + r->pos);
    r->pos += 4;
    return 0;
}

/* MS-RPCE 2.2.6: an 8-byte common type header (version 1, 0x10 for
 * little-endian, header length 8, filler) and an 8-byte private header
 * (object buffer length, filler). The fillers are ignored, as the
 * specification asks of a reader. Decoding stays inside the object
 * buffer; what follows it is the PAC's padding. */
static int read_headers(ndr_rd *r, const unsigned char *b, size_t len)
{
    uint32_t obj_len;

    r->b = b;
    r->pos = 0;
    r->end = len;
    r->why = NULL;
    if (b == NULL || len < 16)
        return fail(r, "shorter than the type serialization headers");
    if (b[0] != 1)
        return fail(r, "not type serialization version 1");
    if (b[1] != 0x10)
        return fail(r, "not little-endian NDR");
    if (le16(b + 2) != 8)
        return fail(r, "common type header length is not 8");
    obj_len = le32(b + 8);
    if (obj_len > len - 16)
        return fail(r, "object buffer longer than the data");
    r->pos = 16;
    r->end = 16 + (size_t)obj_len;
    return 0;
}

/* ------------------------------------------------------------ KERB_VALIDATION_INFO */

/* RPC_UNICODE_STRING as it sits in the structure: byte lengths and the
 * referent of its deferred buffer. */
typedef struct {
    uint16_t len, max;
    uint32_t ptr;
} ndr_ustr;

/* The fields of KERB_VALIDATION_INFO (MS-PAC 2.5) we need, or need to
 * follow to reach the ones we need. A pointer field holds its referent:
 * 0 for NULL, anything else means the data is deferred. */
typedef struct {
    ndr_ustr names[6]; /* EffectiveName, FullName, LogonScript, ProfilePath,
                        * HomeDirectory, HomeDirectoryDrive */
    uint32_t user_id, primary_group, group_count, group_ids, user_flags;
    ndr_ustr logon_server, logon_domain;
    uint32_t logon_domain_id, uac;
    uint32_t sid_count, extra_sids, res_domain_sid, res_count, res_group_ids;
} kvi;

static int rd_ustr(ndr_rd *r, ndr_ustr *s)
{
    if (rd_u16(r, &s->len) != 0 || rd_u16(r, &s->max) != 0 || rd_u32(r, &s->ptr) != 0)
        return -1;
    return s->len <= s->max ? 0 : fail(r, "string length exceeds its maximum");
}

/* The fixed part, 216 bytes: six FILETIMEs (two 32-bit halves, so 4-byte
 * aligned in NDR), six strings, then the rest in declaration order. */
static int read_fixed(ndr_rd *r, kvi *k)
{
    int i;

    if (skip(r, 6 * 8) != 0)
        return -1;
    for (i = 0; i < 6; i++)
        if (rd_ustr(r, &k->names[i]) != 0)
            return -1;
    if (skip(r, 2 + 2) != 0 /* LogonCount, BadPasswordCount */
        || rd_u32(r, &k->user_id) != 0 || rd_u32(r, &k->primary_group) != 0
        || rd_u32(r, &k->group_count) != 0 || rd_u32(r, &k->group_ids) != 0
        || rd_u32(r, &k->user_flags) != 0 || skip(r, 16) != 0 /* UserSessionKey */
        || rd_ustr(r, &k->logon_server) != 0 || rd_ustr(r, &k->logon_domain) != 0
        || rd_u32(r, &k->logon_domain_id) != 0 || skip(r, 8) != 0 /* Reserved1 */
        || rd_u32(r, &k->uac) != 0
        /* SubAuthStatus, LastSuccessfulILogon, LastFailedILogon,
         * FailedILogonCount, Reserved3 */
        || skip(r, 4 + 8 + 8 + 4 + 4) != 0
        || rd_u32(r, &k->sid_count) != 0 || rd_u32(r, &k->extra_sids) != 0
        || rd_u32(r, &k->res_domain_sid) != 0 || rd_u32(r, &k->res_count) != 0
        || rd_u32(r, &k->res_group_ids) != 0)
        return -1;
    return 0;
}

/* UTF-16LE to UTF-8. A valid surrogate pair becomes one code point; a
 * lone surrogate, or a NUL that would cut the C string short and make two
 * names look alike, becomes U+FFFD. */
static char *utf16le_to_utf8(apr_pool_t *p, const unsigned char *in, size_t n)
{
    /* at most 3 bytes per unit (a pair: 4 bytes for 2 units); n < 2^15 */
    char *out = apr_palloc(p, 3 * n + 1), *w = out;
    size_t i;

    for (i = 0; i < n; i++) {
        uint32_t c = le16(in + 2 * i);

        if (c >= 0xd800 && c <= 0xdbff && i + 1 < n) {
            uint32_t lo = le16(in + 2 * (i + 1));

            if (lo >= 0xdc00 && lo <= 0xdfff) {
                c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                i++;
            }
        }
        if (c == 0 || (c >= 0xd800 && c <= 0xdfff))
            c = 0xfffd;
        if (c < 0x80)
            *w++ = (char)c;
        else if (c < 0x800) {
            *w++ = (char)(0xc0 | c >> 6);
            *w++ = (char)(0x80 | (c & 0x3f));
        }
        else if (c < 0x10000) {
            *w++ = (char)(0xe0 | c >> 12);
            *w++ = (char)(0x80 | ((c >> 6) & 0x3f));
            *w++ = (char)(0x80 | (c & 0x3f));
        }
        else {
            *w++ = (char)(0xf0 | c >> 18);
            *w++ = (char)(0x80 | ((c >> 12) & 0x3f));
            *w++ = (char)(0x80 | ((c >> 6) & 0x3f));
            *w++ = (char)(0x80 | (c & 0x3f));
        }
    }
    *w = '\0';
    return out;
}

/* A string's deferred buffer: a conformant varying array of WCHAR (max
 * count, offset, actual count, then the characters) whose counts must be
 * the ones in the structure. *out (when out is not NULL) is the UTF-8
 * text, or NULL for a NULL pointer. */
static int read_ustr_body(ndr_rd *r, apr_pool_t *p, const ndr_ustr *s, const char **out)
{
    uint32_t max, off, n;

    if (out != NULL)
        *out = NULL;
    if (s->ptr == 0)
        return s->len == 0 ? 0 : fail(r, "string without a buffer has a length");
    if (rd_u32(r, &max) != 0 || rd_u32(r, &off) != 0 || rd_u32(r, &n) != 0)
        return -1;
    /* s->len <= s->max was checked, so n <= max follows */
    if (max != s->max / 2u || off != 0 || n != s->len / 2u)
        return fail(r, "string counts disagree with its lengths");
    if (need(r, (size_t)n * 2) != 0) /* n < 2^15: no overflow */
        return -1;
    if (out != NULL)
        *out = utf16le_to_utf8(p, r->b + r->pos, n);
    r->pos += (size_t)n * 2;
    return 0;
}

/* A conformant array of GROUP_MEMBERSHIP (RelativeId, Attributes). */
static int read_groups(ndr_rd *r, apr_pool_t *p, uint32_t ptr, uint32_t count,
                       kd_pac_group **out, int *n_out)
{
    uint32_t max, i;
    kd_pac_group *g;

    *out = NULL;
    *n_out = 0;
    if (ptr == 0)
        return count == 0 ? 0 : fail(r, "group count without a group array");
    if (rd_u32(r, &max) != 0)
        return -1;
    if (max != count)
        return fail(r, "group array size disagrees with its count");
    /* the division keeps count * 8 from overflowing; the object buffer is
     * under 4 GiB, so count also fits an int */
    if (count > (r->end - r->pos) / 8)
        return fail(r, "group count exceeds the data");
    if (count == 0)
        return 0;
    g = apr_palloc(p, count * sizeof(*g));
    for (i = 0; i < count; i++) {
        g[i].rid = le32(r->b + r->pos + 8 * (size_t)i);
        g[i].attributes = le32(r->b + r->pos + 8 * (size_t)i + 4);
    }
    r->pos += 8 * (size_t)count;
    *out = g;
    *n_out = (int)count;
    return 0;
}

/* An RPC_SID: conformant on SubAuthorityCount, so its max count comes
 * first and must equal the count inside. */
static int read_sid(ndr_rd *r, apr_pool_t *p, const char **out)
{
    uint32_t n;
    size_t size;

    if (rd_u32(r, &n) != 0)
        return -1;
    if (n > KD_SID_MAX_SUB_AUTHORITIES)
        return fail(r, "SID with more than 15 sub-authorities");
    size = 8 + 4 * (size_t)n;
    if (need(r, size) != 0)
        return -1;
    if (r->b[r->pos + 1] != n)
        return fail(r, "SID sub-authority count disagrees with its size");
    *out = kd_sid_string(p, r->b + r->pos, size);
    if (*out == NULL)
        return fail(r, "SID revision is not 1");
    r->pos += size;
    return 0;
}

/* ExtraSids: a conformant array of KERB_SID_AND_ATTRIBUTES (Sid referent,
 * Attributes), whose own SIDs follow the array in order. */
static int read_extra_sids(ndr_rd *r, apr_pool_t *p, const kvi *k, kd_logon_info *out)
{
    uint32_t max, i;
    size_t array;

    if (k->extra_sids == 0)
        return k->sid_count == 0 ? 0 : fail(r, "SID count without a SID array");
    if (rd_u32(r, &max) != 0)
        return -1;
    if (max != k->sid_count)
        return fail(r, "SID array size disagrees with its count");
    if (max > (r->end - r->pos) / 8)
        return fail(r, "SID count exceeds the data");
    array = r->pos;
    r->pos += 8 * (size_t)max;
    if (max == 0)
        return 0;
    out->extra_sids = apr_palloc(p, max * sizeof(*out->extra_sids));
    out->extra_sid_attributes = apr_palloc(p, max * sizeof(*out->extra_sid_attributes));
    for (i = 0; i < max; i++) {
        /* a NULL SID pointer carries nothing to hold: skip it */
        if (le32(r->b + array + 8 * (size_t)i) == 0)
            continue;
        if (read_sid(r, p, &out->extra_sids[out->n_extra_sids]) != 0)
            return -1;
        out->extra_sid_attributes[out->n_extra_sids] = le32(r->b + array + 8 * (size_t)i + 4);
        out->n_extra_sids++;
    }
    return 0;
}

/* The deferred referents, in the order their pointers appear in the
 * structure (MS-RPCE / C706 14.3.12: embedded pointers are marshalled
 * after the structure, each one's own pointees right after it). */
static int read_deferred(ndr_rd *r, apr_pool_t *p, const kvi *k, kd_logon_info *out)
{
    int i;

    if (read_ustr_body(r, p, &k->names[0], &out->effective_name) != 0)
        return -1;
    for (i = 1; i < 6; i++)
        if (read_ustr_body(r, p, &k->names[i], NULL) != 0)
            return -1;
    if (read_groups(r, p, k->group_ids, k->group_count, &out->groups, &out->n_groups) != 0
        || read_ustr_body(r, p, &k->logon_server, NULL) != 0
        || read_ustr_body(r, p, &k->logon_domain, &out->logon_domain_name) != 0)
        return -1;
    if (k->logon_domain_id == 0)
        return fail(r, "no logon domain SID");
    if (read_sid(r, p, &out->domain_sid) != 0 || read_extra_sids(r, p, k, out) != 0)
        return -1;
    if (k->res_domain_sid != 0 && read_sid(r, p, &out->resource_domain_sid) != 0)
        return -1;
    if (k->res_domain_sid == 0 && k->res_count != 0)
        return fail(r, "resource groups without a resource domain SID");
    return read_groups(r, p, k->res_group_ids, k->res_count, &out->resource_groups,
                       &out->n_resource_groups);
}

int kd_pac_logon_info(apr_pool_t *p, const unsigned char *ndr, size_t len, kd_logon_info *out,
                      const char **why)
{
    ndr_rd r;
    kvi k;
    uint32_t top;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    memset(&k, 0, sizeof(k));
    if (read_headers(&r, ndr, len) != 0 || rd_u32(&r, &top) != 0)
        goto done;
    /* the structure is serialized through a unique pointer to it */
    if (top == 0) {
        fail(&r, "null logon info");
        goto done;
    }
    if (read_fixed(&r, &k) != 0 || read_deferred(&r, p, &k, out) != 0)
        goto done;
    out->user_rid = k.user_id;
    out->primary_group_rid = k.primary_group;
    out->user_flags = k.user_flags;
    out->user_account_control = k.uac;
    rc = 0;
done:
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    if (why != NULL)
        *why = rc == 0 ? NULL : r.why;
    return rc;
}

/* ------------------------------------------------------------ questions */

static int same_sid(const char *sid, const char *s, size_t n)
{
    return sid != NULL && strlen(sid) == n && memcmp(sid, s, n) == 0;
}

static int rid_in(const kd_pac_group *g, int n, uint32_t rid)
{
    int i;

    for (i = 0; i < n; i++)
        if (g[i].rid == rid)
            return 1;
    return 0;
}

/* Is dom-rid (dom being dlen bytes) the primary group, a group or a
 * resource group? */
static int in_groups(const kd_logon_info *li, const char *dom, size_t dlen, uint32_t rid)
{
    if (same_sid(li->domain_sid, dom, dlen)
        && (li->primary_group_rid == rid || rid_in(li->groups, li->n_groups, rid)))
        return 1;
    return same_sid(li->resource_domain_sid, dom, dlen)
           && rid_in(li->resource_groups, li->n_resource_groups, rid);
}

static int in_extra_sids(const kd_logon_info *li, const char *sid)
{
    int i;

    for (i = 0; i < li->n_extra_sids; i++)
        if (strcmp(li->extra_sids[i], sid) == 0)
            return 1;
    return 0;
}

int kd_logon_info_has_sid(apr_pool_t *p, const kd_logon_info *li, const char *sid)
{
    const char *want = kd_sid_parse(p, sid), *dash, *tail;
    uint64_t rid;
    size_t dlen;

    if (li == NULL || want == NULL)
        return 0;
    if (in_extra_sids(li, want))
        return 1;
    /* Split off the RID. Canonical, so the tail is decimal unless the SID
     * has no sub-authority at all (then it belongs to no domain). */
    dash = strrchr(want, '-');
    tail = dash + 1;
    if (sid_number(&tail, 10, 0xffffffffu, &rid) != 0 || *tail != '\0')
        return 0;
    dlen = (size_t)(dash - want);
    if (same_sid(li->domain_sid, want, dlen) && li->user_rid == rid)
        return 1;
    return in_groups(li, want, dlen, (uint32_t)rid);
}

int kd_logon_info_not_delegable(const kd_logon_info *li)
{
    char protected_users[sizeof("S-1-0x") + 12 + 16 * 11];

    if (li == NULL)
        return 0;
    if (li->user_account_control & KD_ACB_NOT_DELEGATED)
        return 1;
    if (li->domain_sid == NULL)
        return 0;
    if (in_groups(li, li->domain_sid, strlen(li->domain_sid), KD_RID_PROTECTED_USERS))
        return 1;
    /* our own SIDs are short enough; a longer one is nothing we decoded */
    if ((size_t)snprintf(protected_users, sizeof(protected_users), "%s-%u", li->domain_sid,
                         KD_RID_PROTECTED_USERS) >= sizeof(protected_users))
        return 0;
    return in_extra_sids(li, protected_users);
}
