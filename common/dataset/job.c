/* job.c: the job spec: SageMaker's InputDataConfig verbatim plus our "S3Shard"
 * settings, validated with JSON paths in every message (see docs/dataset.md).
 *
 * Invariants of a parsed s3s_job: 1..20 channels with unique valid names; every
 * string field of s3s_channel points into job-owned memory (strs); the settings
 * hold every default. The job is never modified after s3s_job_parse returns. */
#include "common/dataset/errinfo.h"

#include "s3shard/dataset.h"
#include "s3shard/error.h"

#include <jansson.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHANNELS 20
#define MAX_ATTRS 16
#define MAX_SPEC_BYTES (16u << 20)
#define PATH_MAX_LEN 256

struct s3s_job {
    s3s_job_settings settings;
    size_t n;
    s3s_channel ch[MAX_CHANNELS];
    const char *attrs[MAX_CHANNELS][MAX_ATTRS];
    char **strs; /* every string the job owns */
    size_t nstrs, capstrs;
};

static const char *jdup(s3s_job *job, const char *s)
{
    if (s == NULL)
        return NULL;
    if (job->nstrs == job->capstrs) {
        size_t cap = job->capstrs ? job->capstrs * 2 : 32;
        char **p = realloc(job->strs, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        job->strs = p;
        job->capstrs = cap;
    }
    char *d = strdup(s);
    if (d == NULL)
        return NULL;
    job->strs[job->nstrs++] = d;
    return d;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Every key of obj must be in allowed (NULL-terminated). */
static int check_keys(const json_t *obj, const char *path, const char *const *allowed,
                      s3s_errinfo *e)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(k, allowed[i]) == 0)
                ok = 1;
        if (!ok) {
            char list[512] = "";
            for (size_t i = 0; allowed[i] != NULL; i++) {
                strncat(list, i ? ", " : "", sizeof(list) - strlen(list) - 1);
                strncat(list, allowed[i], sizeof(list) - strlen(list) - 1);
            }
            return s3s__ei_set(e, S3S_ECONFIG, "unknown key \"%.100s\" at %s (known keys: %s)", k,
                               path, list);
        }
    }
    return 0;
}

static int want_object(const json_t *v, const char *path, s3s_errinfo *e)
{
    if (!json_is_object(v))
        return s3s__ei_set(e, S3S_ECONFIG, "expected an object at %s, got %s", path, type_name(v));
    return 0;
}

/* get_str: *out = the string at obj[key] or NULL when absent (an error when required). */
static int get_str(const json_t *obj, const char *key, const char *path, int required,
                   const char **out, s3s_errinfo *e)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL) {
        if (required)
            return s3s__ei_set(e, S3S_ECONFIG, "missing required key %s.%s", path, key);
        return 0;
    }
    if (!json_is_string(v))
        return s3s__ei_set(e, S3S_ECONFIG, "expected a string at %s.%s, got %s", path, key,
                           type_name(v));
    *out = json_string_value(v);
    return 0;
}

/* get_enum: the index of obj[key] in names, def when absent. */
static int get_enum(const json_t *obj, const char *key, const char *path, const char *const *names,
                    int def, int *out, s3s_errinfo *e)
{
    const char *s;
    int rc = get_str(obj, key, path, 0, &s, e);
    if (rc != 0)
        return rc;
    *out = def;
    if (s == NULL)
        return 0;
    char list[256] = "";
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
        strncat(list, i ? "|" : "", sizeof(list) - strlen(list) - 1);
        strncat(list, names[i], sizeof(list) - strlen(list) - 1);
    }
    return s3s__ei_set(e, S3S_ECONFIG, "invalid value \"%.100s\" at %s.%s: expected one of %s", s,
                       path, key, list);
}

static int get_u64(const json_t *obj, const char *key, const char *path, uint64_t min, uint64_t max,
                   uint64_t def, uint64_t *out, s3s_errinfo *e)
{
    json_t *v = json_object_get(obj, key);
    *out = def;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v))
        return s3s__ei_set(e, S3S_ECONFIG, "expected an integer at %s.%s, got %s", path, key,
                           type_name(v));
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x < min || (uint64_t)x > max)
        return s3s__ei_set(e, S3S_ECONFIG, "%s.%s is %lld: expected an integer from %llu to %llu",
                           path, key, (long long)x, (unsigned long long)min,
                           (unsigned long long)max);
    *out = (uint64_t)x;
    return 0;
}

static int get_bool(const json_t *obj, const char *key, const char *path, int def, int *out,
                    s3s_errinfo *e)
{
    json_t *v = json_object_get(obj, key);
    *out = def;
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return s3s__ei_set(e, S3S_ECONFIG, "expected true or false at %s.%s, got %s", path, key,
                           type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static const char *const k_root[] = {"InputDataConfig", "S3Shard", NULL};
static const char *const k_channel[] = {
    "ChannelName",       "DataSource", "ContentType",   "CompressionType",
    "RecordWrapperType", "InputMode",  "ShuffleConfig", NULL};
static const char *const k_datasource[] = {"S3DataSource", "FileSystemDataSource", NULL};
static const char *const k_s3ds[] = {
    "S3DataType", "S3Uri", "S3DataDistributionType", "AttributeNames", "InstanceGroupNames", NULL};
static const char *const k_fsds[] = {"DirectoryPath", "FileSystemType", "FileSystemAccessMode",
                                     "FileSystemId", NULL};
static const char *const k_shuffle[] = {"Seed", NULL};
static const char *const k_ours[] = {
    "Epochs",   "ShardTargetBytes", "LeaseSeconds", "CacheLimitBytes", "StateDir", "StateUri",
    "DataRoot", "DropRemainder",    "EqualSteps",   "Channels",        NULL};
static const char *const k_ours_ch[] = {
    "Distribution",   "BalanceBy",      "ShardTargetBytes", "LocalPath",       "ManifestMetadata",
    "MaxRecordBytes", "SkipBadRecords", "EqualSteps",       "RecordsPerShard", NULL};

static const char *const n_s3type[] = {"S3Prefix", "ManifestFile", "AugmentedManifestFile", NULL};
static const char *const n_s3dist[] = {"FullyReplicated", "ShardedByS3Key", NULL};
static const char *const n_dist[] = {"FullyReplicated", "ShardedByS3Key", "Dynamic", NULL};
static const char *const n_mode[] = {"File", "FastFile", "Pipe", NULL};
static const char *const n_wrap[] = {"None", "RecordIO", NULL};
static const char *const n_comp[] = {"None", "Gzip", NULL};
static const char *const n_balance[] = {"count", "bytes", NULL};
static const char *const n_meta[] = {"List", "Head", "None", NULL};
static const char *const n_fstype[] = {"EFS", "FSxLustre", NULL};
static const char *const n_fsmode[] = {"rw", "ro", NULL};
static const char *const n_equal[] = {"Off", "Drop", "Pad", NULL};

#define DEFAULT_TARGET (64ull << 20)
#define DEFAULT_MAX_RECORD (8ull << 20)
#define U63 ((uint64_t)INT64_MAX)

static int parse_s3ds(s3s_job *job, s3s_channel *c, size_t ci, const json_t *s3, const char *path,
                      s3s_errinfo *e)
{
    int rc, v;
    const char *uri;
    if ((rc = want_object(s3, path, e)) || (rc = check_keys(s3, path, k_s3ds, e)))
        return rc;
    if (json_object_get(s3, "S3DataType") == NULL)
        return s3s__ei_set(e, S3S_ECONFIG, "missing required key %s.S3DataType", path);
    if ((rc = get_enum(s3, "S3DataType", path, n_s3type, 0, &v, e)))
        return rc;
    c->data_type = (s3s_data_type)v;
    if ((rc = get_str(s3, "S3Uri", path, 1, &uri, e)))
        return rc;
    char *b = NULL, *k = NULL;
    s3s_errinfo sub;
    if (s3s__ds_split_uri(uri, &b, &k, &sub) != 0)
        return s3s__ei_set(e, S3S_ECONFIG, "%s.S3Uri: %s", path, sub.msg);
    c->uri = jdup(job, uri);
    c->bucket = jdup(job, b);
    c->key = jdup(job, k);
    free(b);
    free(k);
    if (c->uri == NULL || c->bucket == NULL || c->key == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    if ((rc = get_enum(s3, "S3DataDistributionType", path, n_s3dist, 0, &v, e)))
        return rc;
    c->distribution = (s3s_distribution)v;
    json_t *an = json_object_get(s3, "AttributeNames");
    if (an != NULL) {
        if (!json_is_array(an))
            return s3s__ei_set(e, S3S_ECONFIG, "expected an array of strings at %s.AttributeNames",
                               path);
        if (c->data_type != S3S_DATA_AUGMENTED_MANIFEST)
            return s3s__ei_set(e, S3S_ECONFIG,
                               "%s.AttributeNames is only allowed with S3DataType "
                               "AugmentedManifestFile",
                               path);
        size_t n = json_array_size(an);
        if (n < 1 || n > MAX_ATTRS)
            return s3s__ei_set(e, S3S_ECONFIG, "%s.AttributeNames must have 1 to %d names", path,
                               MAX_ATTRS);
        for (size_t i = 0; i < n; i++) {
            json_t *a = json_array_get(an, i);
            if (!json_is_string(a) || json_string_length(a) == 0 || json_string_length(a) > 256)
                return s3s__ei_set(e, S3S_ECONFIG,
                                   "expected a non-empty string (at most 256 bytes) at "
                                   "%s.AttributeNames[%zu], got %s",
                                   path, i, type_name(a));
            for (size_t j = 0; j < i; j++)
                if (strcmp(json_string_value(a), job->attrs[ci][j]) == 0)
                    return s3s__ei_set(e, S3S_ECONFIG, "%s.AttributeNames[%zu]: \"%s\" repeated",
                                       path, i, json_string_value(a));
            if ((job->attrs[ci][i] = jdup(job, json_string_value(a))) == NULL)
                return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
        }
        c->attribute_names = job->attrs[ci];
        c->n_attribute_names = n;
    } else if (c->data_type == S3S_DATA_AUGMENTED_MANIFEST) {
        return s3s__ei_set(e, S3S_ECONFIG,
                           "missing %s.AttributeNames: an AugmentedManifestFile needs the "
                           "attributes to read",
                           path);
    }
    json_t *ig = json_object_get(s3, "InstanceGroupNames");
    if (ig != NULL && !json_is_array(ig))
        return s3s__ei_set(e, S3S_ECONFIG, "expected an array of strings at %s.InstanceGroupNames",
                           path);
    return 0;
}

static int parse_fsds(s3s_job *job, s3s_channel *c, const json_t *fs, const char *path,
                      s3s_errinfo *e)
{
    int rc, v;
    const char *dir, *id;
    if ((rc = want_object(fs, path, e)) || (rc = check_keys(fs, path, k_fsds, e)))
        return rc;
    if ((rc = get_str(fs, "DirectoryPath", path, 1, &dir, e)))
        return rc;
    if (dir[0] != '/')
        return s3s__ei_set(e, S3S_ECONFIG, "%s.DirectoryPath must be an absolute path, got \"%s\"",
                           path, dir);
    c->data_type = S3S_DATA_FILESYSTEM;
    c->uri = jdup(job, dir);
    c->key = "";
    if ((rc = get_enum(fs, "FileSystemType", path, n_fstype, 0, &v, e)))
        return rc;
    c->fs_type = n_fstype[v];
    if ((rc = get_enum(fs, "FileSystemAccessMode", path, n_fsmode, 1, &v, e)))
        return rc;
    c->fs_access_mode = n_fsmode[v];
    if ((rc = get_str(fs, "FileSystemId", path, 0, &id, e)))
        return rc;
    c->fs_id = jdup(job, id ? id : "");
    if (c->uri == NULL || c->fs_id == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    return 0;
}

static int parse_channel(s3s_job *job, size_t ci, const json_t *jc, s3s_errinfo *e)
{
    char path[64], sub[PATH_MAX_LEN];
    int rc, v;
    const char *s;
    s3s_channel *c = &job->ch[ci];
    snprintf(path, sizeof(path), "$.InputDataConfig[%zu]", ci);
    if ((rc = want_object(jc, path, e)) || (rc = check_keys(jc, path, k_channel, e)))
        return rc;
    if ((rc = get_str(jc, "ChannelName", path, 1, &s, e)))
        return rc;
    if (!name_ok(s))
        return s3s__ei_set(e, S3S_ECONFIG,
                           "%s.ChannelName \"%.100s\" is invalid: expected 1 to 64 characters "
                           "from [A-Za-z0-9.-_]",
                           path, s);
    for (size_t i = 0; i < ci; i++)
        if (strcmp(job->ch[i].name, s) == 0)
            return s3s__ei_set(e, S3S_ECONFIG, "%s.ChannelName \"%s\" repeats channel %zu", path, s,
                               i);
    if ((c->name = jdup(job, s)) == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    json_t *ds = json_object_get(jc, "DataSource");
    snprintf(sub, sizeof(sub), "%s.DataSource", path);
    if (ds == NULL)
        return s3s__ei_set(e, S3S_ECONFIG, "missing required key %s", sub);
    if ((rc = want_object(ds, sub, e)) || (rc = check_keys(ds, sub, k_datasource, e)))
        return rc;
    json_t *s3 = json_object_get(ds, "S3DataSource");
    json_t *fs = json_object_get(ds, "FileSystemDataSource");
    if ((s3 == NULL) == (fs == NULL))
        return s3s__ei_set(e, S3S_ECONFIG,
                           "%s needs exactly one of S3DataSource and FileSystemDataSource", sub);
    if (s3 != NULL) {
        snprintf(sub, sizeof(sub), "%s.DataSource.S3DataSource", path);
        rc = parse_s3ds(job, c, ci, s3, sub, e);
    } else {
        snprintf(sub, sizeof(sub), "%s.DataSource.FileSystemDataSource", path);
        rc = parse_fsds(job, c, fs, sub, e);
    }
    if (rc != 0)
        return rc;
    if ((rc = get_enum(jc, "InputMode", path, n_mode, 0, &v, e)))
        return rc;
    c->input_mode = (s3s_input_mode)v;
    if (c->input_mode == S3S_MODE_FASTFILE && c->data_type != S3S_DATA_S3_PREFIX)
        return s3s__ei_set(e, S3S_ECONFIG,
                           "%s.InputMode FastFile works with S3DataType S3Prefix only (as in "
                           "SageMaker)",
                           path);
    if ((rc = get_enum(jc, "RecordWrapperType", path, n_wrap, 0, &v, e)))
        return rc;
    c->record_io = v;
    if ((rc = get_enum(jc, "CompressionType", path, n_comp, 0, &v, e)))
        return rc;
    c->gzip = v;
    if ((rc = get_str(jc, "ContentType", path, 0, &s, e)))
        return rc;
    if (s != NULL && (c->content_type = jdup(job, s)) == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    json_t *sc = json_object_get(jc, "ShuffleConfig");
    if (sc != NULL) {
        snprintf(sub, sizeof(sub), "%s.ShuffleConfig", path);
        if ((rc = want_object(sc, sub, e)) || (rc = check_keys(sc, sub, k_shuffle, e)))
            return rc;
        json_t *seed = json_object_get(sc, "Seed");
        if (seed == NULL)
            return s3s__ei_set(e, S3S_ECONFIG, "missing required key %s.Seed", sub);
        if (!json_is_integer(seed))
            return s3s__ei_set(e, S3S_ECONFIG, "expected an integer at %s.Seed, got %s", sub,
                               type_name(seed));
        c->shuffle = 1;
        c->seed = (uint64_t)json_integer_value(seed);
    }
    c->balance = S3S_BALANCE_COUNT;
    c->manifest_meta = S3S_META_LIST;
    c->max_record_bytes = DEFAULT_MAX_RECORD;
    c->local_path = c->data_type == S3S_DATA_FILESYSTEM ? c->uri : NULL;
    return 0;
}

static int parse_ours_channel(s3s_job *job, s3s_channel *c, const json_t *o, const char *path,
                              s3s_errinfo *e)
{
    int rc, v;
    const char *s;
    if ((rc = want_object(o, path, e)) || (rc = check_keys(o, path, k_ours_ch, e)))
        return rc;
    if ((rc = get_enum(o, "Distribution", path, n_dist, (int)c->distribution, &v, e)))
        return rc;
    c->distribution = (s3s_distribution)v;
    if ((rc = get_enum(o, "BalanceBy", path, n_balance, (int)c->balance, &v, e)))
        return rc;
    c->balance = (s3s_balance)v;
    if ((rc = get_u64(o, "ShardTargetBytes", path, 0, U63, c->shard_target_bytes,
                      &c->shard_target_bytes, e)))
        return rc;
    if ((rc = get_enum(o, "ManifestMetadata", path, n_meta, (int)c->manifest_meta, &v, e)))
        return rc;
    c->manifest_meta = (s3s_manifest_meta)v;
    if ((rc = get_u64(o, "MaxRecordBytes", path, 64, 1ull << 30, c->max_record_bytes,
                      &c->max_record_bytes, e)))
        return rc;
    if ((rc = get_bool(o, "SkipBadRecords", path, 0, &c->skip_bad_records, e)))
        return rc;
    uint64_t rps = 0;
    if ((rc = get_u64(o, "RecordsPerShard", path, 0, 65536, c->records_per_shard, &rps, e)))
        return rc;
    c->records_per_shard = (uint32_t)rps;
    if ((rc = get_enum(o, "EqualSteps", path, n_equal, (int)c->equal_steps, &v, e)))
        return rc;
    c->equal_steps = (s3s_equal_steps)v;
    if ((rc = get_str(o, "LocalPath", path, 0, &s, e)))
        return rc;
    if (s != NULL) {
        if (c->data_type != S3S_DATA_FILESYSTEM)
            return s3s__ei_set(e, S3S_ECONFIG,
                               "%s.LocalPath is only allowed for a FileSystemDataSource channel",
                               path);
        if ((c->local_path = jdup(job, s)) == NULL)
            return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    }
    return 0;
}

static int parse_ours(s3s_job *job, const json_t *o, s3s_errinfo *e)
{
    const char *path = "$.S3Shard";
    s3s_job_settings *st = &job->settings;
    int rc;
    uint64_t u;
    const char *s;
    if (o != NULL) {
        if ((rc = want_object(o, path, e)) || (rc = check_keys(o, path, k_ours, e)))
            return rc;
    }
    json_t *tmp = NULL;
    if (o == NULL)
        o = tmp = json_object();
    if (o == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    rc = get_u64(o, "Epochs", path, 1, 1000000, 1, &u, e);
    st->epochs = (uint32_t)u;
    if (!rc)
        rc = get_u64(o, "ShardTargetBytes", path, 0, U63, DEFAULT_TARGET, &st->shard_target_bytes,
                     e);
    if (!rc && !(rc = get_u64(o, "LeaseSeconds", path, 1, 86400, 60, &u, e)))
        st->lease_seconds = (uint32_t)u;
    if (!rc)
        rc = get_u64(o, "CacheLimitBytes", path, 0, U63, 10ull << 30, &st->cache_limit_bytes, e);
    if (!rc && !(rc = get_str(o, "StateDir", path, 0, &s, e)))
        st->state_dir = jdup(job, s ? s : ".s3shard");
    if (!rc && !(rc = get_str(o, "StateUri", path, 0, &s, e)) && s != NULL) {
        char *b, *k;
        s3s_errinfo sub;
        if (s3s__ds_split_uri(s, &b, &k, &sub) != 0)
            rc = s3s__ei_set(e, S3S_ECONFIG, "%s.StateUri: %s", path, sub.msg);
        else
            st->state_uri = jdup(job, s);
        free(b);
        free(k);
    }
    if (!rc && !(rc = get_str(o, "DataRoot", path, 0, &s, e)))
        st->data_root = jdup(job, s ? s : "/opt/ml/input/data");
    if (!rc)
        rc = get_bool(o, "DropRemainder", path, 0, &st->drop_remainder, e);
    if (!rc) {
        /* DropRemainder true is the shorthand of EqualSteps "Drop"; with both
         * given they must agree. */
        int v, given = json_object_get(o, "EqualSteps") != NULL;
        rc = get_enum(o, "EqualSteps", path, n_equal,
                      st->drop_remainder ? S3S_EQUAL_DROP : S3S_EQUAL_OFF, &v, e);
        if (!rc && given && st->drop_remainder && v != S3S_EQUAL_DROP)
            rc = s3s__ei_set(e, S3S_ECONFIG,
                             "%s.DropRemainder is true but %s.EqualSteps is \"%s\": "
                             "DropRemainder true means EqualSteps \"Drop\"",
                             path, path, n_equal[v]);
        st->equal_steps = (s3s_equal_steps)v;
        st->drop_remainder = v == S3S_EQUAL_DROP;
    }
    if (!rc && (st->state_dir == NULL || st->data_root == NULL))
        rc = s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < job->n; i++) {
        job->ch[i].shard_target_bytes = st->shard_target_bytes;
        job->ch[i].equal_steps = st->equal_steps;
    }
    json_t *chs = rc ? NULL : json_object_get(o, "Channels");
    if (chs != NULL) {
        if ((rc = want_object(chs, "$.S3Shard.Channels", e)) == 0) {
            const char *k;
            json_t *v;
            json_object_foreach(chs, k, v)
            {
                s3s_channel *c = (s3s_channel *)s3s_job_channel_find(job, k);
                if (c == NULL) {
                    rc = s3s__ei_set(e, S3S_ECONFIG,
                                     "$.S3Shard.Channels.%.64s names no channel of "
                                     "InputDataConfig",
                                     k);
                    break;
                }
                char sub[PATH_MAX_LEN];
                snprintf(sub, sizeof(sub), "$.S3Shard.Channels.%.64s", k);
                if ((rc = parse_ours_channel(job, c, v, sub, e)) != 0)
                    break;
            }
        }
    }
    json_decref(tmp);
    return rc;
}

int s3s_job_parse(s3s_job **out, const char *json, size_t len, const char *name, s3s_errinfo *e)
{
    *out = NULL;
    if (name == NULL)
        name = "job";
    if (len > MAX_SPEC_BYTES)
        return s3s__ei_set(e, S3S_ETOOBIG, "%s: job spec is larger than %u bytes", name,
                           MAX_SPEC_BYTES);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (root == NULL)
        return s3s__ei_set(e, S3S_EPARSE, "%s:%d:%d: %s", name, je.line, je.column, je.text);
    s3s_job *job = calloc(1, sizeof(*job));
    int rc = 0;
    json_t *idc = root, *ours = NULL;
    if (job == NULL) {
        rc = s3s__ei_set(e, S3S_ENOMEM, "out of memory");
        goto out;
    }
    if (json_is_object(root)) {
        if ((rc = check_keys(root, "$", k_root, e)))
            goto out;
        idc = json_object_get(root, "InputDataConfig");
        ours = json_object_get(root, "S3Shard");
        if (idc == NULL) {
            rc = s3s__ei_set(e, S3S_ECONFIG, "missing required key $.InputDataConfig");
            goto out;
        }
        if (!json_is_array(idc)) {
            rc = s3s__ei_set(e, S3S_ECONFIG, "expected an array at $.InputDataConfig, got %s",
                             type_name(idc));
            goto out;
        }
    } else if (!json_is_array(root)) {
        rc = s3s__ei_set(e, S3S_ECONFIG,
                         "expected an object with InputDataConfig (or an InputDataConfig array) "
                         "at $, got %s",
                         type_name(root));
        goto out;
    }
    job->n = json_array_size(idc);
    if (job->n < 1 || job->n > MAX_CHANNELS) {
        rc = s3s__ei_set(e, S3S_ECONFIG, "$.InputDataConfig has %zu channels: expected 1 to %d",
                         job->n, MAX_CHANNELS);
        job->n = 0;
        goto out;
    }
    for (size_t i = 0; i < job->n; i++)
        if ((rc = parse_channel(job, i, json_array_get(idc, i), e)) != 0)
            goto out;
    rc = parse_ours(job, ours, e);
out:
    json_decref(root);
    if (rc != 0) {
        if (e != NULL && rc == S3S_ECONFIG) {
            char tmp[sizeof(e->msg)];
            memcpy(tmp, e->msg, sizeof(tmp));
            size_t nl = strlen(name) > 200 ? 200 : strlen(name);
            memcpy(e->msg, name, nl);
            memcpy(e->msg + nl, ": ", 2);
            memcpy(e->msg + nl + 2, tmp, sizeof(e->msg) - nl - 3);
            e->msg[sizeof(e->msg) - 1] = '\0';
        }
        s3s_job_destroy(job);
        return rc;
    }
    *out = job;
    return 0;
}

int s3s_job_load(s3s_job **out, const char *path, s3s_errinfo *e)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return s3s__ei_set(e, errno == ENOENT ? S3S_ENOTFOUND : S3S_EIO, "%s: %s", path,
                           strerror(errno));
    char *buf = malloc(MAX_SPEC_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    }
    size_t n = fread(buf, 1, MAX_SPEC_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    int rc;
    if (bad)
        rc = s3s__ei_set(e, S3S_EIO, "%s: read error", path);
    else if (n > MAX_SPEC_BYTES)
        rc = s3s__ei_set(e, S3S_ETOOBIG, "%s: job spec is larger than %u bytes", path,
                         MAX_SPEC_BYTES);
    else
        rc = s3s_job_parse(out, buf, n, path, e);
    free(buf);
    return rc;
}

void s3s_job_destroy(s3s_job *job)
{
    if (job == NULL)
        return;
    for (size_t i = 0; i < job->nstrs; i++)
        free(job->strs[i]);
    free(job->strs);
    free(job);
}

size_t s3s_job_channel_count(const s3s_job *job)
{
    return job->n;
}

const s3s_channel *s3s_job_channel(const s3s_job *job, size_t i)
{
    return i < job->n ? &job->ch[i] : NULL;
}

const s3s_channel *s3s_job_channel_find(const s3s_job *job, const char *name)
{
    for (size_t i = 0; i < job->n; i++)
        if (strcmp(job->ch[i].name, name) == 0)
            return &job->ch[i];
    return NULL;
}

const s3s_job_settings *s3s_job_settings_get(const s3s_job *job)
{
    return &job->settings;
}

/* ---- the resolved job as JSON ---- */

static void set_str(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, v ? json_string(v) : json_null());
}

static void set_u64(json_t *o, const char *k, uint64_t v)
{
    json_object_set_new(o, k, json_integer((json_int_t)v));
}

static json_t *channel_json(const s3s_channel *c)
{
    json_t *o = json_object(), *ds = json_object(), *src = json_object();
    set_str(o, "ChannelName", c->name);
    if (c->data_type == S3S_DATA_FILESYSTEM) {
        set_str(src, "DirectoryPath", c->uri);
        set_str(src, "FileSystemType", c->fs_type);
        set_str(src, "FileSystemAccessMode", c->fs_access_mode);
        set_str(src, "FileSystemId", c->fs_id);
        json_object_set_new(ds, "FileSystemDataSource", src);
    } else {
        set_str(src, "S3DataType", n_s3type[c->data_type]);
        set_str(src, "S3Uri", c->uri);
        set_str(src, "S3DataDistributionType",
                c->distribution == S3S_DIST_SHARDED_BY_S3_KEY ? "ShardedByS3Key"
                                                              : "FullyReplicated");
        if (c->n_attribute_names > 0) {
            json_t *a = json_array();
            for (size_t i = 0; i < c->n_attribute_names; i++)
                json_array_append_new(a, json_string(c->attribute_names[i]));
            json_object_set_new(src, "AttributeNames", a);
        }
        json_object_set_new(ds, "S3DataSource", src);
    }
    json_object_set_new(o, "DataSource", ds);
    set_str(o, "InputMode", n_mode[c->input_mode]);
    set_str(o, "RecordWrapperType", n_wrap[c->record_io]);
    set_str(o, "CompressionType", n_comp[c->gzip]);
    if (c->content_type != NULL)
        set_str(o, "ContentType", c->content_type);
    if (c->shuffle) {
        json_t *sc = json_object();
        json_object_set_new(sc, "Seed", json_integer((json_int_t)c->seed));
        json_object_set_new(o, "ShuffleConfig", sc);
    }
    return o;
}

static json_t *ours_channel_json(const s3s_channel *c)
{
    json_t *o = json_object();
    set_str(o, "Distribution", n_dist[c->distribution]);
    set_str(o, "BalanceBy", n_balance[c->balance]);
    set_u64(o, "ShardTargetBytes", c->shard_target_bytes);
    if (c->data_type == S3S_DATA_FILESYSTEM)
        set_str(o, "LocalPath", c->local_path);
    set_str(o, "ManifestMetadata", n_meta[c->manifest_meta]);
    set_u64(o, "MaxRecordBytes", c->max_record_bytes);
    json_object_set_new(o, "SkipBadRecords", json_boolean(c->skip_bad_records));
    set_str(o, "EqualSteps", n_equal[c->equal_steps]);
    if (c->records_per_shard != 0) /* absent when automatic: the job hash stays */
        set_u64(o, "RecordsPerShard", c->records_per_shard);
    return o;
}

int s3s_job_to_json(const s3s_job *job, char **out, s3s_errinfo *e)
{
    *out = NULL;
    json_t *root = json_object(), *idc = json_array(), *ours = json_object(), *chs = json_object();
    const s3s_job_settings *st = &job->settings;
    for (size_t i = 0; i < job->n; i++) {
        json_array_append_new(idc, channel_json(&job->ch[i]));
        json_object_set_new(chs, job->ch[i].name, ours_channel_json(&job->ch[i]));
    }
    json_object_set_new(root, "InputDataConfig", idc);
    set_u64(ours, "Epochs", st->epochs);
    set_u64(ours, "ShardTargetBytes", st->shard_target_bytes);
    set_u64(ours, "LeaseSeconds", st->lease_seconds);
    set_u64(ours, "CacheLimitBytes", st->cache_limit_bytes);
    set_str(ours, "StateDir", st->state_dir);
    if (st->state_uri != NULL)
        set_str(ours, "StateUri", st->state_uri);
    set_str(ours, "DataRoot", st->data_root);
    json_object_set_new(ours, "DropRemainder", json_boolean(st->drop_remainder));
    set_str(ours, "EqualSteps", n_equal[st->equal_steps]);
    json_object_set_new(ours, "Channels", chs);
    json_object_set_new(root, "S3Shard", ours);
    *out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (*out == NULL)
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    return 0;
}
