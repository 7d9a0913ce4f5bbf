/* cache_format_test.c: CRC-32C, identity hashes, the entry file and the
 * block trailer formats, including damaged images. */
#include "tests/support/testenv.h"

#include <string.h>

#include "s3shard/error.h"
#include "worker/cache/cache_int.h"
#include "worker/cache/crc32c.h"

static void test_crc32c_vectors(void **state)
{
    (void)state;
    assert_int_equal(s3s__cache_crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(s3s__cache_crc32c(0, "", 0), 0);
    uint8_t zeros[32] = {0};
    assert_int_equal(s3s__cache_crc32c(0, zeros, 32), 0x8a9136aau); /* RFC 3720 B.4 */
    /* Incremental, at every split and misalignment, equals one shot. */
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    uint32_t whole = s3s__cache_crc32c(0, buf, sizeof(buf));
    assert_int_equal(s3s__cache_crc32c_sw(0, "123456789", 9), 0xe3069283u);
    for (size_t off = 0; off < 16; off++)
        assert_int_equal(s3s__cache_crc32c_sw(0, buf + off, sizeof(buf) - off),
                         s3s__cache_crc32c(0, buf + off, sizeof(buf) - off));
    for (size_t cut = 0; cut < 64; cut++) {
        uint32_t a = s3s__cache_crc32c(0, buf, cut);
        assert_int_equal(s3s__cache_crc32c(a, buf + cut, sizeof(buf) - cut), whole);
    }
}

static void test_crc32c_long_buffers(void **state)
{
    (void)state;
    /* Long enough for the 3-lane loop, at several lengths and alignments. */
    size_t n = 200000;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)((i * 2654435761u) >> 13);
    static const size_t lens[] = {24575, 24576, 24577, 49152 + 5, 199990};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
        for (size_t off = 0; off < 9; off += 4) {
            uint32_t sw = s3s__cache_crc32c_sw(0, buf + off, lens[k]);
            assert_int_equal(s3s__cache_crc32c(0, buf + off, lens[k]), sw);
            uint32_t a = s3s__cache_crc32c(0, buf + off, 777);
            assert_int_equal(s3s__cache_crc32c(a, buf + off + 777, lens[k] - 777), sw);
        }
    free(buf);
}

static void test_hash(void **state)
{
    (void)state;
    char a[S3S__CACHE_HASH_HEX + 1], b[S3S__CACHE_HASH_HEX + 1];
    s3s__cache_id_hash(a, "b", "k", "e");
    s3s__cache_id_hash(b, "b", "k", "e");
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), S3S__CACHE_HASH_HEX);
    s3s__cache_id_hash(b, "b", "ke", ""); /* the separators keep these apart */
    assert_string_not_equal(a, b);
    s3s__cache_id_hash(b, "b", "k", "f");
    assert_string_not_equal(a, b);
    uint8_t bin[16];
    assert_int_equal(s3s__cache_hex_to_bin(bin, a), 0);
    s3s__cache_hash_hex(b, bin);
    assert_string_equal(a, b);
    assert_int_equal(s3s__cache_hex_to_bin(bin, "zz"), S3S_EINVAL);
    assert_int_equal(s3s__cache_nblocks(0, 100), 1);
    assert_int_equal(s3s__cache_nblocks(100, 100), 1);
    assert_int_equal(s3s__cache_nblocks(101, 100), 2);
}

static void test_meta_roundtrip_and_damage(void **state)
{
    (void)state;
    s3s__cache_id id = {"bucket", "dir/key.bin", "\"abc-3\"", 123456789};
    uint8_t *img = NULL;
    size_t n = 0;
    assert_int_equal(s3s__cache_meta_encode(&id, 1u << 20, &img, &n), 0);
    s3s__cache_meta m;
    assert_int_equal(s3s__cache_meta_decode(img, n, &m, NULL), 0);
    assert_int_equal(m.size, 123456789);
    assert_int_equal(m.block_size, 1u << 20);
    assert_int_equal(m.key_len, 11);
    assert_memory_equal(m.key, "dir/key.bin", 11);
    assert_memory_equal(m.etag, "\"abc-3\"", 7);
    /* Every single-byte change and every truncation is caught. */
    for (size_t i = 0; i < n; i++) {
        img[i] ^= 0x20;
        assert_int_equal(s3s__cache_meta_decode(img, n, &m, NULL), S3S_ECORRUPT);
        img[i] ^= 0x20;
    }
    for (size_t k = 0; k < n; k++)
        assert_int_equal(s3s__cache_meta_decode(img, k, &m, NULL), S3S_ECORRUPT);
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    img[0] = 'X';
    assert_int_equal(s3s__cache_meta_decode(img, n, &m, &eb), S3S_ECORRUPT);
    assert_non_null(strstr(eb.msg, "bad magic at offset 0"));
    free(img);
    s3s__cache_id bad = {"b", "", "e", 1};
    assert_int_equal(s3s__cache_meta_encode(&bad, 1u << 20, &img, &n), S3S_EINVAL);
}

static void test_trailer(void **state)
{
    (void)state;
    s3s__cache_trailer t = {{1, 2, 3, 4, 5, 6, 7, 8}, 42, 1000, 0xdeadbeef, 0}, u;
    uint8_t tb[S3S__CACHE_TRAILER];
    s3s__cache_trailer_encode(tb, &t);
    assert_int_equal(s3s__cache_trailer_decode(tb, &u, NULL), 0);
    assert_memory_equal(u.hbin8, t.hbin8, 8);
    assert_int_equal(u.idx, 42);
    assert_int_equal(u.len, 1000);
    assert_int_equal(u.crc, 0xdeadbeef);
    for (size_t i = 0; i < sizeof(tb); i++) {
        tb[i] ^= 1;
        assert_int_equal(s3s__cache_trailer_decode(tb, &u, NULL), S3S_ECORRUPT);
        tb[i] ^= 1;
    }
}

/* A partial block's trailer: its own magic, skip kept, 4 bytes of the hash;
 * a skip of 0 or of the whole length is refused. */
static void test_trailer_partial(void **state)
{
    (void)state;
    s3s__cache_trailer t = {{1, 2, 3, 4, 5, 6, 7, 8}, 3, 1000, 0xfeedf00d, 600}, u;
    uint8_t tb[S3S__CACHE_TRAILER];
    s3s__cache_trailer_encode(tb, &t);
    assert_memory_equal(tb, "S3SCBLKP", 8);
    assert_int_equal(s3s__cache_trailer_decode(tb, &u, NULL), 0);
    assert_memory_equal(u.hbin8, t.hbin8, 4);
    assert_int_equal(u.hbin8[4], 0);
    assert_int_equal(u.skip, 600);
    assert_int_equal(u.idx, 3);
    assert_int_equal(u.len, 1000);
    assert_int_equal(u.crc, 0xfeedf00d);
    s3s__errbuf eb;
    t.skip = 1000;
    s3s__cache_trailer_encode(tb, &t);
    assert_int_equal(s3s__cache_trailer_decode(tb, &u, &eb), S3S_ECORRUPT);
    assert_non_null(strstr(eb.msg, "skips 1000 of its 1000"));
    t.skip = 0;
    s3s__cache_trailer_encode(tb, &t);
    assert_int_equal(s3s__cache_trailer_decode(tb, &u, NULL), 0);
    assert_memory_equal(tb, "S3SCBLK1", 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vectors), cmocka_unit_test(test_crc32c_long_buffers),
        cmocka_unit_test(test_hash),           cmocka_unit_test(test_meta_roundtrip_and_damage),
        cmocka_unit_test(test_trailer),        cmocka_unit_test(test_trailer_partial),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
