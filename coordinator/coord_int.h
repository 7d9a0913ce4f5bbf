/* coord_int.h: the coordinator's state, shared by coord.c (open, replay,
 * journal, compaction), coord_handle.c (requests), coord_status.c (status)
 * and coord_mirror.c (S3 mirror). Internal only; invariants in coord.h. */
#ifndef S3S_COORDINATOR_COORD_INT_H
#define S3S_COORDINATOR_COORD_INT_H

#include "common/journal/journal.h"
#include "coordinator/coord.h"
#include "coordinator/sched.h"
#include "s3shard/dataset.h"
#include "s3shard/s3.h"

#include <pthread.h>
#include <stdbool.h>

#define S3S__COORD_CHANNELS_MAX 20

/* Opaque journal record subtypes. */
enum {
    S3S__CJ_EVENT = 1, /* one scheduler event: channel + varint fields */
    S3S__CJ_CONFIG = 2, /* world size */
    S3S__CJ_TOKEN_FLOOR = 3, /* channel, next token (first record of a compacted channel) */
    S3S__CJ_TOKEN_RESERVE = 4 /* channel, token mark: no token below it was ever handed out
                                 unjournaled; a restart resumes at the mark */
};

/* Tokens are reserved in blocks: a grant may be answered before its record is
 * durable only when its token lies below a durable reservation. */
#define S3S__COORD_TOKEN_BLOCK 65536u

typedef struct s3s__coord_chan {
    struct s3s__coord *coord;
    const s3s_channel *ch;
    uint32_t index;
    s3s_snapshot *snap;
    uint8_t snap_hash[32];
    s3s_plan *plan; /* the current epoch's plan */
    uint64_t plan_epoch;
    s3s__sched_shard *shards; /* the current epoch's order, for the scheduler */
    uint32_t *owner;
    s3s__sched *sched;
    bool epoch_done; /* EPOCH_DONE seen: begin the next epoch after this request */
    bool finished; /* the last epoch is done */
    bool compact_due; /* an epoch began since the last compaction */
    bool ledger_saved; /* the finished epoch's ledger file is written */
    uint64_t epoch_start_ms;
    uint64_t tok_reserved; /* highest reservation mark appended (or replayed) */
    uint64_t tok_reserved_lsn; /* its record's lsn */
    uint64_t tok_safe; /* a mark known durable: tokens below it may be answered at once */
    /* soft per-epoch counters (not journaled; the finished epochs' are in their
     * ledger files): bytes workers reported fetched from S3, and the
     * scheduler's job-wide drain count when the epoch began */
    uint64_t fetched;
    uint64_t drains_at_begin;
    s3s__buf base; /* packed records: token floor, JOINs at the last epoch begin */
    s3s__buf log; /* packed events since the last epoch begin */
} s3s__coord_chan;

/* A channel over an augmented manifest counts its shards in records: a
 * shard's size, lease ranges and progress offsets are record counts (the
 * worker commits after each whole record), not bytes. */
static inline bool s3s__coord_chan_records(const s3s__coord_chan *ch)
{
    return ch->snap != NULL && s3s_snapshot_kind_get(ch->snap) == S3S_SNAP_RECORDS;
}

/* Bytes downloaded twice: what workers reported fetched beyond what was
 * committed (0 while they fetched less, e.g. from caches). */
static inline uint64_t s3s__coord_refetched(uint64_t fetched, uint64_t committed)
{
    return fetched > committed ? fetched - committed : 0;
}

/* One worker's entry in the reply cache. */
typedef struct s3s__coord_peer {
    uint64_t wid; /* 0 = free */
    uint64_t seq;
    bool has_seq;
    uint32_t chan_mask; /* channels the worker said hello to */
    uint32_t rank;
    char *reply;
    size_t reply_len, reply_cap;
} s3s__coord_peer;

struct s3s__coord {
    s3s_coord_opts o;
    char *state_dir, *state_uri, *job_path;
    uint8_t *secret;
    s3s__proto_key *proto_key;
    s3s__proto_cfg proto;
    s3s_job *job;
    uint8_t job_hash[32];
    uint8_t snap_hash[32]; /* sha256 over the channels' snapshot hashes */
    char *job_json;
    uint32_t epochs;
    uint64_t lease_ttl_ms;
    uint32_t world_size; /* 0 until known */
    uint32_t nchan;
    s3s__coord_chan chans[S3S__COORD_CHANNELS_MAX];
    s3s__journal *journal;
    s3s__errbuf jerr; /* first journal error from the event callback */
    int jrc;
    bool replaying;
    uint64_t now_ms; /* of the request being handled */
    s3s__coord_peer *peers; /* open addressing by wid */
    size_t peers_cap, npeers;
    s3s__coord_counters cnt;
    uint64_t commits;
    uint64_t lsn; /* of the last record appended */
    s3s_s3 *s3; /* for sources and the mirror; NULL when not needed */
    /* mirror (coord_mirror.c) */
    pthread_mutex_t mu; /* guards mirror state and the status counters copy */
    s3s__buf mirror_buf; /* the journal as the mirror hook saw it */
    uint64_t mirror_gen;
    bool mirror_dirty;
    char *mirror_bucket, *mirror_prefix;
    s3s__buf scratch; /* encoding scratch */
};

/* coord.c */
int s3s__coord_chan_begin(s3s__coord *c, s3s__coord_chan *ch, uint64_t epoch, s3s__errbuf *eb);
void s3s__coord_advance(s3s__coord *c);
s3s__coord_chan *s3s__coord_chan_find(s3s__coord *c, const char *name);
/* s3s__coord_token_granted is called after grants up to token tok (a
 * scheduler token): keeps a reservation a half block ahead of the scheduler's
 * next token and returns 1 when the grant's reply must wait for the journal
 * (tok is not below a durable reservation yet), 0 when it may go out now. */
int s3s__coord_token_granted(s3s__coord *c, s3s__coord_chan *ch, uint64_t tok);
int s3s__coord_set_world(s3s__coord *c, uint32_t world, s3s__errbuf *eb);

/* s3s__coord_read_file reads a whole file (for snapshots served to workers,
 * read when asked rather than kept in memory). */
int s3s__coord_read_file(const char *path, char **out, size_t *len);
/* s3s__coord_snap_path: DIR/snapshot-<channel>.s3ss */
void s3s__coord_snap_path(const s3s__coord *c, const s3s__coord_chan *ch, char *out, size_t n);

/* coord_status.c */
int s3s__coord_status_write(void *arg, s3s__mpw *w);
typedef struct s3s__coord_status_arg {
    s3s__coord *c;
    uint32_t flags;
} s3s__coord_status_arg;
#define S3S__STATUS_SNAPSHOTS 0x2u /* add the job spec and the snapshot files */

/* coord_mirror.c */
int s3s__coord_mirror_fetch(s3s__coord *c, s3s__errbuf *eb);
int s3s__coord_mirror_put_static(s3s__coord *c, s3s__errbuf *eb);
void s3s__coord_mirror_hook(void *arg, uint64_t generation, uint64_t offset, const void *bytes,
                            size_t len);

#endif
