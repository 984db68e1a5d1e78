/*
 * cx_buf: the one bounded buffer that every encoder and decoder uses.
 *
 * Modelled on OpenSSH's sshbuf: a byte array with a read offset and a hard
 * maximum size.  Every put checks the maximum before growing; every get checks
 * the remaining length before reading.  Getters never return pointers past the
 * end.  Depends on the C library only.
 */
#ifndef CX_BUF_H
#define CX_BUF_H

#include <stddef.h>
#include <stdint.h>

#define CX_BUF_DEFAULT_MAX (256u * 1024u * 1024u)

struct cx_buf {
	uint8_t *d;
	size_t off;   /* read position */
	size_t len;   /* bytes written */
	size_t alloc; /* bytes allocated */
	size_t max;   /* hard cap on len */
};

/* Return codes: 0, or CX_ENOMEM / CX_ETOOBIG (put) / CX_EPARSE (get: short). */
void cx_buf_init(struct cx_buf *b, size_t max);
void cx_buf_free(struct cx_buf *b);      /* frees and wipes nothing: see cx_buf_free_wipe */
void cx_buf_free_wipe(struct cx_buf *b); /* zeroes the contents before freeing */
void cx_buf_reset(struct cx_buf *b);
int cx_buf_reserve(struct cx_buf *b, size_t n, uint8_t **p);
/*
 * Maps the allocated but untouched pages of d[off, off + n) at once
 * (MADV_POPULATE_WRITE) instead of a page fault each when they are first
 * written: cheaper for a few MB about to be written.  Contents and the
 * buffer are unchanged (other threads may be writing it); a hint, no error.
 * Does nothing below CX_BUF_PREFAULT_MIN bytes.
 */
#define CX_BUF_PREFAULT_MIN ((size_t)64 * 1024)
void cx_buf_prefault(const struct cx_buf *b, size_t off, size_t n);
int cx_buf_put(struct cx_buf *b, const void *p, size_t n);
int cx_buf_put_str(struct cx_buf *b, const char *s);
int cx_buf_put_u8(struct cx_buf *b, uint8_t v);
int cx_buf_put_u32(struct cx_buf *b, uint32_t v); /* big endian */
int cx_buf_put_u64(struct cx_buf *b, uint64_t v); /* big endian */
int cx_buf_putf(struct cx_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

size_t cx_buf_avail(const struct cx_buf *b);       /* unread bytes */
const uint8_t *cx_buf_ptr(const struct cx_buf *b); /* first unread byte */
int cx_buf_get(struct cx_buf *b, void *p, size_t n);
int cx_buf_get_u8(struct cx_buf *b, uint8_t *v);
int cx_buf_get_u32(struct cx_buf *b, uint32_t *v);
int cx_buf_get_u64(struct cx_buf *b, uint64_t *v);
int cx_buf_skip(struct cx_buf *b, size_t n);
/* Takes ownership of the bytes as a NUL-terminated string; b becomes empty. */
char *cx_buf_steal_str(struct cx_buf *b, size_t *len);

#endif
