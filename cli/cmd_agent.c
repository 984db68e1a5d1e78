/*
 * conex agent: manage a running conex-agent (keys, tokens, PINs, policies,
 * the lock) and check its audit log.  A thin user of libconex-agent
 * (client/conex-agent.h); docs/protocol.md describes what goes over the wire.
 *
 * Secrets (PINs, passwords, private keys) never come from argv, where any
 * user can read them in /proc: they are read from the terminal with echo
 * off, from a file descriptor or from a file, into fixed buffers that are
 * wiped as soon as the request is sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "agent/audit.h"
#include "cli/cli.h"
#include "client/conex-agent.h"
#include "conex/crypto.h"

#define SECRET_MAX 1024 /* PIN or password, with its NUL */
/* A PEM key file must fit one ADD_KEY frame with its id and policy. */
#define PEM_MAX (CX_PROTO_MAX - 4096)

struct agent_cmd {
	const char *name;
	int (*fn)(const char *sock, int argc, char **argv);
};

static void
agent_usage(FILE *f)
{
	fprintf(f,
	    "usage: conex agent [-s SOCKET] <command> [options]\n\n"
	    "  list                            the keys the agent holds, one per line:\n"
	    "                                  keyid, id, alg, hardware|software, token,\n"
	    "                                  policy, state (tab-separated)\n"
	    "  add-token MODULE [TOKEN]        open a PKCS#11 module's token (serial or\n"
	    "                                  pkcs11: URI; default: every token)\n"
	    "  remove-token SERIAL             forget a token and its keys\n"
	    "  login SERIAL [--pin-fd N | --pin-file F] [--allow-final-try]\n"
	    "                                  log in to a token (PIN from the terminal by default)\n"
	    "  add-key [POLICY] [--id ID] FILE add a software key from a conex\n"
	    "                                  ~/.conex/<id>.<keyid>.private file\n"
	    "  remove-key KEYID                remove a key (sha256=HEX)\n"
	    "  set-policy KEYID POLICY         change a key's policy (other fields are kept)\n"
	    "  lock [--password-fd N | --password-file F]\n"
	    "  unlock [--password-fd N | --password-file F]\n"
	    "                                  lock / unlock the whole agent\n"
	    "  generate SERIAL ID [--alg ed25519|rsa2048|rsa4096|ecdsa]\n"
	    "                                  make a key pair on a token (default ed25519;\n"
	    "                                  conex signatures are ed25519 or RSA only)\n"
	    "  audit FILE                      check an audit log's hash chain (offline)\n\n"
	    "POLICY: --types root,targets,snapshot,timestamp|all  --confirm | --no-confirm\n"
	    "        --lifetime SECONDS  --max-sigs N  (0: no limit; add-key default: all\n"
	    "        types, no confirmation, no limits)\n\n"
	    "  -s, --socket SOCKET   the agent's socket (default $%s)\n\n"
	    "exit status: 0 ok, 1 the agent refused or failed, 2 usage error,\n"
	    "             3 cannot connect, I/O or internal error\n",
	    CX_AGENT_SOCK_ENV);
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "conex agent %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see conex agent --help)\n");
	return CX_EXIT_USAGE;
}

/* ---- talking to the agent ---- */

static int
open_agent(const char *cmd, const char *sock, struct cx_agent_conn **c)
{
	struct cx_err e = {0};

	if (cx_agent_connect(sock, c, &e) != 0) {
		fprintf(stderr, "conex agent %s: %s\n", cmd, e.msg);
		return CX_EXIT_ERROR;
	}
	return CX_EXIT_OK;
}

/* Reports a failed request, with what the user can do about the agent's answer. */
static int
report(const char *cmd, const struct cx_agent_conn *c, int r, const struct cx_err *e)
{
	uint32_t code, detail;

	fprintf(stderr, "conex agent %s: %s", cmd, e->msg);
	if (r != CX_EAGENT) {
		fprintf(stderr, "\n");
		if (r == CX_EINVAL)
			return CX_EXIT_USAGE;
		return r == CX_ECRYPTO ? CX_EXIT_REJECT : CX_EXIT_ERROR;
	}
	code = cx_agent_last_error(c);
	detail = cx_agent_last_detail(c);
	switch (code) {
	case CX_AERR_PIN_INCORRECT:
		if (detail != 0xFFFFFFFFu)
			fprintf(stderr, " (%" PRIu32 " tries left)", detail);
		break;
	case CX_AERR_AGENT_LOCKED:
		if (detail)
			fprintf(stderr, " (next unlock try in %" PRIu32 " s)", detail);
		if (strcmp(cmd, "unlock") != 0)
			fprintf(stderr, "\n  unlock it with: conex agent unlock");
		break;
	case CX_AERR_PIN_REQUIRED:
		fprintf(stderr, "\n  log in first: conex agent login SERIAL");
		break;
	case CX_AERR_FINAL_TRY:
		fprintf(stderr,
		    "\n  the next wrong PIN locks the token: rerun with "
		    "--allow-final-try to risk it");
		break;
	}
	fprintf(stderr, "\n");
	return CX_EXIT_REJECT;
}

/* ---- arguments ---- */

static int
parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return (errno != 0 || *end != 0) ? -1 : 0;
}

static int
parse_fd(const char *s, int *fd)
{
	uint64_t v;

	if (parse_u64(s, &v) != 0 || v > 1024 * 1024)
		return -1;
	*fd = (int)v;
	return 0;
}

/* "sha256=HEX" (as conex writes key ids) or the bare 64 lowercase hex digits. */
static int
parse_keyid(const char *s, uint8_t keyid[32])
{
	if (strncmp(s, "sha256=", 7) == 0)
		s += 7;
	return cx_hex_decode(s, strlen(s), keyid, 32) == 0 ? 0 : -1;
}

static void
print_keyid(FILE *f, const uint8_t keyid[32])
{
	char hex[65];

	cx_hex_encode(keyid, 32, hex);
	fprintf(f, "sha256=%s", hex);
}

static const struct {
	const char *name;
	uint32_t bit;
} type_names[] = {
    {"root", CX_POLICY_ROOT},
    {"targets", CX_POLICY_TARGETS},
    {"snapshot", CX_POLICY_SNAPSHOT},
    {"timestamp", CX_POLICY_TIMESTAMP},
};

static int
parse_types(const char *s, uint32_t *types)
{
	const char *p = s, *end;
	size_t len, i;

	*types = 0;
	if (strcmp(s, "all") == 0) {
		*types = CX_POLICY_ALL;
		return 0;
	}
	for (;;) {
		end = strchr(p, ',');
		len = end ? (size_t)(end - p) : strlen(p);
		for (i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
			if (strlen(type_names[i].name) == len &&
			    strncmp(p, type_names[i].name, len) == 0)
				break;
		if (i == sizeof(type_names) / sizeof(type_names[0]))
			return -1;
		*types |= type_names[i].bit;
		if (end == NULL)
			return 0;
		p = end + 1;
	}
}

/* Policy options shared by add-key and set-policy. */
enum {
	OPT_TYPES = 256,
	OPT_CONFIRM,
	OPT_NO_CONFIRM,
	OPT_LIFETIME,
	OPT_MAX_SIGS,
	OPT_ID,
	OPT_PIN_FD,
	OPT_PIN_FILE,
	OPT_PW_FD,
	OPT_PW_FILE,
	OPT_FINAL,
	OPT_ALG
};

#define POLICY_OPTIONS                                            \
	{"types", required_argument, NULL, OPT_TYPES},            \
	    {"confirm", no_argument, NULL, OPT_CONFIRM},          \
	    {"no-confirm", no_argument, NULL, OPT_NO_CONFIRM},    \
	    {"lifetime", required_argument, NULL, OPT_LIFETIME},  \
	{                                                         \
		"max-sigs", required_argument, NULL, OPT_MAX_SIGS \
	}

/* Which policy fields the command line set (set-policy keeps the others). */
#define SET_TYPES    0x1
#define SET_CONFIRM  0x2
#define SET_LIFETIME 0x4
#define SET_MAX_SIGS 0x8

/* 1: handled, 0: not a policy option, -1: bad value (reported). */
static int
policy_opt(const char *cmd, int ch, const char *arg, struct cx_policy *p, int *set)
{
	switch (ch) {
	case OPT_TYPES:
		if (parse_types(arg, &p->types) != 0) {
			usage_error(cmd,
			    "bad --types '%s' (want root,targets,snapshot,timestamp "
			    "or all)",
			    arg);
			return -1;
		}
		*set |= SET_TYPES;
		return 1;
	case OPT_CONFIRM:
	case OPT_NO_CONFIRM:
		p->confirm = ch == OPT_CONFIRM;
		*set |= SET_CONFIRM;
		return 1;
	case OPT_LIFETIME:
		if (parse_u64(arg, &p->lifetime) != 0) {
			usage_error(cmd, "bad --lifetime '%s' (want seconds)", arg);
			return -1;
		}
		*set |= SET_LIFETIME;
		return 1;
	case OPT_MAX_SIGS:
		if (parse_u64(arg, &p->max_sigs) != 0) {
			usage_error(cmd, "bad --max-sigs '%s'", arg);
			return -1;
		}
		*set |= SET_MAX_SIGS;
		return 1;
	}
	return 0;
}

/* ---- secrets ---- */

/*
 * Reads one line from the terminal with echo off.  Signals from the
 * keyboard are turned off and read as keys (^C aborts at once); the others
 * are held until the terminal is restored, so it is never left without echo.
 */
static int
tty_secret(const char *cmd, const char *prompt, char *buf, size_t cap, size_t *len)
{
	struct termios old, raw;
	sigset_t block, saved;
	unsigned char ch = 0;
	size_t n = 0;
	ssize_t rd;
	int fd, r = 0, overflow = 0;

	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
		fprintf(stderr,
		    "conex agent %s: no terminal to read a secret from (%s): see "
		    "--help for the -fd and -file options\n",
		    cmd, strerror(errno));
		return CX_EXIT_USAGE;
	}
	if (tcgetattr(fd, &old) != 0) {
		fprintf(stderr, "conex agent %s: /dev/tty: %s\n", cmd, strerror(errno));
		close(fd);
		return CX_EXIT_ERROR;
	}
	raw = old;
	raw.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	sigemptyset(&block);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGQUIT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGTSTP);
	sigaddset(&block, SIGTTIN);
	sigaddset(&block, SIGTTOU);
	sigprocmask(SIG_BLOCK, &block, &saved);
	if (tcsetattr(fd, TCSAFLUSH, &raw) != 0) {
		r = CX_EXIT_ERROR;
		goto out;
	}
	if (write(fd, prompt, strlen(prompt)) < 0) {
		r = CX_EXIT_ERROR;
		goto restore;
	}
	for (;;) {
		rd = read(fd, &ch, 1);
		if (rd < 0 && errno == EINTR)
			continue;
		if (rd <= 0) {
			r = CX_EXIT_ERROR;
			break;
		}
		if (ch == '\n' || ch == '\r')
			break;
		if (ch == 0)
			continue; /* the protocol refuses NUL: never send one */
		if (ch == old.c_cc[VINTR] || ch == old.c_cc[VQUIT] ||
		    (ch == old.c_cc[VEOF] && n == 0)) {
			r = CX_EXIT_USAGE;
			break;
		}
		if (ch == old.c_cc[VERASE] || ch == 0x7f || ch == 0x08) {
			if (n > 0)
				n--;
			continue;
		}
		if (ch == old.c_cc[VKILL]) {
			n = 0;
			continue;
		}
		if (n + 1 >= cap) {
			overflow = 1;
			continue;
		}
		buf[n++] = (char)ch;
	}
	if (write(fd, "\n", 1) < 0)
		r = r ? r : CX_EXIT_ERROR;
restore:
	tcsetattr(fd, TCSAFLUSH, &old);
out:
	sigprocmask(SIG_SETMASK, &saved, NULL);
	close(fd);
	ch = 0;
	buf[n] = 0;
	*len = n;
	if (r == 0 && overflow)
		r = CX_EXIT_USAGE;
	if (r != 0) {
		explicit_bzero(buf, cap);
		fprintf(stderr, "conex agent %s: %s\n", cmd,
		    overflow                 ? "secret too long"
		        : r == CX_EXIT_USAGE ? "interrupted"
		                             : "cannot read from the terminal");
	}
	return r;
}

/* Reads a secret from fd: up to end of file or the first newline, which is dropped. */
static int
fd_secret(const char *cmd, int fd, const char *what, char *buf, size_t cap, size_t *len)
{
	size_t n = 0;
	ssize_t rd;
	char *nl;

	while (n + 1 < cap) {
		rd = read(fd, buf + n, cap - 1 - n);
		if (rd < 0 && errno == EINTR)
			continue;
		if (rd < 0) {
			fprintf(stderr, "conex agent %s: reading the %s: %s\n", cmd, what,
			    strerror(errno));
			explicit_bzero(buf, cap);
			return CX_EXIT_ERROR;
		}
		if (rd == 0)
			break;
		n += (size_t)rd;
		if (memchr(buf + n - (size_t)rd, '\n', (size_t)rd) != NULL)
			break;
	}
	buf[n] = 0;
	if ((nl = memchr(buf, '\n', n)) != NULL)
		n = (size_t)(nl - buf);
	else if (n + 1 >= cap) {
		fprintf(stderr, "conex agent %s: the %s is longer than %d bytes\n", cmd, what,
		    SECRET_MAX - 1);
		explicit_bzero(buf, cap);
		return CX_EXIT_USAGE;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (memchr(buf, 0, n) != NULL) {
		fprintf(stderr, "conex agent %s: the %s holds a NUL byte\n", cmd, what);
		explicit_bzero(buf, cap);
		return CX_EXIT_USAGE;
	}
	explicit_bzero(buf + n, cap - n);
	*len = n;
	return 0;
}

/* Where a secret comes from: --X-fd, --X-file, else the terminal. */
struct secret_src {
	int fd;           /* -1: unset */
	const char *file; /* NULL: unset */
};

static int
get_secret(const char *cmd, const struct secret_src *src, const char *what, const char *prompt,
    char *buf, size_t cap, size_t *len)
{
	int fd, r;

	if (src->fd >= 0)
		return fd_secret(cmd, src->fd, what, buf, cap, len);
	if (src->file != NULL) {
		if ((fd = open(src->file, O_RDONLY | O_CLOEXEC)) < 0) {
			fprintf(
			    stderr, "conex agent %s: %s: %s\n", cmd, src->file, strerror(errno));
			return CX_EXIT_ERROR;
		}
		r = fd_secret(cmd, fd, what, buf, cap, len);
		close(fd);
		return r;
	}
	return tty_secret(cmd, prompt, buf, cap, len);
}

/* ---- subcommands ---- */

static const char *
keyalg_name(uint8_t alg)
{
	switch (alg) {
	case CX_MKEY_RSA:
		return "rsa";
	case CX_MKEY_ED25519:
		return "ed25519";
	case CX_MKEY_ECDSA_P256:
		return "ecdsa-p256";
	}
	return "unknown";
}

static void
print_policy(FILE *f, const struct cx_policy *p)
{
	size_t i, k = 0;

	fprintf(f, "types=");
	for (i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (p->types & type_names[i].bit)
			fprintf(f, "%s%s", k++ ? "," : "", type_names[i].name);
	if (k == 0)
		fprintf(f, "none");
	if (p->confirm)
		fprintf(f, " confirm");
	if (p->lifetime)
		fprintf(f, " lifetime=%" PRIu64, p->lifetime);
	if (p->max_sigs)
		fprintf(f, " max-sigs=%" PRIu64, p->max_sigs);
}

/* keyid id alg hardware|software token policy state, tab-separated */
static void
print_key(FILE *f, const struct cx_msg_key *k)
{
	print_keyid(f, k->keyid);
	fprintf(f, "\t%s\t%s\t%s\t", k->id, keyalg_name(k->keyalg),
	    (k->state & CX_KEY_HARDWARE) ? "hardware" : "software");
	if (k->state & CX_KEY_HARDWARE)
		fprintf(f, "%s/%s", k->token_serial, k->token_label);
	else
		fprintf(f, "-");
	fprintf(f, "\t");
	print_policy(f, &k->policy);
	fprintf(f, " sigs=%" PRIu64 "\t%s", k->sigs_made,
	    (k->state & CX_KEY_PRESENT) ? "present" : "absent");
	if (k->state & CX_KEY_LOGGED_IN)
		fprintf(f, ",logged-in");
	if (k->state & CX_KEY_ALWAYS_AUTH)
		fprintf(f, ",always-auth");
	fprintf(f, "\n");
}

/* Subcommands with positional arguments only: checks their number. */
static int
no_options(const char *cmd, int argc, char **argv, int min, int max)
{
	static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	int ch;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ch == 'h') {
			agent_usage(stdout);
			return -1;
		}
		usage_error(cmd, "%s", "bad option");
		return -2;
	}
	if (argc - optind < min || argc - optind > max) {
		usage_error(cmd, "%s", "wrong number of arguments");
		return -2;
	}
	return 0;
}

#define NO_OPTIONS(cmd, min, max)                                      \
	do {                                                           \
		int no_ = no_options(cmd, argc, argv, min, max);       \
		if (no_ != 0)                                          \
			return no_ == -1 ? CX_EXIT_OK : CX_EXIT_USAGE; \
	} while (0)

static int
cmd_list(const char *sock, int argc, char **argv)
{
	struct cx_agent_conn *c;
	struct cx_msg_key *keys;
	struct cx_err e = {0};
	size_t n, i;
	int r;

	NO_OPTIONS("list", 0, 0);
	if ((r = open_agent("list", sock, &c)) != 0)
		return r;
	if ((r = cx_agent_list(c, &keys, &n, &e)) != 0) {
		r = report("list", c, r, &e);
		cx_agent_close(c);
		return r;
	}
	for (i = 0; i < n; i++)
		print_key(stdout, &keys[i]);
	if (n == 0)
		fprintf(stderr, "conex agent list: the agent holds no keys\n");
	cx_agent_keys_free(keys);
	cx_agent_close(c);
	return CX_EXIT_OK;
}

static int
cmd_add_token(const char *sock, int argc, char **argv)
{
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	int r;

	NO_OPTIONS("add-token", 1, 2);
	if ((r = open_agent("add-token", sock, &c)) != 0)
		return r;
	if ((r = cx_agent_add_token(
	         c, argv[optind], argc - optind > 1 ? argv[optind + 1] : "", &e)) != 0)
		r = report("add-token", c, r, &e);
	cx_agent_close(c);
	return r;
}

static int
cmd_remove_token(const char *sock, int argc, char **argv)
{
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	int r;

	NO_OPTIONS("remove-token", 1, 1);
	if ((r = open_agent("remove-token", sock, &c)) != 0)
		return r;
	if ((r = cx_agent_remove_token(c, argv[optind], &e)) != 0)
		r = report("remove-token", c, r, &e);
	cx_agent_close(c);
	return r;
}

/* y/Y from the terminal; anything else, or no terminal, is no. */
static int
tty_yes(const char *prompt)
{
	char ans[16];
	FILE *tty;
	int yes;

	if ((tty = fopen("/dev/tty", "r+e")) == NULL)
		return 0;
	fputs(prompt, tty);
	fflush(tty);
	yes = fgets(ans, sizeof(ans), tty) != NULL && (ans[0] == 'y' || ans[0] == 'Y');
	fclose(tty);
	return yes;
}

static int
cmd_login(const char *sock, int argc, char **argv)
{
	static const struct option opts[] = {{"pin-fd", required_argument, NULL, OPT_PIN_FD},
	    {"pin-file", required_argument, NULL, OPT_PIN_FILE},
	    {"allow-final-try", no_argument, NULL, OPT_FINAL}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	struct secret_src src = {-1, NULL};
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	char pin[SECRET_MAX], prompt[256];
	size_t pinlen = 0;
	int ch, r, final = 0, interactive;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_PIN_FD:
			if (parse_fd(optarg, &src.fd) != 0)
				return usage_error("login", "bad --pin-fd '%s'", optarg);
			break;
		case OPT_PIN_FILE:
			src.file = optarg;
			break;
		case OPT_FINAL:
			final = 1;
			break;
		case 'h':
			agent_usage(stdout);
			return CX_EXIT_OK;
		default:
			return usage_error("login", "%s", "bad option");
		}
	}
	if (argc - optind != 1)
		return usage_error("login", "%s", "want one token SERIAL");
	if (src.fd >= 0 && src.file != NULL)
		return usage_error("login", "%s", "--pin-fd and --pin-file exclude each other");
	interactive = src.fd < 0 && src.file == NULL;
	if ((r = open_agent("login", sock, &c)) != 0)
		return r;
	snprintf(prompt, sizeof(prompt), "PIN for token %s: ", argv[optind]);
	if ((r = get_secret("login", &src, "PIN", prompt, pin, sizeof(pin), &pinlen)) != 0) {
		cx_agent_close(c);
		return r;
	}
	r = cx_agent_token_login(c, argv[optind], pin, pinlen, final, &e);
	/* the agent tried nothing: the user decides whether to risk the last try */
	if (r == CX_EAGENT && cx_agent_last_error(c) == CX_AERR_FINAL_TRY && interactive &&
	    tty_yes("The token says the next wrong PIN locks it. Try this PIN anyway? [y/N] "))
		r = cx_agent_token_login(c, argv[optind], pin, pinlen, 1, &e);
	explicit_bzero(pin, sizeof(pin));
	if (r != 0)
		r = report("login", c, r, &e);
	cx_agent_close(c);
	return r;
}

/* lock and unlock */
static int
lock_cmd(const char *cmd, const char *sock, int argc, char **argv, int lock)
{
	static const struct option opts[] = {{"password-fd", required_argument, NULL, OPT_PW_FD},
	    {"password-file", required_argument, NULL, OPT_PW_FILE},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct secret_src src = {-1, NULL};
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	char pw[SECRET_MAX], pw2[SECRET_MAX];
	size_t n = 0, n2 = 0;
	int ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_PW_FD:
			if (parse_fd(optarg, &src.fd) != 0)
				return usage_error(cmd, "bad --password-fd '%s'", optarg);
			break;
		case OPT_PW_FILE:
			src.file = optarg;
			break;
		case 'h':
			agent_usage(stdout);
			return CX_EXIT_OK;
		default:
			return usage_error(cmd, "%s", "bad option");
		}
	}
	if (argc != optind)
		return usage_error(cmd, "%s", "unexpected argument");
	if (src.fd >= 0 && src.file != NULL)
		return usage_error(
		    cmd, "%s", "--password-fd and --password-file exclude each other");
	if ((r = open_agent(cmd, sock, &c)) != 0)
		return r;
	if ((r = get_secret(cmd, &src, "password",
	         lock ? "Lock password: " : "Unlock password: ", pw, sizeof(pw), &n)) != 0)
		goto out;
	if (lock && src.fd < 0 && src.file == NULL) {
		/* a mistyped lock password would lock the user out: ask twice */
		if ((r = tty_secret(cmd, "Again: ", pw2, sizeof(pw2), &n2)) != 0)
			goto out;
		if (n != n2 || memcmp(pw, pw2, n) != 0) {
			fprintf(stderr, "conex agent %s: the passwords differ\n", cmd);
			r = CX_EXIT_USAGE;
			goto out;
		}
	}
	if (lock && n == 0) {
		fprintf(stderr, "conex agent %s: empty password\n", cmd);
		r = CX_EXIT_USAGE;
		goto out;
	}
	r = lock ? cx_agent_lock(c, pw, n, &e) : cx_agent_unlock(c, pw, n, &e);
	if (r != 0)
		r = report(cmd, c, r, &e);
out:
	explicit_bzero(pw, sizeof(pw));
	explicit_bzero(pw2, sizeof(pw2));
	cx_agent_close(c);
	return r;
}

static int
cmd_lock(const char *sock, int argc, char **argv)
{
	return lock_cmd("lock", sock, argc, argv, 1);
}

static int
cmd_unlock(const char *sock, int argc, char **argv)
{
	return lock_cmd("unlock", sock, argc, argv, 0);
}

/*
 * Reads a private key file in one allocation of its exact size, so that no
 * copy is left behind by a growing buffer; the caller wipes and frees it.
 */
static int
read_pem(const char *path, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *p;
	size_t n = 0;
	ssize_t rd;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "conex agent add-key: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CX_EXIT_ERROR;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > PEM_MAX) {
		fprintf(stderr,
		    "conex agent add-key: %s: not a key file (a regular file of at "
		    "most %u bytes)\n",
		    path, PEM_MAX);
		close(fd);
		return CX_EXIT_USAGE;
	}
	if (st.st_mode & 077)
		fprintf(stderr, "conex agent add-key: warning: %s is accessible by other users\n",
		    path);
	if ((p = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return CX_EXIT_ERROR;
	}
	while (n < (size_t)st.st_size) {
		rd = read(fd, p + n, (size_t)st.st_size - n);
		if (rd < 0 && errno == EINTR)
			continue;
		if (rd <= 0)
			break;
		n += (size_t)rd;
	}
	close(fd);
	if (n != (size_t)st.st_size) {
		fprintf(stderr, "conex agent add-key: %s: short read\n", path);
		explicit_bzero(p, (size_t)st.st_size + 1);
		free(p);
		return CX_EXIT_ERROR;
	}
	p[n] = 0;
	*out = p;
	*len = n;
	return 0;
}

static int
cmd_add_key(const char *sock, int argc, char **argv)
{
	static const struct option opts[] = {POLICY_OPTIONS,
	    {"id", required_argument, NULL, OPT_ID}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	struct cx_policy pol = {CX_POLICY_ALL, 0, 0, 0};
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	const char *file, *base;
	char id[256];
	uint8_t *pem;
	size_t pemlen;
	int ch, r, set = 0;

	id[0] = 0;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((r = policy_opt("add-key", ch, optarg, &pol, &set)) != 0) {
			if (r < 0)
				return CX_EXIT_USAGE;
			continue;
		}
		switch (ch) {
		case OPT_ID:
			if (strlen(optarg) == 0 || strlen(optarg) >= sizeof(id))
				return usage_error("add-key", "bad --id '%s'", optarg);
			snprintf(id, sizeof(id), "%s", optarg);
			break;
		case 'h':
			agent_usage(stdout);
			return CX_EXIT_OK;
		default:
			return usage_error("add-key", "%s", "bad option");
		}
	}
	if (argc - optind != 1)
		return usage_error("add-key", "%s", "want one key FILE");
	file = argv[optind];
	if (id[0] == 0) {
		/* conex names key files <id>.<keyid>.private: the id is up to the first dot */
		base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
		if (strcspn(base, ".") == 0 || strcspn(base, ".") >= sizeof(id))
			return usage_error("add-key",
			    "cannot tell the id from the name of %s: "
			    "use --id",
			    file);
		snprintf(id, sizeof(id), "%.*s", (int)strcspn(base, "."), base);
	}
	if ((r = read_pem(file, &pem, &pemlen)) != 0)
		return r;
	if ((r = open_agent("add-key", sock, &c)) != 0)
		goto out;
	if ((r = cx_agent_add_key(c, id, pem, pemlen, &pol, &e)) != 0)
		r = report("add-key", c, r, &e);
	else
		printf("added %s as %s\n", file, id);
	cx_agent_close(c);
out:
	explicit_bzero(pem, pemlen);
	free(pem);
	return r;
}

static int
cmd_remove_key(const char *sock, int argc, char **argv)
{
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	uint8_t keyid[32];
	int r;

	NO_OPTIONS("remove-key", 1, 1);
	if (parse_keyid(argv[optind], keyid) != 0)
		return usage_error(
		    "remove-key", "bad KEYID '%s' (want sha256=<64 lowercase hex>)", argv[optind]);
	if ((r = open_agent("remove-key", sock, &c)) != 0)
		return r;
	if ((r = cx_agent_remove_key(c, keyid, &e)) != 0)
		r = report("remove-key", c, r, &e);
	cx_agent_close(c);
	return r;
}

static int
cmd_set_policy(const char *sock, int argc, char **argv)
{
	static const struct option opts[] = {
	    POLICY_OPTIONS, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct cx_policy pol, want = {0, 0, 0, 0};
	struct cx_agent_conn *c;
	struct cx_msg_key *keys;
	struct cx_err e = {0};
	uint8_t keyid[32];
	size_t n, i;
	int ch, r, set = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if ((r = policy_opt("set-policy", ch, optarg, &want, &set)) != 0) {
			if (r < 0)
				return CX_EXIT_USAGE;
			continue;
		}
		if (ch == 'h') {
			agent_usage(stdout);
			return CX_EXIT_OK;
		}
		return usage_error("set-policy", "%s", "bad option");
	}
	if (argc - optind != 1)
		return usage_error("set-policy", "%s", "want one KEYID");
	if (parse_keyid(argv[optind], keyid) != 0)
		return usage_error(
		    "set-policy", "bad KEYID '%s' (want sha256=<64 lowercase hex>)", argv[optind]);
	if (set == 0)
		return usage_error("set-policy", "%s", "nothing to change");
	if ((r = open_agent("set-policy", sock, &c)) != 0)
		return r;
	/* SET_POLICY replaces the whole policy: start from the current one */
	if ((r = cx_agent_list(c, &keys, &n, &e)) != 0) {
		r = report("set-policy", c, r, &e);
		cx_agent_close(c);
		return r;
	}
	for (i = 0; i < n && memcmp(keys[i].keyid, keyid, 32) != 0; i++)
		;
	if (i == n) {
		fprintf(
		    stderr, "conex agent set-policy: the agent holds no key %s\n", argv[optind]);
		cx_agent_keys_free(keys);
		cx_agent_close(c);
		return CX_EXIT_REJECT;
	}
	pol = keys[i].policy;
	cx_agent_keys_free(keys);
	if (set & SET_TYPES)
		pol.types = want.types;
	if (set & SET_CONFIRM)
		pol.confirm = want.confirm;
	if (set & SET_LIFETIME)
		pol.lifetime = want.lifetime;
	if (set & SET_MAX_SIGS)
		pol.max_sigs = want.max_sigs;
	if ((r = cx_agent_set_policy(c, keyid, &pol, &e)) != 0)
		r = report("set-policy", c, r, &e);
	cx_agent_close(c);
	return r;
}

static int
cmd_generate(const char *sock, int argc, char **argv)
{
	static const struct option opts[] = {{"alg", required_argument, NULL, OPT_ALG},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	static const struct {
		const char *name;
		uint8_t keyalg;
		uint32_t bits;
	} algs[] = {
	    {"ed25519", CX_MKEY_ED25519, 0},
	    {"rsa2048", CX_MKEY_RSA, 2048},
	    {"rsa4096", CX_MKEY_RSA, 4096},
	    {"ecdsa", CX_MKEY_ECDSA_P256, 0},
	};
	struct cx_agent_conn *c;
	struct cx_msg_key *k;
	struct cx_err e = {0};
	size_t alg = 0; /* ed25519, as upstream conex_key */
	int ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_ALG:
			for (alg = 0; alg < sizeof(algs) / sizeof(algs[0]); alg++)
				if (strcmp(optarg, algs[alg].name) == 0)
					break;
			if (alg == sizeof(algs) / sizeof(algs[0]))
				return usage_error("generate", "unknown --alg '%s'", optarg);
			break;
		case 'h':
			agent_usage(stdout);
			return CX_EXIT_OK;
		default:
			return usage_error("generate", "%s", "bad option");
		}
	}
	if (argc - optind != 2)
		return usage_error("generate", "%s", "want a token SERIAL and an ID");
	if ((r = open_agent("generate", sock, &c)) != 0)
		return r;
	if ((r = cx_agent_generate(c, argv[optind], argv[optind + 1], algs[alg].keyalg,
	         algs[alg].bits, &k, &e)) != 0) {
		r = report("generate", c, r, &e);
		cx_agent_close(c);
		return r;
	}
	print_key(stdout, k);
	/* what goes into the author's key entry */
	printf("%s\n", k->keystr);
	cx_agent_keys_free(k);
	cx_agent_close(c);
	return CX_EXIT_OK;
}

static int
cmd_audit(const char *sock, int argc, char **argv)
{
	struct cx_err e = {0};
	uint64_t nlines = 0;
	int r;

	(void)sock; /* offline: the log is a file */
	NO_OPTIONS("audit", 1, 1);
	if ((r = cx_audit_verify(argv[optind], &nlines, &e)) != 0) {
		fprintf(stderr, "conex agent audit: %s\n", e.msg);
		return (r == CX_EIO || r == CX_ENOENT || r == CX_ENOMEM) ? CX_EXIT_ERROR
		                                                         : CX_EXIT_REJECT;
	}
	printf("%s: %" PRIu64 " entries, hash chain intact\n", argv[optind], nlines);
	return CX_EXIT_OK;
}

int
cx_cmd_agent(int argc, char **argv)
{
	static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	static const struct agent_cmd cmds[] = {
	    {"list", cmd_list},
	    {"add-token", cmd_add_token},
	    {"remove-token", cmd_remove_token},
	    {"login", cmd_login},
	    {"add-key", cmd_add_key},
	    {"remove-key", cmd_remove_key},
	    {"set-policy", cmd_set_policy},
	    {"lock", cmd_lock},
	    {"unlock", cmd_unlock},
	    {"generate", cmd_generate},
	    {"audit", cmd_audit},
	};
	const char *sock = NULL;
	size_t i;
	int ch;

	/* "+": options after the subcommand belong to it */
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'h':
			agent_usage(stdout);
			return CX_EXIT_OK;
		default:
			agent_usage(stderr);
			return CX_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		agent_usage(stderr);
		return CX_EXIT_USAGE;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[optind], cmds[i].name) == 0)
			return cmds[i].fn(sock, argc - optind, argv + optind);
	fprintf(stderr, "conex agent: unknown command '%s'\n", argv[optind]);
	agent_usage(stderr);
	return CX_EXIT_USAGE;
}
