/* spot.c: the EC2 Spot notice poller (see spot.h). One easy handle per poll:
 * polls are seconds apart, so connection reuse buys nothing, and a fresh
 * handle never carries state from a failed poll. */
#include "worker/spot.h"

#include "common/util/log.h"
#include "s3shard/error.h"

#include <curl/curl.h>
#include <jansson.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BODY_MAX 4096
#define TOKEN_TTL "21600" /* seconds; the AWS SDKs' default */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

const char *s3s__spot_endpoint(const char *explicit_endpoint)
{
    if (explicit_endpoint != NULL && explicit_endpoint[0] != '\0')
        return explicit_endpoint;
    const char *env = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (env != NULL && env[0] != '\0')
        return env;
    return S3S__IMDS_DEFAULT;
}

typedef struct body {
    char buf[BODY_MAX + 1];
    size_t len;
    int over;
} body;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    size_t len = size * n;
    if (b->len + len > BODY_MAX) {
        b->over = 1;
        return 0; /* aborts the transfer: a notice is a few dozen bytes */
    }
    memcpy(b->buf + b->len, p, len);
    b->len += len;
    b->buf[b->len] = '\0';
    return len;
}

/* request runs one request; *status gets the HTTP status. */
static int request(const char *url, int put, const char *header, unsigned timeout_ms, body *b,
                   long *status, s3s__errbuf *eb)
{
    pthread_once(&curl_once, curl_init_once);
    CURL *e = curl_easy_init();
    if (e == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "spot: cannot make a curl handle");
    struct curl_slist *hdr = NULL;
    if (header != NULL && (hdr = curl_slist_append(NULL, header)) == NULL) {
        curl_easy_cleanup(e);
        return s3s__err_set(eb, S3S_ENOMEM, "spot: out of memory");
    }
    char cerr[CURL_ERROR_SIZE] = "";
    memset(b, 0, sizeof(*b));
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* IMDS is link-local and never behind a proxy; an http_proxy in the
     * environment must not capture it. */
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    if (put) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    }
    if (hdr != NULL)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
    CURLcode cc = curl_easy_perform(e);
    int rc = 0;
    if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && b->over))
        rc = s3s__err_set(eb, S3S_ENETWORK, "spot: %s %s: %s", put ? "PUT" : "GET", url,
                          cerr[0] ? cerr : curl_easy_strerror(cc));
    else if (b->over)
        rc = s3s__err_set(eb, S3S_ETOOBIG, "spot: %s: reply longer than %d bytes", url, BODY_MAX);
    else
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(e);
    return rc;
}

/* trim_base drops trailing '/' so "http://h/" and "http://h" build the same URL. */
static void join_url(char *out, size_t n, const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    snprintf(out, n, "%.*s%s", (int)bl, base, path);
}

int s3s__spot_check(const char *endpoint, unsigned timeout_ms, s3s__spot_notice *out,
                    s3s__errbuf *eb)
{
    memset(out, 0, sizeof(*out));
    endpoint = s3s__spot_endpoint(endpoint);
    if (timeout_ms == 0)
        timeout_ms = 1000;
    char url[1024], hdr[256 + 64];
    body *b = malloc(sizeof(*b));
    if (b == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "spot: out of memory");
    long status = 0;
    join_url(url, sizeof url, endpoint, "/latest/api/token");
    int rc = request(url, 1, "X-aws-ec2-metadata-token-ttl-seconds: " TOKEN_TTL, timeout_ms, b,
                     &status, eb);
    if (rc != 0)
        goto out;
    const char *tok_hdr = NULL;
    if (status == 200) {
        size_t tl = b->len;
        while (tl > 0 && (b->buf[tl - 1] == '\n' || b->buf[tl - 1] == '\r'))
            tl--;
        if (tl == 0 || tl > 256 || memchr(b->buf, '\n', tl) != NULL) {
            rc = s3s__err_set(eb, S3S_EPARSE, "spot: %s: token of %zu bytes is not one line", url,
                              tl);
            goto out;
        }
        snprintf(hdr, sizeof hdr, "X-aws-ec2-metadata-token: %.*s", (int)tl, b->buf);
        tok_hdr = hdr;
    }
    /* Any other status (403 when IMDSv2 is disabled by a hop limit, 404/405 on
     * IMDSv1-only services) falls back to a tokenless GET. */
    join_url(url, sizeof url, endpoint, "/latest/meta-data/spot/instance-action");
    status = 0;
    if ((rc = request(url, 0, tok_hdr, timeout_ms, b, &status, eb)) != 0)
        goto out;
    if (status == 404)
        goto out;
    if (status != 200) {
        rc = s3s__err_set(eb, S3S_EHTTP, "spot: GET %s: HTTP %ld", url, status);
        goto out;
    }
    json_error_t je;
    json_t *root = json_loadb(b->buf, b->len, 0, &je);
    json_t *act = json_is_object(root) ? json_object_get(root, "action") : NULL;
    if (!json_is_string(act)) {
        rc = root == NULL
            ? s3s__err_set(eb, S3S_EPARSE, "spot: %s: offset %d: %s", url, je.position, je.text)
            : s3s__err_set(eb, S3S_EPARSE, "spot: %s: expected an object with a string \"action\"",
                           url);
        json_decref(root);
        goto out;
    }
    out->present = 1;
    snprintf(out->action, sizeof out->action, "%s", json_string_value(act));
    json_t *t = json_object_get(root, "time");
    if (json_is_string(t))
        snprintf(out->time, sizeof out->time, "%s", json_string_value(t));
    json_decref(root);
out:
    free(b);
    return rc;
}

struct s3s__spot {
    char *endpoint;
    unsigned interval_ms, timeout_ms;
    s3s__spot_cb cb;
    void *ud;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    uint64_t polls;
};

static void *poll_main(void *arg)
{
    s3s__spot *s = arg;
    for (;;) {
        s3s__spot_notice n;
        s3s__errbuf eb = {{0}};
        int rc = s3s__spot_check(s->endpoint, s->timeout_ms, &n, &eb);
        if (rc != 0)
            S3S_LOGD("%s", eb.msg);
        pthread_mutex_lock(&s->mu);
        s->polls++;
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
        if (rc == 0 && n.present) {
            S3S_LOGW("spot: EC2 posted an interruption notice: %s at %s", n.action,
                     n.time[0] ? n.time : "(no time)");
            s->cb(s->ud, &n);
            break; /* the notice is final: nothing more to watch */
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)(s->interval_ms % 1000) * 1000000u;
        ts.tv_sec += (time_t)(s->interval_ms / 1000 + ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&s->mu);
        while (!s->stop) {
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
                break;
        }
        stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            break;
    }
    return NULL;
}

int s3s__spot_start(s3s__spot **out, const s3s__spot_opts *o, s3s__errbuf *eb)
{
    if (o == NULL || o->on_notice == NULL)
        return s3s__err_set(eb, S3S_EINVAL, "spot: a notice callback is required");
    s3s__spot *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->endpoint = strdup(s3s__spot_endpoint(o->endpoint))) == NULL) {
        free(s);
        return s3s__err_set(eb, S3S_ENOMEM, "spot: out of memory");
    }
    s->interval_ms = o->interval_ms ? o->interval_ms : 5000;
    s->timeout_ms = o->timeout_ms ? o->timeout_ms : 1000;
    s->cb = o->on_notice;
    s->ud = o->ud;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int e = pthread_create(&s->thread, NULL, poll_main, s);
    if (e != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s->endpoint);
        free(s);
        return s3s__err_set(eb, S3S_EIO, "spot: cannot start the poller: %s", strerror(e));
    }
    *out = s;
    return 0;
}

void s3s__spot_stop(s3s__spot *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->endpoint);
    free(s);
}

uint64_t s3s__spot_polls(s3s__spot *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->polls;
    pthread_mutex_unlock(&s->mu);
    return n;
}
