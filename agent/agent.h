/*
 * conex-agent internals: the structures the daemon's files share.
 *
 * Threads: the main thread runs the event loop (loop.c) and owns every
 * structure here except what a worker owns: the connections, the key
 * registry, the token list, the lock.  Each token has a worker thread that
 * owns its cx_p11_token (one session); software keys share one worker, the
 * lock's password hashing another, module loads and token rescans a third.
 * Main hands a worker a job; the worker runs it, appends the audit line, and
 * posts it back on the done queue (mutex + eventfd).  Main never calls into a
 * PKCS#11 module once the loop runs, never waits for a worker (except at
 * shutdown), and a worker touches nothing of main's except through its job.
 * Shared between threads, with their own locks: the done queue, each
 * worker's queue, the PIN cache, the audit log.
 */
#ifndef CX_AGENT_AGENT_H
#define CX_AGENT_AGENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent/audit.h"
#include "agent/lock.h"
#include "agent/softkey.h"
#include "conex/tbs.h"
#include "pkcs11/token.h"
#include "proto/buf.h"
#include "proto/err.h"
#include "proto/msg.h"

#define CX_AGENT_VERSION "conex-agent 1.0"

#define AGENT_TICK_MS         1000 /* timer: PIN cache, lifetimes, rescans, stalled frames */
#define AGENT_RESCAN_S        2    /* seconds between token rescans */
#define AGENT_FRAME_TIMEOUT_S 30   /* a frame begun must be finished within this */
/* Large requests (SIGN, up to CX_PROTO_SIGN_MAX) being read or worked on at once, in bytes. */
#define AGENT_BIG_BUDGET (256u * 1024u * 1024u)
/* The decoder's scratch: up to a whole SIGN; kept between requests up to KEEP. */
#define AGENT_SCRATCH_MAX  (CX_PROTO_SIGN_MAX + 4096u)
#define AGENT_SCRATCH_KEEP (2u * CX_PROTO_MAX + 4096u)
#define AGENT_STOP_WAIT_S  3   /* shutdown: how long a busy worker is waited for */
#define AGENT_SPIN_US      200 /* an idle worker yields this long before it sleeps */
/* the loop polls this long for its one signature in flight (fastsign.c) */
#define AGENT_FAST_SPIN_US 2000

struct agent;
struct conn;
struct job;
struct tok;
struct akey;
struct amodule;
struct cx_pincache;
struct policy_rule;

/* Who is on the other end of a connection (SO_PEERCRED at accept). */
struct peer {
	uid_t uid;
	pid_t pid;
	char *exe; /* readlink /proc/<pid>/exe at accept, "" if unknown */
};

/* ---- workers (loop.c) ---- */

struct worker {
	struct agent *a;
	const char *name; /* for logs */
	pthread_t th;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	atomic_int queued; /* jobs in the queue, read without the lock while spinning */
	atomic_int busy;   /* jobs pushed and not yet finished: 0, the thread is idle */
	/*
	 * Main thread only: while the loop signs on the token itself
	 * (fastsign.c), jobs pushed to its worker wait here, in order.
	 */
	int hold;
	struct job *hhead, *htail;
	void (*run)(struct agent *a, struct job *j);
	struct tok *tok; /* token workers only */
	int stopping;    /* JOB_STOP queued (main thread) */
	int joined;      /* the thread is gone */
	int detached;    /* shutdown gave up waiting: it may still run */
};

enum job_kind {
	JOB_STOP = 1, /* the worker's last job: close the token, exit */
	JOB_OPEN,  /* token: (re)open the session at slot, log in again if a PIN is cached, list */
	JOB_DROP,  /* token: the rescan saw it go: close the session */
	JOB_LIST,  /* token: list the keys */
	JOB_LOGIN, /* token: C_Login with the client's PIN, then list */
	JOB_SIGN,  /* token or software key: confirm, log in, sign */
	JOB_GENERATE, /* token: generate a key pair */
	JOB_MODLOAD,  /* aux: load a module (or reuse it), scan its tokens */
	JOB_RESCAN,   /* aux: scan every module's slots */
	JOB_LOCK,     /* pw: hash the lock password */
	JOB_UNLOCK    /* pw: check the unlock password */
};

/* One token seen by a scan. */
struct scan_ent {
	struct amodule *mod;
	unsigned long slot;
	struct cx_p11_token_info info;
};

struct job {
	struct job *next;
	enum job_kind kind;
	struct worker *w;
	/* the connection that waits for the answer; slot SIZE_MAX: internal job */
	size_t cslot;
	uint64_t cgen;
	int fd;               /* the connection's: SIGN answers are written by the worker */
	atomic_int cancelled; /* the client went away: do not sign */
	struct peer peer;     /* copy, for the audit line */

	/* ---- request ---- */
	uint8_t msgtype;
	uint8_t keyid[32];
	struct akey *key;      /* ref held: software key to sign with */
	struct cx_p11_key p11; /* copy: token key to sign with */
	uint8_t sigalg;
	uint8_t *data; /* to sign (owned) */
	size_t datalen;
	uint8_t data_sha[32];
	int confirm;
	char keyidstr[72]; /* "sha256=<hex>" */
	char conexid[128];
	char prompt[512];
	char rtype[16], rname[128];
	char *secret; /* PIN or password, sodium_malloc'ed */
	size_t secretlen;
	int allow_final_try;
	unsigned long slot; /* JOB_OPEN */
	char *label;        /* JOB_GENERATE */
	int alg, bits;
	char *path, *filter;   /* JOB_MODLOAD */
	struct amodule *mod;   /* JOB_MODLOAD: reuse this loaded module */
	struct amodule **mods; /* JOB_RESCAN */
	size_t nmods;
	struct cx_lock lock; /* JOB_LOCK / JOB_UNLOCK: copy in, result out */
	int64_t now;

	/* ---- result ---- */
	int aerr; /* 0, or the CX_AERR_* to answer */
	uint32_t detail;
	struct cx_err err;
	struct cx_buf sig;
	struct cx_p11_key *keys; /* JOB_OPEN / JOB_LIST / JOB_LOGIN / JOB_GENERATE */
	size_t nkeys;
	int listed; /* keys is a fresh listing */
	int absent; /* the token is gone */
	int logged_in;
	struct cx_p11_token_info info;
	int have_info;
	struct cx_p11_module *loaded; /* JOB_MODLOAD: newly loaded */
	struct scan_ent *scan;
	size_t nscan;
	int *scanned;      /* JOB_RESCAN: per module, 1 if its slot list was read */
	uint32_t wait;     /* JOB_UNLOCK */
	struct cx_buf out; /* SIGN: the answer frame the worker wrote (or began to) */
	size_t written;
	int replied; /* the worker encoded the answer and tried to send it */
	int write_failed;
	/* SIGN by the event loop (fastsign.c): */
	int fast_rc;     /* not 0: the loop's signature failed with it, the worker tells why */
	uint64_t intent; /* the intent line's seq */
	int intent_ok;   /* and it is durable */
};

/* ---- connections (conn.c) ---- */

enum conn_state { C_READ = 1, C_BUSY, C_WRITE };

struct conn {
	int fd;
	size_t slot;
	uint64_t gen;
	enum conn_state st;
	struct peer peer;
	uint8_t hdr[CX_PROTO_HDR];
	size_t hdrlen;
	uint8_t type;
	uint32_t bodylen;
	uint8_t *body; /* allocated once the header is checked, freed after the request */
	size_t bodyoff, bodycap;
	int64_t deadline; /* frame begun: monotonic seconds by which it must be complete */
	struct cx_buf out;
	int close_after; /* close once out is written */
	struct job *job; /* in flight */
	int dead; /* closed while its job runs: fd kept (the worker may write) until it ends */
	uint32_t bigcharge; /* what this request counts against AGENT_BIG_BUDGET until answered */
};

/* ---- token side (tokens.c) ---- */

struct amodule {
	struct amodule *next;
	struct cx_p11_module *m;
	char *path;     /* realpath */
	int all;        /* attach every token */
	char **filters; /* serials or pkcs11: URIs to attach */
	size_t nfilters;
	char **excluded; /* serials removed by REMOVE_TOKEN: not attached again */
	size_t nexcluded;
};

struct tok {
	struct tok *next;
	struct amodule *mod;
	char serial[17];
	char label[33];
	struct worker w;
	/* main's view */
	int present;
	int logged_in;
	int removing;
	int reopening; /* a JOB_OPEN is queued */
	unsigned long slot;
	/* worker's own, and the loop's while the worker is idle and held (fastsign.c) */
	struct cx_p11_token *t;
	/* main's: the loop's signature in flight on this token */
	struct job *fast;
	int fastfd;
};

/* ---- the key registry (registry.c) ---- */

struct akey {
	struct akey *next;
	int refs;     /* the registry's and jobs'; main thread only */
	int unlinked; /* removed from the registry, freed at refs 0 */
	uint8_t keyid[32];
	char *id; /* conex identity */
	char *keystr;
	uint8_t keyalg;  /* cx_msg_keyalg */
	struct tok *tok; /* NULL: software key */
	struct cx_p11_key p11;
	int present;
	struct cx_softkey *soft;
	struct cx_policy policy;
	int64_t since; /* monotonic seconds the lifetime counts from */
	int expired;
	uint64_t sigs, pending;
};

/* ---- the agent ---- */

struct agent {
	/* options */
	uid_t uid;
	int debug, foreground, allow_root, log_stderr;
	char *sockpath;
	int activated; /* socket from systemd: never unlinked */
	char **allow;
	size_t nallow;
	char **startmods;
	size_t nstartmods;
	char *askpass;
	unsigned pin_idle, pin_max;
	char *audit_path;
	struct policy_rule *rules; /* -c */
	size_t nrules;
	struct cx_policy defpolicy;

	/* event loop */
	int lfd, evfd, sigfd;
	int quit;
	int64_t accept_pause; /* EMFILE: accepting resumes at this monotonic second */
	int64_t next_rescan;
	int rescanning;
	struct conn **conns; /* slot table */
	size_t nconns, conncap, nlive;
	uint64_t nextgen;
	uint64_t answers;      /* answers finished: the loop stays awake a moment after one */
	atomic_int running;    /* jobs queued or running in any worker */
	size_t nfast;          /* the loop's signatures in flight (fastsign.c) */
	int token_helpers;     /* token sessions in helper processes (pkcs11/remote.h) */
	int spin;              /* more than one CPU: short spins before sleeping pay off */
	struct cx_buf scratch; /* decoder strings */
	size_t bigbytes;       /* large requests not yet answered: see AGENT_BIG_BUDGET */
	uint8_t *secret;       /* decoder secrets: sodium_malloc(CX_PROTO_MAX) */

	/* done queue: workers to main */
	pthread_mutex_t done_mu;
	struct job *done_head, *done_tail;

	/* registry, tokens */
	struct akey *keys;
	struct amodule *mods;
	struct tok *toks;
	struct worker aux, soft, pw;

	struct cx_pincache *pins;
	struct cx_lock lock;
	int locking, unlocking; /* a LOCK / UNLOCK job is in flight */

	/*
	 * Thread-safe on its own.  audit_lock (read: every record and wait;
	 * write: closing it) keeps a worker that shutdown gave up on (stuck in
	 * a module call) from appending to a freed log when it comes back.
	 */
	pthread_rwlock_t audit_lock;
	struct cx_audit *audit;
};

/* main.c */
void cx_agent_log(struct agent *a, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int64_t cx_agent_now(void); /* monotonic seconds */

/* loop.c */
int cx_loop_run(struct agent *a);
int cx_worker_start(struct agent *a, struct worker *w, const char *name, struct tok *tok,
    void (*run)(struct agent *, struct job *));
void cx_worker_push(struct worker *w, struct job *j);
/* Main thread: the loop is done with w's token; held jobs go to w, in order. */
void cx_worker_release(struct worker *w);
/* Queues JOB_STOP; joins within the wait, else detaches (shutdown). 1 if joined. */
int cx_worker_stop(struct worker *w, int wait_s);
struct job *cx_job_new(enum job_kind kind);
void cx_job_free(struct agent *a, struct job *j);
void cx_job_done(struct agent *a, struct job *j); /* worker side: post back to main */
void cx_loop_discard(struct agent *a);            /* shutdown: free finished jobs unread */

struct pollfd;
/*
 * fastsign.c: a SIGN on a token in a helper process, when nothing else is
 * asked of the token, is sent, waited for and answered by the event loop
 * itself: no thread between the client and the helper.
 */
/* 1: j (a SIGN job for c, key k) is under way; 0: give it to the worker. */
int cx_fast_sign(struct agent *a, struct conn *c, struct akey *k, struct job *j);
/* The descriptors to poll: for each, *who is its tok.  Returns how many (at most max). */
size_t cx_fast_fds(struct agent *a, struct pollfd *pfd, struct tok **who, size_t max);
void cx_fast_io(struct agent *a, struct tok *t); /* t's helper has answered (or hung up) */
void cx_fast_shutdown(struct agent *a);          /* before the workers stop */

/* conn.c */
void cx_conn_accept(struct agent *a);
void cx_conn_io(struct agent *a, struct conn *c, short revents);
void cx_conn_close(struct agent *a, struct conn *c);
void cx_conn_cancel_all(struct agent *a); /* shutdown, before the workers stop */
void cx_conn_close_all(struct agent *a);  /* shutdown, after */
/* Worker side: writes a SIGN job's answer straight to the client. */
void cx_conn_worker_reply(struct job *j);
/* Main side: finishes what the worker wrote; 0 if it wrote nothing (answer normally). */
int cx_conn_take_reply(struct agent *a, struct conn *c, struct job *j);
void cx_conn_tick(struct agent *a, int64_t now);
struct conn *cx_conn_find(struct agent *a, size_t slot, uint64_t gen);
void cx_conn_reply(struct agent *a, struct conn *c, const struct cx_msg *m);
void cx_conn_error(struct agent *a, struct conn *c, uint32_t code, uint32_t detail, const char *fmt,
    ...) __attribute__((format(printf, 5, 6)));
void cx_conn_ok(struct agent *a, struct conn *c);
/* Hands j to w, with c waiting for it. */
void cx_conn_wait_job(struct agent *a, struct conn *c, struct worker *w, struct job *j);
/* c waits for j, which the loop runs itself (fastsign.c). */
void cx_conn_attach_job(struct agent *a, struct conn *c, struct job *j);
/* The connection j answers, or NULL when it went away. */
struct conn *cx_conn_of_job(struct agent *a, struct job *j);
void cx_conn_job_error(struct agent *a, struct job *j);

/* registry.c */
struct akey *cx_reg_find(struct agent *a, const uint8_t keyid[32]);
void cx_reg_ref(struct akey *k);
void cx_reg_unref(struct agent *a, struct akey *k);
/* A token listed these keys (listed: authoritative; absent: the token is gone). */
void cx_reg_token_keys(
    struct agent *a, struct tok *t, const struct cx_p11_key *keys, size_t n, int listed);
void cx_reg_token_present(struct agent *a, struct tok *t);
void cx_reg_token_absent(struct agent *a, struct tok *t);
void cx_reg_token_forget(struct agent *a, struct tok *t);
void cx_reg_tick(struct agent *a, int64_t now);
void cx_reg_free(struct agent *a);
void cx_reg_list(struct agent *a, struct conn *c);
void cx_reg_add_key(struct agent *a, struct conn *c, const struct cx_msg *m);
void cx_reg_remove_key(struct agent *a, struct conn *c, const struct cx_msg *m);
void cx_reg_set_policy(struct agent *a, struct conn *c, const struct cx_msg *m);
void cx_reg_soft_run(struct agent *a, struct job *j); /* soft worker */
void cx_reg_sign_done(struct agent *a, struct job *j);
int cx_reg_p11_copy(struct cx_p11_key *dst, const struct cx_p11_key *src);
void cx_reg_p11_clear(struct cx_p11_key *k);

/* tokens.c */
int cx_tokens_start(struct agent *a, struct cx_err *e); /* -m modules, before the loop */
void cx_tokens_run(struct agent *a, struct job *j);     /* token and aux workers */
void cx_tokens_done(struct agent *a, struct job *j);
enum cx_p11_mech cx_tokens_mech(enum cx_p11_alg alg); /* what conex signs with alg */
void cx_tokens_tick(struct agent *a, int64_t now);
void cx_tokens_shutdown(struct agent *a);
struct tok *cx_tokens_find(struct agent *a, const char *serial);
void cx_tokens_login(struct agent *a, struct conn *c, const struct cx_msg *m);
void cx_tokens_add(struct agent *a, struct conn *c, const struct cx_msg *m);
void cx_tokens_remove(struct agent *a, struct conn *c, const struct cx_msg *m);
void cx_tokens_generate(struct agent *a, struct conn *c, const struct cx_msg *m);
/* Worker side, shared with software keys: the user's yes, on the worker. */
int cx_tokens_confirm(struct agent *a, struct job *j);

/* policy.c */
int cx_policy_load(struct agent *a, const char *path, struct cx_err *e);
void cx_policy_free(struct agent *a);
/* The policy a key gets when it first shows up. */
void cx_policy_default(struct agent *a, const uint8_t keyid[32], struct cx_policy *out);
int cx_policy_parse_types(const char *s, uint32_t *types, struct cx_err *e);
void cx_policy_sign(struct agent *a, struct conn *c, const struct cx_msg *m);
void cx_policy_lock(struct agent *a, struct conn *c, const struct cx_msg *m);
void cx_policy_unlock(struct agent *a, struct conn *c, const struct cx_msg *m);
void cx_policy_run(struct agent *a, struct job *j); /* pw worker */
void cx_policy_done(struct agent *a, struct job *j);
int cx_policy_locked(struct agent *a); /* locked, or a lock is being set */
/* Audit: thread-safe; 0, or the append (or the sync) failed (logged). */
enum cx_audit_how {
	CX_AUDIT_DURABLE = 1, /* returns once the line is durable (workers) */
	CX_AUDIT_KICK,        /* written; the syncer makes it durable now, nobody waits */
	CX_AUDIT_LAZY,        /* written; durable with the next sync (within AUDIT_LAZY_MS) */
	CX_AUDIT_DEFER        /* handed to the syncer, which writes and syncs it (no seq) */
};
int cx_audit_rec(struct agent *a, enum cx_audit_how how, uint64_t *seq, const struct peer *p,
    const char *op, const char *keyid, const char *token, const char *type, const char *name,
    const uint8_t *sha, const char *result);
/* CX_AUDIT_DURABLE: worker threads. */
int cx_audit(struct agent *a, const struct peer *p, const char *op, const char *keyid,
    const char *token, const char *type, const char *name, const uint8_t *sha, const char *result);
/* CX_AUDIT_DEFER: the event loop, which must never wait for the disk. */
int cx_audit_nowait(struct agent *a, const struct peer *p, const char *op, const char *keyid,
    const char *token, const char *type, const char *name, const uint8_t *sha, const char *result);
/* Returns once line seq (from cx_audit_rec) is durable; 0 or the sync failed. */
int cx_audit_wait(struct agent *a, uint64_t seq);
void cx_keyid_str(const uint8_t keyid[32], char out[72]);

/* pincache.c */
int cx_pincache_new(unsigned idle, unsigned max, struct cx_pincache **out);
void cx_pincache_free(struct cx_pincache *pc);
int cx_pincache_enabled(const struct cx_pincache *pc);
void cx_pincache_put(
    struct cx_pincache *pc, const char *serial, const char *pin, size_t len, int64_t now);
/* 0 and a sodium_malloc'ed copy (free with sodium_free), or -1 when none. */
int cx_pincache_get(
    struct cx_pincache *pc, const char *serial, int64_t now, char **pin, size_t *len);
void cx_pincache_drop(struct cx_pincache *pc, const char *serial);
void cx_pincache_flush(struct cx_pincache *pc);
void cx_pincache_expire(struct cx_pincache *pc, int64_t now);

#endif
