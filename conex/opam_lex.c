#include "conex/opam_lex.h"

#include <string.h>

/* The longest string the lexer accepts; the verifier caps files much lower. */
#define LEX_MAX_STRING (64u * 1024u * 1024u)

void
cx_lex_init(struct cx_lex *l, const char *name, const uint8_t *data, size_t len)
{
	memset(l, 0, sizeof(*l));
	l->name = name;
	l->p = data;
	l->end = data + len;
	l->line_start = data;
	l->line = 1;
	cx_buf_init(&l->str, LEX_MAX_STRING);
}

void
cx_lex_free(struct cx_lex *l)
{
	cx_buf_free(&l->str);
}

const char *
cx_tok_name(enum cx_tok t)
{
	switch (t) {
	case CX_T_EOF:
		return "end of file";
	case CX_T_IDENT:
		return "identifier";
	case CX_T_INT:
		return "integer";
	case CX_T_BOOL:
		return "boolean";
	case CX_T_STRING:
		return "string";
	case CX_T_COLON:
		return "':'";
	case CX_T_LBRACK:
		return "'['";
	case CX_T_RBRACK:
		return "']'";
	case CX_T_LPAREN:
		return "'('";
	case CX_T_RPAREN:
		return "')'";
	case CX_T_LBRACE:
		return "'{'";
	case CX_T_RBRACE:
		return "'}'";
	case CX_T_AND:
		return "'&'";
	case CX_T_OR:
		return "'|'";
	case CX_T_OP:
		return "operator";
	}
	return "token";
}

static uint32_t
col_of(const struct cx_lex *l, const uint8_t *at)
{
	return (uint32_t)(at - l->line_start) + 1;
}

static int
lex_err(struct cx_lex *l, struct cx_err *e, const uint8_t *at, const char *what)
{
	return cx_err_set(e, CX_EPARSE, "%s:%u:%u: %s", l->name, l->line, col_of(l, at), what);
}

static void
newline(struct cx_lex *l, const uint8_t *after)
{
	l->line++;
	l->line_start = after;
}

static int
is_ichar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '-';
}

static int
is_alpha(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* Length of `ichar* alpha ichar*` at p, or 0. */
static size_t
match_id(const uint8_t *p, const uint8_t *end)
{
	size_t n = 0;
	int alpha = 0;

	while (p + n < end && is_ichar(p[n])) {
		alpha |= is_alpha(p[n]);
		n++;
	}
	return alpha ? n : 0;
}

/* IDENT: ((ichar* alpha ichar*) | '_') ('+' (id | '_'))* (':' id)? */
static size_t
match_ident(const uint8_t *p, const uint8_t *end)
{
	size_t n, m;

	if ((n = match_id(p, end)) == 0) {
		if (p < end && *p == '_')
			n = 1;
		else
			return 0;
	}
	while (p + n < end && p[n] == '+') {
		if ((m = match_id(p + n + 1, end)) == 0) {
			if (p + n + 1 < end && p[n + 1] == '_')
				m = 1;
			else
				break;
		}
		n += 1 + m;
	}
	if (p + n < end && p[n] == ':' && (m = match_id(p + n + 1, end)) != 0)
		n += 1 + m;
	return n;
}

/* INT: -?[0-9_]+ */
static size_t
match_int(const uint8_t *p, const uint8_t *end)
{
	size_t n = 0, d = 0;

	if (p < end && *p == '-')
		n = 1;
	while (p + n + d < end && (is_digit(p[n + d]) || p[n + d] == '_'))
		d++;
	return d ? n + d : 0;
}

/*
 * OCaml's int_of_string on what the INT rule matched: a digit must come first
 * (after the sign), '_' is ignored, and the value must fit a 63-bit int.
 * Upstream lets the exception escape (§12.5); we report it.
 */
static int
int_value(const uint8_t *p, size_t n, int64_t *out)
{
	const uint64_t lim = (uint64_t)1 << 62; /* OCaml max_int + 1 */
	uint64_t v = 0;
	int neg = 0;
	size_t i = 0;

	if (p[0] == '-') {
		neg = 1;
		i = 1;
	}
	if (i >= n || !is_digit(p[i]))
		return -1;
	for (; i < n; i++) {
		if (p[i] == '_')
			continue;
		v = v * 10 + (uint64_t)(p[i] - '0');
		if (v > lim)
			return -1;
	}
	if (v == lim && !neg)
		return -1;
	*out = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

/* Skips spaces, newlines and comments. */
static int
skip_blank(struct cx_lex *l, struct cx_err *e)
{
	int depth;

	while (l->p < l->end) {
		uint8_t c = *l->p;
		if (c == ' ' || c == '\t') {
			l->p++;
		} else if (c == '\n') {
			l->p++;
			newline(l, l->p);
		} else if (c == '\r') {
			if (l->p + 1 >= l->end || l->p[1] != '\n')
				return lex_err(
				    l, e, l->p, "carriage return not followed by newline");
			l->p += 2;
			newline(l, l->p);
		} else if (c == '#') {
			while (l->p < l->end && *l->p != '\n')
				l->p++;
		} else if (c == '(' && l->p + 1 < l->end && l->p[1] == '*') {
			uint32_t sline = l->line, scol = col_of(l, l->p);
			depth = 1;
			l->p += 2;
			while (depth > 0) {
				if (l->p >= l->end)
					return cx_err_set(e, CX_EPARSE,
					    "%s:%u:%u: unterminated comment", l->name, sline, scol);
				if (l->p[0] == '(' && l->p + 1 < l->end && l->p[1] == '*') {
					depth++;
					l->p += 2;
				} else if (l->p[0] == '*' && l->p + 1 < l->end && l->p[1] == ')') {
					depth--;
					l->p += 2;
				} else {
					if (*l->p == '\n')
						newline(l, l->p + 1);
					l->p++;
				}
			}
		} else {
			break;
		}
	}
	return 0;
}

static int
hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A string body after the opening quote(s); triple selects `"""` termination. */
static int
lex_string(struct cx_lex *l, int triple, struct cx_err *e)
{
	const uint8_t *open = l->p - (triple ? 3 : 1);
	uint8_t ch;
	int r;

	cx_buf_reset(&l->str);
	for (;;) {
		if (l->p >= l->end) {
			/* report at the opening quote: the place a person must fix */
			l->p = open;
			return lex_err(l, e, open, "unterminated string");
		}
		ch = *l->p;
		if (ch != '"' && ch != '\\' && ch != '\n') {
			/* a run of plain bytes goes in at once: 30,000-entry files are mostly this */
			const uint8_t *run = l->p;
			while (l->p < l->end && *l->p != '"' && *l->p != '\\' && *l->p != '\n')
				l->p++;
			if ((r = cx_buf_put(&l->str, run, (size_t)(l->p - run))) != 0)
				return r == CX_ETOOBIG ? lex_err(l, e, open, "string too long") : r;
			continue;
		}
		if (ch == '"') {
			if (!triple) {
				l->p++;
				return 0;
			}
			if (l->p + 2 < l->end && l->p[1] == '"' && l->p[2] == '"') {
				l->p += 3;
				return 0;
			}
			l->p++;
		} else if (ch == '\\') {
			const uint8_t *bs = l->p;
			if (l->p + 1 >= l->end)
				return lex_err(l, e, bs, "backslash at end of input");
			ch = l->p[1];
			l->p += 2;
			switch (ch) {
			case '\\':
			case '"':
			case '\'':
			case ' ':
				break;
			case 'n':
				ch = '\n';
				break;
			case 'r':
				ch = '\r';
				break;
			case 't':
				ch = '\t';
				break;
			case 'b':
				ch = '\b';
				break;
			case '\r':
				if (l->p >= l->end || *l->p != '\n')
					return lex_err(l, e, bs, "invalid escape sequence");
				l->p++;
				/* FALLTHROUGH */
			case '\n':
				/* line continuation: the newline and the indentation vanish */
				newline(l, l->p);
				while (l->p < l->end && (*l->p == ' ' || *l->p == '\t'))
					l->p++;
				continue;
			case 'x': {
				int hi, lo;
				if (l->p + 1 >= l->end || (hi = hexval(l->p[0])) < 0 ||
				    (lo = hexval(l->p[1])) < 0)
					return lex_err(l, e, bs, "invalid \\x escape");
				ch = (uint8_t)(hi << 4 | lo);
				l->p += 2;
				break;
			}
			default:
				if (is_digit(ch)) {
					int v;
					if (l->p + 1 >= l->end || !is_digit(l->p[0]) ||
					    !is_digit(l->p[1]))
						return lex_err(l, e, bs, "invalid decimal escape");
					v = (ch - '0') * 100 + (l->p[0] - '0') * 10 +
					    (l->p[1] - '0');
					if (v > 255)
						return lex_err(
						    l, e, bs, "decimal escape above 255");
					ch = (uint8_t)v;
					l->p += 2;
					break;
				}
				return lex_err(l, e, bs, "invalid escape sequence");
			}
			if ((r = cx_buf_put_u8(&l->str, ch)) != 0)
				return r == CX_ETOOBIG ? lex_err(l, e, open, "string too long") : r;
			continue;
		} else {
			if (ch == '\n')
				newline(l, l->p + 1);
			l->p++;
		}
		if ((r = cx_buf_put_u8(&l->str, ch)) != 0)
			return r == CX_ETOOBIG ? lex_err(l, e, open, "string too long") : r;
	}
}

int
cx_lex_next(struct cx_lex *l, struct cx_err *e)
{
	size_t ni, nn;
	uint8_t c;
	int r;

	if ((r = skip_blank(l, e)) != 0)
		return r;
	l->tline = l->line;
	l->tcol = col_of(l, l->p);
	l->tstart = l->p;
	l->tlen = 0;
	if (l->p >= l->end) {
		l->tok = CX_T_EOF;
		return 0;
	}
	c = *l->p;
	switch (c) {
	case ':':
		l->tok = CX_T_COLON;
		l->p++;
		return 0;
	case '[':
		l->tok = CX_T_LBRACK;
		l->p++;
		return 0;
	case ']':
		l->tok = CX_T_RBRACK;
		l->p++;
		return 0;
	case '(':
		l->tok = CX_T_LPAREN;
		l->p++;
		return 0;
	case ')':
		l->tok = CX_T_RPAREN;
		l->p++;
		return 0;
	case '{':
		l->tok = CX_T_LBRACE;
		l->p++;
		return 0;
	case '}':
		l->tok = CX_T_RBRACE;
		l->p++;
		return 0;
	case '&':
		l->tok = CX_T_AND;
		l->p++;
		return 0;
	case '|':
		l->tok = CX_T_OR;
		l->p++;
		return 0;
	case '"':
		l->tok = CX_T_STRING;
		if (l->p + 2 < l->end && l->p[1] == '"' && l->p[2] == '"') {
			l->p += 3;
			return lex_string(l, 1, e);
		}
		l->p++;
		return lex_string(l, 0, e);
	case '=':
	case '!':
	case '<':
	case '>':
	case '?':
	case '+':
		/* relops, env-update and prefix ops: legal opam, never conex */
		l->tok = CX_T_OP;
		l->tlen = 1;
		l->p++;
		return 0;
	}
	/* longest match between INT and IDENT; on a tie INT wins, as in ocamllex rule order */
	nn = match_int(l->p, l->end);
	ni = match_ident(l->p, l->end);
	if (nn == 0 && ni == 0)
		return lex_err(l, e, l->p, "unexpected character");
	if (nn >= ni) {
		l->tok = CX_T_INT;
		l->tlen = nn;
		if (int_value(l->p, nn, &l->ival) != 0)
			return lex_err(l, e, l->p, "invalid or out-of-range integer");
		l->p += nn;
		return 0;
	}
	l->tlen = ni;
	l->p += ni;
	if ((ni == 4 && memcmp(l->tstart, "true", 4) == 0) ||
	    (ni == 5 && memcmp(l->tstart, "false", 5) == 0))
		l->tok = CX_T_BOOL;
	else
		l->tok = CX_T_IDENT;
	return 0;
}
