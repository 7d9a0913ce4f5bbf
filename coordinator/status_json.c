/* status_json.c: a decoded status reply as JSON. */
#include "coordinator/status_json.h"

#include "s3shard/error.h"

#include <math.h>
#include <stdio.h>

int s3s__json_str(s3s__buf *out, const char *s, size_t n)
{
    int rc = s3s__buf_append(out, "\"", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            rc = s3s__buf_append(out, e, 2);
        } else if (ch < 0x20) {
            rc = s3s__buf_printf(out, "\\u%04x", ch);
        } else {
            rc = s3s__buf_append(out, &s[i], 1);
        }
    }
    return rc ? rc : s3s__buf_append(out, "\"", 1);
}

int s3s__pval_json(const s3s__pval *v, s3s__buf *out)
{
    int rc = 0;
    switch (v->type) {
    case S3S_PV_NIL:
        return s3s__buf_puts(out, "null");
    case S3S_PV_BOOL:
        return s3s__buf_puts(out, v->v.b ? "true" : "false");
    case S3S_PV_UINT:
        return s3s__buf_printf(out, "%llu", (unsigned long long)v->v.u);
    case S3S_PV_INT:
        return s3s__buf_printf(out, "%lld", (long long)v->v.i);
    case S3S_PV_FLOAT:
        return isfinite(v->v.f) ? s3s__buf_printf(out, "%.6g", v->v.f) : s3s__buf_puts(out, "null");
    case S3S_PV_STR:
        return s3s__json_str(out, v->v.s, v->n);
    case S3S_PV_BIN:
        return s3s__buf_printf(out, "{\"bin_bytes\":%u}", v->n);
    case S3S_PV_ARRAY:
        rc = s3s__buf_puts(out, "[");
        for (uint32_t i = 0; rc == 0 && i < v->n; i++) {
            if (i > 0)
                rc = s3s__buf_puts(out, ",");
            if (rc == 0)
                rc = s3s__pval_json(&v->v.items[i], out);
        }
        return rc ? rc : s3s__buf_puts(out, "]");
    case S3S_PV_MAP:
        rc = s3s__buf_puts(out, "{");
        for (uint32_t i = 0; rc == 0 && i < v->n; i++) {
            if (i > 0)
                rc = s3s__buf_puts(out, ",");
            if (rc == 0) {
                const char *k = v->v.kv[i].key;
                size_t kn = 0;
                while (k[kn])
                    kn++;
                rc = s3s__json_str(out, k, kn);
            }
            if (rc == 0)
                rc = s3s__buf_puts(out, ":");
            if (rc == 0)
                rc = s3s__pval_json(&v->v.kv[i].val, out);
        }
        return rc ? rc : s3s__buf_puts(out, "}");
    default:
        return s3s__buf_puts(out, "null");
    }
}
