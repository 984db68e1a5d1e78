/* Typed resources: decoding from wire values (§4) and the normalised signed map (§3.3). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conex/resource.h"
#include "conex/targets_fast.h"

void
cx_log(struct cx_log *l, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (l == NULL || l->fn == NULL || level > l->level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->fn(l->arg, level, msg);
}

const char *
cx_rtype_name(enum cx_rtype t)
{
	switch (t) {
	case CX_R_ROOT:
		return "root";
	case CX_R_TARGETS:
		return "targets";
	case CX_R_SNAPSHOT:
		return "snapshot";
	case CX_R_TIMESTAMP:
		return "timestamp";
	}
	return "resource";
}

/* Decoding context: the file name for messages. */
struct dec {
	struct cx_arena *a;
	const char *name;
	struct cx_log *log;
	struct cx_err *e;
	const struct cx_fast_targets *fast; /* lists the parser scanned itself */
};

static int derr(struct dec *d, const struct cx_wire *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
derr(struct dec *d, const struct cx_wire *w, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = cx_wire_verr(d->e, d->name, w, fmt, ap);
	va_end(ap);
	return r;
}

static int
nomem(struct dec *d)
{
	return cx_err_set(d->e, CX_ENOMEM, "%s: out of memory", d->name);
}

/* Field `key` of map m must exist and have type t. */
static int
field(struct dec *d, const struct cx_wire *m, const char *key, enum cx_wire_type t,
    const struct cx_wire **out)
{
	const struct cx_wire *w = cx_wire_get(m, key);

	if (w == NULL)
		return derr(d, m, "field '%s' is missing", key);
	if (w->type != t)
		return derr(d, w, "field '%s' must be a %s, not a %s", key, cx_wire_type_name(t),
		    cx_wire_type_name(w->type));
	*out = w;
	return 0;
}

/* Every key of m must be one of allowed (NULL-terminated). */
static int
only_keys(struct dec *d, const struct cx_wire *m, const char *const *allowed)
{
	size_t i, j;

	for (i = 0; i < m->u.map.n; i++) {
		const char *k = m->u.map.kv[i].key;
		for (j = 0; allowed[j] != NULL; j++)
			if (strcmp(k, allowed[j]) == 0)
				break;
		if (allowed[j] == NULL)
			return derr(d, m->u.map.kv[i].val, "unexpected field '%s'", k);
	}
	return 0;
}

/* Data with no NUL byte, usable as a C string. */
static int
cstring(struct dec *d, const struct cx_wire *w, const char *what)
{
	if (memchr(w->u.str.s, 0, w->u.str.len) != NULL)
		return derr(d, w, "%s contains a NUL byte", what);
	return 0;
}

const char *
cx_path_of_string(const char *s, size_t n)
{
	const char *seg, *end;

	if (n && s[0] == '/') {
		s++;
		n--;
	}
	if (n == 0)
		return NULL;
	for (seg = s; seg <= s + n; seg = end + 1) {
		size_t sl;
		end = memchr(seg, '/', (size_t)(s + n - seg));
		if (end == NULL)
			end = s + n;
		sl = (size_t)(end - seg);
		if (sl == 0 || (sl == 1 && seg[0] == '.') ||
		    (sl == 2 && seg[0] == '.' && seg[1] == '.'))
			return NULL;
	}
	return s;
}

static int
path_of(struct dec *d, const struct cx_wire *w, const char **out)
{
	const char *s = w->u.str.s;
	size_t n = w->u.str.len;

	if (cstring(d, w, "path") != 0)
		return CX_EPARSE;
	if ((*out = cx_path_of_string(s, n)) == NULL)
		return n == 0 || (n == 1 && s[0] == '/') ? derr(d, w, "empty path")
		                                         : derr(d, w, "invalid path '%.200s'", s);
	return 0;
}

static int
key_cmp(const void *x, const void *y)
{
	const struct cx_key *a = x, *b = y;
	return strcmp(a->id, b->id);
}

static int
keys_of(struct dec *d, const struct cx_wire *l, struct cx_resource *r)
{
	size_t i, j, n = 0;

	if (l->u.list.n && (r->keys = cx_arena_alloc(d->a, l->u.list.n * sizeof(*r->keys))) == NULL)
		return nomem(d);
	for (i = 0; i < l->u.list.n; i++) {
		const struct cx_wire *k = l->u.list.v[i], **f;
		struct cx_key *key = &r->keys[n];
		const char *eq;

		if (k->type != CX_WIRE_LIST || k->u.list.n != 3 ||
		    k->u.list.v[0]->type != CX_WIRE_IDENT || k->u.list.v[1]->type != CX_WIRE_DATA ||
		    k->u.list.v[2]->type != CX_WIRE_DATA)
			return derr(
			    d, k, "malformed key entry (want [id \"created\" \"alg=key\"])");
		f = (const struct cx_wire **)k->u.list.v;
		if ((eq = memchr(f[2]->u.str.s, '=', f[2]->u.str.len)) == NULL)
			return derr(d, k, "malformed key data of %s", f[0]->u.str.s);
		key->alg = cx_keyalg_from_name(f[2]->u.str.s, (size_t)(eq - f[2]->u.str.s));
		if (key->alg == CX_KEY_NONE) {
			cx_log(d->log, CX_LOG_WARN, "%s: key %s has an unknown algorithm, ignoring",
			    d->name, f[0]->u.str.s);
			continue;
		}
		for (j = 0; j < n; j++)
			if (strcmp(r->keys[j].id, f[0]->u.str.s) == 0)
				break;
		if (j < n) {
			cx_log(d->log, CX_LOG_WARN, "%s: key with id %s already present, ignoring",
			    d->name, f[0]->u.str.s);
			continue;
		}
		if (cstring(d, f[1], "key creation time") != 0)
			return CX_EPARSE;
		key->id = f[0]->u.str.s;
		key->created = f[1]->u.str.s;
		key->keystr = f[2]->u.str.s;
		key->keystrlen = f[2]->u.str.len;
		cx_keyid(key->keystr, key->keystrlen, key->keyid);
		n++;
	}
	r->nkeys = n;
	if (n > 1)
		qsort(r->keys, n, sizeof(*r->keys), key_cmp);
	return 0;
}

static int
sigs_of(struct dec *d, const struct cx_wire *l, struct cx_resource *r)
{
	size_t i, j, n = 0;

	if (l->u.list.n && (r->sigs = cx_arena_alloc(d->a, l->u.list.n * sizeof(*r->sigs))) == NULL)
		return nomem(d);
	for (i = 0; i < l->u.list.n; i++) {
		const struct cx_wire *s = l->u.list.v[i], **f;
		struct cx_sig *sig = &r->sigs[n];
		const char *eq;

		if (s->type != CX_WIRE_LIST || s->u.list.n != 3 ||
		    s->u.list.v[0]->type != CX_WIRE_IDENT || s->u.list.v[1]->type != CX_WIRE_DATA ||
		    s->u.list.v[2]->type != CX_WIRE_DATA)
			return derr(
			    d, s, "malformed signature entry (want [id \"created\" \"alg=sig\"])");
		f = (const struct cx_wire **)s->u.list.v;
		if ((eq = memchr(f[2]->u.str.s, '=', f[2]->u.str.len)) == NULL)
			return derr(d, s, "malformed signature of %s", f[0]->u.str.s);
		sig->alg = cx_sigalg_from_name(f[2]->u.str.s, (size_t)(eq - f[2]->u.str.s));
		if (sig->alg == CX_SIG_NONE) {
			cx_log(d->log, CX_LOG_WARN,
			    "%s: no support for the signature algorithm of %s, ignoring", d->name,
			    f[0]->u.str.s);
			continue;
		}
		for (j = 0; j < n; j++)
			if (strcmp(r->sigs[j].id, f[0]->u.str.s) == 0)
				break;
		if (j < n) {
			cx_log(d->log, CX_LOG_WARN,
			    "%s: signature from %s already present, ignoring", d->name,
			    f[0]->u.str.s);
			continue;
		}
		if (cstring(d, f[1], "signature creation time") != 0)
			return CX_EPARSE;
		sig->id = f[0]->u.str.s;
		sig->created = f[1]->u.str.s;
		sig->value = eq + 1;
		sig->valuelen = f[2]->u.str.len - (size_t)(eq + 1 - f[2]->u.str.s);
		n++;
	}
	r->nsigs = n;
	return 0;
}

/* Returns 1 with a digest, 0 for an unknown algorithm (dropped), or an error. */
static int
digest_of(struct dec *d, const struct cx_wire *w, struct cx_digest *out)
{
	const char *eq;

	if (w->type != CX_WIRE_DATA || (eq = memchr(w->u.str.s, '=', w->u.str.len)) == NULL)
		return derr(d, w, "malformed digest");
	if ((size_t)(eq - w->u.str.s) != 6 || memcmp(w->u.str.s, "sha256", 6) != 0) {
		cx_log(d->log, CX_LOG_WARN, "%s: ignoring unknown digest algorithm", d->name);
		return 0;
	}
	out->value = eq + 1;
	out->len = w->u.str.len - 7;
	return 1;
}

static int
target_of(struct dec *d, const struct cx_wire *m, struct cx_target *t)
{
	static const char *const allowed[] = {"filename", "digest", "size", NULL};
	const struct cx_wire *fn = NULL, *sz = NULL, *dg = NULL;
	size_t i;
	int r;

	if (m->type != CX_WIRE_MAP)
		return derr(d, m, "a target must be a map");
	if ((r = only_keys(d, m, allowed)) != 0 ||
	    (r = field(d, m, "filename", CX_WIRE_DATA, &fn)) != 0 ||
	    (r = field(d, m, "size", CX_WIRE_BIGINT, &sz)) != 0 ||
	    (r = field(d, m, "digest", CX_WIRE_LIST, &dg)) != 0 ||
	    (r = path_of(d, fn, &t->path)) != 0)
		return r;
	t->size = sz->u.big;
	if (dg->u.list.n &&
	    (t->digests = cx_arena_alloc(d->a, dg->u.list.n * sizeof(*t->digests))) == NULL)
		return nomem(d);
	for (i = 0; i < dg->u.list.n; i++) {
		if ((r = digest_of(d, dg->u.list.v[i], &t->digests[t->ndigests])) < 0)
			return r;
		t->ndigests += (size_t)r;
	}
	return 0;
}

static int
targets_of(struct dec *d, const struct cx_wire *l, struct cx_resource *r)
{
	const struct cx_fast_targets *f;
	size_t i;
	int rc;

	for (f = d->fast; f != NULL; f = f->next)
		if (l == &f->w && !f->is_dels) { /* decoded by the same rules (targets_fast.c) */
			r->targets = f->t;
			r->ntargets = f->n;
			return 0;
		}
	if (l->u.list.n &&
	    (r->targets = cx_arena_alloc(d->a, l->u.list.n * sizeof(*r->targets))) == NULL)
		return nomem(d);
	for (i = 0; i < l->u.list.n; i++)
		if ((rc = target_of(d, l->u.list.v[i], &r->targets[i])) != 0)
			return rc;
	r->ntargets = l->u.list.n;
	return 0;
}

static int
expr_of(struct dec *d, const struct cx_wire *w, struct cx_expr **out)
{
	int r = cx_expr_from_wire(d->a, w, out, d->log, d->e);

	if (r != 0 && r != CX_ENOMEM)
		cx_err_prefix(d->e, "%s", d->name);
	return r;
}

static int
delegation_of(struct dec *d, const struct cx_wire *m, struct cx_delegation *del)
{
	static const char *const allowed[] = {"paths", "valid", "terminating", NULL};
	const struct cx_wire *paths = NULL, *term;
	size_t i;
	int r;

	if (m->type != CX_WIRE_MAP)
		return derr(d, m, "a delegation must be a map");
	if ((r = only_keys(d, m, allowed)) != 0 ||
	    (r = field(d, m, "paths", CX_WIRE_LIST, &paths)) != 0)
		return r;
	if (cx_wire_get(m, "valid") == NULL)
		return derr(d, m, "field 'valid' is missing");
	if ((r = expr_of(d, cx_wire_get(m, "valid"), &del->valid)) != 0)
		return r;
	del->terminating = 1;
	if ((term = cx_wire_get(m, "terminating")) != NULL) {
		if (term->type != CX_WIRE_DATA)
			return derr(d, term, "terminating must be a string");
		if (strcmp(term->u.str.s, "true") == 0 || strcmp(term->u.str.s, "yes") == 0)
			del->terminating = 1;
		else if (strcmp(term->u.str.s, "false") == 0 || strcmp(term->u.str.s, "no") == 0)
			del->terminating = 0;
		else
			return derr(d, term, "unknown value for terminating");
	}
	if (paths->u.list.n &&
	    (del->paths = cx_arena_alloc(d->a, paths->u.list.n * sizeof(*del->paths))) == NULL)
		return nomem(d);
	for (i = 0; i < paths->u.list.n; i++) {
		if (paths->u.list.v[i]->type != CX_WIRE_DATA)
			return derr(d, paths->u.list.v[i], "a delegated path must be a string");
		if ((r = path_of(d, paths->u.list.v[i], &del->paths[i])) != 0)
			return r;
	}
	del->npaths = paths->u.list.n;
	return 0;
}

static int
header_of(struct dec *d, const struct cx_wire *s, enum cx_rtype expect, struct cx_resource *r)
{
	const struct cx_wire *version = NULL, *created = NULL, *counter = NULL, *epoch = NULL,
	                     *name = NULL, *typ = NULL;
	int rc;

	if ((rc = field(d, s, "version", CX_WIRE_SMALLINT, &version)) != 0 ||
	    (rc = field(d, s, "created", CX_WIRE_DATA, &created)) != 0 ||
	    (rc = field(d, s, "counter", CX_WIRE_BIGINT, &counter)) != 0 ||
	    (rc = field(d, s, "epoch", CX_WIRE_BIGINT, &epoch)) != 0 ||
	    (rc = field(d, s, "name", CX_WIRE_DATA, &name)) != 0 ||
	    (rc = field(d, s, "typ", CX_WIRE_IDENT, &typ)) != 0)
		return rc;
	if (strcmp(typ->u.str.s, "root") != 0 && strcmp(typ->u.str.s, "targets") != 0 &&
	    strcmp(typ->u.str.s, "snapshot") != 0 && strcmp(typ->u.str.s, "timestamp") != 0)
		return derr(d, typ, "unknown resource type '%s'", typ->u.str.s);
	if (strcmp(typ->u.str.s, cx_rtype_name(expect)) != 0)
		return derr(d, typ, "expected resource type %s, found %s", cx_rtype_name(expect),
		    typ->u.str.s);
	if (version->u.small != (expect == CX_R_ROOT ? 1 : 0))
		return derr(d, version, "expected data version #%d, found #%lld",
		    expect == CX_R_ROOT ? 1 : 0, (long long)version->u.small);
	if (cstring(d, created, "created") != 0 || cstring(d, name, "name") != 0)
		return CX_EPARSE;
	r->type = expect;
	r->created = created->u.str.s;
	r->name = name->u.str.s;
	r->counter = counter->u.big;
	r->epoch = epoch->u.big;
	return 0;
}

static int
roles_of(struct dec *d, const struct cx_wire *m, struct cx_resource *r)
{
	size_t i;
	int rc;

	for (i = 0; i < m->u.map.n; i++) {
		const struct cx_wire_kv *kv = &m->u.map.kv[i];
		struct cx_expr **slot;
		if (strcmp(kv->key, "maintainer") == 0)
			slot = &r->role_maintainer;
		else if (strcmp(kv->key, "snapshot") == 0)
			slot = &r->role_snapshot;
		else if (strcmp(kv->key, "timestamp") == 0)
			slot = &r->role_timestamp;
		else
			return derr(d, kv->val, "invalid role '%s'", kv->key);
		if ((rc = expr_of(d, kv->val, slot)) != 0)
			return rc;
	}
	return 0;
}

static int
from_wire(struct cx_arena *a, const char *name, const struct cx_wire *doc, enum cx_rtype expect,
    struct cx_resource **out, struct cx_log *log, struct cx_err *e,
    const struct cx_fast_targets *fast)
{
	static const char *const top[] = {"signed", "signatures", NULL};
	static const char *const k_root[] = {"created", "counter", "version", "epoch", "name",
	    "typ", "datadir", "keydir", "keys", "roles", "valid", NULL};
	static const char *const k_targets[] = {"created", "counter", "version", "epoch", "name",
	    "typ", "keys", "valid", "delegations", "targets", NULL};
	static const char *const k_st[] = {
	    "created", "counter", "version", "epoch", "name", "typ", "keys", "targets", NULL};
	struct dec d = {a, name, log, e, fast};
	const struct cx_wire *s = NULL, *sigs, *w = NULL;
	struct cx_resource *r;
	size_t i;
	int rc;

	if (doc->type != CX_WIRE_MAP)
		return derr(&d, doc, "not a map");
	/* upstream ignores other top-level items; a stray one is suspicious enough to refuse */
	if ((rc = only_keys(&d, doc, top)) != 0 ||
	    (rc = field(&d, doc, "signed", CX_WIRE_MAP, &s)) != 0)
		return rc;
	if ((r = cx_arena_alloc(a, sizeof(*r))) == NULL)
		return nomem(&d);
	rc = only_keys(&d, s,
	    expect == CX_R_ROOT          ? k_root
	        : expect == CX_R_TARGETS ? k_targets
	                                 : k_st);
	if (rc != 0 || (rc = header_of(&d, s, expect, r)) != 0)
		return rc;
	if ((w = cx_wire_get(s, "keys")) != NULL) {
		if (w->type != CX_WIRE_LIST)
			return derr(&d, w, "field 'keys' must be a list");
		if ((rc = keys_of(&d, w, r)) != 0)
			return rc;
	} else if (expect == CX_R_ROOT) {
		return derr(&d, s, "field 'keys' is missing");
	}
	if (expect == CX_R_ROOT) {
		const struct cx_wire *dd = NULL, *kd = NULL, *roles = NULL;
		if ((rc = field(&d, s, "datadir", CX_WIRE_DATA, &dd)) != 0 ||
		    (rc = field(&d, s, "keydir", CX_WIRE_DATA, &kd)) != 0 ||
		    (rc = path_of(&d, dd, &r->datadir)) != 0 ||
		    (rc = path_of(&d, kd, &r->keydir)) != 0 ||
		    (rc = field(&d, s, "roles", CX_WIRE_MAP, &roles)) != 0 ||
		    (rc = roles_of(&d, roles, r)) != 0)
			return rc;
	}
	if (expect == CX_R_ROOT || expect == CX_R_TARGETS) {
		if ((w = cx_wire_get(s, "valid")) == NULL)
			return derr(&d, s, "field 'valid' is missing");
		if ((rc = expr_of(&d, w, &r->valid)) != 0)
			return rc;
	}
	if (expect == CX_R_TARGETS) {
		const struct cx_fast_targets *f;
		if ((rc = field(&d, s, "delegations", CX_WIRE_LIST, &w)) != 0)
			return rc;
		for (f = fast; f != NULL; f = f->next)
			if (w == &f->w && f->is_dels)
				break;
		if (f != NULL) { /* decoded by the same rules (targets_fast.c) */
			r->dels = f->d;
			r->ndels = f->nd;
		} else if (w->u.list.n &&
		    (r->dels = cx_arena_alloc(a, w->u.list.n * sizeof(*r->dels))) == NULL)
			return nomem(&d);
		for (i = 0; f == NULL && i < w->u.list.n; i++)
			if ((rc = delegation_of(&d, w->u.list.v[i], &r->dels[i])) != 0)
				return rc;
		if (f == NULL)
			r->ndels = w->u.list.n;
	}
	if (expect != CX_R_ROOT) {
		if ((rc = field(&d, s, "targets", CX_WIRE_LIST, &w)) != 0 ||
		    (rc = targets_of(&d, w, r)) != 0)
			return rc;
	}
	if ((sigs = cx_wire_get(doc, "signatures")) != NULL) {
		if (sigs->type != CX_WIRE_LIST)
			return derr(&d, sigs, "field 'signatures' must be a list");
		if ((rc = sigs_of(&d, sigs, r)) != 0)
			return rc;
	}
	*out = r;
	return 0;
}

int
cx_resource_from_wire(struct cx_arena *a, const char *name, const struct cx_wire *doc,
    enum cx_rtype expect, struct cx_resource **out, struct cx_log *log, struct cx_err *e)
{
	return from_wire(a, name, doc, expect, out, log, e, NULL);
}

int
cx_resource_parse_ex(struct cx_arena *a, const char *name, const uint8_t *data, size_t len,
    enum cx_rtype expect, struct cx_resource **out, struct cx_log *log, struct cx_err *e, int mode)
{
	struct cx_fast_targets *fast = NULL;
	struct cx_wire *doc;
	int r;

	if ((r = cx_wire_parse_fast(a, name, data, len, &doc, mode & CX_PARSE_FAST ? &fast : NULL,
	         mode == CX_PARSE_INPLACE, e)) != 0)
		return r;
	return from_wire(a, name, doc, expect, out, log, e, fast);
}

void
cx_resource_parse_begin(struct cx_arena *a, const char *name, const uint8_t *data, size_t len,
    struct cx_parse_pending *pp)
{
	memset(pp, 0, sizeof(*pp));
	pp->a = a;
	pp->data = data;
	pp->len = len;
	pp->rc =
	    cx_wire_parse_fast(a, name, data, len, &pp->doc, &pp->fast, CX_INPLACE_DEFER, &pp->e);
}

/* Writes the NULs the scans left (seal = 1), or not, and forgets them. */
static void
pending_ends(struct cx_parse_pending *pp, int seal)
{
	for (struct cx_fast_targets *ft = pp->fast; ft != NULL; ft = ft->next) {
		for (size_t i = 0; seal && i < ft->nends; i++)
			*ft->ends[i] = 0;
		free(ft->ends);
		ft->ends = NULL;
		ft->nends = 0;
	}
}

int
cx_resource_parse_finish(struct cx_parse_pending *pp, const char *name, enum cx_rtype expect,
    struct cx_resource **out, struct cx_log *log, struct cx_err *e)
{
	/* as cx_resource_parse_ex: a scanned list is sealed even if the rest fails */
	pending_ends(pp, 1);
	pp->fast = pp->rc == 0 ? pp->fast : NULL;
	if (pp->rc != 0) {
		if (e != NULL)
			*e = pp->e;
		return pp->rc;
	}
	return from_wire(pp->a, name, pp->doc, expect, out, log, e, pp->fast);
}

void
cx_resource_parse_abandon(struct cx_parse_pending *pp)
{
	pending_ends(pp, 0);
}

int
cx_resource_parse(struct cx_arena *a, const char *name, const uint8_t *data, size_t len,
    enum cx_rtype expect, struct cx_resource **out, struct cx_log *log, struct cx_err *e)
{
	return cx_resource_parse_ex(a, name, data, len, expect, out, log, e, CX_PARSE_FAST);
}

const struct cx_key *
cx_resource_key(const struct cx_resource *r, const char *id)
{
	size_t lo = 0, hi = r->nkeys;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->keys[mid].id, id);
		if (c == 0)
			return &r->keys[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- the normalised signed map ---- */

static struct cx_wire *
data(struct cx_arena *a, const char *s)
{
	return cx_wire_str(a, CX_WIRE_DATA, s, strlen(s));
}

static struct cx_wire *
ident(struct cx_arena *a, const char *s)
{
	return cx_wire_str(a, CX_WIRE_IDENT, s, strlen(s));
}

static struct cx_wire *
keys_wire(struct cx_arena *a, const struct cx_resource *r)
{
	struct cx_wire **v, *f[3];
	size_t i;

	if (r->nkeys == 0)
		return cx_wire_list(a, NULL, 0);
	if ((v = cx_arena_alloc(a, r->nkeys * sizeof(*v))) == NULL)
		return NULL;
	/* upstream folds the id-sorted map with cons: descending ids (§3.3) */
	for (i = 0; i < r->nkeys; i++) {
		const struct cx_key *k = &r->keys[r->nkeys - 1 - i];
		f[0] = ident(a, k->id);
		f[1] = data(a, k->created);
		f[2] = cx_wire_str(a, CX_WIRE_DATA, k->keystr, k->keystrlen);
		if (f[0] == NULL || f[1] == NULL || f[2] == NULL ||
		    (v[i] = cx_wire_list(a, f, 3)) == NULL)
			return NULL;
	}
	return cx_wire_list(a, v, r->nkeys);
}

static struct cx_wire *
digest_wire(struct cx_arena *a, const struct cx_digest *dg)
{
	struct cx_wire *w = cx_wire_new(a, CX_WIRE_DATA);
	char *s;

	if (w == NULL || (s = cx_arena_alloc(a, dg->len + 8)) == NULL)
		return NULL;
	memcpy(s, "sha256=", 7);
	memcpy(s + 7, dg->value, dg->len);
	w->u.str.s = s;
	w->u.str.len = dg->len + 7;
	return w;
}

static struct cx_wire *
target_wire(struct cx_arena *a, const struct cx_target *t)
{
	struct cx_wire_kv kv[3];
	struct cx_wire **dv = NULL;
	size_t i;

	if (t->ndigests && (dv = cx_arena_alloc(a, t->ndigests * sizeof(*dv))) == NULL)
		return NULL;
	for (i = 0; i < t->ndigests; i++)
		if ((dv[i] = digest_wire(a, &t->digests[i])) == NULL)
			return NULL;
	kv[0] = (struct cx_wire_kv){"digest", 6, cx_wire_list(a, dv, t->ndigests)};
	kv[1] = (struct cx_wire_kv){"filename", 8, data(a, t->path)};
	kv[2] = (struct cx_wire_kv){"size", 4, cx_wire_big(a, t->size)};
	if (kv[0].val == NULL || kv[1].val == NULL || kv[2].val == NULL)
		return NULL;
	return cx_wire_map(a, kv, 3);
}

static struct cx_wire *
targets_wire(struct cx_arena *a, const struct cx_resource *r)
{
	struct cx_wire **v = NULL;
	size_t i;

	if (r->ntargets && (v = cx_arena_alloc(a, r->ntargets * sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < r->ntargets; i++)
		if ((v[i] = target_wire(a, &r->targets[i])) == NULL)
			return NULL;
	return cx_wire_list(a, v, r->ntargets);
}

static struct cx_wire *
delegations_wire(struct cx_arena *a, const struct cx_resource *r)
{
	struct cx_wire **v = NULL, **pv;
	struct cx_wire_kv kv[3];
	size_t i, j;

	if (r->ndels && (v = cx_arena_alloc(a, r->ndels * sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < r->ndels; i++) {
		const struct cx_delegation *d = &r->dels[i];
		pv = NULL;
		if (d->npaths && (pv = cx_arena_alloc(a, d->npaths * sizeof(*pv))) == NULL)
			return NULL;
		for (j = 0; j < d->npaths; j++)
			if ((pv[j] = data(a, d->paths[j])) == NULL)
				return NULL;
		kv[0] = (struct cx_wire_kv){"paths", 5, cx_wire_list(a, pv, d->npaths)};
		kv[1] = (struct cx_wire_kv){
		    "terminating", 11, data(a, d->terminating ? "true" : "false")};
		kv[2] = (struct cx_wire_kv){"valid", 5, cx_expr_to_wire(a, d->valid)};
		if (kv[0].val == NULL || kv[1].val == NULL || kv[2].val == NULL ||
		    (v[i] = cx_wire_map(a, kv, 3)) == NULL)
			return NULL;
	}
	return cx_wire_list(a, v, r->ndels);
}

struct cx_wire *
cx_resource_signed_wire(struct cx_arena *a, const struct cx_resource *r)
{
	struct cx_wire_kv kv[12];
	size_t n = 0;

#define ADD(k, v)                              \
	do {                                   \
		kv[n].key = (k);               \
		kv[n].keylen = strlen(k);      \
		if ((kv[n].val = (v)) == NULL) \
			return NULL;           \
		n++;                           \
	} while (0)
	ADD("counter", cx_wire_big(a, r->counter));
	ADD("created", data(a, r->created));
	ADD("epoch", cx_wire_big(a, r->epoch));
	ADD("keys", keys_wire(a, r));
	ADD("name", data(a, r->name));
	ADD("typ", ident(a, cx_rtype_name(r->type)));
	ADD("version", cx_wire_small(a, r->type == CX_R_ROOT ? 1 : 0));
	switch (r->type) {
	case CX_R_ROOT: {
		struct cx_wire_kv rk[3];
		size_t nr = 0;
		if (r->role_maintainer != NULL)
			rk[nr++] = (struct cx_wire_kv){
			    "maintainer", 10, cx_expr_to_wire(a, r->role_maintainer)};
		if (r->role_snapshot != NULL)
			rk[nr++] = (struct cx_wire_kv){
			    "snapshot", 8, cx_expr_to_wire(a, r->role_snapshot)};
		if (r->role_timestamp != NULL)
			rk[nr++] = (struct cx_wire_kv){
			    "timestamp", 9, cx_expr_to_wire(a, r->role_timestamp)};
		for (size_t i = 0; i < nr; i++)
			if (rk[i].val == NULL)
				return NULL;
		ADD("datadir", data(a, r->datadir));
		ADD("keydir", data(a, r->keydir));
		ADD("roles", cx_wire_map(a, rk, nr));
		ADD("valid", cx_expr_to_wire(a, r->valid));
		break;
	}
	case CX_R_TARGETS:
		ADD("valid", cx_expr_to_wire(a, r->valid));
		ADD("delegations", delegations_wire(a, r));
		ADD("targets", targets_wire(a, r));
		break;
	case CX_R_SNAPSHOT:
	case CX_R_TIMESTAMP:
		ADD("targets", targets_wire(a, r));
		break;
	}
#undef ADD
	return cx_wire_map(a, kv, n);
}

struct cx_wire *
cx_resource_wire(struct cx_arena *a, const struct cx_resource *r)
{
	struct cx_wire_kv kv[2];
	struct cx_wire **v = NULL, *f[3];
	size_t i;

	if (r->nsigs && (v = cx_arena_alloc(a, r->nsigs * sizeof(*v))) == NULL)
		return NULL;
	for (i = 0; i < r->nsigs; i++) {
		const struct cx_sig *s = &r->sigs[i];
		const char *alg = cx_sigalg_name(s->alg);
		size_t al = strlen(alg);
		char *val = cx_arena_alloc(a, al + 1 + s->valuelen + 1);
		if (val == NULL)
			return NULL;
		memcpy(val, alg, al);
		val[al] = '=';
		memcpy(val + al + 1, s->value, s->valuelen);
		f[0] = ident(a, s->id);
		f[1] = data(a, s->created);
		f[2] = cx_wire_str(a, CX_WIRE_DATA, val, al + 1 + s->valuelen);
		if (f[0] == NULL || f[1] == NULL || f[2] == NULL ||
		    (v[i] = cx_wire_list(a, f, 3)) == NULL)
			return NULL;
	}
	kv[0] = (struct cx_wire_kv){"signatures", 10, cx_wire_list(a, v, r->nsigs)};
	kv[1] = (struct cx_wire_kv){"signed", 6, cx_resource_signed_wire(a, r)};
	if (kv[0].val == NULL || kv[1].val == NULL)
		return NULL;
	return cx_wire_map(a, kv, 2);
}

int
cx_resource_write(const struct cx_resource *r, struct cx_buf *out, struct cx_err *e)
{
	struct cx_arena a;
	struct cx_wire *w;
	int rc;

	cx_arena_init(&a, 0);
	if ((w = cx_resource_wire(&a, r)) == NULL)
		rc = cx_err_set(e, CX_ENOMEM, "out of memory");
	else if ((rc = cx_wire_write(w, out)) != 0)
		rc = cx_err_set(e, rc,
		    "%s %s cannot be written: a value would not read back the same",
		    cx_rtype_name(r->type), r->name);
	cx_arena_free(&a);
	return rc;
}

/*
 * The canonical form (§3.1) of the normalised signed map, written straight
 * from the typed record: a 30,000-entry targets file is not turned into a
 * second tree first.  Keys of every map are emitted in ascending byte order;
 * test_wire checks the result equals cx_wire_canon(cx_resource_signed_wire()).
 */
/*
 * Decimal / "0x" uppercase hex of v at q; returns the end.  printf is a
 * fifth of the time of writing 30,000 targets: numbers by hand.
 */
static uint8_t *
mem_dec(uint8_t *q, uint64_t v)
{
	char t[24];
	size_t i = sizeof(t);

	do
		t[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	memcpy(q, t + i, sizeof(t) - i);
	return q + (sizeof(t) - i);
}

static uint8_t *
mem_hex(uint8_t *q, uint64_t v)
{
	char t[24];
	size_t i = sizeof(t);

	do
		t[--i] = "0123456789ABCDEF"[v & 15];
	while ((v >>= 4) != 0);
	t[--i] = 'x';
	t[--i] = '0';
	memcpy(q, t + i, sizeof(t) - i);
	return q + (sizeof(t) - i);
}

static int
put_dec(struct cx_buf *o, uint64_t v)
{
	uint8_t t[24];

	return cx_buf_put(o, t, (size_t)(mem_dec(t, v) - t));
}

static int
put_hex(struct cx_buf *o, uint64_t v)
{
	uint8_t t[24];

	return cx_buf_put(o, t, (size_t)(mem_hex(t, v) - t));
}

static int
canon_data(struct cx_buf *o, const char *s, size_t n)
{
	int r;

	if ((r = put_dec(o, n)) != 0 || (r = cx_buf_put_u8(o, '\'')) != 0)
		return r;
	return cx_buf_put(o, s, n);
}

static int
canon_keyref(struct cx_buf *o, const struct cx_keyref *k)
{
	int r;

	if (!k->remote)
		return cx_buf_put_str(o, k->id);
	/* 5,000 delegations in the author model: no printf */
	if ((r = cx_buf_put_u8(o, '[')) != 0 || (r = cx_buf_put_str(o, k->id)) != 0 ||
	    (r = cx_buf_put_u8(o, ';')) != 0 || (r = put_dec(o, k->digest.len + 7)) != 0 ||
	    (r = cx_buf_put(o, "'sha256=", 8)) != 0 ||
	    (r = cx_buf_put(o, k->digest.value, k->digest.len)) != 0 ||
	    (r = cx_buf_put_u8(o, ';')) != 0 || (r = put_hex(o, k->epoch)) != 0)
		return r;
	return cx_buf_put_u8(o, ']');
}

static int
canon_expr(struct cx_buf *o, const struct cx_expr *x)
{
	size_t i;
	int r;

	switch (x->kind) {
	case CX_EXPR_AND:
	case CX_EXPR_OR:
		if ((r = cx_buf_put_u8(o, '(')) != 0 || (r = canon_expr(o, x->a)) != 0 ||
		    (r = cx_buf_put_str(o, x->kind == CX_EXPR_AND ? "&&" : "||")) != 0 ||
		    (r = canon_expr(o, x->b)) != 0)
			return r;
		return cx_buf_put_u8(o, ')');
	case CX_EXPR_QUORUM:
		if (x->n == 1 && x->nrefs == 1)
			return canon_keyref(o, &x->refs[0]);
		if ((r = cx_buf_putf(o, "(%lld[", (long long)x->n)) != 0)
			return r;
		for (i = 0; i < x->nrefs; i++)
			if ((i && (r = cx_buf_put_u8(o, ';')) != 0) ||
			    (r = canon_keyref(o, &x->refs[i])) != 0)
				return r;
		return cx_buf_put_str(o, "])");
	}
	return CX_EINVAL;
}

static int
canon_keys(struct cx_buf *o, const struct cx_resource *r)
{
	size_t i;
	int rc;

	if ((rc = cx_buf_put_str(o, "keys:[")) != 0)
		return rc;
	for (i = r->nkeys; i-- > 0;) { /* descending ids (§3.3) */
		const struct cx_key *k = &r->keys[i];
		if ((rc = cx_buf_putf(o, "%s[%s;", i + 1 < r->nkeys ? ";" : "", k->id)) != 0 ||
		    (rc = canon_data(o, k->created, strlen(k->created))) != 0 ||
		    (rc = cx_buf_put_u8(o, ';')) != 0 ||
		    (rc = canon_data(o, k->keystr, k->keystrlen)) != 0 ||
		    (rc = cx_buf_put_u8(o, ']')) != 0)
			return rc;
	}
	return cx_buf_put_str(o, "];");
}

static uint8_t *
mem_put(uint8_t *q, const void *s, size_t n)
{
	memcpy(q, s, n);
	return q + n;
}

/*
 * One entry, {digest:[N'sha256=...;...];filename:N'path;size:0xN}, written
 * into room reserved once: 33,000 of them were ten checked puts each.
 */
static int
canon_target(struct cx_buf *o, const struct cx_target *t, int first)
{
	size_t pl = strlen(t->path), need = 80 + pl, j;
	uint8_t *p, *q;
	int rc;

	for (j = 0; j < t->ndigests; j++)
		need += t->digests[j].len + 32;
	if ((rc = cx_buf_reserve(o, need, &p)) != 0)
		return rc;
	q = mem_put(p, first ? "{digest:[" : ";{digest:[", first ? 9 : 10);
	for (j = 0; j < t->ndigests; j++) {
		if (j)
			*q++ = ';';
		q = mem_dec(q, t->digests[j].len + 7);
		q = mem_put(q, "'sha256=", 8);
		q = mem_put(q, t->digests[j].value, t->digests[j].len);
	}
	q = mem_put(q, "];filename:", 11);
	q = mem_dec(q, pl);
	*q++ = '\'';
	q = mem_put(q, t->path, pl);
	q = mem_put(q, ";size:", 6);
	q = mem_hex(q, t->size);
	*q++ = '}';
	/* give back what was not used, keep the NUL terminator */
	o->len -= need - (size_t)(q - p);
	o->d[o->len] = 0;
	return 0;
}

#define CANON_PREFAULT ((size_t)256 * 1024)

static int
canon_targets(struct cx_buf *o, const struct cx_resource *r)
{
	size_t i;
	int rc;

	size_t ahead = 0;

	if ((rc = cx_buf_put_str(o, "targets:[")) != 0)
		return rc;
	for (i = 0; i < r->ntargets; i++) {
		/* 4.5 MB for keys/m1: its pages mapped a piece at a time, not a fault each */
		if (o->len >= ahead) {
			cx_buf_prefault(o, o->len, CANON_PREFAULT);
			ahead = o->len + CANON_PREFAULT;
		}
		if ((rc = canon_target(o, &r->targets[i], i == 0)) != 0)
			return rc;
	}
	return cx_buf_put_str(o, "];");
}

static int
canon_delegations(struct cx_buf *o, const struct cx_resource *r)
{
	size_t i, j;
	int rc;

	if ((rc = cx_buf_put_str(o, "delegations:[")) != 0)
		return rc;
	for (i = 0; i < r->ndels; i++) {
		const struct cx_delegation *d = &r->dels[i];
		if ((rc = cx_buf_put_str(o, i ? ";{paths:[" : "{paths:[")) != 0)
			return rc;
		for (j = 0; j < d->npaths; j++)
			if ((j && (rc = cx_buf_put_u8(o, ';')) != 0) ||
			    (rc = canon_data(o, d->paths[j], strlen(d->paths[j]))) != 0)
				return rc;
		if ((rc = cx_buf_putf(o,
		         "];terminating:%s;valid:", d->terminating ? "4'true" : "5'false")) != 0 ||
		    (rc = canon_expr(o, d->valid)) != 0 || (rc = cx_buf_put_u8(o, '}')) != 0)
			return rc;
	}
	return cx_buf_put_str(o, "];");
}

int
cx_resource_canon(const struct cx_resource *r, struct cx_buf *o)
{
	int rc;

	/* ascending: counter created datadir delegations epoch keydir keys name roles targets typ valid version */
	if ((rc = cx_buf_putf(o, "{counter:0x%llX;created:", (unsigned long long)r->counter)) !=
	        0 ||
	    (rc = canon_data(o, r->created, strlen(r->created))) != 0 ||
	    (rc = cx_buf_put_u8(o, ';')) != 0)
		return rc;
	if (r->type == CX_R_ROOT &&
	    ((rc = cx_buf_put_str(o, "datadir:")) != 0 ||
	        (rc = canon_data(o, r->datadir, strlen(r->datadir))) != 0 ||
	        (rc = cx_buf_put_u8(o, ';')) != 0))
		return rc;
	if (r->type == CX_R_TARGETS && (rc = canon_delegations(o, r)) != 0)
		return rc;
	if ((rc = cx_buf_putf(o, "epoch:0x%llX;", (unsigned long long)r->epoch)) != 0)
		return rc;
	if (r->type == CX_R_ROOT &&
	    ((rc = cx_buf_put_str(o, "keydir:")) != 0 ||
	        (rc = canon_data(o, r->keydir, strlen(r->keydir))) != 0 ||
	        (rc = cx_buf_put_u8(o, ';')) != 0))
		return rc;
	if ((rc = canon_keys(o, r)) != 0 || (rc = cx_buf_put_str(o, "name:")) != 0 ||
	    (rc = canon_data(o, r->name, strlen(r->name))) != 0 ||
	    (rc = cx_buf_put_u8(o, ';')) != 0)
		return rc;
	if (r->type == CX_R_ROOT) {
		const char *sep = "";
		if ((rc = cx_buf_put_str(o, "roles:{")) != 0)
			return rc;
		if (r->role_maintainer != NULL) {
			if ((rc = cx_buf_put_str(o, "maintainer:")) != 0 ||
			    (rc = canon_expr(o, r->role_maintainer)) != 0)
				return rc;
			sep = ";";
		}
		if (r->role_snapshot != NULL) {
			if ((rc = cx_buf_putf(o, "%ssnapshot:", sep)) != 0 ||
			    (rc = canon_expr(o, r->role_snapshot)) != 0)
				return rc;
			sep = ";";
		}
		if (r->role_timestamp != NULL &&
		    ((rc = cx_buf_putf(o, "%stimestamp:", sep)) != 0 ||
		        (rc = canon_expr(o, r->role_timestamp)) != 0))
			return rc;
		if ((rc = cx_buf_put_str(o, "};")) != 0)
			return rc;
	}
	if (r->type != CX_R_ROOT && (rc = canon_targets(o, r)) != 0)
		return rc;
	if ((rc = cx_buf_putf(o, "typ:%s;", cx_rtype_name(r->type))) != 0)
		return rc;
	if ((r->type == CX_R_ROOT || r->type == CX_R_TARGETS) &&
	    ((rc = cx_buf_put_str(o, "valid:")) != 0 || (rc = canon_expr(o, r->valid)) != 0 ||
	        (rc = cx_buf_put_u8(o, ';')) != 0))
		return rc;
	return cx_buf_putf(o, "version:%d}", r->type == CX_R_ROOT ? 1 : 0);
}

int
cx_tbs(const uint8_t *canon, size_t canonlen, const char *created, const char *id,
    enum cx_sigalg alg, struct cx_buf *out)
{
	int r;

	/* the keys of the to-be-signed map in ascending order: created, data, identifier, sigtype */
	if ((r = cx_buf_putf(out, "{created:%zu'%s;data:", strlen(created), created)) != 0 ||
	    (r = cx_buf_put(out, canon, canonlen)) != 0 ||
	    (r = cx_buf_putf(out, ";identifier:%s;sigtype:%s}", id, cx_sigalg_name(alg))) != 0)
		return r;
	return 0;
}

/*
 * With cb, the canonical bytes sit in cb at offset head, and each signature's
 * to-be-signed bytes are made around them in place: the prefix (§3.2) is
 * written just before them and the suffix after.  For a 6.7 MB targets file
 * that saves a 4.5 MB copy per signature.  The bytes are cx_tbs's.
 */
static int
verify_sigs(const struct cx_resource *r, struct cx_buf *cb, size_t head, const uint8_t *canon,
    size_t canonlen, int (*ok)(void *arg, const struct cx_sig *s, const struct cx_key *k),
    void *arg, struct cx_log *log, struct cx_err *e)
{
	struct cx_buf tbs, sig;
	struct cx_err ve;
	size_t i;
	int rc = 0;

	cx_buf_init(&tbs, 0);
	cx_buf_init(&sig, 64 * 1024);
	for (i = 0; i < r->nsigs && rc == 0; i++) {
		const struct cx_sig *s = &r->sigs[i];
		const struct cx_key *k = cx_resource_key(r, s->id);
		EVP_PKEY *pk = NULL;
		enum cx_keyalg ka;

		if (k == NULL) {
			cx_log(log, CX_LOG_WARN, "%s: signature by %s: no key %s in the resource",
			    r->name, s->id, s->id);
			continue;
		}
		if (cx_sigalg_for_key(k->alg) != s->alg) {
			cx_log(log, CX_LOG_WARN,
			    "%s: signature by %s: bad algorithm %s for a %s key", r->name, s->id,
			    cx_sigalg_name(s->alg), cx_keyalg_name(k->alg));
			continue;
		}
		cx_buf_reset(&tbs);
		cx_buf_reset(&sig);
		if (cb != NULL) {
			/* the prefix alone goes to tbs, then before the canonical bytes */
			cb->len = head + canonlen;
			if ((rc = cx_buf_putf(&tbs, "{created:%zu'%s;data:", strlen(s->created),
			         s->created)) != 0)
				break;
			if (tbs.len > head) {
				rc = CX_EINVAL; /* head is sized for every signature */
				break;
			}
			memcpy(cb->d + head - tbs.len, tbs.d, tbs.len);
			if ((rc = cx_buf_putf(cb, ";identifier:%s;sigtype:%s}", s->id,
			         cx_sigalg_name(s->alg))) != 0)
				break;
		} else if ((rc = cx_tbs(canon, canonlen, s->created, s->id, s->alg, &tbs)) != 0) {
			break;
		}
		if (cx_b64_decode(s->value, s->valuelen, &sig, &ve) != 0) {
			cx_log(log, CX_LOG_WARN, "%s: signature by %s: %s", r->name, s->id, ve.msg);
			continue;
		}
		if (cx_pubkey_parse(k->keystr, k->keystrlen, &pk, &ka, &ve) != 0) {
			cx_log(log, CX_LOG_WARN, "%s: key %s: %s", r->name, k->id, ve.msg);
			continue;
		}
		if (cx_sig_verify(pk, s->alg, cb != NULL ? cb->d + head - tbs.len : tbs.d,
		        cb != NULL ? cb->len - (head - tbs.len) : tbs.len, sig.d, sig.len,
		        &ve) != 0) {
			cx_log(log, CX_LOG_WARN, "%s: signature by %s does not verify: %s", r->name,
			    s->id, ve.msg);
		} else if (ok != NULL) {
			rc = ok(arg, s, k);
		}
		EVP_PKEY_free(pk);
	}
	cx_buf_free(&tbs);
	cx_buf_free(&sig);
	if (rc != 0 && rc != CX_ENOMEM)
		return rc;
	if (rc == CX_ENOMEM)
		return cx_err_set(e, rc, "%s: out of memory", r->name);
	return 0;
}

int
cx_resource_verify_sigs(const struct cx_resource *r, const uint8_t *canon, size_t canonlen,
    int (*ok)(void *arg, const struct cx_sig *s, const struct cx_key *k), void *arg,
    struct cx_log *log, struct cx_err *e)
{
	return verify_sigs(r, NULL, 0, canon, canonlen, ok, arg, log, e);
}

int
cx_resource_verify(const struct cx_resource *r,
    int (*ok)(void *arg, const struct cx_sig *s, const struct cx_key *k), void *arg,
    struct cx_log *log, struct cx_err *e)
{
	struct cx_buf cb;
	size_t head = 0, i, n, est;
	int rc;

	/* room for the longest prefix: "{created:" N "'" created ";data:" */
	for (i = 0; i < r->nsigs; i++)
		if ((n = strlen(r->sigs[i].created) + 40) > head)
			head = n;
	cx_buf_init(&cb, 0);
	/*
	 * Room for the canonical bytes at once (a generous guess: pages never
	 * written cost nothing): grown by doubling, 4.5 MB were copied again and
	 * again once the allocator served them from the heap.
	 */
	est = head + 4096 + r->ntargets * 256 + r->ndels * 512;
	for (i = 0; i < r->nkeys; i++)
		est += r->keys[i].keystrlen + 128;
	if (cx_buf_reserve(&cb, est, NULL) == 0)
		cb.len = head; /* else (over the cap): grow as needed */
	if ((rc = cx_buf_reserve(&cb, cb.len == head ? 0 : head, NULL)) == 0)
		rc = cx_resource_canon(r, &cb);
	if (rc == 0)
		rc = verify_sigs(r, &cb, head, cb.d + head, cb.len - head, ok, arg, log, e);
	else
		rc = cx_err_set(e, rc, "%s: out of memory", r->name);
	cx_buf_free(&cb);
	return rc;
}

int
cx_resource_set_sig(struct cx_arena *a, struct cx_resource *r, const char *id, const char *created,
    enum cx_sigalg alg, const uint8_t *sig, size_t siglen)
{
	struct cx_buf b;
	struct cx_sig *v;
	size_t i;

	cx_buf_init(&b, 0);
	if (cx_b64_encode(sig, siglen, &b) != 0) {
		cx_buf_free(&b);
		return CX_ENOMEM;
	}
	for (i = 0; i < r->nsigs; i++)
		if (strcmp(r->sigs[i].id, id) == 0)
			break;
	if (i == r->nsigs) {
		if ((v = cx_arena_alloc(a, (r->nsigs + 1) * sizeof(*v))) == NULL) {
			cx_buf_free(&b);
			return CX_ENOMEM;
		}
		if (r->nsigs)
			memcpy(v, r->sigs, r->nsigs * sizeof(*v));
		r->sigs = v;
		r->nsigs++;
	}
	r->sigs[i].id = cx_arena_strdup(a, id);
	r->sigs[i].created = cx_arena_strdup(a, created);
	r->sigs[i].alg = alg;
	r->sigs[i].value = cx_arena_memdup(a, b.d, b.len);
	r->sigs[i].valuelen = b.len;
	cx_buf_free(&b);
	if (r->sigs[i].id == NULL || r->sigs[i].created == NULL || r->sigs[i].value == NULL)
		return CX_ENOMEM;
	return 0;
}

int
cx_resource_sign(struct cx_arena *a, struct cx_resource *r, const char *id, const char *created,
    enum cx_sigalg alg, cx_sign_fn fn, void *arg, struct cx_err *e)
{
	struct cx_buf canon, tbs, sig;
	int rc;

	cx_buf_init(&canon, 0);
	cx_buf_init(&tbs, 0);
	cx_buf_init(&sig, 64 * 1024);
	if ((rc = cx_resource_canon(r, &canon)) != 0 ||
	    (rc = cx_tbs(canon.d, canon.len, created, id, alg, &tbs)) != 0) {
		rc = cx_err_set(e, rc, "%s: cannot build the bytes to sign", r->name);
		goto out;
	}
	if ((rc = fn(arg, tbs.d, tbs.len, &sig, e)) != 0)
		goto out;
	if ((rc = cx_resource_set_sig(a, r, id, created, alg, sig.d, sig.len)) != 0)
		rc = cx_err_set(e, rc, "out of memory");
out:
	cx_buf_free(&canon);
	cx_buf_free(&tbs);
	cx_buf_free(&sig);
	return rc;
}

int
cx_sign_evp(void *arg, const uint8_t *tbs, size_t n, struct cx_buf *sig, struct cx_err *e)
{
	EVP_PKEY *k = arg;
	enum cx_sigalg alg =
	    EVP_PKEY_get_base_id(k) == EVP_PKEY_ED25519 ? CX_SIG_ED25519 : CX_SIG_RSAPSS_SHA256;

	return cx_sig_sign(k, alg, tbs, n, sig, e);
}
