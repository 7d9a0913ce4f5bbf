/* dataset_cli.c: see dataset_cli.h. */
#include "common/util/fs.h"
#include "worker/cli/cli_s3.h"
#include "worker/cli/dataset_cli.h"

#include "s3shard/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static s3s_s3 *cli_s3;

const char *s3s__cli_optval(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    (*i)++;
    return argv[*i];
}

int s3s__cli_opts_parse(const char *cmd, int argc, char **argv, int first, const s3s__cli_opt *opts,
                        size_t nopts)
{
    for (int i = first; i < argc; i++) {
        int miss = 0, done = 0;
        for (size_t k = 0; k < nopts && !done && !miss; k++) {
            const s3s__cli_opt *o = &opts[k];
            if (o->value == NULL) {
                if (strcmp(argv[i], o->name) == 0)
                    *o->flag = done = 1;
                continue;
            }
            const char *v = s3s__cli_optval(argc, argv, &i, o->name, &miss);
            if (v == NULL && o->alias != NULL && !miss)
                v = s3s__cli_optval(argc, argv, &i, o->alias, &miss);
            if (v != NULL)
                *o->value = v, done = 1;
        }
        if (miss)
            return s3s__cli_usage_error(cmd, "%s needs a value", argv[i]);
        if (!done)
            return s3s__cli_usage_error(cmd, "unknown argument '%s'", argv[i]);
    }
    return 0;
}

int s3s__cli_topology(const char *cmd, const char *rank_s, const char *world_s, const char *rcfg,
                      int single, s3s_topology *out)
{
    memset(out, 0, sizeof(*out));
    if ((rank_s == NULL) != (world_s == NULL))
        return s3s__cli_usage_error(cmd, "--rank and --world-size go together");
    if (rank_s != NULL) {
        uint64_t rank = 0, world = 0;
        if (s3s__cli_parse_u64(rank_s, &rank) != 0 || s3s__cli_parse_u64(world_s, &world) != 0 ||
            world == 0 || world > UINT32_MAX || rank >= world)
            return s3s__cli_usage_error(cmd, "--rank R --world-size N: need 0 <= R < N");
        out->rank = (uint32_t)rank;
        out->world_size = (uint32_t)world;
        snprintf(out->source, sizeof(out->source), "flags");
        return 0;
    }
    s3s_errinfo e = {0};
    int rc = s3s_topology_detect(out, rcfg, &e);
    if (rc == S3S_ENOTOPO && single) {
        memset(out, 0, sizeof(*out));
        out->world_size = 1;
        return 0;
    }
    return rc == 0 ? 0 : s3s__cli_fail(cmd, "%s", e.msg);
}

s3s_s3 *s3s__cli_s3(s3s__cli *g, const char *cmd)
{
    if (cli_s3 != NULL)
        return cli_s3;
    s3s_s3_opts o;
    s3s__cli_s3_opts(g, &o, 0); /* the global flags; -vv: debug log (the listing's decision) */
    if (s3s_s3_create(&cli_s3, &o) != 0) {
        s3s__cli_fail(cmd, "cannot make an S3 client: %s", s3s_s3_last_create_error());
        cli_s3 = NULL;
    }
    return cli_s3;
}

void s3s__cli_s3_close(void)
{
    s3s_s3_destroy(cli_s3);
    cli_s3 = NULL;
}

int s3s__cli_load_snapshot(s3s__cli *g, const char *cmd, const char *where, s3s_snapshot **out)
{
    s3s_errinfo e = {0};
    int rc;
    if (strncmp(where, "s3://", 5) == 0) {
        s3s_s3 *s3 = s3s__cli_s3(g, cmd);
        if (s3 == NULL)
            return 1;
        rc = s3s_snapshot_get(out, s3, where, &e);
    } else {
        rc = s3s_snapshot_load(out, where, &e);
    }
    if (rc != 0)
        return s3s__cli_fail(cmd, "%s", e.msg);
    return 0;
}

int s3s__cli_channel_snapshot(s3s__cli *g, const char *cmd, const s3s_job *job,
                              const s3s_channel *ch, const char *given, s3s_snapshot **out)
{
    *out = NULL;
    if (given != NULL)
        return s3s__cli_load_snapshot(g, cmd, given, out);
    const char *state = s3s_job_settings_get(job)->state_dir;
    char dir[4096], path[4200];
    snprintf(dir, sizeof(dir), "%s/snapshots", state);
    snprintf(path, sizeof(path), "%s/%s.snap", dir, ch->name);
    s3s_errinfo e = {0};
    int rc = s3s_snapshot_load(out, path, &e);
    const char *src = ch->data_type == S3S_DATA_FILESYSTEM ? ch->local_path : ch->uri;
    if (rc == 0 && strcmp(s3s_snapshot_source(*out), src) != 0) {
        /* the channel now names another source: never plan on the old one */
        s3s__cli_fail(cmd,
                      "cached snapshot %s was made from %s, but channel %s reads %s: remove it",
                      path, s3s_snapshot_source(*out), ch->name, src);
        s3s_snapshot_destroy(*out);
        *out = NULL;
        return 1;
    }
    if (rc == 0)
        return 0;
    if (rc != S3S_ENOTFOUND)
        return s3s__cli_fail(cmd, "cached snapshot: %s (remove it to enumerate again)", e.msg);
    s3s_s3 *s3 = NULL;
    int needs_s3 = ch->data_type != S3S_DATA_FILESYSTEM &&
        (ch->data_type != S3S_DATA_AUGMENTED_MANIFEST || strncmp(ch->uri, "s3://", 5) == 0);
    if (needs_s3 && (s3 = s3s__cli_s3(g, cmd)) == NULL)
        return 1;
    s3s_source_opts so;
    s3s_source_opts_from_channel(&so, ch, s3);
    if ((rc = s3s_snapshot_create(out, &so, &e)) != 0)
        return s3s__cli_fail(cmd, "enumerating channel %s: %s", ch->name, e.msg);
    if (s3s__mkdirs(dir) != 0 || s3s_snapshot_save(*out, path, &e) != 0)
        fprintf(stderr, "s3shard %s: warning: cannot cache the snapshot in %s: %s\n", cmd, path,
                e.msg[0] ? e.msg : strerror(errno));
    return 0;
}
