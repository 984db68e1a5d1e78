/* Helpers for the Check suites: temp dirs, files, the shared test vectors. */
#ifndef CX_TESTUTIL_H
#define CX_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A fresh directory under $TMPDIR (or /tmp); caller frees the string. */
char *cx_test_tmpdir(void);
void cx_test_rm_rf(const char *path);
/* Writes dir/rel, creating parent directories; aborts the test on failure. */
void cx_test_write(const char *dir, const char *rel, const void *data, size_t len);
void cx_test_write_str(const char *dir, const char *rel, const char *s);
/* Reads a whole file, NUL-terminated; NULL if absent. */
uint8_t *cx_test_read(const char *path, size_t *len);
/* ../shared beside the source tree (or $CX_SHARED_DIR); NULL when absent. */
const char *cx_test_shared(void);
/* Runs a shell command, returns its exit status (or -1). */
int cx_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The children of pid started as `conex-agent --p11-helper ROLE ...` (role
 * "token" or "scan"): up to max of them in out; how many.
 */
size_t cx_test_helpers_of(pid_t pid, const char *role, pid_t *out, size_t max);

#endif
