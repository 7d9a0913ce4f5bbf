#!/usr/bin/env bash
# records_coord_test.sh: an augmented manifest (source-ref + class, 60 records
# packed 4 to a shard by RecordsPerShard) through a real coordinator and
# s3rver, with real `s3shard consume` and `s3shard run` processes.
# 1. consume, 2 ranks, Dynamic, 2 epochs; rank 1 is SIGKILLed mid-epoch and
#    restarted: per epoch every record is printed (line, bytes, sha256 of
#    its attributes' bytes, checked against the uploaded objects), at most one
#    record twice (the one in flight at the kill), and the ledger covers every
#    record of every shard exactly once ("unit": "records").
# 2. run --coordinator, Pipe + RecordIO, 2 ranks: ShardedByS3Key gives each
#    rank byte for byte the stream `run --static` gives that rank; Dynamic
#    gives the two ranks together every record exactly once per epoch, the
#    same records as the static streams.
# 3. A malformed record line: the coordinator refuses the manifest naming
#    file and line.
set -uo pipefail
source "$S3SHARD_SOURCE_DIR/tests/lib/env.sh"
s3s_env_init
bin="$S3SHARD_BUILD_DIR/s3shard"
coordbin="$S3SHARD_BUILD_DIR/s3shard-coordinator"
tmp=$S3S_TMP
fail() { echo "FAIL: $*"; for f in "$tmp"/*.err; do echo "== $f"; tail -8 "$f"; done; exit 1; }
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_PROFILE S3SHARD_SECRET RANK WORLD_SIZE \
    OMPI_COMM_WORLD_RANK OMPI_COMM_WORLD_SIZE PMI_RANK PMI_SIZE SLURM_PROCID SLURM_NTASKS
export S3SHARD_RESOURCE_CONFIG="$tmp/none.json"

s3s_start_s3rver abk || fail "s3rver"
ep=$S3S_S3RVER_URL
N=60
python3 - "$tmp" $N <<'PY'
import os, random, sys
random.seed(11)
t, n = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(t, "src/img"))
with open(os.path.join(t, "m.jsonl"), "w") as m:
    for i in range(n):
        with open(os.path.join(t, "src/img/%02d.jpg" % i), "wb") as f:
            f.write(os.urandom(random.randint(1, 40000)))
        m.write('{"source-ref": "s3://abk/img/%02d.jpg", "class": %d}\n' % (i, i % 3))
PY
"$bin" --endpoint "$ep" cp --recursive --jobs 4 "$tmp/src/img" s3://abk/img 2>"$tmp/cp.err" ||
    fail "upload"
"$bin" --endpoint "$ep" cp "$tmp/m.jsonl" s3://abk/m/train.jsonl 2>>"$tmp/cp.err" ||
    fail "upload manifest"

job() { # job DISTRIBUTION STATEDIR [MANIFEST]
    cat <<JSON
{"InputDataConfig": [
  {"ChannelName": "train", "InputMode": "Pipe", "RecordWrapperType": "RecordIO",
   "ShuffleConfig": {"Seed": 9},
   "DataSource": {"S3DataSource": {"S3DataType": "AugmentedManifestFile",
     "S3Uri": "s3://abk/m/${3:-train.jsonl}", "AttributeNames": ["source-ref", "class"]}}}],
 "S3Shard": {"StateDir": "$2", "Epochs": 2, "LeaseSeconds": 3,
   "Channels": {"train": {"Distribution": "$1", "RecordsPerShard": 4}}}}
JSON
}

# ---- 1. consume: Dynamic, SIGKILL of a rank ----------------------------------------
job Dynamic "$tmp/js1" >"$tmp/dyn.json"
s3s_start_coord "$tmp/dyn.json" "$tmp/state1" 2 "$ep" 2>>"$tmp/coord.err" ||
    fail "coordinator did not come up"
url=$S3S_COORD_URL
r=()
consume() { # rank
    "$bin" --endpoint "$ep" consume --coordinator "$url" --channel train --rank "$1" \
        --world-size 2 --step-ms 25 >>"$tmp/lines$1" 2>>"$tmp/rank$1.err" &
    r[$1]=$!
    S3S_PIDS+=($!)
}
consume 0
consume 1
for _ in $(seq 200); do [ "$(wc -l <"$tmp/lines1" 2>/dev/null || echo 0)" -ge 8 ] && break; sleep 0.05; done
kill -9 "${r[1]}"
wait "${r[1]}" 2>/dev/null
killed_at=$(wc -l <"$tmp/lines1")
consume 1
wait "${r[0]}" || fail "rank 0 exited with $?"
wait "${r[1]}" || fail "rank 1 exited with $?"
"$bin" status "$url" >"$tmp/status.txt" || fail "status"
grep -q "finished" "$tmp/status.txt" || fail "not finished: $(cat "$tmp/status.txt")"
grep -q " rec " "$tmp/status.txt" || fail "status does not count records: $(cat "$tmp/status.txt")"
"$bin" status "$url" --json >"$tmp/status.json" || fail "status --json"
cat "$tmp/lines0" "$tmp/lines1" >"$tmp/lines"
python3 - "$tmp" $N "$killed_at" <<'PY' || fail "consume coverage"
import hashlib, json, os, sys
t, n, killed_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
assert killed_at >= 1, "rank 1 printed nothing before the kill"
want = {}
for i in range(n):
    b = open(os.path.join(t, "src/img/%02d.jpg" % i), "rb").read() + str(i % 3).encode()
    want[i + 1] = (len(b), hashlib.sha256(b).hexdigest())
st = json.load(open(os.path.join(t, "status.json")))
ch = st["channels"][0]
assert ch["unit"] == "records" and ch["bytes_total"] == n, ch
lines = [l.rstrip("\n").split("\t") for l in open(os.path.join(t, "lines")) if l.strip()]
for e in range(2):
    seen = {}
    for ep, rec, a, b, h in lines:
        if int(ep) != e:
            continue
        assert rec.startswith("line:") and a == "0", (rec, a)
        ln = int(rec[5:])
        assert want[ln] == (int(b), h), ("record bytes", e, ln)
        seen[ln] = seen.get(ln, 0) + 1
    assert set(seen) == set(want), ("records missing", e, sorted(set(want) - set(seen)))
    twice = sum(c - 1 for c in seen.values())
    assert twice <= 1, ("records read twice", e, twice)
    led = json.load(open(os.path.join(t, "state1", "ledger-train-%d.json" % e)))
    assert led["verified"] is True and led["unit"] == "records", led
    cov = {}
    for row in led["rows"]:
        for k in range(row["first"] + row["start"], row["first"] + row["end"]):
            cov[k] = cov.get(k, 0) + 1
    assert sorted(cov) == list(range(n)) and set(cov.values()) == {1}, ("ledger", e, cov)
    assert len({row["shard"] for row in led["rows"]}) == (n + 3) // 4, "RecordsPerShard 4"
    print("epoch", e, "ok:", len(seen), "records,", twice, "read twice")
PY
kill -TERM "$S3S_COORD_PID"; wait "$S3S_COORD_PID"

# ---- 2. run --coordinator vs run --static, Pipe + RecordIO --------------------------
cat >"$tmp/cmd.sh" <<'SH'
#!/usr/bin/env bash
set -e
for e in 0 1; do
    for _ in $(seq 600); do [ -p "$SM_INPUT_DATA_DIR/train_$e" ] && break; sleep 0.05; done
    cat "$SM_INPUT_DATA_DIR/train_$e" >"$OUT.$e"
done
SH
chmod +x "$tmp/cmd.sh"
runranks() { # tag mode(coordinator URL or --static) job world
    local p=() k
    for ((k = 0; k < $4; k++)); do
        if [ "$2" = --static ]; then m=(--static); else m=(--coordinator "$2"); fi
        OUT="$tmp/$1-r$k" "$bin" --endpoint "$ep" run --job "$3" "${m[@]}" --rank $k \
            --world-size "$4" --data-root "$tmp/root-$1-$k" -- "$tmp/cmd.sh" \
            >"$tmp/run-$1-$k.out" 2>"$tmp/run-$1-$k.err" &
        p+=($!)
        S3S_PIDS+=($!)
    done
    for k in "${p[@]}"; do wait "$k" || fail "run $1 exited with $?"; done
}
job ShardedByS3Key "$tmp/js2" >"$tmp/sbk.json"
runranks static-sbk --static "$tmp/sbk.json" 2
s3s_start_coord "$tmp/sbk.json" "$tmp/state2" 2 "$ep" 2>>"$tmp/coord.err" || fail "coordinator 2"
runranks coord-sbk "$S3S_COORD_URL" "$tmp/sbk.json" 2
kill -TERM "$S3S_COORD_PID"; wait "$S3S_COORD_PID"
for k in 0 1; do
    for e in 0 1; do
        cmp -s "$tmp/static-sbk-r$k.$e" "$tmp/coord-sbk-r$k.$e" ||
            fail "ShardedByS3Key rank $k epoch $e: coordinator stream differs from --static"
        [ -s "$tmp/coord-sbk-r$k.$e" ] || fail "ShardedByS3Key rank $k epoch $e: empty"
    done
done
s3s_start_coord "$tmp/dyn.json" "$tmp/state3" 2 "$ep" 2>>"$tmp/coord.err" || fail "coordinator 3"
runranks coord-dyn "$S3S_COORD_URL" "$tmp/dyn.json" 2
kill -TERM "$S3S_COORD_PID"; wait "$S3S_COORD_PID"
python3 - "$tmp" $N <<'PY' || fail "Dynamic Pipe streams"
import collections, struct, sys
t, n = sys.argv[1], int(sys.argv[2])
def records(path):
    data = open(path, "rb").read()
    off, out = 0, []
    while off < len(data):
        recs = []
        for _ in range(2):  # source-ref, class
            magic, lrec = struct.unpack_from("<II", data, off)
            assert magic == 0xced7230a and lrec >> 29 == 0, (path, off)
            k = lrec & ((1 << 29) - 1)
            recs.append(data[off + 8:off + 8 + k])
            off += 8 + ((k + 3) & ~3)
        out.append(tuple(recs))
    return out
for e in range(2):
    static = records("%s/static-sbk-r0.%d" % (t, e)) + records("%s/static-sbk-r1.%d" % (t, e))
    assert len(static) == n and len(set(static)) == n, len(static)
    both = records("%s/coord-dyn-r0.%d" % (t, e)) + records("%s/coord-dyn-r1.%d" % (t, e))
    assert collections.Counter(both) == collections.Counter(static), ("epoch", e, len(both))
    print("epoch", e, "ok:", len(both), "records over 2 ranks")
PY

# ---- 3. a malformed record line -----------------------------------------------------
{ head -n 5 "$tmp/m.jsonl"; echo '{"source-ref": "s3://abk/img/05.jpg", "class": }'; } >"$tmp/bad.jsonl"
"$bin" --endpoint "$ep" cp "$tmp/bad.jsonl" s3://abk/m/bad.jsonl 2>>"$tmp/cp.err" || fail "upload"
job Dynamic "$tmp/js4" bad.jsonl >"$tmp/bad.json"
port=$(s3s_free_port)
if timeout -s KILL 120 "$coordbin" \
    --job "$tmp/bad.json" --listen "tcp://127.0.0.1:$port" --state "$tmp/state4" \
    --world-size 1 --endpoint "$ep" 2>"$tmp/bad.err"; then
    fail "a malformed manifest line was accepted"
fi
grep -q "bad.jsonl:6:" "$tmp/bad.err" || fail "no file:line in: $(cat "$tmp/bad.err")"
echo "records_coord_test: ok"
