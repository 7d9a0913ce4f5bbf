/* cmd_run.c: `s3shard run`: materialise the channels, export SageMaker's and
 * our environment, run the command, forward signals, drain on SIGTERM or an
 * EC2 Spot notice, return the command's exit code.
 *
 * Signals: SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGCHLD are blocked before
 * any thread starts (so every thread inherits the block) and read from a
 * signalfd by the main loop; the child gets an empty mask back before exec.
 * A signal sent by the terminal (si_code SI_KERNEL) already reached the
 * child, which shares our process group, so only signals sent by a process
 * (kill, a scheduler) are forwarded: a Ctrl-C is never delivered twice. */
#include "worker/cli/run.h"

#include "common/util/log.h"
#include "s3shard/error.h"
#include "worker/cli/cli_s3.h"
#include "worker/cli/dataset_cli.h"
#include "worker/spot.h"

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CMD "run"

extern char **environ;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the environment ----------------------------------------------------------- */

typedef struct envb {
    char **v;
    size_t n, cap;
} envb;

static int env_add(envb *e, char *kv)
{
    if (kv == NULL)
        return -1;
    size_t nl = strcspn(kv, "=");
    for (size_t i = 0; i < e->n; i++) {
        if (strncmp(e->v[i], kv, nl + 1) == 0) {
            free(e->v[i]);
            e->v[i] = kv;
            return 0;
        }
    }
    if (e->n + 2 > e->cap) {
        size_t nc = e->cap ? e->cap * 2 : 64;
        char **nv = realloc(e->v, nc * sizeof(*nv));
        if (nv == NULL) {
            free(kv);
            return -1;
        }
        e->v = nv;
        e->cap = nc;
    }
    e->v[e->n++] = kv;
    e->v[e->n] = NULL;
    return 0;
}

static int env_set(envb *e, const char *name, const char *val)
{
    char *kv = NULL;
    if (asprintf(&kv, "%s=%s", name, val) < 0)
        return -1;
    return env_add(e, kv);
}

static void env_free(envb *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
}

/* json_list writes ["a", "b"] of strings. Caller frees. */
static char *json_list(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n && a; i++)
        json_array_append_new(a, json_string(v[i]));
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

/* hosts: --hosts, else resourceconfig.json's, else this host alone. */
typedef struct hosts {
    char **v;
    size_t n;
    char *current;
} hosts;

static void hosts_free(hosts *h)
{
    for (size_t i = 0; i < h->n; i++)
        free(h->v[i]);
    free(h->v);
    free(h->current);
}

static int hosts_get(hosts *h, const char *flag_hosts, const char *flag_current, const char *rcfg)
{
    memset(h, 0, sizeof(*h));
    char hn[256] = "localhost";
    gethostname(hn, sizeof hn - 1);
    if (flag_hosts != NULL) {
        char *copy = strdup(flag_hosts), *save = NULL;
        for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
             t = strtok_r(NULL, ",", &save)) {
            char **nv = realloc(h->v, (h->n + 1) * sizeof(*nv));
            if (nv == NULL)
                break;
            h->v = nv;
            h->v[h->n++] = strdup(t);
        }
        free(copy);
        h->current = strdup(flag_current ? flag_current : hn);
        return 0;
    }
    if (rcfg == NULL)
        rcfg = getenv("S3SHARD_RESOURCE_CONFIG");
    if (rcfg == NULL)
        rcfg = "/opt/ml/input/config/resourceconfig.json";
    json_t *root = json_load_file(rcfg, 0, NULL);
    json_t *cur = json_object_get(root, "current_host"), *hs = json_object_get(root, "hosts");
    if (json_is_string(cur) && json_is_array(hs)) {
        size_t n = json_array_size(hs);
        h->v = calloc(n ? n : 1, sizeof(*h->v));
        for (size_t i = 0; h->v && i < n; i++)
            if (json_is_string(json_array_get(hs, i)))
                h->v[h->n++] = strdup(json_string_value(json_array_get(hs, i)));
        h->current = strdup(flag_current ? flag_current : json_string_value(cur));
    } else {
        h->v = calloc(1, sizeof(*h->v));
        if (h->v)
            h->v[h->n++] = strdup(flag_current ? flag_current : hn);
        h->current = strdup(flag_current ? flag_current : hn);
    }
    json_decref(root);
    return 0;
}

/* env_name: SM_CHANNEL_<NAME>: upper-cased, '-' and '.' as '_' (shells cannot
 * name a variable with them). */
static void env_name(char *out, size_t n, const char *prefix, const char *name)
{
    size_t o = (size_t)snprintf(out, n, "%s", prefix);
    for (const char *p = name; *p && o + 1 < n; p++) {
        char c = *p;
        out[o++] = (c >= 'a' && c <= 'z') ? (char)(c - 32) : (c == '-' || c == '.') ? '_' : c;
    }
    out[o] = '\0';
}

/* ---- the spot notice -------------------------------------------------------------- */

static int spot_pipe[2] = {-1, -1};
static volatile sig_atomic_t spot_seen; /* read by the channels' File downloads */

static void on_spot(void *ud, const s3s__spot_notice *n)
{
    (void)ud;
    (void)n;
    spot_seen = 1;
    char b = 1;
    ssize_t w = write(spot_pipe[1], &b, 1);
    (void)w;
}

/* ---- the command ------------------------------------------------------------------ */

int s3s__cmd_run(s3s__cli *g, int argc, char **argv)
{
    const char *job_path = NULL, *coord = NULL, *root_arg = NULL, *rcfg = NULL, *cache_arg = NULL;
    const char *rank_s = NULL, *world_s = NULL, *local_s = NULL, *epoch_s = NULL;
    const char *hosts_s = NULL, *current_s = NULL, *imds = NULL, *drain_s = NULL;
    const char *spot_int_s = NULL, *conns_s = NULL, *secret_file = NULL, *tls_ca = NULL;
    int is_static = 0, spot = 0, no_cache = 0, cmd_at = -1;
    for (int i = 1; i < argc; i++) {
        int miss = 0;
        const char *v;
        if (strcmp(argv[i], "--") == 0) {
            cmd_at = i + 1;
            break;
        }
        if ((v = s3s__cli_optval(argc, argv, &i, "--job", &miss)))
            job_path = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--coordinator", &miss)))
            coord = v;
        else if (strcmp(argv[i], "--static") == 0)
            is_static = 1;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--secret-file", &miss)))
            secret_file = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--tls-ca", &miss)))
            tls_ca = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--data-root", &miss)))
            root_arg = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--rank", &miss)))
            rank_s = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--world-size", &miss)))
            world_s = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--local-rank", &miss)))
            local_s = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--resource-config", &miss)))
            rcfg = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--hosts", &miss)))
            hosts_s = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--current-host", &miss)))
            current_s = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--epoch", &miss)))
            epoch_s = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--cache-dir", &miss)))
            cache_arg = v;
        else if (strcmp(argv[i], "--no-cache") == 0)
            no_cache = 1;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--connections", &miss)))
            conns_s = v;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--drain-timeout", &miss)))
            drain_s = v;
        else if (strcmp(argv[i], "--spot") == 0)
            spot = 1;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--imds-endpoint", &miss)))
            imds = v, spot = 1;
        else if ((v = s3s__cli_optval(argc, argv, &i, "--spot-interval", &miss)))
            spot_int_s = v;
        else if (miss)
            return s3s__cli_usage_error(CMD, "%s needs a value", argv[i]);
        else
            return s3s__cli_usage_error(CMD, "unknown argument '%s'", argv[i]);
    }
    if (job_path == NULL)
        return s3s__cli_usage_error(CMD, "--job is required");
    if (cmd_at < 0 || cmd_at >= argc)
        return s3s__cli_usage_error(CMD, "no command: put it after --");
    if ((coord != NULL) == is_static)
        return s3s__cli_usage_error(CMD, "pass exactly one of --coordinator URL and --static");
    if (coord == NULL && (secret_file != NULL || tls_ca != NULL))
        return s3s__cli_usage_error(CMD, "--secret-file and --tls-ca go with --coordinator");
    if ((rank_s == NULL) != (world_s == NULL))
        return s3s__cli_usage_error(CMD, "--rank and --world-size go together");
    uint64_t epoch = 0, drain_s_v = 30, spot_int = 5, conns = 0, rank = 0, world = 0, local = 0;
    if (epoch_s && s3s__cli_parse_u64(epoch_s, &epoch) != 0)
        return s3s__cli_usage_error(CMD, "--epoch: expected a number, got '%s'", epoch_s);
    if (drain_s && (s3s__cli_parse_u64(drain_s, &drain_s_v) != 0 || drain_s_v > 3600))
        return s3s__cli_usage_error(CMD, "--drain-timeout: seconds from 0 to 3600");
    if (spot_int_s &&
        (s3s__cli_parse_u64(spot_int_s, &spot_int) != 0 || spot_int == 0 || spot_int > 3600))
        return s3s__cli_usage_error(CMD, "--spot-interval: seconds from 1 to 3600");
    if (conns_s && (s3s__cli_parse_u64(conns_s, &conns) != 0 || conns == 0 || conns > 1024))
        return s3s__cli_usage_error(CMD, "--connections: 1 to 1024");
    s3s_topology topo = {0};
    s3s_errinfo ei = {0};
    if (rank_s != NULL) {
        if (s3s__cli_parse_u64(rank_s, &rank) != 0 || s3s__cli_parse_u64(world_s, &world) != 0 ||
            world == 0 || world > UINT32_MAX || rank >= world)
            return s3s__cli_usage_error(CMD, "--rank R --world-size N: need 0 <= R < N");
        if (local_s && (s3s__cli_parse_u64(local_s, &local) != 0 || local > UINT32_MAX))
            return s3s__cli_usage_error(CMD, "--local-rank: expected a number");
        topo.rank = (uint32_t)rank;
        topo.world_size = (uint32_t)world;
        topo.local_rank = (uint32_t)local;
        snprintf(topo.source, sizeof topo.source, "flags");
    } else if (s3s_topology_detect(&topo, rcfg, &ei) != 0) {
        return s3s__cli_fail(CMD, "%s", ei.msg);
    }

    /* Block the signals we handle before any thread exists. */
    sigset_t handled, oldmask;
    sigemptyset(&handled);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGHUP);
    sigaddset(&handled, SIGQUIT);
    sigaddset(&handled, SIGCHLD);
    sigset_t stops = handled;
    sigdelset(&stops, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &handled, &oldmask);
    struct sigaction ign = {.sa_handler = SIG_IGN}, oldpipe;
    sigaction(SIGPIPE, &ign, &oldpipe); /* a FIFO whose reader left gives EPIPE instead */

    int ret = 1, sfd = -1;
    s3s_job *job = NULL;
    s3s__run_channels *chans = NULL;
    s3s__spot *sp = NULL;
    hosts hs = {0};
    envb env = {0};
    char *cache_dir = NULL, *job_abs = NULL;
    pid_t child = -1;
    if (s3s_job_load(&job, job_path, &ei) != 0) {
        s3s__cli_fail(CMD, "%s", ei.msg);
        goto out;
    }
    job_abs = realpath(job_path, NULL);
    const s3s_job_settings *set = s3s_job_settings_get(job);
    const char *root = root_arg ? root_arg : set->data_root;
    if (cache_arg != NULL)
        cache_dir = strdup(cache_arg);
    else if (!no_cache && set->cache_limit_bytes > 0 &&
             asprintf(&cache_dir, "%s/cache", set->state_dir) < 0)
        cache_dir = NULL;
    hosts_get(&hs, hosts_s, current_s, rcfg);

    s3s__run_cfg cfg = {.g = g,
                        .job = job,
                        .data_root = root,
                        .state_dir = set->state_dir,
                        .cache_dir = cache_dir,
                        .topo = topo,
                        .epoch = epoch,
                        .connections = (unsigned)conns,
                        .stop_signals = &stops,
                        .notice = &spot_seen,
                        .coordinator = coord,
                        .secret_file = secret_file,
                        .tls_ca = tls_ca,
                        .host = hs.current};
    fprintf(stderr, "s3shard run: rank %u of %u (local rank %u, from %s), data root %s\n",
            topo.rank, topo.world_size, topo.local_rank, topo.source, root);
    /* The notice poller starts first: a notice during a File download stops it. */
    spot_seen = 0;
    if (spot) {
        s3s__errbuf eb = {{0}};
        s3s__spot_opts so = {
            .endpoint = imds, .interval_ms = (unsigned)spot_int * 1000u, .on_notice = on_spot};
        if (pipe2(spot_pipe, O_CLOEXEC) != 0 || s3s__spot_start(&sp, &so, &eb) != 0) {
            s3s__cli_fail(CMD, "spot notice poller: %s", eb.msg[0] ? eb.msg : strerror(errno));
            goto out;
        }
        fprintf(stderr, "s3shard run: watching for EC2 Spot notices at %s every %" PRIu64 " s\n",
                s3s__spot_endpoint(imds), spot_int);
    }
    int mret = s3s__run_channels_start(&chans, &cfg);
    if (mret != 0) {
        ret = mret;
        goto out;
    }

    /* The child's environment: ours, plus SageMaker's and ours. */
    for (char **e = environ; *e; e++)
        if (env_add(&env, strdup(*e)) != 0)
            goto nomem;
    size_t nch = s3s_job_channel_count(job);
    const char **names = calloc(nch, sizeof(*names));
    if (names == NULL)
        goto nomem;
    for (size_t i = 0; i < nch; i++) {
        char var[128];
        names[i] = s3s_job_channel(job, i)->name;
        env_name(var, sizeof var, "SM_CHANNEL_", names[i]);
        if (env_set(&env, var, s3s__run_channels_path(chans, i)) != 0) {
            free(names);
            goto nomem;
        }
    }
    char *chl = json_list(names, nch);
    free(names);
    char *hl = json_list((const char *const *)hs.v, hs.n);
    char num[32];
    int bad = chl == NULL || hl == NULL || env_set(&env, "SM_CHANNELS", chl) ||
        env_set(&env, "SM_HOSTS", hl) ||
        env_set(&env, "SM_CURRENT_HOST", hs.current ? hs.current : "") ||
        env_set(&env, "SM_INPUT_DATA_DIR", root) || env_set(&env, "S3SHARD_DATA_ROOT", root) ||
        env_set(&env, "S3SHARD_TOPOLOGY", topo.source) ||
        env_set(&env, "S3SHARD_JOB", job_abs ? job_abs : job_path) ||
        env_set(&env, "S3SHARD_STATIC", coord ? "0" : "1") ||
        (coord && env_set(&env, "S3SHARD_COORDINATOR", coord));
    free(chl);
    free(hl);
    snprintf(num, sizeof num, "%u", topo.rank);
    bad = bad || env_set(&env, "S3SHARD_RANK", num);
    snprintf(num, sizeof num, "%u", topo.world_size);
    bad = bad || env_set(&env, "S3SHARD_WORLD_SIZE", num);
    snprintf(num, sizeof num, "%u", topo.local_rank);
    bad = bad || env_set(&env, "S3SHARD_LOCAL_RANK", num);
    snprintf(num, sizeof num, "%" PRIu64, epoch);
    bad = bad || env_set(&env, "S3SHARD_EPOCH", num);
    snprintf(num, sizeof num, "%u", set->epochs);
    bad = bad || env_set(&env, "S3SHARD_EPOCHS", num);
    if (bad)
        goto nomem;

    if ((sfd = signalfd(-1, &handled, SFD_CLOEXEC)) < 0) {
        s3s__cli_fail(CMD, "signalfd: %s", strerror(errno));
        goto out;
    }

    fflush(NULL);
    child = fork();
    if (child < 0) {
        s3s__cli_fail(CMD, "fork: %s", strerror(errno));
        goto out;
    }
    if (child == 0) {
        sigaction(SIGPIPE, &oldpipe, NULL);
        signal(SIGUSR2, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvpe(argv[cmd_at], argv + cmd_at, env.v);
        fprintf(stderr, "s3shard run: cannot run %s: %s\n", argv[cmd_at], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }

    /* Wait for the child, forwarding signals; drain on SIGTERM / a Spot notice. */
    int status = 0, exited = 0;
    uint64_t deadline = 0;
    while (!exited) {
        struct pollfd pf[2] = {{.fd = sfd, .events = POLLIN},
                               {.fd = spot_pipe[0], .events = POLLIN}};
        int timeout = -1;
        if (deadline) {
            uint64_t now = now_ms();
            timeout = now >= deadline ? 0 : (int)(deadline - now);
        }
        int pr = poll(pf, spot_pipe[0] >= 0 ? 2 : 1, timeout);
        if (pr < 0 && errno != EINTR)
            break;
        if (pr == 0 && deadline) {
            fprintf(stderr,
                    "s3shard run: the command did not exit within the %" PRIu64
                    " s drain deadline: killing it\n",
                    drain_s_v);
            kill(child, SIGKILL);
            deadline = 0;
            continue;
        }
        if (pr > 0 && spot_pipe[0] >= 0 && (pf[1].revents & POLLIN)) {
            char b;
            ssize_t r = read(spot_pipe[0], &b, 1);
            (void)r;
            if (!deadline) {
                fprintf(stderr,
                        "s3shard run: EC2 Spot interruption notice: draining (SIGTERM to "
                        "the command, %" PRIu64 " s deadline)\n",
                        drain_s_v);
                kill(child, SIGTERM);
                deadline = now_ms() + drain_s_v * 1000u;
            }
        }
        if (pr > 0 && (pf[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
                continue;
            int sig = (int)si.ssi_signo;
            if (sig == SIGCHLD) {
                pid_t p;
                while ((p = waitpid(-1, &status, WNOHANG)) > 0)
                    if (p == child)
                        exited = 1;
                continue;
            }
            if (si.ssi_code != SI_KERNEL)
                kill(child, sig);
            if (sig == SIGTERM && !deadline) {
                fprintf(stderr, "s3shard run: SIGTERM: draining (%" PRIu64 " s deadline)\n",
                        drain_s_v);
                deadline = now_ms() + drain_s_v * 1000u;
            }
        }
    }
    if (WIFEXITED(status))
        ret = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        ret = 128 + WTERMSIG(status);
    if (deadline || WIFSIGNALED(status))
        fprintf(stderr, "s3shard run: the command ended (exit code %d)\n", ret);
    goto out;
nomem:
    s3s__cli_fail(CMD, "out of memory");
out:
    s3s__spot_stop(sp);
    s3s__run_channels_stop(chans);
    if (spot_pipe[0] >= 0) {
        close(spot_pipe[0]);
        close(spot_pipe[1]);
        spot_pipe[0] = spot_pipe[1] = -1;
    }
    if (sfd >= 0)
        close(sfd);
    env_free(&env);
    hosts_free(&hs);
    free(cache_dir);
    free(job_abs);
    s3s_job_destroy(job);
    s3s__cli_s3_close();
    /* The mask stays: a signal still pending must not kill us before we
     * return the command's exit code. */
    sigaction(SIGPIPE, &oldpipe, NULL);
    return ret;
}
