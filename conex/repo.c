/*
 * The repository view dispatcher: path validation, the backend vtable, and
 * the helpers that every backend shares (threads, sorting).
 */
#include "conex/repo.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
cx_path_check(const char *p, size_t n)
{
	size_t i, seg = 0;

	if (p == NULL || n == 0 || n >= CX_REPO_PATH_MAX || p[0] == '/')
		return CX_EINVAL;
	for (i = 0; i <= n; i++) {
		if (i < n && p[i] == '\0')
			return CX_EINVAL;
		if (i < n && p[i] != '/')
			continue;
		/* p[seg..i) is one segment */
		if (i == seg)
			return CX_EINVAL;
		if (p[seg] == '.' && (i - seg == 1 || (i - seg == 2 && p[seg + 1] == '.')))
			return CX_EINVAL;
		seg = i + 1;
	}
	return 0;
}

int
cx_repo_open(struct cx_repo **out, const char *path, struct cx_err *e)
{
	struct stat st;
	uint8_t magic[2];
	ssize_t r;
	int fd;

	*out = NULL;
	if (path == NULL || *path == '\0')
		return cx_err_set(e, CX_EINVAL, "repository path is empty");
	/*
	 * The repository itself may be reached through a symlink (the user named
	 * it); only what lies inside is held to the no-symlink rule.  O_NONBLOCK
	 * keeps a FIFO from blocking the open.
	 */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		if (errno == ENOENT)
			return cx_err_set(e, CX_ENOENT, "%s: no such file or directory", path);
		return cx_err_set(e, CX_EIO, "%s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == -1) {
		close(fd);
		return cx_err_set(e, CX_EIO, "%s: fstat: %s", path, strerror(errno));
	}
	if (S_ISDIR(st.st_mode))
		return cx_repo_open_dir_fd(out, fd, path, e);
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return cx_err_set(e, CX_EINVAL, "%s: neither a directory nor a regular file", path);
	}
	do
		r = pread(fd, magic, sizeof(magic), 0);
	while (r == -1 && errno == EINTR);
	if (r == -1) {
		close(fd);
		return cx_err_set(e, CX_EIO, "%s: read: %s", path, strerror(errno));
	}
	if (r != 2 || magic[0] != 0x1f || magic[1] != 0x8b) {
		close(fd);
		return cx_err_set(e, CX_EUNSUPPORTED,
		    "%s: not a directory or a gzip-compressed tar archive", path);
	}
	return cx_repo_open_tgz_fd(out, fd, path, e);
}

void
cx_repo_close(struct cx_repo *r)
{
	if (r != NULL)
		r->ops->close(r);
}

static int
check_arg(const char *path, int root_ok, struct cx_err *e)
{
	if (path == NULL)
		return cx_err_set(e, CX_EINVAL, "path is NULL");
	if (root_ok && *path == '\0')
		return 0;
	if (cx_path_check(path, strlen(path)) != 0)
		return cx_err_set(e, CX_EINVAL, "\"%.256s\": invalid repository path", path);
	return 0;
}

int
cx_repo_read(struct cx_repo *r, const char *path, size_t cap, struct cx_buf *out, struct cx_err *e)
{
	int rc;

	cx_buf_reset(out);
	if ((rc = check_arg(path, 0, e)) != 0)
		return rc;
	if ((rc = r->ops->read(r, path, cap, out, e)) != 0)
		cx_buf_reset(out);
	return rc;
}

int
cx_repo_exists(struct cx_repo *r, const char *path, struct cx_err *e)
{
	int rc;

	if ((rc = check_arg(path, 0, e)) != 0)
		return rc;
	return r->ops->exists(r, path, e);
}

int
cx_repo_list(struct cx_repo *r, const char *dir, struct cx_arena *arena, const char ***names,
    size_t *n, struct cx_err *e)
{
	int rc;

	*names = NULL;
	*n = 0;
	if ((rc = check_arg(dir, 1, e)) != 0)
		return rc;
	if ((rc = r->ops->list(r, dir, arena, names, n, e)) != 0) {
		*names = NULL;
		*n = 0;
	}
	return rc;
}

int
cx_repo_walk(struct cx_repo *r, const char *dir, struct cx_file_list *out, struct cx_err *e)
{
	int rc;

	out->v = NULL;
	out->n = 0;
	cx_arena_init(&out->arena, 0);
	if ((rc = check_arg(dir, 1, e)) != 0)
		return rc;
	if ((rc = r->ops->walk(r, dir, out, e)) != 0)
		cx_file_list_free(out);
	return rc;
}

void
cx_file_list_free(struct cx_file_list *l)
{
	if (l == NULL)
		return;
	cx_arena_free(&l->arena);
	l->v = NULL;
	l->n = 0;
}

unsigned
cx_repo_nthreads(void)
{
	cpu_set_t set;
	int n;

	/* the affinity mask, not the machine: containers and taskset restrict it */
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	else
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > 16)
		n = 16;
	return (unsigned)n;
}

struct par_arg {
	void (*fn)(void *, unsigned);
	void *ctx;
	unsigned i;
};

static void *
par_main(void *p)
{
	struct par_arg *a = p;

	a->fn(a->ctx, a->i);
	return NULL;
}

void
cx_repo_parallel(unsigned n, void (*fn)(void *ctx, unsigned i), void *ctx)
{
	pthread_t tid[16];
	struct par_arg arg[16];
	int started[16] = {0};
	unsigned i;

	if (n > 16)
		n = 16;
	for (i = 1; i < n; i++) {
		arg[i].fn = fn;
		arg[i].ctx = ctx;
		arg[i].i = i;
		started[i] = pthread_create(&tid[i], NULL, par_main, &arg[i]) == 0;
	}
	fn(ctx, 0);
	for (i = 1; i < n; i++)
		if (started[i])
			pthread_join(tid[i], NULL);
}

int
cx_file_entry_cmp(const void *a, const void *b)
{
	const struct cx_file_entry *x = a, *y = b;

	return strcmp(x->path, y->path);
}

void
cx_file_list_sort(struct cx_file_list *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), cx_file_entry_cmp);
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void
cx_names_sort(const char **names, size_t n)
{
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
}

const char *
cx_path_strip(const char *dir, const char *p)
{
	size_t n = strlen(dir);

	if (strncmp(dir, p, n) == 0 && p[n] == '/')
		return p + n + 1;
	return NULL;
}

int
cx_path_below(const char *parent, const char *p)
{
	size_t n = strlen(parent);

	if (n == 0)
		return *p != 0;
	return strncmp(parent, p, n) == 0 && p[n] == '/' && p[n + 1] != 0;
}
