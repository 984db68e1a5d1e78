/*
 * Verification benchmark on the real opam-repository (bench/run.sh drives it;
 * docs/benchmarks.md has the method and the numbers).  This is a benchmark,
 * not a test: it prints times and never asserts them.
 *
 *   bench_verify prepare SRC PATCHDIR OUT
 *       SRC: an extracted opam-repository (packages/, repo); PATCHDIR: the
 *       100 NNN-<commit>.patch files.  Writes, below OUT:
 *         layout.txt            which files under packages/ fit the opam layout
 *         meta                  signing time and root key ids
 *         single/base/          signed like the live service: one maintainer m1
 *         single/base.tar.gz    the same, as a tarball
 *         single/upd/NNN.diff   update i, re-signed, as `diff -ruaN old new`
 *         author/...            the author model: one identity per package,
 *                               delegated from m1 (packages/<name>)
 *         .done                 written last
 *   bench_verify run OUT CONEX_BINARY
 *       Times every case, each in a fresh child process (peak RSS from wait4),
 *       and prints the table.  Environment: BENCH_REPS (timed runs per case,
 *       default 3), BENCH_INCR (0: skip the incremental series),
 *       BENCH_INCR_REPS (timed runs per update, default 1).
 *   bench_verify layout SRC PATCHDIR
 *       Only the opam layout report (also part of prepare's layout.txt).
 *   bench_verify child MODE ...   one measured run (internal).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libdeflate.h>

#include "conex/crypto.h"
#include "conex/patch.h"
#include "conex/repo.h"
#include "conex/resource.h"
#include "conex/verify.h"
#include "tests/lib/repobuild.h"

#define NUPDATES_MAX 1000
#define EXPIRY_LARGE (100LL * 365 * 86400)

/* ---- small helpers ---- */

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
now_cpu(void)
{
	struct timespec ts;

	/* all threads of the process: user + sys */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		rb_die("out of memory");
	return p;
}

static void *
xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n ? n : 1)) == NULL)
		rb_die("out of memory");
	return p;
}

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		rb_die("out of memory");
	return p;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		rb_die("out of memory");
	va_end(ap);
	return s;
}

/* Runs a shell command; dies unless its exit status is in ok (a bitmask of statuses). */
static void sh(unsigned ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
sh(unsigned ok, const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	int st;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		rb_die("out of memory");
	va_end(ap);
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) > 15 || !(ok & (1u << WEXITSTATUS(st))))
		rb_die("command failed (status %d): %s", st, cmd);
	free(cmd);
}

static uint8_t *
slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *d;
	size_t off = 0;

	if (fd < 0 || fstat(fd, &st) != 0)
		rb_die("%s: %s", path, strerror(errno));
	d = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, d + off, (size_t)st.st_size - off);
		if (n <= 0)
			rb_die("%s: read: %s", path, n < 0 ? strerror(errno) : "short");
		off += (size_t)n;
	}
	close(fd);
	d[off] = 0;
	*len = off;
	return d;
}

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorted names of the entries of dir (no dot files), or NULL with *n = 0 when absent. */
static char **
list_dir(const char *dir, size_t *n, int dirs_only)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (dirs_only && de->d_type != DT_DIR)
			continue;
		if (*n == cap)
			v = xrealloc(v, (cap = cap ? 2 * cap : 256) * sizeof(*v));
		v[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	qsort(v, *n, sizeof(*v), cmp_str);
	return v;
}

static void
free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- the opam layout check ---- */

struct layout {
	size_t total, opam, files, other;
	char *ex[20];
	size_t nex;
};

/* 1: N/N.V/opam or X/opam, 2: N/N.V/files/F or X/files/F (F one segment), 0: other. */
static int
layout_class(const char *p)
{
	const char *seg[8];
	size_t ns = 0, nlen;
	char *copy = xstrdup(p), *s, *save = NULL;
	int c = 0;

	for (s = strtok_r(copy, "/", &save); s != NULL && ns < 8; s = strtok_r(NULL, "/", &save))
		seg[ns++] = s;
	if (ns >= 3 && strcmp(seg[0], "packages") == 0) {
		int nv_ok;
		nlen = strlen(seg[1]);
		nv_ok = ns >= 4 && strncmp(seg[2], seg[1], nlen) == 0 && seg[2][nlen] == '.';
		if (ns == 4 && nv_ok && strcmp(seg[3], "opam") == 0)
			c = 1;
		else if (ns == 5 && nv_ok && strcmp(seg[3], "files") == 0)
			c = 2;
		else if (ns == 3 && strcmp(seg[2], "opam") == 0)
			c = 1;
		else if (ns == 4 && strcmp(seg[2], "files") == 0)
			c = 2;
	}
	free(copy);
	return c;
}

static void
layout_walk(struct layout *L, const char *root, const char *rel)
{
	char *dir = xasprintf("%s/%s", root, rel);
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		rb_die("%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char *p;
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		p = xasprintf("%s/%s", rel, de->d_name);
		{
			char *full = xasprintf("%s/%s", root, p);
			if (lstat(full, &st) != 0)
				rb_die("%s: %s", full, strerror(errno));
			free(full);
		}
		if (S_ISDIR(st.st_mode)) {
			layout_walk(L, root, p);
		} else {
			int c = S_ISREG(st.st_mode) ? layout_class(p) : 0;
			L->total++;
			if (c == 1)
				L->opam++;
			else if (c == 2)
				L->files++;
			else {
				L->other++;
				if (L->nex < 20)
					L->ex[L->nex++] = xstrdup(p);
			}
		}
		free(p);
	}
	closedir(d);
}

/* The paths the real updates touch (diff --git a/P b/Q). */
static void
layout_patches(const char *patchdir, char **patches, size_t np, FILE *out)
{
	struct layout L = {0};

	for (size_t i = 0; i < np; i++) {
		char *pf = xasprintf("%s/%s", patchdir, patches[i]), *line, *save = NULL;
		size_t len;
		uint8_t *d = slurp(pf, &len);
		for (line = strtok_r((char *)d, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save)) {
			char *a, *b;
			if (strncmp(line, "diff --git a/", 13) != 0 ||
			    (b = strstr(line, " b/")) == NULL)
				continue;
			a = line + 13;
			*b = 0;
			b += 3;
			for (int k = 0; k < 2; k++) {
				const char *q = k ? b : a;
				int c = layout_class(q);
				if (k == 1 && strcmp(a, b) == 0)
					break;
				L.total++;
				if (c == 1)
					L.opam++;
				else if (c == 2)
					L.files++;
				else {
					L.other++;
					if (L.nex < 20)
						L.ex[L.nex++] = xasprintf("%s: %s", patches[i], q);
				}
			}
		}
		free(d);
		free(pf);
	}
	fprintf(out,
	    "paths touched by the %zu updates: %zu: %zu N/N.V/opam (or X/opam), %zu files/F, %zu "
	    "other\n",
	    np, L.total, L.opam, L.files, L.other);
	for (size_t i = 0; i < L.nex; i++) {
		fprintf(out, "  not in the opam layout: %s\n", L.ex[i]);
		free(L.ex[i]);
	}
}

static void
layout_report(const char *src, FILE *out)
{
	struct layout L = {0};

	layout_walk(&L, src, "packages");
	fprintf(out,
	    "opam layout of %s/packages: %zu files: %zu N/N.V/opam (or X/opam), %zu "
	    "N/N.V/files/F (one level), %zu other\n",
	    src, L.total, L.opam, L.files, L.other);
	for (size_t i = 0; i < L.nex; i++) {
		fprintf(out, "  not in the opam layout: %s\n", L.ex[i]);
		free(L.ex[i]);
	}
	if (L.other == 0)
		fprintf(out, "  every file fits the opam layout\n");
}

/* ---- signing ---- */

struct author {
	char *pkg; /* package directory name */
	char *id;  /* identity (keys/<id>) */
	struct rb_key *k;
	char hash[CX_SHA256_HEX + 1]; /* hash of its valid: what m1's delegation pins */
	uint64_t counter;
	int signed_once;
};

struct world {
	char created[21];
	int64_t now;
	struct rb_key *root, *m1, *snap, *ts;
	char m1hash[CX_SHA256_HEX + 1];
	uint64_t m1_counter, snap_counter, ts_counter;
	int author_model;
	struct author *au;
	size_t nau, capau;
};

static struct cx_resource *
targets_res(struct cx_arena *a, const char *id, const struct rb_key *k, const char *created,
    uint64_t counter)
{
	struct cx_resource *r = rb_new(a, CX_R_TARGETS, id, created);
	struct cx_keyref lr = rb_local(id);

	rb_add_key(a, r, k);
	r->valid = rb_quorum(a, 1, &lr, 1);
	r->counter = counter;
	return r;
}

static int
id_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_' || c == '-';
}

static struct author *
author_find(struct world *w, const char *pkg)
{
	for (size_t i = 0; i < w->nau; i++)
		if (strcmp(w->au[i].pkg, pkg) == 0)
			return &w->au[i];
	return NULL;
}

static struct author *
author_add(struct world *w, const char *pkg)
{
	struct author *x;
	char *id = xasprintf("a-%s", pkg);
	struct cx_arena a;
	struct cx_resource *r;

	/* identifiers are [A-Za-z0-9_-]: package names may have '+' and '.' */
	for (char *p = id; *p; p++)
		if (!id_char((unsigned char)*p))
			*p = '_';
	for (size_t i = 0, dup = 1; i < w->nau; i++)
		if (strcmp(w->au[i].id, id) == 0) {
			char *id2 = xasprintf("%s-%zu", id, ++dup);
			free(id);
			id = id2;
			i = (size_t)-1; /* restart */
		}
	if (w->nau == w->capau)
		w->au =
		    xrealloc(w->au, (w->capau = w->capau ? 2 * w->capau : 1024) * sizeof(*w->au));
	x = &w->au[w->nau++];
	memset(x, 0, sizeof(*x));
	x->pkg = xstrdup(pkg);
	x->id = id;
	x->k = rb_key_gen(id, CX_KEY_ED25519);
	cx_arena_init(&a, 0);
	r = targets_res(&a, id, x->k, w->created, 0);
	rb_key_hash(r, x->hash);
	cx_arena_free(&a);
	return x;
}

static void
sign_author(struct world *w, const char *dir, struct author *x)
{
	struct cx_arena a;
	struct cx_resource *r;
	char *sub = xasprintf("packages/%s", x->pkg), *full = xasprintf("%s/%s", dir, sub);
	char *rel = xasprintf("keys/%s", x->id);

	if (x->signed_once)
		x->counter++;
	x->signed_once = 1;
	cx_arena_init(&a, 0);
	r = targets_res(&a, x->id, x->k, w->created, x->counter);
	if (exists(full))
		rb_add_targets_below(&a, r, dir, sub);
	rb_sign(&a, r, x->k, w->created);
	rb_write(r, dir, rel);
	cx_arena_free(&a);
	free(sub);
	free(full);
	free(rel);
}

static int
author_cmp(const void *a, const void *b)
{
	return strcmp(((const struct author *)a)->pkg, ((const struct author *)b)->pkg);
}

/* m1: the single maintainer.  Single model: it lists every file under packages/.
 * Author model: no targets, one delegation packages/<pkg> per author. */
static void
sign_m1(struct world *w, const char *dir, int first)
{
	struct cx_arena a;
	struct cx_resource *r;

	if (!first)
		w->m1_counter++;
	cx_arena_init(&a, 0);
	r = targets_res(&a, "m1", w->m1, w->created, w->m1_counter);
	if (!w->author_model) {
		rb_add_targets_below(&a, r, dir, "packages");
	} else {
		struct cx_delegation *d;
		qsort(w->au, w->nau, sizeof(*w->au), author_cmp);
		d = cx_arena_alloc(&a, (w->nau + 1) * sizeof(*d));
		if (d == NULL)
			rb_die("out of memory");
		for (size_t i = 0; i < w->nau; i++) {
			struct cx_keyref ref = rb_remote(w->au[i].id, w->au[i].hash, 0);
			char *p = xasprintf("packages/%s", w->au[i].pkg);
			d[i].paths = cx_arena_alloc(&a, sizeof(*d[i].paths));
			if (d[i].paths == NULL || (d[i].paths[0] = cx_arena_strdup(&a, p)) == NULL)
				rb_die("out of memory");
			d[i].npaths = 1;
			d[i].valid = rb_quorum(&a, 1, &ref, 1);
			d[i].terminating = 1;
			free(p);
		}
		r->dels = d;
		r->ndels = w->nau;
	}
	rb_sign(&a, r, w->m1, w->created);
	rb_write(r, dir, "keys/m1");
	cx_arena_free(&a);
}

static void
sign_root(struct world *w, const char *dir)
{
	struct cx_arena a;
	struct cx_resource *r, *m1;
	struct cx_keyref lr = rb_local("root"), ref;

	cx_arena_init(&a, 0);
	m1 = targets_res(&a, "m1", w->m1, w->created, 0);
	rb_key_hash(m1, w->m1hash);
	r = rb_new(&a, CX_R_ROOT, "root", w->created);
	rb_add_key(&a, r, w->root);
	r->valid = rb_quorum(&a, 1, &lr, 1);
	ref = rb_remote("m1", w->m1hash, 0);
	r->role_maintainer = rb_quorum(&a, 1, &ref, 1);
	ref = rb_remote("snap", w->snap->keyid, 0);
	r->role_snapshot = rb_quorum(&a, 1, &ref, 1);
	ref = rb_remote("timestamp", w->ts->keyid, 0);
	r->role_timestamp = rb_quorum(&a, 1, &ref, 1);
	r->counter = 0;
	rb_sign(&a, r, w->root, w->created);
	rb_write(r, dir, "root");
	cx_arena_free(&a);
}

static void
sign_snap_ts(struct world *w, const char *dir, int first)
{
	struct cx_arena a;
	struct cx_resource *s, *t;
	uint8_t *d;
	size_t len;
	char *p;

	if (!first) {
		w->snap_counter++;
		w->ts_counter++;
	}
	cx_arena_init(&a, 0);
	s = rb_new(&a, CX_R_SNAPSHOT, "snap", w->created);
	rb_add_key(&a, s, w->snap);
	s->counter = w->snap_counter;
	rb_add_targets_below(&a, s, dir, "keys");
	rb_sign(&a, s, w->snap, w->created);
	rb_write(s, dir, "snap");
	t = rb_new(&a, CX_R_TIMESTAMP, "timestamp", w->created);
	rb_add_key(&a, t, w->ts);
	t->counter = w->ts_counter;
	p = xasprintf("%s/snap", dir);
	d = slurp(p, &len);
	rb_add_target(&a, t, "snap", d, len);
	free(d);
	free(p);
	rb_sign(&a, t, w->ts, w->created);
	rb_write(t, dir, "timestamp");
	cx_arena_free(&a);
}

static void
world_init(struct world *w, int author_model, int64_t now)
{
	memset(w, 0, sizeof(*w));
	w->now = now;
	cx_time_format(now, w->created);
	w->author_model = author_model;
	w->root = rb_key_gen("root", CX_KEY_ED25519);
	w->m1 = rb_key_gen("m1", CX_KEY_ED25519);
	w->snap = rb_key_gen("snap", CX_KEY_ED25519);
	w->ts = rb_key_gen("timestamp", CX_KEY_ED25519);
}

static void
world_free(struct world *w)
{
	rb_key_free(w->root);
	rb_key_free(w->m1);
	rb_key_free(w->snap);
	rb_key_free(w->ts);
	for (size_t i = 0; i < w->nau; i++) {
		rb_key_free(w->au[i].k);
		free(w->au[i].pkg);
		free(w->au[i].id);
	}
	free(w->au);
}

/* Package names a git diff touches (packages/<name>/...), unique. */
static char **
touched_packages(const char *patchfile, size_t *n)
{
	size_t len, cap = 0;
	uint8_t *d = slurp(patchfile, &len);
	char **v = NULL, *line, *save = NULL;

	*n = 0;
	for (line = strtok_r((char *)d, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *p[2], *sp;
		if (strncmp(line, "diff --git ", 11) != 0)
			continue;
		p[0] = line + 11;
		if ((sp = strchr(p[0], ' ')) == NULL)
			rb_die("%s: cannot parse '%s'", patchfile, line);
		*sp = 0;
		p[1] = sp + 1;
		for (int k = 0; k < 2; k++) {
			char *q = p[k], *e;
			size_t i;
			if (strncmp(q, "a/packages/", 11) != 0 &&
			    strncmp(q, "b/packages/", 11) != 0)
				continue;
			q += 11;
			if ((e = strchr(q, '/')) == NULL)
				continue;
			*e = 0;
			for (i = 0; i < *n && strcmp(v[i], q) != 0; i++)
				;
			if (i == *n) {
				if (*n == cap)
					v = xrealloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));
				v[(*n)++] = xstrdup(q);
			}
		}
	}
	free(d);
	return v;
}

static void
verify_or_die(const char *dir, const struct world *w)
{
	const char *anchors[1] = {w->root->keyid};
	struct cx_verify_opts o = {0};
	struct cx_verify_result res;
	struct cx_repo *repo;
	struct cx_err e = {0};

	o.anchors = anchors;
	o.nanchors = 1;
	o.quorum = 1;
	o.root_name = "root";
	o.opam = 1;
	o.strict = 1;
	o.now = w->now;
	o.expiry = EXPIRY_LARGE;
	if (cx_repo_open(&repo, dir, &e) != 0 || cx_verify_full(repo, &o, &res, &e) != 0) {
		fprintf(
		    stderr, "bench: the verifier REJECTS the freshly signed %s: %s\n", dir, e.msg);
		exit(1);
	}
	cx_repo_close(repo);
}

/* Signs one model: OUT/<name>/base, base.tar.gz, upd/NNN.diff. */
static void
prepare_model(const char *src, const char *patchdir, const char *out, const char *name,
    int author_model, int64_t now, char **patches, size_t npatches, FILE *meta)
{
	struct world w;
	char *md = xasprintf("%s/%s", out, name);
	double t0 = now_mono(), t1;

	world_init(&w, author_model, now);
	sh(1, "rm -rf '%s' && mkdir -p '%s/upd' && cp -al '%s' '%s/base'", md, md, src, md);
	{
		char *base = xasprintf("%s/base", md);
		if (author_model) {
			size_t n;
			char *pk = xasprintf("%s/packages", base);
			char **pkgs = list_dir(pk, &n, 1);
			for (size_t i = 0; i < n; i++)
				author_add(&w, pkgs[i]);
			for (size_t i = 0; i < w.nau; i++)
				sign_author(&w, base, &w.au[i]);
			free_list(pkgs, n);
			free(pk);
		}
		sign_root(&w, base);
		t1 = now_mono();
		sign_m1(&w, base, 1);
		sign_snap_ts(&w, base, 1);
		printf(
		    "  %s: signed base (%zu authors) in %.2f s (m1 + snapshot + timestamp: %.2f s)\n",
		    name, w.nau, now_mono() - t0, now_mono() - t1);
		fflush(stdout);
		t1 = now_mono();
		verify_or_die(base, &w);
		printf("  %s: base verifies (%.2f s)\n", name, now_mono() - t1);
		sh(1, "tar czf '%s/base.tar.gz' -C '%s' base", md, md);
		free(base);
	}
	fprintf(meta, "%s_anchor=%s\n%s_authors=%zu\n", name, w.root->keyid, name, w.nau);
	/* A: state i-1, B: state i.  B gets the real patch and is re-signed; A
	 * gets our diff, which proves the diff reproduces B. */
	sh(1, "cd '%s' && cp -al base A && cp -al base B", md);
	t1 = now_mono();
	for (size_t i = 0; i < npatches; i++) {
		char *pf = xasprintf("%s/%s", patchdir, patches[i]);
		char *B = xasprintf("%s/B", md);
		sh(1, "patch -p1 -s -f -d '%s' < '%s'", B, pf);
		if (author_model) {
			size_t n;
			char **pk = touched_packages(pf, &n);
			int newauth = 0;
			for (size_t j = 0; j < n; j++) {
				struct author *x = author_find(&w, pk[j]);
				if (x == NULL) {
					x = author_add(&w, pk[j]);
					newauth = 1;
				}
				sign_author(&w, B, x);
			}
			if (newauth)
				sign_m1(&w, B, 0);
			free_list(pk, n);
		} else {
			sign_m1(&w, B, 0);
		}
		sign_snap_ts(&w, B, 0);
		sh(3, "cd '%s' && diff -ruaN A B > 'upd/%03zu.diff'", md, i + 1);
		sh(1, "cd '%s' && patch -p1 -s -f -d A < 'upd/%03zu.diff'", md, i + 1);
		free(pf);
		free(B);
		if ((i + 1) % 10 == 0) {
			printf("  %s: %zu/%zu updates signed (%.1f s)\n", name, i + 1, npatches,
			    now_mono() - t1);
			fflush(stdout);
		}
	}
	/* the chain of diffs must reproduce the re-signed tree exactly */
	sh(1, "cd '%s' && diff -r A B > /dev/null", md);
	t1 = now_mono();
	{
		char *B = xasprintf("%s/B", md);
		verify_or_die(B, &w);
		free(B);
	}
	printf("  %s: final state verifies (%.2f s)\n", name, now_mono() - t1);
	sh(1, "cd '%s' && rm -rf A B", md);
	world_free(&w);
	free(md);
}

static char **patch_list(const char *patchdir, size_t *np);

static int
cmd_prepare(int argc, char **argv)
{
	const char *src, *patchdir, *out;
	char **patches, *p;
	size_t np;
	FILE *f;
	int64_t now = (int64_t)time(NULL);
	char created[21];

	if (argc != 5)
		rb_die("usage: bench_verify prepare SRC PATCHDIR OUT");
	src = argv[2];
	patchdir = argv[3];
	out = argv[4];
	patches = patch_list(patchdir, &np);
	if (np == 0 || np > NUPDATES_MAX)
		rb_die("%s: %zu patches", patchdir, np);
	sh(1, "mkdir -p '%s' && rm -f '%s/.done'", out, out);
	p = xasprintf("%s/layout.txt", out);
	if ((f = fopen(p, "w")) == NULL)
		rb_die("%s: %s", p, strerror(errno));
	layout_report(src, f);
	layout_patches(patchdir, patches, np, f);
	fclose(f);
	free(p);
	p = xasprintf("%s/meta", out);
	if ((f = fopen(p, "w")) == NULL)
		rb_die("%s: %s", p, strerror(errno));
	cx_time_format(now, created);
	fprintf(f, "now=%" PRId64 "\ncreated=%s\nupdates=%zu\n", now, created, np);
	prepare_model(src, patchdir, out, "single", 0, now, patches, np, f);
	prepare_model(src, patchdir, out, "author", 1, now, patches, np, f);
	fclose(f);
	free(p);
	sh(1, "touch '%s/.done'", out);
	free_list(patches, np);
	return 0;
}

/* ---- floors ---- */

struct fstat_acc {
	size_t files;
	uint64_t bytes;
};

struct fbuf {
	uint8_t *d;
	size_t cap;
};

static void
hash_fd(int fd, struct fbuf *b, struct fstat_acc *acc)
{
	struct stat st;
	size_t off = 0;
	uint8_t h[CX_SHA256_LEN];

	if (fstat(fd, &st) != 0)
		rb_die("fstat: %s", strerror(errno));
	if ((size_t)st.st_size + 1 > b->cap)
		b->d = xrealloc(b->d, b->cap = (size_t)st.st_size + 65536);
	for (;;) {
		ssize_t n = read(fd, b->d + off, b->cap - off);
		if (n < 0)
			rb_die("read: %s", strerror(errno));
		if (n == 0)
			break;
		off += (size_t)n;
		if (off == b->cap)
			b->d = xrealloc(b->d, b->cap *= 2);
	}
	cx_sha256(b->d, off, h);
	acc->files++;
	acc->bytes += off;
}

/* A plain recursive readdir/openat walk that reads and hashes every regular file. */
static void
floor_walk_fd(int dfd, struct fbuf *b, struct fstat_acc *acc)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;

	if (d == NULL)
		rb_die("fdopendir: %s", strerror(errno));
	while ((de = readdir(d)) != NULL) {
		int fd;
		if (de->d_name[0] == '.' &&
		    (de->d_name[1] == 0 || (de->d_name[1] == '.' && de->d_name[2] == 0)))
			continue;
		if (de->d_type == DT_DIR) {
			if ((fd = openat(dirfd(d), de->d_name,
			         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
				rb_die("%s: %s", de->d_name, strerror(errno));
			floor_walk_fd(fd, b, acc);
		} else if (de->d_type == DT_REG) {
			if ((fd = openat(dirfd(d), de->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) <
			    0)
				rb_die("%s: %s", de->d_name, strerror(errno));
			hash_fd(fd, b, acc);
			close(fd);
		} else {
			rb_die("%s: not a regular file or directory", de->d_name);
		}
	}
	closedir(d);
}

struct pwalk {
	int rootfd;
	char **jobs; /* paths relative to rootfd: top-level dirs' entries */
	unsigned char *isdir;
	size_t njobs;
	atomic_size_t next;
	struct fstat_acc acc[16];
};

static void *
pwalk_thread(void *arg)
{
	struct pwalk *p = ((void **)arg)[0];
	struct fstat_acc *acc = ((void **)arg)[1];
	struct fbuf b = {0};
	size_t j;

	while ((j = atomic_fetch_add(&p->next, 1)) < p->njobs) {
		int fd = openat(p->rootfd, p->jobs[j],
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (p->isdir[j] ? O_DIRECTORY : 0));
		if (fd < 0)
			rb_die("%s: %s", p->jobs[j], strerror(errno));
		if (p->isdir[j])
			floor_walk_fd(fd, &b, acc);
		else {
			hash_fd(fd, &b, acc);
			close(fd);
		}
	}
	free(b.d);
	return NULL;
}

/* Jobs: every entry of every top-level directory, and the top-level files. */
static void
floor_walk(const char *dir, unsigned nth, struct fstat_acc *tot)
{
	struct pwalk p;
	pthread_t th[16];
	void *args[16][2];
	DIR *d;
	struct dirent *de;
	size_t cap = 0;

	memset(&p, 0, sizeof(p));
	if ((p.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		rb_die("%s: %s", dir, strerror(errno));
	if (nth == 1) {
		struct fbuf b = {0};
		floor_walk_fd(p.rootfd, &b, tot);
		free(b.d);
		return;
	}
	if ((d = opendir(dir)) == NULL)
		rb_die("%s: %s", dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (de->d_type == DT_DIR) {
			char *sub = xasprintf("%s/%s", dir, de->d_name);
			DIR *d2 = opendir(sub);
			struct dirent *e2;
			if (d2 == NULL)
				rb_die("%s: %s", sub, strerror(errno));
			while ((e2 = readdir(d2)) != NULL) {
				if (strcmp(e2->d_name, ".") == 0 || strcmp(e2->d_name, "..") == 0)
					continue;
				if (p.njobs == cap) {
					cap = cap ? 2 * cap : 8192;
					p.jobs = xrealloc(p.jobs, cap * sizeof(*p.jobs));
					p.isdir = xrealloc(p.isdir, cap);
				}
				p.jobs[p.njobs] = xasprintf("%s/%s", de->d_name, e2->d_name);
				p.isdir[p.njobs++] = e2->d_type == DT_DIR;
			}
			closedir(d2);
			free(sub);
		} else {
			if (p.njobs == cap) {
				cap = cap ? 2 * cap : 8192;
				p.jobs = xrealloc(p.jobs, cap * sizeof(*p.jobs));
				p.isdir = xrealloc(p.isdir, cap);
			}
			p.jobs[p.njobs] = xstrdup(de->d_name);
			p.isdir[p.njobs++] = 0;
		}
	}
	closedir(d);
	if (nth > 16)
		nth = 16;
	for (unsigned i = 0; i < nth; i++) {
		args[i][0] = &p;
		args[i][1] = &p.acc[i];
		if (i > 0 && pthread_create(&th[i], NULL, pwalk_thread, args[i]) != 0)
			rb_die("pthread_create");
	}
	pwalk_thread(args[0]);
	for (unsigned i = 1; i < nth; i++)
		pthread_join(th[i], NULL);
	for (unsigned i = 0; i < nth; i++) {
		tot->files += p.acc[i].files;
		tot->bytes += p.acc[i].bytes;
	}
	for (size_t i = 0; i < p.njobs; i++)
		free(p.jobs[i]);
	free(p.jobs);
	free(p.isdir);
	close(p.rootfd);
}

struct tmem {
	const uint8_t *d;
	uint64_t size;
};

struct ptgz {
	struct tmem *m;
	size_t n;
	atomic_size_t next;
};

static void *
ptgz_thread(void *arg)
{
	struct ptgz *p = arg;
	size_t j;
	uint8_t h[CX_SHA256_LEN];

	while ((j = atomic_fetch_add(&p->next, 64)) < p->n)
		for (size_t k = j; k < j + 64 && k < p->n; k++)
			cx_sha256(p->m[k].d, p->m[k].size, h);
	return NULL;
}

static uint64_t
octal(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n && p[i] >= '0' && p[i] <= '7'; i++)
		v = v * 8 + (uint64_t)(p[i] - '0');
	return v;
}

/* Read the .tar.gz, inflate it whole with libdeflate, hash every regular member. */
static void
floor_tgz(const char *path, unsigned nth, struct fstat_acc *tot)
{
	size_t len, outlen, actual, off = 0, cap = 0;
	uint8_t *gz = slurp(path, &len), *tar;
	struct libdeflate_decompressor *dc = libdeflate_alloc_decompressor();
	struct ptgz p;
	pthread_t th[16];

	memset(&p, 0, sizeof(p));
	if (len < 18 || dc == NULL)
		rb_die("%s: too short", path);
	outlen = (size_t)gz[len - 4] | (size_t)gz[len - 3] << 8 | (size_t)gz[len - 2] << 16 |
	    (size_t)gz[len - 1] << 24;
	tar = xmalloc(outlen + 1);
	if (libdeflate_gzip_decompress(dc, gz, len, tar, outlen, &actual) != LIBDEFLATE_SUCCESS)
		rb_die("%s: inflate failed (single member gzip expected)", path);
	libdeflate_free_decompressor(dc);
	free(gz);
	while (off + 512 <= actual) {
		const uint8_t *hdr = tar + off;
		uint64_t size;
		if (hdr[0] == 0)
			break;
		size = octal(hdr + 124, 12);
		off += 512;
		if (hdr[156] == '0' || hdr[156] == 0) {
			if (p.n == cap)
				p.m = xrealloc(p.m, (cap = cap ? 2 * cap : 65536) * sizeof(*p.m));
			p.m[p.n].d = tar + off;
			p.m[p.n++].size = size;
			tot->bytes += size;
		}
		off += (size + 511) & ~(uint64_t)511;
	}
	tot->files = p.n;
	if (nth > 16)
		nth = 16;
	for (unsigned i = 1; i < nth; i++)
		if (pthread_create(&th[i], NULL, ptgz_thread, &p) != 0)
			rb_die("pthread_create");
	ptgz_thread(&p);
	for (unsigned i = 1; i < nth; i++)
		pthread_join(th[i], NULL);
	free(p.m);
	free(tar);
}

/* Incremental floor: read and hash the update and the old version of every file it touches. */
static void
floor_incr(const char *old, const char *patchfile, struct fstat_acc *tot)
{
	size_t len;
	uint8_t *d = slurp(patchfile, &len), h[CX_SHA256_LEN];
	char *line, *save = NULL;
	struct fbuf b = {0};

	cx_sha256(d, len, h);
	tot->bytes += len;
	for (line = strtok_r((char *)d, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *p, *sp, *full;
		int fd;
		if (strncmp(line, "diff ", 5) != 0 || (p = strstr(line, " A/")) == NULL)
			continue;
		p += 3;
		if ((sp = strchr(p, ' ')) != NULL)
			*sp = 0;
		full = xasprintf("%s/%s", old, p);
		if ((fd = open(full, O_RDONLY | O_CLOEXEC)) >= 0) {
			hash_fd(fd, &b, tot);
			close(fd);
		}
		free(full);
	}
	free(b.d);
	free(d);
}

/* ---- one measured run (child) ---- */

struct result {
	double wall, cpu;
	int rc;
	long n; /* files */
	char msg[1024];
};

static void
opts_init(struct cx_verify_opts *o, const char **anchor, int64_t now)
{
	memset(o, 0, sizeof(*o));
	o->anchors = anchor;
	o->nanchors = 1;
	o->quorum = 1;
	o->root_name = "root";
	o->opam = 1;
	o->strict = 1;
	o->now = now;
	o->expiry = EXPIRY_LARGE;
}

static int
cmd_child(int argc, char **argv)
{
	struct result res;
	const char *mode;
	int fd;
	double w0, c0;

	if (argc < 4)
		rb_die("usage: bench_verify child MODE FD ...");
	mode = argv[2];
	fd = atoi(argv[3]);
	memset(&res, 0, sizeof(res));
	w0 = now_mono();
	c0 = now_cpu();
	if (strcmp(mode, "noop") == 0) {
		/* nothing: the process's own footprint */
	} else if (strcmp(mode, "walk1") == 0 || strcmp(mode, "walk2") == 0) {
		struct fstat_acc acc = {0};
		floor_walk(argv[4], mode[4] == '1' ? 1 : 2, &acc);
		res.n = (long)acc.files;
	} else if (strcmp(mode, "tgz1") == 0 || strcmp(mode, "tgz2") == 0) {
		struct fstat_acc acc = {0};
		floor_tgz(argv[4], mode[3] == '1' ? 1 : 2, &acc);
		res.n = (long)acc.files;
	} else if (strcmp(mode, "incrfloor") == 0) {
		struct fstat_acc acc = {0};
		floor_incr(argv[4], argv[5], &acc);
		res.n = (long)acc.files;
	} else if (strcmp(mode, "cxwalk") == 0) {
		struct cx_repo *r;
		struct cx_file_list fl;
		struct cx_err e = {0};
		if ((res.rc = cx_repo_open(&r, argv[4], &e)) == 0) {
			if ((res.rc = cx_repo_walk(r, "", &fl, &e)) == 0) {
				res.n = (long)fl.n;
				cx_file_list_free(&fl);
			}
			cx_repo_close(r);
		}
		snprintf(res.msg, sizeof(res.msg), "%s", res.rc ? e.msg : "");
	} else if (strcmp(mode, "full") == 0) {
		/* full DIR ANCHOR NOW */
		const char *anchor[1] = {argv[5]};
		struct cx_verify_opts o;
		struct cx_verify_result vr;
		struct cx_repo *r;
		struct cx_err e = {0};
		opts_init(&o, anchor, strtoll(argv[6], NULL, 10));
		if ((res.rc = cx_repo_open(&r, argv[4], &e)) == 0) {
			res.rc = cx_verify_full(r, &o, &vr, &e);
			res.n = (long)vr.ndata;
			cx_repo_close(r);
		}
		snprintf(res.msg, sizeof(res.msg), "%s", res.rc ? e.msg : "");
	} else if (strcmp(mode, "incr") == 0) {
		/* incr OLD PATCH ANCHOR NOW: what `conex verify --incremental` does */
		const char *anchor[1] = {argv[6]};
		struct cx_verify_opts o;
		struct cx_verify_result vr;
		struct cx_repo *r;
		struct cx_patch *p = NULL;
		struct cx_err e = {0};
		size_t len;
		uint8_t *d;
		opts_init(&o, anchor, strtoll(argv[7], NULL, 10));
		if ((res.rc = cx_repo_open(&r, argv[4], &e)) == 0) {
			d = slurp(argv[5], &len);
			if ((res.rc = cx_patch_parse(d, len, argv[5], &p, &e)) == 0) {
				res.rc = cx_verify_incremental(r, p, &o, &vr, &e);
				res.n = (long)p->nfiles;
				cx_patch_free(p);
			}
			free(d);
			cx_repo_close(r);
		}
		snprintf(res.msg, sizeof(res.msg), "%s", res.rc ? e.msg : "");
	} else {
		rb_die("unknown child mode %s", mode);
	}
	res.wall = now_mono() - w0;
	res.cpu = now_cpu() - c0;
	if (write(fd, &res, sizeof(res)) != (ssize_t)sizeof(res))
		rb_die("write result: %s", strerror(errno));
	return 0;
}

/* ---- the driver ---- */

struct meas {
	double wall, cpu;
	long rss_kb;
	int rc;
	long n;
	char msg[1024];
};

/* Runs argv (NULL-terminated) in a child.  Library cases (self != 0) report
 * their own wall/CPU time through a pipe; executables are timed from outside. */
static void
measure(char **argv, int self, struct meas *m)
{
	int pfd[2] = {-1, -1}, st;
	pid_t pid;
	struct rusage ru;
	double w0 = now_mono();

	memset(m, 0, sizeof(*m));
	/* library children write their result to fd 3 (child_argv passes "3") */
	if (self && pipe2(pfd, O_CLOEXEC) != 0)
		rb_die("pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0)
		rb_die("fork: %s", strerror(errno));
	if (pid == 0) {
		if (self) {
			if (dup2(pfd[1], 3) != 3)
				_exit(127);
		} else {
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 1);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (self)
		close(pfd[1]);
	if (self) {
		struct result r;
		ssize_t n = read(pfd[0], &r, sizeof(r));
		close(pfd[0]);
		if (n == (ssize_t)sizeof(r)) {
			m->wall = r.wall;
			m->cpu = r.cpu;
			m->rc = r.rc;
			m->n = r.n;
			memcpy(m->msg, r.msg, sizeof(m->msg));
		} else {
			m->rc = -100;
			snprintf(m->msg, sizeof(m->msg), "child died before reporting");
		}
	}
	if (wait4(pid, &st, 0, &ru) != pid)
		rb_die("wait4: %s", strerror(errno));
	if (!self) {
		m->wall = now_mono() - w0;
		m->cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		m->rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		if (m->rc != 0)
			snprintf(m->msg, sizeof(m->msg), "exit status %d", m->rc);
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		m->rc = m->rc ? m->rc : -101;
		snprintf(m->msg, sizeof(m->msg), "child exited abnormally (status %d)", st);
	}
	m->rss_kb = ru.ru_maxrss;
}

struct stat3 {
	double best, med, cpu_med, cpu_best;
	long rss_kb; /* max over runs */
	int rc;
	long n;
	char msg[1024];
};

static int reps = 3;

/* 1 warm-up (not counted) unless warm == 0, then reps runs: best and median of wall. */
static void
run_case(char **argv, int self, int warm, struct stat3 *s)
{
	struct meas m[32];
	double w[32];
	int k;

	memset(s, 0, sizeof(*s));
	if (warm) {
		measure(argv, self, &m[0]);
		if (m[0].rc != 0) {
			s->rc = m[0].rc;
			memcpy(s->msg, m[0].msg, sizeof(s->msg));
			s->rss_kb = m[0].rss_kb;
			return;
		}
	}
	for (k = 0; k < reps; k++) {
		measure(argv, self, &m[k]);
		if (m[k].rc != 0) {
			s->rc = m[k].rc;
			memcpy(s->msg, m[k].msg, sizeof(s->msg));
		}
		w[k] = m[k].wall;
		if (m[k].rss_kb > s->rss_kb)
			s->rss_kb = m[k].rss_kb;
	}
	s->n = m[0].n;
	qsort(w, (size_t)reps, sizeof(double), cmp_dbl);
	s->best = w[0];
	s->med = w[reps / 2];
	for (k = 0; k < reps; k++) {
		if (m[k].wall == s->best)
			s->cpu_best = m[k].cpu;
		if (m[k].wall == s->med)
			s->cpu_med = m[k].cpu;
	}
}

static char *self_exe;

/* argv for a library/floor child: self child MODE FD args... */
static char **
child_argv(const char *mode, const char *a1, const char *a2, const char *a3, const char *a4)
{
	static char *v[10];

	v[0] = self_exe;
	v[1] = "child";
	v[2] = (char *)mode;
	v[3] = "3";
	v[4] = (char *)a1;
	v[5] = (char *)a2;
	v[6] = (char *)a3;
	v[7] = (char *)a4;
	v[8] = NULL;
	return v;
}

static void
hr(void)
{
	printf("%.*s\n", 132,
	    "----------------------------------------------------------------------------------"
	    "--------------------------------------------------");
}

static void
row(const char *name, const char *bar, const struct stat3 *s, double floor, double upstream,
    double up_rss_mb)
{
	char fl[32] = "", up[32] = "", uprss[32] = "";

	if (s->rc != 0) {
		printf("%-44s FAILED (%d): %s\n", name, s->rc, s->msg);
		return;
	}
	if (floor > 0)
		snprintf(fl, sizeof(fl), "%.1fx", s->best / floor);
	if (upstream > 0)
		snprintf(up, sizeof(up), "%.1fx faster", upstream / s->best);
	if (up_rss_mb > 0)
		snprintf(uprss, sizeof(uprss), " / %.1fx less RSS",
		    up_rss_mb * 1024.0 / (double)s->rss_kb);
	printf("%-44s %9.4f %9.4f %9.4f %8.1f %7s  %-16s %s%s\n", name, s->best, s->med,
	    s->cpu_best, (double)s->rss_kb / 1024.0, fl, bar, up, uprss);
}

static void
header(void)
{
	hr();
	printf("%-44s %9s %9s %9s %8s %7s  %-16s %s\n", "case", "best s", "median s", "cpu s",
	    "RSS MB", "/floor", "bar", "vs upstream v1.0.0");
	hr();
}

struct incr_stats {
	double med_of_med, p90, max, med_of_best;
	struct stat3 small, big, small_cli, big_cli;
	long small_files, big_files, max_rss;
	size_t small_i, big_i, nfail, n;
	double floor_med;
};

static double
pct(double *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return v[i < n ? i : n - 1];
}

static long
diff_files(const char *pf)
{
	size_t len;
	uint8_t *d = slurp(pf, &len);
	long n = 0;

	for (size_t i = 0; i + 5 <= len; i++)
		if ((i == 0 || d[i - 1] == '\n') && memcmp(d + i, "diff ", 5) == 0)
			n++;
	free(d);
	return n;
}

static int incr_reps = 1;

/*
 * Rolls a copy of base through every update: time it, then apply it with
 * patch(1).  Every update is timed incr_reps times (default 1: the series is
 * the sample); the smallest and the largest update get a warm-up and reps runs,
 * through the library and through the CLI.
 */
static void
incr_series(const char *bdir, const char *model, const char *anchor, const char *nowstr,
    const char *created, const char *conex, size_t nupd, struct incr_stats *st, FILE *csv)
{
	char *cur = xasprintf("%s/run-%s", bdir, model), tbuf[128];
	double *meds = xmalloc(nupd * sizeof(double)), *bests = xmalloc(nupd * sizeof(double));
	double *floors = xmalloc(nupd * sizeof(double));
	long *nf = xmalloc(nupd * sizeof(long));
	size_t nok = 0;
	int saved = reps;

	memset(st, 0, sizeof(*st));
	st->small_files = -1;
	for (size_t i = 0; i < nupd; i++) {
		char *pf = xasprintf("%s/%s/upd/%03zu.diff", bdir, model, i + 1);
		nf[i] = diff_files(pf);
		free(pf);
		/* the smallest with at least 3 files (upstream's figure is for a 3-file update) */
		if (nf[i] >= 3 && (st->small_files < 0 || nf[i] < st->small_files)) {
			st->small_files = nf[i];
			st->small_i = i + 1;
		}
		if (nf[i] > st->big_files) {
			st->big_files = nf[i];
			st->big_i = i + 1;
		}
	}
	snprintf(tbuf, sizeof(tbuf), "sha256=%s", anchor);
	sh(1, "rm -rf '%s' && cp -al '%s/%s/base' '%s'", cur, bdir, model, cur);
	for (size_t i = 0; i < nupd; i++) {
		char *pf = xasprintf("%s/%s/upd/%03zu.diff", bdir, model, i + 1);
		int special = i + 1 == st->small_i || i + 1 == st->big_i;
		struct stat3 s, fs;
		reps = special ? saved : incr_reps;
		run_case(child_argv("incr", cur, pf, anchor, nowstr), 1, special || i == 0, &s);
		reps = 1;
		run_case(child_argv("incrfloor", cur, pf, NULL, NULL), 1, 0, &fs);
		reps = saved;
		if (special) {
			char *v[] = {(char *)conex, "verify", "-q", "--no-state", "-t", tbuf,
			    "--incremental", "-r", cur, "--patch", pf, "--now", (char *)created,
			    "--expiry", "3153600000", NULL};
			run_case(v, 0, 1, i + 1 == st->small_i ? &st->small_cli : &st->big_cli);
			if (i + 1 == st->small_i)
				st->small = s;
			else
				st->big = s;
		}
		if (s.rc != 0) {
			printf("  %s update %03zu: REJECTED (%d): %s\n", model, i + 1, s.rc, s.msg);
			st->nfail++;
		} else {
			meds[nok] = s.med;
			floors[nok] = fs.best;
			bests[nok++] = s.best;
			if (s.rss_kb > st->max_rss)
				st->max_rss = s.rss_kb;
		}
		if (csv)
			fprintf(csv, "%s,%zu,%ld,%.6f,%.6f,%.6f,%.1f,%.6f,%d\n", model, i + 1,
			    nf[i], s.best, s.med, s.cpu_med, (double)s.rss_kb / 1024.0, fs.best,
			    s.rc);
		sh(1, "patch -p1 -s -f -d '%s' < '%s'", cur, pf);
		free(pf);
	}
	st->n = nok;
	if (nok) {
		qsort(meds, nok, sizeof(double), cmp_dbl);
		qsort(bests, nok, sizeof(double), cmp_dbl);
		qsort(floors, nok, sizeof(double), cmp_dbl);
		st->med_of_med = pct(meds, nok, 0.5);
		st->p90 = pct(meds, nok, 0.9);
		st->max = meds[nok - 1];
		st->med_of_best = pct(bests, nok, 0.5);
		st->floor_med = pct(floors, nok, 0.5);
	}
	sh(1, "rm -rf '%s'", cur);
	free(meds);
	free(bests);
	free(floors);
	free(nf);
	free(cur);
}

static char *
meta_get(const char *bdir, const char *key)
{
	char *p = xasprintf("%s/meta", bdir), line[512];
	FILE *f = fopen(p, "r");
	size_t kl = strlen(key);

	if (f == NULL)
		rb_die("%s: %s (run prepare first)", p, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
			line[strcspn(line, "\n")] = 0;
			fclose(f);
			free(p);
			return xstrdup(line + kl + 1);
		}
	}
	rb_die("%s: no %s", p, key);
}

static void
incr_row(
    const char *model, const struct incr_stats *st, const char *bar, double up_small, double up_big)
{
	char name[96];

	if (st->n == 0) {
		printf("%s incremental: every update was rejected\n", model);
		return;
	}
	snprintf(name, sizeof(name), "%s incr., median over %zu updates", model, st->n);
	printf("%-44s %9s %9.4f %9s %8.1f %7.0fx  %-16s\n", name, "", st->med_of_med, "",
	    (double)st->max_rss / 1024.0, st->med_of_med / st->floor_med, bar);
	snprintf(name, sizeof(name), "%s incr., p90 / max over updates", model);
	printf("%-44s %9s %9.4f %9.4f (max)\n", name, "", st->p90, st->max);
	snprintf(name, sizeof(name), "%s incr. #%03zu (%ld files): library", model, st->small_i,
	    st->small_files);
	row(name, "", &st->small, 0, up_small, 0);
	snprintf(name, sizeof(name), "%s incr. #%03zu (%ld files): CLI", model, st->small_i,
	    st->small_files);
	row(name, "", &st->small_cli, 0, up_small, 0);
	snprintf(name, sizeof(name), "%s incr. #%03zu (%ld files): library", model, st->big_i,
	    st->big_files);
	row(name, "", &st->big, 0, up_big, 0);
	snprintf(name, sizeof(name), "%s incr. #%03zu (%ld files): CLI", model, st->big_i,
	    st->big_files);
	row(name, "", &st->big_cli, 0, up_big, 0);
	if (st->nfail)
		printf("  %zu updates were REJECTED (see above)\n", st->nfail);
}

static int
cmd_run(int argc, char **argv)
{
	const char *bdir, *conex;
	char *nowstr, *created, *a1, *a2, *nupds, *p;
	char *sdir, *stgz, *adir, *atgz, *cli[16], tbuf[128];
	size_t nupd;
	struct stat3 noop, w1, w2, cxw, t1, t2, lib, clis, libt, clit, alib, acli, alibt;
	struct incr_stats is, ia;
	const char *env;
	int do_incr = 1;
	FILE *csv = NULL;
	double t0 = now_mono();

	if (argc != 4)
		rb_die("usage: bench_verify run OUT CONEX_BINARY");
	bdir = argv[2];
	conex = argv[3];
	if ((env = getenv("BENCH_REPS")) != NULL && atoi(env) >= 1 && atoi(env) <= 31)
		reps = atoi(env);
	if ((env = getenv("BENCH_INCR_REPS")) != NULL && atoi(env) >= 1 && atoi(env) <= 31)
		incr_reps = atoi(env);
	if ((env = getenv("BENCH_INCR")) != NULL && strcmp(env, "0") == 0)
		do_incr = 0;
	self_exe = realpath("/proc/self/exe", NULL);
	nowstr = meta_get(bdir, "now");
	created = meta_get(bdir, "created");
	a1 = meta_get(bdir, "single_anchor");
	a2 = meta_get(bdir, "author_anchor");
	nupds = meta_get(bdir, "updates");
	nupd = strtoul(nupds, NULL, 10);
	sdir = xasprintf("%s/single/base", bdir);
	stgz = xasprintf("%s/single/base.tar.gz", bdir);
	adir = xasprintf("%s/author/base", bdir);
	atgz = xasprintf("%s/author/base.tar.gz", bdir);

	printf("Every case runs in a fresh process: 1 warm-up run, then %d timed runs; best and "
	       "median wall time,\nCPU time (user+sys, all threads) of the best run, peak RSS "
	       "(max over the runs, wait4 ru_maxrss).\nLibrary cases time cx_repo_open + verify "
	       "inside the child; CLI cases are timed from fork to exit.\n",
	    reps);
	p = xasprintf("%s/layout.txt", bdir);
	{
		size_t len;
		uint8_t *d = slurp(p, &len);
		printf("\n%s\n", (char *)d);
		free(d);
	}
	free(p);

	run_case(child_argv("noop", NULL, NULL, NULL, NULL), 1, 1, &noop);
	run_case(child_argv("walk1", sdir, NULL, NULL, NULL), 1, 1, &w1);
	run_case(child_argv("walk2", sdir, NULL, NULL, NULL), 1, 1, &w2);
	run_case(child_argv("cxwalk", sdir, NULL, NULL, NULL), 1, 1, &cxw);
	run_case(child_argv("tgz1", stgz, NULL, NULL, NULL), 1, 1, &t1);
	run_case(child_argv("tgz2", stgz, NULL, NULL, NULL), 1, 1, &t2);
	run_case(child_argv("full", sdir, a1, nowstr, NULL), 1, 1, &lib);
	run_case(child_argv("full", stgz, a1, nowstr, NULL), 1, 1, &libt);
	snprintf(tbuf, sizeof(tbuf), "sha256=%s", a1);
	{
		char *v[] = {(char *)conex, "verify", "-q", "--no-state", "-t", tbuf, "--dir", sdir,
		    "--now", created, "--expiry", "3153600000", NULL};
		memcpy(cli, v, sizeof(v));
	}
	run_case(cli, 0, 1, &clis);
	cli[7] = stgz;
	run_case(cli, 0, 1, &clit);
	run_case(child_argv("full", adir, a2, nowstr, NULL), 1, 1, &alib);
	run_case(child_argv("full", atgz, a2, nowstr, NULL), 1, 1, &alibt);
	snprintf(tbuf, sizeof(tbuf), "sha256=%s", a2);
	cli[7] = adir;
	run_case(cli, 0, 1, &acli);

	printf("\nfloors (same run, same files: %ld files in the repository directory)\n", w1.n);
	header();
	row("process footprint (exec, nothing)", "", &noop, 0, 0, 0);
	row("floor: readdir/openat walk + SHA-256, 1 thr", "", &w1, 0, 0, 0);
	row("floor: readdir/openat walk + SHA-256, 2 thr", "", &w2, 0, 0, 0);
	row("cx_repo_walk of the repository (library)", "", &cxw, w2.best, 0, 0);
	row("floor: .tar.gz inflate + SHA-256, 1 thr", "", &t1, 0, 0, 0);
	row("floor: .tar.gz inflate + SHA-256, 2 thr", "", &t2, 0, 0, 0);
	printf("\nfull verification (ratio to the best floor: 2-thread walk, 2-thread tgz)\n");
	header();
	row("1 single maintainer, dir: library", "<= 0.3 s, 64 MB", &lib, w2.best, 1.57, 182);
	row("1 single maintainer, dir: conex verify CLI", "<= 0.3 s, 64 MB", &clis, w2.best, 1.57,
	    182);
	row("1 single maintainer, .tar.gz: library", "<= 0.25 s", &libt, t2.best, 0, 0);
	row("1 single maintainer, .tar.gz: conex CLI", "<= 0.25 s", &clit, t2.best, 0, 0);
	{
		char name[64];
		snprintf(name, sizeof(name), "2 author model (%s ids), dir: library",
		    meta_get(bdir, "author_authors"));
		row(name, "<= 1.0 s", &alib, w2.best, 27.6, 0);
	}
	row("2 author model, dir: conex verify CLI", "<= 1.0 s", &acli, w2.best, 27.6, 0);
	row("2 author model, .tar.gz: library", "", &alibt, t2.best, 0, 0);
	fflush(stdout);

	if (do_incr) {
		p = xasprintf("%s/incremental.csv", bdir);
		if ((csv = fopen(p, "w")) != NULL)
			fprintf(csv,
			    "model,update,files,best_s,median_s,cpu_median_s,rss_mb,floor_best_s,rc\n");
		printf(
		    "\nincremental: %zu real updates, re-signed, as diff -ruaN (per-update data in %s)\n",
		    nupd, p);
		free(p);
		fflush(stdout);
		incr_series(bdir, "single", a1, nowstr, created, conex, nupd, &is, csv);
		incr_series(bdir, "author", a2, nowstr, created, conex, nupd, &ia, csv);
		if (csv)
			fclose(csv);
		header();
		incr_row("1 single", &is, "median <= 30 ms", 2.0, 9.0);
		incr_row("2 author", &ia, "median <= 30 ms", 25.4, 0);
	}
	printf("\nbench run took %.1f s\n", now_mono() - t0);
	return 0;
}

/* Lists the patches of a directory, sorted. */
static char **
patch_list(const char *patchdir, size_t *np)
{
	size_t nall;
	char **patches = list_dir(patchdir, &nall, 0);

	*np = 0;
	for (size_t i = 0; i < nall; i++) {
		size_t l = strlen(patches[i]);
		if (l > 6 && strcmp(patches[i] + l - 6, ".patch") == 0)
			patches[(*np)++] = patches[i];
		else
			free(patches[i]);
	}
	return patches;
}

static int
cmd_layout(int argc, char **argv)
{
	char **patches;
	size_t np;

	if (argc != 4)
		rb_die("usage: bench_verify layout SRC PATCHDIR");
	patches = patch_list(argv[3], &np);
	layout_report(argv[2], stdout);
	layout_patches(argv[3], patches, np, stdout);
	free_list(patches, np);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "prepare") == 0)
		return cmd_prepare(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "run") == 0)
		return cmd_run(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "layout") == 0)
		return cmd_layout(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "child") == 0)
		return cmd_child(argc, argv);
	fprintf(stderr, "usage: bench_verify prepare SRC PATCHDIR OUT | run OUT CONEX_BINARY\n");
	return 2;
}
