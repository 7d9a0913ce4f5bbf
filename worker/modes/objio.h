/* objio.h: how the modes read object bytes: open(key) / pread / close
 * (internal).
 *
 * FastFile's FUSE layer reads through this small interface so that the byte
 * source can be swapped (a test double, another reader); the one used is the
 * worker library's reader (s3s_reader_open / s3s_reader_pread: fetch threads,
 * growing read-ahead, the disk cache).
 *
 * Thread safety: open and close may be called from any thread; one handle's
 * pread may be called from several threads at once (FUSE does) and is
 * serialised inside. */
#ifndef S3S_WORKER_MODES_OBJIO_H
#define S3S_WORKER_MODES_OBJIO_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/errbuf.h"
#include "s3shard/s3.h"
#include "s3shard/worker.h"

typedef struct s3s__objio {
    void *ud;
    /* open makes a handle on bucket/key of known size; etag ("" or NULL: none)
     * is checked on every GET (a changed object fails with S3S_ECONFLICT). */
    int (*open)(void *ud, const char *bucket, const char *key, uint64_t size, const char *etag,
                void **out, s3s__errbuf *eb);
    /* pread reads up to n bytes at off; *out_n < n only at the end. */
    int (*pread)(void *h, void *buf, size_t n, uint64_t off, size_t *out_n, s3s__errbuf *eb);
    void (*close)(void *h);
    /* prefetch (NULL: none) starts fetching the first bytes of h's object
     * without waiting, for a file expected to be read soon. */
    void (*prefetch)(void *h);
    /* pread_fd (NULL: none) is a pread that copies nothing when the bytes at
     * off are in a file: it gives that file (a descriptor the caller closes)
     * and the offset in it, for the first *out_n bytes of [off, off + n);
     * else *out_fd = -1, *out_n = 0, and the caller preads. */
    int (*pread_fd)(void *h, size_t n, uint64_t off, int *out_fd, uint64_t *out_foff, size_t *out_n,
                    s3s__errbuf *eb);
} s3s__objio;

/* s3s__objio_worker_create makes a worker that only serves readers
 * (s3s_reader_open: its fetch threads, read-ahead and disk cache) and has no
 * items of its own: FastFile's files are opened in whatever order the
 * program wants. wopts gives the S3 options, cache and fetch settings; its
 * job/channel/snapshot are ignored. */
int s3s__objio_worker_create(s3s_worker **out, const s3s_worker_opts *wopts, s3s__errbuf *eb);
/* s3s__objio_worker_io fills io with calls over w's readers (each handle
 * serialises its reader, which belongs to one thread at a time). */
void s3s__objio_worker_io(s3s_worker *w, s3s__objio *io);

/* s3s__objio_read_full preads exactly n bytes at off (fewer only at the end). */
int s3s__objio_read_full(const s3s__objio *io, void *h, void *buf, size_t n, uint64_t off,
                         size_t *out_n, s3s__errbuf *eb);

#endif
