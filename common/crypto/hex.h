/* hex.h: hex encoding and constant-time comparison. */
#ifndef S3S_CRYPTO_HEX_H
#define S3S_CRYPTO_HEX_H

#include <stddef.h>
#include <stdint.h>

/* s3s__hex_encode writes 2*n lowercase hex digits and a NUL into out. */
void s3s__hex_encode(const void *in, size_t n, char *out);
/* s3s__hex_decode reads exactly 2*n hex digits (either case) from in into out.
 * Returns 0, or -1 on a non-hex digit or a short string. */
int s3s__hex_decode(const char *in, void *out, size_t n);
/* s3s__ct_equal compares n bytes in time independent of their contents
 * (for MACs and signatures). Returns 1 when equal. */
int s3s__ct_equal(const void *a, const void *b, size_t n);

#endif
