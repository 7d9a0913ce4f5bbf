/* s3shard/s3.h: the S3 client.
 *
 * A handle talks to one endpoint/region with one set of credentials. It drives
 * up to max_connections transfers at once over reused connections (one libcurl
 * multi handle per s3s_s3). A handle is NOT thread-safe: create one per thread
 * (creation is cheap; signing keys and credentials are resolved once per handle).
 *
 * Every call returns 0 or an S3S_E* code; on failure s3s_s3_errmsg() says what
 * failed and where: method, bucket, key, HTTP status, S3 error code and message. */
#ifndef S3SHARD_S3_H
#define S3SHARD_S3_H

#include <stddef.h>
#include <stdint.h>

#include "s3shard/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct s3s_s3 s3s_s3;

/* s3s_s3_opts: options for s3s_s3_create. s3s_s3_opts_init sets the defaults
 * documented on each field; NULL options mean all defaults. Strings are copied. */
typedef struct s3s_s3_opts {
    const char *endpoint; /* NULL: $AWS_ENDPOINT_URL_S3, then $AWS_ENDPOINT_URL,
                             else https://s3.<region>.amazonaws.com */
    const char *region; /* NULL: $AWS_REGION, $AWS_DEFAULT_REGION, the profile's
                           region, else "us-east-1" */
    const char *profile; /* NULL: $AWS_PROFILE, else "default" */
    const char *access_key_id; /* explicit credentials win over the environment and */
    const char *secret_access_key; /* the shared credentials file; NULL: look them up */
    const char *session_token; /* NULL: none unless found with the credentials */
    const char *ca_bundle; /* NULL: $AWS_CA_BUNDLE (https endpoints only) */
    int path_style; /* -1 (default): path-style for a custom endpoint,
                       virtual-hosted for AWS; 0: virtual-hosted; 1: path */
    unsigned max_attempts; /* attempts per request, first included; default 10 */
    unsigned retry_base_ms; /* backoff base; default 100 (full jitter) */
    unsigned retry_cap_ms; /* backoff cap; default 20000 */
    unsigned connect_timeout_ms; /* default 5000 */
    unsigned stall_timeout_ms; /* no byte for this long: abort and retry; default 30000 */
    unsigned max_connections; /* concurrent transfers per handle; default 32 */
    uint64_t multipart_threshold; /* PUTs at or above this size go multipart; default 64 MiB */
    uint64_t part_size; /* multipart part size (>= 5 MiB); default 16 MiB */
    uint64_t range_chunk; /* parallel ranged GET piece size; default 8 MiB */
    int verbose; /* 1: log each request (never credentials); default 0 */
} s3s_s3_opts;

/* s3s_s3_opts_init fills opts with the defaults above. */
S3S_API void s3s_s3_opts_init(s3s_s3_opts *opts);

/* s3s_s3_create resolves credentials and endpoint and makes a client in *out.
 * Returns S3S_ECREDS when no credentials are found, S3S_ECONFIG for a bad
 * endpoint or region, S3S_ENOMEM. *out is untouched on failure; a message
 * describing the failure is available from s3s_s3_last_create_error(). */
S3S_API int s3s_s3_create(s3s_s3 **out, const s3s_s3_opts *opts);

/* s3s_s3_last_create_error returns the message of the calling thread's last
 * failed s3s_s3_create (thread-local), or "" if none. */
S3S_API const char *s3s_s3_last_create_error(void);

/* s3s_s3_destroy closes connections and frees the client. NULL-safe. */
S3S_API void s3s_s3_destroy(s3s_s3 *s3);

/* s3s_s3_errmsg returns the detail of the last failed call on this handle. The
 * string lives until the next call on the handle. */
S3S_API const char *s3s_s3_errmsg(const s3s_s3 *s3);

/* s3s_s3_objinfo: what a GET or HEAD learned about an object. */
typedef struct s3s_s3_objinfo {
    uint64_t size; /* whole object size */
    char etag[72]; /* ETag without quotes, "" if the server sent none */
    int64_t mtime; /* Last-Modified as seconds since the epoch, 0 if unknown */
} s3s_s3_objinfo;

/* s3s_s3_list_cb is called once per object, in key order for one listing.
 * Return 0 to go on, non-zero to stop: the list call then returns that value. */
typedef int (*s3s_s3_list_cb)(void *ud, const char *key, uint64_t size, const char *etag,
                              int64_t mtime);

/* s3s_s3_list lists every object under prefix (ListObjectsV2, following
 * continuation tokens), after start_after when non-NULL. prefix may be "" or NULL. */
S3S_API int s3s_s3_list(s3s_s3 *s3, const char *bucket, const char *prefix, const char *start_after,
                        s3s_s3_list_cb cb, void *ud);

/* s3s_s3_prefix_cb is called once per common prefix ("folder/") of a
 * one-level listing. Return 0 to go on, non-zero to stop. */
typedef int (*s3s_s3_prefix_cb)(void *ud, const char *prefix);

/* s3s_s3_list_dir lists one level under prefix with delimiter '/', like
 * `aws s3 ls`: objects directly under prefix go to cb, sub-folders to pcb
 * (may be NULL), each in key order per page. */
S3S_API int s3s_s3_list_dir(s3s_s3 *s3, const char *bucket, const char *prefix, s3s_s3_list_cb cb,
                            s3s_s3_prefix_cb pcb, void *ud);

/* s3s_s3_list_parallel lists the same objects as s3s_s3_list, splitting the key
 * space into ranges listed concurrently (see the README: "Parallel listing").
 * cb is still called in key order, from the calling thread. parallelism 0 means
 * the handle's max_connections. */
S3S_API int s3s_s3_list_parallel(s3s_s3 *s3, const char *bucket, const char *prefix,
                                 unsigned parallelism, s3s_s3_list_cb cb, void *ud);

/* s3s_s3_write_cb receives body bytes in order. Return 0 to go on, non-zero to
 * abort: the GET then returns that value. After a retry mid-body the stream
 * continues where it stopped; the callback never sees a byte twice. */
typedef int (*s3s_s3_write_cb)(void *ud, const void *data, size_t len);

#define S3S_TO_END UINT64_MAX

/* s3s_s3_get streams bytes [off, off+len) of bucket/key (len S3S_TO_END: to the
 * end) into cb. If_match: when non-NULL, the object's ETag must equal it or the
 * call fails with S3S_ECONFLICT. info (may be NULL) receives the object's size
 * and ETag. Fails with S3S_ENOTFOUND/S3S_EACCESS at once, S3S_ESHORT when the
 * body stays short after retries, S3S_ERANGE for a range past the end. */
S3S_API int s3s_s3_get(s3s_s3 *s3, const char *bucket, const char *key, uint64_t off, uint64_t len,
                       const char *if_match, s3s_s3_write_cb cb, void *ud, s3s_s3_objinfo *info);

/* s3s_s3_get_parallel is s3s_s3_get for big ranges: it fetches range_chunk
 * pieces over up to `connections` connections (0: min(8, max_connections)) and still
 * delivers bytes to cb in order, holding at most connections*range_chunk bytes. */
S3S_API int s3s_s3_get_parallel(s3s_s3 *s3, const char *bucket, const char *key, uint64_t off,
                                uint64_t len, unsigned connections, s3s_s3_write_cb cb, void *ud,
                                s3s_s3_objinfo *info);

/* s3s_s3_head fills info for bucket/key. */
S3S_API int s3s_s3_head(s3s_s3 *s3, const char *bucket, const char *key, s3s_s3_objinfo *info);

/* s3s_s3_put stores len bytes at bucket/key (multipart at or above the
 * threshold). etag_out (may be NULL, 72 bytes) receives the new ETag. */
S3S_API int s3s_s3_put(s3s_s3 *s3, const char *bucket, const char *key, const void *data,
                       size_t len, char *etag_out);

/* s3s_s3_put_file uploads a local file (multipart at or above the threshold,
 * parts in parallel). */
S3S_API int s3s_s3_put_file(s3s_s3 *s3, const char *bucket, const char *key, const char *path,
                            char *etag_out);

/* s3s_s3_delete removes bucket/key (a missing key is not an error). */
S3S_API int s3s_s3_delete(s3s_s3 *s3, const char *bucket, const char *key);

/* s3s_s3_presign writes a presigned GET URL valid for expires_s seconds into
 * *out (caller frees). */
S3S_API int s3s_s3_presign(s3s_s3 *s3, const char *method, const char *bucket, const char *key,
                           unsigned expires_s, char **out);

/* s3s_uri_parse splits "s3://bucket/key..." into heap copies (caller frees
 * both). The key may be empty. Returns S3S_EINVAL for anything else. */
S3S_API int s3s_uri_parse(const char *uri, char **out_bucket, char **out_key);

#ifdef __cplusplus
}
#endif
#endif
