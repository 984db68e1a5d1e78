/*
 * Hashes, hex, conex key strings and the two conex signature schemes
 * (conex-format.md sections 4.2, 4.3 and 5) on OpenSSL 3 EVP.
 *
 * Key strings are accepted only in the one spelling conex writes, because a
 * key id is the hash of that string: if two spellings of one key were both
 * accepted, one key could appear under two ids and be counted twice towards a
 * quorum.
 */
#include "conex/crypto.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define RSA_MIN_BITS 2048
/* OpenSSL refuses to verify with larger moduli (OPENSSL_RSA_MAX_MODULUS_BITS) */
#define RSA_MAX_BITS    16384
#define RSA_GEN_MAX     4096
#define PSS_SALT_LEN    32
#define ED25519_KEY_LEN 32
#define ED25519_SIG_LEN 64
/* an RSA-16384 key string is about 2.8 KB; anything far bigger is not a key */
#define KEYSTR_MAX (16u * 1024u)
#define PEM_COLS   64

static const char pem_begin[] = "-----BEGIN PUBLIC KEY-----\n";
static const char pem_end[] = "\n-----END PUBLIC KEY-----";

static int ossl_err(struct cx_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Sets e from fmt plus the first reason on OpenSSL's error queue, then empties
 * the queue so a later, unrelated failure does not report this one's reason.
 */
static int
ossl_err(struct cx_err *e, int code, const char *fmt, ...)
{
	char what[512], reason[256];
	const char *data = NULL;
	unsigned long l;
	va_list ap;
	int flags = 0;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* the oldest entry is the cause; later ones are callers reporting it */
	l = ERR_peek_error_data(&data, &flags);
	if (l == 0) {
		ERR_clear_error();
		return cx_err_set(e, code, "%s", what);
	}
	if (ERR_reason_error_string(l) != NULL)
		snprintf(reason, sizeof(reason), "%s", ERR_reason_error_string(l));
	else
		ERR_error_string_n(l, reason, sizeof(reason));
	if ((flags & ERR_TXT_STRING) != 0 && data != NULL && *data != '\0')
		cx_err_set(e, code, "%s: %s (%s)", what, reason, data);
	else
		cx_err_set(e, code, "%s: %s", what, reason);
	/* data points into the queue: clear only after it has been copied */
	ERR_clear_error();
	return code;
}

void
cx_sha256(const void *p, size_t n, uint8_t out[CX_SHA256_LEN])
{
	/*
	 * EVP_Digest fails only when OpenSSL cannot allocate a context.  No
	 * output would be safe for callers that compare digests, and the
	 * signature has no way to report failure, so stop.
	 */
	if (EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL) != 1)
		abort();
}

EVP_MD_CTX *
cx_sha256_begin(void)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		c = NULL;
	}
	return c;
}

void
cx_sha256_update(EVP_MD_CTX *c, const void *p, size_t n)
{
	/* as cx_sha256: no digest would be safe, and there is no way to report it */
	if (n != 0 && EVP_DigestUpdate(c, p, n) != 1)
		abort();
}

void
cx_sha256_end(EVP_MD_CTX *c, uint8_t out[CX_SHA256_LEN])
{
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(c, out, &n) != 1 || n != CX_SHA256_LEN)
		abort();
	EVP_MD_CTX_free(c);
}

void
cx_hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	/* uppercase is refused: conex compares digests bytewise (section 5) */
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
cx_hex_decode(const char *s, size_t slen, uint8_t *out, size_t outlen)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i;
	int hi, lo;

	if (outlen > SIZE_MAX / 2 || slen != 2 * outlen)
		return CX_EPARSE;
	for (i = 0; i < outlen; i++) {
		if ((hi = hex_value(u[2 * i])) < 0 || (lo = hex_value(u[2 * i + 1])) < 0)
			return CX_EPARSE;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

const char *
cx_keyalg_name(enum cx_keyalg a)
{
	switch (a) {
	case CX_KEY_RSA:
		return "rsa";
	case CX_KEY_ED25519:
		return "ed25519";
	case CX_KEY_NONE:
		break;
	}
	return "none";
}

const char *
cx_sigalg_name(enum cx_sigalg a)
{
	switch (a) {
	case CX_SIG_RSAPSS_SHA256:
		return "rsapss-sha256";
	case CX_SIG_ED25519:
		return "ed25519";
	case CX_SIG_NONE:
		break;
	}
	return "none";
}

static int
name_is(const char *s, size_t n, const char *name)
{
	return n == strlen(name) && memcmp(s, name, n) == 0;
}

enum cx_keyalg
cx_keyalg_from_name(const char *s, size_t n)
{
	if (name_is(s, n, "rsa"))
		return CX_KEY_RSA;
	if (name_is(s, n, "ed25519"))
		return CX_KEY_ED25519;
	return CX_KEY_NONE;
}

enum cx_sigalg
cx_sigalg_from_name(const char *s, size_t n)
{
	if (name_is(s, n, "rsapss-sha256"))
		return CX_SIG_RSAPSS_SHA256;
	if (name_is(s, n, "ed25519"))
		return CX_SIG_ED25519;
	return CX_SIG_NONE;
}

enum cx_sigalg
cx_sigalg_for_key(enum cx_keyalg a)
{
	switch (a) {
	case CX_KEY_RSA:
		return CX_SIG_RSAPSS_SHA256;
	case CX_KEY_ED25519:
		return CX_SIG_ED25519;
	case CX_KEY_NONE:
		break;
	}
	return CX_SIG_NONE;
}

/*
 * EVP_PKEY_is_a rather than the legacy id, so that keys held by a provider
 * (a token, say) are recognised too.  RSA-PSS-restricted keys are "RSA-PSS",
 * not "RSA", and conex never writes them.
 */
static enum cx_keyalg
pkey_alg(EVP_PKEY *k)
{
	if (k == NULL)
		return CX_KEY_NONE;
	if (EVP_PKEY_is_a(k, "RSA"))
		return CX_KEY_RSA;
	if (EVP_PKEY_is_a(k, "ED25519"))
		return CX_KEY_ED25519;
	return CX_KEY_NONE;
}

/* Modulus size and public exponent checks shared by every way a key comes in. */
static int
rsa_check(EVP_PKEY *k, struct cx_err *e)
{
	BIGNUM *bn = NULL;
	int bits, ok;

	bits = EVP_PKEY_get_bits(k);
	if (bits < RSA_MIN_BITS)
		return cx_err_set(e, CX_EREJECT, "RSA key has %d bits; at least %d are required",
		    bits, RSA_MIN_BITS);
	if (bits > RSA_MAX_BITS)
		return cx_err_set(e, CX_EREJECT, "RSA key has %d bits; at most %d are supported",
		    bits, RSA_MAX_BITS);
	/* e = 1 (or any even e) would make signatures forgeable or impossible */
	if (EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &bn) != 1)
		return ossl_err(e, CX_ECRYPTO, "cannot read RSA public exponent");
	ok = BN_is_odd(bn) && !BN_is_one(bn);
	BN_free(bn);
	if (!ok)
		return cx_err_set(e, CX_EREJECT, "RSA public exponent is invalid");
	return 0;
}

/* PEM SPKI exactly as conex writes it: 64 columns, '\n', no final newline. */
static int
pem_spki_put(const uint8_t *der, size_t n, struct cx_buf *out)
{
	struct cx_buf b64;
	size_t off, l;
	int r;

	cx_buf_init(&b64, 0);
	if ((r = cx_b64_encode(der, n, &b64)) != 0)
		goto out;
	if ((r = cx_buf_put_str(out, pem_begin)) != 0)
		goto out;
	for (off = 0; off < b64.len; off += l) {
		l = b64.len - off < PEM_COLS ? b64.len - off : PEM_COLS;
		if (off != 0 && (r = cx_buf_put_u8(out, '\n')) != 0)
			goto out;
		if ((r = cx_buf_put(out, b64.d + off, l)) != 0)
			goto out;
	}
	r = cx_buf_put_str(out, pem_end);
out:
	cx_buf_free(&b64);
	return r;
}

/* Inverse of pem_spki_put; anything that it would not have written is refused. */
static int
pem_spki_get(const char *s, size_t n, struct cx_buf *der, struct cx_err *e)
{
	const size_t bl = sizeof(pem_begin) - 1, el = sizeof(pem_end) - 1;
	struct cx_buf b64;
	const char *p, *end, *nl;
	size_t l;
	int r;

	if (n < bl + el || memcmp(s, pem_begin, bl) != 0)
		return cx_err_set(e, CX_EPARSE,
		    "RSA key is not a PEM public key (expected \"-----BEGIN PUBLIC KEY-----\" and a newline)");
	if (memcmp(s + n - el, pem_end, el) != 0)
		return cx_err_set(e, CX_EPARSE,
		    "RSA key does not end with a newline and \"-----END PUBLIC KEY-----\" "
		    "(trailing newline or garbage?)");
	cx_buf_init(&b64, KEYSTR_MAX);
	p = s + bl;
	end = s + n - el;
	if (p == end) {
		r = cx_err_set(e, CX_EPARSE, "RSA PEM key has no base64 body");
		goto out;
	}
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		/* a newline right before the footer would be an empty last line */
		if (l == 0 || l > PEM_COLS || (nl != NULL && (l != PEM_COLS || nl + 1 == end))) {
			r = cx_err_set(e, CX_EPARSE,
			    "RSA PEM key line at offset %zu has %zu columns; "
			    "lines must have 64 (the last 1 to 64)",
			    (size_t)(p - s), l);
			goto out;
		}
		if ((r = cx_buf_put(&b64, p, l)) != 0) {
			cx_err_set(e, r, "RSA PEM key too long");
			goto out;
		}
		p += l + (nl != NULL);
	}
	if ((r = cx_b64_decode((const char *)b64.d, b64.len, der, e)) != 0)
		cx_err_prefix(e, "RSA PEM key");
out:
	cx_buf_free(&b64);
	return r;
}

static int
rsa_pub_parse(const char *s, size_t n, EVP_PKEY **out, struct cx_err *e)
{
	struct cx_buf der;
	const unsigned char *p;
	unsigned char *re = NULL;
	EVP_PKEY *k = NULL;
	int r, relen;

	cx_buf_init(&der, KEYSTR_MAX);
	if ((r = pem_spki_get(s, n, &der, e)) != 0)
		goto out;
	if (der.len > LONG_MAX) {
		r = cx_err_set(e, CX_ETOOBIG, "RSA key too long");
		goto out;
	}
	p = der.d;
	if ((k = d2i_PUBKEY(NULL, &p, (long)der.len)) == NULL) {
		r = ossl_err(e, CX_EPARSE, "RSA key: cannot decode SubjectPublicKeyInfo");
		goto out;
	}
	if (p != der.d + der.len) {
		r = cx_err_set(e, CX_EPARSE, "RSA key: %zu bytes of garbage after the key",
		    (size_t)(der.d + der.len - p));
		goto out;
	}
	if (pkey_alg(k) != CX_KEY_RSA) {
		r = cx_err_set(e, CX_EUNSUPPORTED, "key string says rsa, but the key is %s",
		    EVP_PKEY_get0_type_name(k) ? EVP_PKEY_get0_type_name(k) : "of unknown type");
		goto out;
	}
	if ((r = rsa_check(k, e)) != 0)
		goto out;
	/* BER that is not DER would give this key a second key id */
	if ((relen = i2d_PUBKEY(k, &re)) <= 0) {
		r = ossl_err(e, CX_ECRYPTO, "RSA key: cannot re-encode");
		goto out;
	}
	if ((size_t)relen != der.len || memcmp(re, der.d, der.len) != 0) {
		r = cx_err_set(e, CX_EPARSE, "RSA key is not DER encoded");
		goto out;
	}
	*out = k;
	k = NULL;
	r = 0;
out:
	OPENSSL_free(re);
	EVP_PKEY_free(k);
	cx_buf_free(&der);
	ERR_clear_error();
	return r;
}

static int
ed25519_pub_parse(const char *s, size_t n, EVP_PKEY **out, struct cx_err *e)
{
	struct cx_buf raw;
	EVP_PKEY *k;
	int r;

	cx_buf_init(&raw, 1024);
	if ((r = cx_b64_decode(s, n, &raw, e)) != 0) {
		cx_err_prefix(e, "ed25519 key");
		goto out;
	}
	if (raw.len != ED25519_KEY_LEN) {
		r = cx_err_set(e, CX_EPARSE, "ed25519 key is %zu bytes, expected %d", raw.len,
		    ED25519_KEY_LEN);
		goto out;
	}
	k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw.d, raw.len);
	if (k == NULL) {
		r = ossl_err(e, CX_ECRYPTO, "ed25519 key");
		goto out;
	}
	*out = k;
	r = 0;
out:
	cx_buf_free(&raw);
	return r;
}

int
cx_pubkey_parse(
    const char *keystr, size_t len, EVP_PKEY **out, enum cx_keyalg *alg, struct cx_err *e)
{
	const char *eq;
	enum cx_keyalg a;
	size_t al;
	int r;

	*out = NULL;
	if (alg != NULL)
		*alg = CX_KEY_NONE;
	if (len > KEYSTR_MAX)
		return cx_err_set(e, CX_ETOOBIG, "key string of %zu bytes is too long", len);
	if ((eq = memchr(keystr, '=', len)) == NULL)
		return cx_err_set(e, CX_EPARSE, "key string has no '=' after the algorithm");
	al = (size_t)(eq - keystr);
	switch ((a = cx_keyalg_from_name(keystr, al))) {
	case CX_KEY_RSA:
		r = rsa_pub_parse(eq + 1, len - al - 1, out, e);
		break;
	case CX_KEY_ED25519:
		r = ed25519_pub_parse(eq + 1, len - al - 1, out, e);
		break;
	default:
		return cx_err_set(e, CX_EUNSUPPORTED, "unsupported key algorithm \"%.*s\"",
		    al > 32 ? 32 : (int)al, keystr);
	}
	if (r == 0 && alg != NULL)
		*alg = a;
	return r;
}

int
cx_pubkey_string(EVP_PKEY *k, struct cx_buf *out, struct cx_err *e)
{
	uint8_t raw[ED25519_KEY_LEN];
	size_t rawlen = sizeof(raw), start = out->len;
	unsigned char *der = NULL;
	int r, derlen;

	switch (pkey_alg(k)) {
	case CX_KEY_RSA:
		/* i2d_PUBKEY emits only the public half, also for a private key */
		if ((derlen = i2d_PUBKEY(k, &der)) <= 0)
			return ossl_err(e, CX_ECRYPTO, "cannot encode RSA public key");
		if ((r = cx_buf_put_str(out, "rsa=")) == 0)
			r = pem_spki_put(der, (size_t)derlen, out);
		OPENSSL_free(der);
		break;
	case CX_KEY_ED25519:
		if (EVP_PKEY_get_raw_public_key(k, raw, &rawlen) != 1 || rawlen != sizeof(raw))
			return ossl_err(e, CX_ECRYPTO, "cannot read ed25519 public key");
		if ((r = cx_buf_put_str(out, "ed25519=")) == 0)
			r = cx_b64_encode(raw, rawlen, out);
		break;
	default:
		return cx_err_set(e, CX_EUNSUPPORTED, "key type %s is not supported",
		    k != NULL && EVP_PKEY_get0_type_name(k) != NULL ? EVP_PKEY_get0_type_name(k)
		                                                    : "(unknown)");
	}
	if (r != 0) {
		out->len = start;
		if (out->d != NULL)
			out->d[start] = '\0';
		return cx_err_set(e, r, "cannot store key string");
	}
	return 0;
}

void
cx_keyid(const char *keystr, size_t len, uint8_t out[CX_SHA256_LEN])
{
	cx_sha256(keystr, len, out);
}

/*
 * Checks that key and scheme belong together and sets up md context for a
 * one-shot sign or verify.  For RSA every PSS parameter is pinned: with the
 * salt length fixed at 32, OpenSSL rejects signatures using any other one.
 */
static int
sig_init(EVP_MD_CTX *mctx, EVP_PKEY *k, enum cx_sigalg alg, int sign, struct cx_err *e)
{
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md;
	int r;

	switch (alg) {
	case CX_SIG_RSAPSS_SHA256:
	case CX_SIG_ED25519:
		break;
	default:
		return cx_err_set(
		    e, CX_EUNSUPPORTED, "unsupported signature algorithm %d", (int)alg);
	}
	if (pkey_alg(k) == CX_KEY_NONE)
		return cx_err_set(e, CX_EUNSUPPORTED, "key type %s is not supported",
		    k != NULL && EVP_PKEY_get0_type_name(k) != NULL ? EVP_PKEY_get0_type_name(k)
		                                                    : "(unknown)");
	if (cx_sigalg_for_key(pkey_alg(k)) != alg)
		return cx_err_set(e, CX_ECRYPTO,
		    "key algorithm does not match signature algorithm (%s key, %s signature)",
		    cx_keyalg_name(pkey_alg(k)), cx_sigalg_name(alg));
	if (alg == CX_SIG_RSAPSS_SHA256 && (r = rsa_check(k, e)) != 0)
		return r == CX_EREJECT ? CX_ECRYPTO : r;

	/* pure Ed25519 hashes internally and takes no digest */
	md = alg == CX_SIG_RSAPSS_SHA256 ? EVP_sha256() : NULL;
	if (sign)
		r = EVP_DigestSignInit(mctx, &pctx, md, NULL, k);
	else
		r = EVP_DigestVerifyInit(mctx, &pctx, md, NULL, k);
	if (r != 1)
		return ossl_err(e, CX_ECRYPTO, "%s: cannot initialise %s", cx_sigalg_name(alg),
		    sign ? "signing" : "verification");
	if (alg == CX_SIG_RSAPSS_SHA256 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
	        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0 ||
	        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, PSS_SALT_LEN) <= 0))
		return ossl_err(e, CX_ECRYPTO, "rsapss-sha256: cannot set PSS parameters");
	return 0;
}

static size_t
sig_len(EVP_PKEY *k, enum cx_sigalg alg)
{
	int sz;

	if (alg == CX_SIG_ED25519)
		return ED25519_SIG_LEN;
	sz = EVP_PKEY_get_size(k);
	return sz > 0 ? (size_t)sz : 0;
}

int
cx_sig_verify(EVP_PKEY *k, enum cx_sigalg alg, const uint8_t *msg, size_t n, const uint8_t *sig,
    size_t siglen, struct cx_err *e)
{
	EVP_MD_CTX *mctx;
	size_t want;
	int r;

	if ((mctx = EVP_MD_CTX_new()) == NULL)
		return ossl_err(e, CX_ENOMEM, "EVP_MD_CTX_new");
	if ((r = sig_init(mctx, k, alg, 0, e)) != 0)
		goto out;
	if ((want = sig_len(k, alg)) != siglen) {
		r = cx_err_set(e, CX_ECRYPTO, "%s signature is %zu bytes, expected %zu",
		    cx_sigalg_name(alg), siglen, want);
		goto out;
	}
	if (alg == CX_SIG_ED25519) {
		/*
		 * libsodium verifies Ed25519 about twice as fast as OpenSSL 3 here
		 * (the author model checks one signature per package), and is
		 * stricter: small-order keys and R are refused.
		 */
		uint8_t pk[ED25519_KEY_LEN];
		size_t pklen = sizeof(pk);
		if (sodium_init() < 0 || EVP_PKEY_get_raw_public_key(k, pk, &pklen) != 1 ||
		    pklen != sizeof(pk)) {
			r = ossl_err(e, CX_ECRYPTO, "ed25519: cannot read the public key");
			goto out;
		}
		if (crypto_sign_verify_detached(sig, msg, n, pk) != 0)
			r = cx_err_set(e, CX_ECRYPTO, "ed25519 signature does not verify");
		else
			r = 0;
		goto out;
	}
	switch (EVP_DigestVerify(mctx, sig, siglen, msg, n)) {
	case 1:
		r = 0;
		break;
	case 0:
		r = ossl_err(e, CX_ECRYPTO, "%s signature does not verify", cx_sigalg_name(alg));
		break;
	default:
		r = ossl_err(
		    e, CX_ECRYPTO, "%s signature verification failed", cx_sigalg_name(alg));
		break;
	}
out:
	EVP_MD_CTX_free(mctx);
	if (r != 0)
		ERR_clear_error();
	return r;
}

int
cx_sig_sign(EVP_PKEY *k, enum cx_sigalg alg, const uint8_t *msg, size_t n, struct cx_buf *sig,
    struct cx_err *e)
{
	EVP_MD_CTX *mctx;
	size_t want, got, start = sig->len;
	uint8_t *dst;
	int r;

	if ((mctx = EVP_MD_CTX_new()) == NULL)
		return ossl_err(e, CX_ENOMEM, "EVP_MD_CTX_new");
	if ((r = sig_init(mctx, k, alg, 1, e)) != 0)
		goto out;
	if ((want = sig_len(k, alg)) == 0) {
		r = ossl_err(e, CX_ECRYPTO, "cannot determine signature length");
		goto out;
	}
	if ((r = cx_buf_reserve(sig, want, &dst)) != 0) {
		cx_err_set(e, r, "no room for a %zu byte signature", want);
		goto out;
	}
	got = want;
	if (EVP_DigestSign(mctx, dst, &got, msg, n) != 1) {
		r = ossl_err(e, CX_ECRYPTO, "%s: signing failed", cx_sigalg_name(alg));
		goto fail;
	}
	/* both schemes have fixed-size signatures; verifiers insist on it */
	if (got != want) {
		r = cx_err_set(e, CX_ECRYPTO, "%s signature is %zu bytes, expected %zu",
		    cx_sigalg_name(alg), got, want);
		goto fail;
	}
	r = 0;
	goto out;
fail:
	sig->len = start;
	sig->d[start] = '\0';
out:
	EVP_MD_CTX_free(mctx);
	return r;
}

static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	/* key files are unencrypted (section 11.1); never prompt on a terminal */
	return -1;
}

static int
privkey_check(EVP_PKEY *k, struct cx_err *e)
{
	switch (pkey_alg(k)) {
	case CX_KEY_RSA:
		return rsa_check(k, e);
	case CX_KEY_ED25519:
		return 0;
	default:
		return cx_err_set(e, CX_EUNSUPPORTED,
		    "private key type %s is not supported (only RSA and Ed25519)",
		    EVP_PKEY_get0_type_name(k) != NULL ? EVP_PKEY_get0_type_name(k) : "(unknown)");
	}
}

int
cx_privkey_load_pem(const uint8_t *pem, size_t n, EVP_PKEY **out, struct cx_err *e)
{
	EVP_PKEY *k;
	BIO *bio;
	int r;

	*out = NULL;
	if (n > INT_MAX)
		return cx_err_set(e, CX_ETOOBIG, "private key file of %zu bytes is too long", n);
	/* OpenSSL's decoder says only "unsupported" for these; say what is wrong */
	if (memmem(pem, n, "-----BEGIN ", 11) == NULL)
		return cx_err_set(e, CX_EPARSE, "no PEM block in private key data");
	if (memmem(pem, n, "ENCRYPTED", 9) != NULL)
		return cx_err_set(e, CX_EUNSUPPORTED,
		    "private key is encrypted; conex key files are unencrypted PEM");
	/* read-only memory BIO: it points at the caller's bytes, no copy to wipe */
	if ((bio = BIO_new_mem_buf(pem, (int)n)) == NULL)
		return ossl_err(e, CX_ENOMEM, "BIO_new_mem_buf");
	k = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (k == NULL)
		return ossl_err(e, CX_EPARSE,
		    "cannot read PEM private key (expected unencrypted PKCS#1 or PKCS#8)");
	if ((r = privkey_check(k, e)) != 0) {
		EVP_PKEY_free(k);
		ERR_clear_error();
		return r;
	}
	*out = k;
	return 0;
}

int
cx_privkey_generate(enum cx_keyalg alg, int rsa_bits, EVP_PKEY **out, struct cx_err *e)
{
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *k = NULL;
	BIGNUM *f4 = NULL;
	int r;

	*out = NULL;
	switch (alg) {
	case CX_KEY_RSA:
		if (rsa_bits < RSA_MIN_BITS || rsa_bits > RSA_GEN_MAX)
			return cx_err_set(e, CX_EINVAL, "RSA key size %d is not in %d..%d",
			    rsa_bits, RSA_MIN_BITS, RSA_GEN_MAX);
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
		break;
	case CX_KEY_ED25519:
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "ED25519", NULL);
		break;
	default:
		return cx_err_set(e, CX_EUNSUPPORTED, "cannot generate keys of type %d", (int)alg);
	}
	if (ctx == NULL)
		return ossl_err(
		    e, CX_ECRYPTO, "%s: cannot create key context", cx_keyalg_name(alg));
	if (EVP_PKEY_keygen_init(ctx) != 1) {
		r = ossl_err(e, CX_ECRYPTO, "%s: keygen init", cx_keyalg_name(alg));
		goto out;
	}
	if (alg == CX_KEY_RSA) {
		/* 65537 is OpenSSL's default too; say so rather than depend on it */
		if ((f4 = BN_new()) == NULL || BN_set_word(f4, RSA_F4) != 1 ||
		    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, rsa_bits) <= 0 ||
		    EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, f4) <= 0) {
			r = ossl_err(e, CX_ECRYPTO, "rsa: cannot set key parameters");
			goto out;
		}
	}
	if (EVP_PKEY_generate(ctx, &k) != 1) {
		r = ossl_err(e, CX_ECRYPTO, "%s: key generation failed", cx_keyalg_name(alg));
		goto out;
	}
	*out = k;
	r = 0;
out:
	BN_free(f4);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

int
cx_privkey_pem(EVP_PKEY *k, struct cx_buf *out, struct cx_err *e)
{
	BUF_MEM *bm = NULL;
	BIO *bio;
	int r;

	if ((r = privkey_check(k, e)) != 0)
		return r;
	/* secmem: the BIO's buffer, including copies left by growing it, is wiped on free */
	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		return ossl_err(e, CX_ENOMEM, "BIO_new");
	if (PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) != 1 ||
	    BIO_get_mem_ptr(bio, &bm) != 1 || bm == NULL) {
		r = ossl_err(e, CX_ECRYPTO, "cannot encode private key as PKCS#8 PEM");
		goto out;
	}
	if ((r = cx_buf_put(out, bm->data, bm->length)) != 0)
		cx_err_set(e, r, "no room for a %zu byte private key", bm->length);
out:
	BIO_free(bio);
	return r;
}
