#!/usr/bin/env bash
# A revoked lease is not an error for `s3shard consume` (issue 6; the soaks saw
# ranks exit 1 "leases revoked" after coordinator restarts).
#
# One rank reads one 24 MiB object (3 blocks) through the fault proxy at
# 1 MB/s, committing only at the object's end (--commit-bytes 0). Mid-object
# the rank is SIGSTOPped, the object is overwritten in S3 (new ETag), the
# coordinator is SIGKILLed and restarted on its state dir (every lease
# expires), and the rank continues: its next block's GET fails (the ETag
# changed) on an item whose lease is dead. The rank must drop the item and
# lease again (not exit 1); once it says so, the object's original bytes are
# put back (same ETag), and the rank reads it again from the start under its
# new lease (a read that fails under a live lease is retried, with a pause,
# up to 3 times). Then: the rank exits 0, the job is finished, the ledger
# covers the object exactly once, every line the rank printed has the sha256
# of the original bytes (nothing of the overwritten object is printed), the
# last one the whole object, and its summary says what happened. Without the
# fix the rank exits 1 at the first failed read.
set -uo pipefail
source "$S3SHARD_SOURCE_DIR/tests/lib/env.sh"
s3s_env_init
bin="$S3SHARD_BUILD_DIR/s3shard"
coordbin="$S3SHARD_BUILD_DIR/s3shard-coordinator"
tmp=$S3S_TMP
fail() { echo "FAIL: $*"; for f in "$tmp"/*.err; do echo "== $f"; tail -8 "$f"; done; exit 1; }
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE S3SHARD_SECRET

s3s_start_s3rver data || fail "s3rver"
s3s_start_faultproxy "$S3S_S3RVER_PORT" || fail "faultproxy"
direct=$S3S_S3RVER_URL
ep=$S3S_FP_URL
mkdir -p "$tmp/src"
head -c $((24 << 20)) /dev/urandom >"$tmp/src/big.bin"
head -c $((24 << 20)) /dev/urandom >"$tmp/other.bin"
"$bin" --endpoint "$direct" cp "$tmp/src/big.bin" s3://data/ds/big.bin 2>"$tmp/cp.err" ||
    fail "upload"

cat >"$tmp/job.json" <<JSON
{"InputDataConfig": [{"ChannelName": "a",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/ds/"}}}],
 "S3Shard": {"Epochs": 1, "LeaseSeconds": 3,
   "Channels": {"a": {"Distribution": "Dynamic", "ShardTargetBytes": 0}}}}
JSON
url="tcp://127.0.0.1:$(s3s_free_port)"
start_coord() {
    "$coordbin" --job "$tmp/job.json" --listen "$url" --state "$tmp/state" --world-size 1 \
        --endpoint "$direct" 2>>"$tmp/coord.err" &
    cpid=$!
    S3S_PIDS+=($cpid)
    for _ in $(seq 300); do "$bin" status "$url" >/dev/null 2>&1 && return 0; sleep 0.05; done
    fail "the coordinator did not come up"
}
start_coord

s3s_fp_config "$S3S_FP_PORT" bandwidth=1000000 || fail "proxy config"
"$bin" --endpoint "$ep" consume --coordinator "$url" --channel a --rank 0 --world-size 1 \
    --commit-bytes 0 >"$tmp/lines" 2>"$tmp/rank.err" &
rp=$!
S3S_PIDS+=($rp)
# mid-object: 1 MiB of the first block has come (the next block is asked for
# at about 7 MiB)
python3 - "$S3S_FP_PORT" <<'PY' || fail "the rank did not start reading"
import json, sys, time, urllib.request
for _ in range(600):
    try:
        st = json.load(urllib.request.urlopen(
            "http://127.0.0.1:%s/__faultproxy/stats" % sys.argv[1], timeout=5))
        if sum(k.get("bytes_down", 0) for k in st.get("keys", {}).values()) >= 1 << 20:
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
kill -STOP "$rp"
# Delete, then put: s3rver rewrites an object's file in place, so a GET still
# streaming it (the block in flight) would send the new bytes under the old
# ETag, a torn object no real S3 serves. After an unlink the stream keeps
# reading the old file. (s3rver does not check signatures.)
del_obj() {
    local d
    d=$(date -u +%Y%m%dT%H%M%SZ)
    curl -sf -X DELETE -H "x-amz-date: $d" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
        -H "Authorization: AWS4-HMAC-SHA256 Credential=S3RVER/${d:0:8}/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0" \
        "$direct/data/ds/big.bin" >/dev/null
}
del_obj || fail "delete"
"$bin" --endpoint "$direct" cp "$tmp/other.bin" s3://data/ds/big.bin 2>>"$tmp/cp.err" ||
    fail "overwrite"
kill -9 "$cpid"
wait "$cpid" 2>/dev/null
start_coord
kill -CONT "$rp"

# the rank drops the revoked item (old behaviour: it exited 1 here)
said="the lease was revoked: dropped|reading it again"
for _ in $(seq 1200); do
    grep -Eq "$said" "$tmp/rank.err" && break
    kill -0 "$rp" 2>/dev/null || break
    sleep 0.05
done
grep -Eq "$said" "$tmp/rank.err" ||
    fail "the rank did not drop the revoked item (alive: $(kill -0 "$rp" 2>/dev/null && echo yes || echo no))"
del_obj || fail "delete"
"$bin" --endpoint "$direct" cp "$tmp/src/big.bin" s3://data/ds/big.bin 2>>"$tmp/cp.err" ||
    fail "restore"
s3s_fp_config "$S3S_FP_PORT" bandwidth=0 || fail "proxy config"
wait "$rp"
rc=$?
[ "$rc" = 0 ] || fail "consume exited $rc after a revoked lease"
grep -q "the lease was revoked: dropped" "$tmp/rank.err" ||
    echo "note: the revocation was seen after a retry of the read"
grep -Eq "leases revoked|reads retried" "$tmp/rank.err" || fail "no revocation in the summary"
"$bin" status "$url" --json >"$tmp/status.json" || fail "status"
python3 - "$tmp" <<'PY' || fail "coverage"
import hashlib, json, os, sys
t = sys.argv[1]
data = open(os.path.join(t, "src", "big.bin"), "rb").read()
st = json.load(open(os.path.join(t, "status.json")))
assert st["finished"] is True, st["finished"]
led = json.load(open(os.path.join(t, "state", "ledger-a-0.json")))
assert led["verified"] is True
rows = sorted((r["start"], r["end"]) for r in led["rows"] if r["key"] == "ds/big.bin")
assert rows == [(0, len(data))], rows
lines = [l.rstrip("\n").split("\t") for l in open(os.path.join(t, "lines")) if l.strip()]
assert lines, "no line"
for e, key, a, b, h in lines:  # nothing of the overwritten object is printed
    assert key == "ds/big.bin" and h == hashlib.sha256(data[int(a):int(b)]).hexdigest(), (a, b)
assert (int(lines[-1][2]), int(lines[-1][3])) == (0, len(data)), lines
print("revoked item dropped, read again under a new lease: %d line(s), ledger exact" % len(lines))
PY
sed -n "/s3shard consume:/p; /^consume:/p" "$tmp/rank.err"
echo ok
