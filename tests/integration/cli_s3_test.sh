#!/bin/bash
# cli_s3_test.sh: `s3shard cp / ls / cat` against a real s3rver, every request
# checked by the SigV4 verifying proxy, then through the fault proxy.
set -u
source "$S3SHARD_SOURCE_DIR/tests/lib/env.sh"
bin=$S3SHARD_BUILD_DIR/s3shard
for c in ls cat cp; do
  "$bin" "$c" --help >/dev/null 2>&1 || { echo "s3shard $c is missing"; exit 1; }
done
s3s_env_init
s3s_start_s3rver bkt || exit 1
s3s_start_sigv4proxy "$S3S_S3RVER_PORT" || exit 1
s3s_start_faultproxy "$S3S_S3RVER_PORT" || exit 1
fails=0
check() { if "${@:2}"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }
V=(--endpoint "$S3S_SV_URL" --path-style)
F=(--endpoint "$S3S_FP_URL" --path-style)
sv() { /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])" < <(s3s_sv_stats "$S3S_SV_PORT"); }

# 1,100 keys plus odd names, uploaded with cp --recursive.
src=$S3S_TMP/src
mkdir -p "$src/many" "$src/odd/ünï cødé"
for i in $(seq -w 0 1099); do echo "$i" >"$src/many/k$i"; done
for k in 'with space' 'plus+sign' 'equals=sign' 'percent%41' 'question?mark' 'hash#tag' 'ünï cødé/日本語'; do
  printf 'body of %s' "$k" >"$src/odd/$k"
done
head -c $((20 << 20)) /dev/urandom >"$src/big"
check "cp --recursive up" "$bin" "${V[@]}" cp --recursive "$src" s3://bkt/t/
n=$("$bin" "${V[@]}" ls --recursive s3://bkt/t/many/ 2>"$S3S_TMP/ls.err" | wc -l)
check "ls --recursive lists 1,100 keys ($n)" test "$n" = 1100
check "ls prints a summary on stderr" grep -qi "objects" "$S3S_TMP/ls.err"
n=$("$bin" "${V[@]}" ls --recursive --json s3://bkt/t/ 2>/dev/null | wc -l)
check "ls --json: one line per object ($n)" test "$n" -ge 1108
for k in 'with space' 'plus+sign' 'equals=sign' 'percent%41' 'question?mark' 'hash#tag' 'ünï cødé/日本語'; do
  got=$("$bin" "${V[@]}" cat "s3://bkt/t/odd/$k")
  check "cat odd key '$k'" test "$got" = "body of $k"
done
check "cat big: same sha256" test "$("$bin" "${V[@]}" cat s3://bkt/t/big | sha256sum)" = "$(sha256sum <"$src/big")"
check "cat --range" test "$("$bin" "${V[@]}" cat --range 2-5 's3://bkt/t/odd/plus+sign')" = "dy o"
mkdir -p "$S3S_TMP/down"
check "cp --recursive down" "$bin" "${V[@]}" cp --recursive s3://bkt/t/odd/ "$S3S_TMP/down/"
check "downloaded tree matches" diff -r "$src/odd" "$S3S_TMP/down"
check "nothing refused by the verifier ($(sv refused))" test "$(sv refused)" = 0
check "requests were verified ($(sv verified))" test "$(sv verified)" -gt 1100

# A wrong secret: a clear 403.
AWS_SECRET_ACCESS_KEY=wrong "$bin" "${V[@]}" cat 's3://bkt/t/odd/with space' >"$S3S_TMP/o" 2>"$S3S_TMP/e"; rc=$?
check "wrong secret fails ($rc)" test "$rc" != 0
check "the error names bucket, key and SignatureDoesNotMatch" \
  grep -q "bkt.*with space\|with space.*bkt" "$S3S_TMP/e"
check "the error says 403" grep -q 403 "$S3S_TMP/e"
check "the error names SignatureDoesNotMatch" grep -q SignatureDoesNotMatch "$S3S_TMP/e"
check "no bytes on stdout" test ! -s "$S3S_TMP/o"

# Faults: retried, right bytes or a clear error.
want=$(sha256sum <"$src/big")
for f in "fault=slowdown first=2" "fault=reset first=2" "fault=reset_mid first=2" "fault=short first=2"; do
  s3s_fp_reset "$S3S_FP_PORT" config
  s3s_fp_config "$S3S_FP_PORT" $f method=GET
  got=$("$bin" "${F[@]}" cat s3://bkt/t/big | sha256sum)
  check "cat under [$f]: right bytes" test "$got" = "$want"
  gets=$(s3s_fp_stats "$S3S_FP_PORT" /bkt/t/big | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['keys']['/bkt/t/big']['GET'])")
  check "cat under [$f]: retried ($gets GETs)" test "$gets" -ge 3
done
s3s_fp_reset "$S3S_FP_PORT" config
s3s_fp_config "$S3S_FP_PORT" fault=slowdown method=GET
timeout 120 "$bin" "${F[@]}" cat s3://bkt/t/big >"$S3S_TMP/o" 2>"$S3S_TMP/e"; rc=$?
check "endless SlowDown: fails ($rc)" test "$rc" != 0 -a "$rc" != 124
check "endless SlowDown: says so" grep -q SlowDown "$S3S_TMP/e"
s3s_fp_reset "$S3S_FP_PORT" config
s3s_fp_config "$S3S_FP_PORT" fault=slowdown first=1
n=$("$bin" "${F[@]}" ls --recursive s3://bkt/t/many/ 2>/dev/null | wc -l)
check "ls under SlowDown: all keys ($n)" test "$n" = 1100

echo "$fails failure(s)"
exit $((fails > 0))
