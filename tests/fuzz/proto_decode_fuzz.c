/* proto_decode_fuzz.c: libFuzzer target for the protocol decoder.
 *
 * Every input is decoded with and without a shared secret. Whatever decodes is
 * encoded again and must decode again to the same type: the codec accepts
 * nothing it cannot reproduce. Seeds: tests/fuzz/corpus/proto_decode_fuzz/
 * (written by msg_test with S3SHARD_WRITE_CORPUS=DIR). */
#include "common/proto/msg.h"
#include "s3shard/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static const uint8_t SECRET[] = "correct horse battery staple";

static void one(const uint8_t *data, size_t size, const s3s__proto_cfg *cfg)
{
    s3s__msg m;
    s3s__errbuf eb;
    if (s3s__msg_decode(&m, data, size, cfg, &eb) != 0) {
        if (m.arena != NULL)
            abort();
        return;
    }
    s3s__buf b;
    s3s__buf_init(&b, S3S_PROTO_MAX_MSG_DEFAULT);
    if (s3s__msg_encode(&b, &m, cfg, &eb) != 0) {
        fprintf(stderr, "re-encode failed: %s\n", eb.msg);
        abort();
    }
    s3s__msg m2;
    if (s3s__msg_decode(&m2, b.data, b.len, cfg, &eb) != 0 || m2.type != m.type ||
        m2.seq != m.seq || m2.sender != m.sender)
        abort();
    s3s__msg_fini(&m2);
    s3s__buf_fini(&b);
    s3s__msg_fini(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s3s__proto_cfg plain = {.max_msg = 1 << 20};
    s3s__proto_cfg keyed = {.secret = SECRET, .secret_len = sizeof SECRET - 1, .max_msg = 1 << 20};
    one(data, size, &plain);
    one(data, size, &keyed);
    return 0;
}
