/* xxh64.h: XXH64 (seed 0), the snapshot file checksum: fast (several GB/s),
 * so a 1 GB snapshot is checked in a fraction of its load time. Streaming, so
 * a file is checksummed while it is written. */
#ifndef S3S_DATASET_XXH64_H
#define S3S_DATASET_XXH64_H

#include <stddef.h>
#include <stdint.h>

typedef struct s3s__xxh_state {
    uint64_t v[4];
    uint64_t total;
    uint8_t buf[32];
    size_t bl;
} s3s__xxh_state;

void s3s__xxh_init(s3s__xxh_state *st);
void s3s__xxh_update(s3s__xxh_state *st, const void *data, size_t len);
uint64_t s3s__xxh_digest(const s3s__xxh_state *st);
/* s3s__xxh64 hashes one buffer. */
uint64_t s3s__xxh64(const void *data, size_t len);

#endif
