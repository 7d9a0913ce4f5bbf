/* objio.c: the objio interface over the worker's readers, and read_full. */
#include "worker/modes/objio.h"

#include "s3shard/error.h"
#include "worker/source.h"
#include "worker/worker_int.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct handle {
    pthread_mutex_t mu;
    s3s_reader *r;
} handle;

int s3s__objio_worker_create(s3s_worker **out, const s3s_worker_opts *wopts, s3s__errbuf *eb)
{
    s3s_worker_opts o = *wopts;
    o.job = NULL;
    o.snapshot = NULL;
    o.channel = NULL;
    o.prefetch_items = 0; /* nothing to look ahead at: the source is empty */
    s3s__source *src = NULL;
    s3s__item_desc none = {0};
    int rc = s3s__source_list_create(&src, &none, 0, eb);
    if (rc != 0)
        return rc;
    rc = s3s__worker_create_src(out, &o, src, eb);
    if (rc != 0)
        src->destroy(src);
    return rc;
}

static int w_open(void *ud, const char *bucket, const char *key, uint64_t size, const char *etag,
                  void **out, s3s__errbuf *eb)
{
    handle *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    int rc = s3s_reader_open(ud, bucket, key, size, etag, &h->r);
    if (rc != 0) {
        free(h);
        return s3s__err_set(eb, rc, "s3://%s/%s: %s", bucket, key, s3s_worker_errmsg(ud));
    }
    pthread_mutex_init(&h->mu, NULL);
    *out = h;
    return 0;
}

static int w_pread(void *vh, void *buf, size_t n, uint64_t off, size_t *out_n, s3s__errbuf *eb)
{
    handle *h = vh;
    pthread_mutex_lock(&h->mu);
    int rc = s3s_reader_pread(h->r, buf, n, off, out_n);
    if (rc != 0)
        s3s__err_set(eb, rc, "%s", s3s_reader_errmsg(h->r));
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static int w_pread_fd(void *vh, size_t n, uint64_t off, int *out_fd, uint64_t *out_foff,
                      size_t *out_n, s3s__errbuf *eb)
{
    handle *h = vh;
    pthread_mutex_lock(&h->mu);
    int rc = s3s__reader_pread_fd(h->r, n, off, out_fd, out_foff, out_n);
    if (rc != 0)
        s3s__err_set(eb, rc, "%s", s3s_reader_errmsg(h->r));
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static void w_close(void *vh)
{
    handle *h = vh;
    if (h == NULL)
        return;
    s3s_reader_close(h->r);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static void w_prefetch(void *vh)
{
    handle *h = vh;
    pthread_mutex_lock(&h->mu);
    s3s__reader_prefetch(h->r, 0);
    pthread_mutex_unlock(&h->mu);
}

void s3s__objio_worker_io(s3s_worker *w, s3s__objio *io)
{
    io->ud = w;
    io->open = w_open;
    io->pread = w_pread;
    io->close = w_close;
    io->prefetch = w_prefetch;
    io->pread_fd = w_pread_fd;
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
