/* share.h: one rank's share of one channel for one epoch, as the list of
 * objects File, FastFile and Pipe modes lay out or stream (internal).
 *
 * The list is in reading order (the epoch order of the rank's shards, each
 * shard's objects in snapshot order) and every entry carries its path under
 * the channel folder ("rel"): the key with the channel prefix removed
 * (s3s__share_prefix). S3 folder markers are skipped. Every rel path has been
 * checked with s3s__keypath_check_set: none leaves the channel folder, none is
 * both a file and a folder. A refused key fails the whole list with
 * S3S_EUNSAFEKEY and a message naming the channel and the full s3:// key.
 *
 * Invariants: entries own their strings; bucket is the snapshot's. */
#ifndef S3S_WORKER_MODES_SHARE_H
#define S3S_WORKER_MODES_SHARE_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/errbuf.h"
#include "s3shard/dataset.h"

typedef struct s3s__share_ent {
    char *key; /* full object key */
    char *rel; /* path under the channel folder */
    char etag[72]; /* "" when unknown */
    uint64_t size;
} s3s__share_ent;

typedef struct s3s__share_list {
    char *bucket;
    s3s__share_ent *v;
    size_t n;
    uint64_t bytes; /* sum of sizes */
    size_t markers; /* folder markers skipped */
} s3s__share_list;

/* s3s__share_prefix returns how many leading bytes of every key of snap to
 * drop to get its path under the channel folder, the same rule as File mode
 * (s3s__mode_key_prefix in worker/mode_file.h): for a prefix listing, the source's key up to its
 * last
 * '/' (S3Uri s3://b/data/train/ lays data/train/x/1.jpg out as x/1.jpg, and
 * s3://b/data/train as train/x/1.jpg); for manifests, the folder common to
 * every key. */
size_t s3s__share_prefix(const s3s_snapshot *snap);

/* s3s__share_list_build computes the rank's share of ch's snapshot for one
 * epoch. world_size 0 is refused. A Dynamic channel fails with S3S_ENOTSUP
 * (its shares come from the coordinator), as do augmented-manifest records
 * and directory sources (nothing to fetch). On failure *out is empty. */
int s3s__share_list_build(s3s__share_list *out, const s3s_channel *ch, const s3s_snapshot *snap,
                          uint64_t epoch, uint32_t rank, uint32_t world_size, s3s__errbuf *eb);

/* s3s__share_list_fini frees the entries. NULL-safe; the list is left empty. */
void s3s__share_list_fini(s3s__share_list *l);

#endif
