/*
 * The conex-agent wire protocol: framing, encoder and decoder
 * (docs/protocol.md is the byte-exact description).
 *
 * The decoder is the agent's first line of defence: every byte it reads was
 * written by a process we do not trust beyond its uid.  So every length is
 * checked against what remains before it is used, the output memory is
 * reserved once from the body length (never from a claimed count), and every
 * value with a fixed range is checked here rather than left to the handlers.
 * The encoder refuses exactly what the decoder would refuse, so that whatever
 * encodes also decodes and decoding then encoding gives back the same bytes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* explicit_bzero */
#endif
#include "proto/msg.h"

#include <stdio.h>
#include <string.h>

/*
 * Smallest encoding of one key in KEYS / GENERATED: five empty strings,
 * keyid, keyalg, state, policy, sigs_made.  Bounds the key count by the body.
 */
#define KEY_MIN       (5 * 4 + 32 + 1 + 4 + POLICY_LEN + 8)
#define POLICY_LEN    (4 + 1 + 8 + 8)
#define KEY_STRINGS   5
#define MAX_STRINGS   3 /* in any message but KEYS / GENERATED */
#define KEY_STATE_ALL (CX_KEY_PRESENT | CX_KEY_LOGGED_IN | CX_KEY_ALWAYS_AUTH | CX_KEY_HARDWARE)

const char *
cx_agent_err_name(uint32_t code)
{
	switch (code) {
	case CX_AERR_TOKEN_ABSENT:
		return "token-absent";
	case CX_AERR_PIN_REQUIRED:
		return "pin-required";
	case CX_AERR_PIN_INCORRECT:
		return "pin-incorrect";
	case CX_AERR_PIN_LOCKED:
		return "pin-locked";
	case CX_AERR_REFUSED:
		return "refused";
	case CX_AERR_DECLINED:
		return "declined";
	case CX_AERR_AGENT_LOCKED:
		return "agent-locked";
	case CX_AERR_NO_SUCH_KEY:
		return "no-such-key";
	case CX_AERR_UNSUPPORTED:
		return "unsupported";
	case CX_AERR_TOKEN_ERROR:
		return "token-error";
	case CX_AERR_BAD_REQUEST:
		return "bad-request";
	case CX_AERR_FINAL_TRY:
		return "final-try";
	}
	return "unknown-error";
}

static const char *
type_name(uint8_t type)
{
	switch (type) {
	case CX_MSG_QUERY:
		return "QUERY";
	case CX_MSG_LIST:
		return "LIST";
	case CX_MSG_SIGN:
		return "SIGN";
	case CX_MSG_TOKEN_LOGIN:
		return "TOKEN_LOGIN";
	case CX_MSG_LOCK:
		return "LOCK";
	case CX_MSG_UNLOCK:
		return "UNLOCK";
	case CX_MSG_ADD_TOKEN:
		return "ADD_TOKEN";
	case CX_MSG_REMOVE_TOKEN:
		return "REMOVE_TOKEN";
	case CX_MSG_ADD_KEY:
		return "ADD_KEY";
	case CX_MSG_REMOVE_KEY:
		return "REMOVE_KEY";
	case CX_MSG_SET_POLICY:
		return "SET_POLICY";
	case CX_MSG_GENERATE:
		return "GENERATE";
	case CX_MSG_OK:
		return "OK";
	case CX_MSG_ERROR:
		return "ERROR";
	case CX_MSG_VERSION:
		return "VERSION";
	case CX_MSG_KEYS:
		return "KEYS";
	case CX_MSG_SIGNATURE:
		return "SIGNATURE";
	case CX_MSG_GENERATED:
		return "GENERATED";
	}
	return NULL;
}

static int
sigalg_ok(uint8_t a)
{
	return a >= CX_MSIG_RSAPSS_SHA256 && a <= CX_MSIG_ECDSA_P256_SHA256;
}

static int
keyalg_ok(uint8_t a)
{
	return a >= CX_MKEY_RSA && a <= CX_MKEY_ECDSA_P256;
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint32_t
cx_frame_max(uint8_t type)
{
	return type == CX_MSG_SIGN ? CX_PROTO_SIGN_MAX : CX_PROTO_MAX;
}

int
cx_frame_header(const uint8_t hdr[CX_PROTO_HDR], uint32_t *bodylen, uint8_t *type)
{
	uint32_t n = be32(hdr);

	/* checked before the caller allocates or reads anything */
	if (n > cx_frame_max(hdr[4]))
		return CX_ETOOBIG;
	if (n == 0)
		return CX_EPARSE; /* no room for the type byte */
	*bodylen = n - 1;
	*type = hdr[4];
	return 0;
}

/* ---- decoder ---- */

struct rd {
	const uint8_t *p; /* body */
	size_t len, off;
	uint8_t *out, *end; /* free part of the scratch reserved up front */
	uint8_t *secret;    /* caller's fixed buffer; one secret per message */
	size_t secretcap;
	size_t secretused; /* bytes written there, NUL included: what to wipe on failure */
	const char *msg;   /* message name, for errors */
	struct cx_err *e;
};

static size_t
rd_left(const struct rd *r)
{
	return r->len - r->off;
}

static int
rd_short(struct rd *r, const char *field, size_t need)
{
	return cx_err_set(
	    r->e, CX_EPARSE, "%s: %s: need %zu bytes, %zu left", r->msg, field, need, rd_left(r));
}

static int
rd_raw(struct rd *r, const char *field, void *dst, size_t n)
{
	if (n > rd_left(r))
		return rd_short(r, field, n);
	memcpy(dst, r->p + r->off, n);
	r->off += n;
	return 0;
}

static int
rd_u8(struct rd *r, const char *field, uint8_t *v)
{
	return rd_raw(r, field, v, 1);
}

static int
rd_bool(struct rd *r, const char *field, uint8_t *v)
{
	int rc;

	if ((rc = rd_u8(r, field, v)) != 0)
		return rc;
	/* one encoding per value: 0 or 1, nothing else */
	if (*v > 1)
		return cx_err_set(r->e, CX_EPARSE, "%s: %s: %u is not 0 or 1", r->msg, field, *v);
	return 0;
}

static int
rd_u32(struct rd *r, const char *field, uint32_t *v)
{
	uint8_t x[4];
	int rc;

	if ((rc = rd_raw(r, field, x, 4)) != 0)
		return rc;
	*v = be32(x);
	return 0;
}

static int
rd_u64(struct rd *r, const char *field, uint64_t *v)
{
	uint8_t x[8];
	int rc;

	if ((rc = rd_raw(r, field, x, 8)) != 0)
		return rc;
	*v = (uint64_t)be32(x) << 32 | be32(x + 4);
	return 0;
}

/* The length prefix of a string, checked against the bytes left. */
static int
rd_len(struct rd *r, const char *field, size_t *n)
{
	uint32_t v;
	int rc;

	if ((rc = rd_u32(r, field, &v)) != 0)
		return rc;
	if (v > rd_left(r))
		return cx_err_set(r->e, CX_EPARSE, "%s: %s: length %u exceeds the %zu bytes left",
		    r->msg, field, v, rd_left(r));
	*n = v;
	return 0;
}

/* Copies n body bytes and a NUL into the reserved scratch. */
static const uint8_t *
rd_copy(struct rd *r, size_t n)
{
	uint8_t *s = r->out;

	/* cannot fail: the reservation counted every body byte and one NUL per string */
	if ((size_t)(r->end - r->out) < n + 1)
		return NULL;
	if (n)
		memcpy(s, r->p + r->off, n);
	s[n] = 0;
	r->out += n + 1;
	r->off += n;
	return s;
}

/* A text string: no NUL inside, so that the C string is the whole value. */
static int
rd_str(struct rd *r, const char *field, const char **out)
{
	const uint8_t *s;
	size_t n = 0;
	int rc;

	if ((rc = rd_len(r, field, &n)) != 0)
		return rc;
	if (n && memchr(r->p + r->off, 0, n) != NULL)
		return cx_err_set(
		    r->e, CX_EPARSE, "%s: %s: NUL byte inside the string", r->msg, field);
	if ((s = rd_copy(r, n)) == NULL)
		return cx_err_set(r->e, CX_ETOOBIG, "%s: %s: scratch exhausted", r->msg, field);
	*out = (const char *)s;
	return 0;
}

/* Binary data (what to sign, a signature): any bytes. */
static int
rd_bytes(struct rd *r, const char *field, const uint8_t **out, size_t *outlen)
{
	const uint8_t *s;
	size_t n = 0;
	int rc;

	if ((rc = rd_len(r, field, &n)) != 0)
		return rc;
	if ((s = rd_copy(r, n)) == NULL)
		return cx_err_set(r->e, CX_ETOOBIG, "%s: %s: scratch exhausted", r->msg, field);
	*out = s;
	*outlen = n;
	return 0;
}

/* A secret goes to the caller's fixed buffer, never to scratch (which is not wiped). */
static int
rd_secret(struct rd *r, const char *field, const char **out, size_t *outlen)
{
	size_t n = 0;
	int rc;

	if ((rc = rd_len(r, field, &n)) != 0)
		return rc;
	if (n && memchr(r->p + r->off, 0, n) != NULL)
		return cx_err_set(
		    r->e, CX_EPARSE, "%s: %s: NUL byte inside the string", r->msg, field);
	if (r->secret == NULL || r->secretcap < 1 || n > r->secretcap - 1)
		return cx_err_set(r->e, CX_ETOOBIG,
		    "%s: %s: %zu bytes do not fit the %zu-byte secret buffer", r->msg, field, n,
		    r->secretcap);
	if (n)
		memcpy(r->secret, r->p + r->off, n);
	r->secret[n] = 0;
	r->secretused = n + 1;
	r->off += n;
	*out = (const char *)r->secret;
	*outlen = n;
	return 0;
}

static int
rd_policy(struct rd *r, struct cx_policy *p)
{
	int rc;

	if ((rc = rd_u32(r, "policy.types", &p->types)) != 0 ||
	    (rc = rd_bool(r, "policy.confirm", &p->confirm)) != 0 ||
	    (rc = rd_u64(r, "policy.lifetime", &p->lifetime)) != 0 ||
	    (rc = rd_u64(r, "policy.max_sigs", &p->max_sigs)) != 0)
		return rc;
	if (p->types & ~CX_POLICY_ALL)
		return cx_err_set(r->e, CX_EPARSE, "%s: policy.types: unknown bits 0x%x", r->msg,
		    p->types & ~CX_POLICY_ALL);
	return 0;
}

static int
rd_key(struct rd *r, struct cx_msg_key *k)
{
	int rc;

	if ((rc = rd_str(r, "id", &k->id)) != 0 || (rc = rd_str(r, "keystr", &k->keystr)) != 0 ||
	    (rc = rd_raw(r, "keyid", k->keyid, 32)) != 0 ||
	    (rc = rd_u8(r, "keyalg", &k->keyalg)) != 0 ||
	    (rc = rd_u32(r, "state", &k->state)) != 0 ||
	    (rc = rd_str(r, "token_serial", &k->token_serial)) != 0 ||
	    (rc = rd_str(r, "token_label", &k->token_label)) != 0 ||
	    (rc = rd_str(r, "uri", &k->uri)) != 0 || (rc = rd_policy(r, &k->policy)) != 0 ||
	    (rc = rd_u64(r, "sigs_made", &k->sigs_made)) != 0)
		return rc;
	if (!keyalg_ok(k->keyalg))
		return cx_err_set(
		    r->e, CX_EPARSE, "%s: keyalg: unknown algorithm %u", r->msg, k->keyalg);
	if (k->state & ~KEY_STATE_ALL)
		return cx_err_set(r->e, CX_EPARSE, "%s: state: unknown bits 0x%x", r->msg,
		    k->state & ~KEY_STATE_ALL);
	return 0;
}

/* The body of one message type, after the scratch is reserved. */
static int
rd_body(struct rd *r, uint8_t type, struct cx_msg *m, size_t nkeys)
{
	uint32_t n32;
	size_t i;
	int rc = 0;

	switch (type) {
	case CX_MSG_QUERY:
		return rd_u32(r, "version", &m->u.query.version);
	case CX_MSG_LIST:
	case CX_MSG_OK:
		return 0;
	case CX_MSG_SIGN:
		if ((rc = rd_raw(r, "keyid", m->u.sign.keyid, 32)) != 0 ||
		    (rc = rd_u8(r, "sigalg", &m->u.sign.sigalg)) != 0)
			return rc;
		if (!sigalg_ok(m->u.sign.sigalg))
			return cx_err_set(r->e, CX_EPARSE, "SIGN: sigalg: unknown algorithm %u",
			    m->u.sign.sigalg);
		return rd_bytes(r, "data", &m->u.sign.data, &m->u.sign.datalen);
	case CX_MSG_TOKEN_LOGIN:
		if ((rc = rd_str(r, "serial", &m->u.login.serial)) != 0 ||
		    (rc = rd_secret(r, "pin", &m->u.login.pin, &m->u.login.pinlen)) != 0)
			return rc;
		return rd_bool(r, "allow_final_try", &m->u.login.allow_final_try);
	case CX_MSG_LOCK:
	case CX_MSG_UNLOCK:
		return rd_secret(r, "password", &m->u.lock.password, &m->u.lock.passwordlen);
	case CX_MSG_ADD_TOKEN:
		if ((rc = rd_str(r, "module", &m->u.add_token.module)) != 0)
			return rc;
		return rd_str(r, "token", &m->u.add_token.token);
	case CX_MSG_REMOVE_TOKEN:
		return rd_str(r, "serial", &m->u.remove_token.serial);
	case CX_MSG_ADD_KEY:
		if ((rc = rd_str(r, "id", &m->u.add_key.id)) != 0 ||
		    (rc = rd_secret(r, "pem", &m->u.add_key.pem, &m->u.add_key.pemlen)) != 0)
			return rc;
		return rd_policy(r, &m->u.add_key.policy);
	case CX_MSG_REMOVE_KEY:
		return rd_raw(r, "keyid", m->u.remove_key.keyid, 32);
	case CX_MSG_SET_POLICY:
		if ((rc = rd_raw(r, "keyid", m->u.set_policy.keyid, 32)) != 0)
			return rc;
		return rd_policy(r, &m->u.set_policy.policy);
	case CX_MSG_GENERATE:
		if ((rc = rd_str(r, "serial", &m->u.generate.serial)) != 0 ||
		    (rc = rd_str(r, "id", &m->u.generate.id)) != 0 ||
		    (rc = rd_u8(r, "keyalg", &m->u.generate.keyalg)) != 0 ||
		    (rc = rd_u32(r, "bits", &m->u.generate.bits)) != 0)
			return rc;
		if (!keyalg_ok(m->u.generate.keyalg))
			return cx_err_set(r->e, CX_EPARSE, "GENERATE: keyalg: unknown algorithm %u",
			    m->u.generate.keyalg);
		return 0;
	case CX_MSG_ERROR:
		if ((rc = rd_u32(r, "code", &m->u.error.code)) != 0 ||
		    (rc = rd_u32(r, "detail", &m->u.error.detail)) != 0)
			return rc;
		return rd_str(r, "message", &m->u.error.message);
	case CX_MSG_VERSION:
		if ((rc = rd_u32(r, "version", &m->u.version.version)) != 0)
			return rc;
		return rd_str(r, "agent", &m->u.version.agent);
	case CX_MSG_KEYS:
	case CX_MSG_GENERATED:
		if (type == CX_MSG_KEYS && (rc = rd_u32(r, "n", &n32)) != 0)
			return rc;
		/* the array was carved from the start of the scratch by the caller */
		for (i = 0; i < nkeys; i++) {
			char name[32];
			snprintf(name, sizeof(name), "%s: key %zu", r->msg, i);
			r->msg = name;
			rc = rd_key(r, &m->u.keys.v[i]);
			r->msg = type_name(type);
			if (rc != 0)
				return rc;
		}
		m->u.keys.n = nkeys;
		return 0;
	case CX_MSG_SIGNATURE:
		return rd_bytes(r, "signature", &m->u.signature.sig, &m->u.signature.siglen);
	}
	return cx_err_set(r->e, CX_EUNSUPPORTED, "unknown message type %u", type);
}

int
cx_msg_decode(uint8_t type, const uint8_t *body, size_t len, struct cx_msg *m,
    struct cx_buf *scratch, uint8_t *secret, size_t secretcap, struct cx_err *e)
{
	struct rd r;
	const char *name = type_name(type);
	size_t nkeys = 0, nstr = MAX_STRINGS, arr = 0, need;
	uint8_t *base;
	int rc;

	memset(m, 0, sizeof(*m));
	if (name == NULL)
		return cx_err_set(e, CX_EUNSUPPORTED, "unknown message type %u", type);
	/* also keeps every size computed below far from overflow */
	if (len > cx_frame_max(type) - 1)
		return cx_err_set(e, CX_ETOOBIG, "%s: body of %zu bytes exceeds %u", name, len,
		    cx_frame_max(type) - 1);
	if (body == NULL && len != 0)
		return cx_err_set(e, CX_EINVAL, "%s: no body", name);
	if (type == CX_MSG_KEYS || type == CX_MSG_GENERATED) {
		if (type == CX_MSG_KEYS) {
			if (len < 4)
				return cx_err_set(
				    e, CX_EPARSE, "KEYS: n: need 4 bytes, %zu left", len);
			/* a claimed count is trusted only as far as the body can hold it */
			if (be32(body) > (len - 4) / KEY_MIN)
				return cx_err_set(e, CX_EPARSE,
				    "KEYS: n: %u keys cannot fit in %zu bytes", be32(body),
				    len - 4);
			nkeys = be32(body);
		} else
			nkeys = 1;
		arr = nkeys * sizeof(struct cx_msg_key);
		nstr = nkeys * KEY_STRINGS;
	}
	/*
	 * One reservation for everything the pointers in m will point to: the key
	 * array, every body byte (an upper bound on string bytes) and a NUL per
	 * string.  No later growth means no realloc moving what we returned.
	 */
	need = arr + len + nstr;
	cx_buf_reset(scratch);
	if ((rc = cx_buf_reserve(scratch, need, &base)) != 0)
		return cx_err_set(e, rc, "%s: cannot reserve %zu bytes of scratch", name, need);
	memset(&r, 0, sizeof(r));
	r.p = body;
	r.len = len;
	r.out = base + arr;
	r.end = base + need;
	r.secret = secret;
	r.secretcap = secret == NULL ? 0 : secretcap;
	r.msg = name;
	r.e = e;
	m->type = type;
	if (arr)
		m->u.keys.v = (struct cx_msg_key *)(void *)base; /* realloc memory: aligned */
	if ((rc = rd_body(&r, type, m, nkeys)) == 0 && rd_left(&r) != 0)
		rc = cx_err_set(e, CX_EPARSE, "%s: %zu trailing bytes", name, rd_left(&r));
	if (rc != 0) {
		/* nothing of a refused message survives, least of all its secret */
		if (r.secretused)
			explicit_bzero(secret, r.secretused);
		memset(m, 0, sizeof(*m));
		return rc;
	}
	return 0;
}

/* ---- encoder ---- */

static int
put_bytes(struct cx_buf *b, const void *p, size_t n)
{
	int r;

	if (n > CX_PROTO_SIGN_MAX) /* the frame's own cap is checked in cx_msg_encode */
		return CX_ETOOBIG;
	if ((r = cx_buf_put_u32(b, (uint32_t)n)) != 0)
		return r;
	return cx_buf_put(b, p, n);
}

/* NULL encodes as "": callers may leave optional strings unset. */
static int
put_str(struct cx_buf *b, const char *s)
{
	if (s == NULL)
		s = "";
	return put_bytes(b, s, strlen(s));
}

/* Secrets carry a length: refuse the NUL the decoder would refuse. */
static int
put_secret(struct cx_buf *b, const char *s, size_t n)
{
	if (n && (s == NULL || memchr(s, 0, n) != NULL))
		return CX_EINVAL;
	return put_bytes(b, n ? s : "", n);
}

static int
put_bool(struct cx_buf *b, uint8_t v)
{
	if (v > 1)
		return CX_EINVAL;
	return cx_buf_put_u8(b, v);
}

static int
put_policy(struct cx_buf *b, const struct cx_policy *p)
{
	int r;

	if (p->types & ~CX_POLICY_ALL)
		return CX_EINVAL;
	if ((r = cx_buf_put_u32(b, p->types)) != 0 || (r = put_bool(b, p->confirm)) != 0 ||
	    (r = cx_buf_put_u64(b, p->lifetime)) != 0)
		return r;
	return cx_buf_put_u64(b, p->max_sigs);
}

static int
put_key(struct cx_buf *b, const struct cx_msg_key *k)
{
	int r;

	if (!keyalg_ok(k->keyalg) || (k->state & ~KEY_STATE_ALL))
		return CX_EINVAL;
	if ((r = put_str(b, k->id)) != 0 || (r = put_str(b, k->keystr)) != 0 ||
	    (r = cx_buf_put(b, k->keyid, 32)) != 0 || (r = cx_buf_put_u8(b, k->keyalg)) != 0 ||
	    (r = cx_buf_put_u32(b, k->state)) != 0 || (r = put_str(b, k->token_serial)) != 0 ||
	    (r = put_str(b, k->token_label)) != 0 || (r = put_str(b, k->uri)) != 0 ||
	    (r = put_policy(b, &k->policy)) != 0)
		return r;
	return cx_buf_put_u64(b, k->sigs_made);
}

static int
put_body(struct cx_buf *b, const struct cx_msg *m)
{
	size_t i;
	int r;

	switch (m->type) {
	case CX_MSG_QUERY:
		return cx_buf_put_u32(b, m->u.query.version);
	case CX_MSG_LIST:
	case CX_MSG_OK:
		return 0;
	case CX_MSG_SIGN:
		if (!sigalg_ok(m->u.sign.sigalg) || (m->u.sign.datalen && m->u.sign.data == NULL))
			return CX_EINVAL;
		if ((r = cx_buf_put(b, m->u.sign.keyid, 32)) != 0 ||
		    (r = cx_buf_put_u8(b, m->u.sign.sigalg)) != 0)
			return r;
		return put_bytes(
		    b, m->u.sign.datalen ? m->u.sign.data : (const uint8_t *)"", m->u.sign.datalen);
	case CX_MSG_TOKEN_LOGIN:
		if ((r = put_str(b, m->u.login.serial)) != 0 ||
		    (r = put_secret(b, m->u.login.pin, m->u.login.pinlen)) != 0)
			return r;
		return put_bool(b, m->u.login.allow_final_try);
	case CX_MSG_LOCK:
	case CX_MSG_UNLOCK:
		return put_secret(b, m->u.lock.password, m->u.lock.passwordlen);
	case CX_MSG_ADD_TOKEN:
		if ((r = put_str(b, m->u.add_token.module)) != 0)
			return r;
		return put_str(b, m->u.add_token.token);
	case CX_MSG_REMOVE_TOKEN:
		return put_str(b, m->u.remove_token.serial);
	case CX_MSG_ADD_KEY:
		if ((r = put_str(b, m->u.add_key.id)) != 0 ||
		    (r = put_secret(b, m->u.add_key.pem, m->u.add_key.pemlen)) != 0)
			return r;
		return put_policy(b, &m->u.add_key.policy);
	case CX_MSG_REMOVE_KEY:
		return cx_buf_put(b, m->u.remove_key.keyid, 32);
	case CX_MSG_SET_POLICY:
		if ((r = cx_buf_put(b, m->u.set_policy.keyid, 32)) != 0)
			return r;
		return put_policy(b, &m->u.set_policy.policy);
	case CX_MSG_GENERATE:
		if (!keyalg_ok(m->u.generate.keyalg))
			return CX_EINVAL;
		if ((r = put_str(b, m->u.generate.serial)) != 0 ||
		    (r = put_str(b, m->u.generate.id)) != 0 ||
		    (r = cx_buf_put_u8(b, m->u.generate.keyalg)) != 0)
			return r;
		return cx_buf_put_u32(b, m->u.generate.bits);
	case CX_MSG_ERROR:
		if ((r = cx_buf_put_u32(b, m->u.error.code)) != 0 ||
		    (r = cx_buf_put_u32(b, m->u.error.detail)) != 0)
			return r;
		return put_str(b, m->u.error.message);
	case CX_MSG_VERSION:
		if ((r = cx_buf_put_u32(b, m->u.version.version)) != 0)
			return r;
		return put_str(b, m->u.version.agent);
	case CX_MSG_KEYS:
		if (m->u.keys.n > UINT32_MAX || (m->u.keys.n && m->u.keys.v == NULL))
			return CX_EINVAL;
		if ((r = cx_buf_put_u32(b, (uint32_t)m->u.keys.n)) != 0)
			return r;
		for (i = 0; i < m->u.keys.n; i++)
			if ((r = put_key(b, &m->u.keys.v[i])) != 0)
				return r;
		return 0;
	case CX_MSG_GENERATED:
		if (m->u.keys.n != 1 || m->u.keys.v == NULL)
			return CX_EINVAL;
		return put_key(b, &m->u.keys.v[0]);
	case CX_MSG_SIGNATURE:
		if (m->u.signature.siglen && m->u.signature.sig == NULL)
			return CX_EINVAL;
		return put_bytes(b,
		    m->u.signature.siglen ? m->u.signature.sig : (const uint8_t *)"",
		    m->u.signature.siglen);
	}
	return CX_EUNSUPPORTED;
}

int
cx_msg_encode(const struct cx_msg *m, struct cx_buf *out)
{
	size_t start = out->len, n;
	uint8_t *hdr;
	int r;

	if ((r = cx_buf_reserve(out, CX_PROTO_HDR, NULL)) != 0)
		return r;
	if ((r = put_body(out, m)) != 0)
		goto fail;
	n = out->len - start - CX_PROTO_HDR + 1; /* type + body */
	if (n > cx_frame_max(m->type)) {
		r = CX_ETOOBIG;
		goto fail;
	}
	hdr = out->d + start;
	hdr[0] = (uint8_t)(n >> 24);
	hdr[1] = (uint8_t)(n >> 16);
	hdr[2] = (uint8_t)(n >> 8);
	hdr[3] = (uint8_t)n;
	hdr[4] = m->type;
	return 0;
fail:
	/* a half-written frame may hold a secret: wipe it as well as drop it */
	explicit_bzero(out->d + start, out->len - start);
	out->len = start;
	if (out->off > out->len)
		out->off = out->len;
	return r;
}
