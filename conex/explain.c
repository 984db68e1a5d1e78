/*
 * conex status / conex check: the evaluation is verify.c's, observed (struct
 * cx_verify_observer in keep-going mode); this file only records what it
 * saw, relates it to the changed files and prints it.  The verdict is a
 * separate, unobserved cx_verify_* run, exactly what `conex verify` does.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conex/explain.h"
#include "conex/overrides.h"

/* A work-queue item as the observer reported it (copied: verify's memory goes away). */
struct xitem {
	int seen;
	const char *path;
	struct cx_expr *expr;
	int terminating;
	size_t ovr;
	const char **counting;
	size_t ncounting;
	int met;
};

struct xclaim {
	size_t item;
	const char *path;
	const char *digest;
	uint64_t size;
	const char **sup;
	size_t nsup;
	int accepted;
};

struct xident {
	const char *id;
	size_t overlay;
	int parsed, valid;
	uint64_t counter, epoch;
	char vhex[CX_SHA256_HEX + 1];
	int vhash_ok;
	struct cx_expr *vexpr;
	const char **signers;
	size_t nsigners;
	const char *why;
};

struct cx_explain_priv {
	struct cx_explain *x;
	const struct cx_verify_opts *o;
	struct xitem *items;
	size_t nitems, capitems;
	struct xclaim *claims;
	size_t nclaims, capclaims;
	struct xident *ids;
	size_t nids, capids;
	size_t capproblems, capfiles;
	size_t *byp; /* the seen items' numbers, by path: what governs a file is a prefix lookup */
	size_t nbyp;
	int oom;
};

const char *
cx_explain_status_name(enum cx_explain_status s)
{
	switch (s) {
	case CX_EX_OK:
		return "OK";
	case CX_EX_IGNORED:
		return "IGNORED";
	case CX_EX_NOT_YET:
		return "NOT YET";
	case CX_EX_MISMATCH:
		return "MISMATCH";
	case CX_EX_UNCOVERED:
		return "UNCOVERED";
	case CX_EX_MISSING:
		return "MISSING";
	case CX_EX_INVALID:
		return "INVALID";
	}
	return "?";
}

static const char *
stage_name(enum cx_stage s)
{
	static const char *const n[] = {
	    "?", "root", "timestamp", "snapshot", "keydir", "targets", "data"};
	return (size_t)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

/* A list of ids copied into the arena. */
static const char **
ids_dup(struct cx_arena *a, const char *const *v, size_t n)
{
	const char **c = cx_arena_alloc(a, (n + 1) * sizeof(*c));

	for (size_t i = 0; c != NULL && i < n; i++)
		if ((c[i] = cx_arena_strdup(a, v[i])) == NULL)
			return NULL;
	return c;
}

/* Deep copy of an expression: its keyrefs point into verify's arena. */
static struct cx_expr *
expr_dup(struct cx_arena *a, const struct cx_expr *x, int depth)
{
	struct cx_expr *c;

	if (x == NULL || depth > CX_WIRE_MAX_DEPTH || (c = cx_arena_alloc(a, sizeof(*c))) == NULL)
		return NULL;
	*c = *x;
	if (x->kind != CX_EXPR_QUORUM) {
		c->a = expr_dup(a, x->a, depth + 1);
		c->b = expr_dup(a, x->b, depth + 1);
		return c->a != NULL && c->b != NULL ? c : NULL;
	}
	if (x->nrefs && (c->refs = cx_arena_alloc(a, x->nrefs * sizeof(*c->refs))) == NULL)
		return NULL;
	for (size_t i = 0; i < x->nrefs; i++) {
		c->refs[i] = x->refs[i];
		if ((c->refs[i].id = cx_arena_strdup(a, x->refs[i].id)) == NULL)
			return NULL;
		if (x->refs[i].remote &&
		    (c->refs[i].digest.value = cx_arena_memdup(
		         a, x->refs[i].digest.value, x->refs[i].digest.len)) == NULL)
			return NULL;
	}
	return c;
}

/* ---- the observer ---- */

static void
ob_problem(void *arg, enum cx_stage st, const char *msg)
{
	struct cx_explain_priv *p = arg;
	struct cx_explain *x = p->x;
	struct cx_explain_problem *n;

	n = cx_arena_grow(&x->a, x->problems, sizeof(*n), &p->capproblems, x->nproblems + 1);
	if (n == NULL) {
		p->oom = 1;
		return;
	}
	x->problems = n;
	n[x->nproblems] = (struct cx_explain_problem){st, cx_arena_strdup(&x->a, msg)};
	if (n[x->nproblems].msg == NULL)
		p->oom = 1;
	x->nproblems++;
}

static void
ob_identity(void *arg, const char *id, size_t overlay, const struct cx_resource *t, int valid,
    const char *const *signers, size_t nsigners, const char *why)
{
	struct cx_explain_priv *p = arg;
	struct cx_arena *a = &p->x->a;
	struct xident *n, *d;
	uint8_t h[CX_SHA256_LEN];
	struct cx_err le;

	if ((n = cx_arena_grow(a, p->ids, sizeof(*n), &p->capids, p->nids + 1)) == NULL) {
		p->oom = 1;
		return;
	}
	p->ids = n;
	d = &n[p->nids++];
	memset(d, 0, sizeof(*d));
	d->id = cx_arena_strdup(a, id);
	d->overlay = overlay;
	d->valid = valid;
	d->why = why ? cx_arena_strdup(a, why) : NULL;
	d->signers = ids_dup(a, signers, signers ? nsigners : 0);
	d->nsigners = signers ? nsigners : 0;
	if (t != NULL) {
		d->parsed = 1;
		d->counter = t->counter;
		d->epoch = t->epoch;
		d->vexpr = expr_dup(a, t->valid, 0);
		if (cx_expr_hash(t->valid, t, h, &le) == 0) {
			cx_hex_encode(h, CX_SHA256_LEN, d->vhex);
			d->vhash_ok = 1;
		}
	}
	if (d->id == NULL || d->signers == NULL || (t != NULL && d->vexpr == NULL))
		p->oom = 1;
}

static void
ob_delegation(void *arg, size_t item, const char *path, const struct cx_expr *xp, int terminating,
    size_t ovr, const char *const *counting, size_t ncounting, int met)
{
	struct cx_explain_priv *p = arg;
	struct cx_arena *a = &p->x->a;
	struct xitem *n;

	if ((n = cx_arena_grow(a, p->items, sizeof(*n), &p->capitems, item + 1)) == NULL) {
		p->oom = 1;
		return;
	}
	p->items = n;
	if (item >= p->nitems)
		p->nitems = item + 1;
	n[item] = (struct xitem){1, cx_arena_strdup(a, path), expr_dup(a, xp, 0), terminating, ovr,
	    ids_dup(a, counting, ncounting), ncounting, met};
	if (n[item].path == NULL || n[item].expr == NULL || n[item].counting == NULL)
		p->oom = 1;
}

static void
ob_claim(void *arg, size_t item, const char *path, const struct cx_digest *d, uint64_t size,
    const char *const *sup, size_t nsup, int accepted)
{
	struct cx_explain_priv *p = arg;
	struct cx_arena *a = &p->x->a;
	struct xclaim *n;

	if ((n = cx_arena_grow(a, p->claims, sizeof(*n), &p->capclaims, p->nclaims + 1)) == NULL) {
		p->oom = 1;
		return;
	}
	p->claims = n;
	n[p->nclaims] = (struct xclaim){item, cx_arena_strdup(a, path),
	    cx_arena_memdup(a, d->value, d->len), size, ids_dup(a, sup, nsup), nsup, accepted};
	if (n[p->nclaims].path == NULL || n[p->nclaims].digest == NULL || n[p->nclaims].sup == NULL)
		p->oom = 1;
	p->nclaims++;
}

static int
claim_cmp(const void *x, const void *y)
{
	const struct xclaim *a = x, *b = y;
	int c = strcmp(a->path, b->path);

	return c != 0 ? c : (a->item > b->item) - (a->item < b->item);
}

/* The claims of path: [*first, *first + n). */
static size_t
claims_of(const struct cx_explain_priv *p, const char *path, size_t *first)
{
	size_t lo = 0, hi = p->nclaims, n = 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(p->claims[mid].path, path) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*first = lo;
	while (lo + n < p->nclaims && strcmp(p->claims[lo + n].path, path) == 0)
		n++;
	return n;
}

static int
byp_cmp_r(const void *x, const void *y, void *arg)
{
	const struct cx_explain_priv *p = arg;

	return strcmp(p->items[*(const size_t *)x].path, p->items[*(const size_t *)y].path);
}

static int
index_items(struct cx_explain_priv *p)
{
	if ((p->byp = cx_arena_alloc(&p->x->a, (p->nitems + 1) * sizeof(*p->byp))) == NULL)
		return CX_ENOMEM;
	for (size_t i = 0; i < p->nitems; i++)
		if (p->items[i].seen)
			p->byp[p->nbyp++] = i;
	qsort_r(p->byp, p->nbyp, sizeof(*p->byp), byp_cmp_r, p);
	return 0;
}

/* Calls fn for every seen item whose path is exactly the first n bytes of path. */
static int
items_at(const struct cx_explain_priv *p, const char *path, size_t n,
    int (*fn)(void *arg, size_t item), void *arg)
{
	size_t lo = 0, hi = p->nbyp;
	int r;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *q = p->items[p->byp[mid]].path;
		/* q < path[0, n) in strcmp order: the order of byp */
		if (strncmp(q, path, n) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < p->nbyp; lo++) {
		const char *q = p->items[p->byp[lo]].path;
		if (strncmp(q, path, n) != 0 || q[n] != 0)
			break;
		if ((r = fn(arg, p->byp[lo])) != 0)
			return r;
	}
	return 0;
}

/* ---- text helpers ---- */

static int
has_id(const char *const *v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (cx_id_equal(v[i], id))
			return 1;
	return 0;
}

static int
expr_desc(const struct cx_expr *x, struct cx_buf *b, int depth)
{
	int r;

	if (depth > CX_WIRE_MAX_DEPTH)
		return cx_buf_put_str(b, "...");
	if (x->kind != CX_EXPR_QUORUM) {
		if ((r = cx_buf_put_str(b, "(")) != 0 || (r = expr_desc(x->a, b, depth + 1)) != 0 ||
		    (r = cx_buf_put_str(b, x->kind == CX_EXPR_AND ? ") and (" : ") or (")) != 0 ||
		    (r = expr_desc(x->b, b, depth + 1)) != 0)
			return r;
		return cx_buf_put_str(b, ")");
	}
	if (x->n == 1 && x->nrefs == 1)
		return cx_buf_put_str(b, x->refs[0].id);
	if ((r = cx_buf_putf(b, "%lld of [", (long long)x->n)) != 0)
		return r;
	for (size_t i = 0; i < x->nrefs; i++)
		if ((r = cx_buf_putf(b, "%s%s", i ? " " : "", x->refs[i].id)) != 0)
			return r;
	return cx_buf_put_str(b, "]");
}

static const char *
expr_str(struct cx_arena *a, const struct cx_expr *x)
{
	struct cx_buf b;
	const char *s = NULL;

	cx_buf_init(&b, 0);
	if (x != NULL && expr_desc(x, &b, 0) == 0)
		s = cx_arena_memdup(a, b.d, b.len);
	else if (x == NULL)
		s = "(none)";
	cx_buf_free(&b);
	return s;
}

static const char *
ids_str(struct cx_arena *a, const char *const *v, size_t n, const char *none)
{
	struct cx_buf b;
	const char *s = NULL;
	int r = 0;

	if (n == 0)
		return none;
	cx_buf_init(&b, 0);
	for (size_t i = 0; i < n && r == 0; i++)
		r = cx_buf_putf(&b, "%s%s", i ? ", " : "", v[i]);
	if (r == 0)
		s = cx_arena_memdup(a, b.d, b.len);
	cx_buf_free(&b);
	return s;
}

static int
add_detail(struct cx_explain *x, struct cx_explain_file *f, const char *s)
{
	const char **n;

	if (s == NULL)
		return CX_ENOMEM;
	if ((n = cx_arena_grow(&x->a, f->details, sizeof(*n), &f->capdetails, f->ndetails + 1)) ==
	    NULL)
		return CX_ENOMEM;
	f->details = n;
	n[f->ndetails++] = s;
	return 0;
}

/* ---- data files ---- */

static const struct xident *
ident(const struct cx_explain_priv *p, const char *id, size_t overlay)
{
	for (size_t i = 0; i < p->nids; i++)
		if (strcmp(p->ids[i].id, id) == 0 && p->ids[i].overlay == overlay)
			return &p->ids[i];
	if (overlay != 0)
		return ident(p, id, 0); /* not in the overlay: the repository's */
	return NULL;
}

struct candset {
	struct cx_explain_cand *v;
	size_t n, cap;
};

static int
cands_of(struct cx_explain_priv *p, const struct xitem *it, const struct cx_expr *x,
    const char *const *has, size_t nhas, struct candset *cs, int depth)
{
	struct cx_arena *a = &p->x->a;
	const struct cx_overrides *ov = p->o->overrides;
	size_t ovl = it->ovr && ov != NULL ? ov->v[it->ovr - 1].overlay + 1 : 0;
	int r;

	if (depth > CX_WIRE_MAX_DEPTH)
		return 0;
	if (x->kind != CX_EXPR_QUORUM)
		return (r = cands_of(p, it, x->a, has, nhas, cs, depth + 1)) != 0
		    ? r
		    : cands_of(p, it, x->b, has, nhas, cs, depth + 1);
	for (size_t i = 0; i < x->nrefs; i++) {
		const struct cx_keyref *k = &x->refs[i];
		const struct xident *d;
		struct cx_explain_cand *n, *c;
		size_t j;
		if (has_id(has, nhas, k->id))
			continue;
		for (j = 0; j < cs->n && !cx_id_equal(cs->v[j].id, k->id); j++)
			;
		if (j < cs->n)
			continue;
		if ((n = cx_arena_grow(a, cs->v, sizeof(*n), &cs->cap, cs->n + 1)) == NULL)
			return CX_ENOMEM;
		cs->v = n;
		c = &n[cs->n++];
		c->id = k->id;
		c->counts = has_id(it->counting, it->ncounting, k->id);
		c->why = NULL;
		if (c->counts)
			continue;
		d = ident(p, k->id, ovl);
		if (d == NULL)
			c->why = "its targets file was not read";
		else if (!d->valid)
			c->why = d->why ? d->why : "its targets file is not valid";
		else if (!d->vhash_ok || d->epoch != k->epoch || k->digest.len != CX_SHA256_HEX ||
		    memcmp(k->digest.value, d->vhex, CX_SHA256_HEX) != 0)
			c->why = cx_arena_printf(a,
			    "key hash sha256=%s epoch 0x%llX does not match the delegation's "
			    "sha256=%.*s epoch 0x%llX",
			    d->vhex, (unsigned long long)d->epoch, (int)k->digest.len,
			    k->digest.value, (unsigned long long)k->epoch);
	}
	return 0;
}

static const char *
role_of(struct cx_explain_priv *p, const struct xitem *it)
{
	const struct cx_overrides *ov = p->o->overrides;

	if (it->ovr && ov != NULL)
		return cx_arena_printf(
		    &p->x->a, "local override of %s (%s)", it->path, ov->v[it->ovr - 1].where);
	if (*it->path == 0)
		return "maintainer role";
	return cx_arena_printf(
	    &p->x->a, "%sdelegation of %s", it->terminating ? "terminating " : "", it->path);
}

static int
gov_cmp(const void *x, const void *y)
{
	const struct cx_explain_gov *a = x, *b = y;
	size_t la = strlen(a->path), lb = strlen(b->path);

	return (la < lb) - (la > lb); /* the most specific first */
}

static const char *
gov_line(struct cx_arena *a, const struct cx_explain_gov *g)
{
	struct cx_buf b;
	const char *s = NULL;
	int r;

	cx_buf_init(&b, 0);
	r = cx_buf_putf(&b, "needs %s (%s); has %s", g->expr, g->role,
	    g->nhas ? ids_str(a, g->has, g->nhas, "") : "nobody");
	if (r == 0 && g->missing > 0)
		r = cx_buf_putf(&b, "; missing %lld", (long long)g->missing);
	for (size_t i = 0; r == 0 && i < g->ncand; i++)
		r = cx_buf_putf(&b, "%s%s%s%s%s", i ? ", " : "; can complete: ", g->cand[i].id,
		    g->cand[i].counts ? "" : " (not counting: ",
		    g->cand[i].counts    ? ""
		        : g->cand[i].why ? g->cand[i].why
		                         : "?",
		    g->cand[i].counts ? "" : ")");
	if (r == 0)
		s = cx_arena_memdup(a, b.d, b.len);
	cx_buf_free(&b);
	return s;
}

struct itemlist {
	size_t *v, n, cap;
};

static int
itemlist_add(void *arg, size_t item)
{
	struct itemlist *l = arg;

	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 16;
		size_t *n = realloc(l->v, ncap * sizeof(*n));
		if (n == NULL)
			return CX_ENOMEM;
		l->v = n;
		l->cap = ncap;
	}
	l->v[l->n++] = item;
	return 0;
}

/* The items whose path is "" or a directory above path: what can govern it (§7.5). */
static int
items_above(const struct cx_explain_priv *p, const char *path, struct itemlist *l)
{
	int r = items_at(p, path, 0, itemlist_add, l);

	for (const char *s = path; r == 0 && (s = strchr(s, '/')) != NULL; s++)
		r = items_at(p, path, (size_t)(s - path), itemlist_add, l);
	return r;
}

static int
explain_data(struct cx_explain_priv *p, struct cx_explain_file *f)
{
	struct cx_explain *x = p->x;
	struct cx_arena *a = &x->a;
	const struct cx_overrides *ov = p->o->overrides;
	size_t first, nc = claims_of(p, f->path, &first), i, j;
	int acc_this = 0, acc_other = 0, listed = 0, r;
	const struct xclaim *other = NULL;

	struct itemlist il = {0};
	size_t *iv = NULL, niv;

	/* the list goes to the arena at once, so that every return below is clean */
	r = items_above(p, f->path, &il);
	if (r == 0 && il.n)
		iv = cx_arena_memdup(a, il.v, il.n * sizeof(*il.v));
	niv = il.n;
	free(il.v);
	if (r != 0 || (niv && iv == NULL) ||
	    (f->gov = cx_arena_alloc(a, (niv + 1) * sizeof(*f->gov))) == NULL)
		return CX_ENOMEM;
	for (size_t k = 0; k < niv; k++) {
		const struct xitem *it = &p->items[i = iv[k]];
		struct cx_explain_gov *g;
		struct candset cs = {0};
		if (!cx_path_below(it->path, f->path))
			continue;
		if (it->ovr == 0 && ov != NULL && cx_overrides_find(ov, f->path) != NULL)
			continue; /* verify ignores it there */
		g = &f->gov[f->ngov++];
		g->path = it->path;
		g->role = role_of(p, it);
		g->expr = expr_str(a, it->expr);
		g->has = NULL;
		g->missing = -1;
		for (j = first; j < first + nc; j++) {
			const struct xclaim *c = &p->claims[j];
			if (c->item != i)
				continue;
			if (!f->deleted && c->size == f->size &&
			    strcmp(c->digest, f->sha256) == 0) {
				g->has = c->sup;
				g->nhas = c->nsup;
				g->met = c->accepted;
			}
		}
		if (g->has == NULL && (g->has = cx_arena_alloc(a, sizeof(*g->has))) == NULL)
			return CX_ENOMEM;
		if (it->expr->kind == CX_EXPR_QUORUM) {
			int64_t have = 0;
			for (j = 0; j < it->expr->nrefs; j++)
				have += has_id(g->has, g->nhas, it->expr->refs[j].id);
			g->missing = it->expr->n > have ? it->expr->n - have : 0;
		}
		if (!g->met) {
			if ((r = cands_of(p, it, it->expr, g->has, g->nhas, &cs, 0)) != 0)
				return r;
			g->cand = cs.v;
			g->ncand = cs.n;
		}
		if (g->role == NULL || g->expr == NULL)
			return CX_ENOMEM;
	}
	if (f->ngov > 1)
		qsort(f->gov, f->ngov, sizeof(*f->gov), gov_cmp);
	for (j = first; j < first + nc; j++) {
		const struct xclaim *c = &p->claims[j];
		int same = !f->deleted && c->size == f->size && strcmp(c->digest, f->sha256) == 0;
		if (same) {
			listed = 1;
			acc_this |= c->accepted;
		} else if (c->accepted) {
			acc_other = 1;
			other = c;
		}
	}
	for (j = first; j < first + nc; j++) {
		const struct xclaim *c = &p->claims[j];
		if (!f->deleted && c->size == f->size && strcmp(c->digest, f->sha256) == 0)
			continue;
		if ((r = add_detail(x, f,
		         cx_arena_printf(a,
		             "listed with other bytes (sha256=%s, %llu bytes) by %s%s", c->digest,
		             (unsigned long long)c->size, ids_str(a, c->sup, c->nsup, "nobody"),
		             c->accepted ? ", accepted" : ""))) != 0)
			return r;
	}
	if (f->deleted) {
		f->st = acc_other ? CX_EX_MISSING : CX_EX_OK;
		f->summary = acc_other
		    ? "deleted, but valid targets still list it (they must drop it)"
		    : "deleted, and no valid targets list it";
		return 0;
	}
	if (acc_this) {
		f->st = CX_EX_OK;
		for (i = 0; i < f->ngov && !f->gov[i].met; i++)
			;
		f->summary = i < f->ngov
		    ? cx_arena_printf(a, "%s (%s); has %s", f->gov[i].expr, f->gov[i].role,
		          ids_str(a, f->gov[i].has, f->gov[i].nhas, "nobody"))
		    : "accepted";
	} else if (acc_other) {
		f->st = CX_EX_MISMATCH;
		f->summary = cx_arena_printf(a,
		    "sha256=%s (%llu bytes) does not match its valid targets (sha256=%s, %llu "
		    "bytes by %s): tampered, or not signed yet",
		    f->sha256, (unsigned long long)f->size, other->digest,
		    (unsigned long long)other->size, ids_str(a, other->sup, other->nsup, "nobody"));
	} else if (f->ngov == 0) {
		f->st = CX_EX_UNCOVERED;
		f->summary = "no delegation reaches it: nobody can sign it";
	} else {
		f->st = listed ? CX_EX_NOT_YET : CX_EX_UNCOVERED;
		f->summary = gov_line(a, &f->gov[0]);
	}
	/* the other governing expressions (the summary showed the first one) */
	for (i = f->st == CX_EX_NOT_YET || (f->st == CX_EX_UNCOVERED && f->ngov) ? 1 : 0;
	     i < f->ngov && f->st != CX_EX_OK; i++)
		if ((r = add_detail(x, f,
		         f->gov[i].met
		             ? cx_arena_printf(a, "met: %s (%s)", f->gov[i].expr, f->gov[i].role)
		             : cx_arena_printf(a, "or: %s", gov_line(a, &f->gov[i])))) != 0)
			return r;
	return f->summary == NULL ? CX_ENOMEM : 0;
}

/* ---- metadata files ---- */

struct run {
	struct cx_explain_priv *p;
	struct cx_repo *base, *view;
	const struct cx_patch *patch;
	struct cx_resource *root; /* the new tree's, parsed without verification */
	struct cx_buf buf;
};

/* Parses a resource of the new (new = 1) or base tree, unverified: for counters and listings. */
static struct cx_resource *
peek(struct run *rn, int new, const char *path, enum cx_rtype t, struct cx_err *e)
{
	struct cx_resource *r = NULL;
	size_t cap = rn->p->o->max_meta ? rn->p->o->max_meta : CX_VERIFY_MAX_META;

	if (cx_repo_read(new ? rn->view : rn->base, path, cap, &rn->buf, e) != 0 ||
	    cx_resource_parse(&rn->p->x->a, path, rn->buf.d, rn->buf.len, t, &r, NULL, e) != 0)
		return NULL;
	return r;
}

/* Problems of the given stages that concern path (or all of them, path NULL): details. */
static int
problems_to(
    struct run *rn, struct cx_explain_file *f, enum cx_stage s1, enum cx_stage s2, const char *path)
{
	struct cx_explain *x = rn->p->x;
	size_t n = path ? strlen(path) : 0;
	int found = 0, r;

	for (size_t i = 0; i < x->nproblems; i++) {
		const struct cx_explain_problem *q = &x->problems[i];
		if (q->stage != s1 && q->stage != s2)
			continue;
		if (path != NULL && (strncmp(q->msg, path, n) != 0 || q->msg[n] != ' '))
			continue;
		if ((r = add_detail(x, f, cx_arena_printf(&x->a, "%s", q->msg))) != 0)
			return r;
		found = 1;
	}
	return found;
}

/* Counter and epoch against the base tree (with a patch): the rule of cx_identity_moves_on. */
static int
counters_vs_base(
    struct run *rn, struct cx_explain_file *f, const struct cx_resource *t1, enum cx_rtype t)
{
	struct cx_explain *x = rn->p->x;
	struct cx_resource *t0;
	struct cx_err le;
	int r;

	if (rn->patch == NULL || t1 == NULL)
		return 0;
	if ((t0 = peek(rn, 0, f->path, t, &le)) == NULL)
		return add_detail(x, f, "new in this change");
	if (t == CX_R_TARGETS || t == CX_R_ROOT) {
		/* root: incremental verification wants a bigger counter when root changes */
		if (cx_identity_moves_on(t0, t1, f->path, &le) != 0) {
			f->st = CX_EX_INVALID;
			return add_detail(x, f, cx_arena_printf(&x->a, "counter: %s", le.msg));
		}
	} else if (t1->epoch < t0->epoch || (t1->epoch == t0->epoch && t1->counter < t0->counter)) {
		f->st = CX_EX_INVALID;
		return add_detail(x, f, "counter: goes backwards (rollback?)");
	}
	r = add_detail(x, f,
	    cx_arena_printf(&x->a, "counter 0x%llX -> 0x%llX, epoch 0x%llX -> 0x%llX: moves on",
	        (unsigned long long)t0->counter, (unsigned long long)t1->counter,
	        (unsigned long long)t0->epoch, (unsigned long long)t1->epoch));
	return r;
}

/* Local keyrefs of a valid expression that did not sign. */
static void
missing_signers(
    const struct cx_expr *x, const char *const *signers, size_t n, struct cx_buf *b, int depth)
{
	if (x == NULL || depth > CX_WIRE_MAX_DEPTH)
		return;
	if (x->kind != CX_EXPR_QUORUM) {
		missing_signers(x->a, signers, n, b, depth + 1);
		missing_signers(x->b, signers, n, b, depth + 1);
		return;
	}
	for (size_t i = 0; i < x->nrefs; i++) {
		size_t j;
		for (j = 0; j < n && strcmp(signers[j], x->refs[i].id) != 0; j++)
			;
		if (j == n)
			cx_buf_putf(b, "%s%s", b->len ? ", " : "", x->refs[i].id);
	}
}

static int
explain_identity(struct run *rn, struct cx_explain_file *f, const char *id)
{
	struct cx_explain_priv *p = rn->p;
	struct cx_explain *x = p->x;
	struct cx_arena *a = &x->a;
	const struct xident *d = ident(p, id, 0);
	struct cx_resource *t;
	struct cx_err le;
	struct cx_buf mb;
	int r, named = 0, counts = 0, pinbad = 0;

	if (f->deleted) {
		f->st = CX_EX_INVALID;
		f->summary = "identity deleted: conex verify rejects a deleted identity";
		return 0;
	}
	if ((t = peek(rn, 1, f->path, CX_R_TARGETS, &le)) == NULL) {
		f->st = CX_EX_INVALID;
		f->summary = cx_arena_printf(a, "malformed: %s", le.msg);
		return f->summary ? 0 : CX_ENOMEM;
	}
	f->st = CX_EX_OK;
	if (d == NULL) {
		if ((r = add_detail(x, f,
		         "no evaluated delegation names it: its signatures were not checked")) != 0)
			return r;
	} else {
		cx_buf_init(&mb, 0);
		missing_signers(d->vexpr, d->signers, d->nsigners, &mb, 0);
		if (d->valid)
			r = add_detail(x, f,
			    cx_arena_printf(a, "self-valid: valid %s, signed by %s",
			        expr_str(a, d->vexpr),
			        ids_str(a, d->signers, d->nsigners, "nobody")));
		else
			r = add_detail(x, f,
			    cx_arena_printf(a,
			        "NOT self-valid: valid %s, signed by %s; missing signers: %.*s%s",
			        d->vexpr ? expr_str(a, d->vexpr) : "?",
			        ids_str(a, d->signers, d->nsigners, "nobody"), (int)mb.len,
			        mb.len ? (const char *)mb.d : "none", d->why ? "" : ""));
		cx_buf_free(&mb);
		if (r != 0)
			return r;
		if (d->why != NULL && (r = add_detail(x, f, cx_arena_printf(a, "%s", d->why))) != 0)
			return r;
		if (!d->valid)
			f->st = CX_EX_NOT_YET;
	}
	for (size_t i = 0; i < p->nitems; i++) {
		const struct xitem *it = &p->items[i];
		struct cx_keyref *k = NULL;
		struct cx_expr *q[CX_WIRE_MAX_DEPTH + 2];
		size_t nq = 0;
		if (!it->seen)
			continue;
		/* the keyref naming id in this expression (a flat walk of the tree) */
		q[nq++] = it->expr;
		while (nq > 0 && k == NULL) {
			struct cx_expr *e1 = q[--nq];
			if (e1->kind != CX_EXPR_QUORUM) {
				if (nq + 2 <= sizeof(q) / sizeof(q[0])) {
					q[nq++] = e1->a;
					q[nq++] = e1->b;
				}
				continue;
			}
			for (size_t j = 0; j < e1->nrefs && k == NULL; j++)
				if (e1->refs[j].remote && cx_id_equal(e1->refs[j].id, id))
					k = &e1->refs[j];
		}
		if (k == NULL)
			continue;
		named = 1;
		if (has_id(it->counting, it->ncounting, id)) {
			counts = 1;
			r = add_detail(x, f,
			    cx_arena_printf(a,
			        "counts for the %s (key hash and epoch 0x%llX match)",
			        role_of(p, it), (unsigned long long)k->epoch));
		} else if (d != NULL && d->vhash_ok &&
		    (d->epoch != k->epoch ||
		        memcmp(k->digest.value, d->vhex, CX_SHA256_HEX) != 0)) {
			pinbad = 1;
			r = add_detail(x, f,
			    cx_arena_printf(a,
			        "does not count for the %s: it pins sha256=%.*s epoch 0x%llX, the "
			        "file has sha256=%s epoch 0x%llX",
			        role_of(p, it), (int)k->digest.len, k->digest.value,
			        (unsigned long long)k->epoch, d->vhex,
			        (unsigned long long)d->epoch));
		} else {
			r = add_detail(
			    x, f, cx_arena_printf(a, "does not count for the %s", role_of(p, it)));
		}
		if (r != 0)
			return r;
	}
	if (named && !counts && f->st == CX_EX_OK && pinbad)
		f->st = CX_EX_NOT_YET;
	if ((r = problems_to(rn, f, CX_STAGE_KEYDIR, CX_STAGE_KEYDIR, f->path)) < 0)
		return r;
	if (r == 1)
		f->st = CX_EX_INVALID;
	else if (rn->root != NULL && rn->root->role_snapshot != NULL &&
	    (r = add_detail(x, f, "matches the snapshot")) != 0)
		return r;
	if ((r = counters_vs_base(rn, f, t, CX_R_TARGETS)) != 0)
		return r;
	f->summary = f->st == CX_EX_OK ? (d && d->valid ? "self-valid" : "parses")
	    : f->st == CX_EX_INVALID   ? "does not verify"
	    : pinbad ? "does not count: key hash or epoch differs from a delegation"
	             : "needs more signatures";
	return 0;
}

struct rootsig {
	const char *const *anchors;
	size_t nanchors;
	const char *ids[64];
	char hex[64][CX_SHA256_HEX + 1];
	size_t n;
};

static int
root_sig(void *arg, const struct cx_sig *s, const struct cx_key *k)
{
	struct rootsig *rs = arg;
	char hex[CX_SHA256_HEX + 1];
	size_t i;

	cx_hex_encode(k->keyid, CX_SHA256_LEN, hex);
	for (i = 0; i < rs->nanchors && strcmp(rs->anchors[i], hex) != 0; i++)
		;
	if (i == rs->nanchors || rs->n == 64)
		return 0;
	rs->ids[rs->n] = s->id;
	memcpy(rs->hex[rs->n++], hex, sizeof(hex));
	return 0;
}

static int
explain_root(struct run *rn, struct cx_explain_file *f)
{
	struct cx_explain *x = rn->p->x;
	struct cx_arena *a = &x->a;
	const struct cx_verify_opts *o = rn->p->o;
	struct rootsig rs;
	struct cx_buf canon, mb;
	struct cx_err le;
	int r;

	if (f->deleted || rn->root == NULL) {
		f->st = CX_EX_INVALID;
		f->summary = f->deleted ? "deleted" : x->eval_error ? x->eval_error : "malformed";
		return 0;
	}
	memset(&rs, 0, sizeof(rs));
	rs.anchors = o->anchors;
	rs.nanchors = o->nanchors;
	cx_buf_init(&canon, 0);
	if ((r = cx_resource_canon(rn->root, &canon)) == 0)
		r = cx_resource_verify_sigs(rn->root, canon.d, canon.len, root_sig, &rs, NULL, &le);
	cx_buf_free(&canon);
	if (r != 0)
		return r;
	cx_buf_init(&mb, 0);
	for (size_t i = 0; i < rn->root->nkeys; i++) {
		size_t j;
		for (j = 0; j < rs.n && strcmp(rs.ids[j], rn->root->keys[i].id) != 0; j++)
			;
		if (j == rs.n) {
			char hex[CX_SHA256_HEX + 1];
			cx_hex_encode(rn->root->keys[i].keyid, CX_SHA256_LEN, hex);
			cx_buf_putf(
			    &mb, "%s%s (sha256=%s)", mb.len ? ", " : "", rn->root->keys[i].id, hex);
		}
	}
	f->st = CX_EX_OK;
	r = add_detail(x, f,
	    cx_arena_printf(a,
	        "%zu valid signature(s) by trust anchors, %d required (--quorum); valid %s", rs.n,
	        o->quorum < 1 ? 1 : o->quorum, expr_str(a, rn->root->valid)));
	for (size_t i = 0; r == 0 && i < rs.n; i++)
		r = add_detail(
		    x, f, cx_arena_printf(a, "signed by %s (sha256=%s)", rs.ids[i], rs.hex[i]));
	if (r == 0 && mb.len)
		r = add_detail(
		    x, f, cx_arena_printf(a, "root keys not signing: %.*s", (int)mb.len, mb.d));
	cx_buf_free(&mb);
	if (r != 0)
		return r;
	if ((r = problems_to(rn, f, CX_STAGE_ROOT, CX_STAGE_ROOT, NULL)) < 0)
		return r;
	if (r == 1)
		f->st = CX_EX_INVALID;
	if ((r = counters_vs_base(rn, f, rn->root, CX_R_ROOT)) != 0)
		return r;
	f->summary = f->st == CX_EX_OK ? cx_arena_printf(a, "anchored signatures: %zu", rs.n)
	                               : "does not verify";
	return f->summary ? 0 : CX_ENOMEM;
}

static int
explain_role(struct run *rn, struct cx_explain_file *f, enum cx_rtype t)
{
	struct cx_explain *x = rn->p->x;
	struct cx_resource *res;
	struct cx_err le;
	int r;

	if (f->deleted) {
		f->st = CX_EX_INVALID;
		f->summary = "deleted";
		return 0;
	}
	if ((res = peek(rn, 1, f->path, t, &le)) == NULL) {
		f->st = CX_EX_INVALID;
		f->summary = cx_arena_printf(&x->a, "malformed: %s", le.msg);
		return f->summary ? 0 : CX_ENOMEM;
	}
	f->st = CX_EX_OK;
	if ((r = add_detail(x, f, cx_arena_printf(&x->a, "created %s", res->created))) != 0)
		return r;
	if (t == CX_R_TIMESTAMP)
		r = problems_to(rn, f, CX_STAGE_TIMESTAMP, CX_STAGE_TIMESTAMP, NULL);
	else
		r = problems_to(rn, f, CX_STAGE_SNAPSHOT, CX_STAGE_KEYDIR, NULL);
	if (r < 0)
		return r;
	if (r == 1)
		f->st = CX_EX_INVALID;
	if ((r = counters_vs_base(rn, f, res, t)) != 0)
		return r;
	f->summary = f->st != CX_EX_OK ? "does not verify"
	    : t == CX_R_TIMESTAMP      ? "signed by the timestamp role, fresh, covers the snapshot"
	                               : "signed by the snapshot role, covers keydir";
	return 0;
}

/* ---- the run ---- */

static int
add_file(struct cx_explain_priv *p, int dedupe, const char *path, int deleted, const uint8_t *sha,
    uint64_t size)
{
	struct cx_explain *x = p->x;
	struct cx_explain_file *n, *f;

	/* a walk lists each path once; a patch names few, one maybe twice (renames) */
	for (size_t i = 0; dedupe && i < x->nfiles; i++)
		if (strcmp(x->files[i].path, path) == 0)
			return 0;
	if ((n = cx_arena_grow(&x->a, x->files, sizeof(*n), &p->capfiles, x->nfiles + 1)) == NULL)
		return CX_ENOMEM;
	x->files = n;
	f = &n[x->nfiles];
	memset(f, 0, sizeof(*f));
	if ((f->path = cx_arena_strdup(&x->a, path)) == NULL)
		return CX_ENOMEM;
	f->deleted = deleted;
	f->size = size;
	if (sha != NULL)
		cx_hex_encode(sha, CX_SHA256_LEN, f->sha256);
	x->nfiles++;
	return 0;
}

static int
explain_file(struct run *rn, struct cx_explain_file *f)
{
	const struct cx_resource *root = rn->root;
	const char *id;

	if (strcmp(f->path, rn->p->o->root_name) == 0) {
		f->kind = "root";
		return explain_root(rn, f);
	}
	if (root == NULL) {
		f->kind = "other";
		f->st = CX_EX_INVALID;
		f->summary = "not evaluated: the root does not verify";
		return 0;
	}
	if (root->role_timestamp != NULL && root->role_timestamp->nrefs == 1 &&
	    strcmp(f->path, root->role_timestamp->refs[0].id) == 0) {
		f->kind = "timestamp";
		return explain_role(rn, f, CX_R_TIMESTAMP);
	}
	if (root->role_snapshot != NULL && root->role_snapshot->nrefs == 1 &&
	    strcmp(f->path, root->role_snapshot->refs[0].id) == 0) {
		f->kind = "snapshot";
		return explain_role(rn, f, CX_R_SNAPSHOT);
	}
	if ((id = cx_path_strip(root->keydir, f->path)) != NULL && strchr(id, '/') == NULL) {
		f->kind = "identity";
		return explain_identity(rn, f, id);
	}
	if (cx_path_strip(root->datadir, f->path) != NULL) {
		f->kind = "data";
		if (!rn->p->x->evaluated) {
			f->st = CX_EX_INVALID;
			f->summary = "not evaluated";
			return 0;
		}
		return explain_data(rn->p, f);
	}
	f->kind = "other";
	f->st = CX_EX_IGNORED;
	f->summary = "outside datadir and keydir: not verified";
	return 0;
}

static int
changed_files(struct run *rn, struct cx_err *e)
{
	struct cx_explain_priv *p = rn->p;
	struct cx_file_list fl;
	struct cx_err le;
	uint8_t h[CX_SHA256_LEN];
	size_t i;
	int r;

	if (rn->patch == NULL) {
		if ((r = cx_repo_walk(rn->view, "", &fl, e)) != 0) {
			cx_file_list_free(&fl);
			return r;
		}
		for (i = 0, r = 0; i < fl.n && r == 0; i++)
			r = add_file(p, 0, fl.v[i].path, 0, fl.v[i].sha256, fl.v[i].size);
		cx_file_list_free(&fl);
		return r;
	}
	for (i = 0; i < rn->patch->nfiles; i++) {
		const struct cx_patch_file *pf = &rn->patch->files[i];
		const char *paths[2] = {pf->old_path, pf->new_path};
		for (int k = 0; k < 2; k++) {
			if (paths[k] == NULL || (k == 1 && paths[0] && !strcmp(paths[0], paths[1])))
				continue;
			r = cx_repo_read(
			    rn->view, paths[k], (size_t)CX_REPO_FILE_MAX, &rn->buf, &le);
			if (r == CX_ENOENT) {
				r = add_file(p, 1, paths[k], 1, NULL, 0);
			} else if (r == CX_EREJECT || r == CX_EPARSE || r == CX_ETOOBIG) {
				/* a symlink, or a hunk that does not apply: reported, not fatal */
				if ((r = add_file(p, 1, paths[k], 0, NULL, 0)) == 0) {
					struct cx_explain_file *f = &p->x->files[p->x->nfiles - 1];
					f->kind = "other";
					f->st = CX_EX_INVALID;
					f->summary = cx_arena_strdup(&p->x->a, le.msg);
				}
			} else if (r == 0) {
				cx_sha256(rn->buf.d, rn->buf.len, h);
				r = add_file(p, 1, paths[k], 0, h, rn->buf.len);
			} else {
				return cx_err_set(e, r, "%s", le.msg);
			}
			if (r != 0)
				return cx_err_set(e, r, "out of memory");
		}
	}
	return 0;
}

int
cx_explain_run(struct cx_repo *base, const struct cx_patch *patch, const struct cx_verify_opts *o,
    struct cx_explain *x, struct cx_err *e)
{
	struct cx_explain_priv *p;
	struct cx_verify_observer obs;
	struct cx_verify_opts vo;
	struct cx_verify_result res;
	struct cx_err le;
	struct run rn;
	size_t i;
	int r, data_bad = 0;

	memset(x, 0, sizeof(*x));
	memset(&rn, 0, sizeof(rn));
	cx_arena_init(&x->a, 0);
	cx_buf_init(&rn.buf, 0);
	if ((p = x->priv = cx_arena_alloc(&x->a, sizeof(*p))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	p->x = x;
	p->o = o;
	rn.p = p;
	rn.base = base;
	rn.patch = patch;
	rn.view = base;
	if (patch != NULL && (r = cx_repo_open_patched(&rn.view, base, patch, e)) != 0) {
		rn.view = NULL;
		goto out;
	}
	/* 1. the evaluation, observed */
	obs = (struct cx_verify_observer){p, 1, ob_problem, ob_identity, ob_delegation, ob_claim};
	vo = *o;
	vo.obs = &obs;
	r = cx_verify_full(rn.view, &vo, &res, &le);
	if (p->oom) {
		r = cx_err_set(e, CX_ENOMEM, "out of memory");
		goto out;
	}
	if (r == CX_ENOMEM || r == CX_EIO) {
		r = cx_err_set(e, r, "%s", le.msg);
		goto out;
	}
	x->evaluated = p->nitems > 0;
	if (!x->evaluated && (x->eval_error = cx_arena_strdup(&x->a, le.msg)) == NULL)
		goto oom;
	if (p->nclaims > 1)
		qsort(p->claims, p->nclaims, sizeof(*p->claims), claim_cmp);
	if (index_items(p) != 0)
		goto oom;
	/* 2. the verdict: exactly conex verify's */
	vo.obs = NULL;
	if (patch != NULL)
		r = cx_verify_incremental(base, patch, &vo, &res, &le);
	else
		r = cx_verify_full(rn.view, &vo, &res, &le);
	if (r == CX_ENOMEM || r == CX_EIO) {
		r = cx_err_set(e, r, "%s", le.msg);
		goto out;
	}
	x->verified = r == 0;
	if (r != 0 && (x->verify_error = cx_arena_strdup(&x->a, le.msg)) == NULL)
		goto oom;
	/* 3. the changed files */
	rn.root = peek(&rn, 1, o->root_name, CX_R_ROOT, &le);
	if ((r = changed_files(&rn, e)) != 0)
		goto out;
	for (i = 0; i < x->nfiles; i++) {
		struct cx_explain_file *f = &x->files[i];
		if (f->summary != NULL)
			continue; /* unreadable: reported already */
		if ((r = explain_file(&rn, f)) < 0) {
			r = cx_err_set(e, r, "out of memory");
			goto out;
		}
		if (f->summary == NULL)
			goto oom;
	}
	x->ok = x->verified && x->evaluated;
	for (i = 0; i < x->nfiles; i++) {
		const struct cx_explain_file *f = &x->files[i];
		if (f->st != CX_EX_OK && f->st != CX_EX_IGNORED) {
			x->ok = 0;
			if (strcmp(f->kind, "data") == 0)
				data_bad = 1;
		}
	}
	/* the explanation must agree with the verification it claims to explain: say so if not */
	if (x->verified && data_bad)
		x->inconsistency = "conex verify accepts the result, but a changed data file "
		                   "would not verify by the explanation";
	r = 0;
	goto out;
oom:
	r = cx_err_set(e, CX_ENOMEM, "out of memory");
out:
	if (rn.view != NULL && rn.view != base)
		cx_repo_close(rn.view);
	cx_buf_free(&rn.buf);
	return r;
}

void
cx_explain_free(struct cx_explain *x)
{
	cx_arena_free(&x->a);
	memset(x, 0, sizeof(*x));
}

/* ---- output ---- */

static int line(struct cx_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * One line of the report.  Ids, paths and messages come from the files under
 * review: a control character (a newline in an identity name, an escape
 * sequence) becomes '?', so that a pull request cannot forge report lines in a
 * CI log or drive the terminal.
 */
static int
line(struct cx_buf *out, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return CX_ENOMEM;
	for (unsigned char *c = (unsigned char *)s; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			*c = '?';
	r = cx_buf_put_str(out, s);
	free(s);
	return r == 0 ? cx_buf_put_u8(out, '\n') : r;
}

int
cx_explain_text(const struct cx_explain *x, struct cx_buf *out)
{
	int r = 0;

	for (size_t i = 0; i < x->nfiles && r == 0; i++) {
		const struct cx_explain_file *f = &x->files[i];
		r = line(out, "%s: %s: %s", f->path, cx_explain_status_name(f->st), f->summary);
		if (r == 0 && strcmp(f->kind, "data") == 0 && !f->deleted && f->sha256[0])
			r = line(
			    out, "  sha256=%s, %llu bytes", f->sha256, (unsigned long long)f->size);
		for (size_t j = 0; j < f->ndetails && r == 0; j++)
			r = line(out, "  %s", f->details[j]);
	}
	for (size_t i = 0; i < x->nproblems && r == 0; i++)
		r = line(
		    out, "problem (%s): %s", stage_name(x->problems[i].stage), x->problems[i].msg);
	if (r == 0 && !x->evaluated)
		r = line(out, "not evaluated: %s", x->eval_error ? x->eval_error : "?");
	if (r == 0)
		r = x->verified ? line(out, "conex verify: accepted")
		                : line(out, "conex verify: rejected: %s",
		                      x->verify_error ? x->verify_error : "?");
	if (r == 0 && x->inconsistency)
		r = line(out, "INCONSISTENT: %s", x->inconsistency);
	return r;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates), or 0. */
static size_t
utf8_len(const unsigned char *s)
{
	if (s[0] >= 0xc2 && s[0] <= 0xdf && (s[1] & 0xc0) == 0x80)
		return 2;
	if (s[0] >= 0xe0 && s[0] <= 0xef && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
	    !(s[0] == 0xe0 && s[1] < 0xa0) && !(s[0] == 0xed && s[1] >= 0xa0))
		return 3;
	if (s[0] >= 0xf0 && s[0] <= 0xf4 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80 &&
	    (s[3] & 0xc0) == 0x80 && !(s[0] == 0xf0 && s[1] < 0x90) &&
	    !(s[0] == 0xf4 && s[1] >= 0x90))
		return 4;
	return 0;
}

/* A JSON string (null for NULL); bytes that are not UTF-8 become U+FFFD, so the output parses. */
static int
json_str(struct cx_buf *b, const char *s)
{
	const unsigned char *c = (const unsigned char *)s;
	int r;

	if (s == NULL)
		return cx_buf_put_str(b, "null");
	r = cx_buf_put_u8(b, '"');
	while (*c && r == 0) {
		size_t n;
		if (*c == '"' || *c == '\\')
			r = cx_buf_putf(b, "\\%c", *c);
		else if (*c == '\n')
			r = cx_buf_put_str(b, "\\n");
		else if (*c == '\t')
			r = cx_buf_put_str(b, "\\t");
		else if (*c < 0x20 || *c == 0x7f)
			r = cx_buf_putf(b, "\\u%04x", *c);
		else if (*c < 0x80)
			r = cx_buf_put_u8(b, *c);
		else if ((n = utf8_len(c)) != 0) {
			r = cx_buf_put(b, c, n);
			c += n;
			continue;
		} else
			r = cx_buf_put_str(b, "\\ufffd");
		c++;
	}
	return r == 0 ? cx_buf_put_u8(b, '"') : r;
}

static int
json_ids(struct cx_buf *b, const char *const *v, size_t n)
{
	int r = cx_buf_put_u8(b, '[');

	for (size_t i = 0; i < n && r == 0; i++)
		if ((r = i ? cx_buf_put_u8(b, ',') : 0) == 0)
			r = json_str(b, v[i]);
	return r == 0 ? cx_buf_put_u8(b, ']') : r;
}

static int
json_gov(struct cx_buf *b, const struct cx_explain_gov *g)
{
	int r;

	if ((r = cx_buf_put_str(b, "{\"path\":")) != 0 || (r = json_str(b, g->path)) != 0 ||
	    (r = cx_buf_put_str(b, ",\"role\":")) != 0 || (r = json_str(b, g->role)) != 0 ||
	    (r = cx_buf_put_str(b, ",\"expression\":")) != 0 || (r = json_str(b, g->expr)) != 0 ||
	    (r = cx_buf_putf(b, ",\"met\":%s,\"has\":", g->met ? "true" : "false")) != 0 ||
	    (r = json_ids(b, g->has, g->nhas)) != 0)
		return r;
	r = g->missing >= 0 ? cx_buf_putf(b, ",\"missing\":%lld", (long long)g->missing)
	                    : cx_buf_put_str(b, ",\"missing\":null");
	if (r == 0)
		r = cx_buf_put_str(b, ",\"can_complete\":[");
	for (size_t i = 0; i < g->ncand && r == 0; i++) {
		if ((r = cx_buf_putf(b, "%s{\"id\":", i ? "," : "")) != 0 ||
		    (r = json_str(b, g->cand[i].id)) != 0 ||
		    (r = cx_buf_putf(b,
		         ",\"counts\":%s,\"why\":", g->cand[i].counts ? "true" : "false")) != 0 ||
		    (r = json_str(b, g->cand[i].why)) != 0)
			return r;
		r = cx_buf_put_u8(b, '}');
	}
	return r == 0 ? cx_buf_put_str(b, "]}") : r;
}

int
cx_explain_json(const struct cx_explain *x, struct cx_buf *b)
{
	int r;

	if ((r = cx_buf_putf(
	         b, "{\"evaluated\":%s,\"eval_error\":", x->evaluated ? "true" : "false")) != 0 ||
	    (r = json_str(b, x->eval_error)) != 0 ||
	    (r = cx_buf_putf(
	         b, ",\"verified\":%s,\"verify_error\":", x->verified ? "true" : "false")) != 0 ||
	    (r = json_str(b, x->verify_error)) != 0 ||
	    (r = cx_buf_putf(b, ",\"ok\":%s,\"inconsistency\":", x->ok ? "true" : "false")) != 0 ||
	    (r = json_str(b, x->inconsistency)) != 0 ||
	    (r = cx_buf_put_str(b, ",\"problems\":[")) != 0)
		return r;
	for (size_t i = 0; i < x->nproblems && r == 0; i++) {
		if ((r = cx_buf_putf(b, "%s{\"stage\":\"%s\",\"message\":", i ? "," : "",
		         stage_name(x->problems[i].stage))) != 0 ||
		    (r = json_str(b, x->problems[i].msg)) != 0)
			return r;
		r = cx_buf_put_u8(b, '}');
	}
	if (r == 0)
		r = cx_buf_put_str(b, "],\"files\":[");
	for (size_t i = 0; i < x->nfiles && r == 0; i++) {
		const struct cx_explain_file *f = &x->files[i];
		if ((r = cx_buf_putf(b, "%s{\"path\":", i ? "," : "")) != 0 ||
		    (r = json_str(b, f->path)) != 0 ||
		    (r = cx_buf_putf(b, ",\"kind\":\"%s\",\"status\":\"%s\",\"deleted\":%s",
		         f->kind, cx_explain_status_name(f->st), f->deleted ? "true" : "false")) !=
		        0)
			return r;
		if (!f->deleted && f->sha256[0] &&
		    (r = cx_buf_putf(b, ",\"sha256\":\"%s\",\"size\":%llu", f->sha256,
		         (unsigned long long)f->size)) != 0)
			return r;
		if ((r = cx_buf_put_str(b, ",\"summary\":")) != 0 ||
		    (r = json_str(b, f->summary)) != 0 ||
		    (r = cx_buf_put_str(b, ",\"details\":")) != 0 ||
		    (r = json_ids(b, f->details, f->ndetails)) != 0 ||
		    (r = cx_buf_put_str(b, ",\"governed_by\":[")) != 0)
			return r;
		for (size_t j = 0; j < f->ngov && r == 0; j++)
			if ((r = j ? cx_buf_put_u8(b, ',') : 0) == 0)
				r = json_gov(b, &f->gov[j]);
		if (r == 0)
			r = cx_buf_put_str(b, "]}");
	}
	return r == 0 ? cx_buf_put_str(b, "]}\n") : r;
}
