/*
 * Private to pkcs11/: the module and token structures and the helpers that
 * the files of the directory share.  Nothing outside pkcs11/ includes this
 * except tests/unit/test_pkcs11.c, which swaps function-list entries to count
 * and fake Cryptoki calls.
 */
#ifndef CX_PKCS11_INTERNAL_H
#define CX_PKCS11_INTERNAL_H

#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <pthread.h>
#include <p11-kit/pkcs11.h>

#include "pkcs11/token.h"

/* PKCS#11 3.0 names that older headers lack. */
#ifndef CKK_EC_EDWARDS
#define CKK_EC_EDWARDS 0x40UL
#endif
#ifndef CKM_EC_EDWARDS_KEY_PAIR_GEN
#define CKM_EC_EDWARDS_KEY_PAIR_GEN 0x1055UL
#endif
#ifndef CKM_EDDSA
#define CKM_EDDSA 0x1057UL
#endif

/* Caps on what a token may hand us: every length read from it is checked. */
#define CX_P11_MAX_SLOTS   1024 /* C_GetSlotList */
#define CX_P11_MAX_OBJECTS 4096 /* private keys listed on one token */
#define CX_P11_MAX_ATTR    4096 /* any one attribute value (RSA-16384 modulus is 2048) */
#define CX_P11_MAX_SIG     1024 /* signature bytes: RSA up to 8192 bits */
#define CX_P11_MAX_PIN     256  /* PIN bytes passed to C_Login */
#define CX_P11_KEY_CACHE   8    /* private key handles remembered per session */

struct cx_p11_module {
	CK_FUNCTION_LIST *f;
	char *path; /* realpath of the loaded file */
	/*
	 * cx_p11_module_load_helper: f is NULL, the module is loaded only in
	 * helper processes: scan answers slot and token queries, and each
	 * token opened gets a helper of its own.
	 */
	char *helper;
	const atomic_int *busy;
	struct cx_p11_remote *scan;
	pthread_mutex_t scan_mu;
};

struct cx_p11_token {
	struct cx_p11_module *m;
	CK_FUNCTION_LIST *f; /* m->f, or a test's wrapper */
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s;
	struct cx_p11_remote *r; /* non-NULL: the session lives in a helper (remote.h) */
	int lost;                /* the session is gone (device removed...): reopen */
	int pss_mech;            /* CKM_SHA256_RSA_PKCS_PSS can sign: -1 not asked yet, 0, 1 */
	struct cx_p11_token_info info;
	/*
	 * Private key handles found by sign.c, by conex key id: finding a key
	 * (C_FindObjects, its attributes, its public key re-encoded to compare
	 * key ids) cost more than a third of a SoftHSM signature.  Handles are
	 * per session; emptied whenever the session or its login changes.
	 */
	struct {
		uint8_t keyid[32];
		CK_OBJECT_HANDLE h;
	} kc[CX_P11_KEY_CACHE];
	size_t nkc, kcnext;
};

/*
 * Does t (its info just read again) still hold the token that old describes
 * (serial, label, manufacturer, model)?  0, or CX_P11_ABSENT naming both.
 */
int cx_p11_same_token(
    const struct cx_p11_token *t, const struct cx_p11_token_info *old, struct cx_err *e);

/* Forgets every cached key handle (new session, logout, lost token). */
void cx_p11_key_cache_clear(struct cx_p11_token *t);
/* A token of m at slot with nothing open yet (calloc'ed, freed with free). */
int cx_p11_token_alloc(
    struct cx_p11_module *m, unsigned long slot, struct cx_p11_token **out, struct cx_err *e);

/* "CKR_PIN_INCORRECT", or "CKR_0x..." for a code not in the table (static buffer-free: caller's buf). */
const char *cx_p11_ckr_name(CK_RV rv, char *buf, size_t buflen);
/* The cx_p11_rc / cx_code a CK_RV maps to. */
int cx_p11_rv_code(CK_RV rv);
/*
 * Sets e for a failed Cryptoki call on t: the message names the token (label
 * and serial), the key label (if any), the function and the CKR_ name.  Marks
 * t lost when rv means the session or device is gone.  Returns the code.
 */
int cx_p11_fail(
    struct cx_p11_token *t, const char *keylabel, const char *fn, CK_RV rv, struct cx_err *e);
/* Copies s for a message: control bytes become '?', truncated to outlen - 1. */
const char *cx_p11_printable(const char *s, char *out, size_t outlen);

/* CK_TOKEN_INFO to our form: blank-padding removed, control bytes replaced. */
void cx_p11_info_from_ck(CK_SLOT_ID slot, const CK_TOKEN_INFO *ck, struct cx_p11_token_info *out);
/* And back, blank-padded, for p11-kit's URI matcher. */
void cx_p11_info_to_ck(const struct cx_p11_token_info *ti, CK_TOKEN_INFO *ck);

/*
 * Reads one attribute into a fresh malloc'ed buffer (NUL-terminated one past
 * the value, so labels can be used as strings).  *val is NULL and *len 0 when
 * the object lacks it or it is sensitive: returns 0 then too.  Values longer
 * than CX_P11_MAX_ATTR are CX_ETOOBIG.
 */
int cx_p11_attr_get(struct cx_p11_token *t, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    uint8_t **val, size_t *len, struct cx_err *e);
/* A CK_ULONG / CK_BBOOL attribute; *present says whether the object has it. */
int cx_p11_attr_ulong(struct cx_p11_token *t, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
    CK_ULONG *v, int *present, struct cx_err *e);
int cx_p11_attr_bool(struct cx_p11_token *t, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, int *v,
    int *present, struct cx_err *e);

/*
 * Objects matching the template, at most max of them; *objs is malloc'ed.
 * Always ends the search with C_FindObjectsFinal.
 */
int cx_p11_find(struct cx_p11_token *t, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl, size_t max,
    CK_OBJECT_HANDLE **objs, size_t *n, struct cx_err *e);

/*
 * Fills k (label, CKA_ID, alg, bits, keystr, keyid, flags, uri) from a private
 * key object.  CX_EUNSUPPORTED when the key type or curve is not ours or no
 * public half can be read: the caller skips such keys.
 */
int cx_p11_key_from_object(
    struct cx_p11_token *t, CK_OBJECT_HANDLE priv, struct cx_p11_key *k, struct cx_err *e);
void cx_p11_key_clear(struct cx_p11_key *k);

/* pubkey.c: CKA_EC_PARAMS to CX_P11_ED25519 / CX_P11_ECDSA_P256, 0 for other curves. */
int cx_p11_ec_params_alg(const uint8_t *p, size_t n);
/* The CKA_EC_PARAMS we send: P-256 OID; Ed25519 OID or (printable) "edwards25519". */
const uint8_t *cx_p11_ec_params_der(enum cx_p11_alg alg, int printable, size_t *n);
int cx_p11_pub_rsa(const uint8_t *mod, size_t modlen, const uint8_t *exp, size_t explen,
    EVP_PKEY **out, struct cx_err *e);
/* CKA_EC_POINT, DER-wrapped or raw. */
int cx_p11_pub_ec(
    enum cx_p11_alg alg, const uint8_t *point, size_t n, EVP_PKEY **out, struct cx_err *e);
/* conex key string (or "ecdsa-p256=..." for P-256), malloc'ed and NUL-terminated. */
int cx_p11_keystr(EVP_PKEY *k, enum cx_p11_alg alg, char **keystr, size_t *len, struct cx_err *e);

/* The session is logged in as the user (or the token needs no login). */
int cx_p11_session_user(struct cx_p11_token *t, int *user, struct cx_err *e);

/* RFC 7512 URI of a private key, malloc'ed. */
int cx_p11_uri_build(
    const struct cx_p11_token_info *ti, const struct cx_p11_key *k, char **out, struct cx_err *e);

#endif
