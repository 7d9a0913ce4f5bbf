/* spot.h: the EC2 Spot interruption notice, read from the instance metadata
 * service (IMDS), so a worker can drain before the instance goes away.
 *
 * EC2 posts the notice two minutes before it stops a Spot instance:
 * GET /latest/meta-data/spot/instance-action answers 404 until then, and 200
 * with {"action": "terminate"|"stop"|"hibernate", "time": "2026-...Z"} after.
 * IMDSv2 needs a session token first: PUT /latest/api/token with the header
 * X-aws-ec2-metadata-token-ttl-seconds, then the token in
 * X-aws-ec2-metadata-token on every GET. When the PUT is refused (an IMDSv1-only
 * endpoint) the GET is sent without a token, as the AWS SDKs fall back.
 *
 * The endpoint is, in order: the explicit one, $AWS_EC2_METADATA_SERVICE_ENDPOINT,
 * http://169.254.169.254 (what the AWS SDKs use), so tests point it at a fake.
 *
 * Invariants: the poller thread only reads the metadata service and calls the
 * notice callback at most once, from the poller thread, with no lock held;
 * s3s__spot_stop never returns while the callback runs. Requests time out
 * (timeout_ms) so a missing IMDS (not on EC2) never blocks a stop. */
#ifndef S3S_WORKER_SPOT_H
#define S3S_WORKER_SPOT_H

#include <stdint.h>

#include "common/util/errbuf.h"

#define S3S__IMDS_DEFAULT "http://169.254.169.254"

/* s3s__spot_notice: what one poll saw. */
typedef struct s3s__spot_notice {
    int present; /* 1: a notice is posted */
    char action[32]; /* "terminate", "stop", "hibernate" (as sent, truncated) */
    char time[64]; /* when EC2 acts, ISO 8601 as sent ("" when absent) */
} s3s__spot_notice;

/* s3s__spot_endpoint returns the endpoint to use: explicit when non-NULL and
 * non-empty, else $AWS_EC2_METADATA_SERVICE_ENDPOINT, else the default. The
 * result points at its argument, the environment, or a static string. */
const char *s3s__spot_endpoint(const char *explicit_endpoint);

/* s3s__spot_check polls once: token (IMDSv2), then the instance-action
 * document. Returns 0 with out->present 0 (404) or 1 (200 and a JSON object
 * with a string "action"); S3S_ENETWORK when the service cannot be reached
 * within timeout_ms; S3S_EHTTP for another status; S3S_EPARSE for a 200 whose
 * body is not such a JSON object (at most 4 KiB read). Detail in eb. */
int s3s__spot_check(const char *endpoint, unsigned timeout_ms, s3s__spot_notice *out,
                    s3s__errbuf *eb);

typedef void (*s3s__spot_cb)(void *ud, const s3s__spot_notice *notice);

typedef struct s3s__spot_opts {
    const char *endpoint; /* NULL: s3s__spot_endpoint(NULL) */
    unsigned interval_ms; /* between polls; default (0) 5000 (EC2 advises every 5 s) */
    unsigned timeout_ms; /* per request; default (0) 1000 */
    s3s__spot_cb on_notice; /* called once when a notice appears; required */
    void *ud;
} s3s__spot_opts;

typedef struct s3s__spot s3s__spot;

/* s3s__spot_start starts the poller thread (first poll at once). Errors that
 * a poll meets are logged at debug level and polling goes on: an IMDS that
 * is briefly unreachable must not stop the watch. S3S_EINVAL without a
 * callback, S3S_ENOMEM, S3S_EIO (thread). */
int s3s__spot_start(s3s__spot **out, const s3s__spot_opts *opts, s3s__errbuf *eb);

/* s3s__spot_stop stops and joins the poller (waiting at most one request
 * timeout) and frees it. NULL-safe. */
void s3s__spot_stop(s3s__spot *s);

/* s3s__spot_polls returns how many polls completed (any outcome). */
uint64_t s3s__spot_polls(s3s__spot *s);

#endif
