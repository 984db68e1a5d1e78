/*
 * Software keys (conex ~/.conex/<id>.<keyid>.private PEM files) loaded into
 * the agent, ssh-add style, for authors without a token.  Ed25519 seeds live
 * in libsodium guarded memory and sign with crypto_sign_detached; RSA keys
 * live in OpenSSL's secure heap (CRYPTO_secure_malloc_init at start-up).  No
 * function ever returns private key bytes.
 */
#ifndef CX_AGENT_SOFTKEY_H
#define CX_AGENT_SOFTKEY_H

#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/err.h"

struct cx_softkey;

/* Parses pem (PKCS#1 or PKCS#8, unencrypted); the caller wipes pem afterwards. */
int cx_softkey_load(
    const char *id, const uint8_t *pem, size_t pemlen, struct cx_softkey **out, struct cx_err *e);
void cx_softkey_free(struct cx_softkey *k); /* wipes */
const char *cx_softkey_id(const struct cx_softkey *k);
const char *cx_softkey_keystr(const struct cx_softkey *k); /* conex public key string */
const uint8_t *cx_softkey_keyid(const struct cx_softkey *k);
int cx_softkey_is_ed25519(const struct cx_softkey *k);
/*
 * 1 when the private key is in protected memory: always for Ed25519 (sodium
 * guarded pages); for RSA, when OpenSSL's secure heap was initialised and took
 * the key's private components at load time.
 */
int cx_softkey_protected(const struct cx_softkey *k);
/* RSA-PSS-SHA256 (salt 32) or Ed25519 over data; appends to sig. */
int cx_softkey_sign(
    struct cx_softkey *k, const uint8_t *data, size_t n, struct cx_buf *sig, struct cx_err *e);

#endif
