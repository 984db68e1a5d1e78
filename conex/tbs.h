/*
 * Reading to-be-signed bytes (§3.2) back: the agent refuses to sign anything
 * that is not exactly the canonical form of a valid conex resource, and tells
 * the user what it is about to sign.  Upstream has no parser for the canonical
 * form; this one is strict, and its result is re-serialised and compared byte
 * for byte with the input, so nothing can mean two things.
 */
#ifndef CX_TBS_H
#define CX_TBS_H

#include <stddef.h>
#include <stdint.h>

#include "conex/resource.h"

struct cx_tbs_info {
	enum cx_rtype type;
	enum cx_sigalg sigalg;
	char identifier[128]; /* the signer id in the bytes */
	char created[64];     /* the signature's creation time */
	char name[128];       /* the resource's name */
	uint64_t counter, epoch;
	size_t ntargets, ndelegations, nkeys;
};

/* Parses the canonical form (§3.1) into wire values. */
int cx_canon_parse(
    struct cx_arena *a, const uint8_t *p, size_t n, struct cx_wire **out, struct cx_err *e);
/* 0 and info, or CX_EREJECT with the reason (not conex data, not canonical, ...). */
int cx_tbs_inspect(const uint8_t *tbs, size_t n, struct cx_tbs_info *info, struct cx_err *e);
/* "targets m1, counter 0x5, 3 files" */
void cx_tbs_summary(const struct cx_tbs_info *info, char *out, size_t outlen);

#endif
