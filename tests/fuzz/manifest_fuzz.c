/* manifest_fuzz.c: libFuzzer target for the ManifestFile parser. The first
 * byte picks SkipBadRecords and the element cap; the rest is the manifest. */
#include "common/dataset/manifest.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int on_key(void *ud, const char *key, size_t len, size_t line)
{
    size_t *n = ud;
    (void)line;
    if (len == 0 || key[len] != '\0')
        abort(); /* keys are non-empty and NUL-terminated */
    (*n)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int skip = data[0] & 1;
    uint64_t cap = (data[0] & 2) ? 64 : 1 << 20;
    size_t n = 0, skipped = 0;
    char *bucket = NULL, *prefix = NULL;
    s3s_errinfo e = {0};
    s3s__manifest_parse((const char *)data + 1, size - 1, "fuzz.json", cap, skip, on_key, &n,
                        &bucket, &prefix, &skipped, &e);
    if (strlen(e.msg) >= sizeof(e.msg))
        abort();
    free(bucket);
    free(prefix);
    return 0;
}
