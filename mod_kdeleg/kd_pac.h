/* kd_pac: read the Microsoft PAC (MS-PAC) that Active Directory puts in
 * its tickets, and the logon-info buffer in it (KERB_VALIDATION_INFO,
 * MS-PAC 2.5), so that the module can say who a user is in AD terms and
 * why AD will refuse to delegate them.
 *
 * Nothing here checks the PAC signatures: the caller must only feed a PAC
 * that came out of a ticket GSS-API/krb5 already decrypted and verified.
 * Even so the bytes are treated as hostile: every count and length is
 * checked against what is left before it is used. */
#ifndef KD_PAC_H
#define KD_PAC_H

#include <stddef.h>
#include <stdint.h>
#include <apr_pools.h>

/* PAC_INFO_BUFFER ulType values (MS-PAC 2.4) we look for. */
#define KD_PAC_LOGON_INFO 1
#define KD_PAC_CLIENT_INFO 10

/* UserAccountControl: "Account is sensitive and cannot be delegated". */
#define KD_ACB_NOT_DELEGATED 0x4000u
/* The domain-relative RID of the Protected Users group. */
#define KD_RID_PROTECTED_USERS 525u

/* A SID has at most 15 sub-authorities (MS-DTYP 2.4.2). */
#define KD_SID_MAX_SUB_AUTHORITIES 15

/* The largest binary SID (MS-DTYP 2.4.2.2). */
#define KD_SID_MAX_BYTES (8 + 4 * KD_SID_MAX_SUB_AUTHORITIES)

/* kd_pac_buffer results besides 0 (found). */
#define KD_PAC_MALFORMED (-1)
#define KD_PAC_ABSENT 1

typedef struct {
    uint32_t rid;        /* relative to the domain SID it is listed under */
    uint32_t attributes; /* SE_GROUP_* bits */
} kd_pac_group;

typedef struct {
    const char *effective_name;    /* sAMAccountName, UTF-8, may be NULL */
    const char *logon_domain_name; /* NetBIOS domain, UTF-8, may be NULL */
    uint32_t user_rid, primary_group_rid;
    uint32_t user_flags;
    uint32_t user_account_control; /* ACB_* bits */
    const char *domain_sid;        /* "S-1-5-21-a-b-c", never NULL on success */
    kd_pac_group *groups;          /* GroupIds, relative to domain_sid */
    int n_groups;
    const char **extra_sids; /* ExtraSids as "S-1-..." strings */
    uint32_t *extra_sid_attributes; /* their SE_GROUP_* bits, same order */
    int n_extra_sids;
    const char *resource_domain_sid; /* may be NULL (then no resource groups) */
    kd_pac_group *resource_groups;   /* relative to resource_domain_sid */
    int n_resource_groups;
} kd_logon_info;

/* Find the one buffer of the given type in a PACTYPE blob (MS-PAC 2.3).
 * 0 and the buffer (pointing into pac), KD_PAC_ABSENT when the PAC is
 * well formed but has no such buffer, KD_PAC_MALFORMED when any entry lies
 * outside the blob or the type appears twice. */
int kd_pac_buffer(const unsigned char *pac, size_t len, uint32_t type,
                  const unsigned char **buf, size_t *buf_len);

/* Decode a logon-info buffer as it sits in the PAC: type serialization
 * version 1 headers, then the NDR-encoded KERB_VALIDATION_INFO. 0 on
 * success, everything allocated from p. Otherwise -1, *out zeroed and
 * *why (a static string, when why is not NULL) says what was wrong. */
int kd_pac_logon_info(apr_pool_t *p, const unsigned char *ndr, size_t len, kd_logon_info *out,
                      const char **why);

/* Does the user hold this SID ("S-1-5-21-...-1104"; letter case and
 * leading zeros do not matter): as the user, the primary group, a group,
 * an extra SID or a resource group? 0 also when sid is not a SID. */
int kd_logon_info_has_sid(apr_pool_t *p, const kd_logon_info *li, const char *sid);

/* Will AD refuse to delegate this user? Yes when the account is marked
 * sensitive (KD_ACB_NOT_DELEGATED) or is in Protected Users
 * (KD_RID_PROTECTED_USERS of the logon domain). */
int kd_logon_info_not_delegable(const kd_logon_info *li);

/* A binary SID (MS-DTYP 2.4.2.2: revision 1, count, 6-byte big-endian
 * authority, count little-endian sub-authorities, exactly len bytes) as
 * "S-1-5-21-...". NULL when it is not one. */
const char *kd_sid_string(apr_pool_t *p, const unsigned char *sid, size_t len);

/* A SID as text ("S-1-5-21-...-1104": 'S' or 's', a decimal authority or
 * "0x" and hex, at most 15 decimal sub-authorities each below 2^32,
 * nothing else, not even spaces; leading zeros are allowed and mean
 * nothing) into its binary form. Its length (8 + 4 * sub-authorities), or
 * 0 when text is not a SID. Allocates nothing. */
size_t kd_sid_binary(const char *text, unsigned char out[KD_SID_MAX_BYTES]);

/* The one spelling of a SID, as kd_sid_string writes it, so that equal
 * SIDs compare equal as strings: for configuration (KdelegGroupMap,
 * Require kdeleg-group). NULL when text is not a SID (kd_sid_binary). */
const char *kd_sid_parse(apr_pool_t *p, const char *text);

#endif
