/*
 * The agent protocol decoder on arbitrary bytes, as a body of every message
 * type: never a crash or an overread, and whatever decodes is canonical:
 * encoding it gives back exactly the input (one encoding per message).
 * The first five bytes also go through the frame header check, which must
 * hold every type but SIGN to CX_PROTO_MAX.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct cx_buf scratch, out;
	struct cx_err e;
	struct cx_msg m;
	uint8_t secret[512], type;
	uint32_t bodylen;
	unsigned t;

	/* the header check obeys each type's cap: SIGN's, and CX_PROTO_MAX for all others */
	if (len >= CX_PROTO_HDR && cx_frame_header(data, &bodylen, &type) == 0 &&
	    (bodylen > cx_frame_max(type) - 1 ||
	        (type != CX_MSG_SIGN && bodylen > CX_PROTO_MAX - 1)))
		abort();
	cx_buf_init(&scratch, 0);
	cx_buf_init(&out, 0);
	/* one scratch for every type: the decoder must cope with a used one */
	for (t = 0; t < 256; t++) {
		if (cx_msg_decode(
		        (uint8_t)t, data, len, &m, &scratch, secret, sizeof(secret), &e) != 0)
			continue;
		if (m.type != t)
			abort();
		cx_buf_reset(&out);
		if (cx_msg_encode(&m, &out) != 0)
			abort();
		if (cx_frame_header(out.d, &bodylen, &type) != 0 || type != t || bodylen != len ||
		    out.len != CX_PROTO_HDR + len || memcmp(out.d + CX_PROTO_HDR, data, len) != 0)
			abort();
	}
	cx_buf_free(&scratch);
	cx_buf_free(&out);
	return 0;
}
