/* cache_scan.c: walking the folder: temp cleanup, size accounting, LRU
 * eviction and the inventory. Only names and sizes are read (readdir and
 * fstatat), never block contents, so a walk costs O(files) metadata calls.
 *
 * Accounting across processes: each handle knows the folder's size exactly
 * right after its own walk, then adds what it commits itself. It walks again
 * after adding rescan_bytes, or when its estimate passes the limit. So with P
 * processes sharing a folder the true size stays below
 * limit + P * (rescan_bytes + one block), and a walk by any of them brings
 * it back under the low-water mark. */
#include "worker/cache/cache_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "s3shard/error.h"

#define TMP_GRACE_S 10 /* a temp younger than this may be between create and flock */
#define ORPHAN_GRACE_S 300 /* an entry file with no block is removed after this */

enum { NAME_META, NAME_BLOCK, NAME_LOCK, NAME_OTHER };

/* Parses "<32 hex>.m", "<32 hex>.<i>" or "<32 hex>.<i>.lock". */
static int parse_name(const char *name, uint8_t hbin[16], uint32_t *idx)
{
    if (strlen(name) < S3S__CACHE_HASH_HEX + 2 || name[S3S__CACHE_HASH_HEX] != '.' ||
        s3s__cache_hex_to_bin(hbin, name) != 0)
        return NAME_OTHER;
    const char *p = name + S3S__CACHE_HASH_HEX + 1;
    if (strcmp(p, "m") == 0)
        return NAME_META;
    if (*p < '0' || *p > '9')
        return NAME_OTHER;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno != 0 || v > UINT32_MAX)
        return NAME_OTHER;
    *idx = (uint32_t)v;
    if (*end == '\0')
        return NAME_BLOCK;
    if (strcmp(end, ".lock") == 0)
        return NAME_LOCK;
    return NAME_OTHER;
}

void s3s__cache_clean_tmp(s3s__cache *c)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tmp", c->root);
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        struct stat st;
        /* Locked means its writer is alive; young means it may be about to lock. */
        if (fstat(fd, &st) == 0 && now - st.st_mtim.tv_sec >= TMP_GRACE_S &&
            flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlinkat(dirfd(d), de->d_name, 0);
        close(fd);
    }
    closedir(d);
}

/* A claim file nobody holds is left over from a dead fetcher. Removing it
 * is safe only while we hold its lock (lockers re-check the name). */
static void clean_lock(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        struct stat a, b;
        if (fstat(fd, &a) == 0 && fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
            a.st_ino == b.st_ino)
            unlinkat(dfd, name, 0);
        (void)flock(fd, LOCK_UN);
    }
    close(fd);
}

typedef struct cand {
    uint8_t hbin[16];
    uint32_t idx;
    int kind;
    uint64_t bytes;
    struct timespec mtime;
} cand;

typedef struct cand_list {
    cand *v;
    size_t n, cap;
} cand_list;

static int cand_push(cand_list *l, const cand *x)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap == 0 ? 1024 : l->cap * 2;
        cand *nv = realloc(l->v, ncap * sizeof(*nv));
        if (nv == NULL)
            return S3S_ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = *x;
    return 0;
}

static int by_mtime(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return 0;
}

static int by_name(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    int r = memcmp(x->hbin, y->hbin, 16);
    if (r != 0)
        return r;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1; /* NAME_META sorts first */
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Walks the 256 fan-out folders. with_stat: sizes and times (accounting);
 * without: names only (inventory). Claim files are cleaned on the way. */
static int walk(s3s__cache *c, int with_stat, cand_list *out)
{
    char path[4096];
    for (int i = 0; i < 256; i++) {
        snprintf(path, sizeof(path), "%s/%02x", c->root, i);
        DIR *d = opendir(path);
        if (d == NULL) {
            if (errno == ENOENT)
                continue;
            return S3S_EIO;
        }
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            cand x;
            memset(&x, 0, sizeof(x));
            x.kind = parse_name(de->d_name, x.hbin, &x.idx);
            if (x.kind == NAME_OTHER)
                continue;
            if (x.kind == NAME_LOCK) {
                if (with_stat)
                    clean_lock(dirfd(d), de->d_name);
                continue;
            }
            if (with_stat) {
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
                    continue; /* evicted under us */
                x.bytes = (uint64_t)st.st_size;
                x.mtime = st.st_mtim;
            }
            if (cand_push(out, &x) != 0) {
                closedir(d);
                return S3S_ENOMEM;
            }
        }
        closedir(d);
    }
    return 0;
}

static void cand_name(char *out, size_t cap, const s3s__cache *c, const cand *x)
{
    char hex[S3S__CACHE_HASH_HEX + 1];
    s3s__cache_hash_hex(hex, x->hbin);
    if (x->kind == NAME_META)
        snprintf(out, cap, "%s/%.2s/%s.m", c->root, hex, hex);
    else
        snprintf(out, cap, "%s/%.2s/%s.%" PRIu32, c->root, hex, hex, x->idx);
}

/* Unlinks x unless it was used (mtime moved) since the walk saw it. */
static int evict_one(const s3s__cache *c, const cand *x)
{
    char path[4096];
    cand_name(path, sizeof(path), c, x);
    struct stat st;
    if (lstat(path, &st) != 0 || st.st_mtim.tv_sec != x->mtime.tv_sec ||
        st.st_mtim.tv_nsec != x->mtime.tv_nsec)
        return 0;
    return unlink(path) == 0;
}

int s3s__cache_rescan(s3s__cache *c, int mode, uint64_t target, s3s__errbuf *eb)
{
    if (mode == S3S__CACHE_EVICT_AUTO) {
        if (pthread_mutex_trylock(&c->evict_mu) != 0)
            return 0; /* another thread is at it */
    } else {
        pthread_mutex_lock(&c->evict_mu);
    }
    cand_list l = {0};
    int rc = walk(c, 1, &l);
    if (rc != 0) {
        pthread_mutex_unlock(&c->evict_mu);
        free(l.v);
        return s3s__err_set(eb, rc, "cache: cannot walk %s", c->root);
    }
    uint64_t total = 0;
    for (size_t i = 0; i < l.n; i++)
        total += l.v[i].bytes;

    /* The limit: max_bytes, and also leave min_free_pct of the file system. */
    uint64_t limit = c->o.max_bytes;
    struct statvfs vfs;
    if (c->o.min_free_pct > 0 && statvfs(c->root, &vfs) == 0) {
        uint64_t fs_total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
        uint64_t fs_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        uint64_t keep = fs_total / 100 * c->o.min_free_pct;
        uint64_t room = total + fs_free > keep ? total + fs_free - keep : 0;
        if (room < limit)
            limit = room;
    }
    uint64_t goal = UINT64_MAX;
    if (mode == S3S__CACHE_EVICT_AUTO && total > limit)
        goal = limit / 100 * c->o.low_water_pct;
    else if (mode == S3S__CACHE_EVICT_TO)
        goal = target == UINT64_MAX ? limit / 100 * c->o.low_water_pct : target;

    uint64_t nev = 0, bev = 0;
    if (total > goal) {
        /* Entry files go last: drop blocks by LRU time, then entries left
         * without any block. */
        if (l.n > 0)
            qsort(l.v, l.n, sizeof(cand), by_mtime);
        for (size_t i = 0; i < l.n && total > goal; i++) {
            if (l.v[i].kind != NAME_BLOCK)
                continue;
            if (evict_one(c, &l.v[i])) {
                total -= l.v[i].bytes;
                nev++;
                bev += l.v[i].bytes;
                l.v[i].kind = NAME_OTHER;
            }
        }
    }
    /* Entry files with no block left and old enough: gone too. */
    if (l.n > 0)
        qsort(l.v, l.n, sizeof(cand), by_name);
    time_t now = time(NULL);
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i].kind != NAME_META)
            continue;
        int has_block = 0;
        for (size_t j = i + 1; j < l.n && memcmp(l.v[j].hbin, l.v[i].hbin, 16) == 0; j++)
            if (l.v[j].kind == NAME_BLOCK)
                has_block = 1;
        if (!has_block && (total > goal || now - l.v[i].mtime.tv_sec >= ORPHAN_GRACE_S) &&
            evict_one(c, &l.v[i]))
            total -= l.v[i].bytes;
    }
    free(l.v);
    pthread_mutex_lock(&c->mu);
    c->st.used_bytes = total;
    c->st.limit_bytes = limit;
    c->st.scans++;
    c->st.evictions += nev;
    c->st.evicted_bytes += bev;
    c->scanned = 1;
    c->added_since_scan = 0;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&c->evict_mu);
    return 0;
}

int s3s__cache_evict(s3s__cache *c, uint64_t target, s3s__errbuf *eb)
{
    return s3s__cache_rescan(c, S3S__CACHE_EVICT_TO, target, eb);
}

void s3s__cache_remove_entry(s3s__cache *c, const char *hash)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%.2s", c->root, hash);
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint8_t hbin[16];
        uint32_t idx;
        int kind = parse_name(de->d_name, hbin, &idx);
        if ((kind == NAME_META || kind == NAME_BLOCK) &&
            strncmp(de->d_name, hash, S3S__CACHE_HASH_HEX) == 0)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

/* ---- inventory ---- */

void s3s__cache_inventory_free(s3s__cache_inv_item *items, size_t n)
{
    if (items == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(items[i].bucket);
        free(items[i].key);
        free(items[i].etag);
        free(items[i].held);
    }
    free(items);
}

static char *dupn(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static int read_meta(const char *path, uint8_t *buf, size_t *n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = read(fd, buf, S3S__CACHE_ENTRY_MAX + 1);
    close(fd);
    if (r <= 0)
        return -1;
    *n = (size_t)r;
    return 0;
}

int s3s__cache_inventory(s3s__cache *c, s3s__cache_inv_item **out, size_t *out_n, s3s__errbuf *eb)
{
    *out = NULL;
    *out_n = 0;
    cand_list l = {0};
    s3s__cache_inv_item *items = NULL;
    size_t n = 0, cap = 0;
    uint8_t *buf = malloc(S3S__CACHE_ENTRY_MAX + 1);
    int rc = buf == NULL ? S3S_ENOMEM : walk(c, 0, &l);
    if (rc != 0)
        goto fail;
    if (l.n > 0)
        qsort(l.v, l.n, sizeof(cand), by_name);
    for (size_t i = 0; i < l.n; i++) {
        if (l.v[i].kind != NAME_META)
            continue; /* blocks without an entry file are not listed */
        char path[4096];
        size_t mlen = 0;
        s3s__cache_meta m;
        cand_name(path, sizeof(path), c, &l.v[i]);
        if (read_meta(path, buf, &mlen) != 0 || s3s__cache_meta_decode(buf, mlen, &m, NULL) != 0)
            continue; /* gone or damaged: entry_open will deal with it */
        if (n == cap) {
            size_t ncap = cap == 0 ? 64 : cap * 2;
            s3s__cache_inv_item *ni = realloc(items, ncap * sizeof(*ni));
            if (ni == NULL) {
                rc = S3S_ENOMEM;
                goto fail;
            }
            items = ni;
            cap = ncap;
        }
        s3s__cache_inv_item *it = &items[n];
        memset(it, 0, sizeof(*it));
        n++;
        s3s__cache_hash_hex(it->hash, l.v[i].hbin);
        it->size = m.size;
        it->block_size = m.block_size;
        it->nblocks = s3s__cache_nblocks(m.size, m.block_size);
        it->bucket = dupn(m.bucket, m.bucket_len);
        it->key = dupn(m.key, m.key_len);
        it->etag = dupn(m.etag, m.etag_len);
        it->held = calloc((it->nblocks + 7) / 8, 1);
        if (it->bucket == NULL || it->key == NULL || it->etag == NULL || it->held == NULL) {
            rc = S3S_ENOMEM;
            goto fail;
        }
        for (size_t j = i + 1; j < l.n && memcmp(l.v[j].hbin, l.v[i].hbin, 16) == 0; j++) {
            uint32_t b = l.v[j].idx;
            if (l.v[j].kind == NAME_BLOCK && b < it->nblocks &&
                !(it->held[b / 8] & (1u << b % 8))) {
                it->held[b / 8] |= (uint8_t)(1u << b % 8);
                it->nheld++;
            }
        }
        it->complete = it->nheld == it->nblocks;
    }
    free(l.v);
    free(buf);
    *out = items;
    *out_n = n;
    return 0;
fail:
    free(l.v);
    free(buf);
    s3s__cache_inventory_free(items, n);
    return s3s__err_set(eb, rc, "cache: cannot list %s", c->root);
}
