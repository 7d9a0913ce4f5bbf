/* buf.h: a growable byte buffer with a hard cap.
 *
 * Invariants: len <= cap_used <= max; data is NUL-terminated whenever it is
 * non-NULL (one byte past len is reserved), so text can be used as a C string. */
#ifndef S3S_UTIL_BUF_H
#define S3S_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct s3s__buf {
    char *data; /* NULL until the first append */
    size_t len; /* bytes used */
    size_t alloc; /* bytes allocated */
    size_t max; /* hard cap on len; appends past it fail with S3S_ETOOBIG */
} s3s__buf;

/* s3s__buf_init prepares an empty buffer whose length may never exceed max. */
void s3s__buf_init(s3s__buf *b, size_t max);
/* s3s__buf_fini frees the memory; the buffer is empty afterwards. NULL-safe. */
void s3s__buf_fini(s3s__buf *b);
/* s3s__buf_reset empties the buffer but keeps its memory. */
void s3s__buf_reset(s3s__buf *b);
/* s3s__buf_append adds n bytes. Returns 0, S3S_ETOOBIG past the cap (buffer
 * unchanged) or S3S_ENOMEM. */
int s3s__buf_append(s3s__buf *b, const void *p, size_t n);
/* s3s__buf_puts appends a C string; same failures as s3s__buf_append. */
int s3s__buf_puts(s3s__buf *b, const char *s);
/* s3s__buf_printf appends formatted text; same failures as s3s__buf_append. */
int s3s__buf_printf(s3s__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int s3s__buf_vprintf(s3s__buf *b, const char *fmt, va_list ap);
/* s3s__buf_detach returns the data (caller frees) and empties the buffer.
 * Returns an empty heap string when nothing was appended, NULL on ENOMEM. */
char *s3s__buf_detach(s3s__buf *b, size_t *out_len);

#endif
