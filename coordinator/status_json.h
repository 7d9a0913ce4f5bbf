/* status_json.h: JSON rendering of a decoded status reply (a tree of
 * s3s__pval). Strings are escaped per RFC 8259; bin values (snapshot files)
 * become {"bin_bytes": N}; doubles print with %.6g (non-finite: null). */
#ifndef S3S_COORDINATOR_STATUS_JSON_H
#define S3S_COORDINATOR_STATUS_JSON_H

#include "common/proto/msg.h"
#include "common/util/buf.h"

/* s3s__pval_json appends v as JSON to out. Returns 0 or S3S_ETOOBIG. */
int s3s__pval_json(const s3s__pval *v, s3s__buf *out);
/* s3s__json_str appends s (n bytes) as a quoted JSON string. */
int s3s__json_str(s3s__buf *out, const char *s, size_t n);

#endif
