/*
 * Building signed conex repositories for tests, benchmarks and the demo, with
 * in-process software keys.  Every failure aborts the program: a test that
 * cannot build its fixture must not pass.
 */
#ifndef CX_REPOBUILD_H
#define CX_REPOBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "conex/resource.h"

struct rb_key {
	char *id;
	EVP_PKEY *pk;
	enum cx_keyalg alg;
	char *keystr;
	size_t keystrlen;
	char keyid[CX_SHA256_HEX + 1]; /* hex */
	char created[21];
};

void rb_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

struct rb_key *rb_key_gen(const char *id, enum cx_keyalg alg);
struct rb_key *rb_key_load(const char *id, const char *pem_path);
void rb_key_free(struct rb_key *k);
/* Writes dir/<id>.sha256=<hex>.private (PKCS#8 PEM, mode 0400), as upstream names it. */
void rb_key_save(const struct rb_key *k, const char *dir);

struct cx_resource *rb_new(
    struct cx_arena *a, enum cx_rtype t, const char *name, const char *created);
void rb_add_key(struct cx_arena *a, struct cx_resource *r, const struct rb_key *k);
struct cx_keyref rb_local(const char *id);
struct cx_keyref rb_remote(const char *id, const char *hex, uint64_t epoch);
struct cx_expr *rb_quorum(
    struct cx_arena *a, int64_t n, const struct cx_keyref *refs, size_t nrefs);
struct cx_expr *rb_and(struct cx_arena *a, struct cx_expr *x, struct cx_expr *y);
struct cx_expr *rb_or(struct cx_arena *a, struct cx_expr *x, struct cx_expr *y);
void rb_add_target(
    struct cx_arena *a, struct cx_resource *r, const char *path, const void *data, size_t len);
/* Targets for every file below repodir/sub (recursive), replacing none. */
void rb_add_targets_below(
    struct cx_arena *a, struct cx_resource *r, const char *repodir, const char *sub);
void rb_clear_targets(struct cx_resource *r);
void rb_add_delegation(struct cx_arena *a, struct cx_resource *r, const char *path,
    struct cx_expr *valid, int terminating);
void rb_sign(
    struct cx_arena *a, struct cx_resource *r, const struct rb_key *k, const char *created);
void rb_write(const struct cx_resource *r, const char *dir, const char *rel);
void rb_write_file(const char *dir, const char *rel, const void *data, size_t len);
/* Expression.hash of a targets file's valid: what a delegation pins. */
void rb_key_hash(const struct cx_resource *targets, char hex[CX_SHA256_HEX + 1]);
/* sha256 and size of a file, as a snapshot/timestamp target. */
void rb_file_digest(const char *dir, const char *rel, char hex[CX_SHA256_HEX + 1], uint64_t *size);
/* Reads and parses a resource file back. */
struct cx_resource *rb_read(struct cx_arena *a, const char *dir, const char *rel, enum cx_rtype t);

/*
 * The shape of upstream's testrepo: root key "root" (file root), maintainers
 * m1..mN under keys/ with a quorum, snapshot "snap" and timestamp "timestamp".
 */
struct rb_world {
	char *dir;
	int64_t now;
	char created[21]; /* now, formatted */
	enum cx_keyalg alg;
	struct rb_key *root, *m[8], *snap, *ts;
	int nm, quorum;
	struct cx_arena a;
	struct cx_resource *rroot, *rm[8], *rsnap, *rts;
};

void rb_world_init(
    struct rb_world *w, const char *dir, int nm, int quorum, enum cx_keyalg alg, int64_t now);
void rb_world_file(struct rb_world *w, const char *rel, const char *content);
/* Root: counter + 1, signed by the root key. */
void rb_world_sign_root(struct rb_world *w);
/* Maintainer i: targets = every file under packages/, counter + 1, signed. */
void rb_world_sign_maintainer(struct rb_world *w, int i);
/* Snapshot over keys/ then timestamp over the snapshot, counters + 1, created = now. */
void rb_world_sign_snapshot(struct rb_world *w);
void rb_world_sign_timestamp(struct rb_world *w);
/* Everything above: root once if unsigned, all maintainers, snapshot, timestamp. */
void rb_world_sign_all(struct rb_world *w);
void rb_world_free(struct rb_world *w);
/* Full verification of dir with the world's root key as the anchor, at now. */
int rb_world_verify(struct rb_world *w, const char *dir, struct cx_err *e);

/* ---- attack and incremental-update helpers (tests/unit/test_attacks.c, test_incremental.c) ---- */

/* Points the world at another directory, e.g. a copy made with rb_copy_tree. */
void rb_world_set_dir(struct rb_world *w, const char *dir);
/* The next signature of r gets exactly counter c (drops r's signatures). */
void rb_set_next_counter(struct cx_resource *r, uint64_t c);
/*
 * Targets file t (keys/<t->name>) over the files below each of subs (paths
 * from the repository root, e.g. "packages/foo"), counter + 1 if it was
 * signed, signed by k alone; delegations are kept.
 */
void rb_world_sign_targets(struct rb_world *w, struct cx_resource *t, const struct rb_key *k,
    const char *const *subs, size_t nsubs);
/* A targets resource for identity id with the single key k and valid = Local id. */
struct cx_resource *rb_world_identity(struct rb_world *w, const struct rb_key *k);
/* Snapshot over every file in keys/ (not only m1..mN), counter + 1, signed. */
void rb_world_sign_snapshot_keydir(struct rb_world *w);
/* cp -a src dst (dst must not exist). */
void rb_copy_tree(const char *src, const char *dst);
/* `diff -ruaN a b` run in parent (paths a/... b/...); malloc'd, NUL-terminated. */
uint8_t *rb_diff_ruaN(const char *parent, const char *a, const char *b, size_t *len);
/*
 * `git -c core.autocrlf=false diff` of parent/a (committed) to parent/b (the
 * work tree, every change staged), in a scratch repository parent/<a>.git-<b>.
 */
uint8_t *rb_git_diff(const char *parent, const char *a, const char *b, size_t *len);

#endif
