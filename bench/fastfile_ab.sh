#!/bin/bash
# bench/fastfile_ab.sh: FastFile read speed of two s3shard builds, interleaved
# run by run on the same s3rver (a shared machine's load hits both alike).
# Not a test. Scenarios as in worker_peers.sh:
#   a  one 1 GiB object, `cat` through a fresh mount, no cache
#   b  2,000 x 40 KB objects, `xargs cat` in assignment order, no cache
#   d  the same two re-read from a filled disk cache through a fresh mount
#
#   bench/fastfile_ab.sh --before BIN --after BIN [--runs 5] [--only "a b d"]
#                        [--large-mb 1024] [--small-count 2000] [--small-size 40000]
#
# Each timed run is `s3shard run` with a FastFile channel whose command times
# the reads (mount and listing not timed). Prints medians and after/before.
set -u
RUNS=5 ONLY="a b d" LARGE_MB=1024 SMALL_COUNT=2000 SMALL_SIZE=40000 BEFORE= AFTER=
while [ $# -gt 0 ]; do
  case $1 in
    --before) BEFORE=$2; shift 2 ;;
    --after) AFTER=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --large-mb) LARGE_MB=$2; shift 2 ;;
    --small-count) SMALL_COUNT=$2; shift 2 ;;
    --small-size) SMALL_SIZE=$2; shift 2 ;;
    *) sed -n '2,14p' "$0" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/bench_lib.sh"
WB=$S3SHARD_BUILD_DIR/bench/worker_bench
for f in "$WB" "$BEFORE" "$AFTER"; do
  [ -x "$f" ] || { echo "needs --before BIN --after BIN and a Release $WB" >&2; exit 2; }
done
bench_fuse_setup ffab || exit 1
URL=$S3S_S3RVER_URL
bench_upload "$WB" "$URL" || exit 1
bench_ff_jobs
# ff BIN large|small CACHE_ARGS: the seconds the command measured, then the
# CPU seconds (user + system) of the whole run: s3shard (mount, listing and
# FUSE threads) and the command, which on a loaded machine moves less than
# the wall time.
ff() {
  local bin=$1 job=$2 cache=$3 cpu
  cpu=$( { TIMEFORMAT='%U %S'; time bench_ff_run "$bin" "$URL" "$job" "$cache" >/dev/null \
    2>"$S3S_TMP/err"; } 2>&1) || { cat "$S3S_TMP/err" >&2; echo nan nan; return; }
  echo "$(awk '{printf "%.3f", $1 / 1000}' "$S3S_TMP/ff.out") $(echo "$cpu" | awk '{printf "%.2f", $1 + $2}')"
}
load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "# $(date -u '+%F %T') UTC; $(nproc) cores; load $(load); runs $RUNS (before/after interleaved)"
echo "# before: $BEFORE"
echo "# after:  $AFTER"
# row NAME UNIT(MB|obj) JOB CACHE_ARGS
row() {
  local name=$1 unit=$2 job=$3 cache=$4 b=() a=() bc=() ac=() r mb ma rb ra x
  for ((r = 0; r < RUNS; r++)); do
    x=$(ff "$BEFORE" "$job" "$cache") && b+=("${x% *}") bc+=("${x#* }")
    x=$(ff "$AFTER" "$job" "$cache") && a+=("${x% *}") ac+=("${x#* }")
  done
  mb=$(bench_median "${b[@]}") ma=$(bench_median "${a[@]}")
  if [ "$unit" = MB ]; then rb=$(calc "$LARGE_BYTES / $mb / 1000000") ra=$(calc "$LARGE_BYTES / $ma / 1000000")
  else rb=$(calc "$SMALL_COUNT / $mb") ra=$(calc "$SMALL_COUNT / $ma"); fi
  printf '%-22s before %7.0f %-5s after %7.0f %-5s = %.2fx   (before: %s; after: %s)\n' "$name" \
    "$rb" "$unit/s" "$ra" "$unit/s" "$(calc "$ra / $rb")" "${b[*]}" "${a[*]}"
  printf '%-22s CPU s (run + command): before %s after %s   (before: %s; after: %s)\n' "" \
    "$(bench_median "${bc[@]}")" "$(bench_median "${ac[@]}")" "${bc[*]}" "${ac[*]}"
}
for s in $ONLY; do
  case $s in
    a) echo "# a: load $(load)"; row "a large loopback" MB large --no-cache ;;
    b) echo "# b: load $(load)"; row "b small loopback" obj small --no-cache ;;
    d)
      echo "# d: load $(load)"
      for j in large small; do
        rm -rf "$S3S_TMP/cache"
        ff "$AFTER" $j "--cache-dir $S3S_TMP/cache" >/dev/null # fill
        ff "$BEFORE" $j "--cache-dir $S3S_TMP/cache" >/dev/null # page cache warm
        unit=MB && [ $j = small ] && unit=obj
        row "d $j cached" $unit $j "--cache-dir $S3S_TMP/cache"
      done
      ;;
  esac
done
echo "# end $(date -u '+%T') UTC; load $(load)"
