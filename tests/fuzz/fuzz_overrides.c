/* The local trust overrides parser (conex/overrides.c) on arbitrary input. */
#include <stdint.h>
#include <stdlib.h>

#include "conex/overrides.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct cx_overrides o;
	struct cx_err e;

	cx_overrides_init(&o);
	if (cx_overrides_parse(&o, 0, "fuzz/overrides", data, len, &e) == 0 &&
	    cx_overrides_check(&o, &e) == 0)
		for (size_t i = 0; i < o.n; i++)
			(void)cx_overrides_find(&o, o.v[i].path);
	cx_overrides_free(&o);
	return 0;
}
