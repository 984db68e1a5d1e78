/*
 * Asking the user: a PIN, or a yes/no confirmation, through an askpass
 * program (CONEX_ASKPASS, else SSH_ASKPASS), as ssh-agent does.  The program
 * is started with posix_spawn (no fork of the agent: PKCS#11 modules are
 * initialised), gets the prompt as its argument, and answers on stdout; for a
 * confirmation, exit status 0 means yes.  The answer goes to guarded memory.
 */
#ifndef CX_AGENT_ASKPASS_H
#define CX_AGENT_ASKPASS_H

#include <stddef.h>

#include "proto/err.h"

/* Seconds an askpass program may take before it is killed and the request refused. */
#define CX_ASKPASS_TIMEOUT 120

/* *secret is sodium_malloc'ed and NUL-terminated; free with sodium_free. */
int cx_askpass_secret(
    const char *program, const char *prompt, char **secret, size_t *len, struct cx_err *e);
/* 1 yes, 0 no (or the program failed: refuse), negative on spawn errors. */
int cx_askpass_confirm(const char *program, const char *prompt, struct cx_err *e);
/* The same with a timeout in seconds (the two above use CX_ASKPASS_TIMEOUT). */
int cx_askpass_secret_t(const char *program, const char *prompt, int timeout_s, char **secret,
    size_t *len, struct cx_err *e);
int cx_askpass_confirm_t(const char *program, const char *prompt, int timeout_s, struct cx_err *e);

#endif
