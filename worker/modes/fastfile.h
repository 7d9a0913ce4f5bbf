/* fastfile.h: FastFile mode: a read-only FUSE mount of a rank's share
 * (internal; built only where libfuse3 is found: S3S_HAVE_FUSE).
 *
 * The mount lists the share as a folder tree made once, at mount time, from
 * the share list (share.h: paths already checked, folder markers skipped):
 * getattr and readdir are answered from memory, with no LIST or HEAD per file.
 * Files are 0444, folders 0555, owned by the mounting user, with the mount
 * time as their times. open() for writing fails with EROFS (the mount is
 * read-only). Reads go through an s3s__objio backend (objio.h): one handle
 * per file, made at its first read (the mount answers no OPEN: the kernel
 * then sends no OPEN or RELEASE at all) and closed when a read reaches the
 * end, past 64 idle ones, or at unmount; sequential reads stream with the
 * backend's read-ahead and random preads work. Bytes the disk cache holds
 * are answered with the cache block's fd and spliced (no copy in user
 * space). Object bytes never change under a snapshot, so the kernel may cache
 * pages and attributes (kernel_cache, one-hour timeouts).
 *
 * Threads: libfuse's multi-threaded loop runs in a thread of its own with
 * SIGINT, SIGTERM, SIGHUP, SIGCHLD and SIGQUIT blocked, so those reach the
 * program's own handling. s3s__fastfile_unmount stops the loop (waking it
 * with SIGUSR2, whose handler is a no-op installed at the first mount), then
 * unmounts (lazily when busy) and frees everything. */
#ifndef S3S_WORKER_MODES_FASTFILE_H
#define S3S_WORKER_MODES_FASTFILE_H

#include "common/util/errbuf.h"
#include "worker/modes/objio.h"
#include "worker/modes/share.h"

typedef struct s3s__fastfile s3s__fastfile;

/* s3s__fastfile_mount builds the tree of list (read during the call only:
 * the mount copies what it needs) and mounts it at mountpoint (created if
 * missing; a stale mount there, left by a killed process, is cleaned first).
 * io must outlive the mount. Fails with S3S_EIO (mkdir, FUSE setup or mount,
 * detail in eb), S3S_ENOMEM. */
int s3s__fastfile_mount(s3s__fastfile **out, const char *mountpoint, const s3s__share_list *list,
                        const s3s__objio *io, s3s__errbuf *eb);

/* s3s__fastfile_unmount stops serving, unmounts and frees. NULL-safe. */
void s3s__fastfile_unmount(s3s__fastfile *ff);

/* s3s__fastfile_clean_stale unmounts whatever FUSE file system is mounted at
 * path (lazily: `fusermount3 -u -z`, or umount2(MNT_DETACH) as root). Returns
 * 0 when nothing is mounted there any more, S3S_EBUSY when it stays mounted. */
int s3s__fastfile_clean_stale(const char *path, s3s__errbuf *eb);

/* s3s__mount_is_mounted returns 1 when path is a mount point in
 * /proc/self/mountinfo (path must be absolute and canonical), else 0. */
int s3s__mount_is_mounted(const char *path);

#endif
