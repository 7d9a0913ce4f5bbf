/* sched_sim_test.c: seeded whole-job simulations of the scheduler.
 *
 * Each seed draws a world (ranks, distribution, equal-steps mode, prefetch,
 * shard sizes and record counts) and plays a random schedule of requests,
 * partial reads, progress, done, heartbeats, kills (a rank goes silent and
 * its leases expire), drains, restarts with a kept or wiped cache, and
 * coordinator restarts (replay of the journal into a fresh scheduler, then
 * recover). Rank 0 is ten times faster than the others. After every epoch:
 * the ledger proves every byte of every shard committed (or dropped) exactly
 * once; with equal steps every rank committed exactly the quota; bytes read
 * twice are within the re-issued tails and one in-flight window per loss.
 * At the end, a replay of the whole journal reproduces the final state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator/sched.h"
#include "s3shard/error.h"

#define MAXR 8
#define MAXN 96
#define MAXE 3
#define MAXL 64

typedef struct jrnl {
    s3s__sched_event *ev;
    size_t n, alloc;
} jrnl;

static void on_event(void *ctx, const s3s__sched_event *ev)
{
    jrnl *j = ctx;
    if (j->n == j->alloc) {
        j->alloc = j->alloc ? j->alloc * 2 : 1024;
        j->ev = realloc(j->ev, j->alloc * sizeof(*j->ev));
        assert_non_null(j->ev);
    }
    j->ev[j->n++] = *ev;
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1DULL;
}

static uint64_t cur_seed;
static uint64_t tot_kills, tot_restarts, tot_reread, tot_losses, tot_epochs, tot_events;

typedef struct slease {
    s3s__sched_grant g;
    uint64_t read_off, read_rec; /* read so far (absolute) */
    uint64_t committed;
} slease;

typedef struct sworker {
    uint64_t wid;
    uint32_t inc;
    int alive;
    slease l[MAXL];
    int nl;
    uint64_t cache[MAXN];
    size_t ncache;
} sworker;

typedef struct world {
    uint64_t rng;
    s3s__sched_opts o;
    s3s__sched *s;
    jrnl j;
    s3s__sched_shard base[MAXN];
    s3s__sched_shard orders[MAXE][MAXN];
    uint32_t owners[MAXE][MAXN];
    size_t n;
    uint32_t epochs;
    sworker w[MAXR];
    uint64_t now;
    uint64_t reread, reread_kills, reissued_sum, kills, restarts, losses, maxsize;
    uint32_t epochs_done;
    uint64_t compactions;
} world;

static uint64_t boundary(const s3s__sched_shard *sh, uint64_t k)
{
    return sh->records == 0 ? 0 : sh->size * k / sh->records;
}

static const s3s__sched_shard *shard_of(world *W, const s3s__sched_grant *g)
{
    return &W->orders[g->epoch][g->pos];
}

static void lose(world *W, sworker *w, int i, int from_kill)
{
    /* A lost padding lease is not read again: the next one repeats another item. */
    uint64_t lost = w->l[i].g.pad ? 0 : w->l[i].read_off - w->l[i].committed;
    W->reread += lost;
    if (from_kill)
        W->reread_kills += lost;
    W->losses++;
    w->l[i] = w->l[--w->nl];
}

static void make_order(world *W, uint32_t e)
{
    memcpy(W->orders[e], W->base, W->n * sizeof(W->base[0]));
    for (size_t i = W->n; i > 1; i--) {
        size_t k = rnd(&W->rng) % i;
        s3s__sched_shard t = W->orders[e][i - 1];
        W->orders[e][i - 1] = W->orders[e][k];
        W->orders[e][k] = t;
    }
    for (size_t i = 0; i < W->n; i++)
        W->owners[e][i] = (uint32_t)((W->orders[e][i].id * 2654435761u) % W->o.world_size);
}

static s3s__sched_order order_of(world *W, uint32_t e)
{
    s3s__sched_order o;
    memset(&o, 0, sizeof(o));
    o.shards = W->orders[e];
    o.n = W->n;
    o.owner = W->owners[e];
    return o;
}

static void replay_into(world *W, s3s__sched **out, jrnl *j)
{
    assert_int_equal(s3s__sched_create(out, &W->o, on_event, j, NULL), 0);
    for (size_t i = 0; i < W->j.n; i++) {
        const s3s__sched_event *ev = &W->j.ev[i];
        s3s__sched_order ord = order_of(W, (uint32_t)ev->epoch);
        s3s__errbuf eb;
        int rc = s3s__sched_apply(*out, ev, ev->type == S3S__EV_EPOCH_BEGIN ? &ord : NULL, &eb);
        if (rc != 0)
            fail_msg("replay event %zu: %s", i, eb.msg);
    }
}

static void check_epoch(world *W)
{
    s3s__errbuf eb;
    if (s3s__sched_ledger_verify(W->s, 1, &eb) != 0)
        fail_msg("epoch %u: %s", W->epochs_done, eb.msg);
    s3s__sched_stats st;
    s3s__sched_stats_get(W->s, &st);
    assert_int_equal(st.bytes_committed + st.bytes_dropped, st.bytes_total);
    if (W->o.equal_steps == S3S__EQUAL_OFF)
        assert_int_equal(st.bytes_dropped, 0);
    assert_int_equal(st.active_leases, 0);
    assert_int_equal(st.internal_errors, 0);
    if (W->o.equal_steps != S3S__EQUAL_OFF) {
        for (uint32_t r = 0; r < W->o.world_size; r++) {
            s3s__sched_rank_stats rs;
            assert_int_equal(s3s__sched_rank_stats_get(W->s, r, &rs), 0);
            assert_int_equal(rs.samples_committed, st.quota);
        }
    }
    W->reissued_sum += st.reissued_bytes;
}

static void worker_step(world *W, uint32_t r)
{
    sworker *w = &W->w[r];
    uint64_t *g = &W->rng;
    if (!w->alive) {
        if (rnd(g) % 4 != 0)
            return;
        w->inc++;
        int hrc = s3s__sched_hello(W->s, w->wid, r, w->inc, W->now);
        if (hrc != 0)
            fail_msg("seed %llu: hello: %d", (unsigned long long)cur_seed, hrc);
        if (rnd(g) % 2 == 0)
            w->ncache = 0; /* cache wiped */
        assert_int_equal(s3s__sched_cache_set(W->s, w->wid, w->cache, w->ncache, 1), 0);
        w->alive = 1;
        return;
    }
    uint64_t a = rnd(g) % 1000;
    if (a < 8) { /* SIGKILL: silent from now on */
        while (w->nl > 0)
            lose(W, w, 0, 1);
        w->alive = 0;
        W->kills++;
        return;
    }
    if (a < 14) { /* SIGTERM: commit exact positions, drain */
        for (int i = 0; i < w->nl; i++) {
            slease *l = &w->l[i];
            int rc =
                s3s__sched_progress(W->s, w->wid, l->g.token, l->read_off, l->read_rec, W->now);
            if (rc == 0)
                l->committed = l->read_off;
            else
                assert_int_equal(rc, S3S_ESTALE);
        }
        while (w->nl > 0)
            lose(W, w, 0, 0);
        assert_int_equal(s3s__sched_drain(W->s, w->wid, W->now), 0);
        w->alive = 0;
        return;
    }
    if (a < 300 || w->nl == 0) {
        s3s__sched_grant gr[MAXL];
        s3s__sched_reply rep;
        int rc = s3s__sched_request(W->s, w->wid, 1 + rnd(g) % 2, W->now, gr, MAXL, &rep);
        assert_int_equal(rc, 0);
        for (size_t i = 0; i < rep.ngrants; i++) {
            const s3s__sched_grant *x = &gr[i];
            if (W->o.dist == S3S__DIST_SHARDED_BY_S3KEY && !x->pad)
                assert_int_equal(W->owners[x->epoch][x->pos], r);
            assert_true(w->nl < MAXL);
            slease *l = &w->l[w->nl++];
            memset(l, 0, sizeof(*l));
            l->g = *x;
            l->read_off = l->committed = x->start;
            l->read_rec = x->rec_start;
        }
        return;
    }
    if (a < 330) {
        assert_int_equal(s3s__sched_heartbeat(W->s, w->wid, W->now, NULL), 0);
        return;
    }
    /* Read some of one lease, then commit or finish it. */
    int i = (int)(rnd(g) % (uint64_t)w->nl);
    slease *l = &w->l[i];
    const s3s__sched_shard *sh = shard_of(W, &l->g);
    uint64_t limit_rec = l->g.rec_start + l->g.cap;
    int finished;
    if (sh->records == 0) {
        uint64_t left = l->g.end - l->read_off;
        l->read_off += left ? 1 + rnd(g) % left : 0;
        finished = l->read_off == l->g.end;
        l->read_rec = finished;
    } else {
        uint64_t k = l->read_rec + 1 + rnd(g) % 3;
        l->read_rec = k < limit_rec ? k : limit_rec;
        l->read_off = boundary(sh, l->read_rec);
        finished = l->read_rec == limit_rec;
    }
    int rc;
    if (finished) {
        rc = s3s__sched_done(W->s, w->wid, l->g.token, l->read_off, l->read_rec, W->now);
        if (rc == 0) {
            l->committed = l->read_off;
            if (w->ncache < MAXN && !l->g.pad && l->read_off == sh->size)
                w->cache[w->ncache++] = sh->id;
            w->l[i] = w->l[--w->nl];
            return;
        }
    } else if (rnd(g) % 2 == 0) {
        rc = s3s__sched_progress(W->s, w->wid, l->g.token, l->read_off, l->read_rec, W->now);
        if (rc == 0)
            l->committed = l->read_off;
    } else {
        return;
    }
    if (rc == S3S_ESTALE) /* expired while we were slow, or coordinator restarted */
        lose(W, w, i, 0);
    else
        assert_int_equal(rc, 0);
}

/* force_*: -1 draws the value from the seed. */
static void run_seed(uint64_t seed, int force_dist, int force_equal, int force_ranks)
{
    cur_seed = seed;
    world *W = calloc(1, sizeof(*W));
    assert_non_null(W);
    W->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    uint64_t *g = &W->rng;
    s3s__sched_opts_init(&W->o);
    W->o.world_size = 1 + (uint32_t)(rnd(g) % MAXR);
    W->o.dist = (s3s__dist)(rnd(g) % 3);
    W->o.equal_steps = (s3s__equal)(rnd(g) % 3);
    W->o.max_inflight = 1 + (uint32_t)(rnd(g) % 4);
    W->o.lease_ttl_ms = 200;
    W->o.max_workers = 4096;
    if (force_dist >= 0)
        W->o.dist = (s3s__dist)force_dist;
    if (force_equal >= 0)
        W->o.equal_steps = (s3s__equal)force_equal;
    if (force_ranks > 0)
        W->o.world_size = (uint32_t)force_ranks;
    W->o.cache_window = (uint32_t)(rnd(g) % 3) * 8;
    W->n = rnd(g) % MAXN;
    W->epochs = 2 + (uint32_t)(rnd(g) % 2);
    for (size_t i = 0; i < W->n; i++) {
        s3s__sched_shard *sh = &W->base[i];
        sh->id = 5000 + i * 7;
        sh->size = rnd(g) % 4 == 0 ? rnd(g) % 3 : rnd(g) % 5000;
        sh->records = rnd(g) % 2 ? 0 : 1 + (uint32_t)(rnd(g) % 12);
        if (sh->size > W->maxsize)
            W->maxsize = sh->size;
    }
    for (uint32_t e = 0; e < W->epochs; e++)
        make_order(W, e);
    assert_int_equal(s3s__sched_create(&W->s, &W->o, on_event, &W->j, NULL), 0);
    for (uint32_t r = 0; r < W->o.world_size; r++) {
        W->w[r].wid = 0xabc000 + r;
        W->w[r].inc = 1;
        W->w[r].alive = 1;
        assert_int_equal(s3s__sched_hello(W->s, W->w[r].wid, r, 1, 0), 0);
    }
    s3s__sched_order ord = order_of(W, 0);
    assert_int_equal(s3s__sched_epoch_begin(W->s, 0, &ord, NULL), 0);
    uint32_t speed_total = 10 + W->o.world_size - 1;
    size_t seen = 0;
    for (long step = 0; step < 400000 && W->epochs_done < W->epochs; step++) {
        W->now += rnd(g) % 4;
        /* Rank 0 acts ten times as often as any other rank. */
        uint64_t pick = rnd(g) % speed_total;
        uint32_t r = pick < 10 ? 0 : (uint32_t)(pick - 9);
        if (rnd(g) % 2000 == 0) { /* the coordinator crashes and restarts */
            s3s__sched *ns = NULL;
            replay_into(W, &ns, &W->j);
            assert_true(s3s__sched_digest(ns) == s3s__sched_digest(W->s));
            s3s__sched_destroy(W->s);
            W->s = ns;
            s3s__sched_recover(W->s, W->now);
            W->restarts++;
        } else {
            worker_step(W, r);
        }
        s3s__errbuf eb;
        if (s3s__sched_audit(W->s, &eb) != 0 ||
            (step % 97 == 0 && s3s__sched_ledger_verify(W->s, 0, &eb) != 0))
            fail_msg("seed %llu step %ld: %s", (unsigned long long)seed, step, eb.msg);
        int compact = 0;
        for (; seen < W->j.n; seen++) {
            if (W->j.ev[seen].type != S3S__EV_EPOCH_DONE)
                continue;
            check_epoch(W);
            W->epochs_done++;
            if (W->epochs_done < W->epochs) {
                s3s__sched_order o2 = order_of(W, W->epochs_done);
                assert_int_equal(s3s__sched_epoch_begin(W->s, W->epochs_done, &o2, NULL), 0);
                s3s__sched_stats st;
                s3s__sched_stats_get(W->s, &st);
                compact = st.epoch_running && rnd(g) % 2 == 0;
            }
        }
        if (compact) {
            /* The journal is compacted at the epoch boundary; later replays
             * (coordinator restarts) start from the compacted one. */
            jrnl cj = {0};
            assert_int_equal(s3s__sched_compact(W->s, on_event, &cj), 0);
            free(W->j.ev);
            W->j = cj;
            seen = W->j.n;
            s3s__sched *rs = NULL;
            jrnl tmp = {0};
            replay_into(W, &rs, &tmp);
            assert_true(s3s__sched_digest(rs) == s3s__sched_digest(W->s));
            s3s__sched_destroy(rs);
            W->compactions++;
        }
    }
    if (W->epochs_done != W->epochs) {
        s3s__sched_stats st;
        s3s__sched_stats_get(W->s, &st);
        fprintf(stderr,
                "dist %d equal %d R %u n %zu inflight %u: open? active %llu quota %llu "
                "done %llu/%llu bytes %llu/%llu live %u\n",
                (int)W->o.dist, (int)W->o.equal_steps, W->o.world_size, W->n, W->o.max_inflight,
                (unsigned long long)st.active_leases, (unsigned long long)st.quota,
                (unsigned long long)st.shards_done, (unsigned long long)st.shards_total,
                (unsigned long long)st.bytes_committed, (unsigned long long)st.bytes_total,
                st.workers_live);
        for (uint32_t r = 0; r < W->o.world_size; r++) {
            s3s__sched_rank_stats rs;
            s3s__sched_rank_stats_get(W->s, r, &rs);
            fprintf(stderr, "rank %u: samples %llu assigned %llu leases %u alive %d nl %d\n", r,
                    (unsigned long long)rs.samples_committed,
                    (unsigned long long)rs.samples_assigned, rs.live_leases, W->w[r].alive,
                    W->w[r].nl);
        }
    }
    if (W->epochs_done != W->epochs)
        fail_msg("seed %llu: %u of %u epochs done", (unsigned long long)seed, W->epochs_done,
                 W->epochs);
    /* Re-read bytes: never more than the re-issued tails, and at most one
     * in-flight window (max_inflight pieces) per kill. */
    assert_true(W->reread <= W->reissued_sum);
    assert_true(W->reread_kills <= W->kills * W->o.max_inflight * W->maxsize);
    tot_kills += W->kills;
    tot_restarts += W->restarts;
    tot_reread += W->reread;
    tot_losses += W->losses;
    tot_epochs += W->epochs_done;
    tot_events += W->j.n;
    jrnl rj = {0};
    s3s__sched *rs = NULL;
    replay_into(W, &rs, &rj);
    assert_true(s3s__sched_digest(rs) == s3s__sched_digest(W->s));
    assert_int_equal(rj.n, 0);
    s3s__sched_destroy(rs);
    s3s__sched_destroy(W->s);
    free(W->j.ev);
    free(W);
}

static void test_simulation_many_seeds(void **state)
{
    (void)state;
    const char *env = getenv("S3SHARD_SIM_SEEDS");
    uint64_t seeds = env ? strtoull(env, NULL, 10) : 300;
    for (uint64_t seed = 1; seed <= seeds; seed++)
        run_seed(seed, -1, -1, -1);
    fprintf(stderr,
            "%llu seeds: %llu epochs, %llu events, %llu kills, %llu coordinator restarts, "
            "%llu leases lost, %llu bytes read twice\n",
            (unsigned long long)seeds, (unsigned long long)tot_epochs,
            (unsigned long long)tot_events, (unsigned long long)tot_kills,
            (unsigned long long)tot_restarts, (unsigned long long)tot_losses,
            (unsigned long long)tot_reread);
}

/* The DDP contract: Dynamic, rank 0 ten times faster than the other three,
 * kills, drains and coordinator restarts; every epoch ends with every rank at
 * exactly the quota (check_epoch), for both remainder policies. */
static void test_equal_steps_fast_and_slow_ranks_with_kills(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 60; seed++) {
        run_seed(1000 + seed, S3S__DIST_DYNAMIC, S3S__EQUAL_DROP, 4);
        run_seed(2000 + seed, S3S__DIST_DYNAMIC, S3S__EQUAL_PAD, 4);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simulation_many_seeds),
        cmocka_unit_test(test_equal_steps_fast_and_slow_ranks_with_kills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
