/* augmented_manifest_fuzz.c: libFuzzer target for the AugmentedManifestFile
 * (JSON Lines) parser. The first byte picks SkipBadRecords and the line cap. */
#include "common/dataset/manifest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int on_record(void *ud, const char *text, size_t len, size_t line)
{
    size_t *n = ud;
    (void)line;
    if (len < 2 || text[0] != '{' || text[len - 1] != '}')
        abort(); /* a record is a JSON object */
    (*n)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const attrs[] = {"source-ref", "class", "meta"};
    if (size < 1)
        return 0;
    int skip = data[0] & 1;
    uint64_t cap = (data[0] & 2) ? 32 : 1 << 20;
    size_t nattrs = 1 + (size_t)((data[0] >> 2) % 3);
    size_t n = 0, skipped = 0;
    s3s_errinfo e = {0};
    s3s__augmented_parse((const char *)data + 1, size - 1, "fuzz.jsonl", attrs, nattrs, cap, skip,
                         on_record, &n, &skipped, &e);
    return 0;
}
