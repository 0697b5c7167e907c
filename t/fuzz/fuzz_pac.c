/* The PAC inside a ticket: the input is tried both as a whole PACTYPE
 * (find the logon-info buffer, then decode it) and as a logon-info buffer
 * on its own, so the fuzzer reaches the NDR reader directly too. A
 * decoded logon info must hold every SID it lists; the input as a SID
 * string exercises the SID parser. Its group set (kd_groups) must hold
 * every SID it lists and survive its wire form (the session cookie's);
 * the input as such a wire form must decode only to a set that encodes
 * back to the same bytes. */
#include "fuzz_common.h"
#include "kd_groups.h"
#include "kd_pac.h"

/* The wire form of g, decoded again: the same set, the same bytes. */
static void groups_roundtrip(apr_pool_t *p, const kd_groups *g)
{
    size_t size = kd_groups_encoded_size(g), len;
    unsigned char *b = apr_palloc(p, size + 1), *b2;
    kd_groups *back;

    FUZZ_ASSERT(size > 0 && kd_groups_encode(g, b, size - 1) == 0);
    len = kd_groups_encode(g, b, size);
    FUZZ_ASSERT(len == size);
    back = kd_groups_decode(p, b, len);
    FUZZ_ASSERT(back != NULL && kd_groups_equal(g, back) && kd_groups_equal(back, g));
    b2 = apr_palloc(p, size + 1);
    FUZZ_ASSERT(kd_groups_encode(back, b2, size) == size && memcmp(b, b2, size) == 0);
}

static void groups(apr_pool_t *p, const kd_logon_info *li, const char *text)
{
    kd_groups *g = kd_groups_from_logon_info(p, li);
    apr_array_header_t *sids;
    int i;

    FUZZ_ASSERT(g != NULL);
    sids = kd_groups_sids(p, g);
    FUZZ_ASSERT(sids->nelts == kd_groups_count(g));
    FUZZ_ASSERT(kd_groups_count(g) <= 1 + li->n_groups + li->n_extra_sids + li->n_resource_groups);
    for (i = 0; i < sids->nelts; i++) {
        const char *sid = APR_ARRAY_IDX(sids, i, const char *);

        FUZZ_ASSERT(kd_groups_has_sid(g, sid));
        /* a group the PAC lists, or its primary group */
        FUZZ_ASSERT(kd_logon_info_has_sid(p, li, sid));
    }
    kd_groups_has_sid(g, text);
    groups_roundtrip(p, g);
}

/* The input as the wire form of a group set. */
static void groups_wire(apr_pool_t *p, const uint8_t *data, size_t size)
{
    kd_groups *g = kd_groups_decode(p, data, size);
    unsigned char *b;

    if (g == NULL)
        return;
    FUZZ_ASSERT(kd_groups_encoded_size(g) == size);
    b = apr_palloc(p, size + 1);
    FUZZ_ASSERT(kd_groups_encode(g, b, size) == size && memcmp(b, data, size) == 0);
    groups_roundtrip(p, g);
}

/* Room for one more sub-authority (a RID) after this SID? */
static int can_append(const char *sid)
{
    int dashes = 0;

    for (; *sid; sid++)
        dashes += *sid == '-';
    return dashes - 2 < KD_SID_MAX_SUB_AUTHORITIES;
}

static void logon_info(apr_pool_t *p, const unsigned char *buf, size_t len, const char *text)
{
    kd_logon_info li;
    const char *why = NULL;
    int i;

    if (kd_pac_logon_info(p, buf, len, &li, &why) != 0) {
        FUZZ_ASSERT(why != NULL && li.domain_sid == NULL && li.n_groups == 0);
        FUZZ_ASSERT(!kd_logon_info_has_sid(p, &li, text));
        return;
    }
    FUZZ_ASSERT(why == NULL);
    FUZZ_ASSERT(li.domain_sid != NULL && strncmp(li.domain_sid, "S-1-", 4) == 0);
    FUZZ_ASSERT(li.n_groups >= 0 && (li.n_groups == 0 || li.groups != NULL));
    FUZZ_ASSERT(li.n_groups <= (int)(len / 8));
    FUZZ_ASSERT(!can_append(li.domain_sid)
                || kd_logon_info_has_sid(p, &li,
                                         apr_psprintf(p, "%s-%u", li.domain_sid, li.user_rid)));
    for (i = 0; i < li.n_groups && can_append(li.domain_sid); i++)
        FUZZ_ASSERT(kd_logon_info_has_sid(
            p, &li, apr_psprintf(p, "%s-%u", li.domain_sid, li.groups[i].rid)));
    for (i = 0; i < li.n_extra_sids; i++)
        FUZZ_ASSERT(kd_logon_info_has_sid(p, &li, li.extra_sids[i]));
    FUZZ_ASSERT(li.n_resource_groups == 0 || li.resource_domain_sid != NULL);
    for (i = 0; i < li.n_resource_groups && can_append(li.resource_domain_sid); i++)
        FUZZ_ASSERT(kd_logon_info_has_sid(
            p, &li, apr_psprintf(p, "%s-%u", li.resource_domain_sid, li.resource_groups[i].rid)));
    if (li.effective_name)
        FUZZ_ASSERT(strlen(li.effective_name) <= len / 2 * 3);
    if (li.logon_domain_name)
        FUZZ_ASSERT(strlen(li.logon_domain_name) <= len / 2 * 3);
    kd_logon_info_has_sid(p, &li, text);
    kd_logon_info_not_delegable(&li);
    groups(p, &li, text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *text = fuzz_string(p, data, size);
    const unsigned char *buf = NULL;
    size_t len = 0;
    int rc;

    rc = kd_pac_buffer(data, size, KD_PAC_LOGON_INFO, &buf, &len);
    FUZZ_ASSERT(rc == 0 || rc == KD_PAC_ABSENT || rc == KD_PAC_MALFORMED);
    if (rc == 0) {
        FUZZ_ASSERT(buf >= data && len <= size && (size_t)(buf - data) <= size - len);
        logon_info(p, buf, len, text);
    }
    logon_info(p, data, size, text);
    if (size >= 8)
        kd_sid_string(p, data, size);
    groups_wire(p, data, size);
    if (kd_sid_parse(p, text) != NULL)
        FUZZ_ASSERT(strcmp(kd_sid_parse(p, kd_sid_parse(p, text)), kd_sid_parse(p, text)) == 0);
    apr_pool_destroy(p);
    return 0;
}
