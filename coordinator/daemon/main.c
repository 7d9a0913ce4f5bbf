/* s3shard-coordinator: the daemon around s3s_coord_* (coordinator.h).
 * SIGTERM/SIGINT stop it cleanly: the batch in hand is committed, the journal
 * is flushed and the mirror gets a last upload. */
#include "s3shard/coordinator.h"
#include "common/util/log.h"
#include "s3shard/error.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: s3shard-coordinator --job job.json --listen URL --state DIR [options]\n"
    "  --job F              job spec (optional when resuming: saved in DIR or the mirror)\n"
    "  --listen URL         tcp://HOST:PORT, ipc:///path or tls+tcp://HOST:PORT\n"
    "  --state DIR          state dir: journal, snapshots, job copy, lock\n"
    "  --state-uri S3URI    mirror the state to s3://bucket/prefix (and resume from it)\n"
    "  --secret-file F      shared secret for message HMACs (or $S3SHARD_SECRET)\n"
    "  --tls-cert F --tls-key F   PEM certificate and key for tls+tcp://\n"
    "  --world-size N       ranks of the job (default: from the first hello)\n"
    "  --max-msg BYTES      receive limit (default 16 MiB)\n"
    "  --mirror-interval-ms N   journal upload period (default 5000)\n"
    "  --endpoint URL --region R --path-style   S3 settings (sources and mirror)\n";

static char *read_secret(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(4097);
    size_t n = buf ? fread(buf, 1, 4096, f) : 0;
    fclose(f);
    if (buf == NULL)
        return NULL;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = 0;
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    s3s_coord_opts o;
    s3s_coord_opts_init(&o);
    const char *secret_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v != NULL && ++i)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (OPT("--job"))
            o.job_path = v;
        else if (OPT("--listen"))
            o.listen = v;
        else if (OPT("--state"))
            o.state_dir = v;
        else if (OPT("--state-uri"))
            o.state_uri = v;
        else if (OPT("--secret-file"))
            secret_file = v;
        else if (OPT("--tls-cert"))
            o.tls_cert = v;
        else if (OPT("--tls-key"))
            o.tls_key = v;
        else if (OPT("--world-size"))
            o.world_size = (uint32_t)strtoul(v, NULL, 10);
        else if (OPT("--max-msg"))
            o.max_msg = (uint32_t)strtoul(v, NULL, 10);
        else if (OPT("--mirror-interval-ms"))
            o.mirror_interval_ms = (uint32_t)strtoul(v, NULL, 10);
        else if (OPT("--endpoint"))
            o.endpoint = v;
        else if (OPT("--region"))
            o.region = v;
        else if (strcmp(a, "--path-style") == 0)
            o.path_style = 1;
        else if (strcmp(a, "-v") == 0)
            s3s__log_set_level(s3s__log_get_level() + 1);
        else {
            fprintf(stderr, "s3shard-coordinator: unknown or incomplete option %s\n%s", a, usage);
            return 2;
        }
#undef OPT
    }
    if (o.listen == NULL || o.state_dir == NULL) {
        fprintf(stderr, "s3shard-coordinator: --listen and --state are required\n%s", usage);
        return 2;
    }
    char *secret = NULL;
    size_t slen = 0;
    if (secret_file != NULL) {
        secret = read_secret(secret_file, &slen);
        if (secret == NULL || slen == 0) {
            fprintf(stderr, "s3shard-coordinator: cannot read a secret from %s\n", secret_file);
            free(secret);
            return 2;
        }
    } else if (getenv("S3SHARD_SECRET") != NULL && getenv("S3SHARD_SECRET")[0] != 0) {
        secret = strdup(getenv("S3SHARD_SECRET"));
        slen = strlen(secret);
    }
    o.secret = secret;
    o.secret_len = slen;

    /* Signals go to sigwait below, not to the server threads. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    s3s_coord *c = NULL;
    char err[1024];
    int rc = s3s_coord_create(&c, &o, err, sizeof(err));
    if (secret != NULL) {
        memset(secret, 0, slen);
        free(secret);
    }
    if (rc != 0) {
        fprintf(stderr, "s3shard-coordinator: %s\n", err);
        return 1;
    }
    rc = s3s_coord_start(c);
    if (rc != 0) {
        fprintf(stderr, "s3shard-coordinator: %s\n", s3s_coord_errmsg(c));
        s3s_coord_destroy(c);
        return 1;
    }
    fprintf(stderr, "s3shard-coordinator: serving on %s (state %s%s%s)\n", o.listen, o.state_dir,
            o.state_uri ? ", mirror " : "", o.state_uri ? o.state_uri : "");
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "s3shard-coordinator: signal %d: stopping\n", sig);
    s3s_coord_status st;
    s3s_coord_status_get(c, &st);
    s3s_coord_destroy(c);
    fprintf(stderr,
            "s3shard-coordinator: stopped after %llu requests (%llu refused, %llu resends), "
            "journal flushed\n",
            (unsigned long long)st.requests, (unsigned long long)st.refused,
            (unsigned long long)st.resends);
    return 0;
}
