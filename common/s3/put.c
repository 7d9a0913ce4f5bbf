/* put.c: PUT, single request below multipart_threshold, multipart above it
 * (parts in parallel over the handle's connections; the upload is aborted on
 * any failure so no orphan parts are left billed). */
#include "common/s3/client.h"

#include "common/s3/http.h"
#include "common/s3/pct.h"
#include "common/s3/xml.h"
#include "s3shard/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S3_MAX_PARTS 10000

/* One body source: memory or a file descriptor. */
typedef struct source {
    const void *mem;
    int fd;
    uint64_t len;
} source;

static int put_single(s3s_s3 *s3, const char *bucket, const char *key, const source *src,
                      char *etag_out)
{
    s3s__xfer x;
    s3s__xfer_init(&x);
    x.method = "PUT";
    x.bucket = bucket;
    x.key = key;
    x.has_body = 1;
    x.up_mem = src->mem;
    x.up_fd = src->fd;
    x.up_off = 0;
    x.up_len = src->len;
    int rc = s3s__http_run(s3, &x);
    if (rc != 0)
        s3s__s3_fail(s3, &x);
    else if (etag_out != NULL)
        memcpy(etag_out, x.etag, 72);
    s3s__xfer_fini(&x);
    return rc;
}

static int upload_query(s3s__buf *q, const char *upload_id, unsigned part)
{
    int rc = 0;
    if (part > 0)
        rc = s3s__buf_printf(q, "partNumber=%u&", part);
    if (rc == 0)
        rc = s3s__buf_puts(q, "uploadId=");
    if (rc == 0)
        rc = s3s__pct_encode(q, upload_id, strlen(upload_id), 0);
    return rc;
}

static void abort_upload(s3s_s3 *s3, const char *bucket, const char *key, const char *upload_id)
{
    s3s__buf q;
    s3s__xfer x;
    s3s__buf_init(&q, 4096);
    s3s__xfer_init(&x);
    if (upload_query(&q, upload_id, 0) == 0) {
        x.method = "DELETE";
        x.bucket = bucket;
        x.key = key;
        x.query = q.data;
        (void)s3s__http_run(s3, &x); /* best effort: the first error is what matters */
    }
    s3s__xfer_fini(&x);
    s3s__buf_fini(&q);
}

typedef struct part {
    s3s__xfer x;
    s3s__buf q;
    unsigned number;
    int busy;
} part;

static int put_multipart(s3s_s3 *s3, const char *bucket, const char *key, const source *src,
                         char *etag_out)
{
    uint64_t psize = s3->opts.part_size;
    uint64_t nparts = (src->len + psize - 1) / psize;
    while (nparts > S3_MAX_PARTS) {
        psize *= 2; /* S3 allows 10,000 parts: grow the parts, not the count */
        nparts = (src->len + psize - 1) / psize;
    }
    char *upload_id = NULL;
    char(*etags)[72] = calloc((size_t)nparts, sizeof *etags);
    unsigned window =
        s3->opts.max_connections < nparts ? s3->opts.max_connections : (unsigned)nparts;
    part *slots = calloc(window, sizeof *slots);
    s3s__buf complete;
    s3s__xfer x;
    int rc = 0;
    s3s__buf_init(&complete, (size_t)64 << 20);
    s3s__xfer_init(&x);
    if (etags == NULL || slots == NULL) {
        rc = s3s__err_set(&s3->eb, S3S_ENOMEM, "out of memory");
        goto out;
    }
    /* 1. initiate */
    x.method = "POST";
    x.bucket = bucket;
    x.key = key;
    x.query = "uploads";
    if ((rc = s3s__http_run(s3, &x)) != 0) {
        s3s__s3_fail(s3, &x);
        goto out;
    }
    if ((rc = s3s__xml_parse_upload_id(&upload_id, x.body.data, x.body.len, &s3->eb)) != 0)
        goto out;
    /* 2. parts, `window` at a time */
    for (unsigned i = 0; i < window; i++) {
        s3s__xfer_init(&slots[i].x);
        s3s__buf_init(&slots[i].q, 4096);
    }
    uint64_t next = 0, finished = 0;
    while (finished < nparts && rc == 0) {
        for (unsigned i = 0; i < window && next < nparts; i++) {
            part *p = &slots[i];
            if (p->busy)
                continue;
            s3s__buf_reset(&p->q);
            p->number = (unsigned)next + 1;
            if ((rc = upload_query(&p->q, upload_id, p->number)) != 0)
                break;
            uint64_t off = next * psize;
            s3s__xfer_fini(&p->x);
            s3s__xfer_init(&p->x);
            p->x.method = "PUT";
            p->x.bucket = bucket;
            p->x.key = key;
            p->x.query = p->q.data;
            p->x.has_body = 1;
            p->x.up_mem = src->mem != NULL ? (const char *)src->mem + off : NULL;
            p->x.up_fd = src->fd;
            p->x.up_off = off;
            p->x.up_len = src->len - off < psize ? src->len - off : psize;
            p->x.user = p;
            if ((rc = s3s__http_submit(s3, &p->x)) != 0)
                break;
            p->busy = 1;
            next++;
        }
        if (rc != 0) {
            s3s__err_set(&s3->eb, rc, "out of memory");
            break;
        }
        s3s__xfer *d = NULL;
        if (s3s__http_wait(s3, &d) != 0) {
            rc = s3s__err_set(&s3->eb, S3S_EPROTO, "PUT %s/%s: parts lost track of", bucket, key);
            break;
        }
        part *p = d->user;
        p->busy = 0;
        if (d->rc != 0) {
            rc = s3s__s3_fail(s3, d);
            break;
        }
        if (d->etag[0] == '\0') {
            rc = s3s__err_set(&s3->eb, S3S_EPROTO, "PUT %s/%s part %u: no ETag in the reply",
                              bucket, key, p->number);
            break;
        }
        memcpy(etags[p->number - 1], d->etag, 72);
        finished++;
    }
    for (unsigned i = 0; i < window; i++)
        if (slots[i].busy)
            s3s__http_cancel(s3, &slots[i].x);
    if (rc != 0)
        goto abort;
    /* 3. complete */
    rc = s3s__buf_puts(&complete, "<CompleteMultipartUpload>");
    for (uint64_t i = 0; i < nparts && rc == 0; i++)
        rc = s3s__buf_printf(&complete,
                             "<Part><PartNumber>%llu</PartNumber><ETag>\"%s\"</ETag></Part>",
                             (unsigned long long)i + 1, etags[i]);
    if (rc == 0)
        rc = s3s__buf_puts(&complete, "</CompleteMultipartUpload>");
    if (rc != 0) {
        s3s__err_set(&s3->eb, rc, "PUT %s/%s: completion request too large", bucket, key);
        goto abort;
    }
    s3s__buf q;
    s3s__buf_init(&q, 4096);
    s3s__xfer_fini(&x);
    s3s__xfer_init(&x);
    if ((rc = upload_query(&q, upload_id, 0)) == 0) {
        x.method = "POST";
        x.bucket = bucket;
        x.key = key;
        x.query = q.data;
        x.has_body = 1;
        x.up_mem = complete.data;
        x.up_len = complete.len;
        x.content_type = "application/xml";
        rc = s3s__http_run(s3, &x);
        if (rc != 0)
            s3s__s3_fail(s3, &x);
        else {
            char etag[72];
            rc = s3s__xml_parse_complete(etag, x.body.data, x.body.len, &s3->eb);
            if (rc == 0 && etag_out != NULL)
                memcpy(etag_out, etag, 72);
        }
    }
    s3s__buf_fini(&q);
    if (rc == 0)
        goto out;
abort:
    abort_upload(s3, bucket, key, upload_id);
out:
    if (slots != NULL) {
        for (unsigned i = 0; i < window; i++) {
            s3s__xfer_fini(&slots[i].x);
            s3s__buf_fini(&slots[i].q);
        }
    }
    free(slots);
    free(etags);
    free(upload_id);
    s3s__buf_fini(&complete);
    s3s__xfer_fini(&x);
    return rc;
}

static int put_source(s3s_s3 *s3, const char *bucket, const char *key, const source *src,
                      char *etag_out)
{
    if (src->len >= s3->opts.multipart_threshold && src->len > 0)
        return put_multipart(s3, bucket, key, src, etag_out);
    return put_single(s3, bucket, key, src, etag_out);
}

int s3s_s3_put(s3s_s3 *s3, const char *bucket, const char *key, const void *data, size_t len,
               char *etag_out)
{
    int rc = s3s__s3_check_args(s3, bucket, key);
    if (rc != 0)
        return rc;
    if (data == NULL && len > 0)
        return s3s__err_set(&s3->eb, S3S_EINVAL, "PUT %s/%s: no data", bucket, key);
    source src = {data != NULL ? data : "", -1, len};
    return put_source(s3, bucket, key, &src, etag_out);
}

int s3s_s3_put_file(s3s_s3 *s3, const char *bucket, const char *key, const char *path,
                    char *etag_out)
{
    int rc = s3s__s3_check_args(s3, bucket, key);
    if (rc != 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s3s__err_set(&s3->eb, errno == ENOENT ? S3S_ENOTFOUND : S3S_EIO, "%s: %s", path,
                            strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return s3s__err_set(&s3->eb, S3S_EIO, "%s: not a regular file", path);
    }
    source src = {NULL, fd, (uint64_t)st.st_size};
    rc = put_source(s3, bucket, key, &src, etag_out);
    close(fd);
    return rc;
}
