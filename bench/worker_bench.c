/* worker_bench: the worker's reader against any S3 endpoint.
 *
 *   worker_bench put ENDPOINT BUCKET PREFIX COUNT SIZE     upload COUNT objects of SIZE bytes
 *   worker_bench read ENDPOINT BUCKET PREFIX [options]     read every object under PREFIX
 *        in assignment order through s3s_worker_next, print objects/s and MB/s
 *     --connections N   fetch threads (default 16)
 *     --threads T       loader threads taking items (default 1)
 *     --chunk BYTES     read size (default 1 MiB)
 *     --cache DIR       block cache folder (default none)
 *     --budget BYTES    prefetch memory budget (default 256 MiB)
 *     --block BYTES     block size (default 8 MiB)
 *
 * Output (one line, easy to parse): "objects=N bytes=B seconds=S objects_per_s=X
 * MB_per_s=Y gets=G cache_hits=H". The driver bench/worker_bench.sh runs it
 * against s3rver with the two standard data sets (2,000 x 40 KB and 1 x 1 GiB). */
#include "s3shard/dataset.h"
#include "s3shard/error.h"
#include "s3shard/s3.h"
#include "s3shard/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s3opts(s3s_s3_opts *o, const char *endpoint)
{
    s3s_s3_opts_init(o);
    o->endpoint = endpoint;
    if (getenv("AWS_ACCESS_KEY_ID") == NULL) {
        o->access_key_id = "S3RVER";
        o->secret_access_key = "S3RVER";
    }
    if (getenv("AWS_REGION") == NULL)
        o->region = "us-east-1";
}

typedef struct putctx {
    const char *endpoint, *bucket, *prefix;
    size_t size;
    long next, count;
    pthread_mutex_t mu;
    int failed;
} putctx;

static void *put_main(void *arg)
{
    putctx *p = arg;
    s3s_s3_opts o;
    s3opts(&o, p->endpoint);
    s3s_s3 *s3 = NULL;
    if (s3s_s3_create(&s3, &o) != 0) {
        p->failed = 1;
        return NULL;
    }
    char *data = malloc(p->size ? p->size : 1);
    for (size_t i = 0; i < p->size; i++)
        data[i] = (char)(i * 131 + 7);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        long i = p->next++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->count)
            break;
        char key[1024];
        snprintf(key, sizeof(key), "%s%06ld", p->prefix, i);
        memcpy(data, &i, p->size < sizeof(i) ? p->size : sizeof(i));
        if (s3s_s3_put(s3, p->bucket, key, data, p->size, NULL) != 0) {
            fprintf(stderr, "put %s: %s\n", key, s3s_s3_errmsg(s3));
            p->failed = 1;
            break;
        }
    }
    free(data);
    s3s_s3_destroy(s3);
    return NULL;
}

static int cmd_put(char **argv)
{
    putctx p = {.endpoint = argv[0], .bucket = argv[1], .prefix = argv[2]};
    p.count = atol(argv[3]);
    p.size = (size_t)strtoull(argv[4], NULL, 10);
    pthread_mutex_init(&p.mu, NULL);
    pthread_t t[16];
    int nt = p.size > (64u << 20) ? 1 : 16;
    for (int i = 0; i < nt; i++)
        pthread_create(&t[i], NULL, put_main, &p);
    for (int i = 0; i < nt; i++)
        pthread_join(t[i], NULL);
    pthread_mutex_destroy(&p.mu);
    return p.failed;
}

typedef struct readctx {
    s3s_worker *w;
    size_t chunk;
    pthread_mutex_t mu;
    uint64_t objects, bytes;
    int failed;
} readctx;

static void *read_main(void *arg)
{
    readctx *c = arg;
    char *buf = malloc(c->chunk);
    s3s_item *it;
    uint64_t objects = 0, bytes = 0;
    int rc;
    while ((rc = s3s_worker_next(c->w, &it)) == 0) {
        s3s_reader *r = s3s_item_reader(it);
        size_t got;
        while ((rc = s3s_reader_read(r, buf, c->chunk, &got)) == 0 && got > 0)
            bytes += got;
        if (rc != 0) {
            fprintf(stderr, "read %s: %s\n", s3s_item_info_get(it)->key, s3s_reader_errmsg(r));
            c->failed = 1;
        }
        s3s_item_close(it);
        objects++;
        if (rc != 0)
            break;
    }
    if (rc != 0 && rc != S3S_EEOF) {
        fprintf(stderr, "next: %s\n", s3s_worker_errmsg(c->w));
        c->failed = 1;
    }
    free(buf);
    pthread_mutex_lock(&c->mu);
    c->objects += objects;
    c->bytes += bytes;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static int cmd_read(int argc, char **argv)
{
    const char *endpoint = argv[0], *bucket = argv[1], *prefix = argv[2];
    s3s_worker_opts o;
    s3s_worker_opts_init(&o);
    s3opts(&o.s3, endpoint);
    int threads = 1;
    size_t chunk = 1 << 20;
    for (int i = 3; i + 1 < argc; i += 2) {
        unsigned long long v = strtoull(argv[i + 1], NULL, 10);
        if (strcmp(argv[i], "--connections") == 0)
            o.connections = (unsigned)v;
        else if (strcmp(argv[i], "--threads") == 0)
            threads = (int)v;
        else if (strcmp(argv[i], "--chunk") == 0)
            chunk = (size_t)v;
        else if (strcmp(argv[i], "--cache") == 0)
            o.cache_dir = argv[i + 1];
        else if (strcmp(argv[i], "--budget") == 0)
            o.prefetch_bytes = v;
        else if (strcmp(argv[i], "--block") == 0)
            o.block_size = v;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (threads < 1 || threads > 64 || chunk == 0)
        return 2;
    /* The listing is not part of the measure: SageMaker and the peers list too,
     * and a job lists once and reuses the snapshot. */
    s3s_s3 *s3 = NULL;
    if (s3s_s3_create(&s3, &o.s3) != 0) {
        fprintf(stderr, "client: %s\n", s3s_s3_last_create_error());
        return 1;
    }
    char uri[2048];
    snprintf(uri, sizeof(uri), "s3://%s/%s", bucket, prefix);
    s3s_source_opts so;
    s3s_source_opts_init(&so);
    so.uri = uri;
    so.s3 = s3;
    s3s_snapshot *snap = NULL;
    s3s_errinfo ei = {0};
    if (s3s_snapshot_create(&snap, &so, &ei) != 0) {
        fprintf(stderr, "list: %s\n", ei.msg);
        s3s_s3_destroy(s3);
        return 1;
    }
    s3s_s3_destroy(s3);
    o.snapshot = snap;
    o.plan.shard_target_bytes = 0;
    double t0 = now();
    readctx c = {.chunk = chunk};
    pthread_mutex_init(&c.mu, NULL);
    if (s3s_worker_create(&c.w, &o, &ei) != 0) {
        fprintf(stderr, "worker: %s\n", ei.msg);
        s3s_snapshot_destroy(snap);
        return 1;
    }
    pthread_t t[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, read_main, &c);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double secs = now() - t0;
    s3s_worker_stats st;
    s3s_worker_stats_get(c.w, &st);
    s3s_worker_destroy(c.w);
    s3s_snapshot_destroy(snap);
    pthread_mutex_destroy(&c.mu);
    printf("objects=%llu bytes=%llu seconds=%.3f objects_per_s=%.1f MB_per_s=%.1f gets=%llu "
           "cache_hits=%llu\n",
           (unsigned long long)c.objects, (unsigned long long)c.bytes, secs,
           (double)c.objects / secs, (double)c.bytes / secs / 1e6, (unsigned long long)st.gets,
           (unsigned long long)st.cache_hits);
    return c.failed;
}

int main(int argc, char **argv)
{
    if (argc >= 7 && strcmp(argv[1], "put") == 0)
        return cmd_put(argv + 2);
    if (argc >= 5 && strcmp(argv[1], "read") == 0)
        return cmd_read(argc - 2, argv + 2);
    fprintf(stderr,
            "usage: worker_bench put ENDPOINT BUCKET PREFIX COUNT SIZE\n"
            "       worker_bench read ENDPOINT BUCKET PREFIX [--connections N] "
            "[--threads T] [--chunk B] [--cache DIR] [--budget B] [--block B]\n");
    return 2;
}
