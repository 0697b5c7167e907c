#include "kd_gss.h"

#include <string.h>
#include <apr_strings.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>

const char *kd_gss_buffer_str(apr_pool_t *p, const gss_buffer_desc *buf)
{
    if (buf == NULL || buf->value == NULL)
        return "";
    return apr_pstrmemdup(p, buf->value, buf->length);
}

static const char *status_messages(apr_pool_t *p, OM_uint32 code, int type)
{
    OM_uint32 min, ctx = 0;
    gss_buffer_desc msg = GSS_C_EMPTY_BUFFER;
    const char *all = NULL;
    int guard = 0;

    do {
        if (GSS_ERROR(gss_display_status(&min, code, type, GSS_C_NO_OID, &ctx, &msg)))
            break;
        all = all ? apr_pstrcat(p, all, ", ", kd_gss_buffer_str(p, &msg), NULL)
                  : kd_gss_buffer_str(p, &msg);
        gss_release_buffer(&min, &msg);
    } while (ctx != 0 && ++guard < 8);
    return all ? all : apr_psprintf(p, "status %u", (unsigned)code);
}

const char *kd_gss_error(apr_pool_t *p, OM_uint32 major, OM_uint32 minor)
{
    const char *text = status_messages(p, major, GSS_C_GSS_CODE);

    if (minor != 0)
        text = apr_pstrcat(p, text, "; ", status_messages(p, minor, GSS_C_MECH_CODE), NULL);
    return text;
}

const char *kd_gss_local_name(apr_pool_t *p, const char *principal)
{
    OM_uint32 major, minor;
    gss_buffer_desc in, out = GSS_C_EMPTY_BUFFER;
    gss_name_t name = GSS_C_NO_NAME;
    const char *local = NULL;

    in.value = (void *)principal;
    in.length = strlen(principal);
    major = gss_import_name(&minor, &in, GSS_KRB5_NT_PRINCIPAL_NAME, &name);
    if (!GSS_ERROR(major))
        major = gss_localname(&minor, name, gss_mech_krb5, &out);
    if (!GSS_ERROR(major) && out.length > 0)
        local = kd_gss_buffer_str(p, &out);
    gss_release_buffer(&minor, &out);
    gss_release_name(&minor, &name);
    return local;
}
