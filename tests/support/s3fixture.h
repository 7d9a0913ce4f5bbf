/* s3fixture.h: the s3rver set-up that worker tests share: one server with
 * buckets, client options pointing at it (keys S3RVER/S3RVER, quick retries),
 * uploads and snapshots of what was uploaded.
 *
 * The server is a real s3rver process (testenv.h); these helpers only spare
 * each test the same thirty lines. Failures inside a test fail it
 * (fail_msg); set-up helpers return -1 so that a group set-up can fail. */
#ifndef S3S_TEST_S3FIXTURE_H
#define S3S_TEST_S3FIXTURE_H

#include "s3shard/dataset.h"
#include "s3shard/s3.h"
#include "tests/support/testenv.h"

/* s3s_test_s3fix_start clears the AWS endpoint variables (so that the
 * client's defaults cannot point elsewhere) and starts srv with buckets
 * (NULL-terminated). Returns 0 or -1. */
int s3s_test_s3fix_start(s3s_test_s3rver *srv, const char *const *buckets);

/* s3s_test_s3fix_opts fills o for srv: s3s_s3_opts_init, the endpoint, the
 * S3RVER keys, us-east-1, 3 attempts 10 ms apart. */
void s3s_test_s3fix_opts(const s3s_test_s3rver *srv, s3s_s3_opts *o);

/* s3s_test_s3fix_put uploads n bytes to bucket/key. Returns 0 or -1. */
int s3s_test_s3fix_put(const s3s_test_s3rver *srv, const char *bucket, const char *key,
                       const void *data, size_t n);

/* s3s_test_s3fix_snapshot enumerates uri (an s3:// prefix or manifest, or a
 * local manifest path) as type; attrs (NULL-terminated, may be NULL) are the
 * AttributeNames of an augmented manifest. Manifests take no metadata lookup
 * (S3S_META_NONE). Fails the test on error. */
s3s_snapshot *s3s_test_s3fix_snapshot(const s3s_test_s3rver *srv, const char *uri,
                                      s3s_data_type type, const char *const *attrs);

#endif
