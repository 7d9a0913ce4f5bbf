/* client.h: the inside of an s3s_s3 handle, shared by the files that
 * implement the public S3 API (client.c, get.c, put.c, list.c, http.c).
 *
 * Invariants: creds, region and ep are resolved once in s3s_s3_create and
 * never change; eb holds the detail of the last failed public call; http is
 * the one transfer engine (one libcurl multi handle) of this handle. */
#ifndef S3S_S3_CLIENT_H
#define S3S_S3_CLIENT_H

#include "common/s3/creds.h"
#include "common/s3/endpoint.h"
#include "common/s3/sigv4.h"
#include "common/util/errbuf.h"
#include "s3shard/s3.h"

typedef struct s3s__http s3s__http;

struct s3s_s3 {
    s3s_s3_opts opts; /* string fields point at the copies below or are NULL */
    char *ca_bundle;
    char *region;
    s3s__creds creds;
    s3s__endpoint ep;
    s3s__sigv4_keycache kc;
    s3s__errbuf eb;
    s3s__http *http;
    unsigned get_inflight; /* ranges in flight the last adaptive GET settled on, 0: none yet */
};

/* Internal helpers shared by the S3 API files (client.c). */
struct s3s__xfer;
/* s3s__s3_fail copies a finished transfer's error text into s3->eb; returns x->rc. */
int s3s__s3_fail(s3s_s3 *s3, const struct s3s__xfer *x);
/* s3s__s3_check_args clears s3->eb and checks bucket (and key when non-NULL). */
int s3s__s3_check_args(s3s_s3 *s3, const char *bucket, const char *key);

#endif
