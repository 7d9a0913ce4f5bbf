/* mode_file_test.c: File mode end to end against s3rver: the share laid out
 * under <root>/<channel>/ with key paths relative to the prefix, bytes equal
 * (SHA-256), a restart that skips complete files and re-fetches a damaged
 * one, a rank's share of two, and a path-traversal key refused with an error
 * naming the key before anything is written. */
#include "tests/support/s3fixture.h"

#include "common/crypto/sha256.h"
#include "s3shard/dataset.h"
#include "s3shard/error.h"
#include "s3shard/s3.h"
#include "s3shard/worker.h"
#include "worker/mode_file.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define BUCKET "ftest"

static s3s_test_s3rver srv;

#define NF 5
static const char *const keys[NF] = {"ds/train/a.bin", "ds/train/sub/b.bin",
                                     "ds/train/sub/deep/c.bin", "ds/train/empty", "ds/train/z.bin"};
static const size_t sizes[NF] = {1000, 300000, 70000, 0, 65536};
static uint8_t *data[NF];

static void s3opts(s3s_s3_opts *o)
{
    s3s_test_s3fix_opts(&srv, o);
}

static int setup(void **state)
{
    (void)state;
    static const char *const buckets[] = {BUCKET, NULL};
    if (s3s_test_s3fix_start(&srv, buckets) != 0)
        return -1;
    for (int i = 0; i < NF; i++) {
        data[i] = malloc(sizes[i] + 1);
        for (size_t k = 0; k < sizes[i]; k++)
            data[i][k] = (uint8_t)(k * 7 + (size_t)i * 13 + (k >> 9));
        if (s3s_test_s3fix_put(&srv, BUCKET, keys[i], data[i], sizes[i]) != 0)
            return -1;
    }
    /* a folder marker, skipped */
    return s3s_test_s3fix_put(&srv, BUCKET, "ds/train/sub/", "", 0);
}

static int teardown(void **state)
{
    (void)state;
    s3s_test_s3rver_stop(&srv);
    for (int i = 0; i < NF; i++)
        free(data[i]);
    return 0;
}

static s3s_snapshot *snapshot(const char *uri, s3s_data_type type)
{
    return s3s_test_s3fix_snapshot(&srv, uri, type, NULL);
}

static void check_file(const char *root, const char *rel, int i)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/train/%s", root, rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("missing %s", path);
    uint8_t *buf = malloc(sizes[i] + 16);
    size_t n = fread(buf, 1, sizes[i] + 16, f);
    fclose(f);
    assert_int_equal(n, sizes[i]);
    uint8_t a[32], b[32];
    s3s__sha256(buf, n, a);
    s3s__sha256(data[i], sizes[i], b);
    assert_memory_equal(a, b, 32);
    free(buf);
}

static int run(const char *root, const s3s_snapshot *snap, uint32_t rank, uint32_t world,
               s3s__file_mode_result *res, s3s__errbuf *eb)
{
    s3s_worker_opts wo;
    s3s_worker_opts_init(&wo);
    s3opts(&wo.s3);
    wo.snapshot = snap;
    wo.block_size = 64 * 1024;
    wo.connections = 4;
    wo.rank = rank;
    wo.world_size = world;
    wo.plan.distribution = world > 1 ? S3S_DIST_SHARDED_BY_S3_KEY : S3S_DIST_FULLY_REPLICATED;
    wo.plan.shard_target_bytes = 0;
    s3s__file_mode_opts fo = {0};
    fo.wopts = &wo;
    fo.root = root;
    fo.channel_name = "train";
    fo.jobs = 3;
    fo.progress = 0;
    fo.log_interval_s = 1;
    return s3s__mode_file_materialize(&fo, res, eb);
}

static void test_end_to_end_and_restart(void **state)
{
    (void)state;
    char *root = s3s_test_tmpdir("fmode");
    s3s_snapshot *snap = snapshot("s3://" BUCKET "/ds/train/", S3S_DATA_S3_PREFIX);
    s3s__file_mode_result res;
    s3s__errbuf eb = {{0}};
    int rc = run(root, snap, 0, 1, &res, &eb);
    if (rc != 0)
        fail_msg("materialize: %s", eb.msg);
    assert_int_equal(res.files, NF);
    assert_int_equal(res.skipped_files, 0);
    for (int i = 0; i < NF; i++)
        check_file(root, keys[i] + strlen("ds/train/"), i);
    /* a restart: everything complete is skipped */
    assert_int_equal(run(root, snap, 0, 1, &res, &eb), 0);
    assert_int_equal(res.files, 0);
    assert_int_equal(res.skipped_files, NF);
    /* a damaged file (wrong size) and a file without its xattr (the sidecar
     * manifest then vouches for it) */
    char path[512];
    snprintf(path, sizeof(path), "%s/train/sub/b.bin", root);
    assert_int_equal(truncate(path, 10), 0);
    snprintf(path, sizeof(path), "%s/train/a.bin", root);
    (void)removexattr(path, "user.s3shard.etag");
    char cmd[600];
    assert_int_equal(run(root, snap, 0, 1, &res, &eb), 0);
    assert_int_equal(res.files, 1);
    assert_int_equal(res.skipped_files, NF - 1);
    check_file(root, "sub/b.bin", 1);
    /* no temp file left anywhere */
    snprintf(cmd, sizeof(cmd), "find %s -name '*s3shard-tmp*' | grep -q .", root);
    assert_int_not_equal(system(cmd), 0);
    s3s_snapshot_destroy(snap);
    s3s_test_rmtree(root);
    free(root);
}

static void test_shares(void **state)
{
    (void)state;
    char *root = s3s_test_tmpdir("fmode2");
    s3s_snapshot *snap = snapshot("s3://" BUCKET "/ds/train/", S3S_DATA_S3_PREFIX);
    s3s__file_mode_result r0, r1;
    s3s__errbuf eb = {{0}};
    char d0[512], d1[512];
    snprintf(d0, sizeof(d0), "%s/r0", root);
    snprintf(d1, sizeof(d1), "%s/r1", root);
    assert_int_equal(run(d0, snap, 0, 2, &r0, &eb), 0);
    assert_int_equal(run(d1, snap, 1, 2, &r1, &eb), 0);
    assert_int_equal(r0.files + r1.files, NF);
    assert_true(r0.files > 0 && r1.files > 0);
    s3s_snapshot_destroy(snap);
    s3s_test_rmtree(root);
    free(root);
}

static void test_traversal_refused(void **state)
{
    (void)state;
    char *root = s3s_test_tmpdir("fmode3");
    char mpath[512];
    snprintf(mpath, sizeof(mpath), "%s/manifest.json", root);
    FILE *f = fopen(mpath, "w");
    fprintf(f, "[{\"prefix\": \"s3://" BUCKET "/ds/train/\"}, \"a.bin\", \"../../../etc/x\"]");
    fclose(f);
    s3s_snapshot *snap = snapshot(mpath, S3S_DATA_MANIFEST);
    s3s__errbuf eb = {{0}};
    char out[512];
    snprintf(out, sizeof(out), "%s/data", root);
    assert_int_equal(run(out, snap, 0, 1, NULL, &eb), S3S_EUNSAFEKEY);
    assert_non_null(strstr(eb.msg, "../../../etc/x"));
    struct stat st;
    assert_int_not_equal(stat(out, &st), 0); /* nothing written */
    s3s_snapshot_destroy(snap);
    s3s_test_rmtree(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_to_end_and_restart),
        cmocka_unit_test(test_shares),
        cmocka_unit_test(test_traversal_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
