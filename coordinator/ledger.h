/* ledger.h: the coverage ledger of one epoch: which byte ranges of which
 * shards were committed, under which lease, or dropped.
 *
 * Invariants: entries are in commit order; an entry is never empty
 * (start < end); progress under one lease extends that lease's entry in place,
 * so a shard read by one lease is one entry. Resolution of `who` (worker slot,
 * or S3S__LEDGER_DROPPED | lane) is the scheduler's business. */
#ifndef S3S_COORDINATOR_LEDGER_H
#define S3S_COORDINATOR_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#define S3S__LEDGER_DROPPED 0x80000000u

typedef struct s3s__ledger_entry {
    uint64_t start, end;
    uint64_t token; /* 0 for dropped ranges */
    uint32_t pos; /* shard position in the epoch order */
    uint32_t who; /* worker slot, or S3S__LEDGER_DROPPED | lane */
} s3s__ledger_entry;

typedef struct s3s__ledger {
    s3s__ledger_entry *v;
    size_t n, alloc;
} s3s__ledger;

void s3s__ledger_init(s3s__ledger *l);
void s3s__ledger_fini(s3s__ledger *l);
/* s3s__ledger_reset empties the ledger and keeps its memory. */
void s3s__ledger_reset(s3s__ledger *l);
/* s3s__ledger_add appends an entry and stores its index in *out_idx (may be
 * NULL). Returns 0 or S3S_ENOMEM (ledger unchanged). */
int s3s__ledger_add(s3s__ledger *l, uint32_t pos, uint32_t who, uint64_t token, uint64_t start,
                    uint64_t end, size_t *out_idx);

/* s3s__ledger_reserve makes room for n entries without changing the content,
 * so an epoch read by whole-shard leases never reallocates. 0 or S3S_ENOMEM. */
int s3s__ledger_reserve(s3s__ledger *l, size_t n);

/* A ledger entry tagged with its lane, for verification. */
typedef struct s3s__ledger_key {
    uint32_t lane, pos;
    uint64_t start, end;
} s3s__ledger_key;

/* s3s__ledger_sort_keys sorts keys by (lane, pos, start). */
void s3s__ledger_sort_keys(s3s__ledger_key *k, size_t n);

#endif
