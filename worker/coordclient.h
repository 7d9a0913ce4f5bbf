/* coordclient.h: the worker's side of the coordinator protocol (internal).
 *
 * One nng req0 socket per client, dialed without blocking (the coordinator
 * may start later; nng reconnects). Every request gets the next sequence
 * number of this client's random worker id; a request is resent with the same
 * bytes (same seq) when no reply came within resend_ms (nng's REQ resend) or
 * the per-attempt receive timeout, so the coordinator answers a resend from
 * its reply cache and never applies it twice.
 *
 * Thread-safety: calls are serialised by a mutex, so the heartbeat thread and
 * the caller may share a client; seqs stay strictly increasing. */
#ifndef S3S_WORKER_COORDCLIENT_H
#define S3S_WORKER_COORDCLIENT_H

#include "common/proto/msg.h"
#include "common/util/errbuf.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct s3s__cc s3s__cc;

typedef struct s3s__cc_opts {
    const char *url; /* tcp://, ipc://, tls+tcp:// */
    const uint8_t *secret; /* NULL: no HMAC */
    size_t secret_len;
    const char *tls_ca; /* PEM CA for tls+tcp:// (NULL: the server is not verified) */
    uint32_t resend_ms; /* default 2000 */
    uint32_t timeout_ms; /* give up on a request after this long; default 60000 */
    /* hello: */
    const char *host; /* default gethostname() */
    uint32_t rank; /* S3S_PROTO_RANK_NONE: the coordinator assigns */
    uint32_t local_rank;
    uint32_t world_size; /* 0: not known */
    uint64_t incarnation;
    const char *const *channels;
    uint32_t n_channels;
    const s3s__msg_inv *inv; /* cache inventory */
    uint32_t n_inv;
    bool inv_truncated;
    const uint8_t *snapshot_hash; /* what the inventory refers to; NULL: none */
    bool heartbeat; /* run the heartbeat thread (every welcome.heartbeat_ms) */
    /* Optional heartbeat hooks, called on the heartbeat thread without the
     * client's lock (they must not call the client): hb_tokens fills the
     * tokens to ask about (at most max; returns the count, 0 = none), hb_ack
     * sees each heartbeat reply (revoked tokens, commands). */
    uint32_t (*hb_tokens)(void *arg, uint64_t *out, uint32_t max);
    void (*hb_ack)(void *arg, const s3s__msg *reply);
    void *hb_arg;
} s3s__cc_opts;

void s3s__cc_opts_init(s3s__cc_opts *o);

/* s3s__cc_open connects and says hello; the welcome is kept. */
int s3s__cc_open(s3s__cc **out, const s3s__cc_opts *o, s3s__errbuf *eb);
/* s3s__cc_hello says hello again (after "unknown worker"). */
int s3s__cc_hello(s3s__cc *cc, s3s__errbuf *eb);
void s3s__cc_close(s3s__cc *cc);
const s3s__msg_welcome *s3s__cc_welcome(const s3s__cc *cc);
uint64_t s3s__cc_worker_id(const s3s__cc *cc);

/* s3s__cc_call sends req (its sender and seq are set here) and decodes the
 * reply into *reply (caller calls s3s__msg_fini). An error reply returns its
 * code with its text in eb (reply then holds nothing). */
int s3s__cc_call(s3s__cc *cc, s3s__msg *req, s3s__msg *reply, s3s__errbuf *eb);

/* Shorthands. */
int s3s__cc_lease(s3s__cc *cc, const char *channel, uint64_t epoch, uint32_t max, s3s__msg *reply,
                  s3s__errbuf *eb);
int s3s__cc_progress(s3s__cc *cc, const s3s__msg_prog *items, uint32_t n, s3s__msg *reply,
                     s3s__errbuf *eb);
int s3s__cc_drain(s3s__cc *cc, const s3s__msg_prog *items, uint32_t n, const char *reason,
                  s3s__msg *reply, s3s__errbuf *eb);
int s3s__cc_bye(s3s__cc *cc, const char *reason, s3s__errbuf *eb);
/* s3s__cc_note_fetched adds n bytes fetched from S3 (not from a cache); the
 * next progress or drain reports them (optional field `fetched`), so the
 * coordinator can count bytes downloaded twice. Any thread. NULL-safe. */
void s3s__cc_note_fetched(s3s__cc *cc, uint64_t n);

/* s3s__cc_status asks a coordinator for its status without a hello (a
 * throwaway worker id). flags: S3S_STATUS_LEDGER, 0x2 = job spec + snapshots. */
int s3s__cc_status(const char *url, const uint8_t *secret, size_t secret_len, const char *tls_ca,
                   uint32_t flags, uint32_t timeout_ms, s3s__msg *reply, s3s__errbuf *eb);

/* s3s__cc_secret_load: the secret from a file (trailing newlines cut) or, with
 * path NULL, from $S3SHARD_SECRET. *out NULL when there is none. */
int s3s__cc_secret_load(const char *path, uint8_t **out, size_t *len, s3s__errbuf *eb);

#endif
