/* coord_status.c: the status reply (a msgpack map streamed into the reply),
 * its JSON rendering, and the public status calls. */
#include "common/crypto/hex.h"
#include "common/proto/mp.h"
#include "coordinator/coord_int.h"
#include "coordinator/sched_impl.h"
#include "coordinator/status_json.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void kv_u(s3s__mpw *w, const char *k, uint64_t v)
{
    s3s__mpw_cstr(w, k);
    s3s__mpw_uint(w, v);
}

static void kv_s(s3s__mpw *w, const char *k, const char *v)
{
    s3s__mpw_cstr(w, k);
    s3s__mpw_cstr(w, v);
}

static void kv_hex(s3s__mpw *w, const char *k, const uint8_t *h, size_t n)
{
    char hex[129];
    s3s__hex_encode(h, n, hex);
    hex[2 * n] = 0;
    kv_s(w, k, hex);
}

/* One epoch's resume counters: re-issued tails and their bytes, drains, bytes
 * fetched from S3 and fetched twice. */
typedef struct epoch_row {
    uint64_t epoch, tails, tail_bytes, drains, fetched, refetched;
} epoch_row;

#define HIST_MAX 64 /* finished epochs listed in a status reply (the latest) */

static uint64_t header_u(const char *text, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = strstr(text, pat);
    return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

/* A finished epoch's row, from the head of its ledger file (written at the
 * epoch's end; the counters come before the rows). 0 when it is missing. */
static int hist_row(const s3s__coord *c, const s3s__coord_chan *ch, uint64_t e, epoch_row *row)
{
    char path[4096], head[1024];
    snprintf(path, sizeof(path), "%s/ledger-%s-%llu.json", c->state_dir, ch->ch->name,
             (unsigned long long)e);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(head, 1, sizeof(head) - 1, f);
    fclose(f);
    head[n] = 0;
    char *rows = strstr(head, "\"rank_samples\"");
    if (rows == NULL)
        return 0; /* an older file without the counters */
    *rows = 0;
    row->epoch = e;
    row->tails = header_u(head, "reissued_tails");
    row->tail_bytes = header_u(head, "reissued_bytes");
    row->drains = header_u(head, "drains");
    row->fetched = header_u(head, "bytes_fetched");
    row->refetched = header_u(head, "bytes_refetched");
    return 1;
}

#define RANK_LEASES_MAX 64 /* live leases listed per rank (the scheduler allows 64) */

typedef struct inflight_ctx {
    uint32_t rank;
    uint64_t bytes;
    uint32_t n;
    s3s__lease_row rows[RANK_LEASES_MAX];
} inflight_ctx;

static int inflight_add(void *ctx, const s3s__lease_row *row)
{
    inflight_ctx *ic = ctx;
    if (row->rank == ic->rank) {
        ic->bytes += row->end - row->committed;
        if (ic->n < RANK_LEASES_MAX)
            ic->rows[ic->n++] = *row;
    }
    return 0;
}

static void write_row(s3s__mpw *w, const epoch_row *r)
{
    s3s__mpw_map(w, 6);
    kv_u(w, "epoch", r->epoch);
    kv_u(w, "reissued_tails", r->tails);
    kv_u(w, "reissued_bytes", r->tail_bytes);
    kv_u(w, "drains", r->drains);
    kv_u(w, "bytes_fetched", r->fetched);
    kv_u(w, "bytes_refetched", r->refetched);
}

static const char *dist_name(s3s_distribution d)
{
    return d == S3S_DIST_FULLY_REPLICATED ? "FullyReplicated"
        : d == S3S_DIST_SHARDED_BY_S3_KEY ? "ShardedByS3Key"
                                          : "Dynamic";
}

typedef struct ledger_ctx {
    s3s__mpw *w;
    const s3s__coord_chan *ch;
    size_t n;
} ledger_ctx;

static int ledger_count(void *ctx, const s3s__ledger_row *row)
{
    (void)row;
    ((ledger_ctx *)ctx)->n++;
    return 0;
}

static int ledger_row(void *ctx, const s3s__ledger_row *row)
{
    ledger_ctx *lc = ctx;
    s3s__mpw *w = lc->w;
    s3s_shard sh = {0};
    s3s_entry e = {0};
    int have = lc->ch->plan != NULL &&
        s3s_plan_shard(lc->ch->plan, (uint32_t)row->shard_id, &sh) == 0 &&
        s3s_snapshot_entry(lc->ch->snap, sh.first, &e) == 0;
    s3s__mpw_map(w, row->dropped ? 9 : 13);
    kv_u(w, "epoch", row->epoch);
    kv_u(w, "shard", row->shard_id);
    kv_u(w, "first", have ? sh.first : 0); /* the shard's first snapshot entry */
    s3s__mpw_cstr(w, "key");
    if (have)
        s3s__mpw_str(w, e.key, e.key_len);
    else
        s3s__mpw_nil(w);
    kv_u(w, "objects", have ? sh.count : 0);
    kv_u(w, "lane", row->lane);
    kv_u(w, "start", row->start);
    kv_u(w, "end", row->end);
    s3s__mpw_cstr(w, "dropped");
    s3s__mpw_bool(w, row->dropped != 0);
    if (!row->dropped) {
        char wid[17];
        snprintf(wid, sizeof(wid), "%016llx", (unsigned long long)row->worker_id);
        kv_s(w, "worker", wid);
        kv_u(w, "rank", row->rank);
        kv_u(w, "incarnation", row->incarnation);
        kv_u(w, "token", (row->token << S3S__COORD_TOKEN_SHIFT) | lc->ch->index);
    }
    return 0;
}

static void write_chan(s3s__coord *c, s3s__coord_chan *ch, uint32_t flags, s3s__mpw *w)
{
    s3s__sched_stats st = {0};
    if (ch->sched != NULL)
        s3s__sched_stats_get(ch->sched, &st);
    bool ledger = (flags & S3S_STATUS_LEDGER) && ch->sched != NULL;
    bool recs = s3s__coord_chan_records(ch);
    s3s__mpw_map(w, ledger ? 28 : 27);
    kv_s(w, "name", ch->ch->name);
    kv_s(w, "unit", recs ? "records" : "bytes"); /* of bytes_*, start, end, inflight */
    kv_s(w, "distribution", dist_name(ch->ch->distribution));
    kv_u(w, "epoch", st.epoch);
    kv_u(w, "epochs", c->epochs);
    s3s__mpw_cstr(w, "running");
    s3s__mpw_bool(w, st.epoch_running != 0);
    s3s__mpw_cstr(w, "finished");
    s3s__mpw_bool(w, ch->finished);
    kv_u(w, "shards_total", st.shards_total);
    kv_u(w, "shards_done", st.shards_done);
    kv_u(w, "bytes_total", st.bytes_total);
    kv_u(w, "bytes_committed", st.bytes_committed);
    kv_u(w, "bytes_dropped", st.bytes_dropped);
    kv_u(w, "active_leases", st.active_leases);
    kv_u(w, "grants", st.grants);
    kv_u(w, "reissued_tails", st.reissued_tails);
    kv_u(w, "reissued_bytes", st.reissued_bytes);
    kv_u(w, "stale_refusals", st.stale_refusals);
    kv_u(w, "drains", st.drains);
    kv_u(w, "quota", st.quota);
    kv_u(w, "pad_samples", st.pad_samples);
    /* per epoch: the finished ones (ledger files) and the current one */
    epoch_row cur = {
        st.epoch,          st.reissued_tails,
        st.reissued_bytes, st.drains - ch->drains_at_begin,
        ch->fetched,       recs ? 0 : s3s__coord_refetched(ch->fetched, st.bytes_committed)};
    epoch_row hist[HIST_MAX];
    uint32_t nh = 0;
    uint64_t first = ch->sched != NULL && st.epoch > HIST_MAX ? st.epoch - HIST_MAX : 0;
    uint64_t upto = ch->sched == NULL ? 0 : st.epoch_running ? st.epoch : st.epoch + 1;
    for (uint64_t e = first; e < upto && nh < HIST_MAX; e++)
        nh += (uint32_t)hist_row(c, ch, e, &hist[nh]);
    s3s__mpw_cstr(w, "epoch_stats");
    s3s__mpw_array(w, nh + (st.epoch_running ? 1u : 0u));
    for (uint32_t i = 0; i < nh; i++)
        write_row(w, &hist[i]);
    if (st.epoch_running)
        write_row(w, &cur);
    kv_u(w, "bytes_fetched", cur.fetched);
    kv_u(w, "bytes_refetched", cur.refetched);
    kv_u(w, "cache_hits", st.cache_hits);
    kv_u(w, "workers_live", st.workers_live);
    kv_hex(w, "snapshot_hash", ch->snap_hash, 32);
    uint64_t now = s3s__now_ms();
    double secs = (double)(now - ch->epoch_start_ms) / 1000.0;
    if (secs <= 0)
        secs = 1e-3;
    s3s__mpw_cstr(w, "ranks");
    uint32_t nr = ch->sched ? c->world_size : 0;
    s3s__mpw_array(w, nr);
    for (uint32_t r = 0; r < nr; r++) {
        s3s__sched_rank_stats rs = {0};
        s3s__sched_rank_stats_get(ch->sched, r, &rs);
        /* the rank's in-flight window: what its live leases have not committed
         * (what a crash of the rank now would cost at most) */
        static __thread inflight_ctx ic; /* 3 KiB: not on the server thread's stack */
        ic.rank = r;
        ic.bytes = 0;
        ic.n = 0;
        if (rs.live_leases > 0)
            s3s__sched_leases_walk(ch->sched, inflight_add, &ic);
        s3s__mpw_map(w, 6);
        kv_u(w, "rank", r);
        kv_u(w, "bytes", rs.bytes_committed);
        kv_u(w, "live_leases", rs.live_leases);
        kv_u(w, "inflight_bytes", ic.bytes);
        s3s__mpw_cstr(w, "leases"); /* [shard, start, committed, end] */
        s3s__mpw_array(w, ic.n);
        for (uint32_t k = 0; k < ic.n; k++) {
            s3s__mpw_array(w, 4);
            s3s__mpw_uint(w, ic.rows[k].shard_id);
            s3s__mpw_uint(w, ic.rows[k].start);
            s3s__mpw_uint(w, ic.rows[k].committed);
            s3s__mpw_uint(w, ic.rows[k].end);
        }
        s3s__mpw_cstr(w, "mb_per_s");
        s3s__mpw_double(w, (double)rs.bytes_committed / 1e6 / secs);
    }
    if (ledger) {
        ledger_ctx lc = {w, ch, 0};
        s3s__sched_ledger_walk(ch->sched, ledger_count, &lc);
        s3s__mpw_cstr(w, "ledger");
        s3s__mpw_array(w, (uint32_t)lc.n);
        s3s__sched_ledger_walk(ch->sched, ledger_row, &lc);
    }
}

int s3s__coord_status_write(void *arg, s3s__mpw *w)
{
    s3s__coord_status_arg *sa = arg;
    s3s__coord *c = sa->c;
    bool snaps = (sa->flags & S3S__STATUS_SNAPSHOTS) != 0;
    s3s__journal_stats js = {0};
    if (c->journal != NULL)
        s3s__journal_stats_get(c->journal, &js);
    s3s__mpw_map(w, snaps ? 17 : 15);
    kv_hex(w, "job_hash", c->job_hash, 32);
    kv_hex(w, "snapshot_hash", c->snap_hash, 32);
    kv_u(w, "world_size", c->world_size);
    kv_u(w, "epochs", c->epochs);
    s3s__mpw_cstr(w, "finished");
    s3s__mpw_bool(w, s3s__coord_finished(c) != 0);
    kv_u(w, "requests", c->cnt.requests);
    kv_u(w, "refused", c->cnt.refused);
    kv_u(w, "resends", c->cnt.resends);
    kv_u(w, "refused_version", c->cnt.refused_version);
    kv_u(w, "refused_auth", c->cnt.refused_auth);
    kv_u(w, "refused_size", c->cnt.refused_size);
    kv_u(w, "refused_malformed", c->cnt.refused_malformed);
    kv_u(w, "refused_seq", c->cnt.refused_seq);
    s3s__mpw_cstr(w, "journal");
    s3s__mpw_map(w, 5);
    kv_u(w, "commits", js.commits);
    kv_u(w, "records", js.records);
    kv_u(w, "bytes", js.bytes);
    kv_u(w, "generation", js.generation);
    kv_u(w, "file_size", js.file_size);
    s3s__mpw_cstr(w, "channels");
    s3s__mpw_array(w, c->nchan);
    for (uint32_t i = 0; i < c->nchan; i++)
        write_chan(c, &c->chans[i], sa->flags, w);
    if (snaps) {
        kv_s(w, "job", c->job_json);
        s3s__mpw_cstr(w, "snapshots");
        s3s__mpw_map(w, c->nchan);
        for (uint32_t i = 0; i < c->nchan; i++) { /* read when asked, not kept */
            char path[4096], *d = NULL;
            size_t n = 0;
            s3s__coord_snap_path(c, &c->chans[i], path, sizeof(path));
            s3s__mpw_cstr(w, c->chans[i].ch->name);
            if (s3s__coord_read_file(path, &d, &n) == 0 && n < w->out->max)
                s3s__mpw_bin(w, d, n);
            else
                s3s__mpw_nil(w); /* too big for one message: workers report it */
            free(d);
        }
    }
    return w->err;
}

void s3s__coord_status_get(s3s__coord *c, s3s_coord_status *out)
{
    memset(out, 0, sizeof(*out));
    out->channels = c->nchan;
    if (c->nchan > 0 && c->chans[0].sched != NULL) {
        s3s__sched_stats st;
        s3s__sched_stats_get(c->chans[0].sched, &st);
        out->epoch = st.epoch;
        out->shards_total = st.shards_total;
        out->shards_done = st.shards_done;
        out->bytes_total = st.bytes_total;
        out->bytes_committed = st.bytes_committed;
        out->active_leases = st.active_leases;
        out->reissued_tails = st.reissued_tails;
    }
    out->finished = s3s__coord_finished(c);
    out->requests = c->cnt.requests;
    out->refused = c->cnt.refused;
    out->resends = c->cnt.resends;
    s3s__journal_stats js = {0};
    if (c->journal != NULL)
        s3s__journal_stats_get(c->journal, &js);
    out->journal_commits = js.syncs;
}

int s3s__coord_status_json(s3s__coord *c, int ledger, char **out)
{
    *out = NULL;
    s3s__buf b, j;
    s3s__buf_init(&b, (size_t)1 << 31);
    s3s__buf_init(&j, (size_t)1 << 31);
    s3s__msg rm, dm;
    s3s__msg_init(&rm, S3S_MSG_STATUS_REPLY, 0, 0);
    s3s__coord_status_arg sa = {c, ledger ? S3S_STATUS_LEDGER : 0};
    rm.u.status_reply.write = s3s__coord_status_write;
    rm.u.status_reply.write_arg = &sa;
    s3s__proto_cfg cfg = {.secret = NULL, .secret_len = 0, .max_msg = S3S_PROTO_MAX_MSG_LIMIT};
    int rc = s3s__msg_encode(&b, &rm, &cfg, NULL);
    if (rc == 0)
        rc = s3s__msg_decode(&dm, b.data, b.len, &cfg, NULL);
    if (rc == 0) {
        rc = s3s__pval_json(dm.u.status_reply.root, &j);
        s3s__msg_fini(&dm);
    }
    if (rc == 0)
        *out = s3s__buf_detach(&j, NULL);
    s3s__buf_fini(&b);
    s3s__buf_fini(&j);
    return rc;
}
