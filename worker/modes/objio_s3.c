/* objio_s3.c: the stand-in object reader over s3s_s3_get (see objio.h).
 * An s3s_s3 client is not thread-safe, so the pool lends one client to one
 * GET at a time. */
#include "worker/modes/objio.h"

#include "s3shard/error.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WIN_MIN (1u << 20)
#define WIN_MAX (16u << 20)

struct s3s__objio_s3 {
    s3s_s3_opts o;
    char *strs[7];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s3s_s3 **idle;
    unsigned nidle, nmade, max;
    uint64_t gets;
};

typedef struct handle {
    s3s__objio_s3 *p;
    char *bucket, *key, *etag;
    uint64_t size;
    pthread_mutex_t mu;
    uint8_t *buf;
    uint64_t buf_off, buf_len;
    uint64_t seq_next; /* where a sequential reader continues */
    uint64_t window;
} handle;

static char *dup_or_null(const char *s, int *fail)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *fail = 1;
    return d;
}

int s3s__objio_s3_create(s3s__objio_s3 **out, const s3s_s3_opts *opts, unsigned max_clients,
                         s3s__errbuf *eb)
{
    s3s__objio_s3 *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    if (opts != NULL)
        p->o = *opts;
    else
        s3s_s3_opts_init(&p->o);
    int fail = 0;
    const char **f[7] = {
        &p->o.endpoint,          &p->o.region,        &p->o.profile,  &p->o.access_key_id,
        &p->o.secret_access_key, &p->o.session_token, &p->o.ca_bundle};
    for (int i = 0; i < 7; i++)
        *f[i] = p->strs[i] = dup_or_null(*f[i], &fail);
    p->o.max_connections = 4;
    p->max = max_clients ? max_clients : 16;
    p->idle = calloc(p->max, sizeof(*p->idle));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (fail || p->idle == NULL) {
        s3s__objio_s3_destroy(p);
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    }
    /* One client now: bad credentials or endpoints fail here, not at the
     * first read inside a mount. */
    s3s_s3 *c = NULL;
    int rc = s3s_s3_create(&c, &p->o);
    if (rc != 0) {
        s3s__err_set(eb, rc, "S3 client: %s", s3s_s3_last_create_error());
        s3s__objio_s3_destroy(p);
        return rc;
    }
    p->idle[p->nidle++] = c;
    p->nmade = 1;
    *out = p;
    return 0;
}

void s3s__objio_s3_destroy(s3s__objio_s3 *p)
{
    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->nidle; i++)
        s3s_s3_destroy(p->idle[i]);
    free(p->idle);
    for (int i = 0; i < 7; i++)
        free(p->strs[i]);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

uint64_t s3s__objio_s3_gets(s3s__objio_s3 *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t n = p->gets;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static int borrow(s3s__objio_s3 *p, s3s_s3 **out, s3s__errbuf *eb)
{
    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0 && p->nmade >= p->max)
        pthread_cond_wait(&p->cv, &p->mu);
    if (p->nidle > 0) {
        *out = p->idle[--p->nidle];
        p->gets++;
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    p->nmade++;
    p->gets++;
    pthread_mutex_unlock(&p->mu);
    int rc = s3s_s3_create(out, &p->o);
    if (rc != 0) {
        pthread_mutex_lock(&p->mu);
        p->nmade--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        return s3s__err_set(eb, rc, "S3 client: %s", s3s_s3_last_create_error());
    }
    return 0;
}

static void give_back(s3s__objio_s3 *p, s3s_s3 *c)
{
    pthread_mutex_lock(&p->mu);
    p->idle[p->nidle++] = c;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static int h_open(void *ud, const char *bucket, const char *key, uint64_t size, const char *etag,
                  void **out, s3s__errbuf *eb)
{
    handle *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    h->p = ud;
    h->bucket = strdup(bucket);
    h->key = strdup(key);
    h->etag = etag && etag[0] ? strdup(etag) : NULL;
    if (h->bucket == NULL || h->key == NULL || (etag && etag[0] && h->etag == NULL)) {
        free(h->bucket);
        free(h->key);
        free(h->etag);
        free(h);
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    }
    h->size = size;
    h->window = WIN_MIN;
    pthread_mutex_init(&h->mu, NULL);
    *out = h;
    return 0;
}

typedef struct sink {
    uint8_t *buf;
    uint64_t len, cap;
} sink;

static int on_bytes(void *ud, const void *data, size_t len)
{
    sink *s = ud;
    if (len > s->cap - s->len)
        return S3S_ETOOBIG; /* the server sent more than the range asked */
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

/* fill fetches [off, off + want) into the handle's buffer (h->mu held). */
static int fill(handle *h, uint64_t off, uint64_t want, s3s__errbuf *eb)
{
    if (want > h->size - off)
        want = h->size - off;
    uint8_t *nb = realloc(h->buf, want ? want : 1);
    if (nb == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    h->buf = nb;
    h->buf_len = 0;
    s3s_s3 *c = NULL;
    int rc = borrow(h->p, &c, eb);
    if (rc != 0)
        return rc;
    sink s = {.buf = h->buf, .cap = want};
    rc = s3s_s3_get(c, h->bucket, h->key, off, want, h->etag, on_bytes, &s, NULL);
    if (rc != 0)
        s3s__err_set(eb, rc, "s3://%s/%s at %llu: %s", h->bucket, h->key, (unsigned long long)off,
                     s3s_s3_errmsg(c));
    else if (s.len != want)
        rc = s3s__err_set(eb, S3S_ESHORT, "s3://%s/%s at %llu: %llu of %llu bytes", h->bucket,
                          h->key, (unsigned long long)off, (unsigned long long)s.len,
                          (unsigned long long)want);
    give_back(h->p, c);
    if (rc == 0) {
        h->buf_off = off;
        h->buf_len = want;
    }
    return rc;
}

static int h_pread(void *vh, void *buf, size_t n, uint64_t off, size_t *out_n, s3s__errbuf *eb)
{
    handle *h = vh;
    *out_n = 0;
    if (off >= h->size || n == 0)
        return 0;
    if (n > h->size - off)
        n = (size_t)(h->size - off);
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    if (!(off >= h->buf_off && off < h->buf_off + h->buf_len)) {
        /* A read where the last one ended grows the window; a jump starts over. */
        if (off == h->seq_next && off != 0)
            h->window = h->window * 2 > WIN_MAX ? WIN_MAX : h->window * 2;
        else if (off != h->seq_next)
            h->window = WIN_MIN;
        uint64_t want = h->window > n ? h->window : n;
        rc = fill(h, off, want, eb);
    }
    if (rc == 0) {
        uint64_t at = off - h->buf_off, avail = h->buf_len - at;
        size_t k = avail < n ? (size_t)avail : n;
        memcpy(buf, h->buf + at, k);
        *out_n = k;
        h->seq_next = off + k;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static void h_close(void *vh)
{
    handle *h = vh;
    if (h == NULL)
        return;
    pthread_mutex_destroy(&h->mu);
    free(h->buf);
    free(h->bucket);
    free(h->key);
    free(h->etag);
    free(h);
}

void s3s__objio_s3_io(s3s__objio_s3 *p, s3s__objio *io)
{
    io->ud = p;
    io->open = h_open;
    io->pread = h_pread;
    io->close = h_close;
}

int s3s__objio_read_full(const s3s__objio *io, void *h, void *buf, size_t n, uint64_t off,
                         size_t *out_n, s3s__errbuf *eb)
{
    size_t got = 0;
    while (got < n) {
        size_t k = 0;
        int rc = io->pread(h, (uint8_t *)buf + got, n - got, off + got, &k, eb);
        if (rc != 0) {
            *out_n = got;
            return rc;
        }
        if (k == 0)
            break;
        got += k;
    }
    *out_n = got;
    return 0;
}
