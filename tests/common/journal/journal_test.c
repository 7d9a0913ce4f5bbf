/* journal_test.c: the journal on real files: roundtrip, group commit, torn
 * tails at every byte, flipped bits everywhere, compaction and its crash
 * points, the state-dir lock (across processes), job/snapshot mismatch, the
 * mirror hook. */
#include "tests/support/testenv.h"

#include "common/journal/crc32c.h"
#include "common/journal/journal.h"
#include "s3shard/error.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NREC 9

typedef struct seen {
    s3s__jrec r[4096];
    uint64_t off[4096];
    uint8_t data[4096][16]; /* copies of opaque data */
    int n;
} seen;

static int collect(void *arg, const s3s__jrec *r, uint64_t off)
{
    seen *s = arg;
    if (s->n >= 4096)
        return S3S_ETOOBIG;
    s->r[s->n] = *r;
    if (r->type == S3S_JREC_OPAQUE && r->data_len <= 16) {
        memcpy(s->data[s->n], r->data, r->data_len);
        s->r[s->n].data = s->data[s->n];
    }
    s->off[s->n] = off;
    s->n++;
    return 0;
}

static void sample(s3s__jrec *r, int k)
{
    memset(r, 0, sizeof *r);
    r->time_ms = 1700000000000ull + (uint64_t)k;
    switch (k % NREC) {
    case 0:
        r->type = S3S_JREC_JOB_STARTED;
        memset(r->job_hash, 0x11, 32);
        memset(r->snapshot_hash, 0x22, 32);
        r->n_channels = 2;
        break;
    case 1:
        r->type = S3S_JREC_EPOCH_STARTED;
        r->channel = 1;
        r->epoch = 3;
        r->seed = 0xdeadbeefcafeull;
        r->n_shards = 10000000;
        break;
    case 2:
        r->type = S3S_JREC_GRANTED;
        r->epoch = 3;
        r->shard = (uint64_t)k;
        r->start = 100;
        r->end = 1u << 30;
        r->token = 5000 + (uint64_t)k;
        r->worker = 0x1234567890abcdefull;
        r->rank = 7;
        break;
    case 3:
        r->type = S3S_JREC_COMMITTED;
        r->epoch = 3;
        r->shard = (uint64_t)k;
        r->token = 5000 + (uint64_t)k;
        r->worker = 42;
        r->offset = 65536;
        break;
    case 4:
        r->type = S3S_JREC_SHARD_DONE;
        r->epoch = 3;
        r->shard = (uint64_t)k;
        r->token = 1;
        r->worker = 42;
        r->offset = 1u << 30;
        break;
    case 5:
        r->type = S3S_JREC_EPOCH_DONE;
        r->channel = 19;
        r->epoch = UINT64_MAX;
        break;
    case 6:
        r->type = S3S_JREC_LEASE_EXPIRED;
        r->shard = 9;
        r->token = 77;
        r->offset = 12;
        break;
    case 7:
        r->type = S3S_JREC_OPAQUE;
        r->subtype = 3;
        r->data = (const uint8_t *)"future\0bytes";
        r->data_len = 12;
        break;
    case 8:
        r->type = S3S_JREC_SNAPSHOT;
        r->generation = 4;
        r->lsn = 123456;
        break;
    }
}

static void assert_rec_equal(const s3s__jrec *a, const s3s__jrec *b)
{
    assert_int_equal(a->type, b->type);
    assert_true(a->time_ms == b->time_ms);
    assert_int_equal(a->channel, b->channel);
    assert_true(a->epoch == b->epoch && a->shard == b->shard && a->start == b->start &&
                a->end == b->end && a->offset == b->offset && a->token == b->token &&
                a->worker == b->worker && a->rank == b->rank && a->seed == b->seed &&
                a->n_shards == b->n_shards && a->n_channels == b->n_channels &&
                a->generation == b->generation && a->lsn == b->lsn && a->subtype == b->subtype);
    assert_memory_equal(a->job_hash, b->job_hash, 32);
    assert_memory_equal(a->snapshot_hash, b->snapshot_hash, 32);
    assert_int_equal(a->data_len, b->data_len);
    if (a->data_len > 0)
        assert_memory_equal(a->data, b->data, a->data_len);
}

static s3s__journal_opts opts_for(const char *dir)
{
    s3s__journal_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    memset(o.job_hash, 0xaa, 32);
    memset(o.snapshot_hash, 0xbb, 32);
    return o;
}

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void spit(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* save_corpus copies the journal of dir to $S3SHARD_WRITE_CORPUS/name when
 * set (the seed corpus of tests/fuzz/journal_read_fuzz.c). */
static void save_corpus(const char *dir, const char *name)
{
    const char *out = getenv("S3SHARD_WRITE_CORPUS");
    if (out == NULL)
        return;
    char *jp = path_in(dir, "journal"), *op = path_in(out, name);
    size_t len;
    uint8_t *img = slurp(jp, &len);
    spit(op, img, len);
    free(img);
    free(jp);
    free(op);
}

/* make_journal writes n sample records (committed) into a fresh dir. */
static void make_journal(const char *dir, int n)
{
    s3s__journal_opts o = opts_for(dir);
    s3s__journal *j;
    s3s__errbuf eb;
    s3s__journal_report rep;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, &rep, &eb), 0);
    for (int k = 0; k < n; k++) {
        s3s__jrec r;
        sample(&r, k);
        assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), 0);
    }
    assert_int_equal(s3s__journal_commit(j, &eb), 0);
    s3s__journal_close(j);
}

static int reopen(const char *dir, seen *s, s3s__journal_report *rep, bool repair, s3s__errbuf *eb)
{
    s3s__journal_opts o = opts_for(dir);
    o.repair = repair;
    s3s__journal *j;
    s->n = 0;
    int rc = s3s__journal_open(&j, &o, collect, s, rep, eb);
    if (rc == 0)
        s3s__journal_close(j);
    return rc;
}

static void test_crc32c(void **state)
{
    (void)state;
    assert_int_equal(s3s__crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(s3s__crc32c(0, "", 0), 0);
    /* split computation equals one pass */
    const char *t = "The quick brown fox jumps over the lazy dog, twice over.";
    uint32_t one = s3s__crc32c(0, t, strlen(t));
    assert_int_equal(s3s__crc32c(s3s__crc32c(0, t, 13), t + 13, strlen(t) - 13), one);
}

static void test_roundtrip(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    s3s__journal_opts o = opts_for(dir);
    s3s__journal *j;
    s3s__errbuf eb;
    s3s__journal_report rep;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, &rep, &eb), 0);
    assert_true(rep.created);
    assert_int_equal(rep.records, 0);
    uint64_t lsn = 0, prev = 0;
    for (int k = 0; k < 3 * NREC; k++) {
        s3s__jrec r;
        sample(&r, k);
        assert_int_equal(s3s__journal_append(j, &r, &lsn, &eb), 0);
        assert_true(lsn > prev);
        prev = lsn;
        if (k % 5 == 4)
            assert_int_equal(s3s__journal_commit(j, &eb), 0);
    }
    assert_int_equal(s3s__journal_commit(j, &eb), 0);
    assert_int_equal(s3s__journal_commit(j, &eb), 0); /* nothing pending: no-op */
    /* appended but never committed: dropped at close, never acknowledged */
    s3s__jrec extra;
    sample(&extra, 2);
    assert_int_equal(s3s__journal_append(j, &extra, NULL, &eb), 0);
    s3s__journal_stats st;
    s3s__journal_stats_get(j, &st);
    assert_int_equal(st.records, 3 * NREC + 1);
    assert_int_equal(st.commits, 6);
    s3s__journal_close(j);

    seen *s = calloc(1, sizeof *s);
    assert_int_equal(reopen(dir, s, &rep, false, &eb), 0);
    assert_false(rep.created);
    assert_false(rep.cut);
    assert_int_equal(s->n, 3 * NREC);
    assert_int_equal(rep.records, 3 * NREC);
    assert_int_equal(s->off[0], S3S_JOURNAL_HEADER_SIZE);
    save_corpus(dir, "roundtrip.journal");
    for (int k = 0; k < s->n; k++) {
        s3s__jrec r;
        sample(&r, k);
        assert_rec_equal(&r, &s->r[k]);
    }
    free(s);
    s3s_test_rmtree(dir);
    free(dir);
}

static void test_refuses_bad_records(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    s3s__journal_opts o = opts_for(dir);
    o.max_record = 64;
    s3s__journal *j;
    s3s__errbuf eb;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
    s3s__jrec r;
    sample(&r, 2);
    r.start = r.end + 1;
    assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), S3S_EINVAL);
    sample(&r, 3);
    r.token = 0;
    assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), S3S_EINVAL);
    sample(&r, 1);
    r.channel = 20;
    assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), S3S_EINVAL);
    memset(&r, 0, sizeof r);
    r.type = 55;
    assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), S3S_EINVAL);
    uint8_t big[100] = {0};
    r.type = S3S_JREC_OPAQUE;
    r.data = big;
    r.data_len = sizeof big;
    assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), S3S_ETOOBIG);
    assert_non_null(strstr(eb.msg, "at most 64"));
    s3s__journal_stats st;
    s3s__journal_stats_get(j, &st);
    assert_int_equal(st.records, 0);
    assert_int_equal(s3s__journal_wait(j, 1, &eb), S3S_EINVAL);
    s3s__journal_close(j);

    /* a pending batch has a cap */
    o.max_record = 0;
    o.max_pending = 200;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
    int rc = 0, n = 0;
    while ((rc = s3s__journal_append(j, (sample(&r, 2), &r), NULL, &eb)) == 0)
        n++;
    assert_int_equal(rc, S3S_ETOOBIG);
    assert_true(n > 0);
    assert_int_equal(s3s__journal_commit(j, &eb), 0);
    assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), 0);
    assert_int_equal(s3s__journal_commit(j, &eb), 0);
    s3s__journal_close(j);
    seen *s = calloc(1, sizeof *s);
    assert_int_equal(reopen(dir, s, NULL, false, &eb), 0);
    assert_int_equal(s->n, n + 1);
    /* a record written under a larger max_record is not taken for a torn tail
     * when the journal is reopened with a smaller one */
    o.max_pending = 0;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
    r.type = S3S_JREC_OPAQUE;
    r.data = big;
    r.data_len = sizeof big;
    assert_int_equal(s3s__journal_append_sync(j, &r, &eb), 0);
    s3s__journal_close(j);
    o.max_record = 64;
    s->n = 0;
    s3s__journal_report rep;
    assert_int_equal(s3s__journal_open(&j, &o, collect, s, &rep, &eb), 0);
    s3s__journal_close(j);
    assert_false(rep.cut);
    assert_int_equal(s->n, n + 2);
    assert_int_equal(s->r[n + 1].data_len, sizeof big);
    free(s);
    s3s_test_rmtree(dir);
    free(dir);
}

/* Cut the file inside the last record at every byte: the tail is cut, the
 * earlier records survive, and new appends follow the good prefix. */
static void test_torn_tail_every_offset(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    make_journal(dir, NREC);
    char *jp = path_in(dir, "journal");
    size_t len;
    uint8_t *orig = slurp(jp, &len);
    seen *s = calloc(1, sizeof *s);
    s3s__errbuf eb;
    s3s__journal_report rep;
    assert_int_equal(reopen(dir, s, &rep, false, &eb), 0);
    uint64_t last = s->off[NREC - 1];
    for (size_t cut = (size_t)last; cut < len; cut++) {
        spit(jp, orig, cut);
        int rc = reopen(dir, s, &rep, false, &eb);
        if (rc != 0)
            fail_msg("cut at %zu: %s", cut, eb.msg);
        assert_int_equal(s->n, NREC - 1);
        assert_int_equal(rep.cut, cut > last);
        assert_int_equal(rep.good_end, last);
        if (cut > last) {
            assert_int_equal(rep.bad_offset, last);
            assert_int_equal(rep.file_size, cut);
            assert_true(rep.why[0] != '\0');
        }
        struct stat sb;
        assert_int_equal(stat(jp, &sb), 0);
        assert_int_equal(sb.st_size, last); /* cut on disk */
        /* an append after the cut lands right behind the good prefix */
        s3s__journal_opts o = opts_for(dir);
        s3s__journal *j;
        assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
        s3s__jrec r;
        sample(&r, 5);
        assert_int_equal(s3s__journal_append_sync(j, &r, &eb), 0);
        s3s__journal_close(j);
        assert_int_equal(reopen(dir, s, &rep, false, &eb), 0);
        assert_int_equal(s->n, NREC);
        assert_int_equal(s->off[NREC - 1], last);
        assert_int_equal(s->r[NREC - 1].type, S3S_JREC_EPOCH_DONE);
        assert_false(rep.cut);
    }
    /* a tail of zeros (preallocated, or a file extended whose data never
     * came) is unused space: not cut, kept, and the next append overwrites it */
    uint8_t *z = calloc(1, len + 4096);
    memcpy(z, orig, len);
    spit(jp, z, len + 4096);
    assert_int_equal(reopen(dir, s, &rep, false, &eb), 0);
    assert_false(rep.cut);
    assert_int_equal(rep.good_end, len);
    assert_int_equal(rep.zero_tail, 4096);
    assert_int_equal(s->n, NREC);
    {
        struct stat sb;
        assert_int_equal(stat(jp, &sb), 0);
        assert_int_equal(sb.st_size, len + 4096);
        s3s__journal_opts o = opts_for(dir);
        s3s__journal *j;
        assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
        s3s__jrec r;
        sample(&r, 4);
        assert_int_equal(s3s__journal_append_sync(j, &r, &eb), 0);
        s3s__journal_close(j);
        assert_int_equal(reopen(dir, s, &rep, false, &eb), 0);
        assert_int_equal(s->n, NREC + 1);
        assert_int_equal(s->off[NREC], len);
        assert_int_equal(rep.zero_tail, 4096 - (rep.good_end - len));
    }
    free(z);
    free(orig);
    free(jp);
    free(s);
    s3s_test_rmtree(dir);
    free(dir);
}

/* Flip every bit of a journal image: the header is refused, a middle record is
 * refused as corruption naming its offset, the last record is cut as a torn
 * tail, and what is replayed is always an exact prefix of what was written. */
static void test_flipped_bit_everywhere(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    make_journal(dir, NREC);
    char *jp = path_in(dir, "journal");
    size_t len;
    uint8_t *img = slurp(jp, &len);
    seen *s = calloc(1, sizeof *s);
    s3s__errbuf eb;
    s3s__journal_report rep;
    uint8_t job[32], snap[32];
    memset(job, 0xaa, 32);
    memset(snap, 0xbb, 32);
    assert_int_equal(s3s__journal_scan(img, len, job, snap, 0, false, collect, s, &rep, &eb), 0);
    uint64_t offs[NREC + 1];
    memcpy(offs, s->off, sizeof(uint64_t) * NREC);
    offs[NREC] = len;
    for (size_t at = 0; at < len; at++) {
        int k = -1; /* the record holding byte `at` */
        for (int q = 0; q < NREC; q++)
            if (at >= offs[q] && at < offs[q + 1])
                k = q;
        for (int bit = 0; bit < 8; bit++) {
            img[at] ^= (uint8_t)(1u << bit);
            s->n = 0;
            int rc = s3s__journal_scan(img, len, job, snap, 0, false, collect, s, &rep, &eb);
            if (k < 0) { /* header */
                if (rc != S3S_ECORRUPT)
                    fail_msg("header byte %zu bit %d: rc %d", at, bit, rc);
            } else if (k < NREC - 1) {
                if (rc != S3S_ECORRUPT || rep.bad_offset != offs[k] || rep.next_good != offs[k + 1])
                    fail_msg("byte %zu bit %d (record %d): rc %d bad %llu next %llu: %s", at, bit,
                             k, rc, (unsigned long long)rep.bad_offset,
                             (unsigned long long)rep.next_good, eb.msg);
                assert_int_equal(s->n, k);
            } else {
                if (rc != 0 || !rep.cut || rep.bad_offset != offs[k])
                    fail_msg("byte %zu bit %d (last record): rc %d cut %d", at, bit, rc, rep.cut);
                assert_int_equal(s->n, NREC - 1);
            }
            for (int q = 0; q < s->n; q++) {
                s3s__jrec r;
                sample(&r, q);
                assert_rec_equal(&r, &s->r[q]);
            }
            img[at] ^= (uint8_t)(1u << bit);
        }
    }
    /* the same through the real file: refused and left untouched, then repaired */
    img[offs[3] + 10] ^= 0x40;
    spit(jp, img, len);
    assert_int_equal(reopen(dir, s, &rep, false, &eb), S3S_ECORRUPT);
    assert_non_null(strstr(eb.msg, "not a torn tail"));
    char want[64];
    snprintf(want, sizeof want, "offset %llu", (unsigned long long)offs[3]);
    assert_non_null(strstr(eb.msg, want));
    struct stat sb;
    assert_int_equal(stat(jp, &sb), 0);
    assert_int_equal(sb.st_size, len);
    assert_int_equal(reopen(dir, s, &rep, true, &eb), 0);
    assert_true(rep.cut);
    assert_int_equal(s->n, 3);
    assert_int_equal(stat(jp, &sb), 0);
    assert_int_equal(sb.st_size, offs[3]);
    free(img);
    free(jp);
    free(s);
    s3s_test_rmtree(dir);
    free(dir);
}

static void test_bad_headers(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    char *jp = path_in(dir, "journal");
    s3s__errbuf eb;
    seen *s = calloc(1, sizeof *s);
    spit(jp, "", 0);
    assert_int_equal(reopen(dir, s, NULL, false, &eb), S3S_ECORRUPT);
    assert_non_null(strstr(eb.msg, "too short"));
    char junk[96];
    memset(junk, 'x', sizeof junk);
    spit(jp, junk, sizeof junk);
    assert_int_equal(reopen(dir, s, NULL, false, &eb), S3S_ECORRUPT);
    assert_non_null(strstr(eb.msg, "magic"));
    /* a record with a good checksum but a payload no version of us wrote */
    unlink(jp);
    make_journal(dir, 0);
    size_t len;
    uint8_t *img = slurp(jp, &len);
    uint8_t rec[8 + 3] = {3, 0, 0, 0, 0, 0, 0, 0, 0x92, 0x63, 0x00};
    uint32_t crc = s3s__crc32c(0, rec + 8, 3);
    memcpy(rec + 4, &crc, 4); /* little-endian host */
    img = realloc(img, len + sizeof rec);
    memcpy(img + len, rec, sizeof rec);
    spit(jp, img, len + sizeof rec);
    assert_int_equal(reopen(dir, s, NULL, false, &eb), S3S_EPARSE);
    assert_non_null(strstr(eb.msg, "unknown record type 99"));
    free(img);
    free(s);
    free(jp);
    s3s_test_rmtree(dir);
    free(dir);
}

static void test_mismatch_refused(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    make_journal(dir, 3);
    s3s__journal_opts o = opts_for(dir);
    s3s__journal *j = NULL;
    s3s__errbuf eb;
    o.job_hash[0] = 0x01;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), S3S_EMISMATCH);
    assert_null(j);
    assert_non_null(strstr(eb.msg, "job spec aaaaaaaaaaaaaaaa"));
    assert_non_null(strstr(eb.msg, "job spec 01aaaaaaaaaaaaaa"));
    o = opts_for(dir);
    o.snapshot_hash[31] = 0x00;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), S3S_EMISMATCH);
    assert_non_null(strstr(eb.msg, "snapshot"));
    /* the refusal released the lock: the right job opens it */
    seen *s = calloc(1, sizeof *s);
    assert_int_equal(reopen(dir, s, NULL, false, &eb), 0);
    assert_int_equal(s->n, 3);
    free(s);
    s3s_test_rmtree(dir);
    free(dir);
}

static void test_lock_conflict(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    s3s__journal_opts o = opts_for(dir);
    s3s__journal *a, *b = NULL;
    s3s__errbuf eb;
    assert_int_equal(s3s__journal_open(&a, &o, NULL, NULL, NULL, &eb), 0);
    assert_int_equal(s3s__journal_open(&b, &o, NULL, NULL, NULL, &eb), S3S_EBUSY);
    assert_null(b);
    char want[64];
    snprintf(want, sizeof want, "(pid %ld)", (long)getpid());
    assert_non_null(strstr(eb.msg, want));
    /* another process is refused as well */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        s3s__journal *c = NULL;
        int rc = s3s__journal_open(&c, &o, NULL, NULL, NULL, NULL);
        _exit(rc == S3S_EBUSY ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    s3s__journal_close(a);
    assert_int_equal(s3s__journal_open(&b, &o, NULL, NULL, NULL, &eb), 0);
    s3s__journal_close(b);
    s3s_test_rmtree(dir);
    free(dir);
}

/* Compaction, and a crash at each point of it. */
static void test_compaction(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    make_journal(dir, 2 * NREC);
    char *jp = path_in(dir, "journal"), *tp = path_in(dir, "journal.tmp");
    size_t old_len;
    uint8_t *old_img = slurp(jp, &old_len);
    s3s__journal_opts o = opts_for(dir);
    s3s__journal *j;
    s3s__errbuf eb;
    seen *s = calloc(1, sizeof *s);
    s3s__journal_report rep;

    /* crash point 1: a partial journal.tmp next to the old journal */
    spit(tp, "S3SJRNL1 partial", 16);
    assert_int_equal(reopen(dir, s, &rep, false, &eb), 0);
    assert_true(rep.stale_tmp);
    assert_int_equal(s->n, 2 * NREC);
    assert_int_equal(access(tp, F_OK), -1);

    /* pending records block compaction */
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
    s3s__jrec r;
    sample(&r, 3);
    assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), 0);
    s3s__jcompact *c = NULL;
    assert_int_equal(s3s__journal_compact_begin(j, &c, &eb), S3S_EBUSY);
    assert_int_equal(s3s__journal_commit(j, &eb), 0);

    /* an append during compaction abandons it; the old journal stays in use */
    assert_int_equal(s3s__journal_compact_begin(j, &c, &eb), 0);
    sample(&r, 1);
    assert_int_equal(s3s__journal_compact_add(c, &r, &eb), 0);
    sample(&r, 2);
    assert_int_equal(s3s__journal_append_sync(j, &r, &eb), 0);
    assert_int_equal(s3s__journal_compact_finish(c, &eb), S3S_EBUSY);
    assert_int_equal(access(tp, F_OK), -1);

    /* crash point 2: a complete, synced journal.tmp never renamed */
    assert_int_equal(s3s__journal_compact_begin(j, &c, &eb), 0);
    for (int k = 0; k < 3; k++) {
        sample(&r, k);
        assert_int_equal(s3s__journal_compact_add(c, &r, &eb), 0);
    }
    /* read what finish would rename, then abort as a crash would */
    s3s__journal_compact_abort(c);
    s3s__journal_close(j);
    spit(tp, old_img, old_len); /* any complete file: it must be ignored */
    assert_int_equal(reopen(dir, s, &rep, false, &eb), 0);
    assert_true(rep.stale_tmp);
    assert_int_equal(s->n, 2 * NREC + 2);
    assert_int_equal(rep.generation, 0);

    /* a full compaction: the new file holds the snapshot marker and the set */
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
    assert_int_equal(s3s__journal_compact_begin(j, &c, &eb), 0);
    for (int k = 0; k < 4; k++) {
        sample(&r, k);
        assert_int_equal(s3s__journal_compact_add(c, &r, &eb), 0);
    }
    assert_int_equal(s3s__journal_compact_finish(c, &eb), 0);
    /* appends go to the new file */
    sample(&r, 5);
    assert_int_equal(s3s__journal_append_sync(j, &r, &eb), 0);
    s3s__journal_stats st;
    s3s__journal_stats_get(j, &st);
    assert_int_equal(st.generation, 1);
    s3s__journal_close(j);
    assert_int_equal(reopen(dir, s, &rep, false, &eb), 0);
    assert_false(rep.stale_tmp);
    assert_int_equal(rep.generation, 1);
    assert_int_equal(s->n, 6);
    assert_int_equal(s->r[0].type, S3S_JREC_SNAPSHOT);
    assert_int_equal(s->r[0].generation, 1);
    for (int k = 0; k < 4; k++) {
        sample(&r, k);
        assert_rec_equal(&r, &s->r[k + 1]);
    }
    assert_int_equal(s->r[5].type, S3S_JREC_EPOCH_DONE);
    save_corpus(dir, "compacted.journal");

    /* crash point 3: after the rename, a stale tmp is impossible, and a
     * torn tail in the new generation is cut like any other */
    size_t nl;
    uint8_t *ni = slurp(jp, &nl);
    spit(jp, ni, nl - 1);
    assert_int_equal(reopen(dir, s, &rep, false, &eb), 0);
    assert_true(rep.cut);
    assert_int_equal(s->n, 5);
    free(ni);
    free(old_img);
    free(jp);
    free(tp);
    free(s);
    s3s_test_rmtree(dir);
    free(dir);
}

/* The mirror sees exactly the file's bytes, generation by generation. */
typedef struct mirror {
    uint64_t gen;
    uint8_t img[65536];
    size_t len;
    int calls;
} mirror;

static void on_mirror(void *arg, uint64_t gen, uint64_t off, const void *p, size_t n)
{
    mirror *m = arg;
    if (gen != m->gen || off == 0)
        m->len = 0;
    m->gen = gen;
    assert_int_equal(off, m->len);
    assert_true(off + n <= sizeof m->img);
    memcpy(m->img + off, p, n);
    m->len = off + n;
    m->calls++;
}

static void test_mirror_hook(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    make_journal(dir, 4);
    mirror *m = calloc(1, sizeof *m);
    s3s__journal_opts o = opts_for(dir);
    o.mirror = on_mirror;
    o.mirror_arg = m;
    s3s__journal *j;
    s3s__errbuf eb;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
    assert_int_equal(m->calls, 1); /* the whole file at open */
    s3s__jrec r;
    for (int k = 0; k < 5; k++) {
        sample(&r, k);
        assert_int_equal(s3s__journal_append_sync(j, &r, &eb), 0);
    }
    char *jp = path_in(dir, "journal");
    size_t len;
    uint8_t *img = slurp(jp, &len);
    assert_int_equal(m->len, len);
    assert_memory_equal(m->img, img, len);
    free(img);
    s3s__jcompact *c;
    assert_int_equal(s3s__journal_compact_begin(j, &c, &eb), 0);
    sample(&r, 1);
    assert_int_equal(s3s__journal_compact_add(c, &r, &eb), 0);
    assert_int_equal(s3s__journal_compact_finish(c, &eb), 0);
    sample(&r, 2);
    assert_int_equal(s3s__journal_append_sync(j, &r, &eb), 0);
    img = slurp(jp, &len);
    assert_int_equal(m->gen, 1);
    assert_int_equal(m->len, len);
    assert_memory_equal(m->img, img, len);
    s3s__journal_close(j);
    free(img);
    free(jp);
    free(m);
    s3s_test_rmtree(dir);
    free(dir);
}

/* Many threads appending durably: every record lands once, and the
 * committer batches them (syncs <= records). */
typedef struct worker_arg {
    s3s__journal *j;
    int id, n, rc;
} worker_arg;

static void *appender(void *p)
{
    worker_arg *a = p;
    for (int k = 0; k < a->n && a->rc == 0; k++) {
        s3s__jrec r;
        memset(&r, 0, sizeof r);
        r.type = S3S_JREC_COMMITTED;
        r.shard = (uint64_t)a->id;
        r.offset = (uint64_t)k;
        r.token = 1;
        a->rc = s3s__journal_append_sync(a->j, &r, NULL);
    }
    return NULL;
}

static void test_group_commit_threads(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    s3s__journal_opts o = opts_for(dir);
    s3s__journal *j;
    s3s__errbuf eb;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
    enum { T = 8, N = 100 };
    pthread_t th[T];
    worker_arg args[T];
    for (int t = 0; t < T; t++) {
        args[t] = (worker_arg){.j = j, .id = t, .n = N};
        assert_int_equal(pthread_create(&th[t], NULL, appender, &args[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(args[t].rc, 0);
    }
    s3s__journal_stats st;
    s3s__journal_stats_get(j, &st);
    assert_int_equal(st.records, T * N);
    assert_true(st.syncs >= 1 && st.syncs <= T * N);
    s3s__journal_close(j);
    seen *s = calloc(1, sizeof *s);
    assert_int_equal(reopen(dir, s, NULL, false, &eb), 0);
    assert_int_equal(s->n, T * N);
    int next[T] = {0};
    for (int k = 0; k < s->n; k++) { /* per thread, in order */
        int t = (int)s->r[k].shard;
        assert_int_equal(s->r[k].offset, next[t]);
        next[t]++;
    }
    free(s);
    s3s_test_rmtree(dir);
    free(dir);
}

/* The durable LSN follows commits, and every fdatasync's duration is kept
 * (what coord_bench reports as the disk's latency in the same run). */
static void test_durable_lsn_and_sync_times(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    s3s__journal_opts o = opts_for(dir);
    s3s__journal *j;
    s3s__errbuf eb;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
    uint64_t d0 = s3s__journal_durable(j);
    uint32_t t[8];
    size_t n = 99;
    uint64_t c0 = s3s__journal_sync_times(j, UINT64_MAX, t, 0, &n);
    assert_int_equal(n, 0);
    uint64_t lsn = 0;
    for (int k = 0; k < 3; k++) {
        s3s__jrec r;
        sample(&r, 3);
        assert_int_equal(s3s__journal_append(j, &r, &lsn, &eb), 0);
        assert_true(s3s__journal_durable(j) < lsn); /* appended, not durable */
        assert_int_equal(s3s__journal_commit(j, &eb), 0);
        assert_true(s3s__journal_durable(j) >= lsn);
    }
    assert_true(lsn > d0);
    uint64_t c1 = s3s__journal_sync_times(j, c0, t, 8, &n);
    assert_int_equal(c1 - c0, 3);
    assert_int_equal(n, 3);
    assert_int_equal(s3s__journal_sync_times(j, c0, t, 2, &n), c1); /* capped: the last 2 */
    assert_int_equal(n, 2);
    s3s__journal_close(j);
    s3s_test_rmtree(dir);
    free(dir);
}

/* A failed write (here: past RLIMIT_FSIZE, a real EFBIG from the kernel)
 * makes the journal refuse everything after, and a restart replays only what
 * was durable. */
static void test_write_failure_is_sticky(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    make_journal(dir, 3);
    s3s__journal_opts o = opts_for(dir);
    s3s__journal *j;
    s3s__errbuf eb;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
    s3s__journal_stats st;
    s3s__journal_stats_get(j, &st);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)st.file_size + 10;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    s3s__jrec r;
    sample(&r, 2);
    assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), 0);
    int rc = s3s__journal_commit(j, &eb);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, S3S_EIO);
    assert_non_null(strstr(eb.msg, "write of"));
    assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), S3S_EIO);
    assert_non_null(strstr(eb.msg, "earlier write failed"));
    assert_int_equal(s3s__journal_commit(j, &eb), S3S_EIO);
    s3s__jcompact *c;
    assert_int_equal(s3s__journal_compact_begin(j, &c, &eb), S3S_EIO);
    s3s__journal_close(j);
    seen *s = calloc(1, sizeof *s);
    s3s__journal_report rep;
    assert_int_equal(reopen(dir, s, &rep, false, &eb), 0);
    assert_int_equal(s->n, 3);
    assert_true(rep.cut); /* the 10 bytes that made it are a torn tail */
    free(s);
    s3s_test_rmtree(dir);
    free(dir);
}

/* Preallocation: the file runs ahead of the records in zeros, every record
 * replays across several extensions, a reopen reads the zeros as unused space
 * and appends overwrite them; a batch torn over the zeros is cut as a torn
 * tail, and a record after a hole of zeros is still refused as corruption. */
static void test_prealloc(void **state)
{
    (void)state;
    char *dir = s3s_test_tmpdir("journal");
    char *jp = path_in(dir, "journal");
    s3s__journal_opts o = opts_for(dir);
    o.prealloc = true;
    s3s__journal *j;
    s3s__errbuf eb;
    assert_int_equal(s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb), 0);
    /* ~2.5 MiB of records in 30 commits: two extensions at least */
    static uint8_t blob[800];
    memset(blob, 0x5a, sizeof blob);
    s3s__jrec r;
    memset(&r, 0, sizeof r);
    r.type = S3S_JREC_OPAQUE;
    r.data = blob;
    r.data_len = sizeof blob;
    s3s__journal_stats st;
    uint64_t allocs = 0, last_alloc = 0;
    for (int k = 0; k < 3000; k++) {
        r.subtype = (uint32_t)k;
        assert_int_equal(s3s__journal_append(j, &r, NULL, &eb), 0);
        if (k % 100 != 99)
            continue;
        assert_int_equal(s3s__journal_commit(j, &eb), 0);
        s3s__journal_stats_get(j, &st);
        assert_true(st.allocated > st.file_size); /* zeros ahead */
        if (st.allocated != last_alloc)
            allocs++;
        last_alloc = st.allocated;
        struct stat sb;
        assert_int_equal(stat(jp, &sb), 0);
        assert_int_equal((uint64_t)sb.st_size, st.allocated);
    }
    assert_true(allocs >= 3);
    uint64_t end = st.file_size, alloc = st.allocated;
    s3s__journal_close(j);
    seen *s = calloc(1, sizeof *s);
    s3s__journal_report rep;
    /* every record back, the zeros reported, nothing cut */
    s->n = 0;
    assert_int_equal(s3s__journal_open(&j, &o, collect, s, &rep, &eb), 0);
    assert_int_equal(s->n, 3000);
    for (int k = 0; k < 3000; k++)
        assert_int_equal(s->r[k].subtype, (uint32_t)k);
    assert_false(rep.cut);
    assert_int_equal(rep.good_end, end);
    assert_int_equal(rep.zero_tail, alloc - end);
    /* appends overwrite the zeros */
    sample(&r, 3);
    assert_int_equal(s3s__journal_append_sync(j, &r, &eb), 0);
    s3s__journal_stats_get(j, &st);
    assert_int_equal(st.allocated, alloc);
    assert_true(st.file_size > end);
    uint64_t end2 = st.file_size;
    s3s__journal_close(j);
    s->n = 0;
    assert_int_equal(s3s__journal_open(&j, &o, collect, s, &rep, &eb), 0);
    s3s__journal_close(j);
    assert_int_equal(s->n, 3001);
    assert_int_equal(s->off[3000], end);
    assert_int_equal(s->r[3000].type, S3S_JREC_COMMITTED);
    /* a torn batch over the zeros: half a record, zeros behind it: cut */
    size_t len;
    uint8_t *img = slurp(jp, &len);
    assert_int_equal(len, alloc);
    uint8_t *torn = malloc(len);
    memcpy(torn, img, len);
    memcpy(torn + end2, img + end, (end2 - end) / 2); /* the last record's first half again */
    spit(jp, torn, len);
    s->n = 0;
    assert_int_equal(s3s__journal_open(&j, &o, collect, s, &rep, &eb), 0);
    s3s__journal_close(j);
    assert_int_equal(s->n, 3001);
    assert_true(rep.cut);
    assert_int_equal(rep.bad_offset, end2);
    struct stat sb;
    assert_int_equal(stat(jp, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, end2); /* cut on disk, zeros and all */
    /* a hole of zeros with a good record behind it is not a tail: refused */
    memcpy(torn, img, len);
    memset(torn + end, 0, end2 - end);
    memcpy(torn + end2 + 64, img + end, end2 - end);
    spit(jp, torn, len);
    s->n = 0;
    assert_int_equal(s3s__journal_open(&j, &o, collect, s, &rep, &eb), S3S_ECORRUPT);
    assert_non_null(strstr(eb.msg, "not a torn tail"));
    free(torn);
    free(img);
    free(s);
    free(jp);
    s3s_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_refuses_bad_records),
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_flipped_bit_everywhere),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_mismatch_refused),
        cmocka_unit_test(test_lock_conflict),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_mirror_hook),
        cmocka_unit_test(test_group_commit_threads),
        cmocka_unit_test(test_write_failure_is_sticky),
        cmocka_unit_test(test_durable_lsn_and_sync_times),
        cmocka_unit_test(test_prealloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
