/*
 * The key registry: every key the agent can sign with, from tokens (as their
 * workers list them) and software keys (ADD_KEY), each with its policy,
 * signature count and lifetime.  LIST answers from here and never touches a
 * token, so it is quick even while every token is busy.
 *
 * Token keys are remembered by key id across absences and re-listings: a
 * key whose token goes away stays listed, not present, and keeps its policy
 * and count for when the token returns.  Tokens such as SoftHSM hide private
 * keys until the user logs in, so only a listing made while logged in can
 * say a key is gone.
 *
 * An entry is reference counted (main thread only): a sign job holds a
 * reference, so REMOVE_KEY or an expiry never frees a software key under
 * the worker that signs with it; the material goes when the last job ends.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <sodium.h>

#include "agent/agent.h"
#include "conex/crypto.h"

/* ---- token key copies ---- */

void
cx_reg_p11_clear(struct cx_p11_key *k)
{
	free(k->label);
	free(k->ckaid);
	free(k->keystr);
	free(k->uri);
	memset(k, 0, sizeof(*k));
}

static char *
dupstr(const char *s)
{
	return strdup(s != NULL ? s : "");
}

int
cx_reg_p11_copy(struct cx_p11_key *dst, const struct cx_p11_key *src)
{
	memset(dst, 0, sizeof(*dst));
	*dst = *src;
	dst->label = dupstr(src->label);
	dst->keystr = dupstr(src->keystr);
	dst->uri = dupstr(src->uri);
	dst->ckaid = malloc(src->ckaidlen ? src->ckaidlen : 1);
	if (dst->label == NULL || dst->keystr == NULL || dst->uri == NULL || dst->ckaid == NULL) {
		cx_reg_p11_clear(dst);
		return CX_ENOMEM;
	}
	if (src->ckaidlen)
		memcpy(dst->ckaid, src->ckaid, src->ckaidlen);
	return 0;
}

static uint8_t
p11_keyalg(enum cx_p11_alg alg)
{
	switch (alg) {
	case CX_P11_RSA:
		return CX_MKEY_RSA;
	case CX_P11_ED25519:
		return CX_MKEY_ED25519;
	case CX_P11_ECDSA_P256:
		return CX_MKEY_ECDSA_P256;
	}
	return 0;
}

/* ---- entries ---- */

struct akey *
cx_reg_find(struct agent *a, const uint8_t keyid[32])
{
	for (struct akey *k = a->keys; k != NULL; k = k->next)
		if (memcmp(k->keyid, keyid, 32) == 0)
			return k;
	return NULL;
}

void
cx_reg_ref(struct akey *k)
{
	k->refs++;
}

static void
key_free(struct akey *k)
{
	free(k->id);
	free(k->keystr);
	cx_reg_p11_clear(&k->p11);
	cx_softkey_free(k->soft); /* wipes */
	free(k);
}

void
cx_reg_unref(struct agent *a, struct akey *k)
{
	(void)a;
	if (--k->refs == 0)
		key_free(k);
}

static void
unlink_key(struct agent *a, struct akey *k)
{
	struct akey **pp;

	for (pp = &a->keys; *pp != NULL; pp = &(*pp)->next)
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	k->next = NULL;
	k->unlinked = 1;
	cx_reg_unref(a, k);
}

static struct akey *
key_new(struct agent *a, const uint8_t keyid[32], const char *id, const char *keystr)
{
	struct akey *k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return NULL;
	if ((k->id = strdup(id)) == NULL || (k->keystr = strdup(keystr)) == NULL) {
		free(k->id);
		free(k);
		return NULL;
	}
	memcpy(k->keyid, keyid, 32);
	k->refs = 1;
	k->since = cx_agent_now();
	cx_policy_default(a, keyid, &k->policy);
	/* newest last: LIST shows keys in the order they came */
	struct akey **pp = &a->keys;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = k;
	return k;
}

void
cx_reg_token_keys(
    struct agent *a, struct tok *t, const struct cx_p11_key *keys, size_t n, int listed)
{
	struct cx_p11_key cp;
	struct akey *k;
	char kid[72];
	size_t i;

	if (listed)
		for (k = a->keys; k != NULL; k = k->next)
			if (k->tok == t)
				k->present = 0;
	for (i = 0; i < n; i++) {
		if ((k = cx_reg_find(a, keys[i].keyid)) != NULL && k->tok != t) {
			cx_keyid_str(keys[i].keyid, kid);
			cx_agent_log(a, LOG_WARNING,
			    "key %s on token %s is already held %s%s: ignored", kid, t->serial,
			    k->tok != NULL ? "by token " : "as a software key",
			    k->tok != NULL ? k->tok->serial : "");
			continue;
		}
		if (cx_reg_p11_copy(&cp, &keys[i]) != 0)
			continue;
		if (k == NULL) {
			if ((k = key_new(a, keys[i].keyid, cp.label, cp.keystr)) == NULL) {
				cx_reg_p11_clear(&cp);
				continue;
			}
			k->tok = t;
			k->keyalg = p11_keyalg(keys[i].alg);
			cx_keyid_str(k->keyid, kid);
			cx_agent_log(a, LOG_INFO, "token %s: key %s (%s)", t->serial, k->id, kid);
		} else if (strcmp(k->id, cp.label) != 0) {
			/* relabelled on the token: the conex id follows CKA_LABEL */
			char *nid = strdup(cp.label);
			if (nid != NULL) {
				free(k->id);
				k->id = nid;
			}
		}
		cx_reg_p11_clear(&k->p11);
		k->p11 = cp;
		k->present = 1;
	}
}

void
cx_reg_token_present(struct agent *a, struct tok *t)
{
	/*
	 * The token is back: its keys are taken to be there until a listing
	 * made while logged in, or a signature, says otherwise (SoftHSM hides
	 * private keys before login, so an empty list proves nothing).
	 */
	for (struct akey *k = a->keys; k != NULL; k = k->next)
		if (k->tok == t)
			k->present = 1;
}

void
cx_reg_token_absent(struct agent *a, struct tok *t)
{
	for (struct akey *k = a->keys; k != NULL; k = k->next)
		if (k->tok == t)
			k->present = 0;
}

void
cx_reg_token_forget(struct agent *a, struct tok *t)
{
	struct akey *k, *next;

	for (k = a->keys; k != NULL; k = next) {
		next = k->next;
		if (k->tok == t) {
			k->tok = NULL; /* a job that still holds it must not follow t */
			k->present = 0;
			unlink_key(a, k);
		}
	}
}

void
cx_reg_tick(struct agent *a, int64_t now)
{
	char kid[72];

	for (struct akey *k = a->keys; k != NULL; k = k->next) {
		if (!k->expired && k->policy.lifetime != 0 &&
		    (uint64_t)(now - k->since) >= k->policy.lifetime) {
			k->expired = 1;
			cx_keyid_str(k->keyid, kid);
			cx_agent_log(a, LOG_INFO, "key %s (%s) reached its lifetime", k->id, kid);
			cx_audit_nowait(a, NULL, "expire", kid,
			    k->tok != NULL ? k->tok->serial : "", "", "", NULL, "ok");
		}
		/* an expired software key's material goes as soon as no job uses it */
		if (k->expired && k->soft != NULL && k->refs == 1) {
			cx_softkey_free(k->soft);
			k->soft = NULL;
		}
	}
}

void
cx_reg_free(struct agent *a)
{
	struct akey *k;

	while ((k = a->keys) != NULL) {
		a->keys = k->next;
		k->next = NULL;
		k->unlinked = 1;
		cx_reg_unref(a, k);
	}
}

/* ---- requests ---- */

void
cx_reg_list(struct agent *a, struct conn *c)
{
	struct cx_msg_key *v = NULL;
	struct cx_msg m;
	struct akey *k;
	size_t n = 0, i = 0;

	for (k = a->keys; k != NULL; k = k->next)
		n++;
	if (n > 0 && (v = calloc(n, sizeof(*v))) == NULL) {
		cx_conn_error(a, c, CX_AERR_TOKEN_ERROR, 0, "out of memory");
		return;
	}
	for (k = a->keys; k != NULL; k = k->next, i++) {
		v[i].id = k->id;
		v[i].keystr = k->keystr;
		memcpy(v[i].keyid, k->keyid, 32);
		v[i].keyalg = k->keyalg;
		if (k->tok != NULL) {
			v[i].state = CX_KEY_HARDWARE;
			if (k->present && !k->expired)
				v[i].state |= CX_KEY_PRESENT;
			if (k->tok->logged_in)
				v[i].state |= CX_KEY_LOGGED_IN;
			if (k->p11.always_auth)
				v[i].state |= CX_KEY_ALWAYS_AUTH;
			v[i].token_serial = k->tok->serial;
			v[i].token_label = k->tok->label;
			v[i].uri = k->p11.uri;
		} else {
			if (k->soft != NULL && !k->expired)
				v[i].state = CX_KEY_PRESENT | CX_KEY_LOGGED_IN;
			v[i].token_serial = "";
			v[i].token_label = "";
			v[i].uri = "";
		}
		v[i].policy = k->policy;
		v[i].sigs_made = k->sigs;
	}
	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_KEYS;
	m.u.keys.v = v;
	m.u.keys.n = n;
	cx_conn_reply(a, c, &m);
	free(v);
}

void
cx_reg_add_key(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	struct cx_softkey *sk = NULL;
	struct cx_err e = {0};
	struct akey *k;
	char kid[72];

	if (m->u.add_key.id[0] == '\0') {
		cx_conn_error(a, c, CX_AERR_BAD_REQUEST, 0, "a key needs a conex id");
		return;
	}
	if (cx_softkey_load(m->u.add_key.id, (const uint8_t *)m->u.add_key.pem, m->u.add_key.pemlen,
	        &sk, &e) != 0) {
		cx_audit_nowait(a, &c->peer, "add-key", "", "", "", m->u.add_key.id, NULL,
		    cx_agent_err_name(CX_AERR_BAD_REQUEST));
		cx_conn_error(a, c, CX_AERR_BAD_REQUEST, 0, "%s", e.msg);
		return;
	}
	cx_keyid_str(cx_softkey_keyid(sk), kid);
	if ((k = cx_reg_find(a, cx_softkey_keyid(sk))) != NULL) {
		if (k->tok != NULL) {
			cx_softkey_free(sk);
			cx_audit_nowait(a, &c->peer, "add-key", kid, k->tok->serial, "",
			    m->u.add_key.id, NULL, cx_agent_err_name(CX_AERR_REFUSED));
			cx_conn_error(
			    a, c, CX_AERR_REFUSED, 0, "key %s is on token %s", kid, k->tok->serial);
			return;
		}
		/* ssh-add style: adding again replaces the key and its policy */
		unlink_key(a, k);
	}
	if ((k = key_new(a, cx_softkey_keyid(sk), cx_softkey_id(sk), cx_softkey_keystr(sk))) ==
	    NULL) {
		cx_softkey_free(sk);
		cx_conn_error(a, c, CX_AERR_TOKEN_ERROR, 0, "out of memory");
		return;
	}
	k->soft = sk;
	k->present = 1;
	k->keyalg = cx_softkey_is_ed25519(sk) ? CX_MKEY_ED25519 : CX_MKEY_RSA;
	k->policy = m->u.add_key.policy;
	cx_agent_log(a, LOG_INFO, "software key %s (%s) added", k->id, kid);
	cx_audit_nowait(a, &c->peer, "add-key", kid, "", "", k->id, NULL, "ok");
	cx_conn_ok(a, c);
}

void
cx_reg_remove_key(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	struct akey *k;
	char kid[72];

	cx_keyid_str(m->u.remove_key.keyid, kid);
	if ((k = cx_reg_find(a, m->u.remove_key.keyid)) == NULL) {
		cx_audit_nowait(a, &c->peer, "remove-key", kid, "", "", "", NULL,
		    cx_agent_err_name(CX_AERR_NO_SUCH_KEY));
		cx_conn_error(a, c, CX_AERR_NO_SUCH_KEY, 0, "no key %s in the agent", kid);
		return;
	}
	if (k->tok != NULL) {
		cx_audit_nowait(a, &c->peer, "remove-key", kid, k->tok->serial, "", k->id, NULL,
		    cx_agent_err_name(CX_AERR_REFUSED));
		cx_conn_error(a, c, CX_AERR_REFUSED, 0,
		    "key %s is on token %s: remove the token instead", kid, k->tok->serial);
		return;
	}
	cx_audit_nowait(a, &c->peer, "remove-key", kid, "", "", k->id, NULL, "ok");
	cx_agent_log(a, LOG_INFO, "software key %s (%s) removed", k->id, kid);
	unlink_key(a, k);
	cx_conn_ok(a, c);
}

void
cx_reg_set_policy(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	struct akey *k;
	char kid[72];

	cx_keyid_str(m->u.set_policy.keyid, kid);
	if ((k = cx_reg_find(a, m->u.set_policy.keyid)) == NULL) {
		cx_audit_nowait(a, &c->peer, "set-policy", kid, "", "", "", NULL,
		    cx_agent_err_name(CX_AERR_NO_SUCH_KEY));
		cx_conn_error(a, c, CX_AERR_NO_SUCH_KEY, 0, "no key %s in the agent", kid);
		return;
	}
	k->policy = m->u.set_policy.policy;
	/* a new lifetime counts from now; a software key past its old one is gone already */
	k->since = cx_agent_now();
	k->expired = 0;
	cx_audit_nowait(a, &c->peer, "set-policy", kid, k->tok != NULL ? k->tok->serial : "", "",
	    k->id, NULL, "ok");
	cx_conn_ok(a, c);
}

/* ---- signing with software keys (soft worker) ---- */

void
cx_reg_soft_run(struct agent *a, struct job *j)
{
	int r;

	if (j->kind != JOB_SIGN)
		return;
	if (j->confirm && cx_tokens_confirm(a, j) != 0)
		goto out;
	if (atomic_load(&j->cancelled)) {
		j->aerr = CX_AERR_DECLINED;
		cx_err_set(&j->err, CX_EREJECT, "the client went away");
		goto out;
	}
	/* the job's reference keeps the key and its material alive */
	if (j->key->soft == NULL) {
		j->aerr = CX_AERR_NO_SUCH_KEY;
		cx_err_set(&j->err, CX_ENOENT, "key %s is gone", j->conexid);
	} else if ((r = cx_softkey_sign(j->key->soft, j->data, j->datalen, &j->sig, &j->err)) != 0)
		j->aerr = CX_AERR_TOKEN_ERROR;
out:
	if (cx_audit(a, &j->peer, "sign", j->keyidstr, "", j->rtype, j->rname, j->data_sha,
	        j->aerr == 0                     ? "ok"
	            : atomic_load(&j->cancelled) ? "cancelled"
	                                         : cx_agent_err_name((uint32_t)j->aerr)) != 0 &&
	    j->aerr == 0) {
		/* no record, no signature */
		cx_buf_free(&j->sig);
		j->aerr = CX_AERR_TOKEN_ERROR;
		cx_err_set(&j->err, CX_EIO, "the audit log cannot be written");
	}
}

void
cx_reg_sign_done(struct agent *a, struct job *j)
{
	struct cx_msg m;
	struct akey *k = j->key;
	struct conn *c;

	if (k != NULL) {
		if (k->pending > 0)
			k->pending--;
		if (j->aerr == 0)
			k->sigs++;
	}
	if ((c = cx_conn_of_job(a, j)) == NULL || cx_conn_take_reply(a, c, j))
		return;
	if (j->aerr != 0) {
		cx_conn_error(a, c, (uint32_t)j->aerr, j->detail, "%s", j->err.msg);
		return;
	}
	memset(&m, 0, sizeof(m));
	m.type = CX_MSG_SIGNATURE;
	m.u.signature.sig = j->sig.d;
	m.u.signature.siglen = j->sig.len;
	cx_conn_reply(a, c, &m);
}
