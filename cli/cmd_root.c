/*
 * conex root: the offline root (docs/tools.md).  Every change is a
 * proposal (counter + 1 once, signatures dropped, when the root was
 * signed); `sign` adds root signatures through the agent, one signer at a
 * time, without invalidating the others.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/tools.h"

static void
root_usage(FILE *f)
{
	fprintf(f,
	    "usage: conex root create [--datadir packages] [--keydir keys]\n"
	    "       conex root add-key ID [--keyid sha256=HEX] [--quorum N]\n"
	    "       conex root remove-key ID [--quorum N]\n"
	    "       conex root set-role snapshot|timestamp ID [--keyid sha256=HEX] [--epoch E]\n"
	    "       conex root add-to-role maintainer ID [--key-hash sha256=HEX] [--epoch E]\n"
	    "                                            [--quorum N]\n"
	    "       conex root remove-from-role maintainer ID [--quorum N]\n"
	    "       conex root sign [--as ID] [--reset]\n"
	    "       conex root show\n\n"
	    "common options:\n"
	    "  -r, --repository DIR  the repository (default .)\n"
	    "      --root NAME       the root file name (default root)\n"
	    "      --agent-sock PATH the agent's socket (default $%s)\n"
	    "      --now RFC3339     use this time instead of the clock\n"
	    "  -q                    print nothing but errors\n\n"
	    "exit status: 0 ok, 1 failure (nothing written), 2 usage error, 3 I/O error\n",
	    CX_AGENT_SOCK_ENV);
}

struct root_args {
	const char *keyid, *keyhash, *datadir, *keydir, *as;
	int64_t quorum, epoch;
	int reset;
};

enum { O_KEYID = 0x300, O_KEYHASH, O_QUORUM, O_EPOCH, O_DATADIR, O_KEYDIR, O_AS, O_RESET };

/* Parses the options of every root command; extra arguments are left at argv[optind..]. */
static int
root_opts(struct cx_tool *t, int argc, char **argv, struct root_args *ra)
{
	static const struct option opts[] = {{"keyid", required_argument, NULL, O_KEYID},
	    {"key-hash", required_argument, NULL, O_KEYHASH},
	    {"quorum", required_argument, NULL, O_QUORUM},
	    {"epoch", required_argument, NULL, O_EPOCH},
	    {"datadir", required_argument, NULL, O_DATADIR},
	    {"keydir", required_argument, NULL, O_KEYDIR}, {"as", required_argument, NULL, O_AS},
	    {"reset", no_argument, NULL, O_RESET}, CX_TOOL_LONGOPTS, {NULL, 0, NULL, 0}};
	uint64_t v;
	int ch, rc;

	memset(ra, 0, sizeof(*ra));
	ra->quorum = -1;
	ra->epoch = -1;
	while ((ch = getopt_long(argc, argv, CX_TOOL_SHORTOPTS, opts, NULL)) != -1) {
		switch (ch) {
		case O_KEYID:
			ra->keyid = optarg;
			break;
		case O_KEYHASH:
			ra->keyhash = optarg;
			break;
		case O_QUORUM:
			if (cx_tool_parse_u64(optarg, &v) != 0 || v > 1000)
				return cx_tool_usage(t, "--quorum: want a number");
			ra->quorum = (int64_t)v;
			break;
		case O_EPOCH:
			if (cx_tool_parse_u64(optarg, &v) != 0 || v > INT64_MAX)
				return cx_tool_usage(t, "--epoch: want a number");
			ra->epoch = (int64_t)v;
			break;
		case O_DATADIR:
			ra->datadir = optarg;
			break;
		case O_KEYDIR:
			ra->keydir = optarg;
			break;
		case O_AS:
			ra->as = optarg;
			break;
		case O_RESET:
			ra->reset = 1;
			break;
		case 'h':
			root_usage(stdout);
			return -1;
		default:
			if ((rc = cx_tool_opt(t, ch, optarg)) != 1)
				return rc < 0 ? CX_EXIT_USAGE : cx_tool_usage(t, "bad option");
		}
	}
	return 0;
}

static int
root_create(struct cx_tool *t, struct root_args *ra, int nargs)
{
	struct cx_err e = {0};
	struct cx_resource *r;
	int rc;

	if (nargs != 0)
		return cx_tool_usage(t, "no arguments");
	if ((rc = cx_tool_exists(t, t->rootname, &e)) != 0) {
		if (rc == 1)
			cx_err_set(&e, CX_EREJECT, "%s exists: not overwritten",
			    cx_tool_path(t, t->rootname));
		return cx_tool_fail(t, rc == 1 ? CX_EREJECT : rc, &e);
	}
	if (mkdir(t->repo, 0755) == -1 && errno != EEXIST) {
		cx_err_set(&e, CX_EIO, "mkdir %s: %s", t->repo, strerror(errno));
		return cx_tool_fail(t, CX_EIO, &e);
	}
	if ((r = cx_author_new(&t->a, CX_R_ROOT, t->rootname, t->created)) == NULL ||
	    (r->valid = cx_arena_alloc(&t->a, sizeof(*r->valid))) == NULL) {
		cx_err_set(&e, CX_ENOMEM, "out of memory");
		return cx_tool_fail(t, CX_ENOMEM, &e);
	}
	r->valid->kind = CX_EXPR_QUORUM; /* (0 []): conex verify wants a key and a signature */
	r->datadir = ra->datadir ? ra->datadir : "packages";
	r->keydir = ra->keydir ? ra->keydir : "keys";
	if (cx_path_check(r->datadir, strlen(r->datadir)) != 0 ||
	    cx_path_check(r->keydir, strlen(r->keydir)) != 0)
		return cx_tool_usage(t, "--datadir/--keydir: want relative paths");
	if ((rc = cx_tool_write(t, t->rootname, r, &e)) != 0 ||
	    (strchr(r->keydir, '/') == NULL && (rc = cx_tool_mkdir(t, r->keydir, &e)) != 0) ||
	    (strchr(r->datadir, '/') == NULL && (rc = cx_tool_mkdir(t, r->datadir, &e)) != 0))
		return cx_tool_fail(t, rc, &e);
	return CX_EXIT_OK;
}

/* The role to change: snapshot/timestamp, or maintainer. */
static struct cx_expr **
role_of(struct cx_resource *r, const char *name, int maintainer)
{
	if (maintainer)
		return strcmp(name, "maintainer") == 0 ? &r->role_maintainer : NULL;
	if (strcmp(name, "snapshot") == 0)
		return &r->role_snapshot;
	if (strcmp(name, "timestamp") == 0)
		return &r->role_timestamp;
	return NULL;
}

static int
root_change(struct cx_tool *t, const char *sub, struct root_args *ra, char **args, int nargs)
{
	struct cx_err e = {0};
	struct cx_resource *r;
	struct cx_buf canon;
	struct cx_signer *s;
	const struct cx_msg_key *k;
	struct cx_keyref ref;
	struct cx_expr **role;
	int rc, changed;

	memset(&ref, 0, sizeof(ref));
	cx_buf_init(&canon, 0);
	if ((rc = cx_tool_read(t, t->rootname, CX_R_ROOT, &r, &canon, &e)) != 0) {
		if (rc == CX_ENOENT)
			cx_err_prefix(&e, "no root (conex root create makes one)");
		cx_buf_free(&canon);
		return cx_tool_fail(t, rc, &e);
	}
	if (strcmp(sub, "add-key") == 0) {
		if (nargs != 1)
			return cx_buf_free(&canon), cx_tool_usage(t, "want an ID");
		if ((rc = cx_tool_signer(t, &s, &e)) != 0 ||
		    (rc = cx_signer_find(s, args[0], ra->keyid, &k, &e)) != 0 ||
		    (rc = cx_signer_label_check(k, args[0], &e)) != 0 ||
		    (rc = cx_author_key_add(&t->a, r, args[0], t->created, k->keystr, &e)) != 0)
			goto fail;
		ref.id = cx_arena_strdup(&t->a, args[0]);
		if ((rc = cx_author_quorum_add(&t->a, &r->valid, &ref, ra->quorum, &e)) != 0)
			goto fail;
	} else if (strcmp(sub, "remove-key") == 0) {
		if (nargs != 1)
			return cx_buf_free(&canon), cx_tool_usage(t, "want an ID");
		if ((rc = cx_author_key_remove(r, args[0], &e)) != 0 ||
		    (rc = cx_author_quorum_remove(&t->a, &r->valid, args[0], ra->quorum, &e)) != 0)
			goto fail;
	} else if (strcmp(sub, "set-role") == 0) {
		char *hex;
		if (nargs != 2 || (role = role_of(r, args[0], 0)) == NULL)
			return cx_buf_free(&canon),
			       cx_tool_usage(t, "want snapshot or timestamp, and an ID");
		if ((hex = cx_arena_alloc(&t->a, CX_SHA256_HEX + 1)) == NULL) {
			rc = cx_err_set(&e, CX_ENOMEM, "out of memory");
			goto fail;
		}
		if (ra->keyid != NULL) {
			uint8_t id[CX_SHA256_LEN];
			if (cx_keyid_parse(ra->keyid, id) != 0)
				return cx_buf_free(&canon),
				       cx_tool_usage(t, "--keyid: want sha256=HEX");
			cx_hex_encode(id, CX_SHA256_LEN, hex);
		} else {
			if ((rc = cx_tool_signer(t, &s, &e)) != 0 ||
			    (rc = cx_signer_find(s, args[1], NULL, &k, &e)) != 0 ||
			    (rc = cx_signer_label_check(k, args[1], &e)) != 0)
				goto fail;
			cx_hex_encode(k->keyid, CX_SHA256_LEN, hex);
		}
		ref.remote = 1;
		ref.id = cx_arena_strdup(&t->a, args[1]);
		ref.digest = (struct cx_digest){hex, CX_SHA256_HEX};
		/* the epoch stays unless given: the role's file keeps its counter */
		ref.epoch = ra->epoch >= 0 ? (uint64_t)ra->epoch
		    : *role != NULL && (*role)->nrefs == 1 &&
		        cx_id_equal((*role)->refs[0].id, args[1])
		    ? (*role)->refs[0].epoch
		    : 0;
		if ((*role = cx_expr_single(&t->a, &ref)) == NULL) {
			rc = cx_err_set(&e, CX_ENOMEM, "out of memory");
			goto fail;
		}
	} else if (strcmp(sub, "add-to-role") == 0) {
		char *hash;
		if (nargs != 2 || (role = role_of(r, args[0], 1)) == NULL)
			return cx_buf_free(&canon), cx_tool_usage(t, "want maintainer and an ID");
		if ((hash = cx_arena_alloc(&t->a, 7 + CX_SHA256_HEX + 1)) == NULL) {
			rc = cx_err_set(&e, CX_ENOMEM, "out of memory");
			goto fail;
		}
		ref.remote = 1;
		ref.id = cx_arena_strdup(&t->a, args[1]);
		if (ra->keyhash == NULL || ra->epoch < 0) {
			struct cx_resource *id;
			if ((rc = cx_tool_read(t, cx_tool_keyfile(t, r, args[1]), CX_R_TARGETS, &id,
			         NULL, &e)) != 0)
				goto fail;
			if ((rc = cx_author_key_hash(id, hash, &e)) != 0)
				goto fail;
			ref.epoch = id->epoch;
		}
		if (ra->keyhash != NULL) {
			uint8_t h[CX_SHA256_LEN];
			if (cx_keyid_parse(ra->keyhash, h) != 0)
				return cx_buf_free(&canon),
				       cx_tool_usage(t, "--key-hash: want sha256=HEX");
			memcpy(hash, "sha256=", 7);
			cx_hex_encode(h, CX_SHA256_LEN, hash + 7);
		}
		if (ra->epoch >= 0)
			ref.epoch = (uint64_t)ra->epoch;
		ref.digest = (struct cx_digest){hash + 7, CX_SHA256_HEX};
		if ((rc = cx_author_quorum_add(&t->a, role, &ref, ra->quorum, &e)) != 0)
			goto fail;
	} else { /* remove-from-role */
		if (nargs != 2 || (role = role_of(r, args[0], 1)) == NULL)
			return cx_buf_free(&canon), cx_tool_usage(t, "want maintainer and an ID");
		if (*role == NULL) {
			rc = cx_err_set(&e, CX_ENOENT, "the root has no maintainer role");
			goto fail;
		}
		if ((rc = cx_author_quorum_remove(&t->a, role, args[1], ra->quorum, &e)) != 0)
			goto fail;
	}
	if ((rc = cx_tool_propose(t, t->rootname, r, &canon, &changed, &e)) != 0 ||
	    (changed && (rc = cx_tool_write(t, t->rootname, r, &e)) != 0))
		goto fail;
	cx_buf_free(&canon);
	return CX_EXIT_OK;
fail:
	cx_buf_free(&canon);
	cx_err_prefix(&e, "%s", t->rootname);
	return cx_tool_fail(t, rc, &e);
}

static int
root_sign(struct cx_tool *t, struct root_args *ra, int nargs)
{
	struct cx_err e = {0};
	struct cx_resource *r;
	int rc;

	if (nargs != 0)
		return cx_tool_usage(t, "no arguments (--as ID picks one key)");
	if ((rc = cx_tool_read_root(t, &r, &e)) != 0)
		return cx_tool_fail(t, rc, &e);
	return cx_tool_sign(t, t->rootname, r, ra->as, ra->reset);
}

static int
root_show(struct cx_tool *t, int nargs)
{
	struct cx_err e = {0};
	struct cx_resource *r;
	struct cx_buf b;
	int rc;

	if (nargs != 0)
		return cx_tool_usage(t, "no arguments");
	if ((rc = cx_tool_read_root(t, &r, &e)) != 0)
		return cx_tool_fail(t, rc, &e);
	cx_buf_init(&b, 0);
	if ((rc = cx_resource_write(r, &b, &e)) != 0) {
		cx_buf_free(&b);
		return cx_tool_fail(t, rc, &e);
	}
	fwrite(b.d, 1, b.len, stdout);
	cx_buf_free(&b);
	for (size_t i = 0; i < r->nkeys; i++) {
		char hex[CX_SHA256_HEX + 1];
		cx_hex_encode(r->keys[i].keyid, CX_SHA256_LEN, hex);
		printf(
		    "# key %s: %s sha256=%s\n", r->keys[i].id, cx_keyalg_name(r->keys[i].alg), hex);
	}
	if ((rc = cx_tool_report_quorum(t, t->rootname, r, &e)) != 0)
		return cx_tool_fail(t, rc, &e);
	return CX_EXIT_OK;
}

int
cx_cmd_root(int argc, char **argv)
{
	static const char *const subs[] = {"create", "add-key", "remove-key", "set-role",
	    "add-to-role", "remove-from-role", "sign", "show", NULL};
	struct root_args ra;
	struct cx_tool t;
	char cmd[40];
	const char *sub;
	int rc, nargs, i;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		root_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CX_EXIT_USAGE : CX_EXIT_OK;
	}
	sub = argv[1];
	for (i = 0; subs[i] != NULL; i++)
		if (strcmp(subs[i], sub) == 0)
			break;
	snprintf(cmd, sizeof(cmd), "root %s", sub);
	cx_tool_init(&t, cmd);
	if (subs[i] == NULL) {
		rc = cx_tool_usage(&t, "unknown command '%s'", sub);
		goto out;
	}
	if ((rc = root_opts(&t, argc - 1, argv + 1, &ra)) != 0) {
		rc = rc < 0 ? CX_EXIT_OK : rc;
		goto out;
	}
	nargs = argc - 1 - optind;
	if (strcmp(sub, "create") == 0)
		rc = root_create(&t, &ra, nargs);
	else if (strcmp(sub, "sign") == 0)
		rc = root_sign(&t, &ra, nargs);
	else if (strcmp(sub, "show") == 0)
		rc = root_show(&t, nargs);
	else
		rc = root_change(&t, sub, &ra, argv + 1 + optind, nargs);
out:
	cx_tool_done(&t);
	return rc;
}
