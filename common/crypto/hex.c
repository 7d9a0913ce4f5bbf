/* hex.c: hex encoding and constant-time comparison (see hex.h). */
#include "common/crypto/hex.h"

#include <openssl/crypto.h>

void s3s__hex_encode(const void *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = in;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int s3s__hex_decode(const char *in, void *out, size_t n)
{
    uint8_t *o = out;
    for (size_t i = 0; i < n; i++) {
        int hi = nibble(in[2 * i]);
        if (hi < 0)
            return -1;
        int lo = nibble(in[2 * i + 1]);
        if (lo < 0)
            return -1;
        o[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int s3s__ct_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
