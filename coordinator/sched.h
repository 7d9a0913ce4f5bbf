/* sched.h: the coordinator's scheduling brain for one channel, as pure logic.
 *
 * No I/O, no clock, no randomness: time is the `now_ms` argument (monotonic
 * milliseconds), and every state change is an event (s3s__sched_event) handed to
 * the caller's callback, which journals it. Feeding the journaled events to
 * s3s__sched_apply() on a fresh scheduler rebuilds exactly the same durable
 * state (see s3s__sched_digest). The caller holds one scheduler per channel.
 * Not thread-safe: one thread, or the caller's lock, per scheduler.
 *
 * Model (docs/scheduling.md has the long version):
 * - An epoch is an array of shards in the epoch's shuffled order; a shard is
 *   named by its position `pos` in that array. Work is split into lanes:
 *   Dynamic has one lane shared by all ranks, ShardedByS3Key one lane per rank
 *   (its own shards, in epoch order), FullyReplicated one lane per rank over
 *   every shard. A lane hands out its shards in order from a cursor, after the
 *   re-issued tails queued at its front (the oldest work).
 * - A lease is one piece [start, end) of one shard, with a fencing token that
 *   strictly increases with every grant. A shard has at most one live lease per
 *   lane, and a lease always starts at the shard's committed offset, so the
 *   committed part of a shard is always a prefix [0, committed).
 * - Progress moves a lease's committed offset forward (monotonic). When a lease
 *   ends early (expiry, drain, bye, replaced incarnation, coordinator restart)
 *   only [committed, end) goes back, to the front of its lane, as a new piece.
 * - Invariants checked by tests: per lane, every byte of every shard is
 *   committed by exactly one lease, or (equal-steps drop mode) dropped once;
 *   tokens never repeat; a rank never commits more than its quota of samples. */
#ifndef S3S_COORDINATOR_SCHED_H
#define S3S_COORDINATOR_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/errbuf.h"

typedef enum s3s__dist {
    S3S__DIST_FULLY_REPLICATED = 0,
    S3S__DIST_SHARDED_BY_S3KEY = 1,
    S3S__DIST_DYNAMIC = 2
} s3s__dist;

/* The DDP equal-steps contract: every rank commits the same number of samples
 * per epoch. OFF: no quota. DROP: quota = floor, the remainder is dropped.
 * PAD: quota = ceil, the deficit is filled by repeating items. */
typedef enum s3s__equal { S3S__EQUAL_OFF = 0, S3S__EQUAL_DROP = 1, S3S__EQUAL_PAD = 2 } s3s__equal;

typedef struct s3s__sched_opts {
    s3s__dist dist; /* default Dynamic (by opts_init; a zeroed struct means FullyReplicated) */
    uint32_t world_size; /* ranks 0..world_size-1; required, 1..65536 */
    uint32_t max_inflight; /* live leases per worker (prefetch); default 2, max 64 */
    uint64_t lease_ttl_ms; /* lease time to live after the worker's last message; default 30000 */
    uint32_t cache_window; /* look-ahead for cache-preferred grants; default 64, 0 = off */
    s3s__equal equal_steps; /* default OFF */
    uint32_t max_workers; /* workers registered in one epoch (all incarnations); default
                           * 16 * world_size + 1024 */
    uint32_t max_cache_ids; /* cached shard ids kept per worker; default 1 << 20 */
} s3s__sched_opts;

/* s3s__sched_opts_init fills the defaults above (dist Dynamic, world_size 1). */
void s3s__sched_opts_init(s3s__sched_opts *o);

/* One shard of an epoch, as the plan gives it. records = samples in the shard
 * (records of a RecordIO file, objects of a pack); 0 = unknown: the shard then
 * counts as one item for the equal-steps contract. */
typedef struct s3s__sched_shard {
    uint64_t id;
    uint64_t size; /* bytes */
    uint32_t records;
    uint32_t aux_; /* internal (owner rank while the epoch is built); ignored on input */
} s3s__sched_shard;

/* One epoch's input. For ShardedByS3Key, owner[pos] (or owner_fn) gives the
 * rank owning shard pos; both are ignored for the other distributions. */
typedef struct s3s__sched_order {
    const s3s__sched_shard *shards; /* in the epoch's shuffled order; copied */
    size_t n; /* at most UINT32_MAX - 1 */
    const uint32_t *owner;
    uint32_t (*owner_fn)(void *ctx, size_t pos, uint64_t shard_id);
    void *owner_ctx;
} s3s__sched_order;

typedef enum s3s__sched_ev_type {
    S3S__EV_JOIN = 1, /* worker registered: worker_id, rank, incarnation -> slot */
    S3S__EV_LEAVE = 2, /* worker left: slot, reason (its leases were expired before) */
    S3S__EV_GRANT = 3, /* lease granted: token, slot, lane, pos, start, end, rec_*, cap, pad */
    S3S__EV_COMMIT = 4, /* progress: token, offset, records */
    S3S__EV_DONE = 5, /* lease closed by its worker: token, offset, records */
    S3S__EV_EXPIRE = 6, /* lease ended early: token, reason; tail [committed, end) back */
    S3S__EV_EPOCH_BEGIN = 7, /* epoch, quota (apply needs the order) */
    S3S__EV_EPOCH_DONE = 8, /* epoch complete (drop mode: leftovers dropped) */
    S3S__EV_DRAIN = 9, /* worker drained: slot (its leases were expired before) */
    S3S__EV_RESTORE = 10 /* compacted journal head: token = next token, records = drains;
                          * a compacted journal also says LEAVE with reason DRAIN for a
                          * drained worker */
} s3s__sched_ev_type;

typedef enum s3s__sched_reason {
    S3S__WHY_NONE = 0,
    S3S__WHY_TTL = 1, /* no message from the worker within the TTL */
    S3S__WHY_DRAIN = 2, /* the worker drained (Spot notice, SIGTERM) */
    S3S__WHY_BYE = 3, /* the worker said bye */
    S3S__WHY_REPLACED = 4, /* a newer incarnation of the worker or rank said hello */
    S3S__WHY_RESTART = 5 /* the coordinator restarted: in-flight leases expire at once */
} s3s__sched_reason;

/* One state change. A flat record so the journal codec can map every field. */
typedef struct s3s__sched_event {
    uint32_t type; /* s3s__sched_ev_type */
    uint32_t reason; /* s3s__sched_reason (EXPIRE, LEAVE) */
    uint64_t epoch;
    uint64_t worker_id;
    uint32_t slot; /* worker slot (registration order) */
    uint32_t rank;
    uint32_t incarnation;
    uint32_t lane;
    uint64_t token;
    uint32_t pos;
    uint32_t pad; /* 1: a padding lease (equal steps), outside the coverage ledger */
    uint64_t start, end; /* GRANT: byte range */
    uint64_t rec_start, rec_end, cap; /* GRANT: record range and sample cap */
    uint64_t offset, records; /* COMMIT, DONE: absolute byte offset and record count reached */
    uint64_t quota; /* EPOCH_BEGIN: samples per rank (0 = no quota) */
} s3s__sched_event;

typedef void (*s3s__sched_event_fn)(void *ctx, const s3s__sched_event *ev);

/* A granted lease, as the reply to the worker carries it. */
typedef struct s3s__sched_grant {
    uint64_t epoch;
    uint64_t shard_id;
    uint32_t pos;
    uint32_t pad; /* 1: padding repeat (equal steps PAD) */
    uint64_t start, end; /* bytes to read: [start, end) */
    uint64_t rec_start, rec_end; /* records in [start, end) (items: 0..1) */
    uint64_t cap; /* stop after this many samples of the piece, then done at that offset */
    uint64_t token;
    uint64_t expiry_ms;
} s3s__sched_grant;

/* Reply flags (commands piggybacked on any reply). */
#define S3S__REPLY_NEW_EPOCH 0x1u /* a new epoch began since this worker last asked */
#define S3S__REPLY_EPOCH_DONE 0x2u /* the current epoch is complete; no next one yet */
#define S3S__REPLY_WAIT 0x4u /* nothing to grant now; ask again later */
#define S3S__REPLY_STOP 0x8u /* the job is finished */
#define S3S__REPLY_DRAIN 0x10u /* the operator asked this worker to drain */

typedef struct s3s__sched_reply {
    uint32_t flags;
    uint64_t epoch; /* current epoch number */
    size_t ngrants;
} s3s__sched_reply;

typedef struct s3s__sched s3s__sched;

/* s3s__sched_create makes a scheduler with no epoch. events (may be NULL) is
 * called once per state change, in order, before the call that caused it
 * returns; it must not call back into the scheduler. Returns 0, S3S_EINVAL
 * (bad options, text in eb) or S3S_ENOMEM. */
int s3s__sched_create(s3s__sched **out, const s3s__sched_opts *opts, s3s__sched_event_fn events,
                      void *ctx, s3s__errbuf *eb);
/* s3s__sched_destroy frees everything. NULL-safe. */
void s3s__sched_destroy(s3s__sched *s);

/* s3s__sched_epoch_begin starts epoch `epoch` (greater than the last one)
 * once the previous one is complete (or none began). Returns S3S_EBUSY while an
 * epoch is running, S3S_EINVAL for a bad order (text in eb), S3S_ENOMEM. */
int s3s__sched_epoch_begin(s3s__sched *s, uint64_t epoch, const s3s__sched_order *order,
                           s3s__errbuf *eb);

/* s3s__sched_hello registers (worker_id, rank, incarnation) and renews it. A
 * newer incarnation of the same worker id replaces the old one (its leases
 * expire, tails return); so does another worker id claiming the rank of a live
 * worker, if its incarnation is >= the holder's or the holder has been silent
 * for the TTL. Returns S3S_ESTALE for an older incarnation of the same id, or
 * a lower one against a holder that still talks; S3S_EINVAL for a bad rank;
 * S3S_ETOOBIG past max_workers (per epoch). */
int s3s__sched_hello(s3s__sched *s, uint64_t worker_id, uint32_t rank, uint32_t incarnation,
                     uint64_t now_ms);
/* s3s__sched_cache_set replaces (replace=1) or extends the set of shard ids the
 * worker holds in its local cache. Soft state: not journaled. S3S_ENOTFOUND for
 * an unknown worker, S3S_ETOOBIG past max_cache_ids (set unchanged beyond). */
int s3s__sched_cache_set(s3s__sched *s, uint64_t worker_id, const uint64_t *ids, size_t n,
                         int replace);

/* s3s__sched_request asks for up to `want` new leases (bounded by max_inflight
 * minus the worker's live leases and by `cap` of out). Fills out[0..ngrants)
 * and the reply flags. Returns 0 (possibly with 0 grants and a flag),
 * S3S_ENOTFOUND for an unknown/departed worker (say hello again). */
int s3s__sched_request(s3s__sched *s, uint64_t worker_id, size_t want, uint64_t now_ms,
                       s3s__sched_grant *out, size_t cap, s3s__sched_reply *reply);
/* s3s__sched_heartbeat renews the worker's leases. reply gets the flags. */
int s3s__sched_heartbeat(s3s__sched *s, uint64_t worker_id, uint64_t now_ms,
                         s3s__sched_reply *reply);
/* s3s__sched_progress commits [committed, offset) of the lease `token`, at a
 * sample boundary where `records` records of the shard (absolute) are done;
 * records is ignored for item shards (records == 0). A repeat of the committed
 * offset is accepted (no event). Returns S3S_ESTALE for an unknown, expired or
 * superseded token (or another worker's), S3S_EINVAL for a backwards offset,
 * one past the lease end, or records past the cap. */
int s3s__sched_progress(s3s__sched *s, uint64_t worker_id, uint64_t token, uint64_t offset,
                        uint64_t records, uint64_t now_ms);
/* s3s__sched_done commits up to offset and closes the lease. offset must be the
 * lease end, unless the lease's sample cap is reached (equal steps): then the
 * rest returns to the front of the lane. Same errors as progress. */
int s3s__sched_done(s3s__sched *s, uint64_t worker_id, uint64_t token, uint64_t offset,
                    uint64_t records, uint64_t now_ms);
/* s3s__sched_drain: the worker stops taking work (commit positions first);
 * its leases end now and their tails return. It may say hello again later. */
int s3s__sched_drain(s3s__sched *s, uint64_t worker_id, uint64_t now_ms);
/* s3s__sched_bye: like drain, and the worker is forgotten. */
int s3s__sched_bye(s3s__sched *s, uint64_t worker_id, uint64_t now_ms);
/* s3s__sched_ask_drain sets the DRAIN command on the worker's next reply. */
int s3s__sched_ask_drain(s3s__sched *s, uint64_t worker_id);
/* s3s__sched_finish: every later reply carries STOP (soft state). */
void s3s__sched_finish(s3s__sched *s);
/* s3s__sched_tick expires leases of workers silent for lease_ttl_ms. Called
 * by every operation too; cheap when nothing is due. */
void s3s__sched_tick(s3s__sched *s, uint64_t now_ms);
/* s3s__sched_recover, after replay at coordinator start: every lease in
 * flight expires at once (reason RESTART); workers stay registered. */
void s3s__sched_recover(s3s__sched *s, uint64_t now_ms);

/* s3s__sched_apply replays one journaled event. order is required for
 * EPOCH_BEGIN (the caller recomputes it from the plan) and ignored otherwise.
 * The event callback is not called. Returns S3S_EPROTO when the event does not
 * fit the state (a journal from another job), S3S_ENOMEM. */
int s3s__sched_apply(s3s__sched *s, const s3s__sched_event *ev, const s3s__sched_order *order,
                     s3s__errbuf *eb);

/* s3s__sched_compact writes, through fn, the shortest event sequence that
 * rebuilds the current state: RESTORE, EPOCH_BEGIN, one JOIN per worker. The
 * caller replaces its journal with it (the "snapshot at the epoch boundary").
 * Valid while the epoch runs and nothing was granted yet (right after
 * s3s__sched_epoch_begin, or hellos/drains since): S3S_EBUSY otherwise (for
 * instance an empty epoch that completed at once: keep the journal then). */
int s3s__sched_compact(const s3s__sched *s, s3s__sched_event_fn fn, void *ctx);

/* s3s__sched_digest hashes the durable state (everything but times, cache
 * sets and soft flags): equal after a replay. */
uint64_t s3s__sched_digest(const s3s__sched *s);

/* Status counters for the current epoch (since its begin unless noted). */
typedef struct s3s__sched_stats {
    uint64_t epoch;
    int epoch_running; /* 0 before the first epoch and once complete */
    uint64_t shards_total, shards_done; /* per lane: replicated counts R * n */
    uint64_t bytes_total, bytes_committed, bytes_dropped;
    uint64_t samples_total, quota; /* quota 0 = off */
    uint64_t active_leases;
    uint64_t reissued_tails, reissued_bytes; /* tails back after expiry/drain/... */
    uint64_t split_tails; /* remainders returned at a sample cap (equal steps) */
    uint64_t pad_samples; /* samples committed by padding leases */
    uint64_t drains; /* drain events (job total) */
    uint64_t stale_refusals; /* progress/done refused with S3S_ESTALE (job total) */
    uint64_t cache_hits; /* grants that picked a shard the worker holds */
    uint64_t grants;
    uint64_t internal_errors; /* events an operation built that did not apply: always 0 */
    uint32_t workers_live;
} s3s__sched_stats;

void s3s__sched_stats_get(const s3s__sched *s, s3s__sched_stats *out);

/* Per-rank counters (rates: the caller samples bytes over time). */
typedef struct s3s__sched_rank_stats {
    uint64_t bytes_committed; /* this epoch */
    uint64_t samples_committed; /* this epoch, pads included */
    uint64_t samples_assigned; /* committed + in flight (capped) */
    uint64_t last_commit_ms;
    uint32_t live_leases;
} s3s__sched_rank_stats;

/* Returns S3S_EINVAL for a rank out of range. */
int s3s__sched_rank_stats_get(const s3s__sched *s, uint32_t rank, s3s__sched_rank_stats *out);

/* One coverage-ledger row, resolved for export. dropped: the range was not
 * consumed (equal steps DROP); worker fields are then 0 and lane says where. */
typedef struct s3s__ledger_row {
    uint64_t epoch;
    uint64_t shard_id;
    uint32_t pos;
    uint32_t lane; /* rank for ShardedByS3Key and FullyReplicated; 0 for Dynamic */
    uint64_t start, end;
    int dropped;
    uint64_t worker_id;
    uint32_t rank;
    uint32_t incarnation;
    uint64_t token;
} s3s__ledger_row;

/* s3s__sched_ledger_walk calls fn for every ledger row of the current (or
 * just-completed) epoch in commit order; stops early and returns fn's non-zero
 * return. The ledger is reset when the next epoch begins. */
int s3s__sched_ledger_walk(const s3s__sched *s, int (*fn)(void *ctx, const s3s__ledger_row *row),
                           void *ctx);

/* s3s__sched_ledger_verify proves exactly-once coverage of the epoch: in every
 * lane, for every shard of the lane, the committed and dropped ranges are
 * disjoint and their union is [0, size). With complete = 0 it checks only
 * disjointness and prefix shape (for a running epoch). Returns 0 or
 * S3S_ECORRUPT with the first violation (lane, shard, offset) in eb. */
int s3s__sched_ledger_verify(const s3s__sched *s, int complete, s3s__errbuf *eb);

/* s3s__sched_audit recomputes every counter and cross-check of the state from
 * scratch (leases, ranks, lanes, bitmap): 0, or S3S_ECORRUPT with the first
 * broken invariant in eb. O(shards + leases): for tests and debugging. */
int s3s__sched_audit(const s3s__sched *s, s3s__errbuf *eb);

/* One live lease, for status displays. */
typedef struct s3s__lease_row {
    uint64_t worker_id;
    uint32_t rank;
    uint32_t pad;
    uint64_t shard_id;
    uint32_t pos;
    uint32_t lane;
    uint64_t start, committed, end;
    uint64_t token;
    uint64_t expiry_ms;
} s3s__lease_row;

/* s3s__sched_leases_walk calls fn for every live lease (by worker slot, then
 * grant order); stops early and returns fn's non-zero return. */
int s3s__sched_leases_walk(const s3s__sched *s, int (*fn)(void *ctx, const s3s__lease_row *row),
                           void *ctx);

/* Memory held by the scheduler: per-shard state and ledger, in bytes. */
void s3s__sched_memory(const s3s__sched *s, size_t *shard_bytes, size_t *ledger_bytes);

#endif
