/* creds.h: finding AWS credentials and the region, in the AWS SDKs' order.
 *
 * Credentials: explicit (both id and secret), then AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, then the shared credentials file
 * ($AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials), profile from the
 * options, $AWS_PROFILE or "default". Region: explicit, $AWS_REGION,
 * $AWS_DEFAULT_REGION, the profile's `region` in the config file
 * ($AWS_CONFIG_FILE or ~/.aws/config, section "[profile X]" or "[default]"),
 * else "us-east-1". Secrets never reach a log or an error message. */
#ifndef S3S_S3_CREDS_H
#define S3S_S3_CREDS_H

#include "common/util/errbuf.h"

typedef struct s3s__creds {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL: none */
    char source[256]; /* where they came from, for -v and errors (no secret) */
} s3s__creds;

typedef struct s3s__creds_opts {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
    const char *profile;
} s3s__creds_opts;

/* s3s__creds_resolve fills *out. Returns 0, S3S_ECREDS (nothing found, or an
 * explicit pair with one half missing, or a named profile that does not
 * exist; eb says which), S3S_EIO, S3S_ENOMEM. On failure *out is empty. */
int s3s__creds_resolve(s3s__creds *out, const s3s__creds_opts *o, s3s__errbuf *eb);
/* s3s__creds_fini frees and wipes the strings. NULL-safe. */
void s3s__creds_fini(s3s__creds *c);

/* s3s__region_resolve returns a heap string in *out (caller frees). profile
 * may be NULL. Returns 0, S3S_EIO, S3S_ENOMEM. */
int s3s__region_resolve(char **out, const char *explicit_region, const char *profile,
                        s3s__errbuf *eb);

#endif
