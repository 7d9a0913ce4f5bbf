/* records_test.c: augmented-manifest records end to end against s3rver.
 *
 * - Pipe mode with RecordIO, 2 shuffled epochs, read by a child process: the
 *   stream is exactly, record after record in each epoch's order, one
 *   RecordIO record with the source-ref object's bytes and one with the
 *   label's JSON (attributes in AttributeNames order, whatever their order
 *   on the line; other attributes dropped). Without RecordIO the same bytes
 *   follow each other unframed. With Gzip the -ref objects (gzip in S3) are
 *   decompressed and the labels left as they are.
 * - The library's items: one per attribute, with the attribute, its place,
 *   the manifest line; inline values have bucket "" and no GET.
 * - ShardedByS3Key splits records: two ranks' records are disjoint and
 *   complete.
 * - A cached -ref object is served with zero GETs by a second worker.
 * - Errors name the manifest, the line, the attribute and the URI: a
 *   missing object, a bucket that cannot be read, a malformed URI (at
 *   snapshot time); the records before the bad one are served first.
 * - A malformed record in a hand-built snapshot fails in its turn, named.
 * - File mode refuses an augmented manifest, naming channel, mode and type. */
#include "tests/support/s3fixture.h"

#include "common/dataset/snapshot.h"
#include "s3shard/error.h"
#include "s3shard/worker.h"
#include "worker/mode_file.h"
#include "worker/mode_pipe.h"
#include "worker/recordio.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define BUCKET "rtest"
#define NR 6

static s3s_test_s3rver srv;
static const size_t sizes[NR] = {3000, 0, 70001, 17, 5000, 1};
static const char *const labels[NR] = {"1", "\"cat\"", "{\"a\":[1,2]}", "0", "true", "null"};
static uint8_t *objs[NR];
static char *tmp; /* a folder for manifests, FIFOs and caches */
static char manifest[512]; /* the good manifest: NR records */
static size_t lines[NR]; /* each record's line in it */
static const char *const attrs[] = {"source-ref", "label", NULL};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static uint8_t *gzip_of(const uint8_t *p, size_t n, size_t *out_n)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, n) + 64;
    uint8_t *out = malloc(cap);
    z.next_in = (uint8_t *)p;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int zr = deflate(&z, Z_FINISH);
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    if (zr != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

static int setup(void **state)
{
    (void)state;
    static const char *const buckets[] = {BUCKET, NULL};
    if (s3s_test_s3fix_start(&srv, buckets) != 0)
        return -1;
    for (int i = 0; i < NR; i++) {
        objs[i] = malloc(sizes[i] + 4);
        for (size_t k = 0; k < sizes[i]; k++)
            objs[i][k] = (uint8_t)(k * 13 + (size_t)i * 7 + (k >> 8));
        if (i == 4) /* the RecordIO magic at an aligned offset: split into parts */
            memcpy(objs[i] + 1000, "\x0a\x23\xd7\xce", 4);
        char key[64];
        snprintf(key, sizeof(key), "img/%d.bin", i);
        if (s3s_test_s3fix_put(&srv, BUCKET, key, objs[i], sizes[i]) != 0)
            return -1;
        size_t gn = 0;
        uint8_t *g = gzip_of(objs[i], sizes[i], &gn);
        snprintf(key, sizeof(key), "gz/%d.bin.gz", i);
        int rc = g ? s3s_test_s3fix_put(&srv, BUCKET, key, g, gn) : -1;
        free(g);
        if (rc != 0)
            return -1;
    }
    tmp = s3s_test_tmpdir("records");
    snprintf(manifest, sizeof(manifest), "%s/train.jsonl", tmp);
    /* a blank line (no record) and attributes in both orders, an extra one */
    char text[4096] = "", line[512];
    size_t ln = 0;
    for (int i = 0; i < NR; i++) {
        if (i == 2) {
            strcat(text, "\n");
            ln++;
        }
        if (i % 2 == 0)
            snprintf(line, sizeof(line),
                     "{\"source-ref\": \"s3://" BUCKET "/img/%d.bin\", \"other\": \"x\", "
                     "\"label\": %s}\n",
                     i, labels[i]);
        else
            snprintf(line, sizeof(line),
                     "{\"label\": %s, \"source-ref\": \"s3://" BUCKET "/img/%d.bin\"}\n", labels[i],
                     i);
        strcat(text, line);
        lines[i] = ++ln;
    }
    write_file(manifest, text);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    s3s_test_s3rver_stop(&srv);
    for (int i = 0; i < NR; i++)
        free(objs[i]);
    s3s_test_rmtree(tmp);
    free(tmp);
    return 0;
}

static void wopts(s3s_worker_opts *wo, const s3s_snapshot *snap)
{
    s3s_worker_opts_init(wo);
    s3s_test_s3fix_opts(&srv, &wo->s3);
    wo->snapshot = snap;
    wo->block_size = 64 * 1024;
    wo->connections = 3;
}

/* ---- expected streams --------------------------------------------------------- */

typedef struct gbuf {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static int gbuf_add(void *ud, const void *p, size_t n)
{
    gbuf *g = ud;
    if (g->n + n > g->cap) {
        g->cap = (g->n + n) * 2 + 1024;
        g->p = realloc(g->p, g->cap);
    }
    memcpy(g->p + g->n, p, n);
    g->n += n;
    return 0;
}

/* expected_epoch: the RecordIO stream of one epoch of snap under po */
static void expected_epoch(const s3s_snapshot *snap, const s3s_plan_opts *po, uint64_t epoch,
                           int record_io, gbuf *out, int *order)
{
    s3s_plan_opts o = *po;
    o.epoch = epoch;
    s3s_plan *plan = NULL;
    assert_int_equal(s3s_plan_create(&plan, snap, &o, NULL), 0);
    assert_int_equal(s3s_plan_shard_count(plan), NR);
    for (size_t pos = 0; pos < NR; pos++) {
        s3s_shard sh;
        assert_int_equal(s3s_plan_shard(plan, s3s_plan_order(plan)[pos], &sh), 0);
        assert_int_equal(sh.count, 1);
        int i = (int)sh.first;
        order[pos] = i;
        if (!record_io) {
            gbuf_add(out, objs[i], sizes[i]);
            gbuf_add(out, labels[i], strlen(labels[i]));
            continue;
        }
        assert_int_equal(s3s__recordio_write(objs[i], sizes[i], gbuf_add, out), 0);
        assert_int_equal(
            s3s__recordio_write((const uint8_t *)labels[i], strlen(labels[i]), gbuf_add, out), 0);
    }
    s3s_plan_destroy(plan);
}

/* child: copy root/train_0 and train_1 to root/out_0 and out_1 */
static void child_copy(const char *root)
{
    for (int e = 0; e < 2; e++) {
        char in[600], outp[600];
        snprintf(in, sizeof(in), "%s/train_%d", root, e);
        snprintf(outp, sizeof(outp), "%s/out_%d", root, e);
        int fd = -1;
        for (int t = 0; t < 3000 && fd < 0; t++) {
            struct stat st;
            if (stat(in, &st) == 0 && S_ISFIFO(st.st_mode))
                fd = open(in, O_RDONLY);
            if (fd < 0) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        if (fd < 0)
            _exit(3);
        FILE *f = fopen(outp, "wb");
        uint8_t buf[8192];
        ssize_t n;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
            fwrite(buf, 1, (size_t)n, f);
        fclose(f);
        close(fd);
    }
    _exit(0);
}

static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)len + 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

/* pipe_case: Pipe mode over 2 shuffled epochs, RecordIO framed or not
 * (then the attributes' bytes simply follow each other, as in SageMaker);
 * with gzip, of the manifest whose -ref objects are gzip: they are
 * decompressed, the labels are not touched. */
static void pipe_case(int record_io, int gzip)
{
    char root[600];
    snprintf(root, sizeof(root), "%s/pipe%d%d", tmp, record_io, gzip);
    assert_int_equal(mkdir(root, 0755), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_copy(root);
    char gzman[600];
    if (gzip) { /* the same records, pointing at the gzip copies */
        snprintf(gzman, sizeof(gzman), "%s/gz.jsonl", tmp);
        FILE *in = fopen(manifest, "r"), *out = fopen(gzman, "w");
        char line[1024];
        while (fgets(line, sizeof(line), in) != NULL) {
            char *p = strstr(line, "/img/");
            if (p == NULL) {
                fputs(line, out);
                continue;
            }
            int i = p[5] - '0';
            fprintf(out, "%.*s/gz/%d.bin.gz%s", (int)(p - line), line, i, p + 10);
        }
        fclose(in);
        fclose(out);
    }
    s3s_snapshot *snap =
        s3s_test_s3fix_snapshot(&srv, gzip ? gzman : manifest, S3S_DATA_AUGMENTED_MANIFEST, attrs);
    s3s_worker_opts wo;
    wopts(&wo, snap);
    wo.plan.shuffle = 1;
    wo.plan.seed = 7;
    wo.epochs = 2;
    s3s__pipe_mode_opts po = {.wopts = &wo, .root = root, .channel_name = "train"};
    po.record_io = record_io;
    po.gzip = gzip;
    s3s__pipe_mode_result res;
    s3s__errbuf eb = {{0}};
    int rc = s3s__mode_pipe_run(&po, &res, &eb);
    if (rc != 0)
        fail_msg("pipe: %s", eb.msg);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(res.epochs, 2);
    assert_int_equal(res.items, 2 * 2 * NR);
    int order[2][NR];
    for (int e = 0; e < 2; e++) {
        gbuf exp = {0};
        expected_epoch(snap, &wo.plan, (uint64_t)e, record_io, &exp, order[e]);
        char outp[700];
        snprintf(outp, sizeof(outp), "%s/out_%d", root, e);
        size_t n = 0;
        uint8_t *got = slurp(outp, &n);
        assert_int_equal(n, exp.n);
        assert_memory_equal(got, exp.p, n);
        free(got);
        free(exp.p);
    }
    /* the shuffle permutes records, differently per epoch */
    assert_memory_not_equal(order[0], order[1], sizeof(order[0]));
    s3s_snapshot_destroy(snap);
}

static void test_pipe_recordio_shuffled(void **state)
{
    (void)state;
    pipe_case(1, 0);
}

static void test_pipe_plain_shuffled(void **state)
{
    (void)state;
    pipe_case(0, 0);
}

static void test_pipe_gzip_recordio(void **state)
{
    (void)state;
    pipe_case(1, 1);
}

/* read_all reads an item to its end into a heap buffer */
static uint8_t *read_all(s3s_item *it, size_t *n)
{
    const s3s_item_info *in = s3s_item_info_get(it);
    uint8_t *p = malloc(in->size + 1);
    size_t got = 0;
    assert_int_equal(s3s_reader_read(s3s_item_reader(it), p, in->size + 1, &got), 0);
    *n = got;
    return p;
}

/* run_items reads every item of one worker, checking each against the
 * manifest; seen[i] counts record i. Returns the worker's stats. */
static void run_items(s3s_worker_opts *wo, int *seen, s3s_worker_stats *st)
{
    s3s_worker *w = NULL;
    s3s_errinfo ei = {0};
    if (s3s_worker_create(&w, wo, &ei) != 0)
        fail_msg("worker: %s", ei.msg);
    s3s_item *it;
    int expect_attr = 0, rec = -1;
    while (s3s_worker_next(w, &it) == 0) {
        const s3s_item_info *in = s3s_item_info_get(it);
        assert_non_null(in->attribute);
        assert_int_equal(in->attr_count, 2);
        assert_int_equal(in->attr_index, expect_attr);
        assert_string_equal(in->attribute, attrs[expect_attr]);
        size_t n = 0;
        uint8_t *p = read_all(it, &n);
        if (expect_attr == 0) {
            assert_string_equal(in->bucket, BUCKET);
            assert_int_equal(sscanf(in->key, "img/%d.bin", &rec), 1);
            assert_true(rec >= 0 && rec < NR);
            assert_int_equal(in->size, sizes[rec]);
            assert_true(in->etag[0] != '\0');
            assert_int_equal(n, sizes[rec]);
            if (n)
                assert_memory_equal(p, objs[rec], n);
            seen[rec]++;
        } else {
            assert_string_equal(in->bucket, "");
            assert_string_equal(in->key, "label");
            assert_int_equal(n, strlen(labels[rec]));
            assert_memory_equal(p, labels[rec], n);
        }
        assert_int_equal(in->record_line, lines[rec]);
        free(p);
        assert_int_equal(s3s_item_close(it), 0);
        expect_attr ^= 1;
    }
    assert_int_equal(expect_attr, 0);
    s3s_worker_stats_get(w, st);
    s3s_worker_destroy(w);
}

static void test_items_cache_zero_gets(void **state)
{
    (void)state;
    char cache[600];
    snprintf(cache, sizeof(cache), "%s/cache", tmp);
    s3s_snapshot *snap =
        s3s_test_s3fix_snapshot(&srv, manifest, S3S_DATA_AUGMENTED_MANIFEST, attrs);
    s3s_worker_opts wo;
    wopts(&wo, snap);
    wo.cache_dir = cache;
    int seen[NR] = {0};
    s3s_worker_stats st;
    run_items(&wo, seen, &st);
    for (int i = 0; i < NR; i++)
        assert_int_equal(seen[i], 1);
    /* 5 non-empty objects, one of 2 blocks; inline labels cost nothing */
    assert_int_equal(st.gets, 6);
    assert_int_equal(st.items, 2 * NR);
    assert_int_equal(st.items_done, 2 * NR);
    /* a second worker on the same cache: every -ref block from disk */
    memset(seen, 0, sizeof(seen));
    run_items(&wo, seen, &st);
    assert_int_equal(st.gets, 0);
    assert_int_equal(st.cache_hits, 6);
    s3s_snapshot_destroy(snap);
}

static void test_sharded_records(void **state)
{
    (void)state;
    s3s_snapshot *snap =
        s3s_test_s3fix_snapshot(&srv, manifest, S3S_DATA_AUGMENTED_MANIFEST, attrs);
    int seen[NR] = {0};
    int per_rank[2] = {0};
    for (uint32_t r = 0; r < 2; r++) {
        s3s_worker_opts wo;
        wopts(&wo, snap);
        wo.rank = r;
        wo.world_size = 2;
        wo.plan.distribution = S3S_DIST_SHARDED_BY_S3_KEY;
        wo.plan.shuffle = 1;
        wo.plan.seed = 3;
        s3s_worker_stats st;
        int mine[NR] = {0};
        run_items(&wo, mine, &st);
        for (int i = 0; i < NR; i++) {
            seen[i] += mine[i];
            per_rank[r] += mine[i];
        }
    }
    for (int i = 0; i < NR; i++)
        assert_int_equal(seen[i], 1); /* disjoint and complete */
    assert_int_equal(per_rank[0], NR / 2); /* balanced by count */
    s3s_snapshot_destroy(snap);
}

/* expect_error: a manifest whose third record is bad; the first two are
 * served, then next() fails with code, the message holding each of needles */
static void expect_error(const char *name, const char *bad_line, int code,
                         const char *const *needles)
{
    char path[600], text[2048];
    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    snprintf(text, sizeof(text),
             "{\"source-ref\": \"s3://" BUCKET "/img/0.bin\", \"label\": 1}\n"
             "{\"source-ref\": \"s3://" BUCKET "/img/3.bin\", \"label\": 2}\n"
             "%s\n"
             "{\"source-ref\": \"s3://" BUCKET "/img/5.bin\", \"label\": 4}\n",
             bad_line);
    write_file(path, text);
    s3s_snapshot *snap = s3s_test_s3fix_snapshot(&srv, path, S3S_DATA_AUGMENTED_MANIFEST, attrs);
    s3s_worker_opts wo;
    wopts(&wo, snap);
    s3s_worker *w = NULL;
    s3s_errinfo ei = {0};
    assert_int_equal(s3s_worker_create(&w, &wo, &ei), 0);
    s3s_item *it;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(s3s_worker_next(w, &it), 0);
        size_t n;
        free(read_all(it, &n));
        s3s_item_close(it);
    }
    assert_int_equal(s3s_worker_next(w, &it), code);
    const char *msg = s3s_worker_errmsg(w);
    print_message("%s\n", msg);
    for (size_t i = 0; needles[i] != NULL; i++)
        if (strstr(msg, needles[i]) == NULL)
            fail_msg("\"%s\" not in \"%s\"", needles[i], msg);
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

static void test_ref_errors(void **state)
{
    (void)state;
    char where[700];
    snprintf(where, sizeof(where), "%s/missing.jsonl:3:", tmp);
    const char *const missing[] = {where, "\"source-ref\"", "s3://" BUCKET "/img/nope.bin", NULL};
    expect_error("missing.jsonl",
                 "{\"label\": 3, \"source-ref\": \"s3://" BUCKET "/img/nope.bin\"}", S3S_ENOTFOUND,
                 missing);
    /* another bucket, which these credentials cannot read (s3rver: none such) */
    snprintf(where, sizeof(where), "%s/otherbucket.jsonl:3:", tmp);
    const char *const other[] = {where, "\"source-ref\"", "s3://other-bucket/img/0.bin", NULL};
    expect_error("otherbucket.jsonl",
                 "{\"label\": 3, \"source-ref\": \"s3://other-bucket/img/0.bin\"}", S3S_ENOTFOUND,
                 other);

    /* a malformed URI: refused when the manifest is read, naming the line */
    char path[600];
    snprintf(path, sizeof(path), "%s/malformed.jsonl", tmp);
    write_file(path,
               "{\"source-ref\": \"s3://" BUCKET "/img/0.bin\", \"label\": 1}\n"
               "{\"source-ref\": \"http://" BUCKET "/img/1.bin\", \"label\": 2}\n");
    s3s_source_opts so;
    s3s_source_opts_init(&so);
    so.uri = path;
    so.data_type = S3S_DATA_AUGMENTED_MANIFEST;
    so.attribute_names = attrs;
    so.n_attribute_names = 2;
    s3s_snapshot *snap = NULL;
    s3s_errinfo ei = {0};
    assert_int_equal(s3s_snapshot_create(&snap, &so, &ei), S3S_EPARSE);
    print_message("%s\n", ei.msg);
    snprintf(where, sizeof(where), "%s:2:", path);
    assert_non_null(strstr(ei.msg, where));
    assert_non_null(strstr(ei.msg, "\"source-ref\""));
    assert_non_null(strstr(ei.msg, "http://" BUCKET "/img/1.bin"));
}

/* A records snapshot not made by the parser (hand-built: no lines kept)
 * whose second record is malformed: the first record is served, then the
 * error names the manifest and the record. */
static void test_bad_record_in_snapshot(void **state)
{
    (void)state;
    static const char *const recs[] = {
        "{\"source-ref\":\"s3://" BUCKET "/img/3.bin\",\"label\":1}",
        "{\"source-ref\":\"ftp://x\",\"label\":2}",
    };
    s3s__snap_builder b;
    s3s__sb_init(&b);
    for (int i = 0; i < 2; i++)
        assert_int_equal(s3s__sb_add(&b, recs[i], strlen(recs[i]), strlen(recs[i]), NULL), 0);
    s3s_snapshot *snap = NULL;
    assert_int_equal(s3s__sb_finish(&b, S3S_SNAP_RECORDS, "hand.jsonl", NULL, &snap, NULL), 0);
    s3s__sb_fini(&b);
    s3s_worker_opts wo;
    wopts(&wo, snap);
    s3s_worker *w = NULL;
    assert_int_equal(s3s_worker_create(&w, &wo, NULL), 0);
    s3s_item *it;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s3s_worker_next(w, &it), 0);
        assert_int_equal(s3s_item_info_get(it)->record_line, 0);
        s3s_item_close(it);
    }
    assert_int_equal(s3s_worker_next(w, &it), S3S_EPARSE);
    const char *msg = s3s_worker_errmsg(w);
    print_message("%s\n", msg);
    assert_non_null(strstr(msg, "hand.jsonl (record 1)"));
    assert_non_null(strstr(msg, "\"source-ref\" (ftp://x)"));
    s3s_worker_destroy(w);
    s3s_snapshot_destroy(snap);
}

static void test_file_mode_refused(void **state)
{
    (void)state;
    s3s_snapshot *snap =
        s3s_test_s3fix_snapshot(&srv, manifest, S3S_DATA_AUGMENTED_MANIFEST, attrs);
    s3s_worker_opts wo;
    wopts(&wo, snap);
    char root[600];
    snprintf(root, sizeof(root), "%s/filemode", tmp);
    s3s__file_mode_opts fo = {.wopts = &wo, .root = root, .channel_name = "train", .progress = 2};
    s3s__errbuf eb = {{0}};
    assert_int_equal(s3s__mode_file_materialize(&fo, NULL, &eb), S3S_ENOTSUP);
    print_message("%s\n", eb.msg);
    assert_non_null(strstr(eb.msg, "channel train"));
    assert_non_null(strstr(eb.msg, "InputMode File"));
    assert_non_null(strstr(eb.msg, "AugmentedManifestFile"));
    struct stat st;
    assert_int_not_equal(stat(root, &st), 0); /* nothing written */
    s3s_snapshot_destroy(snap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipe_recordio_shuffled), cmocka_unit_test(test_pipe_plain_shuffled),
        cmocka_unit_test(test_pipe_gzip_recordio),     cmocka_unit_test(test_items_cache_zero_gets),
        cmocka_unit_test(test_sharded_records),        cmocka_unit_test(test_ref_errors),
        cmocka_unit_test(test_bad_record_in_snapshot), cmocka_unit_test(test_file_mode_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
