/* coord_server.c: the public s3s_coord_* API and the nng transport (the only
 * coordinator file that includes nng).
 *
 * rep0 with `contexts` nng contexts. Each context's receive callback handles
 * its request at once (under core_mu, on nng's thread: microseconds, no
 * hand-off to another thread): a reply that needs nothing durable (grant,
 * heartbeat, status, error) is sent from there. A reply that acknowledges
 * state (progress, drain, bye, hello, resends) is parked with the journal LSN
 * of its records; a journal thread takes every parked reply, makes the
 * highest of their LSNs durable with one pwrite + fdatasync (everything
 * appended meanwhile rides along), and sends them: one fdatasync serves every
 * request that arrived during the previous one, and no request waits behind
 * another's fdatasync except for the one in flight. There are two journal
 * threads, so the next batch's fdatasync runs while the previous batch's
 * replies are being sent (the journal's group commit keeps them in order:
 * the second waits for the first's fdatasync, then leads its own). A thread ticks
 * (lease expiry) and uploads the mirror. Oversized messages: nng drops a
 * message past NNG_OPT_RECVMAXSZ (2 x max_msg) with its connection; one
 * between max_msg and that is decoded, refused with an error and counted. */
#include "common/util/log.h"
#include "coordinator/coord_int.h"
#include "s3shard/coordinator.h"
#include "s3shard/error.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { X_RECV = 0, X_SEND = 1 };

/* Journal threads. Two, so that one sends a durable batch's replies (a
 * sendmsg each, which on loopback also runs the peer's receive path) while
 * the other already writes and fdatasyncs the next batch: with one, the disk
 * idles while replies go out and requests handled meanwhile wait for both. */
#define COMMITTERS 2

struct s3s_coord;
typedef struct committer_t {
    struct s3s_coord *c;
    pthread_t thr;
    bool running;
    uint32_t *taken; /* the batch it makes durable: context indexes */
} committer_t;

typedef struct srv_ctx {
    struct s3s_coord *c;
    nng_ctx ctx;
    nng_aio *aio;
    int state;
    nng_msg *req;
    s3s__buf reply;
} srv_ctx;

struct s3s_coord {
    s3s__coord *core;
    pthread_mutex_t core_mu; /* the core, between the server thread and status calls */
    nng_socket sock;
    bool sock_open;
    nng_listener lst;
    nng_tls_config *tls;
    srv_ctx *ctxs;
    uint32_t nctx;
    pthread_t thr; /* ticks and the mirror */
    bool running;
    pthread_mutex_t mu; /* parked, stopping, cstop */
    pthread_cond_t cv; /* the ticker sleeps on it */
    pthread_cond_t jcv; /* the journal threads sleep on it */
    bool stopping; /* requests received from now on are dropped (peers resend) */
    bool fatal; /* under core_mu: a commit failed, nothing more is acknowledged */
    char err[1024];
    /* replies waiting for their journal lsn to be durable: each context at
     * most once, so nctx entries each */
    committer_t cm[COMMITTERS];
    bool cstop;
    uint32_t *parked;
    uint64_t *parked_lsn;
    uint32_t nparked;
};

void s3s_coord_opts_init(s3s_coord_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_msg = S3S_PROTO_MAX_MSG_DEFAULT;
    o->mirror_interval_ms = 5000;
    o->contexts = 256;
    o->path_style = -1;
}

int s3s_coord_create(s3s_coord **out, const s3s_coord_opts *opts, char *errmsg, size_t errmsg_len)
{
    *out = NULL;
    s3s_coord *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return S3S_ENOMEM;
    s3s__errbuf eb;
    eb.msg[0] = 0;
    int rc = s3s__coord_open(&c->core, opts, &eb);
    if (rc != 0) {
        if (errmsg != NULL && errmsg_len > 0)
            snprintf(errmsg, errmsg_len, "%s", eb.msg[0] ? eb.msg : s3s_strerror(rc));
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->core_mu, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_cond_init(&c->jcv, NULL);
    *out = c;
    return 0;
}

s3s__coord *s3s__coord_core(s3s_coord *c)
{
    return c->core;
}

const char *s3s_coord_errmsg(const s3s_coord *c)
{
    return c ? c->err : "";
}

static void send_reply(s3s_coord *c, srv_ctx *x);

/* Parks x's reply until lsn is durable (the journal thread sends it). */
static void park(s3s_coord *c, srv_ctx *x, uint64_t lsn)
{
    pthread_mutex_lock(&c->mu);
    uint32_t i = c->nparked++;
    c->parked[i] = (uint32_t)(x - c->ctxs);
    c->parked_lsn[i] = lsn;
    if (i == 0)
        pthread_cond_signal(&c->jcv);
    pthread_mutex_unlock(&c->mu);
}

static void fail_journal(s3s_coord *c, const s3s__errbuf *eb)
{
    c->fatal = true;
    snprintf(c->err, sizeof(c->err), "journal failed, nothing more is acknowledged: %.900s",
             eb->msg);
    S3S_LOGE("coordinator: %s", c->err);
}

/* One request, handled on nng's thread. */
static void handle(s3s_coord *c, srv_ctx *x)
{
    /* Stopping: not handled, the peer resends to the next coordinator. */
    if (__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE)) {
        nng_msg_free(x->req);
        x->req = NULL;
        return;
    }
    pthread_mutex_lock(&c->core_mu);
    int w = s3s__coord_handle(c->core, nng_msg_body(x->req), nng_msg_len(x->req), s3s__now_ms(),
                              &x->reply);
    nng_msg_free(x->req);
    x->req = NULL;
    if (s3s__coord_compact_due(c->core) && !c->fatal) { /* epoch boundary: commit here */
        s3s__errbuf eb;
        if (s3s__coord_commit(c->core, &eb) != 0)
            fail_journal(c, &eb);
    }
    uint64_t lsn = s3s__coord_lsn(c->core);
    bool fatal = c->fatal;
    pthread_mutex_unlock(&c->core_mu);
    if (!w) {
        send_reply(c, x);
    } else if (fatal) { /* never acknowledge what may not be durable */
        x->state = X_RECV;
        nng_ctx_recv(x->ctx, x->aio);
    } else {
        park(c, x, lsn);
    }
}

static void ctx_cb(void *arg)
{
    srv_ctx *x = arg;
    s3s_coord *c = x->c;
    int r = nng_aio_result(x->aio);
    if (x->state == X_RECV) {
        if (r != 0) {
            if (r == NNG_ECLOSED || r == NNG_ECANCELED)
                return;
            nng_ctx_recv(x->ctx, x->aio);
            return;
        }
        x->req = nng_aio_get_msg(x->aio);
        handle(c, x);
        return;
    }
    if (r != 0)
        nng_msg_free(nng_aio_get_msg(x->aio));
    if (r == NNG_ECLOSED || r == NNG_ECANCELED)
        return;
    x->state = X_RECV;
    nng_ctx_recv(x->ctx, x->aio);
}

static void send_reply(s3s_coord *c, srv_ctx *x)
{
    nng_msg *m = NULL;
    (void)c;
    if (nng_msg_alloc(&m, x->reply.len) != 0) {
        x->state = X_RECV; /* the peer's REQ resends; we answer then */
        nng_ctx_recv(x->ctx, x->aio);
        return;
    }
    memcpy(nng_msg_body(m), x->reply.data, x->reply.len);
    x->state = X_SEND;
    nng_aio_set_msg(x->aio, m);
    nng_ctx_send(x->ctx, x->aio);
}

/* The journal thread: takes every parked reply, makes the highest of their
 * LSNs durable (one write + fdatasync for everything appended so far), then
 * sends them. Requests handled meanwhile park for the next round. */
static void *committer(void *arg)
{
    committer_t *cm = arg;
    s3s_coord *c = cm->c;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (c->nparked == 0 && !c->cstop)
            pthread_cond_wait(&c->jcv, &c->mu);
        uint32_t n = c->nparked;
        if (n == 0) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        uint64_t lsn = 0;
        for (uint32_t i = 0; i < n; i++) {
            cm->taken[i] = c->parked[i];
            if (c->parked_lsn[i] > lsn)
                lsn = c->parked_lsn[i];
        }
        c->nparked = 0;
        pthread_mutex_unlock(&c->mu);
        s3s__errbuf eb;
        int rc = s3s__coord_wait(c->core, lsn, &eb);
        if (rc != 0) {
            pthread_mutex_lock(&c->core_mu);
            if (!c->fatal)
                fail_journal(c, &eb);
            pthread_mutex_unlock(&c->core_mu);
        }
        for (uint32_t i = 0; i < n; i++) {
            srv_ctx *x = &c->ctxs[cm->taken[i]];
            if (rc != 0) { /* never acknowledge what is not durable */
                x->state = X_RECV;
                nng_ctx_recv(x->ctx, x->aio);
            } else {
                send_reply(c, x);
            }
        }
    }
    return NULL;
}

/* The ticker: expires leases of silent workers and uploads the mirror. */
static void *serve(void *arg)
{
    s3s_coord *c = arg;
    uint64_t last_mirror = s3s__now_ms();
    uint32_t interval = c->core->o.mirror_interval_ms ? c->core->o.mirror_interval_ms : 5000;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        if (!c->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        }
        bool stop = c->stopping;
        pthread_mutex_unlock(&c->mu);
        uint64_t now = s3s__now_ms();
        pthread_mutex_lock(&c->core_mu);
        s3s__coord_tick(c->core, now);
        if ((s3s__coord_compact_due(c->core) || stop) && !c->fatal) {
            s3s__errbuf eb;
            if (s3s__coord_commit(c->core, &eb) != 0)
                fail_journal(c, &eb);
        }
        if (now - last_mirror >= interval) {
            s3s__coord_mirror_flush(c->core, NULL);
            last_mirror = now;
        }
        pthread_mutex_unlock(&c->core_mu);
        if (stop)
            break;
    }
    return NULL;
}

static int read_pem(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return S3S_EIO;
    s3s__buf b;
    s3s__buf_init(&b, 1 << 20);
    char tmp[4096];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        rc = s3s__buf_append(&b, tmp, n);
    fclose(f);
    if (rc == 0)
        *out = s3s__buf_detach(&b, NULL);
    s3s__buf_fini(&b);
    return rc;
}

static int fail(s3s_coord *c, int rc, const char *fmt, const char *a, int nrv)
{
    snprintf(c->err, sizeof(c->err), fmt, a, nrv ? nng_strerror(nrv) : "");
    return rc;
}

static int start_tls(s3s_coord *c, const char *url)
{
    const s3s_coord_opts *o = &c->core->o;
    if (o->tls_cert == NULL || o->tls_key == NULL)
        return fail(c, S3S_ECONFIG, "%s: tls+tcp:// needs --tls-cert and --tls-key%s", url, 0);
    char *cert = NULL, *key = NULL;
    int rc = read_pem(o->tls_cert, &cert);
    if (rc != 0)
        return fail(c, S3S_EIO, "cannot read TLS certificate %s%s", o->tls_cert, 0);
    rc = read_pem(o->tls_key, &key);
    if (rc != 0) {
        free(cert);
        return fail(c, S3S_EIO, "cannot read TLS key %s%s", o->tls_key, 0);
    }
    int nrv = nng_tls_config_alloc(&c->tls, NNG_TLS_MODE_SERVER);
    if (nrv == 0)
        nrv = nng_tls_config_own_cert(c->tls, cert, key, NULL);
    free(cert);
    free(key);
    if (nrv != 0)
        return fail(c, S3S_ECONFIG, "TLS certificate/key %s: %s", o->tls_cert, nrv);
    nrv = nng_listener_set_ptr(c->lst, NNG_OPT_TLS_CONFIG, c->tls);
    return nrv ? fail(c, S3S_ECONFIG, "%s: TLS: %s", url, nrv) : 0;
}

int s3s_coord_start(s3s_coord *c)
{
    if (c == NULL)
        return S3S_EINVAL;
    if (c->running)
        return 0;
    const char *url = c->core->o.listen;
    if (url == NULL)
        return fail(c, S3S_EINVAL, "no listen URL%s%s", "", 0);
    int nrv = nng_rep0_open(&c->sock);
    if (nrv != 0)
        return fail(c, S3S_ENETWORK, "rep socket: %s%s", "", nrv);
    c->sock_open = true;
    size_t maxsz = (size_t)c->core->proto.max_msg * 2;
    nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, maxsz);
    nrv = nng_listener_create(&c->lst, c->sock, url);
    if (nrv != 0)
        return fail(c, S3S_EINVAL, "cannot listen on %s: %s", url, nrv);
    if (strncmp(url, "tls+", 4) == 0) {
        int rc = start_tls(c, url);
        if (rc != 0)
            return rc;
    }
    nng_listener_set_size(c->lst, NNG_OPT_RECVMAXSZ, maxsz);
    nrv = nng_listener_start(c->lst, 0);
    if (nrv != 0)
        return fail(c, S3S_ENETWORK, "cannot listen on %s: %s", url, nrv);
    c->nctx = c->core->o.contexts ? c->core->o.contexts : 256;
    c->ctxs = calloc(c->nctx, sizeof(*c->ctxs));
    c->parked = calloc(c->nctx, sizeof(*c->parked));
    c->parked_lsn = calloc(c->nctx, sizeof(*c->parked_lsn));
    if (c->ctxs == NULL || c->parked == NULL || c->parked_lsn == NULL)
        return S3S_ENOMEM;
    for (int k = 0; k < COMMITTERS; k++) {
        c->cm[k].c = c;
        c->cm[k].taken = calloc(c->nctx, sizeof(*c->cm[k].taken));
        if (c->cm[k].taken == NULL)
            return S3S_ENOMEM;
    }
    for (uint32_t i = 0; i < c->nctx; i++) {
        srv_ctx *x = &c->ctxs[i];
        x->c = c;
        s3s__buf_init(&x->reply, (size_t)c->core->proto.max_msg + 4096);
        if ((nrv = nng_aio_alloc(&x->aio, ctx_cb, x)) != 0 ||
            (nrv = nng_ctx_open(&x->ctx, c->sock)) != 0)
            return fail(c, S3S_ENOMEM, "nng context: %s%s", "", nrv);
    }
    c->stopping = false;
    c->cstop = false;
    for (int k = 0; k < COMMITTERS; k++) {
        if (pthread_create(&c->cm[k].thr, NULL, committer, &c->cm[k]) != 0)
            return fail(c, S3S_ENOMEM, "cannot start the journal thread%s%s", "", 0);
        c->cm[k].running = true;
    }
    if (pthread_create(&c->thr, NULL, serve, c) != 0)
        return fail(c, S3S_ENOMEM, "cannot start the server thread%s%s", "", 0);
    c->running = true;
    for (uint32_t i = 0; i < c->nctx; i++) {
        c->ctxs[i].state = X_RECV;
        nng_ctx_recv(c->ctxs[i].ctx, c->ctxs[i].aio);
    }
    return 0;
}

void s3s_coord_stop(s3s_coord *c)
{
    if (c == NULL)
        return;
    if (c->running) {
        pthread_mutex_lock(&c->mu);
        __atomic_store_n(&c->stopping, true, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thr, NULL);
        c->running = false;
    }
    /* the last batches' replies go out once durable */
    pthread_mutex_lock(&c->mu);
    c->cstop = true;
    pthread_cond_broadcast(&c->jcv);
    pthread_mutex_unlock(&c->mu);
    for (int k = 0; k < COMMITTERS; k++) {
        if (c->cm[k].running)
            pthread_join(c->cm[k].thr, NULL);
        c->cm[k].running = false;
        free(c->cm[k].taken);
        c->cm[k].taken = NULL;
    }
    for (uint32_t i = 0; c->ctxs != NULL && i < c->nctx; i++)
        if (c->ctxs[i].aio != NULL)
            nng_aio_stop(c->ctxs[i].aio);
    for (uint32_t i = 0; c->ctxs != NULL && i < c->nctx; i++) {
        srv_ctx *x = &c->ctxs[i];
        if (x->req != NULL)
            nng_msg_free(x->req);
        x->req = NULL;
        if (x->aio != NULL)
            nng_aio_free(x->aio);
        x->aio = NULL;
        nng_ctx_close(x->ctx);
        s3s__buf_fini(&x->reply);
    }
    free(c->ctxs);
    c->ctxs = NULL;
    free(c->parked);
    free(c->parked_lsn);
    c->parked = NULL;
    c->parked_lsn = NULL;
    c->nparked = 0;
    if (c->sock_open)
        nng_close(c->sock);
    c->sock_open = false;
    if (c->tls != NULL)
        nng_tls_config_free(c->tls);
    c->tls = NULL;
    pthread_mutex_lock(&c->core_mu);
    if (!c->fatal)
        s3s__coord_commit(c->core, NULL);
    s3s__coord_mirror_flush(c->core, NULL);
    pthread_mutex_unlock(&c->core_mu);
}

void s3s_coord_destroy(s3s_coord *c)
{
    if (c == NULL)
        return;
    s3s_coord_stop(c);
    s3s__coord_close(c->core);
    pthread_mutex_destroy(&c->core_mu);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->jcv);
    free(c);
}

void s3s_coord_status_get(s3s_coord *c, s3s_coord_status *out)
{
    pthread_mutex_lock(&c->core_mu);
    s3s__coord_status_get(c->core, out);
    pthread_mutex_unlock(&c->core_mu);
}

int s3s_coord_status_json(s3s_coord *c, int ledger, char **out)
{
    pthread_mutex_lock(&c->core_mu);
    int rc = s3s__coord_status_json(c->core, ledger, out);
    pthread_mutex_unlock(&c->core_mu);
    return rc;
}
