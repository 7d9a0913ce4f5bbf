/* recordio_test.c: the RecordIO writer against byte images worked out by
 * hand from dmlc-core's format: padding, empty records, a payload holding the
 * magic at aligned offsets (split into parts), an unaligned magic (kept), and
 * a sink that stops. */
#include "tests/support/testenv.h"

#include "s3shard/error.h"
#include "worker/recordio.h"

#include <string.h>

typedef struct sink {
    uint8_t buf[256];
    size_t len;
    int fail_at; /* call number that fails (1-based), 0 never */
    int calls;
} sink;

static int sink_cb(void *ud, const void *p, size_t n)
{
    sink *s = ud;
    if (s->fail_at && ++s->calls == s->fail_at)
        return 42;
    assert_true(s->len + n <= sizeof(s->buf));
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    return 0;
}

#define MAGIC 0x0a, 0x23, 0xd7, 0xce

static void test_simple_padding(void **state)
{
    (void)state;
    sink s = {0};
    assert_int_equal(s3s__recordio_write((const uint8_t *)"hello", 5, sink_cb, &s), 0);
    const uint8_t want[] = {MAGIC, 5, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
    assert_int_equal(s.len, sizeof(want));
    assert_memory_equal(s.buf, want, sizeof(want));
}

static void test_empty(void **state)
{
    (void)state;
    sink s = {0};
    assert_int_equal(s3s__recordio_write(NULL, 0, sink_cb, &s), 0);
    const uint8_t want[] = {MAGIC, 0, 0, 0, 0};
    assert_int_equal(s.len, sizeof(want));
    assert_memory_equal(s.buf, want, sizeof(want));
}

static void test_magic_split(void **state)
{
    (void)state;
    /* "abcd" MAGIC "ef" MAGIC(unaligned at 10, kept) -> parts "abcd" (cflag 1)
     * and "ef" + magic bytes (cflag 3) */
    const uint8_t in[] = {'a', 'b', 'c', 'd', MAGIC, 'e', 'f', MAGIC};
    sink s = {0};
    assert_int_equal(s3s__recordio_write(in, sizeof(in), sink_cb, &s), 0);
    const uint8_t want[] = {MAGIC, 4, 0, 0,      1 << 5, 'a', 'b',   'c', 'd', MAGIC,
                            6,     0, 0, 3 << 5, 'e',    'f', MAGIC, 0,   0};
    assert_int_equal(s.len, sizeof(want));
    assert_memory_equal(s.buf, want, sizeof(want));
}

static void test_magic_three_parts(void **state)
{
    (void)state;
    /* MAGIC at 0 and 4: an empty first part, an empty middle, then "xy" */
    const uint8_t in[] = {MAGIC, MAGIC, 'x', 'y'};
    sink s = {0};
    assert_int_equal(s3s__recordio_write(in, sizeof(in), sink_cb, &s), 0);
    const uint8_t want[] = {MAGIC, 0, 0, 0, 1 << 5, MAGIC, 0,   0, 0, 2 << 5,
                            MAGIC, 2, 0, 0, 3 << 5, 'x',   'y', 0, 0};
    assert_int_equal(s.len, sizeof(want));
    assert_memory_equal(s.buf, want, sizeof(want));
}

static void test_sink_stops(void **state)
{
    (void)state;
    sink s = {.fail_at = 2};
    assert_int_equal(s3s__recordio_write((const uint8_t *)"hello", 5, sink_cb, &s), 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_padding), cmocka_unit_test(test_empty),
        cmocka_unit_test(test_magic_split),    cmocka_unit_test(test_magic_three_parts),
        cmocka_unit_test(test_sink_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
