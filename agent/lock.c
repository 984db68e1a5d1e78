/*
 * Whole-agent lock (ssh-add -x / -X).  Only the crypto_pwhash (Argon2id)
 * string of the password is kept, so a memory dump of a locked agent does not
 * give the password away cheaply.  Wrong passwords earn a back-off: after the
 * k-th consecutive failure, tries are refused for min(2^(k-1), 60) seconds,
 * even with the right password, so that a local process cannot run a
 * dictionary at Argon2's speed through the agent socket.
 */
#include "agent/lock.h"

#include <string.h>

#include <sodium.h>

#define BACKOFF_MAX 60 /* seconds */

_Static_assert(sizeof(((struct cx_lock *)0)->hash) >= crypto_pwhash_STRBYTES,
    "cx_lock.hash must hold a crypto_pwhash string");

void
cx_lock_init(struct cx_lock *l)
{
	sodium_memzero(l, sizeof(*l));
}

static uint32_t
backoff(unsigned failures)
{
	/* 1, 2, 4, ..., 32, then 60: 2^6 already exceeds the cap */
	if (failures == 0)
		return 0;
	if (failures > 6)
		return BACKOFF_MAX;
	return 1u << (failures - 1);
}

int
cx_lock_lock(struct cx_lock *l, const char *pw, size_t n, struct cx_err *e)
{
	if (l->locked)
		return cx_err_set(e, CX_EINVAL, "agent is already locked");
	/* an empty password would lock nothing: anyone could unlock */
	if (n == 0)
		return cx_err_set(e, CX_EINVAL, "empty lock password");
	if (n > crypto_pwhash_PASSWD_MAX)
		return cx_err_set(e, CX_ETOOBIG, "lock password too long");
	/* idempotent and thread-safe; needed before any other sodium call */
	if (sodium_init() < 0)
		return cx_err_set(e, CX_ECRYPTO, "libsodium initialisation failed");
	if (crypto_pwhash_str(l->hash, pw, (unsigned long long)n,
	        crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		sodium_memzero(l->hash, sizeof(l->hash));
		return cx_err_set(e, CX_ENOMEM, "cannot hash the lock password (out of memory?)");
	}
	l->locked = 1;
	l->failures = 0;
	l->next_try = 0;
	return 0;
}

int
cx_lock_unlock(
    struct cx_lock *l, const char *pw, size_t n, int64_t now, uint32_t *wait, struct cx_err *e)
{
	uint32_t delay;

	if (wait != NULL)
		*wait = 0;
	if (!l->locked)
		return cx_err_set(e, CX_EINVAL, "agent is not locked");
	/* a clock that went backwards must not stretch the wait past the cap */
	if (l->next_try - now > BACKOFF_MAX)
		l->next_try = now + BACKOFF_MAX;
	if (now < l->next_try) {
		delay = (uint32_t)(l->next_try - now);
		if (wait != NULL)
			*wait = delay;
		return cx_err_set(e, CX_EREJECT,
		    "unlock refused for %u more second%s after %u failed attempt%s", delay,
		    delay == 1 ? "" : "s", l->failures, l->failures == 1 ? "" : "s");
	}
	if (sodium_init() < 0)
		return cx_err_set(e, CX_ECRYPTO, "libsodium initialisation failed");
	/*
	 * crypto_pwhash_str_verify also fails when Argon2 cannot get its memory;
	 * that counts as a failure too, erring on the side of the back-off.
	 */
	if (n > crypto_pwhash_PASSWD_MAX ||
	    crypto_pwhash_str_verify(l->hash, pw, (unsigned long long)n) != 0) {
		if (l->failures < 1000)
			l->failures++;
		delay = backoff(l->failures);
		l->next_try = now + delay;
		if (wait != NULL)
			*wait = delay;
		return cx_err_set(e, CX_EREJECT, "wrong password; next try in %u second%s", delay,
		    delay == 1 ? "" : "s");
	}
	sodium_memzero(l->hash, sizeof(l->hash));
	l->locked = 0;
	l->failures = 0;
	l->next_try = 0;
	return 0;
}
