/*
 * Key pair generation on the token.
 *
 * The private key never leaves the token: CKA_SENSITIVE true, CKA_EXTRACTABLE
 * false, CKA_TOKEN and CKA_PRIVATE true.  CKA_ID is 16 fresh random bytes
 * from the host, so two keys with one label stay apart.
 *
 * Ed25519's CKA_EC_PARAMS is sent as the OID 1.3.101.112 first and, where
 * the module refuses that, as the PrintableString "edwards25519": SoftHSM
 * 2.6.1 takes both; PKCS#11 3.0 allows both and tokens differ.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "pkcs11/internal.h"
#include "pkcs11/remote.h"

#define CX_P11_ID_LEN 16

static int
params_refused(CK_RV rv)
{
	return rv == CKR_ATTRIBUTE_VALUE_INVALID || rv == CKR_TEMPLATE_INCONSISTENT ||
	    rv == CKR_DOMAIN_PARAMS_INVALID || rv == CKR_CURVE_NOT_SUPPORTED;
}

int
cx_p11_token_generate(struct cx_p11_token *t, const char *label, enum cx_p11_alg alg, int bits,
    struct cx_p11_key *out, struct cx_err *e)
{
	static const CK_BYTE f4[] = {0x01, 0x00, 0x01};
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_OBJECT_CLASS pubcls = CKO_PUBLIC_KEY, privcls = CKO_PRIVATE_KEY;
	CK_ULONG modbits = (CK_ULONG)bits;
	CK_BYTE id[CX_P11_ID_LEN];
	CK_MECHANISM m = {0, NULL, 0};
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
	CK_KEY_TYPE kt;
	CK_ATTRIBUTE pubt[8], privt[10];
	CK_ULONG npub = 0, npriv = 0, labellen;
	const uint8_t *params = NULL;
	size_t paramslen = 0;
	char lb[160];
	CK_RV rv;
	int r, printable = 0;
	if (t->r != NULL)
		return cx_p11r_generate(t, label, alg, bits, out, e);

	memset(out, 0, sizeof(*out));
	if (label == NULL || (labellen = strlen(label)) == 0 || labellen > 255)
		return cx_err_set(e, CX_EINVAL, "key label must be 1..255 bytes");
	cx_p11_printable(label, lb, sizeof(lb));
	switch (alg) {
	case CX_P11_RSA:
		if (bits < 2048 || bits > 4096 || bits % 8 != 0)
			return cx_err_set(
			    e, CX_EINVAL, "key \"%s\": RSA bits %d not in 2048..4096", lb, bits);
		m.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		kt = CKK_RSA;
		break;
	case CX_P11_ED25519:
		if (bits != 0 && bits != 255 && bits != 256)
			return cx_err_set(
			    e, CX_EINVAL, "key \"%s\": Ed25519 has no size %d", lb, bits);
		m.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		kt = CKK_EC_EDWARDS;
		break;
	case CX_P11_ECDSA_P256:
		if (bits != 0 && bits != 256)
			return cx_err_set(
			    e, CX_EINVAL, "key \"%s\": P-256 has no size %d", lb, bits);
		m.mechanism = CKM_EC_KEY_PAIR_GEN;
		kt = CKK_EC;
		break;
	default:
		return cx_err_set(e, CX_EINVAL, "key \"%s\": unknown algorithm %d", lb, (int)alg);
	}
	if (t->lost)
		return cx_p11_fail(
		    t, label, "C_GenerateKeyPair (not sent)", CKR_SESSION_HANDLE_INVALID, e);
	if (RAND_bytes(id, sizeof(id)) != 1)
		return cx_err_set(e, CX_ECRYPTO, "key \"%s\": no random bytes for CKA_ID", lb);

again:
	npub = npriv = 0;
#define A(t, n, typ, p, len)                              \
	do {                                              \
		(t)[(n)].type = (typ);                    \
		(t)[(n)].pValue = (void *)(uintptr_t)(p); \
		(t)[(n)].ulValueLen = (len);              \
		(n)++;                                    \
	} while (0)
	A(pubt, npub, CKA_CLASS, &pubcls, sizeof(pubcls));
	A(pubt, npub, CKA_KEY_TYPE, &kt, sizeof(kt));
	A(pubt, npub, CKA_TOKEN, &yes, sizeof(yes));
	A(pubt, npub, CKA_VERIFY, &yes, sizeof(yes));
	A(pubt, npub, CKA_LABEL, label, labellen);
	A(pubt, npub, CKA_ID, id, sizeof(id));
	if (alg == CX_P11_RSA) {
		A(pubt, npub, CKA_MODULUS_BITS, &modbits, sizeof(modbits));
		A(pubt, npub, CKA_PUBLIC_EXPONENT, f4, sizeof(f4));
	} else {
		params = cx_p11_ec_params_der(alg, printable, &paramslen);
		A(pubt, npub, CKA_EC_PARAMS, params, paramslen);
	}
	A(privt, npriv, CKA_CLASS, &privcls, sizeof(privcls));
	A(privt, npriv, CKA_KEY_TYPE, &kt, sizeof(kt));
	A(privt, npriv, CKA_TOKEN, &yes, sizeof(yes));
	A(privt, npriv, CKA_PRIVATE, &yes, sizeof(yes));
	A(privt, npriv, CKA_SENSITIVE, &yes, sizeof(yes));
	A(privt, npriv, CKA_EXTRACTABLE, &no, sizeof(no));
	A(privt, npriv, CKA_SIGN, &yes, sizeof(yes));
	A(privt, npriv, CKA_LABEL, label, labellen);
	A(privt, npriv, CKA_ID, id, sizeof(id));
#undef A

	rv = t->f->C_GenerateKeyPair(t->s, &m, pubt, npub, privt, npriv, &pub, &priv);
	if (alg == CX_P11_ED25519 && !printable && params_refused(rv)) {
		printable = 1;
		goto again;
	}
	if (rv != CKR_OK)
		return cx_p11_fail(t, label, "C_GenerateKeyPair", rv, e);
	if ((r = cx_p11_key_from_object(t, priv, out, e)) != 0) {
		/* a key we cannot list is of no use: do not leave it behind */
		t->f->C_DestroyObject(t->s, priv);
		t->f->C_DestroyObject(t->s, pub);
		return r == CX_EUNSUPPORTED || r == CX_EPARSE || r == CX_ECRYPTO
		    ? cx_err_prefix(e, "new key unreadable")
		    : r;
	}
	return 0;
}
