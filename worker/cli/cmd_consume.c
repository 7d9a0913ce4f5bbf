/* cmd_consume.c: `s3shard consume`: a rank that leases its share from the
 * coordinator, reads every byte through the S3 client, commits progress, and
 * prints one line per piece read: epoch TAB key TAB start TAB end TAB sha256.
 * A piece is the bytes of one object between two commit points; its line is
 * printed (and flushed) before the commit is sent, so a rank killed between
 * the two leaves a line whose bytes someone reads again: duplicates are
 * bounded by the in-flight window (one lease). SIGTERM/SIGINT drain: the
 * exact position reached is committed, leases are released, exit 0. */
#include "common/crypto/hex.h"
#include "common/crypto/sha256.h"
#include "s3shard/dataset.h"
#include "s3shard/error.h"
#include "worker/cli/cli.h"
#include "worker/cli/cli_s3.h"
#include "worker/coordclient.h"

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

typedef struct consume {
    const char *channel;
    s3s__cc *cc;
    s3s_s3 *s3;
    s3s_snapshot *snap;
    s3s_plan *plan;
    const char *bucket;
    uint64_t commit_bytes;
    unsigned step_ms;
    uint64_t bytes, pieces;
    /* the chunk being read */
    s3s__sha256_ctx sha;
    uint64_t got;
} consume;

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && !g_drain)
        ;
}

static int on_bytes(void *ud, const void *d, size_t n)
{
    consume *k = ud;
    s3s__sha256_update(&k->sha, d, n);
    k->got += n;
    s3s__cc_note_fetched(k->cc, n); /* no cache here: every byte came from S3 */
    return g_drain ? 1 : 0;
}

/* Commits offset of the lease; drain sends it as the drain's final position. */
static int commit(consume *k, uint64_t shard, uint64_t token, uint64_t off, bool done, int *stale)
{
    s3s__msg_prog it = {shard, token, off, done};
    s3s__msg r;
    s3s__errbuf eb;
    int rc = g_drain ? s3s__cc_drain(k->cc, &it, 1, "SIGTERM", &r, &eb)
                     : s3s__cc_progress(k->cc, &it, 1, &r, &eb);
    if (rc != 0) {
        fprintf(stderr, "s3shard consume: commit: %s\n", eb.msg);
        return rc;
    }
    *stale = r.u.ack.n > 0 && r.u.ack.items[0].result != 0;
    s3s__msg_fini(&r);
    return 0;
}

/* Reads lease [start, end) of shard; returns 0, or 1 when drained/stale. */
static int read_grant(consume *k, uint64_t epoch, const s3s__msg_lease_grant *g)
{
    s3s_shard sh;
    if (s3s_plan_shard(k->plan, (uint32_t)g->shard, &sh) != 0) {
        fprintf(stderr, "s3shard consume: shard %llu is not in the snapshot\n",
                (unsigned long long)g->shard);
        return -1;
    }
    uint64_t base = 0; /* shard offset of the current entry */
    uint64_t pos = g->start;
    for (uint32_t i = 0; i < sh.count && pos < g->end; i++) {
        s3s_entry e;
        s3s_snapshot_entry(k->snap, sh.first + i, &e);
        uint64_t ebeg = base, eend = base + e.size;
        base = eend;
        if (eend <= pos)
            continue;
        char key[4096];
        size_t kl = e.key_len < sizeof(key) - 1 ? e.key_len : sizeof(key) - 1;
        memcpy(key, e.key, kl);
        key[kl] = 0;
        while (pos < eend && pos < g->end) {
            uint64_t lim = eend < g->end ? eend : g->end;
            uint64_t len = lim - pos;
            if (k->commit_bytes && len > k->commit_bytes)
                len = k->commit_bytes;
            s3s__sha256_init(&k->sha);
            k->got = 0;
            int rc = s3s_s3_get(k->s3, k->bucket, key, pos - ebeg, len, NULL, on_bytes, k, NULL);
            if (rc != 0 && !g_drain) {
                s3s__sha256_fini(&k->sha);
                fprintf(stderr, "s3shard consume: %s\n", s3s_s3_errmsg(k->s3));
                return -1;
            }
            uint8_t d[32];
            char hex[65];
            s3s__sha256_final(&k->sha, d);
            s3s__hex_encode(d, 32, hex);
            hex[64] = 0;
            if (k->got > 0) {
                printf("%llu\t%s\t%llu\t%llu\t%s\n", (unsigned long long)epoch, key,
                       (unsigned long long)(pos - ebeg), (unsigned long long)(pos - ebeg + k->got),
                       hex);
                fflush(stdout);
                k->pieces++;
            }
            pos += k->got;
            k->bytes += k->got;
            int stale = 0;
            if (commit(k, g->shard, g->token, pos, pos == g->end, &stale) != 0)
                return -1;
            if (g_drain)
                return 1;
            if (stale) {
                fprintf(stderr, "s3shard consume: lease %llu was revoked\n",
                        (unsigned long long)g->token);
                return 1;
            }
            if (k->step_ms)
                sleep_ms(k->step_ms);
        }
    }
    if (pos < g->end || g->start == g->end) { /* empty objects only */
        int stale = 0;
        return commit(k, g->shard, g->token, g->end, true, &stale) ? -1 : 0;
    }
    return 0;
}

static int load_dataset(consume *k, s3s__cli *g, const char *url, const uint8_t *sec, size_t sl,
                        const char *ca)
{
    s3s__msg r;
    s3s__errbuf eb;
    int rc = s3s__cc_status(url, sec, sl, ca, 0x2, 30000, &r, &eb);
    if (rc != 0)
        return s3s__cli_fail("consume", "status: %s", eb.msg);
    const s3s__pval *job = s3s__pval_get(r.u.status_reply.root, "job");
    const s3s__pval *snaps = s3s__pval_get(r.u.status_reply.root, "snapshots");
    const s3s__pval *sf = snaps ? s3s__pval_get(snaps, k->channel) : NULL;
    s3s_job *j = NULL;
    s3s_errinfo ei;
    rc = 1;
    if (job == NULL || job->type != S3S_PV_STR || sf == NULL)
        s3s__cli_fail("consume", "the coordinator has no channel \"%s\"", k->channel);
    else if (sf->type != S3S_PV_BIN)
        s3s__cli_fail("consume",
                      "the snapshot of channel \"%s\" does not fit in one message: raise the "
                      "coordinator's --max-msg",
                      k->channel);
    else if (s3s_job_parse(&j, job->v.s, job->n, "coordinator job", &ei) != 0)
        s3s__cli_fail("consume", "job from the coordinator: %s", ei.msg);
    else if (s3s_snapshot_load_mem(&k->snap, sf->v.bin, sf->n, &ei) != 0)
        s3s__cli_fail("consume", "snapshot from the coordinator: %s", ei.msg);
    else {
        const s3s_channel *ch = s3s_job_channel_find(j, k->channel);
        s3s_plan_opts po;
        s3s_plan_opts_init(&po);
        s3s_plan_opts_from_channel(&po, ch, 0);
        if (s3s_plan_create(&k->plan, k->snap, &po, &ei) != 0)
            s3s__cli_fail("consume", "plan: %s", ei.msg);
        else
            rc = 0;
    }
    s3s_job_destroy(j);
    s3s__msg_fini(&r);
    if (rc == 0) {
        k->bucket = s3s_snapshot_bucket(k->snap);
        k->s3 = s3s__cli_s3_open(g, "consume", 4);
        if (k->s3 == NULL || k->bucket == NULL)
            rc = 1;
    }
    return rc;
}

int s3s__cmd_consume(s3s__cli *g, int argc, char **argv)
{
    const char *url = NULL, *secret_file = NULL, *ca = NULL;
    consume k;
    memset(&k, 0, sizeof(k));
    k.commit_bytes = 1 << 20;
    long long rank = -1, world = 0, epochs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL)
            return s3s__cli_usage_error("consume", "%s needs a value", a);
        i++;
        if (strcmp(a, "--coordinator") == 0)
            url = v;
        else if (strcmp(a, "--channel") == 0)
            k.channel = v;
        else if (strcmp(a, "--rank") == 0)
            rank = s3s__cli_parse_count(v);
        else if (strcmp(a, "--world-size") == 0)
            world = s3s__cli_parse_count(v);
        else if (strcmp(a, "--epochs") == 0)
            epochs = s3s__cli_parse_count(v);
        else if (strcmp(a, "--step-ms") == 0)
            k.step_ms = (unsigned)s3s__cli_parse_count(v);
        else if (strcmp(a, "--commit-bytes") == 0)
            k.commit_bytes = (uint64_t)s3s__cli_parse_count(v);
        else if (strcmp(a, "--secret-file") == 0)
            secret_file = v;
        else if (strcmp(a, "--tls-ca") == 0)
            ca = v;
        else
            return s3s__cli_usage_error("consume", "unknown option %s", a);
    }
    if (url == NULL || k.channel == NULL)
        return s3s__cli_usage_error("consume", "--coordinator and --channel are required");
    uint8_t *sec = NULL;
    size_t sl = 0;
    s3s__errbuf eb;
    if (s3s__cc_secret_load(secret_file, &sec, &sl, &eb) != 0)
        return s3s__cli_fail("consume", "%s", eb.msg);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = load_dataset(&k, g, url, sec, sl, ca);
    s3s__cc_opts co;
    s3s__cc_opts_init(&co);
    co.url = url;
    co.secret = sec;
    co.secret_len = sl;
    co.tls_ca = ca;
    co.rank = rank >= 0 ? (uint32_t)rank : S3S_PROTO_RANK_NONE;
    co.world_size = world > 0 ? (uint32_t)world : 0;
    co.incarnation = (uint64_t)time(NULL);
    const char *chs[1] = {k.channel};
    co.channels = chs;
    co.n_channels = 1;
    if (rc == 0 && s3s__cc_open(&k.cc, &co, &eb) != 0)
        rc = s3s__cli_fail("consume", "%s", eb.msg);
    double t0 = s3s__cli_now();
    uint64_t first_epoch = UINT64_MAX, last_epoch = 0;
    while (rc == 0 && !g_drain) {
        s3s__msg r;
        int lr = s3s__cc_lease(k.cc, k.channel, last_epoch, 1, &r, &eb);
        if (lr == S3S_ENOTFOUND) {
            if (s3s__cc_hello(k.cc, &eb) != 0)
                rc = s3s__cli_fail("consume", "%s", eb.msg);
            continue;
        }
        if (lr != 0) {
            rc = s3s__cli_fail("consume", "%s", eb.msg);
            break;
        }
        uint64_t ep = r.u.grant.epoch;
        if (first_epoch == UINT64_MAX)
            first_epoch = ep;
        last_epoch = ep;
        bool stop = r.cmd == S3S_CMD_STOP || r.u.grant.status == S3S_GRANT_EPOCH_DONE ||
            (epochs > 0 && ep >= first_epoch + (uint64_t)epochs);
        if (!stop && r.u.grant.status == S3S_GRANT_NONE_NOW) {
            s3s__msg_fini(&r);
            sleep_ms(r.u.grant.retry_ms ? r.u.grant.retry_ms : 100);
            continue;
        }
        for (uint32_t i = 0; !stop && i < r.u.grant.n && rc == 0; i++) {
            int x = read_grant(&k, ep, &r.u.grant.grants[i]);
            if (x < 0)
                rc = 1;
        }
        s3s__msg_fini(&r);
        if (stop)
            break;
    }
    if (k.cc != NULL) {
        if (g_drain) {
            s3s__msg r;
            if (s3s__cc_drain(k.cc, NULL, 0, "SIGTERM", &r, &eb) == 0)
                s3s__msg_fini(&r);
        } else {
            s3s__cc_bye(k.cc, rc == 0 ? "done" : "failed", &eb);
        }
    }
    double secs = s3s__cli_now() - t0;
    fprintf(stderr, "consume: rank %u, %llu pieces, %llu bytes in %.2f s, %.2f MB/s%s\n",
            k.cc ? s3s__cc_welcome(k.cc)->rank : 0, (unsigned long long)k.pieces,
            (unsigned long long)k.bytes, secs, secs > 0 ? (double)k.bytes / 1e6 / secs : 0.0,
            g_drain ? " (drained)" : "");
    s3s__cc_close(k.cc);
    s3s_plan_destroy(k.plan);
    s3s_snapshot_destroy(k.snap);
    s3s_s3_destroy(k.s3);
    free(sec);
    return rc;
}
