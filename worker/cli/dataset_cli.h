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

/* One entry of an option table: "--name VALUE" / "--name=VALUE" stores VALUE
 * in *value; a flag (value NULL) sets *flag to 1. alias, when set, is a second
 * spelling ("-o" for "--out"). */
typedef struct s3s__cli_opt {
    const char *name;
    const char *alias;
    const char **value;
    int *flag;
} s3s__cli_opt;

/* s3s__cli_opts_parse parses argv[first..argc) against the table: every
 * argument must be one of its options. Returns 0, or 2 (a usage error naming
 * the argument, already printed). A later repeat of an option wins. */
int s3s__cli_opts_parse(const char *cmd, int argc, char **argv, int first, const s3s__cli_opt *opts,
                        size_t nopts);

/* s3s__cli_topology: the rank and world size from --rank/--world-size (both
 * or neither; 0 <= R < N), else from the launcher's environment
 * (s3s_topology_detect with the resource config path rcfg). When nothing is
 * found, single (1) makes it rank 0 of 1, else it is an error. Returns 0 or an
 * exit code, having printed why. */
int s3s__cli_topology(const char *cmd, const char *rank_s, const char *world_s, const char *rcfg,
                      int single, s3s_topology *out);

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
