/*
 * A token: one session, its info, and the user login.
 *
 * A cx_p11_token is used by one thread at a time; nothing here locks.
 * Different tokens may be used from different threads at once: the module
 * was initialised with CKF_OS_LOCKING_OK and each token has its own session.
 *
 * PIN rules: the PIN is sent once per call and never again on failure, and a
 * token that flags CKF_USER_PIN_FINAL_TRY gets no PIN unless the caller says
 * so, since a wrong one would lock it.  The PIN bytes go to C_Login and
 * nowhere else: no copy is made.
 */
#include <stdlib.h>
#include <string.h>

#include "pkcs11/internal.h"
#include "pkcs11/remote.h"

static int
session_open(struct cx_p11_token *t, struct cx_err *e)
{
	CK_RV rv;

	rv = t->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &t->s);
	/* a write-protected token still signs: fall back to a read-only session */
	if (rv == CKR_TOKEN_WRITE_PROTECTED)
		rv = t->f->C_OpenSession(t->slot, CKF_SERIAL_SESSION, NULL, NULL, &t->s);
	if (rv != CKR_OK)
		return cx_p11_fail(t, NULL, "C_OpenSession", rv, e);
	t->lost = 0;
	t->pss_mech = -1;
	cx_p11_key_cache_clear(t); /* handles belonged to the old session */
	return 0;
}

int
cx_p11_token_alloc(
    struct cx_p11_module *m, unsigned long slot, struct cx_p11_token **out, struct cx_err *e)
{
	struct cx_p11_token *t;

	if ((*out = t = calloc(1, sizeof(*t))) == NULL)
		return cx_err_set(
		    e, CX_ENOMEM, "module %s: slot %lu: out of memory", m->path, slot);
	t->m = m;
	t->f = m->f;
	t->slot = slot;
	t->pss_mech = -1;
	return 0;
}

int
cx_p11_token_open(
    struct cx_p11_module *m, unsigned long slot, struct cx_p11_token **out, struct cx_err *e)
{
	struct cx_p11_token *t;
	int r;
	if (m->helper != NULL)
		return cx_p11r_open(m, slot, out, e);

	*out = NULL;
	if ((r = cx_p11_token_alloc(m, slot, &t, e)) != 0)
		return r;
	if ((r = cx_p11_token_info(m, slot, &t->info, e)) != 0 || (r = session_open(t, e)) != 0) {
		free(t);
		return r;
	}
	*out = t;
	return 0;
}

void
cx_p11_token_close(struct cx_p11_token *t)
{
	if (t == NULL)
		return;
	if (t->r != NULL) {
		cx_p11r_close(t);
		return;
	}
	/* also when lost: the module may still hold the handle; errors do not matter here */
	t->f->C_CloseSession(t->s);
	free(t);
}

const struct cx_p11_token_info *
cx_p11_token_get_info(const struct cx_p11_token *t)
{
	return &t->info;
}

int
cx_p11_token_refresh(struct cx_p11_token *t, struct cx_err *e)
{
	CK_TOKEN_INFO ck;
	CK_RV rv;
	if (t->r != NULL)
		return cx_p11r_refresh(t, e);

	if ((rv = t->f->C_GetTokenInfo(t->slot, &ck)) != CKR_OK)
		return cx_p11_fail(t, NULL, "C_GetTokenInfo", rv, e);
	cx_p11_info_from_ck(t->slot, &ck, &t->info);
	return 0;
}

int
cx_p11_token_lost(const struct cx_p11_token *t)
{
	return t->lost;
}

int
cx_p11_same_token(
    const struct cx_p11_token *t, const struct cx_p11_token_info *old, struct cx_err *e)
{
	if (strcmp(old->serial, t->info.serial) == 0 && strcmp(old->label, t->info.label) == 0 &&
	    strcmp(old->manufacturer, t->info.manufacturer) == 0 &&
	    strcmp(old->model, t->info.model) == 0)
		return 0;
	return cx_err_set(e, CX_P11_ABSENT,
	    "token \"%s\" (serial %s): slot %lu now holds token \"%s\" (serial %s)", old->label,
	    old->serial, (unsigned long)t->slot, t->info.label, t->info.serial);
}

int
cx_p11_token_reopen(struct cx_p11_token *t, struct cx_err *e)
{
	struct cx_p11_token_info old = t->info;
	int r;
	if (t->r != NULL)
		return cx_p11r_reopen(t, e);

	t->f->C_CloseSession(t->s);
	t->lost = 1;
	if ((r = cx_p11_token_refresh(t, e)) != 0)
		return r;
	/* the slot may now hold another token: keys and logins were for the old one */
	if ((r = cx_p11_same_token(t, &old, e)) != 0) {
		t->info = old;
		return r;
	}
	return session_open(t, e);
}

int
cx_p11_session_user(struct cx_p11_token *t, int *user, struct cx_err *e)
{
	CK_SESSION_INFO si;
	CK_RV rv;

	*user = 0;
	if (t->lost)
		return cx_p11_fail(t, NULL, "session", CKR_SESSION_HANDLE_INVALID, e);
	if ((rv = t->f->C_GetSessionInfo(t->s, &si)) != CKR_OK)
		return cx_p11_fail(t, NULL, "C_GetSessionInfo", rv, e);
	*user = si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS;
	return 0;
}

int
cx_p11_token_logged_in(struct cx_p11_token *t)
{
	int user;
	if (t->r != NULL)
		return cx_p11r_logged_in(t);

	if (cx_p11_session_user(t, &user, NULL) != 0)
		return 0;
	return user;
}

int
cx_p11_token_login(
    struct cx_p11_token *t, const char *pin, size_t pinlen, int allow_final_try, struct cx_err *e)
{
	CK_RV rv;
	int r, user;
	if (t->r != NULL)
		return cx_p11r_login(t, pin, pinlen, allow_final_try, e);

	if ((r = cx_p11_session_user(t, &user, e)) != 0)
		return r;
	if (user)
		return 0;
	/* fresh flags: the final-try rule is about the token's count now */
	if ((r = cx_p11_token_refresh(t, e)) != 0)
		return r;
	if (t->info.pin_locked)
		return cx_p11_fail(t, NULL, "C_Login (not sent)", CKR_PIN_LOCKED, e);
	if (t->info.pin_final_try && !allow_final_try)
		return cx_err_set(e, CX_P11_PIN_FINAL_TRY,
		    "token \"%s\" (serial %s): one PIN try left, a wrong PIN would lock the token: "
		    "not trying",
		    t->info.label, t->info.serial);
	if (pin == NULL && !t->info.protected_path)
		return cx_err_set(e, CX_P11_PIN_REQUIRED, "token \"%s\" (serial %s): PIN required",
		    t->info.label, t->info.serial);
	if (pin != NULL && (pinlen == 0 || pinlen > CX_P11_MAX_PIN))
		return cx_err_set(e, CX_EINVAL,
		    "token \"%s\" (serial %s): PIN length %zu out of range", t->info.label,
		    t->info.serial, pinlen);
	/* C_Login takes a non-const pointer; modules only read it */
	rv = t->f->C_Login(
	    t->s, CKU_USER, (CK_UTF8CHAR *)(uintptr_t)pin, pin != NULL ? (CK_ULONG)pinlen : 0);
	if (rv == CKR_USER_ALREADY_LOGGED_IN)
		rv = CKR_OK;
	if (rv != CKR_OK) {
		r = cx_p11_fail(t, NULL, "C_Login", rv, e);
		/* the caller will want the new pin_count_low / final_try / locked flags */
		(void)cx_p11_token_refresh(t, NULL);
		return r;
	}
	(void)cx_p11_token_refresh(t, NULL);
	return 0;
}

int
cx_p11_token_logout(struct cx_p11_token *t)
{
	CK_RV rv;
	if (t->r != NULL)
		return cx_p11r_logout(t);

	if (t->lost)
		return CX_P11_ABSENT;
	/* private objects may be invisible after this: find them again after a login */
	cx_p11_key_cache_clear(t);
	rv = t->f->C_Logout(t->s);
	if (rv == CKR_USER_NOT_LOGGED_IN)
		return 0;
	if (rv != CKR_OK) {
		/* marks t lost where that is what rv means */
		return cx_p11_fail(t, NULL, "C_Logout", rv, NULL);
	}
	return 0;
}
