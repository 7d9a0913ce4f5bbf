/* sched_state.c: how each event changes the scheduler's state, and the
 * read-only views of that state (digest, stats, ledger). Live operations and
 * journal replay both go through s3s__sched_apply_event, so they cannot
 * disagree. Events are checked against the state before anything changes:
 * a journal from another job is refused with S3S_EPROTO, not half-applied. */
#include "coordinator/sched_impl.h"

#include <stdlib.h>
#include <string.h>

#include "s3shard/error.h"

#define PROTO(eb, ...) s3s__err_set(eb, S3S_EPROTO, __VA_ARGS__)

static uint32_t lane_for_rank(const s3s__sched *s, uint32_t rank)
{
    return s->o.dist == S3S__DIST_DYNAMIC ? 0 : rank;
}

/* ---- epoch begin ------------------------------------------------------ */

/* At an epoch boundary no lease is live and the ledger is about to be reset,
 * so nothing refers to departed workers any more: drop them and renumber the
 * live ones in order. This keeps max_workers a bound per epoch rather than
 * per job (every Spot restart costs a slot). Deterministic, so replay agrees. */
static void compact_workers(s3s__sched *s)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->nworkers; i++) {
        if (s->workers[i].state != S3S__W_LIVE) {
            free(s->workers[i].cache);
            continue;
        }
        if (k != i)
            s->workers[k] = s->workers[i];
        k++;
    }
    s->nworkers = k;
    for (size_t i = 0; i < s->whash_cap; i++)
        s->whash[i] = S3S__NONE;
    for (uint32_t r = 0; r < s->o.world_size; r++)
        s->rank_worker[r] = S3S__NONE;
    for (uint32_t i = 0; i < k; i++) {
        s3s__sched_worker_index(s, s->workers[i].wid, i);
        s->rank_worker[s->workers[i].rank] = i;
    }
}

static int build_epoch(s3s__sched *s, const s3s__sched_order *ord, uint64_t expect_quota,
                       s3s__errbuf *eb)
{
    uint32_t R = s->o.world_size;
    if (ord == NULL)
        return s3s__err_set(eb, S3S_EINVAL, "sched: epoch begin needs the epoch order");
    if (ord->n > 0 && ord->shards == NULL)
        return s3s__err_set(eb, S3S_EINVAL, "sched: order has %zu shards but no array", ord->n);
    if (ord->n >= UINT32_MAX)
        return s3s__err_set(eb, S3S_EINVAL, "sched: %zu shards, at most %u", ord->n,
                            UINT32_MAX - 1);
    int sharded = s->o.dist == S3S__DIST_SHARDED_BY_S3KEY;
    if (sharded && ord->owner == NULL && ord->owner_fn == NULL)
        return s3s__err_set(eb, S3S_EINVAL, "sched: ShardedByS3Key needs owner or owner_fn");
    uint32_t nl = s->o.dist == S3S__DIST_DYNAMIC ? 1 : R;
    size_t n = ord->n;

    /* Allocate everything first so a failure leaves the state untouched. */
    s3s__sched_shard *sh = s->shards;
    if (n > s->shards_alloc) {
        sh = malloc(n * sizeof(*sh));
        if (sh == NULL)
            return S3S_ENOMEM;
    }
    uint32_t *lp = NULL;
    uint8_t *tk = NULL;
    s3s__sched_lane *lanes = calloc(nl, sizeof(*lanes));
    if (sharded && n > 0)
        lp = malloc(n * sizeof(*lp));
    if (s->o.dist != S3S__DIST_FULLY_REPLICATED)
        tk = calloc(n / 8 + 1, 1);
    if (lanes == NULL || (sharded && n > 0 && lp == NULL) ||
        (s->o.dist != S3S__DIST_FULLY_REPLICATED && tk == NULL)) {
        if (sh != s->shards)
            free(sh);
        free(lp);
        free(tk);
        free(lanes);
        return S3S_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t own = 0;
        if (sharded) {
            own = ord->owner ? ord->owner[i] : ord->owner_fn(ord->owner_ctx, i, ord->shards[i].id);
            if (own >= R) {
                if (sh != s->shards)
                    free(sh);
                free(lp);
                free(tk);
                free(lanes);
                return s3s__err_set(eb, S3S_EINVAL, "sched: shard %zu owner %u >= world size %u", i,
                                    own, R);
            }
        }
        lanes[own].len++;
        lanes[own].samples_total += s3s__shard_samples(&ord->shards[i]);
    }
    uint64_t samples = lanes[0].samples_total, bytes = 0;
    for (uint32_t l = 1; sharded && l < nl; l++)
        samples += lanes[l].samples_total;
    for (uint32_t l = 0; l < nl; l++) {
        if (s->o.dist == S3S__DIST_FULLY_REPLICATED)
            lanes[l].samples_total = samples;
        lanes[l].nranks = s->o.dist == S3S__DIST_DYNAMIC ? R : 1;
    }

    /* Equal steps: one quota for every rank, fixed now (docs/scheduling.md). */
    uint64_t q = 0;
    if (s->o.equal_steps != S3S__EQUAL_OFF) {
        int pad = s->o.equal_steps == S3S__EQUAL_PAD;
        if (s->o.dist == S3S__DIST_DYNAMIC) {
            q = pad ? (samples + R - 1) / R : samples / R;
        } else {
            q = lanes[0].samples_total;
            for (uint32_t l = 1; l < nl; l++) {
                uint64_t t = lanes[l].samples_total;
                if (pad ? t > q : t < q)
                    q = t;
            }
        }
        if (pad) {
            for (uint32_t l = 0; l < nl; l++) {
                uint64_t want = (uint64_t)lanes[l].nranks * q;
                lanes[l].pad_budget =
                    want > lanes[l].samples_total ? want - lanes[l].samples_total : 0;
            }
        }
    }
    if (expect_quota != UINT64_MAX && expect_quota != q) {
        if (sh != s->shards)
            free(sh);
        free(lp);
        free(tk);
        free(lanes);
        return s3s__err_set(eb, S3S_EPROTO, "sched: epoch quota %llu, the journal says %llu",
                            (unsigned long long)q, (unsigned long long)expect_quota);
    }

    /* Commit: nothing below fails. */
    if (sh != s->shards) {
        free(s->shards);
        s->shards = sh;
        s->shards_alloc = n;
    }
    for (uint32_t l = 0; l < s->nlanes; l++)
        free(s->lanes[l].tails);
    free(s->lanes);
    free(s->lane_pos);
    free(s->taken);
    s->lanes = lanes;
    s->nlanes = nl;
    s->lane_pos = lp;
    s->taken = tk;
    s->nshards = n;

    for (size_t i = 0; i < n; i++) {
        sh[i] = ord->shards[i];
        sh[i].aux_ = sharded
            ? (ord->owner ? ord->owner[i] : ord->owner_fn(ord->owner_ctx, i, ord->shards[i].id))
            : 0;
        bytes += sh[i].size;
    }
    if (sharded) {
        uint32_t off = 0;
        for (uint32_t l = 0; l < nl; l++) {
            lanes[l].seq = lp + off;
            off += lanes[l].len;
            lanes[l].cursor = 0; /* reused below as a fill index */
        }
        for (size_t i = 0; i < n; i++) {
            s3s__sched_lane *ln = &lanes[sh[i].aux_];
            lp[(ln->seq - lp) + ln->cursor++] = (uint32_t)i;
        }
        for (uint32_t l = 0; l < nl; l++)
            lanes[l].cursor = 0;
    } else if (s->o.dist == S3S__DIST_FULLY_REPLICATED) {
        for (uint32_t l = 0; l < nl; l++)
            lanes[l].len = (uint32_t)n;
    }
    for (uint32_t l = 0; l < nl; l++)
        lanes[l].untaken = lanes[l].len;

    s->quota = q;
    s->samples_total = samples;
    s->shards_total = (uint64_t)n * (s->o.dist == S3S__DIST_FULLY_REPLICATED ? R : 1);
    s->bytes_total = bytes * (s->o.dist == S3S__DIST_FULLY_REPLICATED ? R : 1);
    s->open = s->shards_total;
    s->shards_done = s->bytes_committed = s->bytes_dropped = 0;
    s->reissued_tails = s->reissued_bytes = s->split_tails = s->pad_samples = s->grants = 0;
    s->cache_hits = 0;
    for (uint32_t r = 0; r < R; r++) {
        s->ranks[r].bytes_committed = s->ranks[r].samples_committed = 0;
        s->ranks[r].samples_assigned = 0;
    }
    s->ranks_full = s->o.equal_steps != S3S__EQUAL_OFF && q == 0 ? R : 0;
    compact_workers(s);
    s3s__ledger_reset(&s->ledger);
    /* One entry per shard is the common case; a failure here only means the
     * ledger grows by doubling later. */
    (void)s3s__ledger_reserve(&s->ledger, s->nshards);
    return 0;
}

/* ---- leases ----------------------------------------------------------- */

static int lease_alloc(s3s__sched *s, uint32_t *out)
{
    if (s->free_lease == S3S__NONE || s->nleases_alloc == 0) {
        uint32_t na = s->nleases_alloc ? s->nleases_alloc * 2 : 256;
        s3s__sched_lease *nv = realloc(s->leases, na * sizeof(*nv));
        if (nv == NULL)
            return S3S_ENOMEM;
        for (uint32_t i = s->nleases_alloc; i < na; i++) {
            nv[i].token = 0;
            nv[i].slot = i + 1 < na ? i + 1 : S3S__NONE;
        }
        s->free_lease = s->nleases_alloc;
        s->leases = nv;
        s->nleases_alloc = na;
    }
    *out = s->free_lease;
    s->free_lease = s->leases[*out].slot;
    return 0;
}

/* Room for one more tail, so closing a lease cannot fail half-way. */
static int tail_reserve(s3s__sched_lane *ln)
{
    if (ln->ntails == ln->tails_alloc) {
        size_t na = ln->tails_alloc ? ln->tails_alloc * 2 : 16;
        s3s__sched_piece *nv = realloc(ln->tails, na * sizeof(*nv));
        if (nv == NULL)
            return S3S_ENOMEM;
        ln->tails = nv;
        ln->tails_alloc = na;
    }
    return 0;
}

static int push_tail(s3s__sched_lane *ln, const s3s__sched_piece *p)
{
    int rc = tail_reserve(ln);
    if (rc != 0)
        return rc;
    ln->tails[ln->ntails++] = *p;
    return 0;
}

static int commit_to(s3s__sched *s, s3s__sched_lease *le, uint64_t offset, uint64_t records)
{
    if (offset > le->committed && !le->pad) {
        if (le->ledger_idx == SIZE_MAX) {
            int rc = s3s__ledger_add(&s->ledger, le->pos, le->slot, le->token, le->committed,
                                     offset, &le->ledger_idx);
            if (rc != 0)
                return rc;
        } else {
            s->ledger.v[le->ledger_idx].end = offset;
        }
        s->bytes_committed += offset - le->committed;
    }
    s3s__sched_rank *rk = &s->ranks[s->workers[le->slot].rank];
    uint64_t drec = records - le->rec_committed;
    rk->bytes_committed += offset - le->committed;
    if (s->o.equal_steps != S3S__EQUAL_OFF && rk->samples_committed < s->quota &&
        rk->samples_committed + drec >= s->quota)
        s->ranks_full++;
    rk->samples_committed += drec;
    if (le->pad)
        s->pad_samples += drec;
    le->committed = offset;
    le->rec_committed = records;
    return 0;
}

static int close_lease(s3s__sched *s, uint32_t li, int expired)
{
    s3s__sched_lease *le = &s->leases[li];
    s3s__sched_lane *ln = &s->lanes[le->lane];
    s3s__sched_worker *w = &s->workers[le->slot];
    uint64_t rest = le->cap - (le->rec_committed - le->rec_start);
    /* A piece is finished when its bytes and its samples are: an empty item
     * shard expired before its done still owes its one sample. */
    if (!le->pad && (le->committed < le->end || le->rec_committed < le->rec_end)) {
        s3s__sched_piece p = {le->pos, 0, le->committed, le->end, le->rec_committed, le->rec_end};
        int rc = push_tail(ln, &p);
        if (rc != 0)
            return rc;
        s->open++;
        if (expired) {
            s->reissued_tails++;
            s->reissued_bytes += le->end - le->committed;
        } else {
            s->split_tails++;
        }
    } else if (!le->pad) {
        s->shards_done++;
    }
    if (le->pad)
        ln->pad_assigned -= rest;
    s3s__sched_rank *rk = &s->ranks[w->rank];
    rk->samples_assigned -= rest;
    rk->live_leases--;
    s->active--;
    s->open--;
    for (uint32_t i = 0; i < w->nleases; i++) {
        if (w->lz[i] == li) {
            w->lz[i] = w->lz[--w->nleases];
            break;
        }
    }
    le->token = 0;
    le->slot = s->free_lease;
    s->free_lease = li;
    return 0;
}

static int apply_grant(s3s__sched *s, const s3s__sched_event *ev, s3s__errbuf *eb)
{
    if (!s->running)
        return PROTO(eb, "sched: grant of token %llu outside an epoch",
                     (unsigned long long)ev->token);
    if (ev->slot >= s->nworkers || s->workers[ev->slot].state != S3S__W_LIVE ||
        ev->lane >= s->nlanes || ev->pos >= s->nshards || ev->token < s->next_token ||
        s->workers[ev->slot].nleases >= s->o.max_inflight || ev->start > ev->end ||
        ev->end > s->shards[ev->pos].size || ev->rec_start > ev->rec_end ||
        ev->cap > ev->rec_end - ev->rec_start ||
        ev->lane != lane_for_rank(s, s->workers[ev->slot].rank))
        return PROTO(eb, "sched: grant of token %llu does not fit the state",
                     (unsigned long long)ev->token);
    s3s__sched_lane *ln = &s->lanes[ev->lane];
    if (ev->pad) {
        const s3s__sched_shard *sh = &s->shards[ev->pos];
        if (ev->start != 0 || ev->end != sh->size || ev->rec_start != 0 ||
            ev->rec_end != s3s__shard_samples(sh))
            return PROTO(eb, "sched: padding grant of token %llu is not a whole shard",
                         (unsigned long long)ev->token);
        if (ln->pad_assigned + ev->cap > ln->pad_budget)
            return PROTO(eb, "sched: padding grant past the lane's budget");
    } else {
        size_t ti = SIZE_MAX;
        for (size_t i = ln->ntails; i-- > 0;) {
            if (ln->tails[i].pos == ev->pos && ln->tails[i].start == ev->start) {
                ti = i;
                break;
            }
        }
        if (ti != SIZE_MAX) {
            const s3s__sched_piece *p = &ln->tails[ti];
            if (p->end != ev->end || p->rec_start != ev->rec_start || p->rec_end != ev->rec_end)
                return PROTO(eb, "sched: grant of token %llu does not match its tail",
                             (unsigned long long)ev->token);
        } else {
            const s3s__sched_shard *sh = &s->shards[ev->pos];
            int ok = ev->start == 0 && ln->untaken > 0 && ev->end == sh->size &&
                ev->rec_start == 0 && ev->rec_end == s3s__shard_samples(sh);
            if (ok && s->taken != NULL)
                ok = !s3s__taken_get(s, ev->pos) && s->shards[ev->pos].aux_ == ev->lane;
            else if (ok)
                ok = s3s__lane_seq(s, ln, ln->cursor) == ev->pos;
            if (!ok)
                return PROTO(eb, "sched: grant of shard %u at %llu: not in the pool", ev->pos,
                             (unsigned long long)ev->start);
        }
    }
    uint32_t li;
    if (lease_alloc(s, &li) != 0)
        return S3S_ENOMEM;
    if (ev->pad) {
        ln->pad_assigned += ev->cap;
        ln->pad_cursor++;
    } else {
        size_t ti = SIZE_MAX;
        for (size_t i = ln->ntails; i-- > 0;) {
            if (ln->tails[i].pos == ev->pos && ln->tails[i].start == ev->start) {
                ti = i;
                break;
            }
        }
        if (ti != SIZE_MAX) {
            memmove(&ln->tails[ti], &ln->tails[ti + 1], (ln->ntails - ti - 1) * sizeof(*ln->tails));
            ln->ntails--;
        } else if (s->taken != NULL) {
            s->taken[ev->pos >> 3] |= (uint8_t)(1u << (ev->pos & 7));
            ln->untaken--;
            while (ln->cursor < ln->len && s3s__taken_get(s, s3s__lane_seq(s, ln, ln->cursor)))
                ln->cursor++;
        } else {
            ln->cursor++;
            ln->untaken--;
        }
        s->open--;
    }
    s3s__sched_lease *le = &s->leases[li];
    memset(le, 0, sizeof(*le));
    le->token = ev->token;
    le->slot = ev->slot;
    le->lane = ev->lane;
    le->pos = ev->pos;
    le->pad = ev->pad ? 1 : 0;
    le->start = le->committed = ev->start;
    le->end = ev->end;
    le->rec_start = le->rec_committed = ev->rec_start;
    le->rec_end = ev->rec_end;
    le->cap = ev->cap;
    le->ledger_idx = SIZE_MAX;
    s3s__sched_worker *w = &s->workers[ev->slot];
    w->lz[w->nleases++] = li;
    s3s__sched_rank *rk = &s->ranks[w->rank];
    rk->samples_assigned += ev->cap;
    rk->live_leases++;
    s->active++;
    s->open++;
    s->grants++;
    s->next_token = ev->token + 1;
    return 0;
}

static int find_lease(const s3s__sched *s, const s3s__sched_event *ev, uint32_t *out)
{
    if (ev->slot >= s->nworkers)
        return S3S_EPROTO;
    *out = s3s__sched_lease_find(s, &s->workers[ev->slot], ev->token);
    return *out == S3S__NONE ? S3S_EPROTO : 0;
}

static int apply_commit(s3s__sched *s, const s3s__sched_event *ev, int closing, s3s__errbuf *eb)
{
    uint32_t li;
    if (find_lease(s, ev, &li) != 0)
        return PROTO(eb, "sched: commit under unknown token %llu", (unsigned long long)ev->token);
    s3s__sched_lease *le = &s->leases[li];
    if (ev->offset < le->committed || ev->offset > le->end || ev->records < le->rec_committed ||
        ev->records - le->rec_start > le->cap)
        return PROTO(eb, "sched: commit of token %llu out of range", (unsigned long long)ev->token);
    int rc = closing ? tail_reserve(&s->lanes[le->lane]) : 0;
    if (rc == 0)
        rc = commit_to(s, le, ev->offset, ev->records);
    if (rc == 0 && closing)
        rc = close_lease(s, li, 0);
    return rc;
}

/* ---- workers ---------------------------------------------------------- */

static int apply_join(s3s__sched *s, const s3s__sched_event *ev, s3s__errbuf *eb)
{
    if (ev->slot != s->nworkers || ev->rank >= s->o.world_size || s->nworkers >= s->o.max_workers)
        return PROTO(eb, "sched: join of worker slot %u does not fit (have %u)", ev->slot,
                     s->nworkers);
    if (s->nworkers == s->workers_alloc) {
        uint32_t na = s->workers_alloc ? s->workers_alloc * 2 : 16;
        s3s__sched_worker *nv = realloc(s->workers, na * sizeof(*nv));
        if (nv == NULL)
            return S3S_ENOMEM;
        s->workers = nv;
        s->workers_alloc = na;
    }
    s3s__sched_worker *w = &s->workers[s->nworkers];
    memset(w, 0, sizeof(*w));
    w->wid = ev->worker_id;
    w->rank = ev->rank;
    w->inc = ev->incarnation;
    w->state = S3S__W_LIVE;
    s->nworkers++;
    s3s__sched_worker_index(s, w->wid, ev->slot);
    s->rank_worker[w->rank] = ev->slot;
    return 0;
}

static int apply_leave(s3s__sched *s, const s3s__sched_event *ev, s3s__errbuf *eb)
{
    if (ev->slot >= s->nworkers || s->workers[ev->slot].state != S3S__W_LIVE ||
        s->workers[ev->slot].nleases != 0)
        return PROTO(eb, "sched: leave of worker slot %u does not fit", ev->slot);
    s3s__sched_worker *w = &s->workers[ev->slot];
    /* A compacted journal says "drained" with LEAVE + reason DRAIN, without
     * counting the drain again. */
    w->state =
        ev->type == S3S__EV_DRAIN || ev->reason == S3S__WHY_DRAIN ? S3S__W_DRAINED : S3S__W_GONE;
    if (s->rank_worker[w->rank] == ev->slot)
        s->rank_worker[w->rank] = S3S__NONE;
    if (ev->type == S3S__EV_DRAIN)
        s->drains++;
    return 0;
}

/* ---- epoch done ------------------------------------------------------- */

static int drop(s3s__sched *s, uint32_t lane, uint32_t pos, uint64_t start, uint64_t end)
{
    if (end <= start)
        return 0;
    s->bytes_dropped += end - start;
    return s3s__ledger_add(&s->ledger, pos, S3S__LEDGER_DROPPED | lane, 0, start, end, NULL);
}

static int apply_epoch_done(s3s__sched *s, s3s__errbuf *eb)
{
    if (!s->running || s->active != 0)
        return PROTO(eb, "sched: epoch %llu cannot end with %llu live leases",
                     (unsigned long long)s->epoch, (unsigned long long)s->active);
    size_t left = 0;
    for (uint32_t l = 0; l < s->nlanes; l++)
        left += s->lanes[l].ntails + s->lanes[l].untaken;
    if (s3s__ledger_reserve(&s->ledger, s->ledger.n + left) != 0)
        return S3S_ENOMEM; /* the drops below cannot fail half-way */
    for (uint32_t l = 0; l < s->nlanes; l++) {
        s3s__sched_lane *ln = &s->lanes[l];
        for (size_t i = 0; i < ln->ntails; i++)
            if (drop(s, l, ln->tails[i].pos, ln->tails[i].start, ln->tails[i].end) != 0)
                return S3S_ENOMEM;
        ln->ntails = 0;
        for (uint32_t i = ln->cursor; i < ln->len && ln->untaken > 0; i++) {
            uint32_t p = s3s__lane_seq(s, ln, i);
            if (s->taken != NULL && s3s__taken_get(s, p))
                continue;
            if (drop(s, l, p, 0, s->shards[p].size) != 0)
                return S3S_ENOMEM;
            if (s->taken != NULL)
                s->taken[p >> 3] |= (uint8_t)(1u << (p & 7));
        }
        ln->cursor = ln->len;
        ln->untaken = 0;
    }
    s->open = 0;
    s->running = 0;
    return 0;
}

int s3s__sched_apply_event(s3s__sched *s, const s3s__sched_event *ev, const s3s__sched_order *order,
                           s3s__errbuf *eb)
{
    switch (ev->type) {
    case S3S__EV_EPOCH_BEGIN: {
        if (s->running || (s->began && ev->epoch <= s->epoch))
            return PROTO(eb, "sched: epoch %llu cannot begin now", (unsigned long long)ev->epoch);
        /* The journaled quota must match the one this order gives (UINT64_MAX:
         * a live epoch begin, nothing to compare). */
        int rc = build_epoch(s, order, ev->quota, eb);
        if (rc != 0)
            return rc;
        s->epoch = ev->epoch;
        s->began = 1;
        s->running = 1;
        return 0;
    }
    case S3S__EV_EPOCH_DONE:
        return apply_epoch_done(s, eb);
    case S3S__EV_RESTORE:
        /* Only at the head of a compacted journal, on a fresh scheduler. */
        if (s->began || s->nworkers != 0)
            return PROTO(eb, "sched: restore record in the middle of a journal");
        s->next_token = ev->token > s->next_token ? ev->token : s->next_token;
        s->drains = ev->records;
        return 0;
    case S3S__EV_JOIN:
        return apply_join(s, ev, eb);
    case S3S__EV_LEAVE:
    case S3S__EV_DRAIN:
        return apply_leave(s, ev, eb);
    case S3S__EV_GRANT:
        return apply_grant(s, ev, eb);
    case S3S__EV_COMMIT:
        return apply_commit(s, ev, 0, eb);
    case S3S__EV_DONE:
        return apply_commit(s, ev, 1, eb);
    case S3S__EV_EXPIRE: {
        uint32_t li;
        if (find_lease(s, ev, &li) != 0)
            return PROTO(eb, "sched: expiry of unknown token %llu", (unsigned long long)ev->token);
        return close_lease(s, li, 1);
    }
    default:
        return PROTO(eb, "sched: unknown event type %u", ev->type);
    }
}

int s3s__sched_apply(s3s__sched *s, const s3s__sched_event *ev, const s3s__sched_order *order,
                     s3s__errbuf *eb)
{
    /* Events before the first epoch, and a compacted journal's head, carry
     * the number of an epoch this scheduler has not begun yet. */
    if (ev->type != S3S__EV_EPOCH_BEGIN && ev->type != S3S__EV_RESTORE && s->began &&
        ev->epoch != s->epoch)
        return PROTO(eb, "sched: event of epoch %llu during epoch %llu",
                     (unsigned long long)ev->epoch, (unsigned long long)s->epoch);
    return s3s__sched_apply_event(s, ev, order, eb);
}
