/* mp.c: the msgpack writer (msgpack-c's packer into a capped s3s__buf) and a
 * hand-written bounded reader. See mp.h for the invariants.
 *
 * Why not msgpack_unpack for reading: msgpack-c 4.0 allocates whatever a
 * container header claims before it looks at the bytes behind it (a 5-byte
 * array32 header costs gigabytes), so input from the network or a file is read
 * here, byte by byte, with every length checked against the bytes left. */
#include "common/proto/mp.h"

#include "s3shard/error.h"

#include <msgpack.h>
#include <stdio.h>
#include <string.h>

/* ---- writer ---- */

static int mpw_write(void *data, const char *buf, size_t len)
{
    s3s__mpw *w = data;
    if (w->err != 0)
        return -1;
    int rc = s3s__buf_append(w->out, buf, len);
    if (rc != 0) {
        w->err = rc;
        return -1;
    }
    return 0;
}

#define MPW_PACK(w, call)                                                                          \
    do {                                                                                           \
        if ((w)->err != 0)                                                                         \
            return;                                                                                \
        msgpack_packer pk;                                                                         \
        msgpack_packer_init(&pk, (w), mpw_write);                                                  \
        (void)(call);                                                                              \
    } while (0)

void s3s__mpw_init(s3s__mpw *w, s3s__buf *out)
{
    w->out = out;
    w->err = 0;
}

void s3s__mpw_nil(s3s__mpw *w)
{
    MPW_PACK(w, msgpack_pack_nil(&pk));
}

void s3s__mpw_bool(s3s__mpw *w, bool v)
{
    MPW_PACK(w, v ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
}

void s3s__mpw_uint(s3s__mpw *w, uint64_t v)
{
    MPW_PACK(w, msgpack_pack_uint64(&pk, v));
}

void s3s__mpw_int(s3s__mpw *w, int64_t v)
{
    MPW_PACK(w, msgpack_pack_int64(&pk, v));
}

void s3s__mpw_double(s3s__mpw *w, double v)
{
    MPW_PACK(w, msgpack_pack_double(&pk, v));
}

void s3s__mpw_str(s3s__mpw *w, const char *s, size_t n)
{
    if (n > UINT32_MAX && w->err == 0)
        w->err = S3S_ETOOBIG;
    MPW_PACK(w, msgpack_pack_str_with_body(&pk, s, n));
}

void s3s__mpw_cstr(s3s__mpw *w, const char *s)
{
    s3s__mpw_str(w, s, strlen(s));
}

void s3s__mpw_bin(s3s__mpw *w, const void *p, size_t n)
{
    if (n > UINT32_MAX && w->err == 0)
        w->err = S3S_ETOOBIG;
    MPW_PACK(w, msgpack_pack_bin_with_body(&pk, p, n));
}

void s3s__mpw_array(s3s__mpw *w, uint32_t n)
{
    MPW_PACK(w, msgpack_pack_array(&pk, n));
}

void s3s__mpw_map(s3s__mpw *w, uint32_t n)
{
    MPW_PACK(w, msgpack_pack_map(&pk, n));
}

void s3s__mpw_raw(s3s__mpw *w, const void *p, size_t n)
{
    if (w->err == 0 && n > 0)
        mpw_write(w, p, n);
}

/* ---- reader ---- */

/* One decoded value header. For str/bin/array/map, n is the length or count and
 * hdr the header size; scalars are complete in the header. */
typedef struct mphead {
    s3s__mptype type;
    size_t hdr;
    uint32_t n;
    uint64_t u;
    int64_t i;
    double f;
    bool b;
} mphead;

static const char *type_name(s3s__mptype t)
{
    switch (t) {
    case S3S_MP_NIL:
        return "nil";
    case S3S_MP_BOOL:
        return "boolean";
    case S3S_MP_UINT:
        return "unsigned integer";
    case S3S_MP_INT:
        return "negative integer";
    case S3S_MP_FLOAT:
        return "float";
    case S3S_MP_STR:
        return "string";
    case S3S_MP_BIN:
        return "binary";
    case S3S_MP_ARRAY:
        return "array";
    case S3S_MP_MAP:
        return "map";
    }
    return "?";
}

void s3s__mpr_init(s3s__mpr *r, const void *p, size_t len, int code, const char *ctx,
                   s3s__errbuf *eb)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->code = code;
    r->ctx = ctx;
    r->eb = eb;
}

size_t s3s__mpr_left(const s3s__mpr *r)
{
    return r->len - r->off;
}

int s3s__mpr_fail(s3s__mpr *r, const char *field, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return s3s__err_set(r->eb, r->code, "%s: %s: %s at offset %zu", r->ctx, field ? field : "value",
                        what, r->off);
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = (v << 8) | p[k];
    return v;
}

/* head decodes the header at r->off without consuming it. Only the header bytes
 * are checked here; payload lengths are checked by the callers. */
static int head(s3s__mpr *r, mphead *h, const char *field)
{
    size_t left = r->len - r->off;
    if (left == 0)
        return s3s__mpr_fail(r, field, "truncated: value expected, no bytes left");
    const uint8_t *p = r->p + r->off;
    uint8_t c = p[0];
    memset(h, 0, sizeof *h);
    h->hdr = 1;
    int sz = 0; /* bytes following the tag that belong to the header */
    if (c <= 0x7f) {
        h->type = S3S_MP_UINT;
        h->u = c;
        return 0;
    }
    if (c >= 0xe0) {
        h->type = S3S_MP_INT;
        h->i = (int8_t)c;
        return 0;
    }
    if (c >= 0x80 && c <= 0x8f) {
        h->type = S3S_MP_MAP;
        h->n = c & 0x0f;
        return 0;
    }
    if (c >= 0x90 && c <= 0x9f) {
        h->type = S3S_MP_ARRAY;
        h->n = c & 0x0f;
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        h->type = S3S_MP_STR;
        h->n = c & 0x1f;
        return 0;
    }
    switch (c) {
    case 0xc0:
        h->type = S3S_MP_NIL;
        return 0;
    case 0xc2:
    case 0xc3:
        h->type = S3S_MP_BOOL;
        h->b = c == 0xc3;
        return 0;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        h->type = S3S_MP_BIN;
        sz = 1 << (c - 0xc4);
        break;
    case 0xca:
    case 0xcb:
        h->type = S3S_MP_FLOAT;
        sz = c == 0xca ? 4 : 8;
        break;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        h->type = S3S_MP_UINT;
        sz = 1 << (c - 0xcc);
        break;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
        h->type = S3S_MP_INT;
        sz = 1 << (c - 0xd0);
        break;
    case 0xd9:
    case 0xda:
    case 0xdb:
        h->type = S3S_MP_STR;
        sz = 1 << (c - 0xd9);
        break;
    case 0xdc:
    case 0xdd:
        h->type = S3S_MP_ARRAY;
        sz = c == 0xdc ? 2 : 4;
        break;
    case 0xde:
    case 0xdf:
        h->type = S3S_MP_MAP;
        sz = c == 0xde ? 2 : 4;
        break;
    default: /* 0xc1 (never used) and every ext type */
        return s3s__mpr_fail(r, field, "unsupported msgpack byte 0x%02x", c);
    }
    if ((size_t)sz > left - 1)
        return s3s__mpr_fail(r, field, "truncated: %d header bytes needed, %zu left", sz, left - 1);
    h->hdr = 1 + (size_t)sz;
    uint64_t v = be(p + 1, sz);
    switch (h->type) {
    case S3S_MP_UINT:
        h->u = v;
        break;
    case S3S_MP_INT: {
        int64_t s;
        if (sz == 1)
            s = (int8_t)v;
        else if (sz == 2)
            s = (int16_t)v;
        else if (sz == 4)
            s = (int32_t)(uint32_t)v;
        else
            memcpy(&s, &v, sizeof s);
        if (s >= 0) { /* a signed encoding of a non-negative number */
            h->type = S3S_MP_UINT;
            h->u = (uint64_t)s;
        } else {
            h->i = s;
        }
        break;
    }
    case S3S_MP_FLOAT:
        if (sz == 4) {
            uint32_t b32 = (uint32_t)v;
            float fl;
            memcpy(&fl, &b32, sizeof fl);
            h->f = fl;
        } else {
            memcpy(&h->f, &v, sizeof h->f);
        }
        break;
    default:
        h->n = (uint32_t)v;
        break;
    }
    return 0;
}

static int expect(s3s__mpr *r, mphead *h, s3s__mptype t, const char *field)
{
    int rc = head(r, h, field);
    if (rc != 0)
        return rc;
    if (h->type != t)
        return s3s__mpr_fail(r, field, "expected %s, got %s", type_name(t), type_name(h->type));
    return 0;
}

int s3s__mpr_peek(const s3s__mpr *r, s3s__mptype *out)
{
    mphead h;
    s3s__mpr tmp = *r;
    int rc = head(&tmp, &h, NULL);
    if (rc != 0)
        return rc;
    *out = h.type;
    return 0;
}

int s3s__mpr_nil(s3s__mpr *r, const char *field)
{
    mphead h;
    int rc = expect(r, &h, S3S_MP_NIL, field);
    if (rc == 0)
        r->off += h.hdr;
    return rc;
}

int s3s__mpr_bool(s3s__mpr *r, bool *out, const char *field)
{
    mphead h;
    int rc = expect(r, &h, S3S_MP_BOOL, field);
    if (rc != 0)
        return rc;
    *out = h.b;
    r->off += h.hdr;
    return 0;
}

int s3s__mpr_uint(s3s__mpr *r, uint64_t *out, uint64_t min, uint64_t max, const char *field)
{
    mphead h;
    int rc = expect(r, &h, S3S_MP_UINT, field);
    if (rc != 0)
        return rc;
    if (h.u < min || h.u > max)
        return s3s__mpr_fail(r, field, "%llu is out of range [%llu, %llu]", (unsigned long long)h.u,
                             (unsigned long long)min, (unsigned long long)max);
    *out = h.u;
    r->off += h.hdr;
    return 0;
}

int s3s__mpr_u32(s3s__mpr *r, uint32_t *out, uint32_t min, uint32_t max, const char *field)
{
    uint64_t v = 0;
    int rc = s3s__mpr_uint(r, &v, min, max, field);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

int s3s__mpr_int(s3s__mpr *r, int64_t *out, const char *field)
{
    mphead h;
    int rc = head(r, &h, field);
    if (rc != 0)
        return rc;
    if (h.type == S3S_MP_INT) {
        *out = h.i;
    } else if (h.type == S3S_MP_UINT) {
        if (h.u > INT64_MAX)
            return s3s__mpr_fail(r, field, "%llu does not fit a signed integer",
                                 (unsigned long long)h.u);
        *out = (int64_t)h.u;
    } else {
        return s3s__mpr_fail(r, field, "expected integer, got %s", type_name(h.type));
    }
    r->off += h.hdr;
    return 0;
}

int s3s__mpr_double(s3s__mpr *r, double *out, const char *field)
{
    mphead h;
    int rc = expect(r, &h, S3S_MP_FLOAT, field);
    if (rc != 0)
        return rc;
    *out = h.f;
    r->off += h.hdr;
    return 0;
}

/* blob reads a str or bin whose length must fit both max and the bytes left. */
static int blob(s3s__mpr *r, s3s__mptype t, const uint8_t **out, uint32_t *out_len, uint32_t max,
                const char *field)
{
    mphead h;
    int rc = expect(r, &h, t, field);
    if (rc != 0)
        return rc;
    size_t left = r->len - r->off - h.hdr;
    if (h.n > left)
        return s3s__mpr_fail(r, field, "%s of %u bytes but only %zu bytes left", type_name(t), h.n,
                             left);
    if (h.n > max)
        return s3s__mpr_fail(r, field, "%s of %u bytes, at most %u allowed", type_name(t), h.n,
                             max);
    *out = r->p + r->off + h.hdr;
    *out_len = h.n;
    r->off += h.hdr + h.n;
    return 0;
}

int s3s__mpr_str(s3s__mpr *r, const char **out, uint32_t *out_len, uint32_t max, const char *field)
{
    const uint8_t *p = NULL;
    int rc = blob(r, S3S_MP_STR, &p, out_len, max, field);
    if (rc == 0)
        *out = (const char *)p;
    return rc;
}

int s3s__mpr_str_copy(s3s__mpr *r, char *dst, uint32_t max, const char *field)
{
    const char *s = NULL;
    uint32_t n = 0;
    size_t start = r->off;
    int rc = s3s__mpr_str(r, &s, &n, max, field);
    if (rc != 0)
        return rc;
    if (memchr(s, '\0', n) != NULL) {
        r->off = start;
        return s3s__mpr_fail(r, field, "string contains a NUL byte");
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

int s3s__mpr_bin(s3s__mpr *r, const uint8_t **out, uint32_t *out_len, uint32_t max,
                 const char *field)
{
    return blob(r, S3S_MP_BIN, out, out_len, max, field);
}

int s3s__mpr_bin_exact(s3s__mpr *r, uint8_t *dst, uint32_t n, const char *field)
{
    const uint8_t *p = NULL;
    uint32_t len = 0;
    size_t start = r->off;
    int rc = blob(r, S3S_MP_BIN, &p, &len, n, field);
    if (rc != 0)
        return rc;
    if (len != n) {
        r->off = start;
        return s3s__mpr_fail(r, field, "expected %u bytes, got %u", n, len);
    }
    memcpy(dst, p, n);
    return 0;
}

static int container(s3s__mpr *r, s3s__mptype t, uint32_t *out, uint32_t max, uint32_t min_elem,
                     const char *field)
{
    mphead h;
    int rc = expect(r, &h, t, field);
    if (rc != 0)
        return rc;
    size_t left = r->len - r->off - h.hdr;
    if (min_elem == 0)
        min_elem = 1;
    if ((uint64_t)h.n * min_elem > left)
        return s3s__mpr_fail(r, field, "%s of %u elements cannot fit in the %zu bytes left",
                             type_name(t), h.n, left);
    if (h.n > max)
        return s3s__mpr_fail(r, field, "%s of %u elements, at most %u allowed", type_name(t), h.n,
                             max);
    *out = h.n;
    r->off += h.hdr;
    return 0;
}

int s3s__mpr_array(s3s__mpr *r, uint32_t *out, uint32_t max, uint32_t min_elem, const char *field)
{
    return container(r, S3S_MP_ARRAY, out, max, min_elem, field);
}

int s3s__mpr_map(s3s__mpr *r, uint32_t *out, uint32_t max, const char *field)
{
    return container(r, S3S_MP_MAP, out, max, 2, field);
}

int s3s__mpr_skip(s3s__mpr *r, int max_depth, const char *field)
{
    mphead h;
    int rc = head(r, &h, field);
    if (rc != 0)
        return rc;
    size_t left = r->len - r->off - h.hdr;
    switch (h.type) {
    case S3S_MP_STR:
    case S3S_MP_BIN:
        if (h.n > left)
            return s3s__mpr_fail(r, field, "%s of %u bytes but only %zu bytes left",
                                 type_name(h.type), h.n, left);
        r->off += h.hdr + h.n;
        return 0;
    case S3S_MP_ARRAY:
    case S3S_MP_MAP: {
        uint64_t items = h.type == S3S_MP_MAP ? 2 * (uint64_t)h.n : h.n;
        if (items > left)
            return s3s__mpr_fail(r, field, "%s of %u elements cannot fit in the %zu bytes left",
                                 type_name(h.type), h.n, left);
        if (max_depth <= 0)
            return s3s__mpr_fail(r, field, "nested too deeply");
        r->off += h.hdr;
        for (uint64_t k = 0; k < items; k++) {
            rc = s3s__mpr_skip(r, max_depth - 1, field);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    default:
        r->off += h.hdr;
        return 0;
    }
}

int s3s__mp_validate(const void *p, size_t len, int max_depth, int code, const char *ctx,
                     s3s__errbuf *eb)
{
    s3s__mpr r;
    s3s__mpr_init(&r, p, len, code, ctx, eb);
    int rc = s3s__mpr_skip(&r, max_depth, NULL);
    if (rc != 0)
        return rc;
    if (r.off != len)
        return s3s__mpr_fail(&r, NULL, "%zu trailing bytes after the value", len - r.off);
    return 0;
}
