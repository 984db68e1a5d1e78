/*
 * A bump allocator: a parsed document and its typed record live and die
 * together, so one free releases 30,000 targets entries at once.
 */
#ifndef CX_ARENA_H
#define CX_ARENA_H

#include <stddef.h>

struct cx_arena_chunk;
struct cx_arena {
	struct cx_arena_chunk *head;
	size_t total; /* bytes handed out, for caps */
	size_t max;   /* 0: unlimited */
};

void cx_arena_init(struct cx_arena *a, size_t max);
void cx_arena_free(struct cx_arena *a);
/* Returns NULL on exhaustion or when max would be exceeded. Memory is zeroed. */
void *cx_arena_alloc(struct cx_arena *a, size_t n);
void *cx_arena_memdup(struct cx_arena *a, const void *p, size_t n); /* adds a NUL */
char *cx_arena_strdup(struct cx_arena *a, const char *s);
/* A formatted string in the arena; NULL on exhaustion. */
char *cx_arena_printf(struct cx_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Grow an array held in the arena: *cap doubles, old contents copied. */
void *cx_arena_grow(struct cx_arena *a, void *old, size_t elsize, size_t *cap, size_t need);

#endif
