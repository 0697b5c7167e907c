#include "kd_selftest.h"
#include "kd_keytab.h"
#include "kd_result.h"
#include "kd_s4u.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <apr_strings.h>
#include <krb5.h>

typedef struct {
    apr_pool_t *p;
    krb5_context ctx;
    krb5_keytab kt;
    krb5_ccache cc;
    krb5_principal service;
    krb5_principal client;        /* who the TGT is taken as */
    const char *client_name;
    kd_delegation *delegation;    /* S4U2Self result, for S4U2Proxy */
    apr_array_header_t *steps;
} run_state;

static void add(run_state *rs, const char *step, const char *subject, kd_cause cause,
                const char *detail)
{
    kd_selftest_step *s = apr_array_push(rs->steps);

    s->step = step;
    s->subject = subject;
    s->cause = cause;
    s->detail = detail;
    s->skipped = 0;
}

static void skip(run_state *rs, const char *step, const char *subject, const char *why)
{
    add(rs, step, subject, KD_CAUSE_NONE, why);
    APR_ARRAY_IDX(rs->steps, rs->steps->nelts - 1, kd_selftest_step).skipped = 1;
}

static const char *krb5_text(run_state *rs, krb5_error_code code)
{
    const char *msg = krb5_get_error_message(rs->ctx, code);
    const char *copy = apr_pstrdup(rs->p, msg);

    krb5_free_error_message(rs->ctx, msg);
    return copy;
}

static const char *etype_name(run_state *rs, krb5_enctype e)
{
    char name[64];

    if (krb5_enctype_to_name(e, FALSE, name, sizeof(name)) == 0)
        return apr_pstrdup(rs->p, name);
    return apr_psprintf(rs->p, "enctype %d", (int)e);
}

/* Who the service is when it asks for tickets: the same choice requests
 * make (KdelegServiceAccount, the keytab's account entry, the SPN). */
static krb5_error_code impersonator(run_state *rs, const kd_selftest_params *prm)
{
    kd_keytab_identity id;
    krb5_error_code code;

    if (prm->account)
        rs->client_name = prm->account;
    else if (kd_keytab_identify(rs->ctx, rs->kt, rs->service, &id) == 0) {
        rs->client_name = apr_pstrdup(rs->p, id.account ? id.account : prm->service);
        kd_keytab_identity_free(rs->ctx, &id);
    }
    else
        rs->client_name = prm->service;
    if ((code = krb5_parse_name(rs->ctx, rs->client_name, &rs->client)) == 0) {
        char *full;
        if (krb5_unparse_name(rs->ctx, rs->client, &full) == 0) { /* with its realm */
            rs->client_name = apr_pstrdup(rs->p, full);
            krb5_free_unparsed_name(rs->ctx, full);
        }
    }
    return code;
}

/* The service's own TGT from the keytab, forwardable (S4U2Proxy needs
 * it), and the clock offset to the KDC from its authtime. */
static int credentials(run_state *rs, const kd_selftest_params *prm)
{
    krb5_get_init_creds_opt *opt = NULL;
    krb5_creds tgt;
    krb5_error_code code;
    long offset;

    memset(&tgt, 0, sizeof(tgt));
    if ((code = krb5_get_init_creds_opt_alloc(rs->ctx, &opt)) == 0) {
        krb5_get_init_creds_opt_set_forwardable(opt, 1);
        code = krb5_get_init_creds_keytab(rs->ctx, &tgt, rs->client, rs->kt, 0, NULL, opt);
        krb5_get_init_creds_opt_free(rs->ctx, opt);
    }
    if (code == 0 && (code = krb5_cc_initialize(rs->ctx, rs->cc, rs->client)) == 0)
        code = krb5_cc_store_cred(rs->ctx, rs->cc, &tgt);
    if (code != 0) {
        kd_cause cause = kd_cause_from_kdc_error(code);
        if (code == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN)
            cause = KD_CAUSE_KEYTAB_UNUSABLE; /* AD knows accounts, not SPNs, as clients */
        add(rs, "credentials", prm->service, cause,
            apr_psprintf(rs->p, "TGT as %s from %s: %s%s", rs->client_name, prm->keytab,
                         krb5_text(rs, code),
                         code == KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN
                             ? " (Active Directory issues TGTs to the account: add its entry "
                               "to the keytab or set KdelegServiceAccount)" : ""));
        krb5_free_cred_contents(rs->ctx, &tgt);
        return -1;
    }
    add(rs, "credentials", prm->service, KD_CAUSE_NONE,
        apr_psprintf(rs->p, "TGT as %s from the keytab, %s, valid until %ld", rs->client_name,
                     (tgt.ticket_flags & TKT_FLG_FORWARDABLE) ? "forwardable"
                                                               : "NOT forwardable",
                     (long)tgt.times.endtime));
    offset = (long)tgt.times.authtime - (long)time(NULL);
    add(rs, "clock", prm->service,
        labs(offset) > prm->max_clock_offset ? KD_CAUSE_CLOCK_SKEW : KD_CAUSE_NONE,
        apr_psprintf(rs->p, "KDC time minus local time: about %ld s (allowed %d s)", offset,
                     prm->max_clock_offset));
    krb5_free_cred_contents(rs->ctx, &tgt);
    return 0;
}

/* What the keytab makes of a ticket the KDC issued for spn. */
/* The keytab a ticket for server is judged with: the file's, or, when it
 * has no entry for server but one for host/<its host>, a MEMORY copy with
 * those keys under server too, as the acceptor does (AD's HOST mapping
 * for computer accounts). *mapped says which. */
static krb5_keytab judging_keytab(run_state *rs, krb5_const_principal server, int *mapped)
{
    krb5_keytab_entry entry;
    krb5_principal host = NULL;
    krb5_keytab mem = NULL;

    *mapped = 0;
    if (krb5_kt_get_entry(rs->ctx, rs->kt, server, 0, 0, &entry) == 0) {
        krb5_free_keytab_entry_contents(rs->ctx, &entry);
        return rs->kt;
    }
    if (kd_keytab_host_principal(rs->ctx, server, &host) != 0 || host == NULL)
        return rs->kt;
    if (krb5_kt_resolve(rs->ctx, apr_psprintf(rs->p, "MEMORY:kdeleg-selftest-%pp", (void *)rs),
                        &mem) == 0
        && kd_keytab_copy(rs->ctx, rs->kt, mem, host, server) == 0)
        *mapped = 1;
    krb5_free_principal(rs->ctx, host);
    if (*mapped)
        return mem;
    if (mem)
        krb5_kt_close(rs->ctx, mem);
    return rs->kt;
}

static kd_cause judge_ticket(run_state *rs, krb5_ticket *tkt, const char **detail)
{
    krb5_keytab_entry entry;
    krb5_error_code code;
    int mapped;
    krb5_keytab kt = judging_keytab(rs, tkt->server, &mapped);
    kd_cause cause = KD_CAUSE_NONE;
    const char *issued = apr_psprintf(rs->p, "KDC issues kvno %d, %s%s",
                                      (int)tkt->enc_part.kvno,
                                      etype_name(rs, tkt->enc_part.enctype),
                                      mapped ? "; served by the host/ key (HOST mapping)" : "");

    code = krb5_kt_get_entry(rs->ctx, kt, tkt->server, tkt->enc_part.kvno,
                             tkt->enc_part.enctype, &entry);
    if (code == KRB5_KT_KVNONOTFOUND) {
        *detail = apr_pstrcat(rs->p, issued, "; the keytab has another kvno", NULL);
        cause = KD_CAUSE_KEY_VERSION_MISMATCH;
    }
    else if (code != 0) {
        *detail = apr_pstrcat(rs->p, issued, "; not in the keytab: ", krb5_text(rs, code), NULL);
        cause = KD_CAUSE_KEYTAB_UNUSABLE;
    }
    else {
        krb5_free_keytab_entry_contents(rs->ctx, &entry);
        if ((code = krb5_server_decrypt_ticket_keytab(rs->ctx, kt, tkt)) != 0) {
            *detail = apr_pstrcat(rs->p, issued, "; the keytab's key does not open it (another "
                                  "account holds this SPN, or the key is stale): ",
                                  krb5_text(rs, code), NULL);
            cause = KD_CAUSE_DECRYPT_FAILED;
        }
        else
            *detail = apr_pstrcat(rs->p, issued, "; the keytab's key opens it", NULL);
    }
    if (kt != rs->kt)
        krb5_kt_close(rs->ctx, kt);
    return cause;
}

/* Disjoint namespace: the host's DNS domain maps (krb5.conf
 * [domain_realm], as on clients) to another realm than the one holding
 * the key. Clients then ask the wrong KDC, get no ticket, and offer NTLM. */
static void check_realm_mapping(run_state *rs, const char *spn, krb5_const_principal server)
{
    const char *slash = strchr(spn, '/'), *at;
    char *host, **realms = NULL;

    if (slash == NULL)
        return;
    host = apr_pstrdup(rs->p, slash + 1);
    if ((at = strchr(host, '@')) != NULL)
        host[at - host] = '\0';
    if (krb5_get_host_realm(rs->ctx, host, &realms) == 0 && realms && realms[0]
        && realms[0][0] != '\0'
        && (server->realm.length != strlen(realms[0])
            || memcmp(server->realm.data, realms[0], server->realm.length) != 0))
        add(rs, "realm", spn, KD_CAUSE_NTLM_OFFERED,
            apr_psprintf(rs->p, "disjoint namespace: %s maps to realm %s ([domain_realm]), "
                         "but the key is in %.*s; clients ask the wrong KDC and fall back to "
                         "NTLM. Fix: [domain_realm] %s = %.*s on clients (AD: the host's DNS "
                         "suffix, or register the SPN in the realm its domain maps to)",
                         host, realms[0], (int)server->realm.length, server->realm.data, host,
                         (int)server->realm.length, server->realm.data));
    if (realms)
        krb5_free_host_realm(rs->ctx, realms);
}

static void check_spn(run_state *rs, const char *spn)
{
    krb5_creds in, *out = NULL;
    krb5_ticket *tkt = NULL;
    krb5_error_code code;
    const char *detail = NULL;
    kd_cause cause;

    memset(&in, 0, sizeof(in));
    in.client = rs->client; /* the ccache holds the TGT of the account, not the SPN */
    if ((code = krb5_parse_name(rs->ctx, spn, &in.server)) != 0
        || (code = krb5_get_credentials(rs->ctx, KRB5_GC_NO_STORE, rs->cc, &in, &out)) != 0) {
        add(rs, "spn", spn, kd_cause_from_kdc_error(code),
            apr_psprintf(rs->p, "no ticket: %s", krb5_text(rs, code)));
        krb5_free_principal(rs->ctx, in.server);
        return;
    }
    if ((code = krb5_decode_ticket(&out->ticket, &tkt)) != 0) {
        cause = KD_CAUSE_INTERNAL_ERROR;
        detail = krb5_text(rs, code);
    }
    else
        cause = judge_ticket(rs, tkt, &detail);
    add(rs, "spn", spn, cause, detail);
    check_realm_mapping(rs, spn, in.server);
    krb5_free_ticket(rs->ctx, tkt);
    krb5_free_creds(rs->ctx, out);
    krb5_free_principal(rs->ctx, in.server);
}

/* S4U2Self and S4U2Proxy through the module's own machinery (the same
 * impersonator credentials and error classification requests use). */
static void s4u2self(run_state *rs, const kd_selftest_params *prm)
{
    kd_result res;
    const char *realm = strrchr(prm->service, '@');
    kd_user_name name = kd_s4u_user_name(rs->p, prm->test_user, NULL, realm ? realm + 1 : NULL,
                                         NULL);

    kd_result_init(&res);
    if (kd_acceptor_s4u2self(prm->acceptor, rs->p, prm->service, prm->account, &name, NULL,
                             &rs->delegation, NULL, &res) != KD_CAUSE_NONE) {
        add(rs, "s4u2self", prm->test_user, res.cause, res.detail);
        rs->delegation = NULL;
    }
    else
        add(rs, "s4u2self", prm->test_user, KD_CAUSE_NONE,
            "forwardable evidence ticket obtained");
}

/* kd_s4u2proxy names a refusal across realms cross-realm-delegation. */
static void s4u2proxy(run_state *rs, const char *target)
{
    kd_result res;
    unsigned char *token;
    size_t len;

    kd_result_init(&res);
    if (kd_s4u2proxy(rs->p, rs->delegation, target, &token, &len, &res) == KD_CAUSE_NONE)
        add(rs, "s4u2proxy", target, KD_CAUSE_NONE, "ticket for the back end obtained");
    else
        add(rs, "s4u2proxy", target, res.cause, res.detail);
}

apr_array_header_t *kd_selftest_run(apr_pool_t *p, const kd_selftest_params *prm)
{
    run_state rs;
    krb5_error_code code;
    int i;

    memset(&rs, 0, sizeof(rs));
    rs.p = p;
    rs.steps = apr_array_make(p, 8, sizeof(kd_selftest_step));
    if ((code = krb5_init_context(&rs.ctx)) != 0) {
        add(&rs, "credentials", prm->service, KD_CAUSE_INTERNAL_ERROR, "no krb5 context");
        return rs.steps;
    }
    if ((code = krb5_kt_resolve(rs.ctx, apr_pstrcat(p, "FILE:", prm->keytab, NULL), &rs.kt))
            != 0
        || (code = krb5_parse_name(rs.ctx, prm->service, &rs.service)) != 0
        || (code = impersonator(&rs, prm)) != 0
        || (code = krb5_cc_new_unique(rs.ctx, "MEMORY", NULL, &rs.cc)) != 0)
        add(&rs, "credentials", prm->service, KD_CAUSE_KEYTAB_UNUSABLE, krb5_text(&rs, code));
    else if (credentials(&rs, prm) == 0) {
        for (i = 0; i < prm->n_spns; i++)
            check_spn(&rs, prm->spns[i]);
        if (prm->test_user && prm->acceptor)
            s4u2self(&rs, prm);
        else
            skip(&rs, "s4u2self", prm->service, "no KdelegSelfTestUser: S4U2Self and "
                 "S4U2Proxy not tried");
        for (i = 0; prm->test_user && i < prm->n_targets; i++) {
            if (rs.delegation)
                s4u2proxy(&rs, prm->targets[i]);
            else
                skip(&rs, "s4u2proxy", prm->targets[i], "no evidence ticket (see s4u2self)");
        }
    }
    if (rs.cc)
        krb5_cc_destroy(rs.ctx, rs.cc);
    if (rs.kt)
        krb5_kt_close(rs.ctx, rs.kt);
    krb5_free_principal(rs.ctx, rs.service);
    krb5_free_principal(rs.ctx, rs.client);
    krb5_free_context(rs.ctx);
    return rs.steps;
}
