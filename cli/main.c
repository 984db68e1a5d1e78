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
	    "  agent     talk to conex-agent: list, login, generate, add-key, lock, audit, ...\n"
	    "\nsigning tools (every signature through conex-agent):\n"
	    "  key       keys on tokens: generate, import, show, list\n"
	    "  root      the root: create, add-key, remove-key, set-role, add-to-role,\n"
	    "            remove-from-role, sign, show\n"
	    "  targets   identities: create, compute, delegate, undelegate, add-key,\n"
	    "            remove-key, rotate, sign, hash, show\n"
	    "  release   ID NAME: compute a package's targets, sign, snapshot, timestamp\n"
	    "  snapshot  list and sign the keydir files\n"
	    "  timestamp list and sign the snapshot\n\n"
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
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} tools[] = {{"key", cx_cmd_key}, {"root", cx_cmd_root}, {"targets", cx_cmd_targets},
	    {"release", cx_cmd_release}, {"snapshot", cx_cmd_snapshot},
	    {"timestamp", cx_cmd_timestamp}};
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
		if (strcmp(argv[1], tools[i].name) == 0)
			return tools[i].fn(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return CX_EXIT_OK;
	}
	fprintf(stderr, "conex: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return CX_EXIT_USAGE;
}
