/*
 * Tarball backend: opam >= 2.6 keeps an HTTP repository as one .tar.gz.
 *
 * The whole archive is decompressed into memory with libdeflate (several
 * times faster than zlib's streaming inflate, and the budget for the 33k-file
 * opam-repository is a quarter second including hashing), parsed strictly
 * (ustar, GNU and pax headers, checksums verified, every size bounded), and
 * indexed by a path-sorted array: reads are a binary search, listings and
 * walks a contiguous range.  Walks hash the in-memory members on every core.
 *
 * Archive rules: member paths are validated with cx_path_check after leading
 * "./" segments (as `tar -C dir .` writes them) and a directory's trailing
 * '/' are dropped; any other bad path, a duplicate path, or a non-directory
 * with members below it rejects the archive.  Symlinks, hard links, devices
 * and FIFOs are kept as non-regular members: the archive opens, but reading,
 * listing or walking them is CX_EREJECT.  When every member lies under one
 * top-level directory, that directory is the repository root (as in
 * `opam-repository/...` or `default/...`); a repository always has files of
 * its own at the top (repo, root), so a real one is never mistaken for that.
 */
#include "conex/repo.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libdeflate.h>
#include <openssl/evp.h>

#define TAR_BLOCK    512
#define PAX_MAX      (1024u * 1024u) /* an extended header's data */
#define LONGLINK_MAX (64u * 1024u)   /* a GNU 'K' long link name */
#define HASH_CHUNK   32              /* entries a walker claims at a time */

enum tm_type { TM_REG = 1, TM_DIR, TM_SYMLINK, TM_HARDLINK, TM_SPECIAL };

struct tmember {
	const char *path; /* in arena, NUL-terminated */
	size_t off;       /* data offset in tar, TM_REG only */
	uint64_t size;
	uint32_t len; /* strlen(path) */
	uint8_t type;
};

struct tgz_repo {
	struct cx_repo base;
	uint8_t *tar; /* the decompressed archive */
	size_t tarlen;
	struct tmember *m; /* sorted by path */
	size_t n;
	struct cx_arena arena;
	char *name;
};

/* ---- decompression ---- */

/*
 * gzip members one after another (RFC 1952 allows several) until the input
 * ends; anything else after a member is an error, not ignored.  The output
 * buffer starts at the last member's ISIZE (exact for a single member) and
 * doubles on LIBDEFLATE_INSUFFICIENT_SPACE up to CX_REPO_TAR_MAX.
 */
static int
gunzip(const uint8_t *in, size_t inlen, uint8_t **outp, size_t *outlen, const char *name,
    struct cx_err *e)
{
	struct libdeflate_decompressor *dc;
	enum libdeflate_result lr;
	size_t cap, limit, used = 0, inoff = 0, ain, aout;
	uint8_t *buf = NULL, *nb;
	uint32_t isize;
	int rc = 0;

	*outp = NULL;
	*outlen = 0;
	if (inlen < 18)
		return cx_err_set(e, CX_EPARSE, "%s: truncated gzip data", name);
	isize = (uint32_t)in[inlen - 4] | (uint32_t)in[inlen - 3] << 8 |
	    (uint32_t)in[inlen - 2] << 16 | (uint32_t)in[inlen - 1] << 24;
	/*
	 * Deflate expands at most 1032:1, so the output is bounded by the input
	 * too: a corrupt ISIZE or a small bomb cannot make us reserve 2 GiB.
	 */
	limit = inlen > (CX_REPO_TAR_MAX - 65536) / 1032 ? CX_REPO_TAR_MAX : inlen * 1032 + 65536;
	cap = isize > 4096 ? isize : 4096;
	if (cap > limit)
		cap = limit;
	if ((dc = libdeflate_alloc_decompressor()) == NULL)
		return cx_err_set(e, CX_ENOMEM, "%s: out of memory", name);
	if ((buf = malloc(cap)) == NULL) {
		rc = cx_err_set(e, CX_ENOMEM, "%s: out of memory (%zu bytes)", name, cap);
		goto out;
	}
	while (inoff < inlen) {
		if (inlen - inoff < 2 || in[inoff] != 0x1f || in[inoff + 1] != 0x8b) {
			rc = cx_err_set(e, CX_EPARSE, "%s: garbage after the gzip data at byte %zu",
			    name, inoff);
			goto out;
		}
		lr = libdeflate_gzip_decompress_ex(
		    dc, in + inoff, inlen - inoff, buf + used, cap - used, &ain, &aout);
		if (lr == LIBDEFLATE_INSUFFICIENT_SPACE) {
			if (cap >= limit) {
				rc = cx_err_set(e, CX_ETOOBIG,
				    "%s: decompresses to more than %zu bytes", name, limit);
				goto out;
			}
			cap = cap > limit / 2 ? limit : cap * 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				rc = cx_err_set(
				    e, CX_ENOMEM, "%s: out of memory (%zu bytes)", name, cap);
				goto out;
			}
			buf = nb;
			continue;
		}
		if (lr != LIBDEFLATE_SUCCESS) {
			rc = cx_err_set(e, CX_EPARSE, "%s: corrupt gzip data (member at byte %zu)",
			    name, inoff);
			goto out;
		}
		inoff += ain;
		used += aout;
	}
	*outp = buf;
	*outlen = used;
	buf = NULL;
out:
	free(buf);
	libdeflate_free_decompressor(dc);
	return rc;
}

/* ---- tar headers ---- */

static int
all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			return 0;
	return 1;
}

/*
 * A numeric field: octal digits between optional leading spaces and trailing
 * spaces/NULs, or GNU base-256 (high bit set; negative values refused).
 */
static int
parse_num(const uint8_t *f, size_t n, uint64_t *v)
{
	size_t i = 0, start;

	*v = 0;
	if (f[0] & 0x80) {
		if (f[0] & 0x40)
			return -1;
		*v = f[0] & 0x3f;
		for (i = 1; i < n; i++) {
			if (*v > (UINT64_MAX >> 8))
				return -1;
			*v = *v << 8 | f[i];
		}
		return 0;
	}
	while (i < n && f[i] == ' ')
		i++;
	for (start = i; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
		if (*v > (UINT64_MAX >> 3))
			return -1;
		*v = *v << 3 | (uint64_t)(f[i] - '0');
	}
	if (i == start)
		return -1;
	for (; i < n; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	return 0;
}

/* The header checksum: the chksum field counts as eight spaces.  Unsigned, or signed as old tars wrote it. */
static int
checksum_ok(const uint8_t *h)
{
	uint64_t want;
	uint32_t u = 0;
	int32_t s = 0;
	size_t i;

	if (parse_num(h + 148, 8, &want) != 0)
		return 0;
	for (i = 0; i < TAR_BLOCK; i++)
		u += h[i];
	for (i = 148; i < 156; i++)
		u -= h[i];
	u += 8 * ' ';
	if (want == u)
		return 1;
	for (i = 0; i < TAR_BLOCK; i++)
		s += (i >= 148 && i < 156) ? ' ' : (int8_t)h[i];
	return (int64_t)want == s;
}

struct pending {
	const uint8_t *lname; /* GNU 'L' */
	size_t lnamelen;
	const uint8_t *ppath; /* pax path= */
	size_t ppathlen;
	uint64_t psize; /* pax size= */
	int have_lname, have_ppath, have_psize;
};

static int
pax_parse(const uint8_t *p, size_t n, int global, struct pending *pd, const char *name, size_t hoff,
    struct cx_err *e)
{
	size_t off = 0, i, len, keyoff, vallen, keylen, end;
	const uint8_t *eq, *val;
	uint64_t v;

	while (off < n) {
		len = 0;
		for (i = off; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
			if (len > n)
				break;
			len = len * 10 + (size_t)(p[i] - '0');
		}
		if (i == off || i >= n || p[i] != ' ' || len > n - off || len < i - off + 3)
			return cx_err_set(
			    e, CX_EPARSE, "%s: malformed pax record at byte %zu", name, hoff + off);
		end = off + len;
		if (p[end - 1] != '\n')
			return cx_err_set(e, CX_EPARSE,
			    "%s: pax record at byte %zu lacks its newline", name, hoff + off);
		keyoff = i + 1;
		if ((eq = memchr(p + keyoff, '=', end - 1 - keyoff)) == NULL)
			return cx_err_set(
			    e, CX_EPARSE, "%s: pax record at byte %zu lacks '='", name, hoff + off);
		keylen = (size_t)(eq - (p + keyoff));
		val = eq + 1;
		vallen = (size_t)(p + end - 1 - val);
		if (keylen == 4 && memcmp(p + keyoff, "path", 4) == 0) {
			if (global || pd->have_ppath)
				return cx_err_set(e, CX_EPARSE,
				    "%s: pax header at byte %zu: unexpected path record", name,
				    hoff);
			pd->ppath = val;
			pd->ppathlen = vallen;
			pd->have_ppath = 1;
		} else if (keylen == 4 && memcmp(p + keyoff, "size", 4) == 0) {
			if (global || pd->have_psize || vallen == 0 || vallen > 12)
				return cx_err_set(e, CX_EPARSE,
				    "%s: pax header at byte %zu: bad size record", name, hoff);
			for (v = 0, i = 0; i < vallen; i++) {
				if (val[i] < '0' || val[i] > '9')
					return cx_err_set(e, CX_EPARSE,
					    "%s: pax header at byte %zu: bad size record", name,
					    hoff);
				v = v * 10 + (uint64_t)(val[i] - '0');
			}
			pd->psize = v;
			pd->have_psize = 1;
		} else if (keylen >= 11 && memcmp(p + keyoff, "GNU.sparse.", 11) == 0) {
			return cx_err_set(
			    e, CX_EUNSUPPORTED, "%s: sparse members are not supported", name);
		}
		/* mtime, uid, linkpath, comment (git archive), ...: not used */
		off = end;
	}
	return 0;
}

/* The member's path in buf (NUL-terminated), from pax, GNU long name, or the header. */
static int
member_name(const uint8_t *h, const struct pending *pd, char *buf, size_t bufsz, size_t *len)
{
	size_t nl, pl;

	if (pd->have_ppath || pd->have_lname) {
		const uint8_t *s = pd->have_ppath ? pd->ppath : pd->lname;

		nl = pd->have_ppath ? pd->ppathlen : pd->lnamelen;
		if (nl >= bufsz)
			return -1;
		memcpy(buf, s, nl);
		buf[nl] = '\0';
		*len = nl;
		return 0;
	}
	nl = strnlen((const char *)h, 100);
	pl = 0;
	/* prefix only in POSIX ustar; GNU keeps atime/ctime there */
	if (memcmp(h + 257, "ustar\0", 6) == 0)
		pl = strnlen((const char *)h + 345, 155);
	if (pl + 1 + nl >= bufsz)
		return -1;
	if (pl) {
		memcpy(buf, h + 345, pl);
		buf[pl++] = '/';
	}
	memcpy(buf + pl, h, nl);
	buf[pl + nl] = '\0';
	*len = pl + nl;
	return 0;
}

static int
tm_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tmember *)a)->path, ((const struct tmember *)b)->path);
}

static int
keycmp(const struct tmember *m, const char *p, size_t n)
{
	size_t k = m->len < n ? m->len : n;
	int c = memcmp(m->path, p, k);

	if (c != 0)
		return c;
	return m->len < n ? -1 : m->len > n;
}

/* First index whose path is >= p[0..n). */
static size_t
lower_bound(const struct tgz_repo *t, const char *p, size_t n)
{
	size_t lo = 0, hi = t->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (keycmp(&t->m[mid], p, n) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct tmember *
find(const struct tgz_repo *t, const char *p, size_t n)
{
	size_t i = lower_bound(t, p, n);

	if (i < t->n && keycmp(&t->m[i], p, n) == 0)
		return &t->m[i];
	return NULL;
}

static const char *
type_reason(uint8_t type)
{
	switch (type) {
	case TM_DIR:
		return "is a directory";
	case TM_SYMLINK:
		return "is a symlink";
	case TM_HARDLINK:
		return "is a hard link";
	default:
		return "not a regular file";
	}
}

/* Sorts, refuses duplicates and non-directories with members below them, strips a lone top directory. */
static int
tar_finish(struct tgz_repo *t, struct cx_err *e)
{
	const struct tmember *pm;
	const char *p, *last = NULL, *x;
	size_t i, j, q, lastlen = 0, xlen;

	if (t->n > 1)
		qsort(t->m, t->n, sizeof(*t->m), tm_cmp);
	for (i = 1; i < t->n; i++)
		if (strcmp(t->m[i - 1].path, t->m[i].path) == 0)
			return cx_err_set(e, CX_EREJECT, "%s: member \"%s\" appears twice", t->name,
			    t->m[i].path);
	for (i = 0; i < t->n; i++) {
		p = t->m[i].path;
		if ((x = memrchr(p, '/', t->m[i].len)) == NULL)
			continue;
		q = (size_t)(x - p);
		/* siblings are mostly adjacent: skip a parent just checked */
		if (last != NULL && q == lastlen && memcmp(p, last, q) == 0)
			continue;
		last = p;
		lastlen = q;
		for (;;) {
			if ((pm = find(t, p, q)) != NULL) {
				if (pm->type != TM_DIR)
					return cx_err_set(e, CX_EREJECT,
					    "%s: member \"%s\" %s but has \"%s\" below it", t->name,
					    pm->path, type_reason(pm->type), p);
				break; /* its own ancestors are checked as a member */
			}
			/* an implicit directory: look further up */
			if ((x = memrchr(p, '/', q)) == NULL)
				break;
			q = (size_t)(x - p);
		}
	}
	if (t->n == 0)
		return 0;
	x = t->m[0].path;
	xlen = strcspn(x, "/");
	for (i = 0; i < t->n; i++) {
		pm = &t->m[i];
		if (pm->len < xlen || memcmp(pm->path, x, xlen) != 0)
			return 0;
		if (pm->len == xlen ? pm->type != TM_DIR : pm->path[xlen] != '/')
			return 0;
	}
	/* all under x/: sorted order survives removing a common prefix */
	for (i = 0, j = 0; i < t->n; i++) {
		if (t->m[i].len == xlen)
			continue;
		t->m[j] = t->m[i];
		t->m[j].path += xlen + 1;
		t->m[j].len -= (uint32_t)(xlen + 1);
		j++;
	}
	t->n = j;
	return 0;
}

static int
tar_index(struct tgz_repo *t, struct cx_err *e)
{
	struct pending pd;
	struct tmember *nm;
	const uint8_t *h, *dat;
	char nb[CX_REPO_PATH_MAX + 512], *np;
	size_t off = 0, dataoff, padded, ncap = 0, nlen;
	uint64_t size;
	uint8_t type;
	int rc;

	memset(&pd, 0, sizeof(pd));
	for (;;) {
		if (t->tarlen - off < TAR_BLOCK)
			return cx_err_set(
			    e, CX_EPARSE, "%s: truncated tar archive (no end marker)", t->name);
		h = t->tar + off;
		if (all_zero(h, TAR_BLOCK)) {
			if (!all_zero(h, t->tarlen - off))
				return cx_err_set(e, CX_EPARSE,
				    "%s: data after the end-of-archive marker at byte %zu", t->name,
				    off);
			if (pd.have_lname || pd.have_ppath || pd.have_psize)
				return cx_err_set(
				    e, CX_EPARSE, "%s: extended header without a member", t->name);
			break;
		}
		if (memcmp(h + 257,
		        "ustar\0"
		        "00",
		        8) != 0 &&
		    memcmp(h + 257, "ustar  \0", 8) != 0)
			return cx_err_set(e, CX_EPARSE,
			    "%s: byte %zu: not a ustar or GNU tar header", t->name, off);
		if (!checksum_ok(h))
			return cx_err_set(
			    e, CX_EPARSE, "%s: byte %zu: bad tar header checksum", t->name, off);
		if (parse_num(h + 124, 12, &size) != 0)
			return cx_err_set(
			    e, CX_EPARSE, "%s: byte %zu: bad size field", t->name, off);
		type = h[156];
		if (pd.have_psize && type != 'x' && type != 'g' && type != 'L' && type != 'K')
			size = pd.psize;
		dataoff = off + TAR_BLOCK;
		if (size > t->tarlen - dataoff ||
		    (padded = (size_t)size + (-(size_t)size & (TAR_BLOCK - 1))) >
		        t->tarlen - dataoff)
			return cx_err_set(e, CX_EPARSE,
			    "%s: byte %zu: member data runs past the end of the archive", t->name,
			    off);
		dat = t->tar + dataoff;
		switch (type) {
		case 'L':
			if (pd.have_lname || size == 0 || size > CX_REPO_PATH_MAX + 1)
				return cx_err_set(
				    e, CX_EPARSE, "%s: byte %zu: bad GNU long name", t->name, off);
			pd.lname = dat;
			pd.lnamelen = strnlen((const char *)dat, (size_t)size);
			if (!all_zero(dat + pd.lnamelen, (size_t)size - pd.lnamelen))
				return cx_err_set(e, CX_EPARSE,
				    "%s: byte %zu: GNU long name with a NUL inside", t->name, off);
			pd.have_lname = 1;
			break;
		case 'K':
			if (size > LONGLINK_MAX)
				return cx_err_set(e, CX_EPARSE,
				    "%s: byte %zu: GNU long link too long", t->name, off);
			break;
		case 'x':
		case 'g':
			if (size > PAX_MAX)
				return cx_err_set(e, CX_ETOOBIG,
				    "%s: byte %zu: pax header too large", t->name, off);
			if ((rc = pax_parse(
			         dat, (size_t)size, type == 'g', &pd, t->name, dataoff, e)) != 0)
				return rc;
			break;
		case '0':
		case '\0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7':
			if (t->n >= CX_REPO_TAR_MEMBERS)
				return cx_err_set(e, CX_ETOOBIG, "%s: more than %u members",
				    t->name, CX_REPO_TAR_MEMBERS);
			if (pd.have_lname && pd.have_ppath)
				return cx_err_set(e, CX_EPARSE,
				    "%s: byte %zu: both a GNU long name and a pax path", t->name,
				    off);
			/* no data is stored for links, devices, FIFOs and directories */
			if (size != 0 && type != '0' && type != '\0' && type != '7')
				return cx_err_set(e, CX_EPARSE,
				    "%s: byte %zu: member of type '%c' with data", t->name, off,
				    type);
			if (member_name(h, &pd, nb, sizeof(nb), &nlen) != 0)
				return cx_err_set(e, CX_EREJECT,
				    "%s: byte %zu: member name too long", t->name, off);
			type = type == '0' || type == '\0' ? TM_REG
			    : type == '5'                  ? TM_DIR
			    : type == '2'                  ? TM_SYMLINK
			    : type == '1'                  ? TM_HARDLINK
			                                   : TM_SPECIAL;
			np = nb;
			while (nlen >= 2 && np[0] == '.' && np[1] == '/') {
				np += 2;
				nlen -= 2;
			}
			if (nlen == 1 && np[0] == '.')
				nlen = 0;
			if (nlen > 0 && np[nlen - 1] == '/') {
				if (type != TM_DIR)
					return cx_err_set(e, CX_EREJECT,
					    "%s: member \"%.256s\": trailing '/' on a "
					    "non-directory",
					    t->name, nb);
				np[--nlen] = '\0';
			}
			if (nlen == 0 && type == TM_DIR) {
				memset(&pd, 0, sizeof(pd));
				break; /* "./": the root itself */
			}
			if (cx_path_check(np, nlen) != 0)
				return cx_err_set(e, CX_EREJECT,
				    "%s: member \"%.256s\": unsafe path", t->name, nb);
			if ((nm = cx_arena_grow(&t->arena, t->m, sizeof(*t->m), &ncap, t->n + 1)) ==
			    NULL)
				return cx_err_set(e, CX_ENOMEM, "%s: out of memory", t->name);
			t->m = nm;
			nm = &t->m[t->n];
			if ((nm->path = cx_arena_memdup(&t->arena, np, nlen)) == NULL)
				return cx_err_set(e, CX_ENOMEM, "%s: out of memory", t->name);
			nm->len = (uint32_t)nlen;
			nm->type = type;
			nm->off = dataoff;
			nm->size = type == TM_REG ? size : 0;
			t->n++;
			memset(&pd, 0, sizeof(pd));
			break;
		default:
			return cx_err_set(e, CX_EUNSUPPORTED,
			    "%s: byte %zu: unsupported tar member type 0x%02x", t->name, off, type);
		}
		off = dataoff + padded;
	}
	return tar_finish(t, e);
}

/* ---- the view ---- */

/*
 * A prefix of path (at a '/') that is a non-directory member: the directory
 * backend meets the same thing as ELOOP/ENOTDIR.  With whole = 1 the full
 * path is checked as a directory too.
 */
static int
check_prefixes(const struct tgz_repo *t, const char *path, size_t n, int whole, struct cx_err *e)
{
	const struct tmember *pm;
	size_t i;

	for (i = 1; i <= n; i++) {
		if (i < n ? path[i] != '/' : !whole)
			continue;
		if ((pm = find(t, path, i)) != NULL && pm->type != TM_DIR)
			return cx_err_set(e, CX_EREJECT, "%.*s: %s", (int)i, path,
			    pm->type == TM_SYMLINK ? "is a symlink" : "not a directory");
	}
	return 0;
}

static int
lookup(const struct tgz_repo *t, const char *path, const struct tmember **out, struct cx_err *e)
{
	size_t n = strlen(path);
	int rc;

	char key[CX_REPO_PATH_MAX + 1];
	size_t i;

	if ((*out = find(t, path, n)) == NULL) {
		if ((rc = check_prefixes(t, path, n, 0, e)) != 0)
			return rc;
		/* a directory that only its members imply (no member of its own) */
		if (n < CX_REPO_PATH_MAX) {
			memcpy(key, path, n);
			key[n] = '/';
			i = lower_bound(t, key, n + 1);
			if (i < t->n && t->m[i].len > n && memcmp(t->m[i].path, key, n + 1) == 0)
				return cx_err_set(e, CX_EREJECT, "%s: is a directory", path);
		}
		return cx_err_set(e, CX_ENOENT, "%s: no such file", path);
	}
	if ((*out)->type != TM_REG)
		return cx_err_set(e, CX_EREJECT, "%s: %s", path, type_reason((*out)->type));
	return 0;
}

static int
tgz_read(struct cx_repo *r, const char *path, size_t cap, struct cx_buf *out, struct cx_err *e)
{
	const struct tgz_repo *t = (const struct tgz_repo *)r;
	const struct tmember *m;
	int rc;

	if ((rc = lookup(t, path, &m, e)) != 0)
		return rc;
	if (m->size > cap)
		return cx_err_set(e, CX_ETOOBIG, "%s: %llu bytes, more than the limit of %zu", path,
		    (unsigned long long)m->size, cap);
	if ((rc = cx_buf_put(out, t->tar + m->off, (size_t)m->size)) != 0)
		return cx_err_set(e, rc, "%s: does not fit the buffer (%zu bytes)", path, out->max);
	return 0;
}

static int
tgz_exists(struct cx_repo *r, const char *path, struct cx_err *e)
{
	const struct tmember *m;
	int rc;

	if ((rc = lookup((const struct tgz_repo *)r, path, &m, e)) == CX_ENOENT)
		return 0;
	return rc == 0 ? 1 : rc;
}

/* The members below dir: [*lo, *hi).  dir itself must be a directory or absent. */
static int
dir_range(const struct tgz_repo *t, const char *dir, size_t *lo, size_t *hi, struct cx_err *e)
{
	size_t dl = strlen(dir), i;
	char *key;
	int rc;

	if (dl == 0) {
		*lo = 0;
		*hi = t->n;
		return 0;
	}
	if ((rc = check_prefixes(t, dir, dl, 1, e)) != 0)
		return rc;
	if ((key = malloc(dl + 2)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "%s: out of memory", dir);
	memcpy(key, dir, dl);
	key[dl] = '/';
	key[dl + 1] = '\0';
	*lo = lower_bound(t, key, dl + 1);
	for (i = *lo; i < t->n && t->m[i].len > dl && memcmp(t->m[i].path, key, dl + 1) == 0; i++)
		;
	*hi = i;
	free(key);
	return 0;
}

static int
tgz_list(struct cx_repo *r, const char *dir, struct cx_arena *arena, const char ***names, size_t *n,
    struct cx_err *e)
{
	const struct tgz_repo *t = (const struct tgz_repo *)r;
	const struct tmember *m;
	const char **v = NULL, *rest;
	size_t lo, hi, i, cap = 0, cnt = 0, skip = *dir ? strlen(dir) + 1 : 0;
	int rc;

	if ((rc = dir_range(t, dir, &lo, &hi, e)) != 0)
		return rc;
	for (i = lo; i < hi; i++) {
		m = &t->m[i];
		rest = m->path + skip;
		if (strchr(rest, '/') != NULL || m->type == TM_DIR)
			continue;
		if (m->type != TM_REG)
			return cx_err_set(e, CX_EREJECT, "%s: %s", m->path, type_reason(m->type));
		if ((v = cx_arena_grow(arena, v, sizeof(*v), &cap, cnt + 1)) == NULL ||
		    (v[cnt] = cx_arena_strdup(arena, rest)) == NULL)
			return cx_err_set(e, CX_ENOMEM, "%s: listing: out of memory", dir);
		cnt++;
	}
	/* already sorted: same prefix, same order */
	*names = v;
	*n = cnt;
	return 0;
}

struct thash {
	const struct tgz_repo *t;
	struct cx_file_entry *v;
	const size_t *idx; /* member of v[k] */
	size_t n;
	EVP_MD *md;
	pthread_mutex_t mu; /* guards next */
	size_t next;
	int rc[16];
};

static void
hash_worker(void *ctx, unsigned w)
{
	struct thash *th = ctx;
	const struct tmember *m;
	EVP_MD_CTX *mc;
	size_t k, end;

	if ((mc = EVP_MD_CTX_new()) == NULL) {
		th->rc[w] = CX_ENOMEM;
		return;
	}
	for (;;) {
		pthread_mutex_lock(&th->mu);
		k = th->next;
		th->next = k + HASH_CHUNK < th->n ? k + HASH_CHUNK : th->n;
		end = th->next;
		pthread_mutex_unlock(&th->mu);
		if (k >= end)
			break;
		for (; k < end; k++) {
			m = &th->t->m[th->idx[k]];
			if (EVP_DigestInit_ex2(mc, th->md, NULL) != 1 ||
			    EVP_DigestUpdate(mc, th->t->tar + m->off, (size_t)m->size) != 1 ||
			    EVP_DigestFinal_ex(mc, th->v[k].sha256, NULL) != 1) {
				th->rc[w] = CX_ECRYPTO;
				goto out;
			}
		}
	}
out:
	EVP_MD_CTX_free(mc);
}

static int
tgz_walk(struct cx_repo *r, const char *dir, struct cx_file_list *out, struct cx_err *e)
{
	const struct tgz_repo *t = (const struct tgz_repo *)r;
	const struct tmember *m;
	struct thash th;
	size_t lo, hi, i, cnt = 0, *idx = NULL;
	unsigned nth, w;
	int rc;

	if ((rc = dir_range(t, dir, &lo, &hi, e)) != 0)
		return rc;
	for (i = lo; i < hi; i++) {
		m = &t->m[i];
		if (m->type == TM_REG)
			cnt++;
		else if (m->type != TM_DIR)
			return cx_err_set(e, CX_EREJECT, "%s: %s", m->path, type_reason(m->type));
	}
	if (cnt == 0)
		return 0;
	if ((idx = calloc(cnt, sizeof(*idx))) == NULL ||
	    (out->v = cx_arena_alloc(&out->arena, cnt * sizeof(*out->v))) == NULL) {
		free(idx);
		return cx_err_set(e, CX_ENOMEM, "%s: walk: out of memory", dir);
	}
	for (i = lo, cnt = 0; i < hi; i++) {
		m = &t->m[i];
		if (m->type != TM_REG)
			continue;
		idx[cnt] = i;
		out->v[cnt].size = m->size;
		if ((out->v[cnt].path = cx_arena_memdup(&out->arena, m->path, m->len)) == NULL) {
			free(idx);
			return cx_err_set(e, CX_ENOMEM, "%s: walk: out of memory", dir);
		}
		cnt++;
	}
	memset(&th, 0, sizeof(th));
	th.t = t;
	th.v = out->v;
	th.idx = idx;
	th.n = cnt;
	if ((th.md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		free(idx);
		return cx_err_set(e, CX_ECRYPTO, "SHA-256 is not available");
	}
	pthread_mutex_init(&th.mu, NULL);
	nth = cx_repo_nthreads();
	cx_repo_parallel(nth, hash_worker, &th);
	pthread_mutex_destroy(&th.mu);
	EVP_MD_free(th.md);
	free(idx);
	for (w = 0; w < nth; w++)
		if (th.rc[w] != 0)
			return cx_err_set(e, th.rc[w], "%s: walk: hashing failed", dir);
	if (th.next != cnt)
		return cx_err_set(e, CX_ENOMEM, "%s: walk: hashing failed", dir);
	out->n = cnt;
	return 0;
}

static void
tgz_close(struct cx_repo *r)
{
	struct tgz_repo *t = (struct tgz_repo *)r;

	free(t->tar);
	cx_arena_free(&t->arena);
	free(t->name);
	free(t);
}

static const struct cx_repo_ops tgz_ops = {
    .read = tgz_read,
    .exists = tgz_exists,
    .list = tgz_list,
    .walk = tgz_walk,
    .close = tgz_close,
};

/* Takes ownership of tar (malloc'd). */
static int
tar_open(struct cx_repo **out, uint8_t *tar, size_t tarlen, const char *name, struct cx_err *e)
{
	struct tgz_repo *t;
	int rc;

	*out = NULL;
	if ((t = calloc(1, sizeof(*t))) == NULL || (t->name = strdup(name)) == NULL) {
		free(t);
		free(tar);
		return cx_err_set(e, CX_ENOMEM, "%s: out of memory", name);
	}
	t->base.ops = &tgz_ops;
	t->tar = tar;
	t->tarlen = tarlen;
	cx_arena_init(&t->arena, 0);
	if ((rc = tar_index(t, e)) != 0) {
		tgz_close(&t->base);
		return rc;
	}
	*out = &t->base;
	return 0;
}

int
cx_repo_open_tar_mem(
    struct cx_repo **out, const uint8_t *data, size_t len, const char *name, struct cx_err *e)
{
	uint8_t *tar;
	size_t tarlen;
	int rc;

	*out = NULL;
	if (len >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
		if ((rc = gunzip(data, len, &tar, &tarlen, name, e)) != 0)
			return rc;
		return tar_open(out, tar, tarlen, name, e);
	}
	if (len > CX_REPO_TAR_MAX)
		return cx_err_set(e, CX_ETOOBIG, "%s: larger than %llu bytes", name,
		    (unsigned long long)CX_REPO_TAR_MAX);
	if ((tar = malloc(len ? len : 1)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "%s: out of memory", name);
	if (len)
		memcpy(tar, data, len);
	return tar_open(out, tar, len, name, e);
}

int
cx_repo_open_tgz_fd(struct cx_repo **out, int fd, const char *name, struct cx_err *e)
{
	struct stat st;
	uint8_t *gz = NULL;
	size_t have = 0;
	ssize_t got;
	int rc;

	*out = NULL;
	if (fstat(fd, &st) == -1) {
		rc = cx_err_set(e, CX_EIO, "%s: fstat: %s", name, strerror(errno));
		goto out;
	}
	/* compressed can't be larger than uncompressed by more than gzip's framing */
	if (st.st_size < 0 || (uint64_t)st.st_size > CX_REPO_TAR_MAX) {
		rc = cx_err_set(e, CX_ETOOBIG, "%s: larger than %llu bytes", name,
		    (unsigned long long)CX_REPO_TAR_MAX);
		goto out;
	}
	if ((gz = malloc((size_t)st.st_size + 1)) == NULL) {
		rc = cx_err_set(e, CX_ENOMEM, "%s: out of memory", name);
		goto out;
	}
	/* read to EOF, up to the size seen: a file growing under us is refused */
	for (;;) {
		got = read(fd, gz + have, (size_t)st.st_size + 1 - have);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			rc = cx_err_set(e, CX_EIO, "%s: read: %s", name, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		have += (size_t)got;
		if (have > (size_t)st.st_size) {
			rc = cx_err_set(e, CX_EIO, "%s: changed while being read", name);
			goto out;
		}
	}
	rc = cx_repo_open_tar_mem(out, gz, have, name, e);
out:
	free(gz);
	close(fd);
	return rc;
}
