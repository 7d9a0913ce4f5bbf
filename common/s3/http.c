/* http.c: the request engine (see http.h). One libcurl multi handle per
 * s3s_s3; each attempt gets a freshly configured easy handle from a small pool
 * and freshly signed headers (the date and the Range may change per attempt). */
#include "common/s3/http.h"

#include "common/crypto/random.h"
#include "common/crypto/sha256.h"
#include "common/s3/client.h"
#include "common/s3/xml.h"
#include "common/util/log.h"
#include "s3shard/error.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define ERRBODY_MAX (64u << 10)
#define POOL_MAX 64

enum { ST_IDLE, ST_QUEUED, ST_ACTIVE, ST_BACKOFF, ST_DONE };
enum { K_NONE, K_NET, K_SHORT, K_HTTP, K_SLOWDOWN };

struct s3s__xfer_priv {
    int state;
    CURL *easy;
    struct curl_slist *hdrs;
    char curl_err[CURL_ERROR_SIZE];
    s3s__buf errbody;
    s3s__buf url;
    uint64_t deadline_ms; /* ST_BACKOFF: when to start again */
    uint64_t attempt_bytes; /* body bytes seen in this attempt (incl. skipped) */
    uint64_t skip; /* bytes still to drop (server ignored our Range) */
    uint64_t req_start; /* first byte asked for in this attempt */
    int ranged; /* this attempt sent a Range */
    int64_t content_length; /* -1: unknown */
    uint64_t cr_start; /* Content-Range start, when cr_seen */
    int cr_seen;
    uint64_t up_pos;
    int sink_rc;
    int body_full;
    int checked; /* the ETag of this attempt's 2xx reply was compared */
    int conflict; /* ...and it was not the one required */
    char first_etag[72]; /* ETag of the first good response, for resumes */
    int last_kind;
    s3s__xfer *next; /* in one of the engine's lists */
};

struct s3s__http {
    CURLM *multi;
    CURL *pool[POOL_MAX];
    int npool;
    s3s__xfer *queue, *queue_tail; /* waiting for a slot or a backoff deadline */
    s3s__xfer *done, *done_tail; /* finished, not yet waited for */
    size_t active;
    size_t held;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

unsigned s3s__http_backoff_ms(unsigned base, unsigned cap, unsigned n)
{
    uint64_t ceil = base;
    for (unsigned i = 1; i < n && ceil < cap; i++)
        ceil *= 2;
    if (ceil > cap)
        ceil = cap;
    return (unsigned)(s3s__random_u64() % (ceil + 1));
}

void s3s__xfer_init(s3s__xfer *x)
{
    memset(x, 0, sizeof *x);
    x->up_fd = -1;
    s3s__buf_init(&x->body, S3S_XFER_BODY_MAX);
}

void s3s__xfer_fini(s3s__xfer *x)
{
    if (x == NULL)
        return;
    s3s__buf_fini(&x->body);
    if (x->priv != NULL) {
        curl_slist_free_all(x->priv->hdrs);
        s3s__buf_fini(&x->priv->errbody);
        s3s__buf_fini(&x->priv->url);
        free(x->priv);
        x->priv = NULL;
    }
}

int s3s__http_create(s3s__http **out, s3s_s3 *s3)
{
    pthread_once(&curl_once, curl_init_once);
    s3s__http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return S3S_ENOMEM;
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        free(h);
        return S3S_ENOMEM;
    }
    long n = (long)s3->opts.max_connections;
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, n);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, n);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, n);
    *out = h;
    return 0;
}

void s3s__http_destroy(s3s__http *h)
{
    if (h == NULL)
        return;
    for (int i = 0; i < h->npool; i++)
        curl_easy_cleanup(h->pool[i]);
    curl_multi_cleanup(h->multi);
    free(h);
}

size_t s3s__http_inflight(const s3s_s3 *s3)
{
    return s3->http->held;
}

/* ---- lists ------------------------------------------------------------------ */

static void push(s3s__xfer **head, s3s__xfer **tail, s3s__xfer *x)
{
    x->priv->next = NULL;
    if (*tail != NULL)
        (*tail)->priv->next = x;
    else
        *head = x;
    *tail = x;
}

static int unlink_x(s3s__xfer **head, s3s__xfer **tail, s3s__xfer *x)
{
    s3s__xfer *prev = NULL;
    for (s3s__xfer *c = *head; c != NULL; prev = c, c = c->priv->next) {
        if (c != x)
            continue;
        if (prev != NULL)
            prev->priv->next = c->priv->next;
        else
            *head = c->priv->next;
        if (*tail == c)
            *tail = prev;
        c->priv->next = NULL;
        return 1;
    }
    return 0;
}

/* ---- curl callbacks ------------------------------------------------------------- */

static int is_2xx(long s)
{
    return s >= 200 && s < 300;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    s3s__xfer *x = ud;
    s3s__xfer_priv *v = x->priv;
    size_t len = size * n;
    char line[1024];
    size_t l = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, p, l);
    line[l] = '\0';
    while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == '\n'))
        line[--l] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) {
        /* A new response (also after 100 Continue): forget the previous one. */
        const char *sp = strchr(line, ' ');
        x->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
        v->content_length = -1;
        v->cr_seen = 0;
        /* A 200 to a ranged GET is the whole object: drop what we did not ask for. */
        v->skip = (x->status == 200 && v->ranged) ? v->req_start : 0;
        return len;
    }
    char *colon = strchr(line, ':');
    if (colon == NULL)
        return len;
    *colon = '\0';
    char *val = colon + 1;
    while (*val == ' ' || *val == '\t')
        val++;
    if (strcasecmp(line, "Content-Length") == 0) {
        char *end = NULL;
        unsigned long long cl = strtoull(val, &end, 10);
        if (end != val)
            v->content_length = (int64_t)cl;
    } else if (strcasecmp(line, "Content-Range") == 0) {
        unsigned long long a, b, t;
        if (sscanf(val, "bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
            v->cr_start = a;
            v->cr_seen = 1;
            x->total_size = t;
        }
    } else if (strcasecmp(line, "ETag") == 0 && is_2xx(x->status)) {
        s3s__etag_copy(x->etag, val, strlen(val));
    } else if (strcasecmp(line, "Last-Modified") == 0 && is_2xx(x->status)) {
        time_t t = curl_getdate(val, NULL);
        x->mtime = t > 0 ? (int64_t)t : 0;
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    s3s__xfer *x = ud;
    s3s__xfer_priv *v = x->priv;
    size_t len = size * n;
    v->attempt_bytes += len;
    if (!is_2xx(x->status)) {
        size_t room = ERRBODY_MAX - v->errbody.len;
        s3s__buf_append(&v->errbody, p, len < room ? len : room);
        return len;
    }
    if (!v->checked) {
        /* Before handing over the first byte: is this the version we want?
         * (Some servers ignore If-Match; never mix two versions.) */
        const char *want =
            x->if_match != NULL ? x->if_match : (v->first_etag[0] ? v->first_etag : NULL);
        v->checked = 1;
        if (want != NULL && x->etag[0] != '\0' && strcmp(want, x->etag) != 0) {
            v->conflict = 1;
            return 0;
        }
    }
    if (v->skip > 0) {
        size_t s = v->skip < len ? (size_t)v->skip : len;
        v->skip -= s;
        p += s;
        len -= s;
        if (len == 0)
            return size * n;
    }
    if (x->has_range && x->range_len != S3S_TO_END) {
        uint64_t left = x->range_len - x->delivered;
        if (len > left)
            len = (size_t)left; /* never hand over bytes past the range asked for */
        if (len == 0)
            return size * n;
    }
    if (x->sink != NULL) {
        int rc = x->sink(x->sink_ud, p, len);
        if (rc != 0) {
            v->sink_rc = rc;
            return 0; /* abort: CURLE_WRITE_ERROR */
        }
    } else if (s3s__buf_append(&x->body, p, len) != 0) {
        v->body_full = 1;
        return 0;
    }
    x->delivered += len;
    return size * n;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    s3s__xfer *x = ud;
    s3s__xfer_priv *v = x->priv;
    size_t want = size * n;
    uint64_t left = x->up_len - v->up_pos;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (x->up_mem != NULL) {
        memcpy(buf, (const char *)x->up_mem + v->up_pos, want);
    } else {
        ssize_t r = pread(x->up_fd, buf, want, (off_t)(x->up_off + v->up_pos));
        if (r <= 0)
            return CURL_READFUNC_ABORT;
        want = (size_t)r;
    }
    v->up_pos += want;
    return want;
}

/* ---- one attempt ------------------------------------------------------------------ */

static int add_header(s3s__xfer *x, s3s__sigv4_header *hs, size_t *nh, const char *name,
                      const char *value)
{
    char line[2048];
    hs[*nh].name = name;
    hs[*nh].value = value;
    (*nh)++;
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *l = curl_slist_append(x->priv->hdrs, line);
    if (l == NULL)
        return S3S_ENOMEM;
    x->priv->hdrs = l;
    return 0;
}

static int payload_hash(s3s__xfer *x, char out[65])
{
    if (!x->has_body || x->up_len == 0) {
        strcpy(out, S3S_EMPTY_SHA256);
        return 0;
    }
    if (x->up_mem != NULL) {
        s3s__sha256_hex(x->up_mem, (size_t)x->up_len, out);
        return 0;
    }
    /* File regions are streamed with pread and not read twice to hash them. */
    strcpy(out, S3S_UNSIGNED_PAYLOAD);
    return 0;
}

static int start_attempt(s3s_s3 *s3, s3s__xfer *x)
{
    s3s__http *h = s3->http;
    s3s__xfer_priv *v = x->priv;
    s3s__buf host, path;
    s3s__sigv4_result res;
    s3s__sigv4_header hs[12];
    size_t nh = 0;
    char date[17], range[64], phash[65];
    int rc = 0;
    CURL *e;

    s3s__buf_init(&host, 4096);
    s3s__buf_init(&path, S3S_SIGV4_MAX);
    s3s__sigv4_result_init(&res);
    curl_slist_free_all(v->hdrs);
    v->hdrs = NULL;
    s3s__buf_reset(&v->errbody);
    s3s__buf_reset(&v->url);
    v->attempt_bytes = 0;
    v->checked = 0;
    v->conflict = 0;
    v->skip = 0;
    v->up_pos = 0;
    v->content_length = -1;
    v->cr_seen = 0;
    x->status = 0;
    x->attempts++;

    if ((rc = s3s__endpoint_target(&s3->ep, x->bucket, x->key, &host, &path)) != 0)
        goto out;
    rc = s3s__buf_printf(&v->url, "%s://%s%s%s%s", s3->ep.scheme, host.data, path.data,
                         x->query != NULL ? "?" : "", x->query != NULL ? x->query : "");
    if (rc != 0)
        goto out;
    s3s__sigv4_amz_date((int64_t)time(NULL), date);
    payload_hash(x, phash);
    if ((rc = add_header(x, hs, &nh, "Host", host.data)) != 0)
        goto out;
    /* Resume: continue from the byte reached, on the same object version. */
    uint64_t start = x->range_off + x->delivered;
    v->ranged = 0;
    if (strcmp(x->method, "GET") == 0 && (x->has_range || x->delivered > 0)) {
        if (x->has_range && x->range_len != S3S_TO_END) {
            uint64_t end = x->range_off + x->range_len - 1;
            snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)start,
                     (unsigned long long)end);
        } else {
            snprintf(range, sizeof range, "bytes=%llu-", (unsigned long long)start);
        }
        v->ranged = 1;
        v->req_start = start;
        if ((rc = add_header(x, hs, &nh, "Range", range)) != 0)
            goto out;
    }
    const char *im = x->if_match != NULL
        ? x->if_match
        : (x->delivered > 0 && v->first_etag[0] != '\0' ? v->first_etag : NULL);
    char imq[80];
    if (im != NULL) {
        snprintf(imq, sizeof imq, "\"%s\"", im);
        if ((rc = add_header(x, hs, &nh, "If-Match", imq)) != 0)
            goto out;
    }
    if (x->content_type != NULL &&
        (rc = add_header(x, hs, &nh, "Content-Type", x->content_type)) != 0)
        goto out;
    if ((rc = add_header(x, hs, &nh, "x-amz-content-sha256", phash)) != 0 ||
        (rc = add_header(x, hs, &nh, "x-amz-date", date)) != 0)
        goto out;
    if (s3->creds.session_token != NULL &&
        (rc = add_header(x, hs, &nh, "x-amz-security-token", s3->creds.session_token)) != 0)
        goto out;
    s3s__sigv4_request sr = {x->method, path.data, x->query, hs, nh, phash, 0};
    s3s__sigv4_creds cr = {s3->creds.access_key_id, s3->creds.secret_access_key,
                           s3->creds.session_token};
    if ((rc = s3s__sigv4_sign_header(&res, &s3->kc, &cr, s3->region, "s3", date, &sr)) != 0)
        goto out;
    char auth[1024];
    snprintf(auth, sizeof auth, "Authorization: %s", res.out.data);
    struct curl_slist *l = curl_slist_append(v->hdrs, auth);
    if (l == NULL || (l = curl_slist_append(l, "Expect:")) == NULL) {
        rc = S3S_ENOMEM;
        goto out;
    }
    v->hdrs = l;
    if (x->content_type == NULL && (l = curl_slist_append(l, "Content-Type:")) != NULL)
        v->hdrs = l;

    e = h->npool > 0 ? h->pool[--h->npool] : curl_easy_init();
    if (e == NULL) {
        rc = S3S_ENOMEM;
        goto out;
    }
    curl_easy_reset(e);
    v->easy = e;
    v->curl_err[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, v->url.data);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, v->hdrs);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* "a/./b" and "a/../b" are S3 keys like any other: never let curl
     * normalize the path we signed. */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, v->curl_err);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)s3->opts.connect_timeout_ms);
    long stall_s = (long)((s3->opts.stall_timeout_ms + 999) / 1000);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, stall_s > 0 ? stall_s : 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (s3->ca_bundle != NULL && strcmp(s3->ep.scheme, "https") == 0)
        curl_easy_setopt(e, CURLOPT_CAINFO, s3->ca_bundle);
    if (strcmp(x->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(x->method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)(x->has_body ? x->up_len : 0));
    } else if (strcmp(x->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(x->has_body ? x->up_len : 0));
    } else if (strcmp(x->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
    }
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        v->easy = NULL;
        curl_easy_cleanup(e);
        rc = S3S_ENOMEM;
        goto out;
    }
    v->state = ST_ACTIVE;
    h->active++;
    if (s3->opts.verbose)
        S3S_LOGI("s3: %s %s (attempt %u)", x->method, v->url.data, x->attempts);
out:
    s3s__buf_fini(&host);
    s3s__buf_fini(&path);
    s3s__sigv4_result_fini(&res);
    return rc;
}

/* ---- finishing an attempt ------------------------------------------------------------ */

static void describe(s3s__xfer *x, const char *what)
{
    snprintf(x->err, sizeof x->err, "%s %s%s%s: %s", x->method, x->bucket != NULL ? x->bucket : "",
             x->key != NULL ? "/" : "", x->key != NULL ? x->key : "", what);
}

static void finish(s3s__http *h, s3s__xfer *x, int rc)
{
    x->rc = rc;
    x->priv->state = ST_DONE;
    push(&h->done, &h->done_tail, x);
}

/* Decides what an ended attempt means: success, retry or final failure. */
static void attempt_ended(s3s_s3 *s3, s3s__xfer *x, CURLcode cc)
{
    s3s__http *h = s3->http;
    s3s__xfer_priv *v = x->priv;
    char what[640];
    int kind = K_NONE, final_rc = 0;
    curl_multi_remove_handle(h->multi, v->easy);
    if (h->npool < POOL_MAX)
        h->pool[h->npool++] = v->easy;
    else
        curl_easy_cleanup(v->easy);
    v->easy = NULL;
    h->active--;

    if (v->sink_rc != 0) {
        describe(x, "stopped by the caller");
        finish(h, x, v->sink_rc);
        return;
    }
    if (v->conflict ||
        (cc == CURLE_OK && is_2xx(x->status) && x->if_match != NULL && x->etag[0] != '\0' &&
         strcmp(x->if_match, x->etag) != 0)) {
        snprintf(what, sizeof what, "ETag is %.70s, not %.70s (object changed)", x->etag,
                 x->if_match != NULL ? x->if_match : v->first_etag);
        describe(x, what);
        finish(h, x, S3S_ECONFLICT);
        return;
    }
    if (v->body_full) {
        describe(x, "reply larger than its cap");
        finish(h, x, S3S_ETOOBIG);
        return;
    }
    if (cc != CURLE_OK) {
        kind = cc == CURLE_PARTIAL_FILE ? K_SHORT : K_NET;
        snprintf(what, sizeof what, "%s%s%s",
                 cc == CURLE_OPERATION_TIMEDOUT ? "stalled or timed out: " : "",
                 v->curl_err[0] != '\0' ? v->curl_err : curl_easy_strerror(cc),
                 cc == CURLE_PARTIAL_FILE ? " (body shorter than Content-Length)" : "");
        if (cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_PEER_FAILED_VERIFICATION ||
            cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT ||
            cc == CURLE_SSL_CONNECT_ERROR) {
            describe(x, what);
            finish(h, x, cc == CURLE_URL_MALFORMAT ? S3S_EINVAL : S3S_ENETWORK);
            return;
        }
    } else if (is_2xx(x->status)) {
        int head = strcmp(x->method, "HEAD") == 0;
        if (!head && v->content_length >= 0 && v->attempt_bytes != (uint64_t)v->content_length) {
            kind = K_SHORT;
            snprintf(what, sizeof what, "body of %llu bytes shorter than Content-Length %lld",
                     (unsigned long long)v->attempt_bytes, (long long)v->content_length);
        } else if (v->ranged && x->status == 206 && v->cr_seen && v->cr_start != v->req_start) {
            snprintf(what, sizeof what, "asked for byte %llu, got Content-Range from %llu",
                     (unsigned long long)v->req_start, (unsigned long long)v->cr_start);
            describe(x, what);
            finish(h, x, S3S_EPROTO);
            return;
        } else if (v->first_etag[0] != '\0' && x->etag[0] != '\0' &&
                   strcmp(v->first_etag, x->etag) != 0) {
            snprintf(what, sizeof what, "object changed during the transfer (ETag %s, then %s)",
                     v->first_etag, x->etag);
            describe(x, what);
            finish(h, x, S3S_ECONFLICT);
            return;
        } else {
            if (!v->cr_seen && !head && v->content_length >= 0 && !v->ranged)
                x->total_size = (uint64_t)v->content_length;
            if (head && v->content_length >= 0)
                x->total_size = (uint64_t)v->content_length;
            x->err[0] = '\0';
            finish(h, x, 0);
            return;
        }
    } else {
        s3s__xml_error xe;
        s3s__errbuf ignore;
        memset(&xe, 0, sizeof xe);
        if (v->errbody.len > 0)
            s3s__xml_parse_error(&xe, v->errbody.data, v->errbody.len, &ignore);
        /* HEAD replies (and some proxies) carry no XML: name the status then. */
        const char *phrase = xe.code[0] != '\0' ? xe.code
            : x->status == 404                  ? "Not Found"
            : x->status == 403                  ? "Forbidden"
            : x->status == 400                  ? "Bad Request"
            : x->status == 412                  ? "Precondition Failed"
            : x->status == 416                  ? "Range Not Satisfiable"
            : x->status == 503                  ? "Service Unavailable"
            : x->status >= 500                  ? "Server Error"
                                                : "";
        snprintf(what, sizeof what, "HTTP %ld%s%.127s%s%.400s", x->status, phrase[0] ? " " : "",
                 phrase, xe.message[0] ? ": " : "", xe.message);
        long s = x->status;
        if (s == 500 || s == 502 || s == 503 || s == 504 || s == 429 ||
            strcmp(xe.code, "RequestTimeout") == 0 || strcmp(xe.code, "InternalError") == 0)
            kind = (s == 503 || strcmp(xe.code, "SlowDown") == 0) ? K_SLOWDOWN : K_HTTP;
        else if (s == 404)
            final_rc = S3S_ENOTFOUND;
        else if (s == 403 || s == 401)
            final_rc = S3S_EACCESS;
        else if (s == 412)
            final_rc = S3S_ECONFLICT;
        else if (s == 416)
            final_rc = S3S_ERANGE;
        else
            final_rc = S3S_EHTTP;
        if (final_rc != 0) {
            describe(x, what);
            finish(h, x, final_rc);
            return;
        }
    }
    /* Retryable. */
    v->last_kind = kind;
    if (x->etag[0] != '\0' && v->first_etag[0] == '\0' && x->delivered > 0)
        memcpy(v->first_etag, x->etag, sizeof v->first_etag);
    /* Object GETs resume with a Range from the byte reached; anything else
     * (a listing is generated afresh each time) starts over. */
    int resumable = strcmp(x->method, "GET") == 0 && x->key != NULL;
    if (!resumable) {
        s3s__buf_reset(&x->body);
        x->delivered = 0;
    }
    if (x->attempts >= s3->opts.max_attempts) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s (gave up after %u attempts)", what, x->attempts);
        describe(x, msg);
        finish(h, x,
               kind == K_SHORT          ? S3S_ESHORT
                   : kind == K_SLOWDOWN ? S3S_ESLOWDOWN
                   : kind == K_HTTP     ? S3S_EHTTP
                                        : S3S_ENETWORK);
        return;
    }
    unsigned d = s3s__http_backoff_ms(s3->opts.retry_base_ms, s3->opts.retry_cap_ms, x->attempts);
    if (s3->opts.verbose)
        S3S_LOGI("s3: %s %s/%s: %s; retry %u in %u ms", x->method, x->bucket ? x->bucket : "",
                 x->key ? x->key : "", what, x->attempts + 1, d);
    v->deadline_ms = now_ms() + d;
    v->state = ST_BACKOFF;
    push(&h->queue, &h->queue_tail, x);
}

/* ---- driving ------------------------------------------------------------------------- */

int s3s__http_submit(s3s_s3 *s3, s3s__xfer *x)
{
    s3s__http *h = s3->http;
    if (x->priv == NULL) {
        x->priv = calloc(1, sizeof *x->priv);
        if (x->priv == NULL)
            return S3S_ENOMEM;
        s3s__buf_init(&x->priv->errbody, ERRBODY_MAX);
        s3s__buf_init(&x->priv->url, S3S_SIGV4_MAX);
    }
    s3s__xfer_priv *v = x->priv;
    v->state = ST_QUEUED;
    v->deadline_ms = 0;
    v->sink_rc = 0;
    v->body_full = 0;
    v->first_etag[0] = '\0';
    x->rc = 0;
    x->err[0] = '\0';
    x->attempts = 0;
    x->delivered = 0;
    x->etag[0] = '\0';
    x->total_size = 0;
    x->mtime = 0;
    push(&h->queue, &h->queue_tail, x);
    h->held++;
    return 0;
}

/* Starts queued transfers whose time has come, while slots are free. Returns
 * the ms until the next backoff deadline (or 1000). */
static long start_ready(s3s_s3 *s3)
{
    s3s__http *h = s3->http;
    uint64_t now = now_ms();
    long wait = 1000;
    s3s__xfer *x = h->queue;
    while (x != NULL) {
        s3s__xfer *next = x->priv->next;
        if (x->priv->deadline_ms > now) {
            long d = (long)(x->priv->deadline_ms - now);
            if (d < wait)
                wait = d;
        } else if (h->active < s3->opts.max_connections) {
            unlink_x(&h->queue, &h->queue_tail, x);
            int rc = start_attempt(s3, x);
            if (rc != 0) {
                describe(x, "could not start the request");
                finish(h, x, rc);
            }
        }
        x = next;
    }
    return wait;
}

static void collect(s3s_s3 *s3)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(s3->http->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        s3s__xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode cc = m->data.result;
        attempt_ended(s3, x, cc);
    }
}

int s3s__http_wait(s3s_s3 *s3, s3s__xfer **out)
{
    s3s__http *h = s3->http;
    *out = NULL;
    for (;;) {
        if (h->done != NULL) {
            s3s__xfer *x = h->done;
            unlink_x(&h->done, &h->done_tail, x);
            x->priv->state = ST_IDLE;
            h->held--;
            *out = x;
            return 0;
        }
        if (h->held == 0)
            return S3S_EINVAL;
        long wait = start_ready(s3);
        if (h->done != NULL)
            continue;
        int running = 0;
        curl_multi_perform(h->multi, &running);
        collect(s3);
        if (h->done != NULL)
            continue;
        /* Attempts that just failed are now in backoff: wait no longer than
         * the first deadline. */
        uint64_t now = now_ms();
        for (s3s__xfer *q = h->queue; q != NULL; q = q->priv->next) {
            if (q->priv->deadline_ms <= now && h->active >= s3->opts.max_connections)
                continue; /* ready, waiting for a slot: a finishing transfer wakes us */
            long d = q->priv->deadline_ms > now ? (long)(q->priv->deadline_ms - now) : 0;
            if (d < wait)
                wait = d;
        }
        if (h->active == 0 && wait > 0) {
            /* Only backoffs pending: sleep until the first deadline. */
            struct timespec ts = {wait / 1000, (wait % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (wait > 0)
            curl_multi_poll(h->multi, NULL, 0, (int)wait, NULL);
    }
}

int s3s__http_run(s3s_s3 *s3, s3s__xfer *x)
{
    s3s__http *h = s3->http;
    int rc = s3s__http_submit(s3, x);
    if (rc != 0)
        return rc;
    /* Wait for x; others that finish meanwhile are put back as finished. */
    s3s__xfer *others = NULL, *others_tail = NULL;
    s3s__xfer *d = NULL;
    while (s3s__http_wait(s3, &d) == 0 && d != x) {
        d->priv->state = ST_DONE;
        h->held++;
        push(&others, &others_tail, d);
    }
    while (others != NULL) {
        s3s__xfer *o = others;
        unlink_x(&others, &others_tail, o);
        push(&h->done, &h->done_tail, o);
    }
    return x->rc;
}

void s3s__http_cancel(s3s_s3 *s3, s3s__xfer *x)
{
    s3s__http *h = s3->http;
    if (x->priv == NULL)
        return;
    s3s__xfer_priv *v = x->priv;
    switch (v->state) {
    case ST_ACTIVE:
        curl_multi_remove_handle(h->multi, v->easy);
        if (h->npool < POOL_MAX)
            h->pool[h->npool++] = v->easy;
        else
            curl_easy_cleanup(v->easy);
        v->easy = NULL;
        h->active--;
        h->held--;
        break;
    case ST_QUEUED:
    case ST_BACKOFF:
        unlink_x(&h->queue, &h->queue_tail, x);
        h->held--;
        break;
    case ST_DONE:
        unlink_x(&h->done, &h->done_tail, x);
        h->held--;
        break;
    default:
        break;
    }
    v->state = ST_IDLE;
}
