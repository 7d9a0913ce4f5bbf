/* errbuf.c: per-handle error messages (see errbuf.h). */
#include "common/util/errbuf.h"

#include "s3shard/error.h"

#include <stdio.h>

int s3s__err_vset(s3s__errbuf *eb, int code, const char *fmt, va_list ap)
{
    if (eb != NULL)
        vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
    return code;
}

int s3s__err_set(s3s__errbuf *eb, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s3s__err_vset(eb, code, fmt, ap);
    va_end(ap);
    return code;
}

void s3s__err_clear(s3s__errbuf *eb)
{
    if (eb != NULL)
        eb->msg[0] = '\0';
}

const char *s3s__err_get(const s3s__errbuf *eb, int code)
{
    if (eb != NULL && eb->msg[0] != '\0')
        return eb->msg;
    return s3s_strerror(code);
}
