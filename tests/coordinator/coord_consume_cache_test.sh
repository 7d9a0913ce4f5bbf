#!/usr/bin/env bash
# `s3shard consume --cache-dir`: a rank SIGKILLed mid-epoch and restarted with
# its cache folder kept downloads nothing it already held. s3rver behind the
# fault proxy (which counts GETs per key); one rank, 2 Dynamic epochs of 40
# objects (one cache block each). After the kill the test looks in the cache
# folder for the objects whose block is complete there; then the restarted rank
# must GET exactly the other objects (once each), never a held one, and read
# the second epoch from the cache alone. Every consume line is re-hashed and
# the lines of each epoch cover every byte; the coordinator's ledgers verify.
set -uo pipefail
source "$S3SHARD_SOURCE_DIR/tests/lib/env.sh"
s3s_env_init
bin="$S3SHARD_BUILD_DIR/s3shard"
tmp=$S3S_TMP
fail() { echo "FAIL: $*"; for f in "$tmp"/*.err; do echo "== $f"; tail -5 "$f"; done; exit 1; }

s3s_start_s3rver data || fail "s3rver"
s3s_start_faultproxy "$S3S_S3RVER_PORT" || fail "fault proxy"
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE S3SHARD_SECRET
ep=$S3S_FP_URL

s3s_make_objects "$tmp/src" 11 40 20000 400000
"$bin" --endpoint "$S3S_S3RVER_URL" cp --recursive --jobs 4 "$tmp/src" s3://data/ds 2>"$tmp/cp.err" ||
    fail "upload"

cat >"$tmp/job.json" <<JSON
{"InputDataConfig": [
  {"ChannelName": "train", "ShuffleConfig": {"Seed": 3},
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/ds/"}}}],
 "S3Shard": {"Epochs": 2, "LeaseSeconds": 3,
   "Channels": {"train": {"Distribution": "Dynamic", "ShardTargetBytes": 0}}}}
JSON
s3s_start_coord "$tmp/job.json" "$tmp/state" 1 "$S3S_S3RVER_URL" || fail "coordinator"
url=$S3S_COORD_URL

consume() { # log suffix
    "$bin" --endpoint "$ep" consume --coordinator "$url" --channel train --rank 0 \
        --world-size 1 --step-ms 15 --commit-bytes 65536 --cache-dir "$tmp/cache" \
        >>"$tmp/lines" 2>"$tmp/consume$1.err" &
    cpid=$!
    S3S_PIDS+=($cpid)
}

# Run 1: SIGKILL once a dozen objects are through.
echo "setup done after ${SECONDS}s"; s3s_fp_reset "$S3S_FP_PORT"
consume 1
for _ in $(seq 300); do
    [ "$(cut -f2 "$tmp/lines" 2>/dev/null | sort -u | wc -l)" -ge 12 ] && break
    sleep 0.05
done
kill -9 "$cpid"
wait "$cpid" 2>/dev/null || true
s3s_fp_stats "$S3S_FP_PORT" >"$tmp/fp1.json"
# What the cache folder holds now (block 0 = the whole object here).
python3 - "$tmp" >"$tmp/held" <<'PY'
import hashlib, os, sys
t = sys.argv[1]
for n in sorted(os.listdir(os.path.join(t, "src"))):
    data = open(os.path.join(t, "src", n), "rb").read()
    etag = hashlib.md5(data).hexdigest()
    h = hashlib.sha256(b"data\0ds/" + n.encode() + b"\0" + etag.encode()).hexdigest()[:32]
    if os.path.exists(os.path.join(t, "cache", "s3shard-cache-v1", h[:2], h + ".0")):
        print("ds/" + n)
PY
held=$(wc -l <"$tmp/held")
[ "$held" -ge 6 ] || fail "only $held objects in the cache after the kill"

# Run 2: same cache folder, to the end of the job.
echo "run 1 killed after ${SECONDS}s"; consume 2
wait "$cpid" || fail "restarted consume exited with $?"
echo "run 2 done after ${SECONDS}s"; s3s_fp_stats "$S3S_FP_PORT" >"$tmp/fp2.json"
"$bin" status "$url" --json >"$tmp/status.json" || fail "status"

python3 - "$tmp" <<'PY' || fail "cache check"
import hashlib, json, os, re, sys
t = sys.argv[1]
src = {"ds/" + n: open(os.path.join(t, "src", n), "rb").read() for n in os.listdir(os.path.join(t, "src"))}
held = set(l.strip() for l in open(os.path.join(t, "held")) if l.strip())
def gets(f):
    d = json.load(open(os.path.join(t, f)))["keys"]
    return {k[len("/data/"):]: v.get("GET", 0) for k, v in d.items() if k.startswith("/data/ds/")}
g1, g2 = gets("fp1.json"), gets("fp2.json")
for k in src:
    a, b = g1.get(k, 0), g2.get(k, 0)
    if k in held:
        assert a == 1 and b == 1, ("held object fetched again", k, a, b)
    else:
        assert b - a == 1 and b <= 2, ("object not held: one GET after the restart", k, a, b)
summary = open(os.path.join(t, "consume2.err")).read()
m = re.search(r"(\d+) GETs, (\d+) bytes from S3, (\d+) bytes from the cache", summary)
assert m, summary
n_gets, s3_bytes, cache_bytes = map(int, m.groups())
assert n_gets == len(src) - len(held), (n_gets, len(src), len(held))
assert s3_bytes == sum(len(src[k]) for k in src if k not in held), s3_bytes
# the second epoch came from the cache entirely (plus the held part of the first)
assert cache_bytes >= sum(len(v) for v in src.values()), (cache_bytes,)
lines = [l.rstrip("\n").split("\t") for l in open(os.path.join(t, "lines")) if l.strip()]
for e in range(2):
    cov = {}
    for ep, key, a, b, h in lines:
        if int(ep) != e:
            continue
        a, b = int(a), int(b)
        assert hashlib.sha256(src[key][a:b]).hexdigest() == h, ("sha", e, key, a, b)
        cov.setdefault(key, []).append((a, b))
    for k, data in src.items():
        at = 0
        for a, b in sorted(cov.get(k, [])):
            assert a <= at, ("line gap", e, k, a, at)
            at = max(at, b)
        assert at == len(data), ("lines short", e, k, at, len(data))
    led = json.load(open(os.path.join(t, "state", "ledger-train-%d.json" % e)))
    assert led["verified"] is True, e
st = json.load(open(os.path.join(t, "status.json")))
assert st["finished"] is True, st
print("held %d of %d objects after the kill; the restart made %d GETs (%d bytes), %d bytes from the cache"
      % (len(held), len(src), n_gets, s3_bytes, cache_bytes))
PY
echo ok
