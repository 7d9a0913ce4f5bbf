/* faultproxy.c: s3shard-faultproxy, an HTTP/1.1 reverse proxy for tests and
 * benchmarks that injects the faults real S3 and real networks produce.
 *
 * Invariants:
 * - One thread per client connection, blocking sockets, one upstream connection
 *   per client connection (opened lazily, reopened when the upstream closed it).
 *   With no fault set, bytes are copied through 256 KiB buffers unchanged, so the
 *   proxy is not the bottleneck (see docs/testing.md for measurements).
 * - Bodies are framed by Content-Length or chunked encoding in both directions;
 *   a response with neither runs to the upstream's close.
 * - Which request gets a fault is a pure function of (seed, key, n-th request of
 *   that key), so runs are deterministic however threads interleave.
 * - Control requests (/__faultproxy/...) are answered by the proxy itself and
 *   never counted as traffic.
 * - Every buffer is capped: request and response heads at 64 KiB, chunk lines
 *   at 4 KiB, the key table at 1,000,000 keys.
 *
 * Usage: s3shard-faultproxy --upstream HOST:PORT [--listen PORT] [--NAME VALUE]...
 * where NAME is any configuration key (see usage()). The chosen port is printed
 * on stdout as the first line. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)
#define HEAD_MAX (64 * 1024)
#define LINE_MAX_LEN 4096
#define KEYS_MAX 1000000
#define KEY_MAX 1024

enum fault { F_NONE, F_SLOWDOWN, F_INTERNAL, F_RESET, F_RESET_MID, F_STALL, F_SHORT, F_COUNT };
static const char *const fault_names[F_COUNT] = {"none",      "slowdown", "internal", "reset",
                                                 "reset_mid", "stall",    "short"};

/* The configuration: set by flags at start, changed by POST /__faultproxy/config. */
typedef struct config {
    enum fault fault;
    double rate; /* fraction of a key's requests, by a seeded hash */
    long every; /* every Nth request of a key (N, 2N, ...) */
    long first; /* the first K requests of a key */
    long limit; /* at most this many faults in total (0: no limit) */
    uint64_t seed;
    char match[256]; /* only keys containing this ("" = all) */
    char method[16]; /* only this method ("" = all) */
    long stall_ms; /* stall length; 0 = until the client closes */
    long long fault_at; /* body offset of reset_mid/short/stall; -1 = default */
    long delay_ms; /* first-byte delay added to every request */
    double bandwidth; /* bytes/s per connection and direction; 0 = unlimited */
} config;

typedef struct keystat {
    char *key;
    uint64_t hash;
    long n_sel; /* requests that passed the match/method filters */
    long by_method[6]; /* GET HEAD PUT POST DELETE other */
    long faults;
    unsigned long long bytes_down; /* response body bytes relayed for this key */
} keystat;

static const char *const method_names[6] = {"GET", "HEAD", "PUT", "POST", "DELETE", "OTHER"};

static struct {
    pthread_mutex_t mu;
    config cfg, start_cfg;
    keystat *keys; /* open addressing, capacity nkeys_cap (power of two) */
    size_t nkeys, nkeys_cap;
    long requests, connections, faults_total;
    long by_method[6];
    long by_fault[F_COUNT];
    unsigned long long bytes_up, bytes_down;
    struct sockaddr_storage up_addr;
    socklen_t up_len;
    int quiet;
} G = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* ---- small helpers ---------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int method_index(const char *m)
{
    for (int i = 0; i < 5; i++)
        if (strcmp(m, method_names[i]) == 0)
            return i;
    return 5;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* pct_decode decodes %XX in [s, s+n) into out (cap outsz, NUL-terminated);
 * with plus_space (query strings, HTML forms) '+' also means a space. */
static void pct_decode(const char *s, size_t n, char *out, size_t outsz, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outsz; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (plus_space && s[i] == '+') {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
}

static int parse_size(const char *v, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || d < 0)
        return -1;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        d *= 1e3;
        end++;
        break;
    case 'M':
        d *= 1e6;
        end++;
        break;
    case 'G':
        d *= 1e9;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0')
        return -1;
    *out = d;
    return 0;
}

/* config_set applies one key=value to c. Returns 0, or -1 with a message in err. */
static int config_set(config *c, const char *k, const char *v, char *err, size_t errsz)
{
    char *end = NULL;
    if (strcmp(k, "fault") == 0) {
        for (int i = 0; i < F_COUNT; i++)
            if (strcmp(v, fault_names[i]) == 0) {
                c->fault = (enum fault)i;
                return 0;
            }
        snprintf(err, errsz, "fault: unknown value '%s'", v);
        return -1;
    }
    if (strcmp(k, "match") == 0 || strcmp(k, "method") == 0) {
        char *dst = k[1] == 'a' ? c->match : c->method;
        size_t cap = k[1] == 'a' ? sizeof(c->match) : sizeof(c->method);
        if (strlen(v) >= cap) {
            snprintf(err, errsz, "%s: value too long", k);
            return -1;
        }
        strcpy(dst, v);
        return 0;
    }
    if (strcmp(k, "rate") == 0) {
        double d = strtod(v, &end);
        if (end == v || *end || d < 0 || d > 1)
            goto bad;
        c->rate = d;
        return 0;
    }
    if (strcmp(k, "bandwidth") == 0) {
        if (parse_size(v, &c->bandwidth) != 0)
            goto bad;
        return 0;
    }
    if (strcmp(k, "seed") == 0) {
        unsigned long long u = strtoull(v, &end, 0);
        if (end == v || *end)
            goto bad;
        c->seed = u;
        return 0;
    }
    long long n = strtoll(v, &end, 10);
    if (end == v || *end)
        goto bad;
    if (strcmp(k, "fault_at") == 0) {
        c->fault_at = n;
        return 0;
    }
    if (n < 0)
        goto bad;
    if (strcmp(k, "every") == 0)
        c->every = (long)n;
    else if (strcmp(k, "first") == 0)
        c->first = (long)n;
    else if (strcmp(k, "limit") == 0)
        c->limit = (long)n;
    else if (strcmp(k, "stall_ms") == 0)
        c->stall_ms = (long)n;
    else if (strcmp(k, "delay_ms") == 0)
        c->delay_ms = (long)n;
    else {
        snprintf(err, errsz, "unknown key '%s'", k);
        return -1;
    }
    return 0;
bad:
    snprintf(err, errsz, "%s: bad value '%s'", k, v);
    return -1;
}

/* config_apply parses "k=v" pairs separated by '&', newlines or spaces into a copy
 * of c, and commits the copy only if every pair was valid. */
static int config_apply(config *c, const char *text, char *err, size_t errsz)
{
    config tmp = *c;
    char *dup = strdup(text);
    if (dup == NULL) {
        snprintf(err, errsz, "out of memory");
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(dup, "&\r\n ", &save); tok; tok = strtok_r(NULL, "&\r\n ", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL) {
            snprintf(err, errsz, "expected key=value, got '%s'", tok);
            rc = -1;
            break;
        }
        *eq = '\0';
        char val[512];
        pct_decode(eq + 1, strlen(eq + 1), val, sizeof(val), 0);
        if (config_set(&tmp, tok, val, err, errsz) != 0) {
            rc = -1;
            break;
        }
    }
    free(dup);
    if (rc == 0)
        *c = tmp;
    return rc;
}

static size_t config_dump(const config *c, char *out, size_t outsz)
{
    int n = snprintf(out, outsz,
                     "fault=%s\nrate=%g\nevery=%ld\nfirst=%ld\nlimit=%ld\nseed=%llu\nmatch=%s\n"
                     "method=%s\nstall_ms=%ld\nfault_at=%lld\ndelay_ms=%ld\nbandwidth=%.0f\n",
                     fault_names[c->fault], c->rate, c->every, c->first, c->limit,
                     (unsigned long long)c->seed, c->match, c->method, c->stall_ms, c->fault_at,
                     c->delay_ms, c->bandwidth);
    return n < 0 ? 0 : ((size_t)n < outsz ? (size_t)n : outsz - 1);
}

/* ---- the key table (under G.mu) ------------------------------------------------------- */

static keystat *key_get(const char *key)
{
    if (G.nkeys_cap == 0 || (G.nkeys + 1) * 2 > G.nkeys_cap) {
        if (G.nkeys >= KEYS_MAX)
            return NULL;
        size_t ncap = G.nkeys_cap ? G.nkeys_cap * 2 : 1024;
        keystat *nk = calloc(ncap, sizeof(*nk));
        if (nk == NULL)
            return NULL;
        for (size_t i = 0; i < G.nkeys_cap; i++) {
            if (G.keys[i].key == NULL)
                continue;
            size_t j = G.keys[i].hash & (ncap - 1);
            while (nk[j].key)
                j = (j + 1) & (ncap - 1);
            nk[j] = G.keys[i];
        }
        free(G.keys);
        G.keys = nk;
        G.nkeys_cap = ncap;
    }
    uint64_t h = hash_str(key);
    size_t j = h & (G.nkeys_cap - 1);
    while (G.keys[j].key) {
        if (G.keys[j].hash == h && strcmp(G.keys[j].key, key) == 0)
            return &G.keys[j];
        j = (j + 1) & (G.nkeys_cap - 1);
    }
    G.keys[j].key = strdup(key);
    if (G.keys[j].key == NULL)
        return NULL;
    G.keys[j].hash = h;
    G.nkeys++;
    return &G.keys[j];
}

static void keys_clear(void)
{
    for (size_t i = 0; i < G.nkeys_cap; i++)
        free(G.keys[i].key);
    free(G.keys);
    G.keys = NULL;
    G.nkeys = G.nkeys_cap = 0;
}

/* decide counts the request and picks its fault; *cfg receives the config in force. */
static enum fault decide(const char *method, const char *key, config *cfg)
{
    pthread_mutex_lock(&G.mu);
    *cfg = G.cfg;
    int mi = method_index(method);
    G.requests++;
    G.by_method[mi]++;
    keystat *ks = key_get(key);
    enum fault f = F_NONE;
    if (ks != NULL) {
        ks->by_method[mi]++;
        int sel = (cfg->match[0] == '\0' || strstr(key, cfg->match) != NULL) &&
            (cfg->method[0] == '\0' || strcasecmp(cfg->method, method) == 0);
        if (sel) {
            long n = ks->n_sel++;
            int hit = 0;
            int any = cfg->first > 0 || cfg->every > 0 || cfg->rate > 0;
            if (!any)
                hit = 1;
            if (cfg->first > 0 && n < cfg->first)
                hit = 1;
            if (cfg->every > 0 && (n + 1) % cfg->every == 0)
                hit = 1;
            if (cfg->rate > 0) {
                uint64_t r = mix64(cfg->seed ^ mix64(ks->hash ^ mix64((uint64_t)n + 1)));
                if ((double)(r >> 11) / 9007199254740992.0 < cfg->rate)
                    hit = 1;
            }
            if (cfg->limit > 0 && G.faults_total >= cfg->limit)
                hit = 0;
            if (hit && cfg->fault != F_NONE) {
                f = cfg->fault;
                ks->faults++;
                G.faults_total++;
                G.by_fault[f]++;
            }
        }
    }
    pthread_mutex_unlock(&G.mu);
    return f;
}

/* ---- buffered connection I/O -------------------------------------------------------------- */

typedef struct rd {
    int fd;
    char *buf;
    size_t start, end;
} rd;

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static ssize_t rd_fill(rd *r)
{
    if (r->start == r->end)
        r->start = r->end = 0;
    if (r->end == BUF_SIZE) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    for (;;) {
        ssize_t n = recv(r->fd, r->buf + r->end, BUF_SIZE - r->end, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0)
            r->end += (size_t)n;
        return n;
    }
}

/* rd_head reads up to and including the blank line ending a head into out
 * (NUL-terminated). Returns its length, 0 on a clean EOF before any byte, -1 on error. */
static ssize_t rd_head(rd *r, char *out, size_t outsz)
{
    for (;;) {
        size_t avail = r->end - r->start;
        char *p = memmem(r->buf + r->start, avail, "\r\n\r\n", 4);
        if (p != NULL) {
            size_t n = (size_t)(p - (r->buf + r->start)) + 4;
            if (n >= outsz)
                return -1;
            memcpy(out, r->buf + r->start, n);
            out[n] = '\0';
            r->start += n;
            return (ssize_t)n;
        }
        if (avail >= outsz)
            return -1;
        ssize_t got = rd_fill(r);
        if (got <= 0)
            return (got == 0 && avail == 0) ? 0 : -1;
    }
}

/* rd_line reads one CRLF-terminated line (kept) into out. Returns its length or -1. */
static ssize_t rd_line(rd *r, char *out, size_t outsz)
{
    for (;;) {
        size_t avail = r->end - r->start;
        char *p = memchr(r->buf + r->start, '\n', avail);
        if (p != NULL) {
            size_t n = (size_t)(p - (r->buf + r->start)) + 1;
            if (n >= outsz)
                return -1;
            memcpy(out, r->buf + r->start, n);
            out[n] = '\0';
            r->start += n;
            return (ssize_t)n;
        }
        if (avail >= outsz)
            return -1;
        if (rd_fill(r) <= 0)
            return -1;
    }
}

/* A body sink: where relayed bytes go, with the fault and bandwidth rules. */
typedef struct sink {
    int fd; /* -1: discard */
    double bw; /* bytes/s; 0 = unlimited */
    int64_t t0;
    unsigned long long sent; /* body bytes so far */
    long long cut_at; /* -1: none; else stop after this many bytes */
    int cut_rc; /* rc when cut: 1 */
    unsigned long long *counter;
    unsigned long long *key_counter; /* the connection's per-request count, or NULL */
    int *pipefd; /* a pipe for splice(2), or NULL; used when nothing is shaped or cut */
} sink;

/* sink_write relays up to n bytes; *done receives how many were consumed.
 * Returns 0, 1 (the cut point was reached) or -1 (write error). */
static int sink_write(sink *s, const char *p, size_t n, size_t *done)
{
    *done = 0;
    while (n > 0) {
        size_t m = n;
        if (s->cut_at >= 0) {
            if (s->sent >= (unsigned long long)s->cut_at)
                return 1;
            if (s->sent + m > (unsigned long long)s->cut_at)
                m = (size_t)((unsigned long long)s->cut_at - s->sent);
        }
        if (s->bw > 0) {
            size_t slice = (size_t)(s->bw / 100); /* ~10 ms of data per write */
            if (slice < 16384)
                slice = 16384;
            if (m > slice)
                m = slice;
            int64_t due = s->t0 + (int64_t)((double)s->sent * 1e9 / s->bw);
            sleep_ns(due - now_ns());
        }
        if (s->fd >= 0 && write_all(s->fd, p, m) != 0)
            return -1;
        s->sent += m;
        if (s->counter)
            __atomic_fetch_add(s->counter, (unsigned long long)m, __ATOMIC_RELAXED);
        if (s->key_counter)
            *s->key_counter += m;
        p += m;
        n -= m;
        *done += m;
    }
    if (s->cut_at >= 0 && s->sent >= (unsigned long long)s->cut_at)
        return 1;
    return 0;
}

/* splice_n moves n bytes from fd to the sink's socket through its pipe without
 * copying them to user space (the fast path when no fault or cap applies). */
static int splice_n(int from, sink *s, unsigned long long n)
{
    int *pf = s->pipefd;
    while (n > 0) {
        size_t want = n > (1u << 20) ? (1u << 20) : (size_t)n;
        ssize_t got = splice(from, NULL, pf[1], NULL, want, SPLICE_F_MOVE);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        size_t left = (size_t)got;
        while (left > 0) {
            ssize_t put = splice(pf[0], NULL, s->fd, NULL, left, SPLICE_F_MOVE);
            if (put < 0 && errno == EINTR)
                continue;
            if (put <= 0)
                return -1;
            left -= (size_t)put;
        }
        s->sent += (unsigned long long)got;
        if (s->counter)
            __atomic_fetch_add(s->counter, (unsigned long long)got, __ATOMIC_RELAXED);
        if (s->key_counter)
            *s->key_counter += (unsigned long long)got;
        n -= (unsigned long long)got;
    }
    return 0;
}

/* copy_n relays exactly n bytes from r to s. Returns 0, 1 (cut), -1 (error/EOF). */
static int copy_n(rd *r, sink *s, unsigned long long n)
{
    while (n > 0) {
        if (r->start == r->end) {
            if (s->pipefd != NULL && s->pipefd[0] >= 0 && s->fd >= 0 && s->bw == 0 &&
                s->cut_at < 0 && n >= 65536)
                return splice_n(r->fd, s, n);
            if (rd_fill(r) <= 0)
                return -1;
        }
        size_t m = r->end - r->start;
        if (m > n)
            m = (size_t)n;
        size_t done;
        int rc = sink_write(s, r->buf + r->start, m, &done);
        r->start += done;
        n -= done;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int copy_to_eof(rd *r, sink *s)
{
    for (;;) {
        if (r->start == r->end) {
            ssize_t got = rd_fill(r);
            if (got == 0)
                return 0;
            if (got < 0)
                return -1;
        }
        size_t m = r->end - r->start;
        size_t done;
        int rc = sink_write(s, r->buf + r->start, m, &done);
        r->start += done;
        if (rc != 0)
            return rc;
    }
}

/* copy_chunked relays a chunked body, framing included, through to the trailers. */
static int copy_chunked(rd *r, sink *s)
{
    char line[LINE_MAX_LEN];
    size_t done;
    for (;;) {
        ssize_t n = rd_line(r, line, sizeof(line));
        if (n < 0)
            return -1;
        char *end;
        unsigned long long sz = strtoull(line, &end, 16);
        if (end == line)
            return -1;
        int rc = sink_write(s, line, (size_t)n, &done);
        if (rc != 0)
            return rc;
        if (sz == 0) {
            for (;;) { /* trailers, then the blank line */
                n = rd_line(r, line, sizeof(line));
                if (n < 0)
                    return -1;
                rc = sink_write(s, line, (size_t)n, &done);
                if (rc != 0)
                    return rc;
                if (n <= 2)
                    return 0;
            }
        }
        rc = copy_n(r, s, sz + 2);
        if (rc != 0)
            return rc;
    }
}

/* ---- HTTP heads -------------------------------------------------------------------------- */

typedef struct head {
    char method[16];
    char target[8192];
    int status;
    int chunked;
    long long clen; /* -1: absent */
    int conn_close;
    int http10;
    int expect100;
} head;

/* hdr_value finds header name in head text; copies its trimmed value. */
static int hdr_value(const char *h, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    const char *p = strstr(h, "\r\n");
    while (p != NULL && p[2] != '\r') {
        const char *line = p + 2;
        const char *eol = strstr(line, "\r\n");
        if (eol == NULL)
            break;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = eol;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t n = (size_t)(e - v) < outsz - 1 ? (size_t)(e - v) : outsz - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        p = eol;
    }
    return 0;
}

static int parse_head(const char *h, int is_request, head *out)
{
    memset(out, 0, sizeof(*out));
    out->clen = -1;
    const char *eol = strstr(h, "\r\n");
    if (eol == NULL)
        return -1;
    if (is_request) {
        const char *sp1 = memchr(h, ' ', (size_t)(eol - h));
        const char *sp2 = NULL;
        for (const char *q = eol - 1; q > h; q--)
            if (*q == ' ') {
                sp2 = q;
                break;
            }
        if (sp1 == NULL || sp2 == NULL || sp2 <= sp1 || (size_t)(sp1 - h) >= sizeof(out->method) ||
            (size_t)(sp2 - sp1 - 1) >= sizeof(out->target))
            return -1;
        memcpy(out->method, h, (size_t)(sp1 - h));
        memcpy(out->target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
        out->http10 = strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    } else {
        if (strncmp(h, "HTTP/1.", 7) != 0 || strlen(h) < 12)
            return -1;
        out->http10 = h[7] == '0';
        out->status = atoi(h + 9);
    }
    char v[256];
    if (hdr_value(h, "Content-Length", v, sizeof(v))) {
        char *end;
        out->clen = strtoll(v, &end, 10);
        if (end == v || out->clen < 0)
            return -1;
    }
    if (hdr_value(h, "Transfer-Encoding", v, sizeof(v)) && strcasestr(v, "chunked"))
        out->chunked = 1;
    if (hdr_value(h, "Connection", v, sizeof(v))) {
        if (strcasestr(v, "close"))
            out->conn_close = 1;
        else if (out->http10 && strcasestr(v, "keep-alive"))
            out->http10 = 0;
    } else if (out->http10) {
        out->conn_close = 1;
    }
    if (hdr_value(h, "Expect", v, sizeof(v)) && strcasecmp(v, "100-continue") == 0)
        out->expect100 = 1;
    return 0;
}

static int send_simple(int fd, int status, const char *reason, const char *ctype, const char *body,
                       int close_after)
{
    char h[512];
    size_t bl = strlen(body);
    int n = snprintf(h, sizeof(h),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                     reason, ctype, bl, close_after ? "Connection: close\r\n" : "");
    if (write_all(fd, h, (size_t)n) != 0 || write_all(fd, body, bl) != 0)
        return -1;
    return 0;
}

static void reset_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* ---- the control endpoint ------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_methods(FILE *f, const long *m)
{
    for (int i = 0; i < 6; i++)
        fprintf(f, "%s\"%s\":%ld", i ? "," : "", method_names[i], m[i]);
}

static void json_key(FILE *f, const keystat *ks)
{
    json_str(f, ks->key);
    fputs(":{", f);
    json_methods(f, ks->by_method);
    long total = 0;
    for (int i = 0; i < 6; i++)
        total += ks->by_method[i];
    fprintf(f, ",\"requests\":%ld,\"faults\":%ld,\"bytes_down\":%llu}", total, ks->faults,
            ks->bytes_down);
}

/* stats_json writes the counters; with key non-NULL only that key's entry. */
static char *stats_json(const char *key, int with_keys)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    if (f == NULL)
        return NULL;
    pthread_mutex_lock(&G.mu);
    fprintf(f,
            "{\"requests\":%ld,\"connections\":%ld,\"faults\":%ld,\"bytes_up\":%llu,"
            "\"bytes_down\":%llu,\"by_method\":{",
            G.requests, G.connections, G.faults_total, G.bytes_up, G.bytes_down);
    json_methods(f, G.by_method);
    fputs("},\"by_fault\":{", f);
    for (int i = 1; i < F_COUNT; i++)
        fprintf(f, "%s\"%s\":%ld", i > 1 ? "," : "", fault_names[i], G.by_fault[i]);
    fputs("},\"keys\":{", f);
    int first = 1;
    for (size_t i = 0; i < G.nkeys_cap; i++) {
        const keystat *ks = &G.keys[i];
        if (ks->key == NULL || (key != NULL && strcmp(ks->key, key) != 0) ||
            (key == NULL && !with_keys))
            continue;
        if (!first)
            fputc(',', f);
        first = 0;
        json_key(f, ks);
    }
    fputs("}}\n", f);
    pthread_mutex_unlock(&G.mu);
    fclose(f);
    return out;
}

static int query_param(const char *q, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    while (q != NULL && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len > nl && strncmp(q, name, nl) == 0 && q[nl] == '=') {
            pct_decode(q + nl + 1, len - nl - 1, out, outsz, 1);
            return 1;
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* control answers /__faultproxy/... requests. body has been read in full. */
static int control(int fd, const head *h, const char *body, int close_after)
{
    const char *path = h->target + strlen("/__faultproxy/");
    const char *q = strchr(path, '?');
    size_t plen = q ? (size_t)(q - path) : strlen(path);
    char err[512];
    if (plen == 5 && strncmp(path, "stats", 5) == 0) {
        char key[KEY_MAX];
        int has_key = query_param(q ? q + 1 : NULL, "key", key, sizeof(key));
        char keys[8] = "1";
        query_param(q ? q + 1 : NULL, "keys", keys, sizeof(keys));
        char *js = stats_json(has_key ? key : NULL, strcmp(keys, "0") != 0);
        if (js == NULL)
            return send_simple(fd, 500, "Error", "text/plain", "out of memory\n", close_after);
        int rc = send_simple(fd, 200, "OK", "application/json", js, close_after);
        free(js);
        return rc;
    }
    if (plen == 6 && strncmp(path, "config", 6) == 0) {
        char dump[2048];
        pthread_mutex_lock(&G.mu);
        int rc = 0;
        if (strcmp(h->method, "POST") == 0 || strcmp(h->method, "PUT") == 0)
            rc = config_apply(&G.cfg, body, err, sizeof(err));
        config_dump(&G.cfg, dump, sizeof(dump));
        pthread_mutex_unlock(&G.mu);
        if (rc != 0) {
            strcat(err, "\n");
            return send_simple(fd, 400, "Bad Request", "text/plain", err, close_after);
        }
        return send_simple(fd, 200, "OK", "text/plain", dump, close_after);
    }
    if (plen == 5 && strncmp(path, "reset", 5) == 0) {
        pthread_mutex_lock(&G.mu);
        keys_clear();
        G.requests = G.faults_total = G.connections = 0;
        G.bytes_up = G.bytes_down = 0;
        memset(G.by_method, 0, sizeof(G.by_method));
        memset(G.by_fault, 0, sizeof(G.by_fault));
        char v[8];
        if (query_param(q ? q + 1 : NULL, "config", v, sizeof(v)) && strcmp(v, "1") == 0)
            G.cfg = G.start_cfg;
        pthread_mutex_unlock(&G.mu);
        return send_simple(fd, 200, "OK", "text/plain", "reset\n", close_after);
    }
    return send_simple(fd, 404, "Not Found", "text/plain",
                       "unknown control path: use stats, config or reset\n", close_after);
}

/* ---- the proxy --------------------------------------------------------------------------- */

static int upstream_connect(void)
{
    int fd = socket(G.up_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&G.up_addr, G.up_len) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* upstream_stale: a kept-alive upstream connection that is readable has been
 * closed by the server (or sent garbage): do not reuse it. */
static int upstream_stale(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

static const char slowdown_xml[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>"
    "<Message>Please reduce your request rate.</Message>"
    "<RequestId>faultproxy</RequestId></Error>\n";
static const char internal_xml[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code>"
    "<Message>We encountered an internal error. Please try again.</Message>"
    "<RequestId>faultproxy</RequestId></Error>\n";

typedef struct conn {
    int cfd;
    int ufd;
    int pipe_up[2], pipe_down[2];
    rd cr, ur;
    char *chead, *uhead;
    char key[KEY_MAX]; /* the key of the request being served ("" for control) */
    unsigned long long key_down; /* its response body bytes relayed so far */
} conn;

/* stall_until_close holds the response for ms milliseconds (0: until the client goes). */
static void stall(conn *c, long ms)
{
    if (ms > 0) {
        sleep_ns((int64_t)ms * 1000000LL);
        return;
    }
    char b[4096];
    for (;;) {
        struct pollfd p = {.fd = c->cfd, .events = POLLIN};
        int n = poll(&p, 1, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || recv(c->cfd, b, sizeof(b), 0) <= 0)
            return;
    }
}

/* serve_one handles one request on the connection. Returns 0 to keep the
 * connection, 1 to close it (gracefully), -1 to reset it. */
static int serve_one(conn *c)
{
    ssize_t hn = rd_head(&c->cr, c->chead, HEAD_MAX);
    if (hn <= 0)
        return 1;
    head rq;
    if (parse_head(c->chead, 1, &rq) != 0) {
        send_simple(c->cfd, 400, "Bad Request", "text/plain", "bad request head\n", 1);
        return 1;
    }
    int close_after = rq.conn_close;
    if (strncmp(rq.target, "/__faultproxy/", 14) == 0) {
        char body[4096] = "";
        if (rq.expect100)
            write_all(c->cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        if (rq.chunked || rq.clen >= (long long)sizeof(body)) {
            send_simple(c->cfd, 413, "Too Large", "text/plain", "control body too large\n", 1);
            return 1;
        }
        if (rq.clen > 0) {
            while (c->cr.end - c->cr.start < (size_t)rq.clen)
                if (rd_fill(&c->cr) <= 0)
                    return 1;
            memcpy(body, c->cr.buf + c->cr.start, (size_t)rq.clen);
            body[rq.clen] = '\0';
            c->cr.start += (size_t)rq.clen;
        }
        return control(c->cfd, &rq, body, close_after) == 0 && !close_after ? 0 : 1;
    }

    /* The key: the percent-decoded path, without the query. */
    char key[KEY_MAX];
    const char *qm = strchr(rq.target, '?');
    pct_decode(rq.target, qm ? (size_t)(qm - rq.target) : strlen(rq.target), key, sizeof(key), 0);
    snprintf(c->key, sizeof(c->key), "%s", key);
    config cfg;
    enum fault f = decide(rq.method, key, &cfg);
    if (!G.quiet && f != F_NONE)
        fprintf(stderr, "faultproxy: %s %s -> %s\n", rq.method, key, fault_names[f]);
    int has_body = rq.chunked || rq.clen > 0;

    if (f == F_RESET)
        return -1;
    if (f == F_SLOWDOWN || f == F_INTERNAL) {
        if (has_body && rq.expect100)
            close_after = 1; /* the client waits for 100: do not read the body */
        else if (has_body) {
            sink drain = {.fd = -1, .cut_at = -1};
            int rc = rq.chunked ? copy_chunked(&c->cr, &drain)
                                : copy_n(&c->cr, &drain, (unsigned long long)rq.clen);
            if (rc != 0)
                return 1;
        }
        if (cfg.delay_ms > 0)
            sleep_ns((int64_t)cfg.delay_ms * 1000000LL);
        int rc = f == F_SLOWDOWN
            ? send_simple(c->cfd, 503, "Slow Down", "application/xml", slowdown_xml, close_after)
            : send_simple(c->cfd, 500, "Internal Server Error", "application/xml", internal_xml,
                          close_after);
        return rc == 0 && !close_after ? 0 : 1;
    }

    /* Forward the request. */
    if (c->ufd >= 0 && upstream_stale(c->ufd)) {
        close(c->ufd);
        c->ufd = -1;
    }
    if (c->ufd < 0) {
        c->ufd = upstream_connect();
        c->ur.fd = c->ufd;
        c->ur.start = c->ur.end = 0;
        if (c->ufd < 0) {
            send_simple(c->cfd, 502, "Bad Gateway", "text/plain", "upstream connect failed\n", 1);
            return 1;
        }
    }
    if (cfg.delay_ms > 0)
        sleep_ns((int64_t)cfg.delay_ms * 1000000LL);
    if (write_all(c->ufd, c->chead, (size_t)hn) != 0)
        return -1;
    if (has_body) {
        if (rq.expect100 && write_all(c->cfd, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0)
            return -1;
        sink up = {.fd = c->ufd,
                   .bw = cfg.bandwidth,
                   .t0 = now_ns(),
                   .cut_at = -1,
                   .counter = &G.bytes_up,
                   .pipefd = c->pipe_up};
        int rc = rq.chunked ? copy_chunked(&c->cr, &up)
                            : copy_n(&c->cr, &up, (unsigned long long)rq.clen);
        if (rc != 0)
            return -1;
    }

    /* Relay the response head(s): 1xx are swallowed (we answered 100 ourselves). */
    head rs;
    ssize_t un;
    for (;;) {
        un = rd_head(&c->ur, c->uhead, HEAD_MAX);
        if (un <= 0 || parse_head(c->uhead, 0, &rs) != 0)
            return -1;
        if (rs.status >= 200)
            break;
    }
    int no_body = strcmp(rq.method, "HEAD") == 0 || rs.status == 204 || rs.status == 304;
    long long blen = no_body ? 0 : rs.chunked ? -1 : rs.clen;
    long long cut = -1;
    if (f == F_SHORT || f == F_RESET_MID || f == F_STALL) {
        if (cfg.fault_at >= 0)
            cut = cfg.fault_at;
        else if (f == F_STALL)
            cut = -2; /* before the head */
        else
            cut = blen > 0 ? blen / 2 : 0;
    }
    if (f == F_STALL && cut == -2)
        stall(c, cfg.stall_ms);
    if (write_all(c->cfd, c->uhead, (size_t)un) != 0)
        return -1;
    sink down = {.fd = c->cfd,
                 .bw = cfg.bandwidth,
                 .t0 = now_ns(),
                 .cut_at = cut >= 0 ? cut : -1,
                 .counter = &G.bytes_down,
                 .key_counter = &c->key_down,
                 .pipefd = c->pipe_down};
    int rc = 0;
    if (no_body)
        rc = 0;
    else if (rs.chunked)
        rc = copy_chunked(&c->ur, &down);
    else if (rs.clen >= 0)
        rc = copy_n(&c->ur, &down, (unsigned long long)rs.clen);
    else {
        rc = copy_to_eof(&c->ur, &down);
        if (rc == 0)
            return 1;
    }
    if (rc == 1) { /* the fault's cut point */
        if (f == F_STALL && !rs.chunked) {
            stall(c, cfg.stall_ms);
            down.cut_at = -1;
            rc = rs.clen >= 0
                ? copy_n(&c->ur, &down, (unsigned long long)(rs.clen - (long long)down.sent))
                : copy_to_eof(&c->ur, &down);
            if (rc != 0)
                return -1;
            if (rs.clen < 0)
                return 1;
        } else if (f == F_STALL) {
            /* a chunked body cannot resume mid-frame here: stall, then close */
            stall(c, cfg.stall_ms);
            close(c->ufd);
            c->ufd = -1;
            return 1;
        } else {
            /* The upstream connection is mid-body: drop it. */
            close(c->ufd);
            c->ufd = -1;
            return f == F_SHORT ? 1 : -1;
        }
    } else if (rc != 0) {
        return -1;
    } else if (blen == 0 && cut == 0 && f != F_STALL) {
        /* an empty body cannot be cut: fault the connection after the head */
        close(c->ufd);
        c->ufd = -1;
        return f == F_SHORT ? 1 : -1;
    }
    if (rs.conn_close || rs.http10) {
        close(c->ufd);
        c->ufd = -1;
    }
    return close_after ? 1 : 0;
}

static void *conn_main(void *arg)
{
    conn *c = arg;
    c->cr.fd = c->cfd;
    c->ufd = -1;
    if (pipe2(c->pipe_up, O_CLOEXEC) != 0)
        c->pipe_up[0] = c->pipe_up[1] = -1;
    if (pipe2(c->pipe_down, O_CLOEXEC) != 0)
        c->pipe_down[0] = c->pipe_down[1] = -1;
    if (c->pipe_down[0] >= 0)
        fcntl(c->pipe_down[0], F_SETPIPE_SZ, 1 << 20);
    if (c->pipe_up[0] >= 0)
        fcntl(c->pipe_up[0], F_SETPIPE_SZ, 1 << 20);
    c->cr.buf = malloc(BUF_SIZE);
    c->ur.buf = malloc(BUF_SIZE);
    c->chead = malloc(HEAD_MAX + 1);
    c->uhead = malloc(HEAD_MAX + 1);
    int rc = -1;
    if (c->cr.buf && c->ur.buf && c->chead && c->uhead) {
        do {
            c->key[0] = '\0';
            c->key_down = 0;
            rc = serve_one(c);
            if (c->key[0] != '\0' && c->key_down > 0) { /* per-key bytes, even when cut */
                pthread_mutex_lock(&G.mu);
                keystat *ks = key_get(c->key);
                if (ks != NULL)
                    ks->bytes_down += c->key_down;
                pthread_mutex_unlock(&G.mu);
            }
        } while (rc == 0);
    }
    if (rc < 0)
        reset_close(c->cfd);
    else {
        shutdown(c->cfd, SHUT_WR);
        close(c->cfd);
    }
    if (c->ufd >= 0)
        close(c->ufd);
    for (int i = 0; i < 2; i++) {
        if (c->pipe_up[i] >= 0)
            close(c->pipe_up[i]);
        if (c->pipe_down[i] >= 0)
            close(c->pipe_down[i]);
    }
    free(c->cr.buf);
    free(c->ur.buf);
    free(c->chead);
    free(c->uhead);
    free(c);
    return NULL;
}

static void usage(void)
{
    fputs("usage: s3shard-faultproxy --upstream HOST:PORT [--listen PORT] [--quiet] [--KEY "
          "VALUE]...\n"
          "configuration keys (also POST /__faultproxy/config with key=value lines):\n"
          "  fault      none|slowdown|internal|reset|reset_mid|stall|short (default none)\n"
          "  rate       fault this fraction of a key's requests (seeded hash)\n"
          "  every      fault every Nth request of a key\n"
          "  first      fault the first K requests of a key\n"
          "             (none of rate/every/first: fault every selected request)\n"
          "  limit      at most N faults in total (0: no limit)\n"
          "  seed       seed of the rate hash (default 1)\n"
          "  match      only keys (decoded paths) containing this string\n"
          "  method     only this method\n"
          "  stall_ms   stall length in ms; 0 = until the client closes\n"
          "  fault_at   body offset where reset_mid/short/stall strike\n"
          "             (default: half the body; stall: before the head)\n"
          "  delay_ms   first-byte delay added to every request\n"
          "  bandwidth  cap per connection and direction, bytes/s (100M = 100 MB/s)\n"
          "control: GET /__faultproxy/stats[?key=/bucket/key][&keys=0],\n"
          "         GET|POST /__faultproxy/config, POST /__faultproxy/reset[?config=1]\n",
          stderr);
}

static int resolve_upstream(const char *hp)
{
    char host[256];
    const char *colon = strrchr(hp, ':');
    if (colon == NULL || (size_t)(colon - hp) >= sizeof(host))
        return -1;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
        return -1;
    memcpy(&G.up_addr, res->ai_addr, res->ai_addrlen);
    G.up_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    G.cfg.seed = 1;
    G.cfg.fault_at = -1;
    int port = 0;
    const char *upstream = NULL;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        }
        if (strcmp(a, "--quiet") == 0) {
            G.quiet = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
            usage();
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--upstream") == 0)
            upstream = v;
        else if (strcmp(a, "--listen") == 0)
            port = atoi(v);
        else {
            char k[64];
            snprintf(k, sizeof(k), "%s", a + 2);
            for (char *p = k; *p; p++)
                if (*p == '-')
                    *p = '_';
            if (config_set(&G.cfg, k, v, err, sizeof(err)) != 0) {
                fprintf(stderr, "s3shard-faultproxy: %s\n", err);
                return 2;
            }
        }
    }
    if (upstream == NULL || resolve_upstream(upstream) != 0) {
        fprintf(stderr, "s3shard-faultproxy: --upstream HOST:PORT missing or unresolvable\n");
        usage();
        return 2;
    }
    G.start_cfg = G.cfg;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 512) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
        fprintf(stderr, "s3shard-faultproxy: listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    printf("%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
                if (errno == EMFILE || errno == ENFILE)
                    sleep_ns(10000000LL);
                continue;
            }
            fprintf(stderr, "s3shard-faultproxy: accept: %s\n", strerror(errno));
            return 1;
        }
        setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn *c = calloc(1, sizeof(*c));
        pthread_t th;
        if (c == NULL) {
            close(cfd);
            continue;
        }
        c->cfd = cfd;
        pthread_mutex_lock(&G.mu);
        G.connections++;
        pthread_mutex_unlock(&G.mu);
        if (pthread_create(&th, &attr, conn_main, c) != 0) {
            close(cfd);
            free(c);
        }
    }
}
