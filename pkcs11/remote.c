/*
 * The caller's side of a token held by a helper process (remote.h): spawns
 * the helper, forwards each call, mirrors the helper's token info, lost
 * flag and login state into the cx_p11_token (the login state needs no call
 * of its own: a signature's login check costs no round trip).
 *
 * A helper that exits, crashes or answers out of protocol is killed and the
 * token is treated as lost (CX_P11_ABSENT): its session and login are gone
 * as surely as after a removal.  cx_p11_token_reopen then spawns a new helper
 * on the same slot, and accepts it only if the slot still holds the same
 * token, as the in-process reopen does.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "pkcs11/internal.h"
#include "pkcs11/remote.h"
#include "proto/spin.h"

extern char **environ;

/* Waits up to ms for pid to exit, then kills it; always reaps it. */
static void
reap(pid_t pid, int ms, int *status)
{
	struct timespec ts = {0, 1000000};
	int st = 0, i;

	for (i = 0; i < ms; i++) {
		if (waitpid(pid, &st, WNOHANG) != 0)
			goto out;
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
out:
	if (status != NULL)
		*status = st;
}

static void
describe(int st, char *out, size_t outlen)
{
	if (WIFSIGNALED(st))
		snprintf(out, outlen, "was killed by signal %d", WTERMSIG(st));
	else if (WIFEXITED(st))
		snprintf(out, outlen, "exited with status %d", WEXITSTATUS(st));
	else
		snprintf(out, outlen, "is gone");
}

/*
 * Ends r's helper: closes our end (on EOF it closes its session, finalizes
 * the module and exits), waits up to ms for it, then kills it.  Returns its
 * wait status (0 if there was none).
 */
static int
stop(struct cx_p11_remote *r, int ms)
{
	int st = 0;

	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
	if (r->pid > 0) {
		reap(r->pid, ms, &st);
		r->pid = -1;
	}
	return st;
}

/*
 * r's helper broke the protocol, or is gone (rc says which, from our side):
 * killed if it still runs, and how it ended kept in r->gone for every later
 * message.
 */
static void
lose(struct cx_p11_remote *r, int rc)
{
	char how[64];
	long pid = (long)r->pid;
	int st;

	if (r->pid <= 0) {
		stop(r, 0);
		return;
	}
	/* a helper that broke the protocol is not waited for; one that hung up is, briefly */
	st = stop(r, rc == CX_ENOENT || rc == CX_EIO ? 200 : 0);
	describe(st, how, sizeof(how));
	snprintf(r->gone, sizeof(r->gone), "its PKCS#11 helper (pid %ld) %s%s", pid,
	    rc == CX_EPARSE || rc == CX_ETOOBIG ? "broke the protocol and " : "", how);
}

/* A token's helper is lost: so is the token (its session and login). */
static int
helper_gone(struct cx_p11_token *t, int rc, struct cx_err *e)
{
	lose(t->r, rc);
	t->r->logged_in = 0;
	t->lost = 1;
	return cx_err_set(e, CX_P11_ABSENT, "token \"%s\" (serial %s): %s", t->info.label,
	    t->info.serial, t->r->gone[0] ? t->r->gone : "its PKCS#11 helper is gone");
}

static struct cx_p11_remote *
remote_new(const atomic_int *busy)
{
	struct cx_p11_remote *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->fd = -1;
	r->pid = -1;
	r->busy = busy;
	cx_buf_init(&r->out, CX_P11R_REQ_MAX + 4);
	cx_buf_init(&r->in, CX_P11R_REP_MAX + 4);
	return r;
}

static void
remote_free(struct cx_p11_remote *r)
{
	if (r == NULL)
		return;
	stop(r, 2000);
	cx_buf_free_wipe(&r->out);
	cx_buf_free(&r->in);
	free(r);
}

static int
spawn(struct cx_p11_module *m, const char *role, struct cx_p11_remote *r, struct cx_err *e)
{
	char ppid[32];
	/* the role is for ps(1) and the tests: both kinds serve any request */
	char *argv[] = {m->helper, "--p11-helper", (char *)role, m->path, ppid, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t mask, def;
	int sv[2], fd, rc;

	snprintf(ppid, sizeof(ppid), "%ld", (long)getpid());
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return cx_err_set(e, CX_EIO, "socketpair: %s", strerror(errno));
	/* the child's end must not be 0: dup2 onto itself would keep FD_CLOEXEC */
	if ((fd = fcntl(sv[1], F_DUPFD_CLOEXEC, 3)) < 0) {
		rc = errno;
		close(sv[0]);
		close(sv[1]);
		return cx_err_set(e, CX_EIO, "fcntl: %s", strerror(rc));
	}
	close(sv[1]);
	sv[1] = fd;
	if (posix_spawn_file_actions_init(&fa) != 0) {
		close(sv[0]);
		close(sv[1]);
		return cx_err_set(e, CX_ENOMEM, "posix_spawn_file_actions_init");
	}
	if (posix_spawnattr_init(&attr) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		close(sv[0]);
		close(sv[1]);
		return cx_err_set(e, CX_ENOMEM, "posix_spawnattr_init");
	}
	/* the agent blocks or ignores signals in its threads; the helper starts clean */
	sigemptyset(&mask);
	sigfillset(&def);
	sigdelset(&def, SIGKILL);
	sigdelset(&def, SIGSTOP);
	/*
	 * Its own process group: a ^C on the agent's terminal must reach the
	 * agent, which then closes its tokens in order, not the helpers first.
	 * stdout to /dev/null (some modules print), stderr shared for their
	 * diagnostics.
	 */
	if ((rc = posix_spawn_file_actions_adddup2(&fa, sv[1], STDIN_FILENO)) != 0 ||
	    (rc = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)) !=
	        0 ||
	    (rc = posix_spawnattr_setsigmask(&attr, &mask)) != 0 ||
	    (rc = posix_spawnattr_setsigdefault(&attr, &def)) != 0 ||
	    (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
	    (rc = posix_spawnattr_setflags(&attr,
	         POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP)) != 0)
		rc = cx_err_set(e, CX_ENOMEM, "posix_spawn set-up: %s", strerror(rc));
	else if ((rc = posix_spawn(&r->pid, m->helper, &fa, &attr, argv, environ)) != 0)
		rc = cx_err_set(e, CX_EIO,
		    "module %s: cannot start its helper %s: %s (conex-agent --no-token-helpers "
		    "keeps token sessions in the agent)",
		    m->path, m->helper, strerror(rc));
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	if (rc != 0) {
		close(sv[0]);
		r->pid = -1;
		return rc;
	}
	r->fd = sv[0];
	return 0;
}

/*
 * The common part of the answer in r->in: rc, the state bits, info, message
 * (into e when rc is not 0), the op's own fields left at r->in's read
 * offset.  Returns 0 or CX_EPARSE; *rc is the helper's answer.
 */
static int
answer(struct cx_p11_remote *r, struct cx_p11_token_info *ti, int *st, int *rc, struct cx_err *e)
{
	const uint8_t *msg;
	size_t msglen;

	if (cx_p11r_get_answer(&r->in, rc, st, ti, &msg, &msglen) != 0)
		return CX_EPARSE;
	if (*rc != 0 && e != NULL) {
		e->code = *rc;
		memcpy(e->msg, msg, msglen);
		e->msg[msglen] = '\0';
	}
	return 0;
}

/*
 * Sends the request in r->out and reads the answer (answer()).  Returns 0 or
 * what went wrong on the wire; *rc is the helper's answer.
 */
static int
exchange(struct cx_p11_remote *r, struct cx_p11_token_info *ti, int *st, int *rc, struct cx_err *e)
{
	int x;

	if (r->fd < 0)
		return CX_ENOENT;
	if ((x = cx_p11r_send(r->fd, &r->out)) != 0)
		return x;
	if (r->overlap != NULL)
		r->overlap(r->overlap_arg);
	/* see cx_p11_module_load_helper: only while nothing else runs in the caller */
	if (r->busy != NULL && atomic_load(r->busy) <= 1)
		cx_spin_readable(r->fd, CX_P11R_SPIN_US);
	if ((x = cx_p11r_recv(r->fd, &r->in, CX_P11R_REP_MAX)) != 0)
		return x;
	return answer(r, ti, st, rc, e);
}

/* Every token answer's info, lost flag and login state, mirrored in t. */
static void
mirror(struct cx_p11_token *t, const struct cx_p11_token_info *ti, int st)
{
	t->info = *ti;
	t->lost = (st & CX_P11R_LOST) != 0;
	t->r->logged_in = (st & CX_P11R_USER) != 0;
}

/* A token call: the answer's rc, its state mirrored in t. */
static int
call(struct cx_p11_token *t, struct cx_err *e)
{
	struct cx_p11_token_info ti;
	int x, rc, st;

	if ((x = exchange(t->r, &ti, &st, &rc, e)) != 0)
		return helper_gone(t, x, e);
	mirror(t, &ti, st);
	return rc;
}

/* The request's first bytes: frame, op. */
static int
begin(struct cx_p11_token *t, enum cx_p11r_op op)
{
	if (cx_p11r_begin(&t->r->out) != 0 || cx_buf_put_u8(&t->r->out, (uint8_t)op) != 0)
		return CX_ENOMEM;
	return 0;
}

/* A request's bytes once sent: a PIN is wiped, a large buffer given back. */
static void
after(struct cx_p11_remote *r, int had_pin)
{
	if (had_pin && r->out.d != NULL)
		sodium_memzero(r->out.d, r->out.len);
	if (r->out.alloc > (size_t)1024 * 1024)
		cx_buf_free(&r->out);
	if (r->in.alloc > (size_t)1024 * 1024)
		cx_buf_free(&r->in);
}

static int
simple(struct cx_p11_token *t, enum cx_p11r_op op, struct cx_err *e)
{
	if (begin(t, op) != 0)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	return call(t, e);
}

static int
open_at(struct cx_p11_module *m, struct cx_p11_token *t, unsigned long slot, struct cx_err *e)
{
	int rc;

	if ((rc = spawn(m, "token", t->r, e)) != 0)
		return rc;
	if (begin(t, CX_P11R_OPEN) != 0 || cx_buf_put_u32(&t->r->out, CX_P11R_VERSION) != 0 ||
	    cx_buf_put_u64(&t->r->out, slot) != 0)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if ((rc = call(t, e)) != 0)
		stop(t->r, 2000); /* nothing open there: the helper has no reason to stay */
	return rc;
}

int
cx_p11r_open(
    struct cx_p11_module *m, unsigned long slot, struct cx_p11_token **out, struct cx_err *e)
{
	struct cx_p11_token *t;
	int rc;

	*out = NULL;
	if ((rc = cx_p11_token_alloc(m, slot, &t, e)) != 0)
		return rc;
	if ((t->r = remote_new(m->busy)) == NULL) {
		free(t);
		return cx_err_set(
		    e, CX_ENOMEM, "module %s: slot %lu: out of memory", m->path, slot);
	}
	snprintf(t->info.serial, sizeof(t->info.serial), "?");
	snprintf(t->info.label, sizeof(t->info.label), "slot %lu", slot);
	if ((rc = open_at(m, t, slot, e)) != 0) {
		cx_p11r_close(t);
		return rc;
	}
	*out = t;
	return 0;
}

void
cx_p11r_close(struct cx_p11_token *t)
{
	remote_free(t->r);
	free(t);
}

/* ---- module-level: the scanning helper ---- */

/* The scanning helper broke or is gone: killed, and the next call starts another. */
static int
scanner_gone(struct cx_p11_module *m, int rc, struct cx_err *e)
{
	lose(m->scan, rc);
	return cx_err_set(e, CX_P11_TOKEN_ERROR, "module %s: %s", m->path,
	    m->scan->gone[0] ? m->scan->gone : "its PKCS#11 helper is gone");
}

/* A module call; rc, e set from the helper. */
static int
mcall(struct cx_p11_module *m, struct cx_p11_token_info *ti, struct cx_err *e)
{
	struct cx_p11_token_info none;
	int x, rc, st;

	if ((x = exchange(m->scan, ti != NULL ? ti : &none, &st, &rc, e)) != 0)
		return scanner_gone(m, x, e);
	return rc;
}

/* A running scanning helper that has loaded the module: started (again) if need be. */
static int
scanner(struct cx_p11_module *m, struct cx_err *e)
{
	struct cx_p11_remote *r = m->scan;
	int rc;

	if (r->fd >= 0)
		return 0;
	if ((rc = spawn(m, "scan", r, e)) != 0)
		return rc;
	if (cx_p11r_begin(&r->out) != 0 || cx_buf_put_u8(&r->out, CX_P11R_HELLO) != 0 ||
	    cx_buf_put_u32(&r->out, CX_P11R_VERSION) != 0)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if ((rc = mcall(m, NULL, e)) != 0)
		stop(r, 2000); /* the module did not load there: the helper's message says why */
	return rc;
}

int
cx_p11r_module_start(struct cx_p11_module *m, struct cx_err *e)
{
	int rc;

	/* no busy count: a scan is never waited for by a signature */
	if ((m->scan = remote_new(NULL)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	pthread_mutex_lock(&m->scan_mu);
	rc = scanner(m, e);
	pthread_mutex_unlock(&m->scan_mu);
	return rc;
}

void
cx_p11r_module_stop(struct cx_p11_module *m)
{
	remote_free(m->scan);
	m->scan = NULL;
}

int
cx_p11r_slots(struct cx_p11_module *m, unsigned long **slots, size_t *n, struct cx_err *e)
{
	struct cx_p11_remote *r = m->scan;
	uint64_t v;
	uint32_t cnt, i;
	int rc;

	pthread_mutex_lock(&m->scan_mu);
	if ((rc = scanner(m, e)) != 0)
		goto out;
	if (cx_p11r_begin(&r->out) != 0 || cx_buf_put_u8(&r->out, CX_P11R_SLOTS) != 0) {
		rc = cx_err_set(e, CX_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = mcall(m, NULL, e)) != 0)
		goto out;
	if (cx_buf_get_u32(&r->in, &cnt) != 0 || cnt > CX_P11_MAX_SLOTS ||
	    cx_buf_avail(&r->in) != (size_t)cnt * 8) {
		rc = scanner_gone(m, CX_EPARSE, e);
		goto out;
	}
	if (cnt > 0 && (*slots = calloc(cnt, sizeof(**slots))) == NULL) {
		rc = cx_err_set(e, CX_ENOMEM, "module %s: out of memory", m->path);
		goto out;
	}
	for (i = 0; i < cnt; i++) {
		if (cx_buf_get_u64(&r->in, &v) != 0 || v > ULONG_MAX) {
			free(*slots);
			*slots = NULL;
			rc = scanner_gone(m, CX_EPARSE, e);
			goto out;
		}
		(*slots)[i] = (unsigned long)v;
	}
	*n = cnt;
out:
	pthread_mutex_unlock(&m->scan_mu);
	return rc;
}

int
cx_p11r_token_info(
    struct cx_p11_module *m, unsigned long slot, struct cx_p11_token_info *out, struct cx_err *e)
{
	struct cx_p11_remote *r = m->scan;
	int rc;

	pthread_mutex_lock(&m->scan_mu);
	if ((rc = scanner(m, e)) != 0)
		goto out;
	if (cx_p11r_begin(&r->out) != 0 || cx_buf_put_u8(&r->out, CX_P11R_TOKEN_INFO) != 0 ||
	    cx_buf_put_u64(&r->out, slot) != 0) {
		rc = cx_err_set(e, CX_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = mcall(m, out, e)) == 0 && cx_buf_avail(&r->in) != 0)
		rc = scanner_gone(m, CX_EPARSE, e);
out:
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	pthread_mutex_unlock(&m->scan_mu);
	return rc;
}

/* ---- tokens ---- */

int
cx_p11_token_set_overlap(struct cx_p11_token *t, void (*fn)(void *), void *arg)
{
	if (t->r == NULL)
		return CX_EUNSUPPORTED;
	t->r->overlap = fn;
	t->r->overlap_arg = arg;
	return 0;
}

int
cx_p11r_refresh(struct cx_p11_token *t, struct cx_err *e)
{
	return simple(t, CX_P11R_REFRESH, e);
}

int
cx_p11r_reopen(struct cx_p11_token *t, struct cx_err *e)
{
	struct cx_p11_token_info old = t->info;
	int rc;

	if (t->r->fd >= 0)
		return simple(t, CX_P11R_REOPEN, e);
	/* the helper is gone: a new one, accepted only for the same token */
	if ((rc = open_at(t->m, t, t->slot, e)) != 0) {
		t->info = old;
		t->lost = 1;
		return rc;
	}
	if ((rc = cx_p11_same_token(t, &old, e)) != 0) {
		stop(t->r, 2000);
		t->info = old;
		t->lost = 1;
		return CX_P11_ABSENT;
	}
	return 0;
}

int
cx_p11r_login(
    struct cx_p11_token *t, const char *pin, size_t pinlen, int allow_final_try, struct cx_err *e)
{
	int rc;

	if (pin != NULL && pinlen > CX_P11_MAX_PIN)
		return cx_err_set(e, CX_EINVAL,
		    "token \"%s\" (serial %s): PIN length %zu out of range", t->info.label,
		    t->info.serial, pinlen);
	if (begin(t, CX_P11R_LOGIN) != 0 || cx_buf_put_u8(&t->r->out, pin != NULL) != 0 ||
	    cx_p11r_put_bytes(&t->r->out, pin, pin != NULL ? pinlen : 0) != 0 ||
	    cx_buf_put_u8(&t->r->out, allow_final_try != 0) != 0) {
		after(t->r, 1);
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	}
	rc = call(t, e);
	after(t->r, 1);
	return rc;
}

int
cx_p11r_logout(struct cx_p11_token *t)
{
	return simple(t, CX_P11R_LOGOUT, NULL);
}

/*
 * Only the helper's own calls change its login (a PKCS#11 login belongs to
 * the application), and every answer reports it; a removal since then shows
 * at the next call.
 */
int
cx_p11r_logged_in(struct cx_p11_token *t)
{
	return t->r->fd >= 0 && !t->lost && t->r->logged_in;
}

int
cx_p11r_keys(struct cx_p11_token *t, struct cx_p11_key **keys, size_t *n, struct cx_err *e)
{
	struct cx_p11_key *v;
	uint32_t cnt, i;
	int rc;

	*keys = NULL;
	*n = 0;
	if ((rc = simple(t, CX_P11R_KEYS, e)) != 0)
		return rc;
	if (cx_buf_get_u32(&t->r->in, &cnt) != 0 || cnt > CX_P11_MAX_OBJECTS)
		return helper_gone(t, CX_EPARSE, e);
	if (cnt == 0)
		return 0;
	if ((v = calloc(cnt, sizeof(*v))) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	for (i = 0; i < cnt; i++) {
		if ((rc = cx_p11r_get_key(&t->r->in, &v[i])) != 0) {
			cx_p11_keys_free(v, i);
			return rc == CX_ENOMEM ? cx_err_set(e, CX_ENOMEM, "out of memory")
			                       : helper_gone(t, CX_EPARSE, e);
		}
	}
	if (cx_buf_avail(&t->r->in) != 0) {
		cx_p11_keys_free(v, cnt);
		return helper_gone(t, CX_EPARSE, e);
	}
	*keys = v;
	*n = cnt;
	return 0;
}

/* A SIGN request in t->r->out. */
static int
sign_request(struct cx_p11_token *t, const struct cx_p11_key *k, enum cx_p11_mech mech,
    const uint8_t *data, size_t n, const char *pin, size_t pinlen, struct cx_err *e)
{
	struct cx_p11_key kk;

	if (data == NULL && n != 0)
		return cx_err_set(e, CX_EINVAL, "no data");
	if (pin != NULL && pinlen > CX_P11_MAX_PIN)
		return cx_err_set(e, CX_EINVAL, "PIN length %zu out of range", pinlen);
	/* signing needs the key's id, CKA_ID, type and flags: not its key string or URI */
	kk = *k;
	kk.keystr = NULL;
	kk.uri = NULL;
	if (begin(t, CX_P11R_SIGN) != 0 || cx_p11r_put_key(&t->r->out, &kk) != 0 ||
	    cx_buf_put_u8(&t->r->out, (uint8_t)mech) != 0 ||
	    cx_p11r_put_bytes(&t->r->out, data, n) != 0 ||
	    cx_buf_put_u8(&t->r->out, pin != NULL) != 0 ||
	    cx_p11r_put_bytes(&t->r->out, pin, pin != NULL ? pinlen : 0) != 0 ||
	    /* poll: a signing client's next request comes soon (helper.c spin()) */
	    cx_buf_put_u8(&t->r->out, 1) != 0) {
		after(t->r, pin != NULL);
		return cx_err_set(e, CX_ETOOBIG, "%zu bytes to sign: too many for the helper", n);
	}
	return 0;
}

/* The SIGN answer's own field, once its common part was read by call() or finish. */
static int
sign_answer(struct cx_p11_token *t, struct cx_buf *sig, struct cx_err *e)
{
	const uint8_t *s;
	size_t slen;

	if (cx_p11r_get_bytes(&t->r->in, &s, &slen, CX_P11_MAX_SIG) != 0 || slen == 0 ||
	    cx_buf_avail(&t->r->in) != 0)
		return helper_gone(t, CX_EPARSE, e);
	if (cx_buf_put(sig, s, slen) != 0)
		return cx_err_set(e, CX_ENOMEM, "cannot store signature");
	return 0;
}

int
cx_p11r_sign(struct cx_p11_token *t, const struct cx_p11_key *k, enum cx_p11_mech mech,
    const uint8_t *data, size_t n, const char *pin, size_t pinlen, struct cx_buf *sig,
    struct cx_err *e)
{
	int rc;

	if ((rc = sign_request(t, k, mech, data, n, pin, pinlen, e)) != 0)
		return rc;
	rc = call(t, e);
	after(t->r, pin != NULL);
	if (rc != 0)
		return rc;
	return sign_answer(t, sig, e);
}

int
cx_p11r_sign_start(struct cx_p11_token *t, const struct cx_p11_key *k, enum cx_p11_mech mech,
    const uint8_t *data, size_t n, int *fd, struct cx_err *e)
{
	int rc;

	*fd = -1;
	if (t->r->fd < 0)
		return helper_gone(t, CX_ENOENT, e);
	if (n > CX_P11_ASYNC_MAX)
		return cx_err_set(e, CX_ETOOBIG, "%zu bytes: too many to sign without waiting", n);
	if ((rc = sign_request(t, k, mech, data, n, NULL, 0, e)) != 0)
		return rc;
	/*
	 * The helper has answered every earlier request, so its socket buffer
	 * is empty and takes the whole frame: a send that would still block
	 * means a helper out of step, treated like one that broke the protocol.
	 */
	if (cx_p11r_send_nowait(t->r->fd, &t->r->out) != 0)
		return helper_gone(t, CX_EIO, e);
	after(t->r, 0);
	cx_buf_reset(&t->r->in);
	*fd = t->r->fd;
	return 0;
}

int
cx_p11r_sign_finish(struct cx_p11_token *t, struct cx_buf *sig, int *more, struct cx_err *e)
{
	struct cx_p11_token_info ti;
	int x, rc, st;

	*more = 0;
	if (t->r->fd < 0)
		return helper_gone(t, CX_ENOENT, e);
	if ((x = cx_p11r_recv_more(t->r->fd, &t->r->in, CX_P11R_REP_MAX, more)) != 0)
		return helper_gone(t, x, e);
	if (*more)
		return 0;
	if ((x = answer(t->r, &ti, &st, &rc, e)) != 0)
		return helper_gone(t, x, e);
	mirror(t, &ti, st);
	if (rc != 0) {
		after(t->r, 0);
		return rc;
	}
	rc = sign_answer(t, sig, e);
	after(t->r, 0);
	return rc;
}

void
cx_p11r_sign_abandon(struct cx_p11_token *t)
{
	struct cx_err e = {0};

	(void)helper_gone(t, CX_EPARSE, &e);
}

int
cx_p11r_generate(struct cx_p11_token *t, const char *label, enum cx_p11_alg alg, int bits,
    struct cx_p11_key *out, struct cx_err *e)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (label == NULL || strlen(label) > 255)
		return cx_err_set(e, CX_EINVAL, "key label must be 1..255 bytes");
	if (begin(t, CX_P11R_GENERATE) != 0 ||
	    cx_p11r_put_bytes(&t->r->out, label, strlen(label)) != 0 ||
	    cx_buf_put_u8(&t->r->out, (uint8_t)alg) != 0 ||
	    cx_buf_put_u32(&t->r->out, (uint32_t)bits) != 0)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if ((rc = call(t, e)) != 0)
		return rc;
	if ((rc = cx_p11r_get_key(&t->r->in, out)) != 0 || cx_buf_avail(&t->r->in) != 0) {
		cx_p11_key_clear(out);
		return rc == CX_ENOMEM ? cx_err_set(e, CX_ENOMEM, "out of memory")
		                       : helper_gone(t, CX_EPARSE, e);
	}
	return 0;
}
