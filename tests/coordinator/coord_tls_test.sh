#!/usr/bin/env bash
# The coordinator over tls+tcp:// (a self-signed certificate made here with
# openssl req) and ipc://: `s3shard status` works through TLS when it trusts
# the certificate, is refused when it verifies against another CA, and the
# daemon refuses tls+tcp:// without a key. Local dataset: no S3 needed.
set -euo pipefail
bin="$S3SHARD_BUILD_DIR/s3shard"
coordbin="$S3SHARD_BUILD_DIR/s3shard-coordinator"
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$tmp"/*.err 2>/dev/null | tail -20; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

mkdir -p "$tmp/data"
for i in $(seq 1 20); do head -c $((i * 100)) /dev/urandom >"$tmp/data/f$i"; done
cat >"$tmp/job.json" <<JSON
{"InputDataConfig": [{"ChannelName": "train",
   "DataSource": {"FileSystemDataSource": {"DirectoryPath": "$tmp/data", "FileSystemType": "EFS"}}}],
 "S3Shard": {"Epochs": 1, "Channels": {"train": {"Distribution": "Dynamic"}}}}
JSON
# CN only: Debian's nng (mbedTLS) matches the dialed host against the CN when
# the certificate has no DNS subjectAltName (an IP SAN would hide the CN).
for n in a b; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/$n.key" -out "$tmp/$n.pem" -days 1 \
        -subj "/CN=127.0.0.1" 2>/dev/null
done

if "$coordbin" --job "$tmp/job.json" --listen "tls+tcp://127.0.0.1:$port" --state "$tmp/s0" \
    --world-size 1 --tls-cert "$tmp/a.pem" 2>"$tmp/nokey.err"; then fail "tls without a key started"; fi
grep -q "tls-key" "$tmp/nokey.err" || fail "no-key message: $(cat "$tmp/nokey.err")"

url="tls+tcp://127.0.0.1:$port"
"$coordbin" --job "$tmp/job.json" --listen "$url" --state "$tmp/s1" --world-size 1 \
    --tls-cert "$tmp/a.pem" --tls-key "$tmp/a.key" 2>"$tmp/coord.err" &
cpid=$!; pids+=($cpid)
ok=0
for _ in $(seq 100); do
    if "$bin" status "$url" --tls-ca "$tmp/a.pem" >"$tmp/status.txt" 2>"$tmp/st.err"; then ok=1; break; fi
    sleep 0.1
done
[ $ok = 1 ] || fail "status over TLS"
grep -q "train" "$tmp/status.txt" || fail "status table: $(cat "$tmp/status.txt")"
"$bin" status "$url" --json --tls-ca "$tmp/a.pem" | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["channels"][0]["bytes_total"] == 21000, s' ||
    fail "status json over TLS"
if timeout 20 "$bin" status "$url" --tls-ca "$tmp/b.pem" >/dev/null 2>"$tmp/badca.err"; then
    fail "a server with an untrusted certificate was accepted"
fi
kill -TERM "$cpid"; wait "$cpid" || fail "SIGTERM exit"
grep -q "journal flushed" "$tmp/coord.err" || fail "no clean stop"

# ipc://
"$coordbin" --job "$tmp/job.json" --listen "ipc://$tmp/sock" --state "$tmp/s1" --world-size 1 \
    2>"$tmp/coord2.err" &
cpid=$!; pids+=($cpid)
ok=0
for _ in $(seq 100); do "$bin" status "ipc://$tmp/sock" >/dev/null 2>&1 && { ok=1; break; }; sleep 0.1; done
[ $ok = 1 ] || fail "status over ipc"
# the same state dir is locked by the running coordinator
if "$coordbin" --job "$tmp/job.json" --listen "ipc://$tmp/sock2" --state "$tmp/s1" 2>"$tmp/busy.err"; then
    fail "second coordinator on one state dir"
fi
grep -q "in use" "$tmp/busy.err" || fail "busy message: $(cat "$tmp/busy.err")"
kill -TERM "$cpid"; wait "$cpid" || fail "SIGTERM exit (ipc)"
echo ok
