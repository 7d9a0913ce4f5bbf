/* source.h: internal pieces of snapshot creation shared by source.c (local
 * directories, manifests from disk) and source_s3.c (S3 listings and reads). */
#ifndef S3S_DATASET_SOURCE_H
#define S3S_DATASET_SOURCE_H

#include "common/dataset/snapshot.h"
#include "s3shard/dataset.h"

#include <stddef.h>
#include <stdint.h>

/* s3s__read_local / s3s__read_s3 read a whole file (at most cap bytes) into
 * *out (heap, NUL-terminated; caller frees). */
int s3s__read_local(const char *path, uint64_t cap, char **out, size_t *out_len, s3s_errinfo *e);
int s3s__read_s3(const s3s_source_opts *o, const char *uri, uint64_t cap, char **out,
                 size_t *out_len, s3s_errinfo *e);

/* s3s__snapshot_from_prefix lists o->uri (s3://bucket/prefix) with the parallel
 * listing into a sorted snapshot. */
int s3s__snapshot_from_prefix(s3s_snapshot **out, const s3s_source_opts *o, s3s_errinfo *e);

/* s3s__snapshot_from_manifest parses a (augmented) manifest held in buf. */
int s3s__snapshot_from_manifest(s3s_snapshot **out, const s3s_source_opts *o, const char *buf,
                                size_t len, const char *name, s3s_errinfo *e);

/* s3s__manifest_fill_meta copies the keys of in (rec.pad1 = manifest line) into
 * out with their sizes and ETags, looked up as o->manifest_meta says. A key
 * that does not exist fails with S3S_ENOTFOUND naming the manifest line. */
int s3s__manifest_fill_meta(const s3s__snap_builder *in, s3s__snap_builder *out,
                            const s3s_source_opts *o, const char *bucket, const char *prefix,
                            const char *name, s3s_errinfo *e);

#endif
