/* s3shard/error.h: the one error enum of s3shard and its message function.
 *
 * Every s3shard function that can fail returns int: 0 on success or one of the
 * positive S3S_E* codes below. Codes are append-only: a value never changes
 * meaning. Detailed text (the S3 error code and message, the file and line of a
 * bad manifest) is kept in the handle's error buffer; see each component. */
#ifndef S3SHARD_ERROR_H
#define S3SHARD_ERROR_H

#include "s3shard/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum s3s_error {
    S3S_OK = 0,
    S3S_ENOMEM = 1, /* out of memory */
    S3S_EINVAL = 2, /* invalid argument */
    S3S_EIO = 3, /* local I/O error (errno in the detail) */
    S3S_ENOTFOUND = 4, /* object, bucket, file or entry not found (404) */
    S3S_EACCESS = 5, /* access denied or bad signature (403) */
    S3S_EHTTP = 6, /* HTTP error from the server not covered by another code */
    S3S_ENETWORK = 7, /* connection failed, reset or timed out after retries */
    S3S_ESHORT = 8, /* body shorter than its Content-Length */
    S3S_EPARSE = 9, /* malformed input: XML, JSON, manifest, message, journal */
    S3S_ETOOBIG = 10, /* input past a hard size cap */
    S3S_ECREDS = 11, /* no usable credentials */
    S3S_ECONFIG = 12, /* invalid configuration or job spec */
    S3S_EPROTO = 13, /* protocol violation or version mismatch */
    S3S_EAUTH = 14, /* message authentication (HMAC) failed */
    S3S_ESTALE = 15, /* stale lease / fencing token refused */
    S3S_ECORRUPT = 16, /* checksum mismatch in a stored file */
    S3S_EMISMATCH = 17, /* state written for another job or snapshot */
    S3S_ETIMEDOUT = 18, /* an operation ran past its deadline */
    S3S_ECLOSED = 19, /* handle closed or shutting down */
    S3S_EBUSY = 20, /* resource busy (locked by another process) */
    S3S_EUNSAFEKEY = 21, /* an object key that would leave its folder */
    S3S_ENOTSUP = 22, /* not supported in this build or mode */
    S3S_EEOF = 23, /* end of stream / no more items */
    S3S_ERANGE = 24, /* requested range not satisfiable (416) */
    S3S_ESLOWDOWN = 25, /* server asked to slow down and retries ran out */
    S3S_EINTERRUPTED = 26, /* interrupted by a signal or drain */
    S3S_ECONFLICT = 27, /* precondition failed / ETag changed under us */
    S3S_EEXIST = 28, /* already exists */
    S3S_ENOTOPO = 29, /* no rank/world-size found in flags or environment */
    S3S_E_MAX_ = 30 /* one past the last code; not an error */
};

/* s3s_strerror returns a static, human-readable message for an s3s_error code,
 * or "unknown error" for a value outside the enum. Thread-safe. */
S3S_API const char *s3s_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
