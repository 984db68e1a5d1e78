/*
 * libconex-agent, transport: the connection to the agent's socket, whole
 * frames in and out, one request at a time (docs/protocol.md).
 *
 * Blocking I/O; with a timeout set, the socket is driven with MSG_DONTWAIT
 * and poll() so that no single call can outlast the deadline.  send() always
 * carries MSG_NOSIGNAL: a library must not kill its caller with SIGPIPE
 * when the agent goes away.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* explicit_bzero, MSG_NOSIGNAL, SOCK_CLOEXEC */
#endif
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "client/client_int.h"
#include "proto/spin.h"

/* Copies an agent-supplied string for display: no terminal control bytes. */
static void
copy_printable(char *dst, size_t cap, const char *src)
{
	size_t i;

	for (i = 0; src[i] != 0 && i + 1 < cap; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	dst[i] = 0;
}

static void
conn_break(struct cx_agent_conn *c)
{
	/* the stream is out of step with the agent: nothing more can be read from it */
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
now_ms(void)
{
	return now_us() / 1000;
}

/* Waits for ev on the socket until deadline (0: no deadline, and no wait needed). */
static int
conn_wait(struct cx_agent_conn *c, short ev, int64_t deadline, struct cx_err *e)
{
	struct pollfd pfd;
	int64_t left;
	int r;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return cx_err_set(
			    e, CX_EIO, "agent did not answer within %d ms", c->timeout_ms);
		pfd.fd = c->fd;
		pfd.events = ev;
		pfd.revents = 0;
		r = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return cx_err_set(e, CX_EIO, "poll: %s", strerror(errno));
	}
}

static int
conn_write(struct cx_agent_conn *c, const uint8_t *p, size_t n, int64_t deadline, struct cx_err *e)
{
	int flags = MSG_NOSIGNAL | (deadline ? MSG_DONTWAIT : 0);
	ssize_t w;
	int r;

	while (n > 0) {
		w = send(c->fd, p, n, flags);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (deadline && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				if ((r = conn_wait(c, POLLOUT, deadline, e)) != 0)
					return r;
				continue;
			}
			return cx_err_set(e, CX_EIO, "send to agent: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
conn_read(struct cx_agent_conn *c, uint8_t *p, size_t n, int64_t deadline, const char *what,
    struct cx_err *e)
{
	int flags = deadline ? MSG_DONTWAIT : 0;
	size_t got = 0;
	ssize_t rd;
	int r;

	while (got < n) {
		rd = recv(c->fd, p + got, n - got, flags);
		if (rd == 0)
			return cx_err_set(e, CX_EIO,
			    "agent closed the connection (%s: %zu of %zu bytes read)", what, got,
			    n);
		if (rd < 0) {
			if (errno == EINTR)
				continue;
			if (deadline && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				if ((r = conn_wait(c, POLLIN, deadline, e)) != 0)
					return r;
				continue;
			}
			return cx_err_set(e, CX_EIO, "receive from agent: %s", strerror(errno));
		}
		got += (size_t)rd;
	}
	return 0;
}

static const char *
req_name(uint8_t type)
{
	switch (type) {
	case CX_MSG_QUERY:
		return "query";
	case CX_MSG_LIST:
		return "list";
	case CX_MSG_SIGN:
		return "sign";
	case CX_MSG_TOKEN_LOGIN:
		return "token login";
	case CX_MSG_LOCK:
		return "lock";
	case CX_MSG_UNLOCK:
		return "unlock";
	case CX_MSG_ADD_TOKEN:
		return "add token";
	case CX_MSG_REMOVE_TOKEN:
		return "remove token";
	case CX_MSG_ADD_KEY:
		return "add key";
	case CX_MSG_REMOVE_KEY:
		return "remove key";
	case CX_MSG_SET_POLICY:
		return "set policy";
	case CX_MSG_GENERATE:
		return "generate";
	}
	return "request";
}

/* Sends one frame, then wipes it: requests may carry a PIN, a password or a key. */
static int
send_request(struct cx_agent_conn *c, const struct cx_msg *req, int64_t deadline, struct cx_err *e)
{
	int r;

	cx_buf_reset(&c->out);
	if ((r = cx_msg_encode(req, &c->out)) != 0) {
		if (r == CX_ETOOBIG)
			return cx_err_set(e, r, "%s: request exceeds the %u-byte frame limit",
			    req_name(req->type), cx_frame_max(req->type));
		return cx_err_set(
		    e, r, "%s: cannot encode the request: %s", req_name(req->type), cx_code_str(r));
	}
	r = conn_write(c, c->out.d, c->out.len, deadline, e);
	explicit_bzero(c->out.d, c->out.len);
	cx_buf_reset(&c->out);
	if (r != 0) {
		conn_break(c);
		return cx_err_prefix(e, "%s", req_name(req->type));
	}
	return 0;
}

static int
read_response(struct cx_agent_conn *c, int64_t deadline, struct cx_msg *resp, struct cx_err *e)
{
	uint8_t hdr[CX_PROTO_HDR], type, *body;
	uint32_t len;
	int r;

	if ((r = conn_read(c, hdr, sizeof(hdr), deadline, "frame header", e)) != 0)
		return r;
	if ((r = cx_frame_header(hdr, &len, &type)) != 0)
		return cx_err_set(e, r, "agent sent a frame of length %u (limit %u)",
		    (unsigned)hdr[0] << 24 | (unsigned)hdr[1] << 16 | (unsigned)hdr[2] << 8 |
		        hdr[3],
		    CX_PROTO_MAX);
	cx_buf_reset(&c->in);
	if ((r = cx_buf_reserve(&c->in, len, &body)) != 0)
		return cx_err_set(e, r, "cannot hold a %u-byte answer", len);
	if ((r = conn_read(c, body, len, deadline, "frame body", e)) != 0)
		return r;
	if ((r = cx_msg_decode(type, body, len, resp, &c->scratch, NULL, 0, e)) != 0)
		return cx_err_prefix(e, "malformed answer from the agent");
	return 0;
}

int
cx_agent__transact(struct cx_agent_conn *c, const struct cx_msg *req, uint8_t want,
    struct cx_msg *resp, struct cx_err *e)
{
	int64_t deadline = 0, t0 = 0;
	char msg[CX_ERR_MSG / 2];
	int r;

	c->last_error = c->last_detail = 0;
	if (c->fd < 0)
		return cx_err_set(e, CX_EIO,
		    "%s: the connection to the agent is closed "
		    "(an earlier request failed)",
		    req_name(req->type));
	if (c->timeout_ms > 0)
		deadline = now_ms() + c->timeout_ms;
	if ((r = send_request(c, req, deadline, e)) != 0)
		return r;
	/*
	 * cx_agent_set_spin: only while this connection's signatures come back
	 * within a quarter of spin_us: a wake-up's delay counts against a short
	 * signature, and against a long one the poll would cost more CPU than
	 * it saves.
	 */
	if (req->type == CX_MSG_SIGN && c->spin_us > 0) {
		t0 = now_us();
		if (c->sign_us <= c->spin_us / 4)
			cx_spin_readable(c->fd, c->spin_us);
	}
	if ((r = read_response(c, deadline, resp, e)) != 0) {
		conn_break(c);
		return cx_err_prefix(e, "%s", req_name(req->type));
	}
	if (resp->type == CX_MSG_ERROR) {
		c->last_error = resp->u.error.code;
		c->last_detail = resp->u.error.detail;
		copy_printable(msg, sizeof(msg), resp->u.error.message);
		return cx_err_set(e, CX_EAGENT, "%s: %s", cx_agent_err_name(resp->u.error.code),
		    msg[0] ? msg : "(no message)");
	}
	if (t0 != 0 && resp->type == CX_MSG_SIGNATURE) {
		int64_t d = now_us() - t0;
		c->sign_us = c->sign_us == 0 ? d : c->sign_us + (d - c->sign_us) / 8;
	}
	if (resp->type != want) {
		/* one request, one answer: any other answer means we lost track */
		conn_break(c);
		return cx_err_set(e, CX_EPARSE, "%s: agent answered with message type %u, not %u",
		    req_name(req->type), resp->type, want);
	}
	return 0;
}

int
cx_agent_connect_fd(int fd, struct cx_agent_conn **out, struct cx_err *e)
{
	struct cx_agent_conn *c;
	struct cx_msg req, resp;
	int r;

	*out = NULL;
	if (fd < 0)
		return cx_err_set(e, CX_EINVAL, "connect: no socket");
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return cx_err_set(e, CX_ENOMEM, "connect: out of memory");
	}
	c->fd = fd;
	c->spin_us = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? CX_AGENT_SPIN_US : 0;
	cx_buf_init(&c->out, CX_PROTO_HDR + CX_PROTO_SIGN_MAX);
	cx_buf_init(&c->in, CX_PROTO_MAX);
	cx_buf_init(&c->scratch, 0);
	/* the whole frame now: later requests never realloc, so never leave a secret behind */
	if (cx_buf_reserve(&c->out, CX_PROTO_HDR + CX_PROTO_MAX, NULL) != 0) {
		cx_agent_close(c);
		return cx_err_set(e, CX_ENOMEM, "connect: out of memory");
	}
	cx_buf_reset(&c->out);

	memset(&req, 0, sizeof(req));
	req.type = CX_MSG_QUERY;
	req.u.query.version = CX_PROTO_VERSION;
	if ((r = cx_agent__transact(c, &req, CX_MSG_VERSION, &resp, e)) != 0) {
		cx_agent_close(c);
		return r;
	}
	c->proto = resp.u.version.version;
	copy_printable(c->agent, sizeof(c->agent), resp.u.version.agent);
	if (c->proto != CX_PROTO_VERSION) {
		r = cx_err_set(e, CX_EUNSUPPORTED,
		    "agent %s speaks protocol version %u, this client version %u", c->agent,
		    c->proto, CX_PROTO_VERSION);
		cx_agent_close(c);
		return r;
	}
	*out = c;
	return 0;
}

int
cx_agent_connect(const char *path, struct cx_agent_conn **out, struct cx_err *e)
{
	struct sockaddr_un sa;
	struct pollfd pfd;
	socklen_t sl;
	int fd, err = 0;

	*out = NULL;
	if (path == NULL && ((path = getenv(CX_AGENT_SOCK_ENV)) == NULL || *path == 0))
		return cx_err_set(
		    e, CX_ENOENT, "%s is not set (is conex-agent running?)", CX_AGENT_SOCK_ENV);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path))
		return cx_err_set(e, CX_EINVAL, "agent socket path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return cx_err_set(e, CX_EIO, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		err = errno;
		if (err == EINTR) {
			/* the connection goes on in the background: wait for its outcome */
			pfd.fd = fd;
			pfd.events = POLLOUT;
			while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
				;
			sl = sizeof(err);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) != 0)
				err = errno;
		}
	}
	if (err != 0) {
		close(fd);
		return cx_err_set(e, (err == ENOENT || err == ECONNREFUSED) ? CX_ENOENT : CX_EIO,
		    "cannot connect to the agent at %s: %s", path, strerror(err));
	}
	return cx_agent_connect_fd(fd, out, e);
}

void
cx_agent_close(struct cx_agent_conn *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	cx_buf_free_wipe(&c->out);
	cx_buf_free(&c->in);
	cx_buf_free(&c->scratch);
	free(c);
}

void
cx_agent_set_spin(struct cx_agent_conn *c, int us)
{
	c->spin_us = us > 0 ? us : 0;
}

void
cx_agent_set_timeout(struct cx_agent_conn *c, int ms)
{
	c->timeout_ms = ms > 0 ? ms : 0;
}

uint32_t
cx_agent_protocol(const struct cx_agent_conn *c)
{
	return c->proto;
}

const char *
cx_agent_version(const struct cx_agent_conn *c)
{
	return c->agent;
}

uint32_t
cx_agent_last_error(const struct cx_agent_conn *c)
{
	return c->last_error;
}

uint32_t
cx_agent_last_detail(const struct cx_agent_conn *c)
{
	return c->last_detail;
}
