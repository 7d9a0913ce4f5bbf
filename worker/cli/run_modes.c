/* run_modes.c: `s3shard run`'s channels in their input modes (see run.h):
 * File through worker/mode_file.h, Pipe through worker/mode_pipe.h (in a
 * thread per channel, stopped through its stop flag), FastFile through the
 * FUSE mount (worker/modes/fastfile.h) over the worker's readers. */
#include "common/util/fs.h"
#include "worker/cli/run.h"

#include "common/util/log.h"
#include "s3shard/error.h"
#include "worker/cli/cli_s3.h"
#include "worker/cli/dataset_cli.h"
#include "worker/mode_file.h"
#include "worker/mode_pipe.h"
#include "worker/modes/objio.h"
#include "worker/modes/share.h"
#ifdef S3S_HAVE_FUSE
#include "worker/modes/fastfile.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CMD "run"

typedef struct chan {
    const s3s_channel *ch;
    char *path; /* what SM_CHANNEL_<NAME> points at */
    s3s_snapshot *snap;
    s3s__share_list list;
#ifdef S3S_HAVE_FUSE
    s3s__fastfile *ff;
#endif
    /* Pipe */
    pthread_t thread;
    int started;
    volatile sig_atomic_t stop;
    sem_t ready; /* posted when the first FIFO exists, or the stream ended */
    int rc;
    char err[1200];
    s3s__pipe_mode_result res;
} chan;

struct s3s__run_channels {
    s3s__run_cfg cfg;
    chan *v;
    size_t n;
    s3s_worker *ffw; /* the readers behind every FastFile mount */
    s3s__objio io;
};

static void worker_opts(const s3s__run_cfg *cfg, const chan *c, s3s_worker_opts *o)
{
    s3s_worker_opts_init(o);
    s3s__cli_s3_opts(cfg->g, &o->s3, 0);
    o->job = cfg->job;
    o->channel = c ? c->ch->name : NULL;
    o->snapshot = c ? c->snap : NULL;
    o->rank = cfg->topo.rank;
    o->world_size = cfg->topo.world_size;
    o->first_epoch = cfg->epoch;
    o->cache_dir = cfg->cache_dir;
    if (cfg->connections)
        o->connections = cfg->connections;
    if (cfg->coordinator != NULL && c != NULL && c->ch->input_mode != S3S_MODE_FASTFILE) {
        o->coordinator = cfg->coordinator;
        o->coord_secret_file = cfg->secret_file;
        o->coord_tls_ca = cfg->tls_ca;
        o->local_rank = cfg->topo.local_rank;
        o->host = cfg->host;
    }
}

static int stop_pending(const s3s__run_cfg *cfg)
{
    sigset_t p;
    if (cfg->stop_signals == NULL || sigpending(&p) != 0)
        return 0;
    for (int s = 1; s < NSIG; s++)
        if (sigismember(cfg->stop_signals, s) == 1 && sigismember(&p, s) == 1)
            return s;
    return 0;
}

/* ---- File ------------------------------------------------------------------------ */

/* The stop watcher of a File download: the stop signals stay blocked (the
 * command's signalfd takes them later), so a thread polls for one pending
 * (not taking it) or a Spot notice, and raises the download's stop flag. */
typedef struct file_watch {
    const s3s__run_cfg *cfg;
    chan *c;
    volatile sig_atomic_t done; /* the download ended: the watcher leaves */
    int why; /* the signal seen, or -1: a Spot notice */
} file_watch;

static void *file_watch_main(void *arg)
{
    file_watch *fw = arg;
    while (!fw->done) {
        int sig = stop_pending(fw->cfg);
        if (sig != 0 || (fw->cfg->notice != NULL && *fw->cfg->notice != 0)) {
            fw->why = sig != 0 ? sig : -1;
            fw->c->stop = 1;
            break;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int file_mode(const s3s__run_cfg *cfg, chan *c)
{
    s3s_worker_opts o;
    worker_opts(cfg, c, &o);
    o.epochs = 1; /* File mode downloads the first epoch's share once */
    s3s__file_mode_opts fo = {
        .wopts = &o, .root = cfg->data_root, .progress = -1, .stop = &c->stop};
    s3s__file_mode_result res = {0};
    s3s__errbuf eb = {{0}};
    file_watch fw = {.cfg = cfg, .c = c};
    pthread_t wt;
    int watching = pthread_create(&wt, NULL, file_watch_main, &fw) == 0;
    int rc = s3s__mode_file_materialize(&fo, &res, &eb);
    fw.done = 1;
    if (watching)
        pthread_join(wt, NULL);
    if (rc == S3S_EINTERRUPTED) {
        fprintf(stderr,
                "s3shard run: channel %s (File): %s during the download: %s; the command was "
                "not started\n",
                c->ch->name, fw.why > 0 ? strsignal(fw.why) : "a Spot interruption notice", eb.msg);
        return 128 + (fw.why > 0 ? fw.why : SIGTERM);
    }
    if (rc != 0)
        return s3s__cli_fail(CMD, "channel %s (File): %s", c->ch->name, eb.msg);
    fprintf(stderr,
            "s3shard run: channel %s (File): %" PRIu64 " files, %" PRIu64
            " bytes downloaded, %" PRIu64 " already there\n",
            c->ch->name, res.files, res.bytes, res.skipped_files);
    return 0;
}

/* ---- Pipe ------------------------------------------------------------------------ */

typedef struct pipe_arg {
    chan *c;
    const s3s__run_cfg *cfg;
} pipe_arg;

static void pipe_ready(void *ud)
{
    sem_post(&((chan *)ud)->ready);
}

static void *pipe_main(void *arg)
{
    pipe_arg *pa = arg;
    chan *c = pa->c;
    s3s_worker_opts o;
    worker_opts(pa->cfg, c, &o);
    o.cancel = &c->stop; /* a stop interrupts a wait for a lease */
    o.auto_commit = 0; /* an item is done when the FIFO took it (mode_pipe.h) */
    s3s__pipe_mode_opts po = {
        .wopts = &o, .root = pa->cfg->data_root, .record_io = -1, .gzip = -1, .stop = &c->stop};
    po.ready = pipe_ready;
    po.ready_ud = c;
    s3s__errbuf eb = {{0}};
    c->rc = s3s__mode_pipe_run(&po, &c->res, &eb);
    if (c->rc != 0)
        snprintf(c->err, sizeof c->err, "%s", eb.msg);
    sem_post(&c->ready); /* in case it failed before its first FIFO */
    free(pa);
    return NULL;
}

static int pipe_start(const s3s__run_cfg *cfg, chan *c)
{
    pipe_arg *pa = malloc(sizeof(*pa));
    if (pa == NULL)
        return s3s__cli_fail(CMD, "out of memory");
    pa->c = c;
    pa->cfg = cfg;
    sem_init(&c->ready, 0, 0);
    int e = pthread_create(&c->thread, NULL, pipe_main, pa);
    if (e != 0) {
        free(pa);
        sem_destroy(&c->ready);
        return s3s__cli_fail(CMD, "channel %s: thread: %s", c->ch->name, strerror(e));
    }
    c->started = 1;
    /* The command starts only once <channel>_0 exists (or the stream failed:
     * then stop reports it). */
    while (sem_wait(&c->ready) != 0 && errno == EINTR)
        ;
    return 0;
}

static void write_progress(const s3s__run_cfg *cfg, const chan *c)
{
    char dir[PATH_MAX], path[PATH_MAX + 64], tmp[PATH_MAX + 80];
    snprintf(dir, sizeof dir, "%s/progress", cfg->state_dir);
    snprintf(path, sizeof path, "%s/%s.rank%u.json", dir, c->ch->name, cfg->topo.rank);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = NULL;
    if (s3s__mkdirs(dir) != 0 || (f = fopen(tmp, "we")) == NULL) {
        fprintf(stderr, "s3shard run: cannot record progress in %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(f,
            "{\"channel\": \"%s\", \"rank\": %u, \"world_size\": %u, \"first_epoch\": %" PRIu64
            ", \"epochs_done\": %" PRIu64 ", \"items\": %" PRIu64 ", \"bytes\": %" PRIu64
            ", \"stopped\": %s}\n",
            c->ch->name, cfg->topo.rank, cfg->topo.world_size, cfg->epoch, c->res.epochs,
            c->res.items, c->res.bytes, c->rc == S3S_EINTERRUPTED ? "true" : "false");
    int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0)
        fprintf(stderr, "s3shard run: cannot record progress in %s: %s\n", path, strerror(errno));
}

/* ---- the set ---------------------------------------------------------------------- */

const char *s3s__run_channels_path(const s3s__run_channels *rc, size_t i)
{
    return rc->v[i].path;
}

void s3s__run_channels_stop(s3s__run_channels *rc)
{
    if (rc == NULL)
        return;
    for (size_t i = 0; i < rc->n; i++) {
        chan *c = &rc->v[i];
        if (c->started) {
            c->stop = 1;
            pthread_join(c->thread, NULL);
            sem_destroy(&c->ready);
            if (c->rc != 0 && c->rc != S3S_EINTERRUPTED)
                fprintf(stderr, "s3shard run: channel %s (Pipe): %s\n", c->ch->name, c->err);
            write_progress(&rc->cfg, c);
            fprintf(stderr,
                    "s3shard run: channel %s (Pipe): %" PRIu64 " epochs read to the end, %" PRIu64
                    " items, %" PRIu64 " bytes streamed%s\n",
                    c->ch->name, c->res.epochs, c->res.items, c->res.bytes,
                    c->rc == S3S_EINTERRUPTED ? " (stopped)" : "");
        }
    }
    for (size_t i = 0; i < rc->n; i++) {
        chan *c = &rc->v[i];
#ifdef S3S_HAVE_FUSE
        s3s__fastfile_unmount(c->ff);
#endif
        s3s__share_list_fini(&c->list);
        s3s_snapshot_destroy(c->snap);
        free(c->path);
    }
    s3s_worker_destroy(rc->ffw);
    free(rc->v);
    free(rc);
}

/* stopped_after: 0, or 128 + the signal when a stop signal (or a Spot notice,
 * as a SIGTERM) came while a channel was laid out: the command is not started. */
static int stopped_after(const s3s__run_cfg *cfg)
{
    int sig = stop_pending(cfg);
    if (sig == 0 && cfg->notice != NULL && *cfg->notice != 0)
        sig = SIGTERM;
    if (sig == 0)
        return 0;
    fprintf(stderr, "s3shard run: signal %d while laying out the channels: stopping\n", sig);
    return 128 + sig;
}

static const char *const mode_names[] = {"File", "FastFile", "Pipe"};
static const char *const dist_names[] = {"FullyReplicated", "ShardedByS3Key", "Dynamic"};

/* start_mode lays channel c out in its input mode. Returns 0 or 1 (printed). */
static int start_mode(s3s__run_channels *rc, const s3s__run_cfg *cfg, chan *c)
{
    int ret = 0;
    s3s__errbuf eb = {{0}};
    (void)eb;
    switch (c->ch->input_mode) {
    case S3S_MODE_FILE:
        if (s3s__mkdirs(c->path) != 0)
            ret = s3s__cli_fail(CMD, "%s: %s", c->path, strerror(errno));
        else
            ret = file_mode(cfg, c);
        break;
    case S3S_MODE_PIPE:
        if (s3s__mkdirs(cfg->data_root) != 0)
            ret = s3s__cli_fail(CMD, "%s: %s", cfg->data_root, strerror(errno));
        else
            ret = pipe_start(&rc->cfg, c);
        break;
    case S3S_MODE_FASTFILE:
#ifdef S3S_HAVE_FUSE
        if (rc->ffw == NULL) {
            s3s_worker_opts o;
            worker_opts(cfg, NULL, &o);
            if (s3s__objio_worker_create(&rc->ffw, &o, &eb) != 0) {
                ret = s3s__cli_fail(CMD, "FastFile reader: %s", eb.msg);
                break;
            }
            s3s__objio_worker_io(rc->ffw, &rc->io);
        }
        if (s3s__fastfile_mount(&c->ff, c->path, &c->list, &rc->io, &eb) != 0)
            ret = s3s__cli_fail(CMD, "channel %s: %s", c->ch->name, eb.msg);
#else
        ret = s3s__cli_fail(CMD,
                            "channel %s: FastFile mode needs libfuse3, which this build "
                            "lacks (use File or Pipe)",
                            c->ch->name);
#endif
        break;
    }
    return ret;
}

int s3s__run_channels_start(s3s__run_channels **out, const s3s__run_cfg *cfg)
{
    size_t n = s3s_job_channel_count(cfg->job);
    s3s__run_channels *rc = calloc(1, sizeof(*rc));
    if (rc == NULL || (rc->v = calloc(n, sizeof(*rc->v))) == NULL) {
        free(rc);
        return s3s__cli_fail(CMD, "out of memory");
    }
    rc->cfg = *cfg;
    rc->n = n;
    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; i++) {
        chan *c = &rc->v[i];
        c->ch = s3s_job_channel(cfg->job, i);
        if (c->ch->data_type == S3S_DATA_FILESYSTEM) {
            /* EFS / FSx: already a file system; SageMaker mounts it, we point at it. */
            if ((c->path = strdup(c->ch->local_path)) == NULL)
                ret = s3s__cli_fail(CMD, "out of memory");
            continue;
        }
        if (asprintf(&c->path, "%s/%s", cfg->data_root, c->ch->name) < 0) {
            c->path = NULL;
            ret = s3s__cli_fail(CMD, "out of memory");
            break;
        }
        if (cfg->coordinator != NULL && c->ch->input_mode != S3S_MODE_FASTFILE) {
            /* the coordinator's snapshot and leases: nothing to list here */
            fprintf(stderr, "s3shard run: channel %s (%s, %s): leases from %s for rank %u\n",
                    c->ch->name, mode_names[c->ch->input_mode], dist_names[c->ch->distribution],
                    cfg->coordinator, cfg->topo.rank);
            ret = start_mode(rc, cfg, c);
            ret = ret == 0 ? stopped_after(cfg) : ret;
            continue;
        }
        if (cfg->coordinator != NULL && c->ch->distribution == S3S_DIST_DYNAMIC) {
            ret = s3s__cli_fail(CMD,
                                "channel %s: FastFile mode with Dynamic distribution makes no "
                                "sense: the mount lists the rank's files when it starts, and "
                                "Dynamic hands shards out while ranks read; use Pipe (streams "
                                "the leased shards) or File (downloads what the rank leases), or "
                                "ShardedByS3Key",
                                c->ch->name);
            break;
        }
        if (s3s__cli_channel_snapshot(cfg->g, CMD, cfg->job, c->ch, NULL, &c->snap) != 0) {
            ret = 1;
            break;
        }
        /* The share's keys are checked before anything is written or mounted. */
        s3s__errbuf eb = {{0}};
        /* An augmented manifest is streamed record by record (Pipe mode only,
         * as in SageMaker): no objects to lay out. */
        int records = s3s_snapshot_kind_get(c->snap) == S3S_SNAP_RECORDS;
        if (records && c->ch->input_mode != S3S_MODE_PIPE) {
            s3s__mode_records_refuse(c->ch->name, mode_names[c->ch->input_mode], &eb);
            ret = s3s__cli_fail(CMD, "%s", eb.msg);
            break;
        }
        if (!records &&
            s3s__share_list_build(&c->list, c->ch, c->snap, cfg->epoch, cfg->topo.rank,
                                  cfg->topo.world_size, &eb) != 0) {
            ret = s3s__cli_fail(CMD, "%s", eb.msg);
            break;
        }
        if (records)
            fprintf(stderr,
                    "s3shard run: channel %s (Pipe): augmented manifest of %zu records, "
                    "streamed record by record for rank %u of %u\n",
                    c->ch->name, s3s_snapshot_count(c->snap), cfg->topo.rank, cfg->topo.world_size);
        else
            fprintf(stderr,
                    "s3shard run: channel %s (%s): %zu objects, %" PRIu64
                    " bytes for rank %u of %u\n",
                    c->ch->name, mode_names[c->ch->input_mode], c->list.n, c->list.bytes,
                    cfg->topo.rank, cfg->topo.world_size);
        ret = start_mode(rc, cfg, c);
        ret = ret == 0 ? stopped_after(cfg) : ret;
    }
    if (ret != 0) {
        s3s__run_channels_stop(rc);
        return ret;
    }
    *out = rc;
    return 0;
}
