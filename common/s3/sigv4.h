/* sigv4.h: AWS Signature Version 4, by hand (header and presigned-query forms).
 *
 * Canonicalization rules (what AWS's documentation and test suite expect):
 * - path: percent-decoded, then encoded again keeping '/', so raw and
 *   already-encoded input give the same result; '.', '..' and repeated '/' are
 *   resolved only when normalize_path is set (S3 never normalizes);
 * - query: split on '&', each pair on its first '=' (a missing value is ""),
 *   decoded then encoded (nothing kept, '/' too), sorted by key then value;
 * - headers: names lowercased, values trimmed and inner runs of blanks collapsed
 *   to one space, repeated names joined with ',' in their order, sorted by name;
 *   every header given is signed.
 * The caller puts every header to sign (host, x-amz-date, x-amz-content-sha256,
 * x-amz-security-token, range, ...) into the request; the signer adds none.
 * Nothing here logs or stores the secret (the key cache keeps a hash of it). */
#ifndef S3S_S3_SIGV4_H
#define S3S_S3_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "common/crypto/sha256.h"
#include "common/util/buf.h"

#define S3S_SIGV4_MAX (1u << 20) /* cap on any canonical text we build */
#define S3S_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define S3S_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct s3s__sigv4_header {
    const char *name;
    const char *value;
} s3s__sigv4_header;

typedef struct s3s__sigv4_request {
    const char *method;
    const char *path; /* raw or encoded, without the query; NULL or "" is "/" */
    const char *query; /* raw or encoded, without '?'; NULL: none */
    const s3s__sigv4_header *headers;
    size_t nheaders;
    const char *payload_hash; /* hex SHA-256 of the body or UNSIGNED-PAYLOAD */
    int normalize_path;
} s3s__sigv4_request;

typedef struct s3s__sigv4_creds {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "": none */
} s3s__sigv4_creds;

/* A one-entry cache of the derived signing key. Invariant: when valid, key is
 * the key for (date, region, service) and the secret whose SHA-256 is secret_fp. */
typedef struct s3s__sigv4_keycache {
    int valid;
    char date[9];
    char region[64];
    char service[64];
    uint8_t secret_fp[S3S_SHA256_LEN];
    uint8_t key[S3S_SHA256_LEN];
    unsigned derivations; /* how many times a key was derived (for tests) */
} s3s__sigv4_keycache;

/* What a signing produced. out holds the Authorization header value (header
 * form) or the whole presigned query string (query form). */
typedef struct s3s__sigv4_result {
    s3s__buf canonical_request;
    s3s__buf string_to_sign;
    s3s__buf signed_headers;
    s3s__buf out;
    char signature[S3S_SHA256_HEX_LEN + 1];
} s3s__sigv4_result;

void s3s__sigv4_result_init(s3s__sigv4_result *r);
void s3s__sigv4_result_fini(s3s__sigv4_result *r);

/* Canonical pieces, appended to out; each returns 0, S3S_ETOOBIG or S3S_ENOMEM. */
int s3s__sigv4_canonical_uri(s3s__buf *out, const char *path, int normalize);
int s3s__sigv4_canonical_query(s3s__buf *out, const char *query);
/* canon gets "name:value\n" lines, signed gets "a;b;c". */
int s3s__sigv4_canonical_headers(s3s__buf *canon, s3s__buf *signed_headers,
                                 const s3s__sigv4_header *h, size_t n);
int s3s__sigv4_canonical_request(s3s__buf *out, s3s__buf *signed_headers,
                                 const s3s__sigv4_request *r);

/* s3s__sigv4_signing_key derives (or takes from kc, which may be NULL) the key
 * for date8 ("YYYYMMDD"), region and service. Returns 0 or S3S_ENOMEM. */
int s3s__sigv4_signing_key(s3s__sigv4_keycache *kc, const char *secret, const char *date8,
                           const char *region, const char *service, uint8_t key[S3S_SHA256_LEN]);

/* s3s__sigv4_sign_header signs r (which must carry x-amz-date equal to amz_date
 * when the server is to check it) and writes the Authorization value into
 * res->out. amz_date is "YYYYMMDDTHHMMSSZ". Returns 0, S3S_EINVAL for a bad
 * date or missing field, S3S_ETOOBIG, S3S_ENOMEM. */
int s3s__sigv4_sign_header(s3s__sigv4_result *res, s3s__sigv4_keycache *kc,
                           const s3s__sigv4_creds *cr, const char *region, const char *service,
                           const char *amz_date, const s3s__sigv4_request *r);

/* s3s__sigv4_presign adds X-Amz-Algorithm, -Credential, -Date, -Expires,
 * -SignedHeaders (and -Security-Token when the credentials have one) to r's
 * query, signs, and writes the final query string, X-Amz-Signature last, into
 * res->out. r->payload_hash is normally UNSIGNED-PAYLOAD. Same errors. */
int s3s__sigv4_presign(s3s__sigv4_result *res, s3s__sigv4_keycache *kc, const s3s__sigv4_creds *cr,
                       const char *region, const char *service, const char *amz_date,
                       unsigned expires_s, const s3s__sigv4_request *r);

/* s3s__sigv4_amz_date formats t (seconds since the epoch, UTC) as
 * "YYYYMMDDTHHMMSSZ" into out (17 bytes). */
void s3s__sigv4_amz_date(int64_t t, char out[17]);
/* s3s__sigv4_date_valid says whether s looks like "YYYYMMDDTHHMMSSZ". */
int s3s__sigv4_date_valid(const char *s);

#endif
