/* fetch.c: the worker's fetch threads, objects and blocks (worker_int.h).
 *
 * Each fetch thread owns one S3 client (one connection) and takes queued
 * blocks, readers' blocks before prefetch blocks. A block is first claimed in
 * the cache: found there, it is served from the cache's file; another process
 * fetching it makes us wait for its result; otherwise we GET it, streaming
 * into the block's buffer (readers may consume the first bytes while the rest
 * arrives), then write the whole block to the cache writer and commit it. */
#include "worker/worker_int.h"

#include "common/util/log.h"
#include "s3shard/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLAIM_TIMEOUT_MS 120000

typedef struct fthread {
    s3s_worker *w;
    s3s_s3 *s3;
    pthread_t tid;
} fthread;

/* ---- objects ------------------------------------------------------------------ */

int s3s__obj_create(s3s_worker *w, const char *bucket, const char *key, const char *etag,
                    uint64_t size, s3s__obj **out)
{
    s3s__obj *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return S3S_ENOMEM;
    o->refs = 1;
    o->bucket = strdup(bucket);
    o->key = strdup(key);
    o->etag = strdup(etag ? etag : "");
    o->size = size;
    o->block_size = w->o.block_size;
    uint64_t nb = (size + o->block_size - 1) / o->block_size;
    if (nb > UINT32_MAX) {
        s3s__obj_unref(w, o);
        return S3S_ETOOBIG;
    }
    o->nblocks = (uint32_t)nb;
    o->slots = calloc(nb ? nb : 1, sizeof(*o->slots));
    pthread_mutex_init(&o->ce_mu, NULL);
    if (!o->bucket || !o->key || !o->etag || !o->slots) {
        s3s__obj_unref(w, o);
        return S3S_ENOMEM;
    }
    *out = o;
    return 0;
}

void s3s__obj_unref(s3s_worker *w, s3s__obj *o)
{
    (void)w;
    if (o == NULL || __atomic_sub_fetch(&o->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    s3s__cache_entry_close(o->ce);
    pthread_mutex_destroy(&o->ce_mu);
    free(o->slots);
    free(o->data);
    free(o->bucket);
    free(o->key);
    free(o->etag);
    free(o);
}

/* ---- blocks ------------------------------------------------------------------- */

static void q_push(s3s_worker *w, s3s__blk *b)
{
    int p = b->prio;
    b->qnext = NULL;
    b->qprev = w->q_tail[p];
    if (w->q_tail[p])
        w->q_tail[p]->qnext = b;
    else
        w->q_head[p] = b;
    w->q_tail[p] = b;
}

static void q_unlink(s3s_worker *w, s3s__blk *b)
{
    int p = b->prio;
    if (b->qprev)
        b->qprev->qnext = b->qnext;
    else
        w->q_head[p] = b->qnext;
    if (b->qnext)
        b->qnext->qprev = b->qprev;
    else
        w->q_tail[p] = b->qprev;
    b->qnext = b->qprev = NULL;
}

static void mem_add(s3s_worker *w, uint64_t n)
{
    w->mem += n;
    w->st.mem_bytes = w->mem;
    if (w->mem > w->st.mem_peak)
        w->st.mem_peak = w->mem;
}

static void mem_sub(s3s_worker *w, uint64_t n)
{
    w->mem -= n;
    w->st.mem_bytes = w->mem;
}

void s3s__blk_unref_locked(s3s_worker *w, s3s__blk *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    if (b->counted)
        mem_sub(w, b->len);
    if (b->buf != NULL && b->len == b->obj->block_size && w->pool_n < w->pool_cap)
        w->pool[w->pool_n++] = b->buf; /* reused: no fresh mmap and page faults */
    else
        free(b->buf);
    if (b->fd >= 0)
        close(b->fd);
    free(b->errmsg);
    s3s__obj_unref(w, b->obj);
    free(b);
}

s3s__blk *s3s__blk_want_locked(s3s_worker *w, s3s__obj *o, uint32_t idx, uint64_t from, int prio,
                               int force)
{
    s3s__blk *b = o->slots[idx];
    if (b != NULL && b->skip > from) {
        s3s__slot_drop_locked(w, o, idx); /* it lacks bytes wanted now */
        b = NULL;
    }
    if (b != NULL) {
        if (prio < b->prio && b->state == BLK_QUEUED) {
            q_unlink(w, b);
            b->prio = prio;
            q_push(w, b);
        }
        return b;
    }
    uint64_t off = (uint64_t)idx * o->block_size;
    uint64_t len = o->size - off < o->block_size ? o->size - off : o->block_size;
    /* Prefetch may fill three quarters of the budget, read-ahead all of it,
     * so a reader's window is never starved by prefetched items. */
    uint64_t cap = prio == 0 ? w->o.prefetch_bytes : w->o.prefetch_bytes / 4 * 3;
    if (!force && w->mem + len > cap)
        return NULL;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->refs = 2; /* the slot and the queue */
    b->state = BLK_QUEUED;
    b->prio = prio;
    b->prefetched = prio == 1;
    b->idx = idx;
    b->off = off;
    b->len = len;
    b->skip = from < len ? from : 0;
    b->avail = b->skip;
    b->fd = -1;
    b->obj = o;
    __atomic_add_fetch(&o->refs, 1, __ATOMIC_ACQ_REL);
    b->counted = 1;
    mem_add(w, len);
    o->slots[idx] = b;
    if (o->lo == o->hi) {
        o->lo = idx;
        o->hi = idx + 1;
    } else {
        if (idx < o->lo)
            o->lo = idx;
        if (idx + 1 > o->hi)
            o->hi = idx + 1;
    }
    q_push(w, b);
    if (prio == 1)
        w->st.prefetched_blocks++;
    pthread_cond_signal(&w->cv_work);
    return b;
}

void s3s__slot_drop_locked(s3s_worker *w, s3s__obj *o, uint32_t idx)
{
    s3s__blk *b = o->slots[idx];
    if (b == NULL)
        return;
    o->slots[idx] = NULL;
    if (b->state == BLK_QUEUED) { /* nobody will want it: drop the queue's reference too */
        q_unlink(w, b);
        b->state = BLK_FAILED;
        b->err = S3S_ECLOSED;
        s3s__blk_unref_locked(w, b);
    }
    s3s__blk_unref_locked(w, b);
    while (o->lo < o->hi && o->slots[o->lo] == NULL)
        o->lo++;
    while (o->hi > o->lo && o->slots[o->hi - 1] == NULL)
        o->hi--;
}

/* ---- one block -------------------------------------------------------------- */

typedef struct getctx {
    s3s_worker *w;
    s3s__blk *b;
    s3s__cache_writer *cw;
    uint64_t got; /* the block's bytes are filled up to here */
    uint64_t end; /* the GET's end (the block's, or where a partial cached tail starts) */
    s3s__errbuf ceb;
} getctx;

static int on_body(void *ud, const void *p, size_t n)
{
    getctx *g = ud;
    s3s__blk *b = g->b;
    if (g->got + n > g->end)
        return S3S_ETOOBIG;
    memcpy(b->buf + g->got, p, n);
    g->got += n;
    s3s_worker *w = g->w;
    pthread_mutex_lock(&w->mu);
    b->avail = g->got;
    w->st.get_bytes += n;
    /* Wake the reader only once the bytes it waits for are all there: one
     * wake-up per read instead of one per 16 KiB callback. */
    if (b->wake_at != 0 && b->avail >= b->wake_at) {
        b->wake_at = 0;
        pthread_cond_broadcast(&w->cv_done);
    }
    int cancel = w->stopping || b->refs == 1; /* nobody but us wants it any more */
    pthread_mutex_unlock(&w->mu);
    if (w->src != NULL && w->src->fetched != NULL)
        w->src->fetched(w->src, n);
    return cancel ? S3S_ECLOSED : 0;
}

static void open_entry(s3s_worker *w, s3s__obj *o)
{
    pthread_mutex_lock(&o->ce_mu);
    if (!o->ce_tried) {
        o->ce_tried = 1;
        if (w->cache != NULL && o->etag[0] != '\0' && o->size > 0) {
            s3s__cache_id id = {o->bucket, o->key, o->etag, o->size};
            s3s__errbuf eb;
            s3s__cache_entry *ce = NULL;
            if (s3s__cache_entry_open(w->cache, &id, &ce, &eb) != 0) {
                S3S_LOGW("cache entry for %s: %s; reading without the cache", o->key, eb.msg);
            } else if (s3s__cache_entry_block_size(ce) != o->block_size) {
                /* Made by a process with another block size: our block
                 * numbers would not match its files. */
                S3S_LOGD("cache entry for %s has another block size; not used", o->key);
                s3s__cache_entry_close(ce);
            } else {
                o->ce = ce;
            }
        }
    }
    pthread_mutex_unlock(&o->ce_mu);
}

/* copy_tail reads bytes [from, b->len) of the block from a cached partial
 * block (verified when the cache handed it over) into the buffer, making
 * them available to readers. */
static int copy_tail(s3s_worker *w, s3s__blk *b, const s3s__cache_block *tail, getctx *g)
{
    while (g->got < b->len) {
        ssize_t m = pread(tail->fd, b->buf + g->got, b->len - g->got, (off_t)g->got);
        if (m < 0 && errno == EINTR)
            continue;
        if (m <= 0)
            return S3S_EIO;
        g->got += (uint64_t)m;
        pthread_mutex_lock(&w->mu);
        b->avail = g->got;
        if (b->wake_at != 0 && b->avail >= b->wake_at) {
            b->wake_at = 0;
            pthread_cond_broadcast(&w->cv_done);
        }
        w->st.cache_hit_bytes += (uint64_t)m;
        pthread_mutex_unlock(&w->mu);
    }
    return 0;
}

static void run_block(fthread *t, s3s__blk *b)
{
    s3s_worker *w = t->w;
    s3s__obj *o = b->obj;
    getctx g = {.w = w, .b = b, .got = b->skip, .end = b->len};
    s3s__cache_block tail = {.fd = -1};
    int rc;
    if (o->data != NULL) { /* an inline record attribute: its bytes are here */
        uint8_t *copy = malloc(b->len ? b->len : 1);
        if (copy != NULL)
            memcpy(copy, o->data + b->off, b->len);
        pthread_mutex_lock(&w->mu);
        b->buf = copy;
        b->avail = copy ? b->len : 0;
        b->state = copy ? BLK_DONE : BLK_FAILED;
        b->err = copy ? 0 : S3S_ENOMEM;
        pthread_cond_broadcast(&w->cv_done);
        pthread_mutex_unlock(&w->mu);
        return;
    }
    open_entry(w, o);
    if (o->ce != NULL) {
        s3s__cache_block hit = {.fd = -1};
        rc = s3s__cache_claim_from(o->ce, b->idx, b->skip, CLAIM_TIMEOUT_MS, &g.cw, &hit, &g.ceb);
        if (rc == 0 && g.cw != NULL && hit.fd >= 0) {
            tail = hit; /* a partial block holds [hit.skip, len): fetch only what is before */
            g.end = hit.skip;
        } else if (rc == 0 && g.cw == NULL) {
            pthread_mutex_lock(&w->mu);
            b->fd = hit.fd;
            b->from_cache = 1;
            b->avail = b->len;
            if (b->counted) {
                b->counted = 0;
                mem_sub(w, b->len);
            }
            w->st.cache_hits++;
            w->st.cache_hit_bytes += b->len - b->skip;
            b->state = BLK_DONE;
            pthread_cond_broadcast(&w->cv_done);
            pthread_mutex_unlock(&w->mu);
            return;
        }
        if (rc != 0) {
            S3S_LOGW("cache claim for %s block %u: %s; fetching without the cache", o->key, b->idx,
                     g.ceb.msg);
            g.cw = NULL;
        }
    }
    uint8_t *buf = NULL;
    pthread_mutex_lock(&w->mu);
    if (b->len == o->block_size && w->pool_n > 0)
        buf = w->pool[--w->pool_n];
    pthread_mutex_unlock(&w->mu);
    if (buf == NULL)
        buf = malloc(b->len);
    if (buf == NULL) {
        rc = S3S_ENOMEM;
    } else {
        pthread_mutex_lock(&w->mu);
        b->buf = buf;
        b->caching = g.cw != NULL;
        w->st.gets++;
        pthread_mutex_unlock(&w->mu);
        rc = s3s_s3_get(t->s3, o->bucket, o->key, b->off + b->skip, g.end - b->skip,
                        o->etag[0] != '\0' ? o->etag : NULL, on_body, &g, NULL);
        if (rc == 0 && g.got != g.end)
            rc = S3S_ESHORT;
        if (rc == 0 && tail.fd >= 0 && copy_tail(w, b, &tail, &g) != 0) {
            /* the cached tail went bad under us: fetch it after all */
            g.end = b->len;
            rc = s3s_s3_get(t->s3, o->bucket, o->key, b->off + g.got, b->len - g.got,
                            o->etag[0] != '\0' ? o->etag : NULL, on_body, &g, NULL);
            if (rc == 0 && g.got != b->len)
                rc = S3S_ESHORT;
        }
    }
    s3s__cache_block_release(&tail);
    char *msg = NULL;
    if (rc != 0 && rc != S3S_ECLOSED) {
        const char *detail = s3s_s3_errmsg(t->s3);
        size_t need = strlen(o->key) + strlen(detail ? detail : "") + 96;
        msg = malloc(need);
        if (msg != NULL)
            snprintf(msg, need, "GET %s bytes %llu-%llu: %s", o->key,
                     (unsigned long long)(b->off + b->skip),
                     (unsigned long long)(b->off + b->len - 1),
                     detail && detail[0] ? detail : s3s_strerror(rc));
    }
    if (g.cw != NULL) {
        /* The block is whole in memory: one write (and one CRC pass) after
         * the GET instead of one per body callback while bytes arrive; the
         * reader has them already. */
        if (rc == 0 &&
            s3s__cache_writer_write(g.cw, b->buf + b->skip, b->len - b->skip, &g.ceb) != 0) {
            S3S_LOGW("cache write failed (%s): %s; going on without caching", o->key, g.ceb.msg);
            s3s__cache_writer_abort(g.cw);
            g.cw = NULL;
        }
    }
    if (g.cw != NULL) {
        if (rc == 0) {
            if (s3s__cache_writer_commit(g.cw, NULL, &g.ceb) != 0)
                S3S_LOGW("cache commit for %s: %s", o->key, g.ceb.msg);
        } else {
            s3s__cache_writer_abort(g.cw);
        }
    }
    pthread_mutex_lock(&w->mu);
    if (rc == 0) {
        b->state = BLK_DONE;
    } else {
        b->state = BLK_FAILED;
        b->err = rc;
        b->errmsg = msg;
        msg = NULL;
        if (rc != S3S_ECLOSED && b->errmsg)
            s3s__err_set(&w->eb, rc, "%s", b->errmsg);
    }
    pthread_cond_broadcast(&w->cv_done);
    pthread_mutex_unlock(&w->mu);
    free(msg);
}

static void *fetch_main(void *arg)
{
    fthread *t = arg;
    s3s_worker *w = t->w;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stopping && w->q_head[0] == NULL && w->q_head[1] == NULL)
            pthread_cond_wait(&w->cv_work, &w->mu);
        if (w->stopping)
            break;
        s3s__blk *b = w->q_head[0] ? w->q_head[0] : w->q_head[1];
        q_unlink(w, b);
        b->state = BLK_RUNNING;
        pthread_mutex_unlock(&w->mu);
        run_block(t, b);
        pthread_mutex_lock(&w->mu);
        s3s__blk_unref_locked(w, b); /* the queue's reference */
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int s3s__fetch_start(s3s_worker *w, s3s__errbuf *eb)
{
    unsigned n = w->o.connections;
    fthread *ts = calloc(n, sizeof(*ts));
    /* spare buffers: at most a quarter of the budget sits idle in the pool */
    uint64_t cap = w->o.prefetch_bytes / 4 / w->o.block_size;
    w->pool_cap = (unsigned)(cap < 2 * (uint64_t)n ? cap : 2 * (uint64_t)n);
    if (w->pool_cap == 0)
        w->pool_cap = 1;
    w->pool = calloc(w->pool_cap, sizeof(*w->pool));
    if (ts == NULL || w->pool == NULL) {
        free(ts);
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    }
    s3s_s3_opts so = w->o.s3;
    so.max_connections = 2;
    for (unsigned i = 0; i < n; i++) {
        ts[i].w = w;
        int rc = s3s_s3_create(&ts[i].s3, &so);
        if (rc != 0) {
            s3s__err_set(eb, rc, "S3 client: %s", s3s_s3_last_create_error());
            for (unsigned j = 0; j < i; j++)
                s3s_s3_destroy(ts[j].s3);
            free(ts);
            return rc;
        }
    }
    w->threads = (void *)ts;
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&ts[i].tid, NULL, fetch_main, &ts[i]) != 0) {
            w->nthreads = i;
            s3s__fetch_stop(w);
            return s3s__err_set(eb, S3S_ENOMEM, "cannot start fetch thread %u", i);
        }
        w->nthreads = i + 1;
    }
    return 0;
}

void s3s__fetch_stop(s3s_worker *w)
{
    fthread *ts = (fthread *)w->threads;
    if (ts == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv_work);
    pthread_cond_broadcast(&w->cv_done);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->nthreads; i++)
        pthread_join(ts[i].tid, NULL);
    for (unsigned i = 0; i < w->o.connections; i++)
        s3s_s3_destroy(ts[i].s3);
    free(ts);
    w->threads = NULL;
    w->nthreads = 0;
}

void s3s__fetch_pool_free(s3s_worker *w)
{
    while (w->pool_n > 0)
        free(w->pool[--w->pool_n]);
    free(w->pool);
    w->pool = NULL;
    w->pool_cap = 0;
}
