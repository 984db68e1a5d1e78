/* conex: the command-line front end. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: conex <command> [options]\n\n"
	    "commands:\n"
	    "  verify    verify a conex-signed repository (opam's repository-validation-command)\n"
	    "  status    per changed file: who signed, which quorum governs it, who can complete it\n"
	    "  check     like status; exits 1 unless every changed file verifies (CI on pull requests)\n"
	    "  agent     talk to conex-agent: list, login, generate, add-key, lock, audit, ...\n\n"
	    "Run `conex <command> --help` for the options of a command.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CX_EXIT_USAGE;
	}
	if (strcmp(argv[1], "verify") == 0)
		return cx_cmd_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0 || strcmp(argv[1], "check") == 0)
		return cx_cmd_status(argc - 1, argv + 1);
	if (strcmp(argv[1], "agent") == 0)
		return cx_cmd_agent(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return CX_EXIT_OK;
	}
	fprintf(stderr, "conex: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return CX_EXIT_USAGE;
}
