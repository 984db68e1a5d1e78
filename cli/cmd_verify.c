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

#define MAX_ANCHORS CX_CLI_MAX_ANCHORS

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
			if (*n >= MAX_ANCHORS) {
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
	enum {
		O_QUORUM = 256,
		O_DIR,
		O_PATCH,
		O_INCR,
		O_ROOT,
		O_EXPIRY,
		O_NOOPAM,
		O_NOSTRICT,
		O_NOW,
		O_STATE,
		O_NOSTATE,
		O_NOCOLOR,
		O_OVERLAY
	};
	static const struct option opts[] = {{"trust-anchors", required_argument, NULL, 't'},
	    {"quorum", required_argument, NULL, O_QUORUM}, {"dir", required_argument, NULL, O_DIR},
	    {"repository", required_argument, NULL, 'r'},
	    {"patch", required_argument, NULL, O_PATCH}, {"incremental", no_argument, NULL, O_INCR},
	    {"root", required_argument, NULL, O_ROOT},
	    {"expiry", required_argument, NULL, O_EXPIRY}, {"no-opam", no_argument, NULL, O_NOOPAM},
	    {"nostrict", no_argument, NULL, O_NOSTRICT},
	    {"ignore-missing", no_argument, NULL, O_NOSTRICT},
	    {"now", required_argument, NULL, O_NOW}, {"state", required_argument, NULL, O_STATE},
	    {"no-state", no_argument, NULL, O_NOSTATE}, {"no-color", no_argument, NULL, O_NOCOLOR},
	    {"overlay", required_argument, NULL, O_OVERLAY}, {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	char *anchors[MAX_ANCHORS];
	size_t nanchors = 0, patchlen = 0;
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
	char *statepath = NULL, *end;
	int found = 0;
	long long ll;
	const char *overlays[CX_CLI_MAX_OVERLAYS];
	size_t noverlays = 0;
	struct cx_overrides ovr;

	memset(&o, 0, sizeof(o));
	o.quorum = 1;
	o.root_name = "root";
	o.opam = 1;
	o.strict = 1;
	o.expiry = 900;
	o.now = (int64_t)time(NULL);
	o.log = &log;
	cx_overrides_init(&ovr);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "t:r:qvh", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (cx_cli_add_anchors(optarg, anchors, &nanchors) != 0)
				goto out_usage;
			break;
		case O_QUORUM:
			ll = strtoll(optarg, &end, 10);
			if (*optarg == 0 || *end != 0 || ll < 0 || ll > 1000) {
				fprintf(stderr,
				    "conex verify: --quorum: want a number from 0 to 1000\n");
				goto out_usage;
			}
			/* opam lets a user add a repository with quorum 0: at least one anyway */
			o.quorum = ll < 1 ? 1 : (int)ll;
			break;
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
		case O_ROOT:
			if (cx_path_check(optarg, strlen(optarg)) != 0 ||
			    strchr(optarg, '/') != NULL) {
				fprintf(stderr, "conex verify: --root: want a file name\n");
				goto out_usage;
			}
			o.root_name = optarg;
			break;
		case O_EXPIRY:
			ll = strtoll(optarg, &end, 10);
			if (*optarg == 0 || *end != 0 || ll < 0) {
				fprintf(stderr, "conex verify: --expiry: want seconds\n");
				goto out_usage;
			}
			o.expiry = ll;
			break;
		case O_NOOPAM:
			o.opam = 0;
			break;
		case O_NOSTRICT:
			o.strict = 0;
			break;
		case O_NOW:
			if (cx_time_parse(optarg, &o.now) != 0) {
				fprintf(stderr, "conex verify: --now: want YYYY-MM-DDThh:mm:ssZ\n");
				goto out_usage;
			}
			break;
		case O_STATE:
			statedir = optarg;
			break;
		case O_NOSTATE:
			nostate = 1;
			break;
		case O_NOCOLOR:
			break;
		case O_OVERLAY:
			if (noverlays == CX_CLI_MAX_OVERLAYS) {
				fprintf(stderr, "conex verify: too many --overlay\n");
				goto out_usage;
			}
			overlays[noverlays++] = optarg;
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
	if (nanchors == 0) {
		fprintf(stderr, "conex verify: no valid trust anchor given (-t sha256=...)\n");
		goto out_usage;
	}
	o.anchors = (const char *const *)anchors;
	o.nanchors = nanchors;
	if ((rc = cx_cli_overlays(&ovr, overlays, noverlays, "conex verify")) != CX_EXIT_OK)
		goto out;
	if (noverlays)
		o.overrides = &ovr;
	rc = CX_EXIT_ERROR;
	if (!nostate) {
		if ((r = cx_state_path(statedir, o.anchors, nanchors, &statepath, &e)) != 0 ||
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
	for (size_t i = 0; i < nanchors; i++)
		free(anchors[i]);
	return rc;
}
