/* testenv.c: temporary folders, free ports, child processes and s3rver for tests. */
#include "tests/support/testenv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char *s3s_test_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/s3shard-%s-XXXXXX", base && *base ? base : "/tmp",
             tag ? tag : "t");
    char *p = mkdtemp(tmpl);
    assert_non_null(p);
    char *out = strdup(p);
    assert_non_null(out);
    return out;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void s3s_test_rmtree(const char *path)
{
    if (path != NULL)
        nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

int s3s_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int s3s_test_wait_http(int port, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 25) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
            static const char req[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
            char b[16];
            if (write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1) &&
                read(fd, b, sizeof(b)) > 0) {
                close(fd);
                return 0;
            }
        }
        close(fd);
        sleep_ms(25);
    }
    return -1;
}

pid_t s3s_test_spawn(char *const argv[], const char *out_path)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* die with the test: a crashed test must not leave s3rver holding
         * ctest's output pipes open until the timeout */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (out_path != NULL) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0)
                _exit(127);
            dup2(fd, 1);
            close(fd);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

int s3s_test_run(char *const argv[], const char *out_path)
{
    pid_t pid = s3s_test_spawn(argv, out_path);
    if (pid < 0)
        return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

const char *s3s_test_bin(const char *name, char *buf, size_t bufsize)
{
    const char *d = getenv("S3SHARD_BUILD_DIR");
    snprintf(buf, bufsize, "%s/%s", d ? d : ".", name);
    return buf;
}

int s3s_test_s3rver_start(s3s_test_s3rver *srv, const char *const *buckets)
{
    memset(srv, 0, sizeof(*srv));
    const char *js = getenv("S3SHARD_S3RVER_JS");
    if (js == NULL || access(js, R_OK) != 0) {
        fprintf(stderr, "s3rver not found at %s: run scripts/install-deps.sh\n",
                js ? js : "$S3SHARD_S3RVER_JS (unset)");
        return -1;
    }
    srv->dir = s3s_test_tmpdir("s3rver");
    for (int attempt = 0; attempt < 5; attempt++) {
        srv->port = s3s_test_free_port();
        char port[16];
        snprintf(port, sizeof(port), "%d", srv->port);
        char *argv[64];
        int n = 0;
        argv[n++] = "node";
        argv[n++] = "--openssl-legacy-provider";
        argv[n++] = (char *)js;
        argv[n++] = "-d";
        argv[n++] = srv->dir;
        argv[n++] = "-a";
        argv[n++] = "127.0.0.1";
        argv[n++] = "-p";
        argv[n++] = port;
        argv[n++] = "--silent";
        for (int i = 0; buckets != NULL && buckets[i] != NULL && n < 60; i++) {
            argv[n++] = "--configure-bucket";
            argv[n++] = (char *)buckets[i];
        }
        argv[n] = NULL;
        srv->pid = s3s_test_spawn(argv, NULL);
        if (srv->pid < 0)
            break;
        if (s3s_test_wait_http(srv->port, 15000) == 0) {
            snprintf(srv->endpoint, sizeof(srv->endpoint), "http://127.0.0.1:%d", srv->port);
            return 0;
        }
        kill(srv->pid, SIGKILL);
        waitpid(srv->pid, NULL, 0);
        srv->pid = 0;
    }
    fprintf(stderr, "s3rver did not start\n");
    s3s_test_rmtree(srv->dir);
    free(srv->dir);
    srv->dir = NULL;
    return -1;
}

void s3s_test_s3rver_stop(s3s_test_s3rver *srv)
{
    if (srv->pid > 0) {
        kill(srv->pid, SIGKILL);
        waitpid(srv->pid, NULL, 0);
        srv->pid = 0;
    }
    s3s_test_rmtree(srv->dir);
    free(srv->dir);
    srv->dir = NULL;
}
