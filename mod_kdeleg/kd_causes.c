#include "kd_causes.h"

#include <errno.h>
#include <string.h>

/* Indexed by kd_cause; kd_causes_selfcheck() in the unit tests proves that
 * row i describes cause i. */
static const kd_cause_info catalogue[KD_CAUSE__COUNT] = {
    {KD_CAUSE_NONE, "none", 200, 0, "no failure", "", ""},
    {KD_CAUSE_NO_TOKEN, "no-token", 401, 0,
     "the client sent no Negotiate token (normal first leg of SPNEGO)",
     "nothing to fix; if the browser never answers, add the site to the Local intranet zone",
     "nothing to fix; clients need a TGT (kinit) and must allow Negotiate for this host"},
    {KD_CAUSE_MALFORMED_TOKEN, "malformed-token", 401, 0,
     "the Authorization header, its base64 or the token's DER structure is unusable",
     "a client bug or tampering; capture the request and check the client",
     "a client bug or tampering; capture the request and check the client"},
    {KD_CAUSE_NTLM_OFFERED, "ntlm-offered", 401, 0,
     "the client offered NTLM instead of Kerberos",
     "register the SPN for the exact host name the client used (setspn -S HTTP/name account), "
     "use an A record not a CNAME, put the site in the Local intranet zone; on a load-balanced "
     "name every node needs the shared account's key (KdelegFQDNRedirect otherwise)",
     "create HTTP/<host name the client used> (kadmin addprinc -randkey), give the client a TGT, "
     "allow Negotiate for the host in the browser (auth-server-allowlist)"},
    {KD_CAUSE_WRONG_SPN, "wrong-spn", 401, 0,
     "the ticket is for a service principal this virtual host is not configured to answer for",
     "check the host name the client used and the SPNs on the account (setspn -L account); "
     "list the name in KdelegServiceNames",
     "add the principal to KdelegServiceNames or make the client use a configured host name"},
    {KD_CAUSE_KEY_VERSION_MISMATCH, "key-version-mismatch", 401, 1,
     "KRB_AP_ERR_BADKEYVER: the ticket's key version (kvno) is not in the keytab",
     "the account's password changed after the keytab was made: re-export it with ktpass "
     "(or adcli/msktutil) and install it on every node",
     "re-extract the key (kadmin ktadd, or ktadd -norandkey to keep the kvno) and compare "
     "kvno HTTP/host with klist -k -t"},
    {KD_CAUSE_DECRYPT_FAILED, "decrypt-failed", 401, 1,
     "KRB_AP_ERR_MODIFIED / BAD_INTEGRITY: the ticket is encrypted with a key this host lacks",
     "duplicate SPN (setspn -X; the SPN must be on exactly one account) or a stale keytab "
     "(re-export with ktpass)",
     "stale keytab: re-extract the key (kadmin ktadd) and check klist -k -t -e against kvno"},
    {KD_CAUSE_CLOCK_SKEW, "clock-skew", 401, 1,
     "KRB_AP_ERR_SKEW / TKT_NYV: client and server clocks differ by more than the allowed skew",
     "synchronise time with the domain hierarchy (w32tm /resync); 5 minutes is the default",
     "run NTP (chrony/ntpd) on clients, servers and KDCs; clockskew in krb5.conf is 300 s"},
    {KD_CAUSE_REPLAY, "replay", 401, 0,
     "KRB_AP_ERR_REPEAT: this authenticator was seen before",
     "the client resent a token; if every request fails, check that the replay cache is "
     "writable and clocks are synchronised",
     "the client resent a token; check the replay cache directory (KRB5RCACHEDIR) is writable"},
    {KD_CAUSE_TICKET_EXPIRED, "ticket-expired", 401, 0,
     "KRB_AP_ERR_TKT_EXPIRED: the client's service ticket expired",
     "the client must renew (klist purge, lock/unlock the session)",
     "the client must renew (kinit -R or kinit)"},
    {KD_CAUSE_KEYTAB_UNUSABLE, "keytab-unusable", 500, 1,
     "the keytab is missing, unreadable by the httpd user, or holds no key for the SPN",
     "check KdelegKeytab path and permissions; the keytab must hold the SPN "
     "(ktpass -princ HTTP/name@REALM ... ; setspn -L account)",
     "check KdelegKeytab path and permissions (readable by the httpd user); "
     "klist -k -t -e FILE must list the SPN (kadmin ktadd -k FILE HTTP/name)"},
    {KD_CAUSE_KDC_UNREACHABLE, "kdc-unreachable", 503, 1,
     "no KDC answered",
     "check DNS SRV records for the domain controllers and the firewall (TCP/UDP 88)",
     "check [realms] kdc = in krb5.conf and the firewall (TCP/UDP 88)"},
    {KD_CAUSE_KDC_ERROR, "kdc-error", 503, 1,
     "the KDC answered but could not serve the request (KRB_ERR_GENERIC, "
     "KDC_ERR_SVC_UNAVAILABLE or an unusable reply): its database or its own configuration",
     "check the domain controller: Directory Service and System event logs, dcdiag /test:services, "
     "replication (repadmin /replsummary)",
     "read krb5kdc's log for the request (e.g. 'LDAP handle unavailable': is the LDAP server "
     "up and reachable with ldap_service_password_file?); kdb5_util or kadmin.local must work"},
    {KD_CAUSE_SPN_UNKNOWN, "spn-unknown", 502, 1,
     "KDC_ERR_S_PRINCIPAL_UNKNOWN: the back-end service principal is not registered",
     "register the back-end SPN on its service account (setspn -S service/host account)",
     "create the back-end principal (kadmin addprinc -randkey service/host)"},
    {KD_CAUSE_USER_UNKNOWN, "user-unknown", 500, 1,
     "KDC_ERR_C_PRINCIPAL_UNKNOWN in S4U2Self: the user is not known to the KDC",
     "check the user name format and realm mapping (KdelegUserRealm, UPN suffix)",
     "check the user name and KdelegUserRealm; the principal must exist (kadmin getprinc)"},
    {KD_CAUSE_DELEGATION_NOT_ALLOWED, "delegation-not-allowed", 500, 1,
     "S4U2Proxy refused (KDC_ERR_BADOPTION): the target is not in the front end's allowed list",
     "on the front-end account's Delegation tab choose \"Trust this user for delegation to "
     "specified services only\" and add the back-end SPN (msDS-AllowedToDelegateTo; "
     "Set-ADUser websvc -Add @{'msDS-AllowedToDelegateTo'='HTTP/backend.example.com'})",
     "add the target principal to the front end's krbAllowedToDelegateTo LDAP attribute"},
    {KD_CAUSE_PROTOCOL_TRANSITION_NOT_ALLOWED, "protocol-transition-not-allowed", 500, 1,
     "the S4U2Self ticket is not forwardable: protocol transition is not allowed",
     "on the Delegation tab choose \"Use any authentication protocol\" "
     "(Set-ADAccountControl websvc -TrustedToAuthForDelegation $true)",
     "kadmin modprinc +ok_to_auth_as_delegate on the front-end principal"},
    {KD_CAUSE_USER_NOT_DELEGABLE, "user-not-delegable", 500, 0,
     "the user's tickets may not be delegated (sensitive account / Protected Users)",
     "by design: \"Account is sensitive and cannot be delegated\" (Set-ADAccountControl "
     "-AccountNotDelegated) or Protected Users; exclude the user from delegated pages",
     "by design: the user has -allow_forwardable; exclude the user"},
    {KD_CAUSE_SERVICE_TGT_NOT_FORWARDABLE, "service-tgt-not-forwardable", 500, 1,
     "the front end's own TGT is not forwardable, so the KDC refuses every S4U request "
     "that needs it (KDC_ERR_BADOPTION, \"Missing forwardable flag\")",
     "the service account must not be \"sensitive and cannot be delegated\" nor in "
     "Protected Users (Set-ADAccountControl -AccountNotDelegated $false); mod_kdeleg asks "
     "for a forwardable TGT itself",
     "allow forwardable tickets for the front-end principal (kadmin modprinc "
     "+allow_forwardable) and keep forwardable = true in the krb5.conf httpd uses"},
    {KD_CAUSE_USER_DISABLED, "user-disabled", 403, 0,
     "the user's account is disabled, locked out or expired (KDC_ERR_POLICY from AD, "
     "KDC_ERR_CLIENT_REVOKED from MIT)",
     "enable or unlock the account (Enable-ADAccount, Unlock-ADAccount; Active Directory "
     "Users and Computers, Account tab)",
     "re-enable the principal (kadmin modprinc +allow_tix, or clear its expiry)"},
    {KD_CAUSE_CROSS_REALM_DELEGATION, "cross-realm-delegation", 500, 1,
     "constrained delegation to a back end in another realm "
     "(SEC_E_CROSSREALM_DELEGATION_FAILURE 0x80090357)",
     "use resource-based constrained delegation on the back end "
     "(msDS-AllowedToActOnBehalfOfOtherIdentity) or keep both in one domain",
     "classic constrained delegation is single-realm: move the back end into the front end's realm"},
    {KD_CAUSE_ETYPE_UNSUPPORTED, "etype-unsupported", 500, 1,
     "KDC_ERR_ETYPE_NOSUPP: no common encryption type",
     "enable AES on the account (msDS-SupportedEncryptionTypes = 24: Set-ADUser "
     "-KerberosEncryptionType AES128,AES256) and re-export the keytab; an RC4-only back end "
     "needs the same, or rc4-hmac in permitted_enctypes",
     "add AES keys (kadmin cpw -randkey -e aes256-cts ...) and re-extract the keytab"},
    {KD_CAUSE_SESSION_INVALID, "session-invalid", 401, 0,
     "the session cookie or transfer token is tampered, expired, revoked, spent, for another scope "
     "(scheme, host, port, SPNs, KdelegSessionScope) or sealed with an unknown key",
     "nothing to fix: the user re-authenticates silently",
     "nothing to fix: the user re-authenticates silently"},
    {KD_CAUSE_ANONYMOUS_TICKET, "anonymous-ticket", 403, 0,
     "an anonymous ticket (WELLKNOWN/ANONYMOUS, anonymous PKINIT): it proves no identity",
     "nothing to fix for a user; the client used an anonymous ticket (AD does not issue them)",
     "by design: anonymous clients are refused; KdelegAllowAnonymous On where they are welcome"},
    {KD_CAUSE_REALM_NOT_ALLOWED, "realm-not-allowed", 403, 0,
     "the client's realm is not in KdelegRealms for this location",
     "add the user's domain (its Kerberos realm, upper case) to KdelegRealms, or use an account "
     "of an allowed domain",
     "add the client's realm to KdelegRealms, or use a principal of an allowed realm"},
    {KD_CAUSE_UNTRUSTED_IDENTITY, "untrusted-identity", 403, 1,
     "protocol transition refused: REMOTE_USER was set by a module that checked no credential "
     "mod_kdeleg trusts (only Basic, Form, a verified client certificate or KdelegTrustedAuthTypes)",
     "authenticate users with Basic/Form (AuthBasicProvider) or a client certificate, or name "
     "the module's AuthType in KdelegTrustedAuthTypes if it really checks credentials",
     "the same: KdelegTrustedAuthTypes TYPE only for modules that verify the user"},
    {KD_CAUSE_NO_GROUP_INFO, "no-group-info", 403, 0,
     "Require kdeleg-group: the user's ticket carries no verified PAC logon-info, so its "
     "groups are unknown and the group check denies",
     "the KDC stripped the PAC: clear NO_AUTH_DATA_REQUIRED (userAccountControl 0x2000000) "
     "on the service account, and check that the keytab's key verifies the PAC (kvno, "
     "enctypes); a user of another module (Basic, Form, a certificate) gets groups only "
     "through protocol transition: KdelegProtocolTransition On, and the S4U2Self rights",
     "an MIT KDC issues a minimal PAC without logon-info: group authorization needs Active "
     "Directory (or Samba AD); use Require user or Require valid-user instead"},
    {KD_CAUSE_WRONG_PASSWORD, "wrong-password", 401, 0,
     "AuthBasicProvider/AuthFormProvider kdeleg: the KDC refused the user name or password "
     "(KDC_ERR_PREAUTH_FAILED; unknown users answer the same, the log says which)",
     "nothing to fix on the server; the user retypes the password (NTSTATUS 0xC000006A "
     "STATUS_WRONG_PASSWORD, 0xC0000064 STATUS_NO_SUCH_USER); repeated failures count "
     "towards the lockout threshold",
     "nothing to fix on the server; kadmin getprinc shows the failure count"},
    {KD_CAUSE_ACCOUNT_LOCKED, "account-locked", 401, 0,
     "the account is locked out after too many wrong passwords (NTSTATUS 0xC0000234 "
     "STATUS_ACCOUNT_LOCKED_OUT, KDC_ERR_CLIENT_REVOKED)",
     "unlock it (Unlock-ADAccount; samba-tool user unlock) or wait for the lockout duration of "
     "the domain policy or the user's password settings object",
     "MIT answers a locked principal and a disabled one alike (KDC_ERR_CLIENT_REVOKED: "
     "user-disabled); kadmin modprinc -unlock"},
    {KD_CAUSE_ACCOUNT_EXPIRED, "account-expired", 401, 0,
     "the account has expired (NTSTATUS 0xC0000193 STATUS_ACCOUNT_EXPIRED; MIT "
     "KDC_ERR_NAME_EXP)",
     "extend or clear the account's expiry (Set-ADAccountExpiration; samba-tool user "
     "setexpiry --noexpiry)",
     "kadmin modprinc -expire never"},
    {KD_CAUSE_PASSWORD_EXPIRED, "password-expired", 401, 0,
     "the password has expired (NTSTATUS 0xC0000071 STATUS_PASSWORD_EXPIRED, "
     "KDC_ERR_KEY_EXP); the user must set a new one",
     "the user changes the password (Ctrl-Alt-Del, kpasswd); a service cannot log on with an "
     "expired password",
     "MIT answers an expired password and +needchange alike (KDC_ERR_KEY_EXP): the user runs "
     "kpasswd, or kadmin modprinc -pwexpire never / -needchange"},
    {KD_CAUSE_PASSWORD_MUST_CHANGE, "password-must-change", 401, 0,
     "the user must change the password at next logon (NTSTATUS 0xC0000224 "
     "STATUS_PASSWORD_MUST_CHANGE, KDC_ERR_KEY_EXP)",
     "the user sets a new password (kpasswd, or a Windows logon), or clear \"User must "
     "change password at next logon\" (pwdLastSet)",
     "MIT has no separate answer: see password-expired"},
    {KD_CAUSE_PASSWORD_WITHOUT_TLS, "password-without-tls", 500, 1,
     "a password reached AuthBasicProvider/AuthFormProvider kdeleg over plain HTTP and "
     "KdelegPasswordWithoutTLS is not On: it was not checked",
     "serve the location over https (SSLEngine on), or set KdelegPasswordWithoutTLS On where "
     "TLS ends in front of httpd",
     "the same: https for the location, or KdelegPasswordWithoutTLS On behind a TLS proxy"},
    {KD_CAUSE_NO_INDICATOR, "no-indicator", 403, 0,
     "Require kdeleg-indicator: the user did not log in here with a Kerberos ticket carrying "
     "an authentication indicator (a session cookie, protocol transition and another "
     "module's login carry none), so the indicator check denies",
     "Active Directory issues no authentication indicators: use Require kdeleg-group (for "
     "example a group granted to smart-card logons by Authentication Mechanism Assurance) "
     "instead",
     "make the KDC add the indicator (kdc.conf: encrypted_challenge_indicator with FAST, "
     "spake_preauth_indicator, pkinit_indicator, or the otp/radius indicator) and have the "
     "user kinit that way; a session user needs a fresh Kerberos login (an answer to the "
     "401 challenge, without AuthzSendForbiddenOnFailure On)"},
    {KD_CAUSE_REPLAY_CACHE_UNAVAILABLE, "replay-cache-unavailable", 503, 1,
     "the node's replay cache could not be used (it is full, or its lock failed): the token "
     "was refused rather than accepted unchecked",
     "full: raise KdelegReplayCache; a lock failure: check the Mutex mechanism for "
     "kdeleg-replay (its directory must stay writable, semaphores must not be removed) "
     "and the error log around the failure",
     "the same: raise KdelegReplayCache, or fix the kdeleg-replay mutex (Mutex directive)"},
    {KD_CAUSE_SHARED_STORE_DOWN, "shared-store-down", 503, 1,
     "the store the farm shares (KdelegReplayCache memcache:/redis:) did not answer, or "
     "refused the claim: the token was refused rather than accepted with no farm-wide "
     "replay check (the detail names the store)",
     "start the store or open the path to it (memcached/redis on the named host and port); "
     "if it answers with an out-of-memory error it is full: give it more memory (it must "
     "never evict: memcached -M, redis maxmemory-policy noeviction)",
     "the same: the shared store is independent of the KDC"},
    {KD_CAUSE_FARM_KEY_MISMATCH, "farm-key-mismatch", 503, 1,
     "this node shares no key of KdelegCacheKeyFile with the node that wrote the farm's key "
     "fingerprints to the shared store first: their claims would never meet, so a token "
     "used on one node could be replayed on the other; this node refuses logins (and fails "
     "its health check) until they share one (the detail gives both sets of fingerprints, "
     "which reveal nothing of the keys)",
     "copy the same KdelegCacheKeyFile to every node (to rotate, add the new key first on "
     "every node, then drop the old one) and restart httpd gracefully",
     "the same: the key file is the module's, not the KDC's"},
    {KD_CAUSE_CHANNEL_BINDING_MISSING, "channel-binding-missing", 401, 0,
     "KdelegChannelBinding require: the client's token is not bound to this TLS channel "
     "(it sent no channel bindings, or the request came over plain http where there is no "
     "TLS certificate to bind to)",
     "the client must send channel bindings (Extended Protection for Authentication, which "
     "Windows clients send through SSPI when the application asks for it); a client that "
     "cannot, or one where the Lsa registry value SuppressExtendedProtection stops it, needs "
     "KdelegChannelBinding allow here (what IIS calls tokenChecking=\"Allow\"); behind a "
     "balancer that terminates TLS set KdelegChannelBindingCert",
     "MIT clients bind only when the application passes bindings (curl and browsers on "
     "Linux do not): use KdelegChannelBinding allow for them; behind a balancer that "
     "terminates TLS set KdelegChannelBindingCert"},
    {KD_CAUSE_CHANNEL_BINDING_MISMATCH, "channel-binding-mismatch", 401, 0,
     "the client's channel bindings are for another TLS certificate than the one this server "
     "binds to (GSS_S_BAD_BINDINGS): a TLS-terminating man-in-the-middle, or a balancer "
     "whose certificate is not KdelegChannelBindingCert",
     "if a balancer or TLS inspection proxy terminates TLS, set KdelegChannelBindingCert to "
     "the certificate clients see (and renew it there and here together); otherwise treat "
     "it as an attack: the token was made for another server's certificate",
     "the same: KdelegChannelBindingCert must be the certificate the client saw; a "
     "mismatch without a balancer means the token was relayed"},
    {KD_CAUSE_NEGOTIATE_FAILED, "negotiate-failed", 401, 0,
     "the Kerberos exchange failed for a reason not listed above (see the detail)",
     "read the detail; enable Kerberos event logging on the client",
     "read the detail; KRB5_TRACE on the client shows the exchange"},
    {KD_CAUSE_INTERNAL_ERROR, "internal-error", 500, 1,
     "an unexpected error inside mod_kdeleg or a library (see the detail)",
     "read the detail in the error log",
     "read the detail in the error log"},
};

const kd_cause_info *kd_cause_get(kd_cause cause)
{
    if ((int)cause < 0 || cause >= KD_CAUSE__COUNT)
        cause = KD_CAUSE_INTERNAL_ERROR;
    return &catalogue[cause];
}

const char *kd_cause_name(kd_cause cause)
{
    return kd_cause_get(cause)->name;
}

kd_cause kd_cause_by_name(const char *name)
{
    int i;

    for (i = 0; name != NULL && i < KD_CAUSE__COUNT; i++) {
        if (strcmp(catalogue[i].name, name) == 0)
            return (kd_cause)i;
    }
    return KD_CAUSE__COUNT;
}

kd_cause kd_cause_from_accept_error(OM_uint32 major, krb5_error_code minor)
{
    /* Whatever minor code comes with it: the token decrypted, and only the
     * bindings differ. */
    if (GSS_ROUTINE_ERROR(major) == GSS_S_BAD_BINDINGS)
        return KD_CAUSE_CHANNEL_BINDING_MISMATCH;
    switch (minor) {
    case KRB5KRB_AP_ERR_BADKEYVER:
    case KRB5_KT_KVNONOTFOUND:
        return KD_CAUSE_KEY_VERSION_MISMATCH;
    case KRB5KRB_AP_ERR_MODIFIED:
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
        return KD_CAUSE_DECRYPT_FAILED;
    case KRB5KRB_AP_ERR_SKEW:
    case KRB5KRB_AP_ERR_TKT_NYV:
        return KD_CAUSE_CLOCK_SKEW;
    case KRB5KRB_AP_ERR_REPEAT:
        return KD_CAUSE_REPLAY;
    case KRB5KRB_AP_ERR_TKT_EXPIRED:
        return KD_CAUSE_TICKET_EXPIRED;
    case KRB5KRB_AP_ERR_NOT_US:
    case KRB5KRB_AP_ERR_NOKEY: /* refined to etype-unsupported when only the enctype is missing */
    case KRB5_KT_NOTFOUND:
    case KRB5_KT_END:
    case KRB5_KT_BADNAME:
    case KRB5_KT_UNKNOWN_TYPE:
    case KRB5_KT_FORMAT:
        return KD_CAUSE_KEYTAB_UNUSABLE;
    case KRB5_BAD_ENCTYPE:
    case KRB5_PROG_ETYPE_NOSUPP:
    case KRB5KDC_ERR_ETYPE_NOSUPP:
        return KD_CAUSE_ETYPE_UNSUPPORTED;
    case KRB5_KDC_UNREACH:
        return KD_CAUSE_KDC_UNREACHABLE;
    case KRB5KRB_AP_ERR_MSG_TYPE:
    case KRB5KRB_AP_ERR_BADVERSION:
    case KRB5KRB_AP_ERR_INAPP_CKSUM:
    case KRB5KRB_AP_ERR_BADMATCH:
    case KRB5KRB_AP_ERR_MUT_FAIL:
    case KRB5KRB_AP_ERR_BADDIRECTION:
    case KRB5KRB_AP_ERR_BADORDER:
    case ASN1_BAD_ID:
    case ASN1_BAD_LENGTH:
    case ASN1_OVERRUN:
    case ASN1_BAD_FORMAT:
    case ASN1_PARSE_ERROR:
    case ASN1_MISSING_FIELD:
        return KD_CAUSE_MALFORMED_TOKEN;
    case ENOENT:
    case EACCES:
    case EPERM:
        return KD_CAUSE_KEYTAB_UNUSABLE;
    default:
        break;
    }
    switch (GSS_ROUTINE_ERROR(major)) {
    case GSS_S_DEFECTIVE_TOKEN:
    case GSS_S_BAD_MECH:
    case GSS_S_BAD_SIG:
        return KD_CAUSE_MALFORMED_TOKEN;
    case GSS_S_CREDENTIALS_EXPIRED:
        return KD_CAUSE_TICKET_EXPIRED;
    case GSS_S_NO_CRED:
        return KD_CAUSE_KEYTAB_UNUSABLE;
    default:
        break;
    }
    if (major & GSS_S_DUPLICATE_TOKEN)
        return KD_CAUSE_REPLAY;
    return KD_CAUSE_NEGOTIATE_FAILED;
}

kd_cause kd_cause_from_kdc_error(krb5_error_code code)
{
    switch (code) {
    case KRB5KDC_ERR_BADOPTION:
    case KRB5KDC_ERR_POLICY:
        return KD_CAUSE_DELEGATION_NOT_ALLOWED;
    case KRB5KDC_ERR_CLIENT_REVOKED:
        return KD_CAUSE_USER_DISABLED;
    case KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN:
        return KD_CAUSE_SPN_UNKNOWN;
    case KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN:
        return KD_CAUSE_USER_UNKNOWN;
    case KRB5_KDC_UNREACH:
    case KRB5_REALM_CANT_RESOLVE:
    case KRB5_REALM_UNKNOWN:
        return KD_CAUSE_KDC_UNREACHABLE;
    /* An answer, but not a ticket or a specific error: MIT says
     * KRB_ERR_GENERIC when its database back end is gone, AD
     * SVC_UNAVAILABLE when a DC is not ready; a reply of the wrong type
     * comes from a KDC caught starting or stopping. */
    case KRB5KRB_ERR_GENERIC:
    case KRB5KDC_ERR_SVC_UNAVAILABLE:
    case KRB5KRB_AP_ERR_MSG_TYPE:
        return KD_CAUSE_KDC_ERROR;
    case KRB5KDC_ERR_ETYPE_NOSUPP:
    case KRB5_PROG_ETYPE_NOSUPP:
        return KD_CAUSE_ETYPE_UNSUPPORTED;
    case KRB5KRB_AP_ERR_SKEW:
        return KD_CAUSE_CLOCK_SKEW;
    case KRB5_KT_NOTFOUND:
    case KRB5_KT_END:
    case KRB5_KT_KVNONOTFOUND:
    case KRB5KRB_AP_ERR_BADKEYVER:
    case KRB5KDC_ERR_PREAUTH_FAILED:
    case KRB5KRB_AP_ERR_BAD_INTEGRITY:
    case ENOENT:
    case EACCES:
        return KD_CAUSE_KEYTAB_UNUSABLE;
    default:
        return KD_CAUSE_INTERNAL_ERROR;
    }
}

kd_cause kd_cause_from_s4u2self_error(krb5_error_code code)
{
    if (code == KRB5KDC_ERR_POLICY || code == KRB5KDC_ERR_CLIENT_REVOKED)
        return KD_CAUSE_USER_DISABLED;
    return kd_cause_from_kdc_error(code);
}
