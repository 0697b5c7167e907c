#include "kd_unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#include "kd_groups.h"
#include "kd_pac.h"

/* The logon infos of t/fuzz/seeds/pac (make-pac-seeds.py builds them the
 * way a DC marshals them; Samba 4.17 never emits resource groups, so these
 * are the only ones there are). */
#define SEEDS "t/fuzz/seeds/pac/"

static kd_logon_info seed_logon_info(const char *name)
{
    size_t len;
    const unsigned char *b = kd_test_file(apr_pstrcat(kd_test_pool, SEEDS, name, NULL), &len);
    kd_logon_info li;
    const char *why = NULL;

    ck_assert_msg(kd_pac_logon_info(kd_test_pool, b, len, &li, &why) == 0, "%s: %s", name,
                  why ? why : "?");
    return li;
}

static kd_groups *seed_groups(const char *name)
{
    kd_logon_info li = seed_logon_info(name);
    kd_groups *g = kd_groups_from_logon_info(kd_test_pool, &li);

    ck_assert_ptr_nonnull(g);
    return g;
}

static unsigned char *encode(const kd_groups *g, size_t *len)
{
    size_t size = kd_groups_encoded_size(g);
    unsigned char *b = apr_palloc(kd_test_pool, size + 1);

    ck_assert_uint_gt(size, 0);
    ck_assert_uint_eq(kd_groups_encode(g, b, size - 1), 0); /* too small: nothing */
    *len = kd_groups_encode(g, b, size);
    ck_assert_uint_eq(*len, size);
    return b;
}

/* Encode, decode, compare; and the decoded set encodes to the same bytes. */
static void roundtrip(const kd_groups *g)
{
    size_t len, len2;
    unsigned char *b = encode(g, &len), *b2;
    kd_groups *back = kd_groups_decode(kd_test_pool, b, len);

    ck_assert_ptr_nonnull(back);
    ck_assert(kd_groups_equal(g, back));
    ck_assert(kd_groups_equal(back, g));
    ck_assert_str_eq(kd_groups_sids_string(kd_test_pool, back),
                     kd_groups_sids_string(kd_test_pool, g));
    b2 = encode(back, &len2);
    ck_assert_uint_eq(len, len2);
    ck_assert(memcmp(b, b2, len) == 0);
}

/* ------------------------------------------------------------ from logon infos */

#define RG_SIDS                                                                               \
    "S-1-5-21-1-2-3-513 S-1-5-21-1-2-3-1104 S-1-5-21-1-2-3-1150 "                            \
    "S-1-5-21-4-5-6-2001 S-1-5-21-4-5-6-2002 S-1-5-21-4-5-6-2050 "                           \
    "S-1-18-1 S-1-5-21-7-8-9-1000"

START_TEST(resource_groups_extra_sids_and_attributes)
{
    kd_groups *g = seed_groups("resource-groups.ndr");
    apr_array_header_t *sids = kd_groups_sids(kd_test_pool, g);
    static const char *const out[] = {
        "S-1-5-21-1-2-3-1600",     /* the user: not a group */
        "S-1-5-21-1-2-3-1190",     /* disabled */
        "S-1-5-21-1-2-3-1191",     /* enabled, but deny-only */
        "S-1-5-21-4-5-6-2003",     /* a resource group, not enabled */
        "S-1-5-21-7-8-9-1001",     /* an extra SID, not enabled */
        "S-1-5-21-1-2-3",          /* the domain */
        "S-1-5-21-4-5-6",
        "S-1-5-21-1-2-3-1104 ",    /* not a SID */
        "S-1-5-21-1-2-3-4294967296",
        "S-1-5-21-1-2-3-1104-",
        "S 1-5-21-1-2-3-1104",
        "",
    };
    size_t i;
    int j;

    /* primary group and groups (one twice) in the logon domain, an extra
     * SID folded in; resource groups with one folded in too; the extra
     * SIDs of other domains */
    ck_assert_int_eq(kd_groups_count(g), 8);
    ck_assert_int_eq(sids->nelts, 8);
    ck_assert_str_eq(kd_groups_sids_string(kd_test_pool, g), RG_SIDS);
    for (j = 0; j < sids->nelts; j++)
        ck_assert_msg(kd_groups_has_sid(g, APR_ARRAY_IDX(sids, j, const char *)), "%s",
                      APR_ARRAY_IDX(sids, j, const char *));
    /* any spelling of the same SID */
    ck_assert(kd_groups_has_sid(g, "s-1-5-21-1-2-3-1104"));
    ck_assert(kd_groups_has_sid(g, "S-1-5-021-0001-2-3-01104"));
    ck_assert(kd_groups_has_sid(g, "S-1-0x5-21-4-5-6-2002"));
    ck_assert(kd_groups_has_sid(g, "S-1-0x000000000012-1"));
    for (i = 0; i < sizeof(out) / sizeof(out[0]); i++)
        ck_assert_msg(!kd_groups_has_sid(g, out[i]), "%s", out[i]);
    ck_assert(!kd_groups_has_sid(g, NULL));
    roundtrip(g);
}
END_TEST

START_TEST(whole_pac_same_set)
{
    size_t len, buf_len;
    const unsigned char *pac = kd_test_file(SEEDS "resource-groups.pac", &len), *buf;
    kd_logon_info li;

    ck_assert_int_eq(kd_pac_buffer(pac, len, KD_PAC_LOGON_INFO, &buf, &buf_len), 0);
    ck_assert_int_eq(kd_pac_logon_info(kd_test_pool, buf, buf_len, &li, NULL), 0);
    ck_assert(kd_groups_equal(kd_groups_from_logon_info(kd_test_pool, &li),
                              seed_groups("resource-groups.ndr")));
    ck_assert(!kd_groups_equal(kd_groups_from_logon_info(kd_test_pool, &li),
                               seed_groups("rich.ndr")));
}
END_TEST

START_TEST(s4u2self_asserted_identity_kept)
{
    kd_groups *g = seed_groups("s4u2self.ndr");

    ck_assert(kd_groups_has_sid(g, KD_SID_SERVICE_ASSERTED));
    ck_assert(!kd_groups_has_sid(g, KD_SID_AUTHORITY_ASSERTED));
    ck_assert_str_eq(kd_groups_sids_string(kd_test_pool, g),
                     "S-1-5-21-11-22-33-513 S-1-5-21-11-22-33-1110 S-1-18-2");
    roundtrip(g);
}
END_TEST

START_TEST(resource_domain_is_the_logon_domain)
{
    kd_groups *g = seed_groups("resource-same-domain.ndr");

    ck_assert_str_eq(kd_groups_sids_string(kd_test_pool, g),
                     "S-1-5-21-1-2-3-513 S-1-5-21-1-2-3-1104 S-1-5-21-1-2-3-3001");
    roundtrip(g);
}
END_TEST

START_TEST(other_seeds)
{
    static const char *const names[] = {"minimal.ndr", "rich.ndr", "not-delegated.ndr",
                                        "protected-users.ndr", "ms-pac-logon-info.ndr"};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        roundtrip(seed_groups(names[i]));
    ck_assert_str_eq(kd_groups_sids_string(kd_test_pool, seed_groups("minimal.ndr")),
                     "S-1-5-21-1-2-3-513");
    /* MS-PAC's example: 26 groups (513 among them, also the primary group),
     * 13 extra SIDs with SE_GROUP_RESOURCE, all enabled */
    ck_assert_int_eq(kd_groups_count(seed_groups("ms-pac-logon-info.ndr")), 26 + 13);
}
END_TEST

START_TEST(seven_hundred_groups)
{
    kd_groups *g = seed_groups("groups-700.ndr");
    size_t len;
    uint32_t rid;

    ck_assert_int_eq(kd_groups_count(g), 1 + 700 + 1);
    for (rid = 1105; rid < 1805; rid++)
        ck_assert(kd_groups_has_sid(g, apr_psprintf(kd_test_pool, "S-1-5-21-11-22-33-%u", rid)));
    ck_assert(kd_groups_has_sid(g, "S-1-5-21-11-22-33-513"));
    ck_assert(!kd_groups_has_sid(g, "S-1-5-21-11-22-33-1104"));
    ck_assert(!kd_groups_has_sid(g, "S-1-5-21-11-22-33-1805"));
    ck_assert(!kd_groups_has_sid(g, "S-1-5-21-11-22-33-1100")); /* the user */
    ck_assert(kd_groups_has_sid(g, "S-1-18-1"));
    /* consecutive RIDs: a byte each (format, domain, count, 513, 1105 - 513,
     * 699 ones, no resource domain, one extra SID) */
    encode(g, &len);
    ck_assert_uint_eq(len, 1 + 24 + 2 + 2 + 2 + 699 + 1 + 1 + 12);
    roundtrip(g);
}
END_TEST

START_TEST(made_by_hand)
{
    kd_pac_group groups[] = {{1104, 7}, {1104, 7}, {0xffffffffu, 7}, {0, 7}};
    const char *extra[] = {"S-1-5-21-1-2-3-77", "S-1-1-0", "S-1-1-0", "S-1-5-32-544"};
    kd_logon_info li;
    kd_groups *g;

    memset(&li, 0, sizeof(li));
    ck_assert_ptr_null(kd_groups_from_logon_info(kd_test_pool, NULL));
    ck_assert_ptr_null(kd_groups_from_logon_info(kd_test_pool, &li)); /* no domain */
    li.domain_sid = "S-1-5-21-1-2-3";
    li.primary_group_rid = 513;
    li.groups = groups;
    li.n_groups = 4;
    li.extra_sids = extra;
    li.n_extra_sids = 4; /* no attributes: all count */
    g = kd_groups_from_logon_info(kd_test_pool, &li);
    ck_assert_str_eq(kd_groups_sids_string(kd_test_pool, g),
                     "S-1-5-21-1-2-3-0 S-1-5-21-1-2-3-77 S-1-5-21-1-2-3-513 "
                     "S-1-5-21-1-2-3-1104 S-1-5-21-1-2-3-4294967295 S-1-1-0 S-1-5-32-544");
    roundtrip(g);
    /* a domain SID with 15 sub-authorities cannot take a RID */
    li.domain_sid = "S-1-5-21-1-2-3-4-5-6-7-8-9-10-11-12-13-14";
    g = kd_groups_from_logon_info(kd_test_pool, &li);
    ck_assert_str_eq(kd_groups_sids_string(kd_test_pool, g),
                     "S-1-1-0 S-1-5-32-544 S-1-5-21-1-2-3-77");
    roundtrip(g);
    li.domain_sid = "not a SID";
    ck_assert_ptr_null(kd_groups_from_logon_info(kd_test_pool, &li));
    /* nothing */
    ck_assert_int_eq(kd_groups_count(NULL), 0);
    ck_assert(!kd_groups_has_sid(NULL, "S-1-1-0"));
    ck_assert_str_eq(kd_groups_sids_string(kd_test_pool, NULL), "");
    ck_assert_uint_eq(kd_groups_encoded_size(NULL), 0);
    ck_assert(kd_groups_equal(NULL, NULL));
    ck_assert(!kd_groups_equal(g, NULL));
}
END_TEST

/* ------------------------------------------------------------ wire form */

START_TEST(decode_truncated_at_every_offset)
{
    kd_groups *g = seed_groups("resource-groups.ndr");
    size_t len, i;
    unsigned char *b = encode(g, &len);

    for (i = 0; i < len; i++)
        ck_assert_msg(kd_groups_decode(kd_test_pool, b, i) == NULL, "cut at %zu", i);
    ck_assert_ptr_nonnull(kd_groups_decode(kd_test_pool, b, len));
    ck_assert_ptr_null(kd_groups_decode(kd_test_pool, NULL, 0));
}
END_TEST

/* Any one byte changed: refused, or a set that encodes back to those very
 * bytes (one encoding per set representation). */
START_TEST(decode_every_byte_changed)
{
    kd_groups *g = seed_groups("resource-groups.ndr");
    size_t len, i;
    unsigned char *b = encode(g, &len);
    static const unsigned char values[] = {0x00, 0x01, 0x02, 0x0f, 0x10, 0x7f, 0x80, 0xff};

    for (i = 0; i < len; i++) {
        unsigned char keep = b[i];
        size_t v;

        for (v = 0; v < sizeof(values); v++) {
            kd_groups *d;

            b[i] = values[v];
            if ((d = kd_groups_decode(kd_test_pool, b, len)) != NULL) {
                size_t len2;
                unsigned char *b2 = encode(d, &len2);

                ck_assert_msg(len2 == len && memcmp(b, b2, len) == 0, "byte %zu = %02x", i,
                              values[v]);
            }
        }
        b[i] = keep;
    }
}
END_TEST

/* An encoding by hand: format 1, domain S-1-5-21-1-2-3, then the rest. */
static kd_groups *decode_hex(const char *rest_hex)
{
    static const unsigned char head[] = {1, 1, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0,
                                         1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0};
    unsigned char b[256];
    size_t n = sizeof(head), i;

    memcpy(b, head, n);
    for (i = 0; rest_hex[i] && rest_hex[i + 1]; i += 2) {
        unsigned v;

        if (rest_hex[i] == ' ') {
            i--;
            continue;
        }
        ck_assert_int_eq(sscanf(rest_hex + i, "%2x", &v), 1);
        b[n++] = (unsigned char)v;
    }
    return kd_groups_decode(kd_test_pool, b, n);
}

START_TEST(decode_hostile_values)
{
    kd_groups *g;

    /* the reference: RIDs 513 and 1104, no resource domain, no extra SID */
    g = decode_hex("02 8104 cf04 00 00");
    ck_assert_ptr_nonnull(g);
    ck_assert_str_eq(kd_groups_sids_string(kd_test_pool, g),
                     "S-1-5-21-1-2-3-513 S-1-5-21-1-2-3-1104");
    ck_assert_ptr_nonnull(decode_hex("00 00 00"));                 /* empty is a set */
    ck_assert_ptr_null(decode_hex("02 8104 cf04 00 00 00"));        /* a byte after the end */
    ck_assert_ptr_null(decode_hex("02 8104 cf04 00"));              /* no extra count */
    ck_assert_ptr_null(decode_hex("02 8104 00 00 00"));             /* zero difference */
    ck_assert_ptr_null(decode_hex("02 8184 00 cf04 00 00"));        /* not minimal */
    ck_assert_ptr_null(decode_hex("01 8080808000 00 00"));          /* not minimal, 5 bytes */
    ck_assert_ptr_nonnull(decode_hex("01 ffffffff0f 00 00"));       /* 2^32 - 1 */
    ck_assert_ptr_null(decode_hex("01 ffffffff1f 00 00"));          /* 2^32 and more */
    ck_assert_ptr_null(decode_hex("01 ffffffffff01 00 00"));        /* six bytes */
    ck_assert_ptr_null(decode_hex("02 feffffff0f 02 00 00"));       /* past 2^32 by adding */
    ck_assert_ptr_nonnull(decode_hex("02 feffffff0f 01 00 00"));
    ck_assert_ptr_null(decode_hex("ffffffff0f 01 00 00"));          /* count beyond the data */
    ck_assert_ptr_null(decode_hex("00 02 00"));                     /* resource flag 2 */
    /* a resource domain: S-1-5-21-4-5-6 with RID 2001 */
    ck_assert_ptr_nonnull(decode_hex("00 01 0104000000000005 15000000 04000000 05000000 06000000 "
                                     "01 d10f 00"));
    ck_assert_ptr_null(decode_hex("00 01 0104000000000005 15000000 04000000 05000000 06000000 "
                                  "00 00"));                         /* without RIDs */
    ck_assert_ptr_null(decode_hex("00 01 0104000000000005 15000000 01000000 02000000 03000000 "
                                  "01 d10f 00"));                    /* the logon domain */
    ck_assert_ptr_null(decode_hex("00 01 0204000000000005 15000000 04000000 05000000 06000000 "
                                  "01 d10f 00"));                    /* revision 2 */
    /* extra SIDs: S-1-1-0 and S-1-5-32-544 */
    ck_assert_ptr_nonnull(decode_hex("00 00 02 010100000000000100000000 "
                                     "010200000000000520000000 20020000"));
    ck_assert_ptr_null(decode_hex("00 00 02 010200000000000520000000 20020000 "
                                  "010100000000000100000000"));      /* out of order */
    ck_assert_ptr_null(decode_hex("00 00 02 010100000000000100000000 "
                                  "010100000000000100000000"));      /* twice */
    ck_assert_ptr_null(decode_hex("00 00 01 010500000000000515000000010000000200000003000000 04000000"));           /* a RID of the domain */
    ck_assert_ptr_null(decode_hex("00 00 01 011000000000000100000000")); /* 16 sub-authorities */
    ck_assert_ptr_null(decode_hex("00 00 05 010100000000000100000000")); /* count beyond the data */
    {
        static const unsigned char bad_format[] = {2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        static const unsigned char short_sid[] = {1, 1, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0};

        ck_assert_ptr_null(kd_groups_decode(kd_test_pool, bad_format, sizeof(bad_format)));
        ck_assert_ptr_null(kd_groups_decode(kd_test_pool, short_sid, sizeof(short_sid)));
    }
}
END_TEST

/* ------------------------------------------------------------ SIDs and aliases */

START_TEST(sid_parse)
{
    static const char *const bad[] = {
        "", "S", "S-", "S-1", "S-1-", "S-2-5-21", "S-1-5-", "S-1--5", "S-1-5--21", "S-1-5-21-",
        " S-1-5-21", "S-1-5-21 ", "S-1-5-+21", "S-1-5-0x21", "S-1-0x", "S-1-0xG", "S-1-281474976710656",
        "S-1-5-4294967296", "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16", "X-1-5",
        "S-1-5-21\n", "S-1-5-21-1-2-3-1104x", "S-01-5",
    };
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(kd_sid_parse(kd_test_pool, bad[i]) == NULL, "\"%s\"", bad[i]);
    ck_assert_ptr_null(kd_sid_parse(kd_test_pool, NULL));
    ck_assert_str_eq(kd_sid_parse(kd_test_pool, "s-1-5-21-0001-2-3-1104"), "S-1-5-21-1-2-3-1104");
    ck_assert_str_eq(kd_sid_parse(kd_test_pool, "S-1-0x5-32-544"), "S-1-5-32-544");
    ck_assert_str_eq(kd_sid_parse(kd_test_pool, "S-1-5"), "S-1-5");
    ck_assert_str_eq(kd_sid_parse(kd_test_pool, "S-1-281474976710655-1"),
                     "S-1-0xFFFFFFFFFFFF-1");
    ck_assert_str_eq(kd_sid_parse(kd_test_pool, "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15"),
                     "S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15");
    ck_assert_str_eq(kd_sid_parse(kd_test_pool, "S-1-5-4294967295"), "S-1-5-4294967295");
}
END_TEST

START_TEST(alias_map)
{
    kd_group_map *m = kd_group_map_create(kd_test_pool), *server, *merged;

    ck_assert_ptr_null(kd_group_map_add(m, "WebUsers", "S-1-5-21-1-2-3-01104"));
    ck_assert_ptr_null(kd_group_map_add(m, "webusers", "s-1-5-21-1-2-3-1104")); /* same SID */
    ck_assert_ptr_null(kd_group_map_add(m, "domain.admins_2-x", "S-1-5-21-1-2-3-512"));
    ck_assert_ptr_nonnull(kd_group_map_add(m, "WEBUSERS", "S-1-5-21-1-2-3-1105"));
    ck_assert_ptr_nonnull(kd_group_map_add(m, "", "S-1-5-21-1-2-3-1105"));
    ck_assert_ptr_nonnull(kd_group_map_add(m, NULL, "S-1-5-21-1-2-3-1105"));
    ck_assert_ptr_nonnull(kd_group_map_add(m, "web users", "S-1-5-21-1-2-3-1105"));
    ck_assert_ptr_nonnull(kd_group_map_add(m, "DOM\\users", "S-1-5-21-1-2-3-1105"));
    ck_assert_ptr_nonnull(kd_group_map_add(m, "s-1-5-32-544", "S-1-5-21-1-2-3-1105"));
    ck_assert_ptr_nonnull(kd_group_map_add(m, "S-1-whatever", "S-1-5-21-1-2-3-1105"));
    ck_assert_ptr_nonnull(kd_group_map_add(m, apr_psprintf(kd_test_pool, "%065d", 1),
                                           "S-1-5-21-1-2-3-1105"));
    ck_assert_ptr_null(kd_group_map_add(m, apr_psprintf(kd_test_pool, "%064d", 1),
                                        "S-1-5-21-1-2-3-1105"));
    ck_assert_ptr_nonnull(kd_group_map_add(m, "admins", "S-1-5-21-1-2-3-512 "));
    ck_assert_ptr_nonnull(kd_group_map_add(m, "admins", "Domain Admins"));
    ck_assert_ptr_nonnull(kd_group_map_add(m, "admins", NULL));
    ck_assert_str_eq(kd_group_map_resolve(kd_test_pool, m, "WEBusers"), "S-1-5-21-1-2-3-1104");
    ck_assert_str_eq(kd_group_map_resolve(kd_test_pool, m, "s-1-5-32-0544"), "S-1-5-32-544");
    ck_assert_str_eq(kd_group_map_resolve(kd_test_pool, NULL, "S-1-5-32-544"), "S-1-5-32-544");
    ck_assert_ptr_null(kd_group_map_resolve(kd_test_pool, m, "nobody"));
    ck_assert_ptr_null(kd_group_map_resolve(kd_test_pool, m, "web users"));
    ck_assert_ptr_null(kd_group_map_resolve(kd_test_pool, NULL, "webusers"));
    /* a virtual host's aliases over the server's */
    server = kd_group_map_create(kd_test_pool);
    ck_assert_ptr_null(kd_group_map_add(server, "webusers", "S-1-5-21-9-9-9-1104"));
    ck_assert_ptr_null(kd_group_map_add(server, "staff", "S-1-5-21-9-9-9-1200"));
    merged = kd_group_map_merge(kd_test_pool, server, m);
    ck_assert_str_eq(kd_group_map_resolve(kd_test_pool, merged, "webusers"), "S-1-5-21-1-2-3-1104");
    ck_assert_str_eq(kd_group_map_resolve(kd_test_pool, merged, "staff"), "S-1-5-21-9-9-9-1200");
    merged = kd_group_map_merge(kd_test_pool, server, NULL);
    ck_assert_str_eq(kd_group_map_resolve(kd_test_pool, merged, "webusers"), "S-1-5-21-9-9-9-1104");
    ck_assert_ptr_null(kd_group_map_add(merged, "new", "S-1-1-0"));
    ck_assert_ptr_null(kd_group_map_resolve(kd_test_pool, server, "new")); /* a copy */
    merged = kd_group_map_merge(kd_test_pool, NULL, NULL);
    ck_assert_ptr_null(kd_group_map_resolve(kd_test_pool, merged, "staff"));
}
END_TEST

Suite *kd_groups_suite(void)
{
    Suite *s = suite_create("kd_groups");
    TCase *tc = tcase_create("groups");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, resource_groups_extra_sids_and_attributes);
    tcase_add_test(tc, whole_pac_same_set);
    tcase_add_test(tc, s4u2self_asserted_identity_kept);
    tcase_add_test(tc, resource_domain_is_the_logon_domain);
    tcase_add_test(tc, other_seeds);
    tcase_add_test(tc, seven_hundred_groups);
    tcase_add_test(tc, made_by_hand);
    tcase_add_test(tc, decode_truncated_at_every_offset);
    tcase_add_test(tc, decode_every_byte_changed);
    tcase_add_test(tc, decode_hostile_values);
    tcase_add_test(tc, sid_parse);
    tcase_add_test(tc, alias_map);
    suite_add_tcase(s, tc);
    return s;
}
