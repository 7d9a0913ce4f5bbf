/* jrec.h: the coordinator's journal records and their msgpack encoding
 * (the payload inside each framed record; framing is in journal.h).
 *
 * A record is a msgpack array [type, time_ms, fields...] whose fields depend on
 * the type (docs/journal.md lists them). A decoder accepts extra trailing
 * elements and skips them, so a later minor revision may append fields.
 *
 * Invariants of a decoded record: type is one of s3s__jrec_type; channel <
 * S3S_JREC_CHANNELS_MAX; start <= end; tokens of granted/committed/done/expired
 * records are non-zero; opaque data points into the decoded input (valid while
 * the input is) and is at most the input's size. Fields a type does not use are 0. */
#ifndef S3S_JOURNAL_JREC_H
#define S3S_JOURNAL_JREC_H

#include "common/util/buf.h"
#include "common/util/errbuf.h"

#include <stdint.h>

#define S3S_JREC_HASH_LEN 32
#define S3S_JREC_CHANNELS_MAX 20

typedef enum s3s__jrec_type {
    S3S_JREC_JOB_STARTED = 1, /* job_hash, snapshot_hash, n_channels */
    S3S_JREC_EPOCH_STARTED = 2, /* channel, epoch, seed, n_shards */
    S3S_JREC_GRANTED = 3, /* channel, epoch, shard, start, end, token, worker, rank */
    S3S_JREC_COMMITTED = 4, /* channel, epoch, shard, token, worker, offset */
    S3S_JREC_SHARD_DONE = 5, /* channel, epoch, shard, token, worker, offset (= end) */
    S3S_JREC_EPOCH_DONE = 6, /* channel, epoch */
    S3S_JREC_SNAPSHOT = 7, /* generation, lsn: first record of a compacted file */
    S3S_JREC_LEASE_EXPIRED = 8, /* channel, epoch, shard, token, offset (committed so far) */
    S3S_JREC_OPAQUE = 100 /* subtype, data: for future use */
} s3s__jrec_type;

typedef struct s3s__jrec {
    uint32_t type;
    uint64_t time_ms; /* wall clock when written, informational */
    uint32_t channel;
    uint64_t epoch;
    uint64_t shard;
    uint64_t start, end; /* granted range */
    uint64_t offset; /* committed offset reached */
    uint64_t token; /* fencing token */
    uint64_t worker; /* worker id */
    uint32_t rank;
    uint64_t seed; /* epoch_started */
    uint64_t n_shards; /* epoch_started */
    uint32_t n_channels; /* job_started */
    uint8_t job_hash[S3S_JREC_HASH_LEN]; /* job_started */
    uint8_t snapshot_hash[S3S_JREC_HASH_LEN];
    uint64_t generation, lsn; /* snapshot */
    uint32_t subtype; /* opaque */
    const uint8_t *data;
    uint32_t data_len;
} s3s__jrec;

/* s3s__jrec_encode appends the msgpack payload of r to out. Fails with
 * S3S_EINVAL for an unknown type or a range rule broken, S3S_ETOOBIG past
 * out's cap; out is then unchanged. */
int s3s__jrec_encode(s3s__buf *out, const s3s__jrec *r, s3s__errbuf *eb);

/* s3s__jrec_decode parses one payload. Returns 0, or S3S_EPARSE with what and
 * where in eb. Never allocates; r->data points into p. */
int s3s__jrec_decode(s3s__jrec *r, const void *p, size_t len, s3s__errbuf *eb);

/* s3s__jrec_type_name returns "granted", ... or "unknown". */
const char *s3s__jrec_type_name(uint32_t type);

#endif
