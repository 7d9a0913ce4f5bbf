/* listpar.h: the adaptive parallel listing (listpar.c) and the page-request
 * helpers it shares with list.c.
 *
 * Invariants of the listing: the key space under the caller's prefix is cut
 * into disjoint, ordered ranges; every key is delivered by exactly one range
 * and the callback sees them in key order, from the calling thread. */
#ifndef S3S_S3_LISTPAR_H
#define S3S_S3_LISTPAR_H

#include "common/s3/http.h"
#include "common/util/buf.h"
#include "s3shard/s3.h"

/* s3s__list_query builds the query of one ListObjectsV2 page (max_keys 0: the
 * server's 1000; NULL or "" parameters are left out). */
int s3s__list_query(s3s__buf *q, const char *prefix, const char *delimiter, const char *start_after,
                    const char *token, unsigned max_keys);
/* s3s__list_xfer prepares x for a list request of bucket with query q. */
void s3s__list_xfer(s3s__xfer *x, const char *bucket, s3s__buf *q);

/* How s3s__list_parallel_ex chooses: ADAPTIVE measures (docs/s3-client.md,
 * "Parallel listing"); SEQ lists page after page; PAR splits from the start;
 * PROBE_SEQ and PROBE_PAR probe like ADAPTIVE but the probe's verdict is
 * forced (tests: both ways out of a probe, whatever the timing). */
enum {
    S3S__LIST_ADAPTIVE = 0,
    S3S__LIST_SEQ = 1,
    S3S__LIST_PAR = 2,
    S3S__LIST_PROBE_SEQ = 3,
    S3S__LIST_PROBE_PAR = 4
};

/* s3s__list_parallel_ex is s3s_s3_list_parallel with the strategy forced
 * (tests and benches) and page_keys keys per page (0: the server's 1000);
 * *chosen (may be NULL) gets the strategy the listing ended up using (SEQ or
 * PAR). */
int s3s__list_parallel_ex(s3s_s3 *s3, const char *bucket, const char *prefix, unsigned parallelism,
                          unsigned page_keys, int strategy, int *chosen, s3s_s3_list_cb cb,
                          void *ud);

#endif
