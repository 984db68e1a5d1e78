/*
 * The helper process (remote.h): one module, one token, one session, served
 * over fd 0 until the agent hangs up.
 *
 * It starts as the agent's posix_spawn'ed child and makes itself as hard to
 * inspect as the agent (no core, not dumpable, so no ptrace by the user's
 * other processes), dies with the agent (PR_SET_DEATHSIG, and EOF on its
 * socket), and keeps no descriptor but its socket and stderr.  A PIN is
 * copied out of the request into guarded memory and the request bytes are
 * wiped at once.  Any request it cannot parse ends it: the agent treats that
 * as a lost token.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "pkcs11/internal.h"
#include "pkcs11/remote.h"
#include "proto/spin.h"

struct helper {
	struct cx_p11_module *m;
	struct cx_p11_token *t; /* NULL until OPEN */
	struct cx_buf in, out;
	struct cx_err e;
	int spin; /* the last request was a SIGN that asked the helper to poll for the next */
};

/* The answer's common part; ti NULL: the open token's info, if any. */
static int
answer_info(struct helper *h, int rc, const struct cx_p11_token_info *ti)
{
	static const struct cx_p11_token_info none;
	const char *msg = rc != 0 ? h->e.msg : "";
	int st = 0;

	if (ti == NULL)
		ti = h->t != NULL ? cx_p11_token_get_info(h->t) : &none;
	if (rc != 0 && msg[0] == '\0')
		msg = cx_code_str(rc);
	if (h->t != NULL && cx_p11_token_lost(h->t))
		st |= CX_P11R_LOST;
	else if (h->t != NULL && cx_p11_token_logged_in(h->t))
		st |= CX_P11R_USER;
	if (cx_p11r_begin(&h->out) != 0 || cx_buf_put_u32(&h->out, (uint32_t)(int32_t)rc) != 0 ||
	    cx_buf_put_u8(&h->out, (uint8_t)st) != 0 || cx_p11r_put_info(&h->out, ti) != 0 ||
	    cx_p11r_put_bytes(&h->out, msg, strlen(msg)) != 0)
		return CX_ENOMEM;
	return 0;
}

static int
answer(struct helper *h, int rc)
{
	return answer_info(h, rc, NULL);
}

/* A PIN field: has_pin then bytes, copied to guarded memory, the request's copy wiped. */
static int
get_pin(struct helper *h, char **pin, size_t *len)
{
	const uint8_t *p;
	uint8_t has;
	size_t n;

	*pin = NULL;
	*len = 0;
	if (cx_buf_get_u8(&h->in, &has) != 0 || has > 1 ||
	    cx_p11r_get_bytes(&h->in, &p, &n, CX_P11_MAX_PIN) != 0 || (!has && n != 0))
		return CX_EPARSE;
	if (!has)
		return 0;
	if ((*pin = sodium_malloc(n + 1)) == NULL)
		return CX_ENOMEM;
	memcpy(*pin, p, n);
	(*pin)[n] = '\0';
	sodium_memzero((void *)(uintptr_t)p, n);
	*len = n;
	return 0;
}

/* One request; CX_EPARSE ends the helper. */
static int
serve(struct helper *h)
{
	struct cx_p11_key k;
	struct cx_p11_key *keys = NULL;
	struct cx_buf sig;
	const uint8_t *data;
	size_t nkeys = 0, n, pinlen, i;
	char *pin = NULL, *label = NULL;
	uint64_t slot;
	uint32_t ver, bits;
	uint8_t op, mech, aft, alg, again = 0;
	int rc, r;

	h->spin = 0;
	if (cx_buf_get_u8(&h->in, &op) != 0)
		return CX_EPARSE;
	if (h->m == NULL) {
		/* the module did not load: whatever is asked, that is the answer */
		return answer(h, h->e.code != 0 ? h->e.code : CX_EIO);
	}
	memset(&h->e, 0, sizeof(h->e));
	if (op != CX_P11R_OPEN && op != CX_P11R_HELLO && op != CX_P11R_SLOTS &&
	    op != CX_P11R_TOKEN_INFO && h->t == NULL)
		return CX_EPARSE;
	switch (op) {
	case CX_P11R_HELLO:
		if (cx_buf_get_u32(&h->in, &ver) != 0 || cx_buf_avail(&h->in) != 0)
			return CX_EPARSE;
		rc = ver == CX_P11R_VERSION
		    ? 0
		    : cx_err_set(&h->e, CX_EUNSUPPORTED,
		          "helper wire version %u, agent %u: restart the agent", CX_P11R_VERSION,
		          ver);
		return answer(h, rc);
	case CX_P11R_SLOTS: {
		unsigned long *slots = NULL;
		size_t ns = 0;

		if (cx_buf_avail(&h->in) != 0)
			return CX_EPARSE;
		rc = cx_p11_slots(h->m, &slots, &ns, &h->e);
		r = answer(h, rc);
		if (r == 0 && rc == 0) {
			r = cx_buf_put_u32(&h->out, (uint32_t)ns);
			for (i = 0; r == 0 && i < ns; i++)
				r = cx_buf_put_u64(&h->out, slots[i]);
		}
		free(slots);
		return r;
	}
	case CX_P11R_TOKEN_INFO: {
		struct cx_p11_token_info ti;

		if (cx_buf_get_u64(&h->in, &slot) != 0 || slot > ULONG_MAX ||
		    cx_buf_avail(&h->in) != 0)
			return CX_EPARSE;
		rc = cx_p11_token_info(h->m, (unsigned long)slot, &ti, &h->e);
		return answer_info(h, rc, &ti);
	}
	case CX_P11R_OPEN:
		if (h->t != NULL || cx_buf_get_u32(&h->in, &ver) != 0 ||
		    cx_buf_get_u64(&h->in, &slot) != 0 || slot > ULONG_MAX ||
		    cx_buf_avail(&h->in) != 0)
			return CX_EPARSE;
		if (ver != CX_P11R_VERSION)
			rc = cx_err_set(&h->e, CX_EUNSUPPORTED,
			    "helper wire version %u, agent %u: restart the agent", CX_P11R_VERSION,
			    ver);
		else if ((rc = cx_p11_token_open(h->m, (unsigned long)slot, &h->t, &h->e)) != 0)
			h->t = NULL;
		return answer(h, rc);
	case CX_P11R_REFRESH:
	case CX_P11R_REOPEN:
	case CX_P11R_LOGOUT:
		if (cx_buf_avail(&h->in) != 0)
			return CX_EPARSE;
		rc = op == CX_P11R_REFRESH ? cx_p11_token_refresh(h->t, &h->e)
		    : op == CX_P11R_REOPEN ? cx_p11_token_reopen(h->t, &h->e)
		                           : cx_p11_token_logout(h->t);
		return answer(h, rc);
	case CX_P11R_LOGIN:
		if ((r = get_pin(h, &pin, &pinlen)) != 0)
			return r;
		if (cx_buf_get_u8(&h->in, &aft) != 0 || aft > 1 || cx_buf_avail(&h->in) != 0)
			rc = CX_EPARSE;
		else
			rc = cx_p11_token_login(h->t, pin, pinlen, aft, &h->e);
		if (pin != NULL)
			sodium_free(pin);
		return rc == CX_EPARSE ? rc : answer(h, rc);
	case CX_P11R_KEYS:
		if (cx_buf_avail(&h->in) != 0)
			return CX_EPARSE;
		rc = cx_p11_token_keys(h->t, &keys, &nkeys, &h->e);
		r = answer(h, rc);
		if (r == 0 && rc == 0) {
			r = cx_buf_put_u32(&h->out, (uint32_t)nkeys);
			for (i = 0; r == 0 && i < nkeys; i++)
				r = cx_p11r_put_key(&h->out, &keys[i]);
		}
		cx_p11_keys_free(keys, nkeys);
		return r;
	case CX_P11R_SIGN:
		if ((r = cx_p11r_get_key(&h->in, &k)) != 0)
			return r;
		if (cx_buf_get_u8(&h->in, &mech) != 0 ||
		    cx_p11r_get_bytes(&h->in, &data, &n, CX_P11R_REQ_MAX) != 0 ||
		    (r = get_pin(h, &pin, &pinlen)) != 0 || cx_buf_get_u8(&h->in, &again) != 0 ||
		    again > 1 || cx_buf_avail(&h->in) != 0) {
			if (pin != NULL)
				sodium_free(pin);
			cx_p11_key_clear(&k);
			return r != 0 ? r : CX_EPARSE;
		}
		h->spin = again;
		cx_buf_init(&sig, CX_P11_MAX_SIG);
		rc = cx_p11_token_sign(
		    h->t, &k, (enum cx_p11_mech)mech, data, n, pin, pinlen, &sig, &h->e);
		if (pin != NULL)
			sodium_free(pin);
		cx_p11_key_clear(&k);
		r = answer(h, rc);
		if (r == 0 && rc == 0)
			r = cx_p11r_put_bytes(&h->out, sig.d, sig.len);
		cx_buf_free(&sig);
		return r;
	case CX_P11R_GENERATE:
		if ((r = cx_p11r_get_str(&h->in, &label, 255)) != 0)
			return r;
		if (cx_buf_get_u8(&h->in, &alg) != 0 || cx_buf_get_u32(&h->in, &bits) != 0 ||
		    bits > 16384 || cx_buf_avail(&h->in) != 0) {
			free(label);
			return CX_EPARSE;
		}
		rc = cx_p11_token_generate(h->t, label, (enum cx_p11_alg)alg, (int)bits, &k, &h->e);
		free(label);
		r = answer(h, rc);
		if (r == 0 && rc == 0)
			r = cx_p11r_put_key(&h->out, &k);
		if (rc == 0)
			cx_p11_key_clear(&k);
		return r;
	default:
		return CX_EPARSE;
	}
}

/* Our tracer's pid from /proc/self/status, 0 for none, -1 if it cannot be told. */
static int
tracer(void)
{
	char line[256];
	FILE *f;
	int pid = -1;

	if ((f = fopen("/proc/self/status", "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "TracerPid:", 10) == 0) {
			pid = atoi(line + 10);
			break;
		}
	fclose(f);
	return pid;
}

int
cx_p11_helper_main(int argc, char **argv)
{
	const char *allow[1];
	struct rlimit rl = {0, 0};
	struct helper h;
	char *end;
	long ppid;
	int r;

	if (argc != 5 || strcmp(argv[1], "--p11-helper") != 0 ||
	    (strcmp(argv[2], "scan") != 0 && strcmp(argv[2], "token") != 0)) {
		fprintf(stderr,
		    "usage: conex-agent --p11-helper scan|token MODULE PPID (started by "
		    "the agent)\n");
		return 2;
	}
	errno = 0;
	ppid = strtol(argv[4], &end, 10);
	if (errno != 0 || *end != '\0' || ppid <= 1)
		return 2;
	/*
	 * The death signal comes when the thread that spawned us exits: the
	 * token's worker, which closes its helper before it does.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 || setrlimit(RLIMIT_CORE, &rl) != 0 ||
	    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		return 2;
	/* the agent may have died before PR_SET_PDEATHSIG took: then nobody will talk to us */
	if (getppid() != (pid_t)ppid)
		return 2;
	/*
	 * Until the prctl above, exec had left us dumpable: a process of the
	 * same user could have attached then and would stay attached to watch
	 * the PIN go by.  Nobody can attach from now on; refuse if somebody did.
	 */
	if ((r = tracer()) != 0) {
		fprintf(stderr,
		    "conex-agent helper: traced by pid %d: refusing to hold a token session "
		    "(conex-agent --no-token-helpers to debug the agent)\n",
		    r);
		_exit(2); /* at once: not even exit handlers run under the tracer */
	}
	/* nothing of the agent's but the socket (0) and stderr (2) */
	if (close_range(3, ~0U, 0) != 0)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 2;
	memset(&h, 0, sizeof(h));
	allow[0] = argv[3];
	/* a module that does not load: the first answer says why, then we end */
	if (cx_p11_module_load(argv[3], allow, 1, &h.m, &h.e) != 0)
		h.m = NULL;
	cx_buf_init(&h.in, CX_P11R_REQ_MAX + 4);
	cx_buf_init(&h.out, CX_P11R_REP_MAX + 4);
	for (;;) {
		/*
		 * A signing tool's next request follows within a couple
		 * of hundred microseconds; a helper that sleeps through
		 * the gap starts the next signature a wake-up late (with
		 * two clients on two tokens, a sixth of both CPUs idle).
		 */
		if (h.spin)
			cx_spin_readable(STDIN_FILENO, CX_P11R_HELPER_SPIN_US);
		if ((r = cx_p11r_recv(STDIN_FILENO, &h.in, CX_P11R_REQ_MAX)) != 0)
			break; /* EOF: the agent is done with this token */
		/* serve wipes a PIN in the request as soon as it has copied it */
		r = serve(&h);
		if (r != 0 || cx_p11r_send(STDIN_FILENO, &h.out) != 0 || h.m == NULL)
			break;
		if (h.in.alloc > (size_t)1024 * 1024)
			cx_buf_free(&h.in);
		if (h.out.alloc > (size_t)1024 * 1024)
			cx_buf_free(&h.out);
	}
	if (h.t != NULL)
		cx_p11_token_close(h.t);
	if (h.m != NULL)
		cx_p11_module_unload(h.m);
	cx_buf_free_wipe(&h.in);
	cx_buf_free(&h.out);
	return r == CX_ENOENT ? 0 : 1;
}
