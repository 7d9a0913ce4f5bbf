/* s3_source_test.c: integration on a real s3rver: an S3 prefix enumerated with
 * the parallel listing into a snapshot (past 1,000 keys, a prefix ending
 * mid-name), manifests and augmented manifests read from S3 with sizes from a
 * listing or HEADs, snapshots stored in and read back from S3, a plan of the
 * enumerated prefix, and `s3shard snapshot create` / `plan` against it. */
#include "tests/support/testenv.h"

#include "s3shard/dataset.h"
#include "s3shard/error.h"
#include "s3shard/s3.h"

#include <stdio.h>
#include <string.h>

#define BUCKET "dsdata"
#define NTRAIN 1100

static s3s_test_s3rver srv;
static s3s_s3 *s3;

static int setup(void **state)
{
    (void)state;
    static const char *const buckets[] = {BUCKET, NULL};
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    if (s3s_test_s3rver_start(&srv, buckets) != 0)
        return -1;
    s3s_s3_opts o;
    s3s_s3_opts_init(&o);
    o.endpoint = srv.endpoint;
    o.access_key_id = "S3RVER";
    o.secret_access_key = "S3RVER";
    o.region = "us-east-1";
    o.retry_base_ms = 10;
    if (s3s_s3_create(&s3, &o) != 0)
        return -1;
    char key[64], body[4096];
    memset(body, 'b', sizeof(body));
    for (int i = 0; i < NTRAIN; i++) {
        snprintf(key, sizeof(key), "ds/train/%04d.bin", i);
        if (s3s_s3_put(s3, BUCKET, key, body, (size_t)(i * 37 % 4000 + 1), NULL) != 0)
            return -1;
    }
    const char *extra[] = {"ds/trainer/a", "ds/trainer/b", "ds/test/x", "other/y"};
    for (int i = 0; i < 4; i++)
        if (s3s_s3_put(s3, BUCKET, extra[i], "xyz", 3, NULL) != 0)
            return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    s3s_s3_destroy(s3);
    s3s_test_s3rver_stop(&srv);
    return 0;
}

static void test_prefix_snapshot(void **state)
{
    (void)state;
    s3s_source_opts o;
    s3s_source_opts_init(&o);
    o.uri = "s3://" BUCKET "/ds/train/";
    o.s3 = s3;
    o.list_parallelism = 4;
    s3s_snapshot *snap = NULL;
    s3s_errinfo e = {0};
    assert_int_equal(s3s_snapshot_create(&snap, &o, &e), 0);
    assert_int_equal(s3s_snapshot_count(snap), NTRAIN);
    assert_string_equal(s3s_snapshot_bucket(snap), BUCKET);
    uint64_t total = 0;
    for (int i = 0; i < NTRAIN; i++) {
        s3s_entry ent;
        char want[64];
        snprintf(want, sizeof(want), "ds/train/%04d.bin", i);
        assert_int_equal(s3s_snapshot_entry(snap, (size_t)i, &ent), 0);
        assert_int_equal(ent.key_len, strlen(want));
        assert_memory_equal(ent.key, want, ent.key_len);
        assert_int_equal(ent.size, (uint64_t)(i * 37 % 4000 + 1));
        assert_int_equal(strlen(ent.etag), 32); /* an MD5 */
        total += ent.size;
    }
    assert_int_equal(s3s_snapshot_total_bytes(snap), total);

    /* plan it: 5 ranks by bytes, disjoint and complete */
    s3s_plan_opts po;
    s3s_plan_opts_init(&po);
    po.shard_target_bytes = 10000;
    po.shuffle = 1;
    po.seed = 3;
    po.distribution = S3S_DIST_SHARDED_BY_S3_KEY;
    po.balance = S3S_BALANCE_BYTES;
    s3s_plan *plan = NULL;
    assert_int_equal(s3s_plan_create(&plan, snap, &po, &e), 0);
    uint64_t b[6];
    assert_int_equal(s3s_plan_shares(plan, 5, b, &e), 0);
    assert_int_equal(b[0], 0);
    assert_int_equal(b[5], s3s_plan_shard_count(plan));
    char *seen = calloc(NTRAIN, 1);
    for (uint64_t pos = 0; pos < b[5]; pos++) {
        s3s_shard sh;
        s3s_plan_shard(plan, s3s_plan_order(plan)[pos], &sh);
        for (uint64_t i = sh.first; i < sh.first + sh.count; i++)
            assert_int_equal(seen[i]++, 0);
    }
    for (int i = 0; i < NTRAIN; i++)
        assert_int_equal(seen[i], 1);
    free(seen);
    s3s_plan_destroy(plan);

    /* store it in S3 and read it back: same hash */
    s3s_snapshot *back = NULL;
    assert_int_equal(s3s_snapshot_put(snap, s3, "s3://" BUCKET "/state/train.snap", &e), 0);
    assert_int_equal(s3s_snapshot_get(&back, s3, "s3://" BUCKET "/state/train.snap", &e), 0);
    char h1[65], h2[65];
    s3s_snapshot_hash_hex(snap, h1);
    s3s_snapshot_hash_hex(back, h2);
    assert_string_equal(h1, h2);
    assert_int_equal(s3s_snapshot_verify(back, &e), 0);
    s3s_snapshot_destroy(back);
    assert_int_equal(s3s_snapshot_get(&back, s3, "s3://" BUCKET "/state/none.snap", &e),
                     S3S_ENOTFOUND);
    assert_int_equal(s3s_snapshot_get(&back, s3, "s3://" BUCKET "/ds/train/0001.bin", &e),
                     S3S_EPARSE);
    s3s_snapshot_destroy(snap);

    /* a prefix ending mid-name matches as S3 does: train/ and trainer/ */
    o.uri = "s3://" BUCKET "/ds/train";
    assert_int_equal(s3s_snapshot_create(&snap, &o, &e), 0);
    assert_int_equal(s3s_snapshot_count(snap), NTRAIN + 2);
    s3s_snapshot_destroy(snap);
    o.uri = "s3://" BUCKET "/nothing/";
    assert_int_equal(s3s_snapshot_create(&snap, &o, &e), 0);
    assert_int_equal(s3s_snapshot_count(snap), 0);
    s3s_snapshot_destroy(snap);
    o.uri = "s3://nosuchbucket/x";
    assert_int_not_equal(s3s_snapshot_create(&snap, &o, &e), 0);
    assert_non_null(strstr(e.msg, "nosuchbucket"));
}

static void test_manifests_on_s3(void **state)
{
    (void)state;
    const char *m = "[{\"prefix\": \"s3://" BUCKET "/ds/\"},\n \"train/0005.bin\",\n"
                    " \"test/x\", \"train/0002.bin\"]";
    assert_int_equal(s3s_s3_put(s3, BUCKET, "m/manifest.json", m, strlen(m), NULL), 0);
    s3s_source_opts o;
    s3s_source_opts_init(&o);
    o.data_type = S3S_DATA_MANIFEST;
    o.uri = "s3://" BUCKET "/m/manifest.json";
    o.s3 = s3;
    s3s_snapshot *snap = NULL;
    s3s_errinfo e = {0};
    for (int meta = S3S_META_LIST; meta <= S3S_META_HEAD; meta++) {
        o.manifest_meta = (s3s_manifest_meta)meta;
        assert_int_equal(s3s_snapshot_create(&snap, &o, &e), 0);
        assert_int_equal(s3s_snapshot_kind_get(snap), S3S_SNAP_MANIFEST);
        assert_int_equal(s3s_snapshot_count(snap), 3);
        s3s_entry ent;
        s3s_snapshot_entry(snap, 0, &ent); /* manifest order */
        assert_memory_equal(ent.key, "ds/train/0005.bin", ent.key_len);
        assert_int_equal(ent.size, 5 * 37 + 1);
        assert_int_equal(strlen(ent.etag), 32);
        s3s_snapshot_entry(snap, 1, &ent);
        assert_int_equal(ent.size, 3);
        s3s_snapshot_destroy(snap);
    }
    /* a key the bucket does not have: named with its manifest line */
    m = "[{\"prefix\": \"s3://" BUCKET "/ds/\"},\n \"train/0005.bin\",\n \"train/missing\"]";
    assert_int_equal(s3s_s3_put(s3, BUCKET, "m/bad.json", m, strlen(m), NULL), 0);
    o.uri = "s3://" BUCKET "/m/bad.json";
    for (int meta = S3S_META_LIST; meta <= S3S_META_HEAD; meta++) {
        o.manifest_meta = (s3s_manifest_meta)meta;
        assert_int_equal(s3s_snapshot_create(&snap, &o, &e), S3S_ENOTFOUND);
        assert_non_null(strstr(e.msg, "bad.json:3"));
        assert_non_null(strstr(e.msg, "train/missing"));
    }
    /* an augmented manifest */
    m = "{\"source-ref\": \"s3://" BUCKET "/ds/train/0001.bin\", \"label\": 1}\n"
        "{\"source-ref\": \"s3://" BUCKET "/ds/train/0002.bin\", \"label\": 0}\n";
    assert_int_equal(s3s_s3_put(s3, BUCKET, "m/aug.jsonl", m, strlen(m), NULL), 0);
    const char *attrs[] = {"label", "source-ref"};
    o.data_type = S3S_DATA_AUGMENTED_MANIFEST;
    o.uri = "s3://" BUCKET "/m/aug.jsonl";
    o.attribute_names = attrs;
    o.n_attribute_names = 2;
    assert_int_equal(s3s_snapshot_create(&snap, &o, &e), 0);
    assert_int_equal(s3s_snapshot_count(snap), 2);
    s3s_entry ent;
    s3s_snapshot_entry(snap, 1, &ent);
    const char *want = "{\"label\":0,\"source-ref\":\"s3://" BUCKET "/ds/train/0002.bin\"}";
    assert_int_equal(ent.key_len, strlen(want));
    assert_memory_equal(ent.key, want, ent.key_len);
    s3s_snapshot_destroy(snap);
    o.uri = "s3://" BUCKET "/m/none.jsonl";
    assert_int_equal(s3s_snapshot_create(&snap, &o, &e), S3S_ENOTFOUND);
}

static void test_cli_against_s3(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("s3cli");
    char bin[512], out[600], snapf[600], job[600], keys[600];
    s3s_test_bin("s3shard", bin, sizeof(bin));
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    snprintf(snapf, sizeof(snapf), "%s/t.snap", dir);
    snprintf(job, sizeof(job), "%s/job.json", dir);
    snprintf(keys, sizeof(keys), "%s/keys.txt", dir);
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    char *create[] = {bin,
                      "--endpoint",
                      srv.endpoint,
                      "snapshot",
                      "create",
                      "--source",
                      "s3://" BUCKET "/ds/train/",
                      "--out",
                      snapf,
                      NULL};
    assert_int_equal(s3s_test_run(create, out), 0);
    FILE *f = fopen(job, "w");
    fprintf(f,
            "{\"InputDataConfig\": [{\"ChannelName\": \"train\", \"ShuffleConfig\": {\"Seed\": 1},"
            " \"DataSource\": {\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", \"S3Uri\": "
            "\"s3://" BUCKET "/ds/train/\", \"S3DataDistributionType\": \"ShardedByS3Key\"}}}],"
            " \"S3Shard\": {\"StateDir\": \"%s/state\"}}",
            dir);
    fclose(f);
    /* without --snapshot: enumerated from S3 and cached in the state dir */
    size_t lines = 0;
    for (int r = 0; r < 3; r++) {
        char rs[8];
        snprintf(rs, sizeof(rs), "%d", r);
        char *plan[] = {bin,      "--endpoint", srv.endpoint,   "plan",    "--job",
                        job,      "--channel",  "train",        "--epoch", "2",
                        "--rank", rs,           "--world-size", "3",       NULL};
        assert_int_equal(s3s_test_run(plan, keys), 0);
        f = fopen(keys, "r");
        char line[256];
        while (fgets(line, sizeof(line), f))
            lines++;
        fclose(f);
    }
    assert_int_equal(lines, NTRAIN);
    char cached[700];
    snprintf(cached, sizeof(cached), "%s/state/snapshots/train.snap", dir);
    char *verify[] = {bin, "snapshot", "verify", cached, NULL};
    assert_int_equal(s3s_test_run(verify, out), 0);
    s3s_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_snapshot),
        cmocka_unit_test(test_manifests_on_s3),
        cmocka_unit_test(test_cli_against_s3),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
