/*
 * conex targets and conex release: identities, their keys, targets and
 * delegations (docs/tools.md).  A change is a proposal; `sign` adds the
 * identity's signatures through the agent.  release is what dune-release
 * and opam-publish call: compute one package, sign, then snapshot and
 * timestamp when the agent holds those keys.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/tools.h"

#define MAX_LIST 64

static void
targets_usage(FILE *f)
{
	fprintf(f,
	    "usage: conex targets create ID [--key KEYID...] [--quorum N]\n"
	    "       conex targets compute ID [--pkg NAME...]\n"
	    "       conex targets delegate ID PATH TO[,TO...] [--quorum N] [--no-terminating]\n"
	    "       conex targets undelegate ID PATH [TO]\n"
	    "       conex targets add-key ID [--keyid sha256=HEX] [--quorum N]\n"
	    "       conex targets remove-key ID KEYID [--quorum N]\n"
	    "       conex targets rotate ID [--keyid sha256=HEX]\n"
	    "       conex targets sign ID [--as KEYID] [--reset]\n"
	    "       conex targets hash ID\n"
	    "       conex targets show ID\n"
	    "       conex release ID NAME [--no-snapshot]\n\n"
	    "common options:\n"
	    "  -r, --repository DIR  the repository (default .)\n"
	    "      --root NAME       the root file name (default root)\n"
	    "      --agent-sock PATH the agent's socket (default $%s)\n"
	    "      --now RFC3339     use this time instead of the clock\n"
	    "  -q                    print nothing but errors\n\n"
	    "exit status: 0 ok, 1 failure (nothing written), 2 usage error, 3 I/O error\n",
	    CX_AGENT_SOCK_ENV);
}

struct targets_args {
	const char *keys[MAX_LIST];
	size_t nkeys;
	const char *pkgs[MAX_LIST];
	size_t npkgs;
	const char *keyid, *as;
	int64_t quorum;
	int reset, noterm, nosnap;
};

enum { O_KEY = 0x300, O_PKG, O_KEYID, O_QUORUM, O_NOTERM, O_AS, O_RESET, O_NOSNAP };

static int
targets_opts(struct cx_tool *t, int argc, char **argv, struct targets_args *ta)
{
	static const struct option opts[] = {{"key", required_argument, NULL, O_KEY},
	    {"pkg", required_argument, NULL, O_PKG}, {"keyid", required_argument, NULL, O_KEYID},
	    {"quorum", required_argument, NULL, O_QUORUM},
	    {"no-terminating", no_argument, NULL, O_NOTERM}, {"as", required_argument, NULL, O_AS},
	    {"reset", no_argument, NULL, O_RESET}, {"no-snapshot", no_argument, NULL, O_NOSNAP},
	    CX_TOOL_LONGOPTS, {NULL, 0, NULL, 0}};
	uint64_t v;
	int ch, rc;

	memset(ta, 0, sizeof(*ta));
	ta->quorum = -1;
	while ((ch = getopt_long(argc, argv, CX_TOOL_SHORTOPTS, opts, NULL)) != -1) {
		switch (ch) {
		case O_KEY:
			if (ta->nkeys == MAX_LIST)
				return cx_tool_usage(t, "--key: at most %d", MAX_LIST);
			ta->keys[ta->nkeys++] = optarg;
			break;
		case O_PKG:
			if (ta->npkgs == MAX_LIST)
				return cx_tool_usage(t, "--pkg: at most %d", MAX_LIST);
			ta->pkgs[ta->npkgs++] = optarg;
			break;
		case O_KEYID:
			ta->keyid = optarg;
			break;
		case O_QUORUM:
			if (cx_tool_parse_u64(optarg, &v) != 0 || v > 1000)
				return cx_tool_usage(t, "--quorum: want a number");
			ta->quorum = (int64_t)v;
			break;
		case O_NOTERM:
			ta->noterm = 1;
			break;
		case O_AS:
			ta->as = optarg;
			break;
		case O_RESET:
			ta->reset = 1;
			break;
		case O_NOSNAP:
			ta->nosnap = 1;
			break;
		case 'h':
			targets_usage(stdout);
			return -1;
		default:
			if ((rc = cx_tool_opt(t, ch, optarg)) != 1)
				return rc < 0 ? CX_EXIT_USAGE : cx_tool_usage(t, "bad option");
		}
	}
	return 0;
}

/* Reads keydir/ID; a missing one says how to make it. */
static int
read_identity(struct cx_tool *t, const char *rel, struct cx_resource **r, struct cx_buf *canon,
    struct cx_err *e)
{
	int rc = cx_tool_read(t, rel, CX_R_TARGETS, r, canon, e);

	if (rc == CX_ENOENT)
		cx_err_prefix(e, "no such identity (conex targets create ID makes one)");
	return rc;
}

/* Every command works on keydir/ID of the root: reads the root and returns the path. */
static int
identity_file(struct cx_tool *t, const char *id, struct cx_resource **root, const char **rel,
    struct cx_err *e)
{
	int rc;

	if (cx_path_check(id, strlen(id)) != 0 || strchr(id, '/') != NULL)
		return cx_err_set(e, CX_EINVAL, "'%s': not an identity", id);
	if ((rc = cx_tool_read_root(t, root, e)) != 0)
		return rc;
	if ((*rel = cx_tool_keyfile(t, *root, id)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	return 0;
}

static int
nomem(struct cx_err *e)
{
	return cx_err_set(e, CX_ENOMEM, "out of memory");
}

static int
t_create(struct cx_tool *t, struct targets_args *ta, const char *id, struct cx_err *e)
{
	struct cx_resource *root, *r;
	struct cx_signer *s;
	const char *rel;
	struct cx_keyref ref;
	size_t i;
	int rc;

	if ((rc = identity_file(t, id, &root, &rel, e)) != 0)
		return rc;
	if ((rc = cx_tool_exists(t, rel, e)) != 0)
		return rc == 1 ? cx_err_set(e, CX_EREJECT,
		                     "%s exists: not overwritten (add-key, remove-key and rotate "
		                     "change its keys)",
		                     rel)
		               : rc;
	if ((r = cx_author_new(&t->a, CX_R_TARGETS, id, t->created)) == NULL)
		return nomem(e);
	if (strchr(root->keydir, '/') == NULL && (rc = cx_tool_mkdir(t, root->keydir, e)) != 0)
		return rc;
	if ((rc = cx_tool_signer(t, &s, e)) != 0)
		return rc;
	memset(&ref, 0, sizeof(ref));
	if (ta->nkeys == 0) {
		const struct cx_msg_key *k;
		if ((rc = cx_signer_find(s, id, NULL, &k, e)) != 0 ||
		    (rc = cx_author_key_add(&t->a, r, id, t->created, k->keystr, e)) != 0)
			return rc;
		ref.id = r->keys[0].id;
		if ((r->valid = cx_expr_single(&t->a, &ref)) == NULL)
			return nomem(e);
	} else {
		/* several keys: each entry is named by the agent's id of its key */
		for (i = 0; i < ta->nkeys; i++) {
			const struct cx_msg_key *k;
			const char *kid =
			    strncmp(ta->keys[i], "sha256=", 7) == 0 ? ta->keys[i] : NULL;
			const char *name;
			if ((rc = cx_signer_find(s, kid ? NULL : ta->keys[i], kid, &k, e)) != 0)
				return rc;
			name = ta->nkeys == 1 ? id : k->id;
			if ((rc = cx_signer_label_check(k, name, e)) != 0)
				return rc;
			if (cx_resource_key(r, name) != NULL)
				return cx_err_set(e, CX_EINVAL,
				    "two keys with the id %s: give each key its own id (label)",
				    name);
			if ((rc = cx_author_key_add(&t->a, r, name, t->created, k->keystr, e)) != 0)
				return rc;
			ref.id = cx_arena_strdup(&t->a, name);
			if ((rc = cx_author_quorum_add(&t->a, &r->valid, &ref, -1, e)) != 0)
				return rc;
		}
		/* default: every key signs */
		r->valid->n = ta->quorum >= 0 ? ta->quorum : (int64_t)r->valid->nrefs;
		if (ta->quorum > (int64_t)r->valid->nrefs || r->valid->n == 0)
			return cx_err_set(e, CX_EINVAL, "--quorum: want 1 to %zu", r->valid->nrefs);
	}
	return cx_tool_write(t, rel, r, e);
}

static int
compute_into(struct cx_tool *t, const struct cx_resource *root, struct cx_resource *r,
    const char *const *pkgs, size_t npkgs, struct cx_err *e)
{
	struct cx_repo *repo;
	struct cx_target *v;
	size_t n;
	int rc;

	if ((rc = cx_repo_open(&repo, t->repo, e)) != 0)
		return rc;
	rc = cx_author_targets_compute(repo, root->datadir, pkgs, npkgs, &t->a, &v, &n, e);
	cx_repo_close(repo);
	if (rc != 0)
		return rc;
	if ((rc = cx_author_targets_replace(&t->a, r, root->datadir, pkgs, npkgs, v, n, e)) != 0)
		return rc;
	cx_tool_info(t, "%s: %zu target%s computed, %zu in total", r->name, n, n == 1 ? "" : "s",
	    r->ntargets);
	return 0;
}

/* Quorum(n, {Remote(TO, hash(keydir/TO), epoch(keydir/TO))}) over the comma-separated tos. */
static int
delegation_expr(struct cx_tool *t, const struct cx_resource *root, const char *tos, int64_t n,
    struct cx_expr **out, struct cx_err *e)
{
	const char *p = tos;
	int rc;

	*out = NULL;
	while (*p) {
		size_t l = strcspn(p, ",");
		char *to = cx_arena_memdup(&t->a, p, l), *hash;
		struct cx_resource *id;
		struct cx_keyref ref;
		if (to == NULL || (hash = cx_arena_alloc(&t->a, 7 + CX_SHA256_HEX + 1)) == NULL)
			return nomem(e);
		if (l == 0 || cx_path_check(to, l) != 0 || strchr(to, '/') != NULL)
			return cx_err_set(e, CX_EINVAL, "'%s': not an identity", to);
		if ((rc = cx_tool_read(
		         t, cx_tool_keyfile(t, root, to), CX_R_TARGETS, &id, NULL, e)) != 0)
			return cx_err_prefix(e, "delegating to %s", to);
		if ((rc = cx_author_key_hash(id, hash, e)) != 0)
			return rc;
		memset(&ref, 0, sizeof(ref));
		ref.remote = 1;
		ref.id = to;
		ref.digest = (struct cx_digest){hash + 7, CX_SHA256_HEX};
		ref.epoch = id->epoch;
		if ((rc = cx_author_quorum_add(&t->a, out, &ref, -1, e)) != 0)
			return rc;
		p += l;
		if (*p == ',')
			p++;
	}
	if (*out == NULL)
		return cx_err_set(e, CX_EINVAL, "no identity to delegate to");
	if (n > (int64_t)(*out)->nrefs || n == 0)
		return cx_err_set(e, CX_EINVAL, "--quorum: want 1 to %zu", (*out)->nrefs);
	if (n > 0)
		(*out)->n = n;
	return 0;
}

/* The commands that change keydir/ID: a proposal each. */
static int
t_change(struct cx_tool *t, const char *sub, struct targets_args *ta, char **args, int nargs,
    struct cx_err *e)
{
	struct cx_resource *root, *r;
	struct cx_buf canon;
	const char *rel;
	int rc, changed;

	cx_buf_init(&canon, 0);
	if ((rc = identity_file(t, args[0], &root, &rel, e)) != 0 ||
	    (rc = read_identity(t, rel, &r, &canon, e)) != 0)
		goto out;
	if (strcmp(sub, "compute") == 0) {
		rc = compute_into(t, root, r, ta->pkgs, ta->npkgs, e);
	} else if (strcmp(sub, "delegate") == 0) {
		struct cx_expr *x;
		size_t dl = strlen(root->datadir);
		if (strncmp(args[1], root->datadir, dl) != 0 || args[1][dl] != '/') {
			rc = cx_err_set(e, CX_EINVAL,
			    "'%s': a delegated path is below the datadir %s/", args[1],
			    root->datadir);
			goto out;
		}
		if ((rc = delegation_expr(t, root, args[2], ta->quorum, &x, e)) == 0)
			rc = cx_author_delegate(&t->a, r, args[1], x, !ta->noterm, e);
	} else if (strcmp(sub, "undelegate") == 0) {
		rc = cx_author_undelegate(&t->a, r, args[1], nargs == 3 ? args[2] : NULL, e);
	} else if (strcmp(sub, "add-key") == 0) {
		struct cx_signer *s;
		const struct cx_msg_key *k;
		const struct cx_key *have;
		struct cx_keyref ref;
		if ((rc = cx_tool_signer(t, &s, e)) != 0 ||
		    (rc = cx_signer_find(s, ta->keyid ? NULL : args[0], ta->keyid, &k, e)) != 0)
			goto out;
		if ((have = cx_resource_key(r, k->id)) != NULL &&
		    (have->keystrlen != strlen(k->keystr) ||
		        memcmp(have->keystr, k->keystr, have->keystrlen) != 0)) {
			rc = cx_err_set(e, CX_EINVAL,
			    "%s already has another key with the id %s: a second key needs its own "
			    "id (label)",
			    rel, k->id);
			goto out;
		}
		memset(&ref, 0, sizeof(ref));
		ref.id = cx_arena_strdup(&t->a, k->id);
		if ((rc = cx_author_key_add(&t->a, r, k->id, t->created, k->keystr, e)) == 0)
			rc = cx_author_quorum_add(&t->a, &r->valid, &ref, ta->quorum, e);
	} else if (strcmp(sub, "remove-key") == 0) {
		const char *name = args[1];
		uint8_t kid[CX_SHA256_LEN];
		if (cx_resource_key(r, name) == NULL && cx_keyid_parse(name, kid) == 0)
			for (size_t i = 0; i < r->nkeys; i++)
				if (memcmp(r->keys[i].keyid, kid, CX_SHA256_LEN) == 0)
					name = r->keys[i].id;
		if ((rc = cx_author_key_remove(r, name, e)) == 0)
			rc = cx_author_quorum_remove(&t->a, &r->valid, name, ta->quorum, e);
	}
	if (rc != 0)
		goto out;
	if ((rc = cx_tool_propose(t, rel, r, &canon, &changed, e)) != 0)
		goto out;
	if (changed) {
		char hash[7 + CX_SHA256_HEX + 1];
		if ((rc = cx_tool_write(t, rel, r, e)) != 0)
			goto out;
		/* a new key hash breaks every delegation to this identity until it is redone */
		if ((strcmp(sub, "add-key") == 0 || strcmp(sub, "remove-key") == 0) &&
		    cx_author_key_hash(r, hash, e) == 0)
			cx_tool_info(t,
			    "%s: key hash now %s: re-run `conex targets delegate` (or `conex root "
			    "add-to-role maintainer %s`) wherever %s is delegated to",
			    rel, hash, args[0], args[0]);
	}
out:
	cx_buf_free(&canon);
	return rc;
}

static int
t_rotate(struct cx_tool *t, struct targets_args *ta, const char *id, struct cx_err *e)
{
	struct cx_resource *root, *r;
	const char *rel;
	char hash[7 + CX_SHA256_HEX + 1];
	int rc;

	if ((rc = identity_file(t, id, &root, &rel, e)) != 0 ||
	    (rc = read_identity(t, rel, &r, NULL, e)) != 0)
		return rc;
	if (r->epoch == UINT64_MAX)
		return cx_err_set(e, CX_EREJECT, "%s: the epoch is at its maximum", rel);
	if (ta->keyid != NULL) {
		struct cx_signer *s;
		const struct cx_msg_key *k;
		struct cx_keyref ref;
		if ((rc = cx_tool_signer(t, &s, e)) != 0 ||
		    (rc = cx_signer_find(s, NULL, ta->keyid, &k, e)) != 0 ||
		    (rc = cx_signer_label_check(k, id, e)) != 0)
			return rc;
		r->keys = NULL;
		r->nkeys = 0;
		if ((rc = cx_author_key_add(&t->a, r, id, t->created, k->keystr, e)) != 0)
			return rc;
		memset(&ref, 0, sizeof(ref));
		ref.id = r->keys[0].id;
		if ((r->valid = cx_expr_single(&t->a, &ref)) == NULL)
			return nomem(e);
	}
	/* a bigger epoch lets the counter restart (spec §8) */
	r->epoch++;
	r->counter = 0;
	r->sigs = NULL;
	r->nsigs = 0;
	if ((rc = cx_tool_write(t, rel, r, e)) != 0 || (rc = cx_author_key_hash(r, hash, e)) != 0)
		return rc;
	cx_tool_info(t,
	    "%s: epoch 0x%llX, key hash %s.  Next: conex targets sign %s; then every delegation "
	    "to %s must be redone (conex targets delegate ..., or conex root add-to-role "
	    "maintainer %s) and signed",
	    rel, (unsigned long long)r->epoch, hash, id, id, id);
	return 0;
}

static int
t_show(struct cx_tool *t, const char *sub, const char *id, struct cx_err *e)
{
	struct cx_resource *root, *r;
	const char *rel;
	char hash[7 + CX_SHA256_HEX + 1];
	struct cx_buf b;
	int rc;

	if ((rc = identity_file(t, id, &root, &rel, e)) != 0 ||
	    (rc = read_identity(t, rel, &r, NULL, e)) != 0 ||
	    (rc = cx_author_key_hash(r, hash, e)) != 0)
		return rc;
	if (strcmp(sub, "hash") == 0) {
		printf("%s\n", hash);
		return 0;
	}
	cx_buf_init(&b, 0);
	if ((rc = cx_resource_write(r, &b, e)) == 0)
		fwrite(b.d, 1, b.len, stdout);
	cx_buf_free(&b);
	if (rc != 0)
		return rc;
	printf("# key hash %s epoch 0x%llX\n", hash, (unsigned long long)r->epoch);
	return cx_tool_report_quorum(t, rel, r, e);
}

static int
t_release(
    struct cx_tool *t, struct targets_args *ta, const char *id, const char *pkg, struct cx_err *e)
{
	struct cx_resource *root, *r;
	struct cx_buf canon;
	const char *rel;
	int rc, changed, x;

	t->terse = 1;
	cx_buf_init(&canon, 0);
	if ((rc = identity_file(t, id, &root, &rel, e)) != 0 ||
	    (rc = read_identity(t, rel, &r, &canon, e)) != 0 ||
	    (rc = compute_into(t, root, r, &pkg, 1, e)) != 0 ||
	    (rc = cx_tool_propose(t, rel, r, &canon, &changed, e)) != 0) {
		cx_buf_free(&canon);
		return rc;
	}
	cx_buf_free(&canon);
	/* sign reports and writes itself; the exit code carries its failure */
	if ((x = cx_tool_sign(t, rel, r, NULL, 0)) != CX_EXIT_OK)
		return x;
	if (ta->nosnap || t->nwritten == 0)
		return 0;
	if (root->role_snapshot != NULL) {
		if (!cx_tool_holds_role(t, root->role_snapshot)) {
			cx_tool_warn(t,
			    "the agent does not hold the snapshot key: snapshot and "
			    "timestamp not refreshed");
			return 0;
		}
		if ((rc = cx_tool_snapshot(t, 0, 0, e)) != 0)
			return rc;
	}
	if (root->role_timestamp != NULL) {
		if (!cx_tool_holds_role(t, root->role_timestamp)) {
			cx_tool_warn(t,
			    "the agent does not hold the timestamp key: timestamp not "
			    "refreshed");
			return 0;
		}
		if ((rc = cx_tool_timestamp(t, 0, 0, e)) != 0)
			return rc;
	}
	return 0;
}

static int
targets_run(struct cx_tool *t, const char *sub, int argc, char **argv)
{
	struct targets_args ta;
	struct cx_err e = {0};
	struct cx_resource *root, *r;
	const char *rel;
	char **args;
	int rc, nargs;

	if ((rc = targets_opts(t, argc, argv, &ta)) != 0)
		return rc < 0 ? CX_EXIT_OK : rc;
	args = argv + optind;
	nargs = argc - optind;
	if (strcmp(sub, "release") == 0) {
		if (nargs != 2)
			return cx_tool_usage(t, "want an ID and a package NAME");
		rc = t_release(t, &ta, args[0], args[1], &e);
		if (rc > 0)
			return rc; /* an exit code from sign */
	} else if (nargs < 1) {
		return cx_tool_usage(t, "want an ID");
	} else if (strcmp(sub, "create") == 0) {
		if (nargs != 1)
			return cx_tool_usage(t, "want an ID");
		rc = t_create(t, &ta, args[0], &e);
	} else if (strcmp(sub, "compute") == 0 || strcmp(sub, "add-key") == 0) {
		if (nargs != 1)
			return cx_tool_usage(t, "want an ID");
		rc = t_change(t, sub, &ta, args, nargs, &e);
	} else if (strcmp(sub, "delegate") == 0) {
		if (nargs != 3)
			return cx_tool_usage(t, "want ID PATH TO[,TO...]");
		rc = t_change(t, sub, &ta, args, nargs, &e);
	} else if (strcmp(sub, "undelegate") == 0) {
		if (nargs != 2 && nargs != 3)
			return cx_tool_usage(t, "want ID PATH [TO]");
		rc = t_change(t, sub, &ta, args, nargs, &e);
	} else if (strcmp(sub, "remove-key") == 0) {
		if (nargs != 2)
			return cx_tool_usage(t, "want ID KEYID");
		rc = t_change(t, sub, &ta, args, nargs, &e);
	} else if (strcmp(sub, "rotate") == 0) {
		if (nargs != 1)
			return cx_tool_usage(t, "want an ID");
		rc = t_rotate(t, &ta, args[0], &e);
	} else if (strcmp(sub, "sign") == 0) {
		if (nargs != 1)
			return cx_tool_usage(t, "want an ID");
		if ((rc = identity_file(t, args[0], &root, &rel, &e)) == 0 &&
		    (rc = read_identity(t, rel, &r, NULL, &e)) == 0)
			return cx_tool_sign(t, rel, r, ta.as, ta.reset);
	} else if (strcmp(sub, "hash") == 0 || strcmp(sub, "show") == 0) {
		if (nargs != 1)
			return cx_tool_usage(t, "want an ID");
		rc = t_show(t, sub, args[0], &e);
	} else {
		return cx_tool_usage(t, "unknown command '%s'", sub);
	}
	return rc == 0 ? CX_EXIT_OK : cx_tool_fail(t, rc, &e);
}

int
cx_cmd_targets(int argc, char **argv)
{
	struct cx_tool t;
	char cmd[40];
	int rc;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		targets_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CX_EXIT_USAGE : CX_EXIT_OK;
	}
	snprintf(cmd, sizeof(cmd), "targets %s", argv[1]);
	cx_tool_init(&t, cmd);
	rc = targets_run(&t, argv[1], argc - 1, argv + 1);
	cx_tool_done(&t);
	return rc;
}

int
cx_cmd_release(int argc, char **argv)
{
	struct cx_tool t;
	int rc;

	cx_tool_init(&t, "release");
	rc = targets_run(&t, "release", argc, argv);
	cx_tool_done(&t);
	return rc;
}
