/*
 * Wire values (conex-format.md §2.1): what an opam-format conex file decodes
 * to, and what the canonical serialiser (§3.1) and the writer (§2.4) consume.
 */
#ifndef CX_WIRE_H
#define CX_WIRE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "conex/arena.h"
#include "proto/buf.h"
#include "proto/err.h"

enum cx_wire_type {
	CX_WIRE_MAP = 1,
	CX_WIRE_LIST,
	CX_WIRE_IDENT,
	CX_WIRE_DATA,
	CX_WIRE_BIGINT,
	CX_WIRE_SMALLINT,
	CX_WIRE_PAIR,
	CX_WIRE_AND,
	CX_WIRE_OR
};

struct cx_wire;

struct cx_wire_kv {
	const char *key; /* NUL-terminated; keylen excludes the NUL */
	size_t keylen;
	struct cx_wire *val;
};

struct cx_wire {
	enum cx_wire_type type;
	uint32_t line, col; /* where it was parsed; 0 when built in memory */
	union {
		struct {
			struct cx_wire_kv *kv; /* ascending bytewise by key, unique */
			size_t n;
		} map;
		struct {
			struct cx_wire **v;
			size_t n;
		} list;
		struct {
			const char *s; /* NUL-terminated copy; len excludes the NUL */
			size_t len;
		} str; /* IDENT and DATA */
		uint64_t big;
		int64_t small;
		struct {
			struct cx_wire *a, *b;
		} pair; /* PAIR, AND, OR */
	} u;
};

/* Maximum nesting of lists/groups the parser accepts (stack safety). */
#define CX_WIRE_MAX_DEPTH 64

/*
 * Parses an opam-format conex file (§2.2) and decodes it (§2.3) into a Map of
 * its top-level items.  name is used in messages ("name:line:col: reason").
 * Everything is allocated in arena.  Never aborts on input.
 */
int cx_wire_parse(struct cx_arena *arena, const char *name, const uint8_t *data, size_t len,
    struct cx_wire **out, struct cx_err *e);

/* Canonical serialisation (§3.1), appended to out. */
int cx_wire_canon(const struct cx_wire *w, struct cx_buf *out);

/*
 * Writes w (a Map) as an opam-format document whose items are the map's keys
 * in descending order, with And/Or always parenthesised (§2.4) so that any
 * reader, upstream's included, decodes the same values.  Top-level items whose
 * value is an empty List are omitted, as upstream does.
 */
int cx_wire_write(const struct cx_wire *doc, struct cx_buf *out);

/* Structural equality (maps by key, lists in order). */
int cx_wire_equal(const struct cx_wire *a, const struct cx_wire *b);

/*
 * A decoding error about w in the file name: "name:line:col: what" where w
 * has a position, "name: what" otherwise.  Returns CX_EPARSE.
 */
int cx_wire_verr(struct cx_err *e, const char *name, const struct cx_wire *w, const char *fmt,
    va_list ap) __attribute__((format(printf, 4, 0)));

/* Lookup in a Map; NULL if absent or w is not a Map. */
struct cx_wire *cx_wire_get(const struct cx_wire *map, const char *key);

/* Constructors (arena-allocated; NULL on exhaustion). */
struct cx_wire *cx_wire_new(struct cx_arena *a, enum cx_wire_type t);
struct cx_wire *cx_wire_str(struct cx_arena *a, enum cx_wire_type t, const char *s, size_t n);
struct cx_wire *cx_wire_big(struct cx_arena *a, uint64_t v);
struct cx_wire *cx_wire_small(struct cx_arena *a, int64_t v);
struct cx_wire *cx_wire_pair(
    struct cx_arena *a, enum cx_wire_type t, struct cx_wire *x, struct cx_wire *y);
/* A list of n elements (copied from v). */
struct cx_wire *cx_wire_list(struct cx_arena *a, struct cx_wire **v, size_t n);
/* A map from n pairs in any order; duplicate keys: the later one wins. */
struct cx_wire *cx_wire_map(struct cx_arena *a, struct cx_wire_kv *kv, size_t n);

const char *cx_wire_type_name(enum cx_wire_type t);

#endif
