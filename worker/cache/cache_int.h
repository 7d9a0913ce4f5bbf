/* cache_int.h: what the cache's .c files share: the handle layouts, the file
 * formats (entry file, block trailer) and the names of things on disk.
 *
 * On disk, under <dir>/s3shard-cache-v1/:
 *   <hh>/<hash>.m          entry file: identity + geometry (hh = hash[0..1])
 *   <hh>/<hash>.<i>        block i: data bytes, then a 32-byte trailer; a
 *                          partial block (a resume mid-block fetched only its
 *                          tail: docs/cache.md) has a hole where its first
 *                          `skip` bytes would be, and a trailer saying so
 *   <hh>/<hash>.<i>.lock   claim file of block i (flock held while fetching)
 *   verified/<boot id>     keys of large blocks verified during this boot
 *                          (cache_verify.c); older boots' logs are removed at open
 *   tmp/<hash>.<i>.<pid>.<n>   a block being written (flock held by its writer),
 *                          only where O_TMPFILE is missing: elsewhere a block or
 *                          entry file is written as an unnamed O_TMPFILE inode in
 *                          tmp/ and linked under its final name when complete, so
 *                          a crash leaves nothing behind and no lock is needed
 * A new format gets a new folder name; nothing here is ever reinterpreted. */
#ifndef S3S_WORKER_CACHE_CACHE_INT_H
#define S3S_WORKER_CACHE_CACHE_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "worker/cache/cache.h"

#define S3S__CACHE_SUBDIR "s3shard-cache-v1"
#define S3S__CACHE_TRAILER 32
#define S3S__CACHE_ENTRY_MAX 4096 /* cap on an entry file's size */
#define S3S__CACHE_BUCKET_MAX 255
#define S3S__CACHE_KEY_MAX 1024
#define S3S__CACHE_ETAG_MAX 255
#define S3S__CACHE_BS_MIN (64u * 1024)
#define S3S__CACHE_BS_MAX (256u * 1024 * 1024)

/* Blocks of at least this many bytes go into the verification log
 * (cache_verify.c); smaller ones are CRC-checked once per process. */
#define S3S__CACHE_VLOG_MIN (256u * 1024)
/* The log is cut to zero when it reaches this size (131,072 records). */
#define S3S__CACHE_VLOG_MAX (4u << 20)

/* A verified block (CRC of its data): the same inode, unchanged since (same
 * ctime), under the same name need not be checked again. */
typedef struct s3s__cache_vkey {
    uint64_t dev, ino;
    uint64_t ctime_ns; /* any write moves it; nobody can set it back */
    uint64_t tag; /* first 8 bytes of the identity hash, xor the index; 0 = empty slot */
} s3s__cache_vkey;

struct s3s__cache {
    char *root; /* <dir>/s3shard-cache-v1 */
    s3s__cache_opts o;
    pid_t pid;
    uint64_t incarnation; /* our start time in clock ticks since boot (/proc) */
    uint64_t pidns; /* our pid namespace's inode (/proc/self/ns/pid), 0 if unknown */
    int no_tmpfile; /* O_TMPFILE + linkat failed once here: named temps (atomic) */

    pthread_mutex_t mu; /* guards everything below */
    s3s__cache_stats st;
    int scanned; /* st.used_bytes comes from a scan (else it counts our adds only) */
    uint64_t added_since_scan;
    uint64_t tmp_counter;
    s3s__cache_vkey *vset;
    size_t vcap, vlen;
    int vlog_fd; /* <root>/verified/<boot id>, O_APPEND; -1: none */
    uint64_t vlog_off; /* how far we have read it */

    pthread_mutex_t evict_mu; /* one scan/eviction at a time in this process */
};

struct s3s__cache_entry {
    s3s__cache *c;
    char hash[S3S__CACHE_HASH_HEX + 1];
    uint8_t hbin[16];
    uint64_t size, block_size;
    uint32_t nblocks;
    uint8_t *img; /* the entry file's bytes as read at open */
    size_t img_len;
    char *meta_path;
};

struct s3s__cache_writer {
    s3s__cache_entry *e;
    uint32_t idx;
    int lock_fd; /* flock held: our claim */
    uint64_t lock_dev, lock_ino; /* the claim file's inode */
    int tmp_fd; /* unnamed (O_TMPFILE), or named tmp_path with its flock held */
    char *lock_path, *tmp_path, *final_path; /* tmp_path NULL: unnamed */
    uint64_t len, written;
    uint64_t skip; /* bytes [0, skip) of the block are not written (a partial block) */
    uint32_t crc;
};

/* The entry file, decoded. Strings point into the decoded buffer. */
typedef struct s3s__cache_meta {
    uint64_t size, block_size;
    const char *bucket, *key, *etag;
    size_t bucket_len, key_len, etag_len;
} s3s__cache_meta;

/* skip 0: a whole block, hbin8 = the identity hash's first 8 bytes. skip > 0:
 * a partial block holding bytes [skip, len) (crc covers those), and only the
 * hash's first 4 bytes are kept (hbin8[4..8) zero): its own magic, so an
 * older reader takes it for damaged and fetches the block, never misreads it. */
typedef struct s3s__cache_trailer {
    uint8_t hbin8[8];
    uint32_t idx, len, crc, skip;
} s3s__cache_trailer;

/* cache_format.c */
void s3s__cache_hash_bin(uint8_t out[16], const char *bucket, const char *key, const char *etag);
void s3s__cache_hash_hex(char out[S3S__CACHE_HASH_HEX + 1], const uint8_t bin[16]);
int s3s__cache_hex_to_bin(uint8_t out[16], const char *hex);
/* s3s__cache_meta_encode writes the entry file image into a heap buffer. */
int s3s__cache_meta_encode(const s3s__cache_id *id, uint64_t block_size, uint8_t **out,
                           size_t *out_len);
/* s3s__cache_meta_decode checks and decodes an entry file image; on failure
 * returns S3S_ECORRUPT with what is wrong and at which offset in eb. */
int s3s__cache_meta_decode(const uint8_t *p, size_t n, s3s__cache_meta *out, s3s__errbuf *eb);
void s3s__cache_trailer_encode(uint8_t out[S3S__CACHE_TRAILER], const s3s__cache_trailer *t);
int s3s__cache_trailer_decode(const uint8_t in[S3S__CACHE_TRAILER], s3s__cache_trailer *out,
                              s3s__errbuf *eb);
uint32_t s3s__cache_nblocks(uint64_t size, uint64_t block_size);

/* cache_verify.c */
uint64_t s3s__cache_vtag(const s3s__cache_entry *e, uint32_t idx);
void s3s__cache_vkey_of(s3s__cache_vkey *k, const struct stat *st, uint64_t tag);
/* s3s__cache_verified: was the block k (len data bytes) verified by this
 * handle, or (len >= S3S__CACHE_VLOG_MIN) by any process of this boot? */
int s3s__cache_verified(s3s__cache *c, const s3s__cache_vkey *k, uint64_t len);
/* s3s__cache_verified_add remembers k, and logs it when len is large enough. */
void s3s__cache_verified_add(s3s__cache *c, const s3s__cache_vkey *k, uint64_t len);
/* s3s__cache_vlog_open opens this boot's log (removing older boots' logs);
 * without a boot id or on any failure the handle simply has no log. */
void s3s__cache_vlog_open(s3s__cache *c);
void s3s__cache_vlog_close(s3s__cache *c);

/* cache.c */
/* s3s__cache_tmpfile opens an unnamed file (O_TMPFILE) in the tmp folder,
 * or returns -1 (then the caller uses a named temp: the file system or the
 * kernel lacks O_TMPFILE, or linking it failed before). */
int s3s__cache_tmpfile(s3s__cache *c);
/* s3s__cache_link_tmpfile gives an unnamed file the name dst, never
 * replacing: 0, or -1 with errno (EEXIST: dst exists). ENOENT for a missing
 * fan-out folder is retried once after making it (hash names the folder).
 * Any failure but EEXIST turns unnamed temps off for this handle. */
int s3s__cache_link_tmpfile(s3s__cache *c, int fd, const char *dst, const char *hash);
/* s3s__cache_mkfanout makes the fan-out folder of a hash. Returns 0 or -1. */
int s3s__cache_mkfanout(const s3s__cache *c, const char *hash);
/* s3s__cache_entry_relink writes the entry file again if a walk removed it. */
void s3s__cache_entry_relink(s3s__cache_entry *e);
/* s3s__cache_path formats root/<hh>/<hash><suffix> into a heap string. */
char *s3s__cache_path(const s3s__cache *c, const char *hash, const char *suffix);
/* s3s__cache_proc_starttime returns a process's start time (clock ticks
 * since boot) or 0 when it does not exist. */
uint64_t s3s__cache_proc_starttime(pid_t pid);
/* s3s__cache_note_added accounts bytes added by this handle and evicts
 * when the estimate says the folder is over its limit. */
void s3s__cache_note_added(s3s__cache *c, uint64_t bytes);

/* cache_scan.c */
enum {
    S3S__CACHE_EVICT_NONE = 0, /* scan only */
    S3S__CACHE_EVICT_AUTO = 1, /* over the limit: down to its low-water mark */
    S3S__CACHE_EVICT_TO = 2 /* down to target */
};
/* s3s__cache_rescan walks the folder (names and sizes, no contents), sets the
 * size estimate and the effective limit, removes stale claim files, and
 * evicts as mode says. Runs one at a time per handle (others skip it). */
int s3s__cache_rescan(s3s__cache *c, int mode, uint64_t target, s3s__errbuf *eb);
/* s3s__cache_clean_tmp removes temp files whose writer is gone. */
void s3s__cache_clean_tmp(s3s__cache *c);
/* s3s__cache_remove_entry deletes an entry file and all its blocks. */
void s3s__cache_remove_entry(s3s__cache *c, const char *hash);

#endif
