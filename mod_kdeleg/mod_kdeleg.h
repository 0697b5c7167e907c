/* mod_kdeleg: httpd glue shared by the mod_kdeleg_*.c files. The
 * httpd-independent work lives in kd_*.c; these files only translate
 * between httpd and that core. */
#ifndef MOD_KDELEG_H
#define MOD_KDELEG_H

#include <httpd.h>
#include <http_config.h>
#include <apr_global_mutex.h>
#include <apr_shm.h>
#include <ap_socache.h>
#include <ap_expr.h>

#include "kd_accept.h"
#include "kd_chanbind.h"
#include "kd_groups.h"
#include "kd_replay.h"
#include "kd_store.h"
#include "kd_session.h"
#include "kd_stats.h"
#include "kd_spn.h"
#include "kd_url.h"

/* Our own log numbers: KDLOGNO(00101) -> "KD00101: ". httpd's AH numbers
 * belong to httpd. Ranges: 001xx start-up, 002xx config, 003xx
 * authentication, 004xx delegation, 005xx ticket cache, 006xx replay cache,
 * 007xx sessions and the FQDN fallback, 008xx status page and statistics
 * (0085x the health check). */
#define KDLOGNO(n) "KD" #n ": "

/* A request's log line, with its context first:
 *   KDnnnnn: kdeleg(vhost, client, spn): message
 * logno is KDLOGNO(n), spn the acceptor principal in use or "-", fmt a
 * string literal. A macro, so httpd records the caller's file and line.
 * t/docs/gen reads these calls for docs/log-messages.md. */
#define kdeleg_log_request(r, level, status, logno, spn, fmt, ...)                            \
    ap_log_rerror(APLOG_MARK, (level), (status), (r), logno "kdeleg(%s, %s, %s): " fmt,        \
                  (r)->server->server_hostname, (r)->useragent_ip, (spn), ##__VA_ARGS__)

#define KD_AUTH_TYPE "Negotiate"
#define KD_UNSET (-1)

typedef enum {
    KD_DELEGATION_DENY = 0,    /* a delegation failure fails the request */
    KD_DELEGATION_CONTINUE,    /* the request goes on without credentials */
} kdeleg_delegation_failure;

typedef enum {
    KD_REMOTE_USER_FULL = 0,   /* alice@EXAMPLE.TEST */
    KD_REMOTE_USER_SHORT,      /* alice */
    KD_REMOTE_USER_LOCAL,      /* krb5 auth_to_local */
} kdeleg_remote_user;

/* Configuration in three structs (every field has an "unset" value and is
 * merged on its own, with KD_MERGE in mod_kdeleg_config.c):
 *   kdeleg_mod_conf  one per configuration generation, module-wide;
 *   kdeleg_srv_conf  per server and virtual host (RSRC_CONF-only directives);
 *   kdeleg_dir_conf  per directory, including the server level's defaults.
 * All three are filled while the configuration is read and in post_config,
 * and only read once children serve requests. */

/* Module-wide settings. */
typedef struct {
    const char *default_keytab;    /* krb5's default keytab (KRB5_KTNAME or /etc/krb5.keytab),
                                      looked up in post_config, used when KdelegKeytab is
                                      not set */
    const char *default_ccache_dir; /* per-request credential caches when KdelegCcacheDir
                                       is unset: created in post_config under httpd's
                                       runtime directory, owned by the httpd user, 0700 */
    apr_array_header_t *ccache_dirs; /* every KdelegCcacheDir of this configuration, for
                                        the start-up sweep (const char *) */
    const char *ccache_instance;   /* this instance's mark in its credential cache names:
                                      its ServerRoot and configuration file, so instances
                                      sharing a directory never sweep each other's caches;
                                      set in post_config */
    /* KdelegCache (main server only). */
    int cache_disabled;            /* KdelegCache none */
    const ap_socache_provider_t *cache_provider; /* NULL = unset (shmcb when loaded) */
    const char *cache_provider_name;
    struct kdeleg_store *cache_store; /* KdelegCache memcache:/redis:, our own client */
    int cache_max_lifetime;        /* KdelegCacheMaxLifetime, seconds */
    int cache_max_lifetime_set;
    ap_socache_instance_t *cache_instance; /* made by the provider when the directive is read */
    /* KdelegReplayCache (main server only). */
    int replay_configured;         /* the directive was given */
    apr_size_t replay_bytes;       /* table size; 0 = off (MIT's replay cache) */
    struct kdeleg_store *replay_store; /* memcache:/redis: shared by the farm; NULL = none */
    /* KdelegCacheKeyFile (main server only): the farm's keys, from which
     * the shared stores' keys are derived. */
    const char *cache_key_file;    /* NULL = unset */
    const kd_session_keys *cache_keys;
    long cache_key_uid;            /* owner of cache_key_file, checked in post_config */
    int revocation_interval;       /* KdelegRevocationCheckInterval, seconds */
    int revocation_interval_set;
} kdeleg_mod_conf;

/* Per server and virtual host. */
typedef struct {
    kdeleg_mod_conf *mc;           /* the module-wide settings, shared by every server */
    apr_table_t *netbios_domains;  /* KdelegNetbiosDomain NETBIOS -> REALM; NULL = unset */
    /* Load-balanced names and sessions. */
    apr_array_header_t *virtual_names; /* KdelegVirtualName, lower case; NULL = unset */
    const kd_origin *node_name;    /* KdelegNodeName; NULL = unset */
    int fqdn_redirect;             /* KdelegFQDNRedirect; KD_UNSET = unset */
    int session;                   /* KdelegSession; KD_UNSET = unset */
    const char *session_key_file;  /* KdelegSessionKeyFile; NULL = unset */
    const kd_session_keys *session_keys; /* parsed from session_key_file */
    long session_key_uid;          /* owner of session_key_file, checked in post_config */
    int session_lifetime;          /* KdelegSessionLifetime seconds; KD_UNSET = unset */
    const char *cookie_domain;     /* KdelegCookieDomain; NULL = unset */
    int password_without_tls;      /* KdelegPasswordWithoutTLS; KD_UNSET = unset (Off) */
    int health_interval;           /* KdelegHealthInterval seconds; KD_UNSET = unset (10) */
    const kd_chanbind *chanbind_cert; /* KdelegChannelBindingCert, hashed when read;
                                         NULL = unset (mod_ssl's certificate) */
} kdeleg_srv_conf;

/* Per directory. Directives valid at server level too (RSRC_CONF |
 * ACCESS_CONF) keep their server-level value in the server's default
 * directory config, which every directory config merges. */
typedef struct {
    const char *keytab;            /* KdelegKeytab; NULL = unset */
    apr_array_header_t *spns;      /* KdelegServiceNames (kd_spn); NULL = unset */
    int remote_user;               /* KdelegRemoteUser; KD_UNSET = unset */
    apr_array_header_t *delegate_to; /* KdelegDelegateTo (principal strings, maybe empty
                                        for "none"); NULL = unset */
    const char *ccache_dir;        /* KdelegCcacheDir; NULL = unset */
    const char *proxy_spn;         /* KdelegProxyNegotiate; NULL = unset, "" = off */
    int delegation_failure;        /* KdelegDelegationFailure; KD_UNSET = unset */
    int protocol_transition;       /* KdelegProtocolTransition; KD_UNSET = unset */
    const char *user_realm;        /* KdelegUserRealm; NULL = unset */
    apr_array_header_t *service_accounts; /* KdelegServiceAccount (kd_service_account),
                                             inner scope's first; NULL = unset */
    /* Identity policy. */
    int allow_anonymous;           /* KdelegAllowAnonymous; KD_UNSET = unset (Off) */
    apr_array_header_t *realms;    /* KdelegRealms; NULL = unset (every realm) */
    apr_array_header_t *trusted_auth_types; /* KdelegTrustedAuthTypes; NULL = unset */
    const ap_expr_info_t *user_principal; /* KdelegUserPrincipal; NULL = unset (r->user) */
    /* Sessions. */
    const char *session_scope;     /* KdelegSessionScope; NULL = unset, "" = the default */
    const char *session_logout;    /* KdelegSessionLogout path; NULL = unset, "" = none */
    /* The challenge. */
    int negotiate_once;            /* KdelegNegotiateOnce; KD_UNSET = unset (Off) */
    int auth_optional;             /* KdelegAuthOptional; KD_UNSET = unset (Off) */
    int channel_binding;           /* KdelegChannelBinding (kdeleg_channel_binding);
                                      KD_UNSET = unset (off) */
    /* Diagnostics. */
    int selftest;                  /* KdelegSelfTest; KD_UNSET = unset (Off) */
    const char *selftest_user;     /* KdelegSelfTestUser; NULL = unset */
    /* Group authorization. */
    kd_group_map *group_map;       /* KdelegGroupMap aliases, inner over outer; NULL = none */
    int publish_groups;            /* KdelegPublishGroups; KD_UNSET = unset (Off) */
    /* Passwords (AuthBasicProvider/AuthFormProvider kdeleg). */
    int password_cache;            /* KdelegPasswordCache seconds; KD_UNSET = unset (60) */
    int password_failure_cache;    /* KdelegPasswordFailureCache seconds; KD_UNSET = unset (30) */
} kdeleg_dir_conf;

/* What a successful exchange established; kept on the request so that
 * subrequests and internal redirects reuse it instead of replaying the
 * token (which the replay cache would rightly refuse), and so that
 * mod_proxy's fixups can make a back-end token from the delegation. */
typedef struct {
    const char *user;
    const char *principal;
    const char *spn;
    const char *ticket_sname;
    const char *ticket_realm;
    kd_delegation *delegation;     /* NULL without delegation */
    const char *ccache;            /* "FILE:..." when one was written */
    const char *delegation_error;  /* cause name when delegation failed (continue) */
    const char *method;            /* KDELEG_AUTH_METHOD: kerberos, session, protocol-transition */
    long long expires;             /* GSS_SESSION_EXPIRATION: when the login ends (seconds
                                      since the epoch; the ticket's or the session's end); 0
                                      when unknown */
    /* The user's groups: read once, when first asked (kdeleg_groups_of). */
    kd_accepted_name *accepted;    /* Kerberos: the accepted name (its PAC); else NULL */
    const kd_groups *groups;       /* session: from the cookie; else filled when read */
    int groups_read;               /* groups (NULL: no group information) is final */
    /* Passwords (mod_kdeleg_password.c): authentication ran inside
     * mod_auth_basic/mod_auth_form, so delegation waits for fixups. */
    int delegation_pending;        /* kdeleg_delegate_pending still to run */
    kd_delegation *evidence;       /* the password check's ticket as evidence, or NULL */
    kd_result evidence_failure;    /* why there is none */
} kdeleg_auth_state;

extern module AP_MODULE_DECLARE_DATA kdeleg_module;
extern const command_rec kdeleg_directives[];

void *kdeleg_dir_conf_create(apr_pool_t *p, char *dir);
void *kdeleg_dir_conf_merge(apr_pool_t *p, void *base, void *add);
void *kdeleg_srv_conf_create(apr_pool_t *p, server_rec *s);
void *kdeleg_srv_conf_merge(apr_pool_t *p, void *base, void *add);
const kdeleg_srv_conf *kdeleg_srv_conf_of(const server_rec *s);
/* The server level's directory config: what a server-and-directory
 * directive given at server or virtual host level set for s. */
const kdeleg_dir_conf *kdeleg_server_dir_conf(const server_rec *s);

/* The identity policy for a verified principal (Kerberos or session):
 * KD_CAUSE_NONE, or the cause that refuses it (detail in *why). */
kd_cause kdeleg_identity_refusal(request_rec *r, const kdeleg_dir_conf *conf, const char *principal,
                                 const char **why);
/* Effective values (defaults applied). */
const char *kdeleg_conf_keytab(const kdeleg_dir_conf *conf);
int kdeleg_conf_remote_user(const kdeleg_dir_conf *conf);
const char *kdeleg_conf_ccache_dir(const kdeleg_dir_conf *conf);
const char *kdeleg_conf_proxy_spn(const kdeleg_dir_conf *conf); /* NULL when off */
int kdeleg_conf_delegation_failure(const kdeleg_dir_conf *conf);
int kdeleg_conf_protocol_transition(const kdeleg_dir_conf *conf);
/* Does this scope delegate at all? (no allocation: asked on every request) */
int kdeleg_conf_delegates(const kdeleg_dir_conf *conf);
/* Every principal delegation must reach here: KdelegDelegateTo plus
 * KdelegProxyNegotiate (const char *). */
const apr_array_header_t *kdeleg_conf_delegation_targets(apr_pool_t *p,
                                                         const kdeleg_dir_conf *conf);
/* Configured SPNs, or HTTP/<ServerName> and HTTP/<each ServerAlias>. */
const apr_array_header_t *kdeleg_conf_spns(request_rec *r, const kdeleg_dir_conf *conf);
const apr_array_header_t *kdeleg_conf_server_spns(apr_pool_t *p, server_rec *s,
                                                  const kdeleg_dir_conf *conf);

/* Sessions and the FQDN fallback (mod_kdeleg_session.c); the directives'
 * setters, listed in mod_kdeleg_config.c's command table. */
const char *kdeleg_set_virtual_name(cmd_parms *cmd, void *dconf, const char *arg);
const char *kdeleg_set_node_name(cmd_parms *cmd, void *dconf, const char *arg);
const char *kdeleg_set_fqdn_redirect(cmd_parms *cmd, void *dconf, int on);
const char *kdeleg_set_session(cmd_parms *cmd, void *dconf, int on);
const char *kdeleg_set_session_key_file(cmd_parms *cmd, void *dconf, const char *arg);
const char *kdeleg_set_session_lifetime(cmd_parms *cmd, void *dconf, const char *arg);
const char *kdeleg_set_cookie_domain(cmd_parms *cmd, void *dconf, const char *arg);
const char *kdeleg_set_session_scope(cmd_parms *cmd, void *dconf, const char *arg);
const char *kdeleg_set_session_logout(cmd_parms *cmd, void *dconf, const char *arg);
int kdeleg_session_check_config(apr_pool_t *p, server_rec *s);
/* Takes the session cookie out of every request's headers (kept for us). */
void kdeleg_session_register_hooks(apr_pool_t *p);
/* A valid session cookie: OK (identity set), a status that ends the
 * request, or DECLINED (no usable cookie: authenticate with Kerberos). */
int kdeleg_session_authenticate(request_rec *r, const kdeleg_dir_conf *conf);
/* Only the FQDN fallback's transfer token, if the request carries one:
 * the redirect that issues the session, or DECLINED (none, or refused). */
int kdeleg_session_redeem(request_rec *r, const kdeleg_dir_conf *conf);
/* The client's Negotiate token failed here with cause: its session cookie
 * of this scope serves the request instead when the fallback would handle
 * the cause and the session needs no Kerberos here; else DECLINED. */
int kdeleg_session_instead(request_rec *r, const kdeleg_dir_conf *conf, kd_cause cause,
                           const char *spn);
/* Did the client send one of our session cookies or a transfer token
 * (where sessions are on)? */
int kdeleg_session_offered(request_rec *r);
/* May this 401 carry "WWW-Authenticate: Negotiate" (KdelegAuthOptional,
 * kdeleg-no-negotiate, KdelegNegotiateOnce after a refused token)? */
int kdeleg_may_challenge(request_rec *r, const kdeleg_dir_conf *conf, int token_refused);
/* After Kerberos succeeded: the session cookie, and on the node leg of the
 * fallback the redirect back to the virtual name (a status), else OK. */
int kdeleg_session_after_kerberos(request_rec *r, const kdeleg_dir_conf *conf,
                                  const kdeleg_auth_state *st,
                                  long ticket_seconds_left);
/* A failure on a virtual name this node cannot serve with Kerberos: the
 * redirect to the node name (a status), or DECLINED. */
int kdeleg_fqdn_bounce(request_rec *r, const kdeleg_dir_conf *conf, kd_cause cause);
/* A subrequest or internal redirect: delegation for its own location,
 * from the evidence the request it derives from kept (or the node's
 * cache); OK when the location delegates nothing. */
int kdeleg_delegate_again(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st,
                          kd_delegation *evidence);
/* Session requests that delegate: tickets from the node's cache only;
 * DECLINED on a miss. */
int kdeleg_delegate_cached(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st);
/* Protocol transition before authorization, for Require kdeleg-group:
 * the state with its S4U2Self ticket as evidence (delegation still runs in
 * fixups), or NULL with *why. */
kdeleg_auth_state *kdeleg_transition_early(request_rec *r, const kdeleg_dir_conf *conf,
                                           const char **why);
/* A password user's delegation, in fixups: the evidence its check made. */
int kdeleg_delegate_pending(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st);
/* The principal a user name stands for here (realm, NETBIOS\\user, UPN). */
kd_user_name kdeleg_user_name(request_rec *r, const kdeleg_dir_conf *conf, const char *user,
                              const char *spn);
/* REMOTE_USER for principal under KdelegRemoteUser (local_name: its
 * auth_to_local mapping, or NULL). */
const char *kdeleg_remote_user_of(request_rec *r, const kdeleg_dir_conf *conf, const char *principal,
                               const char *local_name, const char *spn);
/* S4U2Self evidence source for users without a Kerberos ticket here. */
int kdeleg_delegate_transition(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st);
const char *kdeleg_pick_impersonator(request_rec *r, const kdeleg_dir_conf *conf);
/* The KdelegServiceAccount for spn, or NULL (the keytab decides). */
const char *kdeleg_conf_service_account(const kdeleg_dir_conf *conf, const char *spn);

/* Node-wide statistics and the status page (mod_kdeleg_status.c). All
 * counting functions are no-ops until the shared block exists. */
void kdeleg_note(kd_stat which);
void kdeleg_note_failure(request_rec *r, kd_cause cause, const char *spn);
/* A failure line's cause and remedies: name, summary (detail); fixes. */
#define KD_CAUSE_FMT "cause %s: %s (%s); fix (AD): %s; fix (MIT): %s"
/* What failed, for kdeleg_report_failure: authentication (user NULL), or
 * the delegation of user to target (NULL: no one target). */
typedef struct {
    const char *user;              /* delegation: the user's principal; NULL: authentication */
    const char *target;            /* delegation: the back end, or NULL */
    int continuing;                /* delegation: the request goes on without credentials */
} kdeleg_failure;
/* One failure, reported once: the numbered line naming the cause with
 * both remedies (KD00301 for authentication, KD00401 for delegation; never
 * a token), the statistics, and KDELEG_ERROR for the application (not for
 * no-token, the normal first leg). */
void kdeleg_report_failure(request_rec *r, int level, const kd_result *res, const char *spn,
                           const kdeleg_failure *what);
void kdeleg_note_target(const char *target, kd_cause cause);
int kdeleg_status_post_config(apr_pool_t *pconf, server_rec *s);
void kdeleg_status_register_hooks(apr_pool_t *p);

/* The health check, SetHandler kdeleg-health (mod_kdeleg_health.c). */
const char *kdeleg_set_health_interval(cmd_parms *cmd, void *dconf, const char *arg);
void kdeleg_health_child_init(apr_pool_t *pchild);
void kdeleg_health_register_hooks(apr_pool_t *p);

/* Start-up checks (mod_kdeleg_config.c). */
int kdeleg_check_keytabs(apr_pool_t *p, server_rec *s);
int kdeleg_prepare_ccache_dir(apr_pool_t *p, server_rec *s);
/* The tag in this process's credential cache names: instance and PID. */
const char *kdeleg_ccache_tag(apr_pool_t *p);

/* TLS channel binding (mod_kdeleg_chanbind.c). */
typedef enum {
    KD_CHANBIND_OFF = 0,           /* no bindings passed: bound and unbound tokens alike */
    KD_CHANBIND_ALLOW,             /* bindings passed: wrong ones refused, none accepted */
    KD_CHANBIND_REQUIRE,           /* a token must carry the right bindings */
} kdeleg_channel_binding;
const char *kdeleg_set_channel_binding(cmd_parms *cmd, void *dconf, const char *arg);
const char *kdeleg_set_channel_binding_cert(cmd_parms *cmd, void *dconf, const char *arg);
int kdeleg_conf_channel_binding(const kdeleg_dir_conf *conf);
/* Fill params' channel binding fields for r's connection. */
void kdeleg_channel_binding_params(request_rec *r, const kdeleg_dir_conf *conf,
                                   kd_accept_params *params);
/* The per-connection slot the certificate's hash is kept in. */
void kdeleg_chanbind_register_hooks(apr_pool_t *p);
/* After an accepted token: the bound/unbound counters and a debug line. */
void kdeleg_channel_binding_note(request_rec *r, const kdeleg_dir_conf *conf,
                                 const kd_accept_out *out);

/* Authentication (mod_kdeleg_auth.c). */
void kdeleg_auth_register_hooks(apr_pool_t *p);
void kdeleg_auth_child_init(apr_pool_t *pchild);
const kdeleg_auth_state *kdeleg_auth_state_of(request_rec *r);
kd_acceptor *kdeleg_acceptor_for(const kdeleg_dir_conf *conf);
/* krb5.conf's default_realm (NULL without one): the realm of SPNs
 * configured without one. */
const char *kdeleg_default_realm(void);
void kdeleg_set_identity(request_rec *r, const kdeleg_auth_state *st);

/* Where evidence comes from when the node's cache cannot serve every
 * target: asked only then (re-accepting the client's token, or S4U2Self),
 * so a warm cache costs no evidence at all. */
typedef struct {
    kd_delegation *(*get)(request_rec *r, void *baton, kd_result *res);
    void *baton;
} kdeleg_evidence_source;

/* Passwords checked against the KDC (mod_kdeleg_password.c):
 * AuthBasicProvider/AuthFormProvider kdeleg. */
void kdeleg_password_register_hooks(apr_pool_t *p);
void kdeleg_password_child_init(apr_pool_t *pchild);
int kdeleg_password_check_config(apr_pool_t *p, server_rec *s);
const char *kdeleg_set_password_without_tls(cmd_parms *cmd, void *dconf, int on);
const char *kdeleg_set_password_cache(cmd_parms *cmd, void *dconf, const char *arg);
const char *kdeleg_set_password_failure_cache(cmd_parms *cmd, void *dconf, const char *arg);

/* Group authorization (mod_kdeleg_groups.c): the user's groups, from the
 * accepted ticket's PAC (Kerberos), the session cookie, or the S4U2Self
 * ticket (protocol transition, once it happened); NULL with *why when
 * there is no group information. */
const kd_groups *kdeleg_groups_of(request_rec *r, const char **why);
/* KDELEG_GROUP_SIDS under KdelegPublishGroups On. */
void kdeleg_publish_groups(request_rec *r, const kdeleg_dir_conf *conf);
const char *kdeleg_add_group_map(cmd_parms *cmd, void *dconf, const char *alias, const char *sid);
void kdeleg_groups_register_hooks(apr_pool_t *p);
/* Require kdeleg-indicator NAME... (mod_kdeleg_indicator.c): the
 * authentication indicators of the ticket the user logged in with here. */
void kdeleg_indicator_register_hooks(apr_pool_t *p);

/* Delegation (mod_kdeleg_delegate.c): after authentication, obtain the
 * configured back-end tickets; OK, or the status that ends the request.
 * delegation: evidence already at hand (or NULL, why_not says why);
 * source: how to get evidence later (or NULL). */
int kdeleg_delegate(request_rec *r, const kdeleg_dir_conf *conf, kdeleg_auth_state *st,
                    kd_delegation *delegation, const kd_result *why_not,
                    const kdeleg_evidence_source *source);
void kdeleg_delegate_register_hooks(apr_pool_t *p);

/* The node's ticket cache (mod_kdeleg_cache.c). */
kd_ticket_cache *kdeleg_cache_tickets(void);
const char *kdeleg_cache_set(cmd_parms *cmd, void *dconf, const char *arg);
/* A directive's whole number of seconds in [min, max]: NULL and *out,
 * else the error naming the directive and the range. */
const char *kdeleg_parse_seconds(cmd_parms *cmd, const char *arg, int min, int max, int *out);
const char *kdeleg_cache_max_lifetime_set(cmd_parms *cmd, void *dconf, const char *arg);
int kdeleg_cache_pre_config(apr_pool_t *pconf);
int kdeleg_cache_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void kdeleg_cache_child_init(apr_pool_t *pchild, server_rec *s);

/* Shared tables kept across graceful restarts with their one mutex
 * (mod_kdeleg_shm.c). kdeleg_kept_table_get finds the table key of bytes in the
 * process pool, or makes it (*fresh: the caller initialises it) with a
 * mutex of the registered mutex_type (NULL: none, for tables whose users
 * need no lock); children attach to that mutex with
 * kdeleg_kept_table_child_mutex (NULL when they cannot). */
typedef struct kdeleg_kept_table kdeleg_kept_table;
apr_status_t kdeleg_kept_table_get(server_rec *s, const char *key, const char *mutex_type,
                                   apr_size_t bytes, kdeleg_kept_table **out, int *fresh);
void *kdeleg_kept_table_base(const kdeleg_kept_table *t);
apr_size_t kdeleg_kept_table_size(const kdeleg_kept_table *t);
apr_global_mutex_t *kdeleg_kept_table_child_mutex(const kdeleg_kept_table *t, apr_pool_t *pchild);

/* A store the farm shares, memcached or redis (mod_kdeleg_store.c):
 * made from its spec while the configuration is read, connections per
 * child. kdeleg_store_claim claims every key (one per farm key) in one
 * round trip: CLAIMED, TAKEN (by anyone, anywhere), or FAILED with *why
 * naming the store. kdeleg_store_ping: 1 if it answers. */
typedef struct kdeleg_store kdeleg_store;
const char *kdeleg_store_create(apr_pool_t *p, const char *spec, kdeleg_store **out);
const char *kdeleg_store_name(const kdeleg_store *st);
void kdeleg_store_child_init(kdeleg_store *st, apr_pool_t *pchild);
kd_store_answer kdeleg_store_claim(kdeleg_store *st, apr_pool_t *p, const char *const *keys,
                                   int n, unsigned ttl, const char **why);
void kdeleg_store_check_eviction(kdeleg_store *st, server_rec *s, apr_pool_t *ptemp);
/* Whole values (sealed by the caller): kdeleg_store_get answers FOUND
 * (*value in p), ABSENT or FAILED (*why); kdeleg_store_set 0 or -1 (*why). */
kd_store_answer kdeleg_store_get(kdeleg_store *st, apr_pool_t *p, const char *key,
                                 const unsigned char **value, apr_size_t *len, const char **why);
int kdeleg_store_set(kdeleg_store *st, apr_pool_t *p, const char *key,
                     const unsigned char *value, apr_size_t len, unsigned ttl, const char **why);
int kdeleg_store_ping(kdeleg_store *st, apr_pool_t *p, const char **why);

/* A key file (KdelegSessionKeyFile, KdelegCacheKeyFile): read at
 * start-up as root, refused when others may read or write it. */
const char *kdeleg_read_key_file(cmd_parms *cmd, const char *directive, const char *arg,
                                 const char **path, const kd_session_keys **keys, long *uid);

/* The node's replay cache (mod_kdeleg_replay.c). */
const char *kdeleg_replay_set(cmd_parms *cmd, void *dconf, const char *arg1,
                              const char *arg2);
const char *kdeleg_cache_key_file_set(cmd_parms *cmd, void *dconf, const char *arg);
int kdeleg_replay_pre_config(apr_pool_t *pconf);
int kdeleg_replay_post_config(apr_pool_t *pconf, apr_pool_t *ptemp, server_rec *s);
void kdeleg_replay_child_init(apr_pool_t *pchild, server_rec *s);
int kdeleg_replay_active(void);
/* KdelegReplayCache off was configured (known before post_config). */
int kdeleg_replay_off(const kdeleg_mod_conf *mc);
/* Revoked sessions (mod_kdeleg_revoke.c). kdeleg_is_revoked fails closed (1)
 * when the table cannot be read or locked (logged); kdeleg_revoke_principal returns 1 when the
 * table was full and its floor rose, -1 without a table. */
int kdeleg_revoke_pre_config(apr_pool_t *pconf);
int kdeleg_revoke_post_config(apr_pool_t *pconf, server_rec *s);
void kdeleg_revoke_child_init(apr_pool_t *pchild, server_rec *s);
int kdeleg_is_revoked(const char *principal, long long issued_ms);
/* The node's table, then the farm's list (KdelegReplayCache STORE): REVOKED,
 * NOT_REVOKED, or REVOCATION_UNKNOWN when the store cannot be read and this
 * child has not read the principal's entry within
 * KdelegRevocationCheckInterval (the caller refuses; *why says why). */
#define KDELEG_NOT_REVOKED 0
#define KDELEG_REVOKED 1
#define KDELEG_REVOCATION_UNKNOWN (-1)
int kdeleg_session_revoked(apr_pool_t *p, const char *principal, long long issued_ms,
                           const char **why);
int kdeleg_revoke_shared(void);
const char *kdeleg_revocation_interval_set(cmd_parms *cmd, void *dconf, const char *arg);
/* -2: revoked on the node, but the farm's store did not take it (logged). */
int kdeleg_revoke_principal(request_rec *r, const char *principal, long long before_ms,
                            long long until);
/* Before the exchange, is the authenticator known to this node (lookup);
 * after it, claim it on the node and then, with a shared store, in the
 * farm. KD_REPLAY_UNAVAILABLE when the table's lock failed (why->lock_rv),
 * KD_REPLAY_SHARED_DOWN when the shared store did not confirm the claim
 * (why->detail names it): the caller refuses, it never goes on unchecked.
 * KD_REPLAY_SEEN with why->elsewhere set: another node claimed it. */
typedef struct {
    apr_status_t lock_rv;
    const char *detail;
    int elsewhere;
    int key_mismatch;   /* SHARED_DOWN because the nodes share no farm key */
} kdeleg_replay_why;
kd_replay_result kdeleg_replay_seen(const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                    kdeleg_replay_why *why);
kd_replay_result kdeleg_replay_record(apr_pool_t *p, const unsigned char tag[KD_REPLAY_TAG_BYTES],
                                      kdeleg_replay_why *why);
/* The shared replay store, or NULL. kdeleg_store_healthy: 1 when no
 * store is configured or it answers a ping (within its timeout; a store
 * held as down answers 0 at once), else 0 and *why names it. */
kdeleg_store *kdeleg_replay_store(void);
int kdeleg_store_healthy(apr_pool_t *p, const char **why);

#endif
