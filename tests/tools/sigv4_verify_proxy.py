#!/usr/bin/python3
"""sigv4_verify_proxy.py: a reverse proxy that checks the SigV4 signature of
every request with botocore's own signer before forwarding it to the upstream
(s3rver, which checks only the access key id).

Run with Debian's python3 and python3-botocore:
    /usr/bin/python3 sigv4_verify_proxy.py --upstream 127.0.0.1:PORT \
        [--listen PORT] [--credentials AKID:SECRET]... [--region R] [--log FILE]
The chosen port is printed on stdout as the first line.

For each request:
- Authorization header (AWS4-HMAC-SHA256): the canonical request is rebuilt from
  the method, the path (percent-decoded, then encoded once by SigV4's rules; never
  normalized: S3 keeps '.', '..' and '//'), the query (pairs decoded, re-encoded,
  sorted), exactly the headers named in SignedHeaders (values as received) and
  x-amz-content-sha256 (a hex hash, or UNSIGNED-PAYLOAD), then signed with
  botocore's S3SigV4Auth using the secret of the credential's access key.
  A hex payload hash is also checked against the body (400 XAmzContentSHA256Mismatch).
- Presigned URL (X-Amz-Signature in the query): the same with
  S3SigV4QueryAuth (payload UNSIGNED-PAYLOAD, X-Amz-Signature left out), and
  X-Amz-Date + X-Amz-Expires must not be past.
- No signature at all: 403 AccessDenied. A signature that does not match:
  403 SignatureDoesNotMatch with the canonical request and string to sign we
  expected in the XML (as S3 does). Unknown access key: 403 InvalidAccessKeyId.
Otherwise the request is forwarded and the reply streamed back.

Control (never forwarded): GET /__sigv4proxy/stats gives JSON counters
{"verified", "refused", "unsigned", "presigned", "last_refusals": [...]};
POST /__sigv4proxy/reset zeroes them.
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import socket
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

SPOOL_MAX = 64 * 1024 * 1024  # request bodies above this spill to a temp file
COPY_CHUNK = 1024 * 1024
MAX_SKEW = datetime.timedelta(minutes=15)


class Stats:
    def __init__(self):
        self.mu = threading.Lock()
        self.reset()

    def reset(self):
        self.verified = 0
        self.refused = 0
        self.unsigned = 0
        self.presigned = 0
        self.last_refusals = []

    def refuse(self, what):
        with self.mu:
            self.refused += 1
            self.last_refusals.append(what)
            del self.last_refusals[:-20]

    def json(self):
        with self.mu:
            return json.dumps({
                'verified': self.verified, 'refused': self.refused,
                'unsigned': self.unsigned, 'presigned': self.presigned,
                'last_refusals': self.last_refusals,
            }) + '\n'


STATS = Stats()
CONFIG = {'upstream': ('127.0.0.1', 0), 'secrets': {}, 'log': None}


def sigv4_quote(s):
    """URI-encode per SigV4: everything but unreserved characters (and '/' for paths)."""
    return quote(s, safe='-_.~')


def canonical_path(raw_path):
    # Decode once, encode once, segment by segment: no normalization for S3.
    return '/'.join(sigv4_quote(unquote(seg)) for seg in raw_path.split('/'))


def canonical_query(raw_query, drop=()):
    pairs = []
    if raw_query:
        for part in raw_query.split('&'):
            k, _, v = part.partition('=')
            k, v = unquote(k), unquote(v)
            if k in drop:
                continue
            pairs.append((sigv4_quote(k), sigv4_quote(v)))
    return '&'.join(f'{k}={v}' for k, v in sorted(pairs))


class ExactHeadersMixin:
    """Sign exactly the headers the client listed in SignedHeaders."""

    signed_names = ()

    def headers_to_sign(self, request):
        out = HTTPHeaders()
        for name in self.signed_names:
            for v in request.headers.get_all(name) or []:
                out[name] = v
        return out


class VerifyAuth(ExactHeadersMixin, S3SigV4Auth):
    pass


class VerifyQueryAuth(ExactHeadersMixin, S3SigV4QueryAuth):
    pass


def s3_error(code, message, resource, extra=''):
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        f'<Code>{escape(code)}</Code><Message>{escape(message)}</Message>'
        f'<Resource>{escape(resource)}</Resource>{extra}'
        '<RequestId>sigv4proxy</RequestId></Error>\n').encode()


def parse_auth_header(value):
    algo, _, rest = value.partition(' ')
    if algo != 'AWS4-HMAC-SHA256':
        raise ValueError(f'unsupported algorithm {algo!r}')
    fields = {}
    for part in rest.split(','):
        k, _, v = part.strip().partition('=')
        fields[k] = v
    for need in ('Credential', 'SignedHeaders', 'Signature'):
        if not fields.get(need):
            raise ValueError(f'Authorization header lacks {need}')
    return fields['Credential'], fields['SignedHeaders'], fields['Signature']


def parse_amz_date(s):
    return datetime.datetime.strptime(s, '%Y%m%dT%H%M%SZ')


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    upstream = None  # per-connection http.client connection

    def log_message(self, fmt, *args):
        if CONFIG['log']:
            CONFIG['log'].write('%s %s\n' % (self.address_string(), fmt % args))
            CONFIG['log'].flush()

    # Every method goes through one path.
    def do_GET(self):
        self.handle_any()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = do_GET

    # ---- replies of our own --------------------------------------------------------------
    def reply(self, status, body, ctype='application/xml', close=False):
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        if close:
            self.send_header('Connection', 'close')
            self.close_connection = True
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    # ---- the body ------------------------------------------------------------------------
    def read_body(self):
        """Read the request body (Content-Length or chunked) into a spooled file."""
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX)
        h = hashlib.sha256()
        te = (self.headers.get('Transfer-Encoding') or '').lower()
        if 'chunked' in te:
            while True:
                line = self.rfile.readline(4096)
                size = int(line.split(b';')[0].strip() or b'0', 16)
                if size == 0:
                    while self.rfile.readline(4096) not in (b'\r\n', b'\n', b''):
                        pass
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, COPY_CHUNK))
                    if not b:
                        raise ConnectionError('client closed mid-body')
                    spool.write(b)
                    h.update(b)
                    left -= len(b)
                self.rfile.readline(4096)
        else:
            left = int(self.headers.get('Content-Length') or 0)
            while left:
                b = self.rfile.read(min(left, COPY_CHUNK))
                if not b:
                    raise ConnectionError('client closed mid-body')
                spool.write(b)
                h.update(b)
                left -= len(b)
        size = spool.tell()
        spool.seek(0)
        return spool, size, h.hexdigest()

    # ---- verification -------------------------------------------------------------------
    def verify(self, body_hash):
        """Returns None when the request is correctly signed, else (status, code, msg, extra)."""
        parts = urlsplit(self.path)
        query = parts.query
        qkeys = {unquote(p.partition('=')[0]): unquote(p.partition('=')[2])
                 for p in query.split('&') if p} if query else {}
        auth = self.headers.get('Authorization')
        presigned = 'X-Amz-Signature' in qkeys
        if auth is None and not presigned:
            with STATS.mu:
                STATS.unsigned += 1
            return (403, 'AccessDenied', 'Access Denied: the request carries no SigV4 signature', '')
        try:
            if presigned:
                if qkeys.get('X-Amz-Algorithm') != 'AWS4-HMAC-SHA256':
                    raise ValueError('X-Amz-Algorithm must be AWS4-HMAC-SHA256')
                credential = qkeys['X-Amz-Credential']
                signed = qkeys['X-Amz-SignedHeaders']
                given = qkeys['X-Amz-Signature']
                amz_date = qkeys['X-Amz-Date']
                expires = int(qkeys.get('X-Amz-Expires', '0'))
            else:
                credential, signed, given = parse_auth_header(auth)
                amz_date = self.headers.get('X-Amz-Date') or ''
            akid, date, region, service, term = credential.split('/')
            if term != 'aws4_request':
                raise ValueError('credential scope must end with aws4_request')
            when = parse_amz_date(amz_date)
        except (KeyError, ValueError) as e:
            return (400, 'AuthorizationQueryParametersError' if presigned
                    else 'AuthorizationHeaderMalformed', f'malformed signature: {e}', '')
        secret = CONFIG['secrets'].get(akid)
        if secret is None:
            return (403, 'InvalidAccessKeyId',
                    f'The AWS Access Key Id {akid} you provided does not exist in our records.', '')
        if date != amz_date[:8]:
            return (403, 'SignatureDoesNotMatch',
                    f'credential date {date} differs from the request date {amz_date}', '')
        now = datetime.datetime.utcnow()
        if presigned:
            if now > when + datetime.timedelta(seconds=expires):
                return (403, 'AccessDenied', 'Request has expired', '')
        elif abs(now - when) > MAX_SKEW:
            return (403, 'RequestTimeTooSkewed',
                    'The difference between the request time and the current time is too large.',
                    '')

        names = [n for n in signed.split(';') if n]
        if 'host' not in names:
            return (403, 'SignatureDoesNotMatch', 'the host header must be signed', '')
        url = 'http://' + (self.headers.get('Host') or 'localhost') + canonical_path(parts.path)
        cq = canonical_query(query, drop=('X-Amz-Signature',) if presigned else ())
        if cq:
            url += '?' + cq
        headers = HTTPHeaders()
        for name in names:
            for v in self.headers.get_all(name) or []:
                headers[name] = v
        if not presigned:
            sha = self.headers.get('X-Amz-Content-SHA256')
            if sha is None:
                return (400, 'InvalidRequest',
                        'Missing required header for this request: x-amz-content-sha256', '')
            if 'x-amz-content-sha256' not in names:
                headers['X-Amz-Content-SHA256'] = sha
        req = AWSRequest(method=self.command, url=url, headers=headers)
        req.context['timestamp'] = amz_date
        creds = Credentials(akid, secret)
        signer = (VerifyQueryAuth(creds, service, region, expires=expires) if presigned
                  else VerifyAuth(creds, service, region))
        signer.signed_names = names
        creq = signer.canonical_request(req)
        sts = signer.string_to_sign(req, creq)
        want = signer.signature(sts, req)
        if not hmac.compare_digest(want, given):
            extra = (f'<AWSAccessKeyId>{escape(akid)}</AWSAccessKeyId>'
                     f'<StringToSign>{escape(sts)}</StringToSign>'
                     f'<SignatureProvided>{escape(given)}</SignatureProvided>'
                     f'<CanonicalRequest>{escape(creq)}</CanonicalRequest>')
            return (403, 'SignatureDoesNotMatch',
                    'The request signature we calculated does not match the signature you '
                    'provided. Check your key and signing method.', extra)
        if not presigned:
            sha = self.headers.get('X-Amz-Content-SHA256')
            if sha not in ('UNSIGNED-PAYLOAD', 'STREAMING-UNSIGNED-PAYLOAD-TRAILER') \
                    and sha != body_hash:
                return (400, 'XAmzContentSHA256Mismatch',
                        "The provided 'x-amz-content-sha256' header does not match what was "
                        'computed.', '')
        with STATS.mu:
            STATS.verified += 1
            if presigned:
                STATS.presigned += 1
        return None

    # ---- control and forwarding ---------------------------------------------------------
    def control(self):
        path = urlsplit(self.path).path
        if path == '/__sigv4proxy/stats':
            self.reply(200, STATS.json().encode(), 'application/json')
        elif path == '/__sigv4proxy/reset':
            with STATS.mu:
                STATS.reset()
            self.reply(200, b'reset\n', 'text/plain')
        else:
            self.reply(404, b'unknown control path\n', 'text/plain')

    def handle_any(self):
        if self.path.startswith('/__sigv4proxy/'):
            self.control()
            return
        try:
            body, size, body_hash = self.read_body()
        except (ConnectionError, ValueError) as e:
            self.log_message('bad body: %s', e)
            self.close_connection = True
            return
        with body:
            bad = self.verify(body_hash)
            if bad is not None:
                status, code, msg, extra = bad
                resource = unquote(urlsplit(self.path).path)
                STATS.refuse({'method': self.command, 'path': self.path, 'code': code,
                              'message': msg})
                self.log_message('refused %s %s: %s %s', self.command, self.path, code, msg)
                self.reply(status, s3_error(code, msg, resource, extra))
                return
            self.forward(body, size)

    def forward(self, body, size):
        for attempt in (0, 1):
            fresh = self.upstream is None
            if fresh:
                self.upstream = http.client.HTTPConnection(*CONFIG['upstream'], timeout=300)
            try:
                up = self.upstream
                up.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    if k.lower() in ('transfer-encoding', 'content-length', 'connection',
                                     'expect', 'keep-alive'):
                        continue
                    up.putheader(k, v)
                if size or self.command in ('PUT', 'POST'):
                    up.putheader('Content-Length', str(size))
                up.endheaders()
                body.seek(0)
                while True:
                    b = body.read(COPY_CHUNK)
                    if not b:
                        break
                    up.send(b)
                resp = up.getresponse()
                break
            except (ConnectionError, http.client.HTTPException, socket.timeout, OSError):
                # Only a kept-alive connection the server had closed is retried
                # (once, on a new connection); a failure on a fresh one is final.
                self.upstream.close()
                self.upstream = None
                if attempt == 1 or fresh:
                    self.reply(502, b'upstream failed\n', 'text/plain', close=True)
                    return
        self.send_response_only(resp.status, resp.reason)
        length = resp.getheader('Content-Length')
        chunked = False
        for k, v in resp.getheaders():
            if k.lower() in ('transfer-encoding', 'connection', 'keep-alive'):
                continue
            self.send_header(k, v)
        if length is None and self.command != 'HEAD' and resp.status not in (204, 304):
            self.send_header('Transfer-Encoding', 'chunked')
            chunked = True
        self.end_headers()
        while True:
            # Read even a HEAD reply (b''): http.client keeps an unread response
            # pending, and the next request on the connection would be sent
            # and then fail with ResponseNotReady, so retried: a PUT twice.
            b = resp.read(COPY_CHUNK)
            if not b:
                break
            if chunked:
                self.wfile.write(b'%x\r\n%s\r\n' % (len(b), b))
            else:
                self.wfile.write(b)
        if chunked:
            self.wfile.write(b'0\r\n\r\n')
        if resp.will_close:
            self.upstream.close()
            self.upstream = None

    def finish(self):
        try:
            super().finish()
        finally:
            if self.upstream is not None:
                self.upstream.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--upstream', required=True, help='HOST:PORT of the S3 server')
    ap.add_argument('--listen', type=int, default=0, help='port on 127.0.0.1 (0: any)')
    ap.add_argument('--credentials', action='append', default=[],
                    help='AKID:SECRET accepted (default S3RVER:S3RVER); repeatable')
    ap.add_argument('--log', help='log every request and refusal to this file')
    a = ap.parse_args()
    host, _, port = a.upstream.rpartition(':')
    CONFIG['upstream'] = (host, int(port))
    for c in a.credentials or ['S3RVER:S3RVER']:
        k, _, s = c.partition(':')
        CONFIG['secrets'][k] = s
    if a.log:
        CONFIG['log'] = open(a.log, 'a')
    srv = Server(('127.0.0.1', a.listen), Handler)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    sys.exit(main())
