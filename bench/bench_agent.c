/*
 * bench_agent: what conex-agent costs when it signs (docs/benchmarks.md,
 * "Agent").  A benchmark, not a test: it prints numbers and the bars they are
 * held to, and fails only when it cannot measure.
 *
 * In a fresh directory it makes two SoftHSM tokens (A and B), starts
 * conex-agent on them (-f, the SoftHSM module as the only allowed one, its
 * audit log in that directory unless --audit-dir), logs in, and has the agent
 * generate on each token an RSA-2048, an Ed25519 and an ECDSA P-256 key.
 * Then, in this one run:
 *
 *   1. latency and throughput, per algorithm, of N signatures on token A's
 *      key, one client, the two paths alternating in blocks of BLOCK:
 *        direct  cx_p11_token_sign in this process (one session, logged in),
 *        agent   cx_agent_sign over the socket (one connection);
 *      both over the same bytes: the conex to-be-signed form of a small
 *      targets resource whose signer is the key's own id (the agent accepts
 *      nothing else), with the key's public key in it;
 *   2. two clients signing in parallel, on tokens A and B, against one
 *      client alone on token A (throughput; N/2 signatures per client, the
 *      median of R runs), with two references without the agent: two
 *      threads of this process, and two processes, signing directly; and
 *      the CPU the two clients' runs spent per signature, with the rate at
 *      which every CPU of the machine would be busy at that cost;
 *   3. C idle client connections held open (each after QUERY/VERSION), then
 *      the agent's VmRSS from /proc/PID/status.
 *
 *   bench_agent [-n N] [--n-rsa N] [--conns C] [--reps R] [--agent PATH]
 *               [--module PATH] [--dir DIR] [--audit-dir DIR] [--keep]
 *
 * Defaults: N = 2000 (RSA too unless --n-rsa), C = 1000, R = 3, the agent and
 * module of this build, a fresh directory in $TMPDIR removed at the end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/conex-agent.h"
#include "conex/resource.h"
#include "pkcs11/token.h"
#include "tests/lib/repobuild.h"
#include "tests/lib/softhsm.h"

extern char **environ;

#define PIN     "123456"
#define CREATED "2025-06-01T12:00:00Z"
#define WARMUP  50
#define MAXREPS 9

static const char *argv0 = "bench_agent";

static void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", argv0);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
dcmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

/* Nearest-rank percentile of sorted v. */
static double
pct(const double *v, size_t n, double p)
{
	double x = p * (double)n;
	size_t k = (size_t)x;

	if ((double)k < x) /* ceil, without libm */
		k++;
	return v[k == 0 ? 0 : k - 1];
}

struct stats {
	double p50, p99, mean, persec; /* µs, µs, µs, signatures per second of wall time */
	size_t n;
};

static void
stats_of(double *lat, size_t n, double wall_us, struct stats *s)
{
	double sum = 0;

	qsort(lat, n, sizeof(*lat), dcmp);
	for (size_t i = 0; i < n; i++)
		sum += lat[i];
	s->n = n;
	s->p50 = pct(lat, n, 0.50);
	s->p99 = pct(lat, n, 0.99);
	s->mean = sum / (double)n;
	s->persec = (double)n / (wall_us / 1e6);
}

/* ---- the agent process ---- */

static pid_t agent_pid;

/*
 * CPU time of every thread of pid, in µs: the sum of its threads'
 * /proc/pid/task/N/schedstat (nanoseconds on the CPU; utime and stime come in
 * clock ticks, too coarse for a few hundred signatures), else utime + stime.
 */
static double
proc_cpu_us(pid_t pid)
{
	char path[96], buf[2048], *p;
	unsigned long ut = 0, st = 0;
	unsigned long long ns, sum = 0;
	struct dirent *de;
	int have = 0;
	FILE *f;
	size_t n;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	if ((d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] < '1' || de->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%ld/task/%ld/schedstat", (long)pid,
			    atol(de->d_name));
			if ((f = fopen(path, "re")) == NULL)
				continue;
			if (fscanf(f, "%llu", &ns) == 1) {
				sum += ns;
				have = 1;
			}
			fclose(f);
		}
		closedir(d);
		if (have)
			return (double)sum / 1e3;
	}
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* fields after "(comm)": state is field 3, utime 14, stime 15 */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* The pids of the agent's child processes (its token helpers), at most max. */
static size_t
agent_children(pid_t *out, size_t max)
{
	char path[64], buf[1024], *p;
	struct dirent *de;
	size_t n = 0, len;
	long pp;
	FILE *f;
	DIR *d;

	if ((d = opendir("/proc")) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL && n < max) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", atol(de->d_name));
		if ((f = fopen(path, "re")) == NULL)
			continue;
		len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = 0;
		if ((p = strrchr(buf, ')')) != NULL && sscanf(p + 2, "%*c %ld", &pp) == 1 &&
		    pp == (long)agent_pid)
			out[n++] = (pid_t)atol(de->d_name);
	}
	closedir(d);
	return n;
}

/*
 * The agent's CPU and its token helpers' (each token's session lives in one
 * unless --no-token-helpers), in µs.
 */
static double
agent_cpu_us(void)
{
	pid_t kids[16];
	size_t n = agent_children(kids, 16);
	double sum = proc_cpu_us(agent_pid);

	for (size_t i = 0; i < n; i++)
		sum += proc_cpu_us(kids[i]);
	return sum;
}

/* kB of a "Name:   N kB" line of /proc/PID/status, or -1. */
static long
proc_status_kb(pid_t pid, const char *name)
{
	char path[64], line[256];
	size_t l = strlen(name);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, name, l) == 0 && line[l] == ':') {
			v = strtol(line + l + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static long
proc_nfds(pid_t pid)
{
	char path[64];
	long n = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* --agent-arg: one more argument for the agent's command line (an A/B of an option) */
static char *agent_extra;

static void
agent_start(
    const char *agent, const char *module, const char *sock, const char *audit, const char *logpath)
{
	char *argv[] = {(char *)agent, "-f", "-a", (char *)sock, "-P", (char *)module, "-m",
	    (char *)module, "--audit", (char *)audit, agent_extra, NULL};
	posix_spawn_file_actions_t fa;
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	int st;

	if (posix_spawn_file_actions_init(&fa) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 1, logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600) !=
	        0 ||
	    posix_spawn_file_actions_adddup2(&fa, 1, 2) != 0)
		die("posix_spawn_file_actions");
	if ((errno = posix_spawn(&agent_pid, agent, &fa, NULL, argv, environ)) != 0)
		die("%s: %s", agent, strerror(errno));
	posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 500; i++) {
		if (waitpid(agent_pid, &st, WNOHANG) == agent_pid)
			die("conex-agent exited at start-up (status %d): see %s", st, logpath);
		if (cx_agent_connect(sock, &c, &e) == 0) {
			cx_agent_close(c);
			return;
		}
		usleep(20000);
	}
	die("conex-agent does not answer on %s: %s", sock, e.msg);
}

static void
agent_stop(void)
{
	int st;

	if (agent_pid <= 0)
		return;
	kill(agent_pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(agent_pid, &st, WNOHANG) == agent_pid) {
			agent_pid = 0;
			return;
		}
		usleep(50000);
	}
	kill(agent_pid, SIGKILL);
	waitpid(agent_pid, &st, 0);
	agent_pid = 0;
}

/* ---- keys and the bytes to sign ---- */

enum { ALG_RSA, ALG_ECDSA, ALG_ED25519, NALG };
static const char *const alg_name[NALG] = {"RSA-2048 PSS", "ECDSA P-256", "Ed25519"};
static const char *const alg_id[NALG] = {"rsa", "ec", "ed"}; /* conex ids (CKA_LABEL) */
static const uint8_t alg_mkey[NALG] = {CX_MKEY_RSA, CX_MKEY_ECDSA_P256, CX_MKEY_ED25519};
static const uint8_t alg_msig[NALG] = {
    CX_MSIG_RSAPSS_SHA256, CX_MSIG_ECDSA_P256_SHA256, CX_MSIG_ED25519};
static const enum cx_p11_mech alg_mech[NALG] = {
    CX_P11_RSA_PSS_SHA256, CX_P11_ECDSA_SHA256, CX_P11_EDDSA};

struct bkey {
	struct cx_msg_key *ak; /* the agent's GENERATED answer */
	struct cx_p11_key *pk; /* the same key, listed in this process */
	struct cx_buf tbs;     /* the conex to-be-signed bytes */
};

/*
 * The to-be-signed bytes of a small targets resource "id" (3 targets, valid =
 * the key itself, the key's public key in keys) to be signed by id.  ECDSA
 * has no conex key or signature type: its bytes hold no key and say ed25519,
 * which the agent refuses for an ECDSA key.
 */
static void
make_tbs(const char *id, const struct cx_msg_key *k, struct cx_buf *tbs)
{
	static const char *const files[] = {"packages/demo/demo.1.0.0/opam",
	    "packages/demo/demo.1.1.0/opam", "packages/demo/demo.1.1.0/files/fix.patch"};
	struct cx_arena a;
	struct cx_resource *r;
	struct cx_keyref lr;
	struct rb_key rk;
	struct cx_buf canon;

	memset(&rk, 0, sizeof(rk));
	rk.id = (char *)id;
	rk.alg = k->keyalg == CX_MKEY_RSA ? CX_KEY_RSA : CX_KEY_ED25519;
	rk.keystr = (char *)k->keystr;
	rk.keystrlen = strlen(k->keystr);
	snprintf(rk.created, sizeof(rk.created), "%s", CREATED);
	cx_arena_init(&a, 0);
	r = rb_new(&a, CX_R_TARGETS, id, CREATED);
	r->counter = 41;
	if (k->keyalg != CX_MKEY_ECDSA_P256) /* conex has no ECDSA key entry */
		rb_add_key(&a, r, &rk);
	lr = rb_local(id);
	r->valid = rb_quorum(&a, 1, &lr, 1);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		rb_add_target(&a, r, files[i], files[i], strlen(files[i]));
	cx_buf_init(&canon, 0);
	cx_buf_init(tbs, 0);
	if (cx_resource_canon(r, &canon) != 0 ||
	    cx_tbs(canon.d, canon.len, CREATED, id,
	        k->keyalg == CX_MKEY_RSA ? CX_SIG_RSAPSS_SHA256 : CX_SIG_ED25519, tbs) != 0)
		die("%s: cannot build the bytes to sign", id);
	cx_buf_free(&canon);
	cx_arena_free(&a);
}

/* Checks one signature with the key's conex public key (RSA, Ed25519). */
static void
check_sig(const struct bkey *k, const uint8_t *sig, size_t n, const char *what)
{
	struct cx_err e = {0};
	enum cx_keyalg alg;
	EVP_PKEY *pub;

	if (k->ak->keyalg == CX_MKEY_ECDSA_P256)
		return; /* no conex key string parser for it: the signature's length is all */
	if (cx_pubkey_parse(k->ak->keystr, strlen(k->ak->keystr), &pub, &alg, &e) != 0)
		die("%s: %s", k->ak->id, e.msg);
	if (cx_sig_verify(pub, cx_sigalg_for_key(alg), k->tbs.d, k->tbs.len, sig, n, &e) != 0)
		die("%s: %s signature does not verify: %s", k->ak->id, what, e.msg);
	EVP_PKEY_free(pub);
}

/* ---- 1. latency ---- */

/*
 * Direct and agent signatures are made in alternating blocks of BLOCK, so
 * that whatever else the machine does in the meantime falls on both alike.
 */
#define BLOCK 100

struct series {
	double *lat; /* µs, one per signature */
	size_t n;
	double wall; /* µs spent in the blocks */
	double cpu;  /* agent CPU µs in the blocks (agent series only) */
};

static void
series_init(struct series *s, size_t n)
{
	memset(s, 0, sizeof(*s));
	if ((s->lat = calloc(n, sizeof(*s->lat))) == NULL)
		die("out of memory");
}

/* m direct signatures; recorded unless s is NULL (warm-up). */
static void
direct_block(struct cx_p11_token *t, const struct bkey *k, int alg, size_t m, struct series *s)
{
	struct cx_buf sig;
	struct cx_err e = {0};
	double t0, t1, start = now_us();

	cx_buf_init(&sig, 0);
	for (size_t i = 0; i < m; i++) {
		cx_buf_reset(&sig);
		t0 = now_us();
		if (cx_p11_token_sign(
		        t, k->pk, alg_mech[alg], k->tbs.d, k->tbs.len, NULL, 0, &sig, &e) != 0)
			die("direct %s: %s", alg_name[alg], e.msg);
		t1 = now_us();
		if (s == NULL && i == 0)
			check_sig(k, sig.d, sig.len, "direct");
		if (s != NULL)
			s->lat[s->n++] = t1 - t0;
	}
	if (s != NULL)
		s->wall += now_us() - start;
	cx_buf_free(&sig);
}

/* The agent's child processes (its token helpers): how many, and their VmRSS in kB. */
static long
children_rss_kb(size_t *n)
{
	pid_t kids[16];
	long sum = 0;

	*n = agent_children(kids, 16);
	for (size_t i = 0; i < *n; i++)
		sum += proc_status_kb(kids[i], "VmRSS");
	return sum;
}

/* The same through the agent; -1 and the agent's answer in why when it refuses. */
static int
agent_block(struct cx_agent_conn *c, const struct bkey *k, int alg, size_t m, struct series *s,
    char *why, size_t whylen)
{
	struct cx_buf sig;
	struct cx_err e = {0};
	double t0, t1, start = now_us(), cpu0 = agent_cpu_us();

	cx_buf_init(&sig, 0);
	for (size_t i = 0; i < m; i++) {
		cx_buf_reset(&sig);
		t0 = now_us();
		if (cx_agent_sign(c, k->ak->keyid, alg_msig[alg], k->tbs.d, k->tbs.len, &sig, &e) !=
		    0) {
			if (s == NULL && i == 0 && e.code == CX_EAGENT) {
				snprintf(why, whylen, "%s", e.msg);
				cx_buf_free(&sig);
				return -1;
			}
			die("agent %s: %s", alg_name[alg], e.msg);
		}
		t1 = now_us();
		if (s == NULL && i == 0)
			check_sig(k, sig.d, sig.len, "the agent's");
		if (s != NULL)
			s->lat[s->n++] = t1 - t0;
	}
	if (s != NULL) {
		s->wall += now_us() - start;
		s->cpu += agent_cpu_us() - cpu0;
	}
	cx_buf_free(&sig);
	return 0;
}

/* n signatures each way, alternating blocks; 0, or -1 when the agent refuses the key. */
static int
bench_latency(struct cx_p11_token *t, struct cx_agent_conn *c, const struct bkey *k, int alg,
    size_t n, struct stats *sd, struct stats *sa, double *cpu_per_sig, char *why, size_t whylen)
{
	struct series d, a;
	int agent_ok;

	series_init(&d, n);
	series_init(&a, n);
	direct_block(t, k, alg, WARMUP, NULL);
	agent_ok = agent_block(c, k, alg, WARMUP, NULL, why, whylen) == 0;
	while (d.n < n) {
		size_t m = n - d.n < BLOCK ? n - d.n : BLOCK;
		direct_block(t, k, alg, m, &d);
		if (agent_ok)
			agent_block(c, k, alg, m, &a, why, whylen);
	}
	stats_of(d.lat, d.n, d.wall, sd);
	if (agent_ok) {
		stats_of(a.lat, a.n, a.wall, sa);
		*cpu_per_sig = a.cpu / (double)a.n;
	}
	free(d.lat);
	free(a.lat);
	return agent_ok ? 0 : -1;
}

/* Round trips of a request the agent refuses on its event loop (no token): p50 in µs. */
static double
bench_refusal(struct cx_agent_conn *c, const struct bkey *k, int alg, size_t n)
{
	double *lat = calloc(n, sizeof(*lat)), t0, r;
	struct cx_buf sig;
	struct cx_err e = {0};
	struct stats s;

	if (lat == NULL)
		die("out of memory");
	cx_buf_init(&sig, 0);
	for (size_t i = 0; i < n; i++) {
		cx_buf_reset(&sig);
		t0 = now_us();
		if (cx_agent_sign(c, k->ak->keyid, alg_msig[alg], k->tbs.d, k->tbs.len, &sig, &e) ==
		    0)
			die("the agent signed what it should refuse");
		lat[i] = now_us() - t0;
	}
	stats_of(lat, n, 1, &s);
	r = s.p50;
	cx_buf_free(&sig);
	free(lat);
	return r;
}

/* ---- 2. parallel clients ---- */

struct worker_arg {
	const char *sock;
	const struct bkey *k;
	int alg;
	size_t n;
	pthread_barrier_t *go;
	double start, end;
	char err[CX_ERR_MSG + 16];
};

static void *
par_worker(void *p)
{
	struct worker_arg *w = p;
	struct cx_agent_conn *c;
	struct cx_buf sig;
	struct cx_err e = {0};

	if (cx_agent_connect(w->sock, &c, &e) != 0) {
		snprintf(w->err, sizeof(w->err), "connect: %s", e.msg);
		pthread_barrier_wait(w->go);
		return NULL;
	}
	cx_buf_init(&sig, 0);
	pthread_barrier_wait(w->go);
	w->start = now_us();
	for (size_t i = 0; i < w->n; i++) {
		cx_buf_reset(&sig);
		if (cx_agent_sign(c, w->k->ak->keyid, alg_msig[w->alg], w->k->tbs.d, w->k->tbs.len,
		        &sig, &e) != 0) {
			snprintf(w->err, sizeof(w->err), "sign: %s", e.msg);
			break;
		}
	}
	w->end = now_us();
	cx_buf_free(&sig);
	cx_agent_close(c);
	return NULL;
}

struct dworker_arg {
	struct cx_p11_token *t;
	const struct bkey *k;
	int alg;
	size_t n;
	pthread_barrier_t *go;
	double start, end;
	char err[CX_ERR_MSG + 16];
};

static void *
par_dworker(void *p)
{
	struct dworker_arg *w = p;
	struct cx_buf sig;
	struct cx_err e = {0};

	cx_buf_init(&sig, 0);
	pthread_barrier_wait(w->go);
	w->start = now_us();
	for (size_t i = 0; i < w->n; i++) {
		cx_buf_reset(&sig);
		if (cx_p11_token_sign(w->t, w->k->pk, alg_mech[w->alg], w->k->tbs.d, w->k->tbs.len,
		        NULL, 0, &sig, &e) != 0) {
			snprintf(w->err, sizeof(w->err), "sign: %s", e.msg);
			break;
		}
	}
	w->end = now_us();
	cx_buf_free(&sig);
	return NULL;
}

/* The same without the agent: nk threads in this process, thread i on token i's session. */
static double
par_direct(
    struct cx_p11_token *const *toks, const struct bkey *const *keys, size_t nk, int alg, size_t n)
{
	struct dworker_arg w[2];
	pthread_t th[2];
	pthread_barrier_t go;
	double start = 1e300, end = 0;

	pthread_barrier_init(&go, NULL, (unsigned)nk);
	for (size_t i = 0; i < nk; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].t = toks[i];
		w[i].k = keys[i];
		w[i].alg = alg;
		w[i].n = n;
		w[i].go = &go;
		if (pthread_create(&th[i], NULL, par_dworker, &w[i]) != 0)
			die("pthread_create");
	}
	for (size_t i = 0; i < nk; i++) {
		pthread_join(th[i], NULL);
		if (w[i].err[0])
			die("parallel direct %zu: %s", i, w[i].err);
		if (w[i].start < start)
			start = w[i].start;
		if (w[i].end > end)
			end = w[i].end;
	}
	pthread_barrier_destroy(&go);
	return (double)(n * nk) / ((end - start) / 1e6);
}

/* This process's CPU in µs, its threads that ended included (schedstat forgets them). */
static double
self_cpu_us(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Signatures per second of nk clients in parallel, client i on keys[i]. */
static double
par_run(const char *sock, const struct bkey *const *keys, size_t nk, int alg, size_t n,
    double *cpu_per_sig, double *client_cpu_per_sig)
{
	struct worker_arg w[2];
	pthread_t th[2];
	pthread_barrier_t go;
	double start = 1e300, end = 0, cpu0 = agent_cpu_us(), ccpu0 = self_cpu_us();

	pthread_barrier_init(&go, NULL, (unsigned)nk);
	for (size_t i = 0; i < nk; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].sock = sock;
		w[i].k = keys[i];
		w[i].alg = alg;
		w[i].n = n;
		w[i].go = &go;
		if (pthread_create(&th[i], NULL, par_worker, &w[i]) != 0)
			die("pthread_create");
	}
	for (size_t i = 0; i < nk; i++) {
		pthread_join(th[i], NULL);
		if (w[i].err[0])
			die("parallel client %zu: %s", i, w[i].err);
		if (w[i].start < start)
			start = w[i].start;
		if (w[i].end > end)
			end = w[i].end;
	}
	pthread_barrier_destroy(&go);
	*cpu_per_sig = (agent_cpu_us() - cpu0) / (double)(n * nk);
	/* this process is the clients while they run (the main thread only waits) */
	*client_cpu_per_sig = (self_cpu_us() - ccpu0) / (double)(n * nk);
	return (double)(n * nk) / ((end - start) / 1e6);
}

/*
 * What the machine allows two clients: with every CPU busy they make at most
 * ncpu / (CPU per signature) a second, the CPU as they spent it (polling
 * included).  A ratio under the bar here needs less CPU, not better overlap.
 */
static int
ceiling_line(
    char *buf, size_t len, int alg, double agent_us, double client_us, long ncpu, double one_rate)
{
	double tot = agent_us + client_us, most;

	if (tot <= 0 || ncpu <= 0 || one_rate <= 0)
		return 0;
	most = (double)ncpu * 1e6 / tot;
	return snprintf(buf, len,
	           "  %-12s  two clients spent %.0f µs of CPU per signature (agent and helpers "
	           "%.0f, clients %.0f): %ld CPUs allow at most %.0f/s = %.2fx one client\n",
	           alg_name[alg], tot, agent_us, client_us, ncpu, most, most / one_rate) > 0;
}

/*
 * The reference for the parallel case without one shared process: a copy of
 * this program (--direct-child LABEL ALG N) loads the module itself, opens the
 * token labelled LABEL, signs N times with its key ALG directly, and prints
 * its start and end (CLOCK_MONOTONIC µs).
 */
static unsigned long slot_of(struct cx_p11_module *m, const char *label, char serial[17]);

static int
direct_child(const char *module, const char *label, int alg, size_t n)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_p11_key *l;
	struct cx_msg_key ak;
	struct bkey k;
	struct cx_buf sig;
	struct cx_err e = {0};
	char serial[17];
	size_t ln, i;
	double start;

	if (cx_p11_module_load(module, &module, 1, &m, &e) != 0 ||
	    cx_p11_token_open(m, slot_of(m, label, serial), &t, &e) != 0 ||
	    cx_p11_token_login(t, PIN, strlen(PIN), 0, &e) != 0 ||
	    cx_p11_token_keys(t, &l, &ln, &e) != 0)
		die("child %s: %s", label, e.msg);
	memset(&k, 0, sizeof(k));
	for (i = 0; i < ln; i++)
		if (strcmp(l[i].label, alg_id[alg]) == 0)
			k.pk = &l[i];
	if (k.pk == NULL)
		die("child %s: no key %s", label, alg_id[alg]);
	memset(&ak, 0, sizeof(ak));
	ak.keystr = k.pk->keystr;
	ak.keyalg = alg_mkey[alg];
	make_tbs(alg_id[alg], &ak, &k.tbs);
	cx_buf_init(&sig, 0);
	for (i = 0; i < WARMUP; i++) {
		cx_buf_reset(&sig);
		if (cx_p11_token_sign(
		        t, k.pk, alg_mech[alg], k.tbs.d, k.tbs.len, NULL, 0, &sig, &e))
			die("child %s: %s", label, e.msg);
	}
	start = now_us();
	for (i = 0; i < n; i++) {
		cx_buf_reset(&sig);
		if (cx_p11_token_sign(
		        t, k.pk, alg_mech[alg], k.tbs.d, k.tbs.len, NULL, 0, &sig, &e))
			die("child %s: %s", label, e.msg);
	}
	printf("%.3f %.3f\n", start, now_us());
	return 0;
}

/* Signatures per second of nk copies of this program (direct_child) on tokens A, B. */
static double
par_procs(const char *self, const char *module, size_t nk, int alg, size_t n)
{
	static const char *const labels[2] = {"bencha", "benchb"};
	double start = 1e300, end = 0, s0, s1;
	char nbuf[32], abuf[16];
	FILE *f[2];
	pid_t pid[2];
	int fd[2][2], st;

	snprintf(nbuf, sizeof(nbuf), "%zu", n);
	snprintf(abuf, sizeof(abuf), "%d", alg);
	for (size_t i = 0; i < nk; i++) {
		char *argv[] = {(char *)self, "--module", (char *)module, "--direct-child",
		    (char *)labels[i], abuf, nbuf, NULL};
		posix_spawn_file_actions_t fa;
		if (pipe(fd[i]) != 0 || posix_spawn_file_actions_init(&fa) != 0 ||
		    posix_spawn_file_actions_adddup2(&fa, fd[i][1], 1) != 0 ||
		    posix_spawn_file_actions_addclose(&fa, fd[i][0]) != 0)
			die("pipe");
		if ((errno = posix_spawn(&pid[i], self, &fa, NULL, argv, environ)) != 0)
			die("%s: %s", self, strerror(errno));
		posix_spawn_file_actions_destroy(&fa);
		close(fd[i][1]);
	}
	for (size_t i = 0; i < nk; i++) {
		if ((f[i] = fdopen(fd[i][0], "r")) == NULL ||
		    fscanf(f[i], "%lf %lf", &s0, &s1) != 2)
			die("direct child %zu: no result", i);
		fclose(f[i]);
		waitpid(pid[i], &st, 0);
		if (s0 < start)
			start = s0;
		if (s1 > end)
			end = s1;
	}
	return (double)(n * nk) / ((end - start) / 1e6);
}

/* ---- set-up ---- */

static unsigned long
slot_of(struct cx_p11_module *m, const char *label, char serial[17])
{
	struct cx_p11_token_info ti;
	struct cx_err e = {0};
	unsigned long *slots, s = 0;
	size_t n, i;

	if (cx_p11_slots(m, &slots, &n, &e) != 0)
		die("slots: %s", e.msg);
	for (i = 0; i < n; i++) {
		/*
		 * SoftHSM answers CKR_GENERAL_ERROR while another process (the
		 * other direct child logging in) rewrites the token's file: ask again.
		 */
		for (int tries = 0; cx_p11_token_info(m, slots[i], &ti, &e) != 0; tries++) {
			if (tries == 100)
				die("token info: %s", e.msg);
			usleep(10000);
		}
		if (strcmp(ti.label, label) == 0) {
			s = slots[i];
			memcpy(serial, ti.serial, 17);
			break;
		}
	}
	free(slots);
	if (i == n)
		die("no token labelled %s", label);
	return s;
}

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static void
print_stats(const char *alg, const char *path, const struct stats *s, const char *extra)
{
	printf("| %-12s | %-6s | %9.1f | %9.1f | %9.1f | %8.0f | %s\n", alg, path, s->p50, s->p99,
	    s->mean, s->persec, extra);
}

static const char *
bar(int met)
{
	return met ? "met" : "MISSED";
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {{"n-rsa", required_argument, NULL, 'r'},
	    {"conns", required_argument, NULL, 'c'}, {"agent", required_argument, NULL, 'a'},
	    {"module", required_argument, NULL, 'm'}, {"dir", required_argument, NULL, 'd'},
	    {"audit-dir", required_argument, NULL, 'u'}, {"keep", no_argument, NULL, 'k'},
	    {"direct-child", no_argument, NULL, 'C'}, {"reps", required_argument, NULL, 'R'},
	    {"agent-arg", required_argument, NULL, 'x'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	const char *agent = CX_BUILD_DIR "/conex-agent", *module = cx_softhsm_module();
	const char *auditdir = NULL;
	char *dir = NULL, sock[4096], audit[4096], logp[4096], serial[2][17];
	size_t n = 2000, nrsa = 0, nconns = 1000;
	int keep = 0, ch, ok = 1, child = 0, reps = 3;
	struct cx_agent_conn *c, **idle;
	struct cx_p11_module *m;
	struct cx_p11_token *tok[2];
	struct cx_p11_key *plist[2];
	size_t pn[2];
	struct bkey keys[2][NALG];
	char cpu_line[NALG][256];
	int cpu_note[NALG] = {0};
	long ncpu;
	struct stats sd[NALG], sa[NALG];
	double cpu[NALG], refusal_p50 = -1;
	char why[NALG][CX_ERR_MSG];
	int measured[NALG];
	struct cx_err e = {0};
	struct rlimit rl;

	argv0 = argv[0];
	while ((ch = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			nrsa = strtoul(optarg, NULL, 10);
			break;
		case 'c':
			nconns = strtoul(optarg, NULL, 10);
			break;
		case 'a':
			agent = optarg;
			break;
		case 'm':
			module = optarg;
			break;
		case 'd':
			dir = strdup(optarg);
			break;
		case 'u':
			auditdir = optarg;
			break;
		case 'k':
			keep = 1;
			break;
		case 'C':
			child = 1;
			break;
		case 'R':
			reps = atoi(optarg);
			break;
		case 'x':
			agent_extra = optarg;
			break;
		case 'h':
			printf(
			    "usage: bench_agent [-n N] [--n-rsa N] [--conns C] [--reps R] [--agent PATH]\n"
			    "                   [--module PATH] [--dir DIR] [--audit-dir DIR] "
			    "[--keep]\n"
			    "                   [--agent-arg ARG]\n");
			return 0;
		default:
			return 2;
		}
	}
	if (child) {
		if (argc - optind != 3)
			die("--direct-child LABEL ALG N");
		return direct_child(module, argv[optind], atoi(argv[optind + 1]),
		    strtoul(argv[optind + 2], NULL, 10));
	}
	if (n < 10 || nconns < 1 || reps < 1 || reps > MAXREPS)
		die("-n wants 10 or more, --conns 1 or more, --reps 1 to %d", MAXREPS);
	if (nrsa == 0)
		nrsa = n;
	if (!cx_softhsm_available() || access(module, R_OK) != 0)
		die("SoftHSM2 is not installed (%s)", module);

	/* C idle connections + the rest: raise the soft limit as far as the hard one */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nconns + 64) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > nconns + 64
		    ? nconns + 64
		    : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < nconns + 16)
			die("RLIMIT_NOFILE: cannot raise it to %zu", nconns + 64);
	}

	if (dir == NULL) {
		const char *t = getenv("TMPDIR");
		if (asprintf(&dir, "%s/cx-bench-agent.XXXXXX", t && *t ? t : "/tmp") < 0 ||
		    mkdtemp(dir) == NULL)
			die("mkdtemp: %s", strerror(errno));
	} else if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		die("%s: %s", dir, strerror(errno));
	}
	snprintf(sock, sizeof(sock), "%s/agent/agent.sock", dir);
	snprintf(audit, sizeof(audit), "%s/audit.log", auditdir != NULL ? auditdir : dir);
	snprintf(logp, sizeof(logp), "%s/agent.log", dir);
	if (auditdir != NULL)
		unlink(audit);

	/* tokens first (softhsm2-util), then the agent, then the module here */
	if (cx_softhsm_setup(dir) != 0 || cx_softhsm_init_token("bencha", PIN) != 0 ||
	    cx_softhsm_init_token("benchb", PIN) != 0)
		die("cannot make the SoftHSM tokens in %s", dir);
	agent_start(agent, module, sock, audit, logp);
	atexit(agent_stop);
	if (cx_p11_module_load(module, &module, 1, &m, &e) != 0)
		die("%s: %s", module, e.msg);
	unsigned long slot[2] = {slot_of(m, "bencha", serial[0]), slot_of(m, "benchb", serial[1])};

	if (cx_agent_connect(sock, &c, &e) != 0)
		die("connect: %s", e.msg);
	for (int t = 0; t < 2; t++) {
		if (cx_agent_token_login(c, serial[t], PIN, strlen(PIN), 0, &e) != 0)
			die("agent login %s: %s", serial[t], e.msg);
		for (int al = 0; al < NALG; al++) {
			if (cx_agent_generate(c, serial[t], alg_id[al], alg_mkey[al],
			        al == ALG_RSA ? 2048 : 0, &keys[t][al].ak, &e) != 0)
				die("generate %s on %s: %s", alg_id[al], serial[t], e.msg);
			make_tbs(alg_id[al], keys[t][al].ak, &keys[t][al].tbs);
		}
	}
	/* the same keys, in this process: one session per token, logged in */
	for (int t = 0; t < 2; t++) {
		if (cx_p11_token_open(m, slot[t], &tok[t], &e) != 0 ||
		    cx_p11_token_login(tok[t], PIN, strlen(PIN), 0, &e) != 0 ||
		    cx_p11_token_keys(tok[t], &plist[t], &pn[t], &e) != 0)
			die("token %s: %s", serial[t], e.msg);
		for (int al = 0; al < NALG; al++) {
			keys[t][al].pk = NULL;
			for (size_t i = 0; i < pn[t]; i++)
				if (memcmp(plist[t][i].keyid, keys[t][al].ak->keyid, 32) == 0)
					keys[t][al].pk = &plist[t][i];
			if (keys[t][al].pk == NULL)
				die("token %s: key %s not found in this process", serial[t],
				    alg_id[al]);
		}
	}

	printf("conex-agent signing benchmark: SoftHSM tokens in %s, audit log %s\n", dir, audit);
	printf("N = %zu signatures per case (RSA: %zu), %d warm-up signatures first; "
	       "to-be-signed bytes: %zu (RSA), %zu (Ed25519)\n\n",
	    n, nrsa, WARMUP, keys[0][ALG_RSA].tbs.len, keys[0][ALG_ED25519].tbs.len);

	/* 1. latency, one client, token A */
	for (int al = 0; al < NALG; al++) {
		size_t nn = al == ALG_RSA ? nrsa : n;
		measured[al] = bench_latency(tok[0], c, &keys[0][al], al, nn, &sd[al], &sa[al],
		                   &cpu[al], why[al], sizeof(why[al])) == 0;
		if (!measured[al] && refusal_p50 < 0)
			refusal_p50 = bench_refusal(c, &keys[0][al], al, n);
	}
	printf("Sign latency, one client, token A (µs; sig/s = N / wall time)\n\n");
	printf("| %-12s | %-6s | %9s | %9s | %9s | %8s | %s\n", "algorithm", "path", "p50", "p99",
	    "mean", "sig/s", "");
	printf("|--------------|--------|-----------|-----------|-----------|----------|\n");
	for (int al = 0; al < NALG; al++) {
		char extra[128];
		print_stats(alg_name[al], "direct", &sd[al], "");
		if (measured[al]) {
			snprintf(extra, sizeof(extra), "agent CPU %.0f µs/sig", cpu[al]);
			print_stats(alg_name[al], "agent", &sa[al], extra);
		} else {
			printf("| %-12s | %-6s | %9s | %9s | %9s | %8s | refused\n", alg_name[al],
			    "agent", "-", "-", "-", "-");
		}
	}
	printf("\nAgent overhead at p50 (agent p50 - direct p50):\n");
	for (int al = 0; al < NALG; al++) {
		double d;
		if (!measured[al]) {
			printf("  %-12s  not measurable: the agent refuses: %s\n", alg_name[al],
			    why[al]);
			continue;
		}
		d = sa[al].p50 - sd[al].p50;
		if (al == ALG_RSA) {
			printf("  %-12s  %+8.1f µs = %+5.1f%% of direct   (bar: <= 10%%: %s)\n",
			    alg_name[al], d, 100 * d / sd[al].p50, bar(d <= 0.10 * sd[al].p50));
			ok &= d <= 0.10 * sd[al].p50;
		} else {
			printf("  %-12s  %+8.1f µs = %+5.1f%% of direct   (bar: <= 60 µs: %s)\n",
			    alg_name[al], d, 100 * d / sd[al].p50, bar(d <= 60));
			ok &= d <= 60;
		}
	}
	if (refusal_p50 >= 0)
		printf("  (a refused SIGN, answered on the agent's event loop without a token: "
		       "p50 %.1f µs round trip)\n",
		    refusal_p50);

	/* 2. parallel clients on two tokens */
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	printf("\nTwo clients in parallel on tokens A and B, against one client on token A "
	       "(signatures/s, %zu (RSA: %zu) per client, median of %d runs)\n\n",
	    n / 2, nrsa / 2, reps);
	printf("| %-12s | %-6s | %10s | %10s | %8s |\n", "algorithm", "path", "1 client",
	    "2 clients", "speed-up");
	printf("|--------------|--------|------------|------------|----------|\n");
	for (int al = 0; al < NALG; al++) {
		const struct bkey *one[1] = {&keys[0][al]}, *two[2] = {&keys[0][al], &keys[1][al]};
		size_t nn = (al == ALG_RSA ? nrsa : n) / 2;
		double v[3][2][MAXREPS], med[3][2], pcpu[2][MAXREPS], ccpu[2][MAXREPS];
		static const char *const what[3] = {
		    "direct, 1 vs 2 threads of one process", "direct, 1 vs 2 processes", ""};

		/* references without the agent: threads of this process (one session each),
		 * and separate processes (each its own SoftHSM); medians of reps runs */
		for (int r = 0; r < reps; r++) {
			v[0][0][r] = par_direct(tok, one, 1, al, nn);
			v[0][1][r] = par_direct(tok, two, 2, al, nn);
			v[1][0][r] = par_procs(argv[0], module, 1, al, nn);
			v[1][1][r] = par_procs(argv[0], module, 2, al, nn);
			if (measured[al]) {
				v[2][0][r] =
				    par_run(sock, one, 1, al, nn, &pcpu[0][r], &ccpu[0][r]);
				v[2][1][r] =
				    par_run(sock, two, 2, al, nn, &pcpu[1][r], &ccpu[1][r]);
			}
		}
		for (int p = 0; p < 3; p++)
			for (int q = 0; q < 2; q++) {
				qsort(v[p][q], (size_t)reps, sizeof(double), dcmp);
				med[p][q] = v[p][q][reps / 2];
			}
		for (int p = 0; p < 3; p++) {
			if (p == 2 && !measured[al])
				continue;
			printf("| %-12s | %-6s | %10.0f | %10.0f | %7.2fx | ", alg_name[al],
			    p == 2 ? "agent" : "direct", med[p][0], med[p][1],
			    med[p][1] / med[p][0]);
			if (p == 2) {
				qsort(pcpu[0], (size_t)reps, sizeof(double), dcmp);
				qsort(pcpu[1], (size_t)reps, sizeof(double), dcmp);
				qsort(ccpu[1], (size_t)reps, sizeof(double), dcmp);
				printf("bar >= 1.7x: %s; agent CPU %.0f | %.0f µs/sig\n",
				    bar(med[p][1] / med[p][0] >= 1.7), pcpu[0][reps / 2],
				    pcpu[1][reps / 2]);
				ok &= med[p][1] / med[p][0] >= 1.7;
				cpu_note[al] = ceiling_line(cpu_line[al], sizeof(cpu_line[al]), al,
				    pcpu[1][reps / 2], ccpu[1][reps / 2], ncpu, med[p][0]);
			} else
				printf("%s\n", what[p]);
		}
	}

	for (int al = 0; al < NALG; al++)
		if (cpu_note[al])
			fputs(cpu_line[al], stdout);

	/* 3. idle connections */
	{
		long rss0 = proc_status_kb(agent_pid, "VmRSS"), rss1, hwm, fds, hrss;
		size_t nhelpers;
		size_t i, got = 0;
		struct cx_msg_key *lk;
		size_t ln;
		double t0 = now_us(), topen;

		if ((idle = calloc(nconns, sizeof(*idle))) == NULL)
			die("out of memory");
		for (i = 0; i < nconns; i++) {
			if (cx_agent_connect(sock, &idle[i], &e) != 0) {
				fprintf(stderr, "%s: connection %zu: %s\n", argv0, i + 1, e.msg);
				break;
			}
			got++;
		}
		topen = now_us() - t0;
		usleep(200000);
		rss1 = proc_status_kb(agent_pid, "VmRSS");
		hwm = proc_status_kb(agent_pid, "VmHWM");
		hrss = children_rss_kb(&nhelpers);
		fds = proc_nfds(agent_pid);
		/* still serving: a LIST on the newest connection and on the first */
		if (got == 0 || cx_agent_list(idle[got - 1], &lk, &ln, &e) != 0)
			die("LIST with %zu connections open: %s", got, e.msg);
		cx_agent_keys_free(lk);
		if (cx_agent_list(idle[0], &lk, &ln, &e) != 0)
			die("LIST on the first of %zu connections: %s", got, e.msg);
		cx_agent_keys_free(lk);
		printf(
		    "\n%zu idle connections (each after QUERY/VERSION), opened in %.0f ms: agent "
		    "VmRSS %.1f MB -> %.1f MB (+%.1f kB per connection; VmHWM %.1f MB), %ld fds "
		    "open; LIST still answered   (bar: < 50 MB: %s)\n"
		    "helper processes: %zu (one per token, one per module), VmRSS %.1f MB in all (not per "
		    "connection)\n",
		    got, topen / 1e3, rss0 / 1024.0, rss1 / 1024.0,
		    got ? (double)(rss1 - rss0) / (double)got : 0.0, hwm / 1024.0, fds,
		    bar(got == nconns && rss1 < 50 * 1024), nhelpers, hrss / 1024.0);
		ok &= got == nconns && rss1 < 50 * 1024;
		for (i = 0; i < got; i++)
			cx_agent_close(idle[i]);
		free(idle);
	}

	printf("\nbars: %s\n", ok ? "all met" : "some MISSED (see above)");
	cx_agent_close(c);
	for (int t = 0; t < 2; t++) {
		for (int al = 0; al < NALG; al++) {
			cx_agent_keys_free(keys[t][al].ak);
			cx_buf_free(&keys[t][al].tbs);
		}
		cx_p11_keys_free(plist[t], pn[t]);
		cx_p11_token_close(tok[t]);
	}
	cx_p11_module_unload(m);
	agent_stop();
	if (!keep)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		printf("kept %s\n", dir);
	free(dir);
	return 0;
}
