/*
 * conex status / conex check: what a change (a pull request's diff) still
 * needs, per changed file (docs/tools.md).  The evaluation is conex/explain.c;
 * check's exit status is that of the real verification plus every file.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "conex/explain.h"
#include "conex/overrides.h"
#include "conex/patch.h"
#include "conex/repo.h"
#include "conex/verify.h"

static void
status_usage(FILE *f, const char *cmd)
{
	fprintf(f,
	    "usage: conex %s -t ANCHORS [--quorum N] [-r DIR] [--patch FILE] [--now T]\n"
	    "       [--root NAME] [--no-opam] [--overlay DIR]... [--json]\n\n"
	    "  -t, --trust-anchors A  root key ids (sha256=HEX), repeatable, comma-separated\n"
	    "      --quorum N         anchored root signatures required (default 1)\n"
	    "  -r, --repository DIR   the base tree (directory or .tar.gz; default .)\n"
	    "      --patch FILE       the change, a unified diff (-p1) applied to DIR;\n"
	    "                         without it every file of DIR is reported\n"
	    "      --now RFC3339      evaluate as of this time instead of the clock\n"
	    "      --expiry SECONDS   how long a timestamp stays fresh (default 900)\n"
	    "      --root NAME        root file name (default root)\n"
	    "      --no-opam          do not require opam package paths in targets\n"
	    "      --overlay DIR      local trust overrides (docs/trust-overrides.md)\n"
	    "      --json             print a JSON document instead of text\n\n"
	    "exit status: %s, 2 usage error, 3 I/O or internal error\n",
	    cmd,
	    strcmp(cmd, "check") == 0
	        ? "0 every changed file verifies and conex verify accepts, 1 otherwise"
	        : "0 evaluated (even if signatures are missing), 1 could not evaluate");
}

int
cx_cmd_status(int argc, char **argv)
{
	enum { O_QUORUM = 256, O_PATCH, O_ROOT, O_EXPIRY, O_NOOPAM, O_NOW, O_OVERLAY, O_JSON };
	static const struct option opts[] = {{"trust-anchors", required_argument, NULL, 't'},
	    {"quorum", required_argument, NULL, O_QUORUM},
	    {"repository", required_argument, NULL, 'r'},
	    {"patch", required_argument, NULL, O_PATCH}, {"root", required_argument, NULL, O_ROOT},
	    {"expiry", required_argument, NULL, O_EXPIRY}, {"no-opam", no_argument, NULL, O_NOOPAM},
	    {"now", required_argument, NULL, O_NOW},
	    {"overlay", required_argument, NULL, O_OVERLAY}, {"json", no_argument, NULL, O_JSON},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *cmd = argv[0], *dir = ".", *patchfile = NULL;
	const char *overlays[CX_CLI_MAX_OVERLAYS];
	char *anchors[CX_CLI_MAX_ANCHORS], *end;
	size_t nanchors = 0, noverlays = 0, patchlen = 0;
	int check = strcmp(cmd, "check") == 0, json = 0, ch, rc = CX_EXIT_ERROR, r;
	struct cx_verify_opts o;
	struct cx_overrides ovr;
	struct cx_explain x;
	struct cx_repo *repo = NULL;
	struct cx_patch *patch = NULL;
	struct cx_err e = {0};
	struct cx_buf out;
	uint8_t *patchdata = NULL;
	long long ll;

	memset(&o, 0, sizeof(o));
	memset(&x, 0, sizeof(x));
	o.quorum = 1;
	o.root_name = "root";
	o.opam = 1;
	o.strict = 1;
	o.expiry = 900;
	o.now = (int64_t)time(NULL);
	cx_overrides_init(&ovr);
	cx_buf_init(&out, 0);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "t:r:h", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (cx_cli_add_anchors(optarg, anchors, &nanchors) != 0)
				goto out_usage;
			break;
		case O_QUORUM:
			ll = strtoll(optarg, &end, 10);
			if (*optarg == 0 || *end != 0 || ll < 0 || ll > 1000) {
				fprintf(stderr,
				    "conex %s: --quorum: want a number from 0 to 1000\n", cmd);
				goto out_usage;
			}
			o.quorum = ll < 1 ? 1 : (int)ll;
			break;
		case 'r':
			dir = optarg;
			break;
		case O_PATCH:
			patchfile = optarg;
			break;
		case O_ROOT:
			if (cx_path_check(optarg, strlen(optarg)) != 0 ||
			    strchr(optarg, '/') != NULL) {
				fprintf(stderr, "conex %s: --root: want a file name\n", cmd);
				goto out_usage;
			}
			o.root_name = optarg;
			break;
		case O_EXPIRY:
			ll = strtoll(optarg, &end, 10);
			if (*optarg == 0 || *end != 0 || ll < 0) {
				fprintf(stderr, "conex %s: --expiry: want seconds\n", cmd);
				goto out_usage;
			}
			o.expiry = ll;
			break;
		case O_NOOPAM:
			o.opam = 0;
			break;
		case O_NOW:
			if (cx_time_parse(optarg, &o.now) != 0) {
				fprintf(
				    stderr, "conex %s: --now: want YYYY-MM-DDThh:mm:ssZ\n", cmd);
				goto out_usage;
			}
			break;
		case O_OVERLAY:
			if (noverlays == CX_CLI_MAX_OVERLAYS) {
				fprintf(stderr, "conex %s: too many --overlay\n", cmd);
				goto out_usage;
			}
			overlays[noverlays++] = optarg;
			break;
		case O_JSON:
			json = 1;
			break;
		case 'h':
			status_usage(stdout, cmd);
			rc = CX_EXIT_OK;
			goto out;
		default:
			goto out_usage;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "conex %s: unexpected argument '%s'\n", cmd, argv[optind]);
		goto out_usage;
	}
	if (nanchors == 0) {
		fprintf(stderr, "conex %s: no valid trust anchor given (-t sha256=...)\n", cmd);
		goto out_usage;
	}
	o.anchors = (const char *const *)anchors;
	o.nanchors = nanchors;
	if ((rc = cx_cli_overlays(
	         &ovr, overlays, noverlays, check ? "conex check" : "conex status")) != CX_EXIT_OK)
		goto out;
	if (noverlays)
		o.overrides = &ovr;
	if ((r = cx_repo_open(&repo, dir, &e)) != 0) {
		fprintf(stderr, "conex %s: %s\n", cmd, e.msg);
		rc = r == CX_ENOENT ? CX_EXIT_USAGE : CX_EXIT_ERROR;
		goto out;
	}
	if (patchfile != NULL) {
		if ((patchdata = cx_cli_slurp(patchfile, &patchlen, &e)) == NULL ||
		    cx_patch_parse(patchdata, patchlen, patchfile, &patch, &e) != 0) {
			fprintf(stderr, "conex %s: %s\n", cmd, e.msg);
			rc = CX_EXIT_USAGE;
			goto out;
		}
	}
	if ((r = cx_explain_run(repo, patch, &o, &x, &e)) != 0) {
		fprintf(stderr, "conex %s: error: %s\n", cmd, e.msg);
		rc = CX_EXIT_ERROR;
		goto out;
	}
	r = json ? cx_explain_json(&x, &out) : cx_explain_text(&x, &out);
	if (r != 0 || fwrite(out.d, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
		fprintf(stderr, "conex %s: cannot write the report\n", cmd);
		rc = CX_EXIT_ERROR;
		goto out;
	}
	if (check)
		rc = x.ok ? CX_EXIT_OK : CX_EXIT_REJECT;
	else
		rc = x.evaluated ? CX_EXIT_OK : CX_EXIT_REJECT;
	goto out;
out_usage:
	status_usage(stderr, cmd);
	rc = CX_EXIT_USAGE;
out:
	cx_explain_free(&x);
	cx_buf_free(&out);
	cx_overrides_free(&ovr);
	if (patch != NULL)
		cx_patch_free(patch);
	free(patchdata);
	if (repo != NULL)
		cx_repo_close(repo);
	for (size_t i = 0; i < nanchors; i++)
		free(anchors[i]);
	return rc;
}
