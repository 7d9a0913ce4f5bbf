#!/usr/bin/env bash
# run_coord_test.sh: `s3shard run --coordinator` against a real coordinator and
# s3rver, with real FIFOs and child processes.
# 1. Two ranks, a File channel and a Pipe channel, both Dynamic over 2 epochs:
#    the File channel's files downloaded by the two ranks are every object
#    exactly once (byte-exact); the Pipe streams of the two ranks carry every
#    byte of every epoch, whose ledgers verify; S3SHARD_COORDINATOR is exported.
# 2. FastFile with Dynamic is refused with a message naming both.
# 3. SIGTERM while a slow reader drains a Pipe: the command gets the signal,
#    the coordinator sees one drain, no live lease, and exactly the bytes the
#    FIFO took committed.
# 4. SIGTERM while a File channel waits for the other rank (ShardedByS3Key,
#    world 2, rank 1 never comes): run stops within its drain deadline with
#    128+SIGTERM, without starting the command; the coordinator shows one
#    drain, no live lease, and exactly the files on disk committed.
set -uo pipefail
source "$S3SHARD_SOURCE_DIR/tests/lib/env.sh"
s3s_env_init
bin="$S3SHARD_BUILD_DIR/s3shard"
tmp=$S3S_TMP
fail() { echo "FAIL: $*"; for f in "$tmp"/*.err; do echo "== $f"; tail -8 "$f"; done; exit 1; }
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE S3SHARD_SECRET RANK WORLD_SIZE \
    OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE PMI_RANK PMI_SIZE SLURM_PROCID SLURM_NTASKS
export S3SHARD_RESOURCE_CONFIG="$tmp/none.json"

s3s_start_s3rver data || fail "s3rver"
ep=$S3S_S3RVER_URL
python3 - "$tmp/src" <<'PY'
import os, random, sys
random.seed(21)
d = sys.argv[1]
os.makedirs(os.path.join(d, "sub"))
for i in range(24):
    name = ("sub/" if i % 3 == 0 else "") + "obj%02d.bin" % i
    with open(os.path.join(d, name), "wb") as f:
        f.write(os.urandom(random.randint(1000, 200000)))
PY
"$bin" --endpoint "$ep" cp --recursive --jobs 4 "$tmp/src" s3://data/ds 2>"$tmp/cp.err" ||
    fail "upload"

start_coord() { # job, state dir, world
    s3s_start_coord "$1" "$2" "$3" "$ep" || fail "coordinator did not come up"
    curl_url=$S3S_COORD_URL
    cpid=$S3S_COORD_PID
}

# ---- 1. File + Pipe, Dynamic, two ranks --------------------------------------------
cat >"$tmp/job.json" <<JSON
{"InputDataConfig": [
  {"ChannelName": "files", "InputMode": "File",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/ds/"}}},
  {"ChannelName": "stream", "InputMode": "Pipe", "ShuffleConfig": {"Seed": 4},
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/ds/"}}}],
 "S3Shard": {"StateDir": "$tmp/rstate", "Epochs": 2, "LeaseSeconds": 3, "ShardTargetBytes": 0,
   "Channels": {"files": {"Distribution": "Dynamic"}, "stream": {"Distribution": "Dynamic"}}}}
JSON
start_coord "$tmp/job.json" "$tmp/state" 2
url=$curl_url
cat >"$tmp/cmd.sh" <<'SH'
#!/usr/bin/env bash
set -e
out=$OUT/rank$S3SHARD_RANK
mkdir -p "$out"
[ "$S3SHARD_COORDINATOR" = "$WANT_COORD" ] || { echo "S3SHARD_COORDINATOR=$S3SHARD_COORDINATOR"; exit 3; }
[ "$S3SHARD_STATIC" = 0 ] || exit 4
(cd "$SM_CHANNEL_FILES" && find . -type f | sed 's|^\./||' | sort) >"$out/files"
cp -r "$SM_CHANNEL_FILES" "$out/filesdata"
for e in 0 1; do
    for _ in $(seq 600); do [ -p "$SM_INPUT_DATA_DIR/stream_$e" ] && break; sleep 0.05; done
    cat "$SM_INPUT_DATA_DIR/stream_$e" >"$out/stream$e"
done
SH
chmod +x "$tmp/cmd.sh"
p=()
for k in 0 1; do
    OUT="$tmp/out" WANT_COORD="$url" "$bin" --endpoint "$ep" run --job "$tmp/job.json" \
        --coordinator "$url" --rank $k --world-size 2 --data-root "$tmp/root$k" \
        --cache-dir "$tmp/cache$k" -- "$tmp/cmd.sh" >"$tmp/run$k.out" 2>"$tmp/run$k.err" &
    p+=($!)
    S3S_PIDS+=($!)
done
wait "${p[0]}" || fail "rank 0 run exited with $?"
wait "${p[1]}" || fail "rank 1 run exited with $?"
grep -q "leases from $url" "$tmp/run0.err" || fail "no lease line: $(cat "$tmp/run0.err")"
python3 - "$tmp" <<'PY' || fail "File/Pipe coverage"
import hashlib, json, os, sys
t = sys.argv[1]
src = {}
for dp, _, fs in os.walk(os.path.join(t, "src")):
    for f in fs:
        p = os.path.join(dp, f)
        src[os.path.relpath(p, os.path.join(t, "src"))] = open(p, "rb").read()
got = []
for k in (0, 1):
    fl = [l.strip() for l in open(os.path.join(t, "out", "rank%d" % k, "files")) if l.strip()]
    for f in fl:
        assert open(os.path.join(t, "out", "rank%d" % k, "filesdata", f), "rb").read() == src[f], f
    got += fl
    print("rank %d downloaded %d files" % (k, len(fl)))
assert sorted(got) == sorted(src), ("File share", sorted(got), sorted(src))
total = sum(len(v) for v in src.values())
for e in (0, 1):
    n = sum(os.path.getsize(os.path.join(t, "out", "rank%d" % k, "stream%d" % e)) for k in (0, 1))
    assert n == total, ("pipe bytes", e, n, total)
    led = json.load(open(os.path.join(t, "state", "ledger-stream-%d.json" % e)))
    assert led["verified"] is True
    # every object's bytes appear in some rank's stream of that epoch
    streams = [open(os.path.join(t, "out", "rank%d" % k, "stream%d" % e), "rb").read() for k in (0, 1)]
    for name, data in src.items():
        assert any(data in s for s in streams), ("object not streamed", e, name)
print("File: every object downloaded once; Pipe: %d bytes per epoch over two ranks" % total)
PY
"$bin" status "$url" --json >"$tmp/status1.json" || fail "status"
kill -TERM "$cpid"; wait "$cpid" 2>/dev/null

# ---- 2. FastFile + Dynamic is refused ------------------------------------------------
sed 's/"InputMode": "File"/"InputMode": "FastFile"/' "$tmp/job.json" >"$tmp/jobff.json"
if "$bin" --endpoint "$ep" run --job "$tmp/jobff.json" --coordinator "tcp://127.0.0.1:1" \
    --rank 0 --world-size 1 --data-root "$tmp/rootff" -- true 2>"$tmp/ff.err"; then
    fail "FastFile + Dynamic accepted"
fi
grep -q "FastFile mode with Dynamic distribution" "$tmp/ff.err" || fail "FastFile message: $(cat "$tmp/ff.err")"

# ---- 3. SIGTERM drains a Pipe ------------------------------------------------------
cat >"$tmp/job3.json" <<JSON
{"InputDataConfig": [
  {"ChannelName": "stream", "InputMode": "Pipe",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/ds/"}}}],
 "S3Shard": {"StateDir": "$tmp/rstate3", "Epochs": 1, "LeaseSeconds": 5, "ShardTargetBytes": 0,
   "Channels": {"stream": {"Distribution": "Dynamic"}}}}
JSON
start_coord "$tmp/job3.json" "$tmp/state3" 1
url=$curl_url
cat >"$tmp/slow.py" <<'PY'
import os, signal, sys, time
path, out = sys.argv[1], sys.argv[2]
n = 0
def term(*_):
    open(out, "w").write(str(n))
    sys.exit(42)
signal.signal(signal.SIGTERM, term)
for _ in range(600):
    if os.path.exists(path):
        break
    time.sleep(0.05)
with open(path, "rb") as f:
    while True:
        b = f.read(16384)
        if not b:
            break
        n += len(b)
        if n >= 200000 and not os.path.exists(out + ".started"):
            open(out + ".started", "w").close()
        time.sleep(0.02)
open(out, "w").write(str(n))
PY
"$bin" --endpoint "$ep" run --job "$tmp/job3.json" --coordinator "$url" --rank 0 --world-size 1 \
    --data-root "$tmp/root3" --drain-timeout 10 -- python3 "$tmp/slow.py" "$tmp/root3/stream_0" \
    "$tmp/slow.count" >"$tmp/run3.out" 2>"$tmp/run3.err" &
rp=$!
S3S_PIDS+=($rp)
for _ in $(seq 600); do [ -e "$tmp/slow.count.started" ] && break; sleep 0.05; done
[ -e "$tmp/slow.count.started" ] || fail "the reader did not start reading"
kill -TERM "$rp"
wait "$rp"
rc=$?
[ "$rc" = 42 ] || fail "run after SIGTERM: exit $rc, expected the command's 42"
grep -q "SIGTERM: draining" "$tmp/run3.err" || fail "no drain: $(cat "$tmp/run3.err")"
"$bin" status "$url" --json >"$tmp/status3.json" || fail "status after the drain"
python3 - "$tmp" <<'PY' || fail "drain state"
import json, os, re, sys
t = sys.argv[1]
c = json.load(open(os.path.join(t, "status3.json")))["channels"][0]
err = open(os.path.join(t, "run3.err")).read()
m = re.search(r"(\d+) items, (\d+) bytes streamed \(stopped\)", err)
assert m, err
streamed = int(m.group(2))
read = int(open(os.path.join(t, "slow.count")).read())
total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(os.path.join(t, "src")) for f in fs)
assert c["drains"] == 1 and c["active_leases"] == 0, c
assert 0 < read <= streamed < total, (read, streamed, total)
assert c["bytes_committed"] == streamed, (c["bytes_committed"], streamed)
print("SIGTERM: the reader took %d bytes, the FIFO %d, the coordinator has %d committed of %d"
      % (read, streamed, c["bytes_committed"], total))
PY

# ---- 4. SIGTERM while a File download waits for the other rank -----------------------
kill -TERM "$cpid"; wait "$cpid" 2>/dev/null
cat >"$tmp/job4.json" <<JSON
{"InputDataConfig": [
  {"ChannelName": "files", "InputMode": "File",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/ds/"}}}],
 "S3Shard": {"StateDir": "$tmp/rstate4", "Epochs": 1, "LeaseSeconds": 5, "ShardTargetBytes": 0,
   "Channels": {"files": {"Distribution": "ShardedByS3Key"}}}}
JSON
start_coord "$tmp/job4.json" "$tmp/state4" 2
url=$curl_url
"$bin" --endpoint "$ep" run --job "$tmp/job4.json" --coordinator "$url" --rank 0 --world-size 2 \
    --data-root "$tmp/root4" --drain-timeout 10 -- touch "$tmp/cmd4.ran" \
    >"$tmp/run4.out" 2>"$tmp/run4.err" &
rp=$!
S3S_PIDS+=($rp)
# rank 0 has downloaded its share once the coordinator shows commits and no
# live lease twice in a row: it now waits for rank 1's share
python3 - "$bin" "$url" <<'PY' || fail "rank 0 did not finish its share: $(cat "$tmp/run4.err")"
import json, subprocess, sys, time
quiet = 0
for _ in range(600):
    r = subprocess.run([sys.argv[1], "status", sys.argv[2], "--json"], capture_output=True, text=True)
    c = json.loads(r.stdout)["channels"][0] if r.returncode == 0 else None
    quiet = quiet + 1 if c and c["bytes_committed"] > 0 and c["active_leases"] == 0 else 0
    if quiet >= 3:
        sys.exit(0)
    time.sleep(0.2)
sys.exit(1)
PY
kill -0 "$rp" 2>/dev/null || fail "run did not wait for rank 1: $(cat "$tmp/run4.err")"
t0=$(date +%s.%N)
kill -TERM "$rp"
wait "$rp"
rc=$?
secs=$(python3 -c "import sys; print(round($(date +%s.%N) - $t0, 2))")
[ "$rc" = 143 ] || fail "File run after SIGTERM: exit $rc, expected 143"
python3 -c "import sys; sys.exit(0 if $secs < 10 else 1)" || fail "File run took $secs s to stop"
[ ! -e "$tmp/cmd4.ran" ] || fail "the command ran after a SIGTERM during the download"
grep -q "the command was not started" "$tmp/run4.err" || fail "no stop message: $(cat "$tmp/run4.err")"
"$bin" status "$url" --json >"$tmp/status4.json" || fail "status after the File drain"
python3 - "$tmp" <<'PY' || fail "File drain state"
import json, os, sys
t = sys.argv[1]
c = json.load(open(os.path.join(t, "status4.json")))["channels"][0]
src = os.path.join(t, "src")
total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(src) for f in fs)
root = os.path.join(t, "root4", "files")
have = 0
for dp, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(dp, f)
        rel = os.path.relpath(p, root)
        assert ".s3shard-tmp." not in f, ("temp left", rel)
        assert open(p, "rb").read() == open(os.path.join(src, rel), "rb").read(), rel
        have += os.path.getsize(p)
assert c["drains"] == 1 and c["active_leases"] == 0, c
assert 0 < have < total, (have, total)
assert c["bytes_committed"] == have, (c["bytes_committed"], have)
print("File SIGTERM: %d of %d bytes on disk and committed, drained" % (have, total))
PY
echo "File SIGTERM: stopped in $secs s"
echo ok
