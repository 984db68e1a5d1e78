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
int cx_repo_open_patched(struct cx_repo **out, struct cx_repo *base, const struct cx_patch *p,
			 struct cx_err *e);
void cx_repo_close(struct cx_repo *r);

/*
 * Reads a whole regular file.  CX_ENOENT when absent (message names the path),
 * CX_ETOOBIG when larger than cap bytes, CX_EREJECT for a symlink or other
 * non-regular file.  out is reset first.
 */
int cx_repo_read(struct cx_repo *r, const char *path, size_t cap, struct cx_buf *out,
		 struct cx_err *e);
/* 1 if path is a regular file, 0 if absent; CX_EREJECT if a symlink/non-regular. */
int cx_repo_exists(struct cx_repo *r, const char *path, struct cx_err *e);

/*
 * The regular files directly in dir (names only, sorted).  A subdirectory is
 * skipped; a symlink or special file is CX_EREJECT.  An absent dir gives 0 names.
 * Names are allocated in arena.
 */
int cx_repo_list(struct cx_repo *r, const char *dir, struct cx_arena *arena, const char ***names,
		 size_t *n, struct cx_err *e);

/*
 * Every regular file below dir, recursively, with its size and SHA-256, sorted
 * by path.  Uses every core (walk and hash overlap).  A symlink or special file
 * anywhere below dir is CX_EREJECT.  out->arena is initialised by the callee;
 * release with cx_file_list_free.
 */
int cx_repo_walk(struct cx_repo *r, const char *dir, struct cx_file_list *out, struct cx_err *e);
void cx_file_list_free(struct cx_file_list *l);

/* Validates a relative path per the rules above. 0 or CX_EINVAL. */
int cx_path_check(const char *p, size_t n);

#endif
