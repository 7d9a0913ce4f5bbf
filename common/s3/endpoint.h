/* endpoint.h: where requests go and how bucket and key become a URL.
 *
 * An endpoint is AWS by region (https://s3.<region>.amazonaws.com) or a URL
 * given explicitly or by $AWS_ENDPOINT_URL_S3 / $AWS_ENDPOINT_URL. Addressing
 * is path-style (https://host/bucket/key) or virtual-hosted
 * (https://bucket.host/key); -1 picks path-style for custom endpoints and
 * virtual-hosted for AWS, falling back to path-style for bucket names that are
 * not DNS labels (dots over https, uppercase, underscores).
 * Keys are percent-encoded byte by byte except unreserved characters and '/',
 * which is exactly what the SigV4 canonical URI is, so the URL sent and the
 * path signed never disagree. */
#ifndef S3S_S3_ENDPOINT_H
#define S3S_S3_ENDPOINT_H

#include "common/util/buf.h"
#include "common/util/errbuf.h"

typedef struct s3s__endpoint {
    char scheme[8]; /* "http" or "https" */
    char *host; /* host[:port] of the endpoint (no bucket) */
    char *base_path; /* "" or "/prefix" without a trailing '/' */
    int path_style; /* resolved: 0 or 1 */
    int is_aws;
} s3s__endpoint;

/* s3s__endpoint_init parses url (NULL: environment, then AWS by region).
 * Returns 0, S3S_ECONFIG with the reason in eb, S3S_ENOMEM. */
int s3s__endpoint_init(s3s__endpoint *e, const char *url, const char *region, int path_style,
                       s3s__errbuf *eb);
void s3s__endpoint_fini(s3s__endpoint *e);

/* s3s__endpoint_target builds, for bucket and key (key may be NULL or ""),
 * the Host header value and the encoded path (what is signed and sent).
 * Returns 0 or a buffer error. */
int s3s__endpoint_target(const s3s__endpoint *e, const char *bucket, const char *key,
                         s3s__buf *host, s3s__buf *path);

/* s3s__bucket_name_valid says whether a bucket name is acceptable at all
 * (3-255 chars of [A-Za-z0-9.-_], the path-style legacy set). */
int s3s__bucket_name_valid(const char *b);

#endif
