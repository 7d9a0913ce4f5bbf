/* s3shard/dataset.h: job specs, dataset snapshots, shards, the epoch order and
 * per-rank shares.
 *
 * The pieces, in the order a job uses them:
 *
 *   s3s_job       a parsed, validated job spec: SageMaker's InputDataConfig plus
 *                 our "S3Shard" settings, every default filled in. Immutable.
 *   s3s_snapshot  the result of enumerating one channel's source once: a sorted
 *                 list of (key, size, ETag) objects, or the records of a
 *                 manifest, with a SHA-256 content hash. Immutable; saved to and
 *                 loaded from a versioned, checksummed file (local or S3).
 *   s3s_plan      a snapshot cut into shards (one object, or small objects packed
 *                 up to a target size) and put in the order of one epoch.
 *                 Immutable. A rank's share is a pure function of (snapshot,
 *                 seed, epoch, rank, world size).
 *
 * Immutable handles may be read from any number of threads at once; creating
 * and destroying them is the caller's business. Nothing here keeps global state.
 *
 * Errors: every call that can fail returns 0 or an S3S_E* code (error.h) and
 * takes a last `s3s_errinfo *err` argument (may be NULL) that receives the
 * detail: the file, line and column or the JSON path, and what was expected.
 *
 * The algorithms (the shuffle, the share cut, the file format) are specified in
 * docs/dataset.md precisely enough to be reimplemented in another language;
 * examples/epoch_order.py does so and is tested against this library. */
#ifndef S3SHARD_DATASET_H
#define S3SHARD_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "s3shard/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ------------------------------------------------------------------ */

/* s3s_errinfo: the detail of a failure. code repeats the returned code; msg is
 * a NUL-terminated message such as "job.json:12:7: expected a string at
 * $.InputDataConfig[0].ChannelName". On success the struct is left untouched. */
typedef struct s3s_errinfo {
    int code;
    char msg[1024];
} s3s_errinfo;

/* ---- job spec ------------------------------------------------------------------ */

typedef enum s3s_data_type {
    S3S_DATA_S3_PREFIX = 0, /* S3DataType "S3Prefix" */
    S3S_DATA_MANIFEST = 1, /* S3DataType "ManifestFile" */
    S3S_DATA_AUGMENTED_MANIFEST = 2, /* S3DataType "AugmentedManifestFile" */
    S3S_DATA_FILESYSTEM = 3 /* FileSystemDataSource (EFS, FSx for Lustre): a local path */
} s3s_data_type;

typedef enum s3s_input_mode {
    S3S_MODE_FILE = 0,
    S3S_MODE_FASTFILE = 1,
    S3S_MODE_PIPE = 2
} s3s_input_mode;

typedef enum s3s_distribution {
    S3S_DIST_FULLY_REPLICATED = 0, /* every rank gets every shard */
    S3S_DIST_SHARDED_BY_S3_KEY = 1, /* static split, a pure function of the inputs */
    S3S_DIST_DYNAMIC = 2 /* ranks lease shards from the coordinator in epoch order */
} s3s_distribution;

typedef enum s3s_balance {
    S3S_BALANCE_COUNT = 0, /* equal numbers of objects (SageMaker's ShardedByS3Key) */
    S3S_BALANCE_BYTES = 1 /* equal numbers of bytes */
} s3s_balance;

/* The DDP equal-steps contract (S3Shard EqualSteps): every rank commits the
 * same number of samples per epoch; the remainder is dropped or padded. */
typedef enum s3s_equal_steps {
    S3S_EQUAL_OFF = 0, /* no quota: ranks read what they lease */
    S3S_EQUAL_DROP = 1, /* quota rounded down; the remainder is skipped this epoch */
    S3S_EQUAL_PAD = 2 /* quota rounded up; short ranks repeat samples */
} s3s_equal_steps;

typedef enum s3s_manifest_meta {
    S3S_META_LIST = 0, /* sizes/ETags of manifest keys from one parallel listing of the prefix */
    S3S_META_HEAD = 1, /* one HEAD per key (small manifests in huge prefixes) */
    S3S_META_NONE = 2 /* no lookup: sizes 0, no ETag (bytes balancing degrades to count) */
} s3s_manifest_meta;

/* s3s_channel: one resolved channel of a job. Strings and arrays belong to the
 * job and live as long as it. Field defaults are those applied by the parser
 * (documented in docs/dataset.md, "Job spec"). */
typedef struct s3s_channel {
    const char *name; /* ChannelName */
    s3s_data_type data_type;
    const char *uri; /* S3Uri, or FileSystemDataSource.DirectoryPath */
    const char *bucket; /* parsed from S3Uri; NULL for a file system source */
    const char *key; /* the key part of S3Uri (prefix or manifest key); "" for none */
    const char *local_path; /* file system source: where it is mounted here
                               (S3Shard LocalPath, default DirectoryPath) */
    const char *fs_type; /* FileSystemType ("EFS", "FSxLustre"); NULL for S3 */
    const char *fs_access_mode; /* FileSystemAccessMode ("ro" default, "rw") */
    const char *fs_id; /* FileSystemId; "" when absent */
    const char *const *attribute_names; /* AttributeNames (augmented manifests) */
    size_t n_attribute_names;
    s3s_input_mode input_mode; /* default File */
    s3s_distribution distribution; /* default from S3DataDistributionType:
                                      FullyReplicated; S3Shard Distribution overrides */
    s3s_balance balance; /* S3Shard BalanceBy; default count */
    int shuffle; /* 1 when ShuffleConfig is present */
    uint64_t seed; /* ShuffleConfig.Seed (a signed 64-bit value taken modulo 2^64) */
    int record_io; /* RecordWrapperType RecordIO: 1; None (default): 0 */
    int gzip; /* CompressionType Gzip: 1; None (default): 0 */
    const char *content_type; /* ContentType; NULL when absent */
    uint64_t shard_target_bytes; /* packing target; 0 = one object per shard */
    s3s_manifest_meta manifest_meta; /* default List */
    uint64_t max_record_bytes; /* cap on one manifest line/element; default 8 MiB */
    int skip_bad_records; /* 1: skip (and count) malformed manifest lines; default 0 */
    s3s_equal_steps equal_steps; /* S3Shard EqualSteps (channel, else job); default Off */
    uint32_t records_per_shard; /* S3Shard RecordsPerShard (augmented manifests): records
                                   packed into one shard; 0 (default) = automatic */
} s3s_channel;

/* s3s_job_settings: the job-wide "S3Shard" settings (defaults in docs/dataset.md). */
typedef struct s3s_job_settings {
    uint32_t epochs; /* Epochs; default 1 */
    uint64_t shard_target_bytes; /* ShardTargetBytes; default 64 MiB */
    uint32_t lease_seconds; /* LeaseSeconds; default 60 */
    uint64_t cache_limit_bytes; /* CacheLimitBytes; default 10 GiB, 0 = no cache */
    const char *state_dir; /* StateDir; default ".s3shard" */
    const char *state_uri; /* StateUri (s3:// mirror of the state); NULL = none */
    const char *data_root; /* DataRoot; default "/opt/ml/input/data" */
    int drop_remainder; /* DropRemainder: 1 when the job-wide EqualSteps is Drop */
    s3s_equal_steps equal_steps; /* EqualSteps (job-wide default of the channels); default
                                    Off, or Drop when DropRemainder is true */
} s3s_job_settings;

typedef struct s3s_job s3s_job;

/* s3s_job_parse parses and validates a job spec held in memory. name is used in
 * messages (e.g. the file name; NULL: "job"). The spec is either an object
 * {"InputDataConfig": [...], "S3Shard": {...}} or a bare InputDataConfig array.
 * Fails with S3S_EPARSE (JSON syntax: name:line:column), S3S_ECONFIG (a rule:
 * the JSON path and what was expected), S3S_ETOOBIG, S3S_ENOMEM. */
S3S_API int s3s_job_parse(s3s_job **out, const char *json, size_t len, const char *name,
                          s3s_errinfo *err);

/* s3s_job_load reads a job spec file (at most 16 MiB) and parses it. Also S3S_EIO. */
S3S_API int s3s_job_load(s3s_job **out, const char *path, s3s_errinfo *err);

/* s3s_job_destroy frees a job. NULL-safe. */
S3S_API void s3s_job_destroy(s3s_job *job);

/* s3s_job_channel_count returns the number of channels (1..20). */
S3S_API size_t s3s_job_channel_count(const s3s_job *job);

/* s3s_job_channel returns channel i (in spec order), or NULL past the end. */
S3S_API const s3s_channel *s3s_job_channel(const s3s_job *job, size_t i);

/* s3s_job_channel_find returns the channel called name, or NULL. */
S3S_API const s3s_channel *s3s_job_channel_find(const s3s_job *job, const char *name);

/* s3s_job_settings_get returns the job-wide settings. */
S3S_API const s3s_job_settings *s3s_job_settings_get(const s3s_job *job);

/* s3s_job_to_json writes the resolved job (every default filled in) as indented
 * JSON into *out (heap, NUL-terminated; caller frees). */
S3S_API int s3s_job_to_json(const s3s_job *job, char **out, s3s_errinfo *err);

/* ---- snapshots ------------------------------------------------------------------ */

typedef struct s3s_snapshot s3s_snapshot;

typedef enum s3s_snapshot_kind {
    S3S_SNAP_OBJECTS = 0, /* (key, size, ETag), sorted by key bytes, keys unique: a
                             prefix or directory listing */
    S3S_SNAP_MANIFEST = 1, /* (key, size, ETag) in manifest order (repeats allowed) */
    S3S_SNAP_RECORDS = 2 /* augmented-manifest records in file order; the "key" is the
                            record's selected attributes as compact JSON, size its length */
} s3s_snapshot_kind;

/* s3s_entry: one entry of a snapshot, pointing into the snapshot's memory. */
typedef struct s3s_entry {
    const char *key; /* object key within the bucket (or the record text); not NUL-terminated */
    size_t key_len;
    uint64_t size; /* object size in bytes */
    char etag[72]; /* ETag without quotes, "" when unknown */
} s3s_entry;

typedef struct s3s_s3 s3s_s3; /* from s3shard/s3.h */

/* s3s_source_opts: what to enumerate. s3s_source_opts_init sets the defaults. */
typedef struct s3s_source_opts {
    s3s_data_type data_type; /* default S3Prefix */
    const char *uri; /* s3://bucket/prefix, the manifest's s3:// URI (or a local path
                        or file:// URI to read the manifest from disk), or a directory */
    const char *const *attribute_names; /* augmented manifests: which attributes, in order */
    size_t n_attribute_names;
    s3s_s3 *s3; /* client for s3:// sources; not owned; NULL for local sources */
    unsigned list_parallelism; /* for s3s_s3_list_parallel; 0 (default): the client's */
    s3s_manifest_meta manifest_meta; /* default S3S_META_LIST */
    uint64_t max_record_bytes; /* cap per manifest line/element; default 8 MiB */
    uint64_t max_manifest_bytes; /* cap on a manifest file; default 4 GiB */
    int skip_bad_records; /* 1: skip malformed lines, counting them; default 0: fail */
} s3s_source_opts;

S3S_API void s3s_source_opts_init(s3s_source_opts *opts);

/* s3s_source_opts_from_channel fills opts from a job channel (opts_init first).
 * s3 is stored as given. */
S3S_API void s3s_source_opts_from_channel(s3s_source_opts *opts, const s3s_channel *ch, s3s_s3 *s3);

/* s3s_snapshot_create enumerates a source into a new snapshot: an S3 prefix
 * (listed with s3s_s3_list_parallel), a manifest, an augmented manifest, or a
 * local directory (recursively; regular files only; keys are '/'-separated
 * paths relative to it). Fails with the source's error (S3S_ENOTFOUND, ...),
 * S3S_EPARSE naming file, line and column for malformed manifests, S3S_ETOOBIG
 * past a cap, S3S_ENOMEM. */
S3S_API int s3s_snapshot_create(s3s_snapshot **out, const s3s_source_opts *opts, s3s_errinfo *err);

/* s3s_snapshot_save writes the snapshot file atomically (temp file + rename). */
S3S_API int s3s_snapshot_save(const s3s_snapshot *snap, const char *path, s3s_errinfo *err);

/* s3s_snapshot_load reads a snapshot file, checks its version and checksum and
 * every offset in it. S3S_ECORRUPT on a bad checksum, S3S_EPROTO on an unknown
 * version, S3S_EPARSE on a malformed file, S3S_EIO. */
S3S_API int s3s_snapshot_load(s3s_snapshot **out, const char *path, s3s_errinfo *err);

/* s3s_snapshot_load_mem is s3s_snapshot_load from a buffer (copied). */
S3S_API int s3s_snapshot_load_mem(s3s_snapshot **out, const void *data, size_t len,
                                  s3s_errinfo *err);

/* s3s_snapshot_put / s3s_snapshot_get store and fetch the snapshot file at an
 * s3:// URI through s3. get refuses files over 64 GiB. */
S3S_API int s3s_snapshot_put(const s3s_snapshot *snap, s3s_s3 *s3, const char *uri,
                             s3s_errinfo *err);
S3S_API int s3s_snapshot_get(s3s_snapshot **out, s3s_s3 *s3, const char *uri, s3s_errinfo *err);

/* s3s_snapshot_destroy frees a snapshot. NULL-safe. */
S3S_API void s3s_snapshot_destroy(s3s_snapshot *snap);

S3S_API size_t s3s_snapshot_count(const s3s_snapshot *snap);
S3S_API s3s_snapshot_kind s3s_snapshot_kind_get(const s3s_snapshot *snap);
S3S_API uint64_t s3s_snapshot_total_bytes(const s3s_snapshot *snap);
/* s3s_snapshot_source returns the source the snapshot was made from (an s3://
 * URI or a path), e.g. "s3://bucket/prefix". */
S3S_API const char *s3s_snapshot_source(const s3s_snapshot *snap);
/* s3s_snapshot_bucket returns the bucket its keys live in, or NULL for local data. */
S3S_API const char *s3s_snapshot_bucket(const s3s_snapshot *snap);

/* s3s_snapshot_hash copies the 32-byte SHA-256 content hash into out. The hash
 * covers the kind, the bucket and every entry (docs/dataset.md), not the file. */
S3S_API void s3s_snapshot_hash(const s3s_snapshot *snap, uint8_t out[32]);
/* s3s_snapshot_hash_hex writes the hash as 64 hex digits plus NUL into out. */
S3S_API void s3s_snapshot_hash_hex(const s3s_snapshot *snap, char out[65]);

/* s3s_snapshot_verify recomputes the content hash and checks the entries'
 * invariants (order, uniqueness). S3S_ECORRUPT when they do not hold. */
S3S_API int s3s_snapshot_verify(const s3s_snapshot *snap, s3s_errinfo *err);

/* s3s_snapshot_check_hash fails with S3S_EMISMATCH when the snapshot's hash is
 * not expected_hex (what a resumed job started with). */
S3S_API int s3s_snapshot_check_hash(const s3s_snapshot *snap, const char *expected_hex,
                                    s3s_errinfo *err);

/* s3s_snapshot_entry fills out with entry i (0 <= i < count). S3S_EINVAL past the end. */
S3S_API int s3s_snapshot_entry(const s3s_snapshot *snap, size_t i, s3s_entry *out);

/* ---- shards, epoch order, shares ------------------------------------------------- */

/* s3s_plan_opts: how to cut and order a snapshot. s3s_plan_opts_init sets the
 * defaults. */
typedef struct s3s_plan_opts {
    uint64_t shard_target_bytes; /* pack runs of small objects up to this many bytes;
                                    0 = one object per shard; default 64 MiB */
    int shuffle; /* 0 (default): snapshot order; 1: shuffle with seed and epoch */
    uint64_t seed; /* default 0 */
    uint64_t epoch; /* default 0 */
    s3s_distribution distribution; /* default FullyReplicated */
    s3s_balance balance; /* default count */
    uint32_t records_per_shard; /* augmented-manifest records per shard, 1 .. 65536;
                                   0 (default) = automatic: count / 1024 clamped to
                                   1 .. 256 (docs/dataset.md "Shards") */
} s3s_plan_opts;

S3S_API void s3s_plan_opts_init(s3s_plan_opts *opts);

/* s3s_plan_opts_from_channel fills opts from a job channel for one epoch. */
S3S_API void s3s_plan_opts_from_channel(s3s_plan_opts *opts, const s3s_channel *ch, uint64_t epoch);

typedef struct s3s_plan s3s_plan;

/* s3s_plan_create cuts snap into shards and computes the epoch order. The plan
 * keeps a pointer to snap: snap must outlive it. Memory: 4 bytes per shard
 * (8 when small objects are packed).
 * Fails with S3S_ENOMEM, or S3S_ETOOBIG past 2^32-1 shards. */
S3S_API int s3s_plan_create(s3s_plan **out, const s3s_snapshot *snap, const s3s_plan_opts *opts,
                            s3s_errinfo *err);

S3S_API void s3s_plan_destroy(s3s_plan *plan);

/* s3s_plan_shard_count returns the number of shards. */
S3S_API size_t s3s_plan_shard_count(const s3s_plan *plan);

/* s3s_plan_order returns the epoch order: order[pos] is the shard at position
 * pos (0 <= pos < shard count). It does not depend on the world size. The
 * coordinator grants Dynamic shards in this order. Owned by the plan. */
S3S_API const uint32_t *s3s_plan_order(const s3s_plan *plan);

/* s3s_shard: a shard is the run of snapshot entries [first, first + count). */
typedef struct s3s_shard {
    uint64_t first;
    uint32_t count;
    uint64_t bytes; /* sum of the entries' sizes */
} s3s_shard;

/* s3s_plan_shard fills out with shard id. S3S_EINVAL past the end. */
S3S_API int s3s_plan_shard(const s3s_plan *plan, uint32_t id, s3s_shard *out);

/* s3s_share: a rank's share is the span [begin, end) of epoch-order positions:
 * the shards order[begin], ..., order[end - 1], to be read in that order. For
 * FullyReplicated it is [0, shard count) for every rank. */
typedef struct s3s_share {
    uint64_t begin;
    uint64_t end;
} s3s_share;

/* s3s_plan_share computes rank's share of a world of world_size ranks (ShardedByS3Key:
 * contiguous spans cut at equal cumulative counts or bytes, docs/dataset.md).
 * S3S_EINVAL when rank >= world_size or world_size == 0; S3S_ENOTSUP for a
 * Dynamic plan (the coordinator decides at run time). O(shards). */
S3S_API int s3s_plan_share(const s3s_plan *plan, uint32_t rank, uint32_t world_size, s3s_share *out,
                           s3s_errinfo *err);

/* s3s_plan_shares computes every rank's share in one pass: bounds must hold
 * world_size + 1 values; rank r gets [bounds[r], bounds[r + 1]). */
S3S_API int s3s_plan_shares(const s3s_plan *plan, uint32_t world_size, uint64_t *bounds,
                            s3s_errinfo *err);

/* s3s_epoch_permutation writes the epoch order of n items into perm (n values):
 * identity when shuffle is 0, else the Fisher-Yates permutation driven by the
 * counter-based generator keyed by (seed, epoch) of docs/dataset.md. n < 2^32. */
S3S_API void s3s_epoch_permutation(uint32_t *perm, size_t n, int shuffle, uint64_t seed,
                                   uint64_t epoch);

/* ---- topology -------------------------------------------------------------------- */

/* s3s_topology: which process this is. */
typedef struct s3s_topology {
    uint32_t rank;
    uint32_t world_size;
    uint32_t local_rank; /* 0 when the launcher does not say */
    char source[32]; /* "flags", "torch", "openmpi", "pmi", "slurm", "sagemaker" */
} s3s_topology;

/* s3s_topology_detect reads the topology from the environment, trying in order
 * torch (RANK, WORLD_SIZE, LOCAL_RANK), Open MPI (OMPI_COMM_WORLD_RANK, _SIZE,
 * _LOCAL_RANK), PMI (PMI_RANK, PMI_SIZE), Slurm (SLURM_PROCID, SLURM_NTASKS,
 * SLURM_LOCALID), then SageMaker's resourceconfig.json (one rank per host: the
 * index of current_host in hosts). resourceconfig: its path, NULL for
 * $S3SHARD_RESOURCE_CONFIG or /opt/ml/input/config/resourceconfig.json.
 * S3S_ENOTOPO when nothing is set; S3S_ECONFIG for a half-set or invalid one. */
S3S_API int s3s_topology_detect(s3s_topology *out, const char *resourceconfig, s3s_errinfo *err);

#ifdef __cplusplus
}
#endif
#endif
