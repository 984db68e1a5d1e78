/*
 * conex-agent against token faults that SoftHSM cannot produce on demand: a
 * token pulled out and put back, a PIN at its final try or locked, key
 * handles gone stale.  The real daemon (CX_BUILD_DIR/conex-agent), its real
 * socket and libconex-agent; the token is tests/mock/mock_pkcs11.c (CX_MOCK_P11),
 * allow-listed with -P like any module, steered through the control file
 * named by CX_MOCK_P11_CTL.  The mock appends each C_Login, C_FindObjectsInit,
 * C_SignInit and C_Sign to CX_MOCK_P11_LOG, which the tests count.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/audit.h"
#include "client/conex-agent.h"
#include "conex/crypto.h"
#include "conex/resource.h"
#include "tests/lib/repobuild.h"
#include "tests/unit/testutil.h"

#define PIN     "1234"
#define SERIAL  "MOCK0000000001"
#define CREATED "2026-01-02T03:04:05Z"

struct ag {
	char *dir;
	char sock[512], audit[512], log[512], ctl[512], calls[512];
	pid_t pid;
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The token's state for the mock: "" is a present token with nothing odd. */
static void
ctl(struct ag *g, const char *words)
{
	cx_test_write_str(g->dir, "ctl", words);
}

/* How many times the mock logged fn. */
static int
calls(struct ag *g, const char *fn)
{
	char line[128];
	FILE *f;
	int n = 0;

	if ((f = fopen(g->calls, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		n += strcmp(line, fn) == 0;
	}
	fclose(f);
	return n;
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

/* Starts the agent on the mock module (-d: foreground, log to agent.log); extra args end with NULL. */
static void
start(struct ag *g, ...)
{
	char agent[1024], lsan[1200], *argv[40], line[512];
	const char *mod = CX_MOCK_P11, *x;
	int out[2], n = 0, st;
	va_list ap;
	FILE *f;

	memset(g, 0, sizeof(*g));
	g->dir = cx_test_tmpdir();
	ck_assert_int_eq(chmod(g->dir, 0700), 0);
	snprintf(g->sock, sizeof(g->sock), "%s/agent.sock", g->dir);
	snprintf(g->audit, sizeof(g->audit), "%s/audit.log", g->dir);
	snprintf(g->log, sizeof(g->log), "%s/agent.log", g->dir);
	snprintf(g->ctl, sizeof(g->ctl), "%s/ctl", g->dir);
	snprintf(g->calls, sizeof(g->calls), "%s/calls", g->dir);
	ck_assert_msg(access(mod, R_OK) == 0, "mock module %s not built", mod);
	ctl(g, "");
	/* libsodium's and libc's own allocations at exit are not ours either way */
	cx_test_write_str(g->dir, "lsan.supp", "leak:libcx_mock_pkcs11.so\n");

	snprintf(agent, sizeof(agent), "%s/conex-agent", CX_BUILD_DIR);
	argv[n++] = agent;
	argv[n++] = "-d";
	argv[n++] = "-a";
	argv[n++] = g->sock;
	argv[n++] = "--audit";
	argv[n++] = g->audit;
	argv[n++] = "-P";
	argv[n++] = (char *)mod;
	argv[n++] = "-m";
	argv[n++] = (char *)mod;
	va_start(ap, g);
	while ((x = va_arg(ap, const char *)) != NULL && n < 38)
		argv[n++] = (char *)x;
	va_end(ap);
	argv[n] = NULL;
	snprintf(lsan, sizeof(lsan), "suppressions=%s/lsan.supp:print_suppressions=0", g->dir);

	ck_assert_int_eq(pipe(out), 0);
	g->pid = fork();
	ck_assert_int_ge(g->pid, 0);
	if (g->pid == 0) {
		int lf = open(g->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(out[1], 1);
		if (lf >= 0)
			dup2(lf, 2);
		close(out[0]);
		setenv("LSAN_OPTIONS", lsan, 1);
		setenv("CX_MOCK_P11_CTL", g->ctl, 1);
		setenv("CX_MOCK_P11_LOG", g->calls, 1);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execv(agent, argv);
		_exit(127);
	}
	close(out[1]);
	ck_assert((f = fdopen(out[0], "r")) != NULL);
	line[0] = '\0';
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "CONEX_AGENT_PID=", 16) == 0)
			break;
	fclose(f);
	if (strncmp(line, "CONEX_AGENT_PID=", 16) != 0) {
		waitpid(g->pid, &st, 0);
		cx_test_sh("cat '%s' >&2", g->log);
		ck_abort_msg("the agent did not start (status %d)", st);
	}
}

/*
 * SIGTERM: exit 0 (under ASan: no leaks), the audit chain intact.  Result
 * lines are written just after their answers, so a test reads the log after
 * this.
 */
static void
stop(struct ag *g)
{
	int64_t end = now_ms() + 15000;
	struct cx_err e = {0};
	uint64_t nlines;
	int st = 0;
	pid_t r;

	ck_assert_int_eq(kill(g->pid, SIGTERM), 0);
	while ((r = waitpid(g->pid, &st, WNOHANG)) == 0 && now_ms() < end)
		usleep(20000);
	if (r == 0) {
		kill(g->pid, SIGKILL);
		waitpid(g->pid, &st, 0);
		ck_abort_msg("the agent did not stop on SIGTERM");
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		cx_test_sh("tail -50 '%s' >&2", g->log);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent exit status 0x%x", st);
	ck_assert_msg(cx_audit_verify(g->audit, &nlines, &e) == 0, "%s", e.msg);
}

static void
cleanup(struct ag *g)
{
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

/* 0, or the agent's error code for the login. */
static uint32_t
login(struct cx_agent_conn *c, const char *pin, int allow_final_try)
{
	struct cx_err e = {0};
	int r;

	r = cx_agent_token_login(c, SERIAL, pin, strlen(pin), allow_final_try, &e);
	if (r == 0)
		return 0;
	ck_assert_msg(r == CX_EAGENT, "login: transport failure: %s", e.msg);
	return cx_agent_last_error(c);
}

/* The mock key id on the token serial as listed; present says whether LIST calls it present. */
static int
find_key(struct cx_agent_conn *c, const char *id, const char *serial, uint8_t keyid[32],
    char *keystr, size_t kslen, int *present)
{
	struct cx_msg_key *keys = NULL;
	struct cx_err e = {0};
	size_t n;
	int found = 0;

	ck_assert_msg(cx_agent_list(c, &keys, &n, &e) == 0, "list: %s", e.msg);
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].id, id) == 0 && keys[i].token_serial != NULL &&
		    strcmp(keys[i].token_serial, serial) == 0) {
			memcpy(keyid, keys[i].keyid, 32);
			snprintf(keystr, kslen, "%s", keys[i].keystr);
			*present = (keys[i].state & CX_KEY_PRESENT) != 0;
			found = 1;
		}
	cx_agent_keys_free(keys);
	return found;
}

static int
find_m1(struct cx_agent_conn *c, uint8_t keyid[32], char *keystr, size_t kslen, int *present)
{
	return find_key(c, "m1", SERIAL, keyid, keystr, kslen, present);
}

/* Waits (the agent rescans every 2 s) until m1 is listed present (want 1) or not (0). */
static void
wait_present(struct cx_agent_conn *c, int want, uint8_t keyid[32], char *keystr, size_t kslen)
{
	int64_t end = now_ms() + 15000;
	int present = -1;

	while (!(find_m1(c, keyid, keystr, kslen, &present) && present == want)) {
		ck_assert_msg(
		    now_ms() < end, "m1 not listed %s in time", want ? "present" : "absent");
		usleep(50000);
	}
}

/* The to-be-signed bytes of a targets resource signed by id (Ed25519). */
static void
tbs_of(const char *id, struct cx_buf *out)
{
	struct cx_keyref ref = rb_local(id);
	struct cx_arena a;
	struct cx_resource *r;
	struct cx_buf c;
	char path[64];

	cx_arena_init(&a, 0);
	r = rb_new(&a, CX_R_TARGETS, id, CREATED);
	r->valid = rb_quorum(&a, 1, &ref, 1);
	snprintf(path, sizeof(path), "packages/%s/%s.1/opam", id, id);
	rb_add_target(&a, r, path, "opam", 4);
	cx_buf_init(&c, 0);
	cx_buf_init(out, 0);
	ck_assert_int_eq(cx_resource_canon(r, &c), 0);
	ck_assert_int_eq(cx_tbs(c.d, c.len, CREATED, id, CX_SIG_ED25519, out), 0);
	cx_buf_free(&c);
	cx_arena_free(&a);
}

/* 0 and a signature that verifies under keystr, or the agent's error code. */
static uint32_t
sign(struct cx_agent_conn *c, const uint8_t keyid[32], const char *keystr, const struct cx_buf *m,
    char *msg, size_t msglen)
{
	struct cx_err e = {0};
	enum cx_keyalg ka;
	EVP_PKEY *pk = NULL;
	struct cx_buf sig;
	int r;

	cx_buf_init(&sig, 0);
	r = cx_agent_sign(c, keyid, CX_MSIG_ED25519, m->d, m->len, &sig, &e);
	if (msg != NULL)
		snprintf(msg, msglen, "%s", e.msg);
	if (r != 0) {
		cx_buf_free(&sig);
		ck_assert_msg(r == CX_EAGENT, "sign: transport failure: %s", e.msg);
		return cx_agent_last_error(c);
	}
	ck_assert_msg(cx_pubkey_parse(keystr, strlen(keystr), &pk, &ka, &e) == 0, "%s", e.msg);
	ck_assert_msg(cx_sig_verify(pk, CX_SIG_ED25519, m->d, m->len, sig.d, sig.len, &e) == 0,
	    "the mock's signature does not verify: %s", e.msg);
	EVP_PKEY_free(pk);
	cx_buf_free(&sig);
	return 0;
}

/* A software key: signs while the token is out, to show the agent still serves. */
static void
soft_key(struct cx_agent_conn *c, uint8_t keyid[32], char *keystr, size_t kslen)
{
	struct cx_err e = {0};
	struct cx_buf pem, ks;
	EVP_PKEY *pk = NULL;

	ck_assert_int_eq(cx_privkey_generate(CX_KEY_ED25519, 0, &pk, &e), 0);
	cx_buf_init(&pem, 0);
	ck_assert_int_eq(cx_privkey_pem(pk, &pem, &e), 0);
	cx_buf_init(&ks, 0);
	ck_assert_int_eq(cx_pubkey_string(pk, &ks, &e), 0);
	ck_assert_uint_lt(ks.len, kslen);
	memcpy(keystr, ks.d, ks.len);
	keystr[ks.len] = '\0';
	cx_keyid(keystr, ks.len, keyid);
	/* the same conex id as the token's key: the same bytes are acceptable to both */
	ck_assert_msg(cx_agent_add_key(c, "m1", pem.d, pem.len, NULL, &e) == 0, "%s", e.msg);
	cx_buf_free_wipe(&pem);
	cx_buf_free(&ks);
	EVP_PKEY_free(pk);
}

struct slow_sign {
	struct ag *g;
	uint8_t keyid[32];
	char keystr[512];
	struct cx_buf *m;
	uint32_t r;
	atomic_int done; /* A's answer is back */
};

static void *
slow_sign(void *arg)
{
	struct slow_sign *ss = arg;
	struct cx_agent_conn *c = conn(ss->g);

	ss->r = sign(c, ss->keyid, ss->keystr, ss->m, NULL, 0);
	atomic_store(&ss->done, 1);
	cx_agent_close(c);
	return NULL;
}

/*
 * One module, two tokens, and a module that holds its one process-wide lock
 * while a token waits for a touch (as OpenSC does).  Each token's session in
 * its own helper process: token B signs at once while token A waits.  The
 * control, with --no-token-helpers: B waits for A, which shows that the
 * mock's lock does hold up a process and the test can tell the two apart.
 */
static void
global_lock_run(int helpers, int64_t *b_ms, int *a_done_first)
{
	struct ag g;
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	struct slow_sign ss;
	struct cx_buf m2;
	uint8_t kid2[32];
	char ks2[512];
	pthread_t th;
	int64_t t0, end;
	int p1, p2;

	if (helpers)
		start(&g, NULL);
	else
		start(&g, "--no-token-helpers", NULL);
	ctl(&g, "two-tokens");
	c = conn(&g);
	/* the second token comes with the next rescan */
	end = now_ms() + 15000;
	while (cx_agent_token_login(c, "MOCK0000000002", PIN, strlen(PIN), 0, &e) != 0) {
		ck_assert_msg(now_ms() < end, "second mock token not attached: %s", e.msg);
		usleep(50000);
	}
	ck_assert_int_eq(login(c, PIN, 0), 0);
	memset(&ss, 0, sizeof(ss));
	ss.g = &g;
	end = now_ms() + 10000;
	while (!find_key(c, "m1", SERIAL, ss.keyid, ss.keystr, sizeof(ss.keystr), &p1) || !p1 ||
	    !find_key(c, "m2", "MOCK0000000002", kid2, ks2, sizeof(ks2), &p2) || !p2) {
		ck_assert_msg(now_ms() < end, "m1 and m2 not listed");
		usleep(50000);
	}
	tbs_of("m1", ss.m = calloc(1, sizeof(*ss.m)));
	tbs_of("m2", &m2);
	ck_assert_int_eq(sign(c, kid2, ks2, &m2, NULL, 0), 0);

	/* A waits 2 s inside C_Sign, holding the module's lock */
	ctl(&g, "two-tokens sign-delay-2000 global-lock");
	ck_assert_int_eq(pthread_create(&th, NULL, slow_sign, &ss), 0);
	end = now_ms() + 5000;
	while (calls(&g, "C_Sign") < 2) {
		ck_assert_msg(now_ms() < end, "token A's C_Sign never started");
		usleep(10000);
	}
	t0 = now_ms();
	ck_assert_int_eq(sign(c, kid2, ks2, &m2, NULL, 0), 0);
	*b_ms = now_ms() - t0;
	*a_done_first = atomic_load(&ss.done);
	pthread_join(th, NULL);
	ck_assert_int_eq(ss.r, 0);
	cx_buf_free(ss.m);
	free(ss.m);
	cx_buf_free(&m2);
	cx_agent_close(c);
	stop(&g);
	cleanup(&g);
}

START_TEST(test_global_lock)
{
	int64_t with, without;
	int a_first;

	/* no time limit: B must simply be answered while A is still held (2 s) */
	global_lock_run(1, &with, &a_first);
	ck_assert_msg(
	    !a_first, "token B was answered only after token A's touch (%lld ms)", (long long)with);
	/*
	 * The control: B asked after A's C_Sign took the lock cannot be done
	 * before A's 2 s are over, however fast the machine.
	 */
	global_lock_run(0, &without, &a_first);
	ck_assert_msg(without >= 1000,
	    "control: in one process B should wait for A's lock, but took %lld ms",
	    (long long)without);
}
END_TEST

/* A LOGIN of the mock token on its own connection: the answer, and whether A was done by then. */
struct late_login {
	struct ag *g;
	struct slow_sign *ss;
	uint32_t r;
	int a_done;
};

static void *
late_login(void *arg)
{
	struct late_login *ll = arg;
	struct cx_agent_conn *c = conn(ll->g);

	ll->r = login(c, PIN, 0);
	ll->a_done = atomic_load(&ll->ss->done);
	cx_agent_close(c);
	return NULL;
}

/* Like slow_sign, but a connection the agent closes is an answer too: ss->r is then ~0. */
static void *
slow_sign_raw(void *arg)
{
	struct slow_sign *ss = arg;
	struct cx_agent_conn *c = conn(ss->g);
	struct cx_err e = {0};
	struct cx_buf sig;
	int r;

	cx_buf_init(&sig, 0);
	r = cx_agent_sign(c, ss->keyid, CX_MSIG_ED25519, ss->m->d, ss->m->len, &sig, &e);
	ss->r = r == 0 ? 0 : r == CX_EAGENT ? cx_agent_last_error(c) : ~0u;
	atomic_store(&ss->done, 1);
	cx_buf_free(&sig);
	cx_agent_close(c);
	return NULL;
}

/* Starts fn signing ss (m1, which must be listed) in a thread; returns once its C_Sign began. */
static void
slow_sign_start(
    struct ag *g, struct cx_agent_conn *c, struct slow_sign *ss, pthread_t *th, void *(*fn)(void *))
{
	int64_t end = now_ms() + 5000;
	int present, before = calls(g, "C_Sign");

	memset(ss, 0, sizeof(*ss));
	ss->g = g;
	ck_assert(find_m1(c, ss->keyid, ss->keystr, sizeof(ss->keystr), &present) && present);
	tbs_of("m1", ss->m = calloc(1, sizeof(*ss->m)));
	ck_assert_int_eq(pthread_create(th, NULL, fn, ss), 0);
	while (calls(g, "C_Sign") == before) {
		ck_assert_msg(now_ms() < end, "the slow C_Sign never started");
		usleep(10000);
	}
}

static void
slow_sign_free(struct slow_sign *ss)
{
	cx_buf_free(ss->m);
	free(ss->m);
}

/*
 * A SIGN on a token whose worker has nothing to do is carried by the event
 * loop (fastsign.c; the debug log says so).  While its token takes 1.5 s,
 * LIST is answered at once, and a LOGIN for that token, which its worker
 * runs, waits for the signature and then succeeds: the token has one user
 * at a time.  The same order holds in-process, where the worker signs.
 */
static void
fast_hold_run(int helpers)
{
	struct ag g;
	struct cx_agent_conn *c, *c2;
	struct cx_msg_key *keys = NULL;
	struct cx_err e = {0};
	struct slow_sign ss;
	struct late_login ll;
	pthread_t th, th2;
	size_t n;

	if (helpers)
		start(&g, NULL);
	else
		start(&g, "--no-token-helpers", NULL);
	c = conn(&g);
	ck_assert_uint_eq(login(c, PIN, 0), 0);
	ctl(&g, "sign-delay-1500");
	slow_sign_start(&g, c, &ss, &th, slow_sign);

	c2 = conn(&g);
	ck_assert_msg(cx_agent_list(c2, &keys, &n, &e) == 0, "list: %s", e.msg);
	cx_agent_keys_free(keys);
	ck_assert_msg(!atomic_load(&ss.done), "LIST waited for the token's signature");
	memset(&ll, 0, sizeof(ll));
	ll.g = &g;
	ll.ss = &ss;
	ck_assert_int_eq(pthread_create(&th2, NULL, late_login, &ll), 0);
	pthread_join(th2, NULL);
	pthread_join(th, NULL);
	ck_assert_uint_eq(ss.r, 0);
	ck_assert_uint_eq(ll.r, 0);
	ck_assert_msg(ll.a_done, "the LOGIN ran on the token while it signed");
	ck_assert_int_eq(grep_file(g.log, "sent to token " SERIAL " by the loop"), helpers);
	/* the token is the worker's again: it signs as before */
	ctl(&g, "");
	ck_assert_uint_eq(sign(c, ss.keyid, ss.keystr, ss.m, NULL, 0), 0);
	slow_sign_free(&ss);
	cx_agent_close(c2);
	cx_agent_close(c);
	stop(&g);
	ck_assert(grep_file(g.audit, "\"op\":\"sign-intent\""));
	cleanup(&g);
}

START_TEST(test_fast_hold)
{
	fast_hold_run(1);
	fast_hold_run(0);
}
END_TEST

/*
 * The helper is killed while the loop waits for its signature: that client
 * gets TOKEN_ABSENT naming the helper and signal 9, the loop goes on, and
 * the token comes back with a new helper at the next rescan.
 */
START_TEST(test_fast_helper_killed)
{
	struct ag g;
	struct cx_agent_conn *c;
	struct slow_sign ss;
	char msg[CX_ERR_MSG], keystr[512];
	uint8_t keyid[32];
	pid_t h[2], h2[2];
	pthread_t th;
	int64_t end;
	uint32_t r;

	start(&g, NULL);
	c = conn(&g);
	ck_assert_uint_eq(login(c, PIN, 0), 0);
	ck_assert_int_eq(cx_test_helpers_of(g.pid, "token", h, 2), 1);
	ctl(&g, "sign-delay-3000");
	slow_sign_start(&g, c, &ss, &th, slow_sign);
	ck_assert_int_eq(kill(h[0], SIGKILL), 0);
	pthread_join(th, NULL);
	ck_assert_uint_eq(ss.r, CX_AERR_TOKEN_ABSENT);
	ck_assert(grep_file(g.log, "by the loop"));
	ctl(&g, "");
	/* the error names the helper: the next SIGN says why the token is gone */
	r = sign(c, ss.keyid, ss.keystr, ss.m, msg, sizeof(msg));
	ck_assert_uint_eq(r, CX_AERR_TOKEN_ABSENT);
	end = now_ms() + 15000;
	while (!(cx_test_helpers_of(g.pid, "token", h2, 2) == 1 && h2[0] != h[0]) && now_ms() < end)
		usleep(100000);
	ck_assert_msg(h2[0] != h[0], "no new helper for the token");
	end = now_ms() + 10000;
	while (login(c, PIN, 0) != 0 && now_ms() < end)
		usleep(100000);
	wait_present(c, 1, keyid, keystr, sizeof(keystr));
	ck_assert_uint_eq(sign(c, keyid, keystr, ss.m, msg, sizeof(msg)), 0);
	slow_sign_free(&ss);
	cx_agent_close(c);
	stop(&g);
	ck_assert(grep_file(g.audit, "\"result\":\"token-absent\""));
	cleanup(&g);
}
END_TEST

/*
 * SIGTERM while the loop waits for a signature (a touch that never comes):
 * the agent gives the helper up and exits at once, with status 0 and its
 * audit chain whole; the client gets no signature.
 */
START_TEST(test_fast_shutdown)
{
	struct ag g;
	struct cx_agent_conn *c;
	struct slow_sign ss;
	pthread_t th;
	int64_t t0;

	start(&g, NULL);
	c = conn(&g);
	ck_assert_uint_eq(login(c, PIN, 0), 0);
	ctl(&g, "sign-delay-60000");
	slow_sign_start(&g, c, &ss, &th, slow_sign_raw);
	t0 = now_ms();
	stop(&g);
	/* the 60 s touch was not waited for (stop() itself allows 15 s) */
	ck_assert_int_lt(now_ms() - t0, 15000);
	pthread_join(th, NULL);
	ck_assert_uint_ne(ss.r, 0);
	ck_assert(grep_file(g.log, "by the loop"));
	ck_assert(grep_file(g.audit, "\"op\":\"sign-intent\""));
	slow_sign_free(&ss);
	cx_agent_close(c);
	cleanup(&g);
}
END_TEST

/* ---- tests ---- */

/*
 * Pulled out: SIGN answers TOKEN_ABSENT, everything else goes on (LIST, a
 * software key's signature, on another connection too).  Put back, in
 * another slot: re-attached by serial; its cached PIN went with the removal,
 * so one login, and signing works again.
 */
START_TEST(test_removal)
{
	char keystr[512], softstr[512], msg[CX_ERR_MSG];
	uint8_t keyid[32], softid[32];
	struct cx_agent_conn *c, *c2;
	struct ag g;
	struct cx_buf m;
	int present;

	start(&g, "--pin-cache", "600", NULL);
	c = conn(&g);
	c2 = conn(&g);
	ck_assert_uint_eq(login(c, PIN, 0), 0);
	ck_assert(find_m1(c, keyid, keystr, sizeof(keystr), &present));
	ck_assert(present);
	tbs_of("m1", &m);
	ck_assert_uint_eq(sign(c, keyid, keystr, &m, msg, sizeof(msg)), 0);
	soft_key(c2, softid, softstr, sizeof(softstr));

	ctl(&g, "remove");
	/* at once: the worker meets CKR_DEVICE_REMOVED itself (or a rescan was quicker) */
	ck_assert_uint_eq(sign(c, keyid, keystr, &m, msg, sizeof(msg)), CX_AERR_TOKEN_ABSENT);
	/* and after the rescan, from the loop: the key is listed, not present */
	wait_present(c2, 0, keyid, keystr, sizeof(keystr));
	ck_assert_uint_eq(sign(c, keyid, keystr, &m, msg, sizeof(msg)), CX_AERR_TOKEN_ABSENT);
	ck_assert_msg(strstr(msg, SERIAL) != NULL, "the error names the token: %s", msg);
	/* the rest of the agent is unaffected */
	ck_assert_uint_eq(sign(c2, softid, softstr, &m, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(sign(c, softid, softstr, &m, msg, sizeof(msg)), 0);

	/* back, in another slot (another reader): found by its serial */
	ctl(&g, "slot-1");
	wait_present(c2, 1, keyid, keystr, sizeof(keystr));
	/* a removal flushes the token's cached PIN: the same serial back needs a login */
	ck_assert_uint_eq(sign(c, keyid, keystr, &m, msg, sizeof(msg)), CX_AERR_PIN_REQUIRED);
	ck_assert_int_eq(calls(&g, "C_Login"), 1);
	ck_assert_uint_eq(login(c, PIN, 0), 0);
	ck_assert_msg(
	    sign(c, keyid, keystr, &m, msg, sizeof(msg)) == 0, "after re-insertion: %s", msg);
	ck_assert_int_eq(calls(&g, "C_Login"), 2);
	cx_buf_free(&m);
	cx_agent_close(c);
	cx_agent_close(c2);
	stop(&g);
	ck_assert(grep_file(g.audit, "\"result\":\"token-absent\""));
	/* attached at start-up, and again after coming back */
	ck_assert_int_eq(
	    cx_test_sh("test $(grep -c 'serial %s) attached' '%s') -eq 2", SERIAL, g.log), 0);
	cleanup(&g);
}
END_TEST

/*
 * Signatures find the key once per session (the handle cache); a handle that
 * went stale (the token renumbered its objects) is dropped, the key found
 * again, and the signature still made with the right key.  Every signature's
 * intent line precedes its result in the audit log.
 */
START_TEST(test_key_cache)
{
	char keystr[512], msg[CX_ERR_MSG];
	uint8_t keyid[32];
	struct cx_agent_conn *c;
	struct ag g;
	struct cx_buf m;
	int present, finds;

	start(&g, NULL);
	c = conn(&g);
	ck_assert_uint_eq(login(c, PIN, 0), 0);
	ck_assert(find_m1(c, keyid, keystr, sizeof(keystr), &present));
	tbs_of("m1", &m);
	ck_assert_uint_eq(sign(c, keyid, keystr, &m, msg, sizeof(msg)), 0);
	finds = calls(&g, "C_FindObjectsInit");
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(sign(c, keyid, keystr, &m, msg, sizeof(msg)), 0);
	ck_assert_int_eq(calls(&g, "C_FindObjectsInit"), finds);
	ck_assert_int_eq(calls(&g, "C_Sign"), 6);

	ctl(&g, "rehandle-1");
	ck_assert_msg(sign(c, keyid, keystr, &m, msg, sizeof(msg)) == 0, "stale handle: %s", msg);
	ck_assert_int_gt(calls(&g, "C_FindObjectsInit"), finds);
	finds = calls(&g, "C_FindObjectsInit");
	ck_assert_uint_eq(sign(c, keyid, keystr, &m, msg, sizeof(msg)), 0);
	ck_assert_int_eq(calls(&g, "C_FindObjectsInit"), finds);
	/* a stale handle is never signed with: C_SignInit saw only good handles */
	ck_assert_int_eq(calls(&g, "C_SignInit"), 8);

	cx_buf_free(&m);
	cx_agent_close(c);
	stop(&g);
	ck_assert(grep_file(g.audit, "\"op\":\"sign-intent\""));
	ck_assert_int_eq(
	    cx_test_sh("test $(grep -c '\"op\":\"sign-intent\".*\"result\":\"pending\"' "
	               "'%s') -eq 8",
	        g.audit),
	    0);
	ck_assert_int_eq(
	    cx_test_sh("test $(grep -c '\"op\":\"sign\".*\"result\":\"ok\"' '%s') -eq 8", g.audit),
	    0);
	/* each intent comes right before its result (one client, one token) */
	ck_assert_int_eq(cx_test_sh("grep -o '\"op\":\"sign[a-z-]*\"' '%s' | uniq -c | "
	                            "awk '$1 != 1 {exit 1}'",
	                     g.audit),
	    0);
	cleanup(&g);
}
END_TEST

/*
 * CKF_USER_PIN_FINAL_TRY: without allow_final_try the agent answers
 * FINAL_TRY and C_Login is never called; with it, the PIN is tried.  A wrong
 * PIN is PIN_INCORRECT and is not retried.
 */
START_TEST(test_final_try)
{
	struct cx_agent_conn *c;
	struct ag g;

	start(&g, NULL);
	c = conn(&g);
	ck_assert_uint_eq(login(c, "9999", 0), CX_AERR_PIN_INCORRECT);
	ck_assert_int_eq(calls(&g, "C_Login"), 1);

	ctl(&g, "pin-final-try");
	ck_assert_uint_eq(login(c, PIN, 0), CX_AERR_FINAL_TRY);
	ck_assert_uint_eq(login(c, "9999", 0), CX_AERR_FINAL_TRY);
	ck_assert_int_eq(calls(&g, "C_Login"), 1);
	ck_assert_uint_eq(login(c, PIN, 1), 0);
	ck_assert_int_eq(calls(&g, "C_Login"), 2);

	cx_agent_close(c);
	stop(&g);
	cleanup(&g);
}
END_TEST

/*
 * A token whose info cannot be read for a while (C_GetTokenInfo fails, the
 * slot still lists it) has not left: the rescans keep it, and it signs on.
 */
START_TEST(test_info_error)
{
	char keystr[512], msg[CX_ERR_MSG];
	uint8_t keyid[32];
	struct cx_agent_conn *c;
	struct ag g;
	struct cx_buf m;
	int present;

	start(&g, NULL);
	c = conn(&g);
	ck_assert_uint_eq(login(c, PIN, 0), 0);
	ck_assert(find_m1(c, keyid, keystr, sizeof(keystr), &present));
	tbs_of("m1", &m);
	ck_assert_uint_eq(sign(c, keyid, keystr, &m, msg, sizeof(msg)), 0);
	ctl(&g, "info-error");
	/* two rescans (every 2 s) at least */
	usleep(4500000);
	ck_assert(find_m1(c, keyid, keystr, sizeof(keystr), &present));
	ck_assert_msg(present, "a token whose info failed was taken for removed");
	ck_assert_msg(sign(c, keyid, keystr, &m, msg, sizeof(msg)) == 0, "%s", msg);
	ctl(&g, "");
	ck_assert_uint_eq(sign(c, keyid, keystr, &m, msg, sizeof(msg)), 0);

	cx_buf_free(&m);
	cx_agent_close(c);
	stop(&g);
	cleanup(&g);
}
END_TEST

/* CKF_USER_PIN_LOCKED: PIN_LOCKED, and no PIN is sent to the token. */
START_TEST(test_pin_locked)
{
	struct cx_agent_conn *c;
	struct ag g;

	start(&g, NULL);
	c = conn(&g);
	ctl(&g, "pin-locked");
	ck_assert_uint_eq(login(c, PIN, 0), CX_AERR_PIN_LOCKED);
	ck_assert_uint_eq(login(c, PIN, 1), CX_AERR_PIN_LOCKED);
	ck_assert_int_eq(calls(&g, "C_Login"), 0);

	cx_agent_close(c);
	stop(&g);
	ck_assert(grep_file(g.audit, "\"result\":\"pin-locked\""));
	cleanup(&g);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("agent_faults");
	TCase *tc = tcase_create("faults");
	SRunner *sr;
	int nf;

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_removal);
	tcase_add_test(tc, test_key_cache);
	tcase_add_test(tc, test_final_try);
	tcase_add_test(tc, test_pin_locked);
	tcase_add_test(tc, test_info_error);
	tcase_add_test(tc, test_global_lock);
	tcase_add_test(tc, test_fast_hold);
	tcase_add_test(tc, test_fast_helper_killed);
	tcase_add_test(tc, test_fast_shutdown);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
