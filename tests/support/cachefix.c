/* cachefix.c: see cachefix.h. */
#include "tests/support/cachefix.h"

#include "tests/support/testenv.h"

#include <stdlib.h>

s3s_test_cachefix *s3s_test_cachefix_create(const char *name, uint64_t block_size)
{
    s3s_test_cachefix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->dir = s3s_test_tmpdir(name);
    s3s__cache_opts_init(&f->o);
    f->o.block_size = block_size;
    f->o.min_free_pct = 0;
    return f;
}

int s3s_test_cachefix_teardown(void **state)
{
    s3s_test_cachefix *f = *state;
    s3s_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

s3s__cache *s3s_test_cache_open(const s3s_test_cachefix *f)
{
    s3s__cache *c = NULL;
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    if (s3s__cache_open(&c, f->dir, &f->o, &eb) != 0)
        fail_msg("open: %s", eb.msg);
    return c;
}

s3s__cache_entry *s3s_test_cache_entry_open(s3s__cache *c, const char *key, const char *etag,
                                            uint64_t size)
{
    s3s__cache_id id = {"bkt", key, etag, size};
    s3s__cache_entry *e = NULL;
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    if (s3s__cache_entry_open(c, &id, &e, &eb) != 0)
        fail_msg("entry_open: %s", eb.msg);
    return e;
}
