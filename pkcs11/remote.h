/*
 * Private to pkcs11/: a token whose session lives in a helper process.
 *
 * Why: a module serialises what two threads of one process ask of it (SoftHSM
 * and OpenSSL 3 take process-wide locks, OpenSC one lock for every call), so
 * two tokens in one process do not sign twice as fast and one waiting for a
 * touch holds the other; and a module that crashes takes its process along.
 * With cx_p11_module_load_helper the caller never loads the module: one
 * helper (`EXE --p11-helper MODULE PPID`, posix_spawn: exec at once, nothing
 * of this process runs in the child, so "never fork after C_Initialize"
 * holds) answers the module's slot and token queries, and each
 * cx_p11_token_open spawns another that C_Initializes the module itself and
 * serves that one token's calls over a socketpair.
 * The cx_p11_token the caller holds keeps a mirror of the helper's token
 * info, lost flag and login state, refreshed by every answer.
 *
 * The wire, both ways: u32 length (big endian) then the body.  A request is
 * u8 op and its fields; an answer is i32 rc, u8 state (bit 0: the session
 * is lost, bit 1: logged in as the user), the token info, the
 * error message, then the op's fields.  Strings and byte strings are u32
 * length then bytes, with a cap per field; strings hold no NUL.  The agent
 * reads every answer with the same bounds as any other untrusted input: the
 * helper runs a vendor's module.
 */
#ifndef CX_PKCS11_REMOTE_H
#define CX_PKCS11_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "pkcs11/token.h"
#include "proto/buf.h"
#include "proto/err.h"

#define CX_P11R_VERSION 1
/* a SIGN carries up to 64 MiB of data (proto/msg.h CX_PROTO_SIGN_MAX) plus the key */
#define CX_P11R_REQ_MAX ((size_t)65 * 1024 * 1024)
/* KEYS: up to CX_P11_MAX_OBJECTS keys of a few kB each */
#define CX_P11R_REP_MAX ((size_t)32 * 1024 * 1024)
#define CX_P11R_STR_MAX ((size_t)16 * 1024)
/* how long a caller with nothing else to do polls for the helper's answer before sleeping */
#define CX_P11R_SPIN_US 2000
/*
 * How long a helper polls for the next request after answering a SIGN that
 * came with poll set (this agent always sets it) before sleeping.
 */
#define CX_P11R_HELPER_SPIN_US 200

enum cx_p11r_op {
	CX_P11R_OPEN = 1, /* u32 version, u64 slot */
	CX_P11R_REFRESH,
	CX_P11R_REOPEN,
	CX_P11R_LOGIN, /* u8 has_pin, bytes pin, u8 allow_final_try */
	CX_P11R_LOGOUT,
	CX_P11R_LOGGED_IN, /* unused: every answer carries the login state */
	CX_P11R_KEYS,      /* answer: u32 n, n keys */
	CX_P11R_SIGN, /* key (no key string, no URI), u8 mech, bytes data, u8 has_pin, bytes pin, u8 poll; answer: bytes sig */
	CX_P11R_GENERATE, /* str label, u8 alg, u32 bits; answer: key */
	/* module-level, with or without a token open: */
	CX_P11R_HELLO,     /* u32 version */
	CX_P11R_SLOTS,     /* answer: u32 n, n u64 slots (cx_p11_slots) */
	CX_P11R_TOKEN_INFO /* u64 slot; answer: its info in the common part */
};

struct cx_p11_remote {
	int fd; /* our end of the socketpair; -1 once the helper is gone */
	pid_t pid;
	const atomic_int *busy;  /* cx_p11_module_load_helper's */
	char gone[160];          /* how the last helper ended, for every later message */
	int logged_in;           /* as of the helper's last answer */
	void (*overlap)(void *); /* cx_p11_token_set_overlap's */
	void *overlap_arg;
	struct cx_buf out, in;
};

/* Field codecs (rwire.c).  Getters check every length and cap; a failure is CX_EPARSE. */
int cx_p11r_put_bytes(struct cx_buf *b, const void *p, size_t n);
int cx_p11r_get_bytes(struct cx_buf *b, const uint8_t **p, size_t *n, size_t max);
/* A malloc'ed NUL-terminated copy; a NUL inside is CX_EPARSE. */
int cx_p11r_get_str(struct cx_buf *b, char **s, size_t max);
int cx_p11r_put_info(struct cx_buf *b, const struct cx_p11_token_info *ti);
int cx_p11r_get_info(struct cx_buf *b, struct cx_p11_token_info *ti);
int cx_p11r_put_key(struct cx_buf *b, const struct cx_p11_key *k);
/* Fills k (malloc'ed fields); on failure k is cleared. */
int cx_p11r_get_key(struct cx_buf *b, struct cx_p11_key *k);

/* The lowest rc an answer may carry (cx_p11_rc's codes are above it). */
#define CX_P11R_RC_MIN (-200)
#define CX_P11R_LOST   1
#define CX_P11R_USER   2
/* An answer's common part; msg points into b. */
int cx_p11r_get_answer(struct cx_buf *b, int *rc, int *state, struct cx_p11_token_info *ti,
    const uint8_t **msg, size_t *msglen);

/* Starts a frame in b: reset, length placeholder. */
int cx_p11r_begin(struct cx_buf *b);
/* Sends the frame begun in b (patches its length). */
int cx_p11r_send(int fd, struct cx_buf *b);
/* The same, for an event loop: a frame that does not go at once is CX_EIO. */
int cx_p11r_send_nowait(int fd, struct cx_buf *b);
/* Reads one whole frame into b (reset first), its body at b's read offset. */
int cx_p11r_recv(int fd, struct cx_buf *b, size_t max);
/*
 * The same without waiting: reads what has come into b (reset by the caller
 * before the frame's first call); *more is set while the frame is not whole.
 */
int cx_p11r_recv_more(int fd, struct cx_buf *b, size_t max, int *more);

/* The agent's side (remote.c), called from module.c, token.c, keys.c, sign.c, generate.c. */
int cx_p11r_module_start(struct cx_p11_module *m, struct cx_err *e);
void cx_p11r_module_stop(struct cx_p11_module *m);
int cx_p11r_slots(struct cx_p11_module *m, unsigned long **slots, size_t *n, struct cx_err *e);
int cx_p11r_token_info(
    struct cx_p11_module *m, unsigned long slot, struct cx_p11_token_info *out, struct cx_err *e);
int cx_p11r_open(
    struct cx_p11_module *m, unsigned long slot, struct cx_p11_token **out, struct cx_err *e);
void cx_p11r_close(struct cx_p11_token *t);
int cx_p11r_refresh(struct cx_p11_token *t, struct cx_err *e);
int cx_p11r_reopen(struct cx_p11_token *t, struct cx_err *e);
int cx_p11r_login(
    struct cx_p11_token *t, const char *pin, size_t pinlen, int allow_final_try, struct cx_err *e);
int cx_p11r_logout(struct cx_p11_token *t);
int cx_p11r_logged_in(struct cx_p11_token *t);
int cx_p11r_keys(struct cx_p11_token *t, struct cx_p11_key **keys, size_t *n, struct cx_err *e);
int cx_p11r_sign(struct cx_p11_token *t, const struct cx_p11_key *k, enum cx_p11_mech mech,
    const uint8_t *data, size_t n, const char *pin, size_t pinlen, struct cx_buf *sig,
    struct cx_err *e);
/* cx_p11_token_sign_start / _finish / _abandon (token.h). */
int cx_p11r_sign_start(struct cx_p11_token *t, const struct cx_p11_key *k, enum cx_p11_mech mech,
    const uint8_t *data, size_t n, int *fd, struct cx_err *e);
int cx_p11r_sign_finish(struct cx_p11_token *t, struct cx_buf *sig, int *more, struct cx_err *e);
void cx_p11r_sign_abandon(struct cx_p11_token *t);
int cx_p11r_generate(struct cx_p11_token *t, const char *label, enum cx_p11_alg alg, int bits,
    struct cx_p11_key *out, struct cx_err *e);

#endif
