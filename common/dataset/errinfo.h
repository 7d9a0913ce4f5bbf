/* errinfo.h: filling the public s3s_errinfo, and small helpers the dataset
 * code shares (s3:// URI splitting, offset to line/column). */
#ifndef S3S_DATASET_ERRINFO_H
#define S3S_DATASET_ERRINFO_H

#include "s3shard/dataset.h"

#include <stdarg.h>
#include <stddef.h>

/* s3s__ei_set formats a message into e (NULL-safe) and returns code. */
int s3s__ei_set(s3s_errinfo *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* s3s__ds_split_uri splits "s3://bucket/key" into heap copies (caller frees
 * both). The key may be empty. Returns S3S_EINVAL (with a message in e naming
 * what) for anything else, or S3S_ENOMEM. */
int s3s__ds_split_uri(const char *uri, char **bucket, char **key, s3s_errinfo *e);

/* s3s__ds_linecol converts a byte offset of text into a 1-based line and column
 * (columns count bytes). */
void s3s__ds_linecol(const char *text, size_t len, size_t off, size_t *line, size_t *col);

#endif
