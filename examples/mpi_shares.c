/* mpi_shares.c: the no-server MPI mode. Every rank computes its own share of
 * an epoch from the job spec and the snapshot, with no coordinator; rank 0
 * gathers all shares and checks that they are disjoint and complete (or, for
 * FullyReplicated, that every rank got everything).
 *
 *   mpirun -np 4 example_mpi_shares --job job.json --channel train --epoch 0
 *          [--snapshot FILE]
 *
 * Without --snapshot the channel must be a local directory (FileSystemDataSource),
 * enumerated by each rank; with S3 sources, make the snapshot once with
 * `s3shard snapshot create` and pass it. Exit 0 when the check passes. */
#include <s3shard/s3shard.h>

#include <mpi.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int die(const char *what, const s3s_errinfo *e)
{
    fprintf(stderr, "mpi_shares: %s: %s\n", what, e ? e->msg : "");
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    const char *job_path = NULL, *channel = NULL, *snap_path = NULL;
    uint64_t epoch = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--job") == 0)
            job_path = argv[i + 1];
        else if (strcmp(argv[i], "--channel") == 0)
            channel = argv[i + 1];
        else if (strcmp(argv[i], "--epoch") == 0)
            epoch = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--snapshot") == 0)
            snap_path = argv[i + 1];
    }
    if (job_path == NULL || channel == NULL)
        return die("usage: --job FILE --channel NAME [--epoch E] [--snapshot FILE]", NULL);

    /* 1. Every rank, on its own: job, snapshot, plan, share. */
    s3s_errinfo e = {0};
    s3s_job *job = NULL;
    s3s_snapshot *snap = NULL;
    s3s_plan *plan = NULL;
    if (s3s_job_load(&job, job_path, &e) != 0)
        return die("job", &e);
    const s3s_channel *ch = s3s_job_channel_find(job, channel);
    if (ch == NULL)
        return die("no such channel", NULL);
    if (snap_path != NULL) {
        if (s3s_snapshot_load(&snap, snap_path, &e) != 0)
            return die("snapshot", &e);
    } else {
        s3s_source_opts so;
        s3s_source_opts_from_channel(&so, ch, NULL);
        if (s3s_snapshot_create(&snap, &so, &e) != 0)
            return die("enumerating the channel", &e);
    }
    s3s_plan_opts po;
    s3s_plan_opts_from_channel(&po, ch, epoch);
    s3s_share share;
    if (s3s_plan_create(&plan, snap, &po, &e) != 0 ||
        s3s_plan_share(plan, (uint32_t)rank, (uint32_t)world, &share, &e) != 0)
        return die("plan", &e);

    /* 2. The entries this rank reads, in order. */
    const uint32_t *order = s3s_plan_order(plan);
    uint64_t n = 0, bytes = 0;
    for (uint64_t pos = share.begin; pos < share.end; pos++) {
        s3s_shard sh;
        s3s_plan_shard(plan, order[pos], &sh);
        n += sh.count;
        bytes += sh.bytes;
    }
    uint64_t *mine = malloc((n ? n : 1) * sizeof(*mine)), k = 0;
    for (uint64_t pos = share.begin; pos < share.end; pos++) {
        s3s_shard sh;
        s3s_plan_shard(plan, order[pos], &sh);
        for (uint64_t i = 0; i < sh.count; i++)
            mine[k++] = sh.first + i;
    }

    /* 3. Rank 0 gathers every share and checks them. */
    int count = (int)n;
    int *counts = rank == 0 ? malloc((size_t)world * sizeof(int)) : NULL;
    int *displs = rank == 0 ? malloc((size_t)world * sizeof(int)) : NULL;
    uint64_t *allbytes = rank == 0 ? malloc((size_t)world * sizeof(uint64_t)) : NULL;
    MPI_Gather(&count, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Gather(&bytes, 1, MPI_UINT64_T, allbytes, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    uint64_t *all = NULL;
    int total = 0;
    if (rank == 0) {
        for (int r = 0; r < world; r++) {
            displs[r] = total;
            total += counts[r];
        }
        all = malloc((size_t)(total ? total : 1) * sizeof(*all));
    }
    MPI_Gatherv(mine, count, MPI_UINT64_T, all, counts, displs, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    int status = 0;
    if (rank == 0) {
        size_t entries = s3s_snapshot_count(snap);
        int replicated = ch->distribution == S3S_DIST_FULLY_REPLICATED;
        unsigned *seen = calloc(entries ? entries : 1, sizeof(unsigned));
        for (int i = 0; i < total; i++) {
            if (all[i] >= entries) {
                fprintf(stderr, "mpi_shares: entry %" PRIu64 " out of range\n", all[i]);
                status = 1;
                break;
            }
            seen[all[i]]++;
        }
        unsigned want = replicated ? (unsigned)world : 1;
        for (size_t i = 0; status == 0 && i < entries; i++)
            if (seen[i] != want) {
                s3s_entry ent;
                s3s_snapshot_entry(snap, i, &ent);
                fprintf(stderr, "mpi_shares: %.*s is in %u shares, expected %u\n", (int)ent.key_len,
                        ent.key, seen[i], want);
                status = 1;
            }
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int r = 0; r < world; r++) {
            lo = allbytes[r] < lo ? allbytes[r] : lo;
            hi = allbytes[r] > hi ? allbytes[r] : hi;
        }
        printf("%s: %zu entries, %d ranks, %s; bytes per rank min %" PRIu64 " max %" PRIu64 "\n",
               status ? "FAILED" : "ok", entries, world,
               replicated ? "every rank has all" : "disjoint and complete", lo, hi);
        free(seen);
    }
    MPI_Bcast(&status, 1, MPI_INT, 0, MPI_COMM_WORLD);
    free(all);
    free(counts);
    free(displs);
    free(allbytes);
    free(mine);
    s3s_plan_destroy(plan);
    s3s_snapshot_destroy(snap);
    s3s_job_destroy(job);
    MPI_Finalize();
    return status;
}
