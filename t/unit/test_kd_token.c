#include "kd_unit.h"

#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>
#include <krb5.h>

#include "kd_base64.h"
#include "kd_der.h"
#include "kd_token.h"

/* ------------------------------------------------------------ helpers */

typedef struct {
    unsigned char *buf;
    size_t len;
} bytes;

static bytes raw(const void *data, size_t len)
{
    bytes b = {apr_pmemdup(kd_test_pool, data, len), len};
    return b;
}

/* DER tag + length + contents (lengths below 64 KiB). */
static bytes wrap(unsigned char tag, bytes in)
{
    bytes b;
    size_t hdr = in.len < 0x80 ? 2 : in.len < 0x100 ? 3 : 4;

    b.len = hdr + in.len;
    b.buf = apr_palloc(kd_test_pool, b.len);
    b.buf[0] = tag;
    if (hdr == 2)
        b.buf[1] = (unsigned char)in.len;
    else if (hdr == 3) {
        b.buf[1] = 0x81;
        b.buf[2] = (unsigned char)in.len;
    }
    else {
        b.buf[1] = 0x82;
        b.buf[2] = (unsigned char)(in.len >> 8);
        b.buf[3] = (unsigned char)in.len;
    }
    memcpy(b.buf + hdr, in.buf, in.len);
    return b;
}

static bytes cat(bytes a, bytes b)
{
    bytes c = {apr_palloc(kd_test_pool, a.len + b.len + 1), a.len + b.len};
    memcpy(c.buf, a.buf, a.len);
    memcpy(c.buf + a.len, b.buf, b.len);
    return c;
}

static const unsigned char OID_SPNEGO[] = {0x06, 0x06, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x02};
static const unsigned char OID_NTLM[] = {0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01,
                                         0x82, 0x37, 0x02, 0x02, 0x0a};

static bytes ntlm_message(int type)
{
    unsigned char m[32] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0, (unsigned char)type, 0, 0, 0,
                           0x07, 0x82, 0x08, 0xa2};
    return raw(m, sizeof(m));
}

/* SPNEGO NegTokenInit offering only NTLM, optionally with an NTLMSSP token. */
static bytes spnego_ntlm_only(int with_token)
{
    bytes mechs = wrap(0xa0, wrap(0x30, raw(OID_NTLM, sizeof(OID_NTLM))));
    bytes body = with_token ? cat(mechs, wrap(0xa2, wrap(0x04, ntlm_message(1)))) : mechs;
    return wrap(0x60, cat(raw(OID_SPNEGO, sizeof(OID_SPNEGO)), wrap(0xa0, wrap(0x30, body))));
}

static bytes vector(const char *name)
{
    const char *b64 = kd_test_vector(name);
    bytes b;

    ck_assert_int_eq(kd_b64_decode(kd_test_pool, b64, strlen(b64), KD_TOKEN_MAX_BYTES, &b.buf,
                                   &b.len), KD_B64_OK);
    return b;
}

static kd_cause sniff(bytes b, kd_token_info *info)
{
    kd_result res;

    kd_result_init(&res);
    return kd_token_sniff(kd_test_pool, b.buf, b.len, info, &res);
}

static kd_cause header(const char *value, size_t *len)
{
    kd_result res;
    unsigned char *tok;

    kd_result_init(&res);
    return kd_token_from_header(kd_test_pool, value, &tok, len, &res);
}

/* ------------------------------------------------------------ header */

START_TEST(header_schemes)
{
    size_t len;

    ck_assert_int_eq(header(NULL, &len), KD_CAUSE_NO_TOKEN);
    ck_assert_int_eq(header("", &len), KD_CAUSE_NO_TOKEN);
    ck_assert_int_eq(header("Basic YWxpY2U6cHc=", &len), KD_CAUSE_NO_TOKEN);
    ck_assert_int_eq(header("Negotiate", &len), KD_CAUSE_MALFORMED_TOKEN);
    ck_assert_int_eq(header("Negotiate   ", &len), KD_CAUSE_MALFORMED_TOKEN);
    ck_assert_int_eq(header("NegotiateX Zm9v", &len), KD_CAUSE_NO_TOKEN);
    ck_assert_int_eq(header("NTLM TlRMTVNTUAABAAAA", &len), KD_CAUSE_NTLM_OFFERED);
    ck_assert_int_eq(header("Negotiate Zm9vYmFy", &len), KD_CAUSE_NONE);
    ck_assert_uint_eq(len, 6);
    ck_assert_int_eq(header("negotiate \t Zm9vYmFy \t", &len), KD_CAUSE_NONE);
    ck_assert_uint_eq(len, 6);
}
END_TEST

START_TEST(header_malformed)
{
    size_t len, n = 100000;
    char *big = apr_palloc(kd_test_pool, n + 11);

    ck_assert_int_eq(header("Negotiate !!!!", &len), KD_CAUSE_MALFORMED_TOKEN);
    ck_assert_int_eq(header("Negotiate Zm9v, Negotiate YmFy", &len), KD_CAUSE_MALFORMED_TOKEN);
    ck_assert_int_eq(header("Negotiate Zm9vY", &len), KD_CAUSE_MALFORMED_TOKEN);
    memcpy(big, "Negotiate ", 10);
    memset(big + 10, 'Q', n);
    big[n + 10] = '\0';
    ck_assert_int_eq(header(big, &len), KD_CAUSE_MALFORMED_TOKEN);
}
END_TEST

/* ------------------------------------------------------------ NTLM */

START_TEST(raw_ntlmssp)
{
    kd_token_info info;

    ck_assert_int_eq(sniff(ntlm_message(1), &info), KD_CAUSE_NTLM_OFFERED);
    ck_assert_int_eq(info.frame, KD_FRAME_NTLMSSP);
    ck_assert_int_eq(info.ntlm_message_type, 1);
    ck_assert_int_eq(sniff(ntlm_message(3), &info), KD_CAUSE_NTLM_OFFERED);
    ck_assert_int_eq(info.ntlm_message_type, 3);
    ck_assert_int_eq(sniff(raw("NTLMSSP", 8), &info), KD_CAUSE_MALFORMED_TOKEN);
}
END_TEST

START_TEST(spnego_offering_only_ntlm)
{
    kd_token_info info;

    ck_assert_int_eq(sniff(spnego_ntlm_only(1), &info), KD_CAUSE_NTLM_OFFERED);
    ck_assert_int_eq(info.frame, KD_FRAME_SPNEGO_INIT);
    ck_assert_uint_eq(info.offered, KD_OFFER_NTLM);
    ck_assert_int_eq(info.inner, KD_MECH_NTLM);
    ck_assert_int_eq(info.ntlm_message_type, 1);
    ck_assert_int_eq(sniff(spnego_ntlm_only(0), &info), KD_CAUSE_NTLM_OFFERED);
    ck_assert_int_eq(info.has_ap_req, 0);
}
END_TEST

START_TEST(spnego_continuation_with_ntlm)
{
    kd_token_info info;
    bytes resp = wrap(0xa1, wrap(0x30, wrap(0xa2, wrap(0x04, ntlm_message(3)))));

    ck_assert_int_eq(sniff(resp, &info), KD_CAUSE_NTLM_OFFERED);
    ck_assert_int_eq(info.frame, KD_FRAME_SPNEGO_RESP);
    ck_assert_int_eq(info.ntlm_message_type, 3);
}
END_TEST

/* ------------------------------------------------------------ Kerberos */

/* The ticket kept as S4U2Proxy evidence is exactly the Ticket element,
 * inside the mechanism token: what krb5 decodes as the same ticket. */
static void check_evidence_ticket(const kd_token_info *info)
{
    krb5_context ctx;
    krb5_ticket *tkt = NULL;
    krb5_data der;
    kd_der el;
    char *server = NULL;

    ck_assert_ptr_nonnull(info->ticket);
    ck_assert_int_eq(kd_der_whole(info->ticket, info->ticket_len, &el), 0);
    ck_assert(kd_der_is(&el, KD_DER_APPLICATION, 1));
    ck_assert(info->ticket > info->krb5_token
              && info->ticket + info->ticket_len <= info->krb5_token + info->krb5_token_len);
    ck_assert(info->authenticator >= info->ticket + info->ticket_len);
    ck_assert_int_eq(krb5_init_context(&ctx), 0);
    der.data = (char *)info->ticket;
    der.length = (unsigned int)info->ticket_len;
    ck_assert_int_eq(krb5_decode_ticket(&der, &tkt), 0);
    ck_assert_int_eq(krb5_unparse_name(ctx, tkt->server, &server), 0);
    ck_assert_str_eq(server, "HTTP/node1.example.test@EXAMPLE.TEST");
    ck_assert_int_eq(tkt->enc_part.enctype, info->ticket_etype);
    krb5_free_unparsed_name(ctx, server);
    krb5_free_ticket(ctx, tkt);
    krb5_free_context(ctx);
}

static void check_node1_ticket(const kd_token_info *info)
{
    ck_assert_int_eq(info->has_ap_req, 1);
    ck_assert_str_eq(info->ticket_sname, "HTTP/node1.example.test");
    ck_assert_str_eq(info->ticket_realm, "EXAMPLE.TEST");
    ck_assert_int_eq(info->mutual_required, 1);
    ck_assert_int_gt(info->ticket_kvno, 0);
    ck_assert_int_eq(info->ticket_etype, 18); /* aes256-cts-hmac-sha1-96 */
    ck_assert_ptr_nonnull(info->authenticator);
    ck_assert_uint_gt(info->authenticator_len, 16);
    ck_assert_str_eq(kd_token_ticket_principal(kd_test_pool, info),
                     "HTTP/node1.example.test@EXAMPLE.TEST");
    check_evidence_ticket(info);
}

START_TEST(spnego_kerberos)
{
    kd_token_info info;

    ck_assert_int_eq(sniff(vector("spnego_krb5.b64"), &info), KD_CAUSE_NONE);
    ck_assert_int_eq(info.frame, KD_FRAME_SPNEGO_INIT);
    ck_assert(info.offered & KD_OFFER_KRB5);
    ck_assert_int_eq(info.preferred, KD_MECH_KRB5);
    ck_assert_int_eq(info.inner, KD_MECH_KRB5);
    check_node1_ticket(&info);
}
END_TEST

/* The reply wraps the AP-REP for SPNEGO clients, naming their Kerberos OID. */
START_TEST(spnego_reply_is_accept_completed)
{
    static const unsigned char ap_rep[] = {0x6f, 0x03, 0x01, 0x02, 0x03};
    kd_token_info info;
    unsigned char *out;
    size_t len;
    kd_der resp, seq, f, oid, octets;
    int32_t state;

    ck_assert_int_eq(sniff(vector("spnego_krb5.b64"), &info), KD_CAUSE_NONE);
    ck_assert_ptr_nonnull(info.krb5_token);
    ck_assert_ptr_nonnull(info.krb5_oid);
    kd_token_reply(kd_test_pool, &info, ap_rep, sizeof(ap_rep), &out, &len);
    ck_assert_int_eq(kd_der_whole(out, len, &resp), 0);
    ck_assert(kd_der_is(&resp, KD_DER_CONTEXT, 1));
    ck_assert_int_eq(kd_der_whole(resp.val, resp.len, &seq), 0);
    ck_assert_int_eq(kd_der_field(&seq, 0, &f), 0);
    ck_assert(kd_der_is(&f, KD_DER_UNIVERSAL, 10) && f.len == 1);
    state = f.val[0];
    ck_assert_int_eq(state, 0); /* accept-completed */
    ck_assert_int_eq(kd_der_field(&seq, 1, &oid), 0);
    ck_assert_uint_eq(oid.len, info.krb5_oid_len);
    ck_assert_mem_eq(oid.val, info.krb5_oid, oid.len);
    ck_assert_int_eq(kd_der_field(&seq, 2, &octets), 0);
    ck_assert_uint_eq(octets.len, sizeof(ap_rep));
    ck_assert_mem_eq(octets.val, ap_rep, sizeof(ap_rep));
    /* without an AP-REP (no mutual authentication) the token has no responseToken */
    kd_token_reply(kd_test_pool, &info, NULL, 0, &out, &len);
    ck_assert_int_eq(kd_der_whole(out, len, &resp), 0);
    ck_assert_int_eq(kd_der_whole(resp.val, resp.len, &seq), 0);
    ck_assert_int_ne(kd_der_field(&seq, 2, &octets), 0);
}
END_TEST

START_TEST(raw_reply_is_the_ap_rep)
{
    static const unsigned char ap_rep[] = {0x60, 0x02, 0x01, 0x02};
    kd_token_info info;
    unsigned char *out;
    size_t len;

    ck_assert_int_eq(sniff(vector("krb5_raw.b64"), &info), KD_CAUSE_NONE);
    ck_assert_ptr_eq(info.krb5_oid, NULL);
    kd_token_reply(kd_test_pool, &info, ap_rep, sizeof(ap_rep), &out, &len);
    ck_assert_uint_eq(len, sizeof(ap_rep));
    ck_assert_mem_eq(out, ap_rep, len);
    kd_token_reply(kd_test_pool, &info, NULL, 0, &out, &len);
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(out);
}
END_TEST

/* An AP-REP framed as the client's token was: 0x60, the same OID, 02 00;
 * a long AP-REP gets a long-form length; no OID or an oversized AP-REP
 * is refused. */
START_TEST(ap_rep_is_framed_like_the_token)
{
    static const unsigned char small[] = {0x6f, 0x03, 0x30, 0x01, 0x00};
    static unsigned char big[300], huge[0xf001];
    kd_token_info info, none;
    unsigned char *out;
    size_t len, oid_len;

    ck_assert_int_eq(sniff(vector("krb5_raw.b64"), &info), KD_CAUSE_NONE);
    oid_len = info.krb5_token_oid_len;
    ck_assert_uint_eq(oid_len, 9);
    ck_assert_int_eq(kd_token_frame_ap_rep(kd_test_pool, &info, small, sizeof(small), &out, &len),
                     0);
    ck_assert_uint_eq(len, 2 + 2 + oid_len + 2 + sizeof(small));
    ck_assert_uint_eq(out[0], 0x60);
    ck_assert_uint_eq(out[1], len - 2);
    ck_assert_uint_eq(out[2], 0x06);
    ck_assert_mem_eq(out + 4, info.krb5_token_oid, oid_len);
    ck_assert_uint_eq(out[4 + oid_len], 0x02);
    ck_assert_uint_eq(out[5 + oid_len], 0x00);
    ck_assert_mem_eq(out + 6 + oid_len, small, sizeof(small));
    ck_assert_int_eq(kd_token_frame_ap_rep(kd_test_pool, &info, big, sizeof(big), &out, &len), 0);
    ck_assert_uint_eq(out[1], 0x82);
    ck_assert_uint_eq(((size_t)out[2] << 8 | out[3]), len - 4);
    ck_assert_int_eq(kd_token_frame_ap_rep(kd_test_pool, &info, huge, sizeof(huge), &out, &len),
                     -1);
    ck_assert_ptr_null(out);
    memset(&none, 0, sizeof(none));
    ck_assert_int_eq(kd_token_frame_ap_rep(kd_test_pool, &none, small, sizeof(small), &out, &len),
                     -1);
}
END_TEST

/* What we send to back ends: the Kerberos token in a NegTokenInit that our
 * own sniffer (and any Negotiate server) reads back as the same ticket. */
START_TEST(spnego_wrap_round_trips)
{
    kd_token_info raw_info, wrapped_info;
    unsigned char *out;
    size_t len;
    bytes b;

    ck_assert_int_eq(sniff(vector("krb5_raw.b64"), &raw_info), KD_CAUSE_NONE);
    kd_token_spnego_wrap(kd_test_pool, raw_info.krb5_token, raw_info.krb5_token_len, &out, &len);
    b.buf = out;
    b.len = len;
    ck_assert_int_eq(sniff(b, &wrapped_info), KD_CAUSE_NONE);
    ck_assert_int_eq(wrapped_info.frame, KD_FRAME_SPNEGO_INIT);
    ck_assert_uint_eq(wrapped_info.offered, KD_OFFER_KRB5);
    ck_assert_uint_eq(wrapped_info.krb5_token_len, raw_info.krb5_token_len);
    ck_assert_mem_eq(wrapped_info.krb5_token, raw_info.krb5_token, raw_info.krb5_token_len);
    check_node1_ticket(&wrapped_info);
}
END_TEST

START_TEST(raw_kerberos)
{
    kd_token_info info;

    ck_assert_int_eq(sniff(vector("krb5_raw.b64"), &info), KD_CAUSE_NONE);
    ck_assert_int_eq(info.frame, KD_FRAME_KRB5);
    ck_assert_ptr_nonnull(info.krb5_token);
    check_node1_ticket(&info);
}
END_TEST

/* Every prefix of a real token must be refused, none read past the end
 * (the fuzzers and ASan runs go further; this is the cheap always-on
 * version). Each prefix is copied to a heap block of exactly its size. */
START_TEST(truncations_are_malformed)
{
    bytes full = vector("spnego_krb5.b64");
    kd_token_info info;
    size_t n;

    for (n = 0; n < full.len; n++) {
        unsigned char *copy = malloc(n ? n : 1);
        bytes cut = {copy, n};
        memcpy(copy, full.buf, n);
        ck_assert_msg(sniff(cut, &info) == KD_CAUSE_MALFORMED_TOKEN, "prefix %zu accepted", n);
        free(copy);
    }
}
END_TEST

START_TEST(bit_flips_never_crash)
{
    bytes full = vector("krb5_raw.b64");
    kd_token_info info;
    size_t i;
    int bit;

    for (i = 0; i < full.len; i++) {
        for (bit = 0; bit < 8; bit++) {
            kd_cause c;
            full.buf[i] ^= (unsigned char)(1 << bit);
            c = sniff(full, &info);
            ck_assert(c == KD_CAUSE_NONE || c == KD_CAUSE_MALFORMED_TOKEN
                      || c == KD_CAUSE_NTLM_OFFERED);
            if (c == KD_CAUSE_NONE)
                ck_assert_ptr_nonnull(info.ticket_sname);
            full.buf[i] ^= (unsigned char)(1 << bit);
        }
    }
}
END_TEST

START_TEST(junk_is_malformed)
{
    kd_token_info info;
    unsigned char *junk = apr_palloc(kd_test_pool, 65535);
    bytes b = {junk, 65535};
    size_t i;
    unsigned seed = 12345;

    for (i = 0; i < b.len; i++) {
        seed = seed * 1103515245u + 12345u;
        junk[i] = (unsigned char)(seed >> 16);
    }
    ck_assert_int_eq(sniff(b, &info), KD_CAUSE_MALFORMED_TOKEN);
    junk[0] = 0x60; /* looks like GSS framing, length nonsense */
    ck_assert_int_eq(sniff(b, &info), KD_CAUSE_MALFORMED_TOKEN);
    ck_assert_int_eq(sniff(raw("", 0), &info), KD_CAUSE_MALFORMED_TOKEN);
}
END_TEST

Suite *kd_token_suite(void)
{
    Suite *s = suite_create("kd_token");
    TCase *tc = tcase_create("token");

    tcase_add_checked_fixture(tc, kd_test_setup, kd_test_teardown);
    tcase_add_test(tc, header_schemes);
    tcase_add_test(tc, header_malformed);
    tcase_add_test(tc, raw_ntlmssp);
    tcase_add_test(tc, spnego_offering_only_ntlm);
    tcase_add_test(tc, spnego_continuation_with_ntlm);
    tcase_add_test(tc, spnego_kerberos);
    tcase_add_test(tc, raw_kerberos);
    tcase_add_test(tc, spnego_wrap_round_trips);
    tcase_add_test(tc, spnego_reply_is_accept_completed);
    tcase_add_test(tc, raw_reply_is_the_ap_rep);
    tcase_add_test(tc, ap_rep_is_framed_like_the_token);
    tcase_add_test(tc, truncations_are_malformed);
    tcase_add_test(tc, bit_flips_never_crash);
    tcase_add_test(tc, junk_is_malformed);
    suite_add_tcase(s, tc);
    return s;
}
