/* endpoint_test.c: endpoints (AWS by region, explicit, environment), path-style
 * and virtual-hosted addressing, key encoding in URLs; listsplit points; the
 * retry backoff's bounds. */
#include "tests/support/testenv.h"

#include "common/s3/endpoint.h"
#include "common/s3/http.h"
#include "common/s3/listsplit.h"
#include "s3shard/error.h"
#include "s3shard/s3.h"

#include <stdio.h>
#include <string.h>

static void target(const s3s__endpoint *e, const char *b, const char *k, const char *want_host,
                   const char *want_path)
{
    s3s__buf h, p;
    s3s__buf_init(&h, 4096);
    s3s__buf_init(&p, 4096);
    assert_int_equal(s3s__endpoint_target(e, b, k, &h, &p), 0);
    assert_string_equal(h.data, want_host);
    assert_string_equal(p.data, want_path);
    s3s__buf_fini(&h);
    s3s__buf_fini(&p);
}

static void test_aws_by_region(void **state)
{
    (void)state;
    s3s__endpoint e;
    s3s__errbuf eb;
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    assert_int_equal(s3s__endpoint_init(&e, NULL, "eu-west-1", -1, &eb), 0);
    assert_string_equal(e.scheme, "https");
    assert_string_equal(e.host, "s3.eu-west-1.amazonaws.com");
    assert_int_equal(e.path_style, 0);
    target(&e, "my-bucket", "a b/c+d", "my-bucket.s3.eu-west-1.amazonaws.com", "/a%20b/c%2Bd");
    target(&e, "my-bucket", NULL, "my-bucket.s3.eu-west-1.amazonaws.com", "/");
    /* Dots (TLS wildcard) and uppercase fall back to path-style. */
    target(&e, "my.bucket", "k", "s3.eu-west-1.amazonaws.com", "/my.bucket/k");
    target(&e, "My_Bucket", "k", "s3.eu-west-1.amazonaws.com", "/My_Bucket/k");
    s3s__endpoint_fini(&e);
    assert_int_equal(s3s__endpoint_init(&e, NULL, "bad region!", -1, &eb), S3S_ECONFIG);
}

static void test_custom_endpoint(void **state)
{
    (void)state;
    s3s__endpoint e;
    s3s__errbuf eb;
    assert_int_equal(s3s__endpoint_init(&e, "http://127.0.0.1:9000/", "us-east-1", -1, &eb), 0);
    assert_int_equal(e.path_style, 1);
    target(&e, "b", "dir/\xe1\x88\xb4 ?#%", "127.0.0.1:9000", "/b/dir/%E1%88%B4%20%3F%23%25");
    target(&e, "b", NULL, "127.0.0.1:9000", "/b");
    s3s__endpoint_fini(&e);
    /* Virtual-hosted on request, with a base path. */
    assert_int_equal(s3s__endpoint_init(&e, "https://minio.example:443/s3", "x", 0, &eb), 0);
    target(&e, "bucket", "k", "bucket.minio.example:443", "/s3/k");
    s3s__endpoint_fini(&e);
    /* From the environment, AWS_ENDPOINT_URL_S3 first. */
    setenv("AWS_ENDPOINT_URL", "http://general:1", 1);
    setenv("AWS_ENDPOINT_URL_S3", "http://s3only:2", 1);
    assert_int_equal(s3s__endpoint_init(&e, NULL, "us-east-1", -1, &eb), 0);
    assert_string_equal(e.host, "s3only:2");
    s3s__endpoint_fini(&e);
    unsetenv("AWS_ENDPOINT_URL_S3");
    assert_int_equal(s3s__endpoint_init(&e, NULL, "us-east-1", -1, &eb), 0);
    assert_string_equal(e.host, "general:1");
    s3s__endpoint_fini(&e);
    unsetenv("AWS_ENDPOINT_URL");
    /* Bad ones. */
    const char *bad[] = {"ftp://x",      "127.0.0.1:9000", "http://",
                         "http://a/b?c", "http://u@h",     "http://h h"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s3s__err_clear(&eb);
        assert_int_equal(s3s__endpoint_init(&e, bad[i], "us-east-1", -1, &eb), S3S_ECONFIG);
        assert_non_null(strstr(eb.msg, "endpoint"));
    }
}

static void test_uri_parse(void **state)
{
    (void)state;
    char *b = NULL, *k = NULL;
    assert_int_equal(s3s_uri_parse("s3://bucket/a/b c", &b, &k), 0);
    assert_string_equal(b, "bucket");
    assert_string_equal(k, "a/b c");
    free(b);
    free(k);
    assert_int_equal(s3s_uri_parse("s3://bucket", &b, &k), 0);
    assert_string_equal(k, "");
    free(b);
    free(k);
    assert_int_equal(s3s_uri_parse("s3:///k", &b, &k), S3S_EINVAL);
    assert_int_equal(s3s_uri_parse("http://b/k", &b, &k), S3S_EINVAL);
    assert_int_equal(s3s_uri_parse(NULL, &b, &k), S3S_EINVAL);
}

static void test_listsplit(void **state)
{
    (void)state;
    /* A page of a counter-named dataset: data/shard-000000 .. data/shard-000999. */
    static char buf[1000][32];
    const char *keys[1000];
    for (int i = 0; i < 1000; i++) {
        snprintf(buf[i], sizeof buf[i], "data/shard-%06d", i);
        keys[i] = buf[i];
    }
    char **pts = NULL;
    size_t n = 0;
    assert_int_equal(s3s__listsplit_points(&pts, &n, keys, 1000, "data/", NULL, 20), 0);
    assert_int_equal(n, 20);
    for (size_t i = 0; i < n; i++) {
        assert_true(strcmp(pts[i], keys[999]) > 0);
        assert_int_equal(strncmp(pts[i], "data/", 5), 0);
        if (i > 0)
            assert_true(strcmp(pts[i - 1], pts[i]) < 0);
    }
    /* The siblings of the counter's digits are among them. */
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found += strcmp(pts[i], "data/shard-001") == 0 || strcmp(pts[i], "data/shard-009") == 0;
    assert_int_equal(found, 2);
    for (size_t i = 0; i < n; i++)
        free(pts[i]);
    free(pts);
    /* An upper bound stops them. */
    assert_int_equal(s3s__listsplit_points(&pts, &n, keys, 1000, "data/", "data/shard-003", 100),
                     0);
    for (size_t i = 0; i < n; i++) {
        assert_true(strcmp(pts[i], "data/shard-003") < 0);
        free(pts[i]);
    }
    free(pts);
    assert_int_equal(s3s__listsplit_points(&pts, &n, keys, 0, "", NULL, 5), 0);
    assert_int_equal(n, 0);
}

static void test_backoff_bounds(void **state)
{
    (void)state;
    for (unsigned n = 1; n < 30; n++) {
        unsigned ceil = 100u << (n - 1 < 20 ? n - 1 : 20);
        if (ceil > 20000 || n > 20)
            ceil = 20000;
        for (int i = 0; i < 50; i++)
            assert_true(s3s__http_backoff_ms(100, 20000, n) <= ceil);
    }
    /* Full jitter: not always the same value. */
    unsigned a = s3s__http_backoff_ms(100, 20000, 8), same = 1;
    for (int i = 0; i < 20; i++)
        same &= s3s__http_backoff_ms(100, 20000, 8) == a;
    assert_false(same);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_by_region),  cmocka_unit_test(test_custom_endpoint),
        cmocka_unit_test(test_uri_parse),      cmocka_unit_test(test_listsplit),
        cmocka_unit_test(test_backoff_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
