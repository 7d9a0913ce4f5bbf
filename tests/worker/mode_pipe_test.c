/* mode_pipe_test.c: Pipe mode against s3rver, read by a child process: two
 * epochs through <root>/train_0 and train_1, plain, RecordIO-framed, gzip
 * (decompressed), gzip + RecordIO; a reader that closes early (no SIGPIPE
 * death, the next epoch still served); stop before a reader comes. */
#include "tests/support/s3fixture.h"

#include "common/crypto/sha256.h"
#include "s3shard/dataset.h"
#include "s3shard/error.h"
#include "s3shard/s3.h"
#include "s3shard/worker.h"
#include "worker/mode_pipe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define BUCKET "ptest"
#define NP 4

static s3s_test_s3rver srv;
static const size_t sizes[NP] = {100000, 5, 0, 250003};
static uint8_t *plain[NP];

static void s3opts(s3s_s3_opts *o)
{
    s3s_test_s3fix_opts(&srv, o);
}

static uint8_t *gzip_of(const uint8_t *p, size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, n) + 64;
    uint8_t *out = malloc(cap);
    z.next_in = (uint8_t *)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static int setup(void **state)
{
    (void)state;
    static const char *const buckets[] = {BUCKET, NULL};
    if (s3s_test_s3fix_start(&srv, buckets) != 0)
        return -1;
    for (int i = 0; i < NP; i++) {
        plain[i] = malloc(sizes[i] + 1);
        for (size_t k = 0; k < sizes[i]; k++)
            plain[i][k] = (uint8_t)((k * 31 + (size_t)i) % 251); /* compressible-ish */
        char key[64];
        snprintf(key, sizeof(key), "plain/p%d", i);
        if (s3s_test_s3fix_put(&srv, BUCKET, key, plain[i], sizes[i]) != 0)
            return -1;
        size_t gn = 0;
        uint8_t *g = gzip_of(plain[i], sizes[i], &gn);
        snprintf(key, sizeof(key), "gz/p%d.gz", i);
        int rc = s3s_test_s3fix_put(&srv, BUCKET, key, g, gn);
        free(g);
        if (rc != 0)
            return -1;
    }
    if (s3s_test_s3fix_put(&srv, BUCKET, "bad/x.gz", "not gzip at all", 15) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    s3s_test_s3rver_stop(&srv);
    for (int i = 0; i < NP; i++)
        free(plain[i]);
    return 0;
}

static s3s_snapshot *snapshot(const char *prefix)
{
    char uri[128];
    snprintf(uri, sizeof(uri), "s3://%s/%s", BUCKET, prefix);
    return s3s_test_s3fix_snapshot(&srv, uri, S3S_DATA_S3_PREFIX, NULL);
}

/* expected stream of one epoch: the objects in key order, maybe framed */
static uint8_t *expected(int record_io, size_t *out_n)
{
    size_t cap = 0;
    for (int i = 0; i < NP; i++)
        cap += sizes[i] + 16;
    uint8_t *e = malloc(cap), *p = e;
    for (int i = 0; i < NP; i++) {
        if (record_io) {
            uint32_t h[2] = {0xced7230au, (uint32_t)sizes[i]}; /* little-endian host */
            memcpy(p, h, 8);
            p += 8;
        }
        memcpy(p, plain[i], sizes[i]);
        p += sizes[i];
        if (record_io)
            while ((size_t)(p - e) % 4 != 0)
                *p++ = 0;
    }
    *out_n = (size_t)(p - e);
    return e;
}

/* child: read root/train_E for E in 0..1; write the SHA-256 of each epoch's
 * bytes (and the count) to result; with early != 0, read only 10 bytes of
 * epoch 0 and close. */
static void child_reader(const char *root, const char *result, int early)
{
    FILE *res = fopen(result, "w");
    for (int e = 0; e < 2; e++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/train_%d", root, e);
        int fd = -1;
        /* After end of file on train_0, train_1 must exist at once (the
         * writer makes it before closing train_0): one look, no waiting.
         * After an early close the writer first skips the rest of epoch 0. */
        int tries_max = (e == 0 || early) ? 3000 : 1;
        for (int tries = 0; tries < tries_max && fd < 0; tries++) {
            struct stat st;
            if (stat(path, &st) == 0 && S_ISFIFO(st.st_mode))
                fd = open(path, O_RDONLY);
            if (fd < 0) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        if (fd < 0)
            _exit(e == 0 ? 3 : 4);
        s3s__sha256_ctx c;
        s3s__sha256_init(&c);
        uint8_t buf[8192];
        size_t total = 0;
        for (;;) {
            size_t want = (early && e == 0) ? 10 - total : sizeof(buf);
            if (want == 0)
                break;
            ssize_t n = read(fd, buf, want);
            if (n == 0 && e + 1 < 2) {
                /* end of file: the next FIFO must be there this instant */
                char next[512];
                struct stat st;
                snprintf(next, sizeof(next), "%s/train_%d", root, e + 1);
                if (stat(next, &st) != 0 || !S_ISFIFO(st.st_mode))
                    _exit(5);
            }
            if (n <= 0)
                break;
            s3s__sha256_update(&c, buf, (size_t)n);
            total += (size_t)n;
        }
        close(fd);
        uint8_t h[32];
        s3s__sha256_final(&c, h);
        s3s__sha256_fini(&c);
        fprintf(res, "%zu ", total);
        for (int k = 0; k < 32; k++)
            fprintf(res, "%02x", h[k]);
        fprintf(res, "\n");
    }
    fclose(res);
    _exit(0);
}

static void run_case(const char *prefix, int record_io, int gzip, int early)
{
    char *root = s3s_test_tmpdir("pmode");
    char result[512];
    snprintf(result, sizeof(result), "%s/result.txt", root);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_reader(root, result, early);
    s3s_snapshot *snap = snapshot(prefix);
    s3s_worker_opts wo;
    s3s_worker_opts_init(&wo);
    s3opts(&wo.s3);
    wo.snapshot = snap;
    wo.plan.shard_target_bytes = 0;
    wo.epochs = 2;
    wo.block_size = 64 * 1024;
    wo.connections = 3;
    s3s__pipe_mode_opts po = {.wopts = &wo, .root = root, .channel_name = "train"};
    po.record_io = record_io;
    po.gzip = gzip;
    s3s__pipe_mode_result res;
    s3s__errbuf eb = {{0}};
    int rc = s3s__mode_pipe_run(&po, &res, &eb);
    if (rc != 0)
        fail_msg("pipe: %s", eb.msg);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    size_t en = 0;
    uint8_t *exp = expected(record_io, &en);
    uint8_t h[32];
    s3s__sha256(exp, en, h);
    char hex[65];
    for (int k = 0; k < 32; k++)
        snprintf(hex + 2 * k, 3, "%02x", h[k]);
    FILE *f = fopen(result, "r");
    assert_non_null(f);
    for (int e = 0; e < 2; e++) {
        size_t n = 0;
        char got[65] = {0};
        assert_int_equal(fscanf(f, "%zu %64s", &n, got), 2);
        if (early && e == 0) {
            assert_int_equal(n, 10);
            continue;
        }
        assert_int_equal(n, en);
        assert_string_equal(got, hex);
    }
    fclose(f);
    assert_int_equal(res.early_closes, early ? 1 : 0);
    assert_int_equal(res.epochs, early ? 1 : 2);
    /* the next epoch's FIFO replaced the first: only train_1 is left */
    char p0[512];
    snprintf(p0, sizeof(p0), "%s/train_0", root);
    struct stat st;
    assert_int_not_equal(stat(p0, &st), 0);
    free(exp);
    s3s_snapshot_destroy(snap);
    s3s_test_rmtree(root);
    free(root);
}

static void test_plain(void **state)
{
    (void)state;
    run_case("plain/", 0, 0, 0);
}

static void test_recordio(void **state)
{
    (void)state;
    run_case("plain/", 1, 0, 0);
}

static void test_gzip(void **state)
{
    (void)state;
    run_case("gz/", 0, 1, 0);
}

static void test_gzip_recordio(void **state)
{
    (void)state;
    run_case("gz/", 1, 1, 0);
}

static void test_early_close(void **state)
{
    (void)state;
    run_case("plain/", 0, 0, 1);
}

static volatile sig_atomic_t stop_flag;

static void test_bad_gzip_and_stop(void **state)
{
    (void)state;
    char *root = s3s_test_tmpdir("pmode2");
    s3s_snapshot *snap = snapshot("bad/");
    s3s_worker_opts wo;
    s3s_worker_opts_init(&wo);
    s3opts(&wo.s3);
    wo.snapshot = snap;
    wo.connections = 2;
    /* a corrupt gzip object fails naming the key (a reader is there) */
    pid_t pid = fork();
    if (pid == 0) {
        char path[512];
        snprintf(path, sizeof(path), "%s/train_0", root);
        for (int i = 0; i < 3000; i++) {
            int fd = open(path, O_RDONLY | O_NONBLOCK);
            if (fd >= 0) {
                char b[64];
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
                while (read(fd, b, sizeof(b)) > 0)
                    ;
                close(fd);
                _exit(0);
            }
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        _exit(1);
    }
    s3s__pipe_mode_opts po = {.wopts = &wo, .root = root, .channel_name = "train"};
    po.record_io = 0;
    po.gzip = 1;
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__mode_pipe_run(&po, NULL, &eb), S3S_EPARSE);
    assert_non_null(strstr(eb.msg, "bad/x.gz"));
    int status;
    waitpid(pid, &status, 0);
    /* stop set while waiting for a reader that never comes */
    stop_flag = 1;
    po.stop = &stop_flag;
    po.gzip = 0;
    assert_int_equal(s3s__mode_pipe_run(&po, NULL, &eb), S3S_EINTERRUPTED);
    s3s_snapshot_destroy(snap);
    s3s_test_rmtree(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),       cmocka_unit_test(test_recordio),
        cmocka_unit_test(test_gzip),        cmocka_unit_test(test_gzip_recordio),
        cmocka_unit_test(test_early_close), cmocka_unit_test(test_bad_gzip_and_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
