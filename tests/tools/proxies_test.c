/* proxies_test.c: the C helpers of tests/support/proxies.h driving the real
 * proxies, chained as client -> fault proxy -> verifying proxy -> s3rver. */
#include "tests/support/proxies.h"
#include "tests/support/testenv.h"

#include <stdio.h>
#include <string.h>

typedef struct chain {
    s3s_test_s3rver srv;
    s3s_test_proxy verify, fault;
} chain;

static int chain_up(void **state)
{
    static chain c;
    memset(&c, 0, sizeof(c));
    *state = &c; /* teardown runs even when setup fails */
    const char *const buckets[] = {"bkt", NULL};
    if (s3s_test_s3rver_start(&c.srv, buckets) != 0)
        return -1;
    if (s3s_test_sigv4proxy_start(&c.verify, c.srv.port, NULL) != 0)
        return -1;
    const char *const args[] = {"--seed", "42", NULL};
    if (s3s_test_faultproxy_start(&c.fault, c.verify.port, args) != 0)
        return -1;
    *state = &c;
    return 0;
}

static int chain_down(void **state)
{
    chain *c = *state;
    s3s_test_proxy_stop(&c->fault);
    s3s_test_proxy_stop(&c->verify);
    s3s_test_proxy_stop(&c->verify); /* idempotent */
    s3s_test_s3rver_stop(&c->srv);
    return 0;
}

static void test_unsigned_request_is_refused_and_counted(void **state)
{
    chain *c = *state;
    assert_int_equal(s3s_test_faultproxy_reset(&c->fault, 1), 0);
    assert_int_equal(s3s_test_sigv4proxy_reset(&c->verify), 0);
    char *body = NULL;
    int st = s3s_test_http(c->fault.port, "GET", "/bkt/dir/a%20b", NULL, &body);
    assert_int_equal(st, 403);
    assert_non_null(body);
    assert_non_null(strstr(body, "<Code>AccessDenied</Code>"));
    assert_non_null(strstr(body, "<Resource>/bkt/dir/a b</Resource>"));
    free(body);
    assert_int_equal(s3s_test_sigv4proxy_count(&c->verify, "unsigned"), 1);
    assert_int_equal(s3s_test_sigv4proxy_count(&c->verify, "refused"), 1);
    assert_int_equal(s3s_test_sigv4proxy_count(&c->verify, "verified"), 0);
    assert_int_equal(s3s_test_faultproxy_count(&c->fault, "/bkt/dir/a b", "GET"), 1);
    assert_int_equal(s3s_test_faultproxy_count(&c->fault, "/bkt/dir/a b", "PUT"), 0);
    assert_int_equal(s3s_test_faultproxy_count(&c->fault, "/never/seen", "GET"), 0);
    assert_int_equal(s3s_test_faultproxy_count(&c->fault, NULL, "requests"), 1);
    assert_int_equal(s3s_test_faultproxy_count(&c->fault, NULL, "GET"), 1);
    assert_int_equal(s3s_test_faultproxy_count(&c->fault, NULL, "no_such_counter"), -1);
}

static void test_runtime_faults_and_reset(void **state)
{
    chain *c = *state;
    assert_int_equal(s3s_test_faultproxy_reset(&c->fault, 1), 0);
    assert_int_equal(s3s_test_faultproxy_config(&c->fault, "fault=slowdown\nfirst=2"), 0);
    char *body = NULL;
    assert_int_equal(s3s_test_http(c->fault.port, "GET", "/bkt/k", NULL, &body), 503);
    assert_non_null(strstr(body, "<Code>SlowDown</Code>"));
    free(body);
    assert_int_equal(s3s_test_http(c->fault.port, "GET", "/bkt/k", NULL, NULL), 503);
    assert_int_equal(s3s_test_http(c->fault.port, "GET", "/bkt/k", NULL, NULL), 403);
    assert_int_equal(s3s_test_faultproxy_count(&c->fault, "/bkt/k", "faults"), 2);
    assert_int_equal(s3s_test_faultproxy_count(&c->fault, NULL, "slowdown"), 2);
    /* Reset zeroes the per-key counts, so the first two fault again. */
    assert_int_equal(s3s_test_faultproxy_reset(&c->fault, 0), 0);
    assert_int_equal(s3s_test_http(c->fault.port, "GET", "/bkt/k", NULL, NULL), 503);
    /* Restoring the start configuration clears the fault. */
    assert_int_equal(s3s_test_faultproxy_reset(&c->fault, 1), 0);
    assert_int_equal(s3s_test_http(c->fault.port, "GET", "/bkt/k", NULL, NULL), 403);
    /* A reset connection: no status at all. */
    assert_int_equal(s3s_test_faultproxy_config(&c->fault, "fault=reset&first=1"), 0);
    assert_int_equal(s3s_test_http(c->fault.port, "GET", "/bkt/r", NULL, NULL), -1);
    assert_int_equal(s3s_test_faultproxy_count(&c->fault, NULL, "reset"), 1);
}

static void test_bad_config_is_refused(void **state)
{
    chain *c = *state;
    assert_int_equal(s3s_test_faultproxy_config(&c->fault, "fault=melt"), -1);
    assert_int_equal(s3s_test_faultproxy_config(&c->fault, "every"), -1);
    assert_int_equal(s3s_test_faultproxy_config(&c->fault, "rate=1.5"), -1);
    char *body = NULL;
    assert_int_equal(s3s_test_http(c->fault.port, "GET", "/__faultproxy/nothing", NULL, &body),
                     404);
    free(body);
}

static void test_bad_start_flags_fail(void **state)
{
    chain *c = *state;
    s3s_test_proxy p;
    const char *const bad[] = {"--fault", "melt", NULL};
    assert_int_equal(s3s_test_faultproxy_start(&p, c->srv.port, bad), -1);
    assert_int_equal(p.pid, 0);
    s3s_test_proxy_stop(&p);
}

static void test_closed_port_gives_minus_one(void **state)
{
    (void)state;
    assert_int_equal(s3s_test_http(s3s_test_free_port(), "GET", "/", NULL, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unsigned_request_is_refused_and_counted),
        cmocka_unit_test(test_runtime_faults_and_reset),
        cmocka_unit_test(test_bad_config_is_refused),
        cmocka_unit_test(test_bad_start_flags_fail),
        cmocka_unit_test(test_closed_port_gives_minus_one),
    };
    return cmocka_run_group_tests(tests, chain_up, chain_down);
}
