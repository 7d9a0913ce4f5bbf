/* version.c: s3s_version(). */
#include "s3shard/version.h"

#define S3S_STR_(x) #x
#define S3S_STR(x) S3S_STR_(x)

const char *s3s_version(void)
{
    return S3S_STR(S3S_VERSION_MAJOR) "." S3S_STR(S3S_VERSION_MINOR) "." S3S_STR(S3S_VERSION_PATCH);
}
