#!/usr/bin/env bash
# run.sh BUILD_DIR [SECONDS]: run every fuzz target briefly (default 10 s each)
# over its seed corpus in tests/fuzz/corpus/<target>/. Fails on any crash.
set -euo pipefail
build=$1
secs=${2:-${S3SHARD_FUZZ_SECONDS:-10}}
here=$(cd "$(dirname "$0")" && pwd)
export ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1
status=0
for src in "$here"/*_fuzz.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    bin="$build/tests/fuzz/$name"
    seeds="$here/corpus/$name"
    work=$(mktemp -d)
    [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/ 2>/dev/null || true
    echo "fuzz: $name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
            -print_final_stats=0 "$work" >"$work.log" 2>&1; then
        echo "fuzz: $name FAILED"; tail -50 "$work.log"; status=1
    fi
    rm -rf "$work" "$work.log"
done
exit $status
