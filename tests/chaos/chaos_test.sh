#!/usr/bin/env bash
# The chaos suite in CI: a fixed set of seeds of whole 3-epoch jobs (2 channels,
# 2 nodes x 2 ranks, s3rver behind the fault proxy) under random SIGKILLs of
# ranks, nodes and the coordinator, drains and S3 faults; the verifier
# (tests/chaos/chaos.py) fails the test on any violation. A smaller dataset
# than the soak's (tests/chaos/soak), so that CI stays within about a minute.
set -euo pipefail
exec python3 "$S3SHARD_SOURCE_DIR/tests/chaos/chaos.py" --build "$S3SHARD_BUILD_DIR" \
    --s3rver "$S3SHARD_S3RVER_JS" --seeds 11,12,13 --objects 600 --total-mb 60 --max-mb 12 \
    --min-events 4 --max-events 7 --gap-min 0.2 --gap-max 1.2 --run-timeout 240
