/* mode_pipe.c: Pipe mode (mode_pipe.h). zlib is used here only. */
#include "worker/mode_pipe.h"

#include "common/util/log.h"
#include "s3shard/error.h"
#include "worker/keypath.h"
#include "worker/recordio.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (256u * 1024)
#define EPIPE_RC (-1) /* internal: the reader left */

typedef struct pctx {
    const s3s__pipe_mode_opts *o;
    int fd;
    int record_io, gzip;
    uint64_t bytes;
    uint8_t *rec; /* RecordIO: the object being framed */
    size_t rec_len, rec_cap;
    const char *key;
    const char *manifest; /* augmented manifests: its URI, for messages */
    s3s__errbuf *eb;
} pctx;

static int stopped(const pctx *c)
{
    return c->o->stop != NULL && *c->o->stop != 0;
}

/* fifo_write writes everything, or returns EPIPE_RC when the reader left. */
static int fifo_write(void *ud, const void *p, size_t n)
{
    pctx *c = ud;
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t m = write(c->fd, b, n);
        if (m < 0 && errno == EINTR) {
            if (stopped(c))
                return S3S_EINTERRUPTED;
            continue;
        }
        if (m < 0 && errno == EPIPE) {
            /* consume the SIGPIPE raised for this thread (blocked here) */
            sigset_t s;
            sigemptyset(&s);
            sigaddset(&s, SIGPIPE);
            struct timespec zero = {0, 0};
            while (sigtimedwait(&s, NULL, &zero) == SIGPIPE)
                ;
            return EPIPE_RC;
        }
        if (m < 0)
            return s3s__err_set(c->eb, S3S_EIO, "pipe write: %s", strerror(errno));
        b += m;
        n -= (size_t)m;
        c->bytes += (uint64_t)m;
    }
    return 0;
}

/* emit takes plain object bytes: straight to the FIFO, or kept for framing. */
static int emit(pctx *c, const uint8_t *p, size_t n)
{
    if (!c->record_io)
        return fifo_write(c, p, n);
    if (c->rec_len + n > S3S__RECORDIO_MAX)
        return s3s__err_set(c->eb, S3S_ETOOBIG, "%s: past the RecordIO record limit of %u bytes",
                            c->key, S3S__RECORDIO_MAX);
    if (c->rec_len + n > c->rec_cap) {
        size_t cap = c->rec_cap ? c->rec_cap : CHUNK;
        while (cap < c->rec_len + n)
            cap *= 2;
        uint8_t *nb = realloc(c->rec, cap);
        if (nb == NULL)
            return s3s__err_set(c->eb, S3S_ENOMEM, "out of memory");
        c->rec = nb;
        c->rec_cap = cap;
    }
    memcpy(c->rec + c->rec_len, p, n);
    c->rec_len += n;
    return 0;
}

/* stream_item copies one item's bytes (decompressed, framed) into the FIFO. */
static int stream_item(pctx *c, s3s_item *it, uint8_t *in, uint8_t *out)
{
    s3s_reader *r = s3s_item_reader(it);
    const s3s_item_info *info = s3s_item_info_get(it);
    c->key = info->key;
    c->rec_len = 0;
    z_stream z;
    memset(&z, 0, sizeof(z));
    int rc = 0, zinit = 0, zend = 0;
    uint64_t zin = 0;
    /* an augmented manifest's inline attribute (its JSON value) is never
     * compressed: CompressionType applies to the objects */
    int gzip = c->gzip && !(info->attribute != NULL && info->bucket[0] == '\0');
    if (gzip) {
        if (inflateInit2(&z, 15 + 32) != Z_OK)
            return s3s__err_set(c->eb, S3S_ENOMEM, "zlib init failed");
        zinit = 1;
    }
    for (;;) {
        if (stopped(c)) {
            rc = S3S_EINTERRUPTED;
            break;
        }
        size_t got = 0;
        rc = s3s_reader_read(r, in, CHUNK, &got);
        if (rc != 0) {
            if (info->attribute != NULL) /* name the record too */
                s3s__err_set(c->eb, rc, "%s:%llu: attribute \"%s\" (s3://%s/%s): %s", c->manifest,
                             (unsigned long long)info->record_line, info->attribute, info->bucket,
                             info->key, s3s_reader_errmsg(r));
            else
                s3s__err_set(c->eb, rc, "%s", s3s_reader_errmsg(r));
            break;
        }
        if (got == 0) {
            if (gzip && !zend && zin > 0)
                rc = s3s__err_set(c->eb, S3S_EPARSE, "%s: gzip stream cut short at byte %llu",
                                  info->key, (unsigned long long)zin);
            break;
        }
        if (!gzip) {
            rc = emit(c, in, got);
            if (rc != 0)
                break;
            continue;
        }
        z.next_in = in;
        z.avail_in = (uInt)got;
        while (z.avail_in > 0 && rc == 0) {
            if (zend) { /* another gzip member follows */
                inflateReset(&z);
                zend = 0;
            }
            z.next_out = out;
            z.avail_out = CHUNK;
            uInt before = z.avail_in;
            int zr = inflate(&z, Z_NO_FLUSH);
            zin += before - z.avail_in;
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
                rc = s3s__err_set(c->eb, S3S_EPARSE, "%s: gzip: %s near byte %llu", info->key,
                                  z.msg ? z.msg : "bad data", (unsigned long long)zin);
                break;
            }
            if (zr == Z_STREAM_END)
                zend = 1;
            if (CHUNK - z.avail_out > 0)
                rc = emit(c, out, CHUNK - z.avail_out);
            if (zr == Z_BUF_ERROR && before == z.avail_in && z.avail_out == CHUNK)
                break; /* no progress: needs more input */
        }
        if (rc != 0)
            break;
    }
    if (zinit)
        inflateEnd(&z);
    if (rc == 0 && c->record_io)
        rc = s3s__recordio_write(c->rec, c->rec_len, fifo_write, c);
    if (rc == S3S_ETOOBIG)
        s3s__err_set(c->eb, rc, "%s: a RecordIO part would pass 2^29 bytes", info->key);
    return rc;
}

/* open_writer waits for a reader to open the FIFO (polling so that stop is
 * seen), then makes the descriptor blocking. */
static int open_writer(pctx *c, const char *path)
{
    for (;;) {
        int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            int fl = fcntl(fd, F_GETFL);
            fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
            return fd;
        }
        if (errno != ENXIO && errno != EINTR)
            return -s3s__err_set(c->eb, S3S_EIO, "open %s: %s", path, strerror(errno));
        if (stopped(c))
            return -S3S_EINTERRUPTED;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* make_dirs creates dir and its parents (mode 0755). */
static int make_dirs(const char *dir, s3s__errbuf *eb)
{
    char *p = strdup(dir);
    if (p == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    for (char *q = p + 1;; q++) {
        if (*q != '/' && *q != '\0')
            continue;
        char c = *q;
        *q = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int rc = s3s__err_set(eb, S3S_EIO, "mkdir %s: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        *q = c;
        if (c == '\0')
            break;
    }
    free(p);
    return 0;
}

static int make_fifo(const char *path, s3s__errbuf *eb)
{
    (void)unlink(path); /* a stale FIFO of a previous run */
    if (mkfifo(path, 0600) != 0)
        return s3s__err_set(eb, S3S_EIO, "mkfifo %s: %s", path, strerror(errno));
    return 0;
}

int s3s__mode_pipe_run(const s3s__pipe_mode_opts *o, s3s__pipe_mode_result *res, s3s__errbuf *eb)
{
    const s3s_worker_opts *wo = o->wopts;
    const char *root = o->root ? o->root : "/opt/ml/input/data";
    const s3s_channel *ch = NULL;
    if (wo->job != NULL)
        ch = wo->channel ? s3s_job_channel_find(wo->job, wo->channel) : s3s_job_channel(wo->job, 0);
    const char *name = o->channel_name ? o->channel_name : ch ? ch->name : NULL;
    if (name == NULL || strchr(name, '/') != NULL || s3s__keypath_check(name, strlen(name), eb))
        return s3s__err_set(eb, S3S_EINVAL, "Pipe mode: a plain channel name is needed");
    pctx c = {.o = o, .fd = -1, .eb = eb};
    c.record_io = o->record_io >= 0 ? o->record_io : ch ? ch->record_io : 0;
    c.gzip = o->gzip >= 0 ? o->gzip : ch ? ch->gzip : 0;
    c.manifest = wo->snapshot ? s3s_snapshot_source(wo->snapshot) : ch ? ch->uri : "manifest";
    s3s__pipe_mode_result r = {0};
    s3s_worker *w = NULL;
    s3s_errinfo ei = {0};
    int rc = s3s_worker_create(&w, wo, &ei);
    if (rc != 0)
        return s3s__err_set(eb, rc, "%s", ei.msg);
    uint64_t first = wo->first_epoch;
    uint32_t epochs = wo->epochs;
    if (epochs == 0) {
        uint32_t je = wo->job ? s3s_job_settings_get(wo->job)->epochs : 1;
        epochs = je > first ? (uint32_t)(je - first) : 1;
    }
    sigset_t pipeset, oldset;
    sigemptyset(&pipeset);
    sigaddset(&pipeset, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipeset, &oldset);
    uint8_t *in = malloc(CHUNK), *out = malloc(CHUNK);
    size_t pl = strlen(root) + strlen(name) + 32;
    char *path = malloc(pl), *prev = malloc(pl);
    s3s_item *pending = NULL;
    if (!in || !out || !path || !prev) {
        rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
        goto done;
    }
    prev[0] = '\0';
    rc = make_dirs(root, eb);
    if (rc == 0) {
        snprintf(path, pl, "%s/%s_%llu", root, name, (unsigned long long)first);
        rc = make_fifo(path, eb);
    }
    if (rc == 0 && o->ready != NULL)
        o->ready(o->ready_ud);
    for (uint64_t e = first; e < first + epochs && rc == 0; e++) {
        /* path is this epoch's FIFO, made already (before the previous
         * epoch's reader saw its end of file) */
        if (prev[0] != '\0')
            (void)unlink(prev);
        memcpy(prev, path, pl);
        int fd = open_writer(&c, path);
        if (fd < 0) {
            rc = -fd;
            break;
        }
        c.fd = fd;
        int reader_gone = 0;
        for (;;) {
            if (pending == NULL) {
                int nr = s3s_worker_next(w, &pending);
                if (nr == S3S_EEOF)
                    break;
                if (nr != 0) {
                    rc = s3s__err_set(eb, nr, "%s", s3s_worker_errmsg(w));
                    break;
                }
            }
            if (s3s_item_info_get(pending)->epoch != e)
                break; /* the next epoch's first item: kept for its FIFO */
            if (!reader_gone) {
                int sr = stream_item(&c, pending, in, out);
                if (sr == EPIPE_RC) {
                    reader_gone = 1;
                    r.early_closes++;
                    S3S_LOGW("pipe %s: the reader closed before the end; skipping the rest "
                             "of epoch %llu",
                             path, (unsigned long long)e);
                } else if (sr != 0) {
                    rc = sr;
                } else {
                    r.items++;
                }
            }
            /* an item not read to the end is released, not done: a
             * coordinator would hand it out again */
            s3s_item_close(pending);
            pending = NULL;
            if (rc != 0)
                break;
        }
        /* The next epoch's FIFO exists before this one's reader sees end of
         * file, so a script that opens <channel>_<e+1> right after EOF on
         * <channel>_<e> never races us (SageMaker's contract). */
        if (rc == 0 && e + 1 < first + epochs) {
            snprintf(path, pl, "%s/%s_%llu", root, name, (unsigned long long)(e + 1));
            rc = make_fifo(path, eb);
        }
        close(c.fd);
        c.fd = -1;
        if (rc == 0 && !reader_gone)
            r.epochs++;
    }
done:
    s3s_item_close(pending);
    {
        /* drop a SIGPIPE still pending before unblocking */
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipeset, NULL, &zero) == SIGPIPE)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &oldset, NULL);
    r.bytes = c.bytes;
    if (res)
        *res = r;
    free(c.rec);
    free(in);
    free(out);
    free(path);
    free(prev);
    s3s_worker_destroy(w);
    return rc;
}
