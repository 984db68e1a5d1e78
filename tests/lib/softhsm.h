/*
 * SoftHSM2 tokens for tests: a private config and token directory inside a
 * test's own temporary directory, so tests running in parallel never see each
 * other's tokens.  SOFTHSM2_CONF is read by the module at C_Initialize, so
 * cx_softhsm_setup must run before the module is loaded in this process.
 */
#ifndef CX_TESTS_SOFTHSM_H
#define CX_TESTS_SOFTHSM_H

#define CX_SOFTHSM_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define CX_SOFTHSM_SO_PIN "12345678"

/* $CX_SOFTHSM_MODULE or CX_SOFTHSM_MODULE. */
const char *cx_softhsm_module(void);
/* 1 when the module and softhsm2-util are installed. */
int cx_softhsm_available(void);
/*
 * Writes dir/softhsm2.conf (token directory dir/tokens) and sets
 * SOFTHSM2_CONF to it.  0 or -1.
 */
int cx_softhsm_setup(const char *dir);
/* softhsm2-util --init-token --free --label label --so-pin CX_SOFTHSM_SO_PIN --pin pin. 0 or -1. */
int cx_softhsm_init_token(const char *label, const char *pin);
/*
 * softhsm2-util --import pem (PKCS#8) --token token --label label --id idhex
 * --pin pin: private and public key objects.  0 or -1.
 */
int cx_softhsm_import(
    const char *token, const char *pin, const char *pem, const char *label, const char *idhex);
/* Runs argv[0] (looked up in PATH) with stdout/stderr to /dev/null unless verbose; exit status or -1. */
int cx_softhsm_run(char *const argv[]);

#endif
