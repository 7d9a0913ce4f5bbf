# tests/lib/env.sh: shell helpers for *_test.sh tests and bench/ scripts.
# Source it; it starts s3rver and the test proxies on free loopback ports in a
# temporary folder and stops them all on exit (trap). Functions:
#   s3s_env_init                 make $S3S_TMP and install the cleanup trap
#   s3s_start_s3rver [BUCKET...] -> $S3S_S3RVER_PORT, $S3S_S3RVER_URL
#   s3s_start_faultproxy UPPORT [--KEY VALUE...]   -> $S3S_FP_PORT, $S3S_FP_URL
#   s3s_start_sigv4proxy UPPORT [--secret S ...]   -> $S3S_SV_PORT, $S3S_SV_URL
#   s3s_fp_config PORT KEY=VALUE...   change a fault proxy's configuration
#   s3s_fp_reset PORT [config]        zero its counters (and restore the start config)
#   s3s_fp_stats PORT [KEY]           print its stats JSON (one key's entry with KEY)
#   s3s_sv_stats PORT                 print the verifying proxy's stats JSON
#   s3s_free_port                     print a free TCP port on 127.0.0.1
#   s3s_make_objects DIR SEED N MIN MAX   N files objNNN.bin of random bytes (MIN..MAX each)
#   s3s_start_coord JOB STATE WORLD ENDPOINT [ARGS...]   s3shard-coordinator on a free port,
#                                     waited for -> $S3S_COORD_URL, $S3S_COORD_PID
# Paths come from the ctest environment, with fallbacks for a manual run:
#   S3SHARD_SOURCE_DIR (this repo), S3SHARD_BUILD_DIR ($src/build),
#   S3SHARD_S3RVER_JS, S3SHARD_FAULTPROXY, S3SHARD_SIGV4PROXY.

S3SHARD_SOURCE_DIR=${S3SHARD_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
S3SHARD_BUILD_DIR=${S3SHARD_BUILD_DIR:-$S3SHARD_SOURCE_DIR/build}
S3SHARD_S3RVER_JS=${S3SHARD_S3RVER_JS:-$S3SHARD_SOURCE_DIR/tools/node_modules/s3rver/bin/s3rver.js}
S3SHARD_FAULTPROXY=${S3SHARD_FAULTPROXY:-$S3SHARD_BUILD_DIR/s3shard-faultproxy}
S3SHARD_SIGV4PROXY=${S3SHARD_SIGV4PROXY:-$S3SHARD_SOURCE_DIR/tests/tools/sigv4_verify_proxy.py}
export S3SHARD_SOURCE_DIR S3SHARD_BUILD_DIR S3SHARD_S3RVER_JS S3SHARD_FAULTPROXY S3SHARD_SIGV4PROXY
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-S3RVER} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-S3RVER}
export AWS_REGION=${AWS_REGION:-us-east-1}

S3S_PIDS=()
S3S_TMP=

s3s_cleanup() {
  local p
  for p in "${S3S_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${S3S_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  S3S_PIDS=()
  [ -n "$S3S_TMP" ] && rm -rf "$S3S_TMP"
  S3S_TMP=
}

s3s_env_init() {
  S3S_TMP=$(mktemp -d "${TMPDIR:-/tmp}/s3shard-env-XXXXXX")
  trap 's3s_cleanup' EXIT
  trap 's3s_cleanup; exit 130' INT TERM
}

s3s_free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# s3s_wait_http PORT [TRIES]: poll until something answers HTTP on PORT.
s3s_wait_http() {
  local i
  for ((i = 0; i < ${2:-400}; i++)); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0
    sleep 0.025
  done
  echo "env.sh: nothing answers on port $1" >&2
  return 1
}

s3s_start_s3rver() {
  [ -r "$S3SHARD_S3RVER_JS" ] || { echo "env.sh: s3rver not found at $S3SHARD_S3RVER_JS (run scripts/install-deps.sh)" >&2; return 1; }
  local dir=$S3S_TMP/s3rver-$RANDOM args=() b try
  mkdir -p "$dir"
  for b in "$@"; do args+=(--configure-bucket "$b"); done
  for try in 1 2 3; do
    S3S_S3RVER_PORT=$(s3s_free_port)
    node --openssl-legacy-provider "$S3SHARD_S3RVER_JS" -d "$dir" -a 127.0.0.1 \
      -p "$S3S_S3RVER_PORT" --silent "${args[@]}" >"$dir.log" 2>&1 &
    S3S_PIDS+=($!)
    if s3s_wait_http "$S3S_S3RVER_PORT"; then
      S3S_S3RVER_URL=http://127.0.0.1:$S3S_S3RVER_PORT
      return 0
    fi
  done
  return 1
}

# _s3s_first_line FILE PID: wait for the port a proxy prints as its first line.
_s3s_first_line() {
  local i
  for ((i = 0; i < 400; i++)); do
    if [ -s "$1" ] && head -n1 "$1" | grep -qE '^[0-9]+$'; then head -n1 "$1"; return 0; fi
    kill -0 "$2" 2>/dev/null || break
    sleep 0.025
  done
  echo "env.sh: proxy did not print its port (see $1)" >&2
  return 1
}

s3s_start_faultproxy() {
  local up=$1; shift
  [ -x "$S3SHARD_FAULTPROXY" ] || { echo "env.sh: $S3SHARD_FAULTPROXY not built" >&2; return 1; }
  local out=$S3S_TMP/faultproxy-$RANDOM.out
  "$S3SHARD_FAULTPROXY" --upstream "127.0.0.1:$up" --quiet "$@" >"$out" 2>"$out.err" &
  S3S_PIDS+=($!)
  S3S_FP_PORT=$(_s3s_first_line "$out" $!) || return 1
  S3S_FP_URL=http://127.0.0.1:$S3S_FP_PORT
}

s3s_start_sigv4proxy() {
  local up=$1; shift
  local out=$S3S_TMP/sigv4proxy-$RANDOM.out
  /usr/bin/python3 "$S3SHARD_SIGV4PROXY" --upstream "127.0.0.1:$up" "$@" >"$out" 2>"$out.err" &
  S3S_PIDS+=($!)
  S3S_SV_PORT=$(_s3s_first_line "$out" $!) || return 1
  S3S_SV_URL=http://127.0.0.1:$S3S_SV_PORT
}

s3s_fp_config() {
  local port=$1; shift
  local IFS=$'\n'
  curl -sf -X POST --data-binary "$*" "http://127.0.0.1:$port/__faultproxy/config" >/dev/null
}

s3s_fp_reset() {
  local q=
  [ "${2:-}" = config ] && q='?config=1'
  curl -sf -X POST "http://127.0.0.1:$1/__faultproxy/reset$q" >/dev/null
}

s3s_fp_stats() {
  if [ -n "${2:-}" ]; then
    curl -sfG --data-urlencode "key=$2" "http://127.0.0.1:$1/__faultproxy/stats"
  else
    curl -sf "http://127.0.0.1:$1/__faultproxy/stats"
  fi
}

s3s_sv_stats() {
  curl -sf "http://127.0.0.1:$1/__sigv4proxy/stats"
}

# s3s_make_objects DIR SEED N MIN MAX: N files DIR/objNNN.bin of MIN..MAX random
# bytes each (sizes drawn from SEED).
s3s_make_objects() {
  /usr/bin/python3 - "$@" <<'PY'
import os, random, sys
d, seed, n, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
random.seed(seed)
os.makedirs(d, exist_ok=True)
for i in range(n):
    with open(os.path.join(d, "obj%03d.bin" % i), "wb") as f:
        f.write(os.urandom(random.randint(lo, hi)))
PY
}

# s3s_start_coord JOB STATE WORLD ENDPOINT [ARGS...]: start s3shard-coordinator
# (stderr appended to $S3S_TMP/coord.err) and wait until it answers status.
s3s_start_coord() {
  local job=$1 state=$2 world=$3 ep=$4 i
  shift 4
  S3S_COORD_URL="tcp://127.0.0.1:$(s3s_free_port)"
  "$S3SHARD_BUILD_DIR/s3shard-coordinator" --job "$job" --listen "$S3S_COORD_URL" \
    --state "$state" --world-size "$world" --endpoint "$ep" "$@" 2>>"$S3S_TMP/coord.err" &
  S3S_COORD_PID=$!
  S3S_PIDS+=($S3S_COORD_PID)
  for ((i = 0; i < 150; i++)); do
    "$S3SHARD_BUILD_DIR/s3shard" status "$S3S_COORD_URL" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "env.sh: the coordinator did not come up on $S3S_COORD_URL" >&2
  return 1
}
