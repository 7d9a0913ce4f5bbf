/* log.h: leveled logging to stderr. Never pass a secret or credential to it. */
#ifndef S3S_UTIL_LOG_H
#define S3S_UTIL_LOG_H

enum { S3S_LOG_ERROR = 0, S3S_LOG_WARN = 1, S3S_LOG_INFO = 2, S3S_LOG_DEBUG = 3 };

/* s3s__log_level is the most verbose level printed (default WARN, or the value
 * of S3SHARD_LOG=error|warn|info|debug read at the first call). */
void s3s__log_set_level(int level);
int s3s__log_get_level(void);
void s3s__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define S3S_LOGE(...) s3s__log(S3S_LOG_ERROR, __VA_ARGS__)
#define S3S_LOGW(...) s3s__log(S3S_LOG_WARN, __VA_ARGS__)
#define S3S_LOGI(...) s3s__log(S3S_LOG_INFO, __VA_ARGS__)
#define S3S_LOGD(...) s3s__log(S3S_LOG_DEBUG, __VA_ARGS__)

#endif
