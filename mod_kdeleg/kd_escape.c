#include "kd_escape.h"

#include <stdio.h>
#include <string.h>
#include <apr_strings.h>

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n, i;
    unsigned cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4, cp = s[0] & 0x07;
    else
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* no overlong forms, no surrogates, nothing past U+10FFFF */
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && cp < 0x10000)
        || cp > 0x10ffff)
        return 0;
    return n;
}

#define REPLACEMENT "\xef\xbf\xbd"

char *kd_json_string(apr_pool_t *p, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n, i, o = 0, step;
    char *out;

    if (s == NULL)
        return apr_pstrdup(p, "null");
    n = strlen(s);
    out = apr_palloc(p, 6 * n + 3);
    out[o++] = '"';
    for (i = 0; i < n; i += step) {
        unsigned char c = u[i];
        step = 1;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        }
        else if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&') {
            o += (size_t)snprintf(out + o, 7, "\\u%04x", c);
        }
        else if (c < 0x80)
            out[o++] = (char)c;
        else if ((step = utf8_len(u + i)) > 0) {
            memcpy(out + o, u + i, step);
            o += step;
        }
        else {
            memcpy(out + o, REPLACEMENT, 3);
            o += 3;
            step = 1;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

char *kd_html(apr_pool_t *p, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n, i, o = 0, step;
    char *out;

    if (s == NULL)
        return apr_pstrdup(p, "");
    n = strlen(s);
    out = apr_palloc(p, 6 * n + 1);
    for (i = 0; i < n; i += step) {
        unsigned char c = u[i];
        const char *ent = NULL;
        step = 1;
        switch (c) {
        case '&': ent = "&amp;"; break;
        case '<': ent = "&lt;"; break;
        case '>': ent = "&gt;"; break;
        case '"': ent = "&quot;"; break;
        case '\'': ent = "&#39;"; break;
        default: break;
        }
        if (ent) {
            memcpy(out + o, ent, strlen(ent));
            o += strlen(ent);
        }
        else if (c < 0x20 || c == 0x7f)
            continue; /* controls have no business on the page */
        else if (c < 0x80)
            out[o++] = (char)c;
        else if ((step = utf8_len(u + i)) > 0) {
            memcpy(out + o, u + i, step);
            o += step;
        }
        else {
            memcpy(out + o, REPLACEMENT, 3);
            o += 3;
            step = 1;
        }
    }
    out[o] = '\0';
    return out;
}

char *kd_prom_label(apr_pool_t *p, const char *s)
{
    size_t n = s ? strlen(s) : 0, i, o = 0;
    char *out = apr_palloc(p, 2 * n + 1);

    for (i = 0; i < n; i++) {
        if (s[i] == '\\' || s[i] == '"') {
            out[o++] = '\\';
            out[o++] = s[i];
        }
        else if (s[i] == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        }
        else if ((unsigned char)s[i] >= 0x20 && s[i] != 0x7f)
            out[o++] = s[i];
    }
    out[o] = '\0';
    return out;
}
