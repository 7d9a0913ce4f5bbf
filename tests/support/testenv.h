/* testenv.h: what tests share: cmocka includes, temporary folders, free ports,
 * and an s3rver instance on loopback started and stopped by the test itself. */
#ifndef S3S_TESTENV_H
#define S3S_TESTENV_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include <cmocka.h>

/* s3s_test_tmpdir makes a fresh folder under $TMPDIR (or /tmp) and returns its
 * path (heap; caller frees). Aborts the test on failure. */
char *s3s_test_tmpdir(const char *tag);
/* s3s_test_rmtree removes a folder and everything below it. */
void s3s_test_rmtree(const char *path);
/* s3s_test_free_port returns a TCP port on 127.0.0.1 free at the time of the call. */
int s3s_test_free_port(void);
/* s3s_test_wait_http polls http://127.0.0.1:port/ until it answers or timeout_ms passes.
 * Returns 0 when it answered. */
int s3s_test_wait_http(int port, int timeout_ms);

/* An s3rver process with its data in a temporary folder. */
typedef struct s3s_test_s3rver {
    pid_t pid;
    int port;
    char *dir;
    char endpoint[64]; /* "http://127.0.0.1:PORT" */
} s3s_test_s3rver;

/* s3s_test_s3rver_start starts s3rver (path from $S3SHARD_S3RVER_JS) on a free
 * loopback port with the given buckets created, and waits until it answers.
 * buckets is a NULL-terminated list. Returns 0, or -1 (with a message on stderr). */
int s3s_test_s3rver_start(s3s_test_s3rver *srv, const char *const *buckets);
/* s3s_test_s3rver_stop kills the server (SIGKILL), reaps it and removes its folder. */
void s3s_test_s3rver_stop(s3s_test_s3rver *srv);

/* s3s_test_spawn runs argv (argv[0] searched in PATH) with stdout to out_path
 * (NULL: inherit) and returns its pid, or -1. */
pid_t s3s_test_spawn(char *const argv[], const char *out_path);
/* s3s_test_run runs argv to completion and returns its exit status (or 128+sig). */
int s3s_test_run(char *const argv[], const char *out_path);
/* s3s_test_bin returns "$S3SHARD_BUILD_DIR/name" in a static buffer per call site. */
const char *s3s_test_bin(const char *name, char *buf, size_t bufsize);

#endif
