/* msg_encode.c: encode protocol messages (see msg.h, docs/protocol.md). The
 * encoder checks counts, string lengths and channel names against the same
 * limits the decoder enforces, so it never produces what a peer would refuse. */
#include "common/proto/mp.h"
#include "common/proto/msg_int.h"
#include "s3shard/error.h"

#include <string.h>

/* ======================================================================== */
/* encoding                                                                 */
/* ======================================================================== */

typedef struct enc {
    s3s__mpw w;
    s3s__errbuf *eb;
    int err;
} enc;

static int enc_bad(enc *e, const char *fmt, const char *field)
{
    if (e->err == 0)
        e->err = s3s__err_set(e->eb, S3S_EINVAL, fmt, field);
    return e->err;
}

static void enc_text(enc *e, uint64_t key, const char *s, size_t cap, const char *field)
{
    size_t n = strnlen(s, cap + 1);
    if (n > cap) {
        enc_bad(e, "encode: %s is too long", field);
        return;
    }
    s3s__mpw_uint(&e->w, key);
    s3s__mpw_str(&e->w, s, n);
}

static void enc_channel(enc *e, uint64_t key, const char *s, const char *field)
{
    size_t n = strnlen(s, S3S_PROTO_CHANNEL_MAX + 1);
    if (!s3s__proto_valid_channel(s, n)) {
        enc_bad(e, "encode: %s is not a valid channel name", field);
        return;
    }
    if (key != UINT64_MAX)
        s3s__mpw_uint(&e->w, key);
    s3s__mpw_str(&e->w, s, n);
}

static void kv_uint(enc *e, uint64_t key, uint64_t v)
{
    s3s__mpw_uint(&e->w, key);
    s3s__mpw_uint(&e->w, v);
}

static void kv_bin(enc *e, uint64_t key, const void *p, size_t n)
{
    s3s__mpw_uint(&e->w, key);
    s3s__mpw_bin(&e->w, p, n);
}

void s3s__pval_write(s3s__mpw *w, const s3s__pval *v, int depth)
{
    if (depth > S3S_PROTO_DEPTH_MAX) { /* the root is at depth 2, as in decoding */
        if (w->err == 0)
            w->err = S3S_EINVAL;
        return;
    }
    switch (v->type) {
    case S3S_PV_NIL:
        s3s__mpw_nil(w);
        break;
    case S3S_PV_BOOL:
        s3s__mpw_bool(w, v->v.b);
        break;
    case S3S_PV_UINT:
        s3s__mpw_uint(w, v->v.u);
        break;
    case S3S_PV_INT:
        s3s__mpw_int(w, v->v.i);
        break;
    case S3S_PV_FLOAT:
        s3s__mpw_double(w, v->v.f);
        break;
    case S3S_PV_STR:
        s3s__mpw_str(w, v->v.s, v->n);
        break;
    case S3S_PV_BIN:
        s3s__mpw_bin(w, v->v.bin, v->n);
        break;
    case S3S_PV_ARRAY:
        s3s__mpw_array(w, v->n);
        for (uint32_t k = 0; k < v->n; k++)
            s3s__pval_write(w, &v->v.items[k], depth + 1);
        break;
    case S3S_PV_MAP:
        s3s__mpw_map(w, v->n);
        for (uint32_t k = 0; k < v->n; k++) {
            s3s__mpw_cstr(w, v->v.kv[k].key);
            s3s__pval_write(w, &v->v.kv[k].val, depth + 1);
        }
        break;
    default:
        if (w->err == 0)
            w->err = S3S_EINVAL;
    }
}

static void enc_prog_items(enc *e, uint32_t n, const s3s__msg_prog *it)
{
    s3s__mpw_array(&e->w, n);
    for (uint32_t k = 0; k < n; k++) {
        s3s__mpw_array(&e->w, 4);
        s3s__mpw_uint(&e->w, it[k].shard);
        s3s__mpw_uint(&e->w, it[k].token);
        s3s__mpw_uint(&e->w, it[k].offset);
        s3s__mpw_bool(&e->w, it[k].done);
    }
}

static void enc_u64s(enc *e, uint32_t n, const uint64_t *v)
{
    s3s__mpw_array(&e->w, n);
    for (uint32_t k = 0; k < n; k++)
        s3s__mpw_uint(&e->w, v[k]);
}

static int check_count(enc *e, uint32_t n, uint32_t max, const char *field)
{
    if (n > max)
        return enc_bad(e, "encode: %s has too many elements", field);
    return 0;
}

static void enc_body(enc *e, const s3s__msg *m)
{
    bool reply = !s3s__msg_is_request(m->type);
    uint32_t extra = 0;
    if (reply && m->cmd != S3S_CMD_NONE)
        extra = m->cmd_channel[0] != '\0' ? 3 : 2;
    switch (m->type) {
    case S3S_MSG_HELLO: {
        const s3s__msg_hello *h = &m->u.hello;
        if (check_count(e, h->n_channels, S3S_PROTO_CHANNELS_MAX, "hello.channels") ||
            check_count(e, h->n_inv, S3S_PROTO_INV_MAX, "hello.inv"))
            return;
        s3s__mpw_map(&e->w, 7 + h->has_snapshot + (h->n_inv > 0) + h->inv_truncated);
        enc_text(e, 1, h->host, S3S_PROTO_HOST_MAX, "hello.host");
        kv_uint(e, 2, h->rank);
        kv_uint(e, 3, h->local_rank);
        kv_uint(e, 4, h->world_size);
        kv_uint(e, 5, h->pid);
        kv_uint(e, 6, h->incarnation);
        s3s__mpw_uint(&e->w, 7);
        s3s__mpw_array(&e->w, h->n_channels);
        for (uint32_t k = 0; k < h->n_channels; k++)
            enc_channel(e, UINT64_MAX, h->channels[k], "hello.channels[]");
        if (h->has_snapshot)
            kv_bin(e, 8, h->snapshot_hash, S3S_PROTO_HASH_LEN);
        if (h->n_inv > 0) {
            s3s__mpw_uint(&e->w, 9);
            s3s__mpw_array(&e->w, h->n_inv);
            for (uint32_t k = 0; k < h->n_inv; k++) {
                s3s__mpw_array(&e->w, 2);
                s3s__mpw_uint(&e->w, h->inv[k].channel);
                s3s__mpw_uint(&e->w, h->inv[k].shard);
            }
        }
        if (h->inv_truncated) {
            s3s__mpw_uint(&e->w, 10);
            s3s__mpw_bool(&e->w, true);
        }
        break;
    }
    case S3S_MSG_WELCOME: {
        const s3s__msg_welcome *wl = &m->u.welcome;
        if (check_count(e, wl->n_channels, S3S_PROTO_CHANNELS_MAX, "welcome.channels"))
            return;
        s3s__mpw_map(&e->w, 8 + extra);
        kv_uint(e, 1, wl->rank);
        kv_uint(e, 2, wl->world_size);
        kv_uint(e, 3, wl->lease_ttl_ms);
        kv_uint(e, 4, wl->heartbeat_ms);
        kv_uint(e, 5, wl->max_msg);
        kv_bin(e, 6, wl->job_hash, S3S_PROTO_HASH_LEN);
        kv_bin(e, 7, wl->snapshot_hash, S3S_PROTO_HASH_LEN);
        s3s__mpw_uint(&e->w, 8);
        s3s__mpw_array(&e->w, wl->n_channels);
        for (uint32_t k = 0; k < wl->n_channels; k++) {
            const s3s__msg_chan_info *c = &wl->channels[k];
            s3s__mpw_array(&e->w, 4);
            enc_channel(e, UINT64_MAX, c->name, "welcome.channels[].name");
            s3s__mpw_uint(&e->w, c->epoch);
            s3s__mpw_uint(&e->w, c->distribution);
            s3s__mpw_uint(&e->w, c->n_shards);
        }
        break;
    }
    case S3S_MSG_LEASE:
        s3s__mpw_map(&e->w, 3);
        enc_channel(e, 1, m->u.lease.channel, "lease.channel");
        kv_uint(e, 2, m->u.lease.epoch);
        kv_uint(e, 3, m->u.lease.max_shards);
        break;
    case S3S_MSG_GRANT: {
        const s3s__msg_grant *g = &m->u.grant;
        if (check_count(e, g->n, S3S_PROTO_ITEMS_MAX, "grant.grants"))
            return;
        s3s__mpw_map(&e->w, 5 + extra);
        enc_channel(e, 1, g->channel, "grant.channel");
        kv_uint(e, 2, g->epoch);
        kv_uint(e, 3, g->status);
        kv_uint(e, 4, g->retry_ms);
        s3s__mpw_uint(&e->w, 5);
        s3s__mpw_array(&e->w, g->n);
        for (uint32_t k = 0; k < g->n; k++) {
            const s3s__msg_lease_grant *x = &g->grants[k];
            s3s__mpw_array(&e->w, 5);
            s3s__mpw_uint(&e->w, x->shard);
            s3s__mpw_uint(&e->w, x->start);
            s3s__mpw_uint(&e->w, x->end);
            s3s__mpw_uint(&e->w, x->token);
            s3s__mpw_uint(&e->w, x->ttl_ms);
        }
        break;
    }
    case S3S_MSG_PROGRESS:
    case S3S_MSG_DRAIN: {
        const s3s__msg_progress *p = &m->u.progress;
        if (check_count(e, p->n, S3S_PROTO_ITEMS_MAX, "progress.items"))
            return;
        bool reason = m->type == S3S_MSG_DRAIN && p->reason[0] != '\0';
        s3s__mpw_map(&e->w, 1 + reason + (p->fetched != 0));
        s3s__mpw_uint(&e->w, 1);
        enc_prog_items(e, p->n, p->items);
        if (reason)
            enc_text(e, 2, p->reason, S3S_PROTO_TEXT_MAX, "drain.reason");
        if (p->fetched != 0) { /* optional: older coordinators skip field 3 */
            s3s__mpw_uint(&e->w, 3);
            s3s__mpw_uint(&e->w, p->fetched);
        }
        break;
    }
    case S3S_MSG_PROGRESS_ACK:
    case S3S_MSG_DRAIN_ACK: {
        const s3s__msg_ack *a = &m->u.ack;
        if (check_count(e, a->n, S3S_PROTO_ITEMS_MAX, "ack.results"))
            return;
        s3s__mpw_map(&e->w, 1 + extra);
        s3s__mpw_uint(&e->w, 1);
        s3s__mpw_array(&e->w, a->n);
        for (uint32_t k = 0; k < a->n; k++) {
            s3s__mpw_array(&e->w, 4);
            s3s__mpw_uint(&e->w, a->items[k].shard);
            s3s__mpw_uint(&e->w, a->items[k].token);
            s3s__mpw_uint(&e->w, a->items[k].committed);
            s3s__mpw_uint(&e->w, a->items[k].result);
        }
        break;
    }
    case S3S_MSG_HEARTBEAT:
        if (check_count(e, m->u.heartbeat.n, S3S_PROTO_ITEMS_MAX, "heartbeat.tokens"))
            return;
        s3s__mpw_map(&e->w, 1);
        s3s__mpw_uint(&e->w, 1);
        enc_u64s(e, m->u.heartbeat.n, m->u.heartbeat.tokens);
        break;
    case S3S_MSG_HEARTBEAT_ACK:
        if (check_count(e, m->u.heartbeat_ack.n_revoked, S3S_PROTO_ITEMS_MAX,
                        "heartbeat_ack.revoked"))
            return;
        s3s__mpw_map(&e->w, 2 + extra);
        kv_uint(e, 1, m->u.heartbeat_ack.lease_ttl_ms);
        s3s__mpw_uint(&e->w, 2);
        enc_u64s(e, m->u.heartbeat_ack.n_revoked, m->u.heartbeat_ack.revoked);
        break;
    case S3S_MSG_STATUS:
        s3s__mpw_map(&e->w, 1);
        kv_uint(e, 1, m->u.status.flags);
        break;
    case S3S_MSG_STATUS_REPLY: {
        const s3s__msg_status_reply *s = &m->u.status_reply;
        s3s__mpw_map(&e->w, 1 + extra);
        s3s__mpw_uint(&e->w, 1);
        if (s->write != NULL) {
            int rc = s->write(s->write_arg, &e->w);
            if (rc != 0 && e->err == 0)
                e->err = s3s__err_set(e->eb, rc, "encode: status_reply writer failed");
        } else if (s->root != NULL && s->root->type == S3S_PV_MAP) {
            s3s__pval_write(&e->w, s->root, 2);
        } else {
            enc_bad(e, "encode: %s must be a map", "status_reply.root");
        }
        break;
    }
    case S3S_MSG_BYE:
        if (m->u.bye.reason[0] != '\0') {
            s3s__mpw_map(&e->w, 1);
            enc_text(e, 1, m->u.bye.reason, S3S_PROTO_TEXT_MAX, "bye.reason");
        } else {
            s3s__mpw_map(&e->w, 0);
        }
        break;
    case S3S_MSG_BYE_ACK:
        s3s__mpw_map(&e->w, extra);
        break;
    case S3S_MSG_ERROR:
        s3s__mpw_map(&e->w, 2 + extra);
        kv_uint(e, 1, m->u.error.code);
        enc_text(e, 2, m->u.error.message, S3S_PROTO_TEXT_MAX, "error.message");
        break;
    default:
        enc_bad(e, "encode: %s: unknown message type", "type");
        return;
    }
    if (extra > 0) {
        kv_uint(e, S3S_F_CMD, m->cmd);
        kv_uint(e, S3S_F_CMD_EPOCH, m->cmd_epoch);
        if (extra == 3)
            enc_channel(e, S3S_F_CMD_CHANNEL, m->cmd_channel, "cmd_channel");
    }
}

int s3s__msg_encode(s3s__buf *out, const s3s__msg *m, const s3s__proto_cfg *cfg, s3s__errbuf *eb)
{
    size_t max = s3s__proto_cfg_max(cfg);
    bool sign = s3s__proto_signed(cfg);
    size_t start = out->len;
    enc e = {.eb = eb};
    s3s__mpw_init(&e.w, out);
    if (m->cmd >= S3S_CMD_MAX_ || (m->cmd != S3S_CMD_NONE && s3s__msg_is_request(m->type))) {
        enc_bad(&e, "encode: %s: commands ride on replies only", "cmd");
        goto fail;
    }
    s3s__mpw_array(&e.w, sign ? 6 : 5);
    s3s__mpw_uint(&e.w, m->version ? m->version : S3S_PROTO_VERSION);
    s3s__mpw_uint(&e.w, m->type);
    s3s__mpw_uint(&e.w, m->sender);
    s3s__mpw_uint(&e.w, m->seq);
    enc_body(&e, m);
    if (e.err != 0)
        goto fail;
    if (sign && e.w.err == 0) {
        uint8_t mac[S3S_PROTO_HMAC_LEN];
        int rc =
            s3s__proto_hmac(cfg, (const uint8_t *)out->data + start + 1, out->len - start - 1, mac);
        if (rc != 0) {
            e.err = s3s__err_set(eb, rc, "encode: HMAC failed");
            goto fail;
        }
        s3s__mpw_bin(&e.w, mac, sizeof mac);
    }
    if (e.w.err != 0) {
        e.err = s3s__err_set(eb, e.w.err, "encode: %s message does not fit the output buffer",
                             s3s__msg_type_name(m->type));
        goto fail;
    }
    if (out->len - start > max) {
        e.err = s3s__err_set(eb, S3S_ETOOBIG,
                             "encode: %s message of %zu bytes exceeds the %zu-byte limit",
                             s3s__msg_type_name(m->type), out->len - start, max);
        goto fail;
    }
    return 0;
fail:
    out->len = start;
    if (out->data != NULL)
        out->data[start] = '\0';
    return e.err;
}
