#!/bin/bash
# bench/s3_cat.sh: `s3shard cat` of a 1 GiB object against `curl` and `rclone cat`,
# on bare loopback and through s3shard-faultproxy capping each connection at
# 100 MB/s (as S3 roughly does). Also measures curl through the proxy with no
# fault or cap: the proxy's own overhead. Prints medians and ratios; not a test.
#   bench/s3_cat.sh [--size-mb N] [--runs R] [--cap BYTES_PER_S]
set -u
SIZE_MB=1024 RUNS=3 CAP=100M
while [ $# -gt 0 ]; do
  case $1 in
    --size-mb) SIZE_MB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --cap) CAP=$2; shift 2 ;;
    *) echo "usage: $0 [--size-mb N] [--runs R] [--cap 100M]" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/bench_lib.sh"
s3s_env_init
s3s_start_s3rver bench >/dev/null || exit 1
s3s_start_faultproxy "$S3S_S3RVER_PORT" || exit 1 # no fault: overhead
FREE_PORT=$S3S_FP_PORT FREE_URL=$S3S_FP_URL
s3s_start_faultproxy "$S3S_S3RVER_PORT" --bandwidth "$CAP" || exit 1
CAP_URL=$S3S_FP_URL
BYTES=$((SIZE_MB * 1048576))
head -c "$BYTES" /dev/urandom >"$S3S_TMP/big"
want=$(sha256sum <"$S3S_TMP/big" | cut -d' ' -f1)
mapfile -t H < <(bench_auth_headers)
curl -sS --fail -o /dev/null -T "$S3S_TMP/big" "${H[@]}" "$S3S_S3RVER_URL/bench/big" || exit 1
rm -f "$S3S_TMP/big"
echo "setup: ${SIZE_MB} MiB object uploaded (s3rver $S3S_S3RVER_PORT, proxies $FREE_PORT, $S3S_FP_PORT)"
have=1 LIB=$S3SHARD_BUILD_DIR/bench/s3_client_bench
if bench_have_s3shard cat; then
  ours() { "$S3SHARD_BIN" --endpoint "$1" --path-style cat s3://bench/big; }
elif [ -x "$LIB" ]; then
  echo "note: no 's3shard cat' yet: measuring the library (bench/s3_client_bench, s3s_s3_get_parallel)"
  ours() { "$LIB" "$1" cat bench big 2>/dev/null; }
else
  have=0; echo "note: neither 's3shard cat' nor bench/s3_client_bench: s3shard rows n/a"
fi
curl_get() { curl -sS --fail "$1/bench/big"; }
rclone_cat() { bench_rclone "$1" cat b:bench/big; }
# One checked run of each tool first: the right bytes, or the numbers mean nothing.
for t in ours curl_get rclone_cat; do
  [ $t = ours ] && [ $have = 0 ] && continue
  got=$($t "$S3S_S3RVER_URL" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "$t returned wrong bytes" >&2; exit 1; }
done

mbps() { calc "$BYTES / $1 / 1000000"; }
row() { # row SCENARIO LABEL TOOL URL
  local v=() r
  for ((r = 0; r < RUNS; r++)); do v+=("$(bench_time "$3" "$4")"); done
  local m; m=$(bench_median "${v[@]}")
  printf '%-16s %-26s %8s %10.0f\n' "$1" "$2" "$m" "$(mbps "$m")"
  echo "$m" >"$S3S_TMP/last"
}
declare -A LABEL=([ours]="s3shard cat" [curl_get]="curl" [rclone_cat]="rclone cat")
printf '\n%-16s %-26s %8s %10s\n' scenario tool "median s" "MB/s"
declare -A T
for scen in loopback "cap $CAP/conn"; do
  if [ "$scen" = loopback ]; then url=$S3S_S3RVER_URL; else url=$CAP_URL; fi
  for t in ours curl_get rclone_cat; do
    [ $t = ours ] && [ $have = 0 ] && { printf '%-16s %-26s %8s %10s\n' "$scen" "s3shard cat" n/a n/a; continue; }
    row "$scen" "${LABEL[$t]}" $t "$url"
    T["$scen/$t"]=$(cat "$S3S_TMP/last")
  done
  if [ "$scen" = loopback ]; then
    row "$scen" "curl via proxy (no fault)" curl_get "$FREE_URL"
    T[proxy]=$(cat "$S3S_TMP/last")
  fi
done
echo
printf 'fault proxy overhead (curl via proxy / curl direct, time): %.2fx\n' \
  "$(calc "${T[proxy]} / ${T[loopback/curl_get]}")"
if [ $have = 1 ]; then
  for scen in loopback "cap $CAP/conn"; do
    c=${T["$scen/curl_get"]} r=${T["$scen/rclone_cat"]} o=${T["$scen/ours"]}
    best=$c; [ "$(calc "$r < $c")" = 1 ] && best=$r
    printf '%-16s s3shard vs curl %.2fx, vs rclone %.2fx, vs the faster %.2fx\n' "$scen" \
      "$(calc "$c / $o")" "$(calc "$r / $o")" "$(calc "$best / $o")"
  done
fi
echo "(medians of $RUNS runs; ratio = peer time / s3shard time; goals: >= 1x loopback, >= 3x capped)"
