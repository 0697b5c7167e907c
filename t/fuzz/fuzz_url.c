/* The FQDN fallback's URL handling: Host headers, configured origins, the
 * kdeleg-return value, query surgery and the Location we build. Whatever
 * the input, a Location keeps the configured authority and carries no
 * byte that could end a header or a URL. */
#include "fuzz_common.h"
#include "kd_url.h"

static void check_location(const char *loc, const char *origin)
{
    size_t i;

    FUZZ_ASSERT(strncmp(loc, origin, strlen(origin)) == 0);
    FUZZ_ASSERT(loc[strlen(origin)] == '/');
    for (i = 0; loc[i]; i++)
        FUZZ_ASSERT((unsigned char)loc[i] > 0x20 && (unsigned char)loc[i] < 0x7f
                    && loc[i] != '"' && loc[i] != '<' && loc[i] != '>' && loc[i] != '\\');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    char *text = fuzz_string(p, data, size), *q = strchr(text, '?');
    const char *host, *value, *rest, *decoded;
    kd_origin o;
    int port;

    if (kd_host_header_split(p, text, &host, &port) == 0)
        FUZZ_ASSERT(kd_url_host_valid(host) && port >= 0 && port <= 65535);
    if (kd_origin_parse(p, text, &o) == NULL) {
        const char *origin = kd_origin_unparse(p, &o, "https");
        FUZZ_ASSERT(kd_url_host_valid(o.host));
        check_location(kd_url_build(p, origin, "/x", NULL), origin);
    }
    if (q)
        *q++ = '\0';
    rest = kd_query_take(p, q, KD_RETURN_PARAM, &value);
    FUZZ_ASSERT(rest == NULL || (strncmp(rest, KD_RETURN_PARAM "=", 14) != 0
                                 && strstr(rest, "&" KD_RETURN_PARAM "=") == NULL));
    if (value && (decoded = kd_url_unescape(p, value)) != NULL)
        kd_origin_parse(p, decoded, &o);
    check_location(kd_url_build(p, "http://node1.example.test:8080", text, rest),
                   "http://node1.example.test:8080");
    kd_url_escape_component(p, text);
    apr_pool_destroy(p);
    return 0;
}
