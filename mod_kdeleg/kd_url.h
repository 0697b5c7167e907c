/* kd_url: the URLs of the FQDN fallback. A client on a load-balanced
 * name that cannot use Kerberos there is sent to this node's own name and
 * back. Every authority in those redirects comes from the configuration
 * (KdelegNodeName, KdelegVirtualName), never from the request; the path
 * and query the client sent are re-escaped so that nothing in them can
 * change the target or inject a header. */
#ifndef KD_URL_H
#define KD_URL_H

#include <apr_pools.h>

/* The query parameter that carries the way back on the node leg. */
#define KD_RETURN_PARAM "kdeleg-return"
/* The hash of the virtual name's state cookie, carried on the node leg. */
#define KD_STATE_PARAM "kdeleg-state"
/* The one-time transfer token on the way back to the virtual name. It is
 * taken out of the request before any handler runs, and its presence
 * means "never send this request to the node again". */
#define KD_TRANSFER_PARAM "kdeleg-transfer"

typedef struct {
    const char *scheme; /* "http", "https", or NULL: the request's own */
    const char *host;   /* lower case, letters, digits, '-' and '.' only */
    int port;           /* 0: the scheme's default */
} kd_origin;

/* Is host a DNS name we would put in a Location header? */
int kd_url_host_valid(const char *host);

/* "node1.example.test", "node1.example.test:8080" or
 * "https://node1.example.test:8443" (nothing after the authority but an
 * optional "/"). NULL on success, else why not. */
const char *kd_origin_parse(apr_pool_t *p, const char *spec, kd_origin *out);

/* "scheme://host[:port]", the port left out when it is the default. */
const char *kd_origin_unparse(apr_pool_t *p, const kd_origin *o, const char *default_scheme);

/* Host header "name[:port]": 0 and the parts, -1 when it is not a plain
 * DNS name with an optional port. */
int kd_host_header_split(apr_pool_t *p, const char *header, const char **host, int *port);

/* Percent-encode every byte outside the characters a path (or a query,
 * which also keeps '?') may carry as they are; valid %XX escapes stay. */
char *kd_url_escape_path(apr_pool_t *p, const char *s);
char *kd_url_escape_query(apr_pool_t *p, const char *s);

/* Percent-encode everything but unreserved characters (a parameter value). */
char *kd_url_escape_component(apr_pool_t *p, const char *s);

/* Decode %XX; NULL when an escape is broken or decodes to a control byte. */
char *kd_url_unescape(apr_pool_t *p, const char *s);

/* query (may be NULL) without any parameter called name; *value (when
 * not NULL) receives the raw value of its last occurrence, or NULL. The
 * result is NULL when nothing is left. */
const char *kd_query_take(apr_pool_t *p, const char *query, const char *name,
                          const char **value);

/* origin + escaped path + ("?" escaped query when query is not empty). */
const char *kd_url_build(apr_pool_t *p, const char *origin, const char *path,
                         const char *query);

#endif
