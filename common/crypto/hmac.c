/* hmac.c: HMAC-SHA256 over OpenSSL (see hmac.h). */
#include "common/crypto/hmac.h"

#include "s3shard/error.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

int s3s__hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                     uint8_t out[S3S_SHA256_LEN])
{
    unsigned n = 0;
    static const unsigned char empty[1] = {0};
    if (HMAC(EVP_sha256(), key != NULL ? key : empty, (int)keylen,
             (const unsigned char *)(data != NULL ? data : empty), len, out, &n) == NULL ||
        n != S3S_SHA256_LEN) {
        memset(out, 0, S3S_SHA256_LEN);
        return S3S_ENOMEM;
    }
    return 0;
}
