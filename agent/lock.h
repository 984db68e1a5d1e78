/*
 * Whole-agent lock: the password is kept only as a libsodium crypto_pwhash
 * string; failed unlocks earn an exponential back-off during which even the
 * right password is refused.
 */
#ifndef CX_AGENT_LOCK_H
#define CX_AGENT_LOCK_H

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"

struct cx_lock {
	int locked;
	char hash[128];    /* crypto_pwhash_STRBYTES */
	unsigned failures; /* since the last success */
	int64_t next_try;  /* monotonic seconds before which unlock is refused */
};

void cx_lock_init(struct cx_lock *l);
/* Locks with password; 0, or CX_EINVAL if already locked. */
int cx_lock_lock(struct cx_lock *l, const char *pw, size_t n, struct cx_err *e);
/*
 * Unlocks.  CX_EREJECT on a wrong password or while backing off; *wait is
 * the seconds until the next try is accepted.  now is a monotonic clock.
 */
int cx_lock_unlock(
    struct cx_lock *l, const char *pw, size_t n, int64_t now, uint32_t *wait, struct cx_err *e);

#endif
