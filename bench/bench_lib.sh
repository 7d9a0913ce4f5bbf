# bench/bench_lib.sh: shared by bench/*.sh (sourced). Timing, medians, the
# rclone remote for the local s3rver, data generation with parallel uploads,
# and the set-up and FastFile runs of the worker benchmarks.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/lib/env.sh"

S3SHARD_BIN=${S3SHARD_BIN:-$S3SHARD_BUILD_DIR/s3shard}

# bench_time CMD...: run CMD (stdout discarded) and print the wall seconds; fails if CMD fails.
bench_time() {
  local t0 t1
  t0=$(date +%s%N)
  "$@" >/dev/null || return 1
  t1=$(date +%s%N)
  echo "$(((t1 - t0) / 1000000))" | awk '{printf "%.3f\n", $1 / 1000}'
}

# bench_median V...: the median of the numbers given.
bench_median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

# bench_rclone ENDPOINT ARGS...: rclone against ENDPOINT as remote "b:" (config from
# TESTENV.md; AWS_CA_BUNDLE unset or rclone fails to start).
bench_rclone() {
  local ep=$1; shift
  env -u AWS_CA_BUNDLE RCLONE_CONFIG=/dev/null RCLONE_CONFIG_B_TYPE=s3 RCLONE_CONFIG_B_PROVIDER=Other \
    RCLONE_CONFIG_B_ENDPOINT="$ep" RCLONE_CONFIG_B_FORCE_PATH_STYLE=true \
    RCLONE_CONFIG_B_ACCESS_KEY_ID=S3RVER RCLONE_CONFIG_B_SECRET_ACCESS_KEY=S3RVER \
    RCLONE_CONFIG_B_REGION=us-east-1 rclone "$@"
}

# bench_have_s3shard SUBCOMMAND: is the CLI built with this subcommand?
bench_have_s3shard() {
  [ -x "$S3SHARD_BIN" ] && "$S3SHARD_BIN" "$1" --help >/dev/null 2>&1
}

# bench_auth_headers: curl arguments s3rver accepts for a PUT (it checks only the key id).
bench_auth_headers() {
  local d; d=$(date -u +%Y%m%dT%H%M%SZ)
  printf '%s\n' -H "x-amz-date: $d" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=S3RVER/${d:0:8}/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
}

# bench_put_many URL_PREFIX N: N small objects (URL_PREFIX00000 ...) in one curl
# process with 32 parallel uploads.
bench_put_many() {
  local prefix=$1 n=$2 cfg=$S3S_TMP/put-many.cfg d i
  d=$(date -u +%Y%m%dT%H%M%SZ)
  echo "small object body" >"$S3S_TMP/small"
  {
    echo "header = \"x-amz-date: $d\""
    echo 'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"'
    echo "header = \"Authorization: AWS4-HMAC-SHA256 Credential=S3RVER/${d:0:8}/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\""
    for ((i = 0; i < n; i++)); do
      printf 'upload-file = "%s"\nurl = "%s%05d"\noutput = "/dev/null"\n' "$S3S_TMP/small" "$prefix" "$i"
    done
  } >"$cfg"
  curl -sS --no-progress-meter --fail -Z --parallel-max 32 -K "$cfg"
}

# bench_put_nested URL_PREFIX FOLDERS KEYS: FOLDERS x KEYS small objects
# (URL_PREFIX/c000/k000 ...) in one curl process with 32 parallel uploads.
bench_put_nested() {
  local prefix=$1 nf=$2 nk=$3 cfg=$S3S_TMP/put-nested.cfg d f i
  d=$(date -u +%Y%m%dT%H%M%SZ)
  echo "small object body" >"$S3S_TMP/small"
  {
    echo "header = \"x-amz-date: $d\""
    echo 'header = "x-amz-content-sha256: UNSIGNED-PAYLOAD"'
    echo "header = \"Authorization: AWS4-HMAC-SHA256 Credential=S3RVER/${d:0:8}/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0\""
    for ((f = 0; f < nf; f++)); do
      for ((i = 0; i < nk; i++)); do
        printf 'upload-file = "%s"\nurl = "%s/c%03d/k%03d"\noutput = "/dev/null"\n' "$S3S_TMP/small" "$prefix" "$f" "$i"
      done
    done
  } >"$cfg"
  curl -sS --no-progress-meter --fail -Z --parallel-max 32 -K "$cfg"
}

# bench_pid_cpu PID: the process's CPU time so far (user + system, all threads) in clock ticks.
bench_pid_cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# calc EXPR: floating-point arithmetic (awk; bc may be absent).
calc() { awk "BEGIN { print $* }"; }

# ---- the worker benchmarks (worker_peers.sh, fastfile_ab.sh) ----------------

# bench_fuse_setup NAME: $S3S_TMP (s3shard-NAME-XXXXXX), a cleanup on exit that
# unmounts every FUSE mount point listed in MOUNTS before env.sh's cleanup,
# and an s3rver with the bucket "bench" ($S3S_S3RVER_URL, $S3S_S3RVER_PORT).
bench_fuse_setup() {
  MOUNTS=()
  S3S_TMP=$(mktemp -d "${TMPDIR:-/tmp}/s3shard-$1-XXXXXX")
  trap bench_fuse_cleanup EXIT
  trap 'bench_fuse_cleanup; exit 130' INT TERM
  s3s_start_s3rver bench >/dev/null
}
bench_fuse_cleanup() {
  local m
  for m in "${MOUNTS[@]}"; do fusermount3 -u -z "$m" 2>/dev/null; done
  s3s_cleanup
}

# bench_upload WORKER_BENCH URL: with bench/worker_bench, SMALL_COUNT objects of
# SMALL_SIZE bytes (bench/small/000000 ...) and one of LARGE_MB MiB
# (bench/large/000000); sets LARGE_BYTES; $S3S_TMP/small.list names the small
# ones in order.
bench_upload() {
  LARGE_BYTES=$((LARGE_MB * 1048576))
  echo "# setup: uploading $SMALL_COUNT x $SMALL_SIZE B and one $LARGE_MB MiB object" >&2
  "$1" put "$2" bench small/ "$SMALL_COUNT" "$SMALL_SIZE" || return 1
  "$1" put "$2" bench large/ 1 "$LARGE_BYTES" || return 1
  printf '%06d\n' $(seq 0 $((SMALL_COUNT - 1))) >"$S3S_TMP/small.list"
}

# bench_ff_jobs: $S3S_TMP/job-large.json and job-small.json, one FastFile
# channel "data" on bench/large/ or bench/small/, and $S3S_TMP/ff_cmd.sh, the
# command `s3shard run` starts: it times the reads alone (the mount and the
# listing are not timed) and writes the milliseconds into $OUT: `cat` of
# $FILE, or with $LIST, `xargs cat` of the files listed there.
bench_ff_jobs() {
  local j
  cat >"$S3S_TMP/ff_cmd.sh" <<'SH'
set -e
d=$SM_CHANNEL_DATA
if [ -n "${LIST:-}" ]; then cd "$d"; fi
t0=$(date +%s%N)
if [ -n "${LIST:-}" ]; then xargs -a "$LIST" cat >/dev/null; else cat "$d/$FILE" >/dev/null; fi
t1=$(date +%s%N)
echo $(((t1 - t0) / 1000000)) >"$OUT"
SH
  for j in large small; do
    cat >"$S3S_TMP/job-$j.json" <<JSON
{"InputDataConfig": [{"ChannelName": "data", "InputMode": "FastFile",
  "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bench/$j/"}}}],
 "S3Shard": {"StateDir": "$S3S_TMP/state-$j", "ShardTargetBytes": 0}}
JSON
  done
}

# bench_ff_run BIN URL large|small CACHE_ARGS: one `BIN run` of that job on a
# fresh mount (no page cache), 16 connections, CACHE_ARGS (--no-cache or
# "--cache-dir DIR") split into words; the command's milliseconds end up in
# $S3S_TMP/ff.out. Output and status are the run's.
bench_ff_run() {
  local bin=$1 url=$2 job=$3 cache=$4 root=$S3S_TMP/ffroot-$RANDOM
  local extra=(FILE=000000) && [ "$job" = small ] && extra=(LIST="$S3S_TMP/small.list")
  MOUNTS+=("$root/data")
  env "${extra[@]}" OUT="$S3S_TMP/ff.out" "$bin" --endpoint "$url" --path-style run \
    --job "$S3S_TMP/job-$job.json" --static --rank 0 --world-size 1 --data-root "$root" $cache \
    --connections 16 -- bash "$S3S_TMP/ff_cmd.sh"
}
