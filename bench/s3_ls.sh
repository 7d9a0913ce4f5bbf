#!/bin/bash
# bench/s3_ls.sh: `s3shard ls --recursive` over 10,000 keys against `rclone lsf -R`,
# on bare loopback and through s3shard-faultproxy adding a first-byte delay to
# every request (real S3 has 10-30 ms). Prints medians and ratios; not a test.
#   bench/s3_ls.sh [--keys N] [--runs R] [--delay-ms D]
# Needs a build (S3SHARD_BUILD_DIR, default ./build) with s3shard and s3shard-faultproxy.
set -u
KEYS=10000 RUNS=3 DELAY=10
while [ $# -gt 0 ]; do
  case $1 in
    --keys) KEYS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --delay-ms) DELAY=$2; shift 2 ;;
    *) echo "usage: $0 [--keys N] [--runs R] [--delay-ms D]" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/bench_lib.sh"
s3s_env_init
s3s_start_s3rver bench >/dev/null || exit 1
s3s_start_faultproxy "$S3S_S3RVER_PORT" --delay_ms "$DELAY" || exit 1
t0=$(date +%s)
bench_put_many "$S3S_S3RVER_URL/bench/data/k" "$KEYS" || { echo "upload failed" >&2; exit 1; }
echo "setup: $KEYS keys uploaded in $(($(date +%s) - t0)) s (s3rver $S3S_S3RVER_PORT, proxy $S3S_FP_PORT)"
have=1 LIB=$S3SHARD_BUILD_DIR/bench/s3_client_bench
if bench_have_s3shard ls; then
  ours() { count_ok "$S3SHARD_BIN" --endpoint "$1" --path-style ls --recursive s3://bench/data/; }
elif [ -x "$LIB" ]; then
  echo "note: no 's3shard ls' yet: measuring the library (bench/s3_client_bench, s3s_s3_list_parallel)"
  ours() { count_ok "$LIB" "$1" ls bench data/; }
else
  have=0; echo "note: neither 's3shard ls' nor bench/s3_client_bench: s3shard column n/a"
fi

count_ok() { # count_ok CMD...: run, check the number of lines is KEYS
  local n
  n=$("$@" 2>/dev/null | wc -l)
  [ "$n" = "$KEYS" ] || { echo "wrong count: $n lines from $1" >&2; return 1; }
}
peer() { count_ok bench_rclone "$1" lsf -R b:bench/data/; }

printf '\n%-22s %12s %12s %12s %12s %8s\n' scenario "s3shard s" "keys/s" "rclone s" "keys/s" ratio
for scen in loopback "delay ${DELAY}ms"; do
  if [ "$scen" = loopback ]; then ep=$S3S_S3RVER_URL; else ep=$S3S_FP_URL; fi
  a=() b=()
  for ((r = 0; r < RUNS; r++)); do
    [ $have = 1 ] && a+=("$(bench_time ours "$ep")")
    b+=("$(bench_time peer "$ep")")
  done
  mb=$(bench_median "${b[@]}")
  if [ $have = 1 ]; then
    ma=$(bench_median "${a[@]}")
    printf '%-22s %12s %12.0f %12s %12.0f %7.2fx\n' "$scen" "$ma" "$(calc "$KEYS / $ma")" \
      "$mb" "$(calc "$KEYS / $mb")" "$(calc "$mb / $ma")"
  else
    printf '%-22s %12s %12s %12s %12.0f %8s\n' "$scen" n/a n/a "$mb" "$(calc "$KEYS / $mb")" n/a
  fi
done
echo "(medians of $RUNS runs; ratio = rclone time / s3shard time; goals: >= 1.5x loopback, >= 4x with delay)"
