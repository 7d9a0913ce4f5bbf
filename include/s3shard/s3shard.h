/* s3shard/s3shard.h: the umbrella header. Include this one. */
#ifndef S3SHARD_H
#define S3SHARD_H
#include "s3shard/export.h"
#include "s3shard/version.h"
#include "s3shard/error.h"
#if __has_include("s3shard/s3.h")
#include "s3shard/s3.h"
#endif
#if __has_include("s3shard/dataset.h")
#include "s3shard/dataset.h"
#endif
#if __has_include("s3shard/coordinator.h")
#include "s3shard/coordinator.h"
#endif
#if __has_include("s3shard/worker.h")
#include "s3shard/worker.h"
#endif
#endif
