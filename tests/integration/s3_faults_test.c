/* s3_faults_test.c: the S3 client against a real s3rver behind the fault proxy.
 * For 503 SlowDown, 500, resets before and mid-body, stalls and short bodies,
 * the client retries and then returns exactly the right bytes, or fails with a
 * clear error; it never delivers wrong bytes. The proxy's request counts per key
 * show that the retries happened. */
#include "s3shard/error.h"
#include "s3shard/s3.h"
#include "tests/support/proxies.h"
#include "tests/support/testenv.h"

#include <stdio.h>
#include <string.h>

#define OBJ_SIZE (3u << 20)

typedef struct env {
    s3s_test_s3rver srv;
    s3s_test_proxy fault;
    s3s_s3 *s3;
    char *data;
} env;

static s3s_s3 *client_chunk(const env *e, unsigned max_attempts, uint64_t chunk)
{
    s3s_s3_opts o;
    s3s_s3_opts_init(&o);
    o.endpoint = e->fault.endpoint;
    o.region = "us-east-1";
    o.access_key_id = "S3RVER";
    o.secret_access_key = "S3RVER";
    o.path_style = 1;
    o.max_attempts = max_attempts;
    o.retry_base_ms = 5;
    o.retry_cap_ms = 50;
    o.stall_timeout_ms = 1000;
    o.multipart_threshold = 5u << 20;
    o.part_size = 5u << 20;
    o.range_chunk = chunk;
    s3s_s3 *s3 = NULL;
    if (s3s_s3_create(&s3, &o) != 0) {
        fprintf(stderr, "s3s_s3_create: %s\n", s3s_s3_last_create_error());
        return NULL;
    }
    return s3;
}

static s3s_s3 *client(const env *e, unsigned max_attempts)
{
    return client_chunk(e, max_attempts, 1u << 20);
}

static int setup(void **state)
{
    static env e;
    memset(&e, 0, sizeof(e));
    *state = &e; /* teardown runs even when setup fails */
    const char *const buckets[] = {"bkt", NULL};
    if (s3s_test_s3rver_start(&e.srv, buckets) != 0 ||
        s3s_test_faultproxy_start(&e.fault, e.srv.port, NULL) != 0)
        return -1;
    e.s3 = client(&e, 6);
    e.data = malloc(OBJ_SIZE);
    if (e.s3 == NULL || e.data == NULL)
        return -1;
    uint32_t x = 99;
    for (size_t i = 0; i < OBJ_SIZE; i++) {
        x = x * 1664525u + 1013904223u;
        e.data[i] = (char)(x >> 24);
    }
    if (s3s_s3_put(e.s3, "bkt", "obj", e.data, OBJ_SIZE, NULL) != 0)
        return -1;
    *state = &e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    s3s_s3_destroy(e->s3);
    free(e->data);
    s3s_test_proxy_stop(&e->fault);
    s3s_test_s3rver_stop(&e->srv);
    return 0;
}

/* A sink that checks every byte as it arrives: wrong bytes fail at once. */
typedef struct checker {
    const char *want;
    size_t want_len;
    size_t off; /* offset of the next expected byte in want */
    size_t got;
    int wrong;
} checker;

static int check_cb(void *ud, const void *data, size_t len)
{
    checker *c = ud;
    if (c->off + len > c->want_len || memcmp(c->want + c->off, data, len) != 0) {
        c->wrong = 1;
        return -1;
    }
    c->off += len;
    c->got += len;
    return 0;
}

/* get_all fetches "obj" with fault `kv` set, resetting counters first. */
static int get_all(env *e, s3s_s3 *s3, const char *kv, checker *c, int parallel)
{
    assert_int_equal(s3s_test_faultproxy_reset(&e->fault, 1), 0);
    if (kv != NULL)
        assert_int_equal(s3s_test_faultproxy_config(&e->fault, kv), 0);
    memset(c, 0, sizeof(*c));
    c->want = e->data;
    c->want_len = OBJ_SIZE;
    if (parallel)
        return s3s_s3_get_parallel(s3, "bkt", "obj", 0, S3S_TO_END, 3, check_cb, c, NULL);
    return s3s_s3_get(s3, "bkt", "obj", 0, S3S_TO_END, NULL, check_cb, c, NULL);
}

static void expect_recovered(env *e, const char *kv, long min_gets)
{
    checker c;
    int rc = get_all(e, e->s3, kv, &c, 0);
    if (rc != 0)
        fail_msg("[%s] get failed: %s", kv, s3s_s3_errmsg(e->s3));
    assert_false(c.wrong);
    assert_int_equal(c.got, OBJ_SIZE);
    long gets = s3s_test_faultproxy_count(&e->fault, "/bkt/obj", "GET");
    if (gets < min_gets)
        fail_msg("[%s] %ld GETs, expected at least %ld (retries)", kv, gets, min_gets);
    assert_true(s3s_test_faultproxy_count(&e->fault, "/bkt/obj", "faults") >= 1);
}

static void test_slowdown_is_retried(void **state)
{
    expect_recovered(*state, "fault=slowdown\nfirst=3\nmethod=GET", 4);
}

static void test_internal_error_is_retried(void **state)
{
    expect_recovered(*state, "fault=internal\nfirst=2\nmethod=GET", 3);
}

static void test_reset_before_response_is_retried(void **state)
{
    expect_recovered(*state, "fault=reset\nfirst=2\nmethod=GET", 3);
}

static void test_reset_mid_body_resumes_without_wrong_bytes(void **state)
{
    expect_recovered(*state, "fault=reset_mid\nfirst=2\nmethod=GET", 3);
}

static void test_short_body_is_retried(void **state)
{
    expect_recovered(*state, "fault=short\nfirst=1\nfault_at=1000000\nmethod=GET", 2);
}

static void test_stall_forever_times_out_and_is_retried(void **state)
{
    expect_recovered(*state, "fault=stall\nfirst=1\nstall_ms=0\nmethod=GET", 2);
}

static void test_stall_mid_body_times_out_and_is_retried(void **state)
{
    expect_recovered(*state, "fault=stall\nfirst=1\nstall_ms=0\nfault_at=100000\nmethod=GET", 2);
}

static void test_parallel_get_with_random_faults(void **state)
{
    env *e = *state;
    checker c;
    int rc = get_all(e, e->s3, "fault=reset_mid\nrate=0.3\nseed=5\nmethod=GET", &c, 1);
    if (rc != 0)
        fail_msg("parallel get failed: %s", s3s_s3_errmsg(e->s3));
    assert_false(c.wrong);
    assert_int_equal(c.got, OBJ_SIZE);
    assert_true(s3s_test_faultproxy_count(&e->fault, NULL, "reset_mid") >= 1);
}

/* The adaptive parallel GET (connections 0) ramps its ranges in flight up
 * and back while faults hit them: 96 pieces of 32 KiB, every byte checked,
 * with no fault, with resets mid-body and with short bodies. */
static void test_adaptive_parallel_get_bytes_right(void **state)
{
    env *e = *state;
    s3s_s3 *s3 = client_chunk(e, 8, 32u << 10);
    assert_non_null(s3);
    setenv("S3SHARD_GET_RAMP", "1", 1);
    static const char *const faults[] = {
        NULL,
        "fault=reset_mid\nrate=0.2\nseed=7\nmethod=GET",
        "fault=short\nrate=0.2\nseed=9\nfault_at=1000\nmethod=GET",
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        checker c;
        assert_int_equal(s3s_test_faultproxy_reset(&e->fault, 1), 0);
        if (faults[i] != NULL)
            assert_int_equal(s3s_test_faultproxy_config(&e->fault, faults[i]), 0);
        memset(&c, 0, sizeof c);
        c.want = e->data;
        c.want_len = OBJ_SIZE;
        int rc = s3s_s3_get_parallel(s3, "bkt", "obj", 0, S3S_TO_END, 0, check_cb, &c, NULL);
        if (rc != 0)
            fail_msg("[%s] adaptive get failed: %s", faults[i] ? faults[i] : "none",
                     s3s_s3_errmsg(s3));
        assert_false(c.wrong);
        assert_int_equal(c.got, OBJ_SIZE);
        if (faults[i] != NULL)
            assert_true(s3s_test_faultproxy_count(&e->fault, "/bkt/obj", "faults") >= 1);
        /* A range not at 0 and not ending at the end. */
        memset(&c, 0, sizeof c);
        c.want = e->data + 12345;
        c.want_len = 2000000;
        assert_int_equal(
            s3s_s3_get_parallel(s3, "bkt", "obj", 12345, 2000000, 0, check_cb, &c, NULL), 0);
        assert_int_equal(c.got, 2000000);
    }
    unsetenv("S3SHARD_GET_RAMP");
    s3s_s3_destroy(s3);
}

static void test_persistent_slowdown_fails_clearly(void **state)
{
    env *e = *state;
    s3s_s3 *s3 = client(e, 3);
    assert_non_null(s3);
    checker c;
    int rc = get_all(e, s3, "fault=slowdown\nmethod=GET", &c, 0);
    assert_int_not_equal(rc, 0);
    assert_true(rc == S3S_ESLOWDOWN || rc == S3S_EHTTP);
    assert_int_equal(c.got, 0);
    const char *msg = s3s_s3_errmsg(s3);
    assert_non_null(strstr(msg, "bkt"));
    assert_non_null(strstr(msg, "obj"));
    assert_non_null(strstr(msg, "SlowDown"));
    assert_int_equal(s3s_test_faultproxy_count(&e->fault, "/bkt/obj", "GET"), 3);
    s3s_s3_destroy(s3);
}

static void test_persistent_short_body_fails_never_wrong(void **state)
{
    env *e = *state;
    s3s_s3 *s3 = client(e, 2);
    assert_non_null(s3);
    checker c;
    int rc = get_all(e, s3, "fault=short\nmethod=GET\nfault_at=-1", &c, 0);
    assert_true(rc == S3S_ESHORT || rc == S3S_ENETWORK);
    assert_false(c.wrong); /* what did arrive was the right prefix */
    assert_true(c.got < OBJ_SIZE);
    assert_non_null(strstr(s3s_s3_errmsg(s3), "obj"));
    assert_int_equal(s3s_test_faultproxy_count(&e->fault, "/bkt/obj", "GET"), 2);
    s3s_s3_destroy(s3);
}

typedef struct counted {
    long n;
} counted;

static int count_cb(void *ud, const char *key, uint64_t size, const char *etag, int64_t mtime)
{
    (void)key;
    (void)size;
    (void)etag;
    (void)mtime;
    ((counted *)ud)->n++;
    return 0;
}

static void test_put_and_list_survive_faults(void **state)
{
    env *e = *state;
    assert_int_equal(s3s_test_faultproxy_reset(&e->fault, 1), 0);
    assert_int_equal(s3s_test_faultproxy_config(&e->fault, "fault=reset\nfirst=1\nmethod=PUT"), 0);
    for (int i = 0; i < 20; i++) {
        char key[32];
        snprintf(key, sizeof(key), "list/%02d", i);
        if (s3s_s3_put(e->s3, "bkt", key, key, strlen(key), NULL) != 0)
            fail_msg("put %s: %s", key, s3s_s3_errmsg(e->s3));
        assert_int_equal(s3s_test_faultproxy_count(&e->fault, NULL, "reset"), i + 1);
    }
    assert_int_equal(s3s_test_faultproxy_config(&e->fault, "fault=slowdown\nevery=2\nmethod=GET"),
                     0);
    counted n = {0};
    assert_int_equal(s3s_s3_list(e->s3, "bkt", "list/", NULL, count_cb, &n), 0);
    assert_int_equal(n.n, 20);
    assert_true(s3s_test_faultproxy_count(&e->fault, NULL, "slowdown") >= 1);
}

/* Parallel GET without a HEAD: the first ranged GET gives size and ETag, so
 * a small object is one request, a big one exactly one per piece; empty
 * objects and offsets at or past the end still get the right answer (a HEAD
 * then). */
static void test_parallel_get_needs_no_head(void **state)
{
    env *e = *state;
    checker c;
    int rc = get_all(e, e->s3, NULL, &c, 1);
    if (rc != 0)
        fail_msg("parallel get: %s", s3s_s3_errmsg(e->s3));
    assert_false(c.wrong);
    assert_int_equal(c.got, OBJ_SIZE);
    assert_int_equal(s3s_test_faultproxy_count(&e->fault, "/bkt/obj", "HEAD"), 0);
    /* 3 MiB in 1 MiB pieces: the first (which also says the size), then 2. */
    assert_int_equal(s3s_test_faultproxy_count(&e->fault, "/bkt/obj", "GET"), 3);

    assert_int_equal(s3s_s3_put(e->s3, "bkt", "small", "hello", 5, NULL), 0);
    assert_int_equal(s3s_s3_put(e->s3, "bkt", "empty", "", 0, NULL), 0);
    assert_int_equal(s3s_test_faultproxy_reset(&e->fault, 1), 0);
    memset(&c, 0, sizeof c);
    c.want = "hello";
    c.want_len = 5;
    s3s_s3_objinfo info;
    assert_int_equal(
        s3s_s3_get_parallel(e->s3, "bkt", "small", 0, S3S_TO_END, 4, check_cb, &c, &info), 0);
    assert_int_equal(c.got, 5);
    assert_false(c.wrong);
    assert_int_equal(info.size, 5);
    assert_true(info.etag[0] != '\0');
    assert_int_equal(s3s_test_faultproxy_count(&e->fault, "/bkt/small", "requests"), 1);
    /* A part in the middle, and the last byte. */
    memset(&c, 0, sizeof c);
    c.want = "ell";
    c.want_len = 3;
    assert_int_equal(s3s_s3_get_parallel(e->s3, "bkt", "small", 1, 3, 4, check_cb, &c, NULL), 0);
    assert_int_equal(c.got, 3);
    memset(&c, 0, sizeof c);
    c.want = "o";
    c.want_len = 1;
    assert_int_equal(
        s3s_s3_get_parallel(e->s3, "bkt", "small", 4, S3S_TO_END, 4, check_cb, &c, NULL), 0);
    assert_int_equal(c.got, 1);
    /* At or past the end of a non-empty object: S3S_ERANGE naming the size, as
     * with the HEAD first; a zero length there is fine. */
    memset(&c, 0, sizeof c);
    for (uint64_t off = 5; off <= 6; off++) {
        assert_int_equal(
            s3s_s3_get_parallel(e->s3, "bkt", "small", off, S3S_TO_END, 4, check_cb, &c, NULL),
            S3S_ERANGE);
        assert_non_null(strstr(s3s_s3_errmsg(e->s3), "past the end (5 bytes)"));
    }
    assert_int_equal(s3s_s3_get_parallel(e->s3, "bkt", "small", 5, 0, 4, check_cb, &c, &info), 0);
    assert_int_equal(info.size, 5);
    assert_int_equal(c.got, 0);
    /* An empty object: zero bytes, size 0. */
    info.size = 99;
    assert_int_equal(
        s3s_s3_get_parallel(e->s3, "bkt", "empty", 0, S3S_TO_END, 4, check_cb, &c, &info), 0);
    assert_int_equal(c.got, 0);
    assert_int_equal(info.size, 0);
    /* A missing key fails at once, naming it. */
    assert_int_equal(
        s3s_s3_get_parallel(e->s3, "bkt", "nope", 0, S3S_TO_END, 4, check_cb, &c, NULL),
        S3S_ENOTFOUND);
    assert_non_null(strstr(s3s_s3_errmsg(e->s3), "bkt/nope"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slowdown_is_retried),
        cmocka_unit_test(test_internal_error_is_retried),
        cmocka_unit_test(test_reset_before_response_is_retried),
        cmocka_unit_test(test_reset_mid_body_resumes_without_wrong_bytes),
        cmocka_unit_test(test_short_body_is_retried),
        cmocka_unit_test(test_stall_forever_times_out_and_is_retried),
        cmocka_unit_test(test_stall_mid_body_times_out_and_is_retried),
        cmocka_unit_test(test_parallel_get_with_random_faults),
        cmocka_unit_test(test_adaptive_parallel_get_bytes_right),
        cmocka_unit_test(test_parallel_get_needs_no_head),
        cmocka_unit_test(test_persistent_slowdown_fails_clearly),
        cmocka_unit_test(test_persistent_short_body_fails_never_wrong),
        cmocka_unit_test(test_put_and_list_survive_faults),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
