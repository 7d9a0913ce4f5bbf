/* cache_entry_fuzz.c: the cache's on-disk formats (entry file, block
 * trailer) read back from a damaged or hostile disk must never crash, and
 * whatever decodes must re-encode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/cache/cache_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s3s__cache_meta m;
    if (size <= S3S__CACHE_ENTRY_MAX && s3s__cache_meta_decode(data, size, &m, NULL) == 0) {
        char *b = strndup(m.bucket, m.bucket_len), *k = strndup(m.key, m.key_len),
             *e = strndup(m.etag, m.etag_len);
        /* Strings with a NUL inside decode but cannot round-trip as C strings. */
        if (b && k && e && strlen(b) == m.bucket_len && strlen(k) == m.key_len &&
            strlen(e) == m.etag_len) {
            s3s__cache_id id = {b, k, e, m.size};
            uint8_t *img = NULL;
            size_t n = 0;
            if (s3s__cache_meta_encode(&id, m.block_size, &img, &n) == 0) {
                if (n != size || memcmp(img, data, n) != 0)
                    abort();
                free(img);
            }
        }
        free(b);
        free(k);
        free(e);
    }
    if (size >= S3S__CACHE_TRAILER) {
        s3s__cache_trailer t;
        if (s3s__cache_trailer_decode(data, &t, NULL) == 0) {
            uint8_t out[S3S__CACHE_TRAILER];
            s3s__cache_trailer_encode(out, &t);
            if (memcmp(out, data, S3S__CACHE_TRAILER) != 0)
                abort();
        }
    }
    return 0;
}
