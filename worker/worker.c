/* worker.c: s3s_worker: create/destroy, items and the prefetch lookahead.
 *
 * Lookahead: the items of the source are pulled ahead of the caller into a
 * ring (w->ahead, at most prefetch_items), each with its object and the
 * block holding its resume offset queued at prefetch priority while the
 * memory budget allows. s3s_worker_next pops the front and hands its object
 * (with whatever is fetched already) to the item's reader; then it tops the
 * ring up. For 40 KB objects one block is the whole object, so with 16 fetch
 * threads sixteen GETs are always in flight ahead of the reader. */
#include "worker/worker_int.h"

#include "common/util/log.h"
#include "s3shard/error.h"
#include "worker/records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1024ull * 1024)
#define RECORDS_AHEAD 256 /* augmented-manifest records resolved (HEAD) ahead */

void s3s_worker_opts_init(s3s_worker_opts *o)
{
    memset(o, 0, sizeof(*o));
    s3s_plan_opts_init(&o->plan);
    o->world_size = 1;
    o->local_rank = S3S_WORKER_RANK_ANY;
    o->coord_leases = 2;
    o->coord_timeout_ms = 60000;
    o->block_size = 8 * MIB;
    o->connections = 16;
    o->prefetch_bytes = 256 * MIB;
    o->prefetch_items = 1024;
    o->readahead_min = 1 * MIB;
    o->readahead_max = 64 * MIB;
    o->auto_commit = 1;
    s3s_s3_opts_init(&o->s3);
}

static int dup_str(const char **field, char **slot)
{
    if (*field == NULL)
        return 0;
    *slot = strdup(*field);
    if (*slot == NULL)
        return S3S_ENOMEM;
    *field = *slot;
    return 0;
}

static void set_err(s3s_errinfo *err, int rc, const char *msg)
{
    if (err == NULL)
        return;
    err->code = rc;
    snprintf(err->msg, sizeof(err->msg), "%s", msg && msg[0] ? msg : s3s_strerror(rc));
}

static int check_opts(const s3s_worker_opts *o, s3s__errbuf *eb)
{
    if (o->block_size < 64 * 1024 || o->block_size > 256 * MIB)
        return s3s__err_set(eb, S3S_EINVAL, "block_size %llu outside 64 KiB .. 256 MiB",
                            (unsigned long long)o->block_size);
    if (o->connections == 0 || o->connections > 1024)
        return s3s__err_set(eb, S3S_EINVAL, "connections %u outside 1 .. 1024", o->connections);
    if (o->prefetch_bytes < o->block_size)
        return s3s__err_set(eb, S3S_EINVAL, "prefetch_bytes below one block");
    if (o->prefetch_items > (1u << 20))
        return s3s__err_set(eb, S3S_EINVAL, "prefetch_items past 2^20");
    if (o->readahead_min == 0 || o->readahead_max < o->readahead_min)
        return s3s__err_set(eb, S3S_EINVAL, "readahead_min must be > 0 and <= readahead_max");
    return 0;
}

static void worker_free(s3s_worker *w);

int s3s__worker_create_src(s3s_worker **out, const s3s_worker_opts *opts, s3s__source *src,
                           s3s__errbuf *eb)
{
    int rc = check_opts(opts, eb);
    if (rc != 0)
        return rc;
    s3s_worker *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    w->o = *opts;
    w->o.job = NULL;
    w->o.snapshot = NULL;
    w->o.channel = NULL;
    w->o.cache_dir = NULL;
    s3s_s3_opts *s = &w->o.s3;
    if (dup_str(&s->endpoint, &w->s3_strs[0]) || dup_str(&s->region, &w->s3_strs[1]) ||
        dup_str(&s->profile, &w->s3_strs[2]) || dup_str(&s->access_key_id, &w->s3_strs[3]) ||
        dup_str(&s->secret_access_key, &w->s3_strs[4]) ||
        dup_str(&s->session_token, &w->s3_strs[5]) || dup_str(&s->ca_bundle, &w->s3_strs[6])) {
        worker_free(w);
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&w->src_mu, NULL);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_work, NULL);
    pthread_cond_init(&w->cv_done, NULL);
    w->ahead_cap = (size_t)w->o.prefetch_items + 1;
    w->ahead = calloc(w->ahead_cap, sizeof(*w->ahead));
    if (w->ahead == NULL) {
        worker_free(w);
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    }
    if (opts->cache_dir != NULL) {
        s3s__cache_opts co;
        s3s__cache_opts_init(&co);
        co.block_size = w->o.block_size;
        if (opts->cache_limit != 0)
            co.max_bytes = opts->cache_limit;
        else if (opts->job != NULL && s3s_job_settings_get(opts->job)->cache_limit_bytes != 0)
            co.max_bytes = s3s_job_settings_get(opts->job)->cache_limit_bytes;
        rc = s3s__cache_open(&w->cache, opts->cache_dir, &co, eb);
        if (rc != 0) {
            worker_free(w);
            return rc;
        }
    }
    rc = s3s__fetch_start(w, eb);
    if (rc != 0) {
        worker_free(w);
        return rc;
    }
    w->src = src;
    *out = w;
    return 0;
}

/* A worker over the coordinator's leases: the source first (the job and the
 * snapshot come from the coordinator), then the worker and its cache, then
 * the hello (which reports what the cache holds). */
static int create_coord(s3s_worker **out, const s3s_worker_opts *opts, s3s_errinfo *err)
{
    s3s__errbuf eb = {{0}};
    s3s__source *src = NULL, *coord = NULL;
    s3s_worker *w = NULL;
    int rc = s3s__source_coord_create(&coord, opts, &eb);
    src = coord;
    if (rc == 0 && s3s_snapshot_kind_get(s3s__source_coord_snapshot(coord)) == S3S_SNAP_RECORDS) {
        /* augmented manifest: the leased records become one item per attribute */
        s3s__source *rs = NULL;
        unsigned nres = opts->connections < 8 ? (opts->connections ? opts->connections : 1) : 8;
        rc = s3s__source_records_create(&rs, coord,
                                        s3s_snapshot_source(s3s__source_coord_snapshot(coord)),
                                        &opts->s3, nres, RECORDS_AHEAD, &eb);
        if (rc == 0)
            src = rs;
        else
            coord->destroy(coord);
    }
    if (rc == 0) {
        s3s_worker_opts o = *opts;
        o.job = s3s__source_coord_job(coord); /* its cache limit */
        rc = s3s__worker_create_src(&w, &o, src, &eb);
        if (rc != 0)
            src->destroy(src);
    }
    uint32_t rank = 0, world = 0;
    if (rc == 0) {
        w->coord = coord;
        rc = s3s__source_coord_connect(coord, w->cache, &rank, &world, &eb);
        if (rc != 0)
            worker_free(w);
    }
    if (rc != 0) {
        set_err(err, rc, eb.msg);
        return rc;
    }
    w->rank = rank;
    *out = w;
    return 0;
}

int s3s_worker_create(s3s_worker **out, const s3s_worker_opts *opts, s3s_errinfo *err)
{
    s3s__errbuf eb = {{0}};
    s3s_worker_opts defaults;
    if (out == NULL)
        return S3S_EINVAL;
    if (opts == NULL) {
        s3s_worker_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->coordinator != NULL)
        return create_coord(out, opts, err);
    s3s__static_cfg cfg;
    s3s_snapshot *owned = NULL;
    s3s__source *src = NULL;
    int rc = s3s__static_setup(&cfg, opts, &owned, &eb);
    if (rc == 0)
        rc = s3s__source_static_create(&src, &cfg, &eb);
    if (rc == 0 && s3s_snapshot_kind_get(cfg.snap) == S3S_SNAP_RECORDS) {
        /* augmented manifest: each record becomes one item per attribute */
        s3s__source *rs = NULL;
        unsigned nres = opts->connections < 8 ? (opts->connections ? opts->connections : 1) : 8;
        rc = s3s__source_records_create(&rs, src, s3s_snapshot_source(cfg.snap), &opts->s3, nres,
                                        RECORDS_AHEAD, &eb);
        if (rc == 0)
            src = rs;
    }
    if (rc == 0)
        rc = s3s__worker_create_src(out, opts, src, &eb);
    if (rc != 0) {
        if (src)
            src->destroy(src);
        s3s_snapshot_destroy(owned);
        set_err(err, rc, eb.msg);
        return rc;
    }
    (*out)->owned_snap = owned;
    (*out)->rank = opts->rank;
    return 0;
}

/* ahead_drop gives an item fetched ahead back to the source (src_mu held). */
static void ahead_drop(s3s_worker *w, s3s__ahead *a)
{
    pthread_mutex_lock(&w->mu);
    for (uint32_t i = a->obj->lo; i < a->obj->hi; i++)
        s3s__slot_drop_locked(w, a->obj, i);
    pthread_mutex_unlock(&w->mu);
    s3s__obj_unref(w, a->obj);
    if (w->src)
        w->src->release(w->src, &a->d);
    s3s__item_desc_fini(&a->d);
}

static void ahead_clear(s3s_worker *w)
{
    while (w->ahead_n > 0) {
        ahead_drop(w, &w->ahead[w->ahead_head]);
        w->ahead_head = (w->ahead_head + 1) % w->ahead_cap;
        w->ahead_n--;
    }
}

static void worker_free(s3s_worker *w)
{
    s3s__fetch_stop(w);
    if (w->ahead != NULL)
        ahead_clear(w);
    free(w->ahead);
    s3s__fetch_pool_free(w);
    if (w->src)
        w->src->destroy(w->src);
    s3s_snapshot_destroy(w->owned_snap);
    s3s__cache_close(w->cache);
    pthread_cond_destroy(&w->cv_work);
    pthread_cond_destroy(&w->cv_done);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->src_mu);
    for (size_t i = 0; i < sizeof(w->s3_strs) / sizeof(w->s3_strs[0]); i++)
        free(w->s3_strs[i]);
    free(w);
}

void s3s_worker_destroy(s3s_worker *w)
{
    if (w != NULL)
        worker_free(w);
}

int s3s_worker_drain(s3s_worker *w, const char *reason)
{
    if (w == NULL)
        return S3S_EINVAL;
    s3s__errbuf eb = {{0}};
    int rc = 0;
    pthread_mutex_lock(&w->src_mu);
    ahead_clear(w);
    w->src_eof = 1;
    if (w->src->drain != NULL) /* idempotent */
        rc = w->src->drain(w->src, reason, &eb);
    pthread_mutex_unlock(&w->src_mu);
    if (rc != 0) {
        pthread_mutex_lock(&w->mu);
        s3s__err_set(&w->eb, rc, "drain: %s", eb.msg);
        pthread_mutex_unlock(&w->mu);
    }
    return rc;
}

uint32_t s3s_worker_rank(const s3s_worker *w)
{
    return w ? w->rank : S3S_WORKER_RANK_ANY;
}

const char *s3s_worker_errmsg(s3s_worker *w)
{
    static __thread char copy[S3S_ERRBUF_SIZE];
    if (w == NULL)
        return "";
    pthread_mutex_lock(&w->mu);
    memcpy(copy, w->eb.msg, sizeof(copy));
    pthread_mutex_unlock(&w->mu);
    return copy;
}

/* queue_first_locked queues the block holding a's resume offset (w->mu held).
 * Returns 0 when the budget is full. */
static int queue_first_locked(s3s_worker *w, s3s__ahead *a)
{
    if (a->queued)
        return 1;
    if (a->obj->size == 0 || a->d.offset >= a->obj->size) {
        a->queued = 1;
        return 1;
    }
    uint32_t idx = (uint32_t)(a->d.offset / a->obj->block_size);
    if (s3s__blk_want_locked(w, a->obj, idx, a->d.offset % a->obj->block_size, 1, 0) == NULL)
        return 0;
    a->queued = 1;
    return 1;
}

static int cancelled(const s3s_worker *w)
{
    return w->o.cancel != NULL && *w->o.cancel != 0;
}

/* pull_one appends the source's next item to the ring (src_mu held).
 * Returns 0, S3S_EEOF, S3S_EBUSY (wait 0 and nothing available now), or an
 * error (kept in w->src_err: later calls return it). */
static int pull_one(s3s_worker *w, int wait)
{
    if (w->src_eof)
        return w->src_err ? w->src_err : S3S_EEOF;
    if (cancelled(w)) /* a drain is coming: no new lease, nothing more prefetched */
        return wait ? S3S_EINTERRUPTED : S3S_EBUSY;
    s3s__item_desc d = {0};
    s3s__errbuf eb = {{0}};
    int rc = w->src->next(w->src, &d, wait, &eb);
    if (rc == S3S_EBUSY)
        return rc; /* nothing right now: the lookahead stops here (next asks again) */
    if (rc == 0) {
        s3s__obj *o = NULL;
        rc = s3s__obj_create(w, d.bucket, d.key, d.etag, d.size, &o);
        if (rc == 0 && d.data != NULL) { /* an inline record attribute */
            o->data = d.data;
            d.data = NULL;
        }
        if (rc == 0) {
            s3s__ahead *a = &w->ahead[(w->ahead_head + w->ahead_n) % w->ahead_cap];
            a->d = d;
            a->obj = o;
            a->queued = 0;
            w->ahead_n++;
            return 0;
        }
        s3s__err_set(&eb, rc, "item %s: %s", d.key, s3s_strerror(rc));
        s3s__item_desc_fini(&d);
    }
    if (rc != S3S_EEOF && !wait && w->src->valid != NULL) {
        /* A lookahead's request to the coordinator failed (a restart in
         * progress, a timeout): nobody waits for this item yet, and the next
         * s3s_worker_next asks again and reports what it gets then. */
        S3S_LOGD("worker: lookahead: %s", eb.msg);
        return rc;
    }
    w->src_eof = 1;
    if (rc != S3S_EEOF) {
        w->src_err = rc;
        pthread_mutex_lock(&w->mu);
        s3s__err_set(&w->eb, rc, "%s", eb.msg);
        pthread_mutex_unlock(&w->mu);
    }
    return rc;
}

/* refill tops the lookahead up (src_mu held): first blocks of items already
 * in the ring, then new items while the budget and the ring allow. */
static void refill(s3s_worker *w)
{
    size_t i;
    int room = 1;
    pthread_mutex_lock(&w->mu);
    for (i = 0; i < w->ahead_n && room; i++)
        room = queue_first_locked(w, &w->ahead[(w->ahead_head + i) % w->ahead_cap]);
    pthread_mutex_unlock(&w->mu);
    while (room && w->ahead_n < w->o.prefetch_items) {
        if (pull_one(w, 0) != 0)
            break;
        pthread_mutex_lock(&w->mu);
        room = queue_first_locked(w, &w->ahead[(w->ahead_head + w->ahead_n - 1) % w->ahead_cap]);
        pthread_mutex_unlock(&w->mu);
    }
}

int s3s_worker_next(s3s_worker *w, s3s_item **out)
{
    if (w == NULL || out == NULL)
        return S3S_EINVAL;
    s3s_item *item = calloc(1, sizeof(*item));
    if (item == NULL)
        return S3S_ENOMEM;
    pthread_mutex_lock(&w->src_mu);
    s3s__ahead a;
    for (;;) {
        int rc = 0;
        if (w->ahead_n == 0)
            rc = pull_one(w, 1);
        if (rc == S3S_EBUSY) {
            /* The source has nothing now (a coordinator whose other ranks hold
             * the last leases): ask again soon, without the lock, so commits
             * of other threads (maybe what frees a lease) go through. */
            pthread_mutex_unlock(&w->src_mu);
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&w->src_mu);
            continue;
        }
        if (rc != 0) {
            pthread_mutex_unlock(&w->src_mu);
            free(item);
            return rc;
        }
        a = w->ahead[w->ahead_head];
        memset(&w->ahead[w->ahead_head], 0, sizeof(a));
        w->ahead_head = (w->ahead_head + 1) % w->ahead_cap;
        w->ahead_n--;
        if (w->src->valid == NULL || w->src->valid(w->src, &a.d))
            break;
        ahead_drop(w, &a); /* its lease was revoked meanwhile */
    }
    if (w->o.prefetch_items > 0)
        refill(w);
    pthread_mutex_unlock(&w->src_mu);

    item->w = w;
    item->d = a.d;
    item->committed = a.d.offset;
    item->info.bucket = item->d.bucket;
    item->info.key = item->d.key;
    item->info.size = item->d.size;
    item->info.etag = item->d.etag;
    item->info.offset = item->d.offset;
    item->info.epoch = item->d.epoch;
    item->info.position = item->d.position;
    item->info.attribute = item->d.attribute;
    item->info.attr_index = item->d.attr_index;
    item->info.attr_count = item->d.attr_count;
    item->info.record_line = item->d.line;
    s3s__reader_setup(&item->reader, w, a.obj, a.d.offset);
    item->reader.item = item;
    pthread_mutex_lock(&w->mu);
    w->st.items++;
    pthread_mutex_unlock(&w->mu);
    *out = item;
    return 0;
}

const s3s_item_info *s3s_item_info_get(const s3s_item *item)
{
    return item ? &item->info : NULL;
}

s3s_reader *s3s_item_reader(s3s_item *item)
{
    return item ? &item->reader : NULL;
}

static int commit(s3s_item *item, uint64_t offset, int done)
{
    s3s_worker *w = item->w;
    s3s__errbuf eb = {{0}};
    pthread_mutex_lock(&w->src_mu);
    int rc = w->src->commit(w->src, &item->d, offset, done, &eb);
    pthread_mutex_unlock(&w->src_mu);
    if (rc != 0) {
        s3s__err_set(&item->reader.eb, rc, "commit %s at %llu: %s", item->d.key,
                     (unsigned long long)offset, eb.msg);
        return rc;
    }
    item->committed = offset;
    pthread_mutex_lock(&w->mu);
    w->st.commits++;
    if (done) {
        item->done = 1;
        w->st.items_done++;
    }
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int s3s_item_commit(s3s_item *item, uint64_t offset)
{
    if (item == NULL)
        return S3S_EINVAL;
    if (item->done || offset < item->committed || offset > item->d.size)
        return s3s__err_set(&item->reader.eb, S3S_EINVAL,
                            "commit %s at %llu: committed %llu, size %llu%s", item->d.key,
                            (unsigned long long)offset, (unsigned long long)item->committed,
                            (unsigned long long)item->d.size, item->done ? ", done" : "");
    return commit(item, offset, offset == item->d.size);
}

int s3s_item_close(s3s_item *item)
{
    if (item == NULL)
        return 0;
    s3s_worker *w = item->w;
    int rc = 0;
    if (!item->done) {
        if (w->o.auto_commit && item->reader.furthest >= item->d.size)
            rc = commit(item, item->d.size, 1);
        else {
            pthread_mutex_lock(&w->src_mu);
            w->src->release(w->src, &item->d);
            pthread_mutex_unlock(&w->src_mu);
        }
    }
    item->reader.item = NULL;
    s3s__reader_teardown(&item->reader);
    s3s__item_desc_fini(&item->d);
    free(item);
    return rc;
}

void s3s_worker_stats_get(s3s_worker *w, s3s_worker_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    pthread_mutex_unlock(&w->mu);
}
