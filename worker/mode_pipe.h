/* mode_pipe.h: SageMaker's Pipe mode: the rank's share streamed, in plan
 * order, into a FIFO <root>/<channel>_<epoch>, one per epoch.
 *
 * - The FIFO of the first epoch is created at start; the writer opens it when
 *   a reader does (one reader per pipe), writes every item of the epoch,
 *   creates the next epoch's FIFO and only then closes this one: the next
 *   FIFO exists by the time the reader sees end of file, so a script that
 *   opens <channel>_<e+1> right after EOF never races (SageMaker's "the next
 *   epoch's FIFO appears when the previous one is read to the end"). The
 *   previous FIFO is removed when the next is opened; the last is left.
 * - RecordIO (RecordWrapperType): each object becomes one MXNet RecordIO
 *   record (recordio.h); the object is held in memory to frame it, so it is
 *   capped at 512 MiB - 1 (after decompression).
 * - Gzip (CompressionType): objects are gzip (several members allowed) and
 *   are decompressed before framing; a corrupt one fails naming the key.
 * - A reader that closes its end early does not kill the process: SIGPIPE is
 *   blocked in the writing thread and the pending one consumed; the rest of
 *   that epoch is skipped (its items released) and the next epoch's FIFO is
 *   created as usual.
 * - *stop (may be NULL) set non-zero (e.g. by a SIGTERM handler) stops at the
 *   next chunk: the current item is released at its last commit. */
#ifndef S3S_WORKER_MODE_PIPE_H
#define S3S_WORKER_MODE_PIPE_H

#include <signal.h>
#include <stdint.h>

#include "common/util/errbuf.h"
#include "s3shard/worker.h"

typedef struct s3s__pipe_mode_opts {
    const s3s_worker_opts *wopts; /* the plan, epochs (first_epoch, epochs), S3, cache */
    const char *root; /* NULL: "/opt/ml/input/data" */
    const char *channel_name; /* NULL: the job channel's name */
    int record_io; /* -1: the job channel's RecordWrapperType; 0 none; 1 RecordIO */
    int gzip; /* -1: the job channel's CompressionType; 0 none; 1 gzip */
    volatile sig_atomic_t *stop; /* non-zero: stop soon (may be NULL) */
    /* ready (may be NULL) is called once, from the calling thread, as soon
     * as the first epoch's FIFO exists (before a reader opens it), so that a
     * caller running the stream on a thread can start the training command
     * only then: SageMaker's <channel>_0 exists when the script starts. */
    void (*ready)(void *ud);
    void *ready_ud;
} s3s__pipe_mode_opts;

typedef struct s3s__pipe_mode_result {
    uint64_t epochs; /* FIFOs written to the end */
    uint64_t items, bytes; /* items streamed, bytes written into the FIFOs */
    uint64_t early_closes; /* epochs whose reader left before the end */
} s3s__pipe_mode_result;

/* s3s__mode_pipe_run streams every epoch and returns 0, S3S_EINTERRUPTED
 * (stop was set), or the first error (fetch, gzip, S3S_ETOOBIG, S3S_EIO). */
int s3s__mode_pipe_run(const s3s__pipe_mode_opts *o, s3s__pipe_mode_result *res, s3s__errbuf *eb);

#endif
