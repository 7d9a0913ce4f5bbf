/* coord_bench.c: one in-process coordinator (journal on, fdatasync on the real
 * disk) hammered over tcp:// loopback by simulated ranks: threads, each with
 * an nng req context (64 per socket) driven by its aio callback, looping
 * lease -> progress(done) on a Dynamic channel.
 *
 *   coord_bench [DIR] [SECONDS] [SHARDS_FOR_MEMORY]
 *
 * DIR (default: a fresh folder under the current directory) holds the state
 * dirs; SECONDS (default 3) per row, 0 skips the rows. Rows at 16, 256 and 1,024 ranks print
 * requests/s, p50/p99 latency of one request, journal commits (fdatasyncs) per
 * second and requests per commit (the group-commit batch). Then the memory
 * row: the RSS a coordinator adds for an epoch of SHARDS_FOR_MEMORY shards
 * (default 10,000,000), per shard. */
#include "coordinator/coord_int.h"
#include "s3shard/coordinator.h"
#include "s3shard/dataset.h"
#include "s3shard/error.h"
#include "common/proto/msg.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

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

/* One simulated rank: an nng req context driven by its aio callback
 * (hello, then lease -> progress(done) in a loop), so a thousand ranks cost a
 * few sockets and nng's own threads, not a thousand blocked threads. */
typedef struct sim {
    nng_ctx ctx;
    nng_aio *aio;
    uint64_t wid, seq;
    uint32_t rank, world;
    int phase; /* 0 sending, 1 receiving */
    int last; /* type of the last request */
    double t0;
    double *lat;
    size_t nlat, cap;
    volatile int *stop;
    int err, idle;
    s3s__buf buf;
} sim;

static const s3s__proto_cfg g_cfg = {.max_msg = S3S_PROTO_MAX_MSG_DEFAULT};
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_idle;

static void sim_send(sim *x, s3s__msg *m)
{
    m->sender = x->wid;
    m->seq = ++x->seq;
    x->last = (int)m->type;
    s3s__buf_reset(&x->buf);
    nng_msg *nm = NULL;
    if (s3s__msg_encode(&x->buf, m, &g_cfg, NULL) != 0 || nng_msg_alloc(&nm, 0) != 0 ||
        nng_msg_append(nm, x->buf.data, x->buf.len) != 0) {
        x->err = 1;
        return;
    }
    x->phase = 0;
    x->t0 = now();
    nng_aio_set_msg(x->aio, nm);
    nng_ctx_send(x->ctx, x->aio);
}

static void sim_lease(sim *x)
{
    s3s__msg m;
    s3s__msg_init(&m, S3S_MSG_LEASE, 0, 0);
    snprintf(m.u.lease.channel, sizeof(m.u.lease.channel), "train");
    m.u.lease.max_shards = 1;
    sim_send(x, &m);
}

static void sim_cb(void *p)
{
    sim *x = p;
    if (nng_aio_result(x->aio) != 0) {
        if (x->phase == 0)
            nng_msg_free(nng_aio_get_msg(x->aio));
        x->err = 1;
        pthread_mutex_lock(&g_mu);
        x->idle = 1;
        g_idle++;
        pthread_mutex_unlock(&g_mu);
        return;
    }
    if (x->phase == 0) {
        x->phase = 1;
        nng_ctx_recv(x->ctx, x->aio);
        return;
    }
    nng_msg *nm = nng_aio_get_msg(x->aio);
    double t1 = now();
    s3s__msg r;
    int rc = s3s__msg_decode(&r, nng_msg_body(nm), nng_msg_len(nm), &g_cfg, NULL);
    nng_msg_free(nm);
    if (rc != 0 || r.type == S3S_MSG_ERROR)
        x->err = 1;
    if (x->last != S3S_MSG_HELLO && x->nlat < x->cap)
        x->lat[x->nlat++] = t1 - x->t0;
    if (*x->stop || rc != 0) {
        if (rc == 0)
            s3s__msg_fini(&r);
        pthread_mutex_lock(&g_mu);
        x->idle = 1;
        g_idle++;
        pthread_mutex_unlock(&g_mu);
        return;
    }
    if (r.type == S3S_MSG_GRANT && r.u.grant.n > 0) {
        s3s__msg_prog it = {r.u.grant.grants[0].shard, r.u.grant.grants[0].token,
                            r.u.grant.grants[0].end, true};
        s3s__msg m;
        s3s__msg_init(&m, S3S_MSG_PROGRESS, 0, 0);
        m.u.progress.n = 1;
        m.u.progress.items = &it;
        sim_send(x, &m);
    } else {
        sim_lease(x);
    }
    s3s__msg_fini(&r);
}

static void sim_hello(sim *x)
{
    s3s__msg m;
    s3s__msg_init(&m, S3S_MSG_HELLO, 0, 0);
    snprintf(m.u.hello.host, sizeof(m.u.hello.host), "bench");
    m.u.hello.rank = x->rank;
    m.u.hello.local_rank = S3S_PROTO_RANK_NONE;
    m.u.hello.world_size = x->world;
    m.u.hello.pid = 1;
    m.u.hello.incarnation = 1;
    m.u.hello.n_channels = 1;
    snprintf(m.u.hello.channels[0], sizeof(m.u.hello.channels[0]), "train");
    sim_send(x, &m);
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
    uint32_t nsock = (ranks + 63) / 64;
    nng_socket *socks = calloc(nsock, sizeof(*socks));
    sim *sims = calloc(ranks, sizeof(*sims));
    size_t cap = 2000000 / ranks + 1000;
    for (uint32_t i = 0; i < nsock; i++) {
        nng_req0_open(&socks[i]);
        nng_dial(socks[i], url, NULL, 0);
    }
    g_idle = 0;
    for (uint32_t i = 0; i < ranks; i++) {
        sim *x = &sims[i];
        x->wid = 0x1000u + i;
        x->rank = i;
        x->world = ranks;
        x->stop = &stop;
        x->cap = cap;
        x->lat = calloc(cap, sizeof(double));
        s3s__buf_init(&x->buf, 1 << 20);
        nng_aio_alloc(&x->aio, sim_cb, x);
        nng_ctx_open(&x->ctx, socks[i % nsock]);
        sim_hello(x);
    }
    sleep(1); /* connections and hellos */
    s3s_coord_status s0, s1;
    s3s_coord_status_get(c, &s0);
    double t0 = now();
    usleep((useconds_t)(secs * 1e6));
    s3s_coord_status_get(c, &s1);
    double el = now() - t0;
    stop = 1;
    for (int w = 0; w < 3000; w++) {
        pthread_mutex_lock(&g_mu);
        int idle = g_idle;
        pthread_mutex_unlock(&g_mu);
        if (idle == (int)ranks)
            break;
        usleep(10000);
    }
    int bad = 0;
    size_t total = 0;
    for (uint32_t i = 0; i < ranks; i++) {
        nng_aio_stop(sims[i].aio);
        bad |= sims[i].err;
        total += sims[i].nlat;
    }
    double *all = malloc((total ? total : 1) * sizeof(double));
    size_t k = 0;
    for (uint32_t i = 0; i < ranks; i++) {
        memcpy(all + k, sims[i].lat, sims[i].nlat * sizeof(double));
        k += sims[i].nlat;
        free(sims[i].lat);
        nng_aio_free(sims[i].aio);
        nng_ctx_close(sims[i].ctx);
        s3s__buf_fini(&sims[i].buf);
    }
    for (uint32_t i = 0; i < nsock; i++)
        nng_close(socks[i]);
    free(socks);
    free(sims);
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
    for (size_t i = 0; secs > 0 && i < 3; i++) {
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
               "(snapshot, plan, scheduler with its ledger reserve); create + replay + epoch "
               "begin %.2f s\n",
               (unsigned long long)st.shards_total, (double)(after - before) / 1024.0,
               (double)(after - before) * 1024.0 / (double)st.shards_total, el);
        s3s_coord_destroy(c);
    }
    return 0;
}
