/*
 * libconex-agent, requests: one function per request type, each building
 * the message, running it through the transport and copying the answer out
 * of the connection's scratch (which the next request reuses).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_int.h"

/*
 * Copies n decoded keys into one allocation: the array first, then every
 * string, so that the caller frees the lot with one free().
 */
static int
keys_dup(const struct cx_msg_key *v, size_t n, struct cx_msg_key **out, struct cx_err *e)
{
	struct cx_msg_key *k;
	size_t i, total, len;
	char *p;

	*out = NULL;
	if (n == 0)
		return 0;
	/* bounded by the frame: n keys and their strings came out of one CX_PROTO_MAX body */
	total = n * sizeof(*k);
	for (i = 0; i < n; i++)
		total += strlen(v[i].id) + strlen(v[i].keystr) + strlen(v[i].token_serial) +
		    strlen(v[i].token_label) + strlen(v[i].uri) + 5;
	if ((k = malloc(total)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory for %zu keys", n);
	memcpy(k, v, n * sizeof(*k));
	p = (char *)(k + n);
#define DUP(field)                            \
	do {                                  \
		len = strlen(v[i].field) + 1; \
		memcpy(p, v[i].field, len);   \
		k[i].field = p;               \
		p += len;                     \
	} while (0)
	for (i = 0; i < n; i++) {
		DUP(id);
		DUP(keystr);
		DUP(token_serial);
		DUP(token_label);
		DUP(uri);
	}
#undef DUP
	*out = k;
	return 0;
}

void
cx_agent_keys_free(struct cx_msg_key *keys)
{
	free(keys);
}

/* Requests whose only good answer is OK. */
static int
simple(struct cx_agent_conn *c, const struct cx_msg *req, struct cx_err *e)
{
	struct cx_msg resp;

	return cx_agent__transact(c, req, CX_MSG_OK, &resp, e);
}

int
cx_agent_list(struct cx_agent_conn *c, struct cx_msg_key **keys, size_t *n, struct cx_err *e)
{
	struct cx_msg req, resp;
	int r;

	*keys = NULL;
	*n = 0;
	memset(&req, 0, sizeof(req));
	req.type = CX_MSG_LIST;
	if ((r = cx_agent__transact(c, &req, CX_MSG_KEYS, &resp, e)) != 0)
		return r;
	if ((r = keys_dup(resp.u.keys.v, resp.u.keys.n, keys, e)) != 0)
		return r;
	*n = resp.u.keys.n;
	return 0;
}

int
cx_agent_sign(struct cx_agent_conn *c, const uint8_t keyid[32], uint8_t sigalg, const uint8_t *data,
    size_t n, struct cx_buf *sig, struct cx_err *e)
{
	struct cx_msg req, resp;
	int r;

	memset(&req, 0, sizeof(req));
	req.type = CX_MSG_SIGN;
	memcpy(req.u.sign.keyid, keyid, 32);
	req.u.sign.sigalg = sigalg;
	req.u.sign.data = data;
	req.u.sign.datalen = n;
	if ((r = cx_agent__transact(c, &req, CX_MSG_SIGNATURE, &resp, e)) != 0)
		return r;
	/* an empty signature is no signature: do not let it reach a conex file */
	if (resp.u.signature.siglen == 0)
		return cx_err_set(e, CX_ECRYPTO, "sign: the agent returned an empty signature");
	if ((r = cx_buf_put(sig, resp.u.signature.sig, resp.u.signature.siglen)) != 0)
		return cx_err_set(
		    e, r, "sign: cannot store a %zu-byte signature", resp.u.signature.siglen);
	return 0;
}

int
cx_agent_token_login(struct cx_agent_conn *c, const char *serial, const char *pin, size_t pinlen,
    int allow_final_try, struct cx_err *e)
{
	struct cx_msg req;

	memset(&req, 0, sizeof(req));
	req.type = CX_MSG_TOKEN_LOGIN;
	req.u.login.serial = serial;
	req.u.login.pin = pin;
	req.u.login.pinlen = pinlen;
	req.u.login.allow_final_try = allow_final_try ? 1 : 0;
	return simple(c, &req, e);
}

static int
lock_req(struct cx_agent_conn *c, uint8_t type, const char *password, size_t n, struct cx_err *e)
{
	struct cx_msg req;

	memset(&req, 0, sizeof(req));
	req.type = type;
	req.u.lock.password = password;
	req.u.lock.passwordlen = n;
	return simple(c, &req, e);
}

int
cx_agent_lock(struct cx_agent_conn *c, const char *password, size_t n, struct cx_err *e)
{
	return lock_req(c, CX_MSG_LOCK, password, n, e);
}

int
cx_agent_unlock(struct cx_agent_conn *c, const char *password, size_t n, struct cx_err *e)
{
	return lock_req(c, CX_MSG_UNLOCK, password, n, e);
}

int
cx_agent_add_token(struct cx_agent_conn *c, const char *module, const char *token, struct cx_err *e)
{
	struct cx_msg req;

	memset(&req, 0, sizeof(req));
	req.type = CX_MSG_ADD_TOKEN;
	req.u.add_token.module = module;
	req.u.add_token.token = token; /* NULL encodes as "": every token */
	return simple(c, &req, e);
}

int
cx_agent_remove_token(struct cx_agent_conn *c, const char *serial, struct cx_err *e)
{
	struct cx_msg req;

	memset(&req, 0, sizeof(req));
	req.type = CX_MSG_REMOVE_TOKEN;
	req.u.remove_token.serial = serial;
	return simple(c, &req, e);
}

int
cx_agent_add_key(struct cx_agent_conn *c, const char *id, const uint8_t *pem, size_t pemlen,
    const struct cx_policy *policy, struct cx_err *e)
{
	struct cx_msg req;

	memset(&req, 0, sizeof(req));
	req.type = CX_MSG_ADD_KEY;
	req.u.add_key.id = id;
	req.u.add_key.pem = (const char *)pem;
	req.u.add_key.pemlen = pemlen;
	if (policy != NULL)
		req.u.add_key.policy = *policy;
	else
		req.u.add_key.policy.types = CX_POLICY_ALL;
	return simple(c, &req, e);
}

int
cx_agent_remove_key(struct cx_agent_conn *c, const uint8_t keyid[32], struct cx_err *e)
{
	struct cx_msg req;

	memset(&req, 0, sizeof(req));
	req.type = CX_MSG_REMOVE_KEY;
	memcpy(req.u.remove_key.keyid, keyid, 32);
	return simple(c, &req, e);
}

int
cx_agent_set_policy(struct cx_agent_conn *c, const uint8_t keyid[32],
    const struct cx_policy *policy, struct cx_err *e)
{
	struct cx_msg req;

	if (policy == NULL)
		return cx_err_set(e, CX_EINVAL, "set policy: no policy");
	memset(&req, 0, sizeof(req));
	req.type = CX_MSG_SET_POLICY;
	memcpy(req.u.set_policy.keyid, keyid, 32);
	req.u.set_policy.policy = *policy;
	return simple(c, &req, e);
}

int
cx_agent_generate(struct cx_agent_conn *c, const char *serial, const char *id, uint8_t keyalg,
    uint32_t bits, struct cx_msg_key **out, struct cx_err *e)
{
	struct cx_msg req, resp;
	int r;

	*out = NULL;
	memset(&req, 0, sizeof(req));
	req.type = CX_MSG_GENERATE;
	req.u.generate.serial = serial;
	req.u.generate.id = id;
	req.u.generate.keyalg = keyalg;
	req.u.generate.bits = bits;
	if ((r = cx_agent__transact(c, &req, CX_MSG_GENERATED, &resp, e)) != 0)
		return r;
	return keys_dup(resp.u.keys.v, 1, out, e);
}
