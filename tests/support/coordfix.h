/* coordfix.h: an in-process coordinator and a worker leasing from it, the
 * set-up the worker's coordinator-source tests share (a real s3s_coord on a
 * real nng socket, a real s3s_worker against a real s3rver).
 *
 * Failures fail the calling cmocka test (fail_msg). */
#ifndef S3S_TEST_COORDFIX_H
#define S3S_TEST_COORDFIX_H

#include <signal.h>

#include "s3shard/coordinator.h"
#include "s3shard/worker.h"
#include "tests/support/testenv.h"

/* s3s_test_coordfix_start creates and starts a coordinator for job_path with
 * its state in <tmp>/<name> (the same name again replays that journal),
 * listening on url, world size 1, sources on srv. */
s3s_coord *s3s_test_coordfix_start(const char *tmp, const char *name, const char *job_path,
                                   const char *url, const s3s_test_s3rver *srv);

/* s3s_test_coordfix_worker creates a worker of channel "train", rank 0 of 1,
 * leasing from url, reading from srv over `connections` connections. */
s3s_worker *s3s_test_coordfix_worker(const char *url, const s3s_test_s3rver *srv,
                                     unsigned connections);

/* s3s_test_coordfix_worker_cancel: the same, with opts.cancel = cancel. */
s3s_worker *s3s_test_coordfix_worker_cancel(const char *url, const s3s_test_s3rver *srv,
                                            unsigned connections, volatile sig_atomic_t *cancel);

#endif
