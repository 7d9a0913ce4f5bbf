/* source_coord_records_test.c: an augmented manifest through a real
 * in-process coordinator and a real s3rver (worker/source_coord.c wrapped in
 * worker/records.c): leases of shards packing 3 records become attribute
 * items with the right bytes, each record exactly once, and the job
 * finishes; after a coordinator restart the commit that would complete a
 * record of the expired lease fails with S3S_ESTALE, the records of that
 * lease still queued in the worker are dropped, and the re-granted shard
 * brings every record once more, whole. */
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

#define BUCKET "crk"
#define NIMG 4
#define NREC 10

static s3s_test_s3rver srv;
static char *tmp;
static char url[64];
static char job_path[512];
static uint8_t *img[NIMG];
static size_t img_size[NIMG];

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
    tmp = s3s_test_tmpdir("source_coord_records");
    s3s_s3_opts o;
    s3s_s3_opts_init(&o);
    o.endpoint = srv.endpoint;
    s3s_s3 *s3 = NULL;
    if (s3s_s3_create(&s3, &o) != 0)
        return -1;
    for (int i = 0; i < NIMG; i++) {
        char key[64];
        snprintf(key, sizeof(key), "img/%d.bin", i);
        img_size[i] = 5000 + (size_t)i * 777;
        img[i] = malloc(img_size[i]);
        for (size_t k = 0; k < img_size[i]; k++)
            img[i][k] = (uint8_t)(k * 31 + (size_t)i * 7);
        if (s3s_s3_put(s3, BUCKET, key, img[i], img_size[i], NULL) != 0)
            return -1;
    }
    char man[4096];
    size_t ml = 0;
    for (int r = 0; r < NREC; r++)
        ml += (size_t)snprintf(man + ml, sizeof(man) - ml,
                               "{\"source-ref\": \"s3://" BUCKET "/img/%d.bin\", \"class\": %d}\n",
                               r % NIMG, r);
    if (s3s_s3_put(s3, BUCKET, "m.jsonl", man, ml, NULL) != 0)
        return -1;
    s3s_s3_destroy(s3);
    snprintf(job_path, sizeof(job_path), "%s/job.json", tmp);
    FILE *f = fopen(job_path, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "{\"InputDataConfig\": [{\"ChannelName\": \"train\", \"InputMode\": \"Pipe\", "
            "\"DataSource\": {\"S3DataSource\": {\"S3DataType\": \"AugmentedManifestFile\", "
            "\"S3Uri\": \"s3://" BUCKET "/m.jsonl\", \"AttributeNames\": [\"source-ref\", "
            "\"class\"]}}}], \"S3Shard\": {\"Epochs\": 1, \"LeaseSeconds\": 30, "
            "\"Channels\": {\"train\": {\"Distribution\": \"Dynamic\", "
            "\"RecordsPerShard\": 3}}}}\n");
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    s3s_test_s3rver_stop(&srv);
    s3s_test_rmtree(tmp);
    free(tmp);
    for (int i = 0; i < NIMG; i++)
        free(img[i]);
    return 0;
}

static s3s_coord *coord_start(const char *name)
{
    return s3s_test_coordfix_start(tmp, name, job_path, url, &srv);
}

static s3s_worker *worker(void)
{
    return s3s_test_coordfix_worker(url, &srv, 2);
}

static void fresh_url(void)
{
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", s3s_test_free_port());
}

/* Reads the whole item and checks it is attribute attr_index of the record
 * on its line: the image of that record, or its class as JSON. Returns the
 * record (line - 1). */
static int read_attr(s3s_item *it)
{
    const s3s_item_info *in = s3s_item_info_get(it);
    assert_non_null(in->attribute);
    assert_int_equal(in->attr_count, 2);
    assert_true(in->record_line >= 1 && in->record_line <= NREC);
    int r = (int)in->record_line - 1;
    uint8_t want[16384];
    size_t wn;
    if (in->attr_index == 0) {
        assert_string_equal(in->attribute, "source-ref");
        wn = img_size[r % NIMG];
        memcpy(want, img[r % NIMG], wn);
    } else {
        assert_string_equal(in->attribute, "class");
        wn = (size_t)snprintf((char *)want, sizeof(want), "%d", r);
    }
    assert_int_equal(in->size, wn);
    uint8_t buf[16384];
    size_t got = 0;
    for (;;) {
        size_t n = 0;
        assert_int_equal(s3s_reader_read(s3s_item_reader(it), buf + got, sizeof(buf) - got, &n), 0);
        if (n == 0)
            break;
        got += n;
    }
    assert_int_equal(got, wn);
    assert_memory_equal(buf, want, wn);
    return r;
}

/* Every record once, whole, in order of its attributes; the job finishes. */
static void test_records_over_leases(void **state)
{
    (void)state;
    fresh_url();
    s3s_coord *c = coord_start("all");
    s3s_worker *w = worker();
    int seen[NREC] = {0}, rc;
    s3s_item *it = NULL;
    int expect_attr = 0, cur = -1;
    while ((rc = s3s_worker_next(w, &it)) == 0) {
        const s3s_item_info *in = s3s_item_info_get(it);
        assert_int_equal(in->attr_index, expect_attr);
        int r = read_attr(it);
        if (expect_attr == 1)
            assert_int_equal(r, cur);
        cur = r;
        assert_int_equal(s3s_item_commit(it, in->size), 0);
        if (expect_attr == 1)
            seen[r]++;
        expect_attr ^= 1;
        assert_int_equal(s3s_item_close(it), 0);
    }
    assert_int_equal(rc, S3S_EEOF);
    for (int r = 0; r < NREC; r++)
        assert_int_equal(seen[r], 1);
    s3s_coord_status st;
    s3s_coord_status_get(c, &st);
    assert_true(st.finished);
    s3s_worker_destroy(w);
    s3s_coord_destroy(c);
}

/* A coordinator restart expires the lease: the record in hand cannot be
 * committed, its lease's other records are dropped, and the re-granted shard
 * brings each record again, whole. */
static void test_revoked_lease(void **state)
{
    (void)state;
    fresh_url();
    s3s_coord *c = coord_start("revoked");
    s3s_worker *w = worker();
    s3s_item *it = NULL;
    assert_int_equal(s3s_worker_next(w, &it), 0);
    assert_int_equal(s3s_item_info_get(it)->attr_index, 0);
    int first = read_attr(it);
    assert_int_equal(s3s_item_commit(it, s3s_item_info_get(it)->size), 0); /* not the record */
    assert_int_equal(s3s_item_close(it), 0);
    s3s_coord_destroy(c);
    c = coord_start("revoked"); /* replays the journal; live leases expire */
    assert_int_equal(s3s_worker_next(w, &it), 0);
    assert_int_equal(s3s_item_info_get(it)->attr_index, 1);
    assert_int_equal(read_attr(it), first);
    assert_int_equal(s3s_item_commit(it, s3s_item_info_get(it)->size), S3S_ESTALE);
    assert_int_equal(s3s_item_close(it), S3S_ESTALE); /* its commit at close fails the same */
    int seen[NREC] = {0}, rc, expect_attr = 0;
    while ((rc = s3s_worker_next(w, &it)) == 0) {
        const s3s_item_info *in = s3s_item_info_get(it);
        assert_int_equal(in->attr_index, expect_attr); /* records come whole */
        int r = read_attr(it);
        /* a record of the other lease granted before the restart fails the
         * same way when its last attribute commits; it comes again */
        int cr = s3s_item_commit(it, in->size);
        assert_true(cr == 0 || cr == S3S_ESTALE);
        if (expect_attr == 1 && cr == 0)
            seen[r]++;
        expect_attr ^= 1;
        assert_int_equal(s3s_item_close(it), cr);
    }
    assert_int_equal(rc, S3S_EEOF);
    for (int r = 0; r < NREC; r++) /* committed exactly once, the failed one included */
        assert_int_equal(seen[r], 1);
    s3s_coord_status st;
    s3s_coord_status_get(c, &st);
    assert_true(st.finished);
    s3s_worker_destroy(w);
    s3s_coord_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_over_leases),
        cmocka_unit_test(test_revoked_lease),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
