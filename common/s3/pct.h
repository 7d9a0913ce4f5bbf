/* pct.h: percent-encoding by SigV4's rules (RFC 3986 unreserved set).
 *
 * Encoding keeps A-Z a-z 0-9 - _ . ~ (and '/' when asked) and writes every other
 * byte as %XX with uppercase hex, so UTF-8 is encoded byte by byte. Decoding
 * turns valid %XX into bytes and leaves anything else (a lone '%', '+') as is,
 * so decode-then-encode maps raw and already-encoded input to the same text. */
#ifndef S3S_S3_PCT_H
#define S3S_S3_PCT_H

#include <stddef.h>

#include "common/util/buf.h"

/* s3s__pct_encode appends the encoding of s[0..n) to out. keep_slash: leave
 * '/' as is (paths). Returns 0 or the s3s__buf_append error. */
int s3s__pct_encode(s3s__buf *out, const char *s, size_t n, int keep_slash);
/* s3s__pct_decode appends the decoding of s[0..n) to out. */
int s3s__pct_decode(s3s__buf *out, const char *s, size_t n);
/* s3s__pct_is_unreserved says whether c passes through unencoded. */
int s3s__pct_is_unreserved(unsigned char c);

#endif
