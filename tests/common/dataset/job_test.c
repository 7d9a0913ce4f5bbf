/* job_test.c: the job spec parser: SageMaker's InputDataConfig verbatim, our
 * S3Shard settings and defaults, and every validation rule with its message. */
#include "tests/support/testenv.h"

#include "s3shard/dataset.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static s3s_job *parse_ok(const char *json)
{
    s3s_job *job = NULL;
    s3s_errinfo e = {0};
    int rc = s3s_job_parse(&job, json, strlen(json), "job.json", &e);
    if (rc != 0)
        fprintf(stderr, "unexpected failure: %s\n", e.msg);
    assert_int_equal(rc, 0);
    assert_non_null(job);
    return job;
}

/* parse_fail asserts the code and that the message contains want. */
static void parse_fail(const char *json, int code, const char *want)
{
    s3s_job *job = (s3s_job *)1;
    s3s_errinfo e = {0};
    int rc = s3s_job_parse(&job, json, strlen(json), "job.json", &e);
    if (rc != code || strstr(e.msg, want) == NULL)
        fprintf(stderr, "rc %d, message: %s\nwanted %d and: %s\n", rc, e.msg, code, want);
    assert_int_equal(rc, code);
    assert_null(job);
    assert_non_null(strstr(e.msg, want));
    assert_int_equal(e.code, code);
}

static const char sagemaker[] =
    "{\"InputDataConfig\": [\n"
    " {\"ChannelName\": \"train\", \"DataSource\": {\"S3DataSource\": {\n"
    "   \"S3DataType\": \"S3Prefix\", \"S3Uri\": \"s3://my-bucket/data/train/\",\n"
    "   \"S3DataDistributionType\": \"ShardedByS3Key\"}},\n"
    "  \"InputMode\": \"FastFile\", \"ShuffleConfig\": {\"Seed\": 42},\n"
    "  \"ContentType\": \"application/x-image\", \"CompressionType\": \"None\",\n"
    "  \"RecordWrapperType\": \"None\"},\n"
    " {\"ChannelName\": \"labels\", \"DataSource\": {\"S3DataSource\": {\n"
    "   \"S3DataType\": \"AugmentedManifestFile\", \"S3Uri\": \"s3://my-bucket/m.jsonl\",\n"
    "   \"AttributeNames\": [\"source-ref\", \"class\"]}}, \"InputMode\": \"Pipe\",\n"
    "  \"RecordWrapperType\": \"RecordIO\", \"CompressionType\": \"Gzip\"},\n"
    " {\"ChannelName\": \"fsx\", \"DataSource\": {\"FileSystemDataSource\": {\n"
    "   \"DirectoryPath\": \"/fsx/data\", \"FileSystemType\": \"FSxLustre\",\n"
    "   \"FileSystemAccessMode\": \"ro\", \"FileSystemId\": \"fs-0123\"}}}\n"
    "], \"S3Shard\": {\"Epochs\": 3, \"LeaseSeconds\": 30, \"StateDir\": \"/tmp/st\",\n"
    "  \"Channels\": {\"train\": {\"Distribution\": \"Dynamic\", \"BalanceBy\": \"bytes\",\n"
    "  \"ShardTargetBytes\": 1000}, \"fsx\": {\"LocalPath\": \"/mnt/fsx\"}}}}\n";

static void test_sagemaker_verbatim(void **state)
{
    (void)state;
    s3s_job *job = parse_ok(sagemaker);
    assert_int_equal(s3s_job_channel_count(job), 3);
    const s3s_channel *t = s3s_job_channel_find(job, "train");
    assert_non_null(t);
    assert_int_equal(t->data_type, S3S_DATA_S3_PREFIX);
    assert_string_equal(t->bucket, "my-bucket");
    assert_string_equal(t->key, "data/train/");
    assert_int_equal(t->input_mode, S3S_MODE_FASTFILE);
    assert_int_equal(t->distribution, S3S_DIST_DYNAMIC); /* S3Shard overrides */
    assert_int_equal(t->balance, S3S_BALANCE_BYTES);
    assert_int_equal(t->shard_target_bytes, 1000);
    assert_true(t->shuffle);
    assert_int_equal(t->seed, 42);
    assert_string_equal(t->content_type, "application/x-image");
    const s3s_channel *l = s3s_job_channel(job, 1);
    assert_int_equal(l->data_type, S3S_DATA_AUGMENTED_MANIFEST);
    assert_int_equal(l->n_attribute_names, 2);
    assert_string_equal(l->attribute_names[0], "source-ref");
    assert_string_equal(l->attribute_names[1], "class");
    assert_int_equal(l->record_io, 1);
    assert_int_equal(l->gzip, 1);
    assert_int_equal(l->distribution, S3S_DIST_FULLY_REPLICATED);
    assert_int_equal(l->shard_target_bytes, 64ull << 20); /* job-wide default */
    assert_false(l->shuffle);
    const s3s_channel *f = s3s_job_channel(job, 2);
    assert_int_equal(f->data_type, S3S_DATA_FILESYSTEM);
    assert_string_equal(f->uri, "/fsx/data");
    assert_string_equal(f->local_path, "/mnt/fsx");
    assert_string_equal(f->fs_type, "FSxLustre");
    assert_null(s3s_job_channel(job, 3));
    const s3s_job_settings *st = s3s_job_settings_get(job);
    assert_int_equal(st->epochs, 3);
    assert_int_equal(st->lease_seconds, 30);
    assert_string_equal(st->state_dir, "/tmp/st");
    assert_string_equal(st->data_root, "/opt/ml/input/data");
    assert_int_equal(st->cache_limit_bytes, 10ull << 30);
    char *js = NULL;
    assert_int_equal(s3s_job_to_json(job, &js, NULL), 0);
    assert_non_null(strstr(js, "\"Distribution\": \"Dynamic\""));
    assert_non_null(strstr(js, "\"ManifestMetadata\": \"List\""));
    /* the resolved JSON parses back to the same job */
    s3s_job *again = parse_ok(js);
    char *js2 = NULL;
    assert_int_equal(s3s_job_to_json(again, &js2, NULL), 0);
    assert_string_equal(js, js2);
    free(js);
    free(js2);
    s3s_job_destroy(again);
    s3s_job_destroy(job);
}

static void test_bare_array_and_defaults(void **state)
{
    (void)state;
    s3s_job *job =
        parse_ok("[{\"ChannelName\": \"a.b-c_9\", \"DataSource\": {\"S3DataSource\":"
                 " {\"S3DataType\": \"ManifestFile\", \"S3Uri\": \"s3://bkt/m.json\"}}}]");
    const s3s_channel *c = s3s_job_channel(job, 0);
    assert_int_equal(c->input_mode, S3S_MODE_FILE);
    assert_int_equal(c->distribution, S3S_DIST_FULLY_REPLICATED);
    assert_int_equal(c->balance, S3S_BALANCE_COUNT);
    assert_int_equal(c->max_record_bytes, 8u << 20);
    assert_int_equal(s3s_job_settings_get(job)->epochs, 1);
    assert_string_equal(s3s_job_settings_get(job)->state_dir, ".s3shard");
    assert_null(s3s_job_settings_get(job)->state_uri);
    s3s_job_destroy(job);
}

#define CH(body) "{\"InputDataConfig\": [" body "]}"
#define S3(extra)                                                                                  \
    "{\"ChannelName\": \"train\", \"DataSource\": {\"S3DataSource\": {\"S3DataType\": "            \
    "\"S3Prefix\", \"S3Uri\": \"s3://bkt/p/\"}}" extra "}"

static void test_syntax_error_position(void **state)
{
    (void)state;
    parse_fail("{\"InputDataConfig\": [\n  {\"ChannelName\": \"x\",,}\n]}", S3S_EPARSE,
               "job.json:2:");
    parse_fail("", S3S_EPARSE, "job.json:");
    parse_fail("{\"InputDataConfig\": [], \"InputDataConfig\": []}", S3S_EPARSE, "duplicate");
}

static void test_unknown_keys_with_path(void **state)
{
    (void)state;
    parse_fail(CH(S3(", \"Inputmode\": \"File\"")), S3S_ECONFIG,
               "unknown key \"Inputmode\" at $.InputDataConfig[0]");
    parse_fail("{\"InputDataConfig\": [" S3("") "], \"Extra\": 1}", S3S_ECONFIG,
               "unknown key \"Extra\" at $");
    parse_fail("{\"InputDataConfig\": [" S3("") "], \"S3Shard\": {\"Epoch\": 2}}", S3S_ECONFIG,
               "unknown key \"Epoch\" at $.S3Shard");
    parse_fail("{\"InputDataConfig\": [" S3("") "], \"S3Shard\": {\"Channels\": {\"train\": "
                                                "{\"Distrib\": 1}}}}",
               S3S_ECONFIG, "unknown key \"Distrib\" at $.S3Shard.Channels.train");
    parse_fail(CH("{\"ChannelName\": \"t\", \"DataSource\": {\"S3DataSource\": {\"S3DataType\": "
                  "\"S3Prefix\", \"S3Uri\": \"s3://bkt/p/\", \"Foo\": 1}}}"),
               S3S_ECONFIG, "unknown key \"Foo\" at $.InputDataConfig[0].DataSource.S3DataSource");
}

static void test_wrong_types_with_path(void **state)
{
    (void)state;
    parse_fail(CH("{\"ChannelName\": 5}"), S3S_ECONFIG,
               "expected a string at $.InputDataConfig[0].ChannelName, got an integer");
    parse_fail(CH(S3(", \"ShuffleConfig\": {\"Seed\": \"7\"}")), S3S_ECONFIG,
               "expected an integer at $.InputDataConfig[0].ShuffleConfig.Seed, got a string");
    parse_fail("{\"InputDataConfig\": {}}", S3S_ECONFIG,
               "expected an array at $.InputDataConfig, got an object");
    parse_fail("{\"InputDataConfig\": [" S3("") "], \"S3Shard\": {\"Epochs\": 1.5}}", S3S_ECONFIG,
               "expected an integer at $.S3Shard.Epochs, got a number");
    parse_fail("{\"InputDataConfig\": [" S3("") "], \"S3Shard\": {\"DropRemainder\": 1}}",
               S3S_ECONFIG, "expected true or false at $.S3Shard.DropRemainder");
    parse_fail("{\"InputDataConfig\": [" S3("") "], \"S3Shard\": {\"Epochs\": 0}}", S3S_ECONFIG,
               "$.S3Shard.Epochs is 0");
    parse_fail("42", S3S_ECONFIG, "at $, got an integer");
}

static void test_channel_rules(void **state)
{
    (void)state;
    parse_fail(CH("{\"ChannelName\": \"bad name\", \"DataSource\": {}}"), S3S_ECONFIG,
               "ChannelName \"bad name\" is invalid");
    parse_fail(CH("{\"ChannelName\": \"\", \"DataSource\": {}}"), S3S_ECONFIG, "is invalid");
    char longname[200];
    snprintf(longname, sizeof(longname), CH("{\"ChannelName\": \"%065d\", \"DataSource\": {}}"), 0);
    parse_fail(longname, S3S_ECONFIG, "is invalid");
    parse_fail(CH(S3("") "," S3("")), S3S_ECONFIG, "\"train\" repeats channel 0");
    parse_fail("{\"InputDataConfig\": []}", S3S_ECONFIG, "has 0 channels: expected 1 to 20");
    /* 21 channels fail, 20 pass */
    for (int count = 21; count >= 20; count--) {
        char big[8192] = "[";
        for (int i = 0; i < count; i++) {
            char one[256];
            snprintf(one, sizeof(one),
                     "%s{\"ChannelName\": \"c%d\", \"DataSource\": {\"S3DataSource\": "
                     "{\"S3DataType\": \"S3Prefix\", \"S3Uri\": \"s3://bkt/p/\"}}}",
                     i ? "," : "", i);
            strcat(big, one);
        }
        strcat(big, "]");
        if (count == 21)
            parse_fail(big, S3S_ECONFIG, "has 21 channels");
        else
            s3s_job_destroy(parse_ok(big));
    }
}

static void test_source_rules(void **state)
{
    (void)state;
    parse_fail(CH("{\"ChannelName\": \"t\", \"DataSource\": {}}"), S3S_ECONFIG,
               "needs exactly one of S3DataSource and FileSystemDataSource");
    parse_fail(CH("{\"ChannelName\": \"t\", \"DataSource\": {\"S3DataSource\": {\"S3DataType\": "
                  "\"S3Prefix\", \"S3Uri\": \"http://x/y\"}}}"),
               S3S_ECONFIG, "S3Uri: expected an s3://bucket/key URI");
    parse_fail(CH("{\"ChannelName\": \"t\", \"DataSource\": {\"S3DataSource\": {\"S3DataType\": "
                  "\"Prefix\", \"S3Uri\": \"s3://bkt/\"}}}"),
               S3S_ECONFIG,
               "invalid value \"Prefix\" at $.InputDataConfig[0].DataSource.S3DataSource."
               "S3DataType: expected one of S3Prefix|ManifestFile|AugmentedManifestFile");
    parse_fail(CH("{\"ChannelName\": \"t\", \"DataSource\": {\"S3DataSource\": {\"S3Uri\": "
                  "\"s3://bkt/\"}}}"),
               S3S_ECONFIG,
               "missing required key $.InputDataConfig[0].DataSource.S3DataSource."
               "S3DataType");
    parse_fail(CH("{\"ChannelName\": \"t\", \"DataSource\": {\"S3DataSource\": {\"S3DataType\": "
                  "\"AugmentedManifestFile\", \"S3Uri\": \"s3://bkt/m\"}}}"),
               S3S_ECONFIG, "needs the attributes");
    parse_fail(CH("{\"ChannelName\": \"t\", \"DataSource\": {\"S3DataSource\": {\"S3DataType\": "
                  "\"S3Prefix\", \"S3Uri\": \"s3://bkt/m\", \"AttributeNames\": [\"a\"]}}}"),
               S3S_ECONFIG, "only allowed with S3DataType AugmentedManifestFile");
    parse_fail(CH("{\"ChannelName\": \"t\", \"DataSource\": {\"S3DataSource\": {\"S3DataType\": "
                  "\"ManifestFile\", \"S3Uri\": \"s3://bkt/m\"}}, \"InputMode\": \"FastFile\"}"),
               S3S_ECONFIG, "FastFile works with S3DataType S3Prefix only");
    parse_fail(CH("{\"ChannelName\": \"t\", \"DataSource\": {\"FileSystemDataSource\": "
                  "{\"DirectoryPath\": \"rel/path\"}}}"),
               S3S_ECONFIG, "must be an absolute path");
    parse_fail(CH(S3(", \"InputMode\": \"Stream\"")), S3S_ECONFIG,
               "expected one of File|FastFile|Pipe");
    parse_fail(CH(S3(", \"ShuffleConfig\": {}")), S3S_ECONFIG,
               "missing required key $.InputDataConfig[0].ShuffleConfig.Seed");
    parse_fail("{\"InputDataConfig\": [" S3("") "], \"S3Shard\": {\"Channels\": {\"valid\": {}}}}",
               S3S_ECONFIG, "$.S3Shard.Channels.valid names no channel");
    parse_fail("{\"InputDataConfig\": [" S3("") "], \"S3Shard\": {\"Channels\": {\"train\": "
                                                "{\"LocalPath\": \"/x\"}}}}",
               S3S_ECONFIG, "LocalPath is only allowed for a FileSystemDataSource");
    parse_fail("{\"InputDataConfig\": [" S3("") "], \"S3Shard\": {\"StateUri\": \"/x\"}}",
               S3S_ECONFIG, "$.S3Shard.StateUri: expected an s3://");
}

static void test_negative_seed_and_load(void **state)
{
    (void)state;
    s3s_job *job = parse_ok(CH(S3(", \"ShuffleConfig\": {\"Seed\": -1}")));
    assert_int_equal(s3s_job_channel(job, 0)->seed, UINT64_MAX);
    s3s_job_destroy(job);
    char *dir = s3s_test_tmpdir("job");
    char path[512];
    snprintf(path, sizeof(path), "%s/job.json", dir);
    FILE *f = fopen(path, "w");
    fputs(sagemaker, f);
    fclose(f);
    s3s_errinfo e = {0};
    assert_int_equal(s3s_job_load(&job, path, &e), 0);
    assert_int_equal(s3s_job_channel_count(job), 3);
    s3s_job_destroy(job);
    snprintf(path, sizeof(path), "%s/missing.json", dir);
    assert_int_equal(s3s_job_load(&job, path, &e), S3S_ENOTFOUND);
    assert_non_null(strstr(e.msg, "missing.json"));
    s3s_test_rmtree(dir);
    free(dir);
}

/* EqualSteps: job-wide (or DropRemainder true), per channel, round trip, refusals. */
static void test_equal_steps(void **state)
{
    (void)state;
    const char *two = "{\"InputDataConfig\": [{\"ChannelName\": \"train\", \"DataSource\": "
                      "{\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", \"S3Uri\": "
                      "\"s3://bkt/t/\"}}}, {\"ChannelName\": \"val\", \"DataSource\": "
                      "{\"S3DataSource\": {\"S3DataType\": \"S3Prefix\", \"S3Uri\": "
                      "\"s3://bkt/v/\"}}}], \"S3Shard\": %s}";
    char buf[1024];
    struct {
        const char *ours;
        s3s_equal_steps job, train, val;
        int drop;
    } cases[] = {
        {"{}", S3S_EQUAL_OFF, S3S_EQUAL_OFF, S3S_EQUAL_OFF, 0},
        {"{\"DropRemainder\": true}", S3S_EQUAL_DROP, S3S_EQUAL_DROP, S3S_EQUAL_DROP, 1},
        {"{\"EqualSteps\": \"Pad\"}", S3S_EQUAL_PAD, S3S_EQUAL_PAD, S3S_EQUAL_PAD, 0},
        {"{\"EqualSteps\": \"Drop\", \"DropRemainder\": true, \"Channels\": {\"val\": "
         "{\"EqualSteps\": \"Off\"}}}",
         S3S_EQUAL_DROP, S3S_EQUAL_DROP, S3S_EQUAL_OFF, 1},
        {"{\"Channels\": {\"train\": {\"EqualSteps\": \"Pad\"}}}", S3S_EQUAL_OFF, S3S_EQUAL_PAD,
         S3S_EQUAL_OFF, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf), two, cases[i].ours);
        s3s_job *job = parse_ok(buf);
        const s3s_job_settings *st = s3s_job_settings_get(job);
        assert_int_equal(st->equal_steps, cases[i].job);
        assert_int_equal(st->drop_remainder, cases[i].drop);
        assert_int_equal(s3s_job_channel_find(job, "train")->equal_steps, cases[i].train);
        assert_int_equal(s3s_job_channel_find(job, "val")->equal_steps, cases[i].val);
        /* the resolved spec parses back to the same settings */
        char *out = NULL;
        s3s_errinfo e = {0};
        assert_int_equal(s3s_job_to_json(job, &out, &e), 0);
        s3s_job *again = parse_ok(out);
        assert_int_equal(s3s_job_settings_get(again)->equal_steps, cases[i].job);
        assert_int_equal(s3s_job_channel_find(again, "train")->equal_steps, cases[i].train);
        assert_int_equal(s3s_job_channel_find(again, "val")->equal_steps, cases[i].val);
        s3s_job_destroy(again);
        free(out);
        s3s_job_destroy(job);
    }
    snprintf(buf, sizeof(buf), two, "{\"EqualSteps\": \"pad\"}");
    parse_fail(buf, S3S_ECONFIG,
               "invalid value \"pad\" at $.S3Shard.EqualSteps: expected one of Off|Drop|Pad");
    snprintf(buf, sizeof(buf), two, "{\"EqualSteps\": \"Pad\", \"DropRemainder\": true}");
    parse_fail(buf, S3S_ECONFIG, "DropRemainder is true but $.S3Shard.EqualSteps is \"Pad\"");
    snprintf(buf, sizeof(buf), two, "{\"Channels\": {\"val\": {\"EqualSteps\": true}}}");
    parse_fail(buf, S3S_ECONFIG, "$.S3Shard.Channels.val");
}

static void test_records_per_shard(void **state)
{
    (void)state;
    const char *spec = "{\"InputDataConfig\": [{\"ChannelName\": \"gt\", \"DataSource\": "
                       "{\"S3DataSource\": {\"S3DataType\": \"AugmentedManifestFile\", "
                       "\"S3Uri\": \"s3://bkt/m.jsonl\", \"AttributeNames\": [\"a\"]}}, "
                       "\"InputMode\": \"Pipe\"}], \"S3Shard\": %s}";
    char buf[1024];
    snprintf(buf, sizeof(buf), spec, "{}");
    s3s_job *job = parse_ok(buf);
    assert_int_equal(s3s_job_channel(job, 0)->records_per_shard, 0); /* automatic */
    char *out = NULL;
    assert_int_equal(s3s_job_to_json(job, &out, NULL), 0);
    assert_null(strstr(out, "RecordsPerShard")); /* the default leaves the job hash alone */
    free(out);
    s3s_job_destroy(job);
    snprintf(buf, sizeof(buf), spec, "{\"Channels\": {\"gt\": {\"RecordsPerShard\": 16}}}");
    job = parse_ok(buf);
    assert_int_equal(s3s_job_channel(job, 0)->records_per_shard, 16);
    s3s_plan_opts po;
    s3s_plan_opts_from_channel(&po, s3s_job_channel(job, 0), 0);
    assert_int_equal(po.records_per_shard, 16);
    assert_int_equal(s3s_job_to_json(job, &out, NULL), 0);
    s3s_job *again = parse_ok(out);
    assert_int_equal(s3s_job_channel(again, 0)->records_per_shard, 16);
    s3s_job_destroy(again);
    free(out);
    s3s_job_destroy(job);
    snprintf(buf, sizeof(buf), spec, "{\"Channels\": {\"gt\": {\"RecordsPerShard\": 65537}}}");
    parse_fail(buf, S3S_ECONFIG, "$.S3Shard.Channels.gt");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sagemaker_verbatim),
        cmocka_unit_test(test_bare_array_and_defaults),
        cmocka_unit_test(test_syntax_error_position),
        cmocka_unit_test(test_unknown_keys_with_path),
        cmocka_unit_test(test_wrong_types_with_path),
        cmocka_unit_test(test_channel_rules),
        cmocka_unit_test(test_source_rules),
        cmocka_unit_test(test_negative_seed_and_load),
        cmocka_unit_test(test_equal_steps),
        cmocka_unit_test(test_records_per_shard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
