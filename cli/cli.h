/* Subcommands of `conex`. Each returns the process exit code. */
#ifndef CX_CLI_H
#define CX_CLI_H

/* Exit codes of every subcommand (docs/verify.md). */
enum {
	CX_EXIT_OK = 0,
	CX_EXIT_REJECT = 1, /* verification rejected the repository */
	CX_EXIT_USAGE = 2,  /* bad arguments */
	CX_EXIT_ERROR = 3   /* I/O or internal failure */
};

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"

struct cx_overrides;
struct cx_verify_opts;

int cx_cmd_verify(int argc, char **argv);
int cx_cmd_agent(int argc, char **argv);
int cx_cmd_status(int argc, char **argv); /* conex status and conex check (argv[0]) */

/* Shared by verify and status/check (cmd_verify.c). */
#define CX_CLI_MAX_ANCHORS  256
#define CX_CLI_MAX_OVERLAYS 64

/* getopt codes of the options verify, status and check share; a command's own start at CX_OPT_OWN. */
enum {
	CX_OPT_QUORUM = 256,
	CX_OPT_ROOT,
	CX_OPT_EXPIRY,
	CX_OPT_NOW,
	CX_OPT_NOOPAM,
	CX_OPT_OVERLAY,
	CX_OPT_OWN
};
/* clang-format off */
#define CX_CLI_COMMON_LONGOPTS \
	{"trust-anchors", required_argument, NULL, 't'}, \
	{"quorum", required_argument, NULL, CX_OPT_QUORUM}, \
	{"root", required_argument, NULL, CX_OPT_ROOT}, \
	{"expiry", required_argument, NULL, CX_OPT_EXPIRY}, \
	{"now", required_argument, NULL, CX_OPT_NOW}, \
	{"no-opam", no_argument, NULL, CX_OPT_NOOPAM}, \
	{"overlay", required_argument, NULL, CX_OPT_OVERLAY}
/* clang-format on */

struct cx_cli_common {
	char *anchors[CX_CLI_MAX_ANCHORS];
	size_t nanchors;
	const char *overlays[CX_CLI_MAX_OVERLAYS];
	size_t noverlays;
};

/* conex verify's defaults: quorum 1, root "root", opam and strict on, expiry 900, now. */
void cx_cli_verify_defaults(struct cx_verify_opts *o);
/*
 * One of the shared options (ch from getopt_long, arg its argument): 1 when
 * handled, 0 when ch is not one of them, -1 for a bad value (message printed
 * as "cmd: ...").
 */
int cx_cli_common_opt(
    int ch, const char *arg, struct cx_cli_common *c, struct cx_verify_opts *o, const char *cmd);
/* Frees the anchors. */
void cx_cli_common_free(struct cx_cli_common *c);
/* Adds the anchors of one comma-separated -t argument; 0, or -1 (too many, no memory). */
int cx_cli_add_anchors(const char *arg, char **anchors, size_t *n);
/* Reads a whole file (a patch), at most 1 GiB; malloc'd, NUL-terminated. */
uint8_t *cx_cli_slurp(const char *path, size_t *len, struct cx_err *e);
/* Loads every --overlay into ovr: an exit code, the message printed as "cmd: --overlay: ...". */
int cx_cli_overlays(struct cx_overrides *ovr, const char *const *dirs, size_t n, const char *cmd);

/* The signing tools (docs/tools.md). */
int cx_cmd_key(int argc, char **argv);
int cx_cmd_root(int argc, char **argv);
int cx_cmd_targets(int argc, char **argv);
int cx_cmd_release(int argc, char **argv);
int cx_cmd_snapshot(int argc, char **argv);
int cx_cmd_timestamp(int argc, char **argv);

#endif
