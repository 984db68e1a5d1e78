/*
 * The opam-format writer (§2.4).  Upstream's printer drops the parentheses
 * around And/Or, so `(a | b) & c` comes back as `a | (b & c)`; this one always
 * writes a group.  It refuses values that would read back differently (an
 * identifier that lexes as something else, untrimmed strings, lists that would
 * decode as maps) instead of writing a file that does not mean what it says.
 */
#include <string.h>

#include "conex/wire.h"

static int
is_ichar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '-';
}

/* A bare identifier that reads back as the same IDENT (and not a BOOL, Bigint or emptymap). */
static int
ident_ok(const char *s, size_t n)
{
	int alpha = 0;
	size_t i;

	if (n == 0)
		return 0;
	if (n == 1 && s[0] == '_')
		return 1;
	for (i = 0; i < n; i++) {
		if (!is_ichar(s[i]))
			return 0;
		alpha |= (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z');
	}
	if (!alpha)
		return 0;
	if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0) ||
	    (n == 8 && memcmp(s, "emptymap", 8) == 0) || (n >= 2 && s[0] == '0' && s[1] == 'x'))
		return 0;
	return 1;
}

/* A map key is written as the IDENT token it was read from; Bigint-like keys stay text. */
static int
key_ok(const char *s, size_t n)
{
	if (n >= 2 && s[0] == '0' && s[1] == 'x') {
		for (size_t i = 2; i < n; i++)
			if (!is_ichar(s[i]))
				return 0;
		return 1;
	}
	if (n == 8 && memcmp(s, "emptymap", 8) == 0)
		return 1;
	return ident_ok(s, n);
}

static int
is_trim(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static int
indent(struct cx_buf *out, int level)
{
	int r;

	while (level-- > 0)
		if ((r = cx_buf_put(out, "  ", 2)) != 0)
			return r;
	return 0;
}

static int
write_data(const struct cx_wire *w, struct cx_buf *out)
{
	const unsigned char *s = (const unsigned char *)w->u.str.s;
	size_t n = w->u.str.len, i;
	int triple = memchr(s, '\n', n) != NULL, r;

	if (n && (is_trim(s[0]) || is_trim(s[n - 1])))
		return CX_EINVAL; /* would be trimmed on reading */
	if ((r = cx_buf_put_str(out, triple ? "\"\"\"\\\n" : "\"")) != 0)
		return r;
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c == '\\' || c == '"')
			r = cx_buf_putf(out, "\\%c", c);
		else if (c == '\r')
			r = cx_buf_put_str(out, "\\r");
		else if (c == '\t')
			r = cx_buf_put_str(out, "\\t");
		else if ((c < 0x20 && c != '\n') || c == 0x7f)
			r = cx_buf_putf(out, "\\%03u", c);
		else
			r = cx_buf_put_u8(out, c);
		if (r != 0)
			return r;
	}
	return cx_buf_put_str(out, triple ? "\"\"\"" : "\"");
}

static int write_value(const struct cx_wire *w, struct cx_buf *out, int level);

/* Would this list read back as a Map (§2.3 rule 7)? */
static int
list_looks_like_map(const struct cx_wire *w)
{
	size_t i;

	if (w->u.list.n == 0)
		return 0;
	for (i = 0; i < w->u.list.n; i++) {
		const struct cx_wire *c = w->u.list.v[i];
		if (c->type != CX_WIRE_LIST || c->u.list.n != 2)
			return 0;
		/* an IDENT token: identifiers, and the Bigints and empty maps that print as one */
		if (c->u.list.v[0]->type != CX_WIRE_IDENT &&
		    c->u.list.v[0]->type != CX_WIRE_BIGINT &&
		    !(c->u.list.v[0]->type == CX_WIRE_MAP && c->u.list.v[0]->u.map.n == 0))
			return 0;
	}
	return 1;
}

static int
write_value(const struct cx_wire *w, struct cx_buf *out, int level)
{
	size_t i;
	int r;

	if (level > CX_WIRE_MAX_DEPTH)
		return CX_EINVAL;
	switch (w->type) {
	case CX_WIRE_BIGINT:
		return cx_buf_putf(out, "0x%llX", (unsigned long long)w->u.big);
	case CX_WIRE_SMALLINT:
		return cx_buf_putf(out, "%lld", (long long)w->u.small);
	case CX_WIRE_DATA:
		return write_data(w, out);
	case CX_WIRE_IDENT:
		if (!ident_ok(w->u.str.s, w->u.str.len))
			return CX_EINVAL;
		return cx_buf_put(out, w->u.str.s, w->u.str.len);
	case CX_WIRE_LIST:
		if (list_looks_like_map(w))
			return CX_EINVAL;
		if (w->u.list.n == 0)
			return cx_buf_put_str(out, "[]");
		if ((r = cx_buf_put_str(out, "[\n")) != 0)
			return r;
		for (i = 0; i < w->u.list.n; i++) {
			if ((r = indent(out, level + 1)) != 0 ||
			    (r = write_value(w->u.list.v[i], out, level + 1)) != 0 ||
			    (r = cx_buf_put_u8(out, '\n')) != 0)
				return r;
		}
		if ((r = indent(out, level)) != 0)
			return r;
		return cx_buf_put_u8(out, ']');
	case CX_WIRE_MAP:
		if (w->u.map.n == 0)
			return cx_buf_put_str(out, "emptymap");
		if ((r = cx_buf_put_str(out, "[\n")) != 0)
			return r;
		for (i = 0; i < w->u.map.n; i++) {
			const struct cx_wire_kv *kv = &w->u.map.kv[i];
			/* map keys come from the IDENT token: Bigint-like keys read back verbatim */
			if (!key_ok(kv->key, kv->keylen))
				return CX_EINVAL;
			if ((r = indent(out, level + 1)) != 0 ||
			    (r = cx_buf_put_u8(out, '[')) != 0 ||
			    (r = cx_buf_put(out, kv->key, kv->keylen)) != 0 ||
			    (r = cx_buf_put_u8(out, ' ')) != 0 ||
			    (r = write_value(kv->val, out, level + 1)) != 0 ||
			    (r = cx_buf_put_str(out, "]\n")) != 0)
				return r;
		}
		if ((r = indent(out, level)) != 0)
			return r;
		return cx_buf_put_u8(out, ']');
	case CX_WIRE_PAIR:
	case CX_WIRE_AND:
	case CX_WIRE_OR:
		/*
		 * A quorum whose key reference was dropped (unknown digest
		 * algorithm) normalises to (1 []), which no reader accepts.
		 */
		if (w->type == CX_WIRE_PAIR && w->u.pair.a->type == CX_WIRE_SMALLINT &&
		    w->u.pair.b->type == CX_WIRE_LIST &&
		    (w->u.pair.a->u.small < 0 ||
		        (uint64_t)w->u.pair.a->u.small > w->u.pair.b->u.list.n))
			return CX_EINVAL;
		if ((r = cx_buf_put_u8(out, '(')) != 0 ||
		    (r = write_value(w->u.pair.a, out, level + 1)) != 0)
			return r;
		if ((r = cx_buf_put_str(out,
		         w->type == CX_WIRE_PAIR      ? " "
		             : w->type == CX_WIRE_AND ? " & "
		                                      : " | ")) != 0)
			return r;
		if ((r = write_value(w->u.pair.b, out, level + 1)) != 0)
			return r;
		return cx_buf_put_u8(out, ')');
	}
	return CX_EINVAL;
}

int
cx_wire_write(const struct cx_wire *doc, struct cx_buf *out)
{
	size_t i;
	int r;

	if (doc->type != CX_WIRE_MAP)
		return CX_EINVAL;
	for (i = doc->u.map.n; i-- > 0;) {
		const struct cx_wire_kv *kv = &doc->u.map.kv[i];
		if (kv->val->type == CX_WIRE_LIST && kv->val->u.list.n == 0)
			continue;
		if (!ident_ok(kv->key, kv->keylen))
			return CX_EINVAL;
		if ((r = cx_buf_put(out, kv->key, kv->keylen)) != 0 ||
		    (r = cx_buf_put_str(out, ": ")) != 0 ||
		    (r = write_value(kv->val, out, 0)) != 0 || (r = cx_buf_put_u8(out, '\n')) != 0)
			return r;
	}
	return 0;
}
