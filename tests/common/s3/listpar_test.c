/* listpar_test.c: the adaptive parallel listing (common/s3/listpar.c) against a
 * real s3rver: every strategy (sequential, parallel by folders and key ranges,
 * adaptive) lists exactly the keys the plain sequential listing does, in the
 * same order, for nested and flat layouts, keys with special characters,
 * folder marker objects, keys next to a folder of the same name, deep
 * nesting, an empty prefix, and a callback that stops. Small pages (a few
 * keys) make every layout span many pages and every discovery several. */
#include "tests/support/testenv.h"

#include "common/s3/listpar.h"
#include "s3shard/error.h"
#include "s3shard/s3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKET "lptest"

static s3s_test_s3rver srv;
static s3s_s3 *s3;

typedef struct keylist {
    char **keys;
    size_t n;
    size_t stop_at; /* > 0: return 9 at this key */
} keylist;

static int collect_cb(void *ud, const char *key, uint64_t size, const char *etag, int64_t mtime)
{
    keylist *l = ud;
    (void)size;
    (void)mtime;
    assert_true(strlen(etag) > 0);
    l->keys = realloc(l->keys, (l->n + 1) * sizeof *l->keys);
    assert_non_null(l->keys);
    l->keys[l->n++] = strdup(key);
    return l->stop_at > 0 && l->n >= l->stop_at ? 9 : 0;
}

static void keylist_free(keylist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i]);
    free(l->keys);
    memset(l, 0, sizeof *l);
}

static void put(const char *key)
{
    assert_int_equal(s3s_s3_put(s3, BUCKET, key, key, strlen(key), NULL), 0);
}

static void put_fmt(const char *fmt, unsigned a, unsigned b)
{
    char key[256];
    snprintf(key, sizeof key, fmt, a, b);
    put(key);
}

static int setup(void **state)
{
    (void)state;
    static const char *const buckets[] = {BUCKET, NULL};
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    unsetenv("S3SHARD_LIST_STRATEGY");
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
    /* nested: class folders, keys between and beside them, markers */
    for (unsigned c = 0; c < 6; c++)
        for (unsigned k = 0; k < 9; k++)
            put_fmt("n/c%02u/k%02u", c, k);
    put("n/c02/"); /* a folder marker object inside a folder with keys */
    put("n/empty/"); /* an empty folder: only its marker */
    /* Not "n/c03" nor "n/c03-x": s3rver walks its folders in file-name order, so
     * it returns a key named like a folder, or like it plus a byte below '/',
     * after that folder's keys (S3 orders by key bytes), and a StartAfter
     * listing then skips it. */
    put("n/c030"); /* sorts after the folder ('0' > '/') */
    put("n/a top key"); /* a key directly under the prefix, first */
    put("n/zz top"); /* and last */
    put("n/c04/sub/deep/x1"); /* deeper nesting */
    put("n/c04/sub/deep/x2");
    put("n/c04/sub/y");
    put("n/sp ace/k+1=2&3");
    put("n/\xc3\xbc/k%41");
    put("n/c05/x<y>z\"q'");
    for (unsigned k = 0; k < 40; k++)
        put_fmt("n/deep/a/b%u/k%02u", k % 4, k);
    /* folders and keys alternating: a discovery of many pages, each ending
     * between a folder and the key after it */
    for (unsigned i = 0; i < 12; i++) {
        put_fmt("m/f%02u/k%u", i, 0);
        put_fmt("m/f%02u/k%u", i, 1);
        put_fmt("m/g%02u%.0u", i, 0);
    }
    /* flat */
    for (unsigned k = 0; k < 60; k++)
        put_fmt("f/k%03u%.0u", k, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    s3s_s3_destroy(s3);
    s3s_test_s3rver_stop(&srv);
    return 0;
}

/* Every strategy and page size lists exactly what the sequential listing does. */
static void check_prefix(const char *prefix, size_t expect)
{
    keylist want = {0};
    assert_int_equal(s3s_s3_list(s3, BUCKET, prefix, NULL, collect_cb, &want), 0);
    assert_int_equal(want.n, expect);
    static const int strategies[] = {S3S__LIST_SEQ, S3S__LIST_PAR, S3S__LIST_ADAPTIVE,
                                     S3S__LIST_PROBE_SEQ, S3S__LIST_PROBE_PAR};
    static const unsigned pages[] = {2, 7, 0};
    static const unsigned pars[] = {2, 16};
    for (size_t s = 0; s < 5; s++)
        for (size_t p = 0; p < 3; p++)
            for (size_t q = 0; q < 2; q++) {
                keylist got = {0};
                int chosen = -1;
                int rc = s3s__list_parallel_ex(s3, BUCKET, prefix, pars[q], pages[p], strategies[s],
                                               &chosen, collect_cb, &got);
                if (rc != 0)
                    fail_msg("%s strategy %d page %u par %u: %s", prefix ? prefix : "(none)",
                             strategies[s], pages[p], pars[q], s3s_s3_errmsg(s3));
                assert_true(chosen == S3S__LIST_SEQ || chosen == S3S__LIST_PAR);
                if (strategies[s] == S3S__LIST_SEQ || strategies[s] == S3S__LIST_PAR)
                    assert_int_equal(chosen, strategies[s]);
                if (strategies[s] == S3S__LIST_PROBE_SEQ)
                    assert_int_equal(chosen, S3S__LIST_SEQ);
                /* PROBE_PAR: parallel when the first page was truncated and
                 * showed folders or a key to split at */
                if (strategies[s] == S3S__LIST_PROBE_PAR && pages[p] > 0 && want.n > 3 * pages[p])
                    assert_int_equal(chosen, S3S__LIST_PAR);
                for (size_t i = 0; i < want.n || i < got.n; i++)
                    if (i >= want.n || i >= got.n || strcmp(got.keys[i], want.keys[i]) != 0)
                        fail_msg("%s strategy %d page %u par %u: key %zu is '%s', want '%s' "
                                 "(%zu keys, want %zu)",
                                 prefix ? prefix : "(none)", strategies[s], pages[p], pars[q], i,
                                 i < got.n ? got.keys[i] : "(end)",
                                 i < want.n ? want.keys[i] : "(end)", got.n, want.n);
                keylist_free(&got);
            }
    keylist_free(&want);
}

static void test_nested(void **state)
{
    (void)state;
    check_prefix("n/", 6 * 9 + 5 + 3 + 3 + 40);
}

static void test_nested_folder(void **state)
{
    (void)state;
    check_prefix("n/deep/", 40); /* only folders below */
    check_prefix("n/c04/", 9 + 3);
    check_prefix("m/", 36);
}

static void test_flat(void **state)
{
    (void)state;
    check_prefix("f/", 60);
}

static void test_whole_bucket(void **state)
{
    (void)state;
    check_prefix(NULL, 6 * 9 + 5 + 3 + 3 + 40 + 36 + 60);
    check_prefix("nothing/", 0);
}

/* A callback that stops: its value comes back and nothing is left in flight. */
static void test_stop(void **state)
{
    (void)state;
    for (int s = S3S__LIST_ADAPTIVE; s <= S3S__LIST_PAR; s++) {
        keylist got = {.stop_at = 30};
        assert_int_equal(s3s__list_parallel_ex(s3, BUCKET, "n/", 8, 4, s, NULL, collect_cb, &got),
                         9);
        assert_int_equal(got.n, 30);
        keylist_free(&got);
    }
    /* The public entry point, forced by the environment. */
    setenv("S3SHARD_LIST_STRATEGY", "par", 1);
    keylist got = {0};
    assert_int_equal(s3s_s3_list_parallel(s3, BUCKET, "n/", 8, collect_cb, &got), 0);
    assert_int_equal(got.n, 6 * 9 + 5 + 3 + 3 + 40);
    keylist_free(&got);
    unsetenv("S3SHARD_LIST_STRATEGY");
    assert_int_equal(s3s__list_parallel_ex(s3, "no-such-bucket", "n/", 8, 4, S3S__LIST_PAR, NULL,
                                           collect_cb, &got),
                     S3S_ENOTFOUND);
    assert_int_equal(got.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested), cmocka_unit_test(test_nested_folder),
        cmocka_unit_test(test_flat),   cmocka_unit_test(test_whole_bucket),
        cmocka_unit_test(test_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
