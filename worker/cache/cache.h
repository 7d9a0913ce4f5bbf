/* cache.h: the worker's local disk cache of object bytes (internal API).
 *
 * What it holds: bytes of S3 objects, keyed by their identity (bucket, key,
 * ETag), cut into fixed blocks (the last one shorter; an object no larger than
 * one block is one block), under a byte limit with LRU eviction. See
 * docs/cache.md for the layout on disk and the reasoning.
 *
 * Invariants:
 * - A block file under its final name is complete: it was written to a temp
 *   file, its trailer (identity hash, index, length, CRC-32C) appended, and
 *   renamed into place. A reader checks the length and trailer on every
 *   lookup and the CRC of the data once per handle (first open), or, for a
 *   large block, once per boot (the verification log, cache_verify.c: a
 *   record names the file's inode and ctime, so a changed file is checked
 *   again); a block that fails either is deleted and reported as a miss.
 * - At most one process (or thread) fetches a given block at a time: the
 *   fetcher holds an flock on the block's claim file. The kernel drops the
 *   lock when its holder dies, so a crashed fetcher never blocks others.
 * - Eviction unlinks block files. A reader holding a block's fd keeps reading
 *   the old bytes (Linux keeps an unlinked inode alive while it is open), so
 *   eviction never corrupts a reader; the space is freed at its close.
 * - The folder may be shared by several processes on one host; every change
 *   is a rename or unlink, so nobody ever sees a half-written block.
 *
 * Thread safety: a s3s__cache handle may be used from several threads at
 * once; an entry handle may be shared too; a writer belongs to one thread. */
#ifndef S3S_WORKER_CACHE_CACHE_H
#define S3S_WORKER_CACHE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/errbuf.h"

/* Options with their defaults (s3s__cache_opts_init). A plain struct so it can
 * become public in include/s3shard/worker.h unchanged. */
typedef struct s3s__cache_opts {
    /* Byte limit for everything in the folder (blocks, trailers, entry files).
     * Default 20 GiB. Several processes sharing a folder can overshoot it by
     * at most rescan_bytes each (see docs/cache.md). */
    uint64_t max_bytes;
    /* Also keep this percentage of the file system free (0 = no such rule).
     * Default 5. */
    unsigned min_free_pct;
    /* Block size for new entries, 64 KiB .. 256 MiB. Default 8 MiB. An entry
     * keeps the block size it was created with. */
    uint64_t block_size;
    /* fsync a block before renaming it into place. Default 0: the CRC in
     * the trailer already catches a block torn by a power loss. */
    int fsync;
    /* After a process has added this many bytes it rescans the folder to
     * learn what the other processes added. Default max_bytes / 16. */
    uint64_t rescan_bytes;
    /* Eviction brings the total down to this percentage of the limit, so it
     * does not run at every commit. Default 90. */
    unsigned low_water_pct;
    /* A hit refreshes the block's LRU time (its mtime) at most this often.
     * Default 10 s. */
    unsigned touch_interval_s;
} s3s__cache_opts;

/* The identity of an object. size is part of the stored identity and is
 * checked, but only bucket, key and etag go into the hash. */
typedef struct s3s__cache_id {
    const char *bucket; /* 1..255 bytes */
    const char *key; /* 1..1024 bytes */
    const char *etag; /* 1..255 bytes, as S3 gives it (quotes included or not) */
    uint64_t size; /* object size in bytes */
} s3s__cache_id;

#define S3S__CACHE_HASH_HEX 32 /* hex digits of an identity hash (128 bits) */

typedef struct s3s__cache s3s__cache;
typedef struct s3s__cache_entry s3s__cache_entry;
typedef struct s3s__cache_writer s3s__cache_writer;

/* A held block: data bytes [skip, len) of fd, at their offsets in the block
 * (skip > 0 only for a partial block: see s3s__cache_claim_from). Release
 * with s3s__cache_block_release. */
typedef struct s3s__cache_block {
    int fd; /* -1 when empty */
    uint64_t len;
    uint64_t skip; /* the first bytes, not held (0: the whole block) */
} s3s__cache_block;

typedef struct s3s__cache_stats {
    /* Outcomes of lookups and claims: a claim that finds the block is a hit,
     * one that makes the caller fetch it is a miss. */
    uint64_t hits, misses;
    uint64_t hit_bytes; /* sum of the lengths of blocks found */
    uint64_t corrupt; /* blocks or entry files found damaged and deleted */
    uint64_t vlog_hits; /* blocks served without a CRC pass: another process of
                           this boot verified them (the verification log) */
    uint64_t commits, commit_bytes; /* blocks written by this handle */
    uint64_t aborts;
    uint64_t claim_waits; /* claims that waited for another fetcher */
    uint64_t claim_timeouts;
    uint64_t stale_claims; /* claims taken over from a dead owner */
    uint64_t evictions, evicted_bytes;
    uint64_t scans; /* folder rescans */
    uint64_t used_bytes; /* estimate of the folder's size (see docs) */
    uint64_t limit_bytes; /* the effective limit at the last scan */
} s3s__cache_stats;

/* One object in the inventory. */
typedef struct s3s__cache_inv_item {
    char hash[S3S__CACHE_HASH_HEX + 1];
    char *bucket, *key, *etag; /* heap strings */
    uint64_t size, block_size;
    uint32_t nblocks; /* blocks of the whole object */
    uint32_t nheld; /* block files present (checked lazily when read) */
    uint8_t *held; /* bitmap, bit i of byte i/8 = block i present */
    int complete; /* nheld == nblocks */
} s3s__cache_inv_item;

/* s3s__cache_opts_init fills o with the defaults above. */
void s3s__cache_opts_init(s3s__cache_opts *o);

/* s3s__cache_id_hash writes the 32-hex-digit hash of (bucket, key, etag),
 * the name of the entry on disk, into out (33 bytes with the NUL). The
 * coordinator can compute it from a snapshot to match an inventory. */
void s3s__cache_id_hash(char out[S3S__CACHE_HASH_HEX + 1], const char *bucket, const char *key,
                        const char *etag);

/* s3s__cache_open opens (creating it and its parents if needed) the cache in
 * folder dir.
 * opts NULL means defaults. Cheap: it creates the folders, removes temp files
 * left by dead processes, and reads nothing else; the size of the folder is
 * learnt by the first scan (first commit, evict or stats call).
 * Returns 0, S3S_EINVAL (bad option, detail in eb), S3S_EIO, S3S_ENOMEM. */
int s3s__cache_open(s3s__cache **out, const char *dir, const s3s__cache_opts *opts,
                    s3s__errbuf *eb);
/* s3s__cache_close frees the handle. Entries and writers must be closed
 * first. NULL-safe. Leaves everything on disk. */
void s3s__cache_close(s3s__cache *c);

/* s3s__cache_entry_open finds or creates the entry of an object: its
 * identity file is written if absent, or read and checked if present (a
 * damaged one, or one whose size differs, is deleted with its blocks and
 * written afresh). Returns 0, S3S_EINVAL (bad identity), S3S_EIO, S3S_ENOMEM. */
int s3s__cache_entry_open(s3s__cache *c, const s3s__cache_id *id, s3s__cache_entry **out,
                          s3s__errbuf *eb);
void s3s__cache_entry_close(s3s__cache_entry *e);
uint64_t s3s__cache_entry_block_size(const s3s__cache_entry *e);
uint32_t s3s__cache_entry_nblocks(const s3s__cache_entry *e);
/* s3s__cache_entry_block_len is the data length of block idx. */
uint64_t s3s__cache_entry_block_len(const s3s__cache_entry *e, uint32_t idx);
const char *s3s__cache_entry_hash(const s3s__cache_entry *e);

/* s3s__cache_lookup returns 0 and an open whole block, or S3S_ENOTFOUND (a
 * miss: no block, a partial one, or a damaged one, which is deleted), S3S_EINVAL (idx out of range)
 * or S3S_EIO. A hit refreshes the block's LRU time. */
int s3s__cache_lookup(s3s__cache_entry *e, uint32_t idx, s3s__cache_block *out, s3s__errbuf *eb);
/* s3s__cache_block_release closes the block's fd. NULL-safe, idempotent. */
void s3s__cache_block_release(s3s__cache_block *b);

/* s3s__cache_claim asks for block idx. Returns 0 and either
 *  - *out_w set: the caller fetches the block: write it, then commit or abort;
 *  - out_hit filled (out_w NULL): the block is there (someone else fetched it,
 *    possibly while we waited for them).
 * Waits at most timeout_ms (< 0: forever) for another fetcher; then
 * S3S_ETIMEDOUT. A claim held by a dead process is taken over. */
int s3s__cache_claim(s3s__cache_entry *e, uint32_t idx, int timeout_ms, s3s__cache_writer **out_w,
                     s3s__cache_block *out_hit, s3s__errbuf *eb);
/* s3s__cache_claim_from is s3s__cache_claim for a caller that needs only the
 * bytes [from, len) of the block (a read resuming mid-block: the bytes before
 * were consumed already and must not be downloaded again). A block holding
 * at least those bytes is a hit (out_hit->skip <= from). Otherwise the
 * writer takes bytes [from, len) and commits a partial block (skip = from)
 * unless from is 0; and when a partial block holding a later part is there
 * (out_w set and out_hit->fd >= 0: its bytes [out_hit->skip, len)), the
 * caller may copy those from it instead of fetching them; it releases
 * out_hit. A later claim from a lower offset replaces a partial block the
 * same way, fetching only the part it lacks. */
int s3s__cache_claim_from(s3s__cache_entry *e, uint32_t idx, uint64_t from, int timeout_ms,
                          s3s__cache_writer **out_w, s3s__cache_block *out_hit, s3s__errbuf *eb);
/* s3s__cache_writer_write appends bytes of the block (from the claim's
 * `from` on). Writing past the block's length fails with S3S_ETOOBIG. On failure the writer stays
 * valid and must still be aborted. */
int s3s__cache_writer_write(s3s__cache_writer *w, const void *p, size_t n, s3s__errbuf *eb);
/* s3s__cache_writer_commit checks that the whole block (from `from`) was written, seals it
 * and renames it into place, releases the claim and frees w (on every path).
 * out_block (may be NULL) receives the block opened for reading. May evict.
 * Returns 0, S3S_ESHORT (fewer bytes than the block's length), S3S_EIO. */
int s3s__cache_writer_commit(s3s__cache_writer *w, s3s__cache_block *out_block, s3s__errbuf *eb);
/* s3s__cache_writer_abort drops the temp file, releases the claim, frees w.
 * NULL-safe. */
void s3s__cache_writer_abort(s3s__cache_writer *w);

/* s3s__cache_evict rescans the folder and deletes least recently used blocks
 * until the total is at most target bytes (UINT64_MAX: the configured limit's
 * low-water mark). Blocks being written are never touched (they are temp
 * files). Returns 0 or S3S_EIO. */
int s3s__cache_evict(s3s__cache *c, uint64_t target, s3s__errbuf *eb);

/* s3s__cache_stats copies the counters. rescan != 0 first rescans the folder
 * so used_bytes is exact at that moment. */
void s3s__cache_stats_get(s3s__cache *c, s3s__cache_stats *out, int rescan);

/* s3s__cache_inventory lists the objects held: names only plus one small
 * identity file read per object (no block is read). Items come sorted by
 * hash. Returns 0, S3S_EIO, S3S_ENOMEM. */
int s3s__cache_inventory(s3s__cache *c, s3s__cache_inv_item **out, size_t *out_n, s3s__errbuf *eb);
void s3s__cache_inventory_free(s3s__cache_inv_item *items, size_t n);

#endif
