#!/usr/bin/env bash
# train_loop_test.sh: examples/train_loop against a real s3rver: two ranks of
# a ShardedByS3Key, shuffled channel over two epochs. Each rank reads its
# share in `s3shard plan`'s order; together they read every object once per
# epoch; every object's FNV-1a hash equals the uploaded file's; a second pass
# with a cache folder serves from the cache; under `s3shard run` the topology
# comes from the variables it exports.
set -euo pipefail
ex="$S3SHARD_BUILD_DIR/examples/example_train_loop"
bin="$S3SHARD_BUILD_DIR/s3shard"
[ -x "$ex" ] || { echo "SKIP: $ex not built"; exit 0; }
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/s3" "$tmp/src/d"
node --openssl-legacy-provider "$S3SHARD_S3RVER_JS" -d "$tmp/s3" -a 127.0.0.1 -p "$port" \
    --silent --configure-bucket exa >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_ENDPOINT_URL="http://127.0.0.1:$port"
unset AWS_PROFILE RANK WORLD_SIZE OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE PMI_RANK PMI_SIZE \
    SLURM_PROCID SLURM_NTASKS S3SHARD_RANK S3SHARD_WORLD_SIZE
for i in $(seq 1 40); do head -c $(((i * 7919) % 30000 + 1)) /dev/urandom >"$tmp/src/d/o$i"; done
head -c 2500000 /dev/urandom >"$tmp/src/big"
"$bin" cp --recursive "$tmp/src" s3://exa/set 2>/dev/null || fail "upload"
cat >"$tmp/job.json" <<JSON
{"InputDataConfig": [{"ChannelName": "train", "ShuffleConfig": {"Seed": 9},
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://exa/set/",
     "S3DataDistributionType": "ShardedByS3Key"}}}],
 "S3Shard": {"StateDir": "$tmp/state", "Epochs": 2, "ShardTargetBytes": 0}}
JSON

# The expected hash of every object (FNV-1a 64 of its bytes).
/usr/bin/python3 - "$tmp/src" >"$tmp/hashes" <<'PY'
import os, sys
root = sys.argv[1]
for d, _, files in os.walk(root):
    for f in files:
        p = os.path.join(d, f)
        h = 0xcbf29ce484222325
        for b in open(p, "rb").read():
            h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
        print("set/" + os.path.relpath(p, root), "%016x" % h)
PY

for r in 0 1; do
    "$ex" --job "$tmp/job.json" --rank $r --world-size 2 --record-bytes 1000 >"$tmp/out$r" 2>"$tmp/err$r" ||
        fail "rank $r: $(cat "$tmp/err$r")"
    for e in 0 1; do
        "$bin" plan --job "$tmp/job.json" --channel train --epoch $e --rank $r --world-size 2 >"$tmp/plan$r.$e"
        awk -v e=$e '$1 == e {print $3}' "$tmp/out$r" | cmp -s - "$tmp/plan$r.$e" ||
            fail "rank $r epoch $e: not the plan's order"
    done
done
for e in 0 1; do
    cat "$tmp/out0" "$tmp/out1" | awk -v e=$e '$1 == e {print $3, $5}' | sort >"$tmp/got$e"
    sort "$tmp/hashes" | cmp -s - "$tmp/got$e" || fail "epoch $e: objects or bytes differ: $(diff <(sort "$tmp/hashes") "$tmp/got$e" | head)"
done
grep -q 'rank 1 of 2: .* items' "$tmp/err1" || fail "summary: $(cat "$tmp/err1")"

# With a cache folder, a second pass makes no GET.
"$ex" --job "$tmp/job.json" --rank 0 --world-size 2 --cache-dir "$tmp/cache" >/dev/null 2>"$tmp/c1" || fail "$(cat "$tmp/c1")"
"$ex" --job "$tmp/job.json" --rank 0 --world-size 2 --cache-dir "$tmp/cache" >"$tmp/c2.out" 2>"$tmp/c2" || fail "$(cat "$tmp/c2")"
grep -q ' 0 GETs' "$tmp/c2" || fail "cached pass made GETs: $(cat "$tmp/c2")"
cmp -s "$tmp/c2.out" "$tmp/out0" || fail "cached pass read other bytes"

# Under `s3shard run`, the rank comes from S3SHARD_RANK / S3SHARD_WORLD_SIZE.
cat >"$tmp/jrun.json" <<JSON
{"InputDataConfig": [{"ChannelName": "train", "InputMode": "Pipe", "ShuffleConfig": {"Seed": 9},
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://exa/set/",
     "S3DataDistributionType": "ShardedByS3Key"}}}],
 "S3Shard": {"StateDir": "$tmp/state", "Epochs": 2, "ShardTargetBytes": 0}}
JSON
"$bin" run --job "$tmp/jrun.json" --static --data-root "$tmp/root" --rank 1 --world-size 2 \
    -- "$ex" --job "$tmp/job.json" >"$tmp/run.out" 2>"$tmp/run.err" || fail "under run: $(cat "$tmp/run.err")"
cmp -s "$tmp/run.out" "$tmp/out1" || fail "under run: not rank 1's items"
echo "train_loop_test: ok"
