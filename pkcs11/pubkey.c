/*
 * Public keys from Cryptoki attribute values, and their conex key strings.
 *
 * CKA_EC_PARAMS for Ed25519 comes in two encodings and both are accepted:
 * the RFC 8410 OID 1.3.101.112 (06 03 2B 65 70: softhsm2-util --import,
 * newer OpenSC) and the PKCS#11 3.0 PrintableString "edwards25519"
 * (13 0C ...: SoftHSM's and pkcs11-tool 0.23's generation).  CKA_EC_POINT
 * comes DER-wrapped in an OCTET STRING (the standard: SoftHSM generation,
 * OpenSC) or raw (softhsm2-util --import of Ed25519); the lengths tell them
 * apart, since the raw forms have a fixed size.
 *
 * ECDSA P-256 has no conex key format: its key string is
 * "ecdsa-p256=<base64 of the 65-byte uncompressed point>", which only the
 * agent uses (to name and pick keys); conex files cannot carry it.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "conex/crypto.h"
#include "pkcs11/internal.h"

static const uint8_t oid_p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t oid_ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
static const uint8_t ps_ed25519[] = {
    0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};

#define P256_POINT_LEN 65 /* 04 || X || Y */
#define ED25519_LEN    32

int
cx_p11_ec_params_alg(const uint8_t *p, size_t n)
{
	if (p == NULL)
		return 0;
	if (n == sizeof(oid_p256) && memcmp(p, oid_p256, n) == 0)
		return CX_P11_ECDSA_P256;
	if ((n == sizeof(oid_ed25519) && memcmp(p, oid_ed25519, n) == 0) ||
	    (n == sizeof(ps_ed25519) && memcmp(p, ps_ed25519, n) == 0))
		return CX_P11_ED25519;
	return 0;
}

const uint8_t *
cx_p11_ec_params_der(enum cx_p11_alg alg, int printable, size_t *n)
{
	if (alg == CX_P11_ECDSA_P256) {
		*n = sizeof(oid_p256);
		return oid_p256;
	}
	if (printable) {
		*n = sizeof(ps_ed25519);
		return ps_ed25519;
	}
	*n = sizeof(oid_ed25519);
	return oid_ed25519;
}

static int
ossl_fail(struct cx_err *e, int code, const char *what)
{
	unsigned long err = ERR_get_error();
	char buf[256] = "no OpenSSL error";

	if (err != 0)
		ERR_error_string_n(err, buf, sizeof(buf));
	ERR_clear_error();
	return cx_err_set(e, code, "%s: %s", what, buf);
}

static int
fromdata(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out, struct cx_err *e)
{
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	int r = 0;

	*out = NULL;
	if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
	    (ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		*out = NULL;
		r = ossl_fail(e, CX_ECRYPTO, "public key not accepted by OpenSSL");
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return r;
}

int
cx_p11_pub_rsa(const uint8_t *mod, size_t modlen, const uint8_t *exp, size_t explen, EVP_PKEY **out,
    struct cx_err *e)
{
	OSSL_PARAM_BLD *bld = NULL;
	BIGNUM *n = NULL, *x = NULL;
	int r;

	*out = NULL;
	/* 8192 bits is the most a signature buffer of CX_P11_MAX_SIG holds */
	if (mod == NULL || exp == NULL || modlen == 0 || explen == 0 || modlen > CX_P11_MAX_SIG ||
	    explen > 16)
		return cx_err_set(e, CX_EUNSUPPORTED,
		    "RSA modulus (%zu bytes) or exponent (%zu) out of range", modlen, explen);
	if ((n = BN_bin2bn(mod, (int)modlen, NULL)) == NULL ||
	    (x = BN_bin2bn(exp, (int)explen, NULL)) == NULL ||
	    (bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, x) != 1)
		r = ossl_fail(e, CX_ENOMEM, "RSA public key");
	else
		r = fromdata("RSA", bld, out, e);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(x);
	return r;
}

/* The point inside its DER OCTET STRING, or the raw point, by the lengths each form has. */
static int
unwrap_point(const uint8_t *p, size_t n, size_t rawlen, const uint8_t **pt)
{
	if (n == rawlen) {
		*pt = p;
		return 0;
	}
	if (n == rawlen + 2 && rawlen < 0x80 && p[0] == 0x04 && p[1] == rawlen) {
		*pt = p + 2;
		return 0;
	}
	return -1;
}

int
cx_p11_pub_ec(enum cx_p11_alg alg, const uint8_t *point, size_t n, EVP_PKEY **out, struct cx_err *e)
{
	OSSL_PARAM_BLD *bld;
	const uint8_t *pt;
	int r;

	*out = NULL;
	if (point == NULL)
		return cx_err_set(e, CX_EUNSUPPORTED, "no CKA_EC_POINT");
	if (alg == CX_P11_ED25519) {
		if (unwrap_point(point, n, ED25519_LEN, &pt) != 0)
			return cx_err_set(e, CX_EPARSE, "Ed25519 CKA_EC_POINT of %zu bytes", n);
		if ((*out = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pt, ED25519_LEN)) ==
		    NULL)
			return ossl_fail(e, CX_ECRYPTO, "Ed25519 public key");
		return 0;
	}
	/* P-256: uncompressed (65) or compressed (33) point, raw or wrapped */
	if (unwrap_point(point, n, P256_POINT_LEN, &pt) == 0)
		n = P256_POINT_LEN;
	else if (unwrap_point(point, n, 33, &pt) == 0)
		n = 33;
	else
		return cx_err_set(e, CX_EPARSE, "P-256 CKA_EC_POINT of %zu bytes", n);
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
	        1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, n) != 1)
		r = ossl_fail(e, CX_ENOMEM, "P-256 public key");
	else
		r = fromdata("EC", bld, out, e); /* OpenSSL checks the point is on the curve */
	OSSL_PARAM_BLD_free(bld);
	return r;
}

int
cx_p11_keystr(EVP_PKEY *k, enum cx_p11_alg alg, char **keystr, size_t *len, struct cx_err *e)
{
	uint8_t pt[P256_POINT_LEN];
	struct cx_buf b;
	size_t ptlen = 0;
	int r;

	*keystr = NULL;
	*len = 0;
	cx_buf_init(&b, 64 * 1024);
	if (alg == CX_P11_ECDSA_P256) {
		/* the encoded public key is uncompressed unless asked otherwise */
		if (EVP_PKEY_get_octet_string_param(
		        k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &ptlen) != 1 ||
		    ptlen != sizeof(pt) || pt[0] != 0x04) {
			cx_buf_free(&b);
			return ossl_fail(e, CX_ECRYPTO, "P-256 point encoding");
		}
		if ((r = cx_buf_put_str(&b, "ecdsa-p256=")) != 0 ||
		    (r = cx_b64_encode(pt, ptlen, &b)) != 0) {
			cx_buf_free(&b);
			return cx_err_set(e, r, "cannot store key string");
		}
	} else if ((r = cx_pubkey_string(k, &b, e)) != 0) {
		cx_buf_free(&b);
		return r;
	}
	if ((*keystr = cx_buf_steal_str(&b, len)) == NULL) {
		cx_buf_free(&b);
		return cx_err_set(e, CX_ENOMEM, "cannot store key string");
	}
	cx_buf_free(&b);
	return 0;
}
