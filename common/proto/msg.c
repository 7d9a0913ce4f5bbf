/* msg.c: what encoding and decoding share: names, init/fini, the HMAC, limits.
 * Encoding is in msg_encode.c, decoding in msg_decode.c (see msg.h and
 * docs/protocol.md). */
#include "common/proto/msg_int.h"

#include "s3shard/error.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

static const char *const type_names[S3S_MSG_TYPE_MAX_] = {
    [S3S_MSG_HELLO] = "hello",
    [S3S_MSG_WELCOME] = "welcome",
    [S3S_MSG_LEASE] = "lease",
    [S3S_MSG_GRANT] = "grant",
    [S3S_MSG_PROGRESS] = "progress",
    [S3S_MSG_PROGRESS_ACK] = "progress_ack",
    [S3S_MSG_HEARTBEAT] = "heartbeat",
    [S3S_MSG_HEARTBEAT_ACK] = "heartbeat_ack",
    [S3S_MSG_DRAIN] = "drain",
    [S3S_MSG_DRAIN_ACK] = "drain_ack",
    [S3S_MSG_STATUS] = "status",
    [S3S_MSG_STATUS_REPLY] = "status_reply",
    [S3S_MSG_BYE] = "bye",
    [S3S_MSG_BYE_ACK] = "bye_ack",
    [S3S_MSG_ERROR] = "error",
};

const char *s3s__msg_type_name(uint32_t type)
{
    if (type == 0 || type >= S3S_MSG_TYPE_MAX_)
        return "unknown";
    return type_names[type];
}

bool s3s__msg_is_request(uint32_t type)
{
    return type == S3S_MSG_HELLO || type == S3S_MSG_LEASE || type == S3S_MSG_PROGRESS ||
        type == S3S_MSG_HEARTBEAT || type == S3S_MSG_DRAIN || type == S3S_MSG_STATUS ||
        type == S3S_MSG_BYE;
}

void s3s__msg_init(s3s__msg *m, uint32_t type, uint64_t sender, uint64_t seq)
{
    memset(m, 0, sizeof *m);
    m->version = S3S_PROTO_VERSION;
    m->type = type;
    m->sender = sender;
    m->seq = seq;
}

void s3s__msg_fini(s3s__msg *m)
{
    if (m == NULL)
        return;
    s3s__proto_arena_free(m->arena);
    m->arena = NULL;
}

bool s3s__proto_valid_channel(const char *s, size_t n)
{
    if (n < 1 || n > S3S_PROTO_CHANNEL_MAX)
        return false;
    for (size_t k = 0; k < n; k++) {
        char c = s[k];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

bool s3s__proto_printable(const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f)
            return false;
    return true;
}

/* ---- HMAC ---- */

/* A precomputed key: SHA-256 contexts already fed with K0^ipad and K0^opad
 * (RFC 2104), so each message costs two context copies and two short hashes
 * instead of OpenSSL 3's HMAC() fetching its algorithm on every call. */
struct s3s__proto_key {
    EVP_MD_CTX *inner, *outer;
};

void s3s__proto_key_destroy(s3s__proto_key *k)
{
    if (k == NULL)
        return;
    EVP_MD_CTX_free(k->inner);
    EVP_MD_CTX_free(k->outer);
    free(k);
}

int s3s__proto_key_create(s3s__proto_key **out, const uint8_t *secret, size_t len)
{
    *out = NULL;
    uint8_t k0[64] = {0}, pad[64];
    unsigned int hl = 0;
    if (len > sizeof k0) {
        if (EVP_Digest(secret, len, k0, &hl, EVP_sha256(), NULL) != 1)
            return S3S_ENOMEM;
    } else if (len > 0) {
        memcpy(k0, secret, len);
    }
    s3s__proto_key *k = calloc(1, sizeof *k);
    int rc = S3S_ENOMEM;
    if (k == NULL || (k->inner = EVP_MD_CTX_new()) == NULL || (k->outer = EVP_MD_CTX_new()) == NULL)
        goto out;
    for (int i = 0; i < 64; i++)
        pad[i] = k0[i] ^ 0x36;
    if (EVP_DigestInit_ex(k->inner, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(k->inner, pad, sizeof pad) != 1)
        goto out;
    for (int i = 0; i < 64; i++)
        pad[i] = k0[i] ^ 0x5c;
    if (EVP_DigestInit_ex(k->outer, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(k->outer, pad, sizeof pad) != 1)
        goto out;
    *out = k;
    k = NULL;
    rc = 0;
out:
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(pad, sizeof pad);
    s3s__proto_key_destroy(k);
    return rc;
}

static int hmac_with_key(const s3s__proto_key *k, const uint8_t *p, size_t n,
                         uint8_t out[S3S_PROTO_HMAC_LEN])
{
    uint8_t ih[32];
    unsigned int l1 = 0, l2 = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c != NULL && EVP_MD_CTX_copy_ex(c, k->inner) == 1 && EVP_DigestUpdate(c, p, n) == 1 &&
        EVP_DigestFinal_ex(c, ih, &l1) == 1 && EVP_MD_CTX_copy_ex(c, k->outer) == 1 &&
        EVP_DigestUpdate(c, ih, sizeof ih) == 1 && EVP_DigestFinal_ex(c, out, &l2) == 1 &&
        l2 == S3S_PROTO_HMAC_LEN;
    EVP_MD_CTX_free(c);
    return ok ? 0 : S3S_ENOMEM;
}

bool s3s__proto_signed(const s3s__proto_cfg *cfg)
{
    return cfg != NULL && (cfg->secret != NULL || cfg->key != NULL);
}

int s3s__proto_hmac(const s3s__proto_cfg *cfg, const uint8_t *p, size_t n,
                    uint8_t out[S3S_PROTO_HMAC_LEN])
{
    if (cfg->key != NULL)
        return hmac_with_key(cfg->key, p, n, out);
    unsigned int olen = 0;
    if (HMAC(EVP_sha256(), cfg->secret, (int)cfg->secret_len, p, n, out, &olen) == NULL ||
        olen != S3S_PROTO_HMAC_LEN)
        return S3S_ENOMEM;
    return 0;
}

/* cfg_max is the configured size limit, clamped to [MIN, LIMIT]. */
size_t s3s__proto_cfg_max(const s3s__proto_cfg *cfg)
{
    size_t max = cfg && cfg->max_msg ? cfg->max_msg : S3S_PROTO_MAX_MSG_DEFAULT;
    if (max < S3S_PROTO_MIN_MSG)
        max = S3S_PROTO_MIN_MSG;
    return max > S3S_PROTO_MAX_MSG_LIMIT ? S3S_PROTO_MAX_MSG_LIMIT : max;
}
