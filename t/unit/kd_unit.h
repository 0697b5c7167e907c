/* Shared fixtures for the core unit tests: a fresh APR pool per test. */
#ifndef KD_UNIT_H
#define KD_UNIT_H

#include <check.h>
#include <apr_pools.h>

extern apr_pool_t *kd_test_pool;
void kd_test_setup(void);
void kd_test_teardown(void);

/* Read a test vector (base64 text file under t/unit/vectors) into the pool. */
const char *kd_test_vector(const char *name);

/* Read a binary file of the source tree (e.g. "t/fuzz/seeds/pac/rich.ndr")
 * into the pool, as it is. */
const unsigned char *kd_test_file(const char *path, size_t *len);

Suite *kd_accept_suite(void);
Suite *kd_apreq_suite(void);
Suite *kd_base64_suite(void);
Suite *kd_causes_suite(void);
Suite *kd_chanbind_suite(void);
Suite *kd_der_suite(void);
Suite *kd_groups_suite(void);
Suite *kd_gss_suite(void);
Suite *kd_identity_suite(void);
Suite *kd_log_suite(void);
Suite *kd_pac_suite(void);
Suite *kd_password_suite(void);
Suite *kd_store_suite(void);
Suite *kd_replay_suite(void);
Suite *kd_s4u_suite(void);
Suite *kd_result_suite(void);
Suite *kd_revoke_suite(void);
Suite *kd_credtab_suite(void);
Suite *kd_seal_suite(void);
Suite *kd_spn_suite(void);
Suite *kd_ticket_cache_suite(void);
Suite *kd_token_suite(void);
Suite *kd_session_suite(void);
Suite *kd_url_suite(void);
Suite *kd_stats_suite(void);
Suite *kd_status_suite(void);
Suite *kd_escape_suite(void);
Suite *kd_keytab_suite(void);

#endif
