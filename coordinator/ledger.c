/* ledger.c: the coverage ledger's storage. Growth doubles, so appends are
 * amortised O(1); a 10 M-shard epoch read by whole-shard leases holds 10 M
 * entries of 32 bytes. */
#include "coordinator/ledger.h"

#include <stdlib.h>
#include <string.h>

#include "s3shard/error.h"

void s3s__ledger_init(s3s__ledger *l)
{
    memset(l, 0, sizeof(*l));
}

void s3s__ledger_fini(s3s__ledger *l)
{
    if (l == NULL)
        return;
    free(l->v);
    memset(l, 0, sizeof(*l));
}

void s3s__ledger_reset(s3s__ledger *l)
{
    l->n = 0;
}

int s3s__ledger_add(s3s__ledger *l, uint32_t pos, uint32_t who, uint64_t token, uint64_t start,
                    uint64_t end, size_t *out_idx)
{
    if (l->n == l->alloc) {
        size_t na = l->alloc ? l->alloc * 2 : 1024;
        s3s__ledger_entry *nv = realloc(l->v, na * sizeof(*nv));
        if (nv == NULL)
            return S3S_ENOMEM;
        l->v = nv;
        l->alloc = na;
    }
    s3s__ledger_entry *e = &l->v[l->n];
    e->start = start;
    e->end = end;
    e->token = token;
    e->pos = pos;
    e->who = who;
    if (out_idx != NULL)
        *out_idx = l->n;
    l->n++;
    return 0;
}

int s3s__ledger_reserve(s3s__ledger *l, size_t n)
{
    if (n <= l->alloc)
        return 0;
    s3s__ledger_entry *nv = realloc(l->v, n * sizeof(*nv));
    if (nv == NULL)
        return S3S_ENOMEM;
    l->v = nv;
    l->alloc = n;
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    const s3s__ledger_key *x = a, *y = b;
    if (x->lane != y->lane)
        return x->lane < y->lane ? -1 : 1;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return 0;
}

void s3s__ledger_sort_keys(s3s__ledger_key *k, size_t n)
{
    if (n > 1)
        qsort(k, n, sizeof(*k), key_cmp);
}
