/* mode_file.c: File mode (mode_file.h). */
#include "worker/mode_file.h"

#include "common/util/log.h"
#include "s3shard/error.h"
#include "worker/keypath.h"
#include "worker/source.h"
#include "worker/worker_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define ETAG_XATTR "user.s3shard.etag"
#define COPY_CHUNK (1u << 20)

size_t s3s__mode_key_prefix(const s3s_snapshot *snap)
{
    size_t n = s3s_snapshot_count(snap);
    if (s3s_snapshot_kind_get(snap) == S3S_SNAP_OBJECTS) {
        const char *src = s3s_snapshot_source(snap);
        if (strncmp(src, "s3://", 5) != 0)
            return 0;
        const char *key = strchr(src + 5, '/');
        if (key == NULL)
            return 0;
        key++;
        const char *slash = strrchr(key, '/');
        return slash ? (size_t)(slash - key) + 1 : 0;
    }
    /* manifests: the folder common to every key */
    s3s_entry first, e;
    if (n == 0 || s3s_snapshot_entry(snap, 0, &first) != 0)
        return 0;
    size_t common = first.key_len;
    for (size_t i = 1; i < n && common > 0; i++) {
        s3s_snapshot_entry(snap, i, &e);
        size_t j = 0;
        while (j < common && j < e.key_len && e.key[j] == first.key[j])
            j++;
        common = j;
    }
    while (common > 0 && first.key[common - 1] != '/')
        common--;
    return common;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the sidecar manifest ------------------------------------------------------ */

typedef struct side_ent {
    char *rel, *etag;
    uint64_t size;
} side_ent;

static int side_cmp(const void *a, const void *b)
{
    return strcmp(((const side_ent *)a)->rel, ((const side_ent *)b)->rel);
}

/* side_load reads "<etag> <size> <rel>" lines, sorted by rel. A key may have
 * several lines (re-downloads); any line matching the file's size and ETag
 * counts, the xattr being the first witness anyway. */
static side_ent *side_load(const char *path, size_t *out_n)
{
    *out_n = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    side_ent *v = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) > 0) {
        if (line[len - 1] != '\n')
            break; /* a torn last line: ignore it */
        line[len - 1] = '\0';
        char *sp1 = strchr(line, ' ');
        char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (sp2 == NULL)
            continue;
        *sp1 = *sp2 = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            side_ent *nv = realloc(v, cap * sizeof(*v));
            if (nv == NULL)
                break;
            v = nv;
        }
        v[n].etag = strdup(line);
        v[n].size = strtoull(sp1 + 1, NULL, 10);
        v[n].rel = strdup(sp2 + 1);
        if (!v[n].etag || !v[n].rel) {
            free(v[n].etag);
            free(v[n].rel);
            break;
        }
        n++;
    }
    free(line);
    fclose(f);
    qsort(v, n, sizeof(*v), side_cmp);
    *out_n = n;
    return v;
}

static void side_free(side_ent *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].rel);
        free(v[i].etag);
    }
    free(v);
}

/* side_match is 1 when some line says rel has this etag and size. */
static int side_match(const side_ent *v, size_t n, const char *rel, const char *etag, uint64_t size)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(v[mid].rel, rel) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < n && strcmp(v[lo].rel, rel) == 0; lo++)
        if (v[lo].size == size && strcmp(v[lo].etag, etag) == 0)
            return 1;
    return 0;
}

/* ---- the download ---------------------------------------------------------------- */

typedef struct job {
    s3s_worker *w;
    const char *dir; /* <root>/<channel> */
    size_t plen; /* key prefix stripped */
    FILE *side;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int running;
    int err;
    s3s__errbuf eb;
    uint64_t files, bytes, total_bytes, total_files;
    unsigned seq;
    /* with a coordinator: files already complete are checked as leased */
    int coord;
    const side_ent *have;
    size_t nhave;
    uint64_t skipped_files, skipped_bytes;
    volatile sig_atomic_t *stop; /* the caller's stop flag (may be NULL) */
} job;

static int stopping(const job *j)
{
    return j->stop != NULL && *j->stop != 0;
}

static int is_complete(const char *path, const s3s__item_desc *d, const char *rel,
                       const side_ent *side, size_t nside);

/* already_there: with a coordinator, a leased file complete on disk (a
 * restart) is committed as done without a download. */
static int already_there(job *j, s3s_item *it)
{
    const char *rel = it->d.key + j->plen;
    char *path = NULL;
    if (!j->coord || strlen(it->d.key) < j->plen ||
        s3s__keypath_join(&path, j->dir, rel, strlen(rel), NULL) != 0)
        return 0;
    int done = is_complete(path, &it->d, rel, j->have, j->nhave);
    free(path);
    if (done && s3s_item_commit(it, it->d.size) == 0) {
        pthread_mutex_lock(&j->mu);
        j->skipped_files++;
        j->skipped_bytes += it->d.size;
        pthread_mutex_unlock(&j->mu);
        return 1;
    }
    return 0;
}

static int mkdir_parents(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    return 0;
}

static int fetch_one(job *j, s3s_item *it, char *buf)
{
    const s3s_item_info *in = s3s_item_info_get(it);
    const char *rel = in->key + j->plen;
    char *path = NULL, *tmp = NULL;
    int fd = -1, rc = 0;
    s3s__errbuf eb = {{0}};
    rc = s3s__keypath_join(&path, j->dir, rel, strlen(rel), &eb);
    if (rc != 0)
        goto out;
    pthread_mutex_lock(&j->mu);
    unsigned n = j->seq++;
    pthread_mutex_unlock(&j->mu);
    size_t tl = strlen(path) + 64;
    tmp = malloc(tl);
    if (tmp == NULL) {
        rc = s3s__err_set(&eb, S3S_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(tmp, tl, "%s.s3shard-tmp.%ld.%u", path, (long)getpid(), n);
    if (mkdir_parents(tmp) != 0 ||
        (fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        rc = s3s__err_set(&eb, S3S_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    s3s_reader *r = s3s_item_reader(it);
    for (;;) {
        size_t got = 0;
        if (stopping(j)) { /* abandoned: the temp goes, the item is released */
            rc = s3s__err_set(&eb, S3S_EINTERRUPTED, "%s: stopped mid-download", rel);
            goto out;
        }
        rc = s3s_reader_read(r, buf, COPY_CHUNK, &got);
        if (rc != 0) {
            s3s__err_set(&eb, rc, "%s", s3s_reader_errmsg(r));
            goto out;
        }
        if (got == 0)
            break;
        for (size_t off = 0; off < got;) {
            ssize_t m = write(fd, buf + off, got - off);
            if (m < 0 && errno == EINTR)
                continue;
            if (m < 0) {
                rc = s3s__err_set(&eb, S3S_EIO, "%s: write: %s", tmp, strerror(errno));
                goto out;
            }
            off += (size_t)m;
        }
        pthread_mutex_lock(&j->mu);
        j->bytes += got;
        pthread_mutex_unlock(&j->mu);
    }
    if (in->etag[0] != '\0')
        (void)fsetxattr(fd, ETAG_XATTR, in->etag, strlen(in->etag), 0); /* best effort */
    if (close(fd) != 0) {
        fd = -1;
        rc = s3s__err_set(&eb, S3S_EIO, "%s: close: %s", tmp, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = s3s__err_set(&eb, S3S_EIO, "rename %s: %s", path, strerror(errno));
        goto out;
    }
    pthread_mutex_lock(&j->mu);
    if (j->side != NULL && in->etag[0] != '\0') {
        fprintf(j->side, "%s %llu %s\n", in->etag, (unsigned long long)in->size, rel);
        fflush(j->side);
    }
    j->files++;
    pthread_mutex_unlock(&j->mu);
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && tmp != NULL)
        unlink(tmp);
    if (rc != 0) {
        pthread_mutex_lock(&j->mu);
        if (j->err == 0) {
            j->err = rc;
            s3s__err_set(&j->eb, rc, "%s", eb.msg);
        }
        pthread_mutex_unlock(&j->mu);
    }
    free(tmp);
    free(path);
    return rc;
}

static void *job_main(void *arg)
{
    job *j = arg;
    char *buf = malloc(COPY_CHUNK);
    s3s_item *it;
    int rc = 0;
    while (buf != NULL && !stopping(j) && (rc = s3s_worker_next(j->w, &it)) == 0) {
        if (stopping(j)) { /* not started: back to the coordinator at its start */
            s3s_item_close(it);
            break;
        }
        if (already_there(j, it)) {
            s3s_item_close(it);
            continue;
        }
        rc = fetch_one(j, it, buf);
        s3s_item_close(it);
        pthread_mutex_lock(&j->mu);
        int stop = j->err != 0;
        pthread_mutex_unlock(&j->mu);
        if (rc != 0 || stop)
            break;
    }
    free(buf);
    pthread_mutex_lock(&j->mu);
    if (buf == NULL && j->err == 0)
        j->err = s3s__err_set(&j->eb, S3S_ENOMEM, "out of memory");
    else if (stopping(j) && j->err == 0)
        j->err = s3s__err_set(&j->eb, S3S_EINTERRUPTED, "stopped");
    else if (rc != 0 && rc != S3S_EEOF && j->err == 0) /* a coordinator's failure */
        j->err = s3s__err_set(&j->eb, rc, "%s", s3s_worker_errmsg(j->w));
    j->running--;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static void fmt_bytes(char *out, size_t n, double b)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4)
        b /= 1024, i++;
    snprintf(out, n, "%.1f %s", b, u[i]);
}

static void report(job *j, const char *ch, double t0, int bar, int final)
{
    pthread_mutex_lock(&j->mu);
    uint64_t bytes = j->bytes, files = j->files;
    pthread_mutex_unlock(&j->mu);
    double el = now_s() - t0;
    double rate = el > 0 ? (double)bytes / el : 0;
    char a[32], b[32], r[32], eta[32] = "?";
    fmt_bytes(a, sizeof(a), (double)bytes);
    fmt_bytes(b, sizeof(b), (double)j->total_bytes);
    fmt_bytes(r, sizeof(r), rate);
    if (rate > 0)
        snprintf(eta, sizeof(eta), "%.0fs", (double)(j->total_bytes - bytes) / rate);
    if (bar) {
        int width = 30;
        int fill = j->total_bytes ? (int)((double)bytes * width / (double)j->total_bytes) : width;
        char pb[64];
        for (int i = 0; i < width; i++)
            pb[i] = i < fill ? '#' : '.';
        pb[width] = '\0';
        fprintf(stderr, "\r%s [%s] %s / %s  %s/s  ETA %s  %llu/%llu files%s", ch, pb, a, b, r,
                final ? "0s" : eta, (unsigned long long)files, (unsigned long long)j->total_files,
                final ? "\n" : "  ");
    } else {
        fprintf(stderr, "s3shard: file mode %s: %s of %s, %llu of %llu files, %s/s, ETA %s\n", ch,
                a, b, (unsigned long long)files, (unsigned long long)j->total_files, r,
                final ? "0s" : eta);
    }
    fflush(stderr);
}

int s3s__mode_records_refuse(const char *chname, const char *mode, s3s__errbuf *eb)
{
    return s3s__err_set(eb, S3S_ENOTSUP,
                        "channel %s: InputMode %s does not take S3DataType AugmentedManifestFile: "
                        "SageMaker streams augmented manifests in Pipe mode only (set "
                        "\"InputMode\": \"Pipe\")",
                        chname ? chname : "(unnamed)", mode);
}

int s3s__mode_share_list(const s3s_worker_opts *wopts, const char *chname, s3s__item_desc **out,
                         size_t *out_n, size_t *plen, s3s__errbuf *eb)
{
    s3s_worker_opts wo = *wopts;
    wo.epochs = 1;
    s3s__static_cfg cfg;
    s3s__source *src = NULL;
    s3s_snapshot *owned = NULL;
    *out = NULL;
    *out_n = 0;
    int rc = s3s__static_setup(&cfg, &wo, &owned, eb);
    if (rc == 0 && s3s_snapshot_kind_get(cfg.snap) == S3S_SNAP_RECORDS)
        rc = s3s__mode_records_refuse(chname, "File", eb);
    if (rc == 0)
        rc = s3s__source_static_create(&src, &cfg, eb);
    if (rc != 0) {
        s3s_snapshot_destroy(owned);
        return rc;
    }
    *plen = s3s__mode_key_prefix(cfg.snap);
    s3s__item_desc *v = NULL;
    const char **rels = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            s3s__item_desc *nv = realloc(v, cap * sizeof(*v));
            if (nv == NULL) {
                rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        rc = src->next(src, &v[n], 1, eb);
        if (rc != 0)
            break;
        n++;
    }
    src->destroy(src);
    s3s_snapshot_destroy(owned); /* the descriptions hold copies */
    if (rc == S3S_EEOF)
        rc = 0;
    if (rc == 0 && (rels = calloc(n ? n : 1, sizeof(*rels))) == NULL)
        rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (strlen(v[i].key) < *plen) { /* cannot happen: plen is common to all keys */
            rc = s3s__err_set(eb, S3S_EUNSAFEKEY, "key \"%s\" is outside the channel prefix",
                              v[i].key);
            break;
        }
        rels[i] = v[i].key + *plen;
        s3s__errbuf kb = {{0}};
        rc = s3s__keypath_check(rels[i], strlen(rels[i]), &kb);
        if (rc != 0)
            s3s__err_set(eb, rc, "channel %s: refusing key \"%s\": %s", chname, v[i].key, kb.msg);
    }
    if (rc == 0)
        rc = s3s__keypath_check_set(rels, n, eb);
    free(rels);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            s3s__item_desc_fini(&v[i]);
        free(v);
        return rc;
    }
    *out = v;
    *out_n = n;
    return 0;
}

static int is_complete(const char *path, const s3s__item_desc *d, const char *rel,
                       const side_ent *side, size_t nside)
{
    struct stat st;
    if (d->etag[0] == '\0' || stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != d->size)
        return 0;
    char x[128];
    ssize_t n = getxattr(path, ETAG_XATTR, x, sizeof(x) - 1);
    if (n >= 0) {
        x[n] = '\0';
        return strcmp(x, d->etag) == 0;
    }
    return side_match(side, nside, rel, d->etag, d->size);
}

/* run_jobs runs the download threads over j->w until it has no more items,
 * reporting progress. Returns 0 or the first error (in eb). */
static int run_jobs(job *j, const s3s__file_mode_opts *o, const char *chname, double t0,
                    s3s__errbuf *eb)
{
    unsigned jobs = o->jobs ? o->jobs : 16;
    pthread_t *t = calloc(jobs, sizeof(*t));
    if (t == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    unsigned started = 0;
    for (; started < jobs; started++) {
        pthread_mutex_lock(&j->mu);
        j->running++;
        pthread_mutex_unlock(&j->mu);
        if (pthread_create(&t[started], NULL, job_main, j) != 0) {
            j->running--;
            break;
        }
    }
    int bar = o->progress == 1 || (o->progress == -1 && isatty(2));
    double interval = bar ? 0.2 : (o->log_interval_s ? o->log_interval_s : 10);
    pthread_mutex_lock(&j->mu);
    while (j->running > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double d = (double)ts.tv_nsec / 1e9 + interval;
        ts.tv_sec += (time_t)d;
        ts.tv_nsec = (long)((d - (double)(time_t)d) * 1e9);
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) != 0 && j->running > 0 &&
            o->progress != 2) {
            pthread_mutex_unlock(&j->mu);
            report(j, chname, t0, bar, 0);
            pthread_mutex_lock(&j->mu);
        }
    }
    pthread_mutex_unlock(&j->mu);
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    free(t);
    if (o->progress != 2)
        report(j, chname, t0, bar, 1);
    if (started == 0 && j->err == 0)
        j->err = s3s__err_set(&j->eb, S3S_ENOMEM, "cannot start download threads");
    if (j->err != 0)
        return s3s__err_set(eb, j->err, "%s", j->eb.msg);
    return 0;
}

/* With a coordinator (o->wopts->coordinator) the rank downloads what it
 * leases, one epoch (File mode downloads once): with Dynamic it keeps leasing
 * until the coordinator moves past the epoch, so every shard is downloaded by
 * some rank (a lost rank's tails included) before the commands start. Every
 * key of the coordinator's snapshot is checked as a path first (the share is
 * not known in advance). A file complete on disk is committed without a
 * download. */
static int materialize_coord(const s3s__file_mode_opts *o, const char *root, const char *chname,
                             s3s__file_mode_result *res, double t0, s3s__errbuf *eb)
{
    s3s_worker_opts wo = *o->wopts;
    wo.epochs = 1;
    if (o->stop != NULL)
        wo.cancel = o->stop; /* a stop ends a wait for the other ranks' leases */
    s3s_worker *w = NULL;
    s3s_errinfo ei = {0};
    int rc = s3s_worker_create(&w, &wo, &ei);
    if (rc != 0)
        return s3s__err_set(eb, rc, "%s", ei.msg);
    const s3s_snapshot *snap = s3s__source_coord_snapshot(w->coord);
    if (s3s_snapshot_kind_get(snap) == S3S_SNAP_RECORDS) {
        rc = s3s__mode_records_refuse(chname, "File", eb);
        s3s_worker_destroy(w);
        return rc;
    }
    size_t plen = s3s__mode_key_prefix(snap), n = s3s_snapshot_count(snap), nrel = 0;
    char **rels = calloc(n ? n : 1, sizeof(*rels));
    char *dir = NULL, *sidepath = NULL;
    side_ent *side = NULL;
    size_t nside = 0;
    job j = {0};
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    if (rels == NULL) {
        rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        s3s_entry e;
        s3s_snapshot_entry(snap, i, &e);
        if (s3s__keypath_is_folder_marker(e.key, e.key_len, e.size))
            continue;
        if (e.key_len < plen || (rels[nrel] = strndup(e.key + plen, e.key_len - plen)) == NULL) {
            rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
            break;
        }
        s3s__errbuf kb = {{0}};
        if (s3s__keypath_check(rels[nrel], strlen(rels[nrel]), &kb) != 0)
            rc = s3s__err_set(eb, S3S_EUNSAFEKEY, "channel %s: refusing key \"%.*s\": %s", chname,
                              (int)e.key_len, e.key, kb.msg);
        nrel++;
    }
    if (rc == 0)
        rc = s3s__keypath_check_set((const char *const *)rels, nrel, eb);
    size_t dl = strlen(root) + strlen(chname) + 32;
    if (rc == 0 && ((dir = malloc(dl)) == NULL || (sidepath = malloc(dl + 16)) == NULL))
        rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    if (rc != 0)
        goto out;
    snprintf(dir, dl, "%s/%s", root, chname);
    snprintf(sidepath, dl + 16, "%s/.%s.s3shard-etags", root, chname);
    if (mkdir_parents(dir) != 0 || (mkdir(dir, 0755) != 0 && errno != EEXIST)) {
        rc = s3s__err_set(eb, S3S_EIO, "%s: %s", dir, strerror(errno));
        goto out;
    }
    side = side_load(sidepath, &nside);
    j.side = fopen(sidepath, "a");
    if (j.side == NULL)
        S3S_LOGW("%s: %s (restarts will rely on xattrs)", sidepath, strerror(errno));
    uint32_t world = s3s__source_coord_world(w->coord);
    j.w = w;
    j.dir = dir;
    j.plen = plen;
    j.coord = 1;
    j.have = side;
    j.nhave = nside;
    j.total_bytes = s3s_snapshot_total_bytes(snap) / (world ? world : 1); /* about */
    j.total_files = n / (world ? world : 1);
    j.stop = o->stop;
    rc = run_jobs(&j, o, chname, t0, eb);
    if (rc == 0 && stopping(&j)) /* stopped right after the last file */
        rc = s3s__err_set(eb, S3S_EINTERRUPTED, "stopped");
    if (rc == S3S_EINTERRUPTED) {
        /* A drain: every file renamed into place was committed done when its
         * item closed; what is still leased goes back at once (not at the
         * lease's expiry), so the other ranks take it now. */
        s3s__errbuf deb = {{0}};
        int drc = s3s_worker_drain(w, "stopped during the File download");
        if (drc != 0)
            snprintf(deb.msg, sizeof deb.msg, "; the drain failed: %s", s3s_worker_errmsg(w));
        s3s__err_set(eb, S3S_EINTERRUPTED,
                     "stopped: %llu files downloaded and committed, %llu already there; leases "
                     "given back%s",
                     (unsigned long long)j.files, (unsigned long long)j.skipped_files, deb.msg);
    }
    if ((rc == 0 || rc == S3S_EINTERRUPTED) && res != NULL) {
        res->files = j.files;
        res->bytes = j.bytes;
        res->skipped_files = j.skipped_files;
        res->skipped_bytes = j.skipped_bytes;
        res->seconds = now_s() - t0;
    }
out:
    s3s_worker_destroy(w); /* bye: what is still leased goes back */
    if (j.side)
        fclose(j.side);
    for (size_t i = 0; i < nrel; i++)
        free(rels[i]);
    free(rels);
    side_free(side, nside);
    free(dir);
    free(sidepath);
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    return rc;
}

int s3s__mode_file_materialize(const s3s__file_mode_opts *o, s3s__file_mode_result *res,
                               s3s__errbuf *eb)
{
    double t0 = now_s();
    const char *root = o->root ? o->root : "/opt/ml/input/data";
    const char *chname = o->channel_name;
    if (chname == NULL && o->wopts->job != NULL) {
        const s3s_channel *ch = o->wopts->channel
            ? s3s_job_channel_find(o->wopts->job, o->wopts->channel)
            : s3s_job_channel(o->wopts->job, 0);
        chname = ch ? ch->name : NULL;
    }
    if (chname == NULL || s3s__keypath_check(chname, strlen(chname), eb) != 0 ||
        strchr(chname, '/') != NULL)
        return s3s__err_set(eb, S3S_EINVAL, "File mode: a plain channel name is needed");
    if (o->wopts->coordinator != NULL)
        return materialize_coord(o, root, chname, res, t0, eb);
    s3s__item_desc *items = NULL;
    size_t n = 0, plen = 0, nside = 0, nfetch = 0;
    side_ent *side = NULL;
    char *dir = NULL, *sidepath = NULL;
    s3s__source *src = NULL;
    s3s_worker *w = NULL;
    job j = {0};
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    int rc = s3s__mode_share_list(o->wopts, chname, &items, &n, &plen, eb);
    if (rc != 0)
        goto out;
    size_t dl = strlen(root) + strlen(chname) + 32;
    dir = malloc(dl);
    sidepath = malloc(dl + 16);
    if (!dir || !sidepath) {
        rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(dir, dl, "%s/%s", root, chname);
    snprintf(sidepath, dl + 16, "%s/.%s.s3shard-etags", root, chname);
    /* What is already there and complete is skipped. */
    side = side_load(sidepath, &nside);
    uint64_t fetch_bytes = 0;
    s3s__file_mode_result r = {0};
    for (size_t i = 0; i < n; i++) {
        char *path = NULL;
        const char *rel = items[i].key + plen;
        if (s3s__keypath_join(&path, dir, rel, strlen(rel), eb) != 0) {
            rc = S3S_ENOMEM;
            goto out;
        }
        int done = is_complete(path, &items[i], rel, side, nside);
        free(path);
        if (done) {
            r.skipped_files++;
            r.skipped_bytes += items[i].size;
            s3s__item_desc_fini(&items[i]);
        } else {
            fetch_bytes += items[i].size;
            s3s__item_desc keep = items[i];
            memset(&items[i], 0, sizeof(keep));
            items[nfetch++] = keep;
        }
    }
    if (mkdir(root, 0755) != 0 && errno != EEXIST) {
        char *tmp = strdup(root);
        int ok = tmp && mkdir_parents(tmp) == 0 && (mkdir(root, 0755) == 0 || errno == EEXIST);
        free(tmp);
        if (!ok) {
            rc = s3s__err_set(eb, S3S_EIO, "%s: %s", root, strerror(errno));
            goto out;
        }
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = s3s__err_set(eb, S3S_EIO, "%s: %s", dir, strerror(errno));
        goto out;
    }
    if (nfetch > 0) {
        j.side = fopen(sidepath, "a");
        if (j.side == NULL)
            S3S_LOGW("%s: %s (restarts will rely on xattrs)", sidepath, strerror(errno));
        rc = s3s__source_list_create(&src, items, nfetch, eb);
        if (rc != 0)
            goto out;
        s3s_worker_opts wo = *o->wopts;
        rc = s3s__worker_create_src(&w, &wo, src, eb);
        if (rc != 0)
            goto out;
        src = NULL;
        j.w = w;
        j.dir = dir;
        j.plen = plen;
        j.total_bytes = fetch_bytes;
        j.total_files = nfetch;
        j.stop = o->stop;
        rc = run_jobs(&j, o, chname, t0, eb);
        if (rc == S3S_EINTERRUPTED && res != NULL) {
            r.files = j.files;
            r.bytes = j.bytes;
            *res = r;
        }
        if (rc == S3S_EINTERRUPTED)
            s3s__err_set(eb, rc, "stopped: %llu files downloaded, %llu already there",
                         (unsigned long long)j.files, (unsigned long long)r.skipped_files);
        if (rc != 0)
            goto out;
    }
    r.files = j.files;
    r.bytes = j.bytes;
    r.seconds = now_s() - t0;
    if (res != NULL)
        *res = r;
out:
    s3s_worker_destroy(w);
    if (src)
        src->destroy(src);
    if (j.side)
        fclose(j.side);
    for (size_t i = 0; i < n; i++)
        s3s__item_desc_fini(&items[i]);
    free(items);
    side_free(side, nside);
    free(dir);
    free(sidepath);
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    return rc;
}
