#include "agent/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conex/crypto.h"
#include "conex/fileio.h"

/* Big enough for a couple of thousand lines between two syncs of audit.log. */
#define JOURNAL_SIZE ((uint64_t)1 << 20)
#define HDR_SIZE     4096u
#define HDR_USED     (8u + 3u * 8u + CX_SHA256_LEN)
#define REC_MAGIC    0x52415843u /* "CXAR" */
#define REC_FIXED    (4u + 4u + 8u)

static const uint8_t hdr_magic[8] = {'C', 'X', 'A', 'U', 'D', 'J', '0', '1'};

struct cx_journal {
	int fd;
	uint64_t pos;  /* where the next record goes, in [HDR_SIZE, JOURNAL_SIZE) */
	uint64_t used; /* ring bytes used since open */
	size_t max_line;
	uint8_t *rec; /* one record's bytes, built before its one pwrite */
};

/* Little-endian, n bytes. */
static void
put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static size_t
rec_size(size_t len)
{
	return (REC_FIXED + len + CX_SHA256_LEN + 7) & ~(size_t)7;
}

static void
header(uint8_t h[HDR_USED], dev_t dev, ino_t ino)
{
	memcpy(h, hdr_magic, sizeof(hdr_magic));
	put_le(h + 8, JOURNAL_SIZE, 8);
	put_le(h + 16, (uint64_t)dev, 8);
	put_le(h + 24, (uint64_t)ino, 8);
	cx_sha256(h, 32, h + 32);
}

/* The new file's name must be durable too, or a crash could take the whole journal. */
static int
sync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int fd, r = -1;

	if (copy == NULL)
		return -1;
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		r = fsync(fd);
		close(fd);
	}
	free(copy);
	return r;
}

/* Zeros, then the header last: a crash half-way leaves a journal that is not one. */
static int
make_anew(int fd, const char *path, dev_t dev, ino_t ino, struct cx_err *e)
{
	static const uint8_t zeros[64 * 1024];
	uint8_t h[HDR_USED];

	if (ftruncate(fd, 0) != 0)
		return cx_err_set(e, CX_EIO, "%s: ftruncate: %s", path, strerror(errno));
	for (uint64_t off = 0; off < JOURNAL_SIZE; off += sizeof(zeros))
		if (cx_fd_pwrite_full(fd, zeros, sizeof(zeros), (off_t)off) != 0)
			return cx_err_set(e, CX_EIO, "%s: write: %s", path, strerror(errno));
	header(h, dev, ino);
	if (cx_fd_pwrite_full(fd, h, sizeof(h), 0) != 0)
		return cx_err_set(e, CX_EIO, "%s: write: %s", path, strerror(errno));
	if (fsync(fd) != 0 || sync_dir_of(path) != 0)
		return cx_err_set(e, CX_EIO, "%s: fsync: %s", path, strerror(errno));
	return 0;
}

static int
rec_cmp(const void *x, const void *y)
{
	const struct cx_journal_rec *a = x, *b = y;

	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

size_t
cx_journal_rec_size(size_t len)
{
	return rec_size(len);
}

size_t
cx_journal_encode(uint8_t *out, uint64_t seq, const char *line, size_t len)
{
	size_t rs = rec_size(len);

	put_le(out, REC_MAGIC, 4);
	put_le(out + 4, (uint32_t)len, 4);
	put_le(out + 8, seq, 8);
	memcpy(out + REC_FIXED, line, len);
	cx_sha256(out, REC_FIXED + len, out + REC_FIXED + len);
	memset(out + REC_FIXED + len + CX_SHA256_LEN, 0, rs - (REC_FIXED + len + CX_SHA256_LEN));
	return rs;
}

int
cx_journal_scan(const uint8_t *d, size_t n, size_t max_line, struct cx_journal_rec **recs,
    size_t *nrecs, struct cx_err *e)
{
	struct cx_journal_rec *v = NULL, *nv;
	size_t cnt = 0, cap = 0, off = 0;
	uint8_t h[CX_SHA256_LEN];

	*recs = NULL;
	*nrecs = 0;
	while (n >= REC_FIXED + CX_SHA256_LEN && off <= n - (REC_FIXED + CX_SHA256_LEN)) {
		uint32_t len = (uint32_t)get_le(d + off + 4, 4);
		char *line;

		/* a record is where its magic, its length and its hash say so: else look 8 on */
		if (get_le(d + off, 4) != REC_MAGIC || len == 0 || len > max_line ||
		    rec_size(len) > n - off) {
			off += 8;
			continue;
		}
		cx_sha256(d + off, REC_FIXED + len, h);
		if (memcmp(h, d + off + REC_FIXED + len, sizeof(h)) != 0) {
			off += 8;
			continue;
		}
		if (cnt == cap) {
			cap = cap ? 2 * cap : 64;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
				goto nomem;
			v = nv;
		}
		if ((line = malloc(len)) == NULL)
			goto nomem;
		memcpy(line, d + off + REC_FIXED, len);
		v[cnt].seq = get_le(d + off + 8, 8);
		v[cnt].line = line;
		v[cnt].len = len;
		cnt++;
		off += rec_size(len);
	}
	if (cnt > 0)
		qsort(v, cnt, sizeof(*v), rec_cmp);
	*recs = v;
	*nrecs = cnt;
	return 0;
nomem:
	cx_journal_records_free(v, cnt);
	return cx_err_set(e, CX_ENOMEM, "out of memory");
}

int
cx_journal_open(const char *path, dev_t dev, ino_t ino, size_t max_line, struct cx_journal **out,
    struct cx_journal_rec **recs, size_t *nrecs, struct cx_err *e)
{
	struct cx_journal *j;
	uint8_t *d = NULL, h[HDR_USED];
	struct stat st;
	int r = 0;

	*out = NULL;
	*recs = NULL;
	*nrecs = 0;
	if (rec_size(max_line) > (JOURNAL_SIZE - HDR_SIZE) / 4)
		return cx_err_set(
		    e, CX_EINVAL, "%s: lines of %zu bytes do not fit", path, max_line);
	if ((j = calloc(1, sizeof(*j))) == NULL || (j->rec = malloc(rec_size(max_line))) == NULL) {
		free(j);
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	}
	j->fd = -1;
	j->max_line = max_line;
	j->pos = HDR_SIZE;
	/* as the log: a symlink must not redirect it, and whoever can write it can forge lines */
	j->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (j->fd < 0) {
		r = cx_err_set(e, CX_EIO, "%s: %s", path,
		    errno == ELOOP ? "is a symbolic link" : strerror(errno));
		goto fail;
	}
	if (fstat(j->fd, &st) != 0) {
		r = cx_err_set(e, CX_EIO, "%s: fstat: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
		r = cx_err_set(e, CX_EINVAL,
		    "%s: must be a regular file owned by uid %lu and not writable by group or "
		    "others",
		    path, (unsigned long)geteuid());
		goto fail;
	}
	header(h, dev, ino);
	if ((uint64_t)st.st_size == JOURNAL_SIZE) {
		if ((d = malloc(JOURNAL_SIZE)) == NULL) {
			r = cx_err_set(e, CX_ENOMEM, "out of memory");
			goto fail;
		}
		if (cx_fd_pread_full(j->fd, d, JOURNAL_SIZE, 0) != 0) {
			r = cx_err_set(e, CX_EIO, "%s: read: %s", path, strerror(errno));
			goto fail;
		}
		/* another log's journal (the log was moved aside or replaced) says nothing of this one */
		if (memcmp(d, h, sizeof(h)) == 0) {
			if ((r = cx_journal_scan(d + HDR_SIZE, JOURNAL_SIZE - HDR_SIZE, max_line,
			         recs, nrecs, e)) != 0)
				goto fail;
			free(d);
			*out = j;
			return 0;
		}
	}
	if ((r = make_anew(j->fd, path, dev, ino, e)) != 0)
		goto fail;
	free(d);
	*out = j;
	return 0;
fail:
	free(d);
	cx_journal_close(j);
	return r;
}

void
cx_journal_records_free(struct cx_journal_rec *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((void *)recs[i].line);
	free(recs);
}

uint64_t
cx_journal_need(const struct cx_journal *j, size_t len)
{
	uint64_t rs = rec_size(len);

	return (j->pos + rs > JOURNAL_SIZE ? JOURNAL_SIZE - j->pos : 0) + rs;
}

uint64_t
cx_journal_used(const struct cx_journal *j)
{
	return j->used;
}

uint64_t
cx_journal_ring_size(const struct cx_journal *j)
{
	(void)j;
	return JOURNAL_SIZE - HDR_SIZE;
}

int
cx_journal_put(struct cx_journal *j, uint64_t seq, const char *line, size_t len)
{
	size_t rs = rec_size(len);
	int r;

	if (len == 0 || len > j->max_line) {
		errno = EINVAL;
		return -1;
	}
	if (j->pos + rs > JOURNAL_SIZE) {
		j->used += JOURNAL_SIZE - j->pos;
		j->pos = HDR_SIZE;
	}
	cx_journal_encode(j->rec, seq, line, len);
	r = cx_fd_pwrite_full(j->fd, j->rec, rs, (off_t)j->pos);
	/* written or not, the space counts as used: the caller's rule is about ring bytes */
	j->used += rs;
	j->pos += rs;
	return r;
}

int
cx_journal_sync(struct cx_journal *j)
{
	while (fdatasync(j->fd) != 0)
		if (errno != EINTR)
			return errno;
	return 0;
}

void
cx_journal_close(struct cx_journal *j)
{
	if (j == NULL)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j->rec);
	free(j);
}
