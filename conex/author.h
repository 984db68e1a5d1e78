/*
 * Authoring conex resources: what the signing tools (docs/tools.md) do to a
 * typed record before it is signed and written.  Nothing here signs or
 * talks to the agent: callers sign through cx_resource_sign.
 */
#ifndef CX_AUTHOR_H
#define CX_AUTHOR_H

#include <stddef.h>
#include <stdint.h>

#include "conex/repo.h"
#include "conex/resource.h"

/* A new resource: counter 0, epoch 0, no keys, signatures or targets. */
struct cx_resource *cx_author_new(
    struct cx_arena *a, enum cx_rtype t, const char *name, const char *created);

/*
 * Adds the key entry id -> keystr ("rsa=..." / "ed25519=..."), replacing an
 * entry of the same id that holds another key (the same key keeps its entry
 * and its created time).  Keys stay sorted by id, as the parser keeps them.
 */
int cx_author_key_add(struct cx_arena *a, struct cx_resource *r, const char *id,
    const char *created, const char *keystr, struct cx_err *e);
/* Removes the key entry id: 0 or CX_ENOENT. */
int cx_author_key_remove(struct cx_resource *r, const char *id, struct cx_err *e);

/*
 * Quorum expressions: adds k (replacing a keyref of an id_equal id), or
 * removes the keyref of id, then sets the threshold to n (n < 0: keep it,
 * capped at the number of keyrefs; an empty quorum (0 []) grows to 1).  *x
 * may be NULL (a new quorum).  And/Or expressions are CX_EUNSUPPORTED.
 */
int cx_author_quorum_add(
    struct cx_arena *a, struct cx_expr **x, const struct cx_keyref *k, int64_t n, struct cx_err *e);
int cx_author_quorum_remove(
    struct cx_arena *a, struct cx_expr **x, const char *id, int64_t n, struct cx_err *e);

/*
 * The proposal rule.  before is the canonical signed bytes (cx_resource_canon)
 * of r as it was read.  If r's signed part now differs and r carries
 * signatures, the counter goes up by one (CX_EREJECT at its maximum: rotate)
 * and every signature is dropped; their ids are returned in *dropped
 * (arena-allocated).  Without signatures the counter stays.  *changed tells
 * whether the signed part changed.
 */
int cx_author_propose(struct cx_arena *a, struct cx_resource *r, const uint8_t *before,
    size_t beforelen, int *changed, const char ***dropped, size_t *ndropped, struct cx_err *e);

/*
 * Targets of the packages pkgs (names under datadir; all of datadir when
 * npkgs is 0) as found in repo: N/N.V/opam and N/N.V/files/F with size and
 * sha256, sorted by path.  Any other file, a symlink or a special file is
 * CX_EREJECT naming its path.  A named package that does not exist is
 * CX_ENOENT.
 */
int cx_author_targets_compute(struct cx_repo *repo, const char *datadir, const char *const *pkgs,
    size_t npkgs, struct cx_arena *a, struct cx_target **out, size_t *n, struct cx_err *e);
/*
 * Replaces r's targets below datadir/P for every P in pkgs (all of datadir
 * when npkgs is 0) by the computed ones; other targets are kept.  Targets end
 * up sorted by path.
 */
int cx_author_targets_replace(struct cx_arena *a, struct cx_resource *r, const char *datadir,
    const char *const *pkgs, size_t npkgs, const struct cx_target *v, size_t n, struct cx_err *e);
/* A target for bytes d (snapshot and timestamp entries). */
int cx_author_target_of(
    struct cx_arena *a, const char *path, const uint8_t *d, size_t n, struct cx_target *out);

/* Adds or replaces the delegation of exactly path. */
int cx_author_delegate(struct cx_arena *a, struct cx_resource *r, const char *path,
    struct cx_expr *valid, int terminating, struct cx_err *e);
/*
 * Removes the delegation of path, or (to non-NULL) only to's keyref from it
 * (the delegation goes when no keyref is left; the threshold is capped).
 */
int cx_author_undelegate(
    struct cx_arena *a, struct cx_resource *r, const char *path, const char *to, struct cx_err *e);

/* The expression hash of a targets resource's valid, "sha256=<hex>" (NUL-terminated). */
int cx_author_key_hash(
    const struct cx_resource *t, char out[7 + CX_SHA256_HEX + 1], struct cx_err *e);

/* Signing state of a resource over its current canonical bytes. */
struct cx_sigstate {
	const char **good; /* ids whose signature verifies */
	size_t ngood;
	const char **stale; /* ids whose signature does not (edited after signing, bad key...) */
	size_t nstale;
	int met;            /* valid holds over the good signatures */
	int64_t need;       /* more signatures the valid expression needs (0 when met) */
	const char **could; /* local key ids of valid that have not signed */
	size_t ncould;
};
int cx_author_sigstate(
    struct cx_arena *a, const struct cx_resource *r, struct cx_sigstate *s, struct cx_err *e);

/*
 * Serialises r and checks that the bytes parse back to the same canonical
 * signed bytes and the same signatures (name is for messages).
 */
int cx_author_serialise(
    const struct cx_resource *r, const char *name, struct cx_buf *out, struct cx_err *e);
/* cx_author_serialise, then cx_file_write_atomic to path. */
int cx_author_write(const char *path, const struct cx_resource *r, struct cx_err *e);

#endif
