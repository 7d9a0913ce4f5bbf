/* fastfile_fuse.c: FastFile mode over libfuse3's high-level API (see
 * fastfile.h). */
#include "common/util/fs.h"
#include "worker/modes/fastfile.h"

#include "common/util/log.h"
#include "s3shard/error.h"

#include <fuse.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <stdatomic.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A node of the tree: a folder (kids sorted by name) or a file. Node 0 is the
 * root. Invariant: names within one folder are unique. */
typedef struct node {
    char *name;
    int dir;
    uint32_t *kids, nkids, capkids;
    uint64_t size; /* file */
    char *key; /* file: the object key */
    char etag[72]; /* file */
    uint32_t order; /* file: its place in the share list (reading order) */
    /* file: its reader (under pre_mu): NULL until the first read; refs =
     * reads in progress; an idle one (refs 0) is on the idle list. */
    void *h;
    uint32_t refs;
    uint32_t idle_prev, idle_next; /* NONE: none */
} node;

#define NONE UINT32_MAX

/* Lookahead: a program that reads the files in the share's order (as a
 * data loader walking its file list does) finds each next file's first block
 * fetched already: the first read of file i opens handles on the files after
 * it, up to LOOKAHEAD, and starts their first block (within the worker's
 * prefetch budget). Reads out of that order start nothing; handles left
 * behind by more than LOOKAHEAD are closed. Without it every small file cost
 * one GET round trip after its open. */
#define LOOKAHEAD 64

/* Readers left idle (no read in progress, end not reached) are kept for the
 * next reads of their file, at most this many; the least recently used is
 * closed first. S3SHARD_FASTFILE_MAX_IDLE overrides it (tests). */
#define MAX_IDLE 64

/* The kernel read-ahead window set on the mount when root (set_readahead):
 * 0 leaves the kernel's (READs of 256 KiB for `cat` on Linux 6.18).
 * S3SHARD_FASTFILE_READAHEAD_KB sets one (1024: READs of 1 MiB). Off by
 * default: on 2026-11-26, 1 MiB READs made the uncached 1 GiB `cat` 2-3x
 * slower on loopback (3 of 3 interleaved pairs) and the cached one no
 * faster (docs/benchmarks.md). */
#define FF_READAHEAD_KB 0

struct s3s__fastfile {
    char *mountpoint;
    char *bucket;
    node *nodes;
    uint32_t nnodes, capnodes;
    uint64_t bytes, files;
    const s3s__objio *io;
    uid_t uid;
    gid_t gid;
    time_t mtime;
    struct fuse *fuse;
    pthread_t loop;
    int loop_started, mounted;
    /* lookahead (under pre_mu) */
    pthread_mutex_t pre_mu;
    uint32_t *by_order; /* share list index -> file node, UINT32_MAX: none */
    void **pre; /* share list index -> handle opened ahead, or NULL */
    size_t norder;
    size_t pre_lo, pre_hi; /* pre[] may be non-NULL only in [pre_lo, pre_hi) */
    int64_t last_open; /* order of the last file opened, -1 at first */
    uint32_t idle_head, idle_tail, nidle; /* idle readers, most recently used first */
    uint32_t max_idle;
    /* counters, logged at unmount (-v) */
    atomic_uint_fast64_t n_read, n_read_bytes, n_read_max, n_open, n_getattr, n_spliced;
};

/* ---- the tree ------------------------------------------------------------------- */

static int node_new(s3s__fastfile *ff, const char *name, size_t len, int dir, uint32_t *out)
{
    if (ff->nnodes == UINT32_MAX - 1)
        return S3S_ETOOBIG;
    if (ff->nnodes == ff->capnodes) {
        uint32_t nc = ff->capnodes ? ff->capnodes * 2 : 64;
        node *nv = realloc(ff->nodes, (size_t)nc * sizeof(*nv));
        if (nv == NULL)
            return S3S_ENOMEM;
        ff->nodes = nv;
        ff->capnodes = nc;
    }
    node *n = &ff->nodes[ff->nnodes];
    memset(n, 0, sizeof(*n));
    if ((n->name = strndup(name, len)) == NULL)
        return S3S_ENOMEM;
    n->dir = dir;
    n->idle_prev = n->idle_next = NONE;
    *out = ff->nnodes++;
    return 0;
}

static int kid_add(s3s__fastfile *ff, uint32_t parent, uint32_t kid)
{
    node *p = &ff->nodes[parent];
    if (p->nkids == p->capkids) {
        uint32_t nc = p->capkids ? p->capkids * 2 : 4;
        uint32_t *nv = realloc(p->kids, (size_t)nc * sizeof(*nv));
        if (nv == NULL)
            return S3S_ENOMEM;
        p->kids = nv;
        p->capkids = nc;
    }
    p->kids[p->nkids++] = kid;
    return 0;
}

static const s3s__share_list *sort_list;
static int by_rel(const void *a, const void *b)
{
    return strcmp(sort_list->v[*(const size_t *)a].rel, sort_list->v[*(const size_t *)b].rel);
}

static s3s__fastfile *sort_ff;
static int by_name(const void *a, const void *b)
{
    return strcmp(sort_ff->nodes[*(const uint32_t *)a].name,
                  sort_ff->nodes[*(const uint32_t *)b].name);
}

static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

/* build_tree: paths sorted by bytes put every path below a folder in one run,
 * so a folder is always its parent's most recent kid while its run lasts. */
static int build_tree(s3s__fastfile *ff, const s3s__share_list *l)
{
    uint32_t root;
    int rc = node_new(ff, "", 0, 1, &root);
    if (rc != 0)
        return rc;
    if (l->n >= UINT32_MAX)
        return S3S_ETOOBIG;
    size_t *idx = malloc((l->n ? l->n : 1) * sizeof(*idx));
    ff->by_order = malloc((l->n ? l->n : 1) * sizeof(*ff->by_order));
    ff->pre = calloc(l->n ? l->n : 1, sizeof(*ff->pre));
    if (idx == NULL || ff->by_order == NULL || ff->pre == NULL) {
        free(idx);
        return S3S_ENOMEM;
    }
    ff->norder = l->n;
    for (size_t i = 0; i < l->n; i++) {
        idx[i] = i;
        ff->by_order[i] = UINT32_MAX;
    }
    pthread_mutex_lock(&sort_mu);
    sort_list = l;
    qsort(idx, l->n, sizeof(*idx), by_rel);
    pthread_mutex_unlock(&sort_mu);
    for (size_t k = 0; k < l->n && rc == 0; k++) {
        const s3s__share_ent *e = &l->v[idx[k]];
        const char *p = e->rel;
        uint32_t cur = root;
        for (;;) {
            const char *slash = strchr(p, '/');
            size_t len = slash ? (size_t)(slash - p) : strlen(p);
            node *c = &ff->nodes[cur];
            uint32_t last = c->nkids ? c->kids[c->nkids - 1] : 0;
            int same = c->nkids && strlen(ff->nodes[last].name) == len &&
                memcmp(ff->nodes[last].name, p, len) == 0;
            if (slash == NULL) {
                if (same) /* a key listed twice (manifests allow it): one file */
                    break;
                uint32_t f;
                if ((rc = node_new(ff, p, len, 0, &f)) != 0 || (rc = kid_add(ff, cur, f)) != 0)
                    break;
                node *fn = &ff->nodes[f];
                fn->order = (uint32_t)idx[k];
                ff->by_order[idx[k]] = f;
                fn->size = e->size;
                memcpy(fn->etag, e->etag, sizeof fn->etag);
                if ((fn->key = strdup(e->key)) == NULL) {
                    rc = S3S_ENOMEM;
                    break;
                }
                ff->files++;
                ff->bytes += e->size;
                break;
            }
            if (same && ff->nodes[last].dir) {
                cur = last;
            } else {
                uint32_t d;
                if ((rc = node_new(ff, p, len, 1, &d)) != 0 || (rc = kid_add(ff, cur, d)) != 0)
                    break;
                cur = d;
            }
            p = slash + 1;
        }
    }
    free(idx);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&sort_mu);
    sort_ff = ff;
    for (uint32_t i = 0; i < ff->nnodes; i++)
        if (ff->nodes[i].dir && ff->nodes[i].nkids > 1)
            qsort(ff->nodes[i].kids, ff->nodes[i].nkids, sizeof(uint32_t), by_name);
    pthread_mutex_unlock(&sort_mu);
    return 0;
}

/* lookup returns the node of an absolute path, or -1. */
static int64_t lookup(const s3s__fastfile *ff, const char *path)
{
    uint32_t cur = 0;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p != '\0') {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        const node *c = &ff->nodes[cur];
        if (!c->dir)
            return -1;
        size_t lo = 0, hi = c->nkids;
        int64_t found = -1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            const char *nm = ff->nodes[c->kids[mid]].name;
            int cmp = strncmp(nm, p, len);
            if (cmp == 0 && nm[len] != '\0')
                cmp = 1;
            if (cmp == 0) {
                found = c->kids[mid];
                break;
            }
            if (cmp < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (found < 0)
            return -1;
        cur = (uint32_t)found;
        if (slash == NULL)
            break;
        p = slash + 1;
        while (*p == '/')
            p++;
    }
    return cur;
}

static void free_tree(s3s__fastfile *ff)
{
    for (uint32_t i = 0; i < ff->nnodes; i++) {
        if (ff->nodes[i].h != NULL)
            ff->io->close(ff->nodes[i].h);
        free(ff->nodes[i].name);
        free(ff->nodes[i].kids);
        free(ff->nodes[i].key);
    }
    free(ff->nodes);
    ff->nodes = NULL;
    ff->nnodes = 0;
    for (size_t i = ff->pre_lo; i < ff->pre_hi; i++)
        if (ff->pre[i] != NULL)
            ff->io->close(ff->pre[i]);
    free(ff->pre);
    free(ff->by_order);
    ff->pre = NULL;
    ff->by_order = NULL;
}

/* ---- FUSE operations ------------------------------------------------------------- */

static s3s__fastfile *self(void)
{
    return fuse_get_context()->private_data;
}

static void fill_stat(const s3s__fastfile *ff, uint32_t id, struct stat *st)
{
    const node *n = &ff->nodes[id];
    memset(st, 0, sizeof(*st));
    st->st_ino = (ino_t)id + 1;
    st->st_uid = ff->uid;
    st->st_gid = ff->gid;
    st->st_atime = st->st_mtime = st->st_ctime = ff->mtime;
    if (n->dir) {
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
        st->st_size = 4096;
    } else {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = (off_t)n->size;
        st->st_blocks = (blkcnt_t)((n->size + 511) / 512);
    }
    st->st_blksize = 1 << 20;
}

static void *ff_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* The tree and the bytes are immutable while mounted. */
    cfg->kernel_cache = 1;
    cfg->entry_timeout = 3600;
    cfg->attr_timeout = 3600;
    cfg->negative_timeout = 3600;
    cfg->use_ino = 1;
    /* zero copy from the cache's files (ff_read_buf) */
    conn->want |= conn->capable & FUSE_CAP_SPLICE_WRITE;
    return fuse_get_context()->private_data;
}

static int ff_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    s3s__fastfile *ff = self();
    atomic_fetch_add_explicit(&ff->n_getattr, 1, memory_order_relaxed);
    int64_t id = lookup(ff, path);
    if (id < 0)
        return -ENOENT;
    fill_stat(ff, (uint32_t)id, st);
    return 0;
}

static int ff_opendir(const char *path, struct fuse_file_info *fi)
{
    s3s__fastfile *ff = self();
    int64_t id = lookup(ff, path);
    if (id < 0)
        return -ENOENT;
    if (!ff->nodes[id].dir)
        return -ENOTDIR;
    fi->fh = (uint64_t)id;
    return 0;
}

static int ff_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)path;
    (void)off;
    (void)flags;
    s3s__fastfile *ff = self();
    const node *d = &ff->nodes[fi->fh];
    struct stat st;
    fill_stat(ff, (uint32_t)fi->fh, &st);
    filler(buf, ".", &st, 0, 0);
    filler(buf, "..", NULL, 0, 0);
    for (uint32_t i = 0; i < d->nkids; i++) {
        fill_stat(ff, d->kids[i], &st);
        if (filler(buf, ff->nodes[d->kids[i]].name, &st, 0, 0) != 0)
            break;
    }
    return 0;
}

/* lookahead (pre_mu held) takes the handle opened ahead for the file at
 * share position i (NULL: none) and, when the first reads of files follow
 * the share's order, opens the files after it and starts their first block. */
static void *lookahead(s3s__fastfile *ff, uint32_t i)
{
    if (ff->io->prefetch == NULL || i >= ff->norder)
        return NULL;
    void *mine = ff->pre[i];
    ff->pre[i] = NULL;
    int in_order = ff->last_open < (int64_t)i && (int64_t)i <= ff->last_open + LOOKAHEAD;
    ff->last_open = i;
    /* drop what was left behind (skipped files) */
    while (ff->pre_lo + LOOKAHEAD < i && ff->pre_lo < ff->pre_hi) {
        if (ff->pre[ff->pre_lo] != NULL) {
            ff->io->close(ff->pre[ff->pre_lo]);
            ff->pre[ff->pre_lo] = NULL;
        }
        ff->pre_lo++;
    }
    if (in_order) {
        size_t end =
            (size_t)i + 1 + LOOKAHEAD < ff->norder ? (size_t)i + 1 + LOOKAHEAD : ff->norder;
        size_t j = ff->pre_hi > (size_t)i + 1 ? ff->pre_hi : (size_t)i + 1;
        if (ff->pre_lo >= ff->pre_hi)
            ff->pre_lo = j;
        for (; j < end; j++) {
            uint32_t id = ff->by_order[j];
            if (id == UINT32_MAX || ff->nodes[id].h != NULL)
                continue;
            const node *n = &ff->nodes[id];
            void *h = NULL;
            s3s__errbuf eb = {{0}};
            if (ff->io->open(ff->io->ud, ff->bucket, n->key, n->size, n->etag, &h, &eb) != 0)
                break; /* only a hint: the read itself will report it */
            ff->pre[j] = h;
            ff->io->prefetch(h);
        }
        if (j > ff->pre_hi)
            ff->pre_hi = j;
    }
    return mine;
}

/* No OPEN, no RELEASE: ff_open answers ENOSYS, which tells the kernel (once,
 * at the first open) that this file system needs no open: it stops sending
 * OPEN and RELEASE, keeps the page cache across opens (FOPEN_KEEP_CACHE is
 * its default then) and sends reads with fh 0. That is two round trips
 * through user space fewer per file; for 40 KB files they were half of all
 * requests. A file's reader is made at its first read instead (reader_get)
 * and closed when a read reaches the end (reader_put), or when it has been
 * idle longer than MAX_IDLE others, or at unmount. Writes never get here:
 * the mount is read-only, so the kernel refuses them (EROFS) itself. */
static int ff_open(const char *path, struct fuse_file_info *fi)
{
    s3s__fastfile *ff = self();
    atomic_fetch_add_explicit(&ff->n_open, 1, memory_order_relaxed);
    int64_t id = lookup(ff, path);
    if (id < 0)
        return -ENOENT;
    if (ff->nodes[id].dir)
        return -EISDIR;
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
        return -EROFS;
    return -ENOSYS;
}

static void idle_unlink(s3s__fastfile *ff, uint32_t id)
{
    node *n = &ff->nodes[id];
    if (n->idle_prev != NONE)
        ff->nodes[n->idle_prev].idle_next = n->idle_next;
    else
        ff->idle_head = n->idle_next;
    if (n->idle_next != NONE)
        ff->nodes[n->idle_next].idle_prev = n->idle_prev;
    else
        ff->idle_tail = n->idle_prev;
    n->idle_prev = n->idle_next = NONE;
    ff->nidle--;
}

/* reader_get returns file id's reader with one more ref, making it (or
 * taking the one the lookahead made) at the file's first read. */
static int reader_get(s3s__fastfile *ff, uint32_t id, void **out, s3s__errbuf *eb)
{
    node *n = &ff->nodes[id];
    pthread_mutex_lock(&ff->pre_mu);
    if (n->h == NULL) {
        void *h = lookahead(ff, n->order);
        int rc =
            h != NULL ? 0 : ff->io->open(ff->io->ud, ff->bucket, n->key, n->size, n->etag, &h, eb);
        if (rc != 0) {
            pthread_mutex_unlock(&ff->pre_mu);
            return rc;
        }
        n->h = h;
    } else if (n->refs == 0) {
        idle_unlink(ff, id);
    }
    n->refs++;
    *out = n->h;
    pthread_mutex_unlock(&ff->pre_mu);
    return 0;
}

/* reader_put drops a ref; the last one closes the reader when the read
 * reached the end of the file (the program is done with it: whatever it
 * reads again comes from the page cache), else leaves it idle, closing the
 * least recently used idle reader past MAX_IDLE. */
static void reader_put(s3s__fastfile *ff, uint32_t id, int at_end)
{
    node *n = &ff->nodes[id];
    void *close1 = NULL;
    pthread_mutex_lock(&ff->pre_mu);
    if (--n->refs == 0) {
        if (at_end) {
            close1 = n->h;
            n->h = NULL;
        } else {
            n->idle_next = ff->idle_head;
            if (ff->idle_head != NONE)
                ff->nodes[ff->idle_head].idle_prev = id;
            else
                ff->idle_tail = id;
            ff->idle_head = id;
            ff->nidle++;
            if (ff->nidle > ff->max_idle) {
                uint32_t old = ff->idle_tail;
                idle_unlink(ff, old);
                close1 = ff->nodes[old].h;
                ff->nodes[old].h = NULL;
            }
        }
    }
    pthread_mutex_unlock(&ff->pre_mu);
    if (close1 != NULL)
        ff->io->close(close1);
}

static void count_read(s3s__fastfile *ff, size_t asked, size_t got)
{
    atomic_fetch_add_explicit(&ff->n_read, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ff->n_read_bytes, got, memory_order_relaxed);
    uint_fast64_t m = atomic_load_explicit(&ff->n_read_max, memory_order_relaxed);
    while (asked > m && !atomic_compare_exchange_weak(&ff->n_read_max, &m, asked))
        ;
}

/* Zero copy: a read of bytes the disk cache holds is answered with the
 * cache block's file and offset (fuse_reply_data with FUSE_BUF_IS_FD), and
 * libfuse splices them from the block file's page cache through a pipe into
 * /dev/fuse (FUSE_CAP_SPLICE_WRITE): the one copy left is the kernel's into
 * the mount's page cache, where a pread into our buffer and a write from it
 * were two. The block was checked by the cache when the reader took it (its
 * trailer, and its CRC once per reader) and a block file never changes, so
 * the spliced bytes are the checked ones. libfuse sends the reply after
 * read_buf returns, so the descriptors (dups: the reader may drop its block
 * meanwhile) are closed by the same loop thread at its next read, or when it
 * exits (spliced). Where splicing is not possible (an old kernel, or the
 * reply larger than a pipe may grow for a user without CAP_SYS_RESOURCE),
 * libfuse copies from the fd itself. */
#define MAXSEG 8

typedef struct spliced {
    int n;
    int fd[MAXSEG];
} spliced;

static pthread_key_t spliced_key;
static pthread_once_t spliced_once = PTHREAD_ONCE_INIT;

static void spliced_close(spliced *sp)
{
    for (int i = 0; i < sp->n; i++)
        close(sp->fd[i]);
    sp->n = 0;
}

static void spliced_free(void *v)
{
    spliced_close(v);
    free(v);
}

static void spliced_init(void)
{
    pthread_key_create(&spliced_key, spliced_free);
}

/* spliced_mine returns this thread's list, its previous reply's descriptors
 * closed (NULL: out of memory: no zero copy). */
static spliced *spliced_mine(void)
{
    pthread_once(&spliced_once, spliced_init);
    spliced *sp = pthread_getspecific(spliced_key);
    if (sp == NULL) {
        if ((sp = calloc(1, sizeof(*sp))) == NULL || pthread_setspecific(spliced_key, sp) != 0) {
            free(sp);
            return NULL;
        }
    }
    spliced_close(sp);
    return sp;
}

static int ff_read_buf(const char *path, struct fuse_bufvec **bufp, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    (void)fi;
    s3s__fastfile *ff = self();
    spliced *sp = ff->io->pread_fd != NULL ? spliced_mine() : NULL;
    if (off < 0)
        return -EINVAL;
    int64_t id = lookup(ff, path);
    if (id < 0 || ff->nodes[id].dir)
        return id < 0 ? -ENOENT : -EISDIR;
    const node *n = &ff->nodes[id];
    size_t want = (uint64_t)off >= n->size ? 0
        : n->size - (uint64_t)off < size   ? (size_t)(n->size - (uint64_t)off)
                                           : size;
    struct fuse_bufvec *bv = calloc(1, sizeof(*bv) + MAXSEG * sizeof(struct fuse_buf));
    if (bv == NULL)
        return -ENOMEM;
    bv->count = 1; /* an empty mem buffer: the end of the file */
    *bufp = bv;
    if (want == 0)
        return 0;
    void *h = NULL;
    s3s__errbuf eb = {{0}};
    int rc = reader_get(ff, (uint32_t)id, &h, &eb);
    if (rc != 0) {
        S3S_LOGE("fastfile: open %s: %s", path, eb.msg);
        return rc == S3S_ENOMEM ? -ENOMEM : -EIO;
    }
    size_t done = 0;
    size_t nseg = 0;
    while (sp != NULL && done < want && nseg < MAXSEG - 1) {
        int fd = -1;
        uint64_t foff = 0;
        size_t k = 0;
        rc = ff->io->pread_fd(h, want - done, (uint64_t)off + done, &fd, &foff, &k, &eb);
        if (rc != 0 || fd < 0)
            break;
        sp->fd[sp->n++] = fd;
        struct fuse_buf *b = &bv->buf[nseg++];
        b->size = k;
        b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
        b->fd = fd;
        b->pos = (off_t)foff;
        done += k;
        atomic_fetch_add_explicit(&ff->n_spliced, k, memory_order_relaxed);
    }
    if (rc == 0 && done < want) {
        /* not (all) in the cache: the bytes come through a buffer */
        void *mem = malloc(want - done);
        size_t got = 0;
        if (mem == NULL)
            rc = S3S_ENOMEM;
        else
            rc = s3s__objio_read_full(ff->io, h, mem, want - done, (uint64_t)off + done, &got, &eb);
        if (mem != NULL) {
            struct fuse_buf *b = &bv->buf[nseg++];
            b->mem = mem; /* fuse_free_buf frees it */
            b->size = got;
        }
        done += got;
    }
    bv->count = nseg; /* fuse_free_buf frees the mem one, also after an error */
    count_read(ff, size, done);
    reader_put(ff, (uint32_t)id, rc == 0 && (uint64_t)off + done >= n->size);
    if (rc != 0) {
        S3S_LOGE("fastfile: read %s at %lld: %s", path, (long long)off, eb.msg);
        return rc == S3S_ENOMEM ? -ENOMEM : -EIO;
    }
    return 0;
}

static int ff_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    s3s__fastfile *ff = self();
    memset(sv, 0, sizeof(*sv));
    sv->f_bsize = sv->f_frsize = 4096;
    sv->f_blocks = (fsblkcnt_t)((ff->bytes + 4095) / 4096);
    sv->f_files = ff->nnodes;
    sv->f_namemax = 255;
    sv->f_flag = ST_RDONLY;
    return 0;
}

static const struct fuse_operations ops = {
    .init = ff_init,
    .getattr = ff_getattr,
    .opendir = ff_opendir,
    .readdir = ff_readdir,
    .open = ff_open,
    .read_buf = ff_read_buf,
    .statfs = ff_statfs,
};

/* ---- mounting -------------------------------------------------------------------- */

static void wake_noop(int sig)
{
    (void)sig;
}

static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static void wake_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wake_noop; /* no SA_RESTART: the loop's sem_wait must return */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR2, &sa, NULL);
}

static void *loop_main(void *arg)
{
    s3s__fastfile *ff = arg;
    struct fuse_loop_config cfg = {.clone_fd = 0, .max_idle_threads = 16};
    fuse_loop_mt(ff->fuse, &cfg);
    return NULL;
}

/* set_readahead raises the kernel's read-ahead window for the mount from
 * its default of 128 KiB. The window is what bounds the size of the READ
 * requests a sequential reader makes the kernel send (each is at most the
 * window, and at most max_pages = 1 MiB, what libfuse 3.14 asks for), and
 * each request costs the same round trip through user space whatever its
 * size. The kernel takes the file system's max_readahead only downwards (it
 * offers the bdi's window, 128 KiB, at INIT), so the one way up is the bdi's
 * read_ahead_kb in sysfs, which needs root: as another user the mount keeps
 * 128 KiB. It must be written after INIT (the kernel lowers the window to
 * what INIT answered), so the mount point is stat'ed first: that waits for
 * INIT. New opens take the window from the bdi. */
static void set_readahead(s3s__fastfile *ff)
{
    unsigned kb = FF_READAHEAD_KB;
    const char *env = getenv("S3SHARD_FASTFILE_READAHEAD_KB");
    if (env != NULL && *env != '\0')
        kb = (unsigned)strtoul(env, NULL, 10);
    struct stat st;
    if (kb == 0 || geteuid() != 0 || stat(ff->mountpoint, &st) != 0)
        return;
    char p[96];
    snprintf(p, sizeof p, "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev), minor(st.st_dev));
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        S3S_LOGD("fastfile: %s: %s (read-ahead stays 128 KiB)", p, strerror(errno));
        return;
    }
    char v[32];
    int n = snprintf(v, sizeof v, "%u\n", kb);
    if (write(fd, v, (size_t)n) != n)
        S3S_LOGD("fastfile: %s: %s (read-ahead stays 128 KiB)", p, strerror(errno));
    else
        S3S_LOGD("fastfile: read-ahead %u KiB (%s)", kb, p);
    close(fd);
}

/* canon: the canonical absolute form of path without resolving its last
 * component (a stale mount point cannot be stat'ed). */
static int canon(const char *path, char *out, size_t n)
{
    char a[PATH_MAX], b[PATH_MAX], parent[PATH_MAX];
    snprintf(a, sizeof a, "%s", path);
    snprintf(b, sizeof b, "%s", path);
    size_t l = strlen(a);
    while (l > 1 && a[l - 1] == '/') {
        l--;
        a[l] = '\0';
        b[l] = '\0';
    }
    if (realpath(dirname(a), parent) == NULL)
        return -1;
    const char *base = basename(b);
    if (snprintf(out, n, "%s/%s", strcmp(parent, "/") == 0 ? "" : parent, base) >= (int)n)
        return -1;
    return 0;
}

/* unescape decodes mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

int s3s__mount_is_mounted(const char *path)
{
    char want[PATH_MAX];
    if (canon(path, want, sizeof want) != 0)
        return 0;
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return 0;
    char line[PATH_MAX * 2];
    int found = 0;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        for (int i = 0; tok != NULL && i < 4; i++)
            tok = strtok_r(NULL, " ", &save);
        if (tok == NULL)
            continue;
        unescape(tok);
        found = strcmp(tok, want) == 0;
    }
    fclose(f);
    return found;
}

int s3s__fastfile_clean_stale(const char *path, s3s__errbuf *eb)
{
    char p[PATH_MAX];
    if (canon(path, p, sizeof p) != 0)
        return 0; /* its parent does not exist: nothing can be mounted there */
    for (int tries = 0; tries < 8 && s3s__mount_is_mounted(p); tries++) {
        S3S_LOGW("fastfile: %s is still mounted (a killed run?): unmounting it", p);
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0)
                dup2(devnull, 2);
            execlp("fusermount3", "fusermount3", "-u", "-z", p, (char *)NULL);
            _exit(127);
        }
        int st = 0;
        if (pid > 0)
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        if (s3s__mount_is_mounted(p) && geteuid() == 0)
            umount2(p, MNT_DETACH);
    }
    if (s3s__mount_is_mounted(p))
        return s3s__err_set(eb, S3S_EBUSY, "%s: a stale mount cannot be removed", p);
    return 0;
}

static void ff_free(s3s__fastfile *ff)
{
    free_tree(ff);
    pthread_mutex_destroy(&ff->pre_mu);
    free(ff->mountpoint);
    free(ff->bucket);
    free(ff);
}

int s3s__fastfile_mount(s3s__fastfile **out, const char *mountpoint, const s3s__share_list *list,
                        const s3s__objio *io, s3s__errbuf *eb)
{
    s3s__fastfile *ff = calloc(1, sizeof(*ff));
    if (ff == NULL)
        return s3s__err_set(eb, S3S_ENOMEM, "out of memory");
    ff->io = io;
    pthread_mutex_init(&ff->pre_mu, NULL);
    ff->last_open = -1;
    ff->idle_head = ff->idle_tail = NONE;
    ff->max_idle = MAX_IDLE;
    const char *mi = getenv("S3SHARD_FASTFILE_MAX_IDLE");
    if (mi != NULL && *mi >= '0' && *mi <= '9')
        ff->max_idle = (uint32_t)strtoul(mi, NULL, 10);
    ff->uid = geteuid();
    ff->gid = getegid();
    ff->mtime = time(NULL);
    int rc;
    if ((ff->mountpoint = strdup(mountpoint)) == NULL ||
        (ff->bucket = strdup(list->bucket ? list->bucket : "")) == NULL) {
        rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = build_tree(ff, list)) != 0) {
        s3s__err_set(eb, rc, "fastfile: building the tree of %zu objects: %s", list->n,
                     s3s_strerror(rc));
        goto fail;
    }
    if ((rc = s3s__fastfile_clean_stale(mountpoint, eb)) != 0)
        goto fail;
    if (s3s__mkdirs(mountpoint) != 0) {
        rc = s3s__err_set(eb, S3S_EIO, "fastfile: mkdir %s: %s", mountpoint, strerror(errno));
        goto fail;
    }
    char mopts[256];
    snprintf(mopts, sizeof mopts, "ro,fsname=s3shard,subtype=s3shard,default_permissions%s",
             geteuid() == 0 ? ",allow_other" : "");
    struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
    if (fuse_opt_add_arg(&args, "s3shard") != 0 || fuse_opt_add_arg(&args, "-o") != 0 ||
        fuse_opt_add_arg(&args, mopts) != 0) {
        fuse_opt_free_args(&args);
        rc = s3s__err_set(eb, S3S_ENOMEM, "out of memory");
        goto fail;
    }
    ff->fuse = fuse_new(&args, &ops, sizeof ops, ff);
    fuse_opt_free_args(&args);
    if (ff->fuse == NULL) {
        rc = s3s__err_set(eb, S3S_EIO, "fastfile: fuse_new failed (see above)");
        goto fail;
    }
    if (fuse_mount(ff->fuse, mountpoint) != 0) {
        rc = s3s__err_set(eb, S3S_EIO,
                          "fastfile: cannot mount %s (is /dev/fuse there and usable? see above)",
                          mountpoint);
        goto fail;
    }
    ff->mounted = 1;
    pthread_once(&wake_once, wake_install);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigaddset(&block, SIGCHLD);
    sigaddset(&block, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    sigset_t loopmask = old;
    sigaddset(&loopmask, SIGINT);
    sigaddset(&loopmask, SIGTERM);
    sigaddset(&loopmask, SIGHUP);
    sigaddset(&loopmask, SIGCHLD);
    sigaddset(&loopmask, SIGQUIT);
    sigdelset(&loopmask, SIGUSR2);
    pthread_sigmask(SIG_SETMASK, &loopmask, NULL);
    int e = pthread_create(&ff->loop, NULL, loop_main, ff);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        rc = s3s__err_set(eb, S3S_EIO, "fastfile: cannot start the FUSE loop: %s", strerror(e));
        goto fail;
    }
    ff->loop_started = 1;
    set_readahead(ff);
    S3S_LOGI("fastfile: mounted %llu files (%llu bytes) at %s", (unsigned long long)ff->files,
             (unsigned long long)ff->bytes, mountpoint);
    *out = ff;
    return 0;
fail:
    if (ff->fuse != NULL) {
        if (ff->mounted)
            fuse_unmount(ff->fuse);
        fuse_destroy(ff->fuse);
    }
    ff_free(ff);
    return rc;
}

void s3s__fastfile_unmount(s3s__fastfile *ff)
{
    if (ff == NULL)
        return;
    if (ff->loop_started) {
        fuse_exit(ff->fuse);
        /* The loop waits on a semaphore that only a signal interrupts; keep
         * knocking until it has noticed fuse_exit (the first signal may land
         * before it starts waiting). */
        for (;;) {
            pthread_kill(ff->loop, SIGUSR2);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            if (pthread_timedjoin_np(ff->loop, NULL, &ts) == 0)
                break;
        }
    }
    if (ff->mounted)
        fuse_unmount(ff->fuse);
    fuse_destroy(ff->fuse);
    S3S_LOGI(
        "fastfile: unmounted %s (%llu getattrs, %llu opens, %llu reads of %llu bytes, the largest "
        "asked %llu, %llu bytes spliced from the cache)",
        ff->mountpoint, (unsigned long long)ff->n_getattr, (unsigned long long)ff->n_open,
        (unsigned long long)ff->n_read, (unsigned long long)ff->n_read_bytes,
        (unsigned long long)ff->n_read_max, (unsigned long long)ff->n_spliced);
    ff_free(ff);
}
