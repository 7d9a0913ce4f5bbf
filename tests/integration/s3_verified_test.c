/* s3_verified_test.c: the S3 client against a real s3rver behind the SigV4
 * verifying proxy, so every request of the suite is signature-checked by
 * botocore's signer. More than 1,000 keys (pagination, plain and parallel
 * listing), keys with spaces, UTF-8, '+', '=', '%', '?', '#', ranged GETs,
 * multipart PUT, presigned GET; then a wrong secret must fail with a 403 that
 * names the bucket, the key and SignatureDoesNotMatch. */
#include "s3shard/error.h"
#include "s3shard/s3.h"
#include "tests/support/proxies.h"
#include "tests/support/testenv.h"

#include <stdio.h>
#include <string.h>

#define NKEYS 1100

typedef struct env {
    s3s_test_s3rver srv;
    s3s_test_proxy verify;
    s3s_s3 *s3;
} env;

static s3s_s3 *client(const env *e, const char *secret)
{
    s3s_s3_opts o;
    s3s_s3_opts_init(&o);
    o.endpoint = e->verify.endpoint;
    o.region = "us-east-1";
    o.access_key_id = "S3RVER";
    o.secret_access_key = secret;
    o.path_style = 1;
    o.max_attempts = 2;
    o.retry_base_ms = 10;
    o.multipart_threshold = 5u << 20;
    o.part_size = 5u << 20;
    o.range_chunk = 1u << 20;
    s3s_s3 *s3 = NULL;
    if (s3s_s3_create(&s3, &o) != 0) {
        fprintf(stderr, "s3s_s3_create: %s\n", s3s_s3_last_create_error());
        return NULL;
    }
    return s3;
}

static int setup(void **state)
{
    static env e;
    memset(&e, 0, sizeof(e));
    *state = &e; /* teardown runs even when setup fails */
    const char *const buckets[] = {"bkt", NULL};
    if (s3s_test_s3rver_start(&e.srv, buckets) != 0 ||
        s3s_test_sigv4proxy_start(&e.verify, e.srv.port, NULL) != 0)
        return -1;
    e.s3 = client(&e, "S3RVER");
    *state = &e;
    return e.s3 ? 0 : -1;
}

static int teardown(void **state)
{
    env *e = *state;
    s3s_s3_destroy(e->s3);
    s3s_test_proxy_stop(&e->verify);
    s3s_test_s3rver_stop(&e->srv);
    return 0;
}

/* A growing byte buffer for GET callbacks. */
typedef struct sinkbuf {
    char *p;
    size_t len, cap;
} sinkbuf;

static int sink_cb(void *ud, const void *data, size_t len)
{
    sinkbuf *b = ud;
    if (b->len + len > b->cap) {
        size_t ncap = (b->len + len) * 2;
        char *np = realloc(b->p, ncap);
        if (np == NULL)
            return -1;
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

static const char *const odd_keys[] = {
    "with space",
    "dir/sub dir/file name.txt",
    "ünïcødé/日本語",
    "plus+sign",
    "equals=sign",
    "percent%41",
    "question?mark",
    "hash#tag",
    "all +=%?#& ;,:@$!'()*~",
    "trailing space ",
};

static void test_odd_keys_round_trip(void **state)
{
    env *e = *state;
    for (size_t i = 0; i < sizeof(odd_keys) / sizeof(odd_keys[0]); i++) {
        char body[256];
        int n = snprintf(body, sizeof(body), "body of [%s]", odd_keys[i]);
        int rc = s3s_s3_put(e->s3, "bkt", odd_keys[i], body, (size_t)n, NULL);
        if (rc != 0)
            fail_msg("put %s: %s", odd_keys[i], s3s_s3_errmsg(e->s3));
        sinkbuf b = {0};
        s3s_s3_objinfo info;
        rc = s3s_s3_get(e->s3, "bkt", odd_keys[i], 0, S3S_TO_END, NULL, sink_cb, &b, &info);
        if (rc != 0)
            fail_msg("get %s: %s", odd_keys[i], s3s_s3_errmsg(e->s3));
        if (b.len != (size_t)n || memcmp(b.p, body, (size_t)n) != 0 || info.size != (uint64_t)n)
            fail_msg("get %s: %zu bytes (want %d), info.size %llu", odd_keys[i], b.len, n,
                     (unsigned long long)info.size);
        free(b.p);
        memset(&info, 0, sizeof(info));
        rc = s3s_s3_head(e->s3, "bkt", odd_keys[i], &info);
        if (rc != 0 || info.size != (uint64_t)n)
            fail_msg("head %s: rc %d, size %llu: %s", odd_keys[i], rc,
                     (unsigned long long)info.size, s3s_s3_errmsg(e->s3));
    }
    assert_int_equal(s3s_test_sigv4proxy_count(&e->verify, "refused"), 0);
}

static void test_ranged_gets(void **state)
{
    env *e = *state;
    char data[10000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7 + 3);
    assert_int_equal(s3s_s3_put(e->s3, "bkt", "ranged obj", data, sizeof(data), NULL), 0);
    const uint64_t cases[][2] = {{0, 1}, {0, 10000}, {1234, 100}, {9999, 1}, {5000, S3S_TO_END}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sinkbuf b = {0};
        int rc = s3s_s3_get(e->s3, "bkt", "ranged obj", cases[i][0], cases[i][1], NULL, sink_cb, &b,
                            NULL);
        if (rc != 0)
            fail_msg("range %d: %s", (int)i, s3s_s3_errmsg(e->s3));
        uint64_t want = cases[i][1] == S3S_TO_END ? sizeof(data) - cases[i][0] : cases[i][1];
        assert_int_equal(b.len, want);
        assert_memory_equal(b.p, data + cases[i][0], want);
        free(b.p);
    }
    sinkbuf b = {0};
    assert_int_equal(s3s_s3_get(e->s3, "bkt", "ranged obj", 20000, 10, NULL, sink_cb, &b, NULL),
                     S3S_ERANGE);
    free(b.p);
    assert_int_equal(
        s3s_s3_get(e->s3, "bkt", "no such key", 0, S3S_TO_END, NULL, sink_cb, &b, NULL),
        S3S_ENOTFOUND);
    free(b.p);
}

static void test_multipart_put_and_parallel_get(void **state)
{
    env *e = *state;
    size_t len = (12u << 20) + 12345; /* three parts of 5 MiB, the last short */
    char *data = malloc(len);
    assert_non_null(data);
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (char)(x >> 24);
    }
    long before = s3s_test_sigv4proxy_count(&e->verify, "verified");
    int rc = s3s_s3_put(e->s3, "bkt", "multi/part object", data, len, NULL);
    if (rc != 0)
        fail_msg("multipart put: %s", s3s_s3_errmsg(e->s3));
    /* create + 3 parts + complete, all verified */
    assert_true(s3s_test_sigv4proxy_count(&e->verify, "verified") - before >= 5);
    sinkbuf b = {0};
    rc =
        s3s_s3_get_parallel(e->s3, "bkt", "multi/part object", 0, S3S_TO_END, 4, sink_cb, &b, NULL);
    if (rc != 0)
        fail_msg("parallel get: %s", s3s_s3_errmsg(e->s3));
    assert_int_equal(b.len, len);
    assert_memory_equal(b.p, data, len);
    free(b.p);
    free(data);
}

typedef struct listed {
    long n;
    char last[1024];
    int out_of_order;
    long odd_seen;
} listed;

static int list_cb(void *ud, const char *key, uint64_t size, const char *etag, int64_t mtime)
{
    (void)size;
    (void)etag;
    (void)mtime;
    listed *l = ud;
    if (l->n > 0 && strcmp(l->last, key) >= 0)
        l->out_of_order++;
    snprintf(l->last, sizeof(l->last), "%s", key);
    for (size_t i = 0; i < sizeof(odd_keys) / sizeof(odd_keys[0]); i++)
        if (strcmp(key, odd_keys[i]) == 0)
            l->odd_seen++;
    l->n++;
    return 0;
}

static void test_more_than_1000_keys(void **state)
{
    env *e = *state;
    for (int i = 0; i < NKEYS; i++) {
        char key[64];
        snprintf(key, sizeof(key), "many/k %05d+=", i);
        int rc = s3s_s3_put(e->s3, "bkt", key, key, strlen(key), NULL);
        if (rc != 0)
            fail_msg("put %s: %s", key, s3s_s3_errmsg(e->s3));
    }
    listed l = {0};
    assert_int_equal(s3s_s3_list(e->s3, "bkt", "many/", NULL, list_cb, &l), 0);
    assert_int_equal(l.n, NKEYS);
    assert_int_equal(l.out_of_order, 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(s3s_s3_list_parallel(e->s3, "bkt", "many/", 8, list_cb, &l), 0);
    assert_int_equal(l.n, NKEYS);
    assert_int_equal(l.out_of_order, 0);
    memset(&l, 0, sizeof(l));
    assert_int_equal(s3s_s3_list(e->s3, "bkt", "many/", "many/k 00999+=", list_cb, &l), 0);
    assert_int_equal(l.n, NKEYS - 1000);
    memset(&l, 0, sizeof(l));
    assert_int_equal(s3s_s3_list(e->s3, "bkt", "", NULL, list_cb, &l), 0);
    assert_int_equal(l.odd_seen, (long)(sizeof(odd_keys) / sizeof(odd_keys[0])));
    memset(&l, 0, sizeof(l));
    assert_int_equal(s3s_s3_list(e->s3, "bkt", "ünïcødé/", NULL, list_cb, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(s3s_test_sigv4proxy_count(&e->verify, "refused"), 0);
}

static void test_presigned_get(void **state)
{
    env *e = *state;
    const char *key = "all +=%?#& ;,:@$!'()*~";
    char *url = NULL;
    assert_int_equal(s3s_s3_presign(e->s3, "GET", "bkt", key, 300, &url), 0);
    const char *prefix = e->verify.endpoint;
    assert_true(strncmp(url, prefix, strlen(prefix)) == 0);
    long before = s3s_test_sigv4proxy_count(&e->verify, "presigned");
    char *body = NULL;
    assert_int_equal(s3s_test_http(e->verify.port, "GET", url + strlen(prefix), NULL, &body), 200);
    assert_non_null(strstr(body, key));
    assert_int_equal(s3s_test_sigv4proxy_count(&e->verify, "presigned"), before + 1);
    free(body);
    free(url);
}

static void test_wrong_secret_is_a_clear_403(void **state)
{
    env *e = *state;
    s3s_s3 *bad = client(e, "not-the-secret");
    assert_non_null(bad);
    long refused = s3s_test_sigv4proxy_count(&e->verify, "refused");
    sinkbuf b = {0};
    int rc = s3s_s3_get(bad, "bkt", "with space", 0, S3S_TO_END, NULL, sink_cb, &b, NULL);
    assert_int_equal(rc, S3S_EACCESS);
    assert_int_equal(b.len, 0);
    const char *msg = s3s_s3_errmsg(bad);
    assert_non_null(strstr(msg, "bkt"));
    assert_non_null(strstr(msg, "with space"));
    assert_non_null(strstr(msg, "SignatureDoesNotMatch"));
    assert_non_null(strstr(msg, "403"));
    /* 403 is not retried */
    assert_int_equal(s3s_test_sigv4proxy_count(&e->verify, "refused"), refused + 1);
    free(b.p);
    s3s_s3_destroy(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_odd_keys_round_trip),
        cmocka_unit_test(test_ranged_gets),
        cmocka_unit_test(test_multipart_put_and_parallel_get),
        cmocka_unit_test(test_more_than_1000_keys),
        cmocka_unit_test(test_presigned_get),
        cmocka_unit_test(test_wrong_secret_is_a_clear_403),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
