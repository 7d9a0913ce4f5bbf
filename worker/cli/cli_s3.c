/* cli_s3.c: shared pieces of the S3 subcommands (see cli_s3.h). */
#include "worker/cli/cli_s3.h"

#include "common/util/log.h"
#include "s3shard/error.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

void s3s__cli_s3_opts(const s3s__cli *g, s3s_s3_opts *o, unsigned max_connections)
{
    s3s_s3_opts_init(o);
    o->endpoint = g->endpoint;
    o->region = g->region;
    o->profile = g->profile;
    o->path_style = g->path_style;
    o->verbose = g->verbose > 0;
    if (max_connections > 0)
        o->max_connections = max_connections;
    if (g->verbose > 1)
        s3s__log_set_level(S3S_LOG_DEBUG);
}

s3s_s3 *s3s__cli_s3_open(const s3s__cli *g, const char *cmd, unsigned max_connections)
{
    s3s_s3_opts o;
    s3s_s3 *s3 = NULL;
    s3s__cli_s3_opts(g, &o, max_connections);
    int rc = s3s_s3_create(&s3, &o);
    if (rc != 0) {
        const char *why = s3s_s3_last_create_error();
        s3s__cli_fail(cmd, "cannot open the S3 client: %s", why[0] ? why : s3s_strerror(rc));
        if (rc == S3S_ECREDS)
            fprintf(stderr,
                    "hint: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                    "or use --profile with ~/.aws/credentials\n");
        else if (rc == S3S_ECONFIG)
            fprintf(stderr, "hint: --endpoint http://HOST:PORT (or $AWS_ENDPOINT_URL)\n");
        return NULL;
    }
    return s3;
}

int s3s__cli_s3_uri(const char *cmd, const char *arg, char **bucket, char **key)
{
    int rc = s3s_uri_parse(arg, bucket, key);
    if (rc == S3S_ENOMEM)
        return s3s__cli_fail(cmd, "out of memory");
    if (rc != 0)
        return s3s__cli_usage_error(cmd, "'%s' is not an s3://BUCKET/KEY URI", arg);
    return 0;
}

void s3s__cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

double s3s__cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long long s3s__cli_parse_count(const char *s)
{
    char *end = NULL;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    long long v = strtoll(s, &end, 10);
    return *end == '\0' ? v : -1;
}
