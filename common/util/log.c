/* log.c: leveled logging to stderr (see log.h). */
#include "common/util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = -1;

static int level_from_env(void)
{
    const char *e = getenv("S3SHARD_LOG");
    if (e == NULL)
        return S3S_LOG_WARN;
    if (strcmp(e, "error") == 0)
        return S3S_LOG_ERROR;
    if (strcmp(e, "info") == 0)
        return S3S_LOG_INFO;
    if (strcmp(e, "debug") == 0)
        return S3S_LOG_DEBUG;
    return S3S_LOG_WARN;
}

void s3s__log_set_level(int level)
{
    log_level = level;
}

int s3s__log_get_level(void)
{
    if (log_level < 0)
        log_level = level_from_env();
    return log_level;
}

void s3s__log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > s3s__log_get_level())
        return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld s3shard[%d] %s: ", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid(),
                     names[level < 0       ? 0
                               : level > 3 ? 3
                                           : level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
