#include "kd_groups.h"

#include <stdlib.h>
#include <string.h>
#include <apr_hash.h>
#include <apr_strings.h>

/* A SID in its binary form (MS-DTYP 2.4.2.2): equal SIDs, equal bytes. */
typedef struct {
    unsigned char b[KD_SID_MAX_BYTES];
    size_t len;
} bsid;

struct kd_groups {
    bsid domain;             /* the logon domain */
    uint32_t *rids;          /* sorted, unique: primary group, groups, folded extra SIDs */
    int n_rids;
    int has_res;             /* a resource domain with at least one RID */
    bsid res;
    uint32_t *res_rids;      /* sorted, unique */
    int n_res;
    bsid *extra;             /* sorted (cmp_sid), unique, none foldable */
    int n_extra;
};

#define GROUPS_FORMAT 1

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* ------------------------------------------------------------ SIDs */

static int subs(const bsid *s)
{
    return s->b[1];
}

/* Is s the domain d plus one RID (then *rid is it)? */
static int in_domain(const bsid *d, const unsigned char *s, size_t len, uint32_t *rid)
{
    if (len != d->len + 4 || s[1] != d->b[1] + 1 || memcmp(s + 2, d->b + 2, d->len - 2) != 0)
        return 0;
    *rid = le32(s + len - 4);
    return 1;
}

static int cmp_sid(const void *a, const void *b)
{
    const bsid *x = a, *y = b;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->b, y->b, x->len);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

static int has_rid(const uint32_t *rids, int n, uint32_t rid)
{
    return n > 0 && bsearch(&rid, rids, (size_t)n, sizeof(*rids), cmp_u32) != NULL;
}

/* Sort and drop repeats; the new count. */
static int sort_unique(void *base, int n, size_t size, int (*cmp)(const void *, const void *))
{
    unsigned char *a = base;
    int i, w = 0;

    if (n < 2)
        return n;
    qsort(base, (size_t)n, size, cmp);
    for (i = 1; i < n; i++)
        if (cmp(a + (size_t)w * size, a + (size_t)i * size) != 0 && ++w != i)
            memcpy(a + (size_t)w * size, a + (size_t)i * size, size);
    return w + 1;
}

/* ------------------------------------------------------------ from a logon info */

static int counts(uint32_t attributes)
{
    return (attributes & KD_SE_GROUP_ENABLED) && !(attributes & KD_SE_GROUP_USE_FOR_DENY_ONLY);
}

/* A domain can take RIDs when one more sub-authority still makes a SID. */
static int takes_rids(const bsid *d)
{
    return subs(d) < KD_SID_MAX_SUB_AUTHORITIES;
}

static void add_rid(uint32_t *rids, int *n, const bsid *d, uint32_t rid)
{
    if (takes_rids(d))
        rids[(*n)++] = rid;
}

/* An extra SID: a RID of the logon or resource domain when it is one. */
static void add_extra(kd_groups *g, const bsid *s)
{
    uint32_t rid;

    if (takes_rids(&g->domain) && in_domain(&g->domain, s->b, s->len, &rid))
        g->rids[g->n_rids++] = rid;
    else if (g->has_res && takes_rids(&g->res) && in_domain(&g->res, s->b, s->len, &rid))
        g->res_rids[g->n_res++] = rid;
    else
        g->extra[g->n_extra++] = *s;
}

kd_groups *kd_groups_from_logon_info(apr_pool_t *p, const kd_logon_info *li)
{
    kd_groups *g;
    bsid s;
    int i, n_res_in, same;

    if (li == NULL || li->domain_sid == NULL)
        return NULL;
    g = apr_pcalloc(p, sizeof(*g));
    if ((g->domain.len = kd_sid_binary(li->domain_sid, g->domain.b)) == 0)
        return NULL;
    n_res_in = li->resource_domain_sid ? li->n_resource_groups : 0;
    if (n_res_in > 0 && (g->res.len = kd_sid_binary(li->resource_domain_sid, g->res.b)) == 0)
        n_res_in = 0;
    same = n_res_in > 0 && cmp_sid(&g->res, &g->domain) == 0;
    g->has_res = n_res_in > 0 && !same;
    /* room for every RID and SID the logon info lists */
    g->rids = apr_palloc(p, sizeof(uint32_t) * ((size_t)li->n_groups + (size_t)n_res_in
                                                + (size_t)li->n_extra_sids + 1));
    g->res_rids = apr_palloc(p, sizeof(uint32_t) * ((size_t)n_res_in + (size_t)li->n_extra_sids + 1));
    g->extra = apr_palloc(p, sizeof(bsid) * ((size_t)li->n_extra_sids + 1));
    add_rid(g->rids, &g->n_rids, &g->domain, li->primary_group_rid);
    for (i = 0; i < li->n_groups; i++)
        if (counts(li->groups[i].attributes))
            add_rid(g->rids, &g->n_rids, &g->domain, li->groups[i].rid);
    for (i = 0; i < n_res_in; i++) {
        if (!counts(li->resource_groups[i].attributes))
            continue;
        if (same)
            add_rid(g->rids, &g->n_rids, &g->domain, li->resource_groups[i].rid);
        else
            add_rid(g->res_rids, &g->n_res, &g->res, li->resource_groups[i].rid);
    }
    /* a resource domain left without RIDs is no resource domain */
    if (g->n_res == 0)
        g->has_res = 0;
    for (i = 0; i < li->n_extra_sids; i++) {
        if (li->extra_sid_attributes != NULL && !counts(li->extra_sid_attributes[i]))
            continue;
        if ((s.len = kd_sid_binary(li->extra_sids[i], s.b)) != 0)
            add_extra(g, &s);
    }
    g->n_rids = sort_unique(g->rids, g->n_rids, sizeof(uint32_t), cmp_u32);
    g->n_res = sort_unique(g->res_rids, g->n_res, sizeof(uint32_t), cmp_u32);
    g->n_extra = sort_unique(g->extra, g->n_extra, sizeof(bsid), cmp_sid);
    return g;
}

/* ------------------------------------------------------------ questions */

int kd_groups_count(const kd_groups *g)
{
    return g ? g->n_rids + g->n_res + g->n_extra : 0;
}

static int holds(const kd_groups *g, const unsigned char *b, size_t len)
{
    bsid s;
    uint32_t rid;

    if (in_domain(&g->domain, b, len, &rid) && has_rid(g->rids, g->n_rids, rid))
        return 1;
    if (g->has_res && in_domain(&g->res, b, len, &rid) && has_rid(g->res_rids, g->n_res, rid))
        return 1;
    if (g->n_extra == 0)
        return 0;
    memcpy(s.b, b, len);
    s.len = len;
    return bsearch(&s, g->extra, (size_t)g->n_extra, sizeof(bsid), cmp_sid) != NULL;
}

int kd_groups_has_sid(const kd_groups *g, const char *sid)
{
    unsigned char b[KD_SID_MAX_BYTES];
    size_t len;

    if (g == NULL || (len = kd_sid_binary(sid, b)) == 0)
        return 0;
    return holds(g, b, len);
}

int kd_groups_equal(const kd_groups *a, const kd_groups *b)
{
    int i;

    if (a == NULL || b == NULL)
        return a == b;
    /* both are sets (nothing listed twice): same size, and a's SIDs in b */
    if (kd_groups_count(a) != kd_groups_count(b) || cmp_sid(&a->domain, &b->domain) != 0)
        return 0;
    for (i = 0; i < a->n_rids + a->n_res; i++) {
        const bsid *d = i < a->n_rids ? &a->domain : &a->res;
        uint32_t rid = i < a->n_rids ? a->rids[i] : a->res_rids[i - a->n_rids];
        bsid s = *d;

        s.b[1]++;
        s.b[s.len++] = (unsigned char)rid;
        s.b[s.len++] = (unsigned char)(rid >> 8);
        s.b[s.len++] = (unsigned char)(rid >> 16);
        s.b[s.len++] = (unsigned char)(rid >> 24);
        if (!holds(b, s.b, s.len))
            return 0;
    }
    for (i = 0; i < a->n_extra; i++)
        if (!holds(b, a->extra[i].b, a->extra[i].len))
            return 0;
    return 1;
}

static void push_domain(apr_pool_t *p, apr_array_header_t *out, const bsid *d,
                        const uint32_t *rids, int n)
{
    const char *base;
    int i;

    if (n == 0)
        return;
    base = kd_sid_string(p, d->b, d->len);
    for (i = 0; i < n; i++)
        APR_ARRAY_PUSH(out, const char *) = apr_psprintf(p, "%s-%u", base, (unsigned)rids[i]);
}

apr_array_header_t *kd_groups_sids(apr_pool_t *p, const kd_groups *g)
{
    apr_array_header_t *out = apr_array_make(p, kd_groups_count(g) + 1, sizeof(const char *));
    int i;

    if (g == NULL)
        return out;
    push_domain(p, out, &g->domain, g->rids, g->n_rids);
    if (g->has_res)
        push_domain(p, out, &g->res, g->res_rids, g->n_res);
    for (i = 0; i < g->n_extra; i++)
        APR_ARRAY_PUSH(out, const char *) = kd_sid_string(p, g->extra[i].b, g->extra[i].len);
    return out;
}

const char *kd_groups_sids_string(apr_pool_t *p, const kd_groups *g)
{
    return apr_array_pstrcat(p, kd_groups_sids(p, g), ' ');
}

/* ------------------------------------------------------------ wire form */

static size_t varint_size(uint32_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t rids_size(const uint32_t *rids, int n)
{
    size_t size = varint_size((uint32_t)n);
    int i;

    for (i = 0; i < n; i++)
        size += varint_size(i == 0 ? rids[0] : rids[i] - rids[i - 1]);
    return size;
}

size_t kd_groups_encoded_size(const kd_groups *g)
{
    size_t size;
    int i;

    if (g == NULL)
        return 0;
    size = 1 + g->domain.len + rids_size(g->rids, g->n_rids) + 1;
    if (g->has_res)
        size += g->res.len + rids_size(g->res_rids, g->n_res);
    size += varint_size((uint32_t)g->n_extra);
    for (i = 0; i < g->n_extra; i++)
        size += g->extra[i].len;
    return size;
}

typedef struct {
    unsigned char *b;
    size_t pos;
} wr;

static void put_varint(wr *w, uint32_t v)
{
    while (v >= 0x80) {
        w->b[w->pos++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    w->b[w->pos++] = (unsigned char)v;
}

static void put_rids(wr *w, const uint32_t *rids, int n)
{
    int i;

    put_varint(w, (uint32_t)n);
    for (i = 0; i < n; i++)
        put_varint(w, i == 0 ? rids[0] : rids[i] - rids[i - 1]);
}

static void put_sid(wr *w, const bsid *s)
{
    memcpy(w->b + w->pos, s->b, s->len);
    w->pos += s->len;
}

size_t kd_groups_encode(const kd_groups *g, unsigned char *buf, size_t cap)
{
    size_t size = kd_groups_encoded_size(g);
    wr w = {buf, 0};
    int i;

    if (g == NULL || size > cap)
        return 0;
    w.b[w.pos++] = GROUPS_FORMAT;
    put_sid(&w, &g->domain);
    put_rids(&w, g->rids, g->n_rids);
    w.b[w.pos++] = (unsigned char)(g->has_res ? 1 : 0);
    if (g->has_res) {
        put_sid(&w, &g->res);
        put_rids(&w, g->res_rids, g->n_res);
    }
    put_varint(&w, (uint32_t)g->n_extra);
    for (i = 0; i < g->n_extra; i++)
        put_sid(&w, &g->extra[i]);
    return w.pos;
}

typedef struct {
    const unsigned char *b;
    size_t pos, len;
} rd;

/* A minimal LEB128 varint below 2^32. */
static int get_varint(rd *r, uint32_t *v)
{
    uint64_t x = 0;
    int shift;

    for (shift = 0; shift < 35; shift += 7) {
        unsigned char c;

        if (r->pos >= r->len)
            return -1;
        c = r->b[r->pos++];
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            if (x > 0xffffffffu || (c == 0 && shift > 0))
                return -1; /* too big, or a zero byte no encoder writes */
            *v = (uint32_t)x;
            return 0;
        }
    }
    return -1;
}

static int get_sid(rd *r, bsid *s)
{
    size_t n;

    if (r->len - r->pos < 8 || r->b[r->pos] != 1)
        return -1;
    n = r->b[r->pos + 1];
    if (n > KD_SID_MAX_SUB_AUTHORITIES || r->len - r->pos < 8 + 4 * n)
        return -1;
    s->len = 8 + 4 * n;
    memcpy(s->b, r->b + r->pos, s->len);
    r->pos += s->len;
    return 0;
}

/* A count, then strictly increasing RIDs as differences. */
static int get_rids(apr_pool_t *p, rd *r, const bsid *d, uint32_t **out, int *n_out)
{
    uint32_t n, i, v, prev = 0;
    uint32_t *rids;

    if (get_varint(r, &n) != 0 || n > r->len - r->pos) /* a RID takes a byte at least */
        return -1;
    *n_out = (int)n;
    *out = rids = apr_palloc(p, sizeof(uint32_t) * ((size_t)n + 1));
    if (n > 0 && !takes_rids(d))
        return -1;
    for (i = 0; i < n; i++) {
        if (get_varint(r, &v) != 0)
            return -1;
        if (i > 0 && (v == 0 || v > 0xffffffffu - prev))
            return -1; /* not increasing, or past 2^32 */
        rids[i] = prev = i == 0 ? v : prev + v;
    }
    return 0;
}

static int get_extras(apr_pool_t *p, rd *r, kd_groups *g)
{
    uint32_t n, i, rid;

    if (get_varint(r, &n) != 0 || n > (r->len - r->pos) / 8) /* a SID takes 8 bytes at least */
        return -1;
    g->n_extra = (int)n;
    g->extra = apr_palloc(p, sizeof(bsid) * ((size_t)n + 1));
    for (i = 0; i < n; i++) {
        bsid *s = &g->extra[i];

        if (get_sid(r, s) != 0 || (i > 0 && cmp_sid(&g->extra[i - 1], s) >= 0))
            return -1;
        /* the encoder folds these into the domains' RIDs */
        if ((takes_rids(&g->domain) && in_domain(&g->domain, s->b, s->len, &rid))
            || (g->has_res && in_domain(&g->res, s->b, s->len, &rid)))
            return -1;
    }
    return 0;
}

kd_groups *kd_groups_decode(apr_pool_t *p, const unsigned char *b, size_t len)
{
    kd_groups *g = apr_pcalloc(p, sizeof(*g));
    rd r = {b, 1, len};

    if (b == NULL || len < 1 || b[0] != GROUPS_FORMAT || get_sid(&r, &g->domain) != 0
        || get_rids(p, &r, &g->domain, &g->rids, &g->n_rids) != 0 || r.pos >= len
        || b[r.pos] > 1)
        return NULL;
    g->has_res = b[r.pos++];
    if (g->has_res
        && (get_sid(&r, &g->res) != 0 || cmp_sid(&g->res, &g->domain) == 0
            || get_rids(p, &r, &g->res, &g->res_rids, &g->n_res) != 0 || g->n_res == 0))
        return NULL;
    if (get_extras(p, &r, g) != 0 || r.pos != len)
        return NULL;
    return g;
}

/* ------------------------------------------------------------ aliases */

#define ALIAS_MAX 64

struct kd_group_map {
    apr_hash_t *by_alias; /* lower-case alias -> canonical SID */
};

kd_group_map *kd_group_map_create(apr_pool_t *p)
{
    kd_group_map *m = apr_palloc(p, sizeof(*m));

    m->by_alias = apr_hash_make(p);
    return m;
}

/* The alias in lower case, or NULL when it is not one. */
static char *alias_key(apr_pool_t *p, const char *alias)
{
    size_t i, n = alias ? strlen(alias) : 0;
    char *key;

    if (n == 0 || n > ALIAS_MAX || strncasecmp(alias, "S-1-", 4) == 0)
        return NULL;
    key = apr_pstrmemdup(p, alias, n);
    for (i = 0; i < n; i++) {
        char c = key[i];

        if (c >= 'A' && c <= 'Z')
            key[i] = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'
                   || c == '-'))
            return NULL;
    }
    return key;
}

const char *kd_group_map_add(kd_group_map *m, const char *alias, const char *sid)
{
    apr_pool_t *p = apr_hash_pool_get(m->by_alias);
    const char *key = alias_key(p, alias), *canonical = kd_sid_parse(p, sid), *old;

    if (key == NULL)
        return apr_psprintf(p, "'%s' is not a usable alias (1 to %d of A-Z a-z 0-9 _ . -, not "
                            "starting with S-1-)", alias ? alias : "", ALIAS_MAX);
    if (canonical == NULL)
        return apr_psprintf(p, "'%s' is not a SID (S-1-5-21-...-RID)", sid ? sid : "");
    old = apr_hash_get(m->by_alias, key, APR_HASH_KEY_STRING);
    if (old != NULL && strcmp(old, canonical) != 0)
        return apr_psprintf(p, "alias '%s' already names %s", alias, old);
    apr_hash_set(m->by_alias, key, APR_HASH_KEY_STRING, canonical);
    return NULL;
}

kd_group_map *kd_group_map_merge(apr_pool_t *p, const kd_group_map *base,
                                 const kd_group_map *add)
{
    kd_group_map *m = kd_group_map_create(p);

    if (base && add)
        m->by_alias = apr_hash_overlay(p, add->by_alias, base->by_alias);
    else if (base || add)
        m->by_alias = apr_hash_copy(p, (base ? base : add)->by_alias);
    return m;
}

const char *kd_group_map_resolve(apr_pool_t *p, const kd_group_map *m, const char *word)
{
    const char *sid = kd_sid_parse(p, word), *key;

    if (sid != NULL || m == NULL || (key = alias_key(p, word)) == NULL)
        return sid;
    return apr_hash_get(m->by_alias, key, APR_HASH_KEY_STRING);
}
