/* proxies.h: the test proxies, started and driven from cmocka tests.
 *
 * - s3shard-faultproxy ($S3SHARD_FAULTPROXY, tests/tools/faultproxy.c): faults
 *   (503 SlowDown, resets, stalls, short bodies), first-byte delay, bandwidth cap,
 *   request counts per key. Configured by flags at start and at run time.
 * - sigv4_verify_proxy.py ($S3SHARD_SIGV4PROXY): checks every request's SigV4
 *   signature with botocore and refuses bad ones with S3's 403 errors.
 * Both listen on 127.0.0.1, print their port on stdout when ready, and are
 * killed (SIGKILL) and reaped by s3s_test_proxy_stop. See docs/testing.md. */
#ifndef S3S_TEST_PROXIES_H
#define S3S_TEST_PROXIES_H

#include <sys/types.h>

typedef struct s3s_test_proxy {
    pid_t pid;
    int port;
    char endpoint[64]; /* "http://127.0.0.1:PORT" */
} s3s_test_proxy;

/* s3s_test_faultproxy_start starts the fault proxy in front of 127.0.0.1:upstream_port.
 * args: NULL or a NULL-terminated list of extra flags ("--fault", "slowdown", ...).
 * Returns 0 once it accepts connections, or -1 with a message on stderr. */
int s3s_test_faultproxy_start(s3s_test_proxy *p, int upstream_port, const char *const *args);
/* s3s_test_sigv4proxy_start starts the verifying proxy (secret S3RVER for key
 * S3RVER unless args say otherwise: "--credentials", "AKID:SECRET"). */
int s3s_test_sigv4proxy_start(s3s_test_proxy *p, int upstream_port, const char *const *args);
/* s3s_test_proxy_stop kills and reaps the proxy. NULL-safe, idempotent. */
void s3s_test_proxy_stop(s3s_test_proxy *p);

/* s3s_test_http does one request on 127.0.0.1:port (Connection: close) and
 * returns the status, or -1. body may be NULL; *out (may be NULL) receives the
 * response body (heap, NUL-terminated; caller frees). */
int s3s_test_http(int port, const char *method, const char *target, const char *body, char **out);

/* s3s_test_faultproxy_config applies "key=value" pairs (newline or '&'
 * separated, see docs/testing.md). Returns 0, or -1 when the proxy refused them. */
int s3s_test_faultproxy_config(const s3s_test_proxy *p, const char *kv);
/* s3s_test_faultproxy_reset zeroes the counters; restore_config also brings back
 * the configuration given at start. */
int s3s_test_faultproxy_reset(const s3s_test_proxy *p, int restore_config);
/* s3s_test_faultproxy_count reads one counter. key NULL: a global counter
 * ("requests", "faults", "connections", "bytes_down", a method "GET", or a fault
 * name "slowdown"); else that key's ("GET", "PUT", "requests", "faults"). The
 * key is the percent-decoded request path, e.g. "/bucket/dir/a b". Returns the
 * count (0 for a key never seen) or -1 on error. */
long s3s_test_faultproxy_count(const s3s_test_proxy *p, const char *key, const char *field);
/* s3s_test_sigv4proxy_count reads "verified", "refused", "unsigned" or "presigned". */
long s3s_test_sigv4proxy_count(const s3s_test_proxy *p, const char *field);
/* s3s_test_sigv4proxy_reset zeroes its counters. */
int s3s_test_sigv4proxy_reset(const s3s_test_proxy *p);

#endif
