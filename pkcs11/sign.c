/*
 * Signing with a token key.
 *
 * The key is found by class, key type and CKA_ID, and its public half must
 * give the key id the caller holds: a key replaced under the same CKA_ID is
 * reported gone (CX_P11_KEY_ABSENT) instead of signing with a key the caller
 * did not choose.  The handle found is cached in the token (one session, one
 * thread) by key id; a cached handle is checked with one C_GetAttributeValue
 * (class, key type, CKA_ID) before each use, and a handle the token rejects
 * (CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID) is dropped and the key
 * found afresh, once.  The cache goes with the session, a logout or a lost
 * token.  What the check cannot see is a key deleted and another created
 * with the same CKA_ID and the same handle number within one session; the
 * agent's own session never deletes keys.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>

#include "conex/crypto.h"
#include "pkcs11/internal.h"
#include "pkcs11/remote.h"

/* Any failure of C_Sign other than CKR_BUFFER_TOO_SMALL ends the operation. */
static void
sign_abort(struct cx_p11_token *t)
{
	uint8_t junk[CX_P11_MAX_SIG];
	CK_ULONG len = sizeof(junk);
	uint8_t one = 0;

	/*
	 * Only reached when the context-specific login failed or was not
	 * possible, so the token refuses to sign: the call just ends the
	 * operation that C_SignInit started, which would otherwise block the
	 * session (PKCS#11 2.40 has no other way to cancel it).
	 */
	(void)t->f->C_Sign(t->s, &one, 1, junk, &len);
	OPENSSL_cleanse(junk, sizeof(junk));
}

/* Does the token sign with CKM_SHA256_RSA_PKCS_PSS?  Asked once per session. */
static int
have_pss_sha256(struct cx_p11_token *t)
{
	CK_MECHANISM_INFO mi;

	if (t->pss_mech < 0) {
		memset(&mi, 0, sizeof(mi));
		t->pss_mech =
		    t->f->C_GetMechanismInfo(t->slot, CKM_SHA256_RSA_PKCS_PSS, &mi) == CKR_OK &&
		    (mi.flags & CKF_SIGN) != 0;
	}
	return t->pss_mech;
}

void
cx_p11_key_cache_clear(struct cx_p11_token *t)
{
	t->nkc = 0;
	t->kcnext = 0;
}

static void
cache_drop(struct cx_p11_token *t, const uint8_t keyid[32])
{
	for (size_t i = 0; i < t->nkc; i++)
		if (memcmp(t->kc[i].keyid, keyid, 32) == 0) {
			t->kc[i] = t->kc[--t->nkc];
			t->kcnext = t->nkc;
			return;
		}
}

static void
cache_put(struct cx_p11_token *t, const uint8_t keyid[32], CK_OBJECT_HANDLE h)
{
	size_t i;

	cache_drop(t, keyid);
	if (t->nkc < CX_P11_KEY_CACHE)
		i = t->nkc++;
	else
		i = t->kcnext;
	memcpy(t->kc[i].keyid, keyid, 32);
	t->kc[i].h = h;
	/* full: replace round-robin (a token with more keys than this signs with few) */
	t->kcnext = t->nkc < CX_P11_KEY_CACHE ? t->nkc : (i + 1) % CX_P11_KEY_CACHE;
}

/*
 * The cached handle of k, if it still names a private key of k's type with
 * k's CKA_ID.  0 and *out, or -1 (not cached, or stale: dropped).
 */
static int
cache_get(struct cx_p11_token *t, const struct cx_p11_key *k, CK_KEY_TYPE kt, CK_OBJECT_HANDLE *out)
{
	CK_OBJECT_CLASS cls = 0;
	CK_KEY_TYPE ktype = 0;
	uint8_t id[64];
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_KEY_TYPE, &ktype, sizeof(ktype)},
	    {CKA_ID, id, sizeof(id)},
	};
	size_t i;

	for (i = 0; i < t->nkc; i++)
		if (memcmp(t->kc[i].keyid, k->keyid, 32) == 0)
			break;
	if (i == t->nkc)
		return -1;
	if (t->f->C_GetAttributeValue(t->s, t->kc[i].h, tmpl, 3) != CKR_OK ||
	    cls != CKO_PRIVATE_KEY || ktype != kt || tmpl[2].ulValueLen != k->ckaidlen ||
	    (k->ckaidlen > 0 && memcmp(id, k->ckaid, k->ckaidlen) != 0)) {
		/* any doubt: the full search decides (and reports a lost token properly) */
		cache_drop(t, k->keyid);
		return -1;
	}
	*out = t->kc[i].h;
	return 0;
}

static CK_KEY_TYPE
key_type(const struct cx_p11_key *k)
{
	return k->alg == CX_P11_RSA ? CKK_RSA : k->alg == CX_P11_ED25519 ? CKK_EC_EDWARDS : CKK_EC;
}

/* The private key object of k, checked against k's key id. */
static int
find_key(
    struct cx_p11_token *t, const struct cx_p11_key *k, CK_OBJECT_HANDLE *out, struct cx_err *e)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE kt = key_type(k);
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_KEY_TYPE, &kt, sizeof(kt)},
	    {CKA_ID, k->ckaid, k->ckaidlen},
	};
	struct cx_p11_key cur;
	CK_OBJECT_HANDLE *objs;
	char kl[160];
	size_t n, i;
	int r, user;

	if (cache_get(t, k, kt, out) == 0)
		return 0;
	if ((r = cx_p11_find(t, tmpl, 3, 8, &objs, &n, e)) != 0)
		return r;
	for (i = 0; i < n; i++) {
		r = cx_p11_key_from_object(t, objs[i], &cur, e);
		if (r == CX_P11_ABSENT || r == CX_ENOMEM || r == CX_P11_TOKEN_ERROR) {
			free(objs);
			return r;
		}
		if (r == 0 && memcmp(cur.keyid, k->keyid, sizeof(k->keyid)) == 0) {
			*out = objs[i];
			cache_put(t, k->keyid, objs[i]);
			cx_p11_key_clear(&cur);
			free(objs);
			return 0;
		}
		if (r == 0)
			cx_p11_key_clear(&cur);
	}
	free(objs);
	/* private objects are invisible before login on most tokens */
	if ((r = cx_p11_session_user(t, &user, e)) != 0)
		return r;
	if (!user && t->info.login_required)
		return cx_p11_fail(t, k->label, "C_FindObjects", CKR_USER_NOT_LOGGED_IN, e);
	return cx_err_set(e, CX_P11_KEY_ABSENT,
	    "token \"%s\" (serial %s): key \"%s\" is not on the token%s", t->info.label,
	    t->info.serial, cx_p11_printable(k->label, kl, sizeof(kl)),
	    n > 0 ? " (a different key has its CKA_ID)" : "");
}

/* r || s, each 32 bytes, to the DER ECDSA-Sig-Value that OpenSSL and X.509 use. */
static int
ecdsa_der(const uint8_t *raw, size_t n, struct cx_buf *sig, struct cx_err *e)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *der = NULL;
	int len, rc;

	if (n != 64)
		return cx_err_set(e, CX_ECRYPTO, "P-256 signature of %zu bytes, not 64", n);
	if ((r = BN_bin2bn(raw, 32, NULL)) == NULL || (s = BN_bin2bn(raw + 32, 32, NULL)) == NULL ||
	    (es = ECDSA_SIG_new()) == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	}
	/* es owns r and s now */
	if ((len = i2d_ECDSA_SIG(es, &der)) <= 0) {
		ECDSA_SIG_free(es);
		return cx_err_set(e, CX_ECRYPTO, "cannot encode ECDSA signature");
	}
	rc = cx_buf_put(sig, der, (size_t)len);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	if (rc != 0)
		return cx_err_set(e, rc, "cannot store signature");
	return 0;
}

int
cx_p11_token_sign_start(struct cx_p11_token *t, const struct cx_p11_key *k, enum cx_p11_mech mech,
    const uint8_t *data, size_t n, int *fd, struct cx_err *e)
{
	*fd = -1;
	if (t->r == NULL)
		return cx_err_set(
		    e, CX_EUNSUPPORTED, "an in-process token signs only in cx_p11_token_sign");
	return cx_p11r_sign_start(t, k, mech, data, n, fd, e);
}

int
cx_p11_token_sign_finish(struct cx_p11_token *t, struct cx_buf *sig, int *more, struct cx_err *e)
{
	*more = 0;
	if (t->r == NULL)
		return cx_err_set(e, CX_EUNSUPPORTED, "no signature was started");
	return cx_p11r_sign_finish(t, sig, more, e);
}

void
cx_p11_token_sign_abandon(struct cx_p11_token *t)
{
	if (t->r != NULL)
		cx_p11r_sign_abandon(t);
}

int
cx_p11_token_sign(struct cx_p11_token *t, const struct cx_p11_key *k, enum cx_p11_mech mech,
    const uint8_t *data, size_t n, const char *pin, size_t pinlen, struct cx_buf *sig,
    struct cx_err *e)
{
	CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
	CK_MECHANISM m = {0, NULL, 0};
	uint8_t hash[CX_SHA256_LEN], buf[CX_P11_MAX_SIG], *out = buf, *big = NULL, empty = 0;
	const uint8_t *src = data != NULL ? data : &empty, *in;
	CK_ULONG inlen = n, outlen = sizeof(buf);
	CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
	char kl[160];
	CK_RV rv;
	int r;
	if (t->r != NULL)
		return cx_p11r_sign(t, k, mech, data, n, pin, pinlen, sig, e);

	cx_p11_printable(k->label, kl, sizeof(kl));
	if ((mech == CX_P11_RSA_PSS_SHA256 && k->alg != CX_P11_RSA) ||
	    (mech == CX_P11_EDDSA && k->alg != CX_P11_ED25519) ||
	    (mech == CX_P11_ECDSA_SHA256 && k->alg != CX_P11_ECDSA_P256) ||
	    (mech != CX_P11_RSA_PSS_SHA256 && mech != CX_P11_EDDSA && mech != CX_P11_ECDSA_SHA256))
		return cx_err_set(
		    e, CX_EINVAL, "key \"%s\": mechanism %d does not fit the key", kl, (int)mech);
	if (data == NULL && n != 0)
		return cx_err_set(e, CX_EINVAL, "key \"%s\": no data", kl);
	if ((size_t)(CK_ULONG)n != n)
		return cx_err_set(e, CX_ETOOBIG, "key \"%s\": %zu bytes to sign", kl, n);
	/* some modules refuse a NULL pointer even with length 0 */
	in = src;
	if ((r = find_key(t, k, &key, e)) != 0)
		return r;
	if (k->always_auth) {
		/* the rules of cx_p11_token_login: one try, never the final one */
		if ((r = cx_p11_token_refresh(t, e)) != 0)
			return r;
		if (t->info.pin_locked)
			return cx_p11_fail(t, k->label, "C_Login(CKU_CONTEXT_SPECIFIC) (not sent)",
			    CKR_PIN_LOCKED, e);
		if (t->info.pin_final_try)
			return cx_err_set(e, CX_P11_PIN_FINAL_TRY,
			    "token \"%s\" (serial %s): key \"%s\": one PIN try left, a wrong PIN would "
			    "lock the token: not trying",
			    t->info.label, t->info.serial, kl);
		if (pin == NULL && !t->info.protected_path)
			return cx_err_set(e, CX_P11_PIN_REQUIRED,
			    "token \"%s\" (serial %s): key \"%s\" needs the PIN for every signature",
			    t->info.label, t->info.serial, kl);
		if (pin != NULL && (pinlen == 0 || pinlen > CX_P11_MAX_PIN))
			return cx_err_set(
			    e, CX_EINVAL, "key \"%s\": PIN length %zu out of range", kl, pinlen);
	}

	switch (mech) {
	case CX_P11_RSA_PSS_SHA256:
		m.pParameter = &pss;
		m.ulParameterLen = sizeof(pss);
		if (have_pss_sha256(t))
			m.mechanism = CKM_SHA256_RSA_PKCS_PSS;
		else {
			/* the token only pads: it gets the hash, the PSS parameters stay the same */
			cx_sha256(src, n, hash);
			m.mechanism = CKM_RSA_PKCS_PSS;
			in = hash;
			inlen = sizeof(hash);
		}
		break;
	case CX_P11_EDDSA:
		m.mechanism = CKM_EDDSA; /* no parameters: pure Ed25519, no context */
		break;
	case CX_P11_ECDSA_SHA256:
		cx_sha256(src, n, hash);
		m.mechanism = CKM_ECDSA;
		in = hash;
		inlen = sizeof(hash);
		break;
	}

	rv = t->f->C_SignInit(t->s, &m, key);
	if (rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_KEY_HANDLE_INVALID) {
		/* a cached handle gone stale (key deleted, object store reloaded): find it again, once */
		cache_drop(t, k->keyid);
		if ((r = find_key(t, k, &key, e)) != 0)
			return r;
		rv = t->f->C_SignInit(t->s, &m, key);
	}
	if (rv != CKR_OK)
		return cx_p11_fail(t, k->label, "C_SignInit", rv, e);
	if (k->always_auth) {
		rv = t->f->C_Login(t->s, CKU_CONTEXT_SPECIFIC, (CK_UTF8CHAR *)(uintptr_t)pin,
		    pin != NULL ? (CK_ULONG)pinlen : 0);
		if (rv != CKR_OK) {
			r = cx_p11_fail(t, k->label, "C_Login(CKU_CONTEXT_SPECIFIC)", rv, e);
			if (!t->lost)
				sign_abort(t);
			(void)cx_p11_token_refresh(t, NULL);
			return r;
		}
	}
	rv = t->f->C_Sign(t->s, (CK_BYTE *)(uintptr_t)in, inlen, out, &outlen);
	if (rv == CKR_BUFFER_TOO_SMALL) {
		/*
		 * No key we list makes a signature this long, but the operation
		 * stays active until C_Sign completes: finish it if the size is
		 * sane, else give up the session.
		 */
		if (outlen <= CX_P11_MAX_SIG || outlen > 64 * 1024 ||
		    (big = malloc(outlen)) == NULL) {
			t->lost = 1;
			return cx_err_set(e, CX_P11_TOKEN_ERROR,
			    "token \"%s\" (serial %s): key \"%s\": C_Sign wants %lu bytes: session "
			    "dropped",
			    t->info.label, t->info.serial, kl, (unsigned long)outlen);
		}
		out = big;
		rv = t->f->C_Sign(t->s, (CK_BYTE *)(uintptr_t)in, inlen, out, &outlen);
		if (rv == CKR_BUFFER_TOO_SMALL)
			t->lost = 1;
	}
	if (rv != CKR_OK) {
		free(big);
		return cx_p11_fail(t, k->label, "C_Sign", rv, e);
	}
	if (out == buf ? outlen > sizeof(buf) : outlen > 64 * 1024)
		r = cx_err_set(e, CX_P11_TOKEN_ERROR,
		    "token \"%s\" (serial %s): key \"%s\": C_Sign overran its buffer",
		    t->info.label, t->info.serial, kl);
	else if (mech == CX_P11_ECDSA_SHA256)
		r = ecdsa_der(out, outlen, sig, e);
	else if (mech == CX_P11_EDDSA && outlen != 64)
		r = cx_err_set(e, CX_ECRYPTO,
		    "token \"%s\" (serial %s): key \"%s\": Ed25519 signature of %lu bytes",
		    t->info.label, t->info.serial, kl, (unsigned long)outlen);
	else if ((r = cx_buf_put(sig, out, outlen)) != 0)
		r = cx_err_set(e, r, "cannot store signature");
	free(big);
	return r;
}
