#include "kd_unit.h"

#include <string.h>
#include "kd_causes.h"
#include "kd_password.h"
#include "kd_result.h"
#include "kd_token.h"

/* The contract's stable names, in CONTRACT.md order. */
static const char *const contract_names[] = {
    "no-token", "malformed-token", "ntlm-offered", "wrong-spn", "key-version-mismatch",
    "decrypt-failed", "clock-skew", "replay", "ticket-expired", "keytab-unusable",
    "kdc-unreachable", "spn-unknown", "user-unknown", "delegation-not-allowed",
    "protocol-transition-not-allowed", "user-not-delegable", "cross-realm-delegation",
    "etype-unsupported", "session-invalid", "service-tgt-not-forwardable", "user-disabled",
};

START_TEST(rows_are_indexed_by_cause)
{
    int i;

    for (i = 0; i < KD_CAUSE__COUNT; i++) {
        const kd_cause_info *info = kd_cause_get((kd_cause)i);
        ck_assert_int_eq(info->cause, i);
        ck_assert_ptr_nonnull(info->name);
        ck_assert_ptr_nonnull(info->summary);
        ck_assert_int_eq(kd_cause_by_name(info->name), i);
        if (i != KD_CAUSE_NONE) {
            ck_assert_msg(strlen(info->ad_fix) > 10, "%s: AD remedy missing", info->name);
            ck_assert_msg(strlen(info->mit_fix) > 10, "%s: MIT remedy missing", info->name);
            ck_assert_msg(info->http_status >= 400 && info->http_status < 600, "%s", info->name);
        }
    }
}
END_TEST

START_TEST(every_contract_name_exists)
{
    size_t i;

    for (i = 0; i < sizeof(contract_names) / sizeof(contract_names[0]); i++)
        ck_assert_msg(kd_cause_by_name(contract_names[i]) != KD_CAUSE__COUNT,
                      "contract cause %s missing", contract_names[i]);
    ck_assert_int_eq(kd_cause_by_name("no-such-cause"), KD_CAUSE__COUNT);
    ck_assert_int_eq(kd_cause_by_name(NULL), KD_CAUSE__COUNT);
    ck_assert_str_eq(kd_cause_name((kd_cause)9999), "internal-error");
}
END_TEST

START_TEST(accept_errors_map_to_causes)
{
    const OM_uint32 fail = GSS_S_FAILURE;

    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5KRB_AP_ERR_BADKEYVER),
                     KD_CAUSE_KEY_VERSION_MISMATCH);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5_KT_KVNONOTFOUND),
                     KD_CAUSE_KEY_VERSION_MISMATCH);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5KRB_AP_ERR_NOKEY),
                     KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5KRB_AP_ERR_MODIFIED),
                     KD_CAUSE_DECRYPT_FAILED);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5KRB_AP_ERR_BAD_INTEGRITY),
                     KD_CAUSE_DECRYPT_FAILED);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5KRB_AP_ERR_SKEW), KD_CAUSE_CLOCK_SKEW);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5KRB_AP_ERR_TKT_NYV),
                     KD_CAUSE_CLOCK_SKEW);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5KRB_AP_ERR_REPEAT), KD_CAUSE_REPLAY);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5KRB_AP_ERR_TKT_EXPIRED),
                     KD_CAUSE_TICKET_EXPIRED);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5KRB_AP_ERR_NOT_US),
                     KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5_KT_NOTFOUND),
                     KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, ENOENT), KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, KRB5KDC_ERR_ETYPE_NOSUPP),
                     KD_CAUSE_ETYPE_UNSUPPORTED);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, ASN1_BAD_ID), KD_CAUSE_MALFORMED_TOKEN);
    ck_assert_int_eq(kd_cause_from_accept_error(GSS_S_DEFECTIVE_TOKEN, 0),
                     KD_CAUSE_MALFORMED_TOKEN);
    ck_assert_int_eq(kd_cause_from_accept_error(GSS_S_NO_CRED, 0), KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_int_eq(kd_cause_from_accept_error(GSS_S_DUPLICATE_TOKEN, 0), KD_CAUSE_REPLAY);
    ck_assert_int_eq(kd_cause_from_accept_error(fail, 12345), KD_CAUSE_NEGOTIATE_FAILED);
}
END_TEST

START_TEST(kdc_errors_map_to_causes)
{
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5KDC_ERR_BADOPTION),
                     KD_CAUSE_DELEGATION_NOT_ALLOWED);
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN),
                     KD_CAUSE_SPN_UNKNOWN);
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN),
                     KD_CAUSE_USER_UNKNOWN);
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5_KDC_UNREACH), KD_CAUSE_KDC_UNREACHABLE);
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5KRB_ERR_GENERIC), KD_CAUSE_KDC_ERROR);
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5KDC_ERR_SVC_UNAVAILABLE), KD_CAUSE_KDC_ERROR);
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5KRB_AP_ERR_MSG_TYPE), KD_CAUSE_KDC_ERROR);
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5KDC_ERR_ETYPE_NOSUPP),
                     KD_CAUSE_ETYPE_UNSUPPORTED);
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5KRB_AP_ERR_SKEW), KD_CAUSE_CLOCK_SKEW);
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5_KT_NOTFOUND), KD_CAUSE_KEYTAB_UNUSABLE);
    ck_assert_int_eq(kd_cause_from_kdc_error(12345), KD_CAUSE_INTERNAL_ERROR);
    ck_assert_int_eq(kd_cause_from_kdc_error(KRB5KDC_ERR_CLIENT_REVOKED), KD_CAUSE_USER_DISABLED);
}
END_TEST

/* S4U2Self refusals are about the user: AD's KDC_ERR_POLICY and MIT's
 * CLIENT_REVOKED both mean a disabled account there. */
START_TEST(s4u2self_errors_name_the_user)
{
    ck_assert_int_eq(kd_cause_from_s4u2self_error(KRB5KDC_ERR_POLICY), KD_CAUSE_USER_DISABLED);
    ck_assert_int_eq(kd_cause_from_s4u2self_error(KRB5KDC_ERR_CLIENT_REVOKED),
                     KD_CAUSE_USER_DISABLED);
    ck_assert_int_eq(kd_cause_from_s4u2self_error(KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN),
                     KD_CAUSE_USER_UNKNOWN);
    ck_assert_int_eq(kd_cause_from_s4u2self_error(KRB5_KDC_UNREACH), KD_CAUSE_KDC_UNREACHABLE);
}
END_TEST

/* Every row of the catalogue is produced by something: the two mapping
 * functions (the reverse direction of the tests above), the header
 * parser, or one of the core paths named below, each proven for real by
 * the integration test in the comment. */
START_TEST(every_row_is_reachable)
{
    static const krb5_error_code accept_codes[] = {
        KRB5KRB_AP_ERR_BADKEYVER, KRB5KRB_AP_ERR_MODIFIED, KRB5KRB_AP_ERR_SKEW,
        KRB5KRB_AP_ERR_REPEAT, KRB5KRB_AP_ERR_TKT_EXPIRED, KRB5_KT_NOTFOUND,
        KRB5KDC_ERR_ETYPE_NOSUPP, ASN1_BAD_ID, 12345};
    /* GSS_S_BAD_BINDINGS: channel-binding-mismatch (test_820) */
    static const krb5_error_code kdc_codes[] = {
        KRB5KDC_ERR_BADOPTION, KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN, KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN,
        KRB5_KDC_UNREACH, KRB5KRB_ERR_GENERIC, KRB5KDC_ERR_CLIENT_REVOKED, 12345};
    static const char *const headers[] = {NULL, "NTLM TlRMTVNTUAABAAAA", "Negotiate !!!!"};
    static const kd_cause elsewhere[] = {
        KD_CAUSE_NONE,                            /* success */
        KD_CAUSE_WRONG_SPN,                       /* kd_accept: test_110 test_wrong_spn */
        KD_CAUSE_USER_NOT_DELEGABLE,              /* kd_s4u flags: test_300 carol */
        KD_CAUSE_PROTOCOL_TRANSITION_NOT_ALLOWED, /* kd_s4u: test_310, test_500 self-test */
        KD_CAUSE_CROSS_REALM_DELEGATION,          /* kd_s4u: test_510 */
        KD_CAUSE_SERVICE_TGT_NOT_FORWARDABLE,     /* kd_s4u TGT flags: test_330 */
        KD_CAUSE_SESSION_INVALID,                 /* sessions: test_400 bad cookies */
        KD_CAUSE_ANONYMOUS_TICKET,                /* identity policy: test_760 */
        KD_CAUSE_REALM_NOT_ALLOWED,               /* identity policy: test_760 */
        KD_CAUSE_UNTRUSTED_IDENTITY,              /* protocol transition: test_760 */
        KD_CAUSE_NO_GROUP_INFO,                   /* Require kdeleg-group: test_795 */
        KD_CAUSE_NO_INDICATOR,                    /* Require kdeleg-indicator: test_796 */
        KD_CAUSE_REPLAY_CACHE_UNAVAILABLE,        /* replay glue: test_100 full, test_780 lock */
        KD_CAUSE_PASSWORD_WITHOUT_TLS,            /* password glue: test_791 plain http */
        KD_CAUSE_SHARED_STORE_DOWN,               /* shared replay store: test_800 */
        KD_CAUSE_FARM_KEY_MISMATCH,               /* nodes with other key files: test_850 */
        KD_CAUSE_CHANNEL_BINDING_MISSING,         /* kd_accept require: test_820 */
    };
    /* AS exchanges with a password: AD's NTSTATUS first (test_791 on AD) */
    static const uint32_t nt_codes[] = {
        KD_NT_WRONG_PASSWORD, KD_NT_ACCOUNT_LOCKED_OUT, KD_NT_ACCOUNT_EXPIRED,
        KD_NT_PASSWORD_EXPIRED, KD_NT_PASSWORD_MUST_CHANGE};
    int seen[KD_CAUSE__COUNT] = {0};
    size_t i;

    for (i = 0; i < sizeof(accept_codes) / sizeof(accept_codes[0]); i++)
        seen[kd_cause_from_accept_error(GSS_S_FAILURE, accept_codes[i])] = 1;
    seen[kd_cause_from_accept_error(GSS_S_BAD_BINDINGS, 0)] = 1;
    for (i = 0; i < sizeof(kdc_codes) / sizeof(kdc_codes[0]); i++)
        seen[kd_cause_from_kdc_error(kdc_codes[i])] = 1;
    for (i = 0; i < sizeof(nt_codes) / sizeof(nt_codes[0]); i++)
        seen[kd_cause_from_password_error(KRB5KDC_ERR_CLIENT_REVOKED, nt_codes[i])] = 1;
    for (i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        unsigned char *tok;
        size_t len;
        kd_result res;
        kd_result_init(&res);
        seen[kd_token_from_header(kd_test_pool, headers[i], &tok, &len, &res)] = 1;
    }
    for (i = 0; i < sizeof(elsewhere) / sizeof(elsewhere[0]); i++)
        seen[elsewhere[i]] = 1;
    for (i = 0; i < KD_CAUSE__COUNT; i++)
        ck_assert_msg(seen[i], "nothing produces cause %s", kd_cause_name((kd_cause)i));
}
END_TEST

START_TEST(statuses_follow_who_must_act)
{
    ck_assert_int_eq(kd_cause_get(KD_CAUSE_NO_TOKEN)->http_status, 401);
    ck_assert_int_eq(kd_cause_get(KD_CAUSE_MALFORMED_TOKEN)->http_status, 401);
    ck_assert_int_eq(kd_cause_get(KD_CAUSE_NTLM_OFFERED)->http_status, 401);
    ck_assert_int_eq(kd_cause_get(KD_CAUSE_REPLAY)->http_status, 401);
    ck_assert_int_eq(kd_cause_get(KD_CAUSE_KEYTAB_UNUSABLE)->http_status, 500);
    ck_assert_int_eq(kd_cause_get(KD_CAUSE_KEYTAB_UNUSABLE)->server_fault, 1);
    ck_assert_int_eq(kd_cause_get(KD_CAUSE_REPLAY)->server_fault, 0);
    ck_assert_ptr_nonnull(strstr(kd_cause_get(KD_CAUSE_DECRYPT_FAILED)->ad_fix, "setspn -X"));
    ck_assert_ptr_nonnull(strstr(kd_cause_get(KD_CAUSE_CLOCK_SKEW)->ad_fix, "w32tm"));
}
END_TEST

Suite *kd_causes_suite(void)
{
    Suite *s = suite_create("kd_causes");
    TCase *tc = tcase_create("catalogue");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, rows_are_indexed_by_cause);
    tcase_add_test(tc, every_contract_name_exists);
    tcase_add_test(tc, accept_errors_map_to_causes);
    tcase_add_test(tc, s4u2self_errors_name_the_user);
    tcase_add_test(tc, kdc_errors_map_to_causes);
    tcase_add_test(tc, statuses_follow_who_must_act);
    tcase_add_test(tc, every_row_is_reachable);
    suite_add_tcase(s, tc);
    return s;
}
