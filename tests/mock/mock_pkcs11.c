/*
 * A PKCS#11 module for the faults SoftHSM cannot produce on demand: a token
 * pulled out and put back (same serial), the PIN flags CKF_USER_PIN_FINAL_TRY
 * and CKF_USER_PIN_LOCKED, key handles that go stale.  Tests only; it is
 * never installed and no allow-list but a test's names it.
 *
 * One slot (0, or N after slot-N), one token (serial MOCK0000000001, label "mock", user PIN
 * "1234"), one Ed25519 key pair (CKA_LABEL "m1", CKA_ID 01) made from a fixed
 * seed with libsodium, so that its signatures verify like a real token's.
 * The private key is visible only while logged in, as on most tokens.
 *
 * State comes from the file named by $CX_MOCK_P11_CTL, re-read on every
 * call (whitespace-separated words; missing file: none):
 *   remove         the slot is empty: calls on the token or its sessions
 *                  answer CKR_DEVICE_REMOVED / CKR_TOKEN_NOT_PRESENT, and the
 *                  removal ends every session and the login, as a real one
 *                  does.  Without the word, the token is (back) in the slot.
 *   pin-final-try  the token flags CKF_USER_PIN_FINAL_TRY
 *   pin-locked     the token flags CKF_USER_PIN_LOCKED; C_Login gets CKR_PIN_LOCKED
 *   rehandle-N     the key objects have handle numbers of generation N, so
 *                  handles from an earlier generation are CKR_OBJECT_HANDLE_INVALID
 *   slot-N         the token sits in slot N instead of slot 0: moving it is
 *                  a removal and an insertion elsewhere, as with a reader change
 *   info-error     C_GetTokenInfo fails with CKR_GENERAL_ERROR while the slot
 *                  still lists the token (SoftHSM does this while another
 *                  process rewrites the token's file)
 *   two-tokens     a second token (serial MOCK0000000002, label "mock2", its own
 *                  Ed25519 key "m2", CKA_ID 02, same PIN) in the next slot; the
 *                  other words apply to the first token only
 *   sign-delay-N   C_Sign takes N milliseconds, as a token waiting for a touch
 *   global-lock    ... and holds the module's one lock meanwhile, as OpenSC's
 *                  sc_pkcs11_lock does: every other call of this process on
 *                  any of its tokens waits for it
 * Each C_Login, C_FindObjectsInit, C_SignInit and C_Sign appends its name to
 * the file named by $CX_MOCK_P11_LOG, if set, so a test can count them.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>
#include <sodium.h>

#ifndef CKK_EC_EDWARDS
#define CKK_EC_EDWARDS 0x40UL
#endif
#ifndef CKM_EDDSA
#define CKM_EDDSA 0x1057UL
#endif

#define MOCK_SERIAL  "MOCK0000000001"
#define MOCK_SERIAL2 "MOCK0000000002"
#define MOCK_PIN     "1234"
#define MAX_SESS     16

static const uint8_t ed25519_oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const uint8_t key_ids[2][1] = {{0x01}, {0x02}};
static const char *const key_labels[2] = {"m1", "m2"};

/* The module's state: a Cryptoki module is one per process by definition. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int initialized;
static int logged_in[2]; /* per token */
static int was_present = 1;
static CK_SLOT_ID was_slot;
static uint8_t pk[2][crypto_sign_PUBLICKEYBYTES];
static uint8_t sk[2][crypto_sign_SECRETKEYBYTES];
static uint8_t point[2][2 + crypto_sign_PUBLICKEYBYTES]; /* DER OCTET STRING */

struct sess {
	CK_SESSION_HANDLE h; /* 0: free */
	int tok;             /* 0 or 1 (two-tokens) */
	CK_FLAGS flags;
	int finding, found;
	int signing;
};
static struct sess sessions[MAX_SESS];
static CK_SESSION_HANDLE next_session = 1;

struct ctl {
	int present, final_try, locked, info_error, two, global_lock;
	unsigned long sign_delay_ms;
	CK_SLOT_ID slot;
	unsigned long gen;
};

static void
read_ctl(struct ctl *c)
{
	const char *path = getenv("CX_MOCK_P11_CTL");
	char word[64];
	FILE *f;

	memset(c, 0, sizeof(*c));
	c->present = 1;
	if (path == NULL || (f = fopen(path, "re")) == NULL)
		return;
	while (fscanf(f, "%63s", word) == 1) {
		if (strcmp(word, "remove") == 0)
			c->present = 0;
		else if (strcmp(word, "pin-final-try") == 0)
			c->final_try = 1;
		else if (strcmp(word, "pin-locked") == 0)
			c->locked = 1;
		else if (strncmp(word, "slot-", 5) == 0)
			c->slot = strtoul(word + 5, NULL, 10);
		else if (strcmp(word, "info-error") == 0)
			c->info_error = 1;
		else if (strncmp(word, "rehandle-", 9) == 0)
			c->gen = strtoul(word + 9, NULL, 10);
		else if (strcmp(word, "two-tokens") == 0)
			c->two = 1;
		else if (strncmp(word, "sign-delay-", 11) == 0)
			c->sign_delay_ms = strtoul(word + 11, NULL, 10);
		else if (strcmp(word, "global-lock") == 0)
			c->global_lock = 1;
	}
	fclose(f);
}

static void
note(const char *fn)
{
	const char *path = getenv("CX_MOCK_P11_LOG");
	FILE *f;

	if (path == NULL || (f = fopen(path, "ae")) == NULL)
		return;
	fprintf(f, "%s\n", fn);
	fclose(f);
}

/* The control file, applied: a removal ends every session and the login. */
static void
state(struct ctl *c)
{
	read_ctl(c);
	if ((!c->present && was_present) || c->slot != was_slot) {
		for (int i = 0; i < MAX_SESS; i++)
			if (sessions[i].tok == 0)
				memset(&sessions[i], 0, sizeof(sessions[i]));
		logged_in[0] = 0;
	}
	was_present = c->present;
	was_slot = c->slot;
}

static CK_OBJECT_HANDLE
priv_handle(const struct ctl *c, int tok)
{
	return tok == 0 ? 2 * (c->gen + 1) : 1000;
}

static CK_OBJECT_HANDLE
pub_handle(const struct ctl *c, int tok)
{
	return tok == 0 ? 2 * (c->gen + 1) + 1 : 1001;
}

/* The token in slot: 0, 1 (two-tokens), or -1.  Token 0 may be absent (c->present). */
static int
tok_of(const struct ctl *c, CK_SLOT_ID slot)
{
	if (slot == c->slot)
		return 0;
	if (c->two && slot == c->slot + 1)
		return 1;
	return -1;
}

static struct sess *
find_sess(CK_SESSION_HANDLE h)
{
	for (int i = 0; i < MAX_SESS; i++)
		if (h != 0 && sessions[i].h == h)
			return &sessions[i];
	return NULL;
}

static void
pad(CK_UTF8CHAR *dst, size_t n, const char *s)
{
	memset(dst, ' ', n);
	memcpy(dst, s, strlen(s) < n ? strlen(s) : n);
}

/* Session functions: the token must be there, the session ours. */
static CK_RV
sess_of(CK_SESSION_HANDLE h, struct ctl *c, struct sess **out)
{
	state(c);
	if ((*out = find_sess(h)) == NULL)
		return c->present ? CKR_SESSION_HANDLE_INVALID : CKR_DEVICE_REMOVED;
	if ((*out)->tok == 0 && !c->present)
		return CKR_DEVICE_REMOVED;
	return CKR_OK;
}

/* ---- general ---- */

static CK_RV
m_initialize(void *args)
{
	uint8_t seed[crypto_sign_SEEDBYTES];

	(void)args;
	pthread_mutex_lock(&mu);
	if (initialized) {
		pthread_mutex_unlock(&mu);
		return CKR_CRYPTOKI_ALREADY_INITIALIZED;
	}
	if (sodium_init() < 0) {
		pthread_mutex_unlock(&mu);
		return CKR_GENERAL_ERROR;
	}
	/* fixed: a test may compare the key with one it derives itself */
	for (int t = 0; t < 2; t++) {
		memset(seed, t == 0 ? 0x5a : 0xa5, sizeof(seed));
		crypto_sign_seed_keypair(pk[t], sk[t], seed);
		point[t][0] = 0x04;
		point[t][1] = crypto_sign_PUBLICKEYBYTES;
		memcpy(point[t] + 2, pk[t], crypto_sign_PUBLICKEYBYTES);
		logged_in[t] = 0;
	}
	memset(sessions, 0, sizeof(sessions));
	was_present = 1;
	was_slot = 0;
	initialized = 1;
	pthread_mutex_unlock(&mu);
	return CKR_OK;
}

static CK_RV
m_finalize(void *reserved)
{
	(void)reserved;
	pthread_mutex_lock(&mu);
	initialized = 0;
	sodium_memzero(sk, sizeof(sk));
	logged_in[0] = logged_in[1] = 0;
	memset(sessions, 0, sizeof(sessions));
	pthread_mutex_unlock(&mu);
	return CKR_OK;
}

static CK_RV
m_get_info(CK_INFO *info)
{
	memset(info, 0, sizeof(*info));
	info->cryptokiVersion.major = 2;
	info->cryptokiVersion.minor = 40;
	pad(info->manufacturerID, sizeof(info->manufacturerID), "conex tests");
	pad(info->libraryDescription, sizeof(info->libraryDescription), "mock");
	return CKR_OK;
}

static CK_RV
m_get_slot_list(CK_BBOOL present, CK_SLOT_ID *list, CK_ULONG *count)
{
	struct ctl c;
	CK_ULONG n;

	pthread_mutex_lock(&mu);
	state(&c);
	pthread_mutex_unlock(&mu);
	n = present && !c.present ? 0 : 1;
	if (list != NULL) {
		if (*count < n + (CK_ULONG)c.two) {
			*count = n + (CK_ULONG)c.two;
			return CKR_BUFFER_TOO_SMALL;
		}
		if (n == 1)
			list[0] = c.slot;
		if (c.two)
			list[n] = c.slot + 1;
	}
	n += (CK_ULONG)c.two;
	*count = n;
	return CKR_OK;
}

static CK_RV
m_get_slot_info(CK_SLOT_ID slot, CK_SLOT_INFO *info)
{
	struct ctl c;
	int t;

	pthread_mutex_lock(&mu);
	state(&c);
	pthread_mutex_unlock(&mu);
	if ((t = tok_of(&c, slot)) < 0)
		return CKR_SLOT_ID_INVALID;
	memset(info, 0, sizeof(*info));
	pad(info->slotDescription, sizeof(info->slotDescription), "mock slot");
	pad(info->manufacturerID, sizeof(info->manufacturerID), "conex tests");
	info->flags = CKF_REMOVABLE_DEVICE | (t == 1 || c.present ? CKF_TOKEN_PRESENT : 0);
	return CKR_OK;
}

static CK_RV
m_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO *ti)
{
	struct ctl c;
	int t;

	pthread_mutex_lock(&mu);
	state(&c);
	pthread_mutex_unlock(&mu);
	if ((t = tok_of(&c, slot)) < 0)
		return CKR_SLOT_ID_INVALID;
	if (t == 1) {
		memset(&c, 0, sizeof(c)); /* the words are about the first token */
		c.present = 1;
	}
	if (!c.present)
		return CKR_TOKEN_NOT_PRESENT;
	if (c.info_error)
		return CKR_GENERAL_ERROR;
	memset(ti, 0, sizeof(*ti));
	pad(ti->label, sizeof(ti->label), t == 0 ? "mock" : "mock2");
	pad(ti->manufacturerID, sizeof(ti->manufacturerID), "conex tests");
	pad(ti->model, sizeof(ti->model), "mock");
	pad(ti->serialNumber, sizeof(ti->serialNumber), t == 0 ? MOCK_SERIAL : MOCK_SERIAL2);
	ti->flags = CKF_LOGIN_REQUIRED | CKF_USER_PIN_INITIALIZED | CKF_TOKEN_INITIALIZED |
	    (c.final_try ? CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW : 0) |
	    (c.locked ? CKF_USER_PIN_LOCKED : 0);
	ti->ulMaxSessionCount = MAX_SESS;
	ti->ulMaxPinLen = 64;
	ti->ulMinPinLen = 4;
	return CKR_OK;
}

static CK_RV
m_get_mechanism_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO *info)
{
	struct ctl c;

	pthread_mutex_lock(&mu);
	read_ctl(&c);
	pthread_mutex_unlock(&mu);
	if (tok_of(&c, slot) < 0)
		return CKR_SLOT_ID_INVALID;
	if (type != CKM_EDDSA)
		return CKR_MECHANISM_INVALID;
	memset(info, 0, sizeof(*info));
	info->ulMinKeySize = info->ulMaxKeySize = 255;
	info->flags = CKF_SIGN;
	return CKR_OK;
}

/* ---- sessions and login ---- */

static CK_RV
m_open_session(CK_SLOT_ID slot, CK_FLAGS flags, void *app, CK_NOTIFY notify, CK_SESSION_HANDLE *out)
{
	struct ctl c;
	CK_RV rv = CKR_SESSION_COUNT;
	int t;

	(void)app;
	(void)notify;
	if (!(flags & CKF_SERIAL_SESSION))
		return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
	pthread_mutex_lock(&mu);
	state(&c);
	if ((t = tok_of(&c, slot)) < 0)
		rv = CKR_SLOT_ID_INVALID;
	else if (t == 0 && !c.present)
		rv = CKR_TOKEN_NOT_PRESENT;
	else
		for (int i = 0; i < MAX_SESS; i++)
			if (sessions[i].h == 0) {
				memset(&sessions[i], 0, sizeof(sessions[i]));
				sessions[i].h = next_session++;
				sessions[i].tok = t;
				sessions[i].flags = flags;
				*out = sessions[i].h;
				rv = CKR_OK;
				break;
			}
	pthread_mutex_unlock(&mu);
	return rv;
}

static CK_RV
m_close_session(CK_SESSION_HANDLE h)
{
	struct sess *s;
	int left = 0, t;

	pthread_mutex_lock(&mu);
	if ((s = find_sess(h)) == NULL) {
		pthread_mutex_unlock(&mu);
		return CKR_SESSION_HANDLE_INVALID;
	}
	t = s->tok;
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < MAX_SESS; i++)
		left |= sessions[i].h != 0 && sessions[i].tok == t;
	if (!left)
		logged_in[t] = 0; /* the login ends with the application's last session */
	pthread_mutex_unlock(&mu);
	return CKR_OK;
}

static CK_RV
m_get_session_info(CK_SESSION_HANDLE h, CK_SESSION_INFO *si)
{
	struct ctl c;
	struct sess *s;
	CK_RV rv;

	pthread_mutex_lock(&mu);
	if ((rv = sess_of(h, &c, &s)) == CKR_OK) {
		memset(si, 0, sizeof(*si));
		si->slotID = c.slot + (CK_SLOT_ID)s->tok;
		si->flags = s->flags;
		if (s->flags & CKF_RW_SESSION)
			si->state =
			    logged_in[s->tok] ? CKS_RW_USER_FUNCTIONS : CKS_RW_PUBLIC_SESSION;
		else
			si->state =
			    logged_in[s->tok] ? CKS_RO_USER_FUNCTIONS : CKS_RO_PUBLIC_SESSION;
	}
	pthread_mutex_unlock(&mu);
	return rv;
}

static CK_RV
m_login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR *pin, CK_ULONG len)
{
	struct ctl c;
	struct sess *s;
	CK_RV rv;

	pthread_mutex_lock(&mu);
	note("C_Login");
	if ((rv = sess_of(h, &c, &s)) != CKR_OK)
		goto out;
	if (user != CKU_USER) {
		rv = CKR_USER_TYPE_INVALID;
		goto out;
	}
	if (c.locked && s->tok == 0) {
		rv = CKR_PIN_LOCKED;
		goto out;
	}
	if (logged_in[s->tok]) {
		rv = CKR_USER_ALREADY_LOGGED_IN;
		goto out;
	}
	if (pin == NULL || len != strlen(MOCK_PIN) || memcmp(pin, MOCK_PIN, len) != 0) {
		rv = CKR_PIN_INCORRECT;
		goto out;
	}
	logged_in[s->tok] = 1;
out:
	pthread_mutex_unlock(&mu);
	return rv;
}

static CK_RV
m_logout(CK_SESSION_HANDLE h)
{
	struct ctl c;
	struct sess *s;
	CK_RV rv;

	pthread_mutex_lock(&mu);
	if ((rv = sess_of(h, &c, &s)) == CKR_OK) {
		if (!logged_in[s->tok])
			rv = CKR_USER_NOT_LOGGED_IN;
		logged_in[s->tok] = 0;
	}
	pthread_mutex_unlock(&mu);
	return rv;
}

/* ---- objects ---- */

/* The value of attribute type of object o (1 private, 2 public) of token t; NULL: not there. */
static const void *
attr_value(int o, int t, CK_ATTRIBUTE_TYPE type, CK_ULONG *len, CK_RV *why)
{
	static const CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY, pub_class = CKO_PUBLIC_KEY;
	static const CK_KEY_TYPE kt = CKK_EC_EDWARDS;
	static const CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

	*why = CKR_ATTRIBUTE_TYPE_INVALID;
	switch (type) {
	case CKA_CLASS:
		*len = sizeof(CK_OBJECT_CLASS);
		return o == 1 ? &priv_class : &pub_class;
	case CKA_KEY_TYPE:
		*len = sizeof(kt);
		return &kt;
	case CKA_ID:
		*len = sizeof(key_ids[t]);
		return key_ids[t];
	case CKA_LABEL:
		*len = strlen(key_labels[t]);
		return key_labels[t];
	case CKA_EC_PARAMS:
		*len = sizeof(ed25519_oid);
		return ed25519_oid;
	case CKA_EC_POINT:
		if (o == 1)
			return NULL; /* like SoftHSM: only the public object has it */
		*len = sizeof(point[t]);
		return point[t];
	case CKA_TOKEN:
	case CKA_SIGN:
	case CKA_SENSITIVE:
		*len = sizeof(CK_BBOOL);
		return o == 1 || type == CKA_TOKEN ? &yes : &no;
	case CKA_PRIVATE:
		*len = sizeof(CK_BBOOL);
		return o == 1 ? &yes : &no;
	case CKA_EXTRACTABLE:
	case CKA_ALWAYS_AUTHENTICATE:
		*len = sizeof(CK_BBOOL);
		return &no;
	case CKA_VALUE:
		*why = CKR_ATTRIBUTE_SENSITIVE;
		return NULL;
	default:
		return NULL;
	}
}

/* 1 private, 2 public, 0 not an object (or the private one, logged out). */
static int
object_of(const struct ctl *c, int t, CK_OBJECT_HANDLE h)
{
	if (h == priv_handle(c, t))
		return logged_in[t] ? 1 : 0;
	if (h == pub_handle(c, t))
		return 2;
	return 0;
}

static CK_RV
m_get_attribute_value(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE *t, CK_ULONG n)
{
	struct ctl c;
	struct sess *s;
	CK_RV rv, why, ret = CKR_OK;
	const void *v;
	CK_ULONG len;
	int o;

	pthread_mutex_lock(&mu);
	if ((rv = sess_of(h, &c, &s)) != CKR_OK)
		goto out;
	if ((o = object_of(&c, s->tok, oh)) == 0) {
		rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	for (CK_ULONG i = 0; i < n; i++) {
		if ((v = attr_value(o, s->tok, t[i].type, &len, &why)) == NULL) {
			t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			ret = why;
			continue;
		}
		if (t[i].pValue == NULL) {
			t[i].ulValueLen = len;
			continue;
		}
		if (t[i].ulValueLen < len) {
			t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			ret = CKR_BUFFER_TOO_SMALL;
			continue;
		}
		memcpy(t[i].pValue, v, len);
		t[i].ulValueLen = len;
	}
	rv = ret;
out:
	pthread_mutex_unlock(&mu);
	return rv;
}

static int
matches(int o, int tok, const CK_ATTRIBUTE *t, CK_ULONG n)
{
	const void *v;
	CK_ULONG len;
	CK_RV why;

	for (CK_ULONG i = 0; i < n; i++)
		if ((v = attr_value(o, tok, t[i].type, &len, &why)) == NULL ||
		    len != t[i].ulValueLen || (len > 0 && memcmp(v, t[i].pValue, len) != 0))
			return 0;
	return 1;
}

static CK_RV
m_find_objects_init(CK_SESSION_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n)
{
	struct ctl c;
	struct sess *s;
	CK_RV rv;

	pthread_mutex_lock(&mu);
	note("C_FindObjectsInit");
	if ((rv = sess_of(h, &c, &s)) != CKR_OK)
		goto out;
	if (s->finding) {
		rv = CKR_OPERATION_ACTIVE;
		goto out;
	}
	s->finding = 1;
	s->found = 0;
	/* bit 0: the private key (only while logged in), bit 1: the public key */
	if (logged_in[s->tok] && matches(1, s->tok, t, n))
		s->found |= 1;
	if (matches(2, s->tok, t, n))
		s->found |= 2;
out:
	pthread_mutex_unlock(&mu);
	return rv;
}

static CK_RV
m_find_objects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *got)
{
	struct ctl c;
	struct sess *s;
	CK_RV rv;

	pthread_mutex_lock(&mu);
	*got = 0;
	if ((rv = sess_of(h, &c, &s)) != CKR_OK)
		goto out;
	if (!s->finding) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
		goto out;
	}
	if ((s->found & 1) && *got < max) {
		out[(*got)++] = priv_handle(&c, s->tok);
		s->found &= ~1;
	}
	if ((s->found & 2) && *got < max) {
		out[(*got)++] = pub_handle(&c, s->tok);
		s->found &= ~2;
	}
out:
	pthread_mutex_unlock(&mu);
	return rv;
}

static CK_RV
m_find_objects_final(CK_SESSION_HANDLE h)
{
	struct ctl c;
	struct sess *s;
	CK_RV rv;

	pthread_mutex_lock(&mu);
	if ((rv = sess_of(h, &c, &s)) == CKR_OK) {
		if (!s->finding)
			rv = CKR_OPERATION_NOT_INITIALIZED;
		s->finding = 0;
	}
	pthread_mutex_unlock(&mu);
	return rv;
}

/* ---- signing ---- */

static CK_RV
m_sign_init(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE key)
{
	struct ctl c;
	struct sess *s;
	CK_RV rv;

	pthread_mutex_lock(&mu);
	note("C_SignInit");
	if ((rv = sess_of(h, &c, &s)) != CKR_OK)
		goto out;
	if (s->signing)
		rv = CKR_OPERATION_ACTIVE;
	else if (m == NULL || m->mechanism != CKM_EDDSA || m->ulParameterLen != 0)
		rv = CKR_MECHANISM_INVALID;
	else if (key != priv_handle(&c, s->tok) && key != pub_handle(&c, s->tok))
		rv = CKR_KEY_HANDLE_INVALID;
	else if (!logged_in[s->tok])
		rv = CKR_USER_NOT_LOGGED_IN;
	else if (key != priv_handle(&c, s->tok))
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
	else
		s->signing = 1;
out:
	pthread_mutex_unlock(&mu);
	return rv;
}

static CK_RV
m_sign(CK_SESSION_HANDLE h, CK_BYTE *data, CK_ULONG n, CK_BYTE *sig, CK_ULONG *siglen)
{
	struct ctl c;
	struct sess *s;
	CK_RV rv;

	pthread_mutex_lock(&mu);
	note("C_Sign");
	if ((rv = sess_of(h, &c, &s)) != CKR_OK)
		goto out;
	if (!s->signing) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
		goto out;
	}
	if (sig == NULL) {
		*siglen = crypto_sign_BYTES;
		goto out;
	}
	if (*siglen < crypto_sign_BYTES) {
		*siglen = crypto_sign_BYTES;
		rv = CKR_BUFFER_TOO_SMALL;
		goto out;
	}
	if (c.sign_delay_ms > 0 && s->tok == 0) {
		struct timespec ts = {
		    (time_t)(c.sign_delay_ms / 1000), (long)(c.sign_delay_ms % 1000) * 1000000L};
		int t = s->tok;

		/* a touch: with global-lock the module's lock stays held, as OpenSC's does */
		if (!c.global_lock)
			pthread_mutex_unlock(&mu);
		nanosleep(&ts, NULL);
		if (!c.global_lock)
			pthread_mutex_lock(&mu);
		/* the session may have gone meanwhile */
		if ((rv = sess_of(h, &c, &s)) != CKR_OK || s->tok != t)
			goto out;
	}
	crypto_sign_detached(sig, NULL, data, n, sk[s->tok]);
	*siglen = crypto_sign_BYTES;
	s->signing = 0;
out:
	pthread_mutex_unlock(&mu);
	return rv;
}

/* ---- the function list ---- */

static CK_RV
m_unsupported(void)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_FUNCTION_LIST fl;

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out);

CK_RV
C_GetFunctionList(CK_FUNCTION_LIST **out)
{
	void **slot;
	size_t i, n;

	if (out == NULL)
		return CKR_ARGUMENTS_BAD;
	/* every entry first answers "not supported": a caller never jumps to NULL */
	slot = (void **)&fl.C_Initialize;
	n = (sizeof(fl) - offsetof(CK_FUNCTION_LIST, C_Initialize)) / sizeof(void *);
	for (i = 0; i < n; i++)
		slot[i] = (void *)m_unsupported;
	fl.version.major = 2;
	fl.version.minor = 40;
	fl.C_Initialize = m_initialize;
	fl.C_Finalize = m_finalize;
	fl.C_GetInfo = m_get_info;
	fl.C_GetFunctionList = C_GetFunctionList;
	fl.C_GetSlotList = m_get_slot_list;
	fl.C_GetSlotInfo = m_get_slot_info;
	fl.C_GetTokenInfo = m_get_token_info;
	fl.C_GetMechanismInfo = m_get_mechanism_info;
	fl.C_OpenSession = m_open_session;
	fl.C_CloseSession = m_close_session;
	fl.C_GetSessionInfo = m_get_session_info;
	fl.C_Login = m_login;
	fl.C_Logout = m_logout;
	fl.C_GetAttributeValue = m_get_attribute_value;
	fl.C_FindObjectsInit = m_find_objects_init;
	fl.C_FindObjects = m_find_objects;
	fl.C_FindObjectsFinal = m_find_objects_final;
	fl.C_SignInit = m_sign_init;
	fl.C_Sign = m_sign;
	*out = &fl;
	return CKR_OK;
}
