/*
 * The helper wire's field codecs and framing (remote.h).  Every length read
 * is checked against its cap before use, and against what is left of the
 * frame; nothing here trusts the peer.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pkcs11/internal.h"
#include "pkcs11/remote.h"

int
cx_p11r_put_bytes(struct cx_buf *b, const void *p, size_t n)
{
	int r;

	if (n > UINT32_MAX)
		return CX_ETOOBIG;
	if ((r = cx_buf_put_u32(b, (uint32_t)n)) != 0)
		return r;
	return n == 0 ? 0 : cx_buf_put(b, p, n);
}

int
cx_p11r_get_bytes(struct cx_buf *b, const uint8_t **p, size_t *n, size_t max)
{
	uint32_t len;

	if (cx_buf_get_u32(b, &len) != 0 || len > max || len > cx_buf_avail(b))
		return CX_EPARSE;
	*p = cx_buf_ptr(b);
	*n = len;
	return cx_buf_skip(b, len);
}

int
cx_p11r_get_str(struct cx_buf *b, char **s, size_t max)
{
	const uint8_t *p;
	size_t n;

	*s = NULL;
	if (cx_p11r_get_bytes(b, &p, &n, max) != 0 || memchr(p, 0, n) != NULL)
		return CX_EPARSE;
	if ((*s = malloc(n + 1)) == NULL)
		return CX_ENOMEM;
	memcpy(*s, p, n);
	(*s)[n] = '\0';
	return 0;
}

/* Into a fixed field: at most outsz - 1 bytes, no NUL. */
static int
get_field(struct cx_buf *b, char *out, size_t outsz)
{
	const uint8_t *p;
	size_t n;

	if (cx_p11r_get_bytes(b, &p, &n, outsz - 1) != 0 || memchr(p, 0, n) != NULL)
		return CX_EPARSE;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static int
put_str(struct cx_buf *b, const char *s)
{
	return cx_p11r_put_bytes(b, s, s != NULL ? strlen(s) : 0);
}

int
cx_p11r_put_info(struct cx_buf *b, const struct cx_p11_token_info *ti)
{
	uint8_t fl = (uint8_t)((ti->login_required ? 1 : 0) | (ti->protected_path ? 2 : 0) |
	    (ti->pin_count_low ? 4 : 0) | (ti->pin_final_try ? 8 : 0) | (ti->pin_locked ? 16 : 0));

	if (cx_buf_put_u64(b, ti->slot) != 0 || put_str(b, ti->serial) != 0 ||
	    put_str(b, ti->label) != 0 || put_str(b, ti->manufacturer) != 0 ||
	    put_str(b, ti->model) != 0)
		return CX_ENOMEM;
	return cx_buf_put_u8(b, fl);
}

int
cx_p11r_get_info(struct cx_buf *b, struct cx_p11_token_info *ti)
{
	uint64_t slot;
	uint8_t fl;

	memset(ti, 0, sizeof(*ti));
	if (cx_buf_get_u64(b, &slot) != 0 || slot > ULONG_MAX ||
	    get_field(b, ti->serial, sizeof(ti->serial)) != 0 ||
	    get_field(b, ti->label, sizeof(ti->label)) != 0 ||
	    get_field(b, ti->manufacturer, sizeof(ti->manufacturer)) != 0 ||
	    get_field(b, ti->model, sizeof(ti->model)) != 0 || cx_buf_get_u8(b, &fl) != 0 ||
	    fl > 31)
		return CX_EPARSE;
	ti->slot = (unsigned long)slot;
	ti->login_required = (fl & 1) != 0;
	ti->protected_path = (fl & 2) != 0;
	ti->pin_count_low = (fl & 4) != 0;
	ti->pin_final_try = (fl & 8) != 0;
	ti->pin_locked = (fl & 16) != 0;
	return 0;
}

int
cx_p11r_put_key(struct cx_buf *b, const struct cx_p11_key *k)
{
	uint8_t fl =
	    (uint8_t)((k->always_auth ? 1 : 0) | (k->sensitive ? 2 : 0) | (k->extractable ? 4 : 0));

	if (put_str(b, k->label) != 0 || cx_p11r_put_bytes(b, k->ckaid, k->ckaidlen) != 0 ||
	    cx_buf_put_u8(b, (uint8_t)k->alg) != 0 || cx_buf_put_u32(b, (uint32_t)k->bits) != 0 ||
	    put_str(b, k->keystr) != 0 || cx_buf_put(b, k->keyid, sizeof(k->keyid)) != 0 ||
	    cx_buf_put_u8(b, fl) != 0 || put_str(b, k->uri) != 0)
		return CX_ENOMEM;
	return 0;
}

int
cx_p11r_get_key(struct cx_buf *b, struct cx_p11_key *k)
{
	const uint8_t *id;
	size_t idlen;
	uint32_t bits;
	uint8_t alg, fl;
	int r = CX_EPARSE;

	memset(k, 0, sizeof(*k));
	if ((r = cx_p11r_get_str(b, &k->label, CX_P11_MAX_ATTR)) != 0 ||
	    (r = cx_p11r_get_bytes(b, &id, &idlen, CX_P11_MAX_ATTR)) != 0)
		goto fail;
	r = CX_ENOMEM;
	if ((k->ckaid = malloc(idlen + 1)) == NULL)
		goto fail;
	memcpy(k->ckaid, id, idlen);
	k->ckaidlen = idlen;
	r = CX_EPARSE;
	if (cx_buf_get_u8(b, &alg) != 0 ||
	    (alg != CX_P11_RSA && alg != CX_P11_ED25519 && alg != CX_P11_ECDSA_P256) ||
	    cx_buf_get_u32(b, &bits) != 0 || bits > 16384)
		goto fail;
	k->alg = (enum cx_p11_alg)alg;
	k->bits = (int)bits;
	if ((r = cx_p11r_get_str(b, &k->keystr, CX_P11R_STR_MAX)) != 0)
		goto fail;
	r = CX_EPARSE;
	if (cx_buf_get(b, k->keyid, sizeof(k->keyid)) != 0 || cx_buf_get_u8(b, &fl) != 0 || fl > 7)
		goto fail;
	k->always_auth = (fl & 1) != 0;
	k->sensitive = (fl & 2) != 0;
	k->extractable = (fl & 4) != 0;
	if ((r = cx_p11r_get_str(b, &k->uri, CX_P11R_STR_MAX)) != 0)
		goto fail;
	return 0;
fail:
	cx_p11_key_clear(k);
	return r;
}

int
cx_p11r_get_answer(struct cx_buf *b, int *rc, int *state, struct cx_p11_token_info *ti,
    const uint8_t **msg, size_t *msglen)
{
	uint32_t v;
	uint8_t l;

	if (cx_buf_get_u32(b, &v) != 0 || cx_buf_get_u8(b, &l) != 0 ||
	    l > (CX_P11R_LOST | CX_P11R_USER) || cx_p11r_get_info(b, ti) != 0 ||
	    cx_p11r_get_bytes(b, msg, msglen, CX_ERR_MSG - 1) != 0)
		return CX_EPARSE;
	/* 0 or one of our negative codes; a failure always says why */
	if ((int32_t)v > 0 || (int32_t)v < CX_P11R_RC_MIN || ((int32_t)v != 0 && *msglen == 0))
		return CX_EPARSE;
	*rc = (int32_t)v;
	*state = l;
	return 0;
}

int
cx_p11r_begin(struct cx_buf *b)
{
	cx_buf_reset(b);
	return cx_buf_put_u32(b, 0);
}

/* Patches the frame's length and sends it; nowait: what does not go at once is CX_EIO. */
static int
send_frame(int fd, struct cx_buf *b, int nowait)
{
	size_t off = 0, body = b->len - 4;
	ssize_t w;

	if (b->len < 4 || body > UINT32_MAX)
		return CX_EINVAL;
	b->d[0] = (uint8_t)(body >> 24);
	b->d[1] = (uint8_t)(body >> 16);
	b->d[2] = (uint8_t)(body >> 8);
	b->d[3] = (uint8_t)body;
	while (off < b->len) {
		w = send(fd, b->d + off, b->len - off, MSG_NOSIGNAL | (nowait ? MSG_DONTWAIT : 0));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return CX_EIO;
		off += (size_t)w;
	}
	return 0;
}

int
cx_p11r_send(int fd, struct cx_buf *b)
{
	return send_frame(fd, b, 0);
}

int
cx_p11r_send_nowait(int fd, struct cx_buf *b)
{
	return send_frame(fd, b, 1);
}

/*
 * One frame.  Each side sends one frame and then waits for the other's, so
 * nothing can follow a frame: bytes beyond it are a protocol error, and one
 * read(2) usually fetches the whole frame.  b holds what has come so far
 * (b->len bytes; the caller resets b before a frame's first call), so that
 * an event loop can read a frame over several calls (nonblock: recv with
 * MSG_DONTWAIT, *more set while the frame is not whole).
 */
static int
recv_frame(int fd, struct cx_buf *b, size_t max, int nonblock, int *more)
{
	size_t want, chunk, n;
	uint8_t *p;
	ssize_t got;

	*more = 0;
	for (;;) {
		want = 4;
		if (b->len >= 4) {
			n = (size_t)b->d[0] << 24 | (size_t)b->d[1] << 16 | (size_t)b->d[2] << 8 |
			    b->d[3];
			if (n > max)
				return CX_ETOOBIG;
			want = 4 + n;
		}
		if (b->len >= want)
			break;
		chunk = want == 4 ? 64 * 1024 : want - b->len;
		if (cx_buf_reserve(b, chunk, &p) != 0)
			return CX_ENOMEM;
		b->len -= chunk;
		got = nonblock ? recv(fd, p, chunk, MSG_DONTWAIT) : read(fd, p, chunk);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0 && nonblock && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			*more = 1;
			return 0;
		}
		if (got <= 0)
			return got == 0 && b->len == 0 ? CX_ENOENT : CX_EIO;
		b->len += (size_t)got;
	}
	if (b->len != want)
		return CX_EPARSE;
	b->off = 4;
	return 0;
}

int
cx_p11r_recv(int fd, struct cx_buf *b, size_t max)
{
	int more;

	cx_buf_reset(b);
	return recv_frame(fd, b, max, 0, &more);
}

int
cx_p11r_recv_more(int fd, struct cx_buf *b, size_t max, int *more)
{
	return recv_frame(fd, b, max, 1, more);
}
