/* get.c: GET, streamed (s3s_s3_get) and as parallel ranges delivered in order
 * (s3s_s3_get_parallel). Resumes after mid-body failures are the engine's
 * job (http.c); here we split, order and bound memory. */
#include "common/s3/client.h"

#include "common/s3/http.h"
#include "s3shard/error.h"

#include <stdlib.h>
#include <string.h>

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
} piece;

int s3s_s3_get_parallel(s3s_s3 *s3, const char *bucket, const char *key, uint64_t off, uint64_t len,
                        unsigned connections, s3s_s3_write_cb cb, void *ud, s3s_s3_objinfo *info)
{
    int rc = s3s__s3_check_args(s3, bucket, key);
    if (rc != 0)
        return rc;
    if (cb == NULL)
        return s3s__err_set(&s3->eb, S3S_EINVAL, "GET %s/%s: no callback", bucket, key);
    /* 8 ranges in flight fill a path as well as S3 allows per prefix without
     * starving a single-threaded server (s3rver: 32 streams are slower than 8). */
    if (connections == 0)
        connections = s3->opts.max_connections < 8 ? s3->opts.max_connections : 8;
    uint64_t chunk = s3->opts.range_chunk;
    /* Size and ETag first: every piece is then fetched with If-Match, so the
     * pieces cannot come from two versions of the object. */
    s3s_s3_objinfo oi;
    if ((rc = s3s_s3_head(s3, bucket, key, &oi)) != 0)
        return rc;
    if (off > oi.size || (off == oi.size && len != 0 && oi.size > 0))
        return s3s__err_set(&s3->eb, S3S_ERANGE,
                            "GET %s/%s: offset %llu is past the end (%llu bytes)", bucket, key,
                            (unsigned long long)off, (unsigned long long)oi.size);
    uint64_t end = len == S3S_TO_END || len > oi.size - off ? oi.size : off + len;
    uint64_t total = end - off;
    if (total <= chunk || connections <= 1) {
        if (total == 0) {
            if (info != NULL)
                *info = oi;
            return 0;
        }
        return s3s_s3_get(s3, bucket, key, off, total, oi.etag[0] ? oi.etag : NULL, cb, ud, info);
    }
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
    while (next_deliver < npieces && rc == 0) {
        /* Keep the window full: piece i lives in ring slot i % window. */
        while (next_submit < npieces && next_submit < next_deliver + window) {
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
        /* Deliver every piece that is ready, in order. */
        while (next_deliver < next_submit && ring[next_deliver % window].ready) {
            piece *p = &ring[next_deliver % window];
            int crc = cb(ud, p->x.body.data, p->x.body.len);
            p->ready = 0;
            p->busy = 0;
            s3s__buf_reset(&p->x.body);
            if (crc != 0) {
                rc = s3s__err_set(&s3->eb, crc, "GET %s/%s: stopped by the caller", bucket, key);
                break;
            }
            next_deliver++;
        }
    }
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
