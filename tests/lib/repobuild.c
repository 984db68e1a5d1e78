#include "tests/lib/repobuild.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conex/repo.h"
#include "conex/verify.h"

void
rb_die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "repobuild: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

static void *
must(void *p)
{
	if (p == NULL)
		rb_die("out of memory");
	return p;
}

static struct rb_key *
key_from(const char *id, EVP_PKEY *pk)
{
	struct rb_key *k = must(calloc(1, sizeof(*k)));
	struct cx_buf b;
	struct cx_err e;
	uint8_t h[CX_SHA256_LEN];

	k->id = must(strdup(id));
	k->pk = pk;
	k->alg = EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519 ? CX_KEY_ED25519 : CX_KEY_RSA;
	cx_buf_init(&b, 0);
	if (cx_pubkey_string(pk, &b, &e) != 0)
		rb_die("%s: %s", id, e.msg);
	k->keystr = cx_buf_steal_str(&b, &k->keystrlen);
	cx_keyid(k->keystr, k->keystrlen, h);
	cx_hex_encode(h, CX_SHA256_LEN, k->keyid);
	snprintf(k->created, sizeof(k->created), "2025-01-01T00:00:00Z");
	return k;
}

struct rb_key *
rb_key_gen(const char *id, enum cx_keyalg alg)
{
	EVP_PKEY *pk;
	struct cx_err e;

	if (cx_privkey_generate(alg, 2048, &pk, &e) != 0)
		rb_die("generate %s: %s", id, e.msg);
	return key_from(id, pk);
}

struct rb_key *
rb_key_load(const char *id, const char *path)
{
	EVP_PKEY *pk;
	struct cx_err e;
	FILE *f = fopen(path, "rb");
	uint8_t buf[16384];
	size_t n;

	if (f == NULL)
		rb_die("%s: %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (cx_privkey_load_pem(buf, n, &pk, &e) != 0)
		rb_die("%s: %s", path, e.msg);
	OPENSSL_cleanse(buf, sizeof(buf));
	return key_from(id, pk);
}

void
rb_key_free(struct rb_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pk);
	free(k->id);
	free(k->keystr);
	free(k);
}

void
rb_key_save(const struct rb_key *k, const char *dir)
{
	struct cx_buf b;
	struct cx_err e;
	char *path;
	int fd;

	cx_buf_init(&b, 0);
	if (cx_privkey_pem(k->pk, &b, &e) != 0)
		rb_die("%s: %s", k->id, e.msg);
	if (asprintf(&path, "%s/%s.sha256=%s.private", dir, k->id, k->keyid) < 0)
		rb_die("asprintf");
	mkdir(dir, 0700);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0400)) < 0 ||
	    write(fd, b.d, b.len) != (ssize_t)b.len || close(fd) != 0)
		rb_die("%s: %s", path, strerror(errno));
	cx_buf_free_wipe(&b);
	free(path);
}

struct cx_resource *
rb_new(struct cx_arena *a, enum cx_rtype t, const char *name, const char *created)
{
	struct cx_resource *r = must(cx_arena_alloc(a, sizeof(*r)));

	r->type = t;
	r->name = must(cx_arena_strdup(a, name));
	r->created = must(cx_arena_strdup(a, created));
	if (t == CX_R_ROOT) {
		r->datadir = "packages";
		r->keydir = "keys";
	}
	return r;
}

static int
key_cmp(const void *x, const void *y)
{
	return strcmp(((const struct cx_key *)x)->id, ((const struct cx_key *)y)->id);
}

void
rb_add_key(struct cx_arena *a, struct cx_resource *r, const struct rb_key *k)
{
	struct cx_key *v = must(cx_arena_alloc(a, (r->nkeys + 1) * sizeof(*v)));
	struct cx_key *nk;

	if (r->nkeys)
		memcpy(v, r->keys, r->nkeys * sizeof(*v));
	nk = &v[r->nkeys];
	nk->id = must(cx_arena_strdup(a, k->id));
	nk->created = must(cx_arena_strdup(a, k->created));
	nk->alg = k->alg;
	nk->keystr = must(cx_arena_memdup(a, k->keystr, k->keystrlen));
	nk->keystrlen = k->keystrlen;
	cx_keyid(nk->keystr, nk->keystrlen, nk->keyid);
	r->keys = v;
	r->nkeys++;
	qsort(r->keys, r->nkeys, sizeof(*r->keys), key_cmp);
}

struct cx_keyref
rb_local(const char *id)
{
	struct cx_keyref k = {0};

	k.id = id;
	return k;
}

struct cx_keyref
rb_remote(const char *id, const char *hex, uint64_t epoch)
{
	struct cx_keyref k = {0};

	k.remote = 1;
	k.id = id;
	k.digest.value = hex;
	k.digest.len = strlen(hex);
	k.epoch = epoch;
	return k;
}

static int
ref_cmp(const void *x, const void *y)
{
	return cx_keyref_cmp(x, y);
}

struct cx_expr *
rb_quorum(struct cx_arena *a, int64_t n, const struct cx_keyref *refs, size_t nrefs)
{
	struct cx_expr *x = must(cx_arena_alloc(a, sizeof(*x)));
	size_t i;

	x->kind = CX_EXPR_QUORUM;
	x->n = n;
	x->refs = must(cx_arena_alloc(a, (nrefs + 1) * sizeof(*x->refs)));
	for (i = 0; i < nrefs; i++) {
		x->refs[i] = refs[i];
		x->refs[i].id = must(cx_arena_strdup(a, refs[i].id));
		if (refs[i].remote)
			x->refs[i].digest.value =
			    must(cx_arena_memdup(a, refs[i].digest.value, refs[i].digest.len));
	}
	x->nrefs = nrefs;
	qsort(x->refs, nrefs, sizeof(*x->refs), ref_cmp);
	return x;
}

static struct cx_expr *
binop(struct cx_arena *a, enum cx_expr_kind k, struct cx_expr *x, struct cx_expr *y)
{
	struct cx_expr *r = must(cx_arena_alloc(a, sizeof(*r)));

	r->kind = k;
	r->a = x;
	r->b = y;
	return r;
}

struct cx_expr *
rb_and(struct cx_arena *a, struct cx_expr *x, struct cx_expr *y)
{
	return binop(a, CX_EXPR_AND, x, y);
}

struct cx_expr *
rb_or(struct cx_arena *a, struct cx_expr *x, struct cx_expr *y)
{
	return binop(a, CX_EXPR_OR, x, y);
}

static void
push_target(
    struct cx_arena *a, struct cx_resource *r, const char *path, const uint8_t h[32], uint64_t size)
{
	struct cx_target *v = must(cx_arena_alloc(a, (r->ntargets + 1) * sizeof(*v)));
	struct cx_target *t;
	char *hex = must(cx_arena_alloc(a, CX_SHA256_HEX + 1));

	if (r->ntargets)
		memcpy(v, r->targets, r->ntargets * sizeof(*v));
	t = &v[r->ntargets];
	t->path = must(cx_arena_strdup(a, path));
	t->size = size;
	t->digests = must(cx_arena_alloc(a, sizeof(*t->digests)));
	cx_hex_encode(h, CX_SHA256_LEN, hex);
	t->digests[0].value = hex;
	t->digests[0].len = CX_SHA256_HEX;
	t->ndigests = 1;
	r->targets = v;
	r->ntargets++;
}

void
rb_add_target(
    struct cx_arena *a, struct cx_resource *r, const char *path, const void *data, size_t len)
{
	uint8_t h[CX_SHA256_LEN];

	cx_sha256(data, len, h);
	push_target(a, r, path, h, len);
}

void
rb_add_targets_below(
    struct cx_arena *a, struct cx_resource *r, const char *repodir, const char *sub)
{
	struct cx_repo *repo;
	struct cx_file_list fl;
	struct cx_err e;
	struct cx_target *v;
	size_t i, base = r->ntargets;

	if (cx_repo_open(&repo, repodir, &e) != 0 || cx_repo_walk(repo, sub, &fl, &e) != 0)
		rb_die("%s/%s: %s", repodir, sub, e.msg);
	/* one allocation: 33,000 targets must not grow quadratically */
	v = must(cx_arena_alloc(a, (r->ntargets + fl.n + 1) * sizeof(*v)));
	if (r->ntargets)
		memcpy(v, r->targets, r->ntargets * sizeof(*v));
	for (i = 0; i < fl.n; i++) {
		struct cx_target *t = &v[base + i];
		char *hex = must(cx_arena_alloc(a, CX_SHA256_HEX + 1));
		t->path = must(cx_arena_strdup(a, fl.v[i].path));
		t->size = fl.v[i].size;
		t->digests = must(cx_arena_alloc(a, sizeof(*t->digests)));
		cx_hex_encode(fl.v[i].sha256, CX_SHA256_LEN, hex);
		t->digests[0].value = hex;
		t->digests[0].len = CX_SHA256_HEX;
		t->ndigests = 1;
	}
	r->targets = v;
	r->ntargets = base + fl.n;
	cx_file_list_free(&fl);
	cx_repo_close(repo);
}

void
rb_clear_targets(struct cx_resource *r)
{
	r->targets = NULL;
	r->ntargets = 0;
}

void
rb_add_delegation(struct cx_arena *a, struct cx_resource *r, const char *path,
    struct cx_expr *valid, int terminating)
{
	struct cx_delegation *v = must(cx_arena_alloc(a, (r->ndels + 1) * sizeof(*v)));
	struct cx_delegation *d;

	if (r->ndels)
		memcpy(v, r->dels, r->ndels * sizeof(*v));
	d = &v[r->ndels];
	d->paths = must(cx_arena_alloc(a, sizeof(*d->paths)));
	d->paths[0] = must(cx_arena_strdup(a, path));
	d->npaths = 1;
	d->valid = valid;
	d->terminating = terminating;
	r->dels = v;
	r->ndels++;
}

void
rb_sign(struct cx_arena *a, struct cx_resource *r, const struct rb_key *k, const char *created)
{
	struct cx_err e;

	if (cx_resource_sign(
	        a, r, k->id, created, cx_sigalg_for_key(k->alg), cx_sign_evp, k->pk, &e) != 0)
		rb_die("sign %s as %s: %s", r->name, k->id, e.msg);
}

static void
mkparents(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			rb_die("mkdir %s: %s", path, strerror(errno));
		*p = '/';
	}
}

void
rb_write_file(const char *dir, const char *rel, const void *data, size_t len)
{
	char *path, *tmp;
	int fd;

	if (asprintf(&path, "%s/%s", dir, rel) < 0 ||
	    asprintf(&tmp, "%s.tmp%d", path, getpid()) < 0)
		rb_die("asprintf");
	mkparents(path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0 ||
	    (len && write(fd, data, len) != (ssize_t)len) || close(fd) != 0 ||
	    rename(tmp, path) != 0)
		rb_die("%s: %s", path, strerror(errno));
	free(path);
	free(tmp);
}

void
rb_write(const struct cx_resource *r, const char *dir, const char *rel)
{
	struct cx_buf b;
	struct cx_err e;

	cx_buf_init(&b, 0);
	if (cx_resource_write(r, &b, &e) != 0)
		rb_die("%s: %s", rel, e.msg);
	rb_write_file(dir, rel, b.d, b.len);
	cx_buf_free(&b);
}

void
rb_key_hash(const struct cx_resource *t, char hex[CX_SHA256_HEX + 1])
{
	uint8_t h[CX_SHA256_LEN];
	struct cx_err e;

	if (cx_expr_hash(t->valid, t, h, &e) != 0)
		rb_die("%s: %s", t->name, e.msg);
	cx_hex_encode(h, CX_SHA256_LEN, hex);
}

static uint8_t *
slurp(const char *dir, const char *rel, size_t *len)
{
	char *path;
	FILE *f;
	struct cx_buf b;
	uint8_t tmp[65536];
	size_t n;

	if (asprintf(&path, "%s/%s", dir, rel) < 0)
		rb_die("asprintf");
	if ((f = fopen(path, "rb")) == NULL)
		rb_die("%s: %s", path, strerror(errno));
	cx_buf_init(&b, 0);
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		if (cx_buf_put(&b, tmp, n) != 0)
			rb_die("%s: too big", path);
	fclose(f);
	free(path);
	return (uint8_t *)cx_buf_steal_str(&b, len);
}

void
rb_file_digest(const char *dir, const char *rel, char hex[CX_SHA256_HEX + 1], uint64_t *size)
{
	size_t len;
	uint8_t *d = slurp(dir, rel, &len), h[CX_SHA256_LEN];

	cx_sha256(d, len, h);
	cx_hex_encode(h, CX_SHA256_LEN, hex);
	*size = len;
	free(d);
}

struct cx_resource *
rb_read(struct cx_arena *a, const char *dir, const char *rel, enum cx_rtype t)
{
	size_t len;
	uint8_t *d = slurp(dir, rel, &len), *copy;
	struct cx_resource *r;
	struct cx_err e;

	/* the parsed strings point into the data: keep it in the arena */
	copy = must(cx_arena_memdup(a, d, len));
	free(d);
	if (cx_resource_parse(a, rel, copy, len, t, &r, NULL, &e) != 0)
		rb_die("%s", e.msg);
	return r;
}

/* ---- the standard world ---- */

static struct cx_keyref
role_ref(struct cx_arena *a, const struct rb_key *k)
{
	return rb_remote(must(cx_arena_strdup(a, k->id)), must(cx_arena_strdup(a, k->keyid)), 0);
}

void
rb_world_init(
    struct rb_world *w, const char *dir, int nm, int quorum, enum cx_keyalg alg, int64_t now)
{
	struct cx_keyref refs[8], lr;
	int i;

	memset(w, 0, sizeof(*w));
	if (nm < 1 || nm > 8)
		rb_die("1 to 8 maintainers");
	w->dir = must(strdup(dir));
	w->now = now;
	cx_time_format(now, w->created);
	w->alg = alg;
	w->nm = nm;
	w->quorum = quorum;
	cx_arena_init(&w->a, 0);
	w->root = rb_key_gen("root", alg);
	w->snap = rb_key_gen("snap", alg);
	w->ts = rb_key_gen("timestamp", alg);
	for (i = 0; i < nm; i++) {
		char id[8];
		char hex[CX_SHA256_HEX + 1];
		snprintf(id, sizeof(id), "m%d", i + 1);
		w->m[i] = rb_key_gen(id, alg);
		w->rm[i] = rb_new(&w->a, CX_R_TARGETS, id, w->created);
		rb_add_key(&w->a, w->rm[i], w->m[i]);
		lr = rb_local(w->m[i]->id);
		w->rm[i]->valid = rb_quorum(&w->a, 1, &lr, 1);
		rb_key_hash(w->rm[i], hex);
		refs[i] = rb_remote(w->m[i]->id, must(cx_arena_strdup(&w->a, hex)), 0);
	}
	w->rroot = rb_new(&w->a, CX_R_ROOT, "root", w->created);
	rb_add_key(&w->a, w->rroot, w->root);
	lr = rb_local("root");
	w->rroot->valid = rb_quorum(&w->a, 1, &lr, 1);
	w->rroot->role_maintainer = rb_quorum(&w->a, quorum, refs, (size_t)nm);
	refs[0] = role_ref(&w->a, w->snap);
	w->rroot->role_snapshot = rb_quorum(&w->a, 1, refs, 1);
	refs[0] = role_ref(&w->a, w->ts);
	w->rroot->role_timestamp = rb_quorum(&w->a, 1, refs, 1);
	w->rsnap = rb_new(&w->a, CX_R_SNAPSHOT, "snap", w->created);
	rb_add_key(&w->a, w->rsnap, w->snap);
	w->rts = rb_new(&w->a, CX_R_TIMESTAMP, "timestamp", w->created);
	rb_add_key(&w->a, w->rts, w->ts);
	w->rroot->counter = (uint64_t)-1; /* the first sign makes it 0 */
}

void
rb_world_file(struct rb_world *w, const char *rel, const char *content)
{
	rb_write_file(w->dir, rel, content, strlen(content));
}

void
rb_world_sign_root(struct rb_world *w)
{
	w->rroot->counter++;
	w->rroot->created = w->created;
	rb_sign(&w->a, w->rroot, w->root, w->created);
	rb_write(w->rroot, w->dir, "root");
}

void
rb_world_sign_maintainer(struct rb_world *w, int i)
{
	struct cx_resource *t = w->rm[i];
	char rel[64];

	rb_clear_targets(t);
	rb_add_targets_below(&w->a, t, w->dir, "packages");
	if (t->nsigs)
		t->counter++;
	t->sigs = NULL;
	t->nsigs = 0;
	rb_sign(&w->a, t, w->m[i], w->created);
	snprintf(rel, sizeof(rel), "keys/%s", t->name);
	rb_write(t, w->dir, rel);
}

void
rb_world_sign_snapshot(struct rb_world *w)
{
	struct cx_resource *s = w->rsnap;
	char hex[CX_SHA256_HEX + 1], rel[64];
	uint64_t size;
	int i;

	rb_clear_targets(s);
	for (i = 0; i < w->nm; i++) {
		uint8_t h[CX_SHA256_LEN];
		snprintf(rel, sizeof(rel), "keys/%s", w->rm[i]->name);
		rb_file_digest(w->dir, rel, hex, &size);
		if (cx_hex_decode(hex, CX_SHA256_HEX, h, CX_SHA256_LEN) != 0)
			rb_die("hex");
		push_target(&w->a, s, rel, h, size);
	}
	if (s->nsigs)
		s->counter++;
	s->created = w->created;
	s->sigs = NULL;
	s->nsigs = 0;
	rb_sign(&w->a, s, w->snap, w->created);
	rb_write(s, w->dir, "snap");
}

void
rb_world_sign_timestamp(struct rb_world *w)
{
	struct cx_resource *t = w->rts;
	char hex[CX_SHA256_HEX + 1];
	uint8_t h[CX_SHA256_LEN];
	uint64_t size;

	rb_clear_targets(t);
	rb_file_digest(w->dir, "snap", hex, &size);
	if (cx_hex_decode(hex, CX_SHA256_HEX, h, CX_SHA256_LEN) != 0)
		rb_die("hex");
	push_target(&w->a, t, "snap", h, size);
	if (t->nsigs)
		t->counter++;
	t->created = w->created;
	t->sigs = NULL;
	t->nsigs = 0;
	rb_sign(&w->a, t, w->ts, w->created);
	rb_write(t, w->dir, "timestamp");
}

void
rb_world_sign_all(struct rb_world *w)
{
	int i;

	if (w->rroot->nsigs == 0)
		rb_world_sign_root(w);
	for (i = 0; i < w->nm; i++)
		rb_world_sign_maintainer(w, i);
	rb_world_sign_snapshot(w);
	rb_world_sign_timestamp(w);
}

void
rb_world_free(struct rb_world *w)
{
	int i;

	rb_key_free(w->root);
	rb_key_free(w->snap);
	rb_key_free(w->ts);
	for (i = 0; i < w->nm; i++)
		rb_key_free(w->m[i]);
	cx_arena_free(&w->a);
	free(w->dir);
}

int
rb_world_verify(struct rb_world *w, const char *dir, struct cx_err *e)
{
	const char *anchors[1] = {w->root->keyid};
	struct cx_verify_opts o = {0};
	struct cx_verify_result res;
	struct cx_repo *repo;
	int r;

	o.anchors = anchors;
	o.nanchors = 1;
	o.quorum = 1;
	o.root_name = "root";
	o.opam = 1;
	o.strict = 1;
	o.now = w->now;
	o.expiry = 900;
	if ((r = cx_repo_open(&repo, dir, e)) != 0)
		return r;
	r = cx_verify_full(repo, &o, &res, e);
	cx_repo_close(repo);
	return r;
}

/* ---- attack and incremental-update helpers (tests/unit/test_attacks.c, test_incremental.c) ---- */

#include <sys/wait.h>

void
rb_world_set_dir(struct rb_world *w, const char *dir)
{
	free(w->dir);
	w->dir = must(strdup(dir));
}

void
rb_set_next_counter(struct cx_resource *r, uint64_t c)
{
	r->sigs = NULL;
	r->nsigs = 0;
	r->counter = c;
}

void
rb_world_sign_targets(struct rb_world *w, struct cx_resource *t, const struct rb_key *k,
    const char *const *subs, size_t nsubs)
{
	char rel[256];
	size_t i;

	rb_clear_targets(t);
	for (i = 0; i < nsubs; i++)
		rb_add_targets_below(&w->a, t, w->dir, subs[i]);
	if (t->nsigs)
		t->counter++;
	t->sigs = NULL;
	t->nsigs = 0;
	rb_sign(&w->a, t, k, w->created);
	snprintf(rel, sizeof(rel), "keys/%s", t->name);
	rb_write(t, w->dir, rel);
}

struct cx_resource *
rb_world_identity(struct rb_world *w, const struct rb_key *k)
{
	struct cx_resource *t = rb_new(&w->a, CX_R_TARGETS, k->id, w->created);
	struct cx_keyref lr = rb_local(k->id);

	rb_add_key(&w->a, t, k);
	t->valid = rb_quorum(&w->a, 1, &lr, 1);
	return t;
}

void
rb_world_sign_snapshot_keydir(struct rb_world *w)
{
	struct cx_resource *s = w->rsnap;

	rb_clear_targets(s);
	rb_add_targets_below(&w->a, s, w->dir, "keys");
	if (s->nsigs)
		s->counter++;
	s->created = w->created;
	s->sigs = NULL;
	s->nsigs = 0;
	rb_sign(&w->a, s, w->snap, w->created);
	rb_write(s, w->dir, "snap");
}

static int rb_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
rb_sh(const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int r, st;

	va_start(ap, fmt);
	r = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (r < 0)
		rb_die("vasprintf");
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		rb_die("%s: did not exit", cmd);
	free(cmd);
	return WEXITSTATUS(st);
}

void
rb_copy_tree(const char *src, const char *dst)
{
	if (rb_sh("cp -a '%s' '%s'", src, dst) != 0)
		rb_die("cp -a %s %s failed", src, dst);
}

uint8_t *
rb_diff_ruaN(const char *parent, const char *a, const char *b, size_t *len)
{
	char rel[512];

	snprintf(rel, sizeof(rel), "%s-%s.diff", a, b);
	/* diff: 0 no differences, 1 differences, 2 trouble */
	if (rb_sh("cd '%s' && LC_ALL=C diff -ruaN '%s' '%s' > '%s'", parent, a, b, rel) > 1)
		rb_die("diff -ruaN %s %s failed", a, b);
	return slurp(parent, rel, len);
}

uint8_t *
rb_git_diff(const char *parent, const char *a, const char *b, size_t *len)
{
	char g[512];

	snprintf(g, sizeof(g), "%s.git-%s", a, b);
	/*
	 * The new tree is copied with fresh mtimes: with cp -a's old ones, a file
	 * of the same size that gets the removed file's inode back can look
	 * unchanged to git's stat check (a flaky, incomplete diff).
	 */
	if (rb_sh("cd '%s' && rm -rf '%s' && mkdir '%s' && cp -a '%s'/. '%s'/ && cd '%s' && "
	          "export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 && "
	          "git -c init.defaultBranch=main init -q && git add -A && "
	          "git -c user.name=t -c user.email=t@example.invalid -c commit.gpgsign=false "
	          "commit -q -m old && "
	          "find . -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} + && "
	          "cp -R --preserve=mode '../%s'/. . && git add -A && "
	          "git -c core.autocrlf=false diff --cached > '../%s.diff'",
	        parent, g, g, a, g, g, b, g) != 0)
		rb_die("git diff %s %s failed", a, b);
	snprintf(g + strlen(g), sizeof(g) - strlen(g), ".diff");
	return slurp(parent, g, len);
}
