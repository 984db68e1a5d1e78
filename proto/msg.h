/*
 * The conex-agent wire protocol (docs/protocol.md): frames of
 *
 *	u32 length (big endian, of what follows)  u8 type  body
 *
 * with the length checked against the type's cap (cx_frame_max: CX_PROTO_MAX,
 * or CX_PROTO_SIGN_MAX for SIGN) before anything is allocated.
 * One request in flight per connection; every request gets exactly one
 * response (OK, ERROR or a typed answer).  Knows nothing of sockets, tokens or
 * conex: bytes in, structures out, through cx_buf only.
 */
#ifndef CX_PROTO_MSG_H
#define CX_PROTO_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "proto/buf.h"
#include "proto/err.h"

#define CX_PROTO_VERSION 1
#define CX_PROTO_MAX     (256u * 1024u) /* length field maximum: type + body */
/*
 * SIGN carries a whole resource's to-be-signed bytes, which for a maintainer
 * vouching for all of opam-repository is several megabytes (keys/m1: 6.7 MB
 * for 33,033 releases); every other message stays under CX_PROTO_MAX.
 */
#define CX_PROTO_SIGN_MAX (64u * 1024u * 1024u)
#define CX_PROTO_HDR      5

enum cx_msg_type {
	/* requests */
	CX_MSG_QUERY = 1,       /* u32 client protocol version */
	CX_MSG_LIST = 2,        /* (empty) */
	CX_MSG_SIGN = 3,        /* keyid[32] u8 sigalg string data */
	CX_MSG_TOKEN_LOGIN = 4, /* string token serial, secret pin, u8 allow_final_try */
	CX_MSG_LOCK = 5,        /* secret password */
	CX_MSG_UNLOCK = 6,      /* secret password */
	CX_MSG_ADD_TOKEN =
	    7, /* string module path, string token (serial or pkcs11: URI, "" = all) */
	CX_MSG_REMOVE_TOKEN = 8, /* string token serial */
	CX_MSG_ADD_KEY = 9,      /* string id, secret PEM private key, policy */
	CX_MSG_REMOVE_KEY = 10,  /* keyid[32] */
	CX_MSG_SET_POLICY = 11,  /* keyid[32], policy */
	CX_MSG_GENERATE = 12, /* string token serial, string id (CKA_LABEL), u8 keyalg, u32 bits */
	/* responses */
	CX_MSG_OK = 128,      /* (empty) */
	CX_MSG_ERROR = 129,   /* u32 code, u32 detail, string message */
	CX_MSG_VERSION = 130, /* u32 protocol version, string agent version */
	CX_MSG_KEYS = 131,    /* u32 n, n x key */
	CX_MSG_SIGNATURE =
	    132, /* string signature (raw: RSA modulus bytes, Ed25519 64, ECDSA DER) */
	CX_MSG_GENERATED = 133 /* key */
};

/* Typed errors: what went wrong, for a program to act on. */
enum cx_agent_err {
	CX_AERR_TOKEN_ABSENT = 1,
	CX_AERR_PIN_REQUIRED = 2,
	CX_AERR_PIN_INCORRECT = 3, /* detail: retries left if known, else 0xFFFFFFFF */
	CX_AERR_PIN_LOCKED = 4,
	CX_AERR_REFUSED = 5,      /* by policy */
	CX_AERR_DECLINED = 6,     /* by the user (confirm) */
	CX_AERR_AGENT_LOCKED = 7, /* detail: seconds to wait before the next unlock try */
	CX_AERR_NO_SUCH_KEY = 8,
	CX_AERR_UNSUPPORTED = 9,
	CX_AERR_TOKEN_ERROR = 10,
	CX_AERR_BAD_REQUEST = 11,
	CX_AERR_FINAL_TRY =
	    12 /* the next wrong PIN would lock the token: resend with allow_final_try */
};
const char *cx_agent_err_name(uint32_t code);

/* Signature algorithms on the wire. */
enum cx_msg_sigalg {
	CX_MSIG_RSAPSS_SHA256 = 1,
	CX_MSIG_ED25519 = 2,
	CX_MSIG_ECDSA_P256_SHA256 = 3
};
enum cx_msg_keyalg { CX_MKEY_RSA = 1, CX_MKEY_ED25519 = 2, CX_MKEY_ECDSA_P256 = 3 };

/* What a key may sign: bits over conex resource types. */
#define CX_POLICY_ROOT      0x1u
#define CX_POLICY_TARGETS   0x2u
#define CX_POLICY_SNAPSHOT  0x4u
#define CX_POLICY_TIMESTAMP 0x8u
#define CX_POLICY_ALL       0xFu

struct cx_policy {
	uint32_t types;    /* CX_POLICY_* bits */
	uint8_t confirm;   /* ask the user (askpass) before each signature */
	uint64_t lifetime; /* seconds the key stays usable from when it was added; 0: no limit */
	uint64_t max_sigs; /* signatures it may make; 0: no limit */
};

/* key->state bits */
#define CX_KEY_PRESENT     0x1u /* the token is there (software keys: always) */
#define CX_KEY_LOGGED_IN   0x2u /* no PIN needed now */
#define CX_KEY_ALWAYS_AUTH 0x4u /* CKA_ALWAYS_AUTHENTICATE */
#define CX_KEY_HARDWARE    0x8u /* held by a token, never leaves it */

struct cx_msg_key {
	const char *id;           /* conex identity (CKA_LABEL on tokens) */
	const char *keystr;       /* conex public key string: "rsa=..." / "ed25519=..." */
	uint8_t keyid[32];        /* sha256 of keystr */
	uint8_t keyalg;           /* cx_msg_keyalg */
	uint32_t state;           /* CX_KEY_* */
	const char *token_serial; /* "" for software keys */
	const char *token_label;
	const char *uri; /* RFC 7512 pkcs11: URI, "" for software keys */
	struct cx_policy policy;
	uint64_t sigs_made;
};

/*
 * A decoded message.  Strings point into the frame body (NUL-terminated
 * copies are made by the decoder in msg->arena), secrets into guarded memory
 * the caller provides: see cx_msg_decode.
 */
struct cx_msg {
	uint8_t type;
	union {
		struct {
			uint32_t version;
		} query;
		struct {
			uint8_t keyid[32];
			uint8_t sigalg;
			const uint8_t *data;
			size_t datalen;
		} sign;
		struct {
			const char *serial;
			const char *pin; /* secret */
			size_t pinlen;
			uint8_t allow_final_try;
		} login;
		struct {
			const char *password; /* secret */
			size_t passwordlen;
		} lock; /* LOCK and UNLOCK */
		struct {
			const char *module;
			const char *token;
		} add_token;
		struct {
			const char *serial;
		} remove_token;
		struct {
			const char *id;
			const char *pem; /* secret */
			size_t pemlen;
			struct cx_policy policy;
		} add_key;
		struct {
			uint8_t keyid[32];
		} remove_key;
		struct {
			uint8_t keyid[32];
			struct cx_policy policy;
		} set_policy;
		struct {
			const char *serial;
			const char *id;
			uint8_t keyalg;
			uint32_t bits;
		} generate;
		struct {
			uint32_t code;
			uint32_t detail;
			const char *message;
		} error;
		struct {
			uint32_t version;
			const char *agent;
		} version;
		struct {
			struct cx_msg_key *v;
			size_t n;
		} keys; /* KEYS, and GENERATED with n == 1 */
		struct {
			const uint8_t *sig;
			size_t siglen;
		} signature;
	} u;
};

/* The length field maximum of a frame of this type. */
uint32_t cx_frame_max(uint8_t type);

/*
 * Frame header: 5 bytes in, body length (type excluded) and type out.
 * CX_ETOOBIG when the length exceeds cx_frame_max(type), CX_EPARSE when it is 0.
 */
int cx_frame_header(const uint8_t hdr[CX_PROTO_HDR], uint32_t *bodylen, uint8_t *type);

/* Appends one whole frame (header included) for m to out. */
int cx_msg_encode(const struct cx_msg *m, struct cx_buf *out);

/*
 * Decodes a frame body of the given type.  Every length is checked, trailing
 * bytes are an error, unknown types are CX_EUNSUPPORTED.  Decoded strings are
 * NUL-terminated copies in scratch (a cx_buf the caller owns; reset by the
 * call and sized once up front, so the pointers stay valid until the next
 * call).  Secret fields (PIN, password, PEM) are copied, NUL-terminated, into
 * the fixed buffer secret of secretcap bytes instead, which the agent
 * allocates with sodium_malloc and wipes after use; CX_ETOOBIG if they do not
 * fit.  A string holding a NUL byte is refused.  The caller wipes body.
 */
int cx_msg_decode(uint8_t type, const uint8_t *body, size_t len, struct cx_msg *m,
    struct cx_buf *scratch, uint8_t *secret, size_t secretcap, struct cx_err *e);

#endif
