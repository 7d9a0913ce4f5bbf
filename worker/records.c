/* records.c: augmented-manifest records as items (records.h).
 *
 * The queue holds the records taken from the inner source and not yet fully
 * handed out, in order. Resolver threads walk it from the front and HEAD the
 * first "-ref" attribute nobody has taken yet, so resolution runs in record
 * order, several at a time. A record leaves the queue when its last
 * attribute is handed out and is freed when each of its items is settled
 * (done or released). Items name their record by an id (never a pointer):
 * every live record is on the `all` list, and a commit or release of an item
 * whose record is gone, or a second one of the same item (the worker closes
 * an item whose commit failed), finds nothing to change. */
#include "worker/records.h"

#include "s3shard/error.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { A_PENDING = 0, A_RESOLVING = 1, A_OK = 2, A_FAILED = 3 };

typedef struct rattr {
    char *name;
    int is_ref;
    char *uri, *bucket, *key; /* -ref */
    char *json; /* other attributes: the value as compact JSON */
    size_t json_len;
    int state;
    int settled; /* its item was committed done or released */
    uint64_t size;
    char etag[72];
    int err;
    char *errmsg; /* heap, when failed */
} rattr;

typedef struct rrec {
    s3s__item_desc d; /* the inner source's description */
    rattr *attrs;
    uint32_t n, emitted, settled, done;
    int released, finished, in_queue;
    int dropped; /* its lease was revoked: the attributes not handed out are dropped */
    int failed; /* the inner commit of the record failed (a revoked lease) */
    uint64_t id; /* the items' token */
    struct rrec *aprev, *anext; /* the `all` list */
    int bad; /* the record cannot be expanded: badmsg says why */
    char *badmsg;
    struct rrec *next;
} rrec;

typedef struct rsrc {
    s3s__source base;
    s3s__source *inner;
    char *manifest;
    unsigned ahead;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* resolvers: work queued or stopping; next: a HEAD ended */
    rrec *head, *tail;
    size_t count;
    rrec *all; /* every live record (queued, or out until its items settle) */
    uint64_t next_id;
    int stopping;
    int inner_eof, inner_err;
    int drained;
    char inner_msg[S3S_ERRBUF_SIZE];
    uint64_t pos_epoch, pos_next; /* positions of the items of one epoch */
    unsigned nthreads, nclients;
    pthread_t *tids;
    s3s_s3 **clients;
    struct rthread *ts;
} rsrc;

static int ends_with_ref(const char *s)
{
    size_t n = strlen(s);
    return n >= 4 && strcmp(s + n - 4, "-ref") == 0;
}

static void rec_free(rrec *r)
{
    for (uint32_t i = 0; i < r->n; i++) {
        rattr *a = &r->attrs[i];
        free(a->name);
        free(a->uri);
        free(a->bucket);
        free(a->key);
        free(a->json);
        free(a->errmsg);
    }
    free(r->attrs);
    free(r->badmsg);
    s3s__item_desc_fini(&r->d);
    free(r);
}

/* where writes "MANIFEST:LINE" (or the record's index when the line is not
 * known: a snapshot written before lines were kept). */
static void where(const rsrc *s, const rrec *r, char *out, size_t n)
{
    if (r->d.line > 0)
        snprintf(out, n, "%s:%llu", s->manifest, (unsigned long long)r->d.line);
    else
        snprintf(out, n, "%s (record %llu)", s->manifest, (unsigned long long)r->d.token);
}

static void set_bad(rsrc *s, rrec *r, const char *msg)
{
    char loc[1200];
    where(s, r, loc, sizeof(loc));
    size_t need = strlen(loc) + strlen(msg) + 4;
    r->bad = 1;
    r->badmsg = malloc(need);
    if (r->badmsg != NULL)
        snprintf(r->badmsg, need, "%s: %s", loc, msg);
}

/* parse_rec splits the record's JSON into attributes. A record that cannot be
 * split is kept, marked bad, so that the error comes in its turn. Returns
 * S3S_ENOMEM only. */
static int parse_rec(rsrc *s, rrec *r)
{
    json_error_t je;
    json_t *obj = json_loadb(r->d.key, strlen(r->d.key), 0, &je);
    if (obj == NULL || !json_is_object(obj) || json_object_size(obj) == 0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "record is not a JSON object of attributes (%.200s)",
                 obj == NULL ? je.text : "an empty or non-object value");
        set_bad(s, r, msg);
        json_decref(obj);
        return 0;
    }
    size_t n = json_object_size(obj);
    r->attrs = calloc(n, sizeof(*r->attrs));
    if (r->attrs == NULL) {
        json_decref(obj);
        return S3S_ENOMEM;
    }
    const char *name;
    json_t *v;
    int rc = 0;
    json_object_foreach(obj, name, v)
    {
        rattr *a = &r->attrs[r->n++];
        a->name = strdup(name);
        if (a->name == NULL) {
            rc = S3S_ENOMEM;
            break;
        }
        a->is_ref = ends_with_ref(name);
        if (a->is_ref) {
            if (!json_is_string(v)) {
                char msg[400];
                snprintf(msg, sizeof(msg), "attribute \"%.200s\" must be an s3:// URI string",
                         name);
                set_bad(s, r, msg);
                break;
            }
            a->uri = strdup(json_string_value(v));
            if (a->uri == NULL) {
                rc = S3S_ENOMEM;
                break;
            }
            if (s3s_uri_parse(a->uri, &a->bucket, &a->key) != 0 || a->key[0] == '\0') {
                char msg[800];
                snprintf(msg, sizeof(msg),
                         "attribute \"%.200s\" (%.400s): expected an s3://bucket/key URI", name,
                         a->uri);
                set_bad(s, r, msg);
                break;
            }
        } else {
            a->json = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
            if (a->json == NULL) {
                rc = S3S_ENOMEM;
                break;
            }
            a->json_len = strlen(a->json);
            a->state = A_OK;
        }
    }
    json_decref(obj);
    return rc;
}

/* ---- resolvers ----------------------------------------------------------------- */

typedef struct rthread {
    rsrc *s;
    s3s_s3 *s3;
} rthread;

/* take_locked finds the first pending -ref attribute in the queue. */
static rattr *take_locked(rsrc *s, rrec **out_rec)
{
    for (rrec *r = s->head; r != NULL; r = r->next) {
        if (r->bad)
            continue;
        for (uint32_t i = r->emitted; i < r->n; i++) {
            if (r->attrs[i].is_ref && r->attrs[i].state == A_PENDING) {
                *out_rec = r;
                return &r->attrs[i];
            }
        }
    }
    return NULL;
}

static void *resolver_main(void *arg)
{
    rthread *t = arg;
    rsrc *s = t->s;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        rrec *r = NULL;
        rattr *a = NULL;
        while (!s->stopping && (a = take_locked(s, &r)) == NULL)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stopping)
            break;
        a->state = A_RESOLVING;
        char loc[1200];
        where(s, r, loc, sizeof(loc));
        pthread_mutex_unlock(&s->mu);
        /* the record stays in the queue while an attribute of it resolves:
         * next() waits for it before handing the attribute out */
        s3s_s3_objinfo info;
        memset(&info, 0, sizeof(info));
        int rc = s3s_s3_head(t->s3, a->bucket, a->key, &info);
        char *msg = NULL;
        if (rc != 0) {
            const char *detail = s3s_s3_errmsg(t->s3);
            if (detail == NULL || detail[0] == '\0')
                detail = s3s_strerror(rc);
            const char *hint = rc == S3S_ENOTFOUND ? " (no such object, or no such bucket)"
                : rc == S3S_EACCESS                ? " (these credentials cannot read it)"
                                                   : "";
            size_t need =
                strlen(loc) + strlen(a->name) + strlen(a->uri) + strlen(detail) + strlen(hint) + 64;
            msg = malloc(need);
            if (msg != NULL)
                snprintf(msg, need, "%s: attribute \"%s\" (%s): %s%s", loc, a->name, a->uri, detail,
                         hint);
        }
        pthread_mutex_lock(&s->mu);
        if (rc == 0) {
            a->size = info.size;
            memcpy(a->etag, info.etag, sizeof(a->etag));
            a->etag[sizeof(a->etag) - 1] = '\0';
            a->state = A_OK;
        } else {
            a->err = rc;
            a->errmsg = msg;
            a->state = A_FAILED;
        }
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the source ------------------------------------------------------------------ */

/* fill takes records from the inner source until `ahead` are queued. */
static int fill(rsrc *s, int wait)
{
    while (s->count < s->ahead && !s->inner_eof) {
        rrec *r = calloc(1, sizeof(*r));
        if (r == NULL)
            return S3S_ENOMEM;
        s3s__errbuf ieb = {{0}};
        int rc = s->inner->next(s->inner, &r->d, wait && s->count == 0, &ieb);
        if (rc == S3S_EBUSY) {
            free(r);
            return 0;
        }
        if (rc != 0) {
            free(r);
            s->inner_eof = 1;
            if (rc != S3S_EEOF) {
                s->inner_err = rc;
                snprintf(s->inner_msg, sizeof(s->inner_msg), "%s", ieb.msg);
            }
            return 0;
        }
        if (parse_rec(s, r) != 0) {
            s->inner->release(s->inner, &r->d);
            rec_free(r);
            return S3S_ENOMEM;
        }
        r->in_queue = 1;
        r->id = ++s->next_id;
        r->anext = s->all;
        if (s->all != NULL)
            s->all->aprev = r;
        s->all = r;
        pthread_mutex_lock(&s->mu);
        if (s->tail)
            s->tail->next = r;
        else
            s->head = r;
        s->tail = r;
        s->count++;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
    return 0;
}

static void maybe_free(rsrc *s, rrec *r)
{
    if (r->in_queue || (r->emitted != r->n && !r->dropped) || r->settled != r->emitted)
        return;
    if (r->aprev != NULL)
        r->aprev->anext = r->anext;
    else
        s->all = r->anext;
    if (r->anext != NULL)
        r->anext->aprev = r->aprev;
    rec_free(r);
}

static rrec *find(rsrc *s, uint64_t id)
{
    for (rrec *r = s->all; r != NULL; r = r->anext)
        if (r->id == id)
            return r;
    return NULL;
}

static void unqueue_head_locked(rsrc *s)
{
    rrec *r = s->head;
    s->head = r->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->count--;
    r->next = NULL;
    r->in_queue = 0;
}

/* drop_revoked drops the records at the front of the queue whose lease the
 * inner source says is gone (a coordinator revoked it): nothing more of them
 * is handed out, and the inner source gets them back. */
static void drop_revoked(rsrc *s)
{
    while (s->head != NULL && s->inner->valid != NULL && !s->inner->valid(s->inner, &s->head->d)) {
        rrec *r = s->head;
        pthread_mutex_lock(&s->mu); /* resolvers walk the queue */
        unqueue_head_locked(s);
        pthread_mutex_unlock(&s->mu);
        /* a resolver may still be HEADing an attribute of it: wait for that */
        pthread_mutex_lock(&s->mu);
        for (uint32_t i = 0; i < r->n; i++)
            while (r->attrs[i].state == A_RESOLVING)
                pthread_cond_wait(&s->cv, &s->mu);
        pthread_mutex_unlock(&s->mu);
        r->dropped = 1;
        if (!r->released && !r->finished) {
            r->released = 1;
            s->inner->release(s->inner, &r->d);
        }
        maybe_free(s, r);
    }
}

static int rec_next(s3s__source *base, s3s__item_desc *out, int wait, s3s__errbuf *eb)
{
    rsrc *s = (rsrc *)base;
    if (s->drained)
        return S3S_EEOF;
    drop_revoked(s);
    int rc = fill(s, wait);
    if (rc != 0)
        return s3s__err_set(eb, rc, "out of memory");
    drop_revoked(s); /* fill may have polled the inner source's revocations */
    rrec *r = s->head;
    if (r == NULL) {
        if (s->inner_err)
            return s3s__err_set(eb, s->inner_err, "%s", s->inner_msg);
        return s->inner_eof ? S3S_EEOF : S3S_EBUSY;
    }
    if (r->bad)
        return s3s__err_set(eb, S3S_EPARSE, "%s", r->badmsg ? r->badmsg : "bad record");
    rattr *a = &r->attrs[r->emitted];
    pthread_mutex_lock(&s->mu);
    while (a->is_ref && (a->state == A_PENDING || a->state == A_RESOLVING)) {
        if (!wait) {
            pthread_mutex_unlock(&s->mu);
            return S3S_EBUSY;
        }
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    if (a->state == A_FAILED)
        return s3s__err_set(eb, a->err, "%s", a->errmsg ? a->errmsg : s3s_strerror(a->err));
    memset(out, 0, sizeof(*out));
    out->attribute = strdup(a->name);
    if (a->is_ref) {
        out->bucket = strdup(a->bucket);
        out->key = strdup(a->key);
        out->etag = strdup(a->etag);
        out->size = a->size;
    } else {
        out->bucket = strdup("");
        out->key = strdup(a->name);
        out->etag = strdup("");
        out->size = a->json_len;
        out->data = malloc(a->json_len ? a->json_len : 1);
        if (out->data != NULL)
            memcpy(out->data, a->json, a->json_len);
    }
    if (!out->attribute || !out->bucket || !out->key || !out->etag ||
        (!a->is_ref && out->data == NULL)) {
        s3s__item_desc_fini(out);
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    }
    if (r->d.epoch != s->pos_epoch) {
        s->pos_epoch = r->d.epoch;
        s->pos_next = 0;
    }
    out->epoch = r->d.epoch;
    out->position = s->pos_next++;
    out->line = r->d.line;
    out->attr_index = r->emitted;
    out->attr_count = r->n;
    out->token = r->id;
    pthread_mutex_lock(&s->mu); /* resolvers read emitted and the queue */
    r->emitted++;
    if (r->emitted == r->n) /* fully handed out: leaves the queue */
        unqueue_head_locked(s);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int rec_commit(s3s__source *base, const s3s__item_desc *d, uint64_t offset, int done,
                      s3s__errbuf *eb)
{
    rsrc *s = (rsrc *)base;
    rrec *r = find(s, d->token);
    (void)offset;
    if (r == NULL || d->attr_index >= r->n)
        return s3s__err_set(eb, S3S_ESTALE, "the lease of this record was revoked");
    if (!done)
        return 0; /* the record is the unit: partial progress is not passed on */
    rattr *a = &r->attrs[d->attr_index];
    int rc = 0;
    if (r->dropped || r->failed) {
        char loc[1200];
        where(s, r, loc, sizeof(loc));
        rc = s3s__err_set(eb, S3S_ESTALE, "%s: the lease of this record was revoked", loc);
    }
    if (a->settled)
        return rc;
    a->settled = 1;
    r->settled++;
    r->done++;
    if (rc == 0 && r->done == r->n && !r->released && !r->finished) {
        r->finished = 1;
        rc = s->inner->commit(s->inner, &r->d, r->d.size, 1, eb);
        r->failed = rc != 0;
    }
    maybe_free(s, r);
    return rc;
}

static void rec_release(s3s__source *base, const s3s__item_desc *d)
{
    rsrc *s = (rsrc *)base;
    rrec *r = find(s, d->token);
    if (r == NULL || d->attr_index >= r->n || r->attrs[d->attr_index].settled)
        return;
    r->attrs[d->attr_index].settled = 1;
    r->settled++;
    if (!r->released && !r->finished) {
        r->released = 1;
        s->inner->release(s->inner, &r->d);
    }
    maybe_free(s, r);
}

static int rec_valid(s3s__source *base, const s3s__item_desc *d)
{
    rsrc *s = (rsrc *)base;
    rrec *r = find(s, d->token);
    return r != NULL && !r->dropped && !r->failed && s->inner->valid(s->inner, &r->d);
}

static int rec_drain(s3s__source *base, const char *reason, s3s__errbuf *eb)
{
    rsrc *s = (rsrc *)base;
    s->drained = 1; /* nothing more is handed out; records out stay until settled */
    return s->inner->drain(s->inner, reason, eb);
}

static void rec_fetched(s3s__source *base, uint64_t n)
{
    rsrc *s = (rsrc *)base;
    s->inner->fetched(s->inner, n);
}

static void rec_destroy(s3s__source *base)
{
    rsrc *s = (rsrc *)base;
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (unsigned i = 0; i < s->nthreads; i++)
        pthread_join(s->tids[i], NULL);
    for (unsigned i = 0; s->clients != NULL && i < s->nclients; i++)
        s3s_s3_destroy(s->clients[i]);
    free(s->clients);
    free(s->tids);
    free(s->ts);
    while (s->all != NULL) { /* queued, and out with items not settled */
        rrec *r = s->all;
        s->all = r->anext;
        if (!r->released && !r->finished)
            s->inner->release(s->inner, &r->d);
        rec_free(r);
    }
    s->head = s->tail = NULL;
    if (s->inner)
        s->inner->destroy(s->inner);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->manifest);
    free(s);
}

int s3s__source_records_create(s3s__source **out, s3s__source *inner, const char *manifest,
                               const s3s_s3_opts *s3, unsigned threads, unsigned ahead,
                               s3s__errbuf *eb)
{
    if (threads == 0 || threads > 64 || ahead == 0 || ahead > 65536)
        return s3s__err_set(eb, S3S_EINVAL, "records: %u resolver threads, %u ahead", threads,
                            ahead);
    rsrc *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    s->base.next = rec_next;
    s->base.commit = rec_commit;
    s->base.release = rec_release;
    s->base.destroy = rec_destroy;
    s->ahead = ahead;
    s->pos_epoch = UINT64_MAX;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->manifest = strdup(manifest ? manifest : "(manifest)");
    s->tids = calloc(threads, sizeof(*s->tids));
    s->clients = calloc(threads, sizeof(*s->clients));
    s->ts = calloc(threads, sizeof(*s->ts));
    if (!s->manifest || !s->tids || !s->clients || !s->ts) {
        rec_destroy(&s->base);
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    }
    s3s_s3_opts so = *s3;
    so.max_connections = 2;
    for (unsigned i = 0; i < threads; i++) {
        int rc = s3s_s3_create(&s->clients[i], &so);
        if (rc != 0) {
            s3s__err_set(eb, rc, "S3 client: %s", s3s_s3_last_create_error());
            rec_destroy(&s->base);
            return rc;
        }
        s->nclients = i + 1;
    }
    for (unsigned i = 0; i < threads; i++) {
        s->ts[i].s = s;
        s->ts[i].s3 = s->clients[i];
        if (pthread_create(&s->tids[i], NULL, resolver_main, &s->ts[i]) != 0) {
            rec_destroy(&s->base);
            return s3s__err_set(eb, S3S_ENOMEM, "cannot start resolver thread %u", i);
        }
        s->nthreads = i + 1;
    }
    s->inner = inner; /* taken over only now that nothing can fail */
    s->base.valid = inner->valid ? rec_valid : NULL;
    s->base.drain = inner->drain ? rec_drain : NULL;
    s->base.fetched = inner->fetched ? rec_fetched : NULL;
    *out = &s->base;
    return 0;
}
