/* plan.c: shards, the epoch order and per-rank shares (docs/dataset.md,
 * "Shards", "The epoch order", "Distributions").
 *
 * Invariants of an s3s_plan: first[0] = 0 < first[1] < ... < first[n] =
 * snapshot count (shard i is entries [first[i], first[i+1])), or first is NULL
 * when every shard is one entry (shard i is entry i); order is a
 * permutation of 0..n-1. Memory: 4 bytes per shard, 8 when objects are packed. */
#include "common/dataset/errinfo.h"
#include "common/dataset/snapshot.h"

#include "s3shard/dataset.h"
#include "s3shard/error.h"

#include <stdlib.h>
#include <string.h>

#define MAX_PER_SHARD 65536u /* objects packed into one shard at most */

struct s3s_plan {
    const s3s_snapshot *snap;
    s3s_plan_opts opts;
    uint32_t n;
    uint32_t *first; /* n + 1 */
    uint32_t *order; /* n */
};

void s3s_plan_opts_init(s3s_plan_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->shard_target_bytes = 64ull << 20;
    o->distribution = S3S_DIST_FULLY_REPLICATED;
    o->balance = S3S_BALANCE_COUNT;
}

void s3s_plan_opts_from_channel(s3s_plan_opts *o, const s3s_channel *ch, uint64_t epoch)
{
    s3s_plan_opts_init(o);
    o->shard_target_bytes = ch->shard_target_bytes;
    o->shuffle = ch->shuffle;
    o->seed = ch->seed;
    o->epoch = epoch;
    o->distribution = ch->distribution;
    o->balance = ch->balance;
    o->records_per_shard = ch->records_per_shard;
}

/* records_per_shard: augmented-manifest records are packed by count (their
 * JSON size says nothing of the objects they reference). Automatic: count /
 * 1024 clamped to 1 .. 256, so a manifest of up to 2047 records keeps one
 * record per shard, and millions of records make thousands of shards. */
static uint64_t records_per_shard(const s3s_snapshot *s, uint32_t opt)
{
    if (opt > 0)
        return opt < MAX_PER_SHARD ? opt : MAX_PER_SHARD;
    uint64_t k = s->count / 1024;
    return k < 1 ? 1 : k > 256 ? 256 : k;
}

/* count_shards / cut: greedy packing in snapshot order. An object of at least
 * the target is a shard alone; smaller neighbours are packed while the sum
 * stays within the target. Records are packed by count: every shard holds
 * records_per_shard records, the last one the rest. */
static uint32_t cut(const s3s_snapshot *s, const s3s_plan_opts *o, uint32_t *first)
{
    uint64_t count = s->count, i = 0, target = o->shard_target_bytes;
    uint32_t n = 0;
    if (s->kind == S3S_SNAP_RECORDS) {
        uint64_t k = records_per_shard(s, o->records_per_shard);
        for (i = 0; i < count; i += k) {
            if (first != NULL)
                first[n] = (uint32_t)i;
            n++;
        }
        if (first != NULL)
            first[n] = (uint32_t)count;
        return n;
    }
    int pack = target > 0;
    if (!pack) { /* a shard per entry: no need to touch the records */
        for (i = 0; first != NULL && i <= count; i++)
            first[i] = (uint32_t)i;
        return (uint32_t)count;
    }
    while (i < count) {
        if (first != NULL)
            first[n] = (uint32_t)i;
        n++;
        uint64_t bytes = s->recs[i].size;
        uint64_t j = i + 1;
        if (bytes < target) {
            while (j < count && j - i < MAX_PER_SHARD && s->recs[j].size < target &&
                   bytes + s->recs[j].size <= target) {
                bytes += s->recs[j].size;
                j++;
            }
        }
        i = j;
    }
    if (first != NULL)
        first[n] = (uint32_t)count;
    return n;
}

int s3s_plan_create(s3s_plan **out, const s3s_snapshot *snap, const s3s_plan_opts *opts,
                    s3s_errinfo *e)
{
    *out = NULL;
    s3s_plan_opts def;
    if (opts == NULL) {
        s3s_plan_opts_init(&def);
        opts = &def;
    }
    if (snap->count > S3S__MAX_ENTRIES)
        return s3s__ei_set(e, S3S_ETOOBIG, "snapshot has more than 2^32-2 entries");
    s3s_plan *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    p->snap = snap;
    p->opts = *opts;
    p->n = cut(snap, opts, NULL);
    int packed = p->n != snap->count; /* else shard i is entry i: no table */
    if (packed)
        p->first = malloc(((size_t)p->n + 1) * sizeof(uint32_t));
    p->order = malloc(((size_t)p->n + 1) * sizeof(uint32_t));
    if ((packed && p->first == NULL) || p->order == NULL) {
        s3s_plan_destroy(p);
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory (%u shards)", p->n);
    }
    if (packed)
        cut(snap, opts, p->first);
    s3s_epoch_permutation(p->order, p->n, opts->shuffle, opts->seed, opts->epoch);
    *out = p;
    return 0;
}

void s3s_plan_destroy(s3s_plan *p)
{
    if (p == NULL)
        return;
    free(p->first);
    free(p->order);
    free(p);
}

size_t s3s_plan_shard_count(const s3s_plan *p)
{
    return p->n;
}

const uint32_t *s3s_plan_order(const s3s_plan *p)
{
    return p->order;
}

static uint32_t first_of(const s3s_plan *p, uint32_t id)
{
    return p->first != NULL ? p->first[id] : id;
}

static uint32_t count_of(const s3s_plan *p, uint32_t id)
{
    return p->first != NULL ? p->first[id + 1] - p->first[id] : 1;
}

static uint64_t shard_bytes(const s3s_plan *p, uint32_t id)
{
    if (p->first == NULL)
        return p->snap->recs[id].size;
    uint64_t b = 0;
    for (uint32_t i = p->first[id]; i < p->first[id + 1]; i++)
        b += p->snap->recs[i].size;
    return b;
}

int s3s_plan_shard(const s3s_plan *p, uint32_t id, s3s_shard *out)
{
    if (id >= p->n)
        return S3S_EINVAL;
    out->first = first_of(p, id);
    out->count = count_of(p, id);
    out->bytes = shard_bytes(p, id);
    return 0;
}

/* cut_spans: the ShardedByS3Key rule. Walking the epoch order with C the weight
 * before position pos and w its shard's weight, the shard goes to rank
 * floor((2C + w) * N / (2W)) (the rank whose equal slice of [0, W) holds the
 * shard's midpoint), clamped to N-1. Ranks are non-decreasing along the order,
 * so each share is one contiguous span. Weight is the object count, or the
 * bytes (the count when every object is empty). want < N: stop once that rank's
 * span is known (bounds[0..1] receive it); want == N: fill bounds[0..N]. */
static void cut_spans(const s3s_plan *p, uint32_t world, uint32_t want, uint64_t *bounds)
{
    int bytes = p->opts.balance == S3S_BALANCE_BYTES && p->snap->total_bytes > 0;
    unsigned __int128 total2 =
        2 * (unsigned __int128)(bytes ? p->snap->total_bytes : p->snap->count);
    unsigned __int128 c = 0;
    uint32_t next = 0; /* the next rank whose beginning is not known yet */
    uint64_t got_begin = 0;
    int have_begin = 0;
    /* Shard weights in shard order, gathered in one sequential pass: reading
     * them through the records in epoch order would miss the cache twice per
     * shard. Transient (8 bytes per shard); without it, read them directly. */
    uint64_t *wt = bytes ? malloc(((size_t)p->n + 1) * sizeof(*wt)) : NULL;
    for (uint32_t id = 0; wt != NULL && id < p->n; id++)
        wt[id] = shard_bytes(p, id);
    for (uint64_t pos = 0; pos < p->n; pos++) {
        uint32_t id = p->order[pos];
        if (pos + 16 < p->n) { /* weights are read in random order: fetch ahead */
            uint32_t ahead = p->order[pos + 16];
            if (wt != NULL)
                __builtin_prefetch(&wt[ahead]);
            else if (p->first != NULL)
                __builtin_prefetch(&p->first[ahead]);
        }
        uint64_t w = !bytes ? count_of(p, id) : wt ? wt[id] : shard_bytes(p, id);
        /* rank >= k  <=>  floor((2C + w) N / 2W) >= k  <=>  (2C + w) N >= k 2W:
         * multiplications only, no 128-bit division per shard */
        unsigned __int128 x = (2 * c + w) * world;
        while (next < world && (next == 0 || x >= (unsigned __int128)next * total2)) {
            if (want == world) {
                bounds[next] = pos;
            } else if (next == want) {
                got_begin = pos;
                have_begin = 1;
            } else if (next == want + 1) {
                bounds[0] = got_begin;
                bounds[1] = pos;
                free(wt);
                return;
            }
            next++;
        }
        c += w;
    }
    free(wt);
    if (want == world) {
        while (next <= world)
            bounds[next++] = p->n;
    } else {
        bounds[0] = have_begin ? got_begin : p->n;
        bounds[1] = p->n;
    }
}

static int check_dist(const s3s_plan *p, uint32_t world, s3s_errinfo *e)
{
    if (world == 0)
        return s3s__ei_set(e, S3S_EINVAL, "world size must be at least 1");
    if (p->opts.distribution == S3S_DIST_DYNAMIC)
        return s3s__ei_set(e, S3S_ENOTSUP,
                           "distribution Dynamic: shares are granted by the coordinator at run "
                           "time, in the epoch order");
    return 0;
}

int s3s_plan_share(const s3s_plan *p, uint32_t rank, uint32_t world, s3s_share *out, s3s_errinfo *e)
{
    int rc = check_dist(p, world, e);
    if (rc != 0)
        return rc;
    if (rank >= world)
        return s3s__ei_set(e, S3S_EINVAL, "rank %u is not below the world size %u", rank, world);
    if (p->opts.distribution == S3S_DIST_FULLY_REPLICATED || p->n == 0) {
        out->begin = 0;
        out->end = p->n;
        return 0;
    }
    uint64_t b[2];
    cut_spans(p, world, rank, b);
    out->begin = b[0];
    out->end = b[1];
    return 0;
}

int s3s_plan_shares(const s3s_plan *p, uint32_t world, uint64_t *bounds, s3s_errinfo *e)
{
    int rc = check_dist(p, world, e);
    if (rc != 0)
        return rc;
    if (p->opts.distribution == S3S_DIST_FULLY_REPLICATED)
        return s3s__ei_set(e, S3S_EINVAL,
                           "FullyReplicated: every rank's share is the whole epoch, not a span "
                           "of it");
    if (p->n == 0) {
        for (uint32_t r = 0; r <= world; r++)
            bounds[r] = 0;
        return 0;
    }
    cut_spans(p, world, world, bounds);
    return 0;
}
