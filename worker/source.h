/* source.h: where a worker's items come from (internal interface).
 *
 * A source hands out item descriptions in the order the rank should read
 * them, takes progress commits and releases. The worker serialises every call
 * into one source (one call at a time, from any thread), and may call next()
 * well before the item is handed to the caller (prefetch lookahead): a source
 * must therefore tolerate items that are released without ever being read.
 *
 * Implementations: the static plan (the rank's share of each epoch, computed
 * locally: s3s__source_static_create) and a fixed list (File mode:
 * s3s__source_list_create) and the coordinator's leases
 * (s3s__source_coord_create, worker/source_coord.c). */
#ifndef S3S_WORKER_SOURCE_H
#define S3S_WORKER_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/errbuf.h"
#include "s3shard/dataset.h"
#include "s3shard/worker.h"

/* One item as a source describes it. Strings are heap copies owned by the
 * description (s3s__item_desc_fini frees them). */
typedef struct s3s__item_desc {
    char *bucket;
    char *key;
    char *etag; /* "" when unknown */
    uint64_t size;
    uint64_t offset; /* resume offset */
    uint64_t epoch;
    uint64_t position; /* position in this rank's order of the epoch */
    uint64_t token; /* source-specific (shard id, lease id, list index) */
    uint64_t sub; /* source-specific (coordinator: the item's index in its lease) */
    /* Augmented-manifest records (worker/records.h). A record source's
     * descriptions have bucket "", key the record's JSON text and line set;
     * the record expander turns each into one description per attribute,
     * with attribute set and, for a non-"-ref" attribute, data. */
    uint64_t line; /* the record's line in its manifest (0: unknown) */
    char *attribute; /* heap: the attribute this item carries, NULL otherwise */
    uint8_t *data; /* heap: an inline attribute's bytes (size of them), NULL: fetch */
    uint32_t attr_index, attr_count;
} s3s__item_desc;

void s3s__item_desc_fini(s3s__item_desc *d);

typedef struct s3s__source s3s__source;
struct s3s__source {
    /* next fills *out: 0, S3S_EEOF when nothing is left, or an error (eb).
     * wait 0 (prefetch lookahead): return S3S_EBUSY rather than block when
     * no item is available right now (a coordinator with no lease to grant
     * yet); wait 1 (a caller needs an item): may block until one comes, or
     * return S3S_EBUSY too, and the worker asks again a little later without
     * holding its locks (so commits of other threads, which may be what the
     * source waits for, go through meanwhile). */
    int (*next)(s3s__source *s, s3s__item_desc *out, int wait, s3s__errbuf *eb);
    /* commit records progress: bytes [0, offset) consumed; done = 1 when the
     * item is finished. */
    int (*commit)(s3s__source *s, const s3s__item_desc *d, uint64_t offset, int done,
                  s3s__errbuf *eb);
    /* release gives an unfinished item back (it stops at its last commit). */
    void (*release)(s3s__source *s, const s3s__item_desc *d);
    void (*destroy)(s3s__source *s);
    /* Optional (NULL: always valid / nothing to do). valid tells whether an
     * item fetched ahead may still be handed out (a coordinator lease can be
     * revoked meanwhile). drain ends the source at once: progress is made
     * durable at the last commits, every lease is given back, and next
     * returns S3S_EEOF from then on. */
    int (*valid)(s3s__source *s, const s3s__item_desc *d);
    int (*drain)(s3s__source *s, const char *reason, s3s__errbuf *eb);
    /* fetched (optional, any thread, must not block): n body bytes just came
     * from S3 (not from the cache); the coordinator source reports them. */
    void (*fetched)(s3s__source *s, uint64_t n);
};

/* s3s__static_setup resolves what the static plan needs from worker options:
 * the snapshot (opts->snapshot, or enumerated from the job channel's source
 * with a temporary S3 client: then *owned_snap is set and the caller destroys
 * it after the source), the plan options and the epoch range. */
typedef struct s3s__static_cfg {
    const s3s_snapshot *snap;
    s3s_plan_opts plan;
    uint32_t rank, world_size;
    uint64_t first_epoch;
    uint32_t epochs;
    const s3s_channel *channel; /* NULL without a job */
} s3s__static_cfg;

int s3s__static_setup(s3s__static_cfg *cfg, const s3s_worker_opts *opts, s3s_snapshot **owned_snap,
                      s3s__errbuf *eb);

/* s3s__source_static_create makes the static-plan source: for each epoch, the
 * plan of cfg->snap and this rank's share of it (every shard for
 * FullyReplicated), each shard's objects in order. S3 folder markers are
 * skipped. A Dynamic channel is refused (S3S_ENOTSUP: it needs a
 * coordinator), as are local snapshots. Of an augmented-manifest (records)
 * snapshot it hands out the records themselves (bucket "", key the record's
 * JSON, line): wrap it in s3s__source_records_create to get items. */
int s3s__source_static_create(s3s__source **out, const s3s__static_cfg *cfg, s3s__errbuf *eb);

/* s3s__source_list_create makes a source over n descriptions (moved into the
 * source on success: the caller's array is emptied, not freed). */
int s3s__source_list_create(s3s__source **out, s3s__item_desc *items, size_t n, s3s__errbuf *eb);

/* s3s__source_coord_create makes the coordinator source for opts (its
 * coordinator URL, secret, TLS CA, channel, rank, world size, epochs): it
 * asks the coordinator for the job spec and the channel's snapshot (a status
 * request) and builds the shard map, but does not say hello yet:
 * s3s__source_coord_connect does, once the worker's cache is open (its
 * inventory goes into the hello). See source_coord.c for the lease rules. */
struct s3s__cache;
int s3s__source_coord_create(s3s__source **out, const s3s_worker_opts *opts, s3s__errbuf *eb);
/* The job spec the coordinator runs (owned by the source). */
const s3s_job *s3s__source_coord_job(s3s__source *s);
/* s3s__source_coord_connect says hello (with the shards of the channel's
 * snapshot that cache, which may be NULL, holds in full) and starts the
 * heartbeats. *rank and *world receive the coordinator's answer. */
int s3s__source_coord_connect(s3s__source *s, struct s3s__cache *cache, uint32_t *rank,
                              uint32_t *world, s3s__errbuf *eb);
/* The channel's snapshot (owned by the source) and the world size (after
 * connect). */
const s3s_snapshot *s3s__source_coord_snapshot(s3s__source *s);
uint32_t s3s__source_coord_world(s3s__source *s);

#endif
