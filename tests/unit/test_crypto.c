/* conex/crypto.c and conex/base64.c against real OpenSSL and the testrepo keys. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "conex/crypto.h"
#include "tests/unit/testutil.h"

static const uint8_t msg[] = "signed: [ [version 0] [typ targets] ]";

/* ---- helpers ---- */

static EVP_PKEY *
gen(enum cx_keyalg alg)
{
	struct cx_err e = {0};
	EVP_PKEY *k = NULL;

	ck_assert_msg(cx_privkey_generate(alg, 2048, &k, &e) == 0, "generate: %s", e.msg);
	ck_assert_ptr_nonnull(k);
	return k;
}

static void
sign(EVP_PKEY *k, enum cx_sigalg alg, struct cx_buf *sig)
{
	struct cx_err e = {0};

	cx_buf_init(sig, 0);
	ck_assert_msg(cx_sig_sign(k, alg, msg, sizeof(msg) - 1, sig, &e) == 0, "sign: %s", e.msg);
}

/* A raw RSASSA-PSS-SHA256 signature with a chosen salt length. */
static size_t
pss_sign_raw(EVP_PKEY *k, int saltlen, uint8_t *sig, size_t cap)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *p = NULL;
	size_t len = cap;

	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(EVP_DigestSignInit(m, &p, EVP_sha256(), NULL, k), 1);
	ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_padding(p, RSA_PKCS1_PSS_PADDING), 0);
	ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_mgf1_md(p, EVP_sha256()), 0);
	ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_pss_saltlen(p, saltlen), 0);
	ck_assert_int_eq(EVP_DigestSign(m, sig, &len, msg, sizeof(msg) - 1), 1);
	EVP_MD_CTX_free(m);
	return len;
}

static int
pss_verify_raw(EVP_PKEY *k, int saltlen, const uint8_t *sig, size_t len)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *p = NULL;
	int r;

	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(EVP_DigestVerifyInit(m, &p, EVP_sha256(), NULL, k), 1);
	ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_padding(p, RSA_PKCS1_PSS_PADDING), 0);
	ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_mgf1_md(p, EVP_sha256()), 0);
	ck_assert_int_gt(EVP_PKEY_CTX_set_rsa_pss_saltlen(p, saltlen), 0);
	r = EVP_DigestVerify(m, sig, len, msg, sizeof(msg) - 1);
	EVP_MD_CTX_free(m);
	ERR_clear_error();
	return r;
}

/* "rsa=" + OpenSSL's own PEM of k's public key, trailing newline removed. */
static char *
ossl_rsa_keystr(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s;
	long n;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(PEM_write_bio_PUBKEY(b, k), 1);
	n = BIO_get_mem_data(b, &data);
	ck_assert_int_gt(n, 1);
	ck_assert_int_eq(data[n - 1], '\n');
	ck_assert_int_ne(asprintf(&s, "rsa=%.*s", (int)n - 1, data), -1);
	BIO_free(b);
	return s;
}

static int
parse_str(const char *s, EVP_PKEY **k, struct cx_err *e)
{
	return cx_pubkey_parse(s, strlen(s), k, NULL, e);
}

/* ---- sha256, hex ---- */

START_TEST(test_sha256)
{
	uint8_t d[CX_SHA256_LEN];
	char hex[CX_SHA256_HEX + 1];

	cx_sha256("", 0, d);
	cx_hex_encode(d, sizeof(d), hex);
	ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	cx_sha256("abc", 3, d);
	cx_hex_encode(d, sizeof(d), hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	cx_keyid("abc", 3, d);
	cx_hex_encode(d, sizeof(d), hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(test_hex)
{
	uint8_t in[] = {0x00, 0x01, 0xab, 0xff}, out[4];
	char hex[9];

	cx_hex_encode(in, sizeof(in), hex);
	ck_assert_str_eq(hex, "0001abff");
	ck_assert_int_eq(cx_hex_decode("0001abff", 8, out, 4), 0);
	ck_assert_mem_eq(out, in, 4);
	cx_hex_encode(in, 0, hex);
	ck_assert_str_eq(hex, "");
	ck_assert_int_eq(cx_hex_decode("", 0, out, 0), 0);

	ck_assert_int_eq(cx_hex_decode("0001ABFF", 8, out, 4), CX_EPARSE);
	ck_assert_int_eq(cx_hex_decode("0001abfF", 8, out, 4), CX_EPARSE);
	ck_assert_int_eq(cx_hex_decode("0001abf", 7, out, 4), CX_EPARSE);
	ck_assert_int_eq(cx_hex_decode("0001abff00", 10, out, 4), CX_EPARSE);
	ck_assert_int_eq(cx_hex_decode("0001abfg", 8, out, 4), CX_EPARSE);
	ck_assert_int_eq(cx_hex_decode("0001ab f", 8, out, 4), CX_EPARSE);
	ck_assert_int_eq(cx_hex_decode("0x01abff", 8, out, 4), CX_EPARSE);
	ck_assert_int_eq(cx_hex_decode("0001ab\0f", 8, out, 4), CX_EPARSE);
}
END_TEST

/* ---- base64 ---- */

static const struct {
	const char *raw, *b64;
} rfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

START_TEST(test_b64_vectors)
{
	struct cx_err e = {0};
	struct cx_buf b;
	size_t i;

	for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		cx_buf_init(&b, 0);
		ck_assert_int_eq(
		    cx_b64_encode((const uint8_t *)rfc4648[i].raw, strlen(rfc4648[i].raw), &b), 0);
		ck_assert_uint_eq(b.len, strlen(rfc4648[i].b64));
		ck_assert_mem_eq(cx_buf_ptr(&b), rfc4648[i].b64, b.len);
		cx_buf_free(&b);

		cx_buf_init(&b, 0);
		ck_assert_msg(cx_b64_decode(rfc4648[i].b64, strlen(rfc4648[i].b64), &b, &e) == 0,
		    "%s: %s", rfc4648[i].b64, e.msg);
		ck_assert_uint_eq(b.len, strlen(rfc4648[i].raw));
		if (b.len)
			ck_assert_mem_eq(cx_buf_ptr(&b), rfc4648[i].raw, b.len);
		cx_buf_free(&b);
	}
}
END_TEST

START_TEST(test_b64_all_bytes)
{
	struct cx_err e = {0};
	struct cx_buf enc, dec;
	uint8_t raw[256];
	size_t i, n;

	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(255 - i);
	for (n = 0; n <= sizeof(raw); n++) {
		cx_buf_init(&enc, 0);
		cx_buf_init(&dec, 0);
		ck_assert_int_eq(cx_b64_encode(raw, n, &enc), 0);
		ck_assert_uint_eq(enc.len, (n + 2) / 3 * 4);
		ck_assert_int_eq(cx_b64_decode((const char *)enc.d, enc.len, &dec, &e), 0);
		ck_assert_uint_eq(dec.len, n);
		if (n)
			ck_assert_mem_eq(dec.d, raw, n);
		cx_buf_free(&enc);
		cx_buf_free(&dec);
	}
}
END_TEST

START_TEST(test_b64_reject)
{
	static const char *bad[] = {
	    "Zg=",          /* length */
	    "Zg",           /* padding is mandatory */
	    "Zm9vY",        /* length */
	    "Zg=a",         /* '=' not at the end */
	    "Z===",         /* three '=' */
	    "====",         /* only padding */
	    "Zg==Zg==",     /* padding in the middle */
	    "Zm9v====",     /* a whole quantum of padding */
	    "Zh==",         /* non-zero trailing bits */
	    "Zm9=",         /* non-zero trailing bits */
	    "Zm-v",         /* url-safe alphabet */
	    "Zm_v",         /* url-safe alphabet */
	    "Zm9v\n",       /* whitespace */
	    " Zm9v",        /* whitespace */
	    "Zm 9v",        /* whitespace */
	    "Zm9v\r\nYg==", /* line breaks */
	    "Zm9*",         /* bad character */
	    "Zm9\xc3",      /* non-ASCII */
	};
	struct cx_err e = {0};
	struct cx_buf b;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cx_buf_init(&b, 0);
		ck_assert_int_eq(cx_buf_put_str(&b, "keep"), 0);
		e.msg[0] = '\0';
		ck_assert_msg(cx_b64_decode(bad[i], strlen(bad[i]), &b, &e) == CX_EPARSE,
		    "accepted \"%s\"", bad[i]);
		ck_assert_msg(strncmp(e.msg, "base64: ", 8) == 0, "message: %s", e.msg);
		/* a failed decode must not leave half its output behind */
		ck_assert_uint_eq(b.len, 4);
		ck_assert_str_eq((const char *)b.d, "keep");
		cx_buf_free(&b);
	}
	/* an embedded NUL is a bad character, not an end of string */
	cx_buf_init(&b, 0);
	ck_assert_int_eq(cx_b64_decode("Zm\0v", 4, &b, &e), CX_EPARSE);
	cx_buf_free(&b);
	/* the output cap is honoured */
	cx_buf_init(&b, 2);
	ck_assert_int_eq(cx_b64_decode("Zm9v", 4, &b, &e), CX_ETOOBIG);
	cx_buf_free(&b);
}
END_TEST

START_TEST(test_alg_names)
{
	ck_assert_str_eq(cx_keyalg_name(CX_KEY_RSA), "rsa");
	ck_assert_str_eq(cx_keyalg_name(CX_KEY_ED25519), "ed25519");
	ck_assert_str_eq(cx_sigalg_name(CX_SIG_RSAPSS_SHA256), "rsapss-sha256");
	ck_assert_str_eq(cx_sigalg_name(CX_SIG_ED25519), "ed25519");
	ck_assert_int_eq(cx_keyalg_from_name("rsa", 3), CX_KEY_RSA);
	ck_assert_int_eq(cx_keyalg_from_name("ed25519", 7), CX_KEY_ED25519);
	ck_assert_int_eq(cx_keyalg_from_name("RSA", 3), CX_KEY_NONE);
	ck_assert_int_eq(cx_keyalg_from_name("rsa", 2), CX_KEY_NONE);
	ck_assert_int_eq(cx_keyalg_from_name("rsapss-sha256", 13), CX_KEY_NONE);
	ck_assert_int_eq(cx_sigalg_from_name("rsapss-sha256", 13), CX_SIG_RSAPSS_SHA256);
	ck_assert_int_eq(cx_sigalg_from_name("ed25519", 7), CX_SIG_ED25519);
	ck_assert_int_eq(cx_sigalg_from_name("rsa", 3), CX_SIG_NONE);
	ck_assert_int_eq(cx_sigalg_from_name("ed25519x", 8), CX_SIG_NONE);
	ck_assert_int_eq(cx_sigalg_for_key(CX_KEY_RSA), CX_SIG_RSAPSS_SHA256);
	ck_assert_int_eq(cx_sigalg_for_key(CX_KEY_ED25519), CX_SIG_ED25519);
	ck_assert_int_eq(cx_sigalg_for_key(CX_KEY_NONE), CX_SIG_NONE);
}
END_TEST

/* ---- signatures ---- */

static void
check_roundtrip(enum cx_keyalg kalg, size_t want_len)
{
	enum cx_sigalg alg = cx_sigalg_for_key(kalg);
	struct cx_err e = {0};
	struct cx_buf sig, ks;
	EVP_PKEY *k = gen(kalg), *pub = NULL;
	enum cx_keyalg got;
	uint8_t bad[sizeof(msg)];

	sign(k, alg, &sig);
	ck_assert_uint_eq(sig.len, want_len);
	ck_assert_msg(cx_sig_verify(k, alg, msg, sizeof(msg) - 1, sig.d, sig.len, &e) == 0,
	    "verify: %s", e.msg);

	/* and with the public key recovered from the key string */
	cx_buf_init(&ks, 0);
	ck_assert_int_eq(cx_pubkey_string(k, &ks, &e), 0);
	ck_assert_msg(
	    cx_pubkey_parse((const char *)ks.d, ks.len, &pub, &got, &e) == 0, "parse: %s", e.msg);
	ck_assert_int_eq(got, kalg);
	ck_assert_int_eq(cx_sig_verify(pub, alg, msg, sizeof(msg) - 1, sig.d, sig.len, &e), 0);

	/* the public key cannot sign */
	struct cx_buf s2;
	cx_buf_init(&s2, 0);
	ck_assert_int_ne(cx_sig_sign(pub, alg, msg, sizeof(msg) - 1, &s2, &e), 0);
	ck_assert_uint_eq(s2.len, 0);
	cx_buf_free(&s2);

	memcpy(bad, msg, sizeof(msg));
	bad[3] ^= 1;
	ck_assert_int_eq(
	    cx_sig_verify(pub, alg, bad, sizeof(msg) - 1, sig.d, sig.len, &e), CX_ECRYPTO);
	ck_assert_msg(strstr(e.msg, "does not verify") != NULL, "message: %s", e.msg);
	ck_assert_int_eq(
	    cx_sig_verify(pub, alg, msg, sizeof(msg) - 2, sig.d, sig.len, &e), CX_ECRYPTO);

	sig.d[sig.len / 2] ^= 0x40;
	ck_assert_int_eq(
	    cx_sig_verify(pub, alg, msg, sizeof(msg) - 1, sig.d, sig.len, &e), CX_ECRYPTO);
	sig.d[sig.len / 2] ^= 0x40;
	ck_assert_int_eq(cx_sig_verify(pub, alg, msg, sizeof(msg) - 1, sig.d, sig.len, &e), 0);

	/* wrong lengths are refused before OpenSSL sees them */
	ck_assert_int_eq(
	    cx_sig_verify(pub, alg, msg, sizeof(msg) - 1, sig.d, sig.len - 1, &e), CX_ECRYPTO);
	ck_assert_msg(strstr(e.msg, "bytes, expected") != NULL, "message: %s", e.msg);
	ck_assert_int_eq(cx_buf_put_u8(&sig, 0), 0);
	ck_assert_int_eq(
	    cx_sig_verify(pub, alg, msg, sizeof(msg) - 1, sig.d, sig.len, &e), CX_ECRYPTO);
	ck_assert_int_eq(cx_sig_verify(pub, alg, msg, sizeof(msg) - 1, sig.d, 0, &e), CX_ECRYPTO);

	/* nothing left on OpenSSL's error queue after failures */
	ck_assert_uint_eq(ERR_peek_error(), 0);

	cx_buf_free(&ks);
	cx_buf_free(&sig);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(k);
}

START_TEST(test_rsa_roundtrip)
{
	check_roundtrip(CX_KEY_RSA, 256);
}
END_TEST

START_TEST(test_ed25519_roundtrip)
{
	check_roundtrip(CX_KEY_ED25519, 64);
}
END_TEST

START_TEST(test_sign_appends)
{
	struct cx_err e = {0};
	struct cx_buf sig;
	EVP_PKEY *k = gen(CX_KEY_ED25519);

	cx_buf_init(&sig, 0);
	ck_assert_int_eq(cx_buf_put_str(&sig, "xy"), 0);
	ck_assert_int_eq(cx_sig_sign(k, CX_SIG_ED25519, msg, sizeof(msg) - 1, &sig, &e), 0);
	ck_assert_uint_eq(sig.len, 66);
	ck_assert_int_eq(
	    cx_sig_verify(k, CX_SIG_ED25519, msg, sizeof(msg) - 1, sig.d + 2, 64, &e), 0);
	/* too small a buffer: error, and the buffer keeps what it had */
	cx_buf_free(&sig);
	cx_buf_init(&sig, 10);
	ck_assert_int_eq(cx_buf_put_str(&sig, "xy"), 0);
	ck_assert_int_eq(
	    cx_sig_sign(k, CX_SIG_ED25519, msg, sizeof(msg) - 1, &sig, &e), CX_ETOOBIG);
	ck_assert_uint_eq(sig.len, 2);
	cx_buf_free(&sig);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_ed25519_empty_message)
{
	struct cx_err e = {0};
	struct cx_buf sig;
	EVP_PKEY *k = gen(CX_KEY_ED25519);

	cx_buf_init(&sig, 0);
	ck_assert_int_eq(cx_sig_sign(k, CX_SIG_ED25519, NULL, 0, &sig, &e), 0);
	ck_assert_int_eq(cx_sig_verify(k, CX_SIG_ED25519, NULL, 0, sig.d, sig.len, &e), 0);
	cx_buf_free(&sig);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_pss_salt_length)
{
	struct cx_err e = {0};
	EVP_PKEY *k = gen(CX_KEY_RSA);
	uint8_t sig[512];
	size_t len;

	/* a valid PSS signature with salt length 20 is still refused */
	len = pss_sign_raw(k, 20, sig, sizeof(sig));
	ck_assert_uint_eq(len, 256);
	ck_assert_int_eq(pss_verify_raw(k, 20, sig, len), 1);
	ck_assert_int_eq(
	    cx_sig_verify(k, CX_SIG_RSAPSS_SHA256, msg, sizeof(msg) - 1, sig, len, &e), CX_ECRYPTO);
	ck_assert_msg(strstr(e.msg, "does not verify") != NULL, "message: %s", e.msg);
	ck_assert_uint_eq(ERR_peek_error(), 0);

	/* salt length 64 (a longer salt) too */
	len = pss_sign_raw(k, 64, sig, sizeof(sig));
	ck_assert_int_eq(
	    cx_sig_verify(k, CX_SIG_RSAPSS_SHA256, msg, sizeof(msg) - 1, sig, len, &e), CX_ECRYPTO);

	/* and another signer's salt-32 signature verifies */
	len = pss_sign_raw(k, 32, sig, sizeof(sig));
	ck_assert_int_eq(
	    cx_sig_verify(k, CX_SIG_RSAPSS_SHA256, msg, sizeof(msg) - 1, sig, len, &e), 0);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_our_pss_salt_is_32)
{
	struct cx_buf sig;
	EVP_PKEY *k = gen(CX_KEY_RSA);

	sign(k, CX_SIG_RSAPSS_SHA256, &sig);
	ck_assert_int_eq(pss_verify_raw(k, 32, sig.d, sig.len), 1);
	ck_assert_int_eq(pss_verify_raw(k, 20, sig.d, sig.len), 0);
	cx_buf_free(&sig);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_wrong_alg)
{
	struct cx_err e = {0};
	struct cx_buf rsig, esig;
	EVP_PKEY *rsa = gen(CX_KEY_RSA), *ed = gen(CX_KEY_ED25519);

	sign(rsa, CX_SIG_RSAPSS_SHA256, &rsig);
	sign(ed, CX_SIG_ED25519, &esig);

	ck_assert_int_eq(
	    cx_sig_verify(rsa, CX_SIG_ED25519, msg, sizeof(msg) - 1, esig.d, esig.len, &e),
	    CX_ECRYPTO);
	ck_assert_msg(strstr(e.msg, "key algorithm does not match signature algorithm") != NULL,
	    "message: %s", e.msg);
	ck_assert_int_eq(
	    cx_sig_verify(ed, CX_SIG_RSAPSS_SHA256, msg, sizeof(msg) - 1, rsig.d, rsig.len, &e),
	    CX_ECRYPTO);
	ck_assert_msg(strstr(e.msg, "key algorithm does not match signature algorithm") != NULL,
	    "message: %s", e.msg);
	/* the right key with the other scheme's signature bytes */
	ck_assert_int_eq(
	    cx_sig_verify(ed, CX_SIG_ED25519, msg, sizeof(msg) - 1, rsig.d, 64, &e), CX_ECRYPTO);

	struct cx_buf s;
	cx_buf_init(&s, 0);
	ck_assert_int_eq(
	    cx_sig_sign(rsa, CX_SIG_ED25519, msg, sizeof(msg) - 1, &s, &e), CX_ECRYPTO);
	ck_assert_int_eq(
	    cx_sig_sign(ed, CX_SIG_RSAPSS_SHA256, msg, sizeof(msg) - 1, &s, &e), CX_ECRYPTO);
	ck_assert_int_eq(
	    cx_sig_sign(ed, CX_SIG_NONE, msg, sizeof(msg) - 1, &s, &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(cx_sig_verify(ed, CX_SIG_NONE, msg, sizeof(msg) - 1, esig.d, esig.len, &e),
	    CX_EUNSUPPORTED);
	ck_assert_uint_eq(s.len, 0);
	cx_buf_free(&s);

	/* EC keys are neither */
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(ec);
	ck_assert_int_eq(
	    cx_sig_verify(ec, CX_SIG_ED25519, msg, sizeof(msg) - 1, esig.d, esig.len, &e),
	    CX_EUNSUPPORTED);
	EVP_PKEY_free(ec);

	cx_buf_free(&rsig);
	cx_buf_free(&esig);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ed);
}
END_TEST

/* ---- key strings ---- */

START_TEST(test_ed25519_keystr)
{
	static const char ks[] = "ed25519=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
	struct cx_err e = {0};
	struct cx_buf out;
	enum cx_keyalg alg;
	EVP_PKEY *k = NULL;

	/* RFC 8032 test 1 public key */
	ck_assert_msg(cx_pubkey_parse(ks, strlen(ks), &k, &alg, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(alg, CX_KEY_ED25519);
	cx_buf_init(&out, 0);
	ck_assert_int_eq(cx_pubkey_string(k, &out, &e), 0);
	ck_assert_uint_eq(out.len, strlen(ks));
	ck_assert_str_eq((const char *)out.d, ks);
	cx_buf_free(&out);
	EVP_PKEY_free(k);

	/* RFC 8032 test 1 signature of the empty message */
	static const char sig_hex[] =
	    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
	    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
	uint8_t sig[64];
	ck_assert_int_eq(cx_hex_decode(sig_hex, 128, sig, 64), 0);
	ck_assert_int_eq(cx_pubkey_parse(ks, strlen(ks), &k, NULL, &e), 0);
	ck_assert_msg(cx_sig_verify(k, CX_SIG_ED25519, (const uint8_t *)"", 0, sig, 64, &e) == 0,
	    "%s", e.msg);
	EVP_PKEY_free(k);

	/* a generated key */
	k = gen(CX_KEY_ED25519);
	cx_buf_init(&out, 0);
	ck_assert_int_eq(cx_pubkey_string(k, &out, &e), 0);
	ck_assert_uint_eq(out.len, 8 + 44);
	ck_assert_int_eq(memcmp(out.d, "ed25519=", 8), 0);
	EVP_PKEY *pub = NULL;
	ck_assert_int_eq(cx_pubkey_parse((const char *)out.d, out.len, &pub, NULL, &e), 0);
	ck_assert_int_eq(EVP_PKEY_eq(k, pub), 1);
	EVP_PKEY_free(pub);
	cx_buf_free(&out);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_ed25519_keystr_reject)
{
	static const char *bad[] = {
	    "ed25519=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHUQ==",   /* 31 bytes */
	    "ed25519=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURoA",   /* 33 bytes */
	    "ed25519=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo",    /* no padding */
	    "ed25519=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n", /* newline */
	    "ed25519= 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",  /* space */
	    "ed25519=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURr=",   /* trailing bits */
	    "ed25519=",
	};
	struct cx_err e = {0};
	EVP_PKEY *k = (EVP_PKEY *)1;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse_str(bad[i], &k, &e) == CX_EPARSE, "accepted %s", bad[i]);
		ck_assert_ptr_null(k);
		ck_assert_msg(strstr(e.msg, "ed25519 key") != NULL, "message: %s", e.msg);
	}
}
END_TEST

START_TEST(test_keystr_reject)
{
	struct cx_err e = {0};
	EVP_PKEY *k = NULL;

	ck_assert_int_eq(parse_str("dsa=AAAA", &k, &e), CX_EUNSUPPORTED);
	ck_assert_msg(strstr(e.msg, "dsa") != NULL, "message: %s", e.msg);
	ck_assert_int_eq(parse_str("RSA=AAAA", &k, &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(parse_str("rsapss-sha256=AAAA", &k, &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(parse_str("=AAAA", &k, &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(parse_str("ed25519", &k, &e), CX_EPARSE);
	ck_assert_int_eq(parse_str("", &k, &e), CX_EPARSE);
	ck_assert_ptr_null(k);
	/* the split is at the first '=' */
	ck_assert_int_eq(
	    parse_str("ed25519==11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", &k, &e), CX_EPARSE);
}
END_TEST

START_TEST(test_rsa_keystr)
{
	struct cx_err e = {0};
	struct cx_buf out;
	EVP_PKEY *k = gen(CX_KEY_RSA), *pub = NULL;
	char *ossl = ossl_rsa_keystr(k);
	enum cx_keyalg alg;

	/* ours is byte for byte what openssl (and conex, after trimming) writes */
	cx_buf_init(&out, 0);
	ck_assert_int_eq(cx_pubkey_string(k, &out, &e), 0);
	ck_assert_str_eq((const char *)out.d, ossl);
	ck_assert_int_ne(out.d[out.len - 1], '\n');
	ck_assert_msg(cx_pubkey_parse(ossl, strlen(ossl), &pub, &alg, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(alg, CX_KEY_RSA);
	ck_assert_int_eq(EVP_PKEY_eq(k, pub), 1);
	EVP_PKEY_free(pub);

	/* appends */
	size_t one = out.len;
	ck_assert_int_eq(cx_pubkey_string(k, &out, &e), 0);
	ck_assert_uint_eq(out.len, 2 * one);

	cx_buf_free(&out);
	free(ossl);
	EVP_PKEY_free(k);
}
END_TEST

/* Replaces the first occurrence of from in s by to. */
static char *
edit(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	char *r;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_ne(asprintf(&r, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from)), -1);
	return r;
}

START_TEST(test_rsa_keystr_reject)
{
	struct cx_err e = {0};
	EVP_PKEY *k = gen(CX_KEY_RSA), *pub = NULL;
	char *good = ossl_rsa_keystr(k), *bad;
	char line1[65];

	ck_assert_int_eq(parse_str(good, &pub, &e), 0);
	EVP_PKEY_free(pub);
	pub = NULL;

	/* trailing newline */
	ck_assert_int_ne(asprintf(&bad, "%s\n", good), -1);
	ck_assert_int_eq(parse_str(bad, &pub, &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "END PUBLIC KEY") != NULL, "message: %s", e.msg);
	free(bad);
	/* blank line before the footer */
	bad = edit(good, "\n-----END", "\n\n-----END");
	ck_assert_int_eq(parse_str(bad, &pub, &e), CX_EPARSE);
	free(bad);
	/* CRLF */
	bad = edit(good, "KEY-----\n", "KEY-----\r\n");
	ck_assert_int_eq(parse_str(bad, &pub, &e), CX_EPARSE);
	free(bad);
	/* lines of other widths: join the first two lines */
	memcpy(line1, good + 4 + 27, 64);
	line1[64] = '\0';
	char *l1nl;
	ck_assert_int_ne(asprintf(&l1nl, "%s\n", line1), -1);
	bad = edit(good, l1nl, line1);
	ck_assert_int_eq(parse_str(bad, &pub, &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "columns") != NULL, "message: %s", e.msg);
	free(bad);
	free(l1nl);
	/* RSA PUBLIC KEY (PKCS#1) framing */
	bad = edit(good, "BEGIN PUBLIC", "BEGIN RSA PUBLIC");
	ck_assert_int_eq(parse_str(bad, &pub, &e), CX_EPARSE);
	free(bad);
	/* corrupted DER */
	bad = edit(good, "MIIB", "MIIC");
	ck_assert_int_eq(parse_str(bad, &pub, &e), CX_EPARSE);
	free(bad);
	ck_assert_ptr_null(pub);
	ck_assert_uint_eq(ERR_peek_error(), 0);
	free(good);
	EVP_PKEY_free(k);

	/* an RSA-1024 key */
	k = EVP_RSA_gen(1024);
	ck_assert_ptr_nonnull(k);
	good = ossl_rsa_keystr(k);
	ck_assert_int_eq(parse_str(good, &pub, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "1024 bits") != NULL && strstr(e.msg, "2048") != NULL,
	    "message: %s", e.msg);
	ck_assert_ptr_null(pub);
	/* and it can neither verify nor sign */
	uint8_t sig[128] = {0};
	ck_assert_int_eq(
	    cx_sig_verify(k, CX_SIG_RSAPSS_SHA256, msg, sizeof(msg) - 1, sig, 128, &e), CX_ECRYPTO);
	struct cx_buf s;
	cx_buf_init(&s, 0);
	ck_assert_int_ne(cx_sig_sign(k, CX_SIG_RSAPSS_SHA256, msg, sizeof(msg) - 1, &s, &e), 0);
	cx_buf_free(&s);
	free(good);
	EVP_PKEY_free(k);

	/* an EC key in rsa= clothing */
	k = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(k);
	good = ossl_rsa_keystr(k);
	ck_assert_int_eq(parse_str(good, &pub, &e), CX_EUNSUPPORTED);
	ck_assert_msg(strstr(e.msg, "EC") != NULL, "message: %s", e.msg);
	ck_assert_ptr_null(pub);
	struct cx_buf ks;
	cx_buf_init(&ks, 0);
	ck_assert_int_eq(cx_pubkey_string(k, &ks, &e), CX_EUNSUPPORTED);
	ck_assert_uint_eq(ks.len, 0);
	cx_buf_free(&ks);
	free(good);
	EVP_PKEY_free(k);

	/* an Ed25519 key in rsa= clothing */
	k = gen(CX_KEY_ED25519);
	good = ossl_rsa_keystr(k);
	ck_assert_int_eq(parse_str(good, &pub, &e), CX_EUNSUPPORTED);
	free(good);
	EVP_PKEY_free(k);
}
END_TEST

/* ---- private keys ---- */

static void
check_privkey_pem(enum cx_keyalg alg)
{
	struct cx_err e = {0};
	struct cx_buf pem, sig;
	EVP_PKEY *k = gen(alg), *k2 = NULL;

	cx_buf_init(&pem, 0);
	ck_assert_int_eq(cx_privkey_pem(k, &pem, &e), 0);
	ck_assert_msg(
	    strncmp((const char *)pem.d, "-----BEGIN PRIVATE KEY-----\n", 28) == 0, "%s", pem.d);
	ck_assert_msg(cx_privkey_load_pem(pem.d, pem.len, &k2, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(EVP_PKEY_eq(k, k2), 1);
	sign(k2, cx_sigalg_for_key(alg), &sig);
	ck_assert_int_eq(
	    cx_sig_verify(k, cx_sigalg_for_key(alg), msg, sizeof(msg) - 1, sig.d, sig.len, &e), 0);
	cx_buf_free(&sig);
	cx_buf_free_wipe(&pem);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k);
}

START_TEST(test_privkey_pem_rsa)
{
	check_privkey_pem(CX_KEY_RSA);
}
END_TEST

START_TEST(test_privkey_pem_ed25519)
{
	check_privkey_pem(CX_KEY_ED25519);
}
END_TEST

START_TEST(test_privkey_pkcs1)
{
	struct cx_err e = {0};
	EVP_PKEY *k = gen(CX_KEY_RSA), *k2 = NULL;
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;

	ck_assert_int_eq(PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &data);
	ck_assert_int_eq(strncmp(data, "-----BEGIN RSA PRIVATE KEY-----\n", 32), 0);
	ck_assert_msg(cx_privkey_load_pem((uint8_t *)data, (size_t)n, &k2, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(EVP_PKEY_eq(k, k2), 1);
	BIO_free(b);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_privkey_reject)
{
	struct cx_err e = {0};
	EVP_PKEY *k = gen(CX_KEY_ED25519), *k2 = NULL;
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;

	/* encrypted: fails without asking for a passphrase */
	ck_assert_int_eq(
	    PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_256_cbc(), "secret", 6, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &data);
	ck_assert_int_eq(cx_privkey_load_pem((uint8_t *)data, (size_t)n, &k2, &e), CX_EUNSUPPORTED);
	ck_assert_ptr_null(k2);
	ck_assert_msg(strstr(e.msg, "encrypted") != NULL, "message: %s", e.msg);
	ck_assert_uint_eq(ERR_peek_error(), 0);
	BIO_free(b);
	EVP_PKEY_free(k);

	ck_assert_int_eq(cx_privkey_load_pem((const uint8_t *)"", 0, &k2, &e), CX_EPARSE);
	ck_assert_int_eq(cx_privkey_load_pem((const uint8_t *)"garbage", 7, &k2, &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "no PEM block") != NULL, "message: %s", e.msg);
	static const char badder[] =
	    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
	ck_assert_int_eq(
	    cx_privkey_load_pem((const uint8_t *)badder, sizeof(badder) - 1, &k2, &e), CX_EPARSE);
	ck_assert_uint_eq(ERR_peek_error(), 0);

	/* a public key is not a private key */
	k = gen(CX_KEY_RSA);
	char *pub = ossl_rsa_keystr(k);
	ck_assert_int_eq(
	    cx_privkey_load_pem((uint8_t *)pub + 4, strlen(pub) - 4, &k2, &e), CX_EPARSE);
	free(pub);
	EVP_PKEY_free(k);

	/* EC private keys are not conex keys */
	k = EVP_EC_gen("P-256");
	b = BIO_new(BIO_s_mem());
	ck_assert_int_eq(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &data);
	ck_assert_int_eq(cx_privkey_load_pem((uint8_t *)data, (size_t)n, &k2, &e), CX_EUNSUPPORTED);
	ck_assert_ptr_null(k2);
	struct cx_buf pem;
	cx_buf_init(&pem, 0);
	ck_assert_int_eq(cx_privkey_pem(k, &pem, &e), CX_EUNSUPPORTED);
	cx_buf_free(&pem);
	BIO_free(b);
	EVP_PKEY_free(k);

	/* RSA-1024 */
	k = EVP_RSA_gen(1024);
	b = BIO_new(BIO_s_mem());
	ck_assert_int_eq(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &data);
	ck_assert_int_eq(cx_privkey_load_pem((uint8_t *)data, (size_t)n, &k2, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "1024 bits") != NULL, "message: %s", e.msg);
	BIO_free(b);
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_generate_params)
{
	struct cx_err e = {0};
	EVP_PKEY *k = NULL;
	BIGNUM *bn = NULL;

	ck_assert_int_eq(cx_privkey_generate(CX_KEY_RSA, 1024, &k, &e), CX_EINVAL);
	ck_assert_int_eq(cx_privkey_generate(CX_KEY_RSA, 8192, &k, &e), CX_EINVAL);
	ck_assert_int_eq(cx_privkey_generate(CX_KEY_NONE, 0, &k, &e), CX_EUNSUPPORTED);
	ck_assert_ptr_null(k);
	ck_assert_int_eq(cx_privkey_generate(CX_KEY_RSA, 2048, &k, &e), 0);
	ck_assert_int_eq(EVP_PKEY_get_bits(k), 2048);
	ck_assert_int_eq(EVP_PKEY_get_bn_param(k, "e", &bn), 1);
	ck_assert_int_eq(BN_get_word(bn), 65537);
	BN_free(bn);
	EVP_PKEY_free(k);
	/* rsa_bits is ignored for Ed25519 */
	ck_assert_int_eq(cx_privkey_generate(CX_KEY_ED25519, 0, &k, &e), 0);
	ck_assert_int_eq(EVP_PKEY_is_a(k, "ED25519"), 1);
	EVP_PKEY_free(k);
}
END_TEST

/* ---- the signed test repository ---- */

/*
 * Appends every key string in file (the triple-quoted Data after `"""\` and a
 * newline) to ks[], up to max.
 */
static int
keystrings(const char *path, char **ks, int n, int max)
{
	size_t len;
	char *d = (char *)cx_test_read(path, &len), *p, *q;

	ck_assert_msg(d != NULL, "cannot read %s", path);
	for (p = d; (p = strstr(p, "\"\"\"\\\n")) != NULL && n < max; p = q + 3) {
		p += 5;
		ck_assert_ptr_nonnull(q = strstr(p, "\"\"\""));
		ck_assert_ptr_nonnull(ks[n++] = strndup(p, (size_t)(q - p)));
	}
	free(d);
	return n;
}

START_TEST(test_testrepo_keys)
{
	const char *shared = cx_test_shared();
	static const char *files[] = {"keys/m1", "keys/m2", "keys/m3", "root", "snap", "timestamp"};
	char path[4096], hex[CX_SHA256_HEX + 1], *ks[32];
	struct cx_err e = {0};
	struct dirent *de;
	uint8_t id[CX_SHA256_LEN];
	int nks = 0, npriv = 0, i, matched;
	DIR *dir;

	if (shared == NULL) {
		fprintf(stderr, "test_testrepo_keys: skipped, shared directory absent\n");
		return;
	}
	for (i = 0; i < (int)(sizeof(files) / sizeof(files[0])); i++) {
		snprintf(path, sizeof(path), "%s/vectors/testrepo/%s", shared, files[i]);
		nks = keystrings(path, ks, nks, 32);
	}
	ck_assert_int_ge(nks, 6);

	/* the key string of m1, as quoted in section 5 */
	snprintf(path, sizeof(path), "%s/vectors/testrepo/keys/m1", shared);
	char *m1[1];
	ck_assert_int_eq(keystrings(path, m1, 0, 1), 1);
	ck_assert_uint_eq(strlen(m1[0]), 803);
	cx_keyid(m1[0], strlen(m1[0]), id);
	cx_hex_encode(id, sizeof(id), hex);
	ck_assert_str_eq(hex, "2ad4be04dc2975ffb535051182bfd3b50bc335eca8217bee157f28459794d0df");
	free(m1[0]);

	/* every published key string parses and prints back byte for byte */
	for (i = 0; i < nks; i++) {
		EVP_PKEY *k = NULL;
		struct cx_buf out;
		enum cx_keyalg alg;

		ck_assert_msg(cx_pubkey_parse(ks[i], strlen(ks[i]), &k, &alg, &e) == 0,
		    "key %d: %s", i, e.msg);
		ck_assert_int_eq(alg, CX_KEY_RSA);
		cx_buf_init(&out, 0);
		ck_assert_int_eq(cx_pubkey_string(k, &out, &e), 0);
		ck_assert_str_eq((const char *)out.d, ks[i]);
		cx_buf_free(&out);
		EVP_PKEY_free(k);
	}

	/* every private key yields the key id in its file name */
	snprintf(path, sizeof(path), "%s/vectors/testrepo/priv", shared);
	ck_assert_ptr_nonnull(dir = opendir(path));
	while ((de = readdir(dir)) != NULL) {
		const char *h = strstr(de->d_name, ".sha256="), *end;
		struct cx_buf out;
		EVP_PKEY *k = NULL;
		uint8_t *pem;
		size_t len;

		if (h == NULL || (end = strstr(h, ".private")) == NULL || end[8] != '\0')
			continue;
		h += 8;
		ck_assert_int_eq(end - h, CX_SHA256_HEX);
		snprintf(path, sizeof(path), "%s/vectors/testrepo/priv/%s", shared, de->d_name);
		ck_assert_ptr_nonnull(pem = cx_test_read(path, &len));
		ck_assert_msg(
		    cx_privkey_load_pem(pem, len, &k, &e) == 0, "%s: %s", de->d_name, e.msg);
		free(pem);
		cx_buf_init(&out, 0);
		ck_assert_int_eq(cx_pubkey_string(k, &out, &e), 0);
		cx_keyid((const char *)out.d, out.len, id);
		cx_hex_encode(id, sizeof(id), hex);
		ck_assert_msg(
		    strncmp(hex, h, CX_SHA256_HEX) == 0, "%s: key id %s", de->d_name, hex);
		/* and its public key is one of those published in the repository */
		for (matched = 0, i = 0; i < nks; i++)
			matched |= strcmp(ks[i], (const char *)out.d) == 0;
		ck_assert_msg(matched, "%s: public key not in the repository", de->d_name);

		/* signing with it works and verifies with the published key */
		struct cx_buf sig;
		EVP_PKEY *pub = NULL;
		sign(k, CX_SIG_RSAPSS_SHA256, &sig);
		ck_assert_int_eq(cx_pubkey_parse((const char *)out.d, out.len, &pub, NULL, &e), 0);
		ck_assert_int_eq(cx_sig_verify(pub, CX_SIG_RSAPSS_SHA256, msg, sizeof(msg) - 1,
		                     sig.d, sig.len, &e),
		    0);
		ck_assert_uint_eq(sig.len, (size_t)EVP_PKEY_get_size(pub));
		cx_buf_free(&sig);
		EVP_PKEY_free(pub);
		cx_buf_free(&out);
		EVP_PKEY_free(k);
		npriv++;
	}
	closedir(dir);
	ck_assert_int_eq(npriv, 6);
	for (i = 0; i < nks; i++)
		free(ks[i]);
}
END_TEST

static Suite *
crypto_suite(void)
{
	Suite *s = suite_create("crypto");
	TCase *tc;

	tc = tcase_create("encodings");
	tcase_add_test(tc, test_sha256);
	tcase_add_test(tc, test_hex);
	tcase_add_test(tc, test_b64_vectors);
	tcase_add_test(tc, test_b64_all_bytes);
	tcase_add_test(tc, test_b64_reject);
	tcase_add_test(tc, test_alg_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("signatures");
	tcase_add_test(tc, test_rsa_roundtrip);
	tcase_add_test(tc, test_ed25519_roundtrip);
	tcase_add_test(tc, test_sign_appends);
	tcase_add_test(tc, test_ed25519_empty_message);
	tcase_add_test(tc, test_pss_salt_length);
	tcase_add_test(tc, test_our_pss_salt_is_32);
	tcase_add_test(tc, test_wrong_alg);
	suite_add_tcase(s, tc);

	tc = tcase_create("keys");
	tcase_add_test(tc, test_ed25519_keystr);
	tcase_add_test(tc, test_ed25519_keystr_reject);
	tcase_add_test(tc, test_keystr_reject);
	tcase_add_test(tc, test_rsa_keystr);
	tcase_add_test(tc, test_rsa_keystr_reject);
	tcase_add_test(tc, test_privkey_pem_rsa);
	tcase_add_test(tc, test_privkey_pem_ed25519);
	tcase_add_test(tc, test_privkey_pkcs1);
	tcase_add_test(tc, test_privkey_reject);
	tcase_add_test(tc, test_generate_params);
	tcase_add_test(tc, test_testrepo_keys);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(crypto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
