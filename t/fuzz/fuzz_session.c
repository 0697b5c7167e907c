/* Session cookies: whatever a client sends as kdeleg_session must be
 * refused cleanly unless it is a cookie we sealed, and a cookie sealed
 * from any field values opens to the same values. */
#include "fuzz_common.h"
#include "kd_session.h"

#define KEYS "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8M=\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *err;
    const kd_session_keys *keys = kd_session_keys_parse(p, KEYS, sizeof(KEYS) - 1, &err);
    char *text = fuzz_string(p, data, size);
    kd_session s, out;
    const char *cookie;
    kd_session_status st;

    FUZZ_ASSERT(keys != NULL);
    st = kd_session_open(p, keys, "vip.example.test", text, 1800000000LL, &out);
    FUZZ_ASSERT(st != KD_SESSION_OK); /* forging one would be a finding */
    /* round trip with fields cut from the input */
    s.method = KD_SESSION_KERBEROS;
    s.issued = 1800000000LL;
    s.expires = s.issued + 60;
    s.principal = text;
    s.user = text + strlen(text) / 2;
    s.spn = "HTTP/vip.example.test@EXAMPLE.TEST";
    cookie = kd_session_seal(p, keys, "vip.example.test", &s);
    if (cookie) {
        FUZZ_ASSERT(kd_session_open(p, keys, "vip.example.test", cookie, s.issued, &out)
                    == KD_SESSION_OK);
        FUZZ_ASSERT(strcmp(out.principal, s.principal) == 0 && strcmp(out.user, s.user) == 0);
        FUZZ_ASSERT(kd_session_open(p, keys, "other.example.test", cookie, s.issued, &out)
                    == KD_SESSION_BAD_SEAL);
    }
    /* the input as a key file */
    kd_session_keys_parse(p, (const char *)data, size, &err);
    apr_pool_destroy(p);
    return 0;
}
