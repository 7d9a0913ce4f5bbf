/* coord.c: the coordinator object: job, snapshots, schedulers, journal
 * (events as opaque records, replay, compaction at epoch boundaries). */
#include "coordinator/coord_int.h"

#include "common/crypto/sha256.h"
#include "common/util/log.h"
#include "coordinator/status_json.h"
#include "coordinator/sched_impl.h"
#include "s3shard/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t s3s__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- event packing: [chan u8][19 varints] --------------------------------- */

#define NFIELDS 19

static void ev_fields(const s3s__sched_event *e, uint64_t f[NFIELDS])
{
    uint64_t v[NFIELDS] = {e->type, e->reason,      e->epoch,   e->worker_id, e->slot,
                           e->rank, e->incarnation, e->lane,    e->token,     e->pos,
                           e->pad,  e->start,       e->end,     e->rec_start, e->rec_end,
                           e->cap,  e->offset,      e->records, e->quota};
    memcpy(f, v, sizeof(v));
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* get_varint reads the varint at p[*at] into *v and moves *at past it.
 * Strict, as every byte read comes from a file: refuses (S3S_EPARSE, *at and
 * *v untouched) a varint running past len or not fitting 64 bits (longer
 * than 10 bytes, or a 10th byte above 1). */
static int get_varint(const uint8_t *p, size_t len, size_t *at, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = *at, shift = 0; i < len && shift < 64; i++, shift += 7) {
        if (shift == 63 && p[i] > 1)
            return S3S_EPARSE;
        x |= (uint64_t)(p[i] & 0x7f) << shift;
        if (!(p[i] & 0x80)) {
            *at = i + 1;
            *v = x;
            return 0;
        }
    }
    return S3S_EPARSE;
}

static size_t ev_pack(uint8_t *out, uint32_t chan, const s3s__sched_event *e)
{
    uint64_t f[NFIELDS];
    ev_fields(e, f);
    size_t n = 0;
    out[n++] = (uint8_t)chan;
    for (int i = 0; i < NFIELDS; i++)
        n += put_varint(out + n, f[i]);
    return n;
}

static int ev_unpack(const uint8_t *p, size_t len, uint32_t *chan, s3s__sched_event *e)
{
    if (len < 1 + NFIELDS)
        return S3S_EPARSE;
    uint64_t f[NFIELDS];
    size_t at = 1;
    for (int i = 0; i < NFIELDS; i++)
        if (get_varint(p, len, &at, &f[i]) != 0)
            return S3S_EPARSE;
    *chan = p[0];
    memset(e, 0, sizeof(*e));
    e->type = (uint32_t)f[0];
    e->reason = (uint32_t)f[1];
    e->epoch = f[2];
    e->worker_id = f[3];
    e->slot = (uint32_t)f[4];
    e->rank = (uint32_t)f[5];
    e->incarnation = (uint32_t)f[6];
    e->lane = (uint32_t)f[7];
    e->token = f[8];
    e->pos = (uint32_t)f[9];
    e->pad = (uint32_t)f[10];
    e->start = f[11];
    e->end = f[12];
    e->rec_start = f[13];
    e->rec_end = f[14];
    e->cap = f[15];
    e->offset = f[16];
    e->records = f[17];
    e->quota = f[18];
    return 0;
}

/* A framed entry of base/log: [subtype u8][len u8][data]. */
static void frame_add(s3s__buf *b, uint32_t subtype, const uint8_t *d, size_t n)
{
    uint8_t h[2] = {(uint8_t)subtype, (uint8_t)n};
    if (s3s__buf_append(b, h, 2) == 0)
        s3s__buf_append(b, d, n);
}

static int journal_opaque(s3s__coord *c, uint32_t subtype, const uint8_t *d, size_t n)
{
    s3s__jrec r = {0};
    r.type = S3S_JREC_OPAQUE;
    r.time_ms = wall_ms();
    r.subtype = subtype;
    r.data = d;
    r.data_len = (uint32_t)n;
    uint64_t lsn = 0;
    int rc = s3s__journal_append(c->journal, &r, &lsn, &c->jerr);
    if (rc == 0 && lsn > c->lsn)
        c->lsn = lsn;
    return rc;
}

/* Keeps base and log so that they rebuild the channel (see coord.h). */
static void track(s3s__coord_chan *ch, const s3s__sched_event *ev, const uint8_t *packed, size_t n)
{
    if (ev->type == S3S__EV_EPOCH_BEGIN) {
        s3s__buf_reset(&ch->base);
        s3s__buf_reset(&ch->log);
        const s3s__sched *s = ch->sched;
        uint8_t tmp[256];
        size_t k = 0;
        tmp[k++] = (uint8_t)ch->index;
        k += put_varint(tmp + k, s->next_token);
        frame_add(&ch->base, S3S__CJ_TOKEN_FLOOR, tmp, k);
        for (uint32_t i = 0; i < s->nworkers; i++) {
            s3s__sched_event j = {0};
            j.type = S3S__EV_JOIN;
            j.worker_id = s->workers[i].wid;
            j.slot = i;
            j.rank = s->workers[i].rank;
            j.incarnation = s->workers[i].inc;
            size_t m = ev_pack(tmp, ch->index, &j);
            frame_add(&ch->base, S3S__CJ_EVENT, tmp, m);
        }
        ch->compact_due = true;
        ch->epoch_start_ms = s3s__now_ms();
        s3s__sched_stats st;
        s3s__sched_stats_get(ch->sched, &st);
        ch->fetched = 0;
        ch->drains_at_begin = st.drains;
    }
    frame_add(&ch->log, S3S__CJ_EVENT, packed, n);
    if (ev->type == S3S__EV_EPOCH_DONE)
        ch->epoch_done = true;
}

static void on_event(void *ctx, const s3s__sched_event *ev)
{
    s3s__coord_chan *ch = ctx;
    s3s__coord *c = (s3s__coord *)ch->coord;
    uint8_t p[256];
    size_t n = ev_pack(p, ch->index, ev);
    if (c->jrc == 0)
        c->jrc = journal_opaque(c, S3S__CJ_EVENT, p, n);
    track(ch, ev, p, n);
}

/* ---- token reservations ------------------------------------------------ */

static size_t reserve_pack(uint8_t *d, uint32_t chan, uint64_t mark)
{
    d[0] = (uint8_t)chan;
    return 1 + put_varint(d + 1, mark);
}

int s3s__coord_token_granted(s3s__coord *c, s3s__coord_chan *ch, uint64_t tok)
{
    uint64_t next = ch->sched->next_token;
    if (next + S3S__COORD_TOKEN_BLOCK / 2 > ch->tok_reserved && c->jrc == 0) {
        uint8_t d[16];
        uint64_t mark = next + S3S__COORD_TOKEN_BLOCK;
        int rc = journal_opaque(c, S3S__CJ_TOKEN_RESERVE, d, reserve_pack(d, ch->index, mark));
        if (rc != 0)
            c->jrc = rc;
        else {
            ch->tok_reserved = mark;
            ch->tok_reserved_lsn = c->lsn;
        }
    }
    if (tok < ch->tok_safe)
        return 0;
    if (tok < ch->tok_reserved && s3s__journal_durable(c->journal) >= ch->tok_reserved_lsn) {
        ch->tok_safe = ch->tok_reserved;
        return 0;
    }
    return 1;
}

/* ---- epochs ------------------------------------------------------------- */

static int chan_order(s3s__coord *c, s3s__coord_chan *ch, uint64_t epoch, s3s__sched_order *ord,
                      s3s__errbuf *eb)
{
    s3s_errinfo ei;
    if (ch->plan == NULL || ch->plan_epoch != epoch) {
        s3s_plan_opts po;
        s3s_plan_opts_init(&po);
        s3s_plan_opts_from_channel(&po, ch->ch, epoch);
        s3s_plan *p = NULL;
        int rc = s3s_plan_create(&p, ch->snap, &po, &ei);
        if (rc != 0)
            return s3s__err_set(eb, rc, "channel %s: plan of epoch %llu: %s", ch->ch->name,
                                (unsigned long long)epoch, ei.msg);
        s3s_plan_destroy(ch->plan);
        ch->plan = p;
        ch->plan_epoch = epoch;
    }
    size_t n = s3s_plan_shard_count(ch->plan);
    const uint32_t *order = s3s_plan_order(ch->plan);
    free(ch->shards);
    free(ch->owner);
    ch->shards = calloc(n ? n : 1, sizeof(*ch->shards));
    ch->owner = calloc(n ? n : 1, sizeof(*ch->owner));
    if (ch->shards == NULL || ch->owner == NULL)
        return S3S_ENOMEM;
    for (size_t pos = 0; pos < n; pos++) {
        s3s_shard sh;
        s3s_plan_shard(ch->plan, order[pos], &sh);
        ch->shards[pos].id = order[pos];
        /* records: the unit is the record (sizes, ranges, offsets) */
        ch->shards[pos].size = s3s__coord_chan_records(ch) ? sh.count : sh.bytes;
    }
    if (ch->ch->distribution == S3S_DIST_SHARDED_BY_S3_KEY) {
        uint64_t *b = calloc(c->world_size + 1u, sizeof(*b));
        if (b == NULL)
            return S3S_ENOMEM;
        int rc = s3s_plan_shares(ch->plan, c->world_size, b, &ei);
        if (rc != 0) {
            free(b);
            return s3s__err_set(eb, rc, "channel %s: shares: %s", ch->ch->name, ei.msg);
        }
        uint32_t r = 0;
        for (size_t pos = 0; pos < n; pos++) {
            while (r + 1 < c->world_size && pos >= b[r + 1])
                r++;
            ch->owner[pos] = r;
        }
        free(b);
    }
    memset(ord, 0, sizeof(*ord));
    ord->shards = ch->shards;
    ord->n = n;
    ord->owner = ch->owner;
    return 0;
}

static void free_order(s3s__coord_chan *ch)
{
    free(ch->shards);
    free(ch->owner);
    ch->shards = NULL;
    ch->owner = NULL;
}

int s3s__coord_chan_begin(s3s__coord *c, s3s__coord_chan *ch, uint64_t epoch, s3s__errbuf *eb)
{
    s3s__sched_order ord;
    int rc = chan_order(c, ch, epoch, &ord, eb);
    if (rc == 0)
        rc = s3s__sched_epoch_begin(ch->sched, epoch, &ord, eb);
    free_order(ch); /* the scheduler keeps its own copy */
    ch->epoch_done = false;
    ch->ledger_saved = false;
    return rc;
}

typedef struct ledger_file {
    FILE *f;
    const s3s__coord_chan *ch;
    size_t n;
} ledger_file;

static int ledger_line(void *ctx, const s3s__ledger_row *row)
{
    ledger_file *lf = ctx;
    s3s_shard sh = {0};
    s3s_entry e = {0};
    fprintf(lf->f, "%s{\"epoch\":%llu,\"shard\":%llu,\"start\":%llu,\"end\":%llu,",
            lf->n++ ? ",\n" : "", (unsigned long long)row->epoch, (unsigned long long)row->shard_id,
            (unsigned long long)row->start, (unsigned long long)row->end);
    if (lf->ch->plan != NULL && s3s_plan_shard(lf->ch->plan, (uint32_t)row->shard_id, &sh) == 0 &&
        s3s_snapshot_entry(lf->ch->snap, sh.first, &e) == 0) {
        s3s__buf b;
        s3s__buf_init(&b, 1 << 20);
        s3s__json_str(&b, e.key, e.key_len);
        fprintf(lf->f, "\"key\":%s,\"objects\":%u,\"first\":%llu,", b.data ? b.data : "null",
                sh.count, (unsigned long long)sh.first);
        s3s__buf_fini(&b);
    }
    if (row->dropped)
        fprintf(lf->f, "\"dropped\":true}");
    else
        fprintf(lf->f, "\"worker\":\"%016llx\",\"rank\":%u,\"incarnation\":%u,\"token\":%llu}",
                (unsigned long long)row->worker_id, row->rank, row->incarnation,
                (unsigned long long)((row->token << S3S__COORD_TOKEN_SHIFT) | lf->ch->index));
    return 0;
}

/* Saves a finished epoch's coverage ledger as DIR/ledger-<channel>-<epoch>.json
 * (the scheduler forgets it when the next epoch begins). */
static void save_ledger(s3s__coord *c, s3s__coord_chan *ch)
{
    s3s__sched_stats st;
    s3s__sched_stats_get(ch->sched, &st);
    char path[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/ledger-%s-%llu.json", c->state_dir, ch->ch->name,
             (unsigned long long)st.epoch);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    s3s__errbuf eb;
    int ok = s3s__sched_ledger_verify(ch->sched, 1, &eb);
    bool recs = s3s__coord_chan_records(ch);
    fprintf(f, "{\"channel\":\"%s\",\"epoch\":%llu,\"verified\":%s,\"unit\":\"%s\",", ch->ch->name,
            (unsigned long long)st.epoch, ok == 0 ? "true" : "false", recs ? "records" : "bytes");
    /* the epoch's counters, and every rank's committed samples (pads included):
     * under equal steps each one is the quota */
    fprintf(f,
            "\"quota\":%llu,\"samples_total\":%llu,\"pad_samples\":%llu,\"bytes_dropped\":%llu,"
            "\"reissued_tails\":%llu,\"reissued_bytes\":%llu,\"drains\":%llu,"
            "\"bytes_fetched\":%llu,\"bytes_refetched\":%llu,\"rank_samples\":[",
            (unsigned long long)st.quota, (unsigned long long)st.samples_total,
            (unsigned long long)st.pad_samples, (unsigned long long)st.bytes_dropped,
            (unsigned long long)st.reissued_tails, (unsigned long long)st.reissued_bytes,
            (unsigned long long)(st.drains - ch->drains_at_begin), (unsigned long long)ch->fetched,
            (unsigned long long)(recs ? 0 : s3s__coord_refetched(ch->fetched, st.bytes_committed)));
    for (uint32_t r = 0; r < c->world_size; r++) {
        s3s__sched_rank_stats rs = {0};
        s3s__sched_rank_stats_get(ch->sched, r, &rs);
        fprintf(f, "%s%llu", r ? "," : "", (unsigned long long)rs.samples_committed);
    }
    fprintf(f, "],\"rows\":[\n");
    ledger_file lf = {f, ch, 0};
    s3s__sched_ledger_walk(ch->sched, ledger_line, &lf);
    fprintf(f, "\n]}\n");
    if (fclose(f) == 0)
        rename(tmp, path);
    if (ok != 0)
        S3S_LOGE("coordinator: epoch %llu of %s: coverage check failed: %s",
                 (unsigned long long)st.epoch, ch->ch->name, eb.msg);
}

/* Begins the next epoch of every channel whose epoch ended (or that never
 * began one); finishes channels past their last epoch. */
void s3s__coord_advance(s3s__coord *c)
{
    for (uint32_t i = 0; i < c->nchan; i++) {
        s3s__coord_chan *ch = &c->chans[i];
        if (ch->sched == NULL || ch->finished)
            continue;
        if (ch->sched->running) /* the cheap check: this runs after every request */
            continue;
        s3s__sched_stats st;
        s3s__sched_stats_get(ch->sched, &st);
        if (ch->epoch_done || (ch->sched->began && !ch->ledger_saved))
            save_ledger(c, ch);
        ch->ledger_saved = true;
        uint64_t next = ch->sched->began ? st.epoch + 1 : 0;
        if (next >= c->epochs) {
            s3s__sched_finish(ch->sched);
            ch->finished = true;
            ch->compact_due = true;
            continue;
        }
        s3s__errbuf eb;
        int rc = s3s__coord_chan_begin(c, ch, next, &eb);
        if (rc != 0) {
            S3S_LOGE("coordinator: %s", eb.msg);
            if (c->jrc == 0)
                c->jrc = rc;
        }
    }
}

s3s__coord_chan *s3s__coord_chan_find(s3s__coord *c, const char *name)
{
    for (uint32_t i = 0; i < c->nchan; i++)
        if (strcmp(c->chans[i].ch->name, name) == 0)
            return &c->chans[i];
    return NULL;
}

/* Creates the schedulers once the world size is known. */
int s3s__coord_set_world(s3s__coord *c, uint32_t world, s3s__errbuf *eb)
{
    if (c->world_size != 0)
        return world == c->world_size
            ? 0
            : s3s__err_set(eb, S3S_EINVAL, "world size %u, but this job runs with %u", world,
                           c->world_size);
    if (world == 0 || world > 65536)
        return s3s__err_set(eb, S3S_EINVAL, "world size %u out of range [1, 65536]", world);
    for (uint32_t i = 0; i < c->nchan; i++) {
        s3s__coord_chan *ch = &c->chans[i];
        s3s__sched_opts so;
        s3s__sched_opts_init(&so);
        so.world_size = world;
        so.lease_ttl_ms = c->lease_ttl_ms;
        so.dist = ch->ch->distribution == S3S_DIST_FULLY_REPLICATED ? S3S__DIST_FULLY_REPLICATED
            : ch->ch->distribution == S3S_DIST_SHARDED_BY_S3_KEY    ? S3S__DIST_SHARDED_BY_S3KEY
                                                                    : S3S__DIST_DYNAMIC;
        so.equal_steps = ch->ch->equal_steps == S3S_EQUAL_DROP ? S3S__EQUAL_DROP
            : ch->ch->equal_steps == S3S_EQUAL_PAD             ? S3S__EQUAL_PAD
                                                               : S3S__EQUAL_OFF;
        int rc = s3s__sched_create(&ch->sched, &so, on_event, ch, eb);
        if (rc != 0)
            return rc;
    }
    c->world_size = world;
    if (!c->replaying) {
        uint8_t d[16];
        size_t n = put_varint(d, world);
        int rc = journal_opaque(c, S3S__CJ_CONFIG, d, n);
        if (rc != 0)
            return s3s__err_set(eb, rc, "%s", c->jerr.msg);
        s3s__coord_advance(c);
    }
    return 0;
}

/* ---- replay ------------------------------------------------------------- */

/* A record's varint that get_varint refused: named by what it held and where. */
static int bad_varint(s3s__errbuf *eb, const char *what, uint64_t off)
{
    return s3s__err_set(eb, S3S_EPARSE,
                        "journal: bad %s at offset %llu: varint truncated by the record's end "
                        "or over 64 bits",
                        what, (unsigned long long)off);
}

static int replay_one(void *arg, const s3s__jrec *r, uint64_t off)
{
    s3s__coord *c = arg;
    s3s__errbuf *eb = &c->jerr;
    if (r->type != S3S_JREC_OPAQUE)
        return 0; /* job_started, snapshot: the header already matched */
    uint64_t v = 0;
    size_t at = 1; /* token records: [chan u8][varint] */
    if (r->subtype == S3S__CJ_CONFIG) {
        at = 0;
        if (get_varint(r->data, r->data_len, &at, &v) != 0)
            return bad_varint(eb, "world size", off);
        if (v > UINT32_MAX)
            return s3s__err_set(eb, S3S_EPARSE,
                                "journal: bad world size at offset %llu: %llu is over 32 bits",
                                (unsigned long long)off, (unsigned long long)v);
        return s3s__coord_set_world(c, (uint32_t)v, eb);
    }
    if (r->subtype == S3S__CJ_TOKEN_FLOOR) {
        if (r->data_len < 2 || r->data[0] >= c->nchan || c->chans[r->data[0]].sched == NULL)
            return s3s__err_set(eb, S3S_EPARSE, "journal: bad token floor at offset %llu",
                                (unsigned long long)off);
        if (get_varint(r->data, r->data_len, &at, &v) != 0)
            return bad_varint(eb, "token floor", off);
        s3s__sched *s = c->chans[r->data[0]].sched;
        if (v > s->next_token)
            s->next_token = v;
        return 0;
    }
    if (r->subtype == S3S__CJ_TOKEN_RESERVE) {
        if (r->data_len < 2 || r->data[0] >= c->nchan)
            return s3s__err_set(eb, S3S_EPARSE, "journal: bad token reservation at offset %llu",
                                (unsigned long long)off);
        if (get_varint(r->data, r->data_len, &at, &v) != 0)
            return bad_varint(eb, "token reservation", off);
        s3s__coord_chan *ch = &c->chans[r->data[0]];
        if (v > ch->tok_reserved)
            ch->tok_reserved = v; /* applied once the replay is over */
        return 0;
    }
    if (r->subtype != S3S__CJ_EVENT)
        return 0;
    uint32_t chan;
    s3s__sched_event ev;
    if (ev_unpack(r->data, r->data_len, &chan, &ev) != 0 || chan >= c->nchan ||
        c->chans[chan].sched == NULL)
        return s3s__err_set(eb, S3S_EPARSE, "journal: bad scheduler event at offset %llu",
                            (unsigned long long)off);
    s3s__coord_chan *ch = &c->chans[chan];
    s3s__sched_order ord, *po = NULL;
    if (ev.type == S3S__EV_EPOCH_BEGIN) {
        int rc = chan_order(c, ch, ev.epoch, &ord, eb);
        if (rc != 0)
            return rc;
        po = &ord;
    }
    int rc = s3s__sched_apply(ch->sched, &ev, po, eb);
    if (po != NULL)
        free_order(ch);
    if (rc != 0) {
        char why[sizeof(eb->msg)]; /* eb->msg is the destination: format from a copy */
        snprintf(why, sizeof(why), "%s", eb->msg);
        return s3s__err_set(eb, rc, "journal: record at offset %llu: %s", (unsigned long long)off,
                            why);
    }
    track(ch, &ev, r->data, r->data_len);
    if (ev.type == S3S__EV_EPOCH_BEGIN) { /* a compacted journal's RESTORE came first */
        s3s__sched_stats st;
        s3s__sched_stats_get(ch->sched, &st);
        ch->drains_at_begin = st.drains;
    }
    return 0;
}

/* ---- compaction ----------------------------------------------------------- */

static int compact_frames(s3s__jcompact *jc, const s3s__buf *b, s3s__errbuf *eb)
{
    for (size_t at = 0; at + 2 <= b->len;) {
        const uint8_t *p = (const uint8_t *)b->data + at;
        s3s__jrec r = {0};
        r.type = S3S_JREC_OPAQUE;
        r.time_ms = wall_ms();
        r.subtype = p[0];
        r.data = p + 2;
        r.data_len = p[1];
        int rc = s3s__journal_compact_add(jc, &r, eb);
        if (rc != 0)
            return rc;
        at += 2u + p[1];
    }
    return 0;
}

static int compact(s3s__coord *c, s3s__errbuf *eb)
{
    s3s__jcompact *jc = NULL;
    int rc = s3s__journal_compact_begin(c->journal, &jc, eb);
    if (rc != 0)
        return rc;
    s3s__jrec r = {0};
    r.type = S3S_JREC_JOB_STARTED;
    r.time_ms = wall_ms();
    memcpy(r.job_hash, c->job_hash, 32);
    memcpy(r.snapshot_hash, c->snap_hash, 32);
    r.n_channels = c->nchan;
    rc = s3s__journal_compact_add(jc, &r, eb);
    if (rc == 0 && c->world_size != 0) {
        uint8_t d[16];
        s3s__jrec w = {0};
        w.type = S3S_JREC_OPAQUE;
        w.time_ms = r.time_ms;
        w.subtype = S3S__CJ_CONFIG;
        w.data = d;
        w.data_len = (uint32_t)put_varint(d, c->world_size);
        rc = s3s__journal_compact_add(jc, &w, eb);
    }
    for (uint32_t i = 0; rc == 0 && i < c->nchan; i++) {
        rc = compact_frames(jc, &c->chans[i].base, eb);
        if (rc == 0)
            rc = compact_frames(jc, &c->chans[i].log, eb);
        if (rc == 0 && c->chans[i].tok_reserved != 0) { /* tokens handed out stay reserved */
            uint8_t d[16];
            s3s__jrec t = {0};
            t.type = S3S_JREC_OPAQUE;
            t.time_ms = r.time_ms;
            t.subtype = S3S__CJ_TOKEN_RESERVE;
            t.data = d;
            t.data_len = (uint32_t)reserve_pack(d, i, c->chans[i].tok_reserved);
            rc = s3s__journal_compact_add(jc, &t, eb);
        }
    }
    if (rc != 0) {
        s3s__journal_compact_abort(jc);
        return rc;
    }
    return s3s__journal_compact_finish(jc, eb);
}

uint64_t s3s__coord_lsn(const s3s__coord *c)
{
    return c->lsn;
}

int s3s__coord_compact_due(const s3s__coord *c)
{
    if (c->jrc != 0)
        return 1; /* the synchronous path reports the failure */
    for (uint32_t i = 0; i < c->nchan; i++)
        if (c->chans[i].compact_due)
            return 1;
    return 0;
}

int s3s__coord_wait(s3s__coord *c, uint64_t lsn, s3s__errbuf *eb)
{
    return s3s__journal_wait(c->journal, lsn, eb);
}

int s3s__coord_commit(s3s__coord *c, s3s__errbuf *eb)
{
    if (c->jrc != 0)
        return s3s__err_set(eb, S3S_EIO, "journal: %s", c->jerr.msg);
    int rc = s3s__journal_commit(c->journal, eb);
    if (rc != 0) {
        c->jrc = rc;
        return rc;
    }
    c->commits++;
    bool due = false;
    for (uint32_t i = 0; i < c->nchan; i++)
        due |= c->chans[i].compact_due;
    if (due) {
        s3s__errbuf ceb;
        int crc = compact(c, &ceb);
        if (crc == 0) {
            for (uint32_t i = 0; i < c->nchan; i++)
                c->chans[i].compact_due = false;
        } else if (crc != S3S_EBUSY) {
            S3S_LOGW("coordinator: journal compaction failed: %s", ceb.msg);
        }
        if (c->state_uri != NULL) /* an epoch boundary: upload now */
            s3s__coord_mirror_flush(c, NULL);
    }
    return 0;
}

void s3s__coord_tick(s3s__coord *c, uint64_t now_ms)
{
    for (uint32_t i = 0; i < c->nchan; i++)
        if (c->chans[i].sched != NULL)
            s3s__sched_tick(c->chans[i].sched, now_ms);
    s3s__coord_advance(c);
}

/* ---- open ----------------------------------------------------------------- */

int s3s__coord_read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno == ENOENT ? S3S_ENOTFOUND : S3S_EIO;
    s3s__buf b;
    s3s__buf_init(&b, (size_t)64 << 30);
    char tmp[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        rc = s3s__buf_append(&b, tmp, n);
    if (ferror(f))
        rc = S3S_EIO;
    fclose(f);
    if (rc != 0) {
        s3s__buf_fini(&b);
        return rc;
    }
    if (b.data == NULL)
        s3s__buf_append(&b, "", 0);
    *out = s3s__buf_detach(&b, len);
    return *out ? 0 : S3S_ENOMEM;
}

static int write_file(const char *path, const void *d, size_t n)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return S3S_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return S3S_EIO;
    const char *p = d;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return S3S_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0)
        return S3S_EIO;
    return 0;
}

static int open_s3(s3s__coord *c, s3s__errbuf *eb)
{
    if (c->s3 != NULL)
        return 0;
    s3s_s3_opts so;
    s3s_s3_opts_init(&so);
    so.endpoint = c->o.endpoint;
    so.region = c->o.region;
    so.path_style = c->o.path_style;
    int rc = s3s_s3_create(&c->s3, &so);
    if (rc != 0)
        return s3s__err_set(eb, rc, "S3 client: %s", s3s_s3_last_create_error());
    return 0;
}

static int load_job(s3s__coord *c, s3s__errbuf *eb)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/job.json", c->state_dir);
    const char *src = c->job_path ? c->job_path : path;
    char *data = NULL;
    size_t len = 0;
    int rc = s3s__coord_read_file(src, &data, &len);
    if (rc != 0)
        return s3s__err_set(eb, c->job_path ? rc : S3S_ECONFIG,
                            c->job_path ? "cannot read job spec %s"
                                        : "no --job given and no job spec saved in %s",
                            c->job_path ? c->job_path : c->state_dir);
    s3s_errinfo ei;
    rc = s3s_job_parse(&c->job, data, len, src, &ei);
    if (rc == 0 && c->job_path != NULL)
        rc = write_file(path, data, len);
    free(data);
    if (rc != 0)
        return s3s__err_set(eb, rc, "%s", c->job == NULL ? ei.msg : "cannot save job.json");
    rc = s3s_job_to_json(c->job, &c->job_json, &ei);
    if (rc != 0)
        return s3s__err_set(eb, rc, "%s", ei.msg);
    s3s__sha256(c->job_json, strlen(c->job_json), c->job_hash);
    const s3s_job_settings *st = s3s_job_settings_get(c->job);
    c->epochs = st->epochs ? st->epochs : 1;
    c->lease_ttl_ms = (uint64_t)(st->lease_seconds ? st->lease_seconds : 60) * 1000u;
    size_t n = s3s_job_channel_count(c->job);
    if (n == 0 || n > S3S__COORD_CHANNELS_MAX)
        return s3s__err_set(eb, S3S_ECONFIG, "job has %zu channels (1..20 supported)", n);
    c->nchan = (uint32_t)n;
    return 0;
}

void s3s__coord_snap_path(const s3s__coord *c, const s3s__coord_chan *ch, char *out, size_t n)
{
    snprintf(out, n, "%s/snapshot-%s.s3ss", c->state_dir, ch->ch->name);
}

static int load_snapshot(s3s__coord *c, s3s__coord_chan *ch, s3s__errbuf *eb)
{
    char path[4096];
    s3s__coord_snap_path(c, ch, path, sizeof(path));
    s3s_errinfo ei;
    struct stat sb;
    int rc;
    if (stat(path, &sb) == 0) {
        rc = s3s_snapshot_load(&ch->snap, path, &ei);
        if (rc == 0)
            rc = s3s_snapshot_verify(ch->snap, &ei);
        if (rc != 0)
            return s3s__err_set(eb, rc, "snapshot %s: %s", path, ei.msg);
    } else {
        s3s_source_opts so;
        s3s_source_opts_init(&so);
        if (ch->ch->bucket != NULL) {
            rc = open_s3(c, eb);
            if (rc != 0)
                return rc;
        }
        s3s_source_opts_from_channel(&so, ch->ch, c->s3);
        rc = s3s_snapshot_create(&ch->snap, &so, &ei);
        if (rc == 0)
            rc = s3s_snapshot_save(ch->snap, path, &ei);
        if (rc != 0)
            return s3s__err_set(eb, rc, "channel %s: snapshot: %s", ch->ch->name, ei.msg);
    }
    s3s_snapshot_hash(ch->snap, ch->snap_hash);
    return 0;
}

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

int s3s__coord_open(s3s__coord **out, const s3s_coord_opts *opts, s3s__errbuf *eb)
{
    *out = NULL;
    if (opts == NULL || opts->state_dir == NULL || opts->state_dir[0] == 0)
        return s3s__err_set(eb, S3S_EINVAL, "a state dir is required (--state DIR)");
    s3s__coord *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return S3S_ENOMEM;
    c->o = *opts;
    c->state_dir = dupstr(opts->state_dir);
    c->state_uri = dupstr(opts->state_uri);
    c->job_path = dupstr(opts->job_path);
    c->o.endpoint = dupstr(opts->endpoint);
    c->o.region = dupstr(opts->region);
    c->o.listen = dupstr(opts->listen);
    c->o.tls_cert = dupstr(opts->tls_cert);
    c->o.tls_key = dupstr(opts->tls_key);
    c->o.state_dir = c->state_dir;
    c->o.state_uri = c->state_uri;
    c->o.job_path = c->job_path;
    c->o.secret = NULL;
    pthread_mutex_init(&c->mu, NULL);
    s3s__buf_init(&c->mirror_buf, (size_t)16 << 30);
    s3s__buf_init(&c->scratch, (size_t)256 << 20);
    c->proto.max_msg = opts->max_msg ? opts->max_msg : S3S_PROTO_MAX_MSG_DEFAULT;
    if (opts->secret != NULL && opts->secret_len > 0) {
        c->secret = malloc(opts->secret_len);
        if (c->secret == NULL) {
            s3s__coord_close(c);
            return S3S_ENOMEM;
        }
        memcpy(c->secret, opts->secret, opts->secret_len);
        c->proto.secret = c->secret;
        c->proto.secret_len = opts->secret_len;
        if (s3s__proto_key_create(&c->proto_key, c->secret, opts->secret_len) != 0) {
            s3s__coord_close(c);
            return S3S_ENOMEM;
        }
        c->proto.key = c->proto_key;
    }
    int rc = 0;
    if (mkdir(c->state_dir, 0755) != 0 && errno != EEXIST)
        rc = s3s__err_set(eb, S3S_EIO, "cannot create state dir %s: %s", c->state_dir,
                          strerror(errno));
    if (rc == 0 && c->state_uri != NULL) {
        rc = open_s3(c, eb);
        if (rc == 0)
            rc = s3s__coord_mirror_fetch(c, eb);
    }
    if (rc == 0)
        rc = load_job(c, eb);
    uint8_t cat[32 * S3S__COORD_CHANNELS_MAX];
    for (uint32_t i = 0; rc == 0 && i < c->nchan; i++) {
        s3s__coord_chan *ch = &c->chans[i];
        ch->ch = s3s_job_channel(c->job, i);
        ch->index = i;
        ch->coord = c;
        s3s__buf_init(&ch->base, (size_t)1 << 30);
        s3s__buf_init(&ch->log, (size_t)8 << 30);
        rc = load_snapshot(c, ch, eb);
        if (rc == 0)
            memcpy(cat + 32 * i, ch->snap_hash, 32);
    }
    if (rc != 0) {
        s3s__coord_close(c);
        return rc;
    }
    s3s__sha256(cat, 32u * c->nchan, c->snap_hash);

    s3s__journal_opts jo = {0};
    jo.dir = c->state_dir;
    jo.prealloc = true; /* commits overwrite zeros: their fdatasync need not write the inode */
    memcpy(jo.job_hash, c->job_hash, 32);
    memcpy(jo.snapshot_hash, c->snap_hash, 32);
    if (c->state_uri != NULL) {
        jo.mirror = s3s__coord_mirror_hook;
        jo.mirror_arg = c;
    }
    s3s__journal_report rep;
    c->replaying = true;
    rc = s3s__journal_open(&c->journal, &jo, replay_one, c, &rep, eb);
    c->replaying = false;
    if (rc != 0) {
        if (c->jerr.msg[0] && rc != S3S_EMISMATCH && rc != S3S_EBUSY)
            s3s__err_set(eb, rc, "%s", c->jerr.msg);
        s3s__coord_close(c);
        return rc;
    }
    if (rep.cut)
        S3S_LOGW("coordinator: journal had a torn tail at offset %llu (%s): cut",
                 (unsigned long long)rep.bad_offset, rep.why);
    if (rep.created) {
        s3s__jrec r = {0};
        r.type = S3S_JREC_JOB_STARTED;
        r.time_ms = wall_ms();
        memcpy(r.job_hash, c->job_hash, 32);
        memcpy(r.snapshot_hash, c->snap_hash, 32);
        r.n_channels = c->nchan;
        rc = s3s__journal_append(c->journal, &r, NULL, eb);
    }
    if (rc == 0 && opts->world_size != 0)
        rc = s3s__coord_set_world(c, opts->world_size, eb);
    if (rc == 0) {
        uint64_t now = s3s__now_ms();
        for (uint32_t i = 0; i < c->nchan; i++)
            if (c->chans[i].sched != NULL) {
                /* Grants answered before their records were durable may
                 * have used tokens up to the last reservation: resume there,
                 * so no token is ever handed out twice. */
                s3s__coord_chan *ch = &c->chans[i];
                if (ch->sched->next_token < ch->tok_reserved)
                    ch->sched->next_token = ch->tok_reserved;
                ch->tok_safe = ch->tok_reserved;
                ch->tok_reserved_lsn = 0;
                s3s__sched_recover(c->chans[i].sched, now);
                c->chans[i].epoch_start_ms = now;
                /* the fetched count is soft: assume what was committed before the
                 * restart was fetched once, so later re-downloads still show */
                s3s__sched_stats st;
                s3s__sched_stats_get(c->chans[i].sched, &st);
                c->chans[i].fetched = st.bytes_committed;
            }
        s3s__coord_advance(c);
        rc = s3s__coord_commit(c, eb);
    }
    if (rc == 0 && c->state_uri != NULL) {
        rc = s3s__coord_mirror_put_static(c, eb);
        if (rc == 0)
            rc = s3s__coord_mirror_flush(c, eb);
    }
    if (rc != 0) {
        s3s__coord_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void s3s__coord_close(s3s__coord *c)
{
    if (c == NULL)
        return;
    s3s__journal_close(c->journal);
    for (uint32_t i = 0; i < S3S__COORD_CHANNELS_MAX; i++) {
        s3s__coord_chan *ch = &c->chans[i];
        s3s__sched_destroy(ch->sched);
        s3s_plan_destroy(ch->plan);
        s3s_snapshot_destroy(ch->snap);
        free(ch->shards);
        free(ch->owner);
        s3s__buf_fini(&ch->base);
        s3s__buf_fini(&ch->log);
    }
    for (size_t i = 0; i < c->peers_cap; i++)
        free(c->peers[i].reply);
    free(c->peers);
    s3s_job_destroy(c->job);
    free(c->job_json);
    s3s_s3_destroy(c->s3);
    s3s__buf_fini(&c->mirror_buf);
    s3s__buf_fini(&c->scratch);
    pthread_mutex_destroy(&c->mu);
    free(c->mirror_bucket);
    free(c->mirror_prefix);
    s3s__proto_key_destroy(c->proto_key);
    if (c->secret != NULL)
        memset(c->secret, 0, c->proto.secret_len);
    free(c->secret);
    free(c->state_dir);
    free(c->state_uri);
    free(c->job_path);
    free((char *)c->o.endpoint);
    free((char *)c->o.region);
    free((char *)c->o.listen);
    free((char *)c->o.tls_cert);
    free((char *)c->o.tls_key);
    free(c);
}

const s3s__proto_cfg *s3s__coord_proto(const s3s__coord *c)
{
    return &c->proto;
}

void s3s__coord_counters_get(const s3s__coord *c, s3s__coord_counters *out)
{
    *out = c->cnt;
}

int s3s__coord_finished(const s3s__coord *c)
{
    if (c->world_size == 0)
        return 0;
    for (uint32_t i = 0; i < c->nchan; i++)
        if (!c->chans[i].finished)
            return 0;
    return 1;
}
