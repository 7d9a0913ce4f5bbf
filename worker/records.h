/* records.h: augmented-manifest records turned into items (internal).
 *
 * s3s__source_records_create wraps a source of records (descriptions with
 * bucket "", key the record's JSON object, holding its AttributeNames in
 * order, and line: what the static source gives for a records snapshot)
 * into a source of items, one per attribute, record after record and within
 * a record in attribute order: the order SageMaker's Pipe mode streams them.
 *
 * - A "-ref" attribute (name ending in "-ref") holds an s3://bucket/key URI;
 *   its item is that object, with its size and ETag from a HEAD, and is then
 *   read like any object: fetch threads, prefetch, block cache. The HEADs run
 *   on resolver threads (each with its own S3 connection) up to `ahead`
 *   records in front of the caller, in record order, so the lookahead keeps
 *   fetching while the training loop reads.
 * - Any other attribute's item carries the attribute's value as compact JSON
 *   in data (bucket "", key the attribute name, no ETag): no request at all.
 * - A failed HEAD (missing object, bucket that does not exist, access
 *   denied, ...) or a malformed URI is returned by next() when its record's
 *   turn comes (never earlier: the records before it are served first), as
 *   "MANIFEST:LINE: attribute \"NAME\" (URI): what failed".
 * - Progress is kept per record: the record is committed done in the inner
 *   source once each of its attribute items is done; the first item that is
 *   released releases the record (a coordinator would hand the whole record
 *   out again). Partial offsets are not passed on.
 * - Over a coordinator's leases (an inner source with valid/drain/fetched)
 *   these pass through: an item is valid while its record's lease is; a
 *   record whose lease was revoked is dropped when its turn comes (with
 *   the rest of its attributes: the coordinator re-issues the record whole
 *   from the lease's last committed record), and a commit of an attribute
 *   of a dropped record fails with S3S_ESTALE; drain drains the inner source
 *   and ends this one (S3S_EEOF).
 *
 * Like every source, it is called under the worker's source lock, one call
 * at a time; the resolver threads only touch the records' resolution state,
 * under the source's own mutex. */
#ifndef S3S_WORKER_RECORDS_H
#define S3S_WORKER_RECORDS_H

#include "s3shard/s3.h"
#include "worker/source.h"

/* s3s__source_records_create makes the expander. inner is taken over on
 * success only. manifest names the manifest in messages (copied). s3 gives
 * the resolvers' client options (strings copied). threads: resolver threads
 * (1 .. 64); ahead: records resolved ahead of the caller (1 .. 65536).
 * S3S_EINVAL, S3S_ENOMEM, or the S3 client's creation error. */
int s3s__source_records_create(s3s__source **out, s3s__source *inner, const char *manifest,
                               const s3s_s3_opts *s3, unsigned threads, unsigned ahead,
                               s3s__errbuf *eb);

#endif
