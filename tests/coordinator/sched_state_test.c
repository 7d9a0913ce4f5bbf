/* sched_state_test.c: applying events: replay equality, recover, refusal of
 * events that do not fit, worker slots compacted at epoch boundaries. */
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

static void test_replay_reproduces_state_and_recover_expires(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 6, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 1);
    s3s__sched_grant b = grant1(&f, 2, 1);
    assert_int_equal(s3s__sched_done(f.s, 1, a.token, 100, 0, 2), 0);
    assert_int_equal(s3s__sched_progress(f.s, 2, b.token, 30, 0, 2), 0);
    s3s__sched_grant c = grant1(&f, 1, 3);
    (void)c;

    journal j2;
    memset(&j2, 0, sizeof(j2));
    s3s__sched *r = NULL;
    s3s__sched_opts o;
    s3s__sched_opts_init(&o);
    o.world_size = 2;
    o.lease_ttl_ms = 1000;
    assert_int_equal(s3s__sched_create(&r, &o, on_event, &j2, NULL), 0);
    for (size_t i = 0; i < f.j.n; i++) {
        const s3s__sched_order *ord = f.j.ev[i].type == S3S__EV_EPOCH_BEGIN ? &f.order : NULL;
        assert_int_equal(s3s__sched_apply(r, &f.j.ev[i], ord, NULL), 0);
    }
    assert_int_equal(j2.n, 0); /* replay emits nothing */
    assert_true(s3s__sched_digest(r) == s3s__sched_digest(f.s));
    /* A replayed event twice does not fit the state. */
    s3s__errbuf eb;
    assert_int_equal(s3s__sched_apply(r, &f.j.ev[f.j.n - 1], NULL, &eb), S3S_EPROTO);
    s3s__sched_event bogus = f.j.ev[f.j.n - 1];
    bogus.epoch = 7;
    assert_int_equal(s3s__sched_apply(r, &bogus, NULL, &eb), S3S_EPROTO);

    /* Restart: in-flight leases expire at once, only tails return. */
    s3s__sched_recover(r, 5000);
    assert_int_equal(count_type(&j2, S3S__EV_EXPIRE), 2);
    s3s__sched_stats st;
    s3s__sched_stats_get(r, &st);
    assert_int_equal(st.active_leases, 0);
    assert_int_equal(st.reissued_bytes, 70 + 100);
    /* Tokens keep increasing across the restart. */
    s3s__sched_grant g[1];
    s3s__sched_reply rep;
    assert_int_equal(s3s__sched_request(r, 2, 1, 5001, g, 1, &rep), 0);
    assert_int_equal(rep.ngrants, 1);
    assert_true(g[0].token > c.token);
    assert_int_equal(s3s__sched_progress(r, 2, b.token, 40, 0, 5002), S3S_ESTALE);
    s3s__sched_destroy(r);
    s3s__sched_destroy(f.s);
}

static void test_apply_refuses_events_that_do_not_fit(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 4, 100, 0);
    s3s__errbuf eb;
    s3s__sched_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = S3S__EV_EPOCH_BEGIN;
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), S3S_EINVAL); /* no order */
    ev.quota = 5;
    assert_int_equal(s3s__sched_apply(f.s, &ev, &f.order, &eb), S3S_EPROTO); /* quota */
    s3s__sched_destroy(f.s);
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 4, 100, 0);
    ev.quota = 0;
    assert_int_equal(s3s__sched_apply(f.s, &ev, &f.order, &eb), 0);
    memset(&ev, 0, sizeof(ev));
    ev.type = S3S__EV_JOIN;
    ev.slot = 3; /* slots are given in order */
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), S3S_EPROTO);
    ev.slot = 0;
    ev.worker_id = 1;
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), 0);
    memset(&ev, 0, sizeof(ev));
    ev.type = S3S__EV_GRANT;
    ev.token = 1;
    ev.pos = 2; /* not at the cursor, and nothing is cached */
    ev.end = 100;
    ev.rec_end = 1;
    ev.cap = 1;
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), 0); /* Dynamic: any untaken pos */
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), S3S_EPROTO); /* token reused */
    ev.token = 2;
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), S3S_EPROTO); /* pos taken */
    ev.pos = 9;
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), S3S_EPROTO); /* no such pos */
    memset(&ev, 0, sizeof(ev));
    ev.type = S3S__EV_COMMIT;
    ev.token = 7;
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), S3S_EPROTO);
    ev.token = 1;
    ev.offset = 101;
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), S3S_EPROTO);
    memset(&ev, 0, sizeof(ev));
    ev.type = S3S__EV_LEAVE; /* the worker still holds a lease */
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), S3S_EPROTO);
    ev.type = S3S__EV_EPOCH_DONE;
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), S3S_EPROTO);
    ev.type = 99;
    assert_int_equal(s3s__sched_apply(f.s, &ev, NULL, &eb), S3S_EPROTO);
    s3s__sched_destroy(f.s);
}

static void test_worker_slots_reused_across_epochs(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof(f));
    s3s__sched_opts o;
    s3s__sched_opts_init(&o);
    o.world_size = 1;
    o.max_workers = 3;
    assert_int_equal(s3s__sched_create(&f.s, &o, on_event, &f.j, NULL), 0);
    f.shards[0].id = 1;
    f.shards[0].size = 10;
    f.order.shards = f.shards;
    f.order.n = 1;
    fx_begin(&f, 0);
    /* Three incarnations of one rank fill the slots within an epoch. */
    for (uint32_t inc = 1; inc <= 3; inc++)
        assert_int_equal(s3s__sched_hello(f.s, 1, 0, inc, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 4, 0), S3S_ETOOBIG);
    s3s__sched_grant g = grant1(&f, 1, 1);
    assert_int_equal(s3s__sched_done(f.s, 1, g.token, 10, 0, 1), 0);
    uint64_t before = s3s__sched_digest(f.s);
    fx_begin(&f, 1);
    assert_true(s3s__sched_digest(f.s) != before);
    /* The departed incarnations were dropped at the boundary. */
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 4, 2), 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 5, 2), 0);
    g = grant1(&f, 1, 3);
    assert_int_equal(g.epoch, 1);
    s3s__sched_destroy(f.s);
}

static void test_compact_rebuilds_state_and_keeps_tokens_increasing(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 2, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 3, 1, 2, 0), 0); /* replaces worker 2 */
    assert_int_equal(s3s__sched_compact(f.s, on_event, &f.j), 0); /* fresh epoch: fine */
    f.j.n = 0;
    s3s__sched_grant a = grant1(&f, 1, 1);
    s3s__sched_grant b = grant1(&f, 3, 1);
    journal cj;
    memset(&cj, 0, sizeof(cj));
    assert_int_equal(s3s__sched_compact(f.s, on_event, &cj), S3S_EBUSY); /* leases live */
    assert_int_equal(s3s__sched_done(f.s, 1, a.token, 100, 0, 2), 0);
    assert_int_equal(s3s__sched_drain(f.s, 3, 2), 0); /* tail re-issued, one drain */
    s3s__sched_grant c = grant1(&f, 1, 3);
    assert_int_equal(s3s__sched_done(f.s, 1, c.token, 100, 0, 3), 0);
    assert_int_equal(count_type(&f.j, S3S__EV_EPOCH_DONE), 1);
    fx_begin(&f, 1);
    assert_int_equal(s3s__sched_hello(f.s, 3, 1, 3, 4), 0);
    /* Worker 3 drained after the boundary: RESTORE, EPOCH_BEGIN, JOIN 1,
     * JOIN 3 + LEAVE (drained). */
    assert_int_equal(s3s__sched_drain(f.s, 3, 4), 0);
    assert_int_equal(s3s__sched_compact(f.s, on_event, &cj), 0);
    assert_int_equal(cj.n, 5);
    assert_int_equal(cj.ev[0].type, S3S__EV_RESTORE);
    assert_int_equal(cj.ev[1].type, S3S__EV_EPOCH_BEGIN);
    assert_int_equal(cj.ev[2].type, S3S__EV_JOIN);
    assert_int_equal(cj.ev[2].worker_id, 1);
    assert_int_equal(cj.ev[4].type, S3S__EV_LEAVE);
    assert_int_equal(cj.ev[4].reason, S3S__WHY_DRAIN);

    journal rj;
    memset(&rj, 0, sizeof(rj));
    s3s__sched *r = NULL;
    s3s__sched_opts o;
    s3s__sched_opts_init(&o);
    o.world_size = 2;
    o.lease_ttl_ms = 1000;
    assert_int_equal(s3s__sched_create(&r, &o, on_event, &rj, NULL), 0);
    s3s__errbuf eb;
    for (size_t i = 0; i < cj.n; i++)
        assert_int_equal(s3s__sched_apply(r, &cj.ev[i], &f.order, &eb), 0);
    assert_true(s3s__sched_digest(r) == s3s__sched_digest(f.s));
    s3s__sched_stats st;
    s3s__sched_stats_get(r, &st);
    assert_int_equal(st.drains, 2);
    /* A RESTORE in the middle of a journal is refused. */
    assert_int_equal(s3s__sched_apply(r, &cj.ev[0], NULL, &eb), S3S_EPROTO);
    /* Tokens go on increasing after the compacted replay. */
    s3s__sched_grant g[1];
    s3s__sched_reply rep;
    assert_int_equal(s3s__sched_request(r, 1, 1, 10, g, 1, &rep), 0);
    assert_int_equal(rep.ngrants, 1);
    assert_true(g[0].token > c.token && c.token > b.token);
    s3s__sched_destroy(r);
    s3s__sched_destroy(f.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_reproduces_state_and_recover_expires),
        cmocka_unit_test(test_apply_refuses_events_that_do_not_fit),
        cmocka_unit_test(test_worker_slots_reused_across_epochs),
        cmocka_unit_test(test_compact_rebuilds_state_and_keeps_tokens_increasing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
