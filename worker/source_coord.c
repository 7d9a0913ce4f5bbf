/* source_coord.c: the coordinator item source (see source.h).
 *
 * A lease (grant) is a byte range [start, end) of one shard, and a shard packs
 * one or more snapshot objects in order (s3s_plan_shard: entries first ..
 * first + count - 1). At the grant the range is cut into items, one per
 * object that overlaps it (an object cut by start resumes at start - its
 * offset in the shard; empty objects inside the range are items too, folder
 * markers are not). Items are handed out in order, oldest lease first.
 *
 * Commits map back to shard offsets: the lease's position is the prefix of
 * its items in order (every finished item, then the committed offset of the
 * first unfinished one), so items committed out of order (several loader
 * threads) never claim bytes an earlier item has not consumed. Each commit
 * that moves the prefix sends a progress (the coordinator acknowledges it
 * once it is on its disk); the item that completes the range sends done.
 *
 * Release (an item closed before its end, or dropped from the lookahead)
 * puts the item back in its lease (handed out again before the lease's later
 * items not yet handed out), resuming at its last commit:
 * the coordinator would grant exactly that tail again, and ours is still
 * live (every message renews all of a worker's leases, so a released lease
 * would never expire while we run). A drain gives every lease back at its
 * position.
 *
 * Lookahead: next(wait 0) may lease while fewer than max_leases leases are
 * live (default 2 = the coordinator's own in-flight limit), so a fast rank
 * takes at most one lease more than it reads (Dynamic balance stays good).
 * "Nothing now" answers are remembered for their retry_ms (no request storm).
 *
 * Augmented manifests (a records snapshot): a shard packs records, and its
 * size, lease ranges and offsets count records, not bytes (the coordinator
 * schedules them so). Each record of the range is one item (bucket "", key
 * the record's JSON, line: what worker/records.c expands into attribute
 * items) of size 1 in shard units, so the lease's position moves only when
 * a whole record is committed done, i.e. after all of its attributes.
 *
 * Fencing: a progress refused with S3S_ESTALE, or a token the heartbeat
 * thread reports revoked, kills the lease: its items still out fail their
 * next commit with S3S_ESTALE and those fetched ahead are skipped (valid).
 * Commands in replies: drain (drain now), stop (no more items), epoch
 * finished (informational: grants carry their epoch). */
#include "worker/source.h"

#include "common/dataset/snapshot.h"
#include "common/proto/msg.h"
#include "s3shard/error.h"
#include "worker/cache/cache.h"
#include "common/crypto/hex.h"
#include "common/util/log.h"
#include "worker/coord_inventory.h"
#include "worker/coordclient.h"
#include "worker/keypath.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LEASES_MAX 64

enum { IT_READY = 0, IT_OUT = 1, IT_DONE = 2 };

typedef struct citem {
    uint64_t entry; /* snapshot entry index */
    uint64_t base; /* offset of the object in its shard */
    uint64_t lim; /* bytes of the object inside the lease: [0, lim) */
    uint64_t off; /* committed offset in the object */
    uint8_t state;
} citem;

typedef struct cgrant {
    uint64_t shard, start, end, token, epoch;
    uint64_t sent; /* last position the coordinator acknowledged */
    int dead; /* revoked, stale or drained: no more progress */
    citem *items;
    uint32_t n;
    uint32_t next; /* lowest READY item (n when none) */
    uint32_t out; /* items handed out and not back */
} cgrant;

typedef struct coord_src {
    s3s__source base;
    /* from the options */
    char *url, *ca, *host, *channel;
    const char *chs[1]; /* the hello's channel list (the client keeps the pointer) */
    uint8_t *secret;
    size_t secret_len;
    uint32_t rank, world, local_rank, max_leases, timeout_ms;
    uint32_t epochs;
    /* the dataset, from the coordinator */
    s3s_job *job;
    s3s_snapshot *snap;
    s3s_plan *plan;
    const char *bucket; /* NULL for a records snapshot */
    int records; /* an augmented manifest: items are records, shard units are records */
    /* the hello's inventory (kept for re-hellos) */
    uint8_t snap_hash[S3S_PROTO_HASH_LEN]; /* what the inventory's shard ids refer to */
    int has_hash;
    s3s__msg_inv *inv;
    uint32_t n_inv;
    int inv_truncated;
    s3s__cc *cc;
    /* leases, oldest first */
    cgrant g[LEASES_MAX];
    uint32_t ng;
    uint64_t first_epoch; /* UINT64_MAX until the first grant */
    uint64_t epoch, position; /* epoch of the last item handed out, and its count */
    uint64_t retry_at_ms;
    int eof, drained, stopped;
    /* heartbeat mailbox (the heartbeat thread writes, calls read under mu) */
    pthread_mutex_t mu;
    uint64_t live[LEASES_MAX];
    uint32_t nlive;
    uint64_t revoked[LEASES_MAX];
    uint32_t nrevoked;
    uint32_t cmd; /* pending command from a heartbeat */
} coord_src;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the heartbeat mailbox ------------------------------------------------------ */

static void publish_live(coord_src *s)
{
    pthread_mutex_lock(&s->mu);
    s->nlive = 0;
    for (uint32_t i = 0; i < s->ng; i++)
        if (!s->g[i].dead)
            s->live[s->nlive++] = s->g[i].token;
    pthread_mutex_unlock(&s->mu);
}

static uint32_t hb_tokens(void *arg, uint64_t *out, uint32_t max)
{
    coord_src *s = arg;
    pthread_mutex_lock(&s->mu);
    uint32_t n = s->nlive < max ? s->nlive : max;
    memcpy(out, s->live, n * sizeof(*out));
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void hb_ack(void *arg, const s3s__msg *r)
{
    coord_src *s = arg;
    pthread_mutex_lock(&s->mu);
    for (uint32_t i = 0; i < r->u.heartbeat_ack.n_revoked && s->nrevoked < LEASES_MAX; i++)
        s->revoked[s->nrevoked++] = r->u.heartbeat_ack.revoked[i];
    if (r->cmd == S3S_CMD_DRAIN || r->cmd == S3S_CMD_STOP)
        s->cmd = r->cmd;
    pthread_mutex_unlock(&s->mu);
}

/* ---- leases ------------------------------------------------------------------------ */

static cgrant *grant_find(coord_src *s, uint64_t token)
{
    for (uint32_t i = 0; i < s->ng; i++)
        if (s->g[i].token == token)
            return &s->g[i];
    return NULL;
}

static void grant_remove(coord_src *s, cgrant *g)
{
    uint32_t i = (uint32_t)(g - s->g);
    free(g->items);
    memmove(&s->g[i], &s->g[i + 1], (s->ng - i - 1) * sizeof(s->g[0]));
    s->ng--;
    publish_live(s);
}

static void grant_kill(coord_src *s, cgrant *g)
{
    g->dead = 1;
    if (g->out == 0)
        grant_remove(s, g);
    else
        publish_live(s);
}

static uint32_t live_count(const coord_src *s)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->ng; i++)
        n += !s->g[i].dead;
    return n;
}

/* The lease's position: the prefix of finished items. *fin = every item done. */
static uint64_t grant_prefix(const cgrant *g, int *fin)
{
    uint64_t p = g->start;
    for (uint32_t i = 0; i < g->n; i++) {
        const citem *it = &g->items[i];
        uint64_t at = it->base + (it->state == IT_DONE ? it->lim : it->off);
        if (at > p)
            p = at;
        if (it->state != IT_DONE) {
            *fin = 0;
            return p < g->end ? p : g->end;
        }
    }
    *fin = 1;
    return g->end;
}

static void take_cmd(coord_src *s, const s3s__msg *r)
{
    if (r->cmd == S3S_CMD_DRAIN || r->cmd == S3S_CMD_STOP) {
        pthread_mutex_lock(&s->mu);
        s->cmd = r->cmd;
        pthread_mutex_unlock(&s->mu);
    }
}

static int coord_drain(s3s__source *base, const char *reason, s3s__errbuf *eb);

/* Applies what the heartbeat thread saw: revoked tokens and commands. */
static void apply_mailbox(coord_src *s)
{
    uint64_t rev[LEASES_MAX];
    pthread_mutex_lock(&s->mu);
    uint32_t nrev = s->nrevoked, cmd = s->cmd;
    memcpy(rev, s->revoked, nrev * sizeof(rev[0]));
    s->nrevoked = 0;
    s->cmd = S3S_CMD_NONE;
    pthread_mutex_unlock(&s->mu);
    for (uint32_t i = 0; i < nrev; i++) {
        cgrant *g = grant_find(s, rev[i]);
        if (g != NULL && !g->dead)
            grant_kill(s, g);
    }
    if (cmd == S3S_CMD_STOP)
        s->stopped = 1;
    else if (cmd == S3S_CMD_DRAIN && !s->drained)
        coord_drain(&s->base, "the coordinator asked for a drain", NULL);
}

/* Sends the position of g (done when every item is finished). */
static int grant_report(coord_src *s, cgrant *g, s3s__errbuf *eb)
{
    int fin = 0;
    uint64_t p = grant_prefix(g, &fin);
    if (p <= g->sent && !fin)
        return 0;
    s3s__msg_prog it = {g->shard, g->token, p, fin != 0};
    s3s__msg r;
    int rc = s3s__cc_progress(s->cc, &it, 1, &r, eb);
    if (rc != 0)
        return rc;
    take_cmd(s, &r);
    uint32_t res = r.type == S3S_MSG_PROGRESS_ACK && r.u.ack.n > 0 ? r.u.ack.items[0].result
                                                                   : (uint32_t)S3S_EPROTO;
    s3s__msg_fini(&r);
    if (res == S3S_ESTALE) {
        uint64_t tok = g->token, sh = g->shard;
        grant_kill(s, g);
        return s3s__err_set(eb, S3S_ESTALE, "lease %llu of shard %llu was revoked",
                            (unsigned long long)tok, (unsigned long long)sh);
    }
    if (res != 0)
        return s3s__err_set(eb, (int)res, "progress of shard %llu at %llu refused: %s",
                            (unsigned long long)g->shard, (unsigned long long)p,
                            s3s_strerror((int)res));
    g->sent = p;
    if (fin) /* every item is done, so none is out */
        grant_remove(s, g);
    return 0;
}

/* Cuts a grant into items. */
static int grant_add(coord_src *s, const s3s__msg_lease_grant *lg, uint64_t epoch, s3s__errbuf *eb)
{
    s3s_shard sh;
    if (lg->shard > UINT32_MAX || s3s_plan_shard(s->plan, (uint32_t)lg->shard, &sh) != 0)
        return s3s__err_set(eb, S3S_EPROTO, "granted shard %llu is not in the snapshot",
                            (unsigned long long)lg->shard);
    cgrant *g = &s->g[s->ng];
    memset(g, 0, sizeof(*g));
    g->shard = lg->shard;
    g->start = lg->start;
    g->end = lg->end;
    g->token = lg->token;
    g->epoch = epoch;
    g->sent = lg->start;
    g->items = calloc(sh.count ? sh.count : 1, sizeof(*g->items));
    if (g->items == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    uint64_t base = 0;
    for (uint32_t i = 0; i < sh.count; i++) {
        s3s_entry e;
        if (s3s_snapshot_entry(s->snap, sh.first + i, &e) != 0) {
            free(g->items);
            return s3s__err_set(eb, S3S_EPROTO, "shard %llu past the snapshot",
                                (unsigned long long)lg->shard);
        }
        uint64_t units = s->records ? 1 : e.size; /* a record is one unit of its shard */
        uint64_t b = base, eend = base + units;
        base = eend;
        int in = units > 0 ? (b < g->end && eend > g->start) : (b >= g->start && b <= g->end);
        if (!in || (!s->records && s3s__keypath_is_folder_marker(e.key, e.key_len, e.size)))
            continue;
        citem *it = &g->items[g->n++];
        it->entry = sh.first + i;
        it->base = b;
        it->lim = (eend < g->end ? eend : g->end) - b;
        it->off = g->start > b ? g->start - b : 0;
    }
    s->ng++;
    publish_live(s);
    if (g->n == 0) /* nothing to read (a range of folder markers): done at once */
        return grant_report(s, g, eb);
    return 0;
}

static int say_hello_again(coord_src *s, s3s__errbuf *eb)
{
    for (uint32_t i = s->ng; i-- > 0;) { /* the coordinator forgot us: every lease is gone */
        s->g[i].dead = 1;
        if (s->g[i].out == 0)
            grant_remove(s, &s->g[i]);
    }
    publish_live(s);
    return s3s__cc_hello(s->cc, eb);
}

/* Asks for leases. 0 (maybe none granted: retry_at set), S3S_EEOF, or an error. */
static int lease_more(coord_src *s, s3s__errbuf *eb)
{
    uint32_t want = s->max_leases - live_count(s);
    s3s__msg r;
    int rc = s3s__cc_lease(s->cc, s->channel, s->epoch, want, &r, eb);
    if (rc == S3S_ENOTFOUND) { /* unknown or departed worker: hello again */
        rc = say_hello_again(s, eb);
        if (rc == 0)
            rc = s3s__cc_lease(s->cc, s->channel, s->epoch, want, &r, eb);
    }
    if (rc != 0)
        return rc;
    if (r.type != S3S_MSG_GRANT) {
        s3s__msg_fini(&r);
        return s3s__err_set(eb, S3S_EPROTO, "expected grant, got %s", s3s__msg_type_name(r.type));
    }
    take_cmd(s, &r);
    const s3s__msg_grant *gr = &r.u.grant;
    if (gr->status == S3S_GRANT_OK) {
        if (s->first_epoch == UINT64_MAX)
            s->first_epoch = gr->epoch;
        if (s->epochs > 0 && gr->epoch >= s->first_epoch + s->epochs)
            s->stopped = 1; /* past our epochs: bye gives the leases back */
        for (uint32_t i = 0; i < gr->n && rc == 0; i++) {
            if (s->ng >= LEASES_MAX) { /* more than asked: let it expire with us */
                rc = s3s__err_set(eb, S3S_EPROTO, "granted more leases than asked");
                break;
            }
            rc = grant_add(s, &gr->grants[i], gr->epoch, eb);
            if (rc == S3S_ESTALE)
                rc = 0; /* an empty range refused: nothing lost */
        }
    } else if (gr->status == S3S_GRANT_EPOCH_DONE && r.cmd == S3S_CMD_STOP) {
        s->stopped = 1;
    } else {
        uint32_t ms = gr->retry_ms ? gr->retry_ms : 100;
        s->retry_at_ms = mono_ms() + ms;
    }
    s3s__msg_fini(&r);
    return rc;
}

static int emit(coord_src *s, cgrant *g, s3s__item_desc *out, s3s__errbuf *eb)
{
    uint32_t idx = g->next;
    citem *it = &g->items[idx];
    s3s_entry e;
    s3s_snapshot_entry(s->snap, it->entry, &e);
    memset(out, 0, sizeof(*out));
    out->bucket = strdup(s->records ? "" : s->bucket);
    out->key = strndup(e.key, e.key_len);
    out->etag = strdup(e.etag);
    if (!out->bucket || !out->key || !out->etag) {
        s3s__item_desc_fini(out);
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    }
    out->size = e.size;
    out->offset = s->records ? 0 : it->off; /* a record is read whole, or again */
    if (s->records)
        out->line = s3s__snapshot_entry_line(s->snap, (size_t)it->entry);
    if (g->epoch != s->epoch) {
        s->epoch = g->epoch;
        s->position = 0;
    }
    out->epoch = g->epoch;
    out->position = s->position++;
    out->token = g->token;
    out->sub = idx;
    it->state = IT_OUT;
    g->out++;
    while (g->next < g->n && g->items[g->next].state != IT_READY)
        g->next++;
    return 0;
}

static int coord_next(s3s__source *base, s3s__item_desc *out, int wait, s3s__errbuf *eb)
{
    coord_src *s = (coord_src *)base;
    (void)wait; /* never blocks: S3S_EBUSY makes the worker ask again later */
    apply_mailbox(s);
    for (int round = 0;; round++) {
        if (s->drained || s->eof)
            return S3S_EEOF;
        for (uint32_t i = 0; i < s->ng; i++) {
            cgrant *g = &s->g[i];
            if (!g->dead && g->next < g->n &&
                (s->epochs == 0 || g->epoch < s->first_epoch + s->epochs))
                return emit(s, g, out, eb);
        }
        if (s->stopped) {
            s->eof = 1;
            return S3S_EEOF;
        }
        if (round > 0 || live_count(s) >= s->max_leases || mono_ms() < s->retry_at_ms)
            return S3S_EBUSY;
        int rc = lease_more(s, eb);
        if (rc != 0)
            return rc;
        apply_mailbox(s);
    }
}

static int coord_commit(s3s__source *base, const s3s__item_desc *d, uint64_t offset, int done,
                        s3s__errbuf *eb)
{
    coord_src *s = (coord_src *)base;
    apply_mailbox(s);
    cgrant *g = grant_find(s, d->token);
    if (g == NULL || g->dead || d->sub >= g->n)
        return s3s__err_set(eb, S3S_ESTALE, "the lease of %s (shard %llu) was revoked", d->key,
                            g ? (unsigned long long)g->shard : 0ull);
    citem *it = &g->items[d->sub];
    if (offset > it->off)
        it->off = offset < it->lim ? offset : it->lim;
    if (done || offset >= it->lim) {
        if (it->state == IT_OUT)
            g->out--;
        it->state = IT_DONE;
        it->off = it->lim;
    }
    return grant_report(s, g, eb);
}

/* Bytes fetched from S3: the next progress or drain reports them (bytes
 * re-downloaded, per epoch, in the coordinator's status). */
static void coord_fetched(s3s__source *base, uint64_t n)
{
    s3s__cc_note_fetched(((coord_src *)base)->cc, n);
}

static void coord_release(s3s__source *base, const s3s__item_desc *d)
{
    coord_src *s = (coord_src *)base;
    cgrant *g = grant_find(s, d->token);
    if (g == NULL || d->sub >= g->n || g->items[d->sub].state != IT_OUT)
        return;
    g->out--;
    if (g->dead) {
        if (g->out == 0)
            grant_remove(s, g);
        return;
    }
    g->items[d->sub].state = IT_READY; /* read again from its last commit */
    if (d->sub < g->next)
        g->next = (uint32_t)d->sub;
}

static int coord_valid(s3s__source *base, const s3s__item_desc *d)
{
    coord_src *s = (coord_src *)base;
    apply_mailbox(s);
    cgrant *g = grant_find(s, d->token);
    return g != NULL && !g->dead;
}

static int coord_drain(s3s__source *base, const char *reason, s3s__errbuf *eb)
{
    coord_src *s = (coord_src *)base;
    if (s->drained)
        return 0;
    s->drained = 1;
    if (s->cc == NULL)
        return 0;
    s3s__msg_prog items[LEASES_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->ng; i++) {
        cgrant *g = &s->g[i];
        if (g->dead)
            continue;
        int fin = 0;
        uint64_t p = grant_prefix(g, &fin);
        if (p > g->sent || fin)
            items[n++] = (s3s__msg_prog){g->shard, g->token, p, fin != 0};
    }
    for (uint32_t i = 0; i < s->ng; i++)
        s->g[i].dead = 1;
    publish_live(s);
    s3s__msg r;
    int rc = s3s__cc_drain(s->cc, items, n, reason ? reason : "drain", &r, eb);
    if (rc == 0)
        s3s__msg_fini(&r);
    return rc;
}

static void coord_destroy(s3s__source *base)
{
    coord_src *s = (coord_src *)base;
    if (s == NULL)
        return;
    if (s->cc != NULL) {
        if (!s->drained)
            s3s__cc_bye(s->cc, "done", NULL);
        s3s__cc_close(s->cc);
    }
    for (uint32_t i = 0; i < s->ng; i++)
        free(s->g[i].items);
    s3s_plan_destroy(s->plan);
    s3s_snapshot_destroy(s->snap);
    s3s_job_destroy(s->job);
    free(s->inv);
    if (s->secret != NULL)
        memset(s->secret, 0, s->secret_len);
    free(s->secret);
    free(s->url);
    free(s->ca);
    free(s->host);
    free(s->channel);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- setup ------------------------------------------------------------------------- */

/* The job spec and the channel's snapshot, from the coordinator's status. */
static int load_dataset(coord_src *s, const char *want_channel, s3s__errbuf *eb)
{
    s3s__msg r;
    int rc = s3s__cc_status(s->url, s->secret, s->secret_len, s->ca, 0x2,
                            s->timeout_ms < 30000 ? s->timeout_ms : 30000, &r, eb);
    if (rc != 0)
        return rc;
    const s3s__pval *job = s3s__pval_get(r.u.status_reply.root, "job");
    const s3s__pval *sh = s3s__pval_get(r.u.status_reply.root, "snapshot_hash");
    if (sh != NULL && sh->type == S3S_PV_STR && sh->n == 2 * S3S_PROTO_HASH_LEN &&
        s3s__hex_decode(sh->v.s, s->snap_hash, S3S_PROTO_HASH_LEN) == 0)
        s->has_hash = 1;
    const s3s__pval *snaps = s3s__pval_get(r.u.status_reply.root, "snapshots");
    s3s_errinfo ei = {0};
    if (job == NULL || job->type != S3S_PV_STR)
        rc = s3s__err_set(eb, S3S_EPROTO, "the coordinator's status has no job spec");
    else if (s3s_job_parse(&s->job, job->v.s, job->n, "coordinator job", &ei) != 0)
        rc = s3s__err_set(eb, S3S_EPROTO, "job from the coordinator: %s", ei.msg);
    if (rc == 0) {
        const s3s_channel *ch =
            want_channel ? s3s_job_channel_find(s->job, want_channel) : s3s_job_channel(s->job, 0);
        const s3s__pval *sf = ch && snaps ? s3s__pval_get(snaps, ch->name) : NULL;
        if (ch == NULL)
            rc = s3s__err_set(eb, S3S_EINVAL, "the coordinator's job has no channel \"%s\"",
                              want_channel ? want_channel : "");
        else if (sf == NULL)
            rc = s3s__err_set(eb, S3S_EPROTO, "the coordinator sent no snapshot of channel %s",
                              ch->name);
        else if (sf->type != S3S_PV_BIN)
            rc = s3s__err_set(eb, S3S_ETOOBIG,
                              "the snapshot of channel %s does not fit in one message: raise "
                              "the coordinator's --max-msg",
                              ch->name);
        else if (s3s_snapshot_load_mem(&s->snap, sf->v.bin, sf->n, &ei) != 0)
            rc = s3s__err_set(eb, S3S_EPROTO, "snapshot from the coordinator: %s", ei.msg);
        else if ((s->channel = strdup(ch->name)) == NULL)
            rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
        if (rc == 0) {
            s3s_plan_opts po;
            s3s_plan_opts_init(&po);
            s3s_plan_opts_from_channel(&po, ch, 0);
            s->records = s3s_snapshot_kind_get(s->snap) == S3S_SNAP_RECORDS;
            if (!s->records && (s->bucket = s3s_snapshot_bucket(s->snap)) == NULL)
                rc = s3s__err_set(eb, S3S_ENOTSUP, "channel %s: snapshot of %s is not in S3",
                                  ch->name, s3s_snapshot_source(s->snap));
            else if (s3s_plan_create(&s->plan, s->snap, &po, &ei) != 0)
                rc = s3s__err_set(eb, S3S_EINVAL, "plan: %s", ei.msg);
        }
    }
    s3s__msg_fini(&r);
    return rc;
}

static char *dup_or_null(const char *p, int *bad)
{
    if (p == NULL)
        return NULL;
    char *c = strdup(p);
    if (c == NULL)
        *bad = 1;
    return c;
}

int s3s__source_coord_create(s3s__source **out, const s3s_worker_opts *opts, s3s__errbuf *eb)
{
    if (opts->rank != S3S_WORKER_RANK_ANY && opts->world_size != 0 &&
        opts->rank >= opts->world_size)
        return s3s__err_set(eb, S3S_EINVAL, "rank %u is not below world size %u", opts->rank,
                            opts->world_size);
    if (opts->coord_leases > LEASES_MAX)
        return s3s__err_set(eb, S3S_EINVAL, "coord_leases %u outside 1 .. %d", opts->coord_leases,
                            LEASES_MAX);
    coord_src *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    s->base.next = coord_next;
    s->base.commit = coord_commit;
    s->base.release = coord_release;
    s->base.destroy = coord_destroy;
    s->base.valid = coord_valid;
    s->base.drain = coord_drain;
    s->base.fetched = coord_fetched;
    int bad = 0;
    s->url = dup_or_null(opts->coordinator, &bad);
    s->ca = dup_or_null(opts->coord_tls_ca, &bad);
    s->host = dup_or_null(opts->host, &bad);
    s->rank = opts->rank;
    s->world = opts->world_size;
    s->local_rank = opts->local_rank;
    s->max_leases = opts->coord_leases ? opts->coord_leases : 2;
    s->timeout_ms = opts->coord_timeout_ms ? opts->coord_timeout_ms : 60000;
    s->epochs = opts->epochs;
    s->first_epoch = UINT64_MAX;
    int rc = 0;
    if (bad)
        rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    else if (opts->coord_secret != NULL && opts->coord_secret_len > 0) {
        s->secret = malloc(opts->coord_secret_len);
        if (s->secret == NULL)
            rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
        else {
            memcpy(s->secret, opts->coord_secret, opts->coord_secret_len);
            s->secret_len = opts->coord_secret_len;
        }
    } else {
        rc = s3s__cc_secret_load(opts->coord_secret_file, &s->secret, &s->secret_len, eb);
    }
    if (rc == 0)
        rc = load_dataset(s, opts->channel, eb);
    if (rc != 0) {
        coord_destroy(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

const s3s_job *s3s__source_coord_job(s3s__source *base)
{
    return ((coord_src *)base)->job;
}

int s3s__source_coord_connect(s3s__source *base, struct s3s__cache *cache, uint32_t *rank,
                              uint32_t *world, s3s__errbuf *eb)
{
    coord_src *s = (coord_src *)base;
    s3s__cc_opts co;
    s3s__cc_opts_init(&co);
    co.url = s->url;
    co.secret = s->secret;
    co.secret_len = s->secret_len;
    co.tls_ca = s->ca;
    co.timeout_ms = s->timeout_ms;
    co.host = s->host;
    co.rank = s->rank;
    co.local_rank = s->local_rank;
    co.world_size = s->world;
    co.incarnation = (uint64_t)time(NULL); /* the coordinator keeps 32 bits */
    s->chs[0] = s->channel;
    co.channels = s->chs;
    co.n_channels = 1;
    if (cache != NULL && s->has_hash && !s->records) { /* records are not cached objects */
        s3s__errbuf ieb = {{0}};
        int tr = 0;
        if (s3s__coord_inventory(cache, s->snap, s->plan, S3S_PROTO_INV_MAX, &s->inv, &s->n_inv,
                                 &tr, &ieb) != 0)
            S3S_LOGW("cache inventory: %s; saying hello without it", ieb.msg);
        s->inv_truncated = tr;
        co.snapshot_hash = s->snap_hash;
        co.inv = s->inv;
        co.n_inv = s->n_inv;
        co.inv_truncated = tr != 0;
        S3S_LOGI("hello with %u cached shards%s", s->n_inv, tr ? " (truncated)" : "");
    }
    co.hb_tokens = hb_tokens;
    co.hb_ack = hb_ack;
    co.hb_arg = s;
    int rc = s3s__cc_open(&s->cc, &co, eb);
    if (rc != 0)
        return rc;
    *rank = s3s__cc_welcome(s->cc)->rank;
    *world = s3s__cc_welcome(s->cc)->world_size;
    s->world = *world;
    return 0;
}

const s3s_snapshot *s3s__source_coord_snapshot(s3s__source *base)
{
    return ((coord_src *)base)->snap;
}

uint32_t s3s__source_coord_world(s3s__source *base)
{
    return ((coord_src *)base)->world;
}
