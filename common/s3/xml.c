/* xml.c: S3 XML replies over expat (see xml.h). */
#include "common/s3/xml.h"

#include "common/s3/pct.h"
#include "common/util/buf.h"
#include "s3shard/error.h"

#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct walk {
    XML_Parser p;
    s3s__xml_end_cb cb;
    void *ud;
    s3s__errbuf *eb;
    s3s__buf path; /* "a/b/c" */
    size_t starts[S3S_XML_MAX_DEPTH + 1]; /* path length before each element */
    int depth;
    s3s__buf text; /* text of the innermost open element */
    int rc;
} walk;

static void stop(walk *w, int rc)
{
    if (w->rc == 0)
        w->rc = rc;
    XML_StopParser(w->p, XML_FALSE);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    walk *w = ud;
    (void)attrs;
    if (w->rc != 0)
        return;
    if (w->depth >= S3S_XML_MAX_DEPTH) {
        stop(w,
             s3s__err_set(w->eb, S3S_EPARSE, "XML line %lu: nested deeper than %d",
                          (unsigned long)XML_GetCurrentLineNumber(w->p), S3S_XML_MAX_DEPTH));
        return;
    }
    w->starts[w->depth++] = w->path.len;
    int rc = w->path.len > 0 ? s3s__buf_append(&w->path, "/", 1) : 0;
    if (rc == 0)
        rc = s3s__buf_puts(&w->path, name);
    if (rc != 0) {
        stop(w, s3s__err_set(w->eb, rc, "XML: element path too long"));
        return;
    }
    s3s__buf_reset(&w->text);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    walk *w = ud;
    if (w->rc != 0)
        return;
    int rc = s3s__buf_append(&w->text, s, (size_t)len);
    if (rc != 0)
        stop(w,
             s3s__err_set(w->eb, rc == S3S_ETOOBIG ? S3S_EPARSE : rc,
                          "XML line %lu: element text longer than %u bytes",
                          (unsigned long)XML_GetCurrentLineNumber(w->p), S3S_XML_MAX_TEXT));
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    walk *w = ud;
    (void)name;
    if (w->rc != 0)
        return;
    int rc = w->cb(w->ud, w->path.data != NULL ? w->path.data : "",
                   w->text.data != NULL ? w->text.data : "", w->text.len, w->eb);
    if (rc != 0) {
        stop(w, rc);
        return;
    }
    w->path.len = w->starts[--w->depth];
    if (w->path.data != NULL)
        w->path.data[w->path.len] = '\0';
    s3s__buf_reset(&w->text);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal)
{
    walk *w = ud;
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal;
    stop(w,
         s3s__err_set(w->eb, S3S_EPARSE, "XML line %lu: DOCTYPE not allowed in an S3 reply",
                      (unsigned long)XML_GetCurrentLineNumber(w->p)));
}

int s3s__xml_walk(const char *xml, size_t len, s3s__xml_end_cb cb, void *ud, s3s__errbuf *eb)
{
    walk w;
    memset(&w, 0, sizeof w);
    if (len > (size_t)INT32_MAX)
        return s3s__err_set(eb, S3S_ETOOBIG, "XML: reply too large");
    w.p = XML_ParserCreate("UTF-8");
    if (w.p == NULL)
        return S3S_ENOMEM;
    w.cb = cb;
    w.ud = ud;
    w.eb = eb;
    s3s__buf_init(&w.path, 4096);
    s3s__buf_init(&w.text, S3S_XML_MAX_TEXT);
    XML_SetUserData(w.p, &w);
    XML_SetElementHandler(w.p, on_start, on_end);
    XML_SetCharacterDataHandler(w.p, on_text);
    XML_SetStartDoctypeDeclHandler(w.p, on_doctype);
    if (XML_Parse(w.p, xml != NULL ? xml : "", (int)len, XML_TRUE) == XML_STATUS_ERROR &&
        w.rc == 0) {
        w.rc = s3s__err_set(eb, S3S_EPARSE, "XML line %lu column %lu: %s",
                            (unsigned long)XML_GetCurrentLineNumber(w.p),
                            (unsigned long)XML_GetCurrentColumnNumber(w.p) + 1,
                            XML_ErrorString(XML_GetErrorCode(w.p)));
    }
    XML_ParserFree(w.p);
    s3s__buf_fini(&w.path);
    s3s__buf_fini(&w.text);
    return w.rc;
}

/* ---- helpers ------------------------------------------------------------------ */

int64_t s3s__iso8601_parse(const char *s)
{
    struct tm tm;
    int y, mo, d, h, mi, sec;
    memset(&tm, 0, sizeof tm);
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6)
        return 0;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm);
}

void s3s__etag_copy(char out[72], const char *s, size_t n)
{
    if (n >= 6 && strncmp(s, "&quot;", 6) == 0) {
        s += 6;
        n -= 6;
    }
    if (n >= 6 && strncmp(s + n - 6, "&quot;", 6) == 0)
        n -= 6;
    if (n > 0 && s[0] == '"') {
        s++;
        n--;
    }
    if (n > 0 && s[n - 1] == '"')
        n--;
    if (n > 71)
        n = 71;
    memcpy(out, s, n);
    out[n] = '\0';
}

static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

/* ---- ListObjectsV2 -------------------------------------------------------------- */

typedef struct list_state {
    s3s__list_page *page;
    s3s__list_entry cur;
    int root_ok;
} list_state;

#define LBR "ListBucketResult"

static int list_end(void *ud, const char *path, const char *text, size_t len, s3s__errbuf *eb)
{
    list_state *st = ud;
    s3s__list_page *p = st->page;
    if (strncmp(path, LBR, sizeof LBR - 1) != 0 ||
        (path[sizeof LBR - 1] != '\0' && path[sizeof LBR - 1] != '/'))
        return s3s__err_set(eb, S3S_EPARSE, "XML: expected a ListBucketResult, got <%.64s>", path);
    const char *rel = path + sizeof LBR - 1;
    if (*rel == '\0') {
        st->root_ok = 1;
        return 0;
    }
    rel++;
    if (strcmp(rel, "Contents/Key") == 0) {
        free(st->cur.key);
        st->cur.key = strndup(text, len);
        return st->cur.key != NULL ? 0 : S3S_ENOMEM;
    }
    if (strcmp(rel, "Contents/Size") == 0) {
        if (parse_u64(text, &st->cur.size) != 0)
            return s3s__err_set(eb, S3S_EPARSE, "XML: bad <Size> '%.32s'", text);
        return 0;
    }
    if (strcmp(rel, "Contents/ETag") == 0) {
        s3s__etag_copy(st->cur.etag, text, len);
        return 0;
    }
    if (strcmp(rel, "Contents/LastModified") == 0) {
        st->cur.mtime = s3s__iso8601_parse(text);
        return 0;
    }
    if (strcmp(rel, "Contents") == 0) {
        if (st->cur.key == NULL)
            return s3s__err_set(eb, S3S_EPARSE, "XML: <Contents> entry %zu without <Key>", p->n);
        if (p->n == p->cap) {
            if (p->cap >= S3S_XML_MAX_ENTRIES)
                return s3s__err_set(eb, S3S_ETOOBIG, "XML: more than %d entries in a page",
                                    S3S_XML_MAX_ENTRIES);
            size_t nc = p->cap != 0 ? p->cap * 2 : 64;
            s3s__list_entry *ni = realloc(p->items, nc * sizeof *ni);
            if (ni == NULL)
                return S3S_ENOMEM;
            p->items = ni;
            p->cap = nc;
        }
        p->items[p->n++] = st->cur;
        memset(&st->cur, 0, sizeof st->cur);
        return 0;
    }
    if (strcmp(rel, "CommonPrefixes/Prefix") == 0) {
        if (p->nprefixes == p->pcap) {
            if (p->pcap >= S3S_XML_MAX_ENTRIES)
                return s3s__err_set(eb, S3S_ETOOBIG, "XML: too many prefixes in a page");
            size_t nc = p->pcap != 0 ? p->pcap * 2 : 16;
            char **np = realloc(p->prefixes, nc * sizeof *np);
            if (np == NULL)
                return S3S_ENOMEM;
            p->prefixes = np;
            p->pcap = nc;
        }
        p->prefixes[p->nprefixes] = strndup(text, len);
        if (p->prefixes[p->nprefixes] == NULL)
            return S3S_ENOMEM;
        p->nprefixes++;
        return 0;
    }
    if (strcmp(rel, "IsTruncated") == 0) {
        if (strcmp(text, "true") == 0)
            p->truncated = 1;
        else if (strcmp(text, "false") == 0)
            p->truncated = 0;
        else
            return s3s__err_set(eb, S3S_EPARSE, "XML: bad <IsTruncated> '%.16s'", text);
        return 0;
    }
    if (strcmp(rel, "NextContinuationToken") == 0) {
        free(p->next_token);
        p->next_token = strndup(text, len);
        return p->next_token != NULL ? 0 : S3S_ENOMEM;
    }
    if (strcmp(rel, "EncodingType") == 0) {
        p->url_encoded = strcmp(text, "url") == 0;
        return 0;
    }
    return 0;
}

void s3s__list_page_fini(s3s__list_page *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i].key);
    for (size_t i = 0; i < p->nprefixes; i++)
        free(p->prefixes[i]);
    free(p->items);
    free(p->prefixes);
    free(p->next_token);
    memset(p, 0, sizeof *p);
}

static int url_decode_inplace(char **s)
{
    s3s__buf b;
    s3s__buf_init(&b, S3S_XML_MAX_TEXT);
    int rc = s3s__pct_decode(&b, *s, strlen(*s));
    /* S3's "url" encoding writes spaces as '+' (form encoding). */
    if (rc == 0) {
        char *d = s3s__buf_detach(&b, NULL);
        if (d == NULL)
            return S3S_ENOMEM;
        free(*s);
        *s = d;
    }
    s3s__buf_fini(&b);
    return rc;
}

static void plus_to_space(char *s)
{
    for (; *s != '\0'; s++)
        if (*s == '+')
            *s = ' ';
}

int s3s__xml_parse_list(s3s__list_page *out, const char *xml, size_t len, s3s__errbuf *eb)
{
    list_state st;
    memset(out, 0, sizeof *out);
    memset(&st, 0, sizeof st);
    st.page = out;
    int rc = s3s__xml_walk(xml, len, list_end, &st, eb);
    free(st.cur.key);
    if (rc == 0 && !st.root_ok)
        rc = s3s__err_set(eb, S3S_EPARSE, "XML: no ListBucketResult");
    if (rc == 0 && out->truncated && (out->next_token == NULL || out->next_token[0] == '\0'))
        rc = s3s__err_set(eb, S3S_EPARSE, "XML: IsTruncated without NextContinuationToken");
    if (rc == 0 && out->url_encoded) {
        for (size_t i = 0; rc == 0 && i < out->n; i++) {
            plus_to_space(out->items[i].key);
            rc = url_decode_inplace(&out->items[i].key);
        }
        for (size_t i = 0; rc == 0 && i < out->nprefixes; i++) {
            plus_to_space(out->prefixes[i]);
            rc = url_decode_inplace(&out->prefixes[i]);
        }
    }
    if (rc != 0)
        s3s__list_page_fini(out);
    return rc;
}

/* ---- Error, multipart ------------------------------------------------------------- */

static void copy_text(char *dst, size_t cap, const char *text, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, text, len);
    dst[len] = '\0';
}

static int error_end(void *ud, const char *path, const char *text, size_t len, s3s__errbuf *eb)
{
    s3s__xml_error *e = ud;
    (void)eb;
    if (strcmp(path, "Error/Code") == 0)
        copy_text(e->code, sizeof e->code, text, len);
    else if (strcmp(path, "Error/Message") == 0)
        copy_text(e->message, sizeof e->message, text, len);
    return 0;
}

int s3s__xml_parse_error(s3s__xml_error *out, const char *xml, size_t len, s3s__errbuf *eb)
{
    memset(out, 0, sizeof *out);
    return s3s__xml_walk(xml, len, error_end, out, eb);
}

typedef struct one_state {
    const char *want;
    char *val;
    s3s__xml_error err;
    int is_error;
} one_state;

static int one_end(void *ud, const char *path, const char *text, size_t len, s3s__errbuf *eb)
{
    one_state *st = ud;
    if (strncmp(path, "Error", 5) == 0 && (path[5] == '\0' || path[5] == '/')) {
        st->is_error = 1;
        return error_end(&st->err, path, text, len, eb);
    }
    if (strcmp(path, st->want) == 0 && st->val == NULL) {
        st->val = strndup(text, len);
        if (st->val == NULL)
            return S3S_ENOMEM;
    }
    return 0;
}

static int parse_one(const char *want, char **out, const char *xml, size_t len, s3s__errbuf *eb)
{
    one_state st;
    memset(&st, 0, sizeof st);
    st.want = want;
    *out = NULL;
    int rc = s3s__xml_walk(xml, len, one_end, &st, eb);
    if (rc == 0 && st.is_error)
        rc = s3s__err_set(eb, S3S_EHTTP, "%s: %s", st.err.code[0] ? st.err.code : "Error",
                          st.err.message);
    else if (rc == 0 && st.val == NULL)
        rc = s3s__err_set(eb, S3S_EPARSE, "XML: no <%s> in the reply", want);
    if (rc != 0) {
        free(st.val);
        return rc;
    }
    *out = st.val;
    return 0;
}

int s3s__xml_parse_upload_id(char **out, const char *xml, size_t len, s3s__errbuf *eb)
{
    return parse_one("InitiateMultipartUploadResult/UploadId", out, xml, len, eb);
}

int s3s__xml_parse_complete(char etag[72], const char *xml, size_t len, s3s__errbuf *eb)
{
    char *v = NULL;
    int rc = parse_one("CompleteMultipartUploadResult/ETag", &v, xml, len, eb);
    if (rc == 0) {
        s3s__etag_copy(etag, v, strlen(v));
        free(v);
    }
    return rc;
}
