/*
 * conex-agent: holds conex signing keys, on PKCS#11 tokens or in guarded
 * memory, behind a Unix socket, and signs conex data for its own user under
 * a per-key policy.  See docs/agent.md.
 *
 * Start-up order matters:
 *   1. harden: not dumpable (no ptrace attach, no core), RLIMIT_CORE 0,
 *      umask 077, RLIMIT_NOFILE raised;
 *   2. options, policy file, audit log, listening socket: errors here go to
 *      the terminal;
 *   3. daemonise (fork, setsid) BEFORE any PKCS#11 module is loaded: a
 *      module's threads and locks do not survive fork(), and nothing forks
 *      after C_Initialize (askpass uses posix_spawn);
 *   4. in the daemon: libsodium, OpenSSL's secure heap (mlock does not
 *      survive fork either), signals on a signalfd, workers, -m modules;
 *      then the parent is told "ready" and prints the environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sodium.h>

#include "agent/agent.h"

#define SECURE_HEAP (256u * 1024u) /* OpenSSL's mlock'ed heap for RSA software keys */

/* Modules allowed without -P: the usual smart-card and HSM modules of Debian. */
static const char *const default_allow[] = {
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
    "/usr/lib/x86_64-linux-gnu/libykcs11.so",
    "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/libykcs11.so",
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
};

int64_t
cx_agent_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

void
cx_agent_log(struct agent *a, int prio, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	if (prio == LOG_DEBUG && !a->debug)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (a->log_stderr)
		fprintf(stderr, "conex-agent: %s\n", msg);
	else
		syslog(prio, "%s", msg);
}

static void __attribute__((noreturn)) usage(int status)
{
	fprintf(status == 0 ? stdout : stderr,
	    "usage: conex-agent [-dfk] [-a socket] [-P module,...] [-m module]... [-c policy]\n"
	    "                   [--audit file] [--askpass program] [--pin-cache idle,max]\n"
	    "                   [--allow-root]\n"
	    "  -a PATH        listen on PATH (default $XDG_RUNTIME_DIR/conex-agent/agent.sock)\n"
	    "  -f             stay in the foreground\n"
	    "  -d             debug: foreground, verbose log on stderr\n"
	    "  -k             kill the agent of $CONEX_AGENT_PID\n"
	    "  -P LIST        PKCS#11 modules that may be loaded (comma-separated paths)\n"
	    "  -m MODULE      load MODULE and attach all its tokens at start (repeatable)\n"
	    "  -c FILE        per-key policy file\n"
	    "  --audit FILE   audit log (default $XDG_STATE_HOME/conex/audit.log)\n"
	    "  --askpass PROG program asking for PINs and confirmations ($CONEX_ASKPASS,\n"
	    "                 else $SSH_ASKPASS)\n"
	    "  --pin-cache IDLE,MAX  keep token PINs IDLE seconds unused, MAX at most (0: off)\n"
	    "  --allow-root   let root talk to this agent too\n"
	    "  --no-token-helpers  load PKCS#11 modules in this process (default: in\n"
	    "                 helper processes, one per module and one per token)\n");
	exit(status);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "conex-agent: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static void
harden(void)
{
	struct rlimit rl;

	/*
	 * Not dumpable: same-uid processes cannot ptrace-attach or read
	 * /proc/<pid>/mem, and no core file is written.  Kept across fork.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		die("prctl(PR_SET_DUMPABLE): %s", strerror(errno));
	rl.rlim_cur = rl.rlim_max = 0;
	if (setrlimit(RLIMIT_CORE, &rl) != 0)
		die("setrlimit(RLIMIT_CORE): %s", strerror(errno));
	umask(077);
	/* one fd per connection: as many as we are allowed */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static char **
split_list(const char *s, size_t *n)
{
	char **v = NULL, **nv, *copy, *p, *save = NULL;

	*n = 0;
	if ((copy = strdup(s)) == NULL)
		die("out of memory");
	for (p = strtok_r(copy, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
		if ((nv = reallocarray(v, *n + 1, sizeof(*v))) == NULL ||
		    (nv[*n] = strdup(p)) == NULL)
			die("out of memory");
		v = nv;
		(*n)++;
	}
	free(copy);
	return v;
}

static void
add_str(char ***v, size_t *n, const char *s)
{
	char **nv;

	if ((nv = reallocarray(*v, *n + 1, sizeof(**v))) == NULL || (nv[*n] = strdup(s)) == NULL)
		die("out of memory");
	*v = nv;
	(*n)++;
}

static void
free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
parse_pin_cache(struct agent *a, const char *s)
{
	unsigned long idle, max;
	char *end;

	errno = 0;
	idle = strtoul(s, &end, 10);
	if (*end == ',')
		max = strtoul(end + 1, &end, 10);
	else
		max = idle;
	if (errno != 0 || *end != '\0' || idle > 86400 * 365 || max > 86400 * 365 ||
	    (idle == 0) != (max == 0))
		die("--pin-cache: want IDLE,MAX seconds (both > 0), or 0 to disable, not \"%s\"",
		    s);
	a->pin_idle = (unsigned)idle;
	a->pin_max = (unsigned)max;
}

/* mkdir -p for the audit log's default directory (0700 by umask). */
static void
mkdirs(const char *path)
{
	char buf[PATH_MAX], *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return;
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(buf, 0700);
		*p = '/';
	}
}

static char *
default_audit_path(void)
{
	const char *st = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char buf[PATH_MAX];

	if (st != NULL && *st == '/')
		snprintf(buf, sizeof(buf), "%s/conex/audit.log", st);
	else if (home != NULL && *home == '/')
		snprintf(buf, sizeof(buf), "%s/.local/state/conex/audit.log", home);
	else
		die("no $XDG_STATE_HOME or $HOME for the audit log: use --audit FILE");
	mkdirs(buf);
	return strdup(buf);
}

/*
 * The directory the socket lives in.  Ours (default): exactly ours and
 * private.  Given with -a: owned by us or root, and if others may write
 * to it (/tmp) it must be sticky, so nobody can swap our socket.
 */
static void
check_dir(const char *dir, int strict)
{
	struct stat st;

	if (lstat(dir, &st) != 0) {
		if (errno != ENOENT || mkdir(dir, 0700) != 0 || lstat(dir, &st) != 0)
			die("socket directory %s: %s", dir, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		die("socket directory %s is not a directory", dir);
	if (strict) {
		if (st.st_uid != getuid())
			die("socket directory %s belongs to uid %lu, not to us", dir,
			    (unsigned long)st.st_uid);
		if (st.st_mode & 077)
			die("socket directory %s is accessible to others (mode %03o): want 0700",
			    dir, (unsigned)(st.st_mode & 0777));
	} else {
		if (st.st_uid != getuid() && st.st_uid != 0)
			die("socket directory %s belongs to uid %lu", dir,
			    (unsigned long)st.st_uid);
		if ((st.st_mode & 022) && !(st.st_mode & S_ISVTX))
			die("socket directory %s is writable by others and not sticky", dir);
	}
}

static char *
default_sock_path(int *made_tmp)
{
	const char *rt = getenv("XDG_RUNTIME_DIR");
	char buf[PATH_MAX], tmpl[] = "/tmp/conex-agent-XXXXXX";

	*made_tmp = 0;
	if (rt != NULL && *rt == '/') {
		snprintf(buf, sizeof(buf), "%s/conex-agent", rt);
		check_dir(buf, 1);
		strncat(buf, "/agent.sock", sizeof(buf) - strlen(buf) - 1);
		return strdup(buf);
	}
	/* as ssh-agent: a fresh private directory in /tmp */
	if (mkdtemp(tmpl) == NULL)
		die("mkdtemp %s: %s", tmpl, strerror(errno));
	*made_tmp = 1;
	snprintf(buf, sizeof(buf), "%s/agent.sock", tmpl);
	return strdup(buf);
}

static int
listen_path(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, t;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die("socket path too long: %s", path);
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		die("socket: %s", strerror(errno));
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			die("%s exists and is not a socket", path);
		/* a live agent answers; a stale socket refuses */
		if ((t = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0) {
			if (connect(t, (struct sockaddr *)&sun, sizeof(sun)) == 0)
				die("an agent is already listening on %s", path);
			close(t);
		}
		if (unlink(path) != 0)
			die("unlink %s: %s", path, strerror(errno));
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		die("bind %s: %s", path, strerror(errno));
	if (chmod(path, 0600) != 0) {
		unlink(path);
		die("chmod %s: %s", path, strerror(errno));
	}
	if (listen(fd, SOMAXCONN) != 0) {
		unlink(path);
		die("listen %s: %s", path, strerror(errno));
	}
	return fd;
}

/* systemd socket activation: LISTEN_PID is us and one fd, 3, a listening Unix stream socket. */
static int
activated_socket(struct agent *a)
{
	const char *lp = getenv("LISTEN_PID"), *lf = getenv("LISTEN_FDS");
	struct sockaddr_un sun;
	socklen_t len = sizeof(int);
	int v, fl;

	if (lp == NULL || lf == NULL || strtol(lp, NULL, 10) != (long)getpid())
		return -1;
	if (strcmp(lf, "1") != 0)
		die("LISTEN_FDS=%s: want exactly one socket", lf);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (getsockopt(3, SOL_SOCKET, SO_DOMAIN, &v, &len) != 0 || v != AF_UNIX ||
	    getsockopt(3, SOL_SOCKET, SO_TYPE, &v, &len) != 0 || v != SOCK_STREAM ||
	    getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || v != 1)
		die("fd 3 from systemd is not a listening Unix stream socket");
	if ((fl = fcntl(3, F_GETFL)) < 0 || fcntl(3, F_SETFL, fl | O_NONBLOCK) != 0 ||
	    fcntl(3, F_SETFD, FD_CLOEXEC) != 0)
		die("fcntl on fd 3: %s", strerror(errno));
	len = sizeof(sun);
	memset(&sun, 0, sizeof(sun));
	if (getsockname(3, (struct sockaddr *)&sun, &len) == 0 && sun.sun_path[0] != '\0')
		a->sockpath = strdup(sun.sun_path);
	a->activated = 1;
	return 3;
}

/* The value as sh reads it back: quoted only when it has to be. */
static void
print_env(const char *sock, long pid)
{
	const char *p;
	int plain = 1;

	for (p = sock; *p != '\0'; p++)
		if (strchr(
		        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/.,:+-=@%",
		        *p) == NULL)
			plain = 0;
	if (plain)
		printf("CONEX_AGENT_SOCK=%s; export CONEX_AGENT_SOCK;\n", sock);
	else {
		printf("CONEX_AGENT_SOCK='");
		for (p = sock; *p != '\0'; p++) {
			if (*p == '\'')
				printf("'\\''");
			else
				putchar(*p);
		}
		printf("'; export CONEX_AGENT_SOCK;\n");
	}
	printf("CONEX_AGENT_PID=%ld; export CONEX_AGENT_PID;\n", pid);
	printf("echo Agent pid %ld;\n", pid);
	fflush(stdout);
}

static void __attribute__((noreturn)) kill_agent(void)
{
	const char *s = getenv("CONEX_AGENT_PID");
	char *end;
	long pid;

	if (s == NULL)
		die("CONEX_AGENT_PID is not set, cannot kill the agent");
	pid = strtol(s, &end, 10);
	if (*end != '\0' || pid < 1)
		die("CONEX_AGENT_PID=\"%s\" is not a pid", s);
	if (kill((pid_t)pid, SIGTERM) != 0)
		die("kill %ld: %s", pid, strerror(errno));
	printf(
	    "unset CONEX_AGENT_SOCK;\nunset CONEX_AGENT_PID;\necho Agent pid %ld killed;\n", pid);
	exit(0);
}

/* Everything that needs the daemon's own process: after the fork. */
static int
init_daemon(struct agent *a, struct cx_err *e)
{
	sigset_t set;
	int r;

	if (sodium_init() < 0)
		return cx_err_set(e, CX_ECRYPTO, "libsodium initialisation failed");
	/* 2: made, but not mlock'ed (RLIMIT_MEMLOCK): still kept out of core dumps */
	if (CRYPTO_secure_malloc_init(SECURE_HEAP, 32) == 0)
		cx_agent_log(a, LOG_WARNING, "OpenSSL secure heap unavailable");
	/*
	 * Blocked in every thread (workers inherit the mask), read from a
	 * signalfd by the loop.  askpass children get the default mask back.
	 */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
	    (a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return cx_err_set(e, CX_EIO, "signalfd: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	if ((a->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return cx_err_set(e, CX_EIO, "eventfd: %s", strerror(errno));
	/* decoder buffers, once: strings (scratch), secrets (guarded, wiped after each request) */
	cx_buf_init(&a->scratch, AGENT_SCRATCH_MAX);
	if (cx_buf_reserve(&a->scratch, CX_PROTO_MAX + 4096, NULL) != 0)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	cx_buf_reset(&a->scratch);
	if ((a->secret = sodium_malloc(CX_PROTO_MAX)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "cannot allocate guarded memory");
	sodium_memzero(a->secret, CX_PROTO_MAX);
	if (cx_pincache_new(a->pin_idle, a->pin_max, &a->pins) != 0)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	pthread_mutex_init(&a->done_mu, NULL);
	atomic_init(&a->running, 0);
	/* after the fork and with the signals blocked, like every other thread */
	if ((r = cx_audit_start(a->audit, e)) != 0)
		return r;
	a->spin = sysconf(_SC_NPROCESSORS_ONLN) > 1;
	if (cx_worker_start(a, &a->soft, "soft", NULL, cx_reg_soft_run) != 0 ||
	    cx_worker_start(a, &a->pw, "lock", NULL, cx_policy_run) != 0)
		return cx_err_set(e, CX_EIO, "cannot start workers");
	if ((r = cx_tokens_start(a, e)) != 0)
		return r;
	return 0;
}

static void
shutdown_agent(struct agent *a, int made_tmp)
{
	char *slash;

	if (a->lfd >= 0)
		close(a->lfd);
	if (!a->activated && a->sockpath != NULL) {
		unlink(a->sockpath);
		if (made_tmp && (slash = strrchr(a->sockpath, '/')) != NULL) {
			*slash = '\0';
			rmdir(a->sockpath);
		}
	}
	/* in-flight jobs are cancelled: workers skip their confirmations and signatures */
	cx_conn_cancel_all(a);
	/* the loop's own signatures first: jobs for their workers wait on them */
	cx_fast_shutdown(a);
	cx_worker_stop(&a->soft, AGENT_STOP_WAIT_S);
	cx_worker_stop(&a->pw, AGENT_STOP_WAIT_S);
	cx_tokens_shutdown(a);
	/* only now: a worker may have been writing an answer to one of these fds */
	cx_conn_close_all(a);
	cx_loop_discard(a);
	cx_reg_free(a);
	cx_pincache_free(a->pins);
	if (a->secret != NULL)
		sodium_free(a->secret);
	cx_buf_free(&a->scratch);
	sodium_memzero(&a->lock, sizeof(a->lock));
	/* a detached worker may still come back and append: it finds no log */
	pthread_rwlock_wrlock(&a->audit_lock);
	cx_audit_close(a->audit);
	a->audit = NULL;
	pthread_rwlock_unlock(&a->audit_lock);
	cx_policy_free(a);
	if (a->evfd >= 0)
		close(a->evfd);
	if (a->sigfd >= 0)
		close(a->sigfd);
	CRYPTO_secure_malloc_done();
	cx_agent_log(a, LOG_INFO, "stopped");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"audit", required_argument, NULL, 'A'},
	    {"askpass", required_argument, NULL, 'S'},
	    {"pin-cache", required_argument, NULL, 'C'},
	    {"allow-root", no_argument, NULL, 'R'},
	    {"no-token-helpers", no_argument, NULL, 'H'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct agent a;
	struct cx_err e = {0};
	char *sockopt = NULL, *policy = NULL, buf[CX_ERR_MSG + 8], cwd[PATH_MAX];
	int ch, made_tmp = 0, ready[2] = {-1, -1}, null;
	const char *ap;
	ssize_t n;
	pid_t pid;

	/* a token's helper process (pkcs11/remote.h): this binary, re-executed */
	if (argc > 1 && strcmp(argv[1], "--p11-helper") == 0)
		return cx_p11_helper_main(argc, argv);
	harden();
	memset(&a, 0, sizeof(a));
	a.token_helpers = 1;
	a.uid = getuid();
	a.lfd = a.evfd = a.sigfd = -1;
	a.defpolicy.types = CX_POLICY_ALL;
	pthread_rwlock_init(&a.audit_lock, NULL);
	while ((ch = getopt_long(argc, argv, "a:c:dfhkm:P:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			sockopt = optarg;
			break;
		case 'c':
			policy = optarg;
			break;
		case 'd':
			a.debug = 1;
			a.foreground = 1;
			break;
		case 'f':
			a.foreground = 1;
			break;
		case 'k':
			kill_agent();
		case 'm':
			add_str(&a.startmods, &a.nstartmods, optarg);
			break;
		case 'P':
			free_strs(a.allow, a.nallow);
			a.allow = split_list(optarg, &a.nallow);
			break;
		case 'A':
			free(a.audit_path);
			if ((a.audit_path = strdup(optarg)) == NULL)
				die("out of memory");
			break;
		case 'S':
			free(a.askpass);
			if ((a.askpass = strdup(optarg)) == NULL)
				die("out of memory");
			break;
		case 'C':
			parse_pin_cache(&a, optarg);
			break;
		case 'R':
			a.allow_root = 1;
			break;
		case 'H':
			a.token_helpers = 0;
			break;
		case 'V':
			printf("%s (protocol %d)\n", CX_AGENT_VERSION, CX_PROTO_VERSION);
			exit(0);
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc)
		usage(2);
	if (a.allow == NULL)
		for (size_t i = 0; i < sizeof(default_allow) / sizeof(default_allow[0]); i++)
			add_str(&a.allow, &a.nallow, default_allow[i]);
	if (a.askpass == NULL &&
	    (((ap = getenv("CONEX_ASKPASS")) != NULL && *ap != '\0') ||
	        ((ap = getenv("SSH_ASKPASS")) != NULL && *ap != '\0')))
		if ((a.askpass = strdup(ap)) == NULL)
			die("out of memory");
	a.log_stderr = a.foreground;

	if (policy != NULL && cx_policy_load(&a, policy, &e) != 0)
		die("policy: %s", e.msg);
	if (a.audit_path == NULL)
		a.audit_path = default_audit_path();
	/* before the fork: the log's flock is shared with the daemon, errors reach the terminal */
	if (cx_audit_open(a.audit_path, &a.audit, &e) != 0)
		die("audit log: %s", e.msg);
	if (cx_audit_recovered(a.audit) > 0)
		fprintf(stderr,
		    "conex-agent: audit log %s: %llu line(s) lost in a crash were restored from its "
		    "journal\n",
		    a.audit_path, (unsigned long long)cx_audit_recovered(a.audit));

	if ((a.lfd = activated_socket(&a)) >= 0) {
		a.foreground = 1; /* systemd supervises us */
	} else {
		if (sockopt != NULL) {
			char dir[PATH_MAX], *slash;
			if (sockopt[0] != '/') {
				/* absolute: we chdir("/") and must unlink it at the end */
				if (getcwd(cwd, sizeof(cwd)) == NULL ||
				    snprintf(dir, sizeof(dir), "%s/%s", cwd, sockopt) >=
				        (int)sizeof(dir))
					die("socket path too long");
				a.sockpath = strdup(dir);
			} else
				a.sockpath = strdup(sockopt);
			if (a.sockpath == NULL)
				die("out of memory");
			snprintf(dir, sizeof(dir), "%s", a.sockpath);
			if ((slash = strrchr(dir, '/')) != NULL) {
				*slash = '\0';
				check_dir(dir[0] != '\0' ? dir : "/", 0);
			}
		} else
			a.sockpath = default_sock_path(&made_tmp);
		a.lfd = listen_path(a.sockpath);
	}

	if (!a.foreground) {
		if (pipe2(ready, O_CLOEXEC) != 0)
			die("pipe: %s", strerror(errno));
		fflush(stdout);
		if ((pid = fork()) < 0)
			die("fork: %s", strerror(errno));
		if (pid != 0) {
			/* the parent: wait for the daemon's word, print, go */
			close(ready[1]);
			n = read(ready[0], buf, sizeof(buf) - 1);
			if (n <= 0 || buf[0] != '+') {
				buf[n > 0 ? n : 0] = '\0';
				die("%s", n > 1 ? buf + 1 : "the agent died while starting");
			}
			print_env(a.sockpath, (long)pid);
			exit(0);
		}
		close(ready[0]);
		if (setsid() < 0)
			_exit(1);
		openlog("conex-agent", LOG_PID, LOG_AUTH);
		/*
		 * Let go of the caller's stdio now, before any thread or token
		 * helper starts: a helper would inherit it and keep open the
		 * pipe of a caller that reads our output to its end (eval
		 * $(conex-agent 2>&1)).  Errors from here on go through the
		 * ready pipe and syslog.
		 */
		if ((null = open("/dev/null", O_RDWR)) >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
	}
	if (chdir("/") != 0)
		cx_agent_log(&a, LOG_WARNING, "chdir /: %s", strerror(errno));

	if (init_daemon(&a, &e) != 0) {
		if (ready[1] >= 0) {
			if (a.sockpath != NULL && !a.activated)
				unlink(a.sockpath);
			snprintf(buf, sizeof(buf), "-%s", e.msg);
			(void)!write(ready[1], buf, strlen(buf));
			_exit(1);
		}
		if (a.sockpath != NULL && !a.activated)
			unlink(a.sockpath);
		die("%s", e.msg);
	}
	cx_agent_log(&a, LOG_INFO, "listening on %s", a.sockpath != NULL ? a.sockpath : "fd 3");
	if (ready[1] >= 0) {
		(void)!write(ready[1], "+", 1);
		close(ready[1]);
	} else
		print_env(a.sockpath != NULL ? a.sockpath : "", (long)getpid());

	cx_loop_run(&a);

	shutdown_agent(&a, made_tmp);
	free_strs(a.allow, a.nallow);
	free_strs(a.startmods, a.nstartmods);
	free(a.askpass);
	free(a.audit_path);
	free(a.sockpath);
	return 0;
}
