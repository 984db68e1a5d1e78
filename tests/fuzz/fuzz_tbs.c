/* The agent's reader of to-be-signed bytes on arbitrary input. */
#include <stdint.h>
#include <stdlib.h>

#include "conex/tbs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct cx_tbs_info info;
	struct cx_err e;
	char sum[256];

	if (cx_tbs_inspect(data, len, &info, &e) == 0)
		cx_tbs_summary(&info, sum, sizeof(sum));
	return 0;
}
