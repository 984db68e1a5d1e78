/* Local trust overrides: the overlay file's parser and lookups (docs/trust-overrides.md). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conex/overrides.h"

void
cx_overrides_init(struct cx_overrides *o)
{
	memset(o, 0, sizeof(*o));
	cx_arena_init(&o->a, 0);
}

void
cx_overrides_free(struct cx_overrides *o)
{
	for (size_t i = 0; i < o->novl; i++)
		if (o->ovl[i].repo != NULL)
			cx_repo_close(o->ovl[i].repo);
	cx_arena_free(&o->a);
	memset(o, 0, sizeof(*o));
}

struct pctx {
	struct cx_overrides *o;
	const char *name;
	struct cx_err *e;
	int warned; /* the expression parser dropped something: strict means an error */
	char warn[256];
};

static int perr(struct pctx *p, const struct cx_wire *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
perr(struct pctx *p, const struct cx_wire *w, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cx_wire_verr(p->e, p->name, w, fmt, ap);
	va_end(ap);
	return r;
}

/* The expression parser only warns about an unknown digest algorithm: here that is an error. */
static void
warn_fn(void *arg, int level, const char *msg)
{
	struct pctx *p = arg;

	(void)level;
	if (!p->warned)
		snprintf(p->warn, sizeof(p->warn), "%s", msg);
	p->warned = 1;
}

static int
is_lhex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Only remote keyrefs with a sha256 digest, and quorums that need at least one of them. */
static int
check_expr(struct pctx *p, const struct cx_wire *w, const struct cx_expr *x)
{
	int r;

	if (x->kind != CX_EXPR_QUORUM)
		return (r = check_expr(p, w, x->a)) != 0 ? r : check_expr(p, w, x->b);
	if (x->n < 1)
		return perr(p, w, "a quorum below 1 accepts nothing: use at least 1");
	for (size_t i = 0; i < x->nrefs; i++) {
		const struct cx_keyref *k = &x->refs[i];
		if (!k->remote)
			return perr(p, w,
			    "'%s' is a local key reference: an override names identities as "
			    "[ id \"sha256=<key hash>\" epoch ]",
			    k->id);
		if (k->digest.len != CX_SHA256_HEX || !is_lhex(k->digest.value, k->digest.len))
			return perr(p, w,
			    "the key hash of '%s' must be sha256= and 64 lowercase hex", k->id);
		if (*k->id == 0 || strchr(k->id, '/') != NULL)
			return perr(p, w, "'%s' is not a valid identity name", k->id);
	}
	return 0;
}

static int
add_override(struct pctx *p, const struct cx_wire *pw, const char *path, const struct cx_expr *x,
    size_t overlay)
{
	struct cx_overrides *o = p->o;
	struct cx_override *n;
	char *where;

	if (o->n >= CX_OVERRIDES_MAX)
		return perr(p, pw, "more than %d overrides", CX_OVERRIDES_MAX);
	if ((n = cx_arena_grow(&o->a, o->v, sizeof(*o->v), &o->cap, o->n + 1)) == NULL)
		return cx_err_set(p->e, CX_ENOMEM, "out of memory");
	o->v = n;
	if ((where = cx_arena_alloc(&o->a, strlen(p->name) + 32)) == NULL)
		return cx_err_set(p->e, CX_ENOMEM, "out of memory");
	sprintf(where, "%s:%u:%u", p->name, pw->line, pw->col);
	o->v[o->n++] = (struct cx_override){path, x, overlay, where};
	return 0;
}

static int
parse_entry(struct pctx *p, const struct cx_wire *m, size_t overlay)
{
	const struct cx_wire *paths, *valid;
	struct cx_log log = {warn_fn, p, CX_LOG_WARN};
	struct cx_expr *x = NULL;
	size_t i;
	int r;

	if (m->type != CX_WIRE_MAP)
		return perr(p, m, "an override must be a { paths: [...] valid: ... } map");
	for (i = 0; i < m->u.map.n; i++)
		if (strcmp(m->u.map.kv[i].key, "paths") != 0 &&
		    strcmp(m->u.map.kv[i].key, "valid") != 0)
			return perr(p, m->u.map.kv[i].val,
			    "unknown field '%s' (an override has paths and valid)",
			    m->u.map.kv[i].key);
	if ((paths = cx_wire_get(m, "paths")) == NULL)
		return perr(p, m, "field 'paths' is missing");
	if ((valid = cx_wire_get(m, "valid")) == NULL)
		return perr(p, m, "field 'valid' is missing");
	if (paths->type != CX_WIRE_LIST || paths->u.list.n == 0)
		return perr(p, paths, "field 'paths' must be a non-empty list of strings");
	p->warned = 0;
	if ((r = cx_expr_from_wire(&p->o->a, valid, &x, &log, p->e)) != 0) {
		if (r == CX_ENOMEM)
			return r;
		return cx_err_set(p->e, CX_EPARSE, "%s:%s", p->name, p->e->msg);
	}
	if (p->warned)
		return perr(p, valid, "%s", p->warn);
	if ((r = check_expr(p, valid, x)) != 0)
		return r;
	for (i = 0; i < paths->u.list.n; i++) {
		const struct cx_wire *w = paths->u.list.v[i];
		if (w->type != CX_WIRE_DATA)
			return perr(p, w, "a path must be a string");
		if (memchr(w->u.str.s, 0, w->u.str.len) != NULL ||
		    cx_path_check(w->u.str.s, w->u.str.len) != 0)
			return perr(p, w,
			    "invalid path '%.200s' (relative, no empty, '.' or '..' segments)",
			    w->u.str.s);
		if ((r = add_override(p, w, w->u.str.s, x, overlay)) != 0)
			return r;
	}
	return 0;
}

int
cx_overrides_parse(struct cx_overrides *o, size_t overlay, const char *name, const uint8_t *data,
    size_t len, struct cx_err *e)
{
	struct pctx p = {o, NULL, e, 0, {0}};
	struct cx_wire *doc, *l;
	size_t i;
	int r;

	if ((p.name = cx_arena_strdup(&o->a, name)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if ((r = cx_wire_parse(&o->a, name, data, len, &doc, e)) != 0)
		return r;
	for (i = 0; i < doc->u.map.n; i++)
		if (strcmp(doc->u.map.kv[i].key, "overrides") != 0)
			return perr(&p, doc->u.map.kv[i].val,
			    "unknown field '%s' (the file holds overrides: [ ... ])",
			    doc->u.map.kv[i].key);
	if ((l = cx_wire_get(doc, "overrides")) == NULL)
		return perr(&p, doc, "field 'overrides' is missing");
	if (l->type != CX_WIRE_LIST)
		return perr(&p, l, "field 'overrides' must be a list of { paths valid } maps");
	for (i = 0; i < l->u.list.n; i++)
		if ((r = parse_entry(&p, l->u.list.v[i], overlay)) != 0)
			return r;
	return 0;
}

/* Is p at or below dir? */
static int
at_or_below(const char *dir, const char *p)
{
	size_t n = strlen(dir);

	return strncmp(dir, p, n) == 0 && (p[n] == 0 || p[n] == '/');
}

int
cx_overrides_check(const struct cx_overrides *o, struct cx_err *e)
{
	/* two overrides of one path would make the result depend on their order: refuse */
	for (size_t i = 0; i < o->n; i++)
		for (size_t j = i + 1; j < o->n; j++)
			if (at_or_below(o->v[i].path, o->v[j].path) ||
			    at_or_below(o->v[j].path, o->v[i].path))
				return cx_err_set(e, CX_EINVAL,
				    "overlapping local overrides: %s (%s) and %s (%s)",
				    o->v[i].path, o->v[i].where, o->v[j].path, o->v[j].where);
	return 0;
}

const struct cx_override *
cx_overrides_find(const struct cx_overrides *o, const char *path)
{
	for (size_t i = 0; i < o->n; i++)
		if (at_or_below(o->v[i].path, path))
			return &o->v[i];
	return NULL;
}

int
cx_overrides_add_dir(struct cx_overrides *o, const char *dir, struct cx_err *e)
{
	struct cx_overlay *n;
	struct cx_buf b;
	char *name;
	size_t k = o->novl;
	int r;

	if ((n = cx_arena_grow(&o->a, o->ovl, sizeof(*o->ovl), &o->capovl, o->novl + 1)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	o->ovl = n;
	if ((o->ovl[k].dir = cx_arena_strdup(&o->a, dir)) == NULL ||
	    (name = cx_arena_alloc(&o->a, strlen(dir) + sizeof("/overrides"))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	sprintf(name, "%s/overrides", dir);
	if ((r = cx_repo_open(&o->ovl[k].repo, dir, e)) != 0)
		return cx_err_prefix(e, "overlay %s", dir);
	o->novl++;
	cx_buf_init(&b, 0);
	r = cx_repo_read(o->ovl[k].repo, "overrides", CX_OVERRIDES_MAX_FILE, &b, e);
	if (r == CX_ETOOBIG)
		r = cx_err_set(
		    e, CX_ETOOBIG, "%s: larger than %u bytes", name, CX_OVERRIDES_MAX_FILE);
	else if (r != 0)
		cx_err_prefix(e, "overlay %s", dir);
	if (r == 0)
		r = cx_overrides_parse(o, k, name, b.d, b.len, e);
	cx_buf_free(&b);
	if (r == 0)
		r = cx_overrides_check(o, e);
	return r;
}

int
cx_overrides_identity(const struct cx_overrides *o, size_t overlay, const char *id, size_t cap,
    struct cx_buf *out, struct cx_err *e)
{
	char path[CX_REPO_PATH_MAX];
	int r;

	if (overlay >= o->novl || o->ovl[overlay].repo == NULL)
		return cx_err_set(e, CX_ENOENT, "no overlay %zu", overlay);
	if (snprintf(path, sizeof(path), "keys/%s", id) >= (int)sizeof(path) ||
	    cx_path_check(path, strlen(path)) != 0)
		return cx_err_set(e, CX_EINVAL, "'%s' is not a valid identity name", id);
	r = cx_repo_read(o->ovl[overlay].repo, path, cap, out, e);
	if (r == CX_ETOOBIG)
		return cx_err_set(e, CX_EREJECT, "%s/%s is larger than the metadata size cap",
		    o->ovl[overlay].dir, path);
	return r;
}

const char *
cx_overrides_dir(const struct cx_overrides *o, size_t overlay)
{
	return overlay < o->novl ? o->ovl[overlay].dir : "?";
}
