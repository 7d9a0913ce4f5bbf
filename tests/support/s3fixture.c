/* s3fixture.c: see s3fixture.h. */
#include "tests/support/s3fixture.h"

#include <stdio.h>
#include <stdlib.h>

int s3s_test_s3fix_start(s3s_test_s3rver *srv, const char *const *buckets)
{
    unsetenv("AWS_ENDPOINT_URL");
    unsetenv("AWS_ENDPOINT_URL_S3");
    return s3s_test_s3rver_start(srv, buckets);
}

void s3s_test_s3fix_opts(const s3s_test_s3rver *srv, s3s_s3_opts *o)
{
    s3s_s3_opts_init(o);
    o->endpoint = srv->endpoint;
    o->access_key_id = "S3RVER";
    o->secret_access_key = "S3RVER";
    o->region = "us-east-1";
    o->retry_base_ms = 10;
    o->max_attempts = 3;
}

int s3s_test_s3fix_put(const s3s_test_s3rver *srv, const char *bucket, const char *key,
                       const void *data, size_t n)
{
    s3s_s3_opts o;
    s3s_test_s3fix_opts(srv, &o);
    s3s_s3 *s3 = NULL;
    if (s3s_s3_create(&s3, &o) != 0)
        return -1;
    int rc = s3s_s3_put(s3, bucket, key, data, n, NULL);
    if (rc != 0)
        fprintf(stderr, "put s3://%s/%s: %s\n", bucket, key, s3s_s3_errmsg(s3));
    s3s_s3_destroy(s3);
    return rc == 0 ? 0 : -1;
}

s3s_snapshot *s3s_test_s3fix_snapshot(const s3s_test_s3rver *srv, const char *uri,
                                      s3s_data_type type, const char *const *attrs)
{
    s3s_s3_opts o;
    s3s_test_s3fix_opts(srv, &o);
    s3s_s3 *s3 = NULL;
    assert_int_equal(s3s_s3_create(&s3, &o), 0);
    s3s_source_opts so;
    s3s_source_opts_init(&so);
    so.uri = uri;
    so.s3 = s3;
    so.data_type = type;
    so.manifest_meta = S3S_META_NONE;
    size_t na = 0;
    while (attrs != NULL && attrs[na] != NULL)
        na++;
    so.attribute_names = attrs;
    so.n_attribute_names = na;
    s3s_snapshot *snap = NULL;
    s3s_errinfo ei = {0};
    int rc = s3s_snapshot_create(&snap, &so, &ei);
    s3s_s3_destroy(s3);
    if (rc != 0)
        fail_msg("snapshot of %s: %s", uri, ei.msg);
    return snap;
}
