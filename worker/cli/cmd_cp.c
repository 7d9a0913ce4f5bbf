/* cmd_cp.c: `s3shard cp SRC DST [--recursive] [--jobs N]`, local to S3 and S3
 * to local.
 *
 * Files are copied by N worker threads, each with its own S3 client (a handle
 * is not thread-safe); a big file is itself split into parallel parts or
 * ranges by the client. Downloads are crash-safe: bytes go to a temporary
 * file beside the target, which is fsynced and renamed into place, so a
 * killed copy never leaves a partial file under the real name. Keys that
 * would leave the destination folder ("..", absolute, empty segments) are
 * refused. */
#include "worker/cli/cli.h"
#include "worker/cli/cli_s3.h"

#include "s3shard/error.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct job {
    char *local;
    char *key;
    uint64_t size;
} job;

typedef struct cp {
    const s3s__cli *g;
    const char *cmd;
    const char *bucket;
    int upload;
    job *jobs;
    size_t njobs, cap;
    size_t next; /* under lock */
    pthread_mutex_t lock;
    uint64_t files, bytes; /* under lock */
    int failed; /* under lock */
    unsigned conns;
} cp;

static int add_job(cp *c, const char *local, const char *key, uint64_t size)
{
    if (c->njobs == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        job *nj = realloc(c->jobs, nc * sizeof *nj);
        if (nj == NULL)
            return S3S_ENOMEM;
        c->jobs = nj;
        c->cap = nc;
    }
    job *j = &c->jobs[c->njobs];
    j->local = strdup(local);
    j->key = strdup(key);
    j->size = size;
    if (j->local == NULL || j->key == NULL) {
        free(j->local);
        free(j->key);
        return S3S_ENOMEM;
    }
    c->njobs++;
    return 0;
}

/* A key is safe as a relative path when no segment is empty, "." or "..". */
static int key_safe(const char *rel)
{
    if (rel[0] == '\0' || rel[0] == '/')
        return 0;
    const char *s = rel;
    while (*s != '\0') {
        const char *e = strchr(s, '/');
        size_t n = e != NULL ? (size_t)(e - s) : strlen(s);
        if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return 0;
        s += n;
        if (*s == '/')
            s++;
    }
    return rel[strlen(rel) - 1] != '/';
}

static int mkdirs_for(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return -1;
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

static int write_fd(void *ud, const void *p, size_t n)
{
    int fd = *(int *)ud;
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return S3S_EIO;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int download(s3s_s3 *s3, const cp *c, const job *j, char *err, size_t errn)
{
    char tmp[PATH_MAX];
    if (mkdirs_for(j->local) != 0) {
        snprintf(err, errn, "%.900s: cannot create its folder: %s", j->local, strerror(errno));
        return S3S_EIO;
    }
    if (snprintf(tmp, sizeof tmp, "%s.s3shard-tmp.%ld", j->local, (long)getpid()) >=
        (int)sizeof tmp) {
        snprintf(err, errn, "%.900s: path too long", j->local);
        return S3S_EINVAL;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        snprintf(err, errn, "%.900s: %s", tmp, strerror(errno));
        return S3S_EIO;
    }
    int rc = s3s_s3_get_parallel(s3, c->bucket, j->key, 0, S3S_TO_END, 0, write_fd, &fd, NULL);
    if (rc != 0)
        snprintf(err, errn, "%s", rc == S3S_EIO ? "write error" : s3s_s3_errmsg(s3));
    if (rc == 0 && fsync(fd) != 0) {
        snprintf(err, errn, "%.900s: fsync: %s", tmp, strerror(errno));
        rc = S3S_EIO;
    }
    if (close(fd) != 0 && rc == 0) {
        snprintf(err, errn, "%.900s: close: %s", tmp, strerror(errno));
        rc = S3S_EIO;
    }
    if (rc == 0 && rename(tmp, j->local) != 0) {
        snprintf(err, errn, "%.900s: rename: %s", j->local, strerror(errno));
        rc = S3S_EIO;
    }
    if (rc != 0)
        unlink(tmp);
    return rc;
}

static void *worker(void *arg)
{
    cp *c = arg;
    s3s_s3 *s3 = s3s__cli_s3_open(c->g, c->cmd, c->conns);
    if (s3 == NULL) {
        pthread_mutex_lock(&c->lock);
        c->failed = 1;
        pthread_mutex_unlock(&c->lock);
        return NULL;
    }
    for (;;) {
        pthread_mutex_lock(&c->lock);
        size_t i = c->failed ? c->njobs : c->next++;
        pthread_mutex_unlock(&c->lock);
        if (i >= c->njobs)
            break;
        job *j = &c->jobs[i];
        char err[1200] = "";
        int rc;
        if (c->upload) {
            rc = s3s_s3_put_file(s3, c->bucket, j->key, j->local, NULL);
            if (rc != 0)
                snprintf(err, sizeof err, "%s", s3s_s3_errmsg(s3));
        } else {
            rc = download(s3, c, j, err, sizeof err);
        }
        pthread_mutex_lock(&c->lock);
        if (rc != 0) {
            c->failed = 1;
            fprintf(stderr, "s3shard %s: %s -> %s: %s\n", c->cmd, c->upload ? j->local : j->key,
                    c->upload ? j->key : j->local, err);
        } else {
            c->files++;
            c->bytes += j->size;
        }
        pthread_mutex_unlock(&c->lock);
    }
    s3s_s3_destroy(s3);
    return NULL;
}

/* ---- building the job list ---------------------------------------------------- */

static cp *walk_cp;
static const char *walk_root;
static const char *walk_prefix;
static int walk_rc;

static int walk_fn(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    const char *rel = path + strlen(walk_root);
    while (*rel == '/')
        rel++;
    char key[4096];
    if (snprintf(key, sizeof key, "%s%s", walk_prefix, rel) >= (int)sizeof key) {
        walk_rc = S3S_EINVAL;
        return 1;
    }
    walk_rc = add_job(walk_cp, path, key, (uint64_t)st->st_size);
    return walk_rc != 0;
}

typedef struct list_ctx {
    cp *c;
    const char *prefix;
    const char *dest;
    int rc;
    char bad[1100];
} list_ctx;

static int on_listed(void *ud, const char *key, uint64_t size, const char *etag, int64_t mtime)
{
    list_ctx *l = ud;
    (void)etag;
    (void)mtime;
    const char *rel = key + strlen(l->prefix);
    if (key[strlen(key) - 1] == '/' && size == 0)
        return 0; /* a "folder" marker object */
    if (!key_safe(rel)) {
        snprintf(l->bad, sizeof l->bad, "%s", key);
        return S3S_EUNSAFEKEY;
    }
    char local[PATH_MAX];
    if (snprintf(local, sizeof local, "%s/%s", l->dest, rel) >= (int)sizeof local)
        return S3S_EINVAL;
    return add_job(l->c, local, key, size);
}

static int ends_with_slash(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '/';
}

int s3s__cmd_cp(s3s__cli *g, int argc, char **argv)
{
    const char *src = NULL, *dst = NULL;
    int recursive = 0;
    long long jobs = 16;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--recursive") == 0 || strcmp(argv[i], "-r") == 0) {
            recursive = 1;
        } else if (strcmp(argv[i], "--jobs") == 0 || strcmp(argv[i], "-j") == 0) {
            if (i + 1 >= argc || (jobs = s3s__cli_parse_count(argv[i + 1])) < 1 || jobs > 256)
                return s3s__cli_usage_error(argv[0], "--jobs needs a number from 1 to 256");
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return s3s__cli_usage_error(argv[0], "unknown option '%s'", argv[i]);
        } else if (src == NULL) {
            src = argv[i];
        } else if (dst == NULL) {
            dst = argv[i];
        } else {
            return s3s__cli_usage_error(argv[0], "expected SRC and DST only");
        }
    }
    if (src == NULL || dst == NULL)
        return s3s__cli_usage_error(argv[0], "expected SRC and DST");
    int src_s3 = strncmp(src, "s3://", 5) == 0, dst_s3 = strncmp(dst, "s3://", 5) == 0;
    if (src_s3 == dst_s3)
        return s3s__cli_usage_error(argv[0], "one side must be s3://, the other a local path");

    cp c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.lock, NULL);
    c.g = g;
    c.cmd = argv[0];
    c.upload = dst_s3;
    char *bucket = NULL, *key = NULL;
    int status = 1, rc;
    if ((rc = s3s__cli_s3_uri(argv[0], c.upload ? dst : src, &bucket, &key)) != 0) {
        pthread_mutex_destroy(&c.lock);
        return rc;
    }
    c.bucket = bucket;
    double t0 = s3s__cli_now();
    if (c.upload) {
        struct stat st;
        if (stat(src, &st) != 0) {
            s3s__cli_fail(argv[0], "%s: %s", src, strerror(errno));
            goto out;
        }
        if (S_ISDIR(st.st_mode)) {
            if (!recursive) {
                s3s__cli_fail(argv[0], "%s is a folder: use --recursive", src);
                goto out;
            }
            char prefix[4096];
            snprintf(prefix, sizeof prefix, "%s%s", key,
                     key[0] != '\0' && !ends_with_slash(key) ? "/" : "");
            walk_cp = &c;
            walk_root = src;
            walk_prefix = prefix;
            walk_rc = 0;
            if (nftw(src, walk_fn, 32, FTW_PHYS) != 0 || walk_rc != 0) {
                s3s__cli_fail(argv[0], "%s: cannot walk the folder: %s", src,
                              walk_rc ? s3s_strerror(walk_rc) : strerror(errno));
                goto out;
            }
        } else {
            char k[4096];
            const char *base = strrchr(src, '/');
            base = base != NULL ? base + 1 : src;
            snprintf(k, sizeof k, "%s%s", key, key[0] == '\0' || ends_with_slash(key) ? base : "");
            if (add_job(&c, src, k, (uint64_t)st.st_size) != 0)
                goto out;
        }
    } else {
        struct stat st;
        int dst_dir = stat(dst, &st) == 0 && S_ISDIR(st.st_mode);
        if (recursive) {
            s3s_s3 *s3 = s3s__cli_s3_open(g, argv[0], 0);
            if (s3 == NULL)
                goto out;
            char prefix[4096];
            snprintf(prefix, sizeof prefix, "%s%s", key,
                     key[0] != '\0' && !ends_with_slash(key) ? "/" : "");
            list_ctx l = {&c, prefix, dst, 0, ""};
            rc = s3s_s3_list_parallel(s3, bucket, prefix, 0, on_listed, &l);
            if (rc == S3S_EUNSAFEKEY)
                s3s__cli_fail(argv[0], "refusing key '%s': it would leave %s", l.bad, dst);
            else if (rc != 0)
                s3s__cli_fail(argv[0], "%s", s3s_s3_errmsg(s3));
            s3s_s3_destroy(s3);
            if (rc != 0)
                goto out;
        } else {
            if (key[0] == '\0' || ends_with_slash(key)) {
                s3s__cli_fail(argv[0], "%s names a folder: use --recursive", src);
                goto out;
            }
            char local[PATH_MAX];
            const char *base = strrchr(key, '/');
            base = base != NULL ? base + 1 : key;
            if (dst_dir || ends_with_slash(dst))
                snprintf(local, sizeof local, "%s%s%s", dst, ends_with_slash(dst) ? "" : "/", base);
            else
                snprintf(local, sizeof local, "%s", dst);
            if (add_job(&c, local, key, 0) != 0)
                goto out;
        }
    }
    unsigned nthreads = (unsigned)(jobs < (long long)c.njobs ? jobs : (long long)c.njobs);
    if (nthreads == 0)
        nthreads = 1;
    /* Few big files: more connections each; many files: fewer each. */
    c.conns = nthreads >= 8 ? 8 : 32 / nthreads;
    pthread_t *th = calloc(nthreads, sizeof *th);
    if (th == NULL)
        goto out;
    unsigned started = 0;
    for (; started < nthreads; started++)
        if (pthread_create(&th[started], NULL, worker, &c) != 0)
            break;
    if (started == 0)
        worker(&c);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    double dt = s3s__cli_now() - t0;
    if (!c.upload) {
        /* Sizes of downloads are known only now. */
        c.bytes = 0;
        for (size_t i = 0; i < c.njobs; i++) {
            struct stat st;
            if (stat(c.jobs[i].local, &st) == 0)
                c.bytes += (uint64_t)st.st_size;
        }
    }
    fprintf(stderr, "%llu files, %llu bytes in %.2f s (%.1f MB/s)\n", (unsigned long long)c.files,
            (unsigned long long)c.bytes, dt, dt > 0 ? (double)c.bytes / dt / 1e6 : 0.0);
    status = c.failed ? 1 : 0;
out:
    for (size_t i = 0; i < c.njobs; i++) {
        free(c.jobs[i].local);
        free(c.jobs[i].key);
    }
    free(c.jobs);
    free(bucket);
    free(key);
    pthread_mutex_destroy(&c.lock);
    return status;
}
