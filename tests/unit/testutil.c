#include "tests/unit/testutil.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

char *
cx_test_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *p;

	if (asprintf(&p, "%s/cxtest.XXXXXX", t && *t ? t : "/tmp") < 0)
		ck_abort_msg("asprintf");
	if (mkdtemp(p) == NULL)
		ck_abort_msg("mkdtemp: %s", strerror(errno));
	return p;
}

int
cx_test_sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	int st, r;

	va_start(ap, fmt);
	r = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -1;
	st = system(cmd);
	free(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

void
cx_test_rm_rf(const char *path)
{
	if (path != NULL && strncmp(path, "/", 1) == 0 && strstr(path, "cxtest.") != NULL)
		cx_test_sh("chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", path, path);
}

void
cx_test_write(const char *dir, const char *rel, const void *data, size_t len)
{
	char *path, *slash;
	FILE *f;

	if (asprintf(&path, "%s/%s", dir, rel) < 0)
		ck_abort_msg("asprintf");
	for (slash = path + strlen(dir) + 1; (slash = strchr(slash, '/')) != NULL; slash++) {
		*slash = 0;
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			ck_abort_msg("mkdir %s: %s", path, strerror(errno));
		*slash = '/';
	}
	if ((f = fopen(path, "wb")) == NULL)
		ck_abort_msg("open %s: %s", path, strerror(errno));
	if (len && fwrite(data, 1, len, f) != len)
		ck_abort_msg("write %s", path);
	if (fclose(f) != 0)
		ck_abort_msg("close %s", path);
	free(path);
}

void
cx_test_write_str(const char *dir, const char *rel, const char *s)
{
	cx_test_write(dir, rel, s, strlen(s));
}

uint8_t *
cx_test_read(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *d = NULL;
	size_t n = 0, cap = 0, r;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 65536;
			if ((d = realloc(d, cap + 1)) == NULL)
				ck_abort_msg("realloc");
		}
		if ((r = fread(d + n, 1, cap - n, f)) == 0)
			break;
		n += r;
	}
	fclose(f);
	d[n] = 0;
	if (len)
		*len = n;
	return d;
}

const char *
cx_test_shared(void)
{
	static char buf[4096];
	const char *env = getenv("CX_SHARED_DIR");
	struct stat st;

	if (env != NULL && *env)
		snprintf(buf, sizeof(buf), "%s", env);
	else
		snprintf(buf, sizeof(buf), "%s/../shared", CX_SOURCE_DIR);
	if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
		return NULL;
	return buf;
}

size_t
cx_test_helpers_of(pid_t pid, const char *role, pid_t *out, size_t max)
{
	char path[64], buf[4096];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if ((d = opendir("/proc")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL && n < max) {
		long p = atol(de->d_name), pp = 0;
		ssize_t len;
		int fd;
		char *rp;

		if (p <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", p);
		if ((fd = open(path, O_RDONLY)) < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0 || (buf[len] = '\0', rp = strrchr(buf, ')')) == NULL ||
		    sscanf(rp + 2, "%*c %ld", &pp) != 1 || pp != (long)pid)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", p);
		if ((fd = open(path, O_RDONLY)) < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (len <= 0)
			continue;
		buf[len] = '\0';
		/* argv[1] and argv[2], NUL-separated */
		{
			const char *a1 = buf + strlen(buf) + 1, *a2;

			if (a1 >= buf + len || strcmp(a1, "--p11-helper") != 0)
				continue;
			a2 = a1 + strlen(a1) + 1;
			if (a2 < buf + len && strcmp(a2, role) == 0)
				out[n++] = (pid_t)p;
		}
	}
	closedir(d);
	return n;
}
