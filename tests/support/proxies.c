/* proxies.c: start, stop, configure and read the test proxies (see proxies.h). */
#include "tests/support/proxies.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RESP_MAX (64u * 1024u * 1024u)

/* spawn_port runs argv with stdout on a pipe and reads the port it prints first. */
static int spawn_port(s3s_test_proxy *p, char *const argv[])
{
    memset(p, 0, sizeof(*p));
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        /* die with the test: a crashed test must not leave proxies holding
         * ctest's output pipes open */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    char line[32];
    size_t n = 0;
    while (n < sizeof(line) - 1) {
        struct pollfd pf = {.fd = fds[0], .events = POLLIN};
        if (poll(&pf, 1, 15000) <= 0)
            break;
        ssize_t got = read(fds[0], line + n, 1);
        if (got <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(fds[0]); /* the proxies print nothing else on stdout */
    int port = atoi(line);
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "%s did not print its port (got '%s')\n", argv[0], line);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    p->pid = pid;
    p->port = port;
    snprintf(p->endpoint, sizeof(p->endpoint), "http://127.0.0.1:%d", port);
    return 0;
}

static int start(s3s_test_proxy *p, const char *const *head, int nhead, int upstream_port,
                 const char *const *args)
{
    char up[32];
    snprintf(up, sizeof(up), "127.0.0.1:%d", upstream_port);
    const char *argv[64];
    int n = 0;
    for (int i = 0; i < nhead; i++)
        argv[n++] = head[i];
    argv[n++] = "--upstream";
    argv[n++] = up;
    for (int i = 0; args != NULL && args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return spawn_port(p, (char *const *)argv);
}

int s3s_test_faultproxy_start(s3s_test_proxy *p, int upstream_port, const char *const *args)
{
    const char *bin = getenv("S3SHARD_FAULTPROXY");
    if (bin == NULL || access(bin, X_OK) != 0) {
        fprintf(stderr, "fault proxy not found at %s\n", bin ? bin : "$S3SHARD_FAULTPROXY");
        return -1;
    }
    const char *head[] = {bin, "--quiet"};
    return start(p, head, 2, upstream_port, args);
}

int s3s_test_sigv4proxy_start(s3s_test_proxy *p, int upstream_port, const char *const *args)
{
    const char *py = getenv("S3SHARD_SIGV4PROXY");
    if (py == NULL || access(py, R_OK) != 0) {
        fprintf(stderr, "verifying proxy not found at %s\n", py ? py : "$S3SHARD_SIGV4PROXY");
        return -1;
    }
    const char *head[] = {"/usr/bin/python3", py};
    return start(p, head, 2, upstream_port, args);
}

void s3s_test_proxy_stop(s3s_test_proxy *p)
{
    if (p != NULL && p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

int s3s_test_http(int port, const char *method, const char *target, const char *body, char **out)
{
    if (out != NULL)
        *out = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    size_t blen = body ? strlen(body) : 0;
    static const char fmt[] = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %zu\r\n"
                              "Connection: close\r\n\r\n%s";
    size_t reqcap = strlen(method) + strlen(target) + blen + sizeof(fmt) + 64;
    char *req = malloc(reqcap);
    int status = -1;
    char *resp = NULL;
    size_t len = 0, cap = 0;
    int rl = req ? snprintf(req, reqcap, fmt, method, target, port, blen, body ? body : "") : -1;
    if (rl < 0 || (size_t)rl >= reqcap)
        goto done;
    for (size_t off = 0; off < (size_t)rl;) {
        ssize_t w = write(fd, req + off, (size_t)rl - off);
        if (w <= 0)
            goto done;
        off += (size_t)w;
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            if (cap >= RESP_MAX)
                goto done;
            cap = cap ? cap * 2 : 65536;
            char *nr = realloc(resp, cap);
            if (nr == NULL)
                goto done;
            resp = nr;
        }
        ssize_t got = read(fd, resp + len, cap - len - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            goto done;
        if (got == 0)
            break;
        len += (size_t)got;
    }
    if (resp == NULL || len < 12 || strncmp(resp, "HTTP/1.", 7) != 0)
        goto done;
    resp[len] = '\0';
    status = atoi(resp + 9);
    if (out != NULL) {
        char *b = strstr(resp, "\r\n\r\n");
        *out = strdup(b ? b + 4 : "");
    }
done:
    free(req);
    free(resp);
    close(fd);
    return status;
}

int s3s_test_faultproxy_config(const s3s_test_proxy *p, const char *kv)
{
    char *out = NULL;
    int st = s3s_test_http(p->port, "POST", "/__faultproxy/config", kv, &out);
    if (st != 200)
        fprintf(stderr, "faultproxy refused '%s': %s", kv, out ? out : "(no answer)\n");
    free(out);
    return st == 200 ? 0 : -1;
}

int s3s_test_faultproxy_reset(const s3s_test_proxy *p, int restore_config)
{
    int st = s3s_test_http(p->port, "POST",
                           restore_config ? "/__faultproxy/reset?config=1" : "/__faultproxy/reset",
                           NULL, NULL);
    return st == 200 ? 0 : -1;
}

/* get_json fetches target and returns the parsed document (caller decrefs). */
static json_t *get_json(int port, const char *target)
{
    char *out = NULL;
    int st = s3s_test_http(port, "GET", target, NULL, &out);
    json_t *j = NULL;
    if (st == 200 && out != NULL) {
        json_error_t e;
        j = json_loads(out, 0, &e);
        if (j == NULL)
            fprintf(stderr, "stats: bad JSON at %d:%d: %s\n", e.line, e.column, e.text);
    }
    free(out);
    return j;
}

static void append_encoded(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(dst);
    for (; *s && n + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-_.~/", c) != NULL)
            dst[n++] = (char)c;
        else
            n += (size_t)snprintf(dst + n, cap - n, "%%%02X", c);
    }
    dst[n] = '\0';
}

long s3s_test_faultproxy_count(const s3s_test_proxy *p, const char *key, const char *field)
{
    char target[4096] = "/__faultproxy/stats?keys=0";
    if (key != NULL) {
        strcpy(target, "/__faultproxy/stats?key=");
        append_encoded(target, sizeof(target), key);
    }
    json_t *j = get_json(p->port, target);
    if (j == NULL)
        return -1;
    long v = -1;
    json_t *x = NULL;
    if (key != NULL) {
        json_t *k = json_object_get(json_object_get(j, "keys"), key);
        if (k == NULL)
            v = 0; /* never seen */
        else
            x = json_object_get(k, field);
    } else {
        x = json_object_get(j, field);
        if (x == NULL)
            x = json_object_get(json_object_get(j, "by_method"), field);
        if (x == NULL)
            x = json_object_get(json_object_get(j, "by_fault"), field);
    }
    if (x != NULL)
        v = (long)json_integer_value(x);
    json_decref(j);
    return v;
}

long s3s_test_sigv4proxy_count(const s3s_test_proxy *p, const char *field)
{
    json_t *j = get_json(p->port, "/__sigv4proxy/stats");
    if (j == NULL)
        return -1;
    json_t *x = json_object_get(j, field);
    long v = x ? (long)json_integer_value(x) : -1;
    json_decref(j);
    return v;
}

int s3s_test_sigv4proxy_reset(const s3s_test_proxy *p)
{
    return s3s_test_http(p->port, "POST", "/__sigv4proxy/reset", NULL, NULL) == 200 ? 0 : -1;
}
