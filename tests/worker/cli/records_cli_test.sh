#!/usr/bin/env bash
# An augmented manifest (in S3, source-ref + label) through the CLI against a
# real s3rver: `s3shard run --static` with a Pipe channel (RecordIO, 2 epochs)
# whose command reads both FIFOs, the stream checked record by record
# (object bytes, then the label's JSON); `s3shard fetch` in File mode and a
# File channel in `s3shard run` refused naming channel, mode and source type;
# a missing -ref object fails naming manifest, line, attribute and URI.
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
    --silent --configure-bucket abk >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE RANK WORLD_SIZE OMPI_COMM_WORLD_RANK \
    OMPI_COMM_WORLD_SIZE PMI_RANK PMI_SIZE SLURM_PROCID SLURM_NTASKS
s3() { "$bin" --endpoint "http://127.0.0.1:$port" "$@"; }

mkdir -p "$tmp/src/img"
: >"$tmp/m.jsonl"
for i in 0 1 2 3 4; do
    head -c $((i * 30011 + 1)) /dev/urandom >"$tmp/src/img/$i.jpg"
    echo "{\"source-ref\": \"s3://abk/img/$i.jpg\", \"class\": $((i % 2)), \"note\": \"n$i\"}" >>"$tmp/m.jsonl"
done
s3 cp --recursive "$tmp/src/img" s3://abk/img 2>/dev/null || fail "upload"
s3 cp "$tmp/m.jsonl" s3://abk/manifests/train.jsonl 2>/dev/null || fail "upload manifest"

job() { # job MODE MANIFEST-URI
    cat <<JSON
{"InputDataConfig": [
  {"ChannelName": "train", "InputMode": "$1", "RecordWrapperType": "RecordIO",
   "DataSource": {"S3DataSource": {"S3DataType": "AugmentedManifestFile", "S3Uri": "$2",
                                   "AttributeNames": ["source-ref", "class"]}}}],
 "S3Shard": {"StateDir": "$tmp/state-$1-${2##*/}", "Epochs": 2}}
JSON
}
job Pipe s3://abk/manifests/train.jsonl >"$tmp/pipe.json"
job File s3://abk/manifests/train.jsonl >"$tmp/file.json"

# Pipe through `s3shard run`: the command reads train_0 then train_1
T="$tmp" s3 run --job "$tmp/pipe.json" --static --data-root "$tmp/root" --rank 0 --world-size 1 \
    -- sh -c 'cat "$SM_CHANNEL_TRAIN"_0 >"$T/out0" && cat "$SM_CHANNEL_TRAIN"_1 >"$T/out1"' \
    2>"$tmp/run.err" || fail "run: $(cat "$tmp/run.err")"
for e in 0 1; do
    python3 - "$tmp/out$e" "$tmp/src/img" <<'PY' || fail "epoch $e stream does not match"
import struct, sys
data = open(sys.argv[1], 'rb').read()
off = 0
def record():
    global off
    magic, lrec = struct.unpack_from('<II', data, off)
    assert magic == 0xced7230a and lrec >> 29 == 0, (hex(magic), lrec >> 29)
    n = lrec & ((1 << 29) - 1)
    payload = data[off + 8:off + 8 + n]
    off += 8 + ((n + 3) & ~3)
    return payload
for i in range(5):  # no ShuffleConfig: manifest order
    assert record() == open('%s/%d.jpg' % (sys.argv[2], i), 'rb').read(), i
    assert record() == str(i % 2).encode(), i
assert off == len(data), (off, len(data))
PY
done

# File mode refuses an augmented manifest (fetch and run), naming channel, mode, type
if s3 fetch --job "$tmp/file.json" --channel train --data-root "$tmp/froot" 2>"$tmp/f.err"; then
    fail "fetch in File mode accepted an augmented manifest"
fi
grep -q 'channel train: InputMode File does not take S3DataType AugmentedManifestFile' "$tmp/f.err" ||
    fail "fetch message: $(cat "$tmp/f.err")"
if s3 run --job "$tmp/file.json" --static --data-root "$tmp/froot" --rank 0 --world-size 1 -- true \
    2>"$tmp/r.err"; then
    fail "run in File mode accepted an augmented manifest"
fi
grep -q 'channel train: InputMode File does not take S3DataType AugmentedManifestFile' "$tmp/r.err" ||
    fail "run message: $(cat "$tmp/r.err")"
[ -e "$tmp/froot/train" ] && fail "File mode wrote something"

# a missing -ref object: the error names manifest, line, attribute and URI
echo '{"source-ref": "s3://abk/img/gone.jpg", "class": 1}' >>"$tmp/m.jsonl"
s3 cp "$tmp/m.jsonl" s3://abk/manifests/bad.jsonl 2>/dev/null || fail "upload bad manifest"
job Pipe s3://abk/manifests/bad.jsonl >"$tmp/bad.json"
if T="$tmp" s3 run --job "$tmp/bad.json" --static --data-root "$tmp/broot" --rank 0 --world-size 1 \
    -- sh -c 'cat "$SM_CHANNEL_TRAIN"_0 >/dev/null; cat "$SM_CHANNEL_TRAIN"_1 >/dev/null' \
    2>"$tmp/b.err"; then
    fail "a missing -ref object went unnoticed"
fi
grep -q 's3://abk/manifests/bad.jsonl:6: attribute "source-ref" (s3://abk/img/gone.jpg)' "$tmp/b.err" ||
    fail "missing-object message: $(cat "$tmp/b.err")"
echo "records_cli_test: ok"
