#!/usr/bin/env bash
# The request engine against a small fault-injecting server (python, loopback):
# a body cut short twice is resumed with Range + If-Match and arrives whole and
# exact; 503 SlowDown is retried; an object whose ETag changes between the cut
# and the resume fails with "object changed" instead of mixing versions.
# (The thorough fault suite, through a proxy in front of s3rver, is testinfra's.)
set -euo pipefail
bin="$S3SHARD_BUILD_DIR/s3shard"
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; cat "$tmp/srv.log" 2>/dev/null | tail -20; exit 1; }

cat >"$tmp/srv.py" <<'PY'
import http.server, socketserver, sys, re
DATA = bytes((i * 7) % 251 for i in range(1000000))
hits = {}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_HEAD(self): self.serve(True)
    def do_GET(self): self.serve(False)
    def serve(self, head):
        k = self.path
        n = hits[k] = hits.get(k, 0) + 1
        rng = self.headers.get("Range")
        sys.stderr.write(f"{self.command} {k} #{n} range={rng} if-match={self.headers.get('If-Match')}\n")
        sys.stderr.flush()
        if k.startswith("/lb?"):
            body = (b'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><IsTruncated>false'
                    b'</IsTruncated><Contents><Key>one</Key><Size>1</Size><ETag>"a"</ETag></Contents>'
                    b'<Contents><Key>two</Key><Size>2</Size><ETag>"b"</ETag></Contents></ListBucketResult>')
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
            if n == 1:
                self.wfile.write(body[:60]); self.wfile.flush(); self.close_connection = True; return
            self.wfile.write(body); return
        if "slow" in k and n <= 2:
            body = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
            self.send_response(503); self.send_header("Content-Length", str(len(body))); self.end_headers()
            if not head: self.wfile.write(body)
            return
        etag = '"e2"' if "changed" in k and n >= 3 else '"e1"'
        start, end = 0, len(DATA) - 1
        if rng:
            m = re.match(r"bytes=(\d+)-(\d*)", rng)
            start = int(m.group(1)); end = int(m.group(2)) if m.group(2) else end
            self.send_response(206); self.send_header("Content-Range", f"bytes {start}-{end}/{len(DATA)}")
        else:
            self.send_response(200)
        body = DATA[start:end + 1]
        self.send_header("Content-Length", str(len(body))); self.send_header("ETag", etag); self.end_headers()
        if head: return
        if ("cut" in k and n <= 3) or ("changed" in k and n == 2):
            self.wfile.write(body[:100000 * n]); self.wfile.flush(); self.close_connection = True; return
        self.wfile.write(body)
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
python3 "$tmp/srv.py" >"$tmp/port" 2>"$tmp/srv.log" &
pid=$!
for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port=$(cat "$tmp/port")
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7) % 251 for i in range(1000000)))' >"$tmp/want"
export AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=y
s3() { "$bin" --endpoint "http://127.0.0.1:$port" "$@"; }

s3 cat s3://b/cut >"$tmp/got" || fail "cut body not recovered"
cmp "$tmp/got" "$tmp/want" || fail "resumed body differs"
grep -q 'GET /b/cut #3 range=bytes=200000-999999 if-match="e1"' "$tmp/srv.log" || fail "no resume"
grep -q 'GET /b/cut #4 range=bytes=500000-999999 if-match="e1"' "$tmp/srv.log" || fail "no 2nd resume"

s3 cat s3://b/slow >"$tmp/got" || fail "SlowDown not retried"
cmp "$tmp/got" "$tmp/want" || fail "body after SlowDown differs"

# A cut listing page is fetched again whole (a listing is never resumed by Range).
s3 ls s3://lb/ >"$tmp/ls" 2>/dev/null || fail "cut listing not retried"
[ "$(cut -f1 "$tmp/ls" | tr '\n' ' ')" = "one two " ] || fail "listing after a cut: $(cat "$tmp/ls")"
grep 'GET /lb?' "$tmp/srv.log" | tail -1 | grep -q 'range=None' || fail "listing resumed with a Range"

if s3 cat s3://b/changed >"$tmp/got" 2>"$tmp/err"; then fail "changed object accepted"; fi
grep -q 'object changed' "$tmp/err" || fail "changed message: $(cat "$tmp/err")"
[ "$(stat -c %s "$tmp/got")" -le 200000 ] || fail "bytes of the new version delivered"
cmp -n 200000 "$tmp/got" "$tmp/want" 2>/dev/null || cmp "$tmp/got" <(head -c "$(stat -c %s "$tmp/got")" "$tmp/want") ||
    fail "wrong bytes before the change"
echo ok
