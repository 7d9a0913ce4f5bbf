/* source_s3.c: the S3 side of snapshots: prefix listings (parallel), manifest
 * reads, manifest sizes/ETags, and snapshot files stored in S3. Everything
 * goes through the public client of s3shard/s3.h. */
#include "common/dataset/errinfo.h"
#include "common/dataset/source.h"

#include "s3shard/error.h"
#include "s3shard/s3.h"

#include <stdlib.h>
#include <string.h>

#define MAX_SNAPSHOT_OBJECT (64ull << 30)

static int need_client(const s3s_source_opts *o, const char *uri, s3s_errinfo *e)
{
    if (o->s3 == NULL)
        return s3s__ei_set(e, S3S_EINVAL, "%s: an S3 client is needed to read it", uri);
    return 0;
}

typedef struct listctx {
    s3s__snap_builder *b;
    int rc;
} listctx;

static int on_obj(void *ud, const char *key, uint64_t size, const char *etag, int64_t mtime)
{
    listctx *l = ud;
    (void)mtime;
    l->rc = s3s__sb_add(l->b, key, strlen(key), size, etag);
    return l->rc;
}

static int list_into(s3s_s3 *s3, const char *bucket, const char *prefix, unsigned par,
                     s3s__snap_builder *b, s3s_errinfo *e)
{
    listctx l = {b, 0};
    int rc = s3s_s3_list_parallel(s3, bucket, prefix, par, on_obj, &l);
    if (rc != 0) {
        if (l.rc != 0)
            return s3s__ei_set(e, l.rc, "listing s3://%s/%s: %s", bucket, prefix,
                               s3s_strerror(l.rc));
        return s3s__ei_set(e, rc, "listing s3://%s/%s: %s", bucket, prefix, s3s_s3_errmsg(s3));
    }
    return 0;
}

int s3s__snapshot_from_prefix(s3s_snapshot **out, const s3s_source_opts *o, s3s_errinfo *e)
{
    char *bucket = NULL, *prefix = NULL;
    int rc = need_client(o, o->uri, e);
    if (rc != 0)
        return rc;
    if ((rc = s3s__ds_split_uri(o->uri, &bucket, &prefix, e)) != 0)
        return rc;
    s3s__snap_builder b;
    s3s__sb_init(&b);
    rc = list_into(o->s3, bucket, prefix, o->list_parallelism, &b, e);
    if (rc == 0)
        rc = s3s__sb_finish(&b, S3S_SNAP_OBJECTS, o->uri, bucket, out, e);
    s3s__sb_fini(&b);
    free(bucket);
    free(prefix);
    return rc;
}

typedef struct getctx {
    char *buf;
    size_t len, cap, max;
} getctx;

static int on_bytes(void *ud, const void *data, size_t len)
{
    getctx *g = ud;
    if (g->len + len > g->max)
        return S3S_ETOOBIG;
    if (g->len + len + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 65536;
        while (cap < g->len + len + 1)
            cap *= 2;
        char *p = realloc(g->buf, cap);
        if (p == NULL)
            return S3S_ENOMEM;
        g->buf = p;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, data, len);
    g->len += len;
    g->buf[g->len] = '\0';
    return 0;
}

static int get_all(s3s_s3 *s3, const char *uri, uint64_t cap, char **out, size_t *out_len,
                   s3s_errinfo *e)
{
    char *bucket = NULL, *key = NULL;
    int rc = s3s__ds_split_uri(uri, &bucket, &key, e);
    if (rc != 0)
        return rc;
    getctx g = {NULL, 0, 0, (size_t)cap};
    rc = s3s_s3_get(s3, bucket, key, 0, S3S_TO_END, NULL, on_bytes, &g, NULL);
    if (rc == S3S_ETOOBIG)
        s3s__ei_set(e, rc, "%s: larger than the cap of %llu bytes", uri, (unsigned long long)cap);
    else if (rc != 0)
        s3s__ei_set(e, rc, "%s: %s", uri, s3s_s3_errmsg(s3));
    else if (g.buf == NULL && (g.buf = calloc(1, 1)) == NULL)
        rc = s3s__ei_set(e, S3S_ENOMEM, "out of memory");
    free(bucket);
    free(key);
    if (rc != 0) {
        free(g.buf);
        return rc;
    }
    *out = g.buf;
    *out_len = g.len;
    return 0;
}

int s3s__read_s3(const s3s_source_opts *o, const char *uri, uint64_t cap, char **out,
                 size_t *out_len, s3s_errinfo *e)
{
    int rc = need_client(o, uri, e);
    if (rc != 0)
        return rc;
    return get_all(o->s3, uri, cap, out, out_len, e);
}

static int cmp_key(const s3s__snap_builder *b, uint64_t i, const char *k, size_t kl)
{
    const s3s__snap_rec *r = &b->recs[i];
    size_t n = r->key_len < kl ? r->key_len : kl;
    int c = memcmp(b->arena + r->key_off, k, n);
    if (c != 0)
        return c;
    return r->key_len < kl ? -1 : r->key_len > kl;
}

/* find: binary search in a key-sorted builder. */
static int64_t find(const s3s__snap_builder *b, const char *k, size_t kl)
{
    uint64_t lo = 0, hi = b->count;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = cmp_key(b, mid, k, kl);
        if (c == 0)
            return (int64_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

int s3s__manifest_fill_meta(const s3s__snap_builder *in, s3s__snap_builder *out,
                            const s3s_source_opts *o, const char *bucket, const char *prefix,
                            const char *name, s3s_errinfo *e)
{
    int rc = need_client(o, o->uri, e);
    if (rc != 0)
        return rc;
    s3s__snap_builder listed;
    s3s__sb_init(&listed);
    s3s_snapshot *sorted = NULL;
    if (o->manifest_meta == S3S_META_LIST) {
        rc = list_into(o->s3, bucket, prefix, o->list_parallelism, &listed, e);
        /* finishing sorts it (the listing is in key order already) */
        if (rc == 0)
            rc = s3s__sb_finish(&listed, S3S_SNAP_OBJECTS, "", bucket, &sorted, e);
    }
    s3s__snap_builder view = {0};
    if (sorted != NULL) {
        view.recs = sorted->recs;
        view.count = sorted->count;
        view.arena = sorted->arena;
    }
    char *key = NULL;
    for (uint64_t i = 0; rc == 0 && i < in->count; i++) {
        const s3s__snap_rec *r = &in->recs[i];
        const char *k = in->arena + r->key_off;
        if (o->manifest_meta == S3S_META_LIST) {
            int64_t at = find(&view, k, r->key_len);
            if (at < 0) {
                rc = s3s__ei_set(e, S3S_ENOTFOUND,
                                 "%s:%u: key \"%.*s\" is not in s3://%s/%s (listed for sizes "
                                 "and ETags)",
                                 name, r->pad1, (int)(r->key_len > 300 ? 300 : r->key_len), k,
                                 bucket, prefix);
                break;
            }
            s3s_entry ent;
            s3s_snapshot_entry(sorted, (size_t)at, &ent);
            rc = s3s__sb_add(out, k, r->key_len, ent.size, ent.etag);
        } else {
            free(key);
            if ((key = strndup(k, r->key_len)) == NULL) {
                rc = s3s__ei_set(e, S3S_ENOMEM, "out of memory");
                break;
            }
            s3s_s3_objinfo info;
            rc = s3s_s3_head(o->s3, bucket, key, &info);
            if (rc != 0) {
                s3s__ei_set(e, rc, "%s:%u: HEAD s3://%s/%s: %s", name, r->pad1, bucket, key,
                            s3s_s3_errmsg(o->s3));
                break;
            }
            rc = s3s__sb_add(out, k, r->key_len, info.size, info.etag);
        }
        if (rc != 0 && (e == NULL || e->code != rc))
            s3s__ei_set(e, rc, "%s:%u: %s", name, r->pad1, s3s_strerror(rc));
    }
    free(key);
    s3s_snapshot_destroy(sorted);
    s3s__sb_fini(&listed);
    return rc;
}

int s3s_snapshot_put(const s3s_snapshot *snap, s3s_s3 *s3, const char *uri, s3s_errinfo *e)
{
    char *bucket = NULL, *key = NULL;
    void *img = NULL;
    size_t n = 0;
    int rc = s3s__ds_split_uri(uri, &bucket, &key, e);
    if (rc == 0)
        rc = s3s__snap_serialize(snap, &img, &n, e);
    if (rc == 0 && (rc = s3s_s3_put(s3, bucket, key, img, n, NULL)) != 0)
        s3s__ei_set(e, rc, "PUT %s: %s", uri, s3s_s3_errmsg(s3));
    free(img);
    free(bucket);
    free(key);
    return rc;
}

int s3s_snapshot_get(s3s_snapshot **out, s3s_s3 *s3, const char *uri, s3s_errinfo *e)
{
    char *buf = NULL;
    size_t n = 0;
    *out = NULL;
    int rc = get_all(s3, uri, MAX_SNAPSHOT_OBJECT, &buf, &n, e);
    if (rc != 0)
        return rc;
    return s3s__snap_parse(out, buf, n, uri, e);
}
