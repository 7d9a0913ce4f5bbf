/* ini.h: the AWS shared config/credentials file format (INI-like).
 *
 * "[section]" lines, "key = value" lines, '#' and ';' comment lines. Keys and
 * section names are compared exactly; values are trimmed. Files over
 * S3S_INI_MAX bytes are refused (S3S_ETOOBIG), never read partially. */
#ifndef S3S_S3_INI_H
#define S3S_S3_INI_H

#include "common/util/errbuf.h"

#define S3S_INI_MAX (1u << 20)

/* s3s__ini_get reads path and, in section `section`, finds `key`. On success
 * *out is a heap copy of the value (caller frees), or NULL when the file,
 * section or key is absent (returns 0 then). Returns S3S_EIO when the file
 * exists but cannot be read, S3S_ETOOBIG, S3S_ENOMEM. */
int s3s__ini_get(const char *path, const char *section, const char *key, char **out,
                 s3s__errbuf *eb);
/* s3s__ini_has_section says whether the file holds [section] (0 if unreadable). */
int s3s__ini_has_section(const char *path, const char *section);

#endif
