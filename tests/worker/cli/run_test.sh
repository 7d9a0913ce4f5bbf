#!/usr/bin/env bash
# run_test.sh: `s3shard run --static` end to end against a real s3rver, with a
# real FUSE mount, real FIFOs and real child processes:
# - File, FastFile and Pipe channels side by side; the command (a shell
#   script) checks SM_* / S3SHARD_* and reads its data; every byte compared
#   with the uploaded files (sha256): FUSE ls, cat, dd with odd block sizes,
#   random preads (python3), a refused write; Pipe across two epochs in the
#   share's order, RecordIO framing;
# - exit codes (n, 128+signal), SIGTERM forwarded with the mount gone after,
#   the drain deadline, a fake EC2 metadata service whose Spot notice drains,
#   a stale mount cleaned at start, and a path-traversal key refused.
set -euo pipefail
bin="$S3SHARD_BUILD_DIR/s3shard"
tmp=$(mktemp -d)
pid= imds_pid= run_pid=
cleanup() {
    [ -n "$run_pid" ] && kill -9 "$run_pid" 2>/dev/null
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    [ -n "$imds_pid" ] && kill -9 "$imds_pid" 2>/dev/null
    wait 2>/dev/null || true
    for m in $(awk '{print $5}' /proc/self/mountinfo | grep "^$tmp/" || true); do
        fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
mounted() { awk '{print $5}' /proc/self/mountinfo | grep -qx "$1"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

have_fuse=1
grep -q '^FUSE3_FOUND:INTERNAL=1' "$S3SHARD_BUILD_DIR/CMakeCache.txt" || have_fuse=0
[ -e /dev/fuse ] || have_fuse=0

port=$(free_port)
mkdir -p "$tmp/s3"
node --openssl-legacy-provider "$S3SHARD_S3RVER_JS" -d "$tmp/s3" -a 127.0.0.1 -p "$port" \
    --silent --configure-bucket run >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE RANK WORLD_SIZE OMPI_COMM_WORLD_RANK \
    OMPI_COMM_WORLD_SIZE PMI_RANK PMI_SIZE SLURM_PROCID SLURM_NTASKS AWS_EC2_METADATA_SERVICE_ENDPOINT
export S3SHARD_RESOURCE_CONFIG="$tmp/none.json"
s3() { "$bin" --endpoint "http://127.0.0.1:$port" "$@"; }
# Background runs start the program itself (not the function, whose subshell
# would take the signals meant for s3shard).
S3=("$bin" --endpoint "http://127.0.0.1:$port")

# The dataset: a big file, odd sizes, folders, many small files, a folder marker.
src="$tmp/src"
mkdir -p "$src/sub/deeper" "$src/small"
head -c 3000000 /dev/urandom >"$src/a.bin"
printf 'hello\n' >"$src/sub/b.txt"
head -c 1048583 /dev/urandom >"$src/sub/deeper/c.bin"
: >"$src/empty"
for i in $(seq 1 24); do head -c $((i * 997)) /dev/urandom >"$src/small/s$i"; done
s3 cp --recursive "$src" s3://run/data/train 2>/dev/null || fail "upload"
curl -sf -X PUT --data-binary '' "http://127.0.0.1:$port/run/data/train/emptydir/" || fail "marker"
(cd "$src" && find . -type f | sed 's|^\./||' | sort) >"$tmp/all_files"

cat >"$tmp/job.json" <<JSON
{"InputDataConfig": [
  {"ChannelName": "train", "InputMode": "FastFile",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://run/data/train/"}}},
  {"ChannelName": "val-set", "InputMode": "File",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://run/data/train/"}}},
  {"ChannelName": "stream", "InputMode": "Pipe", "ShuffleConfig": {"Seed": 5},
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://run/data/train/",
     "S3DataDistributionType": "ShardedByS3Key"}}}],
 "S3Shard": {"StateDir": "$tmp/state", "Epochs": 2, "ShardTargetBytes": 0}}
JSON
if [ $have_fuse -eq 0 ]; then
    echo "no FUSE here: FastFile parts skipped"
    sed -i 's/"FastFile"/"File"/' "$tmp/job.json"
fi

# What rank 1 of 2 must see through its pipes, epoch by epoch (plan order).
for e in 0 1; do
    s3 plan --job "$tmp/job.json" --channel stream --epoch $e --rank 1 --world-size 2 >"$tmp/keys$e"
    : >"$tmp/expect$e"
    # (folder markers, keys ending in '/', are in the plan but never streamed)
    while read -r k; do
        case "$k" in */) continue ;; esac
        cat "$src/${k#data/train/}" >>"$tmp/expect$e"
    done <"$tmp/keys$e"
    [ -s "$tmp/keys$e" ] || fail "empty share for epoch $e"
done
cmp -s "$tmp/keys0" "$tmp/keys1" && fail "epochs 0 and 1 in the same order"

# The training command: checks its environment and reads every channel.
cat >"$tmp/check.sh" <<'SH'
set -eu
die() { echo "CHECK FAILED: $*" >&2; exit 99; }
[ "$SM_CHANNELS" = '["train", "val-set", "stream"]' ] || [ "$SM_CHANNELS" = '["train","val-set","stream"]' ] || die "SM_CHANNELS=$SM_CHANNELS"
[ "$SM_HOSTS" = '["algo-1","algo-2"]' ] || die "SM_HOSTS=$SM_HOSTS"
[ "$SM_CURRENT_HOST" = algo-2 ] || die "SM_CURRENT_HOST=$SM_CURRENT_HOST"
[ "$SM_INPUT_DATA_DIR" = "$ROOT" ] || die "SM_INPUT_DATA_DIR=$SM_INPUT_DATA_DIR"
[ "$SM_CHANNEL_TRAIN" = "$ROOT/train" ] || die "SM_CHANNEL_TRAIN=$SM_CHANNEL_TRAIN"
[ "$SM_CHANNEL_VAL_SET" = "$ROOT/val-set" ] || die "SM_CHANNEL_VAL_SET=${SM_CHANNEL_VAL_SET:-}"
[ "$SM_CHANNEL_STREAM" = "$ROOT/stream" ] || die "SM_CHANNEL_STREAM=$SM_CHANNEL_STREAM"
[ "$S3SHARD_RANK" = 1 ] && [ "$S3SHARD_WORLD_SIZE" = 2 ] && [ "$S3SHARD_LOCAL_RANK" = 1 ] || die "rank vars"
[ "$S3SHARD_EPOCH" = 0 ] && [ "$S3SHARD_EPOCHS" = 2 ] && [ "$S3SHARD_DATA_ROOT" = "$ROOT" ] || die "epoch/root vars"
[ "$S3SHARD_TOPOLOGY" = flags ] || die "S3SHARD_TOPOLOGY=$S3SHARD_TOPOLOGY"
for ch in train val-set; do
    d="$ROOT/$ch"
    (cd "$d" && find . -type f | sed 's|^\./||' | sort) >"$T/files_$ch"
    cmp -s "$T/files_$ch" "$T/all_files" || die "$ch lists $(cat "$T/files_$ch")"
    [ ! -e "$d/emptydir" ] || die "$ch: the folder marker became a path"
    (cd "$d" && sha256sum $(cat "$T/all_files")) >"$T/sum_$ch"
    (cd "$SRC" && sha256sum $(cat "$T/all_files")) | cmp -s - "$T/sum_$ch" || die "$ch: bytes differ"
done
# FastFile: ls sizes, dd with odd block sizes, random preads, no writes.
ls -l "$ROOT/train/sub/deeper/c.bin" | grep -q ' 1048583 ' || die "ls size"
[ "$(dd if="$ROOT/train/a.bin" bs=4097 2>/dev/null | sha256sum)" = "$(sha256sum <"$SRC/a.bin")" ] || die "dd bs=4097"
[ "$(dd if="$ROOT/train/sub/deeper/c.bin" bs=13 skip=7 2>/dev/null | sha256sum)" = \
  "$(dd if="$SRC/sub/deeper/c.bin" bs=13 skip=7 2>/dev/null | sha256sum)" ] || die "dd bs=13 skip=7"
/usr/bin/python3 - "$ROOT/train" "$SRC" <<'PY' || die "random pread"
import os, random, sys
mnt, src = sys.argv[1], sys.argv[2]
rnd = random.Random(7)
for rel in ["a.bin", "sub/deeper/c.bin", "small/s17"]:
    a, b = os.open(os.path.join(mnt, rel), os.O_RDONLY), os.open(os.path.join(src, rel), os.O_RDONLY)
    size = os.fstat(b).st_size
    for _ in range(300):
        off = rnd.randrange(0, size + 10)
        n = rnd.choice([1, 3, 4096, 4097, 65536, 200000])
        if os.pread(a, n, off) != os.pread(b, n, off):
            sys.exit("pread %s at %d, %d bytes differs" % (rel, off, n))
    os.close(a); os.close(b)
PY
# Every file part-read at once, round robin, after dropping the mount's page
# cache: each file's reader (made at its first read, as the mount answers
# no OPEN) stays idle between reads, and with S3SHARD_FASTFILE_MAX_IDLE=4 the
# idle ones are closed and made again all along.
/usr/bin/python3 - "$ROOT/train" "$SRC" "$T/all_files" <<'PY' || die "interleaved reads"
import os, sys
mnt, src, listing = sys.argv[1], sys.argv[2], sys.argv[3]
rels = open(listing).read().split()
fds, want, got = {}, {}, {}
for rel in rels:
    fds[rel] = os.open(os.path.join(mnt, rel), os.O_RDONLY)
    os.posix_fadvise(fds[rel], 0, 0, os.POSIX_FADV_DONTNEED)
    want[rel] = open(os.path.join(src, rel), "rb").read()
    got[rel] = b""
more = True
while more:
    more = False
    for rel in rels:
        if len(got[rel]) < len(want[rel]):
            got[rel] += os.pread(fds[rel], 150000, len(got[rel]))
            more = True
for rel in rels:
    if got[rel] != want[rel]:
        sys.exit("%s: %d bytes read, differ" % (rel, len(got[rel])))
    os.close(fds[rel])
PY
if touch "$ROOT/train/new" 2>/dev/null; then die "a write to the mount succeeded"; fi
# Pipe: both epochs, each read once, in the share's order.
cat "$ROOT/stream_0" >"$T/got0"
for _ in $(seq 100); do [ -p "$ROOT/stream_1" ] && break; sleep 0.05; done
cat "$ROOT/stream_1" >"$T/got1"
exit 7
SH
root="$tmp/root"
set +e
ROOT="$root" T="$tmp" SRC="$src" S3SHARD_FASTFILE_MAX_IDLE=4 s3 run --job "$tmp/job.json" --static --data-root "$root" \
    --rank 1 --world-size 2 --local-rank 1 --hosts algo-1,algo-2 --current-host algo-2 \
    -- sh "$tmp/check.sh" 2>"$tmp/run.err"
rc=$?
set -e
[ $rc -eq 7 ] || fail "exit code $rc, want 7: $(cat "$tmp/run.err")"
cmp -s "$tmp/got0" "$tmp/expect0" || fail "pipe epoch 0 bytes differ"
cmp -s "$tmp/got1" "$tmp/expect1" || fail "pipe epoch 1 bytes differ"
mounted "$root/train" && fail "FastFile mount left after exit"
grep -q '"epochs_done": 2' "$tmp/state/progress/stream.rank1.json" || fail "progress: $(cat "$tmp/state/progress/stream.rank1.json")"
[ -e "$root/stream_0" ] && fail "epoch 0's FIFO left: $(ls "$root")"

# A second run skips the complete File-mode files.
s3 run --job "$tmp/job.json" --static --data-root "$root" --rank 0 --world-size 1 \
    -- true 2>"$tmp/run2.err" || fail "second run: $(cat "$tmp/run2.err")"
grep -q 'channel val-set (File): 0 files, 0 bytes downloaded, 28 already there' "$tmp/run2.err" ||
    fail "File restart: $(cat "$tmp/run2.err")"

# Exit codes: a signal death is 128+N; a missing command is 127.
cat >"$tmp/j1.json" <<JSON
{"InputDataConfig": [{"ChannelName": "train", "InputMode": "File",
   "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://run/data/train/sub/"}}}],
 "S3Shard": {"StateDir": "$tmp/state1"}}
JSON
set +e
s3 run --job "$tmp/j1.json" --static --data-root "$tmp/r1" --rank 0 --world-size 1 -- sh -c 'kill -KILL $$' 2>/dev/null
rc=$?
[ $rc -eq 137 ] || fail "killed child: exit $rc, want 137"
s3 run --job "$tmp/j1.json" --static --data-root "$tmp/r1" --rank 0 --world-size 1 -- /no/such/cmd 2>"$tmp/e"
rc=$?
[ $rc -eq 127 ] || fail "missing command: exit $rc"
grep -q 'cannot run /no/such/cmd' "$tmp/e" || fail "$(cat "$tmp/e")"
s3 run --job "$tmp/j1.json" --static 2>/dev/null
[ $? -eq 2 ] || fail "no command: want usage error 2"
s3 run --job "$tmp/j1.json" --static --coordinator tcp://127.0.0.1:1 -- true 2>/dev/null
[ $? -eq 2 ] || fail "--static with --coordinator: want usage error 2"
# Topology from the environment (Open MPI) when no flags are given.
OMPI_COMM_WORLD_RANK=0 OMPI_COMM_WORLD_SIZE=1 s3 run --job "$tmp/j1.json" --static --data-root "$tmp/r1" \
    -- sh -c '[ "$S3SHARD_TOPOLOGY" = openmpi ]' 2>/dev/null
[ $? -eq 0 ] || fail "topology from Open MPI variables"
set -e

# SIGTERM: forwarded to the command, which exits 42; the mount is gone after.
# wait_for waits for a file to appear (the command says it is ready).
wait_for() { for _ in $(seq 300); do [ -e "$1" ] && return 0; sleep 0.1; done; fail "timeout waiting for $1"; }
cat >"$tmp/term.sh" <<'SH'
trap 'echo "got TERM" >"$T/term.seen"; exit 42' TERM
[ -n "${FF:-}" ] && ls "$SM_CHANNEL_TRAIN" >/dev/null
touch "$T/ready"
while :; do sleep 0.1; done
SH
jt="$tmp/job.json"
[ $have_fuse -eq 1 ] && sed 's/"File"/"FastFile"/' "$tmp/j1.json" >"$tmp/jff.json" || cp "$tmp/j1.json" "$tmp/jff.json"
rm -f "$tmp/ready"
FF=$have_fuse T="$tmp" "${S3[@]}" run --job "$tmp/jff.json" --static --data-root "$tmp/rt" --rank 0 --world-size 1 \
    -- sh "$tmp/term.sh" 2>"$tmp/term.err" &
run_pid=$!
wait_for "$tmp/ready"
[ $have_fuse -eq 1 ] && { mounted "$tmp/rt/train" || fail "not mounted while running"; }
kill -TERM $run_pid
set +e
wait $run_pid
rc=$?
set -e
run_pid=
[ $rc -eq 42 ] || fail "SIGTERM: exit $rc, want 42: $(cat "$tmp/term.err")"
grep -q 'got TERM' "$tmp/term.seen" || fail "SIGTERM not forwarded"
grep -q 'draining' "$tmp/term.err" || fail "no drain message: $(cat "$tmp/term.err")"
mounted "$tmp/rt/train" && fail "mount left after SIGTERM"

# SIGINT and SIGHUP from another process are forwarded too (the command dies of them).
# (bash starts background jobs with SIGINT ignored, which exec keeps: undo that.)
for sig in INT HUP; do
    rm -f "$tmp/ready"
    T="$tmp" env --default-signal=INT "${S3[@]}" run --job "$tmp/j1.json" --static --data-root "$tmp/r1" --rank 0 --world-size 1 \
        -- sh -c 'touch "$T/ready"; exec sleep 60' 2>/dev/null &
    run_pid=$!
    wait_for "$tmp/ready"
    sleep 0.2
    kill -$sig $run_pid
    set +e
    wait $run_pid
    rc=$?
    set -e
    run_pid=
    want=$((128 + $(kill -l $sig)))
    [ $rc -eq $want ] || fail "SIG$sig: exit $rc, want $want"
done

# The drain deadline: a command that ignores SIGTERM is killed after it.
rm -f "$tmp/ready"
T="$tmp" "${S3[@]}" run --job "$tmp/jff.json" --static --data-root "$tmp/rt" --rank 0 --world-size 1 \
    --drain-timeout 1 -- sh -c 'trap "" TERM; touch "$T/ready"; while :; do sleep 0.1; done' 2>"$tmp/dl.err" &
run_pid=$!
wait_for "$tmp/ready"
kill -TERM $run_pid
set +e
wait $run_pid
rc=$?
set -e
run_pid=
[ $rc -eq 137 ] || fail "drain deadline: exit $rc, want 137"
grep -q 'did not exit within the 1 s drain deadline' "$tmp/dl.err" || fail "$(cat "$tmp/dl.err")"
mounted "$tmp/rt/train" && fail "mount left after the deadline"

# A fake EC2 metadata service: 404 twice, then a Spot notice; it checks the IMDSv2 token.
iport=$(free_port)
cat >"$tmp/imds.py" <<'PY'
import http.server, sys
state = {"gets": 0}
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_PUT(self):
        ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self.send_response(200 if ok else 400); body = b"TOKEN42" if ok else b""
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        if self.path != "/latest/meta-data/spot/instance-action" or self.headers.get("X-aws-ec2-metadata-token") != "TOKEN42":
            self.send_response(401); self.send_header("Content-Length", "0"); self.end_headers(); return
        state["gets"] += 1
        if state["gets"] < 3:
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        body = b'{"action": "terminate", "time": "2026-11-26T10:00:00Z"}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
/usr/bin/python3 "$tmp/imds.py" "$iport" &
imds_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 1' "http://127.0.0.1:$iport/latest/api/token" && break; sleep 0.1; done
rm -f "$tmp/term.seen"
set +e
FF=$have_fuse T="$tmp" s3 run --job "$tmp/jff.json" --static --data-root "$tmp/rt" --rank 0 --world-size 1 \
    --imds-endpoint "http://127.0.0.1:$iport" --spot-interval 1 -- sh "$tmp/term.sh" 2>"$tmp/spot.err"
rc=$?
set -e
[ $rc -eq 42 ] || fail "Spot notice: exit $rc, want 42: $(cat "$tmp/spot.err")"
grep -q 'got TERM' "$tmp/term.seen" || fail "Spot notice: no SIGTERM to the command"
grep -q 'EC2 Spot interruption notice: draining' "$tmp/spot.err" || fail "$(cat "$tmp/spot.err")"
mounted "$tmp/rt/train" && fail "mount left after the Spot drain"
kill $imds_pid; wait $imds_pid 2>/dev/null || true; imds_pid=

# A stale mount (a run killed with SIGKILL) is cleaned up by the next run.
if [ $have_fuse -eq 1 ]; then
    rm -f "$tmp/ready"
    T="$tmp" "${S3[@]}" run --job "$tmp/jff.json" --static --data-root "$tmp/rt" --rank 0 --world-size 1 \
        -- sh -c 'touch "$T/ready"; exec sleep 60' 2>/dev/null &
    run_pid=$!
    wait_for "$tmp/ready"
    kill -KILL $run_pid
    wait $run_pid 2>/dev/null || true
    run_pid=
    pkill_child=$(pgrep -f 'exec sleep 60' || true)
    mounted "$tmp/rt/train" || fail "no stale mount to clean (test setup)"
    s3 run --job "$tmp/jff.json" --static --data-root "$tmp/rt" --rank 0 --world-size 1 \
        -- sh -c 'cmp "$SM_CHANNEL_TRAIN/b.txt" "$1"' sh "$src/sub/b.txt" 2>"$tmp/stale.err" ||
        fail "run over a stale mount: $(cat "$tmp/stale.err")"
    mounted "$tmp/rt/train" && fail "mount left after the stale cleanup"
fi

# A key that would leave the channel folder is refused, naming the key, before the command runs.
printf '[{"prefix": "s3://run/data/"}, "train/a.bin", "../outside.bin"]' >"$tmp/m.json"
s3 cp "$tmp/m.json" s3://run/manifests/evil.json 2>/dev/null
cat >"$tmp/jevil.json" <<JSON
{"InputDataConfig": [{"ChannelName": "evil", "InputMode": "File",
   "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": "s3://run/manifests/evil.json"}}}],
 "S3Shard": {"StateDir": "$tmp/state3", "Channels": {"evil": {"ManifestMetadata": "None"}}}}
JSON
set +e
s3 run --job "$tmp/jevil.json" --static --data-root "$tmp/r3" --rank 0 --world-size 1 \
    -- touch "$tmp/ran" 2>"$tmp/evil.err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "unsafe key: exit $rc: $(cat "$tmp/evil.err")"
grep -q "data/../outside.bin" "$tmp/evil.err" || fail "the refused key is not named: $(cat "$tmp/evil.err")"
[ ! -e "$tmp/ran" ] || fail "the command ran despite an unsafe key"
echo "run_test: ok"
