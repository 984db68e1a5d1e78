/*
 * Software keys held by the agent.
 *
 * Ed25519: the 32-byte seed is copied out of OpenSSL into libsodium guarded
 * memory (guard pages, mlock'ed, excluded from core dumps where the kernel
 * allows), expanded with crypto_sign_seed_keypair into a 64-byte secret key,
 * also guarded; the EVP_PKEY is freed at once (OpenSSL keeps Ed25519 private
 * keys in its secure heap and clears them on free).  Between signatures the
 * secret key page is PROT_NONE, readable only during crypto_sign_detached.
 *
 * RSA: OpenSSL holds the key; there is no portable way to move the CRT
 * components out of it.  When the agent called CRYPTO_secure_malloc_init at
 * start-up, OpenSSL's decoder allocates the private BIGNUMs (d, p, q, dP, dQ,
 * qInv) with BN_secure_new, i.e. in its mlock'ed, MADV_DONTDUMP heap, and
 * clears them on free.  Limits: the public API cannot show where one given
 * BIGNUM lives, so cx_softkey_protected reports whether the secure heap grew
 * while the key was loaded (good enough for a single-threaded agent, and it
 * errs towards "protected" only if another thread allocated secure memory at
 * the same moment); and OpenSSL's Montgomery caches built at the first
 * signature may copy p and q into the ordinary heap (rsa_ossl.c).  The secure
 * heap is defence in depth, not a guarantee.
 */
#include "agent/softkey.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "conex/crypto.h"

#define ID_MAX 255

struct cx_softkey {
	char *id;
	char *keystr; /* public: "rsa=..." or "ed25519=..." */
	uint8_t keyid[CX_SHA256_LEN];
	enum cx_keyalg alg;
	int protected;        /* see cx_softkey_protected */
	unsigned char *ed_sk; /* sodium_malloc'ed, PROT_NONE when idle */
	EVP_PKEY *rsa;
};

/* Moves the Ed25519 private key from k into guarded memory; k is not kept. */
static int
load_ed25519(struct cx_softkey *sk, EVP_PKEY *k, struct cx_err *e)
{
	unsigned char *seed = NULL;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], opk[crypto_sign_PUBLICKEYBYTES];
	size_t len = crypto_sign_SEEDBYTES, plen = sizeof(opk);
	int r;

	if ((seed = sodium_malloc(crypto_sign_SEEDBYTES)) == NULL ||
	    (sk->ed_sk = sodium_malloc(crypto_sign_SECRETKEYBYTES)) == NULL) {
		r = cx_err_set(e, CX_ENOMEM, "cannot allocate guarded memory");
		goto out;
	}
	if (EVP_PKEY_get_raw_private_key(k, seed, &len) != 1 || len != crypto_sign_SEEDBYTES ||
	    EVP_PKEY_get_raw_public_key(k, opk, &plen) != 1 || plen != sizeof(opk)) {
		ERR_clear_error();
		r = cx_err_set(e, CX_ECRYPTO, "cannot read the Ed25519 key");
		goto out;
	}
	if (crypto_sign_seed_keypair(pk, sk->ed_sk, seed) != 0) {
		r = cx_err_set(e, CX_ECRYPTO, "crypto_sign_seed_keypair failed");
		goto out;
	}
	/* the key string comes from OpenSSL's public half: both must agree */
	if (sodium_memcmp(pk, opk, sizeof(pk)) != 0) {
		r = cx_err_set(e, CX_ECRYPTO,
		    "Ed25519 public key mismatch between OpenSSL "
		    "and libsodium");
		goto out;
	}
	if (sodium_mprotect_noaccess(sk->ed_sk) != 0) {
		r = cx_err_set(e, CX_ECRYPTO, "cannot protect the key memory");
		goto out;
	}
	sk->protected = 1;
	r = 0;
out:
	if (seed != NULL)
		sodium_free(seed); /* zeroes before unmapping */
	if (r != 0 && sk->ed_sk != NULL) {
		sodium_free(sk->ed_sk);
		sk->ed_sk = NULL;
	}
	return r;
}

int
cx_softkey_load(
    const char *id, const uint8_t *pem, size_t pemlen, struct cx_softkey **out, struct cx_err *e)
{
	struct cx_softkey *sk = NULL;
	EVP_PKEY *k = NULL;
	struct cx_buf ks;
	size_t before;
	int r;

	*out = NULL;
	cx_buf_init(&ks, 0);
	if (id == NULL || strlen(id) > ID_MAX)
		return cx_err_set(e, CX_EINVAL, "key id missing or longer than %d bytes", ID_MAX);
	/* sodium_malloc needs the page size sodium_init records; idempotent */
	if (sodium_init() < 0)
		return cx_err_set(e, CX_ECRYPTO, "libsodium initialisation failed");
	if ((sk = calloc(1, sizeof(*sk))) == NULL || (sk->id = strdup(id)) == NULL) {
		free(sk);
		return cx_err_set(e, CX_ENOMEM, "out of memory");
	}
	before = CRYPTO_secure_malloc_initialized() ? CRYPTO_secure_used() : 0;
	/* refuses encrypted PEM with "private key is encrypted; ..." */
	if ((r = cx_privkey_load_pem(pem, pemlen, &k, e)) != 0) {
		cx_err_prefix(e, "%s", id);
		goto fail;
	}
	if ((r = cx_pubkey_string(k, &ks, e)) != 0) {
		cx_err_prefix(e, "%s", id);
		goto fail;
	}
	cx_keyid((const char *)ks.d, ks.len, sk->keyid);
	sk->keystr = cx_buf_steal_str(&ks, NULL);
	if (sk->keystr == NULL) {
		r = cx_err_set(e, CX_ENOMEM, "out of memory");
		goto fail;
	}
	if (EVP_PKEY_is_a(k, "ED25519")) {
		sk->alg = CX_KEY_ED25519;
		if ((r = load_ed25519(sk, k, e)) != 0) {
			cx_err_prefix(e, "%s", id);
			goto fail;
		}
		EVP_PKEY_free(k);
	} else if (EVP_PKEY_is_a(k, "RSA")) {
		sk->alg = CX_KEY_RSA;
		sk->rsa = k;
		sk->protected = CRYPTO_secure_malloc_initialized() && CRYPTO_secure_used() > before;
	} else {
		r = cx_err_set(e, CX_EUNSUPPORTED, "%s: unsupported key type", id);
		goto fail;
	}
	*out = sk;
	return 0;
fail:
	EVP_PKEY_free(k);
	cx_buf_free(&ks);
	cx_softkey_free(sk);
	return r;
}

void
cx_softkey_free(struct cx_softkey *k)
{
	if (k == NULL)
		return;
	if (k->ed_sk != NULL)
		sodium_free(k->ed_sk); /* makes it writable, zeroes, unmaps */
	EVP_PKEY_free(k->rsa);         /* BN_clear_free of the private components */
	free(k->id);
	free(k->keystr);
	sodium_memzero(k, sizeof(*k));
	free(k);
}

const char *
cx_softkey_id(const struct cx_softkey *k)
{
	return k->id;
}

const char *
cx_softkey_keystr(const struct cx_softkey *k)
{
	return k->keystr;
}

const uint8_t *
cx_softkey_keyid(const struct cx_softkey *k)
{
	return k->keyid;
}

int
cx_softkey_is_ed25519(const struct cx_softkey *k)
{
	return k->alg == CX_KEY_ED25519;
}

int
cx_softkey_protected(const struct cx_softkey *k)
{
	return k->protected;
}

int
cx_softkey_sign(
    struct cx_softkey *k, const uint8_t *data, size_t n, struct cx_buf *sig, struct cx_err *e)
{
	unsigned char s[crypto_sign_BYTES];
	int r;

	switch (k->alg) {
	case CX_KEY_ED25519:
		if (sodium_mprotect_readonly(k->ed_sk) != 0)
			return cx_err_set(e, CX_ECRYPTO, "%s: cannot unprotect the key", k->id);
		r = crypto_sign_detached(s, NULL, data, (unsigned long long)n, k->ed_sk);
		/* back to PROT_NONE before anything else can fail */
		if (sodium_mprotect_noaccess(k->ed_sk) != 0 && r == 0)
			r = -1;
		if (r != 0)
			return cx_err_set(e, CX_ECRYPTO, "%s: Ed25519 signing failed", k->id);
		if ((r = cx_buf_put(sig, s, sizeof(s))) != 0)
			return cx_err_set(e, r, "%s: cannot store the signature", k->id);
		return 0;
	case CX_KEY_RSA:
		if ((r = cx_sig_sign(k->rsa, CX_SIG_RSAPSS_SHA256, data, n, sig, e)) != 0)
			return cx_err_prefix(e, "%s", k->id);
		return 0;
	default:
		return cx_err_set(e, CX_EINVAL, "%s: no key", k->id);
	}
}
