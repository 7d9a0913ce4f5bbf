/* creds_test.c: the credential chain's order (explicit, environment, shared
 * file with profiles) and the region chain, with real files in a tmpdir. */
#include "tests/support/testenv.h"

#include "common/s3/creds.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <string.h>

static char *dir;

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    dir = s3s_test_tmpdir("creds");
    const char *vars[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                          "AWS_SESSION_TOKEN", "AWS_PROFILE",
                          "AWS_REGION",        "AWS_DEFAULT_REGION",
                          "AWS_CONFIG_FILE",   "AWS_SHARED_CREDENTIALS_FILE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    setenv("HOME", dir, 1); /* no ~/.aws of the machine's user leaks in */
    char p[512];
    snprintf(p, sizeof p, "%s/credentials", dir);
    setenv("AWS_SHARED_CREDENTIALS_FILE", p, 1);
    snprintf(p, sizeof p, "%s/config", dir);
    setenv("AWS_CONFIG_FILE", p, 1);
    write_file("credentials",
               "# comment\n[default]\naws_access_key_id = FILEDEF\n"
               "aws_secret_access_key=filedefsecret\n\n"
               "[work]\n  aws_access_key_id=FILEWORK  \n"
               "aws_secret_access_key = worksecret\naws_session_token = worktok\n"
               "[broken]\naws_access_key_id = ONLYID\n");
    write_file("config", "[default]\nregion = eu-west-1\n[profile work]\nregion=ap-south-1\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    s3s_test_rmtree(dir);
    free(dir);
    return 0;
}

static void test_explicit_wins(void **state)
{
    (void)state;
    setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    s3s__creds c;
    s3s__errbuf eb;
    s3s__creds_opts o = {"EXPID", "expsecret", "exptok", "work"};
    assert_int_equal(s3s__creds_resolve(&c, &o, &eb), 0);
    assert_string_equal(c.access_key_id, "EXPID");
    assert_string_equal(c.secret_access_key, "expsecret");
    assert_string_equal(c.session_token, "exptok");
    assert_string_equal(c.source, "explicit");
    s3s__creds_fini(&c);
    /* Half an explicit pair is an error, not a silent fallback. */
    s3s__creds_opts half = {"EXPID", NULL, NULL, NULL};
    assert_int_equal(s3s__creds_resolve(&c, &half, &eb), S3S_ECREDS);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
}

static void test_env_before_file(void **state)
{
    (void)state;
    setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_SESSION_TOKEN", "envtok", 1);
    s3s__creds c;
    s3s__errbuf eb;
    assert_int_equal(s3s__creds_resolve(&c, NULL, &eb), 0);
    assert_string_equal(c.access_key_id, "ENVID");
    assert_string_equal(c.session_token, "envtok");
    assert_null(strstr(c.source, "envsecret")); /* never the secret */
    s3s__creds_fini(&c);
    /* Only one of the pair in the environment: the file is used. */
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    assert_int_equal(s3s__creds_resolve(&c, NULL, &eb), 0);
    assert_string_equal(c.access_key_id, "FILEDEF");
    assert_null(c.session_token);
    s3s__creds_fini(&c);
    unsetenv("AWS_ACCESS_KEY_ID");
}

static void test_file_profiles(void **state)
{
    (void)state;
    s3s__creds c;
    s3s__errbuf eb;
    s3s__creds_opts o = {NULL, NULL, NULL, "work"};
    assert_int_equal(s3s__creds_resolve(&c, &o, &eb), 0);
    assert_string_equal(c.access_key_id, "FILEWORK");
    assert_string_equal(c.secret_access_key, "worksecret");
    assert_string_equal(c.session_token, "worktok");
    assert_non_null(strstr(c.source, "[work]"));
    s3s__creds_fini(&c);
    /* AWS_PROFILE when the options name none. */
    setenv("AWS_PROFILE", "work", 1);
    assert_int_equal(s3s__creds_resolve(&c, NULL, &eb), 0);
    assert_string_equal(c.access_key_id, "FILEWORK");
    s3s__creds_fini(&c);
    /* The options' profile beats AWS_PROFILE. */
    s3s__creds_opts d = {NULL, NULL, NULL, "default"};
    assert_int_equal(s3s__creds_resolve(&c, &d, &eb), 0);
    assert_string_equal(c.access_key_id, "FILEDEF");
    s3s__creds_fini(&c);
    unsetenv("AWS_PROFILE");
    /* A named profile that does not exist, and one missing its secret. */
    s3s__creds_opts m = {NULL, NULL, NULL, "missing"};
    s3s__err_clear(&eb);
    assert_int_equal(s3s__creds_resolve(&c, &m, &eb), S3S_ECREDS);
    assert_non_null(strstr(eb.msg, "profile 'missing' not found"));
    s3s__creds_opts b = {NULL, NULL, NULL, "broken"};
    assert_int_equal(s3s__creds_resolve(&c, &b, &eb), S3S_ECREDS);
    assert_non_null(strstr(eb.msg, "lacks"));
    assert_null(strstr(eb.msg, "ONLYID"));
}

static void test_nothing_found(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/none", dir);
    setenv("AWS_SHARED_CREDENTIALS_FILE", p, 1);
    s3s__creds c;
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_int_equal(s3s__creds_resolve(&c, NULL, &eb), S3S_ECREDS);
    assert_non_null(strstr(eb.msg, "AWS_ACCESS_KEY_ID"));
    snprintf(p, sizeof p, "%s/credentials", dir);
    setenv("AWS_SHARED_CREDENTIALS_FILE", p, 1);
}

static void test_region_chain(void **state)
{
    (void)state;
    char *r = NULL;
    s3s__errbuf eb;
    assert_int_equal(s3s__region_resolve(&r, NULL, NULL, &eb), 0);
    assert_string_equal(r, "eu-west-1"); /* [default] in the config file */
    free(r);
    assert_int_equal(s3s__region_resolve(&r, NULL, "work", &eb), 0);
    assert_string_equal(r, "ap-south-1"); /* [profile work] */
    free(r);
    setenv("AWS_DEFAULT_REGION", "us-west-1", 1);
    assert_int_equal(s3s__region_resolve(&r, NULL, "work", &eb), 0);
    assert_string_equal(r, "us-west-1");
    free(r);
    setenv("AWS_REGION", "us-west-2", 1);
    assert_int_equal(s3s__region_resolve(&r, NULL, NULL, &eb), 0);
    assert_string_equal(r, "us-west-2");
    free(r);
    assert_int_equal(s3s__region_resolve(&r, "sa-east-1", NULL, &eb), 0);
    assert_string_equal(r, "sa-east-1");
    free(r);
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    assert_int_equal(s3s__region_resolve(&r, NULL, "noregion", &eb), 0);
    assert_string_equal(r, "us-east-1");
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explicit_wins), cmocka_unit_test(test_env_before_file),
        cmocka_unit_test(test_file_profiles), cmocka_unit_test(test_nothing_found),
        cmocka_unit_test(test_region_chain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
