/* mp.h: msgpack for s3shard: a writer over msgpack-c's packer and a bounded reader.
 *
 * Only mp.c includes msgpack.h; the protocol codec (msg_encode.c, msg_decode.c) and the journal
 * record codec (common/journal/jrec.c) use these functions.
 *
 * Writer invariants: errors are sticky. The first failure (S3S_ETOOBIG when the
 * output buffer's cap is reached, S3S_ENOMEM) is kept in w->err and every later
 * call does nothing, so a caller writes a whole value and checks w->err once.
 *
 * Reader invariants: the reader never trusts a length. Every str/bin length is
 * checked against the bytes left before it is read; an array or map count is
 * checked against the bytes left divided by the smallest encoding of one element
 * before the caller allocates anything for it; nesting deeper than the caller's
 * limit is refused; ext types and the never-used byte 0xc1 are refused. The reader
 * does not allocate. Every failure writes "<ctx>: <field>: <what> at offset N"
 * into the error buffer and returns r->code (S3S_EPROTO for messages, S3S_EPARSE
 * for journal records). */
#ifndef S3S_PROTO_MP_H
#define S3S_PROTO_MP_H

#include "common/util/buf.h"
#include "common/util/errbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- writer ---- */
typedef struct s3s__mpw {
    s3s__buf *out; /* bytes are appended here; its cap bounds the output */
    int err; /* first error, 0 while all went well */
} s3s__mpw;

void s3s__mpw_init(s3s__mpw *w, s3s__buf *out);
void s3s__mpw_nil(s3s__mpw *w);
void s3s__mpw_bool(s3s__mpw *w, bool v);
void s3s__mpw_uint(s3s__mpw *w, uint64_t v);
void s3s__mpw_int(s3s__mpw *w, int64_t v);
void s3s__mpw_double(s3s__mpw *w, double v);
void s3s__mpw_str(s3s__mpw *w, const char *s, size_t n);
void s3s__mpw_cstr(s3s__mpw *w, const char *s);
void s3s__mpw_bin(s3s__mpw *w, const void *p, size_t n);
void s3s__mpw_array(s3s__mpw *w, uint32_t n);
void s3s__mpw_map(s3s__mpw *w, uint32_t n);
/* s3s__mpw_raw appends bytes that already are msgpack. */
void s3s__mpw_raw(s3s__mpw *w, const void *p, size_t n);

/* ---- reader ---- */
typedef enum s3s__mptype {
    S3S_MP_NIL,
    S3S_MP_BOOL,
    S3S_MP_UINT, /* a non-negative integer, whatever its encoding */
    S3S_MP_INT, /* a negative integer */
    S3S_MP_FLOAT,
    S3S_MP_STR,
    S3S_MP_BIN,
    S3S_MP_ARRAY,
    S3S_MP_MAP,
} s3s__mptype;

typedef struct s3s__mpr {
    const uint8_t *p;
    size_t len; /* total bytes */
    size_t off; /* next byte to read; off <= len always */
    int code; /* error code returned on malformed input */
    const char *ctx; /* names the input in messages: "message", "journal record" */
    s3s__errbuf *eb; /* may be NULL */
} s3s__mpr;

void s3s__mpr_init(s3s__mpr *r, const void *p, size_t len, int code, const char *ctx,
                   s3s__errbuf *eb);
/* s3s__mpr_left returns the bytes not read yet. */
size_t s3s__mpr_left(const s3s__mpr *r);
/* s3s__mpr_peek gives the type of the next value without consuming it. */
int s3s__mpr_peek(const s3s__mpr *r, s3s__mptype *out);
int s3s__mpr_nil(s3s__mpr *r, const char *field);
int s3s__mpr_bool(s3s__mpr *r, bool *out, const char *field);
/* s3s__mpr_uint reads a non-negative integer in [min, max]. */
int s3s__mpr_uint(s3s__mpr *r, uint64_t *out, uint64_t min, uint64_t max, const char *field);
int s3s__mpr_u32(s3s__mpr *r, uint32_t *out, uint32_t min, uint32_t max, const char *field);
int s3s__mpr_int(s3s__mpr *r, int64_t *out, const char *field);
int s3s__mpr_double(s3s__mpr *r, double *out, const char *field);
/* s3s__mpr_str returns a pointer into the input (not NUL-terminated) of at most
 * max bytes. */
int s3s__mpr_str(s3s__mpr *r, const char **out, uint32_t *out_len, uint32_t max, const char *field);
/* s3s__mpr_str_copy copies a string of at most max bytes into dst (size max+1),
 * NUL-terminated; an embedded NUL byte is refused. */
int s3s__mpr_str_copy(s3s__mpr *r, char *dst, uint32_t max, const char *field);
int s3s__mpr_bin(s3s__mpr *r, const uint8_t **out, uint32_t *out_len, uint32_t max,
                 const char *field);
/* s3s__mpr_bin_exact reads a bin of exactly n bytes into dst. */
int s3s__mpr_bin_exact(s3s__mpr *r, uint8_t *dst, uint32_t n, const char *field);
/* s3s__mpr_array reads an array header of at most max elements, each of which
 * needs at least min_elem bytes (>= 1): count * min_elem must fit in the bytes left. */
int s3s__mpr_array(s3s__mpr *r, uint32_t *out, uint32_t max, uint32_t min_elem, const char *field);
/* s3s__mpr_map reads a map header of at most max pairs (2 bytes each at least). */
int s3s__mpr_map(s3s__mpr *r, uint32_t *out, uint32_t max, const char *field);
/* s3s__mpr_skip skips one value of any type, nested at most max_depth deep. */
int s3s__mpr_skip(s3s__mpr *r, int max_depth, const char *field);
/* s3s__mpr_fail formats an error "<ctx>: <field>: <fmt> at offset N" and returns r->code. */
int s3s__mpr_fail(s3s__mpr *r, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* s3s__mp_validate walks p[0..len) without allocating: it must be exactly one
 * value (no trailing bytes) nested at most max_depth deep, with every length
 * in bounds. Returns 0 or code. */
int s3s__mp_validate(const void *p, size_t len, int max_depth, int code, const char *ctx,
                     s3s__errbuf *eb);

#endif
