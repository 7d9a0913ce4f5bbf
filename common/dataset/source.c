/* source.c: enumerating a source into a snapshot: local directories and
 * manifests read from disk here; S3 listings and reads in source_s3.c. */
#include "common/dataset/source.h"

#include "common/dataset/errinfo.h"
#include "common/dataset/manifest.h"
#include "common/dataset/snapshot.h"
#include "s3shard/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 256
#define MAX_PATH 4096

void s3s_source_opts_init(s3s_source_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->data_type = S3S_DATA_S3_PREFIX;
    o->manifest_meta = S3S_META_LIST;
    o->max_record_bytes = 8ull << 20;
    o->max_manifest_bytes = 4ull << 30;
}

void s3s_source_opts_from_channel(s3s_source_opts *o, const s3s_channel *ch, s3s_s3 *s3)
{
    s3s_source_opts_init(o);
    o->data_type = ch->data_type;
    o->uri = ch->data_type == S3S_DATA_FILESYSTEM ? ch->local_path : ch->uri;
    o->attribute_names = ch->attribute_names;
    o->n_attribute_names = ch->n_attribute_names;
    o->s3 = s3;
    o->manifest_meta = ch->manifest_meta;
    o->max_record_bytes = ch->max_record_bytes;
    o->skip_bad_records = ch->skip_bad_records;
}

/* ---- local directory ---- */

typedef struct walk {
    s3s__snap_builder *b;
    char path[MAX_PATH];
    size_t root_len; /* path[root_len] is where relative keys start (after '/') */
    s3s_errinfo *e;
} walk;

static int walk_dir(walk *w, size_t len, int depth)
{
    if (depth > MAX_DEPTH)
        return s3s__ei_set(w->e, S3S_ETOOBIG, "%s: folders nested deeper than %d", w->path,
                           MAX_DEPTH);
    DIR *d = opendir(w->path);
    if (d == NULL)
        return s3s__ei_set(w->e, errno == ENOENT ? S3S_ENOTFOUND : S3S_EIO, "%s: %s", w->path,
                           strerror(errno));
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        size_t nl = strlen(de->d_name);
        if (len + 1 + nl >= MAX_PATH) {
            rc = s3s__ei_set(w->e, S3S_ETOOBIG, "%s/%s: path longer than %d bytes", w->path,
                             de->d_name, MAX_PATH);
            break;
        }
        w->path[len] = '/';
        memcpy(w->path + len + 1, de->d_name, nl + 1);
        struct stat st;
        if (lstat(w->path, &st) != 0) {
            rc = s3s__ei_set(w->e, S3S_EIO, "%s: %s", w->path, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            rc = walk_dir(w, len + 1 + nl, depth + 1);
        } else {
            /* A symlink counts as the file it names; symlinked folders are not
             * followed (no loops). Sockets, FIFOs and devices are not data. */
            if (S_ISLNK(st.st_mode) && stat(w->path, &st) != 0)
                st.st_mode = 0;
            if (S_ISREG(st.st_mode)) {
                const char *rel = w->path + w->root_len + 1;
                rc = s3s__sb_add(w->b, rel, strlen(rel), (uint64_t)st.st_size, NULL);
                if (rc != 0)
                    s3s__ei_set(w->e, rc, "%s: %s", w->path, s3s_strerror(rc));
            }
        }
        w->path[len] = '\0';
    }
    if (rc == 0 && errno != 0)
        rc = s3s__ei_set(w->e, S3S_EIO, "%s: readdir: %s", w->path, strerror(errno));
    closedir(d);
    return rc;
}

static int create_dir(s3s_snapshot **out, const char *dir, s3s_errinfo *e)
{
    walk *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    s3s__snap_builder b;
    s3s__sb_init(&b);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    int rc;
    if (n >= MAX_PATH) {
        rc = s3s__ei_set(e, S3S_ETOOBIG, "directory path too long");
        goto out;
    }
    memcpy(w->path, dir, n);
    w->path[n] = '\0';
    w->root_len = n;
    w->b = &b;
    w->e = e;
    struct stat st;
    if (stat(w->path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = s3s__ei_set(e, S3S_ENOTFOUND, "%s: not a directory", w->path);
        goto out;
    }
    if ((rc = walk_dir(w, n, 0)) == 0)
        rc = s3s__sb_finish(&b, S3S_SNAP_OBJECTS, w->path, NULL, out, e);
out:
    s3s__sb_fini(&b);
    free(w);
    return rc;
}

/* ---- manifests ---- */

int s3s__read_local(const char *path, uint64_t cap, char **out, size_t *out_len, s3s_errinfo *e)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s3s__ei_set(e, errno == ENOENT ? S3S_ENOTFOUND : S3S_EIO, "%s: %s", path,
                           strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return s3s__ei_set(e, S3S_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > cap) {
        close(fd);
        return s3s__ei_set(e, S3S_ETOOBIG, "%s: %lld bytes, over the cap of %llu", path,
                           (long long)st.st_size, (unsigned long long)cap);
    }
    size_t n = (size_t)st.st_size, off = 0;
    char *buf = malloc(n + 1);
    if (buf == NULL) {
        close(fd);
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    }
    while (off < n) {
        ssize_t r = read(fd, buf + off, n - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            free(buf);
            return s3s__ei_set(e, S3S_EIO, "%s: read error", path);
        }
        off += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

typedef struct mctx {
    s3s__snap_builder *b;
    const char *name;
    s3s_errinfo *e;
} mctx;

static int on_key(void *ud, const char *key, size_t key_len, size_t line)
{
    mctx *m = ud;
    int rc = s3s__sb_add(m->b, key, key_len, 0, NULL);
    if (rc != 0)
        return s3s__ei_set(m->e, rc, "%s:%zu: %s", m->name, line, s3s_strerror(rc));
    m->b->recs[m->b->count - 1].pad1 = line > UINT32_MAX ? UINT32_MAX : (uint32_t)line;
    return 0;
}

static int on_record(void *ud, const char *text, size_t len, size_t line)
{
    mctx *m = ud;
    int rc = s3s__sb_add(m->b, text, len, len, NULL);
    if (rc != 0)
        return s3s__ei_set(m->e, rc, "%s:%zu: %s", m->name, line, s3s_strerror(rc));
    /* the line travels with the record (not hashed) so that the worker can
     * name it when a -ref object fails */
    m->b->recs[m->b->count - 1].pad1 = line > UINT32_MAX ? 0 : (uint32_t)line;
    return 0;
}

int s3s__snapshot_from_manifest(s3s_snapshot **out, const s3s_source_opts *o, const char *buf,
                                size_t len, const char *name, s3s_errinfo *e)
{
    s3s__snap_builder b;
    s3s__sb_init(&b);
    mctx m = {&b, name, e};
    size_t skipped = 0;
    int rc;
    if (e != NULL)
        e->code = 0;
    if (o->data_type == S3S_DATA_AUGMENTED_MANIFEST) {
        if (o->n_attribute_names == 0) {
            rc = s3s__ei_set(e, S3S_ECONFIG, "an augmented manifest needs AttributeNames");
        } else {
            rc = s3s__augmented_parse(buf, len, name, o->attribute_names, o->n_attribute_names,
                                      o->max_record_bytes, o->skip_bad_records, on_record, &m,
                                      &skipped, e);
            if (rc == 0)
                rc = s3s__sb_finish(&b, S3S_SNAP_RECORDS, o->uri, NULL, out, e);
        }
        s3s__sb_fini(&b);
        return rc;
    }
    char *bucket = NULL, *prefix = NULL;
    s3s__snap_builder full, *fin = &b;
    s3s__sb_init(&full);
    rc = s3s__manifest_parse(buf, len, name, o->max_record_bytes, o->skip_bad_records, on_key, &m,
                             &bucket, &prefix, &skipped, e);
    if (rc == 0 && o->manifest_meta != S3S_META_NONE) {
        rc = s3s__manifest_fill_meta(&b, &full, o, bucket, prefix, name, e);
        fin = &full;
    }
    for (uint64_t i = 0; rc == 0 && i < fin->count; i++)
        fin->recs[i].pad1 = 0;
    if (rc == 0)
        rc = s3s__sb_finish(fin, S3S_SNAP_MANIFEST, o->uri, bucket, out, e);
    s3s__sb_fini(&full);
    if (rc == 0 && skipped > 0)
        fprintf(stderr, "s3shard: %s: skipped %zu malformed manifest entries (SkipBadRecords)\n",
                name, skipped);
    free(bucket);
    free(prefix);
    s3s__sb_fini(&b);
    return rc;
}

static const char *local_path_of(const char *uri)
{
    if (strncmp(uri, "file://", 7) == 0)
        return uri + 7;
    return uri;
}

int s3s_snapshot_create(s3s_snapshot **out, const s3s_source_opts *opts, s3s_errinfo *e)
{
    *out = NULL;
    s3s_source_opts def;
    if (opts == NULL) {
        s3s_source_opts_init(&def);
        opts = &def;
    }
    if (opts->uri == NULL)
        return s3s__ei_set(e, S3S_EINVAL, "no source URI or path given");
    if (opts->data_type == S3S_DATA_FILESYSTEM)
        return create_dir(out, local_path_of(opts->uri), e);
    if (opts->data_type == S3S_DATA_S3_PREFIX) {
        if (strncmp(opts->uri, "s3://", 5) != 0)
            return create_dir(out, local_path_of(opts->uri), e);
        return s3s__snapshot_from_prefix(out, opts, e);
    }
    if (opts->data_type != S3S_DATA_MANIFEST && opts->data_type != S3S_DATA_AUGMENTED_MANIFEST)
        return s3s__ei_set(e, S3S_EINVAL, "unknown data type %d", (int)opts->data_type);
    char *buf = NULL;
    size_t len = 0;
    int rc;
    if (strncmp(opts->uri, "s3://", 5) == 0)
        rc = s3s__read_s3(opts, opts->uri, opts->max_manifest_bytes, &buf, &len, e);
    else
        rc = s3s__read_local(local_path_of(opts->uri), opts->max_manifest_bytes, &buf, &len, e);
    if (rc == 0)
        rc = s3s__snapshot_from_manifest(out, opts, buf, len, opts->uri, e);
    free(buf);
    return rc;
}
