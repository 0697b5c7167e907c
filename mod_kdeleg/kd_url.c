#include "kd_url.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <apr_strings.h>

#define MAX_HOST 253

int kd_url_host_valid(const char *host)
{
    size_t n = host ? strlen(host) : 0, i;

    if (n == 0 || n > MAX_HOST || host[0] == '.' || host[0] == '-' || host[n - 1] == '-')
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '-' && c != '.')
            return 0;
        if (c == '.' && host[i + 1] == '.')
            return 0;
    }
    return 1;
}

static int parse_port(const char *s, int *port)
{
    char *end;
    long v;

    if (*s == '\0' || strlen(s) > 5 || !isdigit((unsigned char)*s))
        return -1;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

static char *lower(apr_pool_t *p, const char *s, size_t n)
{
    char *out = apr_pstrmemdup(p, s, n), *c;

    for (c = out; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return out;
}

/* name[:port] */
static int split_authority(apr_pool_t *p, const char *s, const char **host, int *port)
{
    const char *colon = strchr(s, ':');
    const char *name = lower(p, s, colon ? (size_t)(colon - s) : strlen(s));

    *port = 0;
    if (!kd_url_host_valid(name) || (colon && parse_port(colon + 1, port) != 0))
        return -1;
    *host = name;
    return 0;
}

int kd_host_header_split(apr_pool_t *p, const char *header, const char **host, int *port)
{
    if (header == NULL || strlen(header) > MAX_HOST + 6)
        return -1;
    return split_authority(p, header, host, port);
}

const char *kd_origin_parse(apr_pool_t *p, const char *spec, kd_origin *out)
{
    const char *rest = spec, *sep;
    char *authority;
    size_t n;

    memset(out, 0, sizeof(*out));
    if ((sep = strstr(spec, "://")) != NULL) {
        char *scheme = lower(p, spec, (size_t)(sep - spec));
        if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
            return apr_psprintf(p, "'%s': the scheme must be http or https", spec);
        out->scheme = scheme;
        rest = sep + 3;
    }
    n = strlen(rest);
    if (n > 0 && rest[n - 1] == '/')
        n--; /* "https://node1.example.test/" */
    authority = apr_pstrmemdup(p, rest, n);
    if (strpbrk(authority, "/?#@[]") != NULL
        || split_authority(p, authority, &out->host, &out->port) != 0)
        return apr_psprintf(p, "'%s' is not a host name with an optional scheme and port "
                            "(e.g. node1.example.test or https://node1.example.test:8443)",
                            spec);
    return NULL;
}

const char *kd_origin_unparse(apr_pool_t *p, const kd_origin *o, const char *default_scheme)
{
    const char *scheme = o->scheme ? o->scheme : default_scheme;
    int dflt = (strcmp(scheme, "https") == 0) ? 443 : 80;

    if (o->port == 0 || o->port == dflt)
        return apr_pstrcat(p, scheme, "://", o->host, NULL);
    return apr_psprintf(p, "%s://%s:%d", scheme, o->host, o->port);
}

/* ------------------------------------------------------------ escaping */

static int is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int is_hex(unsigned char c)
{
    return isxdigit(c) != 0;
}

/* keep: the reserved characters that stay as they are. */
static char *escape(apr_pool_t *p, const char *s, const char *keep, int keep_escapes)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, 3 * n + 1);

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (c != '\0' && c != '%' && strchr(keep, c) != NULL)
            || (keep_escapes && c == '%' && is_hex((unsigned char)s[i + 1])
                && is_hex((unsigned char)s[i + 2]))) {
            out[o++] = (char)c;
            continue;
        }
        out[o++] = '%';
        out[o++] = hex[c >> 4];
        out[o++] = hex[c & 15];
    }
    out[o] = '\0';
    return out;
}

char *kd_url_escape_path(apr_pool_t *p, const char *s)
{
    return escape(p, s, "/:@!$&'()*+,;=", 1);
}

char *kd_url_escape_query(apr_pool_t *p, const char *s)
{
    return escape(p, s, "/?:@!$&'()*+,;=", 1);
}

char *kd_url_escape_component(apr_pool_t *p, const char *s)
{
    return escape(p, s, "", 0);
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    return (tolower(c) - 'a') + 10;
}

char *kd_url_unescape(apr_pool_t *p, const char *s)
{
    size_t n = strlen(s), i, o = 0;
    char *out = apr_palloc(p, n + 1);

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (!is_hex((unsigned char)s[i + 1]) || !is_hex((unsigned char)s[i + 2]))
                return NULL;
            c = (unsigned char)(hex_value((unsigned char)s[i + 1]) * 16
                                + hex_value((unsigned char)s[i + 2]));
            i += 2;
        }
        if (c < 0x20 || c == 0x7f)
            return NULL;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return out;
}

const char *kd_query_take(apr_pool_t *p, const char *query, const char *name,
                          const char **value)
{
    size_t name_len = strlen(name);
    char *rest, *tok, *state = NULL;
    const char *kept = NULL;

    if (value)
        *value = NULL;
    if (query == NULL || *query == '\0')
        return NULL;
    rest = apr_pstrdup(p, query);
    for (tok = apr_strtok(rest, "&", &state); tok; tok = apr_strtok(NULL, "&", &state)) {
        if (strncmp(tok, name, name_len) == 0 && (tok[name_len] == '=' || tok[name_len] == '\0')) {
            if (value)
                *value = tok[name_len] == '=' ? tok + name_len + 1 : "";
            continue;
        }
        kept = kept ? apr_pstrcat(p, kept, "&", tok, NULL) : tok;
    }
    return kept;
}

const char *kd_url_build(apr_pool_t *p, const char *origin, const char *path,
                         const char *query)
{
    const char *escaped_path = (path && *path == '/') ? kd_url_escape_path(p, path) : "/";

    if (query == NULL || *query == '\0')
        return apr_pstrcat(p, origin, escaped_path, NULL);
    return apr_pstrcat(p, origin, escaped_path, "?", kd_url_escape_query(p, query), NULL);
}
