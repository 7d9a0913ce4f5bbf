/* coord_mirror.c: the state mirrored to S3 (--state-uri s3://bucket/prefix):
 *   prefix/job.json, prefix/snapshot-<channel>.s3ss (once), prefix/journal
 *   (the durable journal bytes, uploaded whole every mirror interval and at
 *   every epoch boundary). A coordinator whose state dir has no journal
 *   fetches all three first, so a job that lost every instance resumes.
 * The S3 client is used from one thread at a time: open, then the server
 * thread (periodic flush, commit at epoch boundaries), then stop. */
#include "common/util/log.h"
#include "coordinator/coord_int.h"
#include "s3shard/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int split_uri(s3s__coord *c, s3s__errbuf *eb)
{
    if (c->mirror_bucket != NULL)
        return 0;
    char *b = NULL, *k = NULL;
    if (s3s_uri_parse(c->state_uri, &b, &k) != 0)
        return s3s__err_set(eb, S3S_EINVAL, "--state-uri %s: expected s3://bucket/prefix",
                            c->state_uri);
    size_t n = strlen(k);
    while (n > 0 && k[n - 1] == '/')
        k[--n] = 0;
    c->mirror_bucket = b;
    c->mirror_prefix = k;
    return 0;
}

static void key_of(const s3s__coord *c, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s", c->mirror_prefix, c->mirror_prefix[0] ? "/" : "", name);
}

static int to_buf(void *ud, const void *d, size_t n)
{
    return s3s__buf_append(ud, d, n);
}

static int get_obj(s3s__coord *c, const char *name, s3s__buf *out, s3s__errbuf *eb)
{
    char key[2048];
    key_of(c, name, key, sizeof(key));
    s3s__buf_reset(out);
    int rc = s3s_s3_get(c->s3, c->mirror_bucket, key, 0, S3S_TO_END, NULL, to_buf, out, NULL);
    if (rc != 0 && rc != S3S_ENOTFOUND)
        return s3s__err_set(eb, rc, "state mirror: %s", s3s_s3_errmsg(c->s3));
    return rc;
}

static int save_local(const s3s__coord *c, const char *name, const s3s__buf *b, s3s__errbuf *eb)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/%s", c->state_dir, name);
    snprintf(tmp, sizeof(tmp), "%s.mirror", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return s3s__err_set(eb, S3S_EIO, "%s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->data + off, b->len - off);
        if (w <= 0 && errno != EINTR) {
            close(fd);
            return s3s__err_set(eb, S3S_EIO, "%s: %s", tmp, strerror(errno));
        }
        if (w > 0)
            off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0)
        return s3s__err_set(eb, S3S_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

int s3s__coord_mirror_fetch(s3s__coord *c, s3s__errbuf *eb)
{
    int rc = split_uri(c, eb);
    if (rc != 0)
        return rc;
    char path[4096];
    snprintf(path, sizeof(path), "%s/journal", c->state_dir);
    struct stat sb;
    if (stat(path, &sb) == 0)
        return 0; /* the local state wins: it is at least as new as the mirror */
    s3s__buf b;
    s3s__buf_init(&b, (size_t)16 << 30);
    rc = get_obj(c, "job.json", &b, eb);
    if (rc == S3S_ENOTFOUND) { /* nothing mirrored yet: a new job */
        s3s__buf_fini(&b);
        return 0;
    }
    s3s_job *job = NULL;
    s3s_errinfo ei;
    if (rc == 0 && s3s_job_parse(&job, b.data, b.len, "mirrored job.json", &ei) != 0)
        rc = s3s__err_set(eb, S3S_ECONFIG, "%s", ei.msg);
    snprintf(path, sizeof(path), "%s/job.json", c->state_dir);
    if (rc == 0 && c->job_path == NULL && stat(path, &sb) != 0)
        rc = save_local(c, "job.json", &b, eb);
    for (size_t i = 0; rc == 0 && i < s3s_job_channel_count(job); i++) {
        char name[256];
        snprintf(name, sizeof(name), "snapshot-%s.s3ss", s3s_job_channel(job, i)->name);
        snprintf(path, sizeof(path), "%s/%s", c->state_dir, name);
        if (stat(path, &sb) == 0)
            continue;
        rc = get_obj(c, name, &b, eb);
        if (rc == 0)
            rc = save_local(c, name, &b, eb);
        else if (rc == S3S_ENOTFOUND)
            rc = 0; /* rebuilt from the source; the journal's hash check decides */
    }
    if (rc == 0) {
        rc = get_obj(c, "journal", &b, eb);
        if (rc == 0) {
            rc = save_local(c, "journal", &b, eb);
            S3S_LOGI("coordinator: resumed %zu journal bytes from %s", b.len, c->state_uri);
        } else if (rc == S3S_ENOTFOUND) {
            rc = 0;
        }
    }
    s3s_job_destroy(job);
    s3s__buf_fini(&b);
    return rc;
}

static int put_obj(s3s__coord *c, const char *name, const void *d, size_t n, s3s__errbuf *eb)
{
    char key[2048];
    key_of(c, name, key, sizeof(key));
    int rc = s3s_s3_put(c->s3, c->mirror_bucket, key, d, n, NULL);
    return rc ? s3s__err_set(eb, rc, "state mirror: %s", s3s_s3_errmsg(c->s3)) : 0;
}

int s3s__coord_mirror_put_static(s3s__coord *c, s3s__errbuf *eb)
{
    int rc = split_uri(c, eb);
    char path[4096];
    snprintf(path, sizeof(path), "%s/job.json", c->state_dir);
    FILE *f = rc == 0 ? fopen(path, "rb") : NULL;
    if (rc == 0 && f == NULL)
        return s3s__err_set(eb, S3S_EIO, "%s: %s", path, strerror(errno));
    s3s__buf b;
    s3s__buf_init(&b, (size_t)64 << 20);
    char tmp[8192];
    size_t n;
    while (f != NULL && (n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        s3s__buf_append(&b, tmp, n);
    if (f != NULL)
        fclose(f);
    if (rc == 0)
        rc = put_obj(c, "job.json", b.data ? b.data : "", b.len, eb);
    s3s__buf_fini(&b);
    for (uint32_t i = 0; rc == 0 && i < c->nchan; i++) {
        char name[256];
        snprintf(name, sizeof(name), "snapshot-%s.s3ss", c->chans[i].ch->name);
        char spath[4096], key[2048];
        s3s__coord_snap_path(c, &c->chans[i], spath, sizeof(spath));
        key_of(c, name, key, sizeof(key));
        rc = s3s_s3_put_file(c->s3, c->mirror_bucket, key, spath, NULL);
        if (rc != 0)
            rc = s3s__err_set(eb, rc, "state mirror: %s", s3s_s3_errmsg(c->s3));
    }
    return rc;
}

void s3s__coord_mirror_hook(void *arg, uint64_t generation, uint64_t offset, const void *bytes,
                            size_t len)
{
    s3s__coord *c = arg;
    pthread_mutex_lock(&c->mu);
    if (generation != c->mirror_gen || offset == 0) {
        s3s__buf_reset(&c->mirror_buf);
        c->mirror_gen = generation;
    }
    if (offset == c->mirror_buf.len)
        s3s__buf_append(&c->mirror_buf, bytes, len);
    c->mirror_dirty = true;
    pthread_mutex_unlock(&c->mu);
}

int s3s__coord_mirror_flush(s3s__coord *c, s3s__errbuf *eb)
{
    if (c->state_uri == NULL || c->s3 == NULL)
        return 0;
    int rc = split_uri(c, eb);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    if (!c->mirror_dirty) {
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    size_t n = c->mirror_buf.len;
    char *copy = malloc(n ? n : 1);
    if (copy != NULL) {
        memcpy(copy, c->mirror_buf.data, n);
        c->mirror_dirty = false;
    }
    pthread_mutex_unlock(&c->mu);
    if (copy == NULL)
        return S3S_ENOMEM;
    s3s__errbuf local;
    rc = put_obj(c, "journal", copy, n, eb ? eb : &local);
    if (rc != 0) {
        S3S_LOGW("coordinator: journal upload failed (will retry): %s", (eb ? eb : &local)->msg);
        pthread_mutex_lock(&c->mu);
        c->mirror_dirty = true;
        pthread_mutex_unlock(&c->mu);
    }
    free(copy);
    return rc;
}
