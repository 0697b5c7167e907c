#include "kd_spn.h"

#include <string.h>
#include <apr_strings.h>

static int valid_part(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > 255)
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || c == '/' || c == '@' || c == '\\')
            return 0;
    }
    return 1;
}

const char *kd_spn_parse(apr_pool_t *p, const char *text, kd_spn *out)
{
    const char *slash, *at;

    memset(out, 0, sizeof(*out));
    if (text == NULL || *text == '\0')
        return "empty service principal name";
    slash = strchr(text, '/');
    if (slash == NULL)
        return apr_psprintf(p, "'%s' is not of the form service/host[@REALM]", text);
    at = strchr(slash + 1, '@');
    if (!valid_part(text, (size_t)(slash - text)))
        return apr_psprintf(p, "'%s': invalid service part", text);
    if (!valid_part(slash + 1, at ? (size_t)(at - slash - 1) : strlen(slash + 1)))
        return apr_psprintf(p, "'%s': invalid host part", text);
    if (at && !valid_part(at + 1, strlen(at + 1)))
        return apr_psprintf(p, "'%s': invalid realm", text);
    out->service = apr_pstrmemdup(p, text, (size_t)(slash - text));
    out->host = at ? apr_pstrmemdup(p, slash + 1, (size_t)(at - slash - 1)) : apr_pstrdup(p, slash + 1);
    out->realm = at ? apr_pstrdup(p, at + 1) : NULL;
    return NULL;
}

const char *kd_spn_unparse(apr_pool_t *p, const kd_spn *spn)
{
    if (spn->realm)
        return apr_pstrcat(p, spn->service, "/", spn->host, "@", spn->realm, NULL);
    return apr_pstrcat(p, spn->service, "/", spn->host, NULL);
}

int kd_spn_matches(const kd_spn *spn, const char *sname, const char *realm)
{
    size_t slen = strlen(spn->service);
    const char *host;

    if (sname == NULL || strncasecmp(sname, spn->service, slen) != 0 || sname[slen] != '/')
        return 0;
    host = sname + slen + 1;
    if (strcasecmp(host, spn->host) != 0)
        return 0;
    return spn->realm == NULL || (realm != NULL && strcasecmp(realm, spn->realm) == 0);
}
