/* http.h: the request engine of an s3s_s3: libcurl multi, SigV4 per attempt,
 * retries.
 *
 * A transfer (s3s__xfer) describes one S3 request; the engine signs and sends
 * it, retrying with capped exponential backoff and full jitter on 500, 502,
 * 503 (SlowDown), 504, 429, RequestTimeout, connection failures, resets,
 * stalls (no byte for stall_timeout_ms) and short bodies. A GET that fails
 * mid-body resumes with a Range from the byte reached and If-Match on the
 * first ETag, so its sink never sees a byte twice and never mixes two
 * versions. 400/403/404/412/416 fail at once. Up to max_connections transfers
 * run at once over reused connections; more wait in a queue.
 *
 * Ownership: the caller owns each s3s__xfer and must keep it alive until the
 * engine hands it back from s3s__http_wait (or s3s__http_cancel). */
#ifndef S3S_S3_HTTP_H
#define S3S_S3_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/buf.h"
#include "s3shard/s3.h"

#define S3S_XFER_BODY_MAX (64u << 20) /* default cap for bodies kept in memory */

typedef struct s3s__xfer_priv s3s__xfer_priv;
typedef struct s3s__http s3s__http;

typedef struct s3s__xfer {
    /* ---- request (set before submit) ---- */
    const char *method; /* GET HEAD PUT POST DELETE */
    const char *bucket;
    const char *key; /* NULL for bucket-level requests */
    const char *query; /* already encoded, without '?'; NULL: none */
    int has_range;
    uint64_t range_off;
    uint64_t range_len; /* S3S_TO_END: open-ended */
    const char *if_match; /* sent on every attempt when non-NULL */
    const char *content_type; /* sent and signed when non-NULL */
    /* request body: memory (up_mem) or a file region (up_fd >= 0), up_len bytes */
    int has_body;
    const void *up_mem;
    int up_fd;
    uint64_t up_off, up_len;
    /* ---- response body: into sink, or kept in body (capped) ---- */
    s3s_s3_write_cb sink;
    void *sink_ud;
    s3s__buf body;
    /* ---- results ---- */
    int rc; /* 0 or S3S_E*; message in err */
    char err[768];
    long status;
    uint64_t total_size; /* object size from Content-Range, else Content-Length */
    char etag[72];
    int64_t mtime;
    uint64_t delivered; /* body bytes handed over (sink or body) over all attempts */
    unsigned attempts;
    void *user; /* for the submitter */
    /* ---- engine-private ---- */
    s3s__xfer_priv *priv;
} s3s__xfer;

/* s3s__xfer_init zeroes x and sets defaults (no body, body cap S3S_XFER_BODY_MAX). */
void s3s__xfer_init(s3s__xfer *x);
/* s3s__xfer_fini frees the body buffer and engine state (x must not be in flight). */
void s3s__xfer_fini(s3s__xfer *x);

/* s3s__http_create/destroy: the engine of s3 (uses s3->opts, creds, ep, kc). */
int s3s__http_create(s3s__http **out, s3s_s3 *s3);
void s3s__http_destroy(s3s__http *h);

/* s3s__http_submit queues x. Returns 0 or S3S_ENOMEM (x untouched then). */
int s3s__http_submit(s3s_s3 *s3, s3s__xfer *x);
/* s3s__http_wait drives transfers until one is finished (success or final
 * failure) and returns it in *out. Returns S3S_EINVAL when nothing is queued
 * or in flight. */
int s3s__http_wait(s3s_s3 *s3, s3s__xfer **out);
/* s3s__http_run submits x and waits for it; other transfers may be in flight
 * and keep running, but x is the one waited for (others that finish meanwhile
 * stay queued as finished for the next s3s__http_wait). Returns x->rc. */
int s3s__http_run(s3s_s3 *s3, s3s__xfer *x);
/* s3s__http_cancel removes x wherever it is (queued, running, finished and
 * not yet waited for). No-op for an x the engine does not hold. */
void s3s__http_cancel(s3s_s3 *s3, s3s__xfer *x);
/* s3s__http_inflight counts the transfers the engine holds. */
size_t s3s__http_inflight(const s3s_s3 *s3);

/* s3s__http_backoff_ms is the full-jitter delay before attempt n+1 (n >= 1):
 * uniform in [0, min(cap, base * 2^(n-1))]. Exposed for tests. */
unsigned s3s__http_backoff_ms(unsigned base, unsigned cap, unsigned n);

#endif
