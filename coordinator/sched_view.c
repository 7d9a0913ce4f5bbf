/* sched_view.c: read-only views of the scheduler: the replay digest, status
 * counters, and the coverage ledger (walk for export, exactly-once proof). */
#include "coordinator/sched_impl.h"

#include <stdlib.h>
#include <string.h>

#include "s3shard/error.h"

/* FNV-1a over integer values (never over structs: padding bytes differ). */
static uint64_t h64(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xff;
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t s3s__sched_digest(const s3s__sched *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = h64(h, s->epoch);
    h = h64(h, (uint64_t)s->began << 1 | (uint64_t)s->running);
    h = h64(h, s->quota);
    h = h64(h, s->next_token);
    h = h64(h, s->nshards);
    h = h64(h, s->open);
    h = h64(h, s->active);
    for (size_t i = 0; s->taken != NULL && i < s->nshards / 8 + 1; i++)
        h = h64(h, s->taken[i]);
    for (uint32_t l = 0; l < s->nlanes; l++) {
        const s3s__sched_lane *ln = &s->lanes[l];
        h = h64(h, ln->cursor);
        h = h64(h, ln->untaken);
        h = h64(h, ln->pad_budget);
        h = h64(h, ln->pad_assigned);
        h = h64(h, ln->pad_cursor);
        h = h64(h, ln->ntails);
        for (size_t i = 0; i < ln->ntails; i++) {
            h = h64(h, ln->tails[i].pos);
            h = h64(h, ln->tails[i].start);
            h = h64(h, ln->tails[i].end);
            h = h64(h, ln->tails[i].rec_start);
            h = h64(h, ln->tails[i].rec_end);
        }
    }
    h = h64(h, s->nworkers);
    for (uint32_t i = 0; i < s->nworkers; i++) {
        const s3s__sched_worker *w = &s->workers[i];
        h = h64(h, w->wid);
        h = h64(h, (uint64_t)w->rank << 32 | w->inc);
        h = h64(h, (uint64_t)w->state);
        h = h64(h, w->nleases);
        for (uint32_t k = 0; k < w->nleases; k++) {
            const s3s__sched_lease *le = &s->leases[w->lz[k]];
            h = h64(h, le->token);
            h = h64(h, (uint64_t)le->lane << 32 | le->pos);
            h = h64(h, le->pad);
            h = h64(h, le->start);
            h = h64(h, le->end);
            h = h64(h, le->committed);
            h = h64(h, le->rec_start);
            h = h64(h, le->rec_end);
            h = h64(h, le->rec_committed);
            h = h64(h, le->cap);
        }
    }
    for (uint32_t r = 0; r < s->o.world_size; r++) {
        h = h64(h, s->ranks[r].bytes_committed);
        h = h64(h, s->ranks[r].samples_committed);
        h = h64(h, s->ranks[r].samples_assigned);
        h = h64(h, s->ranks[r].live_leases);
        h = h64(h, s->rank_worker[r]);
    }
    h = h64(h, s->ranks_full);
    h = h64(h, s->ledger.n);
    for (size_t i = 0; i < s->ledger.n; i++) {
        const s3s__ledger_entry *e = &s->ledger.v[i];
        h = h64(h, e->start);
        h = h64(h, e->end);
        h = h64(h, e->token);
        h = h64(h, (uint64_t)e->pos << 32 | e->who);
    }
    uint64_t c[] = {s->shards_total,  s->shards_done,   s->bytes_total,    s->bytes_committed,
                    s->bytes_dropped, s->samples_total, s->reissued_tails, s->reissued_bytes,
                    s->split_tails,   s->pad_samples,   s->drains,         s->grants};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        h = h64(h, c[i]);
    return h;
}

void s3s__sched_stats_get(const s3s__sched *s, s3s__sched_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->epoch = s->epoch;
    out->epoch_running = s->running;
    out->shards_total = s->shards_total;
    out->shards_done = s->shards_done;
    out->bytes_total = s->bytes_total;
    out->bytes_committed = s->bytes_committed;
    out->bytes_dropped = s->bytes_dropped;
    out->samples_total = s->samples_total;
    out->quota = s->quota;
    out->active_leases = s->active;
    out->reissued_tails = s->reissued_tails;
    out->reissued_bytes = s->reissued_bytes;
    out->split_tails = s->split_tails;
    out->pad_samples = s->pad_samples;
    out->drains = s->drains;
    out->stale_refusals = s->stale_refusals;
    out->cache_hits = s->cache_hits;
    out->grants = s->grants;
    out->internal_errors = s->apply_failures;
    for (uint32_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].state == S3S__W_LIVE)
            out->workers_live++;
}

int s3s__sched_rank_stats_get(const s3s__sched *s, uint32_t rank, s3s__sched_rank_stats *out)
{
    if (rank >= s->o.world_size)
        return S3S_EINVAL;
    const s3s__sched_rank *rk = &s->ranks[rank];
    out->bytes_committed = rk->bytes_committed;
    out->samples_committed = rk->samples_committed;
    out->samples_assigned = rk->samples_assigned;
    out->last_commit_ms = rk->last_commit_ms;
    out->live_leases = rk->live_leases;
    return 0;
}

static uint32_t entry_lane(const s3s__sched *s, const s3s__ledger_entry *e)
{
    if (e->who & S3S__LEDGER_DROPPED)
        return e->who & ~S3S__LEDGER_DROPPED;
    return s->o.dist == S3S__DIST_DYNAMIC ? 0 : s->workers[e->who].rank;
}

int s3s__sched_ledger_walk(const s3s__sched *s, int (*fn)(void *ctx, const s3s__ledger_row *row),
                           void *ctx)
{
    for (size_t i = 0; i < s->ledger.n; i++) {
        const s3s__ledger_entry *e = &s->ledger.v[i];
        s3s__ledger_row row;
        memset(&row, 0, sizeof(row));
        row.epoch = s->epoch;
        row.shard_id = s->shards[e->pos].id;
        row.pos = e->pos;
        row.lane = entry_lane(s, e);
        row.start = e->start;
        row.end = e->end;
        row.dropped = (e->who & S3S__LEDGER_DROPPED) != 0;
        if (!row.dropped) {
            const s3s__sched_worker *w = &s->workers[e->who];
            row.worker_id = w->wid;
            row.rank = w->rank;
            row.incarnation = w->inc;
            row.token = e->token;
        }
        int rc = fn(ctx, &row);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int s3s__sched_ledger_verify(const s3s__sched *s, int complete, s3s__errbuf *eb)
{
    size_t n = s->ledger.n;
    s3s__ledger_key *k = malloc((n ? n : 1) * sizeof(*k));
    if (k == NULL)
        return S3S_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const s3s__ledger_entry *e = &s->ledger.v[i];
        k[i].lane = entry_lane(s, e);
        k[i].pos = e->pos;
        k[i].start = e->start;
        k[i].end = e->end;
    }
    s3s__ledger_sort_keys(k, n);
    int rc = 0;
    size_t j = 0;
    for (uint32_t l = 0; l < s->nlanes && rc == 0; l++) {
        const s3s__sched_lane *ln = &s->lanes[l];
        /* Lane sequences are ascending positions, like the sorted keys. */
        for (uint32_t i = 0; i < ln->len && rc == 0; i++) {
            uint32_t p = s3s__lane_seq(s, ln, i);
            if (j < n && k[j].lane == l && k[j].pos < p) {
                rc = s3s__err_set(eb, S3S_ECORRUPT, "ledger: lane %u has shard %u not of its own",
                                  l, k[j].pos);
                break;
            }
            uint64_t next = 0;
            for (; j < n && k[j].lane == l && k[j].pos == p; j++) {
                if (k[j].start != next) {
                    rc = s3s__err_set(eb, S3S_ECORRUPT, "ledger: lane %u shard %u: %s at byte %llu",
                                      l, p, k[j].start < next ? "overlap" : "gap",
                                      (unsigned long long)k[j].start);
                    break;
                }
                next = k[j].end;
            }
            if (rc == 0 && complete && next != s->shards[p].size)
                rc = s3s__err_set(eb, S3S_ECORRUPT,
                                  "ledger: lane %u shard %u covered to %llu of %llu bytes", l, p,
                                  (unsigned long long)next, (unsigned long long)s->shards[p].size);
            if (rc == 0 && next > s->shards[p].size)
                rc = s3s__err_set(eb, S3S_ECORRUPT, "ledger: lane %u shard %u past its end", l, p);
        }
        if (rc == 0 && j < n && k[j].lane == l)
            rc = s3s__err_set(eb, S3S_ECORRUPT, "ledger: lane %u has stray shard %u", l, k[j].pos);
    }
    if (rc == 0 && j < n)
        rc = s3s__err_set(eb, S3S_ECORRUPT, "ledger: entry for unknown lane %u", k[j].lane);
    free(k);
    return rc;
}

void s3s__sched_memory(const s3s__sched *s, size_t *shard_bytes, size_t *ledger_bytes)
{
    size_t b = s->shards_alloc * sizeof(*s->shards) + s->nlanes * sizeof(*s->lanes);
    if (s->lane_pos != NULL)
        b += s->nshards * sizeof(*s->lane_pos);
    if (s->taken != NULL)
        b += s->nshards / 8 + 1;
    for (uint32_t l = 0; l < s->nlanes; l++)
        b += s->lanes[l].tails_alloc * sizeof(*s->lanes[l].tails);
    *shard_bytes = b;
    *ledger_bytes = s->ledger.alloc * sizeof(*s->ledger.v);
}

#define BAD(...) s3s__err_set(eb, S3S_ECORRUPT, __VA_ARGS__)

int s3s__sched_audit(const s3s__sched *s, s3s__errbuf *eb)
{
    uint32_t R = s->o.world_size;
    uint64_t active = 0;
    uint64_t *assigned = calloc(R, sizeof(*assigned));
    uint32_t *live = calloc(R, sizeof(*live));
    uint64_t *pad = calloc(s->nlanes ? s->nlanes : 1, sizeof(*pad));
    int rc = 0;
    if (assigned == NULL || live == NULL || pad == NULL) {
        rc = S3S_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < s->nworkers && rc == 0; i++) {
        const s3s__sched_worker *w = &s->workers[i];
        if (w->nleases > s->o.max_inflight || (w->nleases > 0 && w->state != S3S__W_LIVE)) {
            rc = BAD("audit: worker slot %u holds %u leases in state %d", i, w->nleases, w->state);
            break;
        }
        for (uint32_t k = 0; k < w->nleases; k++) {
            const s3s__sched_lease *le = &s->leases[w->lz[k]];
            uint64_t lane = s->o.dist == S3S__DIST_DYNAMIC ? 0 : w->rank;
            if (le->token == 0 || le->token >= s->next_token || le->slot != i || le->lane != lane ||
                le->committed < le->start || le->committed > le->end ||
                le->cap > le->rec_end - le->rec_start || le->rec_committed < le->rec_start ||
                le->rec_committed - le->rec_start > le->cap || le->end > s->shards[le->pos].size) {
                rc = BAD("audit: lease token %llu of slot %u is inconsistent",
                         (unsigned long long)le->token, i);
                break;
            }
            uint64_t rest = le->cap - (le->rec_committed - le->rec_start);
            assigned[w->rank] += rest;
            live[w->rank]++;
            if (le->pad)
                pad[le->lane] += rest;
            active++;
        }
    }
    if (rc == 0 && active != s->active)
        rc = BAD("audit: %llu live leases, counter says %llu", (unsigned long long)active,
                 (unsigned long long)s->active);
    uint32_t full = 0;
    for (uint32_t r = 0; r < R && rc == 0; r++) {
        const s3s__sched_rank *rk = &s->ranks[r];
        if (rk->samples_assigned != rk->samples_committed + assigned[r] ||
            rk->live_leases != live[r])
            rc = BAD("audit: rank %u assigned %llu, committed %llu + in flight %llu", r,
                     (unsigned long long)rk->samples_assigned,
                     (unsigned long long)rk->samples_committed, (unsigned long long)assigned[r]);
        else if (s->o.equal_steps != S3S__EQUAL_OFF && rk->samples_assigned > s->quota)
            rc = BAD("audit: rank %u assigned %llu samples over the quota %llu", r,
                     (unsigned long long)rk->samples_assigned, (unsigned long long)s->quota);
        if (s->o.equal_steps != S3S__EQUAL_OFF && rk->samples_committed >= s->quota)
            full++;
    }
    if (rc == 0 && s->o.equal_steps != S3S__EQUAL_OFF && s->began && full != s->ranks_full)
        rc = BAD("audit: %u ranks at the quota, counter says %u", full, s->ranks_full);
    uint64_t open = active, pad_sum = 0, pad_flight = 0;
    for (uint32_t l = 0; l < s->nlanes && rc == 0; l++) {
        const s3s__sched_lane *ln = &s->lanes[l];
        uint32_t untaken = 0;
        for (uint32_t i = 0; i < ln->len; i++) {
            uint32_t p = s3s__lane_seq(s, ln, i);
            int taken = s->taken != NULL ? s3s__taken_get(s, p) : i < ln->cursor;
            if (i < ln->cursor && !taken) {
                rc = BAD("audit: lane %u shard %u behind the cursor but never granted", l, p);
                break;
            }
            untaken += !taken;
        }
        if (rc == 0 && untaken != ln->untaken)
            rc = BAD("audit: lane %u has %u untaken shards, counter says %u", l, untaken,
                     ln->untaken);
        pad_sum += ln->pad_assigned;
        pad_flight += pad[l];
        if (rc == 0 && ln->pad_assigned > ln->pad_budget)
            rc = BAD("audit: lane %u padding over its budget", l);
        open += ln->untaken + ln->ntails;
    }
    /* pad_assigned = padding committed + padding in flight (the budget use). */
    if (rc == 0 && pad_sum != s->pad_samples + pad_flight)
        rc = BAD("audit: padding assigned %llu, committed %llu + in flight %llu",
                 (unsigned long long)pad_sum, (unsigned long long)s->pad_samples,
                 (unsigned long long)pad_flight);
    if (rc == 0 && open != s->open)
        rc = BAD("audit: %llu open pieces, counter says %llu", (unsigned long long)open,
                 (unsigned long long)s->open);
out:
    free(assigned);
    free(live);
    free(pad);
    return rc;
}

int s3s__sched_compact(const s3s__sched *s, s3s__sched_event_fn fn, void *ctx)
{
    if (!s->running || s->grants != 0 || s->active != 0 || s->ledger.n != 0)
        return S3S_EBUSY;
    s3s__sched_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = S3S__EV_RESTORE;
    ev.epoch = s->epoch;
    ev.token = s->next_token;
    ev.records = s->drains;
    fn(ctx, &ev);
    /* The epoch first: its begin drops departed workers, and the workers
     * registered since come after it, in slot order. */
    memset(&ev, 0, sizeof(ev));
    ev.type = S3S__EV_EPOCH_BEGIN;
    ev.epoch = s->epoch;
    ev.quota = s->quota;
    fn(ctx, &ev);
    for (uint32_t i = 0; i < s->nworkers; i++) {
        memset(&ev, 0, sizeof(ev));
        ev.type = S3S__EV_JOIN;
        ev.epoch = s->epoch;
        ev.slot = i;
        ev.worker_id = s->workers[i].wid;
        ev.rank = s->workers[i].rank;
        ev.incarnation = s->workers[i].inc;
        fn(ctx, &ev);
        if (s->workers[i].state != S3S__W_LIVE) {
            ev.type = S3S__EV_LEAVE;
            ev.reason = s->workers[i].state == S3S__W_DRAINED ? S3S__WHY_DRAIN : S3S__WHY_BYE;
            fn(ctx, &ev);
        }
    }
    return 0;
}

int s3s__sched_leases_walk(const s3s__sched *s, int (*fn)(void *ctx, const s3s__lease_row *row),
                           void *ctx)
{
    for (uint32_t i = 0; i < s->nworkers; i++) {
        const s3s__sched_worker *w = &s->workers[i];
        for (uint32_t k = 0; k < w->nleases; k++) {
            const s3s__sched_lease *le = &s->leases[w->lz[k]];
            s3s__lease_row row;
            memset(&row, 0, sizeof(row));
            row.worker_id = w->wid;
            row.rank = w->rank;
            row.pad = le->pad;
            row.shard_id = s->shards[le->pos].id;
            row.pos = le->pos;
            row.lane = le->lane;
            row.start = le->start;
            row.committed = le->committed;
            row.end = le->end;
            row.token = le->token;
            row.expiry_ms = le->expiry;
            int rc = fn(ctx, &row);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}
