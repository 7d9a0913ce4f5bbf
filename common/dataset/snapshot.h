/* snapshot.h: the snapshot's memory layout, its builder and its file format.
 *
 * Invariants of an s3s_snapshot: recs[0..count) and arena[0..arena_len) are
 * never modified after creation; every record's key (and text ETag) lies inside
 * the arena; for S3S_SNAP_OBJECTS the keys are strictly increasing (memcmp
 * order, shorter first on a tie); hash is the SHA-256 content hash of
 * docs/dataset.md. Memory: 48 bytes per entry plus the arena (key bytes, and
 * ETags that are not plain MD5s). */
#ifndef S3S_DATASET_SNAPSHOT_H
#define S3S_DATASET_SNAPSHOT_H

#include "common/dataset/xxh64.h"
#include "s3shard/dataset.h"

#include <stddef.h>
#include <stdint.h>

#define S3S__ETAG_MD5 0xFFFFu /* etag_len value: the ETag is md5 (+ "-parts") */
#define S3S__MAX_ENTRIES 0xFFFFFFFEull

/* One entry: 48 bytes, stored as is (little-endian) in the file. */
typedef struct s3s__snap_rec {
    uint64_t key_off; /* key offset in the arena */
    uint64_t size;
    uint32_t key_len;
    uint32_t etag_parts; /* N of a multipart "md5-N" ETag, 0 when none */
    uint16_t etag_len; /* S3S__ETAG_MD5, or the length of a text ETag stored in
                          the arena right after the key (0: no ETag) */
    uint16_t pad0;
    uint32_t pad1;
    uint8_t md5[16];
} s3s__snap_rec;

struct s3s_snapshot {
    s3s_snapshot_kind kind;
    char *source; /* NUL-terminated */
    char *bucket; /* NULL for local data */
    uint64_t count;
    uint64_t arena_len;
    uint64_t total_bytes;
    int64_t created;
    s3s__snap_rec *recs;
    char *arena;
    void *block; /* the whole loaded file, when recs/arena point into it */
    size_t map_len; /* block is a read-only mmap of this many bytes (0: malloc'ed) */
    uint8_t hash[32];
};

/* The builder: entries are appended, then finished into a snapshot. */
typedef struct s3s__snap_builder {
    s3s__snap_rec *recs;
    uint64_t count, cap;
    char *arena;
    uint64_t arena_len, arena_cap;
    uint64_t total_bytes;
} s3s__snap_builder;

void s3s__sb_init(s3s__snap_builder *b);
void s3s__sb_fini(s3s__snap_builder *b);
/* s3s__sb_add appends one entry (etag may be NULL or ""). S3S_ENOMEM, S3S_ETOOBIG. */
int s3s__sb_add(s3s__snap_builder *b, const char *key, size_t key_len, uint64_t size,
                const char *etag);
/* s3s__sb_finish makes the snapshot (sorting and de-duplicating check for
 * S3S_SNAP_OBJECTS: a repeated key fails with S3S_EPARSE), computes its hash and
 * empties the builder. source and bucket (may be NULL) are copied. */
int s3s__sb_finish(s3s__snap_builder *b, s3s_snapshot_kind kind, const char *source,
                   const char *bucket, s3s_snapshot **out, s3s_errinfo *e);

/* s3s__snap_serialize writes the file image into *out (heap; caller frees). */
int s3s__snap_serialize(const s3s_snapshot *s, void **out, size_t *out_len, s3s_errinfo *e);
/* s3s__snap_parse takes ownership of block (malloc'ed, len bytes) on success
 * and on failure alike. */
int s3s__snap_parse(s3s_snapshot **out, void *block, size_t len, const char *name, s3s_errinfo *e);

/* s3s__snapshot_entry_line returns the manifest line of record i of an
 * S3S_SNAP_RECORDS snapshot (kept in the record's pad1 word, outside the
 * content hash), or 0 when unknown (other kinds, snapshots written before it
 * was kept, a line past 2^32 - 1, i out of range). */
uint32_t s3s__snapshot_entry_line(const s3s_snapshot *s, size_t i);

/* s3s__etag_text writes a record's ETag as text into out (72 bytes). */
void s3s__etag_text(const s3s_snapshot *s, const s3s__snap_rec *r, char out[72]);

#endif
