/*
 * The token helper wire (pkcs11/remote.h) on arbitrary input: the agent
 * parses what a helper running a vendor's module sends, the helper what the
 * agent sends.  Every decoded answer, token info and key must encode back to
 * the very bytes it was read from (no field dropped or changed), else abort.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pkcs11/internal.h"
#include "pkcs11/remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static void
check_same(const uint8_t *a, size_t an, const struct cx_buf *b)
{
	if (b->len != an || memcmp(a, b->d, an) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct cx_buf in, out;
	struct cx_p11_token_info ti;
	struct cx_p11_key k;
	const uint8_t *msg, *start;
	size_t msglen, i;
	uint32_t cnt;
	int rc, state;

	cx_buf_init(&in, len + 1);
	cx_buf_init(&out, 2 * len + 1024);
	if (cx_buf_put(&in, data, len) != 0)
		goto out;
	start = cx_buf_ptr(&in);
	if (cx_p11r_get_answer(&in, &rc, &state, &ti, &msg, &msglen) == 0) {
		size_t used = (size_t)(cx_buf_ptr(&in) - start);
		cx_buf_put_u32(&out, (uint32_t)rc);
		cx_buf_put_u8(&out, (uint8_t)state);
		cx_p11r_put_info(&out, &ti);
		cx_p11r_put_bytes(&out, msg, msglen);
		check_same(start, used, &out);
		/* a KEYS answer's list follows: a count, then the keys */
		if (cx_buf_get_u32(&in, &cnt) != 0)
			cnt = 0;
		for (i = 0; i < cnt && i < 8; i++) {
			start = cx_buf_ptr(&in);
			if (cx_p11r_get_key(&in, &k) != 0)
				break;
			cx_buf_reset(&out);
			cx_p11r_put_key(&out, &k);
			check_same(start, (size_t)(cx_buf_ptr(&in) - start), &out);
			cx_p11_key_clear(&k);
		}
	}
	/* the same bytes as a request's key field, and as a bare info */
	cx_buf_reset(&in);
	cx_buf_put(&in, data, len);
	if (cx_p11r_get_key(&in, &k) == 0)
		cx_p11_key_clear(&k);
	cx_buf_reset(&in);
	cx_buf_put(&in, data, len);
	(void)cx_p11r_get_info(&in, &ti);
out:
	cx_buf_free(&in);
	cx_buf_free(&out);
	return 0;
}
