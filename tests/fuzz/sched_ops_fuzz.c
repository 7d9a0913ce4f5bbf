/* sched_ops_fuzz.c: arbitrary sequences of worker operations.
 *
 * The first bytes choose a world; every following 4 bytes are one operation
 * (hello, cache report, request, progress, done, heartbeat, drain, bye, time
 * passing, coordinator restart, next epoch) by one of 4 workers, with
 * arguments taken from the leases it was granted. Properties: nothing
 * crashes; the invariant audit passes after every operation; the ledger never
 * shows an overlap or a gap; a replay of the journal reproduces the state. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/sched.h"
#include "s3shard/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct jr {
    s3s__sched_event ev[4096];
    size_t n;
    int full;
} jr;

static void on_event(void *ctx, const s3s__sched_event *ev)
{
    jr *j = ctx;
    if (j->n < sizeof(j->ev) / sizeof(j->ev[0]))
        j->ev[j->n++] = *ev;
    else
        j->full = 1;
}

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
    o.cache_window = data[2] & 0x80 ? 4 : 0;
    o.lease_ttl_ms = 100;
    o.max_workers = 64;
    size_t n = data[3] % 12;
    data += 4;
    size -= 4;
    s3s__sched_shard sh[12];
    uint32_t own[12];
    for (size_t i = 0; i < n; i++) {
        sh[i].id = 100 + i;
        sh[i].size = (i * 37) % 50;
        sh[i].records = (uint32_t)(i % 4);
        sh[i].aux_ = 0;
        own[i] = (uint32_t)((i * 7) % o.world_size);
    }
    s3s__sched_order ord = {sh, n, own, NULL, NULL};
    jr *j = calloc(1, sizeof(*j));
    s3s__sched *s = NULL;
    if (j == NULL || s3s__sched_create(&s, &o, on_event, j, NULL) != 0) {
        free(j);
        return 0;
    }
    uint64_t epoch = 0, now = 0;
    s3s__sched_epoch_begin(s, epoch, &ord, NULL);
    s3s__sched_grant held[4][8];
    size_t nheld[4] = {0};
    uint32_t inc[4] = {1, 1, 1, 1};
    for (; size >= 4 && !j->full; data += 4, size -= 4) {
        uint32_t w = data[0] % 4;
        uint64_t wid = 10 + w;
        uint32_t arg = data[2] | (uint32_t)data[3] << 8;
        s3s__sched_grant g[4];
        s3s__sched_reply rep;
        switch (data[1] % 12) {
        case 0:
            if (data[2] & 1)
                inc[w]++;
            s3s__sched_hello(s, wid, w % o.world_size, inc[w], now);
            break;
        case 1: {
            uint64_t ids[3] = {100 + arg % 12, 100 + (arg >> 4) % 12, 100 + (arg >> 8) % 12};
            s3s__sched_cache_set(s, wid, ids, 3, arg & 1);
            break;
        }
        case 2:
        case 3:
            if (s3s__sched_request(s, wid, 1 + arg % 3, now, g, 4, &rep) == 0) {
                for (size_t k = 0; k < rep.ngrants && nheld[w] < 8; k++)
                    held[w][nheld[w]++] = g[k];
            }
            break;
        case 4:
        case 5:
        case 6: {
            if (nheld[w] == 0)
                break;
            size_t k = arg % nheld[w];
            const s3s__sched_grant *x = &held[w][k];
            uint64_t span = x->end - x->start + 1;
            uint64_t off = x->start + (arg >> 3) % span;
            uint64_t rec = x->rec_start + (arg >> 6) % (x->cap + 1);
            if (data[1] % 12 == 6) {
                int fin = arg & 1;
                if (fin) {
                    off = x->end;
                    rec = x->rec_end;
                }
                s3s__sched_done(s, wid, x->token, off, rec, now);
                held[w][k] = held[w][--nheld[w]];
            } else {
                s3s__sched_progress(s, wid, x->token, off, rec, now);
            }
            break;
        }
        case 7:
            s3s__sched_heartbeat(s, wid, now, &rep);
            break;
        case 8:
            if (arg & 1)
                s3s__sched_drain(s, wid, now);
            else
                s3s__sched_bye(s, wid, now);
            nheld[w] = 0;
            break;
        case 9:
            now += arg % 150;
            s3s__sched_tick(s, now);
            break;
        case 10: {
            /* The coordinator restarts: replay, compare, recover. */
            s3s__sched *r = NULL;
            if (s3s__sched_create(&r, &o, on_event, j, NULL) != 0)
                break;
            for (size_t i = 0; i < j->n; i++)
                if (s3s__sched_apply(r, &j->ev[i], &ord, NULL) != 0)
                    abort();
            if (s3s__sched_digest(r) != s3s__sched_digest(s))
                abort();
            s3s__sched_destroy(s);
            s = r;
            s3s__sched_recover(s, now);
            break;
        }
        case 11: {
            s3s__sched_stats st;
            s3s__sched_stats_get(s, &st);
            if (!st.epoch_running) {
                if (s3s__sched_ledger_verify(s, 1, NULL) != 0)
                    abort();
                s3s__sched_epoch_begin(s, ++epoch, &ord, NULL);
                /* Compact the journal at the boundary, as the coordinator does. */
                jr *c = calloc(1, sizeof(*c));
                if (c != NULL && s3s__sched_compact(s, on_event, c) == 0) {
                    memcpy(j->ev, c->ev, c->n * sizeof(c->ev[0]));
                    j->n = c->n;
                }
                free(c);
            }
            break;
        }
        }
        s3s__errbuf eb;
        if (s3s__sched_audit(s, &eb) != 0 || s3s__sched_ledger_verify(s, 0, &eb) != 0)
            abort();
    }
    s3s__sched_destroy(s);
    free(j);
    return 0;
}
