/* coord_bench.c: one in-process coordinator (journal on, fdatasync on the real
 * disk) hammered over tcp:// loopback by simulated ranks: threads, each with
 * its own req socket (the worker's coordinator client), looping
 * lease -> progress(done) on a Dynamic channel.
 *
 *   coord_bench [DIR] [SECONDS] [SHARDS_FOR_MEMORY]
 *
 * DIR (default: a fresh folder under the current directory) holds the state
 * dirs; SECONDS (default 3) per row. Rows at 16, 256 and 1,024 ranks print
 * requests/s, p50/p99 latency of one request, journal commits (fdatasyncs) per
 * second and requests per commit (the group-commit batch). Then the memory
 * row: the RSS a coordinator adds for an epoch of SHARDS_FOR_MEMORY shards
 * (default 10,000,000), per shard. */
#include "coordinator/coord_int.h"
#include "s3shard/coordinator.h"
#include "s3shard/dataset.h"
#include "s3shard/error.h"
#include "worker/coordclient.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    if (f != NULL)
        fclose(f);
    return kb;
}

/* A dataset of n records (an augmented manifest read from a local file) and
 * its snapshot saved where the coordinator looks for it, so nothing talks to S3. */
static int make_state(const char *dir, const char *name, size_t n, char *job, size_t jn,
                      char *state, size_t sn)
{
    char man[8192];
    snprintf(man, sizeof(man), "%s/%s.jsonl", dir, name);
    FILE *f = fopen(man, "w");
    if (f == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        fprintf(f, "{\"source-ref\":\"s3://bench/k%09zu\"}\n", i);
    fclose(f);
    s3s_source_opts so;
    s3s_source_opts_init(&so);
    so.data_type = S3S_DATA_AUGMENTED_MANIFEST;
    so.uri = man;
    const char *attrs[] = {"source-ref"};
    so.attribute_names = attrs;
    so.n_attribute_names = 1;
    s3s_snapshot *snap = NULL;
    s3s_errinfo ei;
    if (s3s_snapshot_create(&snap, &so, &ei) != 0) {
        fprintf(stderr, "snapshot: %s\n", ei.msg);
        return -1;
    }
    snprintf(state, sn, "%s/%s-state", dir, name);
    mkdir(state, 0755);
    char sp[8400];
    snprintf(sp, sizeof(sp), "%s/snapshot-train.s3ss", state);
    int rc = s3s_snapshot_save(snap, sp, &ei);
    s3s_snapshot_destroy(snap);
    unlink(man);
    if (rc != 0)
        return -1;
    snprintf(job, jn, "%s/%s-job.json", dir, name);
    f = fopen(job, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "{\"InputDataConfig\": [{\"ChannelName\": \"train\", \"DataSource\": "
            "{\"S3DataSource\": {\"S3DataType\": \"AugmentedManifestFile\", \"S3Uri\": "
            "\"s3://bench/m.jsonl\", \"AttributeNames\": [\"source-ref\"]}}}], "
            "\"S3Shard\": {\"Epochs\": 100000, \"LeaseSeconds\": 60, \"Channels\": "
            "{\"train\": {\"Distribution\": \"Dynamic\"}}}}");
    fclose(f);
    return 0;
}

typedef struct rank_arg {
    const char *url;
    uint32_t rank, world;
    volatile int *stop;
    double *lat;
    size_t nlat, cap;
    int err;
} rank_arg;

static void *rank_main(void *p)
{
    rank_arg *a = p;
    s3s__cc_opts o;
    s3s__cc_opts_init(&o);
    o.url = a->url;
    o.rank = a->rank;
    o.world_size = a->world;
    o.incarnation = 1;
    o.heartbeat = false;
    o.timeout_ms = 30000;
    const char *chs[] = {"train"};
    o.channels = chs;
    o.n_channels = 1;
    s3s__cc *cc = NULL;
    s3s__errbuf eb;
    if (s3s__cc_open(&cc, &o, &eb) != 0) {
        fprintf(stderr, "rank %u: %s\n", a->rank, eb.msg);
        a->err = 1;
        return NULL;
    }
    while (!*a->stop) {
        s3s__msg r;
        double t0 = now();
        int rc = s3s__cc_lease(cc, "train", 0, 1, &r, &eb);
        double t1 = now();
        if (rc != 0) {
            a->err = 1;
            break;
        }
        if (a->nlat < a->cap)
            a->lat[a->nlat++] = t1 - t0;
        if (r.u.grant.n == 0) {
            s3s__msg_fini(&r);
            continue;
        }
        s3s__msg_prog it = {r.u.grant.grants[0].shard, r.u.grant.grants[0].token,
                            r.u.grant.grants[0].end, true};
        s3s__msg_fini(&r);
        t0 = now();
        rc = s3s__cc_progress(cc, &it, 1, &r, &eb);
        t1 = now();
        if (rc != 0) {
            a->err = 1;
            break;
        }
        s3s__msg_fini(&r);
        if (a->nlat < a->cap)
            a->lat[a->nlat++] = t1 - t0;
    }
    s3s__cc_close(cc);
    return NULL;
}

static int row(const char *dir, uint32_t ranks, double secs, const char *job, const char *state)
{
    char url[64];
    int port = 20000 + (int)(getpid() % 20000) + (int)ranks;
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    s3s_coord_opts o;
    s3s_coord_opts_init(&o);
    o.job_path = job;
    o.state_dir = state;
    o.listen = url;
    o.world_size = ranks;
    o.contexts = ranks + 16;
    s3s_coord *c = NULL;
    char err[1024];
    if (s3s_coord_create(&c, &o, err, sizeof(err)) != 0 || s3s_coord_start(c) != 0) {
        fprintf(stderr, "coordinator: %s %s\n", err, c ? s3s_coord_errmsg(c) : "");
        s3s_coord_destroy(c);
        return -1;
    }
    (void)dir;
    volatile int stop = 0;
    rank_arg *args = calloc(ranks, sizeof(*args));
    pthread_t *th = calloc(ranks, sizeof(*th));
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 256 * 1024);
    size_t cap = 400000 / ranks + 1000;
    for (uint32_t i = 0; i < ranks; i++) {
        args[i] = (rank_arg){url, i, ranks, &stop, calloc(cap, sizeof(double)), 0, cap, 0};
        pthread_create(&th[i], &at, rank_main, &args[i]);
    }
    sleep(1); /* connections and hellos */
    s3s_coord_status s0, s1;
    s3s_coord_status_get(c, &s0);
    double t0 = now();
    usleep((useconds_t)(secs * 1e6));
    s3s_coord_status_get(c, &s1);
    double el = now() - t0;
    stop = 1;
    int bad = 0;
    size_t total = 0;
    for (uint32_t i = 0; i < ranks; i++) {
        pthread_join(th[i], NULL);
        bad |= args[i].err;
        total += args[i].nlat;
    }
    double *all = malloc((total ? total : 1) * sizeof(double));
    size_t k = 0;
    for (uint32_t i = 0; i < ranks; i++) {
        memcpy(all + k, args[i].lat, args[i].nlat * sizeof(double));
        k += args[i].nlat;
        free(args[i].lat);
    }
    qsort(all, total, sizeof(double), cmp_double);
    double req = (double)(s1.requests - s0.requests) / el;
    double commits = (double)(s1.journal_commits - s0.journal_commits) / el;
    printf("%6u ranks  %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  %6.0f commits/s  %6.1f req/commit  "
           "epoch %llu%s\n",
           ranks, req, total ? all[total / 2] * 1e3 : 0, total ? all[total * 99 / 100] * 1e3 : 0,
           commits, commits > 0 ? req / commits : 0, (unsigned long long)s1.epoch,
           bad ? "  (errors)" : "");
    fflush(stdout);
    free(all);
    free(args);
    free(th);
    pthread_attr_destroy(&at);
    s3s_coord_destroy(c);
    return 0;
}

int main(int argc, char **argv)
{
    char dir[4096];
    if (argc > 1) {
        snprintf(dir, sizeof(dir), "%s", argv[1]);
        mkdir(dir, 0755);
    } else {
        snprintf(dir, sizeof(dir), "coord_bench.%d", (int)getpid());
        mkdir(dir, 0755);
    }
    double secs = argc > 2 ? atof(argv[2]) : 3.0;
    size_t mem_shards = argc > 3 ? (size_t)atoll(argv[3]) : 10000000u;
    printf("coord_bench: lease + progress(done) per rank in a loop, tcp loopback, journal "
           "fdatasync in %s, %.1f s per row\n",
           dir, secs);
    uint32_t ranks[] = {16, 256, 1024};
    for (size_t i = 0; i < 3; i++) {
        char job[4200], state[4200], name[32];
        snprintf(name, sizeof(name), "r%u", ranks[i]);
        if (make_state(dir, name, 200000, job, sizeof(job), state, sizeof(state)) != 0)
            return 1;
        if (row(dir, ranks[i], secs, job, state) != 0)
            return 1;
    }
    if (mem_shards > 0) {
        char job[4200], state[4200];
        if (make_state(dir, "mem", mem_shards, job, sizeof(job), state, sizeof(state)) != 0)
            return 1;
        long before = rss_kb();
        double t0 = now();
        s3s_coord_opts o;
        s3s_coord_opts_init(&o);
        o.job_path = job;
        o.state_dir = state;
        o.world_size = 256;
        s3s_coord *c = NULL;
        char err[1024];
        if (s3s_coord_create(&c, &o, err, sizeof(err)) != 0) {
            fprintf(stderr, "coordinator: %s\n", err);
            return 1;
        }
        double el = now() - t0;
        long after = rss_kb();
        s3s_coord_status st;
        s3s_coord_status_get(c, &st);
        printf("memory: %llu-shard epoch: coordinator RSS +%.1f MiB = %.1f bytes/shard "
               "(snapshot, served snapshot file, plan, scheduler; ledger grows by 32 B/shard "
               "as the epoch is read); create + replay + epoch begin %.2f s\n",
               (unsigned long long)st.shards_total, (double)(after - before) / 1024.0,
               (double)(after - before) * 1024.0 / (double)st.shards_total, el);
        s3s_coord_destroy(c);
    }
    return 0;
}
