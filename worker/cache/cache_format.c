/* cache_format.c: the identity hash and the two small binary formats of the
 * cache: the entry file and the block trailer. Both are little-endian, fixed
 * layout, and end with a CRC-32C of everything before it. */
#include "worker/cache/cache_int.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "s3shard/error.h"
#include "worker/cache/crc32c.h"

static const char entry_magic[8] = {'S', '3', 'S', 'C', 'E', 'N', 'T', '1'};
static const char block_magic[8] = {'S', '3', 'S', 'C', 'B', 'L', 'K', '1'};
static const char part_magic[8] = {'S', '3', 'S', 'C', 'B', 'L', 'K', 'P'};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void s3s__cache_hash_bin(uint8_t out[16], const char *bucket, const char *key, const char *etag)
{
    /* SHA-256 of bucket NUL key NUL etag, cut to 128 bits: none of the three
     * contains a NUL, so the encoding is unambiguous. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, bucket, strlen(bucket) + 1) == 1 &&
        EVP_DigestUpdate(ctx, key, strlen(key) + 1) == 1 &&
        EVP_DigestUpdate(ctx, etag, strlen(etag)) == 1 &&
        EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        /* Only on allocation failure inside OpenSSL: fall back to a CRC-based
         * spread; the identity stored in the entry is checked on open anyway. */
        uint32_t a = s3s__cache_crc32c(0, bucket, strlen(bucket));
        uint32_t b = s3s__cache_crc32c(a, key, strlen(key));
        uint32_t d = s3s__cache_crc32c(b, etag, strlen(etag));
        memset(md, 0, 16);
        put32(md, a);
        put32(md + 4, b);
        put32(md + 8, d);
        put32(md + 12, a ^ b ^ d);
    }
    memcpy(out, md, 16);
}

void s3s__cache_hash_hex(char out[S3S__CACHE_HASH_HEX + 1], const uint8_t bin[16])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hx[bin[i] >> 4];
        out[2 * i + 1] = hx[bin[i] & 15];
    }
    out[S3S__CACHE_HASH_HEX] = '\0';
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

int s3s__cache_hex_to_bin(uint8_t out[16], const char *hex)
{
    for (int i = 0; i < 16; i++) {
        int hi = hexval(hex[2 * i]), lo = hi < 0 ? -1 : hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return S3S_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

void s3s__cache_id_hash(char out[S3S__CACHE_HASH_HEX + 1], const char *bucket, const char *key,
                        const char *etag)
{
    uint8_t bin[16];
    s3s__cache_hash_bin(bin, bucket, key, etag);
    s3s__cache_hash_hex(out, bin);
}

uint32_t s3s__cache_nblocks(uint64_t size, uint64_t block_size)
{
    if (size == 0)
        return 1; /* one empty block, so "complete" exists for empty objects */
    return (uint32_t)((size + block_size - 1) / block_size);
}

#define META_HDR 32

int s3s__cache_meta_encode(const s3s__cache_id *id, uint64_t block_size, uint8_t **out,
                           size_t *out_len)
{
    size_t bl = strlen(id->bucket), kl = strlen(id->key), el = strlen(id->etag);
    if (bl == 0 || bl > S3S__CACHE_BUCKET_MAX || kl == 0 || kl > S3S__CACHE_KEY_MAX || el == 0 ||
        el > S3S__CACHE_ETAG_MAX)
        return S3S_EINVAL;
    size_t n = META_HDR + bl + kl + el + 4;
    uint8_t *p = malloc(n);
    if (p == NULL)
        return S3S_ENOMEM;
    memcpy(p, entry_magic, 8);
    put64(p + 8, id->size);
    put64(p + 16, block_size);
    put16(p + 24, (uint16_t)bl);
    put16(p + 26, (uint16_t)kl);
    put16(p + 28, (uint16_t)el);
    put16(p + 30, 0);
    memcpy(p + META_HDR, id->bucket, bl);
    memcpy(p + META_HDR + bl, id->key, kl);
    memcpy(p + META_HDR + bl + kl, id->etag, el);
    put32(p + n - 4, s3s__cache_crc32c(0, p, n - 4));
    *out = p;
    *out_len = n;
    return 0;
}

int s3s__cache_meta_decode(const uint8_t *p, size_t n, s3s__cache_meta *out, s3s__errbuf *eb)
{
    if (n < META_HDR + 4)
        return s3s__err_set(eb, S3S_ECORRUPT, "cache entry file: %zu bytes, shorter than %d", n,
                            META_HDR + 4);
    if (memcmp(p, entry_magic, 8) != 0)
        return s3s__err_set(eb, S3S_ECORRUPT, "cache entry file: bad magic at offset 0");
    size_t bl = get16(p + 24), kl = get16(p + 26), el = get16(p + 28);
    if (bl == 0 || bl > S3S__CACHE_BUCKET_MAX || kl == 0 || kl > S3S__CACHE_KEY_MAX || el == 0 ||
        el > S3S__CACHE_ETAG_MAX)
        return s3s__err_set(eb, S3S_ECORRUPT,
                            "cache entry file: string lengths %zu/%zu/%zu out of range at "
                            "offset 24",
                            bl, kl, el);
    if (n != META_HDR + bl + kl + el + 4)
        return s3s__err_set(eb, S3S_ECORRUPT, "cache entry file: %zu bytes, expected %zu", n,
                            META_HDR + bl + kl + el + 4);
    if (get32(p + n - 4) != s3s__cache_crc32c(0, p, n - 4))
        return s3s__err_set(eb, S3S_ECORRUPT, "cache entry file: CRC mismatch at offset %zu",
                            n - 4);
    out->size = get64(p + 8);
    out->block_size = get64(p + 16);
    if (out->block_size < S3S__CACHE_BS_MIN || out->block_size > S3S__CACHE_BS_MAX)
        return s3s__err_set(eb, S3S_ECORRUPT,
                            "cache entry file: block size %llu out of range at offset 16",
                            (unsigned long long)out->block_size);
    if (out->size / out->block_size >= UINT32_MAX)
        return s3s__err_set(eb, S3S_ECORRUPT, "cache entry file: object size too large");
    out->bucket = (const char *)p + META_HDR;
    out->bucket_len = bl;
    out->key = out->bucket + bl;
    out->key_len = kl;
    out->etag = out->key + kl;
    out->etag_len = el;
    return 0;
}

void s3s__cache_trailer_encode(uint8_t out[S3S__CACHE_TRAILER], const s3s__cache_trailer *t)
{
    if (t->skip == 0) {
        memcpy(out, block_magic, 8);
        memcpy(out + 8, t->hbin8, 8);
    } else {
        memcpy(out, part_magic, 8);
        memcpy(out + 8, t->hbin8, 4);
        put32(out + 12, t->skip);
    }
    put32(out + 16, t->idx);
    put32(out + 20, t->len);
    put32(out + 24, t->crc);
    put32(out + 28, s3s__cache_crc32c(0, out, 28));
}

int s3s__cache_trailer_decode(const uint8_t in[S3S__CACHE_TRAILER], s3s__cache_trailer *out,
                              s3s__errbuf *eb)
{
    int part = memcmp(in, part_magic, 8) == 0;
    if (!part && memcmp(in, block_magic, 8) != 0)
        return s3s__err_set(eb, S3S_ECORRUPT, "cache block trailer: bad magic");
    if (get32(in + 28) != s3s__cache_crc32c(0, in, 28))
        return s3s__err_set(eb, S3S_ECORRUPT, "cache block trailer: CRC mismatch");
    memset(out->hbin8, 0, 8);
    memcpy(out->hbin8, in + 8, part ? 4 : 8);
    out->skip = part ? get32(in + 12) : 0;
    out->idx = get32(in + 16);
    out->len = get32(in + 20);
    out->crc = get32(in + 24);
    if (part && (out->skip == 0 || out->skip >= out->len))
        return s3s__err_set(eb, S3S_ECORRUPT,
                            "cache block trailer: partial block skips %u of its %u bytes",
                            out->skip, out->len);
    return 0;
}
