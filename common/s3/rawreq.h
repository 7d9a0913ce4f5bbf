/* rawreq.h: parse a raw HTTP/1.1 request as text (for `s3shard sigv4` and the
 * signing tests).
 *
 * Format: "METHOD TARGET HTTP/1.1" (the target runs to the last space on the
 * line, so it may hold raw spaces and UTF-8), header lines "Name:value" or
 * "Name: value" (a line starting with a blank continues the previous value,
 * joined with ','), then a blank line or the end of input, then the body.
 * Lines end in LF or CRLF. Invariant after a successful parse: every pointer is
 * a heap string owned by the struct; query is NULL when the target has no '?'. */
#ifndef S3S_S3_RAWREQ_H
#define S3S_S3_RAWREQ_H

#include <stddef.h>

#include "common/s3/sigv4.h"
#include "common/util/errbuf.h"

#define S3S_RAWREQ_MAX_HEADERS 1024

typedef struct s3s__rawreq {
    char *method;
    char *target; /* as written */
    char *path; /* target up to '?' */
    char *query; /* after '?', or NULL */
    s3s__sigv4_header *headers; /* names and values are owned (cast away const) */
    size_t nheaders;
    char *body;
    size_t body_len;
} s3s__rawreq;

/* s3s__rawreq_parse parses len bytes. Returns 0, or S3S_EPARSE with the line
 * number and what was expected in eb, S3S_ETOOBIG past the header cap,
 * S3S_ENOMEM. On failure *out is left empty (nothing to free). */
int s3s__rawreq_parse(s3s__rawreq *out, const char *data, size_t len, s3s__errbuf *eb);
/* s3s__rawreq_fini frees everything. NULL-safe. */
void s3s__rawreq_fini(s3s__rawreq *r);
/* s3s__rawreq_header returns the value of the first header named name
 * (case-insensitive), or NULL. */
const char *s3s__rawreq_header(const s3s__rawreq *r, const char *name);
/* s3s__rawreq_add_header appends a header (copies). Returns 0 or S3S_ENOMEM. */
int s3s__rawreq_add_header(s3s__rawreq *r, const char *name, const char *value);

#endif
