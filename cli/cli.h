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

int cx_cmd_verify(int argc, char **argv);
int cx_cmd_agent(int argc, char **argv);
/* The signing tools (docs/tools.md). */
int cx_cmd_key(int argc, char **argv);
int cx_cmd_root(int argc, char **argv);
int cx_cmd_targets(int argc, char **argv);
int cx_cmd_release(int argc, char **argv);
int cx_cmd_snapshot(int argc, char **argv);
int cx_cmd_timestamp(int argc, char **argv);

#endif
