/* listsplit.h: choosing split points for the parallel listing.
 *
 * Given the keys of one page (sorted, all under prefix), propose up to `want`
 * keys p1 < p2 < ... such that last < p1 and pk < hi (hi NULL: no bound).
 * They are siblings of the last key at the positions where the page's keys
 * vary, deepest position first, over the bytes seen in the page: for last
 * "shard-000999" and digits/letters seen, "shard-00a".., "shard-001",
 * "shard-002", ..., then "shard-01", ... This follows how keys usually grow
 * (counters, dates, hashes) without knowing how many there are; a range that
 * turns out big is split again when its own pages arrive. */
#ifndef S3S_S3_LISTSPLIT_H
#define S3S_S3_LISTSPLIT_H

#include <stddef.h>

/* s3s__listsplit_points returns heap strings in *out (array and strings owned
 * by the caller; *n may be 0). Returns 0 or S3S_ENOMEM. */
int s3s__listsplit_points(char ***out, size_t *n, const char *const *keys, size_t nkeys,
                          const char *prefix, const char *hi, unsigned want);

#endif
