/*
 * The fast `targets` and `delegations` paths (conex/targets_fast.c), copying
 * and in place, against the generic parser on arbitrary bytes: both accept or
 * both reject, with the same message, and an accepted file gives the same
 * canonical bytes and the same written document.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conex/resource.h"
#include "conex/targets_fast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static void
same_bytes(const struct cx_buf *a, const struct cx_buf *b)
{
	if (a->len != b->len || (a->len && memcmp(a->d, b->d, a->len) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const enum cx_rtype types[] = {
	    CX_R_ROOT, CX_R_TARGETS, CX_R_SNAPSHOT, CX_R_TIMESTAMP};
	size_t i;

	for (i = 0; i < 2 * sizeof(types) / sizeof(types[0]); i++) {
		int inplace = i >= sizeof(types) / sizeof(types[0]);
		uint8_t *copy = malloc(len + 1);
		struct cx_arena a;
		struct cx_resource *r1 = NULL, *r2 = NULL;
		struct cx_err e1 = {0}, e2 = {0};
		struct cx_buf c1, c2;
		int rc1, rc2;

		cx_arena_init(&a, 64u * 1024u * 1024u);
		if (copy == NULL)
			abort();
		if (len)
			memcpy(copy, data, len);
		rc1 = cx_resource_parse_ex(&a, "fuzz", copy, len, types[i % 4], &r1, NULL, &e1,
		    inplace ? CX_PARSE_INPLACE : CX_PARSE_FAST);
		rc2 = cx_resource_parse_ex(
		    &a, "fuzz", data, len, types[i % 4], &r2, NULL, &e2, CX_PARSE_GENERIC);
		if (rc1 != rc2)
			abort();
		if (rc1 != 0 && rc1 != CX_ENOMEM && strcmp(e1.msg, e2.msg) != 0)
			abort();
		if (rc1 == 0) {
			cx_buf_init(&c1, 0);
			cx_buf_init(&c2, 0);
			if (cx_resource_canon(r1, &c1) != 0 || cx_resource_canon(r2, &c2) != 0)
				abort();
			same_bytes(&c1, &c2);
			cx_buf_reset(&c1);
			cx_buf_reset(&c2);
			if ((cx_resource_write(r1, &c1, &e1) == 0) !=
			    (cx_resource_write(r2, &c2, &e2) == 0))
				abort();
			same_bytes(&c1, &c2);
			cx_buf_free(&c1);
			cx_buf_free(&c2);
		}
		cx_arena_free(&a);
		free(copy);
	}
	return 0;
}
