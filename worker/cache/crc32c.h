/* crc32c.h: CRC-32C (Castagnoli), the checksum of cache blocks and entry files.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at run
 * time) and a portable slicing-by-8 table otherwise; both give the same value.
 * CRC-32C is also what S3 offers as x-amz-checksum-crc32c. */
#ifndef S3S_WORKER_CACHE_CRC32C_H
#define S3S_WORKER_CACHE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* s3s__cache_crc32c extends crc (0 to start) over n bytes of p and returns the
 * new value. Thread-safe. */
uint32_t s3s__cache_crc32c(uint32_t crc, const void *p, size_t n);
/* s3s__cache_crc32c_sw is the table path alone (tests compare the two). */
uint32_t s3s__cache_crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
