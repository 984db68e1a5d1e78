/*
 * The signing tools' common layer: options, reading and writing resources
 * under the repository, messages, the proposal report and the `sign` rules
 * of docs/tools.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/tools.h"
#include "conex/fileio.h"

/* Largest resource file read: a targets file of the whole opam-repository fits. */
#define RESOURCE_MAX (256u * 1024u * 1024u)

void
cx_tool_init(struct cx_tool *t, const char *cmd)
{
	memset(t, 0, sizeof(*t));
	t->cmd = cmd;
	t->repo = ".";
	t->rootname = "root";
	t->now = (int64_t)time(NULL);
	cx_time_format(t->now, t->created);
	cx_arena_init(&t->a, 0);
	t->lockfd = -1;
	optind = 1;
}

/*
 * Two tools changing the same checkout at once would each rename their own
 * version over the other's, and a signature would be lost: every command
 * holds an exclusive flock on the repository directory from its first look
 * at a file to its exit.  No lock file is left in the repository.
 */
static int
tool_lock(struct cx_tool *t, struct cx_err *e)
{
	if (t->lockfd != -1)
		return 0;
	if ((t->lockfd = open(t->repo, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return 0; /* nothing to protect yet (root create makes it) */
		return cx_err_set(e, CX_EIO, "%s: %s", t->repo, strerror(errno));
	}
	while (flock(t->lockfd, LOCK_EX) == -1)
		if (errno != EINTR)
			return cx_err_set(e, CX_EIO, "%s: lock: %s", t->repo, strerror(errno));
	return 0;
}

void
cx_tool_done(struct cx_tool *t)
{
	if (t->signer_open)
		cx_signer_close(&t->signer);
	if (t->lockfd != -1)
		close(t->lockfd);
	cx_arena_free(&t->a);
}

int
cx_tool_parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno != 0 || *end != 0 ? -1 : 0;
}

int
cx_tool_opt(struct cx_tool *t, int ch, const char *arg)
{
	switch (ch) {
	case 'r':
		t->repo = arg;
		return 1;
	case 'q':
		t->quiet = 1;
		return 1;
	case CX_TOOL_O_ROOT:
		if (*arg == 0 || strchr(arg, '/') != NULL) {
			cx_tool_usage(t, "--root: want a file name");
			return -1;
		}
		t->rootname = arg;
		return 1;
	case CX_TOOL_O_SOCK:
		t->sock = arg;
		return 1;
	case CX_TOOL_O_NOW:
		if (cx_time_parse(arg, &t->now) != 0) {
			cx_tool_usage(t, "--now: want YYYY-MM-DDThh:mm:ssZ");
			return -1;
		}
		cx_time_format(t->now, t->created);
		return 1;
	}
	return 0;
}

int
cx_tool_usage(struct cx_tool *t, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "conex %s: ", t->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see conex %.*s --help)\n", (int)strcspn(t->cmd, " "), t->cmd);
	return CX_EXIT_USAGE;
}

int
cx_tool_fail(struct cx_tool *t, int rc, const struct cx_err *e)
{
	fprintf(stderr, "conex %s: %s\n", t->cmd, e->msg[0] ? e->msg : cx_code_str(rc));
	if (rc == CX_EIO || rc == CX_ENOMEM)
		return CX_EXIT_ERROR;
	return CX_EXIT_REJECT;
}

void
cx_tool_info(struct cx_tool *t, const char *fmt, ...)
{
	va_list ap;

	if (t->quiet || t->terse)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void
cx_tool_warn(struct cx_tool *t, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "conex %s: warning: ", t->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *
cx_tool_path(struct cx_tool *t, const char *rel)
{
	size_t n = strlen(t->repo) + strlen(rel) + 2;
	char *p = cx_arena_alloc(&t->a, n);

	if (p != NULL)
		snprintf(p, n, "%s/%s", t->repo, rel);
	return p;
}

int
cx_tool_exists(struct cx_tool *t, const char *rel, struct cx_err *e)
{
	const char *p = cx_tool_path(t, rel);
	int rc;

	if (p == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if ((rc = tool_lock(t, e)) != 0)
		return rc;
	return cx_file_exists(p, e);
}

int
cx_tool_read(struct cx_tool *t, const char *rel, enum cx_rtype type, struct cx_resource **r,
    struct cx_buf *canon, struct cx_err *e)
{
	const char *p = cx_tool_path(t, rel);
	struct cx_buf b;
	int rc;

	if (p == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if ((rc = tool_lock(t, e)) != 0)
		return rc;
	cx_buf_init(&b, RESOURCE_MAX);
	if ((rc = cx_file_read(p, RESOURCE_MAX, &b, e)) == 0)
		rc = cx_resource_parse(&t->a, p, b.d, b.len, type, r, NULL, e);
	cx_buf_free(&b);
	if (rc == 0 && !cx_id_equal((*r)->name, strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel))
		rc = cx_err_set(
		    e, CX_EREJECT, "%s: its name is '%s', not its file name", p, (*r)->name);
	if (rc == 0 && canon != NULL && (rc = cx_resource_canon(*r, canon)) != 0)
		rc = cx_err_set(e, rc, "%s: cannot serialise", p);
	return rc;
}

int
cx_tool_read_root(struct cx_tool *t, struct cx_resource **root, struct cx_err *e)
{
	int rc = cx_tool_read(t, t->rootname, CX_R_ROOT, root, NULL, e);

	if (rc == CX_ENOENT)
		cx_err_prefix(e, "no root (conex root create makes one)");
	return rc;
}

const char *
cx_tool_keyfile(struct cx_tool *t, const struct cx_resource *root, const char *id)
{
	size_t n = strlen(root->keydir) + strlen(id) + 2;
	char *p = cx_arena_alloc(&t->a, n);

	if (p != NULL)
		snprintf(p, n, "%s/%s", root->keydir, id);
	return p;
}

int
cx_tool_write(struct cx_tool *t, const char *rel, const struct cx_resource *r, struct cx_err *e)
{
	const char *p = cx_tool_path(t, rel);
	int rc;

	if (p == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if ((rc = tool_lock(t, e)) != 0 || (rc = cx_author_write(p, r, e)) != 0)
		return rc;
	t->nwritten++;
	if (!t->quiet)
		printf("wrote %s (counter 0x%llX, epoch 0x%llX, %zu signature%s)\n", rel,
		    (unsigned long long)r->counter, (unsigned long long)r->epoch, r->nsigs,
		    r->nsigs == 1 ? "" : "s");
	return 0;
}

int
cx_tool_mkdir(struct cx_tool *t, const char *rel, struct cx_err *e)
{
	const char *p = cx_tool_path(t, rel);

	if (p == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if (mkdir(p, 0755) == -1 && errno != EEXIST)
		return cx_err_set(e, CX_EIO, "mkdir %s: %s", p, strerror(errno));
	return 0;
}

int
cx_tool_signer(struct cx_tool *t, struct cx_signer **s, struct cx_err *e)
{
	int rc;

	if (!t->signer_open) {
		if ((rc = cx_signer_open(&t->signer, t->sock, e)) != 0)
			return rc;
		t->signer_open = 1;
	}
	*s = &t->signer;
	return 0;
}

static void
print_ids(FILE *f, const char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? ", " : "", v[i]);
}

int
cx_tool_propose(struct cx_tool *t, const char *rel, struct cx_resource *r,
    const struct cx_buf *canon, int *changed, struct cx_err *e)
{
	const char **dropped;
	size_t nd;
	int rc;

	if ((rc = cx_author_propose(&t->a, r, canon->d, canon->len, changed, &dropped, &nd, e)) !=
	    0)
		return rc;
	if (!*changed) {
		cx_tool_info(t, "%s: unchanged", rel);
		return 0;
	}
	if (nd && !t->quiet) {
		/* those signers must sign again: say who */
		printf(
		    "%s: new version, counter 0x%llX; signatures dropped (they were over the old "
		    "content): ",
		    rel, (unsigned long long)r->counter);
		print_ids(stdout, dropped, nd);
		printf("\n");
	}
	return 0;
}

int
cx_tool_report_quorum(
    struct cx_tool *t, const char *rel, const struct cx_resource *r, struct cx_err *e)
{
	struct cx_sigstate st;
	int rc;

	if ((rc = cx_author_sigstate(&t->a, r, &st, e)) != 0)
		return rc;
	if (t->quiet || t->terse)
		return 0;
	if (st.met) {
		printf("%s: valid quorum met (signed by ", rel);
		print_ids(stdout, st.good, st.ngood);
		printf(")\n");
		return 0;
	}
	if (st.need >= INT64_MAX / 2)
		printf("%s: the valid quorum cannot be met by the keys in the file\n", rel);
	else
		printf("%s: needs %lld more signature%s", rel, (long long)st.need,
		    st.need == 1 ? "" : "s");
	if (st.ncould) {
		printf(", from: ");
		print_ids(stdout, st.could, st.ncould);
	}
	printf("\n");
	return 0;
}

static int
key_matches(const struct cx_key *k, const char *as)
{
	uint8_t id[CX_SHA256_LEN];

	if (strcmp(k->id, as) == 0)
		return 1;
	return cx_keyid_parse(as, id) == 0 && memcmp(id, k->keyid, CX_SHA256_LEN) == 0;
}

static int
listed(const char **v, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], id) == 0)
			return 1;
	return 0;
}

int
cx_tool_sign(struct cx_tool *t, const char *rel, struct cx_resource *r, const char *as, int reset)
{
	struct cx_err e = {0};
	struct cx_signer *s;
	struct cx_sigstate st;
	const struct cx_key **mine;
	const char **stale;
	size_t i, nmine = 0, nstale = 0, nsigned = 0;
	int rc;

	if ((rc = cx_tool_signer(t, &s, &e)) != 0 ||
	    (rc = cx_author_sigstate(&t->a, r, &st, &e)) != 0)
		return cx_tool_fail(t, rc, &e);
	if ((mine = cx_arena_alloc(&t->a, (r->nkeys + 1) * sizeof(*mine))) == NULL ||
	    (stale = cx_arena_alloc(&t->a, (st.nstale + 1) * sizeof(*stale))) == NULL) {
		cx_err_set(&e, CX_ENOMEM, "out of memory");
		return cx_tool_fail(t, CX_ENOMEM, &e);
	}
	for (i = 0; i < r->nkeys; i++) {
		const struct cx_key *k = &r->keys[i];
		if (as != NULL && !key_matches(k, as))
			continue;
		if (cx_signer_holds(s, k) == NULL) {
			if (as != NULL) {
				char hex[CX_SHA256_HEX + 1];
				cx_hex_encode(k->keyid, CX_SHA256_LEN, hex);
				cx_err_set(&e, CX_ENOENT,
				    "%s: the agent does not hold key %s (sha256=%s)", rel, k->id,
				    hex);
				return cx_tool_fail(t, CX_ENOENT, &e);
			}
			continue;
		}
		mine[nmine++] = k;
	}
	if (nmine == 0) {
		if (as != NULL)
			cx_err_set(&e, CX_ENOENT, "%s has no key %s", rel, as);
		else
			cx_err_set(&e, CX_ENOENT, "%s: the agent holds none of its %zu key%s", rel,
			    r->nkeys, r->nkeys == 1 ? "" : "s");
		return cx_tool_fail(t, CX_ENOENT, &e);
	}
	/* signatures of others that no longer verify: the file changed after they signed */
	for (i = 0; i < st.nstale; i++) {
		size_t j;
		for (j = 0; j < nmine; j++)
			if (strcmp(mine[j]->id, st.stale[i]) == 0)
				break;
		if (j == nmine)
			stale[nstale++] = st.stale[i];
	}
	if (nstale && !reset) {
		fprintf(stderr, "conex %s: %s: the signature%s of ", t->cmd, rel,
		    nstale == 1 ? "" : "s");
		print_ids(stderr, stale, nstale);
		fprintf(stderr,
		    " no longer verif%s over its content (it was changed after they signed).\n"
		    "  Nothing written.  Re-propose with --reset (counter + 1, every signature is "
		    "dropped)\n  and ask the signers to sign again.\n",
		    nstale == 1 ? "ies" : "y");
		return CX_EXIT_REJECT;
	}
	if (nstale) {
		if (r->counter == UINT64_MAX) {
			cx_err_set(
			    &e, CX_EREJECT, "%s: the counter is at its maximum: rotate", rel);
			return cx_tool_fail(t, CX_EREJECT, &e);
		}
		r->counter++;
		r->sigs = NULL;
		r->nsigs = 0;
		st.ngood = 0;
		cx_tool_info(t, "%s: re-proposed as counter 0x%llX (stale signatures dropped)", rel,
		    (unsigned long long)r->counter);
	}
	for (i = 0; i < nmine; i++) {
		char hex[CX_SHA256_HEX + 1];
		cx_hex_encode(mine[i]->keyid, CX_SHA256_LEN, hex);
		if (listed(st.good, st.ngood, mine[i]->id)) {
			cx_tool_info(
			    t, "%s: already signed by %s (sha256=%s)", rel, mine[i]->id, hex);
			continue;
		}
		if ((rc = cx_signer_sign(s, &t->a, r, mine[i], t->created, &e)) != 0) {
			cx_err_prefix(&e, "%s", rel);
			return cx_tool_fail(t, rc, &e);
		}
		cx_tool_info(t, "%s: signed by %s (sha256=%s)", rel, mine[i]->id, hex);
		nsigned++;
	}
	if ((nsigned || nstale) && (rc = cx_tool_write(t, rel, r, &e)) != 0)
		return cx_tool_fail(t, rc, &e);
	if ((rc = cx_tool_report_quorum(t, rel, r, &e)) != 0)
		return cx_tool_fail(t, rc, &e);
	return CX_EXIT_OK;
}
