/* s3_pending.c: TEMPORARY weak stand-ins for the S3 client calls the dataset
 * code uses, so this branch links before branch `s3client` is merged. Every
 * call fails with S3S_ENOTSUP. DELETE THIS FILE when merging s3client: its
 * strong definitions must be the only ones in the archive. */
#include "s3shard/error.h"
#include "s3shard/s3.h"

#include <string.h>

#define WEAK __attribute__((weak))

WEAK void s3s_s3_opts_init(s3s_s3_opts *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->path_style = -1;
}

WEAK int s3s_s3_create(s3s_s3 **out, const s3s_s3_opts *opts)
{
    (void)opts;
    *out = NULL;
    return S3S_ENOTSUP;
}

WEAK const char *s3s_s3_last_create_error(void)
{
    return "this build has no S3 client yet (branch s3client not merged)";
}

WEAK void s3s_s3_destroy(s3s_s3 *s3)
{
    (void)s3;
}

WEAK const char *s3s_s3_errmsg(const s3s_s3 *s3)
{
    (void)s3;
    return "no S3 client in this build";
}

WEAK int s3s_s3_list_parallel(s3s_s3 *s3, const char *bucket, const char *prefix,
                              unsigned parallelism, s3s_s3_list_cb cb, void *ud)
{
    (void)s3, (void)bucket, (void)prefix, (void)parallelism, (void)cb, (void)ud;
    return S3S_ENOTSUP;
}

WEAK int s3s_s3_get(s3s_s3 *s3, const char *bucket, const char *key, uint64_t off, uint64_t len,
                    const char *if_match, s3s_s3_write_cb cb, void *ud, s3s_s3_objinfo *info)
{
    (void)s3, (void)bucket, (void)key, (void)off, (void)len, (void)if_match, (void)cb, (void)ud,
        (void)info;
    return S3S_ENOTSUP;
}

WEAK int s3s_s3_head(s3s_s3 *s3, const char *bucket, const char *key, s3s_s3_objinfo *info)
{
    (void)s3, (void)bucket, (void)key, (void)info;
    return S3S_ENOTSUP;
}

WEAK int s3s_s3_put(s3s_s3 *s3, const char *bucket, const char *key, const void *data, size_t len,
                    char *etag_out)
{
    (void)s3, (void)bucket, (void)key, (void)data, (void)len, (void)etag_out;
    return S3S_ENOTSUP;
}
