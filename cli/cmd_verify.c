/*
 * conex verify: a drop-in for upstream's conex_verify_openssl as opam's
 * repository-validation-command (docs/verify.md lists every difference).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "conex/overrides.h"
#include "conex/patch.h"
#include "conex/repo.h"
#include "conex/state.h"
#include "conex/verify.h"

static void
verify_usage(FILE *f)
{
	fprintf(f,
	    "usage: conex verify -t ANCHORS [--quorum N] --dir DIR\n"
	    "       conex verify -t ANCHORS [--quorum N] --incremental -r REPO --patch FILE\n\n"
	    "  -t, --trust-anchors A  root key ids (sha256=HEX), repeatable, comma-separated\n"
	    "      --quorum N         anchored root signatures required (default 1)\n"
	    "      --dir DIR          full mode: the repository (a directory or a .tar.gz)\n"
	    "  -r, --repository R     incremental mode: the trusted local copy (dir or .tar.gz)\n"
	    "      --patch FILE       incremental mode: the update as a unified diff (-p1)\n"
	    "      --incremental      incremental mode\n"
	    "      --root NAME        root file name (default root)\n"
	    "      --expiry SECONDS   how long a timestamp stays fresh (default 900)\n"
	    "      --now RFC3339      verify as of this time instead of the clock\n"
	    "      --no-opam          do not require opam package paths in targets\n"
	    "      --nostrict         tolerate unsigned files in packages nobody signs\n"
	    "      --state DIR        where accepted versions are kept (default\n"
	    "                         $XDG_STATE_HOME/conex or ~/.local/state/conex)\n"
	    "      --no-state         keep no state (no rollback protection across full fetches)\n"
	    "      --overlay DIR      local trust overrides in DIR/overrides (repeatable;\n"
	    "                         docs/trust-overrides.md)\n"
	    "  -q, --quiet            print nothing on success\n"
	    "  -v, --verbose          print warnings (-vv: details)\n\n"
	    "exit status: 0 accepted, 1 rejected, 2 usage error, 3 I/O or internal error\n");
}

struct printer {
	int verbose;
};

static void
print_log(void *arg, int level, const char *msg)
{
	(void)arg;
	fprintf(stderr, "conex verify: %s: %s\n", level == CX_LOG_WARN ? "warning" : "info", msg);
}

static int
is_hex64(const char *s, size_t n)
{
	if (n != CX_SHA256_HEX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* Adds the anchors of one comma-separated argument; malformed ones are reported and skipped. */
int
cx_cli_add_anchors(const char *arg, char **anchors, size_t *n)
{
	const char *p = arg, *end;

	while (*p) {
		size_t len;
		end = strchr(p, ',');
		len = end ? (size_t)(end - p) : strlen(p);
		if (len > 7 && strncmp(p, "sha256=", 7) == 0 && is_hex64(p + 7, len - 7)) {
			if (*n >= CX_CLI_MAX_ANCHORS) {
				fprintf(stderr, "conex: too many trust anchors\n");
				return -1;
			}
			if ((anchors[*n] = strndup(p + 7, CX_SHA256_HEX)) == NULL)
				return -1;
			(*n)++;
		} else if (len > 0) {
			fprintf(stderr,
			    "conex: ignoring malformed trust anchor '%.*s' (want "
			    "sha256=<64 lowercase hex digits>)\n",
			    (int)len, p);
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return 0;
}

static int
exit_for(int code)
{
	switch (code) {
	case CX_OK:
		return CX_EXIT_OK;
	case CX_EREJECT:
	case CX_EPARSE:
	case CX_ECRYPTO:
	case CX_ENOENT:
	case CX_ETOOBIG:
	case CX_EUNSUPPORTED:
		return CX_EXIT_REJECT;
	case CX_EINVAL:
		return CX_EXIT_USAGE;
	}
	return CX_EXIT_ERROR;
}

uint8_t *
cx_cli_slurp(const char *path, size_t *len, struct cx_err *e)
{
	FILE *f = fopen(path, "rb");
	struct cx_buf b;
	uint8_t tmp[65536];
	size_t n;

	if (f == NULL) {
		cx_err_set(e, CX_EINVAL, "%s: cannot open the patch", path);
		return NULL;
	}
	cx_buf_init(&b, 1024u * 1024u * 1024u);
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		if (cx_buf_put(&b, tmp, n) != 0) {
			fclose(f);
			cx_buf_free(&b);
			cx_err_set(e, CX_ETOOBIG, "%s: patch too large", path);
			return NULL;
		}
	fclose(f);
	return (uint8_t *)cx_buf_steal_str(&b, len);
}

void
cx_cli_verify_defaults(struct cx_verify_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->quorum = 1;
	o->root_name = "root";
	o->opam = 1;
	o->strict = 1;
	o->expiry = 900;
	o->now = (int64_t)time(NULL);
}

int
cx_cli_common_opt(
    int ch, const char *arg, struct cx_cli_common *c, struct cx_verify_opts *o, const char *cmd)
{
	char *end;
	long long ll;

	switch (ch) {
	case 't':
		return cx_cli_add_anchors(arg, c->anchors, &c->nanchors) != 0 ? -1 : 1;
	case CX_OPT_QUORUM:
		ll = strtoll(arg, &end, 10);
		if (*arg == 0 || *end != 0 || ll < 0 || ll > 1000) {
			fprintf(stderr, "%s: --quorum: want a number from 0 to 1000\n", cmd);
			return -1;
		}
		/* opam lets a user add a repository with quorum 0: at least one anyway */
		o->quorum = ll < 1 ? 1 : (int)ll;
		return 1;
	case CX_OPT_ROOT:
		if (cx_path_check(arg, strlen(arg)) != 0 || strchr(arg, '/') != NULL) {
			fprintf(stderr, "%s: --root: want a file name\n", cmd);
			return -1;
		}
		o->root_name = arg;
		return 1;
	case CX_OPT_EXPIRY:
		ll = strtoll(arg, &end, 10);
		if (*arg == 0 || *end != 0 || ll < 0) {
			fprintf(stderr, "%s: --expiry: want seconds\n", cmd);
			return -1;
		}
		o->expiry = ll;
		return 1;
	case CX_OPT_NOW:
		if (cx_time_parse(arg, &o->now) != 0) {
			fprintf(stderr, "%s: --now: want YYYY-MM-DDThh:mm:ssZ\n", cmd);
			return -1;
		}
		return 1;
	case CX_OPT_NOOPAM:
		o->opam = 0;
		return 1;
	case CX_OPT_OVERLAY:
		if (c->noverlays == CX_CLI_MAX_OVERLAYS) {
			fprintf(stderr, "%s: too many --overlay\n", cmd);
			return -1;
		}
		c->overlays[c->noverlays++] = arg;
		return 1;
	}
	return 0;
}

void
cx_cli_common_free(struct cx_cli_common *c)
{
	for (size_t i = 0; i < c->nanchors; i++)
		free(c->anchors[i]);
	c->nanchors = 0;
}

int
cx_cli_overlays(struct cx_overrides *ovr, const char *const *dirs, size_t n, const char *cmd)
{
	struct cx_err e = {0};
	int r;

	for (size_t i = 0; i < n; i++)
		if ((r = cx_overrides_add_dir(ovr, dirs[i], &e)) != 0) {
			fprintf(stderr, "%s: --overlay: %s\n", cmd, e.msg);
			/* a broken local configuration is the caller's to fix: a usage error */
			return r == CX_EIO || r == CX_ENOMEM ? CX_EXIT_ERROR : CX_EXIT_USAGE;
		}
	return CX_EXIT_OK;
}

int
cx_cmd_verify(int argc, char **argv)
{
	enum { O_DIR = CX_OPT_OWN, O_PATCH, O_INCR, O_NOSTRICT, O_STATE, O_NOSTATE, O_NOCOLOR };
	static const struct option opts[] = {CX_CLI_COMMON_LONGOPTS,
	    {"dir", required_argument, NULL, O_DIR}, {"repository", required_argument, NULL, 'r'},
	    {"patch", required_argument, NULL, O_PATCH}, {"incremental", no_argument, NULL, O_INCR},
	    {"nostrict", no_argument, NULL, O_NOSTRICT},
	    {"ignore-missing", no_argument, NULL, O_NOSTRICT},
	    {"state", required_argument, NULL, O_STATE}, {"no-state", no_argument, NULL, O_NOSTATE},
	    {"no-color", no_argument, NULL, O_NOCOLOR}, {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	struct cx_cli_common c;
	size_t patchlen = 0;
	const char *dir = NULL, *repository = NULL, *patchfile = NULL, *statedir = NULL;
	int incremental = 0, quiet = 0, verbose = 0, nostate = 0, ch, rc = CX_EXIT_ERROR, r;
	struct cx_verify_opts o;
	struct cx_verify_result res;
	struct cx_log log = {print_log, NULL, 0};
	struct cx_repo *repo = NULL;
	struct cx_patch *patch = NULL;
	struct cx_counters prev;
	struct cx_err e = {0};
	uint8_t *patchdata = NULL;
	char *statepath = NULL;
	int found = 0;
	struct cx_overrides ovr;

	memset(&c, 0, sizeof(c));
	cx_cli_verify_defaults(&o);
	o.log = &log;
	cx_overrides_init(&ovr);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "t:r:qvh", opts, NULL)) != -1) {
		if ((r = cx_cli_common_opt(ch, optarg, &c, &o, "conex verify")) < 0)
			goto out_usage;
		if (r > 0)
			continue;
		switch (ch) {
		case O_DIR:
			dir = optarg;
			break;
		case 'r':
			repository = optarg;
			break;
		case O_PATCH:
			patchfile = optarg;
			break;
		case O_INCR:
			incremental = 1;
			break;
		case O_NOSTRICT:
			o.strict = 0;
			break;
		case O_STATE:
			statedir = optarg;
			break;
		case O_NOSTATE:
			nostate = 1;
			break;
		case O_NOCOLOR:
			break;
		case 'q':
			quiet = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			verify_usage(stdout);
			rc = CX_EXIT_OK;
			goto out;
		default:
			goto out_usage;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "conex verify: unexpected argument '%s'\n", argv[optind]);
		goto out_usage;
	}
	log.level = quiet ? 0 : verbose >= 2 ? CX_LOG_DEBUG : verbose ? CX_LOG_INFO : CX_LOG_WARN;
	if (incremental && repository && patchfile && !dir) {
		/* incremental */
	} else if (!incremental && !patchfile && dir) {
		/* full; opam may pass --repository too, which full mode does not need */
	} else {
		fprintf(stderr,
		    "conex verify: invalid combination of --dir, --incremental, "
		    "--repository and --patch\n");
		goto out_usage;
	}
	if (c.nanchors == 0) {
		fprintf(stderr, "conex verify: no valid trust anchor given (-t sha256=...)\n");
		goto out_usage;
	}
	o.anchors = (const char *const *)c.anchors;
	o.nanchors = c.nanchors;
	if ((rc = cx_cli_overlays(&ovr, c.overlays, c.noverlays, "conex verify")) != CX_EXIT_OK)
		goto out;
	if (c.noverlays)
		o.overrides = &ovr;
	rc = CX_EXIT_ERROR;
	if (!nostate) {
		if ((r = cx_state_path(statedir, o.anchors, c.nanchors, &statepath, &e)) != 0 ||
		    (r = cx_state_load(statepath, &prev, &found, &e)) != 0) {
			fprintf(stderr, "conex verify: state: %s\n", e.msg);
			rc = CX_EXIT_ERROR;
			goto out;
		}
	}
	if ((r = cx_repo_open(&repo, incremental ? repository : dir, &e)) != 0) {
		fprintf(stderr, "conex verify: %s\n", e.msg);
		rc = r == CX_ENOENT ? CX_EXIT_USAGE : exit_for(r);
		goto out;
	}
	if (incremental) {
		if ((patchdata = cx_cli_slurp(patchfile, &patchlen, &e)) == NULL) {
			fprintf(stderr, "conex verify: %s\n", e.msg);
			rc = CX_EXIT_USAGE;
			goto out;
		}
		if ((r = cx_patch_parse(patchdata, patchlen, patchfile, &patch, &e)) == 0)
			r = cx_verify_incremental(repo, patch, &o, &res, &e);
	} else {
		r = cx_verify_full(repo, &o, &res, &e);
	}
	if (r == 0 && found)
		r = cx_counters_check(&prev, &res.c, &e);
	if (r == 0 && statepath != NULL && (r = cx_state_store(statepath, &res.c, &e)) != 0) {
		fprintf(stderr, "conex verify: state: %s\n", e.msg);
		rc = CX_EXIT_ERROR;
		goto out;
	}
	if (r != 0) {
		fprintf(stderr, "conex verify: %s: %s\n",
		    r == CX_EREJECT || exit_for(r) == CX_EXIT_REJECT ? "rejected" : "error", e.msg);
		rc = exit_for(r);
		goto out;
	}
	if (!quiet)
		printf("%s verification successful: %zu files, %zu valid targets files\n",
		    incremental ? "incremental" : "full", res.ndata, res.ntargets);
	rc = CX_EXIT_OK;
	goto out;
out_usage:
	rc = CX_EXIT_USAGE;
out:
	cx_overrides_free(&ovr);
	if (patch != NULL)
		cx_patch_free(patch);
	free(patchdata);
	if (repo != NULL)
		cx_repo_close(repo);
	free(statepath);
	cx_cli_common_free(&c);
	return rc;
}
