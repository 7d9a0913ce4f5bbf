#!/usr/bin/env bash
# The DDP equal-steps contract end to end: a Dynamic channel with
# "EqualSteps": "Drop", then "Pad", 4 ranks of very different speeds
# (--step-ms 0, 2, 10, 40), the slowest rank SIGKILLed mid-epoch and restarted.
# 201 objects over 4 ranks: every rank must commit exactly the quota (50 with
# drop, 51 with pad) in each of the 3 epochs (the coordinator's per-rank count
# in each epoch's ledger), the ranks' own lines must show the same count (the
# restarted rank: at most one more, its piece in flight at the kill), every
# epoch must complete and every line's sha256 must match.
set -euo pipefail
for mode in drop pad; do
    python3 "$S3SHARD_SOURCE_DIR/tests/chaos/chaos.py" --build "$S3SHARD_BUILD_DIR" \
        --s3rver "$S3SHARD_S3RVER_JS" --seeds 5 --objects 402 --total-mb 20 --max-mb 4 \
        --ddp "$mode" --gap-min 2 --gap-max 2 --run-timeout 240
done
