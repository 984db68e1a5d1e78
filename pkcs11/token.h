/*
 * pkcs11/: every Cryptoki call of the project.  Modules are loaded with
 * p11-kit from an allow-list; each token is opened as a cx_p11_token that owns
 * one session and must be used by one thread at a time (sharing a session
 * between threads crashes SoftHSM).  Knows nothing of the agent's policy or
 * protocol.  Talks PKCS#11 directly: libp11 0.4.12 cannot list keys on a token
 * that holds an Ed25519 key.
 */
#ifndef CX_PKCS11_TOKEN_H
#define CX_PKCS11_TOKEN_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/err.h"

/* Token-specific failures, beyond proto/err.h's codes. */
enum cx_p11_rc {
	CX_P11_ABSENT = -100,        /* no token, device removed, session lost: reopen later */
	CX_P11_PIN_REQUIRED = -101,  /* not logged in */
	CX_P11_PIN_INCORRECT = -102, /* the PIN was wrong: never retried */
	CX_P11_PIN_LOCKED = -103,
	CX_P11_PIN_FINAL_TRY = -104, /* refused: the token says the next wrong PIN locks it */
	CX_P11_TOKEN_ERROR = -105,   /* any other CKR_*: the message names it */
	CX_P11_KEY_ABSENT = -106     /* the key is gone from the token */
};

enum cx_p11_alg { CX_P11_RSA = 1, CX_P11_ED25519 = 2, CX_P11_ECDSA_P256 = 3 };
enum cx_p11_mech { CX_P11_RSA_PSS_SHA256 = 1, CX_P11_EDDSA = 2, CX_P11_ECDSA_SHA256 = 3 };

struct cx_p11_module;
struct cx_p11_token;

struct cx_p11_token_info {
	unsigned long slot;
	char serial[17]; /* CK_TOKEN_INFO fields, blank-padding removed, NUL-terminated */
	char label[33];
	char manufacturer[33];
	char model[17];
	int login_required; /* CKF_LOGIN_REQUIRED */
	int protected_path; /* CKF_PROTECTED_AUTHENTICATION_PATH: PIN pad */
	int pin_count_low;  /* CKF_USER_PIN_COUNT_LOW */
	int pin_final_try;  /* CKF_USER_PIN_FINAL_TRY */
	int pin_locked;     /* CKF_USER_PIN_LOCKED */
};

struct cx_p11_key {
	char *label;    /* CKA_LABEL: the conex identity */
	uint8_t *ckaid; /* CKA_ID */
	size_t ckaidlen;
	enum cx_p11_alg alg;
	int bits;          /* RSA modulus bits; 256 for EC, 255 for Ed25519 */
	char *keystr;      /* conex public key string, as conex/crypto.h's cx_pubkey_string */
	uint8_t keyid[32]; /* sha256(keystr): the conex key id */
	int always_auth;   /* CKA_ALWAYS_AUTHENTICATE */
	int sensitive;     /* CKA_SENSITIVE */
	int extractable;   /* CKA_EXTRACTABLE */
	char *uri; /* RFC 7512: pkcs11:token=...;serial=...;id=%..;object=...;type=private */
};

/*
 * Loads a module after checking its realpath against allow (realpaths too),
 * and C_Initializes it with CKF_OS_LOCKING_OK.  A symlink outside the list
 * that resolves to a listed module is accepted; a copy is not.  Loading a
 * module that this process has loaded already (by any path) is refused with
 * CX_EINVAL "already loaded": load once.  Never fork after this.
 */
int cx_p11_module_load(const char *path, const char *const *allow, size_t nallow,
    struct cx_p11_module **out, struct cx_err *e);
void cx_p11_module_unload(struct cx_p11_module *m); /* C_Finalize */
const char *cx_p11_module_path(const struct cx_p11_module *m);

/*
 * Like cx_p11_module_load, but the module is never loaded into this process:
 * its realpath is checked against allow as there, and then a helper process
 * (`exe --p11-helper MODULE PPID`, posix_spawn, so no fork) loads it and
 * answers cx_p11_slots and cx_p11_token_info; each cx_p11_token_open starts a
 * helper of its own that holds that token's session, and every token call is
 * forwarded to it.  Tokens then sign in parallel however the module locks,
 * a module that crashes loses a helper, not the caller, and the caller never
 * runs the module's code.  exe must run cx_p11_helper_main for that argv
 * (conex-agent: "/proc/self/exe").
 *
 * busy (may be NULL): the caller's count of calls in flight on all its
 * tokens.  While it is 1 or less, a caller waiting for its helper's answer
 * polls for up to CX_P11R_SPIN_US before it sleeps: on a virtual machine,
 * waking a sleeping thread on an idle CPU costs tens of microseconds, a
 * sizeable part of a SoftHSM signature.  Beside other calls it sleeps at
 * once, leaving the CPU to them.
 */
int cx_p11_module_load_helper(const char *path, const char *const *allow, size_t nallow,
    const char *exe, const atomic_int *busy, struct cx_p11_module **out, struct cx_err *e);
/*
 * For a token held by a helper: fn(arg) runs in every call after the request
 * is sent, while the helper works (the agent syncs its audit line there,
 * overlapping the token's signature without another thread).  fn NULL
 * clears it.  An in-process token has no such moment: CX_EUNSUPPORTED, and
 * fn never runs.
 */
int cx_p11_token_set_overlap(struct cx_p11_token *t, void (*fn)(void *), void *arg);
/* The helper's main: serves one token on fd 0 until EOF.  The exit status. */
int cx_p11_helper_main(int argc, char **argv);

/* Slots that hold a token right now. *slots is malloc'ed. */
int cx_p11_slots(struct cx_p11_module *m, unsigned long **slots, size_t *n, struct cx_err *e);
int cx_p11_token_info(
    struct cx_p11_module *m, unsigned long slot, struct cx_p11_token_info *out, struct cx_err *e);

/* Opens a R/W user session on the token in slot. */
int cx_p11_token_open(
    struct cx_p11_module *m, unsigned long slot, struct cx_p11_token **out, struct cx_err *e);
void cx_p11_token_close(struct cx_p11_token *t);
/* Info as of open (serial, label...), refreshed by cx_p11_token_refresh. */
const struct cx_p11_token_info *cx_p11_token_get_info(const struct cx_p11_token *t);
int cx_p11_token_refresh(struct cx_p11_token *t, struct cx_err *e);
/*
 * After any CX_P11_ABSENT the token is marked lost and every call that needs
 * the session returns CX_P11_ABSENT until cx_p11_token_reopen opens a new
 * session on the same slot, which it does only if the slot still holds the
 * same token (serial, label, manufacturer, model).  The login is gone then.
 */
int cx_p11_token_lost(const struct cx_p11_token *t);
int cx_p11_token_reopen(struct cx_p11_token *t, struct cx_err *e);

/*
 * C_Login(CKU_USER).  A wrong PIN is CX_P11_PIN_INCORRECT and is never
 * retried here.  When the token flags CKF_USER_PIN_FINAL_TRY and
 * allow_final_try is 0, nothing is sent and CX_P11_PIN_FINAL_TRY is returned.
 * Already logged in is success.  A token with a protected authentication path
 * logs in with a NULL PIN (pin == NULL).
 */
int cx_p11_token_login(
    struct cx_p11_token *t, const char *pin, size_t pinlen, int allow_final_try, struct cx_err *e);
int cx_p11_token_logout(struct cx_p11_token *t);
int cx_p11_token_logged_in(struct cx_p11_token *t);

/* The private keys of the token with a public half we can read (or derive). Frees with cx_p11_keys_free. */
int cx_p11_token_keys(
    struct cx_p11_token *t, struct cx_p11_key **keys, size_t *n, struct cx_err *e);
void cx_p11_keys_free(struct cx_p11_key *keys, size_t n);

/*
 * Signs data with the key (found by CKA_ID and class and checked against its
 * key id; the handle is then cached in t until the session, the login or the
 * token changes, or the token rejects it).  RSA:
 * CKM_SHA256_RSA_PKCS_PSS (SHA-256, MGF1-SHA-256, salt 32) over data, or
 * CKM_RSA_PKCS_PSS over a host-computed hash where the token lacks it;
 * Ed25519: CKM_EDDSA over data; ECDSA P-256: CKM_ECDSA over the host SHA-256
 * of data, the raw r||s converted to DER.  For a CKA_ALWAYS_AUTHENTICATE key
 * the context-specific login uses pin (NULL: CX_P11_PIN_REQUIRED).  Appends
 * the signature to sig.
 */
int cx_p11_token_sign(struct cx_p11_token *t, const struct cx_p11_key *k, enum cx_p11_mech mech,
    const uint8_t *data, size_t n, const char *pin, size_t pinlen, struct cx_buf *sig,
    struct cx_err *e);

/*
 * The most cx_p11_token_sign_start sends: well below a socket buffer, so
 * that its send never waits.
 */
#define CX_P11_ASYNC_MAX ((size_t)32 * 1024)
/*
 * A signature that an event loop waits for instead of a thread (tokens in
 * helper processes only; no PIN, so not for CKA_ALWAYS_AUTHENTICATE keys):
 * _start sends the request, without ever blocking, and sets *fd, which
 * turns readable when the answer comes; _finish then reads what has come
 * and sets *more until the answer is whole, and returns what
 * cx_p11_token_sign would have.  Between the two no other call may be made
 * on t, except _abandon, which gives up on the answer: the helper is killed
 * and the token is lost (its session and login), as on removal.  An
 * in-process token, or more than CX_P11_ASYNC_MAX bytes:
 * CX_EUNSUPPORTED or CX_ETOOBIG, and nothing was sent.
 */
int cx_p11_token_sign_start(struct cx_p11_token *t, const struct cx_p11_key *k,
    enum cx_p11_mech mech, const uint8_t *data, size_t n, int *fd, struct cx_err *e);
int cx_p11_token_sign_finish(
    struct cx_p11_token *t, struct cx_buf *sig, int *more, struct cx_err *e);
void cx_p11_token_sign_abandon(struct cx_p11_token *t);

/*
 * Generates a key pair on the token: CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE,
 * not CKA_EXTRACTABLE, CKA_LABEL = label, a fresh random CKA_ID.  RSA with
 * bits 2048..4096 (e = 65537), Ed25519 (CKM_EC_EDWARDS_KEY_PAIR_GEN), or
 * ECDSA P-256.  Fills out like cx_p11_token_keys does.
 */
int cx_p11_token_generate(struct cx_p11_token *t, const char *label, enum cx_p11_alg alg, int bits,
    struct cx_p11_key *out, struct cx_err *e);

/* RFC 7512 matching: does the URI select this token (and, if it names an object, this key)? */
int cx_p11_uri_match_token(const char *uri, const struct cx_p11_token_info *ti, struct cx_err *e);
int cx_p11_uri_match_key(const char *uri, const struct cx_p11_token_info *ti,
    const struct cx_p11_key *k, struct cx_err *e);

#endif
