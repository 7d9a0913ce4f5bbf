/* keypath_test.c: which object keys may become paths, and the messages. */
#include "tests/support/testenv.h"

#include <stdio.h>
#include <string.h>

#include "s3shard/error.h"
#include "worker/keypath.h"

static void test_good_keys(void **state)
{
    (void)state;
    static const char *const good[] = {
        "a",
        "a/b",
        "a/b/c.jpg",
        "...",
        "..a",
        "a..",
        ".hidden",
        "a/.b",
        "a/b..c/d",
        "x y/z",
        "caf\xc3\xa9/1",
        "a-b_c=d+e,f",
        "0/1/2/3/4/5",
        "train/00001.tar",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        s3s__errbuf eb;
        s3s__err_clear(&eb);
        int rc = s3s__keypath_check(good[i], strlen(good[i]), &eb);
        if (rc != 0)
            fail_msg("key '%s' refused: %s", good[i], eb.msg);
    }
    char seg[256];
    memset(seg, 'x', 255);
    seg[255] = '\0';
    assert_int_equal(s3s__keypath_check(seg, 255, NULL), 0);
}

static void test_bad_keys(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        size_t len;
        const char *why;
    } bad[] = {
        {"", 0, "empty key"},
        {"/etc/passwd", 11, "absolute"},
        {"a//b", 4, "empty path segment"},
        {"a/", 2, "ends with '/'"},
        {".", 1, "'.' or '..'"},
        {"..", 2, "'.' or '..'"},
        {"../x", 4, "'.' or '..'"},
        {"a/../../x", 9, "'.' or '..'"},
        {"a/./b", 5, "'.' or '..'"},
        {"a/..", 4, "'.' or '..'"},
        {"a\0b", 3, "NUL"},
        {"a\nb", 3, "control character"},
        {"a\x1b[31m", 7, "control character"},
        {"a\x7f", 2, "control character"},
        {"a\tb", 3, "control character"},
        {"/", 1, "absolute"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s3s__errbuf eb;
        s3s__err_clear(&eb);
        int rc = s3s__keypath_check(bad[i].key, bad[i].len, &eb);
        if (rc != S3S_EUNSAFEKEY)
            fail_msg("key #%zu accepted (rc %d)", i, rc);
        if (strstr(eb.msg, bad[i].why) == NULL || strstr(eb.msg, "unsafe object key '") == NULL)
            fail_msg("key #%zu: message '%s' lacks '%s'", i, eb.msg, bad[i].why);
    }
    /* The message names the key, control bytes escaped. */
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_int_equal(s3s__keypath_check("dir/../../etc", 13, &eb), S3S_EUNSAFEKEY);
    assert_non_null(strstr(eb.msg, "'dir/../../etc'"));
    assert_int_equal(s3s__keypath_check("a\nb", 3, &eb), S3S_EUNSAFEKEY);
    assert_non_null(strstr(eb.msg, "'a\\x0ab'"));
    /* Too long: a 256-byte segment, a 1025-byte key. */
    char big[1100];
    memset(big, 'x', sizeof(big));
    assert_int_equal(s3s__keypath_check(big, 256, NULL), S3S_EUNSAFEKEY);
    for (size_t i = 100; i < sizeof(big); i += 101)
        big[i] = '/';
    assert_int_equal(s3s__keypath_check(big, 1024, NULL), 0);
    assert_int_equal(s3s__keypath_check(big, 1025, NULL), S3S_EUNSAFEKEY);
    assert_int_equal(s3s__keypath_check(NULL, 0, NULL), S3S_EUNSAFEKEY);
}

static void test_join(void **state)
{
    (void)state;
    char *p = NULL;
    assert_int_equal(s3s__keypath_join(&p, "/opt/ml/input/data/train/", "a/b.jpg", 7, NULL), 0);
    assert_string_equal(p, "/opt/ml/input/data/train/a/b.jpg");
    free(p);
    assert_int_equal(s3s__keypath_join(&p, "/d", "x", 1, NULL), 0);
    assert_string_equal(p, "/d/x");
    free(p);
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_int_equal(s3s__keypath_join(&p, "/d", "../x", 4, &eb), S3S_EUNSAFEKEY);
    assert_null(p);
    assert_non_null(strstr(eb.msg, "'../x'"));
}

static void test_folder_marker(void **state)
{
    (void)state;
    assert_true(s3s__keypath_is_folder_marker("a/", 2, 0));
    assert_false(s3s__keypath_is_folder_marker("a/", 2, 5));
    assert_false(s3s__keypath_is_folder_marker("a", 1, 0));
}

static void test_set_collisions(void **state)
{
    (void)state;
    static const char *const ok[] = {"a/b", "a-b", "a.c", "ab/c", "a/c/d", "b", "a/b"};
    assert_int_equal(s3s__keypath_check_set(ok, 7, NULL), 0);
    assert_int_equal(s3s__keypath_check_set(ok, 0, NULL), 0);

    static const char *const clash[] = {"a/b/c", "z", "a-x", "a.y", "a/b"};
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_int_equal(s3s__keypath_check_set(clash, 5, &eb), S3S_EUNSAFEKEY);
    assert_non_null(strstr(eb.msg, "'a/b'"));
    assert_non_null(strstr(eb.msg, "'a/b/c'"));

    /* "a" with "a-b" and "a.c" between it and "a/x" in sorted order. */
    static const char *const clash2[] = {"a/x", "a.c", "a", "a-b"};
    s3s__err_clear(&eb);
    assert_int_equal(s3s__keypath_check_set(clash2, 4, &eb), S3S_EUNSAFEKEY);
    assert_non_null(strstr(eb.msg, "unsafe object key 'a': it is also the folder of key 'a/x'"));

    static const char *const unsafe[] = {"fine", "../evil"};
    assert_int_equal(s3s__keypath_check_set(unsafe, 2, NULL), S3S_EUNSAFEKEY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_keys),      cmocka_unit_test(test_bad_keys),
        cmocka_unit_test(test_join),           cmocka_unit_test(test_folder_marker),
        cmocka_unit_test(test_set_collisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
