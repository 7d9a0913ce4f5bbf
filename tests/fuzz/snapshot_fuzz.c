/* snapshot_fuzz.c: libFuzzer target for the snapshot file reader. When the
 * first byte is odd the input's trailer checksum is recomputed first, so the
 * fuzzer gets past the checksum to the structural checks; a snapshot that
 * loads is then read entry by entry, verified and planned. */
#include "common/dataset/snapshot.h"
#include "s3shard/dataset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int reseal = data[0] & 1;
    data++;
    size--;
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    if (reseal && size >= 16) {
        uint64_t h = s3s__xxh64(copy, size - 16);
        memcpy(copy + size - 16, &h, 8);
    }
    s3s_snapshot *s = NULL;
    s3s_errinfo e = {0};
    if (s3s_snapshot_load_mem(&s, copy, size, &e) == 0) {
        uint64_t total = 0;
        for (size_t i = 0; i < s3s_snapshot_count(s); i++) {
            s3s_entry ent;
            if (s3s_snapshot_entry(s, i, &ent) != 0)
                abort();
            total += ent.size;
            if (strlen(ent.etag) > 71)
                abort();
        }
        if (total != s3s_snapshot_total_bytes(s))
            abort();
        s3s_snapshot_verify(s, &e);
        s3s_plan_opts o;
        s3s_plan_opts_init(&o);
        o.shuffle = 1;
        o.distribution = S3S_DIST_SHARDED_BY_S3_KEY;
        o.balance = S3S_BALANCE_BYTES;
        o.shard_target_bytes = 100;
        s3s_plan *p = NULL;
        if (s3s_plan_create(&p, s, &o, &e) == 0) {
            uint64_t b[8];
            s3s_plan_shares(p, 7, b, &e);
            s3s_plan_destroy(p);
        }
        s3s_snapshot_destroy(s);
    }
    free(copy);
    return 0;
}
