/* sched_impl.h: the scheduler's state, shared by sched.c (operations) and
 * sched_state.c (event application, digest, ledger queries). Internal only.
 *
 * Invariants:
 * - open == sum over lanes of (untaken + ntails) + active: the pieces not yet
 *   closed. A non-equal-steps epoch is complete when open == 0.
 * - A lane's cursor points at the first seq index not yet granted; for
 *   bitmap lanes (Dynamic, ShardedByS3Key) shards past the cursor may already be
 *   taken (cache preference) and taken[] says which.
 * - Tails are stored oldest-last: the front of the queue is tails[ntails - 1].
 * - A live lease is listed in exactly one worker's lz[]; its committed offset
 *   is in [start, end] and its rec_committed in [rec_start, rec_start + cap].
 * - ranks[r].samples_assigned == samples committed + sum of (cap - done) of
 *   r's live leases; ranks_full counts ranks whose committed samples reached
 *   the quota (equal steps only). */
#ifndef S3S_COORDINATOR_SCHED_IMPL_H
#define S3S_COORDINATOR_SCHED_IMPL_H

#include "coordinator/ledger.h"
#include "coordinator/sched.h"

#define S3S__NONE 0xffffffffu
#define S3S__SCHED_MAX_INFLIGHT 64
#define S3S__CACHE_EMPTY UINT64_MAX
#define S3S__BLOOM_WORDS 64

enum { S3S__W_LIVE = 0, S3S__W_DRAINED = 1, S3S__W_GONE = 2 };

typedef struct s3s__sched_piece {
    uint32_t pos;
    uint32_t unused_;
    uint64_t start, end;
    uint64_t rec_start, rec_end;
} s3s__sched_piece;

typedef struct s3s__sched_lane {
    const uint32_t *seq; /* positions in order; NULL = identity 0..len-1 */
    uint32_t len;
    uint32_t cursor;
    uint32_t untaken; /* shards of the lane never granted this epoch */
    uint32_t nranks;
    s3s__sched_piece *tails;
    size_t ntails, tails_alloc;
    uint64_t samples_total;
    uint64_t pad_budget, pad_assigned, pad_cursor;
} s3s__sched_lane;

typedef struct s3s__sched_lease {
    uint64_t token; /* 0 = free slot */
    uint32_t slot, lane, pos, pad;
    uint64_t start, end, committed;
    uint64_t rec_start, rec_end, rec_committed, cap;
    uint64_t expiry; /* soft */
    size_t ledger_idx; /* SIZE_MAX until the first commit */
} s3s__sched_lease;

typedef struct s3s__sched_worker {
    uint64_t wid;
    uint32_t rank, inc;
    int state;
    uint32_t nleases;
    uint32_t lz[S3S__SCHED_MAX_INFLIGHT];
    /* soft state */
    uint64_t last_seen;
    uint64_t seen_epoch;
    int seen_valid;
    int ask_drain;
    uint64_t *cache; /* open-addressing set, S3S__CACHE_EMPTY = free */
    size_t cache_cap, cache_n;
    /* A one-hash Bloom filter over the cache set: most window positions are
     * rejected by one bit test instead of a probe of the set. */
    uint64_t bloom[S3S__BLOOM_WORDS];
} s3s__sched_worker;

typedef struct s3s__sched_rank {
    uint64_t bytes_committed, samples_committed, samples_assigned;
    uint64_t last_commit_ms; /* soft */
    uint32_t live_leases;
} s3s__sched_rank;

struct s3s__sched {
    s3s__sched_opts o;
    s3s__sched_event_fn events;
    void *ctx;

    uint64_t epoch;
    int began, running, finished;
    uint64_t quota;
    uint64_t next_token;
    uint64_t next_due; /* soft: no worker's leases expire before this */

    s3s__sched_shard *shards;
    size_t nshards, shards_alloc;
    uint32_t *lane_pos; /* ShardedByS3Key: positions grouped by lane */
    uint8_t *taken; /* bit per position (Dynamic, ShardedByS3Key) */
    s3s__sched_lane *lanes;
    uint32_t nlanes;
    uint64_t open;
    uint64_t active;

    s3s__sched_lease *leases;
    uint32_t nleases_alloc, free_lease;

    s3s__sched_worker *workers;
    uint32_t nworkers, workers_alloc;
    uint32_t *whash;
    size_t whash_cap;
    uint32_t *rank_worker;
    s3s__sched_rank *ranks;
    uint32_t ranks_full;

    s3s__ledger ledger;

    /* counters */
    uint64_t shards_total, shards_done, bytes_total, bytes_committed, bytes_dropped;
    uint64_t samples_total, reissued_tails, reissued_bytes, split_tails, pad_samples;
    uint64_t drains, grants;
    uint64_t stale_refusals, cache_hits, apply_failures; /* soft */
};

static inline uint64_t s3s__shard_samples(const s3s__sched_shard *sh)
{
    return sh->records ? sh->records : 1;
}

static inline uint32_t s3s__lane_seq(const s3s__sched *s, const s3s__sched_lane *ln, uint32_t i)
{
    (void)s;
    return ln->seq ? ln->seq[i] : i;
}

static inline int s3s__taken_get(const s3s__sched *s, uint32_t pos)
{
    return (s->taken[pos >> 3] >> (pos & 7)) & 1;
}

static inline uint32_t s3s__sched_lease_find(const s3s__sched *s, const s3s__sched_worker *w,
                                             uint64_t token)
{
    for (uint32_t i = 0; i < w->nleases; i++)
        if (s->leases[w->lz[i]].token == token)
            return w->lz[i];
    return S3S__NONE;
}

uint32_t s3s__sched_worker_find(const s3s__sched *s, uint64_t wid);
void s3s__sched_worker_index(s3s__sched *s, uint64_t wid, uint32_t slot);
/* s3s__sched_apply_event applies one event to the state (order only for
 * EPOCH_BEGIN). Returns 0, S3S_EPROTO (event does not fit), S3S_EINVAL (bad
 * order) or S3S_ENOMEM; on failure the state is unchanged except for ENOMEM in
 * the ledger. */
int s3s__sched_apply_event(s3s__sched *s, const s3s__sched_event *ev, const s3s__sched_order *order,
                           s3s__errbuf *eb);

#endif
