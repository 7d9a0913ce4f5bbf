/* shuffle.c: the epoch order (see shuffle.h and docs/dataset.md). */
#include "common/dataset/shuffle.h"

#include "s3shard/dataset.h"

#define GOLDEN 0x9E3779B97F4A7C15ull
#define EPOCH_SALT 0x6A09E667F3BCC909ull /* first 64 bits of frac(sqrt(2)) */

uint64_t s3s__mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t s3s__epoch_key(uint64_t seed, uint64_t epoch)
{
    return s3s__mix64(seed ^ s3s__mix64(epoch ^ EPOCH_SALT));
}

uint64_t s3s__rng_next(s3s__ctr_rng *r)
{
    r->ctr++;
    return s3s__mix64(r->key + r->ctr * GOLDEN);
}

uint64_t s3s__rng_below(s3s__ctr_rng *r, uint64_t bound)
{
    unsigned __int128 m = (unsigned __int128)s3s__rng_next(r) * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        /* (2^64 - bound) mod bound: the draws below it would bias the result. */
        uint64_t t = (0 - bound) % bound;
        while (low < t) {
            m = (unsigned __int128)s3s__rng_next(r) * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

void s3s_epoch_permutation(uint32_t *perm, size_t n, int shuffle, uint64_t seed, uint64_t epoch)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    if (!shuffle || n < 2)
        return;
    s3s__ctr_rng r = {s3s__epoch_key(seed, epoch), 0};
    /* The draw for step i depends only on the generator and i, not on the
     * array, so draws are made AHEAD steps early and the element they will
     * swap is prefetched: the swaps are random accesses into a large array. */
    enum { AHEAD = 16 };
    size_t ring[AHEAD];
    size_t fill = n - 1 < AHEAD ? n - 1 : AHEAD;
    for (size_t k = 0; k < fill; k++) {
        ring[k] = (size_t)s3s__rng_below(&r, (uint64_t)(n - 1 - k) + 1);
        __builtin_prefetch(&perm[ring[k]], 1);
    }
    for (size_t i = n - 1, k = 0; i > 0; i--, k++) {
        size_t j = ring[k % AHEAD];
        if (i > AHEAD) { /* the draw for step i - AHEAD */
            size_t ia = i - AHEAD;
            ring[k % AHEAD] = (size_t)s3s__rng_below(&r, (uint64_t)ia + 1);
            __builtin_prefetch(&perm[ring[k % AHEAD]], 1);
        }
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
