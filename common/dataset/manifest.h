/* manifest.h: SageMaker's ManifestFile and AugmentedManifestFile parsers.
 *
 * Both work on a buffer in memory (the caller reads the file, capped), report
 * every problem as "NAME:LINE:COLUMN: what was expected", and never skip a
 * malformed element or line unless skip_bad is set (then they count it in
 * *skipped). A syntax error inside a ManifestFile's array cannot be skipped:
 * there is no safe place to resume. */
#ifndef S3S_DATASET_MANIFEST_H
#define S3S_DATASET_MANIFEST_H

#include "s3shard/dataset.h"

#include <stddef.h>
#include <stdint.h>

/* Called once per key (the full key: the prefix's key part + the element),
 * with the element's line. Return 0 to go on, or an S3S_E* code to stop. */
typedef int (*s3s__manifest_cb)(void *ud, const char *key, size_t key_len, size_t line);

/* s3s__manifest_parse parses a ManifestFile: a JSON array whose first element is
 * {"prefix": "s3://bucket/p/"} and whose other elements are strings, keys
 * relative to that prefix. *bucket and *prefix (heap; caller frees, also on
 * failure when set) receive the prefix's parts. max_elem caps one element. */
int s3s__manifest_parse(const char *buf, size_t len, const char *name, uint64_t max_elem,
                        int skip_bad, s3s__manifest_cb cb, void *ud, char **bucket, char **prefix,
                        size_t *skipped, s3s_errinfo *e);

/* Called once per record with its selected attributes as compact JSON. */
typedef int (*s3s__record_cb)(void *ud, const char *text, size_t len, size_t line);

/* s3s__augmented_parse parses an AugmentedManifestFile (JSON Lines). Each
 * non-blank line must be a JSON object holding every attribute of attrs; the
 * record carries those attributes, in attrs order. An attribute whose name ends
 * in "-ref" must be an "s3://bucket/key" string. A line longer than max_line
 * bytes is an error (S3S_ETOOBIG unless skipped). */
int s3s__augmented_parse(const char *buf, size_t len, const char *name, const char *const *attrs,
                         size_t nattrs, uint64_t max_line, int skip_bad, s3s__record_cb cb,
                         void *ud, size_t *skipped, s3s_errinfo *e);

#endif
