/*
 * The audit log: one JSON object per line, appended and fsynced for every
 * operation, each line carrying the SHA-256 of the previous line so that an
 * edited, removed or reordered line breaks the chain.
 *
 *   {"seq":12,"time":"2026-11-25T10:00:00Z","uid":1000,"pid":4242,
 *    "exe":"/usr/bin/conex","op":"sign","keyid":"sha256=...","token":"serial",
 *    "type":"targets","name":"m1","sha256":"<of the signed bytes>",
 *    "result":"ok","prev":"<sha256 hex of the previous line, without its newline>"}
 *
 * The first line's prev is 64 zeros.  Strings are JSON-escaped.
 */
#ifndef CX_AGENT_AUDIT_H
#define CX_AGENT_AUDIT_H

#include <stdint.h>
#include <sys/types.h>

#include "proto/err.h"

struct cx_audit;

struct cx_audit_entry {
	/* "sign-intent" (before a token signs), "sign", "login", "lock", "unlock", "add-key", ... */
	const char *op;
	uid_t uid;
	pid_t pid;
	const char *exe;            /* the peer's /proc/<pid>/exe, or "" */
	const char *keyid;          /* "sha256=<hex>" or "" */
	const char *token;          /* serial or "" */
	const char *type;           /* conex resource type or "" */
	const char *name;           /* resource name or "" */
	const uint8_t *data_sha256; /* 32 bytes or NULL */
	const char *result;         /* "ok" or the error name */
};

/*
 * Opens (creating 0600) and reads the tail to continue the chain; a broken
 * tail is an error unless PATH.journal (made if missing) restores it.  Lines
 * of the journal that the log lost in a crash are appended to it first.
 */
int cx_audit_open(const char *path, struct cx_audit **out, struct cx_err *e);
/* Lines that open appended to the log from its journal (lost from the log in a crash). */
uint64_t cx_audit_recovered(const struct cx_audit *a);
/* The last line durable in the log itself (the journal holds every later one). */
uint64_t cx_audit_log_synced(struct cx_audit *a);
/* Writes the line and returns once it is durable (cx_audit_write + cx_audit_sync). */
int cx_audit_append(struct cx_audit *a, const struct cx_audit_entry *en, struct cx_err *e);
/*
 * Writes the line (chained, in order) without waiting for the disk; *seq is
 * its number for cx_audit_sync / cx_audit_kick.  Thread-safe.
 */
int cx_audit_write(
    struct cx_audit *a, const struct cx_audit_entry *en, uint64_t *seq, struct cx_err *e);
/* Returns once line seq (and every line before it) is durable: group commit. */
int cx_audit_sync(struct cx_audit *a, uint64_t seq, struct cx_err *e);
/*
 * Hands the line to the syncer, which writes it (in the order given) and
 * syncs it soon: for a thread that must not wait even for write(2), which
 * can block behind a sync in progress.  Without a syncer it is written now.
 * A deferred line that cannot be written marks the log failed.
 */
int cx_audit_defer(struct cx_audit *a, const struct cx_audit_entry *en, struct cx_err *e);
/*
 * What fdatasync has taken lately, in ns (a moving average of every sync;
 * 1 ms until measured): the event loop syncs only logs that sync fast.
 */
int64_t cx_audit_sync_ns(struct cx_audit *a);
/* Asks the syncer to make line seq durable now, without waiting for it. */
void cx_audit_kick(struct cx_audit *a, uint64_t seq);
/*
 * Starts the background syncer thread (after any fork): it serves kicks and
 * syncs unwaited lines within a few milliseconds.  Without it, lines become
 * durable only through cx_audit_sync and at close.
 */
int cx_audit_start(struct cx_audit *a, struct cx_err *e);
/* Stops the syncer, syncs what is left, closes. */
void cx_audit_close(struct cx_audit *a);
/* Checks the whole chain; on a break, e names the line number and what is wrong. *nlines out. */
int cx_audit_verify(const char *path, uint64_t *nlines, struct cx_err *e);

#endif
