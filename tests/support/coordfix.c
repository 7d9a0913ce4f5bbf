/* coordfix.c: see coordfix.h. */
#include "tests/support/coordfix.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

s3s_coord *s3s_test_coordfix_start(const char *tmp, const char *name, const char *job_path,
                                   const char *url, const s3s_test_s3rver *srv)
{
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
    s3s_coord_opts o;
    s3s_coord_opts_init(&o);
    o.job_path = job_path;
    o.state_dir = dir;
    o.listen = url;
    o.world_size = 1;
    o.endpoint = srv->endpoint;
    char err[512];
    s3s_coord *c = NULL;
    if (s3s_coord_create(&c, &o, err, sizeof(err)) != 0)
        fail_msg("coordinator: %s", err);
    assert_int_equal(s3s_coord_start(c), 0);
    return c;
}

s3s_worker *s3s_test_coordfix_worker(const char *url, const s3s_test_s3rver *srv,
                                     unsigned connections)
{
    return s3s_test_coordfix_worker_cancel(url, srv, connections, NULL);
}

s3s_worker *s3s_test_coordfix_worker_cancel(const char *url, const s3s_test_s3rver *srv,
                                            unsigned connections, volatile sig_atomic_t *cancel)
{
    s3s_worker_opts o;
    s3s_worker_opts_init(&o);
    o.coordinator = url;
    o.channel = "train";
    o.rank = 0;
    o.world_size = 1;
    o.connections = connections;
    o.cancel = cancel;
    o.s3.endpoint = srv->endpoint;
    o.s3.access_key_id = "S3RVER";
    o.s3.secret_access_key = "S3RVER";
    o.s3.region = "us-east-1";
    s3s_worker *w = NULL;
    s3s_errinfo ei = {0};
    if (s3s_worker_create(&w, &o, &ei) != 0)
        fail_msg("worker: %s", ei.msg);
    return w;
}
