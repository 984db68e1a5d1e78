#include "proto/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
cx_err_set(struct cx_err *e, int code, const char *fmt, ...)
{
	char msg[CX_ERR_MSG];
	va_list ap;

	if (e == NULL)
		return code;
	/* through a copy: callers may pass e->msg itself as an argument */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memcpy(e->msg, msg, sizeof(msg));
	e->code = code;
	return code;
}

int
cx_err_prefix(struct cx_err *e, const char *fmt, ...)
{
	char pre[CX_ERR_MSG], old[CX_ERR_MSG];
	va_list ap;

	if (e == NULL)
		return CX_EINVAL;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	/* truncation is fine: messages are for people, the code carries the meaning */
	size_t pl = strnlen(pre, sizeof(e->msg) - 1);
	memcpy(e->msg, pre, pl);
	if (pl + 2 < sizeof(e->msg)) {
		memcpy(e->msg + pl, ": ", 2);
		pl += 2;
	}
	size_t ol = strnlen(old, sizeof(e->msg) - 1 - pl);
	memcpy(e->msg + pl, old, ol);
	e->msg[pl + ol] = 0;
	return e->code;
}

const char *
cx_code_str(int code)
{
	switch (code) {
	case CX_OK:
		return "ok";
	case CX_ENOMEM:
		return "out of memory";
	case CX_EINVAL:
		return "invalid argument";
	case CX_EPARSE:
		return "parse error";
	case CX_EIO:
		return "I/O error";
	case CX_ENOENT:
		return "not found";
	case CX_ETOOBIG:
		return "too large";
	case CX_EREJECT:
		return "rejected";
	case CX_ECRYPTO:
		return "cryptographic failure";
	case CX_EUNSUPPORTED:
		return "unsupported";
	}
	return "unknown error";
}
