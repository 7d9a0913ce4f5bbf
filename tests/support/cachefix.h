/* cachefix.h: the disk-cache tests' fixture: a fresh temp folder and cache
 * options, and opening a cache or an entry in it that fails the calling
 * cmocka test (fail_msg, with the cache's error text) when it cannot. */
#ifndef S3S_TEST_CACHEFIX_H
#define S3S_TEST_CACHEFIX_H

#include "worker/cache/cache.h"

#include <stdint.h>

typedef struct s3s_test_cachefix {
    char *dir; /* a fresh temp folder, removed by s3s_test_cachefix_teardown */
    s3s__cache_opts o; /* defaults, but block_size as given and min_free_pct 0 */
} s3s_test_cachefix;

/* s3s_test_cachefix_create makes the fixture: a temp folder named after name
 * (see s3s_test_tmpdir), options with block_size. Never NULL. */
s3s_test_cachefix *s3s_test_cachefix_create(const char *name, uint64_t block_size);

/* s3s_test_cachefix_teardown is a cmocka teardown for a *state made by
 * s3s_test_cachefix_create: removes the folder and frees the fixture. */
int s3s_test_cachefix_teardown(void **state);

/* s3s_test_cache_open opens a cache handle on f's folder with f's options. */
s3s__cache *s3s_test_cache_open(const s3s_test_cachefix *f);

/* s3s_test_cache_entry_open opens the entry of bucket "bkt", key, etag, size. */
s3s__cache_entry *s3s_test_cache_entry_open(s3s__cache *c, const char *key, const char *etag,
                                            uint64_t size);

#endif
