/* coord_test.c: the coordinator object on a real state dir and a local
 * (FileSystemDataSource) dataset: resends answered from the reply cache and
 * never applied twice, stale tokens, malformed / wrong-version / wrong-HMAC
 * messages refused and counted, a journal of another job refused, replay
 * after a restart, a record with a truncated varint refused naming it; and the nng server: an
 * oversized message is refused with an error and the server keeps serving. */
#include "common/proto/msg.h"
#include "coordinator/coord_int.h"
#include "s3shard/coordinator.h"
#include "s3shard/error.h"
#include "tests/support/testenv.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

typedef struct fx {
    char *dir;
    char job[4096];
    char state[4096];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    f->dir = s3s_test_tmpdir("coord");
    char data[4096];
    snprintf(data, sizeof(data), "%s/data", f->dir);
    mkdir(data, 0755);
    for (int i = 0; i < 10; i++) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/f%02d", data, i);
        FILE *o = fopen(p, "w");
        for (int k = 0; k < 100 * (i + 1); k++)
            fputc('a' + (k % 26), o);
        fclose(o);
    }
    snprintf(f->job, sizeof(f->job), "%s/job.json", f->dir);
    FILE *j = fopen(f->job, "w");
    fprintf(j,
            "{\"InputDataConfig\": [{\"ChannelName\": \"train\", \"DataSource\": "
            "{\"FileSystemDataSource\": {\"DirectoryPath\": \"%s\", \"FileSystemType\": "
            "\"EFS\"}}}], \"S3Shard\": {\"Epochs\": 2, \"LeaseSeconds\": 30, \"Channels\": "
            "{\"train\": {\"Distribution\": \"Dynamic\", \"ShardTargetBytes\": 0}}}}",
            data);
    fclose(j);
    snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    s3s_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static int try_open_coord(fx *f, const char *secret, s3s__coord **out, s3s__errbuf *eb)
{
    s3s_coord_opts o;
    s3s_coord_opts_init(&o);
    o.job_path = f->job;
    o.state_dir = f->state;
    o.world_size = 2;
    o.secret = secret;
    o.secret_len = secret ? strlen(secret) : 0;
    return s3s__coord_open(out, &o, eb);
}

static s3s__coord *open_coord(fx *f, const char *secret)
{
    s3s__coord *c = NULL;
    s3s__errbuf eb;
    int rc = try_open_coord(f, secret, &c, &eb);
    if (rc != 0)
        fprintf(stderr, "open: %s\n", eb.msg);
    assert_int_equal(rc, 0);
    return c;
}

/* Encodes m, hands it to the coordinator, commits, decodes the reply. */
static void call(s3s__coord *c, s3s__msg *m, const char *secret, s3s__msg *reply, s3s__buf *raw)
{
    s3s__proto_cfg cfg = {
        .secret = (const uint8_t *)secret, .secret_len = secret ? strlen(secret) : 0, .max_msg = 0};
    s3s__buf req;
    s3s__buf_init(&req, 1 << 24);
    assert_int_equal(s3s__msg_encode(&req, m, &cfg, NULL), 0);
    s3s__coord_handle(c, req.data, req.len, 1000, raw);
    assert_int_equal(s3s__coord_commit(c, NULL), 0);
    assert_int_equal(s3s__msg_decode(reply, raw->data, raw->len, &cfg, NULL), 0);
    s3s__buf_fini(&req);
}

static void hello(s3s__coord *c, uint64_t wid, uint64_t seq, uint32_t rank, const char *secret)
{
    s3s__msg m, r;
    s3s__buf raw;
    s3s__buf_init(&raw, 1 << 24);
    s3s__msg_init(&m, S3S_MSG_HELLO, wid, seq);
    snprintf(m.u.hello.host, sizeof(m.u.hello.host), "h");
    m.u.hello.rank = rank;
    m.u.hello.world_size = 2;
    m.u.hello.pid = 1;
    m.u.hello.incarnation = 1;
    m.u.hello.n_channels = 1;
    snprintf(m.u.hello.channels[0], sizeof(m.u.hello.channels[0]), "train");
    call(c, &m, secret, &r, &raw);
    assert_int_equal(r.type, S3S_MSG_WELCOME);
    assert_int_equal(r.u.welcome.rank, rank);
    s3s__msg_fini(&r);
    s3s__buf_fini(&raw);
}

static void test_resend_is_not_applied_twice(void **state)
{
    fx *f = *state;
    s3s__coord *c = open_coord(f, NULL);
    hello(c, 7, 1, 0, NULL);
    s3s__msg m, r1, r2;
    s3s__buf a, b;
    s3s__buf_init(&a, 1 << 24);
    s3s__buf_init(&b, 1 << 24);
    s3s__msg_init(&m, S3S_MSG_LEASE, 7, 2);
    snprintf(m.u.lease.channel, sizeof(m.u.lease.channel), "train");
    m.u.lease.max_shards = 1;
    call(c, &m, NULL, &r1, &a);
    assert_int_equal(r1.type, S3S_MSG_GRANT);
    assert_int_equal(r1.u.grant.n, 1);
    s3s_coord_status st;
    s3s__coord_status_get(c, &st);
    assert_int_equal(st.active_leases, 1);
    call(c, &m, NULL, &r2, &b); /* the same (worker, seq): a resend */
    s3s__msg_fini(&r2);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    s3s__coord_status_get(c, &st);
    assert_int_equal(st.active_leases, 1);
    assert_int_equal(st.resends, 1);

    /* progress: committed once; its resend changes nothing */
    s3s__msg p, pr;
    s3s__msg_prog it = {r1.u.grant.grants[0].shard, r1.u.grant.grants[0].token,
                        r1.u.grant.grants[0].end, true};
    s3s__msg_init(&p, S3S_MSG_PROGRESS, 7, 3);
    p.u.progress.n = 1;
    p.u.progress.items = &it;
    call(c, &p, NULL, &pr, &a);
    assert_int_equal(pr.u.ack.items[0].result, 0);
    s3s__msg_fini(&pr);
    call(c, &p, NULL, &pr, &b);
    assert_int_equal(pr.u.ack.items[0].result, 0);
    s3s__msg_fini(&pr);
    s3s__coord_status_get(c, &st);
    assert_int_equal(st.shards_done, 1);
    assert_int_equal(st.active_leases, 0);

    /* an older seq is refused without effect */
    s3s__msg_init(&m, S3S_MSG_LEASE, 7, 2);
    snprintf(m.u.lease.channel, sizeof(m.u.lease.channel), "train");
    m.u.lease.max_shards = 1;
    call(c, &m, NULL, &r2, &b); /* seq 2 < 3 */
    assert_int_equal(r2.type, S3S_MSG_ERROR);
    assert_int_equal(r2.u.error.code, S3S_ESTALE);
    s3s__msg_fini(&r2);
    s3s__coord_status_get(c, &st);
    assert_int_equal(st.active_leases, 0);
    s3s__msg_fini(&r1);

    /* a stale token */
    it.token = (12345u << 5);
    it.done = false;
    s3s__msg_init(&p, S3S_MSG_PROGRESS, 7, 4);
    p.u.progress.n = 1;
    p.u.progress.items = &it;
    call(c, &p, NULL, &pr, &a);
    assert_int_equal(pr.u.ack.items[0].result, S3S_ESTALE);
    s3s__msg_fini(&pr);
    s3s__buf_fini(&a);
    s3s__buf_fini(&b);
    s3s__coord_close(c);

    /* a restart replays: the committed shard stays done */
    c = open_coord(f, NULL);
    s3s__coord_status_get(c, &st);
    assert_int_equal(st.shards_done, 1);
    assert_int_equal(st.active_leases, 0);
    s3s__coord_close(c);
}

/* Encodes m, hands it to the coordinator at time now (ms), commits, decodes. */
static void call_at(s3s__coord *c, s3s__msg *m, uint64_t now, s3s__msg *reply)
{
    s3s__proto_cfg cfg = {.max_msg = 0};
    s3s__buf req, raw;
    s3s__buf_init(&req, 1 << 24);
    s3s__buf_init(&raw, 1 << 24);
    assert_int_equal(s3s__msg_encode(&req, m, &cfg, NULL), 0);
    s3s__coord_handle(c, req.data, req.len, now, &raw);
    assert_int_equal(s3s__coord_commit(c, NULL), 0);
    assert_int_equal(s3s__msg_decode(reply, raw.data, raw.len, &cfg, NULL), 0);
    s3s__buf_fini(&req);
    s3s__buf_fini(&raw);
}

/* A worker that said hello before a restart keeps talking to the restarted
 * coordinator without a new hello (the journal replayed it): its heartbeats
 * must renew the leases it takes from the new incarnation. Before the fix
 * they renewed nothing, so a lease of a rank that only sent heartbeats
 * expired one TTL after its grant. */
static void test_heartbeat_after_restart_renews(void **state)
{
    fx *f = *state;
    s3s__coord *c = open_coord(f, NULL);
    hello(c, 7, 1, 0, NULL);
    s3s__coord_close(c);
    c = open_coord(f, NULL); /* the restart: worker 7 replayed, no peer record */
    uint64_t t = s3s__now_ms(), ttl = 30000; /* the fixture's LeaseSeconds */
    s3s__msg m, r;
    s3s__msg_init(&m, S3S_MSG_LEASE, 7, 2);
    snprintf(m.u.lease.channel, sizeof(m.u.lease.channel), "train");
    m.u.lease.max_shards = 1;
    call_at(c, &m, t, &r);
    assert_int_equal(r.type, S3S_MSG_GRANT);
    assert_int_equal(r.u.grant.n, 1);
    s3s__msg_prog it = {r.u.grant.grants[0].shard, r.u.grant.grants[0].token, 0, false};
    it.offset = r.u.grant.grants[0].start;
    s3s__msg_fini(&r);
    /* heartbeats only, every half TTL, for two TTLs */
    uint64_t seq = 3;
    for (uint64_t at = t + ttl / 2; at <= t + 2 * ttl; at += ttl / 2) {
        s3s__msg h;
        s3s__msg_init(&h, S3S_MSG_HEARTBEAT, 7, seq++);
        h.u.heartbeat.n = 1;
        h.u.heartbeat.tokens = &it.token;
        call_at(c, &h, at, &r);
        assert_int_equal(r.type, S3S_MSG_HEARTBEAT_ACK);
        assert_int_equal(r.u.heartbeat_ack.n_revoked, 0);
        s3s__msg_fini(&r);
    }
    s3s__msg p;
    s3s__msg_init(&p, S3S_MSG_PROGRESS, 7, seq++);
    p.u.progress.n = 1;
    p.u.progress.items = &it;
    call_at(c, &p, t + 2 * ttl + 1000, &r);
    assert_int_equal(r.type, S3S_MSG_PROGRESS_ACK);
    assert_int_equal(r.u.ack.items[0].result, 0); /* still ours */
    s3s__msg_fini(&r);
    s3s_coord_status st;
    s3s__coord_status_get(c, &st);
    assert_int_equal(st.active_leases, 1);
    s3s__coord_close(c);
}

/* Hands m to the coordinator WITHOUT committing (what a reply sent at once
 * looks like to a worker), returns what s3s__coord_handle said about waiting. */
static int call_nocommit(s3s__coord *c, s3s__msg *m, s3s__msg *reply)
{
    s3s__proto_cfg cfg = {.max_msg = 0};
    s3s__buf req, raw;
    s3s__buf_init(&req, 1 << 24);
    s3s__buf_init(&raw, 1 << 24);
    assert_int_equal(s3s__msg_encode(&req, m, &cfg, NULL), 0);
    int w = s3s__coord_handle(c, req.data, req.len, 1000, &raw);
    assert_int_equal(s3s__msg_decode(reply, raw.data, raw.len, &cfg, NULL), 0);
    s3s__buf_fini(&req);
    s3s__buf_fini(&raw);
    return w;
}

static uint64_t lease_nocommit(s3s__coord *c, uint64_t wid, uint64_t seq, int *wait)
{
    s3s__msg m, r;
    s3s__msg_init(&m, S3S_MSG_LEASE, wid, seq);
    snprintf(m.u.lease.channel, sizeof(m.u.lease.channel), "train");
    m.u.lease.max_shards = 1;
    *wait = call_nocommit(c, &m, &r);
    assert_int_equal(r.type, S3S_MSG_GRANT);
    assert_int_equal(r.u.grant.n, 1);
    uint64_t tok = r.u.grant.grants[0].token;
    s3s__msg_fini(&r);
    return tok;
}

/* A grant answered at once (before its record is durable), then a crash
 * (close without commit = SIGKILL before the group commit): the restarted
 * coordinator never hands out that token again, nor any lower one; the first
 * grant of a run waits for its reservation, later ones do not. */
static void test_grant_before_flush_token_never_reissued(void **state)
{
    fx *f = *state;
    s3s__coord *c = open_coord(f, NULL);
    hello(c, 7, 1, 0, NULL);
    int wait = 0;
    uint64_t t1 = lease_nocommit(c, 7, 2, &wait);
    assert_int_equal(wait, 1); /* no durable reservation yet */
    assert_int_equal(s3s__coord_commit(c, NULL), 0);
    uint64_t t2 = lease_nocommit(c, 7, 3, &wait);
    assert_int_equal(wait, 0); /* below the durable reservation: answered at once */
    assert_true(t2 > t1);
    s3s__coord_close(c); /* crash: t2's grant record was never written */

    c = open_coord(f, NULL);
    hello(c, 7, 4, 0, NULL);
    uint64_t t3 = lease_nocommit(c, 7, 5, &wait);
    assert_true(t3 > t2);
    assert_int_equal(wait, 1); /* the restart resumed at the mark: a new one is due */
    assert_int_equal(s3s__coord_commit(c, NULL), 0);
    uint64_t t4 = lease_nocommit(c, 7, 6, &wait);
    assert_int_equal(wait, 0);
    assert_true(t4 > t3);
    s3s__coord_close(c);

    /* and again: a second crash after answered grants */
    c = open_coord(f, NULL);
    hello(c, 7, 7, 0, NULL);
    uint64_t t5 = lease_nocommit(c, 7, 8, &wait);
    assert_true(t5 > t4);
    s3s__coord_close(c);
}

/* The reservation survives compaction: finish epoch 1 (the journal is
 * rewritten at the boundary), answer a grant of epoch 2 without flushing,
 * crash: the restart hands out a higher token. */
static void test_token_reservation_survives_compaction(void **state)
{
    fx *f = *state;
    s3s__coord *c = open_coord(f, NULL);
    hello(c, 7, 1, 0, NULL);
    uint64_t seq = 2, last = 0;
    s3s_coord_status st;
    s3s__coord_status_get(c, &st);
    for (int k = 0; k < 100 && st.epoch == 0; k++) {
        s3s__msg m, r;
        s3s__buf raw;
        s3s__buf_init(&raw, 1 << 24);
        s3s__msg_init(&m, S3S_MSG_LEASE, 7, seq++);
        snprintf(m.u.lease.channel, sizeof(m.u.lease.channel), "train");
        m.u.lease.max_shards = 1;
        call(c, &m, NULL, &r, &raw);
        assert_int_equal(r.type, S3S_MSG_GRANT);
        if (r.u.grant.n == 1) {
            last = r.u.grant.grants[0].token;
            s3s__msg p, pr;
            s3s__msg_prog it = {r.u.grant.grants[0].shard, r.u.grant.grants[0].token,
                                r.u.grant.grants[0].end, true};
            s3s__msg_init(&p, S3S_MSG_PROGRESS, 7, seq++);
            p.u.progress.n = 1;
            p.u.progress.items = &it;
            call(c, &p, NULL, &pr, &raw);
            assert_int_equal(pr.u.ack.items[0].result, 0);
            s3s__msg_fini(&pr);
        }
        s3s__msg_fini(&r);
        s3s__buf_fini(&raw);
        s3s__coord_status_get(c, &st);
    }
    assert_int_equal(st.epoch, 1); /* compacted at the boundary */
    int wait = 0;
    uint64_t t = lease_nocommit(c, 7, seq++, &wait);
    assert_true(t > last);
    assert_int_equal(wait, 0);
    s3s__coord_close(c);

    c = open_coord(f, NULL);
    hello(c, 7, seq++, 0, NULL);
    uint64_t t2 = lease_nocommit(c, 7, seq++, &wait);
    assert_true(t2 > t);
    s3s__coord_close(c);
}

/* The good records of a state dir's journal, and the hashes it was made for. */
typedef struct jimage {
    uint8_t *p;
    size_t len; /* up to the end of the last good record (no preallocated zeros) */
    uint8_t job[S3S_JREC_HASH_LEN], snap[S3S_JREC_HASH_LEN];
} jimage;

static int grab_hashes(void *arg, const s3s__jrec *r, uint64_t off)
{
    (void)off;
    jimage *im = arg;
    if (r->type == S3S_JREC_JOB_STARTED) {
        memcpy(im->job, r->job_hash, sizeof(im->job));
        memcpy(im->snap, r->snapshot_hash, sizeof(im->snap));
    }
    return 0;
}

static void jimage_load(fx *f, jimage *im)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/journal", f->state);
    FILE *j = fopen(p, "rb");
    assert_non_null(j);
    fseek(j, 0, SEEK_END);
    long n = ftell(j);
    fseek(j, 0, SEEK_SET);
    im->p = malloc((size_t)n);
    assert_int_equal(fread(im->p, 1, (size_t)n, j), (size_t)n);
    fclose(j);
    s3s__journal_report rep;
    s3s__errbuf eb;
    assert_int_equal(s3s__journal_scan(im->p, (size_t)n, NULL, NULL, S3S_JOURNAL_RECORD_LIMIT,
                                       false, grab_hashes, im, &rep, &eb),
                     0);
    im->len = (size_t)rep.good_end;
}

/* Makes the state dir's journal im's records plus one opaque record (subtype,
 * d): a record with a good checksum, as a bug or another version would write
 * it. Returns the new record's offset. */
static uint64_t journal_with(fx *f, const jimage *im, uint32_t subtype, const uint8_t *d, size_t n)
{
    char p[4200];
    snprintf(p, sizeof(p), "%s/journal", f->state);
    FILE *j = fopen(p, "wb");
    assert_non_null(j);
    assert_int_equal(fwrite(im->p, 1, im->len, j), im->len);
    fclose(j);
    s3s__journal_opts o = {0};
    o.dir = f->state;
    memcpy(o.job_hash, im->job, sizeof(o.job_hash));
    memcpy(o.snapshot_hash, im->snap, sizeof(o.snapshot_hash));
    s3s__journal *jr = NULL;
    s3s__errbuf eb;
    assert_int_equal(s3s__journal_open(&jr, &o, NULL, NULL, NULL, &eb), 0);
    s3s__jrec r = {0};
    r.type = S3S_JREC_OPAQUE;
    r.subtype = subtype;
    r.data = d;
    r.data_len = (uint32_t)n;
    assert_int_equal(s3s__journal_append_sync(jr, &r, &eb), 0);
    s3s__journal_close(jr);
    return im->len;
}

/* A world-size, token floor or token reservation record whose varint runs
 * past the record's end (or past 10 bytes) is refused, naming the record and
 * its offset; the same journal with the varint whole replays. */
static void test_truncated_varint_record_is_refused(void **state)
{
    fx *f = *state;
    s3s__coord *c = open_coord(f, NULL);
    hello(c, 7, 1, 0, NULL);
    int wait = 0;
    lease_nocommit(c, 7, 2, &wait); /* a token reservation record too */
    assert_int_equal(s3s__coord_commit(c, NULL), 0);
    s3s__coord_close(c);
    jimage im;
    jimage_load(f, &im);

    static const struct {
        uint32_t subtype;
        uint8_t d[12];
        size_t n;
        const char *what;
    } bad[] = {
        {S3S__CJ_CONFIG, {0x82}, 1, "bad world size"},
        {S3S__CJ_CONFIG,
         {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
         11,
         "bad world size"},
        {S3S__CJ_TOKEN_FLOOR, {0, 0xff}, 2, "bad token floor"},
        {S3S__CJ_TOKEN_RESERVE, {0, 0x80, 0x80}, 3, "bad token reservation"},
        {S3S__CJ_TOKEN_RESERVE,
         {0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
         11,
         "bad token reservation"}, /* 10 bytes, but over 64 bits */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t off = journal_with(f, &im, bad[i].subtype, bad[i].d, bad[i].n);
        char want[128];
        snprintf(want, sizeof(want), "journal: %s at offset %llu: varint truncated", bad[i].what,
                 (unsigned long long)off);
        c = NULL;
        s3s__errbuf eb;
        assert_int_equal(try_open_coord(f, NULL, &c, &eb), S3S_EPARSE);
        assert_null(c);
        if (strstr(eb.msg, want) == NULL)
            fail_msg("case %zu: \"%s\" lacks \"%s\"", i, eb.msg, want);
    }

    /* the same records, whole: the world size matches, the floor and the
     * reservation (2^21, a four-byte varint) raise the next token */
    static const uint8_t world[] = {0x02}, floor[] = {0, 0x80, 0x80, 0x01},
                         mark[] = {0, 0x80, 0x80, 0x80, 0x01};
    journal_with(f, &im, S3S__CJ_CONFIG, world, sizeof(world));
    s3s__coord_close(open_coord(f, NULL));
    journal_with(f, &im, S3S__CJ_TOKEN_FLOOR, floor, sizeof(floor));
    c = open_coord(f, NULL);
    hello(c, 7, 3, 0, NULL);
    assert_true(lease_nocommit(c, 7, 4, &wait) >> S3S__COORD_TOKEN_SHIFT >= (1u << 14));
    s3s__coord_close(c);
    journal_with(f, &im, S3S__CJ_TOKEN_RESERVE, mark, sizeof(mark));
    c = open_coord(f, NULL);
    hello(c, 7, 3, 0, NULL);
    assert_true(lease_nocommit(c, 7, 4, &wait) >> S3S__COORD_TOKEN_SHIFT >= (1u << 21));
    s3s__coord_close(c);
    free(im.p);
}

static void test_bad_messages_are_refused_and_counted(void **state)
{
    fx *f = *state;
    s3s__coord *c = open_coord(f, "sesame");
    s3s__buf raw;
    s3s__buf_init(&raw, 1 << 24);
    s3s__msg r;
    s3s__proto_cfg cfg = {.secret = (const uint8_t *)"sesame", .secret_len = 6, .max_msg = 0};
    /* garbage */
    s3s__coord_handle(c, "\xc1\xc1\xc1", 3, 1, &raw);
    assert_int_equal(s3s__msg_decode(&r, raw.data, raw.len, &cfg, NULL), 0);
    assert_int_equal(r.type, S3S_MSG_ERROR);
    assert_int_equal(r.u.error.code, S3S_EPROTO);
    s3s__msg_fini(&r);
    /* another protocol version */
    const unsigned char v2[] = {0x95, 0x02, 0x03, 0x01, 0x01, 0x80};
    s3s__coord_handle(c, v2, sizeof(v2), 1, &raw);
    assert_int_equal(s3s__msg_decode(&r, raw.data, raw.len, &cfg, NULL), 0);
    assert_non_null(strstr(r.u.error.message, "protocol version 2, expected 1"));
    s3s__msg_fini(&r);
    /* the wrong secret */
    s3s__msg m;
    s3s__msg_init(&m, S3S_MSG_STATUS, 9, 1);
    s3s__proto_cfg wrong = {.secret = (const uint8_t *)"guess", .secret_len = 5, .max_msg = 0};
    s3s__buf req;
    s3s__buf_init(&req, 1 << 20);
    assert_int_equal(s3s__msg_encode(&req, &m, &wrong, NULL), 0);
    s3s__coord_handle(c, req.data, req.len, 1, &raw);
    assert_int_equal(s3s__msg_decode(&r, raw.data, raw.len, &cfg, NULL), 0);
    assert_int_equal(r.u.error.code, S3S_EAUTH);
    s3s__msg_fini(&r);
    /* the right one works */
    s3s__buf_reset(&req);
    assert_int_equal(s3s__msg_encode(&req, &m, &cfg, NULL), 0);
    s3s__coord_handle(c, req.data, req.len, 1, &raw);
    assert_int_equal(s3s__msg_decode(&r, raw.data, raw.len, &cfg, NULL), 0);
    assert_int_equal(r.type, S3S_MSG_STATUS_REPLY);
    s3s__msg_fini(&r);
    s3s__coord_counters k;
    s3s__coord_counters_get(c, &k);
    assert_int_equal(k.refused, 3);
    assert_int_equal(k.refused_auth, 1);
    assert_int_equal(k.refused_version, 1);
    s3s__buf_fini(&req);
    s3s__buf_fini(&raw);
    s3s__coord_close(c);
}

static void test_journal_of_another_job_is_refused(void **state)
{
    fx *f = *state;
    s3s__coord_close(open_coord(f, NULL));
    FILE *j = fopen(f->job, "r+");
    fseek(j, 0, SEEK_END);
    long n = ftell(j);
    char *b = calloc(1, (size_t)n + 1);
    fseek(j, 0, SEEK_SET);
    assert_int_equal(fread(b, 1, (size_t)n, j), (size_t)n);
    char *e = strstr(b, "\"Epochs\": 2");
    e[10] = '3';
    fseek(j, 0, SEEK_SET);
    fwrite(b, 1, (size_t)n, j);
    fclose(j);
    free(b);
    s3s_coord_opts o;
    s3s_coord_opts_init(&o);
    o.job_path = f->job;
    o.state_dir = f->state;
    s3s_coord *c = NULL;
    char err[1024] = "";
    assert_int_equal(s3s_coord_create(&c, &o, err, sizeof(err)), S3S_EMISMATCH);
    assert_non_null(strstr(err, "another state dir"));
}

static void test_server_survives_oversized(void **state)
{
    fx *f = *state;
    s3s_coord_opts o;
    s3s_coord_opts_init(&o);
    o.job_path = f->job;
    o.state_dir = f->state;
    o.world_size = 1;
    o.max_msg = 4096;
    o.contexts = 8;
    char url[4200];
    snprintf(url, sizeof(url), "ipc://%s/sock", f->dir);
    o.listen = url;
    s3s_coord *c = NULL;
    char err[1024];
    assert_int_equal(s3s_coord_create(&c, &o, err, sizeof(err)), 0);
    assert_int_equal(s3s_coord_start(c), 0);
    nng_socket s;
    assert_int_equal(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
    assert_int_equal(nng_dial(s, url, NULL, 0), 0);
    char *big = calloc(1, 6000); /* over max_msg, under the nng limit */
    big[0] = (char)0x95;
    assert_int_equal(nng_send(s, big, 6000, 0), 0);
    void *buf;
    size_t len;
    assert_int_equal(nng_recv(s, &buf, &len, NNG_FLAG_ALLOC), 0);
    s3s__msg r;
    s3s__proto_cfg cfg = {.secret = NULL, .secret_len = 0, .max_msg = 0};
    assert_int_equal(s3s__msg_decode(&r, buf, len, &cfg, NULL), 0);
    assert_int_equal(r.type, S3S_MSG_ERROR);
    assert_int_equal(r.u.error.code, S3S_ETOOBIG);
    s3s__msg_fini(&r);
    nng_free(buf, len);
    free(big);
    /* still serving */
    s3s__msg m;
    s3s__msg_init(&m, S3S_MSG_STATUS, 5, 1);
    s3s__buf req;
    s3s__buf_init(&req, 1 << 20);
    assert_int_equal(s3s__msg_encode(&req, &m, &cfg, NULL), 0);
    assert_int_equal(nng_send(s, req.data, req.len, 0), 0);
    assert_int_equal(nng_recv(s, &buf, &len, NNG_FLAG_ALLOC), 0);
    assert_int_equal(s3s__msg_decode(&r, buf, len, &cfg, NULL), 0);
    assert_int_equal(r.type, S3S_MSG_STATUS_REPLY);
    s3s__msg_fini(&r);
    nng_free(buf, len);
    s3s__buf_fini(&req);
    nng_close(s);
    s3s_coord_status st;
    s3s_coord_status_get(c, &st);
    assert_int_equal(st.refused, 1);
    char *json = NULL;
    assert_int_equal(s3s_coord_status_json(c, 1, &json), 0);
    assert_non_null(strstr(json, "\"refused_size\":1"));
    free(json);
    s3s_coord_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resend_is_not_applied_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_after_restart_renews, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grant_before_flush_token_never_reissued, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_reservation_survives_compaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_truncated_varint_record_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_messages_are_refused_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_of_another_job_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_survives_oversized, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
