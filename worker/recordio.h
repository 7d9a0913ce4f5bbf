/* recordio.h: MXNet (dmlc-core) RecordIO framing, as SageMaker's Pipe mode
 * applies it with RecordWrapperType "RecordIO": each S3 object becomes one
 * record.
 *
 * A record is one or more parts; each part is
 *   uint32 magic 0xced7230a | uint32 lrecord = cflag << 29 | length | payload,
 * the payload padded with zeros to a multiple of 4 bytes (little-endian
 * integers). A payload that contains the magic at a 4-byte-aligned offset is
 * split there (the magic itself dropped, as dmlc's writer does, and restored
 * by its reader): cflag 0 = whole record, 1 = first part, 2 = middle, 3 = last.
 * A part's length is below 2^29. */
#ifndef S3S_WORKER_RECORDIO_H
#define S3S_WORKER_RECORDIO_H

#include <stddef.h>
#include <stdint.h>

#define S3S__RECORDIO_MAGIC 0xced7230au
#define S3S__RECORDIO_MAX ((1u << 29) - 1) /* longest part */

/* s3s__recordio_sink receives framed bytes in order; non-zero stops. */
typedef int (*s3s__recordio_sink)(void *ud, const void *p, size_t n);

/* s3s__recordio_write frames one record of n bytes into sink. Returns 0, the
 * sink's value, or S3S_ETOOBIG when a part would reach 2^29 bytes. */
int s3s__recordio_write(const uint8_t *p, size_t n, s3s__recordio_sink sink, void *ud);

#endif
