/*
 * conex/author and conex/fileio: the proposal counter rule, propose once and
 * sign many, stale signatures, targets of the data directory, atomic writes
 * and the parse-back check of everything the signing tools write.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conex/author.h"
#include "conex/fileio.h"
#include "conex/repo.h"
#include "tests/unit/testutil.h"

#define NOW "2026-11-25T10:00:00Z"

struct tkey {
	EVP_PKEY *pk;
	char keystr[1024];
};

static void
tkey_gen(struct tkey *k, enum cx_keyalg alg)
{
	struct cx_err e = {0};
	struct cx_buf b;

	ck_assert_int_eq(cx_privkey_generate(alg, 2048, &k->pk, &e), 0);
	cx_buf_init(&b, 0);
	ck_assert_int_eq(cx_pubkey_string(k->pk, &b, &e), 0);
	ck_assert_uint_lt(b.len, sizeof(k->keystr));
	memcpy(k->keystr, b.d, b.len);
	k->keystr[b.len] = 0;
	cx_buf_free(&b);
}

static void
sign_as(struct cx_arena *a, struct cx_resource *r, const char *id, struct tkey *k)
{
	struct cx_err e = {0};
	enum cx_sigalg alg =
	    EVP_PKEY_get_base_id(k->pk) == EVP_PKEY_ED25519 ? CX_SIG_ED25519 : CX_SIG_RSAPSS_SHA256;

	ck_assert_msg(
	    cx_resource_sign(a, r, id, NOW, alg, cx_sign_evp, k->pk, &e) == 0, "%s", e.msg);
}

static struct cx_keyref
local(const char *id)
{
	struct cx_keyref k = {0};
	k.id = id;
	return k;
}

/* A targets resource "t" with keys a and b and valid (n [a b]). */
static struct cx_resource *
two_key_targets(struct cx_arena *a, struct tkey *ka, struct tkey *kb, int64_t n)
{
	struct cx_err e = {0};
	struct cx_resource *r = cx_author_new(a, CX_R_TARGETS, "t", NOW);
	struct cx_keyref ra = local("a"), rb = local("b");

	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(cx_author_key_add(a, r, "b", NOW, kb->keystr, &e), 0);
	ck_assert_int_eq(cx_author_key_add(a, r, "a", NOW, ka->keystr, &e), 0);
	ck_assert_str_eq(r->keys[0].id, "a"); /* sorted as the parser sorts */
	ck_assert_int_eq(cx_author_quorum_add(a, &r->valid, &ra, -1, &e), 0);
	ck_assert_int_eq(cx_author_quorum_add(a, &r->valid, &rb, n, &e), 0);
	ck_assert_int_eq(r->valid->n, n);
	return r;
}

static void
add_target(struct cx_arena *a, struct cx_resource *r, const char *path, const char *content)
{
	struct cx_target *v = cx_arena_alloc(a, (r->ntargets + 1) * sizeof(*v));

	ck_assert_ptr_nonnull(v);
	if (r->ntargets)
		memcpy(v, r->targets, r->ntargets * sizeof(*v));
	ck_assert_int_eq(cx_author_target_of(
	                     a, path, (const uint8_t *)content, strlen(content), &v[r->ntargets]),
	    0);
	r->targets = v;
	r->ntargets++;
}

static void
canon_of(const struct cx_resource *r, struct cx_buf *b)
{
	cx_buf_init(b, 0);
	ck_assert_int_eq(cx_resource_canon(r, b), 0);
}

START_TEST(test_proposal_counter)
{
	struct cx_arena a;
	struct cx_err e = {0};
	struct tkey ka, kb;
	struct cx_resource *r;
	struct cx_buf c;
	const char **dropped;
	size_t nd;
	int changed;

	cx_arena_init(&a, 0);
	tkey_gen(&ka, CX_KEY_ED25519);
	tkey_gen(&kb, CX_KEY_ED25519);
	r = two_key_targets(&a, &ka, &kb, 2);
	r->counter = 5;
	sign_as(&a, r, "a", &ka);
	sign_as(&a, r, "b", &kb);

	/* nothing changed: no new version, signatures kept */
	canon_of(r, &c);
	ck_assert_int_eq(cx_author_propose(&a, r, c.d, c.len, &changed, &dropped, &nd, &e), 0);
	ck_assert_int_eq(changed, 0);
	ck_assert_uint_eq(r->counter, 5);
	ck_assert_uint_eq(r->nsigs, 2);

	/* a change to a signed resource: counter + 1 once, signatures dropped and named */
	add_target(&a, r, "packages/foo/foo.1/opam", "x");
	ck_assert_int_eq(cx_author_propose(&a, r, c.d, c.len, &changed, &dropped, &nd, &e), 0);
	cx_buf_free(&c);
	ck_assert_int_eq(changed, 1);
	ck_assert_uint_eq(r->counter, 6);
	ck_assert_uint_eq(r->nsigs, 0);
	ck_assert_uint_eq(nd, 2);
	ck_assert_str_eq(dropped[0], "a");
	ck_assert_str_eq(dropped[1], "b");

	/* another change before anyone signed: the counter is already bumped */
	canon_of(r, &c);
	add_target(&a, r, "packages/foo/foo.2/opam", "y");
	ck_assert_int_eq(cx_author_propose(&a, r, c.d, c.len, &changed, &dropped, &nd, &e), 0);
	cx_buf_free(&c);
	ck_assert_int_eq(changed, 1);
	ck_assert_uint_eq(r->counter, 6);
	ck_assert_uint_eq(nd, 0);

	/* at the maximum counter a signed resource cannot change: rotate */
	sign_as(&a, r, "a", &ka);
	r->counter = UINT64_MAX;
	canon_of(r, &c);
	add_target(&a, r, "packages/foo/foo.3/opam", "z");
	ck_assert_int_eq(
	    cx_author_propose(&a, r, c.d, c.len, &changed, &dropped, &nd, &e), CX_EREJECT);
	ck_assert_ptr_nonnull(strstr(e.msg, "maximum"));
	ck_assert_ptr_nonnull(strstr(e.msg, "rotate"));
	cx_buf_free(&c);

	EVP_PKEY_free(ka.pk);
	EVP_PKEY_free(kb.pk);
	cx_arena_free(&a);
}
END_TEST

START_TEST(test_late_signer)
{
	struct cx_arena a;
	struct cx_err e = {0};
	struct tkey ka, kb;
	struct cx_resource *r;
	struct cx_sigstate st;

	cx_arena_init(&a, 0);
	tkey_gen(&ka, CX_KEY_ED25519);
	tkey_gen(&kb, CX_KEY_RSA);
	r = two_key_targets(&a, &ka, &kb, 2);
	add_target(&a, r, "packages/foo/foo.1/opam", "x");

	ck_assert_int_eq(cx_author_sigstate(&a, r, &st, &e), 0);
	ck_assert_int_eq(st.met, 0);
	ck_assert_int_eq(st.need, 2);
	ck_assert_uint_eq(st.ncould, 2);

	sign_as(&a, r, "a", &ka);
	ck_assert_int_eq(cx_author_sigstate(&a, r, &st, &e), 0);
	ck_assert_int_eq(st.met, 0);
	ck_assert_int_eq(st.need, 1);
	ck_assert_uint_eq(st.ncould, 1);
	ck_assert_str_eq(st.could[0], "b");
	ck_assert_uint_eq(st.ngood, 1);

	/* b signs later, in another run: a's signature still verifies */
	sign_as(&a, r, "b", &kb);
	ck_assert_int_eq(cx_author_sigstate(&a, r, &st, &e), 0);
	ck_assert_int_eq(st.met, 1);
	ck_assert_int_eq(st.need, 0);
	ck_assert_uint_eq(st.ngood, 2);
	ck_assert_uint_eq(st.nstale, 0);

	/* re-signing replaces only the signer's own signature */
	sign_as(&a, r, "a", &ka);
	ck_assert_uint_eq(r->nsigs, 2);
	ck_assert_int_eq(cx_author_sigstate(&a, r, &st, &e), 0);
	ck_assert_int_eq(st.met, 1);

	EVP_PKEY_free(ka.pk);
	EVP_PKEY_free(kb.pk);
	cx_arena_free(&a);
}
END_TEST

START_TEST(test_stale_signature)
{
	struct cx_arena a;
	struct cx_err e = {0};
	struct tkey ka, kb;
	struct cx_resource *r, *back;
	struct cx_sigstate st;
	struct cx_buf b;

	cx_arena_init(&a, 0);
	tkey_gen(&ka, CX_KEY_ED25519);
	tkey_gen(&kb, CX_KEY_ED25519);
	r = two_key_targets(&a, &ka, &kb, 2);
	sign_as(&a, r, "a", &ka);
	/* edited after a signed, without a proposal (by hand, or by another tool) */
	add_target(&a, r, "packages/foo/foo.1/opam", "x");
	ck_assert_int_eq(cx_author_sigstate(&a, r, &st, &e), 0);
	ck_assert_uint_eq(st.ngood, 0);
	ck_assert_uint_eq(st.nstale, 1);
	ck_assert_str_eq(st.stale[0], "a");
	ck_assert_int_eq(st.need, 2);

	/* the same seen from the file: the stale signature survives a write and a read */
	cx_buf_init(&b, 0);
	ck_assert_int_eq(cx_author_serialise(r, "t", &b, &e), 0);
	ck_assert_int_eq(cx_resource_parse(&a, "t", b.d, b.len, CX_R_TARGETS, &back, NULL, &e), 0);
	ck_assert_int_eq(cx_author_sigstate(&a, back, &st, &e), 0);
	ck_assert_uint_eq(st.nstale, 1);
	cx_buf_free(&b);

	EVP_PKEY_free(ka.pk);
	EVP_PKEY_free(kb.pk);
	cx_arena_free(&a);
}
END_TEST

static int
compute(const char *dir, const char *const *pkgs, size_t n, struct cx_arena *a,
    struct cx_target **v, size_t *nv, struct cx_err *e)
{
	struct cx_repo *repo;
	int rc;

	ck_assert_int_eq(cx_repo_open(&repo, dir, e), 0);
	rc = cx_author_targets_compute(repo, "packages", pkgs, n, a, v, nv, e);
	cx_repo_close(repo);
	return rc;
}

START_TEST(test_targets_compute)
{
	char *d = cx_test_tmpdir(), *p;
	struct cx_arena a;
	struct cx_err e = {0};
	struct cx_target *v;
	struct cx_resource *r;
	const char *foo[] = {"foo"}, *nope[] = {"nope"}, *bad[] = {"../x"};
	size_t n;
	uint8_t h[CX_SHA256_LEN];
	char hex[CX_SHA256_HEX + 1];

	cx_arena_init(&a, 0);
	cx_test_write_str(d, "packages/foo/foo.1.0/opam", "opam-version: \"2.0\"\n");
	cx_test_write_str(d, "packages/foo/foo.1.0/files/fix.patch", "patch\n");
	cx_test_write_str(d, "packages/bar/bar.2/opam", "bar\n");
	ck_assert_int_eq(compute(d, NULL, 0, &a, &v, &n, &e), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(v[0].path, "packages/bar/bar.2/opam");
	ck_assert_str_eq(v[1].path, "packages/foo/foo.1.0/files/fix.patch");
	ck_assert_uint_eq(v[2].size, strlen("opam-version: \"2.0\"\n"));
	cx_sha256("bar\n", 4, h);
	cx_hex_encode(h, CX_SHA256_LEN, hex);
	ck_assert_uint_eq(v[0].digests[0].len, CX_SHA256_HEX);
	ck_assert_int_eq(memcmp(v[0].digests[0].value, hex, CX_SHA256_HEX), 0);

	/* one package replaces its own targets and keeps the others */
	r = cx_author_new(&a, CX_R_TARGETS, "t", NOW);
	add_target(&a, r, "packages/bar/bar.1/opam", "old bar");
	add_target(&a, r, "packages/foo/foo.0.9/opam", "gone");
	ck_assert_int_eq(compute(d, foo, 1, &a, &v, &n, &e), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(cx_author_targets_replace(&a, r, "packages", foo, 1, v, n, &e), 0);
	ck_assert_uint_eq(r->ntargets, 3);
	ck_assert_str_eq(r->targets[0].path, "packages/bar/bar.1/opam");
	ck_assert_str_eq(r->targets[1].path, "packages/foo/foo.1.0/files/fix.patch");
	ck_assert_str_eq(r->targets[2].path, "packages/foo/foo.1.0/opam");

	/* errors name the path */
	ck_assert_int_eq(compute(d, nope, 1, &a, &v, &n, &e), CX_ENOENT);
	ck_assert_ptr_nonnull(strstr(e.msg, "packages/nope"));
	ck_assert_int_eq(compute(d, bad, 1, &a, &v, &n, &e), CX_EINVAL);
	cx_test_write_str(d, "packages/foo/foo.1.0/url", "x\n");
	ck_assert_int_eq(compute(d, foo, 1, &a, &v, &n, &e), CX_EREJECT);
	ck_assert_ptr_nonnull(strstr(e.msg, "packages/foo/foo.1.0/url"));
	cx_test_sh("rm %s/packages/foo/foo.1.0/url", d);
	cx_test_write_str(d, "packages/foo/foo.1.0/files/sub/x", "x\n");
	ck_assert_int_eq(compute(d, foo, 1, &a, &v, &n, &e), CX_EREJECT);
	ck_assert_ptr_nonnull(strstr(e.msg, "files/sub/x"));
	cx_test_sh("rm -r %s/packages/foo/foo.1.0/files/sub", d);
	cx_test_write_str(d, "packages/foo/bar.1/opam", "x\n");
	ck_assert_int_eq(compute(d, foo, 1, &a, &v, &n, &e), CX_EREJECT);
	ck_assert_ptr_nonnull(strstr(e.msg, "packages/foo/bar.1/opam"));
	cx_test_sh("rm -r %s/packages/foo/bar.1", d);
	cx_test_write_str(d, "packages/README", "x\n");
	ck_assert_int_eq(compute(d, NULL, 0, &a, &v, &n, &e), CX_EREJECT);
	ck_assert_ptr_nonnull(strstr(e.msg, "packages/README"));
	cx_test_sh("rm %s/packages/README", d);
	ck_assert_int_eq(asprintf(&p, "%s/packages/foo/foo.1.0/files/link", d) > 0, 1);
	ck_assert_int_eq(symlink("/etc/passwd", p), 0);
	ck_assert_int_eq(compute(d, foo, 1, &a, &v, &n, &e), CX_EREJECT);
	ck_assert_ptr_nonnull(strstr(e.msg, "link"));
	unlink(p);
	free(p);
	ck_assert_int_eq(compute(d, foo, 1, &a, &v, &n, &e), 0);

	cx_arena_free(&a);
	cx_test_rm_rf(d);
	free(d);
}
END_TEST

static int
count_entries(const char *dir)
{
	DIR *dd = opendir(dir);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(dd);
	while ((de = readdir(dd)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dd);
	return n;
}

START_TEST(test_atomic_write)
{
	char *d = cx_test_tmpdir(), *p, *sub;
	struct cx_err e = {0};
	struct cx_buf b;

	ck_assert_int_eq(asprintf(&sub, "%s/keys", d) > 0, 1);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	ck_assert_int_eq(asprintf(&p, "%s/m1", sub) > 0, 1);
	ck_assert_int_eq(cx_file_write_atomic(p, (const uint8_t *)"old\n", 4, 0644, &e), 0);
	cx_buf_init(&b, 0);
	ck_assert_int_eq(cx_file_read(p, 100, &b, &e), 0);
	ck_assert_uint_eq(b.len, 4);
	ck_assert_int_eq(cx_file_write_atomic(p, (const uint8_t *)"new!\n", 5, 0644, &e), 0);
	ck_assert_int_eq(cx_file_read(p, 100, &b, &e), 0);
	ck_assert_int_eq(memcmp(b.d, "new!\n", 5), 0);
	ck_assert_int_eq(cx_file_read(p, 2, &b, &e), CX_ETOOBIG);

	/* an unwritable directory: the old file stays, no temporary file is left */
	if (geteuid() != 0) {
		ck_assert_int_eq(chmod(sub, 0555), 0);
		ck_assert_int_eq(
		    cx_file_write_atomic(p, (const uint8_t *)"lost\n", 5, 0644, &e), CX_EIO);
		ck_assert_ptr_nonnull(strstr(e.msg, p));
		ck_assert_int_eq(chmod(sub, 0755), 0);
		ck_assert_int_eq(cx_file_read(p, 100, &b, &e), 0);
		ck_assert_int_eq(memcmp(b.d, "new!\n", 5), 0);
		ck_assert_int_eq(count_entries(sub), 1);
	}
	/* a directory where the file should be is never replaced */
	cx_test_sh("mkdir %s/keys/m2", d);
	free(p);
	ck_assert_int_eq(asprintf(&p, "%s/m2", sub) > 0, 1);
	ck_assert_int_eq(cx_file_write_atomic(p, (const uint8_t *)"x", 1, 0644, &e), CX_EREJECT);
	ck_assert_int_eq(count_entries(sub), 2);
	/* a symlink is not read through */
	cx_test_sh("ln -s m1 %s/keys/m3", d);
	free(p);
	ck_assert_int_eq(asprintf(&p, "%s/m3", sub) > 0, 1);
	ck_assert_int_eq(cx_file_read(p, 100, &b, &e), CX_EREJECT);
	ck_assert_int_eq(cx_file_exists(p, &e), CX_EREJECT);
	free(p);
	ck_assert_int_eq(asprintf(&p, "%s/none", sub) > 0, 1);
	ck_assert_int_eq(cx_file_read(p, 100, &b, &e), CX_ENOENT);
	ck_assert_int_eq(cx_file_exists(p, &e), 0);

	cx_buf_free(&b);
	free(p);
	free(sub);
	cx_test_rm_rf(d);
	free(d);
}
END_TEST

START_TEST(test_parse_back)
{
	char *d = cx_test_tmpdir(), *p;
	struct cx_arena a;
	struct cx_err e = {0};
	struct tkey ka, kb, kc;
	struct cx_resource *r, *back;
	struct cx_expr *x = NULL, *y = NULL, *z = NULL, *and, * or ;
	struct cx_keyref ra = local("a"), rb = local("b"), rc = local("c"), rem = {0};
	struct cx_buf b, c0, c1;
	uint8_t *data;
	size_t len;

	cx_arena_init(&a, 0);
	tkey_gen(&ka, CX_KEY_ED25519);
	tkey_gen(&kb, CX_KEY_RSA);
	tkey_gen(&kc, CX_KEY_ED25519);
	r = cx_author_new(&a, CX_R_TARGETS, "t", NOW);
	ck_assert_int_eq(cx_author_key_add(&a, r, "c", NOW, kc.keystr, &e), 0);
	ck_assert_int_eq(cx_author_key_add(&a, r, "a", NOW, ka.keystr, &e), 0);
	ck_assert_int_eq(cx_author_key_add(&a, r, "b", NOW, kb.keystr, &e), 0);
	/* (a | b) & c: written with parentheses, it reads back the same */
	ck_assert_int_eq(cx_author_quorum_add(&a, &x, &ra, -1, &e), 0);
	ck_assert_int_eq(cx_author_quorum_add(&a, &y, &rb, -1, &e), 0);
	ck_assert_int_eq(cx_author_quorum_add(&a, &z, &rc, -1, &e), 0);
	or = cx_arena_alloc(&a, sizeof(* or));
	and = cx_arena_alloc(&a, sizeof(*and));
	* or = (struct cx_expr){.kind = CX_EXPR_OR, .a = x, .b = y};
	*and = (struct cx_expr){.kind = CX_EXPR_AND, .a = or, .b = z};
	r->valid = and;
	ck_assert_int_eq(cx_author_quorum_add(&a, &r->valid, &ra, -1, &e), CX_EUNSUPPORTED);
	add_target(&a, r, "packages/foo/foo.1/opam", "x\"\\\n");
	rem.remote = 1;
	rem.id = "other";
	rem.digest = (struct cx_digest){
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 64};
	rem.epoch = 3;
	x = NULL;
	ck_assert_int_eq(cx_author_quorum_add(&a, &x, &rem, -1, &e), 0);
	ck_assert_int_eq(cx_author_delegate(&a, r, "packages/foo", x, 1, &e), 0);
	ck_assert_int_eq(cx_author_delegate(&a, r, "packages/bar", x, 0, &e), 0);
	ck_assert_uint_eq(r->ndels, 2);
	sign_as(&a, r, "a", &ka);
	sign_as(&a, r, "c", &kc);

	ck_assert_int_eq(asprintf(&p, "%s/t", d) > 0, 1);
	ck_assert_int_eq(cx_author_write(p, r, &e), 0);
	data = cx_test_read(p, &len);
	ck_assert_ptr_nonnull(data);
	ck_assert_int_eq(cx_resource_parse(&a, "t", data, len, CX_R_TARGETS, &back, NULL, &e), 0);
	canon_of(r, &c0);
	canon_of(back, &c1);
	ck_assert_uint_eq(c0.len, c1.len);
	ck_assert_int_eq(memcmp(c0.d, c1.d, c0.len), 0);
	ck_assert_uint_eq(back->nsigs, 2);
	ck_assert_uint_eq(back->ndels, 2);
	ck_assert_int_eq(back->dels[1].terminating, 0);
	ck_assert_int_eq(back->valid->kind, CX_EXPR_AND);
	free(data);
	cx_buf_free(&c0);
	cx_buf_free(&c1);

	/* undelegate: the whole delegation, or one identity of it */
	ck_assert_int_eq(cx_author_undelegate(&a, r, "packages/bar", NULL, &e), 0);
	ck_assert_uint_eq(r->ndels, 1);
	ck_assert_int_eq(cx_author_undelegate(&a, r, "packages/bar", NULL, &e), CX_ENOENT);
	ck_assert_int_eq(cx_author_undelegate(&a, r, "packages/foo", "nobody", &e), CX_ENOENT);
	ck_assert_int_eq(cx_author_undelegate(&a, r, "packages/foo", "OTHER", &e), 0);
	ck_assert_uint_eq(r->ndels, 0);

	/* a resource whose bytes would not read back the same is not written (Data is trimmed) */
	r->created = " " NOW;
	cx_buf_init(&b, 0);
	ck_assert_int_ne(cx_author_serialise(r, "t", &b, &e), 0);
	ck_assert_uint_eq(b.len, 0);
	cx_buf_free(&b);

	ck_assert_msg(strstr(e.msg, "back") != NULL, "%s", e.msg);
	/* removing keys and quorum members */
	ck_assert_int_eq(cx_author_key_remove(r, "b", &e), 0);
	ck_assert_int_eq(cx_author_key_remove(r, "b", &e), CX_ENOENT);
	ck_assert_uint_eq(r->nkeys, 2);
	x = NULL;
	ck_assert_int_eq(cx_author_quorum_add(&a, &x, &ra, -1, &e), 0);
	ck_assert_int_eq(cx_author_quorum_add(&a, &x, &rb, 2, &e), 0);
	ck_assert_int_eq(cx_author_quorum_add(&a, &x, &rc, 4, &e), CX_EINVAL);
	ck_assert_int_eq(cx_author_quorum_remove(&a, &x, "a", -1, &e), 0);
	ck_assert_int_eq(x->n, 1);
	ck_assert_uint_eq(x->nrefs, 1);

	EVP_PKEY_free(ka.pk);
	EVP_PKEY_free(kb.pk);
	EVP_PKEY_free(kc.pk);
	free(p);
	cx_arena_free(&a);
	cx_test_rm_rf(d);
	free(d);
}
END_TEST

static Suite *
author_suite(void)
{
	Suite *s = suite_create("author");
	TCase *tc = tcase_create("author");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_proposal_counter);
	tcase_add_test(tc, test_late_signer);
	tcase_add_test(tc, test_stale_signature);
	tcase_add_test(tc, test_targets_compute);
	tcase_add_test(tc, test_atomic_write);
	tcase_add_test(tc, test_parse_back);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(author_suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
