/* reader.c: s3s_reader: reads of one object through blocks (worker_int.h).
 *
 * Read-ahead: a read that continues where the last one ended (or skips ahead
 * by less than the window, or starts at most readahead_min before where the
 * last one ended: FUSE delivers reads slightly out of order) is sequential; the blocks covering
 * [pos, pos + window) are queued, and the window doubles each time a whole
 * window has been read sequentially, from readahead_min up to readahead_max
 * (at most half the memory budget). Any other read is a jump: the window
 * falls back to readahead_min and blocks outside the new window are dropped
 * (a GET still running for them is cancelled at its next callback). */
#include "worker/worker_int.h"

#include "s3shard/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t window_max(const s3s_worker *w)
{
    uint64_t m = w->o.readahead_max;
    if (m > w->o.prefetch_bytes / 2)
        m = w->o.prefetch_bytes / 2;
    return m < w->o.readahead_min ? w->o.readahead_min : m;
}

int s3s__reader_setup(s3s_reader *r, s3s_worker *w, s3s__obj *obj, uint64_t pos)
{
    memset(r, 0, sizeof(*r));
    r->w = w;
    r->obj = obj;
    r->pos = pos;
    r->start = pos;
    r->seq_next = pos;
    r->furthest = pos; /* bytes before a resume offset count as read */
    r->st.window = w->o.readahead_min;
    r->st.window_peak = r->st.window;
    return 0;
}

void s3s__reader_teardown(s3s_reader *r)
{
    if (r->obj == NULL)
        return;
    s3s_worker *w = r->w;
    pthread_mutex_lock(&w->mu);
    for (uint32_t i = r->obj->lo; i < r->obj->hi; i++)
        s3s__slot_drop_locked(w, r->obj, i);
    pthread_mutex_unlock(&w->mu);
    s3s__obj_unref(w, r->obj);
    r->obj = NULL;
}

/* keep_only_locked drops the object's blocks outside [first, last]. */
static void keep_only_locked(s3s_worker *w, s3s__obj *o, uint32_t first, uint32_t last)
{
    for (uint32_t i = o->lo; i < o->hi; i++)
        if (i < first || i > last)
            s3s__slot_drop_locked(w, o, i);
}

static void count_touch(s3s_reader *r, s3s__blk *b)
{
    if (b->touched)
        return;
    b->touched = 1;
    if (b->from_cache)
        r->st.blocks_cached++;
    else if (b->prefetched)
        r->st.blocks_prefetched++;
    else
        r->st.blocks_fetched++;
}

/* ready: the bytes of b a reader may take (w->mu held). A block on its way
 * into the cache keeps its last byte back until it is there (see caching). */
static uint64_t ready(const s3s__blk *b)
{
    if (b->caching && b->state != BLK_DONE && b->avail >= b->len)
        return b->len - 1;
    return b->avail;
}

/* read_at copies the bytes into dst; or, with fd_out, copies nothing: when
 * the block holding off came from the disk cache it gives a dup of the
 * block's file (*fd_out) and the offset of off in it (*foff_out) for the
 * part of the read in that block (*out_n), else *fd_out = -1, *out_n = 0. */
static int read_at(s3s_reader *r, uint8_t *dst, size_t n, uint64_t off, size_t *out_n, int *fd_out,
                   uint64_t *foff_out)
{
    s3s_worker *w = r->w;
    s3s__obj *o = r->obj;
    *out_n = 0;
    if (off >= o->size || n == 0)
        return 0;
    if (n > o->size - off)
        n = (size_t)(o->size - off);
    uint64_t bs = o->block_size;
    int rc = 0;
    size_t done = 0;
    pthread_mutex_lock(&w->mu);
    /* Sequential: within a window after where the last read ended, or at
     * most readahead_min before it: FUSE's threads deliver the kernel's
     * read-ahead requests (128 KiB each) a little out of order, and taking
     * each late one for a jump used to cut the window back and cancel the
     * GETs ahead (FastFile read 1 GiB at a quarter of the reader's speed). */
    int seq = off == r->seq_next || (off > r->seq_next && off - r->seq_next <= r->st.window) ||
        (off < r->seq_next && r->seq_next - off <= w->o.readahead_min);
    if (!seq) {
        r->st.window = w->o.readahead_min;
        r->seq_run = 0;
        r->st.window_resets++;
    }
    while (done < n) {
        uint64_t cur = off + done;
        uint32_t idx = (uint32_t)(cur / bs);
        /* A late read keeps the window ahead of the furthest one. */
        uint64_t from = seq && r->seq_next > cur ? r->seq_next : cur;
        uint64_t wend = from + r->st.window;
        if (wend > o->size)
            wend = o->size;
        uint32_t last = (uint32_t)((wend - 1) / bs);
        keep_only_locked(w, o, idx, last);
        /* from the resume offset on, in the block holding it (or from this
         * read, when it goes back before it) */
        uint64_t lo = cur < r->start ? cur : r->start, boff0 = (uint64_t)idx * bs;
        s3s__blk *b = s3s__blk_want_locked(w, o, idx, lo > boff0 ? lo - boff0 : 0, 0, 1);
        if (b == NULL) {
            rc = s3s__err_set(&r->eb, S3S_ENOMEM, "out of memory");
            break;
        }
        for (uint32_t j = idx + 1; j <= last; j++)
            if (s3s__blk_want_locked(w, o, j, 0, 0, 0) == NULL)
                break;
        uint64_t boff = cur - b->off;
        /* wait for every byte of this read that lies in this block */
        uint64_t need = boff + (n - done);
        if (need > b->len)
            need = b->len;
        while (b->state != BLK_FAILED && b->state != BLK_DONE && ready(b) < need && !w->stopping) {
            if (b->wake_at == 0 || b->wake_at > need)
                b->wake_at = need;
            w->waiters++;
            pthread_cond_wait(&w->cv_done, &w->mu);
            w->waiters--;
        }
        count_touch(r, b);
        if (b->state == BLK_FAILED || (w->stopping && ready(b) <= boff)) {
            rc = b->state == BLK_FAILED ? b->err : S3S_ECLOSED;
            s3s__err_set(&r->eb, rc, "%s", b->errmsg ? b->errmsg : s3s_strerror(rc));
            /* A failed block is dropped so that a later read retries it. */
            s3s__slot_drop_locked(w, o, idx);
            break;
        }
        uint64_t k = ready(b) - boff;
        if (k > n - done)
            k = n - done;
        if (fd_out != NULL) {
            /* The block's bytes were checked when the cache handed it over
             * (cache.h), and a block file never changes: its fd is as good
             * as its bytes. */
            if (b->from_cache) {
                int fd = fcntl(b->fd, F_DUPFD_CLOEXEC, 0);
                if (fd < 0) {
                    rc = s3s__err_set(&r->eb, S3S_EIO, "cache block %u of %s: dup: %s", b->idx,
                                      o->key, strerror(errno));
                    break;
                }
                *fd_out = fd;
                *foff_out = boff;
                done = k;
            }
            break;
        }
        b->refs++;
        pthread_mutex_unlock(&w->mu);
        if (b->from_cache) {
            uint64_t got = 0;
            while (got < k) {
                ssize_t m = pread(b->fd, dst + done + got, k - got, (off_t)(boff + got));
                if (m < 0 && errno == EINTR)
                    continue;
                if (m <= 0) {
                    rc = s3s__err_set(&r->eb, S3S_EIO, "cache block %u of %s: read: %s", b->idx,
                                      o->key, m < 0 ? strerror(errno) : "short file");
                    break;
                }
                got += (uint64_t)m;
            }
        } else {
            memcpy(dst + done, b->buf + boff, k);
        }
        pthread_mutex_lock(&w->mu);
        s3s__blk_unref_locked(w, b);
        if (rc != 0)
            break;
        done += k;
    }
    if (done > 0) {
        if (!seq || off + done > r->seq_next) {
            /* forward progress counts; the late part of a late read does not */
            r->seq_run += seq && off < r->seq_next ? off + done - r->seq_next : done;
            r->seq_next = off + done;
        }
        uint64_t max = window_max(w);
        while (r->seq_run >= r->st.window && r->st.window < max) {
            r->seq_run -= r->st.window;
            r->st.window = r->st.window * 2 > max ? max : r->st.window * 2;
        }
        if (r->st.window > r->st.window_peak)
            r->st.window_peak = r->st.window;
        r->st.bytes_read += done;
        if (off + done > r->furthest)
            r->furthest = off + done;
    }
    pthread_mutex_unlock(&w->mu);
    *out_n = done;
    return rc;
}

int s3s_reader_pread(s3s_reader *r, void *buf, size_t n, uint64_t off, size_t *out_n)
{
    size_t dummy;
    if (out_n == NULL)
        out_n = &dummy;
    *out_n = 0;
    if (r == NULL || (buf == NULL && n > 0))
        return S3S_EINVAL;
    return read_at(r, buf, n, off, out_n, NULL, NULL);
}

int s3s__reader_pread_fd(s3s_reader *r, size_t n, uint64_t off, int *out_fd, uint64_t *out_foff,
                         size_t *out_n)
{
    *out_fd = -1;
    *out_n = 0;
    if (r == NULL)
        return S3S_EINVAL;
    return read_at(r, NULL, n, off, out_n, out_fd, out_foff);
}

int s3s_reader_read(s3s_reader *r, void *buf, size_t n, size_t *out_n)
{
    size_t got = 0;
    if (r == NULL || (buf == NULL && n > 0)) {
        if (out_n)
            *out_n = 0;
        return S3S_EINVAL;
    }
    int rc = read_at(r, buf, n, r->pos, &got, NULL, NULL);
    r->pos += got;
    if (out_n)
        *out_n = got;
    return rc;
}

int s3s_reader_seek(s3s_reader *r, int64_t off, int whence, uint64_t *out_pos)
{
    if (r == NULL)
        return S3S_EINVAL;
    int64_t base;
    switch (whence) {
    case S3S_SEEK_SET:
        base = 0;
        break;
    case S3S_SEEK_CUR:
        base = (int64_t)r->pos;
        break;
    case S3S_SEEK_END:
        base = (int64_t)r->obj->size;
        break;
    default:
        return s3s__err_set(&r->eb, S3S_EINVAL, "seek: bad whence %d", whence);
    }
    if ((off < 0 && base + off < 0) || (off > 0 && base > INT64_MAX - off))
        return s3s__err_set(&r->eb, S3S_EINVAL, "seek: position out of range");
    r->pos = (uint64_t)(base + off);
    if (out_pos)
        *out_pos = r->pos;
    return 0;
}

void s3s__reader_prefetch(s3s_reader *r, uint64_t off)
{
    s3s__obj *o = r->obj;
    if (o == NULL || off >= o->size)
        return;
    s3s_worker *w = r->w;
    pthread_mutex_lock(&w->mu);
    (void)s3s__blk_want_locked(w, o, (uint32_t)(off / o->block_size), off % o->block_size, 1, 0);
    pthread_mutex_unlock(&w->mu);
}

const char *s3s_reader_errmsg(const s3s_reader *r)
{
    return r ? r->eb.msg : "";
}

void s3s_reader_stats_get(const s3s_reader *r, s3s_reader_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->w->mu);
    *out = r->st;
    pthread_mutex_unlock(&r->w->mu);
}

int s3s_reader_open(s3s_worker *w, const char *bucket, const char *key, uint64_t size,
                    const char *etag, s3s_reader **out)
{
    if (w == NULL || bucket == NULL || key == NULL || out == NULL)
        return S3S_EINVAL;
    s3s_reader *r = malloc(sizeof(*r));
    s3s__obj *o = NULL;
    int rc = r ? s3s__obj_create(w, bucket, key, etag, size, &o) : S3S_ENOMEM;
    if (rc != 0) {
        free(r);
        return rc;
    }
    s3s__reader_setup(r, w, o, 0);
    *out = r;
    return 0;
}

int s3s_reader_close(s3s_reader *r)
{
    if (r == NULL)
        return 0;
    if (r->item != NULL)
        return S3S_EINVAL;
    s3s__reader_teardown(r);
    free(r);
    return 0;
}
