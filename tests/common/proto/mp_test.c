/* mp_test.c: the bounded msgpack reader and the capped writer. */
#include "tests/support/testenv.h"

#include "common/proto/mp.h"
#include "s3shard/error.h"

#include <string.h>

static void rd(s3s__mpr *r, const void *p, size_t n, s3s__errbuf *eb)
{
    s3s__mpr_init(r, p, n, S3S_EPROTO, "test", eb);
}

static void test_integers_every_encoding(void **state)
{
    (void)state;
    s3s__mpr r;
    s3s__errbuf eb;
    uint64_t v;
    int64_t i;
    static const struct {
        uint8_t b[9];
        size_t n;
        uint64_t want;
    } u[] = {
        {{0x7f}, 1, 127},
        {{0xcc, 0xff}, 2, 255},
        {{0xcd, 0x12, 0x34}, 3, 0x1234},
        {{0xce, 0x12, 0x34, 0x56, 0x78}, 5, 0x12345678},
        {{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, UINT64_MAX},
        {{0xd0, 0x05}, 2, 5}, /* a signed encoding of a non-negative value */
        {{0xd1, 0x01, 0x00}, 3, 256},
        {{0xd2, 0x00, 0x01, 0x00, 0x00}, 5, 65536},
        {{0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9, INT64_MAX},
    };
    for (size_t k = 0; k < sizeof u / sizeof *u; k++) {
        rd(&r, u[k].b, u[k].n, &eb);
        assert_int_equal(s3s__mpr_uint(&r, &v, 0, UINT64_MAX, "u"), 0);
        assert_true(v == u[k].want);
        assert_int_equal(s3s__mpr_left(&r), 0);
        /* every proper prefix is refused */
        for (size_t n = 0; n < u[k].n; n++) {
            rd(&r, u[k].b, n, &eb);
            assert_int_equal(s3s__mpr_uint(&r, &v, 0, UINT64_MAX, "u"), S3S_EPROTO);
            assert_non_null(strstr(eb.msg, "truncated"));
        }
    }
    static const uint8_t neg[][9] = {{0xff}, {0xd0, 0x80}, {0xd1, 0x80, 0x00}};
    rd(&r, neg[0], 1, &eb);
    assert_int_equal(s3s__mpr_uint(&r, &v, 0, 10, "n"), S3S_EPROTO);
    assert_non_null(strstr(eb.msg, "expected unsigned integer, got negative integer"));
    assert_int_equal(s3s__mpr_int(&r, &i, "n"), 0);
    assert_int_equal(i, -1);
    rd(&r, neg[1], 2, &eb);
    assert_int_equal(s3s__mpr_int(&r, &i, "n"), 0);
    assert_int_equal(i, -128);
    rd(&r, neg[2], 3, &eb);
    assert_int_equal(s3s__mpr_int(&r, &i, "n"), 0);
    assert_int_equal(i, -32768);
    /* range and the offset in the message */
    static const uint8_t two[] = {0x01, 0x0b};
    rd(&r, two, 2, &eb);
    assert_int_equal(s3s__mpr_uint(&r, &v, 1, 10, "a"), 0);
    assert_int_equal(s3s__mpr_uint(&r, &v, 1, 10, "b"), S3S_EPROTO);
    assert_string_equal(eb.msg, "test: b: 11 is out of range [1, 10] at offset 1");
    assert_int_equal(r.off, 1); /* a refused value is not consumed */
    static const uint8_t big[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
    rd(&r, big, sizeof big, &eb);
    assert_int_equal(s3s__mpr_int(&r, &i, "i"), S3S_EPROTO);
}

static void test_lengths_checked_against_bytes_left(void **state)
{
    (void)state;
    s3s__mpr r;
    s3s__errbuf eb;
    const char *s;
    const uint8_t *b;
    uint32_t n;
    static const uint8_t str8[] = {0xd9, 0x05, 'a', 'b', 'c'};
    rd(&r, str8, sizeof str8, &eb);
    assert_int_equal(s3s__mpr_str(&r, &s, &n, 100, "s"), S3S_EPROTO);
    assert_non_null(strstr(eb.msg, "5 bytes but only 3 bytes left"));
    static const uint8_t bin32[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    rd(&r, bin32, sizeof bin32, &eb);
    assert_int_equal(s3s__mpr_bin(&r, &b, &n, UINT32_MAX, "b"), S3S_EPROTO);
    static const uint8_t str_ok[] = {0xa3, 'x', 'y', 'z'};
    rd(&r, str_ok, sizeof str_ok, &eb);
    assert_int_equal(s3s__mpr_str(&r, &s, &n, 2, "s"), S3S_EPROTO);
    assert_non_null(strstr(eb.msg, "at most 2"));
    rd(&r, str_ok, sizeof str_ok, &eb);
    assert_int_equal(s3s__mpr_str(&r, &s, &n, 3, "s"), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "xyz", 3);
    /* array: count x smallest element must fit */
    static const uint8_t arr[] = {0x94, 0x01, 0x02, 0x03, 0x04};
    rd(&r, arr, sizeof arr, &eb);
    assert_int_equal(s3s__mpr_array(&r, &n, 100, 2, "a"), S3S_EPROTO);
    assert_non_null(strstr(eb.msg, "cannot fit"));
    rd(&r, arr, sizeof arr, &eb);
    assert_int_equal(s3s__mpr_array(&r, &n, 3, 1, "a"), S3S_EPROTO);
    rd(&r, arr, sizeof arr, &eb);
    assert_int_equal(s3s__mpr_array(&r, &n, 4, 1, "a"), 0);
    assert_int_equal(n, 4);
    static const uint8_t map[] = {0x82, 0x01, 0x02, 0x03};
    rd(&r, map, sizeof map, &eb);
    assert_int_equal(s3s__mpr_map(&r, &n, 100, "m"), S3S_EPROTO);
    static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    rd(&r, arr32, sizeof arr32, &eb);
    assert_int_equal(s3s__mpr_array(&r, &n, UINT32_MAX, 1, "a"), S3S_EPROTO);
    /* wrong type names both */
    rd(&r, str_ok, sizeof str_ok, &eb);
    assert_int_equal(s3s__mpr_array(&r, &n, 4, 1, "a"), S3S_EPROTO);
    assert_non_null(strstr(eb.msg, "expected array, got string"));
}

static void test_skip_and_validate(void **state)
{
    (void)state;
    s3s__errbuf eb;
    /* a nested value with every type */
    static const uint8_t v[] = {0x93, 0xc0, 0x82, 0xa1, 'k',  0xcb, 0,    0,    0,    0,
                                0,    0,    0,    0,    0xc4, 0x01, 0xaa, 0xc3, 0x91, 0xe0};
    assert_int_equal(s3s__mp_validate(v, sizeof v, 4, S3S_EPROTO, "t", &eb), 0);
    assert_int_equal(s3s__mp_validate(v, sizeof v, 1, S3S_EPROTO, "t", &eb), S3S_EPROTO);
    assert_non_null(strstr(eb.msg, "deeply"));
    for (size_t n = 0; n < sizeof v; n++)
        assert_int_equal(s3s__mp_validate(v, n, 4, S3S_EPROTO, "t", &eb), S3S_EPROTO);
    uint8_t more[sizeof v + 1];
    memcpy(more, v, sizeof v);
    more[sizeof v] = 0x00;
    assert_int_equal(s3s__mp_validate(more, sizeof more, 4, S3S_EPROTO, "t", &eb), S3S_EPROTO);
    assert_non_null(strstr(eb.msg, "trailing"));
    static const uint8_t never[] = {0xc1};
    assert_int_equal(s3s__mp_validate(never, 1, 4, S3S_EPROTO, "t", &eb), S3S_EPROTO);
    static const uint8_t fixext[] = {0xd4, 0x01, 0x02};
    assert_int_equal(s3s__mp_validate(fixext, 3, 4, S3S_EPROTO, "t", &eb), S3S_EPROTO);
    assert_non_null(strstr(eb.msg, "0xd4"));
    /* floats */
    s3s__mpr r;
    double d;
    static const uint8_t f32[] = {0xca, 0x3f, 0xc0, 0x00, 0x00};
    rd(&r, f32, sizeof f32, &eb);
    assert_int_equal(s3s__mpr_double(&r, &d, "f"), 0);
    assert_true(d == 1.5);
    /* string copy refuses NUL */
    static const uint8_t nul[] = {0xa2, 'a', 0x00};
    char buf[8];
    rd(&r, nul, sizeof nul, &eb);
    assert_int_equal(s3s__mpr_str_copy(&r, buf, 7, "s"), S3S_EPROTO);
    assert_int_equal(r.off, 0);
}

static void test_writer_cap_sticky(void **state)
{
    (void)state;
    s3s__buf b;
    s3s__buf_init(&b, 8);
    s3s__mpw w;
    s3s__mpw_init(&w, &b);
    s3s__mpw_array(&w, 2);
    s3s__mpw_uint(&w, 1);
    s3s__mpw_cstr(&w, "this does not fit");
    assert_int_equal(w.err, S3S_ETOOBIG);
    size_t len = b.len;
    s3s__mpw_uint(&w, 2); /* ignored after the first failure */
    assert_int_equal(b.len, len);
    s3s__buf_fini(&b);
    /* what the writer writes, the reader reads */
    s3s__buf_init(&b, 1024);
    s3s__mpw_init(&w, &b);
    s3s__mpw_map(&w, 3);
    s3s__mpw_cstr(&w, "neg");
    s3s__mpw_int(&w, -1000000);
    s3s__mpw_cstr(&w, "bin");
    s3s__mpw_bin(&w, "\x00\x01", 2);
    s3s__mpw_cstr(&w, "d");
    s3s__mpw_double(&w, 0.25);
    assert_int_equal(w.err, 0);
    s3s__errbuf eb;
    s3s__mpr r;
    rd(&r, b.data, b.len, &eb);
    uint32_t n;
    const char *s;
    const uint8_t *p;
    int64_t i;
    double d;
    assert_int_equal(s3s__mpr_map(&r, &n, 10, "m"), 0);
    assert_int_equal(s3s__mpr_str(&r, &s, &n, 10, "k"), 0);
    assert_int_equal(s3s__mpr_int(&r, &i, "v"), 0);
    assert_int_equal(i, -1000000);
    assert_int_equal(s3s__mpr_str(&r, &s, &n, 10, "k"), 0);
    assert_int_equal(s3s__mpr_bin(&r, &p, &n, 10, "v"), 0);
    assert_int_equal(n, 2);
    assert_int_equal(s3s__mpr_str(&r, &s, &n, 10, "k"), 0);
    assert_int_equal(s3s__mpr_double(&r, &d, "v"), 0);
    assert_true(d == 0.25);
    assert_int_equal(s3s__mpr_left(&r), 0);
    s3s__buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers_every_encoding),
        cmocka_unit_test(test_lengths_checked_against_bytes_left),
        cmocka_unit_test(test_skip_and_validate),
        cmocka_unit_test(test_writer_cap_sticky),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
