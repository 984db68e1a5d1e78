/*
 * Local trust overrides (docs/trust-overrides.md): pinning and replacing the
 * identities trusted for some package paths, without changing the repository.
 * Worlds from tests/lib/repobuild: maintainers m1, m2 (quorum 1) sign every
 * package; "alice" is an author identity in keydir nobody delegates to;
 * "company" lives only in an overlay's keys/.
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conex/overrides.h"
#include "conex/patch.h"
#include "conex/repo.h"
#include "conex/verify.h"
#include "tests/lib/repobuild.h"
#include "tests/unit/testutil.h"

#define NOW 1764000000 /* 2025-11-24T16:00:00Z */
#define ALG CX_KEY_ED25519

static const char OPAM_FOO[] = "opam-version: \"2.0\"\nname: \"foo\"\n";
static const char OPAM_FORK[] = "opam-version: \"2.0\"\nname: \"foo\"\n# company fork\n";
static const char *const FOO[] = {"packages/foo"};

struct fx {
	struct rb_world w;
	struct rb_key *alice, *company;
	struct cx_resource *ralice, *rcompany;
	char *tmp, *base;
	char alice_hash[CX_SHA256_HEX + 1], company_hash[CX_SHA256_HEX + 1];
	const char *anchors[1];
	char *p[32];
	int np;
};

static const char *fx_path(struct fx *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *
fx_path(struct fx *f, const char *fmt, ...)
{
	va_list ap;
	char *rel, *p;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&rel, fmt, ap), 0);
	va_end(ap);
	ck_assert_int_ge(asprintf(&p, "%s/%s", f->tmp, rel), 0);
	free(rel);
	ck_assert_int_lt(f->np, 32);
	f->p[f->np++] = p;
	return p;
}

static void
fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->tmp = cx_test_tmpdir();
	f->base = strdup(fx_path(f, "v1"));
	rb_world_init(&f->w, f->base, 2, 1, ALG, NOW);
	rb_world_file(&f->w, "packages/foo/foo.1.0.0/opam", OPAM_FOO);
	rb_world_file(&f->w, "packages/bar/bar.0.1/opam", OPAM_FOO);
	rb_world_sign_all(&f->w);
	/* alice signs foo in keydir; nothing delegates to her upstream */
	f->alice = rb_key_gen("alice", ALG);
	f->ralice = rb_world_identity(&f->w, f->alice);
	rb_world_sign_targets(&f->w, f->ralice, f->alice, FOO, 1);
	rb_key_hash(f->ralice, f->alice_hash);
	rb_world_sign_snapshot_keydir(&f->w);
	rb_world_sign_timestamp(&f->w);
	f->company = rb_key_gen("company", ALG);
	f->rcompany = rb_world_identity(&f->w, f->company);
	rb_key_hash(f->rcompany, f->company_hash);
	f->anchors[0] = f->w.root->keyid;
}

static void
fx_free(struct fx *f)
{
	rb_key_free(f->alice);
	rb_key_free(f->company);
	rb_world_free(&f->w);
	cx_test_rm_rf(f->tmp);
	free(f->tmp);
	free(f->base);
	for (int i = 0; i < f->np; i++)
		free(f->p[i]);
}

static const char *
fx_copy(struct fx *f, const char *from, const char *name)
{
	const char *dst = fx_path(f, "%s", name);

	rb_copy_tree(from, dst);
	rb_world_set_dir(&f->w, dst);
	return dst;
}

/* An overlay tmp/name whose overrides give path to id with this key hash and epoch. */
static const char *
overlay(struct fx *f, const char *name, const char *path, const char *id, const char *hash,
    unsigned epoch)
{
	const char *dir = fx_path(f, "%s", name);
	char *s;

	ck_assert_int_ge(
	    asprintf(&s,
	        "# local trust: %s\noverrides: [\n  [ [paths [ \"%s\" ]]\n    [valid [ %s "
	        "\"sha256=%s\" 0x%x ]] ]\n]\n",
	        name, path, id, hash, epoch),
	    0);
	ck_assert_int_eq(cx_test_sh("mkdir -p '%s'", dir), 0);
	cx_test_write_str(dir, "overrides", s);
	free(s);
	return dir;
}

static void
opts(struct fx *f, struct cx_verify_opts *o, const struct cx_overrides *ov)
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
	o->overrides = ov;
}

/* Full verification of dir with the given overlays (NULL-terminated). */
static int
vfy(struct fx *f, const char *dir, const char *const *ovls, struct cx_err *e)
{
	struct cx_overrides ov;
	struct cx_verify_opts o;
	struct cx_verify_result res;
	struct cx_repo *repo;
	int r;

	cx_overrides_init(&ov);
	for (; ovls != NULL && *ovls != NULL; ovls++)
		ck_assert_msg(cx_overrides_add_dir(&ov, *ovls, e) == 0, "%s", e->msg);
	opts(f, &o, ovls != NULL ? &ov : NULL);
	ck_assert_int_eq(cx_repo_open(&repo, dir, e), 0);
	r = cx_verify_full(repo, &o, &res, e);
	cx_repo_close(repo);
	cx_overrides_free(&ov);
	return r;
}

START_TEST(test_pin)
{
	struct fx f;
	struct cx_err e;
	const char *pin, *v2;
	const char *ovl[2] = {NULL, NULL};
	struct rb_key *alice2;

	fx_init(&f);
	pin = overlay(&f, "pin", "packages/foo", "alice", f.alice_hash, 0);
	ovl[0] = pin;
	ck_assert_msg(vfy(&f, f.base, NULL, &e) == 0, "%s", e.msg);
	ck_assert_msg(vfy(&f, f.base, ovl, &e) == 0, "%s", e.msg);

	/* upstream rotates alice: the pin no longer matches, foo is refused until it is updated */
	v2 = fx_copy(&f, f.base, "v2");
	alice2 = rb_key_gen("alice", ALG);
	f.ralice = rb_world_identity(&f.w, alice2);
	f.ralice->epoch = 1;
	rb_world_sign_targets(&f.w, f.ralice, alice2, FOO, 1);
	rb_world_sign_snapshot_keydir(&f.w);
	rb_world_sign_timestamp(&f.w);
	ck_assert_msg(vfy(&f, v2, NULL, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(vfy(&f, v2, ovl, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "local override of packages/foo") != NULL, "%s", e.msg);
	ck_assert_msg(strstr(e.msg, "/pin/overrides:3:") != NULL, "%s", e.msg);
	ck_assert_msg(strstr(e.msg, "rotated? update the override") != NULL, "%s", e.msg);
	/* the user updates the pin: accepted again */
	{
		char h[CX_SHA256_HEX + 1];
		rb_key_hash(f.ralice, h);
		ovl[0] = overlay(&f, "pin2", "packages/foo", "alice", h, 1);
		ck_assert_msg(vfy(&f, v2, ovl, &e) == 0, "%s", e.msg);
	}
	rb_key_free(alice2);
	fx_free(&f);
}
END_TEST

/* The company's fork of foo: its own identity in the overlay, upstream's signatures ignored. */
START_TEST(test_replace)
{
	struct fx f;
	struct cx_err e;
	const char *fork, *ovl[2] = {NULL, NULL}, *cdir;
	char *src, *dst;

	fx_init(&f);
	fork = fx_copy(&f, f.base, "fork");
	rb_world_file(&f.w, "packages/foo/foo.1.0.0/opam", OPAM_FORK);
	/* the company signs its fork; its identity file lives in the overlay only */
	rb_world_sign_targets(&f.w, f.rcompany, f.company, FOO, 1);
	cdir = overlay(&f, "company", "packages/foo", "company", f.company_hash, 0);
	ck_assert_int_ge(asprintf(&src, "%s/keys/company", fork), 0);
	ck_assert_int_ge(asprintf(&dst, "%s/keys", cdir), 0);
	ck_assert_int_eq(mkdir(dst, 0755), 0);
	free(dst);
	ck_assert_int_ge(asprintf(&dst, "%s/keys/company", cdir), 0);
	ck_assert_int_eq(rename(src, dst), 0);
	free(src);
	free(dst);
	ovl[0] = cdir;
	/* upstream's maintainers list other bytes for foo: rejected without the overlay */
	ck_assert_int_eq(vfy(&f, fork, NULL, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "packages/foo/foo.1.0.0/opam") != NULL, "%s", e.msg);
	ck_assert_msg(vfy(&f, fork, ovl, &e) == 0, "%s", e.msg);
	/* conex check with the overlay agrees, and names the override as what governs foo */
	ck_assert_int_eq(cx_test_sh("'%s/conex' check -t sha256=%s -r '%s' --now %s --overlay '%s' "
	                            ">'%s/out' 2>&1",
	                     CX_BUILD_DIR, f.w.root->keyid, fork, f.w.created, cdir, f.tmp),
	    0);
	ck_assert_int_eq(cx_test_sh("grep -q 'packages/foo/foo.1.0.0/opam: OK: company (local "
	                            "override of packages/foo (%s/overrides:3:' '%s/out'",
	                     cdir, f.tmp),
	    0);
	ck_assert_int_eq(cx_test_sh("'%s/conex' verify -t sha256=%s --dir '%s' --now %s "
	                            "--no-state --overlay '%s' >/dev/null 2>&1",
	                     CX_BUILD_DIR, f.w.root->keyid, fork, f.w.created, cdir),
	    0);

	/* a new release under the override that the company did not sign: rejected, though
	 * upstream's maintainers sign it */
	rb_world_file(&f.w, "packages/foo/foo.3.0.0/opam", OPAM_FOO);
	rb_world_sign_maintainer(&f.w, 0);
	rb_world_sign_snapshot_keydir(&f.w);
	rb_world_sign_timestamp(&f.w);
	ck_assert_int_eq(vfy(&f, fork, ovl, &e), CX_EREJECT);
	ck_assert_msg(
	    strstr(e.msg, "packages/foo/foo.3.0.0/opam is not covered") != NULL, "%s", e.msg);
	fx_free(&f);
}
END_TEST

/* Upstream delegations at or below an override are not followed. */
START_TEST(test_upstream_delegation_ignored)
{
	struct fx f;
	struct cx_err e;
	const char *v2, *ovl[2] = {NULL, NULL};
	struct cx_keyref ref;

	fx_init(&f);
	v2 = fx_copy(&f, f.base, "v2");
	/* m1 delegates packages/foo to alice; alice also lists bar (outside her delegation) */
	ref = rb_remote("alice", f.alice_hash, 0);
	rb_add_delegation(&f.w.a, f.w.rm[0], "packages/foo", rb_quorum(&f.w.a, 1, &ref, 1), 1);
	rb_world_sign_maintainer(&f.w, 0);
	rb_world_sign_snapshot_keydir(&f.w);
	rb_world_sign_timestamp(&f.w);
	ck_assert_msg(vfy(&f, v2, NULL, &e) == 0, "%s", e.msg);
	/* the company overrides foo but signs nothing: foo is no longer covered */
	ovl[0] = overlay(&f, "c", "packages/foo", "company", f.company_hash, 0);
	ck_assert_int_eq(vfy(&f, v2, ovl, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "local override of packages/foo") != NULL, "%s", e.msg);
	ck_assert_msg(strstr(e.msg, "company:") != NULL, "%s", e.msg);
	/* an override of bar does not touch foo's delegation */
	ovl[0] = overlay(&f, "b", "packages/bar", "alice", f.alice_hash, 0);
	ck_assert_int_eq(vfy(&f, v2, ovl, &e), CX_EREJECT); /* alice does not sign bar */
	ck_assert_msg(
	    strstr(e.msg, "packages/bar/bar.0.1/opam is not covered") != NULL, "%s", e.msg);
	fx_free(&f);
}
END_TEST

START_TEST(test_incremental)
{
	struct fx f;
	struct cx_err e;
	struct cx_overrides ov;
	struct cx_verify_opts o;
	struct cx_verify_result res;
	struct cx_patch *p = NULL;
	struct cx_repo *old;
	struct rb_key *alice2;
	uint8_t *d;
	size_t len;
	const char *pin;

	fx_init(&f);
	pin = overlay(&f, "pin", "packages/foo", "alice", f.alice_hash, 0);
	fx_copy(&f, f.base, "v2");
	alice2 = rb_key_gen("alice", ALG);
	f.ralice = rb_world_identity(&f.w, alice2);
	f.ralice->epoch = 1;
	rb_world_sign_targets(&f.w, f.ralice, alice2, FOO, 1);
	rb_world_sign_snapshot_keydir(&f.w);
	rb_world_sign_timestamp(&f.w);
	d = rb_diff_ruaN(f.tmp, "v1", "v2", &len);
	ck_assert_int_eq(cx_patch_parse(d, len, "u.diff", &p, &e), 0);
	ck_assert_int_eq(cx_repo_open(&old, f.base, &e), 0);
	opts(&f, &o, NULL);
	ck_assert_msg(cx_verify_incremental(old, p, &o, &res, &e) == 0, "%s", e.msg);
	cx_overrides_init(&ov);
	ck_assert_int_eq(cx_overrides_add_dir(&ov, pin, &e), 0);
	opts(&f, &o, &ov);
	ck_assert_int_eq(cx_verify_incremental(old, p, &o, &res, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "local override of packages/foo") != NULL, "%s", e.msg);
	cx_overrides_free(&ov);
	cx_repo_close(old);
	cx_patch_free(p);
	free(d);
	rb_key_free(alice2);
	fx_free(&f);
}
END_TEST

static int
parse(const char *text, struct cx_err *e)
{
	struct cx_overrides ov;
	int r;

	cx_overrides_init(&ov);
	r = cx_overrides_parse(&ov, 0, "ovl/overrides", (const uint8_t *)text, strlen(text), e);
	if (r == 0)
		r = cx_overrides_check(&ov, e);
	cx_overrides_free(&ov);
	return r;
}

#define H64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
/* One override entry in conex's map syntax: [ [paths [...]] [valid ...] ]. */
#define ENTRY(paths, valid) "[ [paths [ " paths " ]] [valid " valid "] ]"
#define REF_A               "[ a \"sha256=" H64 "\" 0x0 ]"

START_TEST(test_malformed)
{
	struct cx_err e;
	struct fx f;
	const char *dir;

	ck_assert_msg(parse("overrides: []\n", &e) == 0, "%s", e.msg);
	ck_assert_msg(
	    parse("overrides: [ " ENTRY("\"packages/foo\" \"packages/bar\"",
	              "(2 [ [ a \"sha256=" H64 "\" 0x0 ] [ b \"sha256=" H64 "\" 0x1 ] ])") " ]\n",
	        &e) == 0,
	    "%s", e.msg);
	ck_assert_int_eq(parse("overrides: [\n  [ [paths [ \"packages/foo\" ]]\n    [valid " REF_A
	                       "]\n    [colour \"red\"] ]\n]\n",
	                     &e),
	    CX_EPARSE);
	ck_assert_str_eq(e.msg,
	    "ovl/overrides:4:13: unknown field 'colour' (an override has paths "
	    "and valid)");
	ck_assert_int_eq(parse("overrides: [ ]\nextra: 1\n", &e), CX_EPARSE);
	ck_assert_msg(
	    strstr(e.msg, "ovl/overrides:2:8: unknown field 'extra'") != NULL, "%s", e.msg);
	ck_assert_int_eq(
	    parse("overrides: [ " ENTRY("\"packages/foo\"", "alice") " ]\n", &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "ovl/overrides:1:50: 'alice' is a local key reference") != NULL,
	    "%s", e.msg);
	ck_assert_int_eq(
	    parse("overrides: [ " ENTRY("\"packages/foo\"", "[ a \"sha256=AB\" 0x0 ]") " ]\n", &e),
	    CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "64 lowercase hex") != NULL, "%s", e.msg);
	ck_assert_int_eq(
	    parse(
	        "overrides: [ " ENTRY("\"packages/foo\"", "[ a \"md5=" H64 "\" 0x0 ]") " ]\n", &e),
	    CX_EPARSE);
	ck_assert_int_eq(parse("overrides: [ " ENTRY("\"../foo\"", REF_A) " ]\n", &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "ovl/overrides:1:25: invalid path") != NULL, "%s", e.msg);
	ck_assert_int_eq(parse("overrides: [ [ [paths []] [valid " REF_A "] ] ]\n", &e), CX_EPARSE);
	ck_assert_int_eq(parse("overrides: [ [ [valid " REF_A "] ] ]\n", &e), CX_EPARSE);
	ck_assert_int_eq(parse("overrides: [ " ENTRY("\"p/foo\"", "(0 [])") " ]\n", &e), CX_EPARSE);
	ck_assert_int_eq(parse("overrides: [ " ENTRY("\"p/foo\"", REF_A), &e), CX_EPARSE);
	ck_assert_int_eq(parse("overrides: emptymap\n", &e), CX_EPARSE);
	ck_assert_int_eq(parse("overrides: [ \"packages/foo\" ]\n", &e), CX_EPARSE);
	/* overlapping paths */
	ck_assert_int_eq(
	    parse(
	        "overrides: [ " ENTRY("\"packages/foo\" \"packages/foo/foo.1\"", REF_A) " ]\n", &e),
	    CX_EINVAL);
	ck_assert_msg(strstr(e.msg, "overlapping local overrides") != NULL, "%s", e.msg);
	ck_assert_int_eq(
	    parse("overrides: [ " ENTRY("\"packages/foo\" \"packages/foobar\"", REF_A) " ]\n", &e),
	    0);

	/* through the command line: a usage error with file:line:col; overlaps across overlays */
	fx_init(&f);
	dir = fx_path(&f, "bad");
	ck_assert_int_eq(cx_test_sh("mkdir -p '%s'", dir), 0);
	cx_test_write_str(
	    dir, "overrides", "overrides: [\n  " ENTRY("\"packages/foo\"", "alice") " ]\n");
	ck_assert_int_eq(cx_test_sh("'%s/conex' verify -t sha256=%s --dir '%s' --now %s --no-state "
	                            "--overlay '%s' 2>'%s/err'",
	                     CX_BUILD_DIR, f.w.root->keyid, f.base, f.w.created, dir, f.tmp),
	    2);
	ck_assert_int_eq(cx_test_sh("grep -q 'conex verify: --overlay: %s/overrides:2:39: .alice. "
	                            "is a local key reference' '%s/err'",
	                     dir, f.tmp),
	    0);
	ck_assert_int_eq(cx_test_sh("'%s/conex' check -t sha256=%s -r '%s' --now %s --overlay '%s' "
	                            ">/dev/null 2>&1",
	                     CX_BUILD_DIR, f.w.root->keyid, f.base, f.w.created, dir),
	    2);
	overlay(&f, "o1", "packages/foo", "alice", f.alice_hash, 0);
	overlay(&f, "o2", "packages/foo/foo.1.0.0", "alice", f.alice_hash, 0);
	ck_assert_int_eq(
	    cx_test_sh("'%s/conex' verify -t sha256=%s --dir '%s' --now %s --no-state "
	               "--overlay '%s/o1' --overlay '%s/o2' 2>'%s/err'",
	        CX_BUILD_DIR, f.w.root->keyid, f.base, f.w.created, f.tmp, f.tmp, f.tmp),
	    2);
	ck_assert_int_eq(cx_test_sh("grep -q 'overlapping local overrides' '%s/err'", f.tmp), 0);
	ck_assert_int_eq(cx_test_sh("'%s/conex' verify -t sha256=%s --dir '%s' --now %s --no-state "
	                            "--overlay '%s/absent' 2>/dev/null",
	                     CX_BUILD_DIR, f.w.root->keyid, f.base, f.w.created, f.tmp),
	    2);
	ck_assert_int_eq(cx_test_sh("'%s/conex' verify -t sha256=%s --dir '%s' --now %s --no-state "
	                            "--overlay '%s/o1' >/dev/null 2>&1",
	                     CX_BUILD_DIR, f.w.root->keyid, f.base, f.w.created, f.tmp),
	    0);
	fx_free(&f);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("overrides");
	TCase *tc = tcase_create("overrides");
	SRunner *sr;
	int nf;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_pin);
	tcase_add_test(tc, test_replace);
	tcase_add_test(tc, test_upstream_delegation_ignored);
	tcase_add_test(tc, test_incremental);
	tcase_add_test(tc, test_malformed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
