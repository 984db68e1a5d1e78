/*
 * conex key: the keys the agent holds, seen as conex keys (docs/tools.md).
 * generate makes a key pair on a token, import loads a software key, show
 * and list print key ids and the entries that go into `keys` lists.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/tools.h"
#include "conex/fileio.h"

/* A PEM private key file must fit one ADD_KEY frame. */
#define PEM_MAX (CX_PROTO_MAX - 4096)

static void
key_usage(FILE *f)
{
	fprintf(f,
	    "usage: conex key generate ID --token SERIAL [--alg ed25519|rsa4096|rsa2048]\n"
	    "       conex key import ID FILE.pem\n"
	    "       conex key show ID|sha256=HEX [--entry]\n"
	    "       conex key list\n\n"
	    "  generate  make a key pair on the token (not extractable, labelled ID; default\n"
	    "            Ed25519; rsa2048 for tokens that cannot make RSA-4096)\n"
	    "  import    load an unencrypted PEM private key into the agent as a software key\n"
	    "  show      <alg> key <ID> keyid sha256=<hex> <hardware|software> [token ...];\n"
	    "            --entry also prints the key entry (opam syntax) for a keys list\n"
	    "  list      show every key the agent holds\n\n"
	    "  --agent-sock PATH  the agent's socket (default $%s)\n"
	    "  --now RFC3339      the created time of --entry\n"
	    "  -q                 print nothing but errors\n\n"
	    "exit status: 0 ok, 1 failure, 2 usage error, 3 I/O error\n",
	    CX_AGENT_SOCK_ENV);
}

static void
print_key(const struct cx_msg_key *k, int entry, const char *created)
{
	char hex[CX_SHA256_HEX + 1];
	const char *alg = k->keyalg == CX_MKEY_RSA ? "rsa"
	    : k->keyalg == CX_MKEY_ED25519         ? "ed25519"
	                                           : "ecdsa-p256";

	cx_hex_encode(k->keyid, CX_SHA256_LEN, hex);
	printf("%s key %s keyid sha256=%s %s", alg, k->id, hex,
	    k->token_serial[0] ? "hardware" : "software");
	if (k->token_serial[0])
		printf(" token %s (%s) %s", k->token_label, k->token_serial, k->uri);
	if (!cx_signer_conex_alg(k))
		printf(" (cannot make conex signatures)");
	printf("\n");
	if (entry && cx_signer_conex_alg(k))
		printf("[%s \"%s\" \"%s\"]\n", k->id, created, k->keystr);
}

static int
key_generate(struct cx_tool *t, int argc, char **argv)
{
	static const struct option opts[] = {{"token", required_argument, NULL, 'T'},
	    {"alg", required_argument, NULL, 'A'}, CX_TOOL_LONGOPTS, {NULL, 0, NULL, 0}};
	const char *serial = NULL, *alg = "ed25519";
	struct cx_err e = {0};
	struct cx_signer *s;
	struct cx_msg_key *k;
	uint8_t keyalg;
	uint32_t bits = 0;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, CX_TOOL_SHORTOPTS, opts, NULL)) != -1) {
		if (ch == 'T')
			serial = optarg;
		else if (ch == 'A')
			alg = optarg;
		else if (ch == 'h')
			return key_usage(stdout), CX_EXIT_OK;
		else if ((rc = cx_tool_opt(t, ch, optarg)) != 1)
			return rc < 0 ? CX_EXIT_USAGE : cx_tool_usage(t, "bad option");
	}
	if (argc - optind != 1 || serial == NULL)
		return cx_tool_usage(t, "want an ID and --token SERIAL");
	if (strcmp(alg, "ed25519") == 0)
		keyalg = CX_MKEY_ED25519;
	else if (strcmp(alg, "rsa4096") == 0 || strcmp(alg, "rsa") == 0)
		keyalg = CX_MKEY_RSA, bits = 4096;
	else if (strcmp(alg, "rsa2048") == 0)
		keyalg = CX_MKEY_RSA, bits = 2048;
	else
		return cx_tool_usage(t, "--alg: want ed25519, rsa4096 or rsa2048");
	if ((rc = cx_tool_signer(t, &s, &e)) != 0)
		return cx_tool_fail(t, rc, &e);
	if ((rc = cx_agent_generate(s->c, serial, argv[optind], keyalg, bits, &k, &e)) != 0)
		return cx_tool_fail(t, rc, &e);
	if (!t->quiet)
		print_key(k, 0, t->created);
	cx_agent_keys_free(k);
	return CX_EXIT_OK;
}

static int
key_import(struct cx_tool *t, int argc, char **argv)
{
	static const struct option opts[] = {CX_TOOL_LONGOPTS, {NULL, 0, NULL, 0}};
	struct cx_err e = {0};
	struct cx_signer *s;
	struct cx_buf pem;
	const struct cx_msg_key *k;
	EVP_PKEY *pk = NULL;
	struct cx_buf pub;
	uint8_t keyid[CX_SHA256_LEN];
	char hex[CX_SHA256_HEX + 1];
	int ch, rc;

	while ((ch = getopt_long(argc, argv, CX_TOOL_SHORTOPTS, opts, NULL)) != -1) {
		if (ch == 'h')
			return key_usage(stdout), CX_EXIT_OK;
		if ((rc = cx_tool_opt(t, ch, optarg)) != 1)
			return rc < 0 ? CX_EXIT_USAGE : cx_tool_usage(t, "bad option");
	}
	if (argc - optind != 2)
		return cx_tool_usage(t, "want an ID and a PEM FILE");
	cx_buf_init(&pem, PEM_MAX);
	cx_buf_init(&pub, 0);
	if ((rc = cx_file_read(argv[optind + 1], PEM_MAX, &pem, &e)) != 0)
		goto fail;
	/* the key id to report: what the agent will list it as */
	if ((rc = cx_privkey_load_pem(pem.d, pem.len, &pk, &e)) != 0 ||
	    (rc = cx_pubkey_string(pk, &pub, &e)) != 0) {
		cx_err_prefix(&e, "%s", argv[optind + 1]);
		goto fail;
	}
	cx_keyid((const char *)pub.d, pub.len, keyid);
	if ((rc = cx_tool_signer(t, &s, &e)) != 0 ||
	    (rc = cx_agent_add_key(s->c, argv[optind], pem.d, pem.len, NULL, &e)) != 0)
		goto fail;
	cx_tool_warn(t, "%s is a software key: it is held in the agent's memory, not by a token",
	    argv[optind]);
	cx_signer_close(s);
	t->signer_open = 0;
	cx_hex_encode(keyid, CX_SHA256_LEN, hex);
	if ((rc = cx_tool_signer(t, &s, &e)) != 0 ||
	    (rc = cx_signer_find(s, NULL, hex, &k, &e)) != 0)
		goto fail;
	if (!t->quiet)
		print_key(k, 0, t->created);
	EVP_PKEY_free(pk);
	cx_buf_free_wipe(&pem);
	cx_buf_free(&pub);
	return CX_EXIT_OK;
fail:
	EVP_PKEY_free(pk);
	cx_buf_free_wipe(&pem);
	cx_buf_free(&pub);
	return cx_tool_fail(t, rc, &e);
}

static int
key_show(struct cx_tool *t, int argc, char **argv, int all)
{
	static const struct option opts[] = {
	    {"entry", no_argument, NULL, 'E'}, CX_TOOL_LONGOPTS, {NULL, 0, NULL, 0}};
	struct cx_err e = {0};
	struct cx_signer *s;
	uint8_t want[CX_SHA256_LEN];
	int ch, rc, entry = 0, byid = 0;
	size_t i, shown = 0;

	while ((ch = getopt_long(argc, argv, CX_TOOL_SHORTOPTS, opts, NULL)) != -1) {
		if (ch == 'E')
			entry = 1;
		else if (ch == 'h')
			return key_usage(stdout), CX_EXIT_OK;
		else if ((rc = cx_tool_opt(t, ch, optarg)) != 1)
			return rc < 0 ? CX_EXIT_USAGE : cx_tool_usage(t, "bad option");
	}
	if (argc - optind != (all ? 0 : 1))
		return cx_tool_usage(t, all ? "no arguments" : "want an ID or a key id sha256=HEX");
	if (!all && strncmp(argv[optind], "sha256=", 7) == 0) {
		if (cx_keyid_parse(argv[optind], want) != 0)
			return cx_tool_usage(t, "'%s': not a key id", argv[optind]);
		byid = 1;
	}
	if ((rc = cx_tool_signer(t, &s, &e)) != 0)
		return cx_tool_fail(t, rc, &e);
	for (i = 0; i < s->n; i++) {
		const struct cx_msg_key *k = &s->keys[i];
		if (!all &&
		    (byid ? memcmp(k->keyid, want, CX_SHA256_LEN) != 0
		          : strcmp(k->id, argv[optind]) != 0))
			continue;
		if (cx_signer_conex_alg(k) && cx_signer_check_key(k, &e) != 0) {
			cx_tool_warn(t, "%s", e.msg);
			continue;
		}
		if (!t->quiet)
			print_key(k, entry, t->created);
		shown++;
	}
	if (!all && shown == 0) {
		cx_err_set(&e, CX_ENOENT, "the agent holds no key %s", argv[optind]);
		return cx_tool_fail(t, CX_ENOENT, &e);
	}
	return CX_EXIT_OK;
}

int
cx_cmd_key(int argc, char **argv)
{
	struct cx_tool t;
	char cmd[32];
	int rc;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		key_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CX_EXIT_USAGE : CX_EXIT_OK;
	}
	snprintf(cmd, sizeof(cmd), "key %s", argv[1]);
	cx_tool_init(&t, cmd);
	if (strcmp(argv[1], "generate") == 0)
		rc = key_generate(&t, argc - 1, argv + 1);
	else if (strcmp(argv[1], "import") == 0)
		rc = key_import(&t, argc - 1, argv + 1);
	else if (strcmp(argv[1], "show") == 0)
		rc = key_show(&t, argc - 1, argv + 1, 0);
	else if (strcmp(argv[1], "list") == 0)
		rc = key_show(&t, argc - 1, argv + 1, 1);
	else
		rc = cx_tool_usage(&t, "unknown command '%s'", argv[1]);
	cx_tool_done(&t);
	return rc;
}
