/* cmd_spec.c: `s3shard spec check JOB.json`: validate a job spec and print it
 * resolved, every default filled in. */
#include "worker/cli/cli.h"

#include "s3shard/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int s3s__cmd_spec(s3s__cli *g, int argc, char **argv)
{
    (void)g;
    if (argc < 2 || strcmp(argv[1], "check") != 0)
        return s3s__cli_usage_error(argv[0], "expected 'check'");
    if (argc != 3)
        return s3s__cli_usage_error(argv[0], "expected one job spec file");
    s3s_job *job = NULL;
    s3s_errinfo e = {0};
    if (s3s_job_load(&job, argv[2], &e) != 0)
        return s3s__cli_fail(argv[0], "%s", e.msg);
    char *js = NULL;
    int rc = s3s_job_to_json(job, &js, &e);
    if (rc == 0)
        printf("%s\n", js);
    free(js);
    s3s_job_destroy(job);
    return rc == 0 ? 0 : s3s__cli_fail(argv[0], "%s", e.msg);
}
