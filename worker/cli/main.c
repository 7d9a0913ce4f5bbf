/* main.c: the s3shard program: global flags, then a subcommand. */
#include "worker/cli/cli.h"

#include "s3shard/s3shard.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const s3s__cli_cmd commands[] = {
    {"version", s3s__cmd_version, "print the version", "usage: s3shard version\n"},
    {"ls", s3s__cmd_ls, "list objects: key, size, ETag per line",
     "usage: s3shard ls s3://BUCKET[/PREFIX] [--recursive [--parallel N]] [--json]\n"
     "\n"
     "Without --recursive: one level, sub-folders as 'PRE name/' lines (like aws s3 ls).\n"
     "With --recursive: every object under the prefix, listed in parallel (still in key\n"
     "order); --parallel N caps the concurrent list requests (default 32; 1: one page after\n"
     "another, best for servers that serialize listings, like s3rver).\nEach object line is "
     "KEY<TAB>SIZE<TAB>ETAG; --json prints one JSON object per\n"
     "line ({\"key\",\"size\",\"etag\",\"last_modified\"} or {\"prefix\"}).\n"
     "stderr gets a summary: N objects, B bytes, X objects/s.\n"},
    {"cat", s3s__cmd_cat, "write an object (or a byte range of it) to stdout",
     "usage: s3shard cat s3://BUCKET/KEY [--range A-B]\n"
     "\n"
     "--range A-B  bytes A to B inclusive (A- : from A to the end).\n"
     "Big objects are fetched as parallel ranged GETs and written in order.\n"},
    {"cp", s3s__cmd_cp, "copy files to or from S3, in parallel",
     "usage: s3shard cp SRC DST [--recursive] [--jobs N]\n"
     "\n"
     "One side is s3://BUCKET/KEY, the other a local path.\n"
     "  s3shard cp file s3://b/dir/        upload to s3://b/dir/file\n"
     "  s3shard cp -r folder s3://b/dir     upload every file below folder\n"
     "  s3shard cp s3://b/key local         download one object\n"
     "  s3shard cp -r s3://b/dir local      download every object under dir/\n"
     "--jobs N  files copied at once (default 16). Downloads are written to a temporary\n"
     "file and renamed into place, so an interrupted copy leaves no partial file.\n"
     "Keys that would leave the destination folder (.., absolute) are refused.\n"},
    {"spec", s3s__cmd_spec, "validate a job spec and print it resolved",
     "usage: s3shard spec check JOB.json\n"
     "\n"
     "Validates the job spec (SageMaker's InputDataConfig plus the \"S3Shard\" key) and\n"
     "prints it with every default filled in. Errors name the file, line and column\n"
     "(JSON syntax) or the JSON path (rules). Exit 0 valid, 1 invalid.\n"},
    {"snapshot", s3s__cmd_snapshot, "enumerate a dataset once; show or verify a snapshot",
     "usage: s3shard snapshot create --job JOB.json --channel NAME [--out FILE|s3://URI]\n"
     "       s3shard snapshot create --source URI [--type S3Prefix|ManifestFile|\n"
     "               AugmentedManifestFile|Directory] [--attributes a,b-ref]\n"
     "               [--manifest-metadata List|Head|None] [--skip-bad-records]\n"
     "               --out FILE|s3://URI\n"
     "       s3shard snapshot show FILE|s3://URI [--keys] [--limit N]\n"
     "       s3shard snapshot verify FILE|s3://URI [--hash SHA256]\n"
     "\n"
     "create with --job and no --out writes <StateDir>/snapshots/<channel>.snap, the\n"
     "file `plan` reads. verify checks the file checksum, the entry order and the\n"
     "content hash (and that it equals --hash). See docs/dataset.md.\n"},
    {"plan", s3s__cmd_plan, "print one rank's share of an epoch (no coordinator needed)",
     "usage: s3shard plan --job JOB.json --channel NAME --epoch E\n"
     "                    [--rank R --world-size N] [--format keys|json]\n"
     "                    [--snapshot FILE|s3://URI] [--resource-config PATH]\n"
     "\n"
     "Without --rank/--world-size the topology comes from torch (RANK, WORLD_SIZE,\n"
     "LOCAL_RANK), Open MPI (OMPI_COMM_WORLD_RANK/_SIZE/_LOCAL_RANK), PMI (PMI_RANK,\n"
     "PMI_SIZE), Slurm (SLURM_PROCID, SLURM_NTASKS), then SageMaker's resourceconfig.json\n"
     "(--resource-config, $S3SHARD_RESOURCE_CONFIG, /opt/ml/input/config/...).\n"
     "The snapshot is --snapshot, else <StateDir>/snapshots/<channel>.snap, else the\n"
     "source is enumerated and cached there. keys: one key per line, in reading order.\n"},
    {"status", s3s__cmd_status, "show a coordinator's state (table, --json, --ledger)",
     "usage: s3shard status URL [--json] [--ledger] [--secret-file F] [--tls-ca F]\n"},
    {"consume", s3s__cmd_consume, "read a rank's share through the coordinator (smoke test)",
     "usage: s3shard consume --coordinator URL --channel NAME [--rank R --world-size N]\n"
     "              [--epochs K] [--step-ms N] [--commit-bytes N] [--secret-file F]\n"
     "              [--tls-ca F] [--cache-dir DIR] [--connections N]\n"
     "prints epoch<TAB>key<TAB>start<TAB>end<TAB>sha256 per piece read; summary on stderr\n"
     "(GETs, bytes from S3, bytes from the cache). --cache-dir keeps fetched blocks on\n"
     "disk: a restarted rank reads what it holds with no GET. SIGTERM drains: exact\n"
     "positions committed, leases released, exit 0.\n"},
    {"run", s3s__cmd_run, "materialise a job's channels and run a command (SageMaker layout)",
     "usage: s3shard run --job JOB.json (--static | --coordinator URL) [options] -- COMMAND "
     "ARGS...\n"
     "\n"
     "Lays every channel out in its InputMode under the data root (File: downloaded to\n"
     "ROOT/CHANNEL/; FastFile: a read-only FUSE mount at ROOT/CHANNEL/; Pipe: FIFOs\n"
     "ROOT/CHANNEL_EPOCH), exports SM_CHANNEL_<NAME>, SM_CHANNELS, SM_HOSTS, SM_CURRENT_HOST,\n"
     "SM_INPUT_DATA_DIR and S3SHARD_* (RANK, WORLD_SIZE, LOCAL_RANK, EPOCH, EPOCHS, DATA_ROOT,\n"
     "TOPOLOGY, JOB), runs COMMAND, forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT and exits with its\n"
     "code (128+N when it died of signal N). See docs/run.md.\n"
     "  --data-root DIR        default: the job's DataRoot (/opt/ml/input/data)\n"
     "  --rank R --world-size N [--local-rank L]\n"
     "                         else from torch, Open MPI, PMI, Slurm, resourceconfig.json\n"
     "  --resource-config PATH SageMaker's resourceconfig.json (topology, SM_HOSTS)\n"
     "  --hosts a,b --current-host a   SM_HOSTS / SM_CURRENT_HOST (default: resourceconfig,\n"
     "                         else this host)\n"
     "  --epoch E              first epoch (default 0)\n"
     "  --cache-dir DIR | --no-cache   block cache (default StateDir/cache)\n"
     "  --connections N        S3 connections per worker (default 16)\n"
     "  --drain-timeout S      on SIGTERM or a Spot notice, seconds the command gets to\n"
     "                         exit before SIGKILL (default 30)\n"
     "  --spot                 poll the EC2 Spot notice (IMDSv2); a notice drains like SIGTERM\n"
     "  --imds-endpoint URL    metadata endpoint (implies --spot; default\n"
     "                         $AWS_EC2_METADATA_SERVICE_ENDPOINT or http://169.254.169.254)\n"
     "  --spot-interval S      seconds between polls (default 5)\n"},
    {"sigv4", s3s__cmd_sigv4, "show how a raw HTTP request is signed (SigV4 debugger)",
     "usage: s3shard sigv4 --access-key-id ID --secret-access-key KEY --region R --service S\n"
     "              [--session-token T] [--normalize-path] [--unsigned-payload]\n"
     "              [--presign SECONDS --date YYYYMMDDTHHMMSSZ]  < request.txt\n"
     "\n"
     "stdin: a raw HTTP/1.1 request: 'METHOD TARGET HTTP/1.1' (the target runs to the last\n"
     "space), header lines 'Name:value', a blank line or end of input, an optional body.\n"
     "Every header is signed; --session-token adds and signs X-Amz-Security-Token.\n"
     "Path and query are decoded then encoded by SigV4's rules; the path is normalized\n"
     "only with --normalize-path (S3 never normalizes). The time is the X-Amz-Date\n"
     "header, or --date with --presign. Payload hash: the x-amz-content-sha256 header,\n"
     "else UNSIGNED-PAYLOAD with --unsigned-payload or --presign, else SHA-256 of the body.\n"
     "stdout: 'canonical request:', 'string to sign:', then 'authorization: ...'\n"
     "or, with --presign, 'url: https://HOST/PATH?...&X-Amz-Signature=...'.\n"},
    {"fetch", s3s__cmd_fetch, "materialise one channel in File or Pipe mode (static plan)",
     "usage: s3shard fetch --job JOB.json --channel NAME [--mode file|pipe] [--data-root DIR]\n"
     "              [--rank R --world-size N] [--epoch E] [--epochs K] [--snapshot FILE|s3://]\n"
     "              [--cache-dir DIR] [--jobs N] [--connections N] [--progress bar|log|none]\n"
     "\n"
     "File: the rank's share of epoch E downloaded into DIR/NAME/ (key paths kept, relative\n"
     "to the channel prefix), in parallel, crash-safe; a rerun skips complete files (size and\n"
     "ETag). Pipe: FIFOs DIR/NAME_E, DIR/NAME_E+1, ... streaming the share of each epoch in\n"
     "order (RecordWrapperType RecordIO and CompressionType Gzip from the job). The mode\n"
     "defaults to the channel's InputMode, DIR to the job's DataRoot (/opt/ml/input/data).\n"
     "Topology: --rank/--world-size, else the environment (torch, Open MPI, PMI, Slurm,\n"
     "SageMaker resourceconfig.json), else rank 0 of 1. --epochs: default the job's Epochs.\n"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char global_usage[] =
    "global flags (any subcommand):\n"
    "  --endpoint URL   S3 endpoint (default $AWS_ENDPOINT_URL or AWS by region)\n"
    "  --region R       region (default $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1)\n"
    "  --profile P      shared-credentials profile (default $AWS_PROFILE or default)\n"
    "  --path-style     path-style addressing (default for custom endpoints)\n"
    "  -v               verbose: log each request (repeat for more)\n"
    "  -h, --help       help for the subcommand\n";

const s3s__cli_cmd *s3s__cli_find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void print_main_usage(FILE *f)
{
    fprintf(f, "usage: s3shard [global flags] COMMAND [args]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n%s", global_usage);
}

int s3s__cli_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || s[0] == '\0' || s[0] == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0)
        return -1;
    *out = v;
    return 0;
}

int s3s__cli_usage_error(const char *name, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "s3shard %s: ", name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    const s3s__cli_cmd *c = s3s__cli_find(name);
    if (c != NULL)
        fputs(c->usage, stderr);
    return 2;
}

int s3s__cli_fail(const char *name, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "s3shard %s: ", name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

/* Global flags may appear before or after the subcommand name; they are removed
 * from argv so subcommands only see their own arguments. Anything after "--" is
 * left alone (it belongs to a child command). */
static int take_global(s3s__cli *g, int *argc, char **argv)
{
    int out = 0;
    int i = 0;
    for (; i < *argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--") == 0)
            break;
        if (strcmp(a, "--endpoint") == 0)
            slot = &g->endpoint;
        else if (strcmp(a, "--region") == 0)
            slot = &g->region;
        else if (strcmp(a, "--profile") == 0)
            slot = &g->profile;
        if (slot != NULL) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "s3shard: %s needs a value\n", a);
                return -1;
            }
            *slot = argv[++i];
            continue;
        }
        if (strncmp(a, "--endpoint=", 11) == 0) {
            g->endpoint = a + 11;
            continue;
        }
        if (strncmp(a, "--region=", 9) == 0) {
            g->region = a + 9;
            continue;
        }
        if (strncmp(a, "--profile=", 10) == 0) {
            g->profile = a + 10;
            continue;
        }
        if (strcmp(a, "--path-style") == 0) {
            g->path_style = 1;
            continue;
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            g->verbose++;
            continue;
        }
        if (strcmp(a, "-vv") == 0) {
            g->verbose += 2;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            g->help = 1;
            continue;
        }
        argv[out++] = argv[i];
    }
    for (; i < *argc; i++)
        argv[out++] = argv[i];
    argv[out] = NULL;
    *argc = out;
    return 0;
}

int main(int argc, char **argv)
{
    s3s__cli g = {.path_style = -1};
    int n = argc - 1;
    char **args = argv + 1;
    if (take_global(&g, &n, args) != 0)
        return 2;
    if (n == 0) {
        print_main_usage(g.help ? stdout : stderr);
        return g.help ? 0 : 2;
    }
    const s3s__cli_cmd *c = s3s__cli_find(args[0]);
    if (c == NULL) {
        fprintf(stderr, "s3shard: unknown command '%s'\n", args[0]);
        print_main_usage(stderr);
        return 2;
    }
    if (g.help) {
        fputs(c->usage, stdout);
        fprintf(stdout, "\n%s", global_usage);
        return 0;
    }
    return c->fn(&g, n, args);
}
