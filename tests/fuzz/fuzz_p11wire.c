/*
 * The token helper wire (pkcs11/remote.h) on arbitrary input: the agent
 * parses what a helper running a vendor's module sends, the helper what the
 * agent sends.  Every decoded answer, token info and key must encode back to
 * the very bytes it was read from (no field dropped or changed), else abort.
 * The frame reader too: read whole (the worker's cx_p11r_recv) or a few
 * bytes at a time without blocking (the event loop's cx_p11r_recv_more), a
 * frame must come out the same, and a short or oversize one fail both ways.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pkcs11/internal.h"
#include "pkcs11/remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static void
check_same(const uint8_t *a, size_t an, const struct cx_buf *b)
{
	if (b->len != an || memcmp(a, b->d, an) != 0)
		abort();
}

#define FRAME_MAX 4096

/* data through a socketpair, step bytes at a time (0: all at once), then EOF. */
static int
read_frame(const uint8_t *data, size_t len, size_t step, struct cx_buf *b)
{
	size_t off = 0, n;
	int sv[2], r, more = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	cx_buf_reset(b);
	for (;;) {
		if (off < len) {
			n = step == 0 || step > len - off ? len - off : step;
			if (write(sv[0], data + off, n) != (ssize_t)n)
				abort();
			off += n;
		}
		if (off == len)
			shutdown(sv[0], SHUT_WR);
		if (step == 0) {
			r = cx_p11r_recv(sv[1], b, FRAME_MAX);
			break;
		}
		if ((r = cx_p11r_recv_more(sv[1], b, FRAME_MAX, &more)) != 0 || !more)
			break;
	}
	close(sv[0]);
	close(sv[1]);
	return r;
}

static void
frames(const uint8_t *data, size_t len)
{
	struct cx_buf whole, pieces;
	size_t n;
	int r1, r2;

	/* within one socket buffer: the writes here never block */
	if (len > 2 * FRAME_MAX)
		return;
	n = len >= 4
	    ? ((size_t)data[0] << 24 | (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3])
	    : 0;
	/* bytes after a frame: what each read sees of them depends on timing, by design */
	if (len >= 4 && n <= FRAME_MAX && len > 4 + n)
		return;
	cx_buf_init(&whole, 0);
	cx_buf_init(&pieces, 0);
	r1 = read_frame(data, len, 0, &whole);
	r2 = read_frame(data, len, len > 0 ? 1 + data[len - 1] % 7 : 1, &pieces);
	if ((r1 == 0) != (r2 == 0))
		abort();
	if (r1 == 0 &&
	    (whole.len != pieces.len || whole.off != pieces.off ||
	        memcmp(whole.d, pieces.d, whole.len) != 0 || whole.len != 4 + n))
		abort();
	cx_buf_free(&whole);
	cx_buf_free(&pieces);
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
	frames(data, len);
out:
	cx_buf_free(&in);
	cx_buf_free(&out);
	return 0;
}
