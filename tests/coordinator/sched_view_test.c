/* sched_view_test.c: the read-only views: ledger walk and verify, the
 * invariant audit, digest, stats and memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator/sched_impl.h"
#include "s3shard/error.h"

#include "tests/coordinator/sched_fixture.h"

static int count_rows(void *ctx, const s3s__ledger_row *row)
{
    size_t *n = ctx;
    (*n)++;
    return row->dropped ? 0 : 0;
}

static int stop_at_first(void *ctx, const s3s__ledger_row *row)
{
    (void)ctx;
    return row->worker_id == 1 ? 42 : 0;
}

static void test_ledger_walk_rows(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 1, 2, 100, 0);
    fx_begin(&f, 3);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 4, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 1);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 20, 0, 1), 0);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 60, 0, 1), 0);
    size_t n = 0;
    assert_int_equal(s3s__sched_ledger_walk(f.s, count_rows, &n), 0);
    assert_int_equal(n, 1); /* progress under one lease extends one row */
    assert_int_equal(s3s__sched_ledger_walk(f.s, stop_at_first, NULL), 42);
    /* An incomplete ledger passes the running check, fails the final one. */
    assert_int_equal(s3s__sched_ledger_verify(f.s, 0, NULL), 0);
    s3s__errbuf eb;
    assert_int_equal(s3s__sched_ledger_verify(f.s, 1, &eb), S3S_ECORRUPT);
    assert_non_null(strstr(eb.msg, "covered to 60 of 100"));
    s3s__sched_destroy(f.s);
}

static void test_verify_detects_overlap_and_stray_rows(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 1, 2, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 1);
    assert_int_equal(s3s__sched_done(f.s, 1, a.token, 100, 0, 1), 0);
    s3s__errbuf eb;
    /* A second row over [50, 100) of the same shard: overlap. */
    assert_int_equal(s3s__ledger_add(&f.s->ledger, a.pos, 0, 99, 50, 100, NULL), 0);
    assert_int_equal(s3s__sched_ledger_verify(f.s, 0, &eb), S3S_ECORRUPT);
    assert_non_null(strstr(eb.msg, "overlap at byte 50"));
    /* A dropped row for a lane that does not exist. */
    f.s->ledger.n--;
    assert_int_equal(s3s__sched_ledger_verify(f.s, 0, &eb), 0);
    assert_int_equal(s3s__ledger_add(&f.s->ledger, 1, S3S__LEDGER_DROPPED | 5, 0, 0, 10, NULL), 0);
    assert_int_equal(s3s__sched_ledger_verify(f.s, 0, &eb), S3S_ECORRUPT);
    s3s__sched_destroy(f.s);
}

static void test_audit_detects_broken_counters(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 4, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 1);
    (void)a;
    s3s__errbuf eb;
    assert_int_equal(s3s__sched_audit(f.s, &eb), 0);
    f.s->open++;
    assert_int_equal(s3s__sched_audit(f.s, &eb), S3S_ECORRUPT);
    assert_non_null(strstr(eb.msg, "open pieces"));
    f.s->open--;
    f.s->ranks[0].samples_assigned++;
    assert_int_equal(s3s__sched_audit(f.s, &eb), S3S_ECORRUPT);
    f.s->ranks[0].samples_assigned--;
    f.s->lanes[0].untaken++;
    assert_int_equal(s3s__sched_audit(f.s, &eb), S3S_ECORRUPT);
    f.s->lanes[0].untaken--;
    f.s->active++;
    assert_int_equal(s3s__sched_audit(f.s, &eb), S3S_ECORRUPT);
    f.s->active--;
    assert_int_equal(s3s__sched_audit(f.s, &eb), 0);
    s3s__sched_destroy(f.s);
}

static void test_digest_ignores_soft_state(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 1, 4, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    uint64_t d = s3s__sched_digest(f.s);
    uint64_t ids[] = {101, 102};
    assert_int_equal(s3s__sched_cache_set(f.s, 1, ids, 2, 1), 0);
    assert_int_equal(s3s__sched_heartbeat(f.s, 1, 50, NULL), 0);
    assert_true(s3s__sched_digest(f.s) == d);
    s3s__sched_grant a = grant1(&f, 1, 60);
    assert_true(s3s__sched_digest(f.s) != d);
    d = s3s__sched_digest(f.s);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 10, 0, 61), 0);
    assert_true(s3s__sched_digest(f.s) != d);
    s3s__sched_destroy(f.s);
}

static void test_stats_and_memory(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 8, 100, 4);
    fx_begin(&f, 5);
    assert_int_equal(s3s__sched_hello(f.s, 1, 0, 1, 0), 0);
    assert_int_equal(s3s__sched_hello(f.s, 2, 1, 1, 0), 0);
    s3s__sched_grant a = grant1(&f, 1, 1);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 50, 2, 7), 0);
    s3s__sched_stats st;
    s3s__sched_stats_get(f.s, &st);
    assert_int_equal(st.epoch, 5);
    assert_int_equal(st.epoch_running, 1);
    assert_int_equal(st.shards_total, 8);
    assert_int_equal(st.bytes_total, 800);
    assert_int_equal(st.bytes_committed, 50);
    assert_int_equal(st.samples_total, 32);
    assert_int_equal(st.active_leases, 1);
    assert_int_equal(st.grants, 1);
    assert_int_equal(st.workers_live, 2);
    assert_int_equal(st.internal_errors, 0);
    s3s__sched_rank_stats rs;
    assert_int_equal(s3s__sched_rank_stats_get(f.s, 0, &rs), 0);
    assert_int_equal(rs.bytes_committed, 50);
    assert_int_equal(rs.samples_committed, 2);
    assert_int_equal(rs.samples_assigned, 4);
    assert_int_equal(rs.last_commit_ms, 7);
    assert_int_equal(rs.live_leases, 1);
    size_t shard_b, ledger_b;
    s3s__sched_memory(f.s, &shard_b, &ledger_b);
    assert_true(shard_b >= 8 * sizeof(s3s__sched_shard));
    assert_true(ledger_b >= 8 * sizeof(s3s__ledger_entry));
    s3s__sched_destroy(f.s);
}

static int collect_lease(void *ctx, const s3s__lease_row *row)
{
    s3s__lease_row *out = ctx;
    *out = *row;
    return 7;
}

static void test_leases_walk(void **state)
{
    (void)state;
    fixture f;
    fx_make(&f, S3S__DIST_DYNAMIC, 2, 4, 100, 0);
    fx_begin(&f, 0);
    assert_int_equal(s3s__sched_hello(f.s, 1, 1, 3, 0), 0);
    s3s__lease_row row;
    memset(&row, 0, sizeof(row));
    assert_int_equal(s3s__sched_leases_walk(f.s, collect_lease, &row), 0); /* none */
    s3s__sched_grant a = grant1(&f, 1, 10);
    assert_int_equal(s3s__sched_progress(f.s, 1, a.token, 30, 0, 20), 0);
    assert_int_equal(s3s__sched_leases_walk(f.s, collect_lease, &row), 7);
    assert_int_equal(row.worker_id, 1);
    assert_int_equal(row.rank, 1);
    assert_int_equal(row.shard_id, a.shard_id);
    assert_int_equal(row.start, 0);
    assert_int_equal(row.committed, 30);
    assert_int_equal(row.end, 100);
    assert_int_equal(row.token, a.token);
    assert_int_equal(row.expiry_ms, 20 + 1000);
    s3s__sched_destroy(f.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ledger_walk_rows),
        cmocka_unit_test(test_verify_detects_overlap_and_stray_rows),
        cmocka_unit_test(test_audit_detects_broken_counters),
        cmocka_unit_test(test_digest_ignores_soft_state),
        cmocka_unit_test(test_stats_and_memory),
        cmocka_unit_test(test_leases_walk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
