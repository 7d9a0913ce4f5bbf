/* ini.c: reading the AWS shared config/credentials files (see ini.h). */
#include "common/s3/ini.h"

#include "s3shard/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Loads the whole file (NUL-terminated) into *out; *out NULL when absent. */
static int load(const char *path, char **out, s3s__errbuf *eb)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return s3s__err_set(eb, S3S_EIO, "%s: %s", path, strerror(errno));
    }
    char *buf = malloc(S3S_INI_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        return S3S_ENOMEM;
    }
    size_t n = fread(buf, 1, S3S_INI_MAX + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return s3s__err_set(eb, S3S_EIO, "%s: read error", path);
    }
    if (n > S3S_INI_MAX) {
        free(buf);
        return s3s__err_set(eb, S3S_ETOOBIG, "%s: larger than %u bytes", path, S3S_INI_MAX);
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* Walks the file; returns 1 and sets *val when section/key is found (key NULL:
 * just the section). */
static int find(char *text, const char *section, const char *key, char **val)
{
    int in = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *l = trim(line);
        if (*l == '\0' || *l == '#' || *l == ';')
            continue;
        if (*l == '[') {
            char *end = strchr(l, ']');
            if (end == NULL)
                continue;
            *end = '\0';
            in = strcmp(trim(l + 1), section) == 0;
            if (in && key == NULL)
                return 1;
            continue;
        }
        if (!in || key == NULL)
            continue;
        char *eq = strchr(l, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (strcmp(trim(l), key) == 0) {
            *val = trim(eq + 1);
            return 1;
        }
    }
    return 0;
}

int s3s__ini_get(const char *path, const char *section, const char *key, char **out,
                 s3s__errbuf *eb)
{
    char *text = NULL, *val = NULL;
    *out = NULL;
    int rc = load(path, &text, eb);
    if (rc != 0 || text == NULL)
        return rc;
    if (find(text, section, key, &val)) {
        *out = strdup(val);
        if (*out == NULL)
            rc = S3S_ENOMEM;
    }
    free(text);
    return rc;
}

int s3s__ini_has_section(const char *path, const char *section)
{
    char *text = NULL, *val = NULL;
    if (load(path, &text, NULL) != 0 || text == NULL)
        return 0;
    int found = find(text, section, NULL, &val);
    free(text);
    return found;
}
