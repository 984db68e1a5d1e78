/*
 * Asking the user through an askpass program, as ssh-agent does.
 *
 * The program is started with posix_spawnp (glibc: clone(CLONE_VM|CLONE_VFORK)
 * then exec), never fork(): fork would copy the whole agent, its keys and its
 * initialised PKCS#11 modules, some of which run atfork handlers or hold
 * threads and locks that a forked child inherits in an unknown state.  PATH is
 * searched, as OpenSSH's execlp does.
 *
 * The child gets argv {program, prompt}, stdin from /dev/null, stdout on a
 * pipe, stderr and the environment inherited (SSH_ASKPASS_PROMPT removed,
 * and set to "confirm" for a confirmation, as OpenSSH does), the default
 * signal mask and dispositions, and its own process group so that a timeout
 * kills whatever it started as well.  The answer is read into sodium_malloc'ed
 * memory; the agent must not reap children with waitpid(-1), or the exit
 * status is lost and the request refused.
 */
#include "agent/askpass.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

extern char **environ;

#define ANSWER_MAX 1024                     /* bytes, without the trailing newline */
#define BUF_SIZE   (ANSWER_MAX + 1 + 1 + 1) /* answer, '\n', one byte to see overflow, NUL */
#define PROMPT_ENV "SSH_ASKPASS_PROMPT="

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pipe must not sit on 0..2, where the child's own redirections land. */
static int
fd_above_stdio(int fd)
{
	int nfd;

	if (fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

static void
kill_and_reap(pid_t pid)
{
	/* the group first: a shell script's children hold the pipe open too */
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* The inherited environment without SSH_ASKPASS_PROMPT, plus extra if non-NULL. */
static char **
child_env(char *extra)
{
	size_t n = 0, j = 0;
	char **env;

	for (char **p = environ; p != NULL && *p != NULL; p++)
		n++;
	if ((env = calloc(n + 2, sizeof(*env))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], PROMPT_ENV, sizeof(PROMPT_ENV) - 1) != 0)
			env[j++] = environ[i];
	if (extra != NULL)
		env[j++] = extra;
	env[j] = NULL;
	return env;
}

static int
spawn(const char *program, const char *prompt, int confirm, pid_t *pid, int *rfd, struct cx_err *e)
{
	char confirm_env[] = PROMPT_ENV "confirm";
	char *argv[3] = {(char *)program, (char *)prompt, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t mask, def;
	char **env = NULL;
	int fds[2] = {-1, -1}, r, ret;

	*rfd = -1;
	if ((env = child_env(confirm ? confirm_env : NULL)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if (pipe2(fds, O_CLOEXEC) != 0) {
		free(env);
		return cx_err_set(e, CX_EIO, "pipe2: %s", strerror(errno));
	}
	if ((fds[0] = fd_above_stdio(fds[0])) < 0 || (fds[1] = fd_above_stdio(fds[1])) < 0) {
		ret = cx_err_set(e, CX_EIO, "fcntl: %s", strerror(errno));
		goto out;
	}
	if ((r = posix_spawn_file_actions_init(&fa)) != 0) {
		ret = cx_err_set(e, CX_ENOMEM, "posix_spawn_file_actions_init: %s", strerror(r));
		goto out;
	}
	if ((r = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		ret = cx_err_set(e, CX_ENOMEM, "posix_spawnattr_init: %s", strerror(r));
		goto out;
	}
	/* the agent may block or ignore signals (SIGPIPE, SIGCHLD); the child must not */
	sigemptyset(&mask);
	sigfillset(&def);
	sigdelset(&def, SIGKILL);
	sigdelset(&def, SIGSTOP);
	/* dup2 clears FD_CLOEXEC on the target; the pipe's own fds close at exec */
	if ((r = posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO)) != 0 ||
	    (r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0)) !=
	        0 ||
	    (r = posix_spawnattr_setsigmask(&attr, &mask)) != 0 ||
	    (r = posix_spawnattr_setsigdefault(&attr, &def)) != 0 ||
	    (r = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
	    (r = posix_spawnattr_setflags(&attr,
	         POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP)) != 0)
		ret = cx_err_set(e, CX_ENOMEM, "posix_spawn set-up: %s", strerror(r));
	else if ((r = posix_spawnp(pid, program, &fa, &attr, argv, env)) != 0)
		ret = cx_err_set(e, r == ENOENT ? CX_ENOENT : CX_EIO,
		    "cannot run askpass program %s: %s", program, strerror(r));
	else {
		*rfd = fds[0];
		fds[0] = -1;
		ret = 0;
	}
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
out:
	/* the write end must go, or EOF never comes */
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	free(env);
	return ret;
}

/*
 * Runs the program and collects its stdout into buf (BUF_SIZE bytes).
 * 0 with *status when it exited in time; CX_EREJECT on a timeout or an
 * overlong answer (the program is killed); other negatives on system errors.
 */
static int
run(const char *program, const char *prompt, int confirm, int timeout_s, char *buf, size_t *len,
    int *status, struct cx_err *e)
{
	int64_t deadline, left;
	struct pollfd pfd;
	pid_t pid, w;
	ssize_t n;
	int fd, r, ret = 0;

	*len = 0;
	if (program == NULL || *program == '\0')
		return cx_err_set(
		    e, CX_ENOENT, "no askpass program (set CONEX_ASKPASS or SSH_ASKPASS)");
	if (timeout_s <= 0 || timeout_s > 86400)
		return cx_err_set(e, CX_EINVAL, "askpass timeout %d is out of range", timeout_s);
	if ((r = spawn(program, prompt != NULL ? prompt : "", confirm, &pid, &fd, e)) != 0)
		return r;
	deadline = now_ms() + (int64_t)timeout_s * 1000;

	for (;;) {
		if ((left = deadline - now_ms()) <= 0)
			goto timeout;
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if ((r = poll(&pfd, 1, left > INT32_MAX ? INT32_MAX : (int)left)) < 0) {
			if (errno == EINTR)
				continue;
			ret = cx_err_set(e, CX_EIO, "askpass: poll: %s", strerror(errno));
			goto kill;
		}
		if (r == 0)
			continue;
		if ((n = read(fd, buf + *len, BUF_SIZE - 1 - *len)) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			ret = cx_err_set(e, CX_EIO, "askpass: read: %s", strerror(errno));
			goto kill;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
		if (*len > ANSWER_MAX + 1) {
			ret = cx_err_set(
			    e, CX_EREJECT, "askpass answer longer than %d bytes", ANSWER_MAX);
			goto kill;
		}
	}
	buf[*len] = '\0';
	close(fd);
	fd = -1;

	/* stdout closed; the program may still linger before exiting */
	for (;;) {
		if ((w = waitpid(pid, status, WNOHANG)) == pid)
			return 0;
		if (w < 0 && errno == ECHILD)
			/* reaped elsewhere: pid may be reused, so nothing to kill */
			return cx_err_set(e, CX_EIO,
			    "askpass: exit status lost (the child "
			    "was reaped elsewhere)");
		if (w < 0 && errno != EINTR) {
			ret = cx_err_set(e, CX_EIO, "askpass: waitpid: %s", strerror(errno));
			goto kill;
		}
		if (deadline - now_ms() <= 0)
			goto timeout;
		nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000}, NULL);
	}

timeout:
	ret = cx_err_set(e, CX_EREJECT, "askpass did not answer within %d seconds", timeout_s);
kill:
	if (fd >= 0)
		close(fd);
	kill_and_reap(pid);
	sodium_memzero(buf, BUF_SIZE);
	*len = 0;
	return ret;
}

int
cx_askpass_secret_t(const char *program, const char *prompt, int timeout_s, char **secret,
    size_t *len, struct cx_err *e)
{
	char *buf;
	size_t n;
	int r, status;

	*secret = NULL;
	*len = 0;
	/* sodium_malloc needs sodium_init's page size; idempotent */
	if (sodium_init() < 0)
		return cx_err_set(e, CX_ECRYPTO, "libsodium initialisation failed");
	if ((buf = sodium_malloc(BUF_SIZE)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "cannot allocate guarded memory");
	if ((r = run(program, prompt, 0, timeout_s, buf, &n, &status, e)) != 0)
		goto fail;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		r = cx_err_set(e, CX_EREJECT, "askpass cancelled (%s %d)",
		    WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		goto fail;
	}
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > ANSWER_MAX) {
		r = cx_err_set(e, CX_EREJECT, "askpass answer longer than %d bytes", ANSWER_MAX);
		goto fail;
	}
	/* a PIN is passed on with its length, but C strings would cut it short */
	if (memchr(buf, '\0', n) != NULL) {
		r = cx_err_set(e, CX_EREJECT, "askpass answer contains a NUL byte");
		goto fail;
	}
	*secret = buf;
	*len = n;
	return 0;
fail:
	sodium_free(buf); /* zeroes */
	return r;
}

int
cx_askpass_secret(
    const char *program, const char *prompt, char **secret, size_t *len, struct cx_err *e)
{
	return cx_askpass_secret_t(program, prompt, CX_ASKPASS_TIMEOUT, secret, len, e);
}

int
cx_askpass_confirm_t(const char *program, const char *prompt, int timeout_s, struct cx_err *e)
{
	char buf[BUF_SIZE];
	size_t n;
	int r, status;

	if ((r = run(program, prompt, 1, timeout_s, buf, &n, &status, e)) != 0)
		return r == CX_EREJECT ? 0 : r; /* timeout or garbage: refuse */
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		cx_err_set(e, CX_EREJECT, "confirmation refused");
		return 0;
	}
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	/* as OpenSSH's ask_permission: an empty answer or "yes" is a yes */
	if (n == 0 || (n == 3 && strncasecmp(buf, "yes", 3) == 0))
		return 1;
	cx_err_set(e, CX_EREJECT, "confirmation refused (answer was not empty or \"yes\")");
	return 0;
}

int
cx_askpass_confirm(const char *program, const char *prompt, struct cx_err *e)
{
	return cx_askpass_confirm_t(program, prompt, CX_ASKPASS_TIMEOUT, e);
}
