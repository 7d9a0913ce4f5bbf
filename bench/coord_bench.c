/* coord_bench.c: one in-process coordinator (journal on, fdatasync on the real
 * disk) hammered over tcp:// loopback by simulated ranks in a child process
 * (this program with --client): nng req contexts (64 per socket) driven by
 * their aio callbacks.
 *
 *   coord_bench [DIR] [SECONDS] [SHARDS_FOR_MEMORY] [RANKS,RANKS,...] [mixed|heartbeat|both]
 *               [LOADS]
 *
 * DIR (default: a fresh folder under the current directory) holds the state
 * dirs; SECONDS (default 3) per row, 0 skips the rows; RANKS default
 * 16,256,1024. Workloads: "mixed" loops lease -> progress(done) (every
 * progress waits for an fdatasync), "heartbeat" leases once and then loops
 * heartbeats (nothing waits for the disk). LOADS (default "closed,50000"), a
 * comma-separated list, each one row per rank count and workload:
 *   closed   closed loop: every rank keeps one request outstanding (the
 *            saturation throughput; by Little's law its mean latency is
 *            ranks / throughput, so its latency says nothing about a p99 goal)
 *   N        open loop at an offered rate of N requests/s in all, evenly
 *            spaced, the ranks in turn (rank n % RANKS sends the n-th request)
 *   pN       the same with Poisson arrivals (exponential gaps)
 * In the open loop each request has a scheduled send time; a rank whose
 * previous request is still outstanding sends it when that one is answered (a
 * rank cannot report progress before it holds the lease), and its latency is
 * measured from the scheduled time, not from the late send (no coordinated
 * omission). Each row prints requests/s (achieved), p50/p99/p99.9 latency of
 * all requests and p50/p99 per type, journal fdatasyncs per second, requests
 * per fdatasync (the group-commit batch), the fdatasync latency measured in
 * the same window, and the CPU of the coordinator process (also per request)
 * and of the ranks' process (percent of one core). Then the memory row: the
 * RSS a coordinator adds for an epoch of SHARDS_FOR_MEMORY shards (default
 * 10,000,000), per shard. */
#include "coordinator/coord_int.h"
#include "s3shard/coordinator.h"
#include "s3shard/dataset.h"
#include "s3shard/error.h"
#include "common/proto/msg.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
 * few sockets and nng's own threads, not a thousand blocked threads.
 *
 * The ranks run in a child process (this program again, `--client`), so the
 * CPU of the coordinator and of the simulated ranks is measured apart. The
 * req sockets' resend timer is off: nng 1.5 keeps one sorted timer list per
 * process and inserts each request's resend timer by walking it, which with a
 * thousand ranks in one process cost a quarter of the client's CPU (perf); a
 * real rank is its own process with one timer. Nothing is lost on loopback. */
typedef struct sample {
    float t; /* closed loop: completion; open loop: scheduled send; seconds since start */
    float lat; /* seconds: closed loop from the send, open loop from the scheduled time */
    uint8_t type; /* request type */
} sample;

#define BACKLOG_CAP 4096 /* scheduled sends a busy rank can owe */

typedef struct sim {
    nng_ctx ctx;
    nng_aio *aio;
    uint64_t wid, seq, tok;
    uint32_t rank, world;
    int phase; /* 0 sending, 1 receiving */
    int last; /* type of the last request */
    double t0; /* when the latency of the request in flight counts from */
    sample *lat;
    size_t nlat, cap;
    volatile int *stop;
    int err, idle;
    s3s__buf buf;
    /* open loop: */
    pthread_mutex_t mu;
    bool busy; /* a request is in flight */
    bool next_hb; /* heartbeat workload: the lease is held, heartbeats next */
    s3s__msg_prog prog; /* the progress to send next (valid when has_prog) */
    bool has_prog;
    double backlog[BACKLOG_CAP]; /* scheduled times owed, oldest first (ring) */
    uint32_t bl_head, bl_n;
    uint64_t overflow; /* scheduled sends dropped: the backlog was full */
} sim;

static const s3s__proto_cfg g_cfg = {.max_msg = S3S_PROTO_MAX_MSG_DEFAULT};
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_idle;
static double g_start;
static int g_heartbeat; /* the no-fsync workload: one lease, then heartbeats */
static int g_open; /* open loop: sends are issued by the pacer */

static void sim_send(sim *x, s3s__msg *m, double t0)
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
    x->t0 = t0;
    nng_aio_set_msg(x->aio, nm);
    nng_ctx_send(x->ctx, x->aio);
}

static void sim_lease(sim *x, double t0)
{
    s3s__msg m;
    s3s__msg_init(&m, S3S_MSG_LEASE, 0, 0);
    snprintf(m.u.lease.channel, sizeof(m.u.lease.channel), "train");
    m.u.lease.max_shards = 1;
    sim_send(x, &m, t0);
}

/* The rank's next request, by what it holds: the progress of a granted
 * shard, a heartbeat of the held lease, or else a lease. */
static void sim_next(sim *x, double t0)
{
    s3s__msg m;
    if (x->has_prog) {
        x->has_prog = false;
        s3s__msg_init(&m, S3S_MSG_PROGRESS, 0, 0);
        m.u.progress.n = 1;
        m.u.progress.items = &x->prog;
        sim_send(x, &m, t0);
    } else if (x->next_hb) {
        s3s__msg_init(&m, S3S_MSG_HEARTBEAT, 0, 0);
        m.u.heartbeat.n = 1;
        m.u.heartbeat.tokens = &x->tok;
        sim_send(x, &m, t0);
    } else {
        sim_lease(x, t0);
    }
}

static void sim_idle(sim *x)
{
    pthread_mutex_lock(&g_mu);
    x->idle = 1;
    g_idle++;
    pthread_mutex_unlock(&g_mu);
}

/* Open loop: the pacer's send scheduled at ts. Sent now when the rank is
 * free, else owed (sent when the request in flight is answered, its latency
 * still counted from ts). */
static void sim_issue(sim *x, double ts)
{
    pthread_mutex_lock(&x->mu);
    if (x->busy || x->err) {
        if (x->bl_n < BACKLOG_CAP)
            x->backlog[(x->bl_head + x->bl_n++) % BACKLOG_CAP] = ts;
        else
            x->overflow++;
        pthread_mutex_unlock(&x->mu);
        return;
    }
    sim_next(x, ts);
    x->busy = !x->err;
    pthread_mutex_unlock(&x->mu);
}

static void sim_cb(void *p)
{
    sim *x = p;
    if (nng_aio_result(x->aio) != 0) {
        if (x->phase == 0)
            nng_msg_free(nng_aio_get_msg(x->aio));
        x->err = 1;
        if (g_open) {
            pthread_mutex_lock(&x->mu);
            x->busy = false;
            pthread_mutex_unlock(&x->mu);
        } else {
            sim_idle(x);
        }
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
    if (x->nlat < x->cap) {
        sample *sm = &x->lat[x->nlat++];
        sm->t = (float)((g_open ? x->t0 : t1) - g_start);
        sm->lat = (float)(t1 - x->t0);
        sm->type = (uint8_t)x->last;
    }
    /* What the reply gives the rank to send next. */
    x->has_prog = false;
    if (rc == 0 && r.type == S3S_MSG_GRANT && r.u.grant.n > 0) {
        x->tok = r.u.grant.grants[0].token;
        if (g_heartbeat) {
            x->next_hb = true;
        } else {
            x->prog = (s3s__msg_prog){r.u.grant.grants[0].shard, r.u.grant.grants[0].token,
                                      r.u.grant.grants[0].end, true};
            x->has_prog = true;
        }
    }
    if (rc == 0)
        s3s__msg_fini(&r);
    if (g_open) {
        pthread_mutex_lock(&x->mu);
        if (rc != 0 || x->err || x->bl_n == 0) {
            x->busy = false;
            pthread_mutex_unlock(&x->mu);
            return;
        }
        double ts = x->backlog[x->bl_head];
        x->bl_head = (x->bl_head + 1) % BACKLOG_CAP;
        x->bl_n--;
        sim_next(x, ts);
        x->busy = !x->err;
        pthread_mutex_unlock(&x->mu);
        return;
    }
    if (*x->stop || rc != 0) {
        sim_idle(x);
        return;
    }
    sim_next(x, now());
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
    sim_send(x, &m, now());
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double pct(const float *v, size_t n, double q)
{
    return n ? (double)v[(size_t)((double)(n - 1) * q)] * 1e3 : 0;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* The open loop's pacer: issues the n-th request at g_start + t_n to rank
 * n % ranks, t_n evenly spaced at 1/rate or with exponential gaps (Poisson);
 * until *until (seconds since start) or stop. It sleeps to the next due time
 * and issues everything due, so its own lateness counts in the latency. */
typedef struct pacer {
    sim *sims;
    uint32_t ranks;
    double rate, t_begin, t_end;
    int poisson;
    uint64_t issued;
    pthread_t thr;
} pacer;

static void *pacer_run(void *arg)
{
    pacer *pc = arg;
    uint64_t n = 0;
    double t = pc->t_begin;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    while (t < pc->t_end) {
        double wake = g_start + t;
        double d = wake - now();
        if (d > 0) {
            struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
            nanosleep(&ts, NULL);
        }
        double nw = now() - g_start;
        while (t <= nw && t < pc->t_end) {
            sim_issue(&pc->sims[n % pc->ranks], g_start + t);
            n++;
            if (pc->poisson) { /* xorshift64*, then an exponential gap */
                rng ^= rng >> 12;
                rng ^= rng << 25;
                rng ^= rng >> 27;
                double u = (double)((rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
                t += -log(1.0 - u) / pc->rate;
            } else {
                t = pc->t_begin + (double)n / pc->rate;
            }
        }
    }
    pc->issued = n;
    return NULL;
}

/* The child: RANKS simulated ranks against URL; after a second of warm-up
 * prints "go", measures SECS, prints "done" and the numbers of the window.
 * rate > 0: open loop at that offered rate (requests/s), else closed loop. */
static int client_main(const char *url, uint32_t ranks, double secs, int heartbeat, double rate,
                       int poisson)
{
    g_heartbeat = heartbeat;
    g_open = rate > 0;
    g_start = now();
    volatile int stop = 0;
    uint32_t nsock = (ranks + 63) / 64;
    nng_socket *socks = calloc(nsock, sizeof(*socks));
    sim *sims = calloc(ranks, sizeof(*sims));
    size_t cap = (g_open ? (size_t)(rate * (secs + 2.0) * 1.2) : 4000000) / ranks + 1000;
    for (uint32_t i = 0; i < nsock; i++) {
        if (nng_req0_open(&socks[i]) != 0)
            return 1;
        nng_socket_set_ms(socks[i], NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        if (nng_dial(socks[i], url, NULL, 0) != 0)
            return 1;
    }
    for (uint32_t i = 0; i < ranks; i++) {
        sim *x = &sims[i];
        x->wid = 0x1000u + i;
        x->rank = i;
        x->world = ranks;
        x->stop = &stop;
        x->cap = cap;
        x->lat = calloc(cap, sizeof(sample));
        pthread_mutex_init(&x->mu, NULL);
        x->busy = true; /* the hello */
        s3s__buf_init(&x->buf, 1 << 20);
        nng_aio_alloc(&x->aio, sim_cb, x);
        nng_ctx_open(&x->ctx, socks[i % nsock]);
        sim_hello(x);
    }
    /* Open loop: the pacer starts after the hellos (0.5 s) and runs to the
     * end of the window; warm-up until 1 s as in the closed loop. */
    pacer pc = {sims, ranks, rate, 0.5, 0, poisson, 0, 0};
    pc.t_end = now() - g_start + 1.0 + secs;
    if (g_open && pthread_create(&pc.thr, NULL, pacer_run, &pc) != 0)
        return 1;
    usleep(1000000); /* connections, hellos, warm-up */
    printf("go\n");
    fflush(stdout);
    double w0 = now() - g_start, c0 = cpu_s();
    usleep((useconds_t)(secs * 1e6));
    double w1 = now() - g_start, c1 = cpu_s();
    printf("done\n");
    fflush(stdout);
    stop = 1;
    if (g_open) { /* the pacer ends by itself; then every rank pays what it owes */
        pthread_join(pc.thr, NULL);
        for (uint32_t i = 0; i < ranks; i++)
            sim_idle(&sims[i]);
        for (int w = 0; w < 3000; w++) {
            int busy = 0;
            for (uint32_t i = 0; i < ranks; i++) {
                pthread_mutex_lock(&sims[i].mu);
                busy += sims[i].busy;
                pthread_mutex_unlock(&sims[i].mu);
            }
            if (busy == 0)
                break;
            usleep(10000);
        }
    }
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
    uint64_t overflow = 0, owed = 0;
    for (uint32_t i = 0; i < ranks; i++) {
        nng_aio_stop(sims[i].aio);
        bad |= sims[i].err;
        total += sims[i].nlat;
        overflow += sims[i].overflow;
        owed += sims[i].bl_n;
    }
    float *all = malloc((total + 1) * sizeof(float)), *lease = malloc((total + 1) * sizeof(float)),
          *prog = malloc((total + 1) * sizeof(float));
    size_t na = 0, nl = 0, np = 0;
    for (uint32_t i = 0; i < ranks; i++) {
        for (size_t k = 0; k < sims[i].nlat; k++) {
            const sample *sm = &sims[i].lat[k];
            if (sm->t < w0 || sm->t > w1 || sm->type == S3S_MSG_HELLO)
                continue;
            all[na++] = sm->lat;
            if (sm->type == S3S_MSG_LEASE)
                lease[nl++] = sm->lat;
            else
                prog[np++] = sm->lat;
        }
        free(sims[i].lat);
        nng_aio_free(sims[i].aio);
        nng_ctx_close(sims[i].ctx);
        s3s__buf_fini(&sims[i].buf);
        pthread_mutex_destroy(&sims[i].mu);
    }
    for (uint32_t i = 0; i < nsock; i++)
        nng_close(socks[i]);
    free(socks);
    free(sims);
    qsort(all, na, sizeof(float), cmp_float);
    qsort(lease, nl, sizeof(float), cmp_float);
    qsort(prog, np, sizeof(float), cmp_float);
    /* in the open loop a request that was never answered (stopped, owed at
     * the end, dropped from a full backlog) is an error of the row */
    if (overflow > 0 || owed > 0)
        bad = 1;
    printf("%.0f %.3f %.3f %.3f %.3f %.3f %.3f %.3f %.3f %.3f %d\n", (double)na / (w1 - w0),
           pct(all, na, 0.5), pct(all, na, 0.99), pct(all, na, 0.999), pct(lease, nl, 0.5),
           pct(lease, nl, 0.99), pct(prog, np, 0.5), pct(prog, np, 0.99), (c1 - c0) / (w1 - w0),
           g_open ? (double)pc.issued / (pc.t_end - pc.t_begin) : 0, bad);
    fflush(stdout);
    free(all);
    free(lease);
    free(prog);
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int row(const char *self, uint32_t ranks, double secs, const char *job, const char *state,
               int heartbeat, const char *load)
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
    s3s__journal *jr = s3s__coord_core(c)->journal;
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    char nr[16], ns[32];
    snprintf(nr, sizeof(nr), "%u", ranks);
    snprintf(ns, sizeof(ns), "%.3f", secs);
    char *args[] = {(char *)self,          "--client",   url, nr, ns,
                    heartbeat ? "1" : "0", (char *)load, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    pid_t pid;
    extern char **environ;
    int sr = posix_spawn(&pid, self, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (sr != 0) {
        close(pfd[0]);
        s3s_coord_destroy(c);
        return -1;
    }
    FILE *in = fdopen(pfd[0], "r");
    char line[512];
    s3s_coord_status s0, s1;
    memset(&s0, 0, sizeof(s0));
    memset(&s1, 0, sizeof(s1));
    double t0 = 0, t1 = 0, cpu0 = 0, cpu1 = 0;
    uint64_t sync0 = 0;
    size_t nsync = 0;
    uint32_t *syncs = calloc(S3S__JOURNAL_SYNC_RING, sizeof(uint32_t));
    double r_req = 0, a50 = 0, a99 = 0, a999 = 0, l50 = 0, l99 = 0, p50 = 0, p99 = 0, ccpu = 0,
           offered = 0;
    int bad = 1, got = 0;
    while (fgets(line, sizeof(line), in) != NULL) {
        if (strcmp(line, "go\n") == 0) {
            s3s_coord_status_get(c, &s0);
            sync0 = s3s__journal_sync_times(jr, UINT64_MAX, syncs, 0, &nsync);
            cpu0 = cpu_s();
            t0 = now();
        } else if (strcmp(line, "done\n") == 0) {
            s3s_coord_status_get(c, &s1);
            cpu1 = cpu_s();
            t1 = now();
            s3s__journal_sync_times(jr, sync0, syncs, S3S__JOURNAL_SYNC_RING, &nsync);
        } else if (sscanf(line, "%lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %d", &r_req, &a50, &a99,
                          &a999, &l50, &l99, &p50, &p99, &ccpu, &offered, &bad) == 11) {
            got = 1;
        }
    }
    fclose(in);
    int status = 0;
    waitpid(pid, &status, 0);
    double el = t1 - t0;
    if (!got || el <= 0) {
        fprintf(stderr, "coord_bench: the client failed (status %d)\n", status);
        free(syncs);
        s3s_coord_destroy(c);
        return -1;
    }
    qsort(syncs, nsync, sizeof(uint32_t), cmp_u32);
    double req = (double)(s1.requests - s0.requests) / el;
    double commits = (double)(s1.journal_commits - s0.journal_commits) / el;
    char lname[32];
    if (offered > 0)
        snprintf(lname, sizeof(lname), "%s %.0f/s", load[0] == 'p' ? "poisson" : "open", offered);
    else
        snprintf(lname, sizeof(lname), "closed");
    printf("%-9s %-14s %5u ranks %7.0f req/s  all p50 %6.2f p99 %6.2f p99.9 %6.2f ms | lease p50 "
           "%6.2f p99 %6.2f | %s p50 %6.2f p99 %6.2f | %4.0f syncs/s %5.1f req/sync, fdatasync "
           "p50 %5.2f p99 %5.2f ms | CPU coordinator %3.0f%% (%4.1f us/req) ranks %3.0f%% of one "
           "core%s\n",
           heartbeat ? "heartbeat" : "lease+prg", lname, ranks, req, a50, a99, a999, l50, l99,
           heartbeat ? "heartbeat" : "progress ", p50, p99, commits,
           commits > 0 ? req / commits : 0, nsync ? syncs[nsync / 2] / 1e3 : 0,
           nsync ? syncs[(nsync - 1) * 99 / 100] / 1e3 : 0, 100 * (cpu1 - cpu0) / el,
           req > 0 ? 1e6 * (cpu1 - cpu0) / el / req : 0, 100 * ccpu, bad ? "  (errors)" : "");
    (void)r_req;
    fflush(stdout);
    free(syncs);
    s3s_coord_destroy(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "--client") == 0) {
        const char *load = argv[6];
        int poisson = load[0] == 'p';
        double rate = strcmp(load, "closed") == 0 ? 0 : atof(load + poisson);
        return client_main(argv[2], (uint32_t)atoi(argv[3]), atof(argv[4]), atoi(argv[5]), rate,
                           poisson);
    }
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl <= 0)
        return 1;
    self[sl] = 0;
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
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    printf("coord_bench: simulated ranks over tcp loopback, journal fdatasync in %s, %.1f s per "
           "row, load average %.1f %.1f %.1f\n",
           dir, secs, load[0], load[1], load[2]);
    uint32_t ranks[16] = {16, 256, 1024};
    size_t nranks = 3;
    if (argc > 4) { /* RANKS: a comma-separated list */
        nranks = 0;
        for (char *t = strtok(argv[4], ","); t != NULL && nranks < 16; t = strtok(NULL, ","))
            ranks[nranks++] = (uint32_t)atoi(t);
    }
    /* WORKLOAD: "mixed" (lease -> progress(done), every progress waits for
     * the disk), "heartbeat" (one lease, then heartbeats: nothing waits for
     * the disk) or "both" (default). */
    const char *wl = argc > 5 ? argv[5] : "both";
    int workload_mixed = strcmp(wl, "heartbeat") != 0, workload_hb = strcmp(wl, "mixed") != 0;
    /* LOADS: "closed" (closed loop), "N" (open loop at N requests/s, evenly
     * spaced) or "pN" (open loop, Poisson), comma-separated. */
    char loadarg[256];
    snprintf(loadarg, sizeof(loadarg), "%s", argc > 6 ? argv[6] : "closed,50000");
    char *loads[16];
    size_t nloads = 0;
    for (char *t = strtok(loadarg, ","); t != NULL && nloads < 16; t = strtok(NULL, ","))
        loads[nloads++] = t;
    for (size_t i = 0; secs > 0 && i < nranks; i++) {
        char job[4200], state[4200], name[64];
        snprintf(name, sizeof(name), "r%u", ranks[i]);
        for (int hb = 0; hb < 2; hb++) {
            if (hb == 1 && !workload_hb)
                break;
            if (hb == 0 && !workload_mixed)
                continue;
            for (size_t k = 0; k < nloads; k++) { /* a fresh state dir per row */
                snprintf(name, sizeof(name), "r%u%s-%s", ranks[i], hb ? "hb" : "", loads[k]);
                if (make_state(dir, name, 200000, job, sizeof(job), state, sizeof(state)) != 0)
                    return 1;
                if (row(self, ranks[i], secs, job, state, hb, loads[k]) != 0)
                    return 1;
            }
        }
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
