#!/bin/bash
# bench/worker_peers.sh: the worker (reader and FastFile mount) against s3fs and
# rclone on the same s3rver in the same run, with the s3rver ceiling (curl).
# Issue 5's four speed scenarios; prints medians and ratios; not a test.
#
#   a  one 1 GiB object read sequentially          goal >= 1.5x the faster peer
#   b  2,000 x 40 KB objects in assignment order   goal >= 3x the faster peer (obj/s)
#   c  a and b through s3shard-faultproxy adding 10 ms to first byte and capping
#      each connection at 100 MB/s                 goals >= 3x (large), >= 5x (small)
#   d  cached re-read vs `cat` of the same bytes on local disk   goal >= 0.8x
#
#   bench/worker_peers.sh [--runs 3] [--large-mb 1024] [--small-count 2000]
#                         [--small-size 40000] [--only "a b c d"] [--no-fastfile]
#                         [--s3fs-single]
#
# Ours: bench/worker_bench (s3s_worker_next + s3s_reader_read, 16 connections,
# one loader thread; for small objects also 64 connections, against rclone
# with 16 and with 64 transfers: s3rver, the ceiling here, spends less CPU per
# GET when more requests arrive together, and either side may use that) and `s3shard run` with a FastFile channel (a fresh mount per
# run: no page cache) whose command times `cat` of the files. Peers: s3fs (a fresh
# mount per run; the listing, which s3fs answers with a HEAD per file, is done
# before the timing starts; small files are read by 16 `cat`s at once, its faster
# way, and also by one with --s3fs-single, which is slow: 20-260 obj/s),
# `rclone cat` and `rclone copy --transfers 16` (its own listing included, as a
# user runs it). `s3shard cat` (the CLI's parallel GET) is shown for comparison.
# Ceiling: curl, one GET for the large object and 8 parallel ranges;
# `curl -Z --parallel-max 32` for the small ones.
# Needs s3fs, rclone, curl, fuse3; a Release build ($S3SHARD_BUILD_DIR, default
# ./build) with bench/worker_bench, s3shard and s3shard-faultproxy.
set -u
RUNS=3 LARGE_MB=1024 SMALL_COUNT=2000 SMALL_SIZE=40000 ONLY="a b c d" FASTFILE=1 S3FS_SINGLE=0
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --large-mb) LARGE_MB=$2; shift 2 ;;
    --small-count) SMALL_COUNT=$2; shift 2 ;;
    --small-size) SMALL_SIZE=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --no-fastfile) FASTFILE=0; shift ;;
    --s3fs-single) S3FS_SINGLE=1; shift ;;
    *) sed -n '2,25p' "$0" >&2; exit 2 ;;
  esac
done
source "$(dirname "$0")/bench_lib.sh"
WB=$S3SHARD_BUILD_DIR/bench/worker_bench
for f in "$WB" "$S3SHARD_BIN" "$S3SHARD_FAULTPROXY"; do
  [ -x "$f" ] || { echo "build $f first (Release)" >&2; exit 2; }
done
for t in s3fs rclone curl fusermount3; do
  command -v $t >/dev/null || { echo "needs $t" >&2; exit 2; }
done
[ -e /dev/fuse ] || FASTFILE=0
bench_fuse_setup peers || exit 1
s3s_start_faultproxy "$S3S_S3RVER_PORT" --delay_ms 10 --bandwidth 100M || exit 1
PROXY_URL=$S3S_FP_URL
DIRECT_URL=$S3S_S3RVER_URL
SMALL_BYTES=$((SMALL_COUNT * SMALL_SIZE))
bench_upload "$WB" "$DIRECT_URL" || exit 1
LARGE_KEY=large/000000
echo "S3RVER:S3RVER" >"$S3S_TMP/passwd" && chmod 600 "$S3S_TMP/passwd"

# The same bytes on local disk (for d), fetched once and checked against ours.
mkdir -p "$S3S_TMP/local/small"
bench_rclone "$DIRECT_URL" copy --transfers 16 b:bench/small/ "$S3S_TMP/local/small" || exit 1
bench_rclone "$DIRECT_URL" cat "b:bench/$LARGE_KEY" >"$S3S_TMP/local/large" || exit 1

# ---- the tools; each prints nothing, fails on error --------------------------
ours_read() { # ours_read URL PREFIX [--cache DIR]
  local out
  out=$("$WB" read "$@" --connections "${CONN:-16}") || return 1
  echo "$out" >>"$S3S_TMP/ours.log"
  # the right amount of bytes, or the time means nothing
  case $3 in
    small/) [[ $out == *"bytes=$SMALL_BYTES "* ]] || return 1 ;;
    large/) [[ $out == *"bytes=$LARGE_BYTES "* ]] || return 1 ;;
  esac
  # its own clock: from the worker's creation to the last byte (the listing,
  # done once per job, is not timed; s3fs's and FastFile's are not either)
  echo "$out" | sed -n 's/.*seconds=\([0-9.]*\).*/\1/p'
}
# FastFile: `s3shard run` mounts the channel, the command times the reads (the
# listing and the mount are not timed: s3fs's are not either).
bench_ff_jobs
# ff_read URL JOB [--cache-dir DIR|--no-cache]: prints the seconds the command measured.
ff_read() {
  bench_ff_run "$S3SHARD_BIN" "$@" >/dev/null 2>"$S3S_TMP/ff.err" || { cat "$S3S_TMP/ff.err" >&2; return 1; }
  awk '{printf "%.3f\n", $1 / 1000}' "$S3S_TMP/ff.out"
}
# s3fs_read URL large|small [PARALLEL]: a fresh mount, listed first, then timed.
s3fs_read() {
  local url=$1 what=$2 par=${3:-1} mnt=$S3S_TMP/s3fs-$RANDOM t0 t1 rc=0
  mkdir -p "$mnt"
  MOUNTS+=("$mnt")
  s3fs bench "$mnt" -o url="$url" -o use_path_request_style -o passwd_file="$S3S_TMP/passwd" || return 1
  for _ in $(seq 100); do mountpoint -q "$mnt" && break; sleep 0.05; done
  ls -l "$mnt/$what" >/dev/null || rc=1
  t0=$(date +%s%N)
  if [ $rc = 0 ]; then
    if [ "$what" = large ]; then
      cat "$mnt/$LARGE_KEY" >/dev/null || rc=1
    else
      (cd "$mnt/small" && xargs -a "$S3S_TMP/small.list" -P "$par" -n $((SMALL_COUNT / par)) cat >/dev/null) || rc=1
    fi
  fi
  t1=$(date +%s%N)
  fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -u -z "$mnt"
  [ $rc = 0 ] && awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f\n", (b - a) / 1e9}'
}
s3shard_cat() { "$S3SHARD_BIN" --endpoint "$1" --path-style cat "s3://bench/$LARGE_KEY"; }
rclone_cat() { bench_rclone "$1" cat "b:bench/$LARGE_KEY"; }
rclone_copy() { # rclone_copy URL [TRANSFERS]
  rm -rf "$S3S_TMP/rc" && mkdir -p "$S3S_TMP/rc"
  bench_rclone "$1" copy --transfers "${2:-16}" b:bench/small/ "$S3S_TMP/rc"
}
ours_read64() { CONN=64 ours_read "$@"; }
# curl configs: every small object at once (32 in flight); the large one in 8 ranges.
curl_cfg() { # curl_cfg URL FILE small|ranges
  local d i part
  d=$(date -u +%Y%m%dT%H%M%SZ)
  {
    echo "header = \"x-amz-date: $d\""
    echo 'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"'
    echo "header = \"Authorization: AWS4-HMAC-SHA256 Credential=S3RVER/${d:0:8}/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\""
    if [ "$3" = small ]; then
      while read -r i; do printf 'url = "%s/bench/small/%s"\noutput = "/dev/null"\n' "$1" "$i"; done <"$S3S_TMP/small.list"
    else
      part=$((LARGE_BYTES / 8))
      for ((i = 0; i < 8; i++)); do
        printf 'url = "%s/bench/%s"\nrange = "%d-%d"\noutput = "/dev/null"\n' "$1" "$LARGE_KEY" \
          $((i * part)) $((i == 7 ? LARGE_BYTES - 1 : (i + 1) * part - 1))
      done
    fi
  } >"$2"
}
curl_small32() { curl_cfg "$1" "$S3S_TMP/c.cfg" small && curl -sS --no-progress-meter --fail -Z --parallel-max 32 -K "$S3S_TMP/c.cfg"; }
curl_ranges8() { curl_cfg "$1" "$S3S_TMP/c.cfg" ranges && curl -sS --no-progress-meter --fail -Z --parallel-max 8 -K "$S3S_TMP/c.cfg"; }
curl_one() { mapfile -t H < <(bench_auth_headers); curl -sS --fail "${H[@]}" "$1/bench/$LARGE_KEY"; }
local_cat_large() { cat "$S3S_TMP/local/large"; }
local_cat_small() { (cd "$S3S_TMP/local/small" && xargs -a "$S3S_TMP/small.list" cat); }

# ---- measuring ---------------------------------------------------------------
RESULTS=$S3S_TMP/results
: >"$RESULTS"
load() { cut -d' ' -f1-3 /proc/loadavg; }
# measure SCEN LABEL UNIT(MBs|objs) CMD...: RUNS timings, median, rate; records
# "SCEN|LABEL|median|rate" in $RESULTS. A CMD that prints a number times
# itself (ours, FastFile, s3fs); any other is timed from outside.
measure() {
  local scen=$1 label=$2 unit=$3 v=() r s m rate
  shift 3
  for ((r = 0; r < RUNS; r++)); do
    case $1 in
      ours_read | ours_read64 | ff_read | s3fs_read) s=$("$@") || { echo "$label failed" >&2; s=nan; } ;;
      *) s=$(bench_time "$@") || { echo "$label failed" >&2; s=nan; } ;;
    esac
    v+=("$s")
  done
  m=$(bench_median "${v[@]}")
  if [ "$unit" = objs ]; then rate=$(calc "$SMALL_COUNT / $m"); else
    rate=$(calc "${BYTES_NOW} / $m / 1000000"); fi
  printf '%-22s %-34s %8s s %10.0f %s   (runs: %s)\n' "$scen" "$label" "$m" "$rate" \
    "$([ "$unit" = objs ] && echo obj/s || echo MB/s)" "${v[*]}"
  echo "$scen|$label|$m|$rate" >>"$RESULTS"
}
rate_of() { awk -F'|' -v s="$1" -v l="$2" '$1 == s && $2 == l {print $4}' "$RESULTS"; }
ratio() { # ratio SCEN OURS_LABEL GOAL PEER_LABEL...: ours / the fastest peer
  local scen=$1 ours=$2 goal=$3 best=0 bl= p r o
  shift 3
  o=$(rate_of "$scen" "$ours")
  for p in "$@"; do
    r=$(rate_of "$scen" "$p")
    [ -n "$r" ] && [ "$(calc "($r > $best) ? 1 : 0")" = 1 ] && best=$r bl=$p
  done
  [ -z "$o" ] || [ "$best" = 0 ] && return
  printf '  %-20s %-28s %.2fx the faster peer (%s) [goal >= %sx]\n' "$scen" "$ours" \
    "$(calc "$o / $best")" "$bl" "$goal"
}

echo "# $(date -u '+%F %T') UTC; $(nproc) cores; load $(load); runs $RUNS; s3rver $S3S_S3RVER_PORT, proxy $S3S_FP_PORT"
printf '%-22s %-34s %10s %12s\n' scenario tool median rate
for scen in $ONLY; do
  case $scen in
    a | c)
      if [ $scen = a ]; then url=$DIRECT_URL s="a large loopback"; else url=$PROXY_URL s="c large proxy"; fi
      BYTES_NOW=$LARGE_BYTES
      echo "# $s: load $(load)"
      measure "$s" "s3shard reader" MBs ours_read "$url" bench large/
      [ $FASTFILE = 1 ] && measure "$s" "s3shard FastFile cat" MBs ff_read "$url" large --no-cache
      measure "$s" "s3fs cat" MBs s3fs_read "$url" large
      measure "$s" "(s3shard cat, not a peer)" MBs s3shard_cat "$url"
      measure "$s" "rclone cat" MBs rclone_cat "$url"
      measure "$s" "ceiling: curl 1 GET" MBs curl_one "$url"
      measure "$s" "ceiling: curl 8 ranges" MBs curl_ranges8 "$url"
      ;;&
    b | c)
      if [ $scen = b ]; then url=$DIRECT_URL s="b small loopback"; else url=$PROXY_URL s="c small proxy"; fi
      BYTES_NOW=$SMALL_BYTES
      echo "# $s: load $(load)"
      measure "$s" "s3shard reader" objs ours_read "$url" bench small/
      measure "$s" "s3shard reader, 64 connections" objs ours_read64 "$url" bench small/
      [ $FASTFILE = 1 ] && measure "$s" "s3shard FastFile cat" objs ff_read "$url" small --no-cache
      [ $S3FS_SINGLE = 1 ] && measure "$s" "s3fs cat, 1 reader" objs s3fs_read "$url" small 1
      measure "$s" "s3fs cat, 16 readers" objs s3fs_read "$url" small 16
      measure "$s" "rclone copy --transfers 16" objs rclone_copy "$url"
      measure "$s" "rclone copy --transfers 64" objs rclone_copy "$url" 64
      measure "$s" "ceiling: curl -Z 32" objs curl_small32 "$url"
      ;;
    d)
      echo "# d cached: load $(load)"
      url=$DIRECT_URL
      for what in large small; do
        BYTES_NOW=$LARGE_BYTES unit=MBs
        [ $what = small ] && BYTES_NOW=$SMALL_BYTES unit=objs
        s="d $what cached"
        rm -rf "$S3S_TMP/cache"
        ours_read "$url" bench $what/ --cache "$S3S_TMP/cache" >/dev/null || echo "cold fill failed" >&2
        local_cat_$what >/dev/null # page cache warm for both
        measure "$s" "s3shard reader, cached" $unit ours_read "$url" bench $what/ --cache "$S3S_TMP/cache"
        if [ $FASTFILE = 1 ]; then
          ff_read "$url" $what "--cache-dir $S3S_TMP/cache" >/dev/null
          measure "$s" "s3shard FastFile cat, cached" $unit ff_read "$url" $what "--cache-dir $S3S_TMP/cache"
        fi
        measure "$s" "local disk cat" $unit local_cat_$what
      done
      ;;
  esac
done
echo "# end $(date -u '+%T') UTC; load $(load)"
echo "ratios (rate / the faster peer's rate; ceilings are not peers):"
P_LARGE=("s3fs cat" "rclone cat")
P_SMALL=("s3fs cat, 1 reader" "s3fs cat, 16 readers" "rclone copy --transfers 16" "rclone copy --transfers 64")
# (a peer not measured is skipped)
for s in "a large loopback:1.5" "c large proxy:3"; do
  ratio "${s%%:*}" "s3shard reader" "${s##*:}" "${P_LARGE[@]}"
  ratio "${s%%:*}" "s3shard FastFile cat" "${s##*:}" "${P_LARGE[@]}"
  ratio "${s%%:*}" "s3shard reader" "-" "ceiling: curl 1 GET" "ceiling: curl 8 ranges" | sed 's/the faster peer/the ceiling/'
done
for s in "b small loopback:3" "c small proxy:5"; do
  ratio "${s%%:*}" "s3shard reader" "${s##*:}" "${P_SMALL[@]}"
  ratio "${s%%:*}" "s3shard reader, 64 connections" "${s##*:}" "${P_SMALL[@]}"
  ratio "${s%%:*}" "s3shard FastFile cat" "${s##*:}" "${P_SMALL[@]}"
  ratio "${s%%:*}" "s3shard reader" "-" "ceiling: curl -Z 32" | sed 's/the faster peer/the ceiling/'
done
for w in large small; do
  ratio "d $w cached" "s3shard reader, cached" 0.8 "local disk cat"
  ratio "d $w cached" "s3shard FastFile cat, cached" 0.8 "local disk cat"
done
