#include "conex/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_MIN (64u * 1024u)

struct cx_arena_chunk {
	struct cx_arena_chunk *next;
	size_t used, size;
	max_align_t data[];
};

void
cx_arena_init(struct cx_arena *a, size_t max)
{
	a->head = NULL;
	a->total = 0;
	a->max = max;
}

void
cx_arena_free(struct cx_arena *a)
{
	struct cx_arena_chunk *c, *n;

	for (c = a->head; c != NULL; c = n) {
		n = c->next;
		free(c);
	}
	a->head = NULL;
	a->total = 0;
}

void *
cx_arena_alloc(struct cx_arena *a, size_t n)
{
	struct cx_arena_chunk *c = a->head;
	const size_t al = sizeof(max_align_t);
	size_t sz;
	void *p;

	if (n == 0)
		n = 1;
	if (n > SIZE_MAX / 2)
		return NULL;
	n = (n + al - 1) & ~(al - 1);
	if (a->max && (n > a->max || a->total > a->max - n))
		return NULL;
	if (c == NULL || c->size - c->used < n) {
		sz = n > CHUNK_MIN ? n : CHUNK_MIN;
		/* big requests get their own chunk behind the head, so the head keeps its free tail */
		if ((c = malloc(sizeof(*c) + sz)) == NULL)
			return NULL;
		c->size = sz;
		c->used = 0;
		if (n > CHUNK_MIN / 4 && a->head != NULL) {
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
	}
	p = (char *)c->data + c->used;
	c->used += n;
	a->total += n;
	memset(p, 0, n);
	return p;
}

void *
cx_arena_memdup(struct cx_arena *a, const void *p, size_t n)
{
	char *d;

	if (n == SIZE_MAX || (d = cx_arena_alloc(a, n + 1)) == NULL)
		return NULL;
	if (n)
		memcpy(d, p, n);
	d[n] = 0;
	return d;
}

char *
cx_arena_strdup(struct cx_arena *a, const char *s)
{
	return cx_arena_memdup(a, s, strlen(s));
}

void *
cx_arena_grow(struct cx_arena *a, void *old, size_t elsize, size_t *cap, size_t need)
{
	size_t ncap = *cap ? *cap : 8;
	void *n;

	if (need <= *cap)
		return old;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elsize)
			return NULL;
		ncap *= 2;
	}
	if ((n = cx_arena_alloc(a, ncap * elsize)) == NULL)
		return NULL;
	if (old != NULL && *cap)
		memcpy(n, old, *cap * elsize);
	*cap = ncap;
	return n;
}

char *
cx_arena_printf(struct cx_arena *a, const char *fmt, ...)
{
	va_list ap;
	char *s, *r;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s == NULL)
		return NULL;
	r = cx_arena_strdup(a, s);
	free(s);
	return r;
}
