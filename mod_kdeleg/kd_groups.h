/* kd_groups: the group SIDs of a user, as Windows would count them for an
 * access check, taken from the PAC's logon-info (kd_pac), and the answer
 * to "is the user in this group" (Require kdeleg-group).
 *
 * The set holds the logon domain's SID with the RIDs of the primary group
 * and of every group (GroupIds), the resource domain's SID with its RIDs
 * (ResourceGroupIds), and the extra SIDs (other domains' groups, SID
 * history, S-1-18-1 "authentication authority asserted identity", S-1-18-2
 * "service asserted identity" that S4U2Self adds, ...). Not the user's own
 * SID: these are groups. Nested groups are already expanded by the KDC.
 *
 * Attributes: a group counts only when the KDC marked it SE_GROUP_ENABLED
 * and not SE_GROUP_USE_FOR_DENY_ONLY, as in a Windows access check, where
 * a disabled or deny-only group never grants access. AD and Samba mark
 * every group 7 (mandatory, enabled by default, enabled), resource groups
 * 0x20000007. The primary group has no attributes and always counts.
 * The UserFlags bits that announce extra SIDs and resource groups are not
 * required: what the (signed) structure holds is what counts.
 *
 * The set is canonical: RIDs sorted and unique; an extra SID inside the
 * logon or resource domain becomes a RID there; extra SIDs sorted and
 * unique. So one set has one encoding (the session cookie's, below).
 * Immutable once made; safe to share between threads. */
#ifndef KD_GROUPS_H
#define KD_GROUPS_H

#include <stddef.h>
#include <stdint.h>
#include <apr_pools.h>
#include <apr_tables.h>

#include "kd_pac.h"

#define KD_SE_GROUP_ENABLED 0x00000004u
#define KD_SE_GROUP_USE_FOR_DENY_ONLY 0x00000010u

/* What S4U2Self adds to the extra SIDs (MS-PAC 2.2.1.2 / MS-SFU): the
 * identity was asserted by a service, not by the KDC from a password or
 * certificate. */
#define KD_SID_SERVICE_ASSERTED "S-1-18-2"
#define KD_SID_AUTHORITY_ASSERTED "S-1-18-1"

typedef struct kd_groups kd_groups;

/* The set of a decoded logon info, allocated from p (NULL when li is NULL
 * or has no domain SID). */
kd_groups *kd_groups_from_logon_info(apr_pool_t *p, const kd_logon_info *li);

/* How many SIDs the set holds. */
int kd_groups_count(const kd_groups *g);

/* Does the set hold sid (text, as kd_sid_binary reads it: letter case and
 * leading zeros do not matter)? 0 also when sid is not a SID or g is NULL.
 * Allocates nothing: binary searches, for any number of groups. */
int kd_groups_has_sid(const kd_groups *g, const char *sid);

/* Every SID of the set as "S-1-..." strings (const char *), the logon
 * domain's first, then the resource domain's, then the extra SIDs. */
apr_array_header_t *kd_groups_sids(apr_pool_t *p, const kd_groups *g);

/* The same, space-separated (KDELEG_GROUP_SIDS); "" for an empty set. */
const char *kd_groups_sids_string(apr_pool_t *p, const kd_groups *g);

/* ------------------------------------------------------------ wire form
 *
 * For the session cookie: version 1, the logon domain SID (binary), the
 * RID count and the RIDs as LEB128 varints, each after the first as the
 * difference from the one before (sorted: a few bytes for hundreds of
 * groups), a flag and the resource domain (SID, count, RIDs) when there
 * is one, the extra SID count and the SIDs (binary). Decoding accepts
 * exactly what encoding writes (minimal varints, strictly increasing RIDs
 * and SIDs, nothing foldable, nothing after the end). */

/* Exact size of the encoding of g. */
size_t kd_groups_encoded_size(const kd_groups *g);

/* Write the encoding into buf (cap bytes); its length, or 0 when cap is
 * too small. */
size_t kd_groups_encode(const kd_groups *g, unsigned char *buf, size_t cap);

/* A set from its encoding, or NULL when b is not exactly one. */
kd_groups *kd_groups_decode(apr_pool_t *p, const unsigned char *b, size_t len);

/* Same SIDs? (NULL equals NULL only.) */
int kd_groups_equal(const kd_groups *a, const kd_groups *b);

/* ------------------------------------------------------------ aliases
 *
 * KdelegGroupMap ALIAS SID: readable names for group SIDs. An alias is 1 to
 * 64 characters of [A-Za-z0-9_.-] (one word on a Require line), compared
 * ignoring ASCII case, and never starts like a SID ("S-1-"). */

typedef struct kd_group_map kd_group_map;

kd_group_map *kd_group_map_create(apr_pool_t *p);

/* Add alias -> sid: NULL, or why not (for the directive's error). The same
 * alias again with another SID is an error; with the same SID it is not. */
const char *kd_group_map_add(kd_group_map *m, const char *alias, const char *sid);

/* add's aliases over base's (server configuration merge); either may be
 * NULL. */
kd_group_map *kd_group_map_merge(apr_pool_t *p, const kd_group_map *base,
                                 const kd_group_map *add);

/* A word of a Require kdeleg-group line: a SID (returned canonical) or an
 * alias (its SID); NULL when it is neither. m may be NULL. */
const char *kd_group_map_resolve(apr_pool_t *p, const kd_group_map *m, const char *word);

#endif
