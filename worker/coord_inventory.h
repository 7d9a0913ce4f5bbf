/* coord_inventory.h: which shards of a channel's snapshot the worker's cache
 * holds in full, for the coordinator's hello (internal).
 *
 * The coordinator's scheduler prefers granting a worker the shards it holds
 * (docs/scheduling.md, cache-aware placement), so a restarted rank gets back
 * the shards it downloaded before. A shard is held when every non-empty
 * object of it is complete in the cache under the snapshot's (bucket, key,
 * ETag); shards of empty objects only are not reported (nothing to save). */
#ifndef S3S_WORKER_COORD_INVENTORY_H
#define S3S_WORKER_COORD_INVENTORY_H

#include <stdint.h>

#include "common/proto/msg.h"
#include "common/util/errbuf.h"
#include "s3shard/dataset.h"
#include "worker/cache/cache.h"

/* s3s__coord_inventory lists the shards of plan (over snap) that cache holds,
 * as hello inventory entries of channel index 0, at most max (then
 * *truncated = 1). *out is heap (free), NULL when none. Costs one cache
 * inventory (names and identity files, no block read) and one pass over the
 * snapshot. Returns 0, S3S_EIO, S3S_ENOMEM. */
int s3s__coord_inventory(s3s__cache *cache, const s3s_snapshot *snap, const s3s_plan *plan,
                         uint32_t max, s3s__msg_inv **out, uint32_t *n, int *truncated,
                         s3s__errbuf *eb);

#endif
