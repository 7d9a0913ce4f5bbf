/* sched.c: the scheduler's operations. Each operation validates its input,
 * decides, and expresses every change as an event passed through emit():
 * apply_event() then the caller's journal callback. Replay calls apply_event()
 * alone, so live and replayed state cannot drift apart. Time only drives
 * decisions (expiry); it is never part of the durable state. */
#include "coordinator/sched_impl.h"

#include <stdlib.h>
#include <string.h>

#include "s3shard/error.h"

void s3s__sched_opts_init(s3s__sched_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->dist = S3S__DIST_DYNAMIC;
    o->world_size = 1;
    o->max_inflight = 2;
    o->lease_ttl_ms = 30000;
    o->cache_window = 64;
    o->equal_steps = S3S__EQUAL_OFF;
}

int s3s__sched_create(s3s__sched **out, const s3s__sched_opts *opts, s3s__sched_event_fn events,
                      void *ctx, s3s__errbuf *eb)
{
    s3s__sched_opts o;
    if (opts == NULL)
        s3s__sched_opts_init(&o);
    else
        o = *opts;
    *out = NULL;
    if (o.world_size == 0 || o.world_size > 65536)
        return s3s__err_set(eb, S3S_EINVAL, "sched: world_size %u out of 1..65536", o.world_size);
    if (o.dist > S3S__DIST_DYNAMIC)
        return s3s__err_set(eb, S3S_EINVAL, "sched: unknown distribution %d", (int)o.dist);
    if (o.equal_steps > S3S__EQUAL_PAD)
        return s3s__err_set(eb, S3S_EINVAL, "sched: unknown equal-steps mode %d",
                            (int)o.equal_steps);
    if (o.max_inflight == 0)
        o.max_inflight = 2;
    if (o.max_inflight > S3S__SCHED_MAX_INFLIGHT)
        return s3s__err_set(eb, S3S_EINVAL, "sched: max_inflight %u > %d", o.max_inflight,
                            S3S__SCHED_MAX_INFLIGHT);
    if (o.lease_ttl_ms == 0)
        o.lease_ttl_ms = 30000;
    if (o.max_workers == 0)
        o.max_workers = 16 * o.world_size + 1024;
    if (o.max_cache_ids == 0)
        o.max_cache_ids = 1u << 20;

    s3s__sched *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return S3S_ENOMEM;
    s->o = o;
    s->events = events;
    s->ctx = ctx;
    s->next_token = 1;
    s->next_due = UINT64_MAX;
    s3s__ledger_init(&s->ledger);
    s->ranks = calloc(o.world_size, sizeof(*s->ranks));
    s->rank_worker = malloc(o.world_size * sizeof(*s->rank_worker));
    s->whash_cap = 64;
    while (s->whash_cap < 2 * (size_t)o.max_workers)
        s->whash_cap *= 2;
    s->whash = malloc(s->whash_cap * sizeof(*s->whash));
    if (s->ranks == NULL || s->rank_worker == NULL || s->whash == NULL) {
        s3s__sched_destroy(s);
        return S3S_ENOMEM;
    }
    for (uint32_t r = 0; r < o.world_size; r++)
        s->rank_worker[r] = S3S__NONE;
    for (size_t i = 0; i < s->whash_cap; i++)
        s->whash[i] = S3S__NONE;
    *out = s;
    return 0;
}

void s3s__sched_destroy(s3s__sched *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; i < s->nworkers; i++)
        free(s->workers[i].cache);
    free(s->workers);
    for (uint32_t l = 0; l < s->nlanes; l++)
        free(s->lanes[l].tails);
    free(s->lanes);
    free(s->leases);
    free(s->shards);
    free(s->lane_pos);
    free(s->taken);
    free(s->ranks);
    free(s->rank_worker);
    free(s->whash);
    s3s__ledger_fini(&s->ledger);
    free(s);
}

/* ---- small helpers ---------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint32_t s3s__sched_worker_find(const s3s__sched *s, uint64_t wid)
{
    size_t mask = s->whash_cap - 1;
    for (size_t i = mix64(wid) & mask;; i = (i + 1) & mask) {
        uint32_t slot = s->whash[i];
        if (slot == S3S__NONE)
            return S3S__NONE;
        if (s->workers[slot].wid == wid)
            return slot;
    }
}

/* The hash maps a worker id to its latest slot: a new slot for the same id
 * overwrites the old mapping. */
void s3s__sched_worker_index(s3s__sched *s, uint64_t wid, uint32_t slot)
{
    size_t mask = s->whash_cap - 1;
    for (size_t i = mix64(wid) & mask;; i = (i + 1) & mask) {
        uint32_t cur = s->whash[i];
        if (cur == S3S__NONE || s->workers[cur].wid == wid) {
            s->whash[i] = slot;
            return;
        }
    }
}

static uint64_t bloom_bit(uint64_t h)
{
    return (h >> 40) % (S3S__BLOOM_WORDS * 64);
}

static int cache_has(const s3s__sched_worker *w, uint64_t id)
{
    if (w->cache_n == 0)
        return 0;
    uint64_t h = mix64(id), b = bloom_bit(h);
    if (!((w->bloom[b / 64] >> (b % 64)) & 1))
        return 0;
    size_t mask = w->cache_cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (w->cache[i] == S3S__CACHE_EMPTY)
            return 0;
        if (w->cache[i] == id)
            return 1;
    }
}

static int cache_insert(s3s__sched *s, s3s__sched_worker *w, uint64_t id)
{
    if (id == S3S__CACHE_EMPTY || cache_has(w, id))
        return 0;
    if (w->cache_n >= s->o.max_cache_ids)
        return S3S_ETOOBIG;
    if ((w->cache_n + 1) * 2 > w->cache_cap) {
        size_t nc = w->cache_cap ? w->cache_cap * 2 : 64;
        uint64_t *nv = malloc(nc * sizeof(*nv));
        if (nv == NULL)
            return S3S_ENOMEM;
        for (size_t i = 0; i < nc; i++)
            nv[i] = S3S__CACHE_EMPTY;
        for (size_t i = 0; i < w->cache_cap; i++) {
            if (w->cache[i] == S3S__CACHE_EMPTY)
                continue;
            size_t j = mix64(w->cache[i]) & (nc - 1);
            while (nv[j] != S3S__CACHE_EMPTY)
                j = (j + 1) & (nc - 1);
            nv[j] = w->cache[i];
        }
        free(w->cache);
        w->cache = nv;
        w->cache_cap = nc;
    }
    size_t j = mix64(id) & (w->cache_cap - 1);
    while (w->cache[j] != S3S__CACHE_EMPTY)
        j = (j + 1) & (w->cache_cap - 1);
    w->cache[j] = id;
    w->cache_n++;
    uint64_t b = bloom_bit(mix64(id));
    w->bloom[b / 64] |= 1ULL << (b % 64);
    return 0;
}

/* Applies then journals one event. Only an applied event reaches the journal,
 * and a failed apply leaves the state unchanged, so the journal and the state
 * agree even when memory runs out. An operation only builds events that fit
 * the state, so anything but S3S_ENOMEM here is a broken invariant, counted. */
static int emit(s3s__sched *s, s3s__sched_event *ev)
{
    ev->epoch = s->epoch;
    int rc = s3s__sched_apply_event(s, ev, NULL, NULL);
    if (rc != 0) {
        if (rc != S3S_ENOMEM)
            s->apply_failures++;
        return rc;
    }
    if (s->events != NULL)
        s->events(s->ctx, ev);
    return 0;
}

static void renew(s3s__sched *s, s3s__sched_worker *w, uint64_t now)
{
    w->last_seen = now;
    for (uint32_t i = 0; i < w->nleases; i++)
        s->leases[w->lz[i]].expiry = now + s->o.lease_ttl_ms;
    if (w->nleases > 0 && now + s->o.lease_ttl_ms < s->next_due)
        s->next_due = now + s->o.lease_ttl_ms;
}

static int expire_worker_leases(s3s__sched *s, uint32_t slot, uint32_t reason)
{
    s3s__sched_worker *w = &s->workers[slot];
    while (w->nleases > 0) {
        s3s__sched_lease *le = &s->leases[w->lz[0]];
        s3s__sched_event ev = {0};
        ev.type = S3S__EV_EXPIRE;
        ev.reason = reason;
        ev.slot = slot;
        ev.token = le->token;
        int rc = emit(s, &ev);
        if (rc != 0)
            return rc; /* the lease stays live; a later call retries */
    }
    return 0;
}

static int equal_complete(const s3s__sched *s)
{
    return s->ranks_full == s->o.world_size && s->active == 0;
}

static void check_complete(s3s__sched *s)
{
    if (!s->running)
        return;
    int done = s->o.equal_steps != S3S__EQUAL_OFF ? equal_complete(s) : s->open == 0;
    if (done) {
        s3s__sched_event ev = {0};
        ev.type = S3S__EV_EPOCH_DONE;
        (void)emit(s, &ev); /* on ENOMEM the next call tries again */
    }
}

void s3s__sched_tick(s3s__sched *s, uint64_t now)
{
    if (now < s->next_due)
        return;
    uint64_t due = UINT64_MAX;
    for (uint32_t i = 0; i < s->nworkers; i++) {
        s3s__sched_worker *w = &s->workers[i];
        if (w->nleases == 0)
            continue;
        uint64_t d = w->last_seen + s->o.lease_ttl_ms;
        if (d <= now && expire_worker_leases(s, i, S3S__WHY_TTL) != 0)
            due = now; /* out of memory: try again on the next call */
        else if (d > now && d < due)
            due = d;
    }
    s->next_due = due;
    check_complete(s);
}

void s3s__sched_recover(s3s__sched *s, uint64_t now)
{
    for (uint32_t i = 0; i < s->nworkers; i++) {
        s->workers[i].last_seen = now;
        expire_worker_leases(s, i, S3S__WHY_RESTART);
    }
    s->next_due = UINT64_MAX;
    check_complete(s);
}

/* ---- epochs ----------------------------------------------------------- */

int s3s__sched_epoch_begin(s3s__sched *s, uint64_t epoch, const s3s__sched_order *order,
                           s3s__errbuf *eb)
{
    if (s->running)
        return s3s__err_set(eb, S3S_EBUSY, "sched: epoch %llu is still running",
                            (unsigned long long)s->epoch);
    if (s->began && epoch <= s->epoch)
        return s3s__err_set(eb, S3S_EINVAL, "sched: epoch %llu after epoch %llu",
                            (unsigned long long)epoch, (unsigned long long)s->epoch);
    s3s__sched_event ev = {0};
    ev.type = S3S__EV_EPOCH_BEGIN;
    ev.epoch = epoch;
    ev.quota = UINT64_MAX;
    int rc = s3s__sched_apply_event(s, &ev, order, eb);
    if (rc != 0)
        return rc;
    ev.quota = s->quota;
    if (s->events != NULL)
        s->events(s->ctx, &ev);
    check_complete(s);
    return 0;
}

/* ---- workers ---------------------------------------------------------- */

static int retire(s3s__sched *s, uint32_t slot, uint32_t reason)
{
    int rc = expire_worker_leases(s, slot, reason);
    if (rc != 0)
        return rc;
    s3s__sched_event ev = {0};
    ev.type = reason == S3S__WHY_DRAIN ? S3S__EV_DRAIN : S3S__EV_LEAVE;
    ev.reason = reason;
    ev.slot = slot;
    return emit(s, &ev);
}

int s3s__sched_hello(s3s__sched *s, uint64_t wid, uint32_t rank, uint32_t inc, uint64_t now)
{
    if (rank >= s->o.world_size)
        return S3S_EINVAL;
    s3s__sched_tick(s, now);
    uint32_t old = s3s__sched_worker_find(s, wid);
    if (old != S3S__NONE && s->workers[old].state == S3S__W_LIVE) {
        s3s__sched_worker *w = &s->workers[old];
        if (inc < w->inc)
            return S3S_ESTALE;
        if (inc == w->inc && rank == w->rank) {
            renew(s, w, now);
            return 0;
        }
    }
    /* Another process claiming a live worker's rank: it wins with an equal or
     * higher incarnation, or when the holder has been silent for the TTL (a
     * replacement node whose incarnation counter started again). A lower
     * incarnation against a holder that still talks is a zombie: refused, so
     * the two cannot push each other out in turn. */
    uint32_t other = s->rank_worker[rank];
    if (other != S3S__NONE && other != old && inc < s->workers[other].inc &&
        now < s->workers[other].last_seen + s->o.lease_ttl_ms)
        return S3S_ESTALE;
    if (s->nworkers >= s->o.max_workers)
        return S3S_ETOOBIG;
    int rc = 0;
    if (old != S3S__NONE && s->workers[old].state == S3S__W_LIVE)
        rc = retire(s, old, S3S__WHY_REPLACED);
    if (rc == 0 && other != S3S__NONE && other != old && s->workers[other].state == S3S__W_LIVE)
        rc = retire(s, other, S3S__WHY_REPLACED);
    s3s__sched_event ev = {0};
    ev.type = S3S__EV_JOIN;
    ev.worker_id = wid;
    ev.rank = rank;
    ev.incarnation = inc;
    ev.slot = s->nworkers;
    if (rc == 0)
        rc = emit(s, &ev);
    if (rc != 0)
        return rc;
    s->workers[s->nworkers - 1].last_seen = now;
    check_complete(s);
    return 0;
}

static s3s__sched_worker *live_worker(s3s__sched *s, uint64_t wid, uint32_t *out_slot)
{
    uint32_t slot = s3s__sched_worker_find(s, wid);
    if (slot == S3S__NONE || s->workers[slot].state != S3S__W_LIVE)
        return NULL;
    *out_slot = slot;
    return &s->workers[slot];
}

int s3s__sched_cache_set(s3s__sched *s, uint64_t wid, const uint64_t *ids, size_t n, int replace)
{
    uint32_t slot;
    s3s__sched_worker *w = live_worker(s, wid, &slot);
    if (w == NULL)
        return S3S_ENOTFOUND;
    if (replace) {
        for (size_t i = 0; i < w->cache_cap; i++)
            w->cache[i] = S3S__CACHE_EMPTY;
        w->cache_n = 0;
        memset(w->bloom, 0, sizeof(w->bloom));
    }
    for (size_t i = 0; i < n; i++) {
        int rc = cache_insert(s, w, ids[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void reply_flags(s3s__sched *s, s3s__sched_worker *w, s3s__sched_reply *reply)
{
    if (reply == NULL)
        return;
    reply->flags = 0;
    reply->epoch = s->epoch;
    reply->ngrants = 0;
    if (s->began && (!w->seen_valid || w->seen_epoch != s->epoch)) {
        reply->flags |= S3S__REPLY_NEW_EPOCH;
        w->seen_epoch = s->epoch;
        w->seen_valid = 1;
    }
    if (s->began && !s->running)
        reply->flags |= S3S__REPLY_EPOCH_DONE;
    if (s->finished)
        reply->flags |= S3S__REPLY_STOP;
    if (w->ask_drain)
        reply->flags |= S3S__REPLY_DRAIN;
}

int s3s__sched_heartbeat(s3s__sched *s, uint64_t wid, uint64_t now, s3s__sched_reply *reply)
{
    s3s__sched_tick(s, now);
    uint32_t slot;
    s3s__sched_worker *w = live_worker(s, wid, &slot);
    if (w == NULL)
        return S3S_ENOTFOUND;
    renew(s, w, now);
    reply_flags(s, w, reply);
    return 0;
}

int s3s__sched_drain(s3s__sched *s, uint64_t wid, uint64_t now)
{
    s3s__sched_tick(s, now);
    uint32_t slot;
    if (live_worker(s, wid, &slot) == NULL)
        return S3S_ENOTFOUND;
    int rc = retire(s, slot, S3S__WHY_DRAIN);
    check_complete(s);
    return rc;
}

int s3s__sched_bye(s3s__sched *s, uint64_t wid, uint64_t now)
{
    s3s__sched_tick(s, now);
    uint32_t slot;
    if (live_worker(s, wid, &slot) == NULL)
        return S3S_ENOTFOUND;
    int rc = retire(s, slot, S3S__WHY_BYE);
    check_complete(s);
    return rc;
}

int s3s__sched_ask_drain(s3s__sched *s, uint64_t wid)
{
    uint32_t slot;
    s3s__sched_worker *w = live_worker(s, wid, &slot);
    if (w == NULL)
        return S3S_ENOTFOUND;
    w->ask_drain = 1;
    return 0;
}

void s3s__sched_finish(s3s__sched *s)
{
    s->finished = 1;
}

/* ---- grants ----------------------------------------------------------- */

static uint64_t lane_of(const s3s__sched *s, uint32_t rank)
{
    return s->o.dist == S3S__DIST_DYNAMIC ? 0 : rank;
}

/* Picks the next piece of lane l for worker w; returns 0 when there is none.
 * Tails first (the oldest work), preferring one the worker caches among the
 * oldest cache_window; then fresh shards from the cursor, preferring a cached
 * one within cache_window positions of the cursor; then padding. */
static int pick(s3s__sched *s, s3s__sched_worker *w, uint32_t l, uint64_t quota_left,
                s3s__sched_event *ev)
{
    s3s__sched_lane *ln = &s->lanes[l];
    uint32_t win = s->o.cache_window;
    int use_cache = win > 0 && w->cache_n > 0;
    if (ln->ntails > 0) {
        size_t pick_i = ln->ntails - 1; /* the front is the end of the array */
        if (use_cache) {
            for (size_t k = 0; k < ln->ntails && k < win; k++) {
                size_t i = ln->ntails - 1 - k;
                if (cache_has(w, s->shards[ln->tails[i].pos].id)) {
                    pick_i = i;
                    s->cache_hits++;
                    break;
                }
            }
        }
        const s3s__sched_piece *p = &ln->tails[pick_i];
        ev->pos = p->pos;
        ev->start = p->start;
        ev->end = p->end;
        ev->rec_start = p->rec_start;
        ev->rec_end = p->rec_end;
    } else if (ln->untaken > 0) {
        uint32_t idx = ln->cursor;
        if (use_cache && s->taken != NULL) {
            for (uint32_t i = ln->cursor; i < ln->len && i - ln->cursor < win; i++) {
                uint32_t p = s3s__lane_seq(s, ln, i);
                if (!s3s__taken_get(s, p) && cache_has(w, s->shards[p].id)) {
                    idx = i;
                    s->cache_hits++;
                    break;
                }
            }
        }
        uint32_t p = s3s__lane_seq(s, ln, idx);
        ev->pos = p;
        ev->start = 0;
        ev->end = s->shards[p].size;
        ev->rec_start = 0;
        ev->rec_end = s3s__shard_samples(&s->shards[p]);
    } else if (s->o.equal_steps == S3S__EQUAL_PAD && ln->pad_assigned < ln->pad_budget &&
               s->nshards > 0) {
        uint32_t p;
        if (ln->len > 0)
            p = s3s__lane_seq(s, ln, (uint32_t)(ln->pad_cursor % ln->len));
        else
            p = (uint32_t)(ln->pad_cursor % s->nshards);
        ev->pos = p;
        ev->pad = 1;
        ev->start = 0;
        ev->end = s->shards[p].size;
        ev->rec_start = 0;
        ev->rec_end = s3s__shard_samples(&s->shards[p]);
        uint64_t left = ln->pad_budget - ln->pad_assigned;
        if (quota_left > left)
            quota_left = left;
    } else {
        return 0;
    }
    uint64_t n = ev->rec_end - ev->rec_start;
    ev->cap = n < quota_left ? n : quota_left;
    ev->lane = l;
    return 1;
}

int s3s__sched_request(s3s__sched *s, uint64_t wid, size_t want, uint64_t now,
                       s3s__sched_grant *out, size_t cap, s3s__sched_reply *reply)
{
    s3s__sched_tick(s, now);
    uint32_t slot;
    s3s__sched_worker *w = live_worker(s, wid, &slot);
    if (w == NULL)
        return S3S_ENOTFOUND;
    renew(s, w, now);
    reply_flags(s, w, reply);
    size_t n = 0;
    int rc = 0;
    if (want > cap)
        want = cap;
    while (s->running && n < want && w->nleases < s->o.max_inflight && !w->ask_drain &&
           !s->finished) {
        uint64_t quota_left = UINT64_MAX;
        if (s->o.equal_steps != S3S__EQUAL_OFF) {
            s3s__sched_rank *rk = &s->ranks[w->rank];
            quota_left = s->quota - rk->samples_assigned;
            if (quota_left == 0)
                break;
        }
        s3s__sched_event ev = {0};
        if (!pick(s, w, (uint32_t)lane_of(s, w->rank), quota_left, &ev))
            break;
        ev.type = S3S__EV_GRANT;
        ev.slot = slot;
        ev.rank = w->rank;
        ev.token = s->next_token;
        if (emit(s, &ev) != 0) {
            rc = S3S_ENOMEM;
            break;
        }
        s3s__sched_lease *le = &s->leases[w->lz[w->nleases - 1]];
        le->expiry = now + s->o.lease_ttl_ms;
        if (le->expiry < s->next_due)
            s->next_due = le->expiry;
        s3s__sched_grant *g = &out[n++];
        g->epoch = s->epoch;
        g->shard_id = s->shards[ev.pos].id;
        g->pos = ev.pos;
        g->pad = ev.pad;
        g->start = ev.start;
        g->end = ev.end;
        g->rec_start = ev.rec_start;
        g->rec_end = ev.rec_end;
        g->cap = ev.cap;
        g->token = ev.token;
        g->expiry_ms = le->expiry;
    }
    if (reply != NULL) {
        reply->ngrants = n;
        if (n == 0 && !s->finished)
            reply->flags |= S3S__REPLY_WAIT;
    }
    return rc;
}

/* ---- progress --------------------------------------------------------- */

/* Validates a commit of lease `token` of worker wid up to (offset, records)
 * and fills the event; returns 0, S3S_ESTALE or S3S_EINVAL. */
static int check_commit(s3s__sched *s, uint64_t wid, uint64_t token, uint64_t offset,
                        uint64_t records, uint64_t now, int closing, s3s__sched_event *ev)
{
    s3s__sched_tick(s, now);
    uint32_t slot;
    s3s__sched_worker *w = live_worker(s, wid, &slot);
    uint32_t li = w != NULL ? s3s__sched_lease_find(s, w, token) : S3S__NONE;
    if (li == S3S__NONE) {
        s->stale_refusals++;
        return S3S_ESTALE;
    }
    renew(s, w, now);
    const s3s__sched_lease *le = &s->leases[li];
    const s3s__sched_shard *sh = &s->shards[le->pos];
    if (offset < le->committed || offset > le->end)
        return S3S_EINVAL;
    if (sh->records == 0) {
        records = offset == sh->size ? 1 : 0;
    } else if (records < le->rec_committed || records > le->rec_end ||
               (records == le->rec_end && offset != le->end)) {
        /* Both counters only move forward, and all records read means all
         * bytes read. Records may advance without bytes: a pack can hold
         * empty objects. */
        return S3S_EINVAL;
    }
    if (records - le->rec_start > le->cap)
        return S3S_EINVAL;
    /* done: the whole piece, or exactly the sample cap (equal steps). */
    if (closing && records != le->rec_end && records - le->rec_start != le->cap)
        return S3S_EINVAL;
    ev->slot = slot;
    ev->rank = w->rank;
    ev->token = token;
    ev->offset = offset;
    ev->records = records;
    return 0;
}

int s3s__sched_progress(s3s__sched *s, uint64_t wid, uint64_t token, uint64_t offset,
                        uint64_t records, uint64_t now)
{
    s3s__sched_event ev = {0};
    int rc = check_commit(s, wid, token, offset, records, now, 0, &ev);
    if (rc != 0)
        return rc;
    uint32_t li = s3s__sched_lease_find(s, &s->workers[ev.slot], token);
    if (offset == s->leases[li].committed && ev.records == s->leases[li].rec_committed)
        return 0; /* a repeat: nothing new to make durable */
    ev.type = S3S__EV_COMMIT;
    rc = emit(s, &ev);
    if (rc != 0)
        return rc;
    s->ranks[ev.rank].last_commit_ms = now;
    check_complete(s);
    return 0;
}

int s3s__sched_done(s3s__sched *s, uint64_t wid, uint64_t token, uint64_t offset, uint64_t records,
                    uint64_t now)
{
    s3s__sched_event ev = {0};
    int rc = check_commit(s, wid, token, offset, records, now, 1, &ev);
    if (rc != 0)
        return rc;
    ev.type = S3S__EV_DONE;
    rc = emit(s, &ev);
    if (rc != 0)
        return rc;
    s->ranks[ev.rank].last_commit_ms = now;
    check_complete(s);
    return 0;
}
