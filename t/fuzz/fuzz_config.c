/* Directive values parsed by the core: service principal names
 * (KdelegServiceNames, KdelegDelegateTo), node and virtual names
 * (KdelegNodeName), key files (KdelegSessionKeyFile), base64. */
#include "fuzz_common.h"
#include "kd_base64.h"
#include "kd_escape.h"
#include "kd_session.h"
#include "kd_spn.h"
#include "kd_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *text = fuzz_string(p, data, size);
    const char *err;
    kd_spn spn;
    kd_origin o;
    unsigned char *raw;
    size_t raw_len;

    if (kd_spn_parse(p, text, &spn) == NULL) {
        kd_spn again;
        const char *printed = kd_spn_unparse(p, &spn);
        FUZZ_ASSERT(kd_spn_parse(p, printed, &again) == NULL); /* printing round-trips */
        FUZZ_ASSERT(strcmp(kd_spn_unparse(p, &again), printed) == 0);
    }
    kd_origin_parse(p, text, &o);
    kd_session_keys_parse(p, (const char *)data, size, &err);
    if (kd_b64_decode(p, text, strlen(text), 4096, &raw, &raw_len) == KD_B64_OK)
        FUZZ_ASSERT(raw_len <= 4096);
    kd_json_string(p, text);
    kd_html(p, text);
    kd_prom_label(p, text);
    apr_pool_destroy(p);
    return 0;
}
