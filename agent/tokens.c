/*
 * PKCS#11 tokens: the modules, one worker thread per token, and the jobs
 * they run (open, list, login, sign, generate), plus the aux worker that
 * loads modules and rescans slots.
 *
 * A token's worker owns its cx_p11_token (one session) and is the only
 * thread that touches it, so a token waiting for a PIN, a confirmation or a
 * touch holds up nothing but the requests for that token.  Module loads and
 * the periodic slot scans (C_GetSlotList, C_GetTokenInfo, which a module
 * initialised with CKF_OS_LOCKING_OK serves from any thread) run on the aux
 * worker; the event loop compares what a scan saw with what it knows, by
 * serial: a token that left has its session dropped, its PIN flushed, its
 * keys marked not present; a token that came back (in whatever slot) is
 * reopened by its worker, logged in again if its PIN is cached, and listed.
 *
 * PIN rules (pkcs11/ enforces the first two): a PIN is sent once and a wrong
 * one is never retried; a token at its final try gets no PIN unless the
 * client said allow_final_try, which a PIN from askpass or the cache never
 * does; a PIN is asked for (askpass) only when a request needs it and
 * otherwise PIN_REQUIRED goes back to the client.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <sodium.h>

#include "agent/agent.h"
#include "agent/askpass.h"
#include "conex/crypto.h"

/* ---- worker side ---- */

/* The CX_AERR_* for a token layer code. */
static int
aerr_of(int rc)
{
	switch (rc) {
	case CX_P11_ABSENT:
		return CX_AERR_TOKEN_ABSENT;
	case CX_P11_PIN_REQUIRED:
		return CX_AERR_PIN_REQUIRED;
	case CX_P11_PIN_INCORRECT:
		return CX_AERR_PIN_INCORRECT;
	case CX_P11_PIN_LOCKED:
		return CX_AERR_PIN_LOCKED;
	case CX_P11_PIN_FINAL_TRY:
		return CX_AERR_FINAL_TRY;
	case CX_P11_KEY_ABSENT:
		return CX_AERR_NO_SUCH_KEY;
	case CX_EUNSUPPORTED:
		return CX_AERR_UNSUPPORTED;
	case CX_EINVAL:
		return CX_AERR_BAD_REQUEST;
	default:
		return CX_AERR_TOKEN_ERROR;
	}
}

static void
tok_close(struct agent *a, struct tok *t)
{
	if (t->t != NULL) {
		cx_p11_token_close(t->t);
		t->t = NULL;
	}
}

/* Records a token failure in j; a lost token also loses its session and cached PIN. */
static void
fail(struct agent *a, struct tok *t, struct job *j, int rc)
{
	j->aerr = aerr_of(rc);
	if (rc == CX_P11_ABSENT) {
		tok_close(a, t);
		cx_pincache_drop(a->pins, t->serial);
		j->absent = 1;
		j->logged_in = 0;
	}
	if (rc == CX_P11_PIN_INCORRECT) {
		/* a cached PIN that the token refuses must not be tried again */
		cx_pincache_drop(a->pins, t->serial);
		j->detail = 0xFFFFFFFFu;
		if (t->t != NULL && cx_p11_token_refresh(t->t, NULL) == 0) {
			const struct cx_p11_token_info *ti = cx_p11_token_get_info(t->t);
			if (ti->pin_locked)
				j->aerr = CX_AERR_PIN_LOCKED;
			else if (ti->pin_final_try)
				j->detail = 1;
		}
	}
}

static int
need_token(struct agent *a, struct tok *t, struct job *j)
{
	if (t->t != NULL)
		return 0;
	j->aerr = CX_AERR_TOKEN_ABSENT;
	j->absent = 1;
	cx_err_set(
	    &j->err, CX_P11_ABSENT, "token %s (serial %s) is not present", t->label, t->serial);
	return -1;
}

static void
note_state(struct tok *t, struct job *j)
{
	const struct cx_p11_token_info *ti;

	if (t->t == NULL)
		return;
	ti = cx_p11_token_get_info(t->t);
	j->info = *ti;
	j->have_info = 1;
	j->logged_in = !ti->login_required || cx_p11_token_logged_in(t->t);
}

/* A PIN for t: from the cache, else askpass.  0, or j->aerr set. */
static int
get_pin(struct agent *a, struct tok *t, struct job *j, const char *why, char **pin, size_t *len,
    int *fresh)
{
	char prompt[512];
	int r;

	*fresh = 0;
	if (cx_pincache_get(a->pins, t->serial, cx_agent_now(), pin, len) == 0)
		return 0;
	if (a->askpass == NULL) {
		j->aerr = CX_AERR_PIN_REQUIRED;
		cx_err_set(&j->err, CX_P11_PIN_REQUIRED,
		    "token %s (serial %s) needs its PIN%s: log in first (TOKEN_LOGIN)%s", t->label,
		    t->serial, why,
		    a->pins != NULL && cx_pincache_enabled(a->pins)
		        ? ""
		        : ", or start the agent with --askpass");
		return -1;
	}
	snprintf(prompt, sizeof(prompt), "conex-agent: enter the PIN of token \"%s\" (serial %s)%s",
	    t->label, t->serial, why);
	for (char *p = prompt; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if ((r = cx_askpass_secret(a->askpass, prompt, pin, len, &j->err)) != 0) {
		/* the user cancelled, or the program could not run */
		j->aerr = r == CX_EREJECT ? CX_AERR_DECLINED : CX_AERR_PIN_REQUIRED;
		return -1;
	}
	*fresh = 1;
	return 0;
}

/* Logs in if the token needs it and is not: cached PIN, askpass, or PIN_REQUIRED. */
static int
ensure_login(struct agent *a, struct tok *t, struct job *j, const char *why)
{
	const struct cx_p11_token_info *ti = cx_p11_token_get_info(t->t);
	char *pin = NULL;
	size_t len = 0;
	int r, fresh = 0;

	if (!ti->login_required || cx_p11_token_logged_in(t->t))
		return 0;
	/* a PIN pad or biometric reader takes the PIN itself */
	if (!ti->protected_path && get_pin(a, t, j, why, &pin, &len, &fresh) != 0)
		return -1;
	r = cx_p11_token_login(t->t, pin, len, 0, &j->err);
	if (r == 0 && fresh)
		cx_pincache_put(a->pins, t->serial, pin, len, cx_agent_now());
	if (pin != NULL)
		sodium_free(pin);
	cx_audit(a, &j->peer, "login", "", t->serial, "", "", NULL,
	    r == 0 ? "ok" : cx_agent_err_name((uint32_t)aerr_of(r)));
	if (r != 0) {
		fail(a, t, j, r);
		return -1;
	}
	return 0;
}

static void
list_keys(struct tok *t, struct job *j)
{
	struct cx_err e = {0};

	if (t->t == NULL)
		return;
	note_state(t, j);
	if (cx_p11_token_keys(t->t, &j->keys, &j->nkeys, &e) == 0)
		j->listed = j->logged_in;
	else {
		j->keys = NULL;
		j->nkeys = 0;
		if (e.code == CX_P11_ABSENT)
			j->absent = 1;
	}
}

static void
run_open(struct agent *a, struct tok *t, struct job *j)
{
	const struct cx_p11_token_info *ti;
	char *pin = NULL;
	size_t len = 0;
	int r;

	tok_close(a, t);
	if ((r = cx_p11_token_open(t->mod->m, j->slot, &t->t, &j->err)) != 0) {
		t->t = NULL;
		j->aerr = CX_AERR_TOKEN_ABSENT;
		j->absent = 1;
		return;
	}
	ti = cx_p11_token_get_info(t->t);
	if (strcmp(ti->serial, t->serial) != 0) {
		/* the slot holds another token now */
		tok_close(a, t);
		j->aerr = CX_AERR_TOKEN_ABSENT;
		j->absent = 1;
		return;
	}
	/* back after a removal: log in again with the cached PIN, never with a guess */
	if (ti->login_required && !cx_p11_token_logged_in(t->t) &&
	    cx_pincache_get(a->pins, t->serial, cx_agent_now(), &pin, &len) == 0) {
		r = cx_p11_token_login(t->t, pin, len, 0, &j->err);
		sodium_free(pin);
		cx_audit(a, NULL, "login", "", t->serial, "", "", NULL,
		    r == 0 ? "ok" : cx_agent_err_name((uint32_t)aerr_of(r)));
		if (r != 0) {
			cx_agent_log(a, LOG_WARNING, "token %s: login with the cached PIN: %s",
			    t->serial, j->err.msg);
			if (r == CX_P11_PIN_INCORRECT)
				cx_pincache_drop(a->pins, t->serial);
			if (r == CX_P11_ABSENT) {
				fail(a, t, j, r);
				return;
			}
		}
	}
	list_keys(t, j);
}

static void
run_login(struct agent *a, struct tok *t, struct job *j)
{
	const struct cx_p11_token_info *ti;
	int r;

	if (need_token(a, t, j) != 0)
		goto out;
	ti = cx_p11_token_get_info(t->t);
	/* an empty PIN on a PIN-pad token: the pad asks */
	r = cx_p11_token_login(t->t, ti->protected_path && j->secretlen == 0 ? NULL : j->secret,
	    j->secretlen, j->allow_final_try, &j->err);
	if (r != 0) {
		fail(a, t, j, r);
		goto out;
	}
	if (j->secretlen > 0)
		cx_pincache_put(a->pins, t->serial, j->secret, j->secretlen, cx_agent_now());
	list_keys(t, j);
out:
	sodium_free(j->secret);
	j->secret = NULL;
	cx_audit(a, &j->peer, "login", "", t->serial, "", "", NULL,
	    j->aerr == 0 ? "ok" : cx_agent_err_name((uint32_t)j->aerr));
}

int
cx_tokens_confirm(struct agent *a, struct job *j)
{
	int r;

	if (atomic_load(&j->cancelled))
		return -1;
	if (a->askpass == NULL) {
		j->aerr = CX_AERR_REFUSED;
		cx_err_set(&j->err, CX_EREJECT,
		    "key %s must be confirmed for each use, and the agent has no askpass program",
		    j->conexid);
		return -1;
	}
	r = cx_askpass_confirm(a->askpass, j->prompt, &j->err);
	if (r == 1)
		return 0;
	if (r == 0) {
		j->aerr = CX_AERR_DECLINED;
		cx_err_set(&j->err, CX_EREJECT, "the user declined to sign %s %s with %s", j->rtype,
		    j->rname, j->conexid);
	} else
		j->aerr = CX_AERR_REFUSED; /* could not ask: no is the answer */
	return -1;
}

enum cx_p11_mech
cx_tokens_mech(enum cx_p11_alg alg)
{
	switch (alg) {
	case CX_P11_RSA:
		return CX_P11_RSA_PSS_SHA256;
	case CX_P11_ED25519:
		return CX_P11_EDDSA;
	default:
		return CX_P11_ECDSA_SHA256;
	}
}

/*
 * The audit record of a token signature is two lines: "sign-intent" (result
 * "pending"), written just before the data goes to the token, and "sign" with
 * the result after.  The signature leaves the agent only once the intent line
 * is durable; its sync runs while the token signs (on this thread when a
 * helper process signs, else on the audit syncer), so on a disk whose sync
 * is shorter than the token's signature it costs little.
 * The result line is written just after the answer and made durable by the
 * next sync (at most AUDIT_LAZY_MS later): after a crash, an intent without
 * its result means "may have been signed and handed out", which is what a
 * reader must assume anyway.  An error answer carries no signature, so its
 * line is not waited for either.
 */
struct overlap {
	struct agent *a;
	struct job *j;
	const char *serial;
	uint64_t seq; /* the intent line, 0 until written */
	int failed;   /* it could not be written or made durable */
};

/*
 * While the helper signs: the intent line written and made durable, off
 * the signature's path (the cx_audit_wait after the signature then returns
 * at once).  The token has the bytes already; if the line cannot be
 * written the signature is discarded, never released unrecorded.
 */
static void
record_intent(void *arg)
{
	struct overlap *ov = arg;
	struct job *j = ov->j;

	if (cx_audit_rec(ov->a, CX_AUDIT_LAZY, &ov->seq, &j->peer, "sign-intent", j->keyidstr,
	        ov->serial, j->rtype, j->rname, j->data_sha, "pending") != 0 ||
	    cx_audit_wait(ov->a, ov->seq) != 0)
		ov->failed = 1;
}

static void
run_sign(struct agent *a, struct tok *t, struct job *j)
{
	char why[400], *pin = NULL;
	size_t len = 0;
	uint64_t intent = 0;
	struct overlap ov;
	int r, fresh = 0, overlap;

	if (j->fast_rc != 0) {
		/* the loop sent it and the helper failed it: what that means is this thread's */
		r = j->fast_rc;
		goto answered;
	}
	if (atomic_load(&j->cancelled))
		goto cancelled;
	if (need_token(a, t, j) != 0)
		goto out;
	/* ask first: a declined request must not cost a PIN entry */
	if (j->confirm && cx_tokens_confirm(a, j) != 0)
		goto out;
	if (atomic_load(&j->cancelled))
		goto cancelled;
	snprintf(why, sizeof(why), " to sign %s %s with %s", j->rtype, j->rname, j->conexid);
	if (ensure_login(a, t, j, why) != 0)
		goto out;
	if (j->p11.always_auth) {
		/* CKA_ALWAYS_AUTHENTICATE: the PIN again, for this one signature */
		if (get_pin(a, t, j, why, &pin, &len, &fresh) != 0)
			goto out;
	}
	if (atomic_load(&j->cancelled))
		goto cancelled;
	/*
	 * A token in a helper process signs while this thread is free: the
	 * thread writes and syncs the intent line then (record_intent), with
	 * no syncer to wake.  In-process this thread is busy in the module:
	 * the line is written first and the syncer syncs it.
	 */
	memset(&ov, 0, sizeof(ov));
	ov.a = a;
	ov.j = j;
	ov.serial = t->serial;
	overlap = cx_p11_token_set_overlap(t->t, record_intent, &ov) == 0;
	if (!overlap &&
	    cx_audit_rec(a, CX_AUDIT_KICK, &intent, &j->peer, "sign-intent", j->keyidstr, t->serial,
	        j->rtype, j->rname, j->data_sha, "pending") != 0) {
		/* no record, no signature: the token is not even asked */
		j->aerr = CX_AERR_TOKEN_ERROR;
		cx_err_set(&j->err, CX_EIO, "the audit log cannot be written");
		goto out;
	}
	r = cx_p11_token_sign(t->t, &j->p11, cx_tokens_mech(j->p11.alg), j->data, j->datalen, pin,
	    len, &j->sig, &j->err);
	if (overlap) {
		if (t->t != NULL)
			cx_p11_token_set_overlap(t->t, NULL, NULL);
		intent = ov.seq;
		if (r == 0 && (ov.failed || intent == 0)) {
			/* signed, but not on record: discarded */
			cx_buf_free(&j->sig);
			j->aerr = CX_AERR_TOKEN_ERROR;
			cx_err_set(&j->err, CX_EIO, "the audit log cannot be written");
			goto out;
		}
	}
	if (r == 0 && fresh)
		cx_pincache_put(a->pins, t->serial, pin, len, cx_agent_now());
answered:
	if (r != 0)
		fail(a, t, j, r);
	goto out;
cancelled:
	j->aerr = CX_AERR_DECLINED;
	cx_err_set(&j->err, CX_EREJECT, "the client went away");
out:
	if (pin != NULL)
		sodium_free(pin);
	if (j->aerr != 0 || t->t == NULL)
		note_state(t, j);
	else {
		/* it just signed, so the session is logged in: no need to ask the token */
		j->info = *cx_p11_token_get_info(t->t);
		j->have_info = 1;
		j->logged_in = 1;
	}
	if (j->aerr == 0 && cx_audit_wait(a, intent) != 0) {
		/* no record, no signature */
		cx_buf_free(&j->sig);
		j->aerr = CX_AERR_TOKEN_ERROR;
		cx_err_set(&j->err, CX_EIO, "the audit log cannot be written");
	}
	/*
	 * The answer first: what it carries is on record (the intent, durable),
	 * and the result line's write could wait behind a sync in progress.
	 */
	cx_conn_worker_reply(j);
	/* nobody waits for the result line: the next sync takes it along */
	cx_audit_rec(a, j->aerr == 0 ? CX_AUDIT_LAZY : CX_AUDIT_KICK, NULL, &j->peer, "sign",
	    j->keyidstr, t->serial, j->rtype, j->rname, j->data_sha,
	    j->aerr == 0                     ? "ok"
	        : atomic_load(&j->cancelled) ? "cancelled"
	                                     : cx_agent_err_name((uint32_t)j->aerr));
}

static void
run_generate(struct agent *a, struct tok *t, struct job *j)
{
	char why[400], kid[72] = "";
	int r;

	if (need_token(a, t, j) != 0)
		goto out;
	snprintf(why, sizeof(why), " to generate key %s", j->label);
	if (ensure_login(a, t, j, why) != 0)
		goto out;
	if ((j->keys = calloc(1, sizeof(*j->keys))) == NULL) {
		j->aerr = CX_AERR_TOKEN_ERROR;
		cx_err_set(&j->err, CX_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = cx_p11_token_generate(
	         t->t, j->label, (enum cx_p11_alg)j->alg, j->bits, j->keys, &j->err)) != 0) {
		free(j->keys);
		j->keys = NULL;
		fail(a, t, j, r);
		goto out;
	}
	j->nkeys = 1;
	cx_keyid_str(j->keys[0].keyid, kid);
out:
	note_state(t, j);
	cx_audit(a, &j->peer, "generate", kid, t->serial, "", j->label, NULL,
	    j->aerr == 0 ? "ok" : cx_agent_err_name((uint32_t)j->aerr));
}

/*
 * Every token in m's slots (uninitialised ones, without a serial, left out).
 * A slot listed as holding a token whose info cannot be read for another
 * reason than its absence (SoftHSM: CKR_GENERAL_ERROR while another process
 * rewrites the token's file) is no evidence that the token left: with strict,
 * the whole scan then fails, so that the rescan drops nothing.
 */
static int
scan_module(struct amodule *am, struct cx_p11_module *m, int strict, struct scan_ent **ents,
    size_t *n, struct cx_err *e)
{
	unsigned long *slots = NULL;
	struct scan_ent *ne;
	size_t ns = 0, i;
	int r;

	if ((r = cx_p11_slots(m, &slots, &ns, e)) != 0)
		return r;
	for (i = 0; i < ns; i++) {
		struct cx_p11_token_info ti;
		struct cx_err ie = {0};

		if ((r = cx_p11_token_info(m, slots[i], &ti, &ie)) != 0 && r != CX_P11_ABSENT &&
		    strict) {
			free(slots);
			return cx_err_set(e, r, "%s", ie.msg);
		}
		if (r != 0 || ti.serial[0] == '\0')
			continue;
		if ((ne = reallocarray(*ents, *n + 1, sizeof(**ents))) == NULL) {
			free(slots);
			return cx_err_set(e, CX_ENOMEM, "out of memory");
		}
		*ents = ne;
		ne[*n].mod = am;
		ne[*n].slot = slots[i];
		ne[*n].info = ti;
		(*n)++;
	}
	free(slots);
	return 0;
}

/*
 * A module from the allow-list: by default loaded only in helper processes
 * (pkcs11/remote.h), this binary run again: /proc/self/exe is the image we
 * run even if the file was replaced since, so agent and helper always speak
 * the same wire.  --no-token-helpers: in this process.
 */
static int
load_module(struct agent *a, const char *path, struct cx_p11_module **m, struct cx_err *e)
{
	if (a->token_helpers)
		return cx_p11_module_load_helper(path, (const char *const *)a->allow, a->nallow,
		    "/proc/self/exe", &a->running, m, e);
	return cx_p11_module_load(path, (const char *const *)a->allow, a->nallow, m, e);
}

static void
run_modload(struct agent *a, struct job *j)
{
	struct cx_p11_module *m;
	int r;

	if (j->mod != NULL)
		m = j->mod->m;
	else if ((r = load_module(a, j->path, &m, &j->err)) != 0) {
		j->aerr = r == CX_EREJECT ? CX_AERR_REFUSED
		    : r == CX_ENOENT      ? CX_AERR_BAD_REQUEST
		                          : aerr_of(r);
		return;
	} else
		j->loaded = m;
	if ((r = scan_module(j->mod, m, 0, &j->scan, &j->nscan, &j->err)) != 0)
		j->aerr = aerr_of(r);
}

static void
run_rescan(struct agent *a, struct job *j)
{
	struct cx_err e = {0};

	if ((j->scanned = calloc(j->nmods ? j->nmods : 1, sizeof(int))) == NULL)
		return;
	for (size_t i = 0; i < j->nmods; i++)
		if (scan_module(j->mods[i], j->mods[i]->m, 1, &j->scan, &j->nscan, &e) == 0)
			j->scanned[i] = 1;
}

void
cx_tokens_run(struct agent *a, struct job *j)
{
	struct tok *t = j->w->tok;

	if (t == NULL) {
		/* the aux worker */
		if (j->kind == JOB_MODLOAD)
			run_modload(a, j);
		else if (j->kind == JOB_RESCAN)
			run_rescan(a, j);
		return;
	}
	switch (j->kind) {
	case JOB_STOP:
	case JOB_DROP:
		tok_close(a, t);
		j->absent = 1;
		break;
	case JOB_OPEN:
		run_open(a, t, j);
		break;
	case JOB_LIST:
		if (need_token(a, t, j) == 0)
			list_keys(t, j);
		break;
	case JOB_LOGIN:
		run_login(a, t, j);
		break;
	case JOB_SIGN:
		run_sign(a, t, j);
		break;
	case JOB_GENERATE:
		run_generate(a, t, j);
		break;
	default:
		break;
	}
}

/* ---- main side ---- */

struct tok *
cx_tokens_find(struct agent *a, const char *serial)
{
	for (struct tok *t = a->toks; t != NULL; t = t->next)
		if (!t->removing && strcmp(t->serial, serial) == 0)
			return t;
	return NULL;
}

static int
excluded(const struct amodule *m, const char *serial)
{
	for (size_t i = 0; i < m->nexcluded; i++)
		if (strcmp(m->excluded[i], serial) == 0)
			return 1;
	return 0;
}

static int
filter_match(const char *f, const struct cx_p11_token_info *ti)
{
	if (strncmp(f, "pkcs11:", 7) == 0)
		return cx_p11_uri_match_token(f, ti, NULL) == 1;
	return strcmp(f, ti->serial) == 0;
}

static int
wanted(const struct amodule *m, const struct cx_p11_token_info *ti)
{
	if (excluded(m, ti->serial))
		return 0;
	if (m->all)
		return 1;
	for (size_t i = 0; i < m->nfilters; i++)
		if (filter_match(m->filters[i], ti))
			return 1;
	return 0;
}

static void
reopen(struct agent *a, struct tok *t, unsigned long slot)
{
	struct job *j;

	if (t->reopening || (j = cx_job_new(JOB_OPEN)) == NULL)
		return;
	j->slot = slot;
	t->slot = slot;
	t->reopening = 1;
	cx_worker_push(&t->w, j);
}

static struct tok *
attach(struct agent *a, struct amodule *m, const struct scan_ent *se)
{
	struct tok *t, **pp;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->mod = m;
	snprintf(t->serial, sizeof(t->serial), "%s", se->info.serial);
	snprintf(t->label, sizeof(t->label), "%s", se->info.label);
	t->slot = se->slot;
	t->fastfd = -1;
	if (cx_worker_start(a, &t->w, t->serial, t, cx_tokens_run) != 0) {
		free(t);
		return NULL;
	}
	for (pp = &a->toks; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = t;
	cx_agent_log(a, LOG_INFO, "token \"%s\" (serial %s) in %s, slot %lu", t->label, t->serial,
	    m->path, se->slot);
	reopen(a, t, se->slot);
	return t;
}

static void
tok_free(struct tok *t)
{
	free(t);
}

/* Applies a scan: attaches new wanted tokens, reopens returning ones. Returns how many match f. */
static size_t
apply_scan(struct agent *a, const struct scan_ent *se, size_t n, const char *f)
{
	size_t i, matched = 0;
	struct tok *t;

	for (i = 0; i < n; i++) {
		if ((t = cx_tokens_find(a, se[i].info.serial)) != NULL) {
			if (t->mod != se[i].mod) {
				cx_agent_log(a, LOG_WARNING,
				    "token serial %s in both %s and %s: the second is ignored",
				    se[i].info.serial, t->mod->path, se[i].mod->path);
				continue;
			}
			if (f != NULL && (*f == '\0' || filter_match(f, &se[i].info)))
				matched++;
			if (!t->present || t->slot != se[i].slot)
				reopen(a, t, se[i].slot);
			continue;
		}
		if (!wanted(se[i].mod, &se[i].info))
			continue;
		if (attach(a, se[i].mod, &se[i]) != NULL && f != NULL &&
		    (*f == '\0' || filter_match(f, &se[i].info)))
			matched++;
	}
	return matched;
}

static int
add_filter(struct amodule *m, const char *f)
{
	char **nf, *s;
	size_t i;

	/* asked for again after a REMOVE_TOKEN: no longer excluded */
	for (i = 0; i < m->nexcluded; i++)
		if (*f == '\0' || strcmp(m->excluded[i], f) == 0) {
			free(m->excluded[i]);
			m->excluded[i--] = m->excluded[--m->nexcluded];
		}
	if (*f == '\0') {
		m->all = 1;
		return 0;
	}
	for (i = 0; i < m->nfilters; i++)
		if (strcmp(m->filters[i], f) == 0)
			return 0;
	if ((s = strdup(f)) == NULL ||
	    (nf = reallocarray(m->filters, m->nfilters + 1, sizeof(*nf))) == NULL) {
		free(s);
		return CX_ENOMEM;
	}
	m->filters = nf;
	m->filters[m->nfilters++] = s;
	return 0;
}

static struct amodule *
module_new(struct agent *a, struct cx_p11_module *m)
{
	struct amodule *am, **pp;

	if ((am = calloc(1, sizeof(*am))) == NULL ||
	    (am->path = strdup(cx_p11_module_path(m))) == NULL) {
		free(am);
		return NULL;
	}
	am->m = m;
	for (pp = &a->mods; *pp != NULL; pp = &(*pp)->next)
		;
	*pp = am;
	return am;
}

int
cx_tokens_start(struct agent *a, struct cx_err *e)
{
	struct cx_p11_module *m;
	struct scan_ent *se = NULL;
	struct amodule *am;
	size_t n = 0, i;
	int r;

	if (cx_worker_start(a, &a->aux, "aux", NULL, cx_tokens_run) != 0)
		return cx_err_set(e, CX_EIO, "cannot start the module worker");
	/* before the loop runs, nothing else is waiting: load directly */
	for (i = 0; i < a->nstartmods; i++) {
		if ((r = load_module(a, a->startmods[i], &m, e)) != 0)
			return r;
		if ((am = module_new(a, m)) == NULL) {
			cx_p11_module_unload(m);
			return cx_err_set(e, CX_ENOMEM, "out of memory");
		}
		am->all = 1;
		n = 0;
		if ((r = scan_module(am, m, 0, &se, &n, e)) != 0) {
			free(se);
			return r;
		}
		apply_scan(a, se, n, NULL);
		free(se);
		se = NULL;
	}
	a->next_rescan = cx_agent_now() + AGENT_RESCAN_S;
	return 0;
}

void
cx_tokens_tick(struct agent *a, int64_t now)
{
	struct amodule *m;
	struct job *j;
	size_t n = 0;

	if (a->rescanning || now < a->next_rescan || a->mods == NULL)
		return;
	a->next_rescan = now + AGENT_RESCAN_S;
	if ((j = cx_job_new(JOB_RESCAN)) == NULL)
		return;
	for (m = a->mods; m != NULL; m = m->next)
		n++;
	if ((j->mods = calloc(n, sizeof(*j->mods))) == NULL) {
		cx_job_free(a, j);
		return;
	}
	n = 0;
	for (m = a->mods; m != NULL; m = m->next)
		j->mods[n++] = m;
	j->nmods = n;
	a->rescanning = 1;
	cx_worker_push(&a->aux, j);
}

static void
rescan_done(struct agent *a, struct job *j)
{
	struct tok *t;
	size_t i, k;
	int seen;

	a->rescanning = 0;
	if (j->scanned == NULL)
		return;
	apply_scan(a, j->scan, j->nscan, NULL);
	/* gone from a module we could read: drop the session, the PIN, the keys' presence */
	for (t = a->toks; t != NULL; t = t->next) {
		if (t->removing || !t->present)
			continue;
		for (i = 0; i < j->nmods && j->mods[i] != t->mod; i++)
			;
		if (i == j->nmods || !j->scanned[i])
			continue;
		for (seen = 0, k = 0; k < j->nscan && !seen; k++)
			seen = j->scan[k].mod == t->mod &&
			    strcmp(j->scan[k].info.serial, t->serial) == 0;
		if (seen)
			continue;
		cx_agent_log(a, LOG_INFO, "token %s (serial %s) removed", t->label, t->serial);
		t->present = 0;
		t->logged_in = 0;
		cx_reg_token_absent(a, t);
		cx_pincache_drop(a->pins, t->serial);
		struct job *d = cx_job_new(JOB_DROP);
		if (d != NULL)
			cx_worker_push(&t->w, d);
	}
}

static void
modload_done(struct agent *a, struct job *j)
{
	struct amodule *m = j->mod;
	struct conn *c;
	size_t matched;

	c = cx_conn_of_job(a, j);
	if (j->loaded != NULL) {
		if ((m = module_new(a, j->loaded)) == NULL) {
			cx_p11_module_unload(j->loaded);
			j->aerr = CX_AERR_TOKEN_ERROR;
			cx_err_set(&j->err, CX_ENOMEM, "out of memory");
		} else {
			cx_agent_log(a, LOG_INFO, "module %s loaded", m->path);
			for (size_t i = 0; i < j->nscan; i++)
				j->scan[i].mod = m;
		}
	}
	if (j->aerr == 0 && add_filter(m, j->filter) != 0) {
		j->aerr = CX_AERR_TOKEN_ERROR;
		cx_err_set(&j->err, CX_ENOMEM, "out of memory");
	}
	if (j->aerr == 0) {
		matched = apply_scan(a, j->scan, j->nscan, j->filter);
		if (matched == 0) {
			j->aerr = CX_AERR_TOKEN_ABSENT;
			cx_err_set(&j->err, CX_ENOENT,
			    "module %s is loaded, but no token %s%s is present; it will be attached when it appears",
			    m->path, *j->filter ? "matching " : "", j->filter);
		}
	}
	cx_audit_nowait(a, &j->peer, "add-token", "", j->filter, "", j->path, NULL,
	    j->aerr == 0 ? "ok" : cx_agent_err_name((uint32_t)j->aerr));
	if (c == NULL)
		return;
	if (j->aerr == 0)
		cx_conn_ok(a, c);
	else
		cx_conn_error(a, c, (uint32_t)j->aerr, 0, "%s", j->err.msg);
}

static void
generated(struct agent *a, struct tok *t, struct job *j, struct conn *c)
{
	struct cx_msg_key mk;
	struct cx_msg m;
	struct akey *k;

	if (j->aerr == 0 && (k = cx_reg_find(a, j->keys[0].keyid)) != NULL && k->tok == t) {
		memset(&mk, 0, sizeof(mk));
		mk.id = k->id;
		mk.keystr = k->keystr;
		memcpy(mk.keyid, k->keyid, 32);
		mk.keyalg = k->keyalg;
		mk.state = CX_KEY_HARDWARE | CX_KEY_PRESENT |
		    (t->logged_in ? CX_KEY_LOGGED_IN : 0) |
		    (k->p11.always_auth ? CX_KEY_ALWAYS_AUTH : 0);
		mk.token_serial = t->serial;
		mk.token_label = t->label;
		mk.uri = k->p11.uri;
		mk.policy = k->policy;
		mk.sigs_made = k->sigs;
		memset(&m, 0, sizeof(m));
		m.type = CX_MSG_GENERATED;
		m.u.keys.v = &mk;
		m.u.keys.n = 1;
		if (c != NULL)
			cx_conn_reply(a, c, &m);
		return;
	}
	if (j->aerr == 0) {
		j->aerr = CX_AERR_TOKEN_ERROR;
		cx_err_set(&j->err, CX_EINVAL, "the generated key could not be registered");
	}
	if (c != NULL)
		cx_conn_error(a, c, (uint32_t)j->aerr, j->detail, "%s", j->err.msg);
}

static void
unlink_tok(struct agent *a, struct tok *t)
{
	struct tok **pp;

	for (pp = &a->toks; *pp != NULL; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			return;
		}
}

void
cx_tokens_done(struct agent *a, struct job *j)
{
	struct tok *t = j->w != NULL ? j->w->tok : NULL;
	struct akey *k;
	struct conn *c;

	if (j->kind == JOB_MODLOAD) {
		modload_done(a, j);
		return;
	}
	if (j->kind == JOB_RESCAN) {
		rescan_done(a, j);
		return;
	}
	if (t == NULL)
		return;
	if (j->kind == JOB_STOP) {
		/* the worker has returned from its last job: the join is immediate */
		pthread_join(t->w.th, NULL);
		t->w.joined = 1;
		pthread_cond_destroy(&t->w.cv);
		pthread_mutex_destroy(&t->w.mu);
		unlink_tok(a, t);
		tok_free(t);
		return;
	}
	if (!t->removing) {
		if (j->have_info) {
			snprintf(t->label, sizeof(t->label), "%s", j->info.label);
			t->logged_in = j->logged_in;
		}
		if (j->kind == JOB_OPEN) {
			t->reopening = 0;
			if (!j->absent) {
				if (!t->present)
					cx_agent_log(a, LOG_INFO, "token %s (serial %s) attached",
					    t->label, t->serial);
				t->present = 1;
				cx_reg_token_present(a, t);
			}
		}
		if (j->absent) {
			if (t->present)
				cx_agent_log(a, LOG_INFO, "token %s (serial %s) is gone", t->label,
				    t->serial);
			t->present = 0;
			t->logged_in = 0;
			cx_reg_token_absent(a, t);
		}
		if (j->keys != NULL && j->kind != JOB_SIGN)
			cx_reg_token_keys(a, t, j->keys, j->nkeys, j->listed);
		if (j->kind == JOB_SIGN && j->aerr == CX_AERR_NO_SUCH_KEY &&
		    (k = cx_reg_find(a, j->keyid)) != NULL && k->tok == t)
			k->present = 0; /* deleted on the token behind our back */
	}
	switch (j->kind) {
	case JOB_SIGN:
		cx_reg_sign_done(a, j);
		return;
	case JOB_GENERATE:
		generated(a, t, j, cx_conn_of_job(a, j));
		return;
	case JOB_LOGIN:
		if ((c = cx_conn_of_job(a, j)) == NULL)
			return;
		if (j->aerr == 0)
			cx_conn_ok(a, c);
		else
			cx_conn_error(a, c, (uint32_t)j->aerr, j->detail, "%s", j->err.msg);
		return;
	default:
		cx_conn_job_error(a, j); /* internal jobs have no connection: nothing happens */
		return;
	}
}

/* ---- requests ---- */

static struct tok *
present_tok(struct agent *a, struct conn *c, const char *serial, const char *op)
{
	struct tok *t;

	/* a token being opened is as good as present: the job queues behind the open */
	if ((t = cx_tokens_find(a, serial)) == NULL || (!t->present && !t->reopening)) {
		cx_audit_nowait(a, &c->peer, op, "", serial, "", "", NULL,
		    cx_agent_err_name(CX_AERR_TOKEN_ABSENT));
		cx_conn_error(a, c, CX_AERR_TOKEN_ABSENT, 0, "no token with serial \"%s\" is %s",
		    serial, t == NULL ? "attached" : "present");
		return NULL;
	}
	return t;
}

void
cx_tokens_login(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	struct tok *t;
	struct job *j;

	if ((t = present_tok(a, c, m->u.login.serial, "login")) == NULL)
		return;
	if ((j = cx_job_new(JOB_LOGIN)) == NULL ||
	    (j->secret = sodium_malloc(m->u.login.pinlen + 1)) == NULL) {
		cx_job_free(a, j);
		cx_conn_error(a, c, CX_AERR_TOKEN_ERROR, 0, "out of memory");
		return;
	}
	memcpy(j->secret, m->u.login.pin, m->u.login.pinlen);
	j->secret[m->u.login.pinlen] = '\0';
	j->secretlen = m->u.login.pinlen;
	j->allow_final_try = m->u.login.allow_final_try;
	cx_conn_wait_job(a, c, &t->w, j);
}

void
cx_tokens_add(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	char rp[PATH_MAX];
	struct amodule *am;
	struct job *j;

	if (realpath(m->u.add_token.module, rp) == NULL) {
		cx_audit_nowait(a, &c->peer, "add-token", "", m->u.add_token.token, "",
		    m->u.add_token.module, NULL, cx_agent_err_name(CX_AERR_BAD_REQUEST));
		cx_conn_error(a, c, CX_AERR_BAD_REQUEST, 0, "module %s: %s", m->u.add_token.module,
		    strerror(errno));
		return;
	}
	for (am = a->mods; am != NULL; am = am->next)
		if (strcmp(am->path, rp) == 0)
			break;
	if ((j = cx_job_new(JOB_MODLOAD)) == NULL ||
	    (j->path = strdup(m->u.add_token.module)) == NULL ||
	    (j->filter = strdup(m->u.add_token.token)) == NULL) {
		cx_job_free(a, j);
		cx_conn_error(a, c, CX_AERR_TOKEN_ERROR, 0, "out of memory");
		return;
	}
	j->mod = am;
	cx_conn_wait_job(a, c, &a->aux, j);
}

void
cx_tokens_remove(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	struct tok *t;
	char **ne, *s;

	if ((t = cx_tokens_find(a, m->u.remove_token.serial)) == NULL) {
		cx_audit_nowait(a, &c->peer, "remove-token", "", m->u.remove_token.serial, "", "",
		    NULL, cx_agent_err_name(CX_AERR_TOKEN_ABSENT));
		cx_conn_error(a, c, CX_AERR_TOKEN_ABSENT, 0, "no token with serial \"%s\"",
		    m->u.remove_token.serial);
		return;
	}
	/* not attached again by the next rescan, until an ADD_TOKEN asks for it */
	if ((s = strdup(t->serial)) != NULL &&
	    (ne = reallocarray(t->mod->excluded, t->mod->nexcluded + 1, sizeof(*ne))) != NULL) {
		t->mod->excluded = ne;
		t->mod->excluded[t->mod->nexcluded++] = s;
	} else
		free(s);
	t->removing = 1;
	t->present = 0;
	cx_reg_token_forget(a, t);
	cx_pincache_drop(a->pins, t->serial);
	/* the worker finishes what it holds (answers still go out), closes, and exits */
	if (!t->w.stopping) {
		struct job *j = cx_job_new(JOB_STOP);
		if (j != NULL) {
			t->w.stopping = 1;
			cx_worker_push(&t->w, j);
		}
	}
	cx_audit_nowait(a, &c->peer, "remove-token", "", t->serial, "", "", NULL, "ok");
	cx_agent_log(a, LOG_INFO, "token %s (serial %s) removed by request", t->label, t->serial);
	cx_conn_ok(a, c);
}

void
cx_tokens_generate(struct agent *a, struct conn *c, const struct cx_msg *m)
{
	struct tok *t;
	struct job *j;
	int alg, bits = (int)m->u.generate.bits;

	switch (m->u.generate.keyalg) {
	case CX_MKEY_RSA:
		alg = CX_P11_RSA;
		if (bits == 0)
			bits = 2048;
		if (bits < 2048 || bits > 4096) {
			cx_conn_error(a, c, CX_AERR_BAD_REQUEST, 0,
			    "RSA keys have 2048 to 4096 bits, not %d", bits);
			return;
		}
		break;
	case CX_MKEY_ED25519:
		alg = CX_P11_ED25519;
		bits = 255;
		break;
	default:
		alg = CX_P11_ECDSA_P256;
		bits = 256;
		break;
	}
	if (m->u.generate.id[0] == '\0') {
		cx_conn_error(a, c, CX_AERR_BAD_REQUEST, 0, "a key needs a conex id (its label)");
		return;
	}
	if ((t = present_tok(a, c, m->u.generate.serial, "generate")) == NULL)
		return;
	if ((j = cx_job_new(JOB_GENERATE)) == NULL ||
	    (j->label = strdup(m->u.generate.id)) == NULL) {
		cx_job_free(a, j);
		cx_conn_error(a, c, CX_AERR_TOKEN_ERROR, 0, "out of memory");
		return;
	}
	j->alg = alg;
	j->bits = bits;
	cx_conn_wait_job(a, c, &t->w, j);
}

void
cx_tokens_shutdown(struct agent *a)
{
	struct amodule *m, *mn;
	struct tok *t, *tn;
	int aux_ok, ok;

	/* every worker at once, then the waits: a stuck one costs its wait only once */
	for (t = a->toks; t != NULL; t = t->next)
		if (!t->w.stopping) {
			struct job *j = cx_job_new(JOB_STOP);
			if (j != NULL) {
				t->w.stopping = 1;
				cx_worker_push(&t->w, j);
			}
		}
	for (t = a->toks; t != NULL; t = t->next)
		if (!cx_worker_stop(&t->w, AGENT_STOP_WAIT_S))
			cx_agent_log(
			    a, LOG_WARNING, "token %s: worker still busy at shutdown", t->serial);
	aux_ok = cx_worker_stop(&a->aux, AGENT_STOP_WAIT_S);
	for (m = a->mods; m != NULL; m = mn) {
		mn = m->next;
		ok = aux_ok;
		for (t = a->toks; t != NULL; t = t->next)
			if (t->mod == m && !t->w.joined)
				ok = 0;
		/* C_Finalize under a thread still inside the module would pull its session */
		if (ok)
			cx_p11_module_unload(m->m);
		else
			cx_agent_log(a, LOG_WARNING,
			    "module %s left initialised: a worker is stuck", m->path);
		for (size_t i = 0; i < m->nfilters; i++)
			free(m->filters[i]);
		for (size_t i = 0; i < m->nexcluded; i++)
			free(m->excluded[i]);
		free(m->filters);
		free(m->excluded);
		free(m->path);
		free(m);
	}
	a->mods = NULL;
	for (t = a->toks; t != NULL; t = tn) {
		tn = t->next;
		/* a detached worker may still use its tok: leave it */
		if (t->w.joined)
			tok_free(t);
	}
	a->toks = NULL;
}
