/* msg_int.h: what the protocol codec's files (msg.c, msg_encode.c,
 * msg_decode.c) share. Not for use outside common/proto/. */
#ifndef S3S_PROTO_MSG_INT_H
#define S3S_PROTO_MSG_INT_H

#include "common/proto/msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Body field ids shared by every reply (commands). */
enum { S3S_F_CMD = 100, S3S_F_CMD_EPOCH = 101, S3S_F_CMD_CHANNEL = 102, S3S_F_KEY_MAX = 127 };

/* s3s__proto_valid_channel: [A-Za-z0-9._-]{1,64}. */
bool s3s__proto_valid_channel(const char *s, size_t n);
/* s3s__proto_printable: no control characters. */
bool s3s__proto_printable(const char *s, size_t n);
/* s3s__proto_signed: cfg has a secret or a key: messages carry an HMAC. */
bool s3s__proto_signed(const s3s__proto_cfg *cfg);
/* s3s__proto_hmac computes HMAC-SHA256 with cfg's key, else its secret. Returns 0 or S3S_ENOMEM. */
int s3s__proto_hmac(const s3s__proto_cfg *cfg, const uint8_t *p, size_t n,
                    uint8_t out[S3S_PROTO_HMAC_LEN]);
/* s3s__proto_cfg_max is the configured size limit, clamped to [MIN_MSG, MAX_MSG_LIMIT]. */
size_t s3s__proto_cfg_max(const s3s__proto_cfg *cfg);
/* s3s__proto_arena_free frees a decoded message's arena. NULL-safe. */
void s3s__proto_arena_free(void *arena);

#endif
