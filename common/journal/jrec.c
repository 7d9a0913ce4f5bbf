/* jrec.c: journal record payloads (see jrec.h, docs/journal.md). Read with the
 * bounded reader of common/proto/mp.h: a record that passed its checksum was
 * still written by someone, and a bug or another version must not crash us. */
#include "common/journal/jrec.h"

#include "common/proto/mp.h"
#include "s3shard/error.h"

#include <string.h>

const char *s3s__jrec_type_name(uint32_t type)
{
    switch (type) {
    case S3S_JREC_JOB_STARTED:
        return "job_started";
    case S3S_JREC_EPOCH_STARTED:
        return "epoch_started";
    case S3S_JREC_GRANTED:
        return "granted";
    case S3S_JREC_COMMITTED:
        return "committed";
    case S3S_JREC_SHARD_DONE:
        return "shard_done";
    case S3S_JREC_EPOCH_DONE:
        return "epoch_done";
    case S3S_JREC_SNAPSHOT:
        return "snapshot";
    case S3S_JREC_LEASE_EXPIRED:
        return "lease_expired";
    case S3S_JREC_OPAQUE:
        return "opaque";
    }
    return "unknown";
}

/* Number of elements after [type, time_ms], per type. */
static int arity(uint32_t type)
{
    switch (type) {
    case S3S_JREC_JOB_STARTED:
        return 3;
    case S3S_JREC_EPOCH_STARTED:
        return 4;
    case S3S_JREC_GRANTED:
        return 8;
    case S3S_JREC_COMMITTED:
    case S3S_JREC_SHARD_DONE:
        return 6;
    case S3S_JREC_EPOCH_DONE:
        return 2;
    case S3S_JREC_SNAPSHOT:
        return 2;
    case S3S_JREC_LEASE_EXPIRED:
        return 5;
    case S3S_JREC_OPAQUE:
        return 2;
    }
    return -1;
}

static const char *check(const s3s__jrec *r)
{
    if (r->channel >= S3S_JREC_CHANNELS_MAX)
        return "channel index out of range";
    switch (r->type) {
    case S3S_JREC_JOB_STARTED:
        if (r->n_channels < 1 || r->n_channels > S3S_JREC_CHANNELS_MAX)
            return "n_channels out of range";
        break;
    case S3S_JREC_GRANTED:
        if (r->start > r->end)
            return "start after end";
        /* fallthrough */
    case S3S_JREC_COMMITTED:
    case S3S_JREC_SHARD_DONE:
    case S3S_JREC_LEASE_EXPIRED:
        if (r->token == 0)
            return "token 0";
        break;
    }
    return NULL;
}

int s3s__jrec_encode(s3s__buf *out, const s3s__jrec *r, s3s__errbuf *eb)
{
    int n = arity(r->type);
    if (n < 0)
        return s3s__err_set(eb, S3S_EINVAL, "journal record: unknown type %u", r->type);
    const char *bad = check(r);
    if (bad != NULL)
        return s3s__err_set(eb, S3S_EINVAL, "journal record %s: %s", s3s__jrec_type_name(r->type),
                            bad);
    size_t start = out->len;
    s3s__mpw w;
    s3s__mpw_init(&w, out);
    s3s__mpw_array(&w, (uint32_t)n + 2);
    s3s__mpw_uint(&w, r->type);
    s3s__mpw_uint(&w, r->time_ms);
    switch (r->type) {
    case S3S_JREC_JOB_STARTED:
        s3s__mpw_bin(&w, r->job_hash, S3S_JREC_HASH_LEN);
        s3s__mpw_bin(&w, r->snapshot_hash, S3S_JREC_HASH_LEN);
        s3s__mpw_uint(&w, r->n_channels);
        break;
    case S3S_JREC_EPOCH_STARTED:
        s3s__mpw_uint(&w, r->channel);
        s3s__mpw_uint(&w, r->epoch);
        s3s__mpw_uint(&w, r->seed);
        s3s__mpw_uint(&w, r->n_shards);
        break;
    case S3S_JREC_GRANTED:
        s3s__mpw_uint(&w, r->channel);
        s3s__mpw_uint(&w, r->epoch);
        s3s__mpw_uint(&w, r->shard);
        s3s__mpw_uint(&w, r->start);
        s3s__mpw_uint(&w, r->end);
        s3s__mpw_uint(&w, r->token);
        s3s__mpw_uint(&w, r->worker);
        s3s__mpw_uint(&w, r->rank);
        break;
    case S3S_JREC_COMMITTED:
    case S3S_JREC_SHARD_DONE:
        s3s__mpw_uint(&w, r->channel);
        s3s__mpw_uint(&w, r->epoch);
        s3s__mpw_uint(&w, r->shard);
        s3s__mpw_uint(&w, r->token);
        s3s__mpw_uint(&w, r->worker);
        s3s__mpw_uint(&w, r->offset);
        break;
    case S3S_JREC_EPOCH_DONE:
        s3s__mpw_uint(&w, r->channel);
        s3s__mpw_uint(&w, r->epoch);
        break;
    case S3S_JREC_SNAPSHOT:
        s3s__mpw_uint(&w, r->generation);
        s3s__mpw_uint(&w, r->lsn);
        break;
    case S3S_JREC_LEASE_EXPIRED:
        s3s__mpw_uint(&w, r->channel);
        s3s__mpw_uint(&w, r->epoch);
        s3s__mpw_uint(&w, r->shard);
        s3s__mpw_uint(&w, r->token);
        s3s__mpw_uint(&w, r->offset);
        break;
    case S3S_JREC_OPAQUE:
        s3s__mpw_uint(&w, r->subtype);
        s3s__mpw_bin(&w, r->data, r->data_len);
        break;
    }
    if (w.err != 0) {
        out->len = start;
        if (out->data != NULL)
            out->data[start] = '\0';
        return s3s__err_set(eb, w.err, "journal record %s does not fit (%s)",
                            s3s__jrec_type_name(r->type), s3s_strerror(w.err));
    }
    return 0;
}

#define U64(field, name)                                                                           \
    if (rc == 0)                                                                                   \
    rc = s3s__mpr_uint(&rd, &(field), 0, UINT64_MAX, name)
#define U32(field, max, name)                                                                      \
    if (rc == 0)                                                                                   \
    rc = s3s__mpr_u32(&rd, &(field), 0, (max), name)

int s3s__jrec_decode(s3s__jrec *r, const void *p, size_t len, s3s__errbuf *eb)
{
    memset(r, 0, sizeof *r);
    s3s__mpr rd;
    s3s__mpr_init(&rd, p, len, S3S_EPARSE, "journal record", eb);
    uint32_t n;
    int rc = s3s__mpr_array(&rd, &n, 64, 1, "record");
    if (rc != 0)
        return rc;
    if (n < 2)
        return s3s__mpr_fail(&rd, "record", "%u elements, at least 2 expected", n);
    U32(r->type, 255, "type");
    U64(r->time_ms, "time_ms");
    if (rc != 0)
        return rc;
    int want = arity(r->type);
    if (want < 0)
        return s3s__mpr_fail(&rd, "type", "unknown record type %u", r->type);
    if (n < (uint32_t)want + 2)
        return s3s__mpr_fail(&rd, s3s__jrec_type_name(r->type), "%u elements, %d expected", n,
                             want + 2);
    const uint32_t chmax = S3S_JREC_CHANNELS_MAX - 1;
    switch (r->type) {
    case S3S_JREC_JOB_STARTED:
        rc = s3s__mpr_bin_exact(&rd, r->job_hash, S3S_JREC_HASH_LEN, "job_hash");
        if (rc == 0)
            rc = s3s__mpr_bin_exact(&rd, r->snapshot_hash, S3S_JREC_HASH_LEN, "snapshot_hash");
        U32(r->n_channels, S3S_JREC_CHANNELS_MAX, "n_channels");
        break;
    case S3S_JREC_EPOCH_STARTED:
        U32(r->channel, chmax, "channel");
        U64(r->epoch, "epoch");
        U64(r->seed, "seed");
        U64(r->n_shards, "n_shards");
        break;
    case S3S_JREC_GRANTED:
        U32(r->channel, chmax, "channel");
        U64(r->epoch, "epoch");
        U64(r->shard, "shard");
        U64(r->start, "start");
        U64(r->end, "end");
        U64(r->token, "token");
        U64(r->worker, "worker");
        U32(r->rank, UINT32_MAX, "rank");
        break;
    case S3S_JREC_COMMITTED:
    case S3S_JREC_SHARD_DONE:
        U32(r->channel, chmax, "channel");
        U64(r->epoch, "epoch");
        U64(r->shard, "shard");
        U64(r->token, "token");
        U64(r->worker, "worker");
        U64(r->offset, "offset");
        break;
    case S3S_JREC_EPOCH_DONE:
        U32(r->channel, chmax, "channel");
        U64(r->epoch, "epoch");
        break;
    case S3S_JREC_SNAPSHOT:
        U64(r->generation, "generation");
        U64(r->lsn, "lsn");
        break;
    case S3S_JREC_LEASE_EXPIRED:
        U32(r->channel, chmax, "channel");
        U64(r->epoch, "epoch");
        U64(r->shard, "shard");
        U64(r->token, "token");
        U64(r->offset, "offset");
        break;
    case S3S_JREC_OPAQUE:
        U32(r->subtype, UINT32_MAX, "subtype");
        if (rc == 0)
            rc = s3s__mpr_bin(&rd, &r->data, &r->data_len, UINT32_MAX, "data");
        break;
    }
    for (uint32_t k = (uint32_t)want + 2; rc == 0 && k < n; k++)
        rc = s3s__mpr_skip(&rd, 8, "extra field");
    if (rc != 0)
        return rc;
    if (s3s__mpr_left(&rd) != 0)
        return s3s__mpr_fail(&rd, "record", "%zu trailing bytes", s3s__mpr_left(&rd));
    const char *bad = check(r);
    if (bad != NULL)
        return s3s__mpr_fail(&rd, s3s__jrec_type_name(r->type), "%s", bad);
    return 0;
}
