/* spot_test.c: the Spot notice poller against a fake instance-metadata
 * service: a thread serving HTTP/1.1 on 127.0.0.1 (real sockets, real curl). */
#include "tests/support/testenv.h"

#include "s3shard/error.h"
#include "worker/spot.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct fake_imds {
    int lfd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    int stop;
    /* behaviour */
    int token_status; /* status for PUT /latest/api/token */
    int notice_after; /* GETs answered 404 before the notice appears; -1: never */
    const char *notice_body;
    /* what it saw */
    int puts_with_ttl, gets, gets_with_token, gets_without_token;
} fake_imds;

static void reply(int fd, int status, const char *body)
{
    char buf[2048];
    const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Error";
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", status,
                     reason, strlen(body), body);
    ssize_t w = write(fd, buf, (size_t)n);
    (void)w;
}

static void *serve(void *arg)
{
    fake_imds *f = arg;
    for (;;) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        int pr = poll(&p, 1, 50);
        pthread_mutex_lock(&f->mu);
        int stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        if (pr <= 0)
            continue;
        int c = accept(f->lfd, NULL, NULL);
        if (c < 0)
            continue;
        char req[4096];
        size_t len = 0;
        while (len < sizeof req - 1) {
            ssize_t r = read(c, req + len, sizeof req - 1 - len);
            if (r <= 0)
                break;
            len += (size_t)r;
            req[len] = '\0';
            if (strstr(req, "\r\n\r\n") != NULL)
                break;
        }
        req[len] = '\0';
        pthread_mutex_lock(&f->mu);
        if (strncmp(req, "PUT /latest/api/token ", 22) == 0) {
            if (strcasestr(req, "\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n") != NULL)
                f->puts_with_ttl++;
            reply(c, f->token_status, f->token_status == 200 ? "tok-123\n" : "");
        } else if (strncmp(req, "GET /latest/meta-data/spot/instance-action ", 43) == 0) {
            if (strcasestr(req, "\r\nX-aws-ec2-metadata-token: tok-123\r\n") != NULL)
                f->gets_with_token++;
            else
                f->gets_without_token++;
            int n = f->gets++;
            if (f->notice_after >= 0 && n >= f->notice_after)
                reply(c, 200, f->notice_body);
            else
                reply(c, 404, "");
        } else {
            reply(c, 400, "");
        }
        pthread_mutex_unlock(&f->mu);
        close(c);
    }
    return NULL;
}

static fake_imds *fake_start(int token_status, int notice_after, const char *body)
{
    fake_imds *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->token_status = token_status;
    f->notice_after = notice_after;
    f->notice_body = body;
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(f->lfd, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
    return f;
}

static void fake_stop(fake_imds *f)
{
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static const char *url_of(fake_imds *f, char *buf, size_t n)
{
    snprintf(buf, n, "http://127.0.0.1:%d/", f->port);
    return buf;
}

#define NOTICE "{\"action\": \"terminate\", \"time\": \"2026-11-26T10:00:00Z\"}"

static void test_no_notice_uses_imdsv2_token(void **state)
{
    (void)state;
    fake_imds *f = fake_start(200, -1, NOTICE);
    char url[64];
    s3s__spot_notice n;
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__spot_check(url_of(f, url, sizeof url), 2000, &n, &eb), 0);
    assert_int_equal(n.present, 0);
    assert_int_equal(f->puts_with_ttl, 1);
    assert_int_equal(f->gets_with_token, 1);
    assert_int_equal(f->gets_without_token, 0);
    fake_stop(f);
}

static void test_notice_parsed(void **state)
{
    (void)state;
    fake_imds *f = fake_start(200, 0, NOTICE);
    char url[64];
    s3s__spot_notice n;
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__spot_check(url_of(f, url, sizeof url), 2000, &n, &eb), 0);
    assert_int_equal(n.present, 1);
    assert_string_equal(n.action, "terminate");
    assert_string_equal(n.time, "2026-11-26T10:00:00Z");
    fake_stop(f);
}

static void test_imdsv1_fallback(void **state)
{
    (void)state;
    fake_imds *f = fake_start(405, 0, "{\"action\": \"stop\"}");
    char url[64];
    s3s__spot_notice n;
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__spot_check(url_of(f, url, sizeof url), 2000, &n, &eb), 0);
    assert_int_equal(n.present, 1);
    assert_string_equal(n.action, "stop");
    assert_string_equal(n.time, "");
    assert_int_equal(f->gets_without_token, 1);
    fake_stop(f);
}

static void test_malformed_notice(void **state)
{
    (void)state;
    fake_imds *f = fake_start(200, 0, "{\"action\": 5}");
    char url[64];
    s3s__spot_notice n;
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__spot_check(url_of(f, url, sizeof url), 2000, &n, &eb), S3S_EPARSE);
    assert_non_null(strstr(eb.msg, "\"action\""));
    assert_int_equal(n.present, 0);
    fake_stop(f);
    f = fake_start(200, 0, "not json");
    assert_int_equal(s3s__spot_check(url_of(f, url, sizeof url), 2000, &n, &eb), S3S_EPARSE);
    fake_stop(f);
}

static void test_unreachable(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s3s_test_free_port());
    s3s__spot_notice n;
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__spot_check(url, 500, &n, &eb), S3S_ENETWORK);
    assert_non_null(strstr(eb.msg, "/latest/api/token"));
}

static void test_endpoint_order(void **state)
{
    (void)state;
    unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    assert_string_equal(s3s__spot_endpoint(NULL), "http://169.254.169.254");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9", 1);
    assert_string_equal(s3s__spot_endpoint(NULL), "http://127.0.0.1:9");
    assert_string_equal(s3s__spot_endpoint(""), "http://127.0.0.1:9");
    assert_string_equal(s3s__spot_endpoint("http://x"), "http://x");
    unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
}

typedef struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    char action[32];
} seen;

static void on_notice(void *ud, const s3s__spot_notice *n)
{
    seen *s = ud;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    snprintf(s->action, sizeof s->action, "%s", n->action);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void test_poller_fires_once(void **state)
{
    (void)state;
    fake_imds *f = fake_start(200, 3, NOTICE);
    char url[64];
    seen s = {.calls = 0};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    /* The endpoint comes from the environment, as AWS SDKs take it. */
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url_of(f, url, sizeof url), 1);
    s3s__spot_opts o = {.interval_ms = 20, .timeout_ms = 2000, .on_notice = on_notice, .ud = &s};
    s3s__spot *sp = NULL;
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__spot_start(&sp, &o, &eb), 0);
    pthread_mutex_lock(&s.mu);
    while (s.calls == 0)
        pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    s3s__spot_stop(sp);
    unsetenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.action, "terminate");
    assert_int_equal(f->gets, 4); /* three 404s, then the notice, then no more polls */
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    fake_stop(f);
}

static void test_poller_stops_without_notice(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s3s_test_free_port());
    seen s = {.calls = 0};
    s3s__spot_opts o = {.endpoint = url, .interval_ms = 60000, .on_notice = on_notice, .ud = &s};
    s3s__spot *sp = NULL;
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__spot_start(&sp, &o, &eb), 0);
    while (s3s__spot_polls(sp) == 0)
        usleep(10000);
    s3s__spot_stop(sp); /* must not wait out the 60 s interval */
    assert_int_equal(s.calls, 0);
    s3s__spot_opts bad = {.endpoint = url};
    assert_int_equal(s3s__spot_start(&sp, &bad, &eb), S3S_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_notice_uses_imdsv2_token),
        cmocka_unit_test(test_notice_parsed),
        cmocka_unit_test(test_imdsv1_fallback),
        cmocka_unit_test(test_malformed_notice),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_endpoint_order),
        cmocka_unit_test(test_poller_fires_once),
        cmocka_unit_test(test_poller_stops_without_notice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
