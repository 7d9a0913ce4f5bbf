/* xxh64.c: XXH64 with seed 0, streaming (see xxh64.h). */
#include "common/dataset/xxh64.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t xround(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}

static uint64_t xmerge(uint64_t acc, uint64_t v)
{
    acc ^= xround(0, v);
    return acc * P1 + P4;
}

void s3s__xxh_init(s3s__xxh_state *st)
{
    st->v[0] = P1 + P2;
    st->v[1] = P2;
    st->v[2] = 0;
    st->v[3] = 0 - P1;
    st->total = 0;
    st->bl = 0;
}

static void xxh_stripe(s3s__xxh_state *st, const uint8_t *p)
{
    st->v[0] = xround(st->v[0], rd64(p));
    st->v[1] = xround(st->v[1], rd64(p + 8));
    st->v[2] = xround(st->v[2], rd64(p + 16));
    st->v[3] = xround(st->v[3], rd64(p + 24));
}

void s3s__xxh_update(s3s__xxh_state *st, const void *data, size_t len)
{
    const uint8_t *p = data;
    st->total += len;
    if (st->bl + len < 32) {
        if (len > 0)
            memcpy(st->buf + st->bl, p, len);
        st->bl += len;
        return;
    }
    if (st->bl > 0) {
        size_t take = 32 - st->bl;
        memcpy(st->buf + st->bl, p, take);
        xxh_stripe(st, st->buf);
        p += take;
        len -= take;
        st->bl = 0;
    }
    while (len >= 32) {
        xxh_stripe(st, p);
        p += 32;
        len -= 32;
    }
    if (len > 0)
        memcpy(st->buf, p, len);
    st->bl = len;
}

uint64_t s3s__xxh_digest(const s3s__xxh_state *st)
{
    uint64_t h;
    if (st->total >= 32) {
        const uint64_t *v = st->v;
        h = rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18);
        for (int i = 0; i < 4; i++)
            h = xmerge(h, v[i]);
    } else {
        h = P5;
    }
    h += st->total;
    const uint8_t *p = st->buf, *end = st->buf + st->bl;
    while (p + 8 <= end) {
        h ^= xround(0, rd64(p));
        h = rotl(h, 27) * P1 + P4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)rd32(p) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)(*p) * P5;
        h = rotl(h, 11) * P1;
        p++;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

uint64_t s3s__xxh64(const void *data, size_t len)
{
    s3s__xxh_state st;
    s3s__xxh_init(&st);
    s3s__xxh_update(&st, data, len);
    return s3s__xxh_digest(&st);
}
