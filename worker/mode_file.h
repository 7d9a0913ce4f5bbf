/* mode_file.h: SageMaker's File mode: the rank's whole share of a channel
 * downloaded into <root>/<channel>/ before the training command starts.
 *
 * - The share is the static plan's share of first_epoch (one epoch: File mode
 *   downloads once). Paths are the keys relative to the channel's prefix
 *   folder (the source URI up to its last '/'; for manifests, the folder
 *   common to every key), so s3://b/data/train/x/1.jpg under S3Uri
 *   s3://b/data/train/ lands at <root>/train/x/1.jpg.
 * - An augmented manifest (records) is refused (S3S_ENOTSUP, naming channel,
 *   mode and source type): SageMaker streams those in Pipe mode only.
 * - Keys are outside input: every relative key is checked (keypath.h) and the
 *   whole set for file/folder collisions before anything is written; a bad
 *   key fails the call with S3S_EUNSAFEKEY naming the key. S3 folder markers
 *   are skipped.
 * - Crash-safe: each file is written to "<path>.s3shard-tmp.<pid>.<n>" and
 *   renamed into place, so a path holds either nothing or a complete file.
 *   Its ETag is stored in the xattr user.s3shard.etag and in the sidecar
 *   manifest <root>/.<channel>.s3shard-etags (for file systems without user
 *   xattrs). A restart skips a file whose size and ETag match.
 * - Downloads run on `jobs` threads through a worker (its prefetch fetches the
 *   next small files while big ones stream). Progress: a bar (bytes, rate,
 *   ETA, files) on a terminal, else a log line every log_interval_s. */
#ifndef S3S_WORKER_MODE_FILE_H
#define S3S_WORKER_MODE_FILE_H

#include <signal.h>
#include <stdint.h>

#include "common/util/errbuf.h"
#include "s3shard/worker.h"

typedef struct s3s__file_mode_opts {
    const s3s_worker_opts *wopts; /* job/channel or snapshot/plan, rank, world size,
                                     first_epoch, S3 options, connections, cache */
    const char *root; /* data root; NULL: "/opt/ml/input/data" */
    const char *channel_name; /* folder name; NULL: the job channel's name */
    unsigned jobs; /* files written at once; 0: 16 */
    int progress; /* -1: bar when stderr is a terminal, else log lines; 0: log
                     lines; 1: bar; 2: quiet */
    unsigned log_interval_s; /* 0: 10 */
    volatile sig_atomic_t *stop; /* non-NULL: once non-zero (a SIGTERM, a Spot
                                    notice), the download stops: files being
                                    written are abandoned between two chunks
                                    (their temps removed), a wait for a lease
                                    ends, and with a coordinator the files
                                    complete so far stay committed and every
                                    lease is given back (a drain). The call
                                    then fails with S3S_EINTERRUPTED. */
} s3s__file_mode_opts;

typedef struct s3s__file_mode_result {
    uint64_t files, bytes; /* downloaded now */
    uint64_t skipped_files, skipped_bytes; /* already complete */
    double seconds;
} s3s__file_mode_result;

/* s3s__mode_file_materialize downloads the share. res may be NULL (else it
 * holds the counts even on S3S_EINTERRUPTED). Returns 0, S3S_EUNSAFEKEY
 * (nothing written), S3S_EINTERRUPTED (o->stop), the first download error
 * (files already renamed stay; temps are removed), S3S_EIO, S3S_ENOMEM. */
int s3s__mode_file_materialize(const s3s__file_mode_opts *o, s3s__file_mode_result *res,
                               s3s__errbuf *eb);

/* s3s__mode_share_list lists the rank's share of wopts->first_epoch (the
 * static plan, one epoch) for a channel laid out as files (File mode here,
 * FastFile's listing): every key relative to the channel prefix (*plen bytes
 * stripped) is checked as a path, and the whole set for collisions; chname
 * names the channel in messages. *out: heap array of *out_n descriptions
 * (free each with s3s__item_desc_fini, then the array). Returns 0,
 * S3S_EUNSAFEKEY naming the key, the plan's or listing's error, S3S_ENOMEM. */
struct s3s__item_desc;
int s3s__mode_share_list(const s3s_worker_opts *wopts, const char *chname,
                         struct s3s__item_desc **out, size_t *out_n, size_t *plen, s3s__errbuf *eb);

/* s3s__mode_records_refuse fails (S3S_ENOTSUP) with the message for an
 * augmented manifest read in a mode other than Pipe, naming the channel, the
 * mode and the source type: SageMaker takes AugmentedManifestFile in Pipe
 * mode only (docs/worker.md). Returns the code. */
int s3s__mode_records_refuse(const char *chname, const char *mode, s3s__errbuf *eb);

/* s3s__mode_key_prefix returns the length of the prefix stripped from keys of
 * snap (see above). */
size_t s3s__mode_key_prefix(const s3s_snapshot *snap);

#endif
