/* proto_bench.c: protocol codec speed: encode and decode per second for the
 * messages the coordinator sees most (lease, grant, progress with 16 items),
 * without the HMAC, with OpenSSL's one-shot HMAC() and with the precomputed
 * key (s3s__proto_key). Peer, measured in the same run on the same
 * bytes: msgpack-c's own msgpack_unpack_next, which builds a generic object
 * tree and checks nothing (and trusts every length): the ratio is what our
 * bounded, validated decoding costs against it.
 *
 *   proto_bench [SECONDS-PER-ROW]   (default 1) */
#include "common/proto/msg.h"
#include "s3shard/error.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const uint8_t SECRET[] = "bench secret, 32 bytes long.....";

static void build(s3s__msg *m, uint32_t type, s3s__msg_prog *items, s3s__msg_lease_grant *g)
{
    s3s__msg_init(m, type, type == S3S_MSG_GRANT ? 0 : 0x1234567890abcdefull, 123456);
    switch (type) {
    case S3S_MSG_LEASE:
        strcpy(m->u.lease.channel, "train");
        m->u.lease.epoch = 3;
        m->u.lease.max_shards = 2;
        break;
    case S3S_MSG_GRANT:
        strcpy(m->u.grant.channel, "train");
        m->u.grant.epoch = 3;
        m->u.grant.n = 2;
        for (int k = 0; k < 2; k++)
            g[k] = (s3s__msg_lease_grant){.shard = 1000000u + (uint64_t)k,
                                          .start = 0,
                                          .end = 64u << 20,
                                          .token = 987654321u + (uint64_t)k,
                                          .ttl_ms = 30000};
        m->u.grant.grants = g;
        break;
    case S3S_MSG_PROGRESS:
        m->u.progress.n = 16;
        for (int k = 0; k < 16; k++)
            items[k] = (s3s__msg_prog){.shard = 1000000u + (uint64_t)k,
                                       .token = 987654321u + (uint64_t)k,
                                       .offset = (uint64_t)k << 22,
                                       .done = k == 15};
        m->u.progress.items = items;
        break;
    }
}

static s3s__proto_key *KEY;

/* hmac: 0 none, 1 one-shot HMAC() with the secret, 2 the precomputed key */
static void row(uint32_t type, int hmac, double secs)
{
    s3s__msg m;
    s3s__msg_prog items[16];
    s3s__msg_lease_grant g[2];
    build(&m, type, items, g);
    s3s__proto_cfg cfg = {0};
    if (hmac == 1) {
        cfg.secret = SECRET;
        cfg.secret_len = sizeof SECRET - 1;
    } else if (hmac == 2) {
        cfg.key = KEY;
    }
    s3s__buf b;
    s3s__buf_init(&b, S3S_PROTO_MAX_MSG_DEFAULT);
    s3s__errbuf eb;
    long n = 0;
    double t0 = now(), t;
    do {
        for (int k = 0; k < 1000; k++) {
            s3s__buf_reset(&b);
            if (s3s__msg_encode(&b, &m, &cfg, &eb) != 0) {
                fprintf(stderr, "proto_bench: %s\n", eb.msg);
                exit(1);
            }
        }
        n += 1000;
        t = now();
    } while (t - t0 < secs);
    double enc = (double)n / (t - t0);
    n = 0;
    t0 = now();
    do {
        for (int k = 0; k < 1000; k++) {
            s3s__msg d;
            if (s3s__msg_decode(&d, b.data, b.len, &cfg, &eb) != 0) {
                fprintf(stderr, "proto_bench: %s\n", eb.msg);
                exit(1);
            }
            s3s__msg_fini(&d);
        }
        n += 1000;
        t = now();
    } while (t - t0 < secs);
    double dec = (double)n / (t - t0);
    /* the peer: msgpack-c's generic unpacker on the same bytes */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    n = 0;
    t0 = now();
    do {
        for (int k = 0; k < 1000; k++) {
            size_t off = 0;
            if (msgpack_unpack_next(&up, b.data, b.len, &off) != MSGPACK_UNPACK_SUCCESS) {
                fprintf(stderr, "proto_bench: msgpack_unpack_next failed\n");
                exit(1);
            }
        }
        n += 1000;
        t = now();
    } while (t - t0 < secs);
    msgpack_unpacked_destroy(&up);
    double peer = (double)n / (t - t0);
    char name[48];
    snprintf(name, sizeof name, "%s%s", s3s__msg_type_name(type),
             hmac == 1       ? "+hmac"
                 : hmac == 2 ? "+hmac(key)"
                             : "");
    printf("%-18s %6zu %12.0f %12.0f %14.0f %8.2f\n", name, b.len, enc, dec, peer, dec / peer);
    s3s__buf_fini(&b);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    printf("proto_bench: %.1f s per measurement, one thread\n", secs);
    printf("%-18s %6s %12s %12s %14s %8s\n", "message", "bytes", "encode/s", "decode/s",
           "msgpack-c/s", "ratio");
    uint32_t types[] = {S3S_MSG_LEASE, S3S_MSG_GRANT, S3S_MSG_PROGRESS};
    if (s3s__proto_key_create(&KEY, SECRET, sizeof SECRET - 1) != 0)
        return 1;
    for (int h = 0; h < 3; h++)
        for (size_t k = 0; k < sizeof types / sizeof *types; k++)
            row(types[k], h, secs);
    s3s__proto_key_destroy(KEY);
    return 0;
}
