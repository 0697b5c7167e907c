#include "kd_apreq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <apr_strings.h>

#define KD_CKSUM_GSS 0x8003        /* RFC 4121 4.1.1 */
#define KD_CKSUM_MIN 24            /* Lgth, Bnd, Flags */
#define KD_CB_MD5_LEN 16
#define KD_DELEG_OPTION 1          /* DlgOpt: a KRB-CRED follows */
#define KD_KERB_AP_OPTIONS_CBT 0x4000u /* MS-KILE 2.2.7 */
#define KD_ENCTYPE_DES3 16
#define KD_ENCTYPE_RC4 23
#define KD_ENCTYPE_RC4_EXP 24

/* What RFC 4121 lets the initiator ask for; GSS_C_DELEG_FLAG is added only
 * for a credential actually present, as MIT does. */
#define KD_INITIATOR_FLAGS (KD_GSS_MUTUAL_FLAG | KD_GSS_REPLAY_FLAG | KD_GSS_SEQUENCE_FLAG \
                            | KD_GSS_CONF_FLAG | KD_GSS_INTEG_FLAG)

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[3] | (uint32_t)b[2] << 8 | (uint32_t)b[1] << 16 | (uint32_t)b[0] << 24;
}

int kd_apreq_gss_checksum(const unsigned char *c, size_t len, const unsigned char *cb_md5,
                          unsigned *flags, int *bound)
{
    static const unsigned char unbound[KD_CB_MD5_LEN];
    const unsigned char *end = c + len, *pos;
    uint32_t token_flags;

    *flags = 0;
    *bound = 0;
    if (len < KD_CKSUM_MIN || le32(c) != KD_CB_MD5_LEN)
        return -1;
    if (cb_md5 != NULL && memcmp(c + 4, unbound, KD_CB_MD5_LEN) != 0) {
        if (memcmp(c + 4, cb_md5, KD_CB_MD5_LEN) != 0)
            return -2;
        *bound = 1;
    }
    token_flags = le32(c + 20);
    /* DCE style pairs with a raw AP-REQ (no GSS framing), never sent here. */
    if (token_flags & KD_GSS_DCE_STYLE)
        return -1;
    *flags = token_flags & KD_INITIATOR_FLAGS;
    pos = c + KD_CKSUM_MIN;
    /* A forwarded TGT: skipped, never decrypted, stored or used. */
    if (end - pos >= 4 && (token_flags & KD_GSS_DELEG_FLAG)) {
        size_t dlgth = (size_t)pos[2] | (size_t)pos[3] << 8;
        if ((pos[0] | pos[1] << 8) != KD_DELEG_OPTION || (size_t)(end - pos) - 4 < dlgth)
            return -1;
        pos += 4 + dlgth;
        *flags |= KD_GSS_DELEG_FLAG;
    }
    /* Extensions (RFC 4121's successors, IAKERB): well-formed, then ignored. */
    while (pos < end) {
        uint32_t ext_len;
        if (end - pos < 8)
            return -1;
        ext_len = be32(pos + 4);
        pos += 8;
        if ((size_t)(end - pos) < ext_len)
            return -1;
        pos += ext_len;
    }
    return 0;
}

/* The MD5 of the bindings as RFC 4121 4.1.1.2 lays them out: no
 * addresses (GSS_C_AF_UNSPEC), the application data only. */
static krb5_error_code bindings_md5(krb5_context ctx, const kd_apreq_in *in,
                                    unsigned char md5[KD_CB_MD5_LEN])
{
    unsigned char *buf;
    size_t n = 20 + in->cb_len;
    krb5_data data;
    krb5_checksum sum;
    krb5_error_code code;

    if ((buf = calloc(1, n)) == NULL)
        return ENOMEM;
    buf[16] = (unsigned char)in->cb_len;
    buf[17] = (unsigned char)(in->cb_len >> 8);
    buf[18] = (unsigned char)(in->cb_len >> 16);
    buf[19] = (unsigned char)(in->cb_len >> 24);
    memcpy(buf + 20, in->cb_data, in->cb_len);
    data.magic = KV5M_DATA;
    data.data = (char *)buf;
    data.length = (unsigned int)n;
    code = krb5_c_make_checksum(ctx, CKSUMTYPE_RSA_MD5, NULL, 0, &data, &sum);
    free(buf);
    if (code != 0)
        return code;
    if (sum.length != KD_CB_MD5_LEN)
        code = KRB5_CRYPTO_INTERNAL;
    else
        memcpy(md5, sum.contents, KD_CB_MD5_LEN);
    krb5_free_checksum_contents(ctx, &sum);
    return code;
}

static void fail(krb5_context ctx, apr_pool_t *p, kd_apreq_out *out, krb5_error_code code)
{
    const char *msg = krb5_get_error_message(ctx, code);

    out->code = code;
    out->error = apr_pstrdup(p, msg ? msg : "unknown Kerberos error");
    krb5_free_error_message(ctx, msg);
}

/* A checksum that is not 0x8003: Samba sends a keyed checksum over empty
 * data (verified, so the authenticator was made for this use), some SMB
 * clients none at all (MS-KILE: no flags). */
static int other_checksum(krb5_context ctx, krb5_auth_context ac, krb5_flags ap_opts,
                          const krb5_checksum *sum, kd_apreq_out *out)
{
    krb5_key key = NULL;
    krb5_data empty = {KV5M_DATA, 0, NULL};
    krb5_boolean valid = 0;

    if (sum == NULL)
        return 0;
    if (krb5_auth_con_getkey_k(ctx, ac, &key) != 0
        || krb5_k_verify_checksum(ctx, key, KRB5_KEYUSAGE_AP_REQ_AUTH_CKSUM, &empty, sum,
                                  &valid) != 0 || !valid) {
        krb5_k_free_key(ctx, key);
        out->defective = 1;
        out->error = "the authenticator's checksum does not verify";
        return -1;
    }
    krb5_k_free_key(ctx, key);
    out->flags = KD_GSS_REPLAY_FLAG | KD_GSS_SEQUENCE_FLAG;
    if (ap_opts & AP_OPTS_MUTUAL_REQUIRED)
        out->flags |= KD_GSS_MUTUAL_FLAG;
    return 0;
}

/* MS-KILE's KERB_AP_OPTIONS_CBT: the client says it bound the token. */
static int claims_binding(krb5_context ctx, krb5_authdata *const *ad, int *claims)
{
    krb5_authdata **found = NULL;
    int rv = 0;

    *claims = 0;
    if (krb5_find_authdata(ctx, NULL, ad, KRB5_AUTHDATA_AP_OPTIONS, &found) != 0)
        return -1;
    if (found == NULL)
        return 0;
    if (found[1] != NULL || found[0]->length != 4)
        rv = -1;
    else
        *claims = (le32(found[0]->contents) & KD_KERB_AP_OPTIONS_CBT) != 0;
    krb5_free_authdata(ctx, found);
    return rv;
}

static int check_checksum(krb5_context ctx, apr_pool_t *p, krb5_auth_context ac,
                          krb5_flags ap_opts, const krb5_authenticator *auth,
                          const kd_apreq_in *in, kd_apreq_out *out)
{
    unsigned char md5[KD_CB_MD5_LEN];
    const krb5_checksum *sum = auth->checksum;
    krb5_error_code code;
    int rv, claims;

    if (in->cb_data != NULL && (code = bindings_md5(ctx, in, md5)) != 0) {
        fail(ctx, p, out, code);
        return -1;
    }
    if (sum == NULL || sum->checksum_type != KD_CKSUM_GSS) {
        if (other_checksum(ctx, ac, ap_opts, sum, out) != 0)
            return -1;
    }
    else if ((rv = kd_apreq_gss_checksum(sum->contents, sum->length,
                                         in->cb_data ? md5 : NULL, &out->flags,
                                         &out->channel_bound)) != 0) {
        out->bad_bindings = rv == -2;
        out->defective = rv == -1;
        out->error = rv == -2 ? "the token is bound to other channel bindings"
                              : "the authenticator's GSS checksum is malformed";
        return -1;
    }
    if (claims_binding(ctx, auth->authorization_data, &claims) != 0) {
        out->defective = 1;
        out->error = "the authenticator's AP-options authorization data is malformed";
        return -1;
    }
    if (claims && in->cb_data != NULL && !out->channel_bound) {
        out->bad_bindings = 1;
        out->error = "the client says it bound its token to a channel, and not to this one";
        return -1;
    }
    return 0;
}

static void describe(krb5_context ctx, apr_pool_t *p, const krb5_ticket *ticket,
                     const kd_apreq_in *in, kd_apreq_out *out)
{
    const krb5_enc_tkt_part *part = ticket->enc_part2;
    char *name = NULL, local[256];
    long left = (long)part->times.endtime - (long)time(NULL);

    if (krb5_unparse_name(ctx, part->client, &name) == 0) {
        out->client = apr_pstrdup(p, name);
        krb5_free_unparsed_name(ctx, name);
    }
    if (in->want_local_name
        && krb5_aname_to_localname(ctx, part->client, sizeof(local) - 1, local) == 0)
        out->local_name = apr_pstrdup(p, local);
    out->seconds_left = left > 0 ? left : 0;
}

/* Keep the ticket's PAC for kd_apreq_pac_logon_info. */
static void keep_pac(krb5_context ctx, apr_pool_t *p, const krb5_ticket *ticket,
                     kd_apreq_out *out)
{
    krb5_authdata **pacs = NULL;

    if (krb5_find_authdata(ctx, ticket->enc_part2->authorization_data, NULL,
                           KRB5_AUTHDATA_WIN2K_PAC, &pacs) != 0 || pacs == NULL)
        return;
    out->pac.data = apr_pmemdup(p, pacs[0]->contents, pacs[0]->length);
    out->pac.len = pacs[0]->length;
    out->pac.several = pacs[1] != NULL;
    out->pac.kvno = ticket->enc_part.kvno;
    out->pac.enctype = ticket->enc_part.enctype;
    out->pac.authtime = ticket->enc_part2->times.authtime;
    krb5_free_authdata(ctx, pacs);
}

static int pac_verifies(krb5_context ctx, krb5_keytab kt, krb5_const_principal server,
                        krb5_const_principal client, const kd_apreq_pac *in, krb5_pac pac)
{
    krb5_keytab_entry key;
    int ok;

    if (krb5_kt_get_entry(ctx, kt, server, in->kvno, in->enctype, &key) != 0)
        return 0;
    ok = krb5_pac_verify(ctx, pac, in->authtime, client, &key.key, NULL) == 0;
    krb5_free_keytab_entry_contents(ctx, &key); /* zeroes the key */
    return ok;
}

kd_pac_state kd_apreq_pac_logon_info(krb5_context ctx, apr_pool_t *p, const char *keytab,
                                     const char *server, const char *client,
                                     const kd_apreq_pac *in, unsigned char **li,
                                     size_t *li_len)
{
    krb5_keytab kt = NULL;
    krb5_principal sp = NULL, cp = NULL;
    krb5_pac pac = NULL;
    krb5_data buf = {KV5M_DATA, 0, NULL};
    kd_pac_state state = KD_APREQ_PAC_UNVERIFIED;

    *li = NULL;
    *li_len = 0;
    if (in->data == NULL)
        return KD_APREQ_PAC_ABSENT;
    if (in->several || krb5_kt_resolve(ctx, keytab, &kt) != 0
        || krb5_parse_name(ctx, server, &sp) != 0 || krb5_parse_name(ctx, client, &cp) != 0
        || krb5_pac_parse(ctx, in->data, in->len, &pac) != 0
        || !pac_verifies(ctx, kt, sp, cp, in, pac))
        goto done;
    state = KD_APREQ_PAC_VERIFIED;
    if (krb5_pac_get_buffer(ctx, pac, KRB5_PAC_LOGON_INFO, &buf) == 0) {
        *li = apr_pmemdup(p, buf.data, buf.length);
        *li_len = buf.length;
        krb5_free_data_contents(ctx, &buf);
    }

done:
    krb5_pac_free(ctx, pac);
    krb5_free_principal(ctx, cp);
    krb5_free_principal(ctx, sp);
    if (kt)
        krb5_kt_close(ctx, kt);
    return state;
}

/* The AP-REP (the caller frames it): an acceptor subkey as MIT makes one
 * (RFC 4121, for the newer enctypes), and a sequence number. */
static void make_reply(krb5_context ctx, apr_pool_t *p, krb5_auth_context ac, kd_apreq_out *out)
{
    krb5_key session = NULL;
    krb5_enctype etype = 0;
    krb5_int32 flags = KRB5_AUTH_CONTEXT_DO_SEQUENCE;
    krb5_data rep = {KV5M_DATA, 0, NULL};
    krb5_error_code code;

    if (krb5_auth_con_getkey_k(ctx, ac, &session) == 0 && session != NULL) {
        etype = krb5_k_key_enctype(ctx, session);
        krb5_k_free_key(ctx, session);
    }
    /* RFC 4537: no acceptor subkey for the pre-CFX enctypes */
    if (etype != KD_ENCTYPE_DES3 && etype != KD_ENCTYPE_RC4 && etype != KD_ENCTYPE_RC4_EXP)
        flags |= KRB5_AUTH_CONTEXT_USE_SUBKEY;
    if ((code = krb5_auth_con_setflags(ctx, ac, flags)) != 0
        || (code = krb5_mk_rep(ctx, ac, &rep)) != 0) {
        fail(ctx, p, out, code);
        return;
    }
    out->ap_rep = apr_pmemdup(p, rep.data, rep.length);
    out->ap_rep_len = rep.length;
    krb5_free_data_contents(ctx, &rep);
}

void kd_apreq_accept(krb5_context ctx, apr_pool_t *p, const kd_apreq_in *in, kd_apreq_out *out)
{
    krb5_auth_context ac = NULL;
    krb5_keytab kt = NULL;
    krb5_principal server = NULL;
    krb5_ticket *ticket = NULL;
    krb5_authenticator *auth = NULL;
    krb5_flags ap_opts = 0;
    krb5_data req;
    krb5_error_code code;

    memset(out, 0, sizeof(*out));
    req.magic = KV5M_DATA;
    req.data = (char *)in->ap_req;
    req.length = (unsigned int)in->ap_req_len;
    /* Flags 0: no MIT replay cache (the caller's table checks replays);
     * times and clock skew are checked all the same. */
    if ((code = krb5_kt_resolve(ctx, in->keytab, &kt)) != 0
        || (code = krb5_parse_name(ctx, in->server, &server)) != 0
        || (code = krb5_auth_con_init(ctx, &ac)) != 0
        || (code = krb5_auth_con_setflags(ctx, ac, 0)) != 0
        || (code = krb5_rd_req(ctx, &ac, &req, server, kt, &ap_opts, &ticket)) != 0
        || (code = krb5_auth_con_getauthenticator(ctx, ac, &auth)) != 0) {
        fail(ctx, p, out, code);
        goto done;
    }
    if (check_checksum(ctx, p, ac, ap_opts, auth, in, out) != 0)
        goto done;
    describe(ctx, p, ticket, in, out);
    if (out->client == NULL) {
        fail(ctx, p, out, ENOMEM);
        goto done;
    }
    keep_pac(ctx, p, ticket, out);
    if (out->flags & KD_GSS_MUTUAL_FLAG)
        make_reply(ctx, p, ac, out);

done:
    if (auth)
        krb5_free_authenticator(ctx, auth);
    if (ticket)
        krb5_free_ticket(ctx, ticket);
    if (ac)
        krb5_auth_con_free(ctx, ac);
    krb5_free_principal(ctx, server);
    if (kt)
        krb5_kt_close(ctx, kt);
}
