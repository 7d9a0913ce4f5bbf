/* journal_bench.c: journal appends per second with group commit, fdatasync on
 * the real disk.
 *
 *   journal_bench [DIR] [SECONDS]
 *
 * DIR (default: a fresh folder under the current directory, so the build
 * tree's disk, not a tmpfs) holds the state dirs; SECONDS (default 2) per row.
 * Rows: one thread appending batches of 1, 16 and 256 records then committing
 * (the coordinator's server loop: append what a round of requests produced,
 * commit, then reply); and 16 threads each calling append_sync (group commit
 * among concurrent callers). Each row prints records/s, commits (fdatasyncs)/s
 * and the p50/p99 latency of one commit. The peer to compare with is the disk's
 * own fdatasync rate: the batch-1 row is that rate, and the ratio of the others
 * to it is what group commit buys. Each row runs twice in a row, plain (the
 * file grows with every commit) and "+prealloc" (the coordinator's setting:
 * commits overwrite zeros written ahead, so the fdatasync does not change the
 * file size), to compare the two on the same disk in the same minute. */
#include "common/journal/journal.h"
#include "s3shard/error.h"

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

static void rec(s3s__jrec *r, uint64_t k)
{
    memset(r, 0, sizeof *r);
    r->type = S3S_JREC_COMMITTED;
    r->time_ms = 1700000000000ull + k;
    r->epoch = 3;
    r->shard = k % 1000003;
    r->token = 1 + k;
    r->worker = 0x1234567890abcdefull;
    r->offset = k * 4096;
}

static s3s__journal *open_fresh(const char *root, const char *name, bool prealloc)
{
    char dir[4096 + 64];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    s3s__journal_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.prealloc = prealloc;
    s3s__journal *j;
    s3s__errbuf eb;
    if (s3s__journal_open(&j, &o, NULL, NULL, NULL, &eb) != 0) {
        fprintf(stderr, "journal_bench: %s\n", eb.msg);
        exit(1);
    }
    return j;
}

static void row_batches(const char *root, int batch, double secs, bool prealloc)
{
    char name[32];
    snprintf(name, sizeof name, "batch%d%s", batch, prealloc ? "+prealloc" : "");
    s3s__journal *j = open_fresh(root, name, prealloc);
    size_t cap = 1 << 20, n = 0;
    double *lat = malloc(cap * sizeof *lat);
    uint64_t k = 0;
    s3s__errbuf eb;
    double t0 = now(), t;
    do {
        for (int b = 0; b < batch; b++) {
            s3s__jrec r;
            rec(&r, k++);
            if (s3s__journal_append(j, &r, NULL, &eb) != 0)
                goto fail;
        }
        double c0 = now();
        if (s3s__journal_commit(j, &eb) != 0)
            goto fail;
        t = now();
        if (n < cap)
            lat[n++] = t - c0;
    } while (t - t0 < secs);
    double el = t - t0;
    qsort(lat, n, sizeof *lat, cmp_double);
    printf("%-34s %12.0f %12.0f %10.1f %10.1f\n", name, (double)k / el, (double)n / el,
           lat[n / 2] * 1e6, lat[(size_t)((double)n * 0.99)] * 1e6);
    free(lat);
    s3s__journal_close(j);
    return;
fail:
    fprintf(stderr, "journal_bench: %s\n", eb.msg);
    exit(1);
}

typedef struct targ {
    s3s__journal *j;
    double until;
    uint64_t n;
    int id;
} targ;

static void *syncer(void *p)
{
    targ *a = p;
    s3s__errbuf eb;
    while (now() < a->until) {
        s3s__jrec r;
        rec(&r, a->n++ * 64 + (uint64_t)a->id);
        if (s3s__journal_append_sync(a->j, &r, &eb) != 0) {
            fprintf(stderr, "journal_bench: %s\n", eb.msg);
            exit(1);
        }
    }
    return NULL;
}

static void row_threads(const char *root, int threads, double secs, bool prealloc)
{
    char name[48];
    snprintf(name, sizeof name, "threads%d-append_sync%s", threads, prealloc ? "+prealloc" : "");
    s3s__journal *j = open_fresh(root, name, prealloc);
    pthread_t th[64];
    targ args[64];
    double t0 = now();
    for (int t = 0; t < threads; t++) {
        args[t] = (targ){.j = j, .until = t0 + secs, .id = t};
        pthread_create(&th[t], NULL, syncer, &args[t]);
    }
    uint64_t total = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        total += args[t].n;
    }
    double el = now() - t0;
    s3s__journal_stats st;
    s3s__journal_stats_get(j, &st);
    printf("%-34s %12.0f %12.0f %10s %10s   (%.1f records per fdatasync)\n", name,
           (double)total / el, (double)st.syncs / el, "-", "-",
           st.syncs ? (double)total / (double)st.syncs : 0.0);
    s3s__journal_close(j);
}

static void rmtree(const char *root)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "journal_bench: could not remove %s\n", root);
}

int main(int argc, char **argv)
{
    char root[4096];
    double secs = argc > 2 ? atof(argv[2]) : 2.0;
    if (argc > 1 && argv[1][0] == '\0') {
        fprintf(stderr, "usage: journal_bench [DIR] [SECONDS]\n");
        return 2;
    }
    if (argc > 1) {
        snprintf(root, sizeof root, "%s", argv[1]);
        if (mkdir(root, 0755) != 0 && errno != EEXIST) {
            perror(root);
            return 1;
        }
    } else {
        snprintf(root, sizeof root, "journal_bench.XXXXXX");
        if (mkdtemp(root) == NULL) {
            perror("mkdtemp");
            return 1;
        }
    }
    s3s__jrec r;
    rec(&r, 12345);
    s3s__buf b;
    s3s__buf_init(&b, 4096);
    s3s__jrec_encode(&b, &r, NULL);
    printf("journal_bench: dir %s, %.1f s per row, committed record of %zu bytes + 8 framing\n",
           root, secs, b.len);
    s3s__buf_fini(&b);
    printf("%-34s %12s %12s %10s %10s\n", "row", "records/s", "fsyncs/s", "p50 us", "p99 us");
    int batches[] = {1, 16, 256};
    for (size_t k = 0; k < sizeof batches / sizeof *batches; k++)
        for (int pre = 0; pre < 2; pre++)
            row_batches(root, batches[k], secs, pre);
    for (int pre = 0; pre < 2; pre++)
        row_threads(root, 16, secs, pre);
    if (argc <= 1)
        rmtree(root);
    return 0;
}
