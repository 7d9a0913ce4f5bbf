/* cmd_consume.c: `s3shard consume`: a rank that takes its share from the
 * coordinator's leases through the worker library (s3s_worker with
 * opts.coordinator: lookahead prefetch, block cache), reads every byte, commits
 * progress, and prints one line per piece read: epoch TAB key TAB start TAB end
 * TAB sha256. A piece is the bytes of one object between two commit points;
 * its line is printed (and flushed) before the commit is sent, so a rank
 * killed between the two leaves a line whose bytes someone reads again:
 * duplicates are bounded by the piece in flight. SIGTERM/SIGINT drain: the
 * exact position reached is committed, leases are released, exit 0.
 *
 * A revoked lease is not an error (the coordinator restarted, or the lease
 * expired while the rank was slow): whichever call notices it (a read that
 * fails, a commit, the close), the item is dropped at its last commit (the
 * coordinator grants the rest again, maybe to us) and the rank leases again.
 * A read that fails under a live lease is retried from the last commit (the
 * item goes back to its lease) up to READ_RETRIES times in a row.
 *
 * An augmented manifest's items are a record's attributes, and a record is
 * committed whole: consume reads every attribute of a record and prints one
 * line per record, epoch TAB line:N TAB 0 TAB bytes TAB sha256, where N is
 * the record's line in the manifest and the hash is over its attributes'
 * bytes in order (what a Pipe channel without RecordIO streams for it),
 * before the last attribute's commit commits the record. */
#include "common/crypto/hex.h"
#include "common/crypto/sha256.h"
#include "s3shard/error.h"
#include "s3shard/worker.h"
#include "worker/cli/cli.h"
#include "worker/cli/cli_s3.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t g_drain;

static void on_term(int sig)
{
    (void)sig;
    g_drain = 1;
}

#define CHUNK (256 * 1024)
#define READ_RETRIES 3 /* failed reads in a row under live leases before giving up */

typedef struct consume {
    s3s_worker *w;
    uint64_t commit_bytes;
    unsigned step_ms;
    uint64_t bytes, pieces, revoked, retried;
    unsigned failed_reads; /* in a row, under live leases */
    uint8_t *buf;
    /* the record being read (augmented manifests) */
    s3s__sha256_ctx rsha;
    uint64_t rbytes;
    uint32_t rnext; /* the attribute expected next */
} consume;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && !g_drain)
        ;
}

/* Reads one item from its resume offset in pieces of commit_bytes, printing
 * and committing each. Returns 0 or 1 (failed; message printed). */
static int read_item(consume *k, s3s_item *it)
{
    const s3s_item_info *in = s3s_item_info_get(it);
    s3s_reader *r = s3s_item_reader(it);
    uint64_t pos = in->offset;
    while (pos < in->size && !g_drain) {
        uint64_t len = in->size - pos;
        if (k->commit_bytes && len > k->commit_bytes)
            len = k->commit_bytes;
        s3s__sha256_ctx sha;
        s3s__sha256_init(&sha);
        uint64_t got = 0;
        int rc = 0;
        while (got < len && !g_drain) { /* a drain stops at the exact byte reached */
            size_t want = len - got < CHUNK ? (size_t)(len - got) : CHUNK, n = 0;
            rc = s3s_reader_read(r, k->buf, want, &n);
            s3s__sha256_update(&sha, k->buf, n);
            got += n;
            if (rc != 0 || n == 0)
                break;
        }
        uint8_t d[32];
        char hex[65];
        s3s__sha256_final(&sha, d);
        if (rc != 0) {
            /* The bytes of this piece are neither printed nor committed. A
             * commit at the last position sends nothing: it only says whether
             * the lease is still ours. */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", s3s_reader_errmsg(r));
            int dead = s3s_item_commit(it, pos) == S3S_ESTALE;
            if (!dead && ++k->failed_reads > READ_RETRIES) {
                fprintf(stderr, "s3shard consume: %s\n", msg);
                return 1;
            }
            if (!dead) { /* a moment for S3, and for the heartbeat to tell a revocation */
                sleep_ms(500u << (k->failed_reads - 1));
                dead = s3s_item_commit(it, pos) == S3S_ESTALE;
            }
            if (dead) {
                fprintf(stderr, "s3shard consume: %s: the lease was revoked: dropped at %llu\n",
                        msg, (unsigned long long)pos);
                k->revoked++;
                return 0;
            }
            fprintf(stderr, "s3shard consume: %s: reading it again from %llu\n", msg,
                    (unsigned long long)pos);
            k->retried++;
            return 0; /* closed unfinished: back to its lease, handed out again */
        }
        k->failed_reads = 0;
        if (got == 0)
            break;
        s3s__hex_encode(d, 32, hex);
        hex[64] = 0;
        printf("%llu\t%s\t%llu\t%llu\t%s\n", (unsigned long long)in->epoch, in->key,
               (unsigned long long)pos, (unsigned long long)(pos + got), hex);
        fflush(stdout);
        k->pieces++;
        k->bytes += got;
        pos += got;
        rc = s3s_item_commit(it, pos);
        if (rc == S3S_ESTALE) { /* printed, not committed: read again by someone */
            fprintf(stderr, "s3shard consume: %s\n", s3s_reader_errmsg(r));
            k->revoked++;
            return 0;
        }
        if (rc != 0) {
            fprintf(stderr, "s3shard consume: %s\n", s3s_reader_errmsg(r));
            return 1;
        }
        if (k->step_ms && !g_drain)
            sleep_ms(k->step_ms);
    }
    return 0;
}

/* Reads one attribute of a record whole (the record is the unit: partial
 * commits are not kept) and, after its last attribute, prints the record's
 * line before the commit that commits the record. Returns 0 or 1. */
static int read_attr(consume *k, s3s_item *it)
{
    const s3s_item_info *in = s3s_item_info_get(it);
    s3s_reader *r = s3s_item_reader(it);
    if (in->attr_index == 0 || in->attr_index != k->rnext) { /* a new record (or one again) */
        s3s__sha256_init(&k->rsha);
        k->rbytes = 0;
        k->rnext = 0;
        if (in->attr_index != 0)
            return 0; /* the rest of a record whose beginning went elsewhere: skip */
    }
    uint64_t got = 0;
    while (got < in->size && !g_drain) {
        uint64_t left = in->size - got;
        size_t n = 0;
        int rc = s3s_reader_read(r, k->buf, left < CHUNK ? (size_t)left : CHUNK, &n);
        s3s__sha256_update(&k->rsha, k->buf, n);
        got += n;
        if (rc != 0) {
            fprintf(stderr, "s3shard consume: %s\n", s3s_reader_errmsg(r));
            return 1;
        }
        if (n == 0)
            break;
    }
    if (got < in->size)
        return 0; /* drained: the record goes back whole at close */
    k->rbytes += got;
    k->rnext++;
    if (k->rnext == in->attr_count) {
        uint8_t d[32];
        char hex[65];
        s3s__sha256_final(&k->rsha, d);
        s3s__hex_encode(d, 32, hex);
        hex[64] = 0;
        printf("%llu\tline:%llu\t0\t%llu\t%s\n", (unsigned long long)in->epoch,
               (unsigned long long)in->record_line, (unsigned long long)k->rbytes, hex);
        fflush(stdout);
        k->pieces++;
        k->bytes += k->rbytes;
        k->rnext = 0;
    }
    int rc = s3s_item_commit(it, in->size);
    if (rc == S3S_ESTALE) {
        fprintf(stderr, "s3shard consume: %s\n", s3s_reader_errmsg(r));
        k->revoked++;
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "s3shard consume: %s\n", s3s_reader_errmsg(r));
        return 1;
    }
    if (k->step_ms && !g_drain && k->rnext == 0)
        sleep_ms(k->step_ms);
    return 0;
}

int s3s__cmd_consume(s3s__cli *g, int argc, char **argv)
{
    consume k;
    memset(&k, 0, sizeof(k));
    k.commit_bytes = 1 << 20;
    s3s_worker_opts o;
    s3s_worker_opts_init(&o);
    o.rank = S3S_WORKER_RANK_ANY;
    o.cancel = &g_drain; /* from the SIGTERM on, no new lease: the drain gives back what we hold */
    o.world_size = 0;
    o.connections = 8;
    long long rank = -1, world = 0, epochs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return s3s__cli_usage_error("consume", "%s needs a value", a);
        i++;
        long long n = 0;
        if (strcmp(a, "--coordinator") == 0)
            o.coordinator = v;
        else if (strcmp(a, "--channel") == 0)
            o.channel = v;
        else if (strcmp(a, "--secret-file") == 0)
            o.coord_secret_file = v;
        else if (strcmp(a, "--tls-ca") == 0)
            o.coord_tls_ca = v;
        else if (strcmp(a, "--cache-dir") == 0)
            o.cache_dir = v;
        else if ((n = s3s__cli_parse_count(v)) < 0)
            return s3s__cli_usage_error("consume", "%s: %s is not a count", a, v);
        else if (strcmp(a, "--rank") == 0)
            rank = n;
        else if (strcmp(a, "--world-size") == 0)
            world = n;
        else if (strcmp(a, "--epochs") == 0)
            epochs = n;
        else if (strcmp(a, "--step-ms") == 0)
            k.step_ms = (unsigned)n;
        else if (strcmp(a, "--commit-bytes") == 0)
            k.commit_bytes = (uint64_t)n;
        else if (strcmp(a, "--connections") == 0 && n > 0 && n <= 1024)
            o.connections = (unsigned)n;
        else
            return s3s__cli_usage_error("consume", "unknown option %s", a);
    }
    if (o.coordinator == NULL || o.channel == NULL)
        return s3s__cli_usage_error("consume", "--coordinator and --channel are required");
    if (rank >= 0)
        o.rank = (uint32_t)rank;
    o.world_size = world > 0 ? (uint32_t)world : 0;
    o.epochs = (uint32_t)epochs;
    s3s__cli_s3_opts(g, &o.s3, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    k.buf = malloc(CHUNK);
    if (k.buf == NULL)
        return s3s__cli_fail("consume", "out of memory");
    s3s_errinfo ei = {0};
    int rc = s3s_worker_create(&k.w, &o, &ei);
    if (rc != 0) {
        free(k.buf);
        return s3s__cli_fail("consume", "%s", ei.msg[0] ? ei.msg : s3s_strerror(rc));
    }
    double t0 = s3s__cli_now();
    int ret = 0;
    while (!g_drain) {
        s3s_item *it = NULL;
        rc = s3s_worker_next(k.w, &it);
        if (rc == S3S_EEOF || rc == S3S_EINTERRUPTED)
            break;
        if (rc != 0) {
            ret = s3s__cli_fail("consume", "%s", s3s_worker_errmsg(k.w));
            break;
        }
        if ((s3s_item_info_get(it)->attribute ? read_attr(&k, it) : read_item(&k, it)) != 0)
            ret = 1;
        /* a finished item was committed as done by its last commit (an empty
         * one is by close); anything else goes back at its last commit */
        int crc = s3s_item_close(it);
        if (crc != 0 && crc != S3S_ESTALE && ret == 0)
            ret = s3s__cli_fail("consume", "commit: %s", s3s_strerror(crc));
        if (ret != 0)
            break;
    }
    if (g_drain && s3s_worker_drain(k.w, "SIGTERM") != 0)
        fprintf(stderr, "s3shard consume: drain: %s\n", s3s_worker_errmsg(k.w));
    double secs = s3s__cli_now() - t0;
    s3s_worker_stats st;
    s3s_worker_stats_get(k.w, &st);
    fprintf(stderr,
            "consume: rank %u, %llu pieces, %llu bytes in %.2f s, %.2f MB/s; %llu GETs, %llu "
            "bytes from S3, %llu bytes from the cache%s%s%s\n",
            s3s_worker_rank(k.w), (unsigned long long)k.pieces, (unsigned long long)k.bytes, secs,
            secs > 0 ? (double)k.bytes / 1e6 / secs : 0.0, (unsigned long long)st.gets,
            (unsigned long long)st.get_bytes, (unsigned long long)st.cache_hit_bytes,
            k.revoked ? "; leases revoked" : "", k.retried ? "; reads retried" : "",
            g_drain ? " (drained)" : "");
    s3s_worker_destroy(k.w);
    free(k.buf);
    return ret;
}
