/* hmac.h: HMAC-SHA256 (a thin OpenSSL wrapper). */
#ifndef S3S_CRYPTO_HMAC_H
#define S3S_CRYPTO_HMAC_H

#include <stddef.h>
#include <stdint.h>

#include "common/crypto/sha256.h"

/* s3s__hmac_sha256 computes HMAC-SHA256(key, data) into out. Returns 0, or
 * S3S_ENOMEM if OpenSSL fails (out is then zeroed). */
int s3s__hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                     uint8_t out[S3S_SHA256_LEN]);

#endif
