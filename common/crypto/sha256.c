/* sha256.c: SHA-256 over OpenSSL's EVP interface (see sha256.h). */
#include "common/crypto/sha256.h"

#include "common/crypto/hex.h"
#include "s3shard/error.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

void s3s__sha256(const void *data, size_t len, uint8_t out[S3S_SHA256_LEN])
{
    /* SHA256() cannot fail for in-memory input; EVP_Digest would only add an
     * allocation. */
    SHA256((const unsigned char *)(data != NULL ? data : ""), len, out);
}

void s3s__sha256_hex(const void *data, size_t len, char out[S3S_SHA256_HEX_LEN + 1])
{
    uint8_t d[S3S_SHA256_LEN];
    s3s__sha256(data, len, d);
    s3s__hex_encode(d, sizeof d, out);
}

int s3s__sha256_init(s3s__sha256_ctx *c)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    c->md = NULL;
    if (m == NULL)
        return S3S_ENOMEM;
    if (EVP_DigestInit_ex(m, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(m);
        return S3S_ENOMEM;
    }
    c->md = m;
    return 0;
}

void s3s__sha256_update(s3s__sha256_ctx *c, const void *data, size_t len)
{
    if (c->md != NULL && len > 0)
        EVP_DigestUpdate((EVP_MD_CTX *)c->md, data, len);
}

void s3s__sha256_final(s3s__sha256_ctx *c, uint8_t out[S3S_SHA256_LEN])
{
    unsigned n = 0;
    if (c->md == NULL) {
        memset(out, 0, S3S_SHA256_LEN);
        return;
    }
    EVP_DigestFinal_ex((EVP_MD_CTX *)c->md, out, &n);
    s3s__sha256_fini(c);
}

void s3s__sha256_fini(s3s__sha256_ctx *c)
{
    if (c == NULL || c->md == NULL)
        return;
    EVP_MD_CTX_free((EVP_MD_CTX *)c->md);
    c->md = NULL;
}
