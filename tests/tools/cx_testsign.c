/*
 * cx-testsign: builds and re-signs conex repositories, with software keys
 * kept in a directory or with keys held by conex-agent.  A test and demo tool
 * only: it is not installed, keeps its software private keys unencrypted on
 * disk, and signs whatever is under packages/.  Real signing goes through the
 * agent and the `conex` tools.
 *
 *   cx-testsign init REPO KEYS [--maintainers N] [--quorum Q] [--alg ed25519|rsa] [--now T]
 *   cx-testsign sign REPO KEYS [--only m1,m2] [--root] [--now T]
 *   cx-testsign anchor KEYS
 *   cx-testsign init|sign|anchor --agent [--agent-sock PATH] [REPO] [options]
 *
 * The repository has the shape of upstream's testrepo (tests/lib/repobuild.h):
 * root key "root", maintainers m1..mN in keys/ with a quorum, snapshot "snap"
 * and timestamp "timestamp".  Software keys are KEYS/<id>.sha256=<hex>.private
 * (PKCS#8 PEM, mode 0400), named as upstream names them.
 *
 * Agent mode (--agent, the socket from $CONEX_AGENT_SOCK or --agent-sock):
 * there is no KEYS; every key is the agent's key whose conex id (CKA_LABEL on
 * a token) is root, m1..mN, snap or timestamp, made beforehand (`conex agent
 * generate SERIAL ID`).  The key entries written into the resources are the
 * agent's public key strings (checked: the key id is their sha256), and every
 * signature is made by the agent (SIGN over the to-be-signed bytes) and
 * checked against that public key before it is written.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/conex-agent.h"
#include "conex/resource.h"
#include "tests/lib/repobuild.h"

#define MAX_IDS 64

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: cx-testsign init REPO KEYS [--maintainers N] [--quorum Q] [--alg ed25519|rsa]\n"
	    "                        [--now RFC3339]\n"
	    "       cx-testsign sign REPO KEYS [--only ID,ID...] [--root] [--now RFC3339]\n"
	    "       cx-testsign anchor KEYS\n"
	    "       cx-testsign init --agent [--agent-sock PATH] REPO [--maintainers N] [--quorum Q]\n"
	    "                        [--now RFC3339]\n"
	    "       cx-testsign sign --agent [--agent-sock PATH] REPO [--only ID,ID...] [--root]\n"
	    "                        [--now RFC3339]\n"
	    "       cx-testsign anchor --agent [--agent-sock PATH]\n\n"
	    "A TEST AND DEMO TOOL: not installed, software keys stored unencrypted in KEYS.\n"
	    "Real repositories are signed through conex-agent and the conex tools.\n\n"
	    "  init    generate keys root, m1..mN, snap, timestamp into KEYS (files\n"
	    "          <id>.sha256=<hex>.private, PKCS#8 PEM); write REPO/root (signed),\n"
	    "          REPO/repo and REPO/packages/; print the trust anchor sha256=<hex>.\n"
	    "          Defaults: --maintainers 1, --quorum 1, --alg ed25519.\n"
	    "  sign    every maintainer (or those of --only) signs every file under\n"
	    "          packages/ (counter + 1 when signed before); then the snapshot over\n"
	    "          keys/ and the timestamp over the snapshot are re-signed (counters + 1,\n"
	    "          created = now).  --root also re-signs the root (counter + 1) first.\n"
	    "  anchor  print the root key id as sha256=<hex> (the trust anchor).\n\n"
	    "  --agent          take every key from conex-agent instead of KEYS: the agent's\n"
	    "                   key with conex id (CKA_LABEL) root, m1..mN, snap, timestamp\n"
	    "                   (Ed25519 or RSA; made before, e.g. `conex agent generate`);\n"
	    "                   the agent makes every signature.  init writes the agent's\n"
	    "                   public keys into the root; --alg does not apply.\n"
	    "  --agent-sock P   the agent's socket (implies --agent; default $CONEX_AGENT_SOCK)\n"
	    "  --now T          sign as of T (YYYY-MM-DDThh:mm:ssZ) instead of the current time.\n"
	    "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cx-testsign: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

static void __attribute__((noreturn)) usage_die(const char *msg)
{
	if (msg != NULL)
		fprintf(stderr, "cx-testsign: %s\n", msg);
	usage(stderr);
	exit(2);
}

static int
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int
file_exists(const char *dir, const char *rel)
{
	char *p;
	struct stat st;
	int r;

	if (asprintf(&p, "%s/%s", dir, rel) < 0)
		die("out of memory");
	r = lstat(p, &st) == 0;
	if (r && !S_ISREG(st.st_mode))
		die("%s: not a regular file", p);
	free(p);
	return r;
}

static void
mkdir_p(const char *path, mode_t mode)
{
	char *p = strdup(path);

	if (p == NULL)
		die("out of memory");
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			die("mkdir %s: %s", p, strerror(errno));
		*s = '/';
	}
	if (mkdir(p, mode) != 0 && errno != EEXIST)
		die("mkdir %s: %s", p, strerror(errno));
	if (!is_dir(p))
		die("%s: not a directory", p);
	free(p);
}

/* Whole file, NUL-terminated; NULL (errno set) when it cannot be read. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *d = NULL;
	size_t n = 0, cap = 0, got;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (cap - n < 65536) {
			char *nd = realloc(d, cap + 65536 + 1);
			if (nd == NULL)
				die("out of memory");
			d = nd;
			cap += 65536;
		}
		if ((got = fread(d + n, 1, cap - n, f)) == 0)
			break;
		n += got;
	}
	if (ferror(f))
		die("%s: read error", path);
	fclose(f);
	d[n] = 0;
	*len = n;
	return d;
}

static int64_t
parse_now(const char *s)
{
	int64_t t;

	if (s == NULL)
		return (int64_t)time(NULL);
	if (cx_time_parse(s, &t) != 0)
		usage_die("--now: want YYYY-MM-DDThh:mm:ssZ");
	return t;
}

/*
 * The private key of id in keys: KEYS/<id>.sha256=<hex>.private when hex is
 * given, else the one file named <id>.sha256=*.private.
 */
static struct rb_key *
load_key(const char *keys, const char *id, const char *hex, size_t hexlen)
{
	char *path = NULL, *prefix;
	struct rb_key *k;
	DIR *d;
	struct dirent *de;
	int n = 0, exact = 0;

	if (hex != NULL) {
		if (asprintf(&path, "%s/%s.sha256=%.*s.private", keys, id, (int)hexlen, hex) < 0)
			die("out of memory");
		if (access(path, R_OK) == 0) {
			exact = 1;
		} else {
			free(path);
			path = NULL;
		}
	}
	if (path == NULL) {
		if (asprintf(&prefix, "%s.sha256=", id) < 0)
			die("out of memory");
		if ((d = opendir(keys)) == NULL)
			die("%s: %s", keys, strerror(errno));
		while ((de = readdir(d)) != NULL) {
			size_t l = strlen(de->d_name);
			if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 || l < 8 ||
			    strcmp(de->d_name + l - 8, ".private") != 0)
				continue;
			if (n++ > 0)
				die("%s: more than one private key for %s", keys, id);
			if (asprintf(&path, "%s/%s", keys, de->d_name) < 0)
				die("out of memory");
		}
		closedir(d);
		free(prefix);
		if (path == NULL)
			die("%s: no private key for %s (%s.sha256=<hex>.private)", keys, id, id);
	}
	k = rb_key_load(id, path);
	if (exact && (hexlen != CX_SHA256_HEX || memcmp(k->keyid, hex, hexlen) != 0))
		die("%s: key id sha256=%s, but the repository expects sha256=%.*s", path, k->keyid,
		    (int)hexlen, hex);
	free(path);
	return k;
}

static int
has_private_keys(const char *keys)
{
	DIR *d = opendir(keys);
	struct dirent *de;
	int r = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l > 8 && strcmp(de->d_name + l - 8, ".private") == 0)
			r = 1;
	}
	closedir(d);
	return r;
}

/* ---- keys from conex-agent (--agent) ---- */

static struct {
	int on;
	const char *sock; /* NULL: $CONEX_AGENT_SOCK */
	struct cx_agent_conn *c;
	struct cx_msg_key *keys;
	size_t n;
} ag;

/* Parses --agent / --agent-sock for every command: 1 when ch was one of them. */
enum { OPT_AGENT = 0x100, OPT_AGENT_SOCK };
#define AGENT_OPTS                                                    \
	{"agent", no_argument, NULL, OPT_AGENT},                      \
	{                                                             \
		"agent-sock", required_argument, NULL, OPT_AGENT_SOCK \
	}

static int
agent_opt(int ch)
{
	if (ch == OPT_AGENT) {
		ag.on = 1;
		return 1;
	}
	if (ch == OPT_AGENT_SOCK) {
		ag.on = 1;
		ag.sock = optarg;
		return 1;
	}
	return 0;
}

static void
agent_open(void)
{
	struct cx_err e = {0};
	const char *s = ag.sock != NULL ? ag.sock : getenv(CX_AGENT_SOCK_ENV);

	if (ag.c != NULL)
		return;
	if (s == NULL || *s == 0)
		die("--agent: no agent socket: set %s or give --agent-sock PATH",
		    CX_AGENT_SOCK_ENV);
	if (cx_agent_connect(s, &ag.c, &e) != 0)
		die("conex-agent at %s: %s", s, e.msg);
	if (cx_agent_list(ag.c, &ag.keys, &ag.n, &e) != 0)
		die("conex-agent at %s: list: %s", s, e.msg);
}

static void
agent_close(void)
{
	cx_agent_keys_free(ag.keys);
	ag.keys = NULL;
	ag.n = 0;
	cx_agent_close(ag.c);
	ag.c = NULL;
}

/* Key algorithms that make conex signatures: RSA-PSS and Ed25519 (not ECDSA). */
static int
agent_conex_alg(const struct cx_msg_key *k)
{
	return k->keyalg == CX_MKEY_RSA || k->keyalg == CX_MKEY_ED25519;
}

/*
 * The agent's key of conex id id, as an rb_key without a private half (pk
 * NULL): keystr from the agent.  As load_key: when hex names one of them by
 * key id, that one; else the only one with that id.
 */
static struct rb_key *
agent_key(const char *id, const char *hex, size_t hexlen)
{
	const struct cx_msg_key *found = NULL;
	struct rb_key *k;
	struct cx_err e = {0};
	EVP_PKEY *pk;
	enum cx_keyalg alg;
	uint8_t h[CX_SHA256_LEN];
	char khex[CX_SHA256_HEX + 1];
	size_t i, n = 0;

	agent_open();
	for (i = 0; i < ag.n; i++) {
		if (strcmp(ag.keys[i].id, id) != 0 || !agent_conex_alg(&ag.keys[i]))
			continue;
		cx_hex_encode(ag.keys[i].keyid, 32, khex);
		if (hex != NULL && hexlen == CX_SHA256_HEX && memcmp(khex, hex, hexlen) == 0) {
			found = &ag.keys[i];
			n = 1;
			break;
		}
		found = &ag.keys[i];
		n++;
	}
	if (n == 0)
		die("conex-agent holds no Ed25519 or RSA key with id %s (make it with `conex agent "
		    "generate SERIAL %s`)",
		    id, id);
	if (n > 1)
		die("conex-agent holds more than one key with id %s", id);
	cx_keyid(found->keystr, strlen(found->keystr), h);
	if (memcmp(h, found->keyid, 32) != 0)
		die("conex-agent: key %s: its key id is not the sha256 of its key string", id);
	if (cx_pubkey_parse(found->keystr, strlen(found->keystr), &pk, &alg, &e) != 0)
		die("conex-agent: key %s: %s", id, e.msg);
	if ((alg == CX_KEY_ED25519) != (found->keyalg == CX_MKEY_ED25519)) {
		EVP_PKEY_free(pk);
		die("conex-agent: key %s: its key string is not of its algorithm", id);
	}
	EVP_PKEY_free(pk);
	if ((k = calloc(1, sizeof(*k))) == NULL || (k->id = strdup(id)) == NULL ||
	    (k->keystr = strdup(found->keystr)) == NULL)
		die("out of memory");
	k->pk = NULL;
	k->alg = alg;
	k->keystrlen = strlen(k->keystr);
	cx_hex_encode(h, CX_SHA256_LEN, k->keyid);
	snprintf(k->created, sizeof(k->created), "2025-01-01T00:00:00Z"); /* as rb_key_gen's */
	return k;
}

struct agent_sig {
	const struct rb_key *k;
	uint8_t keyid[32];
	uint8_t msig;
	enum cx_sigalg alg;
	EVP_PKEY *pub;
};

/* cx_sign_fn: the agent signs the to-be-signed bytes; the signature is checked here. */
static int
agent_sign_fn(void *arg, const uint8_t *tbs, size_t n, struct cx_buf *sig, struct cx_err *e)
{
	struct agent_sig *as = arg;
	size_t off = sig->len;
	int rc;

	if ((rc = cx_agent_sign(ag.c, as->keyid, as->msig, tbs, n, sig, e)) != 0)
		return rc;
	if ((rc = cx_sig_verify(as->pub, as->alg, tbs, n, sig->d + off, sig->len - off, e)) != 0)
		return cx_err_prefix(
		    e, "the agent's signature does not verify with key %s", as->k->keyid);
	return 0;
}

/* Signs r as k: in process (software key) or through the agent. */
static void
sign_as(struct cx_arena *a, struct cx_resource *r, const struct rb_key *k, const char *created)
{
	struct agent_sig as;
	struct cx_err e = {0};
	enum cx_keyalg alg;

	if (!ag.on) {
		rb_sign(a, r, k, created);
		return;
	}
	memset(&as, 0, sizeof(as));
	as.k = k;
	as.alg = cx_sigalg_for_key(k->alg);
	as.msig = k->alg == CX_KEY_ED25519 ? CX_MSIG_ED25519 : CX_MSIG_RSAPSS_SHA256;
	if (cx_hex_decode(k->keyid, CX_SHA256_HEX, as.keyid, 32) != 0 ||
	    cx_pubkey_parse(k->keystr, k->keystrlen, &as.pub, &alg, &e) != 0)
		die("key %s: %s", k->id, e.msg);
	agent_open();
	if (cx_resource_sign(a, r, k->id, created, as.alg, agent_sign_fn, &as, &e) != 0)
		die("sign %s as %s (sha256=%s) through conex-agent: %s", r->name, k->id, k->keyid,
		    e.msg);
	EVP_PKEY_free(as.pub);
}

/* The key of id: software (KEYS) or from the agent. */
static struct rb_key *
get_key(const char *keys, const char *id, const char *hex, size_t hexlen)
{
	if (ag.on)
		return agent_key(id, hex, hexlen);
	return load_key(keys, id, hex, hexlen);
}

/*
 * init --agent: the root of rb_world_init's shape over the agent's keys root,
 * m1..mN, snap and timestamp, signed (counter 0) by the agent's root key.
 */
static const char *
init_agent_root(const char *repo, int nm, int quorum, int64_t now)
{
	struct cx_keyref refs[8], lr;
	struct rb_key *root, *snap, *ts, *m;
	struct cx_resource *r, *t;
	struct cx_arena a;
	char created[21], id[8], hex[CX_SHA256_HEX + 1];
	static char anchor[CX_SHA256_HEX + 8];
	int i;

	cx_time_format(now, created);
	cx_arena_init(&a, 0);
	root = agent_key("root", NULL, 0);
	snap = agent_key("snap", NULL, 0);
	ts = agent_key("timestamp", NULL, 0);
	for (i = 0; i < nm; i++) {
		snprintf(id, sizeof(id), "m%d", i + 1);
		m = agent_key(id, NULL, 0);
		/* what sign makes of keys/<id> the first time: key m, valid Local id */
		t = rb_new(&a, CX_R_TARGETS, id, created);
		rb_add_key(&a, t, m);
		lr = rb_local(m->id);
		t->valid = rb_quorum(&a, 1, &lr, 1);
		rb_key_hash(t, hex);
		refs[i] = rb_remote(cx_arena_strdup(&a, id), cx_arena_strdup(&a, hex), 0);
		if (refs[i].id == NULL || refs[i].digest.value == NULL)
			die("out of memory");
		rb_key_free(m);
	}
	r = rb_new(&a, CX_R_ROOT, "root", created);
	rb_add_key(&a, r, root);
	lr = rb_local("root");
	r->valid = rb_quorum(&a, 1, &lr, 1);
	r->role_maintainer = rb_quorum(&a, quorum, refs, (size_t)nm);
	refs[0] = rb_remote(snap->id, snap->keyid, 0);
	r->role_snapshot = rb_quorum(&a, 1, refs, 1);
	refs[0] = rb_remote(ts->id, ts->keyid, 0);
	r->role_timestamp = rb_quorum(&a, 1, refs, 1);
	r->counter = 0;
	sign_as(&a, r, root, created);
	rb_write(r, repo, "root");
	snprintf(anchor, sizeof(anchor), "sha256=%s", root->keyid);
	rb_key_free(root);
	rb_key_free(snap);
	rb_key_free(ts);
	cx_arena_free(&a);
	return anchor;
}

/* ---- init ---- */

static int
cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {{"maintainers", required_argument, NULL, 'n'},
	    {"quorum", required_argument, NULL, 'q'}, {"alg", required_argument, NULL, 'a'},
	    {"now", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'}, AGENT_OPTS,
	    {NULL, 0, NULL, 0}};
	const char *nows = NULL, *repo, *keys;
	int nm = 1, quorum = 1, ch, i, algset = 0;
	enum cx_keyalg alg = CX_KEY_ED25519;
	struct rb_world w;
	char *end;
	long v;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			v = strtol(optarg, &end, 10);
			if (*optarg == 0 || *end != 0 || v < 1 || v > 8)
				usage_die("--maintainers: want 1 to 8");
			nm = (int)v;
			break;
		case 'q':
			v = strtol(optarg, &end, 10);
			if (*optarg == 0 || *end != 0 || v < 1 || v > 8)
				usage_die("--quorum: want 1 to 8");
			quorum = (int)v;
			break;
		case 'a':
			algset = 1;
			if (strcmp(optarg, "ed25519") == 0)
				alg = CX_KEY_ED25519;
			else if (strcmp(optarg, "rsa") == 0)
				alg = CX_KEY_RSA;
			else
				usage_die("--alg: want ed25519 or rsa");
			break;
		case 't':
			nows = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (!agent_opt(ch))
				usage_die(NULL);
		}
	}
	if (quorum > nm)
		usage_die("--quorum: more than --maintainers");
	if (ag.on) {
		const char *anchor;
		if (argc - optind != 1)
			usage_die("init --agent: want REPO (the keys are the agent's)");
		if (algset)
			usage_die(
			    "init --agent: --alg does not apply (the agent's keys have theirs)");
		repo = argv[optind];
		mkdir_p(repo, 0755);
		if (file_exists(repo, "root"))
			die("%s/root exists: init wants a new repository", repo);
		anchor = init_agent_root(repo, nm, quorum, parse_now(nows));
		if (!file_exists(repo, "repo"))
			rb_write_file(repo, "repo", "opam-version: \"2.0\"\n",
			    strlen("opam-version: \"2.0\"\n"));
		{
			char *p;
			if (asprintf(&p, "%s/packages", repo) < 0)
				die("out of memory");
			mkdir_p(p, 0755);
			free(p);
		}
		printf("%s\n", anchor);
		agent_close();
		return 0;
	}
	if (argc - optind != 2)
		usage_die("init: want REPO and KEYS");
	repo = argv[optind];
	keys = argv[optind + 1];
	mkdir_p(repo, 0755);
	mkdir_p(keys, 0700);
	if (file_exists(repo, "root"))
		die("%s/root exists: init wants a new repository", repo);
	if (has_private_keys(keys))
		die("%s already holds private keys: init wants an empty key directory", keys);

	rb_world_init(&w, repo, nm, quorum, alg, parse_now(nows));
	rb_key_save(w.root, keys);
	for (i = 0; i < nm; i++)
		rb_key_save(w.m[i], keys);
	rb_key_save(w.snap, keys);
	rb_key_save(w.ts, keys);
	rb_world_sign_root(&w);
	if (!file_exists(repo, "repo"))
		rb_world_file(&w, "repo", "opam-version: \"2.0\"\n");
	{
		char *p;
		if (asprintf(&p, "%s/packages", repo) < 0)
			die("out of memory");
		mkdir_p(p, 0755);
		free(p);
	}
	printf("sha256=%s\n", w.root->keyid);
	rb_world_free(&w);
	return 0;
}

/* ---- sign ---- */

struct idlist {
	const char *id[MAX_IDS];
	const struct cx_keyref *ref[MAX_IDS];
	size_t n;
};

static void
collect(void *arg, const struct cx_keyref *k)
{
	struct idlist *l = arg;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->id[i], k->id) == 0)
			return;
	if (l->n == MAX_IDS)
		die("too many maintainers");
	l->id[l->n] = k->id;
	l->ref[l->n] = k;
	l->n++;
}

static const struct cx_keyref *
single_role(const struct cx_expr *x, const char *role)
{
	if (x == NULL)
		return NULL;
	if (x->kind != CX_EXPR_QUORUM || x->nrefs != 1 || !x->refs[0].remote)
		die("root: the %s role is not a single remote key", role);
	return &x->refs[0];
}

static int
in_only(const char *only, const char *id)
{
	const char *p = only;
	size_t l = strlen(id);

	if (only == NULL)
		return 1;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == l && strncmp(p, id, l) == 0)
			return 1;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return 0;
}

/* Re-signs root: counter + 1, created = now, by every root key found in keys. */
static void
sign_root(struct cx_arena *a, struct cx_resource *root, const char *repo, const char *keys,
    const char *created)
{
	size_t i;
	int nsigned = 0;

	root->counter++;
	root->created = created;
	root->sigs = NULL;
	root->nsigs = 0;
	for (i = 0; i < root->nkeys; i++) {
		char hex[CX_SHA256_HEX + 1];
		struct rb_key *k;
		cx_hex_encode(root->keys[i].keyid, CX_SHA256_LEN, hex);
		k = get_key(keys, root->keys[i].id, hex, CX_SHA256_HEX);
		sign_as(a, root, k, created);
		rb_key_free(k);
		nsigned++;
	}
	if (nsigned == 0)
		die("root has no keys");
	rb_write(root, repo, "root");
}

static void
sign_maintainer(struct cx_arena *a, const char *repo, const char *keys, const char *keydir,
    const char *datadir, const struct cx_keyref *ref, const char *created)
{
	struct rb_key *k = get_key(keys, ref->id, ref->digest.value, ref->digest.len);
	struct cx_resource *t;
	const struct cx_key *have;
	char *rel;

	if (asprintf(&rel, "%s/%s", keydir, ref->id) < 0)
		die("out of memory");
	if (file_exists(repo, rel)) {
		t = rb_read(a, repo, rel, CX_R_TARGETS);
		if (t->nsigs)
			t->counter++;
	} else {
		struct cx_keyref lr = rb_local(ref->id);
		t = rb_new(a, CX_R_TARGETS, ref->id, created);
		rb_add_key(a, t, k);
		t->valid = rb_quorum(a, 1, &lr, 1);
		t->epoch = ref->epoch;
	}
	if ((have = cx_resource_key(t, ref->id)) == NULL)
		die("%s/%s: has no key %s", repo, rel, ref->id);
	if (have->keystrlen != k->keystrlen || memcmp(have->keystr, k->keystr, k->keystrlen) != 0)
		die("%s/%s: its key %s is not the %s key sha256=%s", repo, rel, ref->id,
		    ag.on ? "agent's" : "KEYS'", k->keyid);
	rb_clear_targets(t);
	rb_add_targets_below(a, t, repo, datadir);
	t->sigs = NULL;
	t->nsigs = 0;
	sign_as(a, t, k, created);
	rb_write(t, repo, rel);
	rb_key_free(k);
	free(rel);
}

/* Reads resource rel of type t, or starts it with key k; counter + 1 if signed before. */
static struct cx_resource *
next_role_resource(struct cx_arena *a, const char *repo, const char *rel, enum cx_rtype ty,
    const struct rb_key *k, const char *created)
{
	struct cx_resource *r;

	if (file_exists(repo, rel)) {
		r = rb_read(a, repo, rel, ty);
		if (r->nsigs)
			r->counter++;
	} else {
		r = rb_new(a, ty, rel, created);
	}
	if (cx_resource_key(r, k->id) == NULL)
		rb_add_key(a, r, k);
	r->created = created;
	r->sigs = NULL;
	r->nsigs = 0;
	rb_clear_targets(r);
	return r;
}

static void
sign_snapshot(struct cx_arena *a, const char *repo, const char *keys, const char *keydir,
    const struct cx_keyref *ref, const char *created)
{
	struct rb_key *k = get_key(keys, ref->id, ref->digest.value, ref->digest.len);
	struct cx_resource *s = next_role_resource(a, repo, ref->id, CX_R_SNAPSHOT, k, created);

	rb_add_targets_below(a, s, repo, keydir);
	sign_as(a, s, k, created);
	rb_write(s, repo, ref->id);
	rb_key_free(k);
}

static void
sign_timestamp(struct cx_arena *a, const char *repo, const char *keys, const struct cx_keyref *ref,
    const char *snapid, const char *created)
{
	struct rb_key *k = get_key(keys, ref->id, ref->digest.value, ref->digest.len);
	struct cx_resource *t = next_role_resource(a, repo, ref->id, CX_R_TIMESTAMP, k, created);
	char *path, *data;
	size_t len;

	if (asprintf(&path, "%s/%s", repo, snapid) < 0)
		die("out of memory");
	if ((data = slurp(path, &len)) == NULL)
		die("%s: %s", path, strerror(errno));
	rb_add_target(a, t, snapid, data, len);
	sign_as(a, t, k, created);
	rb_write(t, repo, ref->id);
	rb_key_free(k);
	free(data);
	free(path);
}

static int
cmd_sign(int argc, char **argv)
{
	static const struct option opts[] = {{"only", required_argument, NULL, 'o'},
	    {"root", no_argument, NULL, 'r'}, {"now", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'}, AGENT_OPTS, {NULL, 0, NULL, 0}};
	const char *nows = NULL, *only = NULL, *repo, *keys = NULL;
	const struct cx_keyref *snap, *ts;
	struct cx_resource *root;
	struct cx_arena a;
	struct idlist ml = {0};
	char created[21], *keydir, *datadir;
	int ch, doroot = 0;
	size_t i;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'o':
			only = optarg;
			break;
		case 'r':
			doroot = 1;
			break;
		case 't':
			nows = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (!agent_opt(ch))
				usage_die(NULL);
		}
	}
	if (ag.on) {
		if (argc - optind != 1)
			usage_die("sign --agent: want REPO (the keys are the agent's)");
	} else if (argc - optind != 2) {
		usage_die("sign: want REPO and KEYS");
	}
	repo = argv[optind];
	if (!ag.on)
		keys = argv[optind + 1];
	if (!is_dir(repo))
		die("%s: not a directory", repo);
	if (keys != NULL && !is_dir(keys))
		die("%s: not a directory", keys);
	if (!file_exists(repo, "root"))
		die("%s/root: not found (run cx-testsign init first)", repo);
	cx_time_format(parse_now(nows), created);

	cx_arena_init(&a, 0);
	root = rb_read(&a, repo, "root", CX_R_ROOT);
	keydir = strdup(root->keydir);
	datadir = strdup(root->datadir);
	if (keydir == NULL || datadir == NULL)
		die("out of memory");
	if (root->role_maintainer == NULL)
		die("root: no maintainer role");
	cx_expr_remotes(root->role_maintainer, collect, &ml);
	if (only != NULL) {
		/* every listed id must be a maintainer */
		const char *p = only;
		while (*p) {
			const char *e = strchr(p, ',');
			size_t n = e ? (size_t)(e - p) : strlen(p), j;
			for (j = 0; j < ml.n; j++)
				if (strlen(ml.id[j]) == n && strncmp(ml.id[j], p, n) == 0)
					break;
			if (j == ml.n)
				die("--only: '%.*s' is not in the root's maintainer role", (int)n,
				    p);
			if (e == NULL)
				break;
			p = e + 1;
		}
	}
	snap = single_role(root->role_snapshot, "snapshot");
	ts = single_role(root->role_timestamp, "timestamp");

	if (doroot)
		sign_root(&a, root, repo, keys, created);
	for (i = 0; i < ml.n; i++)
		if (in_only(only, ml.id[i]))
			sign_maintainer(&a, repo, keys, keydir, datadir, ml.ref[i], created);
	if (snap != NULL)
		sign_snapshot(&a, repo, keys, keydir, snap, created);
	if (ts != NULL) {
		if (snap == NULL)
			die("root: a timestamp role without a snapshot role");
		sign_timestamp(&a, repo, keys, ts, snap->id, created);
	}
	free(keydir);
	free(datadir);
	cx_arena_free(&a);
	agent_close();
	return 0;
}

/* ---- anchor ---- */

static int
cmd_anchor(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'}, AGENT_OPTS, {NULL, 0, NULL, 0}};
	struct rb_key *k;
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (!agent_opt(ch))
				usage_die(NULL);
		}
	}
	if (ag.on) {
		if (argc - optind != 0)
			usage_die("anchor --agent: no KEYS (the root key is the agent's)");
		k = agent_key("root", NULL, 0);
		agent_close();
	} else {
		if (argc - optind != 1)
			usage_die("anchor: want KEYS");
		if (!is_dir(argv[optind]))
			die("%s: not a directory", argv[optind]);
		k = load_key(argv[optind], "root", NULL, 0);
	}
	printf("sha256=%s\n", k->keyid);
	rb_key_free(k);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage_die(NULL);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	if (strcmp(argv[1], "sign") == 0)
		return cmd_sign(argc - 1, argv + 1);
	if (strcmp(argv[1], "anchor") == 0)
		return cmd_anchor(argc - 1, argv + 1);
	fprintf(stderr, "cx-testsign: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
