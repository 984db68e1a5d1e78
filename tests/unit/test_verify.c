/* Full and incremental verification of repositories built and signed here. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
