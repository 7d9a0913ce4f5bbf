/* buf.c: growable byte buffer with a hard cap (see buf.h). */
#include "common/util/buf.h"

#include "s3shard/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void s3s__buf_init(s3s__buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->max = max;
}

void s3s__buf_fini(s3s__buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

void s3s__buf_reset(s3s__buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

static int buf_reserve(s3s__buf *b, size_t extra)
{
    if (extra > b->max - b->len)
        return S3S_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return 0;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need)
        n = n > ((size_t)-1) / 2 ? need : n * 2;
    char *p = realloc(b->data, n);
    if (p == NULL)
        return S3S_ENOMEM;
    b->data = p;
    b->alloc = n;
    return 0;
}

int s3s__buf_append(s3s__buf *b, const void *p, size_t n)
{
    int rc = buf_reserve(b, n);
    if (rc != 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int s3s__buf_puts(s3s__buf *b, const char *s)
{
    return s3s__buf_append(b, s, strlen(s));
}

int s3s__buf_vprintf(s3s__buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return S3S_EINVAL;
    int rc = buf_reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int s3s__buf_printf(s3s__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = s3s__buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *s3s__buf_detach(s3s__buf *b, size_t *out_len)
{
    char *p = b->data;
    if (p == NULL)
        p = calloc(1, 1);
    if (out_len != NULL)
        *out_len = b->len;
    b->data = NULL;
    b->len = b->alloc = 0;
    return p;
}
