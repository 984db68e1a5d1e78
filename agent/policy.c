/*
 * What the agent agrees to sign, and the record of what it did.
 *
 * Every SIGN passes these checks on the event loop, before any token or
 * person is involved: the agent is not locked; the key is known, not past
 * its lifetime, not at its signature budget; the signature algorithm fits
 * the key; the bytes are exactly the to-be-signed form of a conex resource
 * (conex/tbs.h rebuilds them and compares byte for byte), of a type the key
 * may sign, naming the key's own conex id as the signer.  A key with
 * "confirm" then asks the user on its worker with a one-line summary of what
 * is signed.  Refusals here never reach a token.
 *
 * Also here: the policy file (-c), the whole-agent lock (hashing on the pw
 * worker: Argon2 takes a tenth of a second and 64 MiB, which the loop must
 * not wait for), and the audit log, which every worker and the loop append
 * to.  Workers wait for their lines to be durable; the loop never waits for
 * the disk, not even for write(2), which can block behind a sync in progress
 * (cx_audit_nowait hands the line to the audit syncer): its records
 * (refusals, policy changes) carry no signature, so a slow disk must not
 * stall every client for them.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <sodium.h>

#include "agent/agent.h"
#include "conex/crypto.h"
#include "conex/resource.h"
#include "conex/tbs.h"

struct policy_rule {
	int is_default;
	uint8_t keyid[32];
	struct cx_policy p;
};

void
cx_keyid_str(const uint8_t keyid[32], char out[72])
{
	memcpy(out, "sha256=", 7);
	cx_hex_encode(keyid, 32, out + 7);
}

/* ---- audit ---- */

int
cx_audit_rec(struct agent *a, enum cx_audit_how how, uint64_t *seq, const struct peer *p,
    const char *op, const char *keyid, const char *token, const char *type, const char *name,
    const uint8_t *sha, const char *result)
{
	struct cx_audit_entry en;
	struct cx_err e = {0};
	uint64_t s = 0;
	int r;

	if (seq != NULL)
		*seq = 0;
	memset(&en, 0, sizeof(en));
	en.op = op;
	en.uid = p != NULL ? p->uid : a->uid;
	en.pid = p != NULL ? p->pid : 0;
	en.exe = p != NULL && p->exe != NULL ? p->exe : "";
	en.keyid = keyid != NULL ? keyid : "";
	en.token = token != NULL ? token : "";
	en.type = type != NULL ? type : "";
	en.name = name != NULL ? name : "";
	en.data_sha256 = sha;
	en.result = result;
	pthread_rwlock_rdlock(&a->audit_lock);
	if (a->audit == NULL)
		/* shutdown closed it under a worker it gave up on: no record, no signature */
		r = cx_err_set(&e, CX_EIO, "the audit log is closed");
	else if (how == CX_AUDIT_DEFER)
		r = cx_audit_defer(a->audit, &en, &e);
	else if ((r = cx_audit_write(a->audit, &en, &s, &e)) == 0) {
		if (seq != NULL)
			*seq = s;
		if (how == CX_AUDIT_DURABLE)
			r = cx_audit_sync(a->audit, s, &e);
		else if (how == CX_AUDIT_KICK)
			cx_audit_kick(a->audit, s);
	}
	pthread_rwlock_unlock(&a->audit_lock);
	if (r != 0)
		cx_agent_log(a, LOG_ERR, "audit log: %s", e.msg);
	return r;
}

int
cx_audit(struct agent *a, const struct peer *p, const char *op, const char *keyid,
    const char *token, const char *type, const char *name, const uint8_t *sha, const char *result)
{
	return cx_audit_rec(
	    a, CX_AUDIT_DURABLE, NULL, p, op, keyid, token, type, name, sha, result);
}

int
cx_audit_nowait(struct agent *a, const struct peer *p, const char *op, const char *keyid,
    const char *token, const char *type, const char *name, const uint8_t *sha, const char *result)
{
	return cx_audit_rec(a, CX_AUDIT_DEFER, NULL, p, op, keyid, token, type, name, sha, result);
}

int
cx_audit_wait(struct agent *a, uint64_t seq)
{
	struct cx_err e = {0};
	int r;

	if (seq == 0)
		return 0;
	pthread_rwlock_rdlock(&a->audit_lock);
	r = a->audit != NULL ? cx_audit_sync(a->audit, seq, &e)
	                     : cx_err_set(&e, CX_EIO, "the audit log is closed");
	pthread_rwlock_unlock(&a->audit_lock);
	if (r != 0)
		cx_agent_log(a, LOG_ERR, "audit log: %s", e.msg);
	return r;
}

/* ---- the policy file ---- */

int
cx_policy_parse_types(const char *s, uint32_t *types, struct cx_err *e)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} t[] = {{"root", CX_POLICY_ROOT}, {"targets", CX_POLICY_TARGETS},
	    {"snapshot", CX_POLICY_SNAPSHOT}, {"timestamp", CX_POLICY_TIMESTAMP},
	    {"all", CX_POLICY_ALL}};
	const char *p = s, *q;
	size_t i, n;

	*types = 0;
	while (*p != '\0') {
		q = strchr(p, ',');
		n = q != NULL ? (size_t)(q - p) : strlen(p);
		for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
			if (strlen(t[i].name) == n && strncmp(t[i].name, p, n) == 0)
				break;
		if (i == sizeof(t) / sizeof(t[0]))
			return cx_err_set(
			    e, CX_EPARSE, "unknown resource type \"%.*s\"", (int)n, p);
		*types |= t[i].bit;
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int
parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

static int
parse_line(char *line, struct policy_rule *r, struct cx_err *e)
{
	char *tok, *save = NULL;
	int first = 1;

	memset(r, 0, sizeof(*r));
	r->p.types = CX_POLICY_ALL;
	for (tok = strtok_r(line, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		if (first) {
			first = 0;
			if (strcmp(tok, "default") == 0)
				r->is_default = 1;
			else if (strncmp(tok, "sha256=", 7) != 0 || strlen(tok + 7) != 64 ||
			    cx_hex_decode(tok + 7, 64, r->keyid, 32) != 0)
				return cx_err_set(e, CX_EPARSE,
				    "want \"sha256=<64 lowercase hex digits>\" or \"default\", not \"%s\"",
				    tok);
			continue;
		}
		if (strncmp(tok, "types=", 6) == 0) {
			if (cx_policy_parse_types(tok + 6, &r->p.types, e) != 0)
				return CX_EPARSE;
		} else if (strcmp(tok, "confirm") == 0) {
			r->p.confirm = 1;
		} else if (strncmp(tok, "lifetime=", 9) == 0) {
			if (parse_u64(tok + 9, &r->p.lifetime) != 0)
				return cx_err_set(e, CX_EPARSE, "bad lifetime \"%s\"", tok + 9);
		} else if (strncmp(tok, "max-sigs=", 9) == 0) {
			if (parse_u64(tok + 9, &r->p.max_sigs) != 0)
				return cx_err_set(e, CX_EPARSE, "bad max-sigs \"%s\"", tok + 9);
		} else
			return cx_err_set(e, CX_EPARSE, "unknown setting \"%s\"", tok);
	}
	return 0;
}

int
cx_policy_load(struct agent *a, const char *path, struct cx_err *e)
{
	struct policy_rule r, *nr;
	char *line = NULL, *p;
	size_t cap = 0, lineno = 0;
	ssize_t n;
	FILE *f;
	int rc = 0;

	if ((f = fopen(path, "re")) == NULL)
		return cx_err_set(e, CX_EIO, "%s: %s", path, strerror(errno));
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if ((p = strchr(line, '#')) != NULL)
			*p = '\0';
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		if (*p == '\0')
			continue;
		if (parse_line(p, &r, e) != 0) {
			rc = cx_err_prefix(e, "%s:%zu", path, lineno);
			break;
		}
		if (r.is_default) {
			a->defpolicy = r.p;
			continue;
		}
		if ((nr = reallocarray(a->rules, a->nrules + 1, sizeof(*nr))) == NULL) {
			rc = cx_err_set(e, CX_ENOMEM, "out of memory");
			break;
		}
		a->rules = nr;
		a->rules[a->nrules++] = r;
	}
	free(line);
	fclose(f);
	return rc;
}

void
cx_policy_free(struct agent *a)
{
	free(a->rules);
	a->rules = NULL;
	a->nrules = 0;
}

void
cx_policy_default(struct agent *a, const uint8_t keyid[32], struct cx_policy *out)
{
	/* the last matching line wins, as in most configuration files */
	*out = a->defpolicy;
	for (size_t i = 0; i < a->nrules; i++)
		if (memcmp(a->rules[i].keyid, keyid, 32) == 0)
			*out = a->rules[i].p;
}

/* ---- SIGN ---- */

static uint8_t
keyalg_sigalg(uint8_t keyalg)
{
	switch (keyalg) {
	case CX_MKEY_RSA:
		return CX_MSIG_RSAPSS_SHA256;
	case CX_MKEY_ED25519:
		return CX_MSIG_ED25519;
	case CX_MKEY_ECDSA_P256:
		return CX_MSIG_ECDSA_P256_SHA256;
	}
	return 0;
}

static const char *
msig_name(uint8_t s)
{
	switch (s) {
	case CX_MSIG_RSAPSS_SHA256:
		return "rsapss-sha256";
	case CX_MSIG_ED25519:
		return "ed25519";
	case CX_MSIG_ECDSA_P256_SHA256:
		return "ecdsa-p256-sha256";
	}
	return "?";
}

/* conex's own signature types; ECDSA has none (conex-format.md knows RSA-PSS and Ed25519). */
static uint8_t
tbs_msig(enum cx_sigalg s)
{
	switch (s) {
	case CX_SIG_RSAPSS_SHA256:
		return CX_MSIG_RSAPSS_SHA256;
	case CX_SIG_ED25519:
		return CX_MSIG_ED25519;
	default:
		return 0;
	}
}

/* Prompts go to a dialog: no control bytes from a token's label or the data. */
static void
sanitise(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static void refuse(struct agent *a, struct conn *c, const char *keyid, const struct akey *k,
    const char *type, const char *name, const uint8_t *sha, uint32_t code, uint32_t detail,
    const char *fmt, ...) __attribute__((format(printf, 10, 11)));
static void
refuse(struct agent *a, struct conn *c, const char *keyid, const struct akey *k, const char *type,
    const char *name, const uint8_t *sha, uint32_t code, uint32_t detail, const char *fmt, ...)
{
	char msg[CX_ERR_MSG];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* on the loop: written now, made durable by the syncer (no signature waits on it) */
	cx_audit_nowait(a, &c->peer, "sign", keyid,
	    k != NULL && k->tok != NULL ? k->tok->serial : "", type, name, sha,
	    cx_agent_err_name(code));
	cx_conn_error(a, c, code, detail, "%s", msg);
}

void
cx_policy_sign(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	struct cx_tbs_info info;
	struct cx_err e = {0};
	char keyid[72], summary[256];
	const char *tname;
	uint8_t sha[32];
	struct akey *k;
	struct job *j;

	cx_keyid_str(m->u.sign.keyid, keyid);
	cx_sha256(m->u.sign.data, m->u.sign.datalen, sha);
	if (cx_policy_locked(a)) {
		refuse(
		    a, c, keyid, NULL, "", "", sha, CX_AERR_AGENT_LOCKED, 0, "the agent is locked");
		return;
	}
	if ((k = cx_reg_find(a, m->u.sign.keyid)) == NULL) {
		refuse(a, c, keyid, NULL, "", "", sha, CX_AERR_NO_SUCH_KEY, 0,
		    "no key %s in the agent", keyid);
		return;
	}
	if (k->expired) {
		refuse(a, c, keyid, k, "", "", sha, CX_AERR_REFUSED, 0,
		    "key %s is past its lifetime of %" PRIu64 " seconds", k->id,
		    k->policy.lifetime);
		return;
	}
	if (k->policy.max_sigs != 0 && k->sigs + k->pending >= k->policy.max_sigs) {
		refuse(a, c, keyid, k, "", "", sha, CX_AERR_REFUSED, 0,
		    "key %s has made its %" PRIu64 " signatures", k->id, k->policy.max_sigs);
		return;
	}
	if (keyalg_sigalg(k->keyalg) != m->u.sign.sigalg) {
		refuse(a, c, keyid, k, "", "", sha, CX_AERR_REFUSED, 0,
		    "key %s cannot make %s signatures", k->id, msig_name(m->u.sign.sigalg));
		return;
	}
	if (cx_tbs_inspect(m->u.sign.data, m->u.sign.datalen, &info, &e) != 0) {
		refuse(
		    a, c, keyid, k, "", "", sha, CX_AERR_REFUSED, 0, "not conex data: %s", e.msg);
		return;
	}
	tname = cx_rtype_name(info.type);
	if (tbs_msig(info.sigalg) != m->u.sign.sigalg) {
		refuse(a, c, keyid, k, tname, info.name, sha, CX_AERR_REFUSED, 0,
		    "the data is to be signed %s, not %s", cx_sigalg_name(info.sigalg),
		    msig_name(m->u.sign.sigalg));
		return;
	}
	if ((k->policy.types & (1u << (info.type - 1))) == 0) {
		refuse(a, c, keyid, k, tname, info.name, sha, CX_AERR_REFUSED, 0,
		    "key %s may not sign %s", k->id, tname);
		return;
	}
	if (!cx_id_equal(info.identifier, k->id)) {
		refuse(a, c, keyid, k, tname, info.name, sha, CX_AERR_REFUSED, 0,
		    "the data is to be signed by \"%s\", this key is \"%s\"", info.identifier,
		    k->id);
		return;
	}
	if (k->tok != NULL && !k->present) {
		refuse(a, c, keyid, k, tname, info.name, sha, CX_AERR_TOKEN_ABSENT, 0,
		    "the token of key %s (serial %s) is not present", k->id, k->tok->serial);
		return;
	}
	if (k->tok == NULL && k->soft == NULL) {
		refuse(a, c, keyid, k, tname, info.name, sha, CX_AERR_NO_SUCH_KEY, 0,
		    "key %s is gone", k->id);
		return;
	}

	if ((j = cx_job_new(JOB_SIGN)) == NULL ||
	    (m->u.sign.datalen > 0 && (j->data = malloc(m->u.sign.datalen)) == NULL) ||
	    (k->tok != NULL && cx_reg_p11_copy(&j->p11, &k->p11) != 0)) {
		cx_job_free(a, j);
		refuse(
		    a, c, keyid, k, tname, info.name, sha, CX_AERR_TOKEN_ERROR, 0, "out of memory");
		return;
	}
	if (m->u.sign.datalen > 0)
		memcpy(j->data, m->u.sign.data, m->u.sign.datalen);
	j->datalen = m->u.sign.datalen;
	memcpy(j->data_sha, sha, 32);
	memcpy(j->keyid, k->keyid, 32);
	memcpy(j->keyidstr, keyid, sizeof(j->keyidstr));
	j->sigalg = m->u.sign.sigalg;
	snprintf(j->conexid, sizeof(j->conexid), "%s", k->id);
	snprintf(j->rtype, sizeof(j->rtype), "%s", tname);
	snprintf(j->rname, sizeof(j->rname), "%s", info.name);
	if ((j->confirm = k->policy.confirm)) {
		cx_tbs_summary(&info, summary, sizeof(summary));
		snprintf(j->prompt, sizeof(j->prompt), "Allow %s to sign %s?", k->id, summary);
		sanitise(j->prompt);
		/* who asks, on a line of its own */
		snprintf(j->prompt + strlen(j->prompt), sizeof(j->prompt) - strlen(j->prompt),
		    "\nRequested by pid %ld (%s).", (long)c->peer.pid,
		    c->peer.exe[0] ? c->peer.exe : "unknown program");
	}
	k->pending++;
	cx_reg_ref(k);
	j->key = k;
	if (k->tok != NULL && cx_fast_sign(a, c, k, j))
		return;
	cx_conn_wait_job(a, c, k->tok != NULL ? &k->tok->w : &a->soft, j);
}

/* ---- the lock ---- */

int
cx_policy_locked(struct agent *a)
{
	return a->lock.locked || a->locking;
}

static char *
secret_copy(const char *s, size_t n)
{
	char *p;

	if ((p = sodium_malloc(n + 1)) == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void
cx_policy_lock(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	struct job *j;

	if (cx_policy_locked(a)) {
		cx_conn_error(a, c, CX_AERR_AGENT_LOCKED, 0, "the agent is already locked");
		return;
	}
	if (m->u.lock.passwordlen == 0) {
		cx_conn_error(a, c, CX_AERR_BAD_REQUEST, 0, "an empty lock password locks nothing");
		return;
	}
	if ((j = cx_job_new(JOB_LOCK)) == NULL ||
	    (j->secret = secret_copy(m->u.lock.password, m->u.lock.passwordlen)) == NULL) {
		cx_job_free(a, j);
		cx_conn_error(a, c, CX_AERR_TOKEN_ERROR, 0, "out of memory");
		return;
	}
	j->secretlen = m->u.lock.passwordlen;
	/* locked from now on, while the password is hashed */
	a->locking = 1;
	cx_pincache_flush(a->pins);
	cx_conn_wait_job(a, c, &a->pw, j);
}

void
cx_policy_unlock(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	int64_t now = cx_agent_now();
	struct job *j;

	if (a->locking || a->unlocking) {
		cx_conn_error(a, c, CX_AERR_AGENT_LOCKED, 1, "a lock or unlock is in progress");
		return;
	}
	if (!a->lock.locked) {
		cx_conn_error(a, c, CX_AERR_REFUSED, 0, "the agent is not locked");
		return;
	}
	if (now < a->lock.next_try) {
		/* backing off: not even the right password is tried */
		cx_audit_nowait(a, &c->peer, "unlock", "", "", "", "", NULL,
		    cx_agent_err_name(CX_AERR_AGENT_LOCKED));
		cx_conn_error(a, c, CX_AERR_AGENT_LOCKED, (uint32_t)(a->lock.next_try - now),
		    "unlock refused for %ld more seconds after %u failed attempts",
		    (long)(a->lock.next_try - now), a->lock.failures);
		return;
	}
	if ((j = cx_job_new(JOB_UNLOCK)) == NULL ||
	    (j->secret = secret_copy(m->u.lock.password, m->u.lock.passwordlen)) == NULL) {
		cx_job_free(a, j);
		cx_conn_error(a, c, CX_AERR_TOKEN_ERROR, 0, "out of memory");
		return;
	}
	j->secretlen = m->u.lock.passwordlen;
	j->lock = a->lock;
	j->now = now;
	a->unlocking = 1;
	cx_conn_wait_job(a, c, &a->pw, j);
}

void
cx_policy_run(struct agent *a, struct job *j)
{
	int r;

	switch (j->kind) {
	case JOB_LOCK:
		cx_lock_init(&j->lock);
		r = cx_lock_lock(&j->lock, j->secret, j->secretlen, &j->err);
		if (r != 0)
			j->aerr = r == CX_EINVAL || r == CX_ETOOBIG ? CX_AERR_BAD_REQUEST
			                                            : CX_AERR_TOKEN_ERROR;
		cx_audit(a, &j->peer, "lock", "", "", "", "", NULL,
		    r == 0 ? "ok" : cx_agent_err_name((uint32_t)j->aerr));
		break;
	case JOB_UNLOCK: {
		unsigned failures = j->lock.failures;
		r = cx_lock_unlock(&j->lock, j->secret, j->secretlen, j->now, &j->wait, &j->err);
		/*
		 * A wrong password's back-off runs from when the hash said so, not
		 * from the request: Argon2 takes a good part of a second, and a
		 * one-second back-off counted from the request could be over
		 * before the answer is out.
		 */
		if (r != 0 && j->lock.failures > failures)
			j->lock.next_try = cx_agent_now() + j->wait;
		if (r != 0)
			j->aerr = CX_AERR_AGENT_LOCKED;
		cx_audit(a, &j->peer, "unlock", "", "", "", "", NULL,
		    r == 0 ? "ok" : cx_agent_err_name((uint32_t)j->aerr));
		break;
	}
	default:
		break;
	}
	/* the password is not needed any more: do not wait for main to free it */
	if (j->secret != NULL) {
		sodium_free(j->secret);
		j->secret = NULL;
	}
}

void
cx_policy_done(struct agent *a, struct job *j)
{
	struct conn *c = cx_conn_of_job(a, j);

	switch (j->kind) {
	case JOB_LOCK:
		a->locking = 0;
		if (j->aerr == 0) {
			a->lock = j->lock;
			cx_pincache_flush(a->pins); /* again: a login may have finished meanwhile */
			cx_agent_log(a, LOG_INFO, "agent locked");
		}
		break;
	case JOB_UNLOCK:
		a->unlocking = 0;
		/* success clears the hash; failure carries the back-off */
		a->lock = j->lock;
		if (j->aerr == 0)
			cx_agent_log(a, LOG_INFO, "agent unlocked");
		else
			j->detail = j->wait;
		break;
	default:
		break;
	}
	if (c == NULL)
		return;
	if (j->aerr == 0)
		cx_conn_ok(a, c);
	else
		cx_conn_error(a, c, (uint32_t)j->aerr, j->detail, "%s", j->err.msg);
}
