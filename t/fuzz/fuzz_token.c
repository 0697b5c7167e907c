/* Client bytes in the Authorization header: header parsing, base64,
 * SPNEGO / Kerberos / NTLMSSP sniffing, the ticket's names, the reply
 * builder. First byte: 0 = the input is the header value, else it is the
 * decoded token itself (so the fuzzer reaches the DER code directly).
 * The same DER bytes are also read as a KDC error's e-data (the NTSTATUS
 * a password check looks for: bytes from the network, unauthenticated).
 * They are also read as an authenticator's RFC 4121 checksum (decrypted,
 * but the client chose every byte of it). */
#include "fuzz_common.h"
#include "kd_apreq.h"
#include "kd_password.h"
#include "kd_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    unsigned char *tok = NULL, *wire;
    size_t len = 0, wire_len;
    kd_token_info info;
    kd_result res;
    kd_cause c;

    kd_result_init(&res);
    if (size > 0 && data[0] == 0) {
        c = kd_token_from_header(p, fuzz_string(p, data + 1, size - 1), &tok, &len, &res);
        FUZZ_ASSERT(c != KD_CAUSE_NONE || (tok != NULL && len <= KD_TOKEN_MAX_BYTES));
    }
    else if (size > 1) {
        tok = (unsigned char *)apr_pmemdup(p, data + 1, size - 1);
        len = size - 1;
        c = KD_CAUSE_NONE;
    }
    else
        c = KD_CAUSE_NO_TOKEN;
    if (size > 1 && data[0] != 0) {
        static const unsigned char cb_md5[16] = {1, 2, 3};
        unsigned flags;
        int bound, rv = kd_apreq_gss_checksum(tok, len, data[0] & 1 ? cb_md5 : NULL, &flags,
                                              &bound);
        FUZZ_ASSERT(rv == 0 || rv == -1 || rv == -2);
        FUZZ_ASSERT(rv != 0 || (len >= 24 && !(bound && !(data[0] & 1))));
    }
    if (size > 1 && data[0] != 0) {
        uint32_t nt = kd_password_ntstatus(data + 1, size - 1);
        /* a status is only ever found in the shape that carries one */
        FUZZ_ASSERT(nt == 0 || size - 1 >= 13);
    }
    if (c == KD_CAUSE_NONE && kd_token_sniff(p, tok, len, &info, &res) == KD_CAUSE_NONE) {
        FUZZ_ASSERT(info.has_ap_req);
        FUZZ_ASSERT(info.krb5_token >= tok && info.krb5_token + info.krb5_token_len <= tok + len);
        FUZZ_ASSERT(kd_token_ticket_principal(p, &info) != NULL);
        /* the reply builder with an arbitrary "AP-REP" */
        kd_token_reply(p, &info, tok, len > 64 ? 64 : len, &wire, &wire_len);
    }
    apr_pool_destroy(p);
    return 0;
}
