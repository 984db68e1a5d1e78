/*
 * The agent's audit log: one JSON object per line, hash-chained.
 *
 * Each line ends with "prev":"<hex>", the SHA-256 of the previous line's bytes
 * (without its newline), and starts with "seq":N, its 1-based position in the
 * file.  Editing, removing, inserting or reordering a line therefore breaks the
 * chain at the next line.  What the chain cannot show on its own: removal of
 * the last lines or an edit of the very last line, since no later line vouches
 * for them.  Whoever needs that must anchor the head hash elsewhere (syslog,
 * a remote copy); cx_audit_verify checks what the file alone can prove.
 *
 * String escaping (RFC 8259): '"' and '\\' are backslash-escaped; the C0
 * controls, DEL and the C1 controls (U+0080..U+009F) are written as \u00XX so
 * that `cat`ing the log cannot drive the terminal; other valid UTF-8 (RFC 3629:
 * no overlongs, no surrogates, nothing past U+10FFFF) is copied as is; every
 * byte of an invalid sequence is written as \u00XX of the byte.  The log stays
 * valid UTF-8 JSON whatever the peer's executable path contains.  The price:
 * an invalid byte 0xE9 reads back as U+00E9 ("é"), the Latin-1 meaning, so
 * such a name is recorded faithfully only to a reader who knows this rule.
 *
 * Writes: one write(2) of the whole line on an O_APPEND descriptor.  A failed
 * write is rolled back with ftruncate(2) so that no torn fragment is left for
 * the next line to glue onto; the open descriptor holds an exclusive flock(2)
 * so that a second agent cannot fork the chain.
 *
 * Durability is a group commit.  Appending (seq, chain hash, write) is
 * serialised by mu so that the file order is the chain order; fdatasync runs
 * outside mu, and one call covers every line written before it started.
 * Whoever needs line N durable (cx_audit_sync) waits while another thread's
 * sync is running and does the next one itself if N is still not covered, so
 * a slow disk costs each waiter at most two syncs and never blocks an append.
 * What the sync covers is the journal (journal.h): each line is written to
 * the log, then to the journal's ring, and the journal's fdatasync makes it
 * durable, because an overwrite syncs without the inode write that an append
 * needs.  The log itself is synced lazily: by the syncer once half the ring
 * holds lines it has not synced, by a writer whose record would overwrite
 * such a line, and at close.  At open, the journal's lines that continue the
 * log (next seq, chained) are appended to it again: what a crash took from
 * the log's tail comes back.  An optional background syncer (cx_audit_start)
 * lets a caller start a sync without waiting for it (cx_audit_kick), and
 * makes lines nobody waits for durable within AUDIT_LAZY_MS.
 */
#include "agent/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/journal.h"
#include "conex/crypto.h"
#include "conex/fileio.h"
#include "proto/buf.h"

/* Longer lines are refused on write and reported on read (exe paths, names). */
#define AUDIT_LINE_MAX (64u * 1024u)
/* lines nobody waits for (results, loop-side records) are synced this late at most */
#define AUDIT_LAZY_MS 20

static const char zero_prev[CX_SHA256_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* A line handed to the syncer to write (cx_audit_defer): the entry and its strings. */
struct deferred {
	struct deferred *next;
	struct cx_audit_entry en;
	uint8_t sha[CX_SHA256_LEN];
	char s[]; /* the entry's strings, one after another */
};

struct cx_audit {
	int fd;
	char *path; /* for messages */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* for waiters: synced, syncing or failed changed */
	/*
	 * The syncer's own: a kick, a deferred line, stop, or a first unsynced
	 * line while it sleeps.  Apart from cv so that the sync every signature
	 * waits for does not also wake the syncer, only to find nothing to do.
	 */
	pthread_cond_t work;
	/* under mu: */
	int failed;   /* an fsync or rollback failed: the file state is unknown */
	uint64_t seq; /* of the next line */
	char prev[CX_SHA256_HEX + 1];
	uint64_t synced;                /* lines 1..synced of this run are durable */
	int syncing;                    /* a thread is in fdatasync (outside mu) */
	uint64_t want;                  /* the syncer is asked to cover this line */
	int stop;                       /* the syncer must finish and exit */
	int asleep;                     /* the syncer waits with nothing unsynced */
	int64_t sync_ns;                /* a moving average of the journal's fdatasync */
	struct cx_journal *j;           /* where a line is made durable first */
	uint64_t logsynced;             /* lines 1..logsynced are durable in audit.log itself */
	int64_t lazy_due;               /* ms (CLOCK_MONOTONIC): the unsynced lines by then */
	int log_asked;                  /* the syncer was asked to sync audit.log */
	uint64_t jlog;                  /* journal bytes used when audit.log's last sync began */
	uint64_t recovered;             /* lines the journal gave back at open */
	int syncer;                     /* the background syncer runs */
	struct deferred *qhead, *qtail; /* cx_audit_defer's lines, for the syncer to write */
	pthread_t syncer_th;
};

/* Length of the valid UTF-8 sequence at p (RFC 3629 table), 0 if invalid. */
static size_t
utf8_len(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		if (n >= 2 && (p[1] & 0xc0) == 0x80)
			return 2;
		return 0;
	}
	if (c >= 0xe0 && c <= 0xef) {
		uint8_t lo = 0x80, hi = 0xbf;

		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		if (c == 0xed)
			hi = 0x9f; /* surrogates */
		if (n >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80)
			return 3;
		return 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		uint8_t lo = 0x80, hi = 0xbf;

		if (c == 0xf0)
			lo = 0x90; /* overlong */
		if (c == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
		if (n >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
		    (p[3] & 0xc0) == 0x80)
			return 4;
		return 0;
	}
	return 0;
}

static int
put_json_str(struct cx_buf *b, const char *s)
{
	const uint8_t *p = (const uint8_t *)(s != NULL ? s : "");
	size_t n = strlen((const char *)p), i = 0, l;
	int r;

	if ((r = cx_buf_put_u8(b, '"')) != 0)
		return r;
	while (i < n) {
		uint8_t c = p[i];

		if (c == '"' || c == '\\') {
			uint8_t esc[2] = {'\\', c};
			r = cx_buf_put(b, esc, 2);
			l = 1;
		} else if (c < 0x20 || c == 0x7f) {
			r = cx_buf_putf(b, "\\u%04x", c);
			l = 1;
		} else if ((l = utf8_len(p + i, n - i)) == 0) {
			r = cx_buf_putf(b, "\\u%04x", c);
			l = 1;
		} else if (l == 2 && c == 0xc2 && p[i + 1] < 0xa0) {
			/* a C1 control, e.g. U+009B CSI: as dangerous to a terminal as ESC */
			r = cx_buf_putf(b, "\\u%04x", p[i + 1]);
		} else
			r = cx_buf_put(b, p + i, l);
		if (r != 0)
			return r;
		i += l;
	}
	return cx_buf_put_u8(b, '"');
}

static void
line_hash(const char *line, size_t n, char out[CX_SHA256_HEX + 1])
{
	uint8_t h[CX_SHA256_LEN];

	cx_sha256(line, n, h);
	cx_hex_encode(h, sizeof(h), out);
}

/* ---- reading lines back ---- */

struct rec {
	uint64_t seq;
	char prev[CX_SHA256_HEX + 1];
};

static int
is_hex_lower(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* A JSON string at s[*i]; validates escapes and UTF-8, leaves *i after the quote. */
static const char *
scan_string(const char *s, size_t n, size_t *i)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t j = *i, l;

	if (j >= n || p[j] != '"')
		return "expected a string";
	for (j++; j < n; j += l) {
		if (p[j] == '"') {
			*i = j + 1;
			return NULL;
		}
		if (p[j] < 0x20)
			return "raw control character in a string";
		if (p[j] == '\\') {
			if (j + 1 >= n)
				return "truncated escape";
			if (p[j + 1] == 'u') {
				if (j + 6 > n)
					return "truncated \\u escape";
				for (size_t k = 2; k < 6; k++)
					if (!is_hex_lower(p[j + k]) &&
					    !(p[j + k] >= 'A' && p[j + k] <= 'F'))
						return "bad \\u escape";
				l = 6;
			} else if (strchr("\"\\/bfnrt", p[j + 1]) != NULL && p[j + 1] != 0)
				l = 2;
			else
				return "bad escape";
		} else if ((l = utf8_len(p + j, n - j)) == 0)
			return "invalid UTF-8";
	}
	return "unterminated string";
}

static const char *
scan_uint(const char *s, size_t n, size_t *i, uint64_t *v)
{
	size_t j = *i;
	uint64_t x = 0;

	if (j < n && s[j] == '-')
		j++; /* a negative pid is well-formed JSON; only seq must be >= 1 */
	if (j >= n || s[j] < '0' || s[j] > '9')
		return "expected a string or a number";
	if (s[j] == '0' && j + 1 < n && s[j + 1] >= '0' && s[j + 1] <= '9')
		return "number with a leading zero";
	for (; j < n && s[j] >= '0' && s[j] <= '9'; j++) {
		if (x > (UINT64_MAX - (uint64_t)(s[j] - '0')) / 10)
			return "number out of range";
		x = x * 10 + (uint64_t)(s[j] - '0');
	}
	if (s[*i] == '-')
		x = 0;
	*v = x;
	*i = j;
	return NULL;
}

/*
 * Parses one line (without its newline): a flat JSON object, no whitespace, of
 * string and integer values whose first key is "seq" (>= 1) and last key is
 * "prev" (64 lowercase hex).  Other keys are not interpreted, so that fields
 * can be added later without breaking old verifiers.
 */
static const char *
parse_line(const char *s, size_t n, struct rec *r)
{
	size_t i = 0, k0, klen, v0;
	int nkeys = 0, have_prev;
	const char *why;

	if (n == 0)
		return "empty line";
	if (s[i++] != '{')
		return "does not start with '{'";
	for (;;) {
		k0 = i;
		if ((why = scan_string(s, n, &i)) != NULL)
			return why;
		klen = i - k0;
		if (i >= n || s[i++] != ':')
			return "expected ':'";
		v0 = i;
		have_prev = 0;
		if (nkeys == 0) {
			if (klen != 5 || memcmp(s + k0, "\"seq\"", 5) != 0)
				return "first key is not \"seq\"";
			if ((i < n && s[i] == '-') || scan_uint(s, n, &i, &r->seq) != NULL)
				return "seq is not a positive integer";
			if (r->seq == 0)
				return "seq is 0";
		} else if (i < n && s[i] == '"') {
			if ((why = scan_string(s, n, &i)) != NULL)
				return why;
			if (klen == 6 && memcmp(s + k0, "\"prev\"", 6) == 0) {
				if (i - v0 != CX_SHA256_HEX + 2)
					return "prev is not 64 hex digits";
				for (size_t j = v0 + 1; j < i - 1; j++)
					if (!is_hex_lower((unsigned char)s[j]))
						return "prev is not 64 lowercase hex digits";
				memcpy(r->prev, s + v0 + 1, CX_SHA256_HEX);
				r->prev[CX_SHA256_HEX] = '\0';
				have_prev = 1;
			}
		} else {
			uint64_t ignored;

			if ((why = scan_uint(s, n, &i, &ignored)) != NULL)
				return why;
		}
		nkeys++;
		if (i >= n)
			return "unterminated object";
		if (s[i] == ',') {
			i++;
			continue;
		}
		if (s[i] != '}')
			return "expected ',' or '}'";
		if (i + 1 != n)
			return "bytes after the closing '}'";
		if (!have_prev)
			return "last key is not \"prev\"";
		return NULL;
	}
}

/* Milliseconds on CLOCK_MONOTONIC, for the syncer's deadlines. */
static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char torn_msg[] =
    "the last line is torn (no newline at the end: interrupted write?) and the journal "
    "cannot restore it; check it with verify and move the log aside";

/*
 * Reads the last whole line (the file may be large: only its tail is read).
 * A crash can leave a last line cut short, or zeros where the filesystem had
 * extended the file but not written it: then *cut is where the whole lines
 * end, for open to repair from the journal if it can; else *cut is -1.
 */
static int
read_tail(struct cx_audit *a, off_t *cut, struct cx_err *e)
{
	struct stat st;
	off_t start;
	size_t len;
	char *buf, *line, *nl;
	struct rec r;
	const char *why;
	int ret = 0;

	*cut = -1;
	if (fstat(a->fd, &st) != 0)
		return cx_err_set(e, CX_EIO, "%s: fstat: %s", a->path, strerror(errno));
	a->seq = 1;
	memcpy(a->prev, zero_prev, sizeof(a->prev));
	if (st.st_size == 0)
		return 0;
	/* a torn last line and the whole one before it */
	start = st.st_size > 2 * ((off_t)AUDIT_LINE_MAX + 1)
	    ? st.st_size - 2 * ((off_t)AUDIT_LINE_MAX + 1)
	    : 0;
	len = (size_t)(st.st_size - start);
	if ((buf = malloc(len)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "%s: out of memory", a->path);
	if (cx_fd_pread_full(a->fd, buf, len, start) != 0) {
		ret = cx_err_set(e, CX_EIO, "%s: read: %s", a->path, strerror(errno));
		goto out;
	}
	if (buf[len - 1] != '\n') {
		if ((nl = memrchr(buf, '\n', len)) == NULL) {
			if (start != 0) {
				ret = cx_err_set(e, CX_EPARSE, "%s: %s", a->path, torn_msg);
				goto out;
			}
			*cut = 0; /* not one whole line */
			goto out;
		}
		*cut = start + (nl - buf) + 1;
		len = (size_t)(nl - buf) + 1;
	}
	len--;
	if ((nl = memrchr(buf, '\n', len)) != NULL)
		line = nl + 1;
	else if (start == 0)
		line = buf;
	else {
		ret = cx_err_set(e, CX_EPARSE, "%s: the last line is longer than %u bytes", a->path,
		    AUDIT_LINE_MAX);
		goto out;
	}
	len -= (size_t)(line - buf);
	if ((why = parse_line(line, len, &r)) != NULL) {
		ret = cx_err_set(
		    e, CX_EPARSE, "%s: the last line is not an audit record: %s", a->path, why);
		goto out;
	}
	if (r.seq == UINT64_MAX) {
		ret = cx_err_set(e, CX_ETOOBIG, "%s: seq is exhausted", a->path);
		goto out;
	}
	a->seq = r.seq + 1;
	line_hash(line, len, a->prev);
out:
	free(buf);
	return ret;
}

/*
 * The line of the journal that continues the log: seq a->seq, chained to
 * a->prev.  NULL if there is none, or if two different ones would (the
 * journal cannot say which was the log's; nothing is guessed).
 */
static const struct cx_journal_rec *
next_rec(struct cx_audit *a, const struct cx_journal_rec *v, size_t n, size_t *i)
{
	const struct cx_journal_rec *found = NULL;
	struct rec r;

	while (*i < n && v[*i].seq < a->seq)
		(*i)++;
	for (size_t k = *i; k < n && v[k].seq == a->seq; k++) {
		if (v[k].len < 2 || v[k].line[v[k].len - 1] != '\n' ||
		    parse_line(v[k].line, v[k].len - 1, &r) != NULL || r.seq != a->seq ||
		    strcmp(r.prev, a->prev) != 0)
			continue;
		if (found != NULL &&
		    (found->len != v[k].len || memcmp(found->line, v[k].line, v[k].len) != 0))
			return NULL;
		found = &v[k];
	}
	return found;
}

/*
 * Opens the journal and appends to the log every line of it that the log
 * lost in a crash, in order and chained; a torn last line (cut >= 0) is
 * replaced by the journal's copy, or the log is refused as before.
 */
static int
recover(struct cx_audit *a, off_t cut, struct cx_err *e)
{
	struct cx_journal_rec *v = NULL;
	const struct cx_journal_rec *rec;
	struct stat st;
	char *jpath = NULL;
	size_t n = 0, i = 0;
	int r;

	if (fstat(a->fd, &st) != 0)
		return cx_err_set(e, CX_EIO, "%s: fstat: %s", a->path, strerror(errno));
	if (asprintf(&jpath, "%s.journal", a->path) < 0)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	r = cx_journal_open(jpath, st.st_dev, st.st_ino, AUDIT_LINE_MAX + 1, &a->j, &v, &n, e);
	free(jpath);
	if (r != 0)
		return r;
	while ((rec = next_rec(a, v, n, &i)) != NULL) {
		if (cut >= 0) {
			if (ftruncate(a->fd, cut) != 0) {
				r = cx_err_set(
				    e, CX_EIO, "%s: ftruncate: %s", a->path, strerror(errno));
				goto out;
			}
			cut = -1;
		}
		if (cx_fd_write_full(a->fd, (const uint8_t *)rec->line, rec->len) != 0) {
			r = cx_err_set(e, CX_EIO, "%s: write: %s", a->path, strerror(errno));
			goto out;
		}
		line_hash(rec->line, rec->len - 1, a->prev);
		a->seq++;
		a->recovered++;
	}
	if (cut >= 0) {
		r = cx_err_set(e, CX_EPARSE, "%s: %s", a->path, torn_msg);
		goto out;
	}
	/*
	 * Always: after a crash of the agent alone, lines the journal made
	 * durable may still be only in the page cache of the log, and the
	 * ring is about to be overwritten from its start.
	 */
	if (fdatasync(a->fd) != 0)
		r = cx_err_set(e, CX_EIO, "%s: fdatasync: %s", a->path, strerror(errno));
out:
	cx_journal_records_free(v, n);
	return r;
}

int
cx_audit_open(const char *path, struct cx_audit **out, struct cx_err *e)
{
	struct cx_audit *a;
	struct stat st;
	off_t cut;
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL || (a->path = strdup(path)) == NULL) {
		free(a);
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	pthread_cond_init(&a->work, NULL);
	/* O_NOFOLLOW: a symlink planted at the log path must not redirect appends */
	a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (a->fd < 0) {
		r = cx_err_set(e, errno == ENOENT ? CX_ENOENT : CX_EIO, "%s: %s", path,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
		goto fail;
	}
	if (fstat(a->fd, &st) != 0) {
		r = cx_err_set(e, CX_EIO, "%s: fstat: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		r = cx_err_set(e, CX_EINVAL, "%s: not a regular file", path);
		goto fail;
	}
	/* someone else able to write it could rewrite the whole chain consistently */
	if (st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
		r = cx_err_set(e, CX_EINVAL,
		    "%s: must be owned by uid %lu and not writable by group or others", path,
		    (unsigned long)geteuid());
		goto fail;
	}
	if (flock(a->fd, LOCK_EX | LOCK_NB) != 0) {
		r = cx_err_set(e, CX_EIO, "%s: %s", path,
		    errno == EWOULDBLOCK ? "another process is appending to this audit log"
		                         : strerror(errno));
		goto fail;
	}
	if ((r = read_tail(a, &cut, e)) != 0 || (r = recover(a, cut, e)) != 0)
		goto fail;
	/* what is in the file is durable now (recover synced it) */
	a->synced = a->seq - 1;
	a->logsynced = a->seq - 1;
	/* not cheap until measured so */
	a->sync_ns = 1000000;
	*out = a;
	return 0;
fail:
	cx_audit_close(a);
	return r;
}

uint64_t
cx_audit_recovered(const struct cx_audit *a)
{
	return a->recovered;
}

uint64_t
cx_audit_log_synced(struct cx_audit *a)
{
	uint64_t r;

	pthread_mutex_lock(&a->mu);
	r = a->logsynced;
	pthread_mutex_unlock(&a->mu);
	return r;
}

void
cx_audit_close(struct cx_audit *a)
{
	if (a == NULL)
		return;
	if (a->syncer) {
		pthread_mutex_lock(&a->mu);
		a->stop = 1;
		pthread_cond_signal(&a->work);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->syncer_th, NULL);
	}
	if (a->fd >= 0) {
		/* every line durable in the log itself: the journal is then needed no more */
		if (!a->failed && a->logsynced + 1 < a->seq)
			(void)fdatasync(a->fd);
		close(a->fd); /* also releases the flock */
	}
	cx_journal_close(a->j);
	pthread_cond_destroy(&a->cv);
	pthread_cond_destroy(&a->work);
	pthread_mutex_destroy(&a->mu);
	free(a->path);
	free(a);
}

/* audit.log caught up: what the journal holds up to used may be overwritten. */
static void
log_synced(struct cx_audit *a, uint64_t target, uint64_t used)
{
	if (used > a->jlog)
		a->jlog = used;
	if (target > a->logsynced)
		a->logsynced = target;
	if (target > a->synced) {
		a->synced = target;
		pthread_cond_broadcast(&a->cv);
	}
}

static int
fdatasync_retry(int fd)
{
	while (fdatasync(fd) != 0)
		if (errno != EINTR)
			return errno;
	return 0;
}

/*
 * Half the ring holds lines that audit.log does not hold durably: time for
 * the syncer to sync audit.log, long before a writer would have to.
 */
static int
log_pressure(const struct cx_audit *a)
{
	return cx_journal_used(a->j) - a->jlog > cx_journal_ring_size(a->j) / 2;
}

/* audit.log's own sync, holding a->mu: only when the journal's ring is full. */
static int
log_sync_locked(struct cx_audit *a, struct cx_err *e)
{
	uint64_t target = a->seq - 1, used = cx_journal_used(a->j);
	int err;

	if ((err = fdatasync_retry(a->fd)) != 0) {
		a->failed = 1;
		return cx_err_set(e, CX_EIO, "%s: fdatasync: %s", a->path, strerror(err));
	}
	log_synced(a, target, used);
	return 0;
}

/* audit.log's own sync, by the syncer; entered and left with a->mu held. */
static void
log_round(struct cx_audit *a)
{
	uint64_t target = a->seq - 1, used = cx_journal_used(a->j);
	int err;

	pthread_mutex_unlock(&a->mu);
	err = fdatasync_retry(a->fd);
	pthread_mutex_lock(&a->mu);
	a->log_asked = 0;
	if (err != 0) {
		a->failed = 1;
		pthread_cond_broadcast(&a->cv);
	} else
		log_synced(a, target, used);
}

/* Builds, chains and writes one line; under a->mu. *seq: its number. */
static int
append_locked(struct cx_audit *a, const struct cx_audit_entry *en, uint64_t *seq, struct cx_err *e)
{
	char tbuf[32], hex[CX_SHA256_HEX + 1], next[CX_SHA256_HEX + 1];
	struct timespec ts;
	struct tm tm;
	struct cx_buf b;
	off_t size;
	int r, saved, pressure;

	if (a->failed)
		return cx_err_set(e, CX_EIO,
		    "%s: an earlier write failed; the audit log must be reopened", a->path);
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL ||
	    strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return cx_err_set(e, CX_EIO, "cannot format the current time");
	if (en->data_sha256 != NULL)
		cx_hex_encode(en->data_sha256, CX_SHA256_LEN, hex);
	else
		hex[0] = '\0';

	cx_buf_init(&b, AUDIT_LINE_MAX);
	/* the key order is part of the format: seq first and prev last (parse_line) */
	if ((r = cx_buf_putf(&b, "{\"seq\":%" PRIu64 ",\"time\":\"%s\",\"uid\":%lu,\"pid\":%ld",
	         a->seq, tbuf, (unsigned long)en->uid, (long)en->pid)) != 0 ||
	    (r = cx_buf_put_str(&b, ",\"exe\":")) != 0 || (r = put_json_str(&b, en->exe)) != 0 ||
	    (r = cx_buf_put_str(&b, ",\"op\":")) != 0 || (r = put_json_str(&b, en->op)) != 0 ||
	    (r = cx_buf_put_str(&b, ",\"keyid\":")) != 0 ||
	    (r = put_json_str(&b, en->keyid)) != 0 ||
	    (r = cx_buf_put_str(&b, ",\"token\":")) != 0 ||
	    (r = put_json_str(&b, en->token)) != 0 || (r = cx_buf_put_str(&b, ",\"type\":")) != 0 ||
	    (r = put_json_str(&b, en->type)) != 0 || (r = cx_buf_put_str(&b, ",\"name\":")) != 0 ||
	    (r = put_json_str(&b, en->name)) != 0 ||
	    (r = cx_buf_putf(&b, ",\"sha256\":\"%s\"", hex)) != 0 ||
	    (r = cx_buf_put_str(&b, ",\"result\":")) != 0 ||
	    (r = put_json_str(&b, en->result)) != 0 ||
	    (r = cx_buf_putf(&b, ",\"prev\":\"%s\"}", a->prev)) != 0) {
		cx_buf_free(&b);
		return cx_err_set(e, r, "%s: cannot build audit line%s", a->path,
		    r == CX_ETOOBIG ? " (longer than the line limit)" : "");
	}
	line_hash((const char *)b.d, b.len, next);
	if ((r = cx_buf_put_u8(&b, '\n')) != 0) {
		cx_buf_free(&b);
		return cx_err_set(e, r, "%s: audit line too long", a->path);
	}

	/* the ring may overwrite only records whose lines audit.log holds durably */
	if (cx_journal_used(a->j) + cx_journal_need(a->j, b.len) - a->jlog >
	        cx_journal_ring_size(a->j) &&
	    (r = log_sync_locked(a, e)) != 0)
		goto out;
	/*
	 * The size for a rollback, from lseek, not fstat: on this kernel asking
	 * for a file's ctime makes its next change take a fine-grained timestamp,
	 * which moves every later timestamp, so the journal's fdatasync would
	 * write its inode too (docs/benchmarks.md, "The audit sync").
	 */
	if ((size = lseek(a->fd, 0, SEEK_END)) < 0) {
		r = cx_err_set(e, CX_EIO, "%s: lseek: %s", a->path, strerror(errno));
		goto out;
	}
	if (cx_fd_write_full(a->fd, b.d, b.len) != 0) {
		saved = errno;
		/* no torn fragment may stay: the next line would be glued onto it */
		if (ftruncate(a->fd, size) != 0)
			a->failed = 1;
		r = cx_err_set(e, CX_EIO, "%s: write: %s", a->path, strerror(saved));
		goto out;
	}
	/* after the log's write: a record exists only for a line the log has */
	if (cx_journal_put(a->j, a->seq, (const char *)b.d, b.len) != 0) {
		/* in the log, but it can no longer be made durable as promised */
		a->failed = 1;
		r = cx_err_set(e, CX_EIO, "%s.journal: write: %s", a->path, strerror(errno));
		goto out;
	}
	if (a->synced + 1 == a->seq)
		a->lazy_due = mono_ms() + AUDIT_LAZY_MS;
	*seq = a->seq++;
	memcpy(a->prev, next, sizeof(a->prev));
	pressure = log_pressure(a);
	if (a->asleep || (pressure && !a->log_asked)) {
		/* a line nobody may wait for (AUDIT_LAZY_MS starts now), or a ring half full */
		a->asleep = 0;
		a->log_asked = pressure;
		pthread_cond_signal(&a->work);
	}
	r = 0;
out:
	cx_buf_free(&b);
	return r;
}

int
cx_audit_write(struct cx_audit *a, const struct cx_audit_entry *en, uint64_t *seq, struct cx_err *e)
{
	int r;

	pthread_mutex_lock(&a->mu);
	r = append_locked(a, en, seq, e);
	pthread_mutex_unlock(&a->mu);
	return r;
}

/*
 * One fdatasync covering every line written so far; entered and left with
 * a->mu held, which is released around the call.  0 or the errno.
 */
static int
sync_round(struct cx_audit *a)
{
	uint64_t target = a->seq - 1;
	struct timespec t0, t1;
	int err = 0;

	a->syncing = 1;
	pthread_mutex_unlock(&a->mu);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = cx_journal_sync(a->j);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_lock(&a->mu);
	a->syncing = 0;
	a->sync_ns +=
	    ((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec) - a->sync_ns) / 8;
	if (err != 0)
		/* after a failed sync the kernel may have dropped the pages: state unknown */
		a->failed = 1;
	else if (target > a->synced)
		a->synced = target;
	pthread_cond_broadcast(&a->cv);
	return err;
}

int
cx_audit_sync(struct cx_audit *a, uint64_t seq, struct cx_err *e)
{
	int r = 0, err;

	pthread_mutex_lock(&a->mu);
	if (seq >= a->seq) {
		/* never written: no sync would ever cover it */
		pthread_mutex_unlock(&a->mu);
		return cx_err_set(
		    e, CX_EINVAL, "%s: line %" PRIu64 " was not written", a->path, seq);
	}
	while (a->synced < seq) {
		if (a->failed) {
			r = cx_err_set(
			    e, CX_EIO, "%s: a sync failed: the log's state is unknown", a->path);
			break;
		}
		if (a->syncing) {
			/* the running sync may have started before our line was written */
			pthread_cond_wait(&a->cv, &a->mu);
			continue;
		}
		if ((err = sync_round(a)) != 0) {
			r = cx_err_set(e, CX_EIO, "%s: fdatasync: %s", a->path, strerror(err));
			break;
		}
	}
	pthread_mutex_unlock(&a->mu);
	return r;
}

int64_t
cx_audit_sync_ns(struct cx_audit *a)
{
	int64_t r;

	pthread_mutex_lock(&a->mu);
	r = a->sync_ns;
	pthread_mutex_unlock(&a->mu);
	return r;
}

void
cx_audit_kick(struct cx_audit *a, uint64_t seq)
{
	pthread_mutex_lock(&a->mu);
	if (seq > a->want) {
		a->want = seq;
		pthread_cond_signal(&a->work);
	}
	pthread_mutex_unlock(&a->mu);
}

/*
 * Writes the deferred lines, in the order they came, and asks for their
 * sync; under a->mu.  One that cannot be written is a record lost: the log
 * is then marked failed, so that no signature goes out unrecorded after it.
 */
static void
write_deferred(struct cx_audit *a)
{
	struct deferred *d;
	struct cx_err e = {0};
	uint64_t seq;

	while ((d = a->qhead) != NULL) {
		if ((a->qhead = d->next) == NULL)
			a->qtail = NULL;
		if (!a->failed && append_locked(a, &d->en, &seq, &e) != 0)
			a->failed = 1;
		free(d);
	}
	if (a->seq - 1 > a->want)
		a->want = a->seq - 1;
}

int
cx_audit_defer(struct cx_audit *a, const struct cx_audit_entry *en, struct cx_err *e)
{
	const char *src[7] = {
	    en->op, en->exe, en->keyid, en->token, en->type, en->name, en->result};
	const char **dst[7];
	struct deferred *d;
	size_t len[7], total = 0, off = 0;
	uint64_t seq;
	int r = 0;

	if (!a->syncer)
		return cx_audit_write(a, en, &seq, e);
	for (int i = 0; i < 7; i++) {
		len[i] = strlen(src[i] != NULL ? src[i] : "") + 1;
		if (len[i] > AUDIT_LINE_MAX)
			return cx_err_set(e, CX_ETOOBIG, "%s: audit line too long", a->path);
		total += len[i];
	}
	if ((d = calloc(1, sizeof(*d) + total)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	d->en = *en;
	dst[0] = &d->en.op;
	dst[1] = &d->en.exe;
	dst[2] = &d->en.keyid;
	dst[3] = &d->en.token;
	dst[4] = &d->en.type;
	dst[5] = &d->en.name;
	dst[6] = &d->en.result;
	for (int i = 0; i < 7; i++) {
		memcpy(d->s + off, src[i] != NULL ? src[i] : "", len[i]);
		*dst[i] = d->s + off;
		off += len[i];
	}
	if (en->data_sha256 != NULL) {
		memcpy(d->sha, en->data_sha256, sizeof(d->sha));
		d->en.data_sha256 = d->sha;
	}
	pthread_mutex_lock(&a->mu);
	if (a->failed)
		r = cx_err_set(e, CX_EIO,
		    "%s: an earlier write failed; the audit log must be reopened", a->path);
	else {
		if (a->qtail != NULL)
			a->qtail->next = d;
		else
			a->qhead = d;
		a->qtail = d;
		d = NULL;
		pthread_cond_signal(&a->work);
	}
	pthread_mutex_unlock(&a->mu);
	free(d);
	return r;
}

static void *
syncer_main(void *arg)
{
	struct cx_audit *a = arg;
	struct timespec ts;
	int64_t wait_ms;
	int linger = 0;

	pthread_mutex_lock(&a->mu);
	for (;;) {
		if (a->qhead != NULL) {
			write_deferred(a);
			continue;
		}
		if (a->stop)
			break;
		if (a->syncing) {
			/* another thread's sync: see what it covered once it ends */
			pthread_cond_wait(&a->cv, &a->mu);
			continue;
		}
		if (!a->failed && a->want > a->synced) {
			(void)sync_round(a);
			/*
			 * Kicked: more kicks are likely to follow (a signing
			 * client), each with a result line in between that
			 * nobody waits for.  Stay awake for AUDIT_LAZY_MS so
			 * that those lines need no wake-up of their own.
			 */
			linger = 1;
			continue;
		}
		/*
		 * audit.log itself only when half the journal's ring waits for
		 * it: its syncs (an append's: the inode too) queue before the
		 * journal's on the disk, so the fewer the better.
		 */
		if (!a->failed && log_pressure(a)) {
			log_round(a);
			continue;
		}
		/* lines nobody waits for: durable (in the journal) AUDIT_LAZY_MS after the first */
		if (!a->failed && a->seq - 1 > a->synced && mono_ms() >= a->lazy_due) {
			(void)sync_round(a);
			continue;
		}
		if (a->failed || (a->seq - 1 <= a->synced && !linger)) {
			a->asleep = 1;
			pthread_cond_wait(&a->work, &a->mu);
			a->asleep = 0;
			continue;
		}
		/* lines due, or lingering: give a waiter or a kick the chance to batch them */
		wait_ms = a->seq - 1 > a->synced ? a->lazy_due - mono_ms() : AUDIT_LAZY_MS;
		if (wait_ms <= 0)
			continue;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (pthread_cond_timedwait(&a->work, &a->mu, &ts) != 0 && a->seq - 1 <= a->synced)
			linger = 0;
	}
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

int
cx_audit_start(struct cx_audit *a, struct cx_err *e)
{
	int r;

	if (a->syncer)
		return 0;
	if ((r = pthread_create(&a->syncer_th, NULL, syncer_main, a)) != 0)
		return cx_err_set(
		    e, CX_EIO, "%s: cannot start the syncer: %s", a->path, strerror(r));
	a->syncer = 1;
	return 0;
}

int
cx_audit_append(struct cx_audit *a, const struct cx_audit_entry *en, struct cx_err *e)
{
	uint64_t seq;
	int r;

	if ((r = cx_audit_write(a, en, &seq, e)) != 0)
		return r;
	return cx_audit_sync(a, seq, e);
}

int
cx_audit_verify(const char *path, uint64_t *nlines, struct cx_err *e)
{
	char prev[CX_SHA256_HEX + 1];
	/* room for one maximal line plus its newline, plus a read's worth */
	const size_t cap = 2 * (AUDIT_LINE_MAX + 1);
	size_t have = 0, start = 0;
	uint64_t lineno = 0;
	char *buf = NULL, *nl;
	struct rec r;
	const char *why;
	ssize_t got;
	int fd, ret = 0;

	if (nlines != NULL)
		*nlines = 0;
	memcpy(prev, zero_prev, sizeof(prev));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return cx_err_set(
		    e, errno == ENOENT ? CX_ENOENT : CX_EIO, "%s: %s", path, strerror(errno));
	if ((buf = malloc(cap)) == NULL) {
		ret = cx_err_set(e, CX_ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
			size_t len = (size_t)(nl - (buf + start));
			const char *line = buf + start;

			lineno++;
			if (len > AUDIT_LINE_MAX) {
				ret = cx_err_set(e, CX_EREJECT,
				    "%s: line %" PRIu64 ": longer than %u bytes", path, lineno,
				    AUDIT_LINE_MAX);
				goto out;
			}
			if ((why = parse_line(line, len, &r)) != NULL) {
				ret = cx_err_set(e, CX_EREJECT,
				    "%s: line %" PRIu64 ": not an audit record: %s", path, lineno,
				    why);
				goto out;
			}
			/* the chain first: it is what an edit or a removal breaks */
			if (strcmp(r.prev, prev) != 0) {
				if (lineno == 1)
					ret = cx_err_set(e, CX_EREJECT,
					    "%s: line 1: prev is "
					    "not 64 zeros, as the first line's must be (removed "
					    "line?)",
					    path);
				else
					ret = cx_err_set(e, CX_EREJECT,
					    "%s: line %" PRIu64
					    ": prev does not match the hash of line %" PRIu64
					    " (edited or removed line?)",
					    path, lineno, lineno - 1);
				goto out;
			}
			if (r.seq != lineno) {
				ret = cx_err_set(e, CX_EREJECT,
				    "%s: line %" PRIu64 ": seq is %" PRIu64 ", expected %" PRIu64,
				    path, lineno, r.seq, lineno);
				goto out;
			}
			line_hash(line, len, prev);
			start += len + 1;
		}
		if (have - start > AUDIT_LINE_MAX) {
			ret =
			    cx_err_set(e, CX_EREJECT, "%s: line %" PRIu64 ": longer than %u bytes",
			        path, lineno + 1, AUDIT_LINE_MAX);
			goto out;
		}
		memmove(buf, buf + start, have - start);
		have -= start;
		start = 0;
		if ((got = read(fd, buf + have, cap - have)) < 0) {
			if (errno == EINTR)
				continue;
			ret = cx_err_set(e, CX_EIO, "%s: read: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		have += (size_t)got;
	}
	if (have > 0) {
		ret = cx_err_set(e, CX_EREJECT,
		    "%s: line %" PRIu64 ": torn line (no newline "
		    "at the end: interrupted write?)",
		    path, lineno + 1);
		goto out;
	}
out:
	if (nlines != NULL)
		*nlines = lineno;
	free(buf);
	close(fd);
	return ret;
}
