/*
 * Strict base64 (RFC 4648 section 4) for signatures and key data.
 *
 * Only one spelling of any byte string is accepted: standard alphabet,
 * mandatory '=' padding, zero trailing bits, no whitespace.  A lenient decoder
 * would let two different signature or key strings carry the same bytes.
 */
#include "conex/crypto.h"

#include <stdint.h>
#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of c, or -1 for anything outside the alphabet. */
static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static void
b64_rollback(struct cx_buf *b, size_t len)
{
	b->len = len;
	b->d[len] = 0;
}

int
cx_b64_encode(const uint8_t *p, size_t n, struct cx_buf *out)
{
	size_t i, olen;
	uint8_t *dst;
	uint32_t v;
	int r;

	if (n / 3 >= SIZE_MAX / 4 - 1)
		return CX_ETOOBIG;
	olen = (n + 2) / 3 * 4;
	if ((r = cx_buf_reserve(out, olen, &dst)) != 0)
		return r;
	for (i = 0; n - i >= 3; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*dst++ = b64_alphabet[(v >> 18) & 0x3f];
		*dst++ = b64_alphabet[(v >> 12) & 0x3f];
		*dst++ = b64_alphabet[(v >> 6) & 0x3f];
		*dst++ = b64_alphabet[v & 0x3f];
	}
	if (n - i == 1) {
		v = (uint32_t)p[i] << 16;
		*dst++ = b64_alphabet[(v >> 18) & 0x3f];
		*dst++ = b64_alphabet[(v >> 12) & 0x3f];
		*dst++ = '=';
		*dst++ = '=';
	} else if (n - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*dst++ = b64_alphabet[(v >> 18) & 0x3f];
		*dst++ = b64_alphabet[(v >> 12) & 0x3f];
		*dst++ = b64_alphabet[(v >> 6) & 0x3f];
		*dst++ = '=';
	}
	return 0;
}

/*
 * Decodes s[0..n) and appends the bytes to out.  On failure out is left as it
 * was, so callers never see half a decoding.
 */
int
cx_b64_decode(const char *s, size_t n, struct cx_buf *out, struct cx_err *e)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i, j, pad, olen, start = out->len;
	int v[4], r;
	uint8_t *dst;

	if (n == 0)
		return 0;
	if (n % 4 != 0)
		return cx_err_set(e, CX_EPARSE, "base64: length %zu is not a multiple of 4", n);
	pad = 0;
	if (u[n - 1] == '=')
		pad = u[n - 2] == '=' ? 2 : 1;
	olen = n / 4 * 3 - pad;
	if ((r = cx_buf_reserve(out, olen, &dst)) != 0)
		return cx_err_set(e, r, "base64: %zu bytes do not fit the buffer", olen);

	for (i = 0; i < n; i += 4) {
		for (j = 0; j < 4; j++) {
			v[j] = b64_value(u[i + j]);
			if (v[j] >= 0)
				continue;
			/* padding only in the last one or two positions */
			if (u[i + j] == '=' && i + 4 == n && j >= 4 - pad) {
				v[j] = 0;
				continue;
			}
			b64_rollback(out, start);
			if (u[i + j] == '=')
				return cx_err_set(
				    e, CX_EPARSE, "base64: misplaced '=' at offset %zu", i + j);
			return cx_err_set(e, CX_EPARSE,
			    "base64: invalid character 0x%02x at offset %zu", u[i + j], i + j);
		}
		*dst++ = (uint8_t)(v[0] << 2 | v[1] >> 4);
		if (i + 4 < n || pad < 2)
			*dst++ = (uint8_t)((v[1] & 0x0f) << 4 | v[2] >> 2);
		if (i + 4 < n || pad < 1)
			*dst++ = (uint8_t)((v[2] & 0x03) << 6 | v[3]);
	}
	/* bits below the last full byte must be zero, or "QQ==" and "QR==" would both mean "A" */
	if ((pad == 2 && (v[1] & 0x0f) != 0) || (pad == 1 && (v[2] & 0x03) != 0)) {
		b64_rollback(out, start);
		return cx_err_set(e, CX_EPARSE, "base64: non-zero trailing bits before padding");
	}
	return 0;
}
