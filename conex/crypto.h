/*
 * Hashes, strict encodings, and the two conex signature schemes on OpenSSL 3
 * EVP, in-process: RSASSA-PSS-SHA256 (MGF1-SHA256, salt length 32) and pure
 * Ed25519 (RFC 8032) over the to-be-signed bytes.
 */
#ifndef CX_CRYPTO_H
#define CX_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "proto/buf.h"
#include "proto/err.h"

enum cx_keyalg { CX_KEY_NONE = 0, CX_KEY_RSA = 1, CX_KEY_ED25519 = 2 };
enum cx_sigalg { CX_SIG_NONE = 0, CX_SIG_RSAPSS_SHA256 = 1, CX_SIG_ED25519 = 2 };

#define CX_SHA256_LEN 32
#define CX_SHA256_HEX 64

void cx_sha256(const void *p, size_t n, uint8_t out[CX_SHA256_LEN]);
/* The same in pieces: begin (NULL: out of memory), update, end (frees the context). */
EVP_MD_CTX *cx_sha256_begin(void);
void cx_sha256_update(EVP_MD_CTX *c, const void *p, size_t n);
void cx_sha256_end(EVP_MD_CTX *c, uint8_t out[CX_SHA256_LEN]);
/* Lowercase hex, NUL-terminated: out holds 2n+1 bytes. */
void cx_hex_encode(const uint8_t *p, size_t n, char *out);
/* Strict: exactly 2*outlen lowercase hex digits. 0 or CX_EPARSE. */
int cx_hex_decode(const char *s, size_t slen, uint8_t *out, size_t outlen);

/* Standard alphabet, '=' padding required, no whitespace or trailing garbage. */
int cx_b64_encode(const uint8_t *p, size_t n, struct cx_buf *out);
int cx_b64_decode(const char *s, size_t n, struct cx_buf *out, struct cx_err *e);

/* Names used in conex files: "rsa" / "ed25519"; "rsapss-sha256" / "ed25519". */
const char *cx_keyalg_name(enum cx_keyalg a);
const char *cx_sigalg_name(enum cx_sigalg a);
enum cx_keyalg cx_keyalg_from_name(const char *s, size_t n);
enum cx_sigalg cx_sigalg_from_name(const char *s, size_t n);
/* The signature scheme a key algorithm signs with. */
enum cx_sigalg cx_sigalg_for_key(enum cx_keyalg a);

/*
 * Public key from its conex key string "rsa=<PEM SPKI>" or "ed25519=<base64 of
 * 32 bytes>" (conex-format.md §4.3).  RSA keys below 2048 bits are refused.
 */
int cx_pubkey_parse(
    const char *keystr, size_t len, EVP_PKEY **out, enum cx_keyalg *alg, struct cx_err *e);
/* The conex key string of a public or private key, no trailing newline. */
int cx_pubkey_string(EVP_PKEY *k, struct cx_buf *out, struct cx_err *e);
/* Key id: sha256 of the key string (§5). */
void cx_keyid(const char *keystr, size_t len, uint8_t out[CX_SHA256_LEN]);

/* 0 when the signature is valid; CX_ECRYPTO (with a reason) otherwise. */
int cx_sig_verify(EVP_PKEY *k, enum cx_sigalg alg, const uint8_t *msg, size_t n, const uint8_t *sig,
    size_t siglen, struct cx_err *e);
/* Signs msg; appends the raw signature to sig. */
int cx_sig_sign(EVP_PKEY *k, enum cx_sigalg alg, const uint8_t *msg, size_t n, struct cx_buf *sig,
    struct cx_err *e);

/* PEM private key: PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY". */
int cx_privkey_load_pem(const uint8_t *pem, size_t n, EVP_PKEY **out, struct cx_err *e);
int cx_privkey_generate(enum cx_keyalg alg, int rsa_bits, EVP_PKEY **out, struct cx_err *e);
/* Unencrypted PKCS#8 PEM (for tests and software keys). */
int cx_privkey_pem(EVP_PKEY *k, struct cx_buf *out, struct cx_err *e);

#endif
