/* error.c: messages for the s3s_error codes. */
#include "s3shard/error.h"

#include <stddef.h>

static const char *const messages[S3S_E_MAX_] = {
    [S3S_OK] = "success",
    [S3S_ENOMEM] = "out of memory",
    [S3S_EINVAL] = "invalid argument",
    [S3S_EIO] = "local I/O error",
    [S3S_ENOTFOUND] = "not found",
    [S3S_EACCESS] = "access denied",
    [S3S_EHTTP] = "HTTP error",
    [S3S_ENETWORK] = "network error",
    [S3S_ESHORT] = "body shorter than its Content-Length",
    [S3S_EPARSE] = "malformed input",
    [S3S_ETOOBIG] = "input too large",
    [S3S_ECREDS] = "no usable credentials",
    [S3S_ECONFIG] = "invalid configuration",
    [S3S_EPROTO] = "protocol error",
    [S3S_EAUTH] = "message authentication failed",
    [S3S_ESTALE] = "stale lease",
    [S3S_ECORRUPT] = "checksum mismatch",
    [S3S_EMISMATCH] = "state belongs to another job or snapshot",
    [S3S_ETIMEDOUT] = "timed out",
    [S3S_ECLOSED] = "closed",
    [S3S_EBUSY] = "busy",
    [S3S_EUNSAFEKEY] = "object key would leave its folder",
    [S3S_ENOTSUP] = "not supported",
    [S3S_EEOF] = "end of stream",
    [S3S_ERANGE] = "range not satisfiable",
    [S3S_ESLOWDOWN] = "server asked to slow down",
    [S3S_EINTERRUPTED] = "interrupted",
    [S3S_ECONFLICT] = "object changed (precondition failed)",
    [S3S_EEXIST] = "already exists",
    [S3S_ENOTOPO] = "no rank and world size found",
};

const char *s3s_strerror(int err)
{
    if (err < 0 || err >= S3S_E_MAX_ || messages[err] == NULL)
        return "unknown error";
    return messages[err];
}
