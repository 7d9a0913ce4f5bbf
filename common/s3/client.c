/* client.c: s3s_s3 handles and the simple calls (HEAD, DELETE, presign, URIs).
 * GET lives in get.c, PUT in put.c, listing in list.c, the engine in http.c. */
#include "common/s3/client.h"

#include "common/s3/http.h"
#include "common/s3/pct.h"
#include "common/util/log.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Thread_local char create_error[S3S_ERRBUF_SIZE];

void s3s_s3_opts_init(s3s_s3_opts *o)
{
    memset(o, 0, sizeof *o);
    o->path_style = -1;
    o->max_attempts = 10;
    o->retry_base_ms = 100;
    o->retry_cap_ms = 20000;
    o->connect_timeout_ms = 5000;
    o->stall_timeout_ms = 30000;
    o->max_connections = 32;
    o->multipart_threshold = (uint64_t)64 << 20;
    o->part_size = (uint64_t)16 << 20;
    o->range_chunk = (uint64_t)8 << 20;
}

const char *s3s_s3_last_create_error(void)
{
    return create_error;
}

const char *s3s_s3_errmsg(const s3s_s3 *s3)
{
    return s3 != NULL ? s3->eb.msg : "";
}

void s3s_s3_destroy(s3s_s3 *s3)
{
    if (s3 == NULL)
        return;
    s3s__http_destroy(s3->http);
    s3s__endpoint_fini(&s3->ep);
    s3s__creds_fini(&s3->creds);
    free(s3->region);
    free(s3->ca_bundle);
    memset(&s3->kc, 0, sizeof s3->kc);
    free(s3);
}

int s3s_s3_create(s3s_s3 **out, const s3s_s3_opts *opts)
{
    s3s_s3_opts defaults;
    s3s__errbuf eb;
    int rc;
    s3s__err_clear(&eb);
    create_error[0] = '\0';
    if (opts == NULL) {
        s3s_s3_opts_init(&defaults);
        opts = &defaults;
    }
    s3s_s3 *s3 = calloc(1, sizeof *s3);
    if (s3 == NULL)
        return S3S_ENOMEM;
    s3->opts = *opts;
    /* Zero means "default" for the numeric options. */
    s3s_s3_opts d;
    s3s_s3_opts_init(&d);
#define DEF(f)                                                                                     \
    if (s3->opts.f == 0)                                                                           \
    s3->opts.f = d.f
    DEF(max_attempts);
    DEF(retry_base_ms);
    DEF(retry_cap_ms);
    DEF(connect_timeout_ms);
    DEF(stall_timeout_ms);
    DEF(max_connections);
    DEF(multipart_threshold);
    DEF(part_size);
    DEF(range_chunk);
#undef DEF
    s3->opts.endpoint = s3->opts.region = s3->opts.profile = NULL;
    s3->opts.access_key_id = s3->opts.secret_access_key = s3->opts.session_token = NULL;
    s3->opts.ca_bundle = NULL;
    if (s3->opts.part_size < ((uint64_t)5 << 20)) {
        rc = s3s__err_set(&eb, S3S_ECONFIG, "part_size %llu is below S3's 5 MiB minimum",
                          (unsigned long long)s3->opts.part_size);
        goto fail;
    }
    s3s__creds_opts co = {opts->access_key_id, opts->secret_access_key, opts->session_token,
                          opts->profile};
    if ((rc = s3s__creds_resolve(&s3->creds, &co, &eb)) != 0)
        goto fail;
    if ((rc = s3s__region_resolve(&s3->region, opts->region, opts->profile, &eb)) != 0)
        goto fail;
    if ((rc = s3s__endpoint_init(&s3->ep, opts->endpoint, s3->region, opts->path_style, &eb)) != 0)
        goto fail;
    const char *ca = opts->ca_bundle != NULL ? opts->ca_bundle : getenv("AWS_CA_BUNDLE");
    if (ca != NULL && ca[0] != '\0' && (s3->ca_bundle = strdup(ca)) == NULL) {
        rc = S3S_ENOMEM;
        goto fail;
    }
    if ((rc = s3s__http_create(&s3->http, s3)) != 0)
        goto fail;
    if (s3->opts.verbose) {
        if (s3s__log_get_level() < S3S_LOG_INFO)
            s3s__log_set_level(S3S_LOG_INFO);
        S3S_LOGI("s3: endpoint %s://%s%s (%s-style), region %s, credentials from %s", s3->ep.scheme,
                 s3->ep.host, s3->ep.base_path, s3->ep.path_style ? "path" : "virtual-hosted",
                 s3->region, s3->creds.source);
    }
    *out = s3;
    return 0;
fail:
    snprintf(create_error, sizeof create_error, "%s", s3s__err_get(&eb, rc));
    s3s_s3_destroy(s3);
    return rc;
}

/* Copies a finished transfer's error into the handle. */
int s3s__s3_fail(s3s_s3 *s3, const s3s__xfer *x)
{
    return s3s__err_set(&s3->eb, x->rc, "%s", x->err[0] ? x->err : s3s_strerror(x->rc));
}

int s3s__s3_check_args(s3s_s3 *s3, const char *bucket, const char *key)
{
    if (s3 == NULL)
        return S3S_EINVAL;
    s3s__err_clear(&s3->eb);
    if (bucket == NULL || bucket[0] == '\0')
        return s3s__err_set(&s3->eb, S3S_EINVAL, "empty bucket name");
    if (key != NULL && key[0] == '\0')
        return s3s__err_set(&s3->eb, S3S_EINVAL, "empty key");
    if (key != NULL && strlen(key) > 1024)
        return s3s__err_set(&s3->eb, S3S_EINVAL, "key longer than 1024 bytes");
    return 0;
}

int s3s_s3_head(s3s_s3 *s3, const char *bucket, const char *key, s3s_s3_objinfo *info)
{
    int rc = s3s__s3_check_args(s3, bucket, key != NULL ? key : "");
    if (rc != 0)
        return rc;
    s3s__xfer x;
    s3s__xfer_init(&x);
    x.method = "HEAD";
    x.bucket = bucket;
    x.key = key;
    rc = s3s__http_run(s3, &x);
    if (rc != 0 && (x.status == 400 || x.status == 403) && key != NULL) {
        /* A HEAD reply has no body, so a refusal does not say why (for example
         * SignatureDoesNotMatch). Ask again with a one-byte GET, whose error body
         * names the S3 code, and report that if it fails the same way. */
        s3s__xfer g;
        s3s__xfer_init(&g);
        g.method = "GET";
        g.bucket = bucket;
        g.key = key;
        g.has_range = 1;
        g.range_off = 0;
        g.range_len = 1;
        int grc = s3s__http_run(s3, &g);
        if (grc == rc && g.status == x.status && g.err[0] != '\0')
            snprintf(x.err, sizeof x.err, "HEAD %s/%s: %.700s", bucket, key, g.err);
        s3s__xfer_fini(&g);
    }
    if (rc != 0) {
        s3s__s3_fail(s3, &x);
    } else if (info != NULL) {
        info->size = x.total_size;
        memcpy(info->etag, x.etag, sizeof info->etag);
        info->mtime = x.mtime;
    }
    s3s__xfer_fini(&x);
    return rc;
}

int s3s_s3_delete(s3s_s3 *s3, const char *bucket, const char *key)
{
    int rc = s3s__s3_check_args(s3, bucket, key != NULL ? key : "");
    if (rc != 0)
        return rc;
    s3s__xfer x;
    s3s__xfer_init(&x);
    x.method = "DELETE";
    x.bucket = bucket;
    x.key = key;
    rc = s3s__http_run(s3, &x);
    if (rc == S3S_ENOTFOUND)
        rc = 0; /* deleting a missing key is not an error (as in S3 itself) */
    if (rc != 0)
        s3s__s3_fail(s3, &x);
    s3s__xfer_fini(&x);
    return rc;
}

int s3s_s3_presign(s3s_s3 *s3, const char *method, const char *bucket, const char *key,
                   unsigned expires_s, char **out)
{
    int rc = s3s__s3_check_args(s3, bucket, key);
    if (rc != 0)
        return rc;
    if (method == NULL || expires_s == 0 || expires_s > 604800)
        return s3s__err_set(&s3->eb, S3S_EINVAL, "presign: need a method and 1..604800 seconds");
    s3s__buf host, path, url;
    s3s__sigv4_result res;
    char date[17];
    s3s__buf_init(&host, 4096);
    s3s__buf_init(&path, S3S_SIGV4_MAX);
    s3s__buf_init(&url, S3S_SIGV4_MAX);
    s3s__sigv4_result_init(&res);
    rc = s3s__endpoint_target(&s3->ep, bucket, key, &host, &path);
    if (rc == 0) {
        s3s__sigv4_amz_date((int64_t)time(NULL), date);
        s3s__sigv4_header h[] = {{"host", host.data}};
        s3s__sigv4_request r = {method, path.data, NULL, h, 1, S3S_UNSIGNED_PAYLOAD, 0};
        s3s__sigv4_creds cr = {s3->creds.access_key_id, s3->creds.secret_access_key,
                               s3->creds.session_token};
        rc = s3s__sigv4_presign(&res, &s3->kc, &cr, s3->region, "s3", date, expires_s, &r);
    }
    if (rc == 0)
        rc = s3s__buf_printf(&url, "%s://%s%s?%s", s3->ep.scheme, host.data, path.data,
                             res.out.data);
    if (rc == 0) {
        *out = s3s__buf_detach(&url, NULL);
        if (*out == NULL)
            rc = S3S_ENOMEM;
    }
    if (rc != 0)
        s3s__err_set(&s3->eb, rc, "presign %s/%s: %s", bucket, key, s3s_strerror(rc));
    s3s__buf_fini(&host);
    s3s__buf_fini(&path);
    s3s__buf_fini(&url);
    s3s__sigv4_result_fini(&res);
    return rc;
}

int s3s_uri_parse(const char *uri, char **out_bucket, char **out_key)
{
    if (uri == NULL || strncmp(uri, "s3://", 5) != 0)
        return S3S_EINVAL;
    const char *b = uri + 5;
    const char *slash = strchr(b, '/');
    size_t bl = slash != NULL ? (size_t)(slash - b) : strlen(b);
    if (bl == 0)
        return S3S_EINVAL;
    char *bucket = strndup(b, bl);
    char *key = strdup(slash != NULL ? slash + 1 : "");
    if (bucket == NULL || key == NULL) {
        free(bucket);
        free(key);
        return S3S_ENOMEM;
    }
    *out_bucket = bucket;
    *out_key = key;
    return 0;
}
