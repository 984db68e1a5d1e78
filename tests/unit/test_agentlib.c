/* agent/audit.c, lock.c, softkey.c and askpass.c against real files, keys and processes. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "agent/askpass.h"
#include "agent/audit.h"
#include "agent/journal.h"
#include "agent/lock.h"
#include "agent/softkey.h"
#include "conex/crypto.h"
#include "tests/unit/testutil.h"

/* ---- audit ---- */

static char *
path_in(const char *dir, const char *name)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

static void
append_n(const char *path, int n, const char *name)
{
	struct cx_audit *a = NULL;
	struct cx_err e = {0};
	uint8_t h[32];

	ck_assert_msg(cx_audit_open(path, &a, &e) == 0, "open: %s", e.msg);
	for (int i = 0; i < n; i++) {
		struct cx_audit_entry en = {
		    .op = "sign",
		    .uid = 1000,
		    .pid = 4242 + i,
		    .exe = "/usr/bin/conex",
		    .keyid = "sha256=abc",
		    .token = "0123",
		    .type = "targets",
		    .name = name,
		    .data_sha256 = (i % 2) ? h : NULL,
		    .result = "ok",
		};
		memset(h, i, sizeof(h));
		ck_assert_msg(cx_audit_append(a, &en, &e) == 0, "append %d: %s", i, e.msg);
	}
	cx_audit_close(a);
}

static void
verify_fails(const char *path, const char *want)
{
	struct cx_err e = {0};
	uint64_t n;

	ck_assert_int_eq(cx_audit_verify(path, &n, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, want) != NULL, "want \"%s\" in \"%s\"", want, e.msg);
}

/* A 50-line log in a fresh directory. */
static char *
make_log(char **dir)
{
	*dir = cx_test_tmpdir();
	char *p = path_in(*dir, "audit.log");
	append_n(p, 50, "m1");
	return p;
}

START_TEST(test_audit_chain)
{
	char *dir, *p = make_log(&dir);
	struct cx_err e = {0};
	struct stat st;
	uint64_t n = 0;
	uint8_t *d;
	char *l2;

	ck_assert_msg(cx_audit_verify(p, &n, &e) == 0, "verify: %s", e.msg);
	ck_assert_uint_eq(n, 50);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_ptr_nonnull(d = cx_test_read(p, NULL));
	ck_assert_msg(strncmp((char *)d, "{\"seq\":1,\"time\":\"", 17) == 0, "%.80s", d);
	ck_assert_ptr_nonnull(strstr((char *)d,
	    "\"prev\":\"0000000000000000000000000000000000"
	    "000000000000000000000000000000\"}\n{\"seq\":2,"));
	/* line 2 carries the data hash, line 1 an empty one */
	ck_assert_ptr_nonnull(l2 = strstr((char *)d, "{\"seq\":2,"));
	ck_assert_ptr_nonnull(strstr(l2, "\"sha256\":\"01010101"));
	ck_assert_ptr_nonnull(strstr((char *)d, "\"sha256\":\"\""));
	free(d);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_audit_escape)
{
	char *dir = cx_test_tmpdir(), *p = path_in(dir, "audit.log");
	/* quote, backslash, newline, ESC, DEL, C1 CSI, valid é, invalid 0xE9 and 0xFF */
	const char *nasty = "a\"b\\c\nd\x1b[0m\x7f\xc2\x9b\xc3\xa9\xe9\xff";
	const char *want = "\"name\":\"a\\\"b\\\\c\\u000ad\\u001b[0m\\u007f\\u009b\xc3\xa9"
	                   "\\u00e9\\u00ff\"";
	struct cx_err e = {0};
	uint64_t n;
	uint8_t *d;
	int r;

	append_n(p, 3, nasty);
	ck_assert_msg(cx_audit_verify(p, &n, &e) == 0, "verify: %s", e.msg);
	ck_assert_uint_eq(n, 3);
	ck_assert_ptr_nonnull(d = cx_test_read(p, NULL));
	ck_assert_msg(strstr((char *)d, want) != NULL, "no %s in %s", want, d);
	free(d);
	/* every line is JSON to an independent parser, when there is one */
	r = cx_test_sh("command -v python3 >/dev/null || exit 77; python3 -c 'import json,sys\n"
	               "for l in open(sys.argv[1], encoding=\"utf-8\"): json.loads(l)' %s",
	    p);
	ck_assert_msg(r == 0 || r == 77, "python3 json.loads failed: %d", r);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_audit_edit)
{
	char *dir, *p = make_log(&dir);

	/* the edited line still parses; the next line's prev no longer matches it */
	ck_assert_int_eq(cx_test_sh("sed -i '17s/\"result\":\"ok\"/\"result\":\"no\"/' %s", p), 0);
	verify_fails(p,
	    "line 18: prev does not match the hash of line 17 (edited or removed "
	    "line?)");
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_audit_edit_breaks_json)
{
	char *dir, *p = make_log(&dir);

	ck_assert_int_eq(cx_test_sh("sed -i '17s/\"op\":/\"op:/' %s", p), 0);
	verify_fails(p, "line 17: not an audit record");
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_audit_delete)
{
	char *dir, *p = make_log(&dir);

	ck_assert_int_eq(cx_test_sh("sed -i '30d' %s", p), 0);
	verify_fails(p, "line 30: prev does not match the hash of line 29");
	ck_assert_int_eq(cx_test_sh("sed -i '1d' %s", p), 0);
	verify_fails(p, "line 1: prev is not 64 zeros");
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_audit_reorder)
{
	char *dir, *p = make_log(&dir);

	ck_assert_int_eq(cx_test_sh("sed -i '10{h;d};11G' %s", p), 0);
	verify_fails(p, "line 10: prev does not match the hash of line 9");
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* Where line seq starts in the log at path. */
static long
line_offset(const char *path, int seq)
{
	char want[32];
	uint8_t *d;
	char *at;
	long off;

	snprintf(want, sizeof(want), "{\"seq\":%d,", seq);
	ck_assert_ptr_nonnull(d = cx_test_read(path, NULL));
	ck_assert_ptr_nonnull(at = strstr((char *)d, want));
	off = at - (char *)d;
	free(d);
	return off;
}

static void
open_recovers(const char *p, uint64_t want_recovered, uint64_t want_lines)
{
	struct cx_audit *a = NULL;
	struct cx_err e = {0};
	uint64_t n;

	ck_assert_msg(cx_audit_open(p, &a, &e) == 0, "open: %s", e.msg);
	ck_assert_uint_eq(cx_audit_recovered(a), want_recovered);
	cx_audit_close(a);
	ck_assert_msg(cx_audit_verify(p, &n, &e) == 0, "verify: %s", e.msg);
	ck_assert_uint_eq(n, want_lines);
}

START_TEST(test_audit_torn)
{
	char *dir, *p = make_log(&dir);
	struct cx_audit *a = NULL;
	struct cx_err e = {0};

	ck_assert_int_eq(cx_test_sh("cp %s %s.whole && truncate -s -7 %s", p, p, p), 0);
	verify_fails(p, "line 50: torn line");
	/* the journal has line 50: the torn one is replaced by it, byte for byte */
	open_recovers(p, 1, 50);
	ck_assert_int_eq(cx_test_sh("cmp -s %s %s.whole", p, p), 0);
	/* without the journal the agent must not glue new lines onto a torn one */
	ck_assert_int_eq(cx_test_sh("truncate -s -7 %s && rm %s.journal", p, p), 0);
	ck_assert_int_eq(cx_audit_open(p, &a, &e), CX_EPARSE);
	ck_assert_ptr_null(a);
	ck_assert_msg(strstr(e.msg, "torn") != NULL, "%s", e.msg);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* A crash took the log's last lines (or left zeros for them): the journal gives them back. */
START_TEST(test_audit_journal_replay)
{
	char *dir, *p = make_log(&dir);
	long off = line_offset(p, 48);

	ck_assert_int_eq(cx_test_sh("cp %s %s.whole && truncate -s %ld %s", p, p, off, p), 0);
	open_recovers(p, 3, 50);
	ck_assert_int_eq(cx_test_sh("cmp -s %s %s.whole", p, p), 0);
	/* the size made it to the disk, the data did not: zeros */
	ck_assert_int_eq(
	    cx_test_sh("truncate -s %ld %s && truncate -s +3000 %s", off + 20, p, p), 0);
	open_recovers(p, 3, 50);
	ck_assert_int_eq(cx_test_sh("cmp -s %s %s.whole", p, p), 0);
	/* and then the log goes on from line 51 */
	append_n(p, 2, "after");
	open_recovers(p, 0, 52);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* A damaged record is no line: replay stops before it, the chain stays whole. */
START_TEST(test_audit_journal_damaged)
{
	char *dir, *p = make_log(&dir);
	long off = line_offset(p, 48);

	/* flip one byte inside line 49's copy in the journal */
	ck_assert_int_eq(cx_test_sh("truncate -s %ld %s && "
	                            "o=$(grep -abo '{\"seq\":49,' %s.journal | cut -d: -f1) && "
	                            "printf 'X' | dd of=%s.journal bs=1 seek=$((o + 30)) "
	                            "conv=notrunc status=none",
	                     off, p, p, p),
	    0);
	open_recovers(p, 1, 48);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* A journal speaks for the log it was made with, not for a new one at that path. */
START_TEST(test_audit_journal_other_log)
{
	char *dir, *p = make_log(&dir);

	ck_assert_int_eq(cx_test_sh("mv %s %s.old", p, p), 0);
	open_recovers(p, 0, 0);
	append_n(p, 2, "new");
	open_recovers(p, 0, 2);
	/* nor for the same path once moved back: its inode is the old one, the journal is new */
	ck_assert_int_eq(cx_test_sh("mv %s.old %s", p, p), 0);
	open_recovers(p, 0, 50);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/*
 * Three times the ring's size of lines, synced through the journal only (no
 * syncer): the ring must never overwrite a line the log does not hold
 * durably, and the last lines still come back after a wrap.
 */
START_TEST(test_audit_journal_wrap)
{
	char *dir = cx_test_tmpdir(), *p = path_in(dir, "audit.log");
	struct cx_journal_rec *v = NULL;
	struct cx_journal *j = NULL;
	struct cx_audit *a = NULL;
	struct cx_err e = {0};
	char big[4001], *jp = path_in(dir, "audit.log.journal");
	uint64_t seq = 0, logged, want;
	struct stat st;
	size_t n = 0;
	long off;

	memset(big, 'w', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_msg(cx_audit_open(p, &a, &e) == 0, "open: %s", e.msg);
	for (int i = 0; i < 750; i++) {
		struct cx_audit_entry en = {.op = "sign", .name = big, .result = "ok"};

		ck_assert_msg(cx_audit_write(a, &en, &seq, &e) == 0, "write %d: %s", i, e.msg);
		ck_assert_msg(cx_audit_sync(a, seq, &e) == 0, "sync %d: %s", i, e.msg);
	}
	/* the ring (1 MiB) is full twice over: the log was synced to make room */
	logged = cx_audit_log_synced(a);
	ck_assert_uint_gt(logged, 400);
	ck_assert_uint_lt(logged, 750);
	/* every line after that is in the journal, as of now */
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(
	    cx_journal_open(jp, st.st_dev, st.st_ino, 64 * 1024 + 1, &j, &v, &n, &e), 0);
	want = logged + 1;
	for (size_t k = 0; k < n; k++)
		if (v[k].seq == want)
			want++;
	ck_assert_uint_eq(want, 751);
	cx_journal_records_free(v, n);
	cx_journal_close(j);
	cx_audit_close(a);
	/* the last 100 lines lost: back from the journal, after two wraps */
	off = line_offset(p, 651);
	ck_assert_int_eq(cx_test_sh("cp %s %s.whole && truncate -s %ld %s", p, p, off, p), 0);
	open_recovers(p, 100, 750);
	ck_assert_int_eq(cx_test_sh("cmp -s %s %s.whole", p, p), 0);
	free(jp);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* A write cut short (here by RLIMIT_FSIZE) leaves no torn line behind. */
START_TEST(test_audit_short_write)
{
	char *dir, *p = make_log(&dir);
	struct cx_audit_entry en = {.op = "sign", .name = "after", .result = "ok"};
	struct cx_audit *a = NULL;
	struct cx_err e = {0};
	struct rlimit rl;
	struct stat st;
	uint64_t n;

	ck_assert_int_eq(cx_audit_open(p, &a, &e), 0);
	ck_assert_int_eq(stat(p, &st), 0);
	signal(SIGXFSZ, SIG_IGN);
	rl.rlim_cur = (rlim_t)st.st_size + 100;
	rl.rlim_max = RLIM_INFINITY;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	ck_assert_int_eq(cx_audit_append(a, &en, &e), CX_EIO);
	ck_assert_msg(strstr(e.msg, "write") != NULL, "%s", e.msg);
	ck_assert_msg(cx_audit_verify(p, &n, &e) == 0, "verify: %s", e.msg);
	ck_assert_uint_eq(n, 50);
	/* the handle is still good once there is room again */
	rl.rlim_cur = RLIM_INFINITY;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	ck_assert_msg(cx_audit_append(a, &en, &e) == 0, "append: %s", e.msg);
	cx_audit_close(a);
	ck_assert_msg(cx_audit_verify(p, &n, &e) == 0, "verify: %s", e.msg);
	ck_assert_uint_eq(n, 51);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_audit_reopen)
{
	char *dir = cx_test_tmpdir(), *p = path_in(dir, "audit.log");
	char big[5000];
	struct cx_err e = {0};
	uint64_t n = 0;
	uint8_t *d;
	size_t len;

	/* > 64 KiB of log, so that open has to find the last line from the end */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	append_n(p, 30, big);
	append_n(p, 20, "m2");
	ck_assert_msg(cx_audit_verify(p, &n, &e) == 0, "verify: %s", e.msg);
	ck_assert_uint_eq(n, 50);
	append_n(p, 1, big);
	append_n(p, 9, "m3");
	ck_assert_msg(cx_audit_verify(p, &n, &e) == 0, "verify: %s", e.msg);
	ck_assert_uint_eq(n, 60);
	ck_assert_ptr_nonnull(d = cx_test_read(p, &len));
	ck_assert_uint_gt(len, 150000);
	ck_assert_ptr_nonnull(strstr((char *)d, "{\"seq\":60,"));
	ck_assert_ptr_null(strstr((char *)d, "{\"seq\":61,"));
	free(d);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_audit_refusals)
{
	char *dir = cx_test_tmpdir(), *p = path_in(dir, "audit.log"), *l = path_in(dir, "link");
	struct cx_audit *a = NULL, *b = NULL;
	struct cx_err e = {0};
	uint64_t n = 1;

	/* empty log: verifies as 0 lines, starts at seq 1 */
	ck_assert_int_eq(cx_audit_open(p, &a, &e), 0);
	ck_assert_int_eq(cx_audit_verify(p, &n, &e), 0);
	ck_assert_uint_eq(n, 0);
	/* one writer at a time */
	ck_assert_int_eq(cx_audit_open(p, &b, &e), CX_EIO);
	ck_assert_msg(strstr(e.msg, "another process") != NULL, "%s", e.msg);
	cx_audit_close(a);
	/* no symlinks */
	ck_assert_int_eq(symlink(p, l), 0);
	ck_assert_int_eq(cx_audit_open(l, &a, &e), CX_EIO);
	ck_assert_msg(strstr(e.msg, "symbolic link") != NULL, "%s", e.msg);
	/* no group- or world-writable logs */
	ck_assert_int_eq(chmod(p, 0620), 0);
	ck_assert_int_eq(cx_audit_open(p, &a, &e), CX_EINVAL);
	ck_assert_int_eq(chmod(p, 0600), 0);
	/* garbage in the last line */
	cx_test_write_str(dir, "audit.log", "{\"seq\":1,\"prev\":\"00\"}\n");
	ck_assert_int_eq(cx_audit_open(p, &a, &e), CX_EPARSE);
	ck_assert_msg(strstr(e.msg, "prev is not 64 hex") != NULL, "%s", e.msg);
	verify_fails(p, "line 1: not an audit record: prev is not 64 hex digits");
	free(l);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* Group commit: appenders on several threads, each waiting for its own line. */
#define GC_THREADS 4
#define GC_LINES   150

struct gc_arg {
	struct cx_audit *a;
	int id;
	uint64_t seqs[GC_LINES];
	int failed;
};

static void *
gc_thread(void *p)
{
	struct gc_arg *g = p;
	struct cx_err e = {0};
	char name[32];

	snprintf(name, sizeof(name), "t%d", g->id);
	for (int i = 0; i < GC_LINES; i++) {
		struct cx_audit_entry en = {.op = "sign", .name = name, .result = "ok"};

		if (cx_audit_write(g->a, &en, &g->seqs[i], &e) != 0) {
			g->failed = 1;
			break;
		}
		/* the three ways the agent uses: wait, kick and wait, leave to the syncer */
		if (i % 3 == 1)
			cx_audit_kick(g->a, g->seqs[i]);
		if (i % 3 != 2 && cx_audit_sync(g->a, g->seqs[i], &e) != 0) {
			g->failed = 1;
			break;
		}
	}
	return NULL;
}

/* Lines handed to the syncer (the event loop's way), beside the appenders. */
static void *
gc_defer_thread(void *p)
{
	struct gc_arg *g = p;
	struct cx_err e = {0};
	uint8_t h[32];

	memset(h, 0xab, sizeof(h));
	for (int i = 0; i < GC_LINES; i++) {
		struct cx_audit_entry en = {.op = "sign",
		    .exe = "/usr/bin/conex",
		    .name = "deferred",
		    .data_sha256 = i % 2 ? h : NULL,
		    .result = "refused"};

		if (cx_audit_defer(g->a, &en, &e) != 0) {
			g->failed = 1;
			break;
		}
	}
	return NULL;
}

START_TEST(test_audit_group_commit)
{
	char *dir, *p = make_log(&dir);
	struct gc_arg args[GC_THREADS], dargs;
	pthread_t th[GC_THREADS], dth;
	struct cx_audit *a = NULL;
	struct cx_err e = {0};
	uint8_t seen[50 + (GC_THREADS + 1) * GC_LINES + 1];
	uint64_t n;

	ck_assert_msg(cx_audit_open(p, &a, &e) == 0, "open: %s", e.msg);
	ck_assert_msg(cx_audit_start(a, &e) == 0, "start: %s", e.msg);
	/* lines already in the file count as durable: nothing to wait for */
	ck_assert_int_eq(cx_audit_sync(a, 50, &e), 0);
	for (int i = 0; i < GC_THREADS; i++) {
		memset(&args[i], 0, sizeof(args[i]));
		args[i].a = a;
		args[i].id = i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, gc_thread, &args[i]), 0);
	}
	memset(&dargs, 0, sizeof(dargs));
	dargs.a = a;
	ck_assert_int_eq(pthread_create(&dth, NULL, gc_defer_thread, &dargs), 0);
	for (int i = 0; i < GC_THREADS; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	ck_assert_int_eq(pthread_join(dth, NULL), 0);
	ck_assert(!dargs.failed);
	/* every line got its own number, after the 50 that were there, in order per thread */
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < GC_THREADS; i++) {
		ck_assert(!args[i].failed);
		for (int k = 0; k < GC_LINES; k++) {
			uint64_t s = args[i].seqs[k];
			ck_assert_uint_gt(s, 50);
			ck_assert_uint_le(s, 50 + (GC_THREADS + 1) * GC_LINES);
			ck_assert(!seen[s]);
			seen[s] = 1;
			if (k > 0)
				ck_assert_uint_gt(s, args[i].seqs[k - 1]);
		}
	}
	/* closing writes what the syncer still holds */
	cx_audit_close(a);
	ck_assert_msg(cx_audit_verify(p, &n, &e) == 0, "verify: %s", e.msg);
	ck_assert_uint_eq(n, 50 + (GC_THREADS + 1) * GC_LINES);
	ck_assert_int_eq(
	    cx_test_sh("test $(grep -c '\"name\":\"deferred\"' '%s') -eq %d", p, GC_LINES), 0);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* ---- lock ---- */

START_TEST(test_lock_backoff)
{
	struct cx_lock l;
	struct cx_err e = {0};
	uint32_t wait = 99;

	cx_lock_init(&l);
	ck_assert_int_eq(cx_lock_unlock(&l, "pw", 2, 100, &wait, &e), CX_EINVAL);
	ck_assert_str_eq(e.msg, "agent is not locked");
	ck_assert_int_eq(cx_lock_lock(&l, "correct horse", 13, &e), 0);
	ck_assert_int_eq(l.locked, 1);
	ck_assert_int_eq(cx_lock_lock(&l, "other", 5, &e), CX_EINVAL);

	ck_assert_int_eq(cx_lock_unlock(&l, "wrong", 5, 100, &wait, &e), CX_EREJECT);
	ck_assert_uint_eq(wait, 1);
	/* the right password, but too soon */
	ck_assert_int_eq(cx_lock_unlock(&l, "correct horse", 13, 100, &wait, &e), CX_EREJECT);
	ck_assert_uint_gt(wait, 0);
	ck_assert_int_eq(l.locked, 1);
	ck_assert_int_eq(cx_lock_unlock(&l, "correct horse", 13, 101, &wait, &e), 0);
	ck_assert_uint_eq(wait, 0);
	ck_assert_int_eq(l.locked, 0);
	for (size_t i = 0; i < sizeof(l.hash); i++)
		ck_assert_int_eq(l.hash[i], 0);
	ck_assert_int_eq(cx_lock_unlock(&l, "correct horse", 13, 102, &wait, &e), CX_EINVAL);
}
END_TEST

START_TEST(test_lock_sequence)
{
	static const uint32_t want[] = {1, 2, 4, 8, 16, 32, 60, 60};
	struct cx_lock l;
	struct cx_err e = {0};
	int64_t now = 1000;
	uint32_t wait;

	cx_lock_init(&l);
	/* lengths, not NUL: "ab\0cd" is not "ab" */
	ck_assert_int_eq(cx_lock_lock(&l, "ab\0cd", 5, &e), 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ck_assert_int_eq(cx_lock_unlock(&l, "ab", 2, now, &wait, &e), CX_EREJECT);
		ck_assert_uint_eq(wait, want[i]);
		ck_assert_int_eq(
		    cx_lock_unlock(&l, "ab\0cd", 5, now + wait - 1, &wait, &e), CX_EREJECT);
		ck_assert_uint_eq(wait, 1);
		now += want[i];
	}
	/* success resets the back-off */
	ck_assert_int_eq(cx_lock_unlock(&l, "ab\0cd", 5, now, &wait, &e), 0);
	ck_assert_uint_eq(l.failures, 0);
	ck_assert_int_eq(cx_lock_lock(&l, "x", 1, &e), 0);
	ck_assert_int_eq(cx_lock_unlock(&l, "y", 1, now, &wait, &e), CX_EREJECT);
	ck_assert_uint_eq(wait, 1);
	ck_assert_int_eq(cx_lock_lock(&l, "", 0, &e), CX_EINVAL);
}
END_TEST

/* ---- softkey ---- */

static int secure_heap; /* CRYPTO_secure_malloc_init's answer, set once in main */

static void
check_softkey(EVP_PKEY *k, enum cx_sigalg alg, const char *id)
{
	static const uint8_t msg[] = "signed: [ [version 0] [typ targets] ]";
	struct cx_softkey *sk = NULL;
	struct cx_buf pem, ks, sig;
	struct cx_err e = {0};
	uint8_t want[CX_SHA256_LEN];

	cx_buf_init(&pem, 0);
	cx_buf_init(&ks, 0);
	cx_buf_init(&sig, 0);
	ck_assert_msg(cx_privkey_pem(k, &pem, &e) == 0, "pem: %s", e.msg);
	ck_assert_msg(cx_softkey_load(id, pem.d, pem.len, &sk, &e) == 0, "load: %s", e.msg);
	cx_buf_free_wipe(&pem);
	ck_assert_str_eq(cx_softkey_id(sk), id);
	ck_assert_int_eq(cx_softkey_is_ed25519(sk), alg == CX_SIG_ED25519);
	ck_assert_int_eq(cx_pubkey_string(k, &ks, &e), 0);
	ck_assert_str_eq(cx_softkey_keystr(sk), (char *)ks.d);
	cx_keyid((char *)ks.d, ks.len, want);
	ck_assert_mem_eq(cx_softkey_keyid(sk), want, sizeof(want));
	if (alg == CX_SIG_ED25519 || secure_heap)
		ck_assert_int_eq(cx_softkey_protected(sk), 1);
	for (int i = 0; i < 3; i++) { /* the page goes back to PROT_NONE in between */
		cx_buf_reset(&sig);
		ck_assert_msg(
		    cx_softkey_sign(sk, msg, sizeof(msg) - 1, &sig, &e) == 0, "sign: %s", e.msg);
		ck_assert_msg(cx_sig_verify(k, alg, msg, sizeof(msg) - 1, sig.d, sig.len, &e) == 0,
		    "verify: %s", e.msg);
	}
	/* and it signs these bytes only */
	ck_assert_int_ne(cx_sig_verify(k, alg, msg, sizeof(msg) - 2, sig.d, sig.len, &e), 0);
	cx_softkey_free(sk);
	cx_buf_free(&ks);
	cx_buf_free(&sig);
}

START_TEST(test_softkey_ed25519)
{
	struct cx_err e = {0};
	EVP_PKEY *k = NULL;

	ck_assert_int_eq(cx_privkey_generate(CX_KEY_ED25519, 0, &k, &e), 0);
	check_softkey(k, CX_SIG_ED25519, "ed");
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_softkey_rsa)
{
	struct cx_err e = {0};
	EVP_PKEY *k = NULL;

	ck_assert_int_eq(cx_privkey_generate(CX_KEY_RSA, 2048, &k, &e), 0);
	check_softkey(k, CX_SIG_RSAPSS_SHA256, "rsa");
	EVP_PKEY_free(k);
}
END_TEST

START_TEST(test_softkey_testrepo)
{
	static const uint8_t msg[] = "testrepo";
	const char *shared = cx_test_shared();
	char dir[4096], path[8192], hex[CX_SHA256_HEX + 1];
	struct dirent *de;
	int nkeys = 0;
	DIR *d;

	if (shared == NULL) {
		fprintf(stderr, "test_softkey_testrepo: skipped, shared directory absent\n");
		return;
	}
	snprintf(dir, sizeof(dir), "%s/vectors/testrepo/priv", shared);
	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "test_softkey_testrepo: skipped, %s absent\n", dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		const char *h = strstr(de->d_name, ".sha256="), *end;
		struct cx_softkey *sk = NULL;
		struct cx_err e = {0};
		enum cx_keyalg alg;
		struct cx_buf sig;
		EVP_PKEY *pub = NULL;
		uint8_t *pem;
		size_t len;

		if (h == NULL || (end = strstr(h, ".private")) == NULL || end[8] != '\0')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		ck_assert_ptr_nonnull(pem = cx_test_read(path, &len));
		ck_assert_msg(cx_softkey_load(de->d_name, pem, len, &sk, &e) == 0, "%s: %s",
		    de->d_name, e.msg);
		sodium_memzero(pem, len);
		free(pem);
		cx_hex_encode(cx_softkey_keyid(sk), CX_SHA256_LEN, hex);
		ck_assert_int_eq((int)(end - (h + 8)), CX_SHA256_HEX);
		ck_assert_msg(
		    strncmp(hex, h + 8, CX_SHA256_HEX) == 0, "%s: keyid %s", de->d_name, hex);
		/* the signature verifies under the published key string */
		cx_buf_init(&sig, 0);
		ck_assert_msg(
		    cx_softkey_sign(sk, msg, sizeof(msg) - 1, &sig, &e) == 0, "%s", e.msg);
		ck_assert_int_eq(cx_pubkey_parse(cx_softkey_keystr(sk),
		                     strlen(cx_softkey_keystr(sk)), &pub, &alg, &e),
		    0);
		ck_assert_msg(cx_sig_verify(pub, cx_sigalg_for_key(alg), msg, sizeof(msg) - 1,
		                  sig.d, sig.len, &e) == 0,
		    "%s: %s", de->d_name, e.msg);
		EVP_PKEY_free(pub);
		cx_buf_free(&sig);
		cx_softkey_free(sk);
		nkeys++;
	}
	closedir(d);
	ck_assert_int_ge(nkeys, 6);
}
END_TEST

START_TEST(test_softkey_refusals)
{
	char *dir = cx_test_tmpdir(), *p = path_in(dir, "enc.pem");
	static const char junk[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
	struct cx_softkey *sk = NULL;
	struct cx_err e = {0};
	uint8_t *pem;
	size_t len;
	int r;

	r = cx_test_sh("openssl genpkey -algorithm ed25519 -aes256 -pass pass:x -out %s "
	               "2>/dev/null",
	    p);
	if (r != 0)
		fprintf(stderr, "test_softkey_refusals: no openssl(1), encrypted case skipped\n");
	else {
		ck_assert_ptr_nonnull(pem = cx_test_read(p, &len));
		ck_assert_int_eq(cx_softkey_load("enc", pem, len, &sk, &e), CX_EUNSUPPORTED);
		ck_assert_ptr_null(sk);
		ck_assert_msg(strstr(e.msg, "enc: private key is encrypted") != NULL, "%s", e.msg);
		free(pem);
	}
	ck_assert_int_eq(
	    cx_softkey_load("junk", (const uint8_t *)junk, sizeof(junk) - 1, &sk, &e), CX_EPARSE);
	ck_assert_ptr_null(sk);
	ck_assert_int_eq(cx_softkey_load("none", (const uint8_t *)"x", 1, &sk, &e), CX_EPARSE);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* ---- askpass ---- */

static char *
script(const char *dir, const char *name, const char *body)
{
	char *p = path_in(dir, name);
	char *text;

	ck_assert_int_ge(asprintf(&text, "#!/bin/sh\n%s\n", body), 0);
	cx_test_write_str(dir, name, text);
	ck_assert_int_eq(chmod(p, 0700), 0);
	free(text);
	return p;
}

static char *
ask(const char *prog, const char *prompt, int timeout, size_t *len, int want)
{
	struct cx_err e = {0};
	char *s = (char *)"unset";

	ck_assert_msg(
	    cx_askpass_secret_t(prog, prompt, timeout, &s, len, &e) == want, "%s: %s", prog, e.msg);
	if (want != 0) {
		ck_assert_ptr_null(s);
		ck_assert_int_eq(e.code, want);
	}
	return s;
}

START_TEST(test_askpass_secret)
{
	char *dir = cx_test_tmpdir(), *p, *s;
	struct cx_err e = {0};
	size_t len;

	p = script(dir, "pin.sh", "echo 123456");
	s = ask(p, "PIN for token", 10, &len, 0);
	ck_assert_str_eq(s, "123456");
	ck_assert_uint_eq(len, 6);
	sodium_free(s);
	free(p);

	/* the prompt is argv[1]; only one newline is stripped */
	p = script(dir, "echo.sh", "printf '%s\\n\\n' \"$1\"");
	s = ask(p, "PIN for \"my token\"", 10, &len, 0);
	ck_assert_str_eq(s, "PIN for \"my token\"\n");
	sodium_free(s);
	free(p);

	/* stdin is /dev/null, and a secret request does not look like a confirmation */
	setenv("SSH_ASKPASS_PROMPT", "confirm", 1);
	p = script(dir, "stdin.sh", "cat; echo \"${SSH_ASKPASS_PROMPT:-unset}\"");
	s = ask(p, "x", 10, &len, 0);
	ck_assert_str_eq(s, "unset");
	sodium_free(s);
	free(p);
	unsetenv("SSH_ASKPASS_PROMPT");

	/* an empty answer is an answer */
	p = script(dir, "empty.sh", "exit 0");
	s = ask(p, "x", 10, &len, 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_str_eq(s, "");
	sodium_free(s);
	free(p);

	/* 1024 bytes and a newline fit; one more does not */
	p = script(dir, "max.sh", "head -c 1024 /dev/zero | tr '\\0' 7; echo");
	s = ask(p, "x", 10, &len, 0);
	ck_assert_uint_eq(len, 1024);
	ck_assert_uint_eq(strlen(s), 1024);
	sodium_free(s);
	free(p);
	p = script(dir, "long.sh", "head -c 1025 /dev/zero | tr '\\0' 7; echo");
	ask(p, "x", 10, &len, CX_EREJECT);
	free(p);
	p = script(dir, "huge.sh", "head -c 100000 /dev/zero | tr '\\0' 7");
	ask(p, "x", 10, &len, CX_EREJECT);
	free(p);

	p = script(dir, "nul.sh", "printf '12\\00034\\n'");
	ask(p, "x", 10, &len, CX_EREJECT);
	free(p);

	/* the program lingers after closing stdout: its exit status still counts */
	p = script(dir, "linger.sh", "echo 42; exec >&-; sleep 0.3; exit 0");
	s = ask(p, "x", 10, &len, 0);
	ck_assert_str_eq(s, "42");
	sodium_free(s);
	free(p);
	p = script(dir, "linger1.sh", "echo 42; exec >&-; sleep 0.3; exit 1");
	ask(p, "x", 10, &len, CX_EREJECT);
	free(p);

	/* the default-timeout entry point */
	p = script(dir, "pin2.sh", "echo 0000");
	ck_assert_int_eq(cx_askpass_secret(p, "x", &s, &len, &e), 0);
	ck_assert_str_eq(s, "0000");
	sodium_free(s);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_askpass_refused)
{
	char *dir = cx_test_tmpdir(), *p, *q;
	struct cx_err e = {0};
	char *s = NULL;
	size_t len;

	p = script(dir, "cancel.sh", "echo 123456; exit 1");
	ask(p, "x", 10, &len, CX_EREJECT);
	ck_assert_int_eq(cx_askpass_secret_t(p, "x", 10, &s, &len, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "cancelled") != NULL, "%s", e.msg);
	free(p);
	p = script(dir, "killed.sh", "kill -TERM $$");
	ask(p, "x", 10, &len, CX_EREJECT);
	free(p);

	/* cannot run at all: negative, and not a "no" */
	q = path_in(dir, "absent");
	ck_assert_int_eq(cx_askpass_secret_t(q, "x", 10, &s, &len, &e), CX_ENOENT);
	ck_assert_int_eq(cx_askpass_confirm_t(q, "x", 10, &e), CX_ENOENT);
	free(q);
	cx_test_write_str(dir, "noexec.sh", "#!/bin/sh\necho 1\n");
	q = path_in(dir, "noexec.sh");
	ck_assert_int_eq(cx_askpass_secret_t(q, "x", 10, &s, &len, &e), CX_EIO);
	free(q);
	ck_assert_int_eq(cx_askpass_secret_t("", "x", 10, &s, &len, &e), CX_ENOENT);
	ck_assert_int_eq(cx_askpass_secret_t(NULL, "x", 10, &s, &len, &e), CX_ENOENT);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

START_TEST(test_askpass_confirm)
{
	char *dir = cx_test_tmpdir(), *p;
	struct cx_err e = {0};

	/* as OpenSSH: SSH_ASKPASS_PROMPT=confirm, the prompt as argv[1] */
	p = script(dir, "yes.sh",
	    "[ \"$SSH_ASKPASS_PROMPT\" = confirm ] || exit 3\n"
	    "[ \"$1\" = 'Allow signing?' ] || exit 4\nexit 0");
	ck_assert_msg(cx_askpass_confirm_t(p, "Allow signing?", 10, &e) == 1, "%s", e.msg);
	ck_assert_int_eq(cx_askpass_confirm(p, "Allow signing?", &e), 1);
	free(p);
	p = script(dir, "no.sh", "exit 1");
	ck_assert_int_eq(cx_askpass_confirm_t(p, "x", 10, &e), 0);
	ck_assert_int_eq(e.code, CX_EREJECT);
	free(p);
	p = script(dir, "sayyes.sh", "echo YES");
	ck_assert_int_eq(cx_askpass_confirm_t(p, "x", 10, &e), 1);
	free(p);
	p = script(dir, "sayno.sh", "echo no");
	ck_assert_int_eq(cx_askpass_confirm_t(p, "x", 10, &e), 0);
	free(p);
	p = script(dir, "slow.sh", "sleep 1000");
	ck_assert_int_eq(cx_askpass_confirm_t(p, "x", 1, &e), 0);
	ck_assert_msg(strstr(e.msg, "within 1 seconds") != NULL, "%s", e.msg);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

/* A process gone, or a zombie nobody reaps (PID 1 in some containers). */
static int
gone(pid_t pid)
{
	char path[64], *st;
	int dead;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((st = (char *)cx_test_read(path, NULL)) == NULL)
		return 1;
	dead = strstr(st, ") Z ") != NULL || strstr(st, ") X ") != NULL;
	free(st);
	return dead;
}

START_TEST(test_askpass_timeout)
{
	char *dir = cx_test_tmpdir(), *p, *pf, *body;
	struct timespec t0, t1;
	struct cx_err e = {0};
	char *s = NULL;
	size_t len;
	uint8_t *d;
	pid_t child;
	int i;

	pf = path_in(dir, "child.pid");
	/* the script's own child must die too: it holds the pipe open */
	ck_assert_int_ge(asprintf(&body, "sleep 1000 & echo $! > %s; wait", pf), 0);
	p = script(dir, "hang.sh", body);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(cx_askpass_secret_t(p, "x", 1, &s, &len, &e), CX_EREJECT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(e.msg, "did not answer within 1 seconds") != NULL, "%s", e.msg);
	ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 5);
	ck_assert_ptr_nonnull(d = cx_test_read(pf, NULL));
	child = (pid_t)atol((char *)d);
	free(d);
	ck_assert_int_gt(child, 1);
	for (i = 0; i < 200 && !gone(child); i++)
		usleep(10000);
	ck_assert_msg(gone(child), "the askpass program's child %ld survived", (long)child);
	ck_assert_int_eq(cx_askpass_secret_t(p, "x", 0, &s, &len, &e), CX_EINVAL);
	free(body);
	free(pf);
	free(p);
	cx_test_rm_rf(dir);
	free(dir);
}
END_TEST

static Suite *
agentlib_suite(void)
{
	Suite *s = suite_create("agentlib");
	TCase *tc;

	tc = tcase_create("audit");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_audit_chain);
	tcase_add_test(tc, test_audit_escape);
	tcase_add_test(tc, test_audit_edit);
	tcase_add_test(tc, test_audit_edit_breaks_json);
	tcase_add_test(tc, test_audit_delete);
	tcase_add_test(tc, test_audit_reorder);
	tcase_add_test(tc, test_audit_torn);
	tcase_add_test(tc, test_audit_journal_replay);
	tcase_add_test(tc, test_audit_journal_damaged);
	tcase_add_test(tc, test_audit_journal_other_log);
	tcase_add_test(tc, test_audit_journal_wrap);
	tcase_add_test(tc, test_audit_short_write);
	tcase_add_test(tc, test_audit_reopen);
	tcase_add_test(tc, test_audit_refusals);
	tcase_add_test(tc, test_audit_group_commit);
	suite_add_tcase(s, tc);

	tc = tcase_create("lock");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_lock_backoff);
	tcase_add_test(tc, test_lock_sequence);
	suite_add_tcase(s, tc);

	tc = tcase_create("softkey");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_softkey_ed25519);
	tcase_add_test(tc, test_softkey_rsa);
	tcase_add_test(tc, test_softkey_testrepo);
	tcase_add_test(tc, test_softkey_refusals);
	suite_add_tcase(s, tc);

	tc = tcase_create("askpass");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_askpass_secret);
	tcase_add_test(tc, test_askpass_refused);
	tcase_add_test(tc, test_askpass_confirm);
	tcase_add_test(tc, test_askpass_timeout);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	/* as the agent does at start-up: RSA private BIGNUMs go to the secure heap */
	secure_heap = CRYPTO_secure_malloc_init(1 << 20, 32);
	if (!secure_heap)
		fprintf(
		    stderr, "test_agentlib: no OpenSSL secure heap; RSA protection unchecked\n");
	if (sodium_init() < 0)
		return EXIT_FAILURE;
	sr = srunner_create(agentlib_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
