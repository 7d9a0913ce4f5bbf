/* snapshot_test.c: building (sort, duplicates, ETag forms), the content hash,
 * and the file format: round trip, checksum, version, truncation and crafted
 * files with a valid checksum but bad offsets or order. */
#include "tests/support/testenv.h"

#include "common/dataset/snapshot.h"
#include "s3shard/dataset.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <string.h>

static s3s_snapshot *build(const char *const *keys, const uint64_t *sizes, const char *const *etags,
                           size_t n, s3s_snapshot_kind kind)
{
    s3s__snap_builder b;
    s3s__sb_init(&b);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(
            s3s__sb_add(&b, keys[i], strlen(keys[i]), sizes[i], etags ? etags[i] : NULL), 0);
    s3s_snapshot *s = NULL;
    s3s_errinfo e = {0};
    int rc = s3s__sb_finish(&b, kind, "s3://bkt/p", "bkt", &s, &e);
    s3s__sb_fini(&b);
    assert_int_equal(rc, 0);
    return s;
}

static const char *const keys[] = {"p/b", "p/a/x", "p/c", "p/a"};
static const uint64_t sizes[] = {2, 1, 3, 4};
static const char *const etags[] = {"0123456789abcdef0123456789abcdef",
                                    "0123456789abcdef0123456789abcdef-17",
                                    "0123456789ABCDEF0123456789ABCDEF", "weird\"etag"};

static void test_xxh64_vectors(void **state)
{
    (void)state;
    assert_true(s3s__xxh64("", 0) == 0xEF46DB3751D8E999ull);
    assert_true(s3s__xxh64("abc", 3) == 0x44BC2CF5AD770999ull);
    const char *s = "Nobody inspects the spammish repetition";
    assert_true(s3s__xxh64(s, strlen(s)) == 0xFBCEA83C8A378BF1ull);
}

static void test_build_sorted_and_etags(void **state)
{
    (void)state;
    s3s_snapshot *s = build(keys, sizes, etags, 4, S3S_SNAP_OBJECTS);
    assert_int_equal(s3s_snapshot_count(s), 4);
    assert_int_equal(s3s_snapshot_total_bytes(s), 10);
    assert_string_equal(s3s_snapshot_bucket(s), "bkt");
    assert_string_equal(s3s_snapshot_source(s), "s3://bkt/p");
    const char *want[] = {"p/a", "p/a/x", "p/b", "p/c"};
    const char *want_etag[] = {"weird\"etag", "0123456789abcdef0123456789abcdef-17",
                               "0123456789abcdef0123456789abcdef",
                               "0123456789ABCDEF0123456789ABCDEF"};
    for (size_t i = 0; i < 4; i++) {
        s3s_entry ent;
        assert_int_equal(s3s_snapshot_entry(s, i, &ent), 0);
        assert_int_equal(ent.key_len, strlen(want[i]));
        assert_memory_equal(ent.key, want[i], ent.key_len);
        assert_string_equal(ent.etag, want_etag[i]);
    }
    s3s_entry ent;
    assert_int_equal(s3s_snapshot_entry(s, 4, &ent), S3S_EINVAL);
    assert_int_equal(s3s_snapshot_verify(s, NULL), 0);
    s3s_snapshot_destroy(s);
    /* a repeated key is refused */
    const char *dup[] = {"a", "b", "a"};
    uint64_t z[] = {0, 0, 0};
    s3s__snap_builder b;
    s3s__sb_init(&b);
    for (int i = 0; i < 3; i++)
        assert_int_equal(s3s__sb_add(&b, dup[i], 1, z[i], NULL), 0);
    s3s_errinfo e = {0};
    assert_int_equal(s3s__sb_finish(&b, S3S_SNAP_OBJECTS, "x", NULL, &s, &e), S3S_EPARSE);
    assert_non_null(strstr(e.msg, "\"a\" appears twice"));
    s3s__sb_fini(&b);
    /* but a manifest keeps its order and its repeats */
    s = build(dup, z, NULL, 3, S3S_SNAP_MANIFEST);
    assert_int_equal(s3s_snapshot_entry(s, 2, &ent), 0);
    assert_memory_equal(ent.key, "a", 1);
    assert_string_equal(ent.etag, "");
    assert_null(NULL);
    s3s_snapshot_destroy(s);
}

static void test_hash_is_content(void **state)
{
    (void)state;
    const char *k2[] = {"p/a", "p/c", "p/a/x", "p/b"};
    const uint64_t s2[] = {4, 3, 1, 2};
    const char *e2[] = {etags[3], etags[2], etags[1], etags[0]};
    s3s_snapshot *a = build(keys, sizes, etags, 4, S3S_SNAP_OBJECTS);
    s3s_snapshot *b = build(k2, s2, e2, 4, S3S_SNAP_OBJECTS);
    uint8_t ha[32], hb[32];
    s3s_snapshot_hash(a, ha);
    s3s_snapshot_hash(b, hb);
    assert_memory_equal(ha, hb, 32); /* insertion order does not matter */
    char hex[65];
    s3s_snapshot_hash_hex(a, hex);
    assert_int_equal(strlen(hex), 64);
    assert_int_equal(s3s_snapshot_check_hash(b, hex, NULL), 0);
    s3s_snapshot_destroy(b);
    const uint64_t s3[] = {2, 1, 3, 5}; /* one size differs */
    b = build(keys, s3, etags, 4, S3S_SNAP_OBJECTS);
    s3s_errinfo e = {0};
    assert_int_equal(s3s_snapshot_check_hash(b, hex, &e), S3S_EMISMATCH);
    assert_non_null(strstr(e.msg, "refusing to resume"));
    s3s_snapshot_destroy(b);
    b = build(keys, sizes, etags, 4, S3S_SNAP_MANIFEST); /* same entries, other kind */
    s3s_snapshot_hash(b, hb);
    assert_memory_not_equal(ha, hb, 32);
    s3s_snapshot_destroy(b);
    s3s_snapshot_destroy(a);
}

static void test_file_round_trip(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("snap");
    char path[512];
    snprintf(path, sizeof(path), "%s/train.snap", dir);
    s3s_snapshot *a = build(keys, sizes, etags, 4, S3S_SNAP_OBJECTS), *b = NULL;
    s3s_errinfo e = {0};
    assert_int_equal(s3s_snapshot_save(a, path, &e), 0);
    /* the streamed file is byte for byte the serialized image (what goes to S3) */
    void *img;
    size_t n;
    assert_int_equal(s3s__snap_serialize(a, &img, &n, &e), 0);
    FILE *f = fopen(path, "rb");
    char *disk = malloc(n + 1);
    assert_int_equal(fread(disk, 1, n + 1, f), n);
    fclose(f);
    assert_memory_equal(disk, img, n);
    free(disk);
    free(img);
    assert_int_equal(s3s_snapshot_load(&b, path, &e), 0);
    assert_int_equal(s3s_snapshot_count(b), 4);
    assert_int_equal(s3s_snapshot_kind_get(b), S3S_SNAP_OBJECTS);
    assert_string_equal(s3s_snapshot_bucket(b), "bkt");
    assert_string_equal(s3s_snapshot_source(b), "s3://bkt/p");
    uint8_t ha[32], hb[32];
    s3s_snapshot_hash(a, ha);
    s3s_snapshot_hash(b, hb);
    assert_memory_equal(ha, hb, 32);
    assert_int_equal(s3s_snapshot_verify(b, &e), 0);
    for (size_t i = 0; i < 4; i++) {
        s3s_entry x, y;
        s3s_snapshot_entry(a, i, &x);
        s3s_snapshot_entry(b, i, &y);
        assert_int_equal(x.key_len, y.key_len);
        assert_memory_equal(x.key, y.key, x.key_len);
        assert_int_equal(x.size, y.size);
        assert_string_equal(x.etag, y.etag);
    }
    s3s_snapshot_destroy(b);
    snprintf(path, sizeof(path), "%s/none.snap", dir);
    assert_int_equal(s3s_snapshot_load(&b, path, &e), S3S_ENOTFOUND);
    assert_null(b);
    snprintf(path, sizeof(path), "%s/no/such/dir/x.snap", dir);
    assert_int_equal(s3s_snapshot_save(a, path, &e), S3S_EIO);
    s3s_snapshot_destroy(a);
    s3s_test_rmtree(dir);
    free(dir);
}

/* reseal recomputes the trailer checksum of a modified image. */
static void reseal(uint8_t *img, size_t n)
{
    uint64_t h = s3s__xxh64(img, n - 16);
    memcpy(img + n - 16, &h, 8);
}

static void test_damaged_files(void **state)
{
    (void)state;
    s3s_snapshot *a = build(keys, sizes, etags, 4, S3S_SNAP_OBJECTS), *b = NULL;
    void *img;
    size_t n;
    assert_int_equal(s3s__snap_serialize(a, &img, &n, NULL), 0);
    uint8_t *p = img, *c = malloc(n);
    s3s_errinfo e = {0};
    assert_int_equal(s3s_snapshot_load_mem(&b, p, n, &e), 0);
    s3s_snapshot_destroy(b);
    /* every single flipped byte is caught by the checksum (or the magic) */
    for (size_t i = 0; i < n; i++) {
        memcpy(c, p, n);
        c[i] ^= 0x40;
        int rc = s3s_snapshot_load_mem(&b, c, n, &e);
        assert_true(rc == S3S_ECORRUPT || rc == S3S_EPARSE || rc == S3S_EPROTO);
        assert_null(b);
    }
    /* every truncation is refused */
    for (size_t len = 0; len < n; len += 7)
        assert_int_not_equal(s3s_snapshot_load_mem(&b, p, len, &e), 0);
    /* a newer version */
    memcpy(c, p, n);
    c[8] = 2;
    reseal(c, n);
    assert_int_equal(s3s_snapshot_load_mem(&b, c, n, &e), S3S_EPROTO);
    assert_non_null(strstr(e.msg, "version 2"));
    /* valid checksum, key offset out of the arena */
    size_t recs_off = (128 + strlen("s3://bkt/p") + 3 + 7) & ~(size_t)7;
    memcpy(c, p, n);
    uint64_t off = 1u << 30;
    memcpy(c + recs_off, &off, 8);
    reseal(c, n);
    assert_int_equal(s3s_snapshot_load_mem(&b, c, n, &e), S3S_EPARSE);
    assert_non_null(strstr(e.msg, "outside"));
    /* valid checksum, entries swapped out of order */
    memcpy(c, p, n);
    memcpy(c + recs_off, p + recs_off + 48, 48);
    memcpy(c + recs_off + 48, p + recs_off, 48);
    reseal(c, n);
    assert_int_equal(s3s_snapshot_load_mem(&b, c, n, &e), S3S_EPARSE);
    assert_non_null(strstr(e.msg, "out of order"));
    /* valid checksum, the total does not match */
    memcpy(c, p, n);
    c[40] ^= 1;
    reseal(c, n);
    assert_int_equal(s3s_snapshot_load_mem(&b, c, n, &e), S3S_EPARSE);
    /* valid checksum, a changed size: loads, but verify finds the hash wrong */
    memcpy(c, p, n);
    c[recs_off + 8] ^= 1; /* size of entry 0 */
    c[40] ^= 1; /* keep the header total consistent: sizes 4->5, total 10->11 */
    reseal(c, n);
    assert_int_equal(s3s_snapshot_load_mem(&b, c, n, &e), 0);
    assert_int_equal(s3s_snapshot_verify(b, &e), S3S_ECORRUPT);
    s3s_snapshot_destroy(b);
    free(c);
    free(img);
    s3s_snapshot_destroy(a);
}

/* many long keys: the hash's gather buffer fills and flushes many times */
static void test_hash_buffer_boundaries(void **state)
{
    (void)state;
    s3s__snap_builder b;
    s3s__sb_init(&b);
    char key[400];
    for (int i = 0; i < 3000; i++) {
        int n = snprintf(key, sizeof(key), "%0*d", 50 + (i * 7919) % 300, i);
        assert_int_equal(s3s__sb_add(&b, key, (size_t)n, (uint64_t)i, i % 2 ? "x-etag" : NULL), 0);
    }
    s3s_snapshot *s = NULL;
    assert_int_equal(s3s__sb_finish(&b, S3S_SNAP_MANIFEST, "m", NULL, &s, NULL), 0);
    s3s__sb_fini(&b);
    assert_int_equal(s3s_snapshot_verify(s, NULL), 0);
    s3s_snapshot_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xxh64_vectors),   cmocka_unit_test(test_build_sorted_and_etags),
        cmocka_unit_test(test_hash_is_content), cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_damaged_files),   cmocka_unit_test(test_hash_buffer_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
