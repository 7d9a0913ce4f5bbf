/* cache_verify_test.c: the verification log (cache_verify.c) on real files:
 * a large block verified by one handle is served by the next without a CRC
 * pass, unless its file changed; small blocks are not logged; older boots'
 * logs are removed; a full log is cut and refilled. Each "handle" stands for
 * a process: a fresh s3s__cache handle has an empty verified set. */
#include "tests/support/cachefix.h"
#include "tests/support/testenv.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "s3shard/error.h"
#include "worker/cache/cache.h"
#include "worker/cache/cache_int.h"

#define BS (512u * 1024)
#define BIG (300u * 1024) /* one block, logged (>= S3S__CACHE_VLOG_MIN) */
#define SMALL (40u * 1000) /* one block, not logged */
#define ETAG "\"etag-v\""

typedef s3s_test_cachefix fx;

static int setup(void **state)
{
    *state = s3s_test_cachefix_create("cachev", BS);
    return 0;
}

static int teardown(void **state)
{
    return s3s_test_cachefix_teardown(state);
}

static uint8_t byte_at(uint64_t off)
{
    return (uint8_t)(((off + 1) * 0x9e3779b97f4a7c15ull) >> 56);
}

/* Writes the object key (one block of size bytes) through a fresh handle. */
static void put_object(fx *f, const char *key, uint64_t size)
{
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, key, ETAG, size);
    s3s__cache_writer *w = NULL;
    s3s__cache_block hit;
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_int_equal(s3s__cache_claim(e, 0, 1000, &w, &hit, &eb), 0);
    assert_non_null(w);
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    for (uint64_t i = 0; i < size; i++)
        buf[i] = byte_at(i);
    assert_int_equal(s3s__cache_writer_write(w, buf, size, &eb), 0);
    assert_int_equal(s3s__cache_writer_commit(w, NULL, &eb), 0);
    free(buf);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
}

/* Looks key's block up through a fresh handle: the lookup's result, and
 * the handle's counters; checks the bytes of a hit. */
static int lookup_fresh(fx *f, const char *key, uint64_t size, s3s__cache_stats *st)
{
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, key, ETAG, size);
    s3s__cache_block b;
    int rc = s3s__cache_lookup(e, 0, &b, NULL);
    if (rc == 0) {
        uint8_t *buf = malloc(size);
        assert_non_null(buf);
        assert_int_equal(pread(b.fd, buf, size, 0), (ssize_t)size);
        for (uint64_t i = 0; i < size; i++)
            if (buf[i] != byte_at(i))
                fail_msg("byte %llu of %s differs", (unsigned long long)i, key);
        free(buf);
        s3s__cache_block_release(&b);
    }
    s3s__cache_stats_get(c, st, 0);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
    return rc;
}

static char *block_file(fx *f, const char *key, uint64_t size)
{
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, key, ETAG, size);
    char *p = malloc(4096);
    assert_non_null(p);
    const char *h = s3s__cache_entry_hash(e);
    snprintf(p, 4096, "%s/%s/%.2s/%s.0", f->dir, S3S__CACHE_SUBDIR, h, h);
    s3s__cache_entry_close(e);
    s3s__cache_close(c);
    return p;
}

static void log_path(fx *f, char *out, size_t cap)
{
    char id[64] = {0};
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY);
    assert_true(fd >= 0);
    assert_true(read(fd, id, 36) == 36);
    close(fd);
    snprintf(out, cap, "%s/%s/verified/%s", f->dir, S3S__CACHE_SUBDIR, id);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static void test_large_block_verified_once_per_boot(void **state)
{
    fx *f = *state;
    put_object(f, "big", BIG);
    char lp[4096];
    log_path(f, lp, sizeof(lp));
    assert_int_equal(file_size(lp), 32); /* the writer's record */
    s3s__cache_stats st;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(lookup_fresh(f, "big", BIG, &st), 0);
        assert_int_equal(st.vlog_hits, 1); /* no CRC pass */
        assert_int_equal(st.corrupt, 0);
    }
}

static void test_changed_block_is_checked_again(void **state)
{
    fx *f = *state;
    put_object(f, "big", BIG);
    char *p = block_file(f, "big", BIG);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    uint8_t x = 0;
    assert_int_equal(pread(fd, &x, 1, 4321), 1);
    x ^= 0x40;
    assert_int_equal(pwrite(fd, &x, 1, 4321), 1); /* moves the ctime */
    close(fd);
    s3s__cache_stats st;
    assert_int_equal(lookup_fresh(f, "big", BIG, &st), S3S_ENOTFOUND);
    assert_int_equal(st.vlog_hits, 0);
    assert_int_equal(st.corrupt, 1);
    assert_int_equal(file_size(p), -1); /* deleted */
    free(p);
}

/* A touch (LRU time) moves the ctime; the toucher logs the new key, so the
 * next handle still needs no CRC. */
static void test_touch_keeps_block_verified(void **state)
{
    fx *f = *state;
    f->o.touch_interval_s = 0; /* every hit touches */
    put_object(f, "big", BIG);
    char *p = block_file(f, "big", BIG);
    s3s__cache_stats st;
    for (int i = 0; i < 3; i++) {
        struct stat before, after;
        assert_int_equal(stat(p, &before), 0);
        assert_int_equal(lookup_fresh(f, "big", BIG, &st), 0);
        assert_int_equal(stat(p, &after), 0);
        assert_true(before.st_ctim.tv_sec != after.st_ctim.tv_sec ||
                    before.st_ctim.tv_nsec != after.st_ctim.tv_nsec);
        assert_int_equal(st.vlog_hits, 1);
    }
    free(p);
}

static void test_small_block_not_logged(void **state)
{
    fx *f = *state;
    put_object(f, "small", SMALL);
    char lp[4096];
    log_path(f, lp, sizeof(lp));
    assert_int_equal(file_size(lp), 0);
    s3s__cache_stats st;
    assert_int_equal(lookup_fresh(f, "small", SMALL, &st), 0);
    assert_int_equal(st.vlog_hits, 0); /* checked by CRC */
    assert_int_equal(file_size(lp), 0);
}

static void test_other_boot_log_removed(void **state)
{
    fx *f = *state;
    put_object(f, "big", BIG);
    char old[4096], lp[4096];
    snprintf(old, sizeof(old), "%s/%s/verified/00000000-0000-0000-0000-000000000000", f->dir,
             S3S__CACHE_SUBDIR);
    log_path(f, lp, sizeof(lp));
    /* An earlier boot's log holding this very block's record. */
    char cmd[8300];
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", lp, old);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(unlink(lp), 0);
    s3s__cache_stats st;
    assert_int_equal(lookup_fresh(f, "big", BIG, &st), 0);
    assert_int_equal(file_size(old), -1);
    assert_int_equal(st.vlog_hits, 0); /* checked by CRC, then logged anew */
    assert_int_equal(file_size(lp), 32);
    assert_int_equal(lookup_fresh(f, "big", BIG, &st), 0);
    assert_int_equal(st.vlog_hits, 1);
}

/* A full log is cut to zero by the next writer and refilled; a handle that
 * had read it before the cut goes on serving (records lost to a cut only
 * cost a CRC pass). */
static void test_full_log_is_cut(void **state)
{
    fx *f = *state;
    put_object(f, "a", BIG);
    char lp[4096];
    log_path(f, lp, sizeof(lp));
    s3s__cache *c = s3s_test_cache_open(f); /* long-lived: reads the log before the cut */
    s3s__cache_entry *e = s3s_test_cache_entry_open(c, "a", ETAG, BIG);
    s3s__cache_block b;
    assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), 0);
    s3s__cache_block_release(&b);
    s3s__cache_entry_close(e);
    assert_int_equal(truncate(lp, S3S__CACHE_VLOG_MAX), 0);
    put_object(f, "b", BIG); /* cuts, then appends */
    assert_int_equal(file_size(lp), 32);
    put_object(f, "c", BIG);
    assert_int_equal(file_size(lp), 64);
    s3s__cache_stats st;
    assert_int_equal(lookup_fresh(f, "b", BIG, &st), 0);
    assert_int_equal(st.vlog_hits, 1);
    const char *keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        e = s3s_test_cache_entry_open(c, keys[i], ETAG, BIG);
        assert_int_equal(s3s__cache_lookup(e, 0, &b, NULL), 0);
        s3s__cache_block_release(&b);
        s3s__cache_entry_close(e);
    }
    s3s__cache_stats_get(c, &st, 0);
    assert_int_equal(st.corrupt, 0);
    s3s__cache_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large_block_verified_once_per_boot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_block_is_checked_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch_keeps_block_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_block_not_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_boot_log_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_log_is_cut, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
