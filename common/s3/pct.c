/* pct.c: percent-encoding and decoding (see pct.h). */
#include "common/s3/pct.h"

#include <string.h>

int s3s__pct_is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~';
}

int s3s__pct_encode(s3s__buf *out, const char *s, size_t n, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i = 0;
    while (i < n) {
        /* Copy runs of pass-through bytes in one append. */
        size_t j = i;
        while (j < n &&
               (s3s__pct_is_unreserved((unsigned char)s[j]) || (keep_slash && s[j] == '/')))
            j++;
        if (j > i) {
            int rc = s3s__buf_append(out, s + i, j - i);
            if (rc != 0)
                return rc;
            i = j;
            continue;
        }
        unsigned char c = (unsigned char)s[i++];
        char e[3] = {'%', hex[c >> 4], hex[c & 15]};
        int rc = s3s__buf_append(out, e, 3);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int s3s__pct_decode(s3s__buf *out, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *p = memchr(s + i, '%', n - i);
        size_t j = p != NULL ? (size_t)(p - s) : n;
        if (j > i) {
            int rc = s3s__buf_append(out, s + i, j - i);
            if (rc != 0)
                return rc;
            i = j;
            continue;
        }
        /* s[i] == '%': a valid escape needs two hex digits after it. */
        int h = i + 2 < n ? hexval(s[i + 1]) : -1;
        int l = h >= 0 ? hexval(s[i + 2]) : -1;
        if (h >= 0 && l >= 0) {
            char c = (char)(h << 4 | l);
            int rc = s3s__buf_append(out, &c, 1);
            if (rc != 0)
                return rc;
            i += 3;
        } else {
            int rc = s3s__buf_append(out, "%", 1);
            if (rc != 0)
                return rc;
            i++;
        }
    }
    return 0;
}
