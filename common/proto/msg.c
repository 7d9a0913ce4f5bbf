/* msg.c: what encoding and decoding share: names, init/fini, the HMAC, limits.
 * Encoding is in msg_encode.c, decoding in msg_decode.c (see msg.h and
 * docs/protocol.md). */
#include "common/proto/msg_int.h"

#include "s3shard/error.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
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

int s3s__proto_hmac(const s3s__proto_cfg *cfg, const uint8_t *p, size_t n,
                    uint8_t out[S3S_PROTO_HMAC_LEN])
{
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
