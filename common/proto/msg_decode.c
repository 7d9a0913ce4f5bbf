/* msg_decode.c: decode protocol messages (see msg.h, docs/protocol.md).
 *
 * Decoding order matters: (1) size cap, (2) the array header and the version,
 * so a peer of another version gets "protocol version X, expected Y" whatever
 * the rest looks like, (3) a walk over the whole message that checks every
 * length and the depth without allocating, (4) the envelope, (5) the HMAC,
 * before any body field is interpreted, (6) the body, field by field, into
 * arrays sized from counts already proven to fit in the bytes left. */
#include "common/proto/mp.h"
#include "common/proto/msg_int.h"
#include "s3shard/error.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena: every allocation of one decoded message, with a hard total ---- */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    max_align_t data[];
} chunk;

typedef struct arena {
    chunk *head;
    size_t total; /* bytes of all chunks */
    size_t limit;
} arena;

static void arena_free(arena *a)
{
    if (a == NULL)
        return;
    chunk *c = a->head;
    while (c != NULL) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

void s3s__proto_arena_free(void *p)
{
    arena_free(p);
}

/* arena_alloc returns n zeroed bytes aligned for any type, or NULL when the
 * limit would be passed (*err = S3S_ETOOBIG) or memory ran out. */
static void *arena_alloc(arena *a, size_t n, int *err)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    chunk *c = a->head;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = c ? c->cap * 2 : 1024;
        if (cap < n)
            cap = n;
        if (cap > a->limit - a->total && n <= a->limit - a->total)
            cap = a->limit - a->total; /* the last chunk fits exactly */
        if (n > a->limit - a->total || cap > a->limit - a->total) {
            *err = S3S_ETOOBIG;
            return NULL;
        }
        chunk *nc = calloc(1, sizeof *nc + cap);
        if (nc == NULL) {
            *err = S3S_ENOMEM;
            return NULL;
        }
        nc->cap = cap;
        nc->next = a->head;
        a->head = nc;
        a->total += cap;
        c = nc;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

/* ======================================================================== */
/* decoding                                                                 */
/* ======================================================================== */

typedef struct dec {
    s3s__mpr r;
    arena *a;
    int err; /* allocation failure code */
} dec;

static void *dalloc(dec *d, size_t n)
{
    void *p = arena_alloc(d->a, n, &d->err);
    if (p == NULL && d->err == S3S_ETOOBIG)
        s3s__err_set(d->r.eb, S3S_ETOOBIG, "%s: decoding would allocate more than %zu bytes",
                     d->r.ctx, d->a->limit);
    else if (p == NULL)
        s3s__err_set(d->r.eb, S3S_ENOMEM, "%s: out of memory", d->r.ctx);
    return p;
}

static int dec_channel(dec *d, char *dst, const char *field)
{
    size_t at = d->r.off;
    int rc = s3s__mpr_str_copy(&d->r, dst, S3S_PROTO_CHANNEL_MAX, field);
    if (rc != 0)
        return rc;
    if (!s3s__proto_valid_channel(dst, strlen(dst))) {
        d->r.off = at;
        return s3s__mpr_fail(&d->r, field, "not a channel name ([A-Za-z0-9._-]{1,64})");
    }
    return 0;
}

static int dec_text(dec *d, char *dst, uint32_t max, bool need_nonempty, const char *field)
{
    size_t at = d->r.off;
    int rc = s3s__mpr_str_copy(&d->r, dst, max, field);
    if (rc != 0)
        return rc;
    size_t n = strlen(dst);
    if ((need_nonempty && n == 0) || !s3s__proto_printable(dst, n)) {
        d->r.off = at;
        return s3s__mpr_fail(&d->r, field, "empty or contains control characters");
    }
    return 0;
}

/* dec_tuple reads an array header that must have exactly n elements. */
static int dec_tuple(dec *d, uint32_t n, const char *field)
{
    uint32_t got;
    size_t at = d->r.off;
    int rc = s3s__mpr_array(&d->r, &got, n, 1, field);
    if (rc == 0 && got != n) {
        d->r.off = at;
        return s3s__mpr_fail(&d->r, field, "expected %u elements, got %u", n, got);
    }
    return rc;
}

/* dec_list reads an array header for n elements of at least min_elem bytes and
 * allocates n * size bytes for them (NULL when n == 0). */
static int dec_list(dec *d, uint32_t *n, uint32_t max, uint32_t min_elem, size_t size, void **out,
                    const char *field)
{
    int rc = s3s__mpr_array(&d->r, n, max, min_elem, field);
    if (rc != 0)
        return rc;
    *out = NULL;
    if (*n == 0)
        return 0;
    *out = dalloc(d, (size_t)*n * size);
    return *out ? 0 : d->err;
}

static int dec_pval(dec *d, s3s__pval *v, int depth);

static int dec_pval(dec *d, s3s__pval *v, int depth)
{
    s3s__mpr *r = &d->r;
    s3s__mptype t;
    int rc = s3s__mpr_peek(r, &t);
    if (rc != 0)
        return rc;
    if (depth > S3S_PROTO_DEPTH_MAX)
        return s3s__mpr_fail(r, "status_reply", "nested too deeply");
    switch (t) {
    case S3S_MP_NIL:
        v->type = S3S_PV_NIL;
        return s3s__mpr_nil(r, "status_reply");
    case S3S_MP_BOOL:
        v->type = S3S_PV_BOOL;
        return s3s__mpr_bool(r, &v->v.b, "status_reply");
    case S3S_MP_UINT:
        v->type = S3S_PV_UINT;
        return s3s__mpr_uint(r, &v->v.u, 0, UINT64_MAX, "status_reply");
    case S3S_MP_INT:
        v->type = S3S_PV_INT;
        return s3s__mpr_int(r, &v->v.i, "status_reply");
    case S3S_MP_FLOAT:
        v->type = S3S_PV_FLOAT;
        return s3s__mpr_double(r, &v->v.f, "status_reply");
    case S3S_MP_STR:
    case S3S_MP_BIN: {
        const uint8_t *p;
        uint32_t n;
        if (t == S3S_MP_STR)
            rc = s3s__mpr_str(r, (const char **)&p, &n, UINT32_MAX, "status_reply");
        else
            rc = s3s__mpr_bin(r, &p, &n, UINT32_MAX, "status_reply");
        if (rc != 0)
            return rc;
        /* an empty string costs no allocation, so 1 input byte never makes 32 */
        char *copy = n == 0 ? (char *)"" : dalloc(d, (size_t)n + 1);
        if (copy == NULL)
            return d->err;
        memcpy(copy, p, n);
        v->type = t == S3S_MP_STR ? S3S_PV_STR : S3S_PV_BIN;
        v->n = n;
        if (t == S3S_MP_STR)
            v->v.s = copy;
        else
            v->v.bin = (const uint8_t *)copy;
        return 0;
    }
    case S3S_MP_ARRAY: {
        s3s__pval *items = NULL;
        rc = dec_list(d, &v->n, UINT32_MAX, 1, sizeof *items, (void **)&items, "status_reply");
        if (rc != 0)
            return rc;
        v->type = S3S_PV_ARRAY;
        v->v.items = items;
        for (uint32_t k = 0; k < v->n; k++)
            if ((rc = dec_pval(d, &items[k], depth + 1)) != 0)
                return rc;
        return 0;
    }
    case S3S_MP_MAP: {
        rc = s3s__mpr_map(r, &v->n, UINT32_MAX, "status_reply");
        if (rc != 0)
            return rc;
        s3s__pkv *kv = NULL;
        if (v->n > 0 && (kv = dalloc(d, (size_t)v->n * sizeof *kv)) == NULL)
            return d->err;
        v->type = S3S_PV_MAP;
        v->v.kv = kv;
        for (uint32_t k = 0; k < v->n; k++) {
            const char *key;
            uint32_t klen;
            size_t at = r->off;
            if ((rc = s3s__mpr_str(r, &key, &klen, UINT32_MAX, "status_reply key")) != 0)
                return rc;
            if (memchr(key, '\0', klen) != NULL) {
                r->off = at;
                return s3s__mpr_fail(r, "status_reply key", "contains a NUL byte");
            }
            char *copy = klen == 0 ? (char *)"" : dalloc(d, (size_t)klen + 1);
            if (copy == NULL)
                return d->err;
            memcpy(copy, key, klen);
            kv[k].key = copy;
            if ((rc = dec_pval(d, &kv[k].val, depth + 1)) != 0)
                return rc;
        }
        return 0;
    }
    }
    return s3s__mpr_fail(r, "status_reply", "unexpected type");
}

/* One body field: returns 0 when handled, -1 when the id is unknown to this
 * message type (the caller skips the value), or an error code. */
static int dec_field(dec *d, s3s__msg *m, uint32_t key)
{
    s3s__mpr *r = &d->r;
    switch (m->type) {
    case S3S_MSG_HELLO: {
        s3s__msg_hello *h = &m->u.hello;
        switch (key) {
        case 1:
            return dec_text(d, h->host, S3S_PROTO_HOST_MAX, true, "hello.host");
        case 2:
            return s3s__mpr_u32(r, &h->rank, 0, UINT32_MAX, "hello.rank");
        case 3:
            return s3s__mpr_u32(r, &h->local_rank, 0, UINT32_MAX, "hello.local_rank");
        case 4:
            return s3s__mpr_u32(r, &h->world_size, 0, S3S_PROTO_WORLD_MAX, "hello.world_size");
        case 5:
            return s3s__mpr_uint(r, &h->pid, 0, UINT32_MAX, "hello.pid");
        case 6:
            return s3s__mpr_uint(r, &h->incarnation, 0, UINT64_MAX, "hello.incarnation");
        case 7: {
            int rc = s3s__mpr_array(r, &h->n_channels, S3S_PROTO_CHANNELS_MAX, 2, "hello.channels");
            for (uint32_t k = 0; rc == 0 && k < h->n_channels; k++)
                rc = dec_channel(d, h->channels[k], "hello.channels[]");
            return rc;
        }
        case 8:
            h->has_snapshot = true;
            return s3s__mpr_bin_exact(r, h->snapshot_hash, S3S_PROTO_HASH_LEN,
                                      "hello.snapshot_hash");
        case 9: {
            s3s__msg_inv *inv = NULL;
            int rc = dec_list(d, &h->n_inv, S3S_PROTO_INV_MAX, 3, sizeof *inv, (void **)&inv,
                              "hello.inv");
            for (uint32_t k = 0; rc == 0 && k < h->n_inv; k++) {
                if ((rc = dec_tuple(d, 2, "hello.inv[]")) == 0 &&
                    (rc = s3s__mpr_u32(r, &inv[k].channel, 0, S3S_PROTO_CHANNELS_MAX - 1,
                                       "hello.inv[].channel")) == 0)
                    rc = s3s__mpr_uint(r, &inv[k].shard, 0, UINT64_MAX, "hello.inv[].shard");
            }
            h->inv = inv;
            return rc;
        }
        case 10:
            return s3s__mpr_bool(r, &h->inv_truncated, "hello.inv_truncated");
        }
        return -1;
    }
    case S3S_MSG_WELCOME: {
        s3s__msg_welcome *w = &m->u.welcome;
        switch (key) {
        case 1:
            return s3s__mpr_u32(r, &w->rank, 0, S3S_PROTO_WORLD_MAX - 1, "welcome.rank");
        case 2:
            return s3s__mpr_u32(r, &w->world_size, 1, S3S_PROTO_WORLD_MAX, "welcome.world_size");
        case 3:
            return s3s__mpr_u32(r, &w->lease_ttl_ms, 1, S3S_PROTO_TTL_MAX, "welcome.lease_ttl_ms");
        case 4:
            return s3s__mpr_u32(r, &w->heartbeat_ms, 1, S3S_PROTO_TTL_MAX, "welcome.heartbeat_ms");
        case 5:
            return s3s__mpr_u32(r, &w->max_msg, S3S_PROTO_MIN_MSG, S3S_PROTO_MAX_MSG_LIMIT,
                                "welcome.max_msg");
        case 6:
            return s3s__mpr_bin_exact(r, w->job_hash, S3S_PROTO_HASH_LEN, "welcome.job_hash");
        case 7:
            return s3s__mpr_bin_exact(r, w->snapshot_hash, S3S_PROTO_HASH_LEN,
                                      "welcome.snapshot_hash");
        case 8: {
            int rc =
                s3s__mpr_array(r, &w->n_channels, S3S_PROTO_CHANNELS_MAX, 6, "welcome.channels");
            for (uint32_t k = 0; rc == 0 && k < w->n_channels; k++) {
                s3s__msg_chan_info *c = &w->channels[k];
                if ((rc = dec_tuple(d, 4, "welcome.channels[]")) == 0 &&
                    (rc = dec_channel(d, c->name, "welcome.channels[].name")) == 0 &&
                    (rc = s3s__mpr_uint(r, &c->epoch, 0, UINT64_MAX, "welcome.channels[].epoch")) ==
                        0 &&
                    (rc = s3s__mpr_u32(r, &c->distribution, 0, 15,
                                       "welcome.channels[].distribution")) == 0)
                    rc = s3s__mpr_uint(r, &c->n_shards, 0, UINT64_MAX,
                                       "welcome.channels[].n_shards");
            }
            return rc;
        }
        }
        return -1;
    }
    case S3S_MSG_LEASE:
        switch (key) {
        case 1:
            return dec_channel(d, m->u.lease.channel, "lease.channel");
        case 2:
            return s3s__mpr_uint(r, &m->u.lease.epoch, 0, UINT64_MAX, "lease.epoch");
        case 3:
            return s3s__mpr_u32(r, &m->u.lease.max_shards, 1, S3S_PROTO_ITEMS_MAX,
                                "lease.max_shards");
        }
        return -1;
    case S3S_MSG_GRANT: {
        s3s__msg_grant *g = &m->u.grant;
        switch (key) {
        case 1:
            return dec_channel(d, g->channel, "grant.channel");
        case 2:
            return s3s__mpr_uint(r, &g->epoch, 0, UINT64_MAX, "grant.epoch");
        case 3:
            return s3s__mpr_u32(r, &g->status, 0, S3S_GRANT_STATUS_MAX_ - 1, "grant.status");
        case 4:
            return s3s__mpr_u32(r, &g->retry_ms, 0, S3S_PROTO_TTL_MAX, "grant.retry_ms");
        case 5: {
            s3s__msg_lease_grant *x = NULL;
            int rc =
                dec_list(d, &g->n, S3S_PROTO_ITEMS_MAX, 6, sizeof *x, (void **)&x, "grant.grants");
            for (uint32_t k = 0; rc == 0 && k < g->n; k++) {
                if ((rc = dec_tuple(d, 5, "grant.grants[]")) == 0 &&
                    (rc = s3s__mpr_uint(r, &x[k].shard, 0, UINT64_MAX, "grant.grants[].shard")) ==
                        0 &&
                    (rc = s3s__mpr_uint(r, &x[k].start, 0, UINT64_MAX, "grant.grants[].start")) ==
                        0 &&
                    (rc = s3s__mpr_uint(r, &x[k].end, x[k].start, UINT64_MAX,
                                        "grant.grants[].end")) == 0 &&
                    (rc = s3s__mpr_uint(r, &x[k].token, 1, UINT64_MAX, "grant.grants[].token")) ==
                        0)
                    rc = s3s__mpr_u32(r, &x[k].ttl_ms, 1, S3S_PROTO_TTL_MAX,
                                      "grant.grants[].ttl_ms");
            }
            g->grants = x;
            return rc;
        }
        }
        return -1;
    }
    case S3S_MSG_PROGRESS:
    case S3S_MSG_DRAIN: {
        s3s__msg_progress *p = &m->u.progress;
        if (key == 1) {
            s3s__msg_prog *it = NULL;
            int rc = dec_list(d, &p->n, S3S_PROTO_ITEMS_MAX, 5, sizeof *it, (void **)&it,
                              "progress.items");
            for (uint32_t k = 0; rc == 0 && k < p->n; k++) {
                if ((rc = dec_tuple(d, 4, "progress.items[]")) == 0 &&
                    (rc = s3s__mpr_uint(r, &it[k].shard, 0, UINT64_MAX,
                                        "progress.items[].shard")) == 0 &&
                    (rc = s3s__mpr_uint(r, &it[k].token, 1, UINT64_MAX,
                                        "progress.items[].token")) == 0 &&
                    (rc = s3s__mpr_uint(r, &it[k].offset, 0, UINT64_MAX,
                                        "progress.items[].offset")) == 0)
                    rc = s3s__mpr_bool(r, &it[k].done, "progress.items[].done");
            }
            p->items = it;
            return rc;
        }
        if (key == 2 && m->type == S3S_MSG_DRAIN)
            return dec_text(d, p->reason, S3S_PROTO_TEXT_MAX, false, "drain.reason");
        if (key == 3)
            return s3s__mpr_uint(r, &p->fetched, 0, UINT64_MAX, "progress.fetched");
        return -1;
    }
    case S3S_MSG_PROGRESS_ACK:
    case S3S_MSG_DRAIN_ACK: {
        s3s__msg_ack *a = &m->u.ack;
        if (key != 1)
            return -1;
        s3s__msg_prog_result *it = NULL;
        int rc =
            dec_list(d, &a->n, S3S_PROTO_ITEMS_MAX, 5, sizeof *it, (void **)&it, "ack.results");
        for (uint32_t k = 0; rc == 0 && k < a->n; k++) {
            if ((rc = dec_tuple(d, 4, "ack.results[]")) == 0 &&
                (rc = s3s__mpr_uint(r, &it[k].shard, 0, UINT64_MAX, "ack.results[].shard")) == 0 &&
                (rc = s3s__mpr_uint(r, &it[k].token, 0, UINT64_MAX, "ack.results[].token")) == 0 &&
                (rc = s3s__mpr_uint(r, &it[k].committed, 0, UINT64_MAX,
                                    "ack.results[].committed")) == 0)
                rc = s3s__mpr_u32(r, &it[k].result, 0, 65535, "ack.results[].result");
        }
        a->items = it;
        return rc;
    }
    case S3S_MSG_HEARTBEAT:
    case S3S_MSG_HEARTBEAT_ACK: {
        bool ack = m->type == S3S_MSG_HEARTBEAT_ACK;
        if (ack && key == 1)
            return s3s__mpr_u32(r, &m->u.heartbeat_ack.lease_ttl_ms, 1, S3S_PROTO_TTL_MAX,
                                "heartbeat_ack.lease_ttl_ms");
        if (key != (ack ? 2u : 1u))
            return -1;
        uint32_t n = 0;
        uint64_t *v = NULL;
        const char *name = ack ? "heartbeat_ack.revoked" : "heartbeat.tokens";
        int rc = dec_list(d, &n, S3S_PROTO_ITEMS_MAX, 1, sizeof *v, (void **)&v, name);
        for (uint32_t k = 0; rc == 0 && k < n; k++)
            rc = s3s__mpr_uint(r, &v[k], 1, UINT64_MAX, name);
        if (ack) {
            m->u.heartbeat_ack.n_revoked = n;
            m->u.heartbeat_ack.revoked = v;
        } else {
            m->u.heartbeat.n = n;
            m->u.heartbeat.tokens = v;
        }
        return rc;
    }
    case S3S_MSG_STATUS:
        if (key == 1)
            return s3s__mpr_u32(r, &m->u.status.flags, 0, UINT32_MAX, "status.flags");
        return -1;
    case S3S_MSG_STATUS_REPLY: {
        if (key != 1)
            return -1;
        s3s__mptype t;
        int rc = s3s__mpr_peek(r, &t);
        if (rc == 0 && t != S3S_MP_MAP)
            rc = s3s__mpr_fail(r, "status_reply.root", "expected map");
        s3s__pval *root = rc == 0 ? dalloc(d, sizeof *root) : NULL;
        if (rc == 0 && root == NULL)
            rc = d->err;
        if (rc == 0)
            rc = dec_pval(d, root, 2);
        m->u.status_reply.root = root;
        return rc;
    }
    case S3S_MSG_BYE:
        if (key == 1)
            return dec_text(d, m->u.bye.reason, S3S_PROTO_TEXT_MAX, false, "bye.reason");
        return -1;
    case S3S_MSG_BYE_ACK:
        return -1;
    case S3S_MSG_ERROR:
        if (key == 1)
            return s3s__mpr_u32(r, &m->u.error.code, 1, 65535, "error.code");
        if (key == 2)
            return dec_text(d, m->u.error.message, S3S_PROTO_TEXT_MAX, false, "error.message");
        return -1;
    }
    return -1;
}

/* Required field ids per type, as bit masks over ids 1..31. */
static uint32_t required(uint32_t type)
{
    switch (type) {
    case S3S_MSG_HELLO:
        return 1u << 1 | 1u << 2 | 1u << 4 | 1u << 5 | 1u << 6 | 1u << 7;
    case S3S_MSG_WELCOME:
        return 0x1feu; /* 1..8 */
    case S3S_MSG_LEASE:
        return 1u << 1 | 1u << 2 | 1u << 3;
    case S3S_MSG_GRANT:
        return 1u << 1 | 1u << 2 | 1u << 3;
    case S3S_MSG_PROGRESS:
    case S3S_MSG_PROGRESS_ACK:
    case S3S_MSG_DRAIN_ACK:
        return 1u << 1;
    case S3S_MSG_HEARTBEAT_ACK:
    case S3S_MSG_STATUS_REPLY:
        return 1u << 1;
    case S3S_MSG_ERROR:
        return 1u << 1 | 1u << 2;
    }
    return 0;
}

/* Cross-field rules, checked once the whole body is read. */
static int dec_check(dec *d, s3s__msg *m)
{
    s3s__mpr *r = &d->r;
    switch (m->type) {
    case S3S_MSG_HELLO: {
        s3s__msg_hello *h = &m->u.hello;
        if (h->n_channels == 0)
            return s3s__mpr_fail(r, "hello.channels", "at least one channel is needed");
        if (h->rank != S3S_PROTO_RANK_NONE && (h->world_size == 0 || h->rank >= h->world_size))
            return s3s__mpr_fail(r, "hello.rank", "rank %u is not below world size %u", h->rank,
                                 h->world_size);
        for (uint32_t k = 0; k < h->n_inv; k++)
            if (h->inv[k].channel >= h->n_channels)
                return s3s__mpr_fail(r, "hello.inv[].channel", "channel index %u of %u",
                                     h->inv[k].channel, h->n_channels);
        break;
    }
    case S3S_MSG_WELCOME:
        if (m->u.welcome.rank >= m->u.welcome.world_size)
            return s3s__mpr_fail(r, "welcome.rank", "rank %u is not below world size %u",
                                 m->u.welcome.rank, m->u.welcome.world_size);
        if (m->u.welcome.n_channels == 0)
            return s3s__mpr_fail(r, "welcome.channels", "at least one channel is needed");
        break;
    case S3S_MSG_GRANT:
        if ((m->u.grant.status == S3S_GRANT_OK) != (m->u.grant.n > 0))
            return s3s__mpr_fail(r, "grant.grants", "status %u with %u grants", m->u.grant.status,
                                 m->u.grant.n);
        break;
    case S3S_MSG_PROGRESS:
        if (m->u.progress.n == 0)
            return s3s__mpr_fail(r, "progress.items", "at least one item is needed");
        break;
    }
    if (m->cmd == S3S_CMD_EPOCH_FINISHED && m->cmd_channel[0] == '\0')
        return s3s__mpr_fail(r, "cmd_channel", "epoch_finished needs a channel");
    return 0;
}

static int dec_body(dec *d, s3s__msg *m)
{
    s3s__mpr *r = &d->r;
    uint32_t n;
    int rc = s3s__mpr_map(r, &n, UINT32_MAX, "body");
    if (rc != 0)
        return rc;
    uint8_t seen[S3S_F_KEY_MAX + 1] = {0};
    bool reply = !s3s__msg_is_request(m->type);
    if (m->type == S3S_MSG_HELLO)
        m->u.hello.local_rank = S3S_PROTO_RANK_NONE;
    for (uint32_t k = 0; k < n; k++) {
        uint64_t key;
        size_t at = r->off;
        if ((rc = s3s__mpr_uint(r, &key, 0, UINT64_MAX, "body key")) != 0)
            return rc;
        if (key <= S3S_F_KEY_MAX) {
            if (seen[key]) {
                r->off = at;
                return s3s__mpr_fail(r, "body key", "field %llu appears twice",
                                     (unsigned long long)key);
            }
            seen[key] = 1;
        }
        if (reply && key == S3S_F_CMD)
            rc = s3s__mpr_u32(r, &m->cmd, 0, S3S_CMD_MAX_ - 1, "cmd");
        else if (reply && key == S3S_F_CMD_EPOCH)
            rc = s3s__mpr_uint(r, &m->cmd_epoch, 0, UINT64_MAX, "cmd_epoch");
        else if (reply && key == S3S_F_CMD_CHANNEL)
            rc = dec_channel(d, m->cmd_channel, "cmd_channel");
        else if (key <= 31)
            rc = dec_field(d, m, (uint32_t)key);
        else
            rc = -1;
        if (rc == -1) /* unknown: skip (its lengths were validated already) */
            rc = s3s__mpr_skip(r, S3S_PROTO_DEPTH_MAX, "unknown field");
        if (rc != 0)
            return rc;
    }
    uint32_t need = required(m->type);
    for (uint32_t key = 1; key <= 31; key++)
        if ((need & (1u << key)) && !seen[key])
            return s3s__mpr_fail(r, "body", "%s: required field %u is missing",
                                 s3s__msg_type_name(m->type), key);
    return dec_check(d, m);
}

int s3s__msg_decode(s3s__msg *out, const void *data, size_t len, const s3s__proto_cfg *cfg,
                    s3s__errbuf *eb)
{
    size_t max = s3s__proto_cfg_max(cfg);
    bool secret = s3s__proto_signed(cfg);
    memset(out, 0, sizeof *out);
    if (len > max)
        return s3s__err_set(eb, S3S_ETOOBIG, "message of %zu bytes exceeds the %zu-byte limit", len,
                            max);
    dec d = {.a = NULL};
    s3s__mpr *r = &d.r;
    s3s__mpr_init(r, data, len, S3S_EPROTO, "message", eb);
    uint32_t n;
    uint64_t v;
    int rc;
    if ((rc = s3s__mpr_array(r, &n, 15, 1, "envelope")) != 0)
        return rc;
    size_t signed_from = r->off; /* the HMAC covers everything after the array header */
    if (n < 1)
        return s3s__mpr_fail(r, "envelope", "empty");
    if ((rc = s3s__mpr_uint(r, &v, 0, UINT64_MAX, "version")) != 0)
        return rc;
    out->version = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    if (v != S3S_PROTO_VERSION)
        return s3s__err_set(eb, S3S_EPROTO, "protocol version %llu, expected %d",
                            (unsigned long long)v, S3S_PROTO_VERSION);
    if (n != 5 && n != 6)
        return s3s__mpr_fail(r, "envelope", "%u elements, expected 5 or 6", n);
    if ((rc = s3s__mp_validate(data, len, S3S_PROTO_DEPTH_MAX, S3S_EPROTO, "message", eb)) != 0)
        return rc;
    uint64_t type, sender, seq;
    if ((rc = s3s__mpr_uint(r, &type, 0, UINT64_MAX, "type")) != 0 ||
        (rc = s3s__mpr_uint(r, &sender, 0, UINT64_MAX, "sender")) != 0 ||
        (rc = s3s__mpr_uint(r, &seq, 0, UINT64_MAX, "seq")) != 0)
        return rc;
    out->type = type > UINT32_MAX ? 0 : (uint32_t)type;
    out->sender = sender;
    out->seq = seq;
    size_t body_at = r->off;
    if ((rc = s3s__mpr_skip(r, S3S_PROTO_DEPTH_MAX, "body")) != 0)
        return rc;
    size_t body_end = r->off;
    if (n == 6) {
        uint8_t mac[S3S_PROTO_HMAC_LEN], want[S3S_PROTO_HMAC_LEN];
        if (!secret)
            return s3s__err_set(eb, S3S_EAUTH,
                                "message carries an HMAC but no shared secret is configured");
        s3s__mptype t;
        if ((rc = s3s__mpr_peek(r, &t)) != 0)
            return rc;
        if (t != S3S_MP_BIN || s3s__mpr_bin_exact(r, mac, sizeof mac, "hmac") != 0)
            return s3s__err_set(eb, S3S_EAUTH, "message HMAC is not 32 bytes of binary");
        if ((rc = s3s__proto_hmac(cfg, (const uint8_t *)data + signed_from, body_end - signed_from,
                                  want)) != 0)
            return s3s__err_set(eb, rc, "HMAC computation failed");
        if (CRYPTO_memcmp(mac, want, sizeof mac) != 0)
            return s3s__err_set(eb, S3S_EAUTH, "message HMAC does not match (wrong secret?)");
    } else if (secret) {
        return s3s__err_set(eb, S3S_EAUTH, "message has no HMAC but a shared secret is configured");
    }
    if (out->type == 0 || out->type >= S3S_MSG_TYPE_MAX_)
        return s3s__err_set(eb, S3S_EPROTO, "message: unknown message type %llu",
                            (unsigned long long)type);
    d.a = calloc(1, sizeof *d.a);
    if (d.a == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "message: out of memory");
    d.a->limit = S3S_PROTO_ALLOC_FACTOR * len + 4096;
    r->off = body_at;
    char ctx[48];
    snprintf(ctx, sizeof ctx, "%s message", s3s__msg_type_name(out->type));
    r->ctx = ctx;
    rc = dec_body(&d, out);
    r->ctx = "message";
    if (rc != 0) {
        arena_free(d.a);
        uint32_t keep_v = out->version, keep_t = out->type;
        memset(&out->cmd, 0, sizeof *out - offsetof(s3s__msg, cmd));
        out->version = keep_v;
        out->type = keep_t;
        return rc;
    }
    out->arena = d.a;
    return 0;
}

const s3s__pval *s3s__pval_get(const s3s__pval *map, const char *key)
{
    if (map == NULL || map->type != S3S_PV_MAP)
        return NULL;
    for (uint32_t k = 0; k < map->n; k++)
        if (strcmp(map->v.kv[k].key, key) == 0)
            return &map->v.kv[k].val;
    return NULL;
}
