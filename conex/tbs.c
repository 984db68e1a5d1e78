#include "conex/tbs.h"

#include <stdio.h>
#include <string.h>

struct cp {
	struct cx_arena *a;
	const uint8_t *p, *end, *start;
	struct cx_err *e;
	int depth;
};

static int
cerr(struct cp *c, const char *what)
{
	return cx_err_set(c->e, CX_EREJECT, "not canonical conex data at byte %zu: %s",
	    (size_t)(c->p - c->start), what);
}

static int
is_digit(uint8_t x)
{
	return x >= '0' && x <= '9';
}

/* Identifier characters of §2.2 (ichar, '+', and ':' inside values). */
static int
is_ident(uint8_t x, int allow_colon)
{
	return (x >= 'a' && x <= 'z') || (x >= 'A' && x <= 'Z') || is_digit(x) || x == '_' ||
	    x == '-' || x == '+' || (allow_colon && x == ':');
}

static int value(struct cp *c, struct cx_wire **out);

static int
expect(struct cp *c, uint8_t ch)
{
	if (c->p >= c->end || *c->p != ch) {
		char m[32];
		snprintf(m, sizeof(m), "expected '%c'", ch);
		return cerr(c, m);
	}
	c->p++;
	return 0;
}

static int
seq(struct cp *c, uint8_t close, int map, struct cx_wire **out)
{
	struct cx_wire **v = NULL;
	struct cx_wire_kv *kv = NULL;
	size_t n = 0, cap = 0;
	int r;

	if (++c->depth > CX_WIRE_MAX_DEPTH)
		return cerr(c, "nesting too deep");
	c->p++;
	while (c->p < c->end && *c->p != close) {
		if (n && (r = expect(c, ';')) != 0)
			return r;
		if (n == cap) {
			size_t ocap = cap;
			if (map) {
				if ((kv = cx_arena_grow(c->a, kv, sizeof(*kv), &cap, n + 1)) ==
				    NULL)
					return CX_ENOMEM;
			} else if ((v = cx_arena_grow(c->a, v, sizeof(*v), &cap, n + 1)) == NULL) {
				return CX_ENOMEM;
			}
			(void)ocap;
		}
		if (map) {
			const uint8_t *k = c->p;
			while (c->p < c->end && is_ident(*c->p, 0))
				c->p++;
			if (c->p == k)
				return cerr(c, "empty map key");
			kv[n].key = cx_arena_memdup(c->a, k, (size_t)(c->p - k));
			kv[n].keylen = (size_t)(c->p - k);
			if (kv[n].key == NULL)
				return CX_ENOMEM;
			if ((r = expect(c, ':')) != 0 || (r = value(c, &kv[n].val)) != 0)
				return r;
			if (n && strcmp(kv[n - 1].key, kv[n].key) >= 0)
				return cerr(c, "map keys not in ascending order");
		} else if ((r = value(c, &v[n])) != 0) {
			return r;
		}
		n++;
	}
	if ((r = expect(c, close)) != 0)
		return r;
	c->depth--;
	*out = map ? cx_wire_map(c->a, kv, n) : cx_wire_list(c->a, v, n);
	return *out == NULL ? CX_ENOMEM : 0;
}

static int
value(struct cp *c, struct cx_wire **out)
{
	const uint8_t *s = c->p;
	int r;

	if (c->p >= c->end)
		return cerr(c, "unexpected end");
	switch (*c->p) {
	case '{':
		return seq(c, '}', 1, out);
	case '[':
		return seq(c, ']', 0, out);
	case '(': {
		struct cx_wire *x, *y;
		enum cx_wire_type t = CX_WIRE_PAIR;
		if (++c->depth > CX_WIRE_MAX_DEPTH)
			return cerr(c, "nesting too deep");
		c->p++;
		if ((r = value(c, &x)) != 0)
			return r;
		if (c->end - c->p >= 2 && c->p[0] == '&' && c->p[1] == '&') {
			t = CX_WIRE_AND;
			c->p += 2;
		} else if (c->end - c->p >= 2 && c->p[0] == '|' && c->p[1] == '|') {
			t = CX_WIRE_OR;
			c->p += 2;
		}
		if ((r = value(c, &y)) != 0 || (r = expect(c, ')')) != 0)
			return r;
		c->depth--;
		*out = cx_wire_pair(c->a, t, x, y);
		return *out == NULL ? CX_ENOMEM : 0;
	}
	}
	if (c->end - c->p >= 2 && c->p[0] == '0' && c->p[1] == 'x') {
		uint64_t v = 0;
		int nd = 0;
		c->p += 2;
		while (c->p < c->end && (is_digit(*c->p) || (*c->p >= 'A' && *c->p <= 'F'))) {
			if (v >> 60)
				return cerr(c, "integer too large");
			v = v << 4 | (uint64_t)(is_digit(*c->p) ? *c->p - '0' : *c->p - 'A' + 10);
			c->p++;
			nd++;
		}
		if (nd == 0 || (nd > 1 && s[2] == '0'))
			return cerr(c, "malformed unsigned integer");
		if (c->p < c->end && is_ident(*c->p, 1))
			return cerr(c, "malformed unsigned integer");
		*out = cx_wire_big(c->a, v);
		return *out == NULL ? CX_ENOMEM : 0;
	}
	if (is_digit(*c->p) || *c->p == '-') {
		const uint8_t *d = c->p + (*c->p == '-');
		const uint8_t *q = d;
		uint64_t v = 0;
		while (q < c->end && is_digit(*q)) {
			if (v > (UINT64_C(1) << 62))
				return cerr(c, "integer too large");
			v = v * 10 + (uint64_t)(*q - '0');
			q++;
		}
		if (q > d && q < c->end && *q == '\'' && *c->p != '-') {
			/* Data: length, quote, raw bytes */
			if (q - d > 1 && *d == '0')
				return cerr(c, "leading zero in a length");
			if (v > (uint64_t)(c->end - q - 1))
				return cerr(c, "string runs past the end");
			*out = cx_wire_str(c->a, CX_WIRE_DATA, (const char *)q + 1, (size_t)v);
			c->p = q + 1 + v;
			return *out == NULL ? CX_ENOMEM : 0;
		}
		if (q > d && (q == c->end || !is_ident(*q, 1))) {
			if ((q - d > 1 && *d == '0') || v > (UINT64_C(1) << 62) - (*c->p != '-'))
				return cerr(c, "malformed integer");
			*out = cx_wire_small(c->a, *c->p == '-' ? -(int64_t)v : (int64_t)v);
			c->p = q;
			return *out == NULL ? CX_ENOMEM : 0;
		}
	}
	while (c->p < c->end && is_ident(*c->p, 1))
		c->p++;
	if (c->p == s)
		return cerr(c, "unexpected character");
	*out = cx_wire_str(c->a, CX_WIRE_IDENT, (const char *)s, (size_t)(c->p - s));
	return *out == NULL ? CX_ENOMEM : 0;
}

int
cx_canon_parse(
    struct cx_arena *a, const uint8_t *p, size_t n, struct cx_wire **out, struct cx_err *e)
{
	struct cp c = {a, p, p + n, p, e, 0};
	int r;

	if ((r = value(&c, out)) != 0)
		return r == CX_ENOMEM ? cx_err_set(e, r, "out of memory") : r;
	if (c.p != c.end)
		return cerr(&c, "trailing bytes");
	return 0;
}

static void
copy(char *dst, size_t cap, const struct cx_wire *w)
{
	size_t n = w->u.str.len < cap - 1 ? w->u.str.len : cap - 1;

	memcpy(dst, w->u.str.s, n);
	dst[n] = 0;
}

int
cx_tbs_inspect(const uint8_t *tbs, size_t n, struct cx_tbs_info *info, struct cx_err *e)
{
	static const struct {
		const char *name;
		enum cx_rtype t;
	} types[] = {{"root", CX_R_ROOT}, {"targets", CX_R_TARGETS}, {"snapshot", CX_R_SNAPSHOT},
	    {"timestamp", CX_R_TIMESTAMP}};
	struct cx_arena a;
	struct cx_wire *w, *created, *data, *ident, *sigtype, *typ;
	struct cx_wire_kv kv;
	struct cx_resource *r;
	struct cx_buf canon, again;
	enum cx_sigalg alg;
	size_t i;
	int rc;

	memset(info, 0, sizeof(*info));
	cx_arena_init(&a, 0);
	cx_buf_init(&canon, 0);
	cx_buf_init(&again, 0);
	if ((rc = cx_canon_parse(&a, tbs, n, &w, e)) != 0)
		goto out;
	rc = CX_EREJECT;
	if (w->type != CX_WIRE_MAP || w->u.map.n != 4 ||
	    (created = cx_wire_get(w, "created")) == NULL || created->type != CX_WIRE_DATA ||
	    (data = cx_wire_get(w, "data")) == NULL || data->type != CX_WIRE_MAP ||
	    (ident = cx_wire_get(w, "identifier")) == NULL || ident->type != CX_WIRE_IDENT ||
	    (sigtype = cx_wire_get(w, "sigtype")) == NULL || sigtype->type != CX_WIRE_IDENT) {
		cx_err_set(
		    e, rc, "not conex to-be-signed data (want {created;data;identifier;sigtype})");
		goto out;
	}
	if ((alg = cx_sigalg_from_name(sigtype->u.str.s, sigtype->u.str.len)) == CX_SIG_NONE) {
		cx_err_set(e, rc, "unknown signature type");
		goto out;
	}
	if ((typ = cx_wire_get(data, "typ")) == NULL || typ->type != CX_WIRE_IDENT) {
		cx_err_set(e, rc, "the data has no resource type");
		goto out;
	}
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(typ->u.str.s, types[i].name) == 0)
			break;
	if (i == sizeof(types) / sizeof(types[0])) {
		cx_err_set(e, rc, "unknown resource type");
		goto out;
	}
	kv.key = "signed";
	kv.keylen = 6;
	kv.val = data;
	if ((w = cx_wire_map(&a, &kv, 1)) == NULL) {
		rc = cx_err_set(e, CX_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = cx_resource_from_wire(&a, "to-be-signed data", w, types[i].t, &r, NULL, e)) !=
	    0) {
		rc = cx_err_set(e, CX_EREJECT, "%s", e->msg);
		goto out;
	}
	/* the bytes must be exactly what conex would sign for this record */
	if (memchr(created->u.str.s, 0, created->u.str.len) != NULL ||
	    cx_resource_canon(r, &canon) != 0 ||
	    cx_tbs(canon.d, canon.len, created->u.str.s, ident->u.str.s, alg, &again) != 0 ||
	    again.len != n || memcmp(again.d, tbs, n) != 0) {
		rc = cx_err_set(e, CX_EREJECT,
		    "the data is not in canonical form (it would not verify as signed)");
		goto out;
	}
	info->type = types[i].t;
	info->sigalg = alg;
	copy(info->identifier, sizeof(info->identifier), ident);
	copy(info->created, sizeof(info->created), created);
	snprintf(info->name, sizeof(info->name), "%s", r->name);
	info->counter = r->counter;
	info->epoch = r->epoch;
	info->ntargets = r->ntargets;
	info->ndelegations = r->ndels;
	info->nkeys = r->nkeys;
	rc = 0;
out:
	cx_buf_free(&canon);
	cx_buf_free(&again);
	cx_arena_free(&a);
	return rc;
}

void
cx_tbs_summary(const struct cx_tbs_info *info, char *out, size_t outlen)
{
	switch (info->type) {
	case CX_R_TARGETS:
		snprintf(out, outlen, "targets %s, counter 0x%llX, %zu files, %zu delegations",
		    info->name, (unsigned long long)info->counter, info->ntargets,
		    info->ndelegations);
		break;
	case CX_R_ROOT:
		snprintf(out, outlen, "root %s, counter 0x%llX, epoch 0x%llX, %zu keys", info->name,
		    (unsigned long long)info->counter, (unsigned long long)info->epoch,
		    info->nkeys);
		break;
	default:
		snprintf(out, outlen, "%s %s, counter 0x%llX, %zu files", cx_rtype_name(info->type),
		    info->name, (unsigned long long)info->counter, info->ntargets);
		break;
	}
}
