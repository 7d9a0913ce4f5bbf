/* endpoint.c: endpoints and addressing (see endpoint.h). */
#include "common/s3/endpoint.h"

#include "common/s3/pct.h"
#include "s3shard/error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void s3s__endpoint_fini(s3s__endpoint *e)
{
    if (e == NULL)
        return;
    free(e->host);
    free(e->base_path);
    e->host = e->base_path = NULL;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int s3s__endpoint_init(s3s__endpoint *e, const char *url, const char *region, int path_style,
                       s3s__errbuf *eb)
{
    char aws[256];
    memset(e, 0, sizeof *e);
    if (url == NULL)
        url = env("AWS_ENDPOINT_URL_S3");
    if (url == NULL)
        url = env("AWS_ENDPOINT_URL");
    if (url == NULL) {
        if (region == NULL || region[0] == '\0' || strlen(region) > 64)
            return s3s__err_set(eb, S3S_ECONFIG, "no endpoint and no usable region");
        for (const char *c = region; *c != '\0'; c++)
            if (!isalnum((unsigned char)*c) && *c != '-')
                return s3s__err_set(eb, S3S_ECONFIG, "bad region '%s'", region);
        snprintf(aws, sizeof aws, "https://s3.%s.amazonaws.com", region);
        url = aws;
        e->is_aws = 1;
    }
    const char *rest;
    if (strncasecmp(url, "https://", 8) == 0) {
        strcpy(e->scheme, "https");
        rest = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        strcpy(e->scheme, "http");
        rest = url + 7;
    } else {
        return s3s__err_set(eb, S3S_ECONFIG,
                            "endpoint '%s': expected http://HOST[:PORT] or https://...", url);
    }
    size_t hl = strcspn(rest, "/?#");
    if (hl == 0)
        return s3s__err_set(eb, S3S_ECONFIG, "endpoint '%s': no host", url);
    if (memchr(rest, '@', hl) != NULL)
        return s3s__err_set(eb, S3S_ECONFIG, "endpoint '%s': user info is not supported", url);
    if (rest[hl] == '?' || rest[hl] == '#' || strpbrk(rest + hl, "?#") != NULL)
        return s3s__err_set(eb, S3S_ECONFIG, "endpoint '%s': no query or fragment allowed", url);
    for (size_t i = 0; i < hl; i++)
        if (isspace((unsigned char)rest[i]))
            return s3s__err_set(eb, S3S_ECONFIG, "endpoint '%s': blank in host", url);
    e->host = strndup(rest, hl);
    const char *bp = rest + hl;
    size_t bl = strlen(bp);
    while (bl > 0 && bp[bl - 1] == '/')
        bl--;
    e->base_path = strndup(bp, bl);
    if (e->host == NULL || e->base_path == NULL) {
        s3s__endpoint_fini(e);
        return S3S_ENOMEM;
    }
    if (strstr(e->host, "amazonaws.com") != NULL)
        e->is_aws = 1;
    e->path_style = path_style < 0 ? !e->is_aws : path_style != 0;
    return 0;
}

int s3s__bucket_name_valid(const char *b)
{
    size_t n = b != NULL ? strlen(b) : 0;
    if (n < 3 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)b[i]) && b[i] != '.' && b[i] != '-' && b[i] != '_')
            return 0;
    return 1;
}

/* Virtual-hosted style needs the bucket to be one DNS label under the
 * endpoint; a dot would also break the wildcard TLS certificate. */
static int dns_label(const char *b, int https)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || (c == '.' && !https)))
            return 0;
    }
    return b[0] != '-' && b[n - 1] != '-';
}

int s3s__endpoint_target(const s3s__endpoint *e, const char *bucket, const char *key,
                         s3s__buf *host, s3s__buf *path)
{
    int rc;
    int vhost = !e->path_style && bucket != NULL && dns_label(bucket, e->scheme[4] == 's');
    if (vhost)
        rc = s3s__buf_printf(host, "%s.%s", bucket, e->host);
    else
        rc = s3s__buf_puts(host, e->host);
    if (rc != 0)
        return rc;
    if ((rc = s3s__buf_puts(path, e->base_path)) != 0)
        return rc;
    if (!vhost && bucket != NULL) {
        if ((rc = s3s__buf_append(path, "/", 1)) != 0)
            return rc;
        if ((rc = s3s__pct_encode(path, bucket, strlen(bucket), 0)) != 0)
            return rc;
    }
    /* Bucket-level requests go to "/bucket" (path-style) or "/" (virtual). */
    int has_key = key != NULL && key[0] != '\0';
    if (has_key || vhost || bucket == NULL)
        if ((rc = s3s__buf_append(path, "/", 1)) != 0)
            return rc;
    if (has_key)
        rc = s3s__pct_encode(path, key, strlen(key), 1);
    return rc;
}
