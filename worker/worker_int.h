/* worker_int.h: the worker's internals shared by worker.c, fetch.c and
 * reader.c.
 *
 * Objects and blocks. An s3s__obj is one object being read (by an item's
 * reader, a standalone reader, or ahead of time by prefetch). It is cut into
 * blocks of block_size bytes (the cache's blocks); a block is the unit of one
 * ranged GET and of one cache file. obj->slots[i] holds a reference to block
 * i while someone wants it.
 *
 * Locking: one mutex, w->mu, guards every refcount, block state, slot table,
 * the fetch queues and the counters; w->cv_work wakes fetch threads,
 * w->cv_done wakes readers waiting for bytes. A block's buffer bytes below
 * blk->avail are immutable and may be read without the lock by anyone holding
 * a reference. Fetch threads drop the lock for the GET and the cache I/O.
 * Lock order: w->src_mu (item hand-out, source calls) before w->mu;
 * obj->ce_mu (opening the cache entry) is taken alone.
 *
 * Memory: a block fetched by GET holds a heap buffer of its length, counted
 * in w->mem from queueing to its last release; prefetch and read-ahead queue
 * only while w->mem stays under the budget (a reader's current block is
 * always fetched, so progress never waits for the budget). */
#ifndef S3S_WORKER_INT_H
#define S3S_WORKER_INT_H

#include <pthread.h>
#include <stdint.h>

#include "common/util/errbuf.h"
#include "s3shard/worker.h"
#include "worker/cache/cache.h"
#include "worker/source.h"

enum { BLK_QUEUED = 0, BLK_RUNNING = 1, BLK_DONE = 2, BLK_FAILED = 3 };

typedef struct s3s__obj s3s__obj;

typedef struct s3s__blk {
    int refs;
    int state;
    int prio; /* 0: reader (high), 1: prefetch (low) */
    int counted; /* w->mem includes len */
    int from_cache; /* served by the cache (fd), no GET */
    int prefetched; /* queued by prefetch (for the reader's counters) */
    int touched; /* a reader has counted it already */
    /* A cache writer takes the block: its last byte is handed out only once
     * the block is in the node's cache (state DONE), so a byte a rank has
     * committed is never one a SIGKILL can still take out of the cache (a
     * later epoch on the node would fetch it again). */
    int caching;
    uint32_t idx;
    uint64_t off, len;
    /* Bytes [0, skip) of the block are never fetched: a read resuming
     * mid-block (a tail re-issued after a kill, a journal resume) needs only
     * the rest, and downloading the consumed head again is what users pay
     * for twice. A read of those bytes replaces the block by a whole one. */
    uint64_t skip;
    uint8_t *buf; /* len bytes (at block offsets), [skip, avail) filled */
    uint64_t avail;
    uint64_t wake_at; /* a reader sleeps until avail reaches this (0: nobody) */
    int fd; /* cache block fd when from_cache, else -1 */
    int err;
    char *errmsg; /* heap, set on failure */
    s3s__obj *obj; /* the block holds a reference to its object */
    struct s3s__blk *qnext, *qprev; /* fetch queue links while QUEUED */
} s3s__blk;

struct s3s__obj {
    int refs; /* atomic */
    char *bucket, *key, *etag;
    uint64_t size, block_size;
    uint32_t nblocks;
    s3s__blk **slots; /* nblocks entries */
    uint32_t lo, hi; /* slots outside [lo, hi) are NULL */
    pthread_mutex_t ce_mu;
    int ce_tried;
    s3s__cache_entry *ce; /* NULL: no cache for this object */
    uint8_t *data; /* an inline record attribute's bytes (records.h): blocks are
                      served from here, never fetched; NULL for S3 objects */
};

struct s3s_reader {
    s3s_worker *w;
    s3s__obj *obj;
    s3s_item *item; /* owning item, or NULL for s3s_reader_open */
    uint64_t pos;
    uint64_t start; /* the resume offset it was opened at: bytes before it are not wanted */
    uint64_t seq_next; /* where a sequential read would continue */
    uint64_t seq_run; /* bytes read sequentially since the window last grew */
    uint64_t furthest; /* highest end of a read */
    s3s_reader_stats st;
    s3s__errbuf eb;
};

struct s3s_item {
    s3s_worker *w;
    s3s__item_desc d;
    s3s_item_info info;
    uint64_t committed;
    int done;
    s3s_reader reader;
};

/* One upcoming item (prefetch lookahead). */
typedef struct s3s__ahead {
    s3s__item_desc d;
    s3s__obj *obj;
    int queued; /* its first block was queued */
} s3s__ahead;

struct s3s_worker {
    s3s_worker_opts o; /* copy; o.s3 strings point into the copies below */
    char *s3_strs[8];
    s3s__cache *cache;
    s3s__source *src;
    s3s__source *coord; /* the coordinator source (src, or inside it: records), or NULL */
    s3s_snapshot *owned_snap;

    pthread_mutex_t src_mu;
    s3s__ahead *ahead; /* ring of upcoming items */
    size_t ahead_cap, ahead_head, ahead_n;
    int src_eof;
    int src_err;

    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    s3s__blk *q_head[2], *q_tail[2];
    int stopping;
    int waiters;
    uint64_t mem; /* bytes counted against the budget */
    void **pool; /* spare block_size buffers (already faulted in), at most pool_cap */
    unsigned pool_n, pool_cap;
    s3s_worker_stats st;
    s3s__errbuf eb; /* last failure (under mu) */

    void *threads; /* fetch.c's thread table */
    unsigned nthreads;

    uint32_t rank; /* given, or assigned by the coordinator */
};

/* worker.c: s3s__worker_create_src is s3s_worker_create with a given source
 * (taken over on success; opts' job/snapshot/plan fields are ignored, except
 * the job's cache limit). Used by File mode (a list) and the coordinator. */
int s3s__worker_create_src(s3s_worker **out, const s3s_worker_opts *opts, s3s__source *src,
                           s3s__errbuf *eb);

/* fetch.c */
int s3s__fetch_start(s3s_worker *w, s3s__errbuf *eb);
void s3s__fetch_stop(s3s_worker *w);
/* s3s__fetch_pool_free frees the spare buffers (after every block is gone). */
void s3s__fetch_pool_free(s3s_worker *w);
/* s3s__obj_create makes an object with one reference. */
int s3s__obj_create(s3s_worker *w, const char *bucket, const char *key, const char *etag,
                    uint64_t size, s3s__obj **out);
/* s3s__obj_unref drops a reference (atomic; w->mu may be held or not); the
 * last one closes the cache entry and frees it (its slots are empty by then:
 * the owner, a reader or a lookahead entry, drops them first). */
void s3s__obj_unref(s3s_worker *w, s3s__obj *o);
/* s3s__blk_want_locked returns the block in slot idx holding at least its
 * bytes [from, len) (from: an offset in the block; 0 = whole), queueing it at
 * prio if absent, or replacing a block in the slot that lacks some of them
 * (w->mu held). force: queue even past the budget. Returns NULL when not
 * queued (budget) or on ENOMEM. */
s3s__blk *s3s__blk_want_locked(s3s_worker *w, s3s__obj *o, uint32_t idx, uint64_t from, int prio,
                               int force);
/* s3s__slot_drop_locked drops slot idx's reference (w->mu held). */
void s3s__slot_drop_locked(s3s_worker *w, s3s__obj *o, uint32_t idx);
/* s3s__blk_unref_locked drops a reference to a block (w->mu held); frees the
 * block's memory when it was the last (never its object: see obj_unref). */
void s3s__blk_unref_locked(s3s_worker *w, s3s__blk *b);

/* reader.c */
int s3s__reader_setup(s3s_reader *r, s3s_worker *w, s3s__obj *obj, uint64_t pos);
void s3s__reader_teardown(s3s_reader *r);
/* s3s__reader_prefetch queues the block holding off at prefetch priority if
 * the budget allows (never waits): FastFile's lookahead over the next files. */
void s3s__reader_prefetch(s3s_reader *r, uint64_t off);
/* s3s__reader_pread_fd is a pread that copies nothing when it can (FastFile
 * splices the bytes): if the block holding off came from the disk cache, it
 * gives a dup of the block's file (the caller closes it) with the offset of
 * off in it, for the part of [off, off + n) in that block (*out_n bytes,
 * counted as read). Otherwise *out_fd = -1 and *out_n = 0 (the block is
 * fetched meanwhile: a pread follows). Errors as s3s_reader_pread. */
int s3s__reader_pread_fd(s3s_reader *r, size_t n, uint64_t off, int *out_fd, uint64_t *out_foff,
                         size_t *out_n);

#endif
