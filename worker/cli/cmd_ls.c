/* cmd_ls.c: `s3shard ls s3://bucket/prefix [--recursive] [--json]`.
 *
 * One line per object: key, size and ETag separated by tabs (keys may hold
 * spaces); without --recursive one level, with "PRE name/" lines for
 * sub-folders as `aws s3 ls` does. --json writes one JSON object per line.
 * --recursive uses the parallel listing. A summary goes to stderr. */
#include "worker/cli/cli.h"
#include "worker/cli/cli_s3.h"

#include "s3shard/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ls_state {
    int json;
    uint64_t objects, bytes, prefixes;
    size_t strip; /* chars of the listed prefix to drop from PRE lines */
} ls_state;

static int on_object(void *ud, const char *key, uint64_t size, const char *etag, int64_t mtime)
{
    ls_state *st = ud;
    st->objects++;
    st->bytes += size;
    if (st->json) {
        char when[32] = "";
        if (mtime > 0) {
            time_t t = (time_t)mtime;
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        }
        fputs("{\"key\":", stdout);
        s3s__cli_json_string(stdout, key);
        printf(",\"size\":%llu,\"etag\":", (unsigned long long)size);
        s3s__cli_json_string(stdout, etag);
        printf(",\"last_modified\":\"%s\"}\n", when);
    } else {
        printf("%s\t%llu\t%s\n", key, (unsigned long long)size, etag);
    }
    return ferror(stdout) ? S3S_EIO : 0;
}

static int on_prefix(void *ud, const char *prefix)
{
    ls_state *st = ud;
    st->prefixes++;
    if (st->json) {
        fputs("{\"prefix\":", stdout);
        s3s__cli_json_string(stdout, prefix);
        fputs("}\n", stdout);
    } else {
        printf("PRE %s\n", strlen(prefix) >= st->strip ? prefix + st->strip : prefix);
    }
    return ferror(stdout) ? S3S_EIO : 0;
}

int s3s__cmd_ls(s3s__cli *g, int argc, char **argv)
{
    const char *uri = NULL;
    ls_state st = {0};
    int recursive = 0;
    long long parallel = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--recursive") == 0 || strcmp(argv[i], "-r") == 0)
            recursive = 1;
        else if (strcmp(argv[i], "--parallel") == 0) {
            if (i + 1 >= argc || (parallel = s3s__cli_parse_count(argv[i + 1])) < 1 ||
                parallel > 1024)
                return s3s__cli_usage_error(argv[0], "--parallel needs a number from 1 to 1024");
            i++;
        } else if (strcmp(argv[i], "--json") == 0)
            st.json = 1;
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return s3s__cli_usage_error(argv[0], "unknown option '%s'", argv[i]);
        else if (uri == NULL)
            uri = argv[i];
        else
            return s3s__cli_usage_error(argv[0], "one s3:// URI only");
    }
    if (uri == NULL)
        return s3s__cli_usage_error(argv[0], "missing s3://BUCKET[/PREFIX]");
    char *bucket = NULL, *prefix = NULL;
    int rc = s3s__cli_s3_uri(argv[0], uri, &bucket, &prefix);
    if (rc != 0)
        return rc;
    s3s_s3 *s3 = s3s__cli_s3_open(g, argv[0], 0);
    if (s3 == NULL) {
        free(bucket);
        free(prefix);
        return 1;
    }
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    /* PRE lines show the folder relative to the listed one, as aws s3 ls does. */
    const char *slash = strrchr(prefix, '/');
    st.strip = slash != NULL ? (size_t)(slash - prefix) + 1 : 0;
    double t0 = s3s__cli_now();
    if (recursive)
        rc = s3s_s3_list_parallel(s3, bucket, prefix, (unsigned)parallel, on_object, &st);
    else
        rc = s3s_s3_list_dir(s3, bucket, prefix, on_object, on_prefix, &st);
    double dt = s3s__cli_now() - t0;
    int status = 0;
    if (fflush(stdout) != 0)
        rc = rc != 0 ? rc : S3S_EIO;
    if (rc != 0) {
        status = s3s__cli_fail(argv[0], "%s",
                               rc == S3S_EIO ? "write error on stdout" : s3s_s3_errmsg(s3));
    } else {
        fprintf(stderr, "%llu objects, %llu bytes, %.0f objects/s", (unsigned long long)st.objects,
                (unsigned long long)st.bytes, dt > 0 ? (double)st.objects / dt : 0.0);
        if (st.prefixes > 0)
            fprintf(stderr, ", %llu prefixes", (unsigned long long)st.prefixes);
        fputc('\n', stderr);
    }
    s3s_s3_destroy(s3);
    free(bucket);
    free(prefix);
    return status;
}
