/* s3_client_bench.c: the S3 client library alone, for bench/s3_ls.sh and
 * bench/s3_cat.sh while (or besides) the CLI: list a prefix or read an object
 * to nowhere, and print what was done and how fast on stderr.
 *
 *   s3_client_bench ENDPOINT ls BUCKET PREFIX [PARALLELISM]   (0: sequential)
 *   s3_client_bench ENDPOINT cat BUCKET KEY [CONNECTIONS]     (1: one GET)
 * stdout: one line per key for ls, the object's bytes for cat (as the CLI).
 * Credentials from the environment (AWS_ACCESS_KEY_ID, ...). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s3shard/s3.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int print_key(void *ud, const char *key, uint64_t size, const char *etag, int64_t mtime)
{
    (void)mtime;
    (*(long *)ud)++;
    printf("%s\t%llu\t%s\n", key, (unsigned long long)size, etag);
    return 0;
}

static int write_bytes(void *ud, const void *data, size_t len)
{
    *(uint64_t *)ud += len;
    return fwrite(data, 1, len, stdout) == len ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr,
                "usage: %s ENDPOINT ls BUCKET PREFIX [PARALLELISM]\n"
                "       %s ENDPOINT cat BUCKET KEY [CONNECTIONS]\n",
                argv[0], argv[0]);
        return 2;
    }
    s3s_s3_opts o;
    s3s_s3_opts_init(&o);
    o.endpoint = argv[1];
    o.path_style = 1;
    s3s_s3 *s3 = NULL;
    if (s3s_s3_create(&s3, &o) != 0) {
        fprintf(stderr, "s3s_s3_create: %s\n", s3s_s3_last_create_error());
        return 1;
    }
    unsigned n = argc > 5 ? (unsigned)strtoul(argv[5], NULL, 10) : 0;
    double t0 = now_s();
    int rc;
    if (strcmp(argv[2], "ls") == 0) {
        long count = 0;
        rc = argc > 5 && n == 0 ? s3s_s3_list(s3, argv[3], argv[4], NULL, print_key, &count)
                                : s3s_s3_list_parallel(s3, argv[3], argv[4], n, print_key, &count);
        double dt = now_s() - t0;
        fprintf(stderr, "%ld objects in %.3f s, %.0f objects/s\n", count, dt, (double)count / dt);
    } else {
        uint64_t bytes = 0;
        rc = s3s_s3_get_parallel(s3, argv[3], argv[4], 0, S3S_TO_END, n, write_bytes, &bytes, NULL);
        double dt = now_s() - t0;
        fprintf(stderr, "%llu bytes in %.3f s, %.0f MB/s\n", (unsigned long long)bytes, dt,
                (double)bytes / dt / 1e6);
    }
    if (rc != 0)
        fprintf(stderr, "error: %s\n", s3s_s3_errmsg(s3));
    s3s_s3_destroy(s3);
    return rc == 0 ? 0 : 1;
}
