#include "proto/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proto/err.h"

void
cx_buf_init(struct cx_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max ? max : CX_BUF_DEFAULT_MAX;
}

void
cx_buf_free(struct cx_buf *b)
{
	free(b->d);
	b->d = NULL;
	b->off = b->len = b->alloc = 0;
}

void
cx_buf_free_wipe(struct cx_buf *b)
{
	if (b->d != NULL) {
		/* volatile pointer: the compiler may not drop the wipe */
		volatile uint8_t *p = b->d;
		for (size_t i = 0; i < b->alloc; i++)
			p[i] = 0;
	}
	cx_buf_free(b);
}

void
cx_buf_reset(struct cx_buf *b)
{
	b->off = b->len = 0;
}

int
cx_buf_reserve(struct cx_buf *b, size_t n, uint8_t **p)
{
	size_t need, nalloc;
	uint8_t *nd;

	if (n > b->max || b->len > b->max - n)
		return CX_ETOOBIG;
	need = b->len + n + 1; /* +1 keeps room for a terminating NUL */
	if (need > b->alloc) {
		nalloc = b->alloc ? b->alloc : 256;
		while (nalloc < need)
			nalloc = nalloc > SIZE_MAX / 2 ? need : nalloc * 2;
		if ((nd = realloc(b->d, nalloc)) == NULL)
			return CX_ENOMEM;
		b->d = nd;
		b->alloc = nalloc;
	}
	if (p != NULL)
		*p = b->d + b->len;
	b->len += n;
	b->d[b->len] = 0;
	return 0;
}

void
cx_buf_prefault(const struct cx_buf *b, size_t off, size_t n)
{
#ifdef MADV_POPULATE_WRITE
	static size_t page;
	uintptr_t lo, hi;

	if (b->d == NULL || off >= b->alloc || n < CX_BUF_PREFAULT_MIN)
		return;
	if (n > b->alloc - off)
		n = b->alloc - off;
	if (page == 0) {
		long ps = sysconf(_SC_PAGESIZE);
		page = ps > 0 ? (size_t)ps : 4096;
	}
	/* whole pages inside the allocation only: the first and the last may be shared */
	lo = ((uintptr_t)b->d + off + page - 1) & ~(uintptr_t)(page - 1);
	hi = ((uintptr_t)b->d + off + n) & ~(uintptr_t)(page - 1);
	if (hi > lo)
		(void)madvise(
		    (void *)lo, hi - lo, MADV_POPULATE_WRITE); /* a hint: errors ignored */
#else
	(void)b;
	(void)off;
	(void)n;
#endif
}

int
cx_buf_put(struct cx_buf *b, const void *p, size_t n)
{
	uint8_t *dst;
	int r;

	if ((r = cx_buf_reserve(b, n, &dst)) != 0)
		return r;
	if (n)
		memcpy(dst, p, n);
	return 0;
}

int
cx_buf_put_str(struct cx_buf *b, const char *s)
{
	return cx_buf_put(b, s, strlen(s));
}

int
cx_buf_put_u8(struct cx_buf *b, uint8_t v)
{
	return cx_buf_put(b, &v, 1);
}

int
cx_buf_put_u32(struct cx_buf *b, uint32_t v)
{
	uint8_t x[4] = {v >> 24, v >> 16, v >> 8, v};
	return cx_buf_put(b, x, 4);
}

int
cx_buf_put_u64(struct cx_buf *b, uint64_t v)
{
	int r;
	if ((r = cx_buf_put_u32(b, (uint32_t)(v >> 32))) != 0)
		return r;
	return cx_buf_put_u32(b, (uint32_t)v);
}

int
cx_buf_putf(struct cx_buf *b, const char *fmt, ...)
{
	va_list ap, ap2;
	uint8_t *dst;
	int n, r;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		va_end(ap2);
		return CX_EINVAL;
	}
	if ((r = cx_buf_reserve(b, (size_t)n, &dst)) != 0) {
		va_end(ap2);
		return r;
	}
	vsnprintf((char *)dst, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return 0;
}

size_t
cx_buf_avail(const struct cx_buf *b)
{
	return b->len - b->off;
}

const uint8_t *
cx_buf_ptr(const struct cx_buf *b)
{
	return b->d == NULL ? (const uint8_t *)"" : b->d + b->off;
}

int
cx_buf_get(struct cx_buf *b, void *p, size_t n)
{
	if (n > cx_buf_avail(b))
		return CX_EPARSE;
	if (n && p != NULL)
		memcpy(p, b->d + b->off, n);
	b->off += n;
	return 0;
}

int
cx_buf_skip(struct cx_buf *b, size_t n)
{
	return cx_buf_get(b, NULL, n);
}

int
cx_buf_get_u8(struct cx_buf *b, uint8_t *v)
{
	return cx_buf_get(b, v, 1);
}

int
cx_buf_get_u32(struct cx_buf *b, uint32_t *v)
{
	uint8_t x[4];
	int r;
	if ((r = cx_buf_get(b, x, 4)) != 0)
		return r;
	*v = (uint32_t)x[0] << 24 | (uint32_t)x[1] << 16 | (uint32_t)x[2] << 8 | x[3];
	return 0;
}

int
cx_buf_get_u64(struct cx_buf *b, uint64_t *v)
{
	uint32_t hi, lo;
	int r;
	if ((r = cx_buf_get_u32(b, &hi)) != 0 || (r = cx_buf_get_u32(b, &lo)) != 0)
		return r;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

char *
cx_buf_steal_str(struct cx_buf *b, size_t *len)
{
	char *s;

	if (b->d == NULL && cx_buf_reserve(b, 0, NULL) != 0)
		return NULL;
	if (b->off) {
		memmove(b->d, b->d + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		b->d[b->len] = 0;
	}
	s = (char *)b->d;
	if (len != NULL)
		*len = b->len;
	b->d = NULL;
	b->off = b->len = b->alloc = 0;
	return s;
}
