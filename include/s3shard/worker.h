/* s3shard/worker.h: the worker library: take the items of a rank's share one
 * at a time and read their bytes through a streaming, caching reader.
 *
 * A worker (s3s_worker) turns an item source into items: either the static
 * plan, the rank's share of a channel's snapshot for each epoch, a pure
 * function of (snapshot, seed, epoch, rank, world size) (dataset.h); or the
 * leases of an s3shard-coordinator (opts.coordinator), which hands shards to
 * whichever rank asks (Dynamic), keeps each rank's committed position durable
 * and gives a lost rank's tail to another. Both behind the same calls.
 *
 * Since the worker knows which items come next, background fetch threads
 * (one S3 connection each) GET the first block of the next items while the
 * caller is still busy with the current one, bounded by a memory budget; an
 * item's reader streams the rest through ranged GETs with a read-ahead window
 * that grows while reads stay sequential. Every fetched block goes through
 * the local block cache (when a cache folder is set): a block already cached
 * is served from disk with no GET, and a block being fetched by another
 * process sharing the folder is waited for, never fetched twice.
 *
 * Thread safety: s3s_worker_next, s3s_reader_open and s3s_worker_stats may be
 * called from any number of threads at once (several loader threads each
 * taking items). An item and its reader belong to one thread at a time.
 *
 * Errors: functions return 0 or an S3S_E* code (error.h); s3s_worker_errmsg
 * and s3s_reader_errmsg give the detail (which key, what failed). */
#ifndef S3SHARD_WORKER_H
#define S3SHARD_WORKER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "s3shard/dataset.h"
#include "s3shard/export.h"
#include "s3shard/s3.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct s3s_worker s3s_worker;
typedef struct s3s_item s3s_item;
typedef struct s3s_reader s3s_reader;

/* s3s_worker_opts: options for s3s_worker_create. s3s_worker_opts_init sets
 * the defaults written beside each field. Pointers are borrowed for the call
 * only, except job, snapshot and cancel, which must outlive the worker. */
typedef struct s3s_worker_opts {
    /* --- what to read: the static plan ----------------------------------- */
    const s3s_job *job; /* a parsed job spec; with channel, gives the source,
                           distribution, shuffle, seed and Epochs. NULL: use
                           snapshot + plan below. */
    const char *channel; /* channel name in job; NULL: the job's first channel */
    const s3s_snapshot *snapshot; /* the channel's snapshot. NULL with a job:
                                     the worker enumerates the channel's source
                                     once at create (a listing). */
    s3s_plan_opts plan; /* used when job is NULL (s3s_plan_opts_init defaults;
                           epoch is ignored: see first_epoch) */
    uint32_t rank; /* default 0 */
    uint32_t world_size; /* default 1 */
    uint64_t first_epoch; /* first epoch to read; default 0 */
    uint32_t epochs; /* epochs to read from first_epoch; 0 (default): the job's
                        Epochs minus first_epoch (at least 1), or 1 without a job */
    /* --- the cache ---------------------------------------------------------- */
    const char *cache_dir; /* block cache folder (shareable by the ranks of one
                              host); NULL (default): no cache, memory only */
    uint64_t cache_limit; /* byte limit of the cache; 0 (default): the job's
                             CacheLimitBytes, else 10 GiB */
    uint64_t block_size; /* block (and GET) size for new objects; default 8 MiB;
                            64 KiB .. 256 MiB */
    /* --- fetching ------------------------------------------------------------ */
    unsigned connections; /* fetch threads, each with one S3 connection; default 16 */
    uint64_t prefetch_bytes; /* memory budget for fetched blocks not yet read
                                (prefetched items and read-ahead); default 256 MiB */
    unsigned prefetch_items; /* how many upcoming items are prefetched at most;
                                default 1024 */
    uint64_t readahead_min; /* first read-ahead window; default 1 MiB */
    uint64_t readahead_max; /* the window doubles while reads stay sequential,
                               up to this (and at most half the budget); default 64 MiB */
    int auto_commit; /* 1 (default): an item closed after its last byte was
                        read is committed as done; 0: only s3s_item_commit */
    s3s_s3_opts s3; /* S3 client options (s3s_s3_opts_init defaults); its
                       max_connections is ignored (one per fetch thread) */
    /* --- the coordinator: leases instead of the static plan ------------------
     * With a coordinator URL, items come from the leases of s3shard-coordinator
     * (every distribution, Dynamic included); the job spec and the channel's
     * snapshot come from the coordinator itself (job, snapshot, plan and
     * first_epoch above are ignored; channel names the channel, NULL: the
     * job's first). rank and world_size go into the hello as given:
     * S3S_WORKER_RANK_ANY lets the coordinator assign a free rank, world_size 0
     * says "not known" (the defaults 0 and 1 claim rank 0 of a world of 1).
     * epochs: stop after this many epochs from the first one granted; 0
     * (default) runs until the coordinator says the job is over. */
    const char *coordinator; /* tcp://HOST:PORT, tls+tcp://HOST:PORT or ipc:///path;
                                NULL (default): the static plan */
    const char *coord_secret_file; /* shared secret (trailing newlines cut); NULL
                                      (default): $S3SHARD_SECRET when set, else none */
    const void *coord_secret; /* the secret as bytes (wins over the file); default NULL */
    size_t coord_secret_len;
    const char *coord_tls_ca; /* PEM CA verifying a tls+tcp:// coordinator; NULL
                                 (default): encrypted but not verified */
    const char *host; /* host name said in hello; NULL (default): gethostname() */
    uint32_t local_rank; /* rank on this host, said in hello; default S3S_WORKER_RANK_ANY */
    uint32_t coord_leases; /* leases held at once: the one being read plus the
                              lookahead's; default 2, 1 .. 64 (the coordinator
                              grants at most its own per-worker limit, 2) */
    uint32_t coord_timeout_ms; /* give up on a coordinator that does not answer a
                                  request for this long; default 60000 */
    volatile sig_atomic_t *cancel; /* non-NULL: once *cancel is non-zero (a
                                      signal handler may set it), no new lease
                                      is taken and nothing more is fetched
                                      ahead: s3s_worker_next hands out the items
                                      already fetched ahead, then returns
                                      S3S_EINTERRUPTED (also ending a wait for
                                      a lease); default NULL */
} s3s_worker_opts;

/* rank value meaning "not known: let the coordinator assign one". */
#define S3S_WORKER_RANK_ANY 0xFFFFFFFFu

/* s3s_worker_opts_init fills opts with the defaults above. */
S3S_API void s3s_worker_opts_init(s3s_worker_opts *opts);

/* s3s_worker_create checks the options, opens the cache, sets up the plan
 * and starts the fetch threads. Prefetching starts with the first
 * s3s_worker_next (a worker used only through s3s_reader_open, as FastFile
 * mode does, fetches nothing ahead). NULL opts means
 * defaults (which have nothing to read: S3S_EINVAL). Fails with S3S_EINVAL or
 * S3S_ECONFIG (bad options, detail in err), S3S_ECREDS, the listing's error,
 * S3S_EIO (cache folder), S3S_ENOMEM. *out is untouched on failure. err may be
 * NULL. */
S3S_API int s3s_worker_create(s3s_worker **out, const s3s_worker_opts *opts, s3s_errinfo *err);

/* s3s_worker_destroy stops the fetch threads (cancelling transfers between
 * callbacks) and frees the worker. Every item and reader must be closed
 * first. NULL-safe. */
S3S_API void s3s_worker_destroy(s3s_worker *w);

/* s3s_worker_drain stops the worker for good (a SIGTERM, a Spot notice):
 * the items fetched ahead are dropped, and with a coordinator the positions
 * committed so far become the final ones and every lease is given back at
 * once (a drain message), so other ranks can take the tails right away.
 * Commit exact positions (s3s_item_commit) and close open items first: a
 * commit after the drain fails with S3S_ESTALE. s3s_worker_next returns
 * S3S_EEOF from then on. reason (may be NULL) is told to the coordinator.
 * Returns 0 or the coordinator's error. Idempotent. */
S3S_API int s3s_worker_drain(s3s_worker *w, const char *reason);

/* s3s_worker_rank returns the worker's rank: the one given, or with a
 * coordinator the one it assigned (S3S_WORKER_RANK_ANY for NULL). */
S3S_API uint32_t s3s_worker_rank(const s3s_worker *w);

/* s3s_worker_errmsg returns the detail of the last failure seen by the worker
 * (thread-safe snapshot copied into a thread-local buffer). */
S3S_API const char *s3s_worker_errmsg(s3s_worker *w);

/* s3s_item_info: what an item is. Strings live as long as the item. */
typedef struct s3s_item_info {
    const char *bucket;
    const char *key; /* NUL-terminated object key */
    uint64_t size; /* object size in bytes */
    const char *etag; /* ETag without quotes ("" when the snapshot has none) */
    uint64_t offset; /* where to resume: bytes already committed (0 for a fresh item);
                        the reader starts positioned there */
    uint64_t epoch;
    uint64_t position; /* position of the item in its epoch's order of this rank */
    /* Augmented manifests (AugmentedManifestFile): each record is handed out
     * as one item per attribute of AttributeNames, in that order. A "-ref"
     * attribute's item is the object its s3:// URI names (bucket, key, and
     * size and ETag from a HEAD); any other attribute's item has bucket "",
     * key the attribute name, no ETag, and its bytes are the attribute's
     * value as compact JSON. For items of other sources attribute is NULL
     * and the three numbers 0. */
    const char *attribute; /* the attribute this item carries, or NULL */
    uint32_t attr_index; /* its place in the record: 0 .. attr_count - 1 */
    uint32_t attr_count; /* attributes per record */
    uint64_t record_line; /* the record's line in the manifest (0: unknown) */
} s3s_item_info;

/* s3s_worker_next hands out the next item of the share, in plan order across
 * epochs. Returns 0 and *out, S3S_EEOF when every epoch is handed out (or
 * after s3s_worker_drain), or S3S_ECLOSED after destroy began. With a
 * coordinator it waits for a lease while other ranks hold the last ones of
 * the epoch (S3S_EINTERRUPTED when opts.cancel is set meanwhile). Thread-safe: concurrent callers
 * get distinct items. */
S3S_API int s3s_worker_next(s3s_worker *w, s3s_item **out);

/* s3s_item_info_get returns the item's description (owned by the item). */
S3S_API const s3s_item_info *s3s_item_info_get(const s3s_item *item);

/* s3s_item_reader returns the item's reader (owned by the item; do not
 * s3s_reader_close it: s3s_item_close does). */
S3S_API s3s_reader *s3s_item_reader(s3s_item *item);

/* s3s_item_commit records that every byte before offset has been consumed
 * (call it at sample boundaries). offset must not go backwards nor past the
 * size. With a coordinator the position becomes durable there (one round
 * trip, acknowledged once on the coordinator's disk); with the static plan it
 * is only counted. S3S_EINVAL on a bad offset; S3S_ESTALE when the
 * coordinator revoked the item's lease (it expired, the coordinator
 * restarted, or the worker drained): stop reading the item and close it,
 * the rest is granted again to some rank. */
S3S_API int s3s_item_commit(s3s_item *item, uint64_t offset);

/* s3s_item_close ends the item: with auto_commit, an item whose last byte was
 * read (or an empty one) is committed as done; otherwise the item is released
 * at its last commit (a coordinator would grant the rest again). Frees the
 * item and its reader. Returns 0 or the commit's error. NULL-safe. */
S3S_API int s3s_item_close(s3s_item *item);

/* s3s_reader_open opens a reader on any object through the worker's fetch
 * threads and cache (FastFile mode's files). etag may be NULL or "" (then no
 * ETag is checked nor cached: the cache needs an ETag). Close with
 * s3s_reader_close. Thread-safe. */
S3S_API int s3s_reader_open(s3s_worker *w, const char *bucket, const char *key, uint64_t size,
                            const char *etag, s3s_reader **out);

/* s3s_reader_read copies n bytes from the current position into buf and
 * advances it; *out_n is less than n only at the end of the object (0 there).
 * Bytes are handed over as they arrive from S3: the call waits only for the
 * bytes it returns, not for whole blocks. Fails with the fetch's error
 * (S3S_ENETWORK, S3S_ENOTFOUND, S3S_ECONFLICT when the object changed, ...),
 * with the key and range in s3s_reader_errmsg; bytes copied before the
 * failure are in buf and counted in *out_n, the position is advanced past
 * them. Thread-safe against other readers, not against itself. */
S3S_API int s3s_reader_read(s3s_reader *r, void *buf, size_t n, size_t *out_n);

/* s3s_reader_pread reads up to n bytes at offset off without moving the
 * position; *out_n < n only at the end of the object. A pread far from the
 * sequential position resets the read-ahead window. */
S3S_API int s3s_reader_pread(s3s_reader *r, void *buf, size_t n, uint64_t off, size_t *out_n);

#define S3S_SEEK_SET 0
#define S3S_SEEK_CUR 1
#define S3S_SEEK_END 2

/* s3s_reader_seek moves the position (whence S3S_SEEK_*); *out_pos (may be
 * NULL) receives it. Positions past the end are allowed (reads return 0);
 * negative ones are S3S_EINVAL. */
S3S_API int s3s_reader_seek(s3s_reader *r, int64_t off, int whence, uint64_t *out_pos);

/* s3s_reader_close frees a reader made by s3s_reader_open. NULL-safe.
 * Returns S3S_EINVAL (and does nothing) for an item's reader. */
S3S_API int s3s_reader_close(s3s_reader *r);

/* s3s_reader_errmsg returns the detail of the reader's last failure. */
S3S_API const char *s3s_reader_errmsg(const s3s_reader *r);

/* s3s_reader_stats: a reader's counters. */
typedef struct s3s_reader_stats {
    uint64_t window; /* current read-ahead window in bytes */
    uint64_t window_peak; /* largest window reached */
    uint64_t window_resets; /* times a jump reset the window */
    uint64_t blocks_fetched; /* blocks this reader caused to be fetched by GET */
    uint64_t blocks_cached; /* blocks served from the cache (no GET) */
    uint64_t blocks_prefetched; /* blocks found already fetched by prefetch */
    uint64_t bytes_read; /* bytes returned to the caller */
} s3s_reader_stats;

S3S_API void s3s_reader_stats_get(const s3s_reader *r, s3s_reader_stats *out);

/* s3s_worker_stats: the worker's counters since create. */
typedef struct s3s_worker_stats {
    uint64_t gets; /* GET requests sent (each block is one ranged GET) */
    uint64_t get_bytes; /* body bytes received */
    uint64_t cache_hits; /* blocks served from the cache */
    uint64_t cache_hit_bytes;
    uint64_t items; /* items handed out */
    uint64_t items_done; /* items committed as done */
    uint64_t commits; /* s3s_item_commit calls accepted */
    uint64_t prefetched_blocks; /* blocks fetched ahead for upcoming items */
    uint64_t mem_bytes; /* bytes of fetched blocks held in memory now */
    uint64_t mem_peak; /* most ever held */
} s3s_worker_stats;

S3S_API void s3s_worker_stats_get(s3s_worker *w, s3s_worker_stats *out);

#ifdef __cplusplus
}
#endif
#endif
