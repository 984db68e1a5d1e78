/*
 * libFuzzer target for conex/patch: parse arbitrary bytes as a patch and apply
 * every file to a few fixed old texts.  Parsing and applying must never crash
 * or leak, and a successful apply must respect the documented invariants.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conex/patch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const olds[] = {
    "line 1\nline 2\nline 3\nline 4\nline 5\n",
    "line 1\nline 2\nline 3\nline 4\nline 5",
    "a\r\nb\r\n\nc\n",
    "",
};

static void
try_apply(const struct cx_patch_file *f)
{
	struct cx_buf out;
	struct cx_err e;
	size_t i;
	int r;

	cx_buf_init(&out, 1u << 20);
	if (f->op == CX_PATCH_CREATE) {
		r = cx_patch_apply(f, NULL, 0, &out, &e);
		if (r != 0 && out.len != 0)
			abort(); /* a failed apply leaves out untouched */
	}
	for (i = 0; i < sizeof(olds) / sizeof(olds[0]); i++) {
		cx_buf_reset(&out);
		r = cx_patch_apply(f, (const uint8_t *)olds[i], strlen(olds[i]), &out, &e);
		if (r != 0 && out.len != 0)
			abort();
		if (r == 0 && f->op == CX_PATCH_DELETE && out.len != 0)
			abort();
		if (r == 0 && f->op == CX_PATCH_CREATE)
			abort(); /* a creation over an existing file must fail */
	}
	cx_buf_free(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cx_patch *p = NULL;
	struct cx_err e;
	size_t i;
	uint8_t *copy;

	/* an exact-size copy, so reads past the end are caught by ASan */
	if ((copy = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size)
		memcpy(copy, data, size);
	if (cx_patch_parse(copy, size, "fuzz", &p, &e) == 0) {
		for (i = 0; i < p->nfiles; i++) {
			const struct cx_patch_file *f = &p->files[i];

			if ((f->op == CX_PATCH_CREATE) != (f->old_path == NULL) ||
			    (f->op == CX_PATCH_DELETE) != (f->new_path == NULL))
				abort();
			try_apply(f);
		}
		cx_patch_free(p);
	} else if (p != NULL)
		abort();
	free(copy);
	return 0;
}
