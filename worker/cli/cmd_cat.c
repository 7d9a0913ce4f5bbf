/* cmd_cat.c: `s3shard cat s3://bucket/key [--range A-B]`: the bytes on stdout.
 * Big objects are fetched as parallel ranges, still written in order. */
#include "worker/cli/cli.h"
#include "worker/cli/cli_s3.h"

#include "s3shard/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_out(void *ud, const void *p, size_t n)
{
    const char *c = p;
    (void)ud;
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return S3S_EIO;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* "A-B" (inclusive) or "A-" (to the end). */
static int parse_range(const char *s, uint64_t *off, uint64_t *len)
{
    char *end = NULL;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long a = strtoull(s, &end, 10);
    if (*end != '-')
        return -1;
    const char *b = end + 1;
    *off = a;
    if (*b == '\0') {
        *len = S3S_TO_END;
        return 0;
    }
    if (*b < '0' || *b > '9')
        return -1;
    unsigned long long z = strtoull(b, &end, 10);
    if (*end != '\0' || z < a)
        return -1;
    *len = z - a + 1;
    return 0;
}

int s3s__cmd_cat(s3s__cli *g, int argc, char **argv)
{
    const char *uri = NULL;
    uint64_t off = 0, len = S3S_TO_END;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--range") == 0) {
            if (i + 1 >= argc || parse_range(argv[i + 1], &off, &len) != 0)
                return s3s__cli_usage_error(argv[0], "--range needs A-B or A- (bytes, inclusive)");
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return s3s__cli_usage_error(argv[0], "unknown option '%s'", argv[i]);
        } else if (uri == NULL) {
            uri = argv[i];
        } else {
            return s3s__cli_usage_error(argv[0], "one s3:// URI only");
        }
    }
    if (uri == NULL)
        return s3s__cli_usage_error(argv[0], "missing s3://BUCKET/KEY");
    char *bucket = NULL, *key = NULL;
    int rc = s3s__cli_s3_uri(argv[0], uri, &bucket, &key);
    if (rc != 0)
        return rc;
    if (key[0] == '\0') {
        free(bucket);
        free(key);
        return s3s__cli_usage_error(argv[0], "'%s' names a bucket, not an object", uri);
    }
    s3s_s3 *s3 = s3s__cli_s3_open(g, argv[0], 0);
    int status = 1;
    if (s3 != NULL) {
        rc = s3s_s3_get_parallel(s3, bucket, key, off, len, 0, write_out, NULL, NULL);
        if (rc == 0)
            status = 0;
        else if (rc == S3S_EIO)
            status = s3s__cli_fail(argv[0], "write error on stdout");
        else
            status = s3s__cli_fail(argv[0], "%s", s3s_s3_errmsg(s3));
    }
    s3s_s3_destroy(s3);
    free(bucket);
    free(key);
    return status;
}
