#include "kd_identity.h"

#include <string.h>
#include <strings.h>

#define ANON_NAME "WELLKNOWN/ANONYMOUS"
#define ANON_REALM "WELLKNOWN:ANONYMOUS"

const char *kd_principal_realm(const char *principal)
{
    const char *at = principal ? strrchr(principal, '@') : NULL;

    return at ? at + 1 : NULL;
}

int kd_principal_is_anonymous(const char *principal)
{
    const char *realm = kd_principal_realm(principal);
    size_t n = strlen(ANON_NAME);

    if (principal == NULL)
        return 0;
    if (realm && strcasecmp(realm, ANON_REALM) == 0)
        return 1;
    /* the name part alone: "WELLKNOWN/ANONYMOUS@REALM" (partially anonymous) */
    return strncasecmp(principal, ANON_NAME, n) == 0 && (principal[n] == '@' || principal[n] == 0);
}

int kd_realm_allowed(const char *realm, const apr_array_header_t *realms)
{
    int i;

    if (realms == NULL)
        return 1;
    for (i = 0; i < realms->nelts; i++) {
        const char *allowed = APR_ARRAY_IDX(realms, i, const char *);
        if (strcmp(allowed, "*") == 0 || (realm && strcmp(allowed, realm) == 0))
            return 1;
    }
    return 0;
}

int kd_auth_type_trusted(const char *auth_type, const apr_array_header_t *extra)
{
    static const char *const checked_password[] = {"Basic", "Form"};
    size_t i;
    int j;

    if (auth_type == NULL || *auth_type == '\0')
        return 0;
    for (i = 0; i < sizeof(checked_password) / sizeof(checked_password[0]); i++)
        if (strcasecmp(auth_type, checked_password[i]) == 0)
            return 1;
    for (j = 0; extra && j < extra->nelts; j++)
        if (strcasecmp(auth_type, APR_ARRAY_IDX(extra, j, const char *)) == 0)
            return 1;
    return 0;
}
