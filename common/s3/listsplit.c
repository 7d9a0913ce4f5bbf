/* listsplit.c: split points for the parallel listing (see listsplit.h). */
#include "common/s3/listsplit.h"

#include "s3shard/error.h"

#include <stdlib.h>
#include <string.h>

#define MAX_POINTS 4096

/* The bytes that may follow at position i: those the page shows there, widened
 * to their whole class (a digit seen means any digit may come, likewise
 * lowercase and uppercase letters), since the page holds only the first keys
 * of a counter, a date or a hash. */
static void alphabet_at(unsigned char seen[256], const char *const *keys, size_t nkeys, size_t i)
{
    int digit = 0, lower = 0, upper = 0;
    memset(seen, 0, 256);
    for (size_t k = 0; k < nkeys; k++) {
        const char *key = keys[k];
        size_t j = 0;
        while (j < i && key[j] != '\0')
            j++;
        if (j < i || key[i] == '\0')
            continue;
        unsigned char c = (unsigned char)key[i];
        seen[c] = 1;
        digit |= c >= '0' && c <= '9';
        lower |= c >= 'a' && c <= 'z';
        upper |= c >= 'A' && c <= 'Z';
    }
    for (int c = 0; c < 256; c++)
        if ((digit && c >= '0' && c <= '9') || (lower && c >= 'a' && c <= 'z') ||
            (upper && c >= 'A' && c <= 'Z'))
            seen[c] = 1;
}

int s3s__listsplit_points(char ***out, size_t *n, const char *const *keys, size_t nkeys,
                          const char *prefix, const char *hi, unsigned want)
{
    *out = NULL;
    *n = 0;
    if (nkeys == 0 || want == 0)
        return 0;
    size_t pl = prefix != NULL ? strlen(prefix) : 0;
    const char *first = keys[0], *last = keys[nkeys - 1];
    size_t ll = strlen(last);
    if (ll < pl || strncmp(last, prefix != NULL ? prefix : "", pl) != 0)
        return 0;
    /* Where the page's keys start to differ. */
    size_t cl = 0;
    while (first[cl] != '\0' && first[cl] == last[cl])
        cl++;
    if (cl < pl)
        cl = pl;
    if (cl >= ll)
        cl = ll - (ll > pl ? 1 : 0);
    if (want > MAX_POINTS)
        want = MAX_POINTS;
    char **pts = calloc(want, sizeof *pts);
    if (pts == NULL)
        return S3S_ENOMEM;
    size_t np = 0;
    int stop = 0;
    for (size_t i = cl + 1; i-- > pl && !stop && np < want;) {
        unsigned char at = i < ll ? (unsigned char)last[i] : 0;
        unsigned char seen[256];
        alphabet_at(seen, keys, nkeys, i);
        for (unsigned s = (unsigned)at + 1; s < 256 && np < want; s++) {
            if (!seen[s])
                continue;
            char *p = malloc(i + 2);
            if (p == NULL) {
                for (size_t k = 0; k < np; k++)
                    free(pts[k]);
                free(pts);
                return S3S_ENOMEM;
            }
            memcpy(p, last, i);
            p[i] = (char)s;
            p[i + 1] = '\0';
            if (hi != NULL && strcmp(p, hi) >= 0) {
                free(p);
                stop = 1; /* candidates only grow from here */
                break;
            }
            pts[np++] = p;
        }
    }
    *out = pts;
    *n = np;
    return 0;
}
