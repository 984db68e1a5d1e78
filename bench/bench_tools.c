/*
 * bench_tools: the two reference numbers bench/run_tools.sh holds the signing
 * tools against (docs/benchmarks.md, "Signing tools").  A benchmark, not a
 * test: it prints numbers and fails only when it cannot measure.
 *
 *   bench_tools floor REPO REPS
 *       the hashing floor: walk REPO/packages and SHA-256 every file with the
 *       library's parallel walker (what `conex targets compute` cannot do
 *       without), REPS times after a warm-up; prints "floor_s MEDIAN FILES".
 *   bench_tools tokensign MODULE LABEL PIN KEYLABEL N
 *       the token's own signing time: N signatures directly on the SoftHSM
 *       token LABEL (SOFTHSM2_CONF from the environment) with its key
 *       KEYLABEL, one session, logged in; prints "token_sign_us P50".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conex/repo.h"
#include "pkcs11/token.h"

static void __attribute__((noreturn)) die(const char *what, const char *msg)
{
	fprintf(stderr, "bench_tools: %s: %s\n", what, msg);
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int
cmd_floor(const char *repo, int reps)
{
	double *t = calloc((size_t)reps, sizeof(*t));
	size_t files = 0;

	if (t == NULL || reps < 1)
		die("floor", "bad REPS");
	for (int i = -1; i < reps; i++) { /* i = -1: warm-up (page cache) */
		struct cx_repo *r;
		struct cx_file_list fl;
		struct cx_err e = {0};
		double t0 = now_s();

		if (cx_repo_open(&r, repo, &e) != 0 || cx_repo_walk(r, "packages", &fl, &e) != 0)
			die(repo, e.msg);
		files = fl.n;
		cx_file_list_free(&fl);
		cx_repo_close(r);
		if (i >= 0)
			t[i] = now_s() - t0;
	}
	qsort(t, (size_t)reps, sizeof(*t), cmp_double);
	printf("floor_s %.4f %zu\n", t[reps / 2], files);
	free(t);
	return 0;
}

static int
cmd_tokensign(const char *module, const char *label, const char *pin, const char *keylabel, int n)
{
	const char *allow[1] = {module};
	struct cx_p11_module *m;
	struct cx_p11_token *tok = NULL;
	struct cx_p11_key *keys, *k = NULL;
	struct cx_err e = {0};
	unsigned long *slots;
	size_t nslots, nkeys;
	double *t;
	uint8_t data[600];
	struct cx_buf sig;

	if (n < 1 || (t = calloc((size_t)n, sizeof(*t))) == NULL)
		die("tokensign", "bad N");
	memset(data, 'x', sizeof(data)); /* the size of a small resource's to-be-signed bytes */
	if (cx_p11_module_load(module, allow, 1, &m, &e) != 0 ||
	    cx_p11_slots(m, &slots, &nslots, &e) != 0)
		die(module, e.msg);
	for (size_t i = 0; i < nslots && tok == NULL; i++) {
		struct cx_p11_token_info ti;
		if (cx_p11_token_info(m, slots[i], &ti, &e) == 0 && strcmp(ti.label, label) == 0 &&
		    cx_p11_token_open(m, slots[i], &tok, &e) != 0)
			die(label, e.msg);
	}
	free(slots);
	if (tok == NULL)
		die(label, "no such token");
	if (cx_p11_token_login(tok, pin, strlen(pin), 0, &e) != 0 ||
	    cx_p11_token_keys(tok, &keys, &nkeys, &e) != 0)
		die(label, e.msg);
	for (size_t i = 0; i < nkeys; i++)
		if (strcmp(keys[i].label, keylabel) == 0)
			k = &keys[i];
	if (k == NULL)
		die(keylabel, "no such key on the token");
	cx_buf_init(&sig, 0);
	for (int i = -10; i < n; i++) { /* 10 warm-up signatures */
		double t0 = now_s();
		cx_buf_reset(&sig);
		if (cx_p11_token_sign(tok, k,
		        k->alg == CX_P11_ED25519 ? CX_P11_EDDSA : CX_P11_RSA_PSS_SHA256, data,
		        sizeof(data), NULL, 0, &sig, &e) != 0)
			die(keylabel, e.msg);
		if (i >= 0)
			t[i] = now_s() - t0;
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	printf("token_sign_us %.0f\n", t[n / 2] * 1e6);
	cx_buf_free(&sig);
	cx_p11_keys_free(keys, nkeys);
	cx_p11_token_close(tok);
	cx_p11_module_unload(m);
	free(t);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "floor") == 0)
		return cmd_floor(argv[2], atoi(argv[3]));
	if (argc == 7 && strcmp(argv[1], "tokensign") == 0)
		return cmd_tokensign(argv[2], argv[3], argv[4], argv[5], atoi(argv[6]));
	fprintf(stderr,
	    "usage: bench_tools floor REPO REPS\n"
	    "       bench_tools tokensign MODULE LABEL PIN KEYLABEL N\n");
	return 2;
}
