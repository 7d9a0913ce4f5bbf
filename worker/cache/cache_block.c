/* cache_block.c: reading a block (lookup), and fetching one (claim, write,
 * commit, abort).
 *
 * Claims are flocks on <hash>.<i>.lock. Why flock and not an O_EXCL file with
 * a pid: the kernel drops an flock when its holder dies, so there is nothing
 * stale to clean after a crash (MosaicML's /dev/shm leftovers). The lock file
 * is unlinked by its holder when done; every locker therefore checks, after
 * locking, that the path still names the inode it locked, and retries if not.
 * One case escapes the kernel: a holder that forked a child (without exec)
 * and then died leaves the lock held by the child's copy of the fd. The
 * holder writes "pid starttime pidns" into the file, and a waiter that sees a
 * dead holder in its own pid namespace takes the claim over by unlinking the
 * file. */
#include "worker/cache/cache_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "s3shard/error.h"
#include "common/util/log.h"
#include "worker/cache/crc32c.h"

#define VERIFY_CHUNK (1u << 20)

static void count(s3s__cache *c, uint64_t *field, uint64_t by)
{
    pthread_mutex_lock(&c->mu);
    *field += by;
    pthread_mutex_unlock(&c->mu);
}

static void block_path(char *out, size_t cap, const s3s__cache_entry *e, uint32_t idx,
                       const char *suffix)
{
    snprintf(out, cap, "%s/%.2s/%s.%" PRIu32 "%s", e->c->root, e->hash, e->hash, idx, suffix);
}

void s3s__cache_block_release(s3s__cache_block *b)
{
    if (b == NULL)
        return;
    if (b->fd >= 0)
        close(b->fd);
    b->fd = -1;
    b->len = 0;
    b->skip = 0;
}

/* The CRC-32C of bytes [from, len) of fd. */
static int crc_of_fd(int fd, uint64_t from, uint64_t len, uint32_t *out)
{
    uint8_t *buf = malloc(VERIFY_CHUNK);
    if (buf == NULL)
        return S3S_ENOMEM;
    uint32_t crc = 0;
    uint64_t off = from;
    int rc = 0;
    while (off < len) {
        size_t want = len - off < VERIFY_CHUNK ? (size_t)(len - off) : VERIFY_CHUNK;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = S3S_EIO;
            break;
        }
        crc = s3s__cache_crc32c(crc, buf, (size_t)r);
        off += (uint64_t)r;
    }
    free(buf);
    *out = crc;
    return rc;
}

/* Removes a damaged block, unless the name meanwhile points at another
 * (fresh) inode. A replacement landing between the stat and the unlink
 * only costs a later miss, never a wrong byte. */
static void drop_damaged(s3s__cache *c, const char *path, const struct stat *st, const char *why)
{
    struct stat now;
    if (stat(path, &now) == 0 && now.st_ino == st->st_ino && now.st_dev == st->st_dev)
        unlink(path);
    count(c, &c->st.corrupt, 1);
    S3S_LOGW("cache: dropped damaged block %s: %s", path, why);
}

/* lookup without counting: 0 and out filled (a whole or a partial block:
 * out->skip), or S3S_ENOTFOUND / S3S_EIO. */
static int lookup_quiet(s3s__cache_entry *e, uint32_t idx, s3s__cache_block *out)
{
    s3s__cache *c = e->c;
    char path[4096];
    block_path(path, sizeof(path), e, idx, "");
    out->fd = -1;
    out->len = 0;
    out->skip = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? S3S_ENOTFOUND : S3S_EIO;
    uint64_t len = s3s__cache_entry_block_len(e, idx);
    struct stat st;
    uint8_t tb[S3S__CACHE_TRAILER];
    s3s__cache_trailer t;
    const char *why = NULL;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return S3S_EIO;
    }
    if ((uint64_t)st.st_size != len + S3S__CACHE_TRAILER) {
        why = "wrong length";
    } else if (pread(fd, tb, sizeof(tb), (off_t)len) != (ssize_t)sizeof(tb) ||
               s3s__cache_trailer_decode(tb, &t, NULL) != 0) {
        why = "bad trailer";
    } else if (memcmp(t.hbin8, e->hbin, t.skip ? 4 : 8) != 0 || t.idx != idx || t.len != len) {
        why = "trailer names another block";
    } else {
        s3s__cache_vkey k;
        s3s__cache_vkey_of(&k, &st, s3s__cache_vtag(e, idx));
        if (!s3s__cache_verified(c, &k, len)) {
            uint32_t crc = 0;
            int rc = crc_of_fd(fd, t.skip, len, &crc);
            if (rc != 0) {
                close(fd);
                return rc;
            }
            if (crc != t.crc)
                why = "CRC mismatch";
            else
                s3s__cache_verified_add(c, &k, len);
        }
    }
    if (why != NULL) {
        drop_damaged(c, path, &st, why);
        close(fd);
        return S3S_ENOTFOUND;
    }
    /* LRU time is the mtime (atime is often frozen by relatime/noatime);
     * refreshing it costs one syscall, done at most every touch_interval_s. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec - st.st_mtim.tv_sec >= (time_t)c->o.touch_interval_s &&
        futimens(fd, NULL) == 0) {
        /* The touch moved the ctime: the block, verified just above, is
         * remembered under its new key, or the next process would check it
         * again. (A write by someone else between the check and the touch
         * would go unseen: nothing of ours writes a block in place.) */
        struct stat now_st;
        if (fstat(fd, &now_st) == 0) {
            s3s__cache_vkey k;
            s3s__cache_vkey_of(&k, &now_st, s3s__cache_vtag(e, idx));
            s3s__cache_verified_add(c, &k, len);
        }
    }
    out->fd = fd;
    out->len = len;
    out->skip = t.skip;
    return 0;
}

int s3s__cache_lookup(s3s__cache_entry *e, uint32_t idx, s3s__cache_block *out, s3s__errbuf *eb)
{
    out->fd = -1;
    out->len = 0;
    out->skip = 0;
    if (idx >= e->nblocks)
        return s3s__err_set(eb, S3S_EINVAL, "cache: block %" PRIu32 " past the last (%" PRIu32 ")",
                            idx, e->nblocks);
    int rc = lookup_quiet(e, idx, out);
    if (rc == 0 && out->skip > 0) { /* a partial block is not the block */
        s3s__cache_block_release(out);
        out->skip = 0;
        rc = S3S_ENOTFOUND;
    }
    s3s__cache *c = e->c;
    pthread_mutex_lock(&c->mu);
    if (rc == 0) {
        c->st.hits++;
        c->st.hit_bytes += out->len;
    } else if (rc == S3S_ENOTFOUND) {
        c->st.misses++;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == S3S_EIO)
        s3s__err_set(eb, rc, "cache: cannot read block %" PRIu32 " of %s", idx, e->hash);
    return rc;
}

/* ---- claims ---- */

static int same_inode(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
        a.st_dev == b.st_dev;
}

/* Releases a claim: the name goes first (while we still hold the lock, so it
 * cannot be someone else's file), then the lock. ino/dev: the claim file's
 * inode as fstat gave it at claim time (0: unknown, fstat it now). */
static void claim_release(int fd, const char *path, uint64_t dev, uint64_t ino)
{
    if (fd < 0)
        return;
    struct stat a, b;
    if (ino == 0 && fstat(fd, &a) == 0) {
        dev = (uint64_t)a.st_dev;
        ino = (uint64_t)a.st_ino;
    }
    if (ino != 0 && stat(path, &b) == 0 && (uint64_t)b.st_ino == ino && (uint64_t)b.st_dev == dev)
        unlink(path);
    (void)flock(fd, LOCK_UN);
    close(fd);
}

/* A held claim whose recorded holder is dead (see the top of the file).
 * Returns 1 when it was taken over (the file unlinked). */
static int claim_steal_if_dead(s3s__cache *c, int fd, const char *path)
{
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return 0; /* holder has not written its name yet */
    buf[n] = '\0';
    long pid = 0;
    unsigned long long start = 0, ns = 0;
    if (sscanf(buf, "%ld %llu %llu", &pid, &start, &ns) != 3 || pid <= 0 || start == 0)
        return 0;
    uint64_t myns = c->pidns;
    if (ns == 0 || myns == 0 || ns != myns)
        return 0; /* another pid namespace: its pids mean nothing here */
    if (s3s__cache_proc_starttime((pid_t)pid) == start)
        return 0; /* alive */
    if (!same_inode(fd, path))
        return 0;
    unlink(path);
    return 1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int writer_start(s3s__cache_entry *e, uint32_t idx, uint64_t from, int lock_fd,
                        const char *lock_path, const struct stat *lock_st,
                        s3s__cache_writer **out_w, s3s__errbuf *eb)
{
    s3s__cache *c = e->c;
    char owner[128];
    int on = snprintf(owner, sizeof(owner), "%ld %llu %llu\n", (long)c->pid,
                      (unsigned long long)c->incarnation, (unsigned long long)c->pidns);
    /* Write, then cut to length: never ftruncate to 0 first. On ext4 a
     * truncate to size 0 marks the file for a forced data flush at close
     * (auto_da_alloc), which cost a disk write per claim (5x slower cold
     * reads of small objects). A fresh claim file (size <= ours) needs no
     * cut at all. */
    if (pwrite(lock_fd, owner, (size_t)on, 0) != on ||
        (lock_st->st_size > on && ftruncate(lock_fd, on) != 0)) {
        /* Diagnostics only: a claim works without the holder's name. */
    }
    s3s__cache_writer *w = calloc(1, sizeof(*w));
    char path[4096];
    if (w == NULL)
        goto nomem;
    w->e = e;
    w->idx = idx;
    w->lock_fd = lock_fd;
    w->lock_dev = (uint64_t)lock_st->st_dev;
    w->lock_ino = (uint64_t)lock_st->st_ino;
    w->tmp_fd = -1;
    w->len = s3s__cache_entry_block_len(e, idx);
    w->skip = from;
    w->lock_path = strdup(lock_path);
    block_path(path, sizeof(path), e, idx, "");
    w->final_path = strdup(path);
    if (w->lock_path == NULL || w->final_path == NULL)
        goto nomem;
    /* Unnamed where possible: nothing to clean after a crash, no temp lock. */
    w->tmp_fd = s3s__cache_tmpfile(c);
    if (w->tmp_fd >= 0) {
        *out_w = w;
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    unsigned long long k = (unsigned long long)c->tmp_counter++;
    pthread_mutex_unlock(&c->mu);
    snprintf(path, sizeof(path), "%s/tmp/%s.%" PRIu32 ".%ld.%llu", c->root, e->hash, idx,
             (long)c->pid, k);
    w->tmp_path = strdup(path);
    if (w->tmp_path == NULL)
        goto nomem;
    w->tmp_fd = open(w->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->tmp_fd < 0) {
        int err = errno;
        s3s__cache_writer_abort(w);
        return s3s__err_set(eb, S3S_EIO, "cache: cannot create %s: %s", path, strerror(err));
    }
    /* Held while we write: the temp cleaner removes only unlocked temps. */
    (void)flock(w->tmp_fd, LOCK_EX);
    *out_w = w;
    return 0;
nomem:
    if (w != NULL) {
        w->lock_fd = -1;
        s3s__cache_writer_abort(w);
    }
    claim_release(lock_fd, lock_path, (uint64_t)lock_st->st_dev, (uint64_t)lock_st->st_ino);
    return S3S_ENOMEM;
}

int s3s__cache_claim(s3s__cache_entry *e, uint32_t idx, int timeout_ms, s3s__cache_writer **out_w,
                     s3s__cache_block *out_hit, s3s__errbuf *eb)
{
    return s3s__cache_claim_from(e, idx, 0, timeout_ms, out_w, out_hit, eb);
}

/* lookup_from: lookup_quiet that takes a partial block lacking bytes the
 * caller needs (skip > from) for a miss; with keep_tail it stays in out as
 * the source of its bytes (returned as S3S_ENOTFOUND with out->fd >= 0). */
static int lookup_from(s3s__cache_entry *e, uint32_t idx, uint64_t from, int keep_tail,
                       s3s__cache_block *out)
{
    int rc = lookup_quiet(e, idx, out);
    if (rc == 0 && out->skip > from) {
        if (!keep_tail)
            s3s__cache_block_release(out);
        return S3S_ENOTFOUND;
    }
    return rc;
}

int s3s__cache_claim_from(s3s__cache_entry *e, uint32_t idx, uint64_t from, int timeout_ms,
                          s3s__cache_writer **out_w, s3s__cache_block *out_hit, s3s__errbuf *eb)
{
    s3s__cache *c = e->c;
    *out_w = NULL;
    out_hit->fd = -1;
    out_hit->len = 0;
    out_hit->skip = 0;
    if (idx >= e->nblocks)
        return s3s__err_set(eb, S3S_EINVAL, "cache: block %" PRIu32 " past the last (%" PRIu32 ")",
                            idx, e->nblocks);
    if (from >= s3s__cache_entry_block_len(e, idx))
        from = 0; /* nothing needed is no partial block: the whole one */
    char lock_path[4096];
    block_path(lock_path, sizeof(lock_path), e, idx, ".lock");
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
    int waited = 0, backoff = 1;
    int64_t next_owner_check = 0;
    for (;;) {
        int rc = lookup_from(e, idx, from, 0, out_hit);
        if (rc == 0)
            goto hit;
        if (rc != S3S_ENOTFOUND)
            return s3s__err_set(eb, rc, "cache: cannot read block %" PRIu32 " of %s", idx, e->hash);
        int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 && errno == ENOENT && s3s__cache_mkfanout(c, e->hash) == 0)
            fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return s3s__err_set(eb, S3S_EIO, "cache: cannot open claim %s: %s", lock_path,
                                strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            struct stat a, b;
            if (fstat(fd, &a) != 0 || stat(lock_path, &b) != 0 || a.st_ino != b.st_ino ||
                a.st_dev != b.st_dev) {
                close(fd); /* its holder finished and unlinked it: look again */
                continue;
            }
            /* Someone may have committed between our lookup and our lock. */
            rc = lookup_from(e, idx, from, 1, out_hit);
            if (rc == 0) {
                claim_release(fd, lock_path, (uint64_t)a.st_dev, (uint64_t)a.st_ino);
                goto hit;
            }
            pthread_mutex_lock(&c->mu);
            c->st.misses++;
            pthread_mutex_unlock(&c->mu);
            rc = writer_start(e, idx, from, fd, lock_path, &a, out_w, eb);
            if (rc != 0)
                s3s__cache_block_release(out_hit);
            return rc;
        }
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int err = errno;
            close(fd);
            return s3s__err_set(eb, S3S_EIO, "cache: cannot lock claim %s: %s", lock_path,
                                strerror(err));
        }
        if (!waited) {
            waited = 1;
            count(c, &c->st.claim_waits, 1);
        }
        int64_t now = now_ms();
        if (now >= next_owner_check) {
            next_owner_check = now + 100;
            if (claim_steal_if_dead(c, fd, lock_path)) {
                count(c, &c->st.stale_claims, 1);
                close(fd);
                continue;
            }
        }
        close(fd);
        if (now >= deadline) {
            count(c, &c->st.claim_timeouts, 1);
            return s3s__err_set(eb, S3S_ETIMEDOUT,
                                "cache: block %" PRIu32 " of %s still being fetched by another "
                                "process after %d ms",
                                idx, e->hash, timeout_ms);
        }
        int64_t left = deadline - now;
        sleep_ms(left < backoff ? (int)left : backoff);
        if (backoff < 20)
            backoff *= 2;
    }
hit:
    pthread_mutex_lock(&c->mu);
    c->st.hits++;
    c->st.hit_bytes += out_hit->len;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* ---- writers ---- */

int s3s__cache_writer_write(s3s__cache_writer *w, const void *p, size_t n, s3s__errbuf *eb)
{
    if (n > w->len - w->skip - w->written)
        return s3s__err_set(eb, S3S_ETOOBIG,
                            "cache: %zu bytes more than block %" PRIu32 " holds (%llu)", n, w->idx,
                            (unsigned long long)w->len);
    const uint8_t *q = p;
    size_t left = n;
    while (left > 0) {
        ssize_t r = pwrite(w->tmp_fd, q, left, (off_t)(w->skip + w->written + (n - left)));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return s3s__err_set(eb, S3S_EIO, "cache: cannot write %s: %s", w->tmp_path,
                                r < 0 ? strerror(errno) : "no progress");
        q += r;
        left -= (size_t)r;
    }
    w->crc = s3s__cache_crc32c(w->crc, p, n);
    w->written += n;
    return 0;
}

static void writer_free(s3s__cache_writer *w)
{
    free(w->lock_path);
    free(w->tmp_path);
    free(w->final_path);
    free(w);
}

void s3s__cache_writer_abort(s3s__cache_writer *w)
{
    if (w == NULL)
        return;
    if (w->tmp_fd >= 0) {
        if (w->tmp_path != NULL)
            unlink(w->tmp_path);
        close(w->tmp_fd); /* an unnamed temp vanishes with its last fd */
    }
    if (w->lock_fd >= 0)
        claim_release(w->lock_fd, w->lock_path, w->lock_dev, w->lock_ino);
    count(w->e->c, &w->e->c->st.aborts, 1);
    writer_free(w);
}

/* seal_name puts the written temp under its final name, replacing whatever
 * is there (as rename does). An unnamed temp is linked; where the name is
 * taken (only a claim taken over from a holder wrongly thought dead can get
 * there) or linking fails, it gets a temp name first and is renamed. */
static int seal_name(s3s__cache_writer *w)
{
    s3s__cache *c = w->e->c;
    if (w->tmp_path == NULL) {
        if (s3s__cache_link_tmpfile(c, w->tmp_fd, w->final_path, w->e->hash) == 0)
            return 0;
        char path[4096];
        pthread_mutex_lock(&c->mu);
        unsigned long long k = (unsigned long long)c->tmp_counter++;
        pthread_mutex_unlock(&c->mu);
        snprintf(path, sizeof(path), "%s/tmp/%s.%" PRIu32 ".%ld.%llu", c->root, w->e->hash, w->idx,
                 (long)c->pid, k);
        char src[64];
        snprintf(src, sizeof(src), "/proc/self/fd/%d", w->tmp_fd);
        if (linkat(AT_FDCWD, src, AT_FDCWD, path, AT_SYMLINK_FOLLOW) != 0)
            return -1;
        w->tmp_path = strdup(path);
        if (w->tmp_path == NULL) {
            unlink(path);
            errno = ENOMEM;
            return -1;
        }
    }
    return rename(w->tmp_path, w->final_path);
}

int s3s__cache_writer_commit(s3s__cache_writer *w, s3s__cache_block *out_block, s3s__errbuf *eb)
{
    s3s__cache_entry *e = w->e;
    s3s__cache *c = e->c;
    if (out_block != NULL) {
        out_block->fd = -1;
        out_block->len = 0;
        out_block->skip = 0;
    }
    if (w->written != w->len - w->skip) {
        int rc = s3s__err_set(
            eb, S3S_ESHORT, "cache: block %" PRIu32 " of %s got %llu of its %llu bytes", w->idx,
            e->hash, (unsigned long long)w->written, (unsigned long long)(w->len - w->skip));
        s3s__cache_writer_abort(w);
        return rc;
    }
    s3s__cache_trailer t;
    memcpy(t.hbin8, e->hbin, 8);
    if (w->skip > 0)
        memset(t.hbin8 + 4, 0, 4);
    t.idx = w->idx;
    t.len = (uint32_t)w->len;
    t.crc = w->crc;
    t.skip = (uint32_t)w->skip;
    uint8_t tb[S3S__CACHE_TRAILER];
    s3s__cache_trailer_encode(tb, &t);
    struct stat st;
    if (pwrite(w->tmp_fd, tb, sizeof(tb), (off_t)w->len) != (ssize_t)sizeof(tb) ||
        (c->o.fsync && fdatasync(w->tmp_fd) != 0) || seal_name(w) != 0) {
        int rc =
            s3s__err_set(eb, S3S_EIO, "cache: cannot seal %s: %s", w->final_path, strerror(errno));
        s3s__cache_writer_abort(w);
        return rc;
    }
    if (c->o.fsync) {
        /* The rename itself is durable only once its folder is synced. */
        char dir[4096];
        snprintf(dir, sizeof(dir), "%s/%.2s", c->root, e->hash);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    s3s__cache_entry_relink(e);
    /* We computed the CRC of the very bytes written: verified. The stat comes
     * after the link, which moved the ctime. */
    if (fstat(w->tmp_fd, &st) == 0) {
        s3s__cache_vkey k;
        s3s__cache_vkey_of(&k, &st, s3s__cache_vtag(e, w->idx));
        s3s__cache_verified_add(c, &k, w->len);
    }
    claim_release(w->lock_fd, w->lock_path, w->lock_dev, w->lock_ino);
    if (w->tmp_path != NULL)
        (void)flock(w->tmp_fd, LOCK_UN);
    if (out_block != NULL) {
        /* The temp fd is the block's inode under its final name now. */
        out_block->fd = w->tmp_fd;
        out_block->len = w->len;
        out_block->skip = w->skip;
    } else {
        close(w->tmp_fd);
    }
    uint64_t bytes = w->len - w->skip + S3S__CACHE_TRAILER;
    pthread_mutex_lock(&c->mu);
    c->st.commits++;
    c->st.commit_bytes += w->len - w->skip;
    pthread_mutex_unlock(&c->mu);
    writer_free(w);
    s3s__cache_note_added(c, bytes);
    return 0;
}
