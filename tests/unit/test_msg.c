/*
 * The agent wire protocol (proto/msg.c) and its client (client/): round
 * trips of every message, every truncation, the limits, what the decoder
 * refuses, where secrets go; then the client against a fake agent on a real
 * Unix socket: answers, errors, signatures, key lists, and agents that
 * misbehave or vanish mid-answer.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/conex-agent.h"
#include "proto/msg.h"
#include "tests/unit/testutil.h"

#define SECRET_CAP (CX_PROTO_MAX)

/* ---- helpers ---- */

static const char *
nz(const char *s)
{
	return s == NULL ? "" : s;
}

static void
str_eq(const char *what, const char *a, const char *b)
{
	ck_assert_msg(strcmp(nz(a), nz(b)) == 0, "%s: <%s> != <%s>", what, nz(a), nz(b));
}

static void
bytes_eq(const char *what, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	ck_assert_msg(an == bn, "%s: length %zu != %zu", what, an, bn);
	ck_assert_msg(an == 0 || memcmp(a, b, an) == 0, "%s: bytes differ", what);
}

static void
policy_eq(const struct cx_policy *a, const struct cx_policy *b)
{
	ck_assert_uint_eq(a->types, b->types);
	ck_assert_uint_eq(a->confirm, b->confirm);
	ck_assert_uint_eq(a->lifetime, b->lifetime);
	ck_assert_uint_eq(a->max_sigs, b->max_sigs);
}

static void
key_eq(const struct cx_msg_key *a, const struct cx_msg_key *b)
{
	str_eq("id", a->id, b->id);
	str_eq("keystr", a->keystr, b->keystr);
	ck_assert(memcmp(a->keyid, b->keyid, 32) == 0);
	ck_assert_uint_eq(a->keyalg, b->keyalg);
	ck_assert_uint_eq(a->state, b->state);
	str_eq("token_serial", a->token_serial, b->token_serial);
	str_eq("token_label", a->token_label, b->token_label);
	str_eq("uri", a->uri, b->uri);
	policy_eq(&a->policy, &b->policy);
	ck_assert_uint_eq(a->sigs_made, b->sigs_made);
}

static void
msg_eq(const struct cx_msg *a, const struct cx_msg *b)
{
	size_t i;

	ck_assert_uint_eq(a->type, b->type);
	switch (a->type) {
	case CX_MSG_QUERY:
		ck_assert_uint_eq(a->u.query.version, b->u.query.version);
		break;
	case CX_MSG_SIGN:
		ck_assert(memcmp(a->u.sign.keyid, b->u.sign.keyid, 32) == 0);
		ck_assert_uint_eq(a->u.sign.sigalg, b->u.sign.sigalg);
		bytes_eq(
		    "data", a->u.sign.data, a->u.sign.datalen, b->u.sign.data, b->u.sign.datalen);
		break;
	case CX_MSG_TOKEN_LOGIN:
		str_eq("serial", a->u.login.serial, b->u.login.serial);
		bytes_eq("pin", (const uint8_t *)a->u.login.pin, a->u.login.pinlen,
		    (const uint8_t *)b->u.login.pin, b->u.login.pinlen);
		ck_assert_uint_eq(a->u.login.allow_final_try, b->u.login.allow_final_try);
		break;
	case CX_MSG_LOCK:
	case CX_MSG_UNLOCK:
		bytes_eq("password", (const uint8_t *)a->u.lock.password, a->u.lock.passwordlen,
		    (const uint8_t *)b->u.lock.password, b->u.lock.passwordlen);
		break;
	case CX_MSG_ADD_TOKEN:
		str_eq("module", a->u.add_token.module, b->u.add_token.module);
		str_eq("token", a->u.add_token.token, b->u.add_token.token);
		break;
	case CX_MSG_REMOVE_TOKEN:
		str_eq("serial", a->u.remove_token.serial, b->u.remove_token.serial);
		break;
	case CX_MSG_ADD_KEY:
		str_eq("id", a->u.add_key.id, b->u.add_key.id);
		bytes_eq("pem", (const uint8_t *)a->u.add_key.pem, a->u.add_key.pemlen,
		    (const uint8_t *)b->u.add_key.pem, b->u.add_key.pemlen);
		policy_eq(&a->u.add_key.policy, &b->u.add_key.policy);
		break;
	case CX_MSG_REMOVE_KEY:
		ck_assert(memcmp(a->u.remove_key.keyid, b->u.remove_key.keyid, 32) == 0);
		break;
	case CX_MSG_SET_POLICY:
		ck_assert(memcmp(a->u.set_policy.keyid, b->u.set_policy.keyid, 32) == 0);
		policy_eq(&a->u.set_policy.policy, &b->u.set_policy.policy);
		break;
	case CX_MSG_GENERATE:
		str_eq("serial", a->u.generate.serial, b->u.generate.serial);
		str_eq("id", a->u.generate.id, b->u.generate.id);
		ck_assert_uint_eq(a->u.generate.keyalg, b->u.generate.keyalg);
		ck_assert_uint_eq(a->u.generate.bits, b->u.generate.bits);
		break;
	case CX_MSG_ERROR:
		ck_assert_uint_eq(a->u.error.code, b->u.error.code);
		ck_assert_uint_eq(a->u.error.detail, b->u.error.detail);
		str_eq("message", a->u.error.message, b->u.error.message);
		break;
	case CX_MSG_VERSION:
		ck_assert_uint_eq(a->u.version.version, b->u.version.version);
		str_eq("agent", a->u.version.agent, b->u.version.agent);
		break;
	case CX_MSG_KEYS:
	case CX_MSG_GENERATED:
		ck_assert_uint_eq(a->u.keys.n, b->u.keys.n);
		for (i = 0; i < a->u.keys.n; i++)
			key_eq(&a->u.keys.v[i], &b->u.keys.v[i]);
		break;
	case CX_MSG_SIGNATURE:
		bytes_eq("signature", a->u.signature.sig, a->u.signature.siglen, b->u.signature.sig,
		    b->u.signature.siglen);
		break;
	}
}

/* Decodes a body from an allocation of exactly len bytes, so ASan sees any overread. */
static int
decode_exact(uint8_t type, const uint8_t *body, size_t len, struct cx_msg *m,
    struct cx_buf *scratch, uint8_t *secret, size_t cap, struct cx_err *e)
{
	uint8_t *p = malloc(len);
	int r;

	ck_assert(p != NULL);
	if (len)
		memcpy(p, body, len);
	r = cx_msg_decode(type, p, len, m, scratch, secret, cap, e);
	free(p);
	return r;
}

/*
 * Encodes m, checks the frame header, decodes the body and compares; then
 * every truncation of the body (all of them, or a sample for big bodies)
 * must be CX_EPARSE and one trailing byte must be refused.
 */
static void
round_trip(const struct cx_msg *m)
{
	struct cx_buf frame, scratch, again;
	struct cx_msg d, t;
	struct cx_err e = {0};
	uint8_t *secret = malloc(SECRET_CAP), *body, type, *longer;
	uint32_t bodylen;
	size_t k, step;
	int r;

	ck_assert(secret != NULL);
	cx_buf_init(&frame, 0);
	cx_buf_init(&scratch, 0);
	cx_buf_init(&again, 0);
	ck_assert_int_eq(cx_msg_encode(m, &frame), 0);
	ck_assert_int_eq(cx_frame_header(frame.d, &bodylen, &type), 0);
	ck_assert_uint_eq(type, m->type);
	ck_assert_uint_eq(bodylen + CX_PROTO_HDR, frame.len);
	body = frame.d + CX_PROTO_HDR;

	r = decode_exact(type, body, bodylen, &d, &scratch, secret, SECRET_CAP, &e);
	ck_assert_msg(r == 0, "type %u: decode: %s", type, e.msg);
	msg_eq(m, &d);
	/* decoding then encoding gives back the same bytes */
	ck_assert_int_eq(cx_msg_encode(&d, &again), 0);
	bytes_eq("re-encoded", frame.d, frame.len, again.d, again.len);

	step = bodylen > 4096 ? bodylen / 512 : 1;
	for (k = 0; k < bodylen; k += (k < 256 || k + 256 > bodylen) ? 1 : step) {
		r = decode_exact(type, body, k, &t, &scratch, secret, SECRET_CAP, &e);
		ck_assert_msg(r == CX_EPARSE, "type %u: truncation to %zu of %u bytes: %d (%s)",
		    type, k, bodylen, r, e.msg);
		ck_assert_uint_eq(t.type, 0); /* nothing of a refused message is left */
	}

	longer = malloc(bodylen + 1);
	ck_assert(longer != NULL);
	memcpy(longer, body, bodylen);
	longer[bodylen] = 0;
	r = decode_exact(type, longer, bodylen + 1, &t, &scratch, secret, SECRET_CAP, &e);
	if (bodylen + 1 > cx_frame_max(type) - 1) {
		/* no room for a trailing byte: over the limit */
		ck_assert_msg(r == CX_ETOOBIG, "type %u: trailing byte: %d", type, r);
	} else {
		ck_assert_msg(r == CX_EPARSE, "type %u: trailing byte: %d", type, r);
		ck_assert_msg(strstr(e.msg, "trailing") != NULL, "type %u: %s", type, e.msg);
	}
	free(longer);
	cx_buf_free(&frame);
	cx_buf_free(&again);
	cx_buf_free(&scratch);
	free(secret);
}

static void
fill(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static struct cx_msg_key
some_key(int i)
{
	static const char *ids[] = {"", "alice", "a-very-long-identity-name-0123456789"};
	struct cx_msg_key k;

	memset(&k, 0, sizeof(k));
	k.id = ids[i % 3];
	k.keystr = i % 2 ? "ed25519=MCowBQYDK2VwAyEAxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" : "";
	fill(k.keyid, 32, (uint8_t)i);
	k.keyalg = (uint8_t)(1 + i % 3);
	k.state = (uint32_t)(i % 16);
	k.token_serial = i % 2 ? "0123456789abcdef" : "";
	k.token_label = i % 2 ? "YubiKey PIV #1" : "";
	k.uri = i % 2 ? "pkcs11:token=YubiKey;serial=0123;id=%01;type=private" : "";
	k.policy.types = (uint32_t)(i % 16);
	k.policy.confirm = (uint8_t)(i % 2);
	k.policy.lifetime = i % 3 ? UINT64_MAX : 0;
	k.policy.max_sigs = (uint64_t)i * 1000;
	k.sigs_made = i % 2 ? UINT64_MAX : 0;
	return k;
}

/* ---- round trips ---- */

START_TEST(test_buf_prefault)
{
	struct cx_buf b;
	uint8_t *p;
	size_t n = 3 * 1024 * 1024 + 123, i;

	/* a hint only: what is written stays, what is not stays unwritten, len is kept */
	cx_buf_init(&b, 0);
	cx_buf_prefault(&b, 0, n); /* nothing allocated: nothing to do */
	ck_assert_int_eq(cx_buf_reserve(&b, n, &p), 0);
	for (i = 0; i < n / 2; i++)
		p[i] = (uint8_t)(i * 7 + 1);
	b.len = n / 2;
	cx_buf_prefault(&b, 0, n);
	cx_buf_prefault(&b, 1, 10);       /* below the minimum */
	cx_buf_prefault(&b, b.alloc, n);  /* past the end */
	cx_buf_prefault(&b, 4097, 2 * n); /* clipped to the allocation */
	ck_assert_uint_eq(b.len, n / 2);
	for (i = 0; i < n / 2; i++)
		ck_assert_uint_eq(b.d[i], (uint8_t)(i * 7 + 1));
	ck_assert_int_eq(cx_buf_put(&b, "xyz", 3), 0);
	ck_assert_int_eq(memcmp(b.d + n / 2, "xyz", 4), 0);
	cx_buf_free(&b);
}
END_TEST

START_TEST(test_round_trip_requests)
{
	struct cx_msg m;
	uint8_t data[300];

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_QUERY;
	m.u.query.version = CX_PROTO_VERSION;
	round_trip(&m);
	m.u.query.version = UINT32_MAX;
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_LIST;
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_SIGN;
	fill(m.u.sign.keyid, 32, 1);
	for (uint8_t a = CX_MSIG_RSAPSS_SHA256; a <= CX_MSIG_ECDSA_P256_SHA256; a++) {
		m.u.sign.sigalg = a;
		m.u.sign.data = NULL;
		m.u.sign.datalen = 0; /* empty data */
		round_trip(&m);
		fill(data, sizeof(data), a); /* binary, NULs included */
		data[5] = 0;
		m.u.sign.data = data;
		m.u.sign.datalen = sizeof(data);
		round_trip(&m);
	}

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_TOKEN_LOGIN;
	m.u.login.serial = "";
	m.u.login.pin = "";
	round_trip(&m);
	m.u.login.serial = "0123456789abcdef";
	m.u.login.pin = "123456";
	m.u.login.pinlen = 6;
	m.u.login.allow_final_try = 1;
	round_trip(&m);

	for (uint8_t t = CX_MSG_LOCK; t <= CX_MSG_UNLOCK; t++) {
		memset(&m, 0, sizeof(m));
		m.type = t;
		round_trip(&m);
		m.u.lock.password = "correct horse battery staple";
		m.u.lock.passwordlen = strlen(m.u.lock.password);
		round_trip(&m);
	}

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_ADD_TOKEN;
	m.u.add_token.module = "/usr/lib/softhsm/libsofthsm2.so";
	m.u.add_token.token = ""; /* every token */
	round_trip(&m);
	m.u.add_token.token = "pkcs11:token=conex;serial=abc";
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_REMOVE_TOKEN;
	m.u.remove_token.serial = "abc";
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_ADD_KEY;
	m.u.add_key.id = "m1";
	m.u.add_key.pem =
	    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n";
	m.u.add_key.pemlen = strlen(m.u.add_key.pem);
	m.u.add_key.policy.types = CX_POLICY_TARGETS | CX_POLICY_SNAPSHOT;
	m.u.add_key.policy.confirm = 1;
	m.u.add_key.policy.lifetime = 3600;
	m.u.add_key.policy.max_sigs = UINT64_MAX;
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_REMOVE_KEY;
	fill(m.u.remove_key.keyid, 32, 9);
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_SET_POLICY;
	fill(m.u.set_policy.keyid, 32, 10);
	round_trip(&m); /* an all-zero policy: signs nothing */
	m.u.set_policy.policy.types = CX_POLICY_ALL;
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_GENERATE;
	m.u.generate.serial = "0123";
	m.u.generate.id = "alice";
	for (uint8_t a = CX_MKEY_RSA; a <= CX_MKEY_ECDSA_P256; a++) {
		m.u.generate.keyalg = a;
		m.u.generate.bits = a == CX_MKEY_RSA ? 4096 : 0;
		round_trip(&m);
	}
}
END_TEST

START_TEST(test_round_trip_responses)
{
	struct cx_msg_key keys[7];
	struct cx_msg m;
	uint8_t sig[512];
	int i;

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_OK;
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_ERROR;
	m.u.error.code = CX_AERR_PIN_INCORRECT;
	m.u.error.detail = 0xFFFFFFFFu;
	round_trip(&m); /* empty message */
	m.u.error.message = "wrong PIN";
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_VERSION;
	m.u.version.version = 1;
	m.u.version.agent = "conex-agent 0.1";
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_KEYS;
	round_trip(&m); /* no keys */
	for (i = 0; i < 7; i++)
		keys[i] = some_key(i);
	m.u.keys.v = keys;
	m.u.keys.n = 7;
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_GENERATED;
	m.u.keys.v = &keys[1];
	m.u.keys.n = 1;
	round_trip(&m);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_SIGNATURE;
	fill(sig, sizeof(sig), 3);
	m.u.signature.sig = sig;
	m.u.signature.siglen = sizeof(sig);
	round_trip(&m);
	m.u.signature.siglen = 64;
	round_trip(&m);
}
END_TEST

/* Data and key lists up to the frame limit, and one byte past it. */
START_TEST(test_limits)
{
	const size_t maxdata = CX_PROTO_SIGN_MAX - 1 - 32 - 1 - 4;
	const size_t maxkeys = (CX_PROTO_MAX - 1 - 4) / 86;
	struct cx_msg_key *keys;
	struct cx_buf out;
	struct cx_msg m;
	uint8_t *data = malloc(CX_PROTO_SIGN_MAX);
	char ids[1500][8];
	size_t i;

	ck_assert(data != NULL);
	fill(data, CX_PROTO_SIGN_MAX, 5);
	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_SIGN;
	m.u.sign.sigalg = CX_MSIG_ED25519;
	m.u.sign.data = data;
	/* the largest SIGN, once through (round_trip's truncation sweep is for small bodies) */
	m.u.sign.datalen = maxdata;
	{
		struct cx_buf fr, sc;
		struct cx_msg d;
		struct cx_err e = {0};
		uint32_t bl;
		uint8_t ty;
		cx_buf_init(&fr, 0);
		cx_buf_init(&sc, 0);
		ck_assert_int_eq(cx_msg_encode(&m, &fr), 0);
		ck_assert_uint_eq(fr.len, CX_PROTO_HDR + CX_PROTO_SIGN_MAX - 1);
		ck_assert_int_eq(cx_frame_header(fr.d, &bl, &ty), 0);
		ck_assert_msg(cx_msg_decode(ty, fr.d + CX_PROTO_HDR, bl, &d, &sc, NULL, 0, &e) == 0,
		    "%s", e.msg);
		ck_assert_uint_eq(d.u.sign.datalen, maxdata);
		ck_assert(memcmp(d.u.sign.data, data, maxdata) == 0);
		cx_buf_free(&fr);
		cx_buf_free(&sc);
	}
	m.u.sign.datalen = CX_PROTO_MAX; /* past the others' limit: a SIGN still round-trips */
	round_trip(&m);
	m.u.sign.datalen = maxdata + 1;
	cx_buf_init(&out, 0);
	ck_assert_int_eq(cx_buf_put(&out, "keep", 4), 0);
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_ETOOBIG);
	ck_assert_uint_eq(out.len, 4); /* a refused message leaves nothing behind */
	ck_assert(memcmp(out.d, "keep", 4) == 0);

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_SIGNATURE;
	m.u.signature.sig = data;
	m.u.signature.siglen = CX_PROTO_MAX - 1 - 4;
	round_trip(&m);
	m.u.signature.siglen++;
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_ETOOBIG);

	/* as many of the smallest keys as a frame holds */
	keys = calloc(maxkeys + 1, sizeof(*keys));
	ck_assert(keys != NULL);
	for (i = 0; i <= maxkeys; i++)
		keys[i].keyalg = CX_MKEY_ED25519;
	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_KEYS;
	m.u.keys.v = keys;
	m.u.keys.n = maxkeys;
	round_trip(&m);
	m.u.keys.n = maxkeys + 1;
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_ETOOBIG);

	/* many ordinary keys */
	for (i = 0; i < 1500; i++) {
		keys[i] = some_key((int)i);
		snprintf(ids[i], sizeof(ids[i]), "k%zu", i);
		keys[i].id = ids[i];
	}
	m.u.keys.n = 1500;
	round_trip(&m);

	free(keys);
	free(data);
	cx_buf_free(&out);
}
END_TEST

/* ---- what the decoder refuses ---- */

START_TEST(test_frame_header)
{
	uint8_t h[CX_PROTO_HDR] = {0, 0, 0, 1, CX_MSG_LIST}, type = 0;
	uint32_t len = 99;

	ck_assert_int_eq(cx_frame_header(h, &len, &type), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_uint_eq(type, CX_MSG_LIST);
	h[3] = 0; /* no room for the type */
	ck_assert_int_eq(cx_frame_header(h, &len, &type), CX_EPARSE);
	h[0] = (CX_PROTO_MAX >> 24) & 0xff;
	h[1] = (CX_PROTO_MAX >> 16) & 0xff;
	h[2] = (CX_PROTO_MAX >> 8) & 0xff;
	h[3] = CX_PROTO_MAX & 0xff;
	ck_assert_int_eq(cx_frame_header(h, &len, &type), 0);
	ck_assert_uint_eq(len, CX_PROTO_MAX - 1);
	h[3]++; /* one over */
	ck_assert_int_eq(cx_frame_header(h, &len, &type), CX_ETOOBIG);
	memset(h, 0xff, 4);
	ck_assert_int_eq(cx_frame_header(h, &len, &type), CX_ETOOBIG);
}
END_TEST

static int
decode_bytes(uint8_t type, const char *body, size_t len, struct cx_err *e)
{
	struct cx_buf scratch;
	struct cx_msg m;
	uint8_t secret[64];
	int r;

	cx_buf_init(&scratch, 0);
	r = decode_exact(type, (const uint8_t *)body, len, &m, &scratch, secret, sizeof(secret), e);
	cx_buf_free(&scratch);
	return r;
}

#define DEC(type, lit, e) decode_bytes(type, lit, sizeof(lit) - 1, e)

START_TEST(test_refused)
{
	struct cx_buf scratch;
	struct cx_err e = {0};
	struct cx_msg m;
	uint8_t big[64];

	/* a NUL inside a string, and inside a secret */
	ck_assert_int_eq(DEC(CX_MSG_REMOVE_TOKEN, "\0\0\0\3a\0b", &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "NUL") != NULL, "%s", e.msg);
	ck_assert_int_eq(DEC(CX_MSG_LOCK, "\0\0\0\3a\0b", &e), CX_EPARSE);
	ck_assert_int_eq(DEC(CX_MSG_REMOVE_TOKEN, "\0\0\0\3abc", &e), 0);
	/* a length longer than what is left names the field */
	ck_assert_int_eq(DEC(CX_MSG_ADD_TOKEN, "\0\0\0\1m\0\0\0\5ab", &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "ADD_TOKEN: token: length 5") != NULL, "%s", e.msg);
	ck_assert_int_eq(DEC(CX_MSG_ADD_TOKEN, "\xff\xff\xff\xff", &e), CX_EPARSE);
	/* trailing bytes */
	ck_assert_int_eq(DEC(CX_MSG_LIST, "x", &e), CX_EPARSE);
	ck_assert_int_eq(DEC(CX_MSG_OK, "\0", &e), CX_EPARSE);
	ck_assert_int_eq(DEC(CX_MSG_QUERY, "\0\0\0\1\0", &e), CX_EPARSE);
	/* algorithms out of range */
	memset(big, 0, sizeof(big));
	ck_assert_int_eq(decode_bytes(CX_MSG_SIGN, (char *)big, 37, &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "sigalg") != NULL, "%s", e.msg);
	big[32] = 4;
	ck_assert_int_eq(decode_bytes(CX_MSG_SIGN, (char *)big, 37, &e), CX_EPARSE);
	big[32] = 3;
	ck_assert_int_eq(decode_bytes(CX_MSG_SIGN, (char *)big, 37, &e), 0);
	ck_assert_int_eq(DEC(CX_MSG_GENERATE, "\0\0\0\0\0\0\0\0\0\0\0\0\0", &e), CX_EPARSE);
	ck_assert_int_eq(DEC(CX_MSG_GENERATE, "\0\0\0\0\0\0\0\0\4\0\0\0\0", &e), CX_EPARSE);
	ck_assert_int_eq(DEC(CX_MSG_GENERATE, "\0\0\0\0\0\0\0\0\2\0\0\0\0", &e), 0);
	/* policy: unknown type bits, confirm not 0/1; allow_final_try not 0/1 */
	memset(big, 0, sizeof(big));
	big[35] = 0x10;
	ck_assert_int_eq(decode_bytes(CX_MSG_SET_POLICY, (char *)big, 32 + 21, &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "policy.types") != NULL, "%s", e.msg);
	big[35] = 0x0f;
	ck_assert_int_eq(decode_bytes(CX_MSG_SET_POLICY, (char *)big, 32 + 21, &e), 0);
	big[36] = 2;
	ck_assert_int_eq(decode_bytes(CX_MSG_SET_POLICY, (char *)big, 32 + 21, &e), CX_EPARSE);
	ck_assert_int_eq(DEC(CX_MSG_TOKEN_LOGIN, "\0\0\0\0\0\0\0\0\2", &e), CX_EPARSE);
	ck_assert_int_eq(DEC(CX_MSG_TOKEN_LOGIN, "\0\0\0\0\0\0\0\0\1", &e), 0);
	/* unknown types */
	ck_assert_int_eq(DEC(0, "", &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(DEC(13, "", &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(DEC(127, "", &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(DEC(134, "", &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(DEC(255, "", &e), CX_EUNSUPPORTED);

	/* a huge key count in a small body: refused before any allocation for it */
	cx_buf_init(&scratch, 0);
	ck_assert_int_eq(cx_msg_decode(CX_MSG_KEYS, (const uint8_t *)"\xff\xff\xff\xff", 4, &m,
	                     &scratch, NULL, 0, &e),
	    CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "cannot fit") != NULL, "%s", e.msg);
	ck_assert_uint_eq(scratch.alloc, 0);
	memset(big, 0, sizeof(big));
	big[3] = 1; /* one key claimed, 60 bytes: less than the smallest key */
	ck_assert_int_eq(cx_msg_decode(CX_MSG_KEYS, big, 64, &m, &scratch, NULL, 0, &e), CX_EPARSE);
	/* a body over the limit is refused whatever it holds */
	ck_assert_int_eq(
	    cx_msg_decode(CX_MSG_REMOVE_TOKEN, big, CX_PROTO_MAX, &m, &scratch, NULL, 0, &e),
	    CX_ETOOBIG);
	ck_assert_int_eq(
	    cx_msg_decode(CX_MSG_SIGN, big, CX_PROTO_SIGN_MAX, &m, &scratch, NULL, 0, &e),
	    CX_ETOOBIG);
	/* the header alone decides, by type: SIGN may be larger than anything else */
	{
		uint8_t h[CX_PROTO_HDR] = {0x00, 0x04, 0x00, 0x01, CX_MSG_SIGN};
		uint32_t bl;
		uint8_t ty;
		ck_assert_int_eq(cx_frame_header(h, &bl, &ty), 0);
		ck_assert_uint_eq(bl, CX_PROTO_MAX);
		h[4] = CX_MSG_LIST;
		ck_assert_int_eq(cx_frame_header(h, &bl, &ty), CX_ETOOBIG);
		h[0] = 0x04, h[1] = 0, h[2] = 0, h[3] = 1, h[4] = CX_MSG_SIGN;
		ck_assert_int_eq(cx_frame_header(h, &bl, &ty), CX_ETOOBIG);
	}
	/* a scratch buffer capped too low */
	cx_buf_free(&scratch);
	cx_buf_init(&scratch, 8);
	ck_assert_int_eq(cx_msg_decode(CX_MSG_REMOVE_TOKEN, (const uint8_t *)"\0\0\0\11abcdefghi",
	                     13, &m, &scratch, NULL, 0, &e),
	    CX_ETOOBIG);
	cx_buf_free(&scratch);
}
END_TEST

/* A KEYS entry with unknown state bits or key algorithm. */
START_TEST(test_refused_key_fields)
{
	struct cx_msg_key k = some_key(1);
	struct cx_buf out, scratch;
	struct cx_err e = {0};
	struct cx_msg m, d;
	size_t off;

	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_GENERATED;
	m.u.keys.v = &k;
	m.u.keys.n = 1;
	cx_buf_init(&out, 0);
	cx_buf_init(&scratch, 0);
	ck_assert_int_eq(cx_msg_encode(&m, &out), 0);
	/* state follows id, keystr, keyid and keyalg */
	off = CX_PROTO_HDR + 4 + strlen(k.id) + 4 + strlen(k.keystr) + 32;
	ck_assert_uint_eq(out.d[off], k.keyalg);
	out.d[off] = 9;
	ck_assert_int_eq(cx_msg_decode(CX_MSG_GENERATED, out.d + CX_PROTO_HDR,
	                     out.len - CX_PROTO_HDR, &d, &scratch, NULL, 0, &e),
	    CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "keyalg") != NULL, "%s", e.msg);
	out.d[off] = k.keyalg;
	out.d[off + 1] = 0x80;
	ck_assert_int_eq(cx_msg_decode(CX_MSG_GENERATED, out.d + CX_PROTO_HDR,
	                     out.len - CX_PROTO_HDR, &d, &scratch, NULL, 0, &e),
	    CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "state") != NULL, "%s", e.msg);

	/* and the encoder will not write them either */
	cx_buf_reset(&out);
	k.state = 0x10;
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_EINVAL);
	k.state = 0;
	k.keyalg = 0;
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_EINVAL);
	ck_assert_uint_eq(out.len, 0);
	cx_buf_free(&out);
	cx_buf_free(&scratch);
}
END_TEST

START_TEST(test_encoder_refuses)
{
	struct cx_buf out;
	struct cx_msg m;

	cx_buf_init(&out, 0);
	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_SIGN;
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_EINVAL); /* sigalg 0 */
	m.type = CX_MSG_TOKEN_LOGIN;
	m.u.login.pin = "12\0034"; /* a control byte is fine */
	m.u.login.pinlen = 4;
	ck_assert_int_eq(cx_msg_encode(&m, &out), 0);
	cx_buf_reset(&out);
	m.u.login.pin = "12\0"
	                "34";
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_EINVAL); /* NUL in a secret */
	m.u.login.pin = "1234";
	m.u.login.pinlen = 4;
	m.u.login.allow_final_try = 2;
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_EINVAL);
	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_SET_POLICY;
	m.u.set_policy.policy.types = 0x20;
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_EINVAL);
	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_GENERATED; /* exactly one key */
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_EINVAL);
	m.type = 77;
	ck_assert_int_eq(cx_msg_encode(&m, &out), CX_EUNSUPPORTED);
	ck_assert_uint_eq(out.len, 0);
	cx_buf_free(&out);
}
END_TEST

/* Secrets go to the caller's buffer, never to scratch; a refused message leaves none. */
START_TEST(test_secrets)
{
	static const char pem[] = "-----BEGIN PRIVATE KEY-----\nSECRETSECRETSECRET\n";
	struct cx_buf frame, scratch;
	struct cx_err e = {0};
	struct cx_msg m, d;
	uint8_t secret[128], small[8];

	cx_buf_init(&frame, 0);
	cx_buf_init(&scratch, 0);
	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_ADD_KEY;
	m.u.add_key.id = "m1";
	m.u.add_key.pem = pem;
	m.u.add_key.pemlen = strlen(pem);
	m.u.add_key.policy.types = CX_POLICY_ALL;
	ck_assert_int_eq(cx_msg_encode(&m, &frame), 0);
	ck_assert_int_eq(cx_msg_decode(CX_MSG_ADD_KEY, frame.d + CX_PROTO_HDR,
	                     frame.len - CX_PROTO_HDR, &d, &scratch, secret, sizeof(secret), &e),
	    0);
	ck_assert_ptr_eq(d.u.add_key.pem, (const char *)secret);
	ck_assert_str_eq(d.u.add_key.pem, pem);
	ck_assert(memmem(scratch.d, scratch.alloc, "SECRET", 6) == NULL);
	ck_assert((const uint8_t *)d.u.add_key.id >= scratch.d &&
	    (const uint8_t *)d.u.add_key.id < scratch.d + scratch.len);

	/* too small a secret buffer, or none: CX_ETOOBIG */
	ck_assert_int_eq(cx_msg_decode(CX_MSG_ADD_KEY, frame.d + CX_PROTO_HDR,
	                     frame.len - CX_PROTO_HDR, &d, &scratch, small, sizeof(small), &e),
	    CX_ETOOBIG);
	ck_assert_int_eq(cx_msg_decode(CX_MSG_ADD_KEY, frame.d + CX_PROTO_HDR,
	                     frame.len - CX_PROTO_HDR, &d, &scratch, NULL, 0, &e),
	    CX_ETOOBIG);
	/* exactly fitting (with its NUL) is fine */
	ck_assert_int_eq(cx_msg_decode(CX_MSG_ADD_KEY, frame.d + CX_PROTO_HDR,
	                     frame.len - CX_PROTO_HDR, &d, &scratch, secret, strlen(pem) + 1, &e),
	    0);
	/* the secret was copied, then the policy was bad: the secret is wiped */
	frame.d[frame.len - 17] = 7; /* confirm */
	memset(secret, 0x55, sizeof(secret));
	ck_assert_int_eq(cx_msg_decode(CX_MSG_ADD_KEY, frame.d + CX_PROTO_HDR,
	                     frame.len - CX_PROTO_HDR, &d, &scratch, secret, sizeof(secret), &e),
	    CX_EPARSE);
	for (size_t i = 0; i <= strlen(pem); i++)
		ck_assert_uint_eq(secret[i], 0);
	cx_buf_free(&frame);
	cx_buf_free(&scratch);
}
END_TEST

START_TEST(test_err_names)
{
	ck_assert_str_eq(cx_agent_err_name(CX_AERR_TOKEN_ABSENT), "token-absent");
	ck_assert_str_eq(cx_agent_err_name(CX_AERR_PIN_INCORRECT), "pin-incorrect");
	ck_assert_str_eq(cx_agent_err_name(CX_AERR_FINAL_TRY), "final-try");
	ck_assert_str_eq(cx_agent_err_name(0), "unknown-error");
	ck_assert_str_eq(cx_agent_err_name(13), "unknown-error");
	for (uint32_t c = CX_AERR_TOKEN_ABSENT; c <= CX_AERR_FINAL_TRY; c++)
		ck_assert_str_ne(cx_agent_err_name(c), "unknown-error");
}
END_TEST

/* ---- the client against a fake agent ---- */

enum act {
	ACT_REPLY, /* send reply */
	ACT_RAW,   /* send raw bytes, then close */
	ACT_CLOSE, /* close without answering */
	ACT_SILENT /* answer nothing, wait for the client to go */
};

struct step {
	uint8_t expect; /* request type */
	enum act act;
	struct cx_msg reply;
	const uint8_t *raw;
	size_t rawlen;
};

struct fake {
	int lfd; /* listening socket, or -1 */
	int fd;  /* connected socket */
	const struct step *steps;
	size_t nsteps;
	/* what the server saw, checked by the test thread */
	char failed[256];
	char serial[64], module[256], token[256];
	char secret[128];
	size_t secretlen;
	int secret_in_buffer;
	size_t datalen;
	uint8_t keyid[32];
	uint8_t flag;
	pthread_t th;
};

static int
read_full(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int
write_full(int fd, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The server's copy of a request's fields, taken before scratch is reused. */
static void
note(struct fake *f, const struct cx_msg *m, const uint8_t *secret)
{
	const char *s = NULL;
	size_t n = 0;

	switch (m->type) {
	case CX_MSG_TOKEN_LOGIN:
		snprintf(f->serial, sizeof(f->serial), "%s", m->u.login.serial);
		s = m->u.login.pin;
		n = m->u.login.pinlen;
		f->flag = m->u.login.allow_final_try;
		break;
	case CX_MSG_LOCK:
	case CX_MSG_UNLOCK:
		s = m->u.lock.password;
		n = m->u.lock.passwordlen;
		break;
	case CX_MSG_ADD_KEY:
		snprintf(f->serial, sizeof(f->serial), "%s", m->u.add_key.id);
		s = m->u.add_key.pem;
		n = m->u.add_key.pemlen;
		f->flag = (uint8_t)m->u.add_key.policy.types;
		break;
	case CX_MSG_ADD_TOKEN:
		snprintf(f->module, sizeof(f->module), "%s", m->u.add_token.module);
		snprintf(f->token, sizeof(f->token), "%s", m->u.add_token.token);
		break;
	case CX_MSG_SIGN:
		memcpy(f->keyid, m->u.sign.keyid, 32);
		f->datalen = m->u.sign.datalen;
		f->flag = m->u.sign.sigalg;
		break;
	case CX_MSG_GENERATE:
		snprintf(f->serial, sizeof(f->serial), "%s/%s/%u/%u", m->u.generate.serial,
		    m->u.generate.id, m->u.generate.keyalg, m->u.generate.bits);
		break;
	case CX_MSG_SET_POLICY:
		memcpy(f->keyid, m->u.set_policy.keyid, 32);
		f->flag = (uint8_t)m->u.set_policy.policy.types;
		break;
	}
	if (s != NULL) {
		f->secret_in_buffer = (const uint8_t *)s == secret;
		f->secretlen = n < sizeof(f->secret) ? n : sizeof(f->secret) - 1;
		memcpy(f->secret, s, f->secretlen);
		f->secret[f->secretlen] = 0;
	}
}

static void *
fake_run(void *arg)
{
	struct fake *f = arg;
	struct cx_buf scratch, out;
	struct cx_err e = {0};
	struct cx_msg m;
	uint8_t hdr[CX_PROTO_HDR], type, *body = NULL, secret[4096], junk;
	uint32_t len;
	size_t i;

	cx_buf_init(&scratch, 0);
	cx_buf_init(&out, 0);
	if (f->lfd >= 0 && (f->fd = accept(f->lfd, NULL, NULL)) < 0) {
		snprintf(f->failed, sizeof(f->failed), "accept: %s", strerror(errno));
		goto done;
	}
	for (i = 0; i < f->nsteps; i++) {
		const struct step *st = &f->steps[i];
		if (read_full(f->fd, hdr, sizeof(hdr)) != 0) {
			snprintf(f->failed, sizeof(f->failed), "step %zu: no request", i);
			break;
		}
		if (cx_frame_header(hdr, &len, &type) != 0) {
			snprintf(f->failed, sizeof(f->failed), "step %zu: bad header", i);
			break;
		}
		free(body);
		body = malloc(len + 1);
		if (body == NULL || read_full(f->fd, body, len) != 0) {
			snprintf(f->failed, sizeof(f->failed), "step %zu: short body", i);
			break;
		}
		if (cx_msg_decode(type, body, len, &m, &scratch, secret, sizeof(secret), &e) != 0) {
			snprintf(f->failed, sizeof(f->failed), "step %zu: %.200s", i, e.msg);
			break;
		}
		if (type != st->expect) {
			snprintf(f->failed, sizeof(f->failed), "step %zu: got type %u, want %u", i,
			    type, st->expect);
			break;
		}
		note(f, &m, secret);
		if (st->act == ACT_CLOSE)
			break;
		if (st->act == ACT_SILENT) {
			while (read(f->fd, &junk, 1) > 0)
				;
			break;
		}
		if (st->act == ACT_RAW) {
			write_full(f->fd, st->raw, st->rawlen);
			break;
		}
		cx_buf_reset(&out);
		if (cx_msg_encode(&st->reply, &out) != 0 ||
		    write_full(f->fd, out.d, out.len) != 0) {
			snprintf(f->failed, sizeof(f->failed), "step %zu: cannot answer", i);
			break;
		}
	}
done:
	free(body);
	cx_buf_free(&scratch);
	cx_buf_free(&out);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	return NULL;
}

/* A fake agent listening on dir/sock, following steps for one connection. */
static void
fake_start(
    struct fake *f, const char *dir, const struct step *steps, size_t n, char *path, size_t pathcap)
{
	struct sockaddr_un sa;

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->steps = steps;
	f->nsteps = n;
	snprintf(path, pathcap, "%s/sock", dir);
	unlink(path);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	ck_assert(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path));
	ck_assert((f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->lfd, 1), 0);
	ck_assert_int_eq(pthread_create(&f->th, NULL, fake_run, f), 0);
}

static void
fake_join(struct fake *f)
{
	pthread_join(f->th, NULL);
	if (f->lfd >= 0)
		close(f->lfd);
	ck_assert_msg(f->failed[0] == 0, "fake agent: %s", f->failed);
}

static struct step
version_step(uint32_t v)
{
	struct step s;

	memset(&s, 0, sizeof(s));
	s.expect = CX_MSG_QUERY;
	s.reply.type = CX_MSG_VERSION;
	s.reply.u.version.version = v;
	s.reply.u.version.agent = "fake-agent 1\x1b[31m";
	return s;
}

static struct step
ok_step(uint8_t expect)
{
	struct step s;

	memset(&s, 0, sizeof(s));
	s.expect = expect;
	s.reply.type = CX_MSG_OK;
	return s;
}

START_TEST(test_client_ok_and_error)
{
	struct step steps[6];
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	struct cx_policy pol = {CX_POLICY_TARGETS, 1, 60, 5};
	struct fake f;
	char *dir = cx_test_tmpdir(), path[512];
	uint8_t keyid[32];

	steps[0] = version_step(CX_PROTO_VERSION);
	steps[1] = ok_step(CX_MSG_ADD_TOKEN);
	steps[2] = ok_step(CX_MSG_TOKEN_LOGIN);
	steps[2].reply.type = CX_MSG_ERROR;
	steps[2].reply.u.error.code = CX_AERR_PIN_INCORRECT;
	steps[2].reply.u.error.detail = 2;
	steps[2].reply.u.error.message = "wrong PIN\x1b]0;pwned\x07";
	steps[3] = ok_step(CX_MSG_ADD_KEY);
	steps[4] = ok_step(CX_MSG_SET_POLICY);
	steps[5] = ok_step(CX_MSG_LOCK);
	fake_start(&f, dir, steps, 6, path, sizeof(path));

	/* $CONEX_AGENT_SOCK when no path is given */
	setenv(CX_AGENT_SOCK_ENV, path, 1);
	ck_assert_msg(cx_agent_connect(NULL, &c, &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(cx_agent_protocol(c), CX_PROTO_VERSION);
	ck_assert_str_eq(cx_agent_version(c), "fake-agent 1?[31m"); /* no escapes reach a tty */

	ck_assert_int_eq(cx_agent_add_token(c, "/lib/p11.so", NULL, &e), 0);
	ck_assert_uint_eq(cx_agent_last_error(c), 0);

	ck_assert_int_eq(cx_agent_token_login(c, "SER1", "123456", 6, 1, &e), CX_EAGENT);
	ck_assert_int_eq(e.code, CX_EAGENT);
	ck_assert_uint_eq(cx_agent_last_error(c), CX_AERR_PIN_INCORRECT);
	ck_assert_uint_eq(cx_agent_last_detail(c), 2);
	ck_assert_str_eq(e.msg, "pin-incorrect: wrong PIN?]0;pwned?");

	/* an ERROR leaves the connection usable */
	ck_assert_int_eq(cx_agent_add_key(c, "m1", (const uint8_t *)"PEMDATA", 7, NULL, &e), 0);
	ck_assert_uint_eq(cx_agent_last_error(c), 0);
	fill(keyid, 32, 4);
	ck_assert_int_eq(cx_agent_set_policy(c, keyid, &pol, &e), 0);
	ck_assert_int_eq(cx_agent_lock(c, "pw", 2, &e), 0);
	cx_agent_close(c);
	fake_join(&f);

	/* what the agent saw; secrets in its secret buffer */
	ck_assert_str_eq(f.module, "/lib/p11.so");
	ck_assert_str_eq(f.token, "");
	ck_assert_str_eq(f.secret, "pw");
	ck_assert_int_eq(f.secret_in_buffer, 1);
	ck_assert(memcmp(f.keyid, keyid, 32) == 0);
	ck_assert_uint_eq(f.flag, CX_POLICY_TARGETS);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_client_login_secret)
{
	struct step steps[2];
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	struct fake f;
	char *dir = cx_test_tmpdir(), path[512];

	steps[0] = version_step(CX_PROTO_VERSION);
	steps[1] = ok_step(CX_MSG_TOKEN_LOGIN);
	fake_start(&f, dir, steps, 2, path, sizeof(path));
	ck_assert_msg(cx_agent_connect(path, &c, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(cx_agent_token_login(c, "SER1", "12345678", 8, 1, &e), 0);
	cx_agent_close(c);
	fake_join(&f);
	ck_assert_str_eq(f.serial, "SER1");
	ck_assert_str_eq(f.secret, "12345678");
	ck_assert_int_eq(f.secret_in_buffer, 1);
	ck_assert_uint_eq(f.flag, 1);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_client_sign_list_generate)
{
	struct cx_msg_key keys[3], *got, *gen;
	struct step steps[6];
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	struct cx_buf sig;
	struct fake f;
	char *dir = cx_test_tmpdir(), path[512];
	uint8_t rawsig[512], keyid[32], data[1000];
	size_t n;
	int i;

	for (i = 0; i < 3; i++)
		keys[i] = some_key(i + 1);
	fill(rawsig, sizeof(rawsig), 8);
	steps[0] = version_step(CX_PROTO_VERSION);
	memset(&steps[1], 0, sizeof(steps[1]));
	steps[1].expect = CX_MSG_SIGN;
	steps[1].reply.type = CX_MSG_SIGNATURE;
	steps[1].reply.u.signature.sig = rawsig;
	steps[1].reply.u.signature.siglen = sizeof(rawsig);
	memset(&steps[2], 0, sizeof(steps[2]));
	steps[2].expect = CX_MSG_LIST;
	steps[2].reply.type = CX_MSG_KEYS;
	steps[2].reply.u.keys.v = keys;
	steps[2].reply.u.keys.n = 3;
	memset(&steps[3], 0, sizeof(steps[3]));
	steps[3].expect = CX_MSG_LIST;
	steps[3].reply.type = CX_MSG_KEYS; /* none */
	memset(&steps[4], 0, sizeof(steps[4]));
	steps[4].expect = CX_MSG_GENERATE;
	steps[4].reply.type = CX_MSG_GENERATED;
	steps[4].reply.u.keys.v = &keys[0];
	steps[4].reply.u.keys.n = 1;
	memset(&steps[5], 0, sizeof(steps[5]));
	steps[5].expect = CX_MSG_SIGN;
	steps[5].reply.type = CX_MSG_SIGNATURE; /* empty: refused by the client */
	fake_start(&f, dir, steps, 6, path, sizeof(path));

	ck_assert_msg(cx_agent_connect(path, &c, &e) == 0, "%s", e.msg);
	cx_buf_init(&sig, 0);
	fill(keyid, 32, 1);
	fill(data, sizeof(data), 2);
	ck_assert_msg(
	    cx_agent_sign(c, keyid, CX_MSIG_RSAPSS_SHA256, data, sizeof(data), &sig, &e) == 0, "%s",
	    e.msg);
	bytes_eq("signature", sig.d, sig.len, rawsig, sizeof(rawsig));

	ck_assert_msg(cx_agent_list(c, &got, &n, &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(cx_agent_list(c, &gen, &n, &e), 0); /* reuses the scratch */
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(gen);
	for (i = 0; i < 3; i++) /* still intact: the client made its own copy */
		key_eq(&got[i], &keys[i]);
	cx_agent_keys_free(got);

	ck_assert_int_eq(cx_agent_generate(c, "SER", "alice", CX_MKEY_RSA, 4096, &gen, &e), 0);
	key_eq(gen, &keys[0]);
	cx_agent_keys_free(gen);

	cx_buf_reset(&sig);
	ck_assert_int_eq(cx_agent_sign(c, keyid, CX_MSIG_ED25519, data, 1, &sig, &e), CX_ECRYPTO);
	ck_assert_uint_eq(sig.len, 0);
	cx_agent_close(c);
	fake_join(&f);
	ck_assert(memcmp(f.keyid, keyid, 32) == 0);
	ck_assert_uint_eq(f.datalen, 1);
	ck_assert_uint_eq(f.flag, CX_MSIG_ED25519);
	ck_assert_str_eq(f.serial, "SER/alice/1/4096");
	cx_buf_free(&sig);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* One misbehaving agent per call: every failure closes the connection. */
static void
client_fails(const struct step *second, int want, const char *msgpart)
{
	struct step steps[2];
	struct cx_agent_conn *c;
	struct cx_msg_key *keys;
	struct cx_err e = {0};
	struct fake f;
	char *dir = cx_test_tmpdir(), path[512];
	size_t n;

	steps[0] = version_step(CX_PROTO_VERSION);
	steps[1] = *second;
	fake_start(&f, dir, steps, 2, path, sizeof(path));
	ck_assert_msg(cx_agent_connect(path, &c, &e) == 0, "%s", e.msg);
	cx_agent_set_timeout(c, 300);
	ck_assert_int_eq(cx_agent_list(c, &keys, &n, &e), want);
	ck_assert_msg(strstr(e.msg, msgpart) != NULL, "want <%s> in <%s>", msgpart, e.msg);
	ck_assert_ptr_null(keys);
	/* the connection is gone */
	ck_assert_int_eq(cx_agent_list(c, &keys, &n, &e), CX_EIO);
	ck_assert_msg(strstr(e.msg, "closed") != NULL, "%s", e.msg);
	cx_agent_close(c);
	fake_join(&f);
	cx_test_rm_rf(dir);
	free(dir);
}

START_TEST(test_client_broken_agents)
{
	/* a KEYS frame announcing 100 bytes, closed after 9 */
	static const uint8_t cut[] = {0, 0, 0, 101, CX_MSG_KEYS, 0, 0, 0, 1, 0, 0, 0, 5, 'a'};
	static const uint8_t huge[] = {0x7f, 0, 0, 0, CX_MSG_KEYS};
	static const uint8_t zero[] = {0, 0, 0, 0, CX_MSG_KEYS};
	static const uint8_t junk[] = {0, 0, 0, 5, CX_MSG_KEYS, 0, 0, 0, 1};
	static const uint8_t wrong[] = {0, 0, 0, 1, CX_MSG_OK};
	static const uint8_t half[] = {0, 0};
	struct step s;

	memset(&s, 0, sizeof(s));
	s.expect = CX_MSG_LIST;
	s.act = ACT_RAW;
	s.raw = cut;
	s.rawlen = sizeof(cut);
	client_fails(&s, CX_EIO, "closed the connection (frame body: 9 of 100");
	s.raw = half;
	s.rawlen = sizeof(half);
	client_fails(&s, CX_EIO, "frame header: 2 of 5");
	s.raw = huge;
	s.rawlen = sizeof(huge);
	client_fails(&s, CX_ETOOBIG, "length");
	s.raw = zero;
	s.rawlen = sizeof(zero);
	client_fails(&s, CX_EPARSE, "length 0");
	s.raw = junk;
	s.rawlen = sizeof(junk);
	client_fails(&s, CX_EPARSE, "malformed answer");
	s.raw = wrong;
	s.rawlen = sizeof(wrong);
	client_fails(&s, CX_EPARSE, "message type 128");
	s.act = ACT_CLOSE;
	client_fails(&s, CX_EIO, "closed the connection");
	s.act = ACT_SILENT;
	client_fails(&s, CX_EIO, "300 ms");
}
END_TEST

START_TEST(test_client_connect_failures)
{
	struct step steps[1];
	struct cx_agent_conn *c = (void *)1;
	struct cx_err e = {0};
	struct fake f;
	char *dir = cx_test_tmpdir(), path[512], nosock[600];

	unsetenv(CX_AGENT_SOCK_ENV);
	ck_assert_int_eq(cx_agent_connect(NULL, &c, &e), CX_ENOENT);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(e.msg, CX_AGENT_SOCK_ENV) != NULL, "%s", e.msg);
	snprintf(nosock, sizeof(nosock), "%s/none", dir);
	ck_assert_int_eq(cx_agent_connect(nosock, &c, &e), CX_ENOENT);

	/* an agent of another protocol version */
	steps[0] = version_step(2);
	fake_start(&f, dir, steps, 1, path, sizeof(path));
	ck_assert_int_eq(cx_agent_connect(path, &c, &e), CX_EUNSUPPORTED);
	ck_assert_ptr_null(c);
	fake_join(&f);

	/* an agent that refuses the query */
	steps[0] = version_step(1);
	steps[0].reply.type = CX_MSG_ERROR;
	steps[0].reply.u.error.code = CX_AERR_UNSUPPORTED;
	steps[0].reply.u.error.message = "too old";
	fake_start(&f, dir, steps, 1, path, sizeof(path));
	ck_assert_int_eq(cx_agent_connect(path, &c, &e), CX_EAGENT);
	ck_assert_str_eq(e.msg, "unsupported: too old");
	fake_join(&f);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* An agent gone before a big request: EPIPE, not SIGPIPE; socketpair + connect_fd. */
START_TEST(test_client_no_sigpipe)
{
	struct step steps[2];
	struct cx_agent_conn *c;
	struct cx_err e = {0};
	struct cx_buf sig;
	struct fake f;
	uint8_t keyid[32] = {0}, *data = calloc(1, CX_PROTO_SIGN_MAX);
	int sv[2];

	ck_assert(data != NULL);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memset(&f, 0, sizeof(f));
	f.lfd = -1;
	f.fd = sv[1];
	steps[0] = version_step(CX_PROTO_VERSION);
	steps[1] = ok_step(CX_MSG_LIST);
	steps[1].act = ACT_CLOSE;
	f.steps = steps;
	f.nsteps = 1; /* answers the query, then closes */
	ck_assert_int_eq(pthread_create(&f.th, NULL, fake_run, &f), 0);
	ck_assert_msg(cx_agent_connect_fd(sv[0], &c, &e) == 0, "%s", e.msg);
	fake_join(&f);
	cx_buf_init(&sig, 0);
	ck_assert_int_eq(
	    cx_agent_sign(c, keyid, CX_MSIG_ED25519, data, CX_PROTO_MAX - 64, &sig, &e), CX_EIO);
	/* an oversize request is refused before anything is sent, not a broken connection */
	cx_agent_close(c);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f.fd = sv[1];
	f.nsteps = 1;
	ck_assert_int_eq(pthread_create(&f.th, NULL, fake_run, &f), 0);
	ck_assert_msg(cx_agent_connect_fd(sv[0], &c, &e) == 0, "%s", e.msg);
	fake_join(&f);
	ck_assert_int_eq(
	    cx_agent_sign(c, keyid, CX_MSIG_ED25519, data, CX_PROTO_SIGN_MAX, &sig, &e),
	    CX_ETOOBIG);
	ck_assert_msg(strstr(e.msg, "frame limit") != NULL, "%s", e.msg);
	cx_agent_close(c);
	cx_buf_free(&sig);
	free(data);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("msg");
	TCase *tc = tcase_create("codec"), *tcl = tcase_create("client");
	SRunner *sr;
	int nf;

	tcase_add_test(tc, test_round_trip_requests);
	tcase_add_test(tc, test_buf_prefault);
	tcase_add_test(tc, test_round_trip_responses);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_frame_header);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_refused_key_fields);
	tcase_add_test(tc, test_encoder_refuses);
	tcase_add_test(tc, test_secrets);
	tcase_add_test(tc, test_err_names);
	tcase_set_timeout(tc, 300);
	tcase_set_timeout(tcl, 60);
	tcase_add_test(tcl, test_client_ok_and_error);
	tcase_add_test(tcl, test_client_login_secret);
	tcase_add_test(tcl, test_client_sign_list_generate);
	tcase_add_test(tcl, test_client_broken_agents);
	tcase_add_test(tcl, test_client_connect_failures);
	tcase_add_test(tcl, test_client_no_sigpipe);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tcl);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
