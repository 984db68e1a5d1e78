/*
 * The opam-file-format parser subset and the conex decoding rules (§2.2,
 * §2.3), in one pass: values are decoded bottom-up as they are parsed, so a
 * 30,000-entry targets file is never held as a second tree.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conex/opam_lex.h"
#include "conex/targets_fast.h"
#include "conex/wire.h"

enum raw_kind { RAW_IDENT = 1, RAW_INT, RAW_STRING, RAW_LIST, RAW_GROUP, RAW_LOGOP };

/* A decoded value plus what the decoding rules still need to know of its syntax. */
struct pval {
	struct cx_wire *w;
	enum raw_kind raw;
	/* RAW_IDENT: the identifier's text; RAW_LIST of two with an IDENT first: that IDENT */
	const char *key;
	size_t keylen;
	int keypair; /* RAW_LIST of exactly two elements, the first an IDENT */
};

/* What is open at each depth: the fast path must know it is at `signed: [ [targets HERE`. */
struct open {
	size_t base; /* first child on stk */
	int list;    /* a '[' list, not a '(' group nor an '&'/'|' operand */
};

struct parser {
	struct cx_lex lex;
	struct cx_arena *arena;
	struct cx_err *e;
	struct pval *stk; /* children of the lists and groups being parsed */
	size_t nstk, capstk;
	int depth;
	struct open open[CX_WIRE_MAX_DEPTH + 2];
	int in_signed;                 /* parsing the value of the top-level item `signed` */
	struct cx_fast_targets **fast; /* NULL: no fast path */
	int inplace;                   /* the fast path may point into the input */
};

static int parse_value(struct parser *ps, struct pval *out);

static int perr(struct parser *ps, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
perr(struct parser *ps, uint32_t line, uint32_t col, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return cx_err_set(ps->e, CX_EPARSE, "%s:%u:%u: %s", ps->lex.name, line, col, what);
}

static int
nomem(struct parser *ps)
{
	return cx_err_set(
	    ps->e, CX_ENOMEM, "%s: out of memory (or over the size cap)", ps->lex.name);
}

static int
unexpected(struct parser *ps)
{
	const char *n = cx_tok_name(ps->lex.tok);

	if (ps->lex.tok == CX_T_LBRACE)
		return perr(ps, ps->lex.tline, ps->lex.tcol,
		    "unexpected %s (options and sections are not conex data)", n);
	return perr(ps, ps->lex.tline, ps->lex.tcol, "unexpected %s", n);
}

static int
push(struct parser *ps, const struct pval *v)
{
	if (ps->nstk == ps->capstk) {
		size_t ncap = ps->capstk ? ps->capstk * 2 : 256;
		struct pval *n = realloc(ps->stk, ncap * sizeof(*n));
		if (n == NULL)
			return nomem(ps);
		ps->stk = n;
		ps->capstk = ncap;
	}
	ps->stk[ps->nstk++] = *v;
	return 0;
}

static struct cx_wire *
node(struct parser *ps, enum cx_wire_type t, uint32_t line, uint32_t col)
{
	struct cx_wire *w = cx_wire_new(ps->arena, t);

	if (w != NULL) {
		w->line = line;
		w->col = col;
	}
	return w;
}

static int
is_trim(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* Int64.of_string "0x...": hex digits and '_', at least one digit, at most 64 bits. */
static int
parse_bigint(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	int digits = 0;
	size_t i;

	for (i = 2; i < n; i++) {
		int d;
		char c = s[i];
		if (c == '_')
			continue;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		if (v >> 60)
			return -1;
		v = v << 4 | (uint64_t)d;
		digits++;
	}
	if (!digits)
		return -1;
	*out = v;
	return 0;
}

/*
 * Is the '[' at hand the value of a `[targets ...]` (1) or `[delegations
 * ...]` (2) pair directly in the `signed: [...]` list?  Only there does the
 * decoder read a list as targets or delegations.
 */
static int
fast_targets_here(const struct parser *ps)
{
	const struct pval *k;

	if (ps->fast == NULL || !ps->in_signed || ps->lex.tok != CX_T_LBRACK || ps->depth != 2 ||
	    !ps->open[1].list || !ps->open[2].list || ps->nstk != ps->open[2].base + 1)
		return 0;
	k = &ps->stk[ps->open[2].base];
	if (k->raw != RAW_IDENT)
		return 0;
	if (k->keylen == 7 && memcmp(k->key, "targets", 7) == 0)
		return 1;
	if (k->keylen == 11 && memcmp(k->key, "delegations", 11) == 0)
		return 2;
	return 0;
}

static int
parse_atom(struct parser *ps, struct pval *out)
{
	struct cx_lex *l = &ps->lex;
	uint32_t line = l->tline, col = l->tcol;
	enum cx_tok close;
	size_t base, n, i;
	int r, depth;

	memset(out, 0, sizeof(*out));
	switch (l->tok) {
	case CX_T_IDENT: {
		const char *s = (const char *)l->tstart;
		size_t len = l->tlen;
		out->raw = RAW_IDENT;
		if (len >= 2 && s[0] == '0' && s[1] == 'x') {
			uint64_t v;
			if (parse_bigint(s, len, &v) != 0)
				return perr(ps, line, col, "cannot parse unsigned integer '%.*s'",
				    (int)(len > 40 ? 40 : len), s);
			out->w = node(ps, CX_WIRE_BIGINT, line, col);
			if (out->w != NULL)
				out->w->u.big = v;
		} else if (len == 8 && memcmp(s, "emptymap", 8) == 0) {
			out->w = node(ps, CX_WIRE_MAP, line, col);
		} else {
			out->w = node(ps, CX_WIRE_IDENT, line, col);
			if (out->w != NULL) {
				out->w->u.str.s = cx_arena_memdup(ps->arena, s, len);
				out->w->u.str.len = len;
				if (out->w->u.str.s == NULL)
					out->w = NULL;
			}
		}
		if (out->w == NULL)
			return nomem(ps);
		out->key = (const char *)l->tstart;
		out->keylen = len;
		if (out->w->type == CX_WIRE_IDENT)
			out->key = out->w->u.str.s;
		else if ((out->key = cx_arena_memdup(ps->arena, s, len)) == NULL)
			return nomem(ps);
		return cx_lex_next(l, ps->e);
	}
	case CX_T_INT:
		out->raw = RAW_INT;
		if ((out->w = node(ps, CX_WIRE_SMALLINT, line, col)) == NULL)
			return nomem(ps);
		out->w->u.small = l->ival;
		return cx_lex_next(l, ps->e);
	case CX_T_STRING: {
		const uint8_t *s = cx_buf_ptr(&l->str);
		size_t len = cx_buf_avail(&l->str);
		while (len && is_trim(s[0])) {
			s++;
			len--;
		}
		while (len && is_trim(s[len - 1]))
			len--;
		out->raw = RAW_STRING;
		if ((out->w = node(ps, CX_WIRE_DATA, line, col)) == NULL ||
		    (out->w->u.str.s = cx_arena_memdup(ps->arena, s, len)) == NULL)
			return nomem(ps);
		out->w->u.str.len = len;
		return cx_lex_next(l, ps->e);
	}
	case CX_T_BOOL:
		return perr(ps, line, col,
		    "unexpected boolean %s (conex has no booleans; quote it)",
		    l->tlen == 4 ? "true" : "false");
	case CX_T_LBRACK:
	case CX_T_LPAREN:
		break;
	default:
		return unexpected(ps);
	}

	if ((r = fast_targets_here(ps)) != 0) {
		struct cx_fast_targets *ft = cx_arena_alloc(ps->arena, sizeof(*ft));
		if (ft == NULL)
			return nomem(ps);
		ft->is_dels = r == 2;
		if ((r == 1 ? cx_targets_scan(
		                  l, ps->arena, ps->inplace, &ft->t, &ft->n, &ft->ends, &ft->nends)
		            : cx_dels_scan(l, ps->arena, ps->inplace, &ft->d, &ft->nd, &ft->ends,
		                  &ft->nends)) == 0) {
			/* an empty List stands in the tree for what the scan read */
			ft->w.type = CX_WIRE_LIST;
			ft->w.line = line;
			ft->w.col = col;
			ft->next = *ps->fast;
			*ps->fast = ft;
			out->raw = RAW_LIST;
			out->w = &ft->w;
			return cx_lex_next(l, ps->e);
		}
	}

	/* a list or a group */
	close = l->tok == CX_T_LBRACK ? CX_T_RBRACK : CX_T_RPAREN;
	if (++ps->depth > CX_WIRE_MAX_DEPTH)
		return perr(ps, line, col, "%s", "nesting too deep");
	if ((r = cx_lex_next(l, ps->e)) != 0)
		return r;
	base = ps->nstk;
	ps->open[ps->depth].base = base;
	ps->open[ps->depth].list = close == CX_T_RBRACK;
	while (l->tok != close) {
		struct pval v;
		if (l->tok == CX_T_EOF)
			return perr(
			    ps, line, col, "unclosed %s", close == CX_T_RBRACK ? "'['" : "'('");
		if ((r = parse_value(ps, &v)) != 0)
			return r;
		if ((r = push(ps, &v)) != 0)
			return r;
	}
	depth = ps->depth--;
	(void)depth;
	n = ps->nstk - base;
	if (close == CX_T_RPAREN) {
		struct pval *c = n ? ps->stk + base : NULL;
		out->raw = RAW_GROUP;
		if (n == 1 && c[0].raw == RAW_LOGOP) {
			out->w = c[0].w; /* (a & b) */
		} else if (n == 2) {
			if ((out->w = cx_wire_pair(ps->arena, CX_WIRE_PAIR, c[0].w, c[1].w)) ==
			    NULL)
				return nomem(ps);
			out->w->line = line;
			out->w->col = col;
		} else {
			return perr(ps, line, col, "%s",
			    "a group must hold two values or one '&'/'|' expression");
		}
	} else {
		struct pval *c = n ? ps->stk + base : NULL;
		int ismap = n > 0;
		out->raw = RAW_LIST;
		for (i = 0; i < n && ismap; i++)
			ismap = c[i].keypair;
		if (ismap) {
			struct cx_wire_kv *kv = malloc(n * sizeof(*kv));
			if (kv == NULL)
				return nomem(ps);
			for (i = 0; i < n; i++) {
				const char *k = c[i].key;
				size_t kl = c[i].keylen;
				/* keys are identifiers, which cannot hold blanks: trim is a no-op */
				kv[i].key = k;
				kv[i].keylen = kl;
				kv[i].val = c[i].w->u.list.v[1];
			}
			out->w = cx_wire_map(ps->arena, kv, n);
			free(kv);
			if (out->w == NULL)
				return nomem(ps);
		} else {
			struct cx_wire **v;
			if ((out->w = node(ps, CX_WIRE_LIST, line, col)) == NULL)
				return nomem(ps);
			if (n) {
				if ((v = cx_arena_alloc(ps->arena, n * sizeof(*v))) == NULL)
					return nomem(ps);
				for (i = 0; i < n; i++)
					v[i] = c[i].w;
				out->w->u.list.v = v;
				out->w->u.list.n = n;
			}
			if (n == 2 && c[0].raw == RAW_IDENT) {
				out->keypair = 1;
				out->key = c[0].key;
				out->keylen = c[0].keylen;
			}
		}
		out->w->line = line;
		out->w->col = col;
	}
	ps->nstk = base;
	return cx_lex_next(l, ps->e);
}

static int
check_no_option(struct parser *ps)
{
	if (ps->lex.tok == CX_T_LBRACE || ps->lex.tok == CX_T_OP)
		return unexpected(ps);
	return 0;
}

static int
parse_and(struct parser *ps, struct pval *out)
{
	struct pval rhs;
	uint32_t line, col;
	int r;

	if ((r = parse_atom(ps, out)) != 0 || (r = check_no_option(ps)) != 0)
		return r;
	while (ps->lex.tok == CX_T_AND) {
		line = ps->lex.tline;
		col = ps->lex.tcol;
		if (++ps->depth > CX_WIRE_MAX_DEPTH)
			return perr(ps, line, col, "%s", "expression too deep");
		ps->open[ps->depth].list = 0;
		if ((r = cx_lex_next(&ps->lex, ps->e)) != 0 || (r = parse_atom(ps, &rhs)) != 0 ||
		    (r = check_no_option(ps)) != 0)
			return r;
		if ((out->w = cx_wire_pair(ps->arena, CX_WIRE_AND, out->w, rhs.w)) == NULL)
			return nomem(ps);
		out->w->line = line;
		out->w->col = col;
		out->raw = RAW_LOGOP;
		out->keypair = 0;
	}
	return 0;
}

/* value := and ('|' and)*; '&' binds tighter, both associate to the left. */
static int
parse_value(struct parser *ps, struct pval *out)
{
	struct pval rhs;
	uint32_t line, col;
	int r, depth0 = ps->depth;

	if ((r = parse_and(ps, out)) != 0)
		return r;
	while (ps->lex.tok == CX_T_OR) {
		line = ps->lex.tline;
		col = ps->lex.tcol;
		if (++ps->depth > CX_WIRE_MAX_DEPTH)
			return perr(ps, line, col, "%s", "expression too deep");
		ps->open[ps->depth].list = 0;
		if ((r = cx_lex_next(&ps->lex, ps->e)) != 0 || (r = parse_and(ps, &rhs)) != 0)
			return r;
		if ((out->w = cx_wire_pair(ps->arena, CX_WIRE_OR, out->w, rhs.w)) == NULL)
			return nomem(ps);
		out->w->line = line;
		out->w->col = col;
		out->raw = RAW_LOGOP;
		out->keypair = 0;
	}
	ps->depth = depth0;
	return 0;
}

int
cx_wire_parse(struct cx_arena *arena, const char *name, const uint8_t *data, size_t len,
    struct cx_wire **out, struct cx_err *e)
{
	return cx_wire_parse_fast(arena, name, data, len, out, NULL, 0, e);
}

int
cx_wire_parse_fast(struct cx_arena *arena, const char *name, const uint8_t *data, size_t len,
    struct cx_wire **out, struct cx_fast_targets **fast, int inplace, struct cx_err *e)
{
	struct parser ps;
	struct cx_wire_kv *kv = NULL;
	size_t nkv = 0, capkv = 0;
	int r;

	memset(&ps, 0, sizeof(ps));
	ps.arena = arena;
	ps.e = e;
	ps.fast = fast;
	ps.inplace = inplace;
	if (fast != NULL)
		*fast = NULL;
	cx_lex_init(&ps.lex, name, data, len);
	if ((r = cx_lex_next(&ps.lex, e)) != 0)
		goto out;
	while (ps.lex.tok != CX_T_EOF) {
		struct pval v;
		const char *key;
		size_t keylen;

		if (ps.lex.tok != CX_T_IDENT) {
			r = perr(&ps, ps.lex.tline, ps.lex.tcol, "expected a field name, got %s",
			    cx_tok_name(ps.lex.tok));
			goto out;
		}
		keylen = ps.lex.tlen;
		if ((key = cx_arena_memdup(arena, ps.lex.tstart, keylen)) == NULL) {
			r = nomem(&ps);
			goto out;
		}
		if ((r = cx_lex_next(&ps.lex, e)) != 0)
			goto out;
		if (ps.lex.tok != CX_T_COLON) {
			r = perr(&ps, ps.lex.tline, ps.lex.tcol, "%s",
			    ps.lex.tok == CX_T_LBRACE || ps.lex.tok == CX_T_STRING
			        ? "unexpected section"
			        : "expected ':' after the field name");
			goto out;
		}
		ps.in_signed = keylen == 6 && memcmp(key, "signed", 6) == 0;
		if ((r = cx_lex_next(&ps.lex, e)) != 0 || (r = parse_value(&ps, &v)) != 0)
			goto out;
		if (nkv == capkv) {
			size_t ncap = capkv ? capkv * 2 : 8;
			struct cx_wire_kv *n = realloc(kv, ncap * sizeof(*n));
			if (n == NULL) {
				r = nomem(&ps);
				goto out;
			}
			kv = n;
			capkv = ncap;
		}
		kv[nkv].key = key;
		kv[nkv].keylen = keylen;
		kv[nkv].val = v.w;
		nkv++;
	}
	if ((*out = cx_wire_map(arena, kv, nkv)) == NULL) {
		r = nomem(&ps);
		goto out;
	}
	(*out)->line = 1;
	(*out)->col = 1;
	r = 0;
out:
	free(kv);
	free(ps.stk);
	cx_lex_free(&ps.lex);
	return r;
}
