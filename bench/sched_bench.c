/* sched_bench.c: the scheduler alone, on one thread, no I/O.
 *
 * 1. Operations per second of request (grant) + progress + done, with 16, 256
 *    and 1,024 simulated ranks taking turns (Dynamic, 2 leases in flight per
 *    rank, events handed to a callback that counts them, as a journal would
 *    receive them), with and without cache inventories (cache preference scans
 *    the look-ahead window on every grant).
 * 2. Memory per shard for a 10-million-shard epoch: the scheduler's per-shard
 *    state after epoch begin, and the coverage ledger once every shard is
 *    committed.
 *
 * Usage: sched_bench [shards-for-memory (default 10000000)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator/sched.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void count_event(void *ctx, const s3s__sched_event *ev)
{
    (void)ev;
    (*(uint64_t *)ctx)++;
}

static s3s__sched_shard *make_shards(size_t n)
{
    s3s__sched_shard *sh = calloc(n, sizeof(*sh));
    if (sh == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        sh[i].id = i * 2654435761u;
        sh[i].size = 1000000;
        sh[i].records = 100;
    }
    return sh;
}

/* Runs rounds of: every rank requests up to 2 leases, commits half of each,
 * then finishes it. Returns operations per second. */
static double ops_bench(uint32_t ranks, int with_cache, uint64_t *out_ops, uint64_t *out_grants)
{
    const size_t n = 400000;
    s3s__sched_shard *sh = make_shards(n);
    uint64_t events = 0;
    s3s__sched_opts o;
    s3s__sched_opts_init(&o);
    o.world_size = ranks;
    o.max_inflight = 2;
    s3s__sched *s = NULL;
    if (sh == NULL || s3s__sched_create(&s, &o, count_event, &events, NULL) != 0) {
        fprintf(stderr, "setup failed\n");
        exit(1);
    }
    s3s__sched_order ord = {sh, n, NULL, NULL, NULL};
    uint64_t now = 1;
    for (uint32_t r = 0; r < ranks; r++) {
        s3s__sched_hello(s, 1000 + r, r, 1, now);
        if (with_cache) {
            /* Each rank holds 256 shards scattered over the order. */
            uint64_t ids[256];
            for (int k = 0; k < 256; k++)
                ids[k] = sh[((size_t)r * 7919 + (size_t)k * 104729) % n].id;
            s3s__sched_cache_set(s, 1000 + r, ids, 256, 1);
        }
    }
    s3s__sched_epoch_begin(s, 0, &ord, NULL);
    uint64_t ops = 0, epoch = 0, grants = 0, bad = 0;
    s3s__sched_grant g[2];
    s3s__sched_reply rep;
    double t0 = now_s(), t1;
    do {
        for (int round = 0; round < 64; round++) {
            for (uint32_t r = 0; r < ranks; r++) {
                uint64_t wid = 1000 + r;
                s3s__sched_request(s, wid, 2, now, g, 2, &rep);
                ops++;
                for (size_t k = 0; k < rep.ngrants; k++) {
                    uint64_t mid = g[k].start + (g[k].end - g[k].start) / 2;
                    uint64_t mrec = g[k].rec_start + (g[k].rec_end - g[k].rec_start) / 2;
                    if (mid > g[k].start && mrec > g[k].rec_start) {
                        bad += s3s__sched_progress(s, wid, g[k].token, mid, mrec, now) != 0;
                        ops++;
                    }
                    bad += s3s__sched_done(s, wid, g[k].token, g[k].end, g[k].rec_end, now) != 0;
                    ops++;
                    grants++;
                }
                if (rep.flags & S3S__REPLY_EPOCH_DONE)
                    s3s__sched_epoch_begin(s, ++epoch, &ord, NULL);
                now++;
            }
        }
        t1 = now_s();
    } while (t1 - t0 < 2.0);
    s3s__sched_destroy(s);
    free(sh);
    if (bad != 0) {
        fprintf(stderr, "%llu refused operations\n", (unsigned long long)bad);
        exit(1);
    }
    *out_grants = grants;
    *out_ops = ops;
    (void)events;
    return (double)ops / (t1 - t0);
}

int main(int argc, char **argv)
{
    size_t mem_n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    uint32_t rank_counts[] = {16, 256, 1024};
    printf("sched_bench: one thread, Dynamic, 2 leases in flight per rank, "
           "ops = request + progress + done\n");
    for (int c = 0; c < 2; c++) {
        for (size_t i = 0; i < 3; i++) {
            uint64_t ops, grants;
            double rate = ops_bench(rank_counts[i], c, &ops, &grants);
            printf("  %5u ranks%s: %10.0f ops/s (%llu ops, %llu leases)\n", rank_counts[i],
                   c ? ", 256 cached ids each" : "                    ", rate,
                   (unsigned long long)ops, (unsigned long long)grants);
        }
    }

    s3s__sched_shard *sh = make_shards(mem_n);
    s3s__sched_opts o;
    s3s__sched_opts_init(&o);
    o.world_size = 256;
    o.max_inflight = 2;
    s3s__sched *s = NULL;
    if (sh == NULL || s3s__sched_create(&s, &o, NULL, NULL, NULL) != 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    s3s__sched_order ord = {sh, mem_n, NULL, NULL, NULL};
    double t0 = now_s();
    if (s3s__sched_epoch_begin(s, 0, &ord, NULL) != 0) {
        fprintf(stderr, "epoch begin failed\n");
        return 1;
    }
    double t_begin = now_s() - t0;
    size_t shard_b, ledger_b;
    s3s__sched_memory(s, &shard_b, &ledger_b);
    printf("memory, %zu-shard epoch: scheduler %.1f bytes/shard (epoch begin %.2f s)\n", mem_n,
           (double)shard_b / (double)mem_n, t_begin);
    for (uint32_t r = 0; r < 256; r++)
        s3s__sched_hello(s, 1000 + r, r, 1, 1);
    s3s__sched_grant g[2];
    s3s__sched_reply rep;
    uint64_t now = 1, ops = 0;
    t0 = now_s();
    for (int done = 0; !done;) {
        for (uint32_t r = 0; r < 256 && !done; r++) {
            s3s__sched_request(s, 1000 + r, 2, now, g, 2, &rep);
            ops++;
            for (size_t k = 0; k < rep.ngrants; k++) {
                s3s__sched_done(s, 1000 + r, g[k].token, g[k].end, g[k].rec_end, now);
                ops++;
            }
            done = (rep.flags & S3S__REPLY_EPOCH_DONE) != 0;
        }
        now++;
    }
    double t_run = now_s() - t0;
    s3s__sched_memory(s, &shard_b, &ledger_b);
    printf("  whole epoch: %llu ops in %.2f s (%.0f ops/s); ledger %.1f bytes/shard "
           "(%.1f allocated), scheduler + ledger %.1f bytes/shard\n",
           (unsigned long long)ops, t_run, (double)ops / t_run, 32.0,
           (double)ledger_b / (double)mem_n, (double)(shard_b + ledger_b) / (double)mem_n);
    s3s__sched_destroy(s);
    free(sh);
    return 0;
}
