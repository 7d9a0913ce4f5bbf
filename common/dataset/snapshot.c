/* snapshot.c: building, hashing, serializing and loading snapshots (see
 * snapshot.h; the file format is in docs/dataset.md, "Snapshot file"). */
#include "common/dataset/snapshot.h"

#include "common/dataset/errinfo.h"
#include "common/dataset/xxh64.h"
#include "s3shard/error.h"

#include <openssl/evp.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the snapshot file is little-endian; big-endian hosts are not supported yet"
#endif

_Static_assert(sizeof(s3s__snap_rec) == 48, "snapshot record must be 48 bytes");

#define MAGIC "S3SSNAP1"
#define TRAILER_MAGIC "S3SSEND1"
#define VERSION 1u
#define HEADER_BYTES 128u
#define MAX_ARENA (64ull << 30)
#define MAX_FILE (64ull << 30)
#define MAX_KEY (1u << 30)

/* ---- builder ---- */

void s3s__sb_init(s3s__snap_builder *b)
{
    memset(b, 0, sizeof(*b));
}

void s3s__sb_fini(s3s__snap_builder *b)
{
    free(b->recs);
    free(b->arena);
    memset(b, 0, sizeof(*b));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* upper case stays text so the hash sees the same bytes */
}

/* parse_md5_etag: 32 lower-case hex digits, optionally "-N" (1..10000). */
static int parse_md5_etag(const char *etag, size_t n, uint8_t md5[16], uint32_t *parts)
{
    if (n < 32)
        return 0;
    for (int i = 0; i < 16; i++) {
        int hi = hexval(etag[2 * i]), lo = hexval(etag[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        md5[i] = (uint8_t)(hi * 16 + lo);
    }
    *parts = 0;
    if (n == 32)
        return 1;
    if (etag[32] != '-' || n < 34 || n > 38 || etag[33] == '0')
        return 0;
    uint32_t p = 0;
    for (size_t i = 33; i < n; i++) {
        if (etag[i] < '0' || etag[i] > '9')
            return 0;
        p = p * 10 + (uint32_t)(etag[i] - '0');
    }
    if (p < 1 || p > 10000)
        return 0;
    *parts = p;
    return 1;
}

static int arena_append(s3s__snap_builder *b, const char *p, size_t n)
{
    if (b->arena_len + n > MAX_ARENA)
        return S3S_ETOOBIG;
    if (b->arena_len + n > b->arena_cap) {
        uint64_t cap = b->arena_cap ? b->arena_cap : 4096;
        while (cap < b->arena_len + n)
            cap *= 2;
        char *a = realloc(b->arena, cap);
        if (a == NULL)
            return S3S_ENOMEM;
        b->arena = a;
        b->arena_cap = cap;
    }
    memcpy(b->arena + b->arena_len, p, n);
    b->arena_len += n;
    return 0;
}

int s3s__sb_add(s3s__snap_builder *b, const char *key, size_t key_len, uint64_t size,
                const char *etag)
{
    if (b->count >= S3S__MAX_ENTRIES || key_len > MAX_KEY)
        return S3S_ETOOBIG;
    if (b->count == b->cap) {
        uint64_t cap = b->cap ? b->cap * 2 : 1024;
        s3s__snap_rec *r = realloc(b->recs, cap * sizeof(*r));
        if (r == NULL)
            return S3S_ENOMEM;
        b->recs = r;
        b->cap = cap;
    }
    s3s__snap_rec *r = &b->recs[b->count];
    memset(r, 0, sizeof(*r));
    r->key_off = b->arena_len;
    r->key_len = (uint32_t)key_len;
    r->size = size;
    int rc = arena_append(b, key, key_len);
    if (rc != 0)
        return rc;
    size_t el = etag ? strlen(etag) : 0;
    if (el > 0 && parse_md5_etag(etag, el, r->md5, &r->etag_parts)) {
        r->etag_len = S3S__ETAG_MD5;
    } else if (el > 0) {
        if (el > 71)
            el = 71;
        if ((rc = arena_append(b, etag, el)) != 0)
            return rc;
        r->etag_len = (uint16_t)el;
    }
    b->total_bytes += size;
    b->count++;
    return 0;
}

static int cmp_keys(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c != 0)
        return c;
    return an < bn ? -1 : an > bn;
}

static int rec_cmp(const void *x, const void *y, void *arena)
{
    const s3s__snap_rec *a = x, *b = y;
    const char *ar = arena;
    return cmp_keys(ar + a->key_off, a->key_len, ar + b->key_off, b->key_len);
}

void s3s__etag_text(const s3s_snapshot *s, const s3s__snap_rec *r, char out[72])
{
    static const char hex[] = "0123456789abcdef";
    if (r->etag_len == S3S__ETAG_MD5) {
        for (int i = 0; i < 16; i++) {
            out[2 * i] = hex[r->md5[i] >> 4];
            out[2 * i + 1] = hex[r->md5[i] & 15];
        }
        out[32] = '\0';
        if (r->etag_parts)
            snprintf(out + 32, 40, "-%u", r->etag_parts);
    } else {
        memcpy(out, s->arena + r->key_off + r->key_len, r->etag_len);
        out[r->etag_len] = '\0';
    }
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* compute_hash: SHA-256 of the canonical stream of docs/dataset.md. Small
 * pieces are gathered in a local buffer: one EVP update per entry is slow. */
static int compute_hash(const s3s_snapshot *s, uint8_t out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return S3S_ENOMEM;
    }
    enum { CAP = 65536 };
    uint8_t *buf = malloc(CAP);
    if (buf == NULL) {
        EVP_MD_CTX_free(ctx);
        return S3S_ENOMEM;
    }
    size_t n = 0;
    static const char tag[] = "s3shard-snapshot-v1\n";
    size_t bl = s->bucket ? strlen(s->bucket) : 0;
    EVP_DigestUpdate(ctx, tag, sizeof(tag) - 1);
    put32(buf, (uint32_t)s->kind);
    put32(buf + 4, (uint32_t)bl);
    EVP_DigestUpdate(ctx, buf, 8);
    if (bl)
        EVP_DigestUpdate(ctx, s->bucket, bl);
    put64(buf, s->count);
    EVP_DigestUpdate(ctx, buf, 8);
    for (uint64_t i = 0; i < s->count; i++) {
        const s3s__snap_rec *r = &s->recs[i];
        char et[72];
        s3s__etag_text(s, r, et);
        size_t el = strlen(et);
        if (n + 16 + el + r->key_len > CAP || r->key_len > CAP / 2) {
            EVP_DigestUpdate(ctx, buf, n);
            n = 0;
        }
        put32(buf + n, r->key_len);
        n += 4;
        if (r->key_len > CAP / 2) {
            EVP_DigestUpdate(ctx, buf, n);
            EVP_DigestUpdate(ctx, s->arena + r->key_off, r->key_len);
            n = 0;
        } else {
            memcpy(buf + n, s->arena + r->key_off, r->key_len);
            n += r->key_len;
        }
        put64(buf + n, r->size);
        put32(buf + n + 8, (uint32_t)el);
        memcpy(buf + n + 12, et, el);
        n += 12 + el;
    }
    EVP_DigestUpdate(ctx, buf, n);
    unsigned int ol = 32;
    EVP_DigestFinal_ex(ctx, out, &ol);
    EVP_MD_CTX_free(ctx);
    free(buf);
    return 0;
}

int s3s__sb_finish(s3s__snap_builder *b, s3s_snapshot_kind kind, const char *source,
                   const char *bucket, s3s_snapshot **out, s3s_errinfo *e)
{
    *out = NULL;
    s3s_snapshot *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    s->kind = kind;
    s->source = strdup(source ? source : "");
    s->bucket = bucket ? strdup(bucket) : NULL;
    if (s->source == NULL || (bucket && s->bucket == NULL)) {
        s3s_snapshot_destroy(s);
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    }
    if (kind == S3S_SNAP_OBJECTS && b->count > 1) {
        /* S3 listings arrive sorted: check first, sort only when needed */
        uint64_t upto = 1;
        while (upto < b->count && rec_cmp(&b->recs[upto - 1], &b->recs[upto], b->arena) < 0)
            upto++;
        if (upto < b->count) /* not strictly increasing: sort, then look for repeats */
            qsort_r(b->recs, b->count, sizeof(*b->recs), rec_cmp, b->arena);
        for (uint64_t i = 1; upto < b->count && i < b->count; i++)
            if (rec_cmp(&b->recs[i - 1], &b->recs[i], b->arena) == 0) {
                const s3s__snap_rec *r = &b->recs[i];
                s3s_snapshot_destroy(s);
                return s3s__ei_set(e, S3S_EPARSE, "key \"%.*s\" appears twice in the listing",
                                   (int)(r->key_len > 200 ? 200 : r->key_len),
                                   b->arena + r->key_off);
            }
    }
    s->count = b->count;
    s->recs = b->recs;
    s->arena = b->arena;
    s->arena_len = b->arena_len;
    s->total_bytes = b->total_bytes;
    s->created = (int64_t)time(NULL);
    memset(b, 0, sizeof(*b));
    if (compute_hash(s, s->hash) != 0) {
        s3s_snapshot_destroy(s);
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    }
    *out = s;
    return 0;
}

/* ---- file image ---- */

static uint64_t pad8(uint64_t n)
{
    return (n + 7) & ~7ull;
}

/* The layout of a snapshot's file: the offsets of its parts. */
typedef struct layout {
    size_t sl, bl;
    uint64_t recs_off, arena_off, trailer_off, total;
} layout;

static void get_layout(const s3s_snapshot *s, layout *l)
{
    l->sl = strlen(s->source);
    l->bl = s->bucket ? strlen(s->bucket) : 0;
    l->recs_off = pad8(HEADER_BYTES + l->sl + l->bl);
    l->arena_off = l->recs_off + s->count * sizeof(s3s__snap_rec);
    l->trailer_off = pad8(l->arena_off + s->arena_len);
    l->total = l->trailer_off + 16;
}

/* write_head fills f[0..recs_off) (zeroed by the caller): header, source, bucket. */
static void write_head(const s3s_snapshot *s, const layout *l, uint8_t *f)
{
    memcpy(f, MAGIC, 8);
    put32(f + 8, VERSION);
    put32(f + 12, HEADER_BYTES);
    put32(f + 16, (uint32_t)s->kind);
    put32(f + 20, (uint32_t)sizeof(s3s__snap_rec));
    put64(f + 24, s->count);
    put64(f + 32, s->arena_len);
    put64(f + 40, s->total_bytes);
    put64(f + 48, (uint64_t)s->created);
    put32(f + 56, (uint32_t)l->sl);
    put32(f + 60, (uint32_t)l->bl);
    memcpy(f + 64, s->hash, 32);
    put32(f + 96, s->bucket != NULL); /* flags: bit 0 = has a bucket */
    memcpy(f + HEADER_BYTES, s->source, l->sl);
    if (l->bl)
        memcpy(f + HEADER_BYTES + l->sl, s->bucket, l->bl);
}

int s3s__snap_serialize(const s3s_snapshot *s, void **out, size_t *out_len, s3s_errinfo *e)
{
    *out = NULL;
    layout l;
    get_layout(s, &l);
    if (l.total > MAX_FILE)
        return s3s__ei_set(e, S3S_ETOOBIG, "snapshot file would exceed %llu bytes",
                           (unsigned long long)MAX_FILE);
    uint8_t *f = calloc(1, l.total);
    if (f == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory (%llu bytes)",
                           (unsigned long long)l.total);
    write_head(s, &l, f);
    if (s->count)
        memcpy(f + l.recs_off, s->recs, s->count * sizeof(s3s__snap_rec));
    if (s->arena_len)
        memcpy(f + l.arena_off, s->arena, s->arena_len);
    put64(f + l.trailer_off, s3s__xxh64(f, l.trailer_off));
    memcpy(f + l.trailer_off + 8, TRAILER_MAGIC, 8);
    *out = f;
    *out_len = l.total;
    return 0;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void release_block(void *block, size_t map_len)
{
    if (map_len > 0)
        munmap(block, map_len);
    else
        free(block);
}

/* parse_block: block is malloc'ed (map_len 0) or a read-only mapping of
 * map_len bytes; it is owned (and released on failure) from here on. */
static int parse_block(s3s_snapshot **out, void *block, size_t len, size_t map_len,
                       const char *name, s3s_errinfo *e)
{
    *out = NULL;
    const uint8_t *f = block;
    int rc = S3S_EPARSE;
    s3s_snapshot *s = NULL;
    if (len < HEADER_BYTES + 16 || memcmp(f, MAGIC, 8) != 0) {
        s3s__ei_set(e, rc, "%s: not an s3shard snapshot file (bad magic or too short)", name);
        goto fail;
    }
    if (get32(f + 8) != VERSION) {
        rc = s3s__ei_set(e, S3S_EPROTO, "%s: snapshot format version %u; this build reads %u", name,
                         get32(f + 8), VERSION);
        goto fail;
    }
    if (memcmp(f + len - 8, TRAILER_MAGIC, 8) != 0) {
        s3s__ei_set(e, rc, "%s: truncated snapshot file (no trailer)", name);
        goto fail;
    }
    if (get64(f + len - 16) != s3s__xxh64(f, len - 16)) {
        rc = s3s__ei_set(e, S3S_ECORRUPT, "%s: snapshot checksum mismatch (file damaged)", name);
        goto fail;
    }
    uint32_t kind = get32(f + 16), sl = get32(f + 56), bl = get32(f + 60);
    uint64_t count = get64(f + 24), alen = get64(f + 32);
    if (get32(f + 12) != HEADER_BYTES || get32(f + 20) != sizeof(s3s__snap_rec) ||
        kind > S3S_SNAP_RECORDS || count > S3S__MAX_ENTRIES || alen > MAX_ARENA || sl > 65536 ||
        bl > 255) {
        s3s__ei_set(e, rc, "%s: invalid snapshot header", name);
        goto fail;
    }
    uint64_t recs_off = pad8(HEADER_BYTES + (uint64_t)sl + bl);
    uint64_t arena_off = recs_off + count * sizeof(s3s__snap_rec);
    uint64_t trailer_off = pad8(arena_off + alen);
    if (trailer_off + 16 != len) {
        s3s__ei_set(e, rc, "%s: snapshot sizes do not add up to the file size", name);
        goto fail;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        rc = s3s__ei_set(e, S3S_ENOMEM, "out of memory");
        goto fail;
    }
    s->kind = (s3s_snapshot_kind)kind;
    s->count = count;
    s->arena_len = alen;
    s->total_bytes = get64(f + 40);
    s->created = (int64_t)get64(f + 48);
    memcpy(s->hash, f + 64, 32);
    s->source = strndup((const char *)f + HEADER_BYTES, sl);
    if (get32(f + 96) & 1)
        s->bucket = strndup((const char *)f + HEADER_BYTES + sl, bl);
    s->recs = (s3s__snap_rec *)(void *)((uint8_t *)block + recs_off);
    s->arena = (char *)block + arena_off;
    s->block = block;
    s->map_len = map_len;
    if (s->source == NULL || ((get32(f + 96) & 1) && s->bucket == NULL)) {
        rc = s3s__ei_set(e, S3S_ENOMEM, "out of memory");
        goto fail;
    }
    uint64_t total = 0;
    for (uint64_t i = 0; i < count; i++) {
        const s3s__snap_rec *r = &s->recs[i];
        uint64_t el = r->etag_len == S3S__ETAG_MD5 ? 0 : r->etag_len;
        if (r->key_off > alen || r->key_len > alen - r->key_off ||
            el > alen - r->key_off - r->key_len || (r->etag_len != S3S__ETAG_MD5 && el > 71) ||
            (r->etag_len == S3S__ETAG_MD5 && r->etag_parts > 10000)) {
            s3s__ei_set(e, rc, "%s: entry %llu points outside the key arena", name,
                        (unsigned long long)i);
            goto fail;
        }
        if (kind == S3S_SNAP_OBJECTS && i > 0 && rec_cmp(&s->recs[i - 1], r, s->arena) >= 0) {
            s3s__ei_set(e, rc, "%s: entry %llu is out of order", name, (unsigned long long)i);
            goto fail;
        }
        total += r->size;
    }
    if (total != s->total_bytes) {
        s3s__ei_set(e, rc, "%s: total bytes in the header do not match the entries", name);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    if (s != NULL)
        s3s_snapshot_destroy(s);
    else
        release_block(block, map_len);
    return rc;
}

int s3s__snap_parse(s3s_snapshot **out, void *block, size_t len, const char *name, s3s_errinfo *e)
{
    return parse_block(out, block, len, 0, name, e);
}

/* ---- public ---- */

void s3s_snapshot_destroy(s3s_snapshot *s)
{
    if (s == NULL)
        return;
    if (s->block != NULL) {
        release_block(s->block, s->map_len);
    } else {
        free(s->recs);
        free(s->arena);
    }
    free(s->source);
    free(s->bucket);
    free(s);
}

/* write_all writes n bytes and adds them to the checksum. */
static int write_all(int fd, s3s__xxh_state *st, const void *p, size_t n)
{
    const char *c = p;
    if (st != NULL)
        s3s__xxh_update(st, p, n);
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

int s3s_snapshot_save(const s3s_snapshot *s, const char *path, s3s_errinfo *e)
{
    layout l;
    get_layout(s, &l);
    if (l.total > MAX_FILE)
        return s3s__ei_set(e, S3S_ETOOBIG, "snapshot file would exceed %llu bytes",
                           (unsigned long long)MAX_FILE);
    int rc = 0;
    size_t pl = strlen(path) + 32;
    char *tmp = malloc(pl);
    uint8_t *head = calloc(1, (size_t)l.recs_off);
    if (tmp == NULL || head == NULL) {
        free(tmp);
        free(head);
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    }
    write_head(s, &l, head);
    snprintf(tmp, pl, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = s3s__ei_set(e, S3S_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    /* Streamed from the snapshot's own memory: no file image is built. */
    s3s__xxh_state st;
    s3s__xxh_init(&st);
    static const uint8_t zeros[8];
    uint8_t trailer[16];
    int bad = write_all(fd, &st, head, (size_t)l.recs_off) ||
        write_all(fd, &st, s->recs, (size_t)(s->count * sizeof(s3s__snap_rec))) ||
        write_all(fd, &st, s->arena, (size_t)s->arena_len) ||
        write_all(fd, &st, zeros, (size_t)(l.trailer_off - l.arena_off - s->arena_len));
    if (!bad) {
        put64(trailer, s3s__xxh_digest(&st));
        memcpy(trailer + 8, TRAILER_MAGIC, 8);
        bad = write_all(fd, NULL, trailer, 16);
    }
    if (bad)
        rc = s3s__ei_set(e, S3S_EIO, "%s: write: %s", tmp, strerror(errno));
    if (rc == 0 && fsync(fd) != 0)
        rc = s3s__ei_set(e, S3S_EIO, "%s: fsync: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = s3s__ei_set(e, S3S_EIO, "%s: close: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = s3s__ei_set(e, S3S_EIO, "rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != 0)
        unlink(tmp);
out:
    free(tmp);
    free(head);
    return rc;
}

int s3s_snapshot_load(s3s_snapshot **out, const char *path, s3s_errinfo *e)
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
    if ((uint64_t)st.st_size > MAX_FILE) {
        close(fd);
        return s3s__ei_set(e, S3S_ETOOBIG, "%s: larger than %llu bytes", path,
                           (unsigned long long)MAX_FILE);
    }
    size_t n = (size_t)st.st_size;
    if (n == 0) {
        close(fd);
        return s3s__ei_set(e, S3S_EPARSE, "%s: empty file, not a snapshot", path);
    }
    /* A read-only mapping, not read() into fresh memory: the file is usually
     * in the page cache, and first-touch page faults on anonymous memory cost
     * more than the checksum (docs/dataset.md, "Snapshot file"). */
    void *block = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (block == MAP_FAILED)
        return s3s__ei_set(e, S3S_EIO, "%s: mmap: %s", path, strerror(err));
    madvise(block, n, MADV_WILLNEED);
    return parse_block(out, block, n, n, path, e);
}

int s3s_snapshot_load_mem(s3s_snapshot **out, const void *data, size_t len, s3s_errinfo *e)
{
    *out = NULL;
    void *block = malloc(len ? len : 1);
    if (block == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    memcpy(block, data, len);
    return s3s__snap_parse(out, block, len, "snapshot", e);
}

size_t s3s_snapshot_count(const s3s_snapshot *s)
{
    return (size_t)s->count;
}

s3s_snapshot_kind s3s_snapshot_kind_get(const s3s_snapshot *s)
{
    return s->kind;
}

uint64_t s3s_snapshot_total_bytes(const s3s_snapshot *s)
{
    return s->total_bytes;
}

const char *s3s_snapshot_source(const s3s_snapshot *s)
{
    return s->source;
}

const char *s3s_snapshot_bucket(const s3s_snapshot *s)
{
    return s->bucket;
}

void s3s_snapshot_hash(const s3s_snapshot *s, uint8_t out[32])
{
    memcpy(out, s->hash, 32);
}

void s3s_snapshot_hash_hex(const s3s_snapshot *s, char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", s->hash[i]);
}

int s3s_snapshot_verify(const s3s_snapshot *s, s3s_errinfo *e)
{
    uint8_t h[32];
    for (uint64_t i = 1; s->kind == S3S_SNAP_OBJECTS && i < s->count; i++)
        if (rec_cmp(&s->recs[i - 1], &s->recs[i], s->arena) >= 0)
            return s3s__ei_set(e, S3S_ECORRUPT, "entry %llu is out of order",
                               (unsigned long long)i);
    if (compute_hash(s, h) != 0)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    if (memcmp(h, s->hash, 32) != 0)
        return s3s__ei_set(e, S3S_ECORRUPT,
                           "content hash mismatch: the entries do not match the stored hash");
    return 0;
}

int s3s_snapshot_check_hash(const s3s_snapshot *s, const char *expected_hex, s3s_errinfo *e)
{
    char hex[65];
    s3s_snapshot_hash_hex(s, hex);
    if (expected_hex == NULL || strcasecmp(hex, expected_hex) != 0)
        return s3s__ei_set(e, S3S_EMISMATCH,
                           "snapshot %s has hash %s but the job started with %.64s: the "
                           "dataset changed; refusing to resume on it",
                           s->source, hex, expected_hex ? expected_hex : "(none)");
    return 0;
}

int s3s_snapshot_entry(const s3s_snapshot *s, size_t i, s3s_entry *out)
{
    if (i >= s->count)
        return S3S_EINVAL;
    const s3s__snap_rec *r = &s->recs[i];
    out->key = s->arena + r->key_off;
    out->key_len = r->key_len;
    out->size = r->size;
    s3s__etag_text(s, r, out->etag);
    return 0;
}

uint32_t s3s__snapshot_entry_line(const s3s_snapshot *s, size_t i)
{
    if (s == NULL || i >= s->count || s->kind != S3S_SNAP_RECORDS)
        return 0;
    return s->recs[i].pad1;
}
