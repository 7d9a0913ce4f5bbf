/* listpar.c: s3s_s3_list_parallel, the adaptive parallel listing.
 *
 * The key space under the prefix is a list of disjoint ranges in key order.
 * A range lists the keys under its own prefix `pfx` (the caller's, or a folder
 * below it) after `after` (S3's StartAfter), up to and including `hi` and
 * below `end` (each NULL: no bound), page by page.
 *
 * It starts as one range listed page after page (what a sequential lister
 * does, and the cheapest request sequence on a server whose cost is its own
 * work, docs/s3-client.md "Parallel listing"). Splitting pays only when a page
 * waits on latency rather than on the server's work, so it is measured: when
 * the first page is truncated and shows folders (keys with '/' below the
 * prefix), a delimiter listing from that page's last key (the folder
 * discovery) runs concurrently with the second page. If the second page comes
 * back in less than 1.5x the first page's time, the server has room for
 * concurrent requests and the listing goes parallel; else it stays sequential
 * and the discovery is dropped. When the first page is flat, the probe beside
 * the second page is instead the first page of a key range starting at a
 * point guessed from the keys seen (flat_probe): the first range ends at that
 * point, so every key is still listed once whatever the guess; sequential
 * drops the probe range, parallel splits both ranges further as they answer.
 *
 * Parallel: the discovery's folders become ranges with pfx = the folder
 * (exactly the keys below it, and a server walks only that folder), the keys
 * directly under the prefix become ranges of their own, and the range that
 * found them stops at the first of them (`end`). A folder range whose first
 * page shows sub-folders is discovered again; a flat one is listed page after
 * page. Flat ranges are split at points guessed from their keys (listsplit.c)
 * while connections are idle, when PAR is forced or the flat probe chose it
 * (not after a folder discovery: there the folders are the ranges).
 *
 * Delivery: the head range's keys as they come, a later range's once every
 * range before it is finished. A range that runs ahead stops asking once it
 * holds RANGE_BUFFER_MAX keys, which bounds memory. */
#include "common/s3/listpar.h"

#include "common/s3/client.h"
#include "common/s3/listsplit.h"
#include "common/s3/xml.h"
#include "common/util/log.h"
#include "s3shard/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RANGE_BUFFER_MAX 20000
#define PROBE_KEYS 50
#define SPLIT_MAX 8

enum { D_NONE, D_MORE, D_RUN, D_HELD, D_DONE };

typedef struct range {
    char *pfx; /* the prefix this range lists with */
    char *after; /* StartAfter for the next page (NULL: from the start of pfx) */
    char *hi; /* inclusive upper bound, NULL: none */
    char *end; /* exclusive upper bound, NULL: none */
    s3s__list_entry *items; /* buffered, not yet delivered */
    size_t n, cap;
    int done;
    int busy;
    unsigned pages; /* pages received */
    uint64_t t_sub; /* when the page in flight was submitted (us) */
    s3s__xfer x;
    s3s__buf q;
    /* folder discovery of this range: a delimiter listing from dafter */
    int dstate;
    char *dafter, *dtoken;
    s3s__xfer dx;
    s3s__buf dq;
    s3s__list_page dpg; /* D_HELD: parsed, waiting for the decision */
    struct range *succ; /* the range after this one when discovery started */
    struct range *ins; /* the last range discovery inserted (NULL: none yet) */
    int bounded; /* discovery has set `end` */
    int infolder; /* discovery found the folder holding the cursor: pfx is it */
    char *dpfx; /* the prefix discovery lists (r->pfx when it started) */
    struct range *gap_open; /* the last gap range made, its end not yet known */
    int gap; /* a gap range: checks that no key lies between two items */
    int hold; /* a gap range whose end is not known yet: not listed until it is */
    struct range *next;
} range;

typedef struct lister {
    s3s_s3 *s3;
    const char *bucket;
    unsigned par;
    unsigned page_keys; /* max-keys per page, 0: the server's (1000) */
    int mode; /* S3S__LIST_ADAPTIVE while probing, then SEQ or PAR */
    int verdict; /* the probe's verdict forced (SEQ or PAR), 0: measured */
    int keysplit; /* split flat ranges at guessed keys (forced PAR, or flat probe said PAR) */
    uint64_t t1; /* the first page's time, alone (us) */
    range *probe; /* the flat probe: the range after the first, listed beside page 2 */
    unsigned busy;
    range *head;
} lister;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void range_free(range *r)
{
    if (r == NULL)
        return;
    free(r->pfx);
    free(r->after);
    free(r->hi);
    free(r->end);
    for (size_t i = 0; i < r->n; i++)
        free(r->items[i].key);
    free(r->items);
    s3s__xfer_fini(&r->x);
    s3s__buf_fini(&r->q);
    free(r->dafter);
    free(r->dpfx);
    free(r->dtoken);
    s3s__xfer_fini(&r->dx);
    s3s__buf_fini(&r->dq);
    s3s__list_page_fini(&r->dpg);
    free(r);
}

static int dup_or_null(char **dst, const char *src)
{
    *dst = NULL;
    return src != NULL && (*dst = strdup(src)) == NULL ? S3S_ENOMEM : 0;
}

static range *range_new(const char *pfx, const char *after, const char *hi, const char *end)
{
    range *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    s3s__xfer_init(&r->x);
    s3s__buf_init(&r->q, 1 << 16);
    s3s__xfer_init(&r->dx);
    s3s__buf_init(&r->dq, 1 << 16);
    r->x.user = r;
    r->dx.user = r;
    if (dup_or_null(&r->pfx, pfx) != 0 || dup_or_null(&r->after, after) != 0 ||
        dup_or_null(&r->hi, hi) != 0 || dup_or_null(&r->end, end) != 0) {
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

/* A range is finished when it will add no keys and no ranges. */
static int range_finished(const range *r)
{
    return r->done && !r->busy && (r->dstate == D_NONE || r->dstate == D_DONE);
}

/* Does any key of the page have a '/' below pfx (the layout has folders)? */
static int page_nested(const s3s__list_page *pg, const char *pfx)
{
    size_t pl = strlen(pfx);
    for (size_t i = 0; i < pg->n; i++)
        if (strlen(pg->items[i].key) > pl && strchr(pg->items[i].key + pl, '/') != NULL)
            return 1;
    return 0;
}

/* Splits the rest of flat range r (after its cursor) into up to `want` more
 * ranges inserted after r, at points guessed from the last nk keys r holds
 * (the page just read). */
static int range_split(range *r, size_t nk, unsigned want)
{
    char **points = NULL;
    size_t np = 0;
    if (nk > r->n)
        nk = r->n;
    const char **keys = malloc((nk + 1) * sizeof *keys);
    if (keys == NULL)
        return S3S_ENOMEM;
    for (size_t i = 0; i < nk; i++)
        keys[i] = r->items[r->n - nk + i].key;
    const char *bound = r->hi;
    if (r->end != NULL && (bound == NULL || strcmp(r->end, bound) < 0))
        bound = r->end; /* points >= end would make empty ranges */
    int rc = s3s__listsplit_points(&points, &np, keys, nk, r->pfx, bound, want);
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
        range *n = range_new(r->pfx, prev->hi, NULL, r->end);
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

/* Inserts n into the list where r's discovery puts its ranges: after the last
 * one it inserted and after that one's own splits, i.e. before r->succ. */
static void disc_insert(range *r, range *n)
{
    range *at = r->ins != NULL ? r->ins : r;
    while (at->next != r->succ)
        at = at->next;
    n->next = r->succ;
    at->next = n;
    r->ins = n;
}

/* The greatest valid UTF-8 character (U+10FFFF): F + it sorts after every key
 * below folder F and before any key after F. */
#define AFTER_FOLDER "\xf4\x8f\xbf\xbf"

/* A discovered item starts here: the open gap range ends before it. */
static int gap_close(range *r, const char *item)
{
    if (r->gap_open == NULL)
        return 0;
    if ((r->gap_open->end = strdup(item)) == NULL)
        return S3S_ENOMEM;
    r->gap_open->hold = 0;
    r->gap_open = NULL;
    return 0;
}

/* After folder F (listed with pfx = F), a gap range lists what lies between
 * F and the next item with the discovery's prefix: nothing on a server whose
 * CommonPrefixes are complete (one request of one key), and the keys of a
 * folder that a server left out (s3rver omits folders that hold only
 * folders) on one that is not. */
static int gap_open(range *r, const char *folder)
{
    size_t fl = strlen(folder);
    char *after = malloc(fl + sizeof AFTER_FOLDER);
    if (after == NULL)
        return S3S_ENOMEM;
    memcpy(after, folder, fl);
    memcpy(after + fl, AFTER_FOLDER, sizeof AFTER_FOLDER);
    range *g = range_new(r->dpfx, after, NULL, NULL);
    free(after);
    if (g == NULL)
        return S3S_ENOMEM;
    g->gap = 1;
    g->hold = 1; /* until the next item (its end) or the discovery's end */
    disc_insert(r, g);
    r->gap_open = g;
    return 0;
}

/* Applies one discovery page of r: its folders become ranges listing that
 * folder, its keys (directly under r->pfx) a finished range holding them. The
 * items at or before r's cursor are r's already; the folder holding the cursor
 * stays r's, which from now on lists only that folder and stops at the first
 * new item. */
static int disc_apply(range *r, s3s__list_page *pg)
{
    size_t ik = 0, ip = 0;
    range *keys = NULL; /* the open range of consecutive keys */
    while (ik < pg->n || ip < pg->nprefixes) {
        int take_key =
            ip == pg->nprefixes || (ik < pg->n && strcmp(pg->items[ik].key, pg->prefixes[ip]) < 0);
        const char *item = take_key ? pg->items[ik].key : pg->prefixes[ip];
        if (!r->bounded) {
            const char *cur = r->after; /* set: discovery starts after a page */
            if (strcmp(item, cur) <= 0) {
                /* at or before the cursor: r has it, or is inside it */
                if (!take_key && strncmp(cur, item, strlen(item)) == 0) {
                    char *np = strdup(item);
                    if (np == NULL)
                        return S3S_ENOMEM;
                    free(r->pfx);
                    r->pfx = np;
                    r->infolder = 1;
                    int rc = gap_open(r, item);
                    if (rc != 0)
                        return rc;
                }
                if (take_key)
                    ik++;
                else
                    ip++;
                continue;
            }
            /* the first item past r's cursor: r ends before it */
            if ((r->end = strdup(item)) == NULL)
                return S3S_ENOMEM;
            r->bounded = 1;
            if (!r->infolder && !r->busy)
                r->done = 1; /* no folder continues after the cursor */
        }
        int rc = gap_close(r, item);
        if (rc != 0)
            return rc;
        if (take_key) {
            if (keys == NULL) {
                if ((keys = range_new(r->pfx, NULL, NULL, NULL)) == NULL)
                    return S3S_ENOMEM;
                keys->done = 1;
                disc_insert(r, keys);
            }
            if ((rc = range_push(keys, &pg->items[ik])) != 0)
                return rc;
            ik++;
        } else {
            range *f = range_new(pg->prefixes[ip], NULL, NULL, NULL);
            if (f == NULL)
                return S3S_ENOMEM;
            disc_insert(r, f);
            keys = NULL;
            if ((rc = gap_open(r, pg->prefixes[ip])) != 0)
                return rc;
            ip++;
        }
    }
    return 0;
}

/* One delimiter page of r's discovery has arrived (or is held until now). */
static int disc_page(lister *L, range *r, s3s__list_page *pg)
{
    if (L->mode == S3S__LIST_ADAPTIVE) {
        r->dpg = *pg; /* held until the second page decides */
        memset(pg, 0, sizeof *pg);
        r->dstate = D_HELD;
        return 0;
    }
    if (L->mode == S3S__LIST_SEQ) {
        r->dstate = D_DONE;
        return 0;
    }
    int rc = disc_apply(r, pg);
    if (rc != 0)
        return rc;
    if (pg->truncated && pg->next_token != NULL) {
        free(r->dtoken);
        r->dtoken = pg->next_token;
        pg->next_token = NULL;
        r->dstate = D_MORE;
    } else {
        r->dstate = D_DONE;
        if (r->gap_open != NULL) { /* no item follows: the last gap is unbounded */
            r->gap_open->hold = 0;
            r->gap_open = NULL;
        }
    }
    return 0;
}

/* The flat probe (see flat_probe) is decided. PAR: the ranges split further
 * at guessed keys as their pages come. SEQ: one request at a time from now
 * on; the probe range is dropped and r unbounded again, unless r's second
 * page already stopped at the probe's start (then the probe range follows r). */
static int probe_decided(lister *L, range *r)
{
    range *p = L->probe;
    L->probe = NULL;
    if (L->mode == S3S__LIST_PAR) {
        L->keysplit = 1;
        /* The probe's first page is in: split what follows it now rather
         * than a round trip later (r splits when on_page goes on). */
        if (p->pages == 1 && !p->done && !p->busy)
            return range_split(p, p->n, SPLIT_MAX);
        return 0;
    }
    L->par = 1;
    if (r->done || r->next != p)
        return 0;
    if (p->busy) {
        s3s__http_cancel(L->s3, &p->x);
        L->busy--;
    }
    r->next = p->next;
    range_free(p);
    free(r->hi);
    r->hi = NULL;
    return 0;
}

/* The first page of r (the whole prefix) is flat and truncated: a key range
 * starting at a point guessed from its keys (the second sibling of the last
 * key: "shard-002" after "shard-000999", so just past what the second page
 * will likely hold) is listed beside r's second page. r becomes (cursor,
 * point], the probe (point, end of prefix]: every key in exactly one of them,
 * whatever the guess. On a busy server the probe's request slows the second
 * page down (on s3rver both walk the folder on node's main thread), on a
 * latency-bound one it does not: the same 1.5x test as the folder discovery. */
static int flat_probe(lister *L, range *r)
{
    char **points = NULL;
    size_t np = 0;
    const char **keys = malloc((r->n + 1) * sizeof *keys);
    if (keys == NULL)
        return S3S_ENOMEM;
    for (size_t i = 0; i < r->n; i++)
        keys[i] = r->items[i].key;
    int rc = s3s__listsplit_points(&points, &np, keys, r->n, r->pfx, NULL, 2);
    free(keys);
    if (rc != 0 || np == 0) {
        free(points);
        return rc;
    }
    range *p = range_new(r->pfx, points[np - 1], NULL, NULL);
    if (p != NULL) {
        r->hi = points[np - 1];
        points[np - 1] = NULL;
        p->next = r->next;
        r->next = p;
        L->probe = p;
    }
    for (size_t i = 0; i < np; i++)
        free(points[i]);
    free(points);
    return p != NULL ? 0 : S3S_ENOMEM;
}

/* The second page of the probe has come back in t2 (us): decide. */
static int decide(lister *L, range *r, uint64_t t2)
{
    L->mode = 2 * t2 < 3 * L->t1 ? S3S__LIST_PAR : S3S__LIST_SEQ;
    if (L->verdict != 0)
        L->mode = L->verdict;
    S3S_LOGD("list: first page %llu ms alone, second %llu ms beside %s: %s",
             (unsigned long long)(L->t1 / 1000), (unsigned long long)(t2 / 1000),
             L->probe != NULL ? "a key range's first page (flat)" : "the folder discovery",
             L->mode == S3S__LIST_PAR ? "parallel" : "sequential");
    if (L->probe != NULL)
        return probe_decided(L, r);
    if (L->mode == S3S__LIST_SEQ) {
        if (r->dstate == D_RUN) {
            s3s__http_cancel(L->s3, &r->dx);
            L->busy--;
        }
        s3s__list_page_fini(&r->dpg);
        memset(&r->dpg, 0, sizeof r->dpg);
        r->dstate = D_DONE;
        return 0;
    }
    if (r->dstate == D_HELD) {
        s3s__list_page pg = r->dpg;
        memset(&r->dpg, 0, sizeof r->dpg);
        int rc = disc_page(L, r, &pg);
        s3s__list_page_fini(&pg);
        return rc;
    }
    return 0;
}

static int submit_page(lister *L, range *r)
{
    /* The second page of a bounded range is often just past its end (a full
     * first page, then nothing left): ask for a few keys first, so a server
     * does not build 1,000 keys we would drop. */
    unsigned mk = L->page_keys;
    if (r->hi != NULL && r->pages == 1 && L->mode != S3S__LIST_ADAPTIVE &&
        (mk == 0 || mk > PROBE_KEYS))
        mk = PROBE_KEYS;
    if (r->gap && r->pages == 0)
        mk = 1; /* usually empty: one key tells */
    int rc = s3s__list_query(&r->q, r->pfx, NULL, r->after, NULL, mk);
    if (rc != 0)
        return rc;
    s3s__list_xfer(&r->x, L->bucket, &r->q);
    if ((rc = s3s__http_submit(L->s3, &r->x)) != 0)
        return rc;
    r->t_sub = now_us();
    r->busy = 1;
    L->busy++;
    return 0;
}

static int submit_disc(lister *L, range *r)
{
    int rc =
        s3s__list_query(&r->dq, r->pfx, "/", r->dtoken == NULL ? r->dafter : NULL, r->dtoken, 0);
    if (rc != 0)
        return rc;
    s3s__list_xfer(&r->dx, L->bucket, &r->dq);
    if ((rc = s3s__http_submit(L->s3, &r->dx)) != 0)
        return rc;
    r->dstate = D_RUN;
    L->busy++;
    return 0;
}

/* A page of r has arrived after t us. */
static int on_page(lister *L, range *r, s3s__list_page *pg, uint64_t t)
{
    int rc = 0;
    size_t pushed = 0;
    int nested = page_nested(pg, r->pfx); /* before the keys move out of pg */
    r->pages++;
    for (size_t i = 0; i < pg->n && rc == 0; i++) {
        const char *k = pg->items[i].key;
        if (r->after != NULL && strcmp(k, r->after) <= 0)
            continue; /* not after StartAfter in byte order (s3rver compares UTF-16) */
        if ((r->hi != NULL && strcmp(k, r->hi) > 0) || (r->end != NULL && strcmp(k, r->end) >= 0)) {
            r->done = 1;
            break;
        }
        if ((rc = range_push(r, &pg->items[i])) == 0)
            pushed++;
    }
    if (rc != 0)
        return rc;
    if (pushed > 0) { /* the cursor: the last key this range holds */
        free(r->after);
        if ((r->after = strdup(r->items[r->n - 1].key)) == NULL)
            return S3S_ENOMEM;
    }
    if (!r->done && (!pg->truncated || pg->n == 0 || pushed == 0))
        r->done = 1;
    if (!r->done && r->hi != NULL && strcmp(r->after, r->hi) == 0)
        r->done = 1; /* nothing can follow hi in (lo, hi] */
    if (L->mode == S3S__LIST_ADAPTIVE && r == L->head && r->pages == 1)
        L->t1 = t;
    else if (L->mode == S3S__LIST_ADAPTIVE && (r->dstate != D_NONE || r == L->head))
        if ((rc = decide(L, r, t)) != 0)
            return rc;
    if (L->mode == S3S__LIST_ADAPTIVE && r != L->head)
        return 0; /* the flat probe's page: held until the decision */
    if (r->done || r->pages != 1 || L->mode == S3S__LIST_SEQ)
        goto split;
    if (r->hi == NULL && r->dstate == D_NONE && !r->gap && nested) {
        if ((r->dafter = strdup(r->after)) == NULL)
            return S3S_ENOMEM;
        if ((r->dpfx = strdup(r->pfx)) == NULL)
            return S3S_ENOMEM;
        r->succ = r->next;
        r->dstate = D_MORE; /* sent with the next page: the probe */
        return 0;
    }
    if (L->mode == S3S__LIST_ADAPTIVE) {
        if (r == L->head && r->hi == NULL && !r->gap && (rc = flat_probe(L, r)) != 0)
            return rc;
        if (L->probe == NULL)
            L->mode = S3S__LIST_SEQ; /* no key to split at */
        return 0;
    }
split:
    if (!L->keysplit || r->done || r->dstate != D_NONE || r->gap || nested)
        return 0;
    /* Idle connections: split what is left of this flat range, a few ranges
     * at a time (each empty range still costs a request, and big ranges split
     * again when they answer). */
    unsigned idle = 0;
    for (range *o = L->head; o != NULL; o = o->next)
        idle += !o->done && !o->busy;
    if (L->busy + idle >= L->par)
        return 0;
    unsigned want = L->par - L->busy - idle;
    return range_split(r, pg->n, want < SPLIT_MAX ? want : SPLIT_MAX);
}

static int deliver(lister *L, s3s_s3_list_cb cb, void *ud)
{
    while (L->head != NULL) {
        range *h = L->head;
        for (size_t i = 0; i < h->n; i++) {
            int rc = cb(ud, h->items[i].key, h->items[i].size, h->items[i].etag, h->items[i].mtime);
            if (rc != 0) {
                for (size_t j = 0; j < h->n; j++)
                    free(h->items[j].key);
                h->n = 0;
                return rc;
            }
        }
        for (size_t i = 0; i < h->n; i++)
            free(h->items[i].key);
        h->n = 0;
        if (!range_finished(h))
            return 0;
        L->head = h->next;
        range_free(h);
    }
    return 0;
}

int s3s__list_parallel_ex(s3s_s3 *s3, const char *bucket, const char *prefix, unsigned parallelism,
                          unsigned page_keys, int strategy, int *chosen, s3s_s3_list_cb cb,
                          void *ud)
{
    if (chosen != NULL)
        *chosen = S3S__LIST_SEQ;
    int rc = s3s__s3_check_args(s3, bucket, NULL);
    if (rc != 0)
        return rc;
    if (cb == NULL)
        return s3s__err_set(&s3->eb, S3S_EINVAL, "list: no callback");
    if (parallelism == 0)
        parallelism = s3->opts.max_connections;
    if (parallelism <= 1 || strategy == S3S__LIST_SEQ)
        parallelism = 1; /* one page after another */
    lister L = {.s3 = s3,
                .bucket = bucket,
                .par = parallelism,
                .page_keys = page_keys,
                .keysplit = strategy == S3S__LIST_PAR,
                .mode = parallelism == 1 ? S3S__LIST_SEQ : strategy};
    if (strategy == S3S__LIST_PROBE_SEQ || strategy == S3S__LIST_PROBE_PAR) {
        L.verdict = strategy == S3S__LIST_PROBE_SEQ ? S3S__LIST_SEQ : S3S__LIST_PAR;
        if (L.mode != S3S__LIST_SEQ)
            L.mode = S3S__LIST_ADAPTIVE;
    }
    if ((L.head = range_new(prefix != NULL ? prefix : "", NULL, NULL, NULL)) == NULL)
        return s3s__err_set(&s3->eb, S3S_ENOMEM, "out of memory");
    while (L.head != NULL && rc == 0) {
        /* Start pages and discoveries, earliest range first. */
        for (range *r = L.head; r != NULL && L.busy < L.par && rc == 0; r = r->next) {
            if (r->dstate == D_MORE && L.mode != S3S__LIST_SEQ)
                rc = submit_disc(&L, r);
            if (rc == 0 && !r->busy && !r->done && !r->hold && L.busy < L.par &&
                (r == L.head || r->n < RANGE_BUFFER_MAX) &&
                (L.mode != S3S__LIST_ADAPTIVE || r == L.head || r->pages == 0))
                rc = submit_page(&L, r);
        }
        if (rc != 0) {
            s3s__err_set(&s3->eb, rc, "list %s: out of memory", bucket);
            break;
        }
        s3s__xfer *d = NULL;
        if (L.busy > 0 && s3s__http_wait(s3, &d) == 0) {
            range *r = d->user;
            int is_disc = d == &r->dx;
            L.busy--;
            if (is_disc)
                r->dstate = D_DONE;
            else
                r->busy = 0;
            if (d->rc != 0) {
                rc = s3s__s3_fail(s3, d);
                break;
            }
            s3s__list_page pg;
            if ((rc = s3s__xml_parse_list(&pg, d->body.data, d->body.len, &s3->eb)) != 0)
                break;
            rc = is_disc ? disc_page(&L, r, &pg) : on_page(&L, r, &pg, now_us() - r->t_sub);
            s3s__list_page_fini(&pg);
            if (rc != 0) {
                if (s3->eb.msg[0] == '\0')
                    s3s__err_set(&s3->eb, rc, "list %s: %s", bucket, s3s_strerror(rc));
                break;
            }
        }
        if ((rc = deliver(&L, cb, ud)) != 0)
            s3s__err_set(&s3->eb, rc, "list %s: stopped by the caller", bucket);
    }
    if (chosen != NULL)
        *chosen = L.mode == S3S__LIST_PAR ? S3S__LIST_PAR : S3S__LIST_SEQ;
    while (L.head != NULL) {
        range *n = L.head->next;
        if (L.head->busy)
            s3s__http_cancel(s3, &L.head->x);
        if (L.head->dstate == D_RUN)
            s3s__http_cancel(s3, &L.head->dx);
        range_free(L.head);
        L.head = n;
    }
    return rc;
}

int s3s_s3_list_parallel(s3s_s3 *s3, const char *bucket, const char *prefix, unsigned parallelism,
                         s3s_s3_list_cb cb, void *ud)
{
    /* S3SHARD_LIST_STRATEGY=seq|par|par:N forces a strategy (benches,
     * diagnosis); par:N also caps the requests in flight at N. */
    const char *e = getenv("S3SHARD_LIST_STRATEGY");
    int strategy = S3S__LIST_ADAPTIVE;
    if (e != NULL && strcmp(e, "seq") == 0)
        strategy = S3S__LIST_SEQ;
    else if (e != NULL && strncmp(e, "par", 3) == 0 && (e[3] == '\0' || e[3] == ':')) {
        strategy = S3S__LIST_PAR;
        unsigned long n = e[3] == ':' ? strtoul(e + 4, NULL, 10) : 0;
        if (n > 0 && n <= 1024 && (parallelism == 0 || n < parallelism))
            parallelism = (unsigned)n;
    }
    return s3s__list_parallel_ex(s3, bucket, prefix, parallelism, 0, strategy, NULL, cb, ud);
}
