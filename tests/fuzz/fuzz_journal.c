/*
 * The audit journal's ring scanner (agent/journal.h) on arbitrary input: the
 * agent reads it at every start, after whatever a crash left in the file.
 *
 * First byte even: the rest is a ring image as found on disk.  Every record
 * the scanner returns must be one it could have written: its length within
 * bounds, and its encoding found in the input.  Records come sorted by seq.
 *
 * First byte odd: the rest describes records (u8 gap, u8 line length, u8
 * damage, then the line's bytes), which are encoded into a ring at those
 * gaps, some with one byte flipped.  The lines are made printable, as the
 * log's JSON lines are (every control byte escaped): a record's length field
 * has zero bytes, so no line can hold a whole record for the scanner to
 * take for one after a damaged record.  Every undamaged record must be found
 * and no damaged one (a flipped byte fails the hash).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

#define MAX_LINE 200
#define RING     8192

static int
contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++)
		if (memcmp(hay + i, needle, m) == 0)
			return 1;
	return 0;
}

static void
check_found(const uint8_t *ring, size_t n, const struct cx_journal_rec *v, size_t nv)
{
	uint8_t enc[512];

	for (size_t i = 0; i < nv; i++) {
		if (v[i].len == 0 || v[i].len > MAX_LINE)
			abort();
		if (i > 0 && v[i].seq < v[i - 1].seq)
			abort();
		/* the padding after the hash is not part of the record */
		cx_journal_encode(enc, v[i].seq, v[i].line, v[i].len);
		if (!contains(ring, n, enc, 16 + v[i].len + 32))
			abort();
	}
}

static void
raw(const uint8_t *d, size_t n)
{
	struct cx_journal_rec *v;
	struct cx_err e = {0};
	size_t nv;

	if (cx_journal_scan(d, n, MAX_LINE, &v, &nv, &e) != 0)
		return;
	check_found(d, n, v, nv);
	cx_journal_records_free(v, nv);
}

static void
built(const uint8_t *d, size_t n)
{
	static uint8_t ring[RING];
	static char text[64][MAX_LINE];
	struct {
		uint64_t seq;
		size_t len;
		const char *line;
		int damaged;
	} w[64];
	struct cx_journal_rec *v;
	struct cx_err e = {0};
	size_t nw = 0, off = 0, nv, good = 0;

	memset(ring, 0, sizeof(ring));
	while (n >= 3 && nw < 64) {
		size_t gap = (size_t)d[0] * 8, l = (size_t)d[1] % MAX_LINE + 1, rs;
		int damage = d[2] & 1;

		d += 3;
		n -= 3;
		if (l > n)
			break;
		rs = cx_journal_rec_size(l);
		if (off + gap + rs > RING)
			break;
		off += gap;
		for (size_t k = 0; k < l; k++)
			text[nw][k] = (char)(0x20 + d[k] % 95);
		cx_journal_encode(ring + off, nw, text[nw], l);
		/* within what the hash covers, or the hash itself: not the padding */
		if (damage)
			ring[off + d[0] % (16 + l + 32)] ^= 0x5a;
		w[nw].seq = nw;
		w[nw].len = l;
		w[nw].line = text[nw];
		w[nw].damaged = damage;
		good += !damage;
		nw++;
		off += rs;
		d += l;
		n -= l;
	}
	if (cx_journal_scan(ring, RING, MAX_LINE, &v, &nv, &e) != 0)
		return;
	check_found(ring, RING, v, nv);
	/* written at seq = index: each must be there exactly when undamaged */
	for (size_t i = 0, k = 0; i < nw; i++) {
		while (k < nv && v[k].seq < w[i].seq)
			k++;
		int there = k < nv && v[k].seq == w[i].seq && v[k].len == w[i].len &&
		    memcmp(v[k].line, w[i].line, w[i].len) == 0;
		if (there == w[i].damaged)
			abort();
	}
	if (nv < good)
		abort();
	cx_journal_records_free(v, nv);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len == 0)
		return 0;
	if (data[0] & 1)
		built(data + 1, len - 1);
	else
		raw(data + 1, len - 1);
	return 0;
}
