/* Whole-file reads and atomic replacement (see fileio.h). */
#include "conex/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
cx_file_exists(const char *path, struct cx_err *e)
{
	struct stat st;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		return cx_err_set(e, CX_EIO, "%s: %s", path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return cx_err_set(e, CX_EREJECT, "%s: not a regular file", path);
	return 1;
}

int
cx_file_read(const char *path, size_t cap, struct cx_buf *out, struct cx_err *e)
{
	struct stat st;
	uint8_t *p;
	ssize_t got;
	size_t off = 0;
	int fd, rc = 0;

	cx_buf_reset(out);
	/* O_NOFOLLOW: a resource reached through a symlink could be anything */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) == -1) {
		if (errno == ENOENT)
			return cx_err_set(e, CX_ENOENT, "%s: no such file", path);
		if (errno == ELOOP)
			return cx_err_set(e, CX_EREJECT, "%s: is a symlink", path);
		return cx_err_set(e, CX_EIO, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == -1) {
		rc = cx_err_set(e, CX_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = cx_err_set(e, CX_EREJECT, "%s: not a regular file", path);
		goto out;
	}
	if ((uint64_t)st.st_size > cap) {
		rc = cx_err_set(e, CX_ETOOBIG, "%s: larger than %zu bytes", path, cap);
		goto out;
	}
	if ((rc = cx_buf_reserve(out, (size_t)st.st_size + 1, &p)) != 0) {
		rc = cx_err_set(e, rc, "%s: out of memory", path);
		goto out;
	}
	while (off <= (size_t)st.st_size) {
		got = read(fd, p + off, (size_t)st.st_size + 1 - off);
		if (got == -1 && errno == EINTR)
			continue;
		if (got == -1) {
			rc = cx_err_set(e, CX_EIO, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		off += (size_t)got;
	}
	if (off > (size_t)st.st_size) {
		rc = cx_err_set(e, CX_EIO, "%s: grew while being read", path);
		goto out;
	}
	out->len = off;
out:
	close(fd);
	if (rc != 0)
		cx_buf_reset(out);
	return rc;
}

/* off < 0: write(2) at the file offset; else pwrite(2) at off; reading: pread(2) at off. */
static int
transfer(int fd, uint8_t *d, size_t n, off_t off, int reading)
{
	ssize_t r;

	while (n > 0) {
		if (reading)
			r = pread(fd, d, n, off);
		else
			r = off < 0 ? write(fd, d, n) : pwrite(fd, d, n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = EIO; /* the end of the file came first */
			return -1;
		}
		d += r;
		n -= (size_t)r;
		if (off >= 0)
			off += r;
	}
	return 0;
}

int
cx_fd_write_full(int fd, const void *d, size_t n)
{
	return transfer(fd, (uint8_t *)(uintptr_t)d, n, -1, 0);
}

int
cx_fd_pwrite_full(int fd, const void *d, size_t n, off_t off)
{
	return transfer(fd, (uint8_t *)(uintptr_t)d, n, off, 0);
}

int
cx_fd_pread_full(int fd, void *d, size_t n, off_t off)
{
	return transfer(fd, d, n, off, 1);
}

int
cx_file_write_atomic(const char *path, const uint8_t *d, size_t n, mode_t mode, struct cx_err *e)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	const char *slash = strrchr(path, '/'), *base;
	struct stat st;
	int fd = -1, dfd = -1, rc = 0, saved;

	if (slash == NULL) {
		snprintf(dir, sizeof(dir), ".");
		base = path;
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return cx_err_set(e, CX_EINVAL, "%s: path too long", path);
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = 0;
		if (dir[0] == 0)
			snprintf(dir, sizeof(dir), "/");
		base = slash + 1;
	}
	if (*base == 0)
		return cx_err_set(e, CX_EINVAL, "%s: not a file name", path);
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.XXXXXX", dir, base) >= sizeof(tmp))
		return cx_err_set(e, CX_EINVAL, "%s: path too long", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			return cx_err_set(
			    e, CX_EREJECT, "%s: exists and is not a regular file", path);
		mode = st.st_mode & 07777;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
		return cx_err_set(e, CX_EIO, "%s: cannot create a temporary file in %s: %s", path,
		    dir, strerror(errno));
	if (fchmod(fd, mode) == -1 || cx_fd_write_full(fd, d, n) == -1 || fsync(fd) == -1) {
		saved = errno;
		rc = cx_err_set(e, CX_EIO, "%s: writing %s: %s", path, tmp, strerror(saved));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		rc = cx_err_set(e, CX_EIO, "%s: writing %s: %s", path, tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		rc = cx_err_set(e, CX_EIO, "%s: rename: %s", path, strerror(errno));
		goto fail;
	}
	/* the rename is durable only once the directory entry is on disk */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 || fsync(dfd) == -1)
		rc = cx_err_set(e, CX_EIO,
		    "%s: fsync of directory %s: %s (the new file is in place)", path, dir,
		    strerror(errno));
	if (dfd != -1)
		close(dfd);
	return rc;
fail:
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return rc;
}
