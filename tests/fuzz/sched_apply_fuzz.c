/* sched_apply_fuzz.c: journal replay with arbitrary events.
 *
 * The first bytes choose a world (distribution, equal steps, ranks, a small
 * epoch order); every following 16 bytes are one event with small field values
 * so that many of them fit the state. Properties: apply never crashes; a
 * refused event leaves the durable state unchanged (same digest); after every
 * event the invariant audit passes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/sched.h"
#include "s3shard/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    s3s__sched_opts o;
    s3s__sched_opts_init(&o);
    o.dist = (s3s__dist)(data[0] % 3);
    o.equal_steps = (s3s__equal)((data[0] / 3) % 3);
    o.world_size = 1 + data[1] % 4;
    o.max_inflight = 1 + data[2] % 3;
    o.max_workers = 8;
    size_t n = data[3] % 8;
    data += 4;
    size -= 4;
    s3s__sched_shard sh[8];
    uint32_t own[8];
    for (size_t i = 0; i < n; i++) {
        sh[i].id = 100 + i;
        sh[i].size = (i * 37) % 50;
        sh[i].records = (uint32_t)(i % 3);
        sh[i].aux_ = 0;
        own[i] = (uint32_t)(i % o.world_size);
    }
    s3s__sched_order ord = {sh, n, own, NULL, NULL};
    s3s__sched *s = NULL;
    if (s3s__sched_create(&s, &o, NULL, NULL, NULL) != 0)
        return 0;
    for (; size >= 16; data += 16, size -= 16) {
        s3s__sched_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = 1 + data[0] % 10;
        ev.reason = data[1] % 6;
        ev.epoch = data[2] % 3;
        ev.worker_id = data[3] % 4;
        ev.slot = data[4] % 9;
        ev.rank = data[5] % 5;
        ev.incarnation = data[6] % 3;
        ev.lane = data[7] % 5;
        ev.token = data[8] % 16;
        ev.pos = data[9] % 9;
        ev.pad = data[10] & 1;
        ev.start = data[11] % 60;
        ev.end = data[12] % 60;
        ev.rec_start = data[13] % 4;
        ev.rec_end = data[14] % 4;
        ev.cap = data[15] % 4;
        ev.offset = (uint64_t)(data[11] ^ data[12]) % 60;
        ev.records = (uint64_t)(data[13] ^ data[14]) % 4;
        ev.quota = data[1] & 0x80 ? UINT64_MAX : (uint64_t)(data[15] % 16);
        uint64_t before = s3s__sched_digest(s);
        s3s__errbuf eb;
        int rc = s3s__sched_apply(s, &ev, &ord, &eb);
        if (rc != 0 && rc != S3S_ENOMEM && s3s__sched_digest(s) != before)
            abort(); /* a refused event changed the state */
        if (s3s__sched_audit(s, &eb) != 0)
            abort();
    }
    s3s__sched_destroy(s);
    return 0;
}
