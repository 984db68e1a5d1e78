/* Wire value constructors, lookup, equality and the canonical form (§3.1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conex/wire.h"

struct cx_wire *
cx_wire_new(struct cx_arena *a, enum cx_wire_type t)
{
	struct cx_wire *w = cx_arena_alloc(a, sizeof(*w));

	if (w != NULL)
		w->type = t;
	return w;
}

struct cx_wire *
cx_wire_str(struct cx_arena *a, enum cx_wire_type t, const char *s, size_t n)
{
	struct cx_wire *w = cx_wire_new(a, t);

	if (w == NULL || (w->u.str.s = cx_arena_memdup(a, s, n)) == NULL)
		return NULL;
	w->u.str.len = n;
	return w;
}

struct cx_wire *
cx_wire_big(struct cx_arena *a, uint64_t v)
{
	struct cx_wire *w = cx_wire_new(a, CX_WIRE_BIGINT);

	if (w != NULL)
		w->u.big = v;
	return w;
}

struct cx_wire *
cx_wire_small(struct cx_arena *a, int64_t v)
{
	struct cx_wire *w = cx_wire_new(a, CX_WIRE_SMALLINT);

	if (w != NULL)
		w->u.small = v;
	return w;
}

struct cx_wire *
cx_wire_pair(struct cx_arena *a, enum cx_wire_type t, struct cx_wire *x, struct cx_wire *y)
{
	struct cx_wire *w = cx_wire_new(a, t);

	if (w != NULL) {
		w->u.pair.a = x;
		w->u.pair.b = y;
	}
	return w;
}

struct cx_wire *
cx_wire_list(struct cx_arena *a, struct cx_wire **v, size_t n)
{
	struct cx_wire *w = cx_wire_new(a, CX_WIRE_LIST);

	if (w == NULL)
		return NULL;
	if (n) {
		if ((w->u.list.v = cx_arena_alloc(a, n * sizeof(*v))) == NULL)
			return NULL;
		memcpy(w->u.list.v, v, n * sizeof(*v));
		w->u.list.n = n;
	}
	return w;
}

static int
keycmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c != 0)
		return c;
	return al < bl ? -1 : al > bl;
}

struct idxkv {
	struct cx_wire_kv kv;
	size_t idx;
};

static int
idxkv_cmp(const void *x, const void *y)
{
	const struct idxkv *a = x, *b = y;
	int c = keycmp(a->kv.key, a->kv.keylen, b->kv.key, b->kv.keylen);

	if (c != 0)
		return c;
	return a->idx < b->idx ? -1 : 1;
}

struct cx_wire *
cx_wire_map(struct cx_arena *a, struct cx_wire_kv *kv, size_t n)
{
	struct cx_wire *w = cx_wire_new(a, CX_WIRE_MAP);
	struct idxkv *t;
	size_t i, m;
	int sorted = 1;

	if (w == NULL)
		return NULL;
	if (n == 0)
		return w;
	if ((w->u.map.kv = cx_arena_alloc(a, n * sizeof(*kv))) == NULL)
		return NULL;
	for (i = 1; i < n && sorted; i++)
		sorted = keycmp(kv[i - 1].key, kv[i - 1].keylen, kv[i].key, kv[i].keylen) < 0;
	if (sorted) {
		memcpy(w->u.map.kv, kv, n * sizeof(*kv));
		w->u.map.n = n;
		return w;
	}
	if ((t = malloc(n * sizeof(*t))) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		t[i].kv = kv[i];
		t[i].idx = i;
	}
	qsort(t, n, sizeof(*t), idxkv_cmp);
	/* equal keys sit together in input order: the last one of each run wins */
	for (i = 0, m = 0; i < n; i++) {
		if (i + 1 < n &&
		    keycmp(t[i].kv.key, t[i].kv.keylen, t[i + 1].kv.key, t[i + 1].kv.keylen) == 0)
			continue;
		w->u.map.kv[m++] = t[i].kv;
	}
	w->u.map.n = m;
	free(t);
	return w;
}

struct cx_wire *
cx_wire_get(const struct cx_wire *map, const char *key)
{
	size_t lo = 0, hi, kl = strlen(key);

	if (map == NULL || map->type != CX_WIRE_MAP)
		return NULL;
	hi = map->u.map.n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cx_wire_kv *kv = &map->u.map.kv[mid];
		int c = keycmp(kv->key, kv->keylen, key, kl);
		if (c == 0)
			return kv->val;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

int
cx_wire_equal(const struct cx_wire *a, const struct cx_wire *b)
{
	size_t i;

	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case CX_WIRE_MAP:
		if (a->u.map.n != b->u.map.n)
			return 0;
		for (i = 0; i < a->u.map.n; i++) {
			const struct cx_wire_kv *x = &a->u.map.kv[i], *y = &b->u.map.kv[i];
			if (keycmp(x->key, x->keylen, y->key, y->keylen) != 0 ||
			    !cx_wire_equal(x->val, y->val))
				return 0;
		}
		return 1;
	case CX_WIRE_LIST:
		if (a->u.list.n != b->u.list.n)
			return 0;
		for (i = 0; i < a->u.list.n; i++)
			if (!cx_wire_equal(a->u.list.v[i], b->u.list.v[i]))
				return 0;
		return 1;
	case CX_WIRE_IDENT:
	case CX_WIRE_DATA:
		return a->u.str.len == b->u.str.len &&
		    memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
	case CX_WIRE_BIGINT:
		return a->u.big == b->u.big;
	case CX_WIRE_SMALLINT:
		return a->u.small == b->u.small;
	case CX_WIRE_PAIR:
	case CX_WIRE_AND:
	case CX_WIRE_OR:
		return cx_wire_equal(a->u.pair.a, b->u.pair.a) &&
		    cx_wire_equal(a->u.pair.b, b->u.pair.b);
	}
	return 0;
}

int
cx_wire_canon(const struct cx_wire *w, struct cx_buf *out)
{
	size_t i;
	int r;

	switch (w->type) {
	case CX_WIRE_BIGINT:
		return cx_buf_putf(out, "0x%llX", (unsigned long long)w->u.big);
	case CX_WIRE_SMALLINT:
		return cx_buf_putf(out, "%lld", (long long)w->u.small);
	case CX_WIRE_DATA:
		if ((r = cx_buf_putf(out, "%zu'", w->u.str.len)) != 0)
			return r;
		return cx_buf_put(out, w->u.str.s, w->u.str.len);
	case CX_WIRE_IDENT:
		return cx_buf_put(out, w->u.str.s, w->u.str.len);
	case CX_WIRE_LIST:
		if ((r = cx_buf_put_u8(out, '[')) != 0)
			return r;
		for (i = 0; i < w->u.list.n; i++) {
			if (i && (r = cx_buf_put_u8(out, ';')) != 0)
				return r;
			if ((r = cx_wire_canon(w->u.list.v[i], out)) != 0)
				return r;
		}
		return cx_buf_put_u8(out, ']');
	case CX_WIRE_MAP:
		if ((r = cx_buf_put_u8(out, '{')) != 0)
			return r;
		for (i = 0; i < w->u.map.n; i++) {
			const struct cx_wire_kv *kv = &w->u.map.kv[i];
			if (i && (r = cx_buf_put_u8(out, ';')) != 0)
				return r;
			if ((r = cx_buf_put(out, kv->key, kv->keylen)) != 0 ||
			    (r = cx_buf_put_u8(out, ':')) != 0 ||
			    (r = cx_wire_canon(kv->val, out)) != 0)
				return r;
		}
		return cx_buf_put_u8(out, '}');
	case CX_WIRE_PAIR:
	case CX_WIRE_AND:
	case CX_WIRE_OR:
		if ((r = cx_buf_put_u8(out, '(')) != 0 ||
		    (r = cx_wire_canon(w->u.pair.a, out)) != 0)
			return r;
		if (w->type == CX_WIRE_AND && (r = cx_buf_put(out, "&&", 2)) != 0)
			return r;
		if (w->type == CX_WIRE_OR && (r = cx_buf_put(out, "||", 2)) != 0)
			return r;
		if ((r = cx_wire_canon(w->u.pair.b, out)) != 0)
			return r;
		return cx_buf_put_u8(out, ')');
	}
	return CX_EINVAL;
}

const char *
cx_wire_type_name(enum cx_wire_type t)
{
	switch (t) {
	case CX_WIRE_MAP:
		return "map";
	case CX_WIRE_LIST:
		return "list";
	case CX_WIRE_IDENT:
		return "identifier";
	case CX_WIRE_DATA:
		return "string";
	case CX_WIRE_BIGINT:
		return "unsigned integer";
	case CX_WIRE_SMALLINT:
		return "integer";
	case CX_WIRE_PAIR:
		return "pair";
	case CX_WIRE_AND:
		return "'&' expression";
	case CX_WIRE_OR:
		return "'|' expression";
	}
	return "value";
}

int
cx_wire_verr(
    struct cx_err *e, const char *name, const struct cx_wire *w, const char *fmt, va_list ap)
{
	char what[512];

	vsnprintf(what, sizeof(what), fmt, ap);
	if (w != NULL && w->line)
		return cx_err_set(e, CX_EPARSE, "%s:%u:%u: %s", name, w->line, w->col, what);
	return cx_err_set(e, CX_EPARSE, "%s: %s", name, what);
}
