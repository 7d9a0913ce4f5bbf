/* rawreq.c: raw HTTP request parsing (see rawreq.h). */
#include "common/s3/rawreq.h"

#include "s3shard/error.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void s3s__rawreq_fini(s3s__rawreq *r)
{
    if (r == NULL)
        return;
    free(r->method);
    free(r->target);
    free(r->path);
    free(r->query);
    for (size_t i = 0; i < r->nheaders; i++) {
        free((char *)r->headers[i].name);
        free((char *)r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

const char *s3s__rawreq_header(const s3s__rawreq *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static int add_header_n(s3s__rawreq *r, const char *name, size_t nn, const char *value, size_t vn)
{
    if (r->nheaders >= S3S_RAWREQ_MAX_HEADERS)
        return S3S_ETOOBIG;
    s3s__sigv4_header *h = realloc(r->headers, (r->nheaders + 1) * sizeof *h);
    if (h == NULL)
        return S3S_ENOMEM;
    r->headers = h;
    char *n = dupn(name, nn);
    char *v = dupn(value, vn);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return S3S_ENOMEM;
    }
    h[r->nheaders].name = n;
    h[r->nheaders].value = v;
    r->nheaders++;
    return 0;
}

int s3s__rawreq_add_header(s3s__rawreq *r, const char *name, const char *value)
{
    return add_header_n(r, name, strlen(name), value, strlen(value));
}

/* Appends ",<text>" to the last header's value (obsolete line folding). */
static int continue_header(s3s__rawreq *r, const char *s, size_t n)
{
    char *old = (char *)r->headers[r->nheaders - 1].value;
    size_t ol = strlen(old);
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    char *v = realloc(old, ol + n + 2);
    if (v == NULL)
        return S3S_ENOMEM;
    v[ol] = ',';
    memcpy(v + ol + 1, s, n);
    v[ol + n + 1] = '\0';
    r->headers[r->nheaders - 1].value = v;
    return 0;
}

int s3s__rawreq_parse(s3s__rawreq *out, const char *data, size_t len, s3s__errbuf *eb)
{
    s3s__rawreq r;
    int rc = 0;
    size_t pos = 0;
    int line = 0;
    memset(&r, 0, sizeof r);
    memset(out, 0, sizeof *out);
    while (pos <= len) {
        const char *s = data + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - s) : len - pos;
        size_t next = pos + n + (nl != NULL ? 1 : 0);
        if (n > 0 && s[n - 1] == '\r')
            n--;
        line++;
        if (line == 1) {
            const char *sp1 = memchr(s, ' ', n);
            if (sp1 == NULL || sp1 == s) {
                rc = s3s__err_set(eb, S3S_EPARSE,
                                  "request line 1: expected 'METHOD TARGET HTTP/1.1'");
                goto fail;
            }
            const char *t = sp1 + 1;
            const char *end = s + n;
            const char *last = end;
            for (const char *c = end; c > t; c--)
                if (c[-1] == ' ') {
                    last = c - 1;
                    break;
                }
            if (last == end || last == t) /* no version: the target is the rest */
                last = end;
            r.method = dupn(s, (size_t)(sp1 - s));
            r.target = dupn(t, (size_t)(last - t));
            if (r.method == NULL || r.target == NULL)
                goto nomem;
            if (r.target[0] == '\0') {
                rc = s3s__err_set(eb, S3S_EPARSE, "request line 1: empty target");
                goto fail;
            }
            char *q = strchr(r.target, '?');
            r.path = dupn(r.target, q != NULL ? (size_t)(q - r.target) : strlen(r.target));
            if (r.path == NULL || (q != NULL && (r.query = strdup(q + 1)) == NULL))
                goto nomem;
        } else if (n == 0) {
            pos = next;
            break; /* end of headers: the rest is the body */
        } else if (s[0] == ' ' || s[0] == '\t') {
            if (r.nheaders == 0) {
                rc = s3s__err_set(eb, S3S_EPARSE,
                                  "request line %d: continuation line before any header", line);
                goto fail;
            }
            if ((rc = continue_header(&r, s, n)) != 0)
                goto fail;
        } else {
            const char *colon = memchr(s, ':', n);
            if (colon == NULL || colon == s) {
                rc = s3s__err_set(eb, S3S_EPARSE, "request line %d: expected 'Name: value' header",
                                  line);
                goto fail;
            }
            const char *v = colon + 1;
            size_t vn = (size_t)(s + n - v);
            while (vn > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vn--;
            }
            while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
                vn--; /* optional whitespace is not part of the value (RFC 9110) */
            rc = add_header_n(&r, s, (size_t)(colon - s), v, vn);
            if (rc == S3S_ETOOBIG) {
                s3s__err_set(eb, rc, "request line %d: more than %d headers", line,
                             S3S_RAWREQ_MAX_HEADERS);
                goto fail;
            }
            if (rc != 0)
                goto fail;
        }
        pos = next;
        if (nl == NULL) {
            pos = len + 1;
            break;
        }
    }
    if (r.method == NULL) {
        rc = s3s__err_set(eb, S3S_EPARSE, "request: empty input, expected a request line");
        goto fail;
    }
    if (pos < len) {
        r.body_len = len - pos;
        r.body = dupn(data + pos, r.body_len);
        if (r.body == NULL)
            goto nomem;
    }
    *out = r;
    return 0;
nomem:
    rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
fail:
    s3s__rawreq_fini(&r);
    return rc;
}
