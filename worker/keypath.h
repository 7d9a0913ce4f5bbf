/* keypath.h: object keys turned into paths under a channel folder, safely.
 *
 * File and FastFile modes lay an object out at <root>/<channel>/<key>. A key
 * is outside input: it must never name a file outside that folder, nor a
 * device-looking or unprintable name. A key is accepted only when it is
 * non-empty, at most S3S__KEYPATH_MAX bytes, relative (no leading '/'), made
 * of non-empty segments of at most 255 bytes separated by single '/', none of
 * them "." or "..", with no NUL and no control character (bytes 0x01-0x1f and
 * 0x7f). Refusals are S3S_EUNSAFEKEY with a message that names the key
 * (control bytes shown as \xNN).
 *
 * S3 "folder marker" objects (zero-byte keys ending in '/') are refused like
 * any trailing '/': callers that meet them in a listing should skip them
 * (s3s__keypath_is_folder_marker) before checking. */
#ifndef S3S_WORKER_KEYPATH_H
#define S3S_WORKER_KEYPATH_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/errbuf.h"

#define S3S__KEYPATH_MAX 1024 /* S3's own limit on a key, in bytes */
#define S3S__KEYPATH_SEG_MAX 255 /* NAME_MAX on Linux file systems */

/* s3s__keypath_check returns 0 when the key (len bytes; it may contain NUL,
 * which is refused) is safe as a relative path, else S3S_EUNSAFEKEY with the
 * reason and the key in eb. */
int s3s__keypath_check(const char *key, size_t len, s3s__errbuf *eb);

/* s3s__keypath_join checks the key and returns "<dir>/<key>" in a heap string
 * (*out; caller frees). Failures: S3S_EUNSAFEKEY, S3S_ENOMEM; *out is NULL then. */
int s3s__keypath_join(char **out, const char *dir, const char *key, size_t len, s3s__errbuf *eb);

/* s3s__keypath_is_folder_marker is 1 for a zero-byte object whose key ends in
 * '/' (what the S3 console creates for "folders"). */
int s3s__keypath_is_folder_marker(const char *key, size_t len, uint64_t size);

/* s3s__keypath_check_set checks every key of a set laid out in one folder,
 * then that no key is also a folder of another (both "a" and "a/b": "a"
 * cannot be a file and a folder at once). Duplicates are allowed (same file).
 * keys[i] is NUL-terminated. Returns 0, S3S_EUNSAFEKEY naming the key (or
 * both keys of a collision), or S3S_ENOMEM. */
int s3s__keypath_check_set(const char *const *keys, size_t n, s3s__errbuf *eb);

#endif
