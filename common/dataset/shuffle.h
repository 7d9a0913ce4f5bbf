/* shuffle.h: the counter-based generator and the epoch permutation.
 *
 * Specified in docs/dataset.md ("The epoch order") and reproduced by
 * examples/epoch_order.py: any change here changes every job's order, so the
 * constants and the draw order are part of the format. */
#ifndef S3S_DATASET_SHUFFLE_H
#define S3S_DATASET_SHUFFLE_H

#include <stddef.h>
#include <stdint.h>

/* s3s__mix64 is SplitMix64's output function. */
uint64_t s3s__mix64(uint64_t z);
/* s3s__epoch_key derives the generator key of (seed, epoch). */
uint64_t s3s__epoch_key(uint64_t seed, uint64_t epoch);

/* s3s__ctr_rng: the generator: word j is mix64(key + (j + 1) * golden). */
typedef struct s3s__ctr_rng {
    uint64_t key;
    uint64_t ctr;
} s3s__ctr_rng;

uint64_t s3s__rng_next(s3s__ctr_rng *r);
/* s3s__rng_below returns an unbiased draw in [0, bound) (bound >= 1), Lemire's
 * multiply-and-reject method. */
uint64_t s3s__rng_below(s3s__ctr_rng *r, uint64_t bound);

#endif
