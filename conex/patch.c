/*
 * Unified diff reader and clean applier.
 *
 * The patch opam hands to the validation command decides what the new
 * repository will look like, so the reader is strict: anything that two diff
 * tools could read differently (hunk counts that do not match, lines between
 * hunks, two sections touching one path, names that disagree between the
 * "diff --git" line, the ---/+++ lines and the rename lines) is an error rather
 * than a guess.  Before the first file header we skip anything (a commit
 * message from git format-patch); after it, every line must belong somewhere.
 *
 * Creation and deletion:
 *  - git: "new file mode" / "deleted file mode", and "/dev/null" on the other
 *    side of ---/+++ (both must agree).  Empty files have no ---/+++ lines, the
 *    name then comes from the "diff --git" line.
 *  - other diffs: "/dev/null" on one side.  `diff -ruaN` has no /dev/null: it
 *    compares an absent file as an empty one dated at the Unix epoch.  A plain
 *    section is a creation iff the old side's timestamp is the epoch (in any
 *    time zone) and its only hunk is "-0,0"; a deletion iff the new side's
 *    timestamp is the epoch and its only hunk is "+0,0".  Anything else is an
 *    edit (so an existing empty file with an epoch mtime that gains content
 *    is read as a creation: diff -N cannot tell the two apart).
 *
 * Memory: everything a parsed patch holds lives in one arena; line texts point
 * into the caller's patch bytes.  Per input byte we keep at most one
 * cx_patch_line, so memory is linear in the input.
 */
#include "conex/patch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conex/arena.h"

#define CX_PATCH_MAX_FILES 1000000
#define CX_PATCH_MAX_PATH  4096
/* Hunk positions beyond this cannot describe a real file; keeps sums in range. */
#define CX_PATCH_MAX_LINENO 0x7fffffffUL

struct patch_store {
	struct cx_patch pub;
	struct cx_arena arena;
};

struct line {
	const uint8_t *s;
	size_t len; /* without the '\n' */
	int nl;     /* ended by '\n' (only the last line of the input may not be) */
};

/* The "diff --git" line, after the command. */
struct githdr {
	const uint8_t *s;
	size_t len;
	int explicit_names; /* quoting made the split unambiguous: a and b are set */
	const uint8_t *a, *b;
	size_t alen, blen;
};

struct section {
	size_t line; /* first header line, for messages */
	int git;
	struct githdr gh;
	int have_mp;        /* --- and +++ lines seen */
	char *minus, *plus; /* -p1 stripped; NULL for /dev/null */
	int minus_null, plus_null;
	int minus_epoch, plus_epoch;
	char *ren_from, *ren_to;
	int new_file, deleted, mode_change;
	/* hunk bookkeeping, 0-based line positions */
	size_t prev_end, new_prev_end;
	int old_eof, new_eof; /* a "\ No newline" was seen for that side */
};

struct parser {
	const uint8_t *p, *end;
	size_t lineno; /* lines consumed so far */
	const char *name;
	struct cx_err *e;
	struct cx_arena *a;
	/* scratch vectors, reused and copied into the arena at their exact size */
	struct cx_patch_line *lines;
	size_t nlines, capl;
	struct cx_patch_hunk *hunks;
	size_t nhunks, caph;
	struct cx_patch_file *files;
	size_t nfiles, capf;
	size_t *fline; /* header line of each file, for duplicate messages */
	size_t capfl;
};

static int perr(struct parser *, size_t, int, const char *, ...)
    __attribute__((format(printf, 4, 5)));

/* Copies s for a message: patch bytes may hold terminal escapes. */
static const char *
shown(const void *v, size_t len, char *buf, size_t bufsz)
{
	const uint8_t *s = v;
	size_t i, n = 0;

	for (i = 0; i < len && n + 5 < bufsz; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f || s[i] == '\\')
			n += (size_t)snprintf(buf + n, bufsz - n, "\\%03o", s[i]);
		else
			buf[n++] = (char)s[i];
	}
	if (i < len && n + 4 < bufsz) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = 0;
	return buf;
}

static int
perr(struct parser *ps, size_t line, int code, const char *fmt, ...)
{
	char msg[CX_ERR_MSG];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cx_err_set(ps->e, code, "%s:%zu: %s", ps->name, line, msg);
}

static int
enomem(struct parser *ps)
{
	return cx_err_set(ps->e, CX_ENOMEM, "%s: out of memory", ps->name);
}

static int
vec_reserve(void **v, size_t *cap, size_t need, size_t elsize)
{
	size_t ncap = *cap ? *cap : 16;
	void *n;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / elsize)
			return CX_ENOMEM;
		ncap *= 2;
	}
	if ((n = realloc(*v, ncap * elsize)) == NULL)
		return CX_ENOMEM;
	*v = n;
	*cap = ncap;
	return 0;
}

/* ---- lines ---- */

static int
line_at(const uint8_t *p, const uint8_t *end, struct line *l)
{
	const uint8_t *nl;

	if (p >= end)
		return 0;
	nl = memchr(p, '\n', (size_t)(end - p));
	l->s = p;
	l->len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
	l->nl = nl != NULL;
	return 1;
}

static const uint8_t *
line_next(const struct line *l)
{
	return l->s + l->len + (l->nl ? 1 : 0);
}

static int
peek(const struct parser *ps, struct line *l)
{
	return line_at(ps->p, ps->end, l);
}

/* The line after l, if any. */
static int
peek_after(const struct parser *ps, const struct line *l, struct line *n)
{
	return line_at(line_next(l), ps->end, n);
}

static void
take(struct parser *ps, const struct line *l)
{
	ps->p = line_next(l);
	ps->lineno++;
}

static int
starts(const struct line *l, const char *lit)
{
	size_t n = strlen(lit);

	return l->len >= n && memcmp(l->s, lit, n) == 0;
}

static int
is_lit(const uint8_t *s, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

/* "Binary files X and Y differ", from diff -r without -a or git without --binary. */
static int
is_binary_line(const struct line *l)
{
	return (starts(l, "Binary files ") && l->len >= 20 &&
	           memcmp(l->s + l->len - 7, " differ", 7) == 0) ||
	    (starts(l, "GIT binary patch") && l->len == 16);
}

/* ---- paths ---- */

/* Git's C-style quoting: s[*i] is the opening '"'; *i ends after the closing one. */
static int
unquote(struct parser *ps, size_t ln, const uint8_t *s, size_t len, size_t *i, uint8_t **out,
    size_t *outlen)
{
	size_t j = *i + 1, n = 0, k;
	uint8_t *d, c;
	unsigned v;

	if ((d = cx_arena_alloc(ps->a, len + 1)) == NULL)
		return enomem(ps);
	for (;;) {
		if (j >= len)
			return perr(ps, ln, CX_EPARSE, "unterminated quoted file name");
		c = s[j++];
		if (c == '"')
			break;
		if (c != '\\') {
			d[n++] = c;
			continue;
		}
		if (j >= len)
			return perr(ps, ln, CX_EPARSE, "unterminated quoted file name");
		c = s[j++];
		switch (c) {
		case 'a':
			c = '\a';
			break;
		case 'b':
			c = '\b';
			break;
		case 't':
			c = '\t';
			break;
		case 'n':
			c = '\n';
			break;
		case 'v':
			c = '\v';
			break;
		case 'f':
			c = '\f';
			break;
		case 'r':
			c = '\r';
			break;
		case '"':
		case '\\':
			break;
		case '0':
		case '1':
		case '2':
		case '3':
			/* exactly three octal digits, at most \377 */
			v = (unsigned)(c - '0');
			for (k = 0; k < 2; k++) {
				if (j >= len || s[j] < '0' || s[j] > '7')
					return perr(ps, ln, CX_EPARSE,
					    "bad octal escape in quoted file name");
				v = v * 8 + (unsigned)(s[j++] - '0');
			}
			c = (uint8_t)v;
			break;
		default:
			return perr(ps, ln, CX_EPARSE, "bad escape \\%c in quoted file name",
			    c >= 0x20 && c < 0x7f ? c : '?');
		}
		d[n++] = c;
	}
	*i = j;
	*out = d;
	*outlen = n;
	return 0;
}

/*
 * Validates a path (after stripping its first component when strip is set, as
 * patch -p1 does) and copies it into the arena.  Control characters are
 * refused even when git quoted them: no opam repository file has them, and
 * they would make later listings and messages ambiguous.
 */
static int
check_path(struct parser *ps, size_t ln, const uint8_t *raw, size_t rawlen, int strip, char **out)
{
	const uint8_t *p = raw, *slash;
	size_t n = rawlen, k, i, sl;
	char sb[128];

	if (strip) {
		if (n == 0 || p[0] == '/')
			return perr(ps, ln, CX_EPARSE, "absolute or empty path '%s'",
			    shown(raw, rawlen, sb, sizeof(sb)));
		if ((slash = memchr(p, '/', n)) == NULL)
			return perr(ps, ln, CX_EPARSE,
			    "path '%s' has no leading component to strip (-p1)",
			    shown(raw, rawlen, sb, sizeof(sb)));
		k = (size_t)(slash - p);
		if (is_lit(p, k, ".."))
			return perr(ps, ln, CX_EPARSE, "path '%s' starts with '..'",
			    shown(raw, rawlen, sb, sizeof(sb)));
		p += k + 1;
		n -= k + 1;
	}
	if (n == 0)
		return perr(
		    ps, ln, CX_EPARSE, "empty path '%s'", shown(raw, rawlen, sb, sizeof(sb)));
	if (n > CX_PATCH_MAX_PATH)
		return perr(ps, ln, CX_EPARSE, "path longer than %d bytes", CX_PATCH_MAX_PATH);
	if (p[0] == '/')
		return perr(
		    ps, ln, CX_EPARSE, "absolute path '%s'", shown(raw, rawlen, sb, sizeof(sb)));
	for (i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return perr(ps, ln, CX_EPARSE, "control character in path '%s'",
			    shown(raw, rawlen, sb, sizeof(sb)));
	for (i = 0; i <= n; i += sl + 1) {
		slash = memchr(p + i, '/', n - i);
		sl = slash != NULL ? (size_t)(slash - (p + i)) : n - i;
		if (sl == 0 || is_lit(p + i, sl, ".") || is_lit(p + i, sl, ".."))
			return perr(ps, ln, CX_EPARSE,
			    "path '%s' has an empty, '.' or '..' segment",
			    shown(raw, rawlen, sb, sizeof(sb)));
	}
	if ((*out = cx_arena_memdup(ps->a, p, n)) == NULL)
		return enomem(ps);
	return 0;
}

/* ---- timestamps ---- */

static int
digits(const uint8_t *s, size_t len, size_t *i, size_t nd, long *v)
{
	size_t k;

	*v = 0;
	for (k = 0; k < nd; k++, (*i)++) {
		if (*i >= len || s[*i] < '0' || s[*i] > '9')
			return -1;
		*v = *v * 10 + (s[*i] - '0');
	}
	return 0;
}

static long long
days_from_civil(long y, long m, long d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * diff -N dates an absent file at the Unix epoch, printed in the local zone:
 * "1970-01-01 00:00:00.000000000 +0000" or "1969-12-31 19:00:00.000000000 -0500".
 */
static int
is_epoch(const uint8_t *s, size_t len)
{
	long y, mo, d, h, mi, sec, oh, om;
	long long t;
	size_t i = 0;
	int sign;

	if (digits(s, len, &i, 4, &y) || i >= len || s[i++] != '-' || digits(s, len, &i, 2, &mo) ||
	    i >= len || s[i++] != '-' || digits(s, len, &i, 2, &d) || i >= len || s[i++] != ' ' ||
	    digits(s, len, &i, 2, &h) || i >= len || s[i++] != ':' || digits(s, len, &i, 2, &mi) ||
	    i >= len || s[i++] != ':' || digits(s, len, &i, 2, &sec))
		return 0;
	if (i < len && s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			if (s[i] != '0')
				return 0;
	}
	if (i >= len || s[i++] != ' ' || i >= len || (s[i] != '+' && s[i] != '-'))
		return 0;
	sign = s[i++] == '-' ? -1 : 1;
	if (digits(s, len, &i, 2, &oh) || digits(s, len, &i, 2, &om) || i != len)
		return 0;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || oh > 24 ||
	    om > 59)
		return 0;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	t -= sign * (oh * 3600 + om * 60);
	return t == 0;
}

/* ---- headers ---- */

/* One side of "--- NAME[<TAB>date]": NAME is C-quoted or runs to the first tab. */
static int
side_name(struct parser *ps, size_t ln, const uint8_t *s, size_t len, char **path, int *isnull,
    int *epoch)
{
	const uint8_t *raw = s;
	uint8_t *uq;
	size_t rawlen, i = 0;
	const uint8_t *tab;
	int r, quoted = len > 0 && s[0] == '"';

	*path = NULL;
	*isnull = *epoch = 0;
	if (quoted) {
		if ((r = unquote(ps, ln, s, len, &i, &uq, &rawlen)) != 0)
			return r;
		raw = uq;
	} else {
		tab = memchr(s, '\t', len);
		rawlen = tab != NULL ? (size_t)(tab - s) : len;
		i = rawlen;
	}
	if (i < len) {
		if (s[i] != '\t')
			return perr(ps, ln, CX_EPARSE, "junk after quoted file name");
		*epoch = is_epoch(s + i + 1, len - i - 1);
	}
	if (!quoted && is_lit(raw, rawlen, "/dev/null")) {
		*isnull = 1;
		return 0;
	}
	return check_path(ps, ln, raw, rawlen, 1, path);
}

/* "rename from NAME": no prefix to strip, quoted or the rest of the line. */
static int
rename_name(struct parser *ps, size_t ln, const uint8_t *s, size_t len, char **path)
{
	uint8_t *uq;
	size_t i = 0, n;
	int r;

	if (len > 0 && s[0] == '"') {
		if ((r = unquote(ps, ln, s, len, &i, &uq, &n)) != 0)
			return r;
		if (i != len)
			return perr(ps, ln, CX_EPARSE, "junk after quoted file name");
		return check_path(ps, ln, uq, n, 0, path);
	}
	return check_path(ps, ln, s, len, 0, path);
}

static int
check_mode(struct parser *ps, size_t ln, const uint8_t *s, size_t len)
{
	char sb[32];

	if (is_lit(s, len, "100644") || is_lit(s, len, "100755"))
		return 0;
	if (is_lit(s, len, "120000"))
		return perr(ps, ln, CX_EUNSUPPORTED, "symbolic links are not supported");
	if (is_lit(s, len, "160000"))
		return perr(ps, ln, CX_EUNSUPPORTED, "submodules are not supported");
	return perr(ps, ln, CX_EPARSE, "bad file mode '%s'", shown(s, len, sb, sizeof(sb)));
}

/*
 * Splits "diff --git A B" when quoting makes it unambiguous; otherwise the
 * names are checked against the ---/+++ or rename lines later (hdr_matches),
 * since unquoted names may contain spaces.
 */
static int
parse_githdr(struct parser *ps, size_t ln, const uint8_t *s, size_t len, struct githdr *g)
{
	const uint8_t *q;
	uint8_t *uq;
	size_t i = 0, n;
	int r;

	memset(g, 0, sizeof(*g));
	g->s = s;
	g->len = len;
	if ((q = memchr(s, '"', len)) == NULL)
		return 0;
	if (q == s) {
		if ((r = unquote(ps, ln, s, len, &i, &uq, &n)) != 0)
			return r;
		g->a = uq;
		g->alen = n;
		if (i >= len || s[i] != ' ')
			return perr(ps, ln, CX_EPARSE, "malformed diff --git line");
		i++;
	} else {
		i = (size_t)(q - s);
		if (s[i - 1] != ' ')
			return perr(ps, ln, CX_EPARSE, "malformed diff --git line");
		g->a = s;
		g->alen = i - 1;
	}
	if (i < len && s[i] == '"') {
		if ((r = unquote(ps, ln, s, len, &i, &uq, &n)) != 0)
			return r;
		if (i != len)
			return perr(ps, ln, CX_EPARSE, "malformed diff --git line");
		g->b = uq;
		g->blen = n;
	} else {
		g->b = s + i;
		g->blen = len - i;
	}
	g->explicit_names = 1;
	return 0;
}

/* Does "X/rest" have rest == want? */
static int
stripped_eq(const uint8_t *s, size_t len, const char *want)
{
	const uint8_t *sl = memchr(s, '/', len);
	size_t k;

	if (sl == NULL || sl == s)
		return 0;
	k = (size_t)(sl - s) + 1;
	return is_lit(s + k, len - k, want);
}

/* Is the diff --git line "pa/OLD pb/NEW"? Linear: the first '/' ends pa. */
static int
hdr_matches(const struct githdr *g, const char *old, const char *new)
{
	const uint8_t *s = g->s, *sl, *b;
	size_t len = g->len, k, ol = strlen(old), bl;

	if (g->explicit_names)
		return stripped_eq(g->a, g->alen, old) && stripped_eq(g->b, g->blen, new);
	if ((sl = memchr(s, '/', len)) == NULL || sl == s)
		return 0;
	k = (size_t)(sl - s) + 1;
	if (len - k < ol + 1 || memcmp(s + k, old, ol) != 0 || s[k + ol] != ' ')
		return 0;
	b = s + k + ol + 1;
	bl = len - k - ol - 1;
	return stripped_eq(b, bl, new);
}

/* The one name of an empty created/deleted file, from "diff --git a/X b/X". */
static int
hdr_name(struct parser *ps, struct section *sec, char **name)
{
	const struct githdr *g = &sec->gh;
	size_t mid;
	int r;

	if (g->explicit_names) {
		if ((r = check_path(ps, sec->line, g->a, g->alen, 1, name)) != 0)
			return r;
	} else {
		/* equal names and equally long prefixes: the split is in the middle */
		mid = g->len / 2;
		if (g->len % 2 == 0 || g->s[mid] != ' ')
			return perr(ps, sec->line, CX_EPARSE,
			    "cannot tell the file name from the diff --git line");
		if ((r = check_path(ps, sec->line, g->s, mid, 1, name)) != 0)
			return r;
	}
	if (!hdr_matches(g, *name, *name))
		return perr(
		    ps, sec->line, CX_EPARSE, "cannot tell the file name from the diff --git line");
	return 0;
}

/* ---- hunks ---- */

static int
hunk_num(const uint8_t *s, size_t len, size_t *i, size_t *v)
{
	unsigned long long n = 0;
	size_t d = 0;

	while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
		if (++d > 10)
			return -1;
		n = n * 10 + (unsigned)(s[*i] - '0');
		(*i)++;
	}
	if (d == 0 || n > CX_PATCH_MAX_LINENO)
		return -1;
	*v = (size_t)n;
	return 0;
}

/* "@@ -a[,b] +c[,d] @@[ section text]"; an omitted count is 1. */
static int
hunk_header(const struct line *l, struct cx_patch_hunk *h)
{
	const uint8_t *s = l->s;
	size_t len = l->len, i = 4;

	if (!starts(l, "@@ -") || hunk_num(s, len, &i, &h->old_start) != 0)
		return -1;
	h->old_len = 1;
	if (i < len && s[i] == ',') {
		i++;
		if (hunk_num(s, len, &i, &h->old_len) != 0)
			return -1;
	}
	if (len - i < 2 || s[i] != ' ' || s[i + 1] != '+')
		return -1;
	i += 2;
	if (hunk_num(s, len, &i, &h->new_start) != 0)
		return -1;
	h->new_len = 1;
	if (i < len && s[i] == ',') {
		i++;
		if (hunk_num(s, len, &i, &h->new_len) != 0)
			return -1;
	}
	if (len - i < 3 || memcmp(s + i, " @@", 3) != 0)
		return -1;
	i += 3;
	if (i < len && s[i] != ' ')
		return -1;
	return 0;
}

/* "\ No newline at end of file" (the text is localised, so only '\' counts). */
static int
hunk_marker(struct parser *ps, size_t ln, struct section *sec)
{
	struct cx_patch_line *prev;

	if (ps->nlines == 0)
		return perr(ps, ln, CX_EPARSE, "'\\' line without a line before it");
	prev = &ps->lines[ps->nlines - 1];
	if (prev->no_newline)
		return perr(ps, ln, CX_EPARSE, "repeated '\\ No newline at end of file'");
	prev->no_newline = 1;
	if (prev->kind != '+')
		sec->old_eof = 1;
	if (prev->kind != '-')
		sec->new_eof = 1;
	return 0;
}

static int
parse_hunk(struct parser *ps, struct section *sec)
{
	struct cx_patch_hunk h;
	struct cx_patch_line *pl;
	struct line l;
	size_t hl = ps->lineno + 1, ln, ro, rn, s, s2, want, idx = ps->nhunks + 1;
	char kind;
	int r;

	memset(&h, 0, sizeof(h));
	if (!peek(ps, &l))
		return perr(ps, hl, CX_EPARSE, "expected a hunk");
	if (!l.nl)
		return perr(ps, hl, CX_EPARSE, "truncated patch: no newline at the end");
	if (hunk_header(&l, &h) != 0)
		return perr(ps, hl, CX_EPARSE, "malformed hunk header");
	if (h.old_len == 0 && h.new_len == 0)
		return perr(ps, hl, CX_EPARSE, "empty hunk");
	if ((h.old_len && h.old_start == 0) || (h.new_len && h.new_start == 0))
		return perr(ps, hl, CX_EPARSE, "hunk starts at line 0");
	take(ps, &l);

	ps->nlines = 0;
	ro = h.old_len;
	rn = h.new_len;
	while (ro || rn) {
		if (!peek(ps, &l))
			return perr(ps, ps->lineno, CX_EPARSE,
			    "truncated patch: hunk %zu needs %zu more old and %zu more new lines",
			    idx, ro, rn);
		ln = ps->lineno + 1;
		if (!l.nl)
			return perr(ps, ln, CX_EPARSE, "truncated patch: no newline at the end");
		/* a bare "\n" is a context line whose trailing space was stripped */
		kind = l.len ? (char)l.s[0] : ' ';
		if (kind == '\\') {
			if ((r = hunk_marker(ps, ln, sec)) != 0)
				return r;
			take(ps, &l);
			continue;
		}
		if (kind != ' ' && kind != '-' && kind != '+')
			return perr(ps, ln, CX_EPARSE,
			    "unexpected line in hunk %zu (%zu old and %zu new lines still missing)",
			    idx, ro, rn);
		if ((kind == ' ' && (!ro || !rn)) || (kind == '-' && !ro) || (kind == '+' && !rn))
			return perr(ps, ln, CX_EPARSE,
			    "hunk %zu has more '%c' lines than its header (@@ -%zu,%zu +%zu,%zu @@) counts",
			    idx, kind, h.old_start, h.old_len, h.new_start, h.new_len);
		if ((kind != '+' && sec->old_eof) || (kind != '-' && sec->new_eof))
			return perr(ps, ln, CX_EPARSE, "line after '\\ No newline at end of file'");
		if (kind != '+')
			ro--;
		if (kind != '-')
			rn--;
		if (vec_reserve((void **)&ps->lines, &ps->capl, ps->nlines + 1, sizeof(*pl)) != 0)
			return enomem(ps);
		pl = &ps->lines[ps->nlines++];
		pl->kind = kind;
		pl->text = l.len ? l.s + 1 : l.s;
		pl->len = l.len ? l.len - 1 : 0;
		pl->no_newline = 0;
		take(ps, &l);
	}
	if (peek(ps, &l) && l.len > 0 && l.s[0] == '\\') {
		if (!l.nl)
			return perr(ps, ps->lineno + 1, CX_EPARSE,
			    "truncated patch: no newline at the end");
		if ((r = hunk_marker(ps, ps->lineno + 1, sec)) != 0)
			return r;
		take(ps, &l);
	}

	/*
	 * Hunks must be in order, must not overlap, and the new-side start must
	 * be where the old-side start puts it: the unchanged gap between two
	 * hunks is as long on both sides.  A zero count means "after line N".
	 */
	s = h.old_len ? h.old_start - 1 : h.old_start;
	if (s < sec->prev_end)
		return perr(
		    ps, hl, CX_EPARSE, "hunk %zu overlaps or precedes the hunk before it", idx);
	s2 = sec->new_prev_end + (s - sec->prev_end);
	if (s2 > CX_PATCH_MAX_LINENO)
		return perr(ps, hl, CX_EPARSE, "hunk %zu: line numbers too large", idx);
	want = h.new_len ? s2 + 1 : s2;
	if (h.new_start != want)
		return perr(ps, hl, CX_EPARSE, "hunk %zu: new start %zu should be %zu", idx,
		    h.new_start, want);
	sec->prev_end = s + h.old_len;
	sec->new_prev_end = s2 + h.new_len;

	if ((h.lines = cx_arena_alloc(ps->a, ps->nlines * sizeof(*h.lines))) == NULL)
		return enomem(ps);
	memcpy(h.lines, ps->lines, ps->nlines * sizeof(*h.lines));
	h.nlines = ps->nlines;
	if (vec_reserve((void **)&ps->hunks, &ps->caph, ps->nhunks + 1, sizeof(h)) != 0)
		return enomem(ps);
	ps->hunks[ps->nhunks++] = h;
	return 0;
}

static int
parse_hunks(struct parser *ps, struct section *sec)
{
	struct line l;
	int r;

	if (!peek(ps, &l) || !starts(&l, "@@"))
		return perr(ps, ps->lineno + 1, CX_EPARSE, "expected a hunk after the +++ line");
	while (peek(ps, &l) && starts(&l, "@@"))
		if ((r = parse_hunk(ps, sec)) != 0)
			return r;
	return 0;
}

/* Reads "--- X" and "+++ Y"; the caller saw both. */
static int
parse_minus_plus(struct parser *ps, struct section *sec)
{
	struct line l;
	int r;

	if (!peek(ps, &l) || !l.nl)
		return perr(ps, ps->lineno + 1, CX_EPARSE, "truncated patch");
	if ((r = side_name(ps, ps->lineno + 1, l.s + 4, l.len - 4, &sec->minus, &sec->minus_null,
	         &sec->minus_epoch)) != 0)
		return r;
	take(ps, &l);
	if (!peek(ps, &l) || !starts(&l, "+++ "))
		return perr(ps, ps->lineno + 1, CX_EPARSE, "expected a +++ line");
	if (!l.nl)
		return perr(ps, ps->lineno + 1, CX_EPARSE, "truncated patch");
	if ((r = side_name(ps, ps->lineno + 1, l.s + 4, l.len - 4, &sec->plus, &sec->plus_null,
	         &sec->plus_epoch)) != 0)
		return r;
	take(ps, &l);
	sec->have_mp = 1;
	return parse_hunks(ps, sec);
}

/* ---- sections ---- */

static int
add_file(struct parser *ps, struct section *sec, enum cx_patch_op op, char *oldp, char *newp)
{
	struct cx_patch_file *f;
	const struct cx_patch_hunk *h;

	/* a creation or deletion is one hunk covering the whole file, or none (empty file) */
	if (ps->nhunks > 1 && (op == CX_PATCH_CREATE || op == CX_PATCH_DELETE))
		return perr(ps, sec->line, CX_EPARSE, "a %s has more than one hunk",
		    op == CX_PATCH_CREATE ? "creation" : "deletion");
	h = ps->nhunks ? &ps->hunks[0] : NULL;
	if (op == CX_PATCH_CREATE && h != NULL && (h->old_start != 0 || h->old_len != 0))
		return perr(ps, sec->line, CX_EPARSE, "a creation's hunk must start with -0,0");
	if (op == CX_PATCH_DELETE && h != NULL && (h->new_start != 0 || h->new_len != 0))
		return perr(ps, sec->line, CX_EPARSE, "a deletion's hunk must end with +0,0");
	if (ps->nfiles >= CX_PATCH_MAX_FILES)
		return perr(ps, sec->line, CX_ETOOBIG, "more than %d files", CX_PATCH_MAX_FILES);
	if (vec_reserve((void **)&ps->files, &ps->capf, ps->nfiles + 1, sizeof(*f)) != 0 ||
	    vec_reserve((void **)&ps->fline, &ps->capfl, ps->nfiles + 1, sizeof(size_t)) != 0)
		return enomem(ps);
	f = &ps->files[ps->nfiles];
	memset(f, 0, sizeof(*f));
	f->op = op;
	f->old_path = oldp;
	f->new_path = newp;
	f->nhunks = ps->nhunks;
	if (ps->nhunks) {
		if ((f->hunks = cx_arena_alloc(ps->a, ps->nhunks * sizeof(*f->hunks))) == NULL)
			return enomem(ps);
		memcpy(f->hunks, ps->hunks, ps->nhunks * sizeof(*f->hunks));
	}
	ps->fline[ps->nfiles++] = sec->line;
	return 0;
}

static int
finish_plain(struct parser *ps, struct section *sec)
{
	const struct cx_patch_hunk *h = &ps->hunks[0];

	if (sec->minus_null && sec->plus_null)
		return perr(ps, sec->line, CX_EPARSE, "both sides are /dev/null");
	if (sec->minus_null)
		return add_file(ps, sec, CX_PATCH_CREATE, NULL, sec->plus);
	if (sec->plus_null)
		return add_file(ps, sec, CX_PATCH_DELETE, sec->minus, NULL);
	if (strcmp(sec->minus, sec->plus) != 0)
		return perr(ps, sec->line, CX_EPARSE,
		    "--- and +++ name different files (renames need a git header)");
	/* diff -N: see the rule at the top of this file */
	if (ps->nhunks == 1 && sec->minus_epoch && h->old_start == 0 && h->old_len == 0)
		return add_file(ps, sec, CX_PATCH_CREATE, NULL, sec->plus);
	if (ps->nhunks == 1 && sec->plus_epoch && h->new_start == 0 && h->new_len == 0)
		return add_file(ps, sec, CX_PATCH_DELETE, sec->minus, NULL);
	return add_file(ps, sec, CX_PATCH_EDIT, sec->minus, sec->plus);
}

static int
parse_plain(struct parser *ps, size_t line)
{
	struct section sec;
	int r;

	memset(&sec, 0, sizeof(sec));
	sec.line = line;
	ps->nhunks = 0;
	if ((r = parse_minus_plus(ps, &sec)) != 0)
		return r;
	return finish_plain(ps, &sec);
}

static int
finish_git(struct parser *ps, struct section *sec)
{
	char *name = NULL;
	int r;

	if (sec->ren_from != NULL || sec->ren_to != NULL) {
		if (sec->ren_from == NULL || sec->ren_to == NULL)
			return perr(ps, sec->line, CX_EPARSE, "rename from without rename to");
		if (sec->new_file || sec->deleted)
			return perr(ps, sec->line, CX_EPARSE, "a rename that creates or deletes");
		if (strcmp(sec->ren_from, sec->ren_to) == 0)
			return perr(ps, sec->line, CX_EPARSE, "a rename to the same name");
		if (sec->have_mp &&
		    (sec->minus == NULL || sec->plus == NULL || strcmp(sec->minus, sec->ren_from) ||
		        strcmp(sec->plus, sec->ren_to)))
			return perr(ps, sec->line, CX_EPARSE,
			    "---/+++ names disagree with the rename lines");
		if (!hdr_matches(&sec->gh, sec->ren_from, sec->ren_to))
			return perr(ps, sec->line, CX_EPARSE,
			    "diff --git names disagree with the rename lines");
		return add_file(ps, sec, CX_PATCH_RENAME, sec->ren_from, sec->ren_to);
	}
	if (sec->new_file && sec->deleted)
		return perr(ps, sec->line, CX_EPARSE, "a file both created and deleted");
	if (sec->new_file || sec->deleted) {
		if (sec->have_mp) {
			if (sec->new_file && (!sec->minus_null || sec->plus_null))
				return perr(
				    ps, sec->line, CX_EPARSE, "a new file needs --- /dev/null");
			if (sec->deleted && (sec->minus_null || !sec->plus_null))
				return perr(
				    ps, sec->line, CX_EPARSE, "a deleted file needs +++ /dev/null");
			name = sec->new_file ? sec->plus : sec->minus;
			if (!hdr_matches(&sec->gh, name, name))
				return perr(ps, sec->line, CX_EPARSE,
				    "diff --git names disagree with ---/+++");
		} else if ((r = hdr_name(ps, sec, &name)) != 0)
			return r;
		if (sec->new_file)
			return add_file(ps, sec, CX_PATCH_CREATE, NULL, name);
		return add_file(ps, sec, CX_PATCH_DELETE, name, NULL);
	}
	if (!sec->have_mp) {
		/*
		 * 100644 <-> 100755 only (other modes were refused above): conex
		 * signs content, so this is an edit that keeps the bytes.  Refusing
		 * it would wedge a git-backed opam repository for good, since every
		 * later cumulative patch carries the same change.
		 */
		if (sec->mode_change) {
			if ((r = hdr_name(ps, sec, &name)) != 0)
				return r;
			return add_file(ps, sec, CX_PATCH_EDIT, name, name);
		}
		return perr(ps, sec->line, CX_EPARSE, "diff --git without any change");
	}
	if (sec->minus_null || sec->plus_null)
		return perr(ps, sec->line, CX_EPARSE,
		    "/dev/null without new file mode or deleted file mode");
	if (strcmp(sec->minus, sec->plus) != 0)
		return perr(ps, sec->line, CX_EPARSE,
		    "--- and +++ name different files without rename lines");
	if (!hdr_matches(&sec->gh, sec->minus, sec->plus))
		return perr(ps, sec->line, CX_EPARSE, "diff --git names disagree with ---/+++");
	return add_file(ps, sec, CX_PATCH_EDIT, sec->minus, sec->plus);
}

/* A "diff --git" section: extended header lines, then maybe ---/+++ and hunks. */
static int
parse_git(struct parser *ps, const struct line *dl)
{
	struct section sec;
	struct line l, n;
	size_t ln, k;
	const uint8_t *sp;
	int r;

	memset(&sec, 0, sizeof(sec));
	sec.line = ps->lineno + 1;
	sec.git = 1;
	ps->nhunks = 0;
	if (!dl->nl)
		return perr(ps, sec.line, CX_EPARSE, "truncated patch");
	if ((r = parse_githdr(ps, sec.line, dl->s + 11, dl->len - 11, &sec.gh)) != 0)
		return r;
	take(ps, dl);
	while (peek(ps, &l)) {
		ln = ps->lineno + 1;
		if (is_binary_line(&l))
			return perr(ps, ln, CX_EUNSUPPORTED, "binary patches are not allowed");
		if (starts(&l, "copy from ") || starts(&l, "copy to "))
			return perr(ps, ln, CX_EUNSUPPORTED, "copies are not supported");
		if (starts(&l, "--- ")) {
			if (!peek_after(ps, &l, &n) || !starts(&n, "+++ "))
				return perr(ps, ln + 1, CX_EPARSE, "expected a +++ line");
			if ((r = parse_minus_plus(ps, &sec)) != 0)
				return r;
			break;
		}
		if (starts(&l, "diff ") || starts(&l, "@@"))
			break;
		if (!l.nl)
			return perr(ps, ln, CX_EPARSE, "truncated patch");
		if (starts(&l, "old mode ") || starts(&l, "new mode ")) {
			if ((r = check_mode(ps, ln, l.s + 9, l.len - 9)) != 0)
				return r;
			sec.mode_change = 1;
		} else if (starts(&l, "new file mode ")) {
			if ((r = check_mode(ps, ln, l.s + 14, l.len - 14)) != 0)
				return r;
			sec.new_file = 1;
		} else if (starts(&l, "deleted file mode ")) {
			if ((r = check_mode(ps, ln, l.s + 18, l.len - 18)) != 0)
				return r;
			sec.deleted = 1;
		} else if (starts(&l, "index ")) {
			/* "index abc..def[ mode]": a mode here is the file's unchanged mode */
			sp = memchr(l.s + 6, ' ', l.len - 6);
			if (sp != NULL) {
				k = (size_t)(sp - l.s) + 1;
				if ((r = check_mode(ps, ln, l.s + k, l.len - k)) != 0)
					return r;
			}
		} else if (starts(&l, "similarity index ") || starts(&l, "dissimilarity index ")) {
			/* informational */
		} else if (starts(&l, "rename from ")) {
			if (sec.ren_from != NULL)
				return perr(ps, ln, CX_EPARSE, "repeated rename from");
			if ((r = rename_name(ps, ln, l.s + 12, l.len - 12, &sec.ren_from)) != 0)
				return r;
		} else if (starts(&l, "rename to ")) {
			if (sec.ren_to != NULL)
				return perr(ps, ln, CX_EPARSE, "repeated rename to");
			if ((r = rename_name(ps, ln, l.s + 10, l.len - 10, &sec.ren_to)) != 0)
				return r;
		} else
			break;
		take(ps, &l);
	}
	return finish_git(ps, &sec);
}

/* After "-- " (git format-patch's signature) only the version may follow. */
static int
check_trailer(struct parser *ps)
{
	struct line l;

	while (peek(ps, &l)) {
		if (starts(&l, "diff ") || starts(&l, "--- ") || starts(&l, "+++ ") ||
		    starts(&l, "@@") || is_binary_line(&l))
			return perr(ps, ps->lineno + 1, CX_EPARSE,
			    "patch text after the '-- ' signature line");
		take(ps, &l);
	}
	return 0;
}

static int
only_blank_lines_left(const struct parser *ps)
{
	const uint8_t *p;

	for (p = ps->p; p < ps->end; p++)
		if (*p != '\n')
			return 0;
	return 1;
}

struct path_entry {
	const char *p;
	size_t line;
};

static int
path_entry_cmp(const void *va, const void *vb)
{
	const struct path_entry *a = va, *b = vb;
	int c = strcmp(a->p, b->p);

	if (c != 0)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

/* Two sections touching one path (as source or target) make the result depend on order. */
static int
check_duplicates(struct parser *ps)
{
	struct path_entry *v;
	size_t i, n = 0;
	char sb[128];
	int r = 0;

	if (ps->nfiles == 0)
		return 0;
	if ((v = calloc(ps->nfiles, 2 * sizeof(*v))) == NULL)
		return enomem(ps);
	for (i = 0; i < ps->nfiles; i++) {
		const struct cx_patch_file *f = &ps->files[i];

		if (f->old_path != NULL)
			v[n++] = (struct path_entry){f->old_path, ps->fline[i]};
		if (f->new_path != NULL &&
		    (f->old_path == NULL || strcmp(f->old_path, f->new_path)))
			v[n++] = (struct path_entry){f->new_path, ps->fline[i]};
	}
	qsort(v, n, sizeof(*v), path_entry_cmp);
	for (i = 1; i < n; i++) {
		if (strcmp(v[i - 1].p, v[i].p) == 0) {
			r = perr(ps, v[i].line, CX_EPARSE,
			    "'%s' is touched by two file sections (the other at line %zu)",
			    shown(v[i].p, strlen(v[i].p), sb, sizeof(sb)), v[i - 1].line);
			break;
		}
	}
	free(v);
	return r;
}

static int
parse_all(struct parser *ps)
{
	struct line l, n;
	int r, seen = 0;
	size_t ln;

	while (peek(ps, &l)) {
		ln = ps->lineno + 1;
		if (starts(&l, "diff --git ")) {
			if ((r = parse_git(ps, &l)) != 0)
				return r;
			seen = 1;
			continue;
		}
		if (is_binary_line(&l))
			return perr(ps, ln, CX_EUNSUPPORTED, "binary patches are not allowed");
		if (starts(&l, "diff ") && peek_after(ps, &l, &n)) {
			/* "diff -ruaN old/x new/x": noise before ---/+++ */
			if (is_binary_line(&n))
				return perr(
				    ps, ln + 1, CX_EUNSUPPORTED, "binary patches are not allowed");
			if (starts(&n, "--- ")) {
				take(ps, &l);
				continue;
			}
		}
		if (starts(&l, "--- ") && peek_after(ps, &l, &n) && starts(&n, "+++ ")) {
			if ((r = parse_plain(ps, ln)) != 0)
				return r;
			seen = 1;
			continue;
		}
		if (!seen) {
			/* before the first header: a commit message or other prose */
			take(ps, &l);
			continue;
		}
		if (is_lit(l.s, l.len, "-- "))
			return check_trailer(ps);
		if (only_blank_lines_left(ps))
			break;
		return perr(ps, ln, CX_EPARSE,
		    "unexpected line between file sections (do the hunk counts match?)");
	}
	return check_duplicates(ps);
}

int
cx_patch_parse(
    const uint8_t *data, size_t len, const char *name, struct cx_patch **out, struct cx_err *e)
{
	struct patch_store *st;
	struct parser ps;
	int r;

	if (out == NULL || (data == NULL && len != 0))
		return cx_err_set(e, CX_EINVAL, "cx_patch_parse: bad arguments");
	*out = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	cx_arena_init(&st->arena, 0);
	st->pub.priv = st;

	memset(&ps, 0, sizeof(ps));
	ps.p = data;
	ps.end = data != NULL ? data + len : data;
	ps.name = name != NULL ? name : "patch";
	ps.e = e;
	ps.a = &st->arena;
	if ((r = parse_all(&ps)) == 0 && ps.nfiles > 0) {
		st->pub.files = cx_arena_alloc(&st->arena, ps.nfiles * sizeof(*ps.files));
		if (st->pub.files == NULL)
			r = enomem(&ps);
		else {
			memcpy(st->pub.files, ps.files, ps.nfiles * sizeof(*ps.files));
			st->pub.nfiles = ps.nfiles;
		}
	}
	free(ps.lines);
	free(ps.hunks);
	free(ps.files);
	free(ps.fline);
	if (r != 0) {
		cx_patch_free(&st->pub);
		return r;
	}
	*out = &st->pub;
	return 0;
}

void
cx_patch_free(struct cx_patch *p)
{
	struct patch_store *st;

	if (p == NULL)
		return;
	st = p->priv;
	cx_arena_free(&st->arena);
	free(st);
}

/* ---- apply ---- */

struct oldcur {
	const uint8_t *p, *end;
	size_t idx; /* 0-based index of the line at p */
};

static int
old_line(struct oldcur *c, struct line *l)
{
	if (!line_at(c->p, c->end, l))
		return 0;
	c->p = line_next(l);
	c->idx++;
	return 1;
}

struct applier {
	const struct cx_patch_file *f;
	const char *fname;
	struct cx_buf *out;
	struct cx_err *e;
	int closed; /* a line without '\n' was written: nothing may follow */
	size_t hidx;
	const struct cx_patch_hunk *h;
	/* cx_patch_apply_ex: told of the bytes written so far, if out never moves */
	cx_patch_progress_fn progress;
	void *progress_arg;
	size_t start;
};

static int areject(struct applier *, const char *, ...) __attribute__((format(printf, 2, 3)));

static int
areject(struct applier *ap, const char *fmt, ...)
{
	char msg[CX_ERR_MSG];
	va_list va;

	va_start(va, fmt);
	vsnprintf(msg, sizeof(msg), fmt, va);
	va_end(va);
	if (ap->h == NULL)
		return cx_err_set(ap->e, CX_EREJECT, "%s: %s", ap->fname, msg);
	return cx_err_set(ap->e, CX_EREJECT, "%s: hunk %zu (@@ -%zu,%zu +%zu,%zu @@) %s", ap->fname,
	    ap->hidx, ap->h->old_start, ap->h->old_len, ap->h->new_start, ap->h->new_len, msg);
}

/* Whole lines, '\n' included: what emit() writes for each of them. */
static int
emit_run(struct applier *ap, const uint8_t *s, size_t len)
{
	int r;

	if (ap->closed)
		return areject(ap, "ends the file without a newline, but more lines follow");
	/* a long run goes out in pieces, each announced once written (cx_patch_apply_ex) */
	while (ap->progress != NULL && len > CX_PATCH_PROGRESS_STEP) {
		if ((r = cx_buf_put(ap->out, s, CX_PATCH_PROGRESS_STEP)) != 0)
			return cx_err_set(ap->e, r, "%s: result too large", ap->fname);
		s += CX_PATCH_PROGRESS_STEP;
		len -= CX_PATCH_PROGRESS_STEP;
		ap->progress(ap->progress_arg, ap->out->d + ap->start, ap->out->len - ap->start);
	}
	if ((r = cx_buf_put(ap->out, s, len)) != 0)
		return cx_err_set(ap->e, r, "%s: result too large", ap->fname);
	if (ap->progress != NULL)
		ap->progress(ap->progress_arg, ap->out->d + ap->start, ap->out->len - ap->start);
	return 0;
}

static int
emit(struct applier *ap, const uint8_t *s, size_t len, int nl)
{
	int r;

	if (len == 0 && !nl) {
		/* writes nothing, but the file ends here all the same */
		ap->closed = 1;
		return 0;
	}
	if (ap->closed)
		return areject(ap, "ends the file without a newline, but more lines follow");
	if ((r = cx_buf_put(ap->out, s, len)) != 0 ||
	    (nl && (r = cx_buf_put_u8(ap->out, '\n')) != 0))
		return cx_err_set(ap->e, r, "%s: result too large", ap->fname);
	if (!nl)
		ap->closed = 1;
	return 0;
}

/*
 * Moves oc over whole lines, 32 bytes at a time, while more than a block's
 * worth of them remain before line index upto: a hunk 200,000 lines into
 * keys/m1 was a memchr call per line.  oc stays at the start of a line.
 */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "patch.c: skip_lines assumes a little-endian machine"
#endif
static size_t
newlines8(const uint8_t *p)
{
	const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL, nl8 = 0x0A0A0A0A0A0A0A0AULL;
	uint64_t w, t;

	memcpy(&w, p, 8);
	t = w ^ nl8;
	/* exactly the bytes that are '\n' (no borrows between bytes), as 0x80 */
	t = ~((((t & low7) + low7) | t) | low7);
	/* their number: the 0/1 bytes summed into the top byte (no popcnt call) */
	return (size_t)(((t >> 7) * 0x0101010101010101ULL) >> 56);
}

static void
skip_lines(struct oldcur *oc, size_t upto)
{
	const uint8_t *p = oc->p, *nl;
	size_t n = 0;

	while (oc->end - p >= 32 && upto - oc->idx - n > 32) {
		n += newlines8(p) + newlines8(p + 8) + newlines8(p + 16) + newlines8(p + 24);
		p += 32;
	}
	if (n == 0)
		return;
	/* [oc->p, p) holds n newlines: the line after the last one is line idx + n */
	nl = memrchr(oc->p, '\n', (size_t)(p - oc->p));
	oc->p = nl + 1;
	oc->idx += n;
}

/*
 * Copies the old lines up to index upto (all of them with to_end) as they
 * are.  A 6.7 MB targets file is 230,000 lines around a small hunk: lines
 * ended by '\n' go out in one put per run, which writes the same bytes as
 * emitting them one by one.  Returns 1 at the end of the old file.
 */
static int
copy_old(struct applier *ap, struct oldcur *oc, size_t upto, int to_end, int *r)
{
	const uint8_t *run = oc->p;
	struct line ol;
	int eof = 0;

	*r = 0;
	if (to_end) {
		/* every line up to the last '\n' is whole: one run, no line count needed */
		const uint8_t *nl =
		    oc->p < oc->end ? memrchr(oc->p, '\n', (size_t)(oc->end - oc->p)) : NULL;
		if (nl != NULL)
			oc->p = nl + 1;
	} else {
		skip_lines(oc, upto);
	}
	while (to_end || oc->idx < upto) {
		if (!old_line(oc, &ol)) {
			eof = 1;
			break;
		}
		if (ol.nl)
			continue;
		/* the last line lacks its newline: it closes the file (emit) */
		if (ol.s > run && (*r = emit_run(ap, run, (size_t)(ol.s - run))) != 0)
			return 0;
		if ((*r = emit(ap, ol.s, ol.len, 0)) != 0)
			return 0;
		run = oc->p;
	}
	if (oc->p > run)
		*r = emit_run(ap, run, (size_t)(oc->p - run));
	return eof;
}

static int
apply_hunks(struct applier *ap, const uint8_t *old, size_t oldlen)
{
	const struct cx_patch_file *f = ap->f;
	const struct cx_patch_line *pl;
	const struct cx_patch_hunk *h;
	struct oldcur oc;
	struct line ol;
	size_t k, i, s, at;
	int r;

	/* NULL + 0 is undefined; an absent file reads as an empty one */
	oc.p = old != NULL ? old : (const uint8_t *)"";
	oc.end = oc.p + (old != NULL ? oldlen : 0);
	oc.idx = 0;
	for (k = 0; k < f->nhunks; k++) {
		h = ap->h = &f->hunks[k];
		ap->hidx = k + 1;
		if (h->old_len && h->old_start == 0)
			return cx_err_set(
			    ap->e, CX_EINVAL, "%s: hunk %zu starts at line 0", ap->fname, k + 1);
		s = h->old_len ? h->old_start - 1 : h->old_start;
		if (s < oc.idx)
			return areject(ap, "overlaps the hunk before it");
		/* unchanged lines before the hunk are kept as they are */
		if (copy_old(ap, &oc, s, 0, &r) && r == 0)
			return areject(ap,
			    "does not apply at line %zu: the file has only %zu lines", h->old_start,
			    oc.idx);
		if (r != 0)
			return r;
		for (i = 0; i < h->nlines; i++) {
			pl = &h->lines[i];
			if (pl->kind != ' ' && pl->kind != '-' && pl->kind != '+')
				return cx_err_set(ap->e, CX_EINVAL, "%s: hunk %zu: bad line kind",
				    ap->fname, k + 1);
			/* context and removed lines must be exactly the old file's, newline included */
			if (pl->kind != '+') {
				at = oc.idx + 1;
				if (!old_line(&oc, &ol))
					return areject(ap,
					    "does not apply at line %zu: the file ends before line %zu",
					    h->old_start, at);
				if (ol.len != pl->len || memcmp(ol.s, pl->text, ol.len) != 0)
					return areject(ap,
					    "does not apply at line %zu: line %zu differs",
					    h->old_start, at);
				if (ol.nl != !pl->no_newline)
					return areject(ap,
					    "does not apply at line %zu: line %zu %s a newline at end of file",
					    h->old_start, at, ol.nl ? "has" : "lacks");
			}
			if (pl->kind != '-' &&
			    (r = emit(ap, pl->text, pl->len, !pl->no_newline)) != 0)
				return r;
		}
	}
	/* the rest of the file is kept; messages still name the last hunk */
	copy_old(ap, &oc, 0, 1, &r);
	return r;
}

int
cx_patch_apply(const struct cx_patch_file *f, const uint8_t *old, size_t oldlen, struct cx_buf *out,
    struct cx_err *e)
{
	return cx_patch_apply_ex(f, old, oldlen, out, NULL, NULL, e);
}

int
cx_patch_apply_ex(const struct cx_patch_file *f, const uint8_t *old, size_t oldlen,
    struct cx_buf *out, cx_patch_progress_fn progress, void *arg, struct cx_err *e)
{
	struct applier ap;
	size_t start;
	int r;

	if (f == NULL || out == NULL || (old == NULL && oldlen != 0))
		return cx_err_set(e, CX_EINVAL, "cx_patch_apply: bad arguments");
	memset(&ap, 0, sizeof(ap));
	ap.f = f;
	ap.fname = f->old_path != NULL ? f->old_path : f->new_path != NULL ? f->new_path : "?";
	ap.out = out;
	ap.e = e;
	switch (f->op) {
	case CX_PATCH_CREATE:
		if (old != NULL)
			return areject(&ap, "is created by the patch but exists already");
		break;
	case CX_PATCH_EDIT:
	case CX_PATCH_DELETE:
	case CX_PATCH_RENAME:
		if (old == NULL)
			return areject(&ap, "does not exist");
		break;
	default:
		return cx_err_set(e, CX_EINVAL, "%s: bad operation", ap.fname);
	}
	start = out->len;
	{
		/* room for the result at once, not by doubling (over the cap: found while applying) */
		size_t want = oldlen, k, i;
		uint8_t *p;
		for (k = 0; k < f->nhunks; k++)
			for (i = 0; i < f->hunks[k].nlines; i++)
				if (f->hunks[k].lines[i].kind == '+')
					want += f->hunks[k].lines[i].len + 1;
		if (cx_buf_reserve(out, want, &p) == 0) {
			out->len = start;
			out->d[start] = 0;
			/* the result fits: out->d stays where it is, progress may point into it */
			ap.progress = progress;
			ap.progress_arg = arg;
			ap.start = start;
			if (progress != NULL)
				progress(arg, out->d + start, 0);
		}
	}
	r = apply_hunks(&ap, old, oldlen);
	if (r == 0 && f->op == CX_PATCH_DELETE && out->len != start)
		r = areject(&ap, "is deleted but the hunks do not remove all of it");
	/* a failure: whoever reads the announced bytes stops before they are overwritten */
	if (r != 0 && ap.progress != NULL)
		ap.progress(ap.progress_arg, NULL, 0);
	if (r != 0 && out->len != start) {
		/* leave out as we found it */
		out->len = start;
		if (out->d != NULL)
			out->d[start] = 0;
	}
	return r;
}
