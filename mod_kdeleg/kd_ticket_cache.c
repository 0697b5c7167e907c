#include "kd_ticket_cache.h"

#include <string.h>
#include <apr_strings.h>

struct kd_ticket_cache {
    unsigned char keys[KD_TICKET_CACHE_KEYS_MAX][KD_SEAL_KEY_BYTES];
    int n_keys;
    int max_lifetime; /* seconds from the ticket's start; 0 = none */
    kd_store store;
    volatile unsigned long hits, misses; /* statistics only: races are harmless */
};

kd_ticket_cache *kd_ticket_cache_create(apr_pool_t *p,
                                        const unsigned char (*keys)[KD_SEAL_KEY_BYTES],
                                        int n_keys, kd_store store)
{
    kd_ticket_cache *c = apr_pcalloc(p, sizeof(*c));
    int i;

    c->n_keys = n_keys < KD_TICKET_CACHE_KEYS_MAX ? n_keys : KD_TICKET_CACHE_KEYS_MAX;
    for (i = 0; i < c->n_keys; i++)
        memcpy(c->keys[i], keys[i], KD_SEAL_KEY_BYTES);
    c->store = store;
    return c;
}

void kd_ticket_cache_set_max_lifetime(kd_ticket_cache *c, int seconds)
{
    c->max_lifetime = seconds > 0 ? seconds : 0;
}

/* HMAC over the three names, NUL-separated so ("ab","c") != ("a","bc"). */
static void slot_id(const unsigned char *key, apr_pool_t *p, const char *user,
                    const char *impersonator, const char *target, unsigned char id[32])
{
    size_t a = strlen(user) + 1, b = strlen(impersonator) + 1, t = strlen(target);
    unsigned char *buf = apr_palloc(p, a + b + t);

    memcpy(buf, user, a);
    memcpy(buf + a, impersonator, b);
    memcpy(buf + a + b, target, t);
    kd_mac(key, buf, a + b + t, id);
}

/* The sealed value in the slot of (user, impersonator, target) under any
 * of the keys, opened: 1 and *plain, else 0. */
static int find_sealed(kd_ticket_cache *c, apr_pool_t *p, const char *user,
                       const char *impersonator, const char *target, unsigned char **plain,
                       size_t *plain_len)
{
    unsigned char id[32], *sealed;
    unsigned sealed_len;
    int i;

    for (i = 0; i < c->n_keys; i++) {
        slot_id(c->keys[i], p, user, impersonator, target, id);
        if (c->store.get(c->store.baton, p, id, sizeof(id), &sealed, &sealed_len)
            && kd_open(p, c->keys[i], id, sizeof(id), sealed, sealed_len, plain, plain_len) == 0)
            return 1;
    }
    return 0;
}

krb5_timestamp kd_ticket_cache_usable_until(const kd_ticket_cache *c, const krb5_creds *creds)
{
    krb5_timestamp start = creds->times.starttime ? creds->times.starttime
                                                  : creds->times.authtime;
    krb5_timestamp until = creds->times.endtime - KD_TICKET_MARGIN_SEC;

    if (c != NULL && c->max_lifetime > 0 && start + c->max_lifetime < until)
        until = start + c->max_lifetime;
    return until;
}

/* Still usable: a margin before it expires, and within the cache's own
 * maximum from its start. */
static int usable(const kd_ticket_cache *c, const krb5_creds *creds, krb5_timestamp now)
{
    return now < kd_ticket_cache_usable_until(c, creds);
}

int kd_ticket_cache_get(kd_ticket_cache *c, apr_pool_t *p, krb5_context ctx, const char *user,
                        const char *impersonator, const char *target, krb5_creds **creds)
{
    unsigned char *plain;
    size_t plain_len;
    krb5_data data;
    krb5_timestamp now;

    *creds = NULL;
    if (c == NULL)
        return 0;
    if (!find_sealed(c, p, user, impersonator, target, &plain, &plain_len)) {
        c->misses++;
        return 0;
    }
    data.data = (char *)plain;
    data.length = (unsigned int)plain_len;
    if (krb5_unmarshal_credentials(ctx, &data, creds) != 0)
        *creds = NULL;
    memset(plain, 0, plain_len); /* it held the ticket's session key */
    if (*creds == NULL || krb5_timeofday(ctx, &now) != 0 || !usable(c, *creds, now)) {
        if (*creds)
            krb5_free_creds(ctx, *creds);
        *creds = NULL;
        c->misses++;
        return 0;
    }
    c->hits++;
    return 1;
}

void kd_ticket_cache_put(kd_ticket_cache *c, apr_pool_t *p, krb5_context ctx, const char *user,
                         const char *impersonator, const char *target, krb5_creds *creds)
{
    unsigned char id[32], *sealed;
    size_t sealed_len;
    krb5_data *data = NULL;
    krb5_timestamp now;
    apr_int64_t keep;

    if (c == NULL) /* no cache configured: nothing to share */
        return;
    if (krb5_timeofday(ctx, &now) != 0 || !usable(c, creds, now))
        return;
    if (krb5_marshal_credentials(ctx, creds, &data) != 0)
        return;
    slot_id(c->keys[0], p, user, impersonator, target, id);
    /* The store forgets it when it is no longer usable, whichever comes
     * first: the ticket's end (less the margin) or the cache's maximum. */
    keep = (apr_int64_t)(kd_ticket_cache_usable_until(c, creds) - now);
    if (kd_seal(p, c->keys[0], id, sizeof(id), (unsigned char *)data->data, data->length, &sealed,
                &sealed_len) == 0)
        c->store.put(c->store.baton, p, id, sizeof(id), apr_time_now() + apr_time_from_sec(keep),
                     sealed, (unsigned)sealed_len);
    /* the marshalled ticket holds its session key: wipe before freeing */
    memset(data->data, 0, data->length);
    krb5_free_data(ctx, data);
}

void kd_ticket_cache_stats(const kd_ticket_cache *c, unsigned long *hits, unsigned long *misses)
{
    *hits = c->hits;
    *misses = c->misses;
}

/* Facts live in their own slots: HMAC("fact", name), sealed like tickets. */
void kd_ticket_cache_note(kd_ticket_cache *c, apr_pool_t *p, const char *fact, int lifetime)
{
    unsigned char id[32], *sealed;
    size_t sealed_len;

    slot_id(c->keys[0], p, "\001" "fact", fact, "", id);
    if (kd_seal(p, c->keys[0], id, sizeof(id), (const unsigned char *)"1", 1, &sealed,
                &sealed_len) == 0)
        c->store.put(c->store.baton, p, id, sizeof(id),
                     apr_time_now() + apr_time_from_sec(lifetime), sealed, (unsigned)sealed_len);
}

int kd_ticket_cache_noted(kd_ticket_cache *c, apr_pool_t *p, const char *fact)
{
    unsigned char *plain;
    size_t plain_len;

    return find_sealed(c, p, "\001" "fact", fact, "", &plain, &plain_len);
}
