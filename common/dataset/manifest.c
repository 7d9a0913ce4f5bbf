/* manifest.c: ManifestFile and AugmentedManifestFile parsers (see manifest.h).
 *
 * A ManifestFile is scanned by hand between elements ('[', ',', ']') and each
 * element is decoded by jansson with JSON_DISABLE_EOF_CHECK, which reports how
 * many bytes it consumed: that gives every element its line and column without
 * a JSON parser of our own. */
#include "common/dataset/manifest.h"

#include "common/dataset/errinfo.h"
#include "s3shard/error.h"

#include <jansson.h>

#include <stdlib.h>
#include <string.h>

/* A cursor that knows its line and column (advanced incrementally, so that
 * positions cost O(n) over the whole file). */
typedef struct cursor {
    const char *buf;
    size_t len, off, line, col;
} cursor;

static void cur_to(cursor *c, size_t off)
{
    if (off > c->len)
        off = c->len;
    for (; c->off < off; c->off++) {
        if (c->buf[c->off] == '\n') {
            c->line++;
            c->col = 1;
        } else {
            c->col++;
        }
    }
}

static void skip_ws(cursor *c)
{
    size_t o = c->off;
    while (o < c->len &&
           (c->buf[o] == ' ' || c->buf[o] == '\t' || c->buf[o] == '\n' || c->buf[o] == '\r'))
        o++;
    cur_to(c, o);
}

static const char *what_at(const cursor *c)
{
    return c->off >= c->len ? "the end of the file" : "another character";
}

int s3s__manifest_parse(const char *buf, size_t len, const char *name, uint64_t max_elem,
                        int skip_bad, s3s__manifest_cb cb, void *ud, char **bucket, char **prefix,
                        size_t *skipped, s3s_errinfo *e)
{
    cursor c = {buf, len, 0, 1, 1};
    char *key = NULL;
    size_t keycap = 0, plen = 0;
    int rc = 0;
    *bucket = *prefix = NULL;
    if (skipped)
        *skipped = 0;
    skip_ws(&c);
    if (c.off >= len || buf[c.off] != '[')
        return s3s__ei_set(e, S3S_EPARSE,
                           "%s:%zu:%zu: expected '[' opening the manifest's JSON array, found %s",
                           name, c.line, c.col, what_at(&c));
    cur_to(&c, c.off + 1);
    for (size_t idx = 0;; idx++) {
        skip_ws(&c);
        if (c.off < len && buf[c.off] == ']' && idx == 0)
            return s3s__ei_set(e, S3S_EPARSE,
                               "%s:%zu:%zu: empty manifest: expected the {\"prefix\": "
                               "\"s3://bucket/prefix/\"} element first",
                               name, c.line, c.col);
        size_t eline = c.line, ecol = c.col, start = c.off;
        json_error_t je;
        json_t *v =
            json_loadb(buf + c.off, len - c.off, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &je);
        if (v == NULL) {
            cur_to(&c, start + (je.position > 0 ? (size_t)je.position : 0));
            rc = s3s__ei_set(e, S3S_EPARSE, "%s:%zu:%zu: invalid JSON in manifest element %zu: %s",
                             name, c.line, c.col, idx, je.text);
            goto out;
        }
        size_t used = (size_t)je.position;
        if (used > max_elem) {
            json_decref(v);
            rc = s3s__ei_set(e, S3S_ETOOBIG,
                             "%s:%zu:%zu: manifest element %zu is %zu bytes, over the cap of "
                             "%llu (MaxRecordBytes)",
                             name, eline, ecol, idx, used, (unsigned long long)max_elem);
            goto out;
        }
        cur_to(&c, start + used);
        if (idx == 0) {
            json_t *p = json_is_object(v) ? json_object_get(v, "prefix") : NULL;
            if (p == NULL || !json_is_string(p) || json_object_size(v) != 1) {
                json_decref(v);
                rc = s3s__ei_set(e, S3S_EPARSE,
                                 "%s:%zu:%zu: expected {\"prefix\": \"s3://bucket/prefix/\"} as "
                                 "the manifest's first element",
                                 name, eline, ecol);
                goto out;
            }
            s3s_errinfo sub;
            if (s3s__ds_split_uri(json_string_value(p), bucket, prefix, &sub) != 0) {
                json_decref(v);
                rc = s3s__ei_set(e, S3S_EPARSE, "%s:%zu:%zu: manifest prefix: %s", name, eline,
                                 ecol, sub.msg);
                goto out;
            }
            plen = strlen(*prefix);
        } else {
            const char *err = NULL;
            if (!json_is_string(v))
                err = "expected a string (a key relative to the prefix)";
            else if (json_string_length(v) == 0)
                err = "expected a non-empty key";
            else if (strncmp(json_string_value(v), "s3://", 5) == 0)
                err = "expected a key relative to the prefix, not an s3:// URI (a manifest's "
                      "keys all live in the prefix's bucket)";
            else if (memchr(json_string_value(v), '\0', json_string_length(v)) != NULL)
                err = "expected a key without NUL characters";
            else if (plen + json_string_length(v) > 1024)
                err = "key longer than S3's 1024 bytes";
            if (err != NULL && skip_bad) {
                if (skipped)
                    (*skipped)++;
            } else if (err != NULL) {
                json_decref(v);
                rc = s3s__ei_set(e, S3S_EPARSE, "%s:%zu:%zu: manifest element %zu: %s", name, eline,
                                 ecol, idx, err);
                goto out;
            } else {
                size_t kl = plen + json_string_length(v);
                if (kl + 1 > keycap) {
                    char *k = realloc(key, kl + 1);
                    if (k == NULL) {
                        json_decref(v);
                        rc = s3s__ei_set(e, S3S_ENOMEM, "out of memory");
                        goto out;
                    }
                    key = k;
                    keycap = kl + 1;
                }
                memcpy(key, *prefix, plen);
                memcpy(key + plen, json_string_value(v), json_string_length(v));
                key[kl] = '\0';
                if ((rc = cb(ud, key, kl, eline)) != 0) {
                    json_decref(v);
                    if (e != NULL && e->code != rc)
                        s3s__ei_set(e, rc, "%s:%zu:%zu: %s", name, eline, ecol, s3s_strerror(rc));
                    goto out;
                }
            }
        }
        json_decref(v);
        skip_ws(&c);
        if (c.off < len && buf[c.off] == ',') {
            cur_to(&c, c.off + 1);
            continue;
        }
        if (c.off < len && buf[c.off] == ']') {
            cur_to(&c, c.off + 1);
            skip_ws(&c);
            if (c.off < len) {
                rc = s3s__ei_set(e, S3S_EPARSE,
                                 "%s:%zu:%zu: expected the end of the file after the manifest's "
                                 "closing ']'",
                                 name, c.line, c.col);
                goto out;
            }
            break;
        }
        rc = s3s__ei_set(e, S3S_EPARSE,
                         "%s:%zu:%zu: expected ',' or ']' after manifest element %zu, found %s",
                         name, c.line, c.col, idx, what_at(&c));
        goto out;
    }
out:
    free(key);
    return rc;
}

static int ends_with_ref(const char *s)
{
    size_t n = strlen(s);
    return n >= 4 && strcmp(s + n - 4, "-ref") == 0;
}

/* check_line: one record's object -> its selected attributes, or an error text. */
static const char *select_attrs(json_t *obj, const char *const *attrs, size_t nattrs, json_t **out,
                                char *why, size_t whylen)
{
    *out = NULL;
    if (!json_is_object(obj))
        return "expected a JSON object on each line";
    json_t *sel = json_object();
    if (sel == NULL)
        return "out of memory";
    for (size_t i = 0; i < nattrs; i++) {
        json_t *v = json_object_get(obj, attrs[i]);
        if (v == NULL) {
            snprintf(why, whylen, "attribute \"%.200s\" missing (AttributeNames asks for it)",
                     attrs[i]);
            json_decref(sel);
            return why;
        }
        if (ends_with_ref(attrs[i])) {
            char *b, *k;
            s3s_errinfo sub;
            if (!json_is_string(v)) {
                snprintf(why, whylen, "attribute \"%.200s\" must be an s3:// URI string", attrs[i]);
                json_decref(sel);
                return why;
            }
            if (s3s__ds_split_uri(json_string_value(v), &b, &k, &sub) != 0 || k[0] == '\0') {
                if (k == NULL) /* sub.msg quotes the URI */
                    snprintf(why, whylen, "attribute \"%.100s\": %.250s", attrs[i], sub.msg);
                else
                    snprintf(why, whylen,
                             "attribute \"%.100s\": \"%.200s\": expected an s3://bucket/key "
                             "URI with a key",
                             attrs[i], json_string_value(v));
                free(b);
                free(k);
                json_decref(sel);
                return why;
            }
            free(b);
            free(k);
        }
        json_object_set(sel, attrs[i], v);
    }
    *out = sel;
    return NULL;
}

int s3s__augmented_parse(const char *buf, size_t len, const char *name, const char *const *attrs,
                         size_t nattrs, uint64_t max_line, int skip_bad, s3s__record_cb cb,
                         void *ud, size_t *skipped, s3s_errinfo *e)
{
    size_t off = 0, line = 0;
    if (skipped)
        *skipped = 0;
    while (off < len) {
        line++;
        const char *p = buf + off;
        const char *nl = memchr(p, '\n', len - off);
        size_t n = nl ? (size_t)(nl - p) : len - off;
        off += n + (nl != NULL);
        if (n > max_line) {
            if (skip_bad) {
                (*skipped)++;
                continue;
            }
            return s3s__ei_set(e, S3S_ETOOBIG,
                               "%s:%zu:1: line is %zu bytes, over the cap of %llu "
                               "(MaxRecordBytes); expected one JSON object per line",
                               name, line, n, (unsigned long long)max_line);
        }
        size_t t = n;
        while (t > 0 && (p[t - 1] == '\r' || p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        size_t lead = 0;
        while (lead < t && (p[lead] == ' ' || p[lead] == '\t'))
            lead++;
        if (lead == t)
            continue; /* blank line */
        json_error_t je;
        json_t *obj = json_loadb(p, t, 0, &je);
        char why[400];
        const char *err = NULL;
        size_t col = 1;
        json_t *sel = NULL;
        if (obj == NULL) {
            snprintf(why, sizeof(why), "invalid JSON: %s", je.text);
            err = why;
            col = je.column > 0 ? (size_t)je.column : 1;
        } else {
            err = select_attrs(obj, attrs, nattrs, &sel, why, sizeof(why));
            json_decref(obj);
        }
        if (err != NULL) {
            if (skip_bad) {
                (*skipped)++;
                continue;
            }
            return s3s__ei_set(e, S3S_EPARSE, "%s:%zu:%zu: %s", name, line, col, err);
        }
        char *text = json_dumps(sel, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(sel);
        if (text == NULL)
            return s3s__ei_set(e, S3S_ENOMEM, "out of memory");
        int rc = cb(ud, text, strlen(text), line);
        free(text);
        if (rc != 0) {
            if (e != NULL && e->code != rc)
                s3s__ei_set(e, rc, "%s:%zu:1: %s", name, line, s3s_strerror(rc));
            return rc;
        }
    }
    return 0;
}
