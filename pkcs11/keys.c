/*
 * Object search, attribute reads, and the private keys of a token with their
 * public halves.
 *
 * The public half comes from the private key object where the token shows it
 * there (RSA's CKA_MODULUS and CKA_PUBLIC_EXPONENT are public attributes of
 * the private key; some tokens add CKA_EC_POINT) and otherwise from the one
 * CKO_PUBLIC_KEY with the same CKA_ID and key type.  Keys that cannot sign
 * (CKA_SIGN false), of other types or curves, or without a readable public
 * half are left out of the list.  Tokens such as SoftHSM hide CKA_PRIVATE
 * private keys until the user logs in, so the list can be empty before.
 */
#include <stdlib.h>
#include <string.h>

#include "conex/crypto.h"
#include "pkcs11/internal.h"
#include "pkcs11/remote.h"

int
cx_p11_attr_get(struct cx_p11_token *t, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, uint8_t **val,
    size_t *len, struct cx_err *e)
{
	CK_ATTRIBUTE a = {type, NULL, 0};
	CK_ULONG want;
	uint8_t *p;
	CK_RV rv;

	*val = NULL;
	*len = 0;
	rv = t->f->C_GetAttributeValue(t->s, o, &a, 1);
	if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID ||
	    (rv == CKR_OK && a.ulValueLen == CK_UNAVAILABLE_INFORMATION))
		return 0;
	if (rv != CKR_OK)
		return cx_p11_fail(t, NULL, "C_GetAttributeValue", rv, e);
	if (a.ulValueLen > CX_P11_MAX_ATTR)
		return cx_err_set(e, CX_ETOOBIG,
		    "token \"%s\" (serial %s): attribute 0x%lx of %lu bytes", t->info.label,
		    t->info.serial, (unsigned long)type, (unsigned long)a.ulValueLen);
	want = a.ulValueLen;
	/* one spare byte: a NUL after the value lets labels be used as strings */
	if ((p = calloc(1, (size_t)want + 1)) == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	a.pValue = p;
	rv = t->f->C_GetAttributeValue(t->s, o, &a, 1);
	if (rv != CKR_OK || a.ulValueLen > want) {
		free(p);
		if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL)
			return cx_err_set(e, CX_P11_TOKEN_ERROR,
			    "token \"%s\" (serial %s): attribute 0x%lx changed size while read",
			    t->info.label, t->info.serial, (unsigned long)type);
		return cx_p11_fail(t, NULL, "C_GetAttributeValue", rv, e);
	}
	p[a.ulValueLen] = '\0';
	*val = p;
	*len = a.ulValueLen;
	return 0;
}

int
cx_p11_attr_ulong(struct cx_p11_token *t, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, CK_ULONG *v,
    int *present, struct cx_err *e)
{
	CK_ATTRIBUTE a = {type, v, sizeof(*v)};
	CK_RV rv;

	*present = 0;
	*v = 0;
	rv = t->f->C_GetAttributeValue(t->s, o, &a, 1);
	if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID)
		return 0;
	if (rv != CKR_OK)
		return cx_p11_fail(t, NULL, "C_GetAttributeValue", rv, e);
	*present = a.ulValueLen == sizeof(*v);
	return 0;
}

int
cx_p11_attr_bool(struct cx_p11_token *t, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, int *v,
    int *present, struct cx_err *e)
{
	CK_BBOOL b = CK_FALSE;
	CK_ATTRIBUTE a = {type, &b, sizeof(b)};
	CK_RV rv;

	*present = 0;
	*v = 0;
	rv = t->f->C_GetAttributeValue(t->s, o, &a, 1);
	if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID)
		return 0;
	if (rv != CKR_OK)
		return cx_p11_fail(t, NULL, "C_GetAttributeValue", rv, e);
	if (a.ulValueLen == sizeof(b)) {
		*present = 1;
		*v = b != CK_FALSE;
	}
	return 0;
}

int
cx_p11_find(struct cx_p11_token *t, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl, size_t max,
    CK_OBJECT_HANDLE **objs, size_t *n, struct cx_err *e)
{
	CK_OBJECT_HANDLE *v = NULL, *nv;
	CK_ULONG got;
	size_t have = 0, want;
	CK_RV rv;
	int r = 0;

	*objs = NULL;
	*n = 0;
	if (t->lost)
		return cx_p11_fail(t, NULL, "session", CKR_SESSION_HANDLE_INVALID, e);
	if ((rv = t->f->C_FindObjectsInit(t->s, tmpl, ntmpl)) != CKR_OK)
		return cx_p11_fail(t, NULL, "C_FindObjectsInit", rv, e);
	while (have < max) {
		want = max - have < 64 ? max - have : 64;
		if ((nv = reallocarray(v, have + want, sizeof(*v))) == NULL) {
			r = cx_err_set(e, CX_ENOMEM, "out of memory");
			break;
		}
		v = nv;
		got = 0;
		if ((rv = t->f->C_FindObjects(t->s, v + have, want, &got)) != CKR_OK) {
			r = cx_p11_fail(t, NULL, "C_FindObjects", rv, e);
			break;
		}
		if (got > want) {
			r = cx_err_set(e, CX_P11_TOKEN_ERROR,
			    "token \"%s\" (serial %s): C_FindObjects returned more than asked",
			    t->info.label, t->info.serial);
			break;
		}
		if (got == 0)
			break;
		have += got;
	}
	/* always: an open search blocks every other operation of the session */
	if ((rv = t->f->C_FindObjectsFinal(t->s)) != CKR_OK && r == 0)
		r = cx_p11_fail(t, NULL, "C_FindObjectsFinal", rv, e);
	if (r != 0) {
		free(v);
		return r;
	}
	*objs = v;
	*n = have;
	return 0;
}

void
cx_p11_key_clear(struct cx_p11_key *k)
{
	free(k->label);
	free(k->ckaid);
	free(k->keystr);
	free(k->uri);
	memset(k, 0, sizeof(*k));
}

void
cx_p11_keys_free(struct cx_p11_key *keys, size_t n)
{
	size_t i;

	if (keys == NULL)
		return;
	for (i = 0; i < n; i++)
		cx_p11_key_clear(&keys[i]);
	free(keys);
}

/* The one public key object with this CKA_ID and type; CX_EUNSUPPORTED when none or several. */
static int
find_public(struct cx_p11_token *t, CK_KEY_TYPE kt, const uint8_t *id, size_t idlen,
    CK_OBJECT_HANDLE *pub, struct cx_err *e)
{
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_KEY_TYPE, &kt, sizeof(kt)},
	    {CKA_ID, (void *)(uintptr_t)id, idlen},
	};
	CK_OBJECT_HANDLE *objs;
	size_t n;
	int r;

	/* an empty CKA_ID would pair the key with any public key that has none */
	if (idlen == 0)
		return cx_err_set(e, CX_EUNSUPPORTED, "no CKA_ID to find the public key by");
	if ((r = cx_p11_find(t, tmpl, 3, 2, &objs, &n, e)) != 0)
		return r;
	if (n == 1)
		*pub = objs[0];
	free(objs);
	if (n != 1)
		return cx_err_set(e, CX_EUNSUPPORTED, "%s public key object with this CKA_ID",
		    n == 0 ? "no" : "more than one");
	return 0;
}

/* The public key of a private key object; *alg says which kind. */
static int
object_pubkey(struct cx_p11_token *t, CK_OBJECT_HANDLE priv, CK_KEY_TYPE kt, const uint8_t *id,
    size_t idlen, enum cx_p11_alg *alg, EVP_PKEY **pk, struct cx_err *e)
{
	uint8_t *a = NULL, *b = NULL, *pa = NULL;
	size_t alen = 0, blen = 0, palen = 0;
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE;
	int r, which;

	*pk = NULL;
	if (kt == CKK_RSA) {
		*alg = CX_P11_RSA;
		if ((r = cx_p11_attr_get(t, priv, CKA_MODULUS, &a, &alen, e)) != 0 ||
		    (r = cx_p11_attr_get(t, priv, CKA_PUBLIC_EXPONENT, &b, &blen, e)) != 0)
			goto out;
		if (a == NULL || b == NULL) {
			free(a);
			free(b);
			a = b = NULL;
			if ((r = find_public(t, kt, id, idlen, &pub, e)) != 0 ||
			    (r = cx_p11_attr_get(t, pub, CKA_MODULUS, &a, &alen, e)) != 0 ||
			    (r = cx_p11_attr_get(t, pub, CKA_PUBLIC_EXPONENT, &b, &blen, e)) != 0)
				goto out;
		}
		r = cx_p11_pub_rsa(a, alen, b, blen, pk, e);
		goto out;
	}
	if (kt != CKK_EC && kt != CKK_EC_EDWARDS) {
		r = cx_err_set(
		    e, CX_EUNSUPPORTED, "key type 0x%lx is not supported", (unsigned long)kt);
		goto out;
	}
	/* a = CKA_EC_PARAMS, b = CKA_EC_POINT: the private key's where it has them */
	if ((r = cx_p11_attr_get(t, priv, CKA_EC_PARAMS, &a, &alen, e)) != 0 ||
	    (r = cx_p11_attr_get(t, priv, CKA_EC_POINT, &b, &blen, e)) != 0)
		goto out;
	if (a == NULL || b == NULL) {
		if ((r = find_public(t, kt, id, idlen, &pub, e)) != 0 ||
		    (r = cx_p11_attr_get(t, pub, CKA_EC_PARAMS, &pa, &palen, e)) != 0)
			goto out;
		if (a != NULL && pa != NULL &&
		    cx_p11_ec_params_alg(a, alen) != cx_p11_ec_params_alg(pa, palen)) {
			r = cx_err_set(e, CX_EUNSUPPORTED, "public key is on another curve");
			goto out;
		}
		if (a == NULL) {
			a = pa;
			alen = palen;
			pa = NULL;
		}
		free(b);
		b = NULL;
		if ((r = cx_p11_attr_get(t, pub, CKA_EC_POINT, &b, &blen, e)) != 0)
			goto out;
	}
	which = cx_p11_ec_params_alg(a, alen);
	if ((kt == CKK_EC && which != CX_P11_ECDSA_P256) ||
	    (kt == CKK_EC_EDWARDS && which != CX_P11_ED25519)) {
		r = cx_err_set(
		    e, CX_EUNSUPPORTED, "curve not supported (CKA_EC_PARAMS of %zu bytes)", alen);
		goto out;
	}
	*alg = (enum cx_p11_alg)which;
	r = cx_p11_pub_ec(*alg, b, blen, pk, e);
out:
	free(a);
	free(b);
	free(pa);
	return r;
}

int
cx_p11_key_from_object(
    struct cx_p11_token *t, CK_OBJECT_HANDLE priv, struct cx_p11_key *k, struct cx_err *e)
{
	CK_ULONG kt;
	EVP_PKEY *pk = NULL;
	uint8_t *label = NULL;
	size_t labellen = 0, keylen;
	int r, present, sign, signp;

	memset(k, 0, sizeof(*k));
	if ((r = cx_p11_attr_ulong(t, priv, CKA_KEY_TYPE, &kt, &present, e)) != 0)
		return r;
	if (!present)
		return cx_err_set(e, CX_EUNSUPPORTED,
		    "token \"%s\" (serial %s): private key without CKA_KEY_TYPE", t->info.label,
		    t->info.serial);
	if ((r = cx_p11_attr_get(t, priv, CKA_LABEL, &label, &labellen, e)) != 0)
		return r;
	/* labels are strings to us: one with a NUL inside could name two keys alike */
	if (label != NULL && strlen((char *)label) != labellen) {
		free(label);
		return cx_err_set(e, CX_EUNSUPPORTED,
		    "token \"%s\" (serial %s): key label holds a NUL byte", t->info.label,
		    t->info.serial);
	}
	k->label = label != NULL ? (char *)label : strdup("");
	if (k->label == NULL)
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	if ((r = cx_p11_attr_get(t, priv, CKA_ID, &k->ckaid, &k->ckaidlen, e)) != 0 ||
	    (r = cx_p11_attr_bool(t, priv, CKA_SIGN, &sign, &signp, e)) != 0 ||
	    (r = cx_p11_attr_bool(
	         t, priv, CKA_ALWAYS_AUTHENTICATE, &k->always_auth, &present, e)) != 0 ||
	    (r = cx_p11_attr_bool(t, priv, CKA_SENSITIVE, &k->sensitive, &present, e)) != 0 ||
	    (r = cx_p11_attr_bool(t, priv, CKA_EXTRACTABLE, &k->extractable, &present, e)) != 0)
		goto fail;
	if (signp && !sign) {
		r = cx_err_set(e, CX_EUNSUPPORTED, "key cannot sign (CKA_SIGN false)");
		goto fail;
	}
	if ((r = object_pubkey(t, priv, kt, k->ckaid, k->ckaidlen, &k->alg, &pk, e)) != 0 ||
	    (r = cx_p11_keystr(pk, k->alg, &k->keystr, &keylen, e)) != 0)
		goto fail;
	cx_keyid(k->keystr, keylen, k->keyid);
	k->bits = k->alg == CX_P11_RSA ? EVP_PKEY_get_bits(pk)
	    : k->alg == CX_P11_ED25519 ? 255
	                               : 256;
	EVP_PKEY_free(pk);
	pk = NULL;
	if ((r = cx_p11_uri_build(&t->info, k, &k->uri, e)) != 0)
		goto fail;
	return 0;
fail:
	EVP_PKEY_free(pk);
	if (r != CX_P11_ABSENT && r != CX_ENOMEM && r != CX_P11_TOKEN_ERROR) {
		char lb[160];

		cx_err_prefix(e, "token \"%s\" (serial %s): key \"%s\"", t->info.label,
		    t->info.serial, cx_p11_printable(k->label, lb, sizeof(lb)));
	}
	cx_p11_key_clear(k);
	return r;
}

int
cx_p11_token_keys(struct cx_p11_token *t, struct cx_p11_key **keys, size_t *n, struct cx_err *e)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}};
	CK_OBJECT_HANDLE *objs;
	struct cx_p11_key *v;
	size_t nobj, i, have = 0;
	int r;
	if (t->r != NULL)
		return cx_p11r_keys(t, keys, n, e);

	*keys = NULL;
	*n = 0;
	if ((r = cx_p11_find(t, tmpl, 1, CX_P11_MAX_OBJECTS, &objs, &nobj, e)) != 0)
		return r;
	if (nobj == 0) {
		free(objs);
		return 0;
	}
	if ((v = calloc(nobj, sizeof(*v))) == NULL) {
		free(objs);
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	}
	for (i = 0; i < nobj; i++) {
		r = cx_p11_key_from_object(t, objs[i], &v[have], e);
		if (r == 0)
			have++;
		else if (r == CX_EUNSUPPORTED || r == CX_EPARSE || r == CX_ECRYPTO)
			continue; /* not a key we can use: leave it out */
		else {
			free(objs);
			cx_p11_keys_free(v, have);
			return r;
		}
	}
	free(objs);
	if (e != NULL) {
		/* a skipped key's message is no error of the call */
		e->code = 0;
		e->msg[0] = '\0';
	}
	if (have == 0) {
		free(v);
		return 0;
	}
	*keys = v;
	*n = have;
	return 0;
}
