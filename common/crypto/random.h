/* random.h: cryptographically secure random bytes (OpenSSL's DRBG). */
#ifndef S3S_CRYPTO_RANDOM_H
#define S3S_CRYPTO_RANDOM_H

#include <stddef.h>
#include <stdint.h>

/* s3s__random_bytes fills out with n secure random bytes. Returns 0, or
 * S3S_EIO when the generator fails (out is then unspecified). */
int s3s__random_bytes(void *out, size_t n);
/* s3s__random_u64 returns a random 64-bit value (0 if the generator fails);
 * for jitter and ids, not for keys. */
uint64_t s3s__random_u64(void);

#endif
