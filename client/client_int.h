/* Inside libconex-agent: the connection, shared by the transport and the requests. */
#ifndef CX_CLIENT_INT_H
#define CX_CLIENT_INT_H

#include "client/conex-agent.h"

struct cx_agent_conn {
	int fd;              /* -1 once the connection is broken */
	int timeout_ms;      /* per request; 0: none */
	int spin_us;         /* cx_agent_set_spin */
	int64_t sign_us;     /* a moving average of SIGN's round trip; 0: none yet */
	uint32_t proto;      /* from VERSION */
	char agent[128];     /* agent version string, control bytes replaced */
	uint32_t last_error; /* of the last ERROR answer, 0 after any other */
	uint32_t last_detail;
	struct cx_buf out; /* one request frame; allocated whole up front so a secret never moves */
	struct cx_buf in;  /* one response body */
	struct cx_buf scratch; /* decoded strings of the last response */
};

/*
 * Sends req and reads one answer into resp (valid until the next call).
 * CX_EAGENT for ERROR; CX_EPARSE, closing the connection, for an answer of
 * another type than want.
 */
int cx_agent__transact(struct cx_agent_conn *c, const struct cx_msg *req, uint8_t want,
    struct cx_msg *resp, struct cx_err *e) __attribute__((visibility("hidden")));

#endif
