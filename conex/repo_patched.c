/*
 * A base view with a unified diff laid over it: the virtual new tree that
 * incremental verification (conex-format.md §8) checks.
 *
 * Every path the patch touches is either a target (edited, created, or the
 * new name of a rename), whose content is the base content of its source
 * with the hunks applied when it is read, or removed (deleted, or the old
 * name of a rename), which reads as absent.  Everything else is the base.
 * Whether each touched path exists in the base as the patch expects is
 * checked when the view is opened, so a patch made against another tree
 * fails early and by name; the hunks themselves are applied only on reads.
 */
#include "conex/repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conex/crypto.h"

enum prole { P_TARGET = 1, P_REMOVED = 2 };

struct pentry {
	const char *path;
	size_t len;
	enum prole role;
	const struct cx_patch_file *f;
};

struct patched_repo {
	struct cx_repo base_repo;
	struct cx_repo *base;
	struct pentry *v; /* sorted by path */
	size_t n;
};

static int
pentry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pentry *)a)->path, ((const struct pentry *)b)->path);
}

static const struct pentry *
pfind(const struct patched_repo *p, const char *path)
{
	struct pentry key = {.path = path};

	if (p->n == 0)
		return NULL;
	return bsearch(&key, p->v, p->n, sizeof(*p->v), pentry_cmp);
}

/* A target lies below path: path is a directory of the new tree. */
static int
is_dir_of_target(const struct patched_repo *p, const char *path)
{
	size_t n = strlen(path), lo = 0, hi = p->n, mid, i;
	int c;

	/* the entries starting with path + "/" are contiguous: find the first */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strncmp(p->v[mid].path, path, n);
		if (c == 0)
			c = (unsigned char)p->v[mid].path[n] < '/' ? -1 : 0;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < p->n && strncmp(p->v[i].path, path, n) == 0 && p->v[i].path[n] == '/'; i++)
		if (p->v[i].role == P_TARGET)
			return 1;
	return 0;
}

/* dir is a file of the new tree (a target), so it cannot be listed or walked. */
static int
target_not_dir(const struct patched_repo *p, const char *dir, struct cx_err *e)
{
	const struct pentry *pe;

	if (*dir != '\0' && (pe = pfind(p, dir)) != NULL && pe->role == P_TARGET)
		return cx_err_set(e, CX_EREJECT, "%s: not a directory", dir);
	return 0;
}

/* Under dir ("" is the root)? */
static int
below(const char *path, size_t plen, const char *dir, size_t dlen)
{
	return dlen == 0 || (plen > dlen && path[dlen] == '/' && memcmp(path, dir, dlen) == 0);
}

static const char *
removed_why(const struct pentry *pe)
{
	return pe->f->op == CX_PATCH_RENAME ? "renamed away by the patch" : "deleted by the patch";
}

/*
 * The new content of a target into out (appended after a reset).  The base
 * source is read with cap plus what the hunks remove: the old file can be
 * longer than the new one by exactly that much.
 */
static int
apply_target(struct patched_repo *p, const struct pentry *pe, size_t cap, struct cx_buf *out,
    struct cx_err *e)
{
	const struct cx_patch_file *f = pe->f;
	const char *src = f->op == CX_PATCH_CREATE ? NULL : f->old_path;
	size_t bound = cap, h, l, saved;
	struct cx_buf old;
	int rc;

	cx_buf_reset(out);
	cx_buf_init(&old, SIZE_MAX);
	if (src != NULL) {
		for (h = 0; h < f->nhunks; h++)
			for (l = 0; l < f->hunks[h].nlines; l++)
				if (f->hunks[h].lines[l].kind == '-') {
					size_t add = f->hunks[h].lines[l].len + 1;

					bound = bound > SIZE_MAX - add ? SIZE_MAX : bound + add;
				}
		if ((rc = cx_repo_read(p->base, src, bound, &old, e)) != 0) {
			cx_buf_free(&old);
			return rc;
		}
	}
	/* the cap holds while the hunks are applied, not only after */
	saved = out->max;
	if (cap < out->max)
		out->max = cap;
	rc = cx_patch_apply(
	    f, src != NULL ? cx_buf_ptr(&old) : NULL, src != NULL ? old.len : 0, out, e);
	out->max = saved;
	cx_buf_free(&old);
	if (rc == CX_ETOOBIG)
		return cx_err_set(
		    e, rc, "%s: patched content larger than the limit of %zu bytes", pe->path, cap);
	return rc;
}

static int
patched_read(struct cx_repo *r, const char *path, size_t cap, struct cx_buf *out, struct cx_err *e)
{
	struct patched_repo *p = (struct patched_repo *)r;
	const struct pentry *pe = pfind(p, path);

	if (pe != NULL && pe->role == P_REMOVED)
		return cx_err_set(e, CX_ENOENT, "%s: %s", path, removed_why(pe));
	if (pe != NULL)
		return apply_target(p, pe, cap, out, e);
	if (is_dir_of_target(p, path))
		return cx_err_set(e, CX_EREJECT, "%s: not a regular file", path);
	return cx_repo_read(p->base, path, cap, out, e);
}

static int
patched_exists(struct cx_repo *r, const char *path, struct cx_err *e)
{
	struct patched_repo *p = (struct patched_repo *)r;
	const struct pentry *pe = pfind(p, path);

	if (pe != NULL)
		return pe->role == P_TARGET;
	if (is_dir_of_target(p, path))
		return cx_err_set(e, CX_EREJECT, "%s: not a regular file", path);
	return cx_repo_exists(p->base, path, e);
}

static int
patched_list(struct cx_repo *r, const char *dir, struct cx_arena *arena, const char ***names,
    size_t *n, struct cx_err *e)
{
	struct patched_repo *p = (struct patched_repo *)r;
	const char **bn, **v = NULL;
	size_t bnn, i, cnt = 0, cap = 0, dlen = strlen(dir), skip = dlen ? dlen + 1 : 0;
	char full[CX_REPO_PATH_MAX + 256];
	int rc;

	if ((rc = target_not_dir(p, dir, e)) != 0 ||
	    (rc = cx_repo_list(p->base, dir, arena, &bn, &bnn, e)) != 0)
		return rc;
	for (i = 0; i < bnn; i++) {
		/* touched names are dropped here; targets come back below */
		if ((size_t)snprintf(full, sizeof(full), "%s%s%s", dir, dlen ? "/" : "", bn[i]) >=
		    sizeof(full))
			return cx_err_set(e, CX_EREJECT, "%s/%s: path too long", dir, bn[i]);
		if (pfind(p, full) != NULL)
			continue;
		if ((v = cx_arena_grow(arena, v, sizeof(*v), &cap, cnt + 1)) == NULL)
			return cx_err_set(e, CX_ENOMEM, "%s: listing: out of memory", dir);
		v[cnt++] = bn[i];
	}
	for (i = 0; i < p->n; i++) {
		if (p->v[i].role != P_TARGET || !below(p->v[i].path, p->v[i].len, dir, dlen) ||
		    strchr(p->v[i].path + skip, '/') != NULL)
			continue;
		if ((v = cx_arena_grow(arena, v, sizeof(*v), &cap, cnt + 1)) == NULL ||
		    (v[cnt] = cx_arena_strdup(arena, p->v[i].path + skip)) == NULL)
			return cx_err_set(e, CX_ENOMEM, "%s: listing: out of memory", dir);
		cnt++;
	}
	cx_names_sort(v, cnt);
	*names = v;
	*n = cnt;
	return 0;
}

static int
patched_walk(struct cx_repo *r, const char *dir, struct cx_file_list *out, struct cx_err *e)
{
	struct patched_repo *p = (struct patched_repo *)r;
	struct cx_file_list bl;
	struct cx_file_entry *ent;
	struct cx_buf content;
	size_t i, k = 0, dlen = strlen(dir), total;
	int rc;

	if ((rc = target_not_dir(p, dir, e)) != 0 || (rc = cx_repo_walk(p->base, dir, &bl, e)) != 0)
		return rc;
	total = bl.n;
	for (i = 0; i < p->n; i++)
		if (p->v[i].role == P_TARGET && below(p->v[i].path, p->v[i].len, dir, dlen))
			total++;
	if (total > SIZE_MAX / sizeof(*out->v) ||
	    (out->v = cx_arena_alloc(&out->arena, (total ? total : 1) * sizeof(*out->v))) == NULL) {
		cx_file_list_free(&bl);
		return cx_err_set(e, CX_ENOMEM, "%s: walk: out of memory", dir);
	}
	for (i = 0; i < bl.n; i++) {
		if (pfind(p, bl.v[i].path) != NULL)
			continue; /* removed, or a target rehashed below */
		out->v[k] = bl.v[i];
		if ((out->v[k].path = cx_arena_strdup(&out->arena, bl.v[i].path)) == NULL) {
			cx_file_list_free(&bl);
			return cx_err_set(e, CX_ENOMEM, "%s: walk: out of memory", dir);
		}
		k++;
	}
	cx_file_list_free(&bl);
	cx_buf_init(&content, CX_REPO_FILE_MAX);
	for (i = 0; i < p->n; i++) {
		if (p->v[i].role != P_TARGET || !below(p->v[i].path, p->v[i].len, dir, dlen))
			continue;
		if ((rc = apply_target(p, &p->v[i], CX_REPO_FILE_MAX, &content, e)) != 0) {
			cx_buf_free(&content);
			return rc;
		}
		ent = &out->v[k++];
		ent->size = content.len;
		cx_sha256(cx_buf_ptr(&content), content.len, ent->sha256);
		if ((ent->path = cx_arena_strdup(&out->arena, p->v[i].path)) == NULL) {
			cx_buf_free(&content);
			return cx_err_set(e, CX_ENOMEM, "%s: walk: out of memory", dir);
		}
	}
	cx_buf_free(&content);
	out->n = k;
	cx_file_list_sort(out);
	return 0;
}

static void
patched_close(struct cx_repo *r)
{
	struct patched_repo *p = (struct patched_repo *)r;

	free(p->v);
	free(p);
}

static const struct cx_repo_ops patched_ops = {
    .read = patched_read,
    .exists = patched_exists,
    .list = patched_list,
    .walk = patched_walk,
    .close = patched_close,
};

static int
add(struct patched_repo *p, const char *path, enum prole role, const struct cx_patch_file *f,
    struct cx_err *e)
{
	if (path == NULL || cx_path_check(path, strlen(path)) != 0)
		return cx_err_set(
		    e, CX_EINVAL, "patch: invalid path \"%.256s\"", path ? path : "(null)");
	p->v[p->n].path = path;
	p->v[p->n].len = strlen(path);
	p->v[p->n].role = role;
	p->v[p->n].f = f;
	p->n++;
	return 0;
}

/* What the patch expects of the base: must_exist 1 (a regular file) or 0 (absent). */
static int
expect(struct patched_repo *p, const char *path, int must_exist, const char *what, struct cx_err *e)
{
	int rc = cx_repo_exists(p->base, path, e);

	if (rc < 0)
		return cx_err_prefix(e, "patch %s %s", what, path);
	if (rc != must_exist)
		return cx_err_set(e, CX_EREJECT,
		    must_exist ? "patch %s %s, which does not exist"
		               : "patch %s %s, which exists already",
		    what, path);
	return 0;
}

int
cx_repo_open_patched(
    struct cx_repo **out, struct cx_repo *base, const struct cx_patch *patch, struct cx_err *e)
{
	struct patched_repo *p;
	const struct cx_patch_file *f;
	size_t i;
	int rc = 0;

	*out = NULL;
	if (base == NULL || patch == NULL)
		return cx_err_set(e, CX_EINVAL, "cx_repo_open_patched: NULL argument");
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (patch->nfiles && (p->v = calloc(patch->nfiles, 2 * sizeof(*p->v))) == NULL)) {
		free(p);
		return cx_err_set(e, CX_ENOMEM, "patched view: out of memory");
	}
	p->base_repo.ops = &patched_ops;
	p->base = base;
	for (i = 0; rc == 0 && i < patch->nfiles; i++) {
		f = &patch->files[i];
		switch (f->op) {
		case CX_PATCH_EDIT:
			if ((rc = add(p, f->new_path, P_TARGET, f, e)) == 0 &&
			    (f->old_path == NULL || strcmp(f->old_path, f->new_path) != 0))
				rc = cx_err_set(
				    e, CX_EINVAL, "patch: edit of %s names two paths", f->new_path);
			if (rc == 0)
				rc = expect(p, f->new_path, 1, "edits", e);
			break;
		case CX_PATCH_CREATE:
			if ((rc = add(p, f->new_path, P_TARGET, f, e)) == 0)
				rc = expect(p, f->new_path, 0, "creates", e);
			break;
		case CX_PATCH_DELETE:
			if ((rc = add(p, f->old_path, P_REMOVED, f, e)) == 0)
				rc = expect(p, f->old_path, 1, "deletes", e);
			break;
		case CX_PATCH_RENAME:
			if ((rc = add(p, f->old_path, P_REMOVED, f, e)) == 0 &&
			    (rc = add(p, f->new_path, P_TARGET, f, e)) == 0 &&
			    (rc = expect(p, f->old_path, 1, "renames", e)) == 0)
				rc = expect(p, f->new_path, 0, "renames to", e);
			break;
		default:
			rc = cx_err_set(e, CX_EINVAL, "patch: file section %zu: bad operation", i);
		}
	}
	if (rc == 0) {
		if (p->n > 1)
			qsort(p->v, p->n, sizeof(*p->v), pentry_cmp);
		for (i = 1; i < p->n; i++)
			if (strcmp(p->v[i - 1].path, p->v[i].path) == 0) {
				rc = cx_err_set(
				    e, CX_EINVAL, "patch: %s is touched twice", p->v[i].path);
				break;
			}
	}
	if (rc != 0) {
		patched_close(&p->base_repo);
		return rc;
	}
	*out = &p->base_repo;
	return 0;
}
