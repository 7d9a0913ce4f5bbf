#!/usr/bin/env bash
# worker_bench.sh: the worker's two standard measures against a local s3rver.
#   1. 2,000 objects of 40 KB read in assignment order (objects/s)
#   2. one 1 GiB object read sequentially (MB/s)
# plus the cached re-read of each (same cache folder, a new process).
#
# usage: bench/worker_bench.sh [BUILD_DIR]   (default build-rel; configure it with
#        cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release)
# Env: SMALL_COUNT (2000), SMALL_SIZE (40000), LARGE_SIZE (1073741824),
#      CONNECTIONS (16), ENDPOINT (skip starting s3rver: use this one; bucket must exist).
# The peers (s3fs, rclone) are run by the lead's comparison script on the same
# server; this script prints our lines only.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build-rel}
bin=$build/bench/worker_bench
[ -x "$bin" ] || { echo "build $bin first" >&2; exit 2; }
small_count=${SMALL_COUNT:-2000}
small_size=${SMALL_SIZE:-40000}
large_size=${LARGE_SIZE:-1073741824}
conns=${CONNECTIONS:-16}
bucket=bench
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${ENDPOINT:-}" ]; then
    port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    mkdir -p "$work/s3"
    node --openssl-legacy-provider "$here/tools/node_modules/s3rver/bin/s3rver.js" \
        -d "$work/s3" -a 127.0.0.1 -p "$port" --silent --configure-bucket "$bucket" &
    pid=$!
    ENDPOINT=http://127.0.0.1:$port
    for _ in $(seq 100); do curl -sf "$ENDPOINT/" >/dev/null && break; sleep 0.1; done
fi
echo "# uploading $small_count x $small_size bytes and one $large_size-byte object" >&2
"$bin" put "$ENDPOINT" "$bucket" small/ "$small_count" "$small_size"
"$bin" put "$ENDPOINT" "$bucket" large/ 1 "$large_size"
echo "small cold:   $("$bin" read "$ENDPOINT" "$bucket" small/ --connections "$conns" --cache "$work/cache")"
echo "small cached: $("$bin" read "$ENDPOINT" "$bucket" small/ --connections "$conns" --cache "$work/cache")"
echo "small nocache:$("$bin" read "$ENDPOINT" "$bucket" small/ --connections "$conns")"
echo "large nocache:$("$bin" read "$ENDPOINT" "$bucket" large/ --connections "$conns")"
echo "large cold:   $("$bin" read "$ENDPOINT" "$bucket" large/ --connections "$conns" --cache "$work/cache")"
echo "large cached: $("$bin" read "$ENDPOINT" "$bucket" large/ --connections "$conns" --cache "$work/cache")"
