/*
 * Directory backend.  Every path is resolved one segment at a time relative
 * to directory fds with O_NOFOLLOW, so a symlink anywhere inside the
 * repository is met, never followed.  The walk is the hot path of
 * verification: it trusts d_type (fstatat only for DT_UNKNOWN), never stats a
 * regular file (it reads to EOF; the size is the bytes read), and splits the
 * top-level entries of the walked directory between one thread per core, each
 * walking and hashing its share.
 */
#include "conex/repo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#define HASH_BUFSZ  (128u * 1024u)
#define DENTS_BUFSZ (32u * 1024u)
#define WALK_STOP   1 /* internal: another worker failed first; not an error of ours */

struct dir_repo {
	struct cx_repo base;
	int fd;
	char *name;
};

static int
errno_err(struct cx_err *e, int err, const char *path, size_t plen)
{
	if (err == ENOENT)
		return cx_err_set(e, CX_ENOENT, "%.*s: no such file or directory", (int)plen, path);
	if (err == ENOMEM)
		return cx_err_set(e, CX_ENOMEM, "%.*s: out of memory", (int)plen, path);
	return cx_err_set(e, CX_EIO, "%.*s: %s", (int)plen, path, strerror(err));
}

/*
 * Maps a failed openat(O_NOFOLLOW) of name in dfd to an error for
 * path[0..plen): ELOOP and ENOTDIR mean a symlink or a file where a directory
 * was asked for, which the repository must not contain.
 */
static int
open_err(int dfd, const char *name, int err, const char *path, size_t plen, struct cx_err *e)
{
	struct stat st;

	if (err == ELOOP)
		return cx_err_set(e, CX_EREJECT, "%.*s: is a symlink", (int)plen, path);
	if (err == ENOTDIR || err == ENXIO || err == EISDIR) {
		/* O_NOFOLLOW|O_DIRECTORY on a symlink says ENOTDIR: look again for the message */
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			return cx_err_set(e, CX_EREJECT, "%.*s: is a symlink", (int)plen, path);
		if (err == ENOTDIR)
			return cx_err_set(e, CX_EREJECT, "%.*s: not a directory", (int)plen, path);
		return cx_err_set(e, CX_EREJECT, "%.*s: not a regular file", (int)plen, path);
	}
	return errno_err(e, err, path, plen);
}

static void
fd_release(struct dir_repo *d, int fd)
{
	if (fd != d->fd && fd != -1)
		close(fd);
}

/*
 * Opens the directories of path up to (not including) the segment at
 * path[upto], one openat(O_NOFOLLOW|O_DIRECTORY) per segment.  upto must be 0
 * or the index just past a '/'.  *pfd is d->fd when upto is 0.
 */
static int
open_prefix(struct dir_repo *d, const char *path, size_t upto, int *pfd, struct cx_err *e)
{
	char seg[CX_REPO_PATH_MAX];
	size_t s = 0, i;
	int fd = d->fd, nfd, err;

	*pfd = -1;
	while (s < upto) {
		for (i = s; path[i] != '/'; i++)
			;
		if (i - s >= sizeof(seg)) {
			fd_release(d, fd);
			return cx_err_set(e, CX_EINVAL, "%s: path too long", path);
		}
		memcpy(seg, path + s, i - s);
		seg[i - s] = '\0';
		nfd = openat(fd, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd == -1) {
			err = errno;
			err = open_err(fd, seg, err, path, i, e);
			fd_release(d, fd);
			return err;
		}
		fd_release(d, fd);
		fd = nfd;
		s = i + 1;
	}
	*pfd = fd;
	return 0;
}

static size_t
last_seg(const char *path)
{
	const char *sl = strrchr(path, '/');

	return sl == NULL ? 0 : (size_t)(sl - path) + 1;
}

static int
dir_read(struct cx_repo *r, const char *path, size_t cap, struct cx_buf *out, struct cx_err *e)
{
	struct dir_repo *d = (struct dir_repo *)r;
	size_t ls = last_seg(path), limit, want, plen = strlen(path);
	struct stat st;
	uint8_t *p;
	ssize_t got;
	int pfd, fd, rc, err;

	if ((rc = open_prefix(d, path, ls, &pfd, e)) != 0)
		return rc;
	/* O_NONBLOCK: a FIFO must not hang the open; it is refused after fstat */
	fd = openat(pfd, path + ls, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		err = errno;
		rc = open_err(pfd, path + ls, err, path, plen, e);
		fd_release(d, pfd);
		return rc;
	}
	fd_release(d, pfd);
	if (fstat(fd, &st) == -1) {
		rc = errno_err(e, errno, path, plen);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = cx_err_set(e, CX_EREJECT, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > cap) {
		rc = cx_err_set(e, CX_ETOOBIG, "%s: %lld bytes, more than the limit of %zu", path,
		    (long long)st.st_size, cap);
		goto out;
	}
	/* one byte past cap is read so that a file growing under us is still caught */
	limit = cap == SIZE_MAX ? cap : cap + 1;
	for (;;) {
		want = out->len < (size_t)st.st_size ? (size_t)st.st_size - out->len + 1 : 65536;
		if (want > limit - out->len)
			want = limit - out->len;
		if (want == 0) {
			rc = cx_err_set(
			    e, CX_ETOOBIG, "%s: more than the limit of %zu bytes", path, cap);
			goto out;
		}
		if ((rc = cx_buf_reserve(out, want, &p)) != 0) {
			rc = cx_err_set(
			    e, rc, "%s: does not fit the buffer (%zu bytes)", path, out->max);
			goto out;
		}
		/* a big file: its pages mapped at once, not faulted in one by one by read */
		if (want >= (size_t)1024 * 1024)
			cx_buf_prefault(out, (size_t)(p - out->d), want);
		do
			got = read(fd, p, want);
		while (got == -1 && errno == EINTR);
		if (got == -1) {
			out->len -= want;
			rc = errno_err(e, errno, path, plen);
			goto out;
		}
		/* give back the unused part of the reservation, keep the NUL terminator */
		out->len -= want - (size_t)got;
		out->d[out->len] = 0;
		if (got == 0)
			break;
	}
	if (out->len > cap)
		rc = cx_err_set(e, CX_ETOOBIG, "%s: more than the limit of %zu bytes", path, cap);
out:
	close(fd);
	return rc;
}

static int
dir_exists(struct cx_repo *r, const char *path, struct cx_err *e)
{
	struct dir_repo *d = (struct dir_repo *)r;
	size_t ls = last_seg(path);
	struct stat st;
	int pfd, rc, err;

	if ((rc = open_prefix(d, path, ls, &pfd, e)) != 0)
		return rc == CX_ENOENT ? 0 : rc;
	rc = fstatat(pfd, path + ls, &st, AT_SYMLINK_NOFOLLOW);
	err = errno;
	fd_release(d, pfd);
	if (rc == -1)
		return err == ENOENT ? 0 : errno_err(e, err, path, strlen(path));
	if (S_ISLNK(st.st_mode))
		return cx_err_set(e, CX_EREJECT, "%s: is a symlink", path);
	if (!S_ISREG(st.st_mode))
		return cx_err_set(e, CX_EREJECT, "%s: not a regular file", path);
	return 1;
}

/*
 * A fresh open file description of dir (never a dup of d->fd: readdir moves
 * the offset, and views may be used from several threads).  *fd is -1 and
 * the result 0 when dir does not exist.
 */
static int
open_dir(struct dir_repo *d, const char *dir, int *fd, struct cx_err *e)
{
	size_t len = strlen(dir);
	char *tmp;
	int rc, pfd;

	*fd = -1;
	if (len == 0) {
		if ((*fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
			return errno_err(e, errno, d->name, strlen(d->name));
		return 0;
	}
	/* open_prefix stops at a '/': give it dir + "/" */
	if ((tmp = malloc(len + 2)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "%s: out of memory", dir);
	memcpy(tmp, dir, len);
	tmp[len] = '/';
	tmp[len + 1] = '\0';
	rc = open_prefix(d, tmp, len + 1, &pfd, e);
	free(tmp);
	if (rc == CX_ENOENT)
		return 0;
	if (rc != 0)
		return rc;
	*fd = pfd; /* never d->fd: len > 0 */
	return 0;
}

/* d_type, or fstatat's answer when the file system does not fill it in. */
static unsigned char
entry_type(int dfd, const struct dirent64 *de)
{
	struct stat st;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type;
	if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return DT_UNKNOWN;
	if (S_ISREG(st.st_mode))
		return DT_REG;
	if (S_ISDIR(st.st_mode))
		return DT_DIR;
	if (S_ISLNK(st.st_mode))
		return DT_LNK;
	return DT_UNKNOWN;
}

static int
is_dot(const char *n)
{
	return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

static int
type_err(struct cx_err *e, unsigned char type, const char *dir, const char *name)
{
	const char *sep = *dir ? "/" : "";

	if (type == DT_LNK)
		return cx_err_set(e, CX_EREJECT, "%s%s%s: is a symlink", dir, sep, name);
	return cx_err_set(e, CX_EREJECT, "%s%s%s: not a regular file or directory", dir, sep, name);
}

static int
dir_list(struct cx_repo *r, const char *dir, struct cx_arena *arena, const char ***names, size_t *n,
    struct cx_err *e)
{
	struct dir_repo *d = (struct dir_repo *)r;
	const char **v = NULL;
	size_t cap = 0, cnt = 0;
	struct dirent64 *de;
	unsigned char t;
	DIR *dp;
	int fd, rc = 0;

	if ((rc = open_dir(d, dir, &fd, e)) != 0 || fd == -1)
		return rc;
	if ((dp = fdopendir(fd)) == NULL) {
		rc = errno_err(e, errno, dir, strlen(dir));
		close(fd);
		return rc;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir64(dp)) == NULL) {
			if (errno != 0)
				rc = errno_err(e, errno, dir, strlen(dir));
			break;
		}
		if (is_dot(de->d_name))
			continue;
		t = entry_type(dirfd(dp), de);
		if (t == DT_DIR)
			continue;
		if (t != DT_REG) {
			rc = type_err(e, t, dir, de->d_name);
			break;
		}
		if ((v = cx_arena_grow(arena, v, sizeof(*v), &cap, cnt + 1)) == NULL ||
		    (v[cnt] = cx_arena_strdup(arena, de->d_name)) == NULL) {
			rc = cx_err_set(e, CX_ENOMEM, "%s: listing: out of memory", dir);
			break;
		}
		cnt++;
	}
	closedir(dp);
	if (rc != 0)
		return rc;
	cx_names_sort(v, cnt);
	*names = v;
	*n = cnt;
	return 0;
}

/* ---- the walk ---- */

/*
 * Work sharing: a worker that meets a subdirectory while the queue holds
 * fewer directories than there are workers hands it over (its fd already
 * open, so no path is ever resolved again); otherwise it descends itself.
 * Every core stays busy whatever the shape of the tree, and the queue, hence
 * the number of open fds waiting in it, stays about as short as the worker
 * count.
 */
struct wjob {
	int fd;
	char *path; /* relative to the root, malloc'd */
	size_t plen;
	unsigned depth;
};

struct wthread {
	struct cx_file_entry *v; /* malloc'd; paths in arena */
	size_t n, cap;
	struct cx_arena arena;
	EVP_MD_CTX *ctx;
	uint8_t *buf;
	uint8_t *dbuf[CX_REPO_DEPTH_MAX + 1]; /* getdents64 buffer per depth */
	int rc;
	struct cx_err err;
	char path[CX_REPO_PATH_MAX];
};

struct walk {
	EVP_MD *md;
	unsigned nth;
	pthread_mutex_t mu; /* guards q, qn, qcap, active, failed */
	pthread_cond_t cv;
	struct wjob *q;
	size_t qn, qcap;
	unsigned active; /* workers inside a job */
	int failed;
	struct wthread th[16];
};

static int
hash_file(struct walk *w, struct wthread *t, int dfd, const char *name, size_t plen)
{
	struct cx_file_entry *ent;
	uint64_t size = 0;
	ssize_t got;
	int fd, err, rc = 0;

	/*
	 * d_type said DT_REG; O_NOFOLLOW refuses a symlink swapped in since, and
	 * O_NONBLOCK keeps a FIFO swapped in from blocking.  No fstat: it would
	 * cost a syscall per file on the hot path.
	 */
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		err = errno;
		return open_err(dfd, name, err, t->path, plen, &t->err);
	}
	if (EVP_DigestInit_ex2(t->ctx, w->md, NULL) != 1) {
		close(fd);
		return cx_err_set(&t->err, CX_ECRYPTO, "%s: SHA-256 init failed", t->path);
	}
	for (;;) {
		got = read(fd, t->buf, HASH_BUFSZ);
		if (got == 0)
			break;
		if (got == -1) {
			if (errno == EINTR)
				continue;
			err = errno;
			if (err == EAGAIN || err == EISDIR)
				rc = cx_err_set(
				    &t->err, CX_EREJECT, "%s: not a regular file", t->path);
			else
				rc = errno_err(&t->err, err, t->path, plen);
			break;
		}
		size += (uint64_t)got;
		if (size > CX_REPO_FILE_MAX) {
			rc = cx_err_set(&t->err, CX_ETOOBIG, "%s: larger than %llu bytes", t->path,
			    (unsigned long long)CX_REPO_FILE_MAX);
			break;
		}
		if (EVP_DigestUpdate(t->ctx, t->buf, (size_t)got) != 1) {
			rc = cx_err_set(&t->err, CX_ECRYPTO, "%s: SHA-256 failed", t->path);
			break;
		}
	}
	close(fd);
	if (rc != 0)
		return rc;
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 1024;
		struct cx_file_entry *nv = reallocarray(t->v, ncap, sizeof(*nv));

		if (nv == NULL)
			return cx_err_set(&t->err, CX_ENOMEM, "%s: out of memory", t->path);
		t->v = nv;
		t->cap = ncap;
	}
	ent = &t->v[t->n];
	if ((ent->path = cx_arena_memdup(&t->arena, t->path, plen)) == NULL)
		return cx_err_set(&t->err, CX_ENOMEM, "%s: out of memory", t->path);
	if (EVP_DigestFinal_ex(t->ctx, ent->sha256, NULL) != 1)
		return cx_err_set(&t->err, CX_ECRYPTO, "%s: SHA-256 failed", t->path);
	ent->size = size;
	t->n++;
	return 0;
}

static int walk_entry(struct walk *w, struct wthread *t, int dfd, const char *name,
    unsigned char type, size_t plen, unsigned depth);

/*
 * Walks the directory open at fd (consumed), whose path is t->path[0..plen).
 * getdents64 straight into a per-depth buffer: fdopendir would add an fstat,
 * an fcntl and a 32 KiB allocation per directory, 38,000 times.
 */
static int
walk_dir(struct walk *w, struct wthread *t, int fd, size_t plen, unsigned depth)
{
	struct dirent64 *de;
	ssize_t got, off;
	uint8_t *buf;
	int rc = 0;

	if (t->dbuf[depth] == NULL && (t->dbuf[depth] = malloc(DENTS_BUFSZ)) == NULL) {
		close(fd);
		return cx_err_set(&t->err, CX_ENOMEM, "%s: out of memory", t->path);
	}
	buf = t->dbuf[depth];
	while (rc == 0) {
		if ((got = getdents64(fd, buf, DENTS_BUFSZ)) <= 0) {
			if (got == -1)
				rc = errno_err(&t->err, errno, t->path, plen);
			break;
		}
		for (off = 0; rc == 0 && off < got; off += de->d_reclen) {
			de = (struct dirent64 *)(buf + off);
			if (is_dot(de->d_name))
				continue;
			rc = walk_entry(w, t, fd, de->d_name, entry_type(fd, de), plen, depth);
		}
	}
	close(fd);
	return rc;
}

/*
 * Queues the directory open at fd if another worker could take it: 1 if
 * queued, 0 if not, -1 if another worker failed (no point going on).
 */
static int
share(struct walk *w, struct wthread *t, int fd, size_t plen, unsigned depth)
{
	struct wjob *nq;
	char *path;
	int queued = 0;

	pthread_mutex_lock(&w->mu);
	if (w->failed || w->qn >= w->nth) {
		queued = w->failed ? -1 : 0;
		pthread_mutex_unlock(&w->mu);
		return queued;
	}
	pthread_mutex_unlock(&w->mu);
	if ((path = malloc(plen + 1)) == NULL)
		return 0; /* descend ourselves instead */
	memcpy(path, t->path, plen + 1);
	pthread_mutex_lock(&w->mu);
	if (w->qn == w->qcap) {
		size_t ncap = w->qcap ? w->qcap * 2 : 32;

		if ((nq = reallocarray(w->q, ncap, sizeof(*nq))) != NULL) {
			w->q = nq;
			w->qcap = ncap;
		}
	}
	if (w->qn < w->qcap) {
		w->q[w->qn++] = (struct wjob){fd, path, plen, depth};
		queued = 1;
		pthread_cond_signal(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	if (!queued)
		free(path);
	return queued;
}

/* One entry name in the directory dfd, whose path is t->path[0..plen). */
static int
walk_entry(struct walk *w, struct wthread *t, int dfd, const char *name, unsigned char type,
    size_t plen, unsigned depth)
{
	size_t nlen = strlen(name), sep = plen ? 1 : 0;
	int fd, err;

	if (plen + sep + nlen >= sizeof(t->path))
		return cx_err_set(
		    &t->err, CX_EREJECT, "%.*s/%s: path too long", (int)plen, t->path, name);
	if (sep)
		t->path[plen] = '/';
	memcpy(t->path + plen + sep, name, nlen + 1);
	plen += sep + nlen;
	switch (type) {
	case DT_REG:
		return hash_file(w, t, dfd, name, plen);
	case DT_DIR:
		if (depth >= CX_REPO_DEPTH_MAX)
			return cx_err_set(
			    &t->err, CX_EREJECT, "%s: directories nested too deep", t->path);
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd == -1) {
			err = errno;
			return open_err(dfd, name, err, t->path, plen, &t->err);
		}
		switch (share(w, t, fd, plen, depth + 1)) {
		case 1:
			return 0;
		case -1:
			close(fd);
			return WALK_STOP;
		}
		return walk_dir(w, t, fd, plen, depth + 1);
	case DT_LNK:
		return cx_err_set(&t->err, CX_EREJECT, "%s: is a symlink", t->path);
	default:
		return cx_err_set(
		    &t->err, CX_EREJECT, "%s: not a regular file or directory", t->path);
	}
}

static void
walk_worker(void *ctx, unsigned i)
{
	struct walk *w = ctx;
	struct wthread *t = &w->th[i];
	struct wjob job;
	int rc = 0;

	if ((t->ctx = EVP_MD_CTX_new()) == NULL || (t->buf = malloc(HASH_BUFSZ)) == NULL)
		rc = t->rc = cx_err_set(&t->err, CX_ENOMEM, "walk: out of memory");
	pthread_mutex_lock(&w->mu);
	for (;;) {
		if (rc != 0)
			w->failed = 1;
		while (!w->failed && w->qn == 0 && w->active > 0)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->failed || w->qn == 0)
			break; /* failed, or nothing queued and nobody left to queue more */
		job = w->q[--w->qn];
		w->active++;
		pthread_mutex_unlock(&w->mu);
		memcpy(t->path, job.path, job.plen + 1);
		free(job.path);
		if ((rc = walk_dir(w, t, job.fd, job.plen, job.depth)) < 0)
			t->rc = rc;
		pthread_mutex_lock(&w->mu);
		w->active--;
		if (w->qn == 0 && w->active == 0)
			pthread_cond_broadcast(&w->cv);
	}
	/* wake the others: they stop on failed, or find the queue drained */
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static int
dir_walk(struct cx_repo *r, const char *dir, struct cx_file_list *out, struct cx_err *e)
{
	struct dir_repo *d = (struct dir_repo *)r;
	struct walk *w;
	size_t total = 0, k, i, dlen = strlen(dir);
	unsigned t;
	char *path;
	int fd, rc;

	if ((rc = open_dir(d, dir, &fd, e)) != 0 || fd == -1)
		return rc;
	if ((w = calloc(1, sizeof(*w))) == NULL || (path = strdup(dir)) == NULL ||
	    (w->q = malloc(32 * sizeof(*w->q))) == NULL) {
		if (w != NULL)
			free(w->q);
		free(w);
		close(fd);
		return cx_err_set(e, CX_ENOMEM, "%s: walk: out of memory", dir);
	}
	if ((w->md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
		free(path);
		free(w->q);
		free(w);
		close(fd);
		return cx_err_set(e, CX_ECRYPTO, "SHA-256 is not available");
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->qcap = 32;
	w->q[w->qn++] = (struct wjob){fd, path, dlen, 0};
	w->nth = cx_repo_nthreads();
	for (t = 0; t < w->nth; t++)
		cx_arena_init(&w->th[t].arena, 0);
	cx_repo_parallel(w->nth, walk_worker, w);
	/* after a failure, directories may still wait in the queue */
	for (i = 0; i < w->qn; i++) {
		close(w->q[i].fd);
		free(w->q[i].path);
	}
	for (t = 0; t < w->nth; t++) {
		if (w->th[t].rc != 0 && rc == 0) {
			rc = w->th[t].rc;
			if (e != NULL)
				*e = w->th[t].err;
		}
		total += w->th[t].n;
	}
	if (rc == 0 &&
	    (total > SIZE_MAX / sizeof(*out->v) ||
	        (out->v = cx_arena_alloc(&out->arena, total * sizeof(*out->v))) == NULL))
		rc = cx_err_set(e, CX_ENOMEM, "%s: walk: out of memory", dir);
	for (t = 0, k = 0; t < w->nth; t++) {
		struct wthread *th = &w->th[t];

		for (i = 0; rc == 0 && i < th->n; i++, k++) {
			out->v[k] = th->v[i];
			out->v[k].path = cx_arena_strdup(&out->arena, th->v[i].path);
			if (out->v[k].path == NULL)
				rc = cx_err_set(e, CX_ENOMEM, "%s: walk: out of memory", dir);
		}
		free(th->v);
		free(th->buf);
		for (i = 0; i <= CX_REPO_DEPTH_MAX; i++)
			free(th->dbuf[i]);
		EVP_MD_CTX_free(th->ctx);
		cx_arena_free(&th->arena);
	}
	if (rc == 0) {
		out->n = total;
		cx_file_list_sort(out);
	}
	EVP_MD_free(w->md);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w->q);
	free(w);
	return rc;
}

static void
dir_close(struct cx_repo *r)
{
	struct dir_repo *d = (struct dir_repo *)r;

	close(d->fd);
	free(d->name);
	free(d);
}

static const struct cx_repo_ops dir_ops = {
    .read = dir_read,
    .exists = dir_exists,
    .list = dir_list,
    .walk = dir_walk,
    .close = dir_close,
};

int
cx_repo_open_dir_fd(struct cx_repo **out, int fd, const char *name, struct cx_err *e)
{
	struct dir_repo *d;

	*out = NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->name = strdup(name)) == NULL) {
		free(d);
		close(fd);
		return cx_err_set(e, CX_ENOMEM, "%s: out of memory", name);
	}
	d->base.ops = &dir_ops;
	d->fd = fd;
	*out = &d->base;
	return 0;
}
