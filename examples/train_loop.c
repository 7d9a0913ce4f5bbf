/* train_loop.c: a small "training loop" over the s3shard worker API, the
 * shape a user copies into a data loader.
 *
 *   example_train_loop --job job.json [--channel NAME] [--rank R --world-size N]
 *                      [--epoch E] [--cache-dir DIR] [--record-bytes B]
 *
 * The worker hands out this rank's items (objects) epoch after epoch, in the
 * static plan's order, prefetching the next ones; the loop reads each item
 * in fixed-size "samples" (--record-bytes, default 4096), "trains" on them
 * (here: a running FNV-1a hash of the bytes), and commits its position after
 * every 16 samples so that a stopped job could resume mid-object. The S3
 * endpoint and credentials come from the usual AWS variables
 * (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...). Without --rank/--world-size the
 * topology is read from the environment (S3SHARD_RANK/S3SHARD_WORLD_SIZE set
 * by `s3shard run`, else torch, Open MPI, PMI, Slurm, SageMaker).
 *
 * Output: one line per item, "EPOCH POSITION KEY SIZE FNV1A64", then a
 * summary line on stderr. Exit 0 on success, 1 on failure, 2 on bad usage. */
#include <s3shard/s3shard.h>

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;

static void on_term(int sig)
{
    (void)sig;
    stop_requested = 1; /* finish the current sample, commit, leave */
}

static int usage(void)
{
    fprintf(stderr,
            "usage: example_train_loop --job JOB.json [--channel NAME] [--rank R "
            "--world-size N] [--epoch E] [--cache-dir DIR] [--record-bytes B]\n");
    return 2;
}

static int env_u32(const char *name, uint32_t *out)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        return -1;
    *out = (uint32_t)strtoul(v, NULL, 10);
    return 0;
}

int main(int argc, char **argv)
{
    const char *job_path = NULL, *channel = NULL, *cache_dir = NULL;
    long rank = -1, world = -1;
    uint64_t epoch = 0, record = 4096;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--job") == 0)
            job_path = argv[i + 1];
        else if (strcmp(argv[i], "--channel") == 0)
            channel = argv[i + 1];
        else if (strcmp(argv[i], "--rank") == 0)
            rank = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--world-size") == 0)
            world = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--epoch") == 0)
            epoch = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--cache-dir") == 0)
            cache_dir = argv[i + 1];
        else if (strcmp(argv[i], "--record-bytes") == 0)
            record = strtoull(argv[i + 1], NULL, 10);
        else
            return usage();
    }
    if (job_path == NULL || record == 0 || record > (64u << 20))
        return usage();

    s3s_errinfo err = {0};
    s3s_job *job = NULL;
    if (s3s_job_load(&job, job_path, &err) != 0) {
        fprintf(stderr, "train_loop: %s\n", err.msg);
        return 1;
    }
    /* Who am I: flags, then what `s3shard run` exported, then the launcher. */
    s3s_topology topo = {0};
    if (rank >= 0 && world > 0) {
        topo.rank = (uint32_t)rank;
        topo.world_size = (uint32_t)world;
    } else if (env_u32("S3SHARD_RANK", &topo.rank) != 0 ||
               env_u32("S3SHARD_WORLD_SIZE", &topo.world_size) != 0) {
        if (s3s_topology_detect(&topo, NULL, &err) != 0) {
            topo.rank = 0; /* a single process */
            topo.world_size = 1;
        }
    }

    s3s_worker_opts o;
    s3s_worker_opts_init(&o);
    o.job = job;
    o.channel = channel; /* NULL: the job's first channel */
    o.rank = topo.rank;
    o.world_size = topo.world_size;
    o.first_epoch = epoch;
    o.cache_dir = cache_dir;
    o.auto_commit = 0; /* we commit ourselves, at sample boundaries */
    s3s_worker *w = NULL;
    if (s3s_worker_create(&w, &o, &err) != 0) {
        fprintf(stderr, "train_loop: %s\n", err.msg);
        s3s_job_destroy(job);
        return 1;
    }
    signal(SIGTERM, on_term);

    uint8_t *sample = malloc(record);
    uint64_t items = 0, bytes = 0;
    int rc = sample ? 0 : 1;
    while (rc == 0 && !stop_requested) {
        s3s_item *item = NULL;
        int e = s3s_worker_next(w, &item);
        if (e == S3S_EEOF)
            break; /* every epoch done */
        if (e != 0) {
            fprintf(stderr, "train_loop: %s\n", s3s_worker_errmsg(w));
            rc = 1;
            break;
        }
        const s3s_item_info *in = s3s_item_info_get(item);
        s3s_reader *r = s3s_item_reader(item);
        uint64_t pos = in->offset, hash = 0xcbf29ce484222325ull;
        unsigned since_commit = 0;
        for (;;) {
            /* One sample: record bytes (the last one may be shorter). */
            size_t want = (size_t)(record < in->size - pos ? record : in->size - pos), got = 0;
            while (got < want) {
                size_t n = 0;
                if ((e = s3s_reader_read(r, sample + got, want - got, &n)) != 0 || n == 0)
                    break;
                got += n;
            }
            if (e != 0) {
                fprintf(stderr, "train_loop: %s: %s\n", in->key, s3s_reader_errmsg(r));
                rc = 1;
                break;
            }
            for (size_t i = 0; i < got; i++) /* the "training step" */
                hash = (hash ^ sample[i]) * 0x100000001b3ull;
            pos += got;
            bytes += got;
            if (++since_commit == 16 || pos == in->size) {
                s3s_item_commit(item, pos); /* durable with a coordinator */
                since_commit = 0;
            }
            if (pos == in->size || got == 0 || stop_requested)
                break;
        }
        if (rc == 0 && pos == in->size) {
            printf("%" PRIu64 " %" PRIu64 " %s %" PRIu64 " %016" PRIx64 "\n", in->epoch,
                   in->position, in->key, in->size, hash);
            items++;
        }
        s3s_item_close(item); /* releases the item at its last commit */
    }
    s3s_worker_stats st;
    s3s_worker_stats_get(w, &st);
    fprintf(stderr,
            "train_loop: rank %u of %u: %" PRIu64 " items, %" PRIu64 " bytes, %" PRIu64
            " GETs, %" PRIu64 " cache hits%s\n",
            topo.rank, topo.world_size, items, bytes, st.gets, st.cache_hits,
            stop_requested ? " (stopped by SIGTERM)" : "");
    free(sample);
    s3s_worker_destroy(w);
    s3s_job_destroy(job);
    return rc;
}
