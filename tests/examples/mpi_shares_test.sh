#!/usr/bin/env bash
# mpi_shares_test.sh: examples/mpi_shares under mpirun -np 4: each rank plans
# its own share (no coordinator) and rank 0 checks the gathered shares are
# disjoint and complete (FullyReplicated: everyone has all), for several
# channels, epochs, and with the snapshot made by `s3shard snapshot create`.
set -euo pipefail
bin=${S3SHARD_BUILD_DIR:?}/examples/example_mpi_shares
if ! command -v mpirun >/dev/null || [ ! -x "$bin" ]; then
    echo "SKIP: mpirun or $bin missing (install libopenmpi-dev, build the examples)"
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/data/x"
for i in $(seq 1 150); do head -c $(((i * i * 7919) % 20000 + 1)) /dev/zero >"$work/data/o$i"; done
for i in $(seq 1 30); do echo "$i" >"$work/data/x/s$i"; done
cat >"$work/job.json" <<JSON
{"InputDataConfig": [
  {"ChannelName": "bytes", "ShuffleConfig": {"Seed": 5},
   "DataSource": {"FileSystemDataSource": {"DirectoryPath": "$work/data", "FileSystemType": "FSxLustre"}}},
  {"ChannelName": "count", "ShuffleConfig": {"Seed": -3},
   "DataSource": {"FileSystemDataSource": {"DirectoryPath": "$work/data", "FileSystemType": "EFS"}}},
  {"ChannelName": "full",
   "DataSource": {"FileSystemDataSource": {"DirectoryPath": "$work/data", "FileSystemType": "EFS"}}}],
 "S3Shard": {"StateDir": "$work/state", "Channels": {
   "bytes": {"Distribution": "ShardedByS3Key", "BalanceBy": "bytes", "ShardTargetBytes": 30000},
   "count": {"Distribution": "ShardedByS3Key", "BalanceBy": "count", "ShardTargetBytes": 0}}}}
JSON
# Open MPI's own allocations are not ours to leak-check.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
run() { timeout 120 mpirun --allow-run-as-root --oversubscribe -np 4 "$bin" --job "$work/job.json" "$@"; }
for ch in bytes count full; do
    for epoch in 0 3; do
        out=$(run --channel "$ch" --epoch "$epoch")
        echo "$ch epoch $epoch: $out"
        grep -q '^ok: 180 entries, 4 ranks' <<<"$out" || { echo "FAIL: $out"; exit 1; }
    done
done
"${S3SHARD_BUILD_DIR}/s3shard" snapshot create --source "$work/data" --type Directory --out "$work/d.snap" >/dev/null
out=$(run --channel bytes --epoch 1 --snapshot "$work/d.snap")
grep -q '^ok: 180 entries' <<<"$out" || { echo "FAIL with --snapshot: $out"; exit 1; }
echo "mpi_shares: ok"
