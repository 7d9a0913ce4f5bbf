/* journal.c: the append-only journal: header, framing, scan and recovery,
 * group commit, compaction, the state-dir lock (see journal.h and
 * docs/journal.md).
 *
 * Why a torn tail is told from corruption by looking for a good record after
 * the bad one: a crash during a batch write leaves the file ending in a partial
 * record (or in zeros on some filesystems) with nothing valid behind it; a bit
 * flipped in an old record leaves good records behind it, and cutting there
 * would silently drop acknowledged progress. So the first is cut and reported,
 * the second refused unless the operator asks for repair. */
#include "common/journal/journal.h"

#include "common/journal/crc32c.h"
#include "common/util/buf.h"
#include "s3shard/error.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PENDING_DEFAULT (64u << 20)
#define COMPACT_FLUSH (1u << 20)
/* Preallocation: the zeros written ahead are an eighth of the file, between
 * these bounds (rounded to 64 KiB): an extension (one slower fdatasync: the
 * size changes and the zeros are flushed) every 1-4 MiB of records; the cap
 * keeps that one fdatasync short (the coordinator compacts at each epoch, so
 * its journal rarely grows large anyway). */
#define PREALLOC_MIN (1u << 20)
#define PREALLOC_MAX (4u << 20)

struct s3s__journal {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd, dirfd, lockfd;
    char *dir, *path, *tmp_path;
    size_t max_record;
    s3s__journal_mirror_fn mirror;
    void *mirror_arg;
    /* under mu: */
    uint64_t generation;
    uint64_t end; /* end of the records: everything before it is durable */
    uint64_t alloc; /* the file's size: zeros from end to alloc (preallocated) */
    bool prealloc;
    uint64_t lsn_appended, lsn_durable;
    bool committing; /* a thread holds the committer role (writing or mirroring) */
    int failed; /* sticky S3S_EIO after a failed write or sync */
    char fail_msg[256];
    s3s__buf pending, inflight;
    s3s__journal_stats st;
    uint32_t sync_us[S3S__JOURNAL_SYNC_RING]; /* the last fdatasync durations, by st.syncs */
};

struct s3s__jcompact {
    s3s__journal *j;
    int fd;
    uint64_t lsn0, generation, size;
    s3s__buf buf;
    int err;
};

/* ---- little-endian helpers and the header ---- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int k = 0; k < 4; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void header_make(uint8_t h[S3S_JOURNAL_HEADER_SIZE], const uint8_t *job, const uint8_t *snap,
                        uint64_t generation)
{
    memset(h, 0, S3S_JOURNAL_HEADER_SIZE);
    memcpy(h, S3S_JOURNAL_MAGIC, 8);
    put32(h + 8, S3S_JOURNAL_FORMAT);
    put32(h + 12, S3S_JOURNAL_HEADER_SIZE);
    memcpy(h + 16, job, S3S_JREC_HASH_LEN);
    memcpy(h + 48, snap, S3S_JREC_HASH_LEN);
    put64(h + 80, generation);
    put32(h + 88, 0); /* flags */
    put32(h + 92, s3s__crc32c(0, h, 92));
}

static void hex8(char out[17], const uint8_t *h)
{
    for (int k = 0; k < 8; k++)
        snprintf(out + 2 * k, 3, "%02x", h[k]);
}

/* ---- scan ---- */

/* frame_at returns NULL when a whole record with a good checksum starts at
 * off (its payload length in *plen), else what is wrong. */
static const char *frame_at(const uint8_t *d, size_t len, size_t off, size_t max_record,
                            uint32_t *plen)
{
    if (len - off < S3S_JOURNAL_FRAME_SIZE)
        return "frame header cut short";
    uint32_t n = get32(d + off);
    if (n == 0 || n > max_record)
        return "impossible record length";
    if (n > len - off - S3S_JOURNAL_FRAME_SIZE)
        return "record runs past the end of the file";
    if (s3s__crc32c(0, d + off + S3S_JOURNAL_FRAME_SIZE, n) != get32(d + off + 4))
        return "checksum mismatch";
    *plen = n;
    return NULL;
}

/* good_after finds the first offset >= from where a good, decodable record
 * starts, or returns 0. A crafted tail could make every offset a candidate
 * whose checksum covers megabytes, so the bytes checksummed are budgeted;
 * past the budget it returns UINT64_MAX ("cannot tell"), which the caller
 * treats as corruption: refusing is safe, cutting might not be. */
static uint64_t good_after(const uint8_t *d, size_t len, size_t from, size_t max_record)
{
    uint64_t budget = (16u << 20) + 8 * (uint64_t)(len - from);
    for (size_t off = from; off + S3S_JOURNAL_FRAME_SIZE < len; off++) {
        uint32_t n;
        s3s__jrec r;
        uint32_t claim = get32(d + off);
        if (claim > 0 && claim <= max_record && claim <= len - off - S3S_JOURNAL_FRAME_SIZE) {
            if (claim > budget)
                return UINT64_MAX;
            budget -= claim;
        }
        if (frame_at(d, len, off, max_record, &n) == NULL &&
            s3s__jrec_decode(&r, d + off + S3S_JOURNAL_FRAME_SIZE, n, NULL) == 0)
            return off;
    }
    return 0;
}

int s3s__journal_scan(const void *data, size_t len, const uint8_t *expect_job,
                      const uint8_t *expect_snapshot, size_t max_record, bool repair,
                      s3s__journal_replay_fn fn, void *arg, s3s__journal_report *rep,
                      s3s__errbuf *eb)
{
    const uint8_t *d = data;
    s3s__journal_report local;
    if (rep == NULL)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    rep->file_size = len;
    if (max_record == 0)
        max_record = S3S_JOURNAL_RECORD_DEFAULT;
    if (len < S3S_JOURNAL_HEADER_SIZE)
        return s3s__err_set(eb, S3S_ECORRUPT,
                            "journal: %zu bytes, too short for its %d-byte header", len,
                            S3S_JOURNAL_HEADER_SIZE);
    if (memcmp(d, S3S_JOURNAL_MAGIC, 8) != 0)
        return s3s__err_set(eb, S3S_ECORRUPT, "journal: not an s3shard journal (bad magic)");
    if (s3s__crc32c(0, d, 92) != get32(d + 92))
        return s3s__err_set(eb, S3S_ECORRUPT, "journal: header checksum mismatch");
    if (get32(d + 8) != S3S_JOURNAL_FORMAT || get32(d + 12) != S3S_JOURNAL_HEADER_SIZE)
        return s3s__err_set(eb, S3S_ENOTSUP, "journal: format %u (header %u bytes), expected %d",
                            get32(d + 8), get32(d + 12), S3S_JOURNAL_FORMAT);
    rep->generation = get64(d + 80);
    if ((expect_job && memcmp(d + 16, expect_job, S3S_JREC_HASH_LEN) != 0) ||
        (expect_snapshot && memcmp(d + 48, expect_snapshot, S3S_JREC_HASH_LEN) != 0)) {
        char fj[17], fs[17], ej[17] = "any", es[17] = "any";
        hex8(fj, d + 16);
        hex8(fs, d + 48);
        if (expect_job)
            hex8(ej, expect_job);
        if (expect_snapshot)
            hex8(es, expect_snapshot);
        return s3s__err_set(eb, S3S_EMISMATCH,
                            "journal was written for job spec %s... snapshot %s..., but this job "
                            "is job spec %s... snapshot %s...: use another state dir",
                            fj, fs, ej, es);
    }
    size_t off = S3S_JOURNAL_HEADER_SIZE;
    const char *why = NULL;
    while (off < len) {
        uint32_t n;
        why = frame_at(d, len, off, max_record, &n);
        if (why != NULL)
            break;
        s3s__jrec r;
        s3s__errbuf reb;
        if (s3s__jrec_decode(&r, d + off + S3S_JOURNAL_FRAME_SIZE, n, &reb) != 0)
            return s3s__err_set(eb, S3S_EPARSE,
                                "journal: record %llu at offset %zu has a good checksum but "
                                "cannot be read (%s)",
                                (unsigned long long)rep->records, off, reb.msg);
        if (fn != NULL) {
            int rc = fn(arg, &r, off);
            if (rc != 0)
                return rc;
        }
        rep->records++;
        off += S3S_JOURNAL_FRAME_SIZE + n;
    }
    rep->good_end = off;
    if (off == len)
        return 0;
    /* Zeros to the end: preallocated space (journal.h), not a torn record. A
     * torn batch written over zeros leaves non-zero bytes and is read below. */
    size_t z = off;
    while (z < len && d[z] == 0)
        z++;
    if (z == len) {
        rep->zero_tail = len - off;
        return 0;
    }
    rep->bad_offset = off;
    snprintf(rep->why, sizeof rep->why, "%s", why);
    uint64_t next = good_after(d, len, off + 1, max_record);
    if (next != 0) {
        rep->next_good = next;
        if (!repair && next == UINT64_MAX)
            return s3s__err_set(eb, S3S_ECORRUPT,
                                "journal: record %llu at offset %zu is corrupt (%s) and the %zu "
                                "bytes after it are too costly to check for good records: "
                                "refusing to cut (repair would drop them)",
                                (unsigned long long)rep->records, off, why, len - off);
        if (!repair)
            return s3s__err_set(eb, S3S_ECORRUPT,
                                "journal: record %llu at offset %zu is corrupt (%s) but a good "
                                "record follows at offset %llu: not a torn tail, refusing to cut "
                                "(repair would drop %zu bytes)",
                                (unsigned long long)rep->records, off, why,
                                (unsigned long long)next, len - off);
    }
    rep->cut = true;
    return 0;
}

/* ---- file helpers ---- */

static int io_err(s3s__errbuf *eb, const char *what, const char *path)
{
    return s3s__err_set(eb, S3S_EIO, "journal: %s %s: %s", what, path, strerror(errno));
}

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* write_zeros writes zeros over [from, to) (nothing when to <= from). */
static int write_zeros(int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zero[65536];
    while (from < to) {
        size_t n = to - from < sizeof zero ? (size_t)(to - from) : sizeof zero;
        if (write_all(fd, zero, n, from) != 0)
            return -1;
        from += n;
    }
    return 0;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* create_file makes a journal holding only a header, crash-safely: written to
 * tmp, synced, renamed over path, directory synced. */
static int create_file(s3s__journal *j, const s3s__journal_opts *o, s3s__errbuf *eb)
{
    uint8_t h[S3S_JOURNAL_HEADER_SIZE];
    header_make(h, o->job_hash, o->snapshot_hash, 0);
    int fd = open(j->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return io_err(eb, "cannot create", j->tmp_path);
    if (write_all(fd, h, sizeof h, 0) != 0 || fdatasync(fd) != 0) {
        int rc = io_err(eb, "cannot write", j->tmp_path);
        close(fd);
        unlink(j->tmp_path);
        return rc;
    }
    close(fd);
    if (rename(j->tmp_path, j->path) != 0)
        return io_err(eb, "cannot rename into", j->path);
    if (fsync(j->dirfd) != 0)
        return io_err(eb, "cannot sync", j->dir);
    return 0;
}

static int lock_dir(s3s__journal *j, s3s__errbuf *eb)
{
    char *lp = join(j->dir, "lock");
    if (lp == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "journal: out of memory");
    j->lockfd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (j->lockfd < 0) {
        int rc = io_err(eb, "cannot open", lp);
        free(lp);
        return rc;
    }
    if (flock(j->lockfd, LOCK_EX | LOCK_NB) != 0) {
        int rc;
        if (errno == EWOULDBLOCK) {
            char pid[32] = "";
            ssize_t n = pread(j->lockfd, pid, sizeof pid - 1, 0);
            pid[n > 0 ? n : 0] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            rc = s3s__err_set(eb, S3S_EBUSY,
                              "journal: state dir %s is in use by another coordinator (pid %s)",
                              j->dir, pid[0] ? pid : "unknown");
        } else {
            rc = io_err(eb, "cannot lock", lp);
        }
        free(lp);
        return rc;
    }
    free(lp);
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(j->lockfd, 0) != 0 || write_all(j->lockfd, pid, (size_t)n, 0) != 0)
        return io_err(eb, "cannot write the lock file in", j->dir);
    return 0;
}

/* ---- open / close ---- */

void s3s__journal_close(s3s__journal *j)
{
    if (j == NULL)
        return;
    if (j->fd >= 0)
        close(j->fd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    if (j->lockfd >= 0)
        close(j->lockfd); /* releases the flock */
    s3s__buf_fini(&j->pending);
    s3s__buf_fini(&j->inflight);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j->dir);
    free(j->path);
    free(j->tmp_path);
    free(j);
}

int s3s__journal_open(s3s__journal **out, const s3s__journal_opts *o, s3s__journal_replay_fn fn,
                      void *arg, s3s__journal_report *rep, s3s__errbuf *eb)
{
    *out = NULL;
    s3s__journal_report local;
    if (rep == NULL)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    if (o == NULL || o->dir == NULL || o->dir[0] == '\0')
        return s3s__err_set(eb, S3S_EINVAL, "journal: no state dir");
    if (o->max_record > S3S_JOURNAL_RECORD_LIMIT)
        return s3s__err_set(eb, S3S_EINVAL, "journal: max_record past %u",
                            S3S_JOURNAL_RECORD_LIMIT);
    s3s__journal *j = calloc(1, sizeof *j);
    if (j == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "journal: out of memory");
    j->fd = j->dirfd = j->lockfd = -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    j->max_record = o->max_record ? o->max_record : S3S_JOURNAL_RECORD_DEFAULT;
    size_t max_pending = o->max_pending ? o->max_pending : PENDING_DEFAULT;
    s3s__buf_init(&j->pending, max_pending);
    s3s__buf_init(&j->inflight, max_pending);
    j->mirror = o->mirror;
    j->mirror_arg = o->mirror_arg;
    j->prealloc = o->prealloc;
    int rc;
    void *map = MAP_FAILED;
    size_t size = 0;
    j->dir = strdup(o->dir);
    j->path = join(o->dir, "journal");
    j->tmp_path = join(o->dir, "journal.tmp");
    if (j->dir == NULL || j->path == NULL || j->tmp_path == NULL) {
        rc = s3s__err_set(eb, S3S_ENOMEM, "journal: out of memory");
        goto fail;
    }
    if (mkdir(j->dir, 0755) != 0 && errno != EEXIST) {
        rc = io_err(eb, "cannot create state dir", j->dir);
        goto fail;
    }
    j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0) {
        rc = io_err(eb, "cannot open state dir", j->dir);
        goto fail;
    }
    if ((rc = lock_dir(j, eb)) != 0)
        goto fail;
    if (unlink(j->tmp_path) == 0)
        rep->stale_tmp = true; /* an interrupted compaction: the journal itself is whole */
    else if (errno != ENOENT) {
        rc = io_err(eb, "cannot remove", j->tmp_path);
        goto fail;
    }
    j->fd = open(j->path, O_RDWR | O_CLOEXEC);
    if (j->fd < 0 && errno == ENOENT) {
        if ((rc = create_file(j, o, eb)) != 0)
            goto fail;
        rep->created = true;
        j->fd = open(j->path, O_RDWR | O_CLOEXEC);
    }
    if (j->fd < 0) {
        rc = io_err(eb, "cannot open", j->path);
        goto fail;
    }
    struct stat sb;
    if (fstat(j->fd, &sb) != 0) {
        rc = io_err(eb, "cannot stat", j->path);
        goto fail;
    }
    size = (size_t)sb.st_size;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_SHARED, j->fd, 0);
        if (map == MAP_FAILED) {
            rc = io_err(eb, "cannot map", j->path);
            goto fail;
        }
    }
    bool created = rep->created, stale_tmp = rep->stale_tmp;
    /* Read with the hard limit, not max_record: a journal written under a larger
     * max_record must not have its last record mistaken for a torn tail. */
    rc = s3s__journal_scan(map == MAP_FAILED ? "" : map, size, o->job_hash, o->snapshot_hash,
                           S3S_JOURNAL_RECORD_LIMIT, o->repair, fn, arg, rep, eb);
    rep->created = created;
    rep->stale_tmp = stale_tmp;
    if (rc != 0)
        goto fail;
    if (rep->cut) {
        if (ftruncate(j->fd, (off_t)rep->good_end) != 0 || fdatasync(j->fd) != 0) {
            rc = io_err(eb, "cannot cut the torn tail of", j->path);
            goto fail;
        }
    }
    j->generation = rep->generation;
    j->end = rep->good_end;
    j->alloc = rep->cut ? rep->good_end : (uint64_t)size;
    j->st.generation = j->generation;
    j->st.file_size = j->end;
    j->st.allocated = j->alloc;
    if (j->mirror != NULL)
        j->mirror(j->mirror_arg, j->generation, 0, map, (size_t)j->end);
    if (map != MAP_FAILED)
        munmap(map, size);
    *out = j;
    return 0;
fail:
    if (map != MAP_FAILED)
        munmap(map, size);
    s3s__journal_close(j);
    return rc;
}

/* ---- append and group commit ---- */

/* frame appends [len][crc][payload of r] to b. Call with mu held (or on a
 * private buffer). */
static int frame(s3s__buf *b, const s3s__jrec *r, size_t max_record, s3s__errbuf *eb)
{
    size_t start = b->len;
    static const uint8_t zero[S3S_JOURNAL_FRAME_SIZE];
    int rc = s3s__buf_append(b, zero, sizeof zero);
    if (rc != 0)
        return s3s__err_set(eb, rc, "journal: pending batch full (%zu bytes): commit first",
                            b->max);
    rc = s3s__jrec_encode(b, r, eb);
    size_t n = b->len - start - S3S_JOURNAL_FRAME_SIZE;
    if (rc == 0 && n > max_record)
        rc = s3s__err_set(eb, S3S_ETOOBIG, "journal: %s record of %zu bytes, at most %zu",
                          s3s__jrec_type_name(r->type), n, max_record);
    if (rc != 0) {
        b->len = start;
        return rc;
    }
    uint8_t *p = (uint8_t *)b->data + start;
    put32(p, (uint32_t)n);
    put32(p + 4, s3s__crc32c(0, p + S3S_JOURNAL_FRAME_SIZE, n));
    return 0;
}

static int failed_err(s3s__journal *j, s3s__errbuf *eb)
{
    return s3s__err_set(eb, S3S_EIO, "journal: refusing: an earlier write failed (%s)",
                        j->fail_msg);
}

int s3s__journal_append(s3s__journal *j, const s3s__jrec *r, uint64_t *out_lsn, s3s__errbuf *eb)
{
    pthread_mutex_lock(&j->mu);
    int rc = j->failed ? failed_err(j, eb) : 0;
    if (rc == 0) {
        size_t before = j->pending.len;
        rc = frame(&j->pending, r, j->max_record, eb);
        if (rc == 0) {
            j->lsn_appended += j->pending.len - before;
            j->st.records++;
            if (out_lsn != NULL)
                *out_lsn = j->lsn_appended;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int s3s__journal_wait(s3s__journal *j, uint64_t lsn, s3s__errbuf *eb)
{
    int rc = 0;
    pthread_mutex_lock(&j->mu);
    if (lsn > j->lsn_appended) {
        pthread_mutex_unlock(&j->mu);
        return s3s__err_set(eb, S3S_EINVAL, "journal: wait for lsn %llu past the last append",
                            (unsigned long long)lsn);
    }
    for (;;) {
        if (j->failed) {
            rc = failed_err(j, eb);
            break;
        }
        if (j->lsn_durable >= lsn)
            break;
        if (j->committing) {
            pthread_cond_wait(&j->cv, &j->mu);
            continue;
        }
        /* Leader: take the whole pending batch, write and sync it unlocked so
         * appenders keep filling the next batch meanwhile. */
        s3s__buf tmp = j->pending;
        j->pending = j->inflight;
        j->inflight = tmp;
        uint64_t target = j->lsn_appended, off = j->end;
        const char *data = j->inflight.data;
        size_t n = j->inflight.len;
        /* Past the preallocated zeros: write more zeros behind this batch,
         * synced by the same fdatasync (the one that changes the size). */
        uint64_t zfrom = off + n > j->alloc ? off + n : j->alloc, zto = zfrom;
        if (j->prealloc && off + n > j->alloc) {
            uint64_t grow = off / 8;
            grow = grow < PREALLOC_MIN ? PREALLOC_MIN : grow > PREALLOC_MAX ? PREALLOC_MAX : grow;
            zto = (off + n + grow + 65535) & ~(uint64_t)65535;
        }
        j->committing = true;
        pthread_mutex_unlock(&j->mu);
        int err = 0;
        char msg[200] = "";
        struct timespec t0, t1;
        t0.tv_sec = t1.tv_sec = 0;
        t0.tv_nsec = t1.tv_nsec = 0;
        if (write_all(j->fd, data, n, off) != 0) {
            err = errno;
            snprintf(msg, sizeof msg, "write of %zu bytes at offset %llu: %s", n,
                     (unsigned long long)off, strerror(err));
        } else if (write_zeros(j->fd, zfrom, zto) != 0) {
            err = errno;
            snprintf(msg, sizeof msg, "preallocating zeros at offset %llu: %s",
                     (unsigned long long)zfrom, strerror(err));
        } else {
            clock_gettime(CLOCK_MONOTONIC, &t0);
            if (fdatasync(j->fd) != 0) {
                err = errno;
                snprintf(msg, sizeof msg, "fdatasync: %s", strerror(err));
            }
            clock_gettime(CLOCK_MONOTONIC, &t1);
        }
        if (err == 0 && j->mirror != NULL)
            j->mirror(j->mirror_arg, j->generation, off, data, n);
        pthread_mutex_lock(&j->mu);
        if (err != 0) {
            j->failed = S3S_EIO;
            snprintf(j->fail_msg, sizeof j->fail_msg, "%s", msg);
        } else {
            j->end += n;
            if (j->end > j->alloc)
                j->alloc = j->end;
            if (zto > j->alloc)
                j->alloc = zto;
            j->st.allocated = j->alloc;
            j->lsn_durable = target;
            int64_t us =
                (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
            j->sync_us[j->st.syncs % S3S__JOURNAL_SYNC_RING] = us < 0 ? 0
                : us > (int64_t)UINT32_MAX                            ? UINT32_MAX
                                                                      : (uint32_t)us;
            j->st.commits++;
            j->st.syncs++;
            j->st.bytes += n;
            j->st.file_size = j->end;
        }
        s3s__buf_reset(&j->inflight);
        j->committing = false;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

uint64_t s3s__journal_durable(s3s__journal *j)
{
    pthread_mutex_lock(&j->mu);
    uint64_t lsn = j->lsn_durable;
    pthread_mutex_unlock(&j->mu);
    return lsn;
}

int s3s__journal_commit(s3s__journal *j, s3s__errbuf *eb)
{
    pthread_mutex_lock(&j->mu);
    uint64_t lsn = j->lsn_appended;
    pthread_mutex_unlock(&j->mu);
    return s3s__journal_wait(j, lsn, eb);
}

int s3s__journal_append_sync(s3s__journal *j, const s3s__jrec *r, s3s__errbuf *eb)
{
    uint64_t lsn;
    int rc = s3s__journal_append(j, r, &lsn, eb);
    return rc != 0 ? rc : s3s__journal_wait(j, lsn, eb);
}

void s3s__journal_stats_get(s3s__journal *j, s3s__journal_stats *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->st;
    pthread_mutex_unlock(&j->mu);
}

uint64_t s3s__journal_sync_times(s3s__journal *j, uint64_t since, uint32_t *out, size_t cap,
                                 size_t *n)
{
    pthread_mutex_lock(&j->mu);
    uint64_t end = j->st.syncs;
    uint64_t from = since;
    if (end - from > S3S__JOURNAL_SYNC_RING || from > end)
        from = end > S3S__JOURNAL_SYNC_RING ? end - S3S__JOURNAL_SYNC_RING : 0;
    if (end - from > cap)
        from = end - cap;
    size_t k = 0;
    for (uint64_t i = from; i < end; i++)
        out[k++] = j->sync_us[i % S3S__JOURNAL_SYNC_RING];
    pthread_mutex_unlock(&j->mu);
    *n = k;
    return end;
}

/* ---- compaction ---- */

static int compact_flush(s3s__jcompact *c, s3s__errbuf *eb)
{
    if (c->buf.len == 0)
        return 0;
    if (write_all(c->fd, c->buf.data, c->buf.len, c->size) != 0)
        return c->err = io_err(eb, "cannot write", c->j->tmp_path);
    c->size += c->buf.len;
    s3s__buf_reset(&c->buf);
    return 0;
}

void s3s__journal_compact_abort(s3s__jcompact *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0) {
        close(c->fd);
        unlink(c->j->tmp_path);
    }
    s3s__buf_fini(&c->buf);
    free(c);
}

int s3s__journal_compact_begin(s3s__journal *j, s3s__jcompact **out, s3s__errbuf *eb)
{
    *out = NULL;
    pthread_mutex_lock(&j->mu);
    int rc = 0;
    if (j->failed)
        rc = failed_err(j, eb);
    else if (j->pending.len > 0 || j->committing)
        rc = s3s__err_set(eb, S3S_EBUSY, "journal: records are pending: commit before compacting");
    uint64_t lsn0 = j->lsn_appended, gen = j->generation + 1;
    pthread_mutex_unlock(&j->mu);
    if (rc != 0)
        return rc;
    s3s__jcompact *c = calloc(1, sizeof *c);
    if (c == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "journal: out of memory");
    c->j = j;
    c->lsn0 = lsn0;
    c->generation = gen;
    s3s__buf_init(&c->buf, 2 * COMPACT_FLUSH + S3S_JOURNAL_RECORD_LIMIT);
    unlink(j->tmp_path);
    c->fd = open(j->tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (c->fd < 0) {
        rc = io_err(eb, "cannot create", j->tmp_path);
        s3s__buf_fini(&c->buf);
        free(c);
        return rc;
    }
    uint8_t h[S3S_JOURNAL_HEADER_SIZE];
    /* the hashes are the journal's own: read them back from its header */
    if (pread(j->fd, h, sizeof h, 0) != (ssize_t)sizeof h) {
        rc = io_err(eb, "cannot read the header of", j->path);
        s3s__journal_compact_abort(c);
        return rc;
    }
    uint8_t job[S3S_JREC_HASH_LEN], sh[S3S_JREC_HASH_LEN];
    memcpy(job, h + 16, sizeof job);
    memcpy(sh, h + 48, sizeof sh);
    header_make(h, job, sh, gen);
    s3s__jrec snap = {.type = S3S_JREC_SNAPSHOT, .generation = gen, .lsn = lsn0};
    if ((rc = s3s__buf_append(&c->buf, h, sizeof h)) != 0 ||
        (rc = frame(&c->buf, &snap, j->max_record, eb)) != 0) {
        s3s__journal_compact_abort(c);
        return s3s__err_set(eb, rc, "journal: compaction: out of memory");
    }
    *out = c;
    return 0;
}

int s3s__journal_compact_add(s3s__jcompact *c, const s3s__jrec *r, s3s__errbuf *eb)
{
    if (c->err != 0)
        return s3s__err_set(eb, c->err, "journal: compaction failed already");
    int rc = frame(&c->buf, r, c->j->max_record, eb);
    if (rc == 0 && c->buf.len >= COMPACT_FLUSH)
        rc = compact_flush(c, eb);
    return rc;
}

int s3s__journal_compact_finish(s3s__jcompact *c, s3s__errbuf *eb)
{
    s3s__journal *j = c->j;
    int rc = c->err ? s3s__err_set(eb, c->err, "journal: compaction failed already") : 0;
    if (rc == 0)
        rc = compact_flush(c, eb);
    if (rc == 0 && fdatasync(c->fd) != 0)
        rc = io_err(eb, "cannot sync", j->tmp_path);
    if (rc != 0) {
        s3s__journal_compact_abort(c);
        return rc;
    }
    pthread_mutex_lock(&j->mu);
    if (j->failed)
        rc = failed_err(j, eb);
    else if (j->lsn_appended != c->lsn0 || j->committing)
        rc = s3s__err_set(eb, S3S_EBUSY,
                          "journal: records were appended during compaction; the snapshot "
                          "misses them: compaction abandoned");
    else if (rename(j->tmp_path, j->path) != 0)
        rc = io_err(eb, "cannot rename into", j->path);
    if (rc != 0) {
        pthread_mutex_unlock(&j->mu);
        s3s__journal_compact_abort(c);
        return rc;
    }
    /* From here the new file is the journal. If the directory sync fails we
     * cannot tell which file a crash would leave, so appends must stop. */
    if (fsync(j->dirfd) != 0) {
        rc = io_err(eb, "cannot sync", j->dir);
        j->failed = S3S_EIO;
        snprintf(j->fail_msg, sizeof j->fail_msg, "sync of %s after compaction", j->dir);
    }
    close(j->fd);
    j->fd = c->fd;
    c->fd = -1;
    j->end = c->size;
    j->alloc = c->size;
    j->st.allocated = j->alloc;
    j->generation = c->generation;
    j->st.generation = j->generation;
    j->st.file_size = j->end;
    bool mirror = rc == 0 && j->mirror != NULL;
    if (mirror)
        j->committing = true; /* keeps mirror calls in order and one at a time */
    pthread_mutex_unlock(&j->mu);
    if (mirror) {
        void *map = mmap(NULL, (size_t)c->size, PROT_READ, MAP_SHARED, j->fd, 0);
        if (map != MAP_FAILED) {
            j->mirror(j->mirror_arg, c->generation, 0, map, (size_t)c->size);
            munmap(map, (size_t)c->size);
        }
        pthread_mutex_lock(&j->mu);
        j->committing = false;
        pthread_cond_broadcast(&j->cv);
        pthread_mutex_unlock(&j->mu);
    }
    s3s__buf_fini(&c->buf);
    free(c);
    return rc;
}
