/* share.c: a rank's share as a list of objects with their channel paths. */
#include "worker/modes/share.h"

#include "s3shard/error.h"
#include "worker/keypath.h"
#include "worker/mode_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t s3s__share_prefix(const s3s_snapshot *snap)
{
    return s3s__mode_key_prefix(snap);
}

void s3s__share_list_fini(s3s__share_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].key);
        free(l->v[i].rel);
    }
    free(l->v);
    free(l->bucket);
    memset(l, 0, sizeof(*l));
}

int s3s__share_list_build(s3s__share_list *out, const s3s_channel *ch, const s3s_snapshot *snap,
                          uint64_t epoch, uint32_t rank, uint32_t world_size, s3s__errbuf *eb)
{
    memset(out, 0, sizeof(*out));
    if (ch->distribution == S3S_DIST_DYNAMIC)
        return s3s__err_set(eb, S3S_ENOTSUP,
                            "channel %s: Dynamic distribution needs a coordinator (--coordinator)",
                            ch->name);
    if (s3s_snapshot_kind_get(snap) == S3S_SNAP_RECORDS || s3s_snapshot_bucket(snap) == NULL)
        return s3s__err_set(eb, S3S_ENOTSUP,
                            "channel %s: only S3 objects can be laid out (not augmented-manifest "
                            "records nor local directories)",
                            ch->name);
    s3s_plan_opts po;
    s3s_plan_opts_from_channel(&po, ch, epoch);
    s3s_plan *plan = NULL;
    s3s_errinfo ei = {0};
    s3s_share share;
    const char **rels = NULL;
    int rc = s3s_plan_create(&plan, snap, &po, &ei);
    if (rc == 0)
        rc = s3s_plan_share(plan, rank, world_size, &share, &ei);
    if (rc != 0) {
        s3s__err_set(eb, rc, "channel %s: %s", ch->name, ei.msg);
        goto out;
    }
    if ((out->bucket = strdup(s3s_snapshot_bucket(snap))) == NULL)
        goto nomem;
    const uint32_t *order = s3s_plan_order(plan);
    size_t cap = 0, prefix = s3s__share_prefix(snap);
    for (uint64_t pos = share.begin; pos < share.end; pos++) {
        s3s_shard sh;
        s3s_plan_shard(plan, order[pos], &sh);
        for (uint64_t i = sh.first; i < sh.first + sh.count; i++) {
            s3s_entry e;
            s3s_snapshot_entry(snap, (size_t)i, &e);
            if (s3s__keypath_is_folder_marker(e.key, e.key_len, e.size)) {
                out->markers++;
                continue;
            }
            if (out->n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                s3s__share_ent *nv = realloc(out->v, nc * sizeof(*nv));
                if (nv == NULL)
                    goto nomem;
                out->v = nv;
                cap = nc;
            }
            s3s__share_ent *d = &out->v[out->n];
            size_t skip = prefix <= e.key_len ? prefix : 0;
            d->key = strndup(e.key, e.key_len);
            d->rel = strndup(e.key + skip, e.key_len - skip);
            if (d->key == NULL || d->rel == NULL) {
                free(d->key);
                free(d->rel);
                goto nomem;
            }
            snprintf(d->etag, sizeof d->etag, "%s", e.etag);
            d->size = e.size;
            out->bytes += e.size;
            out->n++;
            s3s__errbuf kb = {{0}};
            if (s3s__keypath_check(d->rel, strlen(d->rel), &kb) != 0) {
                rc = s3s__err_set(eb, S3S_EUNSAFEKEY, "channel %s: object s3://%s/%s refused: %s",
                                  ch->name, out->bucket, d->key, kb.msg);
                goto out;
            }
        }
    }
    if ((rels = malloc((out->n ? out->n : 1) * sizeof(*rels))) == NULL)
        goto nomem;
    for (size_t i = 0; i < out->n; i++)
        rels[i] = out->v[i].rel;
    s3s__errbuf kb = {{0}};
    if ((rc = s3s__keypath_check_set(rels, out->n, &kb)) != 0) {
        s3s__err_set(eb, rc, "channel %s (s3://%s): %s", ch->name, out->bucket, kb.msg);
        goto out;
    }
    goto out;
nomem:
    rc = s3s__err_set(eb, S3S_ENOMEM, "channel %s: out of memory", ch->name);
out:
    free(rels);
    s3s_plan_destroy(plan);
    if (rc != 0)
        s3s__share_list_fini(out);
    return rc;
}
