/* cmd_version.c: `s3shard version`. */
#include "worker/cli/cli.h"

#include "s3shard/version.h"

#include <stdio.h>

int s3s__cmd_version(s3s__cli *g, int argc, char **argv)
{
    (void)g;
    if (argc > 1)
        return s3s__cli_usage_error(argv[0], "unexpected argument '%s'", argv[1]);
    printf("s3shard %s\n", s3s_version());
    return 0;
}
