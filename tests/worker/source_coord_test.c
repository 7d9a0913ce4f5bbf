/* source_coord_test.c: the worker over a real in-process coordinator and a
 * real s3rver (worker/source_coord.c): leases of shards packing several
 * objects become items with the right bytes; items committed out of order
 * still cover every byte exactly once (the coordinator's ledger verifies and
 * the job finishes); a released item comes back at its last commit; a drain
 * gives the leases back at the committed position and ends the items; once
 * cancel is set no new lease is taken; a
 * coordinator restart makes the lease stale (S3S_ESTALE) and the worker
 * carries on with the re-granted tail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s3shard/coordinator.h"
#include "s3shard/error.h"
#include "s3shard/s3.h"
#include "s3shard/worker.h"
#include "tests/support/coordfix.h"
#include "tests/support/testenv.h"

#define BUCKET "cwk"
#define NOBJ 12

static s3s_test_s3rver srv;
static char *tmp;
static char url[64];
static char job_path[512];
static uint8_t *data[NOBJ];
static size_t sizes[NOBJ];
static uint64_t total;

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 7;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

static int setup(void **state)
{
    (void)state;
    static const char *const buckets[] = {BUCKET, NULL};
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    unsetenv("S3SHARD_SECRET");
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    setenv("AWS_REGION", "us-east-1", 1);
    if (s3s_test_s3rver_start(&srv, buckets) != 0)
        return -1;
    tmp = s3s_test_tmpdir("source_coord");
    s3s_s3_opts o;
    s3s_s3_opts_init(&o);
    o.endpoint = srv.endpoint;
    s3s_s3 *s3 = NULL;
    if (s3s_s3_create(&s3, &o) != 0)
        return -1;
    for (int i = 0; i < NOBJ; i++) {
        char key[64];
        snprintf(key, sizeof(key), "ds/o%02d.bin", i);
        sizes[i] = i == 4 ? 0 : 20000 + (size_t)i * 3001;
        data[i] = malloc(sizes[i] + 1);
        fill(data[i], sizes[i], (unsigned)i + 1);
        total += sizes[i];
        if (s3s_s3_put(s3, BUCKET, key, data[i], sizes[i], NULL) != 0)
            return -1;
    }
    s3s_s3_destroy(s3);
    snprintf(job_path, sizeof(job_path), "%s/job.json", tmp);
    FILE *f = fopen(job_path, "w");
    if (f == NULL)
        return -1;
    /* shards of ~3 objects: leases cover several objects */
    fprintf(f,
            "{\"InputDataConfig\": [{\"ChannelName\": \"train\", \"DataSource\": "
            "{\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", \"S3Uri\": \"s3://" BUCKET
            "/ds/\"}}}], \"S3Shard\": {\"Epochs\": 1, \"LeaseSeconds\": 30, "
            "\"Channels\": {\"train\": {\"Distribution\": \"Dynamic\", "
            "\"ShardTargetBytes\": 70000}}}}\n");
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    s3s_test_s3rver_stop(&srv);
    s3s_test_rmtree(tmp);
    free(tmp);
    for (int i = 0; i < NOBJ; i++)
        free(data[i]);
    return 0;
}

static s3s_coord *coord_start(const char *name)
{
    return s3s_test_coordfix_start(tmp, name, job_path, url, &srv);
}

static s3s_worker *worker(void)
{
    return s3s_test_coordfix_worker(url, &srv, 4);
}

static int obj_index(const char *key)
{
    int i = -1;
    assert_int_equal(sscanf(key, "ds/o%02d.bin", &i), 1);
    assert_true(i >= 0 && i < NOBJ);
    return i;
}

/* Reads the item from its offset to its end and checks the bytes. */
static void read_rest(s3s_item *it)
{
    const s3s_item_info *in = s3s_item_info_get(it);
    int i = obj_index(in->key);
    assert_int_equal(in->size, sizes[i]);
    uint8_t buf[8192];
    uint64_t at = in->offset;
    for (;;) {
        size_t n = 0;
        assert_int_equal(s3s_reader_read(s3s_item_reader(it), buf, sizeof(buf), &n), 0);
        if (n == 0)
            break;
        assert_memory_equal(buf, data[i] + at, n);
        at += n;
    }
    assert_int_equal(at, sizes[i]);
}

static void fresh_url(void)
{
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", s3s_test_free_port());
}

/* Two items at a time, the later one closed first: the lease's position is
 * the prefix of finished items, so coverage stays exact. */
static void test_out_of_order(void **state)
{
    (void)state;
    fresh_url();
    s3s_coord *c = coord_start("ooo");
    s3s_worker *w = worker();
    int seen[NOBJ] = {0};
    for (;;) {
        s3s_item *a = NULL, *b = NULL;
        int rc = s3s_worker_next(w, &a);
        if (rc == S3S_EEOF)
            break;
        assert_int_equal(rc, 0);
        read_rest(a);
        seen[obj_index(s3s_item_info_get(a)->key)]++;
        rc = s3s_worker_next(w, &b);
        if (rc == 0) {
            read_rest(b);
            seen[obj_index(s3s_item_info_get(b)->key)]++;
            assert_int_equal(s3s_item_close(b), 0);
        } else {
            assert_int_equal(rc, S3S_EEOF);
        }
        assert_int_equal(s3s_item_close(a), 0);
        if (rc == S3S_EEOF)
            break;
    }
    for (int i = 0; i < NOBJ; i++)
        assert_int_equal(seen[i], 1);
    s3s_coord_status st;
    s3s_coord_status_get(c, &st);
    assert_true(st.finished);
    assert_int_equal(st.active_leases, 0);
    s3s_worker_destroy(w);
    s3s_coord_destroy(c);
}

/* A released item comes back, at its last commit. */
static void test_release(void **state)
{
    (void)state;
    fresh_url();
    s3s_coord *c = coord_start("rel");
    s3s_worker *w = worker();
    s3s_item *it = NULL;
    assert_int_equal(s3s_worker_next(w, &it), 0);
    if (s3s_item_info_get(it)->size == 0) { /* want a non-empty one */
        assert_int_equal(s3s_item_close(it), 0);
        assert_int_equal(s3s_worker_next(w, &it), 0);
    }
    char key[64];
    snprintf(key, sizeof(key), "%s", s3s_item_info_get(it)->key);
    uint8_t buf[1000];
    size_t n = 0;
    assert_int_equal(s3s_reader_read(s3s_item_reader(it), buf, sizeof(buf), &n), 0);
    assert_int_equal(n, sizeof(buf));
    assert_int_equal(s3s_item_commit(it, 1000), 0);
    assert_int_equal(s3s_item_close(it), 0); /* not read to the end: released */
    /* it comes back (after the items fetched ahead), at its last commit */
    int rc, back = 0;
    while ((rc = s3s_worker_next(w, &it)) == 0) {
        if (strcmp(s3s_item_info_get(it)->key, key) == 0) {
            assert_int_equal(s3s_item_info_get(it)->offset, 1000);
            back++;
        }
        read_rest(it);
        assert_int_equal(s3s_item_close(it), 0);
    }
    assert_int_equal(rc, S3S_EEOF);
    assert_int_equal(back, 1);
    s3s_coord_status st;
    s3s_coord_status_get(c, &st);
    assert_true(st.finished);
    s3s_worker_destroy(w);
    s3s_coord_destroy(c);
}

/* A drain makes the committed position final and gives the lease back. */
static void test_drain(void **state)
{
    (void)state;
    fresh_url();
    s3s_coord *c = coord_start("drain");
    s3s_worker *w = worker();
    s3s_item *it = NULL;
    uint64_t done_bytes = 0;
    for (;;) { /* one whole item, then half of a non-empty one */
        assert_int_equal(s3s_worker_next(w, &it), 0);
        if (done_bytes == 0 || s3s_item_info_get(it)->size == 0) {
            read_rest(it);
            done_bytes += s3s_item_info_get(it)->size;
            assert_int_equal(s3s_item_close(it), 0);
            continue;
        }
        break;
    }
    uint64_t half = s3s_item_info_get(it)->size / 2;
    assert_int_equal(s3s_item_commit(it, half), 0);
    assert_int_equal(s3s_worker_drain(w, "test"), 0);
    assert_int_equal(s3s_item_commit(it, half + 1), S3S_ESTALE);
    assert_int_equal(s3s_item_close(it), 0);
    s3s_item *more = NULL;
    assert_int_equal(s3s_worker_next(w, &more), S3S_EEOF);
    char *json = NULL;
    assert_int_equal(s3s_coord_status_json(c, 0, &json), 0);
    char want[64];
    snprintf(want, sizeof(want), "\"bytes_committed\":%llu",
             (unsigned long long)(done_bytes + half));
    assert_non_null(strstr(json, want));
    assert_non_null(strstr(json, "\"drains\":1"));
    assert_non_null(strstr(json, "\"active_leases\":0"));
    free(json);
    s3s_worker_destroy(w);
    s3s_coord_destroy(c);
}

/* status_u: a counter of the status JSON that s3s_coord_status lacks. */
static uint64_t status_u(s3s_coord *c, const char *name)
{
    char *json = NULL;
    assert_int_equal(s3s_coord_status_json(c, 0, &json), 0);
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    const char *p = strstr(json, pat);
    assert_non_null(p);
    unsigned long long v = strtoull(p + strlen(pat), NULL, 10);
    free(json);
    return v;
}

/* Once cancel is set (a SIGTERM's handler does it before the drain), the
 * worker takes no new lease and fetches nothing more ahead: it hands out
 * what it already holds, then S3S_EINTERRUPTED; the drain gives the rest
 * back. A drain must not waste a lease taken after the notice. */
static void test_cancel_takes_no_lease(void **state)
{
    (void)state;
    fresh_url();
    s3s_coord *c = coord_start("cancel");
    static volatile sig_atomic_t cancel;
    cancel = 0;
    s3s_worker *w = s3s_test_coordfix_worker_cancel(url, &srv, 4, &cancel);
    s3s_item *it = NULL;
    assert_int_equal(s3s_worker_next(w, &it), 0);
    read_rest(it);
    assert_int_equal(s3s_item_close(it), 0);
    uint64_t grants = status_u(c, "grants");
    assert_true(grants >= 1);
    cancel = 1;
    int rc, more = 0;
    while ((rc = s3s_worker_next(w, &it)) == 0) { /* what is held, then no more */
        read_rest(it);
        assert_int_equal(s3s_item_close(it), 0);
        more++;
    }
    assert_int_equal(rc, S3S_EINTERRUPTED);
    assert_true(1 + more < NOBJ);
    assert_int_equal(status_u(c, "grants"), grants);
    assert_int_equal(s3s_worker_drain(w, "test"), 0);
    s3s_coord_status st;
    s3s_coord_status_get(c, &st);
    assert_int_equal(st.active_leases, 0);
    assert_int_equal(status_u(c, "grants"), grants);
    s3s_worker_destroy(w);
    s3s_coord_destroy(c);
}

/* A coordinator restart expires the lease: the commit is refused as stale,
 * and the worker goes on with the tail granted again. */
static void test_stale_after_restart(void **state)
{
    (void)state;
    fresh_url();
    s3s_coord *c = coord_start("stale");
    s3s_worker *w = worker();
    s3s_item *it = NULL;
    do {
        assert_int_equal(s3s_worker_next(w, &it), 0);
        if (s3s_item_info_get(it)->size > 0)
            break;
        assert_int_equal(s3s_item_close(it), 0);
    } while (1);
    assert_int_equal(s3s_item_commit(it, 100), 0);
    s3s_coord_destroy(c);
    c = coord_start("stale"); /* replays the journal; live leases expire */
    assert_int_equal(s3s_item_commit(it, 200), S3S_ESTALE);
    assert_int_equal(s3s_item_close(it), 0);
    int seen = 0, rc;
    while ((rc = s3s_worker_next(w, &it)) == 0) {
        read_rest(it);
        seen++;
        /* an item fetched ahead under the other expired lease is found stale
         * at its commit; its shard is granted again */
        int cr = s3s_item_close(it);
        assert_true(cr == 0 || cr == S3S_ESTALE);
    }
    assert_int_equal(rc, S3S_EEOF);
    assert_true(seen >= NOBJ - 1);
    s3s_coord_status st;
    s3s_coord_status_get(c, &st);
    assert_true(st.finished);
    s3s_worker_destroy(w);
    s3s_coord_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_cancel_takes_no_lease),
        cmocka_unit_test(test_stale_after_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
