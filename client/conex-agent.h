/*
 * libconex-agent: the client side of the conex-agent protocol
 * (docs/protocol.md).  A program that wants a conex signature, or a tool that
 * manages the agent, connects to the agent's Unix socket and makes one
 * blocking call per request.
 *
 * Conventions are those of the rest of conex: every function returns 0 or a
 * negative code from proto/err.h, and writes a message into the cx_err it is
 * given.  An ERROR answer from the agent is CX_EAGENT: e->msg is then
 * "<error name>: <the agent's message>" and cx_agent_last_error() /
 * cx_agent_last_detail() give the agent's code (enum cx_agent_err) and detail.
 *
 * A connection carries one request at a time and is not safe to share
 * between threads without a lock.  After a transport or framing failure
 * (CX_EIO, CX_EPARSE, CX_ETOOBIG on a response) the connection is closed
 * and every later call fails with CX_EIO: connect again.  An ERROR answer
 * leaves the connection usable.
 *
 * Nothing here raises SIGPIPE or keeps global state.  Buffers that carried a
 * PIN, a password or a private key are wiped before they are released.
 */
#ifndef CONEX_AGENT_H
#define CONEX_AGENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* the proto/ headers are plain C too */
#endif

#include "proto/buf.h"
#include "proto/err.h"
#include "proto/msg.h"

/* The agent answered ERROR: see cx_agent_last_error(). */
#define CX_EAGENT (-20)

/* Where cx_agent_connect(NULL, ...) finds the agent's socket. */
#define CX_AGENT_SOCK_ENV "CONEX_AGENT_SOCK"

struct cx_agent_conn;

/*
 * Connects to the agent at path (NULL: $CONEX_AGENT_SOCK), sends QUERY and
 * checks that the agent speaks CX_PROTO_VERSION (CX_EUNSUPPORTED if not).
 * CX_ENOENT when there is no socket to connect to, CX_EIO on other failures.
 */
int cx_agent_connect(const char *path, struct cx_agent_conn **out, struct cx_err *e);
/* The same over an already connected stream socket; fd is owned from here on, even on failure. */
int cx_agent_connect_fd(int fd, struct cx_agent_conn **out, struct cx_err *e);
void cx_agent_close(struct cx_agent_conn *c);

/*
 * Bound, in milliseconds, on each request from sending it to the end of its
 * answer; 0 (the default) waits for ever, as signing may wait minutes for a
 * touch or a confirmation.  A request that times out closes the connection.
 */
void cx_agent_set_timeout(struct cx_agent_conn *c, int ms);

/*
 * After sending a SIGN, poll for the answer this long (µs) before sleeping
 * for it; the default is CX_AGENT_SPIN_US on a machine with more than one
 * CPU, 0 on one.  A signature through the agent takes a few hundred
 * microseconds, and a thread that sleeps through it wakes tens of them late
 * on a virtual machine, a tenth of an Ed25519 signature.  Only while the
 * connection's signatures come back within a quarter of that time (a moving
 * average): against a longer one the poll would cost more CPU than the
 * wake-up.  The poll yields the CPU at each turn, but a polling thread is
 * always runnable: on a machine whose CPUs are all busy it still competes
 * for them (docs/benchmarks.md, "Two Ed25519 clients").  0 sleeps at once.
 */
#define CX_AGENT_SPIN_US 2000
void cx_agent_set_spin(struct cx_agent_conn *c, int us);

/* The agent's protocol version and version string, from its VERSION answer. */
uint32_t cx_agent_protocol(const struct cx_agent_conn *c);
const char *cx_agent_version(const struct cx_agent_conn *c);

/* After CX_EAGENT: the agent's error code (enum cx_agent_err) and detail; 0 otherwise. */
uint32_t cx_agent_last_error(const struct cx_agent_conn *c);
uint32_t cx_agent_last_detail(const struct cx_agent_conn *c);

/*
 * The keys the agent holds.  *keys is one allocation holding the array and
 * every string it points to (NULL when *n is 0): free it with
 * cx_agent_keys_free.
 */
int cx_agent_list(struct cx_agent_conn *c, struct cx_msg_key **keys, size_t *n, struct cx_err *e);
void cx_agent_keys_free(struct cx_msg_key *keys);

/*
 * Signs data (conex's to-be-signed bytes) with the key whose id is keyid,
 * using sigalg (enum cx_msg_sigalg); the raw signature is appended to sig.
 * May block as long as the agent waits for a PIN, a touch or a confirmation.
 */
int cx_agent_sign(struct cx_agent_conn *c, const uint8_t keyid[32], uint8_t sigalg,
    const uint8_t *data, size_t n, struct cx_buf *sig, struct cx_err *e);

/*
 * Logs in to the token with the given serial.  On CX_AERR_FINAL_TRY the
 * agent did not try the PIN: call again with allow_final_try set if the user
 * agrees to risk locking the token.
 */
int cx_agent_token_login(struct cx_agent_conn *c, const char *serial, const char *pin,
    size_t pinlen, int allow_final_try, struct cx_err *e);

/* Locks / unlocks the whole agent (on a wrong unlock, detail is the back-off in seconds). */
int cx_agent_lock(struct cx_agent_conn *c, const char *password, size_t n, struct cx_err *e);
int cx_agent_unlock(struct cx_agent_conn *c, const char *password, size_t n, struct cx_err *e);

/* Loads a PKCS#11 module's token (serial, pkcs11: URI, or NULL / "" for all of them). */
int cx_agent_add_token(
    struct cx_agent_conn *c, const char *module, const char *token, struct cx_err *e);
int cx_agent_remove_token(struct cx_agent_conn *c, const char *serial, struct cx_err *e);

/*
 * Adds a software key: pem is the unencrypted PEM private key (conex's
 * <id>.<keyid>.private file).  policy NULL: every resource type, no
 * confirmation, no limits.
 */
int cx_agent_add_key(struct cx_agent_conn *c, const char *id, const uint8_t *pem, size_t pemlen,
    const struct cx_policy *policy, struct cx_err *e);
int cx_agent_remove_key(struct cx_agent_conn *c, const uint8_t keyid[32], struct cx_err *e);
int cx_agent_set_policy(struct cx_agent_conn *c, const uint8_t keyid[32],
    const struct cx_policy *policy, struct cx_err *e);

/*
 * Generates a key pair on the token with the given serial, labelled id.
 * keyalg is enum cx_msg_keyalg; bits is the RSA modulus size (0 for the
 * others).  *out is one key, freed with cx_agent_keys_free.
 */
int cx_agent_generate(struct cx_agent_conn *c, const char *serial, const char *id, uint8_t keyalg,
    uint32_t bits, struct cx_msg_key **out, struct cx_err *e);

#ifdef __cplusplus
}
#endif

#endif
