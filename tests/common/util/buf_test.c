/* buf_test.c: the capped growable buffer and the error buffer. */
#include "tests/support/testenv.h"

#include "common/util/buf.h"
#include "common/util/errbuf.h"
#include "s3shard/error.h"

#include <string.h>

static void test_append_and_cap(void **state)
{
    (void)state;
    s3s__buf b;
    s3s__buf_init(&b, 10);
    assert_int_equal(s3s__buf_puts(&b, "hello"), 0);
    assert_int_equal(s3s__buf_printf(&b, "%d", 1234), 0);
    assert_string_equal(b.data, "hello1234");
    assert_int_equal(s3s__buf_puts(&b, "xy"), S3S_ETOOBIG);
    assert_string_equal(b.data, "hello1234"); /* unchanged past the cap */
    assert_int_equal(s3s__buf_puts(&b, "z"), 0);
    assert_int_equal(b.len, 10);
    size_t n;
    char *p = s3s__buf_detach(&b, &n);
    assert_int_equal(n, 10);
    assert_string_equal(p, "hello1234z");
    free(p);
    assert_null(b.data);
    s3s__buf_fini(&b);
}

static void test_errbuf(void **state)
{
    (void)state;
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_string_equal(s3s__err_get(&eb, S3S_EPARSE), "malformed input");
    assert_int_equal(s3s__err_set(&eb, S3S_EPARSE, "%s:%d: bad", "f.json", 3), S3S_EPARSE);
    assert_string_equal(s3s__err_get(&eb, S3S_EPARSE), "f.json:3: bad");
    assert_int_equal(s3s__err_set(NULL, S3S_EIO, "x"), S3S_EIO);
}

static void test_strerror_total(void **state)
{
    (void)state;
    for (int i = 0; i < S3S_E_MAX_; i++)
        assert_true(strcmp(s3s_strerror(i), "unknown error") != 0);
    assert_string_equal(s3s_strerror(-1), "unknown error");
    assert_string_equal(s3s_strerror(S3S_E_MAX_), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_cap),
        cmocka_unit_test(test_errbuf),
        cmocka_unit_test(test_strerror_total),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
