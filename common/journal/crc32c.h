/* crc32c.h: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum of journal records (as in iSCSI, ext4 and LevelDB). Software,
 * slicing-by-8; crc32c("123456789") == 0xE3069283. */
#ifndef S3S_JOURNAL_CRC32C_H
#define S3S_JOURNAL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* s3s__crc32c extends crc (0 to start) over n bytes. Thread-safe. */
uint32_t s3s__crc32c(uint32_t crc, const void *p, size_t n);

#endif
