/*
 * The audit log's journal: a preallocated ring of records beside audit.log.
 *
 * Appending a line to audit.log changes its size, so the fdatasync that
 * makes it durable writes the inode as well as the data.  Overwriting
 * already-written bytes needs only the data: on ext4 that sync is 50-80 us
 * shorter, which is what decides whether it hides behind an Ed25519
 * signature.  So a line is made durable by writing it here too and syncing
 * this file; audit.log is synced later, and at open every line that the
 * journal holds and audit.log lost in a crash is appended again (audit.c).
 *
 * File: a 4 KiB header (magic, the size, the device and inode of the log it
 * belongs to, a SHA-256 of those), then the ring.  Record, 8-aligned:
 *
 *   u32 magic | u32 len | u64 seq | len bytes of line | SHA-256 of all before | 0-pad
 *
 * little-endian.  A record that does not fit before the end starts the ring
 * over; a record whose hash does not match (a write cut by a crash, stale
 * bytes) is not one.  The caller keeps the rule that makes overwriting safe:
 * whatever a record overwrites must already be durable in audit.log
 * (cx_journal_need, cx_journal_used).
 */
#ifndef CX_AGENT_JOURNAL_H
#define CX_AGENT_JOURNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/err.h"

struct cx_journal;

/* A line of the journal, as cx_journal_open found it. */
struct cx_journal_rec {
	uint64_t seq;
	const char *line; /* with its newline; valid until cx_journal_records_free */
	size_t len;
};

/*
 * Opens path, the journal of the log on (dev, ino), for writing from the start
 * of its ring.  If it exists, belongs to that log and is whole, *recs gets its
 * intact records sorted by seq (*nrecs of them; free with
 * cx_journal_records_free).  A missing journal, or one of another log (moved
 * aside, replaced), is made anew: zeros, synced, and the directory synced.
 * max_line: the longest line the caller will put, newline included.
 */
int cx_journal_open(const char *path, dev_t dev, ino_t ino, size_t max_line,
    struct cx_journal **out, struct cx_journal_rec **recs, size_t *nrecs, struct cx_err *e);
void cx_journal_records_free(struct cx_journal_rec *recs, size_t n);

/* The bytes of one record of a len-byte line. */
size_t cx_journal_rec_size(size_t len);
/* Writes that record to out (cx_journal_rec_size(len) bytes); returns its size. */
size_t cx_journal_encode(uint8_t *out, uint64_t seq, const char *line, size_t len);
/*
 * Every intact record of the ring d[0..n), sorted by seq (what open does with
 * the file's ring; for the fuzzer too).  Lines longer than max_line are not
 * records.
 */
int cx_journal_scan(const uint8_t *d, size_t n, size_t max_line, struct cx_journal_rec **recs,
    size_t *nrecs, struct cx_err *e);

/* Ring bytes that cx_journal_put of a len-byte line would use, skip to the start included. */
uint64_t cx_journal_need(const struct cx_journal *j, size_t len);
/* Ring bytes used since open, skips included; the ring overwrites what is ring_size older. */
uint64_t cx_journal_used(const struct cx_journal *j);
uint64_t cx_journal_ring_size(const struct cx_journal *j);

/* Writes one record (len <= max_line): 0, or -1 with errno. */
int cx_journal_put(struct cx_journal *j, uint64_t seq, const char *line, size_t len);
/* fdatasync: every record put before it is durable.  0 or the errno. */
int cx_journal_sync(struct cx_journal *j);
void cx_journal_close(struct cx_journal *j);

#endif
