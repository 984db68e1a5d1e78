/*
 * Unified diffs as `git diff` and `diff -ruaN` write them, read with -p1
 * (the first path component is stripped), and applied cleanly: every context
 * and removed line must match exactly, or the file is rejected.
 */
#ifndef CX_PATCH_H
#define CX_PATCH_H

#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/err.h"

enum cx_patch_op {
	CX_PATCH_EDIT = 1,   /* old_path == new_path, content changes */
	CX_PATCH_CREATE = 2, /* old_path NULL (/dev/null) */
	CX_PATCH_DELETE = 3, /* new_path NULL (/dev/null) */
	CX_PATCH_RENAME = 4  /* old_path != new_path, possibly with hunks */
};

struct cx_patch_line {
	char kind;           /* ' ', '-', '+' */
	const uint8_t *text; /* without the leading kind char, without '\n' */
	size_t len;
	int no_newline; /* followed by "\ No newline at end of file" */
};

struct cx_patch_hunk {
	size_t old_start, old_len, new_start, new_len;
	struct cx_patch_line *lines;
	size_t nlines;
};

struct cx_patch_file {
	enum cx_patch_op op;
	char *old_path; /* -p1 stripped, validated relative path, or NULL */
	char *new_path; /* likewise */
	struct cx_patch_hunk *hunks;
	size_t nhunks;
};

struct cx_patch {
	struct cx_patch_file *files;
	size_t nfiles;
	void *priv; /* implementation storage */
};

/*
 * Parses a whole patch.  Paths must be relative, without empty, "." or ".."
 * segments; a path touched twice, binary patches, mode-only changes other than
 * the ones git prints for new/deleted files, and malformed hunks are errors
 * that name the patch's line number.  The patch bytes must outlive *out.
 */
int cx_patch_parse(
    const uint8_t *data, size_t len, const char *name, struct cx_patch **out, struct cx_err *e);
void cx_patch_free(struct cx_patch *p);
/* Applies f to old (NULL, 0 for a creation) and appends the new content to out. */
int cx_patch_apply(const struct cx_patch_file *f, const uint8_t *old, size_t oldlen,
    struct cx_buf *out, struct cx_err *e);
/*
 * The same, and when the result fits the room reserved for it at the start
 * (so out->d never moves), progress(arg, d, n) is called as the result is
 * written: its first n bytes, at d, are final, and out->d + its length on
 * entry == d for every call.  The first call, n = 0, comes once the room is
 * reserved.  If it then fails, a last call progress(arg, NULL, 0) comes
 * before any announced byte is overwritten: the callee stops reading them
 * before it returns.  Once cx_patch_apply_ex returns, d is out's
 * again (its bytes are overwritten if it fails).  Long runs of unchanged
 * lines are written CX_PATCH_PROGRESS_STEP bytes at a time.
 */
#define CX_PATCH_PROGRESS_STEP ((size_t)256 * 1024)
typedef void (*cx_patch_progress_fn)(void *arg, const uint8_t *d, size_t n);
int cx_patch_apply_ex(const struct cx_patch_file *f, const uint8_t *old, size_t oldlen,
    struct cx_buf *out, cx_patch_progress_fn progress, void *arg, struct cx_err *e);

#endif
