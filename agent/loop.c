/*
 * The event loop and the workers it hands jobs to.
 *
 * One thread polls the listening socket, every connection, a signalfd and
 * an eventfd that workers write when they finish a job; the poll timeout is
 * the one-second timer for the PIN cache, key lifetimes, token rescans and
 * stalled frames.  Everything that can wait on a token, a person or a slow
 * hash runs on a worker, so the loop only ever waits in poll(): a token
 * waiting for a touch holds its own worker and nothing else.
 *
 * A worker is a thread with a FIFO of jobs (mutex + condition variable).
 * A finished job goes on the done queue and the eventfd is bumped; the loop
 * drains the queue, applies the results (registry, token state) and answers
 * the connection that asked, if it is still there (slot + generation).
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/agent.h"

/* ---- jobs ---- */

struct job *
cx_job_new(enum job_kind kind)
{
	struct job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->kind = kind;
	j->cslot = SIZE_MAX;
	atomic_init(&j->cancelled, 0);
	cx_buf_init(&j->sig, CX_PROTO_MAX);
	cx_buf_init(&j->out, CX_PROTO_MAX + CX_PROTO_HDR);
	j->fd = -1;
	return j;
}

void
cx_job_free(struct agent *a, struct job *j)
{
	if (j == NULL)
		return;
	if (j->data != NULL) {
		free(j->data);
	}
	if (j->secret != NULL)
		sodium_free(j->secret); /* wipes */
	cx_buf_free(&j->sig);
	cx_buf_free(&j->out);
	if (j->keys != NULL)
		cx_p11_keys_free(j->keys, j->nkeys);
	cx_reg_p11_clear(&j->p11);
	if (j->key != NULL)
		cx_reg_unref(a, j->key);
	free(j->label);
	free(j->path);
	free(j->filter);
	free(j->mods);
	free(j->scan);
	free(j->scanned);
	free(j->peer.exe);
	sodium_memzero(&j->lock, sizeof(j->lock));
	free(j);
}

/* ---- workers ---- */

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct job *j;
	int64_t until;
	int stop;

	for (;;) {
		/*
		 * A signing tool's next request tends to come within a
		 * hundred microseconds of its answer, and waking a sleeping
		 * thread costs a third of that on a virtual machine: yield
		 * for a moment before sleeping on the condition variable.
		 * Only while nothing else runs: beside other jobs the CPU is
		 * better spent on them (two clients on two tokens).
		 */
		until = now_us() + AGENT_SPIN_US;
		while (w->a->spin && atomic_load(&w->queued) == 0 &&
		    atomic_load(&w->a->running) == 0 && now_us() < until)
			sched_yield();
		pthread_mutex_lock(&w->mu);
		while (w->head == NULL)
			pthread_cond_wait(&w->cv, &w->mu);
		j = w->head;
		if ((w->head = j->next) == NULL)
			w->tail = NULL;
		j->next = NULL;
		atomic_fetch_sub(&w->queued, 1);
		pthread_mutex_unlock(&w->mu);

		stop = j->kind == JOB_STOP;
		w->run(w->a, j);
		/* the answer goes out from here: the loop need not wake up first */
		if (j->kind == JOB_SIGN && !j->replied)
			cx_conn_worker_reply(j);
		atomic_fetch_sub(&w->a->running, 1);
		/* done with the token: the loop may sign on it (fastsign.c) */
		atomic_fetch_sub(&w->busy, 1);
		cx_job_done(w->a, j);
		if (stop)
			break;
	}
	return NULL;
}

int
cx_worker_start(struct agent *a, struct worker *w, const char *name, struct tok *tok,
    void (*run)(struct agent *, struct job *))
{
	int r;

	w->a = a;
	w->name = name;
	w->tok = tok;
	w->run = run;
	w->head = w->tail = NULL;
	atomic_init(&w->queued, 0);
	atomic_init(&w->busy, 0);
	w->hold = 0;
	w->hhead = w->htail = NULL;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	/* signals stay blocked in workers (inherited from main): only the signalfd sees them */
	if ((r = pthread_create(&w->th, NULL, worker_main, w)) != 0) {
		cx_agent_log(a, LOG_ERR, "cannot start worker %s: %s", name, strerror(r));
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		return CX_EIO;
	}
	w->started = 1;
	return 0;
}

void
cx_worker_push(struct worker *w, struct job *j)
{
	j->w = w;
	j->next = NULL;
	if (w->hold) {
		/* the loop has the token: in order, once it lets go (cx_worker_release) */
		if (w->htail != NULL)
			w->htail->next = j;
		else
			w->hhead = j;
		w->htail = j;
		return;
	}
	atomic_fetch_add(&w->busy, 1);
	pthread_mutex_lock(&w->mu);
	if (w->tail != NULL)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	atomic_fetch_add(&w->queued, 1);
	atomic_fetch_add(&w->a->running, 1);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void
cx_worker_release(struct worker *w)
{
	struct job *j;

	w->hold = 0;
	while ((j = w->hhead) != NULL) {
		if ((w->hhead = j->next) == NULL)
			w->htail = NULL;
		cx_worker_push(w, j);
	}
}

int
cx_worker_stop(struct worker *w, int wait_s)
{
	struct timespec ts;
	struct job *j;

	if (!w->started || w->joined)
		return 1;
	if (w->detached)
		return 0;
	if (!w->stopping) {
		if ((j = cx_job_new(JOB_STOP)) == NULL)
			return 0;
		w->stopping = 1;
		cx_worker_push(w, j);
	}
	if (wait_s < 0) {
		pthread_join(w->th, NULL);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_s;
		if (pthread_timedjoin_np(w->th, NULL, &ts) != 0) {
			/*
			 * Stuck in a module call or on a person (askpass): it
			 * cannot be interrupted safely.  Leave it; the caller
			 * must then not finalise its module.
			 */
			pthread_detach(w->th);
			w->detached = 1;
			return 0;
		}
	}
	w->joined = 1;
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	return 1;
}

void
cx_job_done(struct agent *a, struct job *j)
{
	uint64_t one = 1;

	pthread_mutex_lock(&a->done_mu);
	j->next = NULL;
	if (a->done_tail != NULL)
		a->done_tail->next = j;
	else
		a->done_head = j;
	a->done_tail = j;
	pthread_mutex_unlock(&a->done_mu);
	/* eventfd: a counter, cannot fill up for our purposes */
	while (write(a->evfd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

static void
drain_done(struct agent *a)
{
	struct job *list, *j;
	uint64_t v;

	while (read(a->evfd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&a->done_mu);
	list = a->done_head;
	a->done_head = a->done_tail = NULL;
	pthread_mutex_unlock(&a->done_mu);
	while ((j = list) != NULL) {
		list = j->next;
		j->next = NULL;
		if (j->kind == JOB_STOP)
			cx_tokens_done(a, j);
		else if (j->w == &a->pw)
			cx_policy_done(a, j);
		else if (j->w == &a->soft)
			cx_reg_sign_done(a, j);
		else
			cx_tokens_done(a, j);
		cx_job_free(a, j);
	}
}

/* ---- the loop ---- */

static void
handle_signals(struct agent *a)
{
	struct signalfd_siginfo si;
	ssize_t n;

	while ((n = read(a->sigfd, &si, sizeof(si))) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
		case SIGHUP:
			cx_agent_log(a, LOG_INFO, "signal %u: shutting down", si.ssi_signo);
			a->quit = 1;
			break;
		default:
			break;
		}
	}
}

static void
tick(struct agent *a, int64_t now)
{
	cx_pincache_expire(a->pins, now);
	cx_reg_tick(a, now);
	cx_tokens_tick(a, now);
	cx_conn_tick(a, now);
}

int
cx_loop_run(struct agent *a)
{
	struct pollfd *pfd = NULL, *np;
	size_t *slot = NULL, *ns, cap = 0, n, i, fidx, nf;
	uint64_t *gen = NULL, *ng;
	struct tok **ft = NULL, **nt;
	int64_t now, next_tick, hot_until = 0;
	uint64_t answers;
	size_t nfast;
	int r, lidx, timeout;
	struct conn *c;

	next_tick = cx_agent_now() + 1;
	while (!a->quit) {
		if (cap < a->conncap + 3 + a->nfast) {
			cap = a->conncap + 3 + a->nfast + 16;
			if ((np = realloc(pfd, cap * sizeof(*pfd))) == NULL ||
			    (pfd = np, (ns = realloc(slot, cap * sizeof(*slot))) == NULL) ||
			    (slot = ns, (ng = realloc(gen, cap * sizeof(*gen))) == NULL) ||
			    (gen = ng, (nt = realloc(ft, cap * sizeof(*ft))) == NULL)) {
				cx_agent_log(a, LOG_ERR, "out of memory in the event loop");
				free(pfd);
				free(slot);
				free(gen);
				free(ft);
				return CX_ENOMEM;
			}
			ft = nt;
		}
		now = cx_agent_now();
		n = 0;
		pfd[n].fd = a->sigfd;
		pfd[n++].events = POLLIN;
		pfd[n].fd = a->evfd;
		pfd[n++].events = POLLIN;
		lidx = -1;
		if (a->lfd >= 0 && now >= a->accept_pause) {
			lidx = (int)n;
			pfd[n].fd = a->lfd;
			pfd[n++].events = POLLIN;
		}
		/* the helpers signing for the loop (fastsign.c) */
		fidx = n;
		nf = cx_fast_fds(a, pfd + n, ft + n, cap - n);
		n += nf;
		for (i = 0; i < a->conncap; i++) {
			if ((c = a->conns[i]) == NULL || c->dead)
				continue;
			pfd[n].fd = c->fd;
			/* one request at a time: a busy connection is not read, only watched for hang-up */
			pfd[n].events = c->st == C_READ ? POLLIN : c->st == C_WRITE ? POLLOUT : 0;
			pfd[n].revents = 0;
			slot[n] = i;
			gen[n] = c->gen;
			n++;
		}
		timeout = (int)((next_tick - now) * 1000);
		if (timeout < 0)
			timeout = 0;
		if (timeout > AGENT_TICK_MS)
			timeout = AGENT_TICK_MS;
		/*
		 * Just answered: the client's next request is likely
		 * microseconds away, and waking from an idle sleep costs tens
		 * of them.  Poll without sleeping (yielding the CPU) for
		 * AGENT_SPIN_US, then sleep as usual; the same while the one
		 * signature in flight is the loop's own (its helper's answer
		 * is as near).  Not while more runs: spinning beside it slows
		 * it down.
		 */
		if (now_us() < hot_until && atomic_load(&a->running) + (int)a->nfast <= 1)
			timeout = 0;
		r = poll(pfd, n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			cx_agent_log(a, LOG_ERR, "poll: %s", strerror(errno));
			break;
		}
		if (r == 0 && timeout == 0)
			sched_yield();
		answers = a->answers;
		nfast = a->nfast;
		if (pfd[0].revents)
			handle_signals(a);
		if (pfd[1].revents)
			drain_done(a);
		for (i = fidx; i < fidx + nf; i++)
			if (pfd[i].revents != 0)
				cx_fast_io(a, ft[i]);
		for (i = 2; i < n; i++) {
			if ((int)i == lidx || pfd[i].revents == 0 || (i >= fidx && i < fidx + nf))
				continue;
			/* the slot may have been closed (and not reused: accept comes later) */
			if ((c = cx_conn_find(a, slot[i], gen[i])) != NULL)
				cx_conn_io(a, c, pfd[i].revents);
		}
		if (lidx >= 0 && pfd[lidx].revents)
			cx_conn_accept(a);
		if (a->spin && a->answers != answers)
			hot_until = now_us() + AGENT_SPIN_US;
		/* a signature of the loop's own began: its answer is as near as a helper's */
		if (a->spin && a->nfast > nfast && a->nfast == 1 && atomic_load(&a->running) == 0)
			hot_until = now_us() + AGENT_FAST_SPIN_US;
		now = cx_agent_now();
		if (now >= next_tick) {
			tick(a, now);
			next_tick = now + 1;
		}
	}
	free(pfd);
	free(slot);
	free(gen);
	free(ft);
	return 0;
}

void
cx_loop_discard(struct agent *a)
{
	struct job *list, *j;

	pthread_mutex_lock(&a->done_mu);
	list = a->done_head;
	a->done_head = a->done_tail = NULL;
	pthread_mutex_unlock(&a->done_mu);
	while ((j = list) != NULL) {
		list = j->next;
		cx_job_free(a, j);
	}
}
