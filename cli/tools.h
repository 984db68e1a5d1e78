/*
 * What the signing tools (conex key/root/targets/snapshot/timestamp/release,
 * docs/tools.md) share: the common options, reading and writing resources
 * of the repository, the agent signer, and the `sign` rules.
 */
#ifndef CX_CLI_TOOLS_H
#define CX_CLI_TOOLS_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "client/conex-agent.h"
#include "conex/author.h"
#include "conex/resource.h"

/* ---- the agent signer (cli/signer.c) ---- */

struct cx_signer {
	struct cx_agent_conn *c;
	struct cx_msg_key *keys; /* what the agent holds, from LIST at connect time */
	size_t n;
};

/* Connects (sock NULL: $CONEX_AGENT_SOCK) and lists the agent's keys. */
int cx_signer_open(struct cx_signer *s, const char *sock, struct cx_err *e);
void cx_signer_close(struct cx_signer *s);
/* Only RSA and Ed25519 keys make conex signatures. */
int cx_signer_conex_alg(const struct cx_msg_key *k);
/*
 * The agent's conex key with conex id id (keyid NULL; exactly one must
 * exist), or the one with key id keyid ("sha256=HEX" or HEX; id may then be
 * NULL).  Its key id is checked to be the sha256 of its key string.
 */
int cx_signer_find(struct cx_signer *s, const char *id, const char *keyid,
    const struct cx_msg_key **out, struct cx_err *e);
/* The agent key k may sign as id (its label is id): 0 or CX_EINVAL. */
int cx_signer_label_check(const struct cx_msg_key *k, const char *id, struct cx_err *e);
/* The key id and algorithm the agent gives agree with the key string. */
int cx_signer_check_key(const struct cx_msg_key *k, struct cx_err *e);
/* The agent's key whose key string is k's, or NULL. */
const struct cx_msg_key *cx_signer_holds(const struct cx_signer *s, const struct cx_key *k);
/*
 * Signs r as its key entry k (signature id k->id) through the agent and
 * checks the signature with k's public key before it replaces k->id's
 * signature in r.
 */
int cx_signer_sign(struct cx_signer *s, struct cx_arena *a, struct cx_resource *r,
    const struct cx_key *k, const char *created, struct cx_err *e);
/* "sha256=HEX" or bare HEX to 32 bytes: 0 or -1. */
int cx_keyid_parse(const char *s, uint8_t out[CX_SHA256_LEN]);

/* ---- common options, files, messages (cli/tools.c) ---- */

struct cx_tool {
	const char *cmd;      /* "targets sign": for messages */
	const char *repo;     /* -r: default "." */
	const char *rootname; /* --root: default "root" */
	const char *sock;     /* --agent-sock: NULL for $CONEX_AGENT_SOCK */
	int64_t now;
	char created[21];
	int quiet;    /* -q: errors only */
	int terse;    /* only the "wrote FILE" lines (conex release) */
	int nwritten; /* files written so far */
	struct cx_arena a;
	struct cx_signer signer;
	int signer_open;
	int lockfd; /* the repository directory, flock()ed while the command runs; -1 */
};

enum { CX_TOOL_O_ROOT = 0x200, CX_TOOL_O_SOCK, CX_TOOL_O_NOW };
#define CX_TOOL_SHORTOPTS "r:qh"
#define CX_TOOL_LONGOPTS                                                                        \
	{"repository", required_argument, NULL, 'r'},                                           \
	    {"root", required_argument, NULL, CX_TOOL_O_ROOT},                                  \
	    {"agent-sock", required_argument, NULL, CX_TOOL_O_SOCK},                            \
	    {"now", required_argument, NULL, CX_TOOL_O_NOW}, {"quiet", no_argument, NULL, 'q'}, \
	{                                                                                       \
		"help", no_argument, NULL, 'h'                                                  \
	}

void cx_tool_init(struct cx_tool *t, const char *cmd);
void cx_tool_done(struct cx_tool *t);
/* A common option: 1 handled, 0 not one, -1 a bad value (message printed). */
int cx_tool_opt(struct cx_tool *t, int ch, const char *arg);

/* Messages: "conex <cmd>: ..." on stderr; info on stdout unless -q. */
int cx_tool_usage(struct cx_tool *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cx_tool_fail(struct cx_tool *t, int rc, const struct cx_err *e);
void cx_tool_info(struct cx_tool *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cx_tool_warn(struct cx_tool *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* repo/rel, arena-allocated. */
const char *cx_tool_path(struct cx_tool *t, const char *rel);
/* 1 if repo/rel is a regular file, 0 if absent, an error otherwise. */
int cx_tool_exists(struct cx_tool *t, const char *rel, struct cx_err *e);
/* Reads and parses repo/rel; canon (may be NULL) gets its canonical signed bytes. */
int cx_tool_read(struct cx_tool *t, const char *rel, enum cx_rtype type, struct cx_resource **r,
    struct cx_buf *canon, struct cx_err *e);
int cx_tool_read_root(struct cx_tool *t, struct cx_resource **root, struct cx_err *e);
/* keydir/id of the root. */
const char *cx_tool_keyfile(struct cx_tool *t, const struct cx_resource *root, const char *id);
/* Writes repo/rel (parse-back check, atomic) and prints "wrote rel". */
int cx_tool_write(
    struct cx_tool *t, const char *rel, const struct cx_resource *r, struct cx_err *e);
/* Makes the directory repo/rel (one level) unless it exists. */
int cx_tool_mkdir(struct cx_tool *t, const char *rel, struct cx_err *e);
/* The agent, connected on first use. */
int cx_tool_signer(struct cx_tool *t, struct cx_signer **s, struct cx_err *e);

/*
 * Proposal: after changing r (canon: its signed bytes as read), applies the
 * counter rule and reports the dropped signers.  *changed tells whether the
 * caller has anything to write.
 */
int cx_tool_propose(struct cx_tool *t, const char *rel, struct cx_resource *r,
    const struct cx_buf *canon, int *changed, struct cx_err *e);

/*
 * The `sign` command of root and targets (docs/tools.md): signs r (file rel)
 * with its keys that the agent holds (or only as: a key entry id or a key
 * id), keeping every other signature; refuses when others no longer verify
 * unless reset; writes when anything was signed and reports what the valid
 * quorum still needs.  Returns an exit code.
 */
int cx_tool_sign(
    struct cx_tool *t, const char *rel, struct cx_resource *r, const char *as, int reset);
/* Prints what the valid quorum of r still needs. */
int cx_tool_report_quorum(
    struct cx_tool *t, const char *rel, const struct cx_resource *r, struct cx_err *e);

/* Role files (cli/cmd_snapshot.c); release uses them. */
int cx_tool_snapshot(struct cx_tool *t, int nosign, int reset_epoch, struct cx_err *e);
int cx_tool_timestamp(struct cx_tool *t, int nosign, int reset_epoch, struct cx_err *e);
/* Does the agent hold the key of the root's role (a single remote keyref)? */
int cx_tool_holds_role(struct cx_tool *t, const struct cx_expr *role);

/* Number arguments: 0 or -1. */
int cx_tool_parse_u64(const char *s, uint64_t *v);

#endif
