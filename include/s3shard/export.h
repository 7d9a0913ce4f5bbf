/* s3shard/export.h: the S3S_API export macro (hidden visibility by default). */
#ifndef S3SHARD_EXPORT_H
#define S3SHARD_EXPORT_H
#if defined(S3S_BUILDING) && defined(__GNUC__)
#define S3S_API __attribute__((visibility("default")))
#else
#define S3S_API
#endif
#endif
