/* fs.h: small file-system helpers shared by the CLI and the modes (internal). */
#ifndef S3S_UTIL_FS_H
#define S3S_UTIL_FS_H

/* s3s__mkdirs is `mkdir -p path` with mode 0755: every missing folder on the
 * way is made; folders that exist are fine. Returns 0, or -1 with errno set
 * (ENAMETOOLONG when the path does not fit PATH_MAX). */
int s3s__mkdirs(const char *path);

#endif
