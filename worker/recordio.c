/* recordio.c: dmlc RecordIO writer (recordio.h). Mirrors dmlc-core's
 * RecordIOWriter::WriteRecord so MXNet's reader restores the record. */
#include "worker/recordio.h"

#include "s3shard/error.h"

#include <string.h>

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static int part(uint32_t cflag, const uint8_t *p, size_t n, s3s__recordio_sink sink, void *ud)
{
    if (n > S3S__RECORDIO_MAX)
        return S3S_ETOOBIG;
    uint8_t head[8];
    put32(head, S3S__RECORDIO_MAGIC);
    put32(head + 4, cflag << 29 | (uint32_t)n);
    int rc = sink(ud, head, 8);
    if (rc == 0 && n > 0)
        rc = sink(ud, p, n);
    static const uint8_t zero[4] = {0};
    if (rc == 0 && (n & 3) != 0)
        rc = sink(ud, zero, 4 - (n & 3));
    return rc;
}

int s3s__recordio_write(const uint8_t *p, size_t n, s3s__recordio_sink sink, void *ud)
{
    uint8_t m[4];
    put32(m, S3S__RECORDIO_MAGIC);
    size_t aligned = n & ~(size_t)3, start = 0;
    for (size_t i = 0; i < aligned; i += 4) {
        if (memcmp(p + i, m, 4) != 0)
            continue;
        int rc = part(start == 0 ? 1u : 2u, p + start, i - start, sink, ud);
        if (rc != 0)
            return rc;
        start = i + 4;
    }
    return part(start != 0 ? 3u : 0u, p + start, n - start, sink, ud);
}
