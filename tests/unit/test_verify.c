/* Full and incremental verification of repositories built and signed here. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conex/repo.h"
#include "conex/verify.h"
#include "tests/lib/repobuild.h"
#include "tests/unit/testutil.h"

#define NOW 1764000000 /* 2025-11-24T16:00:00Z */

static const char OPAM1[] = "opam-version: \"2.0\"\nname: \"foo\"\n";

static void
world(struct rb_world *w, char **dir)
{
	*dir = cx_test_tmpdir();
	rb_world_init(w, *dir, 3, 2, CX_KEY_ED25519, NOW);
	rb_world_file(w, "packages/foo/foo.1.0.0/opam", OPAM1);
	rb_world_file(w, "packages/foo/foo.1.0.0/files/fix.patch", "--- a\n+++ b\n");
	rb_world_file(w, "packages/bar/bar.0.1/opam", "opam-version: \"2.0\"\n");
	rb_world_sign_all(w);
}

START_TEST(test_world_verifies)
{
	struct rb_world w;
	struct cx_err e = {0};
	char *dir;

	world(&w, &dir);
	ck_assert_msg(rb_world_verify(&w, dir, &e) == 0, "%s", e.msg);
	rb_world_free(&w);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_unsigned_file_rejected)
{
	struct rb_world w;
	struct cx_err e = {0};
	char *dir;

	world(&w, &dir);
	/* a script changed in an unsigned files/ folder ran at install time with upstream */
	rb_world_file(&w, "packages/foo/foo.1.0.0/files/evil.sh", "rm -rf ~\n");
	ck_assert_int_eq(rb_world_verify(&w, dir, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "files/evil.sh") != NULL, "%s", e.msg);
	rb_world_free(&w);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* The real repository signed by upstream's tools: accepted at its time, stale today. */
START_TEST(test_testrepo)
{
	const char *anchors[] = {
	    "3aedc7043e771efc42a3c3e6b60fa6baeb2c26c2d57f994c632bae98a09af701"};
	const char *sh = cx_test_shared();
	struct cx_verify_opts o = {0};
	struct cx_verify_result res;
	struct cx_repo *repo;
	struct cx_err e = {0};
	char path[4096];

	if (sh == NULL) {
		fprintf(stderr, "SKIP: ../shared absent\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/vectors/testrepo", sh);
	ck_assert_msg(cx_repo_open(&repo, path, &e) == 0, "%s", e.msg);
	o.anchors = anchors;
	o.nanchors = 1;
	o.quorum = 1;
	o.root_name = "root";
	o.opam = 1;
	o.strict = 1;
	o.expiry = 900;
	ck_assert_int_eq(cx_time_parse("2025-10-02T08:45:00Z", &o.now), 0);
	ck_assert_msg(cx_verify_full(repo, &o, &res, &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(res.ndata, 2);
	ck_assert_uint_eq(res.ntargets, 3);
	ck_assert_uint_eq(res.c.ts_counter, 2);
	ck_assert_uint_eq(res.c.snap_counter, 4);
	ck_assert_uint_eq(res.c.root_counter, 8);
	/* a day later the same timestamp is stale */
	o.now += 86400;
	ck_assert_int_eq(cx_verify_full(repo, &o, &res, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "stale") != NULL, "%s", e.msg);
	/* another anchor: the root is not trusted */
	o.now -= 86400;
	anchors[0] = "2ad4be04dc2975ffb535051182bfd3b50bc335eca8217bee157f28459794d0df";
	ck_assert_int_eq(cx_verify_full(repo, &o, &res, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "root") != NULL, "%s", e.msg);
	/* a quorum of two anchored keys cannot be met by rootA alone */
	anchors[0] = "3aedc7043e771efc42a3c3e6b60fa6baeb2c26c2d57f994c632bae98a09af701";
	o.quorum = 2;
	ck_assert_int_eq(cx_verify_full(repo, &o, &res, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "quorum") != NULL, "%s", e.msg);
	cx_repo_close(repo);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("verify");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int nf;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_world_verifies);
	tcase_add_test(tc, test_unsigned_file_rejected);
	tcase_add_test(tc, test_testrepo);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
