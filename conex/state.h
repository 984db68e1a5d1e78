/*
 * What the verifier last accepted for a repository, so that a full fetch of
 * an older, validly signed copy is refused too (rollback across full mode).
 * Keyed by the trust anchors: opam passes no repository name.
 */
#ifndef CX_STATE_H
#define CX_STATE_H

#include "conex/verify.h"

/* $XDG_STATE_HOME/conex/<sha256 of the sorted anchors>.state, or dir/<...> if dir given. */
int cx_state_path(
    const char *dir, const char *const *anchors, size_t n, char **out, struct cx_err *e);
/* *found = 0 when there is no state yet. A malformed file is an error, not a reset. */
int cx_state_load(const char *path, struct cx_counters *c, int *found, struct cx_err *e);
/* Atomically replaces the state (temp file, fsync, rename, fsync of the directory). */
int cx_state_store(const char *path, const struct cx_counters *c, struct cx_err *e);

#endif
