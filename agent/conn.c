/*
 * Client connections: accept and peer check, frames in, answers out, and the
 * dispatch of each request to the file that handles it.
 *
 * A connection costs a small struct and its fd while idle: the body buffer
 * is allocated once the header has been checked against CX_PROTO_MAX, grows
 * only as bytes actually arrive (a client that announces 256 KiB and sends
 * nothing costs nothing), and goes with the request; the output buffer goes
 * once written.  A frame begun must be finished within AGENT_FRAME_TIMEOUT_S.
 * One request per connection is in flight: a busy connection is not read, so
 * a client cannot queue work faster than it is answered.  An oversize,
 * truncated or undecodable frame gets ERROR BAD_REQUEST (if the peer still
 * reads) and that connection, and only it, is closed: after a framing error
 * nothing that follows on the stream can be trusted to start a frame.
 *
 * Connections live in a slot table; a job remembers (slot, generation) so
 * that the answer of a client that went away is dropped, not sent to
 * whoever got the slot next.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <sodium.h>

#include "agent/agent.h"

#define BODY_CHUNK 4096 /* first body allocation; doubles as bytes come */

struct conn *
cx_conn_find(struct agent *a, size_t slot, uint64_t gen)
{
	struct conn *c;

	if (slot >= a->conncap || (c = a->conns[slot]) == NULL || c->gen != gen)
		return NULL;
	return c;
}

static void
body_free(struct conn *c, int wipe)
{
	if (c->body != NULL) {
		if (wipe)
			sodium_memzero(c->body, c->bodyoff);
		free(c->body);
	}
	c->body = NULL;
	c->bodyoff = 0;
	c->bodycap = 0;
	c->bodylen = 0;
	c->hdrlen = 0;
}

/*
 * A large request counts against AGENT_BIG_BUDGET until it is answered (or
 * its connection goes): its bytes live on in the job after the body is freed.
 */
static void
charge_release(struct agent *a, struct conn *c)
{
	a->bigbytes -= c->bigcharge;
	c->bigcharge = 0;
}

static void
conn_free(struct agent *a, struct conn *c)
{
	charge_release(a, c);
	body_free(c, 1);
	cx_buf_free(&c->out);
	close(c->fd);
	a->conns[c->slot] = NULL;
	a->nlive--;
	cx_agent_log(
	    a, LOG_DEBUG, "connection %zu.%llu closed", c->slot, (unsigned long long)c->gen);
	free(c->peer.exe);
	free(c);
}

void
cx_conn_close(struct agent *a, struct conn *c)
{
	if (c->job != NULL) {
		/*
		 * The worker checks this before it confirms, signs or writes
		 * the answer.  It may be writing to the fd right now, so the
		 * fd stays open (and unused) until the job comes back:
		 * closing it could hand its number to another connection.
		 */
		atomic_store(&c->job->cancelled, 1);
		c->dead = 1;
		body_free(c, 1);
		cx_buf_free(&c->out);
		return;
	}
	conn_free(a, c);
}

static char *
peer_exe(pid_t pid)
{
	char path[64], buf[PATH_MAX];
	ssize_t n;

	if (pid <= 0)
		return strdup("");
	snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
	/* may fail (another uid with --allow-root, the process already gone): "" then */
	if ((n = readlink(path, buf, sizeof(buf) - 1)) < 0)
		return strdup("");
	buf[n] = '\0';
	return strdup(buf);
}

static int
slot_alloc(struct agent *a, size_t *out)
{
	struct conn **nc;
	size_t i, ncap;

	for (i = 0; i < a->conncap; i++)
		if (a->conns[i] == NULL) {
			*out = i;
			return 0;
		}
	ncap = a->conncap ? a->conncap * 2 : 64;
	if ((nc = reallocarray(a->conns, ncap, sizeof(*nc))) == NULL)
		return CX_ENOMEM;
	memset(nc + a->conncap, 0, (ncap - a->conncap) * sizeof(*nc));
	a->conns = nc;
	*out = a->conncap;
	a->conncap = ncap;
	return 0;
}

void
cx_conn_accept(struct agent *a)
{
	struct ucred cred;
	socklen_t len;
	struct conn *c;
	size_t slot;
	int fd, i;

	/* a bounded batch: the other connections get their turn */
	for (i = 0; i < 64; i++) {
		fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* the backlog would keep poll hot: stop listening for a second */
				cx_agent_log(a, LOG_WARNING, "accept: %s (%zu connections)",
				    strerror(errno), a->nlive);
				a->accept_pause = cx_agent_now() + 1;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK)
				cx_agent_log(a, LOG_ERR, "accept: %s", strerror(errno));
			return;
		}
		len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
		    len != sizeof(cred)) {
			cx_agent_log(a, LOG_ERR, "SO_PEERCRED: %s", strerror(errno));
			close(fd);
			continue;
		}
		/*
		 * The socket's mode and directory already keep other users
		 * out; this holds even if they are loosened or the socket
		 * is passed on.
		 */
		if (cred.uid != a->uid && !(a->allow_root && cred.uid == 0)) {
			cx_agent_log(a, LOG_WARNING,
			    "refused connection from uid %lu (pid %ld): not the agent's uid %lu",
			    (unsigned long)cred.uid, (long)cred.pid, (unsigned long)a->uid);
			close(fd);
			continue;
		}
		if (slot_alloc(a, &slot) != 0 || (c = calloc(1, sizeof(*c))) == NULL) {
			cx_agent_log(a, LOG_ERR, "out of memory: connection dropped");
			close(fd);
			return;
		}
		c->fd = fd;
		c->slot = slot;
		c->gen = ++a->nextgen;
		c->st = C_READ;
		c->peer.uid = cred.uid;
		c->peer.pid = cred.pid;
		if ((c->peer.exe = peer_exe(cred.pid)) == NULL) {
			close(fd);
			free(c);
			return;
		}
		cx_buf_init(&c->out, CX_PROTO_MAX + CX_PROTO_HDR);
		a->conns[slot] = c;
		a->nlive++;
		cx_agent_log(a, LOG_DEBUG, "connection %zu.%llu from uid %lu pid %ld (%s)", slot,
		    (unsigned long long)c->gen, (unsigned long)cred.uid, (long)cred.pid,
		    c->peer.exe);
	}
}

/* ---- output ---- */

/* 0: all written (or waiting for POLLOUT); -1: the connection was closed. */
static int
flush_out(struct agent *a, struct conn *c)
{
	ssize_t n;

	while (cx_buf_avail(&c->out) > 0) {
		n = send(
		    c->fd, cx_buf_ptr(&c->out), cx_buf_avail(&c->out), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				c->st = C_WRITE;
				return 0;
			}
			cx_conn_close(a, c);
			return -1;
		}
		cx_buf_skip(&c->out, (size_t)n);
	}
	cx_buf_free(&c->out);
	cx_buf_init(&c->out, CX_PROTO_MAX + CX_PROTO_HDR);
	a->answers++;
	charge_release(a, c);
	if (c->close_after) {
		cx_conn_close(a, c);
		return -1;
	}
	c->st = C_READ;
	return 0;
}

void
cx_conn_reply(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	struct cx_msg em;
	int r;

	c->job = NULL;
	if ((r = cx_msg_encode(m, &c->out)) != 0) {
		/* too many keys for one frame, say: the client still gets an answer */
		memset(&em, 0, sizeof(em));
		em.type = CX_MSG_ERROR;
		em.u.error.code = CX_AERR_UNSUPPORTED;
		em.u.error.message = "answer does not fit in a frame";
		cx_agent_log(a, LOG_ERR, "encoding an answer: %s", cx_code_str(r));
		if (cx_msg_encode(&em, &c->out) != 0) {
			cx_conn_close(a, c);
			return;
		}
	}
	flush_out(a, c);
}

void
cx_conn_error(struct agent *a, struct conn *c, uint32_t code, uint32_t detail, const char *fmt, ...)
{
	char msg[CX_ERR_MSG];
	struct cx_msg m;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_ERROR;
	m.u.error.code = code;
	m.u.error.detail = detail;
	m.u.error.message = msg;
	cx_agent_log(a, LOG_DEBUG, "connection %zu.%llu: %s: %s", c->slot,
	    (unsigned long long)c->gen, cx_agent_err_name(code), msg);
	cx_conn_reply(a, c, &m);
}

void
cx_conn_ok(struct agent *a, struct conn *c)
{
	struct cx_msg m;

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_OK;
	cx_conn_reply(a, c, &m);
}

/* Answers BAD_REQUEST if the peer can still read, then closes. */
static void bad_frame(struct agent *a, struct conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
bad_frame(struct agent *a, struct conn *c, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cx_agent_log(a, LOG_INFO, "connection %zu.%llu (pid %ld): %s: closed", c->slot,
	    (unsigned long long)c->gen, (long)c->peer.pid, msg);
	body_free(c, 1);
	c->close_after = 1;
	cx_conn_error(a, c, CX_AERR_BAD_REQUEST, 0, "%s", msg);
}

void
cx_conn_attach_job(struct agent *a, struct conn *c, struct job *j)
{
	(void)a;
	j->cslot = c->slot;
	j->cgen = c->gen;
	j->fd = c->fd;
	j->peer.uid = c->peer.uid;
	j->peer.pid = c->peer.pid;
	if (j->peer.exe == NULL)
		j->peer.exe = strdup(c->peer.exe);
	c->job = j;
	c->st = C_BUSY;
}

void
cx_conn_wait_job(struct agent *a, struct conn *c, struct worker *w, struct job *j)
{
	cx_conn_attach_job(a, c, j);
	cx_worker_push(w, j);
}

struct conn *
cx_conn_of_job(struct agent *a, struct job *j)
{
	struct conn *c;

	if (j->cslot == SIZE_MAX || (c = cx_conn_find(a, j->cslot, j->cgen)) == NULL || c->job != j)
		return NULL;
	c->job = NULL;
	if (c->dead) {
		conn_free(a, c);
		return NULL;
	}
	return c;
}

void
cx_conn_worker_reply(struct job *j)
{
	struct cx_msg m;
	ssize_t n;

	if (atomic_load(&j->cancelled) || j->fd < 0)
		return;
	memset(&m, 0, sizeof(m));
	if (j->aerr == 0) {
		m.type = CX_MSG_SIGNATURE;
		m.u.signature.sig = j->sig.d;
		m.u.signature.siglen = j->sig.len;
	} else {
		m.type = CX_MSG_ERROR;
		m.u.error.code = (uint32_t)j->aerr;
		m.u.error.detail = j->detail;
		m.u.error.message = j->err.msg;
	}
	if (cx_msg_encode(&m, &j->out) != 0) {
		cx_buf_free(&j->out); /* the loop answers */
		return;
	}
	j->replied = 1;
	/* what does not go now (a full socket buffer) the loop sends later */
	while (j->written < j->out.len) {
		n = send(j->fd, j->out.d + j->written, j->out.len - j->written,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				j->write_failed = 1;
			break;
		}
		j->written += (size_t)n;
	}
}

int
cx_conn_take_reply(struct agent *a, struct conn *c, struct job *j)
{
	if (!j->replied)
		return 0;
	c->job = NULL;
	if (j->write_failed) {
		cx_conn_close(a, c);
		return 1;
	}
	if (j->written < j->out.len &&
	    cx_buf_put(&c->out, j->out.d + j->written, j->out.len - j->written) != 0) {
		cx_conn_close(a, c);
		return 1;
	}
	flush_out(a, c);
	return 1;
}

void
cx_conn_job_error(struct agent *a, struct job *j)
{
	struct conn *c;

	if ((c = cx_conn_of_job(a, j)) != NULL)
		cx_conn_error(a, c, (uint32_t)j->aerr, j->detail, "%s", j->err.msg);
}

/* ---- requests ---- */

static void
dispatch(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	struct cx_msg v;

	if (m->type != CX_MSG_QUERY && m->type != CX_MSG_UNLOCK && cx_policy_locked(a)) {
		/* everything but QUERY and UNLOCK, LIST included: a locked agent shows nothing */
		cx_conn_error(a, c, CX_AERR_AGENT_LOCKED, 0, "the agent is locked");
		return;
	}
	switch (m->type) {
	case CX_MSG_QUERY:
		memset(&v, 0, sizeof(v));
		v.type = CX_MSG_VERSION;
		v.u.version.version = CX_PROTO_VERSION;
		v.u.version.agent = CX_AGENT_VERSION;
		cx_conn_reply(a, c, &v);
		return;
	case CX_MSG_LIST:
		cx_reg_list(a, c);
		return;
	case CX_MSG_SIGN:
		cx_policy_sign(a, c, m);
		return;
	case CX_MSG_TOKEN_LOGIN:
		cx_tokens_login(a, c, m);
		return;
	case CX_MSG_LOCK:
		cx_policy_lock(a, c, m);
		return;
	case CX_MSG_UNLOCK:
		cx_policy_unlock(a, c, m);
		return;
	case CX_MSG_ADD_TOKEN:
		cx_tokens_add(a, c, m);
		return;
	case CX_MSG_REMOVE_TOKEN:
		cx_tokens_remove(a, c, m);
		return;
	case CX_MSG_ADD_KEY:
		cx_reg_add_key(a, c, m);
		return;
	case CX_MSG_REMOVE_KEY:
		cx_reg_remove_key(a, c, m);
		return;
	case CX_MSG_SET_POLICY:
		cx_reg_set_policy(a, c, m);
		return;
	case CX_MSG_GENERATE:
		cx_tokens_generate(a, c, m);
		return;
	default:
		/* answers are not requests */
		bad_frame(a, c, "message type %u is not a request", m->type);
		return;
	}
}

static size_t
secret_len(const struct cx_msg *m)
{
	switch (m->type) {
	case CX_MSG_TOKEN_LOGIN:
		return m->u.login.pinlen;
	case CX_MSG_LOCK:
	case CX_MSG_UNLOCK:
		return m->u.lock.passwordlen;
	case CX_MSG_ADD_KEY:
		return m->u.add_key.pemlen;
	default:
		return 0;
	}
}

/* After a large SIGN: the handlers copied what they keep (policy.c), so the scratch can go. */
static void
scratch_shrink(struct agent *a)
{
	cx_buf_free(&a->scratch);
	cx_buf_init(&a->scratch, AGENT_SCRATCH_MAX);
}

static int
has_secret(uint8_t type)
{
	return type == CX_MSG_TOKEN_LOGIN || type == CX_MSG_LOCK || type == CX_MSG_UNLOCK ||
	    type == CX_MSG_ADD_KEY;
}

static void
request(struct agent *a, struct conn *c)
{
	struct cx_err e = {0};
	struct cx_msg m;
	size_t slen;
	int r;

	c->deadline = 0;
	r = cx_msg_decode(
	    c->type, c->body, c->bodylen, &m, &a->scratch, a->secret, CX_PROTO_MAX, &e);
	/* a large SIGN's copy need not stay: give the scratch back its usual size */
	if (r != 0 && a->scratch.alloc > AGENT_SCRATCH_KEEP)
		scratch_shrink(a);
	/* the body may have held a PIN, a password or a key; decoded copies are in a->secret */
	body_free(c, has_secret(c->type));
	if (r == CX_EUNSUPPORTED && c->type < CX_MSG_OK) {
		/*
		 * A well-formed frame of a request type we do not know: a
		 * newer client.  The stream is still in step, so say so and
		 * go on.
		 */
		cx_conn_error(a, c, CX_AERR_UNSUPPORTED, 0, "%s", e.msg);
		return;
	}
	if (r != 0) {
		bad_frame(a, c, "%s", e.msg[0] ? e.msg : cx_code_str(r));
		return;
	}
	c->st = C_BUSY;
	dispatch(a, c, &m);
	/* handlers copy what outlives the call (sodium_malloc'ed); nothing stays here */
	if ((slen = secret_len(&m)) > 0 || has_secret(m.type))
		sodium_memzero(a->secret, slen + 1 < CX_PROTO_MAX ? slen + 1 : CX_PROTO_MAX);
	if (a->scratch.alloc > AGENT_SCRATCH_KEEP)
		scratch_shrink(a);
}

/* Reads what is there; a complete frame goes to request(). */
static void
read_in(struct agent *a, struct conn *c)
{
	uint8_t *nb;
	size_t want, cap;
	ssize_t n;
	int r;

	for (;;) {
		if (c->hdrlen < CX_PROTO_HDR) {
			n = read(c->fd, c->hdr + c->hdrlen, CX_PROTO_HDR - c->hdrlen);
		} else {
			want = c->bodylen - c->bodyoff;
			if (want == 0)
				goto complete;
			if (c->bodyoff == c->bodycap) {
				/* grow with what arrives, not with what the header announced */
				cap = c->bodycap ? c->bodycap * 2 : BODY_CHUNK;
				if (cap > c->bodylen)
					cap = c->bodylen;
				if ((nb = malloc(cap)) == NULL) {
					cx_agent_log(a, LOG_ERR, "out of memory reading a frame");
					cx_conn_close(a, c);
					return;
				}
				if (c->body != NULL) {
					/* not realloc: the old copy may hold a secret and is wiped */
					memcpy(nb, c->body, c->bodyoff);
					sodium_memzero(c->body, c->bodyoff);
					free(c->body);
				}
				c->body = nb;
				c->bodycap = cap;
			}
			if (want > c->bodycap - c->bodyoff)
				want = c->bodycap - c->bodyoff;
			n = read(c->fd, c->body + c->bodyoff, want);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			cx_conn_close(a, c);
			return;
		}
		if (n == 0) {
			if (c->hdrlen == 0) {
				cx_conn_close(a, c); /* a clean end between requests */
				return;
			}
			bad_frame(a, c, "truncated frame: end of stream after %zu of %u bytes",
			    c->hdrlen < CX_PROTO_HDR ? c->hdrlen : CX_PROTO_HDR + c->bodyoff,
			    c->hdrlen < CX_PROTO_HDR ? CX_PROTO_HDR : CX_PROTO_HDR + c->bodylen);
			return;
		}
		if (c->hdrlen < CX_PROTO_HDR) {
			if (c->hdrlen == 0)
				c->deadline = cx_agent_now() + AGENT_FRAME_TIMEOUT_S;
			c->hdrlen += (size_t)n;
			if (c->hdrlen < CX_PROTO_HDR)
				continue;
			/* the cap is checked before a byte of the body is allocated */
			if ((r = cx_frame_header(c->hdr, &c->bodylen, &c->type)) != 0) {
				if (r == CX_ETOOBIG)
					bad_frame(a, c, "frame of %u bytes exceeds the limit of %u",
					    (unsigned)c->hdr[0] << 24 | (unsigned)c->hdr[1] << 16 |
					        (unsigned)c->hdr[2] << 8 | c->hdr[3],
					    cx_frame_max(c->hdr[4]));
				else
					bad_frame(a, c, "frame with a zero length");
				return;
			}
			/*
			 * Only SIGN may be large; what all large requests being
			 * read or worked on may take is bounded, so that a few
			 * clients sending 64 MiB each cannot exhaust memory.
			 */
			if (c->bodylen >= CX_PROTO_MAX) {
				if (a->bigbytes + c->bodylen > AGENT_BIG_BUDGET) {
					bad_frame(a, c,
					    "a %u-byte request while %zu bytes of large requests "
					    "are being read (budget %u): try again",
					    c->bodylen, a->bigbytes, AGENT_BIG_BUDGET);
					return;
				}
				a->bigbytes += c->bodylen;
				c->bigcharge = c->bodylen;
			}
			c->bodyoff = 0;
			continue;
		}
		c->bodyoff += (size_t)n;
		if (c->bodyoff < c->bodylen)
			continue;
complete:
		request(a, c);
		return;
	}
}

void
cx_conn_io(struct agent *a, struct conn *c, short revents)
{
	if (c->st == C_WRITE && (revents & POLLOUT)) {
		if (flush_out(a, c) != 0)
			return;
	}
	if (c->st == C_READ && (revents & (POLLIN | POLLHUP | POLLERR))) {
		/* POLLHUP with data still to read: read it first, EOF comes after */
		read_in(a, c);
		return;
	}
	if (revents & (POLLHUP | POLLERR | POLLNVAL)) {
		/* busy (its job's answer is dropped) or writing to a peer that left */
		cx_conn_close(a, c);
	}
}

void
cx_conn_tick(struct agent *a, int64_t now)
{
	struct conn *c;

	for (size_t i = 0; i < a->conncap; i++) {
		if ((c = a->conns[i]) == NULL)
			continue;
		if (c->st == C_READ && c->hdrlen > 0 && c->deadline != 0 && now > c->deadline)
			bad_frame(
			    a, c, "frame not completed within %d seconds", AGENT_FRAME_TIMEOUT_S);
	}
}

void
cx_conn_cancel_all(struct agent *a)
{
	for (size_t i = 0; i < a->conncap; i++)
		if (a->conns[i] != NULL && a->conns[i]->job != NULL)
			atomic_store(&a->conns[i]->job->cancelled, 1);
}

void
cx_conn_close_all(struct agent *a)
{
	for (size_t i = 0; i < a->conncap; i++)
		if (a->conns[i] != NULL)
			conn_free(a, a->conns[i]);
	free(a->conns);
	a->conns = NULL;
	a->conncap = 0;
}
