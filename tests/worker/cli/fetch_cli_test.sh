#!/usr/bin/env bash
# `s3shard fetch` against a real s3rver: File mode for two ranks (disjoint,
# complete, byte-equal), a rerun that skips everything, Pipe mode with RecordIO
# read by a reader process across two epochs, and usage errors.
set -euo pipefail
bin="$S3SHARD_BUILD_DIR/s3shard"
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/s3"
node --openssl-legacy-provider "$S3SHARD_S3RVER_JS" -d "$tmp/s3" -a 127.0.0.1 -p "$port" \
    --silent --configure-bucket fbk >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE RANK WORLD_SIZE OMPI_COMM_WORLD_RANK \
    OMPI_COMM_WORLD_SIZE PMI_RANK PMI_SIZE SLURM_PROCID SLURM_NTASKS
s3() { "$bin" --endpoint "http://127.0.0.1:$port" "$@"; }

mkdir -p "$tmp/src/img/cats" "$tmp/src/img/dogs"
for i in $(seq 1 12); do head -c $((i * 1001)) /dev/urandom >"$tmp/src/img/cats/c$i.jpg"; done
for i in $(seq 1 5); do head -c $((i * 70000)) /dev/urandom >"$tmp/src/img/dogs/d$i.jpg"; done
s3 cp --recursive "$tmp/src/img" s3://fbk/data/img 2>/dev/null || fail "upload"

cat >"$tmp/job.json" <<JSON
{"InputDataConfig": [
  {"ChannelName": "train", "InputMode": "File",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://fbk/data/img/",
                                   "S3DataDistributionType": "ShardedByS3Key"}}},
  {"ChannelName": "stream", "InputMode": "Pipe", "RecordWrapperType": "RecordIO",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://fbk/data/img/dogs/"}}}],
 "S3Shard": {"StateDir": "$tmp/state", "Epochs": 2, "ShardTargetBytes": 0}}
JSON

# File mode, two ranks: disjoint and complete, bytes equal
for r in 0 1; do
    s3 fetch --job "$tmp/job.json" --channel train --data-root "$tmp/root$r" --rank $r \
        --world-size 2 --progress log 2>"$tmp/f$r.err" || fail "fetch rank $r: $(cat "$tmp/f$r.err")"
    grep -q 'files (.* bytes) downloaded' "$tmp/f$r.err" || fail "summary: $(cat "$tmp/f$r.err")"
done
(cd "$tmp/root0/train" && find . -type f | sort) >"$tmp/l0"
(cd "$tmp/root1/train" && find . -type f | sort) >"$tmp/l1"
[ -s "$tmp/l0" ] && [ -s "$tmp/l1" ] || fail "a rank got nothing"
sort "$tmp/l0" "$tmp/l1" | uniq -d | grep -q . && fail "a file in both shares"
(cd "$tmp/src/img" && find . -type f | sort) >"$tmp/all"
sort "$tmp/l0" "$tmp/l1" | cmp -s - "$tmp/all" || fail "union is not the dataset"
for r in 0 1; do
    while read -r f; do cmp -s "$tmp/root$r/train/$f" "$tmp/src/img/$f" || fail "bytes of $f"; done <"$tmp/l$r"
done
# a rerun skips everything
s3 fetch --job "$tmp/job.json" --channel train --data-root "$tmp/root0" --rank 0 --world-size 2 \
    --progress none 2>"$tmp/f.err" || fail "rerun"
grep -q ': 0 files (0 bytes) downloaded' "$tmp/f.err" || fail "rerun fetched again: $(cat "$tmp/f.err")"

# Pipe mode (RecordIO from the job), two epochs, read by another process
s3 fetch --job "$tmp/job.json" --channel stream --data-root "$tmp/pipe" 2>"$tmp/p.err" &
fp=$!
for e in 0 1; do
    for _ in $(seq 300); do [ -p "$tmp/pipe/stream_$e" ] && break; sleep 0.05; done
    [ -p "$tmp/pipe/stream_$e" ] || fail "no FIFO stream_$e"
    cat "$tmp/pipe/stream_$e" >"$tmp/out$e"
done
wait $fp || fail "pipe fetch: $(cat "$tmp/p.err")"
python3 - "$tmp/out0" "$tmp/src/img/dogs" <<'PY' || fail "RecordIO stream does not match"
import os, struct, sys
data = open(sys.argv[1], 'rb').read()
files = sorted(os.listdir(sys.argv[2]))
off = 0
for f in files:
    magic, lrec = struct.unpack_from('<II', data, off)
    assert magic == 0xced7230a, hex(magic)
    n = lrec & ((1 << 29) - 1)
    assert lrec >> 29 in (0, 1), "split record in random data is unlikely"
    off += 8
    if lrec >> 29 == 0:
        assert data[off:off + n] == open(os.path.join(sys.argv[2], f), 'rb').read(), f
    off += (n + 3) & ~3
    while lrec >> 29 not in (0, 3):
        magic, lrec = struct.unpack_from('<II', data, off)
        off += 8 + ((lrec & ((1 << 29) - 1)) + 3 & ~3)
assert off == len(data), (off, len(data))
PY
cmp -s "$tmp/out0" "$tmp/out1" || fail "epoch 1 differs from epoch 0 (no shuffle)"

# usage errors
set +e
s3 fetch --channel train 2>/dev/null; [ $? -eq 2 ] || fail "missing --job should exit 2"
s3 fetch --job "$tmp/job.json" --channel nope 2>"$tmp/e"; [ $? -eq 1 ] || fail "unknown channel"
grep -q 'no channel "nope"' "$tmp/e" || fail "$(cat "$tmp/e")"
s3 fetch --job "$tmp/job.json" --channel train --mode fast 2>/dev/null; [ $? -eq 2 ] || fail "bad mode"
set -e
echo ok
