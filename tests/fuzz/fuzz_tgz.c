/*
 * libFuzzer target for the tarball backend: gzip framing, tar header parsing
 * (checksums, octal/base-256 sizes, GNU long names, pax records), path
 * validation, the index, and every operation of the resulting view.  Input
 * is a plain tar or a .tar.gz (cx_repo_open_tar_mem takes both), so the
 * fuzzer reaches the tar parser without having to learn deflate.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "conex/repo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
exercise(struct cx_repo *r, const char *dir)
{
	struct cx_file_list l;
	struct cx_arena a;
	struct cx_err e;
	struct cx_buf b;
	const char **names;
	size_t n, i;

	cx_arena_init(&a, 0);
	cx_buf_init(&b, 0);
	if (cx_repo_list(r, dir, &a, &names, &n, &e) == 0)
		for (i = 0; i < n && i < 16; i++)
			(void)cx_repo_exists(r, names[i], &e);
	if (cx_repo_walk(r, dir, &l, &e) == 0) {
		for (i = 0; i < l.n && i < 16; i++) {
			/* a read must give the bytes the walk hashed */
			if (cx_repo_read(r, l.v[i].path, 1 << 20, &b, &e) == 0 &&
			    b.len != l.v[i].size)
				__builtin_trap();
			(void)cx_repo_read(r, l.v[i].path, 3, &b, &e);
		}
		cx_file_list_free(&l);
	}
	(void)cx_repo_read(r, "root", 1 << 20, &b, &e);
	(void)cx_repo_read(r, "packages/a/opam", 1 << 20, &b, &e);
	(void)cx_repo_exists(r, "keys/a", &e);
	cx_buf_free(&b);
	cx_arena_free(&a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cx_repo *r = NULL;
	struct cx_err e;

	if (cx_repo_open_tar_mem(&r, data, size, "fuzz.tgz", &e) != 0) {
		if (r != NULL)
			__builtin_trap();
		return 0;
	}
	exercise(r, "");
	exercise(r, "packages");
	exercise(r, "keys");
	cx_repo_close(r);
	return 0;
}
