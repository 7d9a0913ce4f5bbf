/* keypath.c: object keys as relative paths; see keypath.h for the rules. */
#include "worker/keypath.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3shard/error.h"

/* Shows a key in a message: printable bytes as they are, the rest as \xNN,
 * cut (with "...") to keep messages short. */
static void show_key(char *out, size_t cap, const char *key, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (o + 8 >= cap) {
            snprintf(out + o, cap - o, "...");
            return;
        }
        if (ch < 0x20 || ch == 0x7f || ch == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
}

static int refuse(s3s__errbuf *eb, const char *key, size_t len, const char *why)
{
    char shown[300];
    show_key(shown, sizeof(shown), key, len);
    return s3s__err_set(eb, S3S_EUNSAFEKEY, "unsafe object key '%s': %s", shown, why);
}

int s3s__keypath_check(const char *key, size_t len, s3s__errbuf *eb)
{
    if (key == NULL || len == 0)
        return s3s__err_set(eb, S3S_EUNSAFEKEY, "unsafe object key '': empty key");
    if (len > S3S__KEYPATH_MAX)
        return refuse(eb, key, len, "longer than 1024 bytes");
    if (key[0] == '/')
        return refuse(eb, key, len, "absolute path (leading '/')");
    size_t seg = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || key[i] == '/') {
            size_t sl = i - seg;
            const char *s = key + seg;
            if (sl == 0)
                return refuse(eb, key, len,
                              i == len ? "ends with '/' (a folder, not an object)"
                                       : "empty path segment ('//')");
            if ((sl == 1 && s[0] == '.') || (sl == 2 && s[0] == '.' && s[1] == '.'))
                return refuse(eb, key, len, "'.' or '..' path segment");
            if (sl > S3S__KEYPATH_SEG_MAX)
                return refuse(eb, key, len, "path segment longer than 255 bytes");
            seg = i + 1;
            continue;
        }
        unsigned char ch = (unsigned char)key[i];
        if (ch == 0)
            return refuse(eb, key, len, "contains a NUL byte");
        if (ch < 0x20 || ch == 0x7f)
            return refuse(eb, key, len, "contains a control character");
    }
    return 0;
}

int s3s__keypath_join(char **out, const char *dir, const char *key, size_t len, s3s__errbuf *eb)
{
    *out = NULL;
    int rc = s3s__keypath_check(key, len, eb);
    if (rc != 0)
        return rc;
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    char *p = malloc(dl + 1 + len + 1);
    if (p == NULL)
        return S3S_ENOMEM;
    memcpy(p, dir, dl);
    p[dl] = '/';
    memcpy(p + dl + 1, key, len);
    p[dl + 1 + len] = '\0';
    *out = p;
    return 0;
}

int s3s__keypath_is_folder_marker(const char *key, size_t len, uint64_t size)
{
    return size == 0 && len > 0 && key[len - 1] == '/';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int s3s__keypath_check_set(const char *const *keys, size_t n, s3s__errbuf *eb)
{
    for (size_t i = 0; i < n; i++) {
        int rc = s3s__keypath_check(keys[i], strlen(keys[i]), eb);
        if (rc != 0)
            return rc;
    }
    if (n < 2)
        return 0;
    const char **sorted = malloc(n * sizeof(*sorted));
    if (sorted == NULL)
        return S3S_ENOMEM;
    memcpy(sorted, keys, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    /* Keys under "k/" sort together, right where "k/" would be inserted;
     * keys like "k-x" or "k.x" may sit between "k" and them, hence the
     * binary search instead of a look at the next key. */
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0)
            continue;
        size_t kl = strlen(sorted[i]);
        size_t lo = i + 1, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strncmp(sorted[mid], sorted[i], kl);
            if (c < 0 || (c == 0 && (unsigned char)sorted[mid][kl] < '/'))
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n && strncmp(sorted[lo], sorted[i], kl) == 0 && sorted[lo][kl] == '/') {
            char a[300], b[300];
            show_key(a, sizeof(a), sorted[i], kl);
            show_key(b, sizeof(b), sorted[lo], strlen(sorted[lo]));
            rc = s3s__err_set(eb, S3S_EUNSAFEKEY,
                              "unsafe object key '%s': it is also the folder of key '%s'", a, b);
        }
    }
    free(sorted);
    return rc;
}
