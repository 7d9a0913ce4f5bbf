/* cmd_status.c: `s3shard status URL [--json] [--ledger]`: the coordinator's
 * state as a table, or JSON (--ledger adds the coverage ledger rows). */
#include "coordinator/status_json.h"
#include "worker/cli/cli.h"
#include "worker/coordclient.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t u(const s3s__pval *m, const char *k)
{
    const s3s__pval *v = m ? s3s__pval_get(m, k) : NULL;
    return v && v->type == S3S_PV_UINT ? v->v.u : 0;
}

static const char *s(const s3s__pval *m, const char *k)
{
    const s3s__pval *v = m ? s3s__pval_get(m, k) : NULL;
    return v && v->type == S3S_PV_STR ? v->v.s : "";
}

static void table(const s3s__pval *root)
{
    printf("world size %llu, requests %llu, refused %llu (version %llu, hmac %llu, size %llu, "
           "malformed %llu, old seq %llu), resends %llu\n",
           (unsigned long long)u(root, "world_size"), (unsigned long long)u(root, "requests"),
           (unsigned long long)u(root, "refused"), (unsigned long long)u(root, "refused_version"),
           (unsigned long long)u(root, "refused_auth"), (unsigned long long)u(root, "refused_size"),
           (unsigned long long)u(root, "refused_malformed"),
           (unsigned long long)u(root, "refused_seq"), (unsigned long long)u(root, "resends"));
    const s3s__pval *chs = s3s__pval_get(root, "channels");
    printf("%-16s %-16s %7s %15s %22s %7s %9s %7s\n", "CHANNEL", "DISTRIBUTION", "EPOCH", "SHARDS",
           "BYTES", "LEASES", "REISSUED", "STALE");
    for (uint32_t i = 0; chs && chs->type == S3S_PV_ARRAY && i < chs->n; i++) {
        const s3s__pval *c = &chs->v.items[i];
        char ep[32], sh[48], by[64];
        snprintf(ep, sizeof(ep), "%llu/%llu", (unsigned long long)u(c, "epoch") + 1,
                 (unsigned long long)u(c, "epochs"));
        snprintf(sh, sizeof(sh), "%llu/%llu", (unsigned long long)u(c, "shards_done"),
                 (unsigned long long)u(c, "shards_total"));
        /* an augmented-manifest channel counts records, not bytes */
        int rec = strcmp(s(c, "unit"), "records") == 0;
        snprintf(by, sizeof(by), "%llu/%llu%s", (unsigned long long)u(c, "bytes_committed"),
                 (unsigned long long)u(c, "bytes_total"), rec ? " rec" : "");
        printf(
            "%-16s %-16s %7s %15s %22s %7llu %9llu %7llu%s\n", s(c, "name"), s(c, "distribution"),
            ep, sh, by, (unsigned long long)u(c, "active_leases"),
            (unsigned long long)u(c, "reissued_tails"), (unsigned long long)u(c, "stale_refusals"),
            s3s__pval_get(c, "finished") && s3s__pval_get(c, "finished")->v.b ? "  finished" : "");
        const s3s__pval *rk = s3s__pval_get(c, "ranks");
        for (uint32_t r = 0; rk && rk->type == S3S_PV_ARRAY && r < rk->n; r++) {
            const s3s__pval *x = &rk->v.items[r];
            const s3s__pval *rate = s3s__pval_get(x, "mb_per_s");
            printf("  rank %-6llu %14llu %s %10.2f %s %3llu leases\n",
                   (unsigned long long)u(x, "rank"), (unsigned long long)u(x, "bytes"),
                   rec ? "records" : "bytes",
                   (rate && rate->type == S3S_PV_FLOAT ? rate->v.f : 0.0) * (rec ? 1e6 : 1.0),
                   rec ? "rec/s" : "MB/s", (unsigned long long)u(x, "live_leases"));
        }
        const s3s__pval *es = s3s__pval_get(c, "epoch_stats");
        for (uint32_t e = 0; es && es->type == S3S_PV_ARRAY && e < es->n; e++) {
            const s3s__pval *x = &es->v.items[e];
            printf("  epoch %-5llu %6llu re-issued tails (%llu bytes), %llu drains, %llu bytes "
                   "fetched, %llu re-downloaded\n",
                   (unsigned long long)u(x, "epoch") + 1,
                   (unsigned long long)u(x, "reissued_tails"),
                   (unsigned long long)u(x, "reissued_bytes"), (unsigned long long)u(x, "drains"),
                   (unsigned long long)u(x, "bytes_fetched"),
                   (unsigned long long)u(x, "bytes_refetched"));
        }
    }
}

int s3s__cmd_status(s3s__cli *g, int argc, char **argv)
{
    (void)g;
    const char *url = NULL, *secret_file = NULL, *ca = NULL;
    int json = 0, ledger = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--ledger") == 0)
            ledger = 1;
        else if (strcmp(argv[i], "--secret-file") == 0 && i + 1 < argc)
            secret_file = argv[++i];
        else if (strcmp(argv[i], "--tls-ca") == 0 && i + 1 < argc)
            ca = argv[++i];
        else if (argv[i][0] != '-' && url == NULL)
            url = argv[i];
        else
            return s3s__cli_usage_error("status", "unexpected argument %s", argv[i]);
    }
    if (url == NULL)
        return s3s__cli_usage_error("status", "the coordinator URL is required");
    uint8_t *sec = NULL;
    size_t sl = 0;
    s3s__errbuf eb;
    if (s3s__cc_secret_load(secret_file, &sec, &sl, &eb) != 0)
        return s3s__cli_fail("status", "%s", eb.msg);
    s3s__msg r;
    int rc = s3s__cc_status(url, sec, sl, ca, ledger ? S3S_STATUS_LEDGER : 0, 10000, &r, &eb);
    free(sec);
    if (rc != 0)
        return s3s__cli_fail("status", "%s", eb.msg);
    if (json || ledger) {
        s3s__buf b;
        s3s__buf_init(&b, (size_t)1 << 32);
        rc = s3s__pval_json(r.u.status_reply.root, &b);
        if (rc == 0)
            printf("%s\n", b.data);
        s3s__buf_fini(&b);
    } else {
        table(r.u.status_reply.root);
    }
    s3s__msg_fini(&r);
    return rc ? 1 : 0;
}
