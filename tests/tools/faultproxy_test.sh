#!/bin/bash
# faultproxy_test.sh: s3shard-faultproxy in front of a real s3rver, driven with
# curl: passthrough is byte-exact and keeps connections alive; every fault does
# what docs/testing.md says; selection is per key and deterministic; the control
# endpoint rejects bad configuration.
set -u
source "$S3SHARD_SOURCE_DIR/tests/lib/env.sh"
s3s_env_init
fails=0
check() { # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; fails=$((fails + 1)); fi
}
# put FILE URL: an upload s3rver accepts (it checks only the access key id).
put() {
  local d; d=$(date -u +%Y%m%dT%H%M%SZ)
  curl -sf -o /dev/null -T "$1" "$2" -H "x-amz-date: $d" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=S3RVER/${d:0:8}/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
}
json() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

s3s_start_s3rver bkt || exit 1
s3s_start_faultproxy "$S3S_S3RVER_PORT" || exit 1
P=$S3S_FP_PORT U=$S3S_FP_URL
head -c 10000000 /dev/urandom >"$S3S_TMP/big"
echo hello >"$S3S_TMP/small"
check "upload through the proxy" put "$S3S_TMP/big" "$U/bkt/big"
put "$S3S_TMP/small" "$U/bkt/dir/a%20b%2Bc"

# Passthrough: same bytes, one connection for two requests, counts per key.
s3s_fp_reset "$P"
n=$(curl -s -o "$S3S_TMP/o1" -w '%{num_connects}\n' "$U/bkt/big" -o "$S3S_TMP/o2" "$U/bkt/big" | tr '\n' ' ')
check "passthrough bytes" cmp -s "$S3S_TMP/o1" "$S3S_TMP/big"
check "keep-alive reuses the connection ($n)" test "$n" = "1 0 "
check "count per key" test "$(s3s_fp_stats "$P" /bkt/big | json "d['keys']['/bkt/big']['GET']")" = 2
check "decoded key" test "$(curl -s "$U/bkt/dir/a%20b%2Bc")" = hello
check "count per decoded key" test "$(s3s_fp_stats "$P" '/bkt/dir/a b+c' | json "d['keys']['/bkt/dir/a b+c']['GET']")" = 1
check "ranged GET passes" test "$(curl -s -r 0-4 "$U/bkt/dir/a%20b%2Bc")" = hello

# 503 SlowDown for the first 2 requests of each key.
s3s_fp_reset "$P"; s3s_fp_config "$P" fault=slowdown first=2
codes=$(for i in 1 2 3; do curl -s -o "$S3S_TMP/r$i" -w '%{http_code} ' "$U/bkt/big"; done)
check "first=2 slowdown ($codes)" test "$codes" = "503 503 200 "
check "SlowDown XML body" grep -q '<Code>SlowDown</Code>' "$S3S_TMP/r1"
check "right bytes after the faults" cmp -s "$S3S_TMP/r3" "$S3S_TMP/big"
check "other keys counted apart" test "$(curl -s -o /dev/null -w '%{http_code}' "$U/bkt/dir/a%20b%2Bc")" = 503
check "faults counted" test "$(s3s_fp_stats "$P" | json "d['by_fault']['slowdown']")" = 3

# every Nth, method filter, match filter, limit.
s3s_fp_reset "$P"; s3s_fp_config "$P" fault=internal every=3 first=0
codes=$(for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{http_code} ' "$U/bkt/dir/a%20b%2Bc"; done)
check "every=3 ($codes)" test "$codes" = "200 200 500 200 200 500 "
s3s_fp_reset "$P"; s3s_fp_config "$P" fault=slowdown every=0 method=HEAD
check "method filter spares GET" test "$(curl -s -o /dev/null -w '%{http_code}' "$U/bkt/big")" = 200
check "method filter hits HEAD" test "$(curl -s -I -o /dev/null -w '%{http_code}' "$U/bkt/big")" = 503
s3s_fp_reset "$P"; s3s_fp_config "$P" method= match=dir/ limit=1
check "match filter spares other keys" test "$(curl -s -o /dev/null -w '%{http_code}' "$U/bkt/big")" = 200
codes=$(for i in 1 2; do curl -s -o /dev/null -w '%{http_code} ' "$U/bkt/dir/a%20b%2Bc"; done)
check "limit=1 ($codes)" test "$codes" = "503 200 "

# rate: seeded and deterministic per key.
pattern() { for i in $(seq 1 40); do curl -s -o /dev/null -w '%{http_code}' "$U/bkt/dir/a%20b%2Bc" | tr -d '\n' | sed 's/200/./;s/503/x/'; done; }
s3s_fp_reset "$P"; s3s_fp_config "$P" match= limit=0 rate=0.5 seed=7
p1=$(pattern); s3s_fp_reset "$P"; p2=$(pattern)
s3s_fp_reset "$P"; s3s_fp_config "$P" seed=8; p3=$(pattern)
hits=$(echo -n "$p1" | tr -cd x | wc -c)
check "rate=0.5 deterministic ($p1)" test "$p1" = "$p2"
check "rate=0.5 hits about half ($hits/40)" test "$hits" -ge 8 -a "$hits" -le 32
check "another seed, another pattern" test "$p1" != "$p3"

# Connection faults.
s3s_fp_reset "$P"; s3s_fp_config "$P" rate=0 fault=reset first=1
curl -s -o "$S3S_TMP/o1" "$U/bkt/big"; rc=$?
check "reset before the response: curl fails ($rc)" test "$rc" = 56 -o "$rc" = 52
check "reset: next request fine" cmp -s <(curl -s "$U/bkt/big") "$S3S_TMP/big"
s3s_fp_reset "$P"; s3s_fp_config "$P" fault=reset_mid first=1
curl -s -o "$S3S_TMP/o1" "$U/bkt/big"; rc=$?
sz=$(stat -c %s "$S3S_TMP/o1")
check "reset mid-body: curl fails ($rc) with a partial body ($sz)" test "$rc" != 0 -a "$sz" -lt 10000000
s3s_fp_reset "$P"; s3s_fp_config "$P" fault=short first=1 fault_at=1234
curl -s -o "$S3S_TMP/o1" "$U/bkt/big"; rc=$?
check "short body: curl sees a partial file ($rc)" test "$rc" = 18
check "short body: exactly fault_at bytes" test "$(stat -c %s "$S3S_TMP/o1")" = 1234
check "short body: they are the right bytes" cmp -s "$S3S_TMP/o1" <(head -c 1234 "$S3S_TMP/big")
s3s_fp_reset "$P"; s3s_fp_config "$P" fault=short first=1 fault_at=-1
curl -s -o "$S3S_TMP/o1" "$U/bkt/big"
check "short body default: half" test "$(stat -c %s "$S3S_TMP/o1")" = 5000000
s3s_fp_reset "$P"; s3s_fp_config "$P" fault=stall first=1 stall_ms=0
curl -s -o /dev/null --max-time 1 "$U/bkt/big"; rc=$?
check "stall forever: the client times out ($rc)" test "$rc" = 28
s3s_fp_reset "$P"; s3s_fp_config "$P" fault=stall first=1 stall_ms=300 fault_at=1000
t0=$(date +%s%N); curl -s -o "$S3S_TMP/o1" "$U/bkt/big"; t1=$(date +%s%N)
check "stall mid-body 300 ms, then the rest" cmp -s "$S3S_TMP/o1" "$S3S_TMP/big"
check "stall lasted at least 300 ms" test $(((t1 - t0) / 1000000)) -ge 300

# Realism: first-byte delay and bandwidth cap (lower bounds only).
s3s_fp_reset "$P"; s3s_fp_config "$P" fault=none fault_at=-1 delay_ms=200
t=$(curl -s -o /dev/null -w '%{time_starttransfer}' "$U/bkt/dir/a%20b%2Bc")
check "delay_ms=200: first byte after ${t}s" /usr/bin/python3 -c "import sys; sys.exit(0 if $t >= 0.2 else 1)"
s3s_fp_config "$P" delay_ms=0 bandwidth=20M
t=$(curl -s -o "$S3S_TMP/o1" -w '%{time_total}' "$U/bkt/big")
check "bandwidth=20M: 10 MB in ${t}s" /usr/bin/python3 -c "import sys; sys.exit(0 if $t >= 0.45 else 1)"
check "bandwidth cap keeps the bytes" cmp -s "$S3S_TMP/o1" "$S3S_TMP/big"

# Control endpoint.
out=$(curl -s -w ' %{http_code}' -X POST --data-binary 'fault=explode' "$U/__faultproxy/config")
check "unknown fault is refused" grep -q "unknown value 'explode' 400" <<<"${out//$'\n'/}"
out=$(curl -s -w ' %{http_code}' -X POST --data-binary 'rate=2' "$U/__faultproxy/config")
check "bad rate is refused" grep -q "rate: bad value '2' 400" <<<"${out//$'\n'/}"
out=$(curl -s -X POST --data-binary 'nope=1' "$U/__faultproxy/config")
check "unknown key is refused" grep -q "unknown key 'nope'" <<<"$out"
check "a refused change changes nothing" grep -q "bandwidth=20000000" <(curl -s "$U/__faultproxy/config")
s3s_fp_reset "$P" config
check "reset?config=1 restores the start config" grep -q "bandwidth=0" <(curl -s "$U/__faultproxy/config")
check "flags configure at start" bash -c "'$S3SHARD_FAULTPROXY' --upstream 127.0.0.1:1 --fault bogus 2>&1 | grep -q \"unknown value 'bogus'\""

echo "$fails failure(s)"
exit $((fails > 0))
