/* creds.c: the credential and region chains (see creds.h). */
#include "common/s3/creds.h"

#include "common/s3/ini.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static void wipe_free(char *s)
{
    if (s == NULL)
        return;
    volatile char *p = s;
    while (*p != '\0')
        *p++ = '\0';
    free(s);
}

void s3s__creds_fini(s3s__creds *c)
{
    if (c == NULL)
        return;
    free(c->access_key_id);
    wipe_free(c->secret_access_key);
    wipe_free(c->session_token);
    c->access_key_id = c->secret_access_key = c->session_token = NULL;
}

static int set3(s3s__creds *c, const char *id, const char *secret, const char *token)
{
    c->access_key_id = strdup(id);
    c->secret_access_key = strdup(secret);
    c->session_token = token != NULL && token[0] != '\0' ? strdup(token) : NULL;
    if (c->access_key_id == NULL || c->secret_access_key == NULL ||
        (token != NULL && token[0] != '\0' && c->session_token == NULL)) {
        s3s__creds_fini(c);
        return S3S_ENOMEM;
    }
    return 0;
}

/* The path of ~/.aws/<name> or of the file named by the variable. */
static void aws_file(char *buf, size_t n, const char *var, const char *name)
{
    const char *p = env(var);
    if (p != NULL) {
        snprintf(buf, n, "%s", p);
        return;
    }
    const char *home = env("HOME");
    snprintf(buf, n, "%s/.aws/%s", home != NULL ? home : "", name);
}

static const char *profile_name(const char *p)
{
    if (p != NULL && p[0] != '\0')
        return p;
    p = env("AWS_PROFILE");
    return p != NULL ? p : "default";
}

int s3s__creds_resolve(s3s__creds *out, const s3s__creds_opts *o, s3s__errbuf *eb)
{
    s3s__creds_opts none = {0};
    memset(out, 0, sizeof *out);
    if (o == NULL)
        o = &none;
    /* 1. explicit */
    if (o->access_key_id != NULL || o->secret_access_key != NULL) {
        if (o->access_key_id == NULL || o->secret_access_key == NULL)
            return s3s__err_set(eb, S3S_ECREDS,
                                "explicit credentials need both an access key id and a secret");
        snprintf(out->source, sizeof out->source, "explicit");
        return set3(out, o->access_key_id, o->secret_access_key, o->session_token);
    }
    /* 2. environment */
    const char *id = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
    if (id != NULL && secret != NULL) {
        snprintf(out->source, sizeof out->source, "environment (AWS_ACCESS_KEY_ID)");
        return set3(out, id, secret, env("AWS_SESSION_TOKEN"));
    }
    /* 3. shared credentials file */
    char path[4096];
    const char *profile = profile_name(o->profile);
    int named = (o->profile != NULL && o->profile[0] != '\0') || env("AWS_PROFILE") != NULL;
    char *fid = NULL, *fsecret = NULL, *ftoken = NULL;
    aws_file(path, sizeof path, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
    int rc = s3s__ini_get(path, profile, "aws_access_key_id", &fid, eb);
    if (rc == 0)
        rc = s3s__ini_get(path, profile, "aws_secret_access_key", &fsecret, eb);
    if (rc == 0)
        rc = s3s__ini_get(path, profile, "aws_session_token", &ftoken, eb);
    if (rc == 0 && fid != NULL && fsecret != NULL) {
        snprintf(out->source, sizeof out->source, "%.180s [%.60s]", path, profile);
        rc = set3(out, fid, fsecret, ftoken);
    } else if (rc == 0) {
        if (named && !s3s__ini_has_section(path, profile))
            rc = s3s__err_set(eb, S3S_ECREDS, "profile '%s' not found in %s", profile, path);
        else if (fid != NULL || fsecret != NULL)
            rc = s3s__err_set(eb, S3S_ECREDS,
                              "profile '%s' in %s lacks aws_access_key_id or "
                              "aws_secret_access_key",
                              profile, path);
        else
            rc = s3s__err_set(eb, S3S_ECREDS,
                              "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                              "or put profile '%s' in %s",
                              profile, path);
    }
    free(fid);
    wipe_free(fsecret);
    wipe_free(ftoken);
    return rc;
}

int s3s__region_resolve(char **out, const char *explicit_region, const char *profile,
                        s3s__errbuf *eb)
{
    const char *r = explicit_region != NULL && explicit_region[0] != '\0' ? explicit_region : NULL;
    *out = NULL;
    if (r == NULL)
        r = env("AWS_REGION");
    if (r == NULL)
        r = env("AWS_DEFAULT_REGION");
    if (r == NULL) {
        char path[4096], section[512];
        const char *p = profile_name(profile);
        aws_file(path, sizeof path, "AWS_CONFIG_FILE", "config");
        if (strcmp(p, "default") == 0)
            snprintf(section, sizeof section, "default");
        else
            snprintf(section, sizeof section, "profile %s", p);
        int rc = s3s__ini_get(path, section, "region", out, eb);
        if (rc != 0)
            return rc;
        if (*out != NULL && (*out)[0] != '\0')
            return 0;
        free(*out);
        *out = NULL;
        r = "us-east-1";
    }
    *out = strdup(r);
    return *out != NULL ? 0 : S3S_ENOMEM;
}
