/* cache.c: the cache handle (options, folders, counters) and entries
 * (identity files). The set of verified blocks is in cache_verify.c. */
#include "worker/cache/cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3shard/error.h"
#include "worker/cache/crc32c.h"

void s3s__cache_opts_init(s3s__cache_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_bytes = 20ull << 30;
    o->min_free_pct = 5;
    o->block_size = 8u << 20;
    o->fsync = 0;
    o->rescan_bytes = 0; /* 0 = max_bytes / 16 */
    o->low_water_pct = 90;
    o->touch_interval_s = 10;
}

uint64_t s3s__cache_proc_starttime(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and ')': fields restart
     * after the last ')'. starttime is field 22. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    p++;
    for (int field = 3; field < 22 && p != NULL; field++) {
        p = strchr(p + 1, ' ');
    }
    if (p == NULL)
        return 0;
    return strtoull(p + 1, NULL, 10);
}

char *s3s__cache_path(const s3s__cache *c, const char *hash, const char *suffix)
{
    size_t n = strlen(c->root) + 4 + strlen(hash) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%.2s/%s%s", c->root, hash, hash, suffix);
    return p;
}

static int mkdir_ok(const char *path)
{
    return mkdir(path, 0755) == 0 || errno == EEXIST;
}

int s3s__cache_mkfanout(const s3s__cache *c, const char *hash)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%.2s", c->root, hash);
    return mkdir_ok(path) ? 0 : -1;
}

/* Creates path and its missing parents. */
static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return 0;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (tmp[i] != '/')
            continue;
        tmp[i] = '\0';
        if (!mkdir_ok(tmp))
            return 0;
        tmp[i] = '/';
    }
    return mkdir_ok(tmp);
}

int s3s__cache_open(s3s__cache **out, const char *dir, const s3s__cache_opts *opts, s3s__errbuf *eb)
{
    *out = NULL;
    s3s__cache_opts o;
    if (opts != NULL)
        o = *opts;
    else
        s3s__cache_opts_init(&o);
    if (dir == NULL || dir[0] == '\0')
        return s3s__err_set(eb, S3S_EINVAL, "cache: no folder given");
    if (o.block_size < S3S__CACHE_BS_MIN || o.block_size > S3S__CACHE_BS_MAX)
        return s3s__err_set(eb, S3S_EINVAL, "cache: block_size %llu outside %u..%u",
                            (unsigned long long)o.block_size, S3S__CACHE_BS_MIN, S3S__CACHE_BS_MAX);
    if (o.max_bytes == 0)
        return s3s__err_set(eb, S3S_EINVAL, "cache: max_bytes must be > 0");
    if (o.min_free_pct > 90 || o.low_water_pct == 0 || o.low_water_pct > 100)
        return s3s__err_set(eb, S3S_EINVAL,
                            "cache: min_free_pct (%u) or low_water_pct (%u) "
                            "out of range",
                            o.min_free_pct, o.low_water_pct);
    if (o.rescan_bytes == 0)
        o.rescan_bytes = o.max_bytes / 16 > 0 ? o.max_bytes / 16 : 1;

    s3s__cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return S3S_ENOMEM;
    c->o = o;
    c->vlog_fd = -1;
    c->pid = getpid();
    c->incarnation = s3s__cache_proc_starttime(c->pid);
    struct stat nst;
    c->pidns = stat("/proc/self/ns/pid", &nst) == 0 ? (uint64_t)nst.st_ino : 0;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->evict_mu, NULL);
    size_t n = strlen(dir) + sizeof(S3S__CACHE_SUBDIR) + 8;
    c->root = malloc(n);
    if (c->root == NULL) {
        s3s__cache_close(c);
        return S3S_ENOMEM;
    }
    snprintf(c->root, n, "%s/%s", dir, S3S__CACHE_SUBDIR);
    char path[4096];
    if (!mkdir_p(dir) || !mkdir_ok(c->root)) {
        int err = errno;
        s3s__err_set(eb, S3S_EIO, "cache: cannot create folder %s: %s", c->root, strerror(err));
        s3s__cache_close(c);
        return S3S_EIO;
    }
    /* The 256 fan-out folders are made when first needed
     * (s3s__cache_mkfanout), which keeps opening cheap. */
    snprintf(path, sizeof(path), "%s/tmp", c->root);
    if (!mkdir_ok(path)) {
        int err = errno;
        s3s__err_set(eb, S3S_EIO, "cache: cannot create folder %s: %s", path, strerror(err));
        s3s__cache_close(c);
        return S3S_EIO;
    }
    s3s__cache_clean_tmp(c);
    s3s__cache_vlog_open(c);
    *out = c;
    return 0;
}

void s3s__cache_close(s3s__cache *c)
{
    if (c == NULL)
        return;
    s3s__cache_vlog_close(c);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->evict_mu);
    free(c->vset);
    free(c->root);
    free(c);
}

/* ---- entries ---- */

static int read_small(const char *path, uint8_t *buf, size_t cap, size_t *out_n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? S3S_ENOTFOUND : S3S_EIO;
    size_t n = 0;
    while (n < cap) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return S3S_EIO;
        }
        if (r == 0)
            break;
        int short_read = (size_t)r < cap - n;
        n += (size_t)r;
        if (short_read)
            break; /* a regular file reads short only at its end */
    }
    close(fd);
    *out_n = n;
    return 0;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *q = p;
    while (n > 0) {
        ssize_t w = write(fd, q, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        q += w;
        n -= (size_t)w;
    }
    return 0;
}

int s3s__cache_tmpfile(s3s__cache *c)
{
#ifdef O_TMPFILE
    if (__atomic_load_n(&c->no_tmpfile, __ATOMIC_RELAXED))
        return -1;
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/tmp", c->root);
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL))
        __atomic_store_n(&c->no_tmpfile, 1, __ATOMIC_RELAXED);
    return fd;
#else
    (void)c;
    return -1;
#endif
}

int s3s__cache_link_tmpfile(s3s__cache *c, int fd, const char *dst, const char *hash)
{
    char src[64];
    snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
    int rc = linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW);
    if (rc != 0 && errno == ENOENT && s3s__cache_mkfanout(c, hash) == 0)
        rc = linkat(AT_FDCWD, src, AT_FDCWD, dst, AT_SYMLINK_FOLLOW);
    if (rc != 0 && errno != EEXIST) {
        int err = errno;
        __atomic_store_n(&c->no_tmpfile, 1, __ATOMIC_RELAXED); /* no /proc? named temps */
        errno = err;
    }
    return rc;
}

/* The entry file is created with link(), which never replaces: if two
 * processes create the same entry at once, one wins and the other reads it.
 * Returns 0 when we created it (its bytes are img), 1 when it was there
 * already, or an error. Written as an unnamed temp where possible (4 system
 * calls, nothing left by a crash), else as a named, locked temp. */
static int write_meta(s3s__cache *c, const char *hash, const char *meta_path, const uint8_t *img,
                      size_t n, s3s__errbuf *eb)
{
    int fd = s3s__cache_tmpfile(c);
    if (fd >= 0) {
        int rc = 0;
        if (write_all(fd, img, n) != 0 || (c->o.fsync && fdatasync(fd) != 0))
            rc = s3s__err_set(eb, S3S_EIO, "cache: cannot write the entry of %s: %s", meta_path,
                              strerror(errno));
        else if (s3s__cache_link_tmpfile(c, fd, meta_path, hash) != 0)
            rc = errno == EEXIST ? 1 : -1;
        close(fd);
        if (rc >= 0)
            return rc;
        /* linking failed (no /proc?): the named way below */
    }
    char tmp[4096];
    pthread_mutex_lock(&c->mu);
    uint64_t k = c->tmp_counter++;
    pthread_mutex_unlock(&c->mu);
    snprintf(tmp, sizeof(tmp), "%s/tmp/%s.m.%ld.%llu", c->root, hash, (long)c->pid,
             (unsigned long long)k);
    fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return s3s__err_set(eb, S3S_EIO, "cache: cannot create %s: %s", tmp, strerror(errno));
    (void)flock(fd, LOCK_EX);
    int rc = 0;
    if (write_all(fd, img, n) != 0 || (c->o.fsync && fdatasync(fd) != 0)) {
        rc = s3s__err_set(eb, S3S_EIO, "cache: cannot write %s: %s", tmp, strerror(errno));
    } else if (link(tmp, meta_path) != 0) {
        if (errno == EEXIST)
            rc = 1;
        else if (errno != ENOENT || s3s__cache_mkfanout(c, hash) != 0)
            rc = s3s__err_set(eb, S3S_EIO, "cache: cannot link %s: %s", meta_path, strerror(errno));
        else if (link(tmp, meta_path) != 0)
            rc = errno == EEXIST ? 1
                                 : s3s__err_set(eb, S3S_EIO, "cache: cannot link %s: %s", meta_path,
                                                strerror(errno));
    }
    unlink(tmp);
    close(fd);
    return rc;
}

int s3s__cache_entry_open(s3s__cache *c, const s3s__cache_id *id, s3s__cache_entry **out,
                          s3s__errbuf *eb)
{
    *out = NULL;
    if (id == NULL || id->bucket == NULL || id->key == NULL || id->etag == NULL)
        return s3s__err_set(eb, S3S_EINVAL, "cache: incomplete object identity");
    uint8_t *img = NULL;
    size_t img_len = 0;
    int rc = s3s__cache_meta_encode(id, c->o.block_size, &img, &img_len);
    if (rc != 0)
        return rc == S3S_EINVAL ? s3s__err_set(eb, rc,
                                               "cache: bucket, key or ETag empty or too long "
                                               "(key '%.200s')",
                                               id->key)
                                : rc;
    s3s__cache_entry *e = calloc(1, sizeof(*e));
    char *meta_path = NULL;
    uint8_t *buf = malloc(S3S__CACHE_ENTRY_MAX + 1);
    if (e == NULL || buf == NULL) {
        rc = S3S_ENOMEM;
        goto out;
    }
    e->c = c;
    s3s__cache_hash_bin(e->hbin, id->bucket, id->key, id->etag);
    s3s__cache_hash_hex(e->hash, e->hbin);
    meta_path = s3s__cache_path(c, e->hash, ".m");
    if (meta_path == NULL) {
        rc = S3S_ENOMEM;
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        size_t n = 0;
        rc = read_small(meta_path, buf, S3S__CACHE_ENTRY_MAX + 1, &n);
        if (rc == S3S_ENOTFOUND && attempt < 3) {
            rc = write_meta(c, e->hash, meta_path, img, img_len, eb);
            if (rc < 0 || rc > 1)
                goto out;
            if (rc == 0) {
                /* Ours won: its bytes are img, no need to read them back. */
                e->size = id->size;
                e->block_size = c->o.block_size;
                e->nblocks = s3s__cache_nblocks(id->size, c->o.block_size);
                e->img = img;
                e->img_len = img_len;
                e->meta_path = meta_path;
                img = NULL;
                meta_path = NULL;
                break;
            }
            continue; /* another process's won the link race: read it */
        }
        if (rc != 0) {
            rc = s3s__err_set(eb, S3S_EIO, "cache: cannot read %s", meta_path);
            goto out;
        }
        s3s__cache_meta m;
        s3s__errbuf derr;
        int drc = s3s__cache_meta_decode(buf, n, &m, &derr);
        int same = drc == 0 && m.size == id->size && m.bucket_len == strlen(id->bucket) &&
            memcmp(m.bucket, id->bucket, m.bucket_len) == 0 && m.key_len == strlen(id->key) &&
            memcmp(m.key, id->key, m.key_len) == 0 && m.etag_len == strlen(id->etag) &&
            memcmp(m.etag, id->etag, m.etag_len) == 0;
        if (same) {
            e->size = m.size;
            e->block_size = m.block_size;
            e->nblocks = s3s__cache_nblocks(m.size, m.block_size);
            e->img = buf;
            e->img_len = n;
            e->meta_path = meta_path;
            buf = NULL;
            meta_path = NULL;
            rc = 0;
            break;
        }
        if (attempt >= 3) {
            rc = s3s__err_set(eb, S3S_EIO, "cache: entry %s keeps failing its check", meta_path);
            goto out;
        }
        /* Damaged, or the same (bucket, key, ETag) with another size: the
         * stored bytes cannot be trusted; start the entry afresh. */
        pthread_mutex_lock(&c->mu);
        c->st.corrupt++;
        pthread_mutex_unlock(&c->mu);
        s3s__cache_remove_entry(c, e->hash);
    }
out:
    free(buf);
    free(meta_path);
    free(img);
    if (rc != 0) {
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void s3s__cache_entry_close(s3s__cache_entry *e)
{
    if (e == NULL)
        return;
    free(e->img);
    free(e->meta_path);
    free(e);
}

void s3s__cache_entry_relink(s3s__cache_entry *e)
{
    /* A walk removes entry files that have had no block for a while; one
     * opened long ago may have lost its file before its first block landed.
     * Put it back so the inventory lists the block. */
    if (access(e->meta_path, F_OK) != 0 && errno == ENOENT)
        (void)write_meta(e->c, e->hash, e->meta_path, e->img, e->img_len, NULL);
}

uint64_t s3s__cache_entry_block_size(const s3s__cache_entry *e)
{
    return e->block_size;
}

uint32_t s3s__cache_entry_nblocks(const s3s__cache_entry *e)
{
    return e->nblocks;
}

uint64_t s3s__cache_entry_block_len(const s3s__cache_entry *e, uint32_t idx)
{
    if (idx >= e->nblocks)
        return 0;
    uint64_t off = (uint64_t)idx * e->block_size;
    uint64_t rest = e->size - off;
    return rest < e->block_size ? rest : e->block_size;
}

const char *s3s__cache_entry_hash(const s3s__cache_entry *e)
{
    return e->hash;
}

/* ---- accounting ---- */

void s3s__cache_note_added(s3s__cache *c, uint64_t bytes)
{
    pthread_mutex_lock(&c->mu);
    c->st.used_bytes += bytes;
    c->added_since_scan += bytes;
    uint64_t limit = c->st.limit_bytes != 0 ? c->st.limit_bytes : c->o.max_bytes;
    int need = !c->scanned || c->added_since_scan >= c->o.rescan_bytes || c->st.used_bytes > limit;
    pthread_mutex_unlock(&c->mu);
    if (need)
        (void)s3s__cache_rescan(c, S3S__CACHE_EVICT_AUTO, 0, NULL);
}

void s3s__cache_stats_get(s3s__cache *c, s3s__cache_stats *out, int rescan)
{
    if (rescan)
        (void)s3s__cache_rescan(c, S3S__CACHE_EVICT_NONE, 0, NULL);
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}
