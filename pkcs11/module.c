/*
 * Loading a PKCS#11 module from the allow-list, its slots and token info.
 *
 * The allow-list is checked on realpaths: what counts is the file that gets
 * mapped, not the name it was reached by.  A symlink outside the list that
 * resolves to a listed module is therefore accepted, and a copy of a listed
 * module elsewhere is refused.  The realpath, not the caller's path, is what
 * is handed to p11-kit, so a symlink swapped between check and load cannot
 * redirect it.
 *
 * One load per module file per process: p11-kit hands out the same function
 * list for a second unmanaged load, and the module's C_Initialize then says
 * CKR_CRYPTOKI_ALREADY_INITIALIZED.  Sharing it would let one owner's
 * C_Finalize pull the sessions from under the other, so the second load is
 * refused with a message that says so.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/p11-kit.h>

#include "pkcs11/internal.h"
#include "pkcs11/remote.h"

/* The realpath of path into rp if it is one of allow's (by realpath too). */
static int
allowed(
    const char *path, const char *const *allow, size_t nallow, char rp[PATH_MAX], struct cx_err *e)
{
	char ap[PATH_MAX];
	size_t i;

	if (path == NULL || *path == '\0')
		return cx_err_set(e, CX_EINVAL, "no PKCS#11 module path");
	if (realpath(path, rp) == NULL)
		return cx_err_set(e, errno == ENOENT ? CX_ENOENT : CX_EIO, "module %s: %s", path,
		    strerror(errno));
	for (i = 0; i < nallow; i++) {
		/* an entry that does not resolve (module not installed) matches nothing */
		if (allow[i] != NULL && realpath(allow[i], ap) != NULL && strcmp(ap, rp) == 0)
			return 0;
	}
	return cx_err_set(e, CX_EREJECT, "module %s is not in the allow-list", path);
}

int
cx_p11_module_load(const char *path, const char *const *allow, size_t nallow,
    struct cx_p11_module **out, struct cx_err *e)
{
	CK_C_INITIALIZE_ARGS args;
	struct cx_p11_module *m;
	char rp[PATH_MAX], nbuf[48];
	const char *msg;
	CK_RV rv;
	int r;

	*out = NULL;
	if ((r = allowed(path, allow, nallow, rp, e)) != 0)
		return r;

	if ((m = calloc(1, sizeof(*m))) == NULL || (m->path = strdup(rp)) == NULL) {
		free(m);
		return cx_err_set(e, CX_ENOMEM, "module %s: out of memory", path);
	}
	/* unmanaged: the module's own function list, our own C_Initialize arguments */
	if ((m->f = p11_kit_module_load(rp, P11_KIT_MODULE_UNMANAGED)) == NULL) {
		msg = p11_kit_message();
		r = cx_err_set(e, CX_EIO, "module %s: cannot load: %s", path,
		    msg != NULL ? msg : "p11-kit gave no reason");
		free(m->path);
		free(m);
		return r;
	}
	memset(&args, 0, sizeof(args));
	/* we use sessions from several threads (one token per thread): the module must lock */
	args.flags = CKF_OS_LOCKING_OK;
	if ((rv = m->f->C_Initialize(&args)) != CKR_OK) {
		if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
			r = cx_err_set(e, CX_EINVAL,
			    "module %s: already loaded in this process (load each module once)",
			    path);
		else
			r = cx_err_set(e,
			    rv == CKR_CANT_LOCK ? CX_EUNSUPPORTED : CX_P11_TOKEN_ERROR,
			    "module %s: C_Initialize: %s", path,
			    cx_p11_ckr_name(rv, nbuf, sizeof(nbuf)));
		/* p11-kit counts loads: this release leaves another owner's load mapped */
		p11_kit_module_release(m->f);
		free(m->path);
		free(m);
		return r;
	}
	*out = m;
	return 0;
}

int
cx_p11_module_load_helper(const char *path, const char *const *allow, size_t nallow,
    const char *exe, const atomic_int *busy, struct cx_p11_module **out, struct cx_err *e)
{
	struct cx_p11_module *m;
	char rp[PATH_MAX];
	int r;

	*out = NULL;
	if (exe == NULL || *exe != '/')
		return cx_err_set(e, CX_EINVAL, "helper program must be an absolute path");
	if ((r = allowed(path, allow, nallow, rp, e)) != 0)
		return r;
	if ((m = calloc(1, sizeof(*m))) == NULL || (m->path = strdup(rp)) == NULL ||
	    (m->helper = strdup(exe)) == NULL) {
		if (m != NULL)
			free(m->path);
		free(m);
		return cx_err_set(e, CX_ENOMEM, "module %s: out of memory", path);
	}
	m->busy = busy;
	pthread_mutex_init(&m->scan_mu, NULL);
	/* the helper loads it now: a module that does not load is reported here */
	if ((r = cx_p11r_module_start(m, e)) != 0) {
		cx_p11_module_unload(m);
		return r;
	}
	*out = m;
	return 0;
}

void
cx_p11_module_unload(struct cx_p11_module *m)
{
	if (m == NULL)
		return;
	if (m->helper != NULL) {
		cx_p11r_module_stop(m);
		pthread_mutex_destroy(&m->scan_mu);
		free(m->helper);
		free(m->path);
		free(m);
		return;
	}
	/* closes every session the module still has: tokens must be closed before */
	m->f->C_Finalize(NULL);
	p11_kit_module_release(m->f);
	free(m->path);
	free(m);
}

const char *
cx_p11_module_path(const struct cx_p11_module *m)
{
	return m->path;
}

int
cx_p11_slots(struct cx_p11_module *m, unsigned long **slots, size_t *n, struct cx_err *e)
{
	CK_SLOT_ID *ids = NULL, *nids;
	CK_ULONG cnt = 0, cap;
	char nbuf[48];
	CK_RV rv;
	size_t i;
	int tries;

	*slots = NULL;
	*n = 0;
	if (m->helper != NULL)
		return cx_p11r_slots(m, slots, n, e);
	/* a token may come between the two calls: ask again while the list grows */
	for (tries = 0; tries < 4; tries++) {
		if ((rv = m->f->C_GetSlotList(CK_TRUE, NULL, &cnt)) != CKR_OK)
			goto fail;
		if (cnt > CX_P11_MAX_SLOTS) {
			free(ids);
			return cx_err_set(
			    e, CX_ETOOBIG, "module %s: %lu slots", m->path, (unsigned long)cnt);
		}
		if (cnt == 0) {
			free(ids);
			return 0;
		}
		cap = cnt;
		if ((nids = reallocarray(ids, cap, sizeof(*ids))) == NULL) {
			free(ids);
			return cx_err_set(e, CX_ENOMEM, "module %s: out of memory", m->path);
		}
		ids = nids;
		rv = m->f->C_GetSlotList(CK_TRUE, ids, &cnt);
		if (rv == CKR_BUFFER_TOO_SMALL)
			continue;
		if (rv != CKR_OK)
			goto fail;
		if (cnt > cap)
			continue;
		break;
	}
	if (tries == 4) {
		free(ids);
		return cx_err_set(
		    e, CX_P11_TOKEN_ERROR, "module %s: slot list keeps changing", m->path);
	}
	if (cnt == 0) {
		free(ids);
		return 0;
	}
	/* CK_SLOT_ID is unsigned long in every Cryptoki header, but do not rely on it */
	if ((*slots = calloc(cnt, sizeof(**slots))) == NULL) {
		free(ids);
		return cx_err_set(e, CX_ENOMEM, "module %s: out of memory", m->path);
	}
	for (i = 0; i < cnt; i++)
		(*slots)[i] = ids[i];
	*n = cnt;
	free(ids);
	return 0;
fail:
	free(ids);
	return cx_err_set(e, cx_p11_rv_code(rv), "module %s: C_GetSlotList: %s", m->path,
	    cx_p11_ckr_name(rv, nbuf, sizeof(nbuf)));
}

/* Copies a blank-padded field: trailing blanks and NULs go, control bytes become '?'. */
static void
field(const unsigned char *src, size_t srclen, char *dst, size_t dstlen)
{
	size_t len = srclen < dstlen - 1 ? srclen : dstlen - 1, i;

	while (len > 0 && (src[len - 1] == ' ' || src[len - 1] == '\0'))
		len--;
	for (i = 0; i < len; i++)
		dst[i] = (src[i] < 0x20 || src[i] == 0x7f) ? '?' : (char)src[i];
	dst[len] = '\0';
}

void
cx_p11_info_from_ck(CK_SLOT_ID slot, const CK_TOKEN_INFO *ck, struct cx_p11_token_info *out)
{
	memset(out, 0, sizeof(*out));
	out->slot = slot;
	field(ck->serialNumber, sizeof(ck->serialNumber), out->serial, sizeof(out->serial));
	field(ck->label, sizeof(ck->label), out->label, sizeof(out->label));
	field(ck->manufacturerID, sizeof(ck->manufacturerID), out->manufacturer,
	    sizeof(out->manufacturer));
	field(ck->model, sizeof(ck->model), out->model, sizeof(out->model));
	out->login_required = (ck->flags & CKF_LOGIN_REQUIRED) != 0;
	out->protected_path = (ck->flags & CKF_PROTECTED_AUTHENTICATION_PATH) != 0;
	out->pin_count_low = (ck->flags & CKF_USER_PIN_COUNT_LOW) != 0;
	out->pin_final_try = (ck->flags & CKF_USER_PIN_FINAL_TRY) != 0;
	out->pin_locked = (ck->flags & CKF_USER_PIN_LOCKED) != 0;
}

static void
unfield(const char *src, unsigned char *dst, size_t dstlen)
{
	size_t len = strnlen(src, dstlen);

	memset(dst, ' ', dstlen);
	memcpy(dst, src, len);
}

void
cx_p11_info_to_ck(const struct cx_p11_token_info *ti, CK_TOKEN_INFO *ck)
{
	memset(ck, 0, sizeof(*ck));
	unfield(ti->serial, ck->serialNumber, sizeof(ck->serialNumber));
	unfield(ti->label, ck->label, sizeof(ck->label));
	unfield(ti->manufacturer, ck->manufacturerID, sizeof(ck->manufacturerID));
	unfield(ti->model, ck->model, sizeof(ck->model));
}

int
cx_p11_token_info(
    struct cx_p11_module *m, unsigned long slot, struct cx_p11_token_info *out, struct cx_err *e)
{
	CK_TOKEN_INFO ck;
	char nbuf[48];
	CK_RV rv;

	memset(out, 0, sizeof(*out));
	if (m->helper != NULL)
		return cx_p11r_token_info(m, slot, out, e);
	if ((rv = m->f->C_GetTokenInfo(slot, &ck)) != CKR_OK)
		return cx_err_set(e, cx_p11_rv_code(rv), "module %s: slot %lu: C_GetTokenInfo: %s",
		    m->path, slot, cx_p11_ckr_name(rv, nbuf, sizeof(nbuf)));
	cx_p11_info_from_ck(slot, &ck, out);
	return 0;
}
