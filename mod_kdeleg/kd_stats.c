#include "kd_stats.h"

#include <stdatomic.h>
#include <string.h>

#define STATS_MAGIC 0x6b647374u /* "kdst" */

typedef struct {
    atomic_uint seq; /* odd while the record is being written */
    kd_failure_record rec;
} ring_slot;

typedef struct {
    atomic_uint state; /* 0 free, 1 being named, 2 named */
    char target[KD_STATS_NAME];
    atomic_llong last_ok, last_failure;
    atomic_int last_cause;
    atomic_ulong ok, failed;
} target_slot;

struct kd_stats {
    unsigned magic;
    atomic_ulong counters[KD_STAT__COUNT];
    atomic_ulong failures[KD_CAUSE__COUNT];
    atomic_ulong ring_next;
    atomic_llong last_turn;
    ring_slot ring[KD_STATS_RECENT];
    target_slot targets[KD_STATS_TARGETS];
};

static const char *const stat_names[KD_STAT__COUNT] = {
    "auth_ok",          "auth_failed",          "session_ok",        "s4u2self_ok",
    "s4u2proxy_ok",     "fqdn_redirects",       "ticket_cache_hits", "ticket_cache_misses",
    "transfers_redeemed", "session_logouts", "sessions_too_large", "health_ok",
    "health_unavailable", "channel_bound_logins", "channel_unbound_logins",
};

const char *kd_stat_name(kd_stat s)
{
    return (unsigned)s < KD_STAT__COUNT ? stat_names[s] : "unknown";
}

size_t kd_stats_size(void)
{
    return sizeof(kd_stats);
}

kd_stats *kd_stats_init(void *mem, size_t size)
{
    kd_stats *st = mem;

    if (mem == NULL || size < sizeof(kd_stats))
        return NULL;
    memset(mem, 0, sizeof(kd_stats));
    st->magic = STATS_MAGIC;
    return st;
}

kd_stats *kd_stats_attach(void *mem)
{
    kd_stats *st = mem;

    return st && st->magic == STATS_MAGIC ? st : NULL;
}

/* Bounded copy that leaves the last byte of dst alone: the block starts
 * zeroed, so every field stays terminated even if two writers collide. */
static void put_name(char *dst, const char *src)
{
    size_t n = src ? strlen(src) : 0;

    if (n > KD_STATS_NAME - 2)
        n = KD_STATS_NAME - 2;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void kd_stats_count(kd_stats *st, kd_stat which)
{
    if (st && (unsigned)which < KD_STAT__COUNT)
        atomic_fetch_add_explicit(&st->counters[which], 1, memory_order_relaxed);
}

void kd_stats_failure(kd_stats *st, kd_cause cause, long long now, const char *vhost,
                      const char *client, const char *spn)
{
    ring_slot *slot;

    if (st == NULL || (unsigned)cause >= KD_CAUSE__COUNT)
        return;
    atomic_fetch_add_explicit(&st->failures[cause], 1, memory_order_relaxed);
    slot = &st->ring[atomic_fetch_add(&st->ring_next, 1) % KD_STATS_RECENT];
    atomic_fetch_add_explicit(&slot->seq, 1, memory_order_acq_rel);
    slot->rec.time = now;
    slot->rec.cause = cause;
    put_name(slot->rec.vhost, vhost);
    put_name(slot->rec.client, client);
    put_name(slot->rec.spn, spn);
    atomic_fetch_add_explicit(&slot->seq, 1, memory_order_release);
}

static target_slot *target_slot_for(kd_stats *st, const char *target)
{
    int i;

    for (i = 0; i < KD_STATS_TARGETS; i++) {
        target_slot *t = &st->targets[i];
        unsigned state = atomic_load(&t->state);
        if (state == 2 && strncmp(t->target, target, KD_STATS_NAME - 2) == 0)
            return t;
        if (state == 0) {
            unsigned expected = 0;
            if (atomic_compare_exchange_strong(&t->state, &expected, 1)) {
                put_name(t->target, target);
                atomic_store(&t->state, 2);
                return t;
            }
            if (expected == 2 && strncmp(t->target, target, KD_STATS_NAME - 2) == 0)
                return t;
        }
    }
    return NULL; /* table full: the counters still count */
}

void kd_stats_target(kd_stats *st, const char *target, kd_cause cause, long long now)
{
    target_slot *t;

    if (st == NULL || target == NULL || (t = target_slot_for(st, target)) == NULL)
        return;
    if (cause == KD_CAUSE_NONE) {
        atomic_store(&t->last_ok, now);
        atomic_fetch_add(&t->ok, 1);
    }
    else {
        atomic_store(&t->last_cause, (int)cause);
        atomic_store(&t->last_failure, now);
        atomic_fetch_add(&t->failed, 1);
    }
}

int kd_stats_take_turn(kd_stats *st, long long now, int interval)
{
    long long last;

    if (st == NULL)
        return 1;
    last = atomic_load(&st->last_turn);
    if (last != 0 && now - last < interval && now >= last)
        return 0;
    return atomic_compare_exchange_strong(&st->last_turn, &last, now);
}

unsigned long kd_stats_get(const kd_stats *st, kd_stat which)
{
    if (st == NULL || (unsigned)which >= KD_STAT__COUNT)
        return 0;
    return atomic_load_explicit(&((kd_stats *)st)->counters[which], memory_order_relaxed);
}

unsigned long kd_stats_failures(const kd_stats *st, kd_cause cause)
{
    if (st == NULL || (unsigned)cause >= KD_CAUSE__COUNT)
        return 0;
    return atomic_load_explicit(&((kd_stats *)st)->failures[cause], memory_order_relaxed);
}

/* A consistent copy of one slot, or 0 when a writer keeps it busy. */
static int read_slot(ring_slot *slot, kd_failure_record *out)
{
    int tries;

    for (tries = 0; tries < 4; tries++) {
        unsigned before = atomic_load_explicit(&slot->seq, memory_order_acquire);
        if (before & 1)
            continue;
        memcpy(out, &slot->rec, sizeof(*out));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&slot->seq, memory_order_relaxed) == before)
            return before != 0; /* 0: never written */
    }
    return 0;
}

int kd_stats_recent(const kd_stats *cst, kd_failure_record *out, int max)
{
    kd_stats *st = (kd_stats *)cst;
    unsigned long next, i;
    int n = 0;

    if (st == NULL)
        return 0;
    next = atomic_load(&st->ring_next);
    for (i = 1; i <= KD_STATS_RECENT && i <= next && n < max; i++) {
        if (read_slot(&st->ring[(next - i) % KD_STATS_RECENT], &out[n])
            && (unsigned)out[n].cause < KD_CAUSE__COUNT) {
            out[n].vhost[KD_STATS_NAME - 1] = out[n].client[KD_STATS_NAME - 1] = '\0';
            out[n].spn[KD_STATS_NAME - 1] = '\0';
            n++;
        }
    }
    return n;
}

int kd_stats_targets(const kd_stats *cst, kd_target_record *out, int max)
{
    kd_stats *st = (kd_stats *)cst;
    int i, n = 0;

    for (i = 0; st && i < KD_STATS_TARGETS && n < max; i++) {
        target_slot *t = &st->targets[i];
        if (atomic_load(&t->state) != 2)
            continue;
        memcpy(out[n].target, t->target, KD_STATS_NAME);
        out[n].target[KD_STATS_NAME - 1] = '\0';
        out[n].last_ok = atomic_load(&t->last_ok);
        out[n].last_failure = atomic_load(&t->last_failure);
        out[n].last_cause = (kd_cause)atomic_load(&t->last_cause);
        out[n].ok = atomic_load(&t->ok);
        out[n].failed = atomic_load(&t->failed);
        n++;
    }
    return n;
}
