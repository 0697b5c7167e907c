/* kd_causes: the catalogue of failure causes. Every failure the module can
 * report has one stable name (../shared/CONTRACT.md "Cause names"), used in
 * log lines, KDELEG_ERROR, the status page and metrics labels, and one row
 * here saying what it means, which HTTP status it earns, and how an
 * Active Directory or MIT administrator fixes it. */
#ifndef KD_CAUSES_H
#define KD_CAUSES_H

#include <stdint.h>
#include <krb5.h>
#include <gssapi/gssapi.h>

typedef enum {
    KD_CAUSE_NONE = 0,
    KD_CAUSE_NO_TOKEN,
    KD_CAUSE_MALFORMED_TOKEN,
    KD_CAUSE_NTLM_OFFERED,
    KD_CAUSE_WRONG_SPN,
    KD_CAUSE_KEY_VERSION_MISMATCH,
    KD_CAUSE_DECRYPT_FAILED,
    KD_CAUSE_CLOCK_SKEW,
    KD_CAUSE_REPLAY,
    KD_CAUSE_TICKET_EXPIRED,
    KD_CAUSE_KEYTAB_UNUSABLE,
    KD_CAUSE_KDC_UNREACHABLE,
    KD_CAUSE_KDC_ERROR,
    KD_CAUSE_SPN_UNKNOWN,
    KD_CAUSE_USER_UNKNOWN,
    KD_CAUSE_DELEGATION_NOT_ALLOWED,
    KD_CAUSE_PROTOCOL_TRANSITION_NOT_ALLOWED,
    KD_CAUSE_USER_NOT_DELEGABLE,
    KD_CAUSE_SERVICE_TGT_NOT_FORWARDABLE,
    KD_CAUSE_USER_DISABLED,
    KD_CAUSE_CROSS_REALM_DELEGATION,
    KD_CAUSE_ETYPE_UNSUPPORTED,
    KD_CAUSE_SESSION_INVALID,
    KD_CAUSE_ANONYMOUS_TICKET,
    KD_CAUSE_REALM_NOT_ALLOWED,
    KD_CAUSE_UNTRUSTED_IDENTITY,
    KD_CAUSE_NO_GROUP_INFO,
    KD_CAUSE_WRONG_PASSWORD,
    KD_CAUSE_ACCOUNT_LOCKED,
    KD_CAUSE_ACCOUNT_EXPIRED,
    KD_CAUSE_PASSWORD_EXPIRED,
    KD_CAUSE_PASSWORD_MUST_CHANGE,
    KD_CAUSE_PASSWORD_WITHOUT_TLS,
    KD_CAUSE_NO_INDICATOR,
    KD_CAUSE_REPLAY_CACHE_UNAVAILABLE,
    KD_CAUSE_SHARED_STORE_DOWN,
    KD_CAUSE_FARM_KEY_MISMATCH,
    KD_CAUSE_CHANNEL_BINDING_MISSING,
    KD_CAUSE_CHANNEL_BINDING_MISMATCH,
    KD_CAUSE_NEGOTIATE_FAILED,
    KD_CAUSE_INTERNAL_ERROR,
    KD_CAUSE__COUNT
} kd_cause;

typedef struct {
    kd_cause cause;
    const char *name;       /* stable, from CONTRACT.md */
    int http_status;        /* what the client sees when this ends a request */
    int server_fault;       /* 1: the administrator must act (logged at ERR) */
    const char *summary;    /* one line: what happened */
    const char *ad_fix;     /* remedy in Active Directory terms */
    const char *mit_fix;    /* remedy in MIT Kerberos terms */
} kd_cause_info;

/* The row for a cause; never NULL (out-of-range values give internal-error). */
const kd_cause_info *kd_cause_get(kd_cause cause);
const char *kd_cause_name(kd_cause cause);
/* Reverse lookup by stable name; KD_CAUSE__COUNT when unknown. */
kd_cause kd_cause_by_name(const char *name);

/* Map a krb5 error code (as found in a GSS minor status or a KRB-ERROR)
 * to a cause seen while *accepting* a client's ticket. */
kd_cause kd_cause_from_accept_error(OM_uint32 major, krb5_error_code minor);

/* Map a krb5 error met while obtaining tickets from the KDC (S4U2Proxy,
 * S4U2Self, or the service's own TGT from its keytab) to a cause. */
kd_cause kd_cause_from_kdc_error(krb5_error_code code);

/* The same for S4U2Self, where the KDC's refusal is about the user:
 * KDC_ERR_POLICY (AD) and CLIENT_REVOKED (MIT) mean a disabled account. */
kd_cause kd_cause_from_s4u2self_error(krb5_error_code code);

#endif
