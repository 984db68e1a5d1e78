/*
 * Authoring resources for the signing tools: building and changing typed
 * records, the proposal rule, targets of the data directory, the signing
 * state, and writing with a parse-back check (docs/tools.md).
 */
#include "conex/author.h"

#include <stdlib.h>
#include <string.h>

#include "conex/fileio.h"

/* Largest resource file the tools read or write: a datadir's targets fit. */
#define AUTHOR_FILE_MAX (256u * 1024u * 1024u)

struct cx_resource *
cx_author_new(struct cx_arena *a, enum cx_rtype t, const char *name, const char *created)
{
	struct cx_resource *r = cx_arena_alloc(a, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->type = t;
	r->name = cx_arena_strdup(a, name);
	r->created = cx_arena_strdup(a, created);
	if (r->name == NULL || r->created == NULL)
		return NULL;
	return r;
}

/* ---- keys ---- */

int
cx_author_key_add(struct cx_arena *a, struct cx_resource *r, const char *id, const char *created,
    const char *keystr, struct cx_err *e)
{
	const char *eq = strchr(keystr, '=');
	struct cx_key *v, k;
	size_t i;

	memset(&k, 0, sizeof(k));
	if (eq == NULL ||
	    (k.alg = cx_keyalg_from_name(keystr, (size_t)(eq - keystr))) == CX_KEY_NONE)
		return cx_err_set(e, CX_EUNSUPPORTED, "key %s: unknown key algorithm", id);
	k.id = cx_arena_strdup(a, id);
	k.created = cx_arena_strdup(a, created);
	k.keystrlen = strlen(keystr);
	k.keystr = cx_arena_memdup(a, keystr, k.keystrlen);
	if (k.id == NULL || k.created == NULL || k.keystr == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	cx_keyid(k.keystr, k.keystrlen, k.keyid);
	for (i = 0; i < r->nkeys; i++) {
		int c = strcmp(r->keys[i].id, id);
		if (c == 0) {
			/* the same key again keeps its entry: re-running a command changes nothing */
			if (r->keys[i].keystrlen != k.keystrlen ||
			    memcmp(r->keys[i].keystr, k.keystr, k.keystrlen) != 0)
				r->keys[i] = k;
			return 0;
		}
		if (c > 0)
			break;
	}
	if ((v = cx_arena_alloc(a, (r->nkeys + 1) * sizeof(*v))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if (i)
		memcpy(v, r->keys, i * sizeof(*v));
	v[i] = k;
	if (r->nkeys > i)
		memcpy(v + i + 1, r->keys + i, (r->nkeys - i) * sizeof(*v));
	r->keys = v;
	r->nkeys++;
	return 0;
}

int
cx_author_key_remove(struct cx_resource *r, const char *id, struct cx_err *e)
{
	size_t i;

	for (i = 0; i < r->nkeys; i++)
		if (strcmp(r->keys[i].id, id) == 0)
			break;
	if (i == r->nkeys)
		return cx_err_set(e, CX_ENOENT, "%s has no key %s", r->name, id);
	memmove(r->keys + i, r->keys + i + 1, (r->nkeys - i - 1) * sizeof(*r->keys));
	r->nkeys--;
	return 0;
}

/* ---- quorum expressions ---- */

static int
keyref_qcmp(const void *x, const void *y)
{
	return cx_keyref_cmp(x, y);
}

static int
quorum_copy(struct cx_arena *a, struct cx_expr **x, size_t extra, struct cx_err *e)
{
	struct cx_expr *o = *x, *n;

	if (o != NULL && o->kind != CX_EXPR_QUORUM)
		return cx_err_set(e, CX_EUNSUPPORTED,
		    "the expression is an and/or: edit it by hand, the tools change quorums only");
	if ((n = cx_arena_alloc(a, sizeof(*n))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	n->kind = CX_EXPR_QUORUM;
	n->n = o != NULL ? o->n : 0;
	if ((o != NULL ? o->nrefs : 0) + extra > 0 &&
	    (n->refs = cx_arena_alloc(
	         a, ((o != NULL ? o->nrefs : 0) + extra) * sizeof(*n->refs))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if (o != NULL && o->nrefs) {
		memcpy(n->refs, o->refs, o->nrefs * sizeof(*n->refs));
		n->nrefs = o->nrefs;
	}
	*x = n;
	return 0;
}

static int
quorum_threshold(struct cx_expr *x, int64_t n, int grew, struct cx_err *e)
{
	if (n >= 0) {
		if ((uint64_t)n > x->nrefs)
			return cx_err_set(e, CX_EINVAL, "quorum %lld is more than the %zu keys",
			    (long long)n, x->nrefs);
		x->n = n;
		return 0;
	}
	if (grew && x->n == 0)
		x->n = 1; /* (0 []) is valid without any signature: never keep it */
	if ((uint64_t)x->n > x->nrefs)
		x->n = (int64_t)x->nrefs;
	return 0;
}

int
cx_author_quorum_add(
    struct cx_arena *a, struct cx_expr **x, const struct cx_keyref *k, int64_t n, struct cx_err *e)
{
	struct cx_expr *q = *x; /* a copy: *x stays as it was on failure */
	size_t i;
	int rc;

	if ((rc = quorum_copy(a, &q, 1, e)) != 0)
		return rc;
	for (i = 0; i < q->nrefs; i++)
		if (cx_id_equal(q->refs[i].id, k->id))
			break;
	q->refs[i] = *k;
	if (i == q->nrefs)
		q->nrefs++;
	qsort(q->refs, q->nrefs, sizeof(*q->refs), keyref_qcmp);
	if ((rc = quorum_threshold(q, n, 1, e)) != 0)
		return rc;
	*x = q;
	return 0;
}

int
cx_author_quorum_remove(
    struct cx_arena *a, struct cx_expr **x, const char *id, int64_t n, struct cx_err *e)
{
	struct cx_expr *q = *x;
	size_t i;
	int rc;

	if ((rc = quorum_copy(a, &q, 0, e)) != 0)
		return rc;
	for (i = 0; i < q->nrefs; i++)
		if (cx_id_equal(q->refs[i].id, id))
			break;
	if (i == q->nrefs)
		return cx_err_set(e, CX_ENOENT, "%s is not in the quorum", id);
	memmove(q->refs + i, q->refs + i + 1, (q->nrefs - i - 1) * sizeof(*q->refs));
	q->nrefs--;
	if ((rc = quorum_threshold(q, n, 0, e)) != 0)
		return rc;
	*x = q;
	return 0;
}

/* ---- the proposal rule ---- */

int
cx_author_propose(struct cx_arena *a, struct cx_resource *r, const uint8_t *before,
    size_t beforelen, int *changed, const char ***dropped, size_t *ndropped, struct cx_err *e)
{
	struct cx_buf now;
	const char **v = NULL;
	size_t i;
	int rc;

	*changed = 0;
	*dropped = NULL;
	*ndropped = 0;
	cx_buf_init(&now, 0);
	if ((rc = cx_resource_canon(r, &now)) != 0) {
		cx_buf_free(&now);
		return cx_err_set(e, rc, "%s: cannot serialise", r->name);
	}
	*changed = now.len != beforelen || memcmp(now.d, before, beforelen) != 0;
	cx_buf_free(&now);
	if (!*changed || r->nsigs == 0)
		return 0;
	/* the signatures were over the old content: the new one is a new version */
	if (r->counter == UINT64_MAX)
		return cx_err_set(e, CX_EREJECT,
		    "%s: the counter is at its maximum 0x%llX: rotate to a new epoch (conex targets "
		    "rotate %s, or snapshot/timestamp --reset-epoch)",
		    r->name, (unsigned long long)r->counter, r->name);
	if ((v = cx_arena_alloc(a, r->nsigs * sizeof(*v))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	for (i = 0; i < r->nsigs; i++)
		v[i] = r->sigs[i].id;
	*dropped = v;
	*ndropped = r->nsigs;
	r->counter++;
	r->sigs = NULL;
	r->nsigs = 0;
	return 0;
}

/* ---- targets ---- */

/*
 * rel is a path below the datadir: N/N.V/opam or N/N.V/files/F, with N.V
 * starting with "N." (the shapes the verifier accepts for a release).
 */
static int
release_path(const char *rel)
{
	const char *s1 = strchr(rel, '/'), *s2, *rest;
	size_t nl;

	if (s1 == NULL || (s2 = strchr(s1 + 1, '/')) == NULL)
		return 0;
	nl = (size_t)(s1 - rel);
	if ((size_t)(s2 - s1 - 1) <= nl + 1 || strncmp(s1 + 1, rel, nl) != 0 || s1[1 + nl] != '.')
		return 0;
	rest = s2 + 1;
	if (strcmp(rest, "opam") == 0)
		return 1;
	return strncmp(rest, "files/", 6) == 0 && rest[6] != 0 && strchr(rest + 6, '/') == NULL;
}

static int
target_cmp(const void *x, const void *y)
{
	return strcmp(((const struct cx_target *)x)->path, ((const struct cx_target *)y)->path);
}

int
cx_author_target_of(
    struct cx_arena *a, const char *path, const uint8_t *d, size_t n, struct cx_target *out)
{
	uint8_t h[CX_SHA256_LEN];
	char *hex;

	memset(out, 0, sizeof(*out));
	cx_sha256(d, n, h);
	if ((hex = cx_arena_alloc(a, CX_SHA256_HEX + 1)) == NULL ||
	    (out->digests = cx_arena_alloc(a, sizeof(*out->digests))) == NULL ||
	    (out->path = cx_arena_strdup(a, path)) == NULL)
		return CX_ENOMEM;
	cx_hex_encode(h, CX_SHA256_LEN, hex);
	out->digests[0] = (struct cx_digest){hex, CX_SHA256_HEX};
	out->ndigests = 1;
	out->size = n;
	return 0;
}

static int
compute_one(struct cx_repo *repo, const char *datadir, const char *dir, int named,
    struct cx_arena *a, struct cx_target **v, size_t *n, size_t *cap, struct cx_err *e)
{
	struct cx_file_list l;
	size_t i, dl = strlen(datadir);
	int rc;

	if ((rc = cx_repo_walk(repo, dir, &l, e)) != 0) {
		cx_file_list_free(&l);
		return rc;
	}
	if (named && l.n == 0) {
		cx_file_list_free(&l);
		return cx_err_set(e, CX_ENOENT, "%s: no such package (no files)", dir);
	}
	if ((*v = cx_arena_grow(a, *v, sizeof(**v), cap, *n + l.n)) == NULL && *n + l.n > 0) {
		cx_file_list_free(&l);
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	}
	for (i = 0; i < l.n; i++) {
		const struct cx_file_entry *f = &l.v[i];
		struct cx_target *t = &(*v)[*n];
		char *hex;
		if (strncmp(f->path, datadir, dl) != 0 || f->path[dl] != '/' ||
		    !release_path(f->path + dl + 1)) {
			rc = cx_err_set(e, CX_EREJECT,
			    "%s: not a package file (want %s/N/N.V/opam or %s/N/N.V/files/F)",
			    f->path, datadir, datadir);
			break;
		}
		if ((hex = cx_arena_alloc(a, CX_SHA256_HEX + 1)) == NULL ||
		    (t->digests = cx_arena_alloc(a, sizeof(*t->digests))) == NULL ||
		    (t->path = cx_arena_strdup(a, f->path)) == NULL) {
			rc = cx_err_set(e, CX_ENOMEM, "out of memory");
			break;
		}
		cx_hex_encode(f->sha256, CX_SHA256_LEN, hex);
		t->digests[0] = (struct cx_digest){hex, CX_SHA256_HEX};
		t->ndigests = 1;
		t->size = f->size;
		(*n)++;
	}
	cx_file_list_free(&l);
	return rc;
}

int
cx_author_targets_compute(struct cx_repo *repo, const char *datadir, const char *const *pkgs,
    size_t npkgs, struct cx_arena *a, struct cx_target **out, size_t *n, struct cx_err *e)
{
	struct cx_target *v = NULL;
	size_t cap = 0, i;
	int rc;

	*out = NULL;
	*n = 0;
	if (npkgs == 0)
		return compute_one(repo, datadir, datadir, 0, a, out, n, &cap, e);
	for (i = 0; i < npkgs; i++) {
		char *dir;
		if (strchr(pkgs[i], '/') != NULL || cx_path_check(pkgs[i], strlen(pkgs[i])) != 0)
			return cx_err_set(e, CX_EINVAL, "'%s': not a package name", pkgs[i]);
		if ((dir = cx_arena_alloc(a, strlen(datadir) + strlen(pkgs[i]) + 2)) == NULL)
			return cx_err_set(e, CX_ENOMEM, "out of memory");
		strcpy(dir, datadir);
		strcat(dir, "/");
		strcat(dir, pkgs[i]);
		if ((rc = compute_one(repo, datadir, dir, 1, a, &v, n, &cap, e)) != 0)
			return rc;
	}
	if (*n > 1)
		qsort(v, *n, sizeof(*v), target_cmp);
	*out = v;
	return 0;
}

/* Is path below datadir/pkg (or below datadir when pkg is NULL)? */
static int
below(const char *path, const char *datadir, const char *pkg)
{
	size_t dl = strlen(datadir), pl;

	if (strncmp(path, datadir, dl) != 0 || path[dl] != '/')
		return 0;
	if (pkg == NULL)
		return 1;
	pl = strlen(pkg);
	return strncmp(path + dl + 1, pkg, pl) == 0 && path[dl + 1 + pl] == '/';
}

int
cx_author_targets_replace(struct cx_arena *a, struct cx_resource *r, const char *datadir,
    const char *const *pkgs, size_t npkgs, const struct cx_target *v, size_t n, struct cx_err *e)
{
	struct cx_target *nv;
	size_t i, j, m = 0;

	if ((nv = cx_arena_alloc(a, (r->ntargets + n + 1) * sizeof(*nv))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	for (i = 0; i < r->ntargets; i++) {
		int replaced = 0;
		if (npkgs == 0)
			replaced = below(r->targets[i].path, datadir, NULL);
		for (j = 0; j < npkgs && !replaced; j++)
			replaced = below(r->targets[i].path, datadir, pkgs[j]);
		if (!replaced)
			nv[m++] = r->targets[i];
	}
	if (n)
		memcpy(nv + m, v, n * sizeof(*nv));
	m += n;
	if (m > 1)
		qsort(nv, m, sizeof(*nv), target_cmp);
	r->targets = nv;
	r->ntargets = m;
	return 0;
}

/* ---- delegations ---- */

static struct cx_delegation *
find_delegation(struct cx_resource *r, const char *path)
{
	for (size_t i = 0; i < r->ndels; i++)
		for (size_t j = 0; j < r->dels[i].npaths; j++)
			if (strcmp(r->dels[i].paths[j], path) == 0)
				return &r->dels[i];
	return NULL;
}

int
cx_author_delegate(struct cx_arena *a, struct cx_resource *r, const char *path,
    struct cx_expr *valid, int terminating, struct cx_err *e)
{
	struct cx_delegation *d = find_delegation(r, path), *v;

	if (cx_path_check(path, strlen(path)) != 0)
		return cx_err_set(e, CX_EINVAL, "'%s': not a valid path", path);
	if (d != NULL && d->npaths > 1)
		return cx_err_set(e, CX_EUNSUPPORTED,
		    "%s: the delegation of %s covers several paths: undelegate it first", r->name,
		    path);
	if (d == NULL) {
		if ((v = cx_arena_alloc(a, (r->ndels + 1) * sizeof(*v))) == NULL)
			return cx_err_set(e, CX_ENOMEM, "out of memory");
		if (r->ndels)
			memcpy(v, r->dels, r->ndels * sizeof(*v));
		r->dels = v;
		d = &v[r->ndels++];
		if ((d->paths = cx_arena_alloc(a, sizeof(*d->paths))) == NULL ||
		    (d->paths[0] = cx_arena_strdup(a, path)) == NULL)
			return cx_err_set(e, CX_ENOMEM, "out of memory");
		d->npaths = 1;
	}
	d->valid = valid;
	d->terminating = terminating;
	return 0;
}

int
cx_author_undelegate(
    struct cx_arena *a, struct cx_resource *r, const char *path, const char *to, struct cx_err *e)
{
	struct cx_delegation *d = find_delegation(r, path);
	size_t i;
	int rc;

	if (d == NULL)
		return cx_err_set(e, CX_ENOENT, "%s delegates no %s", r->name, path);
	if (to != NULL) {
		if ((rc = cx_author_quorum_remove(a, &d->valid, to, -1, e)) != 0)
			return cx_err_prefix(e, "%s: delegation of %s", r->name, path);
		if (d->valid->nrefs > 0) {
			if (d->valid->n == 0)
				d->valid->n = 1;
			return 0;
		}
	}
	i = (size_t)(d - r->dels);
	memmove(r->dels + i, r->dels + i + 1, (r->ndels - i - 1) * sizeof(*r->dels));
	r->ndels--;
	return 0;
}

int
cx_author_key_hash(const struct cx_resource *t, char out[7 + CX_SHA256_HEX + 1], struct cx_err *e)
{
	uint8_t h[CX_SHA256_LEN];
	int rc;

	if (t->valid == NULL)
		return cx_err_set(e, CX_EINVAL, "%s: no valid expression", t->name);
	if ((rc = cx_expr_hash(t->valid, t, h, e)) != 0)
		return cx_err_prefix(e, "%s", t->name);
	memcpy(out, "sha256=", 7);
	cx_hex_encode(h, CX_SHA256_LEN, out + 7);
	return 0;
}

/* ---- signing state ---- */

struct good_set {
	struct cx_arena *a;
	const char **v;
	size_t n, cap;
	int oom;
};

static int
good_add(void *arg, const struct cx_sig *s, const struct cx_key *k)
{
	struct good_set *g = arg;

	(void)k;
	if ((g->v = cx_arena_grow(g->a, g->v, sizeof(*g->v), &g->cap, g->n + 1)) == NULL) {
		g->oom = 1;
		return CX_ENOMEM;
	}
	g->v[g->n++] = s->id;
	return 0;
}

static int
in_list(const char **v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], id) == 0)
			return 1;
	return 0;
}

static int
local_signed(void *arg, const char *id)
{
	const struct good_set *g = arg;
	return in_list(g->v, g->n, id);
}

/* How many more local signatures x needs (INT64_MAX / 2 when it never can be met). */
static int64_t
need_of(const struct cx_expr *x, const struct good_set *g)
{
	int64_t have = 0, open = 0, a, b;
	size_t i;

	switch (x->kind) {
	case CX_EXPR_AND:
		a = need_of(x->a, g);
		b = need_of(x->b, g);
		return a + b > INT64_MAX / 2 ? INT64_MAX / 2 : a + b;
	case CX_EXPR_OR:
		a = need_of(x->a, g);
		b = need_of(x->b, g);
		return a < b ? a : b;
	case CX_EXPR_QUORUM:
		for (i = 0; i < x->nrefs; i++) {
			if (x->refs[i].remote)
				continue; /* a root or targets signature never satisfies a remote */
			if (in_list(g->v, g->n, x->refs[i].id))
				have++;
			else
				open++;
		}
		if (have >= x->n)
			return 0;
		return x->n - have <= open ? x->n - have : INT64_MAX / 2;
	}
	return INT64_MAX / 2;
}

static int
could_add(struct cx_arena *a, const struct cx_expr *x, const struct good_set *g,
    struct cx_sigstate *s, size_t *cap)
{
	size_t i;
	int rc;

	if (x->kind != CX_EXPR_QUORUM) {
		if ((rc = could_add(a, x->a, g, s, cap)) != 0)
			return rc;
		return could_add(a, x->b, g, s, cap);
	}
	for (i = 0; i < x->nrefs; i++) {
		const char *id = x->refs[i].id;
		if (x->refs[i].remote || in_list(g->v, g->n, id) ||
		    in_list(s->could, s->ncould, id))
			continue;
		if ((s->could = cx_arena_grow(
		         a, s->could, sizeof(*s->could), cap, s->ncould + 1)) == NULL)
			return CX_ENOMEM;
		s->could[s->ncould++] = id;
	}
	return 0;
}

int
cx_author_sigstate(
    struct cx_arena *a, const struct cx_resource *r, struct cx_sigstate *s, struct cx_err *e)
{
	struct good_set g = {a, NULL, 0, 0, 0};
	struct cx_expr_env env = {local_signed, NULL, &g};
	struct cx_buf canon;
	size_t i, cap = 0;
	int rc;

	memset(s, 0, sizeof(*s));
	cx_buf_init(&canon, 0);
	if ((rc = cx_resource_canon(r, &canon)) != 0) {
		cx_buf_free(&canon);
		return cx_err_set(e, rc, "%s: cannot serialise", r->name);
	}
	rc = cx_resource_verify_sigs(r, canon.d, canon.len, good_add, &g, NULL, e);
	cx_buf_free(&canon);
	if (rc != 0 || g.oom)
		return g.oom ? cx_err_set(e, CX_ENOMEM, "out of memory") : rc;
	s->good = g.v;
	s->ngood = g.n;
	if (r->nsigs && (s->stale = cx_arena_alloc(a, r->nsigs * sizeof(*s->stale))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	for (i = 0; i < r->nsigs; i++)
		if (!in_list(g.v, g.n, r->sigs[i].id))
			s->stale[s->nstale++] = r->sigs[i].id;
	if (r->valid == NULL) {
		/* snapshot and timestamp: the root's role, one signature */
		s->met = g.n > 0;
		s->need = s->met ? 0 : 1;
		return 0;
	}
	s->met = cx_expr_eval(r->valid, &env);
	s->need = s->met ? 0 : need_of(r->valid, &g);
	if (!s->met && could_add(a, r->valid, &g, s, &cap) != 0)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	return 0;
}

/* ---- writing ---- */

static int
sigs_equal(const struct cx_resource *x, const struct cx_resource *y)
{
	if (x->nsigs != y->nsigs)
		return 0;
	for (size_t i = 0; i < x->nsigs; i++) {
		const struct cx_sig *a = &x->sigs[i], *b = &y->sigs[i];
		if (strcmp(a->id, b->id) != 0 || strcmp(a->created, b->created) != 0 ||
		    a->alg != b->alg || a->valuelen != b->valuelen ||
		    memcmp(a->value, b->value, a->valuelen) != 0)
			return 0;
	}
	return 1;
}

int
cx_author_serialise(
    const struct cx_resource *r, const char *name, struct cx_buf *out, struct cx_err *e)
{
	struct cx_arena a;
	struct cx_resource *back;
	struct cx_buf c0, c1;
	int rc;

	cx_buf_reset(out);
	if ((rc = cx_resource_write(r, out, e)) != 0) {
		cx_buf_reset(out);
		return cx_err_prefix(e, "%s", name);
	}
	cx_arena_init(&a, 0);
	cx_buf_init(&c0, 0);
	cx_buf_init(&c1, 0);
	if ((rc = cx_resource_parse(&a, name, out->d, out->len, r->type, &back, NULL, e)) != 0) {
		cx_err_prefix(e, "the bytes written do not parse back");
		goto out;
	}
	if ((rc = cx_resource_canon(r, &c0)) != 0 || (rc = cx_resource_canon(back, &c1)) != 0) {
		rc = cx_err_set(e, rc, "%s: cannot serialise", name);
		goto out;
	}
	if (c0.len != c1.len || memcmp(c0.d, c1.d, c0.len) != 0 || !sigs_equal(r, back) ||
	    strcmp(r->name, back->name) != 0) {
		rc = cx_err_set(e, CX_EPARSE,
		    "%s: the bytes written parse back to other values (signed part or signatures "
		    "differ): not written",
		    name);
		goto out;
	}
out:
	cx_buf_free(&c0);
	cx_buf_free(&c1);
	cx_arena_free(&a);
	if (rc != 0)
		cx_buf_reset(out);
	return rc;
}

int
cx_author_write(const char *path, const struct cx_resource *r, struct cx_err *e)
{
	struct cx_buf b;
	int rc;

	cx_buf_init(&b, AUTHOR_FILE_MAX);
	if ((rc = cx_author_serialise(r, path, &b, e)) == 0)
		rc = cx_file_write_atomic(path, b.d, b.len, 0644, e);
	cx_buf_free(&b);
	return rc;
}
