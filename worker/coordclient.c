/* coordclient.c: req0 client of the coordinator (see coordclient.h). */
#include "worker/coordclient.h"

#include "common/crypto/random.h"
#include "s3shard/error.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct s3s__cc {
    s3s__cc_opts o;
    char host[S3S_PROTO_HOST_MAX + 1];
    nng_socket sock;
    nng_dialer dialer;
    nng_tls_config *tls;
    s3s__proto_cfg proto;
    uint64_t wid, seq;
    s3s__msg_welcome welcome;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t hb;
    bool hb_running, closing;
    uint64_t last_call_ms;
    s3s__buf out;
    uint64_t fetched; /* bytes fetched from S3 not yet reported (atomic) */
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void s3s__cc_opts_init(s3s__cc_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->resend_ms = 2000;
    o->timeout_ms = 60000;
    o->rank = S3S_PROTO_RANK_NONE;
    o->local_rank = S3S_PROTO_RANK_NONE;
    o->heartbeat = true;
}

static int connect_sock(nng_socket *sock, nng_dialer *d, nng_tls_config **tls, const char *url,
                        const char *ca, uint32_t resend_ms, s3s__errbuf *eb)
{
    int nrv = nng_req0_open(sock);
    if (nrv != 0)
        return s3s__err_set(eb, S3S_ENETWORK, "req socket: %s", nng_strerror(nrv));
    nng_socket_set_ms(*sock, NNG_OPT_REQ_RESENDTIME, resend_ms);
    nng_socket_set_ms(*sock, NNG_OPT_RECONNMINT, 50);
    nng_socket_set_ms(*sock, NNG_OPT_RECONNMAXT, 1000);
    nng_socket_set_size(*sock, NNG_OPT_RECVMAXSZ, S3S_PROTO_MAX_MSG_LIMIT);
    nrv = nng_dialer_create(d, *sock, url);
    if (nrv == 0 && strncmp(url, "tls+", 4) == 0) {
        nrv = nng_tls_config_alloc(tls, NNG_TLS_MODE_CLIENT);
        if (nrv == 0 && ca != NULL) {
            nrv = nng_tls_config_ca_file(*tls, ca);
            if (nrv == 0)
                nrv = nng_tls_config_auth_mode(*tls, NNG_TLS_AUTH_MODE_REQUIRED);
        } else if (nrv == 0) {
            nrv = nng_tls_config_auth_mode(*tls, NNG_TLS_AUTH_MODE_NONE);
        }
        if (nrv == 0) {
            /* the host part of the URL is the name the certificate must carry */
            char host[256] = "";
            const char *h = strstr(url, "://");
            if (h != NULL) {
                h += 3;
                size_t n = strcspn(h, ":/");
                if (n < sizeof(host)) {
                    memcpy(host, h, n);
                    host[n] = 0;
                }
            }
            nng_tls_config_server_name(*tls, host);
            nrv = nng_dialer_set_ptr(*d, NNG_OPT_TLS_CONFIG, *tls);
        }
    }
    if (nrv == 0)
        nrv = nng_dialer_start(*d, NNG_FLAG_NONBLOCK);
    if (nrv != 0) {
        nng_close(*sock);
        if (*tls != NULL)
            nng_tls_config_free(*tls);
        *tls = NULL;
        return s3s__err_set(eb, S3S_EINVAL, "cannot dial %s: %s", url, nng_strerror(nrv));
    }
    return 0;
}

/* One request/reply exchange with resends of the same bytes. */
static int exchange(nng_socket sock, const s3s__buf *req, uint32_t timeout_ms,
                    const s3s__proto_cfg *cfg, s3s__msg *reply, uint64_t seq, s3s__errbuf *eb)
{
    uint64_t deadline = mono_ms() + timeout_ms;
    nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, (int)(timeout_ms < 10000 ? timeout_ms : 10000));
    nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, (int)(timeout_ms < 10000 ? timeout_ms : 10000));
    for (;;) {
        int nrv = nng_send(sock, req->data, req->len, 0);
        if (nrv == 0) {
            void *buf = NULL;
            size_t len = 0;
            nrv = nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC);
            if (nrv == 0) {
                s3s__errbuf deb;
                int rc = s3s__msg_decode(reply, buf, len, cfg, &deb);
                nng_free(buf, len);
                if (rc != 0)
                    return s3s__err_set(eb, rc, "bad reply from the coordinator: %s", deb.msg);
                if (reply->seq != seq) {
                    s3s__msg_fini(reply);
                    continue; /* a late reply to an older request: ask again */
                }
                if (reply->type == S3S_MSG_ERROR) {
                    int code = (int)reply->u.error.code;
                    s3s__err_set(eb, code, "coordinator: %s", reply->u.error.message);
                    s3s__msg_fini(reply);
                    return code;
                }
                return 0;
            }
        }
        if (nrv != NNG_ETIMEDOUT || mono_ms() >= deadline)
            return s3s__err_set(eb, nrv == NNG_ETIMEDOUT ? S3S_ETIMEDOUT : S3S_ENETWORK,
                                "coordinator did not answer: %s", nng_strerror(nrv));
    }
}

int s3s__cc_call(s3s__cc *cc, s3s__msg *req, s3s__msg *reply, s3s__errbuf *eb)
{
    pthread_mutex_lock(&cc->mu);
    req->version = S3S_PROTO_VERSION;
    req->sender = cc->wid;
    req->seq = ++cc->seq;
    s3s__buf_reset(&cc->out);
    int rc = s3s__msg_encode(&cc->out, req, &cc->proto, eb);
    if (rc == 0)
        rc = exchange(cc->sock, &cc->out, cc->o.timeout_ms, &cc->proto, reply, req->seq, eb);
    cc->last_call_ms = mono_ms();
    pthread_mutex_unlock(&cc->mu);
    return rc;
}

int s3s__cc_hello(s3s__cc *cc, s3s__errbuf *eb)
{
    s3s__msg m, r;
    s3s__msg_init(&m, S3S_MSG_HELLO, 0, 0);
    s3s__msg_hello *h = &m.u.hello;
    snprintf(h->host, sizeof(h->host), "%s", cc->host);
    h->rank = cc->o.rank;
    h->local_rank = cc->o.local_rank;
    h->world_size = cc->o.world_size;
    h->pid = (uint64_t)getpid();
    h->incarnation = cc->o.incarnation;
    h->n_channels = cc->o.n_channels;
    for (uint32_t i = 0; i < cc->o.n_channels && i < S3S_PROTO_CHANNELS_MAX; i++)
        snprintf(h->channels[i], sizeof(h->channels[i]), "%s", cc->o.channels[i]);
    if (cc->o.snapshot_hash != NULL) {
        h->has_snapshot = true;
        memcpy(h->snapshot_hash, cc->o.snapshot_hash, S3S_PROTO_HASH_LEN);
        h->n_inv = cc->o.n_inv;
        h->inv = cc->o.inv;
        h->inv_truncated = cc->o.inv_truncated;
    }
    int rc = s3s__cc_call(cc, &m, &r, eb);
    if (rc != 0)
        return rc;
    if (r.type != S3S_MSG_WELCOME) {
        s3s__msg_fini(&r);
        return s3s__err_set(eb, S3S_EPROTO, "expected welcome, got %s", s3s__msg_type_name(r.type));
    }
    pthread_mutex_lock(&cc->mu);
    cc->welcome = r.u.welcome;
    cc->o.rank = r.u.welcome.rank; /* keep it across re-hellos */
    cc->o.world_size = r.u.welcome.world_size;
    pthread_cond_broadcast(&cc->cv);
    pthread_mutex_unlock(&cc->mu);
    s3s__msg_fini(&r);
    return 0;
}

static void *hb_main(void *arg)
{
    s3s__cc *cc = arg;
    pthread_mutex_lock(&cc->mu);
    while (!cc->closing) {
        uint32_t every = cc->welcome.heartbeat_ms ? cc->welcome.heartbeat_ms : 1000;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)every * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_cond_timedwait(&cc->cv, &cc->mu, &ts);
        if (cc->closing)
            break;
        if (mono_ms() - cc->last_call_ms < every)
            continue;
        pthread_mutex_unlock(&cc->mu);
        s3s__msg m, r;
        uint64_t toks[64];
        s3s__msg_init(&m, S3S_MSG_HEARTBEAT, 0, 0);
        if (cc->o.hb_tokens != NULL) {
            m.u.heartbeat.n = cc->o.hb_tokens(cc->o.hb_arg, toks, 64);
            m.u.heartbeat.tokens = toks;
        }
        if (s3s__cc_call(cc, &m, &r, NULL) == 0) {
            if (cc->o.hb_ack != NULL && r.type == S3S_MSG_HEARTBEAT_ACK)
                cc->o.hb_ack(cc->o.hb_arg, &r);
            s3s__msg_fini(&r);
        }
        pthread_mutex_lock(&cc->mu);
    }
    pthread_mutex_unlock(&cc->mu);
    return NULL;
}

int s3s__cc_open(s3s__cc **out, const s3s__cc_opts *o, s3s__errbuf *eb)
{
    *out = NULL;
    if (o->n_channels == 0 || o->n_channels > S3S_PROTO_CHANNELS_MAX)
        return s3s__err_set(eb, S3S_EINVAL, "1..20 channels");
    s3s__cc *cc = calloc(1, sizeof(*cc));
    if (cc == NULL)
        return S3S_ENOMEM;
    cc->o = *o;
    if (o->host != NULL)
        snprintf(cc->host, sizeof(cc->host), "%s", o->host);
    else if (gethostname(cc->host, sizeof(cc->host) - 1) != 0 || cc->host[0] == 0)
        snprintf(cc->host, sizeof(cc->host), "localhost");
    for (char *p = cc->host; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    cc->proto.secret = o->secret;
    cc->proto.secret_len = o->secret_len;
    cc->proto.max_msg = S3S_PROTO_MAX_MSG_LIMIT;
    do
        cc->wid = s3s__random_u64();
    while (cc->wid == 0);
    pthread_mutex_init(&cc->mu, NULL);
    pthread_cond_init(&cc->cv, NULL);
    s3s__buf_init(&cc->out, S3S_PROTO_MAX_MSG_LIMIT);
    int rc = connect_sock(&cc->sock, &cc->dialer, &cc->tls, o->url, o->tls_ca,
                          o->resend_ms ? o->resend_ms : 2000, eb);
    if (rc != 0) {
        s3s__buf_fini(&cc->out);
        pthread_mutex_destroy(&cc->mu);
        pthread_cond_destroy(&cc->cv);
        free(cc);
        return rc;
    }
    rc = s3s__cc_hello(cc, eb);
    if (rc == 0 && o->heartbeat) {
        if (pthread_create(&cc->hb, NULL, hb_main, cc) == 0)
            cc->hb_running = true;
    }
    if (rc != 0) {
        s3s__cc_close(cc);
        return rc;
    }
    *out = cc;
    return 0;
}

void s3s__cc_close(s3s__cc *cc)
{
    if (cc == NULL)
        return;
    pthread_mutex_lock(&cc->mu);
    cc->closing = true;
    pthread_cond_broadcast(&cc->cv);
    pthread_mutex_unlock(&cc->mu);
    if (cc->hb_running)
        pthread_join(cc->hb, NULL);
    nng_close(cc->sock);
    if (cc->tls != NULL)
        nng_tls_config_free(cc->tls);
    s3s__buf_fini(&cc->out);
    pthread_mutex_destroy(&cc->mu);
    pthread_cond_destroy(&cc->cv);
    free(cc);
}

const s3s__msg_welcome *s3s__cc_welcome(const s3s__cc *cc)
{
    return &cc->welcome;
}

uint64_t s3s__cc_worker_id(const s3s__cc *cc)
{
    return cc->wid;
}

int s3s__cc_lease(s3s__cc *cc, const char *channel, uint64_t epoch, uint32_t max, s3s__msg *reply,
                  s3s__errbuf *eb)
{
    s3s__msg m;
    s3s__msg_init(&m, S3S_MSG_LEASE, 0, 0);
    snprintf(m.u.lease.channel, sizeof(m.u.lease.channel), "%s", channel);
    m.u.lease.epoch = epoch;
    m.u.lease.max_shards = max ? max : 1;
    return s3s__cc_call(cc, &m, reply, eb);
}

int s3s__cc_progress(s3s__cc *cc, const s3s__msg_prog *items, uint32_t n, s3s__msg *reply,
                     s3s__errbuf *eb)
{
    s3s__msg m;
    s3s__msg_init(&m, S3S_MSG_PROGRESS, 0, 0);
    m.u.progress.n = n;
    m.u.progress.items = items;
    m.u.progress.fetched = __atomic_exchange_n(&cc->fetched, 0, __ATOMIC_RELAXED);
    int rc = s3s__cc_call(cc, &m, reply, eb);
    if (rc != 0) /* not reported: keep it for the next message */
        __atomic_fetch_add(&cc->fetched, m.u.progress.fetched, __ATOMIC_RELAXED);
    return rc;
}

void s3s__cc_note_fetched(s3s__cc *cc, uint64_t n)
{
    if (cc != NULL)
        __atomic_fetch_add(&cc->fetched, n, __ATOMIC_RELAXED);
}

int s3s__cc_drain(s3s__cc *cc, const s3s__msg_prog *items, uint32_t n, const char *reason,
                  s3s__msg *reply, s3s__errbuf *eb)
{
    s3s__msg m;
    s3s__msg_init(&m, S3S_MSG_DRAIN, 0, 0);
    m.u.progress.n = n;
    m.u.progress.items = items;
    snprintf(m.u.progress.reason, sizeof(m.u.progress.reason), "%s", reason ? reason : "");
    m.u.progress.fetched = __atomic_exchange_n(&cc->fetched, 0, __ATOMIC_RELAXED);
    int rc = s3s__cc_call(cc, &m, reply, eb);
    if (rc != 0)
        __atomic_fetch_add(&cc->fetched, m.u.progress.fetched, __ATOMIC_RELAXED);
    return rc;
}

int s3s__cc_bye(s3s__cc *cc, const char *reason, s3s__errbuf *eb)
{
    s3s__msg m, r;
    s3s__msg_init(&m, S3S_MSG_BYE, 0, 0);
    snprintf(m.u.bye.reason, sizeof(m.u.bye.reason), "%s", reason ? reason : "");
    int rc = s3s__cc_call(cc, &m, &r, eb);
    if (rc == 0)
        s3s__msg_fini(&r);
    return rc;
}

int s3s__cc_status(const char *url, const uint8_t *secret, size_t secret_len, const char *tls_ca,
                   uint32_t flags, uint32_t timeout_ms, s3s__msg *reply, s3s__errbuf *eb)
{
    nng_socket sock;
    nng_dialer d;
    nng_tls_config *tls = NULL;
    int rc = connect_sock(&sock, &d, &tls, url, tls_ca, 1000, eb);
    if (rc != 0)
        return rc;
    s3s__proto_cfg cfg = {
        .secret = secret, .secret_len = secret_len, .max_msg = S3S_PROTO_MAX_MSG_LIMIT};
    s3s__msg m;
    uint64_t wid;
    do
        wid = s3s__random_u64();
    while (wid == 0);
    s3s__msg_init(&m, S3S_MSG_STATUS, wid, 1);
    m.u.status.flags = flags;
    s3s__buf b;
    s3s__buf_init(&b, 1 << 20);
    rc = s3s__msg_encode(&b, &m, &cfg, eb);
    if (rc == 0)
        rc = exchange(sock, &b, timeout_ms ? timeout_ms : 10000, &cfg, reply, 1, eb);
    s3s__buf_fini(&b);
    nng_close(sock);
    if (tls != NULL)
        nng_tls_config_free(tls);
    return rc;
}

int s3s__cc_secret_load(const char *path, uint8_t **out, size_t *len, s3s__errbuf *eb)
{
    *out = NULL;
    *len = 0;
    if (path == NULL) {
        const char *e = getenv("S3SHARD_SECRET");
        if (e == NULL || e[0] == 0)
            return 0;
        *len = strlen(e);
        *out = (uint8_t *)strdup(e);
        return *out ? 0 : S3S_ENOMEM;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return s3s__err_set(eb, S3S_EIO, "cannot read the secret file %s", path);
    uint8_t *b = malloc(4097);
    size_t n = b ? fread(b, 1, 4096, f) : 0;
    fclose(f);
    if (b == NULL)
        return S3S_ENOMEM;
    while (n > 0 && (b[n - 1] == '\n' || b[n - 1] == '\r'))
        n--;
    if (n == 0) {
        free(b);
        return s3s__err_set(eb, S3S_ECONFIG, "the secret file %s is empty", path);
    }
    *out = b;
    *len = n;
    return 0;
}
