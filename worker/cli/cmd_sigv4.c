/* cmd_sigv4.c: `s3shard sigv4`, a SigV4 signing debugger.
 *
 * Reads a raw HTTP/1.1 request on stdin and prints the canonical request, the
 * string to sign and the Authorization header (or, with --presign, the presigned
 * URL). The exact interface and output format are fixed by issue 2 and checked
 * by tests/worker/cli/sigv4_cli_test.sh; do not change them casually. */
#include "worker/cli/cli.h"

#include "common/crypto/sha256.h"
#include "common/s3/rawreq.h"
#include "common/s3/sigv4.h"
#include "common/util/buf.h"
#include "common/util/errbuf.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STDIN_MAX ((size_t)256 << 20)

static int read_all(FILE *f, s3s__buf *b)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        int rc = s3s__buf_append(b, chunk, n);
        if (rc != 0)
            return rc;
    }
    return ferror(f) ? S3S_EIO : 0;
}

static int parse_uint(const char *s, unsigned *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || v > 604800UL)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int s3s__cmd_sigv4(s3s__cli *g, int argc, char **argv)
{
    const char *akid = NULL, *secret = NULL, *region = NULL, *service = NULL, *token = NULL;
    const char *date = NULL;
    int normalize = 0, unsigned_payload = 0, presign = 0;
    unsigned expires = 0;
    (void)g;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--access-key-id") == 0)
            slot = &akid;
        else if (strcmp(a, "--secret-access-key") == 0)
            slot = &secret;
        else if (strcmp(a, "--service") == 0)
            slot = &service;
        else if (strcmp(a, "--session-token") == 0)
            slot = &token;
        else if (strcmp(a, "--date") == 0)
            slot = &date;
        else if (strcmp(a, "--normalize-path") == 0) {
            normalize = 1;
            continue;
        } else if (strcmp(a, "--unsigned-payload") == 0) {
            unsigned_payload = 1;
            continue;
        } else if (strcmp(a, "--presign") == 0) {
            if (i + 1 >= argc || parse_uint(argv[i + 1], &expires) != 0)
                return s3s__cli_usage_error(argv[0], "--presign needs SECONDS (0..604800)");
            presign = 1;
            i++;
            continue;
        } else
            return s3s__cli_usage_error(argv[0], "unknown argument '%s'", a);
        if (i + 1 >= argc)
            return s3s__cli_usage_error(argv[0], "%s needs a value", a);
        *slot = argv[++i];
    }
    /* --region is a global flag, parsed before we see argv. */
    region = g->region;
    if (akid == NULL || secret == NULL || region == NULL || service == NULL)
        return s3s__cli_usage_error(
            argv[0], "--access-key-id, --secret-access-key, --region and --service are required");
    if (date != NULL && !presign)
        return s3s__cli_usage_error(argv[0],
                                    "--date goes with --presign (otherwise the time "
                                    "comes from the X-Amz-Date header)");

    s3s__buf in;
    s3s__rawreq req;
    s3s__errbuf eb;
    s3s__sigv4_result res;
    int status = 1;
    s3s__buf_init(&in, STDIN_MAX);
    s3s__sigv4_result_init(&res);
    memset(&req, 0, sizeof req);
    s3s__err_clear(&eb);
    int rc = read_all(stdin, &in);
    if (rc != 0) {
        s3s__cli_fail(argv[0], "reading stdin: %s", s3s_strerror(rc));
        goto out;
    }
    rc = s3s__rawreq_parse(&req, in.data != NULL ? in.data : "", in.len, &eb);
    if (rc != 0) {
        s3s__cli_fail(argv[0], "stdin: %s", s3s__err_get(&eb, rc));
        goto out;
    }
    if (date == NULL)
        date = s3s__rawreq_header(&req, "x-amz-date");
    if (date == NULL) {
        s3s__cli_fail(argv[0],
                      presign ? "no time: give --date YYYYMMDDTHHMMSSZ"
                              : "no time: the request needs an X-Amz-Date header");
        goto out;
    }
    if (!s3s__sigv4_date_valid(date)) {
        s3s__cli_fail(argv[0], "bad date '%s': expected YYYYMMDDTHHMMSSZ", date);
        goto out;
    }
    if (token != NULL && !presign && s3s__rawreq_add_header(&req, "X-Amz-Security-Token", token)) {
        s3s__cli_fail(argv[0], "out of memory");
        goto out;
    }
    char hash[S3S_SHA256_HEX_LEN + 1];
    const char *payload = s3s__rawreq_header(&req, "x-amz-content-sha256");
    if (payload == NULL && (unsigned_payload || presign))
        payload = S3S_UNSIGNED_PAYLOAD;
    if (payload == NULL) {
        s3s__sha256_hex(req.body, req.body_len, hash);
        payload = hash;
    }
    s3s__sigv4_request sr = {req.method,   req.path, req.query, req.headers,
                             req.nheaders, payload,  normalize};
    s3s__sigv4_creds cr = {akid, secret, token};
    if (presign)
        rc = s3s__sigv4_presign(&res, NULL, &cr, region, service, date, expires, &sr);
    else
        rc = s3s__sigv4_sign_header(&res, NULL, &cr, region, service, date, &sr);
    if (rc != 0) {
        s3s__cli_fail(argv[0], "signing failed: %s", s3s_strerror(rc));
        goto out;
    }
    printf("canonical request:\n%s\n\nstring to sign:\n%s\n\n", res.canonical_request.data,
           res.string_to_sign.data);
    if (presign) {
        const char *host = s3s__rawreq_header(&req, "host");
        s3s__buf uri;
        s3s__buf_init(&uri, S3S_SIGV4_MAX);
        if (s3s__sigv4_canonical_uri(&uri, req.path, normalize) != 0) {
            s3s__buf_fini(&uri);
            s3s__cli_fail(argv[0], "path too long");
            goto out;
        }
        printf("url: https://%s%s?%s\n", host != NULL ? host : "", uri.data, res.out.data);
        s3s__buf_fini(&uri);
    } else {
        printf("authorization: %s\n", res.out.data);
    }
    status = fflush(stdout) == 0 ? 0 : 1;
out:
    s3s__sigv4_result_fini(&res);
    s3s__rawreq_fini(&req);
    s3s__buf_fini(&in);
    return status;
}
