/* sched_test.c: the scheduler's transitions, one behaviour per test. The
 * seeded whole-job simulation lives in sched_sim_test.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator/sched.h"
#include "s3shard/error.h"

#include "tests/coordinator/sched_fixture.h"

static void test_create_rejects_bad_options(void **state)
{
    (void)state;
    s3s__sched *s = NULL;
    s3s__sched_opts o;
    s3s__errbuf eb;
    s3s__sched_opts_init(&o);
    o.world_size = 0;
    assert_int_equal(s3s__sched_create(&s, &o, NULL, NULL, &eb), S3S_EINVAL);
    assert_null(s);
    s3s__sched_opts_init(&o);
    o.max_inflight = 1000;
    assert_int_equal(s3s__sched_create(&s, &o, NULL, NULL, &eb), S3S_EINVAL);
    s3s__sched_destroy(NULL);
}

static void test_dynamic_grants_in_order_and_completes(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 3, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 1);
    s3s__sched_grant b = grant1(&f, 2, 1);
    s3s__sched_grant c = grant1(&f, 1, 1);
    assert_int_equal(a.pos, 0);
    assert_int_equal(b.pos, 1);
    assert_int_equal(c.pos, 2);
    assert_true(a.token < b.token && b.token < c.token);
    assert_int_equal(a.shard_id, 100);
    assert_int_equal(a.start, 0);
    assert_int_equal(a.end, 100);
    assert_int_equal(a.expiry_ms, 1001);
    /* max_inflight (2) reached for worker 1: no more grants, WAIT. */
    s3s__sched_grant g[2];
    s3s__sched_reply r;
    assert_int_equal(s3s__sched_request(f.s, 1, 2, 2, g, 2, &r), 0);
    assert_int_equal(r.ngrants, 0);
    assert_true(r.flags & S3S__REPLY_WAIT);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 50, 0, 3), 0);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 50, 0, 3), 0); /* repeat: no event */
    assert_int_equal(s3s__sched_done(f.s, 1, a.token, 100, 0, 4), 0);
    assert_int_equal(s3s__sched_done(f.s, 2, b.token, 100, 0, 4), 0);
    assert_int_equal(count_type(&f.j, S3S__EV_EPOCH_DONE), 0);
    assert_int_equal(s3s__sched_done(f.s, 1, c.token, 100, 0, 5), 0);
    assert_int_equal(count_type(&f.j, S3S__EV_EPOCH_DONE), 1);
    assert_int_equal(count_type(&f.j, S3S__EV_COMMIT), 1);
    s3s__sched_stats st;
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.shards_done, 3);
    assert_int_equal(st.bytes_committed, 300);
    assert_int_equal(st.epoch_running, 0);
    assert_int_equal(s3s__sched_ledger_verify(f.s, 1, NULL), 0);
    /* Worker 2 learns the end of the epoch, then the new one. */
    assert_int_equal(s3s__sched_request(f.s, 2, 1, 6, g, 1, &r), 0);
    assert_true(r.flags & S3S__REPLY_EPOCH_DONE);
    assert_true(r.flags & S3S__REPLY_WAIT);
    assert_int_equal(s3s__sched_epoch_begin(f.s, 0, &f.order, NULL), S3S_EINVAL);
    fx_begin(&f, 1);
    assert_int_equal(s3s__sched_epoch_begin(f.s, 2, &f.order, NULL), S3S_EBUSY);
    assert_int_equal(s3s__sched_request(f.s, 2, 1, 7, g, 1, &r), 0);
    assert_true(r.flags & S3S__REPLY_NEW_EPOCH);
    assert_int_equal(r.epoch, 1);
    assert_int_equal(r.ngrants, 1);
    assert_int_equal(g[0].pos, 0);
    /* The ledger was reset for the new epoch. */
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.bytes_committed, 0);
    s3s__sched_finish(f.s);
    assert_int_equal(s3s__sched_heartbeat(f.s, 2, 8, &r), 0);
    assert_true(r.flags & S3S__REPLY_STOP);
    s3s__sched_destroy(f.s);
}

static void test_stale_and_invalid_progress_refused(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 4, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 0);
    /* Unknown token, another worker's token, unknown worker. */
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token + 99, 10, 0, 1), S3S_ESTALE);
    assert_int_equal(s3s__sched_progress(f.s, 2, a.token, 10, 0, 1), S3S_ESTALE);
    assert_int_equal(s3s__sched_progress(f.s, 77, a.token, 10, 0, 1), S3S_ESTALE);
    assert_int_equal(s3s__sched_request(f.s, 77, 1, 1, NULL, 0, NULL), S3S_ENOTFOUND);
    /* Backwards, past the end, done short of the end. */
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 40, 0, 1), 0);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 30, 0, 1), S3S_EINVAL);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 101, 0, 1), S3S_EINVAL);
    assert_int_equal(s3s__sched_done(f.s, 1, a.token, 60, 0, 1), S3S_EINVAL);
    /* Expired: silent past the TTL while worker 2 keeps talking. */
    assert_int_equal(s3s__sched_heartbeat(f.s, 2, 1001, NULL), 0);
    assert_int_equal(s3s__sched_heartbeat(f.s, 2, 1002, NULL), 0);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 50, 0, 1003), S3S_ESTALE);
    /* Superseded: a new incarnation of worker 2 replaces the old one. */
    s3s__sched_grant b = grant1(&f, 2, 1004);
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 2, 1005), 0);
    assert_int_equal(s3s__sched_progress(f.s, 2, b.token, 10, 0, 1006), S3S_ESTALE);
    assert_int_equal(s3s__sched_done(f.s, 2, b.token, 100, 0, 1006), S3S_ESTALE);
    /* An older incarnation cannot come back. */
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 1007), S3S_ESTALE);
    assert_int_equal(s3s__sched_hello(f.s, 9, 5, 1, 1007), S3S_EINVAL);
    s3s__sched_stats st;
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.stale_refusals, 6);
    assert_int_equal(st.reissued_tails, 2);
    s3s__sched_destroy(f.s);
}

static void test_expiry_returns_exactly_the_tail_at_the_front(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 4, 1000, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 0);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 400, 0, 10), 0);
    /* Not yet due at 1009 (renewed at 10); due at 1010. */
    s3s__sched_tick(f.s, 1009);
    assert_int_equal(count_type(&f.j, S3S__EV_EXPIRE), 0);
    s3s__sched_tick(f.s, 1010);
    assert_int_equal(count_type(&f.j, S3S__EV_EXPIRE), 1);
    assert_int_equal(f.j.ev[f.j.n - 1].reason, S3S__WHY_TTL);
    s3s__sched_grant t = grant1(&f, 2, 1011);
    assert_int_equal(t.pos, a.pos);
    assert_int_equal(t.start, 400);
    assert_int_equal(t.end, 1000);
    assert_true(t.token > a.token);
    s3s__sched_stats st;
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.reissued_tails, 1);
    assert_int_equal(st.reissued_bytes, 600);
    assert_int_equal(s3s__sched_done(f.s, 2, t.token, 1000, 0, 1012), 0);
    /* Shard 0 is covered by two rows: [0,400) by worker 1, [400,1000) by 2. */
    assert_int_equal(s3s__sched_ledger_verify(f.s, 0, NULL), 0);
    s3s__sched_destroy(f.s);
}

static void test_drain_and_bye(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 4, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 0);
    s3s__sched_grant b = grant1(&f, 1, 0);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 70, 0, 1), 0);
    assert_int_equal(s3s__sched_drain(f.s, 1, 2), 0);
    assert_int_equal(s3s__sched_request(f.s, 1, 1, 3, NULL, 0, NULL), S3S_ENOTFOUND);
    assert_int_equal(s3s__sched_progress(f.s, 1, b.token, 10, 0, 3), S3S_ESTALE);
    s3s__sched_stats st;
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.drains, 1);
    assert_int_equal(st.reissued_tails, 2);
    assert_int_equal(st.reissued_bytes, 30 + 100);
    /* The drained worker says hello again and gets the oldest work first. */
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 4), 0);
    s3s__sched_grant t = grant1(&f, 1, 5);
    assert_int_equal(t.pos, b.pos);
    assert_int_equal(s3s__sched_ask_drain(f.s, 1), 0);
    s3s__sched_reply r;
    assert_int_equal(s3s__sched_heartbeat(f.s, 1, 6, &r), 0);
    assert_true(r.flags & S3S__REPLY_DRAIN);
    assert_int_equal(s3s__sched_bye(f.s, 1, 7), 0);
    assert_int_equal(s3s__sched_bye(f.s, 1, 7), S3S_ENOTFOUND);
    s3s__sched_destroy(f.s);
}

static uint32_t owner_mod(void *ctx, size_t pos, uint64_t id)
{
    (void)ctx;
    (void)pos;
    return (uint32_t)(id % 3);
}

static void test_sharded_grants_only_own_shards(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_SHARDED_BY_S3KEY, 3, 9, 10, 0);
    assert_int_equal(s3s__sched_epoch_begin(f.s, 0, &f.order, NULL), S3S_EINVAL);
    f.order.owner_fn = owner_mod;
    fx_begin(&f, 0);
    for (uint32_t r = 0; r < 3; r++)
        assert_int_equal(s3s__sched_hello(f.s, 10 + r, r, 1, 0), 0);
    for (uint32_t r = 0; r < 3; r++) {
        for (int k = 0; k < 3; k++) {
            s3s__sched_grant g = grant1(&f, 10 + r, 1);
            assert_int_equal(g.shard_id % 3, r);
            assert_int_equal(s3s__sched_done(f.s, 10 + r, g.token, 10, 0, 2), 0);
        }
        s3s__sched_grant g[1];
        s3s__sched_reply rep;
        assert_int_equal(s3s__sched_request(f.s, 10 + r, 1, 3, g, 1, &rep), 0);
        assert_true(r == 2 || rep.ngrants == 0);
    }
    assert_int_equal(count_type(&f.j, S3S__EV_EPOCH_DONE), 1);
    assert_int_equal(s3s__sched_ledger_verify(f.s, 1, NULL), 0);
    /* A bad owner is refused. */
    uint32_t own[9] = {0, 1, 2, 0, 1, 2, 0, 1, 7};
    f.order.owner = own;
    s3s__errbuf eb;
    assert_int_equal(s3s__sched_epoch_begin(f.s, 1, &f.order, &eb), S3S_EINVAL);
    s3s__sched_destroy(f.s);
}

static void test_replicated_each_rank_reads_everything(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_FULLY_REPLICATED, 2, 5, 10, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
    for (uint32_t k = 0; k < 5; k++) {
        s3s__sched_grant g = grant1(&f, 1, 1);
        assert_int_equal(g.pos, k);
        assert_int_equal(s3s__sched_done(f.s, 1, g.token, 10, 0, 2), 0);
    }
    s3s__sched_stats st;
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.shards_total, 10);
    assert_int_equal(st.shards_done, 5);
    assert_int_equal(st.epoch_running, 1);
    for (uint32_t k = 0; k < 5; k++) {
        s3s__sched_grant g = grant1(&f, 2, 1);
        assert_int_equal(g.pos, k);
        assert_int_equal(s3s__sched_done(f.s, 2, g.token, 10, 0, 2), 0);
    }
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.epoch_running, 0);
    assert_int_equal(s3s__sched_ledger_verify(f.s, 1, NULL), 0);
    s3s__sched_destroy(f.s);
}

static void test_cache_preference_within_window(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof(f));
    s3s__sched_opts o;
    s3s__sched_opts_init(&o);
    o.world_size = 2;
    o.cache_window = 4;
    o.max_inflight = 8;
    assert_int_equal(s3s__sched_create(&f.s, &o, on_event, &f.j, NULL), 0);
    for (size_t i = 0; i < 20; i++) {
        f.shards[i].id = 100 + i;
        f.shards[i].size = 10;
    }
    f.order.shards = f.shards;
    f.order.n = 20;
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
    /* Worker 1 holds shards at positions 2, 3, 10: 2 and 3 are in the window
     * [0, 4), 10 is beyond it. */
    uint64_t held[] = {102, 103, 110};
    assert_int_equal(s3s__sched_cache_set(f.s, 1, held, 3, 1), 0);
    assert_int_equal(s3s__sched_cache_set(f.s, 99, held, 3, 1), S3S_ENOTFOUND);
    assert_int_equal(grant1(&f, 1, 1).pos, 2);
    assert_int_equal(grant1(&f, 1, 1).pos, 3);
    /* Nothing cached in the window [0, 4) any more: the head, in order. */
    assert_int_equal(grant1(&f, 1, 1).pos, 0);
    assert_int_equal(grant1(&f, 2, 1).pos, 1);
    /* The cursor moved past the taken shards: 4, 5, ... */
    assert_int_equal(grant1(&f, 2, 1).pos, 4);
    s3s__sched_stats st;
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.cache_hits, 2);
    s3s__sched_destroy(f.s);
}

static void test_cache_preference_does_not_starve_the_head(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof(f));
    s3s__sched_opts o;
    s3s__sched_opts_init(&o);
    o.world_size = 1;
    o.cache_window = 8;
    o.max_inflight = 64;
    assert_int_equal(s3s__sched_create(&f.s, &o, on_event, &f.j, NULL), 0);
    for (size_t i = 0; i < 64; i++) {
        f.shards[i].id = 100 + i;
        f.shards[i].size = 10;
    }
    f.order.shards = f.shards;
    f.order.n = 64;
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    /* The worker holds everything but the head: the head must come within
     * cache_window grants. */
    uint64_t held[63];
    for (size_t i = 0; i < 63; i++)
        held[i] = 101 + i;
    assert_int_equal(s3s__sched_cache_set(f.s, 1, held, 63, 1), 0);
    int head_at = -1;
    for (int k = 0; k < 8; k++) {
        if (grant1(&f, 1, 1).pos == 0) {
            head_at = k;
            break;
        }
    }
    assert_int_equal(head_at, 7);
    s3s__sched_destroy(f.s);
}

static void test_equal_steps_drop_caps_and_splits(void **state)
{
    (void)state;
    /* 3 shards of 10 records, 2 ranks, DROP: quota = 15 each. */
    fixture f;
    memset(&f, 0, sizeof(f));
    s3s__sched_opts o;
    s3s__sched_opts_init(&o);
    o.world_size = 2;
    o.equal_steps = S3S__EQUAL_DROP;
    o.max_inflight = 4;
    assert_int_equal(s3s__sched_create(&f.s, &o, on_event, &f.j, NULL), 0);
    for (size_t i = 0; i < 3; i++) {
        f.shards[i].id = 100 + i;
        f.shards[i].size = 1000;
        f.shards[i].records = 10;
    }
    f.order.shards = f.shards;
    f.order.n = 3;
    fx_begin(&f, 0);
    assert_int_equal(f.j.ev[0].quota, 15);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
    /* Rank 0 (fast) asks for everything: it gets shard 0 whole and 5 records
     * of shard 1, then nothing. */
    s3s__sched_grant g[4];
    s3s__sched_reply r;
    assert_int_equal(s3s__sched_request(f.s, 1, 4, 1, g, 4, &r), 0);
    assert_int_equal(r.ngrants, 2);
    assert_int_equal(g[0].cap, 10);
    assert_int_equal(g[1].cap, 5);
    /* Records must match the offset's end; the cap bounds done. */
    assert_int_equal(s3s__sched_done(f.s, 1, g[1].token, 600, 6, 2), S3S_EINVAL);
    assert_int_equal(s3s__sched_progress(f.s, 1, g[1].token, 1000, 9, 2), S3S_EINVAL);
    assert_int_equal(s3s__sched_done(f.s, 1, g[0].token, 1000, 10, 2), 0);
    assert_int_equal(s3s__sched_done(f.s, 1, g[1].token, 500, 5, 2), 0);
    s3s__sched_stats st;
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.split_tails, 1);
    /* Rank 1 gets the rest of shard 1 first (the split tail), then shard 2
     * capped at 10. Rank 0 gets nothing more. */
    assert_int_equal(s3s__sched_request(f.s, 1, 1, 3, g, 1, &r), 0);
    assert_int_equal(r.ngrants, 0);
    assert_int_equal(s3s__sched_request(f.s, 2, 4, 3, g, 4, &r), 0);
    assert_int_equal(r.ngrants, 2);
    assert_int_equal(g[0].pos, 1);
    assert_int_equal(g[0].start, 500);
    assert_int_equal(g[0].rec_start, 5);
    assert_int_equal(g[0].cap, 5);
    assert_int_equal(g[1].pos, 2);
    assert_int_equal(g[1].cap, 10);
    assert_int_equal(s3s__sched_done(f.s, 2, g[0].token, 1000, 10, 4), 0);
    assert_int_equal(s3s__sched_done(f.s, 2, g[1].token, 1000, 10, 4), 0);
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.epoch_running, 0);
    assert_int_equal(st.bytes_dropped, 0);
    s3s__sched_rank_stats rs;
    for (uint32_t k = 0; k < 2; k++) {
        assert_int_equal(s3s__sched_rank_stats_get(f.s, k, &rs), 0);
        assert_int_equal(rs.samples_committed, 15);
    }
    assert_int_equal(s3s__sched_rank_stats_get(f.s, 2, &rs), S3S_EINVAL);
    assert_int_equal(s3s__sched_ledger_verify(f.s, 1, NULL), 0);
    s3s__sched_destroy(f.s);
}

static void test_equal_steps_drop_and_pad_remainders(void **state)
{
    (void)state;
    /* 5 item shards over 2 ranks: DROP -> 2 each, 1 dropped; PAD -> 3 each,
     * 1 repeated. */
    for (int mode = S3S__EQUAL_DROP; mode <= S3S__EQUAL_PAD; mode++) {
        fixture f;
        memset(&f, 0, sizeof(f));
        s3s__sched_opts o;
        s3s__sched_opts_init(&o);
        o.world_size = 2;
        o.equal_steps = (s3s__equal)mode;
        o.max_inflight = 1;
        assert_int_equal(s3s__sched_create(&f.s, &o, on_event, &f.j, NULL), 0);
        for (size_t i = 0; i < 5; i++) {
            f.shards[i].id = 100 + i;
            f.shards[i].size = 10;
        }
        f.order.shards = f.shards;
        f.order.n = 5;
        fx_begin(&f, 0);
        assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
        assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
        int pads = 0;
        for (int step = 0; step < 20; step++) {
            /* Rank 0 asks first each round: it is the fast one. */
            for (uint64_t w = 1; w <= 2; w++) {
                s3s__sched_grant g[1];
                s3s__sched_reply r;
                assert_int_equal(s3s__sched_request(f.s, w, 1, 1, g, 1, &r), 0);
                if (r.ngrants == 1) {
                    pads += g[0].pad != 0;
                    assert_int_equal(s3s__sched_done(f.s, w, g[0].token, 10, 0, 2), 0);
                }
            }
        }
        s3s__sched_stats st;
        s3s__sched_stats_get(f.s, &st);
        assert_int_equal(st.epoch_running, 0);
        assert_int_equal(st.quota, mode == S3S__EQUAL_DROP ? 2 : 3);
        assert_int_equal(pads, mode == S3S__EQUAL_DROP ? 0 : 1);
        assert_int_equal(st.bytes_dropped, mode == S3S__EQUAL_DROP ? 10 : 0);
        assert_int_equal(st.pad_samples, mode == S3S__EQUAL_DROP ? 0 : 1);
        for (uint32_t k = 0; k < 2; k++) {
            s3s__sched_rank_stats rs;
            assert_int_equal(s3s__sched_rank_stats_get(f.s, k, &rs), 0);
            assert_int_equal(rs.samples_committed, st.quota);
        }
        assert_int_equal(s3s__sched_ledger_verify(f.s, 1, NULL), 0);
        s3s__sched_destroy(f.s);
    }
}

static void test_rank_claimed_by_another_process(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 4, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 5, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 0);
    /* A process with another id and a lower incarnation, while rank 0's
     * holder still talks: a zombie, refused. */
    assert_int_equal(s3s__sched_hello(f.s, 2, 0, 1, 500), S3S_ESTALE);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 10, 0, 600), 0);
    /* Once the holder has been silent for the TTL, a replacement node whose
     * counter started again takes the rank over. */
    assert_int_equal(s3s__sched_hello(f.s, 2, 0, 1, 1600), 0);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 20, 0, 1601), S3S_ESTALE);
    s3s__sched_grant t = grant1(&f, 2, 1602);
    assert_int_equal(t.pos, a.pos);
    assert_int_equal(t.start, 10);
    /* A higher incarnation takes a rank over at once. */
    assert_int_equal(s3s__sched_hello(f.s, 3, 0, 2, 1603), 0);
    assert_int_equal(s3s__sched_request(f.s, 2, 1, 1604, NULL, 0, NULL), S3S_ENOTFOUND);
    s3s__sched_destroy(f.s);
}

static void test_heartbeat_renews_leases(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 1, 2, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 0);
    s3s__sched_reply r;
    assert_int_equal(s3s__sched_heartbeat(f.s, 1, 900, &r), 0);
    assert_int_equal(s3s__sched_heartbeat(f.s, 77, 900, &r), S3S_ENOTFOUND);
    s3s__sched_tick(f.s, 1899);
    assert_int_equal(count_type(&f.j, S3S__EV_EXPIRE), 0);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 10, 0, 1899), 0);
    s3s__sched_tick(f.s, 2899);
    assert_int_equal(count_type(&f.j, S3S__EV_EXPIRE), 1);
    s3s__sched_destroy(f.s);
}

static void test_equal_steps_sharded_quota_is_min_or_max_share(void **state)
{
    (void)state;
    /* Rank 0 owns 3 item shards, rank 1 owns 1. */
    uint32_t own[4] = {0, 0, 1, 0};
    for (int mode = S3S__EQUAL_DROP; mode <= S3S__EQUAL_PAD; mode++) {
        fixture f;
        memset(&f, 0, sizeof(f));
        s3s__sched_opts o;
        s3s__sched_opts_init(&o);
        o.dist = S3S__DIST_SHARDED_BY_S3KEY;
        o.world_size = 2;
        o.equal_steps = (s3s__equal)mode;
        assert_int_equal(s3s__sched_create(&f.s, &o, on_event, &f.j, NULL), 0);
        for (size_t i = 0; i < 4; i++) {
            f.shards[i].id = 100 + i;
            f.shards[i].size = 10;
        }
        f.order.shards = f.shards;
        f.order.n = 4;
        f.order.owner = own;
        fx_begin(&f, 0);
        s3s__sched_stats st;
        s3s__sched_stats_get(f.s, &st);
        assert_int_equal(st.quota, mode == S3S__EQUAL_DROP ? 1 : 3);
        assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
        assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
        for (int step = 0; step < 8; step++) {
            for (uint64_t w = 1; w <= 2; w++) {
                s3s__sched_grant g[1];
                s3s__sched_reply r;
                assert_int_equal(s3s__sched_request(f.s, w, 1, 1, g, 1, &r), 0);
                if (r.ngrants == 1) {
                    /* Rank 1 pads by repeating its own shard. */
                    if (w == 2)
                        assert_int_equal(g[0].pos, 2);
                    assert_int_equal(s3s__sched_done(f.s, w, g[0].token, 10, 0, 2), 0);
                }
            }
        }
        s3s__sched_stats_get(f.s, &st);
        assert_int_equal(st.epoch_running, 0);
        assert_int_equal(st.bytes_dropped, mode == S3S__EQUAL_DROP ? 20 : 0);
        assert_int_equal(st.pad_samples, mode == S3S__EQUAL_DROP ? 0 : 2);
        assert_int_equal(s3s__sched_ledger_verify(f.s, 1, NULL), 0);
        s3s__sched_destroy(f.s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_rejects_bad_options),
        cmocka_unit_test(test_dynamic_grants_in_order_and_completes),
        cmocka_unit_test(test_stale_and_invalid_progress_refused),
        cmocka_unit_test(test_expiry_returns_exactly_the_tail_at_the_front),
        cmocka_unit_test(test_drain_and_bye),
        cmocka_unit_test(test_sharded_grants_only_own_shards),
        cmocka_unit_test(test_replicated_each_rank_reads_everything),
        cmocka_unit_test(test_cache_preference_within_window),
        cmocka_unit_test(test_cache_preference_does_not_starve_the_head),
        cmocka_unit_test(test_equal_steps_drop_caps_and_splits),
        cmocka_unit_test(test_equal_steps_drop_and_pad_remainders),
        cmocka_unit_test(test_rank_claimed_by_another_process),
        cmocka_unit_test(test_heartbeat_renews_leases),
        cmocka_unit_test(test_equal_steps_sharded_quota_is_min_or_max_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
