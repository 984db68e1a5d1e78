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

struct cx_overrides; /* conex/overrides.h: local trust overrides */

/* The stages of §7, for what an observer is told about. */
enum cx_stage {
	CX_STAGE_ROOT = 1,
	CX_STAGE_TIMESTAMP,
	CX_STAGE_SNAPSHOT,
	CX_STAGE_KEYDIR,
	CX_STAGE_TARGETS,
	CX_STAGE_DATA
};

/*
 * What conex/explain.c (`conex status`, `conex check`) is told during a
 * verification, so that the explanation follows the very algorithm that
 * decides instead of a second copy of it.  Every member may be NULL.
 */
struct cx_verify_observer {
	void *arg;
	/*
	 * Report a rejection of root signatures, timestamp, snapshot or keydir
	 * through problem() and go on with the delegations where that is still
	 * possible (a targets file that does not match the snapshot is then
	 * loaded anyway, and its identity() says why).  The result is still
	 * the first rejection: keep_going never turns a rejection into success.
	 */
	int keep_going;
	void (*problem)(void *arg, enum cx_stage st, const char *msg);
	/*
	 * A targets file was loaded (once per identity and source): overlay 0
	 * is the repository's keydir, k the k-th overlay (1-based).  t is NULL
	 * when it could not be read or parsed; valid is 1 when self-valid;
	 * signers are the ids of the signatures that verified; why says why it
	 * was dropped (or NULL).
	 */
	void (*identity)(void *arg, const char *id, size_t overlay, const struct cx_resource *t,
	    int valid, const char *const *signers, size_t nsigners, const char *why);
	/*
	 * Work-queue item number item (§7.5) was evaluated: the expression x
	 * governing path ("" is the top), override k (1-based) or 0 for the
	 * repository's own delegations, the ids of the files that count for x,
	 * and whether x held over them.
	 */
	void (*delegation)(void *arg, size_t item, const char *path, const struct cx_expr *x,
	    int terminating, size_t override, const char *const *counting, size_t ncounting,
	    int met);
	/* Under item, (path, digest, size) is listed by supporters; accepted when x held. */
	void (*claim)(void *arg, size_t item, const char *path, const struct cx_digest *d,
	    uint64_t size, const char *const *supporters, size_t nsupporters, int accepted);
};

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
	/* local trust overrides (docs/trust-overrides.md), or NULL */
	const struct cx_overrides *overrides;
	/* conex/explain.c's observer, or NULL */
	const struct cx_verify_observer *obs;
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

/*
 * Upstream's verify_diffs rule for an identity the update changes: a bigger
 * epoch, or the same epoch and a bigger counter.  CX_EREJECT otherwise.
 */
int cx_identity_moves_on(const struct cx_resource *before, const struct cx_resource *after,
    const char *id, struct cx_err *e);

#endif
