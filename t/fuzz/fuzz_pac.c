/* The PAC inside a ticket: the input is tried both as a whole PACTYPE
 * (find the logon-info buffer, then decode it) and as a logon-info buffer
 * on its own, so the fuzzer reaches the NDR reader directly too. A
 * decoded logon info must hold every SID it lists; the input as a SID
 * string exercises the SID parser. */
#include "fuzz_common.h"
#include "kd_pac.h"

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
    apr_pool_destroy(p);
    return 0;
}
