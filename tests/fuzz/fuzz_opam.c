/*
 * The opam-format reader and the resource decoder on arbitrary bytes: never
 * a crash, and whatever decodes must write out and read back the same.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conex/resource.h"
#include "conex/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const enum cx_rtype types[] = {
	    CX_R_ROOT, CX_R_TARGETS, CX_R_SNAPSHOT, CX_R_TIMESTAMP};
	struct cx_arena a;
	struct cx_wire *doc;
	struct cx_err e;
	size_t i;

	cx_arena_init(&a, 64u * 1024u * 1024u);
	if (cx_wire_parse(&a, "fuzz", data, len, &doc, &e) != 0)
		goto out;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct cx_resource *r, *r2;
		struct cx_buf out, c1, c2;
		if (cx_resource_from_wire(&a, "fuzz", doc, types[i], &r, NULL, &e) != 0)
			continue;
		cx_buf_init(&out, 0);
		cx_buf_init(&c1, 0);
		cx_buf_init(&c2, 0);
		/* the direct canonical writer agrees with the canonical form of the wire tree */
		if (cx_resource_canon(r, &c1) != 0 ||
		    cx_wire_canon(cx_resource_signed_wire(&a, r), &c2) != 0 || c1.len != c2.len ||
		    memcmp(c1.d, c2.d, c1.len) != 0)
			abort();
		cx_buf_reset(&c1);
		cx_buf_reset(&c2);
		/* a record that can be written must read back to the same signed bytes */
		if (cx_resource_write(r, &out, &e) == 0) {
			if (cx_resource_parse(
			        &a, "fuzz2", out.d, out.len, types[i], &r2, NULL, &e) != 0)
				abort();
			if (cx_resource_canon(r, &c1) != 0 || cx_resource_canon(r2, &c2) != 0)
				abort();
			if (c1.len != c2.len || memcmp(c1.d, c2.d, c1.len) != 0)
				abort();
		}
		cx_buf_free(&out);
		cx_buf_free(&c1);
		cx_buf_free(&c2);
	}
out:
	cx_arena_free(&a);
	return 0;
}
