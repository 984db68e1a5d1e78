/*
 * A fast path for the `targets` list of a resource file (internal).
 *
 * A 33,000-release targets file is 6.7 MB of `[digest [...]] [filename ...]
 * [size ...]` entries.  Built as a generic wire tree it is 30 MB of nodes,
 * and that tree is only read once, to fill struct cx_target records.  When the
 * list is laid out as the writer (§2.4) lays it out, it is scanned straight
 * into those records instead.  Anything else -- comments, escapes, another
 * field order, an invalid value -- is declined, and the generic parser reads
 * the list as before, so errors and every odd spelling keep one code path.
 * The records are the ones cx_resource_from_wire would build from the tree:
 * test_wire and fuzz_targets_fast compare both paths on the same input.
 */
#ifndef CX_TARGETS_FAST_H
#define CX_TARGETS_FAST_H

#include <stddef.h>

#include "conex/arena.h"
#include "conex/opam_lex.h"
#include "conex/resource.h"
#include "conex/wire.h"

/*
 * A `targets` list read by the fast path.  The parse tree holds w, an empty
 * List, where the list was; the decoder recognises it by its address.
 */
struct cx_fast_targets {
	struct cx_wire w;
	struct cx_target *t; /* a `targets` list */
	size_t n;
	struct cx_delegation *d; /* or a `delegations` list */
	size_t nd;
	int is_dels;
	uint8_t **ends; /* CX_INPLACE_DEFER: where the NULs go (cx_resource_parse_finish) */
	size_t nends;
	struct cx_fast_targets *next;
};

/*
 * l's current token is the '[' that opens the list.  On success (0) the list
 * and its closing ']' are consumed: l stands after them with its line count
 * updated, and the next cx_lex_next reads on.  1: declined, l is unchanged.
 * Records and strings go to a; a failed allocation declines as well.  With
 * inplace, strings point into the input instead, which the caller must own,
 * keep and let be written: on success each string's closing quote becomes
 * its terminating NUL.
 */
#define CX_INPLACE_DEFER 2
/*
 * With inplace == CX_INPLACE_DEFER, the input is not written: *ends (malloc'd,
 * the caller frees it) and *nends are the positions of those closing quotes,
 * for the caller to turn into NULs before the strings are read.
 */
int cx_targets_scan(struct cx_lex *l, struct cx_arena *a, int inplace, struct cx_target **out,
    size_t *n, uint8_t ***ends, size_t *nends);

/* The same for a `delegations` list. */
int cx_dels_scan(struct cx_lex *l, struct cx_arena *a, int inplace, struct cx_delegation **out,
    size_t *n, uint8_t ***ends, size_t *nends);

/* How cx_resource_parse_ex may read. */
enum {
	CX_PARSE_GENERIC = 0, /* the generic parser only (the differential tests) */
	CX_PARSE_FAST = 1,    /* the fast path where it applies (cx_resource_parse) */
	/* and data is writable and outlives the record: strings point into it */
	CX_PARSE_INPLACE = 3
};

/* Like cx_wire_parse; with fast != NULL, `signed.targets` lists may be scanned (listed in *fast). */
int cx_wire_parse_fast(struct cx_arena *arena, const char *name, const uint8_t *data, size_t len,
    struct cx_wire **out, struct cx_fast_targets **fast, int inplace, struct cx_err *e);

/* Like cx_resource_parse, reading as mode (CX_PARSE_*) says. */
int cx_resource_parse_ex(struct cx_arena *a, const char *name, const uint8_t *data, size_t len,
    enum cx_rtype expect, struct cx_resource **out, struct cx_log *log, struct cx_err *e, int mode);

/*
 * cx_resource_parse_ex(CX_PARSE_INPLACE) in two steps, so that the scan may
 * run while another thread still reads data (it is not written until
 * finish).  begin reads data into the arena and logs nothing; finish writes
 * the NULs, then builds the record and logs as cx_resource_parse_ex would,
 * with its result.  Either finish or abandon (which writes nothing) must
 * follow a begin; data and the arena must outlive them.
 */
struct cx_parse_pending {
	struct cx_arena *a;
	const uint8_t *data;
	size_t len;
	int rc;
	struct cx_wire *doc;
	struct cx_fast_targets *fast;
	struct cx_err e;
};
void cx_resource_parse_begin(struct cx_arena *a, const char *name, const uint8_t *data, size_t len,
    struct cx_parse_pending *pp);
int cx_resource_parse_finish(struct cx_parse_pending *pp, const char *name, enum cx_rtype expect,
    struct cx_resource **out, struct cx_log *log, struct cx_err *e);
void cx_resource_parse_abandon(struct cx_parse_pending *pp);

#endif
