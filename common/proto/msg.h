/* msg.h: the coordinator <-> worker wire protocol: message structs and their
 * msgpack codec. The format is documented byte by byte in docs/protocol.md.
 *
 * Envelope (every version keeps the first element): a msgpack array
 *   [version, type, sender, seq, body]            (no shared secret)
 *   [version, type, sender, seq, body, hmac]      (shared secret: bin 32)
 * body is a map from small integer field ids to values. hmac is HMAC-SHA256,
 * keyed with the shared secret, over the encoded bytes of the five elements
 * (everything after the array header up to the hmac element).
 *
 * Invariants of a decoded s3s__msg: every count is within its S3S_PROTO_*_MAX,
 * every string is NUL-terminated, has no NUL inside and fits its field, every
 * number is in the range its field documents, and every array it points to
 * lives in m->arena, freed by s3s__msg_fini. For an encoded message the struct
 * only borrows the caller's arrays: encoding copies nothing.
 *
 * Unknown body fields are skipped (after the whole message was checked for
 * well-formed lengths and depth), so a peer of the same protocol version may add
 * optional fields; a duplicate field or a missing required field is refused.
 *
 * Thread-safety: encode and decode keep no state between calls; any number of
 * threads may use them at once (a s3s__proto_key is only read).
 *
 * Sender ids: a worker chooses a random non-zero 64-bit id per process start
 * (so (sender, seq) is unique even before the welcome); the coordinator sends 0. */
#ifndef S3S_PROTO_MSG_H
#define S3S_PROTO_MSG_H

#include "common/util/buf.h"
#include "common/util/errbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S3S_PROTO_VERSION 1
#define S3S_PROTO_MAX_MSG_DEFAULT (16u << 20) /* 16 MiB; also the NNG_OPT_RECVMAXSZ to set */
#define S3S_PROTO_MAX_MSG_LIMIT (256u << 20) /* no configuration goes above */
#define S3S_PROTO_MIN_MSG 64 /* ... or below */
#define S3S_PROTO_ALLOC_FACTOR 32 /* decode allocates <= factor * size + 4 KiB */
#define S3S_PROTO_DEPTH_MAX 32 /* nesting of containers, status reply included */
#define S3S_PROTO_HOST_MAX 255
#define S3S_PROTO_CHANNEL_MAX 64 /* channel name: [A-Za-z0-9._-]{1,64} */
#define S3S_PROTO_CHANNELS_MAX 20
#define S3S_PROTO_INV_MAX 65536 /* cache inventory entries in a hello */
#define S3S_PROTO_ITEMS_MAX 4096 /* grants, progress items, tokens per message */
#define S3S_PROTO_TEXT_MAX 1024 /* error messages and reasons */
#define S3S_PROTO_WORLD_MAX (1u << 20)
#define S3S_PROTO_TTL_MAX 86400000u /* one day in ms */
#define S3S_PROTO_RANK_NONE UINT32_MAX /* rank not known yet: the coordinator assigns */
#define S3S_PROTO_HASH_LEN 32
#define S3S_PROTO_HMAC_LEN 32

typedef enum s3s__msg_type {
    S3S_MSG_HELLO = 1,
    S3S_MSG_WELCOME = 2,
    S3S_MSG_LEASE = 3,
    S3S_MSG_GRANT = 4,
    S3S_MSG_PROGRESS = 5,
    S3S_MSG_PROGRESS_ACK = 6,
    S3S_MSG_HEARTBEAT = 7,
    S3S_MSG_HEARTBEAT_ACK = 8,
    S3S_MSG_DRAIN = 9,
    S3S_MSG_DRAIN_ACK = 10,
    S3S_MSG_STATUS = 11,
    S3S_MSG_STATUS_REPLY = 12,
    S3S_MSG_BYE = 13,
    S3S_MSG_BYE_ACK = 14,
    S3S_MSG_ERROR = 15,
    S3S_MSG_TYPE_MAX_ = 16
} s3s__msg_type;

/* Commands a reply can carry (fields 100-102 of any reply body). */
typedef enum s3s__cmd_kind {
    S3S_CMD_NONE = 0,
    S3S_CMD_EPOCH_FINISHED = 1, /* cmd_channel finished; cmd_epoch is the new epoch */
    S3S_CMD_DRAIN = 2, /* commit positions, release leases, send drain */
    S3S_CMD_STOP = 3, /* the job is over: send bye and exit */
    S3S_CMD_MAX_ = 4
} s3s__cmd_kind;

typedef enum s3s__grant_status {
    S3S_GRANT_OK = 0, /* grants[] has 1..n leases */
    S3S_GRANT_NONE_NOW = 1, /* nothing free now: ask again after retry_ms */
    S3S_GRANT_EPOCH_DONE = 2, /* every shard of the epoch is done or leased elsewhere for good */
    S3S_GRANT_STATUS_MAX_ = 3
} s3s__grant_status;

typedef enum s3s__pval_type {
    S3S_PV_NIL,
    S3S_PV_BOOL,
    S3S_PV_UINT,
    S3S_PV_INT, /* negative */
    S3S_PV_FLOAT,
    S3S_PV_STR,
    S3S_PV_BIN,
    S3S_PV_ARRAY,
    S3S_PV_MAP /* keys are strings */
} s3s__pval_type;

/* A generic value: the status reply is a tree of these. */
typedef struct s3s__pval {
    uint8_t type; /* s3s__pval_type */
    uint32_t n; /* bytes of str/bin, elements of array, pairs of map */
    union {
        bool b;
        uint64_t u;
        int64_t i;
        double f;
        const char *s; /* NUL-terminated (n bytes before the NUL) */
        const uint8_t *bin;
        const struct s3s__pval *items;
        const struct s3s__pkv *kv;
    } v;
} s3s__pval;

typedef struct s3s__pkv {
    const char *key; /* NUL-terminated */
    s3s__pval val;
} s3s__pkv;

typedef struct s3s__msg_inv {
    uint32_t channel; /* index into hello.channels */
    uint64_t shard;
} s3s__msg_inv;

typedef struct s3s__msg_hello {
    char host[S3S_PROTO_HOST_MAX + 1]; /* required, non-empty, printable */
    uint32_t rank; /* < world_size, or S3S_PROTO_RANK_NONE */
    uint32_t local_rank; /* < S3S_PROTO_WORLD_MAX or S3S_PROTO_RANK_NONE; default NONE */
    uint32_t world_size; /* 1..S3S_PROTO_WORLD_MAX, or 0 = not known */
    uint64_t pid; /* <= UINT32_MAX */
    uint64_t incarnation; /* bumped by the worker on every restart */
    uint32_t n_channels; /* 1..S3S_PROTO_CHANNELS_MAX */
    char channels[S3S_PROTO_CHANNELS_MAX][S3S_PROTO_CHANNEL_MAX + 1];
    bool has_snapshot; /* the snapshot the inventory's shard ids refer to */
    uint8_t snapshot_hash[S3S_PROTO_HASH_LEN];
    uint32_t n_inv; /* <= S3S_PROTO_INV_MAX */
    const s3s__msg_inv *inv;
    bool inv_truncated; /* the worker holds more than it listed */
} s3s__msg_hello;

typedef struct s3s__msg_chan_info {
    char name[S3S_PROTO_CHANNEL_MAX + 1];
    uint64_t epoch; /* current epoch of the channel */
    uint32_t distribution; /* 0 FullyReplicated, 1 ShardedByS3Key, 2 Dynamic (< 16) */
    uint64_t n_shards;
} s3s__msg_chan_info;

typedef struct s3s__msg_welcome {
    uint32_t rank; /* the rank this worker is (assigned when hello had none) */
    uint32_t world_size; /* 1..S3S_PROTO_WORLD_MAX */
    uint32_t lease_ttl_ms; /* 1..S3S_PROTO_TTL_MAX */
    uint32_t heartbeat_ms; /* 1..S3S_PROTO_TTL_MAX */
    uint32_t max_msg; /* the coordinator's receive limit, S3S_PROTO_MIN_MSG..LIMIT */
    uint8_t job_hash[S3S_PROTO_HASH_LEN];
    uint8_t snapshot_hash[S3S_PROTO_HASH_LEN];
    uint32_t n_channels; /* 1..S3S_PROTO_CHANNELS_MAX */
    s3s__msg_chan_info channels[S3S_PROTO_CHANNELS_MAX];
} s3s__msg_welcome;

typedef struct s3s__msg_lease {
    char channel[S3S_PROTO_CHANNEL_MAX + 1];
    uint64_t epoch;
    uint32_t max_shards; /* 1..S3S_PROTO_ITEMS_MAX */
} s3s__msg_lease;

typedef struct s3s__msg_lease_grant {
    uint64_t shard;
    uint64_t start; /* <= end: bytes or records, as the shard counts */
    uint64_t end;
    uint64_t token; /* fencing token, non-zero */
    uint32_t ttl_ms; /* 1..S3S_PROTO_TTL_MAX */
} s3s__msg_lease_grant;

typedef struct s3s__msg_grant {
    char channel[S3S_PROTO_CHANNEL_MAX + 1];
    uint64_t epoch;
    uint32_t status; /* s3s__grant_status; n == 0 unless S3S_GRANT_OK, n >= 1 if OK */
    uint32_t retry_ms; /* for NONE_NOW, <= S3S_PROTO_TTL_MAX */
    uint32_t n;
    const s3s__msg_lease_grant *grants;
} s3s__msg_grant;

typedef struct s3s__msg_prog {
    uint64_t shard;
    uint64_t token; /* non-zero */
    uint64_t offset; /* reached at a sample boundary */
    bool done;
} s3s__msg_prog;

/* progress and drain */
typedef struct s3s__msg_progress {
    uint32_t n; /* progress: 1..S3S_PROTO_ITEMS_MAX; drain: 0.. */
    const s3s__msg_prog *items;
    char reason[S3S_PROTO_TEXT_MAX + 1]; /* drain only, optional */
    uint64_t fetched; /* optional (field 3; 0 = not sent): bytes this worker fetched from
                       * S3 since its previous progress or drain message */
} s3s__msg_progress;

typedef struct s3s__msg_prog_result {
    uint64_t shard;
    uint64_t token;
    uint64_t committed; /* the durable offset of the shard after this request */
    uint32_t result; /* 0 or an S3S_E* code (S3S_ESTALE: token expired or superseded) */
} s3s__msg_prog_result;

/* progress_ack and drain_ack */
typedef struct s3s__msg_ack {
    uint32_t n;
    const s3s__msg_prog_result *items;
} s3s__msg_ack;

typedef struct s3s__msg_heartbeat {
    uint32_t n; /* tokens the worker holds; 0 = renew all of mine */
    const uint64_t *tokens;
} s3s__msg_heartbeat;

typedef struct s3s__msg_heartbeat_ack {
    uint32_t lease_ttl_ms;
    uint32_t n_revoked; /* tokens no longer valid: stop work on them */
    const uint64_t *revoked;
} s3s__msg_heartbeat_ack;

#define S3S_STATUS_LEDGER 0x1u /* include the coverage ledger */

typedef struct s3s__msg_status {
    uint32_t flags;
} s3s__msg_status;

typedef struct s3s__mpw s3s__mpw;

typedef struct s3s__msg_status_reply {
    const s3s__pval *root; /* a map; decoded replies always have one */
    /* Encoding only: when set, writes the root map itself instead of root
     * (returns 0 or an S3S_E* code). Lets the coordinator stream its state. */
    int (*write)(void *arg, s3s__mpw *w);
    void *write_arg;
} s3s__msg_status_reply;

typedef struct s3s__msg_error {
    uint32_t code; /* an S3S_E* code, 1..65535 */
    char message[S3S_PROTO_TEXT_MAX + 1];
} s3s__msg_error;

typedef struct s3s__msg_bye {
    char reason[S3S_PROTO_TEXT_MAX + 1]; /* optional */
} s3s__msg_bye;

typedef struct s3s__msg {
    uint32_t version; /* S3S_PROTO_VERSION when encoding */
    uint32_t type; /* s3s__msg_type */
    uint64_t sender; /* worker id; 0 for the coordinator */
    uint64_t seq; /* per-sender sequence number */
    /* Replies only: */
    uint32_t cmd; /* s3s__cmd_kind */
    uint64_t cmd_epoch;
    char cmd_channel[S3S_PROTO_CHANNEL_MAX + 1];
    union {
        s3s__msg_hello hello;
        s3s__msg_welcome welcome;
        s3s__msg_lease lease;
        s3s__msg_grant grant;
        s3s__msg_progress progress; /* PROGRESS, DRAIN */
        s3s__msg_ack ack; /* PROGRESS_ACK, DRAIN_ACK */
        s3s__msg_heartbeat heartbeat;
        s3s__msg_heartbeat_ack heartbeat_ack;
        s3s__msg_status status;
        s3s__msg_status_reply status_reply;
        s3s__msg_bye bye;
        s3s__msg_error error;
    } u;
    void *arena; /* decoded messages own their arrays here */
} s3s__msg;

/* A shared secret prepared for fast HMACs (see s3s__proto_key_create). */
typedef struct s3s__proto_key s3s__proto_key;

/* Codec configuration, shared by both ends. */
typedef struct s3s__proto_cfg {
    const uint8_t *secret; /* NULL: no HMAC; else every message carries and needs one */
    size_t secret_len;
    /* Optional, the same secret precomputed: several times faster HMACs. When
     * set it is used (and HMACs are on) whatever secret says. */
    const s3s__proto_key *key;
    size_t max_msg; /* 0: S3S_PROTO_MAX_MSG_DEFAULT; clamped to [MIN_MSG, MAX_MSG_LIMIT] */
} s3s__proto_cfg;

/* s3s__proto_key_create precomputes the HMAC-SHA256 state of a secret (any
 * length; RFC 2104). The key may be shared by threads (it is only read).
 * Returns 0 or S3S_ENOMEM. s3s__proto_key_destroy accepts NULL. */
int s3s__proto_key_create(s3s__proto_key **out, const uint8_t *secret, size_t len);
void s3s__proto_key_destroy(s3s__proto_key *k);

/* s3s__msg_init zeroes m and sets the envelope. */
void s3s__msg_init(s3s__msg *m, uint32_t type, uint64_t sender, uint64_t seq);
/* s3s__msg_fini frees what decoding allocated. NULL-safe; harmless on an
 * encoded message (it never touches borrowed arrays). */
void s3s__msg_fini(s3s__msg *m);
/* s3s__msg_is_request tells requests (worker -> coordinator) from replies. */
bool s3s__msg_is_request(uint32_t type);
/* s3s__msg_type_name returns "hello", "grant", ... or "unknown". */
const char *s3s__msg_type_name(uint32_t type);

/* s3s__msg_encode appends the encoding of m to out (whose cap should be at
 * least cfg->max_msg) and adds the HMAC when cfg has a secret. Fails with
 * S3S_EINVAL for a field past its limit (named in eb) and S3S_ETOOBIG past
 * max_msg; out is then reset to its length before the call. */
int s3s__msg_encode(s3s__buf *out, const s3s__msg *m, const s3s__proto_cfg *cfg, s3s__errbuf *eb);

/* s3s__msg_decode parses data[0..len) into out. Never crashes, never reads past
 * len, allocates at most S3S_PROTO_ALLOC_FACTOR * len + 4 KiB. Returns
 *   S3S_ETOOBIG   len > max_msg
 *   S3S_EPROTO    malformed, wrong type or range, another protocol version
 *                 ("protocol version X, expected Y")
 *   S3S_EAUTH     HMAC missing, unexpected or wrong (compared in constant time)
 *   S3S_ENOMEM
 * with what and where in eb. On failure out holds no memory; out->version,
 * type, sender and seq keep whatever was read of the envelope (0 otherwise)
 * so the caller can address an error reply and count the refusal. */
int s3s__msg_decode(s3s__msg *out, const void *data, size_t len, const s3s__proto_cfg *cfg,
                    s3s__errbuf *eb);

/* s3s__pval_get returns the value under key in a map value, or NULL. */
const s3s__pval *s3s__pval_get(const s3s__pval *map, const char *key);
/* s3s__pval_write encodes v (for status replies built as a tree). */
void s3s__pval_write(s3s__mpw *w, const s3s__pval *v, int depth);

#endif
