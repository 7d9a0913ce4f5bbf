/* msg_test.c: the wire protocol codec: every message round-trips; truncated,
 * oversized, hostile and mistyped input is refused with the right code; HMAC
 * and version rules hold. With S3SHARD_WRITE_CORPUS=DIR set, the valid
 * messages are also written there (the fuzz seed corpus). */
#include "tests/support/testenv.h"

#include "common/proto/mp.h"
#include "common/proto/msg.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <string.h>

static const uint8_t SECRET[] = "correct horse battery staple";

static s3s__proto_cfg cfg_plain(void)
{
    s3s__proto_cfg c = {0};
    return c;
}

static s3s__proto_cfg cfg_secret(void)
{
    s3s__proto_cfg c = {.secret = SECRET, .secret_len = sizeof SECRET - 1};
    return c;
}

/* Sample contents, borrowed by the sample messages. */
static const s3s__msg_inv INV[] = {{0, 7}, {1, 123456789012ull}, {0, 0}};
static const s3s__msg_lease_grant GRANTS[] = {{42, 0, 1048576, 9001, 30000},
                                              {43, 512, 512, 9002, 1}};
static const s3s__msg_prog PROG[] = {{42, 9001, 4096, false}, {43, 9002, 512, true}};
static const s3s__msg_prog_result RES[] = {{42, 9001, 4096, 0}, {43, 9002, 0, S3S_ESTALE}};
static const uint64_t TOKENS[] = {9001, 9002, UINT64_MAX};
static const s3s__pval LIST[] = {{.type = S3S_PV_UINT, .v.u = 1},
                                 {.type = S3S_PV_INT, .v.i = -5},
                                 {.type = S3S_PV_NIL},
                                 {.type = S3S_PV_BOOL, .v.b = true}};
static const s3s__pkv RANK0[] = {{"rank", {.type = S3S_PV_UINT, .v.u = 0}},
                                 {"rate", {.type = S3S_PV_FLOAT, .v.f = 12.5}}};
static const s3s__pkv ROOT_KV[] = {
    {"epoch", {.type = S3S_PV_UINT, .v.u = 3}},
    {"job", {.type = S3S_PV_STR, .n = 5, .v.s = "train"}},
    {"hash", {.type = S3S_PV_BIN, .n = 3, .v.bin = (const uint8_t *)"\x01\x02\x03"}},
    {"list", {.type = S3S_PV_ARRAY, .n = 4, .v.items = LIST}},
    {"rank0", {.type = S3S_PV_MAP, .n = 2, .v.kv = RANK0}},
    {"", {.type = S3S_PV_STR, .n = 0, .v.s = ""}},
};
static const s3s__pval ROOT = {.type = S3S_PV_MAP, .n = 6, .v.kv = ROOT_KV};

static void sample(s3s__msg *m, uint32_t type)
{
    bool req = s3s__msg_is_request(type);
    s3s__msg_init(m, type, req ? 0x1234567890abcdefull : 0, 77);
    switch (type) {
    case S3S_MSG_HELLO:
        strcpy(m->u.hello.host, "ip-10-0-0-1.ec2.internal");
        m->u.hello.rank = 3;
        m->u.hello.local_rank = 1;
        m->u.hello.world_size = 8;
        m->u.hello.pid = 4242;
        m->u.hello.incarnation = 2;
        m->u.hello.n_channels = 2;
        strcpy(m->u.hello.channels[0], "train");
        strcpy(m->u.hello.channels[1], "validation-1.x_y");
        m->u.hello.has_snapshot = true;
        memset(m->u.hello.snapshot_hash, 0xab, S3S_PROTO_HASH_LEN);
        m->u.hello.n_inv = 3;
        m->u.hello.inv = INV;
        m->u.hello.inv_truncated = true;
        break;
    case S3S_MSG_WELCOME:
        m->u.welcome.rank = 3;
        m->u.welcome.world_size = 8;
        m->u.welcome.lease_ttl_ms = 30000;
        m->u.welcome.heartbeat_ms = 5000;
        m->u.welcome.max_msg = S3S_PROTO_MAX_MSG_DEFAULT;
        memset(m->u.welcome.job_hash, 0x11, S3S_PROTO_HASH_LEN);
        memset(m->u.welcome.snapshot_hash, 0x22, S3S_PROTO_HASH_LEN);
        m->u.welcome.n_channels = 1;
        strcpy(m->u.welcome.channels[0].name, "train");
        m->u.welcome.channels[0].epoch = 5;
        m->u.welcome.channels[0].distribution = 2;
        m->u.welcome.channels[0].n_shards = 10000000;
        break;
    case S3S_MSG_LEASE:
        strcpy(m->u.lease.channel, "train");
        m->u.lease.epoch = 5;
        m->u.lease.max_shards = 4;
        break;
    case S3S_MSG_GRANT:
        strcpy(m->u.grant.channel, "train");
        m->u.grant.epoch = 5;
        m->u.grant.status = S3S_GRANT_OK;
        m->u.grant.n = 2;
        m->u.grant.grants = GRANTS;
        m->cmd = S3S_CMD_EPOCH_FINISHED;
        m->cmd_epoch = 6;
        strcpy(m->cmd_channel, "validation");
        break;
    case S3S_MSG_PROGRESS:
    case S3S_MSG_DRAIN:
        m->u.progress.n = 2;
        m->u.progress.items = PROG;
        if (type == S3S_MSG_DRAIN) {
            strcpy(m->u.progress.reason, "SIGTERM: spot interruption");
            m->u.progress.fetched = 123456789; /* the optional field 3 (progress: absent) */
        }
        break;
    case S3S_MSG_PROGRESS_ACK:
    case S3S_MSG_DRAIN_ACK:
        m->u.ack.n = 2;
        m->u.ack.items = RES;
        m->cmd = S3S_CMD_DRAIN;
        break;
    case S3S_MSG_HEARTBEAT:
        m->u.heartbeat.n = 3;
        m->u.heartbeat.tokens = TOKENS;
        break;
    case S3S_MSG_HEARTBEAT_ACK:
        m->u.heartbeat_ack.lease_ttl_ms = 30000;
        m->u.heartbeat_ack.n_revoked = 1;
        m->u.heartbeat_ack.revoked = TOKENS;
        m->cmd = S3S_CMD_STOP;
        break;
    case S3S_MSG_STATUS:
        m->u.status.flags = S3S_STATUS_LEDGER;
        break;
    case S3S_MSG_STATUS_REPLY:
        m->u.status_reply.root = &ROOT;
        break;
    case S3S_MSG_BYE:
        strcpy(m->u.bye.reason, "done");
        break;
    case S3S_MSG_BYE_ACK:
        break;
    case S3S_MSG_ERROR:
        m->u.error.code = S3S_ESTALE;
        strcpy(m->u.error.message, "lease 9001 expired");
        break;
    }
}

static void encode(s3s__buf *b, const s3s__msg *m, const s3s__proto_cfg *cfg)
{
    s3s__errbuf eb;
    s3s__buf_init(b, S3S_PROTO_MAX_MSG_DEFAULT);
    int rc = s3s__msg_encode(b, m, cfg, &eb);
    if (rc != 0)
        fail_msg("encode %s: %s", s3s__msg_type_name(m->type), eb.msg);
}

static int decode(s3s__msg *m, const void *p, size_t n, const s3s__proto_cfg *cfg, s3s__errbuf *eb)
{
    int rc = s3s__msg_decode(m, p, n, cfg, eb);
    if (rc != 0)
        assert_null(m->arena);
    return rc;
}

static void assert_pval_equal(const s3s__pval *a, const s3s__pval *b)
{
    assert_int_equal(a->type, b->type);
    switch (a->type) {
    case S3S_PV_BOOL:
        assert_int_equal(a->v.b, b->v.b);
        break;
    case S3S_PV_UINT:
        assert_true(a->v.u == b->v.u);
        break;
    case S3S_PV_INT:
        assert_true(a->v.i == b->v.i);
        break;
    case S3S_PV_FLOAT:
        assert_true(a->v.f == b->v.f);
        break;
    case S3S_PV_STR:
    case S3S_PV_BIN:
        assert_int_equal(a->n, b->n);
        assert_memory_equal(a->v.bin, b->v.bin, a->n);
        break;
    case S3S_PV_ARRAY:
        assert_int_equal(a->n, b->n);
        for (uint32_t k = 0; k < a->n; k++)
            assert_pval_equal(&a->v.items[k], &b->v.items[k]);
        break;
    case S3S_PV_MAP:
        assert_int_equal(a->n, b->n);
        for (uint32_t k = 0; k < a->n; k++) {
            assert_string_equal(a->v.kv[k].key, b->v.kv[k].key);
            assert_pval_equal(&a->v.kv[k].val, &b->v.kv[k].val);
        }
        break;
    }
}

/* Field-by-field comparison of a sample with its decoding. */
static void assert_msg_equal(const s3s__msg *a, const s3s__msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(b->version, S3S_PROTO_VERSION);
    assert_true(a->sender == b->sender);
    assert_true(a->seq == b->seq);
    assert_int_equal(a->cmd, b->cmd);
    assert_true(a->cmd_epoch == b->cmd_epoch);
    assert_string_equal(a->cmd_channel, b->cmd_channel);
    switch (a->type) {
    case S3S_MSG_HELLO: {
        const s3s__msg_hello *x = &a->u.hello, *y = &b->u.hello;
        assert_string_equal(x->host, y->host);
        assert_int_equal(x->rank, y->rank);
        assert_int_equal(x->local_rank, y->local_rank);
        assert_int_equal(x->world_size, y->world_size);
        assert_true(x->pid == y->pid && x->incarnation == y->incarnation);
        assert_int_equal(x->n_channels, y->n_channels);
        for (uint32_t k = 0; k < x->n_channels; k++)
            assert_string_equal(x->channels[k], y->channels[k]);
        assert_int_equal(x->has_snapshot, y->has_snapshot);
        assert_memory_equal(x->snapshot_hash, y->snapshot_hash, S3S_PROTO_HASH_LEN);
        assert_int_equal(x->n_inv, y->n_inv);
        assert_memory_equal(x->inv, y->inv, x->n_inv * sizeof *x->inv);
        assert_int_equal(x->inv_truncated, y->inv_truncated);
        break;
    }
    case S3S_MSG_WELCOME:
        assert_memory_equal(&a->u.welcome, &b->u.welcome, sizeof a->u.welcome);
        break;
    case S3S_MSG_LEASE:
        assert_memory_equal(&a->u.lease, &b->u.lease, sizeof a->u.lease);
        break;
    case S3S_MSG_GRANT:
        assert_string_equal(a->u.grant.channel, b->u.grant.channel);
        assert_true(a->u.grant.epoch == b->u.grant.epoch);
        assert_int_equal(a->u.grant.status, b->u.grant.status);
        assert_int_equal(a->u.grant.n, b->u.grant.n);
        assert_memory_equal(a->u.grant.grants, b->u.grant.grants,
                            a->u.grant.n * sizeof *a->u.grant.grants);
        break;
    case S3S_MSG_PROGRESS:
    case S3S_MSG_DRAIN:
        assert_int_equal(a->u.progress.n, b->u.progress.n);
        for (uint32_t k = 0; k < a->u.progress.n; k++) {
            const s3s__msg_prog *x = &a->u.progress.items[k], *y = &b->u.progress.items[k];
            assert_true(x->shard == y->shard && x->token == y->token && x->offset == y->offset &&
                        x->done == y->done);
        }
        assert_string_equal(a->u.progress.reason, b->u.progress.reason);
        assert_true(a->u.progress.fetched == b->u.progress.fetched);
        break;
    case S3S_MSG_PROGRESS_ACK:
    case S3S_MSG_DRAIN_ACK:
        assert_int_equal(a->u.ack.n, b->u.ack.n);
        assert_memory_equal(a->u.ack.items, b->u.ack.items, a->u.ack.n * sizeof *a->u.ack.items);
        break;
    case S3S_MSG_HEARTBEAT:
        assert_int_equal(a->u.heartbeat.n, b->u.heartbeat.n);
        assert_memory_equal(a->u.heartbeat.tokens, b->u.heartbeat.tokens, a->u.heartbeat.n * 8);
        break;
    case S3S_MSG_HEARTBEAT_ACK:
        assert_int_equal(a->u.heartbeat_ack.lease_ttl_ms, b->u.heartbeat_ack.lease_ttl_ms);
        assert_int_equal(a->u.heartbeat_ack.n_revoked, b->u.heartbeat_ack.n_revoked);
        assert_memory_equal(a->u.heartbeat_ack.revoked, b->u.heartbeat_ack.revoked,
                            a->u.heartbeat_ack.n_revoked * 8);
        break;
    case S3S_MSG_STATUS:
        assert_int_equal(a->u.status.flags, b->u.status.flags);
        break;
    case S3S_MSG_STATUS_REPLY:
        assert_pval_equal(a->u.status_reply.root, b->u.status_reply.root);
        break;
    case S3S_MSG_BYE:
        assert_string_equal(a->u.bye.reason, b->u.bye.reason);
        break;
    case S3S_MSG_ERROR:
        assert_int_equal(a->u.error.code, b->u.error.code);
        assert_string_equal(a->u.error.message, b->u.error.message);
        break;
    }
}

static void write_corpus(const char *dir, const char *name, const s3s__buf *b)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->data, 1, b->len, f), b->len);
    fclose(f);
}

static void test_roundtrip_every_type(void **state)
{
    (void)state;
    const char *corpus = getenv("S3SHARD_WRITE_CORPUS");
    for (int secret = 0; secret < 2; secret++) {
        s3s__proto_cfg cfg = secret ? cfg_secret() : cfg_plain();
        for (uint32_t t = 1; t < S3S_MSG_TYPE_MAX_; t++) {
            s3s__msg m, d;
            s3s__buf b;
            s3s__errbuf eb;
            sample(&m, t);
            encode(&b, &m, &cfg);
            int rc = decode(&d, b.data, b.len, &cfg, &eb);
            if (rc != 0)
                fail_msg("decode %s: %s", s3s__msg_type_name(t), eb.msg);
            assert_msg_equal(&m, &d);
            s3s__msg_fini(&d);
            if (corpus != NULL) {
                char name[64];
                snprintf(name, sizeof name, "%s%s.msgpack", s3s__msg_type_name(t),
                         secret ? "-hmac" : "");
                write_corpus(corpus, name, &b);
            }
            s3s__buf_fini(&b);
        }
    }
}

static void test_roundtrip_minimal_and_empty(void **state)
{
    (void)state;
    s3s__proto_cfg cfg = cfg_plain();
    /* a grant "none now", an empty heartbeat, a drain with nothing in flight */
    uint32_t types[] = {S3S_MSG_GRANT, S3S_MSG_HEARTBEAT, S3S_MSG_DRAIN, S3S_MSG_BYE};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        s3s__msg m, d;
        s3s__buf b;
        s3s__errbuf eb;
        s3s__msg_init(&m, types[k], 5, 1);
        if (types[k] == S3S_MSG_GRANT) {
            m.sender = 0;
            strcpy(m.u.grant.channel, "c");
            m.u.grant.status = S3S_GRANT_NONE_NOW;
            m.u.grant.retry_ms = 250;
        }
        encode(&b, &m, &cfg);
        assert_int_equal(decode(&d, b.data, b.len, &cfg, &eb), 0);
        assert_msg_equal(&m, &d);
        if (types[k] == S3S_MSG_GRANT)
            assert_int_equal(d.u.grant.retry_ms, 250);
        s3s__msg_fini(&d);
        s3s__buf_fini(&b);
    }
}

/* Every proper prefix of every valid message is refused, never crashes. */
static void test_truncated_everywhere(void **state)
{
    (void)state;
    for (int secret = 0; secret < 2; secret++) {
        s3s__proto_cfg cfg = secret ? cfg_secret() : cfg_plain();
        for (uint32_t t = 1; t < S3S_MSG_TYPE_MAX_; t++) {
            s3s__msg m, d;
            s3s__buf b;
            s3s__errbuf eb;
            sample(&m, t);
            encode(&b, &m, &cfg);
            for (size_t n = 0; n < b.len; n++) {
                /* a heap copy of exactly n bytes, so ASan sees any overread */
                char *p = malloc(n ? n : 1);
                memcpy(p, b.data, n);
                int rc = decode(&d, p, n, &cfg, &eb);
                if (rc != S3S_EPROTO)
                    fail_msg("%s cut at %zu: rc %d (%s)", s3s__msg_type_name(t), n, rc, eb.msg);
                free(p);
            }
            s3s__buf_fini(&b);
        }
    }
}

/* Every byte changed to every value: decoding never crashes and never leaks;
 * with a secret, no single-byte change is accepted. */
static void test_every_byte_mutated(void **state)
{
    (void)state;
    s3s__proto_cfg cfg = cfg_secret();
    for (uint32_t t = 1; t < S3S_MSG_TYPE_MAX_; t++) {
        s3s__msg m, d;
        s3s__buf b;
        s3s__errbuf eb;
        sample(&m, t);
        encode(&b, &m, &cfg);
        for (size_t at = 0; at < b.len; at++) {
            uint8_t orig = (uint8_t)b.data[at];
            for (int v = 0; v < 256; v += (b.len > 200 ? 17 : 1)) {
                if (v == orig)
                    continue;
                b.data[at] = (char)v;
                int rc = decode(&d, b.data, b.len, &cfg, &eb);
                if (rc == 0)
                    fail_msg("%s byte %zu = 0x%02x accepted", s3s__msg_type_name(t), at, v);
            }
            b.data[at] = (char)orig;
        }
        s3s__buf_fini(&b);
    }
}

/* An envelope for a body written by hand: [1, type, sender, 1, <body>]. */
static void raw_msg(s3s__buf *b, uint32_t type, const void *body, size_t n)
{
    s3s__buf_init(b, 1u << 30);
    uint8_t head[] = {0x95, 0x01, (uint8_t)type, 0x07, 0x01};
    assert_int_equal(s3s__buf_append(b, head, sizeof head), 0);
    assert_int_equal(s3s__buf_append(b, body, n), 0);
}

static void expect_refused(const void *p, size_t n, int code, const char *needle)
{
    s3s__msg d;
    s3s__errbuf eb;
    s3s__proto_cfg cfg = cfg_plain();
    int rc = decode(&d, p, n, &cfg, &eb);
    if (rc != code)
        fail_msg("rc %d, expected %d (%s)", rc, code, eb.msg);
    if (needle != NULL && strstr(eb.msg, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", eb.msg, needle);
}

static void test_hostile_lengths(void **state)
{
    (void)state;
    /* headers that claim 4 Gi elements or bytes, in the envelope and in a field */
    static const uint8_t envelopes[][6] = {
        {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}, /* array32 envelope */
        {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01}, /* map32 instead of an envelope */
        {0xdb, 0xff, 0xff, 0xff, 0xff, 0x01}, /* str32 */
        {0xc6, 0xff, 0xff, 0xff, 0xff, 0x01}, /* bin32 */
    };
    for (size_t k = 0; k < sizeof envelopes / sizeof *envelopes; k++)
        expect_refused(envelopes[k], 6, S3S_EPROTO, NULL);
    static const uint8_t bodies[][8] = {
        {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01}, /* body map32 */
        {0x81, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x00}, /* items array32 */
        {0x81, 0x01, 0xdc, 0xff, 0xff, 0x00}, /* items array16 */
        {0x81, 0x01, 0x91, 0xdd, 0x7f, 0xff, 0xff, 0xff}, /* item array32 */
        {0x81, 0x09, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x00}, /* unknown field str32 */
        {0x81, 0x09, 0xc6, 0x80, 0x00, 0x00, 0x00, 0x00}, /* unknown field bin32 */
        {0x81, 0x09, 0xde, 0xff, 0xff, 0x00}, /* unknown field map16 */
        {0x81, 0x09, 0xc7, 0x01, 0x01, 0x00}, /* ext8: refused */
    };
    static const size_t body_len[] = {7, 8, 6, 8, 8, 8, 6, 6};
    for (size_t k = 0; k < sizeof bodies / sizeof *bodies; k++) {
        s3s__buf b;
        raw_msg(&b, S3S_MSG_PROGRESS, bodies[k], body_len[k]);
        expect_refused(b.data, b.len, S3S_EPROTO, k == 7 ? "unsupported msgpack byte" : "left");
        s3s__buf_fini(&b);
    }
    /* the status reply's generic map too */
    static const uint8_t st[] = {0x81, 0x01, 0x81, 0xa1, 'k', 0xdd, 0x00, 0xff, 0xff, 0xff};
    s3s__buf b;
    raw_msg(&b, S3S_MSG_STATUS_REPLY, st, sizeof st);
    b.data[3] = 0x00; /* replies come from sender 0 */
    expect_refused(b.data, b.len, S3S_EPROTO, "left");
    s3s__buf_fini(&b);
}

/* Counts that fit in the bytes but pass a documented cap. */
static void test_counts_past_caps(void **state)
{
    (void)state;
    s3s__buf body;
    s3s__buf_init(&body, 1u << 20);
    s3s__mpw w;
    s3s__mpw_init(&w, &body);
    s3s__mpw_map(&w, 1);
    s3s__mpw_uint(&w, 1);
    s3s__mpw_array(&w, S3S_PROTO_ITEMS_MAX + 1);
    for (int k = 0; k < S3S_PROTO_ITEMS_MAX + 1; k++) {
        s3s__mpw_array(&w, 4);
        s3s__mpw_uint(&w, 1);
        s3s__mpw_uint(&w, 1);
        s3s__mpw_uint(&w, 1);
        s3s__mpw_bool(&w, false);
    }
    assert_int_equal(w.err, 0);
    s3s__buf b;
    raw_msg(&b, S3S_MSG_PROGRESS, body.data, body.len);
    expect_refused(b.data, b.len, S3S_EPROTO, "at most 4096");
    s3s__buf_fini(&b);
    s3s__buf_fini(&body);

    /* and the encoder refuses to build one */
    s3s__msg m;
    s3s__msg_init(&m, S3S_MSG_HEARTBEAT, 1, 1);
    m.u.heartbeat.n = S3S_PROTO_ITEMS_MAX + 1;
    m.u.heartbeat.tokens = TOKENS; /* never read: the count is checked first */
    s3s__buf_init(&b, 1 << 20);
    s3s__errbuf eb;
    assert_int_equal(s3s__msg_encode(&b, &m, NULL, &eb), S3S_EINVAL);
    assert_int_equal(b.len, 0);
    s3s__buf_fini(&b);

    /* a too-deep value in an unknown field */
    uint8_t deep[2 + 40 + 1];
    deep[0] = 0x81;
    deep[1] = 0x09;
    memset(deep + 2, 0x91, 40);
    deep[42] = 0xc0;
    raw_msg(&b, S3S_MSG_PROGRESS, deep, sizeof deep);
    expect_refused(b.data, b.len, S3S_EPROTO, "deeply");
    s3s__buf_fini(&b);
}

static void test_max_size(void **state)
{
    (void)state;
    s3s__msg m, d;
    s3s__buf b;
    s3s__errbuf eb;
    sample(&m, S3S_MSG_HELLO);
    s3s__proto_cfg cfg = cfg_plain();
    encode(&b, &m, &cfg);
    cfg.max_msg = b.len - 1;
    assert_int_equal(decode(&d, b.data, b.len, &cfg, &eb), S3S_ETOOBIG);
    assert_non_null(strstr(eb.msg, "limit"));
    s3s__buf b2;
    s3s__buf_init(&b2, 1 << 20);
    assert_int_equal(s3s__msg_encode(&b2, &m, &cfg, &eb), S3S_ETOOBIG);
    assert_int_equal(b2.len, 0);
    cfg.max_msg = b.len;
    assert_int_equal(decode(&d, b.data, b.len, &cfg, &eb), 0);
    s3s__msg_fini(&d);
    s3s__buf_fini(&b);
    s3s__buf_fini(&b2);
}

static void test_wrong_types_and_ranges(void **state)
{
    (void)state;
    struct {
        uint32_t type;
        uint8_t body[24];
        size_t n;
        const char *needle;
    } cases[] = {
        /* lease: channel as int, epoch as string, max_shards 0, bad channel name */
        {S3S_MSG_LEASE, {0x83, 0x01, 0x05, 0x02, 0x01, 0x03, 0x01}, 7, "expected string"},
        {S3S_MSG_LEASE,
         {0x83, 0x01, 0xa1, 't', 0x02, 0xa1, '1', 0x03, 0x01},
         9,
         "expected unsigned"},
        {S3S_MSG_LEASE, {0x83, 0x01, 0xa1, 't', 0x02, 0x01, 0x03, 0x00}, 8, "out of range"},
        {S3S_MSG_LEASE, {0x83, 0x01, 0xa2, '.', '/', 0x02, 0x01, 0x03, 0x01}, 9, "channel name"},
        {S3S_MSG_LEASE, {0x83, 0x01, 0xa1, 't', 0x02, 0xff, 0x03, 0x01}, 8, "expected unsigned"},
        /* missing required field, duplicate field, non-integer key */
        {S3S_MSG_LEASE, {0x82, 0x01, 0xa1, 't', 0x02, 0x01}, 6, "required field 3"},
        {S3S_MSG_LEASE, {0x84, 0x01, 0xa1, 't', 0x02, 0x01, 0x03, 0x01, 0x02, 0x01}, 10, "twice"},
        {S3S_MSG_LEASE, {0x81, 0xa1, 'k', 0x01}, 4, "body key"},
        /* progress: token 0, item of 3 elements, done as int, empty list */
        {S3S_MSG_PROGRESS, {0x81, 0x01, 0x91, 0x94, 0x01, 0x00, 0x01, 0xc2}, 8, "token"},
        {S3S_MSG_PROGRESS, {0x81, 0x01, 0x91, 0x93, 0xcd, 0x00, 0x01, 0x01, 0x01}, 9, "expected 4"},
        {S3S_MSG_PROGRESS, {0x81, 0x01, 0x91, 0x94, 0x01, 0x01, 0x01, 0x01}, 8, "boolean"},
        {S3S_MSG_PROGRESS, {0x81, 0x01, 0x90}, 3, "at least one"},
        /* body is not a map; float where an int belongs */
        {S3S_MSG_STATUS, {0x91, 0x01}, 2, "expected map"},
        {S3S_MSG_STATUS, {0x81, 0x01, 0xca, 0, 0, 0, 0}, 7, "expected unsigned"},
        /* a string with a NUL inside */
        {S3S_MSG_BYE, {0x81, 0x01, 0xa3, 'a', 0x00, 'b'}, 6, "NUL"},
        /* commands on a request are not read as commands: unknown key 100 is skipped,
           but a reply with cmd out of range is refused */
        {S3S_MSG_BYE_ACK, {0x81, 0x64, 0x09}, 3, "out of range"},
        {S3S_MSG_BYE_ACK, {0x81, 0x64, 0x01}, 3, "needs a channel"},
        /* grant OK with no grants; end before start */
        {S3S_MSG_GRANT,
         {0x84, 0x01, 0xa1, 't', 0x02, 0x01, 0x03, 0x00, 0x05, 0x90},
         10,
         "status 0"},
        {S3S_MSG_GRANT,
         {0x84, 0x01, 0xa1, 't', 0x02, 0x01, 0x03, 0x00, 0x05, 0x91, 0x95, 0x01, 0x05, 0x04, 0x01,
          0x01},
         16,
         "grants[].end"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        s3s__buf b;
        raw_msg(&b, cases[k].type, cases[k].body, cases[k].n);
        if (!s3s__msg_is_request(cases[k].type))
            b.data[3] = 0x00;
        expect_refused(b.data, b.len, S3S_EPROTO, cases[k].needle);
        s3s__buf_fini(&b);
    }
    /* unknown message type, trailing bytes, a bare integer */
    static const uint8_t unk[] = {0x95, 0x01, 0x63, 0x01, 0x01, 0x80};
    expect_refused(unk, sizeof unk, S3S_EPROTO, "unknown message type");
    static const uint8_t trail[] = {0x95, 0x01, 0x0b, 0x01, 0x01, 0x80, 0x00};
    expect_refused(trail, sizeof trail, S3S_EPROTO, "trailing");
    static const uint8_t bare[] = {0x01};
    expect_refused(bare, sizeof bare, S3S_EPROTO, "expected array");
    static const uint8_t four[] = {0x94, 0x01, 0x0b, 0x01, 0x01};
    expect_refused(four, sizeof four, S3S_EPROTO, "expected 5 or 6");
}

static void test_unknown_fields_ignored(void **state)
{
    (void)state;
    /* a lease with extra fields 4 (nested) and 200 (a string), in any order */
    static const uint8_t body[] = {0x85, 0x04, 0x92, 0x80, 0x91, 0xc0, 0x03, 0x02, 0x01,
                                   0xa1, 't',  0xcc, 0xc8, 0xa2, 'h',  'i',  0x02, 0x09};
    s3s__buf b;
    raw_msg(&b, S3S_MSG_LEASE, body, sizeof body);
    s3s__msg d;
    s3s__errbuf eb;
    assert_int_equal(decode(&d, b.data, b.len, NULL, &eb), 0);
    assert_string_equal(d.u.lease.channel, "t");
    assert_int_equal(d.u.lease.epoch, 9);
    assert_int_equal(d.u.lease.max_shards, 2);
    assert_int_equal(d.sender, 7);
    s3s__msg_fini(&d);
    s3s__buf_fini(&b);
}

static void test_version_mismatch(void **state)
{
    (void)state;
    /* a future version with a different envelope still gets a clear answer */
    static const uint8_t v2[] = {0x93, 0x02, 0xa1, 'x', 0xc0};
    s3s__msg d;
    s3s__errbuf eb;
    assert_int_equal(decode(&d, v2, sizeof v2, NULL, &eb), S3S_EPROTO);
    assert_string_equal(eb.msg, "protocol version 2, expected 1");
    assert_int_equal(d.version, 2);
    /* an encoded message of another version */
    s3s__msg m;
    s3s__buf b;
    sample(&m, S3S_MSG_HELLO);
    m.version = 7;
    s3s__proto_cfg cfg = cfg_secret();
    encode(&b, &m, &cfg);
    assert_int_equal(decode(&d, b.data, b.len, &cfg, &eb), S3S_EPROTO);
    assert_string_equal(eb.msg, "protocol version 7, expected 1");
    s3s__buf_fini(&b);
    /* version 0 and a huge one */
    static const uint8_t v0[] = {0x95, 0x00, 0x01, 0x01, 0x01, 0x80};
    assert_int_equal(decode(&d, v0, sizeof v0, NULL, &eb), S3S_EPROTO);
    assert_string_equal(eb.msg, "protocol version 0, expected 1");
    static const uint8_t vbig[] = {0x91, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(decode(&d, vbig, sizeof vbig, NULL, &eb), S3S_EPROTO);
    assert_non_null(strstr(eb.msg, "18446744073709551615, expected 1"));
}

static void test_hmac(void **state)
{
    (void)state;
    s3s__msg m, d;
    s3s__buf b;
    s3s__errbuf eb;
    s3s__proto_cfg with = cfg_secret(), without = cfg_plain();
    sample(&m, S3S_MSG_PROGRESS);

    /* missing HMAC when required */
    encode(&b, &m, &without);
    assert_int_equal(decode(&d, b.data, b.len, &with, &eb), S3S_EAUTH);
    assert_non_null(strstr(eb.msg, "no HMAC"));
    assert_true(d.sender == m.sender); /* known, so the refusal can be counted per sender */
    s3s__buf_fini(&b);

    /* HMAC present but no secret configured */
    encode(&b, &m, &with);
    assert_int_equal(decode(&d, b.data, b.len, &without, &eb), S3S_EAUTH);
    assert_non_null(strstr(eb.msg, "no shared secret"));

    /* another secret */
    s3s__proto_cfg other = {.secret = (const uint8_t *)"other", .secret_len = 5};
    assert_int_equal(decode(&d, b.data, b.len, &other, &eb), S3S_EAUTH);
    assert_non_null(strstr(eb.msg, "does not match"));
    assert_null(strstr(eb.msg, (const char *)SECRET)); /* never in a message */

    /* a flipped bit in the HMAC itself, and in the signed part */
    b.data[b.len - 1] ^= 1;
    assert_int_equal(decode(&d, b.data, b.len, &with, &eb), S3S_EAUTH);
    b.data[b.len - 1] ^= 1;
    size_t seq_at = 1 + 1 + 1 + 9; /* header, version, type, sender (uint64) */
    b.data[seq_at] ^= 0x02; /* seq 77 -> 79: a replay with a new seq */
    assert_int_equal(decode(&d, b.data, b.len, &with, &eb), S3S_EAUTH);
    b.data[seq_at] ^= 0x02;
    assert_int_equal(decode(&d, b.data, b.len, &with, &eb), 0);
    s3s__msg_fini(&d);

    /* an HMAC of the wrong size or type */
    b.data[b.len - 33] = 0x1f; /* bin8 length 32 -> 31 */
    assert_int_equal(decode(&d, b.data, b.len, &with, &eb), S3S_EPROTO);
    s3s__buf_fini(&b);
}

/* Decoding allocates at most the documented factor: a status reply made of the
 * cheapest values per byte is still accepted (under the bound), and the arena
 * never passes factor * size + 4 KiB. */
static void test_allocation_bound(void **state)
{
    (void)state;
    s3s__buf body;
    s3s__buf_init(&body, 1u << 22);
    s3s__mpw w;
    s3s__mpw_init(&w, &body);
    int n = 100000;
    s3s__mpw_map(&w, 1);
    s3s__mpw_uint(&w, 1);
    s3s__mpw_map(&w, 2);
    s3s__mpw_cstr(&w, "nils");
    s3s__mpw_array(&w, (uint32_t)n);
    for (int k = 0; k < n; k++)
        s3s__mpw_nil(&w);
    s3s__mpw_cstr(&w, "pairs");
    s3s__mpw_map(&w, (uint32_t)n);
    for (int k = 0; k < n; k++) {
        s3s__mpw_str(&w, "k", 1);
        s3s__mpw_str(&w, "", 0);
    }
    assert_int_equal(w.err, 0);
    s3s__buf b;
    raw_msg(&b, S3S_MSG_STATUS_REPLY, body.data, body.len);
    b.data[3] = 0x00;
    s3s__msg d;
    s3s__errbuf eb;
    int rc = decode(&d, b.data, b.len, NULL, &eb);
    if (rc != 0)
        fail_msg("%s", eb.msg);
    const s3s__pval *nils = s3s__pval_get(d.u.status_reply.root, "nils");
    assert_non_null(nils);
    assert_int_equal(nils->n, n);
    assert_null(s3s__pval_get(d.u.status_reply.root, "absent"));
    s3s__msg_fini(&d);
    s3s__buf_fini(&b);
    s3s__buf_fini(&body);
}

static void test_encode_refuses_bad_fields(void **state)
{
    (void)state;
    s3s__msg m;
    s3s__buf b;
    s3s__errbuf eb;
    s3s__buf_init(&b, 1 << 20);
    sample(&m, S3S_MSG_LEASE);
    strcpy(m.u.lease.channel, "../etc");
    assert_int_equal(s3s__msg_encode(&b, &m, NULL, &eb), S3S_EINVAL);
    assert_non_null(strstr(eb.msg, "lease.channel"));
    sample(&m, S3S_MSG_LEASE);
    m.cmd = S3S_CMD_STOP; /* commands ride on replies only */
    assert_int_equal(s3s__msg_encode(&b, &m, NULL, &eb), S3S_EINVAL);
    sample(&m, S3S_MSG_STATUS_REPLY);
    m.u.status_reply.root = NULL;
    assert_int_equal(s3s__msg_encode(&b, &m, NULL, &eb), S3S_EINVAL);
    assert_int_equal(b.len, 0);
    /* output buffer too small */
    s3s__buf small;
    s3s__buf_init(&small, 10);
    sample(&m, S3S_MSG_HELLO);
    assert_int_equal(s3s__msg_encode(&small, &m, NULL, &eb), S3S_ETOOBIG);
    assert_int_equal(small.len, 0);
    s3s__buf_fini(&small);
    s3s__buf_fini(&b);
    assert_string_equal(s3s__msg_type_name(99), "unknown");
    assert_string_equal(s3s__msg_type_name(S3S_MSG_GRANT), "grant");
}

static int write_status(void *arg, s3s__mpw *w)
{
    int *calls = arg;
    (*calls)++;
    s3s__mpw_map(w, 1);
    s3s__mpw_cstr(w, "epoch");
    s3s__mpw_uint(w, 9);
    return 0;
}

static void test_status_writer(void **state)
{
    (void)state;
    int calls = 0;
    s3s__msg m, d;
    s3s__buf b;
    s3s__errbuf eb;
    s3s__msg_init(&m, S3S_MSG_STATUS_REPLY, 0, 1);
    m.u.status_reply.write = write_status;
    m.u.status_reply.write_arg = &calls;
    s3s__proto_cfg cfg = cfg_secret();
    encode(&b, &m, &cfg);
    assert_int_equal(calls, 1);
    assert_int_equal(decode(&d, b.data, b.len, &cfg, &eb), 0);
    const s3s__pval *e = s3s__pval_get(d.u.status_reply.root, "epoch");
    assert_non_null(e);
    assert_int_equal(e->type, S3S_PV_UINT);
    assert_int_equal(e->v.u, 9);
    s3s__msg_fini(&d);
    s3s__buf_fini(&b);
}

/* The precomputed key gives the same HMAC as the one-shot secret, for short
 * and long (> 64-byte, hashed first) secrets, in both directions. */
static void test_hmac_key_matches_secret(void **state)
{
    (void)state;
    uint8_t longsecret[100];
    for (int k = 0; k < 100; k++)
        longsecret[k] = (uint8_t)(k * 7);
    const uint8_t *secrets[] = {SECRET, longsecret, (const uint8_t *)""};
    size_t lens[] = {sizeof SECRET - 1, sizeof longsecret, 0};
    for (int k = 0; k < 3; k++) {
        s3s__proto_key *key;
        assert_int_equal(s3s__proto_key_create(&key, secrets[k], lens[k]), 0);
        s3s__proto_cfg by_secret = {.secret = secrets[k], .secret_len = lens[k]};
        s3s__proto_cfg by_key = {.key = key};
        for (uint32_t t = 1; t < S3S_MSG_TYPE_MAX_; t++) {
            s3s__msg m, d;
            s3s__buf a, b;
            s3s__errbuf eb;
            sample(&m, t);
            encode(&a, &m, &by_secret);
            encode(&b, &m, &by_key);
            assert_int_equal(a.len, b.len);
            assert_memory_equal(a.data, b.data, a.len);
            assert_int_equal(decode(&d, a.data, a.len, &by_key, &eb), 0);
            s3s__msg_fini(&d);
            assert_int_equal(decode(&d, b.data, b.len, &by_secret, &eb), 0);
            s3s__msg_fini(&d);
            if (k == 0) { /* another secret's key is refused */
                s3s__proto_key *other;
                assert_int_equal(s3s__proto_key_create(&other, longsecret, 10), 0);
                s3s__proto_cfg by_other = {.key = other};
                assert_int_equal(decode(&d, a.data, a.len, &by_other, &eb), S3S_EAUTH);
                s3s__proto_key_destroy(other);
            }
            s3s__buf_fini(&a);
            s3s__buf_fini(&b);
        }
        s3s__proto_key_destroy(key);
    }
    s3s__proto_key_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_type),
        cmocka_unit_test(test_roundtrip_minimal_and_empty),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_every_byte_mutated),
        cmocka_unit_test(test_hostile_lengths),
        cmocka_unit_test(test_counts_past_caps),
        cmocka_unit_test(test_max_size),
        cmocka_unit_test(test_wrong_types_and_ranges),
        cmocka_unit_test(test_unknown_fields_ignored),
        cmocka_unit_test(test_version_mismatch),
        cmocka_unit_test(test_hmac),
        cmocka_unit_test(test_hmac_key_matches_secret),
        cmocka_unit_test(test_allocation_bound),
        cmocka_unit_test(test_encode_refuses_bad_fields),
        cmocka_unit_test(test_status_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
