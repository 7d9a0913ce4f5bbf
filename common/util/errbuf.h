/* errbuf.h: a fixed-size per-handle error message (like CURLOPT_ERRORBUFFER).
 * Handles embed one; functions that fail write what and where into it. */
#ifndef S3S_UTIL_ERRBUF_H
#define S3S_UTIL_ERRBUF_H

#include <stdarg.h>

#define S3S_ERRBUF_SIZE 1024

typedef struct s3s__errbuf {
    char msg[S3S_ERRBUF_SIZE];
} s3s__errbuf;

/* s3s__err_set formats a message into eb (truncated to fit) and returns code,
 * so callers can write `return s3s__err_set(eb, S3S_EPARSE, "...")`. eb may be NULL. */
int s3s__err_set(s3s__errbuf *eb, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int s3s__err_vset(s3s__errbuf *eb, int code, const char *fmt, va_list ap);
/* s3s__err_clear empties the message. NULL-safe. */
void s3s__err_clear(s3s__errbuf *eb);
/* s3s__err_get returns the message, or the generic text for code when empty. */
const char *s3s__err_get(const s3s__errbuf *eb, int code);

#endif
