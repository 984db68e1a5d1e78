/*
 * conex-agent, end to end: the real daemon (CX_BUILD_DIR/conex-agent) on
 * SoftHSM2 tokens made in each test's own directory, reached over its real
 * socket with libconex-agent (client/conex-agent.h) or, where the bytes on
 * the wire are the point, with hand-made frames.
 *
 * Every agent is started with -d (log in the test directory, agent.log) and
 * PR_SET_PDEATHSIG, so a failing test does not leave it running.  Under
 * AddressSanitizer the agent's leak check runs at its exit (a leak makes it
 * exit non-zero, which fails the test); SoftHSM's own leaks are suppressed
 * with a file written to the test directory (see write_lsan_supp).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "agent/audit.h"
#include "client/conex-agent.h"
#include "conex/crypto.h"
#include "conex/resource.h"
#include "pkcs11/token.h"
#include "tests/lib/repobuild.h"
#include "tests/lib/softhsm.h"
#include "tests/unit/testutil.h"

#define PIN     "1234"
#define NOBODY  65534
#define CREATED "2026-01-02T03:04:05Z"

struct ag {
	char *dir;
	char sock[512], audit[512], askpass[512], log[512];
	pid_t pid;
	char serial[4][17];
	int ntok;
};

/* ---- helpers ---- */

static void
wfile(const char *dir, const char *rel, const char *s)
{
	cx_test_write_str(dir, rel, s);
}

static int
read_int(const char *dir, const char *rel)
{
	char p[1024];
	uint8_t *b;
	size_t n;
	int v;

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if ((b = cx_test_read(p, &n)) == NULL)
		return 0;
	v = atoi((char *)b);
	free(b);
	return v;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for rel in dir to hold at least n (a counter file the askpass script keeps). */
static void
wait_count(const char *dir, const char *rel, int n)
{
	int64_t end = now_ms() + 20000;

	while (read_int(dir, rel) < n) {
		ck_assert_msg(now_ms() < end, "timed out waiting for %s >= %d", rel, n);
		usleep(20000);
	}
}

static void
serial_of(const char *label, char out[17])
{
	char line[256], serial[64] = "";
	FILE *f;

	out[0] = '\0';
	ck_assert((f = popen("softhsm2-util --show-slots 2>/dev/null", "r")) != NULL);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p;
		if ((p = strstr(line, "Serial number:")) != NULL) {
			p += strlen("Serial number:");
			sscanf(p, "%63s", serial);
		} else if ((p = strstr(line, "Label:")) != NULL) {
			char l[64] = "";
			sscanf(p + strlen("Label:"), "%63s", l);
			if (strcmp(l, label) == 0 && out[0] == '\0')
				snprintf(out, 17, "%s", serial);
		}
	}
	pclose(f);
	ck_assert_msg(out[0] != '\0', "no serial for token %s", label);
}

/*
 * The askpass program: records each prompt and a call count; a confirmation
 * waits for the file "go" (yes unless it says "no"); a PIN is the file "pin".
 */
static void
write_askpass(struct ag *g)
{
	char s[4096];

	snprintf(s, sizeof(s),
	    "#!/bin/sh\n"
	    "D='%s'\n"
	    "printf '%%s\\n' \"$1\" >> \"$D/prompts\"\n"
	    "n=$(cat \"$D/asked\" 2>/dev/null || echo 0); echo $((n + 1)) > \"$D/asked.tmp\"; mv \"$D/asked.tmp\" \"$D/asked\"\n"
	    "if [ \"$SSH_ASKPASS_PROMPT\" = confirm ]; then\n"
	    "  i=0; while [ ! -e \"$D/go\" ]; do sleep 0.05; i=$((i + 1)); [ $i -gt 1200 ] && exit 1; done\n"
	    "  [ \"$(cat \"$D/go\")\" = no ] && exit 1\n"
	    "  exit 0\n"
	    "fi\n"
	    "cat \"$D/pin\"\n",
	    g->dir);
	wfile(g->dir, "askpass.sh", s);
	snprintf(g->askpass, sizeof(g->askpass), "%s/askpass.sh", g->dir);
	ck_assert_int_eq(chmod(g->askpass, 0755), 0);
}

/*
 * SoftHSM 2.6 leaks two ASN1_STRINGs (the "edwards25519" curve name it
 * d2i's) in C_SignInit for every Ed25519 signature: theirs, not ours.  The
 * suppression names libsofthsm2.so only, so that a leak of our own through
 * OpenSSL still fails the test; that needs full stacks (the default fast
 * unwinder stops inside libcrypto, which has no frame pointers), hence
 * fast_unwind_on_malloc=0 in the agent's ASAN_OPTIONS.
 */
static void
write_lsan_supp(struct ag *g)
{
	wfile(g->dir, "lsan.supp", "leak:libsofthsm2.so\n");
}

static void
setup(struct ag *g, int ntok)
{
	static const char *labels[] = {"tokA", "tokB", "tokC", "tokD"};

	memset(g, 0, sizeof(*g));
	if (!cx_softhsm_available())
		ck_abort_msg("SoftHSM2 is not installed");
	g->dir = cx_test_tmpdir();
	ck_assert_int_eq(chmod(g->dir, 0700), 0);
	ck_assert_int_eq(cx_softhsm_setup(g->dir), 0);
	for (int i = 0; i < ntok; i++) {
		ck_assert_int_eq(cx_softhsm_init_token(labels[i], PIN), 0);
		serial_of(labels[i], g->serial[i]);
	}
	g->ntok = ntok;
	snprintf(g->sock, sizeof(g->sock), "%s/agent.sock", g->dir);
	snprintf(g->audit, sizeof(g->audit), "%s/audit.log", g->dir);
	snprintf(g->log, sizeof(g->log), "%s/agent.log", g->dir);
	write_askpass(g);
	write_lsan_supp(g);
	wfile(g->dir, "pin", PIN "\n");
}

/*
 * Starts the agent (-d: foreground, log to agent.log) as uid (-1: ours) and
 * waits for its CONEX_AGENT_PID line.  Extra arguments end with NULL.
 */
static void
start_as(struct ag *g, int uid, ...)
{
	char agent[1024], lsan[1200], asan[1200], *argv[40], line[512];
	int out[2], n = 0, st;
	const char *x;
	FILE *f;
	va_list ap;

	snprintf(agent, sizeof(agent), "%s/conex-agent", CX_BUILD_DIR);
	argv[n++] = agent;
	argv[n++] = "-d";
	argv[n++] = "-a";
	argv[n++] = g->sock;
	argv[n++] = "--audit";
	argv[n++] = g->audit;
	va_start(ap, uid);
	while ((x = va_arg(ap, const char *)) != NULL && n < 38)
		argv[n++] = (char *)x;
	va_end(ap);
	argv[n] = NULL;
	snprintf(lsan, sizeof(lsan), "suppressions=%s/lsan.supp:print_suppressions=0", g->dir);
	snprintf(asan, sizeof(asan), "%s%sfast_unwind_on_malloc=0",
	    getenv("ASAN_OPTIONS") != NULL ? getenv("ASAN_OPTIONS") : "",
	    getenv("ASAN_OPTIONS") != NULL ? ":" : "");

	ck_assert_int_eq(pipe(out), 0);
	g->pid = fork();
	ck_assert_int_ge(g->pid, 0);
	if (g->pid == 0) {
		int lf = open(g->log, O_WRONLY | O_CREAT | O_APPEND, 0666);
		dup2(out[1], 1);
		if (lf >= 0)
			dup2(lf, 2);
		close(out[0]);
		setenv("LSAN_OPTIONS", lsan, 1);
		setenv("ASAN_OPTIONS", asan, 1);
		if (uid >= 0) {
			if (setgroups(0, NULL) != 0 || setgid((gid_t)uid) != 0 ||
			    setuid((uid_t)uid) != 0)
				_exit(126);
			setenv("HOME", "/nonexistent", 1);
		}
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execv(agent, argv);
		_exit(127);
	}
	close(out[1]);
	ck_assert((f = fdopen(out[0], "r")) != NULL);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "CONEX_AGENT_PID=", 16) == 0)
			break;
	if (strncmp(line, "CONEX_AGENT_PID=", 16) != 0) {
		waitpid(g->pid, &st, 0);
		cx_test_sh("cat '%s' >&2", g->log);
		ck_abort_msg("the agent did not start (status %d)", st);
	}
	ck_assert_int_eq(atoi(line + 16), g->pid);
	fclose(f);
}

static void
start(struct ag *g, int with_module, ...)
{
	const char *mod = cx_softhsm_module();
	char askpass[600];

	snprintf(askpass, sizeof(askpass), "%s", g->askpass);
	(void)with_module;
	if (with_module)
		start_as(g, -1, "-P", mod, "-m", mod, "--askpass", askpass, NULL);
	else
		start_as(g, -1, "--askpass", askpass, NULL);
}

/* SIGTERM: the agent must exit 0 (and, under ASan, without leaks) and remove its socket. */
static void
stop(struct ag *g)
{
	int64_t end = now_ms() + 15000;
	int st = 0;
	pid_t r;

	if (g->pid <= 0)
		return;
	ck_assert_int_eq(kill(g->pid, SIGTERM), 0);
	while ((r = waitpid(g->pid, &st, WNOHANG)) == 0 && now_ms() < end)
		usleep(20000);
	if (r == 0) {
		kill(g->pid, SIGKILL);
		waitpid(g->pid, &st, 0);
		ck_abort_msg("the agent did not stop on SIGTERM");
	}
	g->pid = 0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		cx_test_sh("tail -50 '%s' >&2", g->log);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent exit status 0x%x", st);
	ck_assert_msg(access(g->sock, F_OK) != 0, "socket left behind");
}

static void
teardown(struct ag *g)
{
	stop(g);
	cx_test_rm_rf(g->dir);
	free(g->dir);
}

static struct cx_agent_conn *
conn(struct ag *g)
{
	struct cx_agent_conn *c = NULL;
	struct cx_err e = {0};

	ck_assert_msg(cx_agent_connect(g->sock, &c, &e) == 0, "connect: %s", e.msg);
	return c;
}

/* The to-be-signed bytes of a resource of type t named name, signed as id with alg. */
static void
tbs(enum cx_rtype t, const char *name, const char *id, enum cx_sigalg alg, int nfiles,
    struct cx_buf *out)
{
	struct cx_arena a;
	struct cx_resource *r;
	struct cx_buf c;
	char path[128];

	cx_arena_init(&a, 0);
	r = rb_new(&a, t, name, CREATED);
	if (t == CX_R_ROOT || t == CX_R_TARGETS) {
		struct cx_keyref ref = rb_local(id);
		r->valid = rb_quorum(&a, 1, &ref, 1);
		if (t == CX_R_ROOT)
			r->role_maintainer = r->role_snapshot = r->role_timestamp = r->valid;
	}
	for (int i = 0; i < nfiles; i++) {
		snprintf(path, sizeof(path), "packages/%s/%s.1.%d/opam", name, name, i);
		rb_add_target(&a, r, path, path, strlen(path));
	}
	cx_buf_init(&c, 0);
	cx_buf_init(out, 0);
	ck_assert_int_eq(cx_resource_canon(r, &c), 0);
	ck_assert_int_eq(cx_tbs(c.d, c.len, CREATED, id, alg, out), 0);
	cx_buf_free(&c);
	cx_arena_free(&a);
}

/* Checks sig twice: with conex/'s verifier and with plain OpenSSL EVP calls. */
static void
verify(const char *keystr, enum cx_sigalg alg, const struct cx_buf *msg, const uint8_t *sig,
    size_t siglen)
{
	struct cx_err e = {0};
	enum cx_keyalg ka;
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *md;

	ck_assert_msg(cx_pubkey_parse(keystr, strlen(keystr), &pk, &ka, &e) == 0, "%s", e.msg);
	ck_assert_msg(cx_sig_verify(pk, alg, msg->d, msg->len, sig, siglen, &e) == 0, "%s", e.msg);
	ck_assert((md = EVP_MD_CTX_new()) != NULL);
	if (alg == CX_SIG_ED25519) {
		ck_assert_int_eq(siglen, 64);
		ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk), 1);
	} else {
		ck_assert_int_eq(EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pk), 1);
		ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
		ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
	}
	ck_assert_int_eq(EVP_DigestVerify(md, sig, siglen, msg->d, msg->len), 1);
	/* and a changed message must fail */
	msg->d[msg->len / 2] ^= 1;
	ck_assert(cx_sig_verify(pk, alg, msg->d, msg->len, sig, siglen, &e) != 0);
	msg->d[msg->len / 2] ^= 1;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
}

static struct cx_msg_key *
generate(struct cx_agent_conn *c, const char *serial, const char *id, uint8_t alg, uint32_t bits)
{
	struct cx_msg_key *k = NULL;
	struct cx_err e = {0};

	ck_assert_msg(
	    cx_agent_generate(c, serial, id, alg, bits, &k, &e) == 0, "generate %s: %s", id, e.msg);
	ck_assert_str_eq(k->id, id);
	ck_assert_str_eq(k->token_serial, serial);
	ck_assert(k->state & CX_KEY_HARDWARE);
	return k;
}

static void
login(struct cx_agent_conn *c, const char *serial)
{
	struct cx_err e = {0};

	ck_assert_msg(
	    cx_agent_token_login(c, serial, PIN, strlen(PIN), 0, &e) == 0, "login: %s", e.msg);
}

/* Signs; returns 0 or the agent's error code. */
static uint32_t
sign(struct cx_agent_conn *c, const uint8_t keyid[32], uint8_t sigalg, const struct cx_buf *m,
    struct cx_buf *sig, char *msg, size_t msglen)
{
	struct cx_err e = {0};
	int r;

	cx_buf_reset(sig);
	r = cx_agent_sign(c, keyid, sigalg, m->d, m->len, sig, &e);
	if (msg != NULL)
		snprintf(msg, msglen, "%s", e.msg);
	if (r == 0)
		return 0;
	ck_assert_msg(r == CX_EAGENT, "sign: transport failure: %s", e.msg);
	return cx_agent_last_error(c);
}

static int
grep_file(const char *path, const char *needle)
{
	uint8_t *b;
	size_t n;
	int r;

	if ((b = cx_test_read(path, &n)) == NULL)
		return 0;
	r = strstr((char *)b, needle) != NULL;
	free(b);
	return r;
}

/* ---- raw frames ---- */

static int
raw_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static void
raw_send(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;
	ssize_t w;

	while (n > 0) {
		w = send(fd, q, n, MSG_NOSIGNAL);
		ck_assert_msg(w > 0, "send: %s", strerror(errno));
		q += w;
		n -= (size_t)w;
	}
}

/* Reads n bytes; the count read (less at EOF), -1 on error or after timeout_ms. */
static ssize_t
raw_read(int fd, uint8_t *p, size_t n, int timeout_ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		if (poll(&pfd, 1, timeout_ms) != 1)
			return -1;
		r = read(fd, p + got, n - got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECONNRESET)
				return (ssize_t)got;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/*
 * One answer frame: 1 and m decoded (strings in scratch), 0 at EOF.  The
 * whole frame is appended to capture if non-NULL.
 */
static int
raw_answer(int fd, struct cx_msg *m, struct cx_buf *scratch, struct cx_buf *capture)
{
	uint8_t hdr[CX_PROTO_HDR], *body = NULL;
	struct cx_err e = {0};
	uint32_t len;
	uint8_t type;
	ssize_t r;

	r = raw_read(fd, hdr, sizeof(hdr), 10000);
	ck_assert_msg(r >= 0, "no answer");
	if (r == 0)
		return 0;
	ck_assert_int_eq(r, CX_PROTO_HDR);
	ck_assert_int_eq(cx_frame_header(hdr, &len, &type), 0);
	if (len > 0) {
		ck_assert((body = malloc(len)) != NULL);
		ck_assert_int_eq(raw_read(fd, body, len, 10000), (ssize_t)len);
	}
	if (capture != NULL) {
		cx_buf_put(capture, hdr, sizeof(hdr));
		cx_buf_put(capture, body, len);
	}
	ck_assert_msg(cx_msg_decode(type, body, len, m, scratch, NULL, 0, &e) == 0, "%s", e.msg);
	free(body);
	return 1;
}

static void
raw_req(int fd, const struct cx_msg *rq, struct cx_msg *m, struct cx_buf *scratch,
    struct cx_buf *capture)
{
	struct cx_buf out;

	cx_buf_init(&out, 0);
	ck_assert_int_eq(cx_msg_encode(rq, &out), 0);
	raw_send(fd, out.d, out.len);
	cx_buf_free_wipe(&out);
	ck_assert_int_eq(raw_answer(fd, m, scratch, capture), 1);
}

/* The next thing on fd is ERROR code and then the end of the stream. */
static void
expect_error_then_eof(int fd, uint32_t code)
{
	struct cx_buf scratch;
	struct cx_msg m;
	uint8_t b;

	cx_buf_init(&scratch, 0);
	ck_assert_int_eq(raw_answer(fd, &m, &scratch, NULL), 1);
	ck_assert_int_eq(m.type, CX_MSG_ERROR);
	ck_assert_msg(m.u.error.code == code, "error %u (%s), want %u", m.u.error.code,
	    m.u.error.message, code);
	ck_assert_int_eq(raw_read(fd, &b, 1, 5000), 0);
	cx_buf_free(&scratch);
}

/* ---- tests ---- */

/*
 * Keys generated through the agent on a token sign conex data, verified by
 * conex/ and by OpenSSL; they are CKA_SENSITIVE and not extractable; the
 * policy refuses what the key may not sign; the audit chain holds and an
 * edited line is found.
 */
START_TEST(test_sign_and_policy)
{
	struct ag g;
	struct cx_agent_conn *c;
	struct cx_msg_key *ed, *rsa, *ec;
	struct cx_buf m, sig;
	struct cx_policy p;
	struct cx_err e = {0};
	char msg[1024];
	uint64_t nlines;
	int64_t t0;

	setup(&g, 1);
	start(&g, 1, NULL);
	c = conn(&g);
	login(c, g.serial[0]);
	ed = generate(c, g.serial[0], "m1", CX_MKEY_ED25519, 0);
	rsa = generate(c, g.serial[0], "r1", CX_MKEY_RSA, 2048);
	ec = generate(c, g.serial[0], "e1", CX_MKEY_ECDSA_P256, 0);
	ck_assert_int_eq(ed->keyalg, CX_MKEY_ED25519);
	ck_assert_int_eq(rsa->keyalg, CX_MKEY_RSA);
	ck_assert_int_eq(ec->keyalg, CX_MKEY_ECDSA_P256);
	cx_buf_init(&sig, 0);

	tbs(CX_R_TARGETS, "m1", "m1", CX_SIG_ED25519, 3, &m);
	ck_assert_int_eq(sign(c, ed->keyid, CX_MSIG_ED25519, &m, &sig, msg, sizeof(msg)), 0);
	verify(ed->keystr, CX_SIG_ED25519, &m, sig.d, sig.len);
	/* the client's poll for the answer (cx_agent_set_spin) off, then on for ever: the same */
	cx_agent_set_spin(c, 0);
	ck_assert_int_eq(sign(c, ed->keyid, CX_MSIG_ED25519, &m, &sig, msg, sizeof(msg)), 0);
	verify(ed->keystr, CX_SIG_ED25519, &m, sig.d, sig.len);
	cx_agent_set_spin(c, 60 * 1000 * 1000);
	ck_assert_int_eq(sign(c, ed->keyid, CX_MSIG_ED25519, &m, &sig, msg, sizeof(msg)), 0);
	verify(ed->keystr, CX_SIG_ED25519, &m, sig.d, sig.len);
	cx_agent_set_spin(c, CX_AGENT_SPIN_US);
	cx_buf_free(&m);

	tbs(CX_R_ROOT, "root", "r1", CX_SIG_RSAPSS_SHA256, 0, &m);
	ck_assert_int_eq(sign(c, rsa->keyid, CX_MSIG_RSAPSS_SHA256, &m, &sig, msg, sizeof(msg)), 0);
	ck_assert_int_eq(sig.len, 256);
	verify(rsa->keystr, CX_SIG_RSAPSS_SHA256, &m, sig.d, sig.len);
	/* the wrong algorithm for the key */
	ck_assert_int_eq(
	    sign(c, rsa->keyid, CX_MSIG_ED25519, &m, &sig, msg, sizeof(msg)), CX_AERR_REFUSED);
	cx_buf_free(&m);

	/* ECDSA: conex has no ECDSA signature type, so no conex data can be signed with e1 */
	tbs(CX_R_TARGETS, "e1", "e1", CX_SIG_ED25519, 1, &m);
	ck_assert_int_eq(sign(c, ec->keyid, CX_MSIG_ECDSA_P256_SHA256, &m, &sig, msg, sizeof(msg)),
	    CX_AERR_REFUSED);
	cx_buf_free(&m);

	/* a purpose the key lacks */
	memset(&p, 0, sizeof(p));
	p.types = CX_POLICY_TARGETS;
	ck_assert_int_eq(cx_agent_set_policy(c, ed->keyid, &p, &e), 0);
	tbs(CX_R_SNAPSHOT, "snap", "m1", CX_SIG_ED25519, 2, &m);
	ck_assert_int_eq(
	    sign(c, ed->keyid, CX_MSIG_ED25519, &m, &sig, msg, sizeof(msg)), CX_AERR_REFUSED);
	ck_assert_msg(strstr(msg, "may not sign snapshot") != NULL, "%s", msg);
	cx_buf_free(&m);
	/* signed as someone else */
	tbs(CX_R_TARGETS, "m2", "m2", CX_SIG_ED25519, 1, &m);
	ck_assert_int_eq(
	    sign(c, ed->keyid, CX_MSIG_ED25519, &m, &sig, msg, sizeof(msg)), CX_AERR_REFUSED);
	cx_buf_free(&m);
	/* not conex data at all */
	cx_buf_init(&m, 0);
	cx_buf_put_str(&m, "please sign this");
	ck_assert_int_eq(
	    sign(c, ed->keyid, CX_MSIG_ED25519, &m, &sig, msg, sizeof(msg)), CX_AERR_REFUSED);
	ck_assert_msg(strstr(msg, "not conex data") != NULL, "%s", msg);
	cx_buf_free(&m);
	/* unknown key */
	{
		uint8_t nokey[32] = {1};
		tbs(CX_R_TARGETS, "m1", "m1", CX_SIG_ED25519, 1, &m);
		ck_assert_int_eq(sign(c, nokey, CX_MSIG_ED25519, &m, &sig, msg, sizeof(msg)),
		    CX_AERR_NO_SUCH_KEY);
		cx_buf_free(&m);
	}
	/* signature budget */
	p.types = CX_POLICY_ALL;
	p.max_sigs = 4; /* three made already */
	ck_assert_int_eq(cx_agent_set_policy(c, ed->keyid, &p, &e), 0);
	tbs(CX_R_TARGETS, "m1", "m1", CX_SIG_ED25519, 1, &m);
	ck_assert_int_eq(sign(c, ed->keyid, CX_MSIG_ED25519, &m, &sig, msg, sizeof(msg)), 0);
	ck_assert_int_eq(
	    sign(c, ed->keyid, CX_MSIG_ED25519, &m, &sig, msg, sizeof(msg)), CX_AERR_REFUSED);
	cx_buf_free(&m);

	cx_agent_keys_free(ed);
	cx_agent_keys_free(rsa);
	cx_agent_keys_free(ec);
	cx_buf_free(&sig);
	cx_agent_close(c);
	stop(&g);

	/* the keys on the token, seen by the token layer with the agent gone */
	{
		const char *allow[] = {cx_softhsm_module()};
		struct cx_p11_module *mod;
		struct cx_p11_token *t = NULL;
		struct cx_p11_key *keys;
		unsigned long *slots;
		size_t ns, nk, i;

		ck_assert_msg(cx_p11_module_load(allow[0], allow, 1, &mod, &e) == 0, "%s", e.msg);
		ck_assert_int_eq(cx_p11_slots(mod, &slots, &ns, &e), 0);
		for (i = 0; i < ns && t == NULL; i++) {
			struct cx_p11_token_info ti;
			if (cx_p11_token_info(mod, slots[i], &ti, &e) == 0 &&
			    strcmp(ti.serial, g.serial[0]) == 0)
				ck_assert_int_eq(cx_p11_token_open(mod, slots[i], &t, &e), 0);
		}
		ck_assert(t != NULL);
		ck_assert_int_eq(cx_p11_token_login(t, PIN, strlen(PIN), 0, &e), 0);
		ck_assert_int_eq(cx_p11_token_keys(t, &keys, &nk, &e), 0);
		ck_assert_int_eq(nk, 3);
		for (i = 0; i < nk; i++) {
			ck_assert_msg(keys[i].sensitive, "%s not CKA_SENSITIVE", keys[i].label);
			ck_assert_msg(!keys[i].extractable, "%s extractable", keys[i].label);
		}
		cx_p11_keys_free(keys, nk);
		cx_p11_token_close(t);
		free(slots);
		cx_p11_module_unload(mod);
	}

	/* the audit chain: intact, then an edited line is found */
	ck_assert_msg(cx_audit_verify(g.audit, &nlines, &e) == 0, "%s", e.msg);
	ck_assert_uint_ge(nlines, 10);
	ck_assert(grep_file(g.audit, "\"op\":\"sign\""));
	/* refusals are written by the audit syncer, after whatever sync it is in */
	t0 = now_ms();
	while (!grep_file(g.audit, "\"result\":\"refused\"") && now_ms() - t0 < 10000)
		usleep(10000);
	ck_assert(grep_file(g.audit, "\"result\":\"refused\""));
	ck_assert_int_eq(cx_test_sh("sed -i '3s/\"uid\":0/\"uid\":1/' '%s'", g.audit), 0);
	ck_assert_int_ne(cx_audit_verify(g.audit, &nlines, &e), 0);
	ck_assert_msg(strstr(e.msg, "4") != NULL, "the break should be named at line 4: %s", e.msg);
	teardown(&g);
}
END_TEST

/* A wrong PIN: PIN_INCORRECT, asked for once and never retried; the right one still works. */
START_TEST(test_wrong_pin)
{
	struct ag g;
	struct cx_agent_conn *c;
	struct cx_msg_key *k;
	struct cx_err e = {0};

	setup(&g, 1);
	start(&g, 1, NULL);
	c = conn(&g);
	ck_assert_int_eq(cx_agent_token_login(c, g.serial[0], "9999", 4, 0, &e), CX_EAGENT);
	ck_assert_uint_eq(cx_agent_last_error(c), CX_AERR_PIN_INCORRECT);
	ck_assert_msg(cx_agent_last_detail(c) == 0xFFFFFFFFu || cx_agent_last_detail(c) < 16,
	    "detail %u", cx_agent_last_detail(c));
	/* a login the agent needs itself asks askpass once; a wrong answer ends it */
	wfile(g.dir, "pin", "0000\n");
	ck_assert_int_eq(
	    cx_agent_generate(c, g.serial[0], "m1", CX_MKEY_ED25519, 0, &k, &e), CX_EAGENT);
	ck_assert_uint_eq(cx_agent_last_error(c), CX_AERR_PIN_INCORRECT);
	ck_assert_int_eq(read_int(g.dir, "asked"), 1);
	/* the right PIN from askpass; then from the client */
	wfile(g.dir, "pin", PIN "\n");
	k = generate(c, g.serial[0], "m1", CX_MKEY_ED25519, 0);
	ck_assert_int_eq(read_int(g.dir, "asked"), 2);
	{
		char p[1024];
		uint8_t *b;
		size_t n;
		snprintf(p, sizeof(p), "%s/prompts", g.dir);
		ck_assert((b = cx_test_read(p, &n)) != NULL);
		ck_assert_msg(
		    strstr((char *)b, g.serial[0]) != NULL, "prompt names the token: %s", b);
		free(b);
	}
	cx_agent_keys_free(k);
	login(c, g.serial[0]);
	cx_agent_close(c);
	stop(&g);

	/* without askpass: PIN_REQUIRED; and a policy file's default for token keys */
	wfile(g.dir, "policy", "# test\ndefault types=targets,snapshot max-sigs=7\n");
	{
		char pol[600];
		snprintf(pol, sizeof(pol), "%s/policy", g.dir);
		start_as(
		    &g, -1, "-P", cx_softhsm_module(), "-m", cx_softhsm_module(), "-c", pol, NULL);
	}
	c = conn(&g);
	ck_assert_int_eq(
	    cx_agent_generate(c, g.serial[0], "m2", CX_MKEY_ED25519, 0, &k, &e), CX_EAGENT);
	ck_assert_uint_eq(cx_agent_last_error(c), CX_AERR_PIN_REQUIRED);
	login(c, g.serial[0]);
	k = generate(c, g.serial[0], "m2", CX_MKEY_ED25519, 0);
	ck_assert_uint_eq(k->policy.types, CX_POLICY_TARGETS | CX_POLICY_SNAPSHOT);
	ck_assert_uint_eq(k->policy.max_sigs, 7);
	ck_assert_int_eq(k->policy.confirm, 0);
	cx_agent_keys_free(k);
	ck_assert_int_eq(cx_agent_token_login(c, "no-such-serial", PIN, 4, 0, &e), CX_EAGENT);
	ck_assert_uint_eq(cx_agent_last_error(c), CX_AERR_TOKEN_ABSENT);
	cx_agent_close(c);
	teardown(&g);
}
END_TEST

struct pending {
	struct ag *g;
	uint8_t keyid[32];
	struct cx_buf *m;
	uint32_t rc;
	struct cx_buf sig;
};

static void *
pending_sign(void *arg)
{
	struct pending *p = arg;
	struct cx_agent_conn *c = conn(p->g);

	cx_buf_init(&p->sig, 0);
	p->rc = sign(c, p->keyid, CX_MSIG_ED25519, p->m, &p->sig, NULL, 0);
	cx_agent_close(c);
	return NULL;
}

/*
 * Two tokens: one waits on a confirmation, the other signs meanwhile; LIST
 * answers; the confirmation shows the summary; a client killed while its
 * confirmation is pending leaves the agent fine and its signature unmade.
 */
START_TEST(test_two_tokens_confirm)
{
	struct ag g;
	struct cx_agent_conn *c;
	struct cx_msg_key *k1, *k2, *keys;
	struct cx_buf m1, m2, sig;
	struct cx_policy p;
	struct cx_err e = {0};
	struct pending pd;
	pthread_t th;
	int64_t t0;
	size_t n;
	pid_t kid;
	char prompts[1024];

	setup(&g, 2);
	start(&g, 1, NULL);
	c = conn(&g);
	login(c, g.serial[0]);
	login(c, g.serial[1]);
	k1 = generate(c, g.serial[0], "m1", CX_MKEY_ED25519, 0);
	k2 = generate(c, g.serial[1], "m2", CX_MKEY_ED25519, 0);
	memset(&p, 0, sizeof(p));
	p.types = CX_POLICY_ALL;
	p.confirm = 1;
	ck_assert_int_eq(cx_agent_set_policy(c, k1->keyid, &p, &e), 0);
	tbs(CX_R_TARGETS, "m1", "m1", CX_SIG_ED25519, 3, &m1);
	tbs(CX_R_TARGETS, "m2", "m2", CX_SIG_ED25519, 1, &m2);
	cx_buf_init(&sig, 0);

	memset(&pd, 0, sizeof(pd));
	pd.g = &g;
	memcpy(pd.keyid, k1->keyid, 32);
	pd.m = &m1;
	ck_assert_int_eq(pthread_create(&th, NULL, pending_sign, &pd), 0);
	wait_count(g.dir, "asked", 1);
	/* token A is held by the confirmation: B signs, LIST answers, at once */
	t0 = now_ms();
	ck_assert_int_eq(sign(c, k2->keyid, CX_MSIG_ED25519, &m2, &sig, NULL, 0), 0);
	verify(k2->keystr, CX_SIG_ED25519, &m2, sig.d, sig.len);
	ck_assert_int_eq(cx_agent_list(c, &keys, &n, &e), 0);
	ck_assert_int_eq(n, 2);
	cx_agent_keys_free(keys);
	ck_assert_msg(
	    now_ms() - t0 < 2000, "other token waited %lld ms", (long long)(now_ms() - t0));
	wfile(g.dir, "go", "yes\n");
	pthread_join(th, NULL);
	ck_assert_int_eq(pd.rc, 0);
	verify(k1->keystr, CX_SIG_ED25519, &m1, pd.sig.d, pd.sig.len);
	cx_buf_free(&pd.sig);
	snprintf(prompts, sizeof(prompts), "%s/prompts", g.dir);
	ck_assert_msg(
	    grep_file(prompts, "Allow m1 to sign targets m1, counter 0x0, 3 files"), "prompt");

	/* declined */
	wfile(g.dir, "go", "no\n");
	ck_assert_int_eq(sign(c, k1->keyid, CX_MSIG_ED25519, &m1, &sig, NULL, 0), CX_AERR_DECLINED);
	unlink(prompts);

	/* a client killed while its confirmation is pending */
	cx_test_sh("rm -f '%s/go'", g.dir);
	kid = fork();
	ck_assert_int_ge(kid, 0);
	if (kid == 0) {
		struct cx_agent_conn *kc = conn(&g);
		struct cx_buf s;
		cx_buf_init(&s, 0);
		sign(kc, k1->keyid, CX_MSIG_ED25519, &m1, &s, NULL, 0);
		_exit(0);
	}
	wait_count(g.dir, "asked", 3);
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	ck_assert_int_eq(sign(c, k2->keyid, CX_MSIG_ED25519, &m2, &sig, NULL, 0), 0);
	wfile(g.dir, "go", "yes\n");
	t0 = now_ms();
	while (!grep_file(g.audit, "\"result\":\"cancelled\"") && now_ms() - t0 < 10000)
		usleep(20000);
	ck_assert_msg(
	    grep_file(g.audit, "\"result\":\"cancelled\""), "no cancelled sign in the audit");
	/* and token A works again */
	ck_assert_int_eq(sign(c, k1->keyid, CX_MSIG_ED25519, &m1, &sig, NULL, 0), 0);
	verify(k1->keystr, CX_SIG_ED25519, &m1, sig.d, sig.len);

	cx_buf_free(&m1);
	cx_buf_free(&m2);
	cx_buf_free(&sig);
	cx_agent_keys_free(k1);
	cx_agent_keys_free(k2);
	cx_agent_close(c);
	teardown(&g);
}
END_TEST

static void
soft_key(enum cx_keyalg alg, EVP_PKEY **pk, struct cx_buf *pem, char *keystr, size_t kslen)
{
	struct cx_err e = {0};
	struct cx_buf ks;

	ck_assert_int_eq(cx_privkey_generate(alg, 2048, pk, &e), 0);
	cx_buf_init(pem, 0);
	ck_assert_int_eq(cx_privkey_pem(*pk, pem, &e), 0);
	cx_buf_init(&ks, 0);
	ck_assert_int_eq(cx_pubkey_string(*pk, &ks, &e), 0);
	ck_assert_uint_lt(ks.len, kslen);
	memcpy(keystr, ks.d, ks.len);
	keystr[ks.len] = '\0';
	cx_buf_free(&ks);
}

/* Lock: every request but QUERY and UNLOCK refused; wrong unlock earns a back-off. */
START_TEST(test_lock)
{
	struct ag g;
	struct cx_agent_conn *c;
	struct cx_msg_key *keys;
	struct cx_buf pem, m, sig;
	struct cx_err e = {0};
	EVP_PKEY *pk;
	char keystr[4096];
	uint8_t keyid[32];
	uint32_t wait;
	size_t n;

	setup(&g, 0);
	start(&g, 0, NULL);
	c = conn(&g);
	soft_key(CX_KEY_ED25519, &pk, &pem, keystr, sizeof(keystr));
	cx_keyid(keystr, strlen(keystr), keyid);
	ck_assert_msg(cx_agent_add_key(c, "m1", pem.d, pem.len, NULL, &e) == 0, "%s", e.msg);
	tbs(CX_R_TARGETS, "m1", "m1", CX_SIG_ED25519, 1, &m);
	cx_buf_init(&sig, 0);
	ck_assert_int_eq(sign(c, keyid, CX_MSIG_ED25519, &m, &sig, NULL, 0), 0);
	verify(keystr, CX_SIG_ED25519, &m, sig.d, sig.len);

	ck_assert_int_eq(cx_agent_lock(c, "sesame", 6, &e), 0);
	ck_assert_int_eq(sign(c, keyid, CX_MSIG_ED25519, &m, &sig, NULL, 0), CX_AERR_AGENT_LOCKED);
	ck_assert_int_eq(cx_agent_list(c, &keys, &n, &e), CX_EAGENT);
	ck_assert_uint_eq(cx_agent_last_error(c), CX_AERR_AGENT_LOCKED);
	ck_assert_int_eq(cx_agent_lock(c, "other", 5, &e), CX_EAGENT);
	cx_agent_close(c);
	c = conn(&g); /* QUERY still answers */
	ck_assert_int_eq(cx_agent_unlock(c, "wrong", 5, &e), CX_EAGENT);
	ck_assert_uint_eq(cx_agent_last_error(c), CX_AERR_AGENT_LOCKED);
	ck_assert_uint_ge(cx_agent_last_detail(c), 1);
	/* backing off: even the right password is refused, with the wait */
	ck_assert_int_eq(cx_agent_unlock(c, "sesame", 6, &e), CX_EAGENT);
	ck_assert_uint_eq(cx_agent_last_error(c), CX_AERR_AGENT_LOCKED);
	wait = cx_agent_last_detail(c);
	ck_assert_uint_ge(wait, 1);
	ck_assert_int_eq(sign(c, keyid, CX_MSIG_ED25519, &m, &sig, NULL, 0), CX_AERR_AGENT_LOCKED);
	sleep(wait + 1);
	ck_assert_msg(cx_agent_unlock(c, "sesame", 6, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(sign(c, keyid, CX_MSIG_ED25519, &m, &sig, NULL, 0), 0);
	ck_assert(grep_file(g.audit, "\"op\":\"lock\""));
	ck_assert(grep_file(g.audit, "\"op\":\"unlock\""));

	EVP_PKEY_free(pk);
	cx_buf_free_wipe(&pem);
	cx_buf_free(&m);
	cx_buf_free(&sig);
	cx_agent_close(c);
	teardown(&g);
}
END_TEST

/* Oversize, truncated and malformed frames: error, that connection closed, the others fine. */
START_TEST(test_bad_frames)
{
	struct ag g;
	struct cx_agent_conn *c;
	struct cx_msg_key *keys;
	struct cx_buf scratch, big;
	struct cx_msg m, rq;
	struct cx_err e = {0};
	uint8_t f[64];
	size_t n;
	int fd;

	setup(&g, 0);
	start(&g, 0, NULL);
	c = conn(&g);
	cx_buf_init(&scratch, 0);

	/* oversize: refused from the header alone */
	ck_assert((fd = raw_connect(g.sock)) >= 0);
	f[0] = 0x00, f[1] = 0x04, f[2] = 0x00, f[3] = 0x01, f[4] = CX_MSG_LIST; /* 256 KiB + 1 */
	raw_send(fd, f, 5);
	expect_error_then_eof(fd, CX_AERR_BAD_REQUEST);
	close(fd);
	ck_assert((fd = raw_connect(g.sock)) >= 0);
	f[0] = 0x04, f[1] = 0x00, f[2] = 0x00, f[3] = 0x01, f[4] = CX_MSG_SIGN; /* 64 MiB + 1 */
	raw_send(fd, f, 5);
	expect_error_then_eof(fd, CX_AERR_BAD_REQUEST);
	close(fd);
	ck_assert_int_eq(cx_agent_list(c, &keys, &n, &e), 0);
	cx_agent_keys_free(keys);

	/*
	 * Large SIGN frames announced at once share a budget of 256 MiB: four
	 * of 64 MiB are read (as their bytes come), a fifth is refused, and
	 * when one goes its share is free again.  Announcing costs the agent
	 * nothing: a body is allocated only as it arrives.
	 */
	{
		int big4[4];
		for (int i = 0; i < 4; i++) {
			ck_assert((big4[i] = raw_connect(g.sock)) >= 0);
			f[0] = 0x04, f[1] = 0x00, f[2] = 0x00, f[3] = 0x00, f[4] = CX_MSG_SIGN;
			raw_send(big4[i], f, 5);
		}
		ck_assert_int_eq(cx_agent_list(c, &keys, &n, &e), 0); /* the agent has read them */
		cx_agent_keys_free(keys);
		ck_assert((fd = raw_connect(g.sock)) >= 0);
		raw_send(fd, f, 5);
		expect_error_then_eof(fd, CX_AERR_BAD_REQUEST);
		close(fd);
		close(big4[0]);
		ck_assert_int_eq(cx_agent_list(c, &keys, &n, &e), 0); /* and seen one go */
		cx_agent_keys_free(keys);
		ck_assert((fd = raw_connect(g.sock)) >= 0);
		raw_send(fd, f, 5);
		ck_assert_int_eq(cx_agent_list(c, &keys, &n, &e), 0);
		cx_agent_keys_free(keys);
		close(fd);
		for (int i = 1; i < 4; i++)
			close(big4[i]);
	}
	ck_assert_int_eq(cx_agent_list(c, &keys, &n, &e), 0);

	/* 0xffffffff */
	ck_assert((fd = raw_connect(g.sock)) >= 0);
	memset(f, 0xff, 4);
	f[4] = CX_MSG_LIST;
	raw_send(fd, f, 5);
	expect_error_then_eof(fd, CX_AERR_BAD_REQUEST);
	close(fd);

	/* truncated: the stream ends mid-frame */
	ck_assert((fd = raw_connect(g.sock)) >= 0);
	f[0] = 0, f[1] = 0, f[2] = 0, f[3] = 100, f[4] = CX_MSG_SIGN;
	raw_send(fd, f, 5);
	raw_send(fd, f, 10);
	shutdown(fd, SHUT_WR);
	expect_error_then_eof(fd, CX_AERR_BAD_REQUEST);
	close(fd);

	/* truncated inside the header */
	ck_assert((fd = raw_connect(g.sock)) >= 0);
	raw_send(fd, f, 3);
	shutdown(fd, SHUT_WR);
	expect_error_then_eof(fd, CX_AERR_BAD_REQUEST);
	close(fd);

	/* malformed: a SIGN whose data length runs past the body */
	ck_assert((fd = raw_connect(g.sock)) >= 0);
	memset(f, 0, sizeof(f));
	f[3] = 1 + 32 + 1 + 4 + 2; /* type, keyid, sigalg, u32 len, 2 bytes */
	f[4] = CX_MSG_SIGN;
	f[5 + 32] = CX_MSIG_ED25519;
	f[5 + 33 + 3] = 200; /* claims 200 bytes */
	raw_send(fd, f, 5 + 32 + 1 + 4 + 2);
	expect_error_then_eof(fd, CX_AERR_BAD_REQUEST);
	close(fd);

	/* zero length */
	ck_assert((fd = raw_connect(g.sock)) >= 0);
	memset(f, 0, 5);
	raw_send(fd, f, 5);
	expect_error_then_eof(fd, CX_AERR_BAD_REQUEST);
	close(fd);

	/* trailing bytes after a LIST */
	ck_assert((fd = raw_connect(g.sock)) >= 0);
	f[0] = 0, f[1] = 0, f[2] = 0, f[3] = 4, f[4] = CX_MSG_LIST, f[5] = f[6] = f[7] = 'x';
	raw_send(fd, f, 8);
	expect_error_then_eof(fd, CX_AERR_BAD_REQUEST);
	close(fd);

	/* an answer type sent as a request */
	ck_assert((fd = raw_connect(g.sock)) >= 0);
	f[0] = 0, f[1] = 0, f[2] = 0, f[3] = 1, f[4] = CX_MSG_OK;
	raw_send(fd, f, 5);
	expect_error_then_eof(fd, CX_AERR_BAD_REQUEST);
	close(fd);

	/* an unknown request type is UNSUPPORTED, and the connection goes on */
	ck_assert((fd = raw_connect(g.sock)) >= 0);
	f[0] = 0, f[1] = 0, f[2] = 0, f[3] = 1, f[4] = 99;
	raw_send(fd, f, 5);
	ck_assert_int_eq(raw_answer(fd, &m, &scratch, NULL), 1);
	ck_assert_int_eq(m.type, CX_MSG_ERROR);
	ck_assert_uint_eq(m.u.error.code, CX_AERR_UNSUPPORTED);
	/* two QUERYs in one write: two answers, in order */
	memset(&rq, 0, sizeof(rq));
	rq.type = CX_MSG_QUERY;
	rq.u.query.version = CX_PROTO_VERSION;
	{
		struct cx_buf two;
		cx_buf_init(&two, 0);
		cx_msg_encode(&rq, &two);
		cx_msg_encode(&rq, &two);
		raw_send(fd, two.d, two.len);
		cx_buf_free(&two);
	}
	ck_assert_int_eq(raw_answer(fd, &m, &scratch, NULL), 1);
	ck_assert_int_eq(m.type, CX_MSG_VERSION);
	ck_assert_int_eq(raw_answer(fd, &m, &scratch, NULL), 1);
	ck_assert_int_eq(m.type, CX_MSG_VERSION);
	/* a big but legal frame that is not conex data: refused, connection kept */
	cx_buf_init(&big, 0);
	for (size_t i = 0; i < 200000; i++)
		cx_buf_put_u8(&big, 'a');
	memset(&rq, 0, sizeof(rq));
	rq.type = CX_MSG_SIGN;
	rq.u.sign.sigalg = CX_MSIG_ED25519;
	rq.u.sign.data = big.d;
	rq.u.sign.datalen = big.len;
	raw_req(fd, &rq, &m, &scratch, NULL);
	ck_assert_int_eq(m.type, CX_MSG_ERROR);
	ck_assert_uint_eq(m.u.error.code, CX_AERR_NO_SUCH_KEY);
	cx_buf_free(&big);
	memset(&rq, 0, sizeof(rq));
	rq.type = CX_MSG_LIST;
	raw_req(fd, &rq, &m, &scratch, NULL);
	ck_assert_int_eq(m.type, CX_MSG_KEYS);
	close(fd);

	/* the first client never noticed */
	ck_assert_int_eq(cx_agent_list(c, &keys, &n, &e), 0);
	ck_assert_int_eq(n, 0);
	ck_assert(grep_file(g.log, "exceeds the limit"));
	cx_buf_free(&scratch);
	cx_agent_close(c);
	teardown(&g);
}
END_TEST

/* Does any window of w bytes of secret appear in hay? */
static int
leaks(const struct cx_buf *hay, const uint8_t *secret, size_t n, size_t w)
{
	for (size_t i = 0; i + w <= n; i++)
		if (memmem(hay->d, hay->len, secret + i, w) != NULL)
			return 1;
	return 0;
}

/* No answer ever carries private key bytes: every answer frame is captured and searched. */
START_TEST(test_no_private_bytes)
{
	struct ag g;
	struct cx_buf scratch, cap, pem_ed, pem_rsa, m;
	struct cx_msg rq, a;
	EVP_PKEY *ed, *rsa;
	BIGNUM *bn[3] = {NULL, NULL, NULL};
	const char *names[3] = {
	    OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_RSA_FACTOR2};
	uint8_t seed[32], kid_ed[32], kid_rsa[32], buf[512];
	size_t seedlen = sizeof(seed);
	char ks_ed[4096], ks_rsa[4096];
	int fd, i;

	setup(&g, 0);
	start(&g, 0, NULL);
	soft_key(CX_KEY_ED25519, &ed, &pem_ed, ks_ed, sizeof(ks_ed));
	soft_key(CX_KEY_RSA, &rsa, &pem_rsa, ks_rsa, sizeof(ks_rsa));
	ck_assert_int_eq(EVP_PKEY_get_raw_private_key(ed, seed, &seedlen), 1);
	cx_keyid(ks_ed, strlen(ks_ed), kid_ed);
	cx_keyid(ks_rsa, strlen(ks_rsa), kid_rsa);
	cx_buf_init(&scratch, 0);
	cx_buf_init(&cap, 0);
	ck_assert((fd = raw_connect(g.sock)) >= 0);

	memset(&rq, 0, sizeof(rq));
	rq.type = CX_MSG_QUERY;
	rq.u.query.version = CX_PROTO_VERSION;
	raw_req(fd, &rq, &a, &scratch, &cap);
	/* bad adds first: their error messages must not quote the key */
	memset(&rq, 0, sizeof(rq));
	rq.type = CX_MSG_ADD_KEY;
	rq.u.add_key.id = "m1";
	rq.u.add_key.pem = (const char *)pem_ed.d;
	rq.u.add_key.pemlen = pem_ed.len / 2;
	rq.u.add_key.policy.types = CX_POLICY_ALL;
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_ERROR);
	rq.u.add_key.id = "";
	rq.u.add_key.pemlen = pem_ed.len;
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_ERROR);
	rq.u.add_key.id = "m1";
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_OK);
	rq.u.add_key.id = "r1";
	rq.u.add_key.pem = (const char *)pem_rsa.d;
	rq.u.add_key.pemlen = pem_rsa.len;
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_OK);
	/* the same again: replaced */
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_OK);

	memset(&rq, 0, sizeof(rq));
	rq.type = CX_MSG_LIST;
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_KEYS);
	ck_assert_int_eq(a.u.keys.n, 2);
	ck_assert(a.u.keys.v[0].state & CX_KEY_PRESENT);
	ck_assert(!(a.u.keys.v[0].state & CX_KEY_HARDWARE));

	tbs(CX_R_TARGETS, "m1", "m1", CX_SIG_ED25519, 2, &m);
	memset(&rq, 0, sizeof(rq));
	rq.type = CX_MSG_SIGN;
	memcpy(rq.u.sign.keyid, kid_ed, 32);
	rq.u.sign.sigalg = CX_MSIG_ED25519;
	rq.u.sign.data = m.d;
	rq.u.sign.datalen = m.len;
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_SIGNATURE);
	verify(ks_ed, CX_SIG_ED25519, &m, a.u.signature.sig, a.u.signature.siglen);
	cx_buf_free(&m);
	tbs(CX_R_TIMESTAMP, "timestamp", "r1", CX_SIG_RSAPSS_SHA256, 1, &m);
	memcpy(rq.u.sign.keyid, kid_rsa, 32);
	rq.u.sign.sigalg = CX_MSIG_RSAPSS_SHA256;
	rq.u.sign.data = m.d;
	rq.u.sign.datalen = m.len;
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_SIGNATURE);
	verify(ks_rsa, CX_SIG_RSAPSS_SHA256, &m, a.u.signature.sig, a.u.signature.siglen);
	/* refused, and with the wrong algorithm */
	rq.u.sign.sigalg = CX_MSIG_ED25519;
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_ERROR);
	cx_buf_free(&m);
	memset(&rq, 0, sizeof(rq));
	rq.type = CX_MSG_REMOVE_KEY;
	memcpy(rq.u.remove_key.keyid, kid_ed, 32);
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_OK);
	raw_req(fd, &rq, &a, &scratch, &cap);
	ck_assert_int_eq(a.type, CX_MSG_ERROR);
	close(fd);

	ck_assert_uint_gt(cap.len, 1000);
	ck_assert_msg(!leaks(&cap, seed, 32, 12), "the Ed25519 seed is in an answer");
	for (i = 0; i < 3; i++) {
		int len;
		ck_assert_int_eq(EVP_PKEY_get_bn_param(rsa, names[i], &bn[i]), 1);
		ck_assert((len = BN_bn2bin(bn[i], buf)) > 100);
		ck_assert_msg(
		    !leaks(&cap, buf, (size_t)len, 16), "RSA %s is in an answer", names[i]);
		BN_clear_free(bn[i]);
	}
	/* nor any line of the PEM files */
	{
		const struct cx_buf *pems[2] = {&pem_ed, &pem_rsa};
		for (i = 0; i < 2; i++) {
			char *s = strndup((const char *)pems[i]->d, pems[i]->len), *l, *save = NULL;
			for (l = strtok_r(s, "\n", &save); l != NULL;
			     l = strtok_r(NULL, "\n", &save))
				if (strncmp(l, "-----", 5) != 0)
					ck_assert_msg(memmem(cap.d, cap.len, l, strlen(l)) == NULL,
					    "a PEM line is in an answer");
			free(s);
		}
	}
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
	cx_buf_free_wipe(&pem_ed);
	cx_buf_free_wipe(&pem_rsa);
	cx_buf_free(&cap);
	cx_buf_free(&scratch);
	teardown(&g);
}
END_TEST

#define NCLIENTS 200

struct crowd {
	struct ag *g;
	pthread_barrier_t *bar;
	const uint8_t *keyid;
	const char *keystr;
	struct cx_buf *m;
	int ok;
};

static void *
crowd_sign(void *arg)
{
	struct crowd *w = arg;
	struct cx_agent_conn *c = NULL;
	struct cx_err e = {0};
	struct cx_buf sig;
	EVP_PKEY *pk = NULL;
	enum cx_keyalg ka;

	pthread_barrier_wait(w->bar);
	if (cx_agent_connect(w->g->sock, &c, &e) != 0)
		return NULL;
	cx_buf_init(&sig, 0);
	if (cx_agent_sign(c, w->keyid, CX_MSIG_ED25519, w->m->d, w->m->len, &sig, &e) == 0 &&
	    cx_pubkey_parse(w->keystr, strlen(w->keystr), &pk, &ka, &e) == 0 &&
	    cx_sig_verify(pk, CX_SIG_ED25519, w->m->d, w->m->len, sig.d, sig.len, &e) == 0)
		w->ok = 1;
	else
		fprintf(stderr, "client: %s\n", e.msg);
	EVP_PKEY_free(pk);
	cx_buf_free(&sig);
	cx_agent_close(c);
	return NULL;
}

static long
rss_kb(pid_t pid)
{
	char p[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%ld/status", (long)pid);
	if ((f = fopen(p, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* 200 clients at once over two tokens and a software key, no failure; 1,000 idle connections. */
START_TEST(test_many_clients)
{
	static struct crowd w[NCLIENTS];
	static pthread_t th[NCLIENTS];
	static int idle[1000];
	struct ag g;
	struct cx_agent_conn *c;
	struct cx_msg_key *k[2];
	struct cx_buf m[3], pem;
	struct cx_err e = {0};
	pthread_barrier_t bar;
	EVP_PKEY *pk;
	char soft_ks[4096];
	uint8_t soft_id[32];
	int ok = 0, i;
	long kb;

	setup(&g, 2);
	start(&g, 1, NULL);
	c = conn(&g);
	login(c, g.serial[0]);
	login(c, g.serial[1]);
	k[0] = generate(c, g.serial[0], "m1", CX_MKEY_ED25519, 0);
	k[1] = generate(c, g.serial[1], "m2", CX_MKEY_ED25519, 0);
	soft_key(CX_KEY_ED25519, &pk, &pem, soft_ks, sizeof(soft_ks));
	cx_keyid(soft_ks, strlen(soft_ks), soft_id);
	ck_assert_int_eq(cx_agent_add_key(c, "s1", pem.d, pem.len, NULL, &e), 0);
	tbs(CX_R_TARGETS, "m1", "m1", CX_SIG_ED25519, 1, &m[0]);
	tbs(CX_R_TARGETS, "m2", "m2", CX_SIG_ED25519, 1, &m[1]);
	tbs(CX_R_TARGETS, "s1", "s1", CX_SIG_ED25519, 1, &m[2]);

	ck_assert_int_eq(pthread_barrier_init(&bar, NULL, NCLIENTS), 0);
	for (i = 0; i < NCLIENTS; i++) {
		w[i].g = &g;
		w[i].bar = &bar;
		w[i].m = &m[i % 3];
		w[i].keyid = i % 3 == 2 ? soft_id : k[i % 3]->keyid;
		w[i].keystr = i % 3 == 2 ? soft_ks : k[i % 3]->keystr;
		w[i].ok = 0;
		ck_assert_int_eq(pthread_create(&th[i], NULL, crowd_sign, &w[i]), 0);
	}
	for (i = 0; i < NCLIENTS; i++) {
		pthread_join(th[i], NULL);
		ok += w[i].ok;
	}
	pthread_barrier_destroy(&bar);
	ck_assert_int_eq(ok, NCLIENTS);

	/* 1,000 idle connections, each answered once so that the agent holds them all */
	for (i = 0; i < 1000; i++) {
		uint8_t q[9] = {0, 0, 0, 5, CX_MSG_QUERY, 0, 0, 0, CX_PROTO_VERSION}, hdr[5];
		uint8_t body[64];
		uint32_t len;
		uint8_t type;
		ck_assert_msg(
		    (idle[i] = raw_connect(g.sock)) >= 0, "connect %d: %s", i, strerror(errno));
		raw_send(idle[i], q, sizeof(q));
		ck_assert_int_eq(raw_read(idle[i], hdr, 5, 10000), 5);
		ck_assert_int_eq(cx_frame_header(hdr, &len, &type), 0);
		ck_assert(len < sizeof(body));
		ck_assert_int_eq(raw_read(idle[i], body, len, 10000), (ssize_t)len);
	}
	kb = rss_kb(g.pid);
	fprintf(stderr, "agent RSS with 1000 idle connections: %ld kB\n", kb);
#ifndef __SANITIZE_ADDRESS__
	ck_assert_msg(kb > 0 && kb < 50 * 1024, "RSS %ld kB", kb);
#endif
	/* still serving */
	{
		struct cx_buf sig;
		cx_buf_init(&sig, 0);
		ck_assert_int_eq(sign(c, k[0]->keyid, CX_MSIG_ED25519, &m[0], &sig, NULL, 0), 0);
		cx_buf_free(&sig);
	}
	for (i = 0; i < 1000; i++)
		close(idle[i]);

	for (i = 0; i < 3; i++)
		cx_buf_free(&m[i]);
	cx_agent_keys_free(k[0]);
	cx_agent_keys_free(k[1]);
	EVP_PKEY_free(pk);
	cx_buf_free_wipe(&pem);
	cx_agent_close(c);
	teardown(&g);
}
END_TEST

/* In a child as uid: connect to path, send QUERY, report (exit code) what happened. */
static int
as_uid_query(int uid, const char *path)
{
	pid_t p;
	int st;

	if ((p = fork()) == 0) {
		uint8_t q[9] = {0, 0, 0, 5, CX_MSG_QUERY, 0, 0, 0, CX_PROTO_VERSION}, b[64];
		int fd;
		if (uid >= 0 &&
		    (setgroups(0, NULL) != 0 || setgid((gid_t)uid) != 0 || setuid((uid_t)uid) != 0))
			_exit(10);
		if ((fd = raw_connect(path)) < 0)
			_exit(errno == EACCES ? 2 : 3);
		if (send(fd, q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q))
			_exit(4); /* closed before we wrote: refused */
		_exit(raw_read(fd, b, CX_PROTO_HDR, 5000) == CX_PROTO_HDR ? 0 : 4);
	}
	waitpid(p, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Another uid: kept out first by the socket's mode and directory (EACCES);
 * with those loosened on purpose, by SO_PEERCRED (accepted, then closed at
 * once without an answer).  Root too, unless --allow-root.
 */
START_TEST(test_other_uid)
{
	struct ag g;
	char nbdir[400];

	if (getuid() != 0) {
		fprintf(stderr, "SKIP: needs root to switch to uid %d\n", NOBODY);
		return;
	}
	setup(&g, 0);
	ck_assert_int_eq(chmod(g.dir, 0711), 0);
	snprintf(nbdir, sizeof(nbdir), "%s/nb", g.dir);
	start(&g, 0, NULL);
	ck_assert_int_eq(as_uid_query(-1, g.sock), 0);
	/* layer 1: file permissions */
	ck_assert_int_eq(as_uid_query(NOBODY, g.sock), 2);
	/* layer 2: the agent's own check, with the socket opened up */
	ck_assert_int_eq(chmod(g.sock, 0666), 0);
	ck_assert_int_eq(as_uid_query(NOBODY, g.sock), 4);
	ck_assert(grep_file(g.log, "refused connection from uid 65534"));
	ck_assert_int_eq(as_uid_query(-1, g.sock), 0);
	stop(&g);

	/* an agent of nobody: root is refused, unless --allow-root */
	ck_assert_int_eq(mkdir(nbdir, 0700), 0);
	ck_assert_int_eq(chown(nbdir, NOBODY, NOBODY), 0);
	snprintf(g.sock, sizeof(g.sock), "%s/agent.sock", nbdir);
	snprintf(g.audit, sizeof(g.audit), "%s/audit.log", nbdir);
	start_as(&g, NOBODY, NULL);
	ck_assert_int_eq(as_uid_query(NOBODY, g.sock), 0);
	ck_assert_int_eq(as_uid_query(-1, g.sock), 4);
	stop(&g);
	start_as(&g, NOBODY, "--allow-root", NULL);
	ck_assert_int_eq(as_uid_query(-1, g.sock), 0);
	stop(&g);
	teardown(&g);
}
END_TEST

/* In a child as uid: PTRACE_ATTACH to pid; 0 attached (and detached), 1 EPERM, 2 other. */
static int
as_uid_attach(int uid, pid_t pid)
{
	pid_t p;
	int st;

	if ((p = fork()) == 0) {
		if (setgroups(0, NULL) != 0 || setgid((gid_t)uid) != 0 || setuid((uid_t)uid) != 0)
			_exit(10);
		if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) != 0)
			_exit(errno == EPERM ? 1 : 2);
		waitpid(pid, NULL, __WALL);
		ptrace(PTRACE_DETACH, pid, NULL, NULL);
		_exit(0);
	}
	waitpid(p, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * ptrace: root may attach to anything, so the agent runs as nobody and the
 * attacher is nobody too.  The control (another process of nobody can be
 * attached) shows that what stops the attach is the agent's PR_SET_DUMPABLE.
 */
START_TEST(test_ptrace)
{
	struct ag g;
	char nbdir[400];
	pid_t victim;
	int st;

	if (getuid() != 0) {
		fprintf(stderr, "SKIP: needs root to run as uid %d\n", NOBODY);
		return;
	}
	/* a token, so that its helper process runs: it must be as closed as the agent */
	setup(&g, 1);
	ck_assert_int_eq(chmod(g.dir, 0711), 0);
	ck_assert_int_eq(cx_test_sh("chown -R %d:%d '%s/tokens' '%s/softhsm2.conf'", NOBODY, NOBODY,
	                     g.dir, g.dir),
	    0);
	snprintf(nbdir, sizeof(nbdir), "%s/nb", g.dir);
	ck_assert_int_eq(mkdir(nbdir, 0700), 0);
	ck_assert_int_eq(chown(nbdir, NOBODY, NOBODY), 0);
	snprintf(g.sock, sizeof(g.sock), "%s/agent.sock", nbdir);
	snprintf(g.audit, sizeof(g.audit), "%s/audit.log", nbdir);
	start_as(&g, NOBODY, "-P", cx_softhsm_module(), "-m", cx_softhsm_module(), NULL);

	if ((victim = fork()) == 0) {
		if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
			_exit(10);
		/* exec: a process that just changed uid is not dumpable until it execs */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(11);
	}
	usleep(100000);
	ck_assert_msg(as_uid_attach(NOBODY, victim) == 0,
	    "control: nobody cannot attach to its own process here; the test proves nothing");
	kill(victim, SIGKILL);
	waitpid(victim, &st, 0);

	ck_assert_int_eq(as_uid_attach(NOBODY, g.pid), 1);
	{
		pid_t h[2];
		int64_t end = now_ms() + 10000;

		while (cx_test_helpers_of(g.pid, "token", h, 2) < 1 && now_ms() < end)
			usleep(50000);
		ck_assert_int_eq(cx_test_helpers_of(g.pid, "token", h, 2), 1);
		ck_assert_int_eq(as_uid_attach(NOBODY, h[0]), 1);
		/* and the module's scanning helper */
		ck_assert_int_eq(cx_test_helpers_of(g.pid, "scan", h, 2), 1);
		ck_assert_int_eq(as_uid_attach(NOBODY, h[0]), 1);
	}
	/* and the agent is unharmed */
	ck_assert_int_eq(as_uid_query(NOBODY, g.sock), 0);
	stop(&g);
	teardown(&g);
}
END_TEST

/*
 * Token sessions live in helper processes, one per token: a helper that
 * dies loses only its token (TOKEN_ABSENT, naming the helper), the other
 * token keeps signing, the agent lives on, and the rescan starts a new
 * helper for the token, which signs again after a new login (the PIN went
 * with the session).  The module's scanning helper dying costs nothing but
 * a new one at the next rescan: no token is taken for removed.  With
 * --no-token-helpers there are none, and the agent loads the module itself.
 */
START_TEST(test_token_helpers)
{
	struct ag g;
	struct cx_agent_conn *c;
	struct cx_msg_key *k1, *k2;
	struct cx_buf m1, m2, sig;
	struct cx_err e = {0};
	pid_t h[4], h2[4], hs[2], hs2[2];
	char msg[1024];
	uint64_t nlines;
	int64_t end;
	size_t n;
	int r;

	setup(&g, 2);
	start(&g, 1, NULL);
	c = conn(&g);
	login(c, g.serial[0]);
	login(c, g.serial[1]);
	k1 = generate(c, g.serial[0], "m1", CX_MKEY_ED25519, 0);
	k2 = generate(c, g.serial[1], "m2", CX_MKEY_RSA, 2048);
	tbs(CX_R_TARGETS, "m1", "m1", CX_SIG_ED25519, 1, &m1);
	tbs(CX_R_TARGETS, "m2", "m2", CX_SIG_RSAPSS_SHA256, 1, &m2);
	cx_buf_init(&sig, 0);
	ck_assert_int_eq(sign(c, k1->keyid, CX_MSIG_ED25519, &m1, &sig, NULL, 0), 0);
	verify(k1->keystr, CX_SIG_ED25519, &m1, sig.d, sig.len);
	ck_assert_int_eq(cx_test_helpers_of(g.pid, "token", h, 4), 2);
	ck_assert_int_eq(cx_test_helpers_of(g.pid, "scan", hs, 2), 1);

	/* the scanning helper dies: a new one at the next rescan, the tokens stay */
	ck_assert_int_eq(kill(hs[0], SIGKILL), 0);
	end = now_ms() + 15000;
	while (
	    !(cx_test_helpers_of(g.pid, "scan", hs2, 2) == 1 && hs2[0] != hs[0]) && now_ms() < end)
		usleep(100000);
	ck_assert_msg(cx_test_helpers_of(g.pid, "scan", hs2, 2) == 1 && hs2[0] != hs[0],
	    "no new scanning helper after the rescan");
	usleep(2500000); /* a rescan with the new scanner */
	ck_assert_int_eq(sign(c, k1->keyid, CX_MSIG_ED25519, &m1, &sig, msg, sizeof(msg)), 0);
	ck_assert_int_eq(sign(c, k2->keyid, CX_MSIG_RSAPSS_SHA256, &m2, &sig, msg, sizeof(msg)), 0);
	ck_assert_int_eq(cx_test_helpers_of(g.pid, "token", h2, 4), 2);
	ck_assert(h2[0] == h[0] || h2[0] == h[1]);

	/* the helper of one token dies: which one is which is found by killing */
	ck_assert_int_eq(kill(h[0], SIGKILL), 0);
	usleep(50000);
	r = sign(c, k1->keyid, CX_MSIG_ED25519, &m1, &sig, msg, sizeof(msg));
	if (r == 0) {
		/* h[0] was token B's: A signs, B is the lost one */
		ck_assert_int_eq(
		    sign(c, k2->keyid, CX_MSIG_RSAPSS_SHA256, &m2, &sig, msg, sizeof(msg)),
		    CX_AERR_TOKEN_ABSENT);
	} else {
		ck_assert_int_eq(r, CX_AERR_TOKEN_ABSENT);
		ck_assert_int_eq(sign(c, k2->keyid, CX_MSIG_RSAPSS_SHA256, &m2, &sig, NULL, 0), 0);
		verify(k2->keystr, CX_SIG_RSAPSS_SHA256, &m2, sig.d, sig.len);
	}
	ck_assert_msg(strstr(msg, "helper") != NULL && strstr(msg, "signal 9") != NULL,
	    "the error should name the helper and how it died: %s", msg);

	/* the rescan reattaches the token with a new helper; it needs its PIN again */
	end = now_ms() + 15000;
	while ((n = cx_test_helpers_of(g.pid, "token", h2, 4)) < 2 && now_ms() < end)
		usleep(100000);
	ck_assert_int_eq(n, 2);
	ck_assert(h2[0] != h[0] && h2[1] != h[0]);
	end = now_ms() + 10000;
	while (cx_agent_token_login(c, g.serial[0], PIN, strlen(PIN), 0, &e) != 0 && now_ms() < end)
		usleep(100000);
	while (cx_agent_token_login(c, g.serial[1], PIN, strlen(PIN), 0, &e) != 0 && now_ms() < end)
		usleep(100000);
	ck_assert_int_eq(sign(c, k1->keyid, CX_MSIG_ED25519, &m1, &sig, msg, sizeof(msg)), 0);
	verify(k1->keystr, CX_SIG_ED25519, &m1, sig.d, sig.len);
	ck_assert_int_eq(sign(c, k2->keyid, CX_MSIG_RSAPSS_SHA256, &m2, &sig, msg, sizeof(msg)), 0);
	verify(k2->keystr, CX_SIG_RSAPSS_SHA256, &m2, sig.d, sig.len);
	cx_agent_close(c);
	stop(&g);
	/* the helpers end with the agent */
	ck_assert_int_eq(kill(h2[0], 0) != 0 && kill(h2[1], 0) != 0, 1);
	ck_assert_msg(cx_audit_verify(g.audit, &nlines, &e) == 0, "%s", e.msg);

	/* in-process: no helpers, and signing works the same */
	start_as(&g, -1, "-P", cx_softhsm_module(), "-m", cx_softhsm_module(), "--no-token-helpers",
	    NULL);
	c = conn(&g);
	login(c, g.serial[0]);
	ck_assert_int_eq(
	    cx_test_helpers_of(g.pid, "token", h, 4) + cx_test_helpers_of(g.pid, "scan", hs, 2), 0);
	ck_assert_int_eq(sign(c, k1->keyid, CX_MSIG_ED25519, &m1, &sig, NULL, 0), 0);
	verify(k1->keystr, CX_SIG_ED25519, &m1, sig.d, sig.len);
	cx_agent_close(c);
	cx_agent_keys_free(k1);
	cx_agent_keys_free(k2);
	cx_buf_free(&m1);
	cx_buf_free(&m2);
	cx_buf_free(&sig);
	teardown(&g);
}
END_TEST

/*
 * exec leaves a helper dumpable until its first prctl, so a process of the
 * same user could attach in that moment and stay: a helper that finds itself
 * traced refuses to run.  The control: the same helper untraced, its stdin
 * at EOF, starts and ends normally.
 */
static int
run_helper(int traced, char *err, size_t errlen)
{
	char agent[1024], ppid[32];
	int efd[2], st = 0, in;
	ssize_t n;
	pid_t p, parent = getpid();

	snprintf(agent, sizeof(agent), "%s/conex-agent", CX_BUILD_DIR);
	snprintf(ppid, sizeof(ppid), "%ld", (long)parent);
	ck_assert_int_eq(pipe(efd), 0);
	if ((p = fork()) == 0) {
		in = open("/dev/null", O_RDONLY);
		dup2(in, 0);
		dup2(efd[1], 2);
		close(efd[0]);
		if (traced && ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
			_exit(126);
		execl(
		    agent, agent, "--p11-helper", "token", cx_softhsm_module(), ppid, (char *)NULL);
		_exit(127);
	}
	close(efd[1]);
	for (;;) {
		ck_assert_int_eq(waitpid(p, &st, 0), p);
		if (!WIFSTOPPED(st))
			break;
		ptrace(PTRACE_CONT, p, NULL, NULL); /* the exec stop, and any signal stop */
	}
	n = read(efd[0], err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(efd[0]);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(test_helper_traced)
{
	struct ag g;
	char err[2048];

	setup(&g, 0); /* SOFTHSM2_CONF: the helper loads the module */
	ck_assert_msg(run_helper(0, err, sizeof(err)) == 0, "untraced helper: %s", err);
	ck_assert_int_eq(run_helper(1, err, sizeof(err)), 2);
	ck_assert_msg(strstr(err, "traced by pid") != NULL, "%s", err);
	teardown(&g);
}
END_TEST

/* A software key's lifetime; a key that must be confirmed without askpass is refused. */
START_TEST(test_lifetime)
{
	struct ag g;
	struct cx_agent_conn *c;
	struct cx_buf pem, m, sig;
	struct cx_policy p;
	struct cx_err e = {0};
	EVP_PKEY *pk;
	char ks[4096];
	uint8_t kid[32];

	setup(&g, 0);
	start_as(&g, -1, NULL); /* no askpass */
	c = conn(&g);
	soft_key(CX_KEY_ED25519, &pk, &pem, ks, sizeof(ks));
	cx_keyid(ks, strlen(ks), kid);
	memset(&p, 0, sizeof(p));
	p.types = CX_POLICY_TARGETS;
	p.lifetime = 1;
	ck_assert_int_eq(cx_agent_add_key(c, "m1", pem.d, pem.len, &p, &e), 0);
	tbs(CX_R_TARGETS, "m1", "m1", CX_SIG_ED25519, 1, &m);
	cx_buf_init(&sig, 0);
	ck_assert_int_eq(sign(c, kid, CX_MSIG_ED25519, &m, &sig, NULL, 0), 0);
	sleep(3);
	ck_assert_int_eq(sign(c, kid, CX_MSIG_ED25519, &m, &sig, NULL, 0), CX_AERR_REFUSED);
	/* added again, with confirm, and no askpass to ask with */
	p.lifetime = 0;
	p.confirm = 1;
	ck_assert_int_eq(cx_agent_add_key(c, "m1", pem.d, pem.len, &p, &e), 0);
	ck_assert_int_eq(sign(c, kid, CX_MSIG_ED25519, &m, &sig, NULL, 0), CX_AERR_REFUSED);
	EVP_PKEY_free(pk);
	cx_buf_free_wipe(&pem);
	cx_buf_free(&m);
	cx_buf_free(&sig);
	cx_agent_close(c);
	teardown(&g);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("agent");
	TCase *tc = tcase_create("agent");
	SRunner *sr;
	int nf;

	const struct {
		const char *name;
		const TTest *t;
	} tests[] = {
	    {"sign_and_policy", test_sign_and_policy},
	    {"wrong_pin", test_wrong_pin},
	    {"two_tokens_confirm", test_two_tokens_confirm},
	    {"lock", test_lock},
	    {"bad_frames", test_bad_frames},
	    {"no_private_bytes", test_no_private_bytes},
	    {"many_clients", test_many_clients},
	    {"other_uid", test_other_uid},
	    {"ptrace", test_ptrace},
	    {"lifetime", test_lifetime},
	    {"token_helpers", test_token_helpers},
	    {"helper_traced", test_helper_traced},
	};
	/* CX_AGENT_TEST=name runs that test alone */
	const char *only = getenv("CX_AGENT_TEST");

	tcase_set_timeout(tc, 90);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
		if (only == NULL || strcmp(only, tests[i].name) == 0)
			tcase_add_test(tc, tests[i].t);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
