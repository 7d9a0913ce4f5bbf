/* worker_test.c: the worker library against a real s3rver: readers on objects
 * of awkward sizes (sequential, pread, seek), the read-ahead window, items in
 * plan order with prefetch, loader threads taking items concurrently, commits,
 * the cache (restart with zero GETs; two processes sharing a folder fetch each
 * block once) and the error paths (missing object, changed ETag). Every byte
 * read is compared with the uploaded bytes through SHA-256. */
#include "tests/support/testenv.h"
#include "tests/support/proxies.h"
#include "tests/support/cachefix.h"

#include "common/crypto/sha256.h"
#include "s3shard/dataset.h"
#include "s3shard/error.h"
#include "s3shard/s3.h"
#include "s3shard/worker.h"
#include "worker/source.h"
#include "worker/worker_int.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUCKET "wtest"
#define BS (64 * 1024) /* the smallest block size: many blocks with little data */

static s3s_test_s3rver srv;
static s3s_test_proxy px; /* the fault proxy in front of srv: counts GETs per key */
static int via_proxy; /* workers (not the setup uploads) go through px */

typedef struct obj {
    char key[64];
    size_t size;
    uint8_t *data;
    char etag[72];
} obj;

#define NOBJ 8
static obj objs[NOBJ];
static const size_t sizes[NOBJ] = {0, 1, BS - 1, BS, BS + 1, 10 * BS + 123, 3, 40000};

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static void s3opts(s3s_s3_opts *o)
{
    s3s_s3_opts_init(o);
    o->endpoint = via_proxy ? px.endpoint : srv.endpoint;
    o->access_key_id = "S3RVER";
    o->secret_access_key = "S3RVER";
    o->region = "us-east-1";
    o->retry_base_ms = 10;
    o->max_attempts = via_proxy ? 10 : 3; /* faults: room for retries */
}

static s3s_s3 *client(void)
{
    s3s_s3_opts o;
    s3opts(&o);
    s3s_s3 *s3 = NULL;
    assert_int_equal(s3s_s3_create(&s3, &o), 0);
    return s3;
}

static int setup(void **state)
{
    (void)state;
    static const char *const buckets[] = {BUCKET, NULL};
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    if (s3s_test_s3rver_start(&srv, buckets) != 0)
        return -1;
    s3s_s3 *s3 = client();
    for (int i = 0; i < NOBJ; i++) {
        snprintf(objs[i].key, sizeof(objs[i].key), "data/o%02d.bin", i);
        objs[i].size = sizes[i];
        objs[i].data = malloc(sizes[i] ? sizes[i] : 1);
        fill(objs[i].data, sizes[i], (unsigned)i + 1);
        if (s3s_s3_put(s3, BUCKET, objs[i].key, objs[i].data, sizes[i], objs[i].etag) != 0)
            return -1;
    }
    s3s_s3_destroy(s3);
    return s3s_test_faultproxy_start(&px, srv.port, NULL);
}

static int teardown(void **state)
{
    (void)state;
    s3s_test_proxy_stop(&px);
    s3s_test_s3rver_stop(&srv);
    for (int i = 0; i < NOBJ; i++)
        free(objs[i].data);
    return 0;
}

static s3s_snapshot *snapshot(const char *prefix)
{
    s3s_s3 *s3 = client();
    char uri[128];
    snprintf(uri, sizeof(uri), "s3://%s/%s", BUCKET, prefix);
    s3s_source_opts so;
    s3s_source_opts_init(&so);
    so.uri = uri;
    so.s3 = s3;
    s3s_snapshot *snap = NULL;
    s3s_errinfo ei = {0};
    int rc = s3s_snapshot_create(&snap, &so, &ei);
    if (rc != 0)
        fail_msg("snapshot: %s", ei.msg);
    s3s_s3_destroy(s3);
    return snap;
}

static void wopts(s3s_worker_opts *o, const s3s_snapshot *snap, const char *cache)
{
    s3s_worker_opts_init(o);
    s3opts(&o->s3);
    o->snapshot = snap;
    o->block_size = BS;
    o->readahead_min = BS;
    o->readahead_max = 8 * BS;
    o->connections = 4;
    o->prefetch_bytes = 64 * BS;
    o->cache_dir = cache;
}

static s3s_worker *worker(const s3s_snapshot *snap, const char *cache)
{
    s3s_worker_opts o;
    wopts(&o, snap, cache);
    s3s_worker *w = NULL;
    s3s_errinfo ei = {0};
    int rc = s3s_worker_create(&w, &o, &ei);
    if (rc != 0)
        fail_msg("worker: %s", ei.msg);
    return w;
}

static void assert_same(const void *a, const void *b, size_t n)
{
    uint8_t ha[32], hb[32];
    s3s__sha256(a, n, ha);
    s3s__sha256(b, n, hb);
    assert_memory_equal(ha, hb, 32);
}

/* read_all reads r to the end in chunks of `chunk` bytes. */
static uint8_t *read_all(s3s_reader *r, size_t chunk, size_t *out_len)
{
    size_t cap = 1024, len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (len + chunk > cap) {
            cap = (len + chunk) * 2;
            buf = realloc(buf, cap);
        }
        size_t got = 0;
        int rc = s3s_reader_read(r, buf + len, chunk, &got);
        if (rc != 0)
            fail_msg("read: %s: %s", s3s_strerror(rc), s3s_reader_errmsg(r));
        if (got == 0)
            break;
        len += got;
    }
    *out_len = len;
    return buf;
}

static s3s_reader *open_obj(s3s_worker *w, int i)
{
    s3s_reader *r = NULL;
    assert_int_equal(s3s_reader_open(w, BUCKET, objs[i].key, objs[i].size, objs[i].etag, &r), 0);
    return r;
}

static void test_sequential_sizes(void **state)
{
    (void)state;
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker *w = worker(snap, NULL);
    static const size_t chunks[] = {1, 7, 4096, BS, 3 * BS + 5};
    for (int i = 0; i < NOBJ; i++) {
        for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
            if (chunks[c] == 1 && objs[i].size > BS + 1)
                continue; /* byte-at-a-time on big objects only slows the test */
            s3s_reader *r = open_obj(w, i);
            size_t len = 0;
            uint8_t *got = read_all(r, chunks[c], &len);
            assert_int_equal(len, objs[i].size);
            assert_same(got, objs[i].data, len);
            free(got);
            assert_int_equal(s3s_reader_close(r), 0);
        }
    }
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

static void test_pread_seek(void **state)
{
    (void)state;
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker *w = worker(snap, NULL);
    int i = 5; /* 10 blocks and a bit */
    s3s_reader *r = open_obj(w, i);
    size_t size = objs[i].size;
    uint8_t *buf = malloc(3 * BS);
    uint32_t x = 12345;
    for (int k = 0; k < 200; k++) {
        x = x * 1103515245u + 12345u;
        uint64_t off = (x >> 4) % (size + 10);
        size_t n = (x >> 8) % (2 * BS + 3);
        size_t got = 0;
        assert_int_equal(s3s_reader_pread(r, buf, n, off, &got), 0);
        size_t want = off >= size ? 0 : (n < size - off ? n : size - off);
        assert_int_equal(got, want);
        if (got)
            assert_same(buf, objs[i].data + off, got);
    }
    /* seek: SET, CUR, END, past the end, negative */
    uint64_t pos = 0;
    assert_int_equal(s3s_reader_seek(r, 100, S3S_SEEK_SET, &pos), 0);
    assert_int_equal(pos, 100);
    size_t got = 0;
    assert_int_equal(s3s_reader_read(r, buf, 10, &got), 0);
    assert_int_equal(got, 10);
    assert_same(buf, objs[i].data + 100, 10);
    assert_int_equal(s3s_reader_seek(r, 5, S3S_SEEK_CUR, &pos), 0);
    assert_int_equal(pos, 115);
    assert_int_equal(s3s_reader_seek(r, -7, S3S_SEEK_END, &pos), 0);
    assert_int_equal(pos, size - 7);
    assert_int_equal(s3s_reader_read(r, buf, 100, &got), 0);
    assert_int_equal(got, 7);
    assert_same(buf, objs[i].data + size - 7, 7);
    assert_int_equal(s3s_reader_read(r, buf, 100, &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(s3s_reader_seek(r, 50, S3S_SEEK_END, &pos), 0);
    assert_int_equal(s3s_reader_read(r, buf, 100, &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(s3s_reader_seek(r, -1, S3S_SEEK_SET, &pos), S3S_EINVAL);
    assert_int_equal(s3s_reader_seek(r, 0, 9, &pos), S3S_EINVAL);
    free(buf);
    s3s_reader_close(r);
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

static void test_window(void **state)
{
    (void)state;
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker *w = worker(snap, NULL);
    s3s_reader *r = open_obj(w, 5);
    s3s_reader_stats st;
    uint8_t buf[4096];
    size_t got;
    s3s_reader_stats_get(r, &st);
    assert_int_equal(st.window, BS);
    /* sequential: the window doubles after each full window read: BS, 2, 4, 8 */
    uint64_t total = 0;
    while (total < 7 * BS) {
        assert_int_equal(s3s_reader_read(r, buf, sizeof(buf), &got), 0);
        total += got;
    }
    s3s_reader_stats_get(r, &st);
    assert_int_equal(st.window, 8 * BS);
    assert_int_equal(st.window_peak, 8 * BS);
    assert_int_equal(st.window_resets, 0);
    /* a jump back resets it */
    assert_int_equal(s3s_reader_pread(r, buf, 10, 5, &got), 0);
    s3s_reader_stats_get(r, &st);
    assert_int_equal(st.window, BS);
    assert_int_equal(st.window_resets, 1);
    assert_int_equal(st.window_peak, 8 * BS);
    /* a small skip forward within the window stays sequential */
    assert_int_equal(s3s_reader_pread(r, buf, 10, 100, &got), 0);
    s3s_reader_stats_get(r, &st);
    assert_int_equal(st.window_resets, 1);
    s3s_reader_close(r);
    /* memory stayed within the budget (plus the reader's current block) */
    s3s_worker_stats ws;
    s3s_worker_stats_get(w, &ws);
    assert_true(ws.gets >= 7); /* the blocks read; read-ahead ones may be cancelled */
    assert_true(ws.mem_peak <= 64 * BS + 2 * BS);
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

/* items: the plan's order, every object once, prefetch at work. */
static void test_items_in_order(void **state)
{
    (void)state;
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker *w = worker(snap, NULL);
    s3s_item *it = NULL;
    int n = 0;
    while (s3s_worker_next(w, &it) == 0) {
        const s3s_item_info *in = s3s_item_info_get(it);
        assert_string_equal(in->key, objs[n].key);
        assert_int_equal(in->size, objs[n].size);
        assert_string_equal(in->etag, objs[n].etag);
        assert_int_equal(in->offset, 0);
        assert_int_equal(in->epoch, 0);
        assert_int_equal(in->position, n);
        size_t len = 0;
        uint8_t *got = read_all(s3s_item_reader(it), 5000, &len);
        assert_int_equal(len, objs[n].size);
        assert_same(got, objs[n].data, len);
        free(got);
        assert_int_equal(s3s_reader_close(s3s_item_reader(it)), S3S_EINVAL);
        assert_int_equal(s3s_item_close(it), 0);
        n++;
    }
    assert_int_equal(n, NOBJ);
    assert_int_equal(s3s_worker_next(w, &it), S3S_EEOF);
    s3s_worker_stats st;
    s3s_worker_stats_get(w, &st);
    assert_int_equal(st.items, NOBJ);
    assert_int_equal(st.items_done, NOBJ);
    assert_true(st.prefetched_blocks > 0);
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

static void test_commit(void **state)
{
    (void)state;
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker_opts o;
    wopts(&o, snap, NULL);
    o.epochs = 2;
    o.auto_commit = 0;
    s3s_worker *w = NULL;
    assert_int_equal(s3s_worker_create(&w, &o, NULL), 0);
    s3s_item *it = NULL;
    int n = 0;
    while (s3s_worker_next(w, &it) == 0) {
        const s3s_item_info *in = s3s_item_info_get(it);
        assert_int_equal(in->epoch, n / NOBJ);
        if (in->size > 10) {
            assert_int_equal(s3s_item_commit(it, 10), 0);
            assert_int_equal(s3s_item_commit(it, 5), S3S_EINVAL); /* backwards */
            assert_int_equal(s3s_item_commit(it, in->size + 1), S3S_EINVAL);
            assert_non_null(strstr(s3s_reader_errmsg(s3s_item_reader(it)), in->key));
        }
        if (n % 2 == 0)
            assert_int_equal(s3s_item_commit(it, in->size), 0);
        assert_int_equal(s3s_item_close(it), 0);
        n++;
    }
    assert_int_equal(n, 2 * NOBJ);
    s3s_worker_stats st;
    s3s_worker_stats_get(w, &st);
    assert_int_equal(st.items_done, NOBJ); /* only the explicit ones: auto_commit off */
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

typedef struct loader {
    s3s_worker *w;
    int count;
    int seen[NOBJ * 3];
} loader;

static void *loader_main(void *arg)
{
    loader *l = arg;
    s3s_item *it = NULL;
    while (s3s_worker_next(l->w, &it) == 0) {
        const s3s_item_info *in = s3s_item_info_get(it);
        int i = atoi(in->key + strlen("data/o"));
        size_t len = 0;
        uint8_t *got = read_all(s3s_item_reader(it), 3000, &len);
        if (len != objs[i].size || memcmp(got, objs[i].data, len) != 0)
            l->count = -1000;
        free(got);
        l->seen[(int)in->epoch * NOBJ + i]++;
        l->count++;
        s3s_item_close(it);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker_opts o;
    wopts(&o, snap, NULL);
    o.epochs = 3;
    o.plan.shuffle = 1;
    o.plan.seed = 7;
    s3s_worker *w = NULL;
    assert_int_equal(s3s_worker_create(&w, &o, NULL), 0);
    loader ls[4];
    pthread_t t[4];
    memset(ls, 0, sizeof(ls));
    for (int i = 0; i < 4; i++) {
        ls[i].w = w;
        pthread_create(&t[i], NULL, loader_main, &ls[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(ls[i].count >= 0);
        total += ls[i].count;
    }
    assert_int_equal(total, 3 * NOBJ);
    for (int k = 0; k < 3 * NOBJ; k++) {
        int c = 0;
        for (int i = 0; i < 4; i++)
            c += ls[i].seen[k];
        assert_int_equal(c, 1); /* every object of every epoch exactly once */
    }
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

static void test_shares(void **state)
{
    (void)state;
    s3s_snapshot *snap = snapshot("data/");
    int seen[NOBJ] = {0};
    for (uint32_t rank = 0; rank < 3; rank++) {
        s3s_worker_opts o;
        wopts(&o, snap, NULL);
        o.plan.distribution = S3S_DIST_SHARDED_BY_S3_KEY;
        o.plan.shard_target_bytes = 0;
        o.rank = rank;
        o.world_size = 3;
        s3s_worker *w = NULL;
        assert_int_equal(s3s_worker_create(&w, &o, NULL), 0);
        s3s_item *it;
        while (s3s_worker_next(w, &it) == 0) {
            seen[atoi(s3s_item_info_get(it)->key + strlen("data/o"))]++;
            s3s_item_close(it);
        }
        s3s_worker_destroy(w);
    }
    for (int i = 0; i < NOBJ; i++)
        assert_int_equal(seen[i], 1);
    s3s_worker_opts o;
    wopts(&o, snap, NULL);
    o.rank = 3;
    o.world_size = 3;
    s3s_worker *w = NULL;
    s3s_errinfo ei = {0};
    assert_int_equal(s3s_worker_create(&w, &o, &ei), S3S_EINVAL);
    assert_non_null(strstr(ei.msg, "rank"));
    wopts(&o, snap, NULL);
    o.plan.distribution = S3S_DIST_DYNAMIC;
    assert_int_equal(s3s_worker_create(&w, &o, &ei), S3S_ENOTSUP);
    assert_non_null(strstr(ei.msg, "coordinator"));
    s3s_snapshot_destroy(snap);
}

/* Reads every object through a worker with the cache at dir; returns its stats. */
static void read_everything(const char *dir, s3s_worker_stats *st)
{
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker *w = worker(snap, dir);
    s3s_item *it;
    while (s3s_worker_next(w, &it) == 0) {
        const s3s_item_info *in = s3s_item_info_get(it);
        int i = atoi(in->key + strlen("data/o"));
        size_t len = 0;
        uint8_t *got = read_all(s3s_item_reader(it), 10000, &len);
        assert_int_equal(len, objs[i].size);
        assert_same(got, objs[i].data, len);
        free(got);
        s3s_item_close(it);
    }
    s3s_worker_stats_get(w, st);
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

static uint64_t total_blocks(void)
{
    uint64_t n = 0;
    for (int i = 0; i < NOBJ; i++)
        n += (objs[i].size + BS - 1) / BS;
    return n;
}

/* object GETs seen by the proxy (listings excluded: counted per object key) */
static long proxy_object_gets(void)
{
    long n = 0;
    for (int i = 0; i < NOBJ; i++) {
        char k[1300]; /* bucket + a key of up to 1,215 bytes */
        snprintf(k, sizeof(k), "/%s/%s", BUCKET, objs[i].key);
        long c = s3s_test_faultproxy_count(&px, k, "GET");
        assert_true(c >= 0);
        n += c;
    }
    return n;
}

static void test_cache_restart(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("wcache");
    s3s_worker_stats st;
    via_proxy = 1;
    assert_int_equal(s3s_test_faultproxy_reset(&px, 1), 0);
    read_everything(dir, &st);
    assert_int_equal(st.gets, total_blocks());
    assert_int_equal(st.cache_hits, 0);
    assert_int_equal(proxy_object_gets(), (long)total_blocks());
    /* a new worker (a restarted process) on the same folder: zero GETs, both
     * by the library's count and at the proxy */
    assert_int_equal(s3s_test_faultproxy_reset(&px, 1), 0);
    read_everything(dir, &st);
    assert_int_equal(st.gets, 0);
    assert_int_equal(st.get_bytes, 0);
    assert_int_equal(st.cache_hits, total_blocks());
    assert_int_equal(proxy_object_gets(), 0);
    via_proxy = 0;
    s3s_test_rmtree(dir);
    free(dir);
}

/* Bodies cut in the middle and 503 SlowDown: the S3 client's retries (resumed
 * where the body stopped) keep every byte right. */
static void test_faults(void **state)
{
    (void)state;
    via_proxy = 1;
    assert_int_equal(s3s_test_faultproxy_reset(&px, 1), 0);
    assert_int_equal(
        s3s_test_faultproxy_config(&px, "fault=reset_mid&every=2&method=GET&match=o05"), 0);
    s3s_worker_stats st;
    read_everything(NULL, &st);
    assert_true(s3s_test_faultproxy_count(&px, NULL, "faults") > 0);
    assert_int_equal(s3s_test_faultproxy_config(&px, "fault=slowdown&every=3&method=GET&match=o0"),
                     0);
    read_everything(NULL, &st);
    assert_int_equal(s3s_test_faultproxy_reset(&px, 1), 0);
    via_proxy = 0;
}

/* Two processes read everything at once through one cache folder: between
 * them every block is fetched exactly once (claims), the other waits. */
static void test_cache_two_processes(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("wcache2");
    via_proxy = 1;
    assert_int_equal(s3s_test_faultproxy_reset(&px, 1), 0);
    int fds[2][2];
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        assert_int_equal(pipe(fds[p]), 0);
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            close(fds[p][0]);
            s3s_worker_stats st;
            read_everything(dir, &st);
            uint64_t g = st.gets;
            ssize_t wr = write(fds[p][1], &g, sizeof(g));
            _exit(wr == sizeof(g) ? 0 : 1);
        }
        close(fds[p][1]);
    }
    uint64_t gets = 0;
    for (int p = 0; p < 2; p++) {
        uint64_t g = 0;
        assert_int_equal(read(fds[p][0], &g, sizeof(g)), sizeof(g));
        close(fds[p][0]);
        int status = 0;
        waitpid(pids[p], &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        gets += g;
    }
    assert_int_equal(gets, total_blocks());
    assert_int_equal(proxy_object_gets(), (long)total_blocks()); /* once each, at the proxy */
    via_proxy = 0;
    s3s_test_rmtree(dir);
    free(dir);
}

static void test_errors(void **state)
{
    (void)state;
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker *w = worker(snap, NULL);
    s3s_reader *r = NULL;
    uint8_t buf[16];
    size_t got = 99;
    /* a missing object fails at the first read, naming the key */
    assert_int_equal(s3s_reader_open(w, BUCKET, "data/missing", 100, "", &r), 0);
    assert_int_equal(s3s_reader_read(r, buf, sizeof(buf), &got), S3S_ENOTFOUND);
    assert_int_equal(got, 0);
    assert_non_null(strstr(s3s_reader_errmsg(r), "data/missing"));
    s3s_reader_close(r);
    /* an object whose ETag changed since the snapshot: refused */
    assert_int_equal(s3s_reader_open(w, BUCKET, objs[1].key, 1, "0123456789abcdef", &r), 0);
    assert_int_equal(s3s_reader_read(r, buf, sizeof(buf), &got), S3S_ECONFLICT);
    s3s_reader_close(r);
    assert_int_equal(s3s_reader_read(NULL, buf, 1, &got), S3S_EINVAL);
    s3s_worker_destroy(w);
    /* bad options */
    s3s_worker_opts o;
    wopts(&o, snap, NULL);
    o.block_size = 1000;
    s3s_errinfo ei = {0};
    assert_int_equal(s3s_worker_create(&w, &o, &ei), S3S_EINVAL);
    assert_non_null(strstr(ei.msg, "block_size"));
    assert_int_equal(s3s_worker_create(&w, NULL, &ei), S3S_EINVAL);
    s3s_snapshot_destroy(snap);
}

/* Items closed early (not read to the end) and a worker destroyed with
 * prefetches still in flight leak nothing and cancel cleanly. */
static void test_early_close(void **state)
{
    (void)state;
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker *w = worker(snap, NULL);
    s3s_item *it;
    assert_int_equal(s3s_worker_next(w, &it), 0);
    assert_int_equal(s3s_item_close(it), 0); /* size 0: done */
    assert_int_equal(s3s_worker_next(w, &it), 0);
    assert_int_equal(s3s_item_close(it), 0); /* not read: released */
    s3s_worker_stats st;
    s3s_worker_stats_get(w, &st);
    assert_int_equal(st.items_done, 1);
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

/* s3s__reader_prefetch (FastFile's lookahead): the first block is fetched
 * before any read, the read finds it, the bytes are right; a handle closed
 * unread after a prefetch frees everything (ASan's leak check). */
static void test_reader_prefetch(void **state)
{
    (void)state;
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker *w = worker(snap, NULL);
    s3s_reader *r = open_obj(w, 7); /* 40,000 bytes: one block */
    s3s__reader_prefetch(r, 0);
    s3s__reader_prefetch(r, objs[7].size); /* past the end: nothing */
    s3s_worker_stats ws;
    s3s_worker_stats_get(w, &ws);
    assert_int_equal(ws.prefetched_blocks, 1);
    size_t len = 0;
    uint8_t *got = read_all(r, 4096, &len);
    assert_int_equal(len, objs[7].size);
    assert_same(got, objs[7].data, len);
    free(got);
    s3s_reader_stats st;
    s3s_reader_stats_get(r, &st);
    assert_int_equal(st.blocks_prefetched, 1);
    assert_int_equal(st.blocks_fetched, 0);
    s3s_reader_close(r);
    r = open_obj(w, 5); /* several blocks: only the first is started */
    s3s__reader_prefetch(r, 0);
    s3s_reader_close(r);
    s3s_worker_stats_get(w, &ws);
    assert_int_equal(ws.prefetched_blocks, 2); /* its GET is cancelled or dropped; no leak */
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

/* s3s__reader_pread_fd (FastFile's zero copy): a block that came from the
 * cache is handed over as a file (a dup, offset into it, at most the rest of
 * that block) holding the object's bytes; a block fetched by GET gives -1 and
 * no bytes, and a pread then reads it. */
static void test_reader_pread_fd(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("wpfd");
    s3s_snapshot *snap = snapshot("data/");
    const obj *o = &objs[5]; /* 10 blocks and 123 bytes */
    for (int round = 0; round < 2; round++) {
        s3s_worker *w = worker(snap, dir);
        s3s_reader *r = open_obj(w, 5);
        uint8_t *got = malloc(o->size);
        uint64_t off = 0;
        int fds = 0;
        while (off < o->size) {
            int fd = -2;
            uint64_t foff = 0;
            size_t n = 0;
            size_t ask = 3 * BS; /* spans blocks: only the first one's part comes */
            assert_int_equal(s3s__reader_pread_fd(r, ask, off, &fd, &foff, &n), 0);
            if (round == 0) { /* cold: every block comes by GET */
                assert_int_equal(fd, -1);
                assert_int_equal(n, 0);
                assert_int_equal(s3s_reader_pread(r, got + off, ask, off, &n), 0);
                assert_true(n > 0);
            } else {
                assert_true(fd >= 0);
                assert_int_equal(foff, off % BS);
                assert_int_equal(n, BS - off % BS < o->size - off ? BS - off % BS : o->size - off);
                assert_int_equal(pread(fd, got + off, n, (off_t)foff), (ssize_t)n);
                close(fd);
                fds++;
            }
            off += n;
            if (off < o->size && round == 1 && off % BS == 0)
                off += 7; /* start mid-block too */
        }
        if (round == 1) {
            assert_int_equal(fds, 11); /* one per block: 0 whole, the others from byte 7 */
            /* what was skipped is not checked: compare the parts read */
            for (uint64_t b = 0; b < o->size; b += BS) {
                uint64_t end = b + BS < o->size ? b + BS : o->size;
                uint64_t from = b == 0 ? 0 : b + 7;
                assert_memory_equal(got + from, o->data + from, end - from);
            }
        } else {
            assert_same(got, o->data, o->size);
        }
        free(got);
        int fd = -2;
        uint64_t foff = 0;
        size_t n = 1;
        assert_int_equal(s3s__reader_pread_fd(r, 1, o->size, &fd, &foff, &n), 0); /* the end */
        assert_int_equal(fd, -1);
        assert_int_equal(n, 0);
        s3s_reader_close(r);
        s3s_worker_destroy(w);
    }
    s3s_snapshot_destroy(snap);
    s3s_test_rmtree(dir);
    free(dir);
}

/* An item with a resume offset (as a coordinator grants the uncommitted tail):
 * its reader starts there, prefetch fetched the block holding it, and reading
 * to the end commits it as done. Through the internal list source. */
static void test_resume_offset(void **state)
{
    (void)state;
    s3s_worker_opts o;
    wopts(&o, NULL, NULL);
    s3s__item_desc d[2];
    memset(d, 0, sizeof(d));
    for (int k = 0; k < 2; k++) {
        int i = k == 0 ? 5 : 7;
        d[k].bucket = strdup(BUCKET);
        d[k].key = strdup(objs[i].key);
        d[k].etag = strdup(objs[i].etag);
        d[k].size = objs[i].size;
        d[k].offset = k == 0 ? 3 * BS + 17 : objs[i].size; /* the second: nothing left */
    }
    s3s__source *src = NULL;
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__source_list_create(&src, d, 2, &eb), 0);
    s3s_worker *w = NULL;
    assert_int_equal(s3s__worker_create_src(&w, &o, src, &eb), 0);
    s3s_item *it = NULL;
    assert_int_equal(s3s_worker_next(w, &it), 0);
    const s3s_item_info *in = s3s_item_info_get(it);
    assert_int_equal(in->offset, 3 * BS + 17);
    size_t len = 0;
    uint8_t *got = read_all(s3s_item_reader(it), 7777, &len);
    assert_int_equal(len, objs[5].size - in->offset);
    assert_same(got, objs[5].data + in->offset, len);
    free(got);
    s3s_reader_stats rs;
    s3s_reader_stats_get(s3s_item_reader(it), &rs);
    assert_int_equal(rs.blocks_fetched + rs.blocks_prefetched, 11 - 3); /* blocks 3..10 only */
    assert_int_equal(s3s_item_close(it), 0);
    assert_int_equal(s3s_worker_next(w, &it), 0);
    size_t n = 9;
    uint8_t b[4];
    assert_int_equal(s3s_reader_read(s3s_item_reader(it), b, sizeof(b), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(s3s_item_close(it), 0);
    assert_int_equal(s3s_worker_next(w, &it), S3S_EEOF);
    s3s_worker_stats st;
    s3s_worker_stats_get(w, &st);
    assert_int_equal(st.items_done, 2);
    /* not one byte before the resume offset came from S3 */
    assert_int_equal(st.get_bytes, objs[5].size - (3 * BS + 17));
    s3s_worker_destroy(w);
}

/* Reads items of objs[5] through a worker with a disk cache, returning the
 * bytes it got from S3 and from the cache. offset: where the item resumes. */
static void read_item_cached(const char *cache, uint64_t offset, uint64_t *s3_bytes,
                             uint64_t *cache_bytes)
{
    s3s_worker_opts o;
    wopts(&o, NULL, cache);
    s3s__item_desc d;
    memset(&d, 0, sizeof(d));
    d.bucket = strdup(BUCKET);
    d.key = strdup(objs[5].key);
    d.etag = strdup(objs[5].etag);
    d.size = objs[5].size;
    d.offset = offset;
    s3s__source *src = NULL;
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__source_list_create(&src, &d, 1, &eb), 0);
    s3s_worker *w = NULL;
    assert_int_equal(s3s__worker_create_src(&w, &o, src, &eb), 0);
    s3s_item *it = NULL;
    assert_int_equal(s3s_worker_next(w, &it), 0);
    size_t len = 0;
    uint8_t *got = read_all(s3s_item_reader(it), 5000, &len);
    assert_int_equal(len, objs[5].size - offset);
    assert_same(got, objs[5].data + offset, len);
    free(got);
    assert_int_equal(s3s_item_close(it), 0);
    s3s_worker_stats st;
    s3s_worker_stats_get(w, &st);
    *s3_bytes = st.get_bytes;
    *cache_bytes = st.cache_hit_bytes;
    s3s_worker_destroy(w);
}

/* With a disk cache, a resume mid-block caches the part it fetched (a partial
 * block); a later resume before it, then a whole read, fetch only what the
 * cache lacks: every byte of the object comes from S3 exactly once. */
static void test_resume_offset_cached(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("wresume");
    uint64_t size = objs[5].size, a = 3 * BS + 17, b = 3 * BS - 100, s3 = 0, hit = 0;
    read_item_cached(dir, a, &s3, &hit);
    assert_int_equal(s3, size - a);
    assert_int_equal(hit, 0);
    read_item_cached(dir, a + 5, &s3, &hit); /* later in the same block: all cached */
    assert_int_equal(s3, 0);
    assert_int_equal(hit, size - (a + 5));
    read_item_cached(dir, b, &s3, &hit); /* block 2 from b, block 3's head */
    assert_int_equal(s3, a - b);
    assert_int_equal(hit, size - a);
    read_item_cached(dir, 0, &s3, &hit); /* the whole object: blocks 0, 1 and 2's head */
    assert_int_equal(s3, b);
    assert_int_equal(hit, size - b);
    read_item_cached(dir, 0, &s3, &hit);
    assert_int_equal(s3, 0);
    assert_int_equal(hit, size);
    s3s_test_rmtree(dir);
    free(dir);
}

/* With a disk cache, the last byte of a block is handed out only once the
 * block is in the cache: a rank SIGKILLed right after reading (and so
 * committing) an object has left every block of it in its node's cache, and
 * a later epoch there downloads none of it again. Looked up through a second
 * cache handle (as another process would) the moment the read returns. */
static void test_read_means_cached(void **state)
{
    (void)state;
    s3s_test_cachefix *f = s3s_test_cachefix_create("wcached", BS);
    s3s_snapshot *snap = snapshot("data/");
    s3s_worker *w = worker(snap, f->dir);
    s3s__cache *c = s3s_test_cache_open(f);
    s3s__errbuf eb = {{0}};
    static const int which[] = {7, 4, 5, 2};
    for (size_t k = 0; k < sizeof(which) / sizeof(which[0]); k++) {
        const obj *ob = &objs[which[k]];
        s3s_reader *r = open_obj(w, which[k]);
        size_t len = 0;
        uint8_t *got = read_all(r, 7000, &len);
        s3s__cache_id id = {BUCKET, ob->key, ob->etag, ob->size};
        s3s__cache_entry *e = NULL;
        assert_int_equal(s3s__cache_entry_open(c, &id, &e, &eb), 0);
        for (uint32_t i = 0; i < s3s__cache_entry_nblocks(e); i++) {
            s3s__cache_block b = {.fd = -1};
            int rc = s3s__cache_lookup(e, i, &b, &eb);
            if (rc != 0)
                fail_msg("%s block %u not in the cache once read: %s", ob->key, i,
                         s3s_strerror(rc));
            s3s__cache_block_release(&b);
        }
        s3s__cache_entry_close(e);
        assert_int_equal(len, ob->size);
        assert_same(got, ob->data, len);
        free(got);
        s3s_reader_close(r);
    }
    s3s__cache_close(c);
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
    void *fix = f;
    s3s_test_cachefix_teardown(&fix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequential_sizes),
        cmocka_unit_test(test_pread_seek),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_items_in_order),
        cmocka_unit_test(test_commit),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_shares),
        cmocka_unit_test(test_cache_restart),
        cmocka_unit_test(test_read_means_cached),
        cmocka_unit_test(test_cache_two_processes),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_early_close),
        cmocka_unit_test(test_resume_offset),
        cmocka_unit_test(test_resume_offset_cached),
        cmocka_unit_test(test_reader_prefetch),
        cmocka_unit_test(test_reader_pread_fd),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
