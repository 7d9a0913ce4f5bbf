/* s3shard/version.h: version macros and s3s_version(). */
#ifndef S3SHARD_VERSION_H
#define S3SHARD_VERSION_H

#include "s3shard/export.h"

#define S3S_VERSION_MAJOR 0
#define S3S_VERSION_MINOR 1
#define S3S_VERSION_PATCH 0

#ifdef __cplusplus
extern "C" {
#endif

/* s3s_version returns the library's version as "MAJOR.MINOR.PATCH". Never fails;
 * the string is static. Thread-safe. */
S3S_API const char *s3s_version(void);

#ifdef __cplusplus
}
#endif
#endif
