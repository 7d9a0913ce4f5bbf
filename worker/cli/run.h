/* run.h: the pieces of `s3shard run` (cmd_run.c: options, environment, the
 * child and its signals; run_modes.c: materialising the channels).
 *
 * A channel is materialised before the command starts (File: downloaded;
 * FastFile: mounted; Pipe: a streamer thread that creates the FIFO of each
 * epoch) and torn down after the command ended (Pipe: stopped at its exact
 * position, which is recorded; FastFile: unmounted). */
#ifndef S3S_CLI_RUN_H
#define S3S_CLI_RUN_H

#include <signal.h>
#include <stdint.h>

#include "s3shard/dataset.h"
#include "s3shard/worker.h"
#include "worker/cli/cli.h"

typedef struct s3s__run_cfg {
    s3s__cli *g;
    const s3s_job *job;
    const char *data_root;
    const char *state_dir;
    const char *cache_dir; /* NULL: no cache */
    s3s_topology topo;
    uint64_t epoch; /* first epoch */
    unsigned connections;
    const sigset_t *stop_signals; /* pending ones abort a File download */
    volatile sig_atomic_t *notice; /* non-zero once a Spot notice came (as a
                                      SIGTERM for the channels); may be NULL */
    /* --coordinator: File and Pipe channels take their items from its leases
     * (FastFile lists the static share; Dynamic FastFile is refused) */
    const char *coordinator, *secret_file, *tls_ca;
    const char *host; /* said in hello; NULL: gethostname() */
} s3s__run_cfg;

typedef struct s3s__run_channels s3s__run_channels;

/* s3s__run_channels_start materialises every channel of cfg->job; on failure
 * prints why ("s3shard run: ...") and undoes what was done. Returns 0, 1
 * (failure) or 128+SIGTERM when a stop signal (or a Spot notice) arrived
 * while they were laid out: a File download stops at once (with a
 * coordinator, the files complete are committed and the leases given back). */
int s3s__run_channels_start(s3s__run_channels **out, const s3s__run_cfg *cfg);

/* s3s__run_channels_path returns the folder SM_CHANNEL_<NAME> points at for
 * channel i (owned by the set). */
const char *s3s__run_channels_path(const s3s__run_channels *rc, size_t i);

/* s3s__run_channels_stop stops the Pipe streamers (recording their exact
 * positions in <StateDir>/progress/<channel>.rank<R>.json), unmounts the
 * FastFile mounts and frees everything. NULL-safe. */
void s3s__run_channels_stop(s3s__run_channels *rc);

#endif
