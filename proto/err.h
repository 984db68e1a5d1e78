/* Error codes and messages shared by every room of the project. */
#ifndef CX_ERR_H
#define CX_ERR_H

#include <stddef.h>

/* Functions return 0 or one of these (negative). */
enum cx_code {
	CX_OK = 0,
	CX_ENOMEM = -1,      /* allocation failed */
	CX_EINVAL = -2,      /* bad argument or bad input value */
	CX_EPARSE = -3,      /* malformed input (file:line:col in message) */
	CX_EIO = -4,         /* system call failed */
	CX_ENOENT = -5,      /* no such file / key / entry */
	CX_ETOOBIG = -6,     /* a size cap was hit */
	CX_EREJECT = -7,     /* verification rejected the input */
	CX_ECRYPTO = -8,     /* OpenSSL failure or bad signature format */
	CX_EUNSUPPORTED = -9 /* algorithm or feature not supported */
};

#define CX_ERR_MSG 1024

/* A message buffer that callers pass down; the innermost failure writes it. */
struct cx_err {
	int code;
	char msg[CX_ERR_MSG];
};

/* Sets e (if non-NULL) and returns code, so callers can `return cx_err_set(...)`. */
int cx_err_set(struct cx_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to the current message, keeps the code; returns it. */
int cx_err_prefix(struct cx_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *cx_code_str(int code);

#endif
