/*
 * Repository verification (§7, §8) with this project's hardening (docs/verify.md):
 * an anchored root signature is always required, timestamps must be fresh,
 * keydir must match the snapshot exactly, every file under datadir must be
 * covered, and counters never go backwards.
 */
#ifndef CX_VERIFY_H
#define CX_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "conex/patch.h"
#include "conex/repo.h"
#include "conex/resource.h"

/* Largest metadata file (root, targets, snapshot, timestamp) we read: endless-data defence. */
#define CX_VERIFY_MAX_META (64u * 1024u * 1024u)

struct cx_verify_opts {
	const char *const *anchors; /* key ids as 64 lowercase hex digits */
	size_t nanchors;
	int quorum;            /* anchored root signatures required, >= 1 */
	const char *root_name; /* "root" */
	int opam;              /* opam layout rules for target paths (default on) */
	int strict;            /* every data file must be covered (default on) */
	int64_t now;           /* seconds since the epoch */
	int64_t expiry;        /* seconds a timestamp stays fresh (default 900) */
	size_t max_meta;       /* 0: CX_VERIFY_MAX_META */
	struct cx_log *log;
};

/* The version numbers that must never go backwards. */
struct cx_counters {
	uint64_t root_counter, root_epoch;
	int has_snapshot, has_timestamp;
	uint64_t snap_counter, snap_epoch;
	uint64_t ts_counter, ts_epoch;
};

struct cx_verify_result {
	struct cx_counters c;
	size_t ndata;     /* data files compared */
	size_t ntargets;  /* targets files that counted */
	size_t naccepted; /* accepted (path, digest, size) entries */
};

/* Full verification of a repository view. CX_EREJECT with the reason when rejected. */
int cx_verify_full(struct cx_repo *repo, const struct cx_verify_opts *o,
    struct cx_verify_result *res, struct cx_err *e);

/*
 * Incremental verification (§8): old is the trusted local copy, p the update.
 * The patched tree is verified in full, then the changes are checked: no
 * deleted identity, counters and epochs of root, targets, snapshot and
 * timestamp never go backwards.
 */
int cx_verify_incremental(struct cx_repo *old, const struct cx_patch *p,
    const struct cx_verify_opts *o, struct cx_verify_result *res, struct cx_err *e);

/*
 * (epoch, counter) of b compared to a: the snapshot/timestamp/root version
 * order.  A bigger epoch restarts the counter.  <0 when b went backwards.
 */
int cx_counters_check(
    const struct cx_counters *before, const struct cx_counters *after, struct cx_err *e);

#endif
