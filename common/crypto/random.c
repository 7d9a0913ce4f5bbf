/* random.c: secure random bytes over OpenSSL's RAND_bytes (see random.h). */
#include "common/crypto/random.h"

#include "s3shard/error.h"

#include <limits.h>
#include <openssl/rand.h>

int s3s__random_bytes(void *out, size_t n)
{
    unsigned char *p = out;
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(p, chunk) != 1)
            return S3S_EIO;
        p += chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

uint64_t s3s__random_u64(void)
{
    uint64_t v = 0;
    if (s3s__random_bytes(&v, sizeof v) != 0)
        return 0;
    return v;
}
