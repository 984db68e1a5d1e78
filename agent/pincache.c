/*
 * The optional PIN cache (--pin-cache IDLE,MAX): a token's PIN kept after a
 * successful login so that the agent can log in again by itself when the
 * token comes back after removal, and give keys with CKA_ALWAYS_AUTHENTICATE
 * their context-specific login without asking.  Off by default: then a PIN
 * lives only as long as the request that carried it.
 *
 * Each PIN sits in its own sodium_malloc'ed page (guard pages, mlock'ed where
 * RLIMIT_MEMLOCK allows, excluded from core dumps) that is made inaccessible
 * (sodium_mprotect_noaccess) except while a PIN is copied in or out, so a
 * stray read elsewhere in the agent faults instead of leaking it.  An entry
 * goes after IDLE seconds without use or MAX seconds after it was stored,
 * whichever comes first, and the whole cache on lock and token removal.
 * Token workers read it, the event loop expires it: one mutex.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "agent/agent.h"

#define PIN_SLOTS 32  /* tokens whose PIN can be cached at once */
#define PIN_MAX   256 /* bytes: pkcs11/'s CX_P11_MAX_PIN */

struct pin_ent {
	char serial[17];
	char *pin; /* sodium_malloc(PIN_MAX), noaccess while idle */
	size_t len;
	int used;
	int64_t stored, last;
};

struct cx_pincache {
	pthread_mutex_t mu;
	unsigned idle, max;
	struct pin_ent e[PIN_SLOTS];
};

int
cx_pincache_new(unsigned idle, unsigned max, struct cx_pincache **out)
{
	struct cx_pincache *pc;

	*out = NULL;
	if ((pc = calloc(1, sizeof(*pc))) == NULL)
		return CX_ENOMEM;
	pthread_mutex_init(&pc->mu, NULL);
	pc->idle = idle;
	pc->max = max;
	*out = pc;
	return 0;
}

int
cx_pincache_enabled(const struct cx_pincache *pc)
{
	return pc != NULL && pc->idle > 0 && pc->max > 0;
}

static void
ent_clear(struct pin_ent *p)
{
	if (p->pin != NULL) {
		sodium_mprotect_readwrite(p->pin);
		sodium_free(p->pin); /* wipes */
	}
	memset(p, 0, sizeof(*p));
}

void
cx_pincache_free(struct cx_pincache *pc)
{
	if (pc == NULL)
		return;
	cx_pincache_flush(pc);
	pthread_mutex_destroy(&pc->mu);
	free(pc);
}

static struct pin_ent *
lookup(struct cx_pincache *pc, const char *serial)
{
	for (size_t i = 0; i < PIN_SLOTS; i++)
		if (pc->e[i].used && strcmp(pc->e[i].serial, serial) == 0)
			return &pc->e[i];
	return NULL;
}

static int
stale(const struct cx_pincache *pc, const struct pin_ent *p, int64_t now)
{
	return now - p->last >= (int64_t)pc->idle || now - p->stored >= (int64_t)pc->max;
}

void
cx_pincache_put(
    struct cx_pincache *pc, const char *serial, const char *pin, size_t len, int64_t now)
{
	struct pin_ent *p;
	size_t i;

	if (!cx_pincache_enabled(pc) || len >= PIN_MAX || strlen(serial) >= sizeof(p->serial))
		return;
	pthread_mutex_lock(&pc->mu);
	if ((p = lookup(pc, serial)) == NULL) {
		for (i = 0; i < PIN_SLOTS && pc->e[i].used; i++)
			;
		if (i == PIN_SLOTS) {
			/* full: the token asks again, which is the safe side */
			pthread_mutex_unlock(&pc->mu);
			return;
		}
		p = &pc->e[i];
		if ((p->pin = sodium_malloc(PIN_MAX)) == NULL) {
			pthread_mutex_unlock(&pc->mu);
			return;
		}
		p->used = 1;
		strcpy(p->serial, serial);
	} else
		sodium_mprotect_readwrite(p->pin);
	sodium_memzero(p->pin, PIN_MAX);
	memcpy(p->pin, pin, len);
	p->len = len;
	p->stored = p->last = now;
	sodium_mprotect_noaccess(p->pin);
	pthread_mutex_unlock(&pc->mu);
}

int
cx_pincache_get(struct cx_pincache *pc, const char *serial, int64_t now, char **pin, size_t *len)
{
	struct pin_ent *p;
	char *copy;

	*pin = NULL;
	*len = 0;
	if (!cx_pincache_enabled(pc))
		return -1;
	pthread_mutex_lock(&pc->mu);
	if ((p = lookup(pc, serial)) == NULL || stale(pc, p, now)) {
		if (p != NULL)
			ent_clear(p);
		pthread_mutex_unlock(&pc->mu);
		return -1;
	}
	if ((copy = sodium_malloc(p->len + 1)) == NULL) {
		pthread_mutex_unlock(&pc->mu);
		return -1;
	}
	sodium_mprotect_readonly(p->pin);
	memcpy(copy, p->pin, p->len);
	copy[p->len] = '\0';
	sodium_mprotect_noaccess(p->pin);
	*pin = copy;
	*len = p->len;
	p->last = now;
	pthread_mutex_unlock(&pc->mu);
	return 0;
}

void
cx_pincache_drop(struct cx_pincache *pc, const char *serial)
{
	struct pin_ent *p;

	if (pc == NULL)
		return;
	pthread_mutex_lock(&pc->mu);
	if ((p = lookup(pc, serial)) != NULL)
		ent_clear(p);
	pthread_mutex_unlock(&pc->mu);
}

void
cx_pincache_flush(struct cx_pincache *pc)
{
	if (pc == NULL)
		return;
	pthread_mutex_lock(&pc->mu);
	for (size_t i = 0; i < PIN_SLOTS; i++)
		if (pc->e[i].used)
			ent_clear(&pc->e[i]);
	pthread_mutex_unlock(&pc->mu);
}

void
cx_pincache_expire(struct cx_pincache *pc, int64_t now)
{
	if (!cx_pincache_enabled(pc))
		return;
	pthread_mutex_lock(&pc->mu);
	for (size_t i = 0; i < PIN_SLOTS; i++)
		if (pc->e[i].used && stale(pc, &pc->e[i], now))
			ent_clear(&pc->e[i]);
	pthread_mutex_unlock(&pc->mu);
}
