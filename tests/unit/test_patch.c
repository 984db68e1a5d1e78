/*
 * conex/patch: patches made by the real tools (git diff, diff -ruaN, git
 * format-patch) are parsed, applied file by file to a copy of the old tree,
 * and the result must equal the new tree byte for byte -- and what GNU
 * patch -p1 makes of the same patch.  Then the rejections.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conex/patch.h"
#include "tests/unit/testutil.h"

/* isolated from the user's git configuration */
#define GIT                                                                                       \
	"GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 git -c user.name=t -c user.email=t@t " \
	"-c core.autocrlf=false -c core.quotepath=true -c init.defaultBranch=main "

struct tf {
	const char *path;
	const char *data;
	size_t len;
};
#define TF(p, s)                        \
	{                               \
		(p), (s), sizeof(s) - 1 \
	}
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Scenario flags. */
#define NO_DIFF    1 /* diff -ruaN cannot express it (empty files) */
#define NO_GNU     2 /* GNU patch cannot (or does differently) */
#define NO_RENAMES 4 /* git diff --no-renames, so ops are predictable */

struct loaded {
	uint8_t *data;
	size_t len;
	struct cx_patch *p;
	struct cx_err e;
	int rc;
};

static char *
join(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		ck_abort_msg("asprintf");
	return p;
}

static void
write_tree(const char *root, const char *sub, const struct tf *f, size_t n)
{
	char *d = join(root, sub);
	size_t i;

	mkdir(d, 0755);
	for (i = 0; i < n; i++)
		cx_test_write(d, f[i].path, f[i].data, f[i].len);
	free(d);
}

/* "line 1\n" ... "line n\n" */
static char *
numbered(size_t n, const char *tag)
{
	size_t i, len = 0, cap = n * 32 + 1;
	char *s = malloc(cap);

	ck_assert_ptr_nonnull(s);
	s[0] = 0;
	for (i = 1; i <= n; i++)
		len += (size_t)snprintf(s + len, cap - len, "%s line %zu\n", tag, i);
	return s;
}

static void
load(struct loaded *L, const char *path)
{
	memset(L, 0, sizeof(*L));
	L->data = cx_test_read(path, &L->len);
	ck_assert_msg(L->data != NULL, "cannot read %s", path);
	L->rc = cx_patch_parse(L->data, L->len, path, &L->p, &L->e);
}

static void
load_mem(struct loaded *L, const char *text)
{
	memset(L, 0, sizeof(*L));
	L->len = strlen(text);
	L->data = (uint8_t *)strdup(text);
	ck_assert_ptr_nonnull(L->data);
	L->rc = cx_patch_parse(L->data, L->len, "mem.patch", &L->p, &L->e);
}

static void
unload(struct loaded *L)
{
	cx_patch_free(L->p);
	free(L->data);
	memset(L, 0, sizeof(*L));
}

/*
 * Runs git in tmp/repo: commit old/, replace it with new/, stage, diff.  new/
 * is copied with fresh mtimes (modes kept): with cp -a's, a same-size file that
 * gets the removed one's inode back can look unchanged to git's stat check.
 */
static void
git_patch(const char *tmp, const char *stage, const char *diffargs, const char *out)
{
	int r = cx_test_sh(
	    "cd '%s' && rm -rf repo && mkdir repo && cp -a old/. repo/ && cd repo && " GIT
	    "init -q && " GIT "add -A && " GIT "commit -q --allow-empty -m old && "
	    "find . -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} + && "
	    "cp -R --preserve=mode ../new/. . && " GIT "%s && " GIT
	    "diff --no-color --no-ext-diff %s > ../%s",
	    tmp, stage, diffargs, out);
	ck_assert_int_eq(r, 0);
}

static void
diff_patch(const char *tmp, const char *env, const char *out)
{
	int r = cx_test_sh("cd '%s' && %s diff -ruaN old new > %s; test $? -le 1", tmp, env, out);
	ck_assert_int_eq(r, 0);
}

/* Applies every file of p to the tree in dir, as the verifier's virtual view would. */
static void
apply_tree(const struct cx_patch *p, const char *dir)
{
	struct cx_buf out;
	struct cx_err e;
	size_t i, oldlen = 0;
	uint8_t *old;
	char *op;
	int r;

	for (i = 0; i < p->nfiles; i++) {
		const struct cx_patch_file *f = &p->files[i];

		op = f->old_path != NULL ? join(dir, f->old_path) : NULL;
		old = op != NULL ? cx_test_read(op, &oldlen) : NULL;
		if (f->op == CX_PATCH_CREATE) {
			char *np = join(dir, f->new_path);
			ck_assert_msg(access(np, F_OK) != 0, "%s exists", f->new_path);
			free(np);
		} else
			ck_assert_msg(old != NULL, "%s missing", f->old_path);
		cx_buf_init(&out, 0);
		memset(&e, 0, sizeof(e));
		r = cx_patch_apply(f, old, old != NULL ? oldlen : 0, &out, &e);
		ck_assert_msg(
		    r == 0, "apply %s: %s", f->old_path ? f->old_path : f->new_path, e.msg);
		if (f->op == CX_PATCH_DELETE || f->op == CX_PATCH_RENAME)
			ck_assert_int_eq(unlink(op), 0);
		if (f->op != CX_PATCH_DELETE)
			cx_test_write(dir, f->new_path, out.d, out.len);
		cx_buf_free(&out);
		free(old);
		free(op);
	}
}

/* Applies tmp/<patch> with us and with GNU patch; both must give tmp/new. */
static void
check_patch(const char *tmp, const char *patch, int flags, struct loaded *L)
{
	char *pp = join(tmp, patch);
	int r;

	load(L, pp);
	ck_assert_msg(L->rc == 0, "parse %s: %s", patch, L->e.msg);
	ck_assert_int_eq(cx_test_sh("cd '%s' && rm -rf applied && cp -a old applied", tmp), 0);
	{
		char *ad = join(tmp, "applied");
		apply_tree(L->p, ad);
		free(ad);
	}
	/* git does not keep empty directories */
	r = cx_test_sh("cd '%s' && find applied -mindepth 1 -type d -empty -delete && "
	               "diff -r applied new >&2",
	    tmp);
	ck_assert_msg(r == 0, "%s: applied tree differs from new", patch);
	if (!(flags & NO_GNU)) {
		r = cx_test_sh(
		    "cd '%s' && rm -rf gnu && cp -a old gnu && cd gnu && "
		    "patch -p1 -s -f --no-backup-if-mismatch < ../%s >&2 && cd .. && "
		    "find gnu -mindepth 1 -type d -empty -delete && diff -r gnu applied >&2",
		    tmp, patch);
		ck_assert_msg(r == 0, "%s: GNU patch result differs", patch);
	}
	free(pp);
}

/* Makes old/ and new/, then checks git diff --cached -M and diff -ruaN patches. */
static char *
scenario(const struct tf *o, size_t no, const struct tf *n, size_t nn, int flags)
{
	char *tmp = cx_test_tmpdir();
	struct loaded L;

	write_tree(tmp, "old", o, no);
	write_tree(tmp, "new", n, nn);
	git_patch(tmp, "add -A", (flags & NO_RENAMES) ? "--cached --no-renames" : "--cached -M",
	    "git.patch");
	check_patch(tmp, "git.patch", flags, &L);
	unload(&L);
	if (!(flags & NO_DIFF)) {
		diff_patch(tmp, "", "diff.patch");
		check_patch(tmp, "diff.patch", flags, &L);
		unload(&L);
	}
	return tmp;
}

static const struct cx_patch_file *
find_file(const struct cx_patch *p, const char *path)
{
	size_t i;

	for (i = 0; i < p->nfiles; i++)
		if ((p->files[i].new_path && strcmp(p->files[i].new_path, path) == 0) ||
		    (p->files[i].old_path && strcmp(p->files[i].old_path, path) == 0))
			return &p->files[i];
	ck_abort_msg("no file %s in patch", path);
	return NULL;
}

/* ---- good patches ---- */

START_TEST(test_edit_positions)
{
	char *o30 = numbered(30, "x"), *n30 = numbered(30, "x"), *o10 = numbered(10, "y"),
	     *n10 = numbered(10, "y"), *tmp, *pp;
	struct loaded L;

	/* change the first, the middle and the last line: three hunks */
	n30[0] = 'X';
	*strstr(n30, "x line 15\n") = 'Z';
	*strstr(n30, "x line 30\n") = 'W';
	*strstr(n10, "y line 5\n") = 'M';
	{
		struct tf o[] = {
		    {"f", o30, strlen(o30)}, {"g", o10, strlen(o10)}, TF("same", "unchanged\n")};
		struct tf n[] = {
		    {"f", n30, strlen(n30)}, {"g", n10, strlen(n10)}, TF("same", "unchanged\n")};
		tmp = scenario(o, NELEM(o), n, NELEM(n), 0);
	}
	pp = join(tmp, "git.patch");
	load(&L, pp);
	ck_assert_int_eq(L.rc, 0);
	ck_assert_uint_eq(L.p->nfiles, 2);
	ck_assert_int_eq(find_file(L.p, "f")->op, CX_PATCH_EDIT);
	ck_assert_uint_eq(find_file(L.p, "f")->nhunks, 3);
	ck_assert_uint_eq(find_file(L.p, "g")->nhunks, 1);
	unload(&L);
	free(pp);
	cx_test_rm_rf(tmp);
	free(tmp);
	free(o30);
	free(n30);
	free(o10);
	free(n10);
}
END_TEST

/*
 * Long files: the lines before a hunk are skipped a word at a time and the
 * rest is copied in one run (copy_old).  Hunks near and far from each other,
 * short lines, and a last line without its newline.
 */
START_TEST(test_long_files)
{
	char *o = numbered(3000, "x"), *n = numbered(3000, "x"), *o2, *n2, *tmp;
	size_t k, len;
	static const size_t at[] = {1, 9, 10, 700, 708, 1500, 2999, 3000};

	for (k = 0; k < sizeof(at) / sizeof(at[0]); k++) {
		char key[32];
		snprintf(key, sizeof(key), "x line %zu\n", at[k]);
		*strstr(n, key) = 'Q';
	}
	/* the same without the last newline, and with one-byte lines in between */
	len = strlen(o);
	o2 = strdup(o);
	n2 = strdup(n);
	ck_assert(o2 != NULL && n2 != NULL);
	o2[len - 1] = 0;
	n2[len - 1] = 0;
	for (k = 100; k < 200; k++) {
		o2[k * 10] = '\n';
		n2[k * 10] = '\n';
	}
	{
		struct tf of[] = {{"f", o, strlen(o)}, {"g", o2, strlen(o2)}};
		struct tf nf[] = {{"f", n, strlen(n)}, {"g", n2, strlen(n2)}};
		tmp = scenario(of, NELEM(of), nf, NELEM(nf), 0);
	}
	cx_test_rm_rf(tmp);
	free(tmp);
	free(o);
	free(n);
	free(o2);
	free(n2);
}
END_TEST

START_TEST(test_create_delete)
{
	struct tf o[] = {TF("keep", "k\n"), TF("gone", "one\ntwo\n"),
	    TF("packages/old/old.1/opam", "opam-version: \"1.2\"\nold\n")};
	struct tf n[] = {TF("keep", "k\n"),
	    TF("packages/foo/foo.1.0/opam", "opam-version: \"2.0\"\nname: \"foo\"\n"),
	    TF("top", "new top\n")};
	char *tmp = scenario(o, NELEM(o), n, NELEM(n), 0), *pp;
	struct loaded L;
	const char *which[] = {"git.patch", "diff.patch"};
	size_t i;

	for (i = 0; i < 2; i++) {
		pp = join(tmp, which[i]);
		load(&L, pp);
		ck_assert_int_eq(L.rc, 0);
		ck_assert_uint_eq(L.p->nfiles, 4);
		ck_assert_int_eq(find_file(L.p, "gone")->op, CX_PATCH_DELETE);
		ck_assert_ptr_null(find_file(L.p, "gone")->new_path);
		ck_assert_int_eq(find_file(L.p, "packages/old/old.1/opam")->op, CX_PATCH_DELETE);
		ck_assert_int_eq(find_file(L.p, "packages/foo/foo.1.0/opam")->op, CX_PATCH_CREATE);
		ck_assert_ptr_null(find_file(L.p, "packages/foo/foo.1.0/opam")->old_path);
		ck_assert_int_eq(find_file(L.p, "top")->op, CX_PATCH_CREATE);
		unload(&L);
		free(pp);
	}
	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

/* diff -N writes the epoch in the local zone */
START_TEST(test_diff_epoch_zones)
{
	struct tf o[] = {TF("gone", "x\n")};
	struct tf n[] = {TF("made", "y\n")};
	const char *zones[] = {"TZ=UTC", "TZ=America/New_York", "TZ=Asia/Kolkata"};
	char *tmp = cx_test_tmpdir();
	struct loaded L;
	size_t i;

	write_tree(tmp, "old", o, 1);
	write_tree(tmp, "new", n, 1);
	for (i = 0; i < NELEM(zones); i++) {
		diff_patch(tmp, zones[i], "diff.patch");
		check_patch(tmp, "diff.patch", 0, &L);
		ck_assert_int_eq(find_file(L.p, "gone")->op, CX_PATCH_DELETE);
		ck_assert_int_eq(find_file(L.p, "made")->op, CX_PATCH_CREATE);
		unload(&L);
	}
	/* an epoch stamp alone, with an ordinary hunk, is an edit */
	load_mem(&L,
	    "--- a/f\t1970-01-01 00:00:00.000000000 +0000\n+++ b/f\t2024-01-01 00:00:00 +0000\n"
	    "@@ -1 +1 @@\n-a\n+b\n");
	ck_assert_int_eq(L.rc, 0);
	ck_assert_int_eq(L.p->files[0].op, CX_PATCH_EDIT);
	unload(&L);
	/* without the epoch, -0,0 is an edit of an empty file */
	load_mem(&L,
	    "--- a/f\t2024-01-01 00:00:00.000000000 +0000\n+++ b/f\t2024-01-01 00:00:00 +0000\n"
	    "@@ -0,0 +1 @@\n+b\n");
	ck_assert_int_eq(L.rc, 0);
	ck_assert_int_eq(L.p->files[0].op, CX_PATCH_EDIT);
	unload(&L);
	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

START_TEST(test_empty_files)
{
	/* git only: diff -N treats absent and empty alike and prints nothing */
	struct tf o[] = {
	    TF("e_gone", ""), TF("to_empty", "a\nb\n"), TF("from_empty", ""), TF("stay", "s\n")};
	struct tf n[] = {TF("e_new", ""), TF("sub/dir/e_new2", ""), TF("to_empty", ""),
	    TF("from_empty", "c\nd"), TF("stay", "s\n")};
	char *tmp = scenario(o, NELEM(o), n, NELEM(n), NO_DIFF | NO_RENAMES), *pp;
	struct loaded L;

	pp = join(tmp, "git.patch");
	load(&L, pp);
	ck_assert_int_eq(L.rc, 0);
	ck_assert_int_eq(find_file(L.p, "e_gone")->op, CX_PATCH_DELETE);
	ck_assert_uint_eq(find_file(L.p, "e_gone")->nhunks, 0);
	ck_assert_int_eq(find_file(L.p, "e_new")->op, CX_PATCH_CREATE);
	ck_assert_uint_eq(find_file(L.p, "e_new")->nhunks, 0);
	ck_assert_int_eq(find_file(L.p, "sub/dir/e_new2")->op, CX_PATCH_CREATE);
	ck_assert_int_eq(find_file(L.p, "to_empty")->op, CX_PATCH_EDIT);
	ck_assert_int_eq(find_file(L.p, "from_empty")->op, CX_PATCH_EDIT);
	unload(&L);
	free(pp);
	cx_test_rm_rf(tmp);
	free(tmp);

	/* the non-empty part with diff -ruaN too */
	{
		struct tf o2[] = {TF("to_empty", "a\nb\n"), TF("from_empty", "")};
		struct tf n2[] = {TF("to_empty", ""), TF("from_empty", "c\nd")};
		tmp = scenario(o2, NELEM(o2), n2, NELEM(n2), 0);
		cx_test_rm_rf(tmp);
		free(tmp);
	}
}
END_TEST

START_TEST(test_rename)
{
	char *body = numbered(20, "r"), *body2 = numbered(20, "r"), *other = numbered(20, "o"),
	     *tmp, *pp;
	struct loaded L;
	const struct cx_patch_file *f;

	*strstr(body2, "r line 10\n") = 'R';
	{
		struct tf o[] = {{"packages/a/opam", other, strlen(other)},
		    {"moved_changed", body, strlen(body)}, TF("x", "x\n")};
		struct tf n[] = {{"packages/b/opam", other, strlen(other)},
		    {"dir/moved_changed2", body2, strlen(body2)}, TF("x", "x\n")};
		tmp = scenario(o, NELEM(o), n, NELEM(n), 0);
	}
	pp = join(tmp, "git.patch");
	load(&L, pp);
	ck_assert_int_eq(L.rc, 0);
	ck_assert_uint_eq(L.p->nfiles, 2);
	f = find_file(L.p, "packages/b/opam");
	ck_assert_int_eq(f->op, CX_PATCH_RENAME);
	ck_assert_str_eq(f->old_path, "packages/a/opam");
	ck_assert_uint_eq(f->nhunks, 0);
	f = find_file(L.p, "dir/moved_changed2");
	ck_assert_int_eq(f->op, CX_PATCH_RENAME);
	ck_assert_str_eq(f->old_path, "moved_changed");
	ck_assert_uint_eq(f->nhunks, 1);
	unload(&L);
	free(pp);
	cx_test_rm_rf(tmp);
	free(tmp);
	free(body);
	free(body2);
	free(other);
}
END_TEST

START_TEST(test_no_newline)
{
	struct tf o[] = {
	    TF("old_lacks", "a\nb\nc"),
	    TF("new_lacks", "a\nb\nc\n"),
	    TF("both_lack", "a\nb\nc"),
	    TF("both_lack_mid", "1\n2\n3\n4\n5\n6\n7\n8\n9\nlast"),
	    TF("single", "only"),
	    TF("lose_last", "a\nb\nc"),
	    TF("crlf_nonl", "a\r\nb\r\nc"),
	};
	struct tf n[] = {
	    TF("old_lacks", "a\nb\nC\n"),
	    TF("new_lacks", "a\nb\nC"),
	    TF("both_lack", "a\nb\nC"),
	    TF("both_lack_mid", "1\nTWO\n3\n4\n5\n6\n7\n8\n9\nlast"),
	    TF("single", "ONLY"),
	    TF("lose_last", "a\nb\n"),
	    TF("crlf_nonl", "a\r\nB\r\nc"),
	};
	char *tmp = scenario(o, NELEM(o), n, NELEM(n), 0);

	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

START_TEST(test_crlf)
{
	struct tf o[] = {
	    TF("dos", "one\r\ntwo\r\nthree\r\nfour\r\n"), TF("mixed", "a\r\nb\nc\r\n")};
	struct tf n[] = {
	    TF("dos", "one\r\nTWO\r\nthree\r\nfour\r\nfive\r\n"), TF("mixed", "a\nb\r\nc\r\n")};
	char *tmp = scenario(o, NELEM(o), n, NELEM(n), 0);

	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

START_TEST(test_quoted_names)
{
	struct tf o[] = {TF("sp ace", "a\n"), TF("quo\"te", "q\n"), TF("caf\xc3\xa9", "c\n")};
	struct tf n[] = {TF("sp ace", "a\nb\n"), TF("quo\"te", "Q\n"), TF("caf\xc3\xa9", "C\n"),
	    TF("n\xc3\xa9w/x", "c\n"), TF("sp ace 2", "new\n")};
	/* GNU patch 2.7.6 cannot read a rename whose diff --git line mixes quoting */
	struct tf o2[] = {TF("re name", "r\nr\nr\n")};
	struct tf n2[] = {TF("d\xc3\xa9j\xc3\xa0 vu", "r\nr\nr\n")};
	char *tmp = scenario(o, NELEM(o), n, NELEM(n), 0), *pp;
	struct loaded L;

	pp = join(tmp, "git.patch");
	load(&L, pp);
	ck_assert_int_eq(L.rc, 0);
	ck_assert_int_eq(find_file(L.p, "sp ace")->op, CX_PATCH_EDIT);
	ck_assert_int_eq(find_file(L.p, "sp ace 2")->op, CX_PATCH_CREATE);
	ck_assert_int_eq(find_file(L.p, "quo\"te")->op, CX_PATCH_EDIT);
	ck_assert_int_eq(find_file(L.p, "caf\xc3\xa9")->op, CX_PATCH_EDIT);
	ck_assert_int_eq(find_file(L.p, "n\xc3\xa9w/x")->op, CX_PATCH_CREATE);
	unload(&L);
	free(pp);
	cx_test_rm_rf(tmp);
	free(tmp);

	tmp = scenario(o2, NELEM(o2), n2, NELEM(n2), NO_GNU);
	pp = join(tmp, "git.patch");
	load(&L, pp);
	ck_assert_int_eq(L.rc, 0);
	ck_assert_int_eq(find_file(L.p, "d\xc3\xa9j\xc3\xa0 vu")->op, CX_PATCH_RENAME);
	ck_assert_str_eq(find_file(L.p, "d\xc3\xa9j\xc3\xa0 vu")->old_path, "re name");
	unload(&L);
	free(pp);
	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

/* git add -N and git diff HEAD, as an alternative to --cached */
START_TEST(test_intent_to_add)
{
	struct tf o[] = {TF("a", "1\n2\n")};
	struct tf n[] = {TF("a", "1\n3\n"), TF("b/new", "new\n")};
	char *tmp = cx_test_tmpdir();
	struct loaded L;

	write_tree(tmp, "old", o, 1);
	write_tree(tmp, "new", n, 2);
	git_patch(tmp, "add -N b/new", "HEAD", "git.patch");
	check_patch(tmp, "git.patch", 0, &L);
	ck_assert_uint_eq(L.p->nfiles, 2);
	ck_assert_int_eq(find_file(L.p, "b/new")->op, CX_PATCH_CREATE);
	unload(&L);
	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

/* The commit message before the first header and the "-- " signature are skipped. */
START_TEST(test_format_patch)
{
	struct tf o[] = {TF("a", "1\n2\n3\n")};
	struct tf n[] = {TF("a", "1\nII\n3\n"), TF("n/b", "b\n")};
	char *tmp = cx_test_tmpdir();
	struct loaded L;
	int r;

	write_tree(tmp, "old", o, 1);
	write_tree(tmp, "new", n, 2);
	git_patch(tmp, "add -A", "--cached", "unused.patch");
	r = cx_test_sh("cd '%s/repo' && " GIT "commit -q -m 'subject line' "
	               "-m 'body with diff words' -m '--- not a header' && " GIT
	               "format-patch -1 --stdout > ../fp.patch",
	    tmp);
	ck_assert_int_eq(r, 0);
	check_patch(tmp, "fp.patch", 0, &L);
	ck_assert_uint_eq(L.p->nfiles, 2);
	unload(&L);
	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

/* Some tools strip the space of an empty context line. */
START_TEST(test_bare_empty_context)
{
	struct tf o[] = {TF("f", "a\n\nb\n\nc\n")};
	struct tf n[] = {TF("f", "a\n\nB\n\nc\n")};
	char *tmp = scenario(o, NELEM(o), n, NELEM(n), 0);
	struct loaded L;
	int r;

	r = cx_test_sh(
	    "cd '%s' && sed 's/^ $//' git.patch > bare.patch && ! cmp -s git.patch bare.patch",
	    tmp);
	ck_assert_int_eq(r, 0);
	check_patch(tmp, "bare.patch", NO_GNU, &L);
	unload(&L);
	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

/* cx_patch_apply_ex: what progress is told is final, in place, and ends as the result. */
struct prog {
	const uint8_t *d;
	size_t n, calls;
	uint8_t copy[3 * 1024 * 1024];
	int moved, shrank, stopped;
};

static void
prog_cb(void *arg, const uint8_t *d, size_t n)
{
	struct prog *pg = arg;

	if (d == NULL) {
		/* a failure: the last call, before the bytes are overwritten */
		ck_assert_int_eq(n, 0);
		ck_assert_int_eq(pg->stopped, 0);
		pg->stopped = 1;
		return;
	}
	ck_assert_int_eq(pg->stopped, 0);
	if (pg->d != NULL && pg->d != d)
		pg->moved = 1;
	if (n < pg->n)
		pg->shrank = 1;
	pg->d = d;
	ck_assert_uint_le(n, sizeof(pg->copy));
	/* what was announced before may not change */
	if (pg->n)
		ck_assert_int_eq(memcmp(pg->copy, d, pg->n), 0);
	memcpy(pg->copy, d, n);
	pg->n = n;
	pg->calls++;
}

START_TEST(test_apply_progress)
{
	struct loaded L;
	struct cx_buf out, ref;
	struct cx_err e;
	static struct prog pg;
	size_t nl = 100000, i, len;
	char *old, *q;

	/* 100,000 lines of 20 bytes: long runs before and after two hunks */
	old = malloc(nl * 20 + 1);
	ck_assert_ptr_nonnull(old);
	for (i = 0, q = old; i < nl; i++, q += 20)
		snprintf(q, 21, "line %014zu\n", i);
	len = nl * 20;
	load_mem(&L,
	    "--- a/f\n+++ b/f\n@@ -20001,2 +20001,3 @@\n line 00000000020000\n-line "
	    "00000000020001\n+new one\n+new two\n@@ -90000,1 +90000,0 @@\n-line "
	    "00000000089999\n");
	ck_assert_msg(L.rc == 0, "%s", L.e.msg);
	cx_buf_init(&out, 0);
	cx_buf_init(&ref, 0);
	memset(&pg, 0, sizeof(pg));
	ck_assert_int_eq(cx_patch_apply(&L.p->files[0], (const uint8_t *)old, len, &ref, &e), 0);
	ck_assert_int_eq(
	    cx_patch_apply_ex(&L.p->files[0], (const uint8_t *)old, len, &out, prog_cb, &pg, &e),
	    0);
	ck_assert_uint_eq(out.len, ref.len);
	ck_assert_int_eq(memcmp(out.d, ref.d, ref.len), 0);
	ck_assert_uint_ge(pg.calls, 5); /* 2 MB in 256 KB pieces */
	ck_assert_int_eq(pg.moved, 0);
	ck_assert_int_eq(pg.shrank, 0);
	ck_assert_int_eq(pg.stopped, 0);
	ck_assert_ptr_eq(pg.d, out.d);
	ck_assert_uint_le(pg.n, out.len);
	ck_assert_int_eq(memcmp(pg.copy, out.d, pg.n), 0);
	cx_buf_free(&out);

	/* a hunk that does not apply: an error as with cx_patch_apply, out left empty */
	old[20000 * 20 + 3] = 'X';
	cx_buf_init(&out, 0);
	memset(&pg, 0, sizeof(pg));
	ck_assert_int_eq(
	    cx_patch_apply_ex(&L.p->files[0], (const uint8_t *)old, len, &out, prog_cb, &pg, &e),
	    CX_EREJECT);
	ck_assert_uint_eq(out.len, 0);
	ck_assert_uint_ge(pg.calls, 2); /* the start and the run before the hunk */
	ck_assert_int_eq(pg.stopped, 1);
	cx_buf_free(&out);
	cx_buf_free(&ref);
	unload(&L);
	free(old);
}
END_TEST

START_TEST(test_leading_garbage_and_trailing_blank)
{
	struct loaded L;
	struct cx_buf out;
	struct cx_err e;

	load_mem(&L,
	    "From: someone\nSubject: x\n\n@@ not a hunk\n+++ nor this\n"
	    "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@ sect\n a\n-b\n+c\n\n\n");
	ck_assert_msg(L.rc == 0, "%s", L.e.msg);
	ck_assert_uint_eq(L.p->nfiles, 1);
	cx_buf_init(&out, 0);
	ck_assert_int_eq(
	    cx_patch_apply(&L.p->files[0], (const uint8_t *)"a\nb\nz\n", 6, &out, &e), 0);
	ck_assert_uint_eq(out.len, 6);
	ck_assert_int_eq(memcmp(out.d, "a\nc\nz\n", 6), 0);
	cx_buf_free(&out);
	unload(&L);

	/* an empty patch has no files */
	load_mem(&L, "just words\n");
	ck_assert_int_eq(L.rc, 0);
	ck_assert_uint_eq(L.p->nfiles, 0);
	unload(&L);
}
END_TEST

/* Output already in the buffer stays; a failed apply leaves it as it was. */
START_TEST(test_apply_appends_and_rolls_back)
{
	struct loaded L;
	struct cx_buf out;
	struct cx_err e;

	load_mem(&L, "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n@@ -5 +5 @@\n-e\n+E\n");
	ck_assert_msg(L.rc == 0, "%s", L.e.msg);
	cx_buf_init(&out, 0);
	cx_buf_put_str(&out, "prefix");
	ck_assert_int_eq(
	    cx_patch_apply(&L.p->files[0], (const uint8_t *)"a\nb\nc\nd\nX\n", 10, &out, &e),
	    CX_EREJECT);
	ck_assert_uint_eq(out.len, 6);
	ck_assert_msg(strstr(e.msg, "f: hunk 2 (@@ -5,1 +5,1 @@) does not apply at line 5") != NULL,
	    "%s", e.msg);
	ck_assert_int_eq(
	    cx_patch_apply(&L.p->files[0], (const uint8_t *)"a\nb\nc\nd\ne\nf", 11, &out, &e), 0);
	ck_assert_uint_eq(out.len, 6 + 11);
	ck_assert_int_eq(memcmp(out.d, "prefixa\nc\nc\nd\nE\nf", 17), 0);
	cx_buf_free(&out);
	unload(&L);
}
END_TEST

/* ---- rejections ---- */

static void
expect_parse_error(const char *text, int code, const char *needle)
{
	struct loaded L;

	load_mem(&L, text);
	ck_assert_msg(L.rc == code, "expected %d, got %d (%s) for:\n%s", code, L.rc, L.e.msg, text);
	ck_assert_ptr_null(L.p);
	if (needle != NULL)
		ck_assert_msg(strstr(L.e.msg, needle) != NULL, "'%s' not in '%s'", needle, L.e.msg);
	unload(&L);
}

START_TEST(test_reject_context_mismatch)
{
	struct tf o[] = {TF("packages/foo/opam", "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n")};
	struct tf n[] = {TF("packages/foo/opam", "1\n2\n3\n4\n5\n6\n7\n8\n9\nX\n11\n12\n")};
	char *tmp = scenario(o, NELEM(o), n, NELEM(n), 0), *pp;
	struct loaded L;
	struct cx_buf out;
	struct cx_err e;
	const char *changed = "1\n2\n3\n4\n5\n6\n7\nEIGHT\n9\n10\n11\n12\n";
	const char *nonl = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12";
	const char *shortf = "1\n2\n3\n4\n5\n6\n7\n8\n";
	const char *which[] = {"git.patch", "diff.patch"};
	size_t i;

	for (i = 0; i < 2; i++) {
		pp = join(tmp, which[i]);
		load(&L, pp);
		ck_assert_int_eq(L.rc, 0);
		cx_buf_init(&out, 0);
		ck_assert_int_eq(cx_patch_apply(&L.p->files[0], (const uint8_t *)changed,
		                     strlen(changed), &out, &e),
		    CX_EREJECT);
		ck_assert_msg(
		    strstr(e.msg,
		        "packages/foo/opam: hunk 1 (@@ -7,6 +7,6 @@) does not apply at line 7: line 8 differs") !=
		        NULL,
		    "%s", e.msg);
		ck_assert_uint_eq(out.len, 0);
		/* no fuzz: the same text one line further down does not apply either */
		{
			size_t sl = strlen(nonl) + 4;
			char *shifted = malloc(sl);

			ck_assert_ptr_nonnull(shifted);
			snprintf(shifted, sl, "0\n%s\n", nonl);
			ck_assert_int_eq(cx_patch_apply(&L.p->files[0], (const uint8_t *)shifted,
			                     strlen(shifted), &out, &e),
			    CX_EREJECT);
			free(shifted);
		}
		/* the last line lacking its newline is a difference too */
		ck_assert_int_eq(
		    cx_patch_apply(&L.p->files[0], (const uint8_t *)nonl, strlen(nonl), &out, &e),
		    CX_EREJECT);
		ck_assert_msg(strstr(e.msg, "lacks a newline") != NULL, "%s", e.msg);
		ck_assert_int_eq(cx_patch_apply(&L.p->files[0], (const uint8_t *)shortf,
		                     strlen(shortf), &out, &e),
		    CX_EREJECT);
		/* an edit of a missing file */
		ck_assert_int_eq(cx_patch_apply(&L.p->files[0], NULL, 0, &out, &e), CX_EREJECT);
		cx_buf_free(&out);
		unload(&L);
		free(pp);
	}
	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

START_TEST(test_reject_create_delete_apply)
{
	struct loaded L;
	struct cx_buf out;
	struct cx_err e;

	load_mem(&L,
	    "diff --git a/n b/n\nnew file mode 100644\n--- /dev/null\n+++ b/n\n@@ -0,0 +1 @@\n+x\n"
	    "diff --git a/d b/d\ndeleted file mode 100644\n--- a/d\n+++ /dev/null\n@@ -1 +0,0 @@\n-y\n");
	ck_assert_msg(L.rc == 0, "%s", L.e.msg);
	cx_buf_init(&out, 0);
	/* creating over an existing file */
	ck_assert_int_eq(
	    cx_patch_apply(&L.p->files[0], (const uint8_t *)"", 0, &out, &e), CX_EREJECT);
	ck_assert_int_eq(cx_patch_apply(&L.p->files[0], NULL, 0, &out, &e), 0);
	ck_assert_uint_eq(out.len, 2);
	cx_buf_reset(&out);
	/* a deletion must remove everything */
	ck_assert_int_eq(
	    cx_patch_apply(&L.p->files[1], (const uint8_t *)"y\nmore\n", 7, &out, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "do not remove all") != NULL, "%s", e.msg);
	ck_assert_uint_eq(out.len, 0);
	ck_assert_int_eq(cx_patch_apply(&L.p->files[1], NULL, 0, &out, &e), CX_EREJECT);
	ck_assert_int_eq(cx_patch_apply(&L.p->files[1], (const uint8_t *)"y\n", 2, &out, &e), 0);
	ck_assert_uint_eq(out.len, 0);
	cx_buf_free(&out);
	unload(&L);
}
END_TEST

START_TEST(test_reject_counts)
{
	/* too few lines for the header: runs into EOF */
	expect_parse_error("--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n", CX_EPARSE,
	    "mem.patch:6: truncated patch");
	/* too many '+' lines: line 6 is the extra one */
	expect_parse_error(
	    "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n+c\n", CX_EPARSE, "mem.patch:6:");
	/* too many context lines */
	expect_parse_error("--- a/f\n+++ b/f\n@@ -1,1 +1,2 @@\n-a\n+b\n x\n", CX_EPARSE,
	    "mem.patch:6: hunk 1 has more ' ' lines");
	/* fewer lines, then the next section */
	expect_parse_error("--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n+b\ndiff --git a/g b/g\n",
	    CX_EPARSE, "mem.patch:6: unexpected line in hunk 1 (1 old and 1 new");
	/* the counts rule: "--- a/g" is a '-' line here, and the next hunk overlaps */
	expect_parse_error(
	    "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n-a\n+b\n--- a/g\n+++ b/g\n@@ -1 +1 @@\n-a\n+b\n",
	    CX_EPARSE, "mem.patch:8: hunk 2 overlaps");
	/* garbage between hunks */
	expect_parse_error("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\nhello\n@@ -5 +5 @@\n-a\n+b\n",
	    CX_EPARSE, "mem.patch:6: unexpected line");
	expect_parse_error("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\nhello\n+b\n", CX_EPARSE,
	    "mem.patch:5: unexpected line in hunk 1");
	/* malformed headers, empty and overlapping hunks, a wrong new start */
	expect_parse_error(
	    "--- a/f\n+++ b/f\n@@ -1 +1\n-a\n+b\n", CX_EPARSE, "malformed hunk header");
	expect_parse_error("--- a/f\n+++ b/f\n@@ -x +1 @@\n-a\n+b\n", CX_EPARSE, "malformed");
	expect_parse_error(
	    "--- a/f\n+++ b/f\n@@ -99999999999 +1 @@\n-a\n+b\n", CX_EPARSE, "malformed");
	expect_parse_error("--- a/f\n+++ b/f\n@@ -1,0 +1,0 @@\n", CX_EPARSE, "empty hunk");
	expect_parse_error("--- a/f\n+++ b/f\n@@ -0 +0 @@\n-a\n+b\n", CX_EPARSE, "line 0");
	expect_parse_error(
	    "--- a/f\n+++ b/f\n@@ -5 +5 @@\n-a\n+b\n@@ -3 +3 @@\n-a\n+b\n", CX_EPARSE, "overlaps");
	expect_parse_error(
	    "--- a/f\n+++ b/f\n@@ -5 +6 @@\n-a\n+b\n", CX_EPARSE, "new start 6 should be 5");
	expect_parse_error("--- a/f\n+++ b/f\n\n", CX_EPARSE, "expected a hunk");
	/* "\ No newline" in the wrong place */
	expect_parse_error(
	    "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n\\ No newline at end of file\n-b\n+c\n",
	    CX_EPARSE, "after '\\ No newline");
	expect_parse_error("--- a/f\n+++ b/f\n@@ -1 +1 @@\n\\ No newline at end of file\n-a\n+b\n",
	    CX_EPARSE, "without a line before");
}
END_TEST

START_TEST(test_reject_truncated)
{
	char *o = numbered(40, "t"), *n = numbered(40, "t"), *tmp, *pp;
	struct loaded L;
	size_t cut, files = 0;

	*strstr(n, "t line 5\n") = 'T';
	*strstr(n, "t line 30\n") = 'T';
	{
		struct tf of[] = {{"f", o, strlen(o)}, TF("g", "g\n")};
		struct tf nf[] = {{"f", n, strlen(n)}, TF("g", "G\n")};
		tmp = scenario(of, NELEM(of), nf, NELEM(nf), 0);
	}
	pp = join(tmp, "git.patch");
	load(&L, pp);
	ck_assert_int_eq(L.rc, 0);
	/* every cut either fails or, at a section boundary, drops whole files */
	for (cut = 0; cut < L.len; cut++) {
		struct cx_patch *p = NULL;
		struct cx_err e;
		int r = cx_patch_parse(L.data, cut, "cut", &p, &e);

		if (r == 0) {
			ck_assert_msg(p->nfiles < L.p->nfiles, "cut at %zu accepted whole", cut);
			/* a cut first line is prose before the first header */
			ck_assert_msg(p->nfiles == 0 || L.data[cut - 1] == '\n',
			    "cut at %zu mid-line accepted", cut);
			files++;
			cx_patch_free(p);
		} else
			ck_assert_int_eq(r, CX_EPARSE);
	}
	ck_assert_uint_gt(files, 0);
	unload(&L);
	free(pp);
	cx_test_rm_rf(tmp);
	free(tmp);
	free(o);
	free(n);
}
END_TEST

START_TEST(test_reject_paths)
{
	expect_parse_error(
	    "--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "'..'");
	expect_parse_error(
	    "--- a/x/../../y\n+++ b/x/../../y\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "'..'");
	expect_parse_error("--- a/./x\n+++ b/./x\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "'.'");
	expect_parse_error(
	    "--- ../x\n+++ ../x\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "starts with '..'");
	expect_parse_error(
	    "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "absolute");
	expect_parse_error(
	    "--- a//etc/passwd\n+++ b//etc/passwd\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "absolute");
	expect_parse_error("--- a/x/\n+++ b/x/\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "empty");
	expect_parse_error("--- nodir\n+++ nodir\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "-p1");
	expect_parse_error("--- a/\n+++ b/\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "empty path");
	expect_parse_error("--- \"a/x\\ty\"\n+++ \"b/x\\ty\"\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE,
	    "control character");
	expect_parse_error("--- \"a/x\\000y\"\n+++ \"b/x\\000y\"\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE,
	    "control character");
	expect_parse_error(
	    "--- \"a/x\\qy\"\n+++ \"b/x\\qy\"\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "bad escape");
	expect_parse_error("--- \"a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "unterminated");
	expect_parse_error(
	    "diff --git a/x b/x\nsimilarity index 90%\nrename from ../x\nrename to x\n", CX_EPARSE,
	    "'..'");
	/* plain diffs cannot rename */
	expect_parse_error("--- a/x\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "different files");
	/* names that disagree inside one git section */
	expect_parse_error(
	    "diff --git a/x b/x\n--- a/y\n+++ b/y\n@@ -1 +1 @@\n-a\n+b\n", CX_EPARSE, "disagree");
	expect_parse_error(
	    "diff --git a/x b/y\nrename from x\nrename to z\n", CX_EPARSE, "disagree");
	expect_parse_error(
	    "diff --git a/x b/x\nnew file mode 100644\n--- a/x\n+++ b/x\n@@ -0,0 +1 @@\n+b\n",
	    CX_EPARSE, "/dev/null");
	expect_parse_error("diff --git a/x b/x\n--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+b\n",
	    CX_EPARSE, "new file mode");
	/* good quoting works */
	{
		struct loaded L;

		load_mem(&L,
		    "diff --git \"a/x\\303\\251 \\\"q\\\"\" \"b/x\\303\\251 \\\"q\\\"\"\n"
		    "--- \"a/x\\303\\251 \\\"q\\\"\"\n+++ \"b/x\\303\\251 \\\"q\\\"\"\n"
		    "@@ -1 +1 @@\n-a\n+b\n");
		ck_assert_msg(L.rc == 0, "%s", L.e.msg);
		ck_assert_str_eq(L.p->files[0].new_path, "x\xc3\xa9 \"q\"");
		unload(&L);
	}
}
END_TEST

START_TEST(test_reject_git_tab_name)
{
	struct tf o[] = {TF("t\tab", "a\n")};
	struct tf n[] = {TF("t\tab", "b\n")};
	char *tmp = cx_test_tmpdir(), *pp;
	struct loaded L;

	write_tree(tmp, "old", o, 1);
	write_tree(tmp, "new", n, 1);
	git_patch(tmp, "add -A", "--cached", "git.patch");
	pp = join(tmp, "git.patch");
	load(&L, pp);
	ck_assert_int_eq(L.rc, CX_EPARSE);
	ck_assert_msg(
	    strstr(L.e.msg, "control character in path 'a/t\\011ab'") != NULL, "%s", L.e.msg);
	unload(&L);
	free(pp);
	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

START_TEST(test_reject_duplicate)
{
	expect_parse_error(
	    "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n--- a/g\n+++ b/g\n@@ -1 +1 @@\n-a\n+b\n"
	    "diff -ruaN a/f b/f\n--- a/f\n+++ b/f\n@@ -3 +3 @@\n-a\n+b\n",
	    CX_EPARSE, "mem.patch:12: 'f' is touched by two file sections (the other at line 1)");
	/* a rename's source counts as touched */
	expect_parse_error("diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n"
	                   "diff --git a/x b/x\ndeleted file mode 100644\n",
	    CX_EPARSE, "'x' is touched by two");
	expect_parse_error("diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n"
	                   "diff --git a/y b/y\nnew file mode 100644\n",
	    CX_EPARSE, "'y' is touched by two");
}
END_TEST

static void
expect_git_reject(const struct tf *o, size_t no, const struct tf *n, size_t nn, const char *prep,
    const char *diffargs, int code, const char *needle)
{
	char *tmp = cx_test_tmpdir(), *pp;
	struct loaded L;

	write_tree(tmp, "old", o, no);
	write_tree(tmp, "new", n, nn);
	if (prep != NULL)
		ck_assert_int_eq(cx_test_sh("cd '%s' && %s", tmp, prep), 0);
	git_patch(tmp, "add -A", diffargs, "git.patch");
	pp = join(tmp, "git.patch");
	load(&L, pp);
	ck_assert_msg(L.rc == code, "expected %d got %d: %s", code, L.rc, L.e.msg);
	ck_assert_msg(strstr(L.e.msg, needle) != NULL, "'%s' not in '%s'", needle, L.e.msg);
	unload(&L);
	free(pp);
	cx_test_rm_rf(tmp);
	free(tmp);
}

START_TEST(test_reject_binary)
{
	struct tf o[] = {TF("bin", "\x00\x01\x02zz"), TF("t", "t\n")};
	struct tf n[] = {TF("bin", "\x00\x01\x03zz"), TF("t", "T\n")};
	char *tmp;

	expect_git_reject(o, 2, n, 2, NULL, "--cached --binary", CX_EUNSUPPORTED, "binary");
	expect_git_reject(o, 2, n, 2, NULL, "--cached", CX_EUNSUPPORTED, "binary");
	/* diff -ru without -a */
	tmp = cx_test_tmpdir();
	write_tree(tmp, "old", o, 2);
	write_tree(tmp, "new", n, 2);
	ck_assert_int_eq(
	    cx_test_sh("cd '%s' && diff -ruN old new > d.patch; test $? -le 1", tmp), 0);
	{
		char *pp = join(tmp, "d.patch");
		struct loaded L;

		load(&L, pp);
		ck_assert_int_eq(L.rc, CX_EUNSUPPORTED);
		ck_assert_msg(
		    strstr(L.e.msg, "binary patches are not allowed") != NULL, "%s", L.e.msg);
		unload(&L);
		free(pp);
	}
	cx_test_rm_rf(tmp);
	free(tmp);
}
END_TEST

START_TEST(test_reject_git_features)
{
	char *body = numbered(30, "c");
	struct tf o[] = {{"orig", body, strlen(body)}, TF("x", "x\n")};
	struct tf n[] = {
	    {"orig", body, strlen(body)}, {"copy", body, strlen(body)}, TF("x", "x\n")};

	expect_git_reject(o, 2, n, 3, NULL, "--cached -C -C", CX_EUNSUPPORTED, "copies");
	/* symbolic link */
	expect_git_reject(
	    o, 2, o, 2, "ln -s x new/link", "--cached", CX_EUNSUPPORTED, "symbolic links");
	free(body);
	/* a mode change with content is fine (the mode is not part of the view) */
	{
		struct tf o2[] = {TF("x", "x\n")};
		struct tf n2[] = {TF("x", "y\n")};
		char *tmp = cx_test_tmpdir();
		struct loaded L;

		write_tree(tmp, "old", o2, 1);
		write_tree(tmp, "new", n2, 1);
		ck_assert_int_eq(cx_test_sh("chmod +x '%s/new/x'", tmp), 0);
		git_patch(tmp, "add -A", "--cached", "git.patch");
		check_patch(tmp, "git.patch", 0, &L);
		unload(&L);
		cx_test_rm_rf(tmp);
		free(tmp);
	}
	/* a mode-only change keeps the bytes: opam's git backend sends them */
	{
		struct tf o3[] = {TF("x", "x\n")};
		char *tmp = cx_test_tmpdir();
		struct loaded L;

		write_tree(tmp, "old", o3, 1);
		write_tree(tmp, "new", o3, 1);
		ck_assert_int_eq(cx_test_sh("chmod +x '%s/new/x'", tmp), 0);
		git_patch(tmp, "add -A", "--cached", "git.patch");
		check_patch(tmp, "git.patch", 0, &L);
		unload(&L);
		cx_test_rm_rf(tmp);
		free(tmp);
	}
	expect_parse_error(
	    "diff --git a/x b/x\nold mode 100644\nnew mode 120000\n", CX_EUNSUPPORTED, "");
	expect_parse_error(
	    "diff --git a/x b/x\nnew file mode 160000\n", CX_EUNSUPPORTED, "submodules");
	expect_parse_error(
	    "diff --git a/x b/x\nindex 1..2 120000\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
	    CX_EUNSUPPORTED, "symbolic links");
	expect_parse_error(
	    "diff --git a/x b/x\nGIT binary patch\nliteral 0\n", CX_EUNSUPPORTED, "binary");
	expect_parse_error("diff --git a/x b/x\n", CX_EPARSE, "without any change");
}
END_TEST

START_TEST(test_reject_trailing_garbage)
{
	const char *ok = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n";
	char buf[256];
	struct loaded L;

	snprintf(buf, sizeof(buf), "%s-- \n2.39.5\n\n", ok);
	load_mem(&L, buf);
	ck_assert_msg(L.rc == 0, "%s", L.e.msg);
	unload(&L);
	snprintf(buf, sizeof(buf), "%s-- \n2.39.5\n--- a/g\n+++ b/g\n", ok);
	expect_parse_error(buf, CX_EPARSE, "after the '-- ' signature");
	snprintf(buf, sizeof(buf), "%s\nmore\n", ok);
	expect_parse_error(buf, CX_EPARSE, "mem.patch:6: unexpected line");
	/* missing final newline inside a hunk */
	expect_parse_error("--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b", CX_EPARSE, "truncated");
}
END_TEST

static Suite *
patch_suite(void)
{
	Suite *s = suite_create("patch");
	TCase *tc = tcase_create("good");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_edit_positions);
	tcase_add_test(tc, test_create_delete);
	tcase_add_test(tc, test_diff_epoch_zones);
	tcase_add_test(tc, test_empty_files);
	tcase_add_test(tc, test_rename);
	tcase_add_test(tc, test_no_newline);
	tcase_add_test(tc, test_crlf);
	tcase_add_test(tc, test_quoted_names);
	tcase_add_test(tc, test_intent_to_add);
	tcase_add_test(tc, test_format_patch);
	tcase_add_test(tc, test_bare_empty_context);
	tcase_add_test(tc, test_leading_garbage_and_trailing_blank);
	tcase_add_test(tc, test_apply_appends_and_rolls_back);
	suite_add_tcase(s, tc);
	tc = tcase_create("reject");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_reject_context_mismatch);
	tcase_add_test(tc, test_reject_create_delete_apply);
	tcase_add_test(tc, test_reject_counts);
	tcase_add_test(tc, test_reject_truncated);
	tcase_add_test(tc, test_reject_paths);
	tcase_add_test(tc, test_reject_git_tab_name);
	tcase_add_test(tc, test_reject_duplicate);
	tcase_add_test(tc, test_reject_binary);
	tcase_add_test(tc, test_reject_git_features);
	tcase_add_test(tc, test_reject_trailing_garbage);
	tcase_add_test(tc, test_long_files);
	tcase_add_test(tc, test_apply_progress);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(patch_suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
