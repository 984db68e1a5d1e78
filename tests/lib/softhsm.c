/* SoftHSM2 tokens in a test's own directory. */
#include "tests/lib/softhsm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

const char *
cx_softhsm_module(void)
{
	const char *m = getenv("CX_SOFTHSM_MODULE");

	return m != NULL && *m != '\0' ? m : CX_SOFTHSM_MODULE;
}

int
cx_softhsm_available(void)
{
	char *argv[] = {"softhsm2-util", "--version", NULL};

	return access(cx_softhsm_module(), R_OK) == 0 && cx_softhsm_run(argv) == 0;
}

int
cx_softhsm_run(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, r;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	/* $CX_SOFTHSM_VERBOSE shows the tools' output when a test needs debugging */
	if (getenv("CX_SOFTHSM_VERBOSE") == NULL &&
	    (posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) != 0 ||
	        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0) != 0)) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int
cx_softhsm_setup(const char *dir)
{
	char conf[PATH_MAX], tokens[PATH_MAX];
	FILE *f;
	int ok;

	if (snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir) >= (int)sizeof(conf) ||
	    snprintf(tokens, sizeof(tokens), "%s/tokens", dir) >= (int)sizeof(tokens))
		return -1;
	if (mkdir(tokens, 0700) != 0 && errno != EEXIST)
		return -1;
	if ((f = fopen(conf, "w")) == NULL)
		return -1;
	/* file backend: no sqlite; removable off so slots stay put */
	ok = fprintf(f,
	         "directories.tokendir = %s\n"
	         "objectstore.backend = file\n"
	         "log.level = ERROR\n"
	         "slots.removable = false\n",
	         tokens) > 0;
	if (fclose(f) != 0 || !ok)
		return -1;
	return setenv("SOFTHSM2_CONF", conf, 1) == 0 ? 0 : -1;
}

int
cx_softhsm_init_token(const char *label, const char *pin)
{
	char *argv[] = {"softhsm2-util", "--init-token", "--free", "--label", (char *)label,
	    "--so-pin", CX_SOFTHSM_SO_PIN, "--pin", (char *)pin, NULL};

	return cx_softhsm_run(argv) == 0 ? 0 : -1;
}

int
cx_softhsm_import(
    const char *token, const char *pin, const char *pem, const char *label, const char *idhex)
{
	char *argv[] = {"softhsm2-util", "--import", (char *)pem, "--token", (char *)token,
	    "--label", (char *)label, "--id", (char *)idhex, "--pin", (char *)pin, NULL};

	return cx_softhsm_run(argv) == 0 ? 0 : -1;
}
