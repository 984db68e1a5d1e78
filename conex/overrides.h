/*
 * Local trust overrides (docs/trust-overrides.md): a user or a company pins or
 * replaces the identities trusted for some paths of a repository without
 * changing it.  An overlay directory holds `overrides`, a list of delegations
 * (§4.5: paths and an expression of remote keyrefs), and optionally
 * `keys/<id>` targets files for the override identities.  conex/verify.c
 * enqueues every override as a terminating delegation from the local user and
 * ignores whatever the repository's own delegations say at or below its paths.
 */
#ifndef CX_OVERRIDES_H
#define CX_OVERRIDES_H

#include <stddef.h>

#include "conex/arena.h"
#include "conex/repo.h"
#include "conex/resource.h"
#include "proto/buf.h"
#include "proto/err.h"

/* Largest overrides file read: it is local configuration, small. */
#define CX_OVERRIDES_MAX_FILE (1u << 20)
/* Most overrides in all overlays together (linear lookups stay cheap). */
#define CX_OVERRIDES_MAX 4096

struct cx_override {
	const char *path;            /* one per path of an entry: validated, relative */
	const struct cx_expr *valid; /* remote keyrefs only, each quorum >= 1 */
	size_t overlay;              /* index of the overlay it comes from */
	const char *where;           /* "DIR/overrides:LINE:COL", for messages */
};

struct cx_overlay {
	const char *dir;
	struct cx_repo *repo; /* the directory, read without following symlinks; may be NULL */
};

struct cx_overrides {
	struct cx_override *v;
	size_t n, cap;
	struct cx_overlay *ovl;
	size_t novl, capovl;
	struct cx_arena a; /* owns everything above but the repositories */
};

void cx_overrides_init(struct cx_overrides *o);
void cx_overrides_free(struct cx_overrides *o);

/*
 * Opens overlay directory dir, reads and parses dir/overrides, and checks that
 * no override path overlaps another one (of this overlay or an earlier one).
 * CX_EPARSE with "file:line:col: reason" for a malformed file, CX_EINVAL for
 * overlapping paths, CX_ENOENT/CX_EIO for a missing or unreadable one.
 */
int cx_overrides_add_dir(struct cx_overrides *o, const char *dir, struct cx_err *e);

/*
 * Parses the overrides file (bytes data, named name in messages) of overlay
 * number overlay, appending its entries, strictly: unknown keys, local keyrefs,
 * digests other than sha256=<64 lowercase hex>, quorums below 1 and invalid
 * paths are errors.  Overlaps are not checked here (cx_overrides_check).
 */
int cx_overrides_parse(struct cx_overrides *o, size_t overlay, const char *name,
    const uint8_t *data, size_t len, struct cx_err *e);
/* CX_EINVAL naming both when one override path is at or below another. */
int cx_overrides_check(const struct cx_overrides *o, struct cx_err *e);

/* The override governing path (path is at or below its path), or NULL. */
const struct cx_override *cx_overrides_find(const struct cx_overrides *o, const char *path);

/*
 * Reads overlay's keys/<id> into out (at most cap bytes).  CX_ENOENT when the
 * overlay has no such file: the repository's keydir is used then.
 */
int cx_overrides_identity(const struct cx_overrides *o, size_t overlay, const char *id, size_t cap,
    struct cx_buf *out, struct cx_err *e);
const char *cx_overrides_dir(const struct cx_overrides *o, size_t overlay);

#endif
