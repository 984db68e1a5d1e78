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

int cx_cmd_verify(int argc, char **argv);
int cx_cmd_status(int argc, char **argv); /* conex status and conex check (argv[0]) */

/* Shared by verify and status/check (cmd_verify.c). */
#define CX_CLI_MAX_ANCHORS  256
#define CX_CLI_MAX_OVERLAYS 64
/* Adds the anchors of one comma-separated -t argument; 0, or -1 (too many, no memory). */
int cx_cli_add_anchors(const char *arg, char **anchors, size_t *n);
/* Reads a whole file (a patch), at most 1 GiB; malloc'd, NUL-terminated. */
uint8_t *cx_cli_slurp(const char *path, size_t *len, struct cx_err *e);
/* Loads every --overlay into ovr: an exit code, the message printed as "cmd: --overlay: ...". */
int cx_cli_overlays(struct cx_overrides *ovr, const char *const *dirs, size_t n, const char *cmd);
int cx_cmd_agent(int argc, char **argv);

#endif
