/* coord_handle.c: one request in, one reply out: decoding, the reply cache
 * (resends answered with the same bytes), and the scheduler calls. */
#include "common/util/log.h"
#include "coordinator/coord_int.h"
#include "coordinator/sched_impl.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEERS_MAX (1u << 20)
#define GRANTS_MAX 64
#define LOCAL_ITEMS 16

/* ---- the reply cache: open addressing by worker id ---------------------- */

static size_t peer_slot(const s3s__coord *c, uint64_t wid)
{
    size_t mask = c->peers_cap - 1;
    size_t i = (size_t)(wid * 0x9E3779B97F4A7C15ull) & mask;
    while (c->peers[i].wid != 0 && c->peers[i].wid != wid)
        i = (i + 1) & mask;
    return i;
}

static s3s__coord_peer *peer_get(s3s__coord *c, uint64_t wid, bool create)
{
    if (c->peers_cap == 0) {
        if (!create)
            return NULL;
        c->peers = calloc(64, sizeof(*c->peers));
        if (c->peers == NULL)
            return NULL;
        c->peers_cap = 64;
    }
    size_t i = peer_slot(c, wid);
    if (c->peers[i].wid == wid)
        return &c->peers[i];
    if (!create || c->npeers >= PEERS_MAX)
        return NULL;
    if ((c->npeers + 1) * 2 > c->peers_cap) {
        size_t ncap = c->peers_cap * 2;
        s3s__coord_peer *nv = calloc(ncap, sizeof(*nv));
        if (nv == NULL)
            return NULL;
        s3s__coord_peer *old = c->peers;
        size_t ocap = c->peers_cap;
        c->peers = nv;
        c->peers_cap = ncap;
        for (size_t k = 0; k < ocap; k++)
            if (old[k].wid != 0)
                c->peers[peer_slot(c, old[k].wid)] = old[k];
        free(old);
        i = peer_slot(c, wid);
    }
    c->peers[i].wid = wid;
    c->peers[i].rank = S3S_PROTO_RANK_NONE;
    c->npeers++;
    return &c->peers[i];
}

/* ---- replies -------------------------------------------------------------- */

static void encode_or_error(s3s__coord *c, s3s__msg *rm, s3s__buf *reply)
{
    s3s__errbuf eb;
    if (s3s__msg_encode(reply, rm, &c->proto, &eb) == 0)
        return;
    s3s__msg em;
    s3s__msg_init(&em, S3S_MSG_ERROR, 0, rm->seq);
    em.u.error.code = S3S_ETOOBIG;
    snprintf(em.u.error.message, sizeof(em.u.error.message), "reply not encodable: %.900s", eb.msg);
    s3s__buf_reset(reply);
    s3s__msg_encode(reply, &em, &c->proto, NULL);
}

static void error_reply(s3s__coord *c, uint64_t seq, int code, const char *text, s3s__buf *reply)
{
    s3s__msg em;
    s3s__msg_init(&em, S3S_MSG_ERROR, 0, seq);
    em.u.error.code = (uint32_t)(code > 0 && code <= 65535 ? code : S3S_EPROTO);
    snprintf(em.u.error.message, sizeof(em.u.error.message), "%s", text);
    c->cnt.errors++;
    encode_or_error(c, &em, reply);
}

/* Commands piggybacked from scheduler reply flags. */
static void set_cmd(s3s__msg *rm, const s3s__coord_chan *ch, const s3s__sched_reply *r)
{
    if (r->flags & S3S__REPLY_DRAIN) {
        rm->cmd = S3S_CMD_DRAIN;
    } else if (r->flags & S3S__REPLY_STOP) {
        rm->cmd = S3S_CMD_STOP;
    } else if (r->flags & S3S__REPLY_NEW_EPOCH) {
        rm->cmd = S3S_CMD_EPOCH_FINISHED;
        rm->cmd_epoch = r->epoch;
        snprintf(rm->cmd_channel, sizeof(rm->cmd_channel), "%s", ch->ch->name);
    }
}

/* ---- requests ------------------------------------------------------------- */

static uint32_t pick_rank(s3s__coord *c, s3s__coord_peer *p)
{
    if (p->rank != S3S_PROTO_RANK_NONE)
        return p->rank;
    const s3s__sched *s = c->chans[0].sched;
    for (uint32_t r = 0; r < c->world_size; r++)
        if (s->rank_worker[r] == S3S__NONE) {
            bool taken = false; /* promised to a peer that has not leased yet */
            for (size_t i = 0; i < c->peers_cap && !taken; i++)
                taken = c->peers[i].wid != 0 && c->peers[i].rank == r;
            if (!taken)
                return r;
        }
    return S3S_PROTO_RANK_NONE;
}

static int do_hello(s3s__coord *c, s3s__coord_peer *p, const s3s__msg *m, s3s__msg *rm,
                    s3s__errbuf *eb)
{
    const s3s__msg_hello *h = &m->u.hello;
    if (h->world_size != 0) {
        int rc = s3s__coord_set_world(c, h->world_size, eb);
        if (rc != 0)
            return rc;
    }
    if (c->world_size == 0)
        return s3s__err_set(eb, S3S_ECONFIG,
                            "the world size is not known yet: start the coordinator with "
                            "--world-size or say it in hello");
    uint32_t rank = h->rank != S3S_PROTO_RANK_NONE ? h->rank : pick_rank(c, p);
    if (rank == S3S_PROTO_RANK_NONE)
        return s3s__err_set(eb, S3S_EBUSY, "every rank of %u is taken", c->world_size);
    uint32_t mask = 0;
    for (uint32_t i = 0; i < h->n_channels; i++) {
        s3s__coord_chan *ch = s3s__coord_chan_find(c, h->channels[i]);
        if (ch == NULL)
            return s3s__err_set(eb, S3S_ENOTFOUND, "no channel \"%s\" in this job", h->channels[i]);
        uint32_t inc = h->incarnation > UINT32_MAX ? UINT32_MAX : (uint32_t)h->incarnation;
        int rc = s3s__sched_hello(ch->sched, m->sender, rank, inc, c->now_ms);
        if (rc != 0)
            return s3s__err_set(eb, rc, "channel %s: hello refused (%s)", ch->ch->name,
                                rc == S3S_ESTALE ? "an older incarnation of a live worker"
                                                 : s3s_strerror(rc));
        mask |= 1u << ch->index;
    }
    if (h->n_inv > 0 && h->has_snapshot && memcmp(h->snapshot_hash, c->snap_hash, 32) == 0) {
        uint64_t *ids = malloc(h->n_inv * sizeof(*ids));
        if (ids != NULL) {
            for (uint32_t ci = 0; ci < h->n_channels; ci++) {
                size_t n = 0;
                for (uint32_t k = 0; k < h->n_inv; k++)
                    if (h->inv[k].channel == ci)
                        ids[n++] = h->inv[k].shard;
                s3s__coord_chan *ch = s3s__coord_chan_find(c, h->channels[ci]);
                s3s__sched_cache_set(ch->sched, m->sender, ids, n, 1);
            }
            free(ids);
        }
    }
    p->chan_mask = mask;
    p->rank = rank;
    s3s__msg_init(rm, S3S_MSG_WELCOME, 0, m->seq);
    s3s__msg_welcome *w = &rm->u.welcome;
    w->rank = rank;
    w->world_size = c->world_size;
    w->lease_ttl_ms = (uint32_t)c->lease_ttl_ms;
    w->heartbeat_ms = (uint32_t)(c->lease_ttl_ms / 4 ? c->lease_ttl_ms / 4 : 1);
    w->max_msg = (uint32_t)c->proto.max_msg;
    memcpy(w->job_hash, c->job_hash, 32);
    memcpy(w->snapshot_hash, c->snap_hash, 32);
    w->n_channels = c->nchan;
    for (uint32_t i = 0; i < c->nchan; i++) {
        s3s__sched_stats st;
        s3s__sched_stats_get(c->chans[i].sched, &st);
        snprintf(w->channels[i].name, sizeof(w->channels[i].name), "%s", c->chans[i].ch->name);
        w->channels[i].epoch = st.epoch;
        w->channels[i].distribution = (uint32_t)c->chans[i].ch->distribution;
        w->channels[i].n_shards = c->chans[i].plan ? s3s_plan_shard_count(c->chans[i].plan) : 0;
    }
    return 0;
}

static int do_lease(s3s__coord *c, const s3s__msg *m, s3s__msg *rm, s3s__msg_lease_grant *lg,
                    int *wait, s3s__errbuf *eb)
{
    s3s__coord_chan *ch = s3s__coord_chan_find(c, m->u.lease.channel);
    if (ch == NULL || ch->sched == NULL)
        return s3s__err_set(eb, S3S_ENOTFOUND, "no channel \"%s\" in this job (or no hello yet)",
                            m->u.lease.channel);
    s3s__sched_grant g[GRANTS_MAX];
    s3s__sched_reply r;
    size_t want = m->u.lease.max_shards < GRANTS_MAX ? m->u.lease.max_shards : GRANTS_MAX;
    int rc = s3s__sched_request(ch->sched, m->sender, want, c->now_ms, g, GRANTS_MAX, &r);
    if (rc != 0)
        return s3s__err_set(eb, rc, "lease refused: %s",
                            rc == S3S_ENOTFOUND ? "unknown or departed worker: say hello again"
                                                : s3s_strerror(rc));
    uint64_t maxtok = 0;
    for (size_t i = 0; i < r.ngrants; i++)
        maxtok = g[i].token > maxtok ? g[i].token : maxtok;
    if (r.ngrants > 0)
        *wait = s3s__coord_token_granted(c, ch, maxtok);
    s3s__coord_advance(c);
    s3s__msg_init(rm, S3S_MSG_GRANT, 0, m->seq);
    s3s__msg_grant *gr = &rm->u.grant;
    snprintf(gr->channel, sizeof(gr->channel), "%s", ch->ch->name);
    gr->epoch = r.epoch;
    for (size_t i = 0; i < r.ngrants; i++) {
        lg[i].shard = g[i].shard_id;
        lg[i].start = g[i].start;
        lg[i].end = g[i].end;
        lg[i].token = (g[i].token << S3S__COORD_TOKEN_SHIFT) | ch->index;
        lg[i].ttl_ms = (uint32_t)c->lease_ttl_ms;
    }
    gr->n = (uint32_t)r.ngrants;
    gr->grants = lg;
    if (r.ngrants > 0)
        gr->status = S3S_GRANT_OK;
    else if ((r.flags & S3S__REPLY_STOP) || ch->finished)
        gr->status = S3S_GRANT_EPOCH_DONE;
    else {
        gr->status = S3S_GRANT_NONE_NOW;
        gr->retry_ms = S3S__COORD_RETRY_MS;
    }
    set_cmd(rm, ch, &r);
    if (ch->finished && rm->cmd == S3S_CMD_NONE)
        rm->cmd = S3S_CMD_STOP;
    return 0;
}

/* Applies progress items (progress and drain). */
static void apply_items(s3s__coord *c, const s3s__msg *m, const s3s__msg_progress *pr,
                        s3s__msg_prog_result *res)
{
    for (uint32_t i = 0; i < pr->n; i++) {
        const s3s__msg_prog *it = &pr->items[i];
        uint32_t ci = (uint32_t)(it->token & ((1u << S3S__COORD_TOKEN_SHIFT) - 1));
        uint64_t tok = it->token >> S3S__COORD_TOKEN_SHIFT;
        res[i].shard = it->shard;
        res[i].token = it->token;
        res[i].committed = 0;
        if (ci >= c->nchan || c->chans[ci].sched == NULL || tok == 0) {
            res[i].result = S3S_ESTALE;
            continue;
        }
        s3s__sched *s = c->chans[ci].sched;
        uint32_t slot = s3s__sched_worker_find(s, m->sender);
        uint32_t li =
            slot == S3S__NONE ? S3S__NONE : s3s__sched_lease_find(s, &s->workers[slot], tok);
        if (li != S3S__NONE && s->shards[s->leases[li].pos].id != it->shard) {
            res[i].result = S3S_EINVAL;
            res[i].committed = s->leases[li].committed;
            continue;
        }
        int rc = it->done ? s3s__sched_done(s, m->sender, tok, it->offset, 0, c->now_ms)
                          : s3s__sched_progress(s, m->sender, tok, it->offset, 0, c->now_ms);
        res[i].result = (uint32_t)rc;
        if (rc == 0)
            res[i].committed = it->offset;
        else if (li != S3S__NONE && s->leases[li].token == tok)
            res[i].committed = s->leases[li].committed;
    }
    s3s__coord_advance(c);
}

static int do_heartbeat(s3s__coord *c, s3s__coord_peer *p, const s3s__msg *m, s3s__msg *rm,
                        uint64_t *revoked)
{
    s3s__msg_init(rm, S3S_MSG_HEARTBEAT_ACK, 0, m->seq);
    uint32_t known = p->chan_mask;
    for (uint32_t i = 0; i < c->nchan; i++) {
        /* A worker that said hello to an earlier incarnation (a restart
         * replayed it from the journal) has no peer record here yet: its
         * channels are those whose scheduler knows it live. Without this its
         * heartbeats renewed nothing, and a rank reading slowly lost its
         * leases one TTL after every coordinator restart. */
        if (!(known & (1u << i)) && (known != 0 || c->chans[i].sched == NULL))
            continue;
        s3s__sched_reply r;
        if (s3s__sched_heartbeat(c->chans[i].sched, m->sender, c->now_ms, &r) != 0)
            continue;
        p->chan_mask |= 1u << i;
        if (rm->cmd == S3S_CMD_NONE)
            set_cmd(rm, &c->chans[i], &r);
    }
    uint32_t nrev = 0;
    for (uint32_t i = 0; i < m->u.heartbeat.n; i++) {
        uint64_t t = m->u.heartbeat.tokens[i];
        uint32_t ci = (uint32_t)(t & ((1u << S3S__COORD_TOKEN_SHIFT) - 1));
        bool live = false;
        if (ci < c->nchan && c->chans[ci].sched != NULL) {
            s3s__sched *s = c->chans[ci].sched;
            uint32_t slot = s3s__sched_worker_find(s, m->sender);
            live = slot != S3S__NONE &&
                s3s__sched_lease_find(s, &s->workers[slot], t >> S3S__COORD_TOKEN_SHIFT) !=
                    S3S__NONE;
        }
        if (!live)
            revoked[nrev++] = t;
    }
    s3s__coord_advance(c);
    rm->u.heartbeat_ack.lease_ttl_ms = (uint32_t)c->lease_ttl_ms;
    rm->u.heartbeat_ack.n_revoked = nrev;
    rm->u.heartbeat_ack.revoked = revoked;
    return 0;
}

/* The optional `fetched` count (soft): for the channel of the first item, or
 * the worker's first channel. */
static void note_fetched(s3s__coord *c, const s3s__coord_peer *p, const s3s__msg_progress *pr)
{
    uint32_t ci = UINT32_MAX;
    if (pr->n > 0)
        ci = (uint32_t)(pr->items[0].token & ((1u << S3S__COORD_TOKEN_SHIFT) - 1));
    for (uint32_t i = 0; ci == UINT32_MAX && i < c->nchan; i++)
        if (p->chan_mask & (1u << i))
            ci = i;
    if (ci < c->nchan)
        c->chans[ci].fetched += pr->fetched;
}

static void leave_all(s3s__coord *c, s3s__coord_peer *p, uint64_t wid, bool bye)
{
    for (uint32_t i = 0; i < c->nchan; i++)
        if (p->chan_mask & (1u << i)) {
            if (bye)
                s3s__sched_bye(c->chans[i].sched, wid, c->now_ms);
            else
                s3s__sched_drain(c->chans[i].sched, wid, c->now_ms);
        }
    if (bye)
        p->rank = S3S_PROTO_RANK_NONE;
    s3s__coord_advance(c);
}

/* Returns 1 when a grant's reply must wait for the journal (its token is not
 * below a durable reservation yet). */
static int dispatch(s3s__coord *c, s3s__coord_peer *p, const s3s__msg *m, s3s__buf *reply)
{
    int wait = 0;
    s3s__msg rm;
    s3s__errbuf eb;
    eb.msg[0] = 0;
    int rc = 0;
    s3s__msg_lease_grant lg[GRANTS_MAX];
    s3s__msg_prog_result *res = NULL, res_local[LOCAL_ITEMS]; /* no malloc for a few items */
    uint64_t *rev = NULL, rev_local[LOCAL_ITEMS];
    switch (m->type) {
    case S3S_MSG_HELLO:
        rc = do_hello(c, p, m, &rm, &eb);
        break;
    case S3S_MSG_LEASE:
        rc = do_lease(c, m, &rm, lg, &wait, &eb);
        break;
    case S3S_MSG_PROGRESS:
    case S3S_MSG_DRAIN:
        res = m->u.progress.n <= LOCAL_ITEMS ? res_local : calloc(m->u.progress.n, sizeof(*res));
        if (res == NULL) {
            rc = s3s__err_set(&eb, S3S_ENOMEM, "out of memory");
            break;
        }
        note_fetched(c, p, &m->u.progress);
        apply_items(c, m, &m->u.progress, res);
        s3s__msg_init(&rm, m->type == S3S_MSG_PROGRESS ? S3S_MSG_PROGRESS_ACK : S3S_MSG_DRAIN_ACK,
                      0, m->seq);
        rm.u.ack.n = m->u.progress.n;
        rm.u.ack.items = res;
        if (m->type == S3S_MSG_DRAIN) {
            if (m->u.progress.reason[0])
                S3S_LOGI("coordinator: worker %016llx drains: %s", (unsigned long long)m->sender,
                         m->u.progress.reason);
            leave_all(c, p, m->sender, false);
        }
        break;
    case S3S_MSG_HEARTBEAT:
        rev = m->u.heartbeat.n <= LOCAL_ITEMS ? rev_local : calloc(m->u.heartbeat.n, sizeof(*rev));
        if (rev == NULL)
            rc = s3s__err_set(&eb, S3S_ENOMEM, "out of memory");
        else
            rc = do_heartbeat(c, p, m, &rm, rev);
        break;
    case S3S_MSG_BYE:
        leave_all(c, p, m->sender, true);
        s3s__msg_init(&rm, S3S_MSG_BYE_ACK, 0, m->seq);
        break;
    default:
        rc = s3s__err_set(&eb, S3S_EPROTO, "unexpected %s message", s3s__msg_type_name(m->type));
    }
    if (rc != 0)
        error_reply(c, m->seq, rc, eb.msg, reply);
    else
        encode_or_error(c, &rm, reply);
    if (res != res_local)
        free(res);
    if (rev != rev_local)
        free(rev);
    return wait;
}

static void count_refusal(s3s__coord *c, int rc)
{
    c->cnt.refused++;
    if (rc == S3S_ETOOBIG)
        c->cnt.refused_size++;
    else if (rc == S3S_EAUTH)
        c->cnt.refused_auth++;
    else if (rc == S3S_EPROTO)
        c->cnt.refused_malformed++;
    else
        c->cnt.refused_malformed++;
}

int s3s__coord_handle(s3s__coord *c, const void *req, size_t len, uint64_t now_ms, s3s__buf *reply)
{
    s3s__buf_reset(reply);
    c->now_ms = now_ms;
    c->cnt.requests++;
    s3s__msg m;
    s3s__errbuf eb;
    int rc = s3s__msg_decode(&m, req, len, &c->proto, &eb);
    if (rc == 0 && !s3s__msg_is_request(m.type))
        rc = s3s__err_set(&eb, S3S_EPROTO, "%s is not a request", s3s__msg_type_name(m.type));
    if (rc == 0 && m.type != S3S_MSG_STATUS && m.sender == 0)
        rc = s3s__err_set(&eb, S3S_EPROTO, "worker id 0 is reserved for the coordinator");
    if (rc != 0) {
        if (rc == S3S_EPROTO && m.version != 0 && m.version != S3S_PROTO_VERSION)
            c->cnt.refused_version++;
        count_refusal(c, rc);
        S3S_LOGD("coordinator: refused a message from %016llx: %s", (unsigned long long)m.sender,
                 eb.msg);
        /* Without the right secret the reply carries no valid HMAC for the
         * peer either way; it still tells a human what went wrong. */
        error_reply(c, m.seq, rc, eb.msg, reply);
        s3s__msg_fini(&m);
        return 0;
    }
    if (m.type == S3S_MSG_STATUS) {
        s3s__msg rm;
        s3s__msg_init(&rm, S3S_MSG_STATUS_REPLY, 0, m.seq);
        s3s__coord_status_arg sa = {c, m.u.status.flags};
        rm.u.status_reply.write = s3s__coord_status_write;
        rm.u.status_reply.write_arg = &sa;
        encode_or_error(c, &rm, reply);
        s3s__msg_fini(&m);
        return 0;
    }
    s3s__coord_peer *p = peer_get(c, m.sender, true);
    if (p == NULL) {
        error_reply(c, m.seq, S3S_ETOOBIG, "too many workers", reply);
        s3s__msg_fini(&m);
        return 0;
    }
    if (p->has_seq && m.seq == p->seq) {
        c->cnt.resends++;
        s3s__buf_append(reply, p->reply, p->reply_len);
        s3s__msg_fini(&m);
        return 1; /* the original may still be waiting for its commit */
    }
    if (p->has_seq && m.seq < p->seq) {
        c->cnt.refused_seq++;
        c->cnt.refused++;
        char t[128];
        snprintf(t, sizeof(t), "sequence number %llu is older than %llu: refused",
                 (unsigned long long)m.seq, (unsigned long long)p->seq);
        error_reply(c, m.seq, S3S_ESTALE, t, reply);
        s3s__msg_fini(&m);
        return 0;
    }
    int grant_wait = dispatch(c, p, &m, reply);
    /* Progress, drain, bye and hello acknowledge state: their replies wait
     * until it is durable. A grant need not (docs/journal.md, "What waits for
     * the disk"): progress under it is only acknowledged after its own record,
     * which follows the grant's, and its token lies below a durable
     * reservation, so a restart never hands the same token out again. */
    int wait = m.type == S3S_MSG_PROGRESS || m.type == S3S_MSG_DRAIN || m.type == S3S_MSG_BYE ||
        m.type == S3S_MSG_HELLO || grant_wait;
    if (reply->len > p->reply_cap) { /* the cached reply's buffer is reused */
        char *nb = realloc(p->reply, reply->len);
        if (nb != NULL) {
            p->reply = nb;
            p->reply_cap = reply->len;
        }
    }
    if (reply->len <= p->reply_cap) {
        memcpy(p->reply, reply->data, reply->len);
        p->reply_len = reply->len;
        p->seq = m.seq;
        p->has_seq = true;
    }
    s3s__msg_fini(&m);
    return wait;
}
