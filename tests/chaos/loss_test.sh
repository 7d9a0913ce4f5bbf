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
# Seed 8 loses the cluster while the mirror is behind (--mirror-interval-ms
# 8000; half a second after an upload everything is SIGKILLed at once, the
# coordinator first): progress
# committed after the mirror's last upload is lost and read again (at most two
# mirror intervals of progress), nothing the mirror had committed is read or
# downloaded again, and coverage stays exact.
set -euo pipefail
exec python3 "$S3SHARD_SOURCE_DIR/tests/chaos/chaos.py" --build "$S3SHARD_BUILD_DIR" \
    --s3rver "$S3SHARD_S3RVER_JS" --seeds 7,8 --stale-mirror-seeds 8 --objects 600 --total-mb 60 --max-mb 12 \
    --cluster-loss --loss-after 3 --run-timeout 240
