/* plan_bench.c: planning an epoch over a synthetic snapshot of N objects
 * (default 10,000,000): snapshot save and load times, the epoch permutation,
 * all shares for 1,024 ranks, and the memory per object beyond the key bytes.
 *
 *   plan_bench [N] [WORLD] [DIR]
 *
 * Goals (issue 3): permutation < 1 s, <= 64 B/object, load < 2 s. Build with
 * -O2 and no sanitizers (CMAKE_BUILD_TYPE=Release) to measure. */
#include "common/dataset/shuffle.h"
#include "common/dataset/snapshot.h"
#include "s3shard/dataset.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Timings: the best of REPS runs, wall clock and CPU time (on a machine shared
 * with other jobs, the CPU time shows what the wall clock hides). */
#define REPS 3

typedef struct timing {
    double wall, cpu;
} timing;

static void best(timing *t, double w0, double c0)
{
    double w = now() - w0, c = cpu() - c0;
    if (t->wall == 0 || w < t->wall)
        t->wall = w;
    if (t->cpu == 0 || c < t->cpu)
        t->cpu = c;
}

static double rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (double)res * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static void die(const char *what, const s3s_errinfo *e)
{
    fprintf(stderr, "plan_bench: %s: %s\n", what, e->msg);
    exit(1);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
    uint32_t world = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 1024;
    const char *dir = argc > 3 ? argv[3] : "/tmp";
    char path[512];
    snprintf(path, sizeof(path), "%s/plan_bench.%ld.snap", dir, (long)getpid());
    s3s_errinfo e = {0};

    /* 1. a synthetic listing: keys like a real prefix, log-normal sizes, MD5 ETags */
    double t0 = now();
    s3s__snap_builder b;
    s3s__sb_init(&b);
    s3s__ctr_rng r = {2024, 0};
    uint64_t key_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        char key[64], etag[40];
        int kl = snprintf(key, sizeof(key), "datasets/imagenet/train/n%05zu/img_%08zu.JPEG",
                          i / 1300, i);
        uint64_t a = s3s__rng_next(&r), c = s3s__rng_next(&r);
        snprintf(etag, sizeof(etag), "%016" PRIx64 "%016" PRIx64, a, c);
        double u1 = ((double)(a >> 11) + 1.0) / 9007199254740993.0;
        double u2 = (double)(c >> 11) / 9007199254740992.0;
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        uint64_t size = (uint64_t)exp(11.5 + 1.0 * z) + 1; /* median ~100 KB */
        if (s3s__sb_add(&b, key, (size_t)kl, size, etag) != 0) {
            fprintf(stderr, "plan_bench: out of memory building\n");
            return 1;
        }
        key_bytes += (uint64_t)kl;
    }
    s3s_snapshot *built = NULL;
    if (s3s__sb_finish(&b, S3S_SNAP_OBJECTS, "s3://bench/datasets/imagenet/train/", "bench", &built,
                       &e) != 0)
        die("finish", &e);
    s3s__sb_fini(&b);
    double t_build = now() - t0;

    t0 = now();
    if (s3s_snapshot_save(built, path, &e) != 0)
        die("save", &e);
    double t_save = now() - t0;
    s3s_snapshot_destroy(built);

    /* 2. load (read, checksum, bounds and order checks) */
    timing t_load = {0, 0};
    s3s_snapshot *snap = NULL;
    double rss_snap = 0;
    for (int rep = 0; rep < REPS; rep++) {
        s3s_snapshot_destroy(snap);
        snap = NULL;
        double rss0 = rss_mb(), w0 = now(), c0 = cpu();
        if (s3s_snapshot_load(&snap, path, &e) != 0)
            die("load", &e);
        best(&t_load, w0, c0);
        rss_snap = rss_mb() - rss0;
    }
    if (getenv("PLAN_BENCH_KEEP") == NULL)
        unlink(path);
    else
        printf("kept %s\n", path);

    /* 3. the permutation alone, then plans: unpacked (a shard per object) and packed */
    uint32_t *perm = malloc(n * sizeof(*perm));
    timing t_perm = {0, 0};
    for (int rep = 0; rep < REPS; rep++) {
        double w0 = now(), c0 = cpu();
        s3s_epoch_permutation(perm, n, 1, 42, 7 + (uint64_t)rep);
        best(&t_perm, w0, c0);
    }
    free(perm);

    s3s_plan_opts o;
    s3s_plan_opts_init(&o);
    o.shuffle = 1;
    o.seed = 42;
    o.epoch = 7;
    o.distribution = S3S_DIST_SHARDED_BY_S3_KEY;
    o.shard_target_bytes = 0;
    timing t_plan = {0, 0}, t_shares_count = {0, 0}, t_shares_bytes = {0, 0};
    double rss_plan = 0;
    s3s_plan *plan = NULL;
    uint64_t *bounds = malloc(((size_t)world + 1) * sizeof(*bounds));
    for (int rep = 0; rep < REPS; rep++) {
        double rss1 = rss_mb(), w0 = now(), c0 = cpu();
        if (s3s_plan_create(&plan, snap, &o, &e) != 0)
            die("plan", &e);
        best(&t_plan, w0, c0);
        rss_plan = rss_mb() - rss1;
        w0 = now();
        c0 = cpu();
        if (s3s_plan_shares(plan, world, bounds, &e) != 0)
            die("shares", &e);
        best(&t_shares_count, w0, c0);
        s3s_plan_destroy(plan);
    }
    o.balance = S3S_BALANCE_BYTES;
    if (s3s_plan_create(&plan, snap, &o, &e) != 0)
        die("plan", &e);
    for (int rep = 0; rep < REPS; rep++) {
        double w0 = now(), c0 = cpu();
        if (s3s_plan_shares(plan, world, bounds, &e) != 0)
            die("shares", &e);
        best(&t_shares_bytes, w0, c0);
    }
    /* byte balance of that cut */
    const uint32_t *order = s3s_plan_order(plan);
    double maxb = 0, total = (double)s3s_snapshot_total_bytes(snap);
    for (uint32_t k = 0; k < world; k++) {
        double sum = 0;
        for (uint64_t pos = bounds[k]; pos < bounds[k + 1]; pos++) {
            s3s_shard sh;
            s3s_plan_shard(plan, order[pos], &sh);
            sum += (double)sh.bytes;
        }
        maxb = sum > maxb ? sum : maxb;
    }
    size_t shards_unpacked = s3s_plan_shard_count(plan);
    s3s_plan_destroy(plan);
    o.shard_target_bytes = 64ull << 20;
    t0 = now();
    if (s3s_plan_create(&plan, snap, &o, &e) != 0)
        die("plan", &e);
    double t_plan_packed = now() - t0;
    size_t shards_packed = s3s_plan_shard_count(plan);
    s3s_plan_destroy(plan);

    /* memory: the snapshot's bytes (records + arena) minus key bytes, plus the plan's */
    double snap_bytes = (double)snap->count * sizeof(s3s__snap_rec) + (double)snap->arena_len;
    double per_obj_snap = (snap_bytes - (double)key_bytes) / (double)n;
    double per_obj_plan = 4.0 * (double)shards_unpacked / (double)n; /* the order */

    printf("plan_bench: %zu objects, %.1f MB of keys (%.1f B/key), %u ranks\n", n,
           (double)key_bytes / 1e6, (double)key_bytes / (double)n, world);
    printf("  build synthetic snapshot (sort + sha256): %.3f s\n", t_build);
    printf("  save snapshot file:                       %.3f s (%.0f MB)\n", t_save,
           (snap_bytes + 256) / 1e6);
    printf("  (best of %d; wall clock / CPU time)\n", REPS);
    printf("  load snapshot file (checksum + checks):   %.3f s / %.3f s cpu   goal < 2 s\n",
           t_load.wall, t_load.cpu);
    printf("  epoch permutation of %zu shards:      %.3f s / %.3f s cpu   goal < 1 s\n", n,
           t_perm.wall, t_perm.cpu);
    printf("  plan create (shards + permutation):       %.3f s / %.3f s cpu (%zu shards)\n",
           t_plan.wall, t_plan.cpu, shards_unpacked);
    printf("  plan create, packed to 64 MiB:            %.3f s (%zu shards)\n", t_plan_packed,
           shards_packed);
    printf("  all %u shares, by count:                %.3f s / %.3f s cpu\n", world,
           t_shares_count.wall, t_shares_count.cpu);
    printf("  all %u shares, by bytes:                %.3f s / %.3f s cpu (max/mean bytes "
           "%.4f)\n",
           world, t_shares_bytes.wall, t_shares_bytes.cpu, maxb / (total / world));
    printf("  memory per object beyond key bytes:       %.1f B (snapshot %.1f + plan %.1f)   "
           "goal <= 64 B\n",
           per_obj_snap + per_obj_plan, per_obj_snap, per_obj_plan);
    printf("  RSS growth: load %.0f MB (%.1f B/object incl. keys), plan %.0f MB\n", rss_snap,
           rss_snap * 1048576.0 / (double)n, rss_plan);
    free(bounds);
    s3s_snapshot_destroy(snap);
    return 0;
}
