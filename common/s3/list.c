/* list.c: ListObjectsV2: sequential (continuation tokens), one level with a
 * delimiter, and parallel over split key ranges (see docs/s3-client.md,
 * "Parallel listing", and the comment above s3s_s3_list_parallel). */
#include "common/s3/client.h"

#include "common/s3/http.h"
#include "common/s3/listsplit.h"
#include "common/s3/pct.h"
#include "common/s3/xml.h"
#include "s3shard/error.h"

#include <stdlib.h>
#include <string.h>

#define LIST_BODY_MAX ((size_t)32 << 20)

static int add_param(s3s__buf *q, const char *name, const char *v)
{
    if (v == NULL || v[0] == '\0')
        return 0;
    int rc = s3s__buf_printf(q, "&%s=", name);
    return rc != 0 ? rc : s3s__pct_encode(q, v, strlen(v), 0);
}

/* Builds the query of one page request (max_keys 0: the server's 1000). */
static int page_query(s3s__buf *q, const char *prefix, const char *delimiter,
                      const char *start_after, const char *token, unsigned max_keys)
{
    s3s__buf_reset(q);
    int rc = s3s__buf_puts(q, "list-type=2&encoding-type=url");
    if (rc == 0 && max_keys > 0)
        rc = s3s__buf_printf(q, "&max-keys=%u", max_keys);
    if (rc == 0)
        rc = add_param(q, "prefix", prefix);
    if (rc == 0)
        rc = add_param(q, "delimiter", delimiter);
    if (rc == 0)
        rc = add_param(q, "start-after", start_after);
    if (rc == 0)
        rc = add_param(q, "continuation-token", token);
    return rc;
}

static void page_xfer(s3s__xfer *x, const char *bucket, s3s__buf *q)
{
    s3s__buf_reset(&x->body);
    x->body.max = LIST_BODY_MAX;
    x->method = "GET";
    x->bucket = bucket;
    x->key = NULL;
    x->query = q->data;
}

static int list_seq(s3s_s3 *s3, const char *bucket, const char *prefix, const char *delimiter,
                    const char *start_after, s3s_s3_list_cb cb, s3s_s3_prefix_cb pcb, void *ud)
{
    int rc = s3s__s3_check_args(s3, bucket, NULL);
    if (rc != 0)
        return rc;
    s3s__buf q;
    s3s__xfer x;
    char *token = NULL;
    s3s__buf_init(&q, 1 << 16);
    s3s__xfer_init(&x);
    for (unsigned page = 1;; page++) {
        if ((rc = page_query(&q, prefix, delimiter, token == NULL ? start_after : NULL, token,
                             0)) != 0) {
            s3s__err_set(&s3->eb, rc, "list %s: query too long", bucket);
            break;
        }
        page_xfer(&x, bucket, &q);
        if ((rc = s3s__http_run(s3, &x)) != 0) {
            s3s__s3_fail(s3, &x);
            break;
        }
        s3s__list_page pg;
        if ((rc = s3s__xml_parse_list(&pg, x.body.data, x.body.len, &s3->eb)) != 0) {
            char why[S3S_ERRBUF_SIZE];
            memcpy(why, s3->eb.msg, sizeof why);
            s3s__err_set(&s3->eb, rc, "list %s/%s page %u: %.900s", bucket, prefix ? prefix : "",
                         page, why);
            break;
        }
        for (size_t i = 0; i < pg.n && rc == 0; i++)
            rc = cb(ud, pg.items[i].key, pg.items[i].size, pg.items[i].etag, pg.items[i].mtime);
        for (size_t i = 0; i < pg.nprefixes && rc == 0 && pcb != NULL; i++)
            rc = pcb(ud, pg.prefixes[i]);
        int more = pg.truncated;
        free(token);
        token = more ? pg.next_token : NULL;
        if (more)
            pg.next_token = NULL;
        s3s__list_page_fini(&pg);
        if (rc != 0) {
            s3s__err_set(&s3->eb, rc, "list %s: stopped by the caller", bucket);
            break;
        }
        if (!more)
            break;
    }
    free(token);
    s3s__xfer_fini(&x);
    s3s__buf_fini(&q);
    return rc;
}

int s3s_s3_list(s3s_s3 *s3, const char *bucket, const char *prefix, const char *start_after,
                s3s_s3_list_cb cb, void *ud)
{
    if (cb == NULL)
        return S3S_EINVAL;
    return list_seq(s3, bucket, prefix, NULL, start_after, cb, NULL, ud);
}

int s3s_s3_list_dir(s3s_s3 *s3, const char *bucket, const char *prefix, s3s_s3_list_cb cb,
                    s3s_s3_prefix_cb pcb, void *ud)
{
    if (cb == NULL)
        return S3S_EINVAL;
    return list_seq(s3, bucket, prefix, "/", NULL, cb, pcb, ud);
}

/* ---- parallel listing ------------------------------------------------------------- *
 *
 * The key space under the prefix is a list of disjoint ranges (lo, hi]: keys
 * after lo (S3's StartAfter) up to and including hi (NULL: no upper bound).
 * Each range is listed page by page with StartAfter = the last key it got, and
 * stops at the first key past hi. It starts as one range. When a range's page
 * comes back truncated while connections are idle, the rest of that range is
 * split at points chosen from the keys the page showed (listsplit.c), and the
 * new ranges are listed at once. Ranges are kept in key order; the callback
 * gets the first range's keys as they come and a later range's keys only
 * once every range before it is finished, so it still sees key order. A range
 * that runs ahead stops asking for pages once it holds RANGE_BUFFER_MAX keys,
 * which bounds memory. */

#define RANGE_BUFFER_MAX 20000
#define PROBE_KEYS 50
#define SPLIT_MAX 8

typedef struct range {
    char *after; /* StartAfter for the next page (NULL: from the prefix start) */
    char *hi; /* inclusive upper bound, NULL: none */
    s3s__list_entry *items; /* buffered, not yet delivered */
    size_t n, cap;
    int done;
    int busy;
    unsigned pages; /* pages received */
    s3s__xfer x;
    s3s__buf q;
    struct range *next;
} range;

static void range_free(range *r)
{
    if (r == NULL)
        return;
    free(r->after);
    free(r->hi);
    for (size_t i = 0; i < r->n; i++)
        free(r->items[i].key);
    free(r->items);
    s3s__xfer_fini(&r->x);
    s3s__buf_fini(&r->q);
    free(r);
}

static range *range_new(const char *after, const char *hi)
{
    range *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    s3s__xfer_init(&r->x);
    s3s__buf_init(&r->q, 1 << 16);
    r->x.user = r;
    if ((after != NULL && (r->after = strdup(after)) == NULL) ||
        (hi != NULL && (r->hi = strdup(hi)) == NULL)) {
        range_free(r);
        return NULL;
    }
    return r;
}

static int range_push(range *r, s3s__list_entry *e)
{
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 1024;
        s3s__list_entry *ni = realloc(r->items, nc * sizeof *ni);
        if (ni == NULL)
            return S3S_ENOMEM;
        r->items = ni;
        r->cap = nc;
    }
    r->items[r->n++] = *e;
    e->key = NULL; /* moved */
    return 0;
}

/* Splits the rest of r (after its cursor) into up to `want` more ranges
 * inserted after r, using the keys of the page just read. */
static int range_split(range *r, const s3s__list_page *pg, const char *prefix, unsigned want)
{
    char **points = NULL;
    size_t np = 0;
    /* The page's keys now sit (moved) at the end of r's buffer. */
    size_t nk = pg->n < r->n ? pg->n : r->n;
    const char **keys = malloc((nk + 1) * sizeof *keys);
    if (keys == NULL)
        return S3S_ENOMEM;
    for (size_t i = 0; i < nk; i++)
        keys[i] = r->items[r->n - nk + i].key;
    int rc = s3s__listsplit_points(&points, &np, keys, nk, prefix, r->hi, want);
    free(keys);
    if (rc != 0)
        return rc;
    /* points ascend, all > the cursor and < hi: r becomes (cursor, p1], then
     * (p1, p2], ..., (pk, hi]. On failure midway the last range made takes the
     * old upper bound, so the ranges always cover the whole key space. */
    if (np == 0) {
        free(points);
        return 0;
    }
    range *tail = r->next;
    range *prev = r;
    char *old_hi = r->hi;
    r->hi = points[0];
    points[0] = NULL;
    for (size_t i = 1; i <= np; i++) {
        range *n = range_new(prev->hi, NULL);
        if (n == NULL) {
            rc = S3S_ENOMEM;
            free(prev->hi);
            prev->hi = old_hi;
            break;
        }
        if (i < np) {
            n->hi = points[i];
            points[i] = NULL;
        } else {
            n->hi = old_hi;
        }
        prev->next = n;
        prev = n;
    }
    prev->next = tail;
    for (size_t i = 0; i < np; i++)
        free(points[i]);
    free(points);
    return rc;
}

int s3s_s3_list_parallel(s3s_s3 *s3, const char *bucket, const char *prefix, unsigned parallelism,
                         s3s_s3_list_cb cb, void *ud)
{
    int rc = s3s__s3_check_args(s3, bucket, NULL);
    if (rc != 0)
        return rc;
    if (cb == NULL)
        return s3s__err_set(&s3->eb, S3S_EINVAL, "list: no callback");
    if (parallelism == 0)
        parallelism = s3->opts.max_connections;
    if (parallelism <= 1)
        return s3s_s3_list(s3, bucket, prefix, NULL, cb, ud);
    if (prefix == NULL)
        prefix = "";
    range *head = range_new(NULL, NULL);
    if (head == NULL)
        return s3s__err_set(&s3->eb, S3S_ENOMEM, "out of memory");
    unsigned busy = 0;
    while (head != NULL && rc == 0) {
        /* Start pages for idle ranges, earliest first. */
        for (range *r = head; r != NULL && busy < parallelism; r = r->next) {
            if (r->busy || r->done || (r != head && r->n >= RANGE_BUFFER_MAX))
                continue;
            /* The second page of a bounded range is often just past its end
             * (a full first page, then nothing left): ask for a few keys
             * first, so a server does not build 1,000 keys we would drop. */
            unsigned mk = r->hi != NULL && r->pages == 1 ? PROBE_KEYS : 0;
            if ((rc = page_query(&r->q, prefix, NULL, r->after, NULL, mk)) != 0)
                break;
            page_xfer(&r->x, bucket, &r->q);
            if ((rc = s3s__http_submit(s3, &r->x)) != 0)
                break;
            r->busy = 1;
            busy++;
        }
        if (rc != 0) {
            s3s__err_set(&s3->eb, rc, "list %s: out of memory", bucket);
            break;
        }
        s3s__xfer *d = NULL;
        if (busy > 0 && s3s__http_wait(s3, &d) == 0) {
            range *r = d->user;
            r->busy = 0;
            r->pages++;
            busy--;
            if (d->rc != 0) {
                rc = s3s__s3_fail(s3, d);
                break;
            }
            s3s__list_page pg;
            if ((rc = s3s__xml_parse_list(&pg, d->body.data, d->body.len, &s3->eb)) != 0)
                break;
            for (size_t i = 0; i < pg.n && rc == 0; i++) {
                if (r->hi != NULL && strcmp(pg.items[i].key, r->hi) > 0) {
                    r->done = 1;
                    break;
                }
                rc = range_push(r, &pg.items[i]);
            }
            if (rc == 0 && !r->done) {
                if (!pg.truncated || pg.n == 0) {
                    r->done = 1;
                } else {
                    free(r->after);
                    r->after = strdup(r->items[r->n - 1].key);
                    if (r->after == NULL)
                        rc = S3S_ENOMEM;
                }
            }
            /* Idle connections: split what is left of this range. */
            unsigned idle = 0;
            for (range *o = head; o != NULL; o = o->next)
                idle += !o->done && !o->busy;
            if (rc == 0 && !r->done && busy + idle < parallelism) {
                /* A few ranges at a time: each empty range still costs a
                 * request, and big ranges split again when they answer. */
                unsigned want = parallelism - busy - idle;
                rc = range_split(r, &pg, prefix, want < SPLIT_MAX ? want : SPLIT_MAX);
            }
            s3s__list_page_fini(&pg);
            if (rc != 0) {
                if (s3->eb.msg[0] == '\0')
                    s3s__err_set(&s3->eb, rc, "list %s: %s", bucket, s3s_strerror(rc));
                break;
            }
        }
        /* Deliver in order: the head range's keys, and whole finished ranges. */
        while (head != NULL && rc == 0) {
            for (size_t i = 0; i < head->n && rc == 0; i++)
                rc = cb(ud, head->items[i].key, head->items[i].size, head->items[i].etag,
                        head->items[i].mtime);
            for (size_t i = 0; i < head->n; i++)
                free(head->items[i].key);
            head->n = 0;
            if (rc != 0) {
                s3s__err_set(&s3->eb, rc, "list %s: stopped by the caller", bucket);
                break;
            }
            if (!head->done)
                break;
            range *n = head->next;
            range_free(head);
            head = n;
        }
    }
    while (head != NULL) {
        range *n = head->next;
        if (head->busy)
            s3s__http_cancel(s3, &head->x);
        range_free(head);
        head = n;
    }
    return rc;
}
