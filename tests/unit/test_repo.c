/*
 * conex/repo*: directory, .tar.gz and patched views over real trees, real
 * tar/gzip archives and real diff/git patches.  Digests are checked against
 * sha256sum, and every archive flavour must give the walk, reads and
 * listings of the directory it was made from.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conex/crypto.h"
#include "conex/patch.h"
#include "conex/repo.h"
#include "tests/unit/testutil.h"

#define GIT                                                                                       \
	"GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 git -c user.name=t -c user.email=t@t " \
	"-c core.autocrlf=false -c init.defaultBranch=main "

static char *
join(const char *a, const char *b)
{
	char *p;

	if (asprintf(&p, "%s/%s", a, b) < 0)
		ck_abort_msg("asprintf");
	return p;
}

static struct cx_repo *
open_ok(const char *path)
{
	struct cx_err e = {0};
	struct cx_repo *r = NULL;
	int rc = cx_repo_open(&r, path, &e);

	ck_assert_msg(rc == 0, "open %s: %d %s", path, rc, e.msg);
	return r;
}

static int
open_fails(const char *path, struct cx_err *e)
{
	struct cx_repo *r = NULL;
	int rc = cx_repo_open(&r, path, e);

	ck_assert_ptr_null(r);
	ck_assert_int_ne(rc, 0);
	return rc;
}

static void
walk_ok(struct cx_repo *r, const char *dir, struct cx_file_list *l)
{
	struct cx_err e = {0};
	int rc = cx_repo_walk(r, dir, l, &e);

	ck_assert_msg(rc == 0, "walk %s: %d %s", dir, rc, e.msg);
}

static void
assert_lists_equal(const struct cx_file_list *a, const struct cx_file_list *b)
{
	size_t i;

	ck_assert_uint_eq(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		ck_assert_str_eq(a->v[i].path, b->v[i].path);
		ck_assert_uint_eq(a->v[i].size, b->v[i].size);
		ck_assert_msg(
		    memcmp(a->v[i].sha256, b->v[i].sha256, 32) == 0, "digest of %s", a->v[i].path);
	}
}

/* A tree that exercises sorting ('-' and '.' sort before '/'), depth, sizes. */
static char *
make_tree(void)
{
	char *d = cx_test_tmpdir(), *big, *longname;
	size_t i;

	cx_test_write_str(d, "root", "root file\n");
	cx_test_write_str(d, "repo", "opam-version: \"2.0\"\n");
	cx_test_write_str(d, "keys/alice", "alice\n");
	cx_test_write_str(d, "keys/bob", "bob\n");
	cx_test_write_str(d, "packages/a/a.1/opam", "a 1\n");
	cx_test_write_str(d, "packages/a/a.1/files/fix.patch", "--- x\n+++ y\n");
	cx_test_write_str(d, "packages/a-b/a-b.0.1/opam", "a-b\n");
	cx_test_write_str(d, "packages/a.c/a.c.2/opam", "a.c\n");
	cx_test_write(d, "packages/empty/empty.1/opam", "", 0);
	cx_test_write(d, "packages/bin/bin.1/opam", "\0\x01\xff\n", 4);
	/* larger than one read buffer of the walk */
	big = malloc(300001);
	ck_assert_ptr_nonnull(big);
	for (i = 0; i < 300001; i++)
		big[i] = (char)('a' + i % 23);
	cx_test_write(d, "packages/big/big.1/files/data", big, 300001);
	free(big);
	/* > 100 bytes: GNU long names, pax path records, ustar prefixes */
	if (asprintf(&longname, "packages/long/long.1/files/%s/%s",
	        "dddddddddddddddddddddddddddddddd",
	        "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
	        ".txt") < 0)
		ck_abort_msg("asprintf");
	cx_test_write_str(d, longname, "long\n");
	free(longname);
	return d;
}

/* sha256sum and stat over the same files, sorted bytewise. */
static void
assert_matches_sha256sum(const char *root, const char *dir, const struct cx_file_list *l)
{
	char *man, line[8192], hex[65];
	struct stat st;
	size_t i = 0;
	FILE *f;

	/* beside the tree, not in it, and unique to it */
	if (asprintf(&man, "%s.manifest", root) < 0)
		ck_abort_msg("asprintf");
	ck_assert_int_eq(cx_test_sh("cd '%s' && find %s -type f -print0 | LC_ALL=C sort -z | "
	                            "xargs -0 sha256sum > '%s'",
	                     root, *dir ? dir : ".", man),
	    0);
	ck_assert_ptr_nonnull(f = fopen(man, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line + 66, *full;

		line[strcspn(line, "\n")] = 0;
		if (strncmp(p, "./", 2) == 0)
			p += 2;
		ck_assert_uint_lt(i, l->n);
		ck_assert_str_eq(l->v[i].path, p);
		cx_hex_encode(l->v[i].sha256, 32, hex);
		ck_assert_msg(strncmp(line, hex, 64) == 0, "%s: %s vs %.64s", p, hex, line);
		full = join(root, p);
		ck_assert_int_eq(stat(full, &st), 0);
		ck_assert_uint_eq(l->v[i].size, (uint64_t)st.st_size);
		free(full);
		i++;
	}
	fclose(f);
	ck_assert_uint_eq(i, l->n);
	unlink(man);
	free(man);
}

/* Open fds of this process (the count includes the one reading the list). */
static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* ---- cx_path_check ---- */

START_TEST(test_path_check)
{
	static const char *good[] = {
	    "a", "a/b", "packages/foo/foo.1.0/opam", ".hidden", "a/..b", "...", "a/.x/b"};
	static const char *bad[] = {
	    "", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "../a", "a/..", "a/."};
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(*good); i++)
		ck_assert_msg(cx_path_check(good[i], strlen(good[i])) == 0, "%s", good[i]);
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ck_assert_msg(cx_path_check(bad[i], strlen(bad[i])) == CX_EINVAL, "%s", bad[i]);
	ck_assert_int_eq(cx_path_check("a\0b", 3), CX_EINVAL);
}
END_TEST

/* ---- directory backend ---- */

START_TEST(test_dir_walk)
{
	char *d = make_tree();
	struct cx_repo *r = open_ok(d);
	struct cx_file_list l, all;
	size_t i;

	walk_ok(r, "packages", &l);
	ck_assert_uint_eq(l.n, 8);
	ck_assert_str_eq(l.v[0].path, "packages/a-b/a-b.0.1/opam");
	ck_assert_str_eq(l.v[1].path, "packages/a.c/a.c.2/opam");
	ck_assert_str_eq(l.v[2].path, "packages/a/a.1/files/fix.patch");
	for (i = 1; i < l.n; i++)
		ck_assert_int_lt(strcmp(l.v[i - 1].path, l.v[i].path), 0);
	assert_matches_sha256sum(d, "packages", &l);
	walk_ok(r, "", &all);
	ck_assert_uint_eq(all.n, 12);
	assert_matches_sha256sum(d, "", &all);
	cx_file_list_free(&all);
	cx_file_list_free(&l);
	/* a subtree, and an absent one */
	walk_ok(r, "packages/a", &l);
	ck_assert_uint_eq(l.n, 2);
	ck_assert_str_eq(l.v[0].path, "packages/a/a.1/files/fix.patch");
	cx_file_list_free(&l);
	walk_ok(r, "nope/none", &l);
	ck_assert_uint_eq(l.n, 0);
	cx_file_list_free(&l);
	cx_repo_close(r);
	cx_test_rm_rf(d);
	free(d);
}
END_TEST

START_TEST(test_dir_read)
{
	char *d = make_tree();
	struct cx_repo *r = open_ok(d);
	struct cx_err e = {0};
	struct cx_buf b;

	cx_buf_init(&b, 0);
	ck_assert_int_eq(cx_repo_read(r, "keys/alice", 100, &b, &e), 0);
	ck_assert_uint_eq(b.len, 6);
	ck_assert_mem_eq(b.d, "alice\n", 6);
	ck_assert_int_eq(cx_repo_read(r, "packages/bin/bin.1/opam", 4, &b, &e), 0);
	ck_assert_mem_eq(b.d, "\0\x01\xff\n", 4);
	ck_assert_int_eq(cx_repo_read(r, "packages/empty/empty.1/opam", 0, &b, &e), 0);
	ck_assert_uint_eq(b.len, 0);
	/* the cap: exact fits, one less does not */
	ck_assert_int_eq(cx_repo_read(r, "packages/big/big.1/files/data", 300001, &b, &e), 0);
	ck_assert_uint_eq(b.len, 300001);
	ck_assert_int_eq(
	    cx_repo_read(r, "packages/big/big.1/files/data", 300000, &b, &e), CX_ETOOBIG);
	ck_assert_ptr_nonnull(strstr(e.msg, "packages/big/big.1/files/data"));
	ck_assert_uint_eq(b.len, 0);
	/* absent, at the end and in the middle */
	ck_assert_int_eq(cx_repo_read(r, "keys/carol", 100, &b, &e), CX_ENOENT);
	ck_assert_ptr_nonnull(strstr(e.msg, "keys/carol"));
	ck_assert_int_eq(cx_repo_read(r, "nope/x", 100, &b, &e), CX_ENOENT);
	ck_assert_int_eq(cx_repo_exists(r, "keys/alice", &e), 1);
	ck_assert_int_eq(cx_repo_exists(r, "keys/carol", &e), 0);
	ck_assert_int_eq(cx_repo_exists(r, "nope/x", &e), 0);
	/* a directory is not a regular file; a file is not a directory */
	ck_assert_int_eq(cx_repo_read(r, "keys", 100, &b, &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_exists(r, "keys", &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_read(r, "root/x", 100, &b, &e), CX_EREJECT);
	/* invalid paths never reach the file system */
	ck_assert_int_eq(cx_repo_read(r, "../etc/passwd", 100, &b, &e), CX_EINVAL);
	ck_assert_int_eq(cx_repo_read(r, "/etc/passwd", 100, &b, &e), CX_EINVAL);
	ck_assert_int_eq(cx_repo_read(r, "keys//alice", 100, &b, &e), CX_EINVAL);
	cx_buf_free(&b);
	cx_repo_close(r);
	cx_test_rm_rf(d);
	free(d);
}
END_TEST

START_TEST(test_dir_list)
{
	char *d = make_tree();
	struct cx_repo *r = open_ok(d);
	struct cx_err e = {0};
	struct cx_arena a;
	const char **names;
	size_t n;

	cx_arena_init(&a, 0);
	ck_assert_int_eq(cx_repo_list(r, "keys", &a, &names, &n, &e), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(names[0], "alice");
	ck_assert_str_eq(names[1], "bob");
	/* subdirectories are skipped */
	ck_assert_int_eq(cx_repo_list(r, "", &a, &names, &n, &e), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(names[0], "repo");
	ck_assert_str_eq(names[1], "root");
	ck_assert_int_eq(cx_repo_list(r, "packages/a/a.1", &a, &names, &n, &e), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(names[0], "opam");
	ck_assert_int_eq(cx_repo_list(r, "packages", &a, &names, &n, &e), 0);
	ck_assert_uint_eq(n, 0);
	/* absent: no names */
	ck_assert_int_eq(cx_repo_list(r, "nokeys", &a, &names, &n, &e), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(cx_repo_list(r, "root", &a, &names, &n, &e), CX_EREJECT);
	cx_arena_free(&a);
	cx_repo_close(r);
	cx_test_rm_rf(d);
	free(d);
}
END_TEST

START_TEST(test_dir_symlinks)
{
	char *d = make_tree();
	struct cx_repo *r = open_ok(d);
	struct cx_err e = {0};
	struct cx_file_list l;
	struct cx_arena a;
	const char **names;
	struct cx_buf b;
	size_t n;

	cx_buf_init(&b, 0);
	cx_arena_init(&a, 0);
	ck_assert_int_eq(cx_test_sh("cd '%s' && ln -s ../../../root packages/a/a.1/evil && "
	                            "ln -s a.1 packages/a/a.2 && ln -s alice keys/mallory",
	                     d),
	    0);
	ck_assert_int_eq(cx_repo_walk(r, "packages", &l, &e), CX_EREJECT);
	ck_assert_msg(
	    strstr(e.msg, "is a symlink") != NULL && strstr(e.msg, "packages/a/a.") != NULL, "%s",
	    e.msg);
	ck_assert_ptr_null(l.v);
	ck_assert_uint_eq(l.n, 0);
	/* read of a symlinked file, through a symlinked directory */
	ck_assert_int_eq(cx_repo_read(r, "keys/mallory", 100, &b, &e), CX_EREJECT);
	ck_assert_str_eq(e.msg, "keys/mallory: is a symlink");
	ck_assert_int_eq(cx_repo_exists(r, "keys/mallory", &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_read(r, "packages/a/a.2/opam", 100, &b, &e), CX_EREJECT);
	ck_assert_str_eq(e.msg, "packages/a/a.2: is a symlink");
	ck_assert_int_eq(cx_repo_list(r, "keys", &a, &names, &n, &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_list(r, "packages/a/a.2", &a, &names, &n, &e), CX_EREJECT);
	/* walking the symlinked directory itself */
	ck_assert_int_eq(cx_repo_walk(r, "packages/a/a.2", &l, &e), CX_EREJECT);
	/* other parts are fine */
	walk_ok(r, "packages/a-b", &l);
	ck_assert_uint_eq(l.n, 1);
	cx_file_list_free(&l);
	/* a failed walk over many directories leaves no fd behind */
	{
		int before, i;

		for (i = 0; i < 300; i++) {
			char rel[64];

			snprintf(rel, sizeof(rel), "packages/p%03d/p.%d/opam", i, i);
			cx_test_write_str(d, rel, "x\n");
		}
		ck_assert_int_eq(cx_test_sh("ln -s x '%s/packages/p150/p.150/link'", d), 0);
		before = count_fds();
		for (i = 0; i < 20; i++)
			ck_assert_int_eq(cx_repo_walk(r, "packages", &l, &e), CX_EREJECT);
		ck_assert_int_eq(count_fds(), before);
	}
	cx_arena_free(&a);
	cx_buf_free(&b);
	cx_repo_close(r);
	cx_test_rm_rf(d);
	free(d);
}
END_TEST

START_TEST(test_dir_fifo)
{
	char *d = make_tree(), *fifo = join(d, "packages/a/a.1/files/pipe");
	struct cx_repo *r = open_ok(d);
	struct cx_err e = {0};
	struct cx_file_list l;
	struct cx_arena a;
	const char **names;
	struct cx_buf b;
	size_t n;

	ck_assert_int_eq(mkfifo(fifo, 0644), 0);
	cx_buf_init(&b, 0);
	cx_arena_init(&a, 0);
	ck_assert_int_eq(cx_repo_walk(r, "packages", &l, &e), CX_EREJECT);
	ck_assert_str_eq(e.msg, "packages/a/a.1/files/pipe: not a regular file or directory");
	/* must not block */
	ck_assert_int_eq(cx_repo_read(r, "packages/a/a.1/files/pipe", 100, &b, &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_exists(r, "packages/a/a.1/files/pipe", &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_list(r, "packages/a/a.1/files", &a, &names, &n, &e), CX_EREJECT);
	cx_arena_free(&a);
	cx_buf_free(&b);
	cx_repo_close(r);
	cx_test_rm_rf(d);
	free(fifo);
	free(d);
}
END_TEST

START_TEST(test_open_errors)
{
	char *d = cx_test_tmpdir(), *p;
	struct cx_err e = {0};

	p = join(d, "missing");
	ck_assert_int_eq(open_fails(p, &e), CX_ENOENT);
	free(p);
	cx_test_write_str(d, "plain.txt", "not an archive\n");
	p = join(d, "plain.txt");
	ck_assert_int_eq(open_fails(p, &e), CX_EUNSUPPORTED);
	free(p);
	cx_test_rm_rf(d);
	free(d);
}
END_TEST

/* ---- tarball backend ---- */

static void
assert_same_view(struct cx_repo *a, struct cx_repo *b)
{
	static const char *files[] = {"root", "keys/alice", "packages/big/big.1/files/data",
	    "packages/empty/empty.1/opam", "packages/bin/bin.1/opam"};
	static const char *dirs[] = {"", "keys", "packages", "packages/a/a.1", "nope"};
	struct cx_file_list la, lb;
	struct cx_buf ba, bb;
	struct cx_err e = {0};
	struct cx_arena ar;
	const char **na, **nb;
	size_t i, j, nna, nnb;

	walk_ok(a, "", &la);
	walk_ok(b, "", &lb);
	assert_lists_equal(&la, &lb);
	cx_file_list_free(&la);
	cx_file_list_free(&lb);
	walk_ok(a, "packages", &la);
	walk_ok(b, "packages", &lb);
	assert_lists_equal(&la, &lb);
	cx_file_list_free(&la);
	cx_file_list_free(&lb);
	cx_buf_init(&ba, 0);
	cx_buf_init(&bb, 0);
	for (i = 0; i < sizeof(files) / sizeof(*files); i++) {
		ck_assert_int_eq(cx_repo_read(a, files[i], 1 << 20, &ba, &e), 0);
		ck_assert_int_eq(cx_repo_read(b, files[i], 1 << 20, &bb, &e), 0);
		ck_assert_uint_eq(ba.len, bb.len);
		ck_assert(ba.len == 0 || memcmp(ba.d, bb.d, ba.len) == 0);
		ck_assert_int_eq(cx_repo_exists(b, files[i], &e), 1);
	}
	ck_assert_int_eq(
	    cx_repo_read(b, "packages/big/big.1/files/data", 1000, &bb, &e), CX_ETOOBIG);
	ck_assert_int_eq(cx_repo_read(b, "keys/carol", 1000, &bb, &e), CX_ENOENT);
	ck_assert_int_eq(cx_repo_exists(b, "keys/carol", &e), 0);
	ck_assert_int_eq(cx_repo_read(b, "keys", 1000, &bb, &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_read(b, "root/x", 1000, &bb, &e), CX_EREJECT);
	cx_buf_free(&ba);
	cx_buf_free(&bb);
	cx_arena_init(&ar, 0);
	for (i = 0; i < sizeof(dirs) / sizeof(*dirs); i++) {
		ck_assert_int_eq(cx_repo_list(a, dirs[i], &ar, &na, &nna, &e), 0);
		ck_assert_int_eq(cx_repo_list(b, dirs[i], &ar, &nb, &nnb, &e), 0);
		ck_assert_uint_eq(nna, nnb);
		for (j = 0; j < nna; j++)
			ck_assert_str_eq(na[j], nb[j]);
	}
	ck_assert_int_eq(cx_repo_list(b, "root", &ar, &nb, &nnb, &e), CX_EREJECT);
	cx_arena_free(&ar);
}

START_TEST(test_tgz_same_as_dir)
{
	static const char *flavours[] = {
	    "tar czf '%1$s/t.tgz' -C '%1$s/tree' .",
	    "tar czf '%1$s/t.tgz' -C '%1$s/tree' root repo keys packages",
	    "tar czf '%1$s/t.tgz' -C '%1$s' tree",
	    "tar czf '%1$s/t.tgz' --format=pax -C '%1$s' tree",
	    "tar czf '%1$s/t.tgz' --format=ustar -C '%1$s/tree' .",
	    "tar czf '%1$s/t.tgz' --format=gnu --no-recursion -C '%1$s/tree' root repo "
	    "$(cd '%1$s/tree' && find keys packages -type f)",
	    "cd '%1$s/tree' && tar cf - . | gzip -9 > ../t.tgz",
	    "cd '%1$s/tree' && " GIT "init -q && " GIT "add -A && " GIT "commit -qm x && " GIT
	    "archive --format=tar.gz --prefix=opam-repository/ -o ../t.tgz HEAD && rm -rf .git",
	};
	char *top = cx_test_tmpdir(), *tree = join(top, "tree"), *tgz = join(top, "t.tgz"), *src;
	struct cx_repo *rd, *rt;
	size_t i;

	src = make_tree();
	ck_assert_int_eq(cx_test_sh("mv '%s' '%s'", src, tree), 0);
	rd = open_ok(tree);
	for (i = 0; i < sizeof(flavours) / sizeof(*flavours); i++) {
		ck_assert_msg(cx_test_sh(flavours[i], top) == 0, "%s", flavours[i]);
		rt = open_ok(tgz);
		assert_same_view(rd, rt);
		cx_repo_close(rt);
		unlink(tgz);
	}
	cx_repo_close(rd);
	cx_test_rm_rf(top);
	free(src);
	free(tree);
	free(tgz);
	free(top);
}
END_TEST

START_TEST(test_tgz_symlinks)
{
	char *top = cx_test_tmpdir(), *tree = join(top, "tree"), *tgz = join(top, "t.tgz"), *src;
	struct cx_err e = {0};
	struct cx_file_list l;
	struct cx_arena a;
	const char **names;
	struct cx_buf b;
	struct cx_repo *r;
	size_t n;

	src = make_tree();
	ck_assert_int_eq(cx_test_sh("mv '%s' '%s'", src, tree), 0);
	cx_buf_init(&b, 0);
	cx_arena_init(&a, 0);
	/* a stray symlink at the top does not spoil the archive */
	ck_assert_int_eq(cx_test_sh("cd '%s' && ln -s root stray && mkfifo keys/pipe && "
	                            "ln -s ../a.1 packages/a-b/a.2 && tar czf ../t.tgz .",
	                     tree),
	    0);
	r = open_ok(tgz);
	ck_assert_int_eq(cx_repo_read(r, "stray", 100, &b, &e), CX_EREJECT);
	ck_assert_str_eq(e.msg, "stray: is a symlink");
	ck_assert_int_eq(cx_repo_exists(r, "stray", &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_read(r, "keys/pipe", 100, &b, &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_list(r, "", &a, &names, &n, &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_list(r, "keys", &a, &names, &n, &e), CX_EREJECT);
	ck_assert_int_eq(cx_repo_walk(r, "packages", &l, &e), CX_EREJECT);
	ck_assert_str_eq(e.msg, "packages/a-b/a.2: is a symlink");
	ck_assert_int_eq(cx_repo_read(r, "packages/a-b/a.2/opam", 100, &b, &e), CX_EREJECT);
	ck_assert_str_eq(e.msg, "packages/a-b/a.2: is a symlink");
	ck_assert_int_eq(cx_repo_walk(r, "packages/a-b/a.2", &l, &e), CX_EREJECT);
	walk_ok(r, "packages/a", &l);
	ck_assert_uint_eq(l.n, 2);
	cx_file_list_free(&l);
	ck_assert_int_eq(cx_repo_read(r, "root", 100, &b, &e), 0);
	cx_repo_close(r);
	cx_arena_free(&a);
	cx_buf_free(&b);
	cx_test_rm_rf(top);
	free(src);
	free(tree);
	free(tgz);
	free(top);
}
END_TEST

START_TEST(test_tgz_bad_archives)
{
	char *top = cx_test_tmpdir(), *tgz = join(top, "bad.tgz");
	struct cx_err e = {0};

	cx_test_write_str(top, "d/sub/x", "x\n");
	cx_test_write_str(top, "d/f", "f\n");
	/* '..' */
	ck_assert_int_eq(cx_test_sh("cd '%s/d/sub' && tar czPf '%s' ../f x", top, tgz), 0);
	ck_assert_int_eq(open_fails(tgz, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "../f") != NULL, "%s", e.msg);
	/* absolute */
	ck_assert_int_eq(cx_test_sh("tar czPf '%s' '%s/d/f'", tgz, top), 0);
	ck_assert_int_eq(open_fails(tgz, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "unsafe path") != NULL, "%s", e.msg);
	/* a duplicate */
	ck_assert_int_eq(cx_test_sh("tar czf '%s' -C '%s/d' f sub/x f", tgz, top), 0);
	ck_assert_int_eq(open_fails(tgz, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "twice") != NULL, "%s", e.msg);
	/* a file with a member below it */
	ck_assert_int_eq(
	    cx_test_sh("cd '%s' && tar cf a.tar -C d f && mkdir -p y/f && "
	               "echo z > y/f/z && tar rf a.tar -C y f/z && gzip -c a.tar > '%s'",
	        top, tgz),
	    0);
	ck_assert_int_eq(open_fails(tgz, &e), CX_EREJECT);
	/* corrupted deflate data / CRC, truncation, trailing garbage */
	ck_assert_int_eq(cx_test_sh("tar czf '%s' -C '%s' d && printf '\\377\\377\\377' | "
	                            "dd of='%s' bs=1 seek=40 conv=notrunc 2>/dev/null",
	                     tgz, top, tgz),
	    0);
	ck_assert_int_eq(open_fails(tgz, &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "gzip") != NULL, "%s", e.msg);
	ck_assert_int_eq(cx_test_sh("tar czf '%s.full' -C '%s' d && head -c 60 '%s.full' > '%s'",
	                     tgz, top, tgz, tgz),
	    0);
	ck_assert_int_eq(open_fails(tgz, &e), CX_EPARSE);
	ck_assert_int_eq(
	    cx_test_sh("cat '%s.full' > '%s' && echo garbage >> '%s'", tgz, tgz, tgz), 0);
	ck_assert_int_eq(open_fails(tgz, &e), CX_EPARSE);
	/* a gzip of something that is not a tar */
	ck_assert_int_eq(cx_test_sh("echo hello | gzip > '%s'", tgz), 0);
	ck_assert_int_eq(open_fails(tgz, &e), CX_EPARSE);
	/* a tar header with a broken checksum */
	ck_assert_int_eq(cx_test_sh("cd '%s' && tar cf b.tar -C d f && printf 'X' | dd of=b.tar "
	                            "bs=1 seek=0 conv=notrunc 2>/dev/null && gzip -c b.tar > '%s'",
	                     top, tgz),
	    0);
	ck_assert_int_eq(open_fails(tgz, &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "checksum") != NULL, "%s", e.msg);
	cx_test_rm_rf(top);
	free(tgz);
	free(top);
}
END_TEST

/* Two concatenated gzip members are one stream (RFC 1952). */
START_TEST(test_tgz_multi_member)
{
	char *top = cx_test_tmpdir(), *tgz = join(top, "m.tgz");
	struct cx_err e = {0};
	struct cx_repo *r;
	struct cx_buf b;

	cx_test_write_str(top, "d/f", "f\n");
	ck_assert_int_eq(cx_test_sh("cd '%s' && tar cf a.tar -C d f && head -c 1000 a.tar | gzip "
	                            "> '%s' && tail -c +1001 a.tar | gzip >> '%s'",
	                     top, tgz, tgz),
	    0);
	r = open_ok(tgz);
	cx_buf_init(&b, 0);
	ck_assert_int_eq(cx_repo_read(r, "f", 10, &b, &e), 0);
	ck_assert_mem_eq(b.d, "f\n", 2);
	cx_buf_free(&b);
	cx_repo_close(r);
	cx_test_rm_rf(top);
	free(tgz);
	free(top);
}
END_TEST

/* ---- patched view ---- */

struct patched {
	uint8_t *data;
	struct cx_patch *p;
	struct cx_repo *base, *view;
};

static void
patched_open(struct patched *P, const char *base, const char *patchfile)
{
	struct cx_err e = {0};
	size_t len;
	int rc;

	ck_assert_ptr_nonnull(P->data = cx_test_read(patchfile, &len));
	rc = cx_patch_parse(P->data, len, patchfile, &P->p, &e);
	ck_assert_msg(rc == 0, "parse: %s", e.msg);
	P->base = open_ok(base);
	rc = cx_repo_open_patched(&P->view, P->base, P->p, &e);
	ck_assert_msg(rc == 0, "open_patched: %d %s", rc, e.msg);
}

static void
patched_close(struct patched *P)
{
	cx_repo_close(P->view);
	cx_repo_close(P->base);
	cx_patch_free(P->p);
	free(P->data);
}

/* old/ and new/ trees under top; new/ = old/ with an edit, a create, a delete. */
static void
make_old_new(const char *top)
{
	char *old = join(top, "old");

	ck_assert_int_eq(cx_test_sh("mkdir -p '%s' && cp -a '%s' '%s/new'", old, old, top), 0);
	free(old);
}

START_TEST(test_patched_diff)
{
	char *top = cx_test_tmpdir(), *src = make_tree(), *oldd = join(top, "old"),
	     *newd = join(top, "new"), *pf = join(top, "p.diff"), *tgz = join(top, "old.tgz");
	struct cx_file_list lv, ln;
	struct cx_err e = {0};
	struct patched P;
	struct cx_repo *rn;
	struct cx_buf b, bn;
	struct cx_arena a;
	const char **names;
	size_t n;

	ck_assert_int_eq(cx_test_sh("mv '%s' '%s'", src, oldd), 0);
	make_old_new(top);
	ck_assert_int_eq(
	    cx_test_sh("cd '%s' && printf 'a 1\\nnew line\\n' > packages/a/a.1/opam && "
	               "rm keys/bob && echo carol > keys/carol && "
	               "mkdir -p packages/c/c.1 && echo c > packages/c/c.1/opam && "
	               "echo extra >> packages/big/big.1/files/data",
	        newd),
	    0);
	/* diff exits 1 when the trees differ */
	ck_assert_int_eq(cx_test_sh("cd '%s' && diff -ruaN old new > p.diff", top), 1);
	patched_open(&P, oldd, pf);
	rn = open_ok(newd);
	/* the patched old tree is the new tree */
	walk_ok(P.view, "", &lv);
	walk_ok(rn, "", &ln);
	assert_lists_equal(&lv, &ln);
	cx_file_list_free(&lv);
	cx_file_list_free(&ln);
	walk_ok(P.view, "packages/a", &lv);
	walk_ok(rn, "packages/a", &ln);
	assert_lists_equal(&lv, &ln);
	cx_file_list_free(&lv);
	cx_file_list_free(&ln);
	cx_buf_init(&b, 0);
	cx_buf_init(&bn, 0);
	ck_assert_int_eq(cx_repo_read(P.view, "packages/a/a.1/opam", 100, &b, &e), 0);
	ck_assert_int_eq(cx_repo_read(rn, "packages/a/a.1/opam", 100, &bn, &e), 0);
	ck_assert_uint_eq(b.len, bn.len);
	ck_assert_mem_eq(b.d, bn.d, b.len);
	ck_assert_int_eq(cx_repo_read(P.view, "packages/a/a.1/opam", 5, &b, &e), CX_ETOOBIG);
	ck_assert_int_eq(cx_repo_read(P.view, "keys/carol", 100, &b, &e), 0);
	ck_assert_mem_eq(b.d, "carol\n", 6);
	ck_assert_int_eq(cx_repo_read(P.view, "keys/bob", 100, &b, &e), CX_ENOENT);
	ck_assert_msg(strstr(e.msg, "keys/bob") != NULL, "%s", e.msg);
	ck_assert_int_eq(cx_repo_exists(P.view, "keys/bob", &e), 0);
	ck_assert_int_eq(cx_repo_exists(P.view, "keys/carol", &e), 1);
	ck_assert_int_eq(cx_repo_exists(P.view, "keys/alice", &e), 1);
	ck_assert_int_eq(cx_repo_read(P.view, "root", 100, &b, &e), 0);
	ck_assert_int_eq(cx_repo_read(P.view, "packages/c", 100, &b, &e), CX_EREJECT);
	cx_arena_init(&a, 0);
	ck_assert_int_eq(cx_repo_list(P.view, "keys", &a, &names, &n, &e), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(names[0], "alice");
	ck_assert_str_eq(names[1], "carol");
	ck_assert_int_eq(cx_repo_list(P.view, "packages/c/c.1", &a, &names, &n, &e), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(names[0], "opam");
	cx_arena_free(&a);
	patched_close(&P);
	/* the same over the tarball of the old tree */
	ck_assert_int_eq(cx_test_sh("tar czf '%s' -C '%s' old", tgz, top), 0);
	patched_open(&P, tgz, pf);
	walk_ok(P.view, "", &lv);
	walk_ok(rn, "", &ln);
	assert_lists_equal(&lv, &ln);
	cx_file_list_free(&lv);
	cx_file_list_free(&ln);
	patched_close(&P);
	cx_repo_close(rn);
	cx_buf_free(&b);
	cx_buf_free(&bn);
	cx_test_rm_rf(top);
	free(src);
	free(oldd);
	free(newd);
	free(pf);
	free(tgz);
	free(top);
}
END_TEST

START_TEST(test_patched_git_rename)
{
	char *top = cx_test_tmpdir(), *src = make_tree(), *g = join(top, "g"),
	     *pf = join(top, "p.diff");
	struct cx_file_list lv, ln;
	struct cx_err e = {0};
	struct cx_repo *rn;
	struct patched P;
	struct cx_buf b;

	ck_assert_int_eq(cx_test_sh("mv '%s' '%s'", src, g), 0);
	ck_assert_int_eq(
	    cx_test_sh("cd '%s' && " GIT "init -q && " GIT "add -A && " GIT "commit -qm base && "
	               "cp -a . ../old && rm -rf ../old/.git && " GIT
	               "mv packages/a.c packages/a.d && "
	               "printf 'x\\n' >> packages/a.d/a.c.2/opam && " GIT "add -A && " GIT
	               "diff --cached -M > ../p.diff && " GIT "commit -qm new",
	        g),
	    0);
	ck_assert_int_eq(cx_test_sh("grep -q '^rename from packages/a.c/a.c.2/opam' '%s'", pf), 0);
	{
		char *oldd = join(top, "old");

		patched_open(&P, oldd, pf);
		free(oldd);
	}
	rn = open_ok(g);
	walk_ok(P.view, "packages", &lv);
	walk_ok(rn, "packages", &ln);
	assert_lists_equal(&lv, &ln);
	cx_file_list_free(&lv);
	cx_file_list_free(&ln);
	cx_buf_init(&b, 0);
	ck_assert_int_eq(cx_repo_read(P.view, "packages/a.c/a.c.2/opam", 100, &b, &e), CX_ENOENT);
	ck_assert_msg(strstr(e.msg, "renamed") != NULL, "%s", e.msg);
	ck_assert_int_eq(cx_repo_read(P.view, "packages/a.d/a.c.2/opam", 100, &b, &e), 0);
	ck_assert_mem_eq(b.d, "a.c\nx\n", 6);
	cx_buf_free(&b);
	patched_close(&P);
	cx_repo_close(rn);
	cx_test_rm_rf(top);
	free(src);
	free(g);
	free(pf);
	free(top);
}
END_TEST

START_TEST(test_patched_rejects)
{
	char *top = cx_test_tmpdir(), *src = make_tree(), *oldd = join(top, "old"),
	     *pf = join(top, "p.diff");
	struct cx_err e = {0};
	struct cx_file_list l;
	struct cx_repo *base, *v = NULL;
	struct cx_patch *p;
	struct cx_buf b;
	uint8_t *data;
	size_t len;

	ck_assert_int_eq(cx_test_sh("mv '%s' '%s'", src, oldd), 0);
	base = open_ok(oldd);
	/* creates a file that exists */
	cx_test_write_str(top, "p.diff",
	    "diff -ruaN old/keys/alice new/keys/alice\n"
	    "--- old/keys/alice\t1970-01-01 00:00:00.000000000 +0000\n"
	    "+++ new/keys/alice\t2025-01-01 00:00:00.000000000 +0000\n"
	    "@@ -0,0 +1 @@\n+alice2\n");
	ck_assert_ptr_nonnull(data = cx_test_read(pf, &len));
	ck_assert_int_eq(cx_patch_parse(data, len, "p.diff", &p, &e), 0);
	ck_assert_int_eq(cx_repo_open_patched(&v, base, p, &e), CX_EREJECT);
	ck_assert_msg(
	    strstr(e.msg, "keys/alice") != NULL && strstr(e.msg, "exists") != NULL, "%s", e.msg);
	ck_assert_ptr_null(v);
	cx_patch_free(p);
	free(data);
	/* edits a file that does not exist */
	cx_test_write_str(
	    top, "p.diff", "--- old/keys/zed\n+++ new/keys/zed\n@@ -1 +1 @@\n-zed\n+zed2\n");
	ck_assert_ptr_nonnull(data = cx_test_read(pf, &len));
	ck_assert_int_eq(cx_patch_parse(data, len, "p.diff", &p, &e), 0);
	ck_assert_int_eq(cx_repo_open_patched(&v, base, p, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "keys/zed") != NULL && strstr(e.msg, "does not exist") != NULL,
	    "%s", e.msg);
	cx_patch_free(p);
	free(data);
	/* does not apply: the context is wrong */
	cx_test_write_str(top, "p.diff",
	    "--- old/keys/alice\n+++ new/keys/alice\n@@ -1 +1 @@\n-alicia\n+alice2\n");
	ck_assert_ptr_nonnull(data = cx_test_read(pf, &len));
	ck_assert_int_eq(cx_patch_parse(data, len, "p.diff", &p, &e), 0);
	ck_assert_int_eq(cx_repo_open_patched(&v, base, p, &e), 0);
	cx_buf_init(&b, 0);
	ck_assert_int_eq(cx_repo_read(v, "keys/alice", 100, &b, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "keys/alice") != NULL, "%s", e.msg);
	ck_assert_int_eq(cx_repo_walk(v, "keys", &l, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "keys/alice") != NULL, "%s", e.msg);
	/* untouched paths still read */
	ck_assert_int_eq(cx_repo_read(v, "keys/bob", 100, &b, &e), 0);
	walk_ok(v, "packages", &l);
	ck_assert_uint_eq(l.n, 8);
	cx_file_list_free(&l);
	cx_buf_free(&b);
	cx_repo_close(v);
	cx_patch_free(p);
	free(data);
	cx_repo_close(base);
	cx_test_rm_rf(top);
	free(src);
	free(oldd);
	free(pf);
	free(top);
}
END_TEST

/* The real repository snapshot, when shared/ has it: the archive and its extraction agree. */
START_TEST(test_opam_repository)
{
	const char *sh = cx_test_shared();
	char *tgz, *top;
	struct cx_file_list lt, ld;
	struct cx_repo *rt, *rd;

	if (sh == NULL || asprintf(&tgz, "%s/data/opam-repository-2025-01-01.tar.gz", sh) < 0)
		return;
	if (access(tgz, R_OK) != 0) {
		free(tgz);
		return;
	}
	top = cx_test_tmpdir();
	ck_assert_int_eq(cx_test_sh("tar xzf '%s' -C '%s'", tgz, top), 0);
	rt = open_ok(tgz);
	walk_ok(rt, "packages", &lt);
	ck_assert_uint_gt(lt.n, 30000);
	{
		char *d = join(top, "opam-repository");

		rd = open_ok(d);
		free(d);
	}
	walk_ok(rd, "packages", &ld);
	assert_lists_equal(&lt, &ld);
	cx_file_list_free(&lt);
	cx_file_list_free(&ld);
	cx_repo_close(rt);
	cx_repo_close(rd);
	cx_test_rm_rf(top);
	free(top);
	free(tgz);
}
END_TEST

static Suite *
repo_suite(void)
{
	Suite *s = suite_create("repo");
	TCase *tc;

	tc = tcase_create("dir");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_path_check);
	tcase_add_test(tc, test_dir_walk);
	tcase_add_test(tc, test_dir_read);
	tcase_add_test(tc, test_dir_list);
	tcase_add_test(tc, test_dir_symlinks);
	tcase_add_test(tc, test_dir_fifo);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);
	tc = tcase_create("tgz");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_tgz_same_as_dir);
	tcase_add_test(tc, test_tgz_symlinks);
	tcase_add_test(tc, test_tgz_bad_archives);
	tcase_add_test(tc, test_tgz_multi_member);
	tcase_add_test(tc, test_opam_repository);
	suite_add_tcase(s, tc);
	tc = tcase_create("patched");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_patched_diff);
	tcase_add_test(tc, test_patched_git_rename);
	tcase_add_test(tc, test_patched_rejects);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(repo_suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
