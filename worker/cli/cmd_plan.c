/* cmd_plan.c: `s3shard plan`: one rank's share of one epoch of one channel,
 * computed locally (no coordinator): the MPI / no-server mode. */
#include "worker/cli/dataset_cli.h"

#include "s3shard/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const dist_names[] = {"FullyReplicated", "ShardedByS3Key", "Dynamic"};

/* print_json_string writes s (n bytes) as a JSON string. */
static void print_json_string(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int s3s__cmd_plan(s3s__cli *g, int argc, char **argv)
{
    const char *cmd = "plan", *job_path = NULL, *channel = NULL, *snap_arg = NULL, *format = "keys",
               *rcfg = NULL;
    const char *epoch_s = NULL, *rank_s = NULL, *world_s = NULL;
    const s3s__cli_opt opts[] = {
        {"--job", NULL, &job_path, NULL},       {"--channel", NULL, &channel, NULL},
        {"--epoch", NULL, &epoch_s, NULL},      {"--rank", NULL, &rank_s, NULL},
        {"--world-size", NULL, &world_s, NULL}, {"--format", NULL, &format, NULL},
        {"--snapshot", NULL, &snap_arg, NULL},  {"--resource-config", NULL, &rcfg, NULL},
    };
    int urc = s3s__cli_opts_parse(cmd, argc, argv, 1, opts, sizeof(opts) / sizeof(opts[0]));
    if (urc != 0)
        return urc;
    if (job_path == NULL || channel == NULL || epoch_s == NULL)
        return s3s__cli_usage_error(cmd, "--job, --channel and --epoch are required");
    if (strcmp(format, "keys") != 0 && strcmp(format, "json") != 0)
        return s3s__cli_usage_error(cmd, "--format is keys or json");
    uint64_t epoch;
    if (s3s__cli_parse_u64(epoch_s, &epoch) != 0)
        return s3s__cli_usage_error(cmd, "--epoch: expected a number, got '%s'", epoch_s);
    s3s_topology topo;
    s3s_errinfo e = {0};
    if ((urc = s3s__cli_topology(cmd, rank_s, world_s, rcfg, 0, &topo)) != 0)
        return urc;
    s3s_job *job = NULL;
    s3s_snapshot *snap = NULL;
    s3s_plan *plan = NULL;
    int rc = 1;
    if (s3s_job_load(&job, job_path, &e) != 0)
        return s3s__cli_fail(cmd, "%s", e.msg);
    const s3s_channel *ch = s3s_job_channel_find(job, channel);
    if (ch == NULL) {
        s3s__cli_fail(cmd, "%s has no channel \"%s\"", job_path, channel);
        goto out;
    }
    if (s3s__cli_channel_snapshot(g, cmd, job, ch, snap_arg, &snap) != 0)
        goto out;
    s3s_plan_opts po;
    s3s_plan_opts_from_channel(&po, ch, epoch);
    s3s_share share;
    if (s3s_plan_create(&plan, snap, &po, &e) != 0 ||
        s3s_plan_share(plan, topo.rank, topo.world_size, &share, &e) != 0) {
        s3s__cli_fail(cmd, "channel %s: %s", channel, e.msg);
        goto out;
    }
    const uint32_t *order = s3s_plan_order(plan);
    int json = strcmp(format, "json") == 0;
    char hex[65];
    s3s_snapshot_hash_hex(snap, hex);
    const char *bucket = s3s_snapshot_bucket(snap);
    if (json) {
        printf("{\"channel\": ");
        print_json_string(channel, strlen(channel));
        printf(", \"epoch\": %" PRIu64 ", \"rank\": %u, \"world_size\": %u, \"local_rank\": %u, "
               "\"topology\": \"%s\",\n \"distribution\": \"%s\", \"balance\": \"%s\", "
               "\"shuffle\": %s, \"seed\": %" PRIu64 ",\n \"snapshot\": \"%s\", \"bucket\": ",
               epoch, topo.rank, topo.world_size, topo.local_rank, topo.source,
               dist_names[ch->distribution], ch->balance == S3S_BALANCE_BYTES ? "bytes" : "count",
               ch->shuffle ? "true" : "false", ch->seed, hex);
        if (bucket)
            print_json_string(bucket, strlen(bucket));
        else
            printf("null");
        printf(", \"shards_total\": %zu, \"share\": {\"begin\": %" PRIu64 ", \"end\": %" PRIu64
               "},\n \"objects\": [",
               s3s_plan_shard_count(plan), share.begin, share.end);
    }
    uint64_t nobj = 0, bytes = 0;
    for (uint64_t pos = share.begin; pos < share.end; pos++) {
        s3s_shard sh;
        s3s_plan_shard(plan, order[pos], &sh);
        for (uint64_t i = sh.first; i < sh.first + sh.count; i++) {
            s3s_entry ent;
            s3s_snapshot_entry(snap, (size_t)i, &ent);
            if (json) {
                printf("%s\n  {\"key\": ", nobj ? "," : "");
                print_json_string(ent.key, ent.key_len);
                printf(", \"size\": %" PRIu64 ", \"etag\": ", ent.size);
                print_json_string(ent.etag, strlen(ent.etag));
                printf(", \"shard\": %u, \"position\": %" PRIu64 "}", order[pos], pos);
            } else {
                fwrite(ent.key, 1, ent.key_len, stdout);
                putchar('\n');
            }
            nobj++;
            bytes += ent.size;
        }
    }
    if (json)
        printf("],\n \"object_count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}\n", nobj, bytes);
    if (fflush(stdout) != 0) {
        s3s__cli_fail(cmd, "writing the output failed");
        goto out;
    }
    rc = 0;
out:
    s3s_plan_destroy(plan);
    s3s_snapshot_destroy(snap);
    s3s_job_destroy(job);
    s3s__cli_s3_close();
    return rc;
}
