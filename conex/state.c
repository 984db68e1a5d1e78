#include "conex/state.h"

#include "conex/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int
strptr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* mkdir -p with mode 0700 for the parts we create. */
static int
mkdirs(char *path, struct cx_err *e)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			int r = cx_err_set(e, CX_EIO, "mkdir %s: %s", path, strerror(errno));
			*p = '/';
			return r;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return cx_err_set(e, CX_EIO, "mkdir %s: %s", path, strerror(errno));
	return 0;
}

int
cx_state_path(const char *dir, const char *const *anchors, size_t n, char **out, struct cx_err *e)
{
	const char **sorted;
	struct cx_buf b;
	uint8_t h[CX_SHA256_LEN];
	char hex[CX_SHA256_HEX + 1], *base = NULL;
	const char *home, *xdg;
	size_t i;
	int r;

	if ((sorted = calloc(n + 1, sizeof(*sorted))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	memcpy(sorted, anchors, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), strptr_cmp);
	cx_buf_init(&b, 0);
	for (i = 0; i < n; i++)
		if (cx_buf_putf(&b, "%s%s", i ? "," : "", sorted[i]) != 0)
			break;
	cx_sha256(b.d, b.len, h);
	cx_hex_encode(h, CX_SHA256_LEN, hex);
	cx_buf_free(&b);
	free(sorted);
	if (dir != NULL) {
		r = asprintf(&base, "%s", dir);
	} else if ((xdg = getenv("XDG_STATE_HOME")) != NULL && xdg[0] == '/') {
		r = asprintf(&base, "%s/conex", xdg);
	} else if ((home = getenv("HOME")) != NULL && home[0] == '/') {
		r = asprintf(&base, "%s/.local/state/conex", home);
	} else {
		return cx_err_set(e, CX_EINVAL,
		    "no state directory: set XDG_STATE_HOME or HOME, or pass --state");
	}
	if (r < 0)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if ((r = mkdirs(base, e)) != 0) {
		free(base);
		return r;
	}
	r = asprintf(out, "%s/%s.state", base, hex);
	free(base);
	return r < 0 ? cx_err_set(e, CX_ENOMEM, "out of memory") : 0;
}

int
cx_state_load(const char *path, struct cx_counters *c, int *found, struct cx_err *e)
{
	char line[256], what[32];
	unsigned long long ep, ct;
	FILE *f;
	int lineno = 0, seen_root = 0;

	memset(c, 0, sizeof(*c));
	*found = 0;
	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		return cx_err_set(e, CX_EIO, "%s: %s", path, strerror(errno));
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (line[0] == '#')
			continue;
		if (sscanf(line, "%31s epoch=0x%llx counter=0x%llx", what, &ep, &ct) != 3)
			goto bad;
		if (strcmp(what, "root") == 0) {
			c->root_epoch = ep;
			c->root_counter = ct;
			seen_root = 1;
		} else if (strcmp(what, "snapshot") == 0) {
			c->has_snapshot = 1;
			c->snap_epoch = ep;
			c->snap_counter = ct;
		} else if (strcmp(what, "timestamp") == 0) {
			c->has_timestamp = 1;
			c->ts_epoch = ep;
			c->ts_counter = ct;
		} else {
			goto bad;
		}
	}
	fclose(f);
	if (!seen_root)
		return cx_err_set(
		    e, CX_EPARSE, "%s: no root line (remove the file to reset)", path);
	*found = 1;
	return 0;
bad:
	fclose(f);
	return cx_err_set(
	    e, CX_EPARSE, "%s:%d: malformed state line (remove the file to reset)", path, lineno);
}

int
cx_state_store(const char *path, const struct cx_counters *c, struct cx_err *e)
{
	struct cx_buf b;
	int r;

	cx_buf_init(&b, 0);
	cx_buf_putf(&b, "# conex verify: the versions last accepted; never edit by hand\n");
	cx_buf_putf(&b, "root epoch=0x%llX counter=0x%llX\n", (unsigned long long)c->root_epoch,
	    (unsigned long long)c->root_counter);
	if (c->has_snapshot)
		cx_buf_putf(&b, "snapshot epoch=0x%llX counter=0x%llX\n",
		    (unsigned long long)c->snap_epoch, (unsigned long long)c->snap_counter);
	if (c->has_timestamp)
		cx_buf_putf(&b, "timestamp epoch=0x%llX counter=0x%llX\n",
		    (unsigned long long)c->ts_epoch, (unsigned long long)c->ts_counter);
	r = cx_file_write_atomic(path, b.d, b.len, 0600, e);
	cx_buf_free(&b);
	return r;
}
