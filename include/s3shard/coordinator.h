/* s3shard/coordinator.h: the coordinator, embeddable (rank 0 of a job can host
 * it in-process) or run as the `s3shard-coordinator` daemon.
 *
 * A coordinator loads a job spec, builds (or reloads from its state dir) each
 * channel's snapshot, schedules every channel's shards epoch by epoch (one
 * scheduler per channel: FullyReplicated, ShardedByS3Key or Dynamic), and
 * serves workers over nng (req/rep: tcp://, ipc://, tls+tcp://). Every state
 * change is journaled in the state dir and made durable (group commit) before
 * the reply that depends on it is sent; a restart replays the journal, and
 * leases in flight at the crash expire at once. docs/coordinator.md describes
 * the daemon, the state dir and the S3 mirror.
 *
 * Thread-safety: create/start/stop/destroy from one thread; s3s_coord_status
 * may be called from any thread while the coordinator runs. */
#ifndef S3SHARD_COORDINATOR_H
#define S3SHARD_COORDINATOR_H

#include <stddef.h>
#include <stdint.h>

#include "s3shard/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct s3s_coord s3s_coord;

/* s3s_coord_opts: s3s_coord_opts_init sets the defaults in brackets. Strings
 * are copied at create. */
typedef struct s3s_coord_opts {
    const char *job_path; /* job spec file; NULL: the one saved in the state dir or
                             the mirror (a resumed job) */
    const char *state_dir; /* required: journal, snapshots, job copy, lock */
    const char *listen; /* URL to serve on, e.g. "tcp://0.0.0.0:5555"; NULL: no
                           transport (s3s_coord_start then fails with S3S_EINVAL) */
    const char *state_uri; /* s3://bucket/prefix mirror of the state; NULL: none */
    const void *secret; /* shared secret for HMACs; NULL: none */
    size_t secret_len;
    const char *tls_cert; /* PEM certificate file for tls+tcp:// */
    const char *tls_key; /* PEM private key file for tls+tcp:// */
    uint32_t world_size; /* [0]: taken from the first hello that names one */
    uint32_t max_msg; /* receive limit in bytes [16 MiB] */
    uint32_t mirror_interval_ms; /* journal upload period [5000] */
    uint32_t contexts; /* requests handled concurrently [256] */
    const char *endpoint; /* S3 endpoint for sources and the mirror [client default] */
    const char *region; /* [client default] */
    int path_style; /* -1 [auto], 0, 1 */
} s3s_coord_opts;

S3S_API void s3s_coord_opts_init(s3s_coord_opts *opts);

/* s3s_coord_create loads the job, the snapshots and the journal (replaying
 * it). Fails with S3S_ECONFIG (bad job), S3S_EMISMATCH (the state dir holds
 * another job's journal), S3S_EBUSY (another coordinator owns the state dir),
 * S3S_ECORRUPT, S3S_EIO, ...; errmsg (may be NULL, size errmsg_len) gets the
 * reason. */
S3S_API int s3s_coord_create(s3s_coord **out, const s3s_coord_opts *opts, char *errmsg,
                             size_t errmsg_len);
/* s3s_coord_start listens and serves on a background thread. */
S3S_API int s3s_coord_start(s3s_coord *c);
/* s3s_coord_stop stops serving; everything acknowledged is on disk and the
 * mirror gets a last upload. Idempotent. */
S3S_API void s3s_coord_stop(s3s_coord *c);
/* s3s_coord_destroy stops and frees. NULL-safe. */
S3S_API void s3s_coord_destroy(s3s_coord *c);
/* s3s_coord_errmsg: the last error text of the handle. */
S3S_API const char *s3s_coord_errmsg(const s3s_coord *c);

/* A summary of the coordinator's state. */
typedef struct s3s_coord_status {
    uint32_t channels;
    uint64_t epoch; /* channel 0's current epoch */
    uint64_t shards_total, shards_done; /* channel 0, current epoch */
    uint64_t bytes_total, bytes_committed; /* channel 0, current epoch */
    uint64_t active_leases, reissued_tails; /* channel 0 */
    int finished; /* every channel finished its last epoch */
    uint64_t requests; /* handled */
    uint64_t refused; /* malformed, oversized, wrong version or HMAC */
    uint64_t resends; /* answered from the reply cache */
    uint64_t journal_commits;
} s3s_coord_status;

S3S_API void s3s_coord_status_get(s3s_coord *c, s3s_coord_status *out);

/* s3s_coord_status_json writes the full status (as `s3shard status --json`
 * prints it) into *out (caller frees); ledger != 0 adds the coverage ledger. */
S3S_API int s3s_coord_status_json(s3s_coord *c, int ledger, char **out);

#ifdef __cplusplus
}
#endif
#endif
