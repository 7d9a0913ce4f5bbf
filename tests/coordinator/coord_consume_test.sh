#!/usr/bin/env bash
# The coordinator with real `s3shard consume` ranks against a real s3rver:
# 4 ranks over 3 epochs of ~200 objects of mixed sizes (Dynamic); a rank is
# SIGKILLed mid-shard and restarted; the coordinator is SIGKILLed and restarted.
# Every byte of every object must be read exactly once per epoch in the ledger
# (re-hashed against the uploaded bytes in the consume lines), with bytes read
# twice at most one in-flight lease per kill. Then: a SIGTERM drain exits 0,
# a wrong secret is refused, and a coordinator with an empty state dir resumes
# from the S3 mirror alone.
set -euo pipefail
bin="$S3SHARD_BUILD_DIR/s3shard"
coordbin="$S3SHARD_BUILD_DIR/s3shard-coordinator"
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/*.err; do echo "== $f"; tail -5 "$f"; done; exit 1; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

s3port=$(freeport)
mkdir -p "$tmp/s3data"
node --openssl-legacy-provider "$S3SHARD_S3RVER_JS" -d "$tmp/s3data" -a 127.0.0.1 -p "$s3port" \
    --silent --configure-bucket data --configure-bucket state >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$s3port/" >/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE S3SHARD_SECRET
ep="http://127.0.0.1:$s3port"

# ~200 objects: many small, some medium, a few of a few MB.
python3 - "$tmp/src" <<'PY'
import os, random, sys
random.seed(7)
d = sys.argv[1]
os.makedirs(d)
for i in range(200):
    r = random.random()
    n = random.randint(1, 3000) if r < 0.7 else random.randint(3000, 300000) if r < 0.95 else random.randint(1000000, 2500000)
    with open(os.path.join(d, "obj%04d.bin" % i), "wb") as f:
        f.write(os.urandom(n))
PY
"$bin" --endpoint "$ep" cp --recursive --jobs 8 "$tmp/src" s3://data/ds 2>"$tmp/cp.err" || fail "upload"

cat >"$tmp/job.json" <<JSON
{"InputDataConfig": [
  {"ChannelName": "train", "ShuffleConfig": {"Seed": 5},
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/ds/"}}}],
 "S3Shard": {"Epochs": 3, "LeaseSeconds": 3,
   "Channels": {"train": {"Distribution": "Dynamic", "ShardTargetBytes": 0}}}}
JSON

cport=$(freeport)
url="tcp://127.0.0.1:$cport"
start_coord() { # state dir, extra args
    local st=$1; shift
    "$coordbin" --job "$tmp/job.json" --listen "$url" --state "$st" --world-size 4 \
        --endpoint "$ep" "$@" 2>>"$tmp/coord.err" &
    cpid=$!
    pids+=($cpid)
    for _ in $(seq 100); do "$bin" status "$url" >/dev/null 2>&1 && return 0; sleep 0.1; done
    fail "coordinator did not come up"
}
consume() { # rank, output
    "$bin" --endpoint "$ep" consume --coordinator "$url" --channel train --rank "$1" \
        --world-size 4 --step-ms 3 --commit-bytes 262144 >>"$2" 2>>"$tmp/rank$1.err" &
    r[$1]=$!
    pids+=($!)
}

start_coord "$tmp/state" --state-uri s3://state/job1 --mirror-interval-ms 300
r=()
for k in 0 1 2 3; do consume $k "$tmp/lines$k"; done

# SIGKILL rank 1 mid-shard, restart it.
sleep 1.5
kill -9 "${r[1]}"
wait "${r[1]}" 2>/dev/null || true
consume 1 "$tmp/lines1"

# SIGKILL the coordinator, restart it on the same state dir.
sleep 1.5
kill -9 "$cpid"
wait "$cpid" 2>/dev/null || true
start_coord "$tmp/state" --state-uri s3://state/job1 --mirror-interval-ms 300

for k in 0 1 2 3; do
    wait "${r[$k]}" || fail "rank $k exited with $?"
done
"$bin" status "$url" >"$tmp/status.txt" || fail "status"
grep -q "finished" "$tmp/status.txt" || fail "not finished: $(cat "$tmp/status.txt")"
"$bin" status "$url" --json >"$tmp/status.json" || fail "status --json"
"$bin" status "$url" --ledger >"$tmp/ledger.json" || fail "status --ledger"
cat "$tmp"/lines? >"$tmp/lines"

python3 - "$tmp" <<'PY' || fail "coverage check"
import hashlib, json, os, sys, glob
t = sys.argv[1]
src = {("ds/" + n): open(os.path.join(t, "src", n), "rb").read() for n in os.listdir(os.path.join(t, "src"))}
biggest = max(len(v) for v in src.values())
lines = [l.rstrip("\n").split("\t") for l in open(os.path.join(t, "lines")) if l.strip()]
st = json.load(open(os.path.join(t, "status.json")))
assert st["finished"] is True, st
json.load(open(os.path.join(t, "ledger.json")))
for e in range(3):
    # the ledger: every byte of every object exactly once
    led = json.load(open(os.path.join(t, "state", "ledger-train-%d.json" % e)))
    assert led["verified"] is True, led["epoch"]
    per = {}
    for row in led["rows"]:
        per.setdefault(row["key"], []).append((row["start"], row["end"]))
    assert set(per) == set(src), ("ledger keys", e, len(per), len(src))
    for k, rs in per.items():
        rs.sort()
        at = 0
        for a, b in rs:
            assert a == at, ("ledger gap/overlap", e, k, a, at)
            at = b
        assert at == len(src[k]), ("ledger short", e, k, at, len(src[k]))
    # the consume lines: re-hash every range; union covers every byte
    mine = [l for l in lines if int(l[0]) == e]
    cov = {}
    total = 0
    for ep, key, a, b, h in mine:
        a, b = int(a), int(b)
        assert hashlib.sha256(src[key][a:b]).hexdigest() == h, ("sha", e, key, a, b)
        cov.setdefault(key, []).append((a, b))
        total += b - a
    for k, data in src.items():
        rs = sorted(cov.get(k, []))
        at = 0
        for a, b in rs:
            assert a <= at, ("line gap", e, k, a, at)
            at = max(at, b)
        assert at == len(data), ("lines short", e, k, at, len(data))
    extra = total - sum(len(v) for v in src.values())
    # two kills (a rank, the coordinator with 4 leases in flight): at most one
    # lease (one object here) per lost holder
    assert 0 <= extra <= 5 * biggest, ("read twice", e, extra)
    print("epoch", e, "ok:", len(mine), "lines,", extra, "bytes read twice")
PY

# SIGTERM drains: exit 0, and the coordinator counted a drain.
kill -TERM "$cpid"; wait "$cpid" || fail "coordinator SIGTERM exit $?"
grep -q "journal flushed" "$tmp/coord.err" || fail "no clean stop"

# Whole-state loss: a new coordinator with an empty state dir and no --job
# resumes from the mirror alone (the job is finished: status says so).
"$coordbin" --listen "$url" --state "$tmp/state2" --world-size 4 --endpoint "$ep" \
    --state-uri s3://state/job1 2>>"$tmp/coord.err" &
cpid=$!; pids+=($cpid)
for _ in $(seq 100); do "$bin" status "$url" >/dev/null 2>&1 && break; sleep 0.1; done
"$bin" status "$url" --json >"$tmp/status2.json" || fail "status after mirror resume"
python3 - "$tmp/status2.json" <<'PY' || fail "mirror resume: $(cat "$tmp/status2.json")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["finished"] is True and s["channels"][0]["epoch"] == 2, s
PY
kill -TERM "$cpid"; wait "$cpid" || true

# A drain mid-epoch, with a secret; a wrong secret is refused.
printf 'sesame\n' >"$tmp/secret"; printf 'wrong\n' >"$tmp/wrong"
sed 's/"Epochs": 3/"Epochs": 1/' "$tmp/job.json" >"$tmp/job1.json"
"$coordbin" --job "$tmp/job1.json" --listen "$url" --state "$tmp/state3" --world-size 1 \
    --endpoint "$ep" --secret-file "$tmp/secret" 2>>"$tmp/coord.err" &
cpid=$!; pids+=($cpid)
for _ in $(seq 100); do "$bin" status "$url" --secret-file "$tmp/secret" >/dev/null 2>&1 && break; sleep 0.1; done
if "$bin" status "$url" --secret-file "$tmp/wrong" >/dev/null 2>"$tmp/wrong.err"; then fail "wrong secret accepted"; fi
grep -qi "hmac\|secret" "$tmp/wrong.err" || fail "wrong-secret message: $(cat "$tmp/wrong.err")"
"$bin" --endpoint "$ep" consume --coordinator "$url" --channel train --step-ms 20 \
    --secret-file "$tmp/secret" >"$tmp/drain.lines" 2>"$tmp/drain.err" &
dp=$!; pids+=($dp)
sleep 1.5
kill -TERM "$dp"
wait "$dp" || fail "drained consume exit $?"
grep -q "drained" "$tmp/drain.err" || fail "no drain summary: $(cat "$tmp/drain.err")"
"$bin" status "$url" --json --secret-file "$tmp/secret" >"$tmp/status3.json"
python3 - "$tmp/status3.json" "$tmp/drain.lines" <<'PY' || fail "drain state: $(cat "$tmp/status3.json")"
import json, sys
s = json.load(open(sys.argv[1]))
c = s["channels"][0]
n = sum(int(l.split("\t")[3]) - int(l.split("\t")[2]) for l in open(sys.argv[2]) if l.strip())
assert c["drains"] == 1 and c["active_leases"] == 0, c
assert c["bytes_committed"] == n, (c["bytes_committed"], n)
assert s["refused_auth"] >= 1, s
PY
echo "ok"
