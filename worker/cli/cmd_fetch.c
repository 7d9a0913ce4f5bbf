/* cmd_fetch.c: `s3shard fetch`: one channel of a job materialised in File or
 * Pipe mode with the static plan (no coordinator). `s3shard run` will call
 * the same mode functions for every channel. */
#include "worker/cli/dataset_cli.h"

#include "s3shard/error.h"
#include "s3shard/worker.h"
#include "worker/mode_file.h"
#include "worker/mode_pipe.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t fetch_stop;

static void on_term(int sig)
{
    (void)sig;
    fetch_stop = 1;
}

int s3s__cmd_fetch(s3s__cli *g, int argc, char **argv)
{
    const char *cmd = "fetch", *job_path = NULL, *channel = NULL, *mode = NULL, *root = NULL,
               *snap_arg = NULL, *cache = NULL, *rcfg = NULL;
    const char *rank_s = NULL, *world_s = NULL, *epoch_s = NULL, *epochs_s = NULL, *jobs_s = NULL,
               *conns_s = NULL, *progress_s = NULL;
    const s3s__cli_opt opts[] = {
        {"--job", NULL, &job_path, NULL},        {"--channel", NULL, &channel, NULL},
        {"--mode", NULL, &mode, NULL},           {"--data-root", NULL, &root, NULL},
        {"--snapshot", NULL, &snap_arg, NULL},   {"--cache-dir", NULL, &cache, NULL},
        {"--rank", NULL, &rank_s, NULL},         {"--world-size", NULL, &world_s, NULL},
        {"--epoch", NULL, &epoch_s, NULL},       {"--epochs", NULL, &epochs_s, NULL},
        {"--jobs", NULL, &jobs_s, NULL},         {"--connections", NULL, &conns_s, NULL},
        {"--progress", NULL, &progress_s, NULL}, {"--resource-config", NULL, &rcfg, NULL},
    };
    int urc = s3s__cli_opts_parse(cmd, argc, argv, 1, opts, sizeof(opts) / sizeof(opts[0]));
    if (urc != 0)
        return urc;
    if (job_path == NULL || channel == NULL)
        return s3s__cli_usage_error(cmd, "--job and --channel are required");
    uint64_t epoch = 0, epochs = 0, jobs = 16, conns = 16;
    if ((epoch_s && s3s__cli_parse_u64(epoch_s, &epoch)) ||
        (epochs_s && s3s__cli_parse_u64(epochs_s, &epochs)) ||
        (jobs_s && (s3s__cli_parse_u64(jobs_s, &jobs) || jobs == 0 || jobs > 1024)) ||
        (conns_s && (s3s__cli_parse_u64(conns_s, &conns) || conns == 0 || conns > 1024)) ||
        epochs > UINT32_MAX)
        return s3s__cli_usage_error(cmd, "--epoch/--epochs/--jobs/--connections take numbers");
    int progress = -1;
    if (progress_s != NULL) {
        if (strcmp(progress_s, "bar") == 0)
            progress = 1;
        else if (strcmp(progress_s, "log") == 0)
            progress = 0;
        else if (strcmp(progress_s, "none") == 0)
            progress = 2;
        else
            return s3s__cli_usage_error(cmd, "--progress is bar, log or none");
    }
    s3s_topology topo;
    s3s_errinfo e = {0};
    if ((urc = s3s__cli_topology(cmd, rank_s, world_s, rcfg, 1, &topo)) != 0)
        return urc;
    s3s_job *job = NULL;
    s3s_snapshot *snap = NULL;
    int rc = 1;
    if (s3s_job_load(&job, job_path, &e) != 0)
        return s3s__cli_fail(cmd, "%s", e.msg);
    const s3s_channel *ch = s3s_job_channel_find(job, channel);
    if (ch == NULL) {
        s3s__cli_fail(cmd, "%s has no channel \"%s\"", job_path, channel);
        goto out;
    }
    s3s_input_mode m = ch->input_mode;
    if (mode != NULL) {
        if (strcmp(mode, "file") == 0 || strcmp(mode, "File") == 0)
            m = S3S_MODE_FILE;
        else if (strcmp(mode, "pipe") == 0 || strcmp(mode, "Pipe") == 0)
            m = S3S_MODE_PIPE;
        else {
            rc = s3s__cli_usage_error(cmd, "--mode is file or pipe (FastFile: s3shard run)");
            goto out;
        }
    }
    if (m == S3S_MODE_FASTFILE) {
        s3s__cli_fail(cmd, "channel %s is FastFile: give --mode file|pipe", channel);
        goto out;
    }
    if (s3s__cli_channel_snapshot(g, cmd, job, ch, snap_arg, &snap) != 0)
        goto out;
    s3s_worker_opts wo;
    s3s_worker_opts_init(&wo);
    wo.job = job;
    wo.channel = channel;
    wo.snapshot = snap;
    wo.rank = topo.rank;
    wo.world_size = topo.world_size;
    wo.first_epoch = epoch;
    wo.epochs = (uint32_t)epochs;
    wo.cache_dir = cache;
    wo.connections = (unsigned)conns;
    wo.s3.endpoint = g->endpoint;
    wo.s3.region = g->region;
    wo.s3.profile = g->profile;
    wo.s3.path_style = g->path_style;
    wo.s3.verbose = g->verbose > 1;
    if (root == NULL)
        root = s3s_job_settings_get(job)->data_root;
    s3s__errbuf eb = {{0}};
    if (m == S3S_MODE_FILE) {
        s3s__file_mode_opts fo = {.wopts = &wo, .root = root, .channel_name = channel};
        fo.jobs = (unsigned)jobs;
        fo.progress = progress;
        s3s__file_mode_result res;
        if (s3s__mode_file_materialize(&fo, &res, &eb) != 0) {
            s3s__cli_fail(cmd, "%s", eb.msg);
            goto out;
        }
        fprintf(stderr,
                "s3shard fetch: %s: %llu files (%llu bytes) downloaded, %llu complete files "
                "skipped, %.2f s\n",
                channel, (unsigned long long)res.files, (unsigned long long)res.bytes,
                (unsigned long long)res.skipped_files, res.seconds);
    } else {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_term;
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        s3s__pipe_mode_opts po = {.wopts = &wo, .root = root, .channel_name = channel};
        po.record_io = -1;
        po.gzip = -1;
        po.stop = &fetch_stop;
        s3s__pipe_mode_result res;
        int prc = s3s__mode_pipe_run(&po, &res, &eb);
        if (prc != 0) {
            s3s__cli_fail(cmd, "%s", eb.msg[0] ? eb.msg : s3s_strerror(prc));
            goto out;
        }
        fprintf(stderr,
                "s3shard fetch: %s: %llu epochs, %llu items, %llu bytes streamed, %llu early "
                "closes\n",
                channel, (unsigned long long)res.epochs, (unsigned long long)res.items,
                (unsigned long long)res.bytes, (unsigned long long)res.early_closes);
    }
    rc = 0;
out:
    s3s_snapshot_destroy(snap);
    s3s_job_destroy(job);
    s3s__cli_s3_close();
    return rc;
}
