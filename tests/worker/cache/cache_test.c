/* cache_test.c: the disk cache on real files in a temp folder, with real
 * processes (fork) for sharing, crashes (SIGKILL) and races. */
#include "tests/support/cachefix.h"
#include "tests/support/testenv.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "s3shard/error.h"
#include "worker/cache/cache.h"
#include "worker/cache/cache_int.h"

#define BS (64u * 1024)
#define ETAG "\"etag-1\""

typedef s3s_test_cachefix fx;

static int setup(void **state)
{
    *state = s3s_test_cachefix_create("cache", BS);
    return 0;
}

static int teardown(void **state)
{
    return s3s_test_cachefix_teardown(state);
}

static uint8_t byte_at(uint64_t off, unsigned seed)
{
    uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ull ^ seed;
    return (uint8_t)(x >> 56);
}

/* Writes bytes [from, len) of block idx to w with the pattern. */
static void write_from(s3s__cache_writer *w, uint32_t idx, uint64_t from, uint64_t len,
                       unsigned seed)
{
    uint8_t buf[4096];
    for (uint64_t off = from; off < len;) {
        size_t n = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = byte_at((uint64_t)idx * BS + off + i, seed);
        assert_int_equal(s3s__cache_writer_write(w, buf, n, NULL), 0);
        off += n;
    }
}

/* Claims and writes block idx with the pattern; fails the test if someone
 * else already holds it. */
static void put_block(s3s__cache_entry *e, uint32_t idx, unsigned seed)
{
    s3s__cache_writer *w = NULL;
    s3s__cache_block hit;
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_int_equal(s3s__cache_claim(e, idx, 1000, &w, &hit, &eb), 0);
    assert_non_null(w);
    write_from(w, idx, 0, s3s__cache_entry_block_len(e, idx), seed);
    assert_int_equal(s3s__cache_writer_commit(w, NULL, &eb), 0);
}

/* 1 when the block holds exactly the pattern. */
static int block_ok(const s3s__cache_block *b, uint32_t idx, unsigned seed)
{
    uint8_t buf[4096];
    uint64_t base = (uint64_t)idx * BS;
    for (uint64_t off = 0; off < b->len;) {
        size_t n = b->len - off < sizeof(buf) ? (size_t)(b->len - off) : sizeof(buf);
        if (pread(b->fd, buf, n, (off_t)off) != (ssize_t)n)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (buf[i] != byte_at(base + off + i, seed))
                return 0;
        off += n;
    }
    return 1;
}

static char *block_file(s3s__cache_entry *e, uint32_t idx, const char *dir)
{
    char *p = malloc(4096);
    assert_non_null(p);
    const char *h = s3s__cache_entry_hash(e);
    snprintf(p, 4096, "%s/%s/%.2s/%s.%u", dir, S3S__CACHE_SUBDIR, h, h, idx);
    return p;
}

static void test_miss_then_hit(void **state)
{
    fx *f = *state;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "a/obj1", ETAG, 3 * BS + 100);
    assert_int_equal(s3s__cache_entry_nblocks(e), 4);
    assert_int_equal(s3s__cache_entry_block_len(e, 3), 100);
    s3s__cache_block b;
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), S3S_ENOTFOUND);
    assert_int_equal(b.fd, -1);
    put_block(e, 0, 1);
    put_block(e, 3, 1);
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), 0);
    assert_int_equal(b.len, BS);
    assert_true(block_ok(&b, 0, 1));
    s3s__cache_block_release(&b);
    s3s__cache_block_release(&b); /* idempotent */
    assert_int_equal(s3s__cache_lookup(e, 3, &b, NULL), 0);
    assert_int_equal(b.len, 100);
    assert_true(block_ok(&b, 3, 1));
    s3s__cache_block_release(&b);
    assert_int_equal(s3s__cache_lookup(e, 1, &b, NULL), S3S_ENOTFOUND);
    assert_int_equal(s3s__cache_lookup(e, 4, &b, NULL), S3S_EINVAL);

    s3s__cache_stats st;
    s3s__cache_stats_get(c, &st, 1);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 2 + 2); /* two lookups + two claims that wrote */
    assert_int_equal(st.hit_bytes, BS + 100);
    assert_int_equal(st.commits, 2);
    assert_int_equal(st.commit_bytes, BS + 100);
    assert_true(st.used_bytes >= BS + 100 + 2 * S3S__CACHE_TRAILER);
    assert_true(st.used_bytes < BS + 100 + 2 * S3S__CACHE_TRAILER + 2048);

    /* A claim for a block that is there is a hit, with no writer. */
    s3s__cache_writer *w = NULL;
    assert_int_equal(s3s__cache_claim(e, 0, 0, &w, &b, NULL), 0);
    assert_null(w);
    assert_true(block_ok(&b, 0, 1));
    s3s__cache_block_release(&b);

    /* The committed block can be handed back open. */
    assert_int_equal(s3s__cache_claim(e, 1, 0, &w, &b, NULL), 0);
    assert_non_null(w);
    uint8_t buf[BS];
    for (size_t i = 0; i < BS; i++)
        buf[i] = byte_at(BS + i, 1);
    assert_int_equal(s3s__cache_writer_write(w, buf, BS, NULL), 0);
    assert_int_equal(s3s__cache_writer_commit(w, &b, NULL), 0);
    assert_true(b.fd >= 0);
    assert_true(block_ok(&b, 1, 1));
    s3s__cache_block_release(&b);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

static void test_empty_object(void **state)
{
    fx *f = *state;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "empty", ETAG, 0);
    assert_int_equal(s3s__cache_entry_nblocks(e), 1);
    put_block(e, 0, 0);
    s3s__cache_block b;
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), 0);
    assert_int_equal(b.len, 0);
    s3s__cache_block_release(&b);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

static void test_restart_and_inventory(void **state)
{
    fx *f = *state;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e1 = s3s_test_cache_entry_open(c, "dir/big", ETAG, 3 * BS + 1);
    s3s__cache_entry *e2 = s3s_test_cache_entry_open(c, "small", ETAG, 1000);
    put_block(e1, 0, 7);
    put_block(e1, 2, 7);
    put_block(e2, 0, 9);
    s3s__cache_entry_close(e1);
    s3s__cache_entry_close(e2);
    s3s__cache_close(c);

    /* A new handle (a restarted process) finds everything, verifying it. */
    c = s3s_test_cache_open(f);
    s3s__cache_inv_item *inv = NULL;
    size_t n = 0;
    assert_int_equal(s3s__cache_inventory(c, &inv, &n, NULL), 0);
    assert_int_equal(n, 2);
    char h1[S3S__CACHE_HASH_HEX + 1], h2[S3S__CACHE_HASH_HEX + 1];
    s3s__cache_id_hash(h1, "bkt", "dir/big", "\"etag-1\"");
    s3s__cache_id_hash(h2, "bkt", "small", "\"etag-1\"");
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(inv[i].bucket, "bkt");
        assert_string_equal(inv[i].etag, "\"etag-1\"");
        if (strcmp(inv[i].key, "dir/big") == 0) {
            assert_string_equal(inv[i].hash, h1);
            assert_int_equal(inv[i].size, 3 * BS + 1);
            assert_int_equal(inv[i].block_size, BS);
            assert_int_equal(inv[i].nblocks, 4);
            assert_int_equal(inv[i].nheld, 2);
            assert_int_equal(inv[i].held[0], 0x5);
            assert_false(inv[i].complete);
        } else {
            assert_string_equal(inv[i].key, "small");
            assert_string_equal(inv[i].hash, h2);
            assert_int_equal(inv[i].nblocks, 1);
            assert_true(inv[i].complete);
        }
    }
    s3s__cache_inventory_free(inv, n);

    /* Changing the block-size option does not disturb existing entries. */
    s3s__cache_close(c);
    f->o.block_size = 2 * BS;
    c = s3s_test_cache_open(f);
    e1 = s3s_test_cache_entry_open(c, "dir/big", ETAG, 3 * BS + 1);
    assert_int_equal(s3s__cache_entry_block_size(e1), BS);
    s3s__cache_block b;
    assert_int_equal(s3s__cache_lookup(e1, 2, &b, NULL), 0);
    assert_true(block_ok(&b, 2, 7));
    s3s__cache_block_release(&b);
    assert_int_equal(s3s__cache_lookup(e1, 1, &b, NULL), S3S_ENOTFOUND);
    s3s__cache_entry_close(e1);

    /* Same key and ETag but another size: the old bytes are not trusted. */
    e2 = s3s_test_cache_entry_open(c, "small", ETAG, 1001);
    assert_int_equal(s3s__cache_lookup(e2, 0, &b, NULL), S3S_ENOTFOUND);
    s3s__cache_entry_close(e2);
    s3s__cache_stats st;
    s3s__cache_stats_get(c, &st, 0);
    assert_int_equal(st.corrupt, 1);
    s3s__cache_close(c);
}

/* Damage a block file in a few ways; a fresh handle (nothing verified yet)
 * must never serve it, and must delete it. */
static void test_damaged_blocks_not_served(void **state)
{
    fx *f = *state;
    enum { TRUNCATE, FLIP_DATA, FLIP_TRAILER, EXTEND, SWAP_NAME, NCASES };
    for (int kase = 0; kase < NCASES; kase++) {
        s3s__cache *c = s3s_test_cache_open(f);
        char key[32];
        snprintf(key, sizeof(key), "torn%d", kase);
        s3s__cache_entry *e = s3s_test_cache_entry_open(c, key, ETAG, 2 * BS);
        put_block(e, 0, 3);
        put_block(e, 1, 3);
        s3s__cache_entry_close(e);
        s3s__cache_close(c);

        c = s3s_test_cache_open(f);
        e = s3s_test_cache_entry_open(c, key, ETAG, 2 * BS);
        char *p0 = block_file(e, 0, f->dir), *p1 = block_file(e, 1, f->dir);
        int fd = open(p0, O_RDWR);
        assert_true(fd >= 0);
        uint8_t x = 0;
        switch (kase) {
        case TRUNCATE:
            assert_int_equal(ftruncate(fd, BS + S3S__CACHE_TRAILER - 1), 0);
            break;
        case FLIP_DATA:
            assert_int_equal(pread(fd, &x, 1, 1234), 1);
            x ^= 0x10;
            assert_int_equal(pwrite(fd, &x, 1, 1234), 1);
            break;
        case FLIP_TRAILER:
            assert_int_equal(pread(fd, &x, 1, BS + 20), 1);
            x ^= 1;
            assert_int_equal(pwrite(fd, &x, 1, BS + 20), 1);
            break;
        case EXTEND:
            assert_int_equal(pwrite(fd, "zz", 2, BS + S3S__CACHE_TRAILER), 2);
            break;
        case SWAP_NAME: /* block 1's file under block 0's name */
            assert_int_equal(rename(p1, p0), 0);
            break;
        }
        close(fd);
        s3s__cache_block b;
        assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), S3S_ENOTFOUND);
        struct stat st;
        assert_int_equal(stat(p0, &st), -1); /* deleted */
        s3s__cache_stats cs;
        s3s__cache_stats_get(c, &cs, 0);
        assert_int_equal(cs.corrupt, 1);
        /* And it can be fetched again. */
        put_block(e, 0, 3);
        assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), 0);
        assert_true(block_ok(&b, 0, 3));
        s3s__cache_block_release(&b);
        free(p0);
        free(p1);
        s3s__cache_entry_close(e);
        s3s__cache_close(c);
    }
}

static void test_damaged_entry_file(void **state)
{
    fx *f = *state;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "m", ETAG, 100);
    put_block(e, 0, 1);
    char path[4096];
    const char *h = s3s__cache_entry_hash(e);
    snprintf(path, sizeof(path), "%s/%s/%.2s/%s.m", f->dir, S3S__CACHE_SUBDIR, h, h);
    s3s__cache_entry_close(e);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 40), 1);
    close(fd);
    e = s3s_test_cache_entry_open(c, "m", ETAG, 100); /* rewritten; its old blocks dropped */
    s3s__cache_block b;
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), S3S_ENOTFOUND);
    s3s__cache_entry_close(e);
    s3s__cache_id bad = {"bkt", "", "e", 1};
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_int_equal(s3s__cache_entry_open(c, &bad, &e, &eb), S3S_EINVAL);
    assert_null(e);
    s3s__cache_close(c);
}

static void test_writer_errors(void **state)
{
    fx *f = *state;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "w", ETAG, 1000);
    s3s__cache_writer *w = NULL;
    s3s__cache_block b;
    uint8_t buf[2000] = {0};
    assert_int_equal(s3s__cache_claim(e, 0, 0, &w, &b, NULL), 0);
    assert_int_equal(s3s__cache_writer_write(w, buf, 1001, NULL), S3S_ETOOBIG);
    assert_int_equal(s3s__cache_writer_write(w, buf, 999, NULL), 0);
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_int_equal(s3s__cache_writer_commit(w, NULL, &eb), S3S_ESHORT);
    assert_non_null(strstr(eb.msg, "999 of its 1000"));
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), S3S_ENOTFOUND);
    /* The claim was released: a new one is granted at once. */
    assert_int_equal(s3s__cache_claim(e, 0, 0, &w, &b, NULL), 0);
    assert_non_null(w);
    s3s__cache_writer_abort(w);
    s3s__cache_writer_abort(NULL);
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), S3S_ENOTFOUND);
    /* Nothing is left in tmp/. */
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/tmp", f->dir, S3S__CACHE_SUBDIR);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *de;
    int files = 0;
    while ((de = readdir(d)) != NULL)
        files += de->d_name[0] != '.';
    closedir(d);
    assert_int_equal(files, 0);
    s3s__cache_stats st;
    s3s__cache_stats_get(c, &st, 0);
    assert_int_equal(st.aborts, 2);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);

    s3s__cache_opts o = f->o;
    o.block_size = 1000;
    assert_int_equal(s3s__cache_open(&c, f->dir, &o, NULL), S3S_EINVAL);
    assert_null(c);
    o = f->o;
    o.max_bytes = 0;
    assert_int_equal(s3s__cache_open(&c, f->dir, &o, NULL), S3S_EINVAL);
}

static void test_claim_timeout(void **state)
{
    fx *f = *state;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "t", ETAG, 10);
    s3s__cache_writer *w1 = NULL, *w2 = NULL;
    s3s__cache_block b;
    assert_int_equal(s3s__cache_claim(e, 0, 0, &w1, &b, NULL), 0);
    assert_non_null(w1);
    /* A second claim (another thread would do the same) waits, then gives up. */
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_int_equal(s3s__cache_claim(e, 0, 30, &w2, &b, &eb), S3S_ETIMEDOUT);
    assert_null(w2);
    assert_non_null(strstr(eb.msg, "still being fetched"));
    s3s__cache_stats st;
    s3s__cache_stats_get(c, &st, 0);
    assert_int_equal(st.claim_waits, 1);
    assert_int_equal(st.claim_timeouts, 1);
    assert_int_equal(st.stale_claims, 0);
    s3s__cache_writer_abort(w1);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

/* Sets a block's LRU time (its mtime) to a given second. */
static void set_age(const char *path, time_t t)
{
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void test_lru_eviction(void **state)
{
    fx *f = *state;
    /* Room for about 10 one-block objects. */
    uint64_t per = BS + S3S__CACHE_TRAILER + 64;
    f->o.max_bytes = 10 * per + per / 2;
    f->o.rescan_bytes = 1ull << 40; /* only the limit triggers a walk */
    f->o.low_water_pct = 100;
    f->o.touch_interval_s = 0;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e[10];
    char key[32];
    time_t base = time(NULL) - 10000;
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "o%d", i);
        e[i] = s3s_test_cache_entry_open(c, key, ETAG, BS);
        put_block(e[i], 0, (unsigned)i);
        char *p = block_file(e[i], 0, f->dir);
        set_age(p, base + i * 10); /* o0 oldest ... o9 newest */
        free(p);
    }
    s3s__cache_stats st;
    s3s__cache_stats_get(c, &st, 1);
    assert_int_equal(st.evictions, 0);
    /* Use o0 and o1: now they are the most recent. */
    s3s__cache_block b;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s3s__cache_lookup(e[i], 0, &b, NULL), 0);
        s3s__cache_block_release(&b);
    }
    /* Three more objects push the three least recent (o2, o3, o4) out. */
    for (int i = 10; i < 13; i++) {
        snprintf(key, sizeof(key), "o%d", i);
        s3s__cache_entry *x = s3s_test_cache_entry_open(c, key, ETAG, BS);
        put_block(x, 0, (unsigned)i);
        s3s__cache_entry_close(x);
    }
    s3s__cache_stats_get(c, &st, 1);
    assert_true(st.evictions >= 3);
    assert_true(st.used_bytes <= f->o.max_bytes);
    for (int i = 0; i < 10; i++) {
        int want = (i >= 2 && i < 2 + (int)st.evictions) ? S3S_ENOTFOUND : 0;
        int rc = s3s__cache_lookup(e[i], 0, &b, NULL);
        if (rc != want)
            fail_msg("o%d: got %d want %d (evictions %llu)", i, rc, want,
                     (unsigned long long)st.evictions);
        s3s__cache_block_release(&b);
        s3s__cache_entry_close(e[i]);
    }
    /* Explicit eviction to zero empties the folder, entry files included. */
    assert_int_equal(s3s__cache_evict(c, 0, NULL), 0);
    s3s__cache_stats_get(c, &st, 1);
    assert_int_equal(st.used_bytes, 0);
    s3s__cache_inv_item *inv = NULL;
    size_t n = 1;
    assert_int_equal(s3s__cache_inventory(c, &inv, &n, NULL), 0);
    assert_int_equal(n, 0);
    s3s__cache_inventory_free(inv, n);
    s3s__cache_close(c);
}

static void test_evict_while_reading(void **state)
{
    fx *f = *state;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "r", ETAG, 2 * BS);
    put_block(e, 0, 5);
    put_block(e, 1, 5);
    s3s__cache_block b;
    assert_int_equal(s3s__cache_lookup(e, 1, &b, NULL), 0);

    /* Another process evicts everything while we hold block 1 open. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        s3s__cache *c2 = NULL;
        int rc = s3s__cache_open(&c2, f->dir, &f->o, NULL);
        if (rc == 0)
            rc = s3s__cache_evict(c2, 0, NULL);
        s3s__cache_close(c2);
        _exit(rc == 0 ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *p = block_file(e, 1, f->dir);
    struct stat st;
    assert_int_equal(stat(p, &st), -1); /* gone from the folder */
    free(p);
    assert_true(block_ok(&b, 1, 5)); /* the reader still reads every byte */
    s3s__cache_block_release(&b);
    s3s__cache_block b2;
    assert_int_equal(s3s__cache_lookup(e, 1, &b2, NULL), S3S_ENOTFOUND);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

/* Several processes race for the same block: exactly one fetches it, all
 * others wait and read the same bytes. Each child reports 'W' (wrote) or
 * 'R' (read a good copy) through a pipe. Every child says "about to claim"
 * on a third pipe just before it claims; the winner holds its claim until it
 * has heard all of them (and a little longer), so the others really wait
 * however loaded the machine is. */
static void test_processes_race_for_a_block(void **state)
{
    fx *f = *state;
    enum { NPROC = 4 };
    int go[2], rep[2], ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(rep), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] != 0)
            continue;
        close(go[1]);
        close(rep[0]);
        char ch;
        char res = 'E';
        if (read(go[0], &ch, 1) == 1) { /* all start together */
            s3s__cache *c = NULL;
            s3s__cache_entry *e = NULL;
            s3s__cache_id id = {"bkt", "race", ETAG, 3 * BS / 2};
            s3s__cache_writer *w = NULL;
            s3s__cache_block b = {-1, 0, 0};
            if (s3s__cache_open(&c, f->dir, &f->o, NULL) == 0 &&
                s3s__cache_entry_open(c, &id, &e, NULL) == 0 && write(ready[1], "c", 1) == 1 &&
                s3s__cache_claim(e, 1, 60000, &w, &b, NULL) == 0) {
                if (w != NULL) {
                    uint8_t buf[BS / 2];
                    for (size_t k = 0; k < sizeof(buf); k++)
                        buf[k] = byte_at(BS + k, 11);
                    char rc_ch;
                    for (int heard = 0; heard < NPROC && read(ready[0], &rc_ch, 1) == 1;)
                        heard++;
                    usleep(200 * 1000);
                    int rc = s3s__cache_writer_write(w, buf, BS / 4, NULL);
                    usleep(100 * 1000);
                    if (rc == 0)
                        rc = s3s__cache_writer_write(w, buf + BS / 4, BS / 4, NULL);
                    if (rc == 0 && s3s__cache_writer_commit(w, NULL, NULL) == 0)
                        res = 'W';
                } else if (block_ok(&b, 1, 11)) {
                    s3s__cache_stats st;
                    s3s__cache_stats_get(c, &st, 0);
                    res = st.claim_waits == 1 ? 'R' : 'r'; /* 'r': came after the commit */
                }
            }
            s3s__cache_block_release(&b);
            s3s__cache_entry_close(e);
            s3s__cache_close(c);
        }
        if (write(rep[1], &res, 1) != 1)
            _exit(2);
        _exit(0);
    }
    close(go[0]);
    close(rep[1]);
    close(ready[0]);
    close(ready[1]);
    char start[NPROC];
    memset(start, 'g', sizeof(start));
    assert_int_equal(write(go[1], start, NPROC), NPROC);
    close(go[1]);
    int writers = 0, readers = 0, waiters = 0;
    for (int i = 0; i < NPROC; i++) {
        char ch = 0;
        assert_int_equal(read(rep[0], &ch, 1), 1);
        writers += ch == 'W';
        readers += ch == 'R' || ch == 'r';
        waiters += ch == 'R';
    }
    assert_true(waiters >= 1);
    close(rep[0]);
    for (int i = 0; i < NPROC; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
    }
    assert_int_equal(writers, 1);
    assert_int_equal(readers, NPROC - 1);
}

/* A fetcher killed with SIGKILL in the middle of a block: its claim does not
 * block anyone, its half-written bytes are never served, and its temp file
 * is cleaned once old. */
static void test_killed_fetcher_claim_recovered(void **state)
{
    fx *f = *state;
    int rep[2];
    assert_int_equal(pipe(rep), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(rep[0]);
        s3s__cache *c = NULL;
        s3s__cache_entry *e = NULL;
        s3s__cache_id id = {"bkt", "killed", ETAG, BS};
        s3s__cache_writer *w = NULL;
        s3s__cache_block b;
        uint8_t buf[BS / 2] = {1};
        if (s3s__cache_open(&c, f->dir, &f->o, NULL) != 0 ||
            s3s__cache_entry_open(c, &id, &e, NULL) != 0 ||
            s3s__cache_claim(e, 0, 0, &w, &b, NULL) != 0 || w == NULL ||
            s3s__cache_writer_write(w, buf, sizeof(buf), NULL) != 0)
            _exit(1);
        if (write(rep[1], "c", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(rep[1]);
    char ch = 0;
    assert_int_equal(read(rep[0], &ch, 1), 1);
    close(rep[0]);
    {
        /* While the fetcher lives, its claim holds. */
        s3s__cache *c0 = s3s_test_cache_open(f);
        s3s__cache_entry *e0 = s3s_test_cache_entry_open(c0, "killed", ETAG, BS);
        s3s__cache_writer *w0 = NULL;
        s3s__cache_block b0;
        assert_int_equal(s3s__cache_claim(e0, 0, 0, &w0, &b0, NULL), S3S_ETIMEDOUT);
        s3s__cache_entry_close(e0);
        s3s__cache_close(c0);
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);

    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "killed", ETAG, BS);
    /* s3s_test_cache_open left the young temp alone (its writer might be alive). */
    char tmpdir[4096];
    snprintf(tmpdir, sizeof(tmpdir), "%s/%s/tmp", f->dir, S3S__CACHE_SUBDIR);
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    struct dirent *de;
    int temps = 0;
    char tname[8192] = "";
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        temps++;
        snprintf(tname, sizeof(tname), "%s/%s", tmpdir, de->d_name);
    }
    closedir(d);
    /* An unnamed (O_TMPFILE) temp vanished with its writer; a named one
     * (file systems without O_TMPFILE) is still there. Either way one at most. */
    assert_true(temps <= 1);
    if (temps == 0) {
        /* Make one as a dead writer of the named kind would have left it. */
        snprintf(tname, sizeof(tname), "%s/deadbeef.0.%d.0", tmpdir, (int)pid);
        int tfd = open(tname, O_WRONLY | O_CREAT | O_EXCL, 0644);
        assert_true(tfd >= 0);
        close(tfd);
    }
    s3s__cache_block b;
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), S3S_ENOTFOUND);
    s3s__cache_writer *w = NULL;
    assert_int_equal(s3s__cache_claim(e, 0, 2000, &w, &b, NULL), 0);
    assert_non_null(w); /* at once: the kernel dropped the dead one's lock */
    s3s__cache_writer_abort(w);
    put_block(e, 0, 2);
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), 0);
    assert_true(block_ok(&b, 0, 2));
    s3s__cache_block_release(&b);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);

    /* Once old, the dead writer's temp is removed at the next open. */
    set_age(tname, time(NULL) - 3600);
    c = s3s_test_cache_open(f);
    struct stat st;
    assert_int_equal(stat(tname, &st), -1);
    s3s__cache_close(c);
}

/* The case the kernel cannot fix: the fetcher forked a child (which inherits
 * the locked fd) and died. The claim names a dead pid, so it is taken over. */
static void test_claim_held_by_orphan_is_taken_over(void **state)
{
    fx *f = *state;
    int rep[2];
    assert_int_equal(pipe(rep), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(rep[0]);
        s3s__cache *c = NULL;
        s3s__cache_entry *e = NULL;
        s3s__cache_id id = {"bkt", "orphan", ETAG, 100};
        s3s__cache_writer *w = NULL;
        s3s__cache_block b;
        if (s3s__cache_open(&c, f->dir, &f->o, NULL) != 0 ||
            s3s__cache_entry_open(c, &id, &e, NULL) != 0 ||
            s3s__cache_claim(e, 0, 0, &w, &b, NULL) != 0 || w == NULL)
            _exit(1);
        pid_t gc = fork(); /* keeps the claim's fd open, and sleeps */
        if (gc == 0) {
            close(rep[1]);
            for (;;)
                pause();
        }
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "%ld\n", (long)gc);
        if (write(rep[1], msg, (size_t)n) != n)
            _exit(1);
        _exit(0); /* dies holding the claim */
    }
    close(rep[1]);
    char msg[32] = {0};
    assert_true(read(rep[0], msg, sizeof(msg) - 1) > 0);
    close(rep[0]);
    pid_t gc = (pid_t)atol(msg);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "orphan", ETAG, 100);
    s3s__cache_writer *w = NULL;
    s3s__cache_block b;
    int rc = s3s__cache_claim(e, 0, 10000, &w, &b, NULL);
    kill(gc, SIGKILL);
    assert_int_equal(rc, 0);
    assert_non_null(w);
    s3s__cache_writer_abort(w);
    s3s__cache_stats st;
    s3s__cache_stats_get(c, &st, 0);
    assert_int_equal(st.stale_claims, 1);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

static void test_two_handles_one_process(void **state)
{
    fx *f = *state;
    s3s__cache *a = s3s_test_cache_open(f), *b = s3s_test_cache_open(f);
    s3s__cache_entry *ea = s3s_test_cache_entry_open(a, "shared", ETAG, BS),
                     *eb2 = s3s_test_cache_entry_open(b, "shared", ETAG, BS);
    put_block(ea, 0, 4);
    s3s__cache_block blk;
    assert_int_equal(s3s__cache_lookup(eb2, 0, &blk, NULL), 0);
    assert_true(block_ok(&blk, 0, 4));
    s3s__cache_block_release(&blk);
    s3s__cache_entry_close(ea);
    s3s__cache_entry_close(eb2);
    s3s__cache_close(a);
    s3s__cache_close(b);
}

typedef struct race_arg {
    s3s__cache_entry *e;
    char result; /* 'W' wrote, 'R' read a good copy, 'E' error */
} race_arg;

static void *race_thread(void *p)
{
    race_arg *a = p;
    s3s__cache_writer *w = NULL;
    s3s__cache_block b;
    a->result = 'E';
    if (s3s__cache_claim(a->e, 0, 20000, &w, &b, NULL) != 0)
        return NULL;
    if (w != NULL) {
        uint8_t buf[BS];
        for (size_t k = 0; k < BS; k++)
            buf[k] = byte_at(k, 21);
        usleep(100 * 1000);
        if (s3s__cache_writer_write(w, buf, BS, NULL) == 0 &&
            s3s__cache_writer_commit(w, NULL, NULL) == 0)
            a->result = 'W';
        else
            s3s__cache_writer_abort(w);
    } else {
        a->result = block_ok(&b, 0, 21) ? 'R' : 'E';
        s3s__cache_block_release(&b);
    }
    return NULL;
}

/* Threads of one process sharing one handle and one entry behave like
 * processes: one fetches, the others wait for it. */
static void test_threads_race_for_a_block(void **state)
{
    fx *f = *state;
    enum { NT = 4 };
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "threads", ETAG, BS);
    pthread_t th[NT];
    race_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i].e = e;
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &args[i]), 0);
    }
    int writers = 0, readers = 0;
    for (int i = 0; i < NT; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        writers += args[i].result == 'W';
        readers += args[i].result == 'R';
    }
    assert_int_equal(writers, 1);
    assert_int_equal(readers, NT - 1);
    s3s__cache_stats st;
    s3s__cache_stats_get(c, &st, 0);
    assert_int_equal(st.commits, 1);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

/* The entry file removed under an open entry (a walk drops entry files left
 * without blocks) comes back with the next block, so the inventory lists it. */
static void test_entry_file_comes_back(void **state)
{
    fx *f = *state;
    char nested[4096];
    snprintf(nested, sizeof(nested), "%s/a/b/c", f->dir);
    char *saved = f->dir;
    f->dir = nested; /* parents are created */
    s3s__cache *c = s3s_test_cache_open(f);
    f->dir = saved;
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "late", ETAG, 10);
    char path[8192];
    const char *h = s3s__cache_entry_hash(e);
    snprintf(path, sizeof(path), "%s/%s/%.2s/%s.m", nested, S3S__CACHE_SUBDIR, h, h);
    assert_int_equal(unlink(path), 0);
    put_block(e, 0, 1);
    s3s__cache_inv_item *inv = NULL;
    size_t n = 0;
    assert_int_equal(s3s__cache_inventory(c, &inv, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(inv[0].key, "late");
    assert_true(inv[0].complete);
    s3s__cache_inventory_free(inv, n);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

static void test_fsync_option(void **state)
{
    fx *f = *state;
    f->o.fsync = 1;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "synced", ETAG, BS + 1);
    put_block(e, 0, 6);
    put_block(e, 1, 6);
    s3s__cache_block b;
    assert_int_equal(s3s__cache_lookup(e, 1, &b, NULL), 0);
    assert_true(block_ok(&b, 1, 6));
    s3s__cache_block_release(&b);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

/* The free-space rule lowers the limit: asking to keep 90% of the file
 * system free, on a file system with less than that free, leaves no room. */
static void test_min_free_lowers_limit(void **state)
{
    fx *f = *state;
    struct statvfs v;
    assert_int_equal(statvfs(f->dir, &v), 0);
    if ((double)v.f_bavail >= 0.85 * (double)v.f_blocks)
        skip(); /* an almost empty file system: the rule cannot bite */
    f->o.min_free_pct = 90;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "nofree", ETAG, 100);
    put_block(e, 0, 1); /* the walk after the commit evicts it again */
    s3s__cache_stats st;
    s3s__cache_stats_get(c, &st, 1);
    assert_int_equal(st.limit_bytes, 0);
    assert_int_equal(st.used_bytes, 0);
    assert_true(st.evictions >= 1);
    s3s__cache_block b;
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), S3S_ENOTFOUND);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

/* A claim file nobody holds (its fetcher died) is removed by a walk; one
 * that is held is left alone. */
static void test_walk_removes_stale_claim_files(void **state)
{
    fx *f = *state;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "claims", ETAG, 2 * BS);
    put_block(e, 0, 1); /* makes the fan-out folder */
    char *p0 = block_file(e, 0, f->dir), *p1 = block_file(e, 1, f->dir);
    char stale[4200], held[4200];
    snprintf(stale, sizeof(stale), "%s.lock", p0);
    snprintf(held, sizeof(held), "%s.lock", p1);
    int fd1 = open(stale, O_RDWR | O_CREAT, 0644);
    int fd2 = open(held, O_RDWR | O_CREAT, 0644);
    assert_true(fd1 >= 0 && fd2 >= 0);
    close(fd1);
    assert_int_equal(flock(fd2, LOCK_EX), 0);
    s3s__cache_stats st;
    s3s__cache_stats_get(c, &st, 1);
    struct stat sb;
    assert_int_equal(stat(stale, &sb), -1);
    assert_int_equal(stat(held, &sb), 0);
    close(fd2);
    free(p0);
    free(p1);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

static void check_bytes(int fd, uint32_t idx, uint64_t from, uint64_t len)
{
    for (uint64_t off = from; off < len; off += 997) {
        uint8_t x;
        assert_int_equal(pread(fd, &x, 1, (off_t)off), 1);
        assert_int_equal(x, byte_at((uint64_t)idx * BS + off, 1));
    }
}

/* A read resuming mid-block caches only the bytes it fetched (a partial
 * block); a claim from at or after its start is a hit; one from before it
 * fetches only the missing head (the partial block hands over its tail) and
 * the block becomes whole. A whole-block lookup never takes a partial block
 * for the block, and never deletes it. */
static void test_partial_blocks(void **state)
{
    fx *f = *state;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "part", ETAG, 3 * BS / 2);
    s3s__cache_writer *w = NULL;
    s3s__cache_block b;
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    /* a resume at 40000: the block's bytes [40000, BS) */
    assert_int_equal(s3s__cache_claim_from(e, 0, 40000, 1000, &w, &b, &eb), 0);
    assert_non_null(w);
    assert_int_equal(b.fd, -1);
    write_from(w, 0, 40000, BS, 1);
    assert_int_equal(s3s__cache_writer_commit(w, &b, &eb), 0);
    assert_int_equal(b.skip, 40000);
    s3s__cache_block_release(&b);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%.2s/%s.0", f->dir, S3S__CACHE_SUBDIR,
             s3s__cache_entry_hash(e), s3s__cache_entry_hash(e));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, BS + S3S__CACHE_TRAILER);
    /* not the whole block, and not damaged */
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), S3S_ENOTFOUND);
    assert_int_equal(stat(path, &st), 0);
    /* later starts are hits, at the block's offsets */
    for (uint64_t from = 40000; from <= 50000; from += 10000) {
        w = NULL;
        assert_int_equal(s3s__cache_claim_from(e, 0, from, 1000, &w, &b, &eb), 0);
        assert_null(w);
        assert_int_equal(b.skip, 40000);
        check_bytes(b.fd, 0, from, BS);
        s3s__cache_block_release(&b);
    }
    /* an earlier start: a writer, and the partial block as its tail */
    assert_int_equal(s3s__cache_claim_from(e, 0, 1000, 1000, &w, &b, &eb), 0);
    assert_non_null(w);
    assert_true(b.fd >= 0);
    assert_int_equal(b.skip, 40000);
    check_bytes(b.fd, 0, 40000, BS);
    s3s__cache_block_release(&b);
    write_from(w, 0, 1000, BS, 1);
    assert_int_equal(s3s__cache_writer_commit(w, NULL, &eb), 0);
    /* too few bytes: refused */
    assert_int_equal(s3s__cache_claim_from(e, 0, 0, 1000, &w, &b, &eb), 0);
    assert_non_null(w);
    assert_int_equal(b.skip, 1000);
    s3s__cache_block_release(&b);
    write_from(w, 0, 0, 500, 1);
    assert_int_equal(s3s__cache_writer_commit(w, NULL, &eb), S3S_ESHORT);
    /* the whole block */
    assert_int_equal(s3s__cache_claim_from(e, 0, 0, 1000, &w, &b, &eb), 0);
    assert_non_null(w);
    s3s__cache_block_release(&b);
    write_from(w, 0, 0, BS, 1);
    assert_int_equal(s3s__cache_writer_commit(w, NULL, &eb), 0);
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), 0);
    assert_int_equal(b.skip, 0);
    check_bytes(b.fd, 0, 0, BS);
    s3s__cache_block_release(&b);
    /* from past the end is the whole block (the last, short one) */
    assert_int_equal(s3s__cache_claim_from(e, 1, BS, 1000, &w, &b, &eb), 0);
    assert_non_null(w);
    write_from(w, 1, 0, BS / 2, 1);
    assert_int_equal(s3s__cache_writer_commit(w, &b, &eb), 0);
    assert_int_equal(b.skip, 0);
    s3s__cache_block_release(&b);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

/* A partial block whose bytes were changed on disk fails its CRC: deleted,
 * a miss. */
static void test_partial_block_damaged(void **state)
{
    fx *f = *state;
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "partbad", ETAG, BS);
    s3s__cache_writer *w = NULL;
    s3s__cache_block b;
    assert_int_equal(s3s__cache_claim_from(e, 0, 8192, 1000, &w, &b, NULL), 0);
    assert_non_null(w);
    write_from(w, 0, 8192, BS, 1);
    assert_int_equal(s3s__cache_writer_commit(w, NULL, NULL), 0);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%.2s/%s.0", f->dir, S3S__CACHE_SUBDIR,
             s3s__cache_entry_hash(e), s3s__cache_entry_hash(e));
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t x = 0;
    assert_int_equal(pread(fd, &x, 1, 9000), 1);
    x ^= 0x40;
    assert_int_equal(pwrite(fd, &x, 1, 9000), 1);
    close(fd);
    c = s3s_test_cache_open(f);
    e = s3s_test_cache_entry_open(c, "partbad", ETAG, BS);
    w = NULL;
    assert_int_equal(s3s__cache_claim_from(e, 0, 8192, 1000, &w, &b, NULL), 0);
    assert_non_null(w); /* a miss: fetch again */
    assert_int_equal(b.fd, -1);
    s3s__cache_writer_abort(w);
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    s3s__cache_stats cs;
    s3s__cache_stats_get(c, &cs, 0);
    assert_int_equal(cs.corrupt, 1);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_miss_then_hit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_and_inventory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_blocks_not_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_entry_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evict_while_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_processes_race_for_a_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_fetcher_claim_recovered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_held_by_orphan_is_taken_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_one_process, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_race_for_a_block, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entry_file_comes_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_min_free_lowers_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk_removes_stale_claim_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_block_damaged, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
