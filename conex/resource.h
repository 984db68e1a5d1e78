/*
 * Typed conex resources (§4), expressions (§6), and the bytes that get signed
 * (§3).  The signed bytes are always rebuilt from the typed record, never from
 * the parse tree (§3.3).
 */
#ifndef CX_RESOURCE_H
#define CX_RESOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "conex/arena.h"
#include "conex/crypto.h"
#include "conex/wire.h"
#include "proto/buf.h"
#include "proto/err.h"

enum cx_rtype { CX_R_ROOT = 1, CX_R_TARGETS, CX_R_SNAPSHOT, CX_R_TIMESTAMP };

/* Where warnings go (files dropped, unknown algorithms ignored...). May be NULL. */
struct cx_log {
	void (*fn)(void *arg, int level, const char *msg);
	void *arg;
	int level; /* messages above this level are not formatted */
};
enum { CX_LOG_WARN = 1, CX_LOG_INFO = 2, CX_LOG_DEBUG = 3 };
void cx_log(struct cx_log *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

struct cx_key {
	const char *id;
	const char *created;
	enum cx_keyalg alg;
	const char *keystr; /* "rsa=..." / "ed25519=...": what the key id hashes */
	size_t keystrlen;
	uint8_t keyid[CX_SHA256_LEN];
};

struct cx_sig {
	const char *id;
	const char *created;
	enum cx_sigalg alg;
	const char *value; /* base64, as in the file */
	size_t valuelen;
};

/* A digest: only sha256 is known; value is the text after "sha256=". */
struct cx_digest {
	const char *value;
	size_t len;
};

struct cx_keyref {
	int remote;
	const char *id;
	struct cx_digest digest; /* remote only */
	uint64_t epoch;          /* remote only */
};

enum cx_expr_kind { CX_EXPR_QUORUM = 1, CX_EXPR_AND, CX_EXPR_OR };

struct cx_expr {
	enum cx_expr_kind kind;
	int64_t n;              /* quorum */
	struct cx_keyref *refs; /* quorum: ascending KS order, no duplicates */
	size_t nrefs;
	struct cx_expr *a, *b; /* and/or */
};

struct cx_target {
	const char *path; /* full path from the repository root, no leading '/' */
	uint64_t size;
	struct cx_digest *digests;
	size_t ndigests;
};

struct cx_delegation {
	const char **paths;
	size_t npaths;
	struct cx_expr *valid;
	int terminating;
};

struct cx_resource {
	enum cx_rtype type;
	/* header (§4.1) */
	const char *created;
	const char *name;
	uint64_t counter;
	uint64_t epoch;
	/* keys, ascending by id (bytewise), duplicates dropped (the first wins) */
	struct cx_key *keys;
	size_t nkeys;
	/* signatures in file order, duplicate ids dropped (the first wins) */
	struct cx_sig *sigs;
	size_t nsigs;
	/* root and targets */
	struct cx_expr *valid;
	/* root */
	const char *datadir, *keydir;
	struct cx_expr *role_maintainer, *role_snapshot, *role_timestamp;
	/* targets */
	struct cx_delegation *dels;
	size_t ndels;
	/* targets, snapshot, timestamp */
	struct cx_target *targets;
	size_t ntargets;
};

const char *cx_rtype_name(enum cx_rtype t);
/*
 * The decoder's string_to_path: one leading '/' dropped, then "", "." and
 * ".." segments refused.  The path (within s), or NULL.
 */
const char *cx_path_of_string(const char *s, size_t n);

/*
 * Parses a resource file and checks it is of type expect.  name is the file
 * name used in messages.  Everything lives in arena.
 */
int cx_resource_parse(struct cx_arena *a, const char *name, const uint8_t *data, size_t len,
    enum cx_rtype expect, struct cx_resource **out, struct cx_log *log, struct cx_err *e);
int cx_resource_from_wire(struct cx_arena *a, const char *name, const struct cx_wire *doc,
    enum cx_rtype expect, struct cx_resource **out, struct cx_log *log, struct cx_err *e);

/* wire_raw (§3.3): the normalised "signed" map. */
struct cx_wire *cx_resource_signed_wire(struct cx_arena *a, const struct cx_resource *r);
/* The whole document {signed, signatures}, for the writer. */
struct cx_wire *cx_resource_wire(struct cx_arena *a, const struct cx_resource *r);
/* Writes the document in opam format. */
int cx_resource_write(const struct cx_resource *r, struct cx_buf *out, struct cx_err *e);

/* The canonical bytes of the signed map, once per resource; every signature reuses them. */
int cx_resource_canon(const struct cx_resource *r, struct cx_buf *out);
/* The to-be-signed bytes (§3.2) around already canonical data. */
int cx_tbs(const uint8_t *canon, size_t canonlen, const char *created, const char *id,
    enum cx_sigalg alg, struct cx_buf *out);

const struct cx_key *cx_resource_key(const struct cx_resource *r, const char *id);

/*
 * Verifies every signature with the resource's own keys (§5).  For each one
 * that verifies, calls ok(arg, sig, key).  Failures are logged as warnings.
 * Returns 0, or an error for internal failures only.
 */
int cx_resource_verify_sigs(const struct cx_resource *r, const uint8_t *canon, size_t canonlen,
    int (*ok)(void *arg, const struct cx_sig *s, const struct cx_key *k), void *arg,
    struct cx_log *log, struct cx_err *e);

/*
 * cx_resource_canon and cx_resource_verify_sigs in one, without a copy of the
 * canonical bytes per signature.
 */
int cx_resource_verify(const struct cx_resource *r,
    int (*ok)(void *arg, const struct cx_sig *s, const struct cx_key *k), void *arg,
    struct cx_log *log, struct cx_err *e);

/* Adds or replaces the signature of id (arena-allocated strings). */
int cx_resource_set_sig(struct cx_arena *a, struct cx_resource *r, const char *id,
    const char *created, enum cx_sigalg alg, const uint8_t *sig, size_t siglen);

/*
 * Signs r as id with the callback (an in-process key, or the agent later):
 * builds the to-be-signed bytes over the normalised record and adds or
 * replaces id's signature.  Other signers' signatures are kept.
 */
typedef int (*cx_sign_fn)(
    void *arg, const uint8_t *tbs, size_t n, struct cx_buf *sig, struct cx_err *e);
int cx_resource_sign(struct cx_arena *a, struct cx_resource *r, const char *id, const char *created,
    enum cx_sigalg alg, cx_sign_fn fn, void *arg, struct cx_err *e);
/* A cx_sign_fn for an in-process EVP_PKEY (arg). */
int cx_sign_evp(void *arg, const uint8_t *tbs, size_t n, struct cx_buf *sig, struct cx_err *e);

/* ASCII case-insensitive identifier equality (id_equal). */
int cx_id_equal(const char *a, const char *b);
int cx_id_cmp(const char *a, const char *b);

/* Expressions (§6). */
int cx_expr_from_wire(struct cx_arena *a, const struct cx_wire *w, struct cx_expr **out,
    struct cx_log *log, struct cx_err *e);
struct cx_wire *cx_expr_to_wire(struct cx_arena *a, const struct cx_expr *x);
/* Expression.hash over the keys of r (ids looked up exactly). */
int cx_expr_hash(const struct cx_expr *x, const struct cx_resource *r, uint8_t out[CX_SHA256_LEN],
    struct cx_err *e);
struct cx_expr_env {
	/* Local id: signed by id? (exact match) */
	int (*local)(void *arg, const char *id);
	/* Remote: is there a counting file with this digest, an id_equal id and this epoch? */
	int (*remote)(void *arg, const struct cx_keyref *k);
	void *arg;
};
int cx_expr_eval(const struct cx_expr *x, const struct cx_expr_env *env);
/* Quorum(1, {Local id}) / Quorum(1, {Remote ...}). */
struct cx_expr *cx_expr_single(struct cx_arena *a, const struct cx_keyref *k);
int cx_keyref_cmp(const struct cx_keyref *a, const struct cx_keyref *b);
/* Visits every remote keyref. */
void cx_expr_remotes(
    const struct cx_expr *x, void (*fn)(void *arg, const struct cx_keyref *k), void *arg);

/* RFC 3339-ish timestamp of §7.3 to seconds since the epoch (offset handled correctly). */
int cx_time_parse(const char *s, int64_t *out);
/* Current or given time as "YYYY-MM-DDTHH:MM:SSZ" (21 bytes with NUL). */
void cx_time_format(int64_t t, char out[21]);

#endif
