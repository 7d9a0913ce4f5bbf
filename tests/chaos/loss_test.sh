#!/usr/bin/env bash
# Whole-cluster loss: in the second epoch, once a quarter of it is committed,
# every rank is SIGKILLed, then the coordinator, and its state dir and the
# nodes' cache folders are deleted; a new coordinator started with only
# --state-uri (no --job, an empty state dir) and new ranks with empty caches
# resume. Proves: the job finishes; every byte of every object is committed
# exactly once per epoch (ledgers before and after the loss); after the loss
# the ranks read exactly the bytes of that epoch that were not committed; and
# the bytes downloaded after the loss are exactly what the new ranks had to
# read (the fault proxy's per-key byte counts: nothing consumed is downloaded
# again).
# Seed 9 is the stale-mirror variant: the loss strikes between two mirror
# uploads (interval 4 s), so the resumed coordinator is behind; it must be
# behind by at most two intervals of progress, and the ranks must read again
# exactly what the mirror lacked, downloading nothing twice.
set -euo pipefail
exec python3 "$S3SHARD_SOURCE_DIR/tests/chaos/chaos.py" --build "$S3SHARD_BUILD_DIR" \
    --s3rver "$S3SHARD_S3RVER_JS" --seeds 7,8,9 --stale-mirror-seeds 9 --objects 600 --total-mb 60 --max-mb 12 \
    --cluster-loss --loss-after 3 --run-timeout 240
