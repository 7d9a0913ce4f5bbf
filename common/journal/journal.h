/* journal.h: the coordinator's append-only journal (format: docs/journal.md).
 *
 * A state dir holds `journal` (the file), `journal.tmp` (a compaction or a
 * creation in progress; removed on open) and `lock` (flock'd while a journal
 * is open; holds the owner's pid). File = a 96-byte header naming the job-spec
 * and snapshot hashes, then records: [u32 LE length][u32 LE crc32c(payload)]
 * [payload: msgpack, see jrec.h].
 *
 * Durability: s3s__journal_append only buffers; s3s__journal_commit (or _wait)
 * writes everything buffered in one pwrite and fdatasyncs; it returns when the
 * records are durable, and only then may the caller acknowledge them. Callers
 * on many threads are group-committed: one of them writes and syncs for all.
 * After a failed write or sync the journal refuses every call with S3S_EIO
 * (the page cache may have dropped what failed: the only safe move is to
 * restart and replay).
 *
 * LSNs are logical: bytes appended since open, monotonic across compactions.
 *
 * Preallocation (opts.prealloc): the file is extended with written zeros
 * ahead of the records, so that a commit overwrites blocks that exist and its
 * fdatasync need not write the inode (the file size does not change). A tail
 * of zeros after the last good record is therefore the file's unused space,
 * not a torn record: the scan stops there and reports it (zero_tail), cuts
 * nothing, and appends overwrite it. Without prealloc a zero tail is read the
 * same way (so either kind of file opens with either setting).
 *
 * Thread-safety: every function may be called from any thread, except close,
 * which no other call may overlap; the mirror hook
 * runs on the committing thread with no lock held, never concurrently with
 * itself, in file order. */
#ifndef S3S_JOURNAL_JOURNAL_H
#define S3S_JOURNAL_JOURNAL_H

#include "common/journal/jrec.h"
#include "common/util/errbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S3S_JOURNAL_MAGIC "S3SJRNL1"
#define S3S_JOURNAL_FORMAT 1
#define S3S_JOURNAL_HEADER_SIZE 96
#define S3S_JOURNAL_FRAME_SIZE 8 /* length + crc before each payload */
#define S3S_JOURNAL_RECORD_DEFAULT (1u << 20) /* max payload, default */
#define S3S_JOURNAL_RECORD_LIMIT (64u << 20) /* max payload, hard */

typedef struct s3s__journal s3s__journal;

/* Called for each good record during replay, in file order; off is the byte
 * offset of its frame. Return 0 to go on, or an S3S_E* code to stop (returned). */
typedef int (*s3s__journal_replay_fn)(void *arg, const s3s__jrec *r, uint64_t off);

/* Mirror hook: the file of `generation` now durably holds `bytes` at `offset`.
 * Called with the whole file at open and after each compaction (offset 0, a
 * new generation), and with each committed batch. Must be quick (queue the
 * bytes for upload); the bytes are only valid during the call. */
typedef void (*s3s__journal_mirror_fn)(void *arg, uint64_t generation, uint64_t offset,
                                       const void *bytes, size_t len);

typedef struct s3s__journal_opts {
    const char *dir; /* state dir, created (one level) if missing */
    uint8_t job_hash[S3S_JREC_HASH_LEN];
    uint8_t snapshot_hash[S3S_JREC_HASH_LEN];
    bool repair; /* cut at a corrupt record even when good records follow it */
    size_t max_record; /* largest payload appended; 0: S3S_JOURNAL_RECORD_DEFAULT (replay
                          always accepts up to S3S_JOURNAL_RECORD_LIMIT) */
    size_t max_pending; /* bytes buffered before commit; 0: 64 MiB */
    s3s__journal_mirror_fn mirror;
    void *mirror_arg;
    bool prealloc; /* extend the file with zeros ahead of the records (see above) */
} s3s__journal_opts;

/* What a scan (replay) found. */
typedef struct s3s__journal_report {
    uint64_t records; /* good records replayed */
    uint64_t good_end; /* file offset after the last good record */
    uint64_t file_size; /* before any cut */
    uint64_t generation; /* from the header */
    bool created; /* there was no journal: a new one was made */
    bool stale_tmp; /* a leftover journal.tmp (interrupted compaction) was removed */
    bool cut; /* bytes after good_end were cut off (torn tail, or repair) */
    uint64_t zero_tail; /* bytes of zeros after good_end (preallocated space; not cut) */
    uint64_t bad_offset; /* when cut or corrupt: offset of the first bad record */
    uint64_t
        next_good; /* corrupt in the middle: a good record after it (UINT64_MAX: not checked) */
    char why[160]; /* what was wrong at bad_offset */
} s3s__journal_report;

/* s3s__journal_scan checks a whole journal image in memory and replays its
 * good records to fn (may be NULL). expect_* (may be NULL) must match the
 * header. A bad record after which no good record follows is a torn tail:
 * reported in rep (bad_offset, why), 0 returned. A bad record followed by a
 * good one is corruption: S3S_ECORRUPT (rep->next_good set), unless repair.
 * Returns 0, S3S_ECORRUPT (header or middle), S3S_EMISMATCH, S3S_EPARSE (a
 * record with a good checksum but an undecodable payload: another version or a
 * bug; never cut), or fn's code. Records replayed before an error have been
 * given to fn: the caller discards its state on failure. Never allocates. */
int s3s__journal_scan(const void *data, size_t len, const uint8_t *expect_job,
                      const uint8_t *expect_snapshot, size_t max_record, bool repair,
                      s3s__journal_replay_fn fn, void *arg, s3s__journal_report *rep,
                      s3s__errbuf *eb);

/* s3s__journal_open locks the state dir, removes a stale journal.tmp, creates
 * the journal if missing (header written, synced, renamed in place, dir synced),
 * replays it to fn, cuts a torn tail (ftruncate + fsync) and readies it for
 * appends. rep (may be NULL) tells what was found. Fails with S3S_EBUSY (another
 * process holds the lock; its pid in eb), S3S_EMISMATCH (another job or
 * snapshot; both hashes in eb), S3S_ECORRUPT, S3S_EPARSE, S3S_EIO, or fn's code.
 * On failure nothing is held. */
int s3s__journal_open(s3s__journal **out, const s3s__journal_opts *opts, s3s__journal_replay_fn fn,
                      void *arg, s3s__journal_report *rep, s3s__errbuf *eb);

/* s3s__journal_close releases the file and the lock. Records appended but not
 * committed are dropped (never acknowledged, so nobody relies on them). NULL-safe. */
void s3s__journal_close(s3s__journal *j);

/* s3s__journal_append encodes r into the pending batch; not durable until a
 * commit covers out_lsn (may be NULL). Fails with S3S_EINVAL, S3S_ETOOBIG (record
 * past max_record, or max_pending reached: commit first), S3S_EIO (failed before). */
int s3s__journal_append(s3s__journal *j, const s3s__jrec *r, uint64_t *out_lsn, s3s__errbuf *eb);

/* s3s__journal_wait returns once everything up to lsn is durable, writing and
 * syncing the pending batch itself when no other thread is doing so. */
int s3s__journal_wait(s3s__journal *j, uint64_t lsn, s3s__errbuf *eb);

/* s3s__journal_durable: the LSN up to which everything is durable now. */
uint64_t s3s__journal_durable(s3s__journal *j);

/* s3s__journal_commit makes everything appended so far durable. */
int s3s__journal_commit(s3s__journal *j, s3s__errbuf *eb);

/* s3s__journal_append_sync appends and waits until that record is durable;
 * concurrent callers share one write and one fdatasync. */
int s3s__journal_append_sync(s3s__journal *j, const s3s__jrec *r, s3s__errbuf *eb);

/* Statistics since open. */
typedef struct s3s__journal_stats {
    uint64_t records, commits, syncs, bytes, generation, file_size;
    uint64_t allocated; /* the file's size on disk: file_size (the records) + preallocated zeros */
} s3s__journal_stats;
void s3s__journal_stats_get(s3s__journal *j, s3s__journal_stats *out);

/* s3s__journal_sync_times copies the durations (microseconds) of the
 * fdatasyncs numbered since .. now (stats.syncs counts them; only the last
 * S3S__JOURNAL_SYNC_RING are kept, and at most cap) into out, sets *n, and
 * returns the current count: a benchmark reads the disk's sync latency in the
 * same run. */
#define S3S__JOURNAL_SYNC_RING 4096
uint64_t s3s__journal_sync_times(s3s__journal *j, uint64_t since, uint32_t *out, size_t cap,
                                 size_t *n);

/* Compaction: write the current state as a record set into journal.tmp, then
 * switch to it atomically. begin fails with S3S_EBUSY while records are
 * pending (commit first). The new file starts with a snapshot record
 * {generation, lsn}, then the records given to add. finish syncs the file,
 * renames it over the journal, syncs the dir and switches appends to it; it
 * fails with S3S_EBUSY (and keeps the old journal) if anything was appended
 * meanwhile, since the snapshot would miss it. finish and abort free c.
 * A crash at any point leaves either the old or the new journal whole. */
typedef struct s3s__jcompact s3s__jcompact;
int s3s__journal_compact_begin(s3s__journal *j, s3s__jcompact **out, s3s__errbuf *eb);
int s3s__journal_compact_add(s3s__jcompact *c, const s3s__jrec *r, s3s__errbuf *eb);
int s3s__journal_compact_finish(s3s__jcompact *c, s3s__errbuf *eb);
void s3s__journal_compact_abort(s3s__jcompact *c);

#endif
