/* kd_escape: text from clients, keytabs and the configuration made safe
 * for the status page's three formats. Everything a client can influence
 * (Host header, names in tickets, cause details) passes through here. */
#ifndef KD_ESCAPE_H
#define KD_ESCAPE_H

#include <apr_pools.h>

/* A JSON string literal, quotes included. Control characters, quotes,
 * backslash and <, >, & (so the JSON can sit inside HTML) are escaped;
 * bytes that are not valid UTF-8 become U+FFFD. NULL gives null. */
char *kd_json_string(apr_pool_t *p, const char *s);

/* HTML text or attribute value: & < > " ' escaped, controls dropped,
 * invalid UTF-8 replaced. NULL gives "". */
char *kd_html(apr_pool_t *p, const char *s);

/* A Prometheus label value (without quotes): \ " and newline escaped. */
char *kd_prom_label(apr_pool_t *p, const char *s);

#endif
