#!/usr/bin/env bash
# `s3shard sigv4`: the exact output format of issue 2, checked against AWS's
# published S3 examples (GET with Range, presigned URL), plus input variants
# (CRLF, raw vs encoded target, session token, errors).
set -euo pipefail
bin="$S3SHARD_BUILD_DIR/s3shard"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
S3=(--access-key-id AKIAIOSFODNN7EXAMPLE --secret-access-key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
    --region us-east-1 --service s3)
E=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
fail() { echo "FAIL: $*"; exit 1; }

# 1. The S3 "GET Object" example, byte for byte.
printf 'GET /test.txt HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\nRange: bytes=0-9 \nx-amz-content-sha256:%s\nx-amz-date: 20130524T000000Z \n' "$E" >"$tmp/get.txt"
"$bin" sigv4 "${S3[@]}" <"$tmp/get.txt" >"$tmp/out"
cat >"$tmp/want" <<WANT
canonical request:
GET
/test.txt

host:examplebucket.s3.amazonaws.com
range:bytes=0-9
x-amz-content-sha256:$E
x-amz-date:20130524T000000Z

host;range;x-amz-content-sha256;x-amz-date
$E

string to sign:
AWS4-HMAC-SHA256
20130524T000000Z
20130524/us-east-1/s3/aws4_request
7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972

authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41
WANT
diff -u "$tmp/want" "$tmp/out" || fail "GET example output differs"

# 2. Same request with CRLF line ends and a blank line: same output.
sed 's/$/\r/' "$tmp/get.txt" >"$tmp/get-crlf.txt"
printf '\r\n' >>"$tmp/get-crlf.txt"
"$bin" sigv4 "${S3[@]}" <"$tmp/get-crlf.txt" | diff -u "$tmp/want" - || fail "CRLF input differs"

# 3. The presigned URL example.
printf 'GET /test.txt HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n' |
    "$bin" sigv4 "${S3[@]}" --presign 86400 --date 20130524T000000Z >"$tmp/pre"
tail -n1 "$tmp/pre" | grep -qx 'url: https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404' ||
    fail "presigned URL differs: $(tail -n1 "$tmp/pre")"
head -n1 "$tmp/pre" | grep -qx 'canonical request:' || fail "presign output lacks header"
grep -qx 'UNSIGNED-PAYLOAD' "$tmp/pre" || fail "presign must use UNSIGNED-PAYLOAD"

# 4. The PUT example: the body is hashed when no x-amz-content-sha256 is given.
printf 'PUT test$file.text HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\nDate: Fri, 24 May 2013 00:00:00 GMT\nx-amz-date: 20130524T000000Z\nx-amz-storage-class: REDUCED_REDUNDANCY\n\nWelcome to Amazon S3.' >"$tmp/put.txt"
"$bin" sigv4 "${S3[@]}" <"$tmp/put.txt" >"$tmp/put.out"
grep -qx '44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072' "$tmp/put.out" ||
    fail "body hash missing"
grep -qx '/test%24file.text' "$tmp/put.out" || fail "path not encoded"

# 5. Raw and already-encoded targets (spaces, UTF-8, reserved) sign the same.
printf 'GET /a b/\xe1\x88\xb4+=.txt?prefix=x y&list-type=2 HTTP/1.1\nHost: h\nX-Amz-Date: 20130524T000000Z\n' |
    "$bin" sigv4 "${S3[@]}" >"$tmp/raw.out"
printf 'GET /a%%20b/%%E1%%88%%B4%%2B%%3D.txt?list-type=2&prefix=x%%20y HTTP/1.1\nHost: h\nX-Amz-Date: 20130524T000000Z\n' |
    "$bin" sigv4 "${S3[@]}" >"$tmp/enc.out"
diff -u "$tmp/raw.out" "$tmp/enc.out" || fail "raw and encoded targets differ"
grep -qx '/a%20b/%E1%88%B4%2B%3D.txt' "$tmp/raw.out" || fail "canonical path"
grep -qx 'list-type=2&prefix=x%20y' "$tmp/raw.out" || fail "canonical query"

# 6. --unsigned-payload, --normalize-path, --session-token.
printf 'GET /a/./b/../c HTTP/1.1\nHost: h\nX-Amz-Date: 20130524T000000Z\n\nbody' |
    "$bin" sigv4 "${S3[@]}" --unsigned-payload --normalize-path --session-token 'T/ok+' >"$tmp/opt.out"
grep -qx 'UNSIGNED-PAYLOAD' "$tmp/opt.out" || fail "unsigned payload"
grep -qx '/a/c' "$tmp/opt.out" || fail "normalized path"
grep -qx 'x-amz-security-token:T/ok+' "$tmp/opt.out" || fail "session token header"
grep -q 'SignedHeaders=host;x-amz-date;x-amz-security-token,' "$tmp/opt.out" || fail "token not signed"
printf 'GET /a/./b HTTP/1.1\nHost: h\nX-Amz-Date: 20130524T000000Z\n' |
    "$bin" sigv4 "${S3[@]}" | grep -qx '/a/./b' || fail "path normalized without the flag"

# 7. Errors: no date, bad input, missing flags; --help.
if printf 'GET / HTTP/1.1\nHost: h\n' | "$bin" sigv4 "${S3[@]}" 2>"$tmp/err"; then fail "no date accepted"; fi
grep -q 'X-Amz-Date' "$tmp/err" || fail "no-date message: $(cat "$tmp/err")"
if printf 'GET / HTTP/1.1\nbroken header\n' | "$bin" sigv4 "${S3[@]}" 2>"$tmp/err"; then fail "bad header accepted"; fi
grep -q 'line 2' "$tmp/err" || fail "bad header message: $(cat "$tmp/err")"
set +e
printf 'GET / HTTP/1.1\n' | "$bin" sigv4 --service s3 2>/dev/null; [ $? -eq 2 ] || fail "missing flags not a usage error"
set -e
"$bin" sigv4 --help | grep -q -- '--presign SECONDS' || fail "--help"
echo "ok"
