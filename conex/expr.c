/* Expressions: keyrefs, quorums, their wire form, hash and evaluation (§6). */
#include <stdlib.h>
#include <string.h>

#include "conex/resource.h"

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

int
cx_id_cmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	for (;; x++, y++) {
		int c = lower(*x) - lower(*y);
		if (c != 0 || *x == 0)
			return c;
	}
}

int
cx_id_equal(const char *a, const char *b)
{
	return cx_id_cmp(a, b) == 0;
}

static int
digest_cmp(const struct cx_digest *a, const struct cx_digest *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->value, b->value, n);

	if (c != 0)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

/* The KS order of upstream: Locals before Remotes; Remotes by epoch, id, digest. */
int
cx_keyref_cmp(const struct cx_keyref *a, const struct cx_keyref *b)
{
	int c;

	if (a->remote != b->remote)
		return a->remote ? 1 : -1;
	if (!a->remote)
		return cx_id_cmp(a->id, b->id);
	if (a->epoch != b->epoch)
		return a->epoch < b->epoch ? -1 : 1;
	if ((c = cx_id_cmp(a->id, b->id)) != 0)
		return c;
	return digest_cmp(&a->digest, &b->digest);
}

static int
keyref_qsort_cmp(const void *x, const void *y)
{
	return cx_keyref_cmp(x, y);
}

static int
eparse(struct cx_err *e, const struct cx_wire *w, const char *what)
{
	return cx_err_set(e, CX_EPARSE, "%u:%u: %s", w->line, w->col, what);
}

/*
 * One keyref.  Returns 1 with *k filled, 0 when it names an unknown digest
 * algorithm (upstream ignores such entries with a warning), or an error.
 */
static int
keyref_from_wire(const struct cx_wire *w, struct cx_keyref *k, struct cx_log *log, struct cx_err *e)
{
	const struct cx_wire *d;
	const char *eq;

	memset(k, 0, sizeof(*k));
	if (w->type == CX_WIRE_IDENT) {
		k->id = w->u.str.s;
		return 1;
	}
	if (w->type != CX_WIRE_LIST || w->u.list.n != 3 || w->u.list.v[0]->type != CX_WIRE_IDENT ||
	    w->u.list.v[2]->type != CX_WIRE_BIGINT)
		return eparse(e, w, "malformed key reference");
	d = w->u.list.v[1];
	if (d->type != CX_WIRE_DATA || (eq = memchr(d->u.str.s, '=', d->u.str.len)) == NULL)
		return eparse(e, w, "malformed digest in key reference");
	if ((size_t)(eq - d->u.str.s) != 6 || memcmp(d->u.str.s, "sha256", 6) != 0) {
		cx_log(log, CX_LOG_WARN,
		    "unknown digest algorithm in key reference to %s, ignoring",
		    w->u.list.v[0]->u.str.s);
		return 0;
	}
	k->remote = 1;
	k->id = w->u.list.v[0]->u.str.s;
	k->digest.value = eq + 1;
	k->digest.len = d->u.str.len - 7;
	k->epoch = w->u.list.v[2]->u.big;
	return 1;
}

/* Sorts into KS order and removes duplicates, as building a Set does. */
static void
ks_normalise(struct cx_keyref *v, size_t *n)
{
	size_t i, m;

	if (*n < 2)
		return;
	qsort(v, *n, sizeof(*v), keyref_qsort_cmp);
	for (i = 1, m = 1; i < *n; i++)
		if (cx_keyref_cmp(&v[m - 1], &v[i]) != 0)
			v[m++] = v[i];
	*n = m;
}

static struct cx_expr *
quorum(struct cx_arena *a, int64_t n, size_t cap)
{
	struct cx_expr *x = cx_arena_alloc(a, sizeof(*x));

	if (x == NULL)
		return NULL;
	x->kind = CX_EXPR_QUORUM;
	x->n = n;
	if (cap && (x->refs = cx_arena_alloc(a, cap * sizeof(*x->refs))) == NULL)
		return NULL;
	return x;
}

struct cx_expr *
cx_expr_single(struct cx_arena *a, const struct cx_keyref *k)
{
	struct cx_expr *x = quorum(a, 1, 1);

	if (x == NULL)
		return NULL;
	x->refs[0] = *k;
	x->nrefs = 1;
	return x;
}

static int
add_keyref(struct cx_expr *x, const struct cx_wire *w, struct cx_log *log, struct cx_err *e)
{
	int r = keyref_from_wire(w, &x->refs[x->nrefs], log, e);

	if (r < 0)
		return r;
	x->nrefs += (size_t)r;
	return 0;
}

static int
expr_from_wire(struct cx_arena *a, const struct cx_wire *w, struct cx_expr **out,
    struct cx_log *log, struct cx_err *e, int depth)
{
	struct cx_expr *x;
	const struct cx_wire *s;
	size_t i;
	int r;

	if (depth > CX_WIRE_MAX_DEPTH)
		return eparse(e, w, "expression too deep");
	switch (w->type) {
	case CX_WIRE_AND:
	case CX_WIRE_OR:
		if ((x = cx_arena_alloc(a, sizeof(*x))) == NULL)
			return CX_ENOMEM;
		x->kind = w->type == CX_WIRE_AND ? CX_EXPR_AND : CX_EXPR_OR;
		if ((r = expr_from_wire(a, w->u.pair.a, &x->a, log, e, depth + 1)) != 0 ||
		    (r = expr_from_wire(a, w->u.pair.b, &x->b, log, e, depth + 1)) != 0)
			return r;
		*out = x;
		return 0;
	case CX_WIRE_IDENT:
	case CX_WIRE_LIST:
		/* shorthand of Quorum(1, {x}) */
		if (w->type == CX_WIRE_LIST &&
		    (w->u.list.n == 0 || w->u.list.v[0]->type != CX_WIRE_IDENT))
			return eparse(e, w, "malformed expression");
		if ((x = quorum(a, 1, 1)) == NULL)
			return CX_ENOMEM;
		if ((r = add_keyref(x, w, log, e)) != 0)
			return r;
		*out = x;
		return 0;
	case CX_WIRE_PAIR:
		break;
	default:
		return eparse(e, w, "malformed expression");
	}
	if (w->u.pair.a->type != CX_WIRE_SMALLINT)
		return eparse(e, w, "quorum count is not an integer");
	s = w->u.pair.b;
	if (w->u.pair.a->u.small < 0)
		return eparse(e, w, "negative quorum"); /* upstream lets it pass: always true */
	if ((x = quorum(a, w->u.pair.a->u.small, s->type == CX_WIRE_LIST ? s->u.list.n : 1)) ==
	    NULL)
		return CX_ENOMEM;
	if (s->type == CX_WIRE_IDENT) {
		r = add_keyref(x, s, log, e);
	} else if (s->type != CX_WIRE_LIST) {
		r = eparse(e, w, "malformed quorum");
	} else if (s->u.list.n == 0) {
		r = 0;
	} else if (s->u.list.v[0]->type == CX_WIRE_LIST) {
		for (i = 0, r = 0; i < s->u.list.n && r == 0; i++)
			r = add_keyref(x, s->u.list.v[i], log, e);
	} else if (s->u.list.v[0]->type != CX_WIRE_IDENT) {
		r = eparse(e, w, "malformed quorum");
	} else if (s->u.list.n == 1) {
		r = add_keyref(x, s->u.list.v[0], log, e);
	} else if (s->u.list.v[1]->type == CX_WIRE_DATA) {
		r = add_keyref(x, s, log, e); /* one remote keyref written flat */
	} else {
		for (i = 0, r = 0; i < s->u.list.n && r == 0; i++)
			r = add_keyref(x, s->u.list.v[i], log, e);
	}
	if (r != 0)
		return r;
	ks_normalise(x->refs, &x->nrefs);
	if ((uint64_t)x->n > x->nrefs)
		return eparse(e, w, "insufficient keys for quorum");
	*out = x;
	return 0;
}

int
cx_expr_from_wire(struct cx_arena *a, const struct cx_wire *w, struct cx_expr **out,
    struct cx_log *log, struct cx_err *e)
{
	return expr_from_wire(a, w, out, log, e, 0);
}

static struct cx_wire *
keyref_to_wire(struct cx_arena *a, const struct cx_keyref *k)
{
	struct cx_wire *v[3];
	struct cx_buf b;
	struct cx_wire *w;

	if (!k->remote)
		return cx_wire_str(a, CX_WIRE_IDENT, k->id, strlen(k->id));
	cx_buf_init(&b, 0);
	if (cx_buf_put_str(&b, "sha256=") != 0 ||
	    cx_buf_put(&b, k->digest.value, k->digest.len) != 0) {
		cx_buf_free(&b);
		return NULL;
	}
	v[0] = cx_wire_str(a, CX_WIRE_IDENT, k->id, strlen(k->id));
	v[1] = cx_wire_str(a, CX_WIRE_DATA, (const char *)b.d, b.len);
	v[2] = cx_wire_big(a, k->epoch);
	cx_buf_free(&b);
	if (v[0] == NULL || v[1] == NULL || v[2] == NULL)
		return NULL;
	w = cx_wire_list(a, v, 3);
	return w;
}

struct cx_wire *
cx_expr_to_wire(struct cx_arena *a, const struct cx_expr *x)
{
	struct cx_wire *l, *p, **v;
	size_t i;

	switch (x->kind) {
	case CX_EXPR_AND:
	case CX_EXPR_OR:
		return cx_wire_pair(a, x->kind == CX_EXPR_AND ? CX_WIRE_AND : CX_WIRE_OR,
		    cx_expr_to_wire(a, x->a), cx_expr_to_wire(a, x->b));
	case CX_EXPR_QUORUM:
		if (x->n == 1 && x->nrefs == 1)
			return keyref_to_wire(a, &x->refs[0]);
		if ((v = cx_arena_alloc(a, (x->nrefs + 1) * sizeof(*v))) == NULL)
			return NULL;
		for (i = 0; i < x->nrefs; i++)
			if ((v[i] = keyref_to_wire(a, &x->refs[i])) == NULL)
				return NULL;
		if ((l = cx_wire_list(a, v, x->nrefs)) == NULL)
			return NULL;
		p = cx_wire_pair(a, CX_WIRE_PAIR, cx_wire_small(a, x->n), l);
		return p;
	}
	return NULL;
}

static int
hash_keyref(
    const struct cx_keyref *k, const struct cx_resource *r, struct cx_buf *out, struct cx_err *e)
{
	const struct cx_key *key;

	if (k->remote) {
		if (cx_buf_put_str(out, k->id) != 0 || cx_buf_put_str(out, ":sha256=") != 0 ||
		    cx_buf_put(out, k->digest.value, k->digest.len) != 0 ||
		    cx_buf_putf(out, ":0x%llX", (unsigned long long)k->epoch) != 0)
			return CX_ENOMEM;
		return 0;
	}
	if ((key = cx_resource_key(r, k->id)) == NULL)
		return cx_err_set(
		    e, CX_EREJECT, "key %s of the valid expression is not in keys", k->id);
	return cx_buf_put(out, key->keystr, key->keystrlen) == 0 ? 0 : CX_ENOMEM;
}

static int
hash_string(
    const struct cx_expr *x, const struct cx_resource *r, struct cx_buf *out, struct cx_err *e)
{
	size_t i;
	int rc;

	switch (x->kind) {
	case CX_EXPR_AND:
	case CX_EXPR_OR:
		if (cx_buf_put_u8(out, '(') != 0)
			return CX_ENOMEM;
		if ((rc = hash_string(x->a, r, out, e)) != 0)
			return rc;
		if (cx_buf_put_u8(out, x->kind == CX_EXPR_AND ? '&' : '|') != 0)
			return CX_ENOMEM;
		if ((rc = hash_string(x->b, r, out, e)) != 0)
			return rc;
		return cx_buf_put_u8(out, ')') == 0 ? 0 : CX_ENOMEM;
	case CX_EXPR_QUORUM:
		if (x->n == 1 && x->nrefs == 1)
			return hash_keyref(&x->refs[0], r, out, e);
		if (cx_buf_putf(out, "(%lld[", (long long)x->n) != 0)
			return CX_ENOMEM;
		/* upstream folds the ascending set with cons: descending order */
		for (i = x->nrefs; i-- > 0;) {
			if ((rc = hash_keyref(&x->refs[i], r, out, e)) != 0)
				return rc;
			if (i && cx_buf_put_u8(out, ',') != 0)
				return CX_ENOMEM;
		}
		return cx_buf_put_str(out, "])") == 0 ? 0 : CX_ENOMEM;
	}
	return CX_EINVAL;
}

int
cx_expr_hash(const struct cx_expr *x, const struct cx_resource *r, uint8_t out[CX_SHA256_LEN],
    struct cx_err *e)
{
	struct cx_buf b;
	int rc;

	cx_buf_init(&b, 0);
	if ((rc = hash_string(x, r, &b, e)) == 0)
		cx_sha256(b.d, b.len, out);
	cx_buf_free(&b);
	return rc;
}

int
cx_expr_eval(const struct cx_expr *x, const struct cx_expr_env *env)
{
	int64_t good = 0;
	size_t i;

	switch (x->kind) {
	case CX_EXPR_AND:
		return cx_expr_eval(x->a, env) && cx_expr_eval(x->b, env);
	case CX_EXPR_OR:
		return cx_expr_eval(x->a, env) || cx_expr_eval(x->b, env);
	case CX_EXPR_QUORUM:
		for (i = 0; i < x->nrefs; i++) {
			const struct cx_keyref *k = &x->refs[i];
			if (k->remote ? (env->remote != NULL && env->remote(env->arg, k))
			              : (env->local != NULL && env->local(env->arg, k->id)))
				good++;
		}
		return good >= x->n;
	}
	return 0;
}

void
cx_expr_remotes(
    const struct cx_expr *x, void (*fn)(void *arg, const struct cx_keyref *k), void *arg)
{
	size_t i;

	if (x->kind != CX_EXPR_QUORUM) {
		cx_expr_remotes(x->a, fn, arg);
		cx_expr_remotes(x->b, fn, arg);
		return;
	}
	for (i = 0; i < x->nrefs; i++)
		if (x->refs[i].remote)
			fn(arg, &x->refs[i]);
}
