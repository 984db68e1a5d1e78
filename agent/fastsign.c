/*
 * Signatures the event loop carries itself.
 *
 * A SIGN through a token's worker crosses four threads: the loop reads it,
 * the worker sends it to the token's helper process and waits, the helper
 * signs, the worker answers, and the loop is woken once more to read the
 * connection again.  On a virtual machine each of those wake-ups costs more
 * than the work around it, and with two clients on two tokens the CPU they
 * take is what the signatures lack.  When nothing else is asked of a token
 * in a helper process, the loop does it all: it writes the intent line,
 * sends the request without blocking (cx_p11_token_sign_start), polls the
 * helper's socket beside the clients', and answers once the signature is
 * back and the intent line durable.  The worker is idle all that time and
 * whatever is pushed to it waits (cx_worker_push holds it) until the loop
 * lets go of the token, so the token still has one user at a time.
 *
 * Everything that may wait on a person or needs a PIN stays with the
 * worker: a confirmation, a login, a CKA_ALWAYS_AUTHENTICATE key; so does a
 * token whose worker has work, an in-process token, and data over
 * CX_P11_ASYNC_MAX.  A helper that fails the signature hands the job to
 * the worker with its answer (j->fast_rc): what a lost token, a wrong
 * PIN or a removed key means is decided in one place, run_sign.
 *
 * The audit record is the worker's: "sign-intent" before the token is
 * asked, durable before the signature leaves, and "sign" after the answer.
 * The loop syncs the intent line itself, right after the request went to
 * the helper, while the token signs: a hand-off to the syncer and back
 * cost more than the sync on tmpfs and as much on this VM's disk.  So it
 * takes only logs whose syncs are short (sync_ok); on a slow disk, or a
 * disk beside another signature, the worker signs and syncs, and the loop
 * never waits long for a disk.
 */
#include <poll.h>
#include <stdint.h>
#include <syslog.h>

#include "agent/agent.h"

#define FAST_SYNC_ANY_NS   50000   /* 50 µs */
#define FAST_SYNC_ALONE_NS 2000000 /* 2 ms */

/*
 * May the loop sync this log while a token signs?  A sync it waits for
 * delays every other client by as much: one of a few µs (tmpfs) always;
 * one of up to 2 ms (an SSD, this VM's disk: 100-300 µs) only while no
 * other signature is under way, else the syncs of two clients would follow
 * one another on the loop, where two workers share one (group commit).
 */
static int
sync_ok(struct agent *a)
{
	int64_t ns;

	pthread_rwlock_rdlock(&a->audit_lock);
	ns = a->audit != NULL ? cx_audit_sync_ns(a->audit) : INT64_MAX;
	pthread_rwlock_unlock(&a->audit_lock);
	if (ns < FAST_SYNC_ANY_NS)
		return 1;
	return ns < FAST_SYNC_ALONE_NS && a->nfast == 0 && atomic_load(&a->running) == 0;
}

static int
eligible(struct agent *a, struct tok *t, const struct job *j)
{
	const struct cx_p11_token_info *ti;

	if (!a->token_helpers || t == NULL || t->fast != NULL || t->removing || t->reopening ||
	    !t->present || t->w.stopping || atomic_load(&t->w.busy) != 0)
		return 0;
	if (j->confirm || j->p11.always_auth || j->datalen > CX_P11_ASYNC_MAX || !sync_ok(a))
		return 0;
	/* the worker is idle (busy 0, read after its last touch of t->t): the loop may look */
	if (t->t == NULL || cx_p11_token_lost(t->t))
		return 0;
	ti = cx_p11_token_get_info(t->t);
	/* a helper token's login state is the mirror of its last answer: no call */
	return !ti->login_required || cx_p11_token_logged_in(t->t);
}

/* The loop lets go of t: j (if any) and then what waited go to the worker. */
static void
release(struct tok *t, struct job *j)
{
	t->fast = NULL;
	t->fastfd = -1;
	t->w.hold = 0;
	if (j != NULL)
		cx_worker_push(&t->w, j);
	cx_worker_release(&t->w);
}

int
cx_fast_sign(struct agent *a, struct conn *c, struct akey *k, struct job *j)
{
	struct tok *t = k->tok;
	int fd, rc;

	if (!eligible(a, t, j))
		return 0;
	j->w = &t->w;
	cx_conn_attach_job(a, c, j);
	/* no record, no signature: a log that cannot be written fails the job in the worker */
	if (cx_audit_rec(a, CX_AUDIT_LAZY, &j->intent, &j->peer, "sign-intent", j->keyidstr,
	        t->serial, j->rtype, j->rname, j->data_sha, "pending") != 0) {
		cx_worker_push(&t->w, j);
		return 1;
	}
	rc = cx_p11_token_sign_start(
	    t->t, &j->p11, cx_tokens_mech(j->p11.alg), j->data, j->datalen, &fd, &j->err);
	if (rc != 0) {
		/* the helper is gone (the token is now lost): the worker says so */
		j->fast_rc = rc;
		cx_worker_push(&t->w, j);
		return 1;
	}
	t->fast = j;
	t->fastfd = fd;
	t->w.hold = 1;
	a->nfast++;
	cx_agent_log(a, LOG_DEBUG, "connection %zu.%llu: SIGN %s %s sent to token %s by the loop",
	    c->slot, (unsigned long long)c->gen, j->rtype, j->rname, t->serial);
	/* while the token signs; a failure discards the signature in cx_fast_io */
	j->intent_ok = cx_audit_wait(a, j->intent) == 0;
	return 1;
}

size_t
cx_fast_fds(struct agent *a, struct pollfd *pfd, struct tok **who, size_t max)
{
	struct tok *t;
	size_t n = 0;

	for (t = a->toks; t != NULL && n < max; t = t->next) {
		if (t->fast == NULL)
			continue;
		pfd[n].fd = t->fastfd;
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		who[n++] = t;
	}
	return n;
}

/* The answer is in: out it goes, if its intent line is durable. */
static void
finish(struct agent *a, struct tok *t, struct job *j)
{
	const char *result;

	if (!j->intent_ok) {
		/* signed, but not on record: discarded */
		cx_buf_free(&j->sig);
		j->aerr = CX_AERR_TOKEN_ERROR;
		cx_err_set(&j->err, CX_EIO, "the audit log cannot be written");
	} else {
		/* it just signed, so the session is logged in */
		j->info = *cx_p11_token_get_info(t->t);
		j->have_info = 1;
		j->logged_in = 1;
	}
	result = j->aerr == 0 ? "ok" : cx_agent_err_name((uint32_t)j->aerr);
	release(t, NULL);
	/* the answer first, as the worker does: the result line may wait behind a sync */
	cx_tokens_done(a, j);
	cx_audit_rec(a, j->aerr == 0 ? CX_AUDIT_LAZY : CX_AUDIT_KICK, NULL, &j->peer, "sign",
	    j->keyidstr, t->serial, j->rtype, j->rname, j->data_sha, result);
	cx_job_free(a, j);
}

void
cx_fast_io(struct agent *a, struct tok *t)
{
	struct job *j = t->fast;
	int more, rc;

	if (j == NULL)
		return;
	rc = cx_p11_token_sign_finish(t->t, &j->sig, &more, &j->err);
	if (rc == 0 && more)
		return;
	a->nfast--;
	if (rc != 0) {
		cx_buf_free(&j->sig);
		j->fast_rc = rc;
		release(t, j);
		return;
	}
	finish(a, t, j);
}

void
cx_fast_shutdown(struct agent *a)
{
	struct tok *t;
	struct job *j;

	for (t = a->toks; t != NULL; t = t->next) {
		if ((j = t->fast) == NULL)
			continue;
		/* its answer may never come (a touch nobody gives): the helper goes */
		cx_p11_token_sign_abandon(t->t);
		a->nfast--;
		j->fast_rc = CX_P11_ABSENT;
		cx_err_set(&j->err, CX_P11_ABSENT, "the agent is shutting down");
		cx_buf_free(&j->sig);
		release(t, j);
	}
}
