/* cli.h: shared pieces of the s3shard command-line program.
 *
 * Each subcommand lives in its own cmd_<name>.c and is listed in the table in
 * main.c. A subcommand gets argv with argv[0] = its name and the global flags
 * already removed and parsed into the s3s__cli struct. It returns the process
 * exit code: 0 success, 1 failure, 2 usage error. */
#ifndef S3S_CLI_H
#define S3S_CLI_H

#include <stdint.h>
#include <stdio.h>

typedef struct s3s__cli {
    const char *endpoint; /* --endpoint URL */
    const char *region; /* --region R */
    const char *profile; /* --profile P */
    int path_style; /* --path-style: 1, else -1 (auto) */
    int verbose; /* -v (repeatable) */
    int help; /* --help / -h seen anywhere */
} s3s__cli;

typedef int (*s3s__cli_fn)(s3s__cli *g, int argc, char **argv);

typedef struct s3s__cli_cmd {
    const char *name;
    s3s__cli_fn fn;
    const char *summary; /* one line for `s3shard --help` */
    const char *usage; /* full text for `s3shard NAME --help` */
} s3s__cli_cmd;

/* Subcommands (one per cmd_*.c). */
int s3s__cmd_version(s3s__cli *g, int argc, char **argv);
int s3s__cmd_spec(s3s__cli *g, int argc, char **argv);
int s3s__cmd_snapshot(s3s__cli *g, int argc, char **argv);
int s3s__cmd_plan(s3s__cli *g, int argc, char **argv);
int s3s__cmd_sigv4(s3s__cli *g, int argc, char **argv);
int s3s__cmd_ls(s3s__cli *g, int argc, char **argv);
int s3s__cmd_cat(s3s__cli *g, int argc, char **argv);
int s3s__cmd_cp(s3s__cli *g, int argc, char **argv);
int s3s__cmd_status(s3s__cli *g, int argc, char **argv);
int s3s__cmd_consume(s3s__cli *g, int argc, char **argv);
int s3s__cmd_run(s3s__cli *g, int argc, char **argv);
int s3s__cmd_fetch(s3s__cli *g, int argc, char **argv);

/* s3s__cli_usage_error prints "s3shard NAME: message" and the usage, returns 2. */
int s3s__cli_usage_error(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s3s__cli_fail prints "s3shard NAME: message" to stderr and returns 1. */
int s3s__cli_fail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s3s__cli_parse_u64 parses a whole decimal number (no sign, no trailing
 * bytes, no overflow) into *out. Returns 0, or -1 for NULL or anything else. */
int s3s__cli_parse_u64(const char *s, uint64_t *out);
/* s3s__cli_find returns the table entry for name, or NULL. */
const s3s__cli_cmd *s3s__cli_find(const char *name);

#endif
