/* sched_fixture.h: what the scheduler's unit tests share: a journal that
 * records every event, and a fixture with one channel of equal shards. Include
 * after <cmocka.h>. Functions are static inline so each test uses what it needs. */
#ifndef S3S_TEST_SCHED_FIXTURE_H
#define S3S_TEST_SCHED_FIXTURE_H

#include "coordinator/sched.h"

#include <string.h>

/* A journal: every event the scheduler emits, in order. */
typedef struct journal {
    s3s__sched_event ev[4096];
    size_t n;
} journal;

static inline void on_event(void *ctx, const s3s__sched_event *ev)
{
    journal *j = ctx;
    assert_true(j->n < sizeof(j->ev) / sizeof(j->ev[0]));
    j->ev[j->n++] = *ev;
}

static inline size_t count_type(const journal *j, uint32_t type)
{
    size_t c = 0;
    for (size_t i = 0; i < j->n; i++)
        c += j->ev[i].type == type;
    return c;
}

typedef struct fixture {
    s3s__sched *s;
    journal j;
    s3s__sched_shard shards[64];
    size_t n;
    s3s__sched_order order;
} fixture;

static inline void fx_make(fixture *f, s3s__dist dist, uint32_t world, size_t n, uint64_t size,
                           uint32_t records)
{
    memset(f, 0, sizeof(*f));
    s3s__sched_opts o;
    s3s__sched_opts_init(&o);
    o.dist = dist;
    o.world_size = world;
    o.lease_ttl_ms = 1000;
    assert_int_equal(s3s__sched_create(&f->s, &o, on_event, &f->j, NULL), 0);
    f->n = n;
    for (size_t i = 0; i < n; i++) {
        f->shards[i].id = 100 + i;
        f->shards[i].size = size;
        f->shards[i].records = records;
    }
    f->order.shards = f->shards;
    f->order.n = n;
}

static inline void fx_begin(fixture *f, uint64_t epoch)
{
    assert_int_equal(s3s__sched_epoch_begin(f->s, epoch, &f->order, NULL), 0);
}

static inline s3s__sched_grant grant1(fixture *f, uint64_t wid, uint64_t now)
{
    s3s__sched_grant g[1];
    s3s__sched_reply r;
    assert_int_equal(s3s__sched_request(f->s, wid, 1, now, g, 1, &r), 0);
    assert_int_equal(r.ngrants, 1);
    return g[0];
}

#endif
