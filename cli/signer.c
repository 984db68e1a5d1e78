/*
 * The agent signer of the signing tools: every conex signature is made by
 * conex-agent and checked with the public key written in the resource
 * before it can be written, so a confused agent, a wrong key or a broken
 * token never puts a bad signature into a repository.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/tools.h"

/* The largest data of a SIGN request: the frame limit less its header (docs/protocol.md). */
#define CX_SIGN_DATA_MAX (CX_PROTO_SIGN_MAX - 1 - 37)

int
cx_keyid_parse(const char *s, uint8_t out[CX_SHA256_LEN])
{
	if (strncmp(s, "sha256=", 7) == 0)
		s += 7;
	return cx_hex_decode(s, strlen(s), out, CX_SHA256_LEN) == 0 ? 0 : -1;
}

int
cx_signer_open(struct cx_signer *s, const char *sock, struct cx_err *e)
{
	const char *p = sock != NULL ? sock : getenv(CX_AGENT_SOCK_ENV);
	int rc;

	memset(s, 0, sizeof(*s));
	if (p == NULL || *p == 0)
		return cx_err_set(e, CX_ENOENT,
		    "no agent socket: start conex-agent and set %s, or give --agent-sock PATH",
		    CX_AGENT_SOCK_ENV);
	if ((rc = cx_agent_connect(p, &s->c, e)) != 0)
		return cx_err_prefix(e, "conex-agent at %s", p);
	if ((rc = cx_agent_list(s->c, &s->keys, &s->n, e)) != 0) {
		cx_agent_close(s->c);
		s->c = NULL;
		return cx_err_prefix(e, "conex-agent at %s: list", p);
	}
	return 0;
}

void
cx_signer_close(struct cx_signer *s)
{
	cx_agent_keys_free(s->keys);
	cx_agent_close(s->c);
	memset(s, 0, sizeof(*s));
}

int
cx_signer_conex_alg(const struct cx_msg_key *k)
{
	return k->keyalg == CX_MKEY_RSA || k->keyalg == CX_MKEY_ED25519;
}

/* The agent says what its key is; the key id and the algorithm must agree with the key string. */
int
cx_signer_check_key(const struct cx_msg_key *k, struct cx_err *e)
{
	uint8_t h[CX_SHA256_LEN];
	enum cx_keyalg alg;
	EVP_PKEY *pk;

	cx_keyid(k->keystr, strlen(k->keystr), h);
	if (memcmp(h, k->keyid, CX_SHA256_LEN) != 0)
		return cx_err_set(e, CX_ECRYPTO,
		    "conex-agent: key %s: its key id is not the sha256 of its key string", k->id);
	if (cx_pubkey_parse(k->keystr, strlen(k->keystr), &pk, &alg, e) != 0)
		return cx_err_prefix(e, "conex-agent: key %s", k->id);
	EVP_PKEY_free(pk);
	if ((alg == CX_KEY_ED25519) != (k->keyalg == CX_MKEY_ED25519))
		return cx_err_set(e, CX_ECRYPTO,
		    "conex-agent: key %s: its key string is not of its algorithm", k->id);
	return 0;
}

int
cx_signer_find(struct cx_signer *s, const char *id, const char *keyid,
    const struct cx_msg_key **out, struct cx_err *e)
{
	uint8_t want[CX_SHA256_LEN];
	const struct cx_msg_key *found = NULL;
	size_t i, n = 0, other = 0;

	*out = NULL;
	if (keyid != NULL && cx_keyid_parse(keyid, want) != 0)
		return cx_err_set(e, CX_EINVAL, "'%s': not a key id (sha256=HEX)", keyid);
	for (i = 0; i < s->n; i++) {
		const struct cx_msg_key *k = &s->keys[i];
		if (keyid != NULL ? memcmp(k->keyid, want, CX_SHA256_LEN) != 0
		                  : strcmp(k->id, id) != 0)
			continue;
		if (!cx_signer_conex_alg(k)) {
			other++;
			continue;
		}
		found = k;
		n++;
	}
	if (n == 0)
		return cx_err_set(e, CX_ENOENT,
		    "conex-agent holds no Ed25519 or RSA key %s %s%s (make one with `conex key "
		    "generate ID --token SERIAL` or load one with `conex key import ID FILE`)",
		    keyid != NULL ? "with key id" : "with id", keyid != NULL ? keyid : id,
		    other ? " (only keys that cannot make conex signatures)" : "");
	if (n > 1)
		return cx_err_set(e, CX_EINVAL,
		    "conex-agent holds %zu keys with id %s: name one with its key id (sha256=HEX)",
		    n, id);
	if (cx_signer_check_key(found, e) != 0)
		return e->code;
	*out = found;
	return 0;
}

const struct cx_msg_key *
cx_signer_holds(const struct cx_signer *s, const struct cx_key *k)
{
	for (size_t i = 0; i < s->n; i++)
		if (memcmp(s->keys[i].keyid, k->keyid, CX_SHA256_LEN) == 0 &&
		    cx_signer_conex_alg(&s->keys[i]) && strlen(s->keys[i].keystr) == k->keystrlen &&
		    memcmp(s->keys[i].keystr, k->keystr, k->keystrlen) == 0)
			return &s->keys[i];
	return NULL;
}

struct agent_sig {
	struct cx_signer *s;
	const struct cx_key *k;
	EVP_PKEY *pub;
	enum cx_sigalg alg;
};

/* cx_sign_fn: the agent signs; the signature must verify with the resource's key. */
static int
agent_sign(void *arg, const uint8_t *tbs, size_t n, struct cx_buf *sig, struct cx_err *e)
{
	struct agent_sig *as = arg;
	size_t off = sig->len;
	char hex[CX_SHA256_HEX + 1];
	int rc;

	cx_hex_encode(as->k->keyid, CX_SHA256_LEN, hex);
	/* one SIGN request carries the whole to-be-signed bytes (Ed25519 is not prehashed) */
	if (n > CX_SIGN_DATA_MAX)
		return cx_err_set(e, CX_ETOOBIG,
		    "the bytes to sign as %s are %zu bytes, more than the %u an agent SIGN request "
		    "carries (docs/protocol.md): split the targets over delegations to several "
		    "identities",
		    as->k->id, n, (unsigned)CX_SIGN_DATA_MAX);
	if ((rc = cx_agent_sign(as->s->c, as->k->keyid,
	         as->alg == CX_SIG_ED25519 ? CX_MSIG_ED25519 : CX_MSIG_RSAPSS_SHA256, tbs, n, sig,
	         e)) != 0)
		return cx_err_prefix(e, "conex-agent: signing as %s (sha256=%s)", as->k->id, hex);
	if ((rc = cx_sig_verify(as->pub, as->alg, tbs, n, sig->d + off, sig->len - off, e)) != 0)
		return cx_err_prefix(e,
		    "the agent's signature as %s does not verify with the key sha256=%s in the file",
		    as->k->id, hex);
	return 0;
}

int
cx_signer_sign(struct cx_signer *s, struct cx_arena *a, struct cx_resource *r,
    const struct cx_key *k, const char *created, struct cx_err *e)
{
	struct agent_sig as = {s, k, NULL, cx_sigalg_for_key(k->alg)};
	enum cx_keyalg alg;
	int rc;

	if (as.alg == CX_SIG_NONE)
		return cx_err_set(e, CX_EUNSUPPORTED, "key %s cannot sign", k->id);
	if ((rc = cx_pubkey_parse(k->keystr, k->keystrlen, &as.pub, &alg, e)) != 0)
		return cx_err_prefix(e, "key %s", k->id);
	rc = cx_resource_sign(a, r, k->id, created, as.alg, agent_sign, &as, e);
	EVP_PKEY_free(as.pub);
	return rc;
}

int
cx_signer_label_check(const struct cx_msg_key *k, const char *id, struct cx_err *e)
{
	char hex[CX_SHA256_HEX + 1];

	if (strcmp(k->id, id) == 0)
		return 0;
	/* the agent signs only for the identity its key is labelled with */
	cx_hex_encode(k->keyid, CX_SHA256_LEN, hex);
	return cx_err_set(e, CX_EINVAL,
	    "the agent's key sha256=%s is labelled %s, not %s: the agent signs as a key's own id "
	    "only (generate or import the key as %s)",
	    hex, k->id, id, id);
}
