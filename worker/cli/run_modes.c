/* run_modes.c: `s3shard run`'s channels in their input modes (see run.h).
 *
 * File mode here is a small stand-in over the worker's items (skips files of
 * the right size; temp file + rename); worker/mode_file.c, when merged,
 * replaces it (ETag checks, parallel files, progress bar). */
#include "worker/cli/run.h"

#include "common/util/log.h"
#include "s3shard/error.h"
#include "worker/cli/cli_s3.h"
#include "worker/cli/dataset_cli.h"
#include "worker/keypath.h"
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "run"
#define IOBUF (1u << 20)
#define RECORDIO_MAGIC 0xced7230au
#define RECORDIO_MAX ((1u << 29) - 1)

typedef struct chan {
    const s3s_channel *ch;
    char *path; /* what SM_CHANNEL_<NAME> points at */
    s3s_snapshot *snap;
    s3s__share_list list;
#ifdef S3S_HAVE_FUSE
    s3s__fastfile *ff;
#endif
    /* Pipe */
    s3s_worker *pw;
    pthread_t thread;
    int started;
    atomic_int stop;
    int rc;
    char err[1200];
    uint64_t epoch, position, offset, items_done, bytes;
    int in_item;
} chan;

struct s3s__run_channels {
    s3s__run_cfg cfg;
    chan *v;
    size_t n;
    s3s_worker *ffw; /* the readers behind every FastFile mount */
    s3s__objio io;
};

static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            tmp[i] = c;
        }
    }
    return 0;
}

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
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
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

static int file_mode(const s3s__run_cfg *cfg, chan *c)
{
    s3s_worker_opts o;
    worker_opts(cfg, c, &o);
    o.epochs = 1; /* File mode downloads the first epoch's share once */
    s3s_worker *w = NULL;
    s3s_errinfo ei = {0};
    if (s3s_worker_create(&w, &o, &ei) != 0)
        return s3s__cli_fail(CMD, "channel %s: %s", c->ch->name, ei.msg);
    size_t prefix = s3s__share_prefix(c->snap);
    uint8_t *buf = malloc(IOBUF);
    int rc = buf ? 0 : s3s__cli_fail(CMD, "out of memory");
    uint64_t files = 0, bytes = 0, skipped = 0;
    while (rc == 0) {
        int sig = stop_pending(cfg);
        if (sig) {
            fprintf(stderr, "s3shard run: signal %d during the download of channel %s: stopping\n",
                    sig, c->ch->name);
            rc = 128 + sig;
            break;
        }
        s3s_item *it = NULL;
        int e = s3s_worker_next(w, &it);
        if (e == S3S_EEOF)
            break;
        if (e != 0) {
            rc = s3s__cli_fail(CMD, "channel %s: %s", c->ch->name, s3s_worker_errmsg(w));
            break;
        }
        const s3s_item_info *in = s3s_item_info_get(it);
        size_t kl = strlen(in->key);
        char *dst = NULL, tmp[PATH_MAX];
        s3s__errbuf eb = {{0}};
        size_t skip = prefix <= kl ? prefix : 0;
        if (s3s__keypath_join(&dst, c->path, in->key + skip, kl - skip, &eb) != 0) {
            rc = s3s__cli_fail(CMD, "channel %s: object s3://%s/%s refused: %s", c->ch->name,
                               in->bucket, in->key, eb.msg);
            s3s_item_close(it);
            break;
        }
        struct stat st;
        if (stat(dst, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == in->size) {
            skipped++;
            free(dst);
            s3s_item_close(it);
            continue;
        }
        char *slash = strrchr(dst, '/');
        *slash = '\0';
        int mk = mkdirs(dst);
        *slash = '/';
        snprintf(tmp, sizeof tmp, "%s.s3shard-tmp.%ld", dst, (long)getpid());
        int fd = mk == 0 ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
        if (fd < 0) {
            rc = s3s__cli_fail(CMD, "channel %s: %s: %s", c->ch->name, tmp, strerror(errno));
        } else {
            s3s_reader *r = s3s_item_reader(it);
            for (;;) {
                size_t got = 0;
                if ((e = s3s_reader_read(r, buf, IOBUF, &got)) != 0) {
                    rc = s3s__cli_fail(CMD, "channel %s: s3://%s/%s: %s", c->ch->name, in->bucket,
                                       in->key, s3s_reader_errmsg(r));
                    break;
                }
                if (got == 0)
                    break;
                if (write_all(fd, buf, got) != 0) {
                    rc = s3s__cli_fail(CMD, "%s: %s", tmp, strerror(errno));
                    break;
                }
            }
            if (close(fd) != 0 && rc == 0)
                rc = s3s__cli_fail(CMD, "%s: %s", tmp, strerror(errno));
            if (rc == 0 && rename(tmp, dst) != 0)
                rc = s3s__cli_fail(CMD, "%s: %s", dst, strerror(errno));
            if (rc != 0)
                unlink(tmp);
            else {
                files++;
                bytes += in->size;
            }
        }
        free(dst);
        s3s_item_close(it);
    }
    free(buf);
    s3s_worker_destroy(w);
    if (rc == 0)
        fprintf(stderr,
                "s3shard run: channel %s (File): %" PRIu64 " files, %" PRIu64
                " bytes downloaded, %" PRIu64 " already there\n",
                c->ch->name, files, bytes, skipped);
    return rc;
}

/* ---- Pipe ------------------------------------------------------------------------ */

static void fifo_path(const chan *c, const char *root, uint64_t epoch, char *path, size_t n)
{
    snprintf(path, n, "%s/%s_%" PRIu64, root, c->ch->name, epoch);
}

/* fifo_make creates <root>/<channel>_<epoch> (replacing a stale one). */
static int fifo_make(chan *c, const char *path)
{
    unlink(path);
    if (mkfifo(path, 0600) != 0) {
        snprintf(c->err, sizeof c->err, "mkfifo %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* fifo_wait_reader opens the FIFO for writing once a reader has it open. */
static int fifo_wait_reader(chan *c, const char *path)
{
    while (!atomic_load(&c->stop)) {
        int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0)
            return fd;
        if (errno != ENXIO && errno != EINTR) {
            snprintf(c->err, sizeof c->err, "open %s: %s", path, strerror(errno));
            return -1;
        }
        usleep(20000); /* no reader yet */
    }
    return -1;
}

/* pipe_write writes n bytes to the non-blocking FIFO, waking every 100 ms to
 * notice a stop. Returns 0, or -1 (stop, or the reader went away: EPIPE). */
static int pipe_write(chan *c, int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n > 0) {
        if (atomic_load(&c->stop))
            return -1;
        ssize_t w = write(fd, s, n);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            poll(&pf, 1, 100);
            continue;
        }
        if (w <= 0) {
            snprintf(c->err, sizeof c->err, "writing the pipe: %s", strerror(errno));
            return -1;
        }
        s += w;
        n -= (size_t)w;
        c->offset += c->in_item ? (uint64_t)w : 0;
        c->bytes += (uint64_t)w;
    }
    return 0;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* stream_item writes one object, wrapped in RecordIO records when asked
 * (SageMaker's framing: magic, then cflag << 29 | length, the data, padding
 * to 4 bytes; objects past 2^29 - 1 bytes are split: cflag 1 first, 2
 * middle, 3 last). c->offset counts the object's bytes written. */
static int stream_item(chan *c, int fd, s3s_item *it, uint8_t *buf)
{
    const s3s_item_info *in = s3s_item_info_get(it);
    s3s_reader *r = s3s_item_reader(it);
    int rio = c->ch->record_io;
    uint64_t left = in->size - in->offset, rec_left = 0;
    uint32_t rec_len = 0;
    int first = 1;
    c->offset = in->offset;
    for (;;) {
        if (rio && rec_left == 0 && (left > 0 || first)) {
            uint32_t len = left > RECORDIO_MAX ? RECORDIO_MAX : (uint32_t)left;
            uint32_t cflag = 0;
            if (in->size > RECORDIO_MAX)
                cflag = first ? 1u : (left > RECORDIO_MAX ? 2u : 3u);
            uint8_t h[8];
            put_le32(h, RECORDIO_MAGIC);
            put_le32(h + 4, cflag << 29 | len);
            c->in_item = 0;
            if (pipe_write(c, fd, h, 8) != 0)
                return -1;
            rec_left = len;
            rec_len = len;
            first = 0;
        }
        if (left == 0)
            break;
        size_t want = IOBUF;
        if (rio && want > rec_left)
            want = (size_t)rec_left;
        size_t got = 0;
        if (s3s_reader_read(r, buf, want, &got) != 0) {
            snprintf(c->err, sizeof c->err, "s3://%s/%s: %s", in->bucket, in->key,
                     s3s_reader_errmsg(r));
            return -1;
        }
        if (got == 0)
            break;
        c->in_item = 1;
        if (pipe_write(c, fd, buf, got) != 0)
            return -1;
        left -= got;
        if (rio) {
            rec_left -= got;
            if (rec_left == 0) {
                static const uint8_t zero[4] = {0};
                uint32_t pad = (4 - rec_len % 4) % 4;
                c->in_item = 0;
                if (pad && pipe_write(c, fd, zero, pad) != 0)
                    return -1;
            }
        }
    }
    c->in_item = 0;
    return 0;
}

typedef struct pipe_arg {
    chan *c;
    const s3s__run_cfg *cfg;
    uint32_t epochs;
} pipe_arg;

static void *pipe_main(void *arg)
{
    pipe_arg *pa = arg;
    chan *c = pa->c;
    const char *root = pa->cfg->data_root;
    uint64_t first = pa->cfg->epoch, end = first + pa->epochs;
    uint8_t *buf = malloc(IOBUF);
    s3s_item *pending = NULL;
    char path[PATH_MAX];
    c->rc = buf ? 0 : S3S_ENOMEM;
    for (uint64_t e = first; e < end && c->rc == 0 && !atomic_load(&c->stop); e++) {
        c->epoch = e;
        c->position = 0;
        c->offset = 0;
        fifo_path(c, root, e, path, sizeof path);
        if (e == first && fifo_make(c, path) != 0) {
            c->rc = S3S_EIO;
            break;
        }
        int fd = fifo_wait_reader(c, path);
        if (fd < 0) {
            c->rc = atomic_load(&c->stop) ? 0 : S3S_EIO;
            break;
        }
        for (;;) {
            s3s_item *it = pending;
            pending = NULL;
            if (it == NULL) {
                int r = s3s_worker_next(c->pw, &it);
                if (r == S3S_EEOF)
                    break;
                if (r != 0) {
                    snprintf(c->err, sizeof c->err, "%s", s3s_worker_errmsg(c->pw));
                    c->rc = r;
                    break;
                }
            }
            const s3s_item_info *in = s3s_item_info_get(it);
            if (in->epoch != e) { /* the next epoch's first item */
                pending = it;
                break;
            }
            c->position = in->position;
            if (stream_item(c, fd, it, buf) != 0) {
                if (!atomic_load(&c->stop))
                    c->rc = S3S_EIO;
                /* Record exactly how much of the object went into the pipe. */
                s3s_item_commit(it, c->offset);
                s3s_item_close(it);
                break;
            }
            c->items_done++;
            s3s_item_close(it);
            c->offset = 0;
            c->position++;
        }
        /* The next epoch's FIFO exists before this one ends, so a reader that
         * sees the end can open it at once. */
        if (c->rc == 0 && !atomic_load(&c->stop) && e + 1 < end) {
            char next[PATH_MAX];
            fifo_path(c, root, e + 1, next, sizeof next);
            if (fifo_make(c, next) != 0)
                c->rc = S3S_EIO;
        }
        close(fd);
        unlink(path); /* the reader holds it open; a late opener must not block */
    }
    if (pending != NULL)
        s3s_item_close(pending);
    free(buf);
    free(pa);
    return NULL;
}

static int pipe_start(const s3s__run_cfg *cfg, chan *c)
{
    if (c->ch->gzip)
        return s3s__cli_fail(
            CMD, "channel %s: CompressionType Gzip is not supported in Pipe mode yet", c->ch->name);
    s3s_worker_opts o;
    worker_opts(cfg, c, &o);
    uint32_t total = s3s_job_settings_get(cfg->job)->epochs;
    uint32_t epochs = total > cfg->epoch ? (uint32_t)(total - cfg->epoch) : 1;
    o.epochs = epochs;
    s3s_errinfo ei = {0};
    if (s3s_worker_create(&c->pw, &o, &ei) != 0)
        return s3s__cli_fail(CMD, "channel %s: %s", c->ch->name, ei.msg);
    pipe_arg *pa = malloc(sizeof(*pa));
    if (pa == NULL)
        return s3s__cli_fail(CMD, "out of memory");
    pa->c = c;
    pa->cfg = cfg;
    pa->epochs = epochs;
    int e = pthread_create(&c->thread, NULL, pipe_main, pa);
    if (e != 0) {
        free(pa);
        return s3s__cli_fail(CMD, "channel %s: thread: %s", c->ch->name, strerror(e));
    }
    c->started = 1;
    return 0;
}

static void write_progress(const s3s__run_cfg *cfg, const chan *c)
{
    char dir[PATH_MAX], path[PATH_MAX + 64], tmp[PATH_MAX + 80];
    snprintf(dir, sizeof dir, "%s/progress", cfg->state_dir);
    snprintf(path, sizeof path, "%s/%s.rank%u.json", dir, c->ch->name, cfg->topo.rank);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = NULL;
    if (mkdirs(dir) != 0 || (f = fopen(tmp, "we")) == NULL) {
        fprintf(stderr, "s3shard run: cannot record progress in %s: %s\n", path, strerror(errno));
        return;
    }
    fprintf(f,
            "{\"channel\": \"%s\", \"rank\": %u, \"world_size\": %u, \"epoch\": %" PRIu64
            ", \"position\": %" PRIu64 ", \"offset\": %" PRIu64 ", \"items_done\": %" PRIu64
            ", \"bytes\": %" PRIu64 "}\n",
            c->ch->name, cfg->topo.rank, cfg->topo.world_size, c->epoch, c->position, c->offset,
            c->items_done, c->bytes);
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
            atomic_store(&c->stop, 1);
            pthread_join(c->thread, NULL);
            if (c->rc != 0)
                fprintf(stderr, "s3shard run: channel %s (Pipe): %s\n", c->ch->name, c->err);
            write_progress(&rc->cfg, c);
            fprintf(stderr,
                    "s3shard run: channel %s (Pipe): stopped at epoch %" PRIu64
                    ", position %" PRIu64 ", offset %" PRIu64 " (%" PRIu64 " items streamed)\n",
                    c->ch->name, c->epoch, c->position, c->offset, c->items_done);
        }
    }
    for (size_t i = 0; i < rc->n; i++) {
        chan *c = &rc->v[i];
#ifdef S3S_HAVE_FUSE
        s3s__fastfile_unmount(c->ff);
#endif
        s3s_worker_destroy(c->pw);
        s3s__share_list_fini(&c->list);
        s3s_snapshot_destroy(c->snap);
        free(c->path);
    }
    s3s_worker_destroy(rc->ffw);
    free(rc->v);
    free(rc);
}

static const char *const mode_names[] = {"File", "FastFile", "Pipe"};

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
        if (s3s__cli_channel_snapshot(cfg->g, CMD, cfg->job, c->ch, NULL, &c->snap) != 0) {
            ret = 1;
            break;
        }
        /* The share's keys are checked before anything is written or mounted. */
        s3s__errbuf eb = {{0}};
        if (s3s__share_list_build(&c->list, c->ch, c->snap, cfg->epoch, cfg->topo.rank,
                                  cfg->topo.world_size, &eb) != 0) {
            ret = s3s__cli_fail(CMD, "%s", eb.msg);
            break;
        }
        fprintf(stderr,
                "s3shard run: channel %s (%s): %zu objects, %" PRIu64 " bytes for rank %u of %u\n",
                c->ch->name, mode_names[c->ch->input_mode], c->list.n, c->list.bytes,
                cfg->topo.rank, cfg->topo.world_size);
        switch (c->ch->input_mode) {
        case S3S_MODE_FILE:
            if (mkdirs(c->path) != 0)
                ret = s3s__cli_fail(CMD, "%s: %s", c->path, strerror(errno));
            else
                ret = file_mode(cfg, c);
            break;
        case S3S_MODE_PIPE:
            if (mkdirs(cfg->data_root) != 0)
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
    }
    if (ret != 0) {
        s3s__run_channels_stop(rc);
        return ret;
    }
    *out = rc;
    return 0;
}
