/*
 * conex status / conex check: what a change (a pull request's diff) still
 * needs, per changed file (docs/tools.md).  The evaluation is conex/explain.c;
 * check's exit status is that of the real verification plus every file.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	enum { O_PATCH = CX_OPT_OWN, O_JSON };
	static const struct option opts[] = {CX_CLI_COMMON_LONGOPTS,
	    {"repository", required_argument, NULL, 'r'},
	    {"patch", required_argument, NULL, O_PATCH}, {"json", no_argument, NULL, O_JSON},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char *cmd = argv[0], *dir = ".", *patchfile = NULL;
	char name[32];
	struct cx_cli_common c;
	size_t patchlen = 0;
	int check = strcmp(cmd, "check") == 0, json = 0, ch, rc = CX_EXIT_ERROR, r;
	struct cx_verify_opts o;
	struct cx_overrides ovr;
	struct cx_explain x;
	struct cx_repo *repo = NULL;
	struct cx_patch *patch = NULL;
	struct cx_err e = {0};
	struct cx_buf out;
	uint8_t *patchdata = NULL;

	memset(&c, 0, sizeof(c));
	memset(&x, 0, sizeof(x));
	snprintf(name, sizeof(name), "conex %s", check ? "check" : "status");
	cx_cli_verify_defaults(&o);
	cx_overrides_init(&ovr);
	cx_buf_init(&out, 0);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "t:r:h", opts, NULL)) != -1) {
		if ((r = cx_cli_common_opt(ch, optarg, &c, &o, name)) < 0)
			goto out_usage;
		if (r > 0)
			continue;
		switch (ch) {
		case 'r':
			dir = optarg;
			break;
		case O_PATCH:
			patchfile = optarg;
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
	if (c.nanchors == 0) {
		fprintf(stderr, "conex %s: no valid trust anchor given (-t sha256=...)\n", cmd);
		goto out_usage;
	}
	o.anchors = (const char *const *)c.anchors;
	o.nanchors = c.nanchors;
	if ((rc = cx_cli_overlays(&ovr, c.overlays, c.noverlays, name)) != CX_EXIT_OK)
		goto out;
	if (c.noverlays)
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
	cx_cli_common_free(&c);
	return rc;
}
