/* cmd_snapshot.c: `s3shard snapshot create|show|verify`. */
#include "worker/cli/dataset_cli.h"

#include "s3shard/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"objects", "manifest", "records"};

static void print_summary(const s3s_snapshot *s, FILE *f)
{
    char hex[65];
    s3s_snapshot_hash_hex(s, hex);
    fprintf(f, "source:  %s\n", s3s_snapshot_source(s));
    if (s3s_snapshot_bucket(s) != NULL)
        fprintf(f, "bucket:  %s\n", s3s_snapshot_bucket(s));
    fprintf(f, "kind:    %s\n", kind_names[s3s_snapshot_kind_get(s)]);
    fprintf(f, "entries: %zu\n", s3s_snapshot_count(s));
    fprintf(f, "bytes:   %" PRIu64 "\n", s3s_snapshot_total_bytes(s));
    fprintf(f, "sha256:  %s\n", hex);
}

static int parse_type(const char *s, s3s_data_type *out)
{
    static const char *const names[] = {"S3Prefix", "ManifestFile", "AugmentedManifestFile",
                                        "Directory"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (s3s_data_type)i;
            return 0;
        }
    return -1;
}

static int parse_meta(const char *s, s3s_manifest_meta *out)
{
    static const char *const names[] = {"List", "Head", "None"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (s3s_manifest_meta)i;
            return 0;
        }
    return -1;
}

static int create(s3s__cli *g, int argc, char **argv)
{
    const char *cmd = "snapshot", *job_path = NULL, *channel = NULL, *source = NULL, *type = NULL,
               *attrs = NULL, *meta = NULL, *outp = NULL;
    int skip = 0;
    const s3s__cli_opt opts[] = {
        {"--job", NULL, &job_path, NULL},     {"--channel", NULL, &channel, NULL},
        {"--source", NULL, &source, NULL},    {"--type", NULL, &type, NULL},
        {"--attributes", NULL, &attrs, NULL}, {"--manifest-metadata", NULL, &meta, NULL},
        {"--out", "-o", &outp, NULL},         {"--skip-bad-records", NULL, NULL, &skip},
    };
    int urc = s3s__cli_opts_parse(cmd, argc, argv, 2, opts, sizeof(opts) / sizeof(opts[0]));
    if (urc != 0)
        return urc;
    if ((job_path == NULL) == (source == NULL))
        return s3s__cli_usage_error(cmd, "give --job FILE --channel NAME, or --source URI");
    s3s_snapshot *snap = NULL;
    s3s_job *job = NULL;
    s3s_errinfo e = {0};
    int rc = 1;
    if (job_path != NULL) {
        if (channel == NULL)
            return s3s__cli_usage_error(cmd, "--job needs --channel NAME");
        if (s3s_job_load(&job, job_path, &e) != 0)
            return s3s__cli_fail(cmd, "%s", e.msg);
        const s3s_channel *ch = s3s_job_channel_find(job, channel);
        if (ch == NULL) {
            s3s__cli_fail(cmd, "%s has no channel \"%s\"", job_path, channel);
            goto out;
        }
        if (outp == NULL) { /* into the state dir: the cache plan reads */
            if (s3s__cli_channel_snapshot(g, cmd, job, ch, NULL, &snap) != 0)
                goto out;
        } else {
            s3s_source_opts so;
            s3s_source_opts_from_channel(&so, ch, NULL);
            if (strncmp(so.uri, "s3://", 5) == 0 && (so.s3 = s3s__cli_s3(g, cmd)) == NULL)
                goto out;
            if (s3s_snapshot_create(&snap, &so, &e) != 0) {
                s3s__cli_fail(cmd, "%s", e.msg);
                goto out;
            }
        }
    } else {
        s3s_source_opts so;
        s3s_source_opts_init(&so);
        so.uri = source;
        so.skip_bad_records = skip;
        if (type != NULL && parse_type(type, &so.data_type) != 0)
            return s3s__cli_usage_error(cmd,
                                        "--type: S3Prefix, ManifestFile, "
                                        "AugmentedManifestFile or Directory");
        if (meta != NULL && parse_meta(meta, &so.manifest_meta) != 0)
            return s3s__cli_usage_error(cmd, "--manifest-metadata: List, Head or None");
        const char *names[16];
        char *list = attrs ? strdup(attrs) : NULL;
        if (list != NULL) {
            char *save = NULL;
            for (char *t = strtok_r(list, ",", &save); t && so.n_attribute_names < 16;
                 t = strtok_r(NULL, ",", &save))
                names[so.n_attribute_names++] = t;
            so.attribute_names = names;
        }
        int needs_s3 = strncmp(source, "s3://", 5) == 0 ||
            (so.data_type == S3S_DATA_MANIFEST && so.manifest_meta != S3S_META_NONE);
        if (!needs_s3 || (so.s3 = s3s__cli_s3(g, cmd)) != NULL) {
            if (s3s_snapshot_create(&snap, &so, &e) != 0)
                s3s__cli_fail(cmd, "%s", e.msg);
        }
        free(list);
        if (snap == NULL)
            goto out;
        if (outp == NULL) {
            s3s__cli_usage_error(cmd, "--source needs --out FILE|s3://URI");
            rc = 2;
            goto out;
        }
    }
    if (outp != NULL) {
        int src;
        if (strncmp(outp, "s3://", 5) == 0) {
            s3s_s3 *s3 = s3s__cli_s3(g, cmd);
            src = s3 ? s3s_snapshot_put(snap, s3, outp, &e) : 1;
        } else {
            src = s3s_snapshot_save(snap, outp, &e);
        }
        if (src != 0) {
            s3s__cli_fail(cmd, "%s", e.msg[0] ? e.msg : "cannot store the snapshot");
            goto out;
        }
    }
    print_summary(snap, stdout);
    rc = 0;
out:
    s3s_snapshot_destroy(snap);
    s3s_job_destroy(job);
    s3s__cli_s3_close();
    return rc;
}

static int show(s3s__cli *g, int argc, char **argv)
{
    const char *cmd = "snapshot", *where = NULL;
    int keys = 0;
    unsigned long long limit = UINT64_MAX;
    for (int i = 2; i < argc; i++) {
        int miss = 0;
        const char *v;
        if (strcmp(argv[i], "--keys") == 0)
            keys = 1;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--limit", &miss)))
            limit = strtoull(v, NULL, 10);
        else if (miss)
            return s3s__cli_usage_error(cmd, "%s needs a value", argv[i]);
        else if (where == NULL && argv[i][0] != '-')
            where = argv[i];
        else
            return s3s__cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (where == NULL)
        return s3s__cli_usage_error(cmd, "show needs a snapshot FILE or s3:// URI");
    s3s_snapshot *s = NULL;
    int rc = s3s__cli_load_snapshot(g, cmd, where, &s);
    s3s__cli_s3_close();
    if (rc != 0)
        return rc;
    print_summary(s, stdout);
    for (size_t i = 0; keys && i < s3s_snapshot_count(s) && i < limit; i++) {
        s3s_entry ent;
        s3s_snapshot_entry(s, i, &ent);
        printf("%.*s\t%" PRIu64 "\t%s\n", (int)ent.key_len, ent.key, ent.size, ent.etag);
    }
    s3s_snapshot_destroy(s);
    return 0;
}

static int verify(s3s__cli *g, int argc, char **argv)
{
    const char *cmd = "snapshot", *where = NULL, *hash = NULL;
    for (int i = 2; i < argc; i++) {
        int miss = 0;
        const char *v;
        if ((v = s3s__cli_optval(argc, argv, &i, "--hash", &miss)))
            hash = v;
        else if (miss)
            return s3s__cli_usage_error(cmd, "%s needs a value", argv[i]);
        else if (where == NULL && argv[i][0] != '-')
            where = argv[i];
        else
            return s3s__cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
    }
    if (where == NULL)
        return s3s__cli_usage_error(cmd, "verify needs a snapshot FILE or s3:// URI");
    s3s_snapshot *s = NULL;
    int rc = s3s__cli_load_snapshot(g, cmd, where, &s); /* checks the file checksum */
    s3s__cli_s3_close();
    if (rc != 0)
        return rc;
    s3s_errinfo e = {0};
    if (s3s_snapshot_verify(s, &e) != 0 ||
        (hash != NULL && s3s_snapshot_check_hash(s, hash, &e) != 0)) {
        s3s_snapshot_destroy(s);
        return s3s__cli_fail(cmd, "%s: %s", where, e.msg);
    }
    char hex[65];
    s3s_snapshot_hash_hex(s, hex);
    printf("%s: ok (%zu entries, sha256 %s)\n", where, s3s_snapshot_count(s), hex);
    s3s_snapshot_destroy(s);
    return 0;
}

int s3s__cmd_snapshot(s3s__cli *g, int argc, char **argv)
{
    if (argc < 2)
        return s3s__cli_usage_error(argv[0], "expected create, show or verify");
    if (strcmp(argv[1], "create") == 0)
        return create(g, argc, argv);
    if (strcmp(argv[1], "show") == 0)
        return show(g, argc, argv);
    if (strcmp(argv[1], "verify") == 0)
        return verify(g, argc, argv);
    return s3s__cli_usage_error(argv[0], "unknown action '%s'", argv[1]);
}
