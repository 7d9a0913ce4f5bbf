#!/bin/bash
# bench/s3_ls.sh: `s3shard ls --recursive` over 10,000 keys against `rclone lsf -R`,
# on bare loopback and through s3shard-faultproxy adding a first-byte delay to
# every request (real S3 has 10-30 ms), for two layouts: flat (10,000 keys in one
# folder) and nested (100 folders x 100 keys, like class folders). Prints medians,
# ratios and s3rver's CPU seconds per listing; not a test.
#   bench/s3_ls.sh [--keys N] [--runs R] [--delay-ms D] [--folders F]
# Needs a build (S3SHARD_BUILD_DIR, default ./build) with s3shard and s3shard-faultproxy.
set -u
KEYS=10000 RUNS=3 DELAY=10 FOLDERS=100
while [ $# -gt 0 ]; do
  case $1 in
    --keys) KEYS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --delay-ms) DELAY=$2; shift 2 ;;
    --folders) FOLDERS=$2; shift 2 ;;
    *) echo "usage: $0 [--keys N] [--runs R] [--delay-ms D] [--folders F]" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/bench_lib.sh"
s3s_env_init
s3s_start_s3rver bench >/dev/null || exit 1
S3RVER_PID=${S3S_PIDS[-1]}
s3s_start_faultproxy "$S3S_S3RVER_PORT" --delay_ms "$DELAY" || exit 1
t0=$(date +%s)
bench_put_many "$S3S_S3RVER_URL/bench/data/k" "$KEYS" || { echo "upload failed" >&2; exit 1; }
bench_put_nested "$S3S_S3RVER_URL/bench/nested" "$FOLDERS" $((KEYS / FOLDERS)) ||
  { echo "upload failed" >&2; exit 1; }
NKEYS=$((FOLDERS * (KEYS / FOLDERS)))
echo "setup: $KEYS flat + $NKEYS nested keys uploaded in $(($(date +%s) - t0)) s (s3rver $S3S_S3RVER_PORT, proxy $S3S_FP_PORT)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
have=1 LIB=$S3SHARD_BUILD_DIR/bench/s3_client_bench
if bench_have_s3shard ls; then
  ours() { count_ok "$S3SHARD_BIN" --endpoint "$1" --path-style ls --recursive "s3://bench/$2/"; }
elif [ -x "$LIB" ]; then
  echo "note: no 's3shard ls' yet: measuring the library (bench/s3_client_bench, s3s_s3_list_parallel)"
  ours() { count_ok "$LIB" "$1" ls bench "$2/"; }
else
  have=0; echo "note: neither 's3shard ls' nor bench/s3_client_bench: s3shard column n/a"
fi

WANT=$KEYS
count_ok() { # count_ok CMD...: run, check the number of lines is WANT
  local n
  n=$("$@" 2>/dev/null | wc -l)
  [ "$n" = "$WANT" ] || { echo "wrong count: $n lines from $1" >&2; return 1; }
}
# nested: --files-only, or rclone prints the folders as lines too (same requests).
peer() {
  if [ "$2" = data ]; then count_ok bench_rclone "$1" lsf -R b:bench/data/
  else count_ok bench_rclone "$1" lsf -R --files-only "b:bench/$2/"; fi
}
# timed CMD...: "wall_s s3rver_cpu_s" of one run.
timed() {
  local c0 c1 w
  c0=$(bench_pid_cpu "$S3RVER_PID")
  w=$(bench_time "$@") || return 1
  c1=$(bench_pid_cpu "$S3RVER_PID")
  echo "$w $(calc "($c1 - $c0) / 100")"
}

printf '\n%-24s %10s %8s %7s %10s %8s %7s %8s\n' scenario "s3shard s" "keys/s" "cpu s" \
  "rclone s" "keys/s" "cpu s" ratio
for layout in flat nested; do
  if [ $layout = flat ]; then dir=data WANT=$KEYS; else dir=nested WANT=$NKEYS; fi
  for scen in loopback "delay ${DELAY}ms"; do
    if [ "$scen" = loopback ]; then ep=$S3S_S3RVER_URL; else ep=$S3S_FP_URL; fi
    a=() b=() ac=() bc=()
    for ((r = 0; r < RUNS; r++)); do
      if [ $have = 1 ]; then read -r w c < <(timed ours "$ep" $dir); a+=("$w"); ac+=("$c"); fi
      read -r w c < <(timed peer "$ep" $dir); b+=("$w"); bc+=("$c")
    done
    mb=$(bench_median "${b[@]}") mbc=$(bench_median "${bc[@]}")
    if [ $have = 1 ]; then
      ma=$(bench_median "${a[@]}") mac=$(bench_median "${ac[@]}")
      printf '%-24s %10s %8.0f %7s %10s %8.0f %7s %7.2fx\n' "$layout $scen" "$ma" \
        "$(calc "$WANT / $ma")" "$mac" "$mb" "$(calc "$WANT / $mb")" "$mbc" "$(calc "$mb / $ma")"
    else
      printf '%-24s %10s %8s %7s %10s %8.0f %7s %8s\n' "$layout $scen" n/a n/a n/a "$mb" \
        "$(calc "$WANT / $mb")" "$mbc" n/a
    fi
  done
done
echo "(medians of $RUNS runs; cpu s = s3rver's CPU seconds per listing; ratio = rclone time / s3shard time;"
echo " goals: >= 1.5x loopback, >= 4x with delay; load average now: $(cut -d' ' -f1-3 /proc/loadavg))"
