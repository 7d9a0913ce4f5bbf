/* coord.h: the coordinator object without its transport: job, snapshots, one
 * scheduler per channel, the journal, the reply cache. The transport
 * (coord_server.c) feeds it request bytes and sends back the reply bytes.
 *
 * Invariants:
 * - Every scheduler event is appended to the journal (an opaque record) by
 *   the event callback while the request that caused it is handled; the
 *   transport calls s3s__coord_commit once per batch of requests and sends the
 *   batch's replies only after it returned 0: nothing is acknowledged before
 *   it is durable.
 * - The reply cache holds, per worker id, the last (seq, reply bytes). A
 *   request repeating that seq gets the same bytes and changes nothing; an
 *   older seq is refused. Read-only requests (status) are not cached.
 * - Wire tokens are (scheduler token << 5) | channel index, so a token names
 *   its channel (at most 20 channels). Tokens only grow, across restarts too:
 *   a grant is answered before its record is durable only when its token lies
 *   below a durable reservation record (S3S__CJ_TOKEN_RESERVE, a block ahead),
 *   and a restart resumes the scheduler's next token at the last reservation.
 * - Per channel, `base` + `log` rebuild the channel's scheduler: base holds
 *   the token floor and the workers registered at the last epoch begin, log
 *   every event since (starting with that EPOCH_BEGIN). Compaction writes them.
 *
 * Not thread-safe: one thread handles requests (the transport's). */
#ifndef S3S_COORDINATOR_COORD_H
#define S3S_COORDINATOR_COORD_H

#include "common/proto/msg.h"
#include "common/util/buf.h"
#include "common/util/errbuf.h"
#include "s3shard/coordinator.h"

#include <stdint.h>

typedef struct s3s__coord s3s__coord;

#define S3S__COORD_TOKEN_SHIFT 5
#define S3S__COORD_RETRY_MS 100

/* Counters of refused and handled requests. */
typedef struct s3s__coord_counters {
    uint64_t requests, refused, resends, refused_version, refused_auth, refused_size,
        refused_malformed, refused_seq, errors;
} s3s__coord_counters;

/* s3s__coord_open builds the coordinator from opts (see coordinator.h):
 * fetches the mirror into an empty state dir, loads the job and snapshots,
 * opens and replays the journal, recovers (in-flight leases expire) and
 * begins the first epochs. Commits what recovery journaled. */
int s3s__coord_open(s3s__coord **out, const s3s_coord_opts *opts, s3s__errbuf *eb);
void s3s__coord_close(s3s__coord *c);

/* s3s__coord_handle answers one request (bytes as received) into reply
 * (reset first). Always produces a reply (an error message for a refused
 * request). Returns 1 when the reply acknowledges state (progress, drain, bye,
 * hello, a resend of any reply, or a grant whose token is not below a durable
 * reservation yet): send it only once the records appended so far are durable
 * (s3s__coord_commit or s3s__coord_wait); 0 when it may go out at once (other
 * grants, heartbeats, status, errors). */
int s3s__coord_handle(s3s__coord *c, const void *req, size_t len, uint64_t now_ms, s3s__buf *reply);

/* s3s__coord_commit makes every journal record appended so far durable,
 * then compacts the journal if a channel crossed an epoch boundary, and hands
 * the mirror what changed. S3S_EIO: nothing pending may be acknowledged and
 * the coordinator must stop (the journal refuses everything from now on). */
int s3s__coord_commit(s3s__coord *c, s3s__errbuf *eb);

/* Pipelined commits (the server's path): after handling a batch, its replies
 * may go out once s3s__coord_wait(c, s3s__coord_lsn(c)) returned 0; that wait
 * may run on another thread while this one handles the next batch (the
 * journal group-commits concurrent waiters). When s3s__coord_compact_due says
 * so, call s3s__coord_commit on this thread instead (epoch boundaries). */
uint64_t s3s__coord_lsn(const s3s__coord *c);
int s3s__coord_compact_due(const s3s__coord *c);
int s3s__coord_wait(s3s__coord *c, uint64_t lsn, s3s__errbuf *eb);

/* s3s__coord_tick expires leases of silent workers (called when idle). */
void s3s__coord_tick(s3s__coord *c, uint64_t now_ms);

/* The core of a public handle (for benchmarks and tests in this tree). */
s3s__coord *s3s__coord_core(s3s_coord *c);

/* Accessors for the transport and the public API. */
const s3s__proto_cfg *s3s__coord_proto(const s3s__coord *c);
void s3s__coord_counters_get(const s3s__coord *c, s3s__coord_counters *out);
void s3s__coord_status_get(s3s__coord *c, s3s_coord_status *out);
/* s3s__coord_status_json renders the status reply as JSON (ledger optional). */
int s3s__coord_status_json(s3s__coord *c, int ledger, char **out);
/* s3s__coord_mirror_flush uploads the mirror now (no-op without --state-uri). */
int s3s__coord_mirror_flush(s3s__coord *c, s3s__errbuf *eb);
/* s3s__coord_finished: every channel ran its last epoch. */
int s3s__coord_finished(const s3s__coord *c);

/* s3s__now_ms: the monotonic clock in milliseconds. */
uint64_t s3s__now_ms(void);

#endif
