/* coord_inventory.c: the shards the cache holds in full (coord_inventory.h). */
#include "worker/coord_inventory.h"

#include "s3shard/error.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a over key NUL etag. */
static uint64_t id_hash(const char *key, size_t key_len, const char *etag)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < key_len; i++)
        h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
    h = (h ^ 0) * 1099511628211ull;
    for (const char *p = etag; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h;
}

int s3s__coord_inventory(s3s__cache *cache, const s3s_snapshot *snap, const s3s_plan *plan,
                         uint32_t max, s3s__msg_inv **out, uint32_t *n_out, int *truncated,
                         s3s__errbuf *eb)
{
    *out = NULL;
    *n_out = 0;
    *truncated = 0;
    const char *bucket = s3s_snapshot_bucket(snap);
    s3s__cache_inv_item *items = NULL;
    size_t n = 0;
    int rc = s3s__cache_inventory(cache, &items, &n, eb);
    if (rc != 0 || bucket == NULL)
        return rc;
    /* open-addressing table of the complete objects of this bucket */
    size_t cap = 16;
    while (cap < 2 * n + 2)
        cap *= 2;
    size_t *tab = malloc(cap * sizeof(*tab)); /* item index + 1, 0 = empty */
    size_t nent = s3s_snapshot_count(snap);
    uint8_t *held = calloc(nent / 8 + 1, 1);
    size_t nshards = s3s_plan_shard_count(plan);
    s3s__msg_inv *inv = NULL;
    uint32_t ninv = 0;
    if (tab == NULL || held == NULL) {
        rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
        goto out;
    }
    memset(tab, 0, cap * sizeof(*tab));
    size_t nheld = 0;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].complete || strcmp(items[i].bucket, bucket) != 0)
            continue;
        size_t h = (size_t)id_hash(items[i].key, strlen(items[i].key), items[i].etag) & (cap - 1);
        while (tab[h] != 0)
            h = (h + 1) & (cap - 1);
        tab[h] = i + 1;
        nheld++;
    }
    if (nheld == 0)
        goto out;
    for (size_t e = 0; e < nent; e++) {
        s3s_entry en;
        if (s3s_snapshot_entry(snap, e, &en) != 0)
            break;
        int hit = en.size == 0;
        for (size_t h = (size_t)id_hash(en.key, en.key_len, en.etag) & (cap - 1);
             !hit && tab[h] != 0; h = (h + 1) & (cap - 1)) {
            const s3s__cache_inv_item *it = &items[tab[h] - 1];
            hit = strlen(it->key) == en.key_len && memcmp(it->key, en.key, en.key_len) == 0 &&
                strcmp(it->etag, en.etag) == 0 && it->size == en.size;
        }
        if (hit)
            held[e / 8] |= (uint8_t)(1u << (e % 8));
    }
    for (size_t id = 0; id < nshards; id++) {
        s3s_shard sh;
        if (s3s_plan_shard(plan, (uint32_t)id, &sh) != 0 || sh.bytes == 0)
            continue;
        int all = 1;
        for (uint32_t k = 0; k < sh.count && all; k++) {
            uint64_t e = sh.first + k;
            all = (held[e / 8] >> (e % 8)) & 1;
        }
        if (!all)
            continue;
        if (ninv >= max) {
            *truncated = 1;
            break;
        }
        if (inv == NULL && (inv = malloc((size_t)max * sizeof(*inv))) == NULL) {
            rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
            goto out;
        }
        inv[ninv].channel = 0;
        inv[ninv].shard = id;
        ninv++;
    }
out:
    free(tab);
    free(held);
    s3s__cache_inventory_free(items, n);
    if (rc != 0) {
        free(inv);
        return rc;
    }
    *out = inv;
    *n_out = ninv;
    return 0;
}
