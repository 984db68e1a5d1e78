/*
 * What a change still needs (`conex status`, `conex check`, docs/tools.md):
 * per changed file, who supports it, the expressions that govern it along the
 * delegation path, whether they hold, and who could complete them.  The
 * evaluation is verify.c's own (through struct cx_verify_observer), run on the
 * tree as it would be after the change; the verdict is a real cx_verify_* run.
 */
#ifndef CX_EXPLAIN_H
#define CX_EXPLAIN_H

#include <stddef.h>
#include <stdint.h>

#include "conex/arena.h"
#include "conex/patch.h"
#include "conex/repo.h"
#include "conex/verify.h"

enum cx_explain_status {
	CX_EX_OK = 0,    /* verifies */
	CX_EX_IGNORED,   /* outside what verification reads (README, ...) */
	CX_EX_NOT_YET,   /* listed, but no governing expression holds yet */
	CX_EX_MISMATCH,  /* valid targets list other bytes: tampered or stale */
	CX_EX_UNCOVERED, /* nobody lists it */
	CX_EX_MISSING,   /* deleted, but valid targets still list it */
	CX_EX_INVALID    /* a metadata file that does not verify */
};

const char *cx_explain_status_name(enum cx_explain_status s);

/* An identity that could complete an expression. */
struct cx_explain_cand {
	const char *id;
	int counts;      /* its targets file currently counts for the expression */
	const char *why; /* why not, when it does not */
};

/* One expression governing a data file (a work-queue item of §7.5). */
struct cx_explain_gov {
	const char *path; /* the delegated path, "" for the top */
	const char *role; /* "maintainer role", "delegation of P", "local override of P (where)" */
	const char *expr; /* "2 of [m1 m2 m3]" */
	int met;          /* it holds for this file's bytes */
	const char **has; /* supporters of this file's bytes */
	size_t nhas;
	struct cx_explain_cand *cand;
	size_t ncand;
	int64_t missing; /* signatures still needed when one quorum decides, else -1 */
};

struct cx_explain_file {
	const char *path;
	const char *kind; /* "data", "identity", "root", "snapshot", "timestamp", "other" */
	enum cx_explain_status st;
	int deleted;
	uint64_t size;
	char sha256[CX_SHA256_HEX + 1];
	const char *summary;
	const char **details;
	size_t ndetails, capdetails;
	struct cx_explain_gov *gov;
	size_t ngov;
};

struct cx_explain_problem {
	enum cx_stage stage;
	const char *msg;
};

struct cx_explain_priv;

struct cx_explain {
	struct cx_explain_file *files;
	size_t nfiles;
	struct cx_explain_problem *problems;
	size_t nproblems;
	int evaluated;          /* the delegations were evaluated */
	const char *eval_error; /* why not */
	int verified;           /* the real verification accepted */
	const char *verify_error;
	int ok;                    /* conex check's verdict: verified and every file OK */
	const char *inconsistency; /* what disagreed between verification and explanation */
	struct cx_arena a;
	struct cx_explain_priv *priv;
};

/*
 * Explains base with patch p applied (p NULL: base as is, every file), as of
 * o (anchors, quorum, now, overrides...; o->obs must be NULL).  Returns 0 when
 * x was filled (x->evaluated says whether the delegations could be evaluated),
 * or an I/O or memory error.  Release x with cx_explain_free, also on failure.
 */
int cx_explain_run(struct cx_repo *base, const struct cx_patch *p, const struct cx_verify_opts *o,
    struct cx_explain *x, struct cx_err *e);
void cx_explain_free(struct cx_explain *x);

/* One block per file: "path: STATUS: summary", then indented details. */
int cx_explain_text(const struct cx_explain *x, struct cx_buf *out);
/* The same as a JSON document (RFC 8259, strings escaped). */
int cx_explain_json(const struct cx_explain *x, struct cx_buf *out);

#endif
