/* list.c: ListObjectsV2: sequential (continuation tokens), one level with a
 * delimiter. The parallel listing is in listpar.c. */
#include "common/s3/client.h"

#include "common/s3/http.h"
#include "common/s3/listpar.h"
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
int s3s__list_query(s3s__buf *q, const char *prefix, const char *delimiter, const char *start_after,
                    const char *token, unsigned max_keys)
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

void s3s__list_xfer(s3s__xfer *x, const char *bucket, s3s__buf *q)
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
        if ((rc = s3s__list_query(&q, prefix, delimiter, token == NULL ? start_after : NULL, token,
                                  0)) != 0) {
            s3s__err_set(&s3->eb, rc, "list %s: query too long", bucket);
            break;
        }
        s3s__list_xfer(&x, bucket, &q);
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
