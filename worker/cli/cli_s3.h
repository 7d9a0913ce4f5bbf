/* cli_s3.h: what the S3 subcommands (ls, cat, cp) share: opening a client
 * from the global flags, parsing s3:// arguments, JSON strings, timing. */
#ifndef S3S_CLI_S3_H
#define S3S_CLI_S3_H

#include <stdint.h>
#include <stdio.h>

#include "s3shard/s3.h"
#include "worker/cli/cli.h"

/* s3s__cli_s3_opts fills o from the global flags (endpoint, region, profile,
 * path style, -v). max_connections 0 keeps the default. */
void s3s__cli_s3_opts(const s3s__cli *g, s3s_s3_opts *o, unsigned max_connections);
/* s3s__cli_s3_open opens a client or prints "s3shard CMD: ..." with the reason
 * and a hint, returning NULL. */
s3s_s3 *s3s__cli_s3_open(const s3s__cli *g, const char *cmd, unsigned max_connections);
/* s3s__cli_s3_uri parses an s3:// argument or prints a usage error. Returns 0
 * or 2 (the usage exit code). */
int s3s__cli_s3_uri(const char *cmd, const char *arg, char **bucket, char **key);
/* s3s__cli_json_string writes s as a JSON string (quoted, escaped). */
void s3s__cli_json_string(FILE *f, const char *s);
/* s3s__cli_now returns monotonic seconds. */
double s3s__cli_now(void);
/* s3s__cli_parse_size parses a decimal count ("8", "16"); -1 on error. */
long long s3s__cli_parse_count(const char *s);

#endif
