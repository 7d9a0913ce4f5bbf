/* sigv4.c: AWS Signature Version 4 (see sigv4.h for the rules). */
#include "common/s3/sigv4.h"

#include "common/crypto/hex.h"
#include "common/crypto/hmac.h"
#include "common/s3/pct.h"
#include "s3shard/error.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0) {                                                                            \
            rc = rc_;                                                                              \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

void s3s__sigv4_result_init(s3s__sigv4_result *r)
{
    s3s__buf_init(&r->canonical_request, S3S_SIGV4_MAX);
    s3s__buf_init(&r->string_to_sign, S3S_SIGV4_MAX);
    s3s__buf_init(&r->signed_headers, S3S_SIGV4_MAX);
    s3s__buf_init(&r->out, S3S_SIGV4_MAX);
    r->signature[0] = '\0';
}

void s3s__sigv4_result_fini(s3s__sigv4_result *r)
{
    if (r == NULL)
        return;
    s3s__buf_fini(&r->canonical_request);
    s3s__buf_fini(&r->string_to_sign);
    s3s__buf_fini(&r->signed_headers);
    s3s__buf_fini(&r->out);
}

/* ---- canonical URI ------------------------------------------------------------- */

/* Resolves '.', '..' and empty segments of a decoded path in place (RFC 3986
 * remove_dot_segments plus collapsing '//'). The result starts with '/' and
 * keeps a trailing '/' when the input had one. */
static int normalize(s3s__buf *out, const char *p, size_t n)
{
    /* Segment starts kept on a stack of offsets into out. */
    size_t *stack = malloc((n / 2 + 2) * sizeof *stack);
    size_t depth = 0;
    int rc = 0;
    int trailing = n > 0 && p[n - 1] == '/';
    if (stack == NULL)
        return S3S_ENOMEM;
    s3s__buf_reset(out);
    size_t i = 0;
    while (i < n) {
        while (i < n && p[i] == '/')
            i++;
        size_t j = i;
        while (j < n && p[j] != '/')
            j++;
        size_t len = j - i;
        if (len == 0)
            break;
        if (len == 1 && p[i] == '.') {
            if (j >= n)
                trailing = 1;
        } else if (len == 2 && p[i] == '.' && p[i + 1] == '.') {
            if (depth > 0)
                out->len = stack[--depth];
            if (j >= n)
                trailing = 1;
        } else {
            stack[depth++] = out->len;
            TRY(s3s__buf_append(out, "/", 1));
            TRY(s3s__buf_append(out, p + i, len));
        }
        i = j;
    }
    if (out->len == 0 || trailing)
        TRY(s3s__buf_append(out, "/", 1));
    if (out->data != NULL)
        out->data[out->len] = '\0';
out:
    free(stack);
    return rc;
}

int s3s__sigv4_canonical_uri(s3s__buf *out, const char *path, int do_normalize)
{
    s3s__buf dec, norm;
    int rc = 0;
    if (path == NULL || path[0] == '\0')
        path = "/";
    s3s__buf_init(&dec, S3S_SIGV4_MAX);
    s3s__buf_init(&norm, S3S_SIGV4_MAX);
    TRY(s3s__pct_decode(&dec, path, strlen(path)));
    const char *p = dec.data;
    size_t n = dec.len;
    if (do_normalize) {
        TRY(normalize(&norm, dec.data, dec.len));
        p = norm.data;
        n = norm.len;
    }
    if (n == 0 || p[0] != '/')
        TRY(s3s__buf_append(out, "/", 1));
    TRY(s3s__pct_encode(out, p, n, 1));
out:
    s3s__buf_fini(&dec);
    s3s__buf_fini(&norm);
    return rc;
}

/* ---- canonical query ----------------------------------------------------------- */

typedef struct qpair {
    char *key; /* encoded */
    char *val; /* encoded */
} qpair;

static int qpair_cmp(const void *a, const void *b)
{
    const qpair *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : strcmp(x->val, y->val);
}

/* Appends the SigV4 encoding of the decoding of s[0..n) as a new C string. */
static int reencode(const char *s, size_t n, char **outp)
{
    s3s__buf dec, enc;
    int rc = 0;
    s3s__buf_init(&dec, S3S_SIGV4_MAX);
    s3s__buf_init(&enc, S3S_SIGV4_MAX);
    TRY(s3s__pct_decode(&dec, s, n));
    TRY(s3s__pct_encode(&enc, dec.data != NULL ? dec.data : "", dec.len, 0));
    *outp = s3s__buf_detach(&enc, NULL);
    if (*outp == NULL)
        rc = S3S_ENOMEM;
out:
    s3s__buf_fini(&dec);
    s3s__buf_fini(&enc);
    return rc;
}

int s3s__sigv4_canonical_query(s3s__buf *out, const char *query)
{
    if (query == NULL || query[0] == '\0')
        return 0;
    size_t qn = strlen(query);
    size_t cap = 1;
    for (size_t i = 0; i < qn; i++)
        cap += query[i] == '&';
    qpair *pairs = calloc(cap, sizeof *pairs);
    size_t np = 0;
    int rc = 0;
    if (pairs == NULL)
        return S3S_ENOMEM;
    const char *p = query;
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        if (end == NULL)
            end = p + strlen(p);
        if (end > p) {
            const char *eq = memchr(p, '=', (size_t)(end - p));
            const char *kend = eq != NULL ? eq : end;
            TRY(reencode(p, (size_t)(kend - p), &pairs[np].key));
            np++;
            if (eq != NULL)
                TRY(reencode(eq + 1, (size_t)(end - eq - 1), &pairs[np - 1].val));
            else
                TRY(reencode("", 0, &pairs[np - 1].val));
        }
        p = *end == '&' ? end + 1 : end;
    }
    qsort(pairs, np, sizeof *pairs, qpair_cmp);
    for (size_t i = 0; i < np; i++) {
        TRY(s3s__buf_printf(out, "%s%s=%s", i > 0 ? "&" : "", pairs[i].key, pairs[i].val));
    }
out:
    for (size_t i = 0; i < np; i++) {
        free(pairs[i].key);
        free(pairs[i].val);
    }
    free(pairs);
    return rc;
}

/* ---- canonical headers --------------------------------------------------------- */

typedef struct hent {
    char *name; /* lowercased */
    const char *value;
    size_t order;
} hent;

static int hent_cmp(const void *a, const void *b)
{
    const hent *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Appends v trimmed, with inner runs of blanks collapsed to one space. */
static int append_trimmed(s3s__buf *out, const char *v)
{
    const char *s = v;
    const char *e = v + strlen(v);
    while (s < e && is_blank(*s))
        s++;
    while (e > s && is_blank(e[-1]))
        e--;
    while (s < e) {
        const char *r = s;
        while (r < e && !is_blank(*r))
            r++;
        int rc = s3s__buf_append(out, s, (size_t)(r - s));
        if (rc != 0)
            return rc;
        if (r < e) {
            rc = s3s__buf_append(out, " ", 1);
            if (rc != 0)
                return rc;
            while (r < e && is_blank(*r))
                r++;
        }
        s = r;
    }
    return 0;
}

int s3s__sigv4_canonical_headers(s3s__buf *canon, s3s__buf *signed_headers,
                                 const s3s__sigv4_header *h, size_t n)
{
    hent *e = calloc(n + 1, sizeof *e);
    int rc = 0;
    size_t made = 0;
    if (e == NULL)
        return S3S_ENOMEM;
    for (; made < n; made++) {
        e[made].name = strdup(h[made].name != NULL ? h[made].name : "");
        if (e[made].name == NULL) {
            rc = S3S_ENOMEM;
            goto out;
        }
        for (char *c = e[made].name; *c != '\0'; c++)
            *c = (char)tolower((unsigned char)*c);
        e[made].value = h[made].value != NULL ? h[made].value : "";
        e[made].order = made;
    }
    qsort(e, n, sizeof *e, hent_cmp);
    for (size_t i = 0; i < n; i++) {
        int first = i == 0 || strcmp(e[i].name, e[i - 1].name) != 0;
        int last = i + 1 == n || strcmp(e[i].name, e[i + 1].name) != 0;
        if (first) {
            TRY(s3s__buf_printf(canon, "%s:", e[i].name));
            TRY(s3s__buf_printf(signed_headers, "%s%s", i > 0 ? ";" : "", e[i].name));
        } else {
            TRY(s3s__buf_append(canon, ",", 1));
        }
        TRY(append_trimmed(canon, e[i].value));
        if (last)
            TRY(s3s__buf_append(canon, "\n", 1));
    }
out:
    for (size_t i = 0; i < made; i++)
        free(e[i].name);
    free(e);
    return rc;
}

int s3s__sigv4_canonical_request(s3s__buf *out, s3s__buf *signed_headers,
                                 const s3s__sigv4_request *r)
{
    int rc = 0;
    TRY(s3s__buf_printf(out, "%s\n", r->method));
    TRY(s3s__sigv4_canonical_uri(out, r->path, r->normalize_path));
    TRY(s3s__buf_append(out, "\n", 1));
    TRY(s3s__sigv4_canonical_query(out, r->query));
    TRY(s3s__buf_append(out, "\n", 1));
    TRY(s3s__sigv4_canonical_headers(out, signed_headers, r->headers, r->nheaders));
    TRY(s3s__buf_append(out, "\n", 1));
    TRY(s3s__buf_puts(out, signed_headers->data != NULL ? signed_headers->data : ""));
    TRY(s3s__buf_printf(out, "\n%s", r->payload_hash));
out:
    return rc;
}

/* ---- keys and signatures ------------------------------------------------------- */

int s3s__sigv4_signing_key(s3s__sigv4_keycache *kc, const char *secret, const char *date8,
                           const char *region, const char *service, uint8_t key[S3S_SHA256_LEN])
{
    uint8_t fp[S3S_SHA256_LEN];
    s3s__sha256(secret, strlen(secret), fp);
    if (kc != NULL && kc->valid && strcmp(kc->date, date8) == 0 &&
        strcmp(kc->region, region) == 0 && strcmp(kc->service, service) == 0 &&
        s3s__ct_equal(kc->secret_fp, fp, sizeof fp)) {
        memcpy(key, kc->key, S3S_SHA256_LEN);
        return 0;
    }
    size_t sl = strlen(secret);
    char *k0 = malloc(sl + 5);
    uint8_t a[S3S_SHA256_LEN], b[S3S_SHA256_LEN];
    int rc = 0;
    if (k0 == NULL)
        return S3S_ENOMEM;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, sl + 1);
    TRY(s3s__hmac_sha256(k0, sl + 4, date8, strlen(date8), a));
    TRY(s3s__hmac_sha256(a, sizeof a, region, strlen(region), b));
    TRY(s3s__hmac_sha256(b, sizeof b, service, strlen(service), a));
    TRY(s3s__hmac_sha256(a, sizeof a, "aws4_request", 12, key));
    if (kc != NULL && strlen(region) < sizeof kc->region && strlen(service) < sizeof kc->service) {
        memcpy(kc->date, date8, 8);
        kc->date[8] = '\0';
        strcpy(kc->region, region);
        strcpy(kc->service, service);
        memcpy(kc->secret_fp, fp, sizeof fp);
        memcpy(kc->key, key, S3S_SHA256_LEN);
        kc->valid = 1;
        kc->derivations++;
    }
out:
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    memset(k0, 0, sl + 4);
    free(k0);
    return rc;
}

int s3s__sigv4_date_valid(const char *s)
{
    if (s == NULL || strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
        return 0;
    for (int i = 0; i < 15; i++)
        if (i != 8 && !isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

void s3s__sigv4_amz_date(int64_t t, char out[17])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* Builds the canonical request and string to sign for r, then the signature. */
static int sign(s3s__sigv4_result *res, s3s__sigv4_keycache *kc, const s3s__sigv4_creds *cr,
                const char *region, const char *service, const char *amz_date,
                const s3s__sigv4_request *r)
{
    char date8[9];
    char hash[S3S_SHA256_HEX_LEN + 1];
    uint8_t key[S3S_SHA256_LEN], sig[S3S_SHA256_LEN];
    int rc = 0;
    memcpy(date8, amz_date, 8);
    date8[8] = '\0';
    s3s__buf_reset(&res->canonical_request);
    s3s__buf_reset(&res->signed_headers);
    s3s__buf_reset(&res->string_to_sign);
    TRY(s3s__sigv4_canonical_request(&res->canonical_request, &res->signed_headers, r));
    s3s__sha256_hex(res->canonical_request.data, res->canonical_request.len, hash);
    TRY(s3s__buf_printf(&res->string_to_sign, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
                        amz_date, date8, region, service, hash));
    TRY(s3s__sigv4_signing_key(kc, cr->secret_access_key, date8, region, service, key));
    TRY(s3s__hmac_sha256(key, sizeof key, res->string_to_sign.data, res->string_to_sign.len, sig));
    s3s__hex_encode(sig, sizeof sig, res->signature);
out:
    memset(key, 0, sizeof key);
    return rc;
}

static int check_args(const s3s__sigv4_creds *cr, const char *region, const char *service,
                      const char *amz_date, const s3s__sigv4_request *r)
{
    if (cr == NULL || cr->access_key_id == NULL || cr->secret_access_key == NULL ||
        region == NULL || service == NULL || r == NULL || r->method == NULL ||
        r->payload_hash == NULL || !s3s__sigv4_date_valid(amz_date))
        return S3S_EINVAL;
    return 0;
}

int s3s__sigv4_sign_header(s3s__sigv4_result *res, s3s__sigv4_keycache *kc,
                           const s3s__sigv4_creds *cr, const char *region, const char *service,
                           const char *amz_date, const s3s__sigv4_request *r)
{
    int rc = check_args(cr, region, service, amz_date, r);
    if (rc != 0)
        return rc;
    TRY(sign(res, kc, cr, region, service, amz_date, r));
    s3s__buf_reset(&res->out);
    TRY(s3s__buf_printf(&res->out,
                        "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
                        "SignedHeaders=%s, Signature=%s",
                        cr->access_key_id, amz_date, region, service,
                        res->signed_headers.data != NULL ? res->signed_headers.data : "",
                        res->signature));
out:
    return rc;
}

int s3s__sigv4_presign(s3s__sigv4_result *res, s3s__sigv4_keycache *kc, const s3s__sigv4_creds *cr,
                       const char *region, const char *service, const char *amz_date,
                       unsigned expires_s, const s3s__sigv4_request *r)
{
    s3s__buf q, signed_h, ignore, cred;
    int rc = check_args(cr, region, service, amz_date, r);
    if (rc != 0)
        return rc;
    s3s__buf_init(&q, S3S_SIGV4_MAX);
    s3s__buf_init(&signed_h, S3S_SIGV4_MAX);
    s3s__buf_init(&ignore, S3S_SIGV4_MAX);
    s3s__buf_init(&cred, S3S_SIGV4_MAX);
    /* The signed-header list is part of the signed query, so compute it first. */
    TRY(s3s__sigv4_canonical_headers(&ignore, &signed_h, r->headers, r->nheaders));
    TRY(s3s__buf_printf(&cred, "%s/%.8s/%s/%s/aws4_request", cr->access_key_id, amz_date, region,
                        service));
    if (r->query != NULL && r->query[0] != '\0')
        TRY(s3s__buf_printf(&q, "%s&", r->query));
    TRY(s3s__buf_puts(&q, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="));
    TRY(s3s__pct_encode(&q, cred.data, cred.len, 0));
    TRY(s3s__buf_printf(&q, "&X-Amz-Date=%s&X-Amz-Expires=%u", amz_date, expires_s));
    if (cr->session_token != NULL && cr->session_token[0] != '\0') {
        TRY(s3s__buf_puts(&q, "&X-Amz-Security-Token="));
        TRY(s3s__pct_encode(&q, cr->session_token, strlen(cr->session_token), 0));
    }
    TRY(s3s__buf_puts(&q, "&X-Amz-SignedHeaders="));
    TRY(s3s__pct_encode(&q, signed_h.data != NULL ? signed_h.data : "", signed_h.len, 0));
    s3s__sigv4_request r2 = *r;
    r2.query = q.data;
    TRY(sign(res, kc, cr, region, service, amz_date, &r2));
    s3s__buf_reset(&res->out);
    TRY(s3s__sigv4_canonical_query(&res->out, q.data));
    TRY(s3s__buf_printf(&res->out, "&X-Amz-Signature=%s", res->signature));
out:
    s3s__buf_fini(&q);
    s3s__buf_fini(&signed_h);
    s3s__buf_fini(&ignore);
    s3s__buf_fini(&cred);
    return rc;
}
