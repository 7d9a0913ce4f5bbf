/* errinfo.c: see errinfo.h. */
#include "common/dataset/errinfo.h"

#include "s3shard/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int s3s__ei_set(s3s_errinfo *e, int code, const char *fmt, ...)
{
    if (e != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

static int bucket_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
        (c >= 'A' && c <= 'Z');
}

int s3s__ds_split_uri(const char *uri, char **bucket, char **key, s3s_errinfo *e)
{
    *bucket = NULL;
    *key = NULL;
    if (uri == NULL || strncmp(uri, "s3://", 5) != 0)
        return s3s__ei_set(e, S3S_EINVAL, "expected an s3://bucket/key URI, got \"%.200s\"",
                           uri ? uri : "(null)");
    const char *b = uri + 5;
    const char *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    if (blen < 3 || blen > 63)
        return s3s__ei_set(e, S3S_EINVAL, "bucket name in \"%.200s\" must be 3 to 63 characters",
                           uri);
    for (size_t i = 0; i < blen; i++)
        if (!bucket_char_ok(b[i]))
            return s3s__ei_set(e, S3S_EINVAL, "invalid character '%c' in the bucket of \"%.200s\"",
                               b[i], uri);
    const char *k = slash ? slash + 1 : "";
    if (strlen(k) > 1024)
        return s3s__ei_set(e, S3S_EINVAL, "key in \"%.100s...\" is longer than 1024 bytes", uri);
    *bucket = strndup(b, blen);
    *key = strdup(k);
    if (*bucket == NULL || *key == NULL) {
        free(*bucket);
        free(*key);
        *bucket = *key = NULL;
        return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    }
    return 0;
}

void s3s__ds_linecol(const char *text, size_t len, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, c = 1;
    if (off > len)
        off = len;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}
