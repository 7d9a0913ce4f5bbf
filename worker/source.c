/* source.c: the static-plan and list item sources (see source.h). */
#include "worker/source.h"

#include "common/dataset/snapshot.h"
#include "s3shard/error.h"
#include "worker/keypath.h"

#include <stdlib.h>
#include <string.h>

void s3s__item_desc_fini(s3s__item_desc *d)
{
    if (d == NULL)
        return;
    free(d->bucket);
    free(d->key);
    free(d->etag);
    free(d->attribute);
    free(d->data);
    memset(d, 0, sizeof(*d));
}

static int errinfo_to_eb(s3s__errbuf *eb, int rc, const s3s_errinfo *ei, const char *what)
{
    return s3s__err_set(eb, rc, "%s: %s", what, ei->msg[0] ? ei->msg : s3s_strerror(rc));
}

int s3s__static_setup(s3s__static_cfg *cfg, const s3s_worker_opts *opts, s3s_snapshot **owned_snap,
                      s3s__errbuf *eb)
{
    memset(cfg, 0, sizeof(*cfg));
    *owned_snap = NULL;
    if (opts->world_size == 0 || opts->rank >= opts->world_size)
        return s3s__err_set(eb, S3S_EINVAL, "rank %u is not below world size %u", opts->rank,
                            opts->world_size);
    cfg->rank = opts->rank;
    cfg->world_size = opts->world_size;
    cfg->first_epoch = opts->first_epoch;
    cfg->snap = opts->snapshot;
    if (opts->job != NULL) {
        const s3s_channel *ch = opts->channel != NULL
            ? s3s_job_channel_find(opts->job, opts->channel)
            : s3s_job_channel(opts->job, 0);
        if (ch == NULL)
            return s3s__err_set(eb, S3S_EINVAL, "no channel \"%s\" in the job",
                                opts->channel ? opts->channel : "");
        cfg->channel = ch;
        s3s_plan_opts_from_channel(&cfg->plan, ch, 0);
        uint32_t job_epochs = s3s_job_settings_get(opts->job)->epochs;
        cfg->epochs = opts->epochs;
        if (cfg->epochs == 0)
            cfg->epochs =
                job_epochs > opts->first_epoch ? (uint32_t)(job_epochs - opts->first_epoch) : 1;
        if (cfg->snap == NULL) {
            if (ch->data_type == S3S_DATA_FILESYSTEM)
                return s3s__err_set(eb, S3S_ENOTSUP,
                                    "channel %s: a file system source is "
                                    "mounted, not streamed",
                                    ch->name);
            s3s_s3 *s3 = NULL;
            int rc = s3s_s3_create(&s3, &opts->s3);
            if (rc != 0)
                return s3s__err_set(eb, rc, "S3 client: %s", s3s_s3_last_create_error());
            s3s_source_opts so;
            s3s_source_opts_from_channel(&so, ch, s3);
            s3s_errinfo ei = {0};
            s3s_snapshot *snap = NULL;
            rc = s3s_snapshot_create(&snap, &so, &ei);
            s3s_s3_destroy(s3);
            if (rc != 0)
                return errinfo_to_eb(eb, rc, &ei, ch->uri);
            *owned_snap = snap;
            cfg->snap = snap;
        }
    } else {
        if (cfg->snap == NULL)
            return s3s__err_set(eb, S3S_EINVAL, "worker options: a job or a snapshot is needed");
        cfg->plan = opts->plan;
        cfg->epochs = opts->epochs ? opts->epochs : 1;
    }
    return 0;
}

/* ---- static plan ------------------------------------------------------------ */

typedef struct static_src {
    s3s__source base;
    s3s__static_cfg cfg;
    const char *bucket;
    uint64_t epoch; /* current epoch */
    uint64_t epoch_end;
    s3s_plan *plan; /* of the current epoch, NULL between epochs */
    s3s_share share;
    uint64_t pos; /* next epoch-order position */
    s3s_shard shard; /* shard at pos - 1 when in_shard < shard.count */
    uint32_t in_shard;
    uint64_t emitted; /* items of this epoch so far */
} static_src;

static int static_next(s3s__source *base, s3s__item_desc *out, int wait, s3s__errbuf *eb)
{
    static_src *s = (static_src *)base;
    (void)wait; /* never blocks */
    for (;;) {
        if (s->plan == NULL) {
            if (s->epoch >= s->epoch_end)
                return S3S_EEOF;
            s3s_plan_opts po = s->cfg.plan;
            po.epoch = s->epoch;
            s3s_errinfo ei = {0};
            int rc = s3s_plan_create(&s->plan, s->cfg.snap, &po, &ei);
            if (rc == 0)
                rc = s3s_plan_share(s->plan, s->cfg.rank, s->cfg.world_size, &s->share, &ei);
            if (rc != 0) {
                s3s_plan_destroy(s->plan);
                s->plan = NULL;
                return errinfo_to_eb(eb, rc, &ei, "plan");
            }
            s->pos = s->share.begin;
            s->in_shard = 0;
            s->shard.count = 0;
            s->emitted = 0;
        }
        if (s->in_shard >= s->shard.count) {
            if (s->pos >= s->share.end) {
                s3s_plan_destroy(s->plan);
                s->plan = NULL;
                s->epoch++;
                continue;
            }
            uint32_t id = s3s_plan_order(s->plan)[s->pos++];
            if (s3s_plan_shard(s->plan, id, &s->shard) != 0)
                return s3s__err_set(eb, S3S_EINVAL, "plan: shard %u missing", id);
            s->in_shard = 0;
            continue;
        }
        s3s_entry e;
        if (s3s_snapshot_entry(s->cfg.snap, s->shard.first + s->in_shard++, &e) != 0)
            return s3s__err_set(eb, S3S_EINVAL, "plan: entry past the snapshot");
        int rec = s->bucket == NULL; /* an augmented-manifest record */
        if (!rec && s3s__keypath_is_folder_marker(e.key, e.key_len, e.size))
            continue;
        memset(out, 0, sizeof(*out));
        out->bucket = strdup(rec ? "" : s->bucket);
        out->key = strndup(e.key, e.key_len);
        out->etag = strdup(e.etag);
        if (!out->bucket || !out->key || !out->etag) {
            s3s__item_desc_fini(out);
            return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
        }
        out->size = e.size;
        out->epoch = s->epoch;
        out->position = s->emitted++;
        out->token = s->shard.first + s->in_shard - 1;
        if (rec)
            out->line = s3s__snapshot_entry_line(s->cfg.snap, (size_t)out->token);
        return 0;
    }
}

static int count_commit(s3s__source *s, const s3s__item_desc *d, uint64_t offset, int done,
                        s3s__errbuf *eb)
{
    (void)s, (void)d, (void)offset, (void)done, (void)eb;
    return 0; /* the static plan keeps no state: the worker counts */
}

static void count_release(s3s__source *s, const s3s__item_desc *d)
{
    (void)s, (void)d;
}

static void static_destroy(s3s__source *base)
{
    static_src *s = (static_src *)base;
    if (s == NULL)
        return;
    s3s_plan_destroy(s->plan);
    free(s);
}

int s3s__source_static_create(s3s__source **out, const s3s__static_cfg *cfg, s3s__errbuf *eb)
{
    if (cfg->plan.distribution == S3S_DIST_DYNAMIC)
        return s3s__err_set(eb, S3S_ENOTSUP, "channel %s: Dynamic distribution needs a coordinator",
                            cfg->channel ? cfg->channel->name : "(none)");
    int records = s3s_snapshot_kind_get(cfg->snap) == S3S_SNAP_RECORDS;
    const char *bucket = records ? NULL : s3s_snapshot_bucket(cfg->snap);
    if (bucket == NULL && !records)
        return s3s__err_set(eb, S3S_ENOTSUP, "snapshot of %s is not in S3",
                            s3s_snapshot_source(cfg->snap));
    static_src *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    s->base.next = static_next;
    s->base.commit = count_commit;
    s->base.release = count_release;
    s->base.destroy = static_destroy;
    s->cfg = *cfg;
    s->bucket = bucket;
    s->epoch = cfg->first_epoch;
    s->epoch_end = cfg->first_epoch + cfg->epochs;
    *out = &s->base;
    return 0;
}

/* ---- fixed list --------------------------------------------------------------- */

typedef struct list_src {
    s3s__source base;
    s3s__item_desc *items;
    size_t n, next;
} list_src;

static int list_next(s3s__source *base, s3s__item_desc *out, int wait, s3s__errbuf *eb)
{
    list_src *s = (list_src *)base;
    (void)eb, (void)wait;
    if (s->next >= s->n)
        return S3S_EEOF;
    *out = s->items[s->next];
    memset(&s->items[s->next], 0, sizeof(s->items[0]));
    out->token = s->next++;
    return 0;
}

static void list_destroy(s3s__source *base)
{
    list_src *s = (list_src *)base;
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        s3s__item_desc_fini(&s->items[i]);
    free(s->items);
    free(s);
}

int s3s__source_list_create(s3s__source **out, s3s__item_desc *items, size_t n, s3s__errbuf *eb)
{
    list_src *s = calloc(1, sizeof(*s));
    s3s__item_desc *copy = calloc(n ? n : 1, sizeof(*copy));
    if (s == NULL || copy == NULL) {
        free(s);
        free(copy);
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    }
    memcpy(copy, items, n * sizeof(*copy));
    memset(items, 0, n * sizeof(*items));
    s->base.next = list_next;
    s->base.commit = count_commit;
    s->base.release = count_release;
    s->base.destroy = list_destroy;
    s->items = copy;
    s->n = n;
    *out = &s->base;
    return 0;
}
