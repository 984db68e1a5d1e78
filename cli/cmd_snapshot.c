/*
 * conex snapshot and conex timestamp: the online role files (docs/tools.md).
 * Their ids and keys come from the root's roles; each run lists the current
 * files (every keydir file; the snapshot file), counter + 1, created = now,
 * and is signed by the agent's key of the role.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/tools.h"
#include "conex/fileio.h"

static void
role_usage(FILE *f, const char *what)
{
	fprintf(f,
	    "usage: conex %s [--no-sign] [--reset-epoch]\n\n"
	    "  --no-sign      write it unsigned\n"
	    "  --reset-epoch  restart the counter under epoch + 1 (move the root's role to that\n"
	    "                 epoch first: conex root set-role %s ID --epoch E)\n"
	    "  -r, --repository DIR, --root NAME, --agent-sock PATH, --now RFC3339, -q\n\n"
	    "exit status: 0 ok, 1 failure (nothing written), 2 usage error, 3 I/O error\n",
	    what, what);
}

/* The single remote keyref of a snapshot/timestamp role. */
static int
role_ref(
    const struct cx_expr *role, const char *what, const struct cx_keyref **out, struct cx_err *e)
{
	if (role == NULL)
		return cx_err_set(e, CX_ENOENT,
		    "the root has no %s role (conex root set-role %s ID)", what, what);
	if (role->kind != CX_EXPR_QUORUM || role->n != 1 || role->nrefs != 1 ||
	    !role->refs[0].remote || role->refs[0].digest.len != CX_SHA256_HEX)
		return cx_err_set(e, CX_EREJECT, "the root's %s role is not a single key", what);
	*out = &role->refs[0];
	return 0;
}

int
cx_tool_holds_role(struct cx_tool *t, const struct cx_expr *role)
{
	const struct cx_keyref *ref = NULL;
	const struct cx_msg_key *k;
	struct cx_signer *s;
	struct cx_err e = {0};
	char kid[7 + CX_SHA256_HEX + 1];

	if (role_ref(role, "role", &ref, &e) != 0 || cx_tool_signer(t, &s, &e) != 0)
		return 0;
	snprintf(kid, sizeof(kid), "sha256=%.*s", (int)ref->digest.len, ref->digest.value);
	return cx_signer_find(s, NULL, kid, &k, &e) == 0;
}

/*
 * One run for the role file: the previous version's counter + 1 (or epoch
 * + 1 and counter 0), the role's key, created = now, targets from fill.
 */
static int
role_run(struct cx_tool *t, enum cx_rtype type, int nosign, int reset_epoch,
    int (*fill)(
        struct cx_tool *t, const struct cx_resource *root, struct cx_resource *r, struct cx_err *e),
    struct cx_err *e)
{
	const char *what = type == CX_R_SNAPSHOT ? "snapshot" : "timestamp";
	const struct cx_keyref *ref = NULL;
	const struct cx_msg_key *k = NULL;
	struct cx_resource *root, *r;
	struct cx_signer *s;
	char kid[7 + CX_SHA256_HEX + 1];
	int rc;

	if ((rc = cx_tool_read_root(t, &root, e)) != 0 ||
	    (rc = role_ref(type == CX_R_SNAPSHOT ? root->role_snapshot : root->role_timestamp, what,
	         &ref, e)) != 0)
		return rc;
	if (cx_path_check(ref->id, strlen(ref->id)) != 0 || strchr(ref->id, '/') != NULL)
		return cx_err_set(
		    e, CX_EREJECT, "the %s role's id '%s' is not a file name", what, ref->id);
	snprintf(kid, sizeof(kid), "sha256=%.*s", (int)ref->digest.len, ref->digest.value);
	if (!nosign &&
	    ((rc = cx_tool_signer(t, &s, e)) != 0 ||
	        (rc = cx_signer_find(s, NULL, kid, &k, e)) != 0 ||
	        (rc = cx_signer_label_check(k, ref->id, e)) != 0))
		return cx_err_prefix(e, "%s %s", what, ref->id);
	if ((rc = cx_tool_exists(t, ref->id, e)) < 0)
		return rc;
	if (rc == 1) {
		if ((rc = cx_tool_read(t, ref->id, type, &r, NULL, e)) != 0)
			return rc;
		if (reset_epoch) {
			if (r->epoch == UINT64_MAX)
				return cx_err_set(
				    e, CX_EREJECT, "%s: the epoch is at its maximum", ref->id);
			r->epoch++;
			r->counter = 0;
		} else if (r->counter == UINT64_MAX) {
			return cx_err_set(e, CX_EREJECT,
			    "%s: the counter is at its maximum: --reset-epoch (after conex root "
			    "set-role %s %s --epoch 0x%llX)",
			    ref->id, what, ref->id, (unsigned long long)r->epoch + 1);
		} else {
			r->counter++;
		}
	} else {
		if ((r = cx_author_new(&t->a, type, ref->id, t->created)) == NULL)
			return cx_err_set(e, CX_ENOMEM, "out of memory");
		r->epoch = ref->epoch;
	}
	if (r->epoch != ref->epoch)
		return cx_err_set(e, CX_EREJECT,
		    "%s: epoch 0x%llX, but the root's %s role says 0x%llX (%s)", ref->id,
		    (unsigned long long)r->epoch, what, (unsigned long long)ref->epoch,
		    reset_epoch ? "move the role first: conex root set-role ... --epoch"
		                : "--reset-epoch moves the file to the next epoch");
	r->created = t->created;
	r->sigs = NULL;
	r->nsigs = 0;
	r->targets = NULL;
	r->ntargets = 0;
	/* the role's key only: the verifier looks the signer up by the role's id (--no-sign keeps the keys) */
	if (k != NULL) {
		r->keys = NULL;
		r->nkeys = 0;
		if ((rc = cx_author_key_add(&t->a, r, ref->id, t->created, k->keystr, e)) != 0)
			return rc;
	}
	if ((rc = fill(t, root, r, e)) != 0)
		return rc;
	if (k != NULL && (rc = cx_signer_sign(s, &t->a, r, &r->keys[0], t->created, e)) != 0)
		return cx_err_prefix(e, "%s", ref->id);
	return cx_tool_write(t, ref->id, r, e);
}

static int
fill_snapshot(
    struct cx_tool *t, const struct cx_resource *root, struct cx_resource *r, struct cx_err *e)
{
	struct cx_file_list l;
	struct cx_repo *repo;
	size_t i;
	int rc;

	if ((rc = cx_repo_open(&repo, t->repo, e)) != 0)
		return rc;
	rc = cx_repo_walk(repo, root->keydir, &l, e);
	cx_repo_close(repo);
	if (rc != 0) {
		cx_file_list_free(&l);
		return rc;
	}
	if (l.n && (r->targets = cx_arena_alloc(&t->a, l.n * sizeof(*r->targets))) == NULL) {
		cx_file_list_free(&l);
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	}
	for (i = 0; i < l.n; i++) {
		struct cx_target *tg = &r->targets[r->ntargets];
		const char *base = strrchr(l.v[i].path, '/');
		char *hex;
		if (base != NULL && cx_id_equal(base + 1, r->name))
			continue; /* never lists itself (spec §4.6) */
		if ((hex = cx_arena_alloc(&t->a, CX_SHA256_HEX + 1)) == NULL ||
		    (tg->digests = cx_arena_alloc(&t->a, sizeof(*tg->digests))) == NULL ||
		    (tg->path = cx_arena_strdup(&t->a, l.v[i].path)) == NULL) {
			cx_file_list_free(&l);
			return cx_err_set(e, CX_ENOMEM, "out of memory");
		}
		cx_hex_encode(l.v[i].sha256, CX_SHA256_LEN, hex);
		tg->digests[0] = (struct cx_digest){hex, CX_SHA256_HEX};
		tg->ndigests = 1;
		tg->size = l.v[i].size;
		r->ntargets++;
	}
	cx_file_list_free(&l);
	return 0;
}

static int
fill_timestamp(
    struct cx_tool *t, const struct cx_resource *root, struct cx_resource *r, struct cx_err *e)
{
	const struct cx_keyref *ref = NULL;
	struct cx_buf b;
	int rc;

	if ((rc = role_ref(root->role_snapshot, "snapshot", &ref, e)) != 0)
		return rc;
	cx_buf_init(&b, 0);
	if ((rc = cx_file_read(cx_tool_path(t, ref->id), CX_BUF_DEFAULT_MAX, &b, e)) != 0) {
		cx_buf_free(&b);
		return cx_err_prefix(e, "the snapshot (conex snapshot writes it)");
	}
	if ((r->targets = cx_arena_alloc(&t->a, sizeof(*r->targets))) == NULL ||
	    cx_author_target_of(&t->a, ref->id, b.d, b.len, r->targets) != 0) {
		cx_buf_free(&b);
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	}
	r->ntargets = 1;
	cx_buf_free(&b);
	return 0;
}

int
cx_tool_snapshot(struct cx_tool *t, int nosign, int reset_epoch, struct cx_err *e)
{
	return role_run(t, CX_R_SNAPSHOT, nosign, reset_epoch, fill_snapshot, e);
}

int
cx_tool_timestamp(struct cx_tool *t, int nosign, int reset_epoch, struct cx_err *e)
{
	return role_run(t, CX_R_TIMESTAMP, nosign, reset_epoch, fill_timestamp, e);
}

static int
role_cmd(const char *what, int argc, char **argv)
{
	enum { O_NOSIGN = 0x300, O_RESET };
	static const struct option opts[] = {{"no-sign", no_argument, NULL, O_NOSIGN},
	    {"reset-epoch", no_argument, NULL, O_RESET}, CX_TOOL_LONGOPTS, {NULL, 0, NULL, 0}};
	struct cx_tool t;
	struct cx_err e = {0};
	int ch, rc = 0, nosign = 0, reset = 0;

	cx_tool_init(&t, what);
	while ((ch = getopt_long(argc, argv, CX_TOOL_SHORTOPTS, opts, NULL)) != -1) {
		if (ch == O_NOSIGN) {
			nosign = 1;
		} else if (ch == O_RESET) {
			reset = 1;
		} else if (ch == 'h') {
			role_usage(stdout, what);
			goto out;
		} else if ((rc = cx_tool_opt(&t, ch, optarg)) != 1) {
			rc = rc < 0 ? CX_EXIT_USAGE : cx_tool_usage(&t, "bad option");
			goto out;
		}
	}
	if (optind != argc) {
		rc = cx_tool_usage(&t, "no arguments");
		goto out;
	}
	rc = what[0] == 's' ? cx_tool_snapshot(&t, nosign, reset, &e)
	                    : cx_tool_timestamp(&t, nosign, reset, &e);
	rc = rc == 0 ? CX_EXIT_OK : cx_tool_fail(&t, rc, &e);
out:
	cx_tool_done(&t);
	return rc;
}

int
cx_cmd_snapshot(int argc, char **argv)
{
	return role_cmd("snapshot", argc, argv);
}

int
cx_cmd_timestamp(int argc, char **argv)
{
	return role_cmd("timestamp", argc, argv);
}
