#include "kd_token.h"

#include <string.h>
#include <apr_strings.h>

#include "kd_base64.h"
#include "kd_der.h"

/* DER contents of the object identifiers we recognise. */
static const unsigned char OID_SPNEGO[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
static const unsigned char OID_KRB5[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
/* Windows 2000 announced Kerberos under a mistyped OID; still sent today. */
static const unsigned char OID_KRB5_MS[] = {0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02};
static const unsigned char OID_NTLMSSP[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a};
static const unsigned char NTLMSSP_MAGIC[] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};

#define KD_KRB5_TOK_AP_REQ_0 0x01
#define KD_KRB5_TOK_AP_REQ_1 0x00
#define KD_KRB5_TOK_AP_REP_0 0x02
#define KD_KRB5_TOK_AP_REP_1 0x00
#define KD_MAX_NAME_COMPONENTS 8
#define KD_MAX_MECH_TYPES 32

static int oid_equals(const kd_der *oid, const unsigned char *want, size_t want_len)
{
    return kd_der_is(oid, KD_DER_UNIVERSAL, 6) && oid->len == want_len
        && memcmp(oid->val, want, want_len) == 0;
}

static kd_mech mech_of_oid(const kd_der *oid)
{
    if (oid_equals(oid, OID_KRB5, sizeof(OID_KRB5))
        || oid_equals(oid, OID_KRB5_MS, sizeof(OID_KRB5_MS)))
        return KD_MECH_KRB5;
    if (oid_equals(oid, OID_NTLMSSP, sizeof(OID_NTLMSSP)))
        return KD_MECH_NTLM;
    return KD_MECH_OTHER;
}

static int is_ntlmssp(const unsigned char *buf, size_t len, int *msg_type)
{
    if (len < sizeof(NTLMSSP_MAGIC) + 4 || memcmp(buf, NTLMSSP_MAGIC, sizeof(NTLMSSP_MAGIC)) != 0)
        return 0;
    *msg_type = buf[8] | (buf[9] << 8) | (buf[10] << 16) | ((unsigned)buf[11] << 24);
    return 1;
}

/* ----------------------------------------------------------- header */

kd_cause kd_token_from_header(apr_pool_t *p, const char *value, unsigned char **tok,
                              size_t *len, kd_result *res)
{
    const char *sp, *b64;
    size_t scheme_len, b64_len;
    kd_b64_status st;

    *tok = NULL;
    *len = 0;
    if (value == NULL || *value == '\0')
        return kd_result_fail(res, p, KD_CAUSE_NO_TOKEN, "header", "no Authorization header");
    sp = strchr(value, ' ');
    scheme_len = sp ? (size_t)(sp - value) : strlen(value);
    if (scheme_len == 4 && strncasecmp(value, "NTLM", 4) == 0)
        return kd_result_fail(res, p, KD_CAUSE_NTLM_OFFERED, "header",
                              "client used the NTLM authentication scheme");
    if (scheme_len != 9 || strncasecmp(value, "Negotiate", 9) != 0)
        return kd_result_fail(res, p, KD_CAUSE_NO_TOKEN, "header",
                              "Authorization header uses another scheme");
    b64 = value + scheme_len;
    while (*b64 == ' ' || *b64 == '\t')
        b64++;
    b64_len = strlen(b64);
    while (b64_len > 0 && (b64[b64_len - 1] == ' ' || b64[b64_len - 1] == '\t'))
        b64_len--;
    /* RFC 4559 always sends a token after the scheme: a bare "Negotiate"
     * is a broken client the administrator should hear about. */
    if (b64_len == 0)
        return kd_result_fail(res, p, KD_CAUSE_MALFORMED_TOKEN, "header",
                              "Negotiate without a token");
    st = kd_b64_decode(p, b64, b64_len, KD_TOKEN_MAX_BYTES, tok, len);
    if (st != KD_B64_OK)
        return kd_result_fail(res, p, KD_CAUSE_MALFORMED_TOKEN, "header",
                              "Negotiate token: %s (%" APR_SIZE_T_FMT " characters)",
                              kd_b64_status_str(st), b64_len);
    return KD_CAUSE_NONE;
}

/* ----------------------------------------------------------- Kerberos AP-REQ */

/* A KerberosString we are willing to print and compare: no control bytes. */
static const char *kerberos_string(apr_pool_t *p, const kd_der *el)
{
    size_t i;

    if (!kd_der_is(el, KD_DER_UNIVERSAL, 27) || el->len == 0 || el->len > 255)
        return NULL;
    for (i = 0; i < el->len; i++) {
        if (el->val[i] < 0x20 || el->val[i] == 0x7f)
            return NULL;
    }
    return apr_pstrmemdup(p, (const char *)el->val, el->len);
}

static const char *principal_name(apr_pool_t *p, const kd_der *pn)
{
    kd_der strings, el;
    const unsigned char *pos, *end;
    const char *name = NULL;
    int n = 0;

    if (!kd_der_is(pn, KD_DER_UNIVERSAL, 16) || kd_der_field(pn, 1, &strings) != 0
        || !kd_der_is(&strings, KD_DER_UNIVERSAL, 16))
        return NULL;
    pos = strings.val;
    end = strings.val + strings.len;
    while (pos < end) {
        if (kd_der_next(&pos, end, &el) != 0 || ++n > KD_MAX_NAME_COMPONENTS)
            return NULL;
        const char *part = kerberos_string(p, &el);
        if (part == NULL)
            return NULL;
        name = name ? apr_pstrcat(p, name, "/", part, NULL) : part;
    }
    return name;
}

static int parse_ticket(apr_pool_t *p, const kd_der *ticket_app, kd_token_info *info)
{
    kd_der ticket, realm, sname, enc, etype, kvno;

    if (!kd_der_is(ticket_app, KD_DER_APPLICATION, 1)
        || kd_der_whole(ticket_app->val, ticket_app->len, &ticket) != 0
        || !kd_der_is(&ticket, KD_DER_UNIVERSAL, 16)
        || kd_der_field(&ticket, 1, &realm) != 0 || kd_der_field(&ticket, 2, &sname) != 0
        || kd_der_field(&ticket, 3, &enc) != 0 || !kd_der_is(&enc, KD_DER_UNIVERSAL, 16)
        || kd_der_field(&enc, 0, &etype) != 0 || kd_der_int32(&etype, &info->ticket_etype) != 0)
        return -1;
    info->ticket_realm = kerberos_string(p, &realm);
    info->ticket_sname = principal_name(p, &sname);
    if (info->ticket_realm == NULL || info->ticket_sname == NULL)
        return -1;
    info->ticket_kvno = -1;
    if (kd_der_field(&enc, 1, &kvno) == 0 && kd_der_int32(&kvno, &info->ticket_kvno) != 0)
        return -1;
    info->ticket = ticket_app->raw;
    info->ticket_len = ticket_app->raw_len;
    return 0;
}

static int parse_ap_req(apr_pool_t *p, const unsigned char *buf, size_t len, kd_token_info *info)
{
    kd_der app, seq, pvno, type, opts, ticket, auth, cipher;
    int32_t v;

    if (kd_der_whole(buf, len, &app) != 0 || !kd_der_is(&app, KD_DER_APPLICATION, 14)
        || kd_der_whole(app.val, app.len, &seq) != 0 || !kd_der_is(&seq, KD_DER_UNIVERSAL, 16))
        return -1;
    if (kd_der_field(&seq, 0, &pvno) != 0 || kd_der_int32(&pvno, &v) != 0 || v != 5
        || kd_der_field(&seq, 1, &type) != 0 || kd_der_int32(&type, &v) != 0 || v != 14)
        return -1;
    /* ap-options BIT STRING: unused-bits byte, then bit 2 = mutual-required */
    if (kd_der_field(&seq, 2, &opts) != 0 || !kd_der_is(&opts, KD_DER_UNIVERSAL, 3)
        || opts.len < 2)
        return -1;
    info->mutual_required = (opts.val[1] & 0x20) != 0;
    if (kd_der_field(&seq, 3, &ticket) != 0 || parse_ticket(p, &ticket, info) != 0)
        return -1;
    /* authenticator [4] EncryptedData { etype [0], kvno [1] OPTIONAL, cipher [2] } */
    if (kd_der_field(&seq, 4, &auth) != 0 || !kd_der_is(&auth, KD_DER_UNIVERSAL, 16)
        || kd_der_field(&auth, 2, &cipher) != 0 || !kd_der_is(&cipher, KD_DER_UNIVERSAL, 4)
        || cipher.len == 0)
        return -1;
    info->authenticator = cipher.val;
    info->authenticator_len = cipher.len;
    info->has_ap_req = 1;
    return 0;
}

/* RFC 2743 3.1 framing: [APPLICATION 0] { mech OID, inner token }. The
 * inner token is not itself DER-framed, so it is returned as raw bytes. */
static int gss_framing(const unsigned char *tok, size_t len, kd_der *mech,
                       const unsigned char **inner, size_t *inner_len)
{
    kd_der app;
    const unsigned char *pos;

    if (kd_der_whole(tok, len, &app) != 0 || !kd_der_is(&app, KD_DER_APPLICATION, 0)
        || !app.constructed)
        return -1;
    pos = app.val;
    if (kd_der_next(&pos, app.val + app.len, mech) != 0 || !kd_der_is(mech, KD_DER_UNIVERSAL, 6))
        return -1;
    *inner = pos;
    *inner_len = (size_t)(app.val + app.len - pos);
    return 0;
}

/* A Kerberos mechanism token: GSS framing, TOK_ID 01 00, AP-REQ. */
static int parse_krb5_mech_token(apr_pool_t *p, const unsigned char *tok, size_t len,
                                 kd_token_info *info)
{
    kd_der mech;
    const unsigned char *inner;
    size_t inner_len;

    if (gss_framing(tok, len, &mech, &inner, &inner_len) != 0 || mech_of_oid(&mech) != KD_MECH_KRB5
        || inner_len < 2 || inner[0] != KD_KRB5_TOK_AP_REQ_0 || inner[1] != KD_KRB5_TOK_AP_REQ_1)
        return -1;
    if (parse_ap_req(p, inner + 2, inner_len - 2, info) != 0)
        return -1;
    info->krb5_token = tok;
    info->krb5_token_len = len;
    info->krb5_token_oid = mech.val;
    info->krb5_token_oid_len = mech.len;
    info->ap_req = inner + 2;
    info->ap_req_len = inner_len - 2;
    return 0;
}

/* ----------------------------------------------------------- SPNEGO */

static int parse_mech_types(const kd_der *list, kd_token_info *info)
{
    const unsigned char *pos = list->val, *end = list->val + list->len;
    kd_der oid;
    int n = 0;

    if (!kd_der_is(list, KD_DER_UNIVERSAL, 16))
        return -1;
    while (pos < end) {
        kd_mech m;
        if (kd_der_next(&pos, end, &oid) != 0 || !kd_der_is(&oid, KD_DER_UNIVERSAL, 6)
            || ++n > KD_MAX_MECH_TYPES)
            return -1;
        m = mech_of_oid(&oid);
        if (n == 1)
            info->preferred = m;
        if (m == KD_MECH_KRB5 && info->krb5_oid == NULL) {
            info->krb5_oid = oid.val;
            info->krb5_oid_len = oid.len;
        }
        info->offered |= m == KD_MECH_KRB5 ? KD_OFFER_KRB5
                       : m == KD_MECH_NTLM ? KD_OFFER_NTLM : KD_OFFER_OTHER;
    }
    return n > 0 ? 0 : -1;
}

/* The optimistic mechanism token inside NegTokenInit / NegTokenResp. */
static kd_cause classify_mech_token(apr_pool_t *p, const kd_der *octets, kd_token_info *info)
{
    if (!kd_der_is(octets, KD_DER_UNIVERSAL, 4))
        return KD_CAUSE_MALFORMED_TOKEN;
    if (is_ntlmssp(octets->val, octets->len, &info->ntlm_message_type)) {
        info->inner = KD_MECH_NTLM;
        return KD_CAUSE_NTLM_OFFERED;
    }
    if (parse_krb5_mech_token(p, octets->val, octets->len, info) == 0) {
        info->inner = KD_MECH_KRB5;
        return KD_CAUSE_NONE;
    }
    info->inner = KD_MECH_OTHER;
    return KD_CAUSE_MALFORMED_TOKEN;
}

static kd_cause parse_neg_token_init(apr_pool_t *p, const unsigned char *buf, size_t len,
                                     kd_token_info *info)
{
    kd_der choice, init, types, mech_token;

    info->frame = KD_FRAME_SPNEGO_INIT;
    if (kd_der_whole(buf, len, &choice) != 0 || !kd_der_is(&choice, KD_DER_CONTEXT, 0)
        || kd_der_whole(choice.val, choice.len, &init) != 0
        || !kd_der_is(&init, KD_DER_UNIVERSAL, 16)
        || kd_der_field(&init, 0, &types) != 0 || parse_mech_types(&types, info) != 0)
        return KD_CAUSE_MALFORMED_TOKEN;
    if (kd_der_field(&init, 2, &mech_token) != 0) {
        /* No optimistic token: only an NTLM-only offer is meaningful to us;
         * anything else would need a multi-leg exchange HTTP cannot carry. */
        return info->offered == KD_OFFER_NTLM ? KD_CAUSE_NTLM_OFFERED : KD_CAUSE_MALFORMED_TOKEN;
    }
    return classify_mech_token(p, &mech_token, info);
}

static kd_cause parse_neg_token_resp(apr_pool_t *p, const unsigned char *buf, size_t len,
                                     kd_token_info *info)
{
    kd_der choice, resp, response_token;

    info->frame = KD_FRAME_SPNEGO_RESP;
    if (kd_der_whole(buf, len, &choice) != 0 || !kd_der_is(&choice, KD_DER_CONTEXT, 1)
        || kd_der_whole(choice.val, choice.len, &resp) != 0
        || !kd_der_is(&resp, KD_DER_UNIVERSAL, 16)
        || kd_der_field(&resp, 2, &response_token) != 0)
        return KD_CAUSE_MALFORMED_TOKEN;
    return classify_mech_token(p, &response_token, info);
}

kd_cause kd_token_sniff(apr_pool_t *p, const unsigned char *tok, size_t len,
                        kd_token_info *info, kd_result *res)
{
    kd_der mech;
    const unsigned char *inner;
    size_t inner_len;
    kd_cause cause;

    memset(info, 0, sizeof(*info));
    info->ticket_kvno = -1;
    if (is_ntlmssp(tok, len, &info->ntlm_message_type)) {
        info->frame = KD_FRAME_NTLMSSP;
        info->inner = KD_MECH_NTLM;
        return kd_result_fail(res, p, KD_CAUSE_NTLM_OFFERED, "sniff",
                              "raw NTLMSSP type %d message", info->ntlm_message_type);
    }
    if (len > 0 && tok[0] == 0xa1)
        cause = parse_neg_token_resp(p, tok, len, info);
    else if (gss_framing(tok, len, &mech, &inner, &inner_len) != 0)
        cause = KD_CAUSE_MALFORMED_TOKEN;
    else if (oid_equals(&mech, OID_SPNEGO, sizeof(OID_SPNEGO)))
        cause = parse_neg_token_init(p, inner, inner_len, info);
    else if (mech_of_oid(&mech) == KD_MECH_KRB5) {
        info->frame = KD_FRAME_KRB5;
        info->inner = KD_MECH_KRB5;
        cause = parse_krb5_mech_token(p, tok, len, info) == 0 ? KD_CAUSE_NONE
                                                              : KD_CAUSE_MALFORMED_TOKEN;
    }
    else
        cause = KD_CAUSE_MALFORMED_TOKEN;

    if (cause == KD_CAUSE_NTLM_OFFERED)
        return kd_result_fail(res, p, cause, "sniff", "%s offering %s",
                              kd_frame_name(info->frame),
                              info->inner == KD_MECH_NTLM ? "an NTLMSSP token" : "only NTLM");
    if (cause != KD_CAUSE_NONE)
        return kd_result_fail(res, p, cause, "sniff",
                              "%s token (%" APR_SIZE_T_FMT " bytes) is not a Kerberos AP-REQ",
                              kd_frame_name(info->frame), len);
    return KD_CAUSE_NONE;
}

/* ----------------------------------------------------------- reply */

/* Append tag + length + contents; lengths here stay far below 64 KiB. */
static size_t put_tlv(unsigned char *out, unsigned char tag, const unsigned char *val, size_t len)
{
    size_t n = 0;

    out[n++] = tag;
    if (len < 0x80)
        out[n++] = (unsigned char)len;
    else if (len < 0x100) {
        out[n++] = 0x81;
        out[n++] = (unsigned char)len;
    }
    else {
        out[n++] = 0x82;
        out[n++] = (unsigned char)(len >> 8);
        out[n++] = (unsigned char)len;
    }
    if (val != NULL)
        memcpy(out + n, val, len);
    return n + len;
}

int kd_token_frame_ap_rep(apr_pool_t *p, const kd_token_info *info, const unsigned char *ap_rep,
                          size_t len, unsigned char **out, size_t *out_len)
{
    unsigned char *body;
    size_t n;

    *out = NULL;
    *out_len = 0;
    if (info->krb5_token_oid == NULL || info->krb5_token_oid_len > 0x7f || len > 0xf000)
        return -1;
    body = apr_palloc(p, info->krb5_token_oid_len + len + 8);
    n = put_tlv(body, 0x06, info->krb5_token_oid, info->krb5_token_oid_len);
    body[n++] = KD_KRB5_TOK_AP_REP_0;
    body[n++] = KD_KRB5_TOK_AP_REP_1;
    memcpy(body + n, ap_rep, len);
    n += len;
    *out = apr_palloc(p, n + 4);
    *out_len = put_tlv(*out, 0x60, body, n);
    return 0;
}

void kd_token_reply(apr_pool_t *p, const kd_token_info *info, const unsigned char *ap_rep,
                    size_t ap_rep_len, unsigned char **out, size_t *out_len)
{
    static const unsigned char accept_completed[] = {0xa0, 0x03, 0x0a, 0x01, 0x00};
    static const unsigned char krb5_oid[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02};
    const unsigned char *oid = info->krb5_oid ? info->krb5_oid : krb5_oid;
    size_t oid_len = info->krb5_oid ? info->krb5_oid_len : sizeof(krb5_oid);
    unsigned char *oid_el, *mech_el, *tok_el = NULL, *body, *seq, *resp;
    size_t oid_el_len, mech_el_len, tok_el_len = 0, body_len, seq_len, cap;

    *out = NULL;
    *out_len = 0;
    if (info->frame != KD_FRAME_SPNEGO_INIT) {
        if (ap_rep_len > 0) {
            *out = apr_pmemdup(p, ap_rep, ap_rep_len);
            *out_len = ap_rep_len;
        }
        return;
    }
    cap = oid_len + ap_rep_len + 64;
    oid_el = apr_palloc(p, cap);
    oid_el_len = put_tlv(oid_el, 0x06, oid, oid_len);
    mech_el = apr_palloc(p, cap);
    mech_el_len = put_tlv(mech_el, 0xa1, oid_el, oid_el_len);
    if (ap_rep_len > 0) {
        unsigned char *octets = apr_palloc(p, cap);
        size_t octets_len = put_tlv(octets, 0x04, ap_rep, ap_rep_len);
        tok_el = apr_palloc(p, cap);
        tok_el_len = put_tlv(tok_el, 0xa2, octets, octets_len);
    }
    body_len = sizeof(accept_completed) + mech_el_len + tok_el_len;
    body = apr_palloc(p, body_len);
    memcpy(body, accept_completed, sizeof(accept_completed));
    memcpy(body + sizeof(accept_completed), mech_el, mech_el_len);
    if (tok_el_len > 0)
        memcpy(body + sizeof(accept_completed) + mech_el_len, tok_el, tok_el_len);
    seq = apr_palloc(p, body_len + 8);
    seq_len = put_tlv(seq, 0x30, body, body_len);
    resp = apr_palloc(p, seq_len + 8);
    *out_len = put_tlv(resp, 0xa1, seq, seq_len);
    *out = resp;
}

void kd_token_spnego_wrap(apr_pool_t *p, const unsigned char *krb5_token, size_t len,
                          unsigned char **out, size_t *out_len)
{
    unsigned char oid[16], oid_seq[20], mech_types[24];
    size_t cap = len + 96, n, m;
    unsigned char *a = apr_palloc(p, cap), *b = apr_palloc(p, cap);

    /* NegTokenInit { mechTypes [0] SEQUENCE { krb5 OID }, mechToken [2] OCTET STRING } */
    n = put_tlv(oid, 0x06, OID_KRB5, sizeof(OID_KRB5));
    n = put_tlv(oid_seq, 0x30, oid, n);
    m = put_tlv(mech_types, 0xa0, oid_seq, n);
    memcpy(a, mech_types, m);
    n = put_tlv(b, 0x04, krb5_token, len);
    m += put_tlv(a + m, 0xa2, b, n);
    n = put_tlv(b, 0x30, a, m);
    n = put_tlv(a, 0xa0, b, n);
    /* GSS framing: [APPLICATION 0] { SPNEGO OID, NegotiationToken } */
    m = put_tlv(b, 0x06, OID_SPNEGO, sizeof(OID_SPNEGO));
    memcpy(b + m, a, n);
    *out = apr_palloc(p, cap);
    *out_len = put_tlv(*out, 0x60, b, m + n);
}

const char *kd_token_ticket_principal(apr_pool_t *p, const kd_token_info *info)
{
    if (!info->has_ap_req)
        return NULL;
    return apr_pstrcat(p, info->ticket_sname, "@", info->ticket_realm, NULL);
}

const char *kd_frame_name(kd_frame frame)
{
    switch (frame) {
    case KD_FRAME_SPNEGO_INIT:
        return "SPNEGO";
    case KD_FRAME_SPNEGO_RESP:
        return "SPNEGO continuation";
    case KD_FRAME_KRB5:
        return "Kerberos";
    case KD_FRAME_NTLMSSP:
        return "NTLMSSP";
    case KD_FRAME_UNKNOWN:
        break;
    }
    return "unrecognised";
}
