/* cache_verify.c: which blocks need no CRC check: the set this handle has
 * verified, and the verification log that processes of one boot share.
 *
 * A block is named by its key: (device, inode, ctime in ns, tag). Any write
 * to a file through the kernel moves its ctime, and nobody can set a ctime
 * back, so a key checked once stays true for as long as the file is
 * unchanged; a changed or replaced file has another key and is checked again.
 *
 * The log, <root>/verified/<boot id>, holds the keys of blocks of at least
 * S3S__CACHE_VLOG_MIN bytes that a process of the current boot verified (by
 * CRC, or by writing the block itself from bytes whose CRC it computed). A
 * block is torn only by a power loss, and a power loss is a new boot, whose
 * log starts empty: so a record of this boot never covers a torn block. A
 * fresh process (a restart, the next epoch's job) then reads a large cached
 * block at the speed of the page cache instead of reading it twice (CRC,
 * then data). Small blocks are not logged: their CRC costs less than a
 * record would.
 *
 * Format: 32-byte records (dev, ino, ctime_ns, tag; little-endian u64s),
 * appended with O_APPEND by every process, no header. A process reads what
 * was appended since it last looked only when its own set misses. Past
 * S3S__CACHE_VLOG_MAX bytes the log is cut to zero and refilled (records lost only cost
 * a CRC). A record only ever lets a block skip its CRC when all four fields
 * match the file looked up, whose length and trailer are still checked on
 * every lookup; a garbled record matches nothing. */
#include "worker/cache/cache_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VSET_MAX (1u << 20) /* past this many verified blocks, forget them all */
#define VLOG_REC 32
#define VLOG_READ (16u * 1024) /* on the stack of a fetch thread */
#define BOOT_ID_LEN 36

uint64_t s3s__cache_vtag(const s3s__cache_entry *e, uint32_t idx)
{
    uint64_t t;
    memcpy(&t, e->hbin, 8);
    t ^= (uint64_t)idx * 0x9e3779b97f4a7c15ull;
    return t == 0 ? 1 : t;
}

void s3s__cache_vkey_of(s3s__cache_vkey *k, const struct stat *st, uint64_t tag)
{
    k->dev = (uint64_t)st->st_dev;
    k->ino = (uint64_t)st->st_ino;
    k->ctime_ns = (uint64_t)st->st_ctim.tv_sec * 1000000000ull + (uint64_t)st->st_ctim.tv_nsec;
    k->tag = tag;
}

/* ---- the in-memory set: open addressing on the whole key (c->mu held) ---- */

static size_t vslot(const s3s__cache_vkey *k, size_t cap)
{
    uint64_t h = (k->dev * 0xff51afd7ed558ccdull) ^ (k->ino * 0xc4ceb9fe1a85ec53ull) ^
        (k->ctime_ns * 0x9e3779b97f4a7c15ull) ^ k->tag;
    h ^= h >> 29;
    return (size_t)h & (cap - 1);
}

static int same_key(const s3s__cache_vkey *a, const s3s__cache_vkey *b)
{
    return a->tag == b->tag && a->dev == b->dev && a->ino == b->ino && a->ctime_ns == b->ctime_ns;
}

static int set_has(const s3s__cache *c, const s3s__cache_vkey *k)
{
    if (c->vcap == 0)
        return 0;
    for (size_t i = vslot(k, c->vcap);; i = (i + 1) & (c->vcap - 1)) {
        if (c->vset[i].tag == 0)
            return 0;
        if (same_key(&c->vset[i], k))
            return 1;
    }
}

/* vinsert returns 1 when k was new. */
static int vinsert(s3s__cache_vkey *set, size_t cap, const s3s__cache_vkey *k)
{
    for (size_t i = vslot(k, cap);; i = (i + 1) & (cap - 1)) {
        if (set[i].tag == 0) {
            set[i] = *k;
            return 1;
        }
        if (same_key(&set[i], k))
            return 0;
    }
}

static void set_add(s3s__cache *c, const s3s__cache_vkey *k)
{
    if (k->tag == 0)
        return;
    if (c->vlen + 1 > c->vcap / 2) {
        size_t ncap = c->vcap == 0 ? 1024 : c->vcap * 2;
        if (c->vlen >= VSET_MAX)
            ncap = c->vcap; /* full: start over rather than grow without bound */
        s3s__cache_vkey *nset = calloc(ncap, sizeof(*nset));
        if (nset == NULL)
            return; /* not remembering only costs a re-check later */
        if (c->vlen < VSET_MAX) {
            for (size_t i = 0; i < c->vcap; i++)
                if (c->vset[i].tag != 0)
                    vinsert(nset, ncap, &c->vset[i]);
        } else {
            c->vlen = 0;
        }
        free(c->vset);
        c->vset = nset;
        c->vcap = ncap;
    }
    c->vlen += (size_t)vinsert(c->vset, c->vcap, k);
}

/* ---- the log ---- */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int boot_id(char out[BOOT_ID_LEN + 1])
{
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < BOOT_ID_LEN)
        return -1;
    for (int i = 0; i < BOOT_ID_LEN; i++) {
        char ch = buf[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || ch == '-'))
            return -1; /* it names a file: nothing but a UUID */
    }
    memcpy(out, buf, BOOT_ID_LEN);
    out[BOOT_ID_LEN] = '\0';
    return 0;
}

void s3s__cache_vlog_open(s3s__cache *c)
{
    c->vlog_fd = -1;
    char id[BOOT_ID_LEN + 1], path[4096];
    if (boot_id(id) != 0)
        return; /* no boot id: every process checks every block once */
    snprintf(path, sizeof(path), "%s/verified", c->root);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return;
    /* The logs of earlier boots are worthless (and may cover torn blocks). */
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (de->d_name[0] != '.' && strcmp(de->d_name, id) != 0)
                unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
    }
    snprintf(path, sizeof(path), "%s/verified/%s", c->root, id);
    c->vlog_fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
}

void s3s__cache_vlog_close(s3s__cache *c)
{
    if (c->vlog_fd >= 0)
        close(c->vlog_fd);
    c->vlog_fd = -1;
}

/* Reads the records appended since the last look into the set (c->mu held).
 * A log cut by another process restarts at 0. */
static void vlog_catch_up(s3s__cache *c)
{
    struct stat st;
    if (fstat(c->vlog_fd, &st) != 0)
        return;
    uint64_t end = (uint64_t)st.st_size - (uint64_t)st.st_size % VLOG_REC;
    if (end < c->vlog_off)
        c->vlog_off = 0;
    uint8_t buf[VLOG_READ];
    while (c->vlog_off < end) {
        size_t want = end - c->vlog_off < sizeof(buf) ? (size_t)(end - c->vlog_off) : sizeof(buf);
        ssize_t n = pread(c->vlog_fd, buf, want, (off_t)c->vlog_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < VLOG_REC)
            break;
        n -= n % VLOG_REC;
        for (ssize_t i = 0; i < n; i += VLOG_REC) {
            s3s__cache_vkey k = {get64(buf + i), get64(buf + i + 8), get64(buf + i + 16),
                                 get64(buf + i + 24)};
            set_add(c, &k);
        }
        c->vlog_off += (uint64_t)n;
    }
}

int s3s__cache_verified(s3s__cache *c, const s3s__cache_vkey *k, uint64_t len)
{
    pthread_mutex_lock(&c->mu);
    int found = set_has(c, k);
    if (!found && c->vlog_fd >= 0 && len >= S3S__CACHE_VLOG_MIN) {
        vlog_catch_up(c);
        found = set_has(c, k);
        if (found)
            c->st.vlog_hits++;
    }
    pthread_mutex_unlock(&c->mu);
    return found;
}

void s3s__cache_verified_add(s3s__cache *c, const s3s__cache_vkey *k, uint64_t len)
{
    pthread_mutex_lock(&c->mu);
    set_add(c, k);
    if (c->vlog_fd >= 0 && len >= S3S__CACHE_VLOG_MIN && k->tag != 0) {
        uint8_t rec[VLOG_REC];
        put64(rec, k->dev);
        put64(rec + 8, k->ino);
        put64(rec + 16, k->ctime_ns);
        put64(rec + 24, k->tag);
        struct stat st;
        if (fstat(c->vlog_fd, &st) == 0 && (uint64_t)st.st_size >= S3S__CACHE_VLOG_MAX)
            (void)ftruncate(c->vlog_fd, 0); /* the others restart at 0 when they see it */
        /* One write of a whole record: O_APPEND keeps records of several
         * processes whole. A failed or short write costs a CRC later. */
        (void)!write(c->vlog_fd, rec, sizeof(rec));
    }
    pthread_mutex_unlock(&c->mu);
}
