/* get.c: GET, streamed (s3s_s3_get) and as parallel ranges delivered in order
 * (s3s_s3_get_parallel). Resumes after mid-body failures are the engine's
 * job (http.c); here we split, order and bound memory. */
#include "common/s3/client.h"

#include "common/s3/http.h"
#include "common/util/log.h"
#include "s3shard/error.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void fill_info(s3s_s3_objinfo *info, const s3s__xfer *x)
{
    if (info == NULL)
        return;
    info->size = x->total_size;
    memcpy(info->etag, x->etag, sizeof info->etag);
    info->mtime = x->mtime;
}

int s3s_s3_get(s3s_s3 *s3, const char *bucket, const char *key, uint64_t off, uint64_t len,
               const char *if_match, s3s_s3_write_cb cb, void *ud, s3s_s3_objinfo *info)
{
    int rc = s3s__s3_check_args(s3, bucket, key);
    if (rc != 0)
        return rc;
    if (cb == NULL)
        return s3s__err_set(&s3->eb, S3S_EINVAL, "GET %s/%s: no callback", bucket, key);
    if (len == 0) {
        /* Nothing to read; still say what the object is (and that it exists). */
        s3s_s3_objinfo tmp;
        rc = s3s_s3_head(s3, bucket, key, &tmp);
        if (rc == 0 && if_match != NULL && strcmp(if_match, tmp.etag) != 0)
            rc = s3s__err_set(&s3->eb, S3S_ECONFLICT, "GET %s/%s: ETag is %s, not %s", bucket, key,
                              tmp.etag, if_match);
        if (rc == 0 && info != NULL)
            *info = tmp;
        return rc;
    }
    s3s__xfer x;
    s3s__xfer_init(&x);
    x.method = "GET";
    x.bucket = bucket;
    x.key = key;
    x.has_range = off > 0 || len != S3S_TO_END;
    x.range_off = off;
    x.range_len = len;
    x.if_match = if_match;
    x.sink = cb;
    x.sink_ud = ud;
    rc = s3s__http_run(s3, &x);
    if (rc != 0)
        s3s__s3_fail(s3, &x);
    else
        fill_info(info, &x);
    s3s__xfer_fini(&x);
    return rc;
}

/* ---- parallel ranges ------------------------------------------------------------ */

typedef struct piece {
    s3s__xfer x;
    uint64_t off, len;
    int busy; /* submitted, not yet delivered */
    int ready; /* finished fine, bytes in x.body */
    int streaming; /* next in order: its bytes go straight to the caller */
    s3s_s3_write_cb cb;
    void *ud;
} piece;

/* The sink of every piece: the piece whose turn it is streams into the
 * caller's callback (no copy); the others fill their buffer until their turn
 * comes. The engine never hands a byte twice, so both paths see each byte once. */
static int piece_sink(void *ud, const void *p, size_t n)
{
    piece *pc = ud;
    if (pc->streaming)
        return pc->cb(pc->ud, p, n);
    return s3s__buf_append(&pc->x.body, p, n) == 0 ? 0 : S3S_ETOOBIG;
}

/* Makes pc the streaming piece: what it buffered so far goes to the caller first. */
static int piece_stream(piece *pc)
{
    int rc = pc->x.body.len > 0 ? pc->cb(pc->ud, pc->x.body.data, pc->x.body.len) : 0;
    s3s__buf_reset(&pc->x.body);
    pc->streaming = 1;
    return rc;
}

/* Adaptive concurrency (connections 0 and S3SHARD_GET_RAMP=1): like S3's CRT, which aims at a
 * throughput rather than a connection count, start with one range in flight
 * and double the count while the bytes per second delivered grow by at least
 * RAMP_GAIN percent over an epoch of max(RAMP_MIN_PIECES, 2 x count) pieces;
 * at the first epoch that does not, go back to the best count and keep it.
 * A CPU-bound local server is fastest with one or two streams (more only add
 * switching), a per-connection cap (S3, the fault proxy) wants many. */
#define RAMP_GAIN 15
#define RAMP_MIN_PIECES 3

typedef struct ramp {
    unsigned limit, best_limit, max;
    int frozen;
    double best_rate;
    uint64_t epoch_piece, epoch_us;
} ramp;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Called after each delivered piece (delivered = pieces delivered so far). */
static void ramp_step(ramp *r, uint64_t delivered, uint64_t chunk)
{
    if (r->frozen)
        return;
    uint64_t n = delivered - r->epoch_piece;
    uint64_t need = 2u * r->limit > RAMP_MIN_PIECES ? 2u * r->limit : RAMP_MIN_PIECES;
    if (n < need)
        return;
    uint64_t t = now_us();
    double rate = (double)(n * chunk) / (double)(t - r->epoch_us + 1);
    if (rate * 100.0 >= r->best_rate * (100.0 + RAMP_GAIN)) {
        r->best_rate = rate;
        r->best_limit = r->limit;
        if (r->limit >= r->max) {
            r->frozen = 1;
        } else {
            r->limit = 2 * r->limit < r->max ? 2 * r->limit : r->max;
        }
    } else {
        r->limit = r->best_limit;
        r->frozen = 1;
    }
    r->epoch_piece = delivered;
    r->epoch_us = t;
    S3S_LOGD("GET ramp: %.0f MB/s over %llu pieces, now %u in flight%s", rate,
             (unsigned long long)n, r->limit, r->frozen ? " (kept)" : "");
}

/* The old way, for what the first ranged GET cannot answer (a zero length,
 * an offset at or past the end, an empty object): a HEAD, then at most one GET. */
static int get_after_head(s3s_s3 *s3, const char *bucket, const char *key, uint64_t off,
                          uint64_t len, s3s_s3_write_cb cb, void *ud, s3s_s3_objinfo *info)
{
    s3s_s3_objinfo oi;
    int rc = s3s_s3_head(s3, bucket, key, &oi);
    if (rc != 0)
        return rc;
    if (off > oi.size || (off == oi.size && len != 0 && oi.size > 0))
        return s3s__err_set(&s3->eb, S3S_ERANGE,
                            "GET %s/%s: offset %llu is past the end (%llu bytes)", bucket, key,
                            (unsigned long long)off, (unsigned long long)oi.size);
    uint64_t total = len == S3S_TO_END || len > oi.size - off ? oi.size - off : len;
    if (total == 0) {
        if (info != NULL)
            *info = oi;
        return 0;
    }
    return s3s_s3_get(s3, bucket, key, off, total, oi.etag[0] ? oi.etag : NULL, cb, ud, info);
}

int s3s_s3_get_parallel(s3s_s3 *s3, const char *bucket, const char *key, uint64_t off, uint64_t len,
                        unsigned connections, s3s_s3_write_cb cb, void *ud, s3s_s3_objinfo *info)
{
    int rc = s3s__s3_check_args(s3, bucket, key);
    if (rc != 0)
        return rc;
    if (cb == NULL)
        return s3s__err_set(&s3->eb, S3S_EINVAL, "GET %s/%s: no callback", bucket, key);
    /* At most 8 ranges in flight: that fills a path as well as S3 allows per
     * prefix without starving a single-threaded server (s3rver: 32 streams are
     * slower than 8); how many of them is measured (ramp) unless given. */
    /* The ramp is opt-in (S3SHARD_GET_RAMP=1): measured on loopback s3rver it
     * lost to a fixed 8 (docs/benchmarks.md, 12:27 run): at 1-2 in flight each
     * 8 MiB piece pays the server's per-request setup with nothing to hide it. */
    const char *ramp_env = getenv("S3SHARD_GET_RAMP");
    int adaptive = connections == 0 && ramp_env != NULL && strcmp(ramp_env, "1") == 0;
    if (connections == 0)
        connections = s3->opts.max_connections < 8 ? s3->opts.max_connections : 8;
    uint64_t chunk = s3->opts.range_chunk;
    if (len == 0)
        return get_after_head(s3, bucket, key, off, len, cb, ud, info);
    /* The first piece doubles as the HEAD: its reply's Content-Range gives the
     * size and its ETag pins the version; every later piece is fetched with
     * If-Match on it, so the pieces cannot come from two versions of the
     * object. It streams straight to the caller (it is first in order). One
     * round trip less per object than a HEAD first (half the requests for
     * small objects). */
    s3s_s3_objinfo oi;
    uint64_t first = len < chunk ? len : chunk;
    s3s__xfer x0;
    s3s__xfer_init(&x0);
    x0.method = "GET";
    x0.bucket = bucket;
    x0.key = key;
    x0.has_range = 1;
    x0.range_off = off;
    x0.range_len = first;
    x0.sink = cb;
    x0.sink_ud = ud;
    rc = s3s__http_run(s3, &x0);
    if (rc == S3S_ERANGE && x0.delivered == 0) {
        /* 416: an empty object, or off at or past the end: say which. */
        s3s__xfer_fini(&x0);
        return get_after_head(s3, bucket, key, off, len, cb, ud, info);
    }
    if (rc != 0) {
        s3s__s3_fail(s3, &x0);
        s3s__xfer_fini(&x0);
        return rc;
    }
    oi.size = x0.total_size;
    memcpy(oi.etag, x0.etag, sizeof oi.etag);
    oi.mtime = x0.mtime;
    uint64_t delivered0 = x0.delivered;
    s3s__xfer_fini(&x0);
    if (off > oi.size)
        return s3s__err_set(&s3->eb, S3S_EPROTO,
                            "GET %s/%s: reply says %llu bytes, below offset %llu", bucket, key,
                            (unsigned long long)oi.size, (unsigned long long)off);
    uint64_t end = len == S3S_TO_END || len > oi.size - off ? oi.size : off + len;
    uint64_t want0 = end - off < first ? end - off : first;
    if (delivered0 != want0)
        return s3s__err_set(&s3->eb, S3S_ESHORT,
                            "GET %s/%s: first range at %llu gave %llu of %llu bytes", bucket, key,
                            (unsigned long long)off, (unsigned long long)delivered0,
                            (unsigned long long)want0);
    off += want0;
    uint64_t total = end - off;
    if (total == 0) {
        if (info != NULL)
            *info = oi;
        return 0;
    }
    if (total <= chunk || connections <= 1)
        return s3s_s3_get(s3, bucket, key, off, total, oi.etag[0] ? oi.etag : NULL, cb, ud, info);
    uint64_t npieces = (total + chunk - 1) / chunk;
    unsigned window = connections < npieces ? connections : (unsigned)npieces;
    piece *ring = calloc(window, sizeof *ring);
    if (ring == NULL)
        return s3s__err_set(&s3->eb, S3S_ENOMEM, "out of memory");
    for (unsigned i = 0; i < window; i++) {
        s3s__xfer_init(&ring[i].x);
        /* Each slot's buffer is allocated once at full size and reused:
         * growing and faulting in fresh 8 MiB buffers per piece cost more
         * than the transfer itself. */
        ring[i].x.body.data = malloc((size_t)chunk + 1);
        if (ring[i].x.body.data == NULL) {
            rc = s3s__err_set(&s3->eb, S3S_ENOMEM, "out of memory");
            window = i + 1;
            break;
        }
        ring[i].x.body.alloc = (size_t)chunk + 1;
        ring[i].x.body.data[0] = '\0';
    }
    uint64_t next_submit = 0, next_deliver = 0;
    /* The ramp starts at half the count the last GET of this handle settled
     * on (so it re-checks that count) and at 1 on the first. */
    unsigned start = s3->get_inflight > 1 ? s3->get_inflight / 2 : 1;
    if (start > window)
        start = window;
    ramp rp = {.limit = adaptive ? start : window,
               .best_limit = start,
               .max = window,
               .frozen = !adaptive || window <= 1,
               .epoch_us = now_us()};
    while (next_deliver < npieces && rc == 0) {
        /* Keep the window full: piece i lives in ring slot i % window, and at
         * most rp.limit (<= window) are in flight. */
        while (next_submit < npieces && next_submit < next_deliver + rp.limit) {
            piece *p = &ring[next_submit % window];
            p->off = off + next_submit * chunk;
            p->len = end - p->off < chunk ? end - p->off : chunk;
            s3s__buf_reset(&p->x.body);
            p->x.body.max = (size_t)p->len + 1;
            p->x.method = "GET";
            p->x.bucket = bucket;
            p->x.key = key;
            p->x.has_range = 1;
            p->x.range_off = p->off;
            p->x.range_len = p->len;
            p->x.if_match = oi.etag[0] ? oi.etag : NULL;
            p->x.user = p;
            p->x.sink = piece_sink;
            p->x.sink_ud = p;
            p->cb = cb;
            p->ud = ud;
            p->streaming = next_submit == next_deliver;
            if ((rc = s3s__http_submit(s3, &p->x)) != 0) {
                s3s__err_set(&s3->eb, rc, "out of memory");
                break;
            }
            p->busy = 1;
            p->ready = 0;
            next_submit++;
        }
        if (rc != 0)
            break;
        piece *head = &ring[next_deliver % window];
        while (!head->ready && rc == 0) {
            s3s__xfer *d = NULL;
            if (s3s__http_wait(s3, &d) != 0)
                break;
            piece *p = d->user;
            if (d->rc != 0) {
                rc = s3s__s3_fail(s3, d);
                p->busy = 0;
                break;
            }
            if (d->delivered != p->len) {
                rc = s3s__err_set(&s3->eb, S3S_ESHORT,
                                  "GET %s/%s: range at %llu gave %llu of %llu bytes", bucket, key,
                                  (unsigned long long)p->off, (unsigned long long)d->delivered,
                                  (unsigned long long)p->len);
                p->busy = 0;
                break;
            }
            p->ready = 1;
        }
        if (rc != 0)
            break;
        /* Deliver every piece that is ready, in order; the next one still
         * running then streams. */
        while (next_deliver < next_submit && rc == 0) {
            piece *p = &ring[next_deliver % window];
            int crc = 0;
            if (!p->ready) {
                if (!p->streaming)
                    crc = piece_stream(p);
                if (crc == 0)
                    break;
            } else {
                crc = p->x.body.len > 0 ? cb(ud, p->x.body.data, p->x.body.len) : 0;
                p->ready = 0;
                p->busy = 0;
                p->streaming = 0;
                s3s__buf_reset(&p->x.body);
                if (crc == 0) {
                    next_deliver++;
                    ramp_step(&rp, next_deliver, chunk);
                    continue;
                }
            }
            rc = s3s__err_set(&s3->eb, crc, "GET %s/%s: stopped by the caller", bucket, key);
        }
    }
    if (adaptive && rp.frozen && rc == 0)
        s3->get_inflight = rp.limit;
    for (unsigned i = 0; i < window; i++) {
        if (ring[i].busy)
            s3s__http_cancel(s3, &ring[i].x);
        s3s__xfer_fini(&ring[i].x);
    }
    free(ring);
    if (rc == 0 && info != NULL)
        *info = oi;
    return rc;
}
