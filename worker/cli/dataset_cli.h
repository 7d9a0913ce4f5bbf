/* dataset_cli.h: what the dataset subcommands (spec, snapshot, plan) share:
 * option parsing, the S3 client from the global flags, and finding a
 * channel's snapshot (given, cached in the state dir, or created). */
#ifndef S3S_CLI_DATASET_H
#define S3S_CLI_DATASET_H

#include "worker/cli/cli.h"

#include "s3shard/dataset.h"
#include "s3shard/s3.h"

/* s3s__cli_optval: when argv[*i] is "--name VALUE" or "--name=VALUE", returns
 * VALUE (advancing *i past it) and sets *missing when the value is absent. */
const char *s3s__cli_optval(int argc, char **argv, int *i, const char *name, int *missing);

/* s3s__cli_s3: the S3 client of the global flags, created on first use (NULL
 * and a message on stderr when it cannot be made). */
s3s_s3 *s3s__cli_s3(s3s__cli *g, const char *cmd);
void s3s__cli_s3_close(void);

/* s3s__cli_channel_snapshot gets the snapshot of a job channel: from `given`
 * (a file or s3:// URI) when set; else from the cache file
 * <StateDir>/snapshots/<channel>.snap; else by enumerating the source and then
 * saving the cache. Returns 0 or an exit code (1), having printed why. */
int s3s__cli_channel_snapshot(s3s__cli *g, const char *cmd, const s3s_job *job,
                              const s3s_channel *ch, const char *given, s3s_snapshot **out);

/* s3s__cli_load_snapshot loads a snapshot file or s3:// URI. */
int s3s__cli_load_snapshot(s3s__cli *g, const char *cmd, const char *where, s3s_snapshot **out);

#endif
