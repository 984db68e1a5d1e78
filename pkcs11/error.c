/*
 * Cryptoki return values: their names for messages, and what each one means
 * to the callers of token.h.
 */
#include <stdio.h>
#include <string.h>

#include "pkcs11/internal.h"

/* Named table rather than p11_kit_strerror: messages must carry the CKR_ name itself. */
static const struct {
	CK_RV rv;
	const char *name;
} ckr_names[] = {
#define N(x)          \
	{             \
		x, #x \
	}
    N(CKR_ACTION_PROHIBITED),
    N(CKR_ARGUMENTS_BAD),
    N(CKR_ATTRIBUTE_READ_ONLY),
    N(CKR_ATTRIBUTE_SENSITIVE),
    N(CKR_ATTRIBUTE_TYPE_INVALID),
    N(CKR_ATTRIBUTE_VALUE_INVALID),
    N(CKR_BUFFER_TOO_SMALL),
    N(CKR_CANCEL),
    N(CKR_CANT_LOCK),
    N(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    N(CKR_CRYPTOKI_NOT_INITIALIZED),
    N(CKR_CURVE_NOT_SUPPORTED),
    N(CKR_DATA_INVALID),
    N(CKR_DATA_LEN_RANGE),
    N(CKR_DEVICE_ERROR),
    N(CKR_DEVICE_MEMORY),
    N(CKR_DEVICE_REMOVED),
    N(CKR_DOMAIN_PARAMS_INVALID),
    N(CKR_ENCRYPTED_DATA_INVALID),
    N(CKR_ENCRYPTED_DATA_LEN_RANGE),
    N(CKR_EXCEEDED_MAX_ITERATIONS),
    N(CKR_FIPS_SELF_TEST_FAILED),
    N(CKR_FUNCTION_CANCELED),
    N(CKR_FUNCTION_FAILED),
    N(CKR_FUNCTION_NOT_PARALLEL),
    N(CKR_FUNCTION_NOT_SUPPORTED),
    N(CKR_FUNCTION_REJECTED),
    N(CKR_GENERAL_ERROR),
    N(CKR_HOST_MEMORY),
    N(CKR_INFORMATION_SENSITIVE),
    N(CKR_KEY_CHANGED),
    N(CKR_KEY_FUNCTION_NOT_PERMITTED),
    N(CKR_KEY_HANDLE_INVALID),
    N(CKR_KEY_INDIGESTIBLE),
    N(CKR_KEY_NEEDED),
    N(CKR_KEY_NOT_NEEDED),
    N(CKR_KEY_NOT_WRAPPABLE),
    N(CKR_KEY_SIZE_RANGE),
    N(CKR_KEY_TYPE_INCONSISTENT),
    N(CKR_KEY_UNEXTRACTABLE),
    N(CKR_LIBRARY_LOAD_FAILED),
    N(CKR_MECHANISM_INVALID),
    N(CKR_MECHANISM_PARAM_INVALID),
    N(CKR_MUTEX_BAD),
    N(CKR_MUTEX_NOT_LOCKED),
    N(CKR_NEED_TO_CREATE_THREADS),
    N(CKR_NEW_PIN_MODE),
    N(CKR_NEXT_OTP),
    N(CKR_NO_EVENT),
    N(CKR_OBJECT_HANDLE_INVALID),
    N(CKR_OK),
    N(CKR_OPERATION_ACTIVE),
    N(CKR_OPERATION_NOT_INITIALIZED),
    N(CKR_PIN_EXPIRED),
    N(CKR_PIN_INCORRECT),
    N(CKR_PIN_INVALID),
    N(CKR_PIN_LEN_RANGE),
    N(CKR_PIN_LOCKED),
    N(CKR_PIN_TOO_WEAK),
    N(CKR_PUBLIC_KEY_INVALID),
    N(CKR_RANDOM_NO_RNG),
    N(CKR_RANDOM_SEED_NOT_SUPPORTED),
    N(CKR_SAVED_STATE_INVALID),
    N(CKR_SESSION_CLOSED),
    N(CKR_SESSION_COUNT),
    N(CKR_SESSION_EXISTS),
    N(CKR_SESSION_HANDLE_INVALID),
    N(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    N(CKR_SESSION_READ_ONLY),
    N(CKR_SESSION_READ_ONLY_EXISTS),
    N(CKR_SESSION_READ_WRITE_SO_EXISTS),
    N(CKR_SIGNATURE_INVALID),
    N(CKR_SIGNATURE_LEN_RANGE),
    N(CKR_SLOT_ID_INVALID),
    N(CKR_STATE_UNSAVEABLE),
    N(CKR_TEMPLATE_INCOMPLETE),
    N(CKR_TEMPLATE_INCONSISTENT),
    N(CKR_TOKEN_NOT_PRESENT),
    N(CKR_TOKEN_NOT_RECOGNIZED),
    N(CKR_TOKEN_WRITE_PROTECTED),
    N(CKR_UNWRAPPING_KEY_SIZE_RANGE),
    N(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    N(CKR_USER_ALREADY_LOGGED_IN),
    N(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    N(CKR_USER_NOT_LOGGED_IN),
    N(CKR_USER_PIN_NOT_INITIALIZED),
    N(CKR_USER_TOO_MANY_TYPES),
    N(CKR_USER_TYPE_INVALID),
    N(CKR_WRAPPED_KEY_INVALID),
    N(CKR_WRAPPED_KEY_LEN_RANGE),
    N(CKR_WRAPPING_KEY_HANDLE_INVALID),
    N(CKR_WRAPPING_KEY_SIZE_RANGE),
    N(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
#undef N
};

const char *
cx_p11_ckr_name(CK_RV rv, char *buf, size_t buflen)
{
	size_t i;

	for (i = 0; i < sizeof(ckr_names) / sizeof(ckr_names[0]); i++)
		if (ckr_names[i].rv == rv)
			return ckr_names[i].name;
	if (rv >= CKR_VENDOR_DEFINED)
		snprintf(buf, buflen, "CKR_VENDOR_DEFINED+0x%lx",
		    (unsigned long)(rv - CKR_VENDOR_DEFINED));
	else
		snprintf(buf, buflen, "CKR_0x%lx", (unsigned long)rv);
	return buf;
}

int
cx_p11_rv_code(CK_RV rv)
{
	switch (rv) {
	case CKR_OK:
		return 0;
	/* the token or our session on it is gone: the caller reopens later */
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
	case CKR_DEVICE_ERROR:
	case CKR_SLOT_ID_INVALID:
		return CX_P11_ABSENT;
	case CKR_USER_NOT_LOGGED_IN:
		return CX_P11_PIN_REQUIRED;
	/* a PIN the token refused on sight is as wrong as one that failed the check */
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		return CX_P11_PIN_INCORRECT;
	case CKR_PIN_LOCKED:
		return CX_P11_PIN_LOCKED;
	case CKR_KEY_HANDLE_INVALID:
	case CKR_OBJECT_HANDLE_INVALID:
		return CX_P11_KEY_ABSENT;
	case CKR_HOST_MEMORY:
		return CX_ENOMEM;
	default:
		return CX_P11_TOKEN_ERROR;
	}
}

const char *
cx_p11_printable(const char *s, char *out, size_t outlen)
{
	size_t i;

	if (outlen == 0)
		return "";
	if (s == NULL)
		s = "";
	/* token strings and labels come from the device: keep them out of log syntax */
	for (i = 0; s[i] != '\0' && i + 1 < outlen; i++)
		out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	out[i] = '\0';
	return out;
}

int
cx_p11_fail(
    struct cx_p11_token *t, const char *keylabel, const char *fn, CK_RV rv, struct cx_err *e)
{
	char nbuf[48], lbuf[64], kbuf[160];
	int code = cx_p11_rv_code(rv);
	const char *name = cx_p11_ckr_name(rv, nbuf, sizeof(nbuf));

	if (code == CX_P11_ABSENT && t != NULL) {
		t->lost = 1;
		cx_p11_key_cache_clear(t);
	}
	if (t == NULL)
		return cx_err_set(e, code, "%s: %s", fn, name);
	cx_p11_printable(t->info.label, lbuf, sizeof(lbuf));
	if (keylabel != NULL)
		return cx_err_set(e, code, "token \"%s\" (serial %s): key \"%s\": %s: %s", lbuf,
		    t->info.serial, cx_p11_printable(keylabel, kbuf, sizeof(kbuf)), fn, name);
	return cx_err_set(
	    e, code, "token \"%s\" (serial %s): %s: %s", lbuf, t->info.serial, fn, name);
}
