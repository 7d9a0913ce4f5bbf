/* s3rver_test.c: the S3 client against a real s3rver on loopback: put, get
 * (whole, ranges, parallel ranges), head, delete, weird keys, listing past
 * 1,000 keys (sequential, parallel, StartAfter, one level), multipart upload,
 * presigned URLs and the error paths (404 naming the key, 416, 412, refused
 * connections after retries, a callback that stops). */
#include "tests/support/testenv.h"

#include "common/s3/http.h"
#include "s3shard/error.h"
#include "s3shard/s3.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BUCKET "itest"

static s3s_test_s3rver srv;

static int setup(void **state)
{
    (void)state;
    static const char *const buckets[] = {BUCKET, NULL};
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    return s3s_test_s3rver_start(&srv, buckets) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    s3s_test_s3rver_stop(&srv);
    return 0;
}

static s3s_s3 *client(uint64_t chunk, uint64_t threshold)
{
    s3s_s3_opts o;
    s3s_s3_opts_init(&o);
    o.endpoint = srv.endpoint;
    o.access_key_id = "S3RVER";
    o.secret_access_key = "S3RVER";
    o.region = "us-east-1";
    o.retry_base_ms = 10;
    if (chunk != 0)
        o.range_chunk = chunk;
    if (threshold != 0) {
        o.multipart_threshold = threshold;
        o.part_size = 5u << 20;
    }
    s3s_s3 *s3 = NULL;
    int rc = s3s_s3_create(&s3, &o);
    if (rc != 0)
        fail_msg("create: %s", s3s_s3_last_create_error());
    return s3;
}

typedef struct sink {
    char *data;
    size_t len, cap;
    int stop_after; /* >0: return 7 once this many calls happened */
    int calls;
} sink;

static int sink_cb(void *ud, const void *p, size_t n)
{
    sink *s = ud;
    if (s->stop_after > 0 && ++s->calls >= s->stop_after)
        return 7;
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2;
        s->data = realloc(s->data, s->cap);
    }
    memcpy(s->data + s->len, p, n);
    s->len += n;
    return 0;
}

static char *pattern(size_t n, unsigned seed)
{
    char *p = malloc(n + 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (char)x;
    }
    return p;
}

static void test_put_get_head_delete(void **state)
{
    (void)state;
    s3s_s3 *s3 = client(0, 0);
    char etag[72];
    const char *body = "hello, s3shard";
    assert_int_equal(s3s_s3_put(s3, BUCKET, "small.txt", body, strlen(body), etag), 0);
    assert_true(strlen(etag) > 0);
    sink s = {0};
    s3s_s3_objinfo info;
    assert_int_equal(s3s_s3_get(s3, BUCKET, "small.txt", 0, S3S_TO_END, NULL, sink_cb, &s, &info),
                     0);
    assert_int_equal(s.len, strlen(body));
    assert_memory_equal(s.data, body, s.len);
    assert_int_equal(info.size, strlen(body));
    assert_string_equal(info.etag, etag);
    s3s_s3_objinfo hi;
    assert_int_equal(s3s_s3_head(s3, BUCKET, "small.txt", &hi), 0);
    assert_int_equal(hi.size, strlen(body));
    assert_string_equal(hi.etag, etag);
    assert_true(hi.mtime > 1600000000);
    /* An empty object. */
    assert_int_equal(s3s_s3_put(s3, BUCKET, "empty", "", 0, NULL), 0);
    s.len = 0;
    assert_int_equal(s3s_s3_get(s3, BUCKET, "empty", 0, S3S_TO_END, NULL, sink_cb, &s, &info), 0);
    assert_int_equal(s.len, 0);
    assert_int_equal(info.size, 0);
    /* Delete, then it is gone; deleting again is fine. */
    assert_int_equal(s3s_s3_delete(s3, BUCKET, "small.txt"), 0);
    assert_int_equal(s3s_s3_head(s3, BUCKET, "small.txt", &hi), S3S_ENOTFOUND);
    assert_int_equal(s3s_s3_delete(s3, BUCKET, "small.txt"), 0);
    free(s.data);
    s3s_s3_destroy(s3);
}

static void test_ranges_and_parallel_get(void **state)
{
    (void)state;
    s3s_s3 *s3 = client(100000, 0); /* small pieces: many parallel ranges */
    size_t n = 3u << 20;
    char *data = pattern(n, 1);
    assert_int_equal(s3s_s3_put(s3, BUCKET, "big.bin", data, n, NULL), 0);
    sink s = {0};
    s3s_s3_objinfo info;
    assert_int_equal(s3s_s3_get(s3, BUCKET, "big.bin", 1000, 5000, NULL, sink_cb, &s, &info), 0);
    assert_int_equal(s.len, 5000);
    assert_memory_equal(s.data, data + 1000, 5000);
    assert_int_equal(info.size, n);
    s.len = 0;
    assert_int_equal(s3s_s3_get(s3, BUCKET, "big.bin", n - 10, S3S_TO_END, NULL, sink_cb, &s, NULL),
                     0);
    assert_int_equal(s.len, 10);
    assert_memory_equal(s.data, data + n - 10, 10);
    /* A range running past the end is cut at the end. */
    s.len = 0;
    assert_int_equal(s3s_s3_get(s3, BUCKET, "big.bin", n - 10, 100, NULL, sink_cb, &s, NULL), 0);
    assert_int_equal(s.len, 10);
    /* Parallel: whole and a middle part, in order. */
    s.len = 0;
    int rc = s3s_s3_get_parallel(s3, BUCKET, "big.bin", 0, S3S_TO_END, 8, sink_cb, &s, &info);
    if (rc != 0)
        fail_msg("get_parallel: %s", s3s_s3_errmsg(s3));
    assert_int_equal(s.len, n);
    assert_memory_equal(s.data, data, n);
    s.len = 0;
    assert_int_equal(
        s3s_s3_get_parallel(s3, BUCKET, "big.bin", 12345, 1000000, 4, sink_cb, &s, NULL), 0);
    assert_int_equal(s.len, 1000000);
    assert_memory_equal(s.data, data + 12345, 1000000);
    /* A callback that stops: its value comes back, in-flight pieces are dropped. */
    sink st = {0};
    st.stop_after = 3;
    assert_int_equal(
        s3s_s3_get_parallel(s3, BUCKET, "big.bin", 0, S3S_TO_END, 8, sink_cb, &st, NULL), 7);
    st.calls = 0;
    assert_int_equal(s3s_s3_get(s3, BUCKET, "big.bin", 0, S3S_TO_END, NULL, sink_cb, &st, NULL), 7);
    /* Past the end: 416. A wrong If-Match: 412. */
    assert_int_equal(s3s_s3_get(s3, BUCKET, "big.bin", n + 5, 10, NULL, sink_cb, &s, NULL),
                     S3S_ERANGE);
    assert_int_equal(
        s3s_s3_get(s3, BUCKET, "big.bin", 0, 10, "0123456789abcdef", sink_cb, &s, NULL),
        S3S_ECONFLICT);
    free(st.data);
    free(s.data);
    free(data);
    s3s_s3_destroy(s3);
}

static void test_not_found_message(void **state)
{
    (void)state;
    s3s_s3 *s3 = client(0, 0);
    sink s = {0};
    assert_int_equal(s3s_s3_get(s3, BUCKET, "no/such key", 0, S3S_TO_END, NULL, sink_cb, &s, NULL),
                     S3S_ENOTFOUND);
    const char *m = s3s_s3_errmsg(s3);
    assert_non_null(strstr(m, "GET"));
    assert_non_null(strstr(m, BUCKET "/no/such key"));
    assert_non_null(strstr(m, "404"));
    assert_non_null(strstr(m, "NoSuchKey"));
    assert_int_equal(s3s_s3_get(s3, "nobucket", "k", 0, S3S_TO_END, NULL, sink_cb, &s, NULL),
                     S3S_ENOTFOUND);
    assert_non_null(strstr(s3s_s3_errmsg(s3), "NoSuchBucket"));
    s3s_s3_destroy(s3);
}

typedef struct keylist {
    char **keys;
    size_t n;
    uint64_t bytes;
} keylist;
static int collect_cb(void *ud, const char *key, uint64_t size, const char *etag, int64_t mtime);
static void keylist_free(keylist *l);

static void test_weird_keys(void **state)
{
    (void)state;
    s3s_s3 *s3 = client(0, 0);
    const char *keys[] = {"weird/a b",  "weird/plus+equals=",         "weird/pct%41%",
                          "weird/q?h#", "weird/\xe1\x88\xb4\xc3\xa9", "weird/sp  ace/x"};
    /* No ".", ".." or empty segments: s3rver maps keys to file paths and folds them
     * (the client sends them as is: CURLOPT_PATH_AS_IS). */
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(s3s_s3_put(s3, BUCKET, keys[i], keys[i], strlen(keys[i]), NULL), 0);
        sink s = {0};
        assert_int_equal(s3s_s3_get(s3, BUCKET, keys[i], 0, S3S_TO_END, NULL, sink_cb, &s, NULL),
                         0);
        assert_int_equal(s.len, strlen(keys[i]));
        assert_memory_equal(s.data, keys[i], s.len);
        free(s.data);
    }
    /* Listed back exactly as written (no '.' segment lost on the way). */
    keylist l = {0};
    assert_int_equal(s3s_s3_list(s3, BUCKET, "weird/", NULL, collect_cb, &l), 0);
    assert_int_equal(l.n, 6);
    int found = 0;
    for (size_t i = 0; i < l.n; i++)
        for (size_t k = 0; k < 6; k++)
            found += strcmp(l.keys[i], keys[k]) == 0;
    assert_int_equal(found, 6);
    keylist_free(&l);
    s3s_s3_destroy(s3);
}

/* Concurrent PUTs through the engine: s3rver does ~300 small PUTs/s. */
static void put_many(s3s_s3 *s3, const char *fmt, unsigned n)
{
    enum { W = 16 };
    s3s__xfer xs[W];
    char keys[W][128];
    unsigned next = 0, done = 0, inflight = 0;
    for (int i = 0; i < W; i++)
        s3s__xfer_init(&xs[i]);
    int free_slot[W];
    for (int i = 0; i < W; i++)
        free_slot[i] = 1;
    while (done < n) {
        for (int i = 0; i < W && next < n; i++) {
            if (!free_slot[i])
                continue;
            snprintf(keys[i], sizeof keys[i], fmt, next);
            xs[i].method = "PUT";
            xs[i].bucket = BUCKET;
            xs[i].key = keys[i];
            xs[i].has_body = 1;
            xs[i].up_mem = keys[i];
            xs[i].up_len = strlen(keys[i]);
            xs[i].user = &free_slot[i];
            assert_int_equal(s3s__http_submit(s3, &xs[i]), 0);
            free_slot[i] = 0;
            next++;
            inflight++;
        }
        s3s__xfer *d = NULL;
        assert_int_equal(s3s__http_wait(s3, &d), 0);
        if (d->rc != 0)
            fail_msg("put: %s", d->err);
        *(int *)d->user = 1;
        done++;
        inflight--;
    }
    for (int i = 0; i < W; i++)
        s3s__xfer_fini(&xs[i]);
}

static int collect_cb(void *ud, const char *key, uint64_t size, const char *etag, int64_t mtime)
{
    keylist *l = ud;
    (void)mtime;
    assert_true(strlen(etag) > 0);
    l->keys = realloc(l->keys, (l->n + 1) * sizeof *l->keys);
    l->keys[l->n++] = strdup(key);
    l->bytes += size;
    return 0;
}

static int prefix_cb(void *ud, const char *p)
{
    return collect_cb(ud, p, 0, "-", 0);
}

static void keylist_free(keylist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i]);
    free(l->keys);
    memset(l, 0, sizeof *l);
}

static void test_list_pagination(void **state)
{
    (void)state;
    s3s_s3 *s3 = client(0, 0);
    put_many(s3, "many/k%05u", 1100);
    put_many(s3, "many/sub/s%02u", 5);
    keylist a = {0}, b = {0}, c = {0}, d = {0};
    assert_int_equal(s3s_s3_list(s3, BUCKET, "many/", NULL, collect_cb, &a), 0);
    assert_int_equal(a.n, 1105);
    for (size_t i = 1; i < a.n; i++)
        assert_true(strcmp(a.keys[i - 1], a.keys[i]) < 0);
    assert_string_equal(a.keys[0], "many/k00000");
    assert_string_equal(a.keys[1099], "many/k01099");
    /* Parallel listing: the same keys in the same order. */
    assert_int_equal(s3s_s3_list_parallel(s3, BUCKET, "many/", 8, collect_cb, &b), 0);
    assert_int_equal(b.n, a.n);
    for (size_t i = 0; i < a.n; i++)
        assert_string_equal(a.keys[i], b.keys[i]);
    assert_int_equal(b.bytes, a.bytes);
    /* StartAfter. */
    assert_int_equal(s3s_s3_list(s3, BUCKET, "many/", "many/k01050", collect_cb, &c), 0);
    assert_int_equal(c.n, 49 + 5);
    assert_string_equal(c.keys[0], "many/k01051");
    /* One level: 1100 objects and one folder. */
    assert_int_equal(s3s_s3_list_dir(s3, BUCKET, "many/", collect_cb, prefix_cb, &d), 0);
    assert_int_equal(d.n, 1101);
    int found = 0;
    for (size_t i = 0; i < d.n; i++)
        found += strcmp(d.keys[i], "many/sub/") == 0;
    assert_int_equal(found, 1);
    keylist_free(&a);
    keylist_free(&b);
    keylist_free(&c);
    keylist_free(&d);
    /* An empty prefix lists nothing, in both forms. */
    assert_int_equal(s3s_s3_list(s3, BUCKET, "nothing-here/", NULL, collect_cb, &a), 0);
    assert_int_equal(s3s_s3_list_parallel(s3, BUCKET, "nothing-here/", 8, collect_cb, &a), 0);
    assert_int_equal(a.n, 0);
    assert_int_equal(s3s_s3_list(s3, "nobucket", "", NULL, collect_cb, &a), S3S_ENOTFOUND);
    assert_non_null(strstr(s3s_s3_errmsg(s3), "NoSuchBucket"));
    s3s_s3_destroy(s3);
}

static int stop_cb(void *ud, const char *key, uint64_t size, const char *etag, int64_t mtime)
{
    keylist *l = ud;
    (void)key;
    (void)size;
    (void)etag;
    (void)mtime;
    return ++l->n >= 1050 ? 5 : 0;
}

static void test_list_parallel_mixed(void **state)
{
    (void)state;
    s3s_s3 *s3 = client(0, 0);
    /* Keys that share no counter: letters, digits, upper case, nested folders. */
    put_many(s3, "mix/a/x%04u", 700);
    put_many(s3, "mix/B%03u", 300);
    put_many(s3, "mix/z-%u", 150);
    keylist seq = {0}, par = {0}, stop = {0};
    assert_int_equal(s3s_s3_list(s3, BUCKET, "mix/", NULL, collect_cb, &seq), 0);
    assert_int_equal(seq.n, 1150);
    for (unsigned p = 2; p <= 32; p *= 4) {
        assert_int_equal(s3s_s3_list_parallel(s3, BUCKET, "mix/", p, collect_cb, &par), 0);
        assert_int_equal(par.n, seq.n);
        for (size_t i = 0; i < seq.n; i++)
            assert_string_equal(seq.keys[i], par.keys[i]);
        keylist_free(&par);
    }
    /* The whole bucket (empty prefix) too. */
    keylist all = {0}, allp = {0};
    assert_int_equal(s3s_s3_list(s3, BUCKET, NULL, NULL, collect_cb, &all), 0);
    assert_int_equal(s3s_s3_list_parallel(s3, BUCKET, NULL, 16, collect_cb, &allp), 0);
    assert_int_equal(all.n, allp.n);
    for (size_t i = 0; i < all.n; i++)
        assert_string_equal(all.keys[i], allp.keys[i]);
    /* A callback that stops: its value comes back, nothing is left running. */
    assert_int_equal(s3s_s3_list_parallel(s3, BUCKET, NULL, 16, stop_cb, &stop), 5);
    assert_int_equal(stop.n, 1050);
    keylist_free(&seq);
    keylist_free(&all);
    keylist_free(&allp);
    s3s_s3_destroy(s3);
}

static void test_multipart(void **state)
{
    (void)state;
    s3s_s3 *s3 = client(1u << 20, 5u << 20);
    size_t n = (12u << 20) + 777;
    char *data = pattern(n, 2);
    char etag[72];
    assert_int_equal(s3s_s3_put(s3, BUCKET, "mp/mem.bin", data, n, etag), 0);
    assert_true(strlen(etag) > 0);
    sink s = {0};
    s3s_s3_objinfo info;
    assert_int_equal(
        s3s_s3_get_parallel(s3, BUCKET, "mp/mem.bin", 0, S3S_TO_END, 4, sink_cb, &s, &info), 0);
    assert_int_equal(s.len, n);
    assert_memory_equal(s.data, data, n);
    /* From a file. */
    char *dir = s3s_test_tmpdir("mp");
    char path[512];
    snprintf(path, sizeof path, "%s/f.bin", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n - 1000), (ssize_t)(n - 1000));
    close(fd);
    assert_int_equal(s3s_s3_put_file(s3, BUCKET, "mp/file.bin", path, NULL), 0);
    s.len = 0;
    assert_int_equal(s3s_s3_get(s3, BUCKET, "mp/file.bin", 0, S3S_TO_END, NULL, sink_cb, &s, &info),
                     0);
    assert_int_equal(s.len, n - 1000);
    assert_memory_equal(s.data, data, n - 1000);
    assert_int_equal(s3s_s3_put_file(s3, BUCKET, "mp/x", "/nonexistent/file", NULL), S3S_ENOTFOUND);
    s3s_test_rmtree(dir);
    free(dir);
    free(s.data);
    free(data);
    s3s_s3_destroy(s3);
}

static size_t curl_sink(char *p, size_t sz, size_t n, void *ud)
{
    sink_cb(ud, p, sz * n);
    return sz * n;
}

static void test_presign(void **state)
{
    (void)state;
    s3s_s3 *s3 = client(0, 0);
    assert_int_equal(s3s_s3_put(s3, BUCKET, "pre/a b.txt", "presigned", 9, NULL), 0);
    char *url = NULL;
    assert_int_equal(s3s_s3_presign(s3, "GET", BUCKET, "pre/a b.txt", 300, &url), 0);
    assert_non_null(strstr(url, "X-Amz-Signature="));
    assert_non_null(strstr(url, "/pre/a%20b.txt?"));
    CURL *c = curl_easy_init();
    sink s = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 200);
    assert_int_equal(s.len, 9);
    assert_memory_equal(s.data, "presigned", 9);
    curl_easy_cleanup(c);
    free(s.data);
    free(url);
    s3s_s3_destroy(s3);
}

static void test_refused_connection_retries(void **state)
{
    (void)state;
    s3s_s3_opts o;
    s3s_s3_opts_init(&o);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", s3s_test_free_port());
    o.endpoint = ep;
    o.access_key_id = "S3RVER";
    o.secret_access_key = "S3RVER";
    o.max_attempts = 3;
    o.retry_base_ms = 1;
    o.retry_cap_ms = 5;
    s3s_s3 *s3 = NULL;
    assert_int_equal(s3s_s3_create(&s3, &o), 0);
    s3s_s3_objinfo info;
    assert_int_equal(s3s_s3_head(s3, BUCKET, "k", &info), S3S_ENETWORK);
    assert_non_null(strstr(s3s_s3_errmsg(s3), "after 3 attempts"));
    assert_non_null(strstr(s3s_s3_errmsg(s3), "HEAD " BUCKET "/k"));
    s3s_s3_destroy(s3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_head_delete),
        cmocka_unit_test(test_ranges_and_parallel_get),
        cmocka_unit_test(test_not_found_message),
        cmocka_unit_test(test_weird_keys),
        cmocka_unit_test(test_list_pagination),
        cmocka_unit_test(test_list_parallel_mixed),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_presign),
        cmocka_unit_test(test_refused_connection_retries),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
