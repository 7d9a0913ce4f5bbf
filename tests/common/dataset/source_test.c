/* source_test.c: snapshots from a local directory (a mounted EFS/FSx path) and
 * from manifests read from disk, through the public s3s_snapshot_create. */
#include "tests/support/testenv.h"

#include "s3shard/dataset.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *rel, size_t size)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < size; i++)
        fputc('x', f);
    fclose(f);
}

static void mk(const char *dir, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static void test_directory(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("src");
    mk(dir, "b");
    mk(dir, "b/c");
    mk(dir, "empty");
    put(dir, "z.bin", 3);
    put(dir, "a.bin", 10);
    put(dir, "b/c/deep.bin", 0);
    put(dir, "b/x", 7);
    char link[1024], target[1024];
    snprintf(link, sizeof(link), "%s/link.bin", dir);
    snprintf(target, sizeof(target), "%s/a.bin", dir);
    assert_int_equal(symlink(target, link), 0);
    snprintf(link, sizeof(link), "%s/loop", dir);
    assert_int_equal(symlink(dir, link), 0); /* a folder symlink is not followed */
    s3s_source_opts o;
    s3s_source_opts_init(&o);
    o.data_type = S3S_DATA_FILESYSTEM;
    o.uri = dir;
    s3s_snapshot *s = NULL;
    s3s_errinfo e = {0};
    assert_int_equal(s3s_snapshot_create(&s, &o, &e), 0);
    const char *want[] = {"a.bin", "b/c/deep.bin", "b/x", "link.bin", "z.bin"};
    const uint64_t wsize[] = {10, 0, 7, 10, 3};
    assert_int_equal(s3s_snapshot_count(s), 5);
    for (size_t i = 0; i < 5; i++) {
        s3s_entry ent;
        assert_int_equal(s3s_snapshot_entry(s, i, &ent), 0);
        assert_int_equal(ent.key_len, strlen(want[i]));
        assert_memory_equal(ent.key, want[i], ent.key_len);
        assert_int_equal(ent.size, wsize[i]);
    }
    assert_null(s3s_snapshot_bucket(s));
    assert_int_equal(s3s_snapshot_kind_get(s), S3S_SNAP_OBJECTS);
    /* the same tree enumerated again has the same hash; a change changes it */
    s3s_snapshot *s2 = NULL;
    char h1[65], h2[65];
    assert_int_equal(s3s_snapshot_create(&s2, &o, &e), 0);
    s3s_snapshot_hash_hex(s, h1);
    s3s_snapshot_hash_hex(s2, h2);
    assert_string_equal(h1, h2);
    s3s_snapshot_destroy(s2);
    put(dir, "b/x", 8);
    assert_int_equal(s3s_snapshot_create(&s2, &o, &e), 0);
    s3s_snapshot_hash_hex(s2, h2);
    assert_string_not_equal(h1, h2);
    s3s_snapshot_destroy(s2);
    s3s_snapshot_destroy(s);
    /* a local path given as S3Prefix source with file:// works the same */
    char uri[1100];
    snprintf(uri, sizeof(uri), "file://%s/b", dir);
    o.data_type = S3S_DATA_S3_PREFIX;
    o.uri = uri;
    assert_int_equal(s3s_snapshot_create(&s, &o, &e), 0);
    assert_int_equal(s3s_snapshot_count(s), 2);
    s3s_snapshot_destroy(s);
    o.uri = "/no/such/dir";
    assert_int_equal(s3s_snapshot_create(&s, &o, &e), S3S_ENOTFOUND);
    assert_non_null(strstr(e.msg, "/no/such/dir"));
    o.uri = "s3://bkt/p"; /* S3 without a client */
    assert_int_equal(s3s_snapshot_create(&s, &o, &e), S3S_EINVAL);
    assert_non_null(strstr(e.msg, "S3 client"));
    s3s_test_rmtree(dir);
    free(dir);
}

static void test_manifests_from_disk(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("man");
    char path[1024];
    snprintf(path, sizeof(path), "%s/m.json", dir);
    FILE *f = fopen(path, "w");
    fputs("[{\"prefix\": \"s3://bkt/p/\"}, \"b\", \"a\", \"b\"]", f);
    fclose(f);
    s3s_source_opts o;
    s3s_source_opts_init(&o);
    o.data_type = S3S_DATA_MANIFEST;
    o.uri = path;
    o.manifest_meta = S3S_META_NONE;
    s3s_snapshot *s = NULL;
    s3s_errinfo e = {0};
    assert_int_equal(s3s_snapshot_create(&s, &o, &e), 0);
    assert_int_equal(s3s_snapshot_kind_get(s), S3S_SNAP_MANIFEST);
    assert_string_equal(s3s_snapshot_bucket(s), "bkt");
    assert_int_equal(s3s_snapshot_count(s), 3);
    s3s_entry ent;
    s3s_snapshot_entry(s, 0, &ent);
    assert_memory_equal(ent.key, "p/b", 3);
    s3s_snapshot_destroy(s);
    o.manifest_meta = S3S_META_LIST; /* sizes need S3 */
    assert_int_equal(s3s_snapshot_create(&s, &o, &e), S3S_EINVAL);
    snprintf(path, sizeof(path), "%s/a.jsonl", dir);
    f = fopen(path, "w");
    fputs("{\"source-ref\": \"s3://bkt/1.jpg\", \"label\": 3}\n"
          "{\"source-ref\": \"s3://bkt/2.jpg\"}\n",
          f);
    fclose(f);
    const char *attrs[] = {"source-ref", "label"};
    o.data_type = S3S_DATA_AUGMENTED_MANIFEST;
    o.attribute_names = attrs;
    o.n_attribute_names = 2;
    assert_int_equal(s3s_snapshot_create(&s, &o, &e), S3S_EPARSE);
    assert_non_null(strstr(e.msg, "a.jsonl:2:1: attribute \"label\" missing"));
    o.skip_bad_records = 1;
    assert_int_equal(s3s_snapshot_create(&s, &o, &e), 0);
    assert_int_equal(s3s_snapshot_kind_get(s), S3S_SNAP_RECORDS);
    assert_int_equal(s3s_snapshot_count(s), 1);
    s3s_snapshot_entry(s, 0, &ent);
    assert_int_equal(ent.size, ent.key_len);
    s3s_snapshot_destroy(s);
    o.max_manifest_bytes = 10;
    assert_int_equal(s3s_snapshot_create(&s, &o, &e), S3S_ETOOBIG);
    s3s_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_manifests_from_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
