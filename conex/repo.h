/*
 * A read-only view of a repository: a directory, a .tar.gz (as opam >= 2.6
 * keeps HTTP repositories), or another view with a patch applied.  Paths are
 * relative to the repository root, '/'-separated, validated (no empty, "." or
 * ".." segments, no leading '/').  Symlinks and non-regular files are never
 * followed: reading one, or meeting one in a walk or a listing, is CX_EREJECT
 * with a message naming the path.
 */
#ifndef CX_REPO_H
#define CX_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "conex/arena.h"
#include "conex/patch.h"
#include "proto/buf.h"
#include "proto/err.h"

struct cx_repo;

struct cx_file_entry {
	const char *path; /* relative to the repository root */
	uint64_t size;
	uint8_t sha256[32];
};

struct cx_file_list {
	struct cx_file_entry *v; /* sorted by path, bytewise */
	size_t n;
	struct cx_arena arena; /* owns v and the paths */
};

/* A directory, or a regular file holding a gzip-compressed tar archive. */
int cx_repo_open(struct cx_repo **out, const char *path, struct cx_err *e);
/* base must outlive the result; p and its bytes too. Nothing is applied until read. */
int cx_repo_open_patched(
    struct cx_repo **out, struct cx_repo *base, const struct cx_patch *p, struct cx_err *e);
void cx_repo_close(struct cx_repo *r);

/*
 * Reads a whole regular file.  CX_ENOENT when absent (message names the path),
 * CX_ETOOBIG when larger than cap bytes, CX_EREJECT for a symlink or other
 * non-regular file.  out is reset first.
 */
int cx_repo_read(
    struct cx_repo *r, const char *path, size_t cap, struct cx_buf *out, struct cx_err *e);
/* 1 if path is a regular file, 0 if absent; CX_EREJECT if a symlink/non-regular. */
int cx_repo_exists(struct cx_repo *r, const char *path, struct cx_err *e);

/*
 * The regular files directly in dir (names only, sorted).  A subdirectory is
 * skipped; a symlink or special file is CX_EREJECT.  An absent dir gives 0 names.
 * Names are allocated in arena.  dir "" is the repository root.
 */
int cx_repo_list(struct cx_repo *r, const char *dir, struct cx_arena *arena, const char ***names,
    size_t *n, struct cx_err *e);

/*
 * Every regular file below dir, recursively, with its size and SHA-256, sorted
 * by path.  Uses every core (walk and hash overlap).  A symlink or special file
 * anywhere below dir is CX_EREJECT.  An absent dir gives 0 files; dir "" is the
 * repository root.  out->arena is initialised by the callee (also on failure);
 * release with cx_file_list_free.
 */
int cx_repo_walk(struct cx_repo *r, const char *dir, struct cx_file_list *out, struct cx_err *e);
void cx_file_list_free(struct cx_file_list *l);

/* Validates a relative path per the rules above. 0 or CX_EINVAL. */
int cx_path_check(const char *p, size_t n);
/* p without its leading "dir/", or NULL when p does not start so. */
const char *cx_path_strip(const char *dir, const char *p);
/* Is the path p strictly below the directory parent ("" is the top)? */
int cx_path_below(const char *parent, const char *p);

/*
 * A tar archive held in memory, gzip-compressed (magic 1f 8b) or plain ustar;
 * the bytes are copied or decompressed, so data need not outlive the view.
 * name is used in messages.  The fuzz target and cx_repo_open use this.
 */
int cx_repo_open_tar_mem(
    struct cx_repo **out, const uint8_t *data, size_t len, const char *name, struct cx_err *e);

/* Caps of the tarball backend (see repo_tgz.c). */
#define CX_REPO_TAR_MAX     (2ull * 1024 * 1024 * 1024) /* uncompressed bytes */
#define CX_REPO_TAR_MEMBERS 1000000u
/* Longest path and deepest tree any backend accepts. */
#define CX_REPO_PATH_MAX  4096
#define CX_REPO_DEPTH_MAX 128
/* Largest single file a walk hashes. */
#define CX_REPO_FILE_MAX (2ull * 1024 * 1024 * 1024)

/*
 * Backend interface: for conex/repo*.c only.  The dispatcher in repo.c checks
 * paths with cx_path_check (dir "" means the root for list and walk), resets
 * the outputs and cleans up after a failure, so backends see valid paths only.
 */
struct cx_repo_ops {
	int (*read)(
	    struct cx_repo *r, const char *path, size_t cap, struct cx_buf *out, struct cx_err *e);
	int (*exists)(struct cx_repo *r, const char *path, struct cx_err *e);
	int (*list)(struct cx_repo *r, const char *dir, struct cx_arena *arena, const char ***names,
	    size_t *n, struct cx_err *e);
	int (*walk)(struct cx_repo *r, const char *dir, struct cx_file_list *out, struct cx_err *e);
	void (*close)(struct cx_repo *r);
};

struct cx_repo {
	const struct cx_repo_ops *ops;
};

/* Takes ownership of fd, an open directory. */
int cx_repo_open_dir_fd(struct cx_repo **out, int fd, const char *name, struct cx_err *e);
/* Takes ownership of fd, an open regular file starting with the gzip magic. */
int cx_repo_open_tgz_fd(struct cx_repo **out, int fd, const char *name, struct cx_err *e);

/* Worker threads to use: the CPUs this process may run on, at least 1, at most 16. */
unsigned cx_repo_nthreads(void);
/*
 * Runs fn(ctx, i) for i in [0, n): i = 0 on the calling thread, the others on
 * new threads, and joins them.  If a thread cannot be started its share runs
 * nowhere, so fn must take work from a shared queue, not by index.
 */
void cx_repo_parallel(unsigned n, void (*fn)(void *ctx, unsigned i), void *ctx);
/* Sorts l->v by path, bytewise. */
void cx_file_list_sort(struct cx_file_list *l);
int cx_file_entry_cmp(const void *a, const void *b);
/* Sorted names of a listing: strcmp order. */
void cx_names_sort(const char **names, size_t n);

#endif
