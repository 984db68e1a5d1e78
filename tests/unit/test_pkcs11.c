/*
 * pkcs11/ against real SoftHSM2 tokens, made per test in the test's own
 * temporary directory (tests/lib/softhsm.c).  Some tests swap entries of the
 * token's function list (pkcs11/internal.h) to count C_Login calls or to fake
 * a removed device or a final-try PIN counter.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "conex/crypto.h"
#include "pkcs11/internal.h"
#include "pkcs11/token.h"
#include "tests/lib/softhsm.h"
#include "tests/unit/testutil.h"

/*
 * Under -DCX_SANITIZE=ON: SoftHSM 2.6.1 leaks the ASN.1 string it decodes
 * from an Ed25519 key's CKA_EC_PARAMS at every C_SignInit.  These hooks of
 * the sanitizer runtime say so (tests/lsan.supp holds the same line for other
 * binaries).  The slow unwinder lets the stack reach libsofthsm2.so through
 * libcrypto, which has no frame pointers.  Unused in other builds.
 */
const char *__lsan_default_suppressions(void);
const char *__asan_default_options(void);

const char *
__lsan_default_suppressions(void)
{
	return "leak:libsofthsm2.so\n";
}

const char *
__asan_default_options(void)
{
	return "fast_unwind_on_malloc=0";
}

#define PIN  "123456"
#define PIN2 "654321"

static const uint8_t msg[] = "signed: [ [version 0] [typ targets] ]";

/* ---- fixture: a temp dir with a SoftHSM config, SOFTHSM2_CONF set ---- */

static char *g_dir;

static void
setup(void)
{
	ck_assert_msg(cx_softhsm_available(),
	    "SoftHSM2 is not installed (%s, softhsm2-util): apt-get install softhsm2",
	    cx_softhsm_module());
	g_dir = cx_test_tmpdir();
	ck_assert_msg(cx_softhsm_setup(g_dir) == 0, "softhsm setup in %s", g_dir);
}

static void
teardown(void)
{
	cx_test_rm_rf(g_dir);
	free(g_dir);
	g_dir = NULL;
}

/* ---- function-list wrappers: count and fake calls ---- */

static CK_FUNCTION_LIST *g_orig;
static CK_FUNCTION_LIST g_wrap;
static int g_logins;        /* C_Login calls */
static CK_FLAGS g_addflags; /* OR'ed into C_GetTokenInfo's flags */
static CK_RV g_sign_rv;     /* C_Sign returns this when not CKR_OK */
static int g_refuse_oid;    /* C_GenerateKeyPair refuses Ed25519's OID form */
static int g_gens;          /* C_GenerateKeyPair calls */

static CK_RV
w_login(CK_SESSION_HANDLE s, CK_USER_TYPE u, unsigned char *pin, CK_ULONG len)
{
	g_logins++;
	return g_orig->C_Login(s, u, pin, len);
}

static CK_RV
w_tokeninfo(CK_SLOT_ID slot, CK_TOKEN_INFO *ti)
{
	CK_RV rv = g_orig->C_GetTokenInfo(slot, ti);

	if (rv == CKR_OK)
		ti->flags |= g_addflags;
	return rv;
}

static CK_RV
w_sign(CK_SESSION_HANDLE s, unsigned char *d, CK_ULONG n, unsigned char *sig, CK_ULONG *siglen)
{
	if (g_sign_rv != CKR_OK)
		return g_sign_rv;
	return g_orig->C_Sign(s, d, n, sig, siglen);
}

static CK_RV
w_genkp(CK_SESSION_HANDLE s, CK_MECHANISM *m, CK_ATTRIBUTE *pub, CK_ULONG npub, CK_ATTRIBUTE *priv,
    CK_ULONG npriv, CK_OBJECT_HANDLE *hpub, CK_OBJECT_HANDLE *hpriv)
{
	CK_ULONG i;

	g_gens++;
	for (i = 0; g_refuse_oid && i < npub; i++)
		if (pub[i].type == CKA_EC_PARAMS && pub[i].ulValueLen == 5 &&
		    memcmp(pub[i].pValue, "\x06\x03\x2b\x65\x70", 5) == 0)
			return CKR_ATTRIBUTE_VALUE_INVALID;
	return g_orig->C_GenerateKeyPair(s, m, pub, npub, priv, npriv, hpub, hpriv);
}

static void
wrap(struct cx_p11_token *t)
{
	g_orig = t->f;
	g_wrap = *t->f;
	g_wrap.C_Login = w_login;
	g_wrap.C_GetTokenInfo = w_tokeninfo;
	g_wrap.C_Sign = w_sign;
	g_wrap.C_GenerateKeyPair = w_genkp;
	g_logins = 0;
	g_refuse_oid = 0;
	g_gens = 0;
	g_addflags = 0;
	g_sign_rv = CKR_OK;
	t->f = &g_wrap;
}

/* ---- helpers ---- */

static struct cx_p11_module *
load(void)
{
	const char *allow[] = {cx_softhsm_module()};
	struct cx_p11_module *m = NULL;
	struct cx_err e = {0};

	ck_assert_msg(
	    cx_p11_module_load(cx_softhsm_module(), allow, 1, &m, &e) == 0, "load: %s", e.msg);
	return m;
}

static void
init_token(const char *label)
{
	ck_assert_msg(cx_softhsm_init_token(label, PIN) == 0, "init token %s", label);
}

static struct cx_p11_token *
open_token(struct cx_p11_module *m, const char *label)
{
	struct cx_p11_token_info ti;
	struct cx_p11_token *t = NULL;
	struct cx_err e = {0};
	unsigned long *slots;
	size_t n, i;

	ck_assert_msg(cx_p11_slots(m, &slots, &n, &e) == 0, "slots: %s", e.msg);
	for (i = 0; i < n && t == NULL; i++) {
		ck_assert_msg(cx_p11_token_info(m, slots[i], &ti, &e) == 0, "info: %s", e.msg);
		if (strcmp(ti.label, label) == 0)
			ck_assert_msg(
			    cx_p11_token_open(m, slots[i], &t, &e) == 0, "open: %s", e.msg);
	}
	free(slots);
	ck_assert_msg(t != NULL, "no token %s", label);
	return t;
}

static void
login(struct cx_p11_token *t)
{
	struct cx_err e = {0};

	ck_assert_msg(cx_p11_token_login(t, PIN, strlen(PIN), 0, &e) == 0, "login: %s", e.msg);
	ck_assert_int_eq(cx_p11_token_logged_in(t), 1);
}

static void
generate(
    struct cx_p11_token *t, const char *label, enum cx_p11_alg alg, int bits, struct cx_p11_key *k)
{
	struct cx_err e = {0};

	ck_assert_msg(cx_p11_token_generate(t, label, alg, bits, k, &e) == 0, "generate %s: %s",
	    label, e.msg);
}

/* A public key from "ecdsa-p256=<base64 point>", with OpenSSL alone. */
static EVP_PKEY *
p256_from_keystr(const char *keystr)
{
	const char *pre = "ecdsa-p256=";
	OSSL_PARAM_BLD *bld;
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pk = NULL;
	struct cx_buf pt;
	struct cx_err e = {0};

	ck_assert_msg(strncmp(keystr, pre, strlen(pre)) == 0, "keystr %s", keystr);
	cx_buf_init(&pt, 0);
	ck_assert_int_eq(
	    cx_b64_decode(keystr + strlen(pre), strlen(keystr + strlen(pre)), &pt, &e), 0);
	ck_assert_int_eq(pt.len, 65);
	ck_assert_int_eq(pt.d[0], 0x04);
	ck_assert_ptr_nonnull(bld = OSSL_PARAM_BLD_new());
	ck_assert_int_eq(
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0), 1);
	ck_assert_int_eq(
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt.d, pt.len), 1);
	ck_assert_ptr_nonnull(params = OSSL_PARAM_BLD_to_param(bld));
	ck_assert_ptr_nonnull(ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL));
	ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
	ck_assert_int_eq(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	cx_buf_free(&pt);
	return pk;
}

/* Verifies sig over msg with the key the key string names. */
static void
verify(const struct cx_p11_key *k, const uint8_t *sig, size_t siglen)
{
	struct cx_err e = {0};
	enum cx_keyalg ka;
	EVP_PKEY *pk = NULL;
	EVP_MD_CTX *md;

	if (k->alg == CX_P11_ECDSA_P256) {
		pk = p256_from_keystr(k->keystr);
		ck_assert_ptr_nonnull(md = EVP_MD_CTX_new());
		ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk), 1);
		ck_assert_msg(EVP_DigestVerify(md, sig, siglen, msg, sizeof(msg) - 1) == 1,
		    "ECDSA signature of %s does not verify", k->label);
		EVP_MD_CTX_free(md);
		EVP_PKEY_free(pk);
		return;
	}
	ck_assert_msg(
	    cx_pubkey_parse(k->keystr, strlen(k->keystr), &pk, &ka, &e) == 0, "parse: %s", e.msg);
	ck_assert_msg(
	    cx_sig_verify(pk, k->alg == CX_P11_RSA ? CX_SIG_RSAPSS_SHA256 : CX_SIG_ED25519, msg,
	        sizeof(msg) - 1, sig, siglen, &e) == 0,
	    "verify %s: %s", k->label, e.msg);
	EVP_PKEY_free(pk);
}

static enum cx_p11_mech
mech_of(const struct cx_p11_key *k)
{
	return k->alg == CX_P11_RSA    ? CX_P11_RSA_PSS_SHA256
	    : k->alg == CX_P11_ED25519 ? CX_P11_EDDSA
	                               : CX_P11_ECDSA_SHA256;
}

/* Signs msg with k, checks that the signature is appended, verifies it. */
static void
sign_verify(struct cx_p11_token *t, const struct cx_p11_key *k)
{
	struct cx_err e = {0};
	struct cx_buf sig;

	cx_buf_init(&sig, 0);
	ck_assert_int_eq(cx_buf_put_str(&sig, "X"), 0);
	ck_assert_msg(
	    cx_p11_token_sign(t, k, mech_of(k), msg, sizeof(msg) - 1, NULL, 0, &sig, &e) == 0,
	    "sign %s: %s", k->label, e.msg);
	ck_assert_int_gt(sig.len, 1);
	ck_assert_int_eq(sig.d[0], 'X');
	verify(k, sig.d + 1, sig.len - 1);
	cx_buf_free(&sig);
}

/* The object of class cls with k's CKA_ID. */
static CK_OBJECT_HANDLE
object(struct cx_p11_token *t, const struct cx_p11_key *k, CK_OBJECT_CLASS cls)
{
	CK_ATTRIBUTE tmpl[] = {
	    {CKA_CLASS, &cls, sizeof(cls)},
	    {CKA_ID, k->ckaid, k->ckaidlen},
	};
	CK_OBJECT_HANDLE *objs, o;
	struct cx_err e = {0};
	size_t n;

	ck_assert_msg(cx_p11_find(t, tmpl, 2, 4, &objs, &n, &e) == 0, "find: %s", e.msg);
	ck_assert_int_eq(n, 1);
	o = objs[0];
	free(objs);
	return o;
}

/* Raw attribute value by a direct C_GetAttributeValue. */
static CK_RV
raw_attr(
    struct cx_p11_token *t, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, void *buf, CK_ULONG *len)
{
	CK_ATTRIBUTE a = {type, buf, *len};
	CK_RV rv = t->f->C_GetAttributeValue(t->s, o, &a, 1);

	*len = a.ulValueLen;
	return rv;
}

/*
 * The key id of k's public key object, read and built independently of
 * pkcs11/pubkey.c: OpenSSL from the raw attributes, then conex's key string.
 */
static void
check_keyid_independent(struct cx_p11_token *t, const struct cx_p11_key *k)
{
	CK_OBJECT_HANDLE pub = object(t, k, CKO_PUBLIC_KEY);
	uint8_t a[1024], b[64], id[32];
	CK_ULONG alen = sizeof(a), blen = sizeof(b);
	OSSL_PARAM_BLD *bld;
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *pk = NULL;
	BIGNUM *n, *x;
	struct cx_buf ks;
	struct cx_err e = {0};

	if (k->alg == CX_P11_ECDSA_P256)
		return; /* no conex format: checked against OpenSSL in test_import_p256 */
	if (k->alg == CX_P11_ED25519) {
		ck_assert_int_eq(raw_attr(t, pub, CKA_EC_POINT, a, &alen), CKR_OK);
		ck_assert(alen == 32 || (alen == 34 && a[0] == 0x04 && a[1] == 0x20));
		pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, a + (alen - 32), 32);
	} else {
		ck_assert_int_eq(raw_attr(t, pub, CKA_MODULUS, a, &alen), CKR_OK);
		ck_assert_int_eq(raw_attr(t, pub, CKA_PUBLIC_EXPONENT, b, &blen), CKR_OK);
		ck_assert_ptr_nonnull(n = BN_bin2bn(a, (int)alen, NULL));
		ck_assert_ptr_nonnull(x = BN_bin2bn(b, (int)blen, NULL));
		ck_assert_ptr_nonnull(bld = OSSL_PARAM_BLD_new());
		ck_assert_int_eq(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n), 1);
		ck_assert_int_eq(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, x), 1);
		ck_assert_ptr_nonnull(params = OSSL_PARAM_BLD_to_param(bld));
		ck_assert_ptr_nonnull(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL));
		ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
		ck_assert_int_eq(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
		EVP_PKEY_CTX_free(ctx);
		OSSL_PARAM_free(params);
		OSSL_PARAM_BLD_free(bld);
		BN_free(n);
		BN_free(x);
	}
	ck_assert_ptr_nonnull(pk);
	cx_buf_init(&ks, 0);
	ck_assert_msg(cx_pubkey_string(pk, &ks, &e) == 0, "keystr: %s", e.msg);
	ck_assert_int_eq(ks.len, strlen(k->keystr));
	ck_assert(memcmp(ks.d, k->keystr, ks.len) == 0);
	cx_keyid((const char *)ks.d, ks.len, id);
	ck_assert(memcmp(id, k->keyid, 32) == 0);
	cx_buf_free(&ks);
	EVP_PKEY_free(pk);
}

static const struct cx_p11_key *
find_listed(const struct cx_p11_key *keys, size_t n, const struct cx_p11_key *want)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (memcmp(keys[i].keyid, want->keyid, 32) == 0)
			return &keys[i];
	return NULL;
}

/* ---- module loading ---- */

START_TEST(test_allowlist)
{
	const char *mod = cx_softhsm_module();
	char link[4096], copy[4096], missing[4096];
	const char *allow[3];
	struct cx_p11_module *m = NULL, *m2 = NULL;
	struct cx_err e = {0};

	snprintf(link, sizeof(link), "%s/link.so", g_dir);
	snprintf(copy, sizeof(copy), "%s/copy.so", g_dir);
	snprintf(missing, sizeof(missing), "%s/missing.so", g_dir);
	ck_assert_int_eq(symlink(mod, link), 0);
	ck_assert_int_eq(cx_test_sh("cp '%s' '%s'", mod, copy), 0);
	/* SoftHSM finds its tokens at C_Initialize */
	init_token("A");

	/* not listed at all */
	ck_assert_int_eq(cx_p11_module_load(mod, NULL, 0, &m, &e), CX_EREJECT);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(e.msg, "is not in the allow-list") != NULL, "%s", e.msg);
	ck_assert_msg(strstr(e.msg, mod) != NULL, "%s", e.msg);

	/* a copy of the listed module is another file: refused */
	allow[0] = mod;
	ck_assert_int_eq(cx_p11_module_load(copy, allow, 1, &m, &e), CX_EREJECT);
	ck_assert_msg(strstr(e.msg, "copy.so is not in the allow-list") != NULL, "%s", e.msg);

	/* a missing file, and an allow-list entry that does not resolve */
	ck_assert_int_eq(cx_p11_module_load(missing, allow, 1, &m, &e), CX_ENOENT);
	allow[0] = missing;
	ck_assert_int_eq(cx_p11_module_load(mod, allow, 1, &m, &e), CX_EREJECT);

	/* a symlink outside the list resolves to the listed module: accepted */
	allow[0] = missing;
	allow[1] = mod;
	ck_assert_msg(cx_p11_module_load(link, allow, 2, &m, &e) == 0, "%s", e.msg);
	ck_assert_ptr_nonnull(m);
	ck_assert_str_ne(cx_p11_module_path(m), link);
	ck_assert_int_eq(access(cx_p11_module_path(m), R_OK), 0);

	/* the same module twice in one process: refused, the first load unharmed */
	ck_assert_int_eq(cx_p11_module_load(mod, allow, 2, &m2, &e), CX_EINVAL);
	ck_assert_ptr_null(m2);
	ck_assert_msg(strstr(e.msg, "already loaded") != NULL, "%s", e.msg);
	cx_p11_token_close(open_token(m, "A"));
	cx_p11_module_unload(m);

	/* listed through the symlink: the real path is accepted too */
	allow[0] = link;
	ck_assert_msg(cx_p11_module_load(mod, allow, 1, &m, &e) == 0, "%s", e.msg);
	cx_p11_module_unload(m);
}
END_TEST

START_TEST(test_two_tokens)
{
	struct cx_p11_module *m;
	struct cx_p11_token_info ti;
	struct cx_err e = {0};
	unsigned long *slots;
	size_t n, i;
	int seen = 0;
	char serial_a[17] = "";

	init_token("alpha");
	init_token("beta");
	m = load();
	ck_assert_msg(cx_p11_slots(m, &slots, &n, &e) == 0, "%s", e.msg);
	ck_assert_int_ge(n, 2);
	for (i = 0; i < n; i++) {
		ck_assert_msg(cx_p11_token_info(m, slots[i], &ti, &e) == 0, "%s", e.msg);
		ck_assert_int_eq(ti.slot, slots[i]);
		if (strcmp(ti.label, "alpha") == 0 || strcmp(ti.label, "beta") == 0) {
			seen |= ti.label[0] == 'a' ? 1 : 2;
			ck_assert_str_eq(ti.manufacturer, "SoftHSM project");
			ck_assert_str_eq(ti.model, "SoftHSM v2");
			ck_assert_int_eq(strlen(ti.serial), 16);
			ck_assert_int_eq(ti.login_required, 1);
			ck_assert_int_eq(ti.protected_path, 0);
			ck_assert_int_eq(ti.pin_locked, 0);
			if (ti.label[0] == 'a')
				memcpy(serial_a, ti.serial, sizeof(serial_a));
			else
				ck_assert_str_ne(ti.serial, serial_a);
		}
	}
	ck_assert_int_eq(seen, 3);
	free(slots);
	cx_p11_module_unload(m);
}
END_TEST

/* ---- keys: generate, list, sign ---- */

START_TEST(test_generate_list_sign)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_p11_key gen[3], *keys;
	const struct cx_p11_key *l;
	struct cx_err e = {0};
	uint8_t id[32];
	size_t n, i;

	init_token("gen");
	m = load();
	t = open_token(m, "gen");
	login(t);
	generate(t, "conex rsa", CX_P11_RSA, 2048, &gen[0]);
	generate(t, "conex ed25519", CX_P11_ED25519, 0, &gen[1]);
	generate(t, "conex p256", CX_P11_ECDSA_P256, 0, &gen[2]);

	ck_assert_int_eq(gen[0].alg, CX_P11_RSA);
	ck_assert_int_eq(gen[0].bits, 2048);
	ck_assert(strncmp(gen[0].keystr, "rsa=-----BEGIN PUBLIC KEY-----", 30) == 0);
	ck_assert_int_eq(gen[1].alg, CX_P11_ED25519);
	ck_assert_int_eq(gen[1].bits, 255);
	ck_assert(strncmp(gen[1].keystr, "ed25519=", 8) == 0);
	ck_assert_int_eq(strlen(gen[1].keystr), 8 + 44);
	ck_assert_int_eq(gen[2].alg, CX_P11_ECDSA_P256);
	ck_assert_int_eq(gen[2].bits, 256);
	ck_assert(strncmp(gen[2].keystr, "ecdsa-p256=", 11) == 0);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(gen[i].ckaidlen, 16);
		ck_assert_int_eq(gen[i].sensitive, 1);
		ck_assert_int_eq(gen[i].extractable, 0);
		ck_assert_int_eq(gen[i].always_auth, 0);
		cx_keyid(gen[i].keystr, strlen(gen[i].keystr), id);
		ck_assert(memcmp(id, gen[i].keyid, 32) == 0);
		ck_assert_msg(
		    strncmp(gen[i].uri,
		        "pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=", 64) ==
		        0,
		    "%s", gen[i].uri);
		ck_assert_msg(strstr(gen[i].uri, ";token=gen;id=%") != NULL, "%s", gen[i].uri);
		ck_assert_msg(strstr(gen[i].uri, ";type=private") != NULL, "%s", gen[i].uri);
		check_keyid_independent(t, &gen[i]);
	}
	ck_assert_msg(strstr(gen[0].uri, ";object=conex%20rsa;") != NULL, "%s", gen[0].uri);
	/* SoftHSM 2.6.1 takes the OID form we send first, and keeps it */
	{
		uint8_t *params;
		size_t plen;

		ck_assert_int_eq(cx_p11_attr_get(t, object(t, &gen[1], CKO_PUBLIC_KEY),
		                     CKA_EC_PARAMS, &params, &plen, &e),
		    0);
		ck_assert_int_eq(plen, 5);
		ck_assert(memcmp(params, "\x06\x03\x2b\x65\x70", 5) == 0);
		free(params);
	}
	ck_assert(memcmp(gen[0].ckaid, gen[1].ckaid, 16) != 0);

	ck_assert_msg(cx_p11_token_keys(t, &keys, &n, &e) == 0, "keys: %s", e.msg);
	ck_assert_int_eq(n, 3);
	for (i = 0; i < 3; i++) {
		ck_assert_ptr_nonnull(l = find_listed(keys, n, &gen[i]));
		ck_assert_str_eq(l->label, gen[i].label);
		ck_assert_str_eq(l->keystr, gen[i].keystr);
		ck_assert_str_eq(l->uri, gen[i].uri);
		ck_assert_int_eq(l->alg, gen[i].alg);
		ck_assert_int_eq(l->bits, gen[i].bits);
		ck_assert_int_eq(l->ckaidlen, 16);
		ck_assert(memcmp(l->ckaid, gen[i].ckaid, 16) == 0);
		sign_verify(t, l);
	}
	/* RSA without CKM_SHA256_RSA_PKCS_PSS: host hash, CKM_RSA_PKCS_PSS, same signature scheme */
	t->pss_mech = 0;
	sign_verify(t, &gen[0]);
	ck_assert_int_eq(t->pss_mech, 0);
	t->pss_mech = -1;
	sign_verify(t, &gen[0]);
	ck_assert_int_eq(t->pss_mech, 1);
	/* the empty message */
	{
		struct cx_buf sig;

		cx_buf_init(&sig, 0);
		ck_assert_msg(
		    cx_p11_token_sign(t, &gen[1], CX_P11_EDDSA, NULL, 0, NULL, 0, &sig, &e) == 0,
		    "%s", e.msg);
		ck_assert_int_eq(sig.len, 64);
		cx_buf_free(&sig);
	}
	cx_p11_keys_free(keys, n);

	/* the keys are token objects: there after the module is unloaded and loaded again */
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
	m = load();
	t = open_token(m, "gen");
	login(t);
	ck_assert_msg(cx_p11_token_keys(t, &keys, &n, &e) == 0, "keys: %s", e.msg);
	ck_assert_int_eq(n, 3);
	for (i = 0; i < 3; i++) {
		ck_assert_ptr_nonnull(l = find_listed(keys, n, &gen[i]));
		sign_verify(t, l);
		cx_p11_key_clear(&gen[i]);
	}
	cx_p11_keys_free(keys, n);
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

START_TEST(test_sensitive)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_p11_key k[3];
	CK_OBJECT_HANDLE priv;
	uint8_t buf[1024];
	CK_BBOOL b;
	CK_ULONG len;
	size_t i;

	init_token("sens");
	m = load();
	t = open_token(m, "sens");
	login(t);
	generate(t, "rsa", CX_P11_RSA, 2048, &k[0]);
	generate(t, "ed", CX_P11_ED25519, 255, &k[1]);
	generate(t, "ec", CX_P11_ECDSA_P256, 256, &k[2]);
	for (i = 0; i < 3; i++) {
		priv = object(t, &k[i], CKO_PRIVATE_KEY);
		len = sizeof(b);
		ck_assert_int_eq(raw_attr(t, priv, CKA_SENSITIVE, &b, &len), CKR_OK);
		ck_assert_int_eq(b, CK_TRUE);
		len = sizeof(b);
		ck_assert_int_eq(raw_attr(t, priv, CKA_EXTRACTABLE, &b, &len), CKR_OK);
		ck_assert_int_eq(b, CK_FALSE);
		len = sizeof(b);
		ck_assert_int_eq(raw_attr(t, priv, CKA_PRIVATE, &b, &len), CKR_OK);
		ck_assert_int_eq(b, CK_TRUE);
		len = sizeof(b);
		ck_assert_int_eq(raw_attr(t, priv, CKA_TOKEN, &b, &len), CKR_OK);
		ck_assert_int_eq(b, CK_TRUE);
		len = sizeof(b);
		ck_assert_int_eq(raw_attr(t, priv, CKA_SIGN, &b, &len), CKR_OK);
		ck_assert_int_eq(b, CK_TRUE);
		/* the secret itself cannot be read */
		len = sizeof(buf);
		ck_assert_int_eq(
		    raw_attr(t, priv, k[i].alg == CX_P11_RSA ? CKA_PRIVATE_EXPONENT : CKA_VALUE,
		        buf, &len),
		    CKR_ATTRIBUTE_SENSITIVE);
		ck_assert_int_eq(len, CK_UNAVAILABLE_INFORMATION);
		if (k[i].alg == CX_P11_RSA) {
			len = sizeof(buf);
			ck_assert_int_eq(
			    raw_attr(t, priv, CKA_PRIME_1, buf, &len), CKR_ATTRIBUTE_SENSITIVE);
		}
		cx_p11_key_clear(&k[i]);
	}
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

START_TEST(test_generate_refuses)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_p11_key k;
	struct cx_err e = {0};
	struct cx_buf sig;

	init_token("ref");
	m = load();
	t = open_token(m, "ref");
	login(t);
	ck_assert_int_eq(cx_p11_token_generate(t, "x", CX_P11_RSA, 1024, &k, &e), CX_EINVAL);
	ck_assert_int_eq(cx_p11_token_generate(t, "x", CX_P11_RSA, 8192, &k, &e), CX_EINVAL);
	ck_assert_int_eq(cx_p11_token_generate(t, "", CX_P11_ED25519, 0, &k, &e), CX_EINVAL);
	ck_assert_int_eq(cx_p11_token_generate(t, NULL, CX_P11_ED25519, 0, &k, &e), CX_EINVAL);
	ck_assert_int_eq(cx_p11_token_generate(t, "x", CX_P11_ECDSA_P256, 384, &k, &e), CX_EINVAL);
	ck_assert_int_eq(cx_p11_token_generate(t, "x", (enum cx_p11_alg)9, 0, &k, &e), CX_EINVAL);

	/* a token that wants Ed25519 named by the PrintableString gets it on the second try */
	wrap(t);
	g_refuse_oid = 1;
	generate(t, "ed", CX_P11_ED25519, 0, &k);
	ck_assert_int_eq(g_gens, 2);
	{
		uint8_t *params;
		size_t plen;

		ck_assert_int_eq(cx_p11_attr_get(t, object(t, &k, CKO_PUBLIC_KEY), CKA_EC_PARAMS,
		                     &params, &plen, &e),
		    0);
		ck_assert_int_eq(plen, 14);
		free(params);
	}
	sign_verify(t, &k);

	/* a mechanism that does not fit the key is refused before the token sees it */
	cx_buf_init(&sig, 0);
	ck_assert_int_eq(
	    cx_p11_token_sign(t, &k, CX_P11_RSA_PSS_SHA256, msg, 3, NULL, 0, &sig, &e), CX_EINVAL);
	ck_assert_int_eq(
	    cx_p11_token_sign(t, &k, CX_P11_ECDSA_SHA256, msg, 3, NULL, 0, &sig, &e), CX_EINVAL);
	ck_assert_int_eq(
	    cx_p11_token_sign(t, &k, CX_P11_EDDSA, NULL, 3, NULL, 0, &sig, &e), CX_EINVAL);
	ck_assert_int_eq(sig.len, 0);
	cx_buf_free(&sig);
	cx_p11_key_clear(&k);
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

/* ---- PINs ---- */

START_TEST(test_wrong_pin)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_err e = {0};

	init_token("pin");
	m = load();
	t = open_token(m, "pin");
	wrap(t);
	ck_assert_int_eq(cx_p11_token_get_info(t)->pin_count_low, 0);
	ck_assert_int_eq(cx_p11_token_login(t, PIN2, strlen(PIN2), 0, &e), CX_P11_PIN_INCORRECT);
	ck_assert_int_eq(g_logins, 1); /* sent once, not retried */
	ck_assert_msg(strstr(e.msg, "CKR_PIN_INCORRECT") != NULL, "%s", e.msg);
	ck_assert_msg(strstr(e.msg, "token \"pin\" (serial ") != NULL, "%s", e.msg);
	ck_assert_msg(strstr(e.msg, PIN2) == NULL, "%s", e.msg);
	/* the token counted it, and the info we hand out says so */
	ck_assert_int_eq(cx_p11_token_get_info(t)->pin_count_low, 1);
	ck_assert_int_eq(cx_p11_token_logged_in(t), 0);

	/* no PIN, bad lengths: nothing sent */
	ck_assert_int_eq(cx_p11_token_login(t, NULL, 0, 0, &e), CX_P11_PIN_REQUIRED);
	ck_assert_int_eq(cx_p11_token_login(t, PIN, 0, 0, &e), CX_EINVAL);
	ck_assert_int_eq(g_logins, 1);

	ck_assert_msg(cx_p11_token_login(t, PIN, strlen(PIN), 0, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(g_logins, 2);
	ck_assert_int_eq(cx_p11_token_get_info(t)->pin_count_low, 0);
	/* already logged in: success without another C_Login */
	ck_assert_int_eq(cx_p11_token_login(t, PIN2, strlen(PIN2), 0, &e), 0);
	ck_assert_int_eq(g_logins, 2);
	ck_assert_int_eq(cx_p11_token_logout(t), 0);
	ck_assert_int_eq(cx_p11_token_logged_in(t), 0);
	ck_assert_int_eq(cx_p11_token_logout(t), 0);
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

START_TEST(test_final_try)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_err e = {0};

	init_token("final");
	m = load();
	t = open_token(m, "final");
	wrap(t);
	g_addflags = CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_COUNT_LOW;
	ck_assert_int_eq(cx_p11_token_login(t, PIN, strlen(PIN), 0, &e), CX_P11_PIN_FINAL_TRY);
	ck_assert_int_eq(g_logins, 0);
	ck_assert_int_eq(cx_p11_token_get_info(t)->pin_final_try, 1);
	ck_assert_msg(
	    strstr(e.msg, "final") != NULL || strstr(e.msg, "one PIN try") != NULL, "%s", e.msg);
	/* the caller may allow it (the user was asked) */
	ck_assert_msg(cx_p11_token_login(t, PIN, strlen(PIN), 1, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(g_logins, 1);
	ck_assert_int_eq(cx_p11_token_logout(t), 0);

	/* a locked PIN: nothing sent */
	g_addflags = CKF_USER_PIN_LOCKED;
	ck_assert_int_eq(cx_p11_token_login(t, PIN, strlen(PIN), 1, &e), CX_P11_PIN_LOCKED);
	ck_assert_int_eq(g_logins, 1);
	ck_assert_msg(strstr(e.msg, "CKR_PIN_LOCKED") != NULL, "%s", e.msg);
	ck_assert_int_eq(cx_p11_token_get_info(t)->pin_locked, 1);
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

START_TEST(test_sign_before_login)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_p11_key k, *keys;
	struct cx_err e = {0};
	struct cx_buf sig;
	size_t n;

	init_token("nologin");
	m = load();
	t = open_token(m, "nologin");
	login(t);
	generate(t, "ed", CX_P11_ED25519, 0, &k);
	ck_assert_int_eq(cx_p11_token_logout(t), 0);

	cx_buf_init(&sig, 0);
	ck_assert_int_eq(
	    cx_p11_token_sign(t, &k, CX_P11_EDDSA, msg, sizeof(msg) - 1, NULL, 0, &sig, &e),
	    CX_P11_PIN_REQUIRED);
	ck_assert_msg(strstr(e.msg, "CKR_USER_NOT_LOGGED_IN") != NULL, "%s", e.msg);
	ck_assert_msg(strstr(e.msg, "key \"ed\"") != NULL, "%s", e.msg);
	ck_assert_int_eq(sig.len, 0);
	/* SoftHSM hides private keys until login */
	ck_assert_int_eq(cx_p11_token_keys(t, &keys, &n, &e), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_ptr_null(keys);

	login(t);
	sign_verify(t, &k);
	cx_buf_free(&sig);
	cx_p11_key_clear(&k);
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

/* A key with CKA_ALWAYS_AUTHENTICATE, made with a direct C_GenerateKeyPair. */
static void
gen_always_auth(struct cx_p11_token *t, struct cx_p11_key *k)
{
	CK_MECHANISM mech = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
	CK_BBOOL yes = CK_TRUE;
	CK_BYTE params[] = {0x06, 0x03, 0x2b, 0x65, 0x70}, id[] = {0xaa, 0x01};
	char label[] = "always";
	CK_ATTRIBUTE pub[] = {
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_VERIFY, &yes, sizeof(yes)},
	    {CKA_EC_PARAMS, params, sizeof(params)},
	    {CKA_LABEL, label, strlen(label)},
	    {CKA_ID, id, sizeof(id)},
	};
	CK_ATTRIBUTE priv[] = {
	    {CKA_TOKEN, &yes, sizeof(yes)},
	    {CKA_PRIVATE, &yes, sizeof(yes)},
	    {CKA_SENSITIVE, &yes, sizeof(yes)},
	    {CKA_SIGN, &yes, sizeof(yes)},
	    {CKA_ALWAYS_AUTHENTICATE, &yes, sizeof(yes)},
	    {CKA_LABEL, label, strlen(label)},
	    {CKA_ID, id, sizeof(id)},
	};
	CK_OBJECT_HANDLE hpub, hpriv;
	struct cx_err e = {0};

	ck_assert_int_eq(
	    t->f->C_GenerateKeyPair(t->s, &mech, pub, 5, priv, 7, &hpub, &hpriv), CKR_OK);
	ck_assert_msg(cx_p11_key_from_object(t, hpriv, k, &e) == 0, "%s", e.msg);
}

START_TEST(test_always_authenticate)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_p11_key k;
	struct cx_err e = {0};
	struct cx_buf sig;

	init_token("always");
	m = load();
	t = open_token(m, "always");
	login(t);
	gen_always_auth(t, &k);
	ck_assert_int_eq(k.always_auth, 1);
	wrap(t);

	cx_buf_init(&sig, 0);
	/* no PIN: refused before C_SignInit */
	ck_assert_int_eq(
	    cx_p11_token_sign(t, &k, CX_P11_EDDSA, msg, sizeof(msg) - 1, NULL, 0, &sig, &e),
	    CX_P11_PIN_REQUIRED);
	ck_assert_int_eq(g_logins, 0);
	/* a wrong PIN: one context-specific login, the operation ended, the session usable */
	ck_assert_int_eq(cx_p11_token_sign(t, &k, CX_P11_EDDSA, msg, sizeof(msg) - 1, PIN2,
	                     strlen(PIN2), &sig, &e),
	    CX_P11_PIN_INCORRECT);
	ck_assert_int_eq(g_logins, 1);
	ck_assert_msg(strstr(e.msg, "CKR_PIN_INCORRECT") != NULL && strstr(e.msg, "always") != NULL,
	    "%s", e.msg);
	ck_assert_int_eq(sig.len, 0);
	/* final try flagged: not sent */
	g_addflags = CKF_USER_PIN_FINAL_TRY;
	ck_assert_int_eq(cx_p11_token_sign(
	                     t, &k, CX_P11_EDDSA, msg, sizeof(msg) - 1, PIN, strlen(PIN), &sig, &e),
	    CX_P11_PIN_FINAL_TRY);
	ck_assert_int_eq(g_logins, 1);
	g_addflags = 0;
	ck_assert_msg(cx_p11_token_sign(t, &k, CX_P11_EDDSA, msg, sizeof(msg) - 1, PIN, strlen(PIN),
	                  &sig, &e) == 0,
	    "%s", e.msg);
	ck_assert_int_eq(g_logins, 2);
	verify(&k, sig.d, sig.len);
	cx_buf_free(&sig);
	cx_p11_key_clear(&k);
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

/* ---- removal, replaced keys ---- */

START_TEST(test_device_removed)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_p11_key k, *keys;
	struct cx_err e = {0};
	struct cx_buf sig;
	size_t n;

	init_token("gone");
	m = load();
	t = open_token(m, "gone");
	login(t);
	generate(t, "rsa", CX_P11_RSA, 2048, &k);
	wrap(t);
	g_sign_rv = CKR_DEVICE_REMOVED;
	cx_buf_init(&sig, 0);
	ck_assert_int_eq(cx_p11_token_sign(t, &k, CX_P11_RSA_PSS_SHA256, msg, 4, NULL, 0, &sig, &e),
	    CX_P11_ABSENT);
	ck_assert_msg(strstr(e.msg, "CKR_DEVICE_REMOVED") != NULL &&
	        strstr(e.msg, "token \"gone\"") && strstr(e.msg, "key \"rsa\"") &&
	        strstr(e.msg, "C_Sign"),
	    "%s", e.msg);
	ck_assert_int_eq(cx_p11_token_lost(t), 1);
	/* until reopened, nothing touches the session */
	ck_assert_int_eq(cx_p11_token_keys(t, &keys, &n, &e), CX_P11_ABSENT);
	ck_assert_int_eq(cx_p11_token_sign(t, &k, CX_P11_RSA_PSS_SHA256, msg, 4, NULL, 0, &sig, &e),
	    CX_P11_ABSENT);
	ck_assert_int_eq(cx_p11_token_logged_in(t), 0);
	g_sign_rv = CKR_SESSION_HANDLE_INVALID;
	ck_assert_msg(cx_p11_token_reopen(t, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(cx_p11_token_lost(t), 0);
	ck_assert_int_eq(cx_p11_token_sign(t, &k, CX_P11_RSA_PSS_SHA256, msg, 4, NULL, 0, &sig, &e),
	    CX_P11_PIN_REQUIRED); /* the login went with the session */
	login(t);
	ck_assert_int_eq(cx_p11_token_sign(t, &k, CX_P11_RSA_PSS_SHA256, msg, 4, NULL, 0, &sig, &e),
	    CX_P11_ABSENT);
	ck_assert_msg(strstr(e.msg, "CKR_SESSION_HANDLE_INVALID") != NULL, "%s", e.msg);
	g_sign_rv = CKR_OK;
	ck_assert_msg(cx_p11_token_reopen(t, &e) == 0, "%s", e.msg);
	login(t);
	sign_verify(t, &k);
	cx_buf_free(&sig);
	cx_p11_key_clear(&k);
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

START_TEST(test_key_destroyed)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_p11_key k;
	struct cx_err e = {0};
	struct cx_buf sig;

	init_token("destroy");
	m = load();
	t = open_token(m, "destroy");
	login(t);
	generate(t, "ec", CX_P11_ECDSA_P256, 0, &k);
	ck_assert_int_eq(t->f->C_DestroyObject(t->s, object(t, &k, CKO_PRIVATE_KEY)), CKR_OK);
	cx_buf_init(&sig, 0);
	ck_assert_int_eq(cx_p11_token_sign(t, &k, CX_P11_ECDSA_SHA256, msg, 4, NULL, 0, &sig, &e),
	    CX_P11_KEY_ABSENT);
	ck_assert_msg(strstr(e.msg, "key \"ec\"") != NULL, "%s", e.msg);
	cx_buf_free(&sig);
	cx_p11_key_clear(&k);
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

/* ---- two tokens, two threads ---- */

struct worker {
	struct cx_p11_token *t;
	struct cx_p11_key *k;
	int ok, fail;
	char err[CX_ERR_MSG];
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct cx_err e = {0};
	struct cx_buf sig;
	enum cx_keyalg ka;
	EVP_PKEY *pk = NULL;
	int i;

	if (cx_pubkey_parse(w->k->keystr, strlen(w->k->keystr), &pk, &ka, &e) != 0) {
		snprintf(w->err, sizeof(w->err), "parse: %.900s", e.msg);
		w->fail++;
		return NULL;
	}
	for (i = 0; i < 40; i++) {
		cx_buf_init(&sig, 0);
		if (cx_p11_token_sign(
		        w->t, w->k, mech_of(w->k), msg, sizeof(msg) - 1, NULL, 0, &sig, &e) != 0 ||
		    cx_sig_verify(pk,
		        w->k->alg == CX_P11_RSA ? CX_SIG_RSAPSS_SHA256 : CX_SIG_ED25519, msg,
		        sizeof(msg) - 1, sig.d, sig.len, &e) != 0) {
			snprintf(w->err, sizeof(w->err), "%s", e.msg);
			w->fail++;
		} else
			w->ok++;
		cx_buf_free(&sig);
	}
	EVP_PKEY_free(pk);
	return NULL;
}

START_TEST(test_threads)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t[2];
	struct cx_p11_key k[2];
	struct worker w[2];
	pthread_t th[2];
	int i;

	init_token("one");
	init_token("two");
	m = load();
	t[0] = open_token(m, "one");
	t[1] = open_token(m, "two");
	login(t[0]);
	login(t[1]);
	generate(t[0], "ed", CX_P11_ED25519, 0, &k[0]);
	generate(t[1], "rsa", CX_P11_RSA, 2048, &k[1]);
	memset(w, 0, sizeof(w));
	for (i = 0; i < 2; i++) {
		w[i].t = t[i];
		w[i].k = &k[i];
		ck_assert_int_eq(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	}
	for (i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	for (i = 0; i < 2; i++) {
		ck_assert_msg(w[i].fail == 0, "thread %d: %d failures: %s", i, w[i].fail, w[i].err);
		ck_assert_int_eq(w[i].ok, 40);
		cx_p11_key_clear(&k[i]);
		cx_p11_token_close(t[i]);
	}
	cx_p11_module_unload(m);
}
END_TEST

/* ---- URIs ---- */

START_TEST(test_uri)
{
	struct cx_p11_module *m;
	struct cx_p11_token *ta, *tb;
	struct cx_p11_key ka, kb;
	const struct cx_p11_token_info *ia, *ib;
	struct cx_err e = {0};
	char u[512], idpct[64];
	size_t i;

	init_token("uri-a");
	init_token("uri b;%");
	m = load();
	ta = open_token(m, "uri-a");
	tb = open_token(m, "uri b;%");
	ia = cx_p11_token_get_info(ta);
	ib = cx_p11_token_get_info(tb);
	login(ta);
	login(tb);
	generate(ta, "key a", CX_P11_ED25519, 0, &ka);
	generate(tb, "key/b;x=y", CX_P11_ED25519, 0, &kb);

	ck_assert_int_eq(cx_p11_uri_match_token("pkcs11:", ia, &e), 1);
	ck_assert_int_eq(cx_p11_uri_match_token("pkcs11:token=uri-a", ia, &e), 1);
	ck_assert_int_eq(cx_p11_uri_match_token("pkcs11:token=uri-a", ib, &e), 0);
	ck_assert_int_eq(cx_p11_uri_match_token("pkcs11:token=uri%20b%3B%25", ib, &e), 1);
	ck_assert_int_eq(cx_p11_uri_match_token(
	                     "pkcs11:manufacturer=SoftHSM%20project;model=SoftHSM%20v2", ia, &e),
	    1);
	ck_assert_int_eq(cx_p11_uri_match_token("pkcs11:model=YubiKey%20YK5", ia, &e), 0);
	snprintf(u, sizeof(u), "pkcs11:serial=%s", ia->serial);
	ck_assert_int_eq(cx_p11_uri_match_token(u, ia, &e), 1);
	ck_assert_int_eq(cx_p11_uri_match_token(u, ib, &e), 0);
	snprintf(u, sizeof(u), "pkcs11:slot-id=%lu", ia->slot);
	ck_assert_int_eq(cx_p11_uri_match_token(u, ia, &e), 1);
	ck_assert_int_eq(cx_p11_uri_match_token(u, ib, &e), 0);
	/* query attributes are ignored; PINs never come from URIs */
	ck_assert_int_eq(cx_p11_uri_match_token("pkcs11:token=uri-a?pin-value=1234", ia, &e), 1);

	/* what we cannot judge is refused, not ignored */
	ck_assert_int_eq(
	    cx_p11_uri_match_token("pkcs11:token=uri-a;frobnicate=1", ia, &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(
	    cx_p11_uri_match_token("pkcs11:library-manufacturer=OpenSC", ia, &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(
	    cx_p11_uri_match_token("pkcs11:slot-description=x", ia, &e), CX_EUNSUPPORTED);
	ck_assert_int_eq(cx_p11_uri_match_token("pkcs11:token=a%2", ia, &e), CX_EPARSE);
	ck_assert_int_eq(cx_p11_uri_match_token("file:token=a", ia, &e), CX_EPARSE);
	ck_assert_int_eq(cx_p11_uri_match_token(NULL, ia, &e), CX_EINVAL);

	/* keys: each key's own URI selects it and nothing else */
	ck_assert_int_eq(cx_p11_uri_match_key(ka.uri, ia, &ka, &e), 1);
	ck_assert_int_eq(cx_p11_uri_match_key(kb.uri, ib, &kb, &e), 1);
	ck_assert_int_eq(cx_p11_uri_match_key(ka.uri, ib, &kb, &e), 0);
	ck_assert_int_eq(cx_p11_uri_match_key(ka.uri, ia, &kb, &e), 0);
	ck_assert_int_eq(cx_p11_uri_match_key(kb.uri, ia, &ka, &e), 0);
	ck_assert_msg(strstr(kb.uri, ";token=uri%20b%3B%25;") != NULL, "%s", kb.uri);
	ck_assert_msg(strstr(kb.uri, ";object=key%2Fb%3Bx%3Dy;type=private") != NULL, "%s", kb.uri);
	ck_assert_int_eq(cx_p11_uri_match_key("pkcs11:object=key%20a", ia, &ka, &e), 1);
	ck_assert_int_eq(
	    cx_p11_uri_match_key("pkcs11:object=key%20a;type=private", ia, &ka, &e), 1);
	ck_assert_int_eq(cx_p11_uri_match_key("pkcs11:object=key%20a;type=public", ia, &ka, &e), 0);
	ck_assert_int_eq(cx_p11_uri_match_key("pkcs11:object=key", ia, &ka, &e), 0);
	ck_assert_int_eq(cx_p11_uri_match_key("pkcs11:token=uri-a", ia, &ka, &e), 1);
	ck_assert_int_eq(cx_p11_uri_match_key("pkcs11:token=uri-a", ib, &kb, &e), 0);
	for (i = 0; i < ka.ckaidlen; i++)
		snprintf(idpct + 3 * i, sizeof(idpct) - 3 * i, "%%%02x", ka.ckaid[i]);
	snprintf(u, sizeof(u), "pkcs11:id=%s", idpct);
	ck_assert_int_eq(cx_p11_uri_match_key(u, ia, &ka, &e), 1);
	ck_assert_int_eq(cx_p11_uri_match_key(u, ib, &kb, &e), 0);
	snprintf(u, sizeof(u), "pkcs11:token=uri-a;id=%s;object=other", idpct);
	ck_assert_int_eq(cx_p11_uri_match_key(u, ia, &ka, &e), 0);

	cx_p11_key_clear(&ka);
	cx_p11_key_clear(&kb);
	cx_p11_token_close(ta);
	cx_p11_token_close(tb);
	cx_p11_module_unload(m);
}
END_TEST

/* ---- keys made by other tools: the other CKA_EC_PARAMS / CKA_EC_POINT encodings ---- */

/* Unencrypted PKCS#8 PEM, by OpenSSL (conex's writer knows RSA and Ed25519 only). */
static void
write_pem(EVP_PKEY *k, const char *name)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
	ck_assert_int_gt(n = BIO_get_mem_data(b, &p), 0);
	cx_test_write(g_dir, name, p, (size_t)n);
	BIO_free(b);
}

static const struct cx_p11_key *
by_label(const struct cx_p11_key *keys, size_t n, const char *label)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(keys[i].label, label) == 0)
			return &keys[i];
	ck_abort_msg("no key %s", label);
	return NULL;
}

START_TEST(test_import)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_p11_key *keys;
	const struct cx_p11_key *k;
	EVP_PKEY *ed = NULL, *rsa = NULL, *ec = NULL;
	struct cx_err e = {0};
	struct cx_buf ks;
	uint8_t id[32], pt[65], *params, *point;
	size_t n, ptlen, plen, qlen;
	char path[4096], b64[128];

	ck_assert_int_eq(cx_privkey_generate(CX_KEY_ED25519, 0, &ed, &e), 0);
	ck_assert_int_eq(cx_privkey_generate(CX_KEY_RSA, 2048, &rsa, &e), 0);
	ck_assert_ptr_nonnull(ec = EVP_EC_gen("P-256"));
	write_pem(ed, "ed.pem");
	write_pem(rsa, "rsa.pem");
	write_pem(ec, "ec.pem");
	init_token("imp");
	snprintf(path, sizeof(path), "%s/ed.pem", g_dir);
	ck_assert_int_eq(cx_softhsm_import("imp", PIN, path, "imported ed", "0a"), 0);
	snprintf(path, sizeof(path), "%s/rsa.pem", g_dir);
	ck_assert_int_eq(cx_softhsm_import("imp", PIN, path, "imported rsa", "0b"), 0);
	snprintf(path, sizeof(path), "%s/ec.pem", g_dir);
	ck_assert_int_eq(cx_softhsm_import("imp", PIN, path, "imported ec", "0c"), 0);

	m = load();
	t = open_token(m, "imp");
	login(t);
	ck_assert_msg(cx_p11_token_keys(t, &keys, &n, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(n, 3);

	/* the key ids are conex's own for the keys we imported */
	k = by_label(keys, n, "imported ed");
	ck_assert_int_eq(k->alg, CX_P11_ED25519);
	cx_buf_init(&ks, 0);
	ck_assert_int_eq(cx_pubkey_string(ed, &ks, &e), 0);
	ck_assert_str_eq(k->keystr, (const char *)ks.d);
	cx_keyid((const char *)ks.d, ks.len, id);
	ck_assert(memcmp(id, k->keyid, 32) == 0);
	ck_assert_int_eq(k->ckaidlen, 1);
	ck_assert_int_eq(k->ckaid[0], 0x0a);
	/* softhsm2-util stores Ed25519 with the OID and a raw 32-byte point */
	ck_assert_int_eq(
	    cx_p11_attr_get(t, object(t, k, CKO_PUBLIC_KEY), CKA_EC_PARAMS, &params, &plen, &e), 0);
	ck_assert_int_eq(plen, 5);
	ck_assert(memcmp(params, "\x06\x03\x2b\x65\x70", 5) == 0);
	ck_assert_int_eq(
	    cx_p11_attr_get(t, object(t, k, CKO_PUBLIC_KEY), CKA_EC_POINT, &point, &qlen, &e), 0);
	ck_assert_int_eq(qlen, 32);
	free(params);
	free(point);
	sign_verify(t, k);

	k = by_label(keys, n, "imported rsa");
	ck_assert_int_eq(k->alg, CX_P11_RSA);
	ck_assert_int_eq(k->bits, 2048);
	cx_buf_reset(&ks);
	ck_assert_int_eq(cx_pubkey_string(rsa, &ks, &e), 0);
	ck_assert_str_eq(k->keystr, (const char *)ks.d);
	sign_verify(t, k);

	k = by_label(keys, n, "imported ec");
	ck_assert_int_eq(k->alg, CX_P11_ECDSA_P256);
	ck_assert_int_eq(EVP_PKEY_get_octet_string_param(
	                     ec, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt), &ptlen),
	    1);
	ck_assert_int_eq(ptlen, 65);
	cx_buf_reset(&ks);
	ck_assert_int_eq(cx_b64_encode(pt, ptlen, &ks), 0);
	snprintf(b64, sizeof(b64), "ecdsa-p256=%.*s", (int)ks.len, (const char *)ks.d);
	ck_assert_str_eq(k->keystr, b64);
	sign_verify(t, k);

	cx_buf_free(&ks);
	cx_p11_keys_free(keys, n);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

START_TEST(test_pkcs11_tool)
{
	struct cx_p11_module *m;
	struct cx_p11_token *t;
	struct cx_p11_key *keys;
	const struct cx_p11_key *k;
	struct cx_err e = {0};
	uint8_t *params, *point;
	size_t n, plen, qlen;
	char *gen_ed[] = {"pkcs11-tool", "--module", (char *)cx_softhsm_module(), "--token-label",
	    "tool", "--login", "--pin", PIN, "--keypairgen", "--key-type", "EC:edwards25519",
	    "--label", "tool ed", "--id", "01", NULL};
	char *gen_ec[] = {"pkcs11-tool", "--module", (char *)cx_softhsm_module(), "--token-label",
	    "tool", "--login", "--pin", PIN, "--keypairgen", "--key-type", "EC:prime256v1",
	    "--label", "tool ec", "--id", "02", NULL};
	char *gen_rsa[] = {"pkcs11-tool", "--module", (char *)cx_softhsm_module(), "--token-label",
	    "tool", "--login", "--pin", PIN, "--keypairgen", "--key-type", "rsa:2048", "--label",
	    "tool rsa", "--id", "03", NULL};
	char *probe[] = {"pkcs11-tool", "--version", NULL};

	/* opensc's pkcs11-tool: a Debian package of the project's build deps (opensc) */
	ck_assert_msg(cx_softhsm_run(probe) != -1, "pkcs11-tool missing: apt-get install opensc");
	init_token("tool");
	ck_assert_int_eq(cx_softhsm_run(gen_ed), 0);
	ck_assert_int_eq(cx_softhsm_run(gen_ec), 0);
	ck_assert_int_eq(cx_softhsm_run(gen_rsa), 0);

	m = load();
	t = open_token(m, "tool");
	login(t);
	ck_assert_msg(cx_p11_token_keys(t, &keys, &n, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(n, 3);
	k = by_label(keys, n, "tool ed");
	ck_assert_int_eq(k->alg, CX_P11_ED25519);
	/* pkcs11-tool 0.23 generates with the PrintableString; the point comes DER-wrapped */
	ck_assert_int_eq(
	    cx_p11_attr_get(t, object(t, k, CKO_PUBLIC_KEY), CKA_EC_PARAMS, &params, &plen, &e), 0);
	ck_assert_int_eq(plen, 14);
	ck_assert(memcmp(params,
	              "\x13\x0c"
	              "edwards25519",
	              14) == 0);
	ck_assert_int_eq(
	    cx_p11_attr_get(t, object(t, k, CKO_PUBLIC_KEY), CKA_EC_POINT, &point, &qlen, &e), 0);
	ck_assert_int_eq(qlen, 34);
	free(params);
	free(point);
	/* the listed key string is the key that signs, and names it as conex does */
	check_keyid_independent(t, k);
	sign_verify(t, k);
	k = by_label(keys, n, "tool ec");
	ck_assert_int_eq(k->alg, CX_P11_ECDSA_P256);
	sign_verify(t, k);
	k = by_label(keys, n, "tool rsa");
	ck_assert_int_eq(k->alg, CX_P11_RSA);
	check_keyid_independent(t, k);
	sign_verify(t, k);
	cx_p11_keys_free(keys, n);
	cx_p11_token_close(t);
	cx_p11_module_unload(m);
}
END_TEST

/* ---- pure functions ---- */

START_TEST(test_ec_params)
{
	static const uint8_t oid[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
	static const uint8_t ps[] = "\x13\x0c"
	                            "edwards25519";
	static const uint8_t ed448[] = {0x06, 0x03, 0x2b, 0x65, 0x71};
	static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
	static const uint8_t p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
	uint8_t raw[34] = {0x04, 0x20};
	struct cx_err e = {0};
	EVP_PKEY *a = NULL, *b = NULL;
	size_t n;

	ck_assert_int_eq(cx_p11_ec_params_alg(oid, sizeof(oid)), CX_P11_ED25519);
	ck_assert_int_eq(cx_p11_ec_params_alg(ps, 14), CX_P11_ED25519);
	ck_assert_int_eq(cx_p11_ec_params_alg(ps, 13), 0);
	ck_assert_int_eq(cx_p11_ec_params_alg(ed448, sizeof(ed448)), 0);
	ck_assert_int_eq(cx_p11_ec_params_alg(p256, sizeof(p256)), CX_P11_ECDSA_P256);
	ck_assert_int_eq(cx_p11_ec_params_alg(p384, sizeof(p384)), 0);
	ck_assert_int_eq(cx_p11_ec_params_alg(NULL, 0), 0);
	ck_assert(cx_p11_ec_params_der(CX_P11_ED25519, 0, &n) != NULL && n == 5);
	ck_assert(cx_p11_ec_params_der(CX_P11_ED25519, 1, &n) != NULL && n == 14);

	/* Ed25519 point: raw 32 and DER-wrapped 34 give the same key */
	memset(raw + 2, 0x11, 32);
	ck_assert_int_eq(cx_p11_pub_ec(CX_P11_ED25519, raw, 34, &a, &e), 0);
	ck_assert_int_eq(cx_p11_pub_ec(CX_P11_ED25519, raw + 2, 32, &b, &e), 0);
	ck_assert_int_eq(EVP_PKEY_eq(a, b), 1);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	ck_assert_int_eq(cx_p11_pub_ec(CX_P11_ED25519, raw, 33, &a, &e), CX_EPARSE);
	raw[1] = 0x21;
	ck_assert_int_eq(cx_p11_pub_ec(CX_P11_ED25519, raw, 34, &a, &e), CX_EPARSE);
	/* a P-256 point off the curve */
	{
		uint8_t bad[65] = {0x04};

		memset(bad + 1, 0x01, 64);
		ck_assert_int_eq(cx_p11_pub_ec(CX_P11_ECDSA_P256, bad, 65, &a, &e), CX_ECRYPTO);
		ck_assert_ptr_null(a);
		ERR_clear_error();
	}
	ck_assert_int_eq(cx_p11_pub_rsa(NULL, 0, NULL, 0, &a, &e), CX_EUNSUPPORTED);
}
END_TEST

START_TEST(test_ckr_names)
{
	char buf[48];

	ck_assert_str_eq(cx_p11_ckr_name(CKR_PIN_INCORRECT, buf, sizeof(buf)), "CKR_PIN_INCORRECT");
	ck_assert_str_eq(
	    cx_p11_ckr_name(CKR_DEVICE_REMOVED, buf, sizeof(buf)), "CKR_DEVICE_REMOVED");
	ck_assert_str_eq(cx_p11_ckr_name(0x12345, buf, sizeof(buf)), "CKR_0x12345");
	ck_assert_str_eq(
	    cx_p11_ckr_name(CKR_VENDOR_DEFINED + 3, buf, sizeof(buf)), "CKR_VENDOR_DEFINED+0x3");
	ck_assert_int_eq(cx_p11_rv_code(CKR_DEVICE_REMOVED), CX_P11_ABSENT);
	ck_assert_int_eq(cx_p11_rv_code(CKR_TOKEN_NOT_PRESENT), CX_P11_ABSENT);
	ck_assert_int_eq(cx_p11_rv_code(CKR_SESSION_HANDLE_INVALID), CX_P11_ABSENT);
	ck_assert_int_eq(cx_p11_rv_code(CKR_SESSION_CLOSED), CX_P11_ABSENT);
	ck_assert_int_eq(cx_p11_rv_code(CKR_DEVICE_ERROR), CX_P11_ABSENT);
	ck_assert_int_eq(cx_p11_rv_code(CKR_USER_NOT_LOGGED_IN), CX_P11_PIN_REQUIRED);
	ck_assert_int_eq(cx_p11_rv_code(CKR_PIN_INCORRECT), CX_P11_PIN_INCORRECT);
	ck_assert_int_eq(cx_p11_rv_code(CKR_PIN_LOCKED), CX_P11_PIN_LOCKED);
	ck_assert_int_eq(cx_p11_rv_code(CKR_FUNCTION_FAILED), CX_P11_TOKEN_ERROR);
	ck_assert_int_eq(cx_p11_rv_code(CKR_OK), 0);
}
END_TEST

START_TEST(test_uri_build)
{
	struct cx_p11_token_info ti = {0};
	struct cx_p11_key k = {0};
	struct cx_err e = {0};
	uint8_t id[] = {0x00, 0xff, 0x41};
	char *uri;

	strcpy(ti.label, "a b");
	strcpy(ti.serial, "0123");
	strcpy(ti.manufacturer, "Yubico (www.yubico.com)");
	strcpy(ti.model, "YubiKey YK5");
	k.label = "SIGN key";
	k.ckaid = id;
	k.ckaidlen = sizeof(id);
	ck_assert_int_eq(cx_p11_uri_build(&ti, &k, &uri, &e), 0);
	ck_assert_str_eq(uri,
	    "pkcs11:model=YubiKey%20YK5;manufacturer=Yubico%20%28www.yubico.com%29;"
	    "serial=0123;token=a%20b;id=%00%FF%41;object=SIGN%20key;type=private");
	ck_assert_int_eq(cx_p11_uri_match_key(uri, &ti, &k, &e), 1);
	free(uri);
	k.ckaidlen = 0;
	ck_assert_int_eq(cx_p11_uri_build(&ti, &k, &uri, &e), 0);
	ck_assert_ptr_null(strstr(uri, "id="));
	free(uri);
}
END_TEST

static Suite *
pkcs11_suite(void)
{
	Suite *s = suite_create("pkcs11");
	TCase *tc;

	tc = tcase_create("pure");
	tcase_add_test(tc, test_ec_params);
	tcase_add_test(tc, test_ckr_names);
	tcase_add_test(tc, test_uri_build);
	suite_add_tcase(s, tc);

	tc = tcase_create("softhsm");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_allowlist);
	tcase_add_test(tc, test_two_tokens);
	tcase_add_test(tc, test_generate_list_sign);
	tcase_add_test(tc, test_sensitive);
	tcase_add_test(tc, test_generate_refuses);
	tcase_add_test(tc, test_wrong_pin);
	tcase_add_test(tc, test_final_try);
	tcase_add_test(tc, test_sign_before_login);
	tcase_add_test(tc, test_always_authenticate);
	tcase_add_test(tc, test_device_removed);
	tcase_add_test(tc, test_key_destroyed);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_uri);
	tcase_add_test(tc, test_import);
	tcase_add_test(tc, test_pkcs11_tool);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pkcs11_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
