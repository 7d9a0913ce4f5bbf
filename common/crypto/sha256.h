/* sha256.h: SHA-256, one-shot and streaming (a thin OpenSSL wrapper).
 *
 * Invariant: a s3s__sha256_ctx is either zeroed/finished (md == NULL) or live;
 * s3s__sha256_final and s3s__sha256_fini release it, so it never leaks. */
#ifndef S3S_CRYPTO_SHA256_H
#define S3S_CRYPTO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define S3S_SHA256_LEN 32
#define S3S_SHA256_HEX_LEN 64

typedef struct s3s__sha256_ctx {
    void *md; /* EVP_MD_CTX *, hidden so no OpenSSL type leaks out */
} s3s__sha256_ctx;

/* s3s__sha256 hashes len bytes into out. */
void s3s__sha256(const void *data, size_t len, uint8_t out[S3S_SHA256_LEN]);
/* s3s__sha256_hex hashes into 64 lowercase hex digits plus NUL. */
void s3s__sha256_hex(const void *data, size_t len, char out[S3S_SHA256_HEX_LEN + 1]);

/* s3s__sha256_init starts a streaming hash. Returns 0 or S3S_ENOMEM. */
int s3s__sha256_init(s3s__sha256_ctx *c);
/* s3s__sha256_update adds bytes; a no-op on a context that failed to init. */
void s3s__sha256_update(s3s__sha256_ctx *c, const void *data, size_t len);
/* s3s__sha256_final writes the digest and frees the context. */
void s3s__sha256_final(s3s__sha256_ctx *c, uint8_t out[S3S_SHA256_LEN]);
/* s3s__sha256_fini frees a context without a digest (error paths). NULL-safe. */
void s3s__sha256_fini(s3s__sha256_ctx *c);

#endif
