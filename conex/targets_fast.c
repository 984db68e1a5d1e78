/*
 * The fast path for `targets` lists (targets_fast.h).  The grammar it accepts
 * is a strict subset of what the generic lexer, parser and decoder accept,
 * and for that subset it yields the same records:
 *
 *   list   := '[' B (entry B)* ']'
 *   entry  := '[' B '[' "digest" B '[' B (string B)* ']' B ']' B
 *                   '[' "filename" B string B ']' B
 *                   '[' "size" B bigint B ']' B ']'
 *   B      := (' ' | '\t' | '\n' | "\r\n")*
 *
 * Each entry is a list of three keypairs, so the generic decoder makes it a
 * map with exactly the keys filename, digest and size (in ascending order,
 * none repeated); the list of entries is never a map.  A keyword must be
 * followed by a byte that ends an identifier token (blank, '[', ']', '"').
 * A string holds no byte below 0x20, no '\\' and does not start or end with
 * a space, so the lexer would copy it unchanged and trimming is a no-op; it
 * may not open a triple-quoted string.  A digest must read "sha256=...", the
 * only algorithm the decoder keeps without a warning.  A path must pass the
 * decoder's path rules.  Anything else declines.
 *
 * `delegations` lists get the same treatment:
 *
 *   list   := '[' B (del B)* ']'
 *   del    := '[' B '[' "paths" B '[' B (string B)* ']' B ']' B
 *                   '[' "terminating" B string B ']' B
 *                   '[' "valid" B valid B ']' B ']'
 *   valid  := ident | '[' B ident B string B bigint B ']'
 *
 * where terminating is one of "true", "yes", "false", "no", and valid is
 * decoded by cx_expr_from_wire itself.
 */
#include "conex/targets_fast.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct scan {
	const uint8_t *p, *end;
	const uint8_t *line_start;
	uint32_t line;
	/*
	 * inplace: the caller's buffer is writable and outlives the records, so
	 * strings are not copied: they point into it, and once the whole list
	 * is read, the closing quote after each becomes its NUL (ends).  Until
	 * then the buffer is untouched, so a decline leaves it to the parser.
	 * CX_INPLACE_DEFER: the same, but the NULs are left to the caller (the
	 * positions are handed over, see cx_targets_scan).
	 */
	int inplace;
	uint8_t **ends;
	size_t nends, capends;
};

/*
 * v (n elements in use, *cap allocated, of elem bytes each) with room for
 * one more: doubled when full, first when empty.  NULL when out of memory;
 * v is then still the caller's.
 */
static void *
grow(void *v, size_t *cap, size_t n, size_t elem, size_t first)
{
	size_t ncap;
	void *x;

	if (n < *cap)
		return v;
	ncap = *cap ? *cap * 2 : first;
	if (ncap <= *cap || ncap > SIZE_MAX / elem || (x = realloc(v, ncap * elem)) == NULL)
		return NULL;
	*cap = ncap;
	return x;
}

/* The text [b, e) as a NUL-terminated string: a copy in a, or in place. */
static char *
str_out(struct scan *s, struct cx_arena *a, const uint8_t *b, const uint8_t *e)
{
	uint8_t **n;

	if (!s->inplace)
		return cx_arena_memdup(a, b, (size_t)(e - b));
	/* two strings per 120 bytes at most (see cx_targets_scan) */
	if ((n = grow(s->ends, &s->capends, s->nends, sizeof(*n),
	         (size_t)(s->end - s->p) / 50 + 64)) == NULL)
		return NULL;
	s->ends = n;
	s->ends[s->nends++] = (uint8_t *)(uintptr_t)e;
	return (char *)(uintptr_t)b;
}

/* The list was read: terminate the strings that point into the buffer. */
static void
seal(struct scan *s)
{
	for (size_t i = 0; i < s->nends; i++)
		*s->ends[i] = 0;
}

/*
 * Eight bytes at a time (SWAR): a 6.7 MB file is mostly indentation and
 * string bodies, and a byte-at-a-time loop over them was most of the scan.
 */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "targets_fast.c: the SWAR scans assume a little-endian machine"
#endif
#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

static uint64_t
load8(const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, 8); /* unaligned; little-endian below (first byte lowest) */
	return w;
}

/*
 * The high bit of each byte of w below n (n <= 128).  Borrows can mark a
 * byte above a marked one wrongly, never the lowest: only first_marked of
 * these masks (or of an OR of them) may be used.
 */
static uint64_t
bytes_below(uint64_t w, uint8_t n)
{
	return (w - ONES * n) & ~w & HIGHS;
}

static uint64_t
bytes_equal(uint64_t w, uint8_t c)
{
	return bytes_below(w ^ (ONES * c), 1);
}

/* The high bit of each byte of w that is not c, exactly (no borrows). */
static uint64_t
bytes_other(uint64_t w, uint8_t c)
{
	const uint64_t low7 = ONES * 0x7F;
	uint64_t t = w ^ (ONES * c);

	return (((t & low7) + low7) | t) & HIGHS;
}

static size_t
first_marked(uint64_t m)
{
	return (size_t)__builtin_ctzll(m) / 8;
}

/* Blanks between tokens; 0 at a comment or a stray '\r' (those decline). */
static int
blank_slow(struct scan *s)
{
	while (s->p < s->end) {
		uint8_t c = *s->p;
		if (c == ' ') {
			/* a run of spaces: indentation */
			while (s->end - s->p >= 8) {
				uint64_t m = bytes_other(load8(s->p), ' ');
				if (m != 0) {
					s->p += first_marked(m);
					break;
				}
				s->p += 8;
			}
			if (s->p < s->end && *s->p == ' ')
				s->p++;
		} else if (c == '\t') {
			s->p++;
		} else if (c == '\n') {
			s->p++;
			s->line++;
			s->line_start = s->p;
		} else if (c == '\r') {
			if (s->p + 1 >= s->end || s->p[1] != '\n')
				return 0;
			s->p += 2;
			s->line++;
			s->line_start = s->p;
		} else {
			return 1;
		}
	}
	return 1;
}

/*
 * The usual blank, a newline and the next line's indentation, without a
 * call: it comes between every two tokens of a 33,000-entry file.
 */
static inline __attribute__((always_inline)) int
blank(struct scan *s)
{
	const uint8_t *p = s->p;

	if (s->end - p >= 9 && *p == '\n') {
		uint64_t m = bytes_other(load8(p + 1), ' ');
		if (m != 0) {
			s->line++;
			s->line_start = p + 1;
			p += 1 + first_marked(m);
			if (*p != '\n' && *p != '\r' && *p != '\t') {
				s->p = p;
				return 1;
			}
			s->p = p;
		}
	}
	return blank_slow(s);
}

static int
byte(struct scan *s, uint8_t c)
{
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return 1;
	}
	return 0;
}

/* A byte after which an identifier token has surely ended. */
static int
ends_ident(const struct scan *s)
{
	uint8_t c;

	if (s->p >= s->end)
		return 1;
	c = *s->p;
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '[' || c == ']' || c == '"';
}

/* '[' then the keyword kw (an identifier), ended as a token. */
static int
open_key(struct scan *s, const char *kw, size_t n)
{
	if (!byte(s, '[') || !blank(s) || (size_t)(s->end - s->p) < n || memcmp(s->p, kw, n) != 0)
		return 0;
	s->p += n;
	return ends_ident(s);
}

/* A plain double-quoted string: [*b, *e) is its text. */
static int
string(struct scan *s, const uint8_t **b, const uint8_t **e)
{
	const uint8_t *p;

	if (!byte(s, '"'))
		return 0;
	if (s->end - s->p >= 2 && s->p[0] == '"' && s->p[1] == '"')
		return 0; /* `"""`: a triple-quoted string */
	for (p = s->p; s->end - p >= 8; p += 8) {
		uint64_t w = load8(p);
		uint64_t m = bytes_below(w, 0x20) | bytes_equal(w, '\\') | bytes_equal(w, '"');
		if (m != 0) {
			p += first_marked(m);
			break;
		}
	}
	for (; p < s->end && *p != '"'; p++)
		if (*p < 0x20 || *p == '\\')
			return 0;
	if (p >= s->end)
		return 0;
	if (p > s->p && (s->p[0] == ' ' || p[-1] == ' '))
		return 0; /* the decoder would trim it */
	*b = s->p;
	*e = p;
	s->p = p + 1;
	return 1;
}

static int
is_ichar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '-';
}

/* An identifier token "0x..." that the parser reads as a Bigint (Int64.of_string rules). */
static int
bigint(struct scan *s, uint64_t *out)
{
	uint64_t v = 0;
	int digits = 0;

	if (s->end - s->p < 2 || s->p[0] != '0' || s->p[1] != 'x')
		return 0;
	s->p += 2;
	for (; s->p < s->end && is_ichar(*s->p); s->p++) {
		uint8_t c = *s->p;
		int d;
		if (c == '_')
			continue;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return 0;
		if (v >> 60)
			return 0;
		v = v << 4 | (uint64_t)d;
		digits++;
	}
	/* '+' or ':' would continue the identifier: only a clear end is taken */
	if (!digits || !ends_ident(s))
		return 0;
	*out = v;
	return 1;
}

/* One entry, after its '[' and the blanks behind it. */
static int
entry(struct scan *s, struct cx_arena *a, struct cx_target *t, struct cx_digest **dv, size_t *dcap)
{
	struct cx_digest *n;
	const uint8_t *b, *e;
	size_t nd = 0;
	char *fn;

	if (!open_key(s, "digest", 6) || !blank(s) || !byte(s, '[') || !blank(s))
		return 0;
	while (s->p < s->end && *s->p == '"') {
		if (!string(s, &b, &e) || e - b < 7 || memcmp(b, "sha256=", 7) != 0 || !blank(s))
			return 0;
		if ((n = grow(*dv, dcap, nd, sizeof(*n), 4)) == NULL)
			return 0;
		*dv = n;
		b += 7;
		if (((*dv)[nd].value = str_out(s, a, b, e)) == NULL)
			return 0;
		(*dv)[nd++].len = (size_t)(e - b);
	}
	if (!byte(s, ']') || !blank(s) || !byte(s, ']') || !blank(s))
		return 0;
	if (nd) {
		if ((t->digests = cx_arena_alloc(a, nd * sizeof(*t->digests))) == NULL)
			return 0;
		memcpy(t->digests, *dv, nd * sizeof(*t->digests));
		t->ndigests = nd;
	}
	if (!open_key(s, "filename", 8) || !blank(s) || !string(s, &b, &e) || !blank(s) ||
	    !byte(s, ']') || !blank(s))
		return 0;
	if ((fn = str_out(s, a, b, e)) == NULL ||
	    (t->path = cx_path_of_string(fn, (size_t)(e - b))) == NULL)
		return 0;
	if (!open_key(s, "size", 4) || !blank(s) || !bigint(s, &t->size) || !blank(s) ||
	    !byte(s, ']') || !blank(s) || !byte(s, ']'))
		return 0;
	return 1;
}

/*
 * An identifier token that the parser reads as an IDENT (not a Bigint,
 * emptymap or a boolean), ended by a byte that cannot continue it.
 */
static int
ident(struct scan *s, const uint8_t **b, size_t *n)
{
	const uint8_t *p = s->p;
	int alpha = 0;

	while (s->p < s->end && is_ichar(*s->p)) {
		alpha |= (*s->p >= 'a' && *s->p <= 'z') || (*s->p >= 'A' && *s->p <= 'Z');
		s->p++;
	}
	*b = p;
	*n = (size_t)(s->p - p);
	if (!alpha || !ends_ident(s) || (*n >= 2 && p[0] == '0' && p[1] == 'x') ||
	    (*n == 4 && memcmp(p, "true", 4) == 0) || (*n == 5 && memcmp(p, "false", 5) == 0) ||
	    (*n == 8 && memcmp(p, "emptymap", 8) == 0))
		return 0;
	return 1;
}

static uint32_t
col(const struct scan *s)
{
	return (uint32_t)(s->p - s->line_start) + 1;
}

/*
 * The `valid` of a delegation: `id` or `[id "sha256=..." 0x...]`, built as
 * the wire values the parser makes of them and decoded by cx_expr_from_wire,
 * so the expression rules stay in one place.  Only "sha256" digests: another
 * algorithm is dropped with a warning, which the generic path gives.
 */
static int
valid(struct scan *s, struct cx_arena *a, struct cx_expr **out)
{
	struct cx_wire *w, *f[3];
	const uint8_t *b, *e;
	struct cx_err ignore;
	uint32_t line = s->line, c = col(s);
	size_t n;
	uint64_t big;

	if (s->p < s->end && *s->p == '[') {
		s->p++;
		if (!blank(s))
			return 0;
		if ((f[0] = cx_wire_new(a, CX_WIRE_IDENT)) == NULL)
			return 0;
		f[0]->line = s->line;
		f[0]->col = col(s);
		if (!ident(s, &b, &n) || !blank(s) ||
		    (f[0]->u.str.s = cx_arena_memdup(a, b, n)) == NULL)
			return 0;
		f[0]->u.str.len = n;
		if ((f[1] = cx_wire_new(a, CX_WIRE_DATA)) == NULL)
			return 0;
		f[1]->line = s->line;
		f[1]->col = col(s);
		if (!string(s, &b, &e) || e - b < 7 || memcmp(b, "sha256=", 7) != 0 || !blank(s) ||
		    (f[1]->u.str.s = cx_arena_memdup(a, b, (size_t)(e - b))) == NULL)
			return 0;
		f[1]->u.str.len = (size_t)(e - b);
		if ((f[2] = cx_wire_new(a, CX_WIRE_BIGINT)) == NULL)
			return 0;
		f[2]->line = s->line;
		f[2]->col = col(s);
		if (!bigint(s, &big) || !blank(s) || !byte(s, ']'))
			return 0;
		f[2]->u.big = big;
		if ((w = cx_wire_list(a, f, 3)) == NULL)
			return 0;
	} else {
		if (!ident(s, &b, &n) ||
		    (w = cx_wire_str(a, CX_WIRE_IDENT, (const char *)b, n)) == NULL)
			return 0;
	}
	w->line = line;
	w->col = c;
	return cx_expr_from_wire(a, w, out, NULL, &ignore) == 0;
}

/* One delegation, after its '[' and the blanks behind it. */
static int
delegation(
    struct scan *s, struct cx_arena *a, struct cx_delegation *d, const char ***pv, size_t *pcap)
{
	const char **x;
	const uint8_t *b, *e;
	size_t np = 0, n;
	char *c;

	if (!open_key(s, "paths", 5) || !blank(s) || !byte(s, '[') || !blank(s))
		return 0;
	while (s->p < s->end && *s->p == '"') {
		if (!string(s, &b, &e) || !blank(s))
			return 0;
		if ((x = grow((void *)*pv, pcap, np, sizeof(*x), 4)) == NULL)
			return 0;
		*pv = x;
		if ((c = str_out(s, a, b, e)) == NULL ||
		    ((*pv)[np++] = cx_path_of_string(c, (size_t)(e - b))) == NULL)
			return 0;
	}
	if (!byte(s, ']') || !blank(s) || !byte(s, ']') || !blank(s))
		return 0;
	if (np) {
		if ((d->paths = cx_arena_alloc(a, np * sizeof(*d->paths))) == NULL)
			return 0;
		memcpy(d->paths, *pv, np * sizeof(*d->paths));
		d->npaths = np;
	}
	if (!open_key(s, "terminating", 11) || !blank(s) || !string(s, &b, &e) || !blank(s) ||
	    !byte(s, ']') || !blank(s))
		return 0;
	n = (size_t)(e - b);
	if ((n == 4 && memcmp(b, "true", 4) == 0) || (n == 3 && memcmp(b, "yes", 3) == 0))
		d->terminating = 1;
	else if ((n == 5 && memcmp(b, "false", 5) == 0) || (n == 2 && memcmp(b, "no", 2) == 0))
		d->terminating = 0;
	else
		return 0;
	if (!open_key(s, "valid", 5) || !blank(s) || !valid(s, a, &d->valid) || !blank(s) ||
	    !byte(s, ']') || !blank(s) || !byte(s, ']'))
		return 0;
	return 1;
}

/*
 * The closing ']' of a list scanned into v (nv records of size bytes): the
 * records move to the arena, the strings are terminated now or handed to the
 * caller (CX_INPLACE_DEFER), and the lexer goes on after the list.
 */
static int
scan_finish(struct scan *s, struct cx_lex *l, struct cx_arena *a, const void *v, size_t nv,
    size_t size, void **out, int inplace, uint8_t ***ends, size_t *nends)
{
	if (!byte(s, ']'))
		return 0;
	*out = NULL;
	if (nv && (*out = cx_arena_alloc(a, nv * size)) == NULL)
		return 0;
	if (nv)
		memcpy(*out, v, nv * size);
	if (inplace == CX_INPLACE_DEFER) {
		*ends = s->ends;
		*nends = s->nends;
		s->ends = NULL;
	} else {
		seal(s);
	}
	l->p = s->p;
	l->line = s->line;
	l->line_start = s->line_start;
	return 1;
}

int
cx_dels_scan(struct cx_lex *l, struct cx_arena *a, int inplace, struct cx_delegation **out,
    size_t *n, uint8_t ***ends, size_t *nends)
{
	struct scan s = {l->tstart, l->end, l->line_start, l->line, inplace, NULL, 0, 0};
	struct cx_delegation *v = NULL, *x;
	const char **pv = NULL;
	size_t nv = 0, cap = 0, pcap = 0;
	void *rec;
	int ok = 0;

	if (l->tok != CX_T_LBRACK || !byte(&s, '[') || !blank(&s))
		return 1;
	while (s.p < s.end && *s.p == '[') {
		s.p++;
		if (!blank(&s))
			goto out;
		if ((x = grow(v, &cap, nv, sizeof(*x), 64)) == NULL)
			goto out;
		v = x;
		memset(&v[nv], 0, sizeof(v[nv]));
		if (!delegation(&s, a, &v[nv], &pv, &pcap) || !blank(&s))
			goto out;
		nv++;
	}
	if (!scan_finish(&s, l, a, v, nv, sizeof(*v), &rec, inplace, ends, nends))
		goto out;
	*out = rec;
	*n = nv;
	ok = 1;
out:
	free(s.ends);
	free(v);
	free(pv);
	return ok ? 0 : 1;
}

int
cx_targets_scan(struct cx_lex *l, struct cx_arena *a, int inplace, struct cx_target **out,
    size_t *n, uint8_t ***ends, size_t *nends)
{
	struct scan s = {l->tstart, l->end, l->line_start, l->line, inplace, NULL, 0, 0};
	struct cx_target *v = NULL, *x;
	struct cx_digest *dv = NULL;
	size_t nv = 0, cap = 0, dcap = 0;
	void *rec;
	int ok = 0;

	if (l->tok != CX_T_LBRACK || !byte(&s, '[') || !blank(&s))
		return 1;
	while (s.p < s.end && *s.p == '[') {
		s.p++;
		if (!blank(&s))
			goto out;
		/* an entry takes 120 bytes or more: one allocation, untouched pages are free */
		if ((x = grow(v, &cap, nv, sizeof(*x), (size_t)(s.end - s.p) / 100 + 16)) == NULL)
			goto out;
		v = x;
		memset(&v[nv], 0, sizeof(v[nv]));
		if (!entry(&s, a, &v[nv], &dv, &dcap) || !blank(&s))
			goto out;
		nv++;
	}
	if (!scan_finish(&s, l, a, v, nv, sizeof(*v), &rec, inplace, ends, nends))
		goto out;
	*out = rec;
	*n = nv;
	ok = 1;
out:
	free(s.ends);
	free(v);
	free(dv);
	return ok ? 0 : 1;
}
